#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/static.sh - static files: appsrv --root against nginx (sendfile on,
# open_file_cache, as a tuned site would run it), same method as run.sh:
# one worker each on CPU 0, wrk on CPU 1, server CPU time from /proc (the
# whole process tree), servers interleaved round by round, medians.
#   s4k:  a 4 KiB file, keep-alive, 64 connections: requests per server
#         CPU-second
#   s64m: a 64 MiB file, keep-alive, 4 connections: bytes per server
#         CPU-second
# Loopback only; every wait bounded; only the server started here is
# signalled. Prints a Markdown table on stdout. Also scenario st of
# bench/run.sh; the shared shell is bench/lib.sh.
#
# Environment: BENCH_SECONDS=3, BENCH_ROUNDS=3,
#   STATIC_SERVERS="appsrv nginx", APPSRV_BIN=build/appsrv,
#   APPSRV_NOCACHE_BIN: an appsrv built before its small-file cache, run
#   as server "appsrv_nocache" (add it to STATIC_SERVERS) to measure the
#   cache in the same run
set -u
set -o pipefail
cd "$(dirname "$0")/.." || exit 1

SECS=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
SERVERS=${STATIC_SERVERS:-"appsrv nginx"}
APPSRV=${APPSRV_BIN:-build/appsrv}
NOCACHE=${APPSRV_NOCACHE_BIN:-}
RUN=$PWD/build/bench/static
SRV_CPU=0
LG_CPU=1
log() { printf '[static] %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
. bench/lib.sh
mkdir -p "$RUN/www" "$RUN/nginx"
RAW=$RUN/raw.txt
: > "$RAW"

for t in wrk taskset python3; do
    command -v $t > /dev/null || { echo "static.sh: $t is required" >&2; exit 1; }
done
[ -x "$APPSRV" ] || { echo "static.sh: $APPSRV missing (make)" >&2; exit 1; }
head -c 4096 /dev/urandom > "$RUN/www/4k.bin"
[ -f "$RUN/www/64m.bin" ] && [ "$(stat -c %s "$RUN/www/64m.bin")" = 67108864 ] ||
    head -c 67108864 /dev/urandom > "$RUN/www/64m.bin"
cat bench/wrk_report.lua > "$RUN/report.lua"

trap stop_server EXIT
trap 'exit 130' INT TERM

PORT=""
start_server() { # name
    PORT=$(free_port)
    local cmd
    case $1 in
    appsrv) cmd=("$APPSRV" -p "$PORT" -t 1 -q -c 20000 --no-request-ids --root "$RUN/www") ;;
    appsrv_nocache)
        cmd=("$NOCACHE" -p "$PORT" -t 1 -q -c 20000 --no-request-ids --root "$RUN/www") ;;
    nginx)
        nginx_conf "$RUN/nginx" "\
    sendfile on;
    tcp_nopush on;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_min_uses 1;
    open_file_cache_errors on;
    etag on;
    types { application/octet-stream bin; }" "\
        listen 127.0.0.1:$PORT backlog=4096;
        root $RUN/www;"
        nginx_cmd "$RUN/nginx"
        cmd=("${NGINX_CMD[@]}") ;;
    *) log "unknown server $1"; return 1 ;;
    esac
    spawn_server "$SRV_CPU" "$RUN/$1.log" "${cmd[@]}"
    wait_server "$1" "$RUN/$1.log" 50 serves_4k
}

serves_4k() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        "http://127.0.0.1:$PORT/4k.bin" 2> /dev/null)" = 200 ]
}

run() { # server scenario round conns path
    wrk_measure "$4" 5s -s "$RUN/report.lua" "http://127.0.0.1:$PORT$5"
    if [ -z "$WRK_JSON" ]; then
        log "wrk failed on $1 $2: $(printf '%s' "$WRK_OUT" | tail -n 2)"
        return 1
    fi
    printf 'RUN\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$WRK_TICKS" "$CLK_TCK" "$WRK_JSON" >> "$RAW"
}

for ((r = 1; r <= ROUNDS; r++)); do
    # shellcheck disable=SC2086 # a list of names
    for s in $(rotated "$r" $SERVERS); do
        start_server "$s" || continue
        run "$s" s4k "$r" 64 /4k.bin
        run "$s" s64m "$r" 4 /64m.bin
        stop_server
    done
done

python3 - "$RAW" "$SERVERS" <<'EOF'
import json, statistics, sys
raw, servers = sys.argv[1], sys.argv[2].split()
runs = {}
for line in open(raw):
    f = line.rstrip("\n").split("\t")
    if f[0] != "RUN":
        continue
    srv, scen, ticks, hz, j = f[1], f[2], int(f[4]), int(f[5]), json.loads(f[6])
    secs = j["duration_us"] / 1e6
    cpu = ticks / hz
    errs = sum(v for k, v in j.items() if k.startswith("err_"))
    runs.setdefault((srv, scen), []).append(
        (j["requests"] / secs, j["requests"] / cpu if cpu else 0.0,
         j["bytes"] / secs, j["bytes"] / cpu if cpu else 0.0, errs))
def med(srv, scen, k):
    v = [r[k] for r in runs.get((srv, scen), [])]
    return statistics.median(v) if v else float("nan")
print("| scenario | server | req/s | req/CPU-s | MB/s | MB/CPU-s | errors |")
print("|---|---|--:|--:|--:|--:|--:|")
for scen in ("s4k", "s64m"):
    for s in servers:
        if (s, scen) not in runs:
            continue
        e = sum(r[4] for r in runs[(s, scen)])
        print(f"| {scen} | {s} | {med(s, scen, 0):,.0f} | {med(s, scen, 1):,.0f} | "
              f"{med(s, scen, 2) / 1e6:,.0f} | {med(s, scen, 3) / 1e6:,.0f} | {e} |")
if "appsrv_nocache" in servers and "nginx" in servers:
    print(f"\nappsrv without the cache / nginx: s4k req per CPU-s "
          f"{med('appsrv_nocache', 's4k', 1) / med('nginx', 's4k', 1):.2f}")
if "appsrv" in servers and "nginx" in servers:
    a, n = med("appsrv", "s4k", 1), med("nginx", "s4k", 1)
    b, m = med("appsrv", "s64m", 3), med("nginx", "s64m", 3)
    print()
    print(f"appsrv / nginx: s4k req per CPU-s {a / n:.2f}; s64m bytes per CPU-s {b / m:.2f}")
EOF
