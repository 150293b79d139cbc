/* SPDX-License-Identifier: MIT */
/*
 * http_parse.c - the strict HTTP/1.1 request-head parser (the chunked
 * body decoder is http_parse_chunked.c; contract in http_parse.h; the
 * byte classes both use are defined here). Both are byte-at-a-time state
 * machines whose whole state lives in the caller's zeroed struct, so a
 * resumed call starts at h->pos (or the next unconsumed byte) and the result
 * never depends on how the input was split: the first offending byte, in
 * input order, decides the error. Hot runs (target, names, values) are
 * skipped with class-table loops. Called by the connection code, the tests
 * and the fuzz drivers; calls nothing but itself. Never reads buf[len].
 */
#include "http_parse.h"

#include "http_parse_cls.h"

#include <limits.h>

/* ------------------------------------------------------ character classes */

/*
 * Request-target bytes: RFC 3986's pchar (§3.3) and query (§3.4) leave out
 * '"', '<', '>', '\', '^', '`', '{', '|', '}' (and '[', ']' in a path),
 * which real clients send unencoded; like llhttp and nginx we take every
 * visible US-ASCII byte (VCHAR, RFC 5234 B.1). Anything that could end or
 * bend the request line (CTLs, SP inside, DEL) stays refused, and so do
 * bytes >= 0x80: a URI is US-ASCII (RFC 3986 §2; RFC 9112 §3.2 has no
 * obs-text in the request-target).
 */

