#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Parses an access log the way a log pipeline would, and prints each line
in a form a C test can compare byte for byte.

Usage: check_access_log.py combined|json FILE

combined: every line must match Apache's combined log format
    %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"
as a regular expression (a quoted field is a run of non-quote,
non-backslash characters or backslash escapes); the escapes of
ap_escape_logitem() (\\" \\\\ \\b \\n \\r \\t \\v \\xhh) are decoded back to
bytes. json: every line must be one JSON object (json.loads, strict) with
the documented keys and types.

Prints one line per log line:
  REC status method target version body referer user_agent request_id aborted
with byte strings in hex ("-" for absent or, in the combined format, for
what it cannot carry). Exits 1 with a message on the first bad line.
"""
import json
import re
import sys

Q = r'"((?:[^"\\]|\\.)*)"'
COMBINED = re.compile(
    r'^(\S+) (\S+) (\S+) \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
    + Q + r' (\d{3}) (\d+|-) ' + Q + ' ' + Q + r'$')
ESC = {'"': b'"', '\\': b'\\', 'b': b'\b', 'n': b'\n', 'r': b'\r', 't': b'\t', 'v': b'\v'}
JSON_KEYS = {
    "time": str, "client": (str, type(None)), "peer": (str, type(None)), "proto": str,
    "method": (str, type(None)), "target": (str, type(None)), "version": (str, type(None)),
    "status": int, "bytes_in": int, "bytes_out": int, "body_bytes": int, "duration_us": int,
    "user_agent": (str, type(None)), "referer": (str, type(None)),
    "request_id": (str, type(None)), "tls_version": (str, type(None)),
    "route": (str, type(None)), "aborted": bool, "worker": int,
}


def fail(no, line, msg):
    print("check_access_log: line %d: %s: %r" % (no, msg, line), file=sys.stderr)
    sys.exit(1)


def unescape(s, no, line):
    out, i = bytearray(), 0
    while i < len(s):
        c = s[i]
        if c != '\\':
            if not (0x20 <= ord(c) < 0x7f):
                fail(no, line, "unescaped byte 0x%02x in a quoted field" % ord(c))
            out += c.encode()
            i += 1
            continue
        e = s[i + 1]
        if e in ESC:
            out += ESC[e]
            i += 2
        elif e == 'x' and re.match(r'[0-9a-f]{2}', s[i + 2:i + 4]):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            fail(no, line, "bad escape \\%s" % e)
    return bytes(out)


def hx(b):
    if b is None:
        return "-"
    if isinstance(b, str):
        b = b.encode("utf-8")
    return b.hex() if b else "="


def combined(no, line):
    m = COMBINED.match(line)
    if not m:
        fail(no, line, "does not match the combined log format")
    req = unescape(m.group(5), no, line)
    ref = unescape(m.group(8), no, line)
    ua = unescape(m.group(9), no, line)
    parts = req.split(b' ')
    method = parts[0] if req != b'-' else None
    version = "-"
    if len(parts) >= 3 and parts[-1].startswith(b'HTTP/'):
        version = parts[-1].decode()
        parts = parts[:-1]
    target = b' '.join(parts[1:]) if len(parts) > 1 else None
    body = m.group(7)
    print("REC", m.group(6), hx(method), hx(target), version, body,
          hx(ref) if ref != b'-' else "-", hx(ua) if ua != b'-' else "-", "-", "-")


def jsonline(no, line):
    try:
        o = json.loads(line)
    except ValueError as e:
        fail(no, line, "not JSON: %s" % e)
    if not isinstance(o, dict):
        fail(no, line, "not an object")
    for k, t in JSON_KEYS.items():
        if k not in o or not isinstance(o[k], t):
            fail(no, line, "key %s missing or of the wrong type" % k)
    if set(o) != set(JSON_KEYS):
        fail(no, line, "unexpected keys %s" % sorted(set(o) - set(JSON_KEYS)))
    if not re.match(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$', o["time"]):
        fail(no, line, "time is not RFC 3339 UTC")
    print("REC", o["status"], hx(o["method"]), hx(o["target"]), o["version"] or "-",
          o["body_bytes"] if o["body_bytes"] else "-", hx(o["referer"]), hx(o["user_agent"]),
          o["request_id"] or "-", int(o["aborted"]))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("combined", "json"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    fn = combined if sys.argv[1] == "combined" else jsonline
    # Bytes in, so an invalid UTF-8 byte in the file is itself an error.
    with open(sys.argv[2], "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        fail(0, data[-80:], "the file does not end with a newline")
    try:
        text = data.decode("ascii" if fn is combined else "utf-8")
    except UnicodeDecodeError as e:
        fail(0, data[max(0, e.start - 40):e.end + 40], "not %s: %s" % (
            "ASCII" if fn is combined else "UTF-8", e))
    for no, line in enumerate(text.split("\n")[:-1], 1):
        fn(no, line)


main()
