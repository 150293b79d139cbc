#!/bin/sh
# SPDX-License-Identifier: MIT
#
# examples/check.sh DESTDIR - end-to-end check of the examples against the
# libappsrv installed under DESTDIR (PREFIX /usr/local), as CI runs it:
#
#   make install DESTDIR="$d" PREFIX=/usr/local && sh examples/check.sh "$d"
#
# Builds every example with `make -C examples` (pkg-config only, pointed at
# DESTDIR), starts each on 127.0.0.1 with a free port, and checks it with
# curl and python3 sockets; then checks that the installed man page
# documents every APPSRV_API function of the installed header. It kills
# only the processes it started, bounds every wait, and exits non-zero with
# a message naming the first failure. notes_api needs jansson
# (libjansson-dev); CHECK_ALLOW_SKIP=1 lets the run pass without it.
set -eu

failed=
fail() {
    failed=1
    echo "check: FAIL: $*" >&2
    exit 1
}
pass() { echo "check: ok   $*"; }

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: sh examples/check.sh DESTDIR" >&2
    exit 2
fi
[ -d "$1" ] || fail "no such directory: $1"
root=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local
for tool in curl python3 pkg-config make; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is needed (apt-get install $tool)"
done
[ -f "$root$prefix/lib/pkgconfig/appsrv.pc" ] ||
    fail "no appsrv.pc under $root$prefix/lib/pkgconfig: run" \
         "'make install DESTDIR=$root PREFIX=$prefix' first"

# pkg-config sees the DESTDIR copy of appsrv and nothing else of
# /usr/local. jansson and openssl (appsrv.pc's Requires.private in a TLS
# build) come from the system: their directories (asked before the search
# path is narrowed) go on PKG_CONFIG_PATH.
jansson_dir=$(pkg-config --variable=pcfiledir jansson 2>/dev/null || true)
openssl_dir=$(pkg-config --variable=pcfiledir openssl 2>/dev/null || true)
export PKG_CONFIG_SYSROOT_DIR="$root"
export PKG_CONFIG_LIBDIR="$root$prefix/lib/pkgconfig"
export PKG_CONFIG_PATH="$root$prefix/lib/pkgconfig${jansson_dir:+:$jansson_dir}${openssl_dir:+:$openssl_dir}"
export LD_LIBRARY_PATH="$root$prefix/lib"

