#ifndef LIB_DB_ENGINE_H
#define LIB_DB_ENGINE_H

/*
 * What an engine gives lib/db.c. Only lib/db*.c include this: the rest of
 * the project sees lib/db.h and nothing of sqlite3.h or libpq-fe.h.
 * db.c keeps the statement cache, the migrations and the error texts; an
 * engine keeps a connection ("conn") and its statements.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/db.h"

struct err;

/* Every engine's statement starts with this, so db.c finds the engine. */
struct db_stmt {
	const struct db_ops *ops;
};

struct db_ops {
	enum db_engine engine;
	/* NULL and e set on failure. */
	void *(*open)(const char *target, int busy_ms, struct err *e);
	void (*close)(void *conn);
	void (*set_busy)(void *conn, int busy_ms);

	/* One statement of sql (with ?N parameters); NULL and e set. */
	struct db_stmt *(*prepare)(void *conn, const char *sql,
	    struct err *e);
	void (*finalize)(struct db_stmt *st);
	/* Drop rows; with clear, bindings too. */
	void (*reset)(struct db_stmt *st, bool clear);
	void (*bind_int)(struct db_stmt *st, int i, int64_t v);
	void (*bind_text)(struct db_stmt *st, int i, const char *s,
	    size_t len);
	void (*bind_null)(struct db_stmt *st, int i);
	/* 1 row, 0 done, -1 error; reset after 0 and -1; err codes as
	 * db_row says. On 0 the rows changed are what changes returns. */
	int (*step)(void *conn, struct db_stmt *st, struct err *e);
	int (*changes)(void *conn);
	enum db_type (*col_type)(struct db_stmt *st, int i);
	int64_t (*col_int)(struct db_stmt *st, int i);
	const char *(*col_text)(struct db_stmt *st, int i);
	size_t (*col_len)(struct db_stmt *st, int i);

	/* A script with no parameters or rows. */
	int (*exec)(void *conn, const char *script, struct err *e);
	/* write: serialized against every other writer (see db_begin). */
	int (*begin)(void *conn, bool write, struct err *e);
	bool (*in_transaction)(void *conn);

	/* 1 when the table exists, 0 not, -1 error. */
	int (*has_table)(void *conn, const char *name, struct err *e);
	/* Around the migrations (SQLite turns foreign keys off, see db.c),
	 * and after each one's script, inside its transaction. */
	int (*migrations_begin)(void *conn, struct err *e);
	void (*migrations_end)(void *conn, bool ok);
	int (*migration_check)(void *conn, struct err *e);
};

extern const struct db_ops db_sqlite_ops;
extern const struct db_ops db_pg_ops;

/*
 * As sql/embed.sh declares it in $(B)/gen/migrations.c: pg is the
 * sql/pg/ variant of the same file, NULL when sql works on both.
 */
struct db_migration {
	const char *name;
	const char *sql;
	const char *pg;
};
extern const struct db_migration db_migrations[];
extern const size_t db_nmigrations;

#endif
