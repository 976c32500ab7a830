#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "lib/db_engine.h"
#include "lib/err.h"

/* The SQLite engine: a file, one connection per db. */

struct sq_stmt {
	struct db_stmt base; /* first: db.c sees a struct db_stmt * */
	sqlite3_stmt *st;
};

/* A connection, with its two BEGINs prepared once: a transaction per
 * request would otherwise parse one each time. */
struct sq_conn {
	sqlite3 *h;
	sqlite3_stmt *begin[2]; /* [0] read, [1] write */
};

static struct sq_stmt *
sq(struct db_stmt *st)
{
	return (struct sq_stmt *)st;
}

static sqlite3 *
sqh(void *conn)
{
	return ((struct sq_conn *)conn)->h;
}

static int
sq_exec(void *conn, const char *text, struct err *e)
{
	char *msg = NULL;
	int rc;

	if ((rc = sqlite3_exec(sqh(conn), text, NULL, NULL, &msg)) !=
	    SQLITE_OK) {
		/* BEGIN IMMEDIATE comes here: a lock is ERR_BUSY as in step. */
		if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
			err_set(e, ERR_BUSY, "database is busy: %s",
			    msg != NULL ? msg : sqlite3_errmsg(sqh(conn)));
		else /* the reason first: a script can be longer than e->msg */
			err_set(e, ERR_INTERNAL, "%s (in '%.40s')",
			    msg != NULL ? msg : sqlite3_errmsg(sqh(conn)),
			    text);
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static void
sq_close(void *conn)
{
	struct sq_conn *c = conn;

	if (c == NULL)
		return;
	sqlite3_finalize(c->begin[0]);
	sqlite3_finalize(c->begin[1]);
	sqlite3_close(c->h);
	free(c);
}

static void *
sq_open(const char *path, int busy_ms, struct err *e)
{
	static const char *const begin[2] = { "BEGIN", "BEGIN IMMEDIATE" };
	struct sq_conn *c;
	struct stat sb;
	bool created;
	int rc, i;

	/* An empty file is new too: nothing has been written to it yet. */
	if (stat(path, &sb) == 0)
		created = sb.st_size == 0;
	else if (errno == ENOENT)
		created = true;
	else {
		err_set(e, ERR_INTERNAL, "stat '%s': %s", path,
		    strerror(errno));
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	rc = sqlite3_open_v2(path, &c->h,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		err_set(e, ERR_INTERNAL, "open '%s': %s", path,
		    c->h != NULL ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
		sq_close(c);
		return NULL;
	}
	sqlite3_extended_result_codes(c->h, 1);
	sqlite3_busy_timeout(c->h, busy_ms);
	if (sq_exec(c, "PRAGMA foreign_keys = ON", e) == -1 ||
	    sq_exec(c, "PRAGMA synchronous = NORMAL", e) == -1 ||
	    (created && sq_exec(c, "PRAGMA journal_mode = WAL", e) == -1)) {
		sq_close(c);
		return NULL;
	}
	for (i = 0; i < 2; i++)
		if (sqlite3_prepare_v3(c->h, begin[i], -1,
			SQLITE_PREPARE_PERSISTENT, &c->begin[i],
			NULL) != SQLITE_OK) {
			err_set(e, ERR_INTERNAL, "prepare '%s': %s", begin[i],
			    sqlite3_errmsg(c->h));
			sq_close(c);
			return NULL;
		}
	return c;
}

static void
sq_set_busy(void *conn, int busy_ms)
{
	sqlite3_busy_timeout(sqh(conn), busy_ms);
}

static struct db_stmt *
sq_prepare(void *conn, const char *text, struct err *e)
{
	struct sq_stmt *s;
	sqlite3_stmt *st;
	const char *tail;
	int rc;

	rc = sqlite3_prepare_v3(sqh(conn), text, -1, SQLITE_PREPARE_PERSISTENT,
	    &st, &tail);
	if (rc != SQLITE_OK) {
		err_set(e, ERR_INTERNAL, "prepare '%s': %s", text,
		    sqlite3_errmsg(sqh(conn)));
		return NULL;
	}
	if (st == NULL || tail[strspn(tail, " \t\r\n;")] != '\0') {
		sqlite3_finalize(st);
		err_set(e, ERR_INTERNAL, "prepare '%s': not one statement",
		    text);
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		sqlite3_finalize(st);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	s->base.ops = &db_sqlite_ops;
	s->st = st;
	return &s->base;
}

static void
sq_finalize(struct db_stmt *st)
{
	if (st == NULL)
		return;
	sqlite3_finalize(sq(st)->st);
	free(st);
}

static void
sq_reset(struct db_stmt *st, bool clear)
{
	sqlite3_reset(sq(st)->st);
	if (clear)
		sqlite3_clear_bindings(sq(st)->st);
}

static void
sq_bind_int(struct db_stmt *st, int i, int64_t v)
{
	sqlite3_bind_int64(sq(st)->st, i, v);
}

static void
sq_bind_text(struct db_stmt *st, int i, const char *s, size_t len)
{
	/* A NULL pointer binds NULL, as sqlite3_bind_text does. */
	sqlite3_bind_text(sq(st)->st, i, s, (int)len, SQLITE_STATIC);
}

static void
sq_bind_null(struct db_stmt *st, int i)
{
	sqlite3_bind_null(sq(st)->st, i);
}

/* rc, a failed step of st, as an err code; st is reset. */
static int
sq_step_error(void *conn, sqlite3_stmt *st, int rc, struct err *e)
{
	char msg[200];

	snprintf(msg, sizeof(msg), "%s", sqlite3_errmsg(sqh(conn)));
	sqlite3_reset(st);
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return err_set(e, ERR_BUSY, "database is busy: %s", msg);
	case SQLITE_CONSTRAINT:
		return err_set(e, ERR_CONFLICT, "%s", msg);
	default:
		return err_set(e, ERR_INTERNAL, "step '%s': %s",
		    sqlite3_sql(st), msg);
	}
}

static int
sq_step(void *conn, struct db_stmt *dst, struct err *e)
{
	sqlite3_stmt *st = sq(dst)->st;
	int rc;

	switch ((rc = sqlite3_step(st))) {
	case SQLITE_ROW:
		return 1;
	case SQLITE_DONE:
		sqlite3_reset(st);
		return 0;
	default:
		return sq_step_error(conn, st, rc, e);
	}
}

static int
sq_changes(void *conn)
{
	return sqlite3_changes(sqh(conn));
}

static enum db_type
sq_col_type(struct db_stmt *st, int i)
{
	switch (sqlite3_column_type(sq(st)->st, i)) {
	case SQLITE_NULL:
		return DB_NULL;
	case SQLITE_INTEGER:
		return DB_INT;
	case SQLITE_FLOAT:
		return DB_REAL;
	default:
		return DB_TEXT;
	}
}

static int64_t
sq_col_int(struct db_stmt *st, int i)
{
	return sqlite3_column_int64(sq(st)->st, i);
}

static const char *
sq_col_text(struct db_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(sq(st)->st, i);
}

static size_t
sq_col_len(struct db_stmt *st, int i)
{
	return (size_t)sqlite3_column_bytes(sq(st)->st, i);
}

static int
sq_begin(void *conn, bool write, struct err *e)
{
	/* A deferred transaction that reads first can fail with BUSY
	 * whatever the timeout when it then writes: writers lock first. */
	sqlite3_stmt *st = ((struct sq_conn *)conn)->begin[write];
	int rc;

	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		return sq_step_error(conn, st, rc, e);
	sqlite3_reset(st);
	return 0;
}

static bool
sq_in_transaction(void *conn)
{
	return !sqlite3_get_autocommit(sqh(conn));
}

static int
sq_has_table(void *conn, const char *name, struct err *e)
{
	static const char text[] = "SELECT 1 FROM sqlite_master "
				   "WHERE type = 'table' AND name = ?1";
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(sqh(conn), text, -1, &st, NULL) != SQLITE_OK)
		return err_set(e, ERR_INTERNAL, "prepare '%s': %s", text,
		    sqlite3_errmsg(sqh(conn)));
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return err_set(e, ERR_BUSY, "database is busy: %s",
		    sqlite3_errstr(rc));
	return err_set(e, ERR_INTERNAL, "step '%s': %s", text,
	    sqlite3_errstr(rc));
}

/*
 * A migration that rebuilds a table (create, copy, drop, rename) must not
 * fire ON DELETE actions when it drops the old one: keys are off while
 * migrations run and checked before each commit instead, as SQLite's ALTER
 * TABLE notes describe. The pragma is a no-op inside a transaction, so it
 * is set here, between them.
 */
static int
sq_migrations_begin(void *conn, struct err *e)
{
	return sq_exec(conn, "PRAGMA foreign_keys = OFF", e);
}

static void
sq_migrations_end(void *conn, bool ok)
{
	(void)ok;
	/* Always back on: the connection keeps serving after a failure. */
	sqlite3_exec(sqh(conn), "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
}

static int
sq_migration_check(void *conn, struct err *e)
{
	static const char text[] = "PRAGMA foreign_key_check";
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(sqh(conn), text, -1, &st, NULL) != SQLITE_OK)
		return err_set(e, ERR_INTERNAL, "prepare '%s': %s", text,
		    sqlite3_errmsg(sqh(conn)));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err_set(e, ERR_INTERNAL,
		    "leaves foreign key violations in '%s'",
		    (const char *)sqlite3_column_text(st, 0));
	else if (rc != SQLITE_DONE)
		err_set(e, ERR_INTERNAL, "%s: %s", text,
		    sqlite3_errmsg(sqh(conn)));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

const struct db_ops db_sqlite_ops = {
	.engine = DB_SQLITE,
	.open = sq_open,
	.close = sq_close,
	.set_busy = sq_set_busy,
	.prepare = sq_prepare,
	.finalize = sq_finalize,
	.reset = sq_reset,
	.bind_int = sq_bind_int,
	.bind_text = sq_bind_text,
	.bind_null = sq_bind_null,
	.step = sq_step,
	.changes = sq_changes,
	.col_type = sq_col_type,
	.col_int = sq_col_int,
	.col_text = sq_col_text,
	.col_len = sq_col_len,
	.exec = sq_exec,
	.begin = sq_begin,
	.in_transaction = sq_in_transaction,
	.has_table = sq_has_table,
	.migrations_begin = sq_migrations_begin,
	.migrations_end = sq_migrations_end,
	.migration_check = sq_migration_check,
};
