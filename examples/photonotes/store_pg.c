/* SPDX-License-Identifier: MIT */
/*
 * store_pg.c - the PostgreSQL back-end of store.h (libpq), for several
 * photonotes instances on one database. One connection per database
 * thread, statements prepared on it once; a lost connection is reset and
 * the call retried once. The schema version is the schema_migrations
 * table; migrate() holds an advisory lock so instances starting together
 * apply each step once. Live events go out with NOTIFY photonotes; the
 * listener thread here (one per instance, its own connection) LISTENs and
 * hands each payload to live.c, reconnecting when the server goes away.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define CHANNEL "photonotes"
#define MIGRATION_LOCK 7210 /* pg_advisory_xact_lock key */
#define NOTE_LOCK_SPACE "7211" /* first key of the note locks */

static const char *const k_migrations[] = {
    "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, username TEXT NOT NULL UNIQUE,"
    " pwhash TEXT NOT NULL, created_at BIGINT NOT NULL);"
    "CREATE TABLE sessions (token_hash TEXT PRIMARY KEY,"
    " user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);"
    "CREATE INDEX sessions_user ON sessions(user_id);",
    "CREATE TABLE notes (id BIGSERIAL PRIMARY KEY,"
    " user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " title TEXT NOT NULL, body TEXT NOT NULL, version BIGINT NOT NULL,"
    " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);"
    "CREATE INDEX notes_user ON notes(user_id, id);",
    "CREATE TABLE photos (id BIGSERIAL PRIMARY KEY,"
    " user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " note_id BIGINT NOT NULL REFERENCES notes(id) ON DELETE CASCADE,"
    " type TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL,"
    " created_at BIGINT NOT NULL);"
    "CREATE INDEX photos_note ON photos(note_id, id);",
};
#define NMIGRATIONS ((int)(sizeof(k_migrations) / sizeof(k_migrations[0])))

#define NOTE_COLS "id, version, created_at, updated_at, title, body"
#define PHOTO_COLS "id, note_id, size, created_at, type, sha256"
static const struct {
    const char *name, *sql;
    int nparams;
} k_stmts[] = {
    {"user_ins", "INSERT INTO users (username, pwhash, created_at) VALUES ($1, $2, $3)"
                 " RETURNING id", 3},
    {"user_find", "SELECT id, pwhash FROM users WHERE username = $1", 1},
    {"sess_gc", "DELETE FROM sessions WHERE user_id = $1 AND expires_at <= $2", 2},
    {"sess_ins", "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)"
                 " VALUES ($1, $2, $3, $4)", 4},
    {"sess_find", "SELECT user_id, expires_at FROM sessions"
                  " WHERE token_hash = $1 AND expires_at > $2", 2},
    {"sess_del", "DELETE FROM sessions WHERE token_hash = $1", 1},
    {"note_ins", "INSERT INTO notes (user_id, title, body, version, created_at, updated_at)"
                 " VALUES ($1, $2, $3, 1, $4, $4) RETURNING " NOTE_COLS, 4},
    {"note_get", "SELECT " NOTE_COLS " FROM notes WHERE user_id = $1 AND id = $2", 2},
    {"note_list", "SELECT " NOTE_COLS " FROM notes WHERE user_id = $1 AND id < $2"
                  " ORDER BY id DESC LIMIT $3", 3},
    {"note_upd", "UPDATE notes SET title = $4, body = $5, version = version + 1,"
                 " updated_at = $6 WHERE user_id = $1 AND id = $2"
                 " AND ($3::bigint < 0 OR version = $3::bigint) RETURNING " NOTE_COLS, 6},
    {"note_del", "DELETE FROM notes WHERE user_id = $1 AND id = $2"
                 " AND ($3::bigint < 0 OR version = $3::bigint)", 3},
    {"notify", "SELECT pg_notify('" CHANNEL "', $1)", 1},
    {"photo_ins", "INSERT INTO photos (user_id, note_id, type, size, sha256, created_at)"
                  " SELECT $1, id, $3, $4, $5, $6 FROM notes WHERE user_id = $1 AND id = $2"
                  " RETURNING id", 6},
    {"photo_get", "SELECT " PHOTO_COLS " FROM photos WHERE user_id = $1 AND id = $2", 2},
    {"photo_del", "DELETE FROM photos WHERE user_id = $1 AND id = $2", 2},
    {"photo_list", "SELECT " PHOTO_COLS " FROM photos WHERE user_id = $1 AND note_id = $2"
                   " ORDER BY id LIMIT $3", 3},
    /* Two-key form: a lock space apart from MIGRATION_LOCK's bigint key.
     * Note ids fold into 31 bits; two notes folding together only wait
     * for each other. */
    {"note_lock", "SELECT pg_advisory_lock(" NOTE_LOCK_SPACE ", ($1::bigint % 2147483648)::int)",
     1},
    {"note_unlock",
     "SELECT pg_advisory_unlock(" NOTE_LOCK_SPACE ", ($1::bigint % 2147483648)::int)", 1},
};
#define NSTMTS ((int)(sizeof(k_stmts) / sizeof(k_stmts[0])))

