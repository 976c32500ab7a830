#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "lib/db.h"
#include "lib/err.h"

/* As sql/embed.sh declares it in $(B)/gen/migrations.c. */
struct db_migration {
	const char *name;
	const char *sql;
};
extern const struct db_migration db_migrations[];
extern const size_t db_nmigrations;

enum q {
	Q_BEGIN,
	Q_BEGIN_READ,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_MIG_TABLE,
	Q_MIG_HAS_TABLE,
	Q_MIG_APPLIED,
	Q_MIG_RECORD,
	Q_MIG_FKCHECK,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_BEGIN_READ] = "BEGIN",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_MIG_TABLE] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
			"name text PRIMARY KEY, "
			"applied_at datetime NOT NULL)",
	[Q_MIG_HAS_TABLE] = "SELECT 1 FROM sqlite_master "
			    "WHERE type = 'table' AND name = ?1",
	[Q_MIG_APPLIED] = "SELECT 1 FROM schema_migrations WHERE name = ?1",
	[Q_MIG_RECORD] = "INSERT INTO schema_migrations (name, applied_at) "
			 "VALUES (?1, ?2)",
	[Q_MIG_FKCHECK] = "PRAGMA foreign_key_check",
};

struct db_slot {
	const char *sql;
	sqlite3_stmt *st;
};

struct db {
	sqlite3 *h;
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

static int
db_exec(struct db *db, const char *text, struct err *e)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, text, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(e, ERR_INTERNAL, "%s: %s", text,
		    msg != NULL ? msg : sqlite3_errmsg(db->h));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

struct db *
db_open(const char *path, int busy_ms, struct err *e)
{
	struct stat sb;
	struct db *db;
	bool created;
	int rc;

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
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	rc = sqlite3_open_v2(path, &db->h,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		err_set(e, ERR_INTERNAL, "open '%s': %s", path,
		    db->h != NULL ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
		db_close(db);
		return NULL;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, busy_ms);
	if (db_exec(db, "PRAGMA foreign_keys = ON", e) == -1 ||
	    db_exec(db, "PRAGMA synchronous = NORMAL", e) == -1 ||
	    (created && db_exec(db, "PRAGMA journal_mode = WAL", e) == -1)) {
		db_close(db);
		return NULL;
	}
	return db;
}

void
db_set_busy(struct db *db, int busy_ms)
{
	sqlite3_busy_timeout(db->h, busy_ms);
}

void
db_close(struct db *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < db->nslots; i++)
		sqlite3_finalize(db->slots[i].st);
	free(db->slots);
	sqlite3_close(db->h);
	free(db);
}

struct sqlite3 *
db_handle(struct db *db)
{
	return db->h;
}

sqlite3_stmt *
db_stmt(struct db *db, const char *text, struct err *e)
{
	struct db_slot *s;
	sqlite3_stmt *st;
	const char *tail;
	int rc;

	if (db->nslots != 0) {
		s = slot_find(db->slots, db->nslots, text);
		if (s->sql != NULL) {
			sqlite3_reset(s->st);
			sqlite3_clear_bindings(s->st);
			return s->st;
		}
	}
	rc = sqlite3_prepare_v3(db->h, text, -1, SQLITE_PREPARE_PERSISTENT, &st,
	    &tail);
	if (rc != SQLITE_OK) {
		err_set(e, ERR_INTERNAL, "prepare '%s': %s", text,
		    sqlite3_errmsg(db->h));
		return NULL;
	}
	if (st == NULL || tail[strspn(tail, " \t\r\n;")] != '\0') {
		sqlite3_finalize(st);
		err_set(e, ERR_INTERNAL, "prepare '%s': not one statement",
		    text);
		return NULL;
	}
	/* Keep the table at most half full so probes stay short. */
	if ((db->nused + 1) * 2 > db->nslots && slots_grow(db, e) == -1) {
		sqlite3_finalize(st);
		return NULL;
	}
	s = slot_find(db->slots, db->nslots, text);
	s->sql = text;
	s->st = st;
	db->nused++;
	return st;
}

static int
db_step_error(struct db *db, sqlite3_stmt *st, int rc, struct err *e)
{
	char msg[200];

	snprintf(msg, sizeof(msg), "%s", sqlite3_errmsg(db->h));
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

int
db_row(struct db *db, sqlite3_stmt *st, struct err *e)
{
	int rc;

	switch ((rc = sqlite3_step(st))) {
	case SQLITE_ROW:
		return 1;
	case SQLITE_DONE:
		sqlite3_reset(st);
		return 0;
	default:
		return db_step_error(db, st, rc, e);
	}
}

int
db_done(struct db *db, sqlite3_stmt *st, struct err *e)
{
	int rc;

	while ((rc = db_row(db, st, e)) == 1)
		;
	return rc;
}

static int
db_run(struct db *db, enum q q, struct err *e)
{
	sqlite3_stmt *st;

	if ((st = db_stmt(db, sql[q], e)) == NULL)
		return -1;
	return db_done(db, st, e);
}

int
db_begin(struct db *db, struct err *e)
{
	return db_run(db, Q_BEGIN, e);
}

struct db *
db_open_current(const char *path, int busy_ms, struct err *e)
{
	struct db *db;
	int current;

	if ((db = db_open(path, busy_ms, e)) == NULL)
		return NULL;
	if ((current = db_is_current(db, e)) != 1) {
		if (current == 0)
			err_set(e, ERR_INTERNAL,
			    "database '%s' is not migrated: run 'switchboard "
			    "init' or 'switchboard migrate'",
			    path);
		db_close(db);
		return NULL;
	}
	return db;
}

int
db_begin_read(struct db *db, struct err *e)
{
	return db_run(db, Q_BEGIN_READ, e);
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
	if (sqlite3_get_autocommit(db->h))
		return;
	if (db_run(db, Q_ROLLBACK, NULL) == -1)
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int64_t
db_last_id(struct db *db)
{
	return sqlite3_last_insert_rowid(db->h);
}

int
db_changes(struct db *db)
{
	return sqlite3_changes(db->h);
}

/* 1 when name has a row in schema_migrations, 0 when not, -1 on error. */
static int
mig_applied(struct db *db, const char *name, struct err *e)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = db_stmt(db, sql[Q_MIG_APPLIED], e)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = db_row(db, st, e)) == 1)
		sqlite3_reset(st);
	return rc;
}

