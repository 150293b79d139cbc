#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/run.sh - benchmark appsrv against peers and the bare-epoll limit.
# `make bench` runs it; see bench/README.md for the method. Loopback only,
# every wait bounded, and only the processes started here are ever signalled.
#
# Environment (all optional):
#   BENCH_SECONDS=3      length of one wrk run
#   BENCH_ROUNDS=3       rounds; each round runs every server once, in a
#                        rotated order; the report gives medians over rounds
#   BENCH_CONNS=64       wrk connections (scenarios a, b, c, e, f)
#   BENCH_PIPELINE=16    pipelining depth (scenario b)
#   BENCH_BODY=65536     POST /echo body size (scenario e)
#   BENCH_IDLE=10000     idle connections (scenario d)
#   BENCH_IR_REQS=20000  requests counted under callgrind (instructions/request)
#   BENCH_SERVERS="appsrv limit nginx h2o lighttpd mhd civetweb evhttp"
#   BENCH_SCENARIOS="a b c d e f g ir ta th tr td wsa wsb wsd hk gz sc st"
#                        g: observability overhead: scenario (a) against
#                        appsrv with --access-log (to a file), --metrics,
#                        and request IDs on, beside plain appsrv
#                        hk, gz: bench/toolkit.sh (three hooks against none;
#                        gzip of 16 KiB JSON against nginx), appended to
#                        the report, outside BENCH_BUDGET
#                        sc: scaling, keep-alive with 1 and 2 worker threads
#                        and 2 processes on one inherited socket
#                        (bench/scaling.py; its own section of BENCH_OUT)
#                        st: static files, appsrv --root against nginx
#                        (bench/static.sh: a 4 KiB and a 64 MiB file),
#                        appended to the report, outside BENCH_BUDGET
#   BENCH_TLS_SERVERS="appsrv nginx h2o"   servers of the TLS scenarios
#   BENCH_TLS_IDLE=5000  idle TLS connections (scenario td)
#   BENCH_TLS_SECONDS=5  length of one TLS run (ta th tr); the TLS rounds
#                        run after the others, outside BENCH_BUDGET
#   BENCH_WS_SERVERS="appsrv wslimit wsnode"   WebSocket: appsrv's /ws,
#                        ws_limit.c (bare epoll), Node + npm ws
#   BENCH_WS_CONNS=64    connections for wsa (32-byte text echo); wsb (64 KiB
#                        binary echo) uses a quarter of them
#   BENCH_WS_IDLE=10000  idle WebSocket connections (scenario wsd)
#   BENCH_BUDGET=720     seconds for the whole run: HTTP rounds that would not
#                        fit are dropped (and the report says so)
#   BENCH_INSTALL=1      0: never call apt-get; missing peers are skipped
#   BENCH_OUT=bench/RESULTS.md
set -u
set -o pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
T_START=$SECONDS

SECS=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-64}
DEPTH=${BENCH_PIPELINE:-16}
BODY=${BENCH_BODY:-65536}
IDLE=${BENCH_IDLE:-10000}
IR_REQS=${BENCH_IR_REQS:-20000}
SERVERS=${BENCH_SERVERS:-"appsrv limit nginx h2o lighttpd mhd civetweb evhttp"}
SCENARIOS=${BENCH_SCENARIOS:-"a b c d e f g ir ta th tr td wsa wsb wsd hk gz sc st"}
TLS_SERVERS=${BENCH_TLS_SERVERS:-"appsrv nginx h2o"}
TLS_IDLE=${BENCH_TLS_IDLE:-5000}
TLS_SECS=${BENCH_TLS_SECONDS:-5}
WS_SERVERS=${BENCH_WS_SERVERS:-"appsrv wslimit wsnode"}
WS_CONNS=${BENCH_WS_CONNS:-64}
WS_IDLE=${BENCH_WS_IDLE:-10000}
BUDGET=${BENCH_BUDGET:-720}
INSTALL=${BENCH_INSTALL:-1}
OUT=${BENCH_OUT:-bench/RESULTS.md}

BIN=$ROOT/build/bench
RUN=$BIN/run
RAW=$RUN/raw.txt
SRV_CPU=0        # the server's CPU (both for appsrv -t 2)
LG_CPU=1         # the load generator's CPU

mkdir -p "$BIN" "$RUN"
: > "$RAW"

log() { printf '[%4ds] %s\n' $((SECONDS - T_START)) "$*" >&2; }
note() { log "NOTE: $*"; printf 'NOTE\t%s\n' "$*" >> "$RAW"; }
has() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }
# free_port, spawn/wait/stop_server (SPID, TREE), alive, cpu_ticks,
# wrk_measure, rotated, nginx_conf: the shell shared with the other scripts.
# shellcheck source=bench/lib.sh
. bench/lib.sh

