/* SPDX-License-Identifier: MIT */
/*
 * test_cli_root.c - the CLI's --root DIR (issue 16 part B) as a child
 * process: built-in routes still win over files; a 1 GiB sparse file
 * read by a slow reader (20 MB over a few seconds, then it closes) with
 * the server's VmRSS growing by a few MiB at most and no fd kept after;
 * the same file over HTTPS (the pread + write path, no sendfile) with
 * correct bytes for a range at its end and a 64 MiB range hashed; curl
 * -C - resuming a cut download (hashes compared); --root errors at start.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "expect.h"
#include "sh.h"
#ifdef APPSRV_HAVE_TLS
#include "tls_util.h"
#endif

static char g_dir[64];

#define HUGE_LEN (1024ull * 1024 * 1024)

static void make_dir(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/appsrv-root-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
    char p[128];
    snprintf(p, sizeof(p), "%s/huge.bin", g_dir);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    /* Sparse: truncate, never written (reads as zeros); a tail marker. */
    cr_assert_eq(ftruncate(fd, (off_t)HUGE_LEN), 0);
    cr_assert_eq(pwrite(fd, "END!", 4, (off_t)HUGE_LEN - 4), 4);
    close(fd);
    snprintf(p, sizeof(p), "%s/small.txt", g_dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs("small file\n", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/health", g_dir);
    f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs("a file named health\n", f);
    fclose(f);
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", g_dir);
}

static void start_cli(e2e_proc_t *p, int *port, const char *const args[])
{
    int rc = e2e_appsrv_start(p, args, 0, "127.0.0.1", port, NULL, SCALE(10000, 60000));
    cr_assert_eq(rc, 0, "appsrv did not start: %s; stderr: %s", e2e_errname(rc),
                 p->err.buf ? p->err.buf : "");
}

static void stop_cli(e2e_proc_t *p)
{
    int rc = e2e_proc_stop(p, SIGTERM, 15000 * e2e_slow_factor());
    cr_expect_eq(rc, 0, "appsrv did not stop");
    cr_expect(WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0, "appsrv status 0x%x: %s",
              (unsigned)p->status, p->err.buf ? p->err.buf : "");
    e2e_proc_free(p);
}

Test(cli_root, routes_win_files_served, .timeout = 60)
{
    make_dir();
    e2e_proc_t p;
    int port;
    const char *args[] = {"-p", "0", "-t", "2", "-q", "--root", g_dir, NULL};
    start_cli(&p, &port, args);
    e2e_resp_t r;
    roundtrip(port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    check_status(&r, 200, "OK");
    cr_expect_eq(r.body_len, 2u, "the built-in /health answers, not the file");
    e2e_resp_free(&r);
    roundtrip(port, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "small file\n");
    cr_expect_not_null(e2e_resp_header(&r, "ETag"));
    e2e_resp_free(&r);
    roundtrip(port, "HEAD /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n", &r, E2E_RESP_HEAD);
    check_status(&r, 200, "OK");
    cr_expect_str_eq(e2e_resp_header(&r, "Content-Length"), "1073741824");
    e2e_resp_free(&r);
    roundtrip(port, "GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    cr_expect(r.status == 400 || r.status == 404, "traversal: %d", r.status);
    e2e_resp_free(&r);
    roundtrip(port, "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    check_status(&r, 404, NULL);
    e2e_resp_free(&r);
    stop_cli(&p);
    remove_dir();
}

Test(cli_root, bad_root_fails_at_start, .timeout = 30)
{
    const char *args[] = {"-p", "0", "--root", "/nonexistent/appsrv-root", NULL};
    char *argv[8] = {(char *)e2e_bin_path()};
    for (int i = 0; args[i] != NULL; i++)
        argv[i + 1] = (char *)args[i];
    e2e_proc_t p;
    cr_assert_eq(e2e_proc_spawn(&p, argv, E2E_PROC_ERR), 0);
    cr_assert_eq(e2e_proc_wait(&p, 10000), 0, "appsrv kept running with a bad --root");
    cr_expect(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 1, "status 0x%x",
              (unsigned)p.status);
    cr_expect(p.err.buf != NULL && strstr(p.err.buf, "--root") != NULL, "stderr: %s",
              p.err.buf ? p.err.buf : "");
    e2e_proc_free(&p);
}

/* A slow reader of the 1 GiB file: small receive buffer, reads about
 * 20 MB over about 4 s (a bounded loop), then closes mid-file. The
 * server's VmRSS must not grow with the file. */
Test(cli_root, slow_reader_huge_file_bounded_rss, .timeout = 120)
{
    make_dir();
    e2e_proc_t p;
    int port;
    const char *args[] = {"-p", "0", "-t", "2", "-q", "--root", g_dir, NULL};
    start_cli(&p, &port, args);
    /* Warm up (pool blocks, a first file), then measure. */
    int fds0 = e2e_fd_count_pid(p.pid);
    e2e_resp_t r;
    roundtrip(port, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    e2e_resp_free(&r);
    long rss0 = e2e_rss_kib(p.pid);
    cr_assert_gt(rss0, 0);
    e2e_conn_t c;
    open_conn_rcvbuf(&c, port, 16384);
    send_str(&c, "GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    char *buf = malloc(65536);
    cr_assert_not_null(buf);
    size_t got = 0;
    long rss_max = rss0;
    int64_t end = e2e_now_ms() + 4000;
    const size_t want = SCALE(20u * MIB, 4u * MIB);
    while (got < want && e2e_now_ms() < end + 20000) {
        int n = e2e_read_some(&c, buf, 65536, RD);
        cr_assert_gt(n, 0, "read after %zu bytes: %s", got, e2e_errname(n));
        got += (size_t)n;
        if ((got / 65536) % 32 == 0) {
            long rss = e2e_rss_kib(p.pid);
            if (rss > rss_max)
                rss_max = rss;
            e2e_pause_ms(100); /* slow: about 2 MB per 100 ms at most */
        }
    }
    free(buf);
    long rss1 = e2e_rss_kib(p.pid);
    if (rss1 > rss_max)
        rss_max = rss1;
    cr_expect_geq(got, want, "read only %zu bytes", got);
    cr_log_info("slow reader: %zu bytes read; server VmRSS %ld KiB before, max %ld KiB", got, rss0,
                rss_max);
    cr_expect_lt(rss_max - rss0, 4096, "VmRSS grew by %ld KiB (%ld -> %ld) while serving 1 GiB",
                 rss_max - rss0, rss0, rss_max);
    e2e_conn_close(&c);
    /* The file's fd goes with the connection (bounded wait). */
    int64_t dl = e2e_now_ms() + 5000 * e2e_slow_factor();
    int fds;
    while ((fds = e2e_fd_count_pid(p.pid)) > fds0 && e2e_now_ms() < dl)
        e2e_pause_ms(10);
    cr_expect_eq(fds, fds0, "server fds %d after the close, %d before", fds, fds0);
    stop_cli(&p);
    remove_dir();
}

Test(cli_root, curl_cut_and_resume, .timeout = 60)
{
    if (access("/usr/bin/curl", X_OK) != 0)
        cr_skip_test("curl missing");
    make_dir();
    e2e_proc_t p;
    int port;
    const char *args[] = {"-p", "0", "-t", "2", "-q", "--root", g_dir, NULL};
    start_cli(&p, &port, args);
    /* A 24 MiB random file; the first download is cut after 5,000,000
     * bytes (head closes the pipe), then curl -C - fetches the rest. */
    char cmd[1024], *out;
    snprintf(cmd, sizeof(cmd),
             "cd %s && head -c 25165824 /dev/urandom > rnd.bin && "
             "(curl -s http://127.0.0.1:%d/rnd.bin | head -c 5000000 > part); "
             "stat -c %%s part && "
             "curl -s -C - -o part -w '%%{http_code}\\n' http://127.0.0.1:%d/rnd.bin && "
             "sha256sum < part | cut -c1-64 && sha256sum < rnd.bin | cut -c1-64",
             g_dir, port, port);
    int st = sh_run(cmd, 30000, &out);
    cr_expect_eq(st, 0, "sh: %s", out);
    char n[32] = "", code[8] = "", h1[80] = "", h2[80] = "";
    cr_expect_eq(sscanf(out, "%31s %7s %64s %64s", n, code, h1, h2), 4, "output: %s", out);
    cr_expect_str_eq(n, "5000000");
    cr_expect_str_eq(code, "206");
    cr_expect(h1[0] != '\0' && strcmp(h1, h2) == 0, "resumed %s, file %s", h1, h2);
    free(out);
    stop_cli(&p);
    remove_dir();
}

#ifdef APPSRV_HAVE_TLS
static bool https_up(const char *err, void *ud)
{
    (void)ud;
    return e2e_listen_port(err, "https", "127.0.0.1") > 0;
}

/* The same 1 GiB file over HTTPS: no sendfile there (pread + SSL_write).
 * The tail range must carry the marker; a 64 MiB prefix is hashed (8 MiB
 * under valgrind: the bytes go through OpenSSL there, 25 s for 64 MiB). */
Test(cli_root, https_fallback_bytes, .timeout = 120)
{
    if (access("/usr/bin/curl", X_OK) != 0)
        cr_skip_test("curl missing");
    tls_pki_t pki;
    cr_assert_eq(tls_pki_make(&pki), 0, "test PKI");
    make_dir();
    e2e_proc_t p;
    int port;
    const char *args[] = {"-p",         "0",     "-t",       "2",  "-q", "--tls-cert",
                          pki.chain,    "--tls-key", pki.key, "--root", g_dir, NULL};
    char *argv[16] = {(char *)e2e_bin_path()};
    for (int i = 0; args[i] != NULL; i++)
        argv[i + 1] = (char *)args[i];
    cr_assert_eq(e2e_proc_spawn(&p, argv, E2E_PROC_ERR), 0);
    int rc = e2e_proc_wait_err(&p, https_up, NULL, SCALE(10000, 60000));
    cr_assert_eq(rc, 0, "no https listening line (%s); stderr: %s", e2e_errname(rc),
                 p.err.buf ? p.err.buf : "");
    port = e2e_listen_port(p.err.buf, "https", "127.0.0.1");
    cr_assert_gt(port, 0);
    char cmd[1024], *out;
    const unsigned long long fallback_len = SCALE(64ull, 8ull) * 1024 * 1024;
    snprintf(cmd, sizeof(cmd),
             "cd %s && curl -s --cacert %s -r %llu- https://localhost:%d/huge.bin | od -c | "
             "head -1 && curl -s --cacert %s -r 0-%llu https://localhost:%d/huge.bin | "
             "sha256sum && head -c %llu huge.bin | sha256sum && "
             "curl -s --cacert %s -o /dev/null -w '%%{http_code} %%{size_download}\\n' "
             "-H 'Range: bytes=-100000' https://localhost:%d/huge.bin",
             g_dir, pki.ca, HUGE_LEN - 4, port, pki.ca, fallback_len - 1, port, fallback_len,
             pki.ca, port);
    int st = sh_run(cmd, 60000, &out);
    cr_expect_eq(st, 0, "sh: %s", out);
    char a[80] = "", b[80] = "";
    const char *l2 = strchr(out, '\n');
    cr_assert_not_null(l2, "output: %s", out);
    cr_expect(strstr(out, "E   N   D   !") != NULL, "tail marker: %s", out);
    sscanf(l2 + 1, "%64s", a);
    const char *l3 = strchr(l2 + 1, '\n');
    cr_assert_not_null(l3, "output: %s", out);
    sscanf(l3 + 1, "%64s", b);
    cr_expect(a[0] != '\0' && strcmp(a, b) == 0, "sha256 over TLS %s, file %s", a, b);
    cr_expect(strstr(out, "206 100000") != NULL, "suffix range: %s", out);
    free(out);
    stop_cli(&p);
    remove_dir();
    tls_pki_remove(&pki);
}
#endif
