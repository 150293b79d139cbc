/* SPDX-License-Identifier: MIT */
/*
 * test_ws_parse.c - unit tests of the pure WebSocket layer: the UTF-8
 * validator (table rows and exhaustive short sequences against a decoder
 * written from RFC 3629's definitions), frame headers, masking, close
 * payloads, the streaming decoder (each row whole, split at every byte
 * offset and byte by byte, all runs giving the same events), SHA-1
 * (FIPS 180-4 vectors), base64 and the handshake's accept value (RFC
 * 6455 §1.3's example). Inputs end at an unreadable page, so any
 * over-read faults.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../fuzz/utf8_ref.h"
#include "e2e.h"
#include "ws_frames.h"
#include "ws_handshake.h"
#include "ws_parse.h"

#define TMO .timeout = 60

/* ------------------------------------------------------------ guard page */

typedef struct guard {
    uint8_t *map, *end;
    size_t map_len, cap;
} guard_t;

static void guard_init(guard_t *g, size_t cap)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (cap + pg - 1) / pg * pg;
    g->map_len = data + pg;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(g->map, MAP_FAILED);
    cr_assert_eq(mprotect(g->map + data, pg, PROT_NONE), 0);
    g->end = g->map + data;
    g->cap = data;
}

static void guard_dispose(guard_t *g)
{
    munmap(g->map, g->map_len);
}

/* A writable copy of in[0..n) that ends where the unreadable page starts. */
static uint8_t *guard_place(guard_t *g, const void *in, size_t n)
{
    cr_assert_leq(n, g->cap);
    memcpy(g->end - n, in, n);
    return g->end - n;
}

/* ------------------------------------------------------------ UTF-8 ref */
/* ref_utf8(): fuzz/utf8_ref.h, shared with fuzz/fuzz_ws.c. */

static int dfa_class(uint32_t st)
{
    return st == APPSRV__UTF8_REJECT ? -1 : st == APPSRV__UTF8_ACCEPT ? 1 : 0;
}

/* -------------------------------------------------------------- UTF-8 rows */

typedef struct utf8_row {
    const char *name;
    const char *s;
    size_t len;
    bool valid;
} utf8_row_t;

#define U(name, lit, ok)                                                                           \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, ok                                                             \
    }

static const utf8_row_t utf8_rows[] = {
    U("empty", "", true),
    U("ascii", "Hello-World", true),
    U("ascii long (fast path)", "0123456789abcdefghijklmnopqrstuvwxyz0123456789", true),
    U("kosme (Autobahn 6.2)", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true),
    U("2-byte min U+0080", "\xc2\x80", true),
    U("2-byte max U+07FF", "\xdf\xbf", true),
    U("3-byte min U+0800", "\xe0\xa0\x80", true),
    U("U+D7FF", "\xed\x9f\xbf", true),
    U("U+E000", "\xee\x80\x80", true),
    U("U+FFFD", "\xef\xbf\xbd", true),
    U("U+FFFF", "\xef\xbf\xbf", true),
    U("4-byte min U+10000", "\xf0\x90\x80\x80", true),
    U("U+10FFFF", "\xf4\x8f\xbf\xbf", true),
    U("mixed after ascii run", "abcdefgh\xe2\x82\xac ijklmnop\xf0\x9f\x98\x80", true),
    U("NUL is valid", "a\0b", true),
    U("lone continuation", "\x80", false),
    U("continuation after ascii run", "abcdefghijk\xbf", false),
    U("C0 overlong", "\xc0\x80", false),
    U("C1 overlong", "\xc1\xbf", false),
    U("E0 overlong", "\xe0\x80\x80", false),
    U("E0 9F overlong", "\xe0\x9f\xbf", false),
    U("F0 overlong", "\xf0\x80\x80\x80", false),
    U("F0 8F overlong", "\xf0\x8f\xbf\xbf", false),
    U("surrogate D800", "\xed\xa0\x80", false),
    U("surrogate DFFF", "\xed\xbf\xbf", false),
    U("surrogate pair (CESU)", "\xed\xa0\x80\xed\xb0\x80", false),
    U("above U+10FFFF", "\xf4\x90\x80\x80", false),
    U("F5 lead", "\xf5\x80\x80\x80", false),
    U("FE", "\xfe", false),
    U("FF", "\xff", false),
    U("truncated 2 then ascii",
      "\xc2"
      "a",
      false),
    U("truncated 3 then ascii",
      "\xe2\x82"
      "a",
      false),
    U("truncated 4 at end", "\xf0\x9f\x98", false),
    U("truncated 2 at end", "\xce", false),
    U("5-byte form", "\xf8\x88\x80\x80\x80", false),
    U("Autobahn 6.3.1 tail",
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
      "edited",
      false),
};

