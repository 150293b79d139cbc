/* SPDX-License-Identifier: MIT */
/*
 * store.h - the storage interface of photonotes: one vtable, two
 * back-ends with the same schema and the same answers: store_sqlite.c
 * (the default, a file) and store_pg.c (PostgreSQL through libpq, for
 * several instances on one database). Each database thread of dbpool.c
 * owns one store_conn_t; nothing here is shared between threads except
 * the vtable and the note locks (note_lock). Every call returns 0 or a negative errno: -ENOENT (no such
 * row), -EEXIST (unique key taken), -ESTALE (version mismatch), -EIO (the
 * database failed: the message went to stderr).
 */
#ifndef PHOTONOTES_STORE_H
#define PHOTONOTES_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_HASH_HEX 64 /* SHA-256 of a session token, lowercase hex */
#define MAX_PWHASH 128    /* crypto_pwhash_STRBYTES */

typedef struct note {
    int64_t id, version, created_at, updated_at; /* times: Unix ms */
    char *title, *body;                          /* malloc'd; note_clear() */
} note_t;

void note_clear(note_t *n);

typedef struct photo {
    int64_t id, note_id, size, created_at;
    char type[32];                      /* image/jpeg, image/png, image/heic, image/webp */
    char sha256[TOKEN_HASH_HEX + 1];    /* of the content, lowercase hex */
} photo_t;
#define MAX_PHOTOS_PER_NOTE 32

typedef struct store_conn store_conn_t;

typedef struct store_vt {
    const char *name; /* "sqlite" or "postgres" */
    int (*open)(const char *url, store_conn_t **out);
    void (*close)(store_conn_t *c);
    /* Brings the schema to the latest version (idempotent; safe when
     * several instances start at once). */
    int (*migrate)(store_conn_t *c);

    int (*user_create)(store_conn_t *c, const char *name, const char *pwhash, int64_t now,
                       int64_t *id);
    int (*user_find)(store_conn_t *c, const char *name, int64_t *id,
                     char pwhash[MAX_PWHASH + 1]);

    int (*session_create)(store_conn_t *c, int64_t user, const char *token_hash, int64_t now,
                          int64_t expires);
    /* Finds an unexpired session (expires > now). */
    int (*session_find)(store_conn_t *c, const char *token_hash, int64_t now, int64_t *user,
                        int64_t *expires);
    int (*session_delete)(store_conn_t *c, const char *token_hash);

    int (*note_create)(store_conn_t *c, int64_t user, const char *title, const char *body,
                       int64_t now, note_t *out);
    int (*note_get)(store_conn_t *c, int64_t user, int64_t id, note_t *out);
    /* Up to limit notes with id < before (before <= 0: from the newest),
     * newest first, into out[0..*n). */
    int (*note_list)(store_conn_t *c, int64_t user, int64_t before, int limit, note_t *out,
                     size_t *n);
    /* Replaces title and body when the version is if_version (< 0: any),
     * bumping it; -ESTALE otherwise (out then holds the current note). */
    int (*note_update)(store_conn_t *c, int64_t user, int64_t id, int64_t if_version,
                       const char *title, const char *body, int64_t now, note_t *out);
    int (*note_delete)(store_conn_t *c, int64_t user, int64_t id, int64_t if_version);

    /* Attaches a photo to note (the user's: else -ENOENT); *id its id. */
    int (*photo_create)(store_conn_t *c, int64_t user, const photo_t *p, int64_t now,
                        int64_t *id);
    int (*photo_get)(store_conn_t *c, int64_t user, int64_t id, photo_t *out);
    int (*photo_delete)(store_conn_t *c, int64_t user, int64_t id);
    /* Serialises the steps that change a note's photo files (attaching:
     * count, insert the row, rename the file in; deleting the note: list,
     * delete, unlink) so neither leaves a file without a row. Across this
     * process's database threads (SQLite) or across every instance sharing
     * the database and the photo directory (PostgreSQL advisory lock).
     * note_unlock on the same conn pairs every successful note_lock. */
    int (*note_lock)(store_conn_t *c, int64_t note);
    void (*note_unlock)(store_conn_t *c, int64_t note);
    /* The note's photos, oldest first, at most max. */
    int (*photo_list)(store_conn_t *c, int64_t user, int64_t note, photo_t *out, size_t max,
                      size_t *n);

    /* Delivers an event to every instance's subscribers: NULL for a
     * single-process store (the caller publishes locally); PostgreSQL
     * sends NOTIFY, and each instance's listener thread fans it out. */
    int (*notify)(store_conn_t *c, const char *payload);
    /* Starts (and stops) this instance's listener thread, which calls
     * deliver(payload) for every notification: NULL for SQLite. */
    int (*listen_start)(const char *url, void (*deliver)(const char *payload));
    void (*listen_stop)(void);
} store_vt;

extern const store_vt store_sqlite_vt;
#ifdef HAVE_PG
extern const store_vt store_pg_vt;
#endif

/* The back-end for a --db value: "postgres://..." or "postgresql://..."
 * (or "host=... dbname=..." key-value form) selects PostgreSQL, anything
 * else is an SQLite file path ("sqlite:" prefix optional). NULL when the
 * URL asks for PostgreSQL in a build without it. */
const store_vt *store_select(const char *url, const char **path);

#endif
