/* SPDX-License-Identifier: MIT */
/*
 * fuzz_form.c - libFuzzer driver for the form-urlencoded and cookie
 * lookups (appsrv_form_param, appsrv_cookie_get) and the Set-Cookie
 * builder. The input's first line is the name looked up, the rest the
 * form or Cookie field. A found value must lie inside the input, a
 * decoded one must fit the buffer the docs promise, and a built
 * Set-Cookie must never hold CR, LF or NUL.
 */
#include <appsrv.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *nl = memchr(p, '\n', size);
    size_t nlen = nl != NULL ? (size_t)(nl - p) : 0;
    char name[64];
    if (nlen >= sizeof(name))
        nlen = sizeof(name) - 1;
    memcpy(name, p, nlen);
    name[nlen] = '\0';
    if (strlen(name) != nlen)
        return 0;
    appsrv_str_t rest = {nl != NULL ? nl + 1 : p, nl != NULL ? size - (size_t)(nl + 1 - p) : size};

    char *buf = malloc(rest.len + 1);
    ssize_t n = appsrv_form_param(rest, name, buf, rest.len + 1);
    if (n == -ENOSPC || (n >= 0 && (size_t)n > rest.len) || (n >= 0 && buf[n] != '\0'))
        abort();
    free(buf);

    appsrv_str_t v = appsrv_cookie_get(rest, name);
    if (v.ptr != NULL && (v.ptr < rest.ptr || v.ptr + v.len > rest.ptr + rest.len))
        abort();

    /* The rest as a cookie value, path and domain. */
    char *s = malloc(rest.len + 1);
    memcpy(s, rest.ptr, rest.len);
    s[rest.len] = '\0';
    char out[512];
    appsrv_cookie_t c = {.name = nlen ? name : "n", .value = s, .path = s, .domain = s,
                         .secure = true, .same_site = (appsrv_samesite_t)(size % 5)};
    int k = appsrv_cookie_format(&c, out, sizeof(out));
    if (k >= 0 && (strpbrk(out, "\r\n") != NULL || strlen(out) != (size_t)k))
        abort();
    free(s);
    return 0;
}
