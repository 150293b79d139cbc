/* SPDX-License-Identifier: MIT */
/*
 * test_e2e_obs_cli.c - the CLI's observability flags end to end (issue
 * 19): --access-log loses no line across a graceful stop under load
 * (clients keep sending while SIGTERM arrives; every answered request has
 * exactly one line, and each line parses as Apache's combined format),
 * --access-log-format json with request IDs that match the responses,
 * --metrics, and a bad format value. The CLI ($APPSRV_BIN) writes its
 * stderr to a file; every wait is bounded and says what it waited for.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "e2e.h"
#include "obs_util.h"

#define TMO 180 /* the load test runs the CLI under valgrind too */

typedef struct cli {
    pid_t pid;
    int port;
    char err_path[64];
} cli_t;

static int scaled(int ms)
{
    return e2e_valgrind() ? ms * 8 : ms;
}

/* Starts the CLI with extra flags; stderr to a file; reads the port. */
static void cli_start(cli_t *c, const char *const *flags)
{
    obs_tmpfile(c->err_path, sizeof(c->err_path), "cli");
    int fd = open(c->err_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    char *argv[32] = {(char *)e2e_bin_path(), "-p", "0", "-t", "2", "-q"};
    int k = 6;
    for (; flags != NULL && *flags != NULL && k < 31; flags++)
        argv[k++] = (char *)*flags;
    argv[k] = NULL;
    c->pid = e2e_spawn(argv, -1, fd, false);
    close(fd);
    cr_assert_gt(c->pid, 0);
    c->port = 0;
    int64_t end = e2e_now_ms() + scaled(5000);
    while (c->port == 0 && e2e_now_ms() < end) {
        char *text = obs_slurp(c->err_path, NULL);
        const char *p = text ? strstr(text, "listening on http://127.0.0.1:") : NULL;
        if (p != NULL && strchr(p, '\n') != NULL)
            c->port = atoi(p + 30);
        free(text);
        if (c->port == 0)
            e2e_pause_ms(10);
    }
    cr_assert_gt(c->port, 0, "waited 5 s for the listening line in %s", c->err_path);
}

/* SIGTERM, then exit status 0 within the bound. */
static void cli_stop(cli_t *c)
{
    kill(c->pid, SIGTERM);
    int st = e2e_wait_child(c->pid, scaled(15000));
    if (st == -1) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
    }
    cr_assert(st != -1, "waited 15 s for appsrv to exit after SIGTERM");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "appsrv exit status %d", st);
}

/* The stderr lines that are access-log lines (not "appsrv: ..."). */
static size_t log_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        if (strncmp(p, "appsrv: ", 8) != 0)
            n++;
        p = nl + 1;
    }
    return n;
}

/* --------------------------------------------------------------- load */

typedef struct client {
    pthread_t thread;
    int port;
    atomic_int *answered; /* all clients' answers */
    int mine;
} client_t;

static void *client_main(void *arg)
{
    client_t *cl = arg;
    e2e_conn_t c;
    if (e2e_conn_open(&c, cl->port) < 0)
        return NULL;
    int64_t end = e2e_now_ms() + scaled(20000);
    while (e2e_now_ms() < end && cl->mine < 50000) {
        if (e2e_sends(&c, "GET /plaintext HTTP/1.1\r\nHost: x\r\nUser-Agent: load\r\n\r\n") < 0)
            break;
        e2e_resp_t r;
        int rc = e2e_read_response(&c, &r, 5000, 0);
        if (rc < 0)
            break; /* the server closed: it is stopping */
        bool ok = r.status == 200;
        e2e_resp_free(&r);
        if (!ok)
            break;
        cl->mine++;
        atomic_fetch_add(cl->answered, 1);
    }
    e2e_conn_close(&c);
    return NULL;
}

