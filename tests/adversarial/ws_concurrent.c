/* SPDX-License-Identifier: MIT */
/*
 * ws_concurrent.c - many WebSocket clients against the appsrv CLI while
 * plain HTTP stays fast (issue 15; `make ws-concurrent`, run by .ci/run).
 * Spawns the CLI (APPSRV_BIN, default build/appsrv; -t 2) and, from this
 * separate process (the open-file limit is per process: both raise their
 * soft limit to the hard one), opens WS_CLIENTS (5000) WebSocket
 * connections to GET /ws with at most 256 handshakes in flight, checks
 * every 101 and its Sec-WebSocket-Accept, then echoes in two phases. Each
 * client sends a masked text message naming itself and a sequence
 * number and waits for exactly that message back. Overload, WS_BURST
 * seconds (5): every client sends its next message as soon as the echo
 * is in (the server saturates; fairness is reported). Steady,
 * WS_SECONDS (10): every client sends one message every WS_INTERVAL_MS
 * (200 ms: 25,000 messages/s from 5,000 clients), while a second thread
 * times GET /plaintext on a keep-alive connection, as it did before the
 * load. At the end each client sends a close and must get close 1000 and
 * the TCP close; the server's open descriptors must come back, it must
 * still answer and exit 0 on SIGTERM.
 *
 * Passes when: every client connects, upgrades and completes echoes in
 * both phases; no echo is wrong, missing or late beyond 10 s; /plaintext
 * during the steady phase is answered every time with a p99 under
 * WS_P99_MS (50) and a maximum under 1 s.
 * Prints one line per phase and the figures; exit status 1 on a failure.
 * Every wait has a deadline; all traffic goes to 127.0.0.1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ws_handshake.h"

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? atol(v) : def;
}

static int g_failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("ws-concurrent: FAILED: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    g_failures++;
}

/* ---------------------------------------------------------------- server */

static pid_t g_pid = -1;
static int g_port;

static int start_server(const char *bin)
{
    int pe[2];
    if (pipe(pe) < 0)
        return -1;
    pid_t parent = getpid();
    g_pid = fork();
    if (g_pid < 0)
        return -1;
    if (g_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(pe[1], 2);
        close(pe[0]);
        close(pe[1]);
        execl(bin, bin, "-p", "0", "-t", "2", "-c", "20000", NULL);
        _exit(127);
    }
    close(pe[1]);
    char buf[1024];
    size_t len = 0;
    uint64_t end = now_us() + 10000000;
    while (now_us() < end && len + 1 < sizeof(buf)) {
        struct pollfd pfd = {pe[0], POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = read(pe[0], buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
        const char *p = strstr(buf, "http://127.0.0.1:");
        if (p != NULL && strchr(p, '\n') != NULL) {
            g_port = atoi(p + strlen("http://127.0.0.1:"));
            /* stderr stays open (and unread: the CLI is quiet after this) */
            return 0;
        }
    }
    return -1;
}

static int server_fds(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)g_pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static long server_rss_kib(void)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)g_pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

static int connect_nb(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* ------------------------------------------------------- plaintext probe */

typedef struct probe {
    atomic_bool stop;
    uint32_t *lat_us; /* one per request */
    size_t n, cap;
    int errors;
} probe_t;

/* One keep-alive connection, one request at a time (blocking, 1 s
 * bound per wait). Returns the latency in µs or 0 on an error. */
static uint32_t plaintext_once(int fd)
{
    static const char req[] = "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n";
    uint64_t t0 = now_us();
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
        return 0;
    char buf[512];
    size_t len = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 1000) <= 0)
            return 0;
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL && len >= (size_t)(end + 4 - buf) + 13)
            break;
    }
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || strstr(buf, "Hello, World!") == NULL)
        return 0;
    uint64_t us = now_us() - t0;
    return us > 0 ? (uint32_t)us : 1;
}

static int blocking_connect(void)
{
    int fd = connect_nb();
    if (fd < 0)
        return fd;
    struct pollfd pfd = {fd, POLLOUT, 0};
    if (poll(&pfd, 1, 2000) <= 0) {
        close(fd);
        return -ETIMEDOUT;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

static void probe_add(probe_t *p, uint32_t us)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4096;
        p->lat_us = realloc(p->lat_us, p->cap * sizeof(*p->lat_us));
        if (p->lat_us == NULL)
            abort();
    }
    p->lat_us[p->n++] = us;
}

