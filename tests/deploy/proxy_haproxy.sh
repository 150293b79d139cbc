#!/usr/bin/env bash
# tests/deploy/proxy_haproxy.sh - three appsrv instances behind HAProxy with
# the PROXY protocol v2 (send-proxy-v2, health checks with a LOCAL header),
# the configuration generated from contrib/haproxy/haproxy.cfg's settings:
#   1. load spreads over all three (requests counted in their access logs);
#   2. a request from 127.0.0.2 is logged with 127.0.0.2 as the client;
#   3. one instance stopped with SIGTERM under wrk load (4 s): zero failed
#      requests (non-2xx or socket errors), and HAProxy marks it down.
# Everything on loopback, every wait bounded. Run from the repository root.
. "$(dirname "$0")/proxy_lib.sh"
command -v haproxy >/dev/null || { echo "SKIP: no haproxy"; exit 0; }

for n in a b c; do
    start_appsrv "$n" --proxy-protocol --access-log
done
# Health checks use /health here: /ready comes with the deploy work.
CHECK=${CHECK_PATH:-/health}
HP=$(free_port)
sed -e "s|bind :8080|bind 127.0.0.1:$HP|" \
    -e "s|GET /ready|GET $CHECK|" \
    -e "s|inter 1s fall 2 rise 2|inter 200ms fall 1 rise 1|" \
    -e "s|server app1 127.0.0.1:8081|server app1 127.0.0.1:$PORT_a|" \
    -e "s|server app2 127.0.0.1:8082|server app2 127.0.0.1:$PORT_b|" \
    -e "s|server app3 127.0.0.1:8083|server app3 127.0.0.1:$PORT_c|" \
    contrib/haproxy/haproxy.cfg > "$T/haproxy.cfg"
grep -q "127.0.0.1:$PORT_c" "$T/haproxy.cfg" || fail "config not generated"
haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1 &
HPID=$!
PIDS+=("$HPID")
wait_http "http://127.0.0.1:$HP/health" haproxy

# 1. Spread: 60 requests, each instance gets some (roundrobin: ~20 each).
for i in $(seq 60); do
    curl -sf -o /dev/null -m 2 "http://127.0.0.1:$HP/plaintext?i=$i" || fail "request $i failed"
done
total=$(wait_lines 60 'GET /plaintext?i=' "$T"/[abc].log)
[ "$total" = 60 ] || fail "$total of 60 requests logged"
for n in a b c; do
    got=$(count_lines "$T/$n.log" 'GET /plaintext?i=')
    echo "instance $n: $got of 60 requests"
    [ "$got" -ge 10 ] || fail "instance $n got $got of 60 requests"
done

# 2. The real client: curl from 127.0.0.2; each instance logs the PROXY
# header's address, not HAProxy's.
for i in 1 2 3; do
    curl -sf -o /dev/null -m 2 --interface 127.0.0.2 "http://127.0.0.1:$HP/plaintext?from=2" \
        || fail "request from 127.0.0.2 failed"
done
got=$(wait_lines 3 '^127\.0\.0\.2 .*GET /plaintext?from=2' "$T"/[abc].log)
echo "requests from 127.0.0.2 logged with client 127.0.0.2: $got of 3"
[ "$got" = 3 ] || fail "client address not logged as 127.0.0.2"

# 3. Stop instance b gracefully under load.
if command -v wrk >/dev/null; then
    load_with_stop "http://127.0.0.1:$HP/plaintext?load=1" 4 1.5 "$PID_b" haproxy
    # b drained and exited by itself (SIGTERM is a graceful stop).
    for i in $(seq 100); do kill -0 "$PID_b" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID_b" 2>/dev/null && fail "instance b still running 10 s after SIGTERM"
    wait "$PID_b" || fail "instance b exited with an error"
    for n in a c; do
        echo "instance $n: $(count_lines "$T/$n.log" 'GET /plaintext?load=1') load requests"
    done
    echo "instance b (stopped): $(count_lines "$T/b.log" 'GET /plaintext?load=1') load requests"
    grep -q "app2 is DOWN" "$T/haproxy.log" || fail "haproxy never marked app2 down"
else
    echo "SKIP (part 3): no wrk"
fi
echo "proxy_haproxy: ok"
