#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/db.h"
#include "lib/db_engine.h"
#include "lib/err.h"

enum q {
	Q_USER_INSERT,
	Q_USER_COUNT,
	Q_USER_NAMES,
	Q_CALL_INSERT,
	Q_NOTIFY_BAD,
	Q_OVERFLOW,
	Q_BIND,
	Q_TYPES,
	Q_RETURNING,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_USER_INSERT] = "INSERT INTO users (username, email, password, "
			  "extension) VALUES (?1, ?2, 'x', ?3)",
	[Q_USER_COUNT] = "SELECT count(*) FROM users",
	[Q_USER_NAMES] = "SELECT username FROM users ORDER BY id",
	[Q_CALL_INSERT] = "INSERT INTO call_logs (caller_id) VALUES (?1)",
	[Q_NOTIFY_BAD] = "INSERT INTO notify (created_at, target_kind, "
			 "payload) VALUES ('t', 'nobody', '{}')",
	[Q_OVERFLOW] = "SELECT abs(-9223372036854775807 - 1)",
	[Q_BIND] = "SELECT ?1",
	[Q_TYPES] = "SELECT CAST(?1 AS text), CAST(?2 AS text), 7, 0.5",
	[Q_RETURNING] = "INSERT INTO users (username, email, password, "
			"extension) VALUES (?1, ?2, 'x', ?3) RETURNING id",
};

static char dir[64];

static void
path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
}

/* One text value of a pragma or query (q a literal: it is cached). */
static void
query_text(struct db *db, const char *q, char *out, size_t size)
{
	struct err e = { 0 };
	struct db_stmt *st;

	out[0] = '\0';
	CHECK((st = db_stmt(db, q, &e)) != NULL);
	if (db_row(db, st, &e) == 1) {
		snprintf(out, size, "%s", db_col_text(st, 0));
		db_reset(st);
	}
}

static long long
query_int(struct db *db, const char *q)
{
	char buf[64];

	query_text(db, q, buf, sizeof(buf));
	return atoll(buf);
}

static struct db *
open_ok(const char *name, int busy_ms)
{
	char path[128];
	struct err e = { 0 };
	struct db *db;

	path_in(path, sizeof(path), name);
	db = db_open(path, busy_ms, &e);
	if (db == NULL)
		fprintf(stderr, "db_open %s: %s\n", path, e.msg);
	CHECK(db != NULL);
	return db;
}

static int
insert_user(struct db *db, const char *name, const char *ext, struct err *e)
{
	struct db_stmt *st;
	char email[64];

	snprintf(email, sizeof(email), "%s@example.com", name);
	if ((st = db_stmt(db, sql[Q_USER_INSERT], e)) == NULL)
		return -1;
	db_bind_text(st, 1, name);
	db_bind_text(st, 2, email);
	db_bind_text(st, 3, ext);
	return db_done(db, st, e);
}

static long long
user_count(struct db *db)
{
	struct err e = { 0 };
	struct db_stmt *st;
	long long n;

	st = db_stmt(db, sql[Q_USER_COUNT], &e);
	CHECK(st != NULL);
	CHECK(db_row(db, st, &e) == 1);
	n = db_col_int(st, 0);
	CHECK(db_row(db, st, &e) == 0);
	return n;
}

