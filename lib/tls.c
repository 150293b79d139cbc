/* SPDX-License-Identifier: MIT */
/*
 * tls.c - the public TLS context (appsrv_tls_*): OpenSSL SSL_CTXs built
 * from PEM files with the library's defaults, the SNI table, ALPN,
 * session-ticket keys with rotation, and all-or-nothing reloads published
 * as generations (tls.h). Calls OpenSSL only; called by hosts, by server.c
 * (appsrv__tls_usable) and by tls_transport.c (generations). Loop threads
 * only take gen_lock for a pointer copy: file loading runs under
 * reload_lock, on the caller's thread.
 */
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

/* TLS 1.2 suites (RFC 5246 §7.4.1.2 order = our preference): forward
 * secret ECDHE with AEAD only, the intersection of iOS ATS and OkHttp
 * MODERN_TLS. ECDSA first: a host with both certificate kinds uses the
 * cheaper one. */
#define DEFAULT_CIPHERS                                                                            \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_SUITES         "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define DEFAULT_GROUPS         "X25519:P-256:P-384"
#define DEFAULT_TICKET_SECONDS 3600
#define MAX_NAME               255 /* RFC 6066 §3: HostName is at most 2^16-1, DNS 255 */

typedef struct entry {
    char *name; /* NULL: the default certificate */
    char *cert, *key, *pass;
} entry_t;

typedef struct sni_ctx {
    char *name; /* points into the entry list's copy: owned here too */
    SSL_CTX *ctx;
} sni_ctx_t;

struct appsrv__tls_gen {
    atomic_int refs;
    SSL_CTX *def;
    size_t n;
    sni_ctx_t sni[]; /* n entries */
};

/* RFC 5077 §4 ticket protection: AES-256-CBC + HMAC-SHA256, named keys. */
typedef struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    bool set;
} ticket_key_t;

struct appsrv_tls {
    appsrv_tls_config_t cfg;     /* strings below are our copies */
    pthread_mutex_t reload_lock; /* entries, building generations */
    entry_t *entries;
    size_t nentries;          /* entries[0] is the default */
    pthread_mutex_t gen_lock; /* cur only */
    appsrv__tls_gen_t *cur;
    pthread_mutex_t ticket_lock;
    ticket_key_t keys[2]; /* [0] encrypts; [1] still decrypts */
    time_t key_born;      /* when keys[0] was made */
};

/* ------------------------------------------------------------ ex_data */

static int g_gen_index = -1;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void make_index(void)
{
    g_gen_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int appsrv__tls_gen_index(void)
{
    pthread_once(&g_once, make_index);
    return g_gen_index;
}

/* ------------------------------------------------------------ generations */

static appsrv__tls_gen_t *gen_alloc(size_t n)
{
    appsrv__tls_gen_t *g = calloc(1, sizeof(*g) + n * sizeof(sni_ctx_t));
    if (g != NULL) {
        atomic_init(&g->refs, 1);
        g->n = n;
    }
    return g;
}

static void gen_free(appsrv__tls_gen_t *g)
{
    SSL_CTX_free(g->def);
    for (size_t i = 0; i < g->n; i++) {
        free(g->sni[i].name);
        SSL_CTX_free(g->sni[i].ctx);
    }
    free(g);
}

void appsrv__tls_gen_put(appsrv__tls_gen_t *g)
{
    if (g != NULL && atomic_fetch_sub(&g->refs, 1) == 1)
        gen_free(g);
}

appsrv__tls_gen_t *appsrv__tls_gen_get(appsrv_tls_t *tls)
{
    pthread_mutex_lock(&tls->gen_lock);
    appsrv__tls_gen_t *g = tls->cur;
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&tls->gen_lock);
    return g;
}

SSL_CTX *appsrv__tls_gen_ctx(const appsrv__tls_gen_t *g)
{
    return g->def;
}

static void gen_publish(appsrv_tls_t *tls, appsrv__tls_gen_t *g)
{
    pthread_mutex_lock(&tls->gen_lock);
    appsrv__tls_gen_t *old = tls->cur;
    tls->cur = g;
    pthread_mutex_unlock(&tls->gen_lock);
    appsrv__tls_gen_put(old);
}

/* ------------------------------------------------------------- callbacks */

/* "*.example.com" matches exactly one label before ".example.com". */
static bool name_match(const char *pat, const char *name)
{
    size_t pl = strlen(pat), nl = strlen(name);
    if (pl > 2 && pat[0] == '*' && pat[1] == '.') {
        const char *dot = strchr(name, '.');
        if (dot == NULL || dot == name)
            return false;
        return appsrv__ieq(dot, nl - (size_t)(dot - name), pat + 1, pl - 1);
    }
    return appsrv__ieq(pat, pl, name, nl);
}

