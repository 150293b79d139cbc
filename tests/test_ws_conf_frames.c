/* SPDX-License-Identifier: MIT */
/*
 * test_ws_conf_frames.c - WebSocket conformance, Autobahn|Testsuite
 * sections 1-5, driven by raw frames against an in-process echo server
 * (runner in ws_conf.h): framing of text and binary messages at every
 * length boundary, pings and pongs, reserved bits, reserved opcodes and
 * fragmentation. Every row runs whole, byte by byte and split at a set of
 * offsets.
 */
#include "ws_conf.h"

#define TMO .timeout = 120

/* ------------------------------------------------ 1. framing (1.1, 1.2) */

static void r_msg(wsc_buf_t *send, wsc_trace_t *want, size_t n, bool text)
{
    uint8_t *p = conf_payload(n, text);
    SEND(WSC_FIN | (text ? WSC_TEXT : WSC_BIN), p, n);
    ECHO(text ? 'T' : 'B', p, n);
    free(p);
}

static void r_text(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    r_msg(send, want, n, true);
}

static void r_bin(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    r_msg(send, want, n, false);
}

/* 1.1.8 / 1.2.8: one 65536-byte message; the runner's byte-wise play is
 * skipped for it, the splits cut it at seven offsets. */
static void r_text_then_bin(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    r_msg(send, want, n, true);
    r_msg(send, want, n, false);
}

static const conf_row_t framing[] = {
    {"1.1.1", "text, empty", r_text, 0, false},
    {"1.1.2", "text, 125 bytes", r_text, 125, false},
    {"1.1.3", "text, 126 bytes (16-bit length)", r_text, 126, false},
    {"1.1.4", "text, 127 bytes", r_text, 127, false},
    {"1.1.5", "text, 128 bytes", r_text, 128, false},
    {"1.1.6", "text, 65535 bytes (16-bit max)", r_text, 65535, false},
    {"1.1.7", "text, 65536 bytes (64-bit length)", r_text, 65536, false},
    {"1.2.1", "binary, empty", r_bin, 0, false},
    {"1.2.2", "binary, 125 bytes", r_bin, 125, false},
    {"1.2.3", "binary, 126 bytes", r_bin, 126, false},
    {"1.2.4", "binary, 127 bytes", r_bin, 127, false},
    {"1.2.5", "binary, 128 bytes", r_bin, 128, false},
    {"1.2.6", "binary, 65535 bytes", r_bin, 65535, false},
    {"1.2.7", "binary, 65536 bytes", r_bin, 65536, false},
    {"1.x", "text then binary, 3000 bytes each", r_text_then_bin, 3000, false},
};

Test(ws_conf, s1_framing, TMO)
{
    conf_run(framing, sizeof(framing) / sizeof(framing[0]), 0, true);
}

/* 1.1.8, 1.2.8: 65536 bytes written in chunks of 997. */
Test(ws_conf, s1_framing_chunked_writes, TMO)
{
    e2e_server_t s;
    conf_server(&s, 0);
    for (int text = 0; text < 2; text++) {
        wsc_buf_t send = {0};
        wsc_trace_t want = {0};
        r_msg(&send, &want, 65536, text);
        wsc_buf_frame(&send, WSC_FIN | WSC_CLOSE, "\x03\xe8", 2, true);
        wsc_trace_close(&want, 1000);
        wsc_trace_eof(&want);
        conf_row_t row = {text ? "1.1.8" : "1.2.8", "65536 bytes in 997-byte writes", NULL, 0,
                          false};
        conf_play(s.port, &row, send.p, send.len, wsc_trace_str(&want), 997, 0);
        wsc_buf_free(&send);
        wsc_trace_free(&want);
    }
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

/* --------------------------------------------------- 2. pings and pongs */

static void r_ping(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    uint8_t *p = conf_payload(n, false);
    SEND(WSC_FIN | WSC_PING, p, n);
    PONG(p, n);
    free(p);
}

static void r_ping_text(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    (void)n;
    SENDS(WSC_FIN | WSC_PING, "Hello, world!");
    PONG("Hello, world!", 13);
}

static void r_ping_126(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    uint8_t *p = conf_payload(n, false);
    /* A 126-byte control frame, built by hand (16-bit length). */
    uint8_t f[140] = {0x89, 0xfe, 0x00, 0x7e, 1, 2, 3, 4};
    for (size_t i = 0; i < n; i++)
        f[8 + i] = p[i] ^ (uint8_t)(1 + (i & 3));
    wsc_buf_raw(send, f, 8 + n);
    CLOSED(1002);
    free(p);
}

static void r_pong_unsolicited(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    uint8_t *p = conf_payload(n, false);
    SEND(WSC_FIN | WSC_PONG, p, n);
    free(p);
    (void)want;
}

static void r_pong_then_ping(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    (void)n;
    SENDS(WSC_FIN | WSC_PONG, "unsolicited");
    SENDS(WSC_FIN | WSC_PING, "solicited");
    PONG("solicited", 9);
}

static void r_ten_pings(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char pl[16];
        int k = snprintf(pl, sizeof(pl), "payload-%zu", i);
        SEND(WSC_FIN | WSC_PING, pl, (size_t)k);
        PONG(pl, (size_t)k);
    }
}