static void
test_open_and_migrate(void)
{
	struct err e = { 0 };
	char buf[128];
	struct db *db;
	int applied = -1;

	CHECK(db_nmigrations >= 1);
	db = open_ok("fresh.db", 1234);
	query_text(db, "PRAGMA journal_mode", buf, sizeof(buf));
	CHECK(strcmp(buf, "wal") == 0);
	CHECK(query_int(db, "PRAGMA foreign_keys") == 1);
	CHECK(query_int(db, "PRAGMA synchronous") == 1); /* NORMAL */
	CHECK(query_int(db, "PRAGMA busy_timeout") == 1234);

	CHECK(db_is_current(db, &e) == 0);
	CHECK(db_migrate(db, &applied, &e) == 0);
	CHECK(applied == (int)db_nmigrations);
	CHECK(db_is_current(db, &e) == 1);
	CHECK(query_int(db, "PRAGMA foreign_keys") == 1);
	CHECK(query_int(db, "SELECT count(*) FROM schema_migrations") ==
	      (long long)db_nmigrations);
	query_text(db, "SELECT name FROM schema_migrations ORDER BY name", buf,
	    sizeof(buf));
	CHECK(strcmp(buf, db_migrations[0].name) == 0);
	CHECK(strcmp(buf, "0001_init") == 0);
	query_text(db, "SELECT applied_at FROM schema_migrations", buf,
	    sizeof(buf));
	CHECK(strlen(buf) == 27 && buf[26] == 'Z');

	/* Every migration applies once. */
	CHECK(db_migrate(db, &applied, &e) == 0);
	CHECK(applied == 0);
	CHECK(db_migrate(db, NULL, &e) == 0);
	db_close(db);

	/* Reopened: still WAL (it is persistent), nothing to apply. */
	db = open_ok("fresh.db", 100);
	query_text(db, "PRAGMA journal_mode", buf, sizeof(buf));
	CHECK(strcmp(buf, "wal") == 0);
	CHECK(query_int(db, "PRAGMA foreign_keys") == 1);
	CHECK(db_is_current(db, &e) == 1);
	CHECK(db_migrate(db, &applied, &e) == 0);
	CHECK(applied == 0);
	CHECK(query_int(db, "SELECT count(*) FROM schema_migrations") ==
	      (long long)db_nmigrations);
	db_close(db);

	/* An empty file counts as new. */
	path_in(buf, sizeof(buf), "empty.db");
	fclose(fopen(buf, "w"));
	db = open_ok("empty.db", 100);
	query_text(db, "PRAGMA journal_mode", buf, sizeof(buf));
	CHECK(strcmp(buf, "wal") == 0);
	db_close(db);

	/* Failure: no such directory. */
	db = db_open("/nonexistent-dir-for-test/x.db", 100, &e);
	CHECK(db == NULL);
	CHECK(e.code == ERR_INTERNAL);
	db_close(NULL);
}

/* A database made elsewhere keeps its journal mode: WAL only on creation. */
static void
test_existing_not_wal(void)
{
	struct err e = { 0 };
	char buf[32];
	struct db *db;

	/* Made with WAL, switched back to a rollback journal, reopened. */
	db = open_ok("old.db", 100);
	CHECK(db_exec(db, "PRAGMA journal_mode = DELETE; CREATE TABLE t (x)",
		  &e) == 0);
	db_close(db);
	db = open_ok("old.db", 100);
	query_text(db, "PRAGMA journal_mode", buf, sizeof(buf));
	CHECK(strcmp(buf, "delete") == 0);
	CHECK(query_int(db, "PRAGMA foreign_keys") == 1);
	db_close(db);
}

static void
test_failed_migration(void)
{
	struct err e = { 0 };
	struct db *db;
	int applied = -1;

	/* A table the migration creates last already exists: it fails late. */
	db = open_ok("clash.db", 100);
	CHECK(db_exec(db, "CREATE TABLE audit_log (x)", &e) == 0);
	CHECK(db_migrate(db, &applied, &e) == -1);
	CHECK(applied == 0);
	CHECK(e.code == ERR_INTERNAL);
	CHECK(strstr(e.msg, "0001_init") != NULL);
	CHECK(strstr(e.msg, "audit_log") != NULL);
	/* Rolled back: none of its tables, no record, no open transaction. */
	CHECK(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = "
			    "'users'") == 0);
	CHECK(query_int(db, "SELECT count(*) FROM schema_migrations") == 0);
	CHECK(!db_in_transaction(db));
	CHECK(db_is_current(db, &e) == 0);
	CHECK(query_int(db, "PRAGMA foreign_keys") == 1);
	db_close(db);
}

