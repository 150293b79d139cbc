/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ws.c - libFuzzer driver for the WebSocket wire format (lib/
 * ws_parse.c): the streaming frame decoder and the UTF-8 validator, pure
 * functions, so each input runs many times in a few ways that must agree.
 *
 * Input: byte 0 flags (bit 0: frames need not be masked; bit 1: a 64-byte
 * message cap instead of 1 MiB), bytes 1-2 a split offset, the rest the
 * byte stream a peer sends. Shorter inputs are padded with zeros.
 *
 * Checks (abort() is a finding): the decoder gives the same events -
 * reassembled messages, control frames, the error code - whole, split at
 * the offset, and byte by byte (inputs up to 4 KiB); every event stays in
 * bounds (used <= the bytes given, data inside them, a control payload at
 * most 125 bytes, a message at most the cap); a text message is valid
 * UTF-8; a close code is one that may be sent. The UTF-8 validator agrees
 * with a decoder written from RFC 3629's definitions and with itself when
 * the input is cut in two. Headers the frame writer makes parse back to
 * the same length; masking twice is the identity, also across pieces.
 * Every buffer given to the library is exactly sized, so ASan sees any
 * over-read.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "utf8_ref.h"
#include "ws_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK FUZZ_CHECK

#define MAX_INPUT (64 * 1024)

/* ------------------------------------------------------------ UTF-8 ref */
/* ref_utf8(): utf8_ref.h, shared with tests/test_ws_parse.c. */

static void check_utf8(const uint8_t *p, size_t n, size_t split)
{
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy != NULL);
    memcpy(copy, p, n);
    uint32_t st = appsrv__utf8_check(APPSRV__UTF8_ACCEPT, copy, n);
    int want = ref_utf8(copy, n);
    CHECK(want == -1  ? st == APPSRV__UTF8_REJECT
          : want == 1 ? st == APPSRV__UTF8_ACCEPT
                      : st != APPSRV__UTF8_ACCEPT && st != APPSRV__UTF8_REJECT);
    size_t k = n ? split % (n + 1) : 0;
    uint32_t s1 = appsrv__utf8_check(APPSRV__UTF8_ACCEPT, copy, k);
    CHECK(appsrv__utf8_check(s1, copy + k, n - k) == st);
    free(copy);
}

/* --------------------------------------------------------------- decoder */

/* The events of a run, folded into a hash and counters. */
typedef struct run {
    uint64_t hash;
    unsigned messages, controls;
    int error; /* 0, or the close code */
} run_t;

static void mix(run_t *r, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        r->hash = (r->hash ^ b[i]) * 1099511628211ull;
}

/*
 * Feeds in[0..n) in pieces (piece 0: whole; else that many bytes per
 * call; split > 0: two pieces cut there), keeping unconsumed bytes like a
 * connection. Each call gets an exactly-sized copy of what is pending.
 */
