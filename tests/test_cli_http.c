/* SPDX-License-Identifier: MIT */
/*
 * test_cli_http.c - the appsrv CLI's HTTP routes end to end (appsrv(1)):
 * /health, /plaintext, /json, /echo (POST/PUT with the request's type, GET
 * with ?msg decoded, chunked, 1 MiB exact), 404 and 405 with Allow, HEAD
 * like GET without a body, and curl as an independent client. The CLI is
 * spawned and read through tests/support (cli.h); status rows go through
 * the table runner.
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
#include <limits.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include "cli.h"
#include "expect.h"

/* The header block minus the Date field (it may tick between two
 * responses), for "same headers" comparisons. */
static void headers_without_date(const char *head, char *out, size_t cap)
{
    size_t w = 0;
    for (const char *p = head; *p != '\0';) {
        const char *eol = strstr(p, "\r\n");
        size_t len = (size_t)(eol - p) + 2;
        /* Date and X-Request-ID differ from one response to the next. */
        if (strncasecmp(p, "Date:", 5) != 0 && strncasecmp(p, "X-Request-ID:", 13) != 0) {
            cr_assert_lt(w + len, cap);
            memcpy(out + w, p, len);
            w += len;
        }
        p += len;
    }
    out[w] = '\0';
}

Test(cli, http_get_health, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "OK", 2, "GET /health");
    char v[128];
    cr_assert_eq(resp_header(&r, "Server", v, sizeof(v)), 1);
    cr_assert_str_eq(v, "appsrv/" APPSRV_VERSION_STRING);
    cr_assert_eq(resp_header(&r, "Date", v, sizeof(v)), 1);
    resp_free(&r);
    /* keep-alive by default: the same connection serves again */
    http_do(&c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "OK", 2, "second GET /health");
    resp_free(&r);
    conn_close(&c);
    srv_finish(&s);
}

Test(cli, http_get_plaintext, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    http_check(&s, "GET", "/plaintext", "HTTP/1.1 200 OK", "text/plain", "Hello, World!");
    srv_finish(&s);
}

Test(cli, http_get_json, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    http_check(&s, "GET", "/json", "HTTP/1.1 200 OK", "application/json",
               "{\"message\":\"Hello, World!\"}");
    srv_finish(&s);
}

Test(cli, http_post_echo_with_content_type, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    char body[1024];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i % 256); /* every byte value: NUL, CR, LF, 0xff */
    echo_check(&s, "POST", "application/x-test; charset=binary", body, sizeof(body),
               "application/x-test; charset=binary");
    echo_check(&s, "POST", "text/plain", "hello\r\n\r\nworld", 14, "text/plain");
    srv_finish(&s);
}

Test(cli, http_put_echo_with_content_type, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    char body[3000];
    e2e_fill_pattern(body, sizeof(body), 7);
    echo_check(&s, "PUT", "image/png", body, sizeof(body), "image/png");
    echo_check(&s, "PUT", "application/json", "{\"a\":1}", 7, "application/json");
    srv_finish(&s);
}

Test(cli, http_echo_default_content_type, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    echo_check(&s, "POST", NULL, "no type\0here", 12, "application/octet-stream");
    echo_check(&s, "PUT", NULL, "put without type", 16, "application/octet-stream");
    srv_finish(&s);
}

Test(cli, http_echo_empty_body, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    echo_check(&s, "POST", NULL, "", 0, "application/octet-stream");
    echo_check(&s, "PUT", "text/plain", "", 0, "text/plain");
    srv_finish(&s);
}

/* appsrv(1): "with the request's Content-Type" - whatever its length. */
Test(cli, http_echo_long_content_type, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    char ct[700];
    int n = snprintf(ct, sizeof(ct), "application/x-long; note=");
    memset(ct + n, 'a', 600);
    ct[n + 600] = '\0';
    echo_check(&s, "POST", ct, "body", 4, ct);
    srv_finish(&s);
}

Test(cli, http_echo_chunked_body, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(
        &c,
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/x-chunks\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n1;ext=1\r\n \r\nb\r\nchunked wor\r\n2\r\nld\r\n0\r\nX-Trailer: 1\r\n\r\n",
        &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/x-chunks", "hello chunked world", 19,
                "chunked POST /echo");
    resp_free(&r);
    conn_close(&c);
    srv_finish(&s);
}

Test(cli, http_post_echo_1mib_byte_exact, .timeout = TMO_BIG)
{
    srv_t s;
    srv_start(&s, NULL);
    size_t n = big_size();
    char *body = tmalloc(n);
    e2e_fill_pattern(body, n, 42);
    echo_check(&s, "POST", "application/octet-stream", body, n, "application/octet-stream");
    tfree(body);
    srv_finish(&s);
}

