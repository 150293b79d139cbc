/* SPDX-License-Identifier: MIT */
/*
 * gzip_none.c - the gzip module in a build without zlib (make ZLIB=no):
 * appsrv_gzip_use() fails with -ENOTSUP, so hosts link the same API
 * either way; appsrv_res_no_compress() still records its flag. Calls
 * nothing; hosts call it.
 */
#include <errno.h>

#include "gzip.h"

bool appsrv_gzip_available(void)
{
    return false;
}

int appsrv_gzip_use(appsrv_server_t *srv, const appsrv_gzip_opts_t *opts)
{
    (void)srv, (void)opts;
    return -ENOTSUP;
}

int appsrv_res_no_compress(appsrv_res_t *res)
{
    return appsrv__gzip_no_compress(res);
}
