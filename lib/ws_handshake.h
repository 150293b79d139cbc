/* SPDX-License-Identifier: MIT */
/*
 * ws_handshake.h - private contract of the opening-handshake helpers
 * (ws_handshake.c, RFC 6455 §4.2): SHA-1 (FIPS 180-4) and base64
 * (RFC 4648 §4) of our own, Sec-WebSocket-Key checks, the
 * Sec-WebSocket-Accept value and comma-separated token lists. Pure
 * functions: no I/O, no allocation. Called by ws.c, the unit tests and
 * bench/ws_limit.c.
 */
#ifndef APPSRV_WS_HANDSHAKE_H
#define APPSRV_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SHA-1 of data[0..len) into out[20]. */
void appsrv__sha1(const void *data, size_t len, uint8_t out[20]);

/* base64 of in[0..len) (with '=' padding) into out, which must hold
 * 4 * ((len + 2) / 3) + 1 bytes; NUL-terminated. Returns the length. */
size_t appsrv__base64(const uint8_t *in, size_t len, char *out);

/* True when key[0..len) is a valid Sec-WebSocket-Key: the base64 of 16
 * bytes (RFC 6455 §4.1, §11.3.1): 22 alphabet characters, the last with
 * its unused low bits zero, then "==". */
bool appsrv__ws_key_ok(const char *key, size_t len);

/* Writes the Sec-WebSocket-Accept value for key (RFC 6455 §4.2.2:
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))) into
 * out[29] (28 characters and a NUL). key is at most 64 bytes. */
void appsrv__ws_accept(const char *key, size_t len, char out[29]);

/* True when the comma-separated list v[0..n) (RFC 9110 §5.6.1: optional
 * whitespace around elements, empty elements allowed) holds token tok,
 * compared ASCII case-insensitively (ci) or exactly. */
bool appsrv__token_list_has(const char *v, size_t n, const char *tok, size_t tlen, bool ci);

#endif /* APPSRV_WS_HANDSHAKE_H */
