/* SPDX-License-Identifier: MIT */
/*
 * appsrv.c - the CLI: a standalone echo-and-respond server (SPEC §5).
 * Parses flags, registers the HTTP and line routes with the public API
 * like any host program, prints the listening lines, and runs until
 * SIGINT/SIGTERM, which call appsrv_server_stop() (async-signal-safe).
 * It holds no protocol code: framing, limits and errors are the library's.
 * GET /delay and GET /events show deferred responses finished by the
 * library's timers (appsrv_timer_*) on the request's own loop: the CLI
 * has no thread of its own.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <appsrv.h>

static appsrv_server_t *g_srv; /* for the signal handler only */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: appsrv [-H|--host ADDR] [-p|--port PORT] [-l|--line-port PORT]\n"
            "              [-t|--threads N] [-c|--max-conns N] [--max-body BYTES]\n"
            "              [--idle-timeout SEC] [--head-timeout SEC] [--access-log]\n"
            "              [--cors ORIGIN]... [--json-errors]\n"
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
            "      --access-log       one line per request on stderr\n"
            "      --cors ORIGIN      allow cross-origin calls from ORIGIN (repeatable;\n"
            "                         * for any origin, without credentials)\n"
            "      --json-errors      the library's own answers as JSON\n"
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

/* ---------------------------------------------------------------- logging */

/* The request counter hook (with --access-log): counts the requests that
 * reach routing; the access log prints the count so far ("#N"). With one
 * worker it is the request's own number, with more an order. */
static int count_hook(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)res;
    atomic_fetch_add_explicit((atomic_ulong *)user, 1, memory_order_relaxed);
    return 0;
}

static void access_log(const appsrv_log_entry_t *e, void *user)
{
    unsigned long n = atomic_load_explicit((atomic_ulong *)user, memory_order_relaxed);
    char peer[64];
    if (appsrv_addr_format(e->peer, peer, sizeof(peer)) < 0)
        strcpy(peer, "-");
    /* One fprintf: stdio locks the stream, so lines never interleave. */
    const char *ab = e->aborted ? " aborted" : "";
    if (e->proto == APPSRV_PROTO_LINE)
        fprintf(stderr, "%s line \"%.*s\" %d %" PRIu64 " %" PRIu64 "us%s\n", peer,
                (int)e->method.len, e->method.ptr ? e->method.ptr : "", e->status, e->bytes,
                e->usec, ab);
    else
        fprintf(stderr, "%s \"%.*s %.*s\" %d %" PRIu64 " %" PRIu64 "us%s #%lu\n", peer,
                (int)e->method.len, e->method.ptr ? e->method.ptr : "-", (int)e->target.len,
                e->target.ptr ? e->target.ptr : "", e->status, e->bytes, e->usec, ab, n);
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

enum { OPT_MAX_BODY = 256, OPT_IDLE, OPT_HEAD, OPT_ACCESS_LOG, OPT_CORS, OPT_JSON_ERRORS };

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
        {"cors", required_argument, NULL, OPT_CORS},
        {"json-errors", no_argument, NULL, OPT_JSON_ERRORS},
        {"quiet", no_argument, NULL, 'q'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    const char *host = "127.0.0.1";
    int port = 8080, line_port = -1;
    bool quiet = false, json_errors = false;
    const char *cors[MAX_CORS];
    size_t ncors = 0;
    static atomic_ulong nreqs;

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
            cfg.access_log = access_log;
            cfg.access_log_user = &nreqs;
            break;
        case OPT_CORS:
            if (optarg[0] == '\0')
                bad_usage("%s: empty origin", "--cors");
            if (ncors == MAX_CORS)
                bad_usage("%s: too many origins", "--cors");
            cors[ncors++] = optarg;
            break;
        case OPT_JSON_ERRORS:
            json_errors = true;
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

    appsrv_server_t *srv;
    CHECK(appsrv_server_new(&srv, &cfg));
    CHECK(appsrv_route(srv, "GET", "/health", h_health, NULL));
    CHECK(appsrv_route(srv, "GET", "/plaintext", h_plaintext, NULL));
    CHECK(appsrv_route(srv, "GET", "/json", h_json, NULL));
    CHECK(appsrv_route(srv, "POST", "/echo", h_echo_body, NULL));
    CHECK(appsrv_route(srv, "PUT", "/echo", h_echo_body, NULL));
    CHECK(appsrv_route(srv, "GET", "/echo", h_echo_query, NULL));
    CHECK(appsrv_route(srv, "GET", "/delay", h_delay, NULL));
    CHECK(appsrv_route(srv, "GET", "/events", h_events, NULL));
    if (cfg.access_log != NULL)
        CHECK(appsrv_use(srv, count_hook, NULL, &nreqs));
    if (ncors > 0) {
        appsrv_cors_t c = {.origins = cors, .norigins = ncors, .max_age = 600,
                           .expose_headers = "Content-Length"};
        CHECK(appsrv_cors_use(srv, &c));
    }
    if (json_errors)
        CHECK(appsrv_set_error_responder(srv, appsrv_error_json, NULL));
    CHECK(appsrv_route_line(srv, "PING", l_ping, NULL));
    CHECK(appsrv_route_line(srv, "ECHO", l_echo, NULL));
    CHECK(appsrv_route_line(srv, "QUIT", l_quit, NULL));

    int hport = appsrv_listen_http(srv, host, port);
    if (hport < 0) {
        fprintf(stderr, "appsrv: cannot listen on %s port %d: %s\n", host, port,
                appsrv_strerror(hport));
        appsrv_server_free(srv);
        return 1;
    }
    int lport = -1;
    if (line_port >= 0) {
        lport = appsrv_listen_line(srv, host, line_port);
        if (lport < 0) {
            fprintf(stderr, "appsrv: cannot listen on %s port %d: %s\n", host, line_port,
                    appsrv_strerror(lport));
            appsrv_server_free(srv);
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

    print_listening("http", host, hport);
    if (lport >= 0)
        print_listening("line", host, lport);

    int rc = appsrv_server_run(srv);
    /* The server is freed below: a late signal must not reach it (the
     * handler would stop a freed server). */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    if (!quiet && rc == 0)
        fprintf(stderr, "appsrv: stopped\n");
    if (rc < 0)
        fprintf(stderr, "appsrv: run: %s\n", appsrv_strerror(rc));
    appsrv_server_free(srv);
    return rc < 0 ? 1 : 0;
}
