/* SPDX-License-Identifier: MIT */
/*
 * test_files.c - file responses and static directories (issue 16 part B)
 * on an in-process server: the pure helpers (MIME table, Range parser,
 * ETag comparison, path decoding), then real requests on loopback: 200
 * with validators, 304 (If-None-Match list, "*", weak, precedence over
 * If-Modified-Since), 412, 206 in the three range forms, 416, several
 * ranges (whole file), If-Range with matching and stale validators, HEAD,
 * traversal attempts (raw and encoded "..", %2f, %5c, %00, overlong
 * UTF-8, absolute paths, a symlink out of the root, with openat2 and with
 * the O_NOFOLLOW walk), directory redirect and index, .gz siblings,
 * keep-alive and pipelining after a big file, a client that leaves
 * mid-file (no fd kept), and python3's http.client and curl -C - as
 * independent clients.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "expect.h"
#include "file.h"
#include "sh.h"
#include "static.h"

/* ------------------------------------------------------------ fixtures */

static char g_dir[64];   /* the scratch dir: root/ and outside/ */
static char g_root[128]; /* what is served */

#define BIG_LEN (3u * 1024 * 1024 + 123)

static void write_file(const char *rel, const void *data, size_t len)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", g_root, rel);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "cannot create %s", p);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Whether body[0..n) is big.bin's bytes from off. */
static bool big_bytes(const char *body, size_t n, size_t off)
{
    char *want = malloc(BIG_LEN);
    cr_assert_not_null(want);
    e2e_fill_pattern(want, BIG_LEN, 16);
    bool ok = off + n <= BIG_LEN && memcmp(body, want + off, n) == 0;
    free(want);
    return ok;
}

static void make_tree(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/appsrv-files-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
    snprintf(g_root, sizeof(g_root), "%s/root", g_dir);
    char p[256];
    cr_assert_eq(mkdir(g_root, 0755), 0);
    snprintf(p, sizeof(p), "%s/sub", g_root);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/outside", g_dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/outside/secret.txt", g_dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs("secret\n", f);
    fclose(f);
    write_file("hello.txt", "hello, file\n", 12);
    write_file("index.html", "<p>index</p>\n", 13);
    write_file("sub/index.html", "<p>sub</p>\n", 11);
    write_file("data.json", "{\"a\":1}\n", 8);
    write_file("app.js", "var a;\n", 7);
    write_file("page.txt", "plain text here\n", 16);
    write_file("page.txt.gz", "GZBYTES", 7);
    write_file("empty.bin", "", 0);
    char *big = malloc(BIG_LEN);
    cr_assert_not_null(big);
    e2e_fill_pattern(big, BIG_LEN, 16);
    write_file("big.bin", big, BIG_LEN);
    free(big);
    /* A symlink out of the root, one within it, one to a directory out. */
    char t[256];
    snprintf(p, sizeof(p), "%s/out", g_root);
    snprintf(t, sizeof(t), "%s/outside/secret.txt", g_dir);
    cr_assert_eq(symlink(t, p), 0);
    snprintf(p, sizeof(p), "%s/outdir", g_root);
    snprintf(t, sizeof(t), "%s/outside", g_dir);
    cr_assert_eq(symlink(t, p), 0);
    snprintf(p, sizeof(p), "%s/rel-out", g_root);
    cr_assert_eq(symlink("../outside/secret.txt", p), 0);
    snprintf(p, sizeof(p), "%s/alias.txt", g_root);
    cr_assert_eq(symlink("hello.txt", p), 0);
    snprintf(p, sizeof(p), "%s/fifo", g_root);
    cr_assert_eq(mkfifo(p, 0644), 0);
}

static void remove_tree(void)
{
    if (g_dir[0] == '\0')
        return;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", g_dir);
    g_dir[0] = '\0';
}

static int h_file(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char p[256];
    snprintf(p, sizeof(p), "%s/hello.txt", g_root);
    int rc = appsrv_res_file(res, req, p);
    return rc < 0 ? rc : 0;
}

static int h_missing(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    int rc = appsrv_res_file(res, req, "/nonexistent/appsrv-test");
    appsrv_res_set_status(res, 404);
    appsrv_res_printf(res, "%d", rc);
    return 0;
}

/* appsrv_res_fd(): bytes 100..149 of big.bin; and its refusals, as text. */
static int h_slice(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    char p[256];
    snprintf(p, sizeof(p), "%s/big.bin", g_root);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    appsrv_res_add_header(res, "Content-Type", "application/octet-stream");
    return appsrv_res_fd(res, fd, 100, 50);
}