static void decode(const uint8_t *in, size_t n, size_t split, size_t piece, bool need_mask,
                   uint64_t max, run_t *r)
{
    appsrv__ws_rx_t rx;
    memset(&rx, 0, sizeof(rx));
    rx.max = max;
    rx.need_mask = need_mask;
    memset(r, 0, sizeof(*r));
    r->hash = 1469598103934665603ull;
    uint8_t *pend = malloc(n + 1);
    uint8_t *msg = NULL;
    CHECK(pend != NULL);
    size_t plen = 0, mlen = 0, mcap = 0, fed = 0;
    uint8_t mop = 0;
    bool in_msg = false;
    while (fed < n) {
        size_t take = n - fed;
        if (piece > 0 && take > piece)
            take = piece;
        if (split > 0 && fed < split && take > split - fed)
            take = split - fed;
        memcpy(pend + plen, in + fed, take);
        plen += take;
        fed += take;
        while (plen > 0) {
            uint8_t *p = malloc(plen);
            CHECK(p != NULL);
            memcpy(p, pend, plen);
            appsrv__ws_ev_t ev = appsrv__ws_rx_step(&rx, p, plen);
            if (ev.kind == APPSRV__WS_EV_ERROR) {
                CHECK(ev.code == 1002 || ev.code == 1007 || ev.code == 1009);
                r->error = ev.code;
                free(p);
                goto out; /* what was left unread depends on the split */
            }
            CHECK(ev.used <= plen);
            if (ev.kind == APPSRV__WS_EV_DATA) {
                CHECK(ev.data >= p && ev.data + ev.len <= p + plen);
                CHECK(ev.opcode == APPSRV__WS_OP_TEXT || ev.opcode == APPSRV__WS_OP_BINARY);
                CHECK(ev.first == !in_msg);
                if (ev.first) {
                    mlen = 0;
                    mop = ev.opcode;
                }
                CHECK(ev.opcode == mop);
                CHECK(mlen + ev.len <= max);
                if (mlen + ev.len + 1 > mcap) {
                    mcap = 2 * (mlen + ev.len + 1);
                    msg = realloc(msg, mcap);
                    CHECK(msg != NULL);
                }
                memcpy(msg + mlen, ev.data, ev.len);
                mlen += ev.len;
                in_msg = !ev.last;
                if (ev.last) {
                    if (mop == APPSRV__WS_OP_TEXT)
                        CHECK(ref_utf8(msg, mlen) == 1);
                    mix(r, &mop, 1);
                    mix(r, &mlen, sizeof(mlen));
                    mix(r, msg, mlen);
                    r->messages++;
                }
            } else if (ev.kind == APPSRV__WS_EV_CONTROL) {
                CHECK(ev.len <= APPSRV__WS_MAX_CONTROL);
                CHECK(ev.data >= p && ev.data + ev.len <= p + plen);
                CHECK(ev.opcode >= APPSRV__WS_OP_CLOSE && ev.opcode <= APPSRV__WS_OP_PONG);
                if (ev.opcode == APPSRV__WS_OP_CLOSE) {
                    CHECK(ev.code == APPSRV__WS_NO_STATUS ? ev.len == 0
                                                          : appsrv__ws_close_code_ok(ev.code));
                    if (ev.len > 2)
                        CHECK(ref_utf8(ev.data + 2, ev.len - 2) == 1);
                }
                mix(r, &ev.opcode, 1);
                mix(r, &ev.code, sizeof(ev.code));
                mix(r, ev.data, ev.len);
                r->controls++;
            }
            memmove(pend, pend + ev.used, plen - ev.used);
            plen -= ev.used;
            free(p);
            if (ev.kind == APPSRV__WS_EV_MORE && ev.used == 0)
                break;
        }
    }
    mix(r, &plen, sizeof(plen)); /* incomplete bytes at the end */
out:
    free(pend);
    free(msg);
}

static void check_same(const run_t *a, const run_t *b)
{
    CHECK(a->hash == b->hash && a->messages == b->messages && a->controls == b->controls &&
          a->error == b->error);
}

/* ------------------------------------------------------------ the rest */

static void check_frames_and_mask(const uint8_t *p, size_t n)
{
    /* A header the writer makes parses back (server frames: unmasked). */
    uint64_t len = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        len = len << 8 | p[i];
    len &= 0x7fffffffffffffffull;
    uint8_t h[APPSRV__WS_MAX_HEAD];
    unsigned op = n && (p[0] & 1) ? APPSRV__WS_OP_TEXT : APPSRV__WS_OP_BINARY;
    size_t hl = appsrv__ws_frame_head(h, op, len);
    appsrv__ws_frame_t f;
    CHECK(appsrv__ws_frame_parse(h, hl, false, &f) == (int)hl && f.len == len && f.fin);
    /* Masking twice is the identity, also done in two pieces. */
    if (n < 4)
        return;
    uint8_t *a = malloc(n), *b = malloc(n);
    CHECK(a != NULL && b != NULL);
    size_t cut = p[1] % n, off = p[2] & 3;
    appsrv__ws_mask(a, p, n, p, off);
    appsrv__ws_mask(b, p, cut, p, off);
    appsrv__ws_mask(b + cut, p + cut, n - cut, p, off + cut);
    CHECK(memcmp(a, b, n) == 0);
    appsrv__ws_mask(a, a, n, p, off);
    CHECK(memcmp(a, p, n) == 0);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t ctl[3] = {0, 0, 0};
    memcpy(ctl, data, size < 3 ? size : 3);
    const uint8_t *in = size > 3 ? data + 3 : data + size;
    size_t n = size > 3 ? size - 3 : 0;
    if (n > MAX_INPUT)
        n = MAX_INPUT;
    bool need_mask = !(ctl[0] & 1);
    uint64_t max = ctl[0] & 2 ? 64 : 1 << 20;
    size_t split = n ? ((size_t)ctl[1] << 8 | ctl[2]) % n : 0;

    check_utf8(in, n, split);
    check_frames_and_mask(in, n);

    run_t whole, other;
    decode(in, n, 0, 0, need_mask, max, &whole);
    if (split > 0) {
        decode(in, n, split, 0, need_mask, max, &other);
        check_same(&whole, &other);
    }
    if (n <= 4096) {
        decode(in, n, 0, 1, need_mask, max, &other);
        check_same(&whole, &other);
    }
    return 0;
}
