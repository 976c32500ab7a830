#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lib/audit.h"
#include "lib/auth.h"
#include "lib/backup.h"
#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/db_backup.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/notify.h"

/* How long a restore waits for a writer to let go of the database. */
#define BACKUP_RESTORE_BUSY_MS 10000
#define BACKUP_CTL_MS          2000
#define BACKUP_ID_TRIES        20

#define ROW_COLS                                                               \
	"id, name, status, progress, message, error, path, size, "             \
	"description, created_at, completed_at"

enum q {
	Q_INSERT,
	Q_FINISH,
	Q_GET,
	Q_LIST,
	Q_DELETE,
	Q_PUT,
	Q_STREAM_BREAK,
	Q_GENS,
	Q_GEN_PUT,
	Q_USER_EXISTS,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_INSERT] = "INSERT INTO backups (id, name, status, progress, "
		     "message, path, description, created_by, created_at) "
		     "VALUES (?1, ?2, 'creating', 0, 'Backup started', ?3, ?4, "
		     "?5, ?6) ON CONFLICT (id) DO NOTHING",
	[Q_FINISH] = "UPDATE backups SET status = ?2, progress = ?3, "
		     "message = ?4, error = ?5, size = ?6, completed_at = ?7 "
		     "WHERE id = ?1",
	[Q_GET] = "SELECT " ROW_COLS " FROM backups WHERE id = ?1",
	[Q_LIST] = "SELECT " ROW_COLS " FROM backups "
		   "ORDER BY created_at DESC, id DESC",
	[Q_DELETE] = "DELETE FROM backups WHERE id = ?1",
	/* A row put back after a restore, as it was before it. */
	[Q_PUT] = "INSERT INTO backups (id, name, status, progress, message, "
		  "error, path, size, description, created_at, completed_at) "
		  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
		  "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
		  "status = excluded.status, progress = excluded.progress, "
		  "message = excluded.message, error = excluded.error, "
		  "path = excluded.path, size = excluded.size, "
		  "description = excluded.description, "
		  "created_at = excluded.created_at, "
		  "completed_at = excluded.completed_at",
	/* A high-water mark no id reaches: to notify_stream_check the ids
	 * went back, so it draws a new epoch. The row stays, for writers
	 * that draw their ids from it meanwhile. */
	/* Every account now, with the generation its tokens carry. */
	[Q_GENS] = "SELECT u.id, COALESCE(t.generation, 0) FROM users u "
		   "LEFT JOIN token_generations t ON t.user_id = u.id",
	/* Raised, never lowered: a token revoked before the restore stays
	 * revoked after it. */
	[Q_GEN_PUT] =
	    "INSERT INTO token_generations (user_id, generation, "
	    "revoked_at) VALUES (?1, ?2, ?3) ON CONFLICT (user_id) "
	    "DO UPDATE SET generation = excluded.generation, "
	    "revoked_at = excluded.revoked_at "
	    "WHERE token_generations.generation < excluded.generation",
	[Q_USER_EXISTS] = "SELECT 1 FROM users WHERE id = ?1",
	[Q_STREAM_BREAK] = "UPDATE notify_stream SET high_water = ?1 "
			   "WHERE id = 1",
};

void
backup_dir(const struct config *cfg, char *buf, size_t size)
{
	const char *d = config_get("BACKUP_DIR");
	const char *slash;

	if (d != NULL && d[0] != '\0') {
		snprintf(buf, size, "%s", d);
		return;
	}
	if ((slash = strrchr(cfg->db_path, '/')) == NULL)
		snprintf(buf, size, "backups");
	else
		snprintf(buf, size, "%.*s/backups", (int)(slash - cfg->db_path),
		    cfg->db_path);
}

static void
copy_col(struct db_stmt *st, int i, char *buf, size_t size)
{
	const char *s = db_col_text(st, i);

	snprintf(buf, size, "%s", s != NULL ? s : "");
}

