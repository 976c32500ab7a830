#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/calllog.h"
#include "lib/check.h"
#include "lib/db.h"
#include "lib/err.h"

#define US_PER_S INT64_C(1000000)
#define T0       INT64_C(1795000000000000) /* some moment in 2026 */

static int64_t caller_id, callee_id;

enum q { Q_USER_ADD, Q_LOG_ADD, Q_LOG_GET, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_USER_ADD] =
	    "INSERT INTO users (username, email, password, "
	    "extension) VALUES (?1, CAST(?1 AS text) || '@x', 'x', ?2) "
	    "RETURNING id",
	[Q_LOG_ADD] = "INSERT INTO call_logs (caller_id, callee_id, "
		      "start_time, status, channel, direction, created_at) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, 'outbound', ?3) "
		      "RETURNING id",
	[Q_LOG_GET] = "SELECT status, answer_time, end_time, duration "
		      "FROM call_logs WHERE id = ?1",
};

/* A row as the checks compare it; absent columns are "" and -1. */
struct row {
	char status[16], answer_time[40], end_time[40];
	int64_t duration;
};

static int64_t
user_add(struct db *db, const char *name, const char *ext)
{
	struct err e = { 0 };
	struct db_stmt *st;
	int64_t id;

	CHECK((st = db_stmt(db, sql[Q_USER_ADD], &e)) != NULL);
	db_bind_text(st, 1, name);
	db_bind_text(st, 2, ext);
	CHECK(db_row(db, st, &e) == 1);
	id = db_col_int(st, 0);
	CHECK(db_done(db, st, &e) == 0);
	return id;
}

/* A row with status that started at start_us on channel. */
static int64_t
log_add(struct db *db, const char *channel, const char *status,
    int64_t start_us)
{
	struct err e = { 0 };
	struct db_stmt *st;
	char start[40];
	int64_t id;

	db_time_format(start_us, start, sizeof(start));
	CHECK((st = db_stmt(db, sql[Q_LOG_ADD], &e)) != NULL);
	db_bind_int(st, 1, caller_id);
	db_bind_int(st, 2, callee_id);
	db_bind_text(st, 3, start);
	db_bind_text(st, 4, status);
	db_bind_text(st, 5, channel);
	CHECK(db_row(db, st, &e) == 1);
	id = db_col_int(st, 0);
	CHECK(db_done(db, st, &e) == 0);
	return id;
}

static void
col(struct db_stmt *st, int i, char *buf, size_t size)
{
	const char *s = db_col_text(st, i);

	snprintf(buf, size, "%s", s != NULL ? s : "");
}

static struct row
log_get(struct db *db, int64_t id)
{
	struct err e = { 0 };
	struct row r;
	struct db_stmt *st;

	CHECK((st = db_stmt(db, sql[Q_LOG_GET], &e)) != NULL);
	db_bind_int(st, 1, id);
	CHECK(db_row(db, st, &e) == 1);
	col(st, 0, r.status, sizeof(r.status));
	col(st, 1, r.answer_time, sizeof(r.answer_time));
	col(st, 2, r.end_time, sizeof(r.end_time));
	r.duration = db_col_null(st, 3) ? -1 : db_col_int(st, 3);
	db_reset(st);
	return r;
}

static int
stamp_is(const char *s, int64_t us)
{
	char want[40];

	db_time_format(us, want, sizeof(want));
	return strcmp(s, want) == 0;
}

static void
test_find(struct db *db)
{
	struct err e = { 0 };
	struct calllog_row row;
	int64_t id;

	log_add(db, "webrtc-call-find", "ended", T0);
	id = log_add(db, "webrtc-call-find", "initiated", T0);
	memset(&row, 0, sizeof(row));
	CHECK(calllog_find(db, "webrtc-call-find", &row, &e) == 1);
	CHECK(row.id == id);
	CHECK(row.caller_id == caller_id && row.callee_id == callee_id);
	CHECK(strcmp(row.status, "initiated") == 0);
	row.id = 42;
	CHECK(calllog_find(db, "webrtc-call-none", &row, &e) == 0);
	CHECK(row.id == 42);
}

