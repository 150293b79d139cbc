/* SPDX-License-Identifier: MIT */
/*
 * test_error.c - appsrv_version(), appsrv_strerror() and appsrv_errname():
 * errno values of either sign, the library's own codes from the
 * APPSRV_ERR_MAP table, and unknown codes (never NULL).
 */
#include <appsrv.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "helpers.h"

TestSuite(error, .timeout = 10);

Test(error, version_matches_header)
{
    const int fds = open_fd_count();
    cr_assert_str_eq(appsrv_version(), APPSRV_VERSION_STRING);
    cr_assert_eq(APPSRV_VERSION_HEX,
                 (APPSRV_VERSION_MAJOR << 16) | (APPSRV_VERSION_MINOR << 8) | APPSRV_VERSION_PATCH);
    assert_fd_count(fds);
}

Test(error, errno_values_either_sign)
{
    const int fds = open_fd_count();
    cr_assert_str_eq(appsrv_strerror(-EADDRINUSE), "Address already in use");
    cr_assert_str_eq(appsrv_errname(-EADDRINUSE), "EADDRINUSE");
    cr_assert_str_eq(appsrv_strerror(EADDRINUSE), "Address already in use");
    cr_assert_str_eq(appsrv_errname(EADDRINUSE), "EADDRINUSE");
    cr_assert_str_eq(appsrv_errname(-ETIMEDOUT), "ETIMEDOUT");
    cr_assert_str_eq(appsrv_errname(-EPIPE), "EPIPE");
    assert_fd_count(fds);
}

Test(error, library_codes)
{
    const int fds = open_fd_count();
    cr_assert_str_eq(appsrv_strerror(APPSRV_EAI_NONAME), "host or service not known");
    cr_assert_str_eq(appsrv_errname(APPSRV_EAI_NONAME), "APPSRV_EAI_NONAME");
    cr_assert_str_eq(appsrv_strerror(APPSRV_EPARSE), "malformed input");
    cr_assert_str_eq(appsrv_errname(APPSRV_EPARSE), "APPSRV_EPARSE");
    assert_fd_count(fds);
}

/* Every row of the table: its own message and its own name, all distinct. */
Test(error, every_table_entry)
{
    const int fds = open_fd_count();
    static const struct {
        int code;
        const char *name;
        const char *msg;
    } rows[] = {
#define ROW(name, value, msg) {APPSRV_##name, "APPSRV_" #name, msg},
        APPSRV_ERR_MAP(ROW)
#undef ROW
    };
    size_t n = sizeof rows / sizeof rows[0];

    for (size_t i = 0; i < n; i++) {
        cr_assert_lt(rows[i].code, -1000, "%s is not far below errno values", rows[i].name);
        cr_assert_str_eq(appsrv_strerror(rows[i].code), rows[i].msg);
        cr_assert_str_eq(appsrv_errname(rows[i].code), rows[i].name);
        for (size_t j = i + 1; j < n; j++)
            cr_assert_neq(rows[i].code, rows[j].code, "%s and %s share a code", rows[i].name,
                          rows[j].name);
    }
    assert_fd_count(fds);
}

Test(error, unknown_codes_never_null)
{
    const int fds = open_fd_count();
    static const int codes[] = {-99999, 99999, -3000, -3013, -3099, -3105, -4095, 4095, INT_MIN,
                                INT_MAX, -1000000};

    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        cr_assert_str_eq(appsrv_strerror(codes[i]), "unknown error", "code %d", codes[i]);
        cr_assert_str_eq(appsrv_errname(codes[i]), "UNKNOWN", "code %d", codes[i]);
    }
    cr_assert_not_null(appsrv_strerror(0));
    cr_assert_not_null(appsrv_errname(0));
    assert_fd_count(fds);
}