tmp=$(mktemp -d)
pids=   # the processes this script started and has not reaped yet
cleanup() {
    rc=$?
    for p in $pids; do
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
    # set -e may end the script at a command that failed unchecked: say so.
    if [ "$rc" -ne 0 ] && [ -z "$failed" ]; then
        echo "check: FAIL: a command failed unexpectedly (exit $rc); rerun with sh -x" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------- helpers

# alive PID: true while PID runs (a zombie does not count).
alive() {
    st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# start NAME SCHEME [VAR=value ...]: runs build/NAME on a free port with
# the variables in its environment; sets pid and port from the listening
# line "NAME: listening on SCHEME://127.0.0.1:PORT" (10 s at most).
start() {
    name=$1 scheme=$2
    shift 2
    : >"$tmp/$name.err" # exists before the first look at it
    env "$@" "$bin/$name" 0 2>>"$tmp/$name.err" &
    pid=$!
    pids="$pids $pid"
    port=
    i=0
    while [ $i -lt 100 ]; do
        port=$(sed -n "s|^$name: listening on $scheme://127\.0\.0\.1:\([1-9][0-9]*\)\$|\1|p" \
               "$tmp/$name.err")
        [ -n "$port" ] && break
        alive "$pid" || fail "$name exited before listening: $(cat "$tmp/$name.err")"
        sleep 0.1
        i=$((i + 1))
    done
    [ -n "$port" ] || fail "$name printed no '$name: listening on $scheme://127.0.0.1:PORT'" \
                          "line in 10 s; stderr: $(cat "$tmp/$name.err")"
}

# stop: SIGINT to the example started last; it must exit 0 within 10 s.
stop() {
    kill -INT "$pid"
    i=0
    while alive "$pid" && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    alive "$pid" && fail "$name still runs 10 s after SIGINT"
    rc=0
    wait "$pid" || rc=$?
    pids=$(echo "$pids" | sed "s/ $pid\$//; s/ $pid / /")
    [ "$rc" -eq 0 ] || fail "$name exited with status $rc after SIGINT: $(cat "$tmp/$name.err")"
    pass "$name stops cleanly on SIGINT (exit 0)"
}

# http METHOD PATH [curl args...]: one request to the running example.
# Sets code; the head goes to $tmp/head, the body to $tmp/body.
http() {
    method=$1 path=$2
    shift 2
    code=$(curl -sS --max-time 5 -o "$tmp/body" -D "$tmp/head" -w '%{http_code}' \
           -X "$method" "$@" "http://127.0.0.1:$port$path") ||
        fail "curl $method $path: no answer"
}

# expect WHAT CODE: the last http call answered CODE.
expect() {
    [ "$code" = "$2" ] || fail "$1: status $code, expected $2; body: $(cat "$tmp/body")"
}

# header NAME: the value of header NAME in the last answer ("" if absent).
header() {
    tr -d '\r' <"$tmp/head" | awk -v want="$1" '
        { i = index($0, ":") }
        i > 0 && tolower(substr($0, 1, i - 1)) == tolower(want) {
            v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v; exit
        }'
}

# json WHAT EXPR: the last body is JSON and the Python expression EXPR
# (over d, the parsed body) is true.
json() {
    python3 - "$tmp/body" "$2" <<'PY' || fail "$1: $(cat "$tmp/body")"
import json, sys
try:
    d = json.load(open(sys.argv[1], encoding="utf-8"))
except ValueError as e:
    sys.exit("not JSON (%s)" % e)
if not eval(sys.argv[2], {"d": d}):
    sys.exit("JSON check failed: " + sys.argv[2])
PY
}

# --------------------------------------------------------------- build

bin="$tmp/bin"
make -s -C "$here" OUT="$bin" || fail "make -C examples failed"
pcdir=$(pkg-config --variable=pcfiledir appsrv)
case "$pcdir" in
"$root"*) ;;
*) fail "pkg-config found appsrv in $pcdir, not under $root" ;;
esac
for ex in hello line_kv blocking_echo ws_chat; do
    [ -x "$bin/$ex" ] || fail "make -C examples built no $ex"
done
ldd "$bin/hello" | grep -q "$root$prefix/lib/libappsrv" ||
    fail "hello is not linked against $root$prefix/lib/libappsrv.so"
pass "make -C examples (pkg-config: $pcdir)"

# --------------------------------------------------------------- hello

start hello http
http GET /
expect "GET /" 200
[ "$(cat "$tmp/body")" = "Hello, World!" ] || fail "GET /: body '$(cat "$tmp/body")'"
[ "$(header Content-Type)" = text/plain ] || fail "GET /: Content-Type '$(header Content-Type)'"
http GET /nope
expect "GET /nope" 404
pass "hello answers GET / with Hello, World! (404 elsewhere)"
stop

# ------------------------------------------------------------- line_kv

