/* SPDX-License-Identifier: MIT */
/*
 * test_gzip.c - appsrv_gzip_use() end to end on an in-process server:
 * bodies decoded by zlib here and by real clients (curl --compressed,
 * python3's gzip module, node's zlib.gunzipSync; node skipped with a
 * message when missing) and compared with the uncompressed body;
 * Accept-Encoding q-values; no compression for 204, 304, 206, HEAD
 * (which keeps the GET's headers), an own Content-Encoding, small bodies,
 * image/png and appsrv_res_no_compress(); chunked streams and SSE
 * compressed with each event decodable before the next is produced;
 * option checks; the CLI's --gzip seen by curl (POST /echo of JSON, the
 * /events SSE stream). In a build without zlib (make ZLIB=no) only the
 * -ENOTSUP check and --gzip's refusal (exit status 2) are compiled.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "expect.h"

#define TMO_S 60

#ifndef APPSRV_HAVE_ZLIB

Test(gzip, without_zlib_enotsup, .timeout = TMO_S)
{
    cr_expect(!appsrv_gzip_available());
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, NULL), 0);
    cr_expect_eq(appsrv_gzip_use(srv, NULL), -ENOTSUP);
    appsrv_gzip_opts_t o = {.level = 9};
    cr_expect_eq(appsrv_gzip_use(srv, &o), -ENOTSUP);
    appsrv_server_free(srv);
}

Test(cli_gzip, refused_without_zlib, .timeout = TMO_S)
{
    e2e_proc_t p;
    char *const argv[] = {(char *)e2e_bin_path(), "-p", "0", "--gzip", NULL};
    int rc = e2e_proc_spawn(&p, argv, E2E_PROC_OUT | E2E_PROC_ERR);
    cr_assert_eq(rc, 0);
    rc = e2e_proc_wait(&p, SCALE(10000, 60000));
    cr_assert_eq(rc, 0, "appsrv --gzip still running; stderr: %s", p.err.buf ? p.err.buf : "");
    cr_expect(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 2, "status 0x%x",
              (unsigned)p.status);
    cr_expect(p.err.buf != NULL && strstr(p.err.buf, "--gzip: this build has no gzip") != NULL,
              "stderr: %s", p.err.buf ? p.err.buf : "");
    e2e_proc_free(&p);
}

#else /* APPSRV_HAVE_ZLIB */

#include <zlib.h>

/* ------------------------------------------------------------ the bodies */

#define BIG 16384

static char g_big[BIG + 1]; /* a JSON document of exactly BIG bytes */

static void make_big(void)
{
    if (g_big[0] != '\0')
        return;
    size_t n = 0;
    n += (size_t)snprintf(g_big, sizeof(g_big), "[");
    for (int i = 0; n < BIG - 64; i++)
        n += (size_t)snprintf(g_big + n, sizeof(g_big) - n,
                              "%s{\"id\":%d,\"name\":\"item %d\",\"ok\":%s}", i ? "," : "", i,
                              i * 7919 % 1000, i % 3 ? "true" : "false");
    while (n < BIG - 1)
        g_big[n++] = ' ';
    g_big[n++] = ']';
    g_big[n] = '\0';
}

/* gunzips in[0..n) into *out (malloc'd). Returns the length, or -1. */
static long gunzip(const char *in, size_t n, char **out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return -1;
    size_t cap = 4 * BIG + 64, len = 0;
    char *buf = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    int rc = Z_OK;
    while (buf != NULL && rc == Z_OK) {
        z.next_out = (Bytef *)buf + len;
        z.avail_out = (uInt)(cap - len);
        rc = inflate(&z, Z_NO_FLUSH);
        len = cap - z.avail_out;
        if (rc == Z_OK && z.avail_in == 0)
            break; /* a flushed stream that is not finished */
    }
    inflateEnd(&z);
    if (buf == NULL || (rc != Z_OK && rc != Z_STREAM_END)) {
        free(buf);
        return -1;
    }
    *out = buf;
    return (long)len;
}

/* ---------------------------------------------------------- the routes */

typedef struct spec {
    int status;
    const char *type;
    size_t size; /* bytes of g_big */
    const char *hname, *hvalue;
    bool no_compress;
} spec_t;

