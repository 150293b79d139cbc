/* SPDX-License-Identifier: MIT */
/*
 * test_ws_conf_text.c - WebSocket conformance, Autobahn|Testsuite
 * sections 6, 7 and 9, driven by raw frames against an in-process echo
 * server (runner in ws_conf.h): UTF-8 handling of text messages (valid and
 * invalid sequences, whole, in one-byte and three-byte fragments, failing
 * fast inside a fragmented message), close handling (codes, reasons, what
 * follows a close) and limits and large messages (up to the 1 MiB cap,
 * reassembled from fragments of 64 bytes to 256 KiB, and one byte over).
 */
#include "ws_conf.h"

#define TMO .timeout = 120

/* --------------------------------------------------------------- 6. UTF-8 */

typedef struct utf8_case {
    const char *id, *name;
    const char *s;
    size_t len;
    bool valid;
} utf8_case_t;

#define UC(id, name, lit, ok)                                                                      \
    {                                                                                              \
        id, name, lit, sizeof(lit) - 1, ok                                                         \
    }

static const utf8_case_t utf8_cases[] = {
    UC("6.1.1", "empty", "", true),
    UC("6.2.1", "valid mixed",
       "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", true),
    UC("6.5.1", "kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true),
    UC("6.7.1", "U+0000", "\x00", true),
    UC("6.7.2", "U+0080", "\xc2\x80", true),
    UC("6.7.3", "U+0800", "\xe0\xa0\x80", true),
    UC("6.7.4", "U+10000", "\xf0\x90\x80\x80", true),
    UC("6.8.1", "U+007F", "\x7f", true),
    UC("6.8.2", "U+07FF", "\xdf\xbf", true),
    UC("6.9.1", "U+D7FF", "\xed\x9f\xbf", true),
    UC("6.9.2", "U+E000", "\xee\x80\x80", true),
    UC("6.9.3", "U+FFFD", "\xef\xbf\xbd", true),
    UC("6.9.4", "U+10FFFF", "\xf4\x8f\xbf\xbf", true),
    UC("6.10.1", "U+FFFE (noncharacter, valid)", "\xef\xbf\xbe", true),
    UC("6.3.1", "kosme with a surrogate",
       "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", false),
    UC("6.8.x", "U+110000", "\xf4\x90\x80\x80", false),
    UC("6.12.1", "lone continuation 0x80", "\x80", false),
    UC("6.12.2", "lone continuation 0xbf", "\xbf", false),
    UC("6.12.3", "two continuations", "\x80\xbf", false),
    UC("6.13.1", "lonely 2-byte start, space", "\xc0 \xc1 ", false),
    UC("6.13.2", "lonely 3-byte start, space", "\xe0 \xef ", false),
    UC("6.13.3", "lonely 4-byte start, space", "\xf0 \xf7 ", false),
    UC("6.14.1", "2-byte sequence, last byte missing", "\xc2", false),
    UC("6.14.2", "3-byte sequence, last byte missing", "\xe0\xa0", false),
    UC("6.14.3", "4-byte sequence, last byte missing", "\xf0\x90\x80", false),
    UC("6.15.1", "concatenated incomplete sequences", "\xc0\xe0\x80\xf0\x80\x80\xdf", false),
    UC("6.16.1", "0xfe", "\xfe", false),
    UC("6.16.2", "0xff", "\xff", false),
    UC("6.16.3", "0xfe 0xfe 0xff 0xff", "\xfe\xfe\xff\xff", false),
    UC("6.17.1", "overlong '/' in 2 bytes", "\xc0\xaf", false),
    UC("6.17.2", "overlong '/' in 3 bytes", "\xe0\x80\xaf", false),
    UC("6.17.3", "overlong '/' in 4 bytes", "\xf0\x80\x80\xaf", false),
    UC("6.18.1", "maximum overlong, 2 bytes", "\xc1\xbf", false),
    UC("6.18.2", "maximum overlong, 3 bytes", "\xe0\x9f\xbf", false),
    UC("6.18.3", "maximum overlong, 4 bytes", "\xf0\x8f\xbf\xbf", false),
    UC("6.19.1", "overlong NUL", "\xc0\x80", false),
    UC("6.20.1", "single surrogate U+D800", "\xed\xa0\x80", false),
    UC("6.20.7", "single surrogate U+DFFF", "\xed\xbf\xbf", false),
    UC("6.21.1", "paired surrogates", "\xed\xa0\x80\xed\xb0\x80", false),
};

/* arg: case index * 4 + fragment size (0: one frame). */
static void r_utf8(wsc_buf_t *send, wsc_trace_t *want, size_t arg)
{
    const utf8_case_t *u = &utf8_cases[arg / 4];
    size_t frag = arg % 4;
    const uint8_t *p = (const uint8_t *)u->s;
    if (frag == 0 || u->len == 0) {
        SEND(WSC_FIN | WSC_TEXT, p, u->len);
    } else {
        for (size_t i = 0; i < u->len; i += frag) {
            size_t k = u->len - i < frag ? u->len - i : frag;
            unsigned b0 = (i == 0 ? WSC_TEXT : WSC_CONT) | (i + k == u->len ? WSC_FIN : 0);
            SEND(b0, p + i, k);
        }
    }
    if (u->valid)
        ECHO('T', p, u->len);
    else
        CLOSED(1007);
}

Test(ws_conf, s6_utf8, TMO)
{
    size_t n = sizeof(utf8_cases) / sizeof(utf8_cases[0]);
    conf_row_t *rows = calloc(n * 3, sizeof(*rows));
    cr_assert_not_null(rows);
    static const size_t frags[] = {0, 1, 3};
    for (size_t i = 0; i < n; i++)
        for (size_t f = 0; f < 3; f++)
            rows[i * 3 + f] = (conf_row_t){utf8_cases[i].id, utf8_cases[i].name, r_utf8,
                                           i * 4 + frags[f], !utf8_cases[i].valid};
    conf_run(rows, n * 3, 0, true);
    free(rows);
}

/* 6.4.x: invalid UTF-8 fails the connection at once, inside a fragmented
 * message whose end never comes (the server must not wait for it). */
static void r_fail_fast(wsc_buf_t *send, wsc_trace_t *want, size_t arg)
{
    static const char *const first[] = {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90",
                                        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0",
                                        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xc0"};
    SEND(WSC_TEXT, first[arg], strlen(first[arg]));
    CLOSED(1007);
}

/* The invalid byte is the first of the second fragment. */
static void r_fail_fast_second(wsc_buf_t *send, wsc_trace_t *want, size_t arg)
{
    (void)arg;
    SENDS(WSC_TEXT, "\xce\xba\xe1\xbd\xb9\xcf");
    SENDS(WSC_CONT, "\x83\xce\xbc\xce\xb5\xf4");
    SENDS(WSC_CONT, "\x90");
    CLOSED(1007);
}

static const conf_row_t fail_fast[] = {
    {"6.4.1", "above U+10FFFF in the first fragment", r_fail_fast, 0, true},
    {"6.4.2", "a surrogate in the first fragment", r_fail_fast, 1, true},
    {"6.4.x", "C0 in the first fragment", r_fail_fast, 2, true},
    {"6.4.3", "invalid in the third fragment, message unfinished", r_fail_fast_second, 0, true},
};

Test(ws_conf, s6_utf8_fail_fast, TMO)
{
    conf_run(fail_fast, sizeof(fail_fast) / sizeof(fail_fast[0]), 0, true);
}

/* -------------------------------------------------------------- 7. close */

static void r_close_then(wsc_buf_t *send, wsc_trace_t *want, size_t what)
{
    SENDS(WSC_FIN | WSC_CLOSE, "\x03\xe8");
    /* Nothing after a close is looked at (7.1.2-7.1.4). */
    if (what == 1)
        SENDS(WSC_FIN | WSC_CLOSE, "\x03\xe8");
    else if (what == 2)
        SENDS(WSC_FIN | WSC_PING, "after close");
    else if (what == 3)
        SENDS(WSC_FIN | WSC_TEXT, "after close");
    CLOSED(1000);
}

static void r_fragment_then_close(wsc_buf_t *send, wsc_trace_t *want, size_t arg)
{
    (void)arg;
    SENDS(WSC_TEXT, "fragment");
    SENDS(WSC_FIN | WSC_CLOSE, "\x03\xe8");
    SENDS(WSC_FIN | WSC_CONT, "never");
    CLOSED(1000);
}

static void r_big_then_close(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    uint8_t *p = conf_payload(n, true);
    SEND(WSC_FIN | WSC_TEXT, p, n);
    SENDS(WSC_FIN | WSC_CLOSE, "\x03\xe8");
    ECHO('T', p, n);
    CLOSED(1000);
    free(p);
}

static void r_close_payload(wsc_buf_t *send, wsc_trace_t *want, size_t arg)
{
    /* arg: payload kind. The server echoes the code (RFC 6455 §5.5.1),
     * not the reason. */
    switch (arg) {
    case 0: /* 7.3.1 empty */
        SENDS(WSC_FIN | WSC_CLOSE, "");
        CLOSED(1005);
        break;
    case 1: /* 7.3.2 one byte */
        SENDS(WSC_FIN | WSC_CLOSE, "\x03");
        CLOSED(1002);
        break;
    case 2: /* 7.3.4 code and reason */
        SENDS(WSC_FIN | WSC_CLOSE, "\x03\xe8Hello World!");
        CLOSED(1000);
        break;
    case 3: { /* 7.3.5 reason of 123 bytes */
        uint8_t pl[125] = {0x03, 0xe8};
        memset(pl + 2, '*', 123);
        SEND(WSC_FIN | WSC_CLOSE, pl, 125);
        CLOSED(1000);
        break;
    }
    case 4: { /* 7.3.6 reason of 124 bytes: a control frame over 125 */
        uint8_t pl[126] = {0x03, 0xe8};
        memset(pl + 2, '*', 124);
        SEND(WSC_FIN | WSC_CLOSE, pl, 126);
        CLOSED(1002);
        break;
    }
    case 5: /* 7.5.1 reason not UTF-8 */
        SENDS(WSC_FIN | WSC_CLOSE, "\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0");
        CLOSED(1007);
        break;
    case 6: /* a UTF-8 reason split in the middle is still invalid */
        SENDS(WSC_FIN | WSC_CLOSE, "\x03\xe8\xe2\x82");
        CLOSED(1007);
        break;
    default:
        break;
    }
}

static void r_close_code(wsc_buf_t *send, wsc_trace_t *want, size_t code)
{
    uint8_t pl[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    SEND(WSC_FIN | WSC_CLOSE, pl, 2);
    bool ok = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
              (code >= 3000 && code <= 4999);
    CLOSED(ok ? (int)code : 1002);
}

static const conf_row_t closes[] = {
    {"7.1.1", "close, echoed", r_close_then, 0, true},
    {"7.1.2", "close twice", r_close_then, 1, true},
    {"7.1.3", "ping after close: no pong", r_close_then, 2, true},
    {"7.1.4", "text after close: no echo", r_close_then, 3, true},
    {"7.1.5", "close between fragments", r_fragment_then_close, 0, true},
    {"7.1.6", "256 KiB message, then close", r_big_then_close, 256 * 1024, true},
    {"7.3.1", "empty close", r_close_payload, 0, true},
    {"7.3.2", "one-byte close payload", r_close_payload, 1, true},
    {"7.3.4", "code and reason", r_close_payload, 2, true},
    {"7.3.5", "123-byte reason", r_close_payload, 3, true},
    {"7.3.6", "124-byte reason", r_close_payload, 4, true},
    {"7.5.1", "invalid UTF-8 reason", r_close_payload, 5, true},
    {"7.5.x", "truncated UTF-8 reason", r_close_payload, 6, true},
    {"7.7.1", "code 1000", r_close_code, 1000, true},
    {"7.7.2", "code 1001", r_close_code, 1001, true},
    {"7.7.3", "code 1002", r_close_code, 1002, true},
    {"7.7.4", "code 1003", r_close_code, 1003, true},
    {"7.7.5", "code 1007", r_close_code, 1007, true},
    {"7.7.6", "code 1008", r_close_code, 1008, true},
    {"7.7.7", "code 1009", r_close_code, 1009, true},
    {"7.7.8", "code 1010", r_close_code, 1010, true},
    {"7.7.9", "code 1011", r_close_code, 1011, true},
    {"7.7.10", "code 3000", r_close_code, 3000, true},
    {"7.7.11", "code 3999", r_close_code, 3999, true},
    {"7.7.12", "code 4000", r_close_code, 4000, true},
    {"7.7.13", "code 4999", r_close_code, 4999, true},
    {"7.9.1", "code 0", r_close_code, 0, true},
    {"7.9.2", "code 999", r_close_code, 999, true},
    {"7.9.3", "code 1004", r_close_code, 1004, true},
    {"7.9.4", "code 1005", r_close_code, 1005, true},
    {"7.9.5", "code 1006", r_close_code, 1006, true},
    {"7.9.6", "code 1016", r_close_code, 1016, true},
    {"7.9.7", "code 1100", r_close_code, 1100, true},
    {"7.9.8", "code 2000", r_close_code, 2000, true},
    {"7.9.9", "code 2999", r_close_code, 2999, true},
    {"7.9.x", "code 1015", r_close_code, 1015, true},
    {"7.13.1", "code 5000", r_close_code, 5000, true},
    {"7.13.2", "code 65535", r_close_code, 65535, true},
};

Test(ws_conf, s7_close, TMO)
{
    conf_run(closes, sizeof(closes) / sizeof(closes[0]), 0, true);
}

/* ------------------------------------------------- 9. limits, large messages */

static void r_big(wsc_buf_t *send, wsc_trace_t *want, size_t arg)
{
    bool text = arg & 1;
    size_t n = arg >> 1;
    uint8_t *p = conf_payload(n, text);
    SEND(WSC_FIN | (text ? WSC_TEXT : WSC_BIN), p, n);
    ECHO(text ? 'T' : 'B', p, n);
    free(p);
}

/* 1 MiB in fragments of arg bytes. */
static void r_big_fragmented(wsc_buf_t *send, wsc_trace_t *want, size_t frag)
{
    size_t n = 1 << 20;
    uint8_t *p = conf_payload(n, true);
    for (size_t i = 0; i < n; i += frag) {
        size_t k = n - i < frag ? n - i : frag;
        SEND((i == 0 ? WSC_TEXT : WSC_CONT) | (i + k == n ? WSC_FIN : 0), p + i, k);
    }
    ECHO('T', p, n);
    free(p);
}

static void r_over_cap(wsc_buf_t *send, wsc_trace_t *want, size_t frag)
{
    size_t n = (1 << 20) + 1;
    uint8_t *p = conf_payload(n, false);
    if (frag == 0) {
        SEND(WSC_FIN | WSC_BIN, p, n);
    } else {
        for (size_t i = 0; i < n; i += frag) {
            size_t k = n - i < frag ? n - i : frag;
            SEND((i == 0 ? WSC_BIN : WSC_CONT) | (i + k == n ? WSC_FIN : 0), p + i, k);
        }
    }
    CLOSED(1009);
    free(p);
}

#define KB(n) ((size_t)(n)*1024)

static const conf_row_t limits[] = {
    {"9.1.1", "text 64 KiB", r_big, KB(64) << 1 | 1, false},
    {"9.1.2", "text 256 KiB", r_big, KB(256) << 1 | 1, false},
    {"9.1.3", "text 1 MiB (the cap)", r_big, KB(1024) << 1 | 1, false},
    {"9.2.1", "binary 64 KiB", r_big, KB(64) << 1, false},
    {"9.2.2", "binary 256 KiB", r_big, KB(256) << 1, false},
    {"9.2.3", "binary 1 MiB (the cap)", r_big, KB(1024) << 1, false},
    {"9.3.1", "1 MiB text in 64-byte fragments", r_big_fragmented, 64, false},
    {"9.3.2", "1 MiB text in 256-byte fragments", r_big_fragmented, 256, false},
    {"9.3.3", "1 MiB text in 1 KiB fragments", r_big_fragmented, KB(1), false},
    {"9.3.4", "1 MiB text in 4 KiB fragments", r_big_fragmented, KB(4), false},
    {"9.3.5", "1 MiB text in 16 KiB fragments", r_big_fragmented, KB(16), false},
    {"9.3.6", "1 MiB text in 64 KiB fragments", r_big_fragmented, KB(64), false},
    {"9.3.7", "1 MiB text in 256 KiB fragments", r_big_fragmented, KB(256), false},
    {"9.x.1", "one byte over the cap, one frame: 1009", r_over_cap, 0, true},
    {"9.x.2", "one byte over the cap, 64 KiB fragments: 1009", r_over_cap, KB(64), true},
};

Test(ws_conf, s9_limits, .timeout = 240)
{
    conf_run(limits, sizeof(limits) / sizeof(limits[0]), 0, false);
}

/* A small cap: the limit is the configured one, exactly. */
static void r_cap_small(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    uint8_t *p = conf_payload(n, true);
    SEND(WSC_TEXT, p, n / 2);
    SEND(WSC_FIN | WSC_CONT, p + n / 2, n - n / 2);
    if (n <= 1000)
        ECHO('T', p, n);
    else
        CLOSED(1009);
    free(p);
}

static const conf_row_t small_cap[] = {
    {"9.x.3", "1000 bytes, cap 1000", r_cap_small, 1000, false},
    {"9.x.4", "1001 bytes, cap 1000: 1009", r_cap_small, 1001, true},
};

Test(ws_conf, s9_configured_cap, TMO)
{
    conf_run(small_cap, sizeof(small_cap) / sizeof(small_cap[0]), 1000, true);
}