/* Runs s through the validator in pieces: whole, split at k, or one byte
 * at a time (step 1). Every intermediate state must match the reference
 * on that prefix. Returns the final state. */
static uint32_t run_pieces(guard_t *g, const uint8_t *s, size_t len, size_t split, bool bytewise)
{
    uint32_t st = APPSRV__UTF8_ACCEPT;
    size_t i = 0;
    while (i < len) {
        size_t piece = bytewise ? 1 : (i == 0 && split > 0 ? split : len - i);
        const uint8_t *p = guard_place(g, s + i, piece);
        st = appsrv__utf8_check(st, p, piece);
        i += piece;
        cr_assert_eq(dfa_class(st), ref_utf8(s, i), "prefix %zu", i);
    }
    return st;
}

Test(ws_utf8, table_whole_split_bytewise, TMO)
{
    guard_t g;
    guard_init(&g, 4096);
    for (size_t r = 0; r < sizeof(utf8_rows) / sizeof(utf8_rows[0]); r++) {
        const utf8_row_t *row = &utf8_rows[r];
        const uint8_t *s = (const uint8_t *)row->s;
        bool complete_ok = ref_utf8(s, row->len) == 1;
        cr_assert_eq(complete_ok, row->valid, "%s: the reference disagrees with the row",
                     row->name);
        uint32_t whole = run_pieces(&g, s, row->len, 0, false);
        cr_assert_eq(whole == APPSRV__UTF8_ACCEPT, row->valid, "%s: whole", row->name);
        for (size_t k = 1; k < row->len; k++) {
            uint32_t st = run_pieces(&g, s, row->len, k, false);
            cr_assert_eq(st, whole, "%s: split at %zu", row->name, k);
        }
        cr_assert_eq(run_pieces(&g, s, row->len, 0, true), whole, "%s: bytewise", row->name);
    }
    guard_dispose(&g);
}

/* Every 1- and 2-byte string, and every 3-byte string that starts with a
 * 3-byte lead, against the reference. */
Test(ws_utf8, exhaustive_short, .timeout = 300)
{
    uint8_t b[4];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        cr_assert_eq(dfa_class(appsrv__utf8_check(0, b, 1)), ref_utf8(b, 1), "%02x", x);
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            cr_assert_eq(dfa_class(appsrv__utf8_check(0, b, 2)), ref_utf8(b, 2), "%02x %02x", x, y);
        }
    }
    for (unsigned x = 0xE0; x <= 0xEF; x++)
        for (unsigned y = 0; y < 256; y++)
            for (unsigned z = 0; z < 256; z++) {
                b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = (uint8_t)z;
                if (dfa_class(appsrv__utf8_check(0, b, 3)) != ref_utf8(b, 3))
                    cr_assert_fail("%02x %02x %02x", x, y, z);
            }
    /* 4-byte leads with every second byte and a sample of the rest. */
    for (unsigned x = 0xF0; x <= 0xF7; x++)
        for (unsigned y = 0; y < 256; y++)
            for (unsigned z = 0x70; z < 0xD0; z += 7) {
                b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = (uint8_t)z, b[3] = 0xBF;
                if (dfa_class(appsrv__utf8_check(0, b, 4)) != ref_utf8(b, 4))
                    cr_assert_fail("%02x %02x %02x bf", x, y, z);
            }
}