static int h_spec(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    const spec_t *s = user;
    appsrv_res_set_status(res, s->status);
    if (s->type != NULL)
        appsrv_res_add_header(res, "Content-Type", s->type);
    if (s->hname != NULL)
        appsrv_res_add_header(res, s->hname, s->hvalue);
    if (s->no_compress)
        appsrv_res_no_compress(res);
    return s->size > 0 ? appsrv_res_set_body_ref(res, g_big, s->size, NULL, NULL) : 0;
}

static const spec_t s_json = {200, "application/json", BIG, NULL, NULL, false};
static const spec_t s_json_cs = {200, "Application/JSON; charset=utf-8", BIG, NULL, NULL, false};
static const spec_t s_small = {200, "application/json", 100, NULL, NULL, false};
static const spec_t s_png = {200, "image/png", 4096, NULL, NULL, false};
static const spec_t s_204 = {204, "text/plain", 0, NULL, NULL, false};
static const spec_t s_304 = {304, "text/plain", 0, "ETag", "\"x\"", false};
static const spec_t s_206 = {206, "text/plain", 4096, "Content-Range", "bytes 0-4095/16384", false};
static const spec_t s_enc = {200, "text/plain", 4096, "Content-Encoding", "br", false};
static const spec_t s_optout = {200, "text/plain", 4096, NULL, NULL, true};
static const spec_t s_svg = {200, "image/svg+xml", 4096, NULL, NULL, false};
static const spec_t s_problem = {200, "application/problem+json", 4096, NULL, NULL, false};
static const spec_t s_404 = {404, "application/json", 4096, NULL, NULL, false};

/* GET /chunked: a stream of three writes, ended at once. */
static int h_chunked(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    if (appsrv_res_stream(res) < 0)
        return -1;
    appsrv_res_write(res, g_big, 5000);
    appsrv_res_write(res, g_big + 5000, 7);
    appsrv_res_write(res, g_big + 5007, BIG - 5007);
    appsrv_res_end(res);
    return APPSRV_LATER;
}

/* GET /sse: NEVENTS events from a host thread, event k only once the
 * client has decoded event k-1 (g_seen): proof that each event reaches the
 * client before the next is produced. */
#define NEVENTS 5
static atomic_int g_seen, g_produced, g_gave_up;
static pthread_t g_sse_thread;
static atomic_bool g_sse_started;

static void *sse_producer(void *arg)
{
    appsrv_res_t *res = arg;
    for (int k = 1; k <= NEVENTS; k++) {
        if (e2e_wait_atomic(&g_seen, k - 1, 10000) < k - 1) {
            atomic_store(&g_gave_up, k);
            break;
        }
        char id[16], data[64];
        snprintf(id, sizeof(id), "%d", k);
        snprintf(data, sizeof(data), "event number %d of %d", k, NEVENTS);
        appsrv_res_sse_send(res, "tick", id, data);
        atomic_store(&g_produced, k);
    }
    appsrv_res_end(res);
    return NULL;
}

static int h_sse(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    if (appsrv_res_sse_begin(res, 0) < 0)
        return -1;
    if (pthread_create(&g_sse_thread, NULL, sse_producer, res) != 0) {
        appsrv_res_end(res);
        return APPSRV_LATER;
    }
    atomic_store(&g_sse_started, true);
    return APPSRV_LATER;
}

static const e2e_route_t routes[] = {
    {"GET", "/json", h_spec, (void *)&s_json, false},
    {"GET", "/json-cs", h_spec, (void *)&s_json_cs, false},
    {"GET", "/small", h_spec, (void *)&s_small, false},
    {"GET", "/png", h_spec, (void *)&s_png, false},
    {"GET", "/204", h_spec, (void *)&s_204, false},
    {"GET", "/304", h_spec, (void *)&s_304, false},
    {"GET", "/206", h_spec, (void *)&s_206, false},
    {"GET", "/encoded", h_spec, (void *)&s_enc, false},
    {"GET", "/optout", h_spec, (void *)&s_optout, false},
    {"GET", "/svg", h_spec, (void *)&s_svg, false},
    {"GET", "/problem", h_spec, (void *)&s_problem, false},
    {"GET", "/404", h_spec, (void *)&s_404, false},
    {"GET", "/chunked", h_chunked, NULL, false},
    {"GET", "/sse", h_sse, NULL, false},
};

static int setup_gzip(appsrv_server_t *srv, void *arg)
{
    return appsrv_gzip_use(srv, arg);
}

static int g_fds0;
static e2e_server_t g_srv;