start line_kv line
out=$(python3 - "$port" <<'PY'
import socket, sys
port = int(sys.argv[1])

def session(lines):
    """Sends the lines pipelined, returns every reply line until close."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"".join(l + b"\n" for l in lines))
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return data.decode("utf-8", "replace").split("\n")[:-1]

got = session([b"SET greeting hello world", b"GET greeting", b"SET greeting hi",
               b"GET greeting", b"DEL greeting", b"GET greeting", b"DEL greeting",
               b"GET missing", b"SET", b"SET lonely", b"GET a b", b"NOPE",
               b"SET shared from-one-connection\r", b"QUIT"])
want = ["200 OK", "200 OK hello world", "200 OK", "200 OK hi", "200 OK",
        "404 Not Found", "404 Not Found", "404 Not Found", "400 Bad Request",
        "400 Bad Request", "400 Bad Request", "404 Not Found", "200 OK",
        "200 OK BYE"]
if got != want:
    sys.exit("replies %r\nexpected %r" % (got, want))
# A second connection (maybe another worker thread) sees the same store.
got = session([b"GET shared", b"DEL shared", b"QUIT"])
if got != ["200 OK from-one-connection", "200 OK", "200 OK BYE"]:
    sys.exit("second connection: %r" % got)
PY
) || fail "line_kv: $out"
pass "line_kv SET/GET/DEL, GET missing -> 404 Not Found, 400s, QUIT closes"
stop

# ------------------------------------------------------- blocking_echo

# Not ours to format: it prints "listening on HOST:PORT".
: >"$tmp/blocking_echo.err"
"$bin/blocking_echo" 127.0.0.1 0 2>>"$tmp/blocking_echo.err" &
pid=$! name=blocking_echo
pids="$pids $pid"
port=
i=0
while [ -z "$port" ] && [ $i -lt 100 ] && alive "$pid"; do
    sleep 0.1
    i=$((i + 1))
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/blocking_echo.err")
done
[ -n "$port" ] || fail "blocking_echo did not listen: $(cat "$tmp/blocking_echo.err")"
out=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"PING\nECHO hi there\nQUIT\n")
data = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    data += d
if data != b"200 OK PONG\n200 OK hi there\n200 OK BYE\n":
    sys.exit("replies %r" % data)
PY
) || fail "blocking_echo: $out"
pass "blocking_echo PING/ECHO/QUIT"
stop

# ------------------------------------------------------------- ws_chat

start ws_chat http
out=$(python3 - "$port" <<'PY'
import base64, os, socket, struct, sys
port = int(sys.argv[1])

def connect(path, protocol=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "Sec-WebSocket-Protocol: %s\r\n" % protocol if protocol else ""
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n%s\r\n" % (path, key, extra)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        if not d:
            break
        head += d
    return s, head.decode("latin-1")

def send(s, text, op=1):
    data = text if isinstance(text, bytes) else text.encode()
    mask = os.urandom(4)
    hdr = bytes([0x80 | op]) + (bytes([0x80 | len(data)]) if len(data) < 126
                                else bytes([0x80 | 126]) + struct.pack("!H", len(data)))
    s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

def exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("closed")
        b += d
    return b

def recv(s):
    b0, b1 = exact(s, 2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack("!H", exact(s, 2))[0]
    data = exact(s, n)
    return b0 & 0x0f, data

a, head = connect("/chat/lobby?name=ann", "chat.v1")
if " 101 " not in head.split("\r\n")[0] or "Sec-WebSocket-Protocol: chat.v1" not in head:
    sys.exit("ann: %r" % head)
if recv(a) != (1, b"* ann joined"):
    sys.exit("ann did not see herself join")
b, head = connect("/chat/lobby?name=bob")
if " 101 " not in head.split("\r\n")[0] or "Sec-WebSocket-Protocol" in head:
    sys.exit("bob: %r" % head)
for s in (a, b):
    if recv(s) != (1, b"* bob joined"):
        sys.exit("join not broadcast")
c, head = connect("/chat/other?name=cat")
recv(c)
send(a, "hello")
for s in (a, b):
    got = recv(s)
    if got != (1, b"ann: hello"):
        sys.exit("broadcast: %r" % (got,))
bad, head = connect("/chat/lobby?name=no%20spaces")
if " 400 " not in head.split("\r\n")[0]:
    sys.exit("bad name: %r" % head)
import urllib.request
r = urllib.request.urlopen(urllib.request.Request(
    "http://127.0.0.1:%d/announce" % port, data=b"maintenance at noon"), timeout=5)
if r.read() != b"3\n":
    sys.exit("announce did not count 3 members")
for s in (a, b, c):
    if recv(s) != (1, b"! maintenance at noon"):
        sys.exit("announce not received")
send(b, b"\x03\xe8", op=8)  # close 1000
op, data = recv(b)
if op != 8 or data[:2] != b"\x03\xe8":
    sys.exit("close not echoed: %r" % ((op, data),))
if recv(a) != (1, b"* bob left"):
    sys.exit("leave not broadcast")
PY
) || fail "ws_chat: $out"
pass "ws_chat rooms: joins, broadcast, 400 on a bad name, POST /announce to all, close echoed"
stop

# ----------------------------------------------------------- notes_api

if [ ! -x "$bin/notes_api" ]; then
    [ "${CHECK_ALLOW_SKIP:-0}" = 1 ] ||
        fail "notes_api was not built: jansson is missing (apt-get install libjansson-dev)"
    echo "check: SKIP notes_api (no jansson; CHECK_ALLOW_SKIP=1)"
else
    token=ci-$$-token
    auth="Authorization: Bearer $token"
    ctype="Content-Type: application/json"

    # It refuses to start without a token.
    rc=0
    env -u NOTES_API_TOKEN "$bin/notes_api" 0 2>"$tmp/notoken.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "notes_api without NOTES_API_TOKEN: exit $rc, expected 2"

    start notes_api http "NOTES_API_TOKEN=$token"

    http GET /v1/notes
    expect "GET /v1/notes without a token" 401
    case "$(header WWW-Authenticate)" in
    Bearer*) ;;
    *) fail "401 without a token: WWW-Authenticate '$(header WWW-Authenticate)'" ;;
    esac
    json "401 body" 'd["error"] == "unauthorized"'
    http POST /v1/notes -H "Authorization: Bearer wrong-$token" -H "$ctype" \
        --data-binary '{"title":"t","body":"b"}'
    expect "POST /v1/notes with a wrong token" 401
    case "$(header WWW-Authenticate)" in
    *invalid_token*) ;;
    *) fail "401 with a wrong token: WWW-Authenticate '$(header WWW-Authenticate)'" ;;
    esac
    http GET /v1/notes -H "Authorization: Basic dXNlcjpwYXNz"
    expect "GET /v1/notes with Basic credentials" 401
    [ -n "$(header WWW-Authenticate)" ] || fail "401 (Basic): no WWW-Authenticate"
    pass "notes_api 401 + WWW-Authenticate without, with a wrong, with a non-Bearer token"

    http POST /v1/notes -H "$auth" -H "$ctype" \
        --data-binary '{"title":"Groceries","body":"milk, caf\u00e9 \"noir\""}'
    expect "POST /v1/notes" 201
    location=$(header Location)
    case "$location" in
    /v1/notes/[1-9]*) ;;
    *) fail "POST /v1/notes: Location '$location'" ;;
    esac
    id=${location#/v1/notes/}
    [ "$(header Content-Type)" = application/json ] ||
        fail "POST /v1/notes: Content-Type '$(header Content-Type)'"
    json "POST /v1/notes body" \
        "d == {'id': $id, 'title': 'Groceries', 'body': 'milk, caf\u00e9 \"noir\"'}"
    pass "notes_api create: 201, Location $location, the note as JSON"

    http GET /v1/notes -H "$auth"
    expect "GET /v1/notes" 200
    json "GET /v1/notes body" \
        "[n['id'] for n in d['notes']] == [$id] and d['next_after'] is None"
    http GET "$location" -H "$auth"
    expect "GET $location" 200
    json "GET $location body" "d['id'] == $id and d['title'] == 'Groceries'"
    pass "notes_api list and read"

    http PUT "$location" -H "$auth" -H "$ctype" \
        --data-binary '{"title":"Groceries","body":"oat milk"}'
    expect "PUT $location" 200
    json "PUT $location body" "d == {'id': $id, 'title': 'Groceries', 'body': 'oat milk'}"
    http GET "$location" -H "$auth"
    json "GET after PUT" "d['body'] == 'oat milk'"
    pass "notes_api update"

    for bad in '{"title":"x",' 'not json' '' '{"title":"a","title":"b","body":""}'; do
        http POST /v1/notes -H "$auth" -H "$ctype" --data-binary "$bad"
        expect "POST /v1/notes with bad JSON '$bad'" 400
        [ "$(header Content-Type)" = application/json ] ||
            fail "400 for bad JSON: Content-Type '$(header Content-Type)'"
        json "400 body for '$bad'" \
            'd["error"] == "invalid_json" and isinstance(d["message"], str) and d["message"]'
    done
    for bad in '[]' '{"title":1,"body":"b"}' '{"title":"","body":"b"}' '{"title":"t"}' \
               '{"title":"t","body":null}' '{"title":"t","body":"b","extra":1}'; do
        http POST /v1/notes -H "$auth" -H "$ctype" --data-binary "$bad"
        expect "POST /v1/notes with '$bad'" 400
        json "400 body for '$bad'" 'd["error"] == "invalid_note" and d["message"]'
    done
    http PUT "$location" -H "$auth" -H "$ctype" --data-binary '{"title":'
    expect "PUT $location with bad JSON" 400
    json "400 body for PUT" 'd["error"] == "invalid_json"'
    http POST /v1/notes -H "$auth" --data-binary '{"title":"t","body":"b"}'
    expect "POST /v1/notes as a form (curl's default type)" 415
    pass "notes_api 400 with a JSON error body on bad JSON and bad shapes; 415 on non-JSON"

    for bad in abc 0 01 -1 99999999 12345678901234567890; do
        http GET "/v1/notes/$bad" -H "$auth"
        expect "GET /v1/notes/$bad" 404
    done
    http PATCH "$location" -H "$auth"
    expect "PATCH $location" 405
    [ -n "$(header Allow)" ] || fail "405 without Allow"
    pass "notes_api 404 on bad ids, 405 + Allow on other methods"

    http DELETE "$location" -H "$auth"
    expect "DELETE $location" 204
    [ ! -s "$tmp/body" ] || fail "DELETE $location: 204 with a body"
    http GET "$location" -H "$auth"
    expect "GET $location after DELETE" 404
    json "404 body" 'd["error"] == "not_found"'
    http DELETE "$location" -H "$auth"
    expect "DELETE $location twice" 404
    http PUT "$location" -H "$auth" -H "$ctype" --data-binary '{"title":"t","body":"b"}'
    expect "PUT $location after DELETE" 404
    pass "notes_api delete: 204, then 404"

    # Many clients at once, on every worker thread: every create gets its
    # own id, and the paged list returns each note exactly once.
    out=$(python3 - "$port" "$token" <<'PY'
import http.client, json, sys, threading
port, token = int(sys.argv[1]), sys.argv[2]
hdrs = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
ids, errors, lock = [], [], threading.Lock()

def client(k):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # keep-alive
        for j in range(25):
            c.request("POST", "/v1/notes", json.dumps({"title": "t%d-%d" % (k, j), "body": "x" * j}), hdrs)
            r = c.getresponse()
            d = json.loads(r.read())
            if r.status != 201 or r.getheader("Location") != "/v1/notes/%d" % d["id"]:
                raise Exception("status %d %r" % (r.status, d))
            with lock:
                ids.append(d["id"])
        c.close()
    except Exception as e:
        with lock:
            errors.append(repr(e))

threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join(30)
if errors or len(ids) != 200 or len(set(ids)) != 200:
    sys.exit("errors %r, %d ids, %d distinct" % (errors[:3], len(ids), len(set(ids))))
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
seen, after = [], 0
for _ in range(10):
    c.request("GET", "/v1/notes?limit=100&after=%d" % after, headers=hdrs)
    r = c.getresponse()
    d = json.loads(r.read())
    if r.status != 200:
        sys.exit("list: %d %r" % (r.status, d))
    seen += [n["id"] for n in d["notes"]]
    if d["next_after"] is None:
        break
    after = d["next_after"]
if seen != sorted(ids):
    sys.exit("paged list has %d ids, expected the %d created" % (len(seen), len(ids)))
PY
) || fail "notes_api concurrent clients: $out"
    http GET "/v1/notes?limit=0" -H "$auth"
    expect "GET /v1/notes?limit=0" 400
    pass "notes_api 8 concurrent keep-alive clients x 25 creates: distinct ids, paged list"
    stop
fi

# ------------------------------------------------------------ man page

man3="$root$prefix/share/man/man3/libappsrv.3"
hdr="$root$prefix/include/appsrv.h"
[ -f "$man3" ] || fail "no man page at $man3 (lib/libappsrv.3 not installed)"
funcs=$(sed -n 's/^APPSRV_API[^(]*[ *]\(appsrv_[a-z0-9_]*\)(.*/\1/p' "$hdr")
[ -n "$funcs" ] || fail "no APPSRV_API functions found in $hdr"
missing=
for f in $funcs; do
    grep -Eq "^\.BI? .*[ *\"]$f\(" "$man3" || missing="$missing $f"
done
[ -z "$missing" ] || fail "libappsrv.3 lacks a synopsis for:$missing"
if command -v groff >/dev/null 2>&1; then
    warn=$(groff -man -Tutf8 -ww -z "$man3" 2>&1) || fail "groff failed on libappsrv.3: $warn"
    [ -z "$warn" ] || fail "groff warnings on libappsrv.3: $warn"
fi
pass "libappsrv.3 documents all $(echo "$funcs" | wc -l) APPSRV_API functions"

echo "check: all examples passed"
