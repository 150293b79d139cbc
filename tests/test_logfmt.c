/* SPDX-License-Identifier: MIT */
/*
 * test_logfmt.c - unit tests of the access-log formatters
 * (appsrv_log_format_combined/_json): the escaping tables byte by byte,
 * absent fields, times, addresses, and the snprintf-like bounds. Pure
 * functions: no server, no sockets. The end-to-end tests
 * (test_e2e_obs_log.c) parse whole log files with real parsers.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <appsrv.h>

#define S(lit) ((appsrv_str_t){(lit), sizeof(lit) - 1})

static appsrv_addr_t v4(const char *ip, int port)
{
    appsrv_addr_t a;
    memset(&a, 0, sizeof(a));
    a.u.in4.sin_family = AF_INET;
    a.u.in4.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &a.u.in4.sin_addr);
    a.len = sizeof(a.u.in4);
    return a;
}

/* 2026-11-25 12:34:56.789012 UTC */
#define T0 ((int64_t)1795610096 * 1000000 + 789012)

static appsrv_log_entry_t base_entry(const appsrv_addr_t *peer)
{
    appsrv_log_entry_t e;
    memset(&e, 0, sizeof(e));
    e.peer = e.client = peer;
    e.proto = APPSRV_PROTO_HTTP;
    e.method = S("GET");
    e.target = S("/a?b=1");
    e.http_minor = 1;
    e.status = 200;
    e.bytes = 120;
    e.body_bytes = 13;
    e.bytes_in = 40;
    e.usec = 1234;
    e.time_us = T0;
    return e;
}

static char *combined(const appsrv_log_entry_t *e)
{
    static char buf[4096];
    size_t n = appsrv_log_format_combined(e, buf, sizeof(buf));
    cr_assert_lt(n, sizeof(buf));
    cr_assert_eq(strlen(buf), n, "returned length %zu, wrote %zu", n, strlen(buf));
    return buf;
}

static char *json(const appsrv_log_entry_t *e)
{
    static char buf[4096];
    size_t n = appsrv_log_format_json(e, buf, sizeof(buf));
    cr_assert_lt(n, sizeof(buf));
    cr_assert_eq(strlen(buf), n);
    return buf;
}

Test(logfmt, combined_ordinary_line, .timeout = 10)
{
    appsrv_addr_t a = v4("192.0.2.7", 5555);
    appsrv_log_entry_t e = base_entry(&a);
    e.user_agent = S("curl/8.0");
    e.referer = S("https://example.com/");
    cr_assert_str_eq(combined(&e), "192.0.2.7 - - [25/Nov/2026:12:34:56 +0000] \"GET /a?b=1 "
                                   "HTTP/1.1\" 200 13 \"https://example.com/\" \"curl/8.0\"\n");
}

Test(logfmt, combined_absent_fields_are_dashes, .timeout = 10)
{
    appsrv_addr_t a = v4("10.0.0.1", 1);
    appsrv_log_entry_t e = base_entry(&a);
    e.body_bytes = 0;
    e.http_minor = 0;
    cr_assert_str_eq(combined(&e),
                     "10.0.0.1 - - [25/Nov/2026:12:34:56 +0000] \"GET /a?b=1 HTTP/1.0\" 200 - "
                     "\"-\" \"-\"\n");
    /* Nothing parsed: the request is "-"; no address at all: "-". */
    e.method = (appsrv_str_t){NULL, 0};
    e.target = (appsrv_str_t){NULL, 0};
    e.http_minor = -1;
    e.status = 408;
    e.peer = e.client = NULL;
    cr_assert_str_eq(combined(&e), "- - - [25/Nov/2026:12:34:56 +0000] \"-\" 408 - \"-\" \"-\"\n");
    /* A line-protocol request: its command word alone. */
    e.proto = APPSRV_PROTO_LINE;
    e.method = S("PING");
    e.status = 200;
    e.body_bytes = 4;
    cr_assert_str_eq(combined(&e),
                     "- - - [25/Nov/2026:12:34:56 +0000] \"PING\" 200 4 \"-\" \"-\"\n");
}

Test(logfmt, combined_client_field_wins_over_peer, .timeout = 10)
{
    appsrv_addr_t peer = v4("127.0.0.1", 80), client = v4("203.0.113.9", 0);
    appsrv_log_entry_t e = base_entry(&peer);
    e.client = &client;
    cr_assert(strncmp(combined(&e), "203.0.113.9 - - [", 17) == 0, "%s", combined(&e));
    appsrv_addr_t six;
    memset(&six, 0, sizeof(six));
    six.u.in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::1", &six.u.in6.sin6_addr);
    e.client = &six;
    cr_assert(strncmp(combined(&e), "2001:db8::1 - - [", 17) == 0, "%s", combined(&e));
}

