/* SPDX-License-Identifier: MIT */
/*
 * appsrv.c - the CLI: a standalone echo-and-respond server (SPEC §5).
 * Parses flags, registers the HTTP and line routes with the public API
 * like any host program, prints the listening lines, and runs until
 * SIGINT/SIGTERM, which call appsrv_server_stop() (async-signal-safe).
 * It holds no protocol code: framing, limits and errors are the library's.
 * GET /delay and GET /events show deferred responses: a timer thread of
 * the CLI's own (a heap keyed by deadline) finishes them from outside the
 * server's loops, the way a host's database or RPC thread would.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <appsrv.h>

static appsrv_server_t *g_srv; /* for the signal handler only */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: appsrv [-H|--host ADDR] [-p|--port PORT] [-l|--line-port PORT]\n"
            "              [-t|--threads N] [-c|--max-conns N] [--max-body BYTES]\n"
            "              [--idle-timeout SEC] [--head-timeout SEC] [--access-log]\n"
            "              [--access-log-format combined|json] [--metrics]\n"
            "              [--no-request-ids]\n"
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
            "      --access-log-format combined|json\n"
            "                         access-log line format (implies --access-log)\n"
            "      --metrics          serve Prometheus metrics on GET /metrics\n"
            "      --no-request-ids   no X-Request-ID on responses (benchmarks)\n"
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


/* ----------------------------------------------------------- timer thread */

typedef struct job {
    uint64_t due_us;
    appsrv_res_t *res;
    int left; /* /events: events still to send; -1 for /delay */
    int seq;
} job_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job_t *heap; /* min-heap on due_us */
    size_t n, cap;
    bool quit;
    bool stopping; /* the server began draining: streams end now */
} g_timers = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, false, false};

/* Microseconds: a millisecond clock would fire a delay up to 1 ms early. */
static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int timer_add(job_t j)
{
    pthread_mutex_lock(&g_timers.lock);
    if (g_timers.n == g_timers.cap) {
        size_t cap = g_timers.cap ? g_timers.cap * 2 : 64;
        job_t *h = realloc(g_timers.heap, cap * sizeof(*h));
        if (h == NULL) {
            pthread_mutex_unlock(&g_timers.lock);
            return -ENOMEM;
        }
        g_timers.heap = h;
        g_timers.cap = cap;
    }
    size_t i = g_timers.n++;
    while (i > 0 && g_timers.heap[(i - 1) / 2].due_us > j.due_us) {
        g_timers.heap[i] = g_timers.heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    g_timers.heap[i] = j;
    pthread_cond_signal(&g_timers.cond);
    pthread_mutex_unlock(&g_timers.lock);
    return 0;
}

static job_t timer_pop_locked(void)
{
    job_t top = g_timers.heap[0];
    job_t last = g_timers.heap[--g_timers.n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= g_timers.n)
            break;
        if (c + 1 < g_timers.n && g_timers.heap[c + 1].due_us < g_timers.heap[c].due_us)
            c++;
        if (g_timers.heap[c].due_us >= last.due_us)
            break;
        g_timers.heap[i] = g_timers.heap[c];
        i = c;
    }
    if (g_timers.n > 0)
        g_timers.heap[i] = last;
    return top;
}

/* Runs one due job outside the lock. */
static void run_job(job_t j)
{
    if (j.left < 0) {
        appsrv_res_send(j.res); /* APPSRV_ECANCELED: released all the same */
        return;
    }
    char data[32];
    snprintf(data, sizeof(data), "tick %d", j.seq);
    char id[16];
    snprintf(id, sizeof(id), "%d", j.seq);
    int rc = j.left > 0 ? appsrv_res_sse_send(j.res, "tick", id, data) : 0;
    if (rc == -EAGAIN) {
        j.due_us = mono_us() + 100000; /* slow reader: try again later */
        if (timer_add(j) == 0)
            return;
    }
    pthread_mutex_lock(&g_timers.lock);
    bool stopping = g_timers.stopping;
    pthread_mutex_unlock(&g_timers.lock);
    if (j.left <= 1 || rc < 0 || stopping) {
        appsrv_res_end(j.res);
        return;
    }
    j.left--;
    j.seq++;
    j.due_us += 100000;
    if (timer_add(j) < 0)
        appsrv_res_end(j.res);
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_timers.lock);
    while (!(g_timers.quit && g_timers.n == 0)) {
        if (g_timers.n == 0) {
            pthread_cond_wait(&g_timers.cond, &g_timers.lock);
            continue;
        }
        uint64_t now = mono_us();
        if (g_timers.heap[0].due_us > now) {
            uint64_t due = g_timers.heap[0].due_us;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (due - now) * 1000u;
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            pthread_cond_timedwait(&g_timers.cond, &g_timers.lock, &ts);
            continue;
        }
        job_t j = timer_pop_locked();
        pthread_mutex_unlock(&g_timers.lock);
        run_job(j);
        pthread_mutex_lock(&g_timers.lock);
    }
    pthread_mutex_unlock(&g_timers.lock);
    return NULL;
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
    job_t j = {mono_us() + ms * 1000u, res, -1, 0};
    if (timer_add(j) < 0)
        return -ENOMEM;
    return APPSRV_LATER;
}