/* RFC 6066 §3: the client's server_name picks the certificate; an unknown
 * name is not fatal (the default certificate answers). Exact names win
 * over wildcards. */
static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert, (void)arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const appsrv__tls_gen_t *g = SSL_get_ex_data(ssl, appsrv__tls_gen_index());
    if (name == NULL || g == NULL)
        return SSL_TLSEXT_ERR_OK;
    SSL_CTX *hit = NULL;
    for (int pass = 0; pass < 2 && hit == NULL; pass++)
        for (size_t i = 0; i < g->n && hit == NULL; i++) {
            bool wild = g->sni[i].name[0] == '*';
            if ((pass == 0) != wild && name_match(g->sni[i].name, name))
                hit = g->sni[i].ctx;
        }
    if (hit != NULL && hit != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, hit);
    return SSL_TLSEXT_ERR_OK;
}

/* RFC 7301 §3.2: we speak http/1.1 only. A client offering other
 * protocols only gets no ALPN extension back (SSL_TLSEXT_ERR_NOACK)
 * rather than the no_application_protocol alert: mobile stacks that
 * offer "h2" alone then still fall back to HTTP/1.1 over this session. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl, (void)arg;
    unsigned int i = 0;
    while (i < inlen) {
        unsigned int l = in[i];
        if (l == 0 || i + 1 + l > inlen)
            break;
        if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Never prompts on a terminal (OpenSSL's default would): the passphrase
 * given, or none. */
static int pass_cb(char *buf, int size, int rwflag, void *ud)
{
    (void)rwflag;
    const char *p = ud;
    if (p == NULL || size <= 0)
        return 0;
    size_t n = strlen(p);
    if (n > (size_t)size)
        n = (size_t)size;
    memcpy(buf, p, n);
    return (int)n;
}

static int new_ticket_key(ticket_key_t *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -1;
    k->set = true;
    return 0;
}

/* Rotation: a key encrypts for ticket_key_seconds, then decrypts for as
 * long again (tickets it sealed are renewed under the new key), then is
 * wiped: a stolen key opens at most two periods of sessions. */
static void rotate_locked(appsrv_tls_t *tls, time_t now)
{
    time_t period = tls->cfg.ticket_key_seconds;
    if (tls->keys[0].set && now - tls->key_born < period)
        return;
    if (tls->keys[0].set && now - tls->key_born < 2 * period)
        tls->keys[1] = tls->keys[0];
    else
        OPENSSL_cleanse(&tls->keys[1], sizeof(tls->keys[1]));
    if (new_ticket_key(&tls->keys[0]) < 0)
        OPENSSL_cleanse(&tls->keys[0], sizeof(tls->keys[0]));
    tls->key_born = now;
}

/* RFC 5077 §4 / RFC 8446 §4.6.1 ticket sealing. Returns 1 (key found),
 * 2 (found but old: issue a new ticket), 0 (unknown: full handshake),
 * -1 (error). */
