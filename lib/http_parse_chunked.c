/* SPDX-License-Identifier: MIT */
/*
 * http_parse_chunked.c - the chunked transfer-coding decoder (RFC 9112
 * §7.1; contract in http_parse.h): a byte-at-a-time state machine whose
 * whole state is the caller's zeroed struct, so the result never depends
 * on how the body was split. Called by http.c, the tests and the fuzz
 * drivers; uses the byte classes of http_parse_cls.h. Never reads
 * buf[len].
 */
#include "http_parse.h"

#include "http_parse_cls.h"

#define cls appsrv__http_cls

/* -------------------------------------------------------- chunked decoder */

/*
 * Chunk extensions and redundant leading zeros carry no data, so they do
 * not count against the body limit; cap them over the whole body so an
 * endless size line cannot keep a connection busy (cf. CVE-2024-22019).
 */
#define CHUNK_OVERHEAD_MAX (16 * 1024)

enum {
    C_SIZE_FIRST = 0,
    C_SIZE,
    C_EXT_BWS,      /* BWS before ';' */
    C_EXT_NAME_BWS, /* after ';' */
    C_EXT_NAME,
    C_EXT_NAME_WS, /* BWS after a name: '=' or ';' next */
    C_EXT_VAL_BWS, /* after '=' */
    C_EXT_TOKEN,
    C_EXT_QS,
    C_EXT_QP,
    C_EXT_QS_END,
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TR_START,
    C_TR_NAME,
    C_TR_VALUE,
    C_TR_LF,
    C_TR_END_LF,
    C_FAILED_400,
    C_FAILED_431,
};