/* Apache's ap_escape_logitem() table, byte by byte, in a header field. */
Test(logfmt, combined_escaping_table, .timeout = 10)
{
    appsrv_addr_t a = v4("127.0.0.1", 1);
    for (int c = 0; c < 256; c++) {
        char raw[3] = {'a', (char)c, 'b'};
        appsrv_log_entry_t e = base_entry(&a);
        e.user_agent = (appsrv_str_t){raw, 3};
        char want[16];
        switch (c) {
        case '"':
            strcpy(want, "a\\\"b");
            break;
        case '\\':
            strcpy(want, "a\\\\b");
            break;
        case '\b':
            strcpy(want, "a\\bb");
            break;
        case '\n':
            strcpy(want, "a\\nb");
            break;
        case '\r':
            strcpy(want, "a\\rb");
            break;
        case '\t':
            strcpy(want, "a\\tb");
            break;
        case '\v':
            strcpy(want, "a\\vb");
            break;
        default:
            if (c >= 0x20 && c < 0x7f)
                snprintf(want, sizeof(want), "a%cb", c);
            else
                snprintf(want, sizeof(want), "a\\x%02xb", c);
        }
        const char *line = combined(&e);
        /* ... "-" "<ua>"\n (the referer is absent) */
        const char *ua = strstr(line, " \"-\" \"") + 6;
        char got[16];
        snprintf(got, sizeof(got), "%.*s", (int)(strlen(ua) - 2), ua);
        cr_assert_str_eq(got, want, "byte 0x%02x: got %s, want %s", c, got, want);
    }
}

Test(logfmt, combined_hostile_request_line_stays_one_line, .timeout = 10)
{
    appsrv_addr_t a = v4("127.0.0.1", 1);
    appsrv_log_entry_t e = base_entry(&a);
    e.method = S("G\"ET");
    e.target = S("/x\" 200 1 \"-\" \"-\"\n127.0.0.1 - - [forged] \"\xff\x01");
    e.referer = S("\"\\");
    cr_assert_str_eq(combined(&e),
                     "127.0.0.1 - - [25/Nov/2026:12:34:56 +0000] \"G\\\"ET /x\\\" 200 1 \\\"-\\\" "
                     "\\\"-\\\"\\n127.0.0.1 - - [forged] \\\"\\xff\\x01 HTTP/1.1\" 200 13 "
                     "\"\\\"\\\\\" \"-\"\n");
}

Test(logfmt, json_ordinary_line, .timeout = 10)
{
    appsrv_addr_t a = v4("192.0.2.7", 5555);
    appsrv_log_entry_t e = base_entry(&a);
    e.user_agent = S("curl/8.0");
    e.request_id = S("abc");
    e.route = S("/a");
    e.worker = 1;
    cr_assert_str_eq(
        json(&e),
        "{\"time\":\"2026-11-25T12:34:56.789012Z\",\"client\":\"192.0.2.7\","
        "\"peer\":\"192.0.2.7:5555\",\"proto\":\"http\",\"method\":\"GET\",\"target\":\"/a?b=1\","
        "\"version\":\"HTTP/1.1\",\"status\":200,\"bytes_in\":40,\"bytes_out\":120,"
        "\"body_bytes\":13,\"duration_us\":1234,\"user_agent\":\"curl/8.0\",\"referer\":null,"
        "\"request_id\":\"abc\",\"tls_version\":null,\"route\":\"/a\",\"aborted\":false,"
        "\"worker\":1}\n");
}

/* RFC 8259 escaping, byte by byte (single bytes: >= 0x80 alone is never
 * UTF-8, so U+FFFD). */
