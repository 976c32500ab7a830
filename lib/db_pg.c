#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lib/db_engine.h"
#include "lib/err.h"

/*
 * The PostgreSQL engine: one libpq connection per db, each statement a
 * named server-side prepared statement (prepared once per connection,
 * executed with its parameters as text and their types inferred by the
 * server, rows fetched whole).
 *
 * A lost server is not fatal: the next statement resets the connection
 * once, quickly, and the statements prepare again on their next use (each
 * one remembers the connection generation it was prepared on). While the
 * server is away every statement fails with ERR_BUSY, which the HTTP layer
 * answers with 503, so the programs recover by themselves when it is back.
 */

/*
 * The advisory lock every writer takes first (db_begin): writers are
 * serialized as on SQLite. Check-then-write logic stays correct, and the
 * event stream keeps commit order: a notify id is drawn (from
 * notify_stream, see lib/notify.c) only by the transaction holding the
 * lock, which commits or rolls back before the next holder draws its own,
 * so a reader that has seen id N can never later see a smaller id appear.
 * The key stands for "switchboard writers" (an arbitrary 64-bit constant;
 * it only has to be the same in every program, and tests/harness.py holds
 * it to take the lock as a writer would).
 */
#define PG_WRITERS_KEY "7526366843920372530"

/* Row types by OID (catalog/pg_type.dat): what db_col_type reports. */
enum {
	PG_BOOL = 16,
	PG_INT8 = 20,
	PG_INT2 = 21,
	PG_INT4 = 23,
	PG_OID = 26,
	PG_FLOAT4 = 700,
	PG_FLOAT8 = 701,
	PG_NUMERIC = 1700,
};

/* Seconds a (re)connection may take: a server that is away fails fast. */
#define PG_CONNECT_TIMEOUT "3"

struct pg_conn {
	PGconn *c;
	uint64_t gen;    /* bumped on every successful (re)connection */
	unsigned nnames; /* names given to prepared statements */
	int busy_ms;     /* lock_timeout, applied on each connection */
	int changes;     /* rows the last completed statement changed */
	bool in_tx;      /* in a transaction after the last statement */
	/* The connection went away inside a transaction: statements fail
	 * until the caller's ROLLBACK, so none runs outside the transaction
	 * it was written for on the new connection. */
	bool lost_tx;
};

struct pg_stmt {
	struct db_stmt base; /* first: db.c sees a struct db_stmt * */
	struct pg_conn *conn;
	char *sql; /* the text with $N parameters */
	char name[24];
	uint64_t gen; /* conn->gen it was prepared on, 0: not yet */
	int nparams;
	char **vals;   /* owned copies; NULL binds NULL */
	bool oom;      /* a bind could not copy its value */
	PGresult *res; /* the rows of the current execution */
	int row;       /* the current row of res */
	int nrows;
};

static struct pg_stmt *
pgs(struct db_stmt *st)
{
	return (struct pg_stmt *)st;
}

/* The first line of libpq's message, without its trailing newline. */
static const char *
pg_msg(const char *m, char *buf, size_t size)
{
	size_t n = strcspn(m, "\n");

	if (n >= size)
		n = size - 1;
	memcpy(buf, m, n);
	buf[n] = '\0';
	return buf;
}

/*
 * A constraint failure in the words SQLite uses ("UNIQUE constraint failed:
 * users.email"), so that callers that tell the constraints apart read one
 * text whatever the engine. The unique key's columns come from the detail
 * ("Key (email)=(...) already exists."); its value is left out.
 */
static int
pg_conflict(const PGresult *res, const char *state, const char *msg,
    struct err *e)
{
	const char *table, *col, *detail, *k, *end;