static const conf_row_t pings[] = {
    {"2.1", "ping, no payload", r_ping, 0, false},
    {"2.2", "ping, text payload", r_ping_text, 0, false},
    {"2.3", "ping, binary payload", r_ping, 8, false},
    {"2.4", "ping, 125 bytes", r_ping, 125, false},
    {"2.5", "ping, 126 bytes: 1002", r_ping_126, 126, true},
    {"2.7", "unsolicited pong, empty: ignored", r_pong_unsolicited, 0, false},
    {"2.8", "unsolicited pong with payload: ignored", r_pong_unsolicited, 24, false},
    {"2.9", "unsolicited pong, then a ping: one pong", r_pong_then_ping, 0, false},
    {"2.10", "10 pings, 10 pongs in order", r_ten_pings, 10, false},
};

Test(ws_conf, s2_pings, TMO)
{
    conf_run(pings, sizeof(pings) / sizeof(pings[0]), 0, true);
}

/* ---------------------------------------------------- 3. reserved bits */

static void r_rsv_text(wsc_buf_t *send, wsc_trace_t *want, size_t rsv)
{
    SENDS(WSC_FIN | (unsigned)rsv | WSC_TEXT, "Hello, world!");
    CLOSED(1002);
}

static void r_rsv_after_echo(wsc_buf_t *send, wsc_trace_t *want, size_t rsv)
{
    SENDS(WSC_FIN | WSC_TEXT, "Hello, world!");
    SENDS(WSC_FIN | (unsigned)rsv | WSC_TEXT, "Hello, world!");
    SENDS(WSC_FIN | WSC_PING, "never answered");
    ECHOS('T', "Hello, world!");
    CLOSED(1002);
}

static void r_rsv_binary(wsc_buf_t *send, wsc_trace_t *want, size_t rsv)
{
    SEND(WSC_FIN | (unsigned)rsv | WSC_BIN, "\x00\xff\xfe\xfd", 4);
    CLOSED(1002);
}

static void r_rsv_control(wsc_buf_t *send, wsc_trace_t *want, size_t rsv)
{
    SENDS(WSC_FIN | (unsigned)rsv | ((rsv & 1u) ? WSC_CLOSE : WSC_PING), "");
    CLOSED(1002);
}

static const conf_row_t reserved[] = {
    {"3.1", "RSV1 on a text frame", r_rsv_text, WSC_RSV1, true},
    {"3.2", "RSV2 after an echoed message", r_rsv_after_echo, WSC_RSV2, true},
    {"3.3", "RSV1+RSV2 after an echoed message", r_rsv_after_echo, WSC_RSV1 | WSC_RSV2, true},
    {"3.4", "RSV3 on a text frame", r_rsv_text, WSC_RSV3, true},
    {"3.5", "RSV1+RSV3 on a binary frame", r_rsv_binary, WSC_RSV1 | WSC_RSV3, true},
    {"3.6", "RSV2+RSV3 on a ping", r_rsv_control, WSC_RSV2 | WSC_RSV3, true},
    {"3.7", "all RSV bits on a close", r_rsv_control, WSC_RSV1 | WSC_RSV2 | WSC_RSV3 | 1, true},
};

Test(ws_conf, s3_reserved_bits, TMO)
{
    conf_run(reserved, sizeof(reserved) / sizeof(reserved[0]), 0, true);
}

/* ------------------------------------------------------------ 4. opcodes */

static void r_opcode(wsc_buf_t *send, wsc_trace_t *want, size_t op)
{
    SENDS(WSC_FIN | (unsigned)op, "reserved");
    CLOSED(1002);
}

static void r_opcode_after_echo(wsc_buf_t *send, wsc_trace_t *want, size_t op)
{
    SENDS(WSC_FIN | WSC_TEXT, "first");
    SENDS(WSC_FIN | (unsigned)op, "");
    SENDS(WSC_FIN | WSC_PING, "late");
    ECHOS('T', "first");
    CLOSED(1002);
}

static const conf_row_t opcodes[] = {
    {"4.1.1", "opcode 3", r_opcode, 3, true},
    {"4.1.2", "opcode 4 after a message", r_opcode_after_echo, 4, true},
    {"4.1.3", "opcode 5 after a message", r_opcode_after_echo, 5, true},
    {"4.1.4", "opcode 6", r_opcode, 6, true},
    {"4.1.5", "opcode 7 after a message", r_opcode_after_echo, 7, true},
    {"4.2.1", "opcode 11", r_opcode, 11, true},
    {"4.2.2", "opcode 12 after a message", r_opcode_after_echo, 12, true},
    {"4.2.3", "opcode 13 after a message", r_opcode_after_echo, 13, true},
    {"4.2.4", "opcode 14", r_opcode, 14, true},
    {"4.2.5", "opcode 15 after a message", r_opcode_after_echo, 15, true},
};

