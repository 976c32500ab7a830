#ifndef LIB_DB_H
#define LIB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

/*
 * The database, whichever engine is underneath: SQLite (a file, the
 * embedded default) or PostgreSQL (libpq), chosen by db_open's target.
 * Nothing outside lib/db*.c knows which one it is talking to, so the SQL
 * the programs send is the subset both engines read the same way:
 * parameters as ?1..?N, "INSERT ... RETURNING id" instead of a last-row-id
 * call, ON CONFLICT instead of INSERT OR, lower() instead of COLLATE
 * NOCASE, times as the text db_now produces, no engine functions. And, as
 * PostgreSQL infers each parameter's type from where it stands:
 * CAST(?N AS text) where nothing fixes it (CASE ?N, ?N || '...', ?N IS
 * NULL alone); an alias on every subquery in FROM; CROSS JOIN with its
 * condition in WHERE (no ON); an upsert's own columns qualified by the
 * table; no rowid, sqlite_master or sqlite_sequence. A statement that
 * fails inside a PostgreSQL transaction ends it: roll back, do not go on.
 */
struct db;

/*
 * A prepared statement owned by its db and cached by the SQL text's
 * address, so a program's static SQL table is prepared once and reused
 * across requests. Never freed by the caller.
 */
struct db_stmt;

enum db_engine {
	DB_SQLITE,
	DB_POSTGRES,
};

/* A column's type in the current row. */
enum db_type {
	DB_NULL,
	DB_INT,
	DB_REAL,
	DB_TEXT,
};

/*
 * Open target: a "postgresql://" or "postgres://" URL (libpq's connection
 * URI) selects PostgreSQL; anything else is the path of a SQLite file,
 * created with WAL when new. busy_ms bounds how long a statement waits for
 * a lock before it fails with ERR_BUSY. NULL on failure (e says why, with
 * no password in it).
 */
struct db *db_open(const char *target, int busy_ms, struct err *e);

/*
 * db_open, then make sure every compiled-in migration is applied: a program
 * serving an older schema would fail on its first query instead of at start.
 * ERR_INTERNAL naming the command to run when it is not.
 */
struct db *db_open_current(const char *target, int busy_ms, struct err *e);

/* Which engine db is. */
enum db_engine db_engine(const struct db *db);

/* Change how long a statement waits for a lock before ERR_BUSY. */
void db_set_busy(struct db *db, int busy_ms);

/* Finalize cached statements and close; NULL is fine. */
void db_close(struct db *db);

/*
 * The cached statement for sql (compared by pointer, so pass a string from a
 * static table), prepared on first use, reset and with bindings cleared.
 * NULL on failure (ERR_INTERNAL, or ERR_BUSY when the server is away).
 */
struct db_stmt *db_stmt(struct db *db, const char *sql, struct err *e);

/*
 * Bind parameter i (1-based, ?i in the SQL). Text is not copied: it must
 * stay valid until the statement's first db_row or db_done has returned.
 */
void db_bind_int(struct db_stmt *st, int i, int64_t v);
void db_bind_text(struct db_stmt *st, int i, const char *s);
void db_bind_textn(struct db_stmt *st, int i, const char *s, size_t len);
void db_bind_null(struct db_stmt *st, int i);

/*
 * Step st once: 1 when a row is ready, 0 when done (st is reset), -1 on
 * error (st is reset). Errors map to err codes: a lock or serialization
 * timeout and a lost server to ERR_BUSY, a constraint to ERR_CONFLICT,
 * anything else to ERR_INTERNAL.
 */
int db_row(struct db *db, struct db_stmt *st, struct err *e);

/* Step st to completion and reset it. 0, or -1 as db_row. */
int db_done(struct db *db, struct db_stmt *st, struct err *e);

/* Drop st's remaining rows (its column values go with them). */
void db_reset(struct db_stmt *st);

/*
 * Column i (0-based) of the current row. Text is valid until the next
 * db_row, db_reset or db_stmt of the same statement; NULL for SQL NULL.
 * db_col_int of a boolean is 0 or 1, of NULL 0.
 */
enum db_type db_col_type(struct db_stmt *st, int i);
bool db_col_null(struct db_stmt *st, int i);
int64_t db_col_int(struct db_stmt *st, int i);
const char *db_col_text(struct db_stmt *st, int i);
size_t db_col_len(struct db_stmt *st, int i);
/* A flag column (is_online): a non-zero number, or the text "true" or
 * "1" as rows imported from elsewhere may hold it. */
bool db_col_bool(struct db_stmt *st, int i);

/* Rows changed by the statement db_done last completed. */
int db_changes(struct db *db);

/*
 * A write transaction. Writers are serialized on both engines (SQLite's
 * BEGIN IMMEDIATE; on PostgreSQL a transaction-scoped advisory lock taken
 * first), so a check-then-write inside one is safe and the notify stream's
 * ids commit in id order.
 */
int db_begin(struct db *db, struct err *e);
/* A read-only transaction: the reads until the next COMMIT/ROLLBACK see
 * one snapshot. */
int db_begin_read(struct db *db, struct err *e);
int db_commit(struct db *db, struct err *e);
/* Rollback never fails visibly; a no-op outside a transaction. */
void db_rollback(struct db *db);
bool db_in_transaction(struct db *db);

/*
 * Run a script of one or more statements with no parameters and no rows
 * (schema changes, test fixtures). Not for anything built from input.
 */
int db_exec(struct db *db, const char *script, struct err *e);

/*
 * Apply every migration not yet recorded in schema_migrations, each in its
 * own transaction, in name order. The migrations are compiled in from sql/
 * (and sql/pg/ for the PostgreSQL variants of the files that must differ).
 * *applied (may be NULL) gets how many ran. On failure the failing file's
 * transaction is rolled back and the earlier ones stay.
 */
int db_migrate(struct db *db, int *applied, struct err *e);

/* Whether every compiled-in migration is applied (0 no, 1 yes, -1 error). */
int db_is_current(struct db *db, struct err *e);

/* Now as stored in the database: "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC). */
void db_now(char *buf, unsigned size);

/* The wall clock in unix microseconds. */
int64_t db_now_us(void);

/* Unix microseconds in the db_now form. */
void db_time_format(int64_t us, char *buf, unsigned size);

/* The db_now form ("YYYY-MM-DDTHH:MM:SS[.ffffff]Z") to unix microseconds;
 * -1 when s is not in that form (*us untouched). */
int db_time_parse(const char *s, int64_t *us);

#endif