/* The stop notification of an /events stream (loop thread): its job runs
 * at once with nothing left to send, so the timer thread ends the stream
 * cleanly (last chunk included) instead of the drain timeout cutting it. */
static void events_on_stop(appsrv_res_t *res, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&g_timers.lock);
    g_timers.stopping = true; /* for a job the timer thread runs right now */
    for (size_t i = 0; i < g_timers.n; i++) {
        if (g_timers.heap[i].res != res || g_timers.heap[i].left < 0)
            continue;
        job_t j = g_timers.heap[i];
        j.due_us = 0;
        j.left = 0;
        while (i > 0 && g_timers.heap[(i - 1) / 2].due_us > j.due_us) {
            g_timers.heap[i] = g_timers.heap[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        g_timers.heap[i] = j;
        pthread_cond_signal(&g_timers.cond);
        break;
    }
    pthread_mutex_unlock(&g_timers.lock);
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
    appsrv_res_on_stop(res, events_on_stop, NULL);
    if (appsrv_res_sse_begin(res, 15000) < 0)
        return -1;
    job_t j = {mono_us(), res, count, 1};
    if (count == 0) {
        appsrv_res_end(res);
        return APPSRV_LATER;
    }
    if (timer_add(j) < 0) {
        appsrv_res_end(res);
        return APPSRV_LATER;
    }
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

enum {
    OPT_MAX_BODY = 256,
    OPT_IDLE,
    OPT_HEAD,
    OPT_ACCESS_LOG,
    OPT_LOG_FORMAT,
    OPT_METRICS,
    OPT_NO_REQUEST_IDS
};

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
        {"access-log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"metrics", no_argument, NULL, OPT_METRICS},
        {"no-request-ids", no_argument, NULL, OPT_NO_REQUEST_IDS},
        {"quiet", no_argument, NULL, 'q'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    const char *host = "127.0.0.1";
    int port = 8080, line_port = -1;
    bool quiet = false, metrics = false;
    appsrv_log_format_t log_format = 0; /* 0: no access log */
    /* Every response carries an X-Request-ID (the client's when valid). */
    cfg.request_ids = true;

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
    CHECK(appsrv_route_line(srv, "PING", l_ping, NULL));
    CHECK(appsrv_route_line(srv, "ECHO", l_echo, NULL));
    CHECK(appsrv_route_line(srv, "QUIT", l_quit, NULL));
    if (metrics)
        CHECK(appsrv_route_metrics(srv, "/metrics"));
    /* The library's file logger on stderr: lines are written in batches
     * off the request path, and all of them before run returns. */
    if (log_format != 0)
        CHECK(appsrv_access_log_fd(srv, STDERR_FILENO, log_format));

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

    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC); /* deadlines are monotonic */
    pthread_cond_destroy(&g_timers.cond);
    pthread_cond_init(&g_timers.cond, &cattr);
    pthread_condattr_destroy(&cattr);
    pthread_t timer_thread;
    if (pthread_create(&timer_thread, NULL, timer_main, NULL) != 0) {
        fprintf(stderr, "appsrv: cannot start the timer thread\n");
        appsrv_server_free(srv);
        return 1;
    }
    int rc = appsrv_server_run(srv);
    /* run returned: every deferred response was finished. */
    pthread_mutex_lock(&g_timers.lock);
    g_timers.quit = true;
    pthread_cond_signal(&g_timers.cond);
    pthread_mutex_unlock(&g_timers.lock);
    pthread_join(timer_thread, NULL);
    free(g_timers.heap);
    if (!quiet && rc == 0)
        fprintf(stderr, "appsrv: stopped\n");
    if (rc < 0)
        fprintf(stderr, "appsrv: run: %s\n", appsrv_strerror(rc));
    appsrv_server_free(srv);
    return rc < 0 ? 1 : 0;
}
