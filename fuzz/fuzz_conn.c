/* SPDX-License-Identifier: MIT */
/*
 * fuzz_conn.c - libFuzzer driver for the whole connection state machine
 * (conn.c, http.c, line.c, req.c, res.c, router.c, loop.c, server.c): the bytes go
 * through a real socket, epoll and the worker's loop, not just the parser.
 *
 * Each input gets a fresh server (one worker, no listener) with recording
 * handlers, and one connection made with socketpair(AF_UNIX) handed to the
 * library through appsrv__server_adopt(), as if accepted. The payload is
 * written in a few chunks; after each one the loop runs with
 * appsrv__server_pass() until nothing moves, and the responses
 * are read. Then, as the flags say, the client half-closes, the deadlines
 * are made to pass (the timeout paths: 408, 503, linger, heartbeats), the
 * server is stopped gracefully, deferred and streamed responses are
 * finished, and finally the client closes. Everything is freed, so
 * LeakSanitizer sees any leak.
 *
 * Input: byte 0 flags (F_* below), bytes 1-2 choose how the payload is
 * split (1-4 chunks), the rest is what the client sends. Shorter inputs
 * are padded with zeros for the control bytes.
 *
 * Checks (abort() is a finding): handler views obey the limits and lie
 * in readable memory (every byte is touched); the loop settles (no
 * livelock); a client that reads to the end gets at least every byte the
 * access log says was queued (unless the deadlines were made to pass: a
 * write stall or the drain timeout may cut output); HTTP output starts with
 * "HTTP/1.1 "; line output is whole "DDD ..." lines; once the client is
 * gone no connection, held connection or counted connection is left.
 *
 * Built with FUZZ_LINE_ONLY (fuzz_line.c), every input is line protocol.
 * Environment (triage): FUZZ_CONN_DEBUG=1 prints what the client got;
 * FUZZ_CONN_IGNORE=cut,zombie steps over those known findings while their
 * fix is pending, so that fuzzing can go on.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_check.h"
#include "res.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK FUZZ_CHECK

/* When the socket stays full the client reads, then the host finishes
 * what it holds (a deferred response keeps later input in the socket). */
static void finish_pending(bool all);
#define FZ_ON_STUCK(z, stuck)                                                                      \
    do {                                                                                           \
        if ((stuck) >= 3)                                                                          \
            finish_pending((stuck) >= 4);                                                          \
    } while (0)
#include "conn_harness.h"

enum {
    F_LINE = 1 << 0,        /* line protocol instead of HTTP */
    F_TINY = 1 << 1,        /* tiny limits (414/431/413 reachable with short inputs) */
    F_HALFCLOSE = 1 << 2,   /* shutdown(SHUT_WR) after the payload */
    F_FINISH_EACH = 1 << 3, /* finish deferred responses after every chunk */
    F_SMALLBUF = 1 << 4,    /* small server send buffer: partial writes, backpressure */
    F_WARP = 1 << 5,        /* let every deadline pass before the end */
    F_STOP = 1 << 6,        /* appsrv_server_stop() before the end (graceful drain) */
    F_NOREAD = 1 << 7,      /* the client reads nothing until the end */
};

/* ------------------------------------------------------------- handlers */

enum { P_SEND, P_STREAM, P_SSE, P_LINE };

#define MAX_PENDING 8

static struct {
    const appsrv_config_t *cfg;
    struct {
        appsrv_res_t *res;
        int kind;
        int writes;
    } pending[MAX_PENDING];
    int npending;
    unsigned cancels;
    uint64_t logged; /* response bytes the library says it queued */
    volatile unsigned sink;
} g;

/* Reads every byte of a view: ASan reports a view into freed or foreign
 * memory. */
static void touch(appsrv_str_t s)
{
    unsigned h = 0;
    if (s.ptr == NULL) {
        CHECK(s.len == 0);
        return;
    }
    for (size_t i = 0; i < s.len; i++)
        h = h * 31 + (unsigned char)s.ptr[i];
    g.sink += h;
}

static bool ieq(appsrv_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s.ptr[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a + 32);
        if (a != b)
            return false;
    }
    return true;
}

