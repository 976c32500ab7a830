#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/db.h"
#include "lib/db_engine.h"
#include "lib/err.h"

/*
 * What both engines share: the statement cache, transactions, migrations and
 * the time format; everything engine-specific is behind db->ops.
 */

enum q {
	Q_COMMIT,
	Q_ROLLBACK,
	Q_MIG_TABLE,
	Q_MIG_APPLIED,
	Q_MIG_RECORD,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	/* text, not datetime: the type both engines read the same way (an
	 * existing SQLite table keeps its declaration, stores the same). */
	[Q_MIG_TABLE] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
			"name text PRIMARY KEY, "
			"applied_at text NOT NULL)",
	[Q_MIG_APPLIED] = "SELECT 1 FROM schema_migrations WHERE name = ?1",
	[Q_MIG_RECORD] = "INSERT INTO schema_migrations (name, applied_at) "
			 "VALUES (?1, ?2)",
};

struct db_slot {
	const char *sql;
	struct db_stmt *st;
};

struct db {
	const struct db_ops *ops;
	void *conn;
	struct db_slot *slots; /* open addressing, keyed by sql's address */
	size_t nslots;         /* a power of two, or 0 */
	size_t nused;
};

static size_t
slot_hash(const char *p, size_t nslots)
{
	uint64_t x = (uint64_t)(uintptr_t)p;

	/* Fibonacci hashing: string addresses share their low bits. */
	x *= UINT64_C(0x9e3779b97f4a7c15);
	return (size_t)(x >> 32) & (nslots - 1);
}

static struct db_slot *
slot_find(struct db_slot *slots, size_t nslots, const char *p)
{
	size_t i;

	for (i = slot_hash(p, nslots);; i = (i + 1) & (nslots - 1))
		if (slots[i].sql == p || slots[i].sql == NULL)
			return &slots[i];
}

