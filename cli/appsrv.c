/* SPDX-License-Identifier: MIT */
/*
 * appsrv.c - the CLI: a standalone echo-and-respond server (appsrv(1)).
 * Parses flags, registers the HTTP and line routes with the public API
 * like any host program, prints the listening lines, and runs until
 * SIGINT/SIGTERM, which call appsrv_server_stop() (async-signal-safe).
 * It holds no protocol code: framing, limits and errors are the library's.
 * GET /delay and GET /events show deferred responses finished by the
 * library's timers (appsrv_timer_*) on the request's own loop: the CLI
 * needs no timer thread.
 * With --tls-cert/--tls-key the HTTP listener serves HTTPS; a thread of
 * its own waits for SIGHUP (sigwait) and reloads the certificates.
 * GET /ws is a WebSocket echo; GET /ws/room a broadcast room whose
 * members are kept in a locked list (the handle references are the
 * list's).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <appsrv.h>

#include "deploy_cli.h"

static appsrv_server_t *g_srv; /* for the signal handler only */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: appsrv [-H|--host ADDR] [-p|--port PORT] [-l|--line-port PORT]\n"
            "              [-t|--threads N] [-c|--max-conns N] [--max-body BYTES]\n"
            "              [--idle-timeout SEC] [--head-timeout SEC] [--access-log]\n"
            "              [--tls-cert FILE --tls-key FILE [--tls-sni NAME:CERT:KEY]...]\n"
            "              [--max-ws-message BYTES] [--ws-ping SEC]\n"
            "              [--access-log-format combined|json] [--metrics]\n"
            "              [--no-request-ids]\n"
            "              [--cors ORIGIN]... [--json-errors] [--gzip]\n"
            "              [--root DIR] [--max-upload BYTES] [--drain-delay MS]\n"
            "              [--proxy-protocol] [--trust-proxy CIDR[,CIDR...]]\n"
            "              [--max-conns-per-client N] [--rate-limit R[/s][,burst B]]\n"
            "              [-q|--quiet] [-V|--version] [-h|--help]\n"
            "\n"
            "  -H, --host ADDR        address to listen on (default 127.0.0.1)\n"
            "  -p, --port PORT        HTTP port, 0 picks a free one (default 8080)\n"
            "  -l, --line-port PORT   also serve the line protocol on PORT\n"
            "  -t, --threads N        worker threads (default: number of CPUs)\n"
            "  -c, --max-conns N      open connections at most (default 10000)\n"
            "      --max-body BYTES   request body limit (default 8388608)\n"
            "      --idle-timeout SEC keep-alive idle timeout (default 60)\n"
            "      --head-timeout SEC request head timeout (default 10)\n"
            "      --access-log       one line per request on stderr (combined format)\n"
            "      --tls-cert FILE    serve HTTPS with this PEM certificate chain\n"
            "      --tls-key FILE     the PEM private key of --tls-cert\n"
            "      --tls-sni NAME:CERT:KEY  another certificate for SNI name NAME\n"
            "                         (repeatable; SIGHUP reloads every certificate)\n"
            "      --max-ws-message BYTES\n"
            "                         WebSocket message limit (default 1048576)\n"
            "      --ws-ping SEC      WebSocket ping interval, 0: none (default 30)\n"
            "      --access-log-format combined|json\n"
            "                         access-log line format (implies --access-log)\n"
            "      --metrics          serve Prometheus metrics on GET /metrics\n"
            "      --no-request-ids   no X-Request-ID on responses (benchmarks)\n"
            "      --cors ORIGIN      allow cross-origin calls from ORIGIN (repeatable;\n"
            "                         * for any origin, without credentials)\n"
            "      --json-errors      the library's own answers as JSON\n"
            "      --gzip             gzip text and JSON answers of 1 KiB or more, and\n"
            "                         streams, for clients that accept it (level 6)\n"
            "      --root DIR         serve the files under DIR for GET/HEAD paths\n"
            "                         no built-in route takes (Range, ETag, 304,\n"
            "                         index.html, precompressed .gz siblings)\n"
            "      --max-upload BYTES body limit of POST /upload (default 1073741824)\n"
            "      --drain-delay MS   on SIGTERM, GET /ready answers 503 for MS ms while\n"
            "                         the server still serves, then it drains (default 0)\n"
            "      --proxy-protocol   the HTTP(S) listener expects a PROXY protocol v1/v2\n"
            "                         header first (behind HAProxy send-proxy[-v2])\n"
            "      --trust-proxy CIDR[,CIDR...]\n"
            "                         believe X-Forwarded-For/-Proto from these peers\n"
            "      --max-conns-per-client N\n"
            "                         open connections per client address (default: any)\n"
            "      --rate-limit R[/s][,burst B]\n"
            "                         requests per second per client address, bursts of\n"
            "                         B (default R); more get 429 + Retry-After\n"
            "  -q, --quiet            no informational output\n"
            "  -V, --version          print the version and exit\n"
            "  -h, --help             print this help and exit\n");
}

static void bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "appsrv: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    exit(2);
}

static uint64_t parse_num(const char *s, uint64_t min, uint64_t max, const char *what);

/* --rate-limit R[/s][,burst B] (also ",burst=B" and ",B"): whole numbers,
 * R 1..1000000, B 1..1000000. */
