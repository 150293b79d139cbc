/* SPDX-License-Identifier: MIT */
/*
 * test_docs.c - the manual pages keep up with the code (run from the
 * source tree, as make test does): every APPSRV_API function of
 * include/appsrv.h has a bold SYNOPSIS line and a .TP (or .TQ) entry in
 * lib/libappsrv.3, and every long option of cli/appsrv.c is described
 * in cli/appsrv.1. Written with the WebSocket API (issue 15), which added
 * ten functions and two options; it checks all of them.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TMO .timeout = 30

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s (run from the source tree)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static bool matches(const char *text, const char *pattern)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0, "%s", pattern);
    bool m = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return m;
}

Test(docs, every_api_function_in_libappsrv_3, TMO)
{
    char *hdr = slurp("include/appsrv.h");
    char *man = slurp("lib/libappsrv.3");
    int n = 0;
    for (char *line = strtok(hdr, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "APPSRV_API ", 11) != 0)
            continue;
        char *paren = strchr(line, '(');
        cr_assert_not_null(paren, "%s", line);
        char *start = paren;
        while (start > line && (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z') ||
                                (start[-1] >= '0' && start[-1] <= '9')))
            start--;
        char name[64];
        size_t len = (size_t)(paren - start);
        cr_assert(len > 0 && len < sizeof(name), "%s", line);
        memcpy(name, start, len);
        name[len] = 0;
        char pat[256];
        snprintf(pat, sizeof(pat), "^\\.BI? .*[ *\"]%s\\(", name);
        cr_expect(matches(man, pat), "libappsrv.3: no SYNOPSIS line for %s", name);
        snprintf(pat, sizeof(pat), "^\\.T[PQ]\n\\.B[IR]? %s( \\(\\)|\\()", name);
        cr_expect(matches(man, pat), "libappsrv.3: no .TP entry for %s", name);
        n++;
    }
    cr_assert_geq(n, 60);
    free(hdr);
    free(man);
}

Test(docs, every_cli_long_option_in_appsrv_1, TMO)
{
    char *src = slurp("cli/appsrv.c");
    char *man = slurp("cli/appsrv.1");
    int n = 0;
    /* The getopt_long table: {"name", required_argument|no_argument, ...} */
    for (char *p = strstr(src, "{\""); p != NULL; p = strstr(p + 2, "{\"")) {
        char *end = strchr(p + 2, '"');
        if (end == NULL || strncmp(end, "\", ", 3) != 0 || strstr(end, "_argument") == NULL ||
            strstr(end, "_argument") > strchr(end, '}'))
            continue;
        char esc[128] = "\\\\-\\\\-";
        size_t k = strlen(esc);
        for (char *c = p + 2; c < end && k + 4 < sizeof(esc); c++) {
            if (*c == '-') {
                memcpy(esc + k, "\\\\-", 3);
                k += 3;
            } else {
                esc[k++] = *c;
            }
        }
        esc[k] = 0;
        char pat[256];
        /* In a .TP tag of OPTIONS, and in the SYNOPSIS. */
        snprintf(pat, sizeof(pat), "^\\.TP\n\\.B[IR]? .*%s([^a-z\\\\]|\\\\f|$)", esc);
        cr_expect(matches(man, pat), "appsrv.1: option --%.*s has no .TP entry", (int)(end - p - 2),
                  p + 2);
        snprintf(pat, sizeof(pat), "^\\[.*\\\\fB.*%s\\\\fR", esc);
        cr_expect(matches(man, pat), "appsrv.1: option --%.*s is not in the SYNOPSIS",
                  (int)(end - p - 2), p + 2);
        n++;
    }
    cr_assert_geq(n, 14);
    free(src);
    free(man);
}
