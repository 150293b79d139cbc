/* SPDX-License-Identifier: MIT */
/*
 * file.h - private helpers of file.c (file responses: validators,
 * conditional requests, byte ranges), shared with static.c and the unit
 * tests. The public calls (appsrv_res_fd, appsrv_res_file_fd,
 * appsrv_res_file, appsrv_mime_type) are in appsrv.h.
 */
#ifndef APPSRV_FILE_H
#define APPSRV_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <sys/stat.h>

#include "common.h"

/* A file's bytes already in memory (static.c's cache): data[0..st_size),
 * given back with release(NULL, ud) exactly once, when the response no
 * longer needs them (at once when it does not send them). */
typedef struct appsrv__fmem {
    const char *data;
    void (*release)(void *data, void *ud);
    void *ud;
} appsrv__fmem_t;

/* appsrv_res_file_fd() for a regular file whose fstat the caller has
 * (static.c: one fstat per request), its body from fd (owned) or, with
 * mem (fd unused), from memory. */
int appsrv__res_file_st(appsrv_res_t *res, const appsrv_req_t *req, int fd,
                        const appsrv__fmem_t *mem, const struct stat *st, const char *type);

/* Parses an IMF-fixdate; false for anything else. */
bool appsrv__parse_http_date(const char *s, size_t n, time_t *out);
/* Whether the entity-tag list (or "*") v matches etag (quoted): weak or
 * strong comparison (RFC 9110 §8.8.3.2). */
bool appsrv__etag_match(appsrv_str_t v, const char *etag, size_t elen, bool weak);
/* One "bytes=" range against size: 1 (*first..*last set), 0 (ignore the
 * field: malformed or several ranges), -1 (unsatisfiable). */
int appsrv__parse_range(appsrv_str_t v, uint64_t size, uint64_t *first, uint64_t *last);

#endif /* APPSRV_FILE_H */
