/* SPDX-License-Identifier: MIT */
/*
 * test_cli_cors.c - the CLI's --cors and --json-errors (issue 17 items 2,
 * 3, 6) seen by real clients: Node's fetch (preflight and actual request
 * with an Origin, an unknown origin, JSON errors) and a headless Chromium
 * loading a page from one loopback origin (an in-process server) that
 * calls the CLI on another port: the browser's own CORS verdict, allowed
 * and refused. Skips with a message when node or chromium is missing.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "expect.h"

static bool have(const char *path)
{
    return access(path, X_OK) == 0;
}

static void start_cli(e2e_proc_t *p, int *port, const char *const args[])
{
    int rc = e2e_appsrv_start(p, args, 0, "127.0.0.1", port, NULL, SCALE(10000, 60000));
    cr_assert_eq(rc, 0, "appsrv did not start: %s; stderr: %s", e2e_errname(rc),
                 p->err.buf ? p->err.buf : "");
}

/* Runs argv, waits (bounded) and returns its stdout (the caller frees). */
static char *run_out(char *const argv[], int timeout_ms)
{
    e2e_proc_t p;
    int rc = e2e_proc_spawn(&p, argv, E2E_PROC_OUT | E2E_PROC_ERR | E2E_PROC_SEARCH);
    cr_assert_eq(rc, 0, "spawn %s: %s", argv[0], e2e_errname(rc));
    rc = e2e_proc_wait(&p, timeout_ms);
    cr_assert_eq(rc, 0, "%s did not finish within %d ms; stdout: %s; stderr: %s", argv[0],
                 timeout_ms, p.out.buf ? p.out.buf : "", p.err.buf ? p.err.buf : "");
    char *out = strdup(p.out.buf ? p.out.buf : "");
    if (!WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0)
        cr_log_warn("%s exited %d; stderr: %s", argv[0], p.status, p.err.buf ? p.err.buf : "");
    e2e_proc_free(&p);
    return out;
}

static const char node_script[] =
    "const [port, allowed] = process.argv.slice(1);\n"
    "const base = `http://127.0.0.1:${port}`;\n"
    "const h = (r, n) => r.headers.get(n);\n"
    "(async () => {\n"
    "  let r = await fetch(base + '/echo', {method: 'OPTIONS', headers: {Origin: allowed,\n"
    "    'Access-Control-Request-Method': 'PUT',\n"
    "    'Access-Control-Request-Headers': 'content-type'}});\n"
    "  console.log(`pre ${r.status} ${h(r,'access-control-allow-origin')} "
    "${h(r,'access-control-allow-methods')} ${h(r,'access-control-allow-headers')} "
    "${h(r,'vary')}`);\n"
    "  r = await fetch(base + '/echo', {method: 'PUT', headers: {Origin: allowed,\n"
    "    'Content-Type': 'application/json'}, body: '{\"a\":1}'});\n"
    "  console.log(`put ${r.status} ${h(r,'access-control-allow-origin')} ${await r.text()}`);\n"
    "  r = await fetch(base + '/json', {headers: {Origin: 'http://evil.test'}});\n"
    "  console.log(`evil ${r.status} ${h(r,'access-control-allow-origin')} ${h(r,'vary')}`);\n"
    "  r = await fetch(base + '/nope', {headers: {Origin: allowed}});\n"
    "  console.log(`404 ${r.status} ${h(r,'access-control-allow-origin')} "
    "${h(r,'content-type')} ${await r.text()}`);\n"
    "  r = await fetch(base + '/nope', {method: 'OPTIONS', headers: {Origin: allowed,\n"
    "    'Access-Control-Request-Method': 'GET'}});\n"
    "  console.log(`prenope ${r.status}`);\n"
    "})().catch(e => { console.log('error ' + e); process.exit(1); });\n";

