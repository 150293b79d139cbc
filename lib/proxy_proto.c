/* SPDX-License-Identifier: MIT */
/*
 * proxy_proto.c - the PROXY protocol parser (proxy_proto.h): version 1
 * ("PROXY TCP4 src dst sport dport\r\n", strict: single spaces, no
 * leading zeros in ports, at most 107 bytes) and version 2 (12-byte
 * signature, version 2, LOCAL or PROXY, TCP over IPv4/IPv6; AF_UNIX and
 * unspecified families are "unknown"; TLVs are checked for framing and
 * skipped). Pure functions over the caller's buffer; calls only libc
 * (inet_pton).
 */
#include "proxy_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[6] = "PROXY ";

static size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* ------------------------------------------------------------------ v1 */

/* The next space-terminated field of line[*pos..end) (the last one ends
 * at end); empty fields are refused. */
static bool v1_field(const char *line, size_t end, size_t *pos, bool last, const char **f,
                     size_t *flen)
{
    size_t i = *pos;
    while (i < end && line[i] != ' ')
        i++;
    if (i == *pos || (last ? i != end : i == end))
        return false;
    *f = line + *pos;
    *flen = i - *pos;
    *pos = last ? i : i + 1;
    return true;
}

static bool v1_addr(const char *f, size_t n, int family, appsrv_addr_t *a)
{
    char tmp[INET6_ADDRSTRLEN];
    if (n >= sizeof(tmp))
        return false;
    memcpy(tmp, f, n);
    tmp[n] = '\0';
    memset(a, 0, sizeof(*a));
    if (family == AF_INET) {
        a->u.in4.sin_family = AF_INET;
        a->len = sizeof(a->u.in4);
        return inet_pton(AF_INET, tmp, &a->u.in4.sin_addr) == 1;
    }
    a->u.in6.sin6_family = AF_INET6;
    a->len = sizeof(a->u.in6);
    return inet_pton(AF_INET6, tmp, &a->u.in6.sin6_addr) == 1;
}