printf 'FACT\tload_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RAW"

# One server runs at a time (SPID, started and reaped here); the EXIT trap
# stops it if the run is cut short. Nothing else is ever signalled.
cleanup() {
    [ -n "$SPID" ] && stop_server
    [ -n "${POLICY_RC_CREATED:-}" ] && rm -f /usr/sbin/policy-rc.d
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Servers and the idle client need 10,000+ descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 100)) ]; then
    note "open-file limit $(ulimit -n) is below $((IDLE + 100)): scenario (d) uses fewer connections"
    IDLE=$(( $(ulimit -n) - 100 ))
fi

# ------------------------------------------------------------------ install
install_missing() {
    local need=()
    command -v wrk >/dev/null || need+=(wrk)
    command -v valgrind >/dev/null || need+=(valgrind)
    command -v taskset >/dev/null || need+=(util-linux)
    if has nginx "$SERVERS"; then
        command -v nginx >/dev/null || need+=(nginx)
        [ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || need+=(libnginx-mod-http-echo)
    fi
    has h2o "$SERVERS" && ! command -v h2o >/dev/null && need+=(h2o)
    has lighttpd "$SERVERS" && ! command -v lighttpd >/dev/null && need+=(lighttpd)
    has mhd "$SERVERS" && [ ! -f /usr/include/microhttpd.h ] && need+=(libmicrohttpd-dev)
    has civetweb "$SERVERS" && [ ! -f /usr/include/civetweb.h ] && need+=(libcivetweb-dev)
    has evhttp "$SERVERS" && [ ! -f /usr/include/event2/http.h ] && need+=(libevent-dev)
    [ ${#need[@]} -eq 0 ] && return 0
    if [ "$INSTALL" = 0 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        note "not installing ${need[*]} (BENCH_INSTALL=0, not root, or no apt-get): those peers are skipped"
        return 0
    fi
    log "installing: ${need[*]}"
    # Packages must not start their own daemons (nginx, h2o and lighttpd
    # would all grab port 80 and compete for the CPUs being measured).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d &&
            POLICY_RC_CREATED=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local apt=(timeout -k 5 240 apt-get install -y -q --no-install-recommends
        -o DPkg::Lock::Timeout=60)
    if ! "${apt[@]}" "${need[@]}" > "$RUN/apt.log" 2>&1; then
        log "apt-get install failed; running apt-get update and trying each package"
        timeout -k 5 180 apt-get update -q >> "$RUN/apt.log" 2>&1
        local p
        for p in "${need[@]}"; do
            "${apt[@]}" "$p" >> "$RUN/apt.log" 2>&1 ||
                note "could not install $p (see build/bench/run/apt.log): $(tail -n 1 "$RUN/apt.log")"
        done
    fi
    if [ -n "${POLICY_RC_CREATED:-}" ]; then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=
    fi
}
install_missing

for tool in wrk taskset; do
    if ! command -v $tool >/dev/null; then
        echo "bench: $tool is required and could not be installed" >&2
        exit 1
    fi
done

# ------------------------------------------------------------------ build
[ -x build/appsrv ] || make -s all || { echo "bench: cannot build build/appsrv" >&2; exit 1; }
CC=${CC:-cc}
CFLAGS_B="-std=c11 -O2 -g -Wall -Wextra"
build() { # name libs...
    local name=$1; shift
    # shellcheck disable=SC2086 # CC and CFLAGS_B are word lists
    if ! $CC $CFLAGS_B -o "$BIN/$name" "bench/$name.c" "$@" > "$RUN/build_$name.log" 2>&1; then
        note "cannot build bench/$name.c: $(head -n 3 "$RUN/build_$name.log" | tr '\n' ' ')"
        return 1
    fi
}
build limit || exit 1
build idle_clients || exit 1
build reqloop || exit 1
TLS_OK=1
build tls_client -lssl -lcrypto -pthread || TLS_OK=0
build ws_load || exit 1
build ws_limit lib/ws_handshake.c -Ilib -Iinclude || exit 1
OK_WS=""
for s in $WS_SERVERS; do
    case $s in
    appsrv | wslimit) OK_WS+=" $s" ;;
    wsnode)
        if ! command -v node >/dev/null; then
            note "node is not installed: no Node ws peer"
        elif [ ! -f tests/interop/node_modules/ws/package.json ] &&
            ! { command -v npm >/dev/null && make -s interop-deps > "$RUN/npm.log" 2>&1; }; then
            note "the npm ws package is missing and make interop-deps failed: no Node ws peer"
        else
            OK_WS+=" $s"
        fi ;;
    *) note "unknown WebSocket server '$s': skipped" ;;
    esac
done
OK_SERVERS=""
for s in $SERVERS; do
    case $s in
    appsrv | limit) OK_SERVERS+=" $s" ;;
    nginx | h2o | lighttpd)
        if command -v "$s" >/dev/null; then OK_SERVERS+=" $s"; else note "$s is not installed: skipped"; fi ;;
    mhd) build peer_mhd -lmicrohttpd && OK_SERVERS+=" $s" ;;
    civetweb) build peer_civetweb -lcivetweb -pthread && OK_SERVERS+=" $s" ;;
    evhttp) build peer_evhttp -levent && OK_SERVERS+=" $s" ;;
    *) note "unknown server '$s': skipped" ;;
    esac
