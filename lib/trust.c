/* SPDX-License-Identifier: MIT */
/*
 * trust.c - trusted proxies (trust.h): the CIDR list, matching, and the
 * right-to-left X-Forwarded-For walk. Pure functions; calls only libc
 * (inet_pton). Used by req.c for the client address and scheme accessors
 * and the access-log entry, and by server.c to make the list.
 */
#include "trust.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static bool is_sp(char ch)
{
    return ch == ' ' || ch == '\t';
}

static void trim(const char **p, size_t *n)
{
    while (*n > 0 && is_sp(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_sp((*p)[*n - 1]))
        (*n)--;
}

/* inet_pton over a counted string: 4 or 16 bytes into out. */
static int pton(const char *p, size_t n, uint8_t out[16])
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof(tmp))
        return 0;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    if (memchr(tmp, ':', n) == NULL)
        return inet_pton(AF_INET, tmp, out) == 1 ? 4 : 0;
    return inet_pton(AF_INET6, tmp, out) == 1 ? 16 : 0;
}

static bool parse_cidr(const char *p, size_t n, appsrv__cidr_t *c)
{
    trim(&p, &n);
    const char *slash = memchr(p, '/', n);
    size_t alen = slash != NULL ? (size_t)(slash - p) : n;
    memset(c, 0, sizeof(*c));
    int len = pton(p, alen, c->addr);
    if (len == 0)
        return false;
    c->v6 = len == 16;
    unsigned max = len * 8u, bits = max;
    if (slash != NULL) {
        const char *b = slash + 1;
        size_t bn = n - alen - 1;
        if (bn == 0 || bn > 3)
            return false;
        bits = 0;
        for (size_t i = 0; i < bn; i++) {
            if (b[i] < '0' || b[i] > '9')
                return false;
            bits = bits * 10 + (unsigned)(b[i] - '0');
        }
        if (bits > max)
            return false;
    }
    c->bits = (uint8_t)bits;
    return true;
}

int appsrv__trust_parse(const char *list, appsrv__trust_t **out)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (list == NULL)
        return -EINVAL;
    size_t n = 1;
    for (const char *q = list; *q != '\0'; q++)
        n += *q == ',';
    appsrv__trust_t *t = malloc(sizeof(*t) + n * sizeof(t->nets[0]));
    if (t == NULL)
        return -ENOMEM;
    t->n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (!parse_cidr(p, len, &t->nets[t->n])) {
            free(t);
            return -EINVAL;
        }
        t->n++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *out = t;
    return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool appsrv__trust_has(const appsrv__trust_t *t, const appsrv_addr_t *a)
{
    const uint8_t *ip;
    bool v6;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a->u.sa.sa_family == AF_INET) {
        ip = (const uint8_t *)&a->u.in4.sin_addr;
        v6 = false;
    } else if (a->u.sa.sa_family == AF_INET6) {
        ip = a->u.in6.sin6_addr.s6_addr;
        v6 = true;
        if (memcmp(ip, mapped, sizeof(mapped)) == 0) {
            ip += 12;
            v6 = false;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->nets[i].v6 == v6 && prefix_eq(ip, t->nets[i].addr, t->nets[i].bits))
            return true;
    return false;
}

bool appsrv__trust_parse_addr(const char *p, size_t n, appsrv_addr_t *out)
{
    trim(&p, &n);
    if (n > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (close == NULL)
            return false;
        size_t after = n - (size_t)(close - p) - 1;
        if (after > 0) { /* "]:port" */
            if (close[1] != ':' || after < 2 || after > 6)
                return false;
            for (size_t i = 2; i <= after; i++)
                if (close[i] < '0' || close[i] > '9')
                    return false;
        }
        n = (size_t)(close - p) - 1;
        p++;
        if (memchr(p, ':', n) == NULL)
            return false; /* brackets hold IPv6 only */
    } else {
        const char *colon = memchr(p, ':', n);
        if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - p) - 1) == NULL) {
            /* one colon: "v4:port" */
            size_t pl = n - (size_t)(colon - p) - 1;
            if (pl == 0 || pl > 5)
                return false;
            for (size_t i = 0; i < pl; i++)
                if (colon[1 + i] < '0' || colon[1 + i] > '9')
                    return false;
            n = (size_t)(colon - p);
            if (memchr(p, ':', n) != NULL)
                return false;
        }
    }
    uint8_t ip[16];
    int len = pton(p, n, ip);
    memset(out, 0, sizeof(*out));
    if (len == 4) {
        out->u.in4.sin_family = AF_INET;
        memcpy(&out->u.in4.sin_addr, ip, 4);
        out->len = sizeof(out->u.in4);
        return true;
    }
    if (len == 16) {
        out->u.in6.sin6_family = AF_INET6;
        memcpy(&out->u.in6.sin6_addr, ip, 16);
        out->len = sizeof(out->u.in6);
        return true;
    }
    return false;
}

bool appsrv__trust_walk(const appsrv__trust_t *t, const appsrv_str_t *vals, size_t nvals,
                        appsrv_addr_t *client)
{
    bool changed = false;
    if (!appsrv__trust_has(t, client))
        return false;
    for (size_t v = nvals; v-- > 0;) {
        const char *s = vals[v].ptr;
        size_t end = vals[v].len;
        for (;;) {
            size_t start = end;
            while (start > 0 && s[start - 1] != ',')
                start--;
            appsrv_addr_t a;
            if (!appsrv__trust_parse_addr(s + start, end - start, &a))
                return changed;
            *client = a;
            changed = true;
            if (!appsrv__trust_has(t, client))
                return true;
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    return changed;
}
