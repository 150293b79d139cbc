#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/report.py RAW - turn bench/run.sh's raw lines into RESULTS.md.

Raw lines are tab-separated:
  RUN    server scenario round cpu_ticks clk_tck {wrk json}
  IDLE   server "IDLE key=value ..."        (from idle_clients)
  IR     server requests ir_short ir_long    (callgrind totals)
  WSRUN  server scenario round cpu_ticks clk_tck {ws_load json}
  WSIDLE server "WSIDLE key=value ..."      (from ws_load -i)
  NOECHO server
  LOGLINES round lines               (appsrv --access-log: lines written)
  TLSRUN server scenario round cpu_ticks clk_tck "TLSC key=value ..." (tls_client)
  TLSIDLE server "TLSIDLE key=value ..."  (tls_client -m idle)
  NOTE   text
  FACT   key value
Medians are taken per (server, scenario) over the rounds, for each metric
separately. Standard library only.
"""
import json
import statistics
import sys

NAMES = {
    "appsrv": "**appsrv**",
    "appsrv2": "**appsrv -t 2**",
    "appsrv_log": "appsrv --access-log (to a file)",
    "appsrv_metrics": "appsrv --metrics",
    "appsrv_ids": "appsrv, request IDs on",
    "limit": "limit (bare epoll)",
    "nginx": "nginx",
    "h2o": "h2o",
    "lighttpd": "lighttpd",
    "mhd": "libmicrohttpd",
    "civetweb": "civetweb ¹",
    "evhttp": "libevent evhttp",
    "wslimit": "ws limit (bare epoll)",
    "wsnode": "Node 20 + ws",
}
WS_ORDER = ["appsrv", "wslimit", "wsnode"]
WS_TITLES = {
    "wsa": "(wsa) WebSocket echo, 32-byte text messages",
    "wsb": "(wsb) WebSocket echo, 64 KiB binary messages",
}
ORDER = ["appsrv", "limit", "nginx", "h2o", "lighttpd", "mhd", "civetweb", "evhttp"]
PEERS = ["nginx", "h2o", "lighttpd", "mhd", "civetweb", "evhttp"]
TITLES = {
    "a": "(a) keep-alive GET /plaintext",
    "b": "(b) pipelined GET /plaintext",
    "c": "(c) a new connection per request (Connection: close)",
    "e": "(e) POST /echo, keep-alive",
}


def fmt_n(x):
    if x is None:
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_r(x):
    return "–" if x is None else f"{x:.2f}"


def fmt_ms(x):
    # wrk records no latency for some pipelined answers: 0 means "none"
    return "–" if not x else f"{x:.1f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    runs = {}  # (srv, scen) -> list of dicts
    idle, ir, notes, facts, noecho = {}, {}, [], {}, set()
    loglines = {}
    tls_idle = {}
    wsruns, wsidle = {}, {}
    for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
        f = line.rstrip("\n").split("\t")
        if f[0] == "RUN" and len(f) == 7:
            srv, scen, rnd, ticks, hz, js = f[1], f[2], int(f[3]), int(f[4]), int(f[5]), f[6]
            j = json.loads(js)
            dur = j["duration_us"] / 1e6
            cpu = ticks / hz
            runs.setdefault((srv, scen), []).append({
                "rps": j["requests"] / dur if dur > 0 else 0.0,
                "per_cpu": j["requests"] / cpu if cpu > 0 else None,
                "util": cpu / dur if dur > 0 else None,
                "p99": j["p99_us"] / 1000.0,
                "errors": {k[4:]: v for k, v in j.items() if k.startswith("err_") and v},
                "round": rnd,
            })
        elif f[0] == "IDLE" and len(f) == 3:
            kv = dict(x.split("=", 1) for x in f[2].split()[1:])
            idle[f[1]] = {k: float(v) for k, v in kv.items()}
        elif f[0] == "TLSRUN" and len(f) == 7:
            srv, scen, rnd, ticks, hz = f[1], f[2], int(f[3]), int(f[4]), int(f[5])
            kv = dict(x.split("=", 1) for x in f[6].split()[1:])
            cnt, secs, cpu = int(kv["count"]), float(kv["secs"]), ticks / hz
            runs.setdefault((srv, scen), []).append({
                "rps": cnt / secs if secs > 0 else 0.0,
                "per_cpu": cnt / cpu if cpu > 0 else None,
                "util": cpu / secs if secs > 0 else None,
                "p99": 0,
                "errors": {"failed": int(kv["errors"])} if int(kv["errors"]) else {},
                "resumed": int(kv.get("resumed", 0)) / cnt if cnt else 0.0,
                "round": rnd,
            })
        elif f[0] == "TLSIDLE" and len(f) == 3:
            kv = dict(x.split("=", 1) for x in f[2].split()[1:])
            tls_idle[f[1]] = {k: float(v) for k, v in kv.items()}
        elif f[0] == "WSRUN" and len(f) == 7:
            srv, scen, ticks, hz, j = f[1], f[2], int(f[4]), int(f[5]), json.loads(f[6])
            dur, cpu = j["duration_us"] / 1e6, ticks / hz
            wsruns.setdefault((srv, scen), []).append({
                "mps": j["msgs"] / dur if dur > 0 else 0.0,
                "per_cpu": j["msgs"] / cpu if cpu > 0 else None,
                "util": cpu / dur if dur > 0 else None,
                "p50": j["p50_us"] / 1000.0, "p99": j["p99_us"] / 1000.0,
                "errors": j["errors"],
            })
        elif f[0] == "WSIDLE" and len(f) == 3:
            kv = dict(x.split("=", 1) for x in f[2].split()[1:])
            wsidle[f[1]] = {k: float(v) for k, v in kv.items()}
        elif f[0] == "IR" and len(f) == 5:
            n, lo, hi = int(f[2]), int(f[3]), int(f[4])
            ir[f[1]] = (hi - lo) / n
        elif f[0] == "LOGLINES" and len(f) == 3:
            loglines[int(f[1])] = int(f[2])
        elif f[0] == "NOECHO":
            noecho.add(f[1])
        elif f[0] == "NOTE":
            notes.append(f[1])
        elif f[0] == "FACT" and len(f) == 3:
            facts[f[1]] = f[2]

    def med(srv, scen, key):
        vals = [r[key] for r in runs.get((srv, scen), []) if r[key] is not None]
        return statistics.median(vals) if vals else None

    def wmed(srv, scen, key):
        vals = [r[key] for r in wsruns.get((srv, scen), []) if r[key] is not None]
        return statistics.median(vals) if vals else None

    def rng(srv, scen, key):
        vals = [r[key] for r in runs.get((srv, scen), []) if r[key] is not None]
        return (min(vals), max(vals)) if len(vals) > 1 else None

    out = []
    w = out.append
    w("# libappsrv benchmark results")
    w("")
    w(f"Generated by `{facts.get('command', 'bench/run.sh')}` on {facts.get('date', '?')}. "
      "Method and how to read the tables: [bench/README.md](README.md).")
    w("")
    w(f"Load average at start {facts.get('load_start', '?')}, at end {facts.get('load_end', '?')} "
      f"(on {facts.get('nproc', '?')} CPUs): anything else running on the machine makes "
      "these numbers noisy; compare ratios within one run, not across runs.")
    w("")

    # ------------------------------------------------------------ targets
    checks = []
    a_lim = ratio(med("appsrv", "a", "per_cpu"), med("limit", "a", "per_cpu"))

    def ahead(scen, key):
        mine = med("appsrv", scen, key)
        worst = None
        for p in PEERS:
            v = med(p, scen, key)
            if mine is None or v is None:
                continue
            rr = mine / v
            if worst is None or rr < worst[1]:
                worst = (p, rr)
        return worst

    def status(ok):
        return "n/a" if ok is None else ("met" if ok else "**NOT met**")

    if med("appsrv", "a", "per_cpu") is not None:
        checks.append(("(a) keep-alive: req/CPU-s ≥ 0.9 × limit",
                       f"{fmt_r(a_lim)} × limit", status(None if a_lim is None else a_lim >= 0.9)))
        wpeer = ahead("a", "per_cpu")
        if wpeer:
            checks.append(("(a) keep-alive: req/CPU-s ahead of every peer",
                           f"closest: {NAMES[wpeer[0]]} (appsrv = {wpeer[1]:.2f} ×)",
                           status(wpeer[1] > 1.0)))
    b_lim = ratio(med("appsrv", "b", "rps"), med("limit", "b", "rps"))
    if b_lim is not None:
        checks.append((f"(b) pipelined: req/s ≥ 0.8 × limit", f"{b_lim:.2f} × limit",
                       status(b_lim >= 0.8)))
    wpeer = ahead("c", "per_cpu")
    if wpeer:
        checks.append(("(c) connection per request: req/CPU-s ahead of every peer",
                       f"closest: {NAMES[wpeer[0]]} (appsrv = {wpeer[1]:.2f} ×)",
                       status(wpeer[1] > 1.0)))
    if "appsrv" in idle:
        d = idle["appsrv"]
        ok = d["kib_per_conn"] <= 0.5 and d["probe_ms"] >= 0 and d["answered"] == d["n"]
        checks.append((f"(d) {int(d['n']):,} idle connections: ≤ 0.5 KiB RSS each, new request answered",
                       f"{d['kib_per_conn']:.3f} KiB/conn, new request "
                       + (f"{d['probe_ms']:.2f} ms" if d["probe_ms"] >= 0 else "NOT answered"),
                       status(ok)))
    wpeer = ahead("e", "per_cpu")
    if wpeer:
        checks.append(("(e) POST /echo: req/CPU-s ahead of every peer that can echo",
                       f"closest: {NAMES[wpeer[0]]} (appsrv = {wpeer[1]:.2f} ×)",
                       status(wpeer[1] > 1.0)))
    for s, what in [("appsrv_log", "access log on (to a file)"), ("appsrv_metrics", "metrics on")]:
        g_r = ratio(med(s, "a", "per_cpu"), med("appsrv", "a", "per_cpu"))
        if g_r is not None:
            checks.append((f"(g) keep-alive, {what}: req/CPU-s within 10 % of both off",
                           f"{g_r:.2f} × off", status(g_r >= 0.9)))
    for scen, want, label in [("wsa", 0.8, "(wsa) WebSocket 32-byte echo: msg/CPU-s ≥ 0.8 × limit"),
                              ("wsb", 0.5, "(wsb) WebSocket 64 KiB echo: msg/CPU-s ≥ 0.5 × limit")]:
        rr = ratio(wmed("appsrv", scen, "per_cpu"), wmed("wslimit", scen, "per_cpu"))
        if rr is not None:
            node = ratio(wmed("appsrv", scen, "per_cpu"), wmed("wsnode", scen, "per_cpu"))
            extra = f"; {node:.2f} × Node ws" if node is not None else ""
            checks.append((label, f"{rr:.2f} × limit{extra}", status(rr >= want)))
    if "appsrv" in wsidle:
        d = wsidle["appsrv"]
        ok = d["kib_per_conn"] <= 1.0 and d["open"] == d["n"] and d["probe_ms"] >= 0
        checks.append((f"(wsd) {int(d['n']):,} idle WebSocket connections: ≤ 1 KiB RSS each",
                       f"{d['kib_per_conn']:.3f} KiB/conn, echo "
                       + (f"{d['probe_ms']:.2f} ms" if d["probe_ms"] >= 0 else "NOT answered"),
                       status(ok)))
    f_r = ratio(med("appsrv2", "a", "rps"), med("appsrv", "a", "rps"))
    if f_r is not None:
        checks.append(("(f) req/s grows from 1 to 2 worker threads", f"× {f_r:.2f}",
                       status(f_r > 1.0)))
    if checks:
        w("## Performance targets")
        w("")
        w("| target | measured (medians) | status |")
        w("|---|---|---|")
        for c in checks:
            w(f"| {c[0]} | {c[1]} | {c[2]} |")
        w("")

    # ------------------------------------------------------------ a b c e
    cfg = facts.get("config", "")
    for scen in ["a", "b", "c", "e"]:
        servers = [s for s in ORDER if (s, scen) in runs]
        if not servers:
            continue
        w(f"## {TITLES[scen]}")
        w("")
        lim_rps, lim_cpu = med("limit", scen, "rps"), med("limit", scen, "per_cpu")
        app_rps, app_cpu = med("appsrv", scen, "rps"), med("appsrv", scen, "per_cpu")
        w("| server | req/s | req/CPU-s (min–max) | server CPU | req/s ÷ limit | "
          "req/CPU-s ÷ limit | appsrv ÷ this, req/s | appsrv ÷ this, req/CPU-s | "
          "p99 ms | errors | runs |")
        w("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|")
        for s in servers:
            rps, pc = med(s, scen, "rps"), med(s, scen, "per_cpu")
            r = rng(s, scen, "per_cpu")
            rtxt = f" ({fmt_n(r[0])}–{fmt_n(r[1])})" if r else ""
            util = med(s, scen, "util")
            errs = {}
            for x in runs[(s, scen)]:
                for k, v in x["errors"].items():
                    errs[k] = errs.get(k, 0) + v
            etxt = ", ".join(f"{k} {v}" for k, v in sorted(errs.items())) or "0"
            w(f"| {NAMES[s]} | {fmt_n(rps)} | {fmt_n(pc)}{rtxt} | "
              f"{'–' if util is None else f'{util * 100:.0f}%'} | "
              f"{fmt_r(ratio(rps, lim_rps))} | {fmt_r(ratio(pc, lim_cpu))} | "
              f"{fmt_r(ratio(app_rps, rps))} | {fmt_r(ratio(app_cpu, pc))} | "
              f"{fmt_ms(med(s, scen, 'p99'))} | {etxt} | {len(runs[(s, scen)])} |")
        if scen == "e":
            ne = [NAMES[s] for s in ORDER if s in noecho]
            if ne:
                w("")
                w(f"Cannot echo a request body without a scripting module, so not run: {', '.join(ne)}.")
        w("")

    # ------------------------------------------------------------ d
    if idle:
        n = int(next(iter(idle.values()))["n"])
        w(f"## (d) {n:,} idle keep-alive connections (after one request each)")
        w("")
        w("| server | answered | still open | RSS before | RSS after | KiB per connection | "
          f"new request while {n:,} are open (median / max of 5) | set-up |")
        w("|---|--:|--:|--:|--:|--:|--:|--:|")
        for s in ORDER:
            if s not in idle:
                continue
            d = idle[s]
            if d["probe_ms"] < 0:
                probe = "**not answered in 5 s**"
            else:
                probe = f"{d['probe_ms']:.2f} / {d.get('probe_max_ms', d['probe_ms']):.2f} ms"
            w(f"| {NAMES[s]} | {int(d['answered'])} | {int(d['open_after'])} | "
              f"{d['rss_before_kb'] / 1024:.1f} MiB | {d['rss_after_kb'] / 1024:.1f} MiB | "
              f"{d['kib_per_conn']:.3f} | {probe} | {d['setup_s']:.1f} s |")
        w("")
        w("KiB per connection = (VmRSS after − VmRSS before) ÷ answered, summed over the server's "
          "processes; the new request is timed from connect() to the last byte of the answer.")
        if "lighttpd" in idle and idle["lighttpd"]["probe_ms"] < 0:
            w("lighttpd caps server.max-connections at max-fds ÷ 2, which is 10,000 under this "
              "machine's hard limit of 20,000 open files: the new request is connection 10,001 "
              "and waits in the listen backlog.")
        w("")

    # ------------------------------------------------------------ ws
    for scen in ["wsa", "wsb"]:
        servers = [s for s in WS_ORDER if (s, scen) in wsruns]
        if not servers:
            continue
        w(f"## {WS_TITLES[scen]}")
        w("")
        lim = wmed("wslimit", scen, "per_cpu")
        app = wmed("appsrv", scen, "per_cpu")
        w("| server | msg/s | msg/CPU-s (min–max) | server CPU | msg/CPU-s ÷ limit | "
          "appsrv ÷ this, msg/CPU-s | round trip p50 / p99 ms | errors | runs |")
        w("|---|--:|--:|--:|--:|--:|--:|---|--:|")
        for s in servers:
            vals = [r["per_cpu"] for r in wsruns[(s, scen)] if r["per_cpu"] is not None]
            rtxt = f" ({fmt_n(min(vals))}–{fmt_n(max(vals))})" if len(vals) > 1 else ""
            pc, util = wmed(s, scen, "per_cpu"), wmed(s, scen, "util")
            errs = sum(r["errors"] for r in wsruns[(s, scen)])
            w(f"| {NAMES[s]} | {fmt_n(wmed(s, scen, 'mps'))} | {fmt_n(pc)}{rtxt} | "
              f"{'–' if util is None else f'{util * 100:.0f}%'} | {fmt_r(ratio(pc, lim))} | "
              f"{fmt_r(ratio(app, pc))} | {wmed(s, scen, 'p50'):.2f} / {wmed(s, scen, 'p99'):.2f} | "
              f"{errs} | {len(wsruns[(s, scen)])} |")
        w("")
    if wsruns:
        w("bench/ws_load.c on CPU 1 keeps one message in flight per connection (64 connections "
          "for 32-byte text, 16 for 64 KiB binary) and checks every echo; the servers run on CPU 0: "
          "appsrv `-t 1` on `GET /ws` (it validates text as UTF-8 and reassembles fragments; "
          "bench/ws_limit.c does neither: it echoes each frame from its read buffer with one "
          "writev), and Node's `ws` package with permessage-deflate off.")
        w("")
    if wsidle:
        n = int(next(iter(wsidle.values()))["n"])
        w(f"## (wsd) {n:,} idle WebSocket connections (after the handshake)")
        w("")
        w("| server | upgraded | still open | RSS before | RSS after | KiB per connection | "
          "echo while they are open (median / max of 5) | set-up |")
        w("|---|--:|--:|--:|--:|--:|--:|--:|")
        for s in WS_ORDER:
            if s not in wsidle:
                continue
            d = wsidle[s]
            probe = ("**no answer**" if d["probe_ms"] < 0
                     else f"{d['probe_ms']:.2f} / {d['probe_max_ms']:.2f} ms")
            w(f"| {NAMES[s]} | {int(d['open'])} | {int(d['still_open'])} | "
              f"{d['rss_before_kb'] / 1024:.1f} MiB | {d['rss_after_kb'] / 1024:.1f} MiB | "
              f"{d['kib_per_conn']:.3f} | {probe} | {d['setup_s']:.1f} s |")
        w("")
        w("KiB per connection = (VmRSS after − VmRSS before) ÷ upgraded, half a second after the "
          "last handshake. appsrv holds the connection struct and the handle (no input block, "
          "no message buffer) per idle WebSocket; ws_limit keeps its read buffer.")
        w("")

    # ------------------------------------------------------------ f
    if ("appsrv2", "a") in runs and ("appsrv", "a") in runs:
        w("## (f) appsrv worker threads, scenario (a)")
        w("")
        w("| appsrv | server CPUs | req/s | req/CPU-s | server CPU | req/s × 1 thread |")
        w("|---|---|--:|--:|--:|--:|")
        base = med("appsrv", "a", "rps")
        for s, t, cpus in [("appsrv", 1, "0"), ("appsrv2", 2, "0 and 1 (shared with wrk)")]:
            util = med(s, "a", "util")
            w(f"| -t {t} | {cpus} | {fmt_n(med(s, 'a', 'rps'))} | {fmt_n(med(s, 'a', 'per_cpu'))} | "
              f"{util * 100:.0f}% | {fmt_r(ratio(med(s, 'a', 'rps'), base))} |")
        w("")
        w("With two threads the server is pinned to both CPUs and wrk still runs on CPU 1, "
          "so the two compete: on a 2-core machine this shows the threads scale, not by how much.")
        w("")

    # ------------------------------------------------------------ g
    gs = [s for s in ["appsrv", "appsrv_log", "appsrv_metrics", "appsrv_ids"] if (s, "a") in runs]
    if len(gs) > 1 and "appsrv" in gs:
        w("## (g) observability overhead, scenario (a)")
        w("")
        w("| appsrv | req/s | req/CPU-s (min–max) | server CPU | req/CPU-s ÷ all off | "
          "instructions/request | runs |")
        w("|---|--:|--:|--:|--:|--:|--:|")
        base = med("appsrv", "a", "per_cpu")
        for s in gs:
            r = rng(s, "a", "per_cpu")
            rtxt = f" ({fmt_n(r[0])}–{fmt_n(r[1])})" if r else ""
            util = med(s, "a", "util")
            w(f"| {NAMES[s] if s != 'appsrv' else 'appsrv, all off'} | {fmt_n(med(s, 'a', 'rps'))} | "
              f"{fmt_n(med(s, 'a', 'per_cpu'))}{rtxt} | "
              f"{'–' if util is None else f'{util * 100:.0f}%'} | "
              f"{fmt_r(ratio(med(s, 'a', 'per_cpu'), base))} | "
              f"{f'{ir[s]:,.0f}' if s in ir else '–'} | {len(runs[(s, 'a')])} |")
        w("")
        w("Plain appsrv runs with `--no-request-ids` (all observability off); each other row turns "
          "one feature on. The access log is Apache's combined format written by the library's "
          "file logger to stderr, redirected to a file.")
        if loglines:
            w(f"Access-log lines written per round (one per request, counted after the stop): "
              f"{', '.join(f'{v:,}' for _, v in sorted(loglines.items()))}.")
        w("")
    # ------------------------------------------------------------ TLS
    tls_servers = [x for x in ["appsrv", "nginx", "h2o"]
                   if any((x, sc) in runs for sc in ("ta", "th", "tr")) or x in tls_idle]
    if tls_servers:
        w("## TLS (HTTPS): appsrv, nginx and h2o")
        w("")
        w("Same ECDSA P-256 certificate for all; the clients offer only TLS 1.3 with "
          "TLS_AES_128_GCM_SHA256 and X25519 (an OPENSSL_CONF for wrk and bench/tls_client.c), "
          "so every server negotiates the same. One server worker on CPU 0, the client on CPU 1.")
        w("")
        tchecks = []
        r_ta = ratio(med("appsrv", "ta", "per_cpu"), med("nginx", "ta", "per_cpu"))
        if r_ta is not None:
            tchecks.append(("(ta) keep-alive over TLS: req/CPU-s ≥ 1.1 × nginx", f"{r_ta:.2f} × nginx",
                            status(r_ta >= 1.1)))
        r_th = ratio(med("appsrv", "th", "per_cpu"), med("nginx", "th", "per_cpu"))
        if r_th is not None:
            tchecks.append(("(th) full TLS 1.3 handshakes/CPU-s ≥ nginx", f"{r_th:.2f} × nginx",
                            status(r_th >= 1.0)))
        if "appsrv" in tls_idle and "nginx" in tls_idle:
            a, n_ = tls_idle["appsrv"]["kib_per_conn"], tls_idle["nginx"]["kib_per_conn"]
            tchecks.append(("(td) RSS per idle TLS connection ≤ nginx",
                            f"{a:.1f} vs {n_:.1f} KiB", status(a <= n_)))
        if tchecks:
            w("| target | measured (medians) | status |")
            w("|---|---|---|")
            for c in tchecks:
                w(f"| {c[0]} | {c[1]} | {c[2]} |")
            w("")
        ttitles = {"ta": "(ta) keep-alive GET /plaintext over TLS, wrk, 64 connections",
                   "th": "(th) a full TLS 1.3 handshake per request (new connection, no resumption), "
                         "8 client threads",
                   "tr": "(tr) a resumed TLS 1.3 handshake per request (the previous session's "
                         "ticket), 8 client threads"}
        unit = {"ta": "req", "th": "handshakes", "tr": "handshakes"}
        for scen in ["ta", "th", "tr"]:
            servers = [x for x in tls_servers if (x, scen) in runs]
            if not servers:
                continue
            w(f"### {ttitles[scen]}")
            w("")
            extra = " | resumed" if scen == "tr" else ""
            w(f"| server | {unit[scen]}/s | {unit[scen]}/CPU-s (min–max) | server CPU | "
              f"appsrv ÷ this, per CPU-s | errors{extra} | runs |")
            w("|---|--:|--:|--:|--:|---|" + ("--:|" if scen == "tr" else "") + "--:|")
            app = med("appsrv", scen, "per_cpu")
            for x in servers:
                pc = med(x, scen, "per_cpu")
                r = rng(x, scen, "per_cpu")
                rtxt = f" ({fmt_n(r[0])}–{fmt_n(r[1])})" if r else ""
                util = med(x, scen, "util")
                errs = sum(sum(y["errors"].values()) for y in runs[(x, scen)])
                res = ""
                if scen == "tr":
                    res = f" | {statistics.median(y.get('resumed', 0) for y in runs[(x, scen)]) * 100:.0f}%"
                w(f"| {NAMES[x]} | {fmt_n(med(x, scen, 'rps'))} | {fmt_n(pc)}{rtxt} | "
                  f"{'–' if util is None else f'{util * 100:.0f}%'} | {fmt_r(ratio(app, pc))} | "
                  f"{errs}{res} | {len(runs[(x, scen)])} |")
            w("")
        if tls_idle:
            n = int(next(iter(tls_idle.values()))["n"])
            w(f"### (td) {n:,} idle TLS connections (after one keep-alive request each)")
            w("")
            w("| server | answered | RSS before | RSS after | KiB per connection | set-up |")
            w("|---|--:|--:|--:|--:|--:|")
            for x in tls_servers:
                if x in tls_idle:
                    d = tls_idle[x]
                    w(f"| {NAMES[x]} | {int(d['answered'])} | {d['rss_before_kb'] / 1024:.1f} MiB | "
                      f"{d['rss_after_kb'] / 1024:.1f} MiB | {d['kib_per_conn']:.1f} | "
                      f"{d['setup_s']:.1f} s |")
            w("")

    # ------------------------------------------------------------ ir
    if ir:
        w("## Instructions per request (callgrind)")
        w("")
        w("| server | instructions per keep-alive GET /plaintext | ÷ limit |")
        w("|---|--:|--:|")
        for s in ORDER + ["appsrv_log", "appsrv_metrics", "appsrv_ids"]:
            if s in ir:
                w(f"| {NAMES[s]} | {ir[s]:,.0f} | {fmt_r(ratio(ir[s], ir.get('limit')))} |")
        w("")
        w("Deterministic, unlike the timings: Ir(1,000 + N requests) − Ir(1,000 requests), divided by N, "
          "one connection, one request at a time (bench/reqloop.c); user-space instructions only "
          "(the kernel's share of each read/write is not counted).")
        w("")

    # ------------------------------------------------------------ notes, facts
    w("## Notes")
    w("")
    if any(k[0] == "civetweb" for k in runs):
        w("¹ civetweb is thread-per-connection; with its one worker thread a kept-alive "
          "connection would hold the only worker and starve the rest, so it runs with keep-alive "
          "off (its default): every answer closes the connection, in every scenario.")
        w("")
    w("Servers on CPU 0, wrk and the other clients on CPU 1 (`taskset`), except appsrv -t 2 "
      "(CPUs 0 and 1). req/CPU-s = requests ÷ the server's utime+stime over the run "
      "(`/proc/PID/stat`, summed over the process and its children, tick "
      f"1/{facts.get('clk', '100')} s). "
      "h2o and lighttpd serve /plaintext from a static file (no canned-body directive without "
      "a scripting module); nginx answers with `return 200` and echoes with the echo module.")
    for n in notes:
        w(f"- {n}")
    w("")
    w("## Machine and command")
    w("")
    for key, label in [("command", "command"), ("config", "settings"), ("elapsed", "elapsed, s"),
                       ("nproc", "nproc"), ("cpu", "CPU"), ("kernel", "kernel"), ("os", "OS"),
                       ("commit", "repository"), ("appsrv", "appsrv"), ("nginx", "nginx"),
                       ("h2o", "h2o"), ("lighttpd", "lighttpd"),
                       ("libmicrohttpd", "libmicrohttpd"), ("civetweb", "civetweb"),
                       ("libevent", "libevent"), ("wrk", "wrk"), ("openssl", "OpenSSL"),
                       ("node", "node"),
                       ("valgrind", "valgrind"),
                       ("cc", "compiler")]:
        if key in facts:
            val = f"`{facts[key]}`" if key in ("command", "config") else facts[key]
            w(f"- {label}: {val}")
    w("")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
