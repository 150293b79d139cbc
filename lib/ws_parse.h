/* SPDX-License-Identifier: MIT */
/*
 * ws_parse.h - private contract of the WebSocket wire format (RFC 6455
 * §5): the frame-header parser, the message sequencing rules, close
 * payloads, masking, the frame-header writer and a table-driven UTF-8
 * validator. Pure functions over (state, bytes): no I/O, no allocation, no
 * globals. Called by ws.c (the protocol table), the unit tests and the
 * fuzz driver (fuzz/fuzz_ws.c).
 */
#ifndef APPSRV_WS_PARSE_H
#define APPSRV_WS_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opcodes (RFC 6455 §5.2, §11.8). */
enum {
    APPSRV__WS_OP_CONT = 0x0,
    APPSRV__WS_OP_TEXT = 0x1,
    APPSRV__WS_OP_BINARY = 0x2,
    APPSRV__WS_OP_CLOSE = 0x8,
    APPSRV__WS_OP_PING = 0x9,
    APPSRV__WS_OP_PONG = 0xA,
};

/* Close codes the parser fails with (RFC 6455 §7.4.1). Errors are
 * returned negated: -1002, -1007, -1009. */
enum {
    APPSRV__WS_NORMAL = 1000,
    APPSRV__WS_GOING_AWAY = 1001,
    APPSRV__WS_PROTOCOL_ERROR = 1002,
    APPSRV__WS_NO_STATUS = 1005, /* never on the wire: a close without a code */
    APPSRV__WS_ABNORMAL = 1006,  /* never on the wire: no close frame at all */
    APPSRV__WS_INVALID_DATA = 1007,
    APPSRV__WS_POLICY = 1008,
    APPSRV__WS_TOO_BIG = 1009,
    APPSRV__WS_INTERNAL = 1011,
};

/* The largest control-frame payload and close reason (RFC 6455 §5.5). */
#define APPSRV__WS_MAX_CONTROL 125
#define APPSRV__WS_MAX_REASON  123
/* The longest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define APPSRV__WS_MAX_HEAD 14

/* ------------------------------------------------------------------ UTF-8 */

/* Validator states: ACCEPT between whole code points, REJECT for good;
 * anything else is inside a sequence. */
#define APPSRV__UTF8_ACCEPT 0u
#define APPSRV__UTF8_REJECT 12u

/* Runs the validator from state over p[0..n) (RFC 3629 §4: no overlongs,
 * no surrogates, nothing above U+10FFFF). Returns the new state; once
 * REJECT it stays REJECT. Feed a message in any pieces: the states chain. */
uint32_t appsrv__utf8_check(uint32_t state, const uint8_t *p, size_t n);

/* ----------------------------------------------------------------- frames */

typedef struct appsrv__ws_frame {
    uint64_t len;    /* payload length */
    uint8_t mask[4]; /* masking key (when masked) */
    uint8_t opcode;
    uint8_t hlen; /* header bytes: 2..14 */
    bool fin;
    bool masked;
} appsrv__ws_frame_t;

/*
 * Parses the frame header at p[0..n). need_mask: frames come from a client
 * and must be masked (RFC 6455 §5.1). Returns the header length (> 0) with
 * *f filled, 0 when more bytes are needed (any prefix of a valid header),
 * or -1002 for: a reserved bit set (no extension is ever negotiated,
 * §5.2), an unknown opcode, a fragmented control frame or one over 125
 * bytes (§5.5), a missing mask, a 64-bit length with its top bit set, a
 * length not in its shortest form (§5.2 "the minimal number of bytes").
 */
int appsrv__ws_frame_parse(const uint8_t *p, size_t n, bool need_mask, appsrv__ws_frame_t *f);

/* Writes the header of an unmasked, final frame (server to client) into
 * out (APPSRV__WS_MAX_HEAD bytes). Returns its length: 2, 4 or 10. */
size_t appsrv__ws_frame_head(uint8_t *out, unsigned opcode, uint64_t len);

/* XORs n bytes of src with key, starting at key byte off % 4, into dst
 * (dst == src is allowed). Masking and unmasking are the same (§5.3). */
void appsrv__ws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4], size_t off);

/* --------------------------------------------------------------- messages */

/* A message being received, across its frames. Zero it to start. */
typedef struct appsrv__ws_msg {
    uint64_t len;   /* payload bytes announced by its frames so far */
    uint32_t utf8;  /* validator state over a text message's payload */
    uint8_t opcode; /* TEXT or BINARY while a message is open, else 0 */
} appsrv__ws_msg_t;

