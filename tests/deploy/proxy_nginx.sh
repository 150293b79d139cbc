#!/usr/bin/env bash
# tests/deploy/proxy_nginx.sh - appsrv behind nginx proxy_pass with
# X-Forwarded-For (contrib/nginx/appsrv.conf's location block, keep-alive
# upstream) and --trust-proxy 127.0.0.1/32:
#   1. curl from 127.0.0.2 through nginx: both instances log 127.0.0.2
#      (combined host field) and JSON has client 127.0.0.2, peer 127.0.0.1;
#   2. a client talking to appsrv directly from 127.0.0.3 cannot forge
#      X-Forwarded-For (not trusted: logged as 127.0.0.3);
#   3. wrk through nginx while one instance stops with SIGTERM: zero failed
#      requests (proxy_next_upstream).
# Loopback only, bounded. Run from the repository root.
. "$(dirname "$0")/proxy_lib.sh"
command -v nginx >/dev/null || { echo "SKIP: no nginx"; exit 0; }

start_appsrv a --trust-proxy 127.0.0.1/32 --access-log
start_appsrv b --trust-proxy 127.0.0.1/32 --access-log-format json
NP=$(free_port)
mkdir -p "$T/nginx"
# The location block of contrib/nginx/appsrv.conf, with our ports.
loc=$(sed -n '/^    location \/ {/,/^    }/p' contrib/nginx/appsrv.conf)
[ -n "$loc" ] || fail "no location block in contrib/nginx/appsrv.conf"
cat >"$T/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    upstream appsrv {
        server 127.0.0.1:$PORT_a max_fails=1 fail_timeout=5s;
        server 127.0.0.1:$PORT_b max_fails=1 fail_timeout=5s;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$NP;
$loc
    }
}
CONF
nginx -p "$T/nginx" -c "$T/nginx.conf" -e "$T/nginx.log" &
PIDS+=("$!")
wait_http "http://127.0.0.1:$NP/health" nginx

# 1. Real client through nginx.
for i in 1 2 3 4; do
    curl -sf -o /dev/null -m 2 --interface 127.0.0.2 "http://127.0.0.1:$NP/plaintext?n=$i" \
        || fail "request $i through nginx failed"
done
for i in $(seq 60); do # the logs are written within 100 ms
    ga=$(count_lines "$T/a.log" '^127\.0\.0\.2 .*GET /plaintext?n=')
    gb=$(count_lines "$T/b.log" '"client":"127\.0\.0\.2".*"peer":"127\.0\.0\.1')
    [ $((ga + gb)) -ge 4 ] && break
    sleep 0.05
done
echo "through nginx from 127.0.0.2: a logged $ga, b logged $gb (client 127.0.0.2)"
[ $((ga + gb)) = 4 ] || fail "expected 4 requests logged with client 127.0.0.2, got $ga + $gb"

# 2. Direct from an untrusted address: X-Forwarded-For ignored.
curl -sf -o /dev/null -m 2 --interface 127.0.0.3 -H 'X-Forwarded-For: 203.0.113.66' \
    "http://127.0.0.1:$PORT_a/plaintext?direct=1" || fail "direct request failed"
got=$(wait_lines 1 '^127\.0\.0\.3 .*GET /plaintext?direct=1' "$T/a.log")
[ "$got" = 1 ] || fail "forged X-Forwarded-For was believed from 127.0.0.3"
grep -q '^203\.0\.113\.66 ' "$T/a.log" && fail "forged address logged"
echo "direct from 127.0.0.3 with a forged X-Forwarded-For: logged as 127.0.0.3"

# 3. Load through nginx while b stops.
if command -v wrk >/dev/null; then
    load_with_stop "http://127.0.0.1:$NP/plaintext?load=1" 3 1 "$PID_b" nginx
fi
echo "proxy_nginx: ok"
