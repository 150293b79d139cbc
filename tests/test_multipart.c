/* SPDX-License-Identifier: MIT */
/*
 * test_multipart.c - unit tests of the multipart/form-data parser
 * (appsrv_multipart_*), form fields (appsrv_form_param) and cookies
 * (appsrv_cookie_get/_format): real clients' byte layouts (Python
 * requests, OkHttp, curl -F), every split point of the input, 1-byte
 * pieces, and each malformed case with its error. Pure functions: no
 * server. The end-to-end uploads are in test_upload_e2e.c.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <appsrv.h>

#define S(lit) ((appsrv_str_t){(lit), sizeof(lit) - 1})

/* What the callbacks saw, as text: "[name|filename|type]data;" per part. */
typedef struct seen {
    char log[8192];
    size_t len;
    int data_calls;
} seen_t;

static void put(seen_t *s, const char *p, size_t n)
{
    cr_assert_lt(s->len + n, sizeof(s->log), "collector overflow");
    memcpy(s->log + s->len, p, n);
    s->len += n;
    s->log[s->len] = '\0';
}

static void puts_(seen_t *s, appsrv_str_t v)
{
    if (v.ptr == NULL)
        put(s, "-", 1);
    else
        put(s, v.ptr, v.len);
}

static int on_part(const appsrv_part_t *p, void *u)
{
    seen_t *s = u;
    put(s, "[", 1);
    puts_(s, p->name);
    put(s, "|", 1);
    puts_(s, p->filename);
    put(s, "|", 1);
    puts_(s, p->content_type);
    put(s, "]", 1);
    return 0;
}

static int on_data(const appsrv_part_t *p, const void *d, size_t n, void *u)
{
    (void)p;
    seen_t *s = u;
    cr_assert_gt(n, 0, "empty data piece");
    s->data_calls++;
    put(s, d, n);
    return 0;
}

static int on_end(const appsrv_part_t *p, void *u)
{
    (void)p;
    put(u, ";", 1);
    return 0;
}

static int count_data(const appsrv_part_t *p, const void *d, size_t n, void *u)
{
    (void)p, (void)d;
    seen_t *s = u;
    s->data_calls++;
    s->len += n;
    return 0;
}

static const appsrv_multipart_handlers_t H = {on_part, on_data, on_end, 0, 0};

/* Feeds body in the given pieces (cuts: sorted offsets), returns finish()
 * or the first feed error. */
static int run_cuts(appsrv_str_t ct, const char *body, size_t len, const size_t *cuts, size_t ncut,
                    seen_t *s, const appsrv_multipart_handlers_t *h)
{
    memset(s, 0, sizeof(*s));
    appsrv_multipart_t *mp;
    int rc = appsrv_multipart_new(&mp, ct, h, s);
    cr_assert_eq(rc, 0, "new: %s", appsrv_strerror(rc));
    size_t at = 0;
    for (size_t i = 0; i <= ncut; i++) {
        size_t to = i < ncut ? cuts[i] : len;
        rc = appsrv_multipart_feed(mp, body + at, to - at);
        if (rc < 0)
            break;
        at = to;
    }
    if (rc >= 0)
        rc = appsrv_multipart_finish(mp);
    appsrv_multipart_free(mp);
    return rc;
}

/* Whole, at every split point, and in 1-byte pieces: the same result. */
static void check_all_splits(appsrv_str_t ct, const char *body, size_t len, int want_rc,
                             const char *want)
{
    seen_t s;
    int rc = run_cuts(ct, body, len, NULL, 0, &s, &H);
    cr_assert_eq(rc, want_rc, "whole: rc %d want %d", rc, want_rc);
    if (want != NULL)
        cr_assert_str_eq(s.log, want);
    for (size_t k = 0; k <= len; k++) {
        rc = run_cuts(ct, body, len, &k, 1, &s, &H);
        cr_assert_eq(rc, want_rc, "split at %zu: rc %d", k, rc);
        if (want != NULL)
            cr_assert_str_eq(s.log, want, "split at %zu", k);
    }
    size_t *cuts = malloc(len * sizeof(*cuts) + 1);
    for (size_t k = 0; k < len; k++)
        cuts[k] = k;
    rc = run_cuts(ct, body, len, cuts, len, &s, &H);
    free(cuts);
    cr_assert_eq(rc, want_rc, "1-byte pieces: rc %d", rc);
    if (want != NULL)
        cr_assert_str_eq(s.log, want, "1-byte pieces");
}