static void parse_rate(const char *arg, double *rate, double *burst)
{
    char buf[64];
    if (strlen(arg) >= sizeof(buf))
        bad_usage("%s: too long", "--rate-limit");
    strcpy(buf, arg);
    char *b = strchr(buf, ',');
    if (b != NULL) {
        *b++ = '\0';
        if (strncmp(b, "burst", 5) == 0) {
            b += 5;
            if (*b == ' ' || *b == '=')
                b++;
        }
        *burst = (double)parse_num(b, 1, 1000000, "--rate-limit burst");
    }
    size_t n = strlen(buf);
    if (n > 2 && strcmp(buf + n - 2, "/s") == 0)
        buf[n - 2] = '\0';
    *rate = (double)parse_num(buf, 1, 1000000, "--rate-limit");
}

/* A whole decimal number in [min, max]: no sign tricks, no junk. */
static uint64_t parse_num(const char *s, uint64_t min, uint64_t max, const char *what)
{
    uint64_t v = 0;
    if (*s == '\0')
        bad_usage("%s: empty number", what);
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            bad_usage("invalid number for %s", what);
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            bad_usage("number out of range for %s", what);
        v = v * 10 + d;
    }
    if (v < min || v > max)
        bad_usage("number out of range for %s", what);
    return v;
}

/* ---------------------------------------------------------------- routes */

static int text(appsrv_res_t *res, int status, const char *type, const char *body)
{
    appsrv_res_set_status(res, status);
    appsrv_res_add_header(res, "Content-Type", type);
    return appsrv_res_set_body(res, body, strlen(body));
}

static int h_health(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    return text(res, 200, "text/plain", "OK");
}

static int h_plaintext(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    return text(res, 200, "text/plain", "Hello, World!");
}

/* GET /ready: 200 while serving, 503 from the start of a stop (the drain
 * delay), so a load balancer stops sending new clients first. */
static int h_ready(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    if (appsrv_server_draining(user))
        return text(res, 503, "text/plain", "draining");
    return text(res, 200, "text/plain", "ready");
}

static int h_json(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    return text(res, 200, "application/json", "{\"message\":\"Hello, World!\"}");
}

static int h_echo_body(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t ct = appsrv_req_header(req, "Content-Type");
    appsrv_res_set_status(res, 200);
    int rc = -ENOENT;
    if (ct.ptr != NULL) {
        /* add_header takes a C string; the view is not NUL-terminated. */
        char *type = malloc(ct.len + 1);
        if (type == NULL)
            return -ENOMEM;
        memcpy(type, ct.ptr, ct.len);
        type[ct.len] = '\0';
        rc = appsrv_res_add_header(res, "Content-Type", type);
        free(type);
    }
    if (rc < 0)
        appsrv_res_add_header(res, "Content-Type", "application/octet-stream");
    /* The request body lives until the response is sent: no copy. */
    appsrv_str_t body = appsrv_req_body(req);
    return appsrv_res_set_body_ref(res, body.ptr, body.len, NULL, NULL);
}

static void free_cb(void *data, void *ud)
{
    (void)ud;
    free(data);
}

static int h_echo_query(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t q = appsrv_req_query(req);
    char *buf = malloc(q.len + 1);
    if (buf == NULL)
        return -ENOMEM;
    ssize_t n = appsrv_req_query_param(req, "msg", buf, q.len + 1);
    if (n < 0) {
        free(buf);
        return text(res, 400, "text/plain",
                    n == -ENOENT ? "missing msg parameter\n" : "bad msg parameter\n");
    }
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_set_body_ref(res, buf, (size_t)n, free_cb, NULL);
}

