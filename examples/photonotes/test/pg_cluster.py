#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test/pg_cluster.py BIN - photonotes scaled out: a throw-away PostgreSQL
cluster (initdb + pg_ctl as an unprivileged user, unix socket in a temp
dir, no TCP), two photonotes instances on it behind HAProxy (TCP mode,
TLS passed through, round robin, 127.0.0.1 on a free port). Device B
listens for events through HAProxy on one instance; device A's changes
made through the other instance reach it live (LISTEN/NOTIFY); a logout
on one instance is refused on the other at once; a note conflicts (412)
across instances. Stops everything it started (and only that), removes
its temp dir; every wait is bounded and says what it waited for."""
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (Server, Client, Events, Fail, check)
from e2e import Client, Events, Fail, Server, check  # noqa: E402


def pg_bin(name):
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name))
    if not found:
        raise Fail("no %s: apt-get install postgresql" % name)
    return found[-1]


def as_user(cmd, user):
    """cmd run as the unprivileged user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", user, "--"] + cmd
    return cmd


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, what, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Fail("timed out after %d s waiting for %s on port %d" % (timeout, what, port))


def scenario(binary, tmp, procs):
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    pgdata, sock = os.path.join(tmp, "pgdata"), os.path.join(tmp, "sock")
    os.mkdir(sock)
    if os.geteuid() == 0:
        uid = pwd.getpwnam(user).pw_uid
        os.chown(tmp, uid, -1)
        os.chown(sock, uid, -1)
    e2e.STEP[0] = "initdb"
    subprocess.run(as_user([pg_bin("initdb"), "-D", pgdata, "-A", "trust", "-U", "photonotes",
                            "--no-sync", "-E", "UTF8"], user),
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    e2e.STEP[0] = "pg_ctl start"
    opts = "-c listen_addresses='' -k %s -c fsync=off -c max_connections=40" % sock
    subprocess.run(as_user([pg_bin("pg_ctl"), "-D", pgdata, "-o", opts, "-l",
                            os.path.join(tmp, "pg.log"), "-w", "-t", "60", "start"], user),
                   check=True, stdout=subprocess.DEVNULL, timeout=90)
    procs.append(("pg", pgdata, user))
    url = "host=%s dbname=postgres user=photonotes" % sock

    certs = os.path.join(tmp, "certs")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run(["sh", os.path.join(here, "mkcert.sh"), certs], check=True, timeout=60)
    e2e.STEP[0] = "starting two instances"
    shared = os.path.join(tmp, "photos")  # one directory for both, as a shared volume
    args = ["--db-threads", "2", "--drain-delay", "4000"]
    s1 = Server(binary, certs, url, ["--instance", "s1"] + args, shared)
    procs.append(s1)
    s2 = Server(binary, certs, url, ["--instance", "s2"] + args, shared)
    procs.append(s2)

    lb = free_port()
    cfg = os.path.join(tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write("global\n    maxconn 200\n"
                "defaults\n    mode tcp\n    timeout connect 5s\n"
                "    timeout client 60s\n    timeout server 60s\n"
                "frontend api\n    bind 127.0.0.1:%d\n    default_backend photonotes\n"
                "backend photonotes\n    balance roundrobin\n"
                "    option httpchk GET /ready\n    http-check expect status 200\n"
                "    default-server check check-ssl verify none inter 300 fall 1 rise 2\n"
                "    server s1 127.0.0.1:%d\n    server s2 127.0.0.1:%d\n"
                % (lb, s1.port, s2.port))
    e2e.STEP[0] = "haproxy"
    hap = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(hap)
    wait_port(lb, "haproxy")

    import ssl
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "dev-ca.pem"))
    via_lb, c1, c2 = Client(lb, ctx), Client(s1.port, ctx), Client(s2.port, ctx)
    cred = {"username": "scaled", "password": "correct horse"}
    via_lb.expect(201, "register through haproxy", "POST", "/v1/auth/register", body=cred)
    _, la = via_lb.expect(200, "login A through haproxy", "POST", "/v1/auth/login", body=cred)
    _, lb_ = via_lb.expect(200, "login B through haproxy", "POST", "/v1/auth/login", body=cred)
    a, b = la["token"], lb_["token"]

    ev = Events(via_lb, b)
    held = ev.r.getheader("X-Instance")
    check(held in ("s1", "s2"), "X-Instance of the event stream: %r" % held)
    ev.wait("the ready event", lambda e, d: e == "ready")
    # Round robin: within a few new connections one reaches the other instance.
    other = None
    for i in range(4):
        r, note = via_lb.expect(201, "create through haproxy", "POST", "/v1/notes", token=a,
                                device="lb-%d" % i, body={"title": "t%d" % i, "body": ""})
        ev.wait("note.created %d (made on %s) on the stream held by %s"
                % (note["id"], r.getheader("X-Instance"), held),
                lambda e, d, nid=note["id"]: e == "note" and d["id"] == nid)
        if r.getheader("X-Instance") != held:
            other = r.getheader("X-Instance")
            break
    check(other is not None, "haproxy never sent a request to the other instance")

    # Directly: a change on s1 and one on s2, both seen; a conflict across them.
    r, n = c1.expect(201, "create on s1", "POST", "/v1/notes", token=a,
                     body={"title": "direct", "body": "v1"})
    ev.wait("note.created from s1", lambda e, d: e == "note" and d["id"] == n["id"])
    c2.expect(200, "update on s2", "PUT", "/v1/notes/%d" % n["id"], token=a,
              headers={"If-Match": '"1"'}, body={"title": "direct", "body": "v2"})
    ev.wait("note.updated from s2",
            lambda e, d: e == "note" and d["id"] == n["id"] and d["note"]["version"] == 2)
    c1.expect(412, "stale If-Match on s1", "PUT", "/v1/notes/%d" % n["id"], token=b,
              headers={"If-Match": '"1"'}, body={"title": "direct", "body": "late"})

    # A photo uploaded on s1 is announced everywhere and served by s2.
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(256 * 1024)
    st, ph = e2e.upload(c1, a, n["id"], jpeg, "a.jpg")
    check(st == 201, "photo upload on s1: %d %r" % (st, ph))
    ev.wait("photo.added from s1", lambda e, d: e == "note" and d["type"] == "photo.added"
            and d["photo"]["id"] == ph["id"])
    st, _, _, body = c2.call("GET", ph["url"], token=b)
    check(st == 200 and body == jpeg, "the photo from s2: %d, %d bytes" % (st, len(body)))
    # Deleting a note on s2 while its photo commits on s1: the note lock
    # spans instances (a PostgreSQL advisory lock), so no file is left.
    seen = e2e.delete_races(c1, c2, a, shared)
    print("pg_cluster.py: note deletes on s2 racing uploads on s1: %r" % seen)

    # Logout on s1; s2 had A's token cached and must refuse it now.
    c2.expect(200, "A on s2 (caches the token)", "GET", "/v1/notes", token=a)
    c1.expect(204, "logout A on s1", "POST", "/v1/auth/logout", token=a)
    end = time.monotonic() + 10
    while c2.call("GET", "/v1/notes", token=a)[0] != 401:
        if time.monotonic() > end:
            raise Fail("s2 still accepts A's token 10 s after the logout on s1")
        time.sleep(0.05)
    ev.close()

    # Zero-downtime: s1 stops with a drain delay; /ready turns 503, HAProxy's
    # health check takes s1 out, and new connections all reach s2.
    s1.proc.send_signal(signal.SIGTERM)
    e2e.STEP[0] = "haproxy to send everything to s2 while s1 drains"
    end, streak = time.monotonic() + 3.5, 0
    while streak < 4:
        check(time.monotonic() < end, "haproxy still sends to s1 3.5 s after its SIGTERM")
        st, r, _, _ = via_lb.call("GET", "/v1/notes", token=b)
        check(st == 200, "during the drain: %d" % st)
        streak = streak + 1 if r.getheader("X-Instance") == "s2" else 0
    s1.stop()


