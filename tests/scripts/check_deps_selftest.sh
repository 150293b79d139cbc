#!/bin/sh
# SPDX-License-Identifier: MIT
# Self-test of tests/scripts/check_deps.py on copies of lib/: it must pass
# on an untouched copy, and fail (exit 1, naming the problem) when
#   1. a low module includes a high one: for an actual include edge A -> B
#      where lib/A.h exists, a file of B gets #include "A.h" (a back-edge:
#      outside the graph, and a cycle in the actual includes);
#   2. lib/DEPS declares that back-edge (a cycle in the declared graph);
#   3. a lib file belongs to no module of lib/DEPS.
# Works on whatever lib/DEPS says, so it survives restructuring.
set -eu
cd "$(dirname "$0")/../.."
check=tests/scripts/check_deps.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

die() { echo "check-deps self-test: $*" >&2; exit 1; }
fresh() { rm -rf "${tmp:?}/lib"; cp -R lib "$tmp/lib"; }
# expect_fail WHAT PATTERN...: the checker exits 1 and prints every PATTERN.
expect_fail() {
    what=$1; shift
    rc=0
    python3 "$check" "$tmp/lib" >"$tmp/out" 2>&1 || rc=$?
    [ "$rc" = 1 ] || { cat "$tmp/out" >&2; die "$what: checker exited $rc, want 1"; }
    for pat in "$@"; do
        grep -qF -- "$pat" "$tmp/out" ||
            { cat "$tmp/out" >&2; die "$what: output lacks '$pat'"; }
    done
}

fresh
python3 "$check" "$tmp/lib" >"$tmp/out" 2>&1 ||
    { cat "$tmp/out" >&2; die "fails on an untouched copy of lib/"; }

# An actual edge A -> B whose A has a header, and a file of B to edit.
python3 "$check" --edges "$tmp/lib" >"$tmp/edges"
edge=$(while read -r a b _; do
    for f in "$b.c" "$b.h"; do
        if [ -f "$tmp/lib/$a.h" ] && [ -f "$tmp/lib/$f" ]; then
            echo "$a $b $f"; break 2
        fi
    done
done <"$tmp/edges")
[ -n "$edge" ] || die "no include edge A -> B with a lib/A.h to invert"
# shellcheck disable=SC2086
set -- $edge
high=$1 low=$2 file=$3

# 1. The back-edge, as the first line of the low module's file.
{ echo "#include \"$high.h\""; cat "$tmp/lib/$file"; } >"$tmp/x"
mv "$tmp/x" "$tmp/lib/$file"
expect_fail "back-edge $low -> $high" "lib/$file:1: #include \"$high.h\"" \
    "cycle in the actual includes" "lib/$file:1)"

# 2. The same back-edge declared in DEPS (the includes untouched).
fresh
awk -v m="$low" -v d="$high" '
    $0 ~ "^[ \t]*" m "[ \t]*:" {
        c = ""; i = index($0, "#")
        if (i) { c = " " substr($0, i); $0 = substr($0, 1, i - 1) }
        $0 = $0 " " d c
    }
    { print }' lib/DEPS >"$tmp/lib/DEPS"
cmp -s lib/DEPS "$tmp/lib/DEPS" && die "found no line '$low:' in lib/DEPS"
expect_fail "declared cycle $low -> $high" "cycle in the declared graph"

# 3. A file in no module.
fresh
echo 'int appsrv__selftest;' >"$tmp/lib/zzselftest.c"
expect_fail "file in no module" "zzselftest.c: in no module"

echo "check-deps self-test: ok (passes on lib/, fails on back-edge $low -> $high," \
     "on it declared, on a file in no module)"