/* The access log: one call per response, with the bytes queued. */
static void access_log(const appsrv_log_entry_t *e, void *user)
{
    (void)user;
    CHECK(e->status >= 100 && e->status <= 999);
    touch(e->method);
    touch(e->target);
    /* An aborted request's bytes may have been dropped with its client. */
    if (!e->aborted)
        g.logged += e->bytes;
}

static void on_cancel(appsrv_res_t *res, void *ud)
{
    (void)res;
    (void)ud;
    g.cancels++;
}

static bool defer(appsrv_res_t *res, int kind)
{
    if (g.npending == MAX_PENDING)
        return false;
    g.pending[g.npending].res = res;
    g.pending[g.npending].kind = kind;
    g.pending[g.npending].writes = 0;
    g.npending++;
    appsrv_res_on_cancel(res, on_cancel, NULL);
    return true;
}

/* What every HTTP request must satisfy once the parser let it through. */
static void check_http_req(appsrv_req_t *req)
{
    const appsrv_config_t *cfg = g.cfg;
    CHECK(appsrv_req_proto(req) == APPSRV_PROTO_HTTP);
    appsrv_str_t m = appsrv_req_method(req), t = appsrv_req_target(req);
    appsrv_str_t p = appsrv_req_path(req), q = appsrv_req_query(req);
    appsrv_str_t b = appsrv_req_body(req);
    touch(m);
    touch(t);
    touch(p);
    touch(q);
    touch(b);
    CHECK(m.len > 0);
    CHECK(t.len > 0 && t.len <= cfg->max_target);
    CHECK(p.len <= t.len);
    CHECK(b.ptr != NULL && b.len <= cfg->max_body);
    int minor = appsrv_req_http_minor(req);
    CHECK(minor == 0 || minor == 1);
    size_t n = appsrv_req_header_count(req), hosts = 0;
    CHECK(n <= cfg->max_headers);
    for (size_t i = 0; i < n; i++) {
        appsrv_str_t name, value;
        CHECK(appsrv_req_header_at(req, i, &name, &value) == 0);
        CHECK(name.len > 0);
        touch(name);
        touch(value);
        for (size_t k = 0; k < value.len; k++)
            CHECK(value.ptr[k] != '\0' && value.ptr[k] != '\r' && value.ptr[k] != '\n');
        hosts += ieq(name, "host");
    }
    CHECK(appsrv_req_header_at(req, n, NULL, NULL) == -ERANGE);
    if (minor == 1)
        CHECK(hosts == 1);
    char buf[64];
    ssize_t r = appsrv_req_query_param(req, "msg", buf, sizeof(buf));
    CHECK(r >= 0 || r == -ENOENT || r == -ENOSPC || r == -EINVAL);
    touch(appsrv_req_header(req, "content-type"));
    touch(appsrv_req_param(req, "id"));
    touch(appsrv_req_param(req, "*"));
    CHECK(appsrv_req_peer(req) != NULL);
}

static void big_free(void *data, void *ud)
{
    (void)ud;
    free(data);
}

static int h_root(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    check_http_req(req);
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_set_body(res, "root", 4);
}

static int h_param(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    check_http_req(req);
    appsrv_str_t id = appsrv_req_param(req, "id");
    CHECK(id.ptr != NULL && id.len > 0);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body_ref(res, id.ptr, id.len, NULL, NULL);
}

static int h_echo(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    check_http_req(req);
    appsrv_str_t b = appsrv_req_body(req);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body_ref(res, b.ptr, b.len, NULL, NULL);
}

