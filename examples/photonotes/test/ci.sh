#!/bin/sh
# SPDX-License-Identifier: MIT
# test/ci.sh DESTDIR - what CI runs for photonotes: builds it against the
# libappsrv installed under DESTDIR (PREFIX /usr/local) with pkg-config
# alone (as examples/check.sh does for the other examples), then runs the
# SQLite scenarios (always) and the PostgreSQL + HAProxy one (when
# PostgreSQL's server binaries, libpq and haproxy are installed).
set -eu
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: sh test/ci.sh DESTDIR" >&2; exit 2; }
root=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=/usr/local
[ -f "$root$prefix/lib/pkgconfig/appsrv.pc" ] ||
    { echo "ci.sh: no appsrv.pc under $root$prefix: make install DESTDIR=$root first" >&2; exit 1; }
# appsrv from DESTDIR (its Requires.private openssl from the system); the
# other libraries through plain pkg-config (SYS_PKG_CONFIG), unprefixed.
openssl_dir=$(pkg-config --variable=pcfiledir openssl 2>/dev/null || true)
pc="$root/pkg-config-appsrv"
cat > "$pc" <<EOS
#!/bin/sh
PKG_CONFIG_SYSROOT_DIR='$root' PKG_CONFIG_LIBDIR='$root$prefix/lib/pkgconfig${openssl_dir:+:$openssl_dir}' exec pkg-config "\$@"
EOS
chmod +x "$pc"
export LD_LIBRARY_PATH="$root$prefix/lib"
out=$(mktemp -d "${TMPDIR:-/tmp}/photonotes-ci.XXXXXX")
trap 'rm -rf "$out" "$pc"' EXIT
make -s -C "$here" OUT="$out" PKG_CONFIG="$pc" SYS_PKG_CONFIG=pkg-config
sh "$here/test/run.sh" "$out/photonotes"
if pkg-config --exists libpq && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 &&
    command -v haproxy >/dev/null; then
    timeout 200 /usr/bin/python3 "$here/test/pg_cluster.py" "$out/photonotes"
else
    echo "ci.sh: SKIP the PostgreSQL scenario (needs postgresql, libpq-dev, haproxy)"
fi