Test(logfmt, json_escaping_table, .timeout = 10)
{
    appsrv_addr_t a = v4("127.0.0.1", 1);
    for (int c = 0; c < 256; c++) {
        char raw[3] = {'a', (char)c, 'b'};
        appsrv_log_entry_t e = base_entry(&a);
        e.referer = (appsrv_str_t){raw, 3};
        char want[32];
        switch (c) {
        case '"':
            strcpy(want, "\"a\\\"b\"");
            break;
        case '\\':
            strcpy(want, "\"a\\\\b\"");
            break;
        case '\b':
            strcpy(want, "\"a\\bb\"");
            break;
        case '\f':
            strcpy(want, "\"a\\fb\"");
            break;
        case '\n':
            strcpy(want, "\"a\\nb\"");
            break;
        case '\r':
            strcpy(want, "\"a\\rb\"");
            break;
        case '\t':
            strcpy(want, "\"a\\tb\"");
            break;
        default:
            if (c >= 0x20 && c < 0x7f)
                snprintf(want, sizeof(want), "\"a%cb\"", c);
            else if (c < 0x80)
                snprintf(want, sizeof(want), "\"a\\u%04xb\"", c);
            else
                strcpy(want, "\"a\\ufffdb\"");
        }
        const char *line = json(&e);
        const char *r = strstr(line, "\"referer\":") + 10;
        const char *end = strstr(r, ",\"request_id\"");
        char got[32];
        snprintf(got, sizeof(got), "%.*s", (int)(end - r), r);
        cr_assert_str_eq(got, want, "byte 0x%02x: got %s, want %s", c, got, want);
    }
}

/* Well-formed UTF-8 passes; overlongs, surrogates, > U+10FFFF, truncated
 * sequences and stray continuation bytes become U+FFFD per byte. */
Test(logfmt, json_utf8_validation, .timeout = 10)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\xc3\xa9", "\xc3\xa9"},                             /* é */
        {"\xe2\x82\xac", "\xe2\x82\xac"},                     /* € */
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},             /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"},             /* U+10FFFF */
        {"\xc0\xaf", "\\ufffd\\ufffd"},                       /* overlong '/' */
        {"\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"},            /* overlong */
        {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"},            /* surrogate D800 */
        {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* > U+10FFFF */
        {"\xc3", "\\ufffd"},                                  /* truncated */
        {"\xe2\x82", "\\ufffd\\ufffd"},                       /* truncated */
        {"\x80", "\\ufffd"},                                  /* continuation */
        {"\xc3(", "\\ufffd("},
        {"\xff\xfe", "\\ufffd\\ufffd"},
    };
    appsrv_addr_t a = v4("127.0.0.1", 1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        appsrv_log_entry_t e = base_entry(&a);
        e.user_agent = (appsrv_str_t){cases[i].in, strlen(cases[i].in)};
        const char *line = json(&e);
        char want[64];
        snprintf(want, sizeof(want), "\"user_agent\":\"%s\",", cases[i].out);
        cr_assert(strstr(line, want) != NULL, "case %zu: want %s in %s", i, want, line);
    }
}

Test(logfmt, json_absent_and_line_fields, .timeout = 10)
{
    appsrv_log_entry_t e;
    memset(&e, 0, sizeof(e));
    e.proto = APPSRV_PROTO_LINE;
    e.method = S("PING");
    e.http_minor = -1;
    e.status = 499;
    e.aborted = true;
    e.time_us = T0;
    const char *line = json(&e);
    cr_assert(strstr(line, "\"client\":null,\"peer\":null,\"proto\":\"line\",\"method\":\"PING\","
                           "\"target\":null,\"version\":null,\"status\":499") != NULL,
              "%s", line);
    cr_assert(strstr(line, "\"aborted\":true") != NULL, "%s", line);
}

/* snprintf-like: the result is the full length whatever cap is; the
 * output is a NUL-terminated prefix. */
Test(logfmt, bounds_are_snprintf_like, .timeout = 10)
{
    appsrv_addr_t a = v4("127.0.0.1", 1);
    appsrv_log_entry_t e = base_entry(&a);
    e.user_agent = S("\xff\xff\"\"");
    size_t (*fmt[2])(const appsrv_log_entry_t *, char *, size_t) = {appsrv_log_format_combined,
                                                                    appsrv_log_format_json};
    for (int f = 0; f < 2; f++) {
        char full[1024];
        size_t n = fmt[f](&e, full, sizeof(full));
        cr_assert_eq(fmt[f](&e, NULL, 0), n);
        for (size_t cap = 1; cap <= n + 1; cap++) {
            char *buf = malloc(cap + 8);
            memset(buf, 'Z', cap + 8);
            cr_assert_eq(fmt[f](&e, buf, cap), n, "cap %zu", cap);
            cr_assert_eq(buf[cap - 1 < n ? cap - 1 : n], '\0', "cap %zu: no NUL", cap);
            cr_assert(memcmp(buf, full, cap - 1 < n ? cap - 1 : n) == 0, "cap %zu: not a prefix",
                      cap);
            cr_assert_eq(buf[cap], 'Z', "cap %zu: wrote past cap", cap);
            free(buf);
        }
    }
}
