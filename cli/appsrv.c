/* SPDX-License-Identifier: MIT */
/*
 * appsrv.c - the CLI: a standalone echo-and-respond server (appsrv(1)).
 * Parses flags, sets up the server (limits, TLS, CORS, gzip, a static
 * root, metrics, the access log, trusted proxies, inherited sockets),
 * registers the demo routes of routes.c with the public API like any host
 * program, prints the listening lines, and runs until SIGINT/SIGTERM,
 * which call appsrv_server_stop() (async-signal-safe). It holds no
 * protocol code: framing, limits and errors are the library's.
 * With --tls-cert/--tls-key the HTTP listener serves HTTPS; a thread of
 * its own waits for SIGHUP (sigwait) and reloads the certificates.
 */
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
#include "routes.h"

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

/* ------------------------------------------------------ signals, listening */

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
    routes_init();
    CHECK(appsrv_server_new(&srv, &cfg));
    if (routes_add_http(srv, max_upload) != 0)
        return 1;
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
    if (routes_add_line(srv) != 0)
        return 1;
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
    appsrv_listen_opts_t lopts = {
        .proto = APPSRV_PROTO_HTTP, .tls = tls, .proxy_protocol = proxy_protocol};
    int hport = hfd >= 0 ? appsrv_listen_opts_fd(srv, hfd, &lopts)
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
    routes_free(); /* run returned: every room member was closed and released */
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

