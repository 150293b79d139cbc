#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test/e2e.py BIN CERTDIR - the two-device scenario with the Python
standard library only: http.client + ssl (the dev CA) for the API, and
the server-sent events fallback (GET /v1/events) for live updates.
Starts BIN over HTTPS on a free port with a fresh SQLite file (or --db
URL), plays devices A and B of one user: register, log in twice, B
listens on /v1/events, A creates and edits, B sees both live; a stale
If-Match gets 412; logout refuses the token; a restart keeps the data;
CORS, /health, /ready and /metrics answer. Every wait is bounded and says
what it waited for; only the processes it started are killed; its temp
dir is removed."""
import gzip
import hashlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

DEADLINE = time.monotonic() + int(os.environ.get("E2E_SECONDS", "150"))
STEP = ["start"]  # what the scenario is doing, for the timeout message


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class Server:
    """One photonotes process on a free port; stop() or kill() it."""

    def __init__(self, binary, certs, db, extra=(), photo_dir=None):
        self.err = b""
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--db", db, "--threads", "2",
             "--photo-dir", photo_dir or os.path.join(os.path.dirname(db), "photos"),
             "--tls-cert", os.path.join(certs, "server.pem"),
             "--tls-key", os.path.join(certs, "server.key"), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = 0
        lines = queue.Queue()
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()
        end = time.monotonic() + 20
        while self.port == 0:
            try:
                line = lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None or time.monotonic() > end:
                self.kill()
                raise Fail("no 'listening on' line within 20 s; stderr: %r" % self.err)
            m = re.search(rb"listening on https://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))

    def _read(self, lines):
        for line in self.proc.stderr:
            self.err += line
            lines.put(line)
        lines.put(None)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Fail("the server did not exit within 15 s of SIGTERM")
        check(rc == 0, "server exit status %d; stderr: %r" % (rc, self.err))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Client:
    def __init__(self, port, ctx, host="127.0.0.1"):
        self.port, self.ctx, self.host = port, ctx, host

    def conn(self, timeout=20):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                           timeout=timeout)

    def call(self, method, path, token=None, body=None, headers=None, device=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if device:
            h["X-Device-ID"] = device
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c = self.conn()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            raw = r.read()
            try:
                js = json.loads(raw) if raw else None
            except ValueError:
                js = None
            return r.status, r, js, raw
        finally:
            c.close()

    def expect(self, status, what, *args, **kw):
        STEP[0] = what
        st, r, js, raw = self.call(*args, **kw)
        check(st == status, "%s: status %d, expected %d: %r" % (what, st, status, raw))
        return r, js


class Events:
    """A server-sent events stream read by a thread into a queue."""

    def __init__(self, client, token):
        STEP[0] = "GET /v1/events"
        self.q = queue.Queue()
        self.c = client.conn(timeout=60)
        self.c.request("GET", "/v1/events", headers={"Authorization": "Bearer " + token,
                                                     "Accept": "text/event-stream"})
        self.r = self.c.getresponse()
        if self.r.status != 200:
            raise Fail("GET /v1/events: %d %r" % (self.r.status, self.r.read()))
        check(self.r.getheader("Content-Type", "").startswith("text/event-stream"),
              "events Content-Type %r" % self.r.getheader("Content-Type"))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        ev = {}
        try:
            for raw in self.r:
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if ev:
                        self.q.put(ev)
                    ev = {}
                elif line.startswith(":"):
                    continue
                else:
                    k, _, v = line.partition(":")
                    ev[k] = ev.get(k, "") + v.lstrip(" ")
        except (OSError, ValueError, AttributeError):
            pass  # closed under the reader (AttributeError: http.client's, on close)
        self.q.put(None)

    def wait(self, what, pred, timeout=20):
        STEP[0] = "waiting for " + what
        seen = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                ev = self.q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if ev is None:
                raise Fail("the event stream ended while waiting for %s (saw %r)" % (what, seen))
            seen.append(ev)
            data = json.loads(ev["data"]) if ev.get("data") else None
            if pred(ev.get("event"), data):
                return data
        raise Fail("timed out after %d s waiting for %s (saw %r)" % (timeout, what, seen))

    def close(self):
        self.c.close()


def photo_part(tag, filename, ctype="application/octet-stream"):
    """(boundary, head, tail) of a multipart body with one file part
    named "photo": the file's bytes go between head and tail."""
    boundary = "%s%d" % (tag, os.getpid())
    head = ('--%s\r\nContent-Disposition: form-data; name="photo"; filename="%s"\r\n'
            'Content-Type: %s\r\n\r\n' % (boundary, filename, ctype)).encode()
    return boundary, head, ("\r\n--%s--\r\n" % boundary).encode()


