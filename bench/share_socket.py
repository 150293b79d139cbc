#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""share_socket.py N PORT -- CMD...: binds 127.0.0.1:PORT (0: any), then
runs N copies of CMD that all inherit that one listening socket through
SERVER_STARTER_PORT (as under start_server), prints "port PORT" and the
children's pids on stdout, and on SIGTERM/SIGINT passes SIGTERM to them
and waits. The benchmark's launcher for several processes on one socket
(bench/scaling.py)."""
import os
import signal
import socket
import subprocess
import sys


def main():
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    n, port, cmd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[4:]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(511)
    port = s.getsockname()[1]
    fd = s.fileno()
    env = dict(os.environ, SERVER_STARTER_PORT="127.0.0.1:%d=%d" % (port, fd))
    kids = [subprocess.Popen(cmd, env=env, pass_fds=(fd,)) for _ in range(n)]
    s.close()  # the children hold it now
    print("port %d" % port)
    print("pids %s" % " ".join(str(k.pid) for k in kids), flush=True)

    def stop(sig, frame):
        for k in kids:
            if k.poll() is None:
                k.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rc = 0
    for k in kids:
        rc |= k.wait()
    return rc


if __name__ == "__main__":
    sys.exit(main())