static void *probe_main(void *arg)
{
    probe_t *p = arg;
    int fd = blocking_connect();
    while (!atomic_load(&p->stop)) {
        uint32_t us = fd >= 0 ? plaintext_once(fd) : 0;
        if (us == 0) {
            p->errors++;
            if (fd >= 0)
                close(fd);
            fd = blocking_connect();
            continue;
        }
        probe_add(p, us);
        struct timespec ts = {0, 2000000}; /* 2 ms between requests */
        nanosleep(&ts, NULL);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(uint32_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_u32);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i];
}

/* --------------------------------------------------------------- clients */

enum { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING, C_DONE, C_FINISHED, C_FAILED };

typedef struct client {
    int fd;
    uint8_t state;
    uint16_t rlen;
    uint32_t seq;
    uint64_t sent_us; /* 0: no message in flight */
    uint64_t next_us; /* steady phase: when to send the next one */
    uint8_t rbuf[512];
    char accept[29];
} client_t;

enum { M_QUIET, M_BURST, M_STEADY };

static client_t *g_cl;
static long g_n;
static int g_mode;
static uint64_t g_interval_us;
static int g_ep;
static long g_open, g_done, g_failed;
static uint64_t g_echoes, g_max_rtt_us;

static void cl_fail(client_t *c, const char *why)
{
    if (c->state == C_FAILED)
        return;
    if (g_failed < 5)
        printf("ws-concurrent: client %ld: %s\n", (long)(c - g_cl), why);
    g_failed++;
    c->state = C_FAILED;
    epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static int cl_write(client_t *c, const void *p, size_t n)
{
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w != (ssize_t)n) {
        cl_fail(c, "short write");
        return -1;
    }
    return 0;
}

static void cl_send_frame(client_t *c, unsigned op, const void *payload, size_t n)
{
    uint8_t f[2 + 4 + 125];
    uint32_t k = (uint32_t)(c - g_cl) * 2654435761u ^ c->seq;
    uint8_t key[4] = {(uint8_t)k, (uint8_t)(k >> 8), (uint8_t)(k >> 16), (uint8_t)(k >> 24)};
    f[0] = (uint8_t)(0x80 | op);
    f[1] = (uint8_t)(0x80 | n);
    memcpy(f + 2, key, 4);
    const uint8_t *p = payload;
    for (size_t i = 0; i < n; i++)
        f[6 + i] = p[i] ^ key[i & 3];
    cl_write(c, f, 6 + n);
}

static int cl_message(client_t *c, char *out)
{
    return snprintf(out, 64, "client %ld message %u", (long)(c - g_cl), c->seq);
}

static void cl_send_next(client_t *c)
{
    char m[64];
    int n = cl_message(c, m);
    c->sent_us = now_us();
    cl_send_frame(c, 0x1, m, (size_t)n);
}

static void cl_handshake(client_t *c)
{
    uint8_t raw[16];
    for (int i = 0; i < 16; i++)
        raw[i] = (uint8_t)((c - g_cl) * 31 + i * 7);
    char key[25];
    appsrv__base64(raw, 16, key);
    appsrv__ws_accept(key, 24, c->accept);
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     key);
    c->state = C_HANDSHAKE;
    cl_write(c, req, (size_t)n);
}

/* The echo of message seq is in: what comes next depends on the phase. */
static void cl_echoed(client_t *c)
{
    uint64_t sent = c->sent_us;
    c->sent_us = 0;
    if (g_mode == M_BURST)
        cl_send_next(c);
    else if (g_mode == M_STEADY)
        c->next_us = sent + g_interval_us;
}

