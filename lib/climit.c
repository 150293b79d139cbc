/* SPDX-License-Identifier: MIT */
/*
 * climit.c - limits per client address (climit.h): a set-associative
 * table (512 sets of 8 entries) under one mutex. An entry holds the
 * client's open connection count and its token bucket. A new address
 * takes a free entry of its set, else the least recently seen one with
 * no open connection (its bucket is forgotten: a flood of addresses can
 * make an idle client's bucket refill early, never block anyone); when
 * all 8 have open connections the newcomer is admitted untracked. Calls
 * libc and pthreads only; used by proxy.c (connections) and http.c
 * (requests).
 */
#include "climit.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SETS 512
#define WAYS 8

typedef struct entry {
    uint8_t key[16];
    bool used;
    uint32_t conns;
    double tokens;
    uint64_t seen_ms; /* last touched; the bucket was refilled to here */
} entry_t;

struct appsrv__climit {
    pthread_mutex_t mu;
    int max_conns;
    double rate, burst;
    entry_t e[SETS][WAYS];
};

int appsrv__climit_new(appsrv__climit_t **out, int max_conns, double rate, double burst)
{
    appsrv__climit_t *t = calloc(1, sizeof(*t));
    *out = NULL;
    if (t == NULL)
        return -ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    t->max_conns = max_conns;
    t->rate = rate;
    t->burst = burst > 0 ? burst : (rate > 1 ? rate : 1);
    *out = t;
    return 0;
}

void appsrv__climit_free(appsrv__climit_t *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* IPv4 as IPv4-mapped IPv6; IPv6 cut to its /64. */
static void make_key(const appsrv_addr_t *a, uint8_t key[16])
{
    memset(key, 0, 16);
    if (a->u.sa.sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &a->u.in4.sin_addr, 4);
    } else if (a->u.sa.sa_family == AF_INET6) {
        const uint8_t *ip = a->u.in6.sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(ip, mapped, 12) == 0)
            memcpy(key, ip, 16);
        else
            memcpy(key, ip, 8);
    }
}

static uint32_t hash_key(const uint8_t key[16])
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return h;
}

/* The entry for a, made if need be; NULL when its set is full of
 * clients with open connections. Under the lock. */
static entry_t *lookup(appsrv__climit_t *t, const appsrv_addr_t *a, uint64_t now_ms, bool make)
{
    uint8_t key[16];
    make_key(a, key);
    entry_t *set = t->e[hash_key(key) % SETS];
    entry_t *victim = NULL;
    for (int i = 0; i < WAYS; i++) {
        entry_t *e = &set[i];
        if (e->used && memcmp(e->key, key, 16) == 0)
            return e;
        if (!e->used) {
            if (victim == NULL || victim->used)
                victim = e;
        } else if (e->conns == 0 &&
                   (victim == NULL || (victim->used && e->seen_ms < victim->seen_ms))) {
            victim = e;
        }
    }
    if (!make || victim == NULL)
        return NULL;
    memcpy(victim->key, key, 16);
    victim->used = true;
    victim->conns = 0;
    victim->tokens = t->burst;
    victim->seen_ms = now_ms;
    return victim;
}

bool appsrv__climit_conn_open(appsrv__climit_t *t, const appsrv_addr_t *a, uint64_t now_ms,
                              bool *counted)
{
    bool ok = true;
    *counted = false;
    if (t->max_conns <= 0)
        return true;
    pthread_mutex_lock(&t->mu);
    entry_t *e = lookup(t, a, now_ms, true);
    if (e != NULL) {
        if (e->conns >= (uint32_t)t->max_conns) {
            ok = false;
        } else {
            e->conns++;
            *counted = true;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void appsrv__climit_conn_close(appsrv__climit_t *t, const appsrv_addr_t *a)
{
    pthread_mutex_lock(&t->mu);
    entry_t *e = lookup(t, a, 0, false);
    if (e != NULL && e->conns > 0)
        e->conns--;
    pthread_mutex_unlock(&t->mu);
}

int appsrv__climit_request(appsrv__climit_t *t, const appsrv_addr_t *a, uint64_t now_ms)
{
    if (t->rate <= 0)
        return 0;
    int wait_s = 0;
    pthread_mutex_lock(&t->mu);
    entry_t *e = lookup(t, a, now_ms, true);
    if (e != NULL) {
        if (now_ms > e->seen_ms) {
            e->tokens += (double)(now_ms - e->seen_ms) * t->rate / 1000.0;
            if (e->tokens > t->burst)
                e->tokens = t->burst;
            e->seen_ms = now_ms;
        }
        if (e->tokens >= 1.0) {
            e->tokens -= 1.0;
        } else {
            double s = (1.0 - e->tokens) / t->rate;
            wait_s = (int)s;
            if ((double)wait_s < s)
                wait_s++;
            if (wait_s < 1)
                wait_s = 1;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return wait_s;
}
