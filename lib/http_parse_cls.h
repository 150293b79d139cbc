/* SPDX-License-Identifier: MIT */
/*
 * http_parse_cls.h - the byte classes of the HTTP/1.1 grammar (RFC 9110,
 * 9112, 3986) as one lookup table, shared by the head parser
 * (http_parse.c, which defines it) and the chunked decoder
 * (http_parse_chunked.c). Private to those two.
 */
#ifndef APPSRV_HTTP_PARSE_CLS_H
#define APPSRV_HTTP_PARSE_CLS_H

#include <stdint.h>

enum {
    CL_TCHAR = 1 << 0,  /* token (RFC 9110 §5.6.2) */
    CL_PATH = 1 << 1,   /* path run: VCHAR but '?', '#' and '%' */
    CL_QUERY = 1 << 2,  /* query run: VCHAR but '#' */
    CL_AUTH = 1 << 3,   /* authority without '%': host, port; no userinfo '@' */
    CL_VCHAR = 1 << 4,  /* field-vchar: VCHAR / obs-text */
    CL_WS = 1 << 5,     /* SP / HTAB */
    CL_HEX = 1 << 6,    /* HEXDIG */
    CL_SCHEME = 1 << 7, /* ALPHA / DIGIT / "+" / "-" / "." */
    CL_HOST = 1 << 8,   /* Host value: uri-host [":" port], '%' included */
    CL_FRAG = 1 << 9,   /* fragment run: any VCHAR */
};

extern const uint16_t appsrv__http_cls[256];

/* The value of a byte already known to be HEXDIG. */
static inline unsigned appsrv__hexval(unsigned c)
{
    return (c & 0xf) + (c >> 6) * 9;
}

#endif /* APPSRV_HTTP_PARSE_CLS_H */