/* Python requests 2.x: files={'f': ('a.jpg', data, 'image/jpeg')},
 * data={'k': 'v'}; boundary = 32 hex digits (urllib3 choose_boundary). */
static const char REQUESTS_BODY[] =
    "--3f0e1d8c9b6a4f2e8d7c6b5a4f3e2d1c\r\n"
    "Content-Disposition: form-data; name=\"k\"\r\n\r\n"
    "v\r\n"
    "--3f0e1d8c9b6a4f2e8d7c6b5a4f3e2d1c\r\n"
    "Content-Disposition: form-data; name=\"f\"; filename=\"a.jpg\"\r\n"
    "Content-Type: image/jpeg\r\n\r\n"
    "\xff\xd8\xff\xe0\r\n--3f0e\r\n\r\n\xff\xd9\r\n"
    "--3f0e1d8c9b6a4f2e8d7c6b5a4f3e2d1c--\r\n";

Test(multipart, python_requests_layout)
{
    appsrv_str_t ct = S("multipart/form-data; boundary=3f0e1d8c9b6a4f2e8d7c6b5a4f3e2d1c");
    check_all_splits(ct, REQUESTS_BODY, sizeof(REQUESTS_BODY) - 1, 2,
                     "[k|-|-]v;[f|a.jpg|image/jpeg]\xff\xd8\xff\xe0\r\n--3f0e\r\n\r\n\xff\xd9;");
}

/* OkHttp 4 MultipartBody: a UUID boundary, Content-Length part headers,
 * "Content-Type: multipart/form-data; boundary=..." on the request. */
static const char OKHTTP_BODY[] =
    "--9e6b1f1e-3c1a-4d2b-9f1e-7a2c5d4e3b21\r\n"
    "Content-Disposition: form-data; name=\"title\"\r\n"
    "Content-Length: 5\r\n\r\n"
    "hello\r\n"
    "--9e6b1f1e-3c1a-4d2b-9f1e-7a2c5d4e3b21\r\n"
    "Content-Disposition: form-data; name=\"photo\"; filename=\"IMG_0001.png\"\r\n"
    "Content-Type: image/png\r\n"
    "Content-Length: 8\r\n\r\n"
    "\x89PNG\r\n\x1a\n\r\n"
    "--9e6b1f1e-3c1a-4d2b-9f1e-7a2c5d4e3b21--\r\n";

Test(multipart, okhttp_layout)
{
    appsrv_str_t ct = S("multipart/form-data; boundary=9e6b1f1e-3c1a-4d2b-9f1e-7a2c5d4e3b21");
    check_all_splits(ct, OKHTTP_BODY, sizeof(OKHTTP_BODY) - 1, 2,
                     "[title|-|-]hello;[photo|IMG_0001.png|image/png]\x89PNG\r\n\x1a\n;");
}

/* curl -F: a boundary of dashes and alphanumerics, a preamble-free body. */
Test(multipart, curl_layout_quoted_boundary_preamble_epilogue)
{
    static const char body[] = "this is a preamble\r\n"
                               "------------------------abc123\r\n"
                               "Content-Disposition: form-data; name=\"up\"; filename=\"x\\\"y.txt\"\r\n"
                               "Content-Type: text/plain\r\n\r\n"
                               "line1\r\nline2\r\n"
                               "------------------------abc123--\r\nepilogue --x\r\n";
    appsrv_str_t ct = S("Multipart/Form-Data;boundary=\"----------------------abc123\"");
    check_all_splits(ct, body, sizeof(body) - 1, 1, "[up|x\"y.txt|text/plain]line1\r\nline2;");
}

