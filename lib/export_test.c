#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/check.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/export.h"

enum q { Q_USER_ADD, Q_LOG_ADD, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_USER_ADD] = "INSERT INTO users (username, email, password, "
		       "extension) VALUES (?1, ?2, 'x', ?3) RETURNING id",
	[Q_LOG_ADD] = "INSERT INTO call_logs (caller_id, callee_id, "
		      "start_time, end_time, duration, status, channel, "
		      "direction, created_at) VALUES (?1, ?2, ?3, ?4, 7, ?5, "
		      "?6, 'outbound', ?3) RETURNING id",
};

struct buf {
	char *p;
	size_t n;
	int fail_after; /* calls before the writer fails; -1 never */
};

static int
buf_write(void *arg, const char *s, size_t len)
{
	struct buf *b = arg;

	if (b->fail_after == 0)
		return -1;
	if (b->fail_after > 0)
		b->fail_after--;
	CHECK((b->p = realloc(b->p, b->n + len + 1)) != NULL);
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
	return 0;
}

static int64_t
user_add(struct db *db, const char *name, const char *email, const char *ext)
{
	struct err e = { 0 };
	struct db_stmt *st;
	int64_t id;

	CHECK((st = db_stmt(db, sql[Q_USER_ADD], &e)) != NULL);
	db_bind_text(st, 1, name);
	db_bind_text(st, 2, email);
	db_bind_text(st, 3, ext);
	CHECK(db_row(db, st, &e) == 1);
	id = db_col_int(st, 0);
	CHECK(db_done(db, st, &e) == 0);
	return id;
}

static int64_t
log_add(struct db *db, int64_t a, int64_t b, const char *start, const char *end,
    const char *status, const char *channel)
{
	struct err e = { 0 };
	struct db_stmt *st;
	int64_t id;

	CHECK((st = db_stmt(db, sql[Q_LOG_ADD], &e)) != NULL);
	db_bind_int(st, 1, a);
	db_bind_int(st, 2, b);
	db_bind_text(st, 3, start);
	if (end != NULL)
		db_bind_text(st, 4, end);
	else
		db_bind_null(st, 4);
	db_bind_text(st, 5, status);
	db_bind_text(st, 6, channel);
	CHECK(db_row(db, st, &e) == 1);
	id = db_col_int(st, 0);
	CHECK(db_done(db, st, &e) == 0);
	return id;
}

static char *
run(struct db *db, enum export_format fmt, const struct export_filter *f,
    const char *tz, struct export_result *res)
{
	struct buf b = { NULL, 0, -1 };
	struct err e = { 0 };

	if (export_call_logs(db, fmt, f, tz, buf_write, &b, res, &e) != 0) {
		fprintf(stderr, "export: %s\n", e.msg);
		CHECK(0);
	}
	return b.p;
}