/* /any/<letter>...: the letter picks a behaviour. */
static int h_any(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    check_http_req(req);
    appsrv_str_t rest = appsrv_req_param(req, "*");
    char op = rest.len > 0 ? rest.ptr[0] : '-';
    switch (op) {
    case 'c':
        appsrv_res_close(res);
        appsrv_res_set_status(res, 200);
        return appsrv_res_set_body(res, "bye", 3);
    case 'f':
        appsrv_res_set_status(res, 200);
        appsrv_res_set_body(res, "discarded", 9);
        return -1; /* 500 */
    case 'n':
        return 0; /* no status: 500 */
    case 'l':
        appsrv_res_set_status(res, 202);
        appsrv_res_set_body(res, "later", 5);
        return defer(res, P_SEND) ? APPSRV_LATER : 0;
    case 's':
        if (!defer(res, P_STREAM))
            return h_root(req, res, NULL);
        CHECK(appsrv_res_stream(res) == 0);
        return APPSRV_LATER;
    case 'e':
        if (!defer(res, P_SSE))
            return h_root(req, res, NULL);
        CHECK(appsrv_res_sse_begin(res, 500) == 0);
        return APPSRV_LATER;
    case 'b': {
        size_t n = 200 * 1024;
        char *big = malloc(n);
        if (big == NULL)
            return -ENOMEM;
        memset(big, 'b', n);
        appsrv_res_set_status(res, 200);
        return appsrv_res_set_body_ref(res, big, n, big_free, NULL);
    }
    case 'z':
        appsrv_res_set_status(res, 204);
        return appsrv_res_set_body(res, "ignored", 7);
    case 'h':
        appsrv_res_set_status(res, 200);
        for (int i = 0; i < 400; i++)
            if (appsrv_res_add_header(res, "X-Many", "0123456789abcdef") == -ENOSPC)
                break;
        return 0;
    case 'r':
        appsrv_res_set_status(res, 299);
        CHECK(appsrv_res_set_reason(res, "Bad\r\nInjected") == -EINVAL);
        CHECK(appsrv_res_add_header(res, "X-Bad", "a\r\nb") == -EINVAL);
        CHECK(appsrv_res_add_header(res, "Content-Length", "1") == -EINVAL);
        appsrv_res_set_reason(res, "Fine");
        return appsrv_res_printf(res, "%zu", rest.len) < 0 ? -1 : 0;
    case 'q': {
        appsrv_str_t q = appsrv_req_query(req);
        char *buf = malloc(q.len + 1);
        if (buf == NULL)
            return -ENOMEM;
        ssize_t n = appsrv_req_query_param(req, "msg", buf, q.len + 1);
        CHECK(n != -ENOSPC);
        appsrv_res_set_status(res, n < 0 ? 400 : 200);
        if (n < 0) {
            free(buf);
            return 0;
        }
        return appsrv_res_set_body_ref(res, buf, (size_t)n, big_free, NULL);
    }
    default:
        appsrv_res_set_status(res, 200);
        return appsrv_res_append(res, "any", 3);
    }
}

static void check_line_req(appsrv_req_t *req)
{
    CHECK(appsrv_req_proto(req) == APPSRV_PROTO_LINE);
    appsrv_str_t m = appsrv_req_method(req), p = appsrv_req_path(req), b = appsrv_req_body(req);
    touch(m);
    touch(b);
    CHECK(m.len > 0 && p.ptr == m.ptr && p.len == m.len);
    CHECK(appsrv_req_target(req).len == 0);
    CHECK(appsrv_req_header_count(req) == 0);
    CHECK(m.len + (b.len ? b.len + 1 : 0) <= g.cfg->max_line);
    for (size_t i = 0; i < b.len; i++)
        CHECK(b.ptr[i] != '\n');
}

static int l_ping(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    check_line_req(req);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "PONG", 4);
}

static int l_echo(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    check_line_req(req);
    appsrv_str_t b = appsrv_req_body(req);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, b.ptr, b.len); /* a '\r' inside: 500 */
}

static int l_quit(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    check_line_req(req);
    appsrv_res_set_status(res, 200);
    appsrv_res_close(res);
    return appsrv_res_set_body(res, "BYE", 3);
}

static int l_later(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    check_line_req(req);
    appsrv_res_set_status(res, 200);
    return defer(res, P_LINE) ? APPSRV_LATER : 0;
}

static int l_bad(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    check_line_req(req);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "two\nlines", 9); /* must become 500 */
}

static int l_big(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    check_line_req(req);
    appsrv_res_set_status(res, 200);
    for (int i = 0; i < 1000; i++)
        if (appsrv_res_append(res, "0123456789abcdef0123456789abcdef", 32) < 0)
            return -1;
    return 0;
}

/* Finishes deferred responses: streams get one more write each time and
 * end after two; with all, every one ends. */