/* /upload and /stream (issue 16) */
/*
 * POST /upload: multipart/form-data taken as it arrives (never buffered
 * whole): per part its name, filename (null without one), Content-Type
 * (null without one), size and CRC-32, as JSON once the body ended.
 * POST /stream: the body streamed back as it arrives (chunked).
 */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* CRC-32 (ISO-HDLC, as zlib's crc32()): crc of the data so far in, the
 * new one out; start with 0. */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

typedef struct upload {
    appsrv_res_t *res;
    appsrv_multipart_t *mp;
    char *json; /* {"parts":[... so far */
    size_t len, cap;
    bool failed; /* the JSON could not grow */
    uint64_t size;
    uint32_t crc;
} upload_t;

static void up_put(upload_t *u, const char *s, size_t n)
{
    if (u->len + n + 1 > u->cap) {
        size_t cap = u->cap ? u->cap : 256;
        while (cap < u->len + n + 1)
            cap *= 2;
        char *j = realloc(u->json, cap);
        if (j == NULL) {
            u->failed = true;
            return;
        }
        u->json = j;
        u->cap = cap;
    }
    memcpy(u->json + u->len, s, n);
    u->len += n;
}

/* A JSON string (RFC 8259), or null for an absent value. */
static void up_str(upload_t *u, appsrv_str_t v)
{
    if (v.ptr == NULL) {
        up_put(u, "null", 4);
        return;
    }
    up_put(u, "\"", 1);
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.ptr[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            up_put(u, esc, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            up_put(u, esc, 6);
        } else {
            up_put(u, (const char *)&ch, 1);
        }
    }
    up_put(u, "\"", 1);
}

static int up_part(const appsrv_part_t *p, void *ud)
{
    upload_t *u = ud;
    up_put(u, p->index > 0 ? ",{\"name\":" : "{\"name\":", p->index > 0 ? 9 : 8);
    up_str(u, p->name);
    up_put(u, ",\"filename\":", 12);
    up_str(u, p->filename);
    up_put(u, ",\"type\":", 8);
    up_str(u, p->content_type);
    u->size = 0;
    u->crc = 0;
    return u->failed ? -ENOMEM : 0;
}

static int up_data(const appsrv_part_t *p, const void *data, size_t len, void *ud)
{
    (void)p;
    upload_t *u = ud;
    u->size += len;
    u->crc = crc32_update(u->crc, data, len);
    return 0;
}

static int up_part_end(const appsrv_part_t *p, void *ud)
{
    (void)p;
    upload_t *u = ud;
    char tail[64];
    int n = snprintf(tail, sizeof(tail), ",\"size\":%llu,\"crc32\":\"%08x\"}",
                     (unsigned long long)u->size, (unsigned)u->crc);
    up_put(u, tail, (size_t)n);
    return u->failed ? -ENOMEM : 0;
}

static void up_free(upload_t *u)
{
    appsrv_multipart_free(u->mp);
    free(u->json);
    free(u);
}

/* Finishes the response (once) and frees u. */
static void up_answer(upload_t *u, int status, const char *why)
{
    appsrv_res_t *res = u->res;
    if (status == 200) {
        up_put(u, "]}\n", 3);
        if (u->failed) {
            status = 500;
            why = "out of memory";
        }
    }
    if (status == 200) {
        text(res, 200, "application/json", "");
        appsrv_res_set_body(res, u->json, u->len);
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s\n", why);
        text(res, status, "text/plain", msg);
    }
    appsrv_res_send(res);
    up_free(u);
}

static int up_body(appsrv_req_t *req, const void *data, size_t len, int end, void *ud)
{
    (void)req;
    upload_t *u = ud;
    if (end == 0) {
        int rc = appsrv_multipart_feed(u->mp, data, len);
        if (rc < 0) {
            up_answer(u, rc == -E2BIG || rc == -EMSGSIZE || rc == APPSRV_EPARSE ? 400 : 500,
                      appsrv_multipart_error(u->mp));
            return -1; /* the rest is not read */
        }
        return 0;
    }
    if (end == APPSRV_ECANCELED)
        return 0; /* up_cancel follows */
    if (end == -EMSGSIZE)
        up_answer(u, 413, "Payload Too Large");
    else if (end < 0)
        up_answer(u, 400, "malformed chunked body");
    else if (appsrv_multipart_finish(u->mp) < 0)
        up_answer(u, 400, appsrv_multipart_error(u->mp));
    else
        up_answer(u, 200, NULL);
    return 0;
}

static void up_cancel(appsrv_res_t *res, void *ud)
{
    appsrv_res_send(res); /* APPSRV_ECANCELED: released all the same */
    up_free(ud);
}

static int h_upload(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    upload_t *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return -ENOMEM;
    u->res = res;
    static const appsrv_multipart_handlers_t h = {up_part, up_data, up_part_end, 0, 0};
    appsrv_str_t ct = appsrv_req_header(req, "Content-Type");
    int rc = ct.ptr == NULL ? -ENOENT : appsrv_multipart_new(&u->mp, ct, &h, u);
    if (rc < 0) {
        free(u);
        return text(res, rc == -ENOENT ? 415 : 400, "text/plain",
                    rc == -ENOENT ? "expected multipart/form-data\n"
                                  : "bad multipart/form-data boundary\n");
    }
    up_put(u, "{\"parts\":[", 10);
    appsrv_req_body_stream(req, up_body, u);
    appsrv_res_on_cancel(res, up_cancel, u);
    return APPSRV_LATER;
}

typedef struct stream_echo {
    appsrv_req_t *req;
    appsrv_res_t *res;
    char *pend; /* a piece the stream refused (-EAGAIN), sent on drain */
    size_t pend_len;
    bool ended;
} stream_echo_t;

static void se_end(stream_echo_t *s)
{
    appsrv_res_end(s->res); /* 0 or APPSRV_ECANCELED: released either way */
    free(s->pend);
    free(s);
}

/* The stream drained: the refused piece goes out, then reading resumes. */
static void se_drain(appsrv_res_t *res, void *ud)
{
    stream_echo_t *s = ud;
    if (s->pend_len == 0)
        return;
    int rc = appsrv_res_write(res, s->pend, s->pend_len);
    if (rc == -EAGAIN)
        return; /* the next drain */
    s->pend_len = 0;
    if (s->ended)
        se_end(s);
    else
        appsrv_req_body_resume(s->req);
}

static int se_body(appsrv_req_t *req, const void *data, size_t len, int end, void *ud)
{
    (void)req;
    stream_echo_t *s = ud;
    if (end == APPSRV_ECANCELED)
        return 0; /* se_cancel follows */
    if (end != 0) {
        /* The end, or an error (over --max-body: the library cuts the
         * connection, so the last chunk never goes out). */
        if (s->pend_len > 0) {
            s->ended = true; /* ends after the drain */
            return 0;
        }
        se_end(s);
        return 0;
    }
    int rc = appsrv_res_write(s->res, data, len);
    if (rc == -EAGAIN) {
        char *p = realloc(s->pend, len);
        if (p == NULL)
            return -ENOMEM;
        memcpy(p, data, len);
        s->pend = p;
        s->pend_len = len;
        return APPSRV_PAUSE;
    }
    return rc < 0 ? rc : 0;
}

static void se_cancel(appsrv_res_t *res, void *ud)
{
    (void)res;
    se_end(ud);
}

static int h_stream(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    stream_echo_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->req = req;
    s->res = res;
    appsrv_res_set_status(res, 200);
    appsrv_str_t ct = appsrv_req_header(req, "Content-Type");
    char type[256];
    if (ct.ptr != NULL && ct.len < sizeof(type)) {
        memcpy(type, ct.ptr, ct.len);
        type[ct.len] = '\0';
    } else {
        strcpy(type, "application/octet-stream");
    }
    if (appsrv_res_add_header(res, "Content-Type", type) < 0)
        appsrv_res_add_header(res, "Content-Type", "application/octet-stream");
    appsrv_res_on_drain(res, se_drain, s);
    appsrv_res_on_cancel(res, se_cancel, s);
    appsrv_req_body_stream(req, se_body, s);
    appsrv_res_stream(res);
    return APPSRV_LATER;
}

static int l_ping(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "PONG", 4);
}