static void
test_bounds(void)
{
	int64_t start, next;
	char buf[40];

	CHECK(export_tz_valid("UTC"));
	CHECK(export_tz_valid("America/New_York"));
	CHECK(!export_tz_valid("Mars/Olympus"));
	CHECK(!export_tz_valid("../etc/passwd"));
	CHECK(!export_tz_valid("/etc/localtime"));
	CHECK(!export_tz_valid(""));
	CHECK(!export_tz_valid(NULL));

	/* The spring-forward day in New York is 23 hours long. */
	CHECK(export_parse_day("America/New_York", "2026-03-08", &start,
		  &next) == 0);
	CHECK(next - start == 23 * 3600);
	CHECK(export_parse_day("America/New_York", "2026-11-01", &start,
		  &next) == 0);
	CHECK(next - start == 25 * 3600);
	CHECK(export_parse_day("UTC", "2026-02-29", &start, &next) == -1);
	CHECK(export_parse_day("UTC", "2026-1-01", &start, &next) == -1);
	CHECK(export_parse_day("Nowhere/At_All", "2026-01-01", &start, &next) ==
	      -1);
	/* Kiritimati (UTC+14) starts its days ten hours before UTC's. */
	CHECK(export_parse_day("Pacific/Kiritimati", "2026-06-01", &start,
		  &next) == 0);
	CHECK(export_parse_bound("Pacific/Kiritimati", "2026-06-01", false, buf,
		  sizeof(buf)) == 0);
	CHECK(strcmp(buf, "2026-05-31T10:00:00.000000Z") == 0);
	CHECK(export_parse_bound("UTC", "2026-06-01", true, buf, sizeof(buf)) ==
	      0);
	CHECK(strcmp(buf, "2026-06-02T00:00:00.000000Z") == 0);
	CHECK(export_parse_bound(NULL, "2026-06-01T12:00:00.5+02:00", false,
		  buf, sizeof(buf)) == 0);
	CHECK(strcmp(buf, "2026-06-01T10:00:00.500000Z") == 0);
	CHECK(export_parse_bound(NULL, "2026-06-01T12:00:00Z", false, buf,
		  sizeof(buf)) == 0);
	CHECK(strcmp(buf, "2026-06-01T12:00:00.000000Z") == 0);
	CHECK(export_parse_bound(NULL, "tomorrow", false, buf, sizeof(buf)) ==
	      -1);
	CHECK(export_parse_bound(NULL, "2026-06-01T25:00:00Z", false, buf,
		  sizeof(buf)) == -1);
	/* TZ is left as it was. */
	CHECK(getenv("TZ") != NULL && strcmp(getenv("TZ"), "UTC") == 0);
}

/*
 * The row ids of a bare JSON export, in order, into ids (room for max);
 * their count. A row's object follows '[' or ','; a user's follows ':'.
 */
static int64_t
json_ids(const char *out, int64_t *ids, int64_t max)
{
	const char *p = out;
	int64_t n = 0;

	while ((p = strstr(p, "{\"id\":")) != NULL) {
		if (p > out && (p[-1] == '[' || p[-1] == ',')) {
			CHECK(n < max);
			ids[n++] = strtoll(p + 6, NULL, 10);
		}
		p += 6;
	}
	return n;
}

/*
 * More rows than a page holds, past the last id base: every one out once,
 * in order, across the pages, whichever way and however bounded.
 */
static void
test_pages(struct db *db, int64_t user, int64_t base)
{
	enum { N = 2345 };
	struct export_filter f = { 0 };
	struct export_result res;
	struct err e = { 0 };
	int64_t *ids, i, n;
	char *out;

	CHECK((ids = calloc(N + 3, sizeof(*ids))) != NULL);
	CHECK(db_begin(db, &e) == 0);
	for (i = 1; i <= N; i++)
		CHECK(log_add(db, user, user, "2026-03-09T00:00:00.000000Z",
			  NULL, "ended", "p") == base + i);
	CHECK(db_commit(db, &e) == 0);

	/* Newest first, the whole table. */
	f.bare = true;
	out = run(db, EXPORT_JSON, &f, NULL, &res);
	n = json_ids(out, ids, N + 3);
	CHECK(n == N + 3 && res.rows == n && res.last_id == base + N);
	for (i = 0; i < n; i++)
		CHECK(ids[i] == base + N - i);
	free(out);

	/* Oldest first past a watermark, a limit across pages. */
	f.after_id = base;
	f.oldest_first = true;
	f.limit = 1500;
	out = run(db, EXPORT_JSON, &f, NULL, &res);
	n = json_ids(out, ids, N + 3);
	CHECK(n == 1500 && res.rows == n && res.last_id == base + 1500);
	for (i = 0; i < n; i++)
		CHECK(ids[i] == base + 1 + i);
	free(out);

	/* Newest first below a bound, down to the watermark. */
	f.oldest_first = false;
	f.upto_id = base + 2001;
	f.limit = 0;
	out = run(db, EXPORT_JSON, &f, NULL, &res);
	n = json_ids(out, ids, N + 3);
	CHECK(n == 2001 && res.rows == n && res.last_id == base + 2001);
	for (i = 0; i < n; i++)
		CHECK(ids[i] == base + 2001 - i);
	free(out);
	free(ids);
}

