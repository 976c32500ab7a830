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

/*
 * The PostgreSQL engine against a real server: SB_TEST_DATABASE_URL names
 * an empty database to use (tests/run.sh starts a throwaway cluster for
 * it); without it the checks are skipped. The schema is dropped and made
 * again first, so the database need not be fresh.
 */

enum q {
	Q_RESET_SCHEMA,
	Q_USER_INSERT,
	Q_USER_COUNT,
	Q_USER_RENAME,
	Q_NOTIFY_BAD,
	Q_QUOTED,
	Q_BARE,
	Q_TYPES,
	Q_PID,
	Q_KILL,
	Q_MISSING,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_RESET_SCHEMA] = "DROP SCHEMA public CASCADE; CREATE SCHEMA public",
	[Q_USER_INSERT] = "INSERT INTO users (username, email, password, "
			  "extension) VALUES (?1, ?2, 'x', ?3) RETURNING id",
	[Q_USER_COUNT] = "SELECT count(*) FROM users",
	[Q_USER_RENAME] = "UPDATE users SET status = ?1",
	[Q_NOTIFY_BAD] = "INSERT INTO notify (id, created_at, target_kind, "
			 "payload) VALUES (1000000, 't', 'nobody', '{}')",
	/* Not parameters: in a literal, an identifier and comments. */
	[Q_QUOTED] = "SELECT '?1 ''?2''' AS \"a?3\", -- ?4\n"
		     "CAST(?1 AS text) /* ?5 */",
	[Q_BARE] = "SELECT CAST(? AS integer) + CAST(? AS integer)",
	[Q_TYPES] = "SELECT count(*), true, false, 1.5, 'x', NULL, "
		    "CAST(7 AS smallint)",
	[Q_PID] = "SELECT pg_backend_pid()",
	[Q_KILL] = "SELECT pg_terminate_backend(CAST(?1 AS integer), 5000)",
	[Q_MISSING] = "SELECT * FROM no_such_table",
};

static const char *url;

static struct db *
open_ok(int busy_ms)
{
	struct err e = { 0 };
	struct db *db;

	if ((db = db_open(url, busy_ms, &e)) == NULL)
		fprintf(stderr, "db_open: %s\n", e.msg);
	CHECK(db != NULL);
	CHECK(db_engine(db) == DB_POSTGRES);
	return db;
}

static int64_t
one_int(struct db *db, enum q q)
{
	struct err e = { 0 };
	struct db_stmt *st;
	int64_t v;
	int rc;

	CHECK((st = db_stmt(db, sql[q], &e)) != NULL);
	if ((rc = db_row(db, st, &e)) != 1)
		fprintf(stderr, "%s: %s\n", sql[q], e.msg);
	CHECK(rc == 1);
	v = db_col_int(st, 0);
	CHECK(db_row(db, st, &e) == 0);
	return v;
}

static int64_t
user_add(struct db *db, const char *name, struct err *e)
{
	char email[64];
	struct db_stmt *st;
	int64_t id;

	snprintf(email, sizeof(email), "%s@example.test", name);
	if ((st = db_stmt(db, sql[Q_USER_INSERT], e)) == NULL)
		return -1;
	db_bind_text(st, 1, name);
	db_bind_text(st, 2, email);
	db_bind_text(st, 3, name);
	if (db_row(db, st, e) != 1)
		return -1;
	id = db_col_int(st, 0);
	db_reset(st);
	return id;
}

static void
test_migrate(void)
{
	struct err e = { 0 };
	struct db *db = open_ok(1000);
	int applied = -1;

	CHECK(db_exec(db, sql[Q_RESET_SCHEMA], &e) == 0);
	CHECK(db_is_current(db, &e) == 0);
	CHECK(db_migrate(db, &applied, &e) == 0);
	CHECK(applied == (int)db_nmigrations);
	CHECK(db_migrate(db, &applied, &e) == 0);
	CHECK(applied == 0);
	CHECK(db_is_current(db, &e) == 1);
	db_close(db);
	CHECK((db = db_open_current(url, 1000, &e)) != NULL);
	db_close(db);
}

