/* SPDX-License-Identifier: MIT */
/*
 * test_sse.c - server-sent events end to end (appsrv.h, appsrv_res_sse_*):
 * event framing, heartbeats while idle, a heartbeat due on a stalled reader
 * that must not stall the worker, and an end that meets a due heartbeat.
 * Host side in tests/support/host.c; the CLI's /events is in
 * test_cli_events.c.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>

#include "expect.h"
#include "host.h"
#include "routes.h"

typedef struct sse_ev {
    const char *event, *id, *data;
} sse_ev_t;

typedef struct sse_job {
    const sse_ev_t *evs;
    size_t n;
    int gap_ms;
    atomic_int bad, end_rc;
} sse_job_t;

static void job_sse(job_t *j)
{
    sse_job_t *sj = j->arg;
    for (size_t i = 0; i < sj->n; i++) {
        if (sj->gap_ms > 0)
            e2e_pause_ms(sj->gap_ms);
        if (appsrv_res_sse_send(j->res, sj->evs[i].event, sj->evs[i].id, sj->evs[i].data) != 0)
            atomic_fetch_add(&sj->bad, 1);
    }
    int rc = appsrv_res_end(j->res);
    atomic_store(&sj->end_rc, rc);
    host_record(j->host, rc);
}

/* GET /sse?hb=N: appsrv_res_sse_begin(res, N) in the handler; the host
 * thread sends t->arg's events (held when ?hold=1). */
static int h_sse(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    tctx_t *t = user;
    appsrv_res_set_status(res, 200);
    if (appsrv_res_sse_begin(res, (int)qint(req, "hb", 0)) != 0)
        return -1;
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->res = res;
    j->due_ms = qint(req, "hold", 0) ? HELD : 0;
    j->fn = job_sse;
    j->arg = t->arg;
    appsrv_res_on_cancel(res, cancel_cb, &t->slots[0]);
    atomic_fetch_add(&t->handled, 1);
    host_push(&t->host, j);
    return APPSRV_LATER;
}

static int count_sub(const char *hay, size_t n, const char *needle)
{
    int k = 0;
    size_t nl = strlen(needle);
    const char *p = hay, *end = hay + n;
    while (p < end && (p = memmem(p, (size_t)(end - p), needle, nl)) != NULL) {
        k++;
        p += nl;
    }
    return k;
}

/* A producer of SSE events as fast as the library takes them (honouring
 * the drain callback) until the client's stall blocks it for good (no
 * drain for 300 ms); then it waits for t->flag_b and ends. */
static void job_sse_flood(job_t *j)
{
    tctx_t *t = j->arg;
    prod_t *p = t->arg;
    char data[4096];
    memset(data, 'e', sizeof(data) - 1);
    data[sizeof(data) - 1] = '\0';
    for (int i = 0; i < 100000; i++) {
        unsigned d0 = prod_drains(p);
        int rc = appsrv_res_sse_send(j->res, "flood", NULL, data);
        if (rc == -EAGAIN) {
            if (prod_wait_drain(p, j->host, &t->slots[0], d0, 300))
                continue;
            break; /* stuck: the output queue is full and stays full */
        }
        if (rc != 0) {
            atomic_store(&t->held_rc, rc);
            break;
        }
    }
    atomic_store(&t->flag_a, 1);
    int64_t end = e2e_now_ms() + 20000;
    while (!atomic_load(&t->flag_b) && !host_quitting(j->host) && e2e_now_ms() < end)
        poll(NULL, 0, 5);
    host_record(j->host, appsrv_res_end(j->res));
}

static int h_sse_flood(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    tctx_t *t = user;
    appsrv_res_set_status(res, 200);
    if (appsrv_res_sse_begin(res, (int)qint(req, "hb", 0)) != 0)
        return -1;
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    appsrv_res_on_drain(res, drain_cb, t->arg);
    j->res = res;
    j->fn = job_sse_flood;
    j->arg = t;
    appsrv_res_on_cancel(res, cancel_cb, &t->slots[0]);
    host_push(&t->host, j);
    return APPSRV_LATER;
}