static void
test_statements(void)
{
	static char many[200][32];
	/* Same text, different address: a different cache entry. */
	static const char twin_a[] = "SELECT 42";
	static const char twin_b[] = "SELECT 42";
	struct db_stmt *st, *st2, *v[200];
	struct err e = { 0 };
	struct db *db;
	int i;

	db = open_ok("stmt.db", 100);
	st = db_stmt(db, sql[Q_BIND], &e);
	CHECK(st != NULL);
	CHECK(db_stmt(db, sql[Q_BIND], &e) == st);
	CHECK(db_stmt(db, twin_a, &e) != NULL);
	CHECK(db_stmt(db, twin_b, &e) != db_stmt(db, twin_a, &e));

	/* Bindings are cleared and the statement reset on reuse. */
	db_bind_int(st, 1, 7);
	CHECK(db_row(db, st, &e) == 1);
	CHECK(db_col_int(st, 0) == 7);
	st2 = db_stmt(db, sql[Q_BIND], &e); /* abandoned mid-way */
	CHECK(st2 == st);
	CHECK(db_row(db, st, &e) == 1);
	CHECK(db_col_null(st, 0));
	CHECK(db_row(db, st, &e) == 0);

	/* Growth keeps every entry. */
	for (i = 0; i < 200; i++) {
		snprintf(many[i], sizeof(many[i]), "SELECT %d", i);
		v[i] = db_stmt(db, many[i], &e);
		CHECK(v[i] != NULL);
	}
	for (i = 0; i < 200; i++) {
		CHECK(db_stmt(db, many[i], &e) == v[i]);
		CHECK(db_row(db, v[i], &e) == 1);
		CHECK(db_col_int(v[i], 0) == i);
		CHECK(db_done(db, v[i], &e) == 0);
	}
	CHECK(db_stmt(db, sql[Q_BIND], &e) == st);

	/* Bad SQL is ERR_INTERNAL and is not cached. */
	CHECK(db_stmt(db, "SELEC 1", &e) == NULL);
	CHECK(e.code == ERR_INTERNAL);
	err_clear(&e);
	CHECK(db_stmt(db, "SELECT 1; SELECT 2", &e) == NULL);
	CHECK(e.code == ERR_INTERNAL);
	CHECK(db_stmt(db, "SELECT 1;  \n", &e) != NULL);

	/* Text by length and NULL text; each column's type. */
	CHECK(db_engine(db) == DB_SQLITE);
	st = db_stmt(db, sql[Q_TYPES], &e);
	CHECK(st != NULL);
	db_bind_textn(st, 1, "abcdef", 3);
	db_bind_text(st, 2, NULL);
	CHECK(db_row(db, st, &e) == 1);
	CHECK(db_col_type(st, 0) == DB_TEXT && db_col_len(st, 0) == 3);
	CHECK(strcmp(db_col_text(st, 0), "abc") == 0);
	CHECK(db_col_null(st, 1) && db_col_text(st, 1) == NULL);
	CHECK(db_col_type(st, 2) == DB_INT && db_col_int(st, 2) == 7);
	CHECK(db_col_type(st, 3) == DB_REAL);
	CHECK(db_row(db, st, &e) == 0);
	db_close(db);

	/* PostgreSQL is refused when it is not built in. */
	err_clear(&e);
	db = db_open("postgresql://u:secret@localhost/x", 100, &e);
	if (db == NULL) {
		CHECK(e.code != ERR_OK);
		CHECK(strstr(e.msg, "secret") == NULL);
	}
	db_close(db);
}