static int h_slice_errors(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    char p[256];
    snprintf(p, sizeof(p), "%s/big.bin", g_root);
    int a = appsrv_res_fd(res, -1, 0, 1);
    int b = appsrv_res_fd(res, open(p, O_RDONLY | O_CLOEXEC), (off_t)BIG_LEN, 1);
    int c = appsrv_res_fd(res, open(p, O_RDONLY | O_CLOEXEC), -1, 1);
    int d = appsrv_res_fd(res, open(g_root, O_RDONLY | O_CLOEXEC), 0, -1);
    int e = appsrv_res_file_fd(res, req, open(g_root, O_RDONLY | O_CLOEXEC), NULL);
    appsrv_res_set_status(res, 200);
    appsrv_res_printf(res, "%d %d %d %d %d", a, b, c, d, e);
    return 0;
}

static bool g_no_cache; /* the next start() turns the small-file cache off */

static int setup_static(appsrv_server_t *srv, void *arg)
{
    (void)arg;
    appsrv_static_opts_t o = {
        .index = NULL, .precompressed = true, .max_age = 60, .no_cache = g_no_cache};
    return appsrv_static(srv, "/files", g_root, &o);
}

static const e2e_route_t routes[] = {
    {"GET", "/one", h_file, NULL, false},
    {"GET", "/missing", h_missing, NULL, false},
    {"GET", "/slice", h_slice, NULL, false},
    {"GET", "/slice-errors", h_slice_errors, NULL, false},
};

static int start(e2e_server_t *s)
{
    int fds0 = e2e_fd_count();
    make_tree();
    start_srv_with(s, NULL, routes, ARRAY_LEN(routes), setup_static, NULL);
    g_no_cache = false;
    return fds0;
}

static void finish(e2e_server_t *s, int fds0)
{
    stop_srv(s);
    remove_tree();
    expect_fds(fds0);
}

/* One request on a fresh connection. */
static void get(e2e_server_t *s, const char *req, e2e_resp_t *r)
{
    roundtrip(s->port, req, r, strncmp(req, "HEAD", 4) == 0 ? E2E_RESP_HEAD : 0);
}

static void hdr_is(const e2e_resp_t *r, const char *name, const char *want)
{
    const char *v = e2e_resp_header(r, name);
    if (want == NULL) {
        cr_expect_null(v, "%s should be absent, is \"%s\"", name, v ? v : "");
        return;
    }
    cr_expect_not_null(v, "%s missing (status %d)", name, r->status);
    if (v != NULL)
        cr_expect_str_eq(v, want, "%s", name);
}

/* ------------------------------------------------------- pure helpers */

Test(files, mime_table)
{
    static const char *const t[][2] = {
        {"a.json", "application/json"},   {"a.PNG", "image/png"},
        {"a.jpg", "image/jpeg"},          {"a.jpeg", "image/jpeg"},
        {"a.webp", "image/webp"},         {"a.avif", "image/avif"},
        {"a.heic", "image/heic"},         {"a.gif", "image/gif"},
        {"a.svg", "image/svg+xml"},       {"v.mp4", "video/mp4"},
        {"v.webm", "video/webm"},         {"v.mov", "video/quicktime"},
        {"s.mp3", "audio/mpeg"},          {"s.ogg", "audio/ogg"},
        {"s.wav", "audio/wav"},           {"i.html", "text/html; charset=utf-8"},
        {"i.htm", "text/html; charset=utf-8"}, {"s.css", "text/css; charset=utf-8"},
        {"m.js", "text/javascript; charset=utf-8"}, {"m.mjs", "text/javascript; charset=utf-8"},
        {"f.woff", "font/woff"},          {"f.woff2", "font/woff2"},
        {"f.ttf", "font/ttf"},            {"f.otf", "font/otf"},
        {"d.pdf", "application/pdf"},    {"w.wasm", "application/wasm"},
        {"r.txt", "text/plain; charset=utf-8"}, {"x.xml", "application/xml"},
        {"z.zip", "application/zip"},     {"z.gz", "application/gzip"},
        {"noext", "application/octet-stream"}, {"a.unknownext", "application/octet-stream"},
        {"dir.d/file", "application/octet-stream"}, {"trailing.", "application/octet-stream"},
    };
    for (size_t i = 0; i < ARRAY_LEN(t); i++)
        cr_expect_str_eq(appsrv_mime_type(t[i][0]), t[i][1], "%s", t[i][0]);
    cr_expect_str_eq(appsrv_mime_type(NULL), "application/octet-stream");
}

