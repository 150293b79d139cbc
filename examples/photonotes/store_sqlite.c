/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite.c - the SQLite back-end of store.h (the default). One
 * connection per database thread on one file: WAL journal (readers never
 * wait for the writer), busy_timeout for writers, foreign keys on,
 * statements prepared once per connection. The schema version is
 * PRAGMA user_version; migrate() applies the steps above it in one
 * transaction each. The note locks are process-wide mutexes. Calls
 * sqlite3 and pthreads only.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Schema steps: step i brings user_version from i to i + 1. */
static const char *const k_migrations[] = {
    "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE,"
    " pwhash TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE sessions (token_hash TEXT PRIMARY KEY,"
    " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);"
    "CREATE INDEX sessions_user ON sessions(user_id);",
    "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " title TEXT NOT NULL, body TEXT NOT NULL, version INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE INDEX notes_user ON notes(user_id, id);",
    "CREATE TABLE photos (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " note_id INTEGER NOT NULL REFERENCES notes(id) ON DELETE CASCADE,"
    " type TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX photos_note ON photos(note_id, id);",
};
#define NMIGRATIONS ((int)(sizeof(k_migrations) / sizeof(k_migrations[0])))

enum {
    S_USER_INS, S_USER_FIND, S_SESS_GC, S_SESS_INS, S_SESS_FIND, S_SESS_DEL, S_NOTE_INS, S_NOTE_GET,
    S_NOTE_LIST, S_NOTE_UPD, S_NOTE_DEL, S_PHOTO_INS, S_PHOTO_GET, S_PHOTO_DEL, S_PHOTO_LIST,
    S_COUNT
};

static const char *const k_sql[S_COUNT] = {
    [S_USER_INS] = "INSERT INTO users (username, pwhash, created_at) VALUES (?1, ?2, ?3)",
    [S_USER_FIND] = "SELECT id, pwhash FROM users WHERE username = ?1",
    [S_SESS_GC] = "DELETE FROM sessions WHERE user_id = ?1 AND expires_at <= ?2",
    [S_SESS_INS] = "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)"
                   " VALUES (?1, ?2, ?3, ?4)",
    [S_SESS_FIND] = "SELECT user_id, expires_at FROM sessions"
                    " WHERE token_hash = ?1 AND expires_at > ?2",
    [S_SESS_DEL] = "DELETE FROM sessions WHERE token_hash = ?1",
    [S_NOTE_INS] = "INSERT INTO notes (user_id, title, body, version, created_at, updated_at)"
                   " VALUES (?1, ?2, ?3, 1, ?4, ?4)"
                   " RETURNING id, version, created_at, updated_at, title, body",
    [S_NOTE_GET] = "SELECT id, version, created_at, updated_at, title, body FROM notes"
                   " WHERE user_id = ?1 AND id = ?2",
    [S_NOTE_LIST] = "SELECT id, version, created_at, updated_at, title, body FROM notes"
                    " WHERE user_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    [S_NOTE_UPD] = "UPDATE notes SET title = ?4, body = ?5, version = version + 1,"
                   " updated_at = ?6 WHERE user_id = ?1 AND id = ?2"
                   " AND (?3 < 0 OR version = ?3)"
                   " RETURNING id, version, created_at, updated_at, title, body",
    [S_NOTE_DEL] = "DELETE FROM notes WHERE user_id = ?1 AND id = ?2"
                   " AND (?3 < 0 OR version = ?3)",
    [S_PHOTO_INS] = "INSERT INTO photos (user_id, note_id, type, size, sha256, created_at)"
                    " SELECT ?1, id, ?3, ?4, ?5, ?6 FROM notes WHERE user_id = ?1 AND id = ?2",
    [S_PHOTO_GET] = "SELECT id, note_id, size, created_at, type, sha256 FROM photos"
                    " WHERE user_id = ?1 AND id = ?2",
    [S_PHOTO_DEL] = "DELETE FROM photos WHERE user_id = ?1 AND id = ?2",
    [S_PHOTO_LIST] = "SELECT id, note_id, size, created_at, type, sha256 FROM photos"
                     " WHERE user_id = ?1 AND note_id = ?2 ORDER BY id LIMIT ?3",
};

