#!/bin/sh
# Installs into a scratch DESTDIR, then builds and runs examples/blocking_echo.c
# against that copy with nothing but pkg-config (shared and --static), checks
# that the shared library exports only appsrv_* symbols, and that uninstall
# removes every installed file. Twice: PREFIX=/usr/local, then PREFIX=/opt/x
# after a plain `make` (the installed appsrv.pc must name the install's
# PREFIX, not the one the build tree last used).
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
pid=
# The scratch install first, then the system's own .pc files (openssl, for
# a build with TLS: appsrv.pc then says Requires.private: openssl), but no
# appsrv.pc installed elsewhere on the machine.
syspc=$(pkg-config --variable pc_path pkg-config 2>/dev/null || true)
cc=${CC:-cc}

# check_prefix PREFIX ROOT: install with PREFIX into DESTDIR ROOT and check it.
check_prefix() {
    prefix=$1 root=$2
    make -s install DESTDIR="$root" PREFIX="$prefix"

    pc="$root$prefix/lib/pkgconfig/appsrv.pc"
    [ -f "$pc" ] || { echo "pkgcheck: $pc not installed" >&2; exit 1; }
    for v in prefix:"$prefix" libdir:"$prefix/lib" includedir:"$prefix/include"; do
        got=$(PKG_CONFIG_LIBDIR="$root$prefix/lib/pkgconfig" PKG_CONFIG_PATH='' \
              PKG_CONFIG_SYSROOT_DIR='' pkg-config --variable="${v%%:*}" appsrv)
        [ "$got" = "${v#*:}" ] || {
            echo "pkgcheck: PREFIX=$prefix installed appsrv.pc with ${v%%:*}=$got" \
                 "(want ${v#*:})" >&2; exit 1; }
    done

    export PKG_CONFIG_SYSROOT_DIR="$root"
    export PKG_CONFIG_PATH="$root$prefix/lib/pkgconfig"
    export PKG_CONFIG_LIBDIR="$PKG_CONFIG_PATH${syspc:+:$syspc}"
    # shellcheck disable=SC2046
    $cc -std=c11 -Wall -Wextra -Werror -o "$tmp/echo_shared" examples/blocking_echo.c \
        $(pkg-config --cflags --libs appsrv)
    # shellcheck disable=SC2046
    $cc -std=c11 -Wall -Wextra -Werror -static -o "$tmp/echo_static" examples/blocking_echo.c \
        $(pkg-config --cflags appsrv) $(pkg-config --static --libs appsrv) 2>/dev/null ||
    $cc -std=c11 -Wall -Wextra -Werror -o "$tmp/echo_static" examples/blocking_echo.c \
        $(pkg-config --cflags appsrv) "$root$prefix/lib/libappsrv.a" \
        $(pkg-config --static --libs-only-other appsrv)
    if ldd "$tmp/echo_static" 2>/dev/null | grep -q libappsrv; then
        echo "pkgcheck: static build links libappsrv dynamically" >&2; exit 1
    fi

    bad=$(nm -D --defined-only "$root$prefix/lib/libappsrv.so" | awk '{print $3}' |
          grep -v '^appsrv_' | grep -v '^APPSRV_' || true)
    if [ -n "$bad" ]; then
        echo "pkgcheck: non-appsrv symbols exported: $bad" >&2; exit 1
    fi
    soname=$(readelf -d "$root$prefix/lib/libappsrv.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
    [ "$soname" = libappsrv.so.0 ] || { echo "pkgcheck: SONAME is '$soname'" >&2; exit 1; }

    for bin in echo_shared echo_static; do
        # The first prefix's file holds a port that is closed now, and the
        # background child truncates it only when it gets to run: remove it.
        rm -f "$tmp/$bin.err"
        LD_LIBRARY_PATH="$root$prefix/lib" "$tmp/$bin" 127.0.0.1 0 2>"$tmp/$bin.err" &
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
    rm -f "$tmp/echo_shared" "$tmp/echo_static"

    make -s uninstall DESTDIR="$root" PREFIX="$prefix"
    left=$(find "$root" -type f -o -type l)
    [ -z "$left" ] || { echo "pkgcheck: left after uninstall: $left" >&2; exit 1; }
}

check_prefix /usr/local "$tmp/root"
# A plain build bakes the default PREFIX into build/appsrv.pc; installing
# with another PREFIX must regenerate it.
make -s
check_prefix /opt/x "$tmp/root-opt"
echo "pkgcheck: ok (PREFIX /usr/local and /opt/x: pkg-config variables," \
     "shared + static via pkg-config, symbols, SONAME, uninstall)"
