/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ws_conn.c - libFuzzer driver for a WebSocket connection end to end
 * (ws.c, ws_api.c and the HTTP upgrade in http.c, over conn.c and the
 * worker's loop): each input gets a fresh server (one worker, no
 * listener) with an echo endpoint, and one connection made with
 * socketpair(AF_UNIX) handed to the library as if accepted. The client
 * sends a valid opening handshake, then the fuzzer's bytes as frames, in
 * a few chunks; the loop runs until nothing moves after each.
 *
 * Input: byte 0 flags (F_* below), bytes 1-2 how the payload is cut (1-4
 * chunks), the rest what the client sends after the handshake. The host
 * keeps a reference on the handle from on_open, and, as the flags say,
 * sends to it from outside any callback between chunks, closes it,
 * makes every deadline pass, stops the server, before it releases it.
 *
 * Checks (abort() is a finding): the output is the 101 and then server
 * frames only - unmasked, FIN set, known opcodes, text that is UTF-8,
 * control frames of at most 125 bytes, a close code that may be sent,
 * nothing after the close frame; on_open once, on_close once after it;
 * the loop settles; once the client is gone and the host released the
 * handle, no connection is left. LeakSanitizer sees every leak.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "ws_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK FUZZ_CHECK

#include "conn_harness.h"

enum {
    F_SMALLBUF = 1 << 0,  /* small socket buffers: partial writes, backpressure */
    F_PUSH = 1 << 1,      /* the host sends from outside callbacks between chunks */
    F_HOSTCLOSE = 1 << 2, /* the host closes after the payload */
    F_WARP = 1 << 3,      /* every deadline passes before the end */
    F_STOP = 1 << 4,      /* appsrv_server_stop() before the end */
    F_NOREAD = 1 << 5,    /* the client reads nothing until the end */
    F_SMALLMSG = 1 << 6,  /* max_ws_message 100: 1009 is reachable */
    F_EARLYREL = 1 << 7,  /* the host releases at once, in on_open */
};

static struct {
    appsrv_ws_t *ws; /* the host's reference, or NULL */
    int opened, closed, messages;
    unsigned flags;
} g;

static void h_open(appsrv_ws_t *ws, void *user)
{
    (void)user;
    CHECK(g.opened == 0 && g.closed == 0);
    g.opened++;
    if (g.flags & F_EARLYREL)
        appsrv_ws_release(ws);
    else
        g.ws = ws;
}

static void h_message(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                      void *user)
{
    (void)user;
    CHECK(g.opened == 1 && g.closed == 0);
    CHECK(type == APPSRV_WS_TEXT || type == APPSRV_WS_BINARY);
    CHECK(((const uint8_t *)data)[len] == 0);
    if (type == APPSRV_WS_TEXT)
        CHECK(appsrv__utf8_check(APPSRV__UTF8_ACCEPT, data, len) == APPSRV__UTF8_ACCEPT);
    g.messages++;
    int rc = appsrv_ws_send(ws, type, data, len);
    CHECK(rc == 0 || rc == -EAGAIN || rc == APPSRV_ECLOSED);
}

static void h_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    (void)ws, (void)user;
    CHECK(g.opened == 1 && g.closed == 0);
    CHECK(code == 1005 || code == 1006 || appsrv__ws_close_code_ok((unsigned)code));
    CHECK(appsrv__utf8_check(APPSRV__UTF8_ACCEPT, (const uint8_t *)reason.ptr, reason.len) ==
          APPSRV__UTF8_ACCEPT);
    g.closed++;
    CHECK(appsrv_ws_send(ws, APPSRV_WS_TEXT, "late", 4) == APPSRV_ECLOSED);
}

static const appsrv_ws_handlers_t handlers = {
    .on_open = h_open,
    .on_message = h_message,
    .on_close = h_close,
};

/* ------------------------------------------------------------- client */

