/* SPDX-License-Identifier: MIT */
/*
 * cookie.c - cookies (RFC 6265): finding one in Cookie fields (§5.4,
 * §4.2.1) and building a validated Set-Cookie value (§4.1). Reads the
 * request's header fields (req.h) and adds the header through
 * appsrv_res_add_header(); otherwise pure, no allocation.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "req.h"
#include "res.h"

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* cookie-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E */
static bool is_cookie_octet(unsigned char ch)
{
    return ch >= 0x21 && ch <= 0x7e && ch != '"' && ch != ',' && ch != ';' && ch != '\\';
}

appsrv_str_t appsrv_cookie_get(appsrv_str_t header, const char *name)
{
    appsrv_str_t none = {NULL, 0};
    if (header.ptr == NULL || name == NULL)
        return none;
    size_t nl = strlen(name);
    const char *p = header.ptr, *end = p + header.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
            p++;
        const char *pair = p;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi != NULL ? semi : end;
        p = pe;
        const char *eq = memchr(pair, '=', (size_t)(pe - pair));
        if (eq == NULL)
            continue; /* §5.2: a pair without '=' is ignored */
        const char *ne = eq;
        while (ne > pair && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        if ((size_t)(ne - pair) != nl || memcmp(pair, name, nl) != 0)
            continue;
        const char *v = eq + 1, *ve = pe;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (ve - v >= 2 && *v == '"' && ve[-1] == '"')
            v++, ve--;
        return (appsrv_str_t){v, (size_t)(ve - v)};
    }
    return none;
}

appsrv_str_t appsrv_req_cookie(const appsrv_req_t *req, const char *name)
{
    for (uint32_t i = 0; i < req->nhdrs; i++) {
        const appsrv__hdr_t *h = &req->hdrs[i];
        if (!appsrv__ieq(req->base + h->name.off, h->name.len, "cookie", 6))
            continue;
        appsrv_str_t v = appsrv_cookie_get(
            (appsrv_str_t){req->base + h->value.off, h->value.len}, name);
        if (v.ptr != NULL)
            return v;
    }
    return (appsrv_str_t){NULL, 0};
}

static bool valid_value(const char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
        v++, n -= 2;
    for (size_t i = 0; i < n; i++)
        if (!is_cookie_octet((unsigned char)v[i]))
            return false;
    return true;
}

/* av-octet: any CHAR except CTLs or ';' (§4.1.1). */
static bool valid_av(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch >= 0x7f || ch == ';')
            return false;
    }
    return true;
}

/* A host name for Domain: labels of letters, digits and '-', dots
 * between; one leading dot tolerated (§5.2.3 ignores it). */
static bool valid_domain(const char *s)
{
    if (*s == '.')
        s++;
    if (*s == '\0')
        return false;
    size_t label = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= 'A' && ch <= 'Z') || ch == '-') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

typedef struct out {
    char *buf;
    size_t cap, len;
    bool full;
} out_t;

static void add(out_t *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->full = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void adds(out_t *o, const char *s)
{
    add(o, s, strlen(s));
}

int appsrv_cookie_format(const appsrv_cookie_t *c, char *buf, size_t cap)
{
    if (c == NULL || buf == NULL || cap == 0 || c->name == NULL || c->name[0] == '\0')
        return -EINVAL;
    buf[0] = '\0';
    for (const char *s = c->name; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return -EINVAL;
    const char *value = c->value != NULL ? c->value : "";
    if (!valid_value(value))
        return -EINVAL;
    if ((c->path != NULL && !valid_av(c->path)) ||
        (c->domain != NULL && !valid_domain(c->domain)))
        return -EINVAL;
    if (c->same_site < APPSRV_SAMESITE_UNSET || c->same_site > APPSRV_SAMESITE_NONE)
        return -EINVAL;
    if (c->same_site == APPSRV_SAMESITE_NONE && !c->secure)
        return -EINVAL; /* browsers refuse SameSite=None without Secure */
    out_t o = {.buf = buf, .cap = cap};
    adds(&o, c->name);
    adds(&o, "=");
    adds(&o, value);
    char num[64];
    if (c->max_age != 0) {
        snprintf(num, sizeof(num), "; Max-Age=%" PRId64, c->max_age > 0 ? c->max_age : 0);
        adds(&o, num);
    }
    if (c->expires > 0) {
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char mons[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        time_t t = (time_t)c->expires;
        struct tm tm;
        if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999)
            return -EINVAL;
        snprintf(num, sizeof(num), "; Expires=%s, %02d %s %04d %02d:%02d:%02d GMT",
                 days[tm.tm_wday], tm.tm_mday, mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
        adds(&o, num);
    }
    if (c->domain != NULL) {
        adds(&o, "; Domain=");
        adds(&o, c->domain);
    }
    if (c->path != NULL) {
        adds(&o, "; Path=");
        adds(&o, c->path);
    }
    if (c->secure)
        adds(&o, "; Secure");
    if (c->http_only)
        adds(&o, "; HttpOnly");
    static const char *const ss[] = {NULL, "; SameSite=Strict", "; SameSite=Lax",
                                     "; SameSite=None"};
    if (c->same_site != APPSRV_SAMESITE_UNSET)
        adds(&o, ss[c->same_site]);
    if (o.full) {
        buf[0] = '\0';
        return -ENOSPC;
    }
    return (int)o.len;
}

int appsrv_res_set_cookie(appsrv_res_t *res, const appsrv_cookie_t *c)
{
    char buf[4096 + 512];
    int n = appsrv_cookie_format(c, buf, sizeof(buf));
    if (n < 0)
        return n;
    return appsrv_res_add_header(res, "Set-Cookie", buf);
}
