/* SPDX-License-Identifier: MIT */
/*
 * stats.c - a worker's request counting, the rate-limited on_event hook
 * and the request-ID generator (contract in stats.h). Called on the
 * worker's loop thread by req.c, conn.c, server.c and the protocols;
 * calls only the host's on_event callback and, once per worker,
 * getrandom().
 */
#include "stats.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

const char *const appsrv__timeout_names[APPSRV__NTIMEOUTS] = {
    "head", "idle", "body", "write", "linger", "response",
};

const uint64_t appsrv__lat_bounds_us[APPSRV__NLAT] = {
    500,    1000,   2500,   5000,    10000,   25000,   50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

static const char *const event_names[APPSRV__NEVENTS] = {
    "accept_error", "conn_refused",     "protocol_error",
    "timeout",      "access_log_error", "tls_handshake_failed",
    "notify_error",
};

void appsrv__stats_request(appsrv__stats_t *st, appsrv_proto_t proto, int route, int status,
                           uint64_t usec)
{
    size_t b = 0;
    while (b < APPSRV__NLAT && usec > appsrv__lat_bounds_us[b])
        b++;
    appsrv__ctr_add(&st->lat[b], 1);
    appsrv__ctr_add(&st->lat_sum_us, usec);
    if (st->requests == NULL)
        return;
    size_t slot = appsrv__stats_slot(st, proto, route);
    if (slot >= st->nslots)
        return;
    int cls = status / 100;
    size_t k = cls >= 1 && cls <= 5 ? (size_t)cls - 1 : APPSRV__NCLASS - 1;
    appsrv__ctr_add(&st->requests[slot * APPSRV__NCLASS + k], 1);
}

void appsrv__event(appsrv__stats_t *st, const appsrv_config_t *cfg, uint64_t now_ms, int id,
                   int level, const char *detail, int err, int status, const appsrv_addr_t *peer)
{
    if (cfg->on_event == NULL || id < 0 || id >= APPSRV__NEVENTS)
        return;
    uint64_t sec = now_ms / 1000;
    if (st->ev[id].sec != sec) {
        st->ev[id].sec = sec;
        st->ev[id].n = 0;
    }
    if (st->ev[id].n >= APPSRV__EV_PER_SEC) {
        st->ev[id].dropped++;
        return;
    }
    st->ev[id].n++;
    appsrv_event_t ev = {
        .level = level,
        .name = event_names[id],
        .detail = detail != NULL ? detail : "",
        .err = err,
        .status = status,
        .peer = peer,
        .worker = st->worker,
        .suppressed = st->ev[id].dropped,
    };
    st->ev[id].dropped = 0;
    cfg->on_event(&ev, cfg->on_event_user);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman, Vigna): fast, 256-bit state, not a CSPRNG; an ID
 * needs to be unique, not secret. */
static uint64_t next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static void seed(appsrv__stats_t *st)
{
    size_t got = 0;
    char *p = (char *)st->rng;
    while (got < sizeof(st->rng)) {
        ssize_t n = getrandom(p + got, sizeof(st->rng) - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof(st->rng)) {
        /* No getrandom (old kernel, seccomp): time, address and worker;
         * still distinct per worker and run. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)(uintptr_t)st ^ ((uint64_t)st->worker << 48);
        for (int i = 0; i < 4; i++) {
            x += 0x9e3779b97f4a7c15u; /* splitmix64 */
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
            st->rng[i] ^= z ^ (z >> 31);
        }
    }
    if ((st->rng[0] | st->rng[1] | st->rng[2] | st->rng[3]) == 0)
        st->rng[0] = 1;
    st->rng_ready = true;
}

void appsrv__stats_random_id(appsrv__stats_t *st, char out[32])
{
    static const char hex[] = "0123456789abcdef";
    if (!st->rng_ready)
        seed(st);
    uint64_t v[2] = {next(st->rng), next(st->rng)};
    for (int i = 0; i < 2; i++) {
        uint64_t x = v[i];
        for (int j = 15; j >= 0; j--) {
            out[i * 16 + j] = hex[x & 15];
            x >>= 4;
        }
    }
}