static void
row_read(struct db_stmt *st, struct backup_row *r)
{
	copy_col(st, 0, r->id, sizeof(r->id));
	copy_col(st, 1, r->name, sizeof(r->name));
	copy_col(st, 2, r->status, sizeof(r->status));
	r->progress = (int)db_col_int(st, 3);
	copy_col(st, 4, r->message, sizeof(r->message));
	copy_col(st, 5, r->error, sizeof(r->error));
	copy_col(st, 6, r->path, sizeof(r->path));
	r->size = db_col_int(st, 7);
	copy_col(st, 8, r->description, sizeof(r->description));
	copy_col(st, 9, r->created_at, sizeof(r->created_at));
	copy_col(st, 10, r->completed_at, sizeof(r->completed_at));
}

int
backup_get(struct db *db, const char *id, struct backup_row *row, struct err *e)
{
	struct db_stmt *st;
	int r;

	if ((st = db_stmt(db, sql[Q_GET], e)) == NULL)
		return -1;
	db_bind_text(st, 1, id);
	if ((r = db_row(db, st, e)) == -1)
		return -1;
	if (r == 0)
		return err_set(e, ERR_NOTFOUND, BACKUP_NOT_FOUND);
	row_read(st, row);
	db_reset(st);
	return 0;
}

int
backup_list(struct db *db, backup_fn fn, void *arg, struct err *e)
{
	struct backup_row *row;
	struct db_stmt *st;
	int r;

	if ((row = malloc(sizeof(*row))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if ((st = db_stmt(db, sql[Q_LIST], e)) == NULL) {
		free(row);
		return -1;
	}
	while ((r = db_row(db, st, e)) == 1) {
		row_read(st, row);
		if (fn(arg, row, e) == -1) {
			db_reset(st);
			r = -1;
			break;
		}
	}
	free(row);
	return r;
}

static int
mkdir_private(const char *dir, struct err *e)
{
	struct stat sb;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		return err_set(e, ERR_INTERNAL, "create '%s': %s", dir,
		    strerror(errno));
	if (stat(dir, &sb) == -1 || !S_ISDIR(sb.st_mode))
		return err_set(e, ERR_INTERNAL, "'%s' is not a directory", dir);
	return 0;
}

/* Insert the 'creating' row under a fresh id: backup_<unix>, then with
 * _1, _2 ... when that second already has one. */
static int
row_open(struct db *db, const char *dir, const char *name,
    const char *description, int64_t actor_id, struct backup_row *row,
    struct err *e)
{
	struct db_stmt *st;
	int64_t now = db_now_us();
	int i;

	memset(row, 0, sizeof(*row));
	db_time_format(now, row->created_at, sizeof(row->created_at));
	for (i = 0; i < BACKUP_ID_TRIES; i++) {
		if (i == 0)
			snprintf(row->id, sizeof(row->id), "backup_%" PRId64,
			    now / 1000000);
		else
			snprintf(row->id, sizeof(row->id),
			    "backup_%" PRId64 "_%d", now / 1000000, i);
		snprintf(row->path, sizeof(row->path), "%s/%s.sqlite3", dir,
		    row->id);
		snprintf(row->name, sizeof(row->name), "%s",
		    name != NULL && name[0] != '\0' ? name : row->id);
		if ((st = db_stmt(db, sql[Q_INSERT], e)) == NULL)
			return -1;
		db_bind_text(st, 1, row->id);
		db_bind_text(st, 2, row->name);
		db_bind_text(st, 3, row->path);
		db_bind_text(st, 4, description != NULL ? description : "");
		if (actor_id > 0)
			db_bind_int(st, 5, actor_id);
		else
			db_bind_null(st, 5);
		db_bind_text(st, 6, row->created_at);
		if (db_done(db, st, e) == -1)
			return -1;
		if (db_changes(db) == 1)
			break;
	}
	if (i == BACKUP_ID_TRIES)
		return err_set(e, ERR_BUSY, "no free backup id this second");
	snprintf(row->status, sizeof(row->status), "creating");
	snprintf(row->message, sizeof(row->message), "Backup started");
	snprintf(row->description, sizeof(row->description), "%s",
	    description != NULL ? description : "");
	return 0;
}

static int
row_finish(struct db *db, struct backup_row *row, int64_t actor_id,
    struct err *e)
{
	struct json_object *details;
	struct db_stmt *st;
	char target[80];
	bool ok = strcmp(row->status, "completed") == 0;

	if ((details = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(details, "name", row->name);
	jh_add_str(details, "status", row->status);
	jh_add_int(details, "size", row->size);
	snprintf(target, sizeof(target), "backup:%s", row->id);
	if (db_begin(db, e) == -1)
		goto fail;
	if ((st = db_stmt(db, sql[Q_FINISH], e)) == NULL)
		goto rollback;
	db_bind_text(st, 1, row->id);
	db_bind_text(st, 2, row->status);
	db_bind_int(st, 3, row->progress);
	db_bind_text(st, 4, row->message);
	if (ok)
		db_bind_null(st, 5);
	else
		db_bind_text(st, 5, row->error);
	db_bind_int(st, 6, row->size);
	if (ok)
		db_bind_text(st, 7, row->completed_at);
	else
		db_bind_null(st, 7);
	if (db_done(db, st, e) == -1 ||
	    audit_insert(db, actor_id, "backup.create", target, details, e) ==
		-1 ||
	    db_commit(db, e) == -1)
		goto rollback;
	json_object_put(details);
	return 0;
rollback:
	db_rollback(db);
fail:
	json_object_put(details);
	return -1;
}

int
backup_create(struct db *db, const struct config *cfg, const char *name,
    const char *description, int64_t actor_id, struct backup_row *row,
    struct err *e)
{
	struct err copy_err = { 0 };
	char dir[PATH_MAX / 2]; /* room in a row's path for the file name */
	long long bytes = 0;
	int rc;

	backup_dir(cfg, dir, sizeof(dir));
	if (mkdir_private(dir, e) == -1 ||
	    row_open(db, dir, name, description, actor_id, row, e) == -1)
		return -1;
	rc = db_backup_copy(cfg->db_path, row->path, &bytes, &copy_err);
	if (rc == 0) {
		snprintf(row->status, sizeof(row->status), "completed");
		row->progress = 100;
		snprintf(row->message, sizeof(row->message),
		    "Backup completed successfully");
		row->size = bytes;
		db_now(row->completed_at, sizeof(row->completed_at));
	} else {
		snprintf(row->status, sizeof(row->status), "failed");
		snprintf(row->message, sizeof(row->message), "Backup failed");
		snprintf(row->error, sizeof(row->error), "%s", copy_err.msg);
	}
	if (row_finish(db, row, actor_id, e) == -1) {
		if (rc == 0)
			(void)unlink(row->path);
		return -1;
	}
	if (rc == -1) {
		*e = copy_err;
		return -1;
	}
	return 0;
}

int
backup_delete(struct db *db, const char *id, int64_t actor_id, struct err *e)
{
	struct backup_row *row;
	struct db_stmt *st;
	char target[80];
	int rc = -1;

	if ((row = malloc(sizeof(*row))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	snprintf(target, sizeof(target), "backup:%s", id);
	if (db_begin(db, e) == -1)
		goto out;
	if (backup_get(db, id, row, e) == -1 ||
	    (st = db_stmt(db, sql[Q_DELETE], e)) == NULL)
		goto rollback;
	db_bind_text(st, 1, id);
	if (db_done(db, st, e) == -1 ||
	    audit_insert(db, actor_id, "backup.delete", target, NULL, e) ==
		-1 ||
	    db_commit(db, e) == -1)
		goto rollback;
	/* The row is gone first: a file without a row is only disk space,
	 * a row without its file a broken download. */
	if (unlink(row->path) == -1 && errno != ENOENT)
		log_msg(LOG_WARN, "backup %s: removing '%s': %s", id, row->path,
		    strerror(errno));
	rc = 0;
	goto out;
rollback:
	db_rollback(db);
out:
	free(row);
	return rc;
}

/* The rows as they are, to put back after the restore. */
struct saved {
	struct backup_row *rows;
	size_t n, cap;
};

static int
save_row(void *arg, const struct backup_row *row, struct err *e)
{
	struct saved *s = arg;
	struct backup_row *p;
	size_t cap;

	if (s->n == s->cap) {
		cap = s->cap != 0 ? s->cap * 2 : 16;
		if ((p = realloc(s->rows, cap * sizeof(*p))) == NULL)
			return err_set(e, ERR_INTERNAL, "out of memory");
		s->rows = p;
		s->cap = cap;
	}
	s->rows[s->n++] = *row;
	return 0;
}

static void
bind_or_null(struct db_stmt *st, int i, const char *s)
{
	if (s[0] != '\0')
		db_bind_text(st, i, s);
	else
		db_bind_null(st, i);
}

static int
put_rows(struct db *db, const struct saved *s, struct err *e)
{
	const struct backup_row *r;
	struct db_stmt *st;
	size_t i;

	for (i = 0; i < s->n; i++) {
		r = &s->rows[i];
		if ((st = db_stmt(db, sql[Q_PUT], e)) == NULL)
			return -1;
		db_bind_text(st, 1, r->id);
		db_bind_text(st, 2, r->name);
		db_bind_text(st, 3, r->status);
		db_bind_int(st, 4, r->progress);
		db_bind_text(st, 5, r->message);
		bind_or_null(st, 6, r->error);
		db_bind_text(st, 7, r->path);
		db_bind_int(st, 8, r->size);
		db_bind_text(st, 9, r->description);
		db_bind_text(st, 10, r->created_at);
		bind_or_null(st, 11, r->completed_at);
		if (db_done(db, st, e) == -1)
			return -1;
	}
	return 0;
}

/* The accounts as they are before a restore: id and token generation. */
struct gens {
	int64_t (*g)[2];
	size_t n, cap;
};

static int
gens_save(struct db *db, struct gens *g, struct err *e)
{
	struct db_stmt *st;
	int64_t(*p)[2];
	size_t cap;
	int r;

	if ((st = db_stmt(db, sql[Q_GENS], e)) == NULL)
		return -1;
	while ((r = db_row(db, st, e)) == 1) {
		if (g->n == g->cap) {
			cap = g->cap != 0 ? g->cap * 2 : 64;
			if ((p = realloc(g->g, cap * sizeof(*p))) == NULL) {
				db_reset(st);
				return err_set(e, ERR_INTERNAL,
				    "out of memory");
			}
			g->g = p;
			g->cap = cap;
		}
		g->g[g->n][0] = db_col_int(st, 0);
		g->g[g->n][1] = db_col_int(st, 1);
		g->n++;
	}
	return r;
}

/*
 * After a restore, inside the caller's transaction: the token generations
 * of the replaced database carried over, raised only. An account that the
 * restore took away is revoked too (its generation one past any token it
 * was given, and its sockets closed by the event), so that a token of it
 * never passes for an account that takes its id later.
 */
static int
gens_restore(struct db *db, const struct gens *g, struct err *e)
{
	struct db_stmt *st;
	char now[40];
	size_t i;
	int r;

	db_now(now, sizeof(now));
	for (i = 0; i < g->n; i++) {
		if ((st = db_stmt(db, sql[Q_GEN_PUT], e)) == NULL)
			return -1;
		db_bind_int(st, 1, g->g[i][0]);
		db_bind_int(st, 2, g->g[i][1]);
		db_bind_text(st, 3, now);
		if (db_done(db, st, e) == -1 ||
		    (st = db_stmt(db, sql[Q_USER_EXISTS], e)) == NULL)
			return -1;
		db_bind_int(st, 1, g->g[i][0]);
		if ((r = db_row(db, st, e)) == -1)
			return -1;
		if (r == 1)
			db_reset(st);
		else if (auth_revoke_user(db, g->g[i][0], e) == -1)
			return -1;
	}
	return 0;
}

/* Tell a running relay that the stream started anew; it is not there
 * when it is not running, and then learns it at its start. */
static void
relay_reset(const struct config *cfg)
{
	struct json_object *rq, *reply = NULL;
	struct err e = { 0 };

	if ((rq = json_object_new_object()) == NULL)
		return;
	jh_add_str(rq, "op", "stream_reset");
	if (ctl_call(cfg, rq, &reply, BACKUP_CTL_MS, &e) == -1)
		log_msg(LOG_INFO, "restore: relay not told: %s", e.msg);
	json_object_put(reply);
	json_object_put(rq);
}

int
backup_restore(struct db *db, const struct config *cfg, const char *id,
    int64_t actor_id, struct backup_row *pre, struct err *e)
{
	struct saved saved = { 0 };
	struct gens gens = { 0 };
	struct json_object *details = NULL;
	struct backup_row *row;
	struct db_stmt *st;
	char target[80];
	int rc = -1;

	if ((row = malloc(sizeof(*row))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if (backup_get(db, id, row, e) == -1)
		goto out;
	if (strcmp(row->status, "completed") != 0) {
		err_set(e, ERR_CONFLICT, "Backup is not completed");
		goto out;
	}
	if (db_backup_check(row->path, e) == -1)
		goto out;
	/* The database as it is now, restorable in turn. */
	snprintf(target, sizeof(target), "before restoring %s", id);
	if (backup_create(db, cfg, target, "taken before a restore", actor_id,
		pre, e) == -1)
		goto out;
	if (backup_list(db, save_row, &saved, e) == -1 ||
	    gens_save(db, &gens, e) == -1)
		goto out;
	if (db_backup_restore(row->path, cfg->db_path, BACKUP_RESTORE_BUSY_MS,
		e) == -1)
		goto out;

	/* From here the database is the backup's: bring it up to date. */
	if (db_migrate(db, NULL, e) == -1)
		goto out;
	if ((details = json_object_new_object()) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		goto out;
	}
	jh_add_str(details, "backup", id);
	jh_add_str(details, "pre_restore_backup", pre->id);
	snprintf(target, sizeof(target), "backup:%s", id);
	if (db_begin(db, e) == -1)
		goto out;
	if (put_rows(db, &saved, e) == -1 ||
	    (st = db_stmt(db, sql[Q_STREAM_BREAK], e)) == NULL)
		goto rollback;
	db_bind_int(st, 1, INT64_MAX);
	if (db_done(db, st, e) == -1 ||
	    audit_insert(db, actor_id, "backup.restore", target, details, e) ==
		-1 ||
	    db_commit(db, e) == -1)
		goto rollback;
	/* A new epoch now rather than at the relay's next start. Should
	 * this fail, the mark still asks for one there. */
	if (notify_stream_check(db, NULL, e) == -1)
		goto out;
	relay_reset(cfg);
	/* After the reset, so that the relay reads the revocations in the
	 * new stream and closes the sockets of the accounts gone. */
	if (db_begin(db, e) == -1)
		goto out;
	if (gens_restore(db, &gens, e) == -1 || db_commit(db, e) == -1)
		goto rollback;
	ctl_kick(cfg);
	rc = 0;
	goto out;
rollback:
	db_rollback(db);
out:
	json_object_put(details);
	free(gens.g);
	free(saved.rows);
	free(row);
	return rc;
}
