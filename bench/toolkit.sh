#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/toolkit.sh - the application-toolkit benchmarks (issue 17), run by
# bench/run.sh (scenarios hk and gz) or alone after `make`:
#   hk  keep-alive GET /plaintext, requests per server CPU-second, with
#       three hooks registered (CORS, request IDs, a counting after hook)
#       against none: bench/toolkit_host.c with and without --hooks.
#   gz  keep-alive GET of a 16 KiB JSON document with Accept-Encoding:
#       gzip: appsrv (toolkit_host --gzip, level 6) against nginx
#       (gzip on; gzip_comp_level 6; gzip_types application/json) serving
#       the same bytes; requests per server CPU-second and response bytes
#       on the wire (wrk's byte count / requests), plus appsrv without
#       gzip for the bytes saved.
# One worker each on CPU 0, wrk -t1 on CPU 1, BENCH_ROUNDS rounds with the
# servers in alternating order, medians printed. Loopback only; every wait
# bounded; only the servers started here are signalled (by PID). The
# shell shared with bench/run.sh and bench/static.sh is bench/lib.sh.
#
# Environment: BENCH_SECONDS (3), BENCH_ROUNDS (3), BENCH_CONNS (64),
# TOOLKIT_SCENARIOS ("hk gz"). Prints Markdown on stdout.
set -u
set -o pipefail
cd "$(dirname "$0")/.." || exit 1

SECS=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-64}
SCEN=${TOOLKIT_SCENARIOS:-"hk gz"}
RUN=build/bench/toolkit
LG_CPU=1
mkdir -p "$RUN/nginx"
log() { printf '[toolkit] %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
. bench/lib.sh

[ -f build/libappsrv.a ] || { log "build/libappsrv.a missing: run make first"; exit 1; }
cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -o "$RUN/toolkit_host" bench/toolkit_host.c \
    build/libappsrv.a $(pkg-config --libs openssl zlib 2>/dev/null) -pthread ||
    { log "cannot build toolkit_host"; exit 1; }
cat bench/wrk_report.lua > "$RUN/report.lua"

# The 16 KiB JSON document both servers send (deterministic).
python3 - "$RUN/nginx/data.json" <<'PY'
import json, sys
items, out = [], ""
i = 0
while True:
    items.append({"id": i, "name": "item %d" % i, "price": round(i * 1.37, 2),
                  "tags": ["t%d" % (i % 7), "t%d" % (i % 11)], "ok": i % 3 == 0})
    s = json.dumps(items, separators=(",", ":"))
    if len(s) > 16384:
        break
    out = s
    i += 1
open(sys.argv[1], "w").write(out.ljust(16384))
PY
chmod -R a+rX "$RUN/nginx"

trap stop_server EXIT
trap 'exit 130' INT TERM

SPORT=""
start_host() { # args...
    # The host prints "PORT n" once it listens.
    spawn_server 0 "$RUN/host.log" "$RUN/toolkit_host" -j "$RUN/nginx/data.json" "$@"
    wait_server toolkit_host "$RUN/host.log" 50 grep -q '^PORT ' "$RUN/host.log" &&
        SPORT=$(sed -n 's/^PORT //p' "$RUN/host.log" | head -n 1)
}

start_nginx() {
    SPORT=$(free_port)
    local d=$PWD/$RUN/nginx
    nginx_conf "$d" "\
    gzip on;
    gzip_comp_level 6;
    gzip_min_length 1024;
    gzip_types application/json;
    gzip_vary on;" "\
        listen 127.0.0.1:$SPORT backlog=4096;
        location = /data.json { root $d; default_type application/json; }"
    nginx_cmd "$d"
    spawn_server 0 "$RUN/nginx.err" "${NGINX_CMD[@]}"
    wait_server nginx "$RUN/nginx.err" 50 curl -s -o /dev/null "http://127.0.0.1:$SPORT/data.json"
}

# measure NAME PATH [wrk args...]: prints "NAME req_per_cpu_s bytes_per_resp rps".
measure() {
    local name=$1 path=$2; shift 2
    wrk_measure "$CONNS" 2s -s "$RUN/report.lua" "$@" "http://127.0.0.1:$SPORT$path"
    [ -n "$WRK_JSON" ] || { log "wrk failed on $name: $WRK_OUT"; return 1; }
    python3 - "$name" "$WRK_JSON" "$WRK_TICKS" "$CLK_TCK" <<'PY'
import json, sys
j = json.loads(sys.argv[2]); cpu = int(sys.argv[3]) / int(sys.argv[4])
err = sum(v for k, v in j.items() if k.startswith("err_"))
rps = j["requests"] / (j["duration_us"] / 1e6)
print(sys.argv[1], round(j["requests"] / cpu) if cpu else 0, round(j["bytes"] / max(j["requests"], 1)),
      round(rps), err)
PY
}

RES=$RUN/results.txt
: > "$RES"
AE=(-H "Accept-Encoding: gzip")
for ((r = 1; r <= ROUNDS; r++)); do
    if [[ " $SCEN " == *" hk "* ]]; then
        order=(none hooks)
        ((r % 2 == 0)) && order=(hooks none)
        for v in "${order[@]}"; do
            if [ "$v" = hooks ]; then start_host --hooks; else start_host; fi || continue
            # The hooked run sends an allowed Origin, so CORS adds its headers.
            if [ "$v" = hooks ]; then
                measure "hk_$v" /plaintext -H "Origin: http://app.example" | tee -a "$RES" >&2
            else
                measure "hk_$v" /plaintext | tee -a "$RES" >&2
            fi
            stop_server
        done
    fi
    if [[ " $SCEN " == *" gz "* ]]; then
        order=(appsrv nginx appsrv_plain)
        ((r % 2 == 0)) && order=(nginx appsrv appsrv_plain)
        for v in "${order[@]}"; do
            case $v in
            appsrv) start_host --gzip --level 6 || continue ;;
            appsrv_plain) start_host || continue ;;
            nginx) start_nginx || continue ;;
            esac
            measure "gz_$v" /data.json "${AE[@]}" | tee -a "$RES" >&2
            stop_server
        done
    fi
