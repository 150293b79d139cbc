/* SPDX-License-Identifier: MIT */
/*
 * ws_parse.c - the WebSocket wire format (RFC 6455 §5, §7.4) as pure
 * functions (contract in ws_parse.h): frame headers in and out, masking,
 * message sequencing across fragments, close payloads, and a UTF-8
 * validator driven by two tables (byte -> class, state x class -> state).
 * No I/O, no allocation, no globals beyond constant tables. Called by
 * ws.c, tests/test_ws_parse.c and fuzz/fuzz_ws.c.
 */
#include "ws_parse.h"

#include <string.h>

/* ------------------------------------------------------------------ UTF-8 */

/*
 * RFC 3629 §4 as a DFA. Byte classes:
 *   0 00..7F   1 80..8F   2 90..9F   3 A0..BF (continuations split where
 *   the second byte of E0, ED, F0 and F4 sequences is restricted)
 *   4 C0 C1 F5..FF (never valid)   5 C2..DF   6 E0   7 E1..EC EE EF
 *   8 ED   9 F0   10 F1..F3   11 F4
 */
/* clang-format off */
static const uint8_t utf8_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 00..0F */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 10..1F */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 20..2F */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 30..3F */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 40..4F */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 50..5F */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 60..6F */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 70..7F */
    1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* 80..8F */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 90..9F */
    3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  /* A0..AF */
    3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  /* B0..BF */
    4,  4,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  /* C0..CF */
    5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  /* D0..DF */
    6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  7,  /* E0..EF */
    9,  10, 10, 10, 11, 4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* F0..FF */
};

/* States, pre-multiplied by the 12 classes so a row starts at the state's
 * value: */
#define S_ACC 0   /* between code points */
#define S_REJ 12  /* invalid, for good */
#define S_C1 24   /* one continuation (80..BF) due */
#define S_C2 36   /* two due */
#define S_E0 48   /* after E0: A0..BF, then one more (no overlongs) */
#define S_ED 60   /* after ED: 80..9F, then one more (no surrogates) */
#define S_C3 72   /* three due */
#define S_F0 84   /* after F0: 90..BF, then two more (no overlongs) */
#define S_F4 96   /* after F4: 80..8F, then two more (<= U+10FFFF) */

#define R S_REJ
static const uint8_t utf8_next[108] = {
    /*         00     80     90     A0     bad    C2     E0     E1     ED     F0     F1     F4 */
    /* ACC */ S_ACC, R,     R,     R,     R,     S_C1,  S_E0,  S_C2,  S_ED,  S_F0,  S_C3,  S_F4,
    /* REJ */ R,     R,     R,     R,     R,     R,     R,     R,     R,     R,     R,     R,
    /* C1  */ R,     S_ACC, S_ACC, S_ACC, R,     R,     R,     R,     R,     R,     R,     R,
    /* C2  */ R,     S_C1,  S_C1,  S_C1,  R,     R,     R,     R,     R,     R,     R,     R,
    /* E0  */ R,     R,     R,     S_C1,  R,     R,     R,     R,     R,     R,     R,     R,
    /* ED  */ R,     S_C1,  S_C1,  R,     R,     R,     R,     R,     R,     R,     R,     R,
    /* C3  */ R,     S_C2,  S_C2,  S_C2,  R,     R,     R,     R,     R,     R,     R,     R,
    /* F0  */ R,     R,     S_C2,  S_C2,  R,     R,     R,     R,     R,     R,     R,     R,
    /* F4  */ R,     S_C2,  R,     R,     R,     R,     R,     R,     R,     R,     R,     R,
};
#undef R
/* clang-format on */

uint32_t appsrv__utf8_check(uint32_t state, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (state == S_ACC) {
            /* ASCII runs, eight bytes at a time. */
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i == n)
                break;
        } else if (state == S_REJ) {
            break;
        }
        state = utf8_next[state + utf8_class[p[i]]];
        i++;
    }
    return state;
}

/* ----------------------------------------------------------------- frames */

