/* SPDX-License-Identifier: MIT */
/*
 * test_e2e_tls.c - the appsrv CLI serving HTTPS (--tls-cert, --tls-key,
 * --tls-sni, SIGHUP reload) to independent TLS implementations: curl
 * (keep-alive, POST bodies, chunked, deferred, SSE), Python's ssl
 * (/usr/bin/python3), Node's https and fetch, openssl s_client (TLS 1.3,
 * TLS 1.2 with ATS suites, 1.1/1.0 and non-AEAD suites refused,
 * renegotiation refused, ALPN, SNI, resumption) and gnutls-cli.
 *
 * Each test makes its own PKI (tls_util.h), spawns the CLI on port 0,
 * reads "listening on https://" from its stderr, runs the client through
 * `sh -c` with a deadline and checks its output, then stops the CLI with
 * SIGTERM and expects exit status 0. A client that is not installed
 * fails the test (CI installs them); only a TLS=no build skips.
 */
#include <criterion/criterion.h>

#ifndef APPSRV_HAVE_TLS
Test(tls_clients, skipped)
{
    cr_skip_test("built with TLS=no: no HTTPS to test");
}
#else

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e.h"
#include "tls_util.h"

#define TMO    60
#define CMD_MS 30000

static tls_pki_t g_pki;
static pid_t g_pid = -1;
static int g_err = -1; /* the CLI's stderr (read end) */
static char g_errbuf[16384];
static size_t g_errlen;
static int g_port;
static char g_cmd[4096];
static char *g_out;

static void setup(void)
{
    setenv("TLS_TEST_WAIT", e2e_valgrind() ? "3" : "1", 1);
    cr_assert_eq(tls_pki_make(&g_pki), 0, "making the test PKI with openssl failed");
}

static void teardown(void)
{
    if (g_pid > 0) {
        kill(g_pid, SIGKILL);
        waitpid(g_pid, NULL, 0);
    }
    g_pid = -1;
    if (g_err >= 0)
        close(g_err);
    g_err = -1;
    free(g_out);
    g_out = NULL;
    tls_pki_remove(&g_pki);
}

/* Reads the CLI's stderr until needle appears (or timeout_ms). */
static bool err_wait(const char *needle, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    while (strstr(g_errbuf, needle) == NULL) {
        if (e2e_wait_readable(g_err, end) < 0)
            return false;
        ssize_t n = read(g_err, g_errbuf + g_errlen, sizeof(g_errbuf) - 1 - g_errlen);
        if (n <= 0)
            return false;
        g_errlen += (size_t)n;
        g_errbuf[g_errlen] = '\0';
    }
    return true;
}