done

python3 - "$RES" "$SECS" "$ROUNDS" "$CONNS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, per, b, rps, err = line.split()
    rows.setdefault(name, []).append((int(per), int(b), int(rps), int(err)))
med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v),
           statistics.median(x[2] for x in v), sum(x[3] for x in v)) for k, v in rows.items()}
secs, rounds, conns = sys.argv[2:5]
print(f"wrk -t1 -c{conns} -d{secs}s, {rounds} rounds, medians; server on CPU 0, wrk on CPU 1.\n")
if "hk_none" in med and "hk_hooks" in med:
    n, h = med["hk_none"], med["hk_hooks"]
    print("| (hk) GET /plaintext, keep-alive | req/CPU-s | req/s | errors |")
    print("|---|--:|--:|--:|")
    print(f"| no hooks | {n[0]:,.0f} | {n[2]:,.0f} | {n[3]} |")
    print(f"| CORS + request IDs + counter hook | {h[0]:,.0f} | {h[2]:,.0f} | {h[3]} |")
    print(f"| ratio hooks / none | {h[0] / n[0]:.3f} | {h[2] / n[2]:.3f} | |\n")
if "gz_appsrv" in med:
    print("| (gz) GET 16 KiB JSON, Accept-Encoding: gzip | req/CPU-s | bytes/response on the wire | req/s | errors |")
    print("|---|--:|--:|--:|--:|")
    for k, label in (("gz_appsrv", "appsrv, gzip level 6"), ("gz_nginx", "nginx, gzip_comp_level 6"),
                     ("gz_appsrv_plain", "appsrv, no gzip")):
        if k in med:
            m = med[k]
            print(f"| {label} | {m[0]:,.0f} | {m[1]:,.0f} | {m[2]:,.0f} | {m[3]} |")
    if "gz_nginx" in med:
        print(f"\nappsrv ÷ nginx, req/CPU-s with gzip: {med['gz_appsrv'][0] / med['gz_nginx'][0]:.2f}")
    if "gz_appsrv_plain" in med:
        a, p = med["gz_appsrv"], med["gz_appsrv_plain"]
        print(f"bytes on the wire saved by gzip: {1 - a[1] / p[1]:.1%} ({p[1]:,.0f} → {a[1]:,.0f} per response)")
PY
