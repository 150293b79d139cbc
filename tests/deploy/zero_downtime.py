#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Zero-downtime restarts under load: the CLI runs under start_server
(Server::Starter; Debian libserver-starter-perl), which owns the
listening socket and passes it through SERVER_STARTER_PORT. While h2load
(--h1, keep-alive connections) and ab (a new connection per request) load
it, start_server gets SIGHUP RESTARTS times (default 10): each time it
starts a new CLI and, once that runs, sends SIGTERM to the old one, which
drains. Checked: no failed or errored request, every response a 2xx, every
old worker exited 0, and the kernel's listen-queue drop counters
(nstat TcpExtListenDrops, TcpExtListenOverflows) unchanged."""
import os
import re
import signal
import subprocess
import sys
import time

from common import APPSRV, Fail, check, get, run_checks, spawn_on_free_ports, wait_exit

RESTARTS = int(os.environ.get("RESTARTS", "10"))
PERIOD = 1.5  # start_server waits --interval (1 s) before it stops the old one


def nstat():
    out = subprocess.run(["nstat", "-asz", "TcpExtListenDrops", "TcpExtListenOverflows"],
                         capture_output=True, text=True, timeout=10).stdout
    vals = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("TcpExt"):
            vals[parts[0]] = int(parts[1])
    return vals


def start_server():
    proc, ports = spawn_on_free_ports(
        1, lambda ports: ["start_server", "--port=127.0.0.1:%d" % ports[0], "--interval=1", "--",
                          APPSRV, "-t", "1", "-p", "0", "--no-request-ids"],
        lambda ports: re.compile("listening on http://127.0.0.1:%d" % ports[0]),
        "the CLI under start_server")
    return proc, ports[0]


def parse_h2load(out):
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    c = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m is None or c is None:
        raise Fail("h2load output: %r" % out[-500:])
    return [int(x) for x in m.groups()], [int(x) for x in c.groups()]


def restarts_under_load():
    before = nstat()
    proc, port = start_server()
    seconds = int(RESTARTS * PERIOD + 3)
    url = "http://127.0.0.1:%d/plaintext" % port
    try:
        check(get(port, "/ready")[0] == 200, "/ready")
        h2 = subprocess.Popen(["h2load", "--h1", "-t", "1", "-c", "8", "-D", str(seconds), url],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ab = subprocess.Popen(["ab", "-q", "-t", str(seconds), "-n", "100000000", "-c", "8", url],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1)
        for _ in range(RESTARTS):
            proc.send_signal(signal.SIGHUP)
            time.sleep(PERIOD)
        h2out = h2.communicate(timeout=seconds + 30)[0]
        about = ab.communicate(timeout=seconds + 30)[0]
        proc.send_signal(signal.SIGTERM)
        rc = wait_exit(proc, 20, "start_server after SIGTERM")
        log = proc.stderr.read().decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = nstat()
    (total, started, done, ok, failed, errored, tmo), (s2, s3, s4, s5) = parse_h2load(h2out)
    abm = {k: int(v) for k, v in re.findall(r"(Complete requests|Failed requests|Non-2xx "
                                             r"responses):\s+(\d+)", about)}
    spawned = len(re.findall(r"new worker is now running", log))
    died = re.findall(r"old worker \d+ died, status:(\d+)", log)
    drops = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    print("  %d restarts (%d old workers exited, statuses %s)" %
          (spawned, len(died), ",".join(sorted(set(died))) or "-"))
    print("  h2load --h1 -c 8 (keep-alive): %d done, %d succeeded, %d failed, %d errored, "
          "%d timeout; 2xx %d, 3xx %d, 4xx %d, 5xx %d" %
          (done, ok, failed, errored, tmo, s2, s3, s4, s5))
    print("  ab -c 8 (new connections): %d complete, %d failed, %d non-2xx (exit %d)" %
          (abm.get("Complete requests", -1), abm.get("Failed requests", -1),
           abm.get("Non-2xx responses", 0), ab.returncode))
    print("  nstat: %s" % ", ".join("%s +%d" % kv for kv in sorted(drops.items())))
    check(rc == 0, "start_server exit %d" % rc)
    check(spawned == RESTARTS, "%d restarts, want %d: %s" % (spawned, RESTARTS, log[-800:]))
    check(len(died) == RESTARTS and set(died) == {"0"}, "old workers: %r" % died)
    check(failed == 0 and errored == 0 and tmo == 0 and ok == done and s2 == done,
          "h2load: %s" % h2out[-600:])
    check(done > 0 and started - done <= 8, "h2load: %d started, %d done" % (started, done))
    check(ab.returncode == 0 and abm.get("Failed requests") == 0 and
          abm.get("Complete requests", 0) > 0 and abm.get("Non-2xx responses", 0) == 0,
          "ab: %s" % about[-600:])
    check(all(v == 0 for v in drops.values()) and len(drops) == 2, "listen drops: %r" % drops)


if __name__ == "__main__":
    ok = run_checks("zero_downtime", [("restarts_under_load", restarts_under_load)])
    sys.exit(0 if ok else 1)
