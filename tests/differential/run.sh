#!/bin/sh
# SPDX-License-Identifier: MIT
# run.sh - differential test of libappsrv's request parser against Node's
# llhttp (strict). Builds dump.c, extracts the payloads (fuzz/corpus/http/*
# as is; fuzz/corpus/conn/* without their 3 control bytes, line-protocol
# inputs skipped; tests/differential/cases/*), runs both sides over them,
# and lets compare.js print the table. Exit 0: every disagreement is
# explained by a README.md allowlist class; 1: an unexplained one; 2: setup.
# Run from anywhere: sh tests/differential/run.sh   (needs cc and node >= 18)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CC:-cc}
command -v node >/dev/null 2>&1 || { echo "run.sh: node not found" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/appsrv-diff.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/in"

$cc -std=c11 -D_GNU_SOURCE -O1 -Wall -Wextra -I"$root/include" -I"$root/lib" \
    "$here/dump.c" "$root/lib/http_parse.c" "$root/lib/http_parse_chunked.c" -o "$work/dump" || exit 2

for f in "$root"/fuzz/corpus/http/*; do
    [ -f "$f" ] && cp "$f" "$work/in/http__$(basename "$f")"
done
for f in "$root"/fuzz/corpus/conn/*; do
    [ -f "$f" ] || continue
    flags=$(od -An -tu1 -N1 "$f" | tr -d ' ')
    [ -n "$flags" ] || flags=0
    [ $((flags & 1)) -eq 0 ] || continue # F_LINE: line protocol, not HTTP
    tail -c +4 "$f" >"$work/in/conn__$(basename "$f")"
done
for f in "$here"/cases/*; do
    [ -f "$f" ] && cp "$f" "$work/in/case__$(basename "$f")"
done

cd "$work/in"
"$work/dump" * >"$work/appsrv.jsonl" || exit 2
timeout 60 node "$here/llhttp.js" * >"$work/llhttp.jsonl" || exit 2
node "$here/compare.js" "$work/appsrv.jsonl" "$work/llhttp.jsonl" "$here/README.md" "$work/in"