/* Random strings biased towards multi-byte sequences, whole and split. */
Test(ws_utf8, random_against_reference, TMO)
{
    static const uint8_t pool[] = {0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                   0xc0, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef,
                                   0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff, 0x00, 0x20};
    uint32_t x = 12345;
    uint8_t s[24];
    for (int it = 0; it < 200000; it++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t n = x % sizeof(s);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            s[i] = pool[x % sizeof(pool)];
        }
        uint32_t st = appsrv__utf8_check(0, s, n);
        cr_assert_eq(dfa_class(st), ref_utf8(s, n));
        size_t k = n ? x % n : 0;
        cr_assert_eq(appsrv__utf8_check(appsrv__utf8_check(0, s, k), s + k, n - k), st);
    }
}

/* -------------------------------------------------------------- frames */

typedef struct frame_row {
    const char *name;
    const char *in;
    size_t len;
    bool need_mask;
    int want; /* header length or -1002 */
    uint64_t flen;
    uint8_t op;
    bool fin;
} frame_row_t;

#define FR(name, lit, mask, want, flen, op, fin)                                                   \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, mask, want, flen, op, fin                                      \
    }
#define K "\x01\x02\x03\x04"

static const frame_row_t frame_rows[] = {
    FR("text, masked", "\x81\x85" K, true, 6, 5, 1, true),
    FR("binary, unmasked (client side)", "\x82\x00", false, 2, 0, 2, true),
    FR("continuation, not fin", "\x00\x83" K, true, 6, 3, 0, false),
    FR("16-bit length", "\x82\xfe\x00\x7e" K, true, 8, 126, 2, true),
    FR("16-bit max", "\x82\xfe\xff\xff" K, true, 8, 65535, 2, true),
    FR("64-bit length", "\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00" K, true, 14, 65536, 2, true),
    FR("64-bit 2^63-1", "\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff" K, true, 14,
       0x7fffffffffffffffull, 2, true),
    FR("ping 125", "\x89\xfd" K, true, 6, 125, 9, true),
    FR("close empty", "\x88\x80" K, true, 6, 0, 8, true),
    FR("pong", "\x8a\x80" K, true, 6, 0, 10, true),
    FR("unmasked client frame", "\x81\x05", true, -1002, 0, 0, false),
    FR("RSV1", "\xc1\x80" K, true, -1002, 0, 0, false),
    FR("RSV2", "\xa1\x80" K, true, -1002, 0, 0, false),
    FR("RSV3", "\x91\x80" K, true, -1002, 0, 0, false),
    FR("opcode 3", "\x83\x80" K, true, -1002, 0, 0, false),
    FR("opcode 7", "\x87\x80" K, true, -1002, 0, 0, false),
    FR("opcode B", "\x8b\x80" K, true, -1002, 0, 0, false),
    FR("opcode F", "\x8f\x80" K, true, -1002, 0, 0, false),
    FR("fragmented ping", "\x09\x80" K, true, -1002, 0, 0, false),
    FR("fragmented close", "\x08\x80" K, true, -1002, 0, 0, false),
    FR("ping 126", "\x89\xfe\x00\x7e" K, true, -1002, 0, 0, false),
    FR("close 127", "\x88\xff\x00\x00\x00\x00\x00\x00\x00\x7f" K, true, -1002, 0, 0, false),
    FR("64-bit top bit", "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00" K, true, -1002, 0, 0, false),
    FR("16-bit not shortest", "\x82\xfe\x00\x7d" K, true, -1002, 0, 0, false),
    FR("64-bit not shortest", "\x82\xff\x00\x00\x00\x00\x00\x00\xff\xff" K, true, -1002, 0, 0,
       false),
};

