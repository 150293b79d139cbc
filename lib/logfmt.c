/* SPDX-License-Identifier: MIT */
/*
 * logfmt.c - the access-log line formatters: Apache's combined log format
 * and JSON lines (appsrv_log_format_combined/_json in appsrv.h). Pure
 * functions of the entry: no state, no allocation, snprintf-like bounds.
 * Called by the host and by alog.c (the access-log file), which passes a
 * per-worker cache of the time stamp and client address (logfmt.h);
 * calls libc's inet_ntop and gmtime_r only.
 */
#include "logfmt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* An output cursor: counts every byte, stores those that fit (one byte
 * is kept for the NUL). */
typedef struct out {
    char *buf;
    size_t cap, len;
} out_t;

static void put_c(out_t *o, char c)
{
    if (o->len + 1 < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void put_n(out_t *o, const char *s, size_t n)
{
    if (o->len + 1 < o->cap) {
        size_t room = o->cap - 1 - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void put_s(out_t *o, const char *s)
{
    put_n(o, s, strlen(s));
}

#define PUT_LIT(o, lit) put_n((o), (lit), sizeof(lit) - 1)

static void put_u(out_t *o, uint64_t v)
{
    char tmp[20];
    size_t n = sizeof(tmp);
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put_n(o, tmp + n, sizeof(tmp) - n);
}

static void put_i(out_t *o, int64_t v)
{
    if (v < 0) {
        put_c(o, '-');
        put_u(o, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u(o, (uint64_t)v);
    }
}

static void put_2(out_t *o, int v)
{
    put_c(o, (char)('0' + v / 10 % 10));
    put_c(o, (char)('0' + v % 10));
}

static size_t finish(out_t *o)
{
    if (o->cap > 0)
        o->buf[o->len < o->cap ? o->len : o->cap - 1] = '\0';
    return o->len;
}

static const char hexd[] = "0123456789abcdef";

static size_t format_combined(const appsrv_log_entry_t *e, char *buf, size_t cap,
                              appsrv__logfmt_cache_t *cache);
static size_t format_json(const appsrv_log_entry_t *e, char *buf, size_t cap,
                          appsrv__logfmt_cache_t *cache);

/* The address without the port into host (NUL-terminated; "" when
 * unknown). IPv4 by hand: inet_ntop goes through sprintf. */
static size_t host_text(const appsrv_addr_t *a, char host[INET6_ADDRSTRLEN])
{
    host[0] = '\0';
    if (a != NULL && a->u.sa.sa_family == AF_INET) {
        const unsigned char *b = (const unsigned char *)&a->u.in4.sin_addr;
        char *p = host;
        for (int i = 0; i < 4; i++) {
            unsigned v = b[i];
            if (v >= 100)
                *p++ = (char)('0' + v / 100);
            if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
            *p++ = (char)('0' + v % 10);
            *p++ = i < 3 ? '.' : '\0';
        }
        return (size_t)(p - host - 1);
    }
    if (a != NULL && a->u.sa.sa_family == AF_INET6 &&
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, host, INET6_ADDRSTRLEN) != NULL)
        return strlen(host);
    host[0] = '\0';
    return 0;
}

/* The client's host, through the cache when there is one (a keep-alive
 * client logs the same address many times). */
static size_t client_host(const appsrv_log_entry_t *e, appsrv__logfmt_cache_t *cache,
                          const char **out, char tmp[INET6_ADDRSTRLEN])
{
    const appsrv_addr_t *a = e->client != NULL ? e->client : e->peer;
    if (cache == NULL) {
        *out = tmp;
        return host_text(a, tmp);
    }
    appsrv_addr_t key;
    memset(&key, 0, sizeof(key));
    if (a != NULL)
        key.u = a->u;
    /* The port is not part of the host. */
    if (key.u.sa.sa_family == AF_INET)
        key.u.in4.sin_port = 0;
    else if (key.u.sa.sa_family == AF_INET6)
        key.u.in6.sin6_port = 0;
    if (!cache->host_ok || memcmp(&cache->host_key, &key.u, sizeof(key.u)) != 0) {
        memcpy(&cache->host_key, &key.u, sizeof(key.u));
        cache->host_len = host_text(a, cache->host);
        cache->host_ok = true;
    }
    *out = cache->host;
    return cache->host_len;
}

/* The time parts both formats need, through the cache: gmtime_r once a
 * second. */
static const appsrv__logfmt_time_t *time_parts(int64_t us, appsrv__logfmt_cache_t *cache,
                                               appsrv__logfmt_time_t *tmp)
{
    static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int64_t sec = us / 1000000 - (us % 1000000 < 0);
    if (cache != NULL && cache->time_ok && cache->time.sec == sec)
        return &cache->time;
    appsrv__logfmt_time_t *t = cache != NULL ? &cache->time : tmp;
    time_t tt = (time_t)sec;
    struct tm tm;
    gmtime_r(&tt, &tm);
    t->sec = sec;
    /* "25/Nov/2026:12:34:56" and "2026-11-25T12:34:56" */
    out_t o = {t->clf, sizeof(t->clf), 0};
    put_2(&o, tm.tm_mday);
    put_c(&o, '/');
    put_n(&o, mon + 3 * tm.tm_mon, 3);
    put_c(&o, '/');
    put_u(&o, (uint64_t)(tm.tm_year + 1900));
    put_c(&o, ':');
    put_2(&o, tm.tm_hour);
    put_c(&o, ':');
    put_2(&o, tm.tm_min);
    put_c(&o, ':');
    put_2(&o, tm.tm_sec);
    t->clf_len = finish(&o);
    o = (out_t){t->iso, sizeof(t->iso), 0};
    put_u(&o, (uint64_t)(tm.tm_year + 1900));
    put_c(&o, '-');
    put_2(&o, tm.tm_mon + 1);
    put_c(&o, '-');
    put_2(&o, tm.tm_mday);
    put_c(&o, 'T');
    put_2(&o, tm.tm_hour);
    put_c(&o, ':');
    put_2(&o, tm.tm_min);
    put_c(&o, ':');
    put_2(&o, tm.tm_sec);
    t->iso_len = finish(&o);
    if (cache != NULL)
        cache->time_ok = true;
    return t;
}

/* "1.2.3.4:80" or "[::1]:80" into out (at least INET6_ADDRSTRLEN + 16
 * bytes); 0 when unknown. */
static size_t peer_text(const appsrv_addr_t *a, char *out)
{
    if (a == NULL || (a->u.sa.sa_family == AF_INET6 && a->u.in6.sin6_scope_id != 0)) {
        int n = a != NULL ? appsrv_addr_format(a, out, INET6_ADDRSTRLEN + 16) : -1;
        return n > 0 ? (size_t)n : 0;
    }
    char host[INET6_ADDRSTRLEN];
    size_t hl = host_text(a, host);
    if (hl == 0)
        return 0;
    out_t o = {out, INET6_ADDRSTRLEN + 16, 0};
    bool v6 = a->u.sa.sa_family == AF_INET6;
    if (v6)
        put_c(&o, '[');
    put_n(&o, host, hl);
    if (v6)
        put_c(&o, ']');
    put_c(&o, ':');
    put_u(&o, ntohs(v6 ? a->u.in6.sin6_port : a->u.in4.sin_port));
    return finish(&o);
}

static size_t peer_cached(const appsrv_addr_t *a, appsrv__logfmt_cache_t *cache, const char **out,
                          char *tmp)
{
    if (cache == NULL || a == NULL) {
        *out = tmp;
        return peer_text(a, tmp);
    }
    if (!cache->peer_ok || memcmp(cache->peer_key, &a->u, sizeof(a->u)) != 0) {
        memcpy(cache->peer_key, &a->u, sizeof(a->u));
        cache->peer_len = peer_text(a, cache->peer);
        cache->peer_ok = true;
    }
    *out = cache->peer;
    return cache->peer_len;
}

static int64_t entry_time_us(const appsrv_log_entry_t *e)
{
    if (e->time_us != 0)
        return e->time_us;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------- combined */

/* Apache's ap_escape_logitem(): '"' and '\' get a backslash, \b \n \r \t
 * \v their C escapes, every other byte outside 0x20..0x7E "\xhh". */
/* Bytes both formats copy as they are: visible ASCII and space, but not
 * '"' or '\\'. */
static inline bool plain_byte(unsigned char c)
{
    return (unsigned)(c - 0x20) < 0x5fu && c != '"' && c != '\\';
}

static inline bool apache_plain(unsigned char c)
{
    return plain_byte(c);
}

static void put_apache(out_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (apache_plain(c)) {
            size_t j = i + 1; /* a run of plain bytes: one copy */
            while (j < n && apache_plain((unsigned char)s[j]))
                j++;
            put_n(o, s + i, j - i);
            i = j - 1;
            continue;
        }
        put_c(o, '\\');
        switch (c) {
        case '"':
        case '\\':
            put_c(o, (char)c);
            break;
        case '\b':
            put_c(o, 'b');
            break;
        case '\n':
            put_c(o, 'n');
            break;
        case '\r':
            put_c(o, 'r');
            break;
        case '\t':
            put_c(o, 't');
            break;
        case '\v':
            put_c(o, 'v');
            break;
        default:
            put_c(o, 'x');
            put_c(o, hexd[c >> 4]);
            put_c(o, hexd[c & 15]);
            break;
        }
    }
}

/* A quoted header field: "-" when absent. */
static void put_apache_field(out_t *o, appsrv_str_t v)
{
    put_c(o, '"');
    if (v.ptr == NULL)
        put_c(o, '-');
    else
        put_apache(o, v.ptr, v.len);
    put_c(o, '"');
}

size_t appsrv__log_format(const appsrv_log_entry_t *e, appsrv_log_format_t format, char *buf,
                          size_t cap, appsrv__logfmt_cache_t *cache)
{
    return format == APPSRV_LOG_JSON ? format_json(e, buf, cap, cache)
                                     : format_combined(e, buf, cap, cache);
}

size_t appsrv_log_format_combined(const appsrv_log_entry_t *e, char *buf, size_t cap)
{
    return format_combined(e, buf, cap, NULL);
}

size_t appsrv_log_format_json(const appsrv_log_entry_t *e, char *buf, size_t cap)
{
    return format_json(e, buf, cap, NULL);
}

static size_t format_combined(const appsrv_log_entry_t *e, char *buf, size_t cap,
                              appsrv__logfmt_cache_t *cache)
{
    out_t o = {buf, buf != NULL ? cap : 0, 0};
    char tmp[INET6_ADDRSTRLEN];
    const char *host;
    size_t hl = client_host(e, cache, &host, tmp);
    if (hl > 0)
        put_n(&o, host, hl);
    else
        put_c(&o, '-');
    PUT_LIT(&o, " - - [");
    appsrv__logfmt_time_t tt;
    const appsrv__logfmt_time_t *t = time_parts(entry_time_us(e), cache, &tt);
    put_n(&o, t->clf, t->clf_len);
    PUT_LIT(&o, " +0000] \"");
    if (e->method.len == 0) {
        put_c(&o, '-');
    } else {
        put_apache(&o, e->method.ptr, e->method.len);
        if (e->target.len > 0) {
            put_c(&o, ' ');
            put_apache(&o, e->target.ptr, e->target.len);
        }
        if (e->http_minor >= 0 && e->proto == APPSRV_PROTO_HTTP) {
            PUT_LIT(&o, " HTTP/1.");
            put_u(&o, (uint64_t)e->http_minor);
        }
    }
    PUT_LIT(&o, "\" ");
    put_u(&o, (uint64_t)(e->status >= 0 && e->status <= 999 ? e->status : 0));
    put_c(&o, ' ');
    if (e->body_bytes == 0)
        put_c(&o, '-');
    else
        put_u(&o, e->body_bytes);
    put_c(&o, ' ');
    put_apache_field(&o, e->referer);
    put_c(&o, ' ');
    put_apache_field(&o, e->user_agent);
    put_c(&o, '\n');
    return finish(&o);
}

/* ----------------------------------------------------------------- JSON */

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlongs, no surrogates, at most U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
            return 0;
        return 4;
    }
    return 0;
}

static void put_json_str(out_t *o, const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    put_c(o, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7f) {
            if (c == '"' || c == '\\') {
                put_c(o, '\\');
                put_c(o, (char)c);
                i++;
                continue;
            }
            size_t j = i + 1; /* a run of plain bytes: one copy */
            while (j < n && plain_byte(s[j]))
                j++;
            put_n(o, p + i, j - i);
            i = j;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_len(s + i, n - i);
            if (k > 0) {
                put_n(o, p + i, k);
                i += k;
            } else {
                PUT_LIT(o, "\\ufffd"); /* not UTF-8: the replacement character */
                i++;
            }
            continue;
        }
        switch (c) {
        case '\b':
            PUT_LIT(o, "\\b");
            break;
        case '\f':
            PUT_LIT(o, "\\f");
            break;
        case '\n':
            PUT_LIT(o, "\\n");
            break;
        case '\r':
            PUT_LIT(o, "\\r");
            break;
        case '\t':
            PUT_LIT(o, "\\t");
            break;
        default: /* other controls and DEL */
            PUT_LIT(o, "\\u00");
            put_c(o, hexd[c >> 4]);
            put_c(o, hexd[c & 15]);
            break;
        }
        i++;
    }
    put_c(o, '"');
}

/* A string view as JSON: null when absent (ptr NULL). */
static void put_json_view(out_t *o, const char *key, size_t klen, appsrv_str_t v)
{
    put_n(o, key, klen);
    if (v.ptr == NULL)
        PUT_LIT(o, "null");
    else
        put_json_str(o, v.ptr, v.len);
}

static size_t format_json(const appsrv_log_entry_t *e, char *buf, size_t cap,
                          appsrv__logfmt_cache_t *cache)
{
    out_t o = {buf, buf != NULL ? cap : 0, 0};
    int64_t us = entry_time_us(e);
    appsrv__logfmt_time_t tt;
    const appsrv__logfmt_time_t *t = time_parts(us, cache, &tt);
    PUT_LIT(&o, "{\"time\":\"");
    put_n(&o, t->iso, t->iso_len);
    put_c(&o, '.');
    int64_t frac = us % 1000000;
    if (frac < 0)
        frac += 1000000;
    for (int64_t d = 100000; d > 0; d /= 10)
        put_c(&o, (char)('0' + frac / d % 10));
    PUT_LIT(&o, "Z\",\"client\":");
    char tmp[64];
    const char *host;
    size_t hl = client_host(e, cache, &host, tmp);
    if (hl > 0)
        put_json_str(&o, host, hl);
    else
        PUT_LIT(&o, "null");
    PUT_LIT(&o, ",\"peer\":");
    char ptmp[INET6_ADDRSTRLEN + 16];
    const char *peer;
    size_t pl = peer_cached(e->peer, cache, &peer, ptmp);
    if (pl > 0)
        put_json_str(&o, peer, pl);
    else
        PUT_LIT(&o, "null");
    put_s(&o, e->proto == APPSRV_PROTO_LINE ? ",\"proto\":\"line\"" : ",\"proto\":\"http\"");
    put_json_view(&o, ",\"method\":", sizeof(",\"method\":") - 1,
                  e->method.len > 0 ? e->method : (appsrv_str_t){NULL, 0});
    put_json_view(&o, ",\"target\":", sizeof(",\"target\":") - 1,
                  e->target.len > 0 ? e->target : (appsrv_str_t){NULL, 0});
    PUT_LIT(&o, ",\"version\":");
    if (e->http_minor >= 0 && e->proto == APPSRV_PROTO_HTTP) {
        PUT_LIT(&o, "\"HTTP/1.");
        put_u(&o, (uint64_t)e->http_minor);
        put_c(&o, '"');
    } else {
        PUT_LIT(&o, "null");
    }
    PUT_LIT(&o, ",\"status\":");
    put_i(&o, e->status);
    PUT_LIT(&o, ",\"bytes_in\":");
    put_u(&o, e->bytes_in);
    PUT_LIT(&o, ",\"bytes_out\":");
    put_u(&o, e->bytes);
    PUT_LIT(&o, ",\"body_bytes\":");
    put_u(&o, e->body_bytes);
    PUT_LIT(&o, ",\"duration_us\":");
    put_u(&o, e->usec);
    put_json_view(&o, ",\"user_agent\":", sizeof(",\"user_agent\":") - 1, e->user_agent);
    put_json_view(&o, ",\"referer\":", sizeof(",\"referer\":") - 1, e->referer);
    put_json_view(&o, ",\"request_id\":", sizeof(",\"request_id\":") - 1,
                  e->request_id.len > 0 ? e->request_id : (appsrv_str_t){NULL, 0});
    put_json_view(&o, ",\"tls_version\":", sizeof(",\"tls_version\":") - 1,
                  e->tls_version.len > 0 ? e->tls_version : (appsrv_str_t){NULL, 0});
    put_json_view(&o, ",\"route\":", sizeof(",\"route\":") - 1, e->route);
    put_s(&o, e->aborted ? ",\"aborted\":true" : ",\"aborted\":false");
    PUT_LIT(&o, ",\"worker\":");
    put_i(&o, e->worker);
    PUT_LIT(&o, "}\n");
    return finish(&o);
}
