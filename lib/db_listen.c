#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lib/db.h"
#include "lib/db_listen.h"
#include "lib/err.h"

#define LISTEN_CHANNEL_MAX 63 /* PostgreSQL's identifier length */

struct db_listener {
	PGconn *conn;
	char *target;
	char channel[LISTEN_CHANNEL_MAX + 1];
};

enum q { Q_WAKE, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_WAKE] = "SELECT pg_notify(?1, '')",
};

static bool
is_postgres(const char *target)
{
	return strncmp(target, "postgresql://", 13) == 0 ||
	       strncmp(target, "postgres://", 11) == 0;
}

static bool
channel_valid(const char *s)
{
	size_t n = strspn(s,
	    "abcdefghijklmnopqrstuvwxyz0123456789_");

	return n > 0 && n <= LISTEN_CHANNEL_MAX && s[n] == '\0' &&
	       !(s[0] >= '0' && s[0] <= '9');
}

/* PostgreSQL's message without its trailing newline; never the URL. */
static int
pg_fail(struct err *e, PGconn *conn, const char *what)
{
	const char *msg = conn != NULL ? PQerrorMessage(conn) : "out of memory";
	size_t n = strcspn(msg, "\n");

	return err_set(e, ERR_BUSY, "listen: %s: %.*s", what, (int)n, msg);
}

int
db_listener_reconnect(struct db_listener *l, struct err *e)
{
	char text[LISTEN_CHANNEL_MAX + 16];
	PGresult *res;
	bool ok;

	if (l->conn != NULL)
		PQfinish(l->conn);
	l->conn = PQconnectdb(l->target);
	if (l->conn == NULL || PQstatus(l->conn) != CONNECTION_OK)
		return pg_fail(e, l->conn, "connect");
	/* The channel was checked to be a plain identifier: LISTEN takes
	 * no parameters. */
	snprintf(text, sizeof(text), "LISTEN %s", l->channel);
	res = PQexec(l->conn, text);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
		return pg_fail(e, l->conn, "LISTEN");
	if (PQsetnonblocking(l->conn, 1) != 0)
		return pg_fail(e, l->conn, "non-blocking");
	return 0;
}

struct db_listener *
db_listen(const char *target, const char *channel, struct err *e)
{
	struct db_listener *l;

	err_clear(e);
	if (!is_postgres(target))
		return NULL;
	if (!channel_valid(channel)) {
		err_set(e, ERR_INTERNAL, "listen: bad channel name");
		return NULL;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->target = strdup(target)) == NULL) {
		free(l);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	snprintf(l->channel, sizeof(l->channel), "%s", channel);
	if (db_listener_reconnect(l, e) == -1) {
		db_listener_close(l);
		return NULL;
	}
	return l;
}

int
db_listener_fd(struct db_listener *l)
{
	return l->conn != NULL ? PQsocket(l->conn) : -1;
}

int
db_listener_drain(struct db_listener *l, struct err *e)
{
	PGnotify *n;
	int count = 0;

	if (l->conn == NULL || PQconsumeInput(l->conn) == 0 ||
	    PQstatus(l->conn) != CONNECTION_OK)
		return pg_fail(e, l->conn, "connection lost");
	while ((n = PQnotifies(l->conn)) != NULL) {
		count++;
		PQfreemem(n);
	}
	return count;
}

void
db_listener_close(struct db_listener *l)
{
	if (l == NULL)
		return;
	if (l->conn != NULL)
		PQfinish(l->conn);
	/* The URL may hold a password. */
	if (l->target != NULL)
		explicit_bzero(l->target, strlen(l->target));
	free(l->target);
	free(l);
}

int
db_wake(struct db *db, const char *channel, struct err *e)
{
	struct db_stmt *st;

	if (db_engine(db) != DB_POSTGRES)
		return 0;
	if ((st = db_stmt(db, sql[Q_WAKE], e)) == NULL)
		return -1;
	db_bind_text(st, 1, channel);
	return db_done(db, st, e);
}