struct store_conn {
    PGconn *pg;
    bool prepared;
};

static int fail(PGconn *pg, const char *what)
{
    fprintf(stderr, "photonotes: postgres: %s: %s", what, PQerrorMessage(pg));
    return -EIO;
}

static int prepare(store_conn_t *c)
{
    for (int i = 0; i < NSTMTS; i++) {
        PGresult *r = PQprepare(c->pg, k_stmts[i].name, k_stmts[i].sql, k_stmts[i].nparams, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok)
            return fail(c->pg, k_stmts[i].name);
    }
    c->prepared = true;
    return 0;
}

static void pg_close(store_conn_t *c)
{
    if (c == NULL)
        return;
    PQfinish(c->pg);
    free(c);
}

static int pg_open(const char *url, store_conn_t **out)
{
    *out = NULL;
    store_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->pg = PQconnectdb(url);
    if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        int rc = c->pg != NULL ? fail(c->pg, "connect") : -ENOMEM;
        pg_close(c);
        return rc == -EIO ? -ECONNREFUSED : rc;
    }
    *out = c;
    return 0;
}

/* Runs a command text (no parameters); 0 or -EIO. */
static int run(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : fail(pg, sql);
}

static int pg_migrate(store_conn_t *c)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)", MIGRATION_LOCK);
    int rc = run(c->pg, "BEGIN");
    if (rc == 0)
        rc = run(c->pg, sql);
    if (rc == 0)
        rc = run(c->pg, "CREATE TABLE IF NOT EXISTS schema_migrations"
                        " (version INT PRIMARY KEY, applied_at BIGINT NOT NULL)");
    int version = -1;
    if (rc == 0) {
        PGresult *r = PQexec(c->pg, "SELECT coalesce(max(version), 0) FROM schema_migrations");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            version = atoi(PQgetvalue(r, 0, 0));
        else
            rc = fail(c->pg, "schema version");
        PQclear(r);
    }
    if (rc == 0 && version > NMIGRATIONS) {
        fprintf(stderr, "photonotes: the database has schema %d, newer than this program (%d)\n",
                version, NMIGRATIONS);
        rc = -EPROTO;
    }
    for (int v = version; rc == 0 && v < NMIGRATIONS; v++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO schema_migrations VALUES (%d, extract(epoch from now())::bigint)",
                 v + 1);
        rc = run(c->pg, k_migrations[v]);
        if (rc == 0)
            rc = run(c->pg, sql);
    }
    rc = rc == 0 ? run(c->pg, "COMMIT") : rc;
    if (rc != 0)
        run(c->pg, "ROLLBACK");
    return rc;
}

/*
 * Executes prepared statement name with text parameters; *out gets the
 * result on success (PQclear it). A broken connection is reset and the
 * statement retried once. Returns 0, -EEXIST (unique violation), -EIO.
 */
static int exec(store_conn_t *c, const char *name, int n, const char *const *vals,
                PGresult **out)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (PQstatus(c->pg) != CONNECTION_OK) {
            PQreset(c->pg);
            c->prepared = false;
        }
        if (!c->prepared && PQstatus(c->pg) == CONNECTION_OK && prepare(c) != 0)
            continue;
        PGresult *r = PQexecPrepared(c->pg, name, n, vals, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            *out = r;
            return 0;
        }
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool unique = state != NULL && strcmp(state, "23505") == 0;
        PQclear(r);
        if (unique)
            return -EEXIST;
        if (PQstatus(c->pg) == CONNECTION_OK)
            break; /* a real error, not a lost connection */
    }
    return fail(c->pg, name);
}

