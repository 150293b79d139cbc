/* SPDX-License-Identifier: MIT */
/*
 * dump.c - the libappsrv side of the differential parser test (run.sh).
 * For each file named on the command line: the whole file is one client
 * payload; the request head goes through appsrv__http_parse_head() under
 * the documented defaults (16 KiB head, 8 KiB target, 128 fields), then the body
 * through appsrv__chunked_parse() (max_trailer = max_head, as http.c does)
 * or by Content-Length (max body 8 MiB -> 413). Only the first request of
 * the payload is judged; the bytes after it are ignored. One JSON line per
 * file:
 *   {"file":..,"ok":true,"method":..,"target":..,"headers":[[n,v],..],
 *    "body_hex":..}
 *   {"file":..,"ok":false,"status":400|..|"incomplete"}
 * Strings are the wire bytes, one JSON char per byte (latin1: \u00XX for
 * controls and bytes >= 0x7f), as Node sees them.
 * Build: cc -std=c11 -D_GNU_SOURCE -Iinclude -Ilib tests/differential/dump.c lib/http_parse.c
 */
#include "http_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HDRS 128
#define MAX_BODY (8u * 1024 * 1024)

static const appsrv__http_limits_t lim = {16384, 8192, MAX_HDRS};

static void jstr(const unsigned char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar((int)c);
    }
    putchar('"');
}

static void jspan(const unsigned char *buf, appsrv__span_t s)
{
    jstr(buf + s.off, s.len);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    unsigned char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            unsigned char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                b = NULL;
            }
            b = nb;
        }
    }
    fclose(f);
    *len = n;
    return b;
}

static void fail(const char *file, int status)
{
    printf("{\"file\":");
    jstr((const unsigned char *)file, strlen(file));
    if (status == APPSRV__AGAIN)
        printf(",\"ok\":false,\"status\":\"incomplete\"}\n");
    else
        printf(",\"ok\":false,\"status\":%d}\n", status);
}

static void one(const char *file)
{
    size_t len = 0;
    unsigned char *buf = slurp(file, &len);
    if (!buf) {
        perror(file);
        exit(2);
    }
    appsrv__hdr_t hdrs[MAX_HDRS];
    appsrv__http_head_t h;
    memset(&h, 0, sizeof h);
    h.hdrs = hdrs;
    int r = appsrv__http_parse_head(&h, (const char *)buf, len, &lim);
    if (r < 0) {
        fail(file, r == APPSRV__AGAIN ? r : -r);
        free(buf);
        return;
    }
    size_t head = (size_t)r;
    unsigned char *body = malloc(len - head + 1);
    size_t blen = 0;
    if (h.is_chunked) {
        appsrv__chunked_t c;
        memset(&c, 0, sizeof c);
        const char *p = (const char *)buf + head;
        size_t left = len - head;
        while (left && !c.done) {
            size_t dlen = 0;
            int64_t n = appsrv__chunked_parse(&c, p, left, lim.max_head, &dlen);
            if (n < 0) {
                fail(file, (int)-n);
                goto out;
            }
            memcpy(body + blen, p, dlen);
            blen += dlen;
            if (blen > MAX_BODY) {
                fail(file, 413);
                goto out;
            }
            p += n;
            left -= (size_t)n;
        }
        if (!c.done) {
            fail(file, APPSRV__AGAIN);
            goto out;
        }
    } else if (h.has_content_length) {
        if (h.content_length > MAX_BODY) {
            fail(file, 413);
            goto out;
        }
        if (len - head < h.content_length) {
            fail(file, APPSRV__AGAIN);
            goto out;
        }
        blen = (size_t)h.content_length;
        memcpy(body, buf + head, blen);
    }
    printf("{\"file\":");
    jstr((const unsigned char *)file, strlen(file));
    printf(",\"ok\":true,\"status\":0,\"method\":");
    jspan(buf, h.method);
    printf(",\"target\":");
    jspan(buf, h.target);
    printf(",\"headers\":[");
    for (uint32_t i = 0; i < h.nhdrs; i++) {
        printf(i ? ",[" : "[");
        jspan(buf, hdrs[i].name);
        putchar(',');
        jspan(buf, hdrs[i].value);
        putchar(']');
    }
    printf("],\"body_hex\":\"");
    for (size_t i = 0; i < blen; i++)
        printf("%02x", body[i]);
    printf("\"}\n");
out:
    free(body);
    free(buf);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        one(argv[i]);
    return 0;
}
