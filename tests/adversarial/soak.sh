#!/bin/sh
# SPDX-License-Identifier: MIT
# soak.sh - long-running mixed traffic against the AddressSanitizer build of
# the appsrv CLI (issue 6). Builds `make BUILD=$SOAK_BUILD SANITIZE=1 all`
# and the adversarial client, starts the server on 127.0.0.1 (free ports),
# runs `adversarial --soak SOAK_SECONDS` (valid keep-alive requests with
# bodies up to 2 MiB, chunked and pipelined-free mixes, deferred responses,
# invalid and smuggling requests, random garbage, slow clients that get 408,
# resets mid-head/body/response/stream, line protocol with overlong lines),
# which checks the answers, the server's fds and RSS and a final request.
# Then SIGTERM: the server must exit 0, and its stderr (ASan and LeakSanitizer
# report there) must hold nothing but its listening and "stopped" lines.
#
# Environment: SOAK_SECONDS (600), SOAK_BUILD (build/asan), CC (cc),
# ADV_RSS_SLACK_MB (256 here: ASan's quarantine, held at 64 MiB, and its
# allocator caches count in RSS), ADV_RSS_TREND_MB (32: growth allowed over
# the second half), ADV_SEED. Prints the figures; exit 0 when all is well.
# Every wait is bounded.
set -eu
cd "$(dirname "$0")/../.."

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_BUILD=${SOAK_BUILD:-build/asan}
CC=${CC:-cc}
out=$SOAK_BUILD/soak
mkdir -p "$out"

echo "soak: building the ASan CLI ($SOAK_BUILD) and the client"
make -s BUILD="$SOAK_BUILD" SANITIZE=1 all
# The client is the adversarial program (tests/support linked in), built
# without sanitizers so that the load it makes is not slowed down.
make -s CC="$CC" build/tests/adversarial
cp build/tests/adversarial "$out/adversarial"

# The client raises its own open-file limit; raise ours for the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

errlog=$out/server.stderr
: > "$errlog"
# abort_on_error: a finding kills the server (and fails the soak) at once;
# leaks are reported at exit. A 64 MiB quarantine keeps RSS meaningful.
export ADV_RSS_SLACK_MB=${ADV_RSS_SLACK_MB:-256}
ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:quarantine_size_mb=64} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$SOAK_BUILD/appsrv" -p 0 -l 0 -t 2 --head-timeout 3 --idle-timeout 10 \
    --max-body 40000000 2>"$errlog" &
pid=$!
cleanup() {
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

# Wait (at most 20 s) for both listening lines.
i=0
while [ "$i" -lt 200 ]; do
    if grep -q 'listening on line://' "$errlog" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "soak: the server exited at start:"; cat "$errlog"; exit 1
    fi
    sleep 0.1
    i=$((i + 1))
done
hport=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$errlog")
lport=$(sed -n 's|.*listening on line://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$errlog")
if [ -z "$hport" ] || [ -z "$lport" ]; then
    echo "soak: no listening lines within 20 s:"; cat "$errlog"; exit 1
fi
case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
*/appsrv) ;;
*) echo "soak: pid $pid is not the server"; exit 1 ;;
esac
echo "soak: server pid $pid, http $hport, line $lport, $SOAK_SECONDS s"

rc=0
"$out/adversarial" --soak "$SOAK_SECONDS" --port "$hport" --line-port "$lport" --pid "$pid" ||
    rc=1

# Graceful stop: exit 0 within 20 s (drain timeout 10 s), LeakSanitizer
# runs at exit.
t0=$(date +%s)
kill -TERM "$pid" 2>/dev/null || true
status=
i=0
while [ "$i" -lt 200 ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" && status=0 || status=$?
        break
    fi
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$status" ]; then
    echo "soak: FAILED: no exit within 20 s of SIGTERM"
    rc=1
elif [ "$status" -ne 0 ]; then
    echo "soak: FAILED: exit status $status after SIGTERM"
    rc=1
else
    echo "soak: SIGTERM: exit 0 in $(( $(date +%s) - t0 )) s"
fi

# ASan, UBSan and LeakSanitizer print to stderr: nothing may be there but
# the listening lines and "stopped".
extra=$(grep -v -e '^appsrv: listening on ' -e '^appsrv: stopped$' "$errlog" || true)
if [ -n "$extra" ]; then
    echo "soak: FAILED: the server printed (full log: $errlog):"
    printf '%s\n' "$extra" | head -60
    rc=1
else
    echo "soak: server stderr clean (no ASan/UBSan/LSan report)"
fi
trap - EXIT INT TERM
if [ "$rc" -eq 0 ]; then
    echo "soak: PASSED"
else
    echo "soak: FAILED"
fi
exit "$rc"