#define I64(buf, v) (snprintf(buf, sizeof(buf), "%lld", (long long)(v)), (const char *)buf)

static int read_note(PGresult *r, int row, note_t *n)
{
    n->id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
    n->version = strtoll(PQgetvalue(r, row, 1), NULL, 10);
    n->created_at = strtoll(PQgetvalue(r, row, 2), NULL, 10);
    n->updated_at = strtoll(PQgetvalue(r, row, 3), NULL, 10);
    n->title = strdup(PQgetvalue(r, row, 4));
    n->body = strdup(PQgetvalue(r, row, 5));
    if (n->title == NULL || n->body == NULL) {
        note_clear(n);
        return -ENOMEM;
    }
    return 0;
}

/* A statement giving at most one note: 0 (in out), -ENOENT, or an error. */
static int one_note(store_conn_t *c, const char *name, int n, const char *const *vals,
                    note_t *out)
{
    PGresult *r;
    int rc = exec(c, name, n, vals, &r);
    if (rc != 0)
        return rc;
    rc = PQntuples(r) == 1 ? read_note(r, 0, out) : -ENOENT;
    PQclear(r);
    return rc;
}

/* A statement changing rows without giving any: -ENOENT when none. */
static int change(store_conn_t *c, const char *name, int n, const char *const *vals)
{
    PGresult *r;
    int rc = exec(c, name, n, vals, &r);
    if (rc != 0)
        return rc;
    rc = strcmp(PQcmdTuples(r), "0") == 0 ? -ENOENT : 0;
    PQclear(r);
    return rc;
}