	table = PQresultErrorField(res, PG_DIAG_TABLE_NAME);
	col = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	if (table == NULL)
		table = "?";
	if (strcmp(state, "23505") == 0 && detail != NULL &&
	    (k = strstr(detail, "Key (")) != NULL &&
	    (end = strstr(k, ")=(")) != NULL)
		return err_set(e, ERR_CONFLICT,
		    "UNIQUE constraint failed: %s.%.*s", table,
		    (int)(end - k - 5), k + 5);
	if (strcmp(state, "23502") == 0 && col != NULL)
		return err_set(e, ERR_CONFLICT,
		    "NOT NULL constraint failed: %s.%s", table, col);
	if (strcmp(state, "23503") == 0)
		return err_set(e, ERR_CONFLICT,
		    "FOREIGN KEY constraint failed");
	if (strcmp(state, "23514") == 0 &&
	    (k = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME)) != NULL)
		return err_set(e, ERR_CONFLICT, "CHECK constraint failed: %s",
		    k);
	return err_set(e, ERR_CONFLICT, "%s", msg);
}

/*
 * Map a failed result (or a connection that went away) to an err code.
 * Lock and serialization timeouts, cancels and a lost server are ERR_BUSY:
 * the request may succeed when retried. Integrity violations (class 23)
 * are ERR_CONFLICT. what names the statement for the log; the server's
 * messages never carry the connection's password.
 */
static int
pg_fail(struct pg_conn *pc, const PGresult *res, const char *what,
    struct err *e)
{
	const char *state = NULL, *m;
	char msg[200];

	if (res != NULL)
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	/* The server's own sentence, without "ERROR:  " before it. */
	if (res == NULL ||
	    (m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) == NULL)
		m = res != NULL && *PQresultErrorMessage(res) != '\0'
			? PQresultErrorMessage(res)
			: PQerrorMessage(pc->c);
	pg_msg(m, msg, sizeof(msg));
	if (PQstatus(pc->c) != CONNECTION_OK ||
	    (state != NULL && strncmp(state, "08", 2) == 0))
		return err_set(e, ERR_BUSY, "database unavailable: %s", msg);
	if (state == NULL)
		return err_set(e, ERR_INTERNAL, "%s in '%s'", msg, what);
	if (strcmp(state, "55P03") == 0 || strcmp(state, "40001") == 0 ||
	    strcmp(state, "40P01") == 0 || strcmp(state, "57014") == 0)
		return err_set(e, ERR_BUSY, "database is busy: %s", msg);
	/* Shutting down or starting up (57P01..57P03): away for now. */
	if (strncmp(state, "57P", 3) == 0)
		return err_set(e, ERR_BUSY, "database unavailable: %s", msg);
	if (strncmp(state, "23", 2) == 0)
		return pg_conflict(res, state, msg, e);
	/* The reason first: the statement may not fit after it. */
	return err_set(e, ERR_INTERNAL, "%s (%s) in '%s'", msg, state, what);
}

/* Whether a result is a success (commands or rows). */
static bool
pg_ok(const PGresult *res)
{
	ExecStatusType s = PQresultStatus(res);

	return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ||
	       s == PGRES_EMPTY_QUERY;
}

/* After each statement that reached the server: whether a transaction is
 * open (kept while the connection is bad, for pg_ready). */
static void
pg_after(struct pg_conn *pc)
{
	switch (PQtransactionStatus(pc->c)) {
	case PQTRANS_INTRANS:
	case PQTRANS_INERROR:
		pc->in_tx = true;
		break;
	case PQTRANS_IDLE:
		pc->in_tx = false;
		break;
	default:
		break;
	}
}

/*
 * A statement of ours with no parameters (a constant text, never input),
 * its result dropped. -1 and e set on failure.
 */
static int
pg_run(struct pg_conn *pc, const char *text, struct err *e)
{
	PGresult *res;
	int rc = 0;

	res = PQexec(pc->c, text);
	if (res == NULL || !pg_ok(res))
		rc = pg_fail(pc, res, text, e);
	pg_after(pc);
	PQclear(res);
	return rc;
}

/*
 * lock_timeout is how long a statement waits for a lock (a row, a table,
 * the writers' advisory lock) before 55P03, our ERR_BUSY. 0 would mean no
 * limit, so the shortest wait is 1 ms. A parameter, so no SQL is built.
 */
