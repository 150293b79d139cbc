/* SPDX-License-Identifier: MIT */
/*
 * http_parse.h - private contract of the HTTP/1.1 request-head parser and
 * the chunked body decoder (http_parse.c). Pure functions over
 * (state, buf, len): no I/O, no allocation, no globals. Positions are byte
 * offsets from the start of the buffer passed in, so the caller may move
 * the buffer between calls only if it keeps the bytes at the same offsets.
 */
#ifndef APPSRV_HTTP_PARSE_H
#define APPSRV_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "Need more bytes". Every other negative result is -(HTTP status). */
#define APPSRV__AGAIN (-1)

/* A view as offsets into the parsed buffer. */
typedef struct appsrv__span {
    uint32_t off;
    uint32_t len;
} appsrv__span_t;

typedef struct appsrv__hdr {
    appsrv__span_t name;
    appsrv__span_t value; /* leading and trailing SP/HTAB trimmed */
} appsrv__hdr_t;

typedef struct appsrv__http_limits {
    size_t max_head;    /* request line + headers + final CRLF; over → -431 */
    size_t max_target;  /* request-target length; over → -414 */
    size_t max_headers; /* header field lines; over → -431 */
} appsrv__http_limits_t;

/*
 * Target form (RFC 9112 §3.2). Path, query and fragment may hold any
 * visible ASCII byte (0x21-0x7E), wider than RFC 3986's pchar as llhttp
 * and nginx are: '"', '<', '>', '\', '^', '`', '{', '|', '}', '[', ']'.
 * Controls, SP inside, DEL and bytes >= 0x80 are refused.
 */
enum {
    APPSRV__TARGET_ORIGIN = 0,   /* "/path?query#fragment" */
    APPSRV__TARGET_ABSOLUTE = 1, /* "http[s]://host[:port]/path?query#fragment" */
    APPSRV__TARGET_ASTERISK = 2, /* "*" (OPTIONS only) */
};

/*
 * Parser state and result. Zero it before the first call for each request,
 * then set hdrs: it must point to max_headers slots (it may be NULL when
 * max_headers is 0). The slot after the last complete field may be written
 * while a line is in progress.
 */
typedef struct appsrv__http_head {
    /* set by the caller */
    appsrv__hdr_t *hdrs;

    /* results, valid once appsrv__http_parse_head() returned > 0 */
    appsrv__span_t method;
    appsrv__span_t target; /* as sent, without a "#fragment" (RFC 9110
                              §7.1: not part of the target URI) */
    appsrv__span_t path;   /* from the path's first '/' up to '?', '#' or
                              the end; "*" for asterisk-form; for an
                              absolute-form URI with an empty path, the
                              "/" before its authority (RFC 9112 §3.2.1:
                              an empty path is "/") */
    appsrv__span_t query;  /* after '?', without it, up to '#' or the
                              end; .len 0 if none. %-escapes unchecked */
    bool has_query;        /* a '?' was present */
    uint8_t target_form;
    appsrv__span_t authority; /* absolute-form: host[:port] after "//"; it
                                 replaces Host (RFC 9112 §3.2.2); else len 0 */
    uint8_t minor;         /* 0 or 1 (1.x with x > 1 is reported as 1) */
    uint32_t nhdrs;
    uint64_t content_length;
    bool has_content_length;
    bool is_chunked;       /* Transfer-Encoding: chunked (final, only coding) */
    bool expect_continue;  /* Expect: 100-continue (HTTP/1.1 only) */
    bool conn_close;       /* Connection: close present */
    bool conn_keep_alive;  /* Connection: keep-alive present */

    /* private incremental state */
    uint32_t pos;        /* bytes already examined */
    uint32_t line_start; /* start of the line being scanned */
    uint32_t head_start; /* start of the request line (after leading CRLFs) */
    uint8_t stage;
    uint8_t host_count;
    uint8_t sub;         /* "HTTP/" bytes matched, or %-escape digits due */
    uint8_t major;       /* HTTP major version digit */
    uint16_t status;     /* the error returned again after a failure */
} appsrv__http_head_t;

