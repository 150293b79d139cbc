#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Checks lib/'s #include graph against the module graph in lib/DEPS.

lib/DEPS has one line per module, "module: dep1 dep2 ..." ('#' starts a
comment). A module's files are lib/<module>.c, lib/<module>.h and
lib/<module>_*.c (the longest declared name wins: with modules http and
http_parse, lib/http_parse.c is http_parse's). A file may include its own
module's headers and the public "appsrv.h"; including "x.h" of another lib
module x needs x in its module's list. <system> headers are ignored.

Fails (exit 1) on: an include outside the graph; a quoted include that is
no lib header and not appsrv.h; a lib file in no declared module; a module
declared without files; an unknown or repeated name in DEPS; a cycle in
the declared graph or in the actual include graph (the cycle is printed).
Exit 2: usage, or LIBDIR/DEPS unreadable.

Usage: check_deps.py [LIBDIR]            check (default: lib/ of this tree)
       check_deps.py --edges [LIBDIR]    print the actual module edges
                                         "from to file:line" (for the self-test)
"""
import os
import re
import sys

PUBLIC = {"appsrv.h"}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
INCLUDE = re.compile(r'[ \t]*#[ \t]*include[ \t]*([<"])([^>"]*)[>"]')


def strip_comments(src):
    """Blanks out C comments (keeping newlines), minding string literals."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == "/" and src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "/" and src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c and src[j] != "\n":
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def read_deps(path, errors):
    """Returns ({module: [deps]}, {module: line_no})."""
    deps, where = {}, {}
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            mod, colon, rest = line.partition(":")
            mod = mod.strip()
            if not colon or not NAME.match(mod):
                errors.append("%s:%d: not 'module: dep1 dep2 ...': %s" % (path, no, line))
                continue
            if mod in deps:
                errors.append("%s:%d: module %s declared again (first at line %d)"
                              % (path, no, mod, where[mod]))
                continue
            deps[mod], where[mod] = [], no
            for d in rest.split():
                if not NAME.match(d):
                    errors.append("%s:%d: %s: bad module name '%s'" % (path, no, mod, d))
                elif d == mod:
                    errors.append("%s:%d: %s lists itself" % (path, no, mod))
                elif d + ".h" in PUBLIC:
                    errors.append("%s:%d: %s lists %s: %s.h is public and always allowed, "
                                  "drop it" % (path, no, mod, d, d))
                elif d not in deps[mod]:
                    deps[mod].append(d)
    for mod, ds in deps.items():
        for d in ds:
            if d not in deps:
                errors.append("%s:%d: %s depends on %s, which has no line of its own"
                              % (path, where[mod], mod, d))
    return deps, where


def module_of(fname, declared):
    """The declared module a lib/ file belongs to, or None."""
    stem, ext = os.path.splitext(fname)
    if ext == ".h":
        return stem if stem in declared else None
    best = None
    for m in declared:
        if stem == m or (stem.startswith(m + "_")):
            if best is None or len(m) > len(best):
                best = m
    return best


def find_cycle(graph, nodes):
    """One cycle through a strongly connected component, as a node list
    (first == last), or None. graph: {node: iterable of successors}."""
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        # Iterative Tarjan: no recursion limit on big graphs.
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                sccs.append(comp)

    for v in sorted(nodes):
        if v not in index:
            strong(v)
    cycles = []
    for comp in sccs:
        members = set(comp)
        start = min(comp)
        if len(comp) == 1 and start not in graph.get(start, ()):
            continue
        # Breadth-first from start back to start, inside the component.
        prev, frontier, found = {}, [start], None
        while frontier and found is None:
            nxt = []
            for u in frontier:
                for w in sorted(graph.get(u, ())):
                    if w == start:
                        found = u
                        break
                    if w in members and w not in prev and w != start:
                        prev[w] = u
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        path = [start]
        u = found
        while u != start:
            path.append(u)
            u = prev[u]
        path.append(start)
        path.reverse()
        cycles.append(path)
    return sorted(cycles)


def main(argv):
    edges_only = False
    if argv and argv[0] == "--edges":
        edges_only, argv = True, argv[1:]
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print(__doc__.strip().split("\n\n")[-1], file=sys.stderr)
        return 2
    libdir = argv[0] if argv else os.path.relpath(os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "lib"))
    libdir = libdir.rstrip("/") or "/"
    depsfile = os.path.join(libdir, "DEPS")
    if not os.path.isfile(depsfile):
        print("check-deps: %s: no such file" % depsfile, file=sys.stderr)
        return 2

    errors = []
    deps, where = read_deps(depsfile, errors)
    declared = set(deps)

    files, owner = [], {}
    for dirpath, dirnames, names in os.walk(libdir):
        dirnames.sort()
        for fname in sorted(names):
            if not fname.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, fname)
            if dirpath != libdir:
                errors.append("%s: below a subdirectory of %s/, which the module rules "
                              "do not cover" % (path, libdir))
                continue
            mod = module_of(fname, declared)
            if mod is None:
                stem = os.path.splitext(fname)[0]
                want = "'%s:'" % stem
                if fname.endswith(".c") and "_" in stem:
                    want += " or '%s:'" % stem.split("_")[0]
                errors.append("%s: in no module of %s (add a line %s)" % (path, depsfile, want))
                continue
            files.append(fname)
            owner[fname] = mod
    for mod in sorted(declared - set(owner.values())):
        errors.append("%s:%d: module %s has no file (%s/%s.c, %s.h or %s_*.c)"
                      % (depsfile, where[mod], mod, libdir, mod, mod, mod))

    actual = {}  # module -> {dep module: first "file:line"}
    nincludes = 0
    for fname in files:
        mod = owner[fname]
        path = os.path.join(libdir, fname)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = strip_comments(f.read())
        for no, line in enumerate(text.split("\n"), 1):
            m = INCLUDE.match(line)
            if not m or m.group(1) == "<":
                continue
            inc = m.group(2)
            where_inc = "%s:%d" % (path, no)
            if os.path.basename(inc) in PUBLIC:
                continue
            target = os.path.normpath(os.path.join(libdir, inc))
            if os.path.dirname(target) != os.path.normpath(libdir) or \
                    not os.path.isfile(target):
                errors.append('%s: #include "%s": not a header of %s/ nor %s'
                              % (where_inc, inc, libdir, ", ".join(sorted(PUBLIC))))
                continue
            tmod = owner.get(os.path.basename(target))
            if tmod is None:
                continue  # that file's own error is reported above
            nincludes += 1
            if tmod == mod:
                continue
            actual.setdefault(mod, {}).setdefault(tmod, where_inc)
            if tmod not in deps[mod]:
                errors.append('%s: #include "%s": module %s is not in the list of %s '
                              '(%s:%d "%s:%s"; also allowed: its own headers, %s)'
                              % (where_inc, inc, tmod, mod, depsfile, where[mod], mod,
                                 "".join(" " + d for d in deps[mod]),
                                 ", ".join(sorted(PUBLIC))))

    if edges_only:
        for mod in sorted(actual):
            for tmod in sorted(actual[mod]):
                print(mod, tmod, actual[mod][tmod])
        return 0

    for cyc in find_cycle(deps, declared):
        errors.append("%s: cycle in the declared graph: %s" % (depsfile, " -> ".join(cyc)))
    for cyc in find_cycle(actual, set(actual)):
        steps = [cyc[0]] + ["%s (%s)" % (b, actual[a][b]) for a, b in zip(cyc, cyc[1:])]
        errors.append("cycle in the actual includes of %s/: %s" % (libdir, " -> ".join(steps)))

    if errors:
        for e in errors:
            print("check-deps: " + e, file=sys.stderr)
        return 1
    print("check-deps: ok (%d modules, %d files, %d includes of lib headers, no cycle)"
          % (len(declared), len(files), nincludes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