static int
pg_apply_busy(struct pg_conn *pc, struct err *e)
{
	const char *text = "SELECT set_config('lock_timeout', $1, false)";
	char ms[24];
	const char *vals[1] = { ms };
	PGresult *res;
	int rc = 0;

	snprintf(ms, sizeof(ms), "%d", pc->busy_ms > 0 ? pc->busy_ms : 1);
	res = PQexecParams(pc->c, text, 1, NULL, vals, NULL, NULL, 0);
	if (res == NULL || !pg_ok(res))
		rc = pg_fail(pc, res, text, e);
	PQclear(res);
	return rc;
}

/* What every new connection is given; called after connect and reset. */
static int
pg_setup(struct pg_conn *pc, struct err *e)
{
	pc->in_tx = false;
	if (pg_apply_busy(pc, e) == -1)
		return -1;
	pc->gen++;
	return 0;
}

/*
 * Whether the server has closed an idle connection (a restart sends a
 * FATAL message and hangs up): then libpq marks it bad here, before a
 * statement is sent on it and lost. Cheap: one poll with no wait.
 */
static void
pg_probe(struct pg_conn *pc)
{
	struct pollfd p;
	PGresult *res;
	int i;

	/* The goodbye message and the end of the stream may come in two
	 * reads: a few rounds, while there is something to read. */
	for (i = 0; i < 4; i++) {
		if (PQstatus(pc->c) != CONNECTION_OK ||
		    PQtransactionStatus(pc->c) != PQTRANS_IDLE)
			return;
		p.fd = PQsocket(pc->c);
		p.events = POLLIN;
		p.revents = 0;
		if (p.fd < 0 || poll(&p, 1, 0) != 1)
			return;
		if (PQconsumeInput(pc->c) == 0)
			return; /* the connection is now CONNECTION_BAD */
		while (!PQisBusy(pc->c) && (res = PQgetResult(pc->c)) != NULL)
			PQclear(res);
	}
}

static bool
pg_is_rollback(const char *sql)
{
	return strncmp(sql, "ROLLBACK", 8) == 0;
}

/*
 * Before each statement (sql, for the lost transaction's ROLLBACK): a
 * connection found lost is reset, once, and set up again. 0 to go on, 1
 * when sql is that ROLLBACK and there is nothing left to roll back, -1 and
 * ERR_BUSY while the server stays away or the transaction is lost.
 */
static int
pg_ready(struct pg_conn *pc, const char *sql, struct err *e)
{
	char msg[200];

	pg_probe(pc);
	if (PQstatus(pc->c) != CONNECTION_OK && pc->in_tx) {
		pc->in_tx = false;
		pc->lost_tx = true;
	}
	if (pc->lost_tx) {
		if (sql != NULL && pg_is_rollback(sql)) {
			pc->lost_tx = false;
			return 1;
		}
		return err_set(e, ERR_BUSY,
		    "database unavailable: the "
		    "connection was lost in a "
		    "transaction");
	}
	if (PQstatus(pc->c) == CONNECTION_OK)
		return 0;
	PQreset(pc->c);
	if (PQstatus(pc->c) != CONNECTION_OK)
		return err_set(e, ERR_BUSY, "database unavailable: %s",
		    pg_msg(PQerrorMessage(pc->c), msg, sizeof(msg)));
	return pg_setup(pc, e);
}

