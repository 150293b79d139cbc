# tests/deploy/proxy_lib.sh - helpers for the behind-a-proxy scripts
# (sourced): a private temp dir, appsrv instances on port 0 whose bound
# port is read from their "listening on" line, a free port for a proxy,
# bounded waits that say what they waited for, and a cleanup that stops
# only the processes this script started (by PID).
set -euo pipefail

APPSRV=${APPSRV:-build/appsrv}
T=$(mktemp -d "${TMPDIR:-/tmp}/appsrv-proxy.XXXXXX")
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.log; do
        [ -f "$f" ] && { echo "--- $f (last 15 lines)" >&2; tail -n 15 "$f" >&2; }
    done
    exit 1
}

# start_appsrv NAME ARGS... : runs appsrv on 127.0.0.1 port 0, its stderr in
# $T/NAME.log; sets PORT_<NAME> and PID_<NAME>.
start_appsrv() {
    local name=$1; shift
    : >"$T/$name.log"
    "$APPSRV" -H 127.0.0.1 -p 0 -t 1 "$@" 2>>"$T/$name.log" &
    local pid=$!
    PIDS+=("$pid")
    local port="" i
    for i in $(seq 100); do
        port=$(sed -n 's/.*listening on https\{0,1\}:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' \
               "$T/$name.log" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || fail "$name exited before listening"
        sleep 0.05
    done
    [ -n "$port" ] || fail "$name: no listening line within 5 s"
    printf -v "PORT_$name" '%s' "$port"
    printf -v "PID_$name" '%s' "$pid"
}

# A port free right now on 127.0.0.1 (for a proxy that cannot report one).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http URL WHAT : until URL answers 200, at most 10 s.
wait_http() {
    local i
    for i in $(seq 200); do
        [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$1" || true)" = 200 ] && return 0
        sleep 0.05
    done
    fail "$2: $1 did not answer 200 within 10 s"
}

# count_lines FILE PATTERN : lines of FILE matching PATTERN (0 when none).
count_lines() {
    grep -c -- "$2" "$1" 2>/dev/null || true
}

# wait_lines N PATTERN FILE... : until the FILEs hold at least N lines
# matching PATTERN (access logs are written within 100 ms), at most 3 s;
# prints the count.
wait_lines() {
    local want=$1 pat=$2 got=0 i; shift 2
    for i in $(seq 60); do
        got=$(cat "$@" | grep -c -- "$pat" || true)
        [ "$got" -ge "$want" ] && break
        sleep 0.05
    done
    echo "$got"
}

# load_with_stop URL SECS STOP_AT PID LABEL : wrk (2 threads, 16
# connections) on URL for SECS seconds; SIGTERM to PID after STOP_AT
# seconds; fails unless every request succeeded. Prints the counts.
load_with_stop() {
    local url=$1 secs=$2 at=$3 pid=$4 label=$5
    timeout $((secs + 15)) wrk -t2 -c16 -d"${secs}s" "$url" >"$T/wrk.out" 2>&1 &
    local wpid=$!
    sleep "$at"
    kill -TERM "$pid"
    wait "$wpid" || fail "wrk failed: $(cat "$T/wrk.out")"
    local total non2xx sockerr
    total=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$T/wrk.out")
    non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$T/wrk.out")
    sockerr=$(sed -n 's/^ *Socket errors: *\(.*\)/\1/p' "$T/wrk.out")
    echo "wrk through $label, an instance stopped at ${at} s: total=$total" \
         "non2xx=${non2xx:-0} socket_errors=${sockerr:-none}"
    [ -n "$total" ] && [ "$total" -gt 0 ] || fail "wrk made no requests: $(cat "$T/wrk.out")"
    [ -z "$non2xx" ] || fail "$non2xx failed responses"
    [ -z "$sockerr" ] || fail "socket errors: $sockerr"
}
