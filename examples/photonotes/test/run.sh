#!/bin/sh
# SPDX-License-Identifier: MIT
# test/run.sh BIN [N] - runs the two end-to-end scenarios on SQLite N times
# (default 1): test/e2e.mjs (Node 20: fetch + WebSocket) and test/e2e.py
# (Python: http.client + SSE), with a dev certificate made for the run in
# a temp dir (removed at the end). Each scenario starts and stops its own
# servers and bounds its own waits; `timeout` bounds each run as a whole.
set -eu
bin=$1
n=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
[ -x "$bin" ] || { echo "run.sh: $bin is not built" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/photonotes-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
sh "$here/mkcert.sh" "$tmp/certs"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
i=0
while [ "$i" -lt "$n" ]; do
    i=$((i + 1))
    # Node's own WebSocket (20.10+, behind a flag) or the npm ws package.
    flag=--experimental-websocket
    node $flag -e 1 2>/dev/null || flag=
    if command -v node >/dev/null && { [ -n "$flag" ] ||
        [ -d "$here/../../../tests/interop/node_modules/ws" ]; }; then
        NODE_EXTRA_CA_CERTS="$tmp/certs/dev-ca.pem" timeout 180 \
            node --no-warnings $flag "$here/e2e.mjs" "$bin" "$tmp/certs"
    else
        echo "run.sh: SKIP e2e.mjs (needs node >= 20.10, or make interop-deps for npm ws)"
    fi
    timeout 180 "$py" "$here/e2e.py" "$bin" "$tmp/certs"
    [ "$n" -gt 1 ] && echo "run.sh: run $i of $n passed"
done
exit 0
