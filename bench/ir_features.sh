#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/ir_features.sh - instructions per keep-alive request under
# callgrind for one appsrv binary and a set of CLI flags: two runs that
# differ by 20,000 requests (reqloop, one connection, GET /plaintext),
# (Ir(21,000) - Ir(1,000)) / 20,000, start-up and shutdown cancelled out.
# Loopback only; each run bounded by timeout.
#
# usage: bench/ir_features.sh APPSRV_BIN REQLOOP_BIN [appsrv flags...]
# prints: IR <instructions/request> <flags>
set -euo pipefail
bin=$1 reqloop=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
irs=()
for n in 1000 21000; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$n" --dump-instr=no \
        "$bin" -p "$port" -t 1 -q "$@" 2> "$tmp/err.$n" > /dev/null &
    pid=$!
    for ((i = 0; i < 300; i++)); do
        timeout 5 "$reqloop" -p "$port" -n 1 > /dev/null 2>&1 && break
        sleep 0.1
    done
    # The probe above was one request more in both runs: it cancels out.
    timeout -k 3 300 "$reqloop" -p "$port" -n "$n" -x 'Hello, World!' > /dev/null
    kill -TERM "$pid"
    wait "$pid" || true
    irs+=("$(sed -n 's/^summary: *//p' "$tmp/cg.$n" | head -n 1)")
done
echo "IR $(((irs[1] - irs[0]) / 20000)) ${*:-(no flags)}"
