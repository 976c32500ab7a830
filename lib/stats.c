#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/export.h"
#include "lib/stats.h"

#define PRESENCE_DEFAULT_S 120
/* A call still open a day after it began is not live: its row was left
 * behind (the AMI path of the replaced backend never closed one). */
#define OPEN_CALL_MAX_S 86400

enum q { Q_USERS, Q_TODAY, Q_LOGS, Q_OPEN, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_USERS] = "SELECT count(*), COALESCE(sum(CASE WHEN is_online = 1 "
		    "AND last_seen >= ?1 THEN 1 ELSE 0 END), 0) FROM users",
	[Q_TODAY] = "SELECT count(*) FROM call_logs "
		    "WHERE created_at >= ?1 AND created_at < ?2",
	[Q_LOGS] = "SELECT count(*), "
		   "COALESCE(sum(CASE WHEN status IN ('answered', 'ended') "
		   "THEN 1 ELSE 0 END), 0), "
		   "COALESCE(sum(CASE WHEN status IN ('answered', 'ended') "
		   "THEN COALESCE(duration, 0) ELSE 0 END), 0) FROM call_logs",
	[Q_OPEN] = "SELECT (SELECT count(*) FROM call_logs "
		   "WHERE end_time IS NULL AND status IN ('initiated', "
		   "'answered') AND created_at >= ?1) + "
		   "(SELECT count(*) FROM active_calls)",
};

int
stats_presence_s(void)
{
	const char *s = config_get("PRESENCE_STALE_S");
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return PRESENCE_DEFAULT_S;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v <= 0 || v > 86400L * 30)
		return PRESENCE_DEFAULT_S;
	return (int)v;
}

void
stats_fresh_since(int64_t now_s, char *buf, size_t size)
{
	db_time_format((now_s - stats_presence_s()) * 1000000, buf,
	    (unsigned)size);
}

bool
stats_online(bool is_online, const char *last_seen, const char *fresh_since)
{
	/* Both are the db_now form, whose text order is time order. */
	return is_online && last_seen != NULL &&
	       strcmp(last_seen, fresh_since) >= 0;
}

/* One row of integers from st into v[0..n-1]. */
static int
ints(struct db *db, struct db_stmt *st, int64_t *v, int n, struct err *e)
{
	int i, r;

	if ((r = db_row(db, st, e)) != 1)
		return r == 0 ? err_set(e, ERR_INTERNAL, "count gave no row")
			      : -1;
	for (i = 0; i < n; i++)
		v[i] = db_col_int(st, i);
	db_reset(st);
	return 0;
}

int
stats_counts(struct db *db, const char *tz, struct stats_counts *c,
    struct err *e)
{
	struct db_stmt *st;
	int64_t now = db_now_us() / 1000000, start, next, v[3];
	char a[40], b[40];

	memset(c, 0, sizeof(*c));
	if (export_local_day(tz, now, &start, &next) == -1)
		return err_set(e, ERR_INTERNAL, "time zone '%s' is not valid",
		    tz != NULL ? tz : "(TZ)");
	stats_fresh_since(now, a, sizeof(a));
	if ((st = db_stmt(db, sql[Q_USERS], e)) == NULL)
		return -1;
	db_bind_text(st, 1, a);
	if (ints(db, st, v, 2, e) == -1)
		return -1;
	c->total_users = v[0];
	c->online_users = v[1];

	db_time_format(start * 1000000, a, sizeof(a));
	db_time_format(next * 1000000, b, sizeof(b));
	if ((st = db_stmt(db, sql[Q_TODAY], e)) == NULL)
		return -1;
	db_bind_text(st, 1, a);
	db_bind_text(st, 2, b);
	if (ints(db, st, v, 1, e) == -1)
		return -1;
	c->calls_today = v[0];

	if ((st = db_stmt(db, sql[Q_LOGS], e)) == NULL ||
	    ints(db, st, v, 3, e) == -1)
		return -1;
	c->total_call_logs = v[0];
	c->successful_calls = v[1];
	c->total_duration_s = v[2];

	db_time_format((now - OPEN_CALL_MAX_S) * 1000000, a, sizeof(a));
	if ((st = db_stmt(db, sql[Q_OPEN], e)) == NULL)
		return -1;
	db_bind_text(st, 1, a);
	if (ints(db, st, v, 1, e) == -1)
		return -1;
	c->open_calls = v[0];
	return 0;
}

void
stats_uptime_text(int64_t s, char *buf, size_t size)
{
	if (s < 0)
		s = 0;
	snprintf(buf, size,
	    "%" PRId64 " days, %" PRId64 " hours, %" PRId64 " minutes",
	    s / 86400, s / 3600 % 24, s / 60 % 60);
}