def stop_all(procs):
    for p in reversed(procs):
        try:
            if isinstance(p, Server):
                p.stop()
            elif isinstance(p, tuple):
                _, pgdata, user = p
                subprocess.run(as_user([pg_bin("pg_ctl"), "-D", pgdata, "-m", "fast", "-w",
                                        "-t", "30", "stop"], user),
                               stdout=subprocess.DEVNULL, timeout=60)
            else:
                p.terminate()
                p.wait(timeout=10)
        except (Fail, subprocess.SubprocessError, OSError) as e:
            print("pg_cluster.py: while stopping: %s" % e, file=sys.stderr)
            if isinstance(p, Server):
                p.kill()
            elif not isinstance(p, tuple) and p.poll() is None:
                p.kill()


def main():
    if len(sys.argv) != 2:
        print("usage: pg_cluster.py BIN", file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="photonotes-pg-")
    procs = []
    timer = threading.Timer(150, lambda: (print("pg_cluster.py: FAIL: out of time, at: "
                                                + e2e.STEP[0], file=sys.stderr),
                                          stop_all(procs), shutil.rmtree(tmp, True),
                                          os._exit(1)))
    timer.start()
    rc = 0
    try:
        scenario(binary, tmp, procs)
    except (Fail, subprocess.SubprocessError) as e:
        print("pg_cluster.py: FAIL at %s: %s" % (e2e.STEP[0], e), file=sys.stderr)
        log = os.path.join(tmp, "pg.log")
        if os.path.exists(log):
            sys.stderr.write(open(log).read()[-2000:])
        rc = 1
    finally:
        stop_all(procs)
        timer.cancel()
        shutil.rmtree(tmp, ignore_errors=True)
    if rc == 0:
        print("pg_cluster.py: ok (2 instances on one PostgreSQL behind HAProxy: events across "
              "instances by LISTEN/NOTIFY, 412 across instances, a photo stored on one served by the other, logout seen by the other, /ready drain moves traffic)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
