/* SPDX-License-Identifier: MIT */
/*
 * tls_none.c - the TLS module in a build without OpenSSL (make TLS=no):
 * every public appsrv_tls_* call and appsrv_listen_https() (through
 * appsrv__tls_usable) fail with -ENOTSUP, so hosts link the same API
 * either way. Calls nothing; server.c and hosts call it. The transport
 * table exists only to keep server.c free of build conditionals; no
 * listener ever gets it.
 */
#include "tls.h"

#include <errno.h>
#include <string.h>

bool appsrv_tls_available(void)
{
    return false;
}

void appsrv_tls_config_init(appsrv_tls_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->min_version = APPSRV_TLS1_2;
    cfg->ticket_key_seconds = 3600;
}

int appsrv_tls_new(appsrv_tls_t **out, const appsrv_tls_config_t *cfg, const char *cert_file,
                   const char *key_file, const char *passphrase)
{
    (void)cfg, (void)cert_file, (void)key_file, (void)passphrase;
    if (out != NULL)
        *out = NULL;
    return -ENOTSUP;
}

int appsrv_tls_add_sni(appsrv_tls_t *tls, const char *name, const char *cert_file,
                       const char *key_file, const char *passphrase)
{
    (void)tls, (void)name, (void)cert_file, (void)key_file, (void)passphrase;
    return -ENOTSUP;
}

int appsrv_tls_reload(appsrv_tls_t *tls)
{
    (void)tls;
    return -ENOTSUP;
}

void appsrv_tls_free(appsrv_tls_t *tls)
{
    (void)tls;
}

int appsrv__tls_usable(const appsrv_tls_t *tls)
{
    (void)tls;
    return -ENOTSUP;
}

static int none_attach(appsrv__tsock_t *s, void *ldata)
{
    (void)s, (void)ldata;
    return -ENOTSUP;
}

const appsrv__transport_t appsrv__transport_tls = {
    .name = "none",
    .attach = none_attach,
};