done
cat bench/wrk_report.lua > "$RUN/plain.lua"
cat bench/wrk_report.lua bench/wrk_pipeline.lua > "$RUN/pipeline.lua"
cat bench/wrk_report.lua bench/wrk_echo.lua > "$RUN/echo.lua"
printf 'Hello, World!' > "$RUN/plaintext.txt"

# ------------------------------------------------------------------ servers
# h2o_conf NAME PORT [SSL]: $RUN/NAME.conf, one thread; h2o 2.2 cannot
# return a canned body without mruby, so /plaintext is a static file. SSL:
# the lines of the listen block's ssl: map, each ending in a newline.
h2o_conf() {
    cat > "$RUN/$1.conf" <<EOF
listen:
  host: 127.0.0.1
  port: $2
${3:-}num-threads: 1
max-connections: 16000
http1-request-timeout: 120
pid-file: $RUN/$1.pid
error-log: $RUN/$1_error.log
user: root
hosts:
  default:
    paths:
      /plaintext:
        file.file: $RUN/plaintext.txt
EOF
}

write_configs() { # port
    local port=$1
    local echo_mod="" echo_loc="return 404;"
    if [ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ]; then
        echo_mod="load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;"
        echo_loc="echo_read_request_body; echo_request_body;"
    fi
    nginx_conf "$RUN/nginx" "" "\
        listen 127.0.0.1:$port backlog=4096;
        location = /plaintext { default_type text/plain; return 200 \"Hello, World!\"; }
        location = /echo {
            client_max_body_size 8m;
            client_body_buffer_size 128k;
            client_body_in_single_buffer on;
            default_type application/octet-stream;
            $echo_loc
        }" "$echo_mod"
    h2o_conf h2o "$port"
    # lighttpd: the same file, served by its built-in static handler.
    mkdir -p "$RUN/www"
    cp "$RUN/plaintext.txt" "$RUN/www/plaintext"
    cat > "$RUN/lighttpd.conf" <<EOF
server.document-root = "$RUN/www"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$RUN/lighttpd_error.log"
server.max-fds = 20000
server.max-connections = 10000
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 120
server.max-read-idle = 120
server.listen-backlog = 4096
mimetype.assign = ( "" => "text/plain" )
EOF
}

SPORT=""
# start_server NAME [CPU_LIST] [WRAPPER...]; sets SPID, SPORT, TREE.
start_server() {
    local name=$1 cpus=${2:-$SRV_CPU}; shift; [ $# -gt 0 ] && shift
    SPORT=$(free_port)
    write_configs "$SPORT"
    local cmd
    # Plain appsrv runs without request IDs, like its peers (no peer adds
    # a header per response); scenario (g) measures each feature on its own.
    # The access log goes to stderr, which is the file $RUN/appsrv_log.log.
    case $name in
    appsrv) cmd=(build/appsrv -p "$SPORT" -t 1 -q -c 20000 --no-request-ids) ;;
    appsrv2) cmd=(build/appsrv -p "$SPORT" -t 2 -q -c 20000 --no-request-ids) ;;
    appsrv_log) cmd=(build/appsrv -p "$SPORT" -t 1 -q -c 20000 --no-request-ids --access-log) ;;
    appsrv_metrics) cmd=(build/appsrv -p "$SPORT" -t 1 -q -c 20000 --no-request-ids --metrics) ;;
    appsrv_ids) cmd=(build/appsrv -p "$SPORT" -t 1 -q -c 20000) ;;
    limit) cmd=("$BIN/limit" "$SPORT") ;;
    wslimit) cmd=("$BIN/ws_limit" "$SPORT") ;;
    wsnode) cmd=(node bench/ws_node_echo.js "$SPORT") ;;
    nginx) nginx_cmd "$RUN/nginx"; cmd=("${NGINX_CMD[@]}") ;;
    h2o) cmd=(h2o -c "$RUN/h2o.conf") ;;
    lighttpd) cmd=(lighttpd -D -f "$RUN/lighttpd.conf") ;;
    mhd | civetweb | evhttp) cmd=("$BIN/peer_$name" "$SPORT") ;;
    esac
    spawn_server "$cpus" "$RUN/$name.log" "$@" "${cmd[@]}"
    # Ready once it answers GET /plaintext with "Hello, World!".
    local tries=50
    [ $# -gt 0 ] && tries=300 # under valgrind
    wait_server "$name" "$RUN/$name.log" "$tries" \
        timeout 5 "$BIN/reqloop" -p "$SPORT" -n 1 -x 'Hello, World!'
}