#define IS_ALPHA_(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT_(c) ((c) >= '0' && (c) <= '9')
#define IS_UNRESERVED_(c)                                                                          \
    (IS_ALPHA_(c) || IS_DIGIT_(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~')
#define IS_SUBDELIM_(c)                                                                            \
    ((c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||          \
     (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=')
#define IS_TCHAR_(c)                                                                               \
    (IS_ALPHA_(c) || IS_DIGIT_(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||       \
     (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||          \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_AUTH_(c)   (IS_UNRESERVED_(c) || IS_SUBDELIM_(c) || (c) == ':' || (c) == '[' || (c) == ']')
#define IS_AVCHAR_(c) ((c) > 0x20 && (c) < 0x7f) /* US-ASCII VCHAR */
#define IS_HEX_(c)    (IS_DIGIT_(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))

#define CLASS_(c)                                                                                  \
    ((IS_TCHAR_(c) ? CL_TCHAR : 0) |                                                               \
     (IS_AVCHAR_(c) && (c) != '?' && (c) != '#' && (c) != '%' ? CL_PATH : 0) |                     \
     (IS_AVCHAR_(c) && (c) != '#' ? CL_QUERY : 0) | (IS_AVCHAR_(c) ? CL_FRAG : 0) |                \
     (IS_AUTH_(c) ? CL_AUTH : 0) | (((c) > 0x20 && (c) != 0x7f) ? CL_VCHAR : 0) |                  \
     (((c) == ' ' || (c) == '\t') ? CL_WS : 0) | (IS_HEX_(c) ? CL_HEX : 0) |                       \
     ((IS_ALPHA_(c) || IS_DIGIT_(c) || (c) == '+' || (c) == '-' || (c) == '.') ? CL_SCHEME : 0) |  \
     ((IS_UNRESERVED_(c) || IS_SUBDELIM_(c) || (c) == ':' || (c) == '[' || (c) == ']' ||           \
       (c) == '%')                                                                                 \
          ? CL_HOST                                                                                \
          : 0))
#define R4_(n)  CLASS_(n), CLASS_((n) + 1), CLASS_((n) + 2), CLASS_((n) + 3)
#define R16_(n) R4_(n), R4_((n) + 4), R4_((n) + 8), R4_((n) + 12)
#define R64_(n) R16_(n), R16_((n) + 16), R16_((n) + 32), R16_((n) + 48)

const uint16_t appsrv__http_cls[256] = {R64_(0), R64_(64), R64_(128), R64_(192)};
#define cls appsrv__http_cls

static unsigned lower(unsigned c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Case-insensitive compare of n wire bytes with a lowercase literal. */
static bool ieq(const unsigned char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

static bool eq(const unsigned char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != (unsigned char)lit[i])
            return false;
    return true;
}

/* ------------------------------------------------------------ head parser */

/* Positions are uint32_t and the result an int: cap the head there. */
#define HEAD_CAP ((size_t)INT_MAX)

enum {
    S_START = 0, /* request line or a leading CRLF (RFC 9112 §2.2) */
    S_START_LF,
    S_METHOD,
    /* request-target stages, contiguous: max_target applies to them */
    S_TARGET_START,
    S_ASTERISK,
    S_SCHEME,
    S_SLASH1,
    S_SLASH2,
    S_AUTH_FIRST,
    S_AUTH,
    S_PATH,
    S_QUERY,
    S_FRAGMENT, /* read and dropped: not part of the target URI */
    /* end of the target stages */
    S_VERSION, /* sub counts the "HTTP/" bytes matched */
    S_V_MAJOR,
    S_V_DOT,
    S_V_MINOR,
    S_RL_CR,
    S_RL_LF,
    S_H_START,
    S_H_NAME,
    S_H_OWS,
    S_H_VALUE,
    S_H_LF,
    S_END_LF,
    S_DONE,
    S_FAILED,
};

/* A comma-separated list element iterator over a trimmed field value. */
typedef struct list_it {
    const unsigned char *s;
    size_t i, n;
} list_it_t;

/*
 * Next non-empty element of a #token list (RFC 9110 §5.6.1: empty elements
 * are ignored). Returns 1 with the token in *tok, *tlen and, in *next, the
 * byte after it and its OWS (',' or ';' or the end); 0 at the end.
 * Returns -1 when an element does not start with a token or the token is
 * followed by something other than OWS and ',' / ';'.
 */
static int list_next(list_it_t *it, const unsigned char **tok, size_t *tlen, unsigned *next)
{
    size_t i = it->i, start;

    while (i < it->n && (it->s[i] == ',' || (cls[it->s[i]] & CL_WS)))
        i++;
    if (i == it->n) {
        it->i = i;
        return 0;
    }
    start = i;
    while (i < it->n && (cls[it->s[i]] & CL_TCHAR))
        i++;
    if (i == start)
        return -1;
    *tok = it->s + start;
    *tlen = i - start;
    while (i < it->n && (cls[it->s[i]] & CL_WS))
        i++;
    *next = i < it->n ? it->s[i] : 0;
    if (*next != 0 && *next != ',' && *next != ';')
        return -1;
    it->i = i;
    return 1;
}

/* RFC 9110 §8.6: 1*DIGIT; several fields must agree (RFC 9112 §6.3 p5). */
static int on_content_length(appsrv__http_head_t *h, const unsigned char *v, size_t n)
{
    uint64_t x = 0;

    if (n == 0)
        return 400;
    for (size_t i = 0; i < n; i++) {
        unsigned d = v[i] - '0';
        if (d > 9)
            return 400; /* sign, inner space, comma list, "0x" */
        if (x > ((uint64_t)INT64_MAX - d) / 10)
            return 400;
        x = x * 10 + d;
    }
    /* RFC 9112 §6.3 p3: CL with TE is a smuggling vector: reject. */
    if (h->is_chunked)
        return 400;
    if (h->has_content_length && x != h->content_length)
        return 400;
    h->content_length = x;
    h->has_content_length = true;
    return 0;
}

/*
 * RFC 9112 §6.1: the codings apply in order and chunked must be the final
 * one, once; we implement no other coding (501). Lists may span fields.
 */
static int on_transfer_encoding(appsrv__http_head_t *h, const unsigned char *v, size_t n)
{
    list_it_t it = {v, 0, n};
    const unsigned char *tok;
    size_t tlen;
    unsigned next;
    int r, nelem = 0;

    if (h->minor == 0)
        return 400; /* RFC 9112 §6.1: TE in HTTP/1.0 is a smuggling sign */
    if (h->has_content_length)
        return 400;
    while ((r = list_next(&it, &tok, &tlen, &next)) > 0) {
        bool is_chunked = tlen == 7 && ieq(tok, "chunked", 7);
        nelem++;
        if (h->is_chunked)
            return 400; /* a coding after chunked, or chunked twice */
        if (!is_chunked)
            return 501;
        if (next == ';')
            return 400; /* chunked takes no parameters */
        h->is_chunked = true;
        if (next == ',')
            it.i++;
    }
    if (r < 0 || nelem == 0)
        return 400;
    return 0;
}

static int on_connection(appsrv__http_head_t *h, const unsigned char *v, size_t n)
{
    list_it_t it = {v, 0, n};
    const unsigned char *tok;
    size_t tlen;
    unsigned next;
    int r;

    while ((r = list_next(&it, &tok, &tlen, &next)) > 0) {
        if (next == ';')
            return 400; /* connection-option = token */
        if (tlen == 5 && ieq(tok, "close", 5))
            h->conn_close = true;
        else if (tlen == 10 && ieq(tok, "keep-alive", 10))
            h->conn_keep_alive = true;
        if (next == ',')
            it.i++;
    }
    return r < 0 ? 400 : 0;
}

/* RFC 9112 §3.2: more than one Host, or an invalid one, gets 400. */
static int on_host(appsrv__http_head_t *h, const unsigned char *v, size_t n)
{
    if (h->host_count++)
        return 400;
    for (size_t i = 0; i < n; i++)
        if (!(cls[v[i]] & CL_HOST))
            return 400;
    return 0;
}

/* A complete field line sits in hdrs[nhdrs]: apply the framing rules. */
static int on_field(appsrv__http_head_t *h, const unsigned char *b)
{
    const appsrv__hdr_t *f = &h->hdrs[h->nhdrs];
    const unsigned char *name = b + f->name.off, *v = b + f->value.off;
    size_t n = f->value.len;

    switch (f->name.len) {
    case 4:
        if (ieq(name, "host", 4))
            return on_host(h, v, n);
        break;
    case 6:
        if (ieq(name, "expect", 6)) {
            /* RFC 9110 §10.1.1: the only expectation is 100-continue,
             * and an HTTP/1.0 server must ignore it. */
            if (n != 12 || !ieq(v, "100-continue", 12))
                return 417;
            if (h->minor)
                h->expect_continue = true;
        }
        break;
    case 10:
        if (ieq(name, "connection", 10))
            return on_connection(h, v, n);
        break;
    case 14:
        if (ieq(name, "content-length", 14))
            return on_content_length(h, v, n);
        break;
    case 17:
        if (ieq(name, "transfer-encoding", 17))
            return on_transfer_encoding(h, v, n);
        break;
    default:
        break;
    }
    return 0;
}

int appsrv__http_parse_head(appsrv__http_head_t *h, const char *buf, size_t len,
                            const appsrv__http_limits_t *lim)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t max_head = lim->max_head < HEAD_CAP ? lim->max_head : HEAD_CAP;
    size_t end = len < max_head ? len : max_head;
    size_t p = h->pos;
    /* Locals, not h->: stores through h->hdrs would force reloads. */
    unsigned stage = h->stage, sub = h->sub;
    appsrv__hdr_t *f;
    int st;

    if (stage == S_DONE)
        return (int)h->pos;
    if (stage == S_FAILED)
        return -(int)h->status;

    while (p < end) {
        unsigned c = b[p];

        /* The target is bounded while it arrives, not when its line ends. */
        if (stage >= S_TARGET_START && stage <= S_FRAGMENT && c != ' ' &&
            p - h->target.off >= lim->max_target) {
            st = 414;
            goto fail;
        }

        switch (stage) {
        case S_START:
            if (c == '\r') {
                stage = S_START_LF;
                break;
            }
            if (!(cls[c] & CL_TCHAR))
                goto bad;
            h->head_start = h->method.off = (uint32_t)p;
            stage = S_METHOD;
            break;

        case S_START_LF:
            if (c != '\n')
                goto bad;
            stage = S_START;
            break;

        case S_METHOD:
            if (cls[c] & CL_TCHAR)
                break;
            if (c != ' ')
                goto bad;
            h->method.len = (uint32_t)(p - h->method.off);
            if (h->method.len == 7 && eq(b + h->method.off, "CONNECT", 7)) {
                st = 501; /* authority-form tunnels are not served */
                goto fail;
            }
            h->target.off = (uint32_t)(p + 1);
            stage = S_TARGET_START;
            break;

        case S_TARGET_START:
            if (c == '/') {
                h->target_form = APPSRV__TARGET_ORIGIN;
                h->path.off = (uint32_t)p;
                stage = S_PATH;
            } else if (c == '*') {
                /* RFC 9112 §3.2.4: asterisk-form is for OPTIONS only. */
                if (h->method.len != 7 || !eq(b + h->method.off, "OPTIONS", 7))
                    goto bad;
                h->target_form = APPSRV__TARGET_ASTERISK;
                stage = S_ASTERISK;
            } else if (IS_ALPHA_(c)) {
                h->target_form = APPSRV__TARGET_ABSOLUTE;
                stage = S_SCHEME;
            } else {
                goto bad;
            }
            break;

        case S_ASTERISK:
            if (c != ' ')
                goto bad;
            h->path = (appsrv__span_t){h->target.off, 1};
            goto target_done;

        case S_SCHEME: {
            size_t n = p - h->target.off;

            /* RFC 3986 §3.1 scheme, but only "http" and "https" (RFC 9110
             * §4.2, case-insensitive) name an origin server's resource. */
            if (cls[c] & CL_SCHEME) {
                if (n >= 5)
                    goto bad; /* longer than "https" */
                break;
            }
            if (c != ':' || !((n == 4 && ieq(b + h->target.off, "http", 4)) ||
                              (n == 5 && ieq(b + h->target.off, "https", 5))))
                goto bad;
            stage = S_SLASH1;
            break;
        }

        case S_SLASH1:
        case S_SLASH2:
            if (c != '/')
                goto bad;
            if (stage++ == S_SLASH2)
                h->authority.off = (uint32_t)(p + 1);
            break;

        case S_AUTH_FIRST:
        case S_AUTH:
            if (sub) {
                if (!(cls[c] & CL_HEX))
                    goto bad;
                sub--;
                break;
            }
            if (c == '%') {
                sub = 2;
            } else if (!(cls[c] & CL_AUTH)) {
                /* RFC 9110 §4.2.1: an http URI with an empty host is
                 * invalid; §4.2.4: userinfo ('@' is not CL_AUTH) is an
                 * error. */
                if (stage == S_AUTH_FIRST)
                    goto bad;
                h->authority.len = (uint32_t)(p - h->authority.off);
                if (c == '/') {
                    h->path.off = (uint32_t)p;
                    stage = S_PATH;
                    break;
                }
                /* RFC 9112 §3.2.1: an empty path is "/"; the one before
                 * the authority says so without a copy. */
                h->path = (appsrv__span_t){h->authority.off - 1, 1};
                if (c == '?') {
                    h->has_query = true;
                    h->query.off = (uint32_t)(p + 1);
                    stage = S_QUERY;
                    break;
                }
                if (c == '#') {
                    h->target.len = (uint32_t)(p - h->target.off);
                    stage = S_FRAGMENT;
                    break;
                }
                if (c != ' ')
                    goto bad;
                goto target_done;
            }
            stage = S_AUTH;
            break;

        case S_PATH:
        case S_QUERY:
        case S_FRAGMENT: {
            unsigned run = stage == S_PATH ? CL_PATH : stage == S_QUERY ? CL_QUERY : CL_FRAG;
            size_t seen = p - h->target.off, q = p, stop = end;

            if (sub) {
                if (!(cls[c] & CL_HEX))
                    goto bad;
                sub--;
                break;
            }
            if (lim->max_target - seen < stop - p)
                stop = p + (lim->max_target - seen);
            while (q < stop && (cls[b[q]] & run))
                q++;
            if (q != p) {
                p = q;
                continue;
            }
            /* Past the run: '%' and '?' come from the path only (the
             * query's run takes them), '#' from the path or the query. */
            if (c == '%') {
                /* RFC 3986 §2.1 pct-encoded: checked in the path (routes
                 * and captures are path bytes), not in the query, whose
                 * parameters the application decodes and judges. */
                sub = 2;
            } else if (c == '?') {
                h->path.len = (uint32_t)(p - h->path.off);
                h->has_query = true;
                h->query.off = (uint32_t)(p + 1);
                stage = S_QUERY;
            } else if (c == '#' || c == ' ') {
                if (stage == S_PATH)
                    h->path.len = (uint32_t)(p - h->path.off);
                else if (stage == S_QUERY)
                    h->query.len = (uint32_t)(p - h->query.off);
                if (c == ' ')
                    goto target_done;
                /* RFC 9110 §7.1: the fragment is not part of the target
                 * URI (RFC 9112 §3.2 has none): the target ends here and
                 * the rest is read, checked and dropped. */
                h->target.len = (uint32_t)(p - h->target.off);
                stage = S_FRAGMENT;
            } else {
                goto bad; /* CTL, DEL, >= 0x80 */
            }
            break;
        }

        target_done:
            if (stage != S_FRAGMENT)
                h->target.len = (uint32_t)(p - h->target.off);
            sub = 0;
            stage = S_VERSION;
            break;

        case S_VERSION:
            /* RFC 9112 §2.3: HTTP-name is case-sensitive. */
            if (c != (unsigned char)"HTTP/"[sub])
                goto bad;
            if (++sub == 5)
                stage = S_V_MAJOR;
            break;

        case S_V_MAJOR:
            if (!IS_DIGIT_(c))
                goto bad;
            h->major = (uint8_t)(c - '0');
            stage = S_V_DOT;
            break;

        case S_V_DOT:
            if (c != '.')
                goto bad;
            stage = S_V_MINOR;
            break;

        case S_V_MINOR:
            if (!IS_DIGIT_(c))
                goto bad;
            /* RFC 9110 §6.2: a higher 1.x minor is served as 1.1. */
            h->minor = c == '0' ? 0 : 1;
            stage = S_RL_CR;
            break;

        case S_RL_CR:
            if (c != '\r')
                goto bad;
            stage = S_RL_LF;
            break;

        case S_RL_LF:
            if (c != '\n')
                goto bad;
            if (h->major != 1) {
                st = 505;
                goto fail;
            }
            h->line_start = (uint32_t)(p + 1);
            stage = S_H_START;
            break;

        case S_H_START:
            if (c == '\r') {
                stage = S_END_LF;
                break;
            }
            /* A leading SP/HTAB is obs-fold (RFC 9112 §5.2) or, on the
             * first line, whitespace after the start line (§2.2): 400. */
            if (!(cls[c] & CL_TCHAR))
                goto bad;
            if (h->nhdrs >= lim->max_headers) {
                st = 431;
                goto fail;
            }
            f = &h->hdrs[h->nhdrs];
            f->name = (appsrv__span_t){(uint32_t)p, 0};
            f->value = (appsrv__span_t){0, 0};
            stage = S_H_NAME;
            break;

        case S_H_NAME: {
            size_t q = p;

            while (q < end && (cls[b[q]] & CL_TCHAR))
                q++;
            if (q != p) {
                p = q;
                continue;
            }
            if (c != ':')
                goto bad; /* RFC 9112 §5.1: no whitespace before ':' */
            f = &h->hdrs[h->nhdrs];
            f->name.len = (uint32_t)(p - f->name.off);
            stage = S_H_OWS;
            break;
        }

        case S_H_OWS:
            if (cls[c] & CL_WS)
                break;
            f = &h->hdrs[h->nhdrs];
            f->value.off = (uint32_t)p;
            if (c == '\r') {
                stage = S_H_LF;
                break;
            }
            if (!(cls[c] & CL_VCHAR))
                goto bad;
            stage = S_H_VALUE;
            continue; /* the value loop takes this byte */

        case S_H_VALUE: {
            size_t q = p, e;

            while (q < end && (cls[b[q]] & (CL_VCHAR | CL_WS)))
                q++;
            if (q != p) {
                /* Trim back to this run's start only, so a value fed in
                 * pieces is still scanned once; a run of OWS alone keeps
                 * the length found so far. */
                for (e = q; e > p && (cls[b[e - 1]] & CL_WS); e--)
                    continue;
                if (e > p) {
                    f = &h->hdrs[h->nhdrs];
                    f->value.len = (uint32_t)(e - f->value.off);
                }
                p = q;
                continue;
            }
            if (c != '\r')
                goto bad; /* NUL, bare LF, other CTLs, DEL */
            stage = S_H_LF;
            break;
        }

        case S_H_LF:
            if (c != '\n')
                goto bad; /* bare CR */
            if ((st = on_field(h, b)) != 0)
                goto fail;
            h->nhdrs++;
            h->line_start = (uint32_t)(p + 1);
            stage = S_H_START;
            break;

        case S_END_LF:
            if (c != '\n')
                goto bad;
            /* RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host
             * (a second one was refused when it arrived). */
            if (h->minor == 1 && h->host_count != 1)
                goto bad;
            h->pos = (uint32_t)(p + 1);
            h->stage = S_DONE;
            return (int)(p + 1);

        default:
            goto bad; /* unreachable: S_DONE and S_FAILED returned above */
        }
        p++;
    }
    h->pos = (uint32_t)p;
    h->stage = (uint8_t)stage;
    h->sub = (uint8_t)sub;
    if (len > max_head) {
        st = 431; /* byte max_head + 1 arrived and the head is not over */
        goto fail;
    }
    return APPSRV__AGAIN;

bad:
    st = 400;
fail:
    h->pos = (uint32_t)p;
    h->stage = S_FAILED;
    h->status = (uint16_t)st;
    return -st;
}