Test(obs_cli, no_line_lost_on_graceful_stop_under_load, .timeout = TMO)
{
    cli_t c;
    cli_start(&c, (const char *const[]){"--access-log", NULL});
    atomic_int answered;
    atomic_init(&answered, 0);
    enum { NCLIENTS = 4 };
    client_t cls[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        cls[i] = (client_t){.port = c.port, .answered = &answered};
        cr_assert_eq(pthread_create(&cls[i].thread, NULL, client_main, &cls[i]), 0);
    }
    /* Under load: SIGTERM while the clients are still sending. */
    int want = e2e_valgrind() ? 200 : 3000;
    int got = e2e_wait_atomic(&answered, want, scaled(20000));
    cr_assert_geq(got, want, "waited 20 s for %d answers, got %d", want, got);
    kill(c.pid, SIGTERM);
    /* Each client stops when the server closes its connection. */
    for (int i = 0; i < NCLIENTS; i++)
        pthread_join(cls[i].thread, NULL);
    cli_stop(&c);
    int total = atomic_load(&answered);
    size_t len;
    char *text = obs_slurp(c.err_path, &len);
    cr_assert(text != NULL);
    size_t n = log_lines(text);
    cr_assert_eq(n, (size_t)total, "%zu access-log lines for %d answered requests", n, total);
    /* Each line is Apache combined (the parser prints one REC a line). */
    char *filtered_path = c.err_path;
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "grep -v '^appsrv: ' %s > %s.log && /usr/bin/python3 "
             "tests/scripts/check_access_log.py combined %s.log | grep -c '^REC 200 '",
             filtered_path, filtered_path, filtered_path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out;
    int st = obs_run(argv, false, &out, 60000);
    cr_assert_eq(st, 0, "parser: exit %d: %.300s", st, out);
    cr_assert_eq(atoi(out), total, "%d lines parse as 200s, want %d", atoi(out), total);
    free(out);
    char log2[80];
    snprintf(log2, sizeof(log2), "%s.log", c.err_path);
    unlink(log2);
    unlink(c.err_path);
    free(text);
}

Test(obs_cli, json_log_ids_and_metrics, .timeout = TMO)
{
    cli_t c;
    cli_start(&c, (const char *const[]){"--access-log-format", "json", "--metrics", NULL});
    static const struct {
        const char *req;
        int status;
    } reqs[] = {
        {"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: client-id.1\r\n\r\n", 200},
        {"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404},
        {"GET /echo?msg=%22hi%5C HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\"\r\n\r\n", 200},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200},
        {"GET /x HTTP/1.1\r\nBad Header\r\n\r\n", 400},
    };
    char ids[5][160];
    for (size_t i = 0; i < 5; i++) {
        e2e_conn_t cn;
        cr_assert_eq(e2e_conn_open(&cn, c.port), 0);
        cr_assert_eq(e2e_sends(&cn, reqs[i].req), 0);
        e2e_resp_t r;
        cr_assert_eq(e2e_read_response(&cn, &r, scaled(5000), 0), 0, "waited 5 s for %zu", i);
        cr_assert_eq(r.status, reqs[i].status, "request %zu: %d", i, r.status);
        const char *id = e2e_resp_header(&r, "X-Request-ID");
        cr_assert(id != NULL, "request %zu: no X-Request-ID", i);
        snprintf(ids[i], sizeof(ids[i]), "%s", id);
        if (i == 3)
            cr_assert(strstr(r.body, "# TYPE appsrv_requests_total counter") != NULL &&
                          strstr(r.body, "route=\"/health\"") != NULL,
                      "metrics:\n%s", r.body);
        e2e_resp_free(&r);
        e2e_conn_close(&cn);
    }
    cr_assert_str_eq(ids[0], "client-id.1");
    cli_stop(&c);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "grep -v '^appsrv: ' %s > %s.log && /usr/bin/python3 "
             "tests/scripts/check_access_log.py json %s.log",
             c.err_path, c.err_path, c.err_path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out;
    int st = obs_run(argv, false, &out, 30000);
    cr_assert_eq(st, 0, "check_access_log.py json: exit %d: %s", st, out);
    for (size_t i = 0; i < 5; i++)
        cr_assert(strstr(out, ids[i]) != NULL, "request %zu's ID %s not in the log:\n%s", i, ids[i],
                  out);
    free(out);
    char log2[80];
    snprintf(log2, sizeof(log2), "%s.log", c.err_path);
    char *node[] = {"node", "tests/scripts/json_lines.js", log2, NULL};
    st = obs_run(node, true, &out, 30000);
    bool have_node = st != 127;
    if (have_node) {
        cr_assert_eq(st, 0, "node json_lines.js: exit %d: %s", st, out);
        cr_assert(strstr(out, "LINES 5") != NULL, "node: %s", out);
    }
    free(out);
    unlink(log2);
    unlink(c.err_path);
    if (!have_node)
        cr_skip_test("node is not installed (apt-get install nodejs): JSON.parse not run");
}

Test(obs_cli, bad_log_format_is_usage_error, .timeout = TMO)
{
    char *argv[] = {(char *)e2e_bin_path(), "-p", "0", "--access-log-format", "xml", NULL};
    char *out;
    int st = obs_run(argv, false, &out, scaled(10000));
    cr_assert_eq(st, 2, "exit %d, want 2: %s", st, out);
    cr_assert(strstr(out, "xml") != NULL && strstr(out, "usage:") != NULL, "%s", out);
    free(out);
}
