# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034 # variables read by the sourcing scripts
#
# bench/lib.sh - the shell the benchmark scripts share, sourced by
# bench/run.sh, bench/static.sh and bench/toolkit.sh: a free loopback port,
# the one server they run at a time (started under taskset, polled until
# it answers, stopped by PID with its children), its CPU time from /proc,
# one wrk run measured against that CPU time, and the nginx configuration
# skeleton every nginx peer uses. Nothing here signals a process it did
# not start.
#
# The caller sets SECS (length of one run) and LG_CPU (the load
# generator's CPU); it may define log and note before sourcing this file
# (defaults: both print to stderr).

declare -F log > /dev/null || log() { printf '[bench] %s\n' "$*" >&2; }
declare -F note > /dev/null || note() { log "NOTE: $*"; }

CLK_TCK=$(getconf CLK_TCK)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------------ the server
# One server at a time: SPID (the process started), TREE (it and its
# children once it answers, for cpu_ticks).
SPID=""
TREE=""

# spawn_server CPUS LOG CMD...: starts CMD on CPUS with stdout and stderr
# in LOG; sets SPID.
spawn_server() {
    local cpus=$1 out=$2; shift 2
    taskset -c "$cpus" "$@" > "$out" 2>&1 &
    SPID=$!
    TREE=$SPID
}

# wait_server NAME LOG TRIES CHECK...: runs CHECK every 0.1 s until it
# succeeds (then TREE is set; returns 0), the server exits (returns 1) or
# TRIES checks failed (the server is stopped; returns 1). The note names
# the last lines of LOG, the server's output.
wait_server() {
    local name=$1 out=$2 tries=$3 i; shift 3
    for ((i = 0; i < tries; i++)); do
        if ! kill -0 "$SPID" 2> /dev/null; then
            note "$name exited at start-up: $(tail -n 2 "$out" | tr '\n' ' ')"
            wait "$SPID" 2> /dev/null
            SPID=""
            TREE=""
            return 1
        fi
        if "$@" > /dev/null 2>&1; then
            TREE="$SPID $(pgrep -P "$SPID" | tr '\n' ' ')"
            return 0
        fi
        sleep 0.1
    done
    note "$name did not answer within $((tries / 10)) s ($(tail -n 2 "$out" | tr '\n' ' ')): skipped"
    stop_server
    return 1
}

# SIGTERM, 10 s, then SIGKILL to the server and the children it had.
stop_server() {
    [ -n "$SPID" ] || return 0
    local i kids
    kids=$(pgrep -P "$SPID" | tr '\n' ' ')
    kill -TERM "$SPID" 2> /dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SPID" 2> /dev/null || break
        sleep 0.1
    done
    if kill -0 "$SPID" 2> /dev/null; then
        log "$SPID did not stop in 10 s: SIGKILL"
        # shellcheck disable=SC2086 # a list of PIDs
        kill -KILL "$SPID" $kids 2> /dev/null
    fi
    wait "$SPID" 2> /dev/null
    SPID=""
    TREE=""
}

alive() { [ -n "$SPID" ] && kill -0 "$SPID" 2> /dev/null; }

# Server CPU time in clock ticks: utime + stime over TREE.
cpu_ticks() {
    local t=0 p s
    for p in $TREE; do
        { s=$(< "/proc/$p/stat"); } 2> /dev/null || continue
        s=${s##*) }
        # shellcheck disable=SC2086
        set -- $s
        t=$((t + ${12} + ${13}))
    done
    echo $t
}

# wrk_measure CONNS TIMEOUT wrk-args...: one wrk -t1 run of SECS on
# LG_CPU. Sets WRK_RC (wrk's exit status), WRK_OUT (its output),
# WRK_JSON (the WRKJSON line of bench/wrk_report.lua, empty when missing)
# and WRK_TICKS (the server's CPU ticks meanwhile).
wrk_measure() {
    local conns=$1 tmo=$2 c0 c1; shift 2
    c0=$(cpu_ticks)
    WRK_OUT=$(timeout -k 3 $((SECS + 30)) taskset -c "$LG_CPU" wrk -t1 -c"$conns" \
        -d"${SECS}s" --timeout "$tmo" "$@" 2>&1)
    WRK_RC=$?
    c1=$(cpu_ticks)
    WRK_TICKS=$((c1 - c0))
    WRK_JSON=$(printf '%s\n' "$WRK_OUT" | sed -n 's/^WRKJSON //p' | tail -n 1)
}

# rotated ROUND WORDS...: the words rotated left by ROUND-1 (each round
# starts with another server: warm caches and noise spread evenly).
rotated() {
    local r=$1 k n; shift
    n=$#
    local a=("$@") out=()
    for ((k = 0; k < n; k++)); do out+=("${a[$(((k + r - 1) % n))]}"); done
    echo "${out[*]}"
}

# ------------------------------------------------------------------ nginx
# nginx_conf DIR HTTP SERVER [MAIN]: writes DIR/nginx.conf, one worker in
# the foreground, no access log, keep-alive without limits, temp files in
# DIR; MAIN goes first (load_module), HTTP into the http block and SERVER
# into its one server block (listen, locations).
nginx_conf() {
    local d=$1 http=${2:+$2$'\n'} main=${4:+$4$'\n'}
    mkdir -p "$d"
    cat > "$d/nginx.conf" << EOF
${main}daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 20000; use epoll; }
http {
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
${http}    server {
$3
    }
}
EOF
}

# The command that runs the nginx of nginx_conf DIR.
nginx_cmd() { NGINX_CMD=(nginx -p "$1" -c "$1/nginx.conf" -e "$1/error.log"); }