static void start(const appsrv_gzip_opts_t *o)
{
    make_big();
    g_fds0 = e2e_fd_count();
    start_srv_with(&g_srv, NULL, routes, ARRAY_LEN(routes), setup_gzip, (void *)o);
}

static void finish(void)
{
    if (atomic_exchange(&g_sse_started, false))
        pthread_join(g_sse_thread, NULL);
    stop_and_check(&g_srv, g_fds0);
}

/* GET path with the Accept-Encoding line ae (NULL: none) on c. */
static void get(e2e_conn_t *c, const char *method, const char *path, const char *ae,
                e2e_resp_t *r)
{
    char req[512];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: t\r\n%s%s%s\r\n", method, path,
             ae ? "Accept-Encoding: " : "", ae ? ae : "", ae ? "\r\n" : "");
    send_str(c, req);
    read_resp(c, r, strcmp(method, "HEAD") == 0 ? E2E_RESP_HEAD : 0);
}

static bool vary_ae(const e2e_resp_t *r)
{
    for (size_t i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->names[i], "Vary") == 0 && strstr(r->values[i], "Accept-Encoding"))
            return true;
    return false;
}

/* r is gzip of want[0..n): checked header by header, then decoded. */
static void expect_gzip(const e2e_resp_t *r, const char *want, size_t n)
{
    const char *ce = e2e_resp_header(r, "Content-Encoding");
    cr_assert(ce != NULL && strcmp(ce, "gzip") == 0, "no Content-Encoding: gzip (%s)",
              ce ? ce : "none");
    cr_expect(vary_ae(r), "no Vary: Accept-Encoding");
    cr_expect_lt(r->body_len, n, "compressed %zu bytes into %zu", n, r->body_len);
    char *out = NULL;
    long len = gunzip(r->body, r->body_len, &out);
    cr_assert_eq(len, (long)n, "gunzip gave %ld bytes, want %zu", len, n);
    cr_expect_eq(memcmp(out, want, n), 0, "decoded body differs");
    free(out);
}

/* r is the plain body want[0..n) with no gzip coding. */
static void expect_plain(const e2e_resp_t *r, const char *want, size_t n, bool vary)
{
    const char *ce = e2e_resp_header(r, "Content-Encoding");
    cr_expect(ce == NULL || strcmp(ce, "gzip") != 0, "compressed although it must not be");
    cr_assert_eq(r->body_len, n, "body %zu bytes, want %zu", r->body_len, n);
    cr_expect(n == 0 || memcmp(r->body, want, n) == 0, "body differs");
    cr_expect_eq(vary_ae(r), vary, "Vary: Accept-Encoding %s", vary ? "missing" : "unexpected");
}

TestSuite(gzip, .timeout = TMO_S);

Test(gzip, json_compressed_and_decoded)
{
    start(NULL);
    e2e_conn_t c;
    open_conn(&c, g_srv.port);
    e2e_resp_t r;
    get(&c, "GET", "/json", "gzip", &r);
    check_status(&r, 200, "OK");
    expect_gzip(&r, g_big, BIG);
    cr_expect_eq(e2e_resp_header_count(&r, "Content-Encoding"), 1);
    e2e_resp_free(&r);
    /* Type matched case-insensitively, parameters ignored; suffixes. */
    const char *paths[] = {"/json-cs", "/svg", "/problem", "/404"};
    size_t sizes[] = {BIG, 4096, 4096, 4096};
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        get(&c, "GET", paths[i], "gzip, deflate, br", &r);
        expect_gzip(&r, g_big, sizes[i]);
        e2e_resp_free(&r);
    }
    e2e_conn_close(&c);
    finish();
}

Test(gzip, accept_encoding_qvalues_end_to_end)
{
    start(NULL);
    static const struct {
        const char *ae;
        bool gz;
    } rows[] = {
        {NULL, false},
        {"", false},
        {"gzip;q=0", false},
        {"gzip;q=0.000", false},
        {"*;q=0", false},
        {"br, *;q=0", false},
        {"identity;q=0", false},
        {"identity", false},
        {"deflate, br", false},
        {"gzip;q=2", false}, /* malformed: nothing accepted */
        {"gzip", true},
        {"x-gzip", true},
        {"GZIP;Q=0.5", true},
        {"gzip;q=1.000, identity;q=0", true},
        {"*", true},
        {"br;q=1, *;q=0.1", true},
        {"gzip;q=0.001", true},
    };
    e2e_conn_t c;
    open_conn(&c, g_srv.port);
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        e2e_resp_t r;
        get(&c, "GET", "/json", rows[i].ae, &r);
        cr_log_info("Accept-Encoding: %s", rows[i].ae ? rows[i].ae : "(none)");
        if (rows[i].gz)
            expect_gzip(&r, g_big, BIG);
        else
            expect_plain(&r, g_big, BIG, true);
        e2e_resp_free(&r);
    }
    e2e_conn_close(&c);
    finish();
}

