/* SPDX-License-Identifier: MIT */
/*
 * ws_frames.c - raw WebSocket frames for the tests (contract in
 * ws_frames.h): the shortest length form, an optional mask, any first
 * header byte. Written from RFC 6455 §5.2 independently of lib/, so the
 * tests do not check the library against itself.
 */
#include "ws_frames.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t wsc_build(uint8_t *out, unsigned b0, const void *payload, size_t len, const uint8_t *key)
{
    size_t h = 0;
    out[h++] = (uint8_t)b0;
    uint8_t mbit = key != NULL ? 0x80 : 0;
    if (len < 126) {
        out[h++] = (uint8_t)(mbit | len);
    } else if (len <= 0xFFFF) {
        out[h++] = (uint8_t)(mbit | 126);
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = (uint8_t)(mbit | 127);
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (key != NULL) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    const uint8_t *src = payload;
    for (size_t i = 0; i < len; i++)
        out[h + i] = key != NULL ? (uint8_t)(src[i] ^ key[i & 3]) : src[i];
    return h + len;
}

static int buf_reserve(wsc_buf_t *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int wsc_buf_frame(wsc_buf_t *b, unsigned b0, const void *payload, size_t len, bool mask)
{
    if (buf_reserve(b, len + 14) < 0)
        return -ENOMEM;
    /* A key that differs per frame and uses all four bytes. */
    uint32_t k = 0x9a3c5e71u ^ (uint32_t)(b->len * 2654435761u);
    uint8_t key[4] = {(uint8_t)k, (uint8_t)(k >> 8), (uint8_t)(k >> 16), (uint8_t)(k >> 24)};
    b->len += wsc_build(b->p + b->len, b0, payload, len, mask ? key : NULL);
    return 0;
}

int wsc_buf_raw(wsc_buf_t *b, const void *data, size_t len)
{
    if (buf_reserve(b, len) < 0)
        return -ENOMEM;
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

void wsc_buf_free(wsc_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