/*
 * Parses the request head in buf[0..len). Call again with the same state
 * and a longer buf (same prefix) when more bytes arrive; work already done
 * is not repeated, so a head fed one byte at a time costs O(len) in all.
 *
 * Returns:
 *   > 0            the head is complete; the value is its length including
 *                  the blank line (the body, if any, starts there);
 *   APPSRV__AGAIN  need more bytes (and nothing wrong so far);
 *   -400  malformed request line, header line, bare CR or LF, NUL or other
 *         control bytes, obs-fold, whitespace before ':', bad or differing
 *         Content-Length, CL with TE, chunked not final or repeated, TE in
 *         HTTP/1.0, HTTP/1.1 without a Host, more than one Host (any
 *         version; absolute-form too), a Host value that is not
 *         uri-host[:port], a bad %-escape in the path or the authority
 *         (not in the query or fragment), a target byte outside 0x21-0x7E,
 *         asterisk-form with a method other than OPTIONS, absolute-form
 *         with a scheme other than http or https (any case), with
 *         userinfo or with an empty host;
 *   -414  request-target longer than max_target;
 *   -431  head longer than max_head, or more than max_headers fields;
 *   -501  a transfer coding other than chunked; the CONNECT method;
 *   -505  HTTP major version other than 1;
 *   -417  an Expect value other than 100-continue.
 * Leading CRLFs before the request line are skipped (RFC 9112 §2.2).
 * The first offending byte in input order decides the error, so the result
 * is the same however the input is split: a field's meaning (Content-Length,
 * Transfer-Encoding, Host, Expect, Connection) is judged at its line's LF,
 * the version (505) at the request line's LF, CONNECT (501) at the SP after
 * the method, a missing Host at the final LF. 414 is returned as soon as a
 * target byte past max_target arrives, 431 as soon as byte max_head + 1
 * arrives before the head is complete. Once a call returned > 0 or an
 * error, further calls return the same value without reading buf.
 */
int appsrv__http_parse_head(appsrv__http_head_t *h, const char *buf, size_t len,
                            const appsrv__http_limits_t *lim);

/* Chunked decoder state; zero it before the body. */
typedef struct appsrv__chunked {
    uint64_t remaining;    /* data bytes left in the current chunk */
    uint32_t trailer_bytes; /* trailer field-line bytes so far */
    uint32_t overhead;     /* extension and leading-zero bytes so far */
    uint8_t stage;
    uint8_t size_digits;
    bool done;             /* the last chunk and trailers were consumed */
} appsrv__chunked_t;

/*
 * Decodes chunked framing from buf[0..len). Returns the number of bytes
 * consumed (>= 0); *data_len tells how many of those, at the front, are
 * body data (0 when the call consumed framing only). A call consumes
 * either framing or one run of data, never both, so the caller loops:
 *
 *     while (len && !c.done) {
 *         n = appsrv__chunked_parse(&c, buf, len, max_trailer, &dlen);
 *         if (n < 0) error(-n);
 *         if (dlen) append(buf, dlen);
 *         buf += n; len -= n;
 *     }
 *
 * Framing bytes are always consumed, even when a line is incomplete (the
 * state remembers it), so the loop above makes progress with any split.
 *
 * Errors: -400 (non-hex size, size of 2^63 or more, bad extension, over
 * 16 KiB of extensions and redundant leading zeros over the whole body,
 * missing CRLF after data, bad trailer line, bare CR/LF), -431 (trailer
 * field lines, CRLFs included, over max_trailer bytes; the final empty
 * line does not count, so max_trailer 0 still accepts "0\r\n\r\n").
 * Once done is set, it consumes nothing more; after an error, every call
 * returns the same error.
 */
int64_t appsrv__chunked_parse(appsrv__chunked_t *c, const char *buf, size_t len,
                              size_t max_trailer, size_t *data_len);

#endif /* APPSRV_HTTP_PARSE_H */