# run_wrk SERVER SCENARIO ROUND wrk-args... ; appends one RUN line to $RAW.
run_wrk() {
    local srv=$1 scen=$2 round=$3; shift 3
    wrk_measure "$CONNS" 2s "$@"
    if ! alive; then
        note "$srv died during scenario $scen (see build/bench/run/$srv.log): run discarded"
        return 2
    fi
    local json=$WRK_JSON
    if [ "$WRK_RC" -ne 0 ] || [ -z "$json" ]; then
        note "wrk failed on $srv scenario $scen (exit $WRK_RC): $(printf '%s' "$WRK_OUT" | tail -n 2 | tr '\n' ' ')"
        return 1
    fi
    printf 'RUN\t%s\t%s\t%s\t%s\t%s\t%s\n' "$srv" "$scen" "$round" "$WRK_TICKS" "$CLK_TCK" "$json" >> "$RAW"
    python3 - "$json" "$WRK_TICKS" "$CLK_TCK" "$srv" "$scen" <<'EOF' >&2
import json, sys
j = json.loads(sys.argv[1]); ticks = int(sys.argv[2]); hz = int(sys.argv[3])
rps = j["requests"] / (j["duration_us"] / 1e6)
cpu = ticks / hz
per = j["requests"] / cpu if cpu > 0 else float("nan")
err = sum(v for k, v in j.items() if k.startswith("err_"))
print(f"         {sys.argv[4]:9s} {sys.argv[5]}: {rps:10.0f} req/s  {per:10.0f} req/CPU-s"
      f"  cpu {cpu:5.2f}s  errors {err}")
EOF
}

URL() { echo "http://127.0.0.1:$SPORT$1"; }