static int l_echo(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t body = appsrv_req_body(req);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, body.ptr, body.len);
}

static int l_quit(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_close(res);
    return appsrv_res_set_body(res, "BYE", 3);
}


/* -------------------------------------------------------------- WebSocket */

/* GET /ws: every message comes back as a message of the same type. */
static void ws_echo_open(appsrv_ws_t *ws, void *user)
{
    (void)ws, (void)user;
}

static void ws_echo_message(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                            void *user)
{
    (void)user;
    /* Input waits while output backs up, so this does not see -EAGAIN;
     * anything else (closing) just drops the echo. */
    appsrv_ws_send(ws, type, data, len);
}

static void ws_echo_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    (void)code, (void)reason, (void)user;
    appsrv_ws_release(ws); /* the reference on_open gave us */
}

/* GET /ws/room: one room; every message goes to every member (the sender
 * too). The list owns the members' references: added in on_open,
 * removed and released in on_close, all under the lock, so a broadcast
 * (under the same lock) only sees handles it may use. */
static struct {
    pthread_mutex_t lock;
    appsrv_ws_t **v;
    size_t n, cap;
} g_room = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

static void room_open(appsrv_ws_t *ws, void *user)
{
    (void)user;
    pthread_mutex_lock(&g_room.lock);
    if (g_room.n == g_room.cap) {
        size_t cap = g_room.cap ? g_room.cap * 2 : 64;
        appsrv_ws_t **v = realloc(g_room.v, cap * sizeof(*v));
        if (v == NULL) {
            pthread_mutex_unlock(&g_room.lock);
            appsrv_ws_close(ws, 1011, "out of memory");
            return; /* on_close still releases it */
        }
        g_room.v = v;
        g_room.cap = cap;
    }
    g_room.v[g_room.n++] = ws;
    appsrv_ws_set_data(ws, &g_room); /* marks a member */
    pthread_mutex_unlock(&g_room.lock);
}

static void room_message(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                         void *user)
{
    (void)ws, (void)user;
    pthread_mutex_lock(&g_room.lock);
    for (size_t i = 0; i < g_room.n; i++) {
        /* A member that lets 256 KiB pile up is too slow for the room. */
        if (appsrv_ws_send(g_room.v[i], type, data, len) == -EAGAIN)
            appsrv_ws_close(g_room.v[i], 1008, "too slow");
    }
    pthread_mutex_unlock(&g_room.lock);
}

static void room_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    (void)code, (void)reason, (void)user;
    pthread_mutex_lock(&g_room.lock);
    for (size_t i = 0; i < g_room.n; i++)
        if (g_room.v[i] == ws) {
            g_room.v[i] = g_room.v[--g_room.n];
            break;
        }
    pthread_mutex_unlock(&g_room.lock);
    appsrv_ws_release(ws);
}

static const appsrv_ws_handlers_t ws_echo = {
    .on_open = ws_echo_open,
    .on_message = ws_echo_message,
    .on_close = ws_echo_close,
};

static const appsrv_ws_handlers_t ws_room = {
    .on_open = room_open,
    .on_message = room_message,
    .on_close = room_close,
};

/* ------------------------------------------------------- timed responses */

/* A deferred response finished by a timer on the request's own loop
 * (appsrv_timer_*): /delay sends it once, /events sends one event per
 * period. Everything here runs on that loop's thread. */
typedef struct job {
    appsrv_res_t *res;
    appsrv_timer_t *timer;
    int left; /* /events: events still to send */
    int seq;
    bool stopping; /* the server began draining: the stream ends now */
} job_t;

static void job_free(job_t *j)
{
    appsrv_timer_free(j->timer); /* from its own callback: freed on return */
    free(j);
}

static void delay_fire(appsrv_timer_t *t, void *user)
{
    (void)t;
    job_t *j = user;
    appsrv_res_send(j->res); /* APPSRV_ECANCELED: released all the same */
    job_free(j);
}