Test(cli, http_get_echo_query_decoding, .timeout = TMO)
{
    static const struct {
        const char *target, *want, *comment;
    } rows[] = {
        {"/echo?msg=hello", "hello", "plain"},
        {"/echo?msg=hello+world", "hello world", "'+' is a space"},
        {"/echo?msg=%48%65%6C%6c%6F", "Hello", "%XX, both hex cases"},
        {"/echo?msg=100%25+sure%21", "100% sure!", "%25 and '+' together"},
        {"/echo?msg=a%2Bb", "a+b", "%2B is a literal plus"},
        {"/echo?msg=%e2%82%ac%20", "\xe2\x82\xac ", "UTF-8 bytes"},
        {"/echo?msg=a%26b%3Dc", "a&b=c", "encoded separators stay"},
        {"/echo?x=1&msg=second&y=2", "second", "msg among other parameters"},
        {"/echo?msg=", "", "present but empty"},
    };
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.http_port);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char req[512];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", rows[i].target);
        resp_t r;
        http_do(&c, req, &r);
        char what[256];
        snprintf(what, sizeof(what), "GET %s (%s)", rows[i].target, rows[i].comment);
        expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", rows[i].want, strlen(rows[i].want), what);
        resp_free(&r);
    }
    conn_close(&c);
    srv_finish(&s);
}

#define GET_CLI(target) "GET " target " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

/* The handler's 400 (not the library's: the connection stays open). */
Test(cli, http_get_echo_without_msg_is_400, .timeout = TMO)
{
    static const e2e_row_t rows[] = {
        {GET_CLI("/echo"), 0, 400, false, "no query", NULL, NULL},
        {GET_CLI("/echo?"), 0, 400, false, "empty query", NULL, NULL},
        {GET_CLI("/echo?other=1"), 0, 400, false, "another parameter", NULL, NULL},
        {GET_CLI("/echo?msgx=1"), 0, 400, false, "a longer name", NULL, NULL},
        {GET_CLI("/echo?message=hi"), 0, 400, false, "msg as a prefix only", NULL, NULL},
    };
    srv_t s;
    srv_start(&s, NULL);
    E2E_EXPECT_TABLE(s.http_port, rows, NULL);
    srv_finish(&s);
}

/* Allow must be exactly ", "-separated methods, each once, the set want. */
static void expect_allow(const resp_t *r, const char *const want[], size_t nwant, const char *what)
{
    char allow[256];
    cr_assert_eq(resp_header(r, "Allow", allow, sizeof(allow)), 1,
                 "%s: want one Allow header; headers:\n%s", what, r->head);
    size_t seen = 0;
    bool used[8] = {false};
    for (char *p = allow;;) {
        char *comma = strstr(p, ", ");
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        bool found = false;
        for (size_t i = 0; i < nwant; i++) {
            if (strlen(want[i]) == len && strncmp(p, want[i], len) == 0) {
                cr_assert(!used[i], "%s: %s twice in Allow \"%s\"", what, want[i], allow);
                used[i] = found = true;
            }
        }
        cr_assert(found, "%s: unexpected method in Allow \"%s\"", what, allow);
        seen++;
        if (comma == NULL)
            break;
        p = comma + 2;
    }
    cr_assert_eq(seen, nwant, "%s: Allow \"%s\" has %zu methods, want %zu", what, allow, seen,
                 nwant);
}

Test(cli, http_known_path_other_method_is_405, .timeout = TMO)
{
    static const char *const get_only[] = {"GET", "HEAD"};
    static const char *const echo[] = {"GET", "HEAD", "POST", "PUT"};
    static const struct {
        const char *method, *path;
    } rows[] = {
        {"POST", "/health"},    {"PUT", "/health"}, {"DELETE", "/plaintext"},
        {"POST", "/plaintext"}, {"PUT", "/json"},   {"PATCH", "/json"},
        {"DELETE", "/echo"},    {"PATCH", "/echo"}, {"OPTIONS", "/echo"},
    };
    srv_t s;
    srv_start(&s, NULL);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bool is_echo = strcmp(rows[i].path, "/echo") == 0;
        conn_t c;
        conn_open(&c, &s, s.http_port);
        char req[256];
        snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc",
                 rows[i].method, rows[i].path);
        resp_t r;
        http_do(&c, req, &r);
        char what[128];
        snprintf(what, sizeof(what), "%s %s", rows[i].method, rows[i].path);
        expect_resp(&r, "HTTP/1.1 405 Method Not Allowed", NULL, NULL, 0, what);
        if (is_echo)
            expect_allow(&r, echo, 4, what);
        else
            expect_allow(&r, get_only, 2, what);
        resp_free(&r);
        conn_close(&c);
    }
    /* GET-only paths list exactly "GET, HEAD". */
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c, "POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", &r);
    char allow[128];
    resp_header(&r, "Allow", allow, sizeof(allow));
    cr_assert_str_eq(allow, "GET, HEAD");
    resp_free(&r);
    conn_close(&c);
    srv_finish(&s);
}

