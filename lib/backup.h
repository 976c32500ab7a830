#ifndef LIB_BACKUP_H
#define LIB_BACKUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct db;
struct err;

/*
 * Backups of the whole database, for the admin routes and `switchboard
 * backup`: each one a row of the backups table (its state is the same for
 * every program and survives them) and a file in the backup directory.
 * SQLite only: callers answer a PostgreSQL database themselves
 * (BACKUP_PG_TEXT), whose backups are pg_dump's business.
 */

#define BACKUP_PG_TEXT   "backups of a PostgreSQL database are taken with pg_dump"
#define BACKUP_NOT_FOUND "Backup not found"

struct backup_row {
	char id[64];
	char name[128];
	char status[16]; /* creating, completed, failed, restoring */
	int progress;    /* 0..100 */
	char message[256];
	char error[256]; /* "" when none */
	char path[PATH_MAX];
	int64_t size;
	char description[256];
	char created_at[40];
	char completed_at[40]; /* "" while not completed */
};

/* The backup directory into buf: BACKUP_DIR, else "backups" beside
 * DB_PATH. */
void backup_dir(const struct config *cfg, char *buf, size_t size);

/*
 * Take a backup of cfg's database now: its row is written 'creating'
 * (and committed, so others see it), the copy made with SQLite's online
 * backup API (consistent while others write), then the row completed, or
 * failed with the reason, and an audit_log row (actor_id <= 0: the
 * command-line tool). name NULL: the id. *row gets the final row, also
 * when the copy failed (then -1 with e set).
 */
int backup_create(struct db *db, const struct config *cfg, const char *name,
    const char *description, int64_t actor_id, struct backup_row *row,
    struct err *e);

/* Row id into *row. ERR_NOTFOUND BACKUP_NOT_FOUND. */
int backup_get(struct db *db, const char *id, struct backup_row *row,
    struct err *e);

/* Each row, newest first, to fn (which returns 0 to go on, -1 to stop
 * with e set). */
typedef int (
    *backup_fn)(void *arg, const struct backup_row *row, struct err *e);
int backup_list(struct db *db, backup_fn fn, void *arg, struct err *e);

/* Delete backup id: its row (with an audit_log row) then its file.
 * ERR_NOTFOUND BACKUP_NOT_FOUND. */
int backup_delete(struct db *db, const char *id, int64_t actor_id,
    struct err *e);

/*
 * Restore backup id into cfg's database while every program goes on
 * serving: first a backup of the database as it is (*pre gets its row),
 * then the backup's pages copied into the live database through the
 * backup API (each connection sees them from its next transaction), the
 * migrations the backup lacks applied, the backups table put back as it
 * was (so the list still knows every file), the notify stream given a new
 * epoch (browsers resync instead of being replayed rows that are gone),
 * an audit_log row, and the relay told (when it runs). Token generations
 * only go up: a token revoked before the restore stays revoked, and the
 * tokens of an account the restore took away are revoked. ERR_NOTFOUND
 * BACKUP_NOT_FOUND; ERR_CONFLICT when the backup is not completed. On
 * failure before the copy nothing changed.
 */
int backup_restore(struct db *db, const struct config *cfg, const char *id,
    int64_t actor_id, struct backup_row *pre, struct err *e);

#endif
