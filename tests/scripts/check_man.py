#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Checks that the man pages cover the interfaces they document.

lib/libappsrv.3: every function include/appsrv.h declares APPSRV_API is
named in bold in the SYNOPSIS and heads an entry (the tag of a .TP or .TQ)
in another section; and no SYNOPSIS line or entry names an appsrv_*
function the header does not declare.

cli/appsrv.1: every long option in cli/appsrv.c's getopt_long table appears
in the SYNOPSIS and heads an entry in OPTIONS; and no OPTIONS entry names a
long option the table lacks.

Usage: check_man.py [SOURCE_ROOT]   (default: the tree holding this script)
Exits 1 with the list of what is missing. Reads roff source (no groff).
"""
import os
import re
import sys

BOLD_FONTS = {"B", "BI", "3", "4", "CB", "CBI"}
# Font macros: which arguments are bold (by parity), how arguments join.
ALT_MACROS = {"BI": 0, "BR": 0, "IB": 1, "RB": 1, "IR": None, "RI": None}
ALL_MACROS = {"B": True, "SB": True, "I": False, "SM": False}
SPECIAL = {"-": "-", "e": "\\", "~": " ", " ": " ", "0": " ", "&": "", "c": "",
           "|": "", "^": "", ")": "", "/": "", ",": "", "%": "", ":": ""}
CHARS = {"hy": "-", "mi": "-", "en": "-", "em": "-", "dq": '"', "aq": "'",
         "lq": '"', "rq": '"', "oq": "'", "cq": "'", "<=": "<=", ">=": ">=",
         "ti": "~", "ha": "^", "rs": "\\", "at": "@", "sh": "#", "bu": "*"}
C_WORDS = {"if", "while", "for", "switch", "return", "sizeof", "void", "int",
           "char", "const", "unsigned", "long", "short", "signed", "struct",
           "__attribute__", "__typeof__", "typeof", "_Alignas", "_Static_assert"}


def fail_parse(msg):
    print("check-man: " + msg, file=sys.stderr)
    sys.exit(2)


def split_args(s):
    """Splits a roff request's arguments: blanks separate, "..." groups."""
    args, i, n = [], 0, len(s)
    while i < n:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            break
        if s[i] == '"':
            i += 1
            cur = []
            while i < n:
                if s[i] == '"':
                    if i + 1 < n and s[i + 1] == '"':
                        cur.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                if s[i] == "\\" and i + 1 < n:
                    cur.append(s[i:i + 2])
                    i += 2
                    continue
                cur.append(s[i])
                i += 1
            args.append("".join(cur))
        else:
            j = i
            while j < n and s[j] not in " \t":
                j += 2 if s[j] == "\\" else 1
            args.append(s[i:j])
            i = j
    return args


def render(text, base_bold):
    """Renders roff text with escapes: returns (plain, bold_only) strings.
    Text outside bold becomes a blank in bold_only, so words do not merge."""
    plain, bold = [], []
    is_bold = base_bold
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "\\" or i + 1 >= n:
            plain.append(ch)
            bold.append(ch if is_bold else " ")
            i += 1
            continue
        esc = text[i + 1]
        i += 2
        out = None
        if esc == "f":  # font change: \fB \f(BI \f[B]
            if i < n and text[i] == "(":
                font, i = text[i + 1:i + 3], i + 3
            elif i < n and text[i] == "[":
                j = text.find("]", i)
                j = n if j < 0 else j
                font, i = text[i + 1:j], j + 1
            else:
                font, i = text[i:i + 1], i + 1
            if font in ("P", "", "R", "1"):
                is_bold = base_bold if font == "P" else False
            else:
                is_bold = font in BOLD_FONTS
            continue
        if esc == "(":
            out, i = CHARS.get(text[i:i + 2], ""), i + 2
        elif esc == "[":
            j = text.find("]", i)
            j = n if j < 0 else j
            out, i = CHARS.get(text[i:j], ""), j + 1
        elif esc in "*n" and i < n:  # strings and registers: drop
            if text[i] == "(":
                i += 3
            elif text[i] == "[":
                j = text.find("]", i)
                i = n if j < 0 else j + 1
            else:
                i += 1
            out = ""
        elif esc == "\\":
            out = "\\"
        else:
            out = SPECIAL.get(esc, "")
        plain.append(out)
        bold.append(out if is_bold else " " * len(out))
    return "".join(plain), "".join(bold)


def read_roff(path):
    """Yields (line_no, section, request, plain, bold) per logical line.
    request is the macro name ('' for text lines); a tag line (the line
    after .TP, or after .TQ) has request prefixed 'tag:'."""
    with open(path, encoding="utf-8") as f:
        raw = f.read().split("\n")
    lines, i = [], 0
    while i < len(raw):
        start, cur = i + 1, raw[i]
        # A line ending in an odd number of backslashes continues.
        while (len(cur) - len(cur.rstrip("\\"))) % 2 == 1 and i + 1 < len(raw):
            cur = cur[:-1] + raw[i + 1]
            i += 1
        lines.append((start, cur))
        i += 1
    section, want_tag = "", False
    for no, line in lines:
        if line.startswith(('.\\"', "'\\\"", '\\"')) or line.strip() in (".", "'"):
            continue
        if line[:1] in ".'":
            m = re.match(r"[.']\s*(\S+)\s*(.*)", line)
            if not m:
                continue
            req, rest = m.group(1), m.group(2)
            if req in ("SH", "SS"):
                if req == "SH":
                    section = " ".join(render(a, False)[0] for a in split_args(rest)).upper()
                want_tag = False
                continue
            if req in ("TP", "TQ"):
                want_tag = True
                continue
            args = split_args(rest)
            if req in ALL_MACROS:
                plain, bold = render(" ".join(args), ALL_MACROS[req])
            elif req in ALT_MACROS:
                first = ALT_MACROS[req]
                parts = [render(a, first is not None and k % 2 == first) for k, a in enumerate(args)]
                plain = "".join(p for p, _ in parts)
                bold = " ".join(b for _, b in parts)
            else:
                # Other requests (.IP tags, .in, .nr): render their text but
                # treat nothing as a name.
                plain, bold = render(rest, False)
                bold = ""
        else:
            req = ""
            plain, bold = render(line, False)
        tag = want_tag
        want_tag = False
        yield no, section, ("tag:" + req if tag else req), plain, bold