# run_ws SERVER SCENARIO ROUND ws_load-args... ; appends one WSRUN line.
run_ws() {
    local srv=$1 scen=$2 round=$3; shift 3
    local c0 c1 out rc json
    c0=$(cpu_ticks)
    out=$(timeout -k 3 $((SECS + 30)) taskset -c $LG_CPU "$BIN/ws_load" -p "$SPORT" -d "$SECS" \
        "$@" 2>&1)
    rc=$?
    c1=$(cpu_ticks)
    if ! kill -0 "$SPID" 2>/dev/null; then
        note "$srv died during scenario $scen (see build/bench/run/$srv.log): run discarded"
        return 2
    fi
    json=$(printf '%s\n' "$out" | sed -n 's/^WSJSON //p' | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$json" ]; then
        note "ws_load failed on $srv scenario $scen (exit $rc): $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
        return 1
    fi
    printf 'WSRUN\t%s\t%s\t%s\t%s\t%s\t%s\n' "$srv" "$scen" "$round" $((c1 - c0)) "$CLK_TCK" "$json" >> "$RAW"
    python3 - "$json" $((c1 - c0)) "$CLK_TCK" "$srv" "$scen" <<'EOF2' >&2
import json, sys
j = json.loads(sys.argv[1]); ticks = int(sys.argv[2]); hz = int(sys.argv[3])
mps = j["msgs"] / (j["duration_us"] / 1e6)
cpu = ticks / hz
per = j["msgs"] / cpu if cpu > 0 else float("nan")
print(f"         {sys.argv[4]:9s} {sys.argv[5]}: {mps:10.0f} msg/s  {per:10.0f} msg/CPU-s"
      f"  cpu {cpu:5.2f}s  errors {j['errors']}")
EOF2
}

# run_idle TAG SERVER TIMEOUT CMD...: runs the idle client CMD on LG_CPU for
# at most TIMEOUT seconds; its last "TAG ..." line becomes a TAG line of RAW.
run_idle() {
    local tag=$1 srv=$2 tmo=$3 out line; shift 3
    out=$(timeout -k 3 "$tmo" taskset -c "$LG_CPU" "$@" 2>&1)
    line=$(printf '%s\n' "$out" | grep "^$tag " | tail -n 1)
    if [ -n "$line" ]; then
        printf '%s\t%s\t%s\n' "$tag" "$srv" "$line" >> "$RAW"
        log "         $srv: $line"
    else
        note "no $tag line from ${1##*/} on $srv: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
    fi
}

# ------------------------------------------------------------------ (d) idle
if has d "$SCENARIOS"; then
    log "scenario (d): $IDLE idle keep-alive connections"
    for s in $OK_SERVERS; do
        if [ "$s" = civetweb ]; then
            note "civetweb skipped in (d): keep-alive is off (one worker thread serves one connection at a time)"
            continue
        fi
        start_server "$s" || continue
        run_idle IDLE "$s" 120 "$BIN/idle_clients" -p "$SPORT" -P "$SPID" -n "$IDLE" -t 60
        stop_server
    done
fi

# ------------------------------------------------------------------ (wsd) idle WebSocket
if has wsd "$SCENARIOS"; then
    log "scenario (wsd): $WS_IDLE idle WebSocket connections"
    for s in $OK_WS; do
        start_server "$s" || continue
        run_idle WSIDLE "$s" 120 "$BIN/ws_load" -p "$SPORT" -i "$WS_IDLE" -P "$SPID"
        stop_server
    done
fi

# ------------------------------------------------------------------ instructions/request
# Callgrind counts every instruction the server executes. Two runs that differ
# only by IR_REQS keep-alive requests: (Ir(long) - Ir(short)) / IR_REQS is the
# cost of one request with start-up, warm-up and shutdown cancelled out.
if has ir "$SCENARIOS"; then
    if ! command -v valgrind >/dev/null; then
        note "valgrind missing: no instructions per request"
    else
        log "instructions per request under callgrind ($IR_REQS keep-alive requests, one connection)"
        IR_LIST="appsrv limit"
        has g "$SCENARIOS" && has appsrv "$OK_SERVERS" && IR_LIST+=" appsrv_log appsrv_metrics appsrv_ids"
        for s in $IR_LIST; do
            case $s in appsrv_*) has appsrv "$OK_SERVERS" || continue ;;
            *) has "$s" "$OK_SERVERS" || continue ;; esac
            irs=()
            for n in 1000 $((1000 + IR_REQS)); do
                start_server "$s" "$SRV_CPU" valgrind --tool=callgrind \
                    --callgrind-out-file="$RUN/callgrind.$s.$n" --dump-instr=no || break
                timeout -k 3 180 taskset -c $LG_CPU "$BIN/reqloop" -p "$SPORT" -n "$n" \
                    -x 'Hello, World!' > /dev/null 2>&1 ||
                    note "reqloop failed against $s under callgrind"
                stop_server
                irs+=("$(sed -n 's/^summary: *//p' "$RUN/callgrind.$s.$n" 2>/dev/null | head -n 1)")
            done
            if [ ${#irs[@]} -eq 2 ] && [ -n "${irs[0]}" ] && [ -n "${irs[1]}" ]; then
                printf 'IR\t%s\t%s\t%s\t%s\n' "$s" "$IR_REQS" "${irs[0]}" "${irs[1]}" >> "$RAW"
                log "         $s: $(((irs[1] - irs[0]) / IR_REQS)) instructions/request"
            else
                note "no callgrind totals for $s"
            fi
        done
    fi
fi

# ------------------------------------------------------------------ rounds
# Scenarios per server start: a (keep-alive), b (pipelined), c (connection
# per request), e (POST /echo, if the server can echo). f adds appsrv with
# two worker threads on both CPUs (scenario a only).
LIST=""
for s in $OK_SERVERS; do
    LIST+=" $s"
    [ "$s" = appsrv ] && has f "$SCENARIOS" && LIST+=" appsrv2"
    [ "$s" = appsrv ] && has g "$SCENARIOS" && LIST+=" appsrv_log appsrv_metrics appsrv_ids"
done
read -r -a LIST_A <<< "$LIST"
declare -A CAN_ECHO=()
ROUND_T=0
rounds_done=0
for ((r = 1; r <= ROUNDS; r++)); do
    elapsed=$((SECONDS - T_START))
    if [ $r -gt 1 ] && [ $((elapsed + ROUND_T + 15)) -gt "$BUDGET" ]; then
        note "stopped after $rounds_done of $ROUNDS rounds: another round (~${ROUND_T}s) would exceed BENCH_BUDGET=${BUDGET}s"
        break
    fi
    t_round=$SECONDS
    log "round $r/$ROUNDS"
    n=${#LIST_A[@]}
    for ((k = 0; k < n; k++)); do
        s=${LIST_A[$(((k + r - 1) % n))]}
        if [ "$s" = appsrv2 ]; then
            start_server appsrv2 "$SRV_CPU,$LG_CPU" || continue
            has a "$SCENARIOS" && run_wrk appsrv2 a "$r" -s "$RUN/plain.lua" "$(URL /plaintext)"
            stop_server
            continue
        fi
        case $s in
        appsrv_log | appsrv_metrics | appsrv_ids)
            # (g): the keep-alive scenario only, against each feature.
            start_server "$s" || continue
            run_wrk "$s" a "$r" -s "$RUN/plain.lua" "$(URL /plaintext)"
            stop_server # the log is complete once appsrv has exited
            if [ "$s" = appsrv_log ]; then
                lines=$(grep -vc '^appsrv: ' "$RUN/appsrv_log.log")
                printf 'LOGLINES\t%s\t%s\n' "$r" "$lines" >> "$RAW"
            fi
            continue
            ;;
        esac
        start_server "$s" || continue
        if [ -z "${CAN_ECHO[$s]:-}" ]; then
            if timeout 10 "$BIN/reqloop" -p "$SPORT" -n 1 -u /echo -b "$BODY" -v > /dev/null 2>&1; then
                CAN_ECHO[$s]=yes
            else
                CAN_ECHO[$s]=no
                has e "$SCENARIOS" && note "$s cannot echo POST /echo: no scenario (e)"
                printf 'NOECHO\t%s\n' "$s" >> "$RAW"
            fi
        fi
        # A server that dies is skipped for the rest of the round.
        has a "$SCENARIOS" && alive && run_wrk "$s" a "$r" -s "$RUN/plain.lua" "$(URL /plaintext)"
        has b "$SCENARIOS" && alive && run_wrk "$s" b "$r" -s "$RUN/pipeline.lua" "$(URL /plaintext)" -- "$DEPTH"
        has c "$SCENARIOS" && alive && run_wrk "$s" c "$r" -s "$RUN/plain.lua" -H "Connection: close" "$(URL /plaintext)"
        if has e "$SCENARIOS" && alive && [ "${CAN_ECHO[$s]}" = yes ]; then
            run_wrk "$s" e "$r" -s "$RUN/echo.lua" "$(URL /echo)" -- "$BODY"
        fi
        stop_server
    done
    rounds_done=$r
    ROUND_T=$((SECONDS - t_round))
done

# ------------------------------------------------------------------ TLS
# ta: keep-alive GET /plaintext over TLS (wrk); th: a full TLS 1.3
# handshake per request (tls_client -m full, a new connection each); tr:
# the same, resuming the previous connection's session (ticket); td: RSS
# per idle TLS connection. Every server gets the same ECDSA P-256
# certificate; the clients offer only TLS 1.3 with TLS_AES_128_GCM_SHA256
# and X25519 (OPENSSL_CONF below), so every server negotiates the same.
TLS_SCEN=""
for sc in ta th tr td; do has $sc "$SCENARIOS" && TLS_SCEN+=" $sc"; done
if [ -n "$TLS_SCEN" ] && [ "$TLS_OK" = 1 ] && ! build/appsrv --help | grep -q tls-cert; then
    note "build/appsrv has no TLS: no TLS scenarios"
    TLS_OK=0
fi
TD=$RUN/tls
if [ -n "$TLS_SCEN" ] && [ "$TLS_OK" = 1 ]; then
    mkdir -p "$TD"
    if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$TD/key.pem" -out "$TD/cert.pem" > "$TD/openssl.log" 2>&1; then
        note "cannot make the TLS certificate: no TLS scenarios"
        TLS_OK=0
    fi
    cat > "$TD/client.cnf" <<EOF
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = sys
[sys]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
Groups = X25519
EOF
fi

write_tls_configs() { # port
    local port=$1
    nginx_conf "$RUN/nginx_tls" "" "\
        listen 127.0.0.1:$port ssl backlog=4096;
        ssl_certificate $TD/cert.pem;
        ssl_certificate_key $TD/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305;
        ssl_prefer_server_ciphers on;
        ssl_session_tickets on;
        location = /plaintext { default_type text/plain; return 200 \"Hello, World!\"; }"
    h2o_conf h2o_tls "$port" "  ssl:
    certificate-file: $TD/cert.pem
    key-file: $TD/key.pem
    minimum-version: TLSv1.2
    cipher-suite: ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305
    cipher-preference: server
"
}

# start_tls_server NAME; sets SPID, SPORT, TREE (as start_server does).
start_tls_server() {
    local name=$1 cmd
    SPORT=$(free_port)
    write_tls_configs "$SPORT"
    case $name in
    appsrv) cmd=(build/appsrv -p "$SPORT" -t 1 -q -c 20000 --tls-cert "$TD/cert.pem"
        --tls-key "$TD/key.pem") ;;
    nginx) nginx_cmd "$RUN/nginx_tls"; cmd=("${NGINX_CMD[@]}") ;;
    h2o) cmd=(h2o -c "$RUN/h2o_tls.conf") ;;
    *) note "no TLS configuration for $name: skipped"; return 1 ;;
    esac
    spawn_server "$SRV_CPU" "$RUN/${name}_tls.log" "${cmd[@]}"
    wait_server "$name (TLS)" "$RUN/${name}_tls.log" 50 \
        answers_hello "https://127.0.0.1:$SPORT/plaintext"
}