static void
test_statements(void)
{
	struct err e = { 0 };
	struct db *db = open_ok(1000);
	struct db_stmt *st;
	int64_t a, b;

	CHECK((a = user_add(db, "ann", &e)) > 0);
	CHECK((b = user_add(db, "bob", &e)) == a + 1);
	CHECK(one_int(db, Q_USER_COUNT) == 2);

	/* Constraints are ERR_CONFLICT, in SQLite's words (the value that
	 * clashed left out): unique, then check. */
	CHECK(user_add(db, "ann", &e) == -1);
	CHECK(e.code == ERR_CONFLICT);
	CHECK(strcmp(e.msg, "UNIQUE constraint failed: users.username") == 0);
	CHECK((st = db_stmt(db, sql[Q_NOTIFY_BAD], &e)) != NULL);
	CHECK(db_done(db, st, &e) == -1);
	CHECK(e.code == ERR_CONFLICT);
	CHECK(strncmp(e.msg, "CHECK constraint failed: ", 25) == 0);
	CHECK((st = db_stmt(db, sql[Q_MISSING], &e)) == NULL);
	CHECK(e.code == ERR_INTERNAL);

	CHECK((st = db_stmt(db, sql[Q_USER_RENAME], &e)) != NULL);
	db_bind_text(st, 1, "away");
	CHECK(db_done(db, st, &e) == 0);
	CHECK(db_changes(db) == 2);

	/* ?N inside quotes and comments stays; the one parameter is 1. */
	CHECK((st = db_stmt(db, sql[Q_QUOTED], &e)) != NULL);
	db_bind_textn(st, 1, "value-not-this", 5);
	CHECK(db_row(db, st, &e) == 1);
	CHECK(strcmp(db_col_text(st, 0), "?1 '?2'") == 0);
	CHECK(strcmp(db_col_text(st, 1), "value") == 0);
	CHECK(db_col_len(st, 1) == 5);
	CHECK(db_row(db, st, &e) == 0);
	CHECK((st = db_stmt(db, sql[Q_BARE], &e)) != NULL);
	db_bind_int(st, 1, 40);
	db_bind_int(st, 2, 2);
	CHECK(db_row(db, st, &e) == 1);
	CHECK(db_col_int(st, 0) == 42);
	db_reset(st);

	CHECK((st = db_stmt(db, sql[Q_TYPES], &e)) != NULL);
	CHECK(db_row(db, st, &e) == 1);
	CHECK(db_col_type(st, 0) == DB_INT && db_col_int(st, 0) == 1);
	CHECK(db_col_type(st, 1) == DB_INT && db_col_int(st, 1) == 1);
	CHECK(strcmp(db_col_text(st, 1), "1") == 0);
	CHECK(db_col_type(st, 2) == DB_INT && db_col_int(st, 2) == 0);
	CHECK(db_col_type(st, 3) == DB_REAL && db_col_int(st, 3) == 1);
	CHECK(db_col_type(st, 4) == DB_TEXT);
	CHECK(db_col_type(st, 5) == DB_NULL && db_col_null(st, 5));
	CHECK(db_col_text(st, 5) == NULL && db_col_int(st, 5) == 0);
	CHECK(db_col_type(st, 6) == DB_INT && db_col_int(st, 6) == 7);
	CHECK(db_row(db, st, &e) == 0);
	db_close(db);
}

