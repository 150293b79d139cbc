#!/usr/bin/env bash
# tests/deploy/proxy_tls.sh - the PROXY protocol on an HTTPS listener
# (appsrv --tls-cert/--tls-key --proxy-protocol): a Python client sends a
# v1 header, then a v2 header, in the clear before its TLS ClientHello,
# and gets 200 over TLS; the access log shows the header's client. A TLS
# ClientHello without a header is closed without an answer. Loopback,
# bounded. Run from the repository root.
. "$(dirname "$0")/proxy_lib.sh"
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 0; }
"$APPSRV" --help | grep -q -- --tls-cert || { echo "SKIP: no TLS"; exit 0; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 \
    || fail "openssl could not make a certificate"
start_appsrv s --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --proxy-protocol \
    --access-log-format json

timeout 20 python3 - "$PORT_s" <<'PY' || fail "TLS client failed"
import socket, ssl, struct, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

def get(header):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if header:
        s.sendall(header)
    t = ctx.wrap_socket(s, server_hostname="localhost")
    t.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = t.recv(4096)
        if not b:
            break
        data += b
    t.close()
    return data

v1 = b"PROXY TCP4 198.51.100.10 127.0.0.1 40001 443\r\n"
v2 = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x21]) + struct.pack("!H", 36)
      + socket.inet_pton(socket.AF_INET6, "2001:db8::10")
      + socket.inet_pton(socket.AF_INET6, "::1") + struct.pack("!HH", 40002, 443))
for name, h in (("v1", v1), ("v2", v2)):
    r = get(h)
    assert r.startswith(b"HTTP/1.1 200"), (name, r[:80])
    print("PROXY %s then TLS: %s" % (name, r.split(b"\r\n")[0].decode()))
# No header: the ClientHello is not a PROXY header; closed, no answer.
s = socket.create_connection(("127.0.0.1", port), timeout=5)
try:
    ctx.wrap_socket(s, server_hostname="localhost")
    print("handshake without a header succeeded"); sys.exit(1)
except (ssl.SSLError, OSError) as e:
    print("TLS without a PROXY header: closed (%s)" % type(e).__name__)
PY
g1=$(wait_lines 1 '"client":"198\.51\.100\.10"' "$T/s.log")
g2=$(wait_lines 1 '"client":"2001:db8::10"' "$T/s.log")
[ "$g1" = 1 ] && [ "$g2" = 1 ] || fail "access log lacks the PROXY clients ($g1, $g2)"
echo "proxy_tls: ok"