/* Consumes what rbuf holds; returns after handling whole units. */
static void cl_input(client_t *c)
{
    for (;;) {
        if (c->state == C_HANDSHAKE) {
            char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
            if (end == NULL)
                return;
            size_t hl = (size_t)((uint8_t *)end - c->rbuf) + 4;
            c->rbuf[hl - 1] = 0;
            if (strncmp((char *)c->rbuf, "HTTP/1.1 101 ", 13) != 0 ||
                strstr((char *)c->rbuf, c->accept) == NULL) {
                cl_fail(c, "bad handshake answer");
                return;
            }
            memmove(c->rbuf, c->rbuf + hl, c->rlen - hl);
            c->rlen = (uint16_t)(c->rlen - hl);
            c->state = C_OPEN;
            g_open++;
            continue;
        }
        if (c->rlen < 2)
            return;
        unsigned op = c->rbuf[0] & 0x0F;
        size_t n = c->rbuf[1] & 0x7F;
        if ((c->rbuf[0] & 0xF0) != 0x80 || (c->rbuf[1] & 0x80) || n > 125) {
            cl_fail(c, "unexpected frame header");
            return;
        }
        if (c->rlen < 2 + n)
            return;
        const uint8_t *pl = c->rbuf + 2;
        if (op == 0x1 && c->state == C_OPEN) {
            char m[64];
            int k = cl_message(c, m);
            if ((size_t)k != n || memcmp(pl, m, n) != 0) {
                cl_fail(c, "wrong echo");
                return;
            }
            uint64_t rtt = now_us() - c->sent_us;
            if (rtt > g_max_rtt_us)
                g_max_rtt_us = rtt;
            g_echoes++;
            c->seq++;
            cl_echoed(c);
        } else if (op == 0x8) {
            if (c->state != C_CLOSING || n < 2 || pl[0] != 0x03 || pl[1] != 0xe8) {
                cl_fail(c, "unexpected close");
                return;
            }
            c->state = C_DONE; /* the TCP close follows */
        } else if (op == 0x9) {
            cl_send_frame(c, 0xA, pl, n); /* a server ping */
        } else if (!(op == 0x1 && c->state == C_CLOSING)) {
            cl_fail(c, "unexpected opcode");
            return;
        }
        memmove(c->rbuf, c->rbuf + 2 + n, c->rlen - 2 - n);
        c->rlen = (uint16_t)(c->rlen - 2 - n);
    }
}

static void cl_event(client_t *c, uint32_t ev)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err != 0) {
            cl_fail(c, strerror(err));
            return;
        }
        if (!(ev & EPOLLOUT))
            return;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e);
        cl_handshake(c);
        return;
    }
    for (;;) {
        if (c->state == C_FAILED)
            return;
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (r <= 0) {
            if (c->state == C_DONE) {
                epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                c->state = C_FINISHED;
                g_done++;
            } else {
                cl_fail(c, "closed by the server");
            }
            return;
        }
        c->rlen = (uint16_t)(c->rlen + r);
        cl_input(c);
    }
}

/* Runs the loop until pred() or the deadline; in the steady phase it
 * also sends each client's next message on time. */
static void run_until(uint64_t deadline, bool (*pred)(void))
{
    struct epoll_event evs[512];
    while (now_us() < deadline && !(pred != NULL && pred())) {
        int n = epoll_wait(g_ep, evs, 512, g_mode == M_STEADY ? 2 : 20);
        for (int i = 0; i < n; i++)
            cl_event(evs[i].data.ptr, evs[i].events);
        if (g_mode != M_STEADY)
            continue;
        uint64_t now = now_us();
        for (long i = 0; i < g_n; i++) {
            client_t *c = &g_cl[i];
            if (c->state == C_OPEN && c->sent_us == 0 && c->next_us <= now)
                cl_send_next(c);
        }
    }
}

/* Every open client has its echo. */
static bool all_echoed(void)
{
    for (long i = 0; i < g_n; i++)
        if (g_cl[i].state == C_OPEN && g_cl[i].sent_us != 0)
            return false;
    return true;
}

/* Per-client echo counts of a phase: min, median, max; fails a client
 * with none or one still missing. */
