/* SPDX-License-Identifier: MIT */
/*
 * proxy_hdr.h - PROXY protocol v2 headers for the tests that play the
 * load balancer (haproxy's proxy-protocol.txt, section 2.2): TCP over
 * IPv4 from a given client to 127.0.0.1:80, optionally with one ALPN TLV
 * (which the server skips). Header only, no libappsrv.
 */
#ifndef APPSRV_TEST_PROXY_HDR_H
#define APPSRV_TEST_PROXY_HDR_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Writes the header into h (at least 35 bytes) and returns its length. */
static inline size_t proxy_v2_tcp4(unsigned char *h, const char *src, int sport, bool tlv)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(h, sig, 12);
    h[12] = 0x21; /* version 2, PROXY */
    h[13] = 0x11; /* TCP over IPv4 */
    size_t len = 12 + (tlv ? 7 : 0);
    h[14] = 0;
    h[15] = (unsigned char)len;
    inet_pton(AF_INET, src, h + 16);
    inet_pton(AF_INET, "127.0.0.1", h + 20);
    h[24] = (unsigned char)(sport >> 8);
    h[25] = (unsigned char)sport;
    h[26] = 0;
    h[27] = 80;
    if (tlv)
        memcpy(h + 28, "\x01\x00\x04http", 7); /* ALPN, skipped */
    return 16 + len;
}
#endif /* APPSRV_TEST_PROXY_HDR_H */
