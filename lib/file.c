/* SPDX-License-Identifier: MIT */
/*
 * file.c - file responses: appsrv_res_fd() attaches an open file as the
 * body of a response (res.h's file fields; http_out.c frames it and conn.c
 * sends it with the transport's sendfile or pread + write), and
 * appsrv_res_file()/appsrv_res_file_fd() add the validators
 * (Last-Modified, a strong ETag from mtime and size), the conditional
 * requests of RFC 9110 §13 (304, 412), byte ranges of §14 (206, 416)
 * and the MIME type table. Reads the request only through the public
 * accessors (appsrv_req_header); owns no state. Static directories
 * (static.c) answer through appsrv_res_file_fd().
 */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "res.h"
#include "status.h"

/* ------------------------------------------------------------ MIME types */

typedef struct mime {
    const char *ext;
    const char *type;
} mime_t;

/* Sorted by extension (binary search). */
static const mime_t mimes[] = {
    {"aac", "audio/aac"},
    {"avif", "image/avif"},
    {"bmp", "image/bmp"},
    {"css", "text/css; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"flac", "audio/flac"},
    {"gif", "image/gif"},
    {"gz", "application/gzip"},
    {"heic", "image/heic"},
    {"heif", "image/heif"},
    {"htm", "text/html; charset=utf-8"},
    {"html", "text/html; charset=utf-8"},
    {"ico", "image/vnd.microsoft.icon"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"m4a", "audio/mp4"},
    {"map", "application/json"},
    {"md", "text/markdown; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"mov", "video/quicktime"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"oga", "audio/ogg"},
    {"ogg", "audio/ogg"},
    {"ogv", "video/ogg"},
    {"opus", "audio/opus"},
    {"otf", "font/otf"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"svg", "image/svg+xml"},
    {"tar", "application/x-tar"},
    {"ttf", "font/ttf"},
    {"txt", "text/plain; charset=utf-8"},
    {"wasm", "application/wasm"},
    {"wav", "audio/wav"},
    {"weba", "audio/webm"},
    {"webm", "video/webm"},
    {"webp", "image/webp"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"xml", "application/xml"},
    {"zip", "application/zip"},
};

#define OCTET "application/octet-stream"

const char *appsrv_mime_type(const char *name)
{
    if (name == NULL)
        return OCTET;
    const char *dot = strrchr(name, '.');
    if (dot == NULL || strchr(dot, '/') != NULL)
        return OCTET;
    char ext[8];
    size_t n = strlen(dot + 1);
    if (n == 0 || n >= sizeof(ext))
        return OCTET;
    for (size_t i = 0; i < n; i++) {
        char ch = dot[1 + i];
        ext[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    ext[n] = '\0';
    size_t lo = 0, hi = sizeof(mimes) / sizeof(mimes[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(ext, mimes[mid].ext);
        if (c == 0)
            return mimes[mid].type;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return OCTET;
}

/* ------------------------------------------------------------- the body */

/* Makes fd[off, off + len) the body of res (checked by the caller). */
static void set_file(appsrv_res_t *res, int fd, off_t off, off_t len)
{
    appsrv_res_set_body(res, NULL, 0);
    if (res->file_fd >= 0)
        close(res->file_fd);
    res->file_fd = fd;
    res->file_off = off;
    res->file_len = (uint64_t)len;
    if (res->status == 0)
        res->status = 200;
}

int appsrv_res_fd(appsrv_res_t *res, int fd, off_t off, off_t len)
{
    if (fd < 0)
        return -EBADF;
    struct stat st;
    int rc = 0;
    if (res == NULL)
        rc = -EINVAL;
    else if (res->conn->proto->id != APPSRV_PROTO_HTTP)
        rc = APPSRV_ESTATE;
    else if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode) || off < 0 || off > st.st_size ||
             (len >= 0 && len > st.st_size - off))
        rc = -EINVAL;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (len < 0)
        len = st.st_size - off;
    set_file(res, fd, off, len);
    return 0;
}

/* ------------------------------------------------------------ validators */

static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Parses an HTTP-date in the preferred IMF-fixdate form (the obsolete
 * RFC 850 and asctime forms are not accepted: such a field is treated as
 * invalid, which RFC 9110 §13.1.3/§13.1.4 says to ignore). */
bool appsrv__parse_http_date(const char *s, size_t n, time_t *out)
{
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    if (n != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
        s[19] != ':' || s[22] != ':' || memcmp(s + 25, " GMT", 4) != 0)
        return false;
    struct tm tm = {0};
    int m = -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(s + 8, mon[i], 3) == 0)
            m = i;
    int day, year, h, mi, sec;
    if (m < 0 || !digits(s + 5, 2, &day) || !digits(s + 12, 4, &year) || !digits(s + 17, 2, &h) ||
        !digits(s + 20, 2, &mi) || !digits(s + 23, 2, &sec))
        return false;
    if (day < 1 || day > 31 || h > 23 || mi > 59 || sec > 60 || year < 1970)
        return false;
    tm.tm_mday = day;
    tm.tm_mon = m;
    tm.tm_year = year - 1900;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = timegm(&tm);
    return *out != (time_t)-1;
}

/* The strong ETag, quotes included. */
static size_t make_etag(char *out, size_t cap, const struct stat *st)
{
    int n = snprintf(out, cap, "\"%llx.%lx-%llx\"", (unsigned long long)st->st_mtim.tv_sec,
                     (unsigned long)st->st_mtim.tv_nsec, (unsigned long long)st->st_size);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Whether the field value v (a list of entity-tags, or "*") holds one
 * that matches etag: weak comparison (RFC 9110 §8.8.3.2) when weak, else
 * strong (neither may be weak; ours never is). A malformed member ends
 * the scan (no match). */
bool appsrv__etag_match(appsrv_str_t v, const char *etag, size_t elen, bool weak)
{
    const char *p = v.ptr, *end = v.ptr + v.len;
    p = skip_ows(p, end);
    if (end - p == 1 && *p == '*')
        return true;
    while (p < end) {
        p = skip_ows(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p == end)
            break;
        bool is_weak = false;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/') {
            is_weak = true;
            p += 2;
        }
        if (p == end || *p != '"')
            return false;
        const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
        if (q == NULL)
            return false;
        size_t tl = (size_t)(q - p + 1);
        if ((weak || !is_weak) && tl == elen && memcmp(p, etag, elen) == 0)
            return true;
        p = skip_ows(q + 1, end);
        if (p < end && *p != ',')
            return false;
    }
    return false;
}

static bool parse_u64(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (p == end || *p < '0' || *p > '9')
        return false;
    while (p < end && *p >= '0' && *p <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    *pp = p;
    *out = v;
    return true;
}

/* RFC 9110 §14.1.2 for one range of a representation of size bytes:
 * returns 1 with [*first, *last] for a satisfiable single range, 0 when
 * the field is to be ignored (malformed, another unit, several ranges:
 * the whole file is sent), -1 when unsatisfiable (416). */
int appsrv__parse_range(appsrv_str_t v, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p = v.ptr, *end = v.ptr + v.len;
    if (v.len < 6 || !appsrv__ieq(p, 6, "bytes=", 6))
        return 0;
    p = skip_ows(p + 6, end);
    uint64_t a = 0, b = 0;
    bool suffix = false, open = false;
    if (p < end && *p == '-') {
        p++;
        if (!parse_u64(&p, end, &b))
            return 0;
        suffix = true;
    } else {
        if (!parse_u64(&p, end, &a) || p == end || *p != '-')
            return 0;
        p++;
        if (p < end && *p >= '0' && *p <= '9') {
            if (!parse_u64(&p, end, &b) || b < a)
                return 0;
        } else {
            open = true;
        }
    }
    p = skip_ows(p, end);
    if (p != end)
        return 0; /* several ranges (or junk): the whole file */
    if (suffix) {
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = open || b >= size ? size - 1 : b;
    return 1;
}

/* --------------------------------------------------------- the answer */

static int answer_plain(appsrv_res_t *res, int status, const char *msg)
{
    appsrv_res_set_status(res, status);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_set_body(res, msg, strlen(msg));
}

int appsrv_res_file_fd(appsrv_res_t *res, const appsrv_req_t *req, int fd, const char *type)
{
    struct stat st;
    int err = 0;
    if (fd < 0)
        return -EBADF;
    if (res == NULL)
        err = -EINVAL;
    else if (fstat(fd, &st) < 0)
        err = -errno;
    else if (S_ISDIR(st.st_mode))
        err = -EISDIR;
    else if (!S_ISREG(st.st_mode))
        err = -EINVAL;
    if (err < 0) {
        close(fd);
        return err;
    }
    return appsrv__res_file_st(res, req, fd, NULL, &st, type);
}

/* Gives back what the answer will not send: the fd or the memory. */
static void drop(int fd, const appsrv__fmem_t *mem)
{
    if (mem != NULL)
        mem->release(NULL, mem->ud);
    else
        close(fd);
}

int appsrv__res_file_st(appsrv_res_t *res, const appsrv_req_t *req, int fd,
                        const appsrv__fmem_t *mem, const struct stat *stp, const char *type)
{
    const struct stat st = *stp;
    char etag[64], lm[30];
    size_t elen = make_etag(etag, sizeof(etag), &st);
    appsrv__http_date(lm, st.st_mtim.tv_sec);
    uint64_t size = (uint64_t)st.st_size;
    int status = 200;
    uint64_t first = 0, last = size ? size - 1 : 0;

    if (req != NULL) {
        appsrv_str_t m = appsrv_req_method(req);
        bool get = m.len == 3 && memcmp(m.ptr, "GET", 3) == 0;
        bool head = m.len == 4 && memcmp(m.ptr, "HEAD", 4) == 0;
        appsrv_str_t v;
        time_t t;
        /* RFC 9110 §13.2.2 steps 1-4. */
        if ((v = appsrv_req_header(req, "If-Match")).ptr != NULL) {
            if (!appsrv__etag_match(v, etag, elen, false))
                status = 412;
        } else if ((v = appsrv_req_header(req, "If-Unmodified-Since")).ptr != NULL &&
                   appsrv__parse_http_date(v.ptr, v.len, &t) && st.st_mtim.tv_sec > t) {
            status = 412;
        }
        if (status == 200) {
            if ((v = appsrv_req_header(req, "If-None-Match")).ptr != NULL) {
                if (appsrv__etag_match(v, etag, elen, true))
                    status = get || head ? 304 : 412;
            } else if ((get || head) &&
                       (v = appsrv_req_header(req, "If-Modified-Since")).ptr != NULL &&
                       appsrv__parse_http_date(v.ptr, v.len, &t) && st.st_mtim.tv_sec <= t) {
                status = 304;
            }
        }
        /* Step 5: Range, GET only, with If-Range. */
        if (status == 200 && get && (v = appsrv_req_header(req, "Range")).ptr != NULL) {
            appsrv_str_t ir = appsrv_req_header(req, "If-Range");
            bool use = true;
            if (ir.ptr != NULL) {
                if (ir.len > 0 && (ir.ptr[0] == '"' || ir.ptr[0] == 'W'))
                    use = appsrv__etag_match(ir, etag, elen, false) && ir.ptr[0] == '"';
                else
                    use = appsrv__parse_http_date(ir.ptr, ir.len, &t) && t == st.st_mtim.tv_sec;
            }
            if (use) {
                int r = appsrv__parse_range(v, size, &first, &last);
                if (r > 0)
                    status = 206;
                else if (r < 0)
                    status = 416;
            }
        }
    }

    /* From here res changes: every add may only fail for lack of memory. */
    int rc = 0;
    if (status == 412 || status == 416) {
        drop(fd, mem);
        if (status == 416) {
            char cr[48];
            snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
            appsrv_res_add_header(res, "Content-Range", cr);
            return answer_plain(res, 416, "Range Not Satisfiable\n");
        }
        return answer_plain(res, 412, "Precondition Failed\n");
    }
    if (elen > 0)
        rc |= appsrv_res_add_header(res, "ETag", etag);
    rc |= appsrv_res_add_header(res, "Last-Modified", lm);
    if (status == 304) {
        drop(fd, mem);
        appsrv_res_set_status(res, 304);
        return rc < 0 ? -ENOMEM : 0;
    }
    rc |= appsrv_res_add_header(res, "Accept-Ranges", "bytes");
    if (type != NULL)
        rc |= appsrv_res_add_header(res, "Content-Type", type);
    if (status == 206) {
        char cr[80];
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)first,
                 (unsigned long long)last, (unsigned long long)size);
        rc |= appsrv_res_add_header(res, "Content-Range", cr);
    }
    res->status = status;
    if (mem != NULL)
        appsrv_res_set_body_ref(res, mem->data + first, size ? last - first + 1 : 0, mem->release,
                                mem->ud);
    else
        set_file(res, fd, (off_t)first, size ? (off_t)(last - first + 1) : 0);
    return rc < 0 ? -ENOMEM : 0;
}

int appsrv_res_file(appsrv_res_t *res, const appsrv_req_t *req, const char *path)
{
    if (res == NULL || path == NULL)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    return appsrv_res_file_fd(res, req, fd, appsrv_mime_type(path));
}