static void
pg_notice_drop(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static bool
pg_is_url(const char *target)
{
	return strncmp(target, "postgresql://", 13) == 0 ||
	       strncmp(target, "postgres://", 11) == 0;
}

static void *
pg_open(const char *target, int busy_ms, struct err *e)
{
	/*
	 * dbname is expanded from the URL; the keywords before it are
	 * defaults the URL may override (connect_timeout=...).
	 */
	const char *const keys[] = { "connect_timeout",
		"fallback_application_name", "dbname", NULL };
	const char *const vals[] = { PG_CONNECT_TIMEOUT, "switchboard", target,
		NULL };
	struct pg_conn *pc;
	char msg[200];

	if (!pg_is_url(target)) {
		err_set(e, ERR_INTERNAL, "not a postgresql:// URL");
		return NULL;
	}
	if ((pc = calloc(1, sizeof(*pc))) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	pc->busy_ms = busy_ms;
	pc->c = PQconnectdbParams(keys, vals, 1);
	if (pc->c == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		free(pc);
		return NULL;
	}
	/* libpq's messages name the host and user, never the password. */
	if (PQstatus(pc->c) != CONNECTION_OK) {
		err_set(e, ERR_BUSY, "database unavailable: %s",
		    pg_msg(PQerrorMessage(pc->c), msg, sizeof(msg)));
		PQfinish(pc->c);
		free(pc);
		return NULL;
	}
	/* Notices (e.g. "relation already exists, skipping") are not ours
	 * to print: the programs log JSON lines only. */
	PQsetNoticeProcessor(pc->c, pg_notice_drop, NULL);
	if (pg_setup(pc, e) == -1) {
		PQfinish(pc->c);
		free(pc);
		return NULL;
	}
	return pc;
}

static void
pg_close(void *conn)
{
	struct pg_conn *pc = conn;

	if (pc == NULL)
		return;
	PQfinish(pc->c);
	free(pc);
}

static void
pg_set_busy(void *conn, int busy_ms)
{
	struct pg_conn *pc = conn;

	pc->busy_ms = busy_ms;
	/* When it fails the connection is away, and the next connection
	 * applies the new value anyway. */
	if (PQstatus(pc->c) == CONNECTION_OK)
		pg_apply_busy(pc, NULL);
}

/*
 * The shared SQL's ?N parameters as PostgreSQL's $N (a bare ? is the
 * highest number so far plus one, as in SQLite), outside string literals,
 * quoted identifiers and comments. *nparams gets the highest number. NULL
 * when out of memory or a number is out of range.
 */
static char *
pg_rewrite(const char *sql, int *nparams)
{
	size_t n = strlen(sql);
	const char *p = sql;
	char *out, *o, *end, q;
	long v;
	int max = 0;

	/* "?" becomes at most "$" and as many digits as it had, or "$NNNNN"
	 * for a bare one. */
	if ((out = malloc(n * 6 + 1)) == NULL)
		return NULL;
	o = out;
	while (*p != '\0') {
		if (*p == '\'' || *p == '"') {
			/* A doubled quote inside is part of the text. */
			q = *p;
			*o++ = *p++;
			while (*p != '\0') {
				if (*p == q && p[1] == q) {
					*o++ = *p++;
					*o++ = *p++;
				} else if (*p == q) {
					*o++ = *p++;
					break;
				} else
					*o++ = *p++;
			}
		} else if (p[0] == '-' && p[1] == '-') {
			while (*p != '\0' && *p != '\n')
				*o++ = *p++;
		} else if (p[0] == '/' && p[1] == '*') {
			*o++ = *p++;
			*o++ = *p++;
			while (*p != '\0' && !(p[0] == '*' && p[1] == '/'))
				*o++ = *p++;
			if (*p != '\0') {
				*o++ = *p++;
				*o++ = *p++;
			}
		} else if (*p == '?') {
			p++;
			if (*p >= '0' && *p <= '9') {
				errno = 0;
				v = strtol(p, &end, 10);
				if (errno != 0 || v < 1 || v > 65535) {
					free(out);
					return NULL;
				}
				p = end;
			} else
				v = max + 1;
			if (v > max)
				max = (int)v;
			o += sprintf(o, "$%ld", v);
		} else
			*o++ = *p++;
	}
	*o = '\0';
	*nparams = max;
	return out;
}

/* Prepare st on the current connection under its name. */
static int
pg_prepare_now(struct pg_conn *pc, struct pg_stmt *s, struct err *e)
{
	PGresult *res;
	int rc = 0;

	res = PQprepare(pc->c, s->name, s->sql, 0, NULL);
	if (res == NULL || !pg_ok(res))
		rc = pg_fail(pc, res, s->sql, e);
	else
		s->gen = pc->gen;
	pg_after(pc);
	PQclear(res);
	return rc;
}

static void
pg_vals_clear(struct pg_stmt *s)
{
	int i;

	for (i = 0; i < s->nparams; i++) {
		free(s->vals[i]);
		s->vals[i] = NULL;
	}
	s->oom = false;
}

static void
pg_finalize(struct db_stmt *st)
{
	struct pg_stmt *s = pgs(st);

	if (s == NULL)
		return;
	/* The server drops its prepared statements with the connection. */
	PQclear(s->res);
	pg_vals_clear(s);
	free(s->vals);
	free(s->sql);
	free(s);
}

static struct db_stmt *
pg_prepare(void *conn, const char *sql, struct err *e)
{
	struct pg_conn *pc = conn;
	struct pg_stmt *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	s->base.ops = &db_pg_ops;
	s->conn = pc;
	if ((s->sql = pg_rewrite(sql, &s->nparams)) == NULL) {
		err_set(e, ERR_INTERNAL, "prepare '%s': bad parameter", sql);
		free(s);
		return NULL;
	}
	if (s->nparams > 0 &&
	    (s->vals = calloc((size_t)s->nparams, sizeof(*s->vals))) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		pg_finalize(&s->base);
		return NULL;
	}
	snprintf(s->name, sizeof(s->name), "sb%u", ++pc->nnames);
	/* Prepared now, so a bad statement fails where SQLite's would. */
	switch (pg_ready(pc, NULL, e)) {
	case -1:
		pg_finalize(&s->base);
		return NULL;
	case 0:
		if (pg_prepare_now(pc, s, e) == -1) {
			pg_finalize(&s->base);
			return NULL;
		}
		break;
	default:
		break; /* prepared on its first step */
	}
	return &s->base;
}

static void
pg_reset(struct db_stmt *st, bool clear)
{
	struct pg_stmt *s = pgs(st);

	PQclear(s->res);
	s->res = NULL;
	s->row = 0;
	s->nrows = 0;
	if (clear)
		pg_vals_clear(s);
}

/* Parameter i (1-based) as owned text; out of range is ignored, as a
 * parameter the SQL does not have is our bug and fails nowhere else. */
static void
pg_bind(struct pg_stmt *s, int i, const char *v, size_t len)
{
	if (i < 1 || i > s->nparams)
		return;
	free(s->vals[i - 1]);
	s->vals[i - 1] = NULL;
	if (v != NULL && (s->vals[i - 1] = strndup(v, len)) == NULL)
		s->oom = true;
}

static void
pg_bind_int(struct db_stmt *st, int i, int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	pg_bind(pgs(st), i, buf, strlen(buf));
}

static void
pg_bind_text(struct db_stmt *st, int i, const char *v, size_t len)
{
	pg_bind(pgs(st), i, v, len);
}

static void
pg_bind_null(struct db_stmt *st, int i)
{
	pg_bind(pgs(st), i, NULL, 0);
}

/*
 * A COMMIT in a transaction where a statement failed is answered with
 * ROLLBACK and no error: report it, as SQLite would have kept the
 * transaction and committed it.
 */
static int
pg_check_commit(PGresult *res, const char *sql, struct err *e)
{
	if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0 &&
	    strncmp(sql, "COMMIT", 6) == 0)
		return err_set(e, ERR_INTERNAL,
		    "commit: the transaction had failed and was rolled back");
	return 0;
}

static int
pg_step(void *conn, struct db_stmt *st, struct err *e)
{
	struct pg_conn *pc = conn;
	struct pg_stmt *s = pgs(st);
	const char *tuples;
	PGresult *res;
	int rc;

	if (s->res == NULL) {
		if (s->oom) {
			err_set(e, ERR_INTERNAL, "out of memory");
			goto fail;
		}
		if ((rc = pg_ready(pc, s->sql, e)) == -1)
			goto fail;
		if (rc == 1) {
			pc->changes = 0;
			goto done;
		}
		if (s->gen != pc->gen && pg_prepare_now(pc, s, e) == -1)
			goto fail;
		/* Text parameters, text results; lengths are not needed
		 * for text (the copies are terminated). */
		res = PQexecPrepared(pc->c, s->name, s->nparams,
		    (const char *const *)s->vals, NULL, NULL, 0);
		pg_after(pc);
		if (res == NULL || !pg_ok(res)) {
			pg_fail(pc, res, s->sql, e);
			PQclear(res);
			goto fail;
		}
		rc = pg_check_commit(res, s->sql, e);
		tuples = PQcmdTuples(res);
		pc->changes = *tuples != '\0' ? atoi(tuples) : 0;
		if (rc == -1) {
			PQclear(res);
			goto fail;
		}
		s->res = res;
		s->nrows = PQntuples(res);
		s->row = -1;
	}
	if (++s->row < s->nrows)
		return 1;
done:
	pg_reset(st, false);
	return 0;
fail:
	pg_reset(st, false);
	return -1;
}

static int
pg_changes(void *conn)
{
	return ((struct pg_conn *)conn)->changes;
}

static bool
pg_col_null(struct pg_stmt *s, int i)
{
	return s->res == NULL || s->row < 0 || s->row >= s->nrows || i < 0 ||
	       i >= PQnfields(s->res) || PQgetisnull(s->res, s->row, i);
}

static enum db_type
pg_col_type(struct db_stmt *st, int i)
{
	struct pg_stmt *s = pgs(st);

	if (pg_col_null(s, i))
		return DB_NULL;
	switch (PQftype(s->res, i)) {
	case PG_BOOL:
	case PG_INT2:
	case PG_INT4:
	case PG_INT8:
	case PG_OID:
		return DB_INT;
	case PG_FLOAT4:
	case PG_FLOAT8:
	case PG_NUMERIC:
		return DB_REAL;
	default:
		return DB_TEXT;
	}
}

static int64_t
pg_col_int(struct db_stmt *st, int i)
{
	struct pg_stmt *s = pgs(st);
	const char *v;

	if (pg_col_null(s, i))
		return 0;
	v = PQgetvalue(s->res, s->row, i);
	switch (PQftype(s->res, i)) {
	case PG_BOOL:
		return v[0] == 't';
	case PG_FLOAT4:
	case PG_FLOAT8:
	case PG_NUMERIC:
		return (int64_t)strtod(v, NULL);
	default:
		/* Text that is not a number is 0, as SQLite's leading-digits
		 * conversion gives for it. */
		return strtoll(v, NULL, 10);
	}
}

static const char *
pg_col_text(struct db_stmt *st, int i)
{
	struct pg_stmt *s = pgs(st);
	const char *v;

	if (pg_col_null(s, i))
		return NULL;
	v = PQgetvalue(s->res, s->row, i);
	/* A boolean reads as the integer it is on SQLite. */
	if (PQftype(s->res, i) == PG_BOOL)
		return v[0] == 't' ? "1" : "0";
	return v;
}

static size_t
pg_col_len(struct db_stmt *st, int i)
{
	struct pg_stmt *s = pgs(st);

	if (pg_col_null(s, i))
		return 0;
	if (PQftype(s->res, i) == PG_BOOL)
		return 1;
	return (size_t)PQgetlength(s->res, s->row, i);
}

static int
pg_exec(void *conn, const char *script, struct err *e)
{
	struct pg_conn *pc = conn;
	int rc;

	if ((rc = pg_ready(pc, script, e)) != 0)
		return rc == 1 ? 0 : -1;
	/* The simple query protocol runs every statement of the script,
	 * in one implicit transaction when none is open. */
	return pg_run(pc, script, e);
}

static int
pg_begin(void *conn, bool write, struct err *e)
{
	struct pg_conn *pc = conn;

	/* A transaction lost with its connection ends here at the latest:
	 * whoever begins a new one has given the old one up. */
	pc->lost_tx = false;
	if (pg_ready(pc, NULL, e) == -1)
		return -1;
	if (!write)
		/* One snapshot for every read until COMMIT, as SQLite's
		 * read transaction gives. */
		return pg_run(pc,
		    "BEGIN ISOLATION LEVEL REPEATABLE READ "
		    "READ ONLY",
		    e);
	/*
	 * Writers are serialized by the advisory lock, taken first and held
	 * until COMMIT or ROLLBACK: see PG_WRITERS_KEY. lock_timeout bounds
	 * the wait (55P03, ERR_BUSY), like SQLite's busy timeout on BEGIN
	 * IMMEDIATE.
	 */
	/* One round trip for both. */
	if (pg_run(pc,
		"BEGIN; SELECT pg_advisory_xact_lock(" PG_WRITERS_KEY ")",
		e) == -1) {
		if (PQstatus(pc->c) == CONNECTION_OK &&
		    PQtransactionStatus(pc->c) != PQTRANS_IDLE)
			pg_run(pc, "ROLLBACK", NULL);
		return -1;
	}
	return 0;
}

static bool
pg_in_transaction(void *conn)
{
	struct pg_conn *pc = conn;

	/* A lost transaction is still the caller's until it rolls back. */
	if (pc->lost_tx || (PQstatus(pc->c) != CONNECTION_OK && pc->in_tx))
		return true;
	switch (PQtransactionStatus(pc->c)) {
	case PQTRANS_INTRANS:
	case PQTRANS_INERROR:
	case PQTRANS_ACTIVE:
		return true;
	default:
		return false;
	}
}

static int
pg_has_table(void *conn, const char *name, struct err *e)
{
	const char *text = "SELECT 1 FROM pg_catalog.pg_tables "
			   "WHERE schemaname = current_schema() "
			   "AND tablename = $1";
	const char *vals[1] = { name };
	struct pg_conn *pc = conn;
	PGresult *res;
	int rc;

	if (pg_ready(pc, NULL, e) == -1)
		return -1;
	res = PQexecParams(pc->c, text, 1, NULL, vals, NULL, NULL, 0);
	if (res == NULL || !pg_ok(res))
		rc = pg_fail(pc, res, text, e);
	else
		rc = PQntuples(res) > 0;
	PQclear(res);
	return rc;
}

/* PostgreSQL's DDL is transactional and checks foreign keys as it goes:
 * nothing to do around the migrations. */
static int
pg_migrations_begin(void *conn, struct err *e)
{
	(void)conn;
	(void)e;
	return 0;
}

static void
pg_migrations_end(void *conn, bool ok)
{
	(void)conn;
	(void)ok;
}

static int
pg_migration_check(void *conn, struct err *e)
{
	(void)conn;
	(void)e;
	return 0;
}

const struct db_ops db_pg_ops = {
	.engine = DB_POSTGRES,
	.open = pg_open,
	.close = pg_close,
	.set_busy = pg_set_busy,
	.prepare = pg_prepare,
	.finalize = pg_finalize,
	.reset = pg_reset,
	.bind_int = pg_bind_int,
	.bind_text = pg_bind_text,
	.bind_null = pg_bind_null,
	.step = pg_step,
	.changes = pg_changes,
	.col_type = pg_col_type,
	.col_int = pg_col_int,
	.col_text = pg_col_text,
	.col_len = pg_col_len,
	.exec = pg_exec,
	.begin = pg_begin,
	.in_transaction = pg_in_transaction,
	.has_table = pg_has_table,
	.migrations_begin = pg_migrations_begin,
	.migrations_end = pg_migrations_end,
	.migration_check = pg_migration_check,
};