/* GET /delay?ms=N: answers "OK" after N ms (N <= 10,000). */
static int h_delay(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char buf[16];
    ssize_t n = appsrv_req_query_param(req, "ms", buf, sizeof(buf));
    uint64_t ms = 0;
    bool ok = n > 0;
    for (ssize_t i = 0; ok && i < n; i++) {
        ok = buf[i] >= '0' && buf[i] <= '9';
        ms = ms * 10 + (uint64_t)(buf[i] - '0');
    }
    if (!ok || ms > 10000)
        return text(res, 400, "text/plain", "ms must be 0..10000\n");
    text(res, 200, "text/plain", "OK");
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->res = res;
    if (appsrv_timer_new(appsrv_req_loop(req), delay_fire, j, &j->timer) < 0 ||
        appsrv_timer_start(j->timer, ms, 0) < 0) {
        job_free(j);
        return -ENOMEM;
    }
    return APPSRV_LATER;
}

static void events_fire(appsrv_timer_t *t, void *user)
{
    (void)t;
    job_t *j = user;
    char data[32], id[16];
    snprintf(data, sizeof(data), "tick %d", j->seq);
    snprintf(id, sizeof(id), "%d", j->seq);
    int rc = j->left > 0 && !j->stopping ? appsrv_res_sse_send(j->res, "tick", id, data) : 0;
    if (rc == -EAGAIN)
        return; /* slow reader: the same event on the next tick */
    if (j->left <= 1 || rc < 0 || j->stopping) {
        appsrv_res_end(j->res);
        job_free(j);
        return;
    }
    j->left--;
    j->seq++;
}

/* The stop notification of an /events stream (loop thread): the stream
 * ends at once, cleanly (last chunk included), instead of the drain
 * timeout cutting it. */
static void events_on_stop(appsrv_res_t *res, void *ud)
{
    (void)res;
    job_t *j = ud;
    j->stopping = true;
    appsrv_timer_start(j->timer, 0, 0);
}

/* GET /events?n=N: N server-sent events, one per 100 ms (N <= 1,000). */
static int h_events(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char buf[16];
    ssize_t n = appsrv_req_query_param(req, "n", buf, sizeof(buf));
    int count = 0;
    bool ok = n > 0;
    for (ssize_t i = 0; ok && i < n; i++) {
        ok = buf[i] >= '0' && buf[i] <= '9' && count <= 1000;
        count = count * 10 + (buf[i] - '0');
    }
    if (!ok || count > 1000)
        return text(res, 400, "text/plain", "n must be 0..1000\n");
    appsrv_res_set_status(res, 200);
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->res = res;
    j->left = count;
    j->seq = 1;
    if (appsrv_timer_new(appsrv_req_loop(req), events_fire, j, &j->timer) < 0) {
        free(j);
        return -ENOMEM;
    }
    if (appsrv_res_sse_begin(res, 15000) < 0) {
        job_free(j);
        return -1;
    }
    if (count == 0 || appsrv_timer_start(j->timer, 0, 100) < 0) {
        appsrv_res_end(res);
        job_free(j);
        return APPSRV_LATER;
    }
    appsrv_res_on_stop(res, events_on_stop, j);
    return APPSRV_LATER;
}

static void on_signal(int sig)
{
    (void)sig;
    appsrv_server_stop(g_srv);
}

static void print_listening(const char *scheme, const char *host, int port)
{
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "appsrv: listening on %s://%s%s%s:%d\n", scheme, v6 ? "[" : "", host,
            v6 ? "]" : "", port);
    fflush(stderr);
}

#define CHECK(call)                                                            \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ < 0) {                                                         \
            fprintf(stderr, "appsrv: %s: %s\n", #call, appsrv_strerror(rc_));  \
            return 1;                                                          \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------- TLS */

#define MAX_SNI 64

typedef struct sni_arg {
    char *name, *cert, *key; /* split in place from the option's copy */
} sni_arg_t;

static struct {
    appsrv_tls_t *tls;
    volatile sig_atomic_t quit;
    bool quiet;
} g_reload;

/* SIGHUP is blocked everywhere and taken here, on a plain thread, where
 * the reload may read files and print. */
static void *reload_main(void *arg)
{
    sigset_t *set = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0 || g_reload.quit)
            break;
        int rc = appsrv_tls_reload(g_reload.tls);
        if (rc < 0)
            fprintf(stderr, "appsrv: TLS reload failed: %s; keeping the old certificates\n",
                    appsrv_strerror(rc));
        else if (!g_reload.quiet)
            fprintf(stderr, "appsrv: TLS certificates reloaded\n");
        fflush(stderr);
    }
    return NULL;
}

static int split_sni(char *arg, sni_arg_t *out)
{
    char *c1 = strchr(arg, ':');
    char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    if (c1 == NULL || c2 == NULL || c1 == arg || c2 == c1 + 1 || c2[1] == '\0')
        return -1;
    *c1 = *c2 = '\0';
    *out = (sni_arg_t){arg, c1 + 1, c2 + 1};
    return 0;
}