Test(cli, http_unknown_path_is_404, .timeout = TMO)
{
    static const e2e_row_t rows[] = {
        {"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 404, false, "GET /", "Not Found",
         "text/plain"},
        {"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 404, false, "GET /nope", "Not Found",
         "text/plain"},
        {"GET /health/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 404, false, "GET /health/x",
         "Not Found", "text/plain"},
        {"GET /Health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 404, false, "GET /Health",
         "Not Found", "text/plain"},
        {"GET /echox HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 404, false, "GET /echox", "Not Found",
         "text/plain"},
        {"GET /echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 404, false, "GET /echo/", "Not Found",
         "text/plain"},
        {"POST /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 404, false, "POST /nope", "Not Found",
         "text/plain"},
        {"DELETE /x/y/z HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 404, false, "DELETE /x/y/z",
         "Not Found", "text/plain"},
        {"GET /plaintext.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 404, false,
         "GET /plaintext.txt", "Not Found", "text/plain"},
        {"GET /nope?msg=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 404, false, "GET /nope?msg=1",
         "Not Found", "text/plain"},
    };
    srv_t s;
    srv_start(&s, NULL);
    E2E_EXPECT_TABLE(s.http_port, rows, NULL);
    srv_finish(&s);
}

/*
 * HEAD wherever GET works: the same status and headers (Date aside), no
 * body. HEAD and GET alternate pipelined on one connection, so a body
 * after a HEAD answer would break the framing of the next response.
 */
Test(cli, http_head_like_get_without_body, .timeout = TMO)
{
    static const char *const targets[] = {"/health",          "/plaintext", "/json",
                                          "/echo?msg=a+b%21", "/echo",      "/nope"};
    size_t nt = sizeof(targets) / sizeof(targets[0]);
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.http_port);
    char req[4096];
    size_t len = 0;
    for (size_t i = 0; i < nt; i++) {
        len += (size_t)snprintf(req + len, sizeof(req) - len,
                                "HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                                "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                                targets[i], targets[i]);
    }
    conn_send(&c, req, len);
    for (size_t i = 0; i < nt; i++) {
        resp_t h, g;
        http_read(&c, &h, true, deadline(5000));
        http_read(&c, &g, false, deadline(5000));
        cr_assert_str_eq(h.status_line, g.status_line, "HEAD %s: \"%s\", GET: \"%s\"", targets[i],
                         h.status_line, g.status_line);
        char hh[2048], gh[2048];
        headers_without_date(h.head, hh, sizeof(hh));
        headers_without_date(g.head, gh, sizeof(gh));
        cr_assert_str_eq(hh, gh, "HEAD %s headers differ from GET's:\n%s\nvs\n%s", targets[i], hh,
                         gh);
        cr_assert_eq(h.body_len, 0);
        resp_free(&h);
        resp_free(&g);
    }
    cr_assert_eq(e2e_conn_avail(&c), 0, "bytes after the last response: \"%.*s\"",
                 (int)e2e_conn_avail(&c), e2e_conn_data(&c));
    /* The exact GET answers were checked elsewhere; pin two HEAD ones. */
    resp_t r;
    http_do(&c, "HEAD /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "", 0, "HEAD /plaintext");
    char cl[32];
    resp_header(&r, "Content-Length", cl, sizeof(cl));
    cr_assert_str_eq(cl, "13");
    resp_free(&r);
    http_do(&c, "HEAD /json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "application/json", "", 0, "HEAD /json");
    resp_header(&r, "Content-Length", cl, sizeof(cl));
    cr_assert_str_eq(cl, "27");
    resp_free(&r);
    conn_close(&c);
    srv_finish(&s);
}

static bool find_curl(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/bin:/bin";
    for (const char *p = path; *p != '\0';) {
        const char *e = strchr(p, ':');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len > 0 && len + 6 < cap) {
            snprintf(out, cap, "%.*s/curl", (int)len, p);
            if (access(out, X_OK) == 0)
                return true;
        }
        p += len;
        if (*p == ':')
            p++;
    }
    return false;
}

/* Runs curl -s -i --max-time T EXTRA... URL; output in r->out. */
static void run_curl(run_t *r, const char *curl, const char *const extra[], const char *url)
{
    char *argv[24];
    size_t n = 0;
    argv[n++] = (char *)curl;
    argv[n++] = "-s";
    argv[n++] = "-i";
    argv[n++] = "--max-time";
    argv[n++] = under_valgrind() ? "60" : "5";
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        argv[n++] = (char *)extra[i];
    argv[n++] = (char *)url;
    argv[n] = NULL;
    run_prog(r, argv, 10000);
    cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
              "curl %s: status 0x%x; output:\n%s", url, (unsigned)r->status, r->out.buf);
}

