/* SPDX-License-Identifier: MIT */
/*
 * accept.c - the Accept-Encoding parser (RFC 9110 §12.5.3): walks the
 * list once, tracking the best qvalue given to gzip (or its alias x-gzip)
 * and to "*". Owns nothing and calls nothing but common.h's compare; a
 * leaf of lib/DEPS. Grammar (RFC 9110 §5.6.1, §5.6.2, §12.4.2):
 *   Accept-Encoding = #( codings [ weight ] )
 *   weight          = OWS ";" OWS "q=" qvalue
 *   qvalue          = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
 */
#include "accept.h"

#include "common.h"

/* tchar of RFC 9110 §5.6.2. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

static size_t skip_ows(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* Parses a qvalue at s[*i..len) into thousandths (0..1000); false when it
 * does not follow the grammar. */
static bool parse_qvalue(const char *s, size_t len, size_t *i, int *out)
{
    size_t p = *i;
    if (p >= len || (s[p] != '0' && s[p] != '1'))
        return false;
    int whole = s[p++] - '0';
    int frac = 0, digits = 0;
    if (p < len && s[p] == '.') {
        p++;
        while (p < len && s[p] >= '0' && s[p] <= '9') {
            if (++digits > 3)
                return false;
            frac = frac * 10 + (s[p++] - '0');
        }
    }
    while (digits++ < 3)
        frac *= 10;
    if (whole == 1 && frac != 0)
        return false;
    *out = whole * 1000 + frac;
    *i = p;
    return true;
}

bool appsrv__accepts_gzip(const char *value, size_t len)
{
    if (value == NULL)
        return false;
    int gzip_q = -1, star_q = -1; /* -1: not listed */
    size_t i = 0;
    for (;;) {
        i = skip_ows(value, len, i);
        if (i == len)
            break;
        if (value[i] == ',') { /* empty list member (RFC 9110 §5.6.1.2) */
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && is_tchar((unsigned char)value[i]))
            i++;
        if (i == start)
            return false;
        const char *name = value + start;
        size_t nlen = i - start;
        int q = 1000;
        i = skip_ows(value, len, i);
        if (i < len && value[i] == ';') {
            i = skip_ows(value, len, i + 1);
            if (len - i < 2 || (value[i] != 'q' && value[i] != 'Q') || value[i + 1] != '=')
                return false;
            i += 2;
            if (!parse_qvalue(value, len, &i, &q))
                return false;
            i = skip_ows(value, len, i);
        }
        if (i < len && value[i] != ',')
            return false;
        if (appsrv__ieq(name, nlen, "gzip", 4) || appsrv__ieq(name, nlen, "x-gzip", 6)) {
            if (q > gzip_q)
                gzip_q = q;
        } else if (nlen == 1 && name[0] == '*') {
            if (q > star_q)
                star_q = q;
        }
    }
    if (gzip_q >= 0)
        return gzip_q > 0;
    return star_q > 0;
}