int appsrv__ws_frame_parse(const uint8_t *p, size_t n, bool need_mask, appsrv__ws_frame_t *f)
{
    if (n < 2)
        return 0;
    uint8_t b0 = p[0], b1 = p[1];
    /* RFC 6455 §5.2: RSV1-3 must be 0 unless an extension says otherwise;
     * we never negotiate one (permessage-deflate is declined). */
    if (b0 & 0x70)
        return -APPSRV__WS_PROTOCOL_ERROR;
    unsigned op = b0 & 0x0F;
    bool fin = (b0 & 0x80) != 0;
    bool masked = (b1 & 0x80) != 0;
    unsigned len7 = b1 & 0x7F;
    switch (op) {
    case APPSRV__WS_OP_CONT:
    case APPSRV__WS_OP_TEXT:
    case APPSRV__WS_OP_BINARY:
        break;
    case APPSRV__WS_OP_CLOSE:
    case APPSRV__WS_OP_PING:
    case APPSRV__WS_OP_PONG:
        /* §5.5: control frames are never fragmented, payload <= 125. */
        if (!fin || len7 > APPSRV__WS_MAX_CONTROL)
            return -APPSRV__WS_PROTOCOL_ERROR;
        break;
    default:
        return -APPSRV__WS_PROTOCOL_ERROR; /* §5.2: reserved opcodes */
    }
    /* §5.1: a server closes the connection on an unmasked client frame. */
    if (need_mask && !masked)
        return -APPSRV__WS_PROTOCOL_ERROR;

    size_t hlen = 2;
    uint64_t len = len7;
    if (len7 == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        if (len < 126)
            return -APPSRV__WS_PROTOCOL_ERROR; /* not the shortest form */
        hlen = 4;
    } else if (len7 == 127) {
        if (n < 10)
            return 0;
        /* §5.2: "the most significant bit MUST be 0". */
        if (p[2] & 0x80)
            return -APPSRV__WS_PROTOCOL_ERROR;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | p[i];
        if (len <= 0xFFFF)
            return -APPSRV__WS_PROTOCOL_ERROR; /* not the shortest form */
        hlen = 10;
    }
    if (masked) {
        if (n < hlen + 4)
            return 0;
        memcpy(f->mask, p + hlen, 4);
        hlen += 4;
    } else {
        memset(f->mask, 0, 4);
    }
    f->len = len;
    f->opcode = (uint8_t)op;
    f->hlen = (uint8_t)hlen;
    f->fin = fin;
    f->masked = masked;
    return (int)hlen;
}

size_t appsrv__ws_frame_head(uint8_t *out, unsigned opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

void appsrv__ws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4], size_t off)
{
    size_t i = 0;
    /* Rotate the key so that byte 0 of k8 lines up with src[0]. */
    uint8_t k[8];
    for (int j = 0; j < 8; j++)
        k[j] = key[(off + (size_t)j) & 3];
    if (n >= 16) {
        uint64_t k8;
        memcpy(&k8, k, 8);
        for (; n - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, src + i, 8);
            w ^= k8;
            memcpy(dst + i, &w, 8);
        }
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ k[i & 7];
}

/* --------------------------------------------------------------- messages */

int appsrv__ws_msg_frame(appsrv__ws_msg_t *m, const appsrv__ws_frame_t *f, uint64_t max)
{
    if (f->opcode >= APPSRV__WS_OP_CLOSE)
        return 0; /* §5.4: control frames may be injected between fragments */
    if (f->opcode == APPSRV__WS_OP_CONT) {
        if (m->opcode == 0)
            return -APPSRV__WS_PROTOCOL_ERROR; /* nothing to continue */
    } else {
        if (m->opcode != 0)
            return -APPSRV__WS_PROTOCOL_ERROR; /* §5.4: fragments are not interleaved */
        m->opcode = f->opcode;
        m->len = 0;
        m->utf8 = APPSRV__UTF8_ACCEPT;
    }
    if (f->len > max || m->len > max - f->len)
        return -APPSRV__WS_TOO_BIG;
    m->len += f->len;
    return 0;
}

int appsrv__ws_msg_data(appsrv__ws_msg_t *m, const uint8_t *p, size_t n)
{
    if (m->opcode != APPSRV__WS_OP_TEXT)
        return 0;
    m->utf8 = appsrv__utf8_check(m->utf8, p, n);
    return m->utf8 == APPSRV__UTF8_REJECT ? -APPSRV__WS_INVALID_DATA : 0;
}

int appsrv__ws_msg_frame_end(appsrv__ws_msg_t *m, bool fin)
{
    if (!fin)
        return 0;
    bool text = m->opcode == APPSRV__WS_OP_TEXT;
    uint32_t st = m->utf8;
    memset(m, 0, sizeof(*m));
    /* §8.1: a text message must be whole code points at its end. */
    if (text && st != APPSRV__UTF8_ACCEPT)
        return -APPSRV__WS_INVALID_DATA;
    return 1;
}

/* --------------------------------------------------------------- decoder */

static appsrv__ws_ev_t ev_error(int neg_code)
{
    appsrv__ws_ev_t ev = {.kind = APPSRV__WS_EV_ERROR, .code = (uint16_t)-neg_code};
    return ev;
}