static void finish_pending(bool all)
{
    int keep = 0;
    for (int i = 0; i < g.npending; i++) {
        appsrv_res_t *res = g.pending[i].res;
        int rc;
        bool done = true;
        switch (g.pending[i].kind) {
        case P_SEND:
            appsrv_res_set_body(res, "done", 4);
            rc = appsrv_res_send(res);
            CHECK(rc == 0 || rc == APPSRV_ECANCELED);
            break;
        case P_LINE:
            appsrv_res_set_body(res, "LATER", 5);
            rc = appsrv_res_send(res);
            CHECK(rc == 0 || rc == APPSRV_ECANCELED);
            break;
        case P_STREAM:
        case P_SSE:
            if (g.pending[i].writes < 2) {
                rc = g.pending[i].kind == P_SSE ? appsrv_res_sse_send(res, "tick", "1", "a\nb\r\nc")
                                                : appsrv_res_write(res, "chunk", 5);
                CHECK(rc == 0 || rc == APPSRV_ECANCELED || rc == -EAGAIN);
                g.pending[i].writes++;
            }
            if (all || g.pending[i].writes >= 2) {
                rc = appsrv_res_end(res);
                CHECK(rc == 0 || rc == APPSRV_ECANCELED);
            } else {
                done = false;
            }
            break;
        default:
            abort();
        }
        if (!done)
            g.pending[keep++] = g.pending[i];
    }
    g.npending = keep;
}

/* --------------------------------------------------------------- driver */

/* Every deadline passes, and the heartbeats of held streams are due. */
static void warp(appsrv__worker_t *w)
{
    fz_warp(w);
    for (int i = 0; i < g.npending; i++)
        g.pending[i].res->last_out_ms = 0;
}

/* forced: a forced close (write stall, drain timeout) may cut the last
 * response short. */
/* Known findings to step over while a fix is pending (triage only). */
static bool ignore(const char *what)
{
    const char *s = getenv("FUZZ_CONN_IGNORE");
    return s != NULL && strstr(s, what) != NULL;
}

static void check_output(const fz_t *z, bool line, bool forced)
{
    /* Every response byte queued reaches a client that reads to the end
     * (streams and 100 Continue add bytes the log does not count). */
    CHECK(forced || z->in_total >= g.logged);
    if (z->out_len == 0)
        return;
    if (!line) {
        static const char pre[] = "HTTP/1.1 ";
        size_t n = z->out_len < sizeof(pre) - 1 ? z->out_len : sizeof(pre) - 1;
        CHECK(memcmp(z->out, pre, n) == 0);
        return;
    }
    if (z->out_cut)
        return; /* only a prefix was kept */
    /* Whole lines only, each "DDD REASON[ BODY]". */
    CHECK(forced || z->out[z->out_len - 1] == '\n');
    const char *p = z->out, *end = z->out + z->out_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break; /* a cut last line (forced only, checked above) */
        CHECK(nl - p >= 5);
        for (int i = 0; i < 3; i++)
            CHECK(p[i] >= '0' && p[i] <= '9');
        CHECK(p[3] == ' ');
        CHECK(memchr(p, '\r', (size_t)(nl - p)) == NULL);
        p = nl + 1;
    }
}

static void config(appsrv_config_t *cfg, bool tiny)
{
    appsrv_config_init(cfg);
    cfg->threads = 1;
    cfg->max_conns = 4;
    if (tiny) {
        cfg->max_head = 256;
        cfg->max_target = 48;
        cfg->max_headers = 6;
        cfg->max_body = 6000; /* above the block: a Content-Length body goes to the heap */
        cfg->max_line = 64;
    } else {
        cfg->max_head = 8192;
        cfg->max_target = 2048;
        cfg->max_headers = 64;
        cfg->max_body = 64 * 1024;
        cfg->max_line = 4096; /* below the block size: no line listener needed */
    }
    /* Long enough never to fire by themselves during one input; F_WARP
     * makes them pass. */
    cfg->head_timeout_ms = 60000;
    cfg->idle_timeout_ms = 60000;
    cfg->write_timeout_ms = 60000;
    cfg->response_timeout_ms = 60000;
    cfg->drain_timeout_ms = 60000;
    cfg->access_log = access_log;
}

