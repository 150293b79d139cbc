/* SPDX-License-Identifier: MIT */
/*
 * common.h - the few definitions every module of lib/ may use: the
 * container_of and branch-hint macros, the Server header value, and a
 * case-insensitive ASCII compare. No state, no I/O, no dependencies
 * beyond the public header. Everything that leaves a .c file through a
 * private header is named appsrv__* so a static link cannot collide with
 * the host's symbols. The module graph is in lib/DEPS (checked by
 * make test).
 */
#ifndef APPSRV_COMMON_H
#define APPSRV_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "appsrv.h"

#define APPSRV__SERVER_HEADER "appsrv/" APPSRV_VERSION_STRING

#define appsrv__container_of(ptr, type, member)                                \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#if defined(__GNUC__)
#define appsrv__likely(x) __builtin_expect(!!(x), 1)
#define appsrv__unlikely(x) __builtin_expect(!!(x), 0)
#else
#define appsrv__likely(x) (x)
#define appsrv__unlikely(x) (x)
#endif

/* ASCII case-insensitive equality of two byte strings (header names,
 * tokens). */
static inline bool appsrv__ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

#endif /* APPSRV_COMMON_H */
