#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "lib/db_hold.h"
#include "lib/err.h"

#define HOLD_NAME_MAX 48

struct db_hold {
	PGconn *conn; /* PostgreSQL */
	int fd;       /* SQLite: the locked file */
};

static bool
is_postgres(const char *target)
{
	return strncmp(target, "postgresql://", 13) == 0 ||
	       strncmp(target, "postgres://", 11) == 0;
}

static bool
name_valid(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz"
			     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");

	return n > 0 && n <= HOLD_NAME_MAX && s[n] == '\0';
}

/* The advisory lock's key: FNV-1a of the name, so every process agrees
 * without a registry of numbers. */
static int64_t
hold_key(const char *name)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * UINT64_C(1099511628211);
	return (int64_t)(h >> 1);
}

static int
pg_try(const char *target, const char *name, struct db_hold *h,
    struct err *e)
{
	const char *params[1];
	char key[24], msg[160];
	PGresult *res;
	int rc;

	h->conn = PQconnectdb(target);
	if (h->conn == NULL || PQstatus(h->conn) != CONNECTION_OK) {
		snprintf(msg, sizeof(msg), "%s",
		    h->conn != NULL ? PQerrorMessage(h->conn) : "out of memory");
		msg[strcspn(msg, "\n")] = '\0';
		return err_set(e, ERR_BUSY, "hold '%s': %s", name, msg);
	}
	snprintf(key, sizeof(key), "%" PRId64, hold_key(name));
	params[0] = key;
	res = PQexecParams(h->conn, "SELECT pg_try_advisory_lock($1::bigint)",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		rc = err_set(e, ERR_BUSY, "hold '%s': %s", name,
		    PQresultErrorMessage(res));
	else
		rc = strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? 1 : 0;
	PQclear(res);
	return rc;
}

static int
file_try(const char *target, const char *name, struct db_hold *h,
    struct err *e)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s.%s.hold", target, name) >=
	    sizeof(path))
		return err_set(e, ERR_INTERNAL, "hold '%s': path too long",
		    name);
	if ((h->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		return err_set(e, ERR_INTERNAL, "hold '%s': %s: %s", name,
		    path, strerror(errno));
	if (flock(h->fd, LOCK_EX | LOCK_NB) == 0)
		return 1;
	if (errno == EWOULDBLOCK)
		return 0;
	return err_set(e, ERR_INTERNAL, "hold '%s': lock %s: %s", name, path,
	    strerror(errno));
}

int
db_hold_try(const char *target, const char *name, struct db_hold **out,
    struct err *e)
{
	struct db_hold *h;
	int rc;

	*out = NULL;
	if (!name_valid(name))
		return err_set(e, ERR_INTERNAL, "hold: bad name");
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	h->fd = -1;
	rc = is_postgres(target) ? pg_try(target, name, h, e)
				 : file_try(target, name, h, e);
	if (rc == 1)
		*out = h;
	else
		db_hold_release(h);
	return rc;
}

int
db_hold_check(struct db_hold *h)
{
	if (h->conn == NULL)
		return 1;
	/* Reading what the server sent notices a closed connection. */
	if (PQconsumeInput(h->conn) == 0 || PQstatus(h->conn) != CONNECTION_OK)
		return 0;
	return 1;
}

void
db_hold_release(struct db_hold *h)
{
	if (h == NULL)
		return;
	if (h->conn != NULL)
		PQfinish(h->conn);
	if (h->fd != -1)
		close(h->fd);
	free(h);
}
