/* SPDX-License-Identifier: MIT */
/*
 * gzip.h - what gzip.c and gzip_none.c share: the per-response opt-out
 * (appsrv_res_no_compress), the same in both builds.
 */
#ifndef APPSRV_GZIP_H
#define APPSRV_GZIP_H

#include <errno.h>

#include "res.h"

static inline int appsrv__gzip_no_compress(appsrv_res_t *res)
{
    if (res == NULL)
        return -EINVAL;
    res->no_compress = true;
    return 0;
}

#endif /* APPSRV_GZIP_H */