static void phase_report(const char *name, uint32_t *seq0, double secs, uint64_t echoes)
{
    uint32_t *per = calloc((size_t)g_n, sizeof(*per));
    size_t nper = 0;
    for (long i = 0; i < g_n && per != NULL; i++) {
        if (g_cl[i].state != C_OPEN)
            continue;
        if (g_cl[i].sent_us != 0)
            fail("%s: client %ld: an echo is missing after 5 s", name, i);
        per[nper++] = g_cl[i].seq - seq0[i];
        seq0[i] = g_cl[i].seq;
    }
    uint32_t lo = pct(per, nper, 0.0), p10 = pct(per, nper, 0.1), med = pct(per, nper, 0.5),
             p90 = pct(per, nper, 0.9), hi = pct(per, nper, 1.0);
    free(per);
    printf("ws-concurrent: %s: %" PRIu64 " echoes in %.1f s (%.0f/s); per client min %u p10 %u "
           "median %u p90 %u max %u; slowest round trip %.1f ms\n",
           name, echoes, secs, (double)echoes / secs, lo, p10, med, p90, hi,
           (double)g_max_rtt_us / 1000);
    if (nper == 0 || lo == 0)
        fail("%s: a client got no echo", name);
    if (g_max_rtt_us > 10000000)
        fail("%s: an echo took %.1f s", name, (double)g_max_rtt_us / 1e6);
    g_max_rtt_us = 0;
}

static bool all_settled_open(void)
{
    return g_open + g_failed >= g_n;
}

static bool all_settled_done(void)
{
    return g_done + g_failed >= g_n;
}