Test(gzip, never_compressed)
{
    start(NULL);
    static const struct {
        const char *path;
        int status;
        size_t size;
        bool vary;
    } rows[] = {
        {"/204", 204, 0, false},    {"/304", 304, 0, false},     {"/206", 206, 4096, false},
        {"/encoded", 200, 4096, false}, {"/small", 200, 100, true}, {"/png", 200, 4096, false},
        {"/optout", 200, 4096, false},
    };
    e2e_conn_t c;
    open_conn(&c, g_srv.port);
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        e2e_resp_t r;
        get(&c, "GET", rows[i].path, "gzip", &r);
        cr_log_info("GET %s", rows[i].path);
        cr_expect_eq(r.status, rows[i].status);
        expect_plain(&r, g_big, rows[i].size, rows[i].vary);
        if (strcmp(rows[i].path, "/encoded") == 0)
            cr_expect_str_eq(e2e_resp_header(&r, "Content-Encoding"), "br");
        e2e_resp_free(&r);
    }
    e2e_conn_close(&c);
    finish();
}

/* HEAD: the GET's headers (Content-Encoding, the compressed length), no
 * body: the next response on the connection parses right after it. */
Test(gzip, head_keeps_get_headers_without_body)
{
    start(NULL);
    e2e_conn_t c;
    open_conn(&c, g_srv.port);
    e2e_resp_t g, h;
    get(&c, "GET", "/json", "gzip", &g);
    get(&c, "HEAD", "/json", "gzip", &h);
    cr_expect_str_eq(e2e_resp_header(&h, "Content-Encoding"), "gzip");
    cr_expect(vary_ae(&h));
    cr_expect_str_eq(e2e_resp_header(&h, "Content-Length"), e2e_resp_header(&g, "Content-Length"));
    cr_expect_eq(h.body_len, 0);
    e2e_resp_free(&h);
    e2e_resp_free(&g);
    get(&c, "GET", "/small", "gzip", &g);
    expect_plain(&g, g_big, 100, true);
    e2e_resp_free(&g);
    e2e_conn_close(&c);
    finish();
}

Test(gzip, chunked_stream_compressed)
{
    start(NULL);
    e2e_conn_t c;
    open_conn(&c, g_srv.port);
    for (int i = 0; i < 3; i++) { /* keep-alive: the stream's end is framed right */
        e2e_resp_t r;
        get(&c, "GET", "/chunked", i == 1 ? NULL : "gzip", &r);
        cr_expect(r.chunked, "not chunked");
        if (i == 1)
            expect_plain(&r, g_big, BIG, true);
        else
            expect_gzip(&r, g_big, BIG);
        e2e_resp_free(&r);
    }
    e2e_conn_close(&c);
    finish();
}

/* ------------------------------------------------------------------ SSE */

typedef struct sse_rd {
    z_stream z;
    char text[4096];
    size_t len;
    int events;
} sse_rd_t;

static int sse_chunk(void *ud, const unsigned char *p, size_t n)
{
    sse_rd_t *s = ud;
    s->z.next_in = (Bytef *)(uintptr_t)p;
    s->z.avail_in = (uInt)n;
    while (s->z.avail_in > 0) {
        s->z.next_out = (Bytef *)s->text + s->len;
        s->z.avail_out = (uInt)(sizeof(s->text) - 1 - s->len);
        int rc = inflate(&s->z, Z_SYNC_FLUSH);
        s->len = sizeof(s->text) - 1 - s->z.avail_out;
        if (rc == Z_STREAM_END)
            break;
        if (rc != Z_OK || s->z.avail_out == 0)
            return -EPROTO;
    }
    s->text[s->len] = '\0';
    int ev = 0;
    for (const char *q = s->text; (q = strstr(q, "\n\n")) != NULL; q += 2)
        ev++;
    s->events = ev;
    atomic_store(&g_seen, ev);
    return 0;
}