/* A port: 1-5 decimal digits, no leading zero, at most 65535. */
static bool v1_port(const char *f, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || (n > 1 && f[0] == '0'))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(f[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = htons((uint16_t)v);
    return true;
}

static void set_port(appsrv_addr_t *a, uint16_t port_be)
{
    if (a->u.sa.sa_family == AF_INET)
        a->u.in4.sin_port = port_be;
    else
        a->u.in6.sin6_port = port_be;
}

static int parse_v1(const char *p, size_t len, appsrv__pp_t *out)
{
    size_t lim = min_sz(len, APPSRV__PP_V1_MAX);
    const char *lf = memchr(p, '\n', lim);
    if (lf == NULL)
        return len >= APPSRV__PP_V1_MAX ? -EPROTO : 0;
    size_t end = (size_t)(lf - p);
    if (end == 0 || p[end - 1] != '\r')
        return -EPROTO;
    end--; /* the line without CRLF */
    for (size_t i = 0; i < end; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
            return -EPROTO;
    size_t pos = sizeof(v1_sig);
    const char *f;
    size_t n;
    if (end - pos >= 7 && memcmp(p + pos, "UNKNOWN", 7) == 0 &&
        (end - pos == 7 || p[pos + 7] == ' ')) {
        /* Whatever follows UNKNOWN is ignored (proxy-protocol.txt 2.1). */
        out->version = 1;
        out->cmd = APPSRV__PP_UNKNOWN;
        return (int)(end + 2);
    }
    if (!v1_field(p, end, &pos, false, &f, &n) || n != 4)
        return -EPROTO;
    int family;
    if (memcmp(f, "TCP4", 4) == 0)
        family = AF_INET;
    else if (memcmp(f, "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return -EPROTO;
    uint16_t sport, dport;
    if (!v1_field(p, end, &pos, false, &f, &n) || !v1_addr(f, n, family, &out->src))
        return -EPROTO;
    if (!v1_field(p, end, &pos, false, &f, &n) || !v1_addr(f, n, family, &out->dst))
        return -EPROTO;
    if (!v1_field(p, end, &pos, false, &f, &n) || !v1_port(f, n, &sport))
        return -EPROTO;
    if (!v1_field(p, end, &pos, true, &f, &n) || !v1_port(f, n, &dport))
        return -EPROTO;
    set_port(&out->src, sport);
    set_port(&out->dst, dport);
    out->version = 1;
    out->cmd = APPSRV__PP_PROXY;
    return (int)(end + 2);
}

/* ------------------------------------------------------------------ v2 */

static uint16_t be16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* TLVs: type (1), length (2, big-endian), value; they must tile the rest
 * of the header exactly. Their contents are not used. */
static bool v2_tlvs_ok(const unsigned char *p, size_t n)
{
    while (n > 0) {
        if (n < 3)
            return false;
        size_t l = be16(p + 1);
        if (l > n - 3)
            return false;
        p += 3 + l;
        n -= 3 + l;
    }
    return true;
}

/* One v2 address: fam 1 (IPv4) or 2 (IPv6), port in network order. */
static void v2_addr(appsrv_addr_t *out, unsigned fam, const unsigned char *ip,
                    const unsigned char *port)
{
    memset(out, 0, sizeof(*out));
    if (fam == 1) {
        out->u.in4.sin_family = AF_INET;
        out->len = sizeof(out->u.in4);
        memcpy(&out->u.in4.sin_addr, ip, 4);
        memcpy(&out->u.in4.sin_port, port, 2);
    } else {
        out->u.in6.sin6_family = AF_INET6;
        out->len = sizeof(out->u.in6);
        memcpy(&out->u.in6.sin6_addr, ip, 16);
        memcpy(&out->u.in6.sin6_port, port, 2);
    }
}

static int parse_v2(const unsigned char *p, size_t len, appsrv__pp_t *out)
{
    if (len < 16)
        return 0;
    unsigned ver = p[12] >> 4, cmd = p[12] & 0x0f;
    unsigned fam = p[13] >> 4, tproto = p[13] & 0x0f;
    size_t alen = be16(p + 14);
    if (ver != 2 || cmd > 1 || fam > 3 || tproto > 2 || alen > APPSRV__PP_V2_MAX_LEN)
        return -EPROTO;
    if (len < 16 + alen)
        return 0;
    const unsigned char *a = p + 16;
    out->version = 2;
    if (cmd == 0) {
        /* LOCAL: the proxy's own connection (health checks); the address
         * block, whatever its family, is skipped. */
        out->cmd = APPSRV__PP_LOCAL;
        return (int)(16 + alen);
    }
    if (tproto == 2)
        return -EPROTO; /* datagrams make no sense on a stream listener */
    size_t need;
    switch (fam) {
    case 1:
        need = 12;
        break;
    case 2:
        need = 36;
        break;
    case 3:
        need = 216;
        break;
    default:
        need = 0;
        break;
    }
    if ((fam != 0 && tproto != 1) || alen < need || !v2_tlvs_ok(a + need, alen - need))
        return -EPROTO;
    if (fam == 1 || fam == 2) {
        size_t alen1 = fam == 1 ? 4 : 16;
        v2_addr(&out->src, fam, a, a + 2 * alen1);
        v2_addr(&out->dst, fam, a + alen1, a + 2 * alen1 + 2);
        out->cmd = APPSRV__PP_PROXY;
    } else {
        out->cmd = APPSRV__PP_UNKNOWN; /* unspecified, or AF_UNIX */
    }
    return (int)(16 + alen);
}

int appsrv__pp_parse(const void *buf, size_t len, appsrv__pp_t *out)
{
    const unsigned char *p = buf;
    if (len == 0)
        return 0;
    if (p[0] == v2_sig[0]) {
        if (memcmp(p, v2_sig, min_sz(len, sizeof(v2_sig))) != 0)
            return -EPROTO;
        return parse_v2(p, len, out);
    }
    if (memcmp(p, v1_sig, min_sz(len, sizeof(v1_sig))) != 0)
        return -EPROTO;
    if (len <= sizeof(v1_sig))
        return 0;
    return parse_v1(buf, len, out);
}