Test(cli_cors, node_fetch_preflight_actual_and_errors, .timeout = 120)
{
    if (!have("/usr/bin/node")) {
        cr_log_warn("node not installed (apt-get install nodejs): skipped");
        cr_skip_test("node missing");
    }
    e2e_proc_t p;
    int port;
    start_cli(&p, &port,
              (const char *const[]){"-p", "0", "-t", "1", "--cors", "http://127.0.0.1:1",
                                    "--json-errors", NULL});
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    char *out = run_out(
        (char *const[]){"node", "-e", (char *)node_script, ps, "http://127.0.0.1:1", NULL}, 30000);
    const char *want[] = {
        "pre 204 http://127.0.0.1:1 POST, PUT, GET, HEAD content-type Origin, "
        "Access-Control-Request-Method, Access-Control-Request-Headers\n",
        "put 200 http://127.0.0.1:1 {\"a\":1}\n",
        "evil 200 null Origin\n",
        "404 404 http://127.0.0.1:1 application/json "
        "{\"error\":{\"status\":404,\"message\":\"Not Found\"}}\n",
        "prenope 404\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++)
        cr_expect(strstr(out, want[i]) != NULL, "node saw:\n%s\nmissing line: %s", out, want[i]);
    free(out);
    cr_assert_eq(e2e_proc_stop(&p, SIGTERM, 10000), 0);
    e2e_proc_free(&p);
}

/* ------------------------------------------------------ headless browser */

static char g_page[2048];

static int h_page(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/html");
    return appsrv_res_set_body(res, g_page, strlen(g_page));
}

Test(cli_cors, chromium_sees_allowed_and_refused_cross_origin_calls, .timeout = 180)
{
    const char *chrome = have("/usr/bin/chromium") ? "/usr/bin/chromium" : NULL;
    if (chrome == NULL) {
        cr_log_warn("chromium not installed (apt-get install chromium): skipped");
        cr_skip_test("chromium missing");
    }
    e2e_proc_t api, other;
    int api_port, other_port;
    /* The page's origin is only known once its server listens. */
    static e2e_route_t routes[] = {{"GET", "/", h_page, NULL, false}};
    e2e_server_t page;
    start_srv(&page, NULL, routes, 1, E2E_HTTP);
    char origin[64];
    snprintf(origin, sizeof(origin), "http://127.0.0.1:%d", page.port);
    start_cli(&api, &api_port, (const char *const[]){"-p", "0", "-t", "1", "--cors", origin, NULL});
    start_cli(&other, &other_port,
              (const char *const[]){"-p", "0", "-t", "1", "--cors", "http://127.0.0.1:1", NULL});
    /* PUT with a JSON body: not a simple request, so a preflight first. */
    snprintf(g_page, sizeof(g_page),
             "<html><body><pre id=out>pending</pre><script>\n"
             "const put = p => fetch(`http://127.0.0.1:${p}/echo`, {method: 'PUT',\n"
             "  headers: {'Content-Type': 'application/json'}, body: '{\"b\":2}'})\n"
             "  .then(r => r.text().then(t => `ok ${r.status} ${t}`), e => 'refused');\n"
             "Promise.all([put(%d), put(%d)]).then(([a, b]) => {\n"
             "  document.getElementById('out').textContent = `allowed=${a}; other=${b};`; });\n"
             "</script></body></html>\n",
             api_port, other_port);
    char url[80];
    snprintf(url, sizeof(url), "%s/", origin);
    char *out =
        run_out((char *const[]){(char *)chrome, "--headless", "--no-sandbox", "--disable-gpu",
                                "--disable-dev-shm-usage", "--no-first-run",
                                "--virtual-time-budget=10000", "--dump-dom", url, NULL},
                SCALE(90000, 150000));
    cr_expect(strstr(out, "allowed=ok 200 {\"b\":2};") != NULL,
              "the browser did not read the allowed cross-origin answer; DOM:\n%s", out);
    cr_expect(strstr(out, "other=refused;") != NULL,
              "the browser did not refuse the other origin's answer; DOM:\n%s", out);
    free(out);
    cr_assert_eq(e2e_proc_stop(&api, SIGTERM, 10000), 0);
    cr_assert_eq(e2e_proc_stop(&other, SIGTERM, 10000), 0);
    e2e_proc_free(&api);
    e2e_proc_free(&other);
    stop_srv(&page);
}
