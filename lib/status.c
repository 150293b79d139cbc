/* SPDX-License-Identifier: MIT */
/*
 * status.c - the status/reason table (one X-macro list), the HTTP date
 * formatter and a decimal formatter. Pure functions: called by loop.c
 * (once a second, for the cached Date), http.c, line.c and server.c.
 */
#include "status.h"

#include <string.h>
#include <time.h>

#define STATUS_MAP(X)                                                          \
    X(100, "Continue")                                                         \
    X(101, "Switching Protocols")                                              \
    X(200, "OK")                                                               \
    X(201, "Created")                                                          \
    X(202, "Accepted")                                                         \
    X(203, "Non-Authoritative Information")                                    \
    X(204, "No Content")                                                       \
    X(205, "Reset Content")                                                    \
    X(206, "Partial Content")                                                  \
    X(300, "Multiple Choices")                                                 \
    X(301, "Moved Permanently")                                                \
    X(302, "Found")                                                            \
    X(303, "See Other")                                                        \
    X(304, "Not Modified")                                                     \
    X(307, "Temporary Redirect")                                               \
    X(308, "Permanent Redirect")                                               \
    X(400, "Bad Request")                                                      \
    X(401, "Unauthorized")                                                     \
    X(402, "Payment Required")                                                 \
    X(403, "Forbidden")                                                        \
    X(404, "Not Found")                                                        \
    X(405, "Method Not Allowed")                                               \
    X(406, "Not Acceptable")                                                   \
    X(408, "Request Timeout")                                                  \
    X(409, "Conflict")                                                         \
    X(410, "Gone")                                                             \
    X(411, "Length Required")                                                  \
    X(412, "Precondition Failed")                                              \
    X(413, "Payload Too Large")                                                \
    X(414, "URI Too Long")                                                     \
    X(415, "Unsupported Media Type")                                           \
    X(416, "Range Not Satisfiable")                                            \
    X(417, "Expectation Failed")                                               \
    X(421, "Misdirected Request")                                              \
    X(422, "Unprocessable Content")                                            \
    X(425, "Too Early")                                                        \
    X(426, "Upgrade Required")                                                 \
    X(428, "Precondition Required")                                            \
    X(429, "Too Many Requests")                                                \
    X(431, "Request Header Fields Too Large")                                  \
    X(451, "Unavailable For Legal Reasons")                                    \
    X(500, "Internal Server Error")                                            \
    X(501, "Not Implemented")                                                  \
    X(502, "Bad Gateway")                                                      \
    X(503, "Service Unavailable")                                              \
    X(504, "Gateway Timeout")                                                  \
    X(505, "HTTP Version Not Supported")                                       \
    X(507, "Insufficient Storage")

const char *appsrv__reason_len(int status, size_t *len)
{
    switch (status) {
#define X_CASE(code, text)                                                     \
    case code:                                                                 \
        *len = sizeof(text) - 1;                                               \
        return text;
        STATUS_MAP(X_CASE)
#undef X_CASE
    default:
        break;
    }
    const char *r = status >= 200 && status < 300   ? "Success"
                    : status >= 300 && status < 400 ? "Redirection"
                    : status >= 400 && status < 500 ? "Client Error"
                                                    : "Server Error";
    *len = strlen(r);
    return r;
}

const char *appsrv__reason(int status)
{
    size_t len;
    return appsrv__reason_len(status, &len);
}

/* RFC 9110 §5.6.7 IMF-fixdate. Fixed English names: strftime would follow
 * the host's locale. */
void appsrv__http_date(char *out, time_t t)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char mons[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    int y = tm.tm_year + 1900;
    char *p = out;
    memcpy(p, days[tm.tm_wday], 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    *p++ = (char)('0' + tm.tm_mday / 10);
    *p++ = (char)('0' + tm.tm_mday % 10);
    *p++ = ' ';
    memcpy(p, mons[tm.tm_mon], 3);
    p += 3;
    *p++ = ' ';
    *p++ = (char)('0' + y / 1000 % 10);
    *p++ = (char)('0' + y / 100 % 10);
    *p++ = (char)('0' + y / 10 % 10);
    *p++ = (char)('0' + y % 10);
    *p++ = ' ';
    *p++ = (char)('0' + tm.tm_hour / 10);
    *p++ = (char)('0' + tm.tm_hour % 10);
    *p++ = ':';
    *p++ = (char)('0' + tm.tm_min / 10);
    *p++ = (char)('0' + tm.tm_min % 10);
    *p++ = ':';
    *p++ = (char)('0' + tm.tm_sec / 10);
    *p++ = (char)('0' + tm.tm_sec % 10);
    memcpy(p, " GMT", 5);
}
