#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""--proxy-protocol on a socket the CLI inherits (appsrv_listen_opts_fd()):
systemd-socket-activate binds a loopback port and hands it to the CLI as
fd 3; a connection that starts with a PROXY v1 or v2 header is served and
logged with the header's client address, one without is closed without
an answer. Also with start_server's SERVER_STARTER_PORT."""
import os
import re
import socket
import subprocess
import struct
import sys

from common import (APPSRV, LISTEN_RE, check, read_lines_until, run_checks,
                    spawn_on_free_ports, stopped_cleanly)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, sport):
    return ("PROXY TCP4 %s 127.0.0.1 %d 80\r\n" % (src, sport)).encode()


def v2(src, sport):
    addrs = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, 80)
    return V2_SIG + b"\x21\x11" + struct.pack("!H", len(addrs)) + addrs


def exchange(port, pre, timeout=5):
    """Sends pre then GET /health (Connection: close); returns all bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(pre + b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


def served_with_client(proc, port, pre, client):
    got = exchange(port, pre)
    check(got.startswith(b"HTTP/1.1 200 OK"), "with a PROXY header: %r" % got[:60])
    _, lines = read_lines_until(proc, re.compile(re.escape(client) + r" .*GET /health"), 10,
                                "the access-log line of client %s" % client)
    return lines


def check_proxy_listener(proc, port):
    served_with_client(proc, port, v1("203.0.113.7", 5555), "203.0.113.7")
    served_with_client(proc, port, v2("198.51.100.20", 61000), "198.51.100.20")
    got = exchange(port, b"")
    check(got == b"", "without a PROXY header, want no answer: %r" % got[:60])


def systemd_activation():
    """systemd-socket-activate executes the CLI at the first connection:
    that one carries a PROXY v1 header."""
    def cmd(ports):
        return ["systemd-socket-activate", "-l", "127.0.0.1:%d" % ports[0], "--fdname=http",
                APPSRV, "-t", "1", "--proxy-protocol", "--access-log"]

    proc, ports = spawn_on_free_ports(
        1, cmd, lambda ports: re.compile(r"Listening on 127.0.0.1:%d as 3" % ports[0]),
        "systemd-socket-activate's listening line")
    with stopped_cleanly(proc):
        lines = served_with_client(proc, ports[0], v1("192.0.2.1", 1234), "192.0.2.1")
        m = [LISTEN_RE.search(x) for x in lines if LISTEN_RE.search(x)]
        check(m and int(m[0].group(3)) == ports[0], "listening line: %r" % lines)
        check_proxy_listener(proc, ports[0])


def server_starter():
    """SERVER_STARTER_PORT: the CLI binds nothing itself."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    fd = lsock.fileno()
    os.set_inheritable(fd, True)
    env = dict(os.environ, SERVER_STARTER_PORT="127.0.0.1:%d=%d" % (port, fd))
    proc = subprocess.Popen([APPSRV, "-t", "1", "--proxy-protocol", "--access-log"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, pass_fds=(fd,))
    lsock.close()
    with stopped_cleanly(proc):
        m, _ = read_lines_until(proc, LISTEN_RE, 10, "the listening line")
        check(int(m.group(3)) == port, "listening line: %s" % m.group(0))
        check_proxy_listener(proc, port)


if __name__ == "__main__":
    ok = run_checks("inherited_proxy", [
        ("systemd_activation", systemd_activation),
        ("server_starter", server_starter),
    ])
    sys.exit(0 if ok else 1)