def upload_head(cl, token, nid, boundary, length, headers=None, timeout=60):
    """A new connection with the head of a photo upload of length bytes
    sent, the body not yet: the caller sends it and reads the answer."""
    c = cl.conn(timeout=timeout)
    c.putrequest("POST", "/v1/notes/%d/photos" % nid)
    c.putheader("Authorization", "Bearer " + token)
    c.putheader("Content-Type", "multipart/form-data; boundary=" + boundary)
    c.putheader("Content-Length", str(length))
    for k, v in (headers or {}).items():
        c.putheader(k, v)
    c.endheaders()
    return c


def upload(cl, token, nid, data, filename, headers=None):
    """POST a multipart body in 64 KiB writes (never whole in one buffer
    on the wire); returns (status, json)."""
    boundary, head, tail = photo_part("pn", filename)
    c = upload_head(cl, token, nid, boundary, len(head) + len(data) + len(tail), headers)
    try:
        c.send(head)
        for i in range(0, len(data), 65536):
            c.send(data[i:i + 65536])
        c.send(tail)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def photos(cl, token, nid):
    """A 5 MB PNG with a token the restarted server has not cached (the
    body waits for the database's answer), an interrupted download resumed
    with Range + If-Range, 304, and a too-large upload refused before its
    body."""
    STEP[0] = "photo upload"
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(5 * 1024 * 1024 - 8)
    st, ph = upload(cl, token, nid, png, "shot.png")
    check(st == 201 and ph["sha256"] == hashlib.sha256(png).hexdigest()
          and ph["type"] == "image/png", "upload: %d %r" % (st, ph))
    c = cl.conn(timeout=60)
    c.request("GET", ph["url"], headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    etag = r.getheader("ETag")
    part = r.read(1500000)  # then the connection drops
    c.close()
    check(r.status == 200 and etag and len(part) == 1500000, "download %d %r" % (r.status, etag))
    st, r, _, rest = cl.call("GET", ph["url"], token=token,
                             headers={"Range": "bytes=%d-" % len(part), "If-Range": etag})
    check(st == 206 and hashlib.sha256(part + rest).hexdigest() == ph["sha256"],
          "resumed download: %d, %d bytes" % (st, len(rest)))
    cl.expect(304, "If-None-Match on the photo", "GET", ph["url"], token=token,
              headers={"If-None-Match": etag})
    # Refused on the head alone: 30 MB announced, nothing sent after it.
    c = upload_head(cl, token, nid, "x", 30 * 1024 * 1024, {"Expect": "100-continue"},
                    timeout=20)
    r = c.getresponse()
    check(r.status == 413, "30 MB upload: %d" % r.status)
    c.close()


def delete_races(up, dele, token, photo_dir, rounds=16):
    """Notes deleted while a photo of theirs commits (upload through `up`,
    delete through `dele`, which may be another instance): each upload
    answers 201 or 404, never 5xx, and no photo file outlives its note."""
    STEP[0] = "note deletes racing photo uploads"
    before = set(os.listdir(photo_dir))
    boundary, head, tail = photo_part("race", "r.jpg", "image/jpeg")
    data = b"\xff\xd8\xff\xe0" + os.urandom(32 * 1024)
    seen = {}
    for i in range(rounds):
        _, n = up.expect(201, "a note to race (round %d)" % i, "POST", "/v1/notes", token=token,
                         body={"title": "race %d" % i, "body": ""})
        c = upload_head(up, token, n["id"], boundary, len(head) + len(data) + len(tail),
                        timeout=20)
        c.send(head + data)  # all but the closing boundary
        go, out = threading.Barrier(2), {}

        def finish():
            go.wait(10)
            c.send(tail)
            r = c.getresponse()
            out["status"], out["body"] = r.status, r.read()

        t = threading.Thread(target=finish)
        t.start()
        go.wait(10)
        time.sleep((i % 8) * 0.002)  # the delete before, during, after the commit
        st = dele.call("DELETE", "/v1/notes/%d" % n["id"], token=token)[0]
        t.join(30)
        c.close()
        check(not t.is_alive(), "round %d: no answer to the upload within 30 s" % i)
        check(st == 204, "round %d: DELETE of the note: %d" % (i, st))
        check(out["status"] in (201, 404), "round %d: upload racing the delete: %d %r"
              % (i, out["status"], out["body"][:200]))
        seen[out["status"]] = seen.get(out["status"], 0) + 1
    STEP[0] = "photo files after the racing deletes"
    # A refused upload's temp file goes when its last reference does, which
    # can be just after the answer: a moment's grace for those.
    end = time.monotonic() + 3
    while True:
        left = sorted(set(os.listdir(photo_dir)) - before)
        if not left or time.monotonic() > end:
            break
        time.sleep(0.05)
    check(not left, "files left after their notes were deleted: %r (answers %r)" % (left, seen))
    return seen


def scenario(binary, certs, db, tmp):
    photo_dir = os.path.join(os.path.dirname(db), "photos")  # Server's default
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "dev-ca.pem"))
    srv = Server(binary, certs, db, ["--cors", "https://app.example"])
    try:
        cl = Client(srv.port, ctx)
        user = "py%d" % os.getpid()
        cred = {"username": user, "password": "correct horse"}
        cl.expect(201, "register", "POST", "/v1/auth/register", body=cred)
        _, la = cl.expect(200, "login A", "POST", "/v1/auth/login", body=cred)
        _, lb = cl.expect(200, "login B", "POST", "/v1/auth/login", body=cred)
        a, b = la["token"], lb["token"]
        _, bad = cl.expect(422, "bad register", "POST", "/v1/auth/register",
                           body={"username": "X"})
        check(set(bad["error"]["fields"]) == {"username", "password"}, "422 %r" % bad)

        ev = Events(cl, b)
        ev.wait("the ready event", lambda e, d: e == "ready")
        r, note = cl.expect(201, "create", "POST", "/v1/notes", token=a, device="tablet-A",
                            body={"title": "Eggs", "body": "a dozen"})
        nid = note["id"]
        check(r.getheader("ETag") == '"1"', "ETag %r" % r.getheader("ETag"))
        ev.wait("note.created %d from tablet-A" % nid,
                lambda e, d: e == "note" and d["type"] == "note.created" and d["id"] == nid
                and d["device"] == "tablet-A")
        r, note = cl.expect(200, "update", "PUT", "/v1/notes/%d" % nid, token=a,
                            headers={"If-Match": '"1"'},
                            body={"title": "Eggs", "body": "two dozen"})
        check(note["version"] == 2, "version %r" % note)
        ev.wait("note.updated to version 2",
                lambda e, d: e == "note" and d["type"] == "note.updated"
                and d["note"]["version"] == 2)
        cl.expect(412, "stale If-Match", "PUT", "/v1/notes/%d" % nid, token=b,
                  headers={"If-Match": '"1"'}, body={"title": "Eggs", "body": "from B"})
        # JSON answers are gzipped for clients that ask (OkHttp, URLSession do).
        _, big = cl.expect(201, "a long note", "POST", "/v1/notes", token=a,
                           body={"title": "long", "body": "lorem ipsum " * 400})
        st, r, _, raw = cl.call("GET", "/v1/notes/%d" % big["id"], token=b,
                                headers={"Accept-Encoding": "gzip"})
        check(st == 200 and r.getheader("Content-Encoding") == "gzip"
              and json.loads(gzip.decompress(raw))["body"] == big["body"],
              "gzip: %d %r, %d bytes" % (st, r.getheader("Content-Encoding"), len(raw)))
        cl.expect(404, "someone else's id", "GET", "/v1/notes/999999", token=b)

        # Plumbing a deployment relies on.
        cl.expect(200, "health", "GET", "/health")
        cl.expect(200, "ready", "GET", "/ready")
        r, _ = cl.expect(204, "CORS preflight", "OPTIONS", "/v1/notes",
                         headers={"Origin": "https://app.example",
                                  "Access-Control-Request-Method": "PUT",
                                  "Access-Control-Request-Headers": "authorization,if-match"})
        check(r.getheader("Access-Control-Allow-Origin") == "https://app.example",
              "preflight ACAO %r" % r.getheader("Access-Control-Allow-Origin"))
        st, _, _, raw = cl.call("GET", "/metrics")
        check(st == 200 and b'route="/v1/notes/:id"' in raw, "metrics: %d %r" % (st, raw[:300]))
        st, _, js, _ = cl.call("GET", "/no/such/path", token=b)
        check(st == 404 and js["error"]["status"] == 404, "JSON 404: %d %r" % (st, js))

        cl.expect(204, "logout A", "POST", "/v1/auth/logout", token=a)
        cl.expect(401, "A's token after logout", "GET", "/v1/notes", token=a)
        ev.close()

        # An upload in flight when the server stops: the library ends its
        # body (-ESHUTDOWN), the answer is 503 + Retry-After before the
        # process exits, and no temp file stays behind.
        STEP[0] = "an upload in flight at SIGTERM"
        boundary, head, _ = photo_part("stop", "s.jpg", "image/jpeg")
        c = upload_head(cl, b, nid, boundary, len(head) + 1024 * 1024 + 64, timeout=20)
        c.send(head + b"\xff\xd8\xff\xe0" + os.urandom(65536))
        time.sleep(0.3)  # the handler has the body by now
        srv.proc.send_signal(signal.SIGTERM)
        r = c.getresponse()
        check(r.status == 503 and r.getheader("Retry-After") == "1",
              "upload at SIGTERM: %d %r" % (r.status, r.read()[:200]))
        c.close()
        srv.stop()
        left = [f for f in os.listdir(photo_dir) if f.endswith(".tmp")]
        check(not left, "temp files left after the stop: %r" % left)

        srv = Server(binary, certs, db)
        cl = Client(srv.port, ctx)
        # Tokens this process has not cached yet: the upload's body waits for
        # the database. A's (logged out) with a text file: refused as not a
        # photo or as unauthorized, whichever is known first.
        STEP[0] = "a text file with a logged-out token"
        st, _ = upload(cl, a, nid, b"plain text, certainly not a photo" * 64, "a.txt")
        check(st in (401, 415), "a text file with a logged-out token: %d" % st)
        photos(cl, b, nid)
        seen = delete_races(cl, cl, b, photo_dir)
        print("e2e.py: note deletes racing uploads: %r" % seen)
        _, got = cl.expect(200, "read after restart", "GET", "/v1/notes/%d" % nid, token=b)
        check(got["body"] == "two dozen" and got["version"] == 2, "after restart %r" % got)
        cl.expect(401, "A's token after restart", "GET", "/v1/notes", token=a)
        srv.stop()

        # Expiry: a 1 s session is refused once it is over.
        srv = Server(binary, certs, db, ["--session-ttl", "1", "--drain-delay", "3000"])
        cl = Client(srv.port, ctx)
        _, short = cl.expect(200, "login with a 1 s session", "POST", "/v1/auth/login", body=cred)
        cl.expect(200, "the short token at once", "GET", "/v1/notes", token=short["token"])
        time.sleep(1.2)
        cl.expect(401, "the short token after it expired", "GET", "/v1/notes",
                  token=short["token"])
        # A stop with --drain-delay: /ready says 503 while the server still serves.
        cl.expect(200, "ready before the stop", "GET", "/ready")
        srv.proc.send_signal(signal.SIGTERM)
        STEP[0] = "/ready to answer 503 after SIGTERM"
        end = time.monotonic() + 2
        while cl.call("GET", "/ready")[0] != 503:
            check(time.monotonic() < end, "/ready still 200 2 s after SIGTERM")
            time.sleep(0.05)
        cl.expect(200, "health while draining", "GET", "/health")
        srv.stop()
    finally:
        srv.kill()


def main():
    if len(sys.argv) != 3:
        print("usage: e2e.py BIN CERTDIR", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="photonotes-py-")
    threading.Timer(max(1, DEADLINE - time.monotonic()),
                    lambda: (print("e2e.py: FAIL: the scenario ran out of time, at: " + STEP[0],
                                   file=sys.stderr), os._exit(1))).start()
    try:
        scenario(sys.argv[1], sys.argv[2], os.path.join(tmp, "notes.db"), tmp)
    except Fail as e:
        print("e2e.py: FAIL: %s" % e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("e2e.py: ok (register, login x2, live create/update over SSE, 412, 422, "
          "CORS, metrics, logout, upload at SIGTERM, restart, 5 MB photo + Range resume, "
          "note deletes racing uploads, gzip, expiry, "
          "/ready while draining)")
    return 0


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    os._exit(rc)
