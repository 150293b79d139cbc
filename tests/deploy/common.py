# SPDX-License-Identifier: MIT
"""Helpers for the deployment tests (make deploy-test): the CLI binary,
free loopback ports, spawning with the listening line awaited, raw HTTP/1.1
over one socket, and a bounded wait that says what it waited for.
Loopback only; every wait has a deadline."""
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

APPSRV = os.environ.get("APPSRV_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "appsrv")
SCRATCH = os.environ.get("DEPLOY_SCRATCH", "/tmp")

LISTEN_RE = re.compile(r"appsrv: listening on (\w+)://([\d.]+|\[[^\]]+\]):(\d+)")


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def free_port():
    """A port that was free a moment ago (callers retry on EADDRINUSE)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_lines_until(proc, pattern, timeout, what):
    """Reads proc's stderr lines until one matches; returns (match, lines)."""
    deadline = time.monotonic() + timeout
    lines = []
    os.set_blocking(proc.stderr.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        try:
            chunk = proc.stderr.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                lines.append(text)
                m = pattern.search(text)
                if m:
                    return m, lines
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.01)
    raise Fail("timed out after %.1f s waiting for %s; exit=%s; stderr so far: %r"
               % (timeout, what, proc.poll(), lines + [buf.decode(errors="replace")]))


def spawn_cli(args, env=None, wrapper=None):
    """Starts the CLI (under wrapper, e.g. systemd-socket-activate) and
    waits for its HTTP listening line. Returns (proc, port)."""
    cmd = (wrapper or []) + [APPSRV] + args
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    m, _ = read_lines_until(proc, LISTEN_RE, 10, "the listening line of " + " ".join(cmd))
    return proc, int(m.group(3))


def spawn_on_free_ports(nports, make_cmd, make_pattern, what):
    """Runs make_cmd(ports) (a tool that binds fixed ports: it takes no
    port 0) until make_pattern(ports) shows on its stderr, with new free
    ports when they were taken meanwhile. Returns (proc, ports)."""
    for _ in range(10):
        ports = [free_port() for _ in range(nports)]
        proc = subprocess.Popen(make_cmd(ports), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            read_lines_until(proc, make_pattern(ports), 10, what)
            return proc, ports
        except Fail as e:
            proc.kill()
            proc.wait()
            if "in use" not in str(e):
                raise
    raise Fail("no free port in 10 attempts")


def wait_exit(proc, timeout, what):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise Fail("%s: still running after %.1f s" % (what, timeout))


@contextlib.contextmanager
def stopped_cleanly(proc, what="appsrv"):
    """The block runs against proc; then SIGTERM must end it with status 0
    within 10 s. Killed whatever happens (never left behind)."""
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        rc = wait_exit(proc, 10, what + " after SIGTERM")
        check(rc == 0, "%s: exit status %d" % (what, rc))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def connect(port, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def request(path, close=False):
    return ("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n"
            % (path, "Connection: close\r\n" if close else "")).encode()


def read_response(s):
    """One HTTP/1.1 response with Content-Length: (status, headers, body).
    Raises ConnectionResetError on a reset, Fail on EOF before the end."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise Fail("EOF before a response head (%d bytes: %r)" % (len(buf), buf[:80]))
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise Fail("EOF inside a body")
        rest += chunk
    return status, headers, rest[:n]


def get(port, path, close=True):
    s = connect(port)
    try:
        s.sendall(request(path, close))
        return read_response(s)
    finally:
        s.close()


def report(name, passed, failed, extra=""):
    print("%s: %d passed, %d failed%s" % (name, passed, failed, (" " + extra) if extra else ""))
    sys.stdout.flush()


def run_checks(name, checks):
    """Runs each (label, fn); prints one line per failure and the counts."""
    passed = failed = 0
    for label, fn in checks:
        try:
            fn()
            passed += 1
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed += 1
            print("FAIL %s/%s: %s: %s" % (name, label, type(e).__name__, e))
    report(name, passed, failed)
    return failed == 0
