/* SPDX-License-Identifier: MIT */
/*
 * fuzz_multipart.c - libFuzzer driver for the multipart/form-data parser
 * (appsrv_multipart_*). The input is a body for the boundary "xyz" (the
 * seeds hold real clients' layouts with that boundary); it is parsed
 * whole, split in two at a point taken from its first byte, and one byte
 * at a time, with small limits. All three must agree on the result, the
 * parts' headers and their data (a hash of everything the callbacks saw).
 */
#include <appsrv.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
    uint64_t h;
    size_t bytes;
} seen_t;

static void mix(seen_t *s, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        s->h = (s->h ^ b[i]) * 1099511628211ull;
}

static void mix_str(seen_t *s, appsrv_str_t v)
{
    if (v.ptr == NULL) {
        mix(s, "\x01", 1);
        return;
    }
    if (strlen(v.ptr) != v.len) /* NUL-terminated at len (no NUL inside?) */
        mix(s, "\x02", 1);
    mix(s, v.ptr, v.len);
    mix(s, "\x00", 1);
}

static int on_part(const appsrv_part_t *p, void *u)
{
    seen_t *s = u;
    mix(s, "[", 1);
    mix_str(s, p->name);
    mix_str(s, p->filename);
    mix_str(s, p->content_type);
    return 0;
}

static int on_data(const appsrv_part_t *p, const void *d, size_t n, void *u)
{
    (void)p;
    seen_t *s = u;
    if (n == 0)
        abort(); /* never an empty piece */
    s->bytes += n;
    mix(s, d, n); /* pieces concatenate: the hash does not see the cuts */
    return 0;
}

static int on_end(const appsrv_part_t *p, void *u)
{
    (void)p;
    mix(u, "]", 1);
    return 0;
}

static int run(const uint8_t *data, size_t size, size_t step, size_t split, seen_t *s)
{
    static const appsrv_multipart_handlers_t h = {on_part, on_data, on_end, 16, 256};
    appsrv_multipart_t *mp;
    memset(s, 0, sizeof(*s));
    s->h = 1469598103934665603ull;
    static const char ct[] = "multipart/form-data; boundary=\"xyz\"";
    if (appsrv_multipart_new(&mp, (appsrv_str_t){ct, sizeof(ct) - 1}, &h, s) != 0)
        abort();
    int rc = 0;
    size_t at = 0;
    if (split > 0) {
        rc = appsrv_multipart_feed(mp, data, split);
        at = split;
    }
    while (rc == 0 && at < size) {
        size_t n = step == 0 || size - at < step ? size - at : step;
        rc = appsrv_multipart_feed(mp, data + at, n);
        at += n;
    }
    if (rc == 0)
        rc = appsrv_multipart_finish(mp);
    if (appsrv_multipart_error(mp) == NULL)
        abort();
    appsrv_multipart_free(mp);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seen_t a, b, c;
    size_t split = size ? (size_t)data[0] * size / 256 : 0;
    int ra = run(data, size, 0, 0, &a);
    int rb = run(data, size, 0, split, &b);
    int rc = run(data, size, 1, 0, &c);
    /* A failure may come with different partial data delivered (the data
     * before the bad byte goes out as it arrives); a success may not. */
    if (ra != rb || ra != rc)
        abort();
    if (ra >= 0 && (a.h != b.h || a.h != c.h || a.bytes != c.bytes))
        abort();
    return 0;
}