/* Answered, then hung up: ended, whole seconds from answer_time. */
static void
test_answer_hangup(struct db *db)
{
	struct err e = { 0 };
	int64_t id, d = -1;
	struct row r;

	id = log_add(db, "webrtc-call-1", "initiated", T0);
	CHECK(calllog_answer(db, id, T0 + 2 * US_PER_S, &e) == 1);
	r = log_get(db, id);
	CHECK(strcmp(r.status, "answered") == 0);
	CHECK(stamp_is(r.answer_time, T0 + 2 * US_PER_S));
	CHECK(r.end_time[0] == '\0');
	/* Answered once only: the first answer_time stands. */
	CHECK(calllog_answer(db, id, T0 + 3 * US_PER_S, &e) == 0);
	CHECK(stamp_is(log_get(db, id).answer_time, T0 + 2 * US_PER_S));

	CHECK(calllog_close(db, id, CALLLOG_HANGUP, T0 + 9500000, &d, &e) == 1);
	CHECK(d == 7);
	r = log_get(db, id);
	CHECK(strcmp(r.status, "ended") == 0);
	CHECK(stamp_is(r.end_time, T0 + 9500000));
	CHECK(r.duration == 7);

	/* The second close changes nothing and reports what the row holds. */
	d = -1;
	CHECK(calllog_close(db, id, CALLLOG_HANGUP, T0 + 60 * US_PER_S, &d,
		  &e) == 0);
	CHECK(d == 7);
	CHECK(calllog_close(db, id, CALLLOG_REJECTED, T0 + 60 * US_PER_S, NULL,
		  &e) == 0);
	r = log_get(db, id);
	CHECK(strcmp(r.status, "ended") == 0);
	CHECK(stamp_is(r.end_time, T0 + 9500000));
	CHECK(r.duration == 7);

	/* A closed row cannot be answered. */
	CHECK(calllog_answer(db, id, T0 + 61 * US_PER_S, &e) == 0);
	r = log_get(db, id);
	CHECK(strcmp(r.status, "ended") == 0);
	CHECK(stamp_is(r.answer_time, T0 + 2 * US_PER_S));
}

/* A party that vanished before the answer: the duration is 0, not less. */
static void
test_end_before_answer(struct db *db)
{
	struct err e = { 0 };
	int64_t id, d = -1;
	struct row r;

	id = log_add(db, "webrtc-call-2", "initiated", T0);
	CHECK(calllog_answer(db, id, T0 + 5 * US_PER_S, &e) == 1);
	CHECK(
	    calllog_close(db, id, CALLLOG_HANGUP, T0 + US_PER_S, &d, &e) == 1);
	CHECK(d == 0);
	r = log_get(db, id);
	CHECK(strcmp(r.status, "ended") == 0 && r.duration == 0);
	CHECK(stamp_is(r.end_time, T0 + US_PER_S));
}

/* Each way of ending a ringing call, then that it stays closed. */
static void
test_ringing(struct db *db)
{
	static const struct {
		enum calllog_end how;
		const char *status;
	} t[] = {
		{ CALLLOG_HANGUP, "cancelled" },
		{ CALLLOG_REJECTED, "rejected" },
		{ CALLLOG_MISSED, "missed" },
		{ CALLLOG_FAILED, "failed" },
	};
	struct err e = { 0 };
	int64_t id, d;
	struct row r;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		id = log_add(db, "webrtc-call-3", "initiated", T0);
		d = -1;
		CHECK(calllog_close(db, id, t[i].how, T0 + 4 * US_PER_S, &d,
			  &e) == 1);
		CHECK(d == 0);
		r = log_get(db, id);
		CHECK(strcmp(r.status, t[i].status) == 0);
		CHECK(stamp_is(r.end_time, T0 + 4 * US_PER_S));
		CHECK(r.duration == 0 && r.answer_time[0] == '\0');

		CHECK(calllog_answer(db, id, T0 + 5 * US_PER_S, &e) == 0);
		CHECK(calllog_close(db, id, CALLLOG_HANGUP, T0 + 6 * US_PER_S,
			  &d, &e) == 0);
		CHECK(d == 0);
		r = log_get(db, id);
		CHECK(strcmp(r.status, t[i].status) == 0);
		CHECK(stamp_is(r.end_time, T0 + 4 * US_PER_S));
		CHECK(r.answer_time[0] == '\0');
	}
}