static void
test_rows_and_errors(void)
{
	struct err e = { 0 };
	struct db_stmt *st;
	struct db *db;
	const char *names[] = { "ann", "bob", "cy" };
	int i;

	db = open_ok("rows.db", 100);
	CHECK(db_migrate(db, NULL, &e) == 0);
	CHECK(insert_user(db, "ann", "1000", &e) == 0);
	CHECK(query_int(db, "SELECT max(id) FROM users") == 1);
	CHECK(db_changes(db) == 1);
	CHECK(insert_user(db, "bob", "1001", &e) == 0);
	CHECK(insert_user(db, "cy", "1002", &e) == 0);
	CHECK(query_int(db, "SELECT max(id) FROM users") == 3);

	/* RETURNING: the new id is a row; the insert is done by then. */
	st = db_stmt(db, sql[Q_RETURNING], &e);
	db_bind_text(st, 1, "eve");
	db_bind_text(st, 2, "eve@example.com");
	db_bind_text(st, 3, "1004");
	CHECK(db_row(db, st, &e) == 1);
	CHECK(db_col_int(st, 0) == 4);
	CHECK(db_done(db, st, &e) == 0);
	CHECK(db_changes(db) == 1);
	CHECK(user_count(db) == 4);
	CHECK(db_done(db, db_stmt(db, "DELETE FROM users WHERE id = 4", &e),
		  &e) == 0);

	st = db_stmt(db, sql[Q_USER_NAMES], &e);
	CHECK(st != NULL);
	for (i = 0; i < 3; i++) {
		CHECK(db_row(db, st, &e) == 1);
		CHECK(strcmp(db_col_text(st, 0), names[i]) == 0);
	}
	CHECK(db_row(db, st, &e) == 0);

	/* db_done on a query runs it out and resets. */
	st = db_stmt(db, sql[Q_USER_NAMES], &e);
	CHECK(db_done(db, st, &e) == 0);

	/* Unique: ERR_CONFLICT with SQLite's text, statement reset. */
	err_clear(&e);
	CHECK(insert_user(db, "ann", "1009", &e) == -1);
	CHECK(e.code == ERR_CONFLICT);
	CHECK(strstr(e.msg, "UNIQUE constraint failed: users.") != NULL);
	err_clear(&e);
	CHECK(insert_user(db, "dan", "1000", &e) == -1);
	CHECK(e.code == ERR_CONFLICT);
	CHECK(strstr(e.msg, "users.extension") != NULL);
	CHECK(user_count(db) == 3);

	/* CHECK and foreign key constraints are conflicts too. */
	err_clear(&e);
	CHECK(db_done(db, db_stmt(db, sql[Q_NOTIFY_BAD], &e), &e) == -1);
	CHECK(e.code == ERR_CONFLICT);
	err_clear(&e);
	st = db_stmt(db, sql[Q_CALL_INSERT], &e);
	db_bind_int(st, 1, 999);
	CHECK(db_done(db, st, &e) == -1);
	CHECK(e.code == ERR_CONFLICT);
	CHECK(strstr(e.msg, "FOREIGN KEY") != NULL);

	/* Anything else is internal. */
	err_clear(&e);
	st = db_stmt(db, sql[Q_OVERFLOW], &e);
	CHECK(st != NULL);
	CHECK(db_row(db, st, &e) == -1);
	CHECK(e.code == ERR_INTERNAL);
	CHECK(strstr(e.msg, "integer overflow") != NULL);

	/* The error leaves the connection usable. */
	CHECK(insert_user(db, "dan", "1003", &e) == 0);
	CHECK(user_count(db) == 4);
	db_close(db);
}

