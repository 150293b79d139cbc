#!/bin/sh
# SPDX-License-Identifier: MIT
# test/mkcert.sh DIR - a development CA (openssl req -x509) and a server
# certificate it signs for localhost, 127.0.0.1, ::1 and 10.0.2.2 (the
# host as the Android emulator sees it), in DIR: dev-ca.pem (trust this
# one on devices), server.pem, server.key. Used by `make cert` and tests.
set -eu
d=$1
mkdir -p "$d"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj '/CN=photonotes development CA' -keyout "$d/dev-ca.key" -out "$d/dev-ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=localhost' \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1,IP:10.0.2.2' \
    'extendedKeyUsage=serverAuth' 'basicConstraints=CA:FALSE' > "$d/server.ext"
openssl x509 -req -in "$d/server.csr" -CA "$d/dev-ca.pem" -CAkey "$d/dev-ca.key" \
    -CAcreateserial -days 825 -sha256 -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
rm -f "$d/server.csr" "$d/server.ext" "$d/dev-ca.srl"