Test(gzip, sse_each_event_arrives_before_the_next)
{
    atomic_store(&g_seen, 0);
    atomic_store(&g_produced, 0);
    atomic_store(&g_gave_up, 0);
    start(NULL);
    e2e_conn_t c;
    open_conn(&c, g_srv.port);
    send_str(&c, "GET /sse HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    e2e_resp_t r;
    cr_assert_eq(e2e_read_head(&c, &r, RD), 0);
    cr_expect_str_eq(e2e_resp_header(&r, "Content-Encoding"), "gzip");
    cr_expect_str_eq(e2e_resp_header(&r, "Transfer-Encoding"), "chunked");
    e2e_resp_free(&r);
    sse_rd_t s;
    memset(&s, 0, sizeof(s));
    cr_assert_eq(inflateInit2(&s.z, 15 + 16), Z_OK);
    e2e_chunked_t d;
    e2e_chunked_init(&d, sse_chunk, &s);
    int64_t dl = e2e_now_ms() + SCALE(15000, 60000);
    while (!d.done && d.err == 0 && e2e_now_ms() < dl) {
        if (e2e_conn_avail(&c) == 0 && e2e_conn_fill(&c, dl) < 0)
            break;
        size_t used = e2e_chunked_feed(&d, e2e_conn_data(&c), e2e_conn_avail(&c));
        c.off += used;
    }
    inflateEnd(&s.z);
    cr_expect(d.done, "stream not ended: %d events decoded, %d produced, producer gave up at %d, "
                      "decoder error %d; text so far:\n%s",
              s.events, atomic_load(&g_produced), atomic_load(&g_gave_up), d.err, s.text);
    cr_expect_eq(atomic_load(&g_gave_up), 0, "event %d waited for the previous one to arrive",
                 atomic_load(&g_gave_up));
    cr_expect_eq(s.events, NEVENTS, "decoded:\n%s", s.text);
    cr_expect(strstr(s.text, "event: tick\nid: 5\ndata: event number 5 of 5\n\n") != NULL,
              "decoded:\n%s", s.text);
    e2e_conn_close(&c);
    finish();
}

/* ------------------------------------------------------- real clients */

static bool have(const char *path)
{
    return access(path, X_OK) == 0;
}

/* Runs argv to completion (bounded); returns its stdout (malloc'd) and
 * *len. A failure to run or a non-zero exit fails the test. */
static char *capture(char *const argv[], size_t *len)
{
    e2e_proc_t p;
    int rc = e2e_proc_spawn(&p, argv, E2E_PROC_OUT | E2E_PROC_ERR | E2E_PROC_SEARCH);
    cr_assert_eq(rc, 0, "spawn %s: %s", argv[0], e2e_errname(rc));
    rc = e2e_proc_wait(&p, SCALE(30000, 90000));
    cr_assert_eq(rc, 0, "%s still running after its deadline; stderr: %s", argv[0],
                 p.err.buf ? p.err.buf : "");
    cr_assert(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0, "%s exited %d; stderr: %s",
              argv[0], p.status, p.err.buf ? p.err.buf : "");
    *len = p.out.len;
    char *out = malloc(p.out.len + 1);
    cr_assert_not_null(out);
    memcpy(out, p.out.buf ? p.out.buf : "", p.out.len);
    out[p.out.len] = '\0';
    e2e_proc_free(&p);
    return out;
}

static void expect_big(char *out, size_t len, const char *who, const char *what)
{
    cr_expect_eq(len, BIG, "%s %s: %zu bytes, want %d", who, what, len, BIG);
    cr_expect(len == BIG && memcmp(out, g_big, BIG) == 0, "%s %s: body differs", who, what);
    free(out);
}

Test(gzip, curl_compressed_decodes)
{
    start(NULL);
    char url[64], url2[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/json", g_srv.port);
    snprintf(url2, sizeof(url2), "http://127.0.0.1:%d/chunked", g_srv.port);
    size_t len;
    /* -w: the bytes that crossed the wire, to be sure it was compressed. */
    char *out = capture((char *const[]){"curl", "-sS", "--compressed", "-o", "/dev/null", "-w",
                                        "%{size_download} %header{content-encoding}", url, NULL},
                        &len);
    long wire = strtol(out, NULL, 10);
    cr_expect(wire > 0 && wire < BIG / 2, "curl downloaded %s", out);
    cr_expect(strstr(out, " gzip") != NULL, "curl saw no gzip: %s", out);
    free(out);
    out = capture((char *const[]){"curl", "-sS", "--compressed", url, NULL}, &len);
    expect_big(out, len, "curl", "/json");
    out = capture((char *const[]){"curl", "-sS", "--compressed", url2, NULL}, &len);
    expect_big(out, len, "curl", "/chunked");
    finish();
}

static const char py_script[] =
    "import gzip, sys, urllib.request\n"
    "req = urllib.request.Request(sys.argv[1], headers={'Accept-Encoding': 'gzip'})\n"
    "with urllib.request.urlopen(req, timeout=20) as r:\n"
    "    assert r.headers['Content-Encoding'] == 'gzip', r.headers\n"
    "    sys.stdout.buffer.write(gzip.decompress(r.read()))\n";

Test(gzip, python_gzip_decodes)
{
    start(NULL);
    const char *paths[] = {"/json", "/chunked"};
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", g_srv.port, paths[i]);
        size_t len;
        char *out = capture(
            (char *const[]){"/usr/bin/python3", "-c", (char *)py_script, url, NULL}, &len);
        expect_big(out, len, "python3", paths[i]);
    }
    finish();
}

static const char node_script[] =
    "const http = require('http'), zlib = require('zlib');\n"
    "http.get(process.argv[1], {headers: {'accept-encoding': 'gzip'}}, (r) => {\n"
    "  const parts = [];\n"
    "  r.on('data', (d) => parts.push(d));\n"
    "  r.on('end', () => {\n"
    "    if (r.headers['content-encoding'] !== 'gzip') { console.error(r.headers); process.exit(1); }\n"
    "    process.stdout.write(zlib.gunzipSync(Buffer.concat(parts)));\n"
    "  });\n"
    "}).on('error', (e) => { console.error(e); process.exit(1); });\n";

Test(gzip, node_gunzip_decodes)
{
    if (!have("/usr/bin/node")) {
        cr_log_warn("node not installed (apt-get install nodejs): skipped");
        cr_skip_test("node missing");
    }
    start(NULL);
    const char *paths[] = {"/json", "/chunked"};
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", g_srv.port, paths[i]);
        size_t len;
        char *out = capture((char *const[]){"node", "-e", (char *)node_script, url, NULL}, &len);
        expect_big(out, len, "node", paths[i]);
    }
    finish();
}

