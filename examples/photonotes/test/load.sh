#!/bin/sh
# SPDX-License-Identifier: MIT
# test/load.sh BIN [DB] - a bounded load run over TLS: starts BIN on a free
# port (DB: a fresh SQLite file in a temp dir, a PostgreSQL connection
# string, or `pg`: a throw-away PostgreSQL cluster made for the run with
# initdb/pg_ctl on a unix socket in the temp dir, stopped at the end), makes
# one user with 100 notes and a 256 KiB photo, runs wrk (test/load.lua:
# 80 % reads, 15 % writes, 5 % photo downloads) for LOAD_SECONDS (20)
# with CONNS (32) connections on 2 threads, and prints req/s, latency and
# the CPU time of the server (and of PostgreSQL) over the run. Stops the
# server it started, removes its temp dir.
set -eu
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/photonotes-load.XXXXXX")
pid=
pg=
pgrun() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgstop() { [ -z "$pg" ] || pgrun "$pg/pg_ctl" -D "$tmp/pgdata" -m fast -w -t 30 stop >/dev/null || true; }
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; pgstop; rm -rf "$tmp"' EXIT
db=${2:-$tmp/notes.db}
if [ "$db" = pg ]; then
    pg=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [ -x "$pg/initdb" ] || { echo "load.sh: no initdb: apt-get install postgresql" >&2; exit 1; }
    mkdir "$tmp/sock"
    [ "$(id -u)" != 0 ] || chown postgres "$tmp" "$tmp/sock"
    pgrun "$pg/initdb" -D "$tmp/pgdata" -A trust -U photonotes --no-sync -E UTF8 >/dev/null
    pgrun "$pg/pg_ctl" -D "$tmp/pgdata" -l "$tmp/pg.log" -w -t 60 start \
        -o "-c listen_addresses='' -k $tmp/sock -c max_connections=40" >/dev/null
    db="host=$tmp/sock dbname=postgres user=photonotes"
fi
sh "$here/mkcert.sh" "$tmp/certs"
"$bin" --port 0 --db "$db" --photo-dir "$tmp/photos" --tls-cert "$tmp/certs/server.pem" --tls-key "$tmp/certs/server.key" \
    ${THREADS:+--threads "$THREADS"} 2>"$tmp/err" &
pid=$!
i=0
until port=$(sed 2>/dev/null -n 's/.*listening on https:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/err") &&
      [ -n "$port" ]; do
    i=$((i + 1))
    [ "$i" -lt 200 ] || { echo "load.sh: no listening line in 20 s: $(cat "$tmp/err")" >&2; exit 1; }
    sleep 0.1
done
b=https://127.0.0.1:$port
c="curl -sf --max-time 20 --cacert $tmp/certs/dev-ca.pem -H Content-Type:application/json"
user=load$$
$c -d "{\"username\":\"$user\",\"password\":\"correct horse\"}" "$b/v1/auth/register" >/dev/null
token=$($c -d "{\"username\":\"$user\",\"password\":\"correct horse\"}" "$b/v1/auth/login" |
        sed 's/.*"token":"\([0-9a-f]*\)".*/\1/')
first=
for n in $(seq 100); do
    id=$($c -H "Authorization: Bearer $token" -d '{"title":"seed","body":"a note to read"}' \
         "$b/v1/notes" | sed 's/.*"id":\([0-9]*\).*/\1/')
    first=${first:-$id}
done
[ "$first" = 1 ] || echo "load.sh: note ids start at $first (a shared database): reads of ids 1..100 may 404"
(printf '\377\330\377\340'; head -c 262140 /dev/urandom) > "$tmp/p.jpg"
photo=$(curl -sf --max-time 20 --cacert "$tmp/certs/dev-ca.pem" -H "Authorization: Bearer $token" \
        -F "photo=@$tmp/p.jpg" \
        "$b/v1/notes/$first/photos" | sed 's/.*"url":"\([^"]*\)".*/\1/')
[ -n "$photo" ] || { echo "load.sh: the photo upload failed" >&2; exit 1; }
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# PostgreSQL's share: the postmaster and its children (the backends that
# serve BIN's database threads live as long as the run).
pgcpu() {
    [ -n "$pg" ] || { echo 0; return; }
    cat /proc/[0-9]*/stat 2>/dev/null |
        awk -v pp="$(head -n 1 "$tmp/pgdata/postmaster.pid")" '$1 == pp || $4 == pp {s += $14 + $15} END {print s + 0}'
}
t0=$(cpu)
p0=$(pgcpu)
PN_TOKEN=$token PN_NOTES=100 PN_PHOTO=$photo timeout $((${LOAD_SECONDS:-20} + 30)) \
    wrk -t2 -c"${CONNS:-32}" -d"${LOAD_SECONDS:-20}s" --timeout 10s -s "$here/load.lua" "$b" |
    grep '^load:'
t1=$(cpu)
p1=$(pgcpu)
hz=$(getconf CLK_TCK)
echo "load: server CPU $(( (t1 - t0) * 100 / hz / ${LOAD_SECONDS:-20} ))% of one core over the run (user+sys)"
[ -z "$pg" ] || echo "load: PostgreSQL CPU $(( (p1 - p0) * 100 / hz / ${LOAD_SECONDS:-20} ))% of one core (postmaster and backends)"
kill "$pid"
wait "$pid" || true
pid=
pgstop
pg=
