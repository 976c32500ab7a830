#ifndef LIB_DB_H
#define LIB_DB_H

#include <stdint.h>

struct err;
struct sqlite3;
struct sqlite3_stmt;

/*
 * The database: one SQLite connection with its pragmas and a cache of
 * prepared statements keyed by the SQL text's address, so a program's static
 * SQL table is prepared once and reused across requests.
 */
struct db;

/*
 * Open path with foreign_keys=ON, busy_timeout (busy_ms), synchronous=NORMAL.
 * WAL is switched on when the file is created. NULL on failure (e says why).
 */
struct db *db_open(const char *path, int busy_ms, struct err *e);

/*
 * db_open, then make sure every compiled-in migration is applied: a program
 * serving an older schema would fail on its first query instead of at start.
 * ERR_INTERNAL naming the command to run when it is not.
 */
struct db *db_open_current(const char *path, int busy_ms, struct err *e);

/* Change how long a statement waits for a lock before ERR_BUSY. */
void db_set_busy(struct db *db, int busy_ms);

/* Finalize cached statements and close; NULL is fine. */
void db_close(struct db *db);

/* The raw handle, for the few calls db does not wrap. */
struct sqlite3 *db_handle(struct db *db);

/*
 * The cached statement for sql (compared by pointer, so pass a string from a
 * static table), prepared on first use, reset and with bindings cleared.
 * NULL on failure (ERR_INTERNAL).
 */
struct sqlite3_stmt *db_stmt(struct db *db, const char *sql, struct err *e);

/*
 * Step st once: 1 when a row is ready, 0 when done (st is reset), -1 on
 * error (st is reset; SQLITE_BUSY maps to ERR_BUSY, a constraint to
 * ERR_CONFLICT, anything else to ERR_INTERNAL).
 */
int db_row(struct db *db, struct sqlite3_stmt *st, struct err *e);

/* Step st to completion and reset it. 0, or -1 as db_row. */
int db_done(struct db *db, struct sqlite3_stmt *st, struct err *e);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. Rollback never fails visibly. */
int db_begin(struct db *db, struct err *e);
/* A deferred BEGIN: the reads until the next COMMIT/ROLLBACK see one
 * snapshot and take the WAL read lock once instead of per statement. */
int db_begin_read(struct db *db, struct err *e);
int db_commit(struct db *db, struct err *e);
void db_rollback(struct db *db);

int64_t db_last_id(struct db *db);
int db_changes(struct db *db);

/*
 * Apply every migration not yet recorded in schema_migrations, each in its
 * own transaction, in name order. The migrations are compiled in from sql/.
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
