/* SPDX-License-Identifier: MIT */
/*
 * accept.h - content negotiation on the Accept-Encoding request field
 * (RFC 9110 §12.5.3): a pure function, no state, no allocation. Used by
 * the gzip module to decide whether a response may be compressed.
 */
#ifndef APPSRV_ACCEPT_H
#define APPSRV_ACCEPT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Whether the Accept-Encoding field value value[0..len) accepts the gzip
 * coding: an explicit "gzip" or "x-gzip" (RFC 9110 §8.4.1.3) member decides
 * (acceptable when its qvalue is above 0; with several, the highest wins),
 * else "*" decides the same way, else no. Coding names and the "q"
 * parameter name are case-insensitive; empty list members and optional
 * whitespace are allowed. An empty value (the client wants no coding),
 * value NULL, and any malformed value (a bad token, a qvalue outside the
 * grammar such as "q=1.5" or "q=0.0001", a parameter other than q, a
 * stray character) answer false: uncompressed is always safe. Reads
 * exactly len bytes; value need not be NUL-terminated.
 */
bool appsrv__accepts_gzip(const char *value, size_t len);

#endif /* APPSRV_ACCEPT_H */