struct store_conn {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
};

static int fail(store_conn_t *c, const char *what)
{
    fprintf(stderr, "photonotes: sqlite: %s: %s\n", what, sqlite3_errmsg(c->db));
    return -EIO;
}

static void sq_close(store_conn_t *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    free(c);
}

static int sq_open(const char *path, store_conn_t **out)
{
    *out = NULL;
    store_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        int rc = c->db != NULL ? fail(c, path) : -ENOMEM;
        sq_close(c);
        return rc;
    }
    sqlite3_busy_timeout(c->db, 5000);
    if (sqlite3_exec(c->db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                     " PRAGMA foreign_keys = ON;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        int rc = fail(c, "pragmas");
        sq_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int prepare_all(store_conn_t *c)
{
    for (int i = 0; i < S_COUNT; i++)
        if (c->st[i] == NULL &&
            sqlite3_prepare_v3(c->db, k_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->st[i],
                               NULL) != SQLITE_OK)
            return fail(c, k_sql[i]);
    return 0;
}

static int sq_migrate(store_conn_t *c)
{
    /* BEGIN IMMEDIATE: a second process starting at once waits here. */
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return fail(c, "begin");
    sqlite3_stmt *st;
    int version = -1;
    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    int rc = version >= 0 ? 0 : fail(c, "user_version");
    if (version > NMIGRATIONS) {
        fprintf(stderr, "photonotes: the database has schema %d, newer than this program (%d)\n",
                version, NMIGRATIONS);
        rc = -EPROTO;
    }
    for (int v = version; rc == 0 && v < NMIGRATIONS; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        if (sqlite3_exec(c->db, k_migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(c->db, bump, NULL, NULL, NULL) != SQLITE_OK)
            rc = fail(c, "migration");
    }
    if (rc == 0 && sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = fail(c, "commit");
    if (rc != 0)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* The statement i, reset and ready to bind; NULL after an error. */
static sqlite3_stmt *stmt(store_conn_t *c, int i)
{
    if (c->st[i] == NULL && prepare_all(c) != 0)
        return NULL;
    sqlite3_reset(c->st[i]);
    sqlite3_clear_bindings(c->st[i]);
    return c->st[i];
}

static int done(store_conn_t *c, sqlite3_stmt *st, int rc)
{
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_CONSTRAINT)
        return -EEXIST;
    int err = fail(c, sqlite3_sql(st));
    return err;
}

static char *dup_col(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return strdup(t != NULL ? (const char *)t : "");
}

static int read_note(sqlite3_stmt *st, note_t *n)
{
    n->id = sqlite3_column_int64(st, 0);
    n->version = sqlite3_column_int64(st, 1);
    n->created_at = sqlite3_column_int64(st, 2);
    n->updated_at = sqlite3_column_int64(st, 3);
    n->title = dup_col(st, 4);
    n->body = dup_col(st, 5);
    if (n->title == NULL || n->body == NULL) {
        note_clear(n);
        return -ENOMEM;
    }
    return 0;
}

static int sq_user_create(store_conn_t *c, const char *name, const char *pwhash, int64_t now,
                          int64_t *id)
{
    sqlite3_stmt *st = stmt(c, S_USER_INS);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pwhash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    int rc = done(c, st, sqlite3_step(st));
    if (rc == 0)
        *id = sqlite3_last_insert_rowid(c->db);
    sqlite3_reset(st);
    return rc;
}

static int sq_user_find(store_conn_t *c, const char *name, int64_t *id,
                        char pwhash[MAX_PWHASH + 1])
{
    sqlite3_stmt *st = stmt(c, S_USER_FIND);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? 0 : step == SQLITE_DONE ? -ENOENT : done(c, st, step);
    if (rc == 0) {
        *id = sqlite3_column_int64(st, 0);
        snprintf(pwhash, MAX_PWHASH + 1, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_session_create(store_conn_t *c, int64_t user, const char *hash, int64_t now,
                             int64_t expires)
{
    sqlite3_stmt *st = stmt(c, S_SESS_GC); /* the user's expired sessions go */
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int64(st, 2, now);
    int rc = done(c, st, sqlite3_step(st));
    sqlite3_reset(st);
    if (rc != 0 || (st = stmt(c, S_SESS_INS)) == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, user);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, expires);
    rc = done(c, st, sqlite3_step(st));
    sqlite3_reset(st);
    return rc;
}

static int sq_session_find(store_conn_t *c, const char *hash, int64_t now, int64_t *user,
                           int64_t *expires)
{
    sqlite3_stmt *st = stmt(c, S_SESS_FIND);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? 0 : step == SQLITE_DONE ? -ENOENT : done(c, st, step);
    if (rc == 0) {
        *user = sqlite3_column_int64(st, 0);
        *expires = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc;
}

/* Runs a DELETE or UPDATE without rows back: -ENOENT when nothing changed. */
static int change(store_conn_t *c, sqlite3_stmt *st)
{
    int rc = done(c, st, sqlite3_step(st));
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = -ENOENT;
    sqlite3_reset(st);
    return rc;
}

static int sq_session_delete(store_conn_t *c, const char *hash)
{
    sqlite3_stmt *st = stmt(c, S_SESS_DEL);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    return change(c, st);
}

/* Steps st expecting one note row: 0, -ENOENT (no row), or an error. */
static int one_note(store_conn_t *c, sqlite3_stmt *st, note_t *out)
{
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? read_note(st, out) : step == SQLITE_DONE ? -ENOENT
                                                                           : done(c, st, step);
    sqlite3_reset(st);
    return rc;
}

static int sq_note_create(store_conn_t *c, int64_t user, const char *title, const char *body,
                          int64_t now, note_t *out)
{
    sqlite3_stmt *st = stmt(c, S_NOTE_INS);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_text(st, 2, title, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    int rc = one_note(c, st, out);
    return rc == -ENOENT ? -EIO : rc;
}

static int sq_note_get(store_conn_t *c, int64_t user, int64_t id, note_t *out)
{
    sqlite3_stmt *st = stmt(c, S_NOTE_GET);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int64(st, 2, id);
    return one_note(c, st, out);
}

static int sq_note_list(store_conn_t *c, int64_t user, int64_t before, int limit, note_t *out,
                        size_t *n)
{
    sqlite3_stmt *st = stmt(c, S_NOTE_LIST);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int(st, 3, limit);
    int step, rc = 0;
    *n = 0;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = read_note(st, &out[*n])) == 0)
            (*n)++;
    if (rc == 0)
        rc = done(c, st, step);
    sqlite3_reset(st);
    if (rc != 0)
        while (*n > 0)
            note_clear(&out[--*n]);
    return rc;
}

/* After an UPDATE/DELETE matched nothing: -ENOENT, or -ESTALE with the
 * current note in out (when out is not NULL). */
static int why_not(store_conn_t *c, int64_t user, int64_t id, note_t *out)
{
    note_t cur = {0};
    int rc = sq_note_get(c, user, id, &cur);
    if (rc != 0)
        return rc;
    if (out != NULL)
        *out = cur;
    else
        note_clear(&cur);
    return -ESTALE;
}

static int sq_note_update(store_conn_t *c, int64_t user, int64_t id, int64_t if_version,
                          const char *title, const char *body, int64_t now, note_t *out)
{
    sqlite3_stmt *st = stmt(c, S_NOTE_UPD);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int64(st, 3, if_version);
    sqlite3_bind_text(st, 4, title, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now);
    int rc = one_note(c, st, out);
    return rc == -ENOENT ? why_not(c, user, id, out) : rc;
}

static int sq_note_delete(store_conn_t *c, int64_t user, int64_t id, int64_t if_version)
{
    sqlite3_stmt *st = stmt(c, S_NOTE_DEL);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int64(st, 3, if_version);
    int rc = change(c, st);
    return rc == -ENOENT ? why_not(c, user, id, NULL) : rc;
}

static void read_photo(sqlite3_stmt *st, photo_t *p)
{
    p->id = sqlite3_column_int64(st, 0);
    p->note_id = sqlite3_column_int64(st, 1);
    p->size = sqlite3_column_int64(st, 2);
    p->created_at = sqlite3_column_int64(st, 3);
    snprintf(p->type, sizeof(p->type), "%s", (const char *)sqlite3_column_text(st, 4));
    snprintf(p->sha256, sizeof(p->sha256), "%s", (const char *)sqlite3_column_text(st, 5));
}

static int sq_photo_create(store_conn_t *c, int64_t user, const photo_t *p, int64_t now,
                           int64_t *id)
{
    sqlite3_stmt *st = stmt(c, S_PHOTO_INS);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int64(st, 2, p->note_id);
    sqlite3_bind_text(st, 3, p->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, p->size);
    sqlite3_bind_text(st, 5, p->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now);
    int rc = change(c, st); /* -ENOENT: no such note of the user's */
    if (rc == 0)
        *id = sqlite3_last_insert_rowid(c->db);
    return rc;
}

static int sq_photo_get(store_conn_t *c, int64_t user, int64_t id, photo_t *out)
{
    sqlite3_stmt *st = stmt(c, S_PHOTO_GET);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int64(st, 2, id);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? 0 : step == SQLITE_DONE ? -ENOENT : done(c, st, step);
    if (rc == 0)
        read_photo(st, out);
    sqlite3_reset(st);
    return rc;
}

static int sq_photo_delete(store_conn_t *c, int64_t user, int64_t id)
{
    sqlite3_stmt *st = stmt(c, S_PHOTO_DEL);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int64(st, 2, id);
    return change(c, st);
}

/* One SQLite file has one photonotes process: the note locks are mutexes
 * here, striped by note id (two notes sharing a stripe only wait for each
 * other). A thread holds at most one, so they cannot deadlock. */
#define NOTE_STRIPES 64
static pthread_mutex_t g_note_mu[NOTE_STRIPES] = {
#define M4 PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, \
           PTHREAD_MUTEX_INITIALIZER
#define M16 M4, M4, M4, M4
    M16, M16, M16, M16
#undef M16
#undef M4
};

static int sq_note_lock(store_conn_t *c, int64_t note)
{
    (void)c;
    pthread_mutex_lock(&g_note_mu[(uint64_t)note % NOTE_STRIPES]);
    return 0;
}

static void sq_note_unlock(store_conn_t *c, int64_t note)
{
    (void)c;
    pthread_mutex_unlock(&g_note_mu[(uint64_t)note % NOTE_STRIPES]);
}

static int sq_photo_list(store_conn_t *c, int64_t user, int64_t note, photo_t *out, size_t max,
                         size_t *n)
{
    sqlite3_stmt *st = stmt(c, S_PHOTO_LIST);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int64(st, 2, note);
    sqlite3_bind_int64(st, 3, (int64_t)max);
    int step;
    *n = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW && *n < max)
        read_photo(st, &out[(*n)++]);
    int rc = done(c, st, step);
    sqlite3_reset(st);
    return rc;
}

const store_vt store_sqlite_vt = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .migrate = sq_migrate,
    .user_create = sq_user_create,
    .user_find = sq_user_find,
    .session_create = sq_session_create,
    .session_find = sq_session_find,
    .session_delete = sq_session_delete,
    .note_create = sq_note_create,
    .note_get = sq_note_get,
    .note_list = sq_note_list,
    .note_update = sq_note_update,
    .note_delete = sq_note_delete,
    .photo_create = sq_photo_create,
    .photo_get = sq_photo_get,
    .photo_delete = sq_photo_delete,
    .note_lock = sq_note_lock,
    .note_unlock = sq_note_unlock,
    .photo_list = sq_photo_list,
    .notify = NULL,
    .listen_start = NULL,
    .listen_stop = NULL,
};
