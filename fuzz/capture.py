#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""capture.py - records the exact bytes real HTTP clients send, as fuzzing
seeds: fuzz/corpus/http/capture_<client>_<what>.

A one-shot recorder listens on 127.0.0.1 (port 0), and each client in
CLIENTS (curl, Python urllib and requests, Node fetch and http.request) is
run against it with a 10 s bound. The recorder reads one request (head,
then a Content-Length or chunked body), answers 204 with Connection: close
and saves what it read. A client that is not installed is skipped with a
note. Loopback only; nothing else is contacted.

    python3 fuzz/capture.py [OUTDIR]    # default fuzz/corpus/http
"""
import os
import shutil
import socket
import subprocess
import sys
import threading

BODY_JSON = '{"title":"milk","done":false}'

# (name, argv template); {url} is http://127.0.0.1:PORT
CLIENTS = [
    ("curl_get", ["curl", "-s", "-o", "/dev/null", "-H", "Accept: application/json",
                  "{url}/api/v1/items?limit=10&q=caf%C3%A9"]),
    ("curl_post_json", ["curl", "-s", "-o", "/dev/null", "-X", "POST",
                        "-H", "Content-Type: application/json", "-H", "Authorization: Bearer t0k3n",
                        "--data", BODY_JSON, "{url}/notes"]),
    ("curl_chunked", ["curl", "-s", "-o", "/dev/null", "-H", "Transfer-Encoding: chunked",
                      "--data-binary", "hello chunked world", "{url}/echo"]),
    ("curl_http10", ["curl", "-s", "-o", "/dev/null", "-0", "{url}/hello"]),
    ("curl_head", ["curl", "-s", "-o", "/dev/null", "-I", "{url}/hello"]),
    ("python_urllib_get", ["python3", "-c",
                           "import urllib.request,sys;"
                           "urllib.request.urlopen(sys.argv[1] + '/users/42?fields=name', timeout=5).read()",
                           "{url}"]),
    ("python_requests_post", ["python3", "-c",
                              "import requests,sys;"
                              "requests.post(sys.argv[1] + '/notes', json={'title': 'milk'}, timeout=5)",
                              "{url}"]),
    ("python_requests_chunked", ["python3", "-c",
                                 "import requests,sys;"
                                 "requests.put(sys.argv[1] + '/files/a.txt',"
                                 " data=(p for p in [b'part one, ', b'part two']), timeout=5)",
                                 "{url}"]),
    ("node_fetch_get", ["node", "-e",
                        "fetch(process.argv[1] + '/plaintext').then(r => r.text())"
                        ".catch(e => { console.error(e); process.exit(1); })",
                        "{url}"]),
    ("node_fetch_post", ["node", "-e",
                         "fetch(process.argv[1] + '/notes', {method: 'POST',"
                         " headers: {'content-type': 'application/json'},"
                         " body: JSON.stringify({title: 'milk'})}).then(r => r.text())"
                         ".catch(e => { console.error(e); process.exit(1); })",
                         "{url}"]),
    ("node_http_chunked", ["node", "-e",
                           "const u = new URL(process.argv[1] + '/echo');"
                           "const r = require('http').request(u, {method: 'POST'}, s => s.resume());"
                           "r.on('error', e => { console.error(e); process.exit(1); });"
                           "r.write('first '); r.write('second'); r.end();",
                           "{url}"]),
]


def read_request(conn):
    """Reads one request: head, then its body by Content-Length or chunked."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head_end = data.index(b"\r\n\r\n") + 4
    head = data[:head_end].decode("latin1").lower()
    fields = dict(line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if "chunked" in fields.get("transfer-encoding", ""):
        while not data[head_end:].endswith(b"0\r\n\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    else:
        want = head_end + int(fields.get("content-length", "0"))
        while len(data) < want:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def record_one(srv, out):
    conn, _ = srv.accept()
    with conn:
        conn.settimeout(10)
        out.append(read_request(conn))
        conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "http")
    os.makedirs(outdir, exist_ok=True)
    failed = 0
    for name, argv in CLIENTS:
        if shutil.which(argv[0]) is None:
            print(f"capture: {name}: {argv[0]} not installed, skipped")
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            srv.settimeout(10)
            url = f"http://127.0.0.1:{srv.getsockname()[1]}"
            got = []
            t = threading.Thread(target=record_one, args=(srv, got), daemon=True)
            t.start()
            rc = subprocess.run([a.replace("{url}", url) for a in argv], timeout=10).returncode
            t.join(10)
        if rc != 0 or not got or b"\r\n\r\n" not in got[0]:
            print(f"capture: {name}: FAILED (client exit {rc})", file=sys.stderr)
            failed += 1
            continue
        path = os.path.join(outdir, "capture_" + name)
        with open(path, "wb") as f:
            f.write(got[0])
        print(f"capture: {name}: {len(got[0])} bytes -> {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