answers_hello() { [ "$(timeout 5 curl -sk "$1" 2>/dev/null)" = 'Hello, World!' ]; }

# run_tls_client SERVER SCENARIO ROUND MODE; appends a TLSRUN line.
run_tls_client() {
    local srv=$1 scen=$2 round=$3 mode=$4 c0 c1 out line
    c0=$(cpu_ticks)
    out=$(OPENSSL_CONF=$TD/client.cnf timeout -k 3 $((SECS + 30)) taskset -c $LG_CPU \
        "$BIN/tls_client" -p "$SPORT" -m "$mode" -c 8 -d "$SECS" 2>&1)
    c1=$(cpu_ticks)
    line=$(printf '%s\n' "$out" | grep '^TLSC ' | tail -n 1)
    if [ -z "$line" ] || ! alive; then
        note "tls_client $mode failed on $srv: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
        return 1
    fi
    printf 'TLSRUN\t%s\t%s\t%s\t%s\t%s\t%s\n' "$srv" "$scen" "$round" $((c1 - c0)) "$CLK_TCK" \
        "$line" >> "$RAW"
    log "         $srv $scen: $line cpu_ticks=$((c1 - c0))"
}

if [ -n "$TLS_SCEN" ] && [ "$TLS_OK" = 1 ]; then
    TLS_LIST=""
    for s in $TLS_SERVERS; do
        case $s in
        appsrv) TLS_LIST+=" $s" ;;
        nginx | h2o) if command -v "$s" >/dev/null; then TLS_LIST+=" $s"; fi ;;
        *) note "no TLS configuration for $s: skipped" ;;
        esac
    done
    read -r -a TLS_A <<< "$TLS_LIST"
    SECS_PLAIN=$SECS
    SECS=$TLS_SECS # run_wrk and run_tls_client read SECS
    for ((r = 1; r <= ROUNDS; r++)); do
        log "TLS round $r/$ROUNDS:$TLS_SCEN"
        n=${#TLS_A[@]}
        for ((k = 0; k < n; k++)); do
            s=${TLS_A[$(((k + r - 1) % n))]}
            start_tls_server "$s" || continue
            if has ta "$SCENARIOS" && alive; then
                OPENSSL_CONF=$TD/client.cnf run_wrk "$s" ta "$r" -s "$RUN/plain.lua" \
                    "https://127.0.0.1:$SPORT/plaintext"
            fi
            has th "$SCENARIOS" && alive && run_tls_client "$s" th "$r" full
            has tr "$SCENARIOS" && alive && run_tls_client "$s" tr "$r" resume
            stop_server
        done
    done
    SECS=$SECS_PLAIN
    if has td "$SCENARIOS"; then
        log "scenario (td): $TLS_IDLE idle TLS connections"
        for s in "${TLS_A[@]}"; do
            start_tls_server "$s" || continue
            OPENSSL_CONF=$TD/client.cnf run_idle TLSIDLE "$s" 180 \
                "$BIN/tls_client" -p "$SPORT" -m idle -n "$TLS_IDLE" -P "$SPID"
            stop_server
        done
    fi
fi

# ------------------------------------------------------------------ WebSocket rounds
# wsa: 32-byte text messages, WS_CONNS connections, one message in flight
# each; wsb: 64 KiB binary messages, WS_CONNS/4 connections. Rounds rotate
# the servers like the HTTP ones.
if has wsa "$SCENARIOS" || has wsb "$SCENARIOS"; then
    read -r -a WS_A <<< "$OK_WS"
    for ((r = 1; r <= ROUNDS; r++)); do
        log "WebSocket round $r/$ROUNDS"
        n=${#WS_A[@]}
        for ((k = 0; k < n; k++)); do
            s=${WS_A[$(((k + r - 1) % n))]}
            start_server "$s" || continue
            has wsa "$SCENARIOS" && alive && run_ws "$s" wsa "$r" -c "$WS_CONNS" -s 32
            has wsb "$SCENARIOS" && alive && run_ws "$s" wsb "$r" -c $((WS_CONNS / 4)) -s 65536 -b
            stop_server
        done
    done
fi

# ------------------------------------------------------------------ facts and report
ver() { "$@" 2>&1 | head -n 1; }
dpkg_ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }
{
    printf 'FACT\tdate\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'FACT\tnproc\t%s\n' "$(nproc)"
    printf 'FACT\tclk\t%s\n' "$CLK_TCK"
    printf 'FACT\tcpu\t%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    printf 'FACT\tkernel\t%s\n' "$(uname -sr)"
    # shellcheck disable=SC1091
    printf 'FACT\tos\t%s\n' "$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")"
    printf 'FACT\tload_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'FACT\tcommit\t%s\n' "$(git describe --always --dirty 2>/dev/null || echo ?)"
    printf 'FACT\tappsrv\t%s\n' "$(build/appsrv -V 2>&1 | head -n 1)"
    command -v nginx >/dev/null && printf 'FACT\tnginx\t%s (echo module %s)\n' \
        "$(ver nginx -v | sed 's/^nginx version: //')" "$(dpkg_ver libnginx-mod-http-echo)"
    command -v h2o >/dev/null && printf 'FACT\th2o\t%s\n' "$(ver h2o --version)"
    command -v lighttpd >/dev/null && printf 'FACT\tlighttpd\t%s\n' "$(ver lighttpd -v)"
    printf 'FACT\tlibmicrohttpd\t%s\n' "$(dpkg_ver libmicrohttpd12)"
    printf 'FACT\tcivetweb\t%s\n' "$(dpkg_ver libcivetweb1)"
    printf 'FACT\tlibevent\t%s\n' "$(dpkg_ver libevent-2.1-7)"
    printf 'FACT\twrk\t%s\n' "$(dpkg_ver wrk)"
    printf 'FACT\topenssl\t%s\n' "$(openssl version 2>/dev/null || echo ?)"
    command -v node >/dev/null && printf 'FACT\tnode\t%s (ws %s)\n' "$(node --version)" \
        "$(node -p "require('./tests/interop/node_modules/ws/package.json').version" 2>/dev/null || echo '?')"
    command -v valgrind >/dev/null && printf 'FACT\tvalgrind\t%s\n' "$(valgrind --version)"
    printf 'FACT\tcc\t%s\n' "$($CC --version | head -n 1)"
    env_used=""
    for v in $(compgen -e | grep '^BENCH_' | sort); do
        env_used+="$v=$(printf '%q' "${!v}") "
    done
    if [ -n "${MAKELEVEL:-}" ]; then
        printf 'FACT\tcommand\t%smake bench\n' "$env_used"
    else
        printf 'FACT\tcommand\t%sbench/run.sh\n' "$env_used"
    fi
    printf 'FACT\tconfig\tBENCH_SECONDS=%s BENCH_ROUNDS=%s (done: %s) BENCH_CONNS=%s BENCH_PIPELINE=%s BENCH_BODY=%s BENCH_IDLE=%s BENCH_IR_REQS=%s BENCH_TLS_SECONDS=%s BENCH_TLS_IDLE=%s\n' \
        "$SECS" "$ROUNDS" "$rounds_done" "$CONNS" "$DEPTH" "$BODY" "$IDLE" "$IR_REQS" "$TLS_SECS" "$TLS_IDLE"
    printf 'FACT\tconfig\tBENCH_SECONDS=%s BENCH_ROUNDS=%s (done: %s) BENCH_CONNS=%s BENCH_PIPELINE=%s BENCH_BODY=%s BENCH_IDLE=%s BENCH_IR_REQS=%s BENCH_WS_CONNS=%s BENCH_WS_IDLE=%s\n' \
        "$SECS" "$ROUNDS" "$rounds_done" "$CONNS" "$DEPTH" "$BODY" "$IDLE" "$IR_REQS" "$WS_CONNS" "$WS_IDLE"
    printf 'FACT\telapsed\t%s\n' $((SECONDS - T_START))
} >> "$RAW"