appsrv__ws_ev_t appsrv__ws_rx_step(appsrv__ws_rx_t *rx, uint8_t *p, size_t n)
{
    appsrv__ws_ev_t ev = {.kind = APPSRV__WS_EV_MORE};
    if (!rx->in_frame) {
        appsrv__ws_frame_t f;
        int h = appsrv__ws_frame_parse(p, n, rx->need_mask, &f);
        if (h < 0)
            return ev_error(h);
        if (h == 0)
            return ev;
        if (f.opcode >= APPSRV__WS_OP_CLOSE) {
            /* Control frames are small (§5.5): handled whole. */
            if (n - (size_t)h < f.len)
                return ev;
            uint8_t *pl = p + h;
            if (f.masked)
                appsrv__ws_mask(pl, pl, (size_t)f.len, f.mask, 0);
            if (f.opcode == APPSRV__WS_OP_CLOSE) {
                int r = appsrv__ws_close_parse(pl, (size_t)f.len, &ev.code);
                if (r < 0)
                    return ev_error(r);
            }
            ev.kind = APPSRV__WS_EV_CONTROL;
            ev.opcode = f.opcode;
            ev.data = pl;
            ev.len = (size_t)f.len;
            ev.used = (size_t)h + (size_t)f.len;
            return ev;
        }
        int r = appsrv__ws_msg_frame(&rx->msg, &f, rx->max);
        if (r < 0)
            return ev_error(r);
        rx->fr = f;
        rx->left = f.len;
        rx->seen = 0;
        rx->in_frame = true;
        rx->first = f.opcode != APPSRV__WS_OP_CONT;
        ev.used = (size_t)h;
        p += h;
        n -= (size_t)h;
        if (f.len > 0 && n == 0)
            return ev; /* the header alone: payload next time */
    }
    appsrv__ws_ev_t pe = appsrv__ws_rx_payload(rx, p, n);
    pe.used += ev.used;
    return pe;
}

appsrv__ws_ev_t appsrv__ws_rx_payload(appsrv__ws_rx_t *rx, uint8_t *p, size_t n)
{
    appsrv__ws_ev_t ev = {.kind = APPSRV__WS_EV_DATA};
    size_t k = n < rx->left ? n : (size_t)rx->left;
    if (rx->fr.masked)
        appsrv__ws_mask(p, p, k, rx->fr.mask, (size_t)(rx->seen & 3));
    int r = appsrv__ws_msg_data(&rx->msg, p, k);
    if (r < 0)
        return ev_error(r);
    ev.data = p;
    ev.len = k;
    ev.opcode = rx->msg.opcode;
    ev.first = rx->first;
    rx->first = false;
    ev.used = k;
    rx->seen += k;
    rx->left -= k;
    if (rx->left == 0) {
        rx->in_frame = false;
        r = appsrv__ws_msg_frame_end(&rx->msg, rx->fr.fin);
        if (r < 0)
            return ev_error(r);
        ev.last = r == 1;
    }
    return ev;
}

/* ------------------------------------------------------------------ close */

bool appsrv__ws_close_code_ok(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return true; /* libraries, frameworks, applications (§7.4.2) */
    switch (code) {
    case 1000: /* normal */
    case 1001: /* going away */
    case 1002: /* protocol error */
    case 1003: /* unacceptable data type */
    case 1007: /* inconsistent data */
    case 1008: /* policy */
    case 1009: /* too big */
    case 1010: /* extension expected (client) */
    case 1011: /* internal error */
    case 1012: /* service restart (IANA) */
    case 1013: /* try again later (IANA) */
    case 1014: /* bad gateway (IANA) */
        return true;
    default:
        /* 1004 reserved; 1005, 1006, 1015 never sent; 0-999, 1016-2999
         * and 5000+ not assigned to endpoints. */
        return false;
    }
}

int appsrv__ws_close_parse(const uint8_t *p, size_t n, uint16_t *code)
{
    if (n == 0) {
        *code = APPSRV__WS_NO_STATUS;
        return 0;
    }
    if (n == 1)
        return -APPSRV__WS_PROTOCOL_ERROR;
    unsigned c = (unsigned)p[0] << 8 | p[1];
    if (!appsrv__ws_close_code_ok(c))
        return -APPSRV__WS_PROTOCOL_ERROR;
    /* §5.5.1: the reason is UTF-8. */
    if (appsrv__utf8_check(APPSRV__UTF8_ACCEPT, p + 2, n - 2) != APPSRV__UTF8_ACCEPT)
        return -APPSRV__WS_INVALID_DATA;
    *code = (uint16_t)c;
    return 0;
}