static int
slots_grow(struct db *db, struct err *e)
{
	size_t n = db->nslots ? db->nslots * 2 : 64, i;
	struct db_slot *s, *to;

	if ((s = calloc(n, sizeof(*s))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	for (i = 0; i < db->nslots; i++) {
		if (db->slots[i].sql == NULL)
			continue;
		to = slot_find(s, n, db->slots[i].sql);
		*to = db->slots[i];
	}
	free(db->slots);
	db->slots = s;
	db->nslots = n;
	return 0;
}

static bool
is_pg_target(const char *target)
{
	return strncmp(target, "postgresql://", 13) == 0 ||
	       strncmp(target, "postgres://", 11) == 0;
}

struct db *
db_open(const char *target, int busy_ms, struct err *e)
{
	const struct db_ops *ops = &db_sqlite_ops;
	struct db *db;

	if (is_pg_target(target))
		ops = &db_pg_ops;
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	db->ops = ops;
	if ((db->conn = ops->open(target, busy_ms, e)) == NULL) {
		free(db);
		return NULL;
	}
	return db;
}

enum db_engine
db_engine(const struct db *db)
{
	return db->ops->engine;
}

void
db_set_busy(struct db *db, int busy_ms)
{
	db->ops->set_busy(db->conn, busy_ms);
}

void
db_close(struct db *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < db->nslots; i++)
		if (db->slots[i].st != NULL)
			db->ops->finalize(db->slots[i].st);
	free(db->slots);
	db->ops->close(db->conn);
	free(db);
}

struct db_stmt *
db_stmt(struct db *db, const char *text, struct err *e)
{
	struct db_slot *s;
	struct db_stmt *st;

	if (db->nslots != 0) {
		s = slot_find(db->slots, db->nslots, text);
		if (s->sql != NULL) {
			db->ops->reset(s->st, true);
			return s->st;
		}
	}
	if ((st = db->ops->prepare(db->conn, text, e)) == NULL)
		return NULL;
	/* Keep the table at most half full so probes stay short. */
	if ((db->nused + 1) * 2 > db->nslots && slots_grow(db, e) == -1) {
		db->ops->finalize(st);
		return NULL;
	}
	s = slot_find(db->slots, db->nslots, text);
	s->sql = text;
	s->st = st;
	db->nused++;
	return st;
}

void
db_bind_int(struct db_stmt *st, int i, int64_t v)
{
	st->ops->bind_int(st, i, v);
}

void
db_bind_text(struct db_stmt *st, int i, const char *s)
{
	if (s == NULL)
		st->ops->bind_null(st, i);
	else
		st->ops->bind_text(st, i, s, strlen(s));
}

void
db_bind_textn(struct db_stmt *st, int i, const char *s, size_t len)
{
	if (s == NULL)
		st->ops->bind_null(st, i);
	else
		st->ops->bind_text(st, i, s, len);
}

void
db_bind_null(struct db_stmt *st, int i)
{
	st->ops->bind_null(st, i);
}

int
db_row(struct db *db, struct db_stmt *st, struct err *e)
{
	return db->ops->step(db->conn, st, e);
}

int
db_done(struct db *db, struct db_stmt *st, struct err *e)
{
	int rc;

	while ((rc = db_row(db, st, e)) == 1)
		;
	return rc;
}

void
db_reset(struct db_stmt *st)
{
	st->ops->reset(st, false);
}

enum db_type
db_col_type(struct db_stmt *st, int i)
{
	return st->ops->col_type(st, i);
}

bool
db_col_null(struct db_stmt *st, int i)
{
	return st->ops->col_type(st, i) == DB_NULL;
}

int64_t
db_col_int(struct db_stmt *st, int i)
{
	return st->ops->col_int(st, i);
}

const char *
db_col_text(struct db_stmt *st, int i)
{
	return st->ops->col_text(st, i);
}

size_t
db_col_len(struct db_stmt *st, int i)
{
	return st->ops->col_len(st, i);
}

bool
db_col_bool(struct db_stmt *st, int i)
{
	const char *s;

	switch (db_col_type(st, i)) {
	case DB_INT:
	case DB_REAL:
		return db_col_int(st, i) != 0;
	case DB_TEXT:
		s = db_col_text(st, i);
		return s != NULL &&
		       (strcmp(s, "true") == 0 || strcmp(s, "1") == 0);
	default:
		return false;
	}
}

int
db_changes(struct db *db)
{
	return db->ops->changes(db->conn);
}

int
db_exec(struct db *db, const char *script, struct err *e)
{
	return db->ops->exec(db->conn, script, e);
}

static int
db_run(struct db *db, enum q q, struct err *e)
{
	struct db_stmt *st;

	if ((st = db_stmt(db, sql[q], e)) == NULL)
		return -1;
	return db_done(db, st, e);
}

int
db_begin(struct db *db, struct err *e)
{
	return db->ops->begin(db->conn, true, e);
}

int
db_begin_read(struct db *db, struct err *e)
{
	return db->ops->begin(db->conn, false, e);
}

struct db *
db_open_current(const char *target, int busy_ms, struct err *e)
{
	struct db *db;
	int current;

	if ((db = db_open(target, busy_ms, e)) == NULL)
		return NULL;
	if ((current = db_is_current(db, e)) != 1) {
		/* A URL is not repeated: it may hold a password. */
		if (current == 0)
			err_set(e, ERR_INTERNAL,
			    "database '%s' is not migrated: run 'switchboard "
			    "init' or 'switchboard migrate'",
			    is_pg_target(target) ? "postgresql" : target);
		db_close(db);
		return NULL;
	}
	return db;
}

int
db_commit(struct db *db, struct err *e)
{
	if (db_run(db, Q_COMMIT, e) == 0)
		return 0;
	/*
	 * A failed COMMIT can leave the transaction open; callers that only
	 * check the result would then run their next request inside it.
	 */
	db_rollback(db);
	return -1;
}

void
db_rollback(struct db *db)
{
	if (!db->ops->in_transaction(db->conn))
		return;
	if (db_run(db, Q_ROLLBACK, NULL) == -1)
		db->ops->exec(db->conn, "ROLLBACK", NULL);
}

bool
db_in_transaction(struct db *db)
{
	return db->ops->in_transaction(db->conn);
}

/* 1 when name has a row in schema_migrations, 0 when not, -1 on error. */
static int
mig_applied(struct db *db, const char *name, struct err *e)
{
	struct db_stmt *st;
	int rc;

	if ((st = db_stmt(db, sql[Q_MIG_APPLIED], e)) == NULL)
		return -1;
	db_bind_text(st, 1, name);
	if ((rc = db_row(db, st, e)) == 1)
		db_reset(st);
	return rc;
}

static int
mig_apply(struct db *db, const struct db_migration *m, int *applied,
    struct err *e)
{
	struct db_stmt *st;
	const char *script;
	char now[40];
	int rc;

	if (db_begin(db, e) == -1)
		return -1;
	/* Checked again inside the lock: another program may have won. */
	if ((rc = mig_applied(db, m->name, e)) != 0) {
		db_rollback(db);
		return rc == 1 ? 0 : -1;
	}
	script =
	    db->ops->engine == DB_POSTGRES && m->pg != NULL ? m->pg : m->sql;
	if (db->ops->exec(db->conn, script, e) == -1 ||
	    db->ops->migration_check(db->conn, e) == -1)
		goto fail;
	db_now(now, sizeof(now));
	if ((st = db_stmt(db, sql[Q_MIG_RECORD], e)) == NULL)
		goto fail;
	db_bind_text(st, 1, m->name);
	db_bind_text(st, 2, now);
	if (db_done(db, st, e) == -1 || db_commit(db, e) == -1)
		goto fail;
	(*applied)++;
	return 0;
fail:
	db_rollback(db);
	if (e != NULL) {
		char why[sizeof(e->msg)];

		snprintf(why, sizeof(why), "%s", e->msg);
		err_set(e, ERR_INTERNAL, "migration '%s': %s", m->name, why);
	}
	return -1;
}

static int
mig_cmp(const void *a, const void *b)
{
	const struct db_migration *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/* The compiled-in migrations in name order; NULL only when out of memory. */
static const struct db_migration **
mig_sorted(struct err *e)
{
	const struct db_migration **v;
	size_t i;

	if ((v = calloc(db_nmigrations + 1, sizeof(*v))) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	for (i = 0; i < db_nmigrations; i++)
		v[i] = &db_migrations[i];
	qsort(v, db_nmigrations, sizeof(*v), mig_cmp);
	return v;
}

int
db_migrate(struct db *db, int *applied, struct err *e)
{
	const struct db_migration **v;
	int n = 0, rc = 0;
	size_t i;

	if (applied != NULL)
		*applied = 0;
	if (db_run(db, Q_MIG_TABLE, e) == -1)
		return -1;
	if ((v = mig_sorted(e)) == NULL)
		return -1;
	if (db->ops->migrations_begin(db->conn, e) == -1) {
		free(v);
		return -1;
	}
	for (i = 0; i < db_nmigrations && rc == 0; i++) {
		if ((rc = mig_applied(db, v[i]->name, e)) == 1)
			rc = 0;
		else if (rc == 0)
			rc = mig_apply(db, v[i], &n, e);
	}
	free(v);
	db->ops->migrations_end(db->conn, rc == 0);
	if (applied != NULL)
		*applied = n;
	return rc;
}

int
db_is_current(struct db *db, struct err *e)
{
	size_t i;
	int rc;

	if ((rc = db->ops->has_table(db->conn, "schema_migrations", e)) != 1)
		return rc;
	for (i = 0; i < db_nmigrations; i++)
		if ((rc = mig_applied(db, db_migrations[i].name, e)) != 1)
			return rc;
	return 1;
}

int64_t
db_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
db_time_format(int64_t us, char *buf, unsigned size)
{
	time_t s = (time_t)(us / 1000000);
	char stamp[32];
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%06ldZ", stamp, (long)(us % 1000000));
}

void
db_now(char *buf, unsigned size)
{
	db_time_format(db_now_us(), buf, size);
}

int
db_time_parse(const char *s, int64_t *us)
{
	int y, mo, d, h, mi, sec, n = 0, frac_at = 0, frac_end = 0;
	int64_t frac = 0;
	struct tm tm;
	time_t t;
	size_t i;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
		&n) != 6)
		return -1;
	if (s[n] == '.') {
		frac_at = n + 1;
		for (frac_end = frac_at;
		     s[frac_end] >= '0' && s[frac_end] <= '9'; frac_end++)
			;
		for (i = 0; i < 6; i++)
			frac = frac * 10 + (frac_at + (int)i < frac_end
						   ? s[frac_at + i] - '0'
						   : 0);
		n = frac_end;
	}
	if (s[n] != 'Z' || s[n + 1] != '\0')
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	*us = (int64_t)t * 1000000 + frac;
	return 0;
}