static appsrv_server_t *make_server(const appsrv_config_t *cfg)
{
    appsrv_server_t *srv;
    CHECK(appsrv_server_new(&srv, cfg) == 0);
    CHECK(appsrv_route(srv, "GET", "/", h_root, NULL) == 0);
    CHECK(appsrv_route(srv, "GET", "/a/:id", h_param, NULL) == 0);
    CHECK(appsrv_route(srv, "POST", "/echo", h_echo, NULL) == 0);
    CHECK(appsrv_route(srv, "PUT", "/echo", h_echo, NULL) == 0);
    CHECK(appsrv_route(srv, NULL, "/any/*", h_any, NULL) == 0);
    CHECK(appsrv_route_line(srv, "PING", l_ping, NULL) == 0);
    CHECK(appsrv_route_line(srv, "ECHO", l_echo, NULL) == 0);
    CHECK(appsrv_route_line(srv, "QUIT", l_quit, NULL) == 0);
    CHECK(appsrv_route_line(srv, "LATER", l_later, NULL) == 0);
    CHECK(appsrv_route_line(srv, "BAD", l_bad, NULL) == 0);
    CHECK(appsrv_route_line(srv, "BIG", l_big, NULL) == 0);
    return srv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned flags;
    const uint8_t *payload;
    size_t plen, cuts[5];
    int nchunks = fz_split(data, size, &flags, &payload, &plen, cuts);
#ifdef FUZZ_LINE_ONLY
    flags |= F_LINE;
#endif
    bool line = flags & F_LINE;

    appsrv_config_t cfg;
    config(&cfg, flags & F_TINY);
    memset(&g, 0, sizeof(g));
    g.cfg = &cfg;

    fz_t z = {0};
    z.srv = make_server(&cfg);
    fz_connect(&z, flags & F_SMALLBUF, line);

    bool read_out = !(flags & F_NOREAD);
    fz_settle(&z, read_out);
    for (int i = 0; i < nchunks; i++) {
        fz_client_write(&z, payload + cuts[i], cuts[i + 1] - cuts[i]);
        fz_settle(&z, read_out);
        if (flags & F_FINISH_EACH) {
            finish_pending(false);
            fz_settle(&z, read_out);
        }
    }
    if (flags & F_HALFCLOSE) {
        shutdown(z.cfd, SHUT_WR);
        fz_settle(&z, read_out);
    }
    if (flags & F_STOP) {
        appsrv_server_stop(z.srv);
        fz_settle(&z, read_out);
    }
    if (flags & F_WARP) {
        warp(z.w);
        fz_settle(&z, read_out);
        /* A second period: linger and write-stall deadlines set by the
         * first one. */
        warp(z.w);
        fz_settle(&z, read_out);
    }
    /* The host finishes what it holds (its contract), and the client
     * reads everything; requests behind a finished one may defer again. */
    fz_settle(&z, true);
    for (int i = 0; g.npending > 0; i++) {
        CHECK(i < 1000);
        finish_pending(true);
        fz_settle(&z, true);
    }
    if (getenv("FUZZ_CONN_DEBUG") != NULL) /* triage: what the client got */
        fprintf(stderr, "--- flags 0x%02x, %d chunk(s), %zu bytes out:\n%.*s\n---\n", flags,
                nchunks, z.out_len, (int)(z.out_len < 2048 ? z.out_len : 2048), z.out);
    /* FUZZ_CONN_IGNORE=cut: a known cut of queued output on half-close
     * (fuzz/regression/conn-halfclose-*) while its fix is pending. */
    check_output(&z, line, (flags & F_WARP) || ignore("cut"));

    /* The client leaves: nothing may stay behind. */
    fz_client_close(&z);
    /* Input read before the close may still have reached a handler. */
    for (int i = 0; g.npending > 0; i++) {
        CHECK(i < 1000);
        finish_pending(true);
        fz_settle(&z, false);
    }
    CHECK(z.w->conns == NULL && z.w->nconns == 0);
    /* FUZZ_CONN_IGNORE=zombie: step over closed connections still held
     * (the leak of fuzz/regression/conn-zombie-*, fixed); server_free()
     * reclaims them, so LeakSanitizer stays quiet. */
    if (!ignore("zombie"))
        CHECK(z.w->nheld == 0 && z.w->held == NULL);
    CHECK(appsrv__server_nconns(z.srv) == 0);

    appsrv_server_free(z.srv);
    free(z.out);
    return 0;
}
