#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Scaling figures for bench/RESULTS.md: keep-alive GET /plaintext (wrk
-t1 -c64 on CPU 1, as scenario (f) of bench/run.sh) against
  1t  appsrv -t 1 on CPU 0,
  2t  appsrv -t 2 on CPUs 0-1,
  2p  two appsrv -t 1 processes on CPUs 0-1 sharing one inherited socket
      (bench/share_socket.py, SERVER_STARTER_PORT),
in SCALING_ROUNDS interleaved rounds (rotated order) of BENCH_SECONDS
each; medians of req/s and of requests per server CPU-second (utime +
stime of the server processes from /proc). Writes the section between
the scaling markers of bench/RESULTS.md (BENCH_OUT), replacing an older
one. Loopback only; only the processes started here are signalled."""
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPSRV = os.path.join(ROOT, "build", "appsrv")
SECS = int(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("SCALING_ROUNDS", "3"))
OUT = os.environ.get("BENCH_OUT", os.path.join(ROOT, "bench", "RESULTS.md"))
HZ = os.sysconf("SC_CLK_TCK")
BEGIN, END = "<!-- scaling: begin (bench/scaling.py) -->", "<!-- scaling: end -->"
ARGS = ["-q", "-c", "20000", "--no-request-ids", "-p", "0"]


def ticks(pids):
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return t


def start(kind):
    """Returns (proc, port, server pids)."""
    if kind == "2p":
        proc = subprocess.Popen(["taskset", "-c", "0,1", sys.executable,
                                 os.path.join(ROOT, "bench", "share_socket.py"), "2", "0", "--",
                                 APPSRV, "-t", "1"] + ARGS,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(proc.stdout.readline().split()[1])
        pids = [int(x) for x in proc.stdout.readline().split()[1:]]
    else:
        cpus, threads = ("0", "1") if kind == "1t" else ("0,1", "2")
        proc = subprocess.Popen(["taskset", "-c", cpus, APPSRV, "-t", threads] + ARGS,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()
        port = int(re.search(r":(\d+)$", line.strip()).group(1))
        pids = [proc.pid]
    for _ in range(100):  # ready once it answers
        r = subprocess.run(["curl", "-s", "--max-time", "1", "http://127.0.0.1:%d/plaintext" % port],
                           capture_output=True, text=True)
        if r.stdout == "Hello, World!":
            return proc, port, pids
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit("scaling: %s did not answer" % kind)


def run(kind):
    proc, port, pids = start(kind)
    try:
        c0 = ticks(pids)
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", "-d%ds" % SECS,
                              "http://127.0.0.1:%d/plaintext" % port],
                             capture_output=True, text=True, timeout=SECS + 30).stdout
        c1 = ticks(pids)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    errs = re.search(r"Socket errors: (.*)|Non-2xx.*", out)
    n = int(m.group(1))
    # wrk prints "X requests in Ys" with Y rounded: req/s from its own line.
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    cpu = (c1 - c0) / HZ
    per = n / cpu if cpu > 0 else float("nan")
    print("  %s: %9.0f req/s  %9.0f req/CPU-s  cpu %.2f s%s" %
          (kind, rps, per, cpu, ("  " + errs.group(0)) if errs else ""), file=sys.stderr)
    return rps, per


def main():
    kinds = ["1t", "2t", "2p"]
    res = {k: [] for k in kinds}
    load0 = os.getloadavg()[0]
    for r in range(ROUNDS):
        print("scaling round %d/%d" % (r + 1, ROUNDS), file=sys.stderr)
        for i in range(len(kinds)):
            k = kinds[(i + r) % len(kinds)]
            res[k].append(run(k))
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
           for k, v in res.items()}
    base = med["1t"]
    names = {"1t": "appsrv -t 1 (CPU 0)", "2t": "appsrv -t 2 (CPUs 0-1)",
             "2p": "2 × appsrv -t 1, one inherited socket (CPUs 0-1)"}
    lines = [BEGIN, "", "## Scaling: threads and processes on one socket (%s)" %
             time.strftime("%Y-%m-%d", time.gmtime()), "",
             "Keep-alive GET /plaintext, wrk -t1 -c64 on CPU 1, %d s runs, medians of %d "
             "interleaved rounds; req/CPU-s counts the server processes' CPU time only. "
             "Command: `python3 bench/scaling.py` (also run by `make bench`). "
             "2 vCPUs shared with other work: the load generator takes one of the two "
             "CPUs the 2-thread and 2-process servers use, so ×2 is out of reach and "
             "the figures are noisy; compare rows of one run." % (SECS, ROUNDS), "",
             "| server | req/s | ÷ 1 thread | req/CPU-s | ÷ 1 thread |", "|---|--:|--:|--:|--:|"]
    for k in kinds:
        rps, per = med[k]
        lines.append("| %s | %.0f | %.2f | %.0f | %.2f |" %
                     (names[k], rps, rps / base[0], per, per / base[1]))
    lines += ["", "Load average (1 min) %.1f before, %.1f after: other work shared the CPUs."
              % (load0, os.getloadavg()[0])]
    lines += ["", "Per round (req/s, req/CPU-s): " + "; ".join(
        "%s %s" % (k, ", ".join("%.0f/%.0f" % x for x in res[k])) for k in kinds), "", END]
    section = "\n".join(lines) + "\n"
    print(section)
    text = open(OUT).read() if os.path.exists(OUT) else ""
    if BEGIN in text and END in text:
        a, b = text.index(BEGIN), text.index(END) + len(END)
        text = text[:a] + section.rstrip("\n") + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(OUT, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