python3 bench/report.py "$RAW" > "$RUN/RESULTS.md" || { echo "bench: report failed" >&2; exit 1; }
cp "$RUN/RESULTS.md" "$OUT"
# The application-toolkit scenarios (issue 17): their own script and table.
tk=""
for s in hk gz; do has $s "$SCENARIOS" && tk+="$s "; done
if [ -n "$tk" ]; then
    { printf '\n## Application toolkit: hooks and gzip (bench/toolkit.sh)\n\n'
      TOOLKIT_SCENARIOS="$tk" BENCH_SECONDS=$SECS BENCH_ROUNDS=$ROUNDS BENCH_CONNS=$CONNS \
          bench/toolkit.sh; } >> "$OUT" || log "bench/toolkit.sh failed"
fi
# sc: threads and processes sharing one inherited socket, appended to $OUT.
if has sc "$SCENARIOS"; then
    BENCH_OUT="$OUT" BENCH_SECONDS="$SECS" python3 bench/scaling.py > /dev/null ||
        log "scaling (bench/scaling.py) failed"
fi
# st: static files (bench/static.sh), appended to $OUT.
if has st "$SCENARIOS"; then
    { printf '\n## Static files: appsrv --root against nginx (bench/static.sh)\n\n'
      BENCH_SECONDS=$SECS BENCH_ROUNDS=$ROUNDS bench/static.sh; } >> "$OUT" ||
        log "bench/static.sh failed"
fi
cat "$OUT"
log "done in $((SECONDS - T_START)) s; written to $OUT"