/* Spawns the CLI with "-p 0 -t 2" and the TLS flags in args. */
static void cli_start(const char *const *args)
{
    char *argv[32] = {(char *)e2e_bin_path(), "-p", "0", "-t", "2"};
    int n = 5;
    for (; *args != NULL && n < 31; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    g_errlen = 0;
    g_errbuf[0] = '\0';
    g_pid = e2e_spawn(argv, -1, p[1], false);
    close(p[1]);
    g_err = p[0];
    cr_assert_gt(g_pid, 0);
    cr_assert(err_wait("listening on https://127.0.0.1:", 10000),
              "no https listening line; stderr: %s", g_errbuf);
    const char *at = strstr(g_errbuf, "https://127.0.0.1:");
    g_port = atoi(at + strlen("https://127.0.0.1:"));
    cr_assert_gt(g_port, 0);
}

static void cli_default(void)
{
    const char *args[] = {"--tls-cert", g_pki.chain, "--tls-key", g_pki.key, NULL};
    cli_start(args);
}

static void cli_stop(void)
{
    kill(g_pid, SIGTERM);
    int st = e2e_wait_child(g_pid, 10000);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the CLI did not exit 0 after SIGTERM; stderr: %s", g_errbuf);
    if (st != -1)
        g_pid = -1;
}

/* Runs g_cmd; returns its exit status, output in g_out. */
static int run(void)
{
    free(g_out);
    g_out = NULL;
    int rc = tls_sh(g_cmd, CMD_MS, &g_out);
    cr_assert_neq(rc, -ETIMEDOUT, "timed out: %s\noutput so far: %s", g_cmd, g_out);
    return rc;
}

#define CMD(...) snprintf(g_cmd, sizeof(g_cmd), __VA_ARGS__)
#define OUT_HAS(s)                                                                                 \
    cr_expect(strstr(g_out, s) != NULL, "missing \"%s\" in output of %s:\n%s", s, g_cmd, g_out)
#define OUT_LACKS(s)                                                                               \
    cr_expect(strstr(g_out, s) == NULL, "unexpected \"%s\" in output of %s:\n%s", s, g_cmd, g_out)

static void need(const char *prog)
{
    cr_assert(tls_have(prog), "%s is not installed (apt-get install it; .ci/run does)", prog);
}

/* ------------------------------------------------------------------- curl */

#define CURL "curl -sS --max-time 20 --cacert %s --resolve localhost:%d:127.0.0.1 "

Test(tls_clients, curl_keepalive, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("curl");
    cli_default();
    CMD(CURL "-v https://localhost:%d/plaintext https://localhost:%d/json 2>&1", g_pki.ca, g_port,
        g_port, g_port);
    cr_assert_eq(run(), 0, "%s", g_out);
    OUT_HAS("Hello, World!");
    OUT_HAS("{\"message\":\"Hello, World!\"}");
    OUT_HAS("Re-using existing connection");
    OUT_HAS("SSL connection using TLSv1.3");
    OUT_HAS("ALPN: server accepted http/1.1");
    cli_stop();
}

Test(tls_clients, curl_post_bodies, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("curl");
    cli_default();
    CMD("cd %s && head -c 1000000 /dev/urandom > body.bin && " CURL
        "--data-binary @body.bin -H 'Content-Type: application/octet-stream' "
        "https://localhost:%d/echo -o got1.bin && cmp body.bin got1.bin && " CURL
        "--data-binary @body.bin -H 'Transfer-Encoding: chunked' "
        "https://localhost:%d/echo -o got2.bin && cmp body.bin got2.bin && echo SAME",
        g_pki.dir, g_pki.ca, g_port, g_port, g_pki.ca, g_port, g_port);
    cr_assert_eq(run(), 0, "%s", g_out);
    OUT_HAS("SAME");
    cli_stop();
}

Test(tls_clients, curl_deferred_and_sse, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("curl");
    cli_default();
    CMD(CURL "https://localhost:%d/delay?ms=100 && echo && " CURL
             "-N https://localhost:%d/events?n=3",
        g_pki.ca, g_port, g_port, g_pki.ca, g_port, g_port);
    cr_assert_eq(run(), 0, "%s", g_out);
    OUT_HAS("OK\n");
    OUT_HAS("event: tick\nid: 1\ndata: tick 1\n\n");
    OUT_HAS("data: tick 3\n\n");
    cli_stop();
}

/* ----------------------------------------------------------------- python */

static const char PY[] =
    "import http.client, ssl, sys\n"
    "ca, port, maxv = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
    "ctx = ssl.create_default_context(cafile=ca)\n"
    "ctx.set_alpn_protocols(['h2', 'http/1.1'])\n"
    "if maxv == '1.2': ctx.maximum_version = ssl.TLSVersion.TLSv1_2\n"
    "c = http.client.HTTPSConnection('localhost', port, context=ctx, timeout=10)\n"
    "for path in ('/plaintext', '/json'):\n"
    "    c.request('GET', path)\n"
    "    r = c.getresponse()\n"
    "    print(r.status, r.read().decode())\n"
    "c.request('POST', '/echo', body=b'x' * 100000)\n"
    "r = c.getresponse(); print(r.status, len(r.read()))\n"
    "print(c.sock.version(), c.sock.selected_alpn_protocol(), c.sock.cipher()[0])\n";

Test(tls_clients, python_ssl, .init = setup, .fini = teardown, .timeout = TMO)
{
    cr_assert_eq(access("/usr/bin/python3", X_OK), 0, "/usr/bin/python3 is not installed");
    cli_default();
    char path[160];
    snprintf(path, sizeof(path), "%s/client.py", g_pki.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(PY, f);
    fclose(f);
    CMD("/usr/bin/python3 %s %s %d 1.3 && /usr/bin/python3 %s %s %d 1.2", path, g_pki.ca, g_port,
        path, g_pki.ca, g_port);
    cr_assert_eq(run(), 0, "%s", g_out);
    OUT_HAS("200 Hello, World!\n200 {\"message\":\"Hello, World!\"}\n200 100000\n");
    OUT_HAS("TLSv1.3 http/1.1 TLS_AES_128_GCM_SHA256");
    OUT_HAS("TLSv1.2 http/1.1 ECDHE-ECDSA-AES128-GCM-SHA256");
    cli_stop();
}

/* ------------------------------------------------------------------- node */

static const char NODE[] =
    "const https = require('https'), fs = require('fs');\n"
    "const [ca, port] = [process.argv[2], +process.argv[3]];\n"
    "const agent = new https.Agent({keepAlive: true, ca: fs.readFileSync(ca),\n"
    "  ALPNProtocols: ['http/1.1']});\n"
    "const get = (p) => new Promise((ok, ko) => { const q = https.get({host: 'localhost',\n"
    "  port, path: p, agent}, (r) => { let b = '';\n"
    "  const info = r.socket.getProtocol() + ' ' + r.socket.alpnProtocol;\n"
    "  r.on('data', (d) => b += d);\n"
    "  r.on('end', () => ok(r.statusCode + ' ' + b + ' ' + info + ' reused=' +\n"
    "  q.reusedSocket)); }); q.on('error', ko); });\n"
    "(async () => {\n"
    "  console.log(await get('/plaintext')); console.log(await get('/json'));\n"
    "  const r = await fetch(`https://localhost:${port}/echo`, {method: 'POST', body: "
    "'fetched'});\n"
    "  console.log('fetch', r.status, await r.text());\n"
    "  agent.destroy();\n"
    "})().catch((e) => { console.error(e); process.exit(1); });\n";

Test(tls_clients, node_https_and_fetch, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("node");
    cli_default();
    char path[160];
    snprintf(path, sizeof(path), "%s/client.js", g_pki.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(NODE, f);
    fclose(f);
    /* fetch (undici) takes its CA from NODE_EXTRA_CA_CERTS */
    CMD("NODE_EXTRA_CA_CERTS=%s node %s %s %d 2>&1", g_pki.ca, path, g_pki.ca, g_port);
    cr_assert_eq(run(), 0, "%s", g_out);
    OUT_HAS("200 Hello, World! TLSv1.3 http/1.1 reused=false");
    OUT_HAS("200 {\"message\":\"Hello, World!\"} TLSv1.3 http/1.1 reused=true");
    OUT_HAS("fetch 200 fetched");
    cli_stop();
}

/* --------------------------------------------------------------- s_client */

#define SCLIENT "timeout 20 openssl s_client -connect 127.0.0.1:%d -CAfile %s "
/* A request the server answers and then closes: with -ign_eof, s_client
 * ends at that close, whatever the machine's load. */
#define GETREQ                                                                                     \
    "printf 'GET /plaintext HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n'"
/* A keep-alive request, then $TLS_TEST_WAIT (1 s; 3 s under valgrind) for
 * the answer before stdin's EOF ends the client: for gnutls-cli, which has
 * no -ign_eof, and the renegotiation test, which needs the connection. */
#define WAITREQ                                                                                    \
    "printf 'GET /plaintext HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n'; sleep $TLS_TEST_WAIT"

Test(tls_clients, s_client_tls13, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("openssl");
    cli_default();
    CMD("(" GETREQ ") | " SCLIENT "-ign_eof -servername localhost -tls1_3 -verify_return_error "
        "-verify_hostname localhost 2>&1",
        g_port, g_pki.ca);
    run();
    OUT_HAS("Protocol  : TLSv1.3");
    OUT_HAS("Verify return code: 0 (ok)");
    OUT_HAS("Hello, World!");
    OUT_HAS("Secure Renegotiation IS NOT supported"); /* TLS 1.3 has none */
    OUT_HAS("Compression: NONE");
    cli_stop();
}

Test(tls_clients, s_client_tls12_ats_suites, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("openssl");
    cli_default();
    static const char *ok[] = {"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256",
                               "ECDHE-ECDSA-CHACHA20-POLY1305"};
    for (size_t i = 0; i < 3; i++) {
        CMD("(" GETREQ ") | " SCLIENT "-ign_eof -tls1_2 -cipher %s -verify_return_error 2>&1",
            g_port, g_pki.ca, ok[i]);
        run();
        char want[128];
        snprintf(want, sizeof(want), "New, TLSv1.2, Cipher is %s", ok[i]);
        OUT_HAS(want);
        OUT_HAS("Hello, World!");
    }
    /* not forward secret or not AEAD: refused */
    static const char *bad[] = {"ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256"};
    for (size_t i = 0; i < 2; i++) {
        CMD(SCLIENT "-tls1_2 -cipher %s </dev/null 2>&1", g_port, g_pki.ca, bad[i]);
        cr_expect_neq(run(), 0, "suite %s was accepted:\n%s", bad[i], g_out);
        OUT_HAS("alert handshake failure");
    }
    cli_stop();
}

Test(tls_clients, s_client_old_versions_refused, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("openssl");
    cli_default();
    /* SECLEVEL=0 so the client really offers the old version. */
    static const char *v[] = {"-tls1_1", "-tls1"};
    for (size_t i = 0; i < 2; i++) {
        CMD(SCLIENT "%s -cipher 'DEFAULT:@SECLEVEL=0' </dev/null 2>&1", g_port, g_pki.ca, v[i]);
        cr_expect_neq(run(), 0, "%s was accepted:\n%s", v[i], g_out);
        OUT_HAS("alert protocol version");
    }
    cli_stop();
}

Test(tls_clients, s_client_renegotiation_refused, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("openssl");
    cli_default();
    CMD("(" WAITREQ "; printf 'R\\n'; sleep $TLS_TEST_WAIT) | " SCLIENT "-tls1_2 2>&1", g_port,
        g_pki.ca);
    run();
    OUT_HAS("Hello, World!");
    OUT_HAS("RENEGOTIATING");
    OUT_HAS("no renegotiation");
    /* the server is unharmed */
    CMD("(" GETREQ ") | " SCLIENT "-ign_eof 2>&1", g_port, g_pki.ca);
    run();
    OUT_HAS("Hello, World!");
    cli_stop();
}

Test(tls_clients, s_client_alpn, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("openssl");
    cli_default();
    CMD("(" GETREQ ") | " SCLIENT "-ign_eof -alpn h2,http/1.1 2>&1", g_port, g_pki.ca);
    run();
    OUT_HAS("ALPN protocol: http/1.1");
    OUT_HAS("Hello, World!");
    /* RFC 7301 §3.2: no overlap is not a failed handshake here */
    CMD("(" GETREQ ") | " SCLIENT "-ign_eof -alpn h2,spdy/3 2>&1", g_port, g_pki.ca);
    run();
    OUT_HAS("No ALPN negotiated");
    OUT_HAS("Hello, World!");
    cli_stop();
}

Test(tls_clients, s_client_sni, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("openssl");
    char wild[300];
    snprintf(wild, sizeof(wild), "*.wild.test:%s:%s", g_pki.alt_chain, g_pki.alt_key);
    char alt[300];
    snprintf(alt, sizeof(alt), "alt.test:%s:%s", g_pki.alt_chain, g_pki.alt_key);
    const char *args[] = {"--tls-cert", g_pki.chain, "--tls-key", g_pki.key, "--tls-sni",
                          alt,          "--tls-sni", wild,        NULL};
    cli_start(args);
    static const struct {
        const char *flag, *cn;
    } cases[] = {
        {"-servername alt.test", "CN = alt.test"},
        {"-servername ALT.Test", "CN = alt.test"},
        {"-servername a.wild.test", "CN = alt.test"},
        {"-servername a.b.wild.test", "CN = localhost-1"},
        {"-servername other.example", "CN = localhost-1"},
        {"-servername localhost", "CN = localhost-1"},
        {"-noservername", "CN = localhost-1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CMD("(" GETREQ ") | " SCLIENT "-ign_eof %s 2>&1 | grep -E '^subject=|Hello'", g_port,
            g_pki.ca, cases[i].flag);
        run();
        char want[64];
        snprintf(want, sizeof(want), "subject=%s", cases[i].cn);
        OUT_HAS(want);
        OUT_HAS("Hello, World!");
    }
    cli_stop();
}

Test(tls_clients, s_client_resumption, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("openssl");
    cli_default();
    for (int v = 0; v < 2; v++) {
        const char *ver = v == 0 ? "-tls1_3" : "-tls1_2";
        CMD("cd %s && (" GETREQ ") | " SCLIENT "-ign_eof %s -sess_out sess.pem >/dev/null 2>&1;"
            " (" GETREQ ") | " SCLIENT "-ign_eof %s -sess_in sess.pem 2>&1",
            g_pki.dir, g_port, g_pki.ca, ver, g_port, g_pki.ca, ver);
        run();
        OUT_HAS("Reused, TLSv1.");
        OUT_HAS("Hello, World!");
    }
    cli_stop();
}

/* ------------------------------------------------------------------ gnutls */

Test(tls_clients, gnutls_cli, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("gnutls-cli");
    cli_default();
    static const char *prio[] = {"NORMAL", "NORMAL:-VERS-ALL:+VERS-TLS1.2"};
    static const char *want[] = {"(TLS1.3", "(TLS1.2"};
    for (size_t i = 0; i < 2; i++) {
        CMD("(" WAITREQ ") | timeout 20 gnutls-cli --x509cafile %s --priority %s -p %d "
            "--alpn http/1.1 localhost 2>&1",
            g_pki.ca, prio[i], g_port);
        run();
        OUT_HAS("Handshake was completed");
        OUT_HAS(want[i]);
        OUT_HAS("Hello, World!");
    }
    cli_stop();
}

/* -------------------------------------------------------------- CLI reload */

Test(tls_clients, cli_sighup_reload, .init = setup, .fini = teardown, .timeout = TMO)
{
    need("openssl");
    char cert[160], key[160];
    snprintf(cert, sizeof(cert), "%s/live.pem", g_pki.dir);
    snprintf(key, sizeof(key), "%s/live.key", g_pki.dir);
    CMD("cp %s %s && cp %s %s", g_pki.chain, cert, g_pki.key, key);
    cr_assert_eq(run(), 0);
    const char *args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    cli_start(args);
#define SUBJECT() CMD(SCLIENT "</dev/null 2>&1 | grep '^subject='", g_port, g_pki.ca), run()
    SUBJECT();
    OUT_HAS("CN = localhost-1");
    /* swap the files, then SIGHUP */
    CMD("cp %s %s && cp %s %s", g_pki.chain2, cert, g_pki.key2, key);
    cr_assert_eq(run(), 0);
    kill(g_pid, SIGHUP);
    cr_assert(err_wait("TLS certificates reloaded", 10000), "no reload line: %s", g_errbuf);
    SUBJECT();
    OUT_HAS("CN = localhost-2");
    /* a broken file: the reload fails, the old certificate stays */
    CMD("echo garbage > %s", cert);
    cr_assert_eq(run(), 0);
    kill(g_pid, SIGHUP);
    cr_assert(err_wait("TLS reload failed", 10000), "no failure line: %s", g_errbuf);
    cr_expect(strstr(g_errbuf, "keeping the old certificates") != NULL, "%s", g_errbuf);
    SUBJECT();
    OUT_HAS("CN = localhost-2");
    cli_stop();
}

Test(tls_clients, cli_bad_tls_flags, .init = setup, .fini = teardown, .timeout = TMO)
{
    CMD("%s -p 0 --tls-cert %s 2>&1", e2e_bin_path(), g_pki.chain);
    cr_expect_eq(run(), 2, "--tls-cert without --tls-key: %s", g_out);
    OUT_HAS("--tls-cert and --tls-key go together");
    CMD("%s -p 0 --tls-cert %s/none.pem --tls-key %s 2>&1", e2e_bin_path(), g_pki.dir, g_pki.key);
    cr_expect_eq(run(), 1, "missing certificate file: %s", g_out);
    OUT_HAS("No such file or directory");
    CMD("%s -p 0 --tls-cert %s --tls-key %s 2>&1", e2e_bin_path(), g_pki.chain, g_pki.key2);
    cr_expect_eq(run(), 1, "mismatched key: %s", g_out);
    OUT_HAS("cannot load the TLS private key");
    CMD("%s -p 0 --tls-cert %s --tls-key %s --tls-sni bad 2>&1", e2e_bin_path(), g_pki.chain,
        g_pki.key);
    cr_expect_eq(run(), 2, "malformed --tls-sni: %s", g_out);
    OUT_HAS("expected NAME:CERT:KEY");
}

#endif /* APPSRV_HAVE_TLS */
