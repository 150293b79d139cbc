/* SPDX-License-Identifier: MIT */
/*
 * static.h - private parts of static.c (static directories) for the unit
 * tests; appsrv_static() itself is in appsrv.h.
 */
#ifndef APPSRV_STATIC_H
#define APPSRV_STATIC_H

#include <stdatomic.h>
#include <stddef.h>

#include "common.h"

/* Decodes and checks the raw path rest after "<prefix>/" into out:
 * returns its length (a trailing '/' dropped), or -1 when refused
 * (".", "..", empty segments, %2f, %5c, %00, a raw '\', controls, bad
 * escapes, invalid UTF-8, too long for cap). */
int appsrv__static_decode(const char *raw, size_t n, char *out, size_t cap);

/* Tests set it to force the O_NOFOLLOW walk (as on kernels without
 * openat2); set by static.c itself when openat2 answers ENOSYS. */
extern atomic_bool appsrv__static_no_openat2;

#endif /* APPSRV_STATIC_H */