Test(multipart, empty_part_and_transport_padding)
{
    static const char body[] = "--b \t\r\nContent-Disposition: form-data; name=e\r\n\r\n"
                               "\r\n--b\r\nContent-Disposition: form-data; name=\"z\"\r\n\r\nZ\r\n--b--";
    check_all_splits(S("multipart/form-data; boundary=b"), body, sizeof(body) - 1, 2,
                     "[e|-|-];[z|-|-]Z;");
}

Test(multipart, malformed_bodies)
{
    appsrv_str_t ct = S("multipart/form-data; boundary=b");
    struct {
        const char *body, *why;
        int rc;
    } cases[] = {
        {"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b", "missing final boundary",
         APPSRV_EPARSE},
        {"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz", "missing final boundary",
         APPSRV_EPARSE},
        {"no boundary at all", "no boundary in the body", APPSRV_EPARSE},
        {"", "no boundary in the body", APPSRV_EPARSE},
        {"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
         "part without Content-Disposition: form-data", APPSRV_EPARSE},
        {"--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--",
         "part disposition is not form-data", APPSRV_EPARSE},
        {"--b\r\nContent-Disposition: form-data; filename=a\r\n\r\nx\r\n--b--",
         "part without a name", APPSRV_EPARSE},
        {"--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--b--",
         "malformed Content-Disposition parameters", APPSRV_EPARSE},
        {"--b\r\nContent-Disposition form-data\r\n\r\nx\r\n--b--", "malformed part header line",
         APPSRV_EPARSE},
        {"--b\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--",
         "boundary line without CRLF", APPSRV_EPARSE},
        {"--b\r\nContent-Disposition: form-data; name=a\n\r\n\r\nx\r\n--b--",
         "bare LF in part headers", APPSRV_EPARSE},
        {"--bx\r\n", "boundary followed by other text", APPSRV_EPARSE},
        {"--b-x", "boundary followed by other text", APPSRV_EPARSE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = NULL;
        int rc = appsrv_multipart_parse(ct, (appsrv_str_t){cases[i].body, strlen(cases[i].body)},
                                        &H, &(seen_t){0}, &why);
        cr_expect_eq(rc, cases[i].rc, "case %zu: rc %d", i, rc);
        cr_expect_str_eq(why, cases[i].why, "case %zu", i);
    }
}

Test(multipart, limits)
{
    appsrv_str_t ct = S("multipart/form-data; boundary=b");
    char body[4096] = "";
    for (int i = 0; i < 5; i++)
        strcat(body, "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n");
    strcat(body, "--b--");
    appsrv_multipart_handlers_t h = H;
    h.max_parts = 4;
    const char *why;
    seen_t s = {0};
    cr_assert_eq(appsrv_multipart_parse(ct, (appsrv_str_t){body, strlen(body)}, &h, &s, &why),
                 -E2BIG);
    cr_assert_str_eq(why, "too many parts");
    h.max_parts = 5;
    memset(&s, 0, sizeof(s));
    cr_assert_eq(appsrv_multipart_parse(ct, (appsrv_str_t){body, strlen(body)}, &h, &s, &why), 5);
    h.max_header = 40; /* the disposition line is 43 bytes + CRLF CRLF */
    memset(&s, 0, sizeof(s));
    cr_assert_eq(appsrv_multipart_parse(ct, (appsrv_str_t){body, strlen(body)}, &h, &s, &why),
                 -EMSGSIZE);
    cr_assert_str_eq(why, "part headers too large");
    h.max_header = 2u << 20;
    appsrv_multipart_t *mp;
    cr_assert_eq(appsrv_multipart_new(&mp, ct, &h, NULL), -EINVAL);
}

Test(multipart, boundary_parameter)
{
    char b[71];
    cr_assert_eq(appsrv_multipart_boundary(S("multipart/form-data; boundary=abc"), b, sizeof(b)), 3);
    cr_assert_str_eq(b, "abc");
    cr_assert_eq(appsrv_multipart_boundary(S("multipart/form-data; charset=x; BOUNDARY=\"a b\""), b,
                                           sizeof(b)),
                 3);
    cr_assert_str_eq(b, "a b");
    char seventy[128] = "multipart/form-data; boundary=";
    memset(seventy + strlen(seventy), 'x', 70);
    cr_assert_eq(appsrv_multipart_boundary((appsrv_str_t){seventy, strlen(seventy)}, b, sizeof(b)),
                 70);
    strcat(seventy, "x");
    cr_assert_eq(appsrv_multipart_boundary((appsrv_str_t){seventy, strlen(seventy)}, b, sizeof(b)),
                 -EINVAL, "71 characters");
    cr_assert_eq(appsrv_multipart_boundary(S("multipart/form-data"), b, sizeof(b)), -EINVAL);
    cr_assert_eq(appsrv_multipart_boundary(S("multipart/form-data; boundary="), b, sizeof(b)),
                 -EINVAL);
    cr_assert_eq(appsrv_multipart_boundary(S("multipart/form-data; boundary=\"a \""), b, sizeof(b)),
                 -EINVAL, "space last");
    cr_assert_eq(appsrv_multipart_boundary(S("multipart/form-data; boundary=a<b"), b, sizeof(b)),
                 -EINVAL);
    cr_assert_eq(appsrv_multipart_boundary(S("text/plain; boundary=a"), b, sizeof(b)), -ENOENT);
    cr_assert_eq(appsrv_multipart_boundary(S("multipart/form-data; boundary=abcd"), b, 4), -ENOSPC);
}

static int stop_data(const appsrv_part_t *p, const void *d, size_t n, void *u)
{
    (void)p, (void)d, (void)n, (void)u;
    return -ENOSPC;
}

Test(multipart, callback_error_stops)
{
    appsrv_multipart_handlers_t h = {.on_data = stop_data};
    appsrv_multipart_t *mp;
    cr_assert_eq(appsrv_multipart_new(&mp, S("multipart/form-data; boundary=b"), &h, NULL), 0);
    static const char body[] = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz\r\n--b--";
    cr_assert_eq(appsrv_multipart_feed(mp, body, sizeof(body) - 1), -ENOSPC);
    cr_assert_eq(appsrv_multipart_feed(mp, "x", 1), APPSRV_ESTATE);
    cr_assert_eq(appsrv_multipart_finish(mp), APPSRV_ESTATE);
    cr_assert_str_eq(appsrv_multipart_error(mp), "the data callback failed");
    appsrv_multipart_free(mp);
    appsrv_multipart_free(NULL);
}

/* Data delivered in few pieces: a run without CR goes out in one call. */
Test(multipart, data_in_runs)
{
    static char body[70000];
    size_t n = (size_t)sprintf(body, "--b\r\nContent-Disposition: form-data; name=f\r\n\r\n");
    memset(body + n, 'A', 65536);
    n += 65536;
    n += (size_t)sprintf(body + n, "\r\n--b--\r\n");
    seen_t *s = malloc(sizeof(*s));
    appsrv_multipart_handlers_t h = {.on_data = count_data};
    cr_assert_eq(run_cuts(S("multipart/form-data; boundary=b"), body, n, NULL, 0, s, &h), 1);
    cr_assert_eq(s->data_calls, 1);
    cr_assert_eq(s->len, 65536);
    free(s);
}

/* ------------------------------------------------------------- forms */

Test(form, fields_decode_like_queries)
{
    char buf[64];
    appsrv_str_t f = S("a=1&name=caf%C3%A9+au+lait&empty&bad=%zz");
    cr_assert_eq(appsrv_form_param(f, "name", buf, sizeof(buf)), 13);
    cr_assert_str_eq(buf, "caf\xc3\xa9 au lait");
    cr_assert_eq(appsrv_form_param(f, "empty", buf, sizeof(buf)), 0);
    cr_assert_eq(appsrv_form_param(f, "missing", buf, sizeof(buf)), -ENOENT);
    cr_assert_eq(appsrv_form_param(f, "bad", buf, sizeof(buf)), -EINVAL);
    cr_assert_eq(appsrv_form_param(f, "name", buf, 4), -ENOSPC);
}

/* ----------------------------------------------------------- cookies */

Test(cookie, get)
{
    appsrv_str_t h = S("sid=abc123; theme=\"dark\";lang=en ; flag; e=");
    appsrv_str_t v = appsrv_cookie_get(h, "sid");
    cr_assert_eq(v.len, 6);
    cr_assert_eq(memcmp(v.ptr, "abc123", 6), 0);
    v = appsrv_cookie_get(h, "theme");
    cr_assert_eq(v.len, 4, "quotes stripped");
    cr_assert_eq(memcmp(v.ptr, "dark", 4), 0);
    v = appsrv_cookie_get(h, "lang");
    cr_assert_eq(v.len, 2);
    cr_assert_eq(memcmp(v.ptr, "en", 2), 0);
    cr_assert_null(appsrv_cookie_get(h, "flag").ptr);
    cr_assert_null(appsrv_cookie_get(h, "SID").ptr, "names are case-sensitive");
    cr_assert_null(appsrv_cookie_get(h, "si").ptr);
    v = appsrv_cookie_get(h, "e");
    cr_assert_not_null(v.ptr);
    cr_assert_eq(v.len, 0);
}

Test(cookie, format)
{
    char buf[256];
    appsrv_cookie_t c = {.name = "sid", .value = "abc", .max_age = 3600, .path = "/",
                         .domain = "example.com", .secure = true, .http_only = true,
                         .same_site = APPSRV_SAMESITE_LAX};
    int n = appsrv_cookie_format(&c, buf, sizeof(buf));
    cr_assert_str_eq(buf, "sid=abc; Max-Age=3600; Domain=example.com; Path=/; Secure; HttpOnly; "
                          "SameSite=Lax");
    cr_assert_eq(n, (int)strlen(buf));
    c = (appsrv_cookie_t){.name = "x", .max_age = -1, .expires = 784111777,
                          .same_site = APPSRV_SAMESITE_STRICT};
    appsrv_cookie_format(&c, buf, sizeof(buf));
    cr_assert_str_eq(buf, "x=; Max-Age=0; Expires=Sun, 06 Nov 1994 08:49:37 GMT; SameSite=Strict");
    c = (appsrv_cookie_t){.name = "q", .value = "\"quoted\""};
    cr_assert_gt(appsrv_cookie_format(&c, buf, sizeof(buf)), 0);
    const appsrv_cookie_t bad[] = {
        {.name = "a b", .value = "v"},   {.name = "", .value = "v"},
        {.name = "a;", .value = "v"},    {.name = "a", .value = "v v"},
        {.name = "a", .value = "v;x"},   {.name = "a", .value = "v,x"},
        {.name = "a", .value = "\"v"},   {.name = "a", .value = "x\\y"},
        {.name = "a", .path = "/a;b"},   {.name = "a", .path = "/a\r\n"},
        {.name = "a", .domain = "a..b"}, {.name = "a", .domain = "a_b.com"},
        {.name = "a", .same_site = APPSRV_SAMESITE_NONE},
        {.name = "a", .same_site = (appsrv_samesite_t)7},
        {.name = NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(appsrv_cookie_format(&bad[i], buf, sizeof(buf)), -EINVAL, "bad[%zu]", i);
    c = (appsrv_cookie_t){.name = "a", .same_site = APPSRV_SAMESITE_NONE, .secure = true};
    cr_assert_gt(appsrv_cookie_format(&c, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "a=; Secure; SameSite=None");
    cr_assert_eq(appsrv_cookie_format(&c, buf, 8), -ENOSPC);
    cr_assert_str_eq(buf, "");
}