/* ------------------------------------------- the CLI: appsrv --gzip */

/* capture() for text output: NUL-terminated, length dropped. */
static char *capture_str(char *const argv[])
{
    size_t len;
    return capture(argv, &len);
}

static void start_gzip_cli(e2e_proc_t *p, int *port)
{
    const char *const args[] = {"-p", "0", "-t", "1", "--gzip", NULL};
    int rc = e2e_appsrv_start(p, args, 0, "127.0.0.1", port, NULL, SCALE(10000, 60000));
    cr_assert_eq(rc, 0, "appsrv --gzip did not start: %s; stderr: %s", e2e_errname(rc),
                 p->err.buf ? p->err.buf : "");
}

Test(cli_gzip, curl_echo_json_and_events, .timeout = TMO_S)
{
    char dir[] = "/tmp/appsrv-gzip-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char file[64];
    snprintf(file, sizeof(file), "%s/body.json", dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    size_t want = 0;
    for (int i = 0; i < 400; i++)
        want += (size_t)fprintf(f, "%s{\"n\":%d,\"s\":\"value %d\"}", i ? "," : "[", i, i % 17);
    want += (size_t)fprintf(f, "]");
    fclose(f);

    e2e_proc_t p;
    int port;
    start_gzip_cli(&p, &port);
    char url[64], data[80], evurl[80];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", port);
    snprintf(data, sizeof(data), "@%s", file);
    snprintf(evurl, sizeof(evurl), "http://127.0.0.1:%d/events?n=3", port);

    /* On the wire: gzip, smaller. */
    char *w = capture_str((char *const[]){"curl", "-sS", "--compressed", "-o", "/dev/null", "-w",
                                         "%{size_download} %header{content-encoding} "
                                         "%header{vary}",
                                         "-H", "Content-Type: application/json",
                                         "--data-binary", data, url, NULL});
    long wire = strtol(w, NULL, 10);
    cr_expect(wire > 0 && (size_t)wire < want / 2, "wire bytes: %s (body %zu)", w, want);
    cr_expect(strstr(w, " gzip Accept-Encoding") != NULL, "curl saw: %s", w);
    free(w);
    /* Decoded: the same bytes. */
    char *out = capture_str((char *const[]){"curl", "-sS", "--compressed", "-H",
                                           "Content-Type: application/json", "--data-binary",
                                           data, url, NULL});
    cr_expect_eq(strlen(out), want);
    char *orig = NULL;
    size_t olen = 0;
    f = fopen(file, "r");
    cr_assert_not_null(f);
    orig = calloc(1, want + 1);
    olen = fread(orig, 1, want, f);
    fclose(f);
    cr_expect(olen == want && strcmp(out, orig) == 0, "curl decoded a different body");
    free(out);
    /* Without Accept-Encoding: plain, still Vary. */
    w = capture_str((char *const[]){"curl", "-sS", "-o", "/dev/null", "-w",
                                   "%{size_download} [%header{content-encoding}] %header{vary}",
                                   "-H", "Content-Type: application/json", "--data-binary", data,
                                   url, NULL});
    char exp[64];
    snprintf(exp, sizeof(exp), "%zu [] Accept-Encoding", want);
    cr_expect_str_eq(w, exp);
    free(w);
    /* The SSE stream, decoded by curl. */
    out = capture_str((char *const[]){"curl", "-sS", "-N", "--compressed", "-D", "-", evurl, NULL});
    cr_expect(strstr(out, "Content-Encoding: gzip") != NULL, "curl saw:\n%s", out);
    cr_expect(strstr(out, "event: tick\nid: 3\ndata: tick 3\n\n") != NULL, "curl saw:\n%s", out);
    free(out);
    free(orig);
    remove(file);
    rmdir(dir);
    cr_assert_eq(e2e_proc_stop(&p, SIGTERM, 10000), 0);
    e2e_proc_free(&p);
}

/* ------------------------------------------------------------- options */

Test(gzip, options_level_threshold_types)
{
    static const char *const types[] = {"image/png", NULL};
    appsrv_gzip_opts_t o = {.level = 1, .min_size = 50, .types = types};
    start(&o);
    e2e_conn_t c;
    open_conn(&c, g_srv.port);
    e2e_resp_t r;
    get(&c, "GET", "/png", "gzip", &r); /* listed now */
    expect_gzip(&r, g_big, 4096);
    e2e_resp_free(&r);
    get(&c, "GET", "/json", "gzip", &r); /* not listed now */
    expect_plain(&r, g_big, BIG, false);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    finish();

    static const char *const all[] = {"text/*", "+json", NULL};
    appsrv_gzip_opts_t o9 = {.level = 9, .min_size = 5000, .types = all};
    start(&o9);
    open_conn(&c, g_srv.port);
    get(&c, "GET", "/problem", "gzip", &r); /* 4096 bytes < 5000 */
    expect_plain(&r, g_big, 4096, true);
    e2e_resp_free(&r);
    get(&c, "GET", "/json", "gzip", &r); /* "+json" does not list application/json */
    expect_plain(&r, g_big, BIG, false);
    e2e_resp_free(&r);
    get(&c, "GET", "/chunked", "gzip", &r); /* text/plain: a stream always qualifies */
    expect_gzip(&r, g_big, BIG);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    finish();
}

Test(gzip, bad_options)
{
    cr_expect(appsrv_gzip_available());
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, NULL), 0);
    appsrv_gzip_opts_t o = {.level = 10};
    cr_expect_eq(appsrv_gzip_use(srv, &o), -EINVAL);
    o.level = -1;
    cr_expect_eq(appsrv_gzip_use(srv, &o), -EINVAL);
    static const char *const empty[] = {"", NULL};
    appsrv_gzip_opts_t e = {.types = empty};
    cr_expect_eq(appsrv_gzip_use(srv, &e), -EINVAL);
    cr_expect_eq(appsrv_gzip_use(NULL, NULL), -EINVAL);
    cr_expect_eq(appsrv_res_no_compress(NULL), -EINVAL);
    cr_expect_geq(appsrv_gzip_use(srv, NULL), 0);
    appsrv_server_free(srv);
}

#endif /* APPSRV_HAVE_ZLIB */