/* A rejection after the answer ends the call; a ring timeout or a failed
 * setup leaves an answered call alone. */
static void
test_answered(struct db *db)
{
	struct err e = { 0 };
	int64_t id, d;
	struct row r;

	id = log_add(db, "webrtc-call-4", "initiated", T0);
	CHECK(calllog_answer(db, id, T0, &e) == 1);
	d = -1;
	CHECK(calllog_close(db, id, CALLLOG_MISSED, T0 + 30 * US_PER_S, &d,
		  &e) == 0);
	CHECK(d == 0);
	CHECK(calllog_close(db, id, CALLLOG_FAILED, T0 + 30 * US_PER_S, &d,
		  &e) == 0);
	r = log_get(db, id);
	CHECK(strcmp(r.status, "answered") == 0);
	CHECK(r.end_time[0] == '\0' && r.duration == -1);

	CHECK(calllog_close(db, id, CALLLOG_REJECTED, T0 + 3 * US_PER_S, &d,
		  &e) == 1);
	CHECK(d == 3);
	r = log_get(db, id);
	CHECK(strcmp(r.status, "ended") == 0 && r.duration == 3);
}

static void
test_no_row(struct db *db)
{
	struct err e = { 0 };
	int64_t d = -1;

	CHECK(calllog_answer(db, 999999, T0, &e) == 0);
	CHECK(calllog_close(db, 999999, CALLLOG_HANGUP, T0, &d, &e) == 0);
	CHECK(d == 0);
	CHECK(calllog_close(db, 999999, CALLLOG_FAILED, T0, NULL, &e) == 0);
	CHECK(e.code == ERR_OK);
	CHECK(calllog_close(db, 1, (enum calllog_end)99, T0, NULL, &e) == -1);
	CHECK(e.code == ERR_INTERNAL);
}

static void
test_miss_stale(struct db *db)
{
	struct err e = { 0 };
	int64_t old, fresh, edge, other, answered, now = T0 + 3600 * US_PER_S;
	struct row r;

	old = log_add(db, "webrtc-call-old", "initiated", now - 90 * US_PER_S);
	edge =
	    log_add(db, "webrtc-call-edge", "initiated", now - 60 * US_PER_S);
	fresh =
	    log_add(db, "webrtc-call-new", "initiated", now - 10 * US_PER_S);
	other =
	    log_add(db, "SIP/1000-00000001", "initiated", now - 90 * US_PER_S);
	answered =
	    log_add(db, "webrtc-call-ans", "initiated", now - 90 * US_PER_S);
	CHECK(calllog_answer(db, answered, now - 80 * US_PER_S, &e) == 1);

	CHECK(calllog_miss_stale(db, now - 60 * US_PER_S, now, &e) == 0);
	r = log_get(db, old);
	CHECK(strcmp(r.status, "missed") == 0 && r.duration == 0);
	CHECK(stamp_is(r.end_time, now));
	CHECK(strcmp(log_get(db, edge).status, "missed") == 0);
	CHECK(strcmp(log_get(db, fresh).status, "initiated") == 0);
	CHECK(strcmp(log_get(db, other).status, "initiated") == 0);
	CHECK(strcmp(log_get(db, answered).status, "answered") == 0);
}

int
main(void)
{
	char dir[64];
	struct db *db;

	db = check_db_open(dir, sizeof(dir), "calllog.db");
	caller_id = user_add(db, "alice", "1000");
	callee_id = user_add(db, "bob", "1001");
	test_find(db);
	test_answer_hangup(db);
	test_end_before_answer(db);
	test_ringing(db);
	test_answered(db);
	test_no_row(db);
	test_miss_stale(db);
	check_db_close(db, dir);
	printf("calllog: %d checks passed\n", checks);
	return 0;
}