static int
mig_apply(struct db *db, const struct db_migration *m, int *applied,
    struct err *e)
{
	sqlite3_stmt *st;
	char now[40], *msg = NULL;
	int rc;

	if (db_begin(db, e) == -1)
		return -1;
	/* Checked again inside the lock: another program may have won. */
	if ((rc = mig_applied(db, m->name, e)) != 0) {
		db_rollback(db);
		return rc == 1 ? 0 : -1;
	}
	if (sqlite3_exec(db->h, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(e, ERR_INTERNAL, "migration '%s': %s", m->name,
		    msg != NULL ? msg : sqlite3_errmsg(db->h));
		sqlite3_free(msg);
		db_rollback(db);
		return -1;
	}
	if ((st = db_stmt(db, sql[Q_MIG_FKCHECK], e)) == NULL ||
	    (rc = db_row(db, st, e)) == -1)
		goto fail;
	if (rc == 1) {
		err_set(e, ERR_INTERNAL,
		    "leaves foreign key violations in '%s'",
		    (const char *)sqlite3_column_text(st, 0));
		sqlite3_reset(st);
		goto fail;
	}
	db_now(now, sizeof(now));
	if ((st = db_stmt(db, sql[Q_MIG_RECORD], e)) == NULL)
		goto fail;
	sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
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
	/*
	 * A migration that rebuilds a table (create, copy, drop, rename) must
	 * not fire ON DELETE actions when it drops the old one: keys are off
	 * while migrations run and checked before each commit instead, as
	 * SQLite's ALTER TABLE notes describe. The pragma is a no-op inside a
	 * transaction, so it is set here, between them.
	 */
	if (db_exec(db, "PRAGMA foreign_keys = OFF", e) == -1) {
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
	if (rc == 0)
		rc = db_exec(db, "PRAGMA foreign_keys = ON", e);
	else
		sqlite3_exec(db->h, "PRAGMA foreign_keys = ON", NULL, NULL,
		    NULL);
	if (applied != NULL)
		*applied = n;
	return rc;
}

int
db_is_current(struct db *db, struct err *e)
{
	sqlite3_stmt *st;
	size_t i;
	int rc;

	if ((st = db_stmt(db, sql[Q_MIG_HAS_TABLE], e)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, "schema_migrations", -1, SQLITE_STATIC);
	if ((rc = db_row(db, st, e)) != 1)
		return rc;
	sqlite3_reset(st);
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