/*
 * A data or control frame header arrived (RFC 6455 §5.4): checks it
 * against the message in progress and accounts a data frame. Returns 0,
 * -1002 (a continuation with no message open, a new data frame inside a
 * fragmented message) or -1009 (the message would exceed max bytes).
 * Control frames may come between fragments; they change nothing here.
 */
int appsrv__ws_msg_frame(appsrv__ws_msg_t *m, const appsrv__ws_frame_t *f, uint64_t max);

/* Unmasked payload bytes of the current message: validates a text
 * message's UTF-8 as it arrives (fail fast, even across fragments).
 * Returns 0 or -1007. */
int appsrv__ws_msg_data(appsrv__ws_msg_t *m, const uint8_t *p, size_t n);

/* The current data frame's payload is complete. fin: it was the last
 * frame; then the message ends (m is reset) and 1 is returned, or -1007
 * when a text message stops inside a UTF-8 sequence. 0 when not fin. */
int appsrv__ws_msg_frame_end(appsrv__ws_msg_t *m, bool fin);

/* --------------------------------------------------------------- decoder */

/* The receiving side of a connection: frames in, messages out, across any
 * split of the input. Zero it, then set max and need_mask. */
typedef struct appsrv__ws_rx {
    appsrv__ws_msg_t msg;
    appsrv__ws_frame_t fr; /* the data frame whose payload is being read */
    uint64_t left;         /* its payload bytes still to come */
    uint64_t seen;         /* its payload bytes already returned (mask offset) */
    uint64_t max;          /* message cap (bytes, reassembled) */
    bool need_mask;        /* frames come from a client */
    bool in_frame;         /* fr's header is consumed, payload is not */
    bool first;            /* the next piece is its message's first */
} appsrv__ws_rx_t;

enum {
    APPSRV__WS_EV_MORE = 0, /* need more input (used may still be > 0) */
    APPSRV__WS_EV_DATA,     /* a piece of a data message */
    APPSRV__WS_EV_CONTROL,  /* a whole control frame */
    APPSRV__WS_EV_ERROR,    /* fail the connection with code */
};

typedef struct appsrv__ws_ev {
    int kind;      /* APPSRV__WS_EV_* */
    size_t used;   /* input bytes consumed by this call */
    uint8_t *data; /* DATA, CONTROL: payload, unmasked in place */
    size_t len;
    uint8_t opcode; /* DATA: the message's (TEXT/BINARY); CONTROL: the frame's */
    bool first;     /* DATA: the message's first piece */
    bool last;      /* DATA: the message's last piece (the message is whole and,
                       for text, valid UTF-8) */
    uint16_t code;  /* ERROR: close code; CONTROL close: its code (1005: none) */
} appsrv__ws_ev_t;

/*
 * Decodes from p[0..n), which it may modify (payload is unmasked in place).
 * Returns one event; the caller consumes ev.used bytes and calls again
 * while there is input. Control frames (at most 131 bytes) come whole:
 * until all of one is in p, MORE with nothing used. A data frame's
 * payload comes in pieces as it arrives, validated as it goes (a text
 * message's UTF-8 fails fast, also across fragments); a message that
 * is whole in p comes as one piece with first and last set. A close
 * frame's payload is checked (code, UTF-8 reason). After ERROR the
 * decoder must not be called again.
 */
appsrv__ws_ev_t appsrv__ws_rx_step(appsrv__ws_rx_t *rx, uint8_t *p, size_t n);

/* With a data frame's payload in progress (rx->in_frame): the next
 * min(n, rx->left) payload bytes, wherever the caller put them (ws.c reads
 * a large payload straight into its message buffer). A DATA event or
 * ERROR, as from appsrv__ws_rx_step(). */
appsrv__ws_ev_t appsrv__ws_rx_payload(appsrv__ws_rx_t *rx, uint8_t *p, size_t n);

/* ------------------------------------------------------------------ close */

/* May code appear in a close frame (RFC 6455 §7.4.1, §7.4.2; 1012-1014
 * as registered with IANA)? 1005, 1006, 1015 and unassigned codes below
 * 3000 may not; 3000-4999 may. */
bool appsrv__ws_close_code_ok(unsigned code);

/* Checks a close frame's (unmasked) payload (RFC 6455 §5.5.1): empty, or
 * a valid code and a UTF-8 reason. Returns 0 with *code set (1005 when
 * empty), -1002 (one byte, a code that may not be sent) or -1007. */
int appsrv__ws_close_parse(const uint8_t *p, size_t n, uint16_t *code);

#endif /* APPSRV_WS_PARSE_H */