Test(ws_frame, parse_table_every_prefix, TMO)
{
    guard_t g;
    guard_init(&g, 4096);
    for (size_t r = 0; r < sizeof(frame_rows) / sizeof(frame_rows[0]); r++) {
        const frame_row_t *row = &frame_rows[r];
        appsrv__ws_frame_t f;
        uint8_t *p = guard_place(&g, row->in, row->len);
        int rc = appsrv__ws_frame_parse(p, row->len, row->need_mask, &f);
        cr_assert_eq(rc, row->want, "%s: %d", row->name, rc);
        if (rc > 0) {
            cr_assert_eq(f.len, row->flen, "%s", row->name);
            cr_assert_eq(f.opcode, row->op, "%s", row->name);
            cr_assert_eq(f.fin, row->fin, "%s", row->name);
            cr_assert_eq(f.masked, row->need_mask, "%s", row->name);
            if (f.masked)
                cr_assert_eq(memcmp(f.mask, K, 4), 0, "%s", row->name);
        }
        /* Byte by byte: every prefix needs more, or already fails the
         * same way. */
        for (size_t k = 0; k < row->len; k++) {
            p = guard_place(&g, row->in, k);
            int pr = appsrv__ws_frame_parse(p, k, row->need_mask, &f);
            cr_assert(pr == 0 || (row->want < 0 && pr == row->want), "%s: prefix %zu gave %d",
                      row->name, k, pr);
        }
    }
    guard_dispose(&g);
}

Test(ws_frame, head_writer_round_trips, TMO)
{
    static const uint64_t lens[] = {
        0, 1, 125, 126, 127, 65535, 65536, 1ull << 32, (1ull << 63) - 1};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t h[APPSRV__WS_MAX_HEAD];
        size_t n = appsrv__ws_frame_head(h, APPSRV__WS_OP_BINARY, lens[i]);
        cr_assert_eq(n, lens[i] < 126 ? 2u : lens[i] <= 65535 ? 4u : 10u);
        appsrv__ws_frame_t f;
        cr_assert_eq(appsrv__ws_frame_parse(h, n, false, &f), (int)n);
        cr_assert_eq(f.len, lens[i]);
        cr_assert(f.fin && !f.masked && f.opcode == APPSRV__WS_OP_BINARY);
    }
}

Test(ws_frame, mask_matches_naive_any_offset, TMO)
{
    const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t src[80], dst[80], want[80];
    e2e_fill_pattern(src, sizeof(src), 7);
    for (size_t n = 0; n <= sizeof(src); n++)
        for (size_t off = 0; off < 8; off++) {
            for (size_t i = 0; i < n; i++)
                want[i] = src[i] ^ key[(off + i) & 3];
            appsrv__ws_mask(dst, src, n, key, off);
            cr_assert_eq(memcmp(dst, want, n), 0, "n %zu off %zu", n, off);
            memcpy(dst, src, n);
            appsrv__ws_mask(dst, dst, n, key, off); /* in place */
            cr_assert_eq(memcmp(dst, want, n), 0, "in place, n %zu off %zu", n, off);
        }
}

/* -------------------------------------------------------------- close */