/* The 101, then well-formed server frames, nothing after a close. */
static void check_output(const fz_t *z)
{
    static const char pre[] = "HTTP/1.1 101 Switching Protocols\r\n";
    const uint8_t *p = (const uint8_t *)z->out, *end = p + z->out_len;
    if (z->out_len == 0)
        return;
    CHECK(memcmp(p, pre, z->out_len < sizeof(pre) - 1 ? z->out_len : sizeof(pre) - 1) == 0);
    const uint8_t *head_end = memmem(p, z->out_len, "\r\n\r\n", 4);
    if (head_end == NULL)
        return;
    p = head_end + 4;
    bool closed = false;
    while (end - p >= 2) {
        CHECK(!closed);
        unsigned op = p[0] & 0x0F;
        CHECK((p[0] & 0xF0) == 0x80); /* FIN, no RSV */
        CHECK((p[1] & 0x80) == 0);    /* never masked */
        CHECK(op == 1 || op == 2 || op == 8 || op == 9 || op == 10);
        appsrv__ws_frame_t f;
        int h = appsrv__ws_frame_parse(p, (size_t)(end - p), false, &f);
        CHECK(h >= 0);
        if (h == 0 || f.len > (uint64_t)(end - p - h))
            break; /* cut by the end of what we kept */
        const uint8_t *pl = p + h;
        if (op == 1)
            CHECK(appsrv__utf8_check(APPSRV__UTF8_ACCEPT, pl, (size_t)f.len) ==
                  APPSRV__UTF8_ACCEPT);
        if (op == 8) {
            uint16_t code;
            CHECK(appsrv__ws_close_parse(pl, (size_t)f.len, &code) == 0);
            closed = true;
        }
        p = pl + f.len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&g, 0, sizeof(g));
    const uint8_t *payload;
    size_t plen, cuts[5];
    int nchunks = fz_split(data, size, &g.flags, &payload, &plen, cuts);

    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 1;
    cfg.max_conns = 4;
    cfg.head_timeout_ms = cfg.idle_timeout_ms = cfg.write_timeout_ms = 60000;
    cfg.drain_timeout_ms = 60000;
    cfg.ws_ping_ms = 30000; /* F_WARP makes it pass */
    if (g.flags & F_SMALLMSG)
        cfg.max_ws_message = 100;
    fz_t z = {0};
    CHECK(appsrv_server_new(&z.srv, &cfg) == 0);
    CHECK(appsrv_route_ws(z.srv, "/ws", &handlers, NULL) == 0);
    fz_connect(&z, g.flags & F_SMALLBUF, false);

    static const char hs[] =
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    bool read_out = !(g.flags & F_NOREAD);
    fz_client_write(&z, (const uint8_t *)hs, sizeof(hs) - 1);
    fz_settle(&z, read_out);
    CHECK(g.opened == 1);
    for (int i = 0; i < nchunks; i++) {
        fz_client_write(&z, payload + cuts[i], cuts[i + 1] - cuts[i]);
        fz_settle(&z, read_out);
        if ((g.flags & F_PUSH) && g.ws != NULL) {
            int rc = appsrv_ws_send(g.ws, APPSRV_WS_BINARY, payload, cuts[i + 1] - cuts[i]);
            CHECK(rc == 0 || rc == -EAGAIN || rc == APPSRV_ECLOSED);
            fz_settle(&z, read_out);
        }
    }
    if ((g.flags & F_HOSTCLOSE) && g.ws != NULL) {
        int rc = appsrv_ws_close(g.ws, 4000, "host");
        CHECK(rc == 0 || rc == APPSRV_ECLOSED);
        fz_settle(&z, read_out);
    }
    if (g.flags & F_STOP) {
        appsrv_server_stop(z.srv);
        fz_settle(&z, read_out);
    }
    if (g.flags & F_WARP) {
        fz_warp(z.w);
        fz_settle(&z, read_out);
        fz_warp(z.w);
        fz_settle(&z, read_out);
    }
    fz_settle(&z, true);
    check_output(&z);

    /* The client leaves, then the host lets go: nothing may stay. */
    fz_client_close(&z);
    CHECK(g.closed == 1);
    if (g.ws != NULL) {
        CHECK(appsrv_ws_send(g.ws, APPSRV_WS_TEXT, "x", 1) == APPSRV_ECLOSED);
        appsrv_ws_release(g.ws);
        g.ws = NULL;
    }
    fz_settle(&z, false);
    CHECK(z.w->conns == NULL && z.w->nconns == 0);
    CHECK(z.w->nheld == 0 && z.w->held == NULL);
    CHECK(appsrv__server_nconns(z.srv) == 0);
    appsrv_server_free(z.srv);
    free(z.out);
    return 0;
}