enum {
    OPT_MAX_BODY = 256,
    OPT_IDLE,
    OPT_HEAD,
    OPT_ACCESS_LOG,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_SNI,
    OPT_MAX_WS,
    OPT_WS_PING,
    OPT_LOG_FORMAT,
    OPT_METRICS,
    OPT_NO_REQUEST_IDS,
    OPT_CORS,
    OPT_JSON_ERRORS,
    OPT_GZIP,
    OPT_ROOT,
    OPT_MAX_UPLOAD,
    OPT_DRAIN_DELAY,
    OPT_PROXY_PROTOCOL,
    OPT_TRUST_PROXY,
    OPT_MAX_CONNS_PER_CLIENT,
    OPT_RATE_LIMIT,
};

#define MAX_CORS 16

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"line-port", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"max-conns", required_argument, NULL, 'c'},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"head-timeout", required_argument, NULL, OPT_HEAD},
        {"access-log", no_argument, NULL, OPT_ACCESS_LOG},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"tls-sni", required_argument, NULL, OPT_TLS_SNI},
        {"max-ws-message", required_argument, NULL, OPT_MAX_WS},
        {"ws-ping", required_argument, NULL, OPT_WS_PING},
        {"access-log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"metrics", no_argument, NULL, OPT_METRICS},
        {"no-request-ids", no_argument, NULL, OPT_NO_REQUEST_IDS},
        {"cors", required_argument, NULL, OPT_CORS},
        {"json-errors", no_argument, NULL, OPT_JSON_ERRORS},
        {"gzip", no_argument, NULL, OPT_GZIP},
        {"root", required_argument, NULL, OPT_ROOT},
        {"max-upload", required_argument, NULL, OPT_MAX_UPLOAD},
        {"drain-delay", required_argument, NULL, OPT_DRAIN_DELAY},
        {"proxy-protocol", no_argument, NULL, OPT_PROXY_PROTOCOL},
        {"trust-proxy", required_argument, NULL, OPT_TRUST_PROXY},
        {"max-conns-per-client", required_argument, NULL, OPT_MAX_CONNS_PER_CLIENT},
        {"rate-limit", required_argument, NULL, OPT_RATE_LIMIT},
        {"quiet", no_argument, NULL, 'q'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.sd_notify = true; /* READY=1 / STOPPING=1 when NOTIFY_SOCKET is set */
    const char *host = "127.0.0.1";
    int port = 8080, line_port = -1;
    bool quiet = false, metrics = false;
    const char *tls_cert = NULL, *tls_key = NULL;
    sni_arg_t sni[MAX_SNI];
    int nsni = 0;
    appsrv_log_format_t log_format = 0; /* 0: no access log */
    /* Every response carries an X-Request-ID (the client's when valid). */
    cfg.request_ids = true;
    bool json_errors = false, gzip = false;
    const char *root = NULL; /* --root */
    uint64_t max_upload = (uint64_t)1 << 30;
    bool proxy_protocol = false;
    const char *trust_proxy = NULL;
    const char *cors[MAX_CORS];
    size_t ncors = 0;

    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":H:p:l:t:c:qVh", opts, NULL)) != -1) {
        switch (ch) {
        case 'H':
            if (optarg[0] == '\0')
                bad_usage("%s: empty host", "--host");
            host = optarg;
            break;
        case 'p':
            port = (int)parse_num(optarg, 0, 65535, "--port");
            break;
        case 'l':
            line_port = (int)parse_num(optarg, 0, 65535, "--line-port");
            break;
        case 't':
            cfg.threads = (int)parse_num(optarg, 1, 1024, "--threads");
            break;
        case 'c':
            cfg.max_conns = (int)parse_num(optarg, 1, 1000000, "--max-conns");
            break;
        case OPT_MAX_BODY:
            cfg.max_body = (size_t)parse_num(optarg, 0, (uint64_t)1 << 40, "--max-body");
            break;
        case OPT_IDLE:
            cfg.idle_timeout_ms = (int)parse_num(optarg, 1, 86400, "--idle-timeout") * 1000;
            break;
        case OPT_HEAD:
            cfg.head_timeout_ms = (int)parse_num(optarg, 1, 86400, "--head-timeout") * 1000;
            break;
        case OPT_ACCESS_LOG:
            if (log_format == 0)
                log_format = APPSRV_LOG_COMBINED;
            break;
        case OPT_LOG_FORMAT:
            if (strcmp(optarg, "combined") == 0)
                log_format = APPSRV_LOG_COMBINED;
            else if (strcmp(optarg, "json") == 0)
                log_format = APPSRV_LOG_JSON;
            else
                bad_usage("--access-log-format: %s is not combined or json", optarg);
            break;
        case OPT_METRICS:
            metrics = true;
            break;
        case OPT_NO_REQUEST_IDS:
            cfg.request_ids = false;
            break;
        case OPT_TLS_CERT:
            tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            tls_key = optarg;
            break;
        case OPT_TLS_SNI:
            if (nsni == MAX_SNI)
                bad_usage("%s: at most 64", "--tls-sni");
            if (split_sni(optarg, &sni[nsni]) < 0)
                bad_usage("%s: expected NAME:CERT:KEY", "--tls-sni");
            nsni++;
            break;
        case OPT_MAX_WS:
            cfg.max_ws_message =
                (size_t)parse_num(optarg, 1, (uint64_t)1 << 30, "--max-ws-message");
            break;
        case OPT_WS_PING:
            cfg.ws_ping_ms = (int)parse_num(optarg, 0, 86400, "--ws-ping") * 1000;
            break;
        case OPT_CORS:
            if (optarg[0] == '\0')
                bad_usage("%s: empty origin", "--cors");
            if (ncors == MAX_CORS)
                bad_usage("%s: too many origins", "--cors");
            cors[ncors++] = optarg;
            break;
        case OPT_MAX_UPLOAD:
            max_upload = parse_num(optarg, 0, (uint64_t)1 << 40, "--max-upload");
            break;
        case OPT_PROXY_PROTOCOL:
            proxy_protocol = true;
            break;
        case OPT_TRUST_PROXY:
            trust_proxy = optarg;
            break;
        case OPT_MAX_CONNS_PER_CLIENT:
            cfg.max_conns_per_client =
                (int)parse_num(optarg, 1, 1000000, "--max-conns-per-client");
            break;
        case OPT_RATE_LIMIT:
            parse_rate(optarg, &cfg.rate_limit, &cfg.rate_burst);
            break;
        case OPT_JSON_ERRORS:
            json_errors = true;
            break;
        case OPT_GZIP:
            gzip = true;
            break;
        case OPT_ROOT:
            if (optarg[0] == '\0')
                bad_usage("%s: empty directory", "--root");
            root = optarg;
            break;
        case OPT_DRAIN_DELAY:
            cfg.drain_delay_ms = (int)parse_num(optarg, 0, 3600 * 1000, "--drain-delay");
            break;
        case 'q':
            quiet = true;
            break;
        case 'V':
            printf("appsrv %s\n", appsrv_version());
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            bad_usage("option %s needs a value", argv[optind - 1]);
            break;
        default:
            bad_usage("unknown option %s", argv[optind - 1]);
            break;
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument %s", argv[optind]);
    if (gzip && !appsrv_gzip_available()) {
        fprintf(stderr, "appsrv: --gzip: this build has no gzip (rebuild with zlib: "
                        "install zlib1g-dev)\n");
        return 2;
    }
    if ((tls_cert == NULL) != (tls_key == NULL))
        bad_usage("%s: --tls-cert and --tls-key go together",
                  tls_cert ? "--tls-cert" : "--tls-key");
    if (nsni > 0 && tls_cert == NULL)
        bad_usage("%s needs --tls-cert and --tls-key", "--tls-sni");
    appsrv_tls_t *tls = NULL;
    if (tls_cert != NULL) {
        int rc = appsrv_tls_new(&tls, NULL, tls_cert, tls_key, NULL);
        if (rc == -ENOTSUP) {
            fprintf(stderr, "appsrv: this build has no TLS (rebuild with OpenSSL 3)\n");
            return 1;
        }
        if (rc < 0) {
            fprintf(stderr, "appsrv: %s, %s: %s\n", tls_cert, tls_key, appsrv_strerror(rc));
            return 1;
        }
        for (int i = 0; i < nsni; i++) {
            rc = appsrv_tls_add_sni(tls, sni[i].name, sni[i].cert, sni[i].key, NULL);
            if (rc < 0) {
                fprintf(stderr, "appsrv: --tls-sni %s: %s, %s: %s\n", sni[i].name, sni[i].cert,
                        sni[i].key, appsrv_strerror(rc));
                appsrv_tls_free(tls);
                return 1;
            }
        }
    }

    appsrv_server_t *srv;
    crc_init();
    CHECK(appsrv_server_new(&srv, &cfg));
    CHECK(appsrv_route(srv, "GET", "/health", h_health, NULL));
    CHECK(appsrv_route(srv, "GET", "/ready", h_ready, srv));
    CHECK(appsrv_route(srv, "GET", "/plaintext", h_plaintext, NULL));
    CHECK(appsrv_route(srv, "GET", "/json", h_json, NULL));
    CHECK(appsrv_route(srv, "POST", "/echo", h_echo_body, NULL));
    CHECK(appsrv_route(srv, "PUT", "/echo", h_echo_body, NULL));
    CHECK(appsrv_route(srv, "GET", "/echo", h_echo_query, NULL));
    CHECK(appsrv_route(srv, "GET", "/delay", h_delay, NULL));
    CHECK(appsrv_route(srv, "GET", "/events", h_events, NULL));
    CHECK(appsrv_route_ex(srv, "POST", "/upload", h_upload,
                          &(appsrv_route_opts_t){.max_body = max_upload, .stream_body = true},
                          NULL));
    CHECK(appsrv_route_ex(srv, "POST", "/stream", h_stream,
                          &(appsrv_route_opts_t){.stream_body = true}, NULL));
    CHECK(appsrv_route_ws(srv, "/ws", &ws_echo, NULL));
    CHECK(appsrv_route_ws(srv, "/ws/room", &ws_room, NULL));
    if (ncors > 0) {
        appsrv_cors_t c = {.origins = cors, .norigins = ncors, .max_age = 600,
                           .expose_headers = "Content-Length"};
        CHECK(appsrv_cors_use(srv, &c));
    }
    if (json_errors)
        CHECK(appsrv_set_error_responder(srv, appsrv_error_json, NULL));
    if (gzip)
        CHECK(appsrv_gzip_use(srv, NULL));
    if (root != NULL) {
        /* "/": every GET path the routes above do not take. */
        appsrv_static_opts_t so = {.index = NULL, .precompressed = true, .max_age = 0};
        int rc = appsrv_static(srv, "/", root, &so);
        if (rc < 0) {
            fprintf(stderr, "appsrv: --root %s: %s\n", root, appsrv_strerror(rc));
            appsrv_server_free(srv);
            appsrv_tls_free(tls);
            return 1;
        }
    }
    CHECK(appsrv_route_line(srv, "PING", l_ping, NULL));
    CHECK(appsrv_route_line(srv, "ECHO", l_echo, NULL));
    CHECK(appsrv_route_line(srv, "QUIT", l_quit, NULL));
    if (metrics)
        CHECK(appsrv_route_metrics(srv, "/metrics"));
    /* The library's file logger on stderr: lines are written in batches
     * off the request path, and all of them before run returns. */
    if (log_format != 0)
        CHECK(appsrv_access_log_fd(srv, STDERR_FILENO, log_format));

    if (trust_proxy != NULL) {
        int trc = appsrv_trust_proxy(srv, trust_proxy);
        if (trc < 0) {
            fprintf(stderr, "appsrv: --trust-proxy %s: %s\n", trust_proxy, appsrv_strerror(trc));
            appsrv_server_free(srv);
            appsrv_tls_free(tls);
            return 2;
        }
    }
    /* Sockets from systemd or start_server take the place of --port and
     * --line-port (deploy_cli.c). */
    int hfd = -1, lfd = -1;
    if (inherited_roles(&hfd, &lfd) < 0) {
        appsrv_server_free(srv);
        appsrv_tls_free(tls);
        return 1;
    }
    if (hfd >= 0 && proxy_protocol) {
        fprintf(stderr, "appsrv: --proxy-protocol is not available on an inherited socket\n");
        appsrv_server_free(srv);
        appsrv_tls_free(tls);
        return 2;
    }
    appsrv_listen_opts_t lopts = {
        .proto = APPSRV_PROTO_HTTP, .tls = tls, .proxy_protocol = proxy_protocol};
    int hport = hfd >= 0 ? (tls != NULL ? appsrv_listen_https_fd(srv, hfd, tls)
                                        : appsrv_listen_http_fd(srv, hfd))
                         : appsrv_listen_opts(srv, host, port, &lopts);
    if (hport < 0 && hfd >= 0) {
        fprintf(stderr, "appsrv: cannot serve the inherited socket %d: %s\n", hfd,
                appsrv_strerror(hport));
        appsrv_server_free(srv);
        appsrv_tls_free(tls);
        return 1;
    }
    if (hport < 0) {
        fprintf(stderr, "appsrv: cannot listen on %s port %d: %s\n", host, port,
                appsrv_strerror(hport));
        appsrv_server_free(srv);
        appsrv_tls_free(tls);
        return 1;
    }
    int lport = -1;
    if (lfd >= 0) {
        lport = appsrv_listen_line_fd(srv, lfd);
        if (lport < 0) {
            fprintf(stderr, "appsrv: cannot serve the inherited socket %d: %s\n", lfd,
                    appsrv_strerror(lport));
            appsrv_server_free(srv);
            appsrv_tls_free(tls);
            return 1;
        }
    } else if (line_port >= 0) {
        lport = appsrv_listen_line(srv, host, line_port);
        if (lport < 0) {
            fprintf(stderr, "appsrv: cannot listen on %s port %d: %s\n", host, line_port,
                    appsrv_strerror(lport));
            appsrv_server_free(srv);
            appsrv_tls_free(tls);
            return 1;
        }
    }

    g_srv = srv;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* SIGHUP reloads the certificates: blocked here before any thread
     * starts (they inherit the mask), taken by sigwait on reload_main. */
    static sigset_t hup;
    pthread_t reload_thread;
    bool reloading = false;
    if (tls != NULL) {
        sigemptyset(&hup);
        sigaddset(&hup, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &hup, NULL);
        g_reload.tls = tls;
        g_reload.quiet = quiet;
        reloading = pthread_create(&reload_thread, NULL, reload_main, &hup) == 0;
    }
    if (hfd >= 0)
        print_listening_fd(tls != NULL ? "https" : "http", hfd);
    else
        print_listening(tls != NULL ? "https" : "http", host, hport);
    if (lfd >= 0)
        print_listening_fd("line", lfd);
    else if (lport >= 0)
        print_listening("line", host, lport);

    int rc = appsrv_server_run(srv);
    /* run returned: every deferred response was finished. */
    if (reloading) {
        g_reload.quit = 1;
        pthread_kill(reload_thread, SIGHUP);
        pthread_join(reload_thread, NULL);
    }
    free(g_room.v); /* run returned: every member was closed and released */
    /* The server is freed below: a late signal must not reach it (the
     * handler would stop a freed server). */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    if (!quiet && rc == 0)
        fprintf(stderr, "appsrv: stopped\n");
    if (rc < 0)
        fprintf(stderr, "appsrv: run: %s\n", appsrv_strerror(rc));
    appsrv_server_free(srv);
    appsrv_tls_free(tls);
    return rc < 0 ? 1 : 0;
}