static int range(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
    return appsrv__parse_range((appsrv_str_t){v, strlen(v)}, size, a, b);
}

Test(files, range_parser)
{
    /* rc 1: one satisfiable range, first..last; -1: unsatisfiable (416);
     * 0: ignored (the whole file). */
    static const struct {
        const char *v;
        uint64_t size;
        int rc;
        uint64_t first, last;
    } t[] = {
        {"bytes=0-9", 100, 1, 0, 9},
        {"bytes=90-", 100, 1, 90, 99},
        {"bytes=-10", 100, 1, 90, 99},
        {"bytes=-1000", 100, 1, 0, 99},
        {"bytes=50-5000", 100, 1, 50, 99},
        {"BYTES=1-1", 100, 1, 1, 1},
        {"bytes=100-", 100, -1, 0, 0},
        {"bytes=-0", 100, -1, 0, 0},
        {"bytes=0-0", 0, -1, 0, 0},
        {"bytes=5-1", 100, 0, 0, 0},
        {"bytes=0-1,5-6", 100, 0, 0, 0},
        {"items=0-1", 100, 0, 0, 0},
        {"bytes=", 100, 0, 0, 0},
        {"bytes=x-1", 100, 0, 0, 0},
        {"bytes=99999999999999999999999-", 100, 0, 0, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(t); i++) {
        uint64_t a = 0, b = 0;
        int rc = range(t[i].v, t[i].size, &a, &b);
        cr_expect_eq(rc, t[i].rc, "%s of %" PRIu64 ": %d, want %d", t[i].v, t[i].size, rc,
                     t[i].rc);
        if (rc == 1 && t[i].rc == 1)
            cr_expect(a == t[i].first && b == t[i].last,
                      "%s of %" PRIu64 ": %" PRIu64 "-%" PRIu64 ", want %" PRIu64 "-%" PRIu64,
                      t[i].v, t[i].size, a, b, t[i].first, t[i].last);
    }
}

static bool em(const char *list, const char *etag, bool weak)
{
    return appsrv__etag_match((appsrv_str_t){list, strlen(list)}, etag, strlen(etag), weak);
}

Test(files, etag_compare)
{
    /* Does list match the ETag "x", with weak or strong comparison? */
    static const struct {
        const char *list;
        bool weak, match;
    } t[] = {
        {"\"x\"", false, true},       {"\"a\", \"x\"", true, true}, {"*", false, true},
        {"W/\"x\"", true, true},      {"W/\"x\"", false, false},    {"\"y\"", true, false},
        {"x", true, false},            {"\"x", true, false},         {"", true, false},
    };
    for (size_t i = 0; i < ARRAY_LEN(t); i++)
        cr_expect_eq(em(t[i].list, "\"x\"", t[i].weak), t[i].match, "[%s] %s \"x\": want %s",
                     t[i].list, t[i].weak ? "weak" : "strong", t[i].match ? "match" : "none");
}

static int dec(const char *raw, char *out)
{
    return appsrv__static_decode(raw, strlen(raw), out, 256);
}

Test(files, path_decode)
{
    char out[256];
    /* Decoded paths (a trailing slash dropped) and their lengths. */
    static const struct {
        const char *raw, *want;
    } good[] = {
        {"a/b.txt", "a/b.txt"}, {"a%20b", "a b"}, {"d/", "d"}, {"", ""}, {"caf%C3%A9", "caf\xc3\xa9"},
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        int n = dec(good[i].raw, out);
        cr_expect_eq(n, (int)strlen(good[i].want), "\"%s\": %d", good[i].raw, n);
        if (n >= 0)
            cr_expect_eq(memcmp(out, good[i].want, (size_t)n), 0, "\"%s\": %.*s", good[i].raw,
                         n, out);
    }
    static const char *const bad[] = {
        "..",        "a/../b",     "%2e%2e",    "%2E%2e/x", "a/%2e%2e/b", ".",   "a/./b",
        "a%2fb",     "a%2Fb",      "a%5cb",     "a\\b",     "a%00b",      "a//b", "/etc/passwd",
        "%c0%ae%c0%ae", "%c0%af",  "%e0%80%af", "%ed%a0%80", "%ff",       "%f8%88%80%80%80",
        "a%0ab",     "a%7f",       "%",         "%4",       "%zz",        "a%c3", "x/%2e",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        cr_expect_eq(dec(bad[i], out), -1, "\"%s\" accepted", bad[i]);
}

/* ------------------------------------------------------- whole files */

Test(files, get_validators_and_types, .timeout = 60)
{
    e2e_server_t s;
    int fds0 = start(&s);
    e2e_resp_t r;
    get(&s, "GET /files/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    check_std(&r);
    check_body(&r, "hello, file\n");
    hdr_is(&r, "Content-Type", "text/plain; charset=utf-8");
    hdr_is(&r, "Accept-Ranges", "bytes");
    hdr_is(&r, "Cache-Control", "max-age=60");
    const char *lm = e2e_resp_header(&r, "Last-Modified");
    cr_assert_not_null(lm);
    cr_expect(e2e_is_imf_fixdate(lm), "Last-Modified %s", lm);
    const char *et = e2e_resp_header(&r, "ETag");
    cr_assert_not_null(et);
    cr_expect(et[0] == '"' && et[strlen(et) - 1] == '"', "a strong ETag: %s", et);
    e2e_resp_free(&r);

    static const char *const types[][2] = {
        {"/files/data.json", "application/json"},
        {"/files/app.js", "text/javascript; charset=utf-8"},
        {"/files/index.html", "text/html; charset=utf-8"},
    };
    for (size_t i = 0; i < ARRAY_LEN(types); i++) {
        char req[128];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", types[i][0]);
        get(&s, req, &r);
        check_status(&r, 200, "OK");
        hdr_is(&r, "Content-Type", types[i][1]);
        e2e_resp_free(&r);
    }
    /* HEAD: the same head, no body. */
    get(&s, "HEAD /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    hdr_is(&r, "Content-Length", "3145851");
    hdr_is(&r, "Content-Type", "application/octet-stream");
    cr_expect_eq(r.body_len, 0u);
    e2e_resp_free(&r);
    /* An empty file. */
    get(&s, "GET /files/empty.bin HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    hdr_is(&r, "Content-Length", "0");
    e2e_resp_free(&r);
    /* appsrv_res_file() from a handler; a missing path is -ENOENT. */
    get(&s, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    check_body(&r, "hello, file\n");
    e2e_resp_free(&r);
    get(&s, "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_status(&r, 404, NULL);
    char want[16];
    snprintf(want, sizeof(want), "%d", -ENOENT);
    check_body(&r, want);
    e2e_resp_free(&r);
    finish(&s, fds0);
}

/* The ETag and Last-Modified of path. */
static void validators(e2e_server_t *s, const char *path, char *etag, char *lm)
{
    char req[256];
    e2e_resp_t r;
    snprintf(req, sizeof(req), "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    get(s, req, &r);
    check_status(&r, 200, "OK");
    snprintf(etag, 96, "%s", e2e_resp_header(&r, "ETag"));
    snprintf(lm, 64, "%s", e2e_resp_header(&r, "Last-Modified"));
    e2e_resp_free(&r);
}

static void cond(e2e_server_t *s, const char *path, const char *hdrs, int status, size_t blen)
{
    char req[512];
    e2e_resp_t r;
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path, hdrs);
    get(s, req, &r);
    cr_expect_eq(r.status, status, "%s with %s: %d, want %d", path, hdrs, r.status, status);
    cr_expect_eq(r.body_len, blen, "%s with %s: body %zu, want %zu", path, hdrs, r.body_len,
                 blen);
    if (r.status == 304) {
        cr_expect_not_null(e2e_resp_header(&r, "ETag"), "304 keeps the ETag");
        cr_expect_null(e2e_resp_header(&r, "Content-Length"));
    }
    e2e_resp_free(&r);
}

Test(files, conditional_304_412, .timeout = 60)
{
    e2e_server_t s;
    int fds0 = start(&s);
    char et[96], lm[64], h[512];
    validators(&s, "/files/hello.txt", et, lm);
    snprintf(h, sizeof(h), "If-None-Match: %s\r\n", et);
    cond(&s, "/files/hello.txt", h, 304, 0);
    snprintf(h, sizeof(h), "If-None-Match: \"nope\", W/%s\r\n", et);
    cond(&s, "/files/hello.txt", h, 304, 0); /* weak comparison */
    cond(&s, "/files/hello.txt", "If-None-Match: *\r\n", 304, 0);
    cond(&s, "/files/hello.txt", "If-None-Match: \"other\"\r\n", 200, 12);
    snprintf(h, sizeof(h), "If-Modified-Since: %s\r\n", lm);
    cond(&s, "/files/hello.txt", h, 304, 0);
    cond(&s, "/files/hello.txt", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n", 200, 12);
    cond(&s, "/files/hello.txt", "If-Modified-Since: garbage\r\n", 200, 12);
    /* If-None-Match takes precedence (RFC 9110 §13.2.2). */
    snprintf(h, sizeof(h), "If-None-Match: \"other\"\r\nIf-Modified-Since: %s\r\n", lm);
    cond(&s, "/files/hello.txt", h, 200, 12);
    snprintf(h, sizeof(h), "If-Match: %s\r\n", et);
    cond(&s, "/files/hello.txt", h, 200, 12);
    cond(&s, "/files/hello.txt", "If-Match: \"other\"\r\n", 412, 20);
    cond(&s, "/files/hello.txt", "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n", 412,
         20);
    finish(&s, fds0);
}

static void ranged(e2e_server_t *s, const char *hdrs, int status, const char *crange,
                   size_t off, size_t len)
{
    char req[512];
    e2e_resp_t r;
    snprintf(req, sizeof(req), "GET /files/big.bin HTTP/1.1\r\nHost: x\r\n%s\r\n", hdrs);
    get(s, req, &r);
    cr_expect_eq(r.status, status, "%s: %d, want %d", hdrs, r.status, status);
    hdr_is(&r, "Content-Range", crange);
    if (status != 416) {
        cr_expect_eq(r.body_len, len, "%s: %zu bytes, want %zu", hdrs, r.body_len, len);
        if (r.body_len == len)
            cr_expect(big_bytes(r.body, len, off), "%s: wrong bytes", hdrs);
    }
    e2e_resp_free(&r);
}

Test(files, ranges_206_416_if_range, .timeout = 60)
{
    e2e_server_t s;
    int fds0 = start(&s);
    char et[96], lm[64], h[512];
    validators(&s, "/files/big.bin", et, lm);
    ranged(&s, "Range: bytes=0-99\r\n", 206, "bytes 0-99/3145851", 0, 100);
    ranged(&s, "Range: bytes=3145800-\r\n", 206, "bytes 3145800-3145850/3145851", 3145800, 51);
    ranged(&s, "Range: bytes=-1000\r\n", 206, "bytes 3144851-3145850/3145851", 3144851, 1000);
    ranged(&s, "Range: bytes=100000-2999999\r\n", 206, "bytes 100000-2999999/3145851", 100000,
           2900000);
    ranged(&s, "Range: bytes=3145851-\r\n", 416, "bytes */3145851", 0, 0);
    ranged(&s, "Range: bytes=-0\r\n", 416, "bytes */3145851", 0, 0);
    /* Several ranges: the whole file (documented choice); junk: ignored. */
    ranged(&s, "Range: bytes=0-1,5-6\r\n", 200, NULL, 0, BIG_LEN);
    ranged(&s, "Range: pages=1\r\n", 200, NULL, 0, BIG_LEN);
    /* If-Range: matching ETag or date -> 206; stale -> the whole file. */
    snprintf(h, sizeof(h), "Range: bytes=10-19\r\nIf-Range: %s\r\n", et);
    ranged(&s, h, 206, "bytes 10-19/3145851", 10, 10);
    snprintf(h, sizeof(h), "Range: bytes=10-19\r\nIf-Range: %s\r\n", lm);
    ranged(&s, h, 206, "bytes 10-19/3145851", 10, 10);
    ranged(&s, "Range: bytes=10-19\r\nIf-Range: \"stale\"\r\n", 200, NULL, 0, BIG_LEN);
    snprintf(h, sizeof(h), "Range: bytes=10-19\r\nIf-Range: W/%s\r\n", et);
    ranged(&s, h, 200, NULL, 0, BIG_LEN); /* weak never matches (strong comparison) */
    ranged(&s, "Range: bytes=10-19\r\nIf-Range: Sat, 01 Jan 2000 00:00:00 GMT\r\n", 200, NULL,
           0, BIG_LEN);
    /* HEAD ignores Range (RFC 9110 §14.2: defined for GET only). */
    e2e_resp_t r;
    get(&s, "HEAD /files/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    hdr_is(&r, "Content-Length", "3145851");
    e2e_resp_free(&r);
    finish(&s, fds0);
}

Test(files, traversal_refused, .timeout = 60)
{
    e2e_server_t s;
    g_no_cache = true; /* each pass must open the files itself */
    int fds0 = start(&s);
    static const char *const bad[] = {
        "/files/../outside/secret.txt", "/files/%2e%2e/outside/secret.txt",
        "/files/%2E%2E/outside/secret.txt", "/files/sub/..%2f..%2foutside/secret.txt",
        "/files/sub%2f..%2f..%2foutside%2fsecret.txt", "/files/..%5coutside%5csecret.txt",
        "/files/hello.txt%00.png", "/files/%c0%ae%c0%ae/outside/secret.txt",
        "/files//etc/passwd", "/files/out", "/files/outdir/secret.txt", "/files/rel-out",
        "/files/./hello.txt", "/files/fifo", "/files/nope.txt", "/files/hello.txt/",
        "/files/%ff", "/files/sub/%2e", "/files/..", "/files/sub/../../outside/secret.txt",
    };
    for (int pass = 0; pass < 2; pass++) {
        /* Pass 1 forces the walk used where openat2 is missing. */
        atomic_store(&appsrv__static_no_openat2, pass == 1);
        for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
            char req[256];
            e2e_resp_t r;
            snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", bad[i]);
            e2e_conn_t c;
            open_conn(&c, s.port);
            send_str(&c, req);
            int rc = e2e_read_response(&c, &r, RD, 0);
            cr_assert_eq(rc, 0, "%s: %s", bad[i], e2e_errname(rc));
            /* 404 from us, or 400 from the parser for a raw "..": never a file. */
            cr_expect(r.status == 404 || r.status == 400, "%s (pass %d): %d", bad[i], pass,
                      r.status);
            cr_expect(strstr(r.body, "secret") == NULL, "%s leaked", bad[i]);
            e2e_resp_free(&r);
            e2e_conn_close(&c);
        }
        /* A symlink within the root: served with openat2, refused by the
         * walk (also in pass 0 where openat2 answered ENOSYS: old kernels,
         * valgrind). */
        bool walk = atomic_load(&appsrv__static_no_openat2);
        e2e_resp_t r;
        get(&s, "GET /files/alias.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        cr_expect_eq(r.status, walk ? 404 : 200, "alias.txt (pass %d, %s): %d", pass,
                     walk ? "walk" : "openat2", r.status);
        e2e_resp_free(&r);
        get(&s, "GET /files/sub/index.html HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        check_status(&r, 200, "OK");
        check_body(&r, "<p>sub</p>\n");
        e2e_resp_free(&r);
    }
    atomic_store(&appsrv__static_no_openat2, false);
    finish(&s, fds0);
}

Test(files, directories_and_gzip, .timeout = 60)
{
    e2e_server_t s;
    int fds0 = start(&s);
    e2e_resp_t r;
    get(&s, "GET /files/sub?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_status(&r, 301, NULL);
    hdr_is(&r, "Location", "/files/sub/?x=1");
    e2e_resp_free(&r);
    get(&s, "GET /files HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_status(&r, 301, NULL);
    hdr_is(&r, "Location", "/files/");
    e2e_resp_free(&r);
    get(&s, "GET /files/ HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    check_body(&r, "<p>index</p>\n");
    e2e_resp_free(&r);
    get(&s, "GET /files/sub/ HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_body(&r, "<p>sub</p>\n");
    e2e_resp_free(&r);
    /* .gz sibling: only when gzip is acceptable. */
    get(&s, "GET /files/page.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    check_body(&r, "GZBYTES");
    hdr_is(&r, "Content-Encoding", "gzip");
    hdr_is(&r, "Content-Type", "text/plain; charset=utf-8");
    hdr_is(&r, "Vary", "Accept-Encoding");
    e2e_resp_free(&r);
    get(&s, "GET /files/page.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0\r\n\r\n", &r);
    check_body(&r, "plain text here\n");
    hdr_is(&r, "Content-Encoding", NULL);
    hdr_is(&r, "Vary", "Accept-Encoding");
    e2e_resp_free(&r);
    get(&s, "GET /files/page.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_body(&r, "plain text here\n");
    e2e_resp_free(&r);
    /* Other methods: 405 from the router. */
    get(&s, "POST /files/page.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r);
    check_status(&r, 405, NULL);
    e2e_resp_free(&r);
    finish(&s, fds0);
}

Test(files, keepalive_pipelined_after_big_file, .timeout = 60)
{
    e2e_server_t s;
    int fds0 = start(&s);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /files/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                 "HEAD /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /files/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-5\r\n\r\n");
    e2e_resp_t r;
    read_resp_t(&c, &r, 0, 20000);
    check_status(&r, 200, "OK");
    cr_expect_eq(r.body_len, BIG_LEN);
    cr_expect(r.body_len == BIG_LEN && big_bytes(r.body, BIG_LEN, 0), "big.bin bytes");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "hello, file\n");
    e2e_resp_free(&r);
    read_resp(&c, &r, E2E_RESP_HEAD);
    check_status(&r, 200, "OK");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 206, NULL);
    cr_expect(r.body_len == 5 && big_bytes(r.body, 5, BIG_LEN - 5));
    e2e_resp_free(&r);
    /* Still open: one more on the same connection. */
    send_str(&c, "GET /files/data.json HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "{\"a\":1}\n");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    finish(&s, fds0);
}

Test(files, client_leaves_mid_file_no_fd_kept, .timeout = 60)
{
    e2e_server_t s;
    int fds0 = start(&s);
    int fds1 = e2e_fd_count(); /* the server's own fds: listener, epoll, root */
    for (int i = 0; i < 5; i++) {
        e2e_conn_t c;
        open_conn_rcvbuf(&c, s.port, 4096);
        send_str(&c, "GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
        char buf[1000];
        int n = e2e_read_some(&c, buf, sizeof(buf), RD);
        cr_assert_gt(n, 0, "no first bytes: %s", e2e_errname(n));
        if (i % 2)
            e2e_conn_reset(&c);
        else
            e2e_conn_close(&c);
    }
    /* The server closes the file with the connection (bounded wait). */
    int64_t dl = e2e_now_ms() + 5000 * e2e_slow_factor();
    int n;
    while ((n = e2e_fd_count()) > fds1 && e2e_now_ms() < dl)
        e2e_pause_ms(10);
    cr_expect_eq(n, fds1, "fds: %d, %d before the aborted downloads", n, fds1);
    finish(&s, fds0);
}

/* ---------------------------------------------------- real clients */

static const char py_script[] =
    "import http.client, sys\n"
    "port = int(sys.argv[1])\n"
    "c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)\n"
    "def get(h):\n"
    "    c.request('GET', '/files/big.bin', headers=h)\n"
    "    r = c.getresponse(); b = r.read(); return r, b\n"
    "r, b = get({})\n"
    "etag, lm, full = r.getheader('ETag'), r.getheader('Last-Modified'), b\n"
    "print('full', r.status, len(b))\n"
    "r, b = get({'Range': 'bytes=1000-1999'})\n"
    "print('range', r.status, r.getheader('Content-Range'), b == full[1000:2000])\n"
    "r, b = get({'Range': 'bytes=-7'})\n"
    "print('suffix', r.status, b == full[-7:])\n"
    "r, b = get({'Range': 'bytes=99999999-'})\n"
    "print('416', r.status, r.getheader('Content-Range'))\n"
    "r, b = get({'If-None-Match': etag})\n"
    "print('304', r.status, len(b))\n"
    "r, b = get({'If-Modified-Since': lm})\n"
    "print('ims', r.status)\n"
    "r, b = get({'Range': 'bytes=0-0', 'If-Range': etag})\n"
    "print('ifrange', r.status, len(b))\n"
    "r, b = get({'Range': 'bytes=0-0', 'If-Range': '\"stale\"'})\n"
    "print('stale', r.status, len(b) == len(full))\n";

Test(files, python_http_client, .timeout = 60)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("python3 missing");
    e2e_server_t s;
    int fds0 = start(&s);
    char path[192], cmd[512];
    snprintf(path, sizeof(path), "%s/t.py", g_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(py_script, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %d", path, s.port);
    char *out = NULL;
    int st = sh_run(cmd, 30000, &out);
    cr_expect_eq(st, 0, "python: %s", out);
    char want[512];
    snprintf(want, sizeof(want),
             "full 200 %u\nrange 206 bytes 1000-1999/%u True\nsuffix 206 True\n"
             "416 416 bytes */%u\n304 304 0\nims 304\nifrange 206 1\nstale 200 True\n",
             BIG_LEN, BIG_LEN, BIG_LEN);
    cr_expect_str_eq(out, want);
    free(out);
    finish(&s, fds0);
}

Test(files, curl_resume_download, .timeout = 90)
{
    if (access("/usr/bin/curl", X_OK) != 0)
        cr_skip_test("curl missing");
    e2e_server_t s;
    int fds0 = start(&s);
    char cmd[1024];
    char *out = NULL;
    /* A cut download (first 1,000,000 bytes), then curl -C - resumes it. */
    snprintf(cmd, sizeof(cmd),
             "cd %s && curl -s -r 0-999999 -o part http://127.0.0.1:%d/files/big.bin && "
             "stat -c %%s part && "
             "curl -s -C - -o part -w '%%{http_code}\\n' http://127.0.0.1:%d/files/big.bin && "
             "cmp part root/big.bin && echo same && "
             "curl -s -o /dev/null -w '%%{http_code}\\n' -H 'Range: bytes=5000000-' "
             "http://127.0.0.1:%d/files/big.bin && "
             "curl -s -I http://127.0.0.1:%d/files/big.bin | tr -d '\\r' | "
             "grep -c -e '^Accept-Ranges: bytes' -e '^ETag: \"' -e '^Content-Length: 3145851'",
             g_dir, s.port, s.port, s.port, s.port);
    int st = sh_run(cmd, 30000, &out);
    cr_expect_eq(st, 0, "curl: %s", out);
    cr_expect_str_eq(out, "1000000\n206\nsame\n416\n3\n");
    free(out);
    finish(&s, fds0);
}

/* GET /files/hello.txt every 100 ms, for at most 5 s, until done(r).
 * Returns whether it came. */
static bool poll_hello(e2e_server_t *s, bool (*done)(const e2e_resp_t *r))
{
    int64_t dl = e2e_now_ms() + 5000;
    bool seen = false;
    while (!seen && e2e_now_ms() < dl) {
        e2e_resp_t r;
        get(s, "GET /files/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        seen = done(&r);
        e2e_resp_free(&r);
        if (!seen)
            e2e_pause_ms(100);
    }
    return seen;
}

/* The longer content, else still the old one (never anything else). */
static bool longer_content(const e2e_resp_t *r)
{
    bool seen = r->body_len == 20 && memcmp(r->body, "changed, and longer\n", 20) == 0;
    cr_assert(seen || (r->body_len == 12 && memcmp(r->body, "hello, file\n", 12) == 0),
              "neither old nor new: %s", r->body);
    return seen;
}

static bool same_size_rewrite(const e2e_resp_t *r)
{
    return r->body_len == 20 && memcmp(r->body, "CHANGED", 7) == 0;
}

static bool gone(const e2e_resp_t *r)
{
    return r->status == 404;
}

/* The small-file cache: a change shows once the copy is a second old
 * (size change, and a same-size rewrite with a new mtime); Range and 304
 * work on cached copies too. */
Test(files, cache_revalidates, .timeout = 60)
{
    e2e_server_t s;
    int fds0 = start(&s);
    e2e_resp_t r;
    for (int i = 0; i < 3; i++) {
        get(&s, "GET /files/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        check_body(&r, "hello, file\n");
        e2e_resp_free(&r);
    }
    get(&s, "GET /files/hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=7-10\r\n\r\n", &r);
    check_status(&r, 206, NULL);
    check_body(&r, "file");
    e2e_resp_free(&r);
    char et[96], lm[64], h[256];
    validators(&s, "/files/hello.txt", et, lm);
    snprintf(h, sizeof(h), "If-None-Match: %s\r\n", et);
    cond(&s, "/files/hello.txt", h, 304, 0);
    write_file("hello.txt", "changed, and longer\n", 20);
    cr_expect(poll_hello(&s, longer_content), "the new content did not show within 5 s");
    /* Same size, new mtime. */
    e2e_pause_ms(20);
    write_file("hello.txt", "CHANGED, AND LONGER\n", 20);
    cr_expect(poll_hello(&s, same_size_rewrite),
              "the same-size rewrite did not show within 5 s");
    /* Gone: 404 once revalidated. */
    char p[256];
    snprintf(p, sizeof(p), "%s/hello.txt", g_root);
    cr_assert_eq(unlink(p), 0);
    cr_expect(poll_hello(&s, gone), "a deleted file is still served after 5 s");
    finish(&s, fds0);
}

/* appsrv_res_fd(): a slice with the handler's status and type, and every
 * refusal closing the fd it was given (the fd count at the end). */
Test(files, res_fd_slice_and_errors, .timeout = 60)
{
    e2e_server_t s;
    int fds0 = start(&s);
    e2e_resp_t r;
    get(&s, "GET /slice HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    hdr_is(&r, "Content-Length", "50");
    hdr_is(&r, "Content-Type", "application/octet-stream");
    cr_expect(r.body_len == 50 && big_bytes(r.body, 50, 100), "slice bytes");
    e2e_resp_free(&r);
    get(&s, "HEAD /slice HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    hdr_is(&r, "Content-Length", "50");
    e2e_resp_free(&r);
    get(&s, "GET /slice-errors HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    char exp[64];
    snprintf(exp, sizeof(exp), "%d %d %d %d %d", -EBADF, -EINVAL, -EINVAL, -EINVAL, -EISDIR);
    check_body(&r, exp);
    e2e_resp_free(&r);
    finish(&s, fds0);
}
