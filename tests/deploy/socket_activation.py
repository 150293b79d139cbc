#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""systemd socket activation and readiness, with systemd's own tool:
systemd-socket-activate binds a loopback port (a fixed one: it takes no
port 0, so a free one is picked and the run retried on EADDRINUSE), hands
it to the CLI as fd 3 with LISTEN_FDNAMES, and curl talks to it. The test
binds the NOTIFY_SOCKET (a path, then an abstract @name) and checks
READY=1 once listening and STOPPING=1 at SIGTERM. Also: unnamed sockets
in order (HTTP, line), a socket named "https" served over TLS, a foreign
LISTEN_PID ignored, a malformed SERVER_STARTER_PORT refused."""
import os
import re
import signal
import socket
import subprocess
import sys

from common import (APPSRV, LISTEN_RE, SCRATCH, Fail, check, read_lines_until, run_checks,
                    spawn_cli, spawn_on_free_ports, stopped_cleanly, wait_exit)


def notify_socket(abstract):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = "@appsrv-deploy-%d" % os.getpid()
        s.bind("\0" + name[1:])
    else:
        name = os.path.join(SCRATCH, "notify-%d.sock" % os.getpid())
        if os.path.exists(name):
            os.unlink(name)
        s.bind(name)
    s.settimeout(5)
    return s, name


def expect_datagram(s, want):
    try:
        got = s.recv(4096).decode()
    except socket.timeout:
        raise Fail("no datagram %s within 5 s" % want)
    check(got == want, "notify datagram %r, want %r" % (got, want))


def activate(names, extra_env, nports, args=("-t", "1")):
    """Runs the CLI under systemd-socket-activate on nports fixed ports
    (retried with new ones when taken). The tool executes the CLI at the
    first connection, as systemd does: the caller's first request starts
    it. Returns (proc, ports)."""
    def cmd(ports):
        c = ["systemd-socket-activate"]
        for p in ports:
            c += ["-l", "127.0.0.1:%d" % p]
        if names:
            c += ["--fdname=" + names]
        for k, v in extra_env.items():
            c += ["-E", "%s=%s" % (k, v)]
        return c + [APPSRV] + list(args)

    return spawn_on_free_ports(
        nports, cmd,
        lambda ports: re.compile(r"Listening on 127.0.0.1:%d as %d" % (ports[-1], 2 + nports)),
        "systemd-socket-activate's listening lines")


def first_contact(proc, port, pattern=LISTEN_RE, what="the listening line"):
    """Connects (systemd-socket-activate then executes the CLI) and waits
    for the CLI's listening lines; returns them."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    _, lines = read_lines_until(proc, pattern, 10, what)
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    check(got.startswith(b"HTTP/1.1 200 OK"), "first request: %r" % got[:60])
    return lines


def curl(url, insecure=False):
    r = subprocess.run(["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}"] +
                       (["-k"] if insecure else []) + [url],
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, "curl %s: %s" % (url, r.stderr))
    return r.stdout.rsplit("\n", 1)


def http_and_line(abstract):
    ns, name = notify_socket(abstract)
    try:
        proc, ports = activate("http:line", {"NOTIFY_SOCKET": name}, 2)
        try:
            first_contact(proc, ports[0])
            expect_datagram(ns, "READY=1")
            body, code = curl("http://127.0.0.1:%d/health" % ports[0])
            check(code == "200" and body == "OK", "GET /health: %s %r" % (code, body))
            body, code = curl("http://127.0.0.1:%d/ready" % ports[0])
            check(code == "200", "GET /ready: %s" % code)
            with socket.create_connection(("127.0.0.1", ports[1]), timeout=5) as s:
                s.sendall(b"PING\n")
                got = s.recv(100)
                check(got == b"200 OK PONG\n", "line PING: %r" % got)
            proc.send_signal(signal.SIGTERM)
            expect_datagram(ns, "STOPPING=1")
            rc = wait_exit(proc, 10, "appsrv after SIGTERM")
            check(rc == 0, "exit status %d" % rc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        ns.close()
        if not abstract and os.path.exists(name):
            os.unlink(name)


def unnamed_in_order():
    """Without names (systemd's "unknown"): first HTTP, second line."""
    proc, ports = activate(None, {}, 2)
    with stopped_cleanly(proc):
        lines = first_contact(proc, ports[0], re.compile("listening on line://"),
                              "both listening lines")
        text = "\n".join(lines)
        check("http://127.0.0.1:%d" % ports[0] in text, "http line: %r" % text)
        check("line://127.0.0.1:%d" % ports[1] in text, "line line: %r" % text)


def https_inherited():
    """A socket named "https" with --tls-cert: HTTPS on the inherited fd."""
    probe = subprocess.run([APPSRV, "-p", "0", "--tls-cert", "/nonexistent", "--tls-key",
                            "/nonexistent"], capture_output=True, text=True, timeout=10)
    if "no TLS" in probe.stderr:
        print("  https_inherited: this build has no TLS: skipped")
        return
    cert, key = os.path.join(SCRATCH, "cert.pem"), os.path.join(SCRATCH, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-keyout", key, "-out", cert], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "openssl req: %s" % r.stderr)
    proc, ports = activate("https", {}, 1, args=("-t", "1", "--tls-cert", cert, "--tls-key", key))
    with stopped_cleanly(proc):
        # curl's connection makes the tool execute the CLI.
        body, code = curl("https://127.0.0.1:%d/health" % ports[0], insecure=True)
        check(code == "200" and body == "OK", "GET /health over TLS: %s %r" % (code, body))
        m, _ = read_lines_until(proc, LISTEN_RE, 10, "the listening line")
        check(m.group(1) == "https" and int(m.group(3)) == ports[0],
              "listening line: %s" % m.group(0))


def foreign_listen_pid():
    """LISTEN_PID of another process: ignored, the CLI binds --port."""
    env = dict(os.environ, LISTEN_PID="1", LISTEN_FDS="1", LISTEN_FDNAMES="http")
    proc, port = spawn_cli(["-t", "1", "-p", "0"], env=env)
    proc.send_signal(signal.SIGTERM)
    check(wait_exit(proc, 10, "appsrv") == 0, "exit status")
    check(port > 0, "port")


def bad_listen_fds():
    env = dict(os.environ, SERVER_STARTER_PORT="8080=notanumber")
    r = subprocess.run([APPSRV, "-p", "0"], env=env, capture_output=True, text=True, timeout=10)
    check(r.returncode == 1, "exit %d, want 1" % r.returncode)
    check("SERVER_STARTER_PORT" in r.stderr and "Invalid argument" in r.stderr,
          "stderr: %r" % r.stderr)


if __name__ == "__main__":
    ok = run_checks("socket_activation", [
        ("http_and_line_notify_path", lambda: http_and_line(False)),
        ("http_and_line_notify_abstract", lambda: http_and_line(True)),
        ("unnamed_in_order", unnamed_in_order),
        ("https_inherited", https_inherited),
        ("foreign_listen_pid", foreign_listen_pid),
        ("bad_starter_port", bad_listen_fds),
    ])
    sys.exit(0 if ok else 1)