static int pg_user_create(store_conn_t *c, const char *name, const char *pwhash, int64_t now,
                          int64_t *id)
{
    char t[24];
    const char *v[] = {name, pwhash, I64(t, now)};
    PGresult *r;
    int rc = exec(c, "user_ins", 3, v, &r);
    if (rc == 0) {
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    return rc;
}

static int pg_user_find(store_conn_t *c, const char *name, int64_t *id,
                        char pwhash[MAX_PWHASH + 1])
{
    const char *v[] = {name};
    PGresult *r;
    int rc = exec(c, "user_find", 1, v, &r);
    if (rc != 0)
        return rc;
    rc = PQntuples(r) == 1 ? 0 : -ENOENT;
    if (rc == 0) {
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        snprintf(pwhash, MAX_PWHASH + 1, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return rc;
}

static int pg_session_create(store_conn_t *c, int64_t user, const char *hash, int64_t now,
                             int64_t expires)
{
    char u[24], t[24], e[24];
    const char *v[] = {hash, I64(u, user), I64(t, now), I64(e, expires)};
    int rc = change(c, "sess_gc", 2, v + 1); /* the user's expired sessions go */
    return rc == 0 || rc == -ENOENT ? change(c, "sess_ins", 4, v) : rc;
}

static int pg_session_find(store_conn_t *c, const char *hash, int64_t now, int64_t *user,
                           int64_t *expires)
{
    char t[24];
    const char *v[] = {hash, I64(t, now)};
    PGresult *r;
    int rc = exec(c, "sess_find", 2, v, &r);
    if (rc != 0)
        return rc;
    rc = PQntuples(r) == 1 ? 0 : -ENOENT;
    if (rc == 0) {
        *user = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *expires = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    return rc;
}

static int pg_session_delete(store_conn_t *c, const char *hash)
{
    const char *v[] = {hash};
    return change(c, "sess_del", 1, v);
}

static int pg_note_create(store_conn_t *c, int64_t user, const char *title, const char *body,
                          int64_t now, note_t *out)
{
    char u[24], t[24];
    const char *v[] = {I64(u, user), title, body, I64(t, now)};
    int rc = one_note(c, "note_ins", 4, v, out);
    return rc == -ENOENT ? -EIO : rc;
}

static int pg_note_get(store_conn_t *c, int64_t user, int64_t id, note_t *out)
{
    char u[24], i[24];
    const char *v[] = {I64(u, user), I64(i, id)};
    return one_note(c, "note_get", 2, v, out);
}

static int pg_note_list(store_conn_t *c, int64_t user, int64_t before, int limit, note_t *out,
                        size_t *n)
{
    char u[24], b[24], l[24];
    const char *v[] = {I64(u, user), I64(b, before > 0 ? before : INT64_MAX), I64(l, limit)};
    PGresult *r;
    int rc = exec(c, "note_list", 3, v, &r);
    *n = 0;
    if (rc != 0)
        return rc;
    for (int row = 0; rc == 0 && row < PQntuples(r) && row < limit; row++)
        if ((rc = read_note(r, row, &out[*n])) == 0)
            (*n)++;
    PQclear(r);
    if (rc != 0)
        while (*n > 0)
            note_clear(&out[--*n]);
    return rc;
}

/* After an UPDATE/DELETE matched nothing: -ENOENT, or -ESTALE with the
 * current note in out (when not NULL). */
static int why_not(store_conn_t *c, int64_t user, int64_t id, note_t *out)
{
    note_t cur = {0};
    int rc = pg_note_get(c, user, id, &cur);
    if (rc != 0)
        return rc;
    if (out != NULL)
        *out = cur;
    else
        note_clear(&cur);
    return -ESTALE;
}

static int pg_note_update(store_conn_t *c, int64_t user, int64_t id, int64_t if_version,
                          const char *title, const char *body, int64_t now, note_t *out)
{
    char u[24], i[24], iv[24], t[24];
    const char *v[] = {I64(u, user), I64(i, id), I64(iv, if_version), title, body, I64(t, now)};
    int rc = one_note(c, "note_upd", 6, v, out);
    return rc == -ENOENT ? why_not(c, user, id, out) : rc;
}

static int pg_note_delete(store_conn_t *c, int64_t user, int64_t id, int64_t if_version)
{
    char u[24], i[24], iv[24];
    const char *v[] = {I64(u, user), I64(i, id), I64(iv, if_version)};
    int rc = change(c, "note_del", 3, v);
    return rc == -ENOENT ? why_not(c, user, id, NULL) : rc;
}

static int pg_notify(store_conn_t *c, const char *payload)
{
    const char *v[] = {payload};
    PGresult *r;
    int rc = exec(c, "notify", 1, v, &r);
    if (rc == 0)
        PQclear(r);
    return rc;
}

static void read_photo(PGresult *r, int row, photo_t *p)
{
    p->id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
    p->note_id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
    p->size = strtoll(PQgetvalue(r, row, 2), NULL, 10);
    p->created_at = strtoll(PQgetvalue(r, row, 3), NULL, 10);
    snprintf(p->type, sizeof(p->type), "%s", PQgetvalue(r, row, 4));
    snprintf(p->sha256, sizeof(p->sha256), "%s", PQgetvalue(r, row, 5));
}

static int pg_photo_create(store_conn_t *c, int64_t user, const photo_t *p, int64_t now,
                           int64_t *id)
{
    char u[24], n[24], sz[24], t[24];
    const char *v[] = {I64(u, user), I64(n, p->note_id), p->type, I64(sz, p->size), p->sha256,
                       I64(t, now)};
    PGresult *r;
    int rc = exec(c, "photo_ins", 6, v, &r);
    if (rc != 0)
        return rc;
    rc = PQntuples(r) == 1 ? 0 : -ENOENT; /* no such note of the user's */
    if (rc == 0)
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rc;
}

/* photo_get and photo_list: up to max rows into out. */
static int photo_rows(store_conn_t *c, const char *name, int n, const char *const *vals,
                      photo_t *out, size_t max, size_t *got)
{
    PGresult *r;
    int rc = exec(c, name, n, vals, &r);
    *got = 0;
    if (rc != 0)
        return rc;
    for (int row = 0; row < PQntuples(r) && *got < max; row++)
        read_photo(r, row, &out[(*got)++]);
    PQclear(r);
    return 0;
}

static int pg_photo_get(store_conn_t *c, int64_t user, int64_t id, photo_t *out)
{
    char u[24], i[24];
    const char *v[] = {I64(u, user), I64(i, id)};
    size_t got;
    int rc = photo_rows(c, "photo_get", 2, v, out, 1, &got);
    return rc != 0 ? rc : got == 1 ? 0 : -ENOENT;
}

static int pg_photo_delete(store_conn_t *c, int64_t user, int64_t id)
{
    char u[24], i[24];
    const char *v[] = {I64(u, user), I64(i, id)};
    return change(c, "photo_del", 2, v);
}

/* A session-level advisory lock on this thread's connection. If the
 * connection is lost in between, the server has released it; the unlock
 * then fails and is only logged. */
static int pg_note_lock(store_conn_t *c, int64_t note)
{
    char n[24];
    const char *v[] = {I64(n, note)};
    PGresult *r;
    int rc = exec(c, "note_lock", 1, v, &r);
    if (rc == 0)
        PQclear(r);
    return rc;
}

static void pg_note_unlock(store_conn_t *c, int64_t note)
{
    char n[24];
    const char *v[] = {I64(n, note)};
    PGresult *r;
    if (exec(c, "note_unlock", 1, v, &r) == 0)
        PQclear(r);
}

static int pg_photo_list(store_conn_t *c, int64_t user, int64_t note, photo_t *out, size_t max,
                         size_t *n)
{
    char u[24], i[24], m[24];
    const char *v[] = {I64(u, user), I64(i, note), I64(m, (int64_t)max)};
    return photo_rows(c, "photo_list", 3, v, out, max, n);
}

/* ------------------------------------------------------------ listener */

static struct {
    pthread_t thread;
    int pipe[2]; /* written to stop the thread */
    char *url;
    void (*deliver)(const char *payload);
} g_listen = {.pipe = {-1, -1}};

static PGconn *listen_connect(void)
{
    PGconn *pg = PQconnectdb(g_listen.url);
    if (pg != NULL && PQstatus(pg) == CONNECTION_OK && run(pg, "LISTEN " CHANNEL) == 0)
        return pg;
    if (pg != NULL)
        fail(pg, "listener");
    PQfinish(pg);
    return NULL;
}

static void *listener(void *arg)
{
    PGconn *pg = arg;
    for (;;) {
        struct pollfd p[2] = {{g_listen.pipe[0], POLLIN, 0}, {-1, POLLIN, 0}};
        p[1].fd = pg != NULL ? PQsocket(pg) : -1;
        if (poll(p, 2, pg != NULL ? -1 : 1000) < 0 && errno != EINTR)
            break;
        if (p[0].revents != 0)
            break; /* stop */
        if (pg == NULL) {
            pg = listen_connect(); /* retried every second */
            continue;
        }
        if (p[1].revents != 0 && PQconsumeInput(pg) == 0) {
            /* The server went away: events sent meanwhile are lost, clients
             * re-list when they reconnect (README). */
            fail(pg, "listener lost its connection");
            PQfinish(pg);
            pg = NULL;
            continue;
        }
        for (PGnotify *n; (n = PQnotifies(pg)) != NULL; PQfreemem(n))
            g_listen.deliver(n->extra);
    }
    PQfinish(pg);
    return NULL;
}

static int pg_listen_start(const char *url, void (*deliver)(const char *payload))
{
    g_listen.url = strdup(url);
    g_listen.deliver = deliver;
    if (g_listen.url == NULL)
        return -ENOMEM;
    PGconn *pg = listen_connect();
    if (pg == NULL) {
        free(g_listen.url);
        return -ECONNREFUSED;
    }
    int rc = pipe(g_listen.pipe) == 0 ? 0 : -errno;
    if (rc == 0)
        rc = -pthread_create(&g_listen.thread, NULL, listener, pg);
    if (rc != 0) {
        PQfinish(pg);
        free(g_listen.url);
    }
    return rc;
}

static void pg_listen_stop(void)
{
    ssize_t w = write(g_listen.pipe[1], "x", 1);
    (void)w;
    pthread_join(g_listen.thread, NULL);
    close(g_listen.pipe[0]);
    close(g_listen.pipe[1]);
    free(g_listen.url);
}

const store_vt store_pg_vt = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .migrate = pg_migrate,
    .user_create = pg_user_create,
    .user_find = pg_user_find,
    .session_create = pg_session_create,
    .session_find = pg_session_find,
    .session_delete = pg_session_delete,
    .note_create = pg_note_create,
    .note_get = pg_note_get,
    .note_list = pg_note_list,
    .note_update = pg_note_update,
    .note_delete = pg_note_delete,
    .photo_create = pg_photo_create,
    .photo_get = pg_photo_get,
    .photo_delete = pg_photo_delete,
    .note_lock = pg_note_lock,
    .note_unlock = pg_note_unlock,
    .photo_list = pg_photo_list,
    .notify = pg_notify,
    .listen_start = pg_listen_start,
    .listen_stop = pg_listen_stop,
};