/* ------------------------------------------------------------------ main */

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl); /* the server inherits it */
    }
    g_n = env_long("WS_CLIENTS", 5000);
    long secs = env_long("WS_SECONDS", 10);
    long burst = env_long("WS_BURST", 5);
    g_interval_us = (uint64_t)env_long("WS_INTERVAL_MS", 200) * 1000u;
    long p99_ms = env_long("WS_P99_MS", 50);
    const char *bin = getenv("APPSRV_BIN");
    if (bin == NULL || *bin == '\0')
        bin = "build/appsrv";
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((long)rl.rlim_cur < g_n + 100) {
        printf("ws-concurrent: open-file limit %llu is below %ld clients\n",
               (unsigned long long)rl.rlim_cur, g_n);
        return 2;
    }
    if (start_server(bin) < 0) {
        printf("ws-concurrent: %s did not start\n", bin);
        return 2;
    }
    int fds0 = server_fds();
    printf("ws-concurrent: %s (pid %d, port %d, %d fds); %ld clients, %ld s; open files %llu\n",
           bin, (int)g_pid, g_port, fds0, g_n, secs, (unsigned long long)rl.rlim_cur);

    /* Baseline /plaintext latency. */
    probe_t base = {0};
    int bfd = blocking_connect();
    for (int i = 0; i < 300 && bfd >= 0; i++) {
        uint32_t us = plaintext_once(bfd);
        if (us == 0)
            base.errors++;
        else
            probe_add(&base, us);
    }
    if (bfd >= 0)
        close(bfd);
    uint32_t base_p50 = pct(base.lat_us, base.n, 0.5), base_p99 = pct(base.lat_us, base.n, 0.99);

    /* Connect and upgrade, 256 handshakes in flight at most. */
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    g_cl = calloc((size_t)g_n, sizeof(*g_cl));
    if (g_cl == NULL)
        return 2;
    uint64_t t0 = now_us();
    for (long i = 0; i < g_n; i++) {
        while (i - g_open - g_failed >= 256 && now_us() - t0 < 60000000)
            run_until(now_us() + 20000, NULL);
        client_t *c = &g_cl[i];
        c->fd = connect_nb();
        if (c->fd < 0) {
            c->state = C_FAILED;
            g_failed++;
            if (g_failed < 5)
                printf("ws-concurrent: connect: %s\n", strerror(-c->fd));
            continue;
        }
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &e);
    }
    run_until(now_us() + 30000000, all_settled_open);
    double conn_s = (double)(now_us() - t0) / 1e6;
    long rss_kib = server_rss_kib();
    printf("ws-concurrent: %ld of %ld upgraded in %.1f s (%ld failed); server: %d fds, RSS %ld "
           "KiB\n",
           g_open, g_n, conn_s, g_failed, server_fds(), rss_kib);
    if (g_open != g_n)
        fail("%ld clients did not upgrade", g_n - g_open);

    /* Overload: every client resends as soon as its echo is in. */
    uint32_t *seq0 = calloc((size_t)g_n, sizeof(*seq0));
    g_mode = M_BURST;
    uint64_t e0 = now_us();
    for (long i = 0; i < g_n; i++)
        if (g_cl[i].state == C_OPEN)
            cl_send_next(&g_cl[i]);
    run_until(e0 + (uint64_t)burst * 1000000u, NULL);
    double es = (double)(now_us() - e0) / 1e6;
    uint64_t n0 = g_echoes;
    g_mode = M_QUIET;
    run_until(now_us() + 5000000, all_echoed);
    phase_report("overload", seq0, es, g_echoes);

    /* Steady: one message per client per interval, /plaintext timed. */
    probe_t load = {0};
    pthread_t th;
    pthread_create(&th, NULL, probe_main, &load);
    g_mode = M_STEADY;
    e0 = now_us();
    for (long i = 0; i < g_n; i++) /* spread the first sends over an interval */
        g_cl[i].next_us = e0 + g_interval_us * (uint64_t)i / (uint64_t)g_n;
    run_until(e0 + (uint64_t)secs * 1000000u, NULL);
    es = (double)(now_us() - e0) / 1e6;
    atomic_store(&load.stop, true);
    pthread_join(th, NULL);
    g_mode = M_QUIET;
    run_until(now_us() + 5000000, all_echoed);
    phase_report("steady", seq0, es, g_echoes - n0);
    free(seq0);
    size_t ln = load.n;
    uint32_t l50 = pct(load.lat_us, ln, 0.5), l99 = pct(load.lat_us, ln, 0.99),
             lmax = pct(load.lat_us, ln, 1.0);
    printf("ws-concurrent: GET /plaintext: before p50 %.2f p99 %.2f ms (%zu); steady p50 %.2f "
           "p99 %.2f max %.2f ms (%zu requests, %d errors)\n",
           base_p50 / 1000.0, base_p99 / 1000.0, base.n, l50 / 1000.0, l99 / 1000.0, lmax / 1000.0,
           ln, load.errors);
    if (load.errors > 0 || base.errors > 0 || ln < 100)
        fail("/plaintext: %d errors, %zu answers", load.errors + base.errors, ln);
    if (l99 > (uint32_t)p99_ms * 1000 || lmax > 1000000)
        fail("/plaintext p99 %.2f ms (limit %ld), max %.2f ms", l99 / 1000.0, p99_ms,
             lmax / 1000.0);

    /* Close every client: close 1000 back, then the TCP close. */
    for (long i = 0; i < g_n; i++)
        if (g_cl[i].state == C_OPEN) {
            g_cl[i].state = C_CLOSING;
            cl_send_frame(&g_cl[i], 0x8, "\x03\xe8", 2);
        }
    run_until(now_us() + 20000000, all_settled_done);
    printf("ws-concurrent: %ld closed cleanly (close 1000 echoed, then TCP close)\n", g_done);
    if (g_done + g_failed != g_n || g_failed > 0)
        fail("%ld clients failed, %ld did not finish the close", g_failed, g_n - g_done - g_failed);

    /* The server gave everything back and still answers. */
    int fds1 = -1;
    for (int i = 0; i < 100 && (fds1 = server_fds()) > fds0; i++)
        usleep(50000);
    if (fds1 != fds0)
        fail("server fds %d, %d at the start", fds1, fds0);
    int hfd = blocking_connect();
    if (hfd < 0 || plaintext_once(hfd) == 0)
        fail("no answer after the load");
    if (hfd >= 0)
        close(hfd);
    kill(g_pid, SIGTERM);
    int st = -1;
    for (int i = 0; i < 200; i++) {
        if (waitpid(g_pid, &st, WNOHANG) == g_pid)
            break;
        st = -1;
        usleep(50000);
    }
    if (st == -1) {
        kill(g_pid, SIGKILL);
        waitpid(g_pid, NULL, 0);
        fail("the server did not exit 10 s after SIGTERM");
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fail("the server exited with status 0x%x", (unsigned)st);
    }
    printf("ws-concurrent: %s\n", g_failures ? "FAILED" : "ok");
    return g_failures ? 1 : 0;
}
