#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/calllog.h"
#include "lib/db.h"
#include "lib/err.h"

#define US_PER_S INT64_C(1000000)
/* A row only moves forward (ringing, answered, closed), so a guarded
 * UPDATE that lost a race succeeds or finds the row closed on a later try. */
#define CLOSE_TRIES 3

enum q { Q_FIND, Q_GET, Q_ANSWER, Q_END, Q_UNANSWERED, Q_STALE, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_FIND] = "SELECT id, caller_id, callee_id, status FROM call_logs "
		   "WHERE channel = ?1 ORDER BY id DESC LIMIT 1",
	[Q_GET] = "SELECT status, answer_time, duration FROM call_logs "
		  "WHERE id = ?1",
	[Q_ANSWER] = "UPDATE call_logs SET status = 'answered', "
		     "answer_time = ?2 WHERE id = ?1 AND status = 'initiated'",
	[Q_END] = "UPDATE call_logs SET status = 'ended', end_time = ?2, "
		  "duration = ?3 WHERE id = ?1 AND status = 'answered'",
	[Q_UNANSWERED] = "UPDATE call_logs SET status = ?3, end_time = ?2, "
			 "duration = 0 WHERE id = ?1 AND status = 'initiated'",
	[Q_STALE] = "UPDATE call_logs SET status = 'missed', end_time = ?2, "
		    "duration = 0 WHERE channel LIKE 'webrtc-call-%' "
		    "AND status = 'initiated' AND start_time <= ?1",
};

/* What each way of ending makes of a ringing row, and whether it ends an
 * answered one. */
static const struct {
	const char *ringing;
	bool answered;
} ends[] = {
	[CALLLOG_HANGUP] = { "cancelled", true },
	[CALLLOG_REJECTED] = { "rejected", true },
	[CALLLOG_MISSED] = { "missed", false },
	[CALLLOG_FAILED] = { "failed", false },
};

struct state {
	char status[16];
	char answer_time[40];
	int64_t duration;
};

int
calllog_find(struct db *db, const char *channel, struct calllog_row *row,
    struct err *e)
{
	struct db_stmt *st;
	const char *s;
	int r;

	if ((st = db_stmt(db, sql[Q_FIND], e)) == NULL)
		return -1;
	db_bind_text(st, 1, channel);
	if ((r = db_row(db, st, e)) != 1)
		return r;
	row->id = db_col_int(st, 0);
	row->caller_id = db_col_int(st, 1);
	row->callee_id = db_col_int(st, 2);
	s = db_col_text(st, 3);
	snprintf(row->status, sizeof(row->status), "%s", s != NULL ? s : "");
	db_reset(st);
	return 1;
}

/* Row id's state: 1, 0 when there is no such row, -1 on error. */
static int
state_get(struct db *db, int64_t id, struct state *s, struct err *e)
{
	struct db_stmt *st;
	const char *t;
	int r;

	if ((st = db_stmt(db, sql[Q_GET], e)) == NULL)
		return -1;
	db_bind_int(st, 1, id);
	if ((r = db_row(db, st, e)) != 1)
		return r;
	t = db_col_text(st, 0);
	snprintf(s->status, sizeof(s->status), "%s", t != NULL ? t : "");
	t = db_col_text(st, 1);
	snprintf(s->answer_time, sizeof(s->answer_time), "%s",
	    t != NULL ? t : "");
	s->duration = db_col_int(st, 2);
	db_reset(st);
	return 1;
}

/* Whole seconds from answer_time to at_us; 0 when it cannot be read or
 * at_us is not later. */
static int64_t
duration_s(const char *answer_time, int64_t at_us)
{
	int64_t answered;

	if (db_time_parse(answer_time, &answered) == -1 || at_us <= answered)
		return 0;
	return (at_us - answered) / US_PER_S;
}

int
calllog_answer(struct db *db, int64_t id, int64_t at_us, struct err *e)
{
	struct db_stmt *st;
	char stamp[40];

	if ((st = db_stmt(db, sql[Q_ANSWER], e)) == NULL)
		return -1;
	db_time_format(at_us, stamp, sizeof(stamp));
	db_bind_int(st, 1, id);
	db_bind_text(st, 2, stamp);
	if (db_done(db, st, e) == -1)
		return -1;
	return db_changes(db) > 0;
}

int
calllog_close(struct db *db, int64_t id, enum calllog_end how, int64_t at_us,
    int64_t *duration, struct err *e)
{
	struct state s;
	struct db_stmt *st;
	char stamp[40];
	int64_t d;
	int tries, r;
	enum q q;

	if ((unsigned)how >= sizeof(ends) / sizeof(ends[0]))
		return err_set(e, ERR_INTERNAL, "call log end %d unknown", how);
	db_time_format(at_us, stamp, sizeof(stamp));
	for (tries = 0; tries < CLOSE_TRIES; tries++) {
		if ((r = state_get(db, id, &s, e)) == -1)
			return -1;
		if (r == 0)
			s.duration = 0;
		if (r == 1 && ends[how].answered &&
		    strcmp(s.status, "answered") == 0) {
			q = Q_END;
			d = duration_s(s.answer_time, at_us);
		} else if (r == 1 && strcmp(s.status, "initiated") == 0) {
			q = Q_UNANSWERED;
			d = 0;
		} else {
			if (duration != NULL)
				*duration = s.duration;
			return 0;
		}
		if ((st = db_stmt(db, sql[q], e)) == NULL)
			return -1;
		db_bind_int(st, 1, id);
		db_bind_text(st, 2, stamp);
		if (q == Q_END)
			db_bind_int(st, 3, d);
		else
			db_bind_text(st, 3, ends[how].ringing);
		if (db_done(db, st, e) == -1)
			return -1;
		if (db_changes(db) > 0) {
			if (duration != NULL)
				*duration = d;
			return 1;
		}
	}
	return err_set(e, ERR_BUSY, "call log %lld keeps changing",
	    (long long)id);
}

int
calllog_miss_stale(struct db *db, int64_t before_us, int64_t at_us,
    struct err *e)
{
	struct db_stmt *st;
	char before[40], stamp[40];

	if ((st = db_stmt(db, sql[Q_STALE], e)) == NULL)
		return -1;
	db_time_format(before_us, before, sizeof(before));
	db_time_format(at_us, stamp, sizeof(stamp));
	db_bind_text(st, 1, before);
	db_bind_text(st, 2, stamp);
	return db_done(db, st, e);
}