def api_functions(header):
    """Names of the functions include/appsrv.h declares APPSRV_API."""
    with open(header, encoding="utf-8") as f:
        src = f.read()
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"//[^\n]*", " ", src)
    src = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", src, flags=re.M)
    names = []
    for m in re.finditer(r"\bAPPSRV_API\b([^;{]*)", src):
        decl = m.group(1)
        if "(" not in decl:
            continue  # an object, not a function
        name = re.search(r"\b(appsrv_\w+)\s*\(", decl)
        if name is None:
            calls = [c for c in re.findall(r"\b([A-Za-z_]\w*)\s*\(", decl) if c not in C_WORDS]
            if not calls:
                fail_parse("%s: cannot find the name in: APPSRV_API%s" % (header, decl.strip()))
            name_s = calls[0]
        else:
            name_s = name.group(1)
        names.append(name_s)
    if not names:
        fail_parse("%s: no APPSRV_API function found (parser out of date?)" % header)
    return names


def long_options(csrc):
    """Long option names of the getopt_long table(s) in csrc."""
    with open(csrc, encoding="utf-8") as f:
        src = f.read()
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"//[^\n]*", " ", src)
    names = []
    for m in re.finditer(r"struct\s+option\s+\w+\s*\[[^\]]*\]\s*=\s*\{(.*?)\}\s*;", src, re.S):
        names += re.findall(r'\{\s*"([^"]+)"', m.group(1))
    if not names:
        fail_parse("%s: no getopt_long option table found (parser out of date?)" % csrc)
    return names


def check_lib(root):
    header = os.path.join(root, "include", "appsrv.h")
    page = os.path.join(root, "lib", "libappsrv.3")
    funcs = api_functions(header)
    declared = set(funcs)
    in_synopsis, in_entry, stale = set(), set(), []
    ident = re.compile(r"\bappsrv_\w+")
    for no, section, req, plain, bold in read_roff(page):
        names = set(ident.findall(bold))
        if section == "SYNOPSIS":
            in_synopsis |= names
        elif req.startswith("tag:"):
            in_entry |= names
        else:
            continue
        for fn in re.findall(r"\b(appsrv_\w+)\s*\(", plain):
            if fn not in declared:
                stale.append("%s:%d: %s() (%s)" % (
                    os.path.relpath(page, root), no, fn,
                    "SYNOPSIS" if section == "SYNOPSIS" else "entry"))
    errors = []
    missing = []
    for fn in funcs:
        why = []
        if fn not in in_synopsis:
            why.append("not in bold in SYNOPSIS")
        if fn not in in_entry:
            why.append("no .TP/.TQ entry")
        if why:
            missing.append("  %s: %s" % (fn, ", ".join(why)))
    if missing:
        errors.append("lib/libappsrv.3 lacks %d function(s) include/appsrv.h declares "
                      "APPSRV_API:\n%s" % (len(missing), "\n".join(missing)))
    if stale:
        errors.append("lib/libappsrv.3 names function(s) include/appsrv.h does not "
                      "declare:\n  " + "\n  ".join(stale))
    return errors, len(funcs)


def check_cli(root):
    csrc = os.path.join(root, "cli", "appsrv.c")
    page = os.path.join(root, "cli", "appsrv.1")
    opts = long_options(csrc)
    known = set(opts)
    in_synopsis, in_entry, stale = set(), set(), []
    opt = re.compile(r"(?<![\w-])--([A-Za-z0-9][\w-]*)")
    for no, section, req, plain, bold in read_roff(page):
        names = set(opt.findall(plain))
        if section == "SYNOPSIS":
            in_synopsis |= names
        elif section == "OPTIONS" and req.startswith("tag:"):
            in_entry |= names
            stale += ["%s:%d: --%s" % (os.path.relpath(page, root), no, o)
                      for o in sorted(names - known)]
    missing = []
    for o in opts:
        why = []
        if o not in in_synopsis:
            why.append("not in SYNOPSIS")
        if o not in in_entry:
            why.append("no .TP entry in OPTIONS")
        if why:
            missing.append("  --%s: %s" % (o, ", ".join(why)))
    errors = []
    if missing:
        errors.append("cli/appsrv.1 lacks %d long option(s) of cli/appsrv.c's getopt_long "
                      "table:\n%s" % (len(missing), "\n".join(missing)))
    if stale:
        errors.append("cli/appsrv.1 documents option(s) cli/appsrv.c does not accept:\n  "
                      + "\n  ".join(stale))
    return errors, len(opts)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    e1, nfuncs = check_lib(root)
    e2, nopts = check_cli(root)
    for e in e1 + e2:
        print("check-man: " + e, file=sys.stderr)
    if e1 or e2:
        return 1
    print("check-man: ok (%d APPSRV_API functions in libappsrv.3, %d long options in appsrv.1)"
          % (nfuncs, nopts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
