/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - the Prometheus text exposition (format 0.0.4) of a server:
 * sums every worker's counters (stats.h; relaxed loads, no lock, so a
 * scrape never stalls a loop), labels requests with route patterns from
 * the router and the line routes, adds process_* from /proc, and mounts
 * itself as a GET route. Called by the host (appsrv_metrics_format) or by
 * a loop thread through the route; reads server.c's private accessors.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common.h"
#include "line.h"
#include "router.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

/* A growing text buffer; err sticks once an allocation failed. */
typedef struct sb {
    char *p;
    size_t len, cap;
    bool err;
} sb_t;

static void sb_grow(sb_t *b, size_t n)
{
    if (b->err || b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->err = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_put(sb_t *b, const char *s, size_t n)
{
    sb_grow(b, n);
    if (b->err)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sb_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

APPSRV_PRINTF(2, 3) static void sb_printf(sb_t *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        sb_put(b, tmp, (size_t)n);
        return;
    }
    sb_grow(b, (size_t)n);
    if (b->err)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A label value: '\\', '"' and newline escaped (format 0.0.4). */
static void sb_label(sb_t *b, const char *s)
{
    sb_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '\\')
            sb_puts(b, "\\\\");
        else if (*s == '"')
            sb_puts(b, "\\\"");
        else if (*s == '\n')
            sb_puts(b, "\\n");
        else
            sb_put(b, s, 1);
    }
    sb_puts(b, "\"");
}

static void head(sb_t *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(sb_t *b, const char *name, const char *type, const char *help, uint64_t v)
{
    head(b, name, type, help);
    sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* Sum of one counter over the workers; off is its offset in the stats. */
typedef struct sums {
    appsrv_server_t *srv;
    int n;
} sums_t;

static uint64_t sum_at(const sums_t *s, size_t off)
{
    uint64_t v = 0;
    for (int i = 0; i < s->n; i++) {
        const char *st = (const char *)&appsrv__server_worker(s->srv, i)->stats;
        v += appsrv__ctr_get((const appsrv__ctr_t *)(const void *)(st + off));
    }
    return v;
}

#define SUM(s, field) sum_at((s), offsetof(appsrv__stats_t, field))

static const char *const proto_names[APPSRV__NPROTO] = {"other", "http", "line", "websocket"};
static const char *const class_names[APPSRV__NCLASS] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

static void requests(sb_t *b, const sums_t *s)
{
    head(b, "appsrv_requests_total", "counter",
         "Requests answered, by protocol, route pattern (\"(none)\": no route matched), "
         "method of the route (\"*\": any) and status class.");
    const appsrv__stats_t *st0 = &appsrv__server_worker(s->srv, 0)->stats;
    if (st0->requests == NULL)
        return;
    const appsrv__router_t *router = appsrv__server_router(s->srv);
    const appsrv__line_routes_t *lines = appsrv__server_line_routes(s->srv);
    for (size_t slot = 0; slot < st0->nslots; slot++) {
        const char *proto = "http", *method = "*", *route = "(none)";
        if (slot < st0->nhttp) {
            route = appsrv__router_pattern(router, slot, &method);
            if (method == NULL)
                method = "*";
        } else if (slot > st0->nhttp) {
            size_t li = slot - st0->nhttp - 1;
            proto = "line";
            method = "";
            if (li < lines->n)
                route = lines->v[li].word;
        }
        for (size_t k = 0; k < APPSRV__NCLASS; k++) {
            uint64_t v = 0;
            for (int i = 0; i < s->n; i++) {
                const appsrv__stats_t *st = &appsrv__server_worker(s->srv, i)->stats;
                if (st->requests != NULL && slot < st->nslots)
                    v += appsrv__ctr_get(&st->requests[slot * APPSRV__NCLASS + k]);
            }
            if (v == 0)
                continue;
            sb_printf(b, "appsrv_requests_total{proto=\"%s\",method=", proto);
            sb_label(b, method);
            sb_puts(b, ",route=");
            sb_label(b, route);
            sb_printf(b, ",code=\"%s\"} %llu\n", class_names[k], (unsigned long long)v);
        }
    }
}

static void latency(sb_t *b, const sums_t *s)
{
    static const char *const le[APPSRV__NLAT] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                                 "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                                 "1",      "2.5",   "5",      "10"};
    head(b, "appsrv_request_duration_seconds", "histogram",
         "Time from a request's first byte to its last response byte queued.");
    uint64_t cum = 0;
    for (size_t k = 0; k <= APPSRV__NLAT; k++) {
        cum += sum_at(s, offsetof(appsrv__stats_t, lat) + k * sizeof(appsrv__ctr_t));
        sb_printf(b, "appsrv_request_duration_seconds_bucket{le=\"%s\"} %llu\n",
                  k < APPSRV__NLAT ? le[k] : "+Inf", (unsigned long long)cum);
    }
    uint64_t us = SUM(s, lat_sum_us);
    sb_printf(b, "appsrv_request_duration_seconds_sum %llu.%06llu\n",
              (unsigned long long)(us / 1000000), (unsigned long long)(us % 1000000));
    /* The count is the +Inf bucket, so the two always agree. */
    sb_printf(b, "appsrv_request_duration_seconds_count %llu\n", (unsigned long long)cum);
}

static void connections(sb_t *b, const sums_t *s)
{
    head(b, "appsrv_connections_accepted_total", "counter", "Connections accepted, by protocol.");
    for (size_t p = 1; p < APPSRV__NPROTO; p++)
        sb_printf(b, "appsrv_connections_accepted_total{proto=\"%s\"} %llu\n", proto_names[p],
                  (unsigned long long)sum_at(s, offsetof(appsrv__stats_t, accepted) +
                                                    p * sizeof(appsrv__ctr_t)));
    head(b, "appsrv_open_connections", "gauge", "Connections open now, by protocol.");
    for (size_t p = 1; p < APPSRV__NPROTO; p++) {
        uint64_t closed = sum_at(s, offsetof(appsrv__stats_t, closed) + p * sizeof(appsrv__ctr_t));
        uint64_t opened = sum_at(s, offsetof(appsrv__stats_t, opened) + p * sizeof(appsrv__ctr_t));
        sb_printf(b, "appsrv_open_connections{proto=\"%s\"} %llu\n", proto_names[p],
                  (unsigned long long)(opened > closed ? opened - closed : 0));
    }
    one(b, "appsrv_connections_refused_total", "counter",
        "Connections refused at the connection cap.", SUM(s, refused));
    one(b, "appsrv_accept_errors_total", "counter",
        "accept() failures other than EAGAIN (e.g. EMFILE).", SUM(s, accept_errors));
    one(b, "appsrv_received_bytes_total", "counter", "Bytes read from client connections.",
        SUM(s, bytes_in));
    one(b, "appsrv_sent_bytes_total", "counter", "Bytes written to client connections.",
        SUM(s, bytes_out));
}

static void errors(sb_t *b, const sums_t *s)
{
    head(b, "appsrv_protocol_errors_total", "counter",
         "Requests refused before reaching a handler (malformed, too large, ...), by status.");
    for (int k = 0; k < 200; k++) {
        uint64_t v =
            sum_at(s, offsetof(appsrv__stats_t, proto_errors) + (size_t)k * sizeof(appsrv__ctr_t));
        if (v != 0)
            sb_printf(b, "appsrv_protocol_errors_total{status=\"%d\"} %llu\n", 400 + k,
                      (unsigned long long)v);
    }
    head(b, "appsrv_timeouts_total", "counter", "Timeouts that fired, by kind.");
    for (size_t k = 0; k < APPSRV__NTIMEOUTS; k++)
        sb_printf(b, "appsrv_timeouts_total{kind=\"%s\"} %llu\n", appsrv__timeout_names[k],
                  (unsigned long long)sum_at(s, offsetof(appsrv__stats_t, timeouts) +
                                                    k * sizeof(appsrv__ctr_t)));
    uint64_t done = SUM(s, deferred_done), begun = SUM(s, deferred_begun);
    one(b, "appsrv_deferred_responses", "gauge",
        "Responses the host holds now (APPSRV_LATER, streams).", begun > done ? begun - done : 0);
    one(b, "appsrv_tls_handshake_failures_total", "counter", "TLS handshakes that failed.",
        SUM(s, tls_handshake_failures));
    head(b, "appsrv_websocket_messages_total", "counter", "WebSocket messages, by direction.");
    sb_printf(b, "appsrv_websocket_messages_total{direction=\"in\"} %llu\n",
              (unsigned long long)SUM(s, ws_messages_in));
    sb_printf(b, "appsrv_websocket_messages_total{direction=\"out\"} %llu\n",
              (unsigned long long)SUM(s, ws_messages_out));
    one(b, "appsrv_access_log_lines_total", "counter", "Access-log lines written.",
        SUM(s, log_lines));
    one(b, "appsrv_access_log_lost_lines_total", "counter",
        "Access-log lines that could not be written.", SUM(s, log_lost));
}

/* process_* as the Prometheus client libraries define them. */
static void process(sb_t *b, const appsrv_server_t *srv)
{
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long long ut = 0, stt = 0, start = 0, vsize = 0;
    long long rss = 0;
    bool have_stat = false;
    FILE *f = fopen("/proc/self/stat", "re");
    if (f != NULL) {
        char line[1024];
        if (fgets(line, sizeof(line), f) != NULL) {
            /* Fields after the command name, which may hold spaces. */
            char *p = strrchr(line, ')');
            have_stat =
                p != NULL && sscanf(p + 2,
                                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
                                    "%*d %*d %*d %*d %llu %llu %lld",
                                    &ut, &stt, &start, &vsize, &rss) == 5;
        }
        fclose(f);
    }
    unsigned long long btime = 0;
    f = fopen("/proc/stat", "re");
    if (f != NULL) {
        char line[256];
        while (fgets(line, sizeof(line), f) != NULL)
            if (sscanf(line, "btime %llu", &btime) == 1)
                break;
        fclose(f);
    }
    if (have_stat && tck > 0) {
        head(b, "process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.");
        sb_printf(b, "process_cpu_seconds_total %.2f\n", (double)(ut + stt) / (double)tck);
        one(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
            (uint64_t)(rss > 0 ? rss : 0) * (uint64_t)(page > 0 ? page : 4096));
        one(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize);
    }
    head(b, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.");
    if (have_stat && btime > 0 && tck > 0)
        sb_printf(b, "process_start_time_seconds %.2f\n",
                  (double)btime + (double)start / (double)tck);
    else
        sb_printf(b, "process_start_time_seconds %lld\n",
                  (long long)appsrv__server_start_time(srv));
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        one(b, "process_open_fds", "gauge", "Number of open file descriptors.",
            (uint64_t)(n > 0 ? n - 1 : 0)); /* not the directory's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        one(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
            (uint64_t)rl.rlim_cur);
}

ssize_t appsrv_metrics_format(appsrv_server_t *srv, char **out)
{
    if (srv == NULL || out == NULL)
        return -EINVAL;
    *out = NULL;
    sb_t b = {NULL, 0, 0, false};
    sums_t s = {srv, appsrv__server_nworkers(srv)};
    sb_grow(&b, 8192);
    requests(&b, &s);
    latency(&b, &s);
    connections(&b, &s);
    errors(&b, &s);
    process(&b, srv);
    if (b.err || b.p == NULL) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    return (ssize_t)b.len;
}

static void free_text(void *data, void *ud)
{
    (void)ud;
    free(data);
}

static int metrics_handler(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    char *text;
    ssize_t n = appsrv_metrics_format(user, &text);
    if (n < 0)
        return (int)n;
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    appsrv_res_add_header(res, "Cache-Control", "no-store");
    return appsrv_res_set_body_ref(res, text, (size_t)n, free_text, NULL);
}

int appsrv_route_metrics(appsrv_server_t *srv, const char *pattern)
{
    if (srv == NULL || pattern == NULL)
        return -EINVAL;
    int rc = appsrv_route(srv, "GET", pattern, metrics_handler, srv);
    if (rc < 0)
        return rc;
    return appsrv__server_enable_metrics(srv);
}