int64_t appsrv__chunked_parse(appsrv__chunked_t *c, const char *buf, size_t len, size_t max_trailer,
                              size_t *data_len)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t p;

    *data_len = 0;
    if (c->done)
        return 0;
    if (c->stage == C_FAILED_400)
        return -400;
    if (c->stage == C_FAILED_431)
        return -431;
    if (c->stage == C_DATA) {
        size_t n = c->remaining < len ? (size_t)c->remaining : len;
        c->remaining -= n;
        if (c->remaining == 0)
            c->stage = C_DATA_CR;
        *data_len = n;
        return (int64_t)n;
    }
    if (max_trailer > UINT32_MAX)
        max_trailer = UINT32_MAX;

    for (p = 0; p < len; p++) {
        unsigned ch = b[p];

        if (c->stage >= C_EXT_BWS && c->stage <= C_EXT_QS_END && ch != '\r' &&
            ++c->overhead > CHUNK_OVERHEAD_MAX)
            goto bad;
        /* Trailer field lines count; the closing empty line does not. */
        if (c->stage >= C_TR_START && c->stage <= C_TR_LF &&
            !(c->stage == C_TR_START && ch == '\r')) {
            if (c->trailer_bytes >= max_trailer) {
                c->stage = C_FAILED_431;
                return -431;
            }
            c->trailer_bytes++;
        }

        switch (c->stage) {
        case C_SIZE_FIRST:
        case C_SIZE:
            if (cls[ch] & CL_HEX) {
                unsigned d = appsrv__hexval(ch);
                if (c->remaining == 0 && d == 0 && c->size_digits &&
                    ++c->overhead > CHUNK_OVERHEAD_MAX)
                    goto bad;
                /* Sizes stay below 2^63 so they fit any off_t. */
                if (c->remaining > ((uint64_t)INT64_MAX - d) / 16)
                    goto bad;
                c->remaining = c->remaining * 16 + d;
                c->size_digits = 1;
                c->stage = C_SIZE;
                break;
            }
            if (c->stage == C_SIZE_FIRST)
                goto bad; /* 1*HEXDIG: no leading space, sign or ';' */
            if (ch == '\r') {
                c->stage = C_SIZE_LF;
                break;
            }
            if (ch == ';')
                c->stage = C_EXT_NAME_BWS;
            else if (cls[ch] & CL_WS)
                c->stage = C_EXT_BWS;
            else
                goto bad; /* "0x10", "1 2", ... */
            if (++c->overhead > CHUNK_OVERHEAD_MAX)
                goto bad;
            break;

        /* RFC 9112 §7.1.1: *( BWS ";" BWS name [ BWS "=" BWS value ] ) */
        case C_EXT_BWS:
            if (ch == ';')
                c->stage = C_EXT_NAME_BWS;
            else if (!(cls[ch] & CL_WS))
                goto bad;
            break;

        case C_EXT_NAME_BWS:
            if (cls[ch] & CL_TCHAR)
                c->stage = C_EXT_NAME;
            else if (!(cls[ch] & CL_WS))
                goto bad;
            break;

        case C_EXT_NAME:
            if (cls[ch] & CL_TCHAR)
                break;
            if (ch == '=')
                c->stage = C_EXT_VAL_BWS;
            else if (ch == ';')
                c->stage = C_EXT_NAME_BWS;
            else if (ch == '\r')
                c->stage = C_SIZE_LF;
            else if (cls[ch] & CL_WS)
                c->stage = C_EXT_NAME_WS;
            else
                goto bad;
            break;

        case C_EXT_NAME_WS:
            if (ch == '=')
                c->stage = C_EXT_VAL_BWS;
            else if (ch == ';')
                c->stage = C_EXT_NAME_BWS;
            else if (!(cls[ch] & CL_WS))
                goto bad;
            break;

        case C_EXT_VAL_BWS:
            if (ch == '"')
                c->stage = C_EXT_QS;
            else if (cls[ch] & CL_TCHAR)
                c->stage = C_EXT_TOKEN;
            else if (!(cls[ch] & CL_WS))
                goto bad;
            break;

        case C_EXT_TOKEN:
            if (cls[ch] & CL_TCHAR)
                break;
            goto ext_value_done;

        case C_EXT_QS_END:
        ext_value_done:
            if (ch == '\r')
                c->stage = C_SIZE_LF;
            else if (ch == ';')
                c->stage = C_EXT_NAME_BWS;
            else if (cls[ch] & CL_WS)
                c->stage = C_EXT_BWS;
            else
                goto bad;
            break;

        /* RFC 9110 §5.6.4: qdtext and quoted-pair. */
        case C_EXT_QS:
            if (ch == '"')
                c->stage = C_EXT_QS_END;
            else if (ch == '\\')
                c->stage = C_EXT_QP;
            else if (!(cls[ch] & (CL_VCHAR | CL_WS)))
                goto bad;
            break;

        case C_EXT_QP:
            if (!(cls[ch] & (CL_VCHAR | CL_WS)))
                goto bad;
            c->stage = C_EXT_QS;
            break;

        case C_SIZE_LF:
            if (ch != '\n')
                goto bad;
            c->size_digits = 0;
            if (c->remaining == 0) {
                c->stage = C_TR_START; /* last-chunk */
                break;
            }
            c->stage = C_DATA;
            return (int64_t)(p + 1); /* framing and data never share a call */

        case C_DATA_CR:
            if (ch != '\r')
                goto bad; /* RFC 9112 §7.1: CRLF right after the data */
            c->stage = C_DATA_LF;
            break;

        case C_DATA_LF:
            if (ch != '\n')
                goto bad;
            c->stage = C_SIZE_FIRST;
            break;

        /* RFC 9112 §7.1.2: trailer fields, validated like header lines. */
        case C_TR_START:
            if (ch == '\r') {
                c->stage = C_TR_END_LF;
                break;
            }
            if (!(cls[ch] & CL_TCHAR))
                goto bad; /* also obs-fold and empty names */
            c->stage = C_TR_NAME;
            break;

        case C_TR_NAME:
            if (ch == ':')
                c->stage = C_TR_VALUE;
            else if (!(cls[ch] & CL_TCHAR))
                goto bad;
            break;

        case C_TR_VALUE:
            if (ch == '\r')
                c->stage = C_TR_LF;
            else if (!(cls[ch] & (CL_VCHAR | CL_WS)))
                goto bad;
            break;

        case C_TR_LF:
            if (ch != '\n')
                goto bad;
            c->stage = C_TR_START;
            break;

        case C_TR_END_LF:
            if (ch != '\n')
                goto bad;
            c->done = true;
            return (int64_t)(p + 1);

        default:
            goto bad; /* unreachable: C_DATA and failures returned above */
        }
    }
    return (int64_t)p;

bad:
    c->stage = C_FAILED_400;
    return -400;
}