int
main(void)
{
	struct export_filter f = { 0 };
	struct export_result res;
	struct buf b = { NULL, 0, 0 };
	struct err e = { 0 };
	char dir[64], *out;
	int64_t a, c, l1, l2, l3;
	struct db *db;

	setenv("TZ", "UTC", 1);
	test_bounds();
	db = check_db_open(dir, sizeof(dir), "export.db");
	a = user_add(db, "Doe, \"J\"\nx", "a@x", "1001");
	c = user_add(db, "+cmd", "c@x", "1002");
	l1 = log_add(db, a, c, "2026-03-08T06:59:59.000000Z",
	    "2026-03-08T07:00:06.000000Z", "ended", "webrtc-call-1");
	l2 = log_add(db, c, a, "2026-03-08T07:30:00.250000Z", NULL, "initiated",
	    "@chan");
	l3 = log_add(db, a, a, "bad time", NULL, "missed", "x");

	out = run(db, EXPORT_CSV, &f, "America/New_York", &res);
	CHECK(res.rows == 3 && res.last_id == l3);
	CHECK(strcmp(out,
		  EXPORT_CSV_HEADER "\r\n"
				    "3,\"Doe, \"\"J\"\"\nx\",1001,\"Doe, "
				    "\"\"J\"\"\nx\",1001,bad time,,7,missed,"
				    "outbound,x\r\n"
				    "2,\"'+cmd\",1002,\"Doe, \"\"J\"\"\nx\","
				    "1001,2026-03-08T03:30:00-04:00,,7,"
				    "initiated,outbound,\"'@chan\"\r\n"
				    "1,\"Doe, \"\"J\"\"\nx\",1001,\"'+cmd\","
				    "1002,2026-03-08T01:59:59-05:00,"
				    "2026-03-08T03:00:06-04:00,7,ended,"
				    "outbound,webrtc-call-1\r\n") == 0);
	free(out);

	/* Oldest first after a watermark, at most one row. */
	f.after_id = l1;
	f.oldest_first = true;
	f.limit = 1;
	out = run(db, EXPORT_CSV, &f, "UTC", &res);
	CHECK(res.rows == 1 && res.last_id == l2);
	CHECK(strstr(out, "\r\n2,") != NULL &&
	      strstr(out, "2026-03-08T07:30:00+00:00") != NULL);
	free(out);

	/* JSON, bare, times as stored; then enveloped with zone times. */
	memset(&f, 0, sizeof(f));
	f.extension = "1002";
	f.status = "initiated";
	f.bare = true;
	out = run(db, EXPORT_JSON, &f, NULL, &res);
	CHECK(res.rows == 1);
	CHECK(strncmp(out, "[{\"id\":2,\"caller_id\":", 21) == 0);
	CHECK(strstr(out, "\"start_time\":\"2026-03-08T07:30:00.250000Z\"") !=
	      NULL);
	CHECK(strstr(out, "\"end_time\":null") != NULL);
	CHECK(strstr(out, "\"username\":\"Doe, \\\"J\\\"\\nx\"") != NULL);
	free(out);
	f.bare = false;
	out = run(db, EXPORT_JSON, &f, "Asia/Kolkata", &res);
	CHECK(strncmp(out, "{\"call_logs\":[{\"id\":2,", 22) == 0);
	CHECK(
	    strstr(out,
		"\"start_time\":\"2026-03-08T13:00:00.250000+05:30\"") != NULL);
	CHECK(strstr(out, "],\"exported_at\":\"") != NULL);
	CHECK(strstr(out, "+05:30\",\"success\":true}") != NULL);
	free(out);

	test_pages(db, a, l3);

	/* A failing writer stops the export with an error. */
	memset(&f, 0, sizeof(f));
	CHECK(export_call_logs(db, EXPORT_CSV, &f, NULL, buf_write, &b, &res,
		  &e) == -1);
	CHECK(e.code == ERR_INTERNAL && b.p == NULL);
	err_clear(&e);
	CHECK(export_call_logs(db, EXPORT_CSV, &f, "Mars/Olympus", buf_write,
		  &b, &res, &e) == -1);
	CHECK(e.code == ERR_INVALID);
	check_db_close(db, dir);
	printf("export: %d checks passed\n", checks);
	return 0;
}
