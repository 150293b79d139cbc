#!/bin/sh
# SPDX-License-Identifier: MIT
# make deploy-test: the deployment end-to-end tests against the CLI, each a
# script in this directory that prints "NAME: P passed, F failed" and exits
# non-zero on a failure (add a new one by dropping it here). Runs
# every tests/deploy/*.py and *.sh test (not this file, not common.py, not
# the proxy_*.sh scripts of make proxy-test) and
# prints the totals; exits 1 when anything failed or a tool is missing.
# Needs systemd-socket-activate (systemd), start_server
# (libserver-starter-perl), h2load (nghttp2-client), ab (apache2-utils),
# nstat (iproute2), curl, python3. Loopback only; about a minute.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${APPSRV_BIN:?set APPSRV_BIN to the appsrv binary (make deploy-test does)}"
export APPSRV_BIN
DEPLOY_SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/appsrv-deploy.XXXXXX")
export DEPLOY_SCRATCH
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the tree
trap 'rm -rf "$DEPLOY_SCRATCH"' EXIT

missing=
for t in systemd-socket-activate start_server h2load ab nstat curl python3; do
    command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
    echo "deploy-test: missing tools:$missing (see .ci/run for the Debian packages)" >&2
    exit 1
fi

# The kernel's listen-drop counters (nstat) and the ports are per network
# namespace: as root, each script runs in a private one with only its own
# loopback, so other work on the machine neither disturbs nor is disturbed
# by it. Otherwise they run here, and a drop elsewhere can fail the check.
netns=""
if [ "$(id -u)" = 0 ] && unshare -n sh -c 'ip link set lo up' >/dev/null 2>&1; then
    netns="unshare -n"
    echo "deploy-test: each script in a private network namespace (unshare -n)"
else
    echo "deploy-test: not root: the scripts share the machine's network namespace"
fi
# shellcheck disable=SC2016 # expanded by the inner shell
in_ns='[ -z "$1" ] || ip link set lo up; shift; exec "$@"'

scripts_ok=0 scripts_failed=0
out="$DEPLOY_SCRATCH/out"
for t in "$here"/*.py "$here"/*.sh; do
    [ -f "$t" ] || continue
    # proxy_*.sh are make proxy-test's (bash, APPSRV=...).
    case "$(basename "$t")" in run.sh|common.py|proxy_*) continue ;; esac
    start=$(date +%s)
    case "$t" in
    *.py) interp=python3 ;;
    *) interp=sh ;;
    esac
    # shellcheck disable=SC2086 # $netns is empty or two words
    timeout 300 $netns sh -c "$in_ns" sh "$netns" "$interp" "$t" >"$out" 2>&1
    rc=$?
    cat "$out"
    echo "  ($(basename "$t"): exit $rc, $(( $(date +%s) - start )) s)"
    if [ $rc -eq 0 ]; then scripts_ok=$((scripts_ok + 1)); else scripts_failed=$((scripts_failed + 1)); fi
    cat "$out" >>"$DEPLOY_SCRATCH/all"
done
passed=$(sed -n 's/.*: \([0-9][0-9]*\) passed, [0-9][0-9]* failed.*/\1/p' "$DEPLOY_SCRATCH/all" | awk '{s+=$1} END {print s+0}')
failed=$(sed -n 's/.*: [0-9][0-9]* passed, \([0-9][0-9]*\) failed.*/\1/p' "$DEPLOY_SCRATCH/all" | awk '{s+=$1} END {print s+0}')
echo "deploy-test: $passed checks passed, $failed failed; $scripts_ok scripts ok, $scripts_failed failed"
[ "$failed" -eq 0 ] && [ "$scripts_failed" -eq 0 ]
