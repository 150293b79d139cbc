/* SPDX-License-Identifier: MIT */
/*
 * utf8_ref.h - a reference UTF-8 decoder written from RFC 3629's
 * definitions, nothing shared with lib/ws_parse.c's DFA: what
 * fuzz/fuzz_ws.c and tests/test_ws_parse.c check the validator against.
 * Header only, plain C11.
 */
#ifndef APPSRV_FUZZ_UTF8_REF_H
#define APPSRV_FUZZ_UTF8_REF_H

#include <stddef.h>
#include <stdint.h>

/* RFC 3629 from its definitions: -1 invalid, 0 a valid prefix that is not
 * complete, 1 valid and complete. */
static inline int ref_utf8(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t need;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            need = 1, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            need = 2, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            need = 3, cp = b & 0x07, min = 0x10000;
        } else {
            return -1;
        }
        size_t k = 1;
        for (; k <= need && i + k < n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return -1;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if (k <= need) {
            /* Truncated: can some continuation make it valid? Check the
             * smallest and largest completions. */
            size_t missing = need + 1 - k;
            uint32_t lo = cp << (6 * missing), hi = lo | ((1u << (6 * missing)) - 1);
            if (hi < min || lo > 0x10FFFF)
                return -1;
            if (lo >= 0xD800 && hi <= 0xDFFF)
                return -1;
            return 0;
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        i += need + 1;
    }
    return 1;
}

#endif /* APPSRV_FUZZ_UTF8_REF_H */