Test(ws_conf, s4_opcodes, TMO)
{
    conf_run(opcodes, sizeof(opcodes) / sizeof(opcodes[0]), 0, true);
}

/* ------------------------------------------------------ 5. fragmentation */

static void r_frag_control(wsc_buf_t *send, wsc_trace_t *want, size_t op)
{
    SENDS((unsigned)op, "frag");
    SENDS(WSC_FIN | WSC_CONT, "ment");
    CLOSED(1002);
}

static void r_frag_two(wsc_buf_t *send, wsc_trace_t *want, size_t op)
{
    SENDS((unsigned)op, "frag");
    SENDS(WSC_FIN | WSC_CONT, "ment");
    ECHOS(op == WSC_TEXT ? 'T' : 'B', "fragment");
}

static void r_frag_ping_between(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    (void)n;
    SENDS(WSC_TEXT, "fr");
    SENDS(WSC_FIN | WSC_PING, "between");
    SENDS(WSC_CONT, "ag");
    SENDS(WSC_FIN | WSC_PONG, "stray");
    SENDS(WSC_FIN | WSC_CONT, "ment");
    PONG("between", 7);
    ECHOS('T', "fragment");
}

static void r_cont_first(wsc_buf_t *send, wsc_trace_t *want, size_t fin)
{
    SENDS((fin ? WSC_FIN : 0) | WSC_CONT, "no start");
    SENDS(WSC_FIN | WSC_TEXT, "never echoed");
    CLOSED(1002);
}

static void r_cont_after_message(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    (void)n;
    SENDS(WSC_FIN | WSC_TEXT, "whole");
    SENDS(WSC_FIN | WSC_CONT, "too late");
    ECHOS('T', "whole");
    CLOSED(1002);
}

static void r_new_inside(wsc_buf_t *send, wsc_trace_t *want, size_t op)
{
    SENDS(WSC_TEXT, "start");
    SENDS(WSC_FIN | (unsigned)op, "interleaved");
    CLOSED(1002);
}

static void r_many_fragments(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    /* n one-byte fragments with a ping after every fourth */
    uint8_t *p = conf_payload(n, true);
    for (size_t i = 0; i < n; i++) {
        unsigned b0 = (i == 0 ? WSC_TEXT : WSC_CONT) | (i == n - 1 ? WSC_FIN : 0);
        SEND(b0, p + i, 1);
        if (i % 4 == 3 && i != n - 1) {
            SENDS(WSC_FIN | WSC_PING, "p");
            PONG("p", 1);
        }
    }
    ECHO('T', p, n);
    free(p);
}

static void r_empty_fragments(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    (void)n;
    SENDS(WSC_BIN, "");
    SENDS(WSC_CONT, "");
    SENDS(WSC_FIN | WSC_CONT, "");
    ECHOS('B', "");
}

static void r_two_messages_fragmented(wsc_buf_t *send, wsc_trace_t *want, size_t n)
{
    (void)n;
    SENDS(WSC_TEXT, "one-");
    SENDS(WSC_FIN | WSC_CONT, "a");
    SENDS(WSC_BIN, "two-");
    SENDS(WSC_FIN | WSC_CONT, "b");
    ECHOS('T', "one-a");
    ECHOS('B', "two-b");
}

static const conf_row_t fragments[] = {
    {"5.1", "fragmented ping", r_frag_control, WSC_PING, true},
    {"5.2", "fragmented pong", r_frag_control, WSC_PONG, true},
    {"5.3", "text in two fragments", r_frag_two, WSC_TEXT, false},
    {"5.4", "binary in two fragments", r_frag_two, WSC_BIN, false},
    {"5.6", "ping and pong between fragments", r_frag_ping_between, 0, false},
    {"5.9", "continuation, fin, no message", r_cont_first, 1, true},
    {"5.10", "continuation, not fin, no message", r_cont_first, 0, true},
    {"5.15", "continuation after a whole message", r_cont_after_message, 0, true},
    {"5.17", "text frame inside a fragmented text", r_new_inside, WSC_TEXT, true},
    {"5.18", "binary frame inside a fragmented text", r_new_inside, WSC_BIN, true},
    {"5.19", "40 one-byte fragments with pings", r_many_fragments, 40, false},
    {"5.x", "empty fragments", r_empty_fragments, 0, false},
    {"5.x", "two fragmented messages in a row", r_two_messages_fragmented, 0, false},
};

Test(ws_conf, s5_fragmentation, TMO)
{
    conf_run(fragments, sizeof(fragments) / sizeof(fragments[0]), 0, true);
}
