/* SPDX-License-Identifier: MIT */
/*
 * error.c - the version string and the names and messages of every error
 * the library returns. The library's own codes (APPSRV_E*) come from the
 * APPSRV_ERR_MAP table in appsrv.h; errno values, of either sign, are named
 * by glibc's strerrordesc_np()/strerrorname_np(), which, unlike strerror(),
 * return static strings and so are thread-safe. Called by hosts and tests
 * only. Invariant: every function returns a static string, never NULL.
 */
#include <appsrv.h>

#include <limits.h>
#include <string.h>

const char *appsrv_version(void)
{
    return APPSRV_VERSION_STRING;
}

/* The absolute value of err, or -1 when it has none (INT_MIN). */
static int errno_value(int err)
{
    if (err == INT_MIN)
        return -1;
    return err < 0 ? -err : err;
}

const char *appsrv_strerror(int err)
{
    const char *msg;

    switch (err) {
#define APPSRV_X_MSG_(name, value, text)                                                           \
    case APPSRV_##name:                                                                            \
        return text;
        APPSRV_ERR_MAP(APPSRV_X_MSG_)
#undef APPSRV_X_MSG_
    default:
        break;
    }
    msg = strerrordesc_np(errno_value(err));
    return msg ? msg : "unknown error";
}

const char *appsrv_errname(int err)
{
    const char *name;

    switch (err) {
#define APPSRV_X_NAME_(name, value, text)                                                          \
    case APPSRV_##name:                                                                            \
        return "APPSRV_" #name;
        APPSRV_ERR_MAP(APPSRV_X_NAME_)
#undef APPSRV_X_NAME_
    default:
        break;
    }
    name = strerrorname_np(errno_value(err));
    return name ? name : "UNKNOWN";
}
