/* SPDX-License-Identifier: MIT */
/*
 * test_proxy_proto.c - unit tests of the PROXY protocol parser
 * (lib/proxy_proto.c, haproxy's proxy-protocol.txt): v1 TCP4, TCP6 and
 * UNKNOWN; v2 PROXY over IPv4 and IPv6, LOCAL, AF_UNIX, TLVs; every
 * header fed in two pieces at every split offset (a prefix must ask for
 * more, never fail or succeed early); bad signatures, fields and lengths.
 * Pure functions: no sockets.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_proto.h"

static void fmt(const appsrv_addr_t *a, char *buf, size_t cap)
{
    cr_assert_geq(appsrv_addr_format(a, buf, cap), 0);
}

/* Every proper prefix asks for more; the whole header (plus trailing
 * request bytes, which it must not take) parses to its length. what names
 * the case in failure messages. */
static appsrv__pp_t parse_all_splits(const char *what, const void *hdr, size_t len)
{
    unsigned char buf[1024];
    cr_assert_leq(len + 16, sizeof(buf));
    memcpy(buf, hdr, len);
    memcpy(buf + len, "GET / HTTP/1.1\r\n", 16);
    appsrv__pp_t pp;
    for (size_t i = 0; i < len; i++) {
        /* A heap copy of exactly i bytes: ASan sees any over-read. */
        unsigned char *p = malloc(i + 1);
        memcpy(p, buf, i);
        int r = appsrv__pp_parse(p, i, &pp);
        free(p);
        cr_assert_eq(r, 0, "%s: prefix of %zu/%zu bytes: %d, want 0 (more)", what, i, len, r);
    }
    memset(&pp, 0, sizeof(pp));
    int r = appsrv__pp_parse(buf, len + 16, &pp);
    cr_assert_eq(r, (int)len, "%s: whole header: %d, want %zu", what, r, len);
    return pp;
}

static void expect_bad(const char *what, const void *hdr, size_t len)
{
    appsrv__pp_t pp;
    int r = appsrv__pp_parse(hdr, len, &pp);
    cr_assert_eq(r, -EPROTO, "%s: %d, want -EPROTO", what, r);
}

/* A parsed PROXY header's addresses, formatted. */
static void expect_addrs(const char *what, const appsrv__pp_t *pp, const char *src,
                         const char *dst)
{
    char a[64];
    fmt(&pp->src, a, sizeof(a));
    cr_assert_str_eq(a, src, "%s: source %s, want %s", what, a, src);
    fmt(&pp->dst, a, sizeof(a));
    cr_assert_str_eq(a, dst, "%s: destination %s, want %s", what, a, dst);
}

/* v1 headers that parse; src and dst only for PROXY (UNKNOWN leaves the
 * socket's addresses standing). */
static const struct {
    const char *hdr;
    int cmd;
    const char *src, *dst;
} v1_good[] = {
    {"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n", APPSRV__PP_PROXY, "192.0.2.10:56324",
     "198.51.100.1:443"},
    {"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n", APPSRV__PP_PROXY, "[2001:db8::1]:65535",
     "[::1]:0"},
    {"PROXY UNKNOWN\r\n", APPSRV__PP_UNKNOWN, NULL, NULL},
    {"PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n", APPSRV__PP_UNKNOWN, NULL, NULL},
};

Test(proxy_proto, v1_good)
{
    for (size_t i = 0; i < sizeof(v1_good) / sizeof(v1_good[0]); i++) {
        const char *h = v1_good[i].hdr;
        appsrv__pp_t pp = parse_all_splits(h, h, strlen(h));
        cr_assert_eq(pp.version, 1, "%s: version %d", h, pp.version);
        cr_assert_eq(pp.cmd, v1_good[i].cmd, "%s: command %d, want %d", h, (int)pp.cmd,
                     v1_good[i].cmd);
        if (v1_good[i].src != NULL)
            expect_addrs(h, &pp, v1_good[i].src, v1_good[i].dst);
    }
}

Test(proxy_proto, v1_longest)
{
    /* The spec's worst case: 107 bytes with CRLF. */
    const char *h = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    cr_assert_eq(strlen(h), 104u);
    appsrv__pp_t pp = parse_all_splits("longest v1", h, strlen(h));
    cr_assert_eq(pp.cmd, APPSRV__PP_PROXY);
    /* 107 bytes without a LF: refused, not waited for. */
    char longer[120];
    memset(longer, 'x', sizeof(longer));
    memcpy(longer, "PROXY UNKNOWN ", 14);
    expect_bad("107 bytes, no LF", longer, 107);
    appsrv__pp_t q;
    cr_assert_eq(appsrv__pp_parse(longer, 106, &q), 0);
}

Test(proxy_proto, v1_bad)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n",
        "G",
        "PROXY\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",    /* LF without CR */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", /* trailing space */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", /* double space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",    /* a port missing */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        "PROXY TCP4 ::1 ::1 1 2\r\n", /* family mismatch */
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", /* leading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n",
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
        "PROXY \r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY UNKNOWN \x01\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad(bad[i], bad[i], strlen(bad[i]));
}

/* ------------------------------------------------------------------ v2 */

static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: signature, ver_cmd, fam, then body (len bytes). */
static size_t v2(unsigned char *out, int ver_cmd, int fam, const void *body, size_t len)
{
    memcpy(out, sig, 12);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(len >> 8);
    out[15] = (unsigned char)len;
    if (len > 0)
        memcpy(out + 16, body, len);
    return 16 + len;
}