Test(ws_close, codes, TMO)
{
    for (unsigned c = 0; c < 70000; c++) {
        bool want =
            (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
        cr_assert_eq(appsrv__ws_close_code_ok(c), want, "code %u", c);
    }
}

Test(ws_close, payloads, TMO)
{
    uint16_t code = 0;
    cr_assert_eq(appsrv__ws_close_parse((const uint8_t *)"", 0, &code), 0);
    cr_assert_eq(code, 1005);
    cr_assert_eq(appsrv__ws_close_parse((const uint8_t *)"\x03", 1, &code), -1002);
    cr_assert_eq(appsrv__ws_close_parse((const uint8_t *)"\x03\xe8", 2, &code), 0);
    cr_assert_eq(code, 1000);
    cr_assert_eq(appsrv__ws_close_parse((const uint8_t *)"\x03\xe8ok \xc3\xa9", 7, &code), 0);
    cr_assert_eq(appsrv__ws_close_parse((const uint8_t *)"\x03\xe8\xed\xa0\x80", 5, &code), -1007);
    cr_assert_eq(appsrv__ws_close_parse((const uint8_t *)"\x03\xed", 2, &code), -1002); /* 1005 */
    cr_assert_eq(appsrv__ws_close_parse((const uint8_t *)"\x03\xee", 2, &code), -1002); /* 1006 */
    cr_assert_eq(appsrv__ws_close_parse((const uint8_t *)"\x03\xf7", 2, &code), -1002); /* 1015 */
    cr_assert_eq(appsrv__ws_close_parse((const uint8_t *)"\x0f\xa0", 2, &code), 0);     /* 4000 */
    cr_assert_eq(code, 4000);
}

/* ------------------------------------------------------------- decoder */

/* What a decoder run produced, as text: "T:hello B:3 P:ab C:1000 E:1002". */
typedef struct trace {
    char s[8192];
    size_t n;
} trace_t;

static void tr_add(trace_t *t, const char *fmt, const uint8_t *p, size_t len, unsigned v)
{
    char tmp[64];
    int k = snprintf(tmp, sizeof(tmp), fmt, v);
    cr_assert(t->n + (size_t)k + len * 2 + 2 < sizeof(t->s));
    memcpy(t->s + t->n, tmp, (size_t)k);
    t->n += (size_t)k;
    for (size_t i = 0; i < len; i++)
        t->n += (size_t)snprintf(t->s + t->n, 3, "%02x", p[i]);
    t->s[t->n++] = ' ';
    t->s[t->n] = 0;
}

/*
 * Feeds in[0..len) to a fresh decoder in pieces of `piece` bytes (0:
 * whole; split > 0: two pieces cut there), keeping unconsumed bytes as a
 * connection would, and traces messages (reassembled), control frames and
 * the error. Each call sees exactly its bytes, at the end of a guarded
 * buffer.
 */
static void decode(guard_t *g, const uint8_t *in, size_t len, size_t split, size_t piece,
                   uint64_t max, trace_t *t)
{
    appsrv__ws_rx_t rx;
    memset(&rx, 0, sizeof(rx));
    rx.max = max;
    rx.need_mask = true;
    t->n = 0;
    t->s[0] = 0;
    uint8_t pend[4096], msg[8192];
    size_t plen = 0, mlen = 0, fed = 0;
    while (fed < len || plen > 0) {
        size_t take = len - fed;
        if (piece > 0 && take > piece)
            take = piece;
        if (split > 0 && fed < split && take > split - fed)
            take = split - fed;
        cr_assert_leq(plen + take, sizeof(pend));
        memcpy(pend + plen, in + fed, take);
        plen += take;
        fed += take;
        while (plen > 0) {
            uint8_t *p = guard_place(g, pend, plen);
            appsrv__ws_ev_t ev = appsrv__ws_rx_step(&rx, p, plen);
            cr_assert_leq(ev.used, plen);
            if (ev.kind == APPSRV__WS_EV_ERROR) {
                tr_add(t, "E:%u", NULL, 0, ev.code);
                return;
            }
            if (ev.kind == APPSRV__WS_EV_DATA) {
                if (ev.first)
                    mlen = 0;
                cr_assert_leq(mlen + ev.len, sizeof(msg));
                memcpy(msg + mlen, ev.data, ev.len);
                mlen += ev.len;
                if (ev.last)
                    tr_add(t, ev.opcode == 1 ? "T%u:" : "B%u:", msg, mlen, 0);
            } else if (ev.kind == APPSRV__WS_EV_CONTROL) {
                if (ev.opcode == APPSRV__WS_OP_CLOSE)
                    tr_add(t, "C:%u:", ev.data, ev.len, ev.code);
                else
                    tr_add(t, ev.opcode == APPSRV__WS_OP_PING ? "P%u:" : "Q%u:", ev.data, ev.len,
                           0);
            }
            /* Keep the unconsumed tail (payload was unmasked in place:
             * the consumed part is gone, as in a connection). */
            memmove(pend, p + ev.used, plen - ev.used);
            plen -= ev.used;
            if (ev.kind == APPSRV__WS_EV_MORE && ev.used == 0)
                break;
        }
        if (fed == len && plen > 0) {
            /* Nothing more will come: the trace ends incomplete. */
            tr_add(t, "I:%u", NULL, 0, (unsigned)plen);
            return;
        }
    }
    if (rx.in_frame || rx.msg.opcode != 0)
        tr_add(t, "I:%u", NULL, 0, 0);
}

typedef struct dec_row {
    const char *name;
    const char *want; /* the trace */
    uint64_t max;
    int (*build)(wsc_buf_t *b);
} dec_row_t;

#define F(b0, lit) wsc_buf_frame(b, (b0), lit, sizeof(lit) - 1, true)
#define FIN        WSC_FIN

static int b_text(wsc_buf_t *b)
{
    return F(FIN | WSC_TEXT, "Hello");
}
static int b_frag3(wsc_buf_t *b)
{
    return F(WSC_TEXT, "fr") | F(WSC_CONT, "ag") | F(FIN | WSC_CONT, "ment");
}
static int b_frag_ping(wsc_buf_t *b)
{
    return F(WSC_BIN, "\x01\x02") | F(FIN | WSC_PING, "hi") | F(FIN | WSC_CONT, "\x03");
}
static int b_empty(wsc_buf_t *b)
{
    return F(FIN | WSC_TEXT, "") | F(FIN | WSC_BIN, "") | F(WSC_TEXT, "") | F(FIN | WSC_CONT, "");
}
static int b_close(wsc_buf_t *b)
{
    return F(FIN | WSC_CLOSE, "\x03\xe8"
                              "bye");
}
static int b_split_utf8(wsc_buf_t *b)
{
    /* U+20AC split across three fragments */
    return F(WSC_TEXT, "a\xe2") | F(WSC_CONT, "\x82") |
           F(FIN | WSC_CONT, "\xac"
                             "b");
}
static int b_bad_utf8_frag(wsc_buf_t *b)
{
    /* fails fast: in the second fragment, before the message ends */
    return F(WSC_TEXT, "ok\xed") | F(WSC_CONT, "\xa0\x80") | F(FIN | WSC_CONT, "never");
}
static int b_trunc_utf8(wsc_buf_t *b)
{
    return F(FIN | WSC_TEXT, "ab\xe2\x82");
}
static int b_cont_first(wsc_buf_t *b)
{
    return F(FIN | WSC_CONT, "x");
}
static int b_interleaved(wsc_buf_t *b)
{
    return F(WSC_TEXT, "a") | F(FIN | WSC_TEXT, "b");
}
static int b_bin_invalid_utf8_ok(wsc_buf_t *b)
{
    return F(FIN | WSC_BIN, "\xff\xfe");
}
static int b_too_big(wsc_buf_t *b)
{
    return F(WSC_TEXT, "12345678") | F(FIN | WSC_CONT, "9");
}
static int b_at_cap(wsc_buf_t *b)
{
    return F(WSC_TEXT, "1234") | F(FIN | WSC_CONT, "5678");
}
static int b_close_bad_code(wsc_buf_t *b)
{
    return F(FIN | WSC_CLOSE, "\x03\xed");
}
static int b_close_one_byte(wsc_buf_t *b)
{
    return F(FIN | WSC_CLOSE, "\x03");
}
static int b_close_bad_reason(wsc_buf_t *b)
{
    return F(FIN | WSC_CLOSE, "\x03\xe8\xff");
}
static int b_rsv_after_message(wsc_buf_t *b)
{
    return F(FIN | WSC_TEXT, "ok") | F(FIN | WSC_RSV1 | WSC_TEXT, "no");
}
static int b_unmasked(wsc_buf_t *b)
{
    return wsc_buf_frame(b, FIN | WSC_TEXT, "x", 1, false);
}
static int b_long(wsc_buf_t *b)
{
    char big[3000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    return wsc_buf_frame(b, FIN | WSC_BIN, big, 200, true) |
           wsc_buf_frame(b, WSC_TEXT, big, 126, true) |
           wsc_buf_frame(b, FIN | WSC_CONT, big, 70, true);
}
static int b_pong_and_ping(wsc_buf_t *b)
{
    return F(FIN | WSC_PONG, "") | F(FIN | WSC_PING, "\x00\xff");
}

static const dec_row_t dec_rows[] = {
    {"text", "T0:48656c6c6f ", 1 << 20, b_text},
    {"three fragments", "T0:667261676d656e74 ", 1 << 20, b_frag3},
    {"ping between fragments", "P0:6869 B0:010203 ", 1 << 20, b_frag_ping},
    {"empty messages", "T0: B0: T0: ", 1 << 20, b_empty},
    {"close with reason", "C:1000:03e8627965 ", 1 << 20, b_close},
    {"UTF-8 split across fragments", "T0:61e282ac62 ", 1 << 20, b_split_utf8},
    {"invalid UTF-8 across fragments fails fast", "E:1007 ", 1 << 20, b_bad_utf8_frag},
    {"text ending mid-sequence", "E:1007 ", 1 << 20, b_trunc_utf8},
    {"continuation first", "E:1002 ", 1 << 20, b_cont_first},
    {"new message inside a fragmented one", "E:1002 ", 1 << 20, b_interleaved},
    {"binary need not be UTF-8", "B0:fffe ", 1 << 20, b_bin_invalid_utf8_ok},
    {"over the cap across fragments", "E:1009 ", 8, b_too_big},
    {"exactly the cap", "T0:3132333435363738 ", 8, b_at_cap},
    {"close 1005 on the wire", "E:1002 ", 1 << 20, b_close_bad_code},
    {"close with one byte", "E:1002 ", 1 << 20, b_close_one_byte},
    {"close reason not UTF-8", "E:1007 ", 1 << 20, b_close_bad_reason},
    {"RSV1 after a message", "T0:6f6b E:1002 ", 1 << 20, b_rsv_after_message},
    {"unmasked", "E:1002 ", 1 << 20, b_unmasked},
    {"pong then ping", "Q0: P0:00ff ", 1 << 20, b_pong_and_ping},
    {"16-bit lengths", NULL, 1 << 20, b_long},
};

Test(ws_decoder, rows_whole_split_bytewise, .timeout = 120)
{
    guard_t g;
    guard_init(&g, 8192);
    static trace_t whole, other;
    for (size_t r = 0; r < sizeof(dec_rows) / sizeof(dec_rows[0]); r++) {
        const dec_row_t *row = &dec_rows[r];
        wsc_buf_t b = {0};
        cr_assert_eq(row->build(&b), 0);
        decode(&g, b.p, b.len, 0, 0, row->max, &whole);
        if (row->want != NULL)
            cr_assert_str_eq(whole.s, row->want, "%s", row->name);
        else
            cr_assert(whole.s[0] == 'B' && strstr(whole.s, "E:") == NULL, "%s: %s", row->name,
                      whole.s);
        for (size_t k = 1; k < b.len; k++) {
            decode(&g, b.p, b.len, k, 0, row->max, &other);
            cr_assert_str_eq(other.s, whole.s, "%s: split at %zu", row->name, k);
        }
        decode(&g, b.p, b.len, 0, 1, row->max, &other);
        cr_assert_str_eq(other.s, whole.s, "%s: byte by byte", row->name);
        wsc_buf_free(&b);
    }
    guard_dispose(&g);
}

/* A one-frame message whole in the buffer is one piece (delivered in
 * place by ws.c); split, it comes in pieces that are not first+last. */
Test(ws_decoder, whole_message_one_piece, TMO)
{
    wsc_buf_t b = {0};
    cr_assert_eq(b_text(&b), 0);
    appsrv__ws_rx_t rx = {.max = 100, .need_mask = true};
    appsrv__ws_ev_t ev = appsrv__ws_rx_step(&rx, b.p, b.len);
    cr_assert(ev.kind == APPSRV__WS_EV_DATA && ev.first && ev.last && ev.len == 5);
    cr_assert_eq(ev.used, b.len);
    cr_assert_eq(memcmp(ev.data, "Hello", 5), 0);
    memset(&rx, 0, sizeof(rx));
    rx.max = 100;
    rx.need_mask = true;
    wsc_buf_free(&b);
    cr_assert_eq(b_text(&b), 0);
    ev = appsrv__ws_rx_step(&rx, b.p, b.len - 2);
    cr_assert(ev.kind == APPSRV__WS_EV_DATA && ev.first && !ev.last && ev.len == 3);
    ev = appsrv__ws_rx_step(&rx, b.p + ev.used, 2);
    cr_assert(ev.kind == APPSRV__WS_EV_DATA && !ev.first && ev.last && ev.len == 2);
    wsc_buf_free(&b);
}

/* ------------------------------------------------------------ handshake */

static void hex20(const uint8_t d[20], char out[41])
{
    for (int i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

Test(ws_handshake, sha1_vectors, TMO)
{
    static const struct {
        const char *in;
        const char *hex;
    } v[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
        {"The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"},
    };
    uint8_t d[20];
    char hex[41];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        appsrv__sha1(v[i].in, strlen(v[i].in), d);
        hex20(d, hex);
        cr_assert_str_eq(hex, v[i].hex, "%s", v[i].in);
    }
    /* FIPS 180-4 example: one million 'a'; and every length near the
     * padding boundaries agrees with a split-free recomputation. */
    char *m = malloc(1000000);
    cr_assert_not_null(m);
    memset(m, 'a', 1000000);
    appsrv__sha1(m, 1000000, d);
    hex20(d, hex);
    cr_assert_str_eq(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(m);
}

Test(ws_handshake, base64_and_accept, TMO)
{
    char out[64];
    cr_assert_eq(appsrv__base64((const uint8_t *)"", 0, out), 0);
    cr_assert_str_eq(out, "");
    appsrv__base64((const uint8_t *)"f", 1, out);
    cr_assert_str_eq(out, "Zg==");
    appsrv__base64((const uint8_t *)"fo", 2, out);
    cr_assert_str_eq(out, "Zm8=");
    appsrv__base64((const uint8_t *)"foobar", 6, out);
    cr_assert_str_eq(out, "Zm9vYmFy");
    /* RFC 6455 §1.3 */
    char acc[29];
    appsrv__ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, acc);
    cr_assert_str_eq(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws_handshake, key_check, TMO)
{
    cr_assert(appsrv__ws_key_ok("dGhlIHNhbXBsZSBub25jZQ==", 24));
    cr_assert(appsrv__ws_key_ok("AAAAAAAAAAAAAAAAAAAAAA==", 24));
    cr_assert(appsrv__ws_key_ok("/////////////////////w==", 24));
    cr_assert(!appsrv__ws_key_ok("/////////////////////x==", 24)); /* low bits set */
    cr_assert(!appsrv__ws_key_ok("dGhlIHNhbXBsZSBub25jZQ=", 23));
    cr_assert(!appsrv__ws_key_ok("dGhlIHNhbXBsZSBub25jZQ===", 25));
    cr_assert(!appsrv__ws_key_ok("dGhlIHNhbXBsZSBub25jZ===", 24));
    cr_assert(!appsrv__ws_key_ok("dGhlIHNhbXBsZSBub25j!Q==", 24));
    cr_assert(!appsrv__ws_key_ok("dGhlIHNhbXBsZSBub25jZQ", 22));
    /* 20 bytes of base64 (not 16) */
    cr_assert(!appsrv__ws_key_ok("dGhlIHNhbXBsZSBub25jZQab", 24));
}

Test(ws_handshake, token_lists, TMO)
{
    const char *v = "keep-alive, Upgrade";
    cr_assert(appsrv__token_list_has(v, strlen(v), "upgrade", 7, true));
    cr_assert(!appsrv__token_list_has(v, strlen(v), "upgrade", 7, false));
    cr_assert(appsrv__token_list_has(v, strlen(v), "keep-alive", 10, true));
    v = " ,,upgrade\t, ";
    cr_assert(appsrv__token_list_has(v, strlen(v), "upgrade", 7, true));
    v = "upgrades, xupgrade, upgrade-x";
    cr_assert(!appsrv__token_list_has(v, strlen(v), "upgrade", 7, true));
    v = "chat, superchat";
    cr_assert(appsrv__token_list_has(v, strlen(v), "superchat", 9, false));
    cr_assert(!appsrv__token_list_has(v, strlen(v), "super", 5, false));
    cr_assert(!appsrv__token_list_has("", 0, "x", 1, true));
}