static void
test_transactions(void)
{
	struct err e = { 0 };
	struct db *db, *other;

	db = open_ok("tx.db", 100);
	CHECK(db_migrate(db, NULL, &e) == 0);

	/* Rollback leaves nothing. */
	CHECK(db_begin(db, &e) == 0);
	CHECK(db_in_transaction(db));
	CHECK(insert_user(db, "ann", "1000", &e) == 0);
	CHECK(insert_user(db, "bob", "1001", &e) == 0);
	CHECK(user_count(db) == 2);
	db_rollback(db);
	CHECK(!db_in_transaction(db));
	CHECK(user_count(db) == 0);
	db_rollback(db); /* outside a transaction: harmless */

	/* A conflict mid-transaction, then rollback: nothing of it stays. */
	CHECK(db_begin(db, &e) == 0);
	CHECK(insert_user(db, "ann", "1000", &e) == 0);
	CHECK(insert_user(db, "ann", "1001", &e) == -1);
	CHECK(e.code == ERR_CONFLICT);
	db_rollback(db);
	CHECK(user_count(db) == 0);

	/* Commit keeps, and another connection sees it. */
	CHECK(db_begin(db, &e) == 0);
	CHECK(insert_user(db, "ann", "1000", &e) == 0);
	CHECK(db_commit(db, &e) == 0);
	CHECK(!db_in_transaction(db));
	other = open_ok("tx.db", 50);
	CHECK(user_count(other) == 1);

	/* Writers exclude each other from BEGIN IMMEDIATE on: ERR_BUSY. */
	CHECK(db_begin(db, &e) == 0);
	err_clear(&e);
	CHECK(db_begin(other, &e) == -1);
	CHECK(e.code == ERR_BUSY);
	CHECK(!db_in_transaction(other));
	err_clear(&e);
	CHECK(insert_user(other, "bob", "1001", &e) == -1);
	CHECK(e.code == ERR_BUSY);
	/* WAL: readers are not blocked by the writer. */
	CHECK(user_count(other) == 1);
	db_rollback(db);
	CHECK(db_begin(other, &e) == 0);
	CHECK(insert_user(other, "bob", "1001", &e) == 0);
	CHECK(db_commit(other, &e) == 0);
	CHECK(user_count(db) == 2);

	/* A nested BEGIN fails; the outer transaction stays usable. */
	CHECK(db_begin(db, &e) == 0);
	err_clear(&e);
	CHECK(db_begin(db, &e) == -1);
	CHECK(e.code == ERR_INTERNAL);
	CHECK(db_commit(db, &e) == 0);
	CHECK(db_commit(db, &e) == -1); /* none open */

	db_close(other);
	db_close(db);
}

static void
test_now(void)
{
	char a[40], b[40], small[8];
	int y, mo, d, h, mi, s, us;
	char t, z;

	db_now(a, sizeof(a));
	CHECK(strlen(a) == 27);
	CHECK(sscanf(a, "%4d-%2d-%2d%c%2d:%2d:%2d.%6d%c", &y, &mo, &d, &t, &h,
		  &mi, &s, &us, &z) == 9);
	CHECK(t == 'T' && z == 'Z');
	CHECK(y >= 2024 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31);
	CHECK(a[4] == '-' && a[7] == '-' && a[13] == ':' && a[19] == '.');
	db_now(b, sizeof(b));
	CHECK(strcmp(a, b) <= 0);
	db_now(small, sizeof(small));
	CHECK(strlen(small) == sizeof(small) - 1);
}

/* The stored form round-trips, and nothing else parses. */
static void
test_time_parse(void)
{
	char buf[40];
	int64_t us = 0, now = db_now_us();

	db_time_format(now, buf, sizeof(buf));
	CHECK(db_time_parse(buf, &us) == 0 && us == now);
	CHECK(db_time_parse("1970-01-01T00:00:01Z", &us) == 0 && us == 1000000);
	CHECK(db_time_parse("2026-11-21T06:07:28.5Z", &us) == 0 &&
	      us % 1000000 == 500000);
	CHECK(db_time_parse("2026-11-21T06:07:28.1234567Z", &us) == 0 &&
	      us % 1000000 == 123456);
	us = 42;
	CHECK(db_time_parse("2026-11-21 06:07:28", &us) == -1 && us == 42);
	CHECK(db_time_parse("2026-11-21T06:07:28+03:00", &us) == -1);
	CHECK(db_time_parse("2026-11-21T06:07:28Zjunk", &us) == -1);
	CHECK(db_time_parse("", &us) == -1 && us == 42);
}

int
main(void)
{
	char cmd[128];

	snprintf(dir, sizeof(dir), "/tmp/db_test.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_open_and_migrate();
	test_existing_not_wal();
	test_failed_migration();
	test_statements();
	test_rows_and_errors();
	test_transactions();
	test_now();
	test_time_parse();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	printf("db: %d checks passed\n", checks);
	return 0;
}