Test(proxy_proto, v2_tcp4)
{
    unsigned char body[12] = {127, 0, 0, 2, 10, 0, 0, 1, 0x1f, 0x90, 0x00, 0x50};
    unsigned char h[64];
    size_t n = v2(h, 0x21, 0x11, body, sizeof(body));
    appsrv__pp_t pp = parse_all_splits("v2 TCP4", h, n);
    cr_assert_eq(pp.version, 2);
    cr_assert_eq(pp.cmd, APPSRV__PP_PROXY);
    expect_addrs("v2 TCP4", &pp, "127.0.0.2:8080", "10.0.0.1:80");
}

Test(proxy_proto, v2_tcp6_with_tlvs)
{
    unsigned char body[36 + 3 + 5 + 3 + 0 + 3 + 2];
    memset(body, 0, sizeof(body));
    body[0] = 0x20;
    body[1] = 0x01;
    body[2] = 0x0d;
    body[3] = 0xb8;
    body[15] = 7; /* 2001:db8::7 */
    body[31] = 1; /* ::1 */
    body[32] = 0xc3;
    body[33] = 0x50; /* 50000 */
    body[35] = 80;
    unsigned char *t = body + 36;
    /* ALPN "h2x..", an empty NOOP, an authority "ab" */
    memcpy(t, "\x01\x00\x05h2xyz", 8);
    memcpy(t + 8, "\x04\x00\x00", 3);
    memcpy(t + 11,
           "\x02\x00\x02"
           "ab",
           5);
    unsigned char h[128];
    size_t n = v2(h, 0x21, 0x21, body, sizeof(body));
    appsrv__pp_t pp = parse_all_splits("v2 TCP6 + TLVs", h, n);
    expect_addrs("v2 TCP6 + TLVs", &pp, "[2001:db8::7]:50000", "[::1]:80");
}

Test(proxy_proto, v2_local_unspec_unix)
{
    unsigned char h[600], body[216 + 4];
    memset(body, 'u', sizeof(body));
    /* LOCAL: addresses skipped whatever the family says. */
    appsrv__pp_t pp = parse_all_splits("LOCAL UNSPEC", h, v2(h, 0x20, 0x00, NULL, 0));
    cr_assert_eq(pp.cmd, APPSRV__PP_LOCAL);
    pp = parse_all_splits("LOCAL TCP4", h, v2(h, 0x20, 0x11, body, 12));
    cr_assert_eq(pp.cmd, APPSRV__PP_LOCAL);
    /* PROXY with UNSPEC: unknown, socket addresses stand. */
    pp = parse_all_splits("PROXY UNSPEC", h, v2(h, 0x21, 0x00, NULL, 0));
    cr_assert_eq(pp.cmd, APPSRV__PP_UNKNOWN);
    /* AF_UNIX stream: unknown too. */
    memcpy(body + 216, "\x04\x00\x01z", 4);
    pp = parse_all_splits("PROXY UNIX stream", h, v2(h, 0x21, 0x31, body, 216 + 4));
    cr_assert_eq(pp.cmd, APPSRV__PP_UNKNOWN);
}

Test(proxy_proto, v2_bad)
{
    unsigned char h[700], body[600];
    memset(body, 0, sizeof(body));
    appsrv__pp_t pp;
    /* A broken signature at each of its 12 bytes. */
    for (int i = 0; i < 12; i++) {
        size_t n = v2(h, 0x21, 0x11, body, 12);
        h[i] ^= 0x40;
        cr_assert_eq(appsrv__pp_parse(h, n, &pp), -EPROTO, "signature byte %d", i);
        cr_assert_eq(appsrv__pp_parse(h, (size_t)i + 1, &pp), -EPROTO, "prefix to %d", i);
    }
    /* ver_cmd, family/transport and body length that are refused. */
    static const struct {
        int ver_cmd, fam;
        size_t len;
        const char *what;
    } bad[] = {
        {0x11, 0x11, 12, "version 1"},
        {0x31, 0x11, 12, "version 3"},
        {0x22, 0x11, 12, "command 2"},
        {0x21, 0x12, 12, "UDP over IPv4"},
        {0x21, 0x22, 36, "UDP over IPv6"},
        {0x21, 0x10, 12, "IPv4, transport unspec"},
        {0x21, 0x41, 12, "family 4"},
        {0x21, 0x13, 12, "transport 3"},
        {0x21, 0x11, 11, "IPv4 block short"},
        {0x21, 0x21, 35, "IPv6 block short"},
        {0x21, 0x31, 215, "unix block short"},
        {0x21, 0x11, 14, "a TLV cut in its header"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad(bad[i].what, h, v2(h, bad[i].ver_cmd, bad[i].fam, body, bad[i].len));
    body[12] = 1;
    body[14] = 9;
    expect_bad("TLV longer than the rest", h, v2(h, 0x21, 0x11, body, 12 + 3 + 8));
    /* Over the length bound: refused from the 16-byte header alone. */
    size_t n = v2(h, 0x21, 0x11, body, 12);
    h[14] = (APPSRV__PP_V2_MAX_LEN + 1) >> 8;
    h[15] = (APPSRV__PP_V2_MAX_LEN + 1) & 0xff;
    cr_assert_eq(appsrv__pp_parse(h, 16, &pp), -EPROTO);
    (void)n;
    /* The bound itself is fine. */
    memset(body, 0, sizeof(body));
    body[12] = 4;
    body[13] = (APPSRV__PP_V2_MAX_LEN - 15) >> 8;
    body[14] = (APPSRV__PP_V2_MAX_LEN - 15) & 0xff;
    n = v2(h, 0x21, 0x11, body, APPSRV__PP_V2_MAX_LEN);
    cr_assert_eq(appsrv__pp_parse(h, n, &pp), (int)n);
}

Test(proxy_proto, empty_asks_for_more)
{
    appsrv__pp_t pp;
    cr_assert_eq(appsrv__pp_parse("", 0, &pp), 0);
}