static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    appsrv_tls_t *tls = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (tls == NULL)
        return -1;
    ticket_key_t k;
    int rc = 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    pthread_mutex_lock(&tls->ticket_lock);
    rotate_locked(tls, ts.tv_sec);
    if (enc) {
        k = tls->keys[0];
    } else if (tls->keys[0].set && memcmp(key_name, tls->keys[0].name, 16) == 0) {
        k = tls->keys[0];
    } else if (tls->keys[1].set && memcmp(key_name, tls->keys[1].name, 16) == 0) {
        k = tls->keys[1];
        rc = 2;
    } else {
        k.set = false;
        rc = 0;
    }
    pthread_mutex_unlock(&tls->ticket_lock);
    if (!k.set) {
        OPENSSL_cleanse(&k, sizeof(k));
        return enc ? -1 : 0;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (enc) {
        memcpy(key_name, k.name, 16);
        if (RAND_bytes(iv, 16) != 1 ||
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            rc = -1;
    } else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
        rc = -1;
    }
    if (rc > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
        rc = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* ---------------------------------------------------------------- loading */

static int file_check(const char *path)
{
    if (path == NULL || *path == '\0')
        return -EINVAL;
    return access(path, R_OK) == 0 ? 0 : -errno;
}

/* A context with the library's settings and one certificate. */
static int ctx_new(appsrv_tls_t *tls, const entry_t *e, SSL_CTX **out)
{
    int rc = file_check(e->cert);
    if (rc == 0)
        rc = file_check(e->key);
    if (rc < 0)
        return rc;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return -ENOMEM;
    const appsrv_tls_config_t *cfg = &tls->cfg;
    rc = APPSRV_ETLSCONF;
    /* RFC 8446 §4.2.1 / RFC 5246: 1.2 and 1.3 only by default; older
     * versions get a protocol_version alert. */
    if (SSL_CTX_set_min_proto_version(ctx, cfg->min_version) != 1 ||
        SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites) != 1 ||
        SSL_CTX_set1_groups_list(ctx, cfg->groups) != 1)
        goto fail;
    /* No renegotiation (RFC 5246 §7.4.1.1 is refused with a
     * no_renegotiation alert), no compression (CRIME), the server's
     * suite order, ChaCha20 for clients that put it first, and a peer
     * closing without close_notify is an ordinary EOF (RFC 8446 §6.1:
     * HTTP/1.1 framing detects truncation itself). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Buffers only while a record is in flight (an idle connection holds
     * none); writes may complete a record at a time and be retried from a
     * copy at another address (tls_transport.c coalesces iovecs). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Read-ahead: one recv takes every record that has arrived, and a
     * short recv tells the transport the socket is drained. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_app_data(ctx, tls);
    if (cfg->ticket_key_seconds > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_timeout(ctx, 2 * (long)cfg->ticket_key_seconds);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, 20480);
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"appsrv", 6);
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, pass_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, e->pass);
    rc = APPSRV_ETLSCERT;
    if (SSL_CTX_use_certificate_chain_file(ctx, e->cert) != 1)
        goto fail;
    rc = APPSRV_ETLSKEY;
    if (SSL_CTX_use_PrivateKey_file(ctx, e->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    ERR_clear_error();
    *out = ctx;
    return 0;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return rc;
}

static void entry_clear(entry_t *e)
{
    free(e->name);
    free(e->cert);
    free(e->key);
    if (e->pass != NULL) {
        OPENSSL_cleanse(e->pass, strlen(e->pass));
        free(e->pass);
    }
    memset(e, 0, sizeof(*e));
}

static int entry_set(entry_t *e, const char *name, const char *cert, const char *key,
                     const char *pass)
{
    memset(e, 0, sizeof(*e));
    e->name = name != NULL ? strdup(name) : NULL;
    e->cert = strdup(cert);
    e->key = strdup(key);
    e->pass = pass != NULL ? strdup(pass) : NULL;
    if ((name != NULL && e->name == NULL) || e->cert == NULL || e->key == NULL ||
        (pass != NULL && e->pass == NULL)) {
        entry_clear(e);
        return -ENOMEM;
    }
    return 0;
}

/* A generation from every entry, all or nothing. Under reload_lock. */
static int gen_build(appsrv_tls_t *tls, appsrv__tls_gen_t **out)
{
    appsrv__tls_gen_t *g = gen_alloc(tls->nentries - 1);
    if (g == NULL)
        return -ENOMEM;
    g->n = 0;
    int rc = ctx_new(tls, &tls->entries[0], &g->def);
    for (size_t i = 1; rc == 0 && i < tls->nentries; i++) {
        sni_ctx_t *s = &g->sni[g->n];
        s->name = strdup(tls->entries[i].name);
        if (s->name == NULL) {
            rc = -ENOMEM;
            break;
        }
        g->n++;
        rc = ctx_new(tls, &tls->entries[i], &s->ctx);
    }
    if (rc < 0) {
        gen_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

/* ------------------------------------------------------------------- API */

bool appsrv_tls_available(void)
{
    return true;
}

void appsrv_tls_config_init(appsrv_tls_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->min_version = APPSRV_TLS1_2;
    cfg->ticket_key_seconds = DEFAULT_TICKET_SECONDS;
}

static void tls_free_fields(appsrv_tls_t *tls)
{
    for (size_t i = 0; i < tls->nentries; i++)
        entry_clear(&tls->entries[i]);
    free(tls->entries);
    free((char *)tls->cfg.ciphers);
    free((char *)tls->cfg.ciphersuites);
    free((char *)tls->cfg.groups);
    OPENSSL_cleanse(tls->keys, sizeof(tls->keys));
    pthread_mutex_destroy(&tls->reload_lock);
    pthread_mutex_destroy(&tls->gen_lock);
    pthread_mutex_destroy(&tls->ticket_lock);
    free(tls);
}

int appsrv_tls_new(appsrv_tls_t **out, const appsrv_tls_config_t *cfg, const char *cert_file,
                   const char *key_file, const char *passphrase)
{
    appsrv_tls_config_t defaults;
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (cert_file == NULL || key_file == NULL)
        return -EINVAL;
    if (cfg == NULL) {
        appsrv_tls_config_init(&defaults);
        cfg = &defaults;
    }
    if ((cfg->min_version != APPSRV_TLS1_2 && cfg->min_version != APPSRV_TLS1_3) ||
        cfg->ticket_key_seconds < 0)
        return -EINVAL;
    appsrv__tls_gen_index();
    appsrv_tls_t *tls = calloc(1, sizeof(*tls));
    if (tls == NULL)
        return -ENOMEM;
    pthread_mutex_init(&tls->reload_lock, NULL);
    pthread_mutex_init(&tls->gen_lock, NULL);
    pthread_mutex_init(&tls->ticket_lock, NULL);
    tls->cfg = *cfg;
    tls->cfg.ciphers = strdup(cfg->ciphers != NULL ? cfg->ciphers : DEFAULT_CIPHERS);
    tls->cfg.ciphersuites = strdup(cfg->ciphersuites != NULL ? cfg->ciphersuites : DEFAULT_SUITES);
    tls->cfg.groups = strdup(cfg->groups != NULL ? cfg->groups : DEFAULT_GROUPS);
    tls->entries = calloc(1, sizeof(entry_t));
    int rc = -ENOMEM;
    if (tls->cfg.ciphers == NULL || tls->cfg.ciphersuites == NULL || tls->cfg.groups == NULL ||
        tls->entries == NULL)
        goto fail;
    rc = entry_set(&tls->entries[0], NULL, cert_file, key_file, passphrase);
    if (rc < 0)
        goto fail;
    tls->nentries = 1;
    rc = gen_build(tls, &tls->cur);
    if (rc < 0)
        goto fail;
    *out = tls;
    return 0;
fail:
    tls_free_fields(tls);
    return rc;
}

int appsrv_tls_add_sni(appsrv_tls_t *tls, const char *name, const char *cert_file,
                       const char *key_file, const char *passphrase)
{
    if (tls == NULL || name == NULL || cert_file == NULL || key_file == NULL)
        return -EINVAL;
    size_t nl = strlen(name);
    if (nl == 0 || nl > MAX_NAME)
        return -EINVAL;
    entry_t e;
    int rc = entry_set(&e, name, cert_file, key_file, passphrase);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&tls->reload_lock);
    SSL_CTX *ctx = NULL;
    rc = ctx_new(tls, &e, &ctx);
    if (rc < 0)
        goto out;
    /* The new generation shares the current contexts (references). */
    appsrv__tls_gen_t *old = tls->cur;
    size_t slot = old->n;
    for (size_t i = 0; i < old->n; i++)
        if (appsrv__ieq(old->sni[i].name, strlen(old->sni[i].name), name, nl))
            slot = i;
    appsrv__tls_gen_t *g = gen_alloc(slot == old->n ? old->n + 1 : old->n);
    entry_t *ents = slot == old->n ? realloc(tls->entries, (tls->nentries + 1) * sizeof(entry_t))
                                   : tls->entries;
    if (ents != NULL)
        tls->entries = ents;
    if (g == NULL || ents == NULL) {
        free(g);
        SSL_CTX_free(ctx);
        rc = -ENOMEM;
        goto out;
    }
    SSL_CTX_up_ref(old->def);
    g->def = old->def;
    for (size_t i = 0; i < g->n; i++) {
        if (i == slot) {
            g->sni[i].ctx = ctx;
            g->sni[i].name = strdup(name);
        } else {
            SSL_CTX_up_ref(old->sni[i].ctx);
            g->sni[i].ctx = old->sni[i].ctx;
            g->sni[i].name = strdup(old->sni[i].name);
        }
        if (g->sni[i].name == NULL)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        gen_free(g);
        goto out;
    }
    if (slot == old->n) {
        tls->entries[tls->nentries++] = e;
    } else {
        entry_clear(&tls->entries[slot + 1]);
        tls->entries[slot + 1] = e;
    }
    e = (entry_t){0};
    gen_publish(tls, g);
out:
    pthread_mutex_unlock(&tls->reload_lock);
    entry_clear(&e);
    return rc;
}

int appsrv_tls_reload(appsrv_tls_t *tls)
{
    if (tls == NULL)
        return -EINVAL;
    pthread_mutex_lock(&tls->reload_lock);
    appsrv__tls_gen_t *g = NULL;
    int rc = gen_build(tls, &g);
    if (rc == 0)
        gen_publish(tls, g);
    pthread_mutex_unlock(&tls->reload_lock);
    return rc;
}

void appsrv_tls_free(appsrv_tls_t *tls)
{
    if (tls == NULL)
        return;
    appsrv__tls_gen_put(tls->cur);
    tls_free_fields(tls);
}

int appsrv__tls_usable(const appsrv_tls_t *tls)
{
    return tls != NULL ? 0 : -EINVAL;
}