/* GET /sse-hold: SSE with a 1 ms heartbeat, res kept for /end-held. */
static int h_sse_hold(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    appsrv_res_set_status(res, 200);
    if (appsrv_res_sse_begin(res, 1) != 0)
        return -1;
    t->held = res;
    atomic_fetch_add(&t->handled, 1);
    return APPSRV_LATER;
}

/* GET /end-held: ends the held stream (appsrv_res_end: any thread). */
static int h_end_held(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    int rc = t->held != NULL ? appsrv_res_end(t->held) : -ENOENT;
    t->held = NULL;
    if (rc != 0)
        atomic_store(&t->held_rc, rc);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "ended", 5);
}

Test(e2e_deferred, sse_events_framed, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(1);
    cr_assert_not_null(t);
    static const sse_ev_t evs[] = {
        {"greet", "1", "hello"},
        {NULL, NULL, "two\nlines"},
        {NULL, "3", "crlf\r\nend\rcr"},
        {"empty", NULL, ""},
    };
    sse_job_t sj;
    memset(&sj, 0, sizeof(sj));
    sj.evs = evs;
    sj.n = ARRAY_LEN(evs);
    sj.gap_ms = 10;
    t->arg = &sj;
    e2e_route_t routes[] = {{"GET", "/sse", h_sse, t, false}, {"GET", "/fast", h_fast, t, false}};
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    send_str(&c, "GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 200, NULL);
    check_std_head(&r);
    cr_assert(r.chunked);
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Type"), "text/event-stream");
    cr_assert_str_eq(e2e_resp_header(&r, "Cache-Control"), "no-cache");
    check_body(&r, "event: greet\nid: 1\ndata: hello\n\n"
                   "data: two\ndata: lines\n\n"
                   "id: 3\ndata: crlf\ndata: end\ndata: cr\n\n"
                   "event: empty\ndata: \n\n");
    e2e_resp_free(&r);
    send_str(&c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "fast");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    wait_count(&t->host.ran, 1, RD, "event source");
    cr_assert_eq(atomic_load(&sj.bad), 0);
    cr_assert_eq(atomic_load(&sj.end_rc), 0);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, sse_heartbeat_when_idle, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(1);
    cr_assert_not_null(t);
    sse_job_t sj;
    memset(&sj, 0, sizeof(sj));
    static const sse_ev_t evs[] = {{"bye", NULL, "done"}};
    sj.evs = evs;
    sj.n = 1;
    t->arg = &sj;
    e2e_route_t routes[] = {{"GET", "/sse", h_sse, t, false}};
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /sse?hb=100&hold=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    /* Nothing to say for a while: comment lines keep the path warm. */
    int64_t end = e2e_now_ms() + 2000 * e2e_slow_factor();
    while (count_sub(c.buf ? c.buf : "", c.len, ":heartbeat\n\n") < 3 && e2e_now_ms() < end)
        e2e_pump(&c, 50);
    int beats = count_sub(c.buf ? c.buf : "", c.len, ":heartbeat\n\n");
    cr_assert_geq(beats, 3, "%d heartbeats", beats);
    host_release_all(&t->host);
    e2e_resp_t r;
    read_resp(&c, &r, 0); /* parses what was pumped, then the rest */
    check_status(&r, 200, NULL);
    cr_assert(r.chunked);
    size_t tail = strlen("event: bye\ndata: done\n\n");
    cr_assert_geq(r.body_len, tail);
    cr_assert(memcmp(r.body + r.body_len - tail, "event: bye\ndata: done\n\n", tail) == 0,
              "body ends '%s'", r.body);
    /* all else is heartbeats */
    int all = count_sub(r.body, r.body_len - tail, ":heartbeat\n\n");
    cr_assert_eq((size_t)all * strlen(":heartbeat\n\n"), r.body_len - tail,
                 "unexpected bytes: '%s'", r.body);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    wait_count(&t->host.ran, 1, RD, "event source");
    tctx_free(t);
    stop_and_check(&s, fds0);
}

/*
 * An SSE stream with a heartbeat to a client that stopped reading (a phone
 * that went to the background): the output queue is full when the
 * heartbeat falls due. The worker must go on serving everyone else.
 */
Test(e2e_deferred, sse_heartbeat_with_stalled_reader_keeps_worker_alive, .timeout = 90)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(1);
    cr_assert_not_null(t);
    prod_t p; /* drain bookkeeping for the flood */
    prod_init(&p, 0, 0);
    t->arg = &p;
    e2e_route_t routes[] = {
        {"GET", "/sse", h_sse_flood, t, false},
        {"GET", "/fast", h_fast, t, false},
    };
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t stalled, c;
    open_conn_rcvbuf(&stalled, s.port, 4096);
    send_str(&stalled, "GET /sse?hb=100 HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_count(&t->flag_a, 1, 20000, "producer blocked by backpressure");
    cr_assert_eq(atomic_load(&t->held_rc), 0, "sse_send: %d", atomic_load(&t->held_rc));
    /* Heartbeats fall due while the output cannot move. */
    e2e_pause_ms(400);
    open_conn(&c, s.port);
    send_str(&c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    int rc = e2e_read_response(&c, &r, e2e_valgrind() ? 6000 : 3000, 0);
    cr_assert_eq(rc, 0,
                 "a fast request on the same worker got no answer (%s) while an SSE "
                 "heartbeat was due on a stalled stream: the worker is stuck",
                 appsrv_strerror(rc));
    check_body(&r, "fast");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    /* Let everything finish: the client reads, the producer ends. */
    atomic_store(&t->flag_b, 1);
    rc = e2e_read_response(&stalled, &r, 20000, 0);
    cr_assert_eq(rc, 0, "stalled stream: %s", appsrv_strerror(rc));
    e2e_resp_free(&r);
    e2e_conn_close(&stalled);
    wait_count(&t->host.ran, 1, RD, "producer");
    cr_assert_eq(atomic_load(&t->host.ok), 1);
    tctx_free(t);
    prod_destroy(&p);
    stop_and_check(&s, fds0);
}

/*
 * An SSE stream ended while its heartbeat is due in the same loop pass:
 * the heartbeat's own drive then finishes the stream. The finished
 * response's heartbeat timer must not stay armed (it lives in memory that
 * goes back to the pool). Ended from a handler on the loop thread so the
 * end and the due heartbeat meet in one pass; repeated to hit the pass.
 */
Test(e2e_deferred, sse_end_while_heartbeat_due, .timeout = 60)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(1);
    cr_assert_not_null(t);
    e2e_route_t routes[] = {
        {"GET", "/sse-hold", h_sse_hold, t, false},
        {"GET", "/end-held", h_end_held, t, false},
        {"GET", "/fast", h_fast, t, false},
    };
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t b;
    open_conn(&b, s.port);
    int rounds = SCALE(40, 10);
    for (int i = 0; i < rounds; i++) {
        e2e_conn_t a;
        e2e_resp_t r;
        open_conn(&a, s.port);
        send_str(&a, "GET /sse-hold HTTP/1.1\r\nHost: x\r\n\r\n");
        wait_count(&t->handled, i + 1, RD, "sse handler");
        int64_t end = e2e_now_ms() + RD;
        while (count_sub(a.buf ? a.buf : "", a.len, ":heartbeat") < 2 && e2e_now_ms() < end)
            e2e_pump(&a, 5);
        send_str(&b, "GET /end-held HTTP/1.1\r\nHost: x\r\n\r\n");
        read_resp(&b, &r, 0);
        check_body(&r, "ended");
        e2e_resp_free(&r);
        read_resp(&a, &r, 0);
        check_status(&r, 200, NULL);
        e2e_resp_free(&r);
        /* give a stray timer time to fire, then use the connection */
        e2e_pause_ms(5);
        send_str(&a, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
        read_resp(&a, &r, 0);
        check_body(&r, "fast");
        e2e_resp_free(&r);
        e2e_conn_close(&a);
        cr_assert_eq(atomic_load(&t->held_rc), 0, "appsrv_res_end: %d", atomic_load(&t->held_rc));
    }
    e2e_conn_close(&b);
    tctx_free(t);
    stop_and_check(&s, fds0);
}