/* Writers wait for each other (the advisory lock), readers for nobody. */
static void
test_transactions(void)
{
	struct err e = { 0 };
	struct db *w1 = open_ok(1000), *w2 = open_ok(100);
	int64_t n;

	CHECK(db_begin(w1, &e) == 0);
	CHECK(db_in_transaction(w1));
	CHECK(user_add(w1, "cat", &e) > 0);
	CHECK(db_begin(w2, &e) == -1);
	CHECK(e.code == ERR_BUSY);
	CHECK(!db_in_transaction(w2));
	/* A read snapshot sees what was committed at its first read. */
	CHECK(db_begin_read(w2, &e) == 0);
	n = one_int(w2, Q_USER_COUNT);
	CHECK(db_commit(w1, &e) == 0);
	CHECK(!db_in_transaction(w1));
	CHECK(one_int(w2, Q_USER_COUNT) == n);
	CHECK(db_commit(w2, &e) == 0);
	CHECK(one_int(w2, Q_USER_COUNT) == n + 1);
	/* A read transaction refuses writes. */
	CHECK(db_begin_read(w2, &e) == 0);
	CHECK(user_add(w2, "dan", &e) == -1);
	CHECK(e.code == ERR_INTERNAL);
	/* Its COMMIT is refused, not a silent rollback. */
	CHECK(db_commit(w2, &e) == -1);
	CHECK(!db_in_transaction(w2));
	CHECK(db_begin(w2, &e) == 0);
	db_rollback(w2);
	db_rollback(w2);
	CHECK(one_int(w2, Q_USER_COUNT) == n + 1);
	db_close(w1);
	db_close(w2);
}

static void
kill_backend(struct db *killer, struct db *victim)
{
	struct err e = { 0 };
	struct db_stmt *st;

	CHECK((st = db_stmt(killer, sql[Q_KILL], &e)) != NULL);
	db_bind_int(st, 1, one_int(victim, Q_PID));
	CHECK(db_row(killer, st, &e) == 1);
	CHECK(db_col_int(st, 0) == 1);
	db_reset(st);
}

/* A connection the server dropped is reset by the next statement, and the
 * cached statements prepare again; inside a transaction, the transaction
 * is lost (ERR_BUSY until the caller's rollback). */
static void
test_lost_connection(void)
{
	struct err e = { 0 };
	struct db *a = open_ok(1000), *b = open_ok(1000);
	int64_t n = one_int(a, Q_USER_COUNT), pid = one_int(a, Q_PID);

	kill_backend(b, a);
	CHECK(one_int(a, Q_USER_COUNT) == n);
	CHECK(one_int(a, Q_PID) != pid);

	CHECK(db_begin(a, &e) == 0);
	CHECK(user_add(a, "eve", &e) > 0);
	kill_backend(b, a);
	CHECK(user_add(a, "fay", &e) == -1);
	CHECK(e.code == ERR_BUSY);
	CHECK(db_in_transaction(a));
	CHECK(user_add(a, "fay", &e) == -1);
	CHECK(e.code == ERR_BUSY);
	db_rollback(a);
	CHECK(!db_in_transaction(a));
	CHECK(one_int(a, Q_USER_COUNT) == n);
	db_close(a);
	db_close(b);
}

/* No password in what a failed open says; a server that is not there is
 * ERR_BUSY (the programs answer 503 until it is back). */
static void
test_open_errors(void)
{
	const char *host = strstr(url, "host=");
	struct err e = { 0 };
	char bad[512];

	CHECK(host != NULL);
	snprintf(bad, sizeof(bad), "postgresql://who:pw-not-shown@/no_db?%s",
	    host);
	CHECK(db_open(bad, 100, &e) == NULL);
	CHECK(strstr(e.msg, "pw-not-shown") == NULL);
	CHECK(db_open("postgresql:///x?host=/nonexistent", 100, &e) == NULL);
	CHECK(e.code == ERR_BUSY);
}

int
main(void)
{
	if ((url = getenv("SB_TEST_DATABASE_URL")) == NULL || *url == '\0') {
		printf("db_pg: skipped (SB_TEST_DATABASE_URL not set)\n");
		return 0;
	}
	test_migrate();
	test_statements();
	test_transactions();
	test_lost_connection();
	test_open_errors();
	printf("db_pg: %d checks passed\n", checks);
	return 0;
}