/* Parses curl -i output with the toolkit's reader (a HEAD answer when the
 * body is empty but cl is not "0"); checks status line, Content-Type,
 * Content-Length and the body, and that nothing follows it. */
static void expect_curl(const run_t *r, const char *status_line, const char *ctype,
                        const char *body, size_t blen, const char *cl)
{
    e2e_resp_t e;
    unsigned flags = blen == 0 && strcmp(cl, "0") != 0 ? E2E_RESP_HEAD : 0;
    int rc = e2e_parse_response(r->out.buf, r->out.len, &e, flags);
    if (rc < 0)
        e2e_resp_free(&e);
    cr_assert_eq(rc, 0, "curl output is not one response (%s):\n%s", e2e_errname(rc), r->out.buf);
    resp_t got;
    resp_from(&got, &e);
    cr_assert_str_eq(got.status_line, status_line, "curl status line \"%s\"", got.status_line);
    char v[256];
    cr_assert_eq(resp_header(&got, "Content-Type", v, sizeof(v)), 1);
    cr_assert_str_eq(v, ctype);
    cr_assert_eq(resp_header(&got, "Content-Length", v, sizeof(v)), 1);
    cr_assert_str_eq(v, cl);
    cr_assert_eq(got.e.head_len + got.body_len, r->out.len, "%zu bytes after the response",
                 r->out.len - got.e.head_len - got.body_len);
    cr_assert_eq(got.body_len, blen, "curl body of %zu bytes, want %zu", got.body_len, blen);
    cr_assert(memcmp(got.body, body, blen) == 0, "curl body differs");
    resp_free(&got);
}

Test(cli, curl_get_plaintext, .timeout = TMO)
{
    char curl[PATH_MAX];
    if (!find_curl(curl, sizeof(curl)))
        cr_skip_test("curl is not installed");
    srv_t s;
    srv_start(&s, NULL);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/plaintext", s.http_port);
    run_t r;
    run_curl(&r, curl, NULL, url);
    expect_curl(&r, "HTTP/1.1 200 OK", "text/plain", "Hello, World!", 13, "13");
    run_free(&r);
    srv_finish(&s);
}

/* --data-binary from a file over 1 KiB: curl also sends
 * "Expect: 100-continue" first. */
Test(cli, curl_post_echo_data_binary, .timeout = TMO)
{
    char curl[PATH_MAX];
    if (!find_curl(curl, sizeof(curl)))
        cr_skip_test("curl is not installed");
    size_t n = 100 * 1024;
    char *body = tmalloc(n);
    e2e_fill_pattern(body, n, 11);
    char path[] = "/tmp/appsrv_e2e_XXXXXX";
    int fd = mkstemp(path);
    track_fd(fd);
    cr_assert_eq(write(fd, body, n), (ssize_t)n);
    close_fd(&fd);
    char data[64];
    snprintf(data, sizeof(data), "@%s", path);
    srv_t s;
    srv_start(&s, NULL);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", s.http_port);
    run_t r;
    run_curl(&r, curl,
             (const char *const[]){"--data-binary", data, "-H", "Content-Type: application/x-curl",
                                   NULL},
             url);
    unlink(path);
    /* curl -i prints the "100 Continue" interim head first */
    if (strncmp(r.out.buf, "HTTP/1.1 100 ", 13) == 0) {
        char *e = strstr(r.out.buf, "\r\n\r\n");
        cr_assert_not_null(e);
        size_t skip = (size_t)(e + 4 - r.out.buf);
        memmove(r.out.buf, r.out.buf + skip, r.out.len - skip + 1);
        r.out.len -= skip;
    }
    char cl[32];
    snprintf(cl, sizeof(cl), "%zu", n);
    expect_curl(&r, "HTTP/1.1 200 OK", "application/x-curl", body, n, cl);
    run_free(&r);
    /* and a short literal without a Content-Type header of our own */
    run_curl(&r, curl, (const char *const[]){"--data-binary", "a=1&b=two", NULL}, url);
    expect_curl(&r, "HTTP/1.1 200 OK", "application/x-www-form-urlencoded", "a=1&b=two", 9, "9");
    run_free(&r);
    tfree(body);
    srv_finish(&s);
}

Test(cli, curl_head, .timeout = TMO)
{
    char curl[PATH_MAX];
    if (!find_curl(curl, sizeof(curl)))
        cr_skip_test("curl is not installed");
    srv_t s;
    srv_start(&s, NULL);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/json", s.http_port);
    run_t r;
    run_curl(&r, curl, (const char *const[]){"-I", NULL}, url);
    expect_curl(&r, "HTTP/1.1 200 OK", "application/json", "", 0, "27");
    run_free(&r);
    srv_finish(&s);
}
