/* SPDX-License-Identifier: MIT */
/*
 * status.h - HTTP status codes and their reason phrases, the HTTP date,
 * and a decimal formatter: pure functions, no state. Used by loop.c (the
 * cached Date), http.c, line.c and server.c.
 */
#ifndef APPSRV_STATUS_H
#define APPSRV_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

/* The reason phrase of status (RFC 9110 §15), or its class phrase
 * ("Client Error") for codes without one. Static, never NULL. With len:
 * its length too (no strlen on the hot path). */
const char *appsrv__reason(int status);
const char *appsrv__reason_len(int status, size_t *len);

/* Writes the IMF-fixdate of t (RFC 9110 §5.6.7), 29 bytes plus a NUL:
 * out must hold 30. Fixed English names, whatever the host's locale. */
void appsrv__http_date(char *out, time_t t);

/* Writes v in decimal (no NUL); returns the digits written (1..20).
 * Inline: every response head has one or two. */
static inline size_t appsrv__fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

#endif /* APPSRV_STATUS_H */
