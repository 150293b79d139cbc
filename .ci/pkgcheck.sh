#!/bin/sh
# Installs into a scratch DESTDIR, then builds and runs examples/blocking_echo.c
# against that copy with nothing but pkg-config (shared and --static), checks
# that the shared library exports only appsrv_* symbols, and that uninstall
# removes every installed file.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
pid=
prefix=/usr/local
make -s install DESTDIR="$tmp/root" PREFIX=$prefix

# The scratch install first, then the system's own .pc files (openssl, for
# a build with TLS: appsrv.pc then says Requires.private: openssl), but no
# appsrv.pc installed elsewhere on the machine.
syspc=$(pkg-config --variable pc_path pkg-config 2>/dev/null || true)
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
export PKG_CONFIG_PATH="$tmp/root$prefix/lib/pkgconfig"
export PKG_CONFIG_LIBDIR="$PKG_CONFIG_PATH${syspc:+:$syspc}"
cc=${CC:-cc}
# shellcheck disable=SC2046
$cc -std=c11 -Wall -Wextra -Werror -o "$tmp/echo_shared" examples/blocking_echo.c \
    $(pkg-config --cflags --libs appsrv)
# shellcheck disable=SC2046
$cc -std=c11 -Wall -Wextra -Werror -static -o "$tmp/echo_static" examples/blocking_echo.c \
    $(pkg-config --cflags appsrv) $(pkg-config --static --libs appsrv) 2>/dev/null ||
$cc -std=c11 -Wall -Wextra -Werror -o "$tmp/echo_static" examples/blocking_echo.c \
    $(pkg-config --cflags appsrv) "$tmp/root$prefix/lib/libappsrv.a" \
    $(pkg-config --static --libs-only-other appsrv)
if ldd "$tmp/echo_static" 2>/dev/null | grep -q libappsrv; then
    echo "pkgcheck: static build links libappsrv dynamically" >&2; exit 1
fi

bad=$(nm -D --defined-only "$tmp/root$prefix/lib/libappsrv.so" | awk '{print $3}' |
      grep -v '^appsrv_' | grep -v '^APPSRV_' || true)
if [ -n "$bad" ]; then
    echo "pkgcheck: non-appsrv symbols exported: $bad" >&2; exit 1
fi
soname=$(readelf -d "$tmp/root$prefix/lib/libappsrv.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libappsrv.so.0 ] || { echo "pkgcheck: SONAME is '$soname'" >&2; exit 1; }

for bin in echo_shared echo_static; do
    LD_LIBRARY_PATH="$tmp/root$prefix/lib" "$tmp/$bin" 127.0.0.1 0 2>"$tmp/$bin.err" &
    pid=$!
    port=
    for _ in $(seq 50); do
        # the file may not exist yet: the server's shell creates it
        port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/$bin.err" 2>/dev/null || true)
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "pkgcheck: $bin did not listen" >&2; exit 1; }
    out=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"PING\nECHO hi\r\nNOPE\nQUIT\n")
data = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    data += d
sys.stdout.write(data.decode())
PY
)
    expect=$(printf '200 OK PONG\n200 OK hi\n404 Not Found\n200 OK BYE')
    [ "$out" = "$expect" ] || { echo "pkgcheck: $bin answered: $out" >&2; exit 1; }
    kill -INT "$pid"
    wait "$pid" || { echo "pkgcheck: $bin did not exit cleanly" >&2; exit 1; }
    pid=
done

make -s uninstall DESTDIR="$tmp/root" PREFIX=$prefix
left=$(find "$tmp/root" -type f -o -type l)
[ -z "$left" ] || { echo "pkgcheck: left after uninstall: $left" >&2; exit 1; }
echo "pkgcheck: ok (shared + static via pkg-config, symbols, SONAME, uninstall)"
