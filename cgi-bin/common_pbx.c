/*
 * PBX calls through the relay's AMI link, shared by the calls program (a
 * user's own call) and the admin program (a call placed between two
 * extensions): the call id, the two rows a call has while it lives, the
 * Originate and the Hangup asked of the relay, and the call-attempt limit
 * that WebRTC calls share.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

#include <json-c/json.h>

#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "cgi-bin/common.h"

#define PBX_CTL_TIMEOUT_MS 3000
#define RELAY_END_TIMEOUT_MS 2000 /* the relay answers at once or not at all */
#define MSG_TOO_MANY       "Too many call attempts"
#define US_PER_S           INT64_C(1000000)
/* The minute of CALL_ATTEMPTS_PER_MIN. */
#define ATTEMPTS_WINDOW_US (60 * US_PER_S)

enum q {
	Q_ATTEMPTS,
	Q_LOG_INSERT,
	Q_ACTIVE_INSERT,
	Q_LOG_DELETE,
	Q_ACTIVE_DELETE,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_ATTEMPTS] = "SELECT count(*), min(created_at) FROM call_logs "
		       "WHERE caller_id = ?1 AND created_at > ?2",
	[Q_LOG_INSERT] = "INSERT INTO call_logs (caller_id, callee_id, "
			 "start_time, status, channel, direction, "
			 "created_at) VALUES (?1, ?2, ?3, 'initiated', ?4, "
			 "'outbound', ?3) RETURNING id",
	[Q_ACTIVE_INSERT] = "INSERT INTO active_calls (caller_id, "
			    "callee_id, channel, status, start_time, "
			    "created_at) VALUES (?1, ?2, ?3, 'ringing', "
			    "?4, ?4)",
	[Q_LOG_DELETE] = "DELETE FROM call_logs WHERE id = ?1",
	[Q_ACTIVE_DELETE] = "DELETE FROM active_calls WHERE channel = ?1",
};

/*
 * The rows are the count: a call that failed at once still wrote one, and
 * a repeat writes none, so it costs nothing. Retry-After is when the
 * oldest of them leaves the minute.
 */
int
cgi_pbx_attempts_check(struct db *db, const struct config *cfg, int64_t caller,
    int64_t now_us, struct err *e)
{
	int64_t n, oldest_us, wait_us;
	struct db_stmt *st;
	const char *t;
	char since[40];
	int rc;

	if (cfg->call_attempts_per_min <= 0)
		return 0;
	db_time_format(now_us - ATTEMPTS_WINDOW_US, since, sizeof(since));
	if ((st = db_stmt(db, sql[Q_ATTEMPTS], e)) == NULL)
		return -1;
	db_bind_int(st, 1, caller);
	db_bind_text(st, 2, since);
	if ((rc = db_row(db, st, e)) != 1) /* -1 keeps its code: BUSY is 503 */
		return rc == -1
			   ? -1
			   : err_set(e, ERR_INTERNAL, "call attempts: no row");
	n = db_col_int(st, 0);
	t = db_col_text(st, 1);
	if (t == NULL || db_time_parse(t, &oldest_us) == -1)
		oldest_us = now_us;
	db_reset(st);
	if (n < cfg->call_attempts_per_min)
		return 0;
	wait_us = oldest_us + ATTEMPTS_WINDOW_US - now_us;
	err_set(e, ERR_RATE_LIMITED, MSG_TOO_MANY);
	if (e != NULL) {
		e->retry_after_s = (int)((wait_us + US_PER_S - 1) / US_PER_S);
		if (e->retry_after_s < 1)
			e->retry_after_s = 1;
	}
	return -1;
}

/* The time, then 64 random bits. */
int
cgi_pbx_call_id(char *buf, size_t size, struct err *e)
{
	uint64_t rnd;

	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return err_set(e, ERR_INTERNAL, "getrandom failed");
	snprintf(buf, size, CGI_PBX_PREFIX "%lld-%016" PRIx64,
	    (long long)time(NULL), rnd);
	return 0;
}

struct json_object *
cgi_pbx_ask(const struct config *cfg, struct json_object *rq, struct err *e)
{
	struct json_object *reply = NULL, *v;
	const char *code, *msg;
	struct err ce = { 0 };

	if (rq == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (ctl_call(cfg, rq, &reply, PBX_CTL_TIMEOUT_MS, &ce) == -1) {
		json_object_put(rq);
		log_msg(LOG_WARN, "pbx: relay: %s", ce.msg);
		err_set(e, ERR_BUSY, "Call service is unavailable");
		return NULL;
	}
	json_object_put(rq);
	if (json_object_object_get_ex(reply, "ok", &v) &&
	    json_object_get_boolean(v))
		return reply;
	code = jh_get_str(reply, "code");
	msg = jh_get_str(reply, "error");
	if (msg == NULL)
		msg = CGI_PBX_MSG_NO_ASTERISK;
	if (code != NULL && strcmp(code, "notfound") == 0)
		err_set(e, ERR_NOTFOUND, "%s", msg);
	else if (code != NULL && strcmp(code, "conflict") == 0)
		err_set(e, ERR_CONFLICT, "%s", msg);
	else if (code != NULL && strcmp(code, "invalid") == 0)
		err_set(e, ERR_INTERNAL, "relay refused: %s", msg);
	else
		err_set(e, ERR_BUSY, "%s", msg);
	json_object_put(reply);
	return NULL;
}

int
cgi_pbx_rows_insert(struct db *db, const struct config *cfg, int64_t caller,
    int64_t callee, const char *call_id, int64_t *log_id, struct err *e)
{
	struct db_stmt *st;
	int64_t now_us;
	char now[40];
	int r;

	if (db_begin(db, e) == -1)
		return -1;
	now_us = db_now_us();
	if (cgi_pbx_attempts_check(db, cfg, caller, now_us, e) == -1)
		goto fail;
	db_time_format(now_us, now, sizeof(now));
	if ((st = db_stmt(db, sql[Q_LOG_INSERT], e)) == NULL)
		goto fail;
	db_bind_int(st, 1, caller);
	db_bind_int(st, 2, callee);
	db_bind_text(st, 3, now);
	db_bind_text(st, 4, call_id);
	if ((r = db_row(db, st, e)) != 1) {
		if (r == 0)
			err_set(e, ERR_INTERNAL, "insert returned no id");
		goto fail;
	}
	*log_id = db_col_int(st, 0);
	if (db_done(db, st, e) == -1 ||
	    (st = db_stmt(db, sql[Q_ACTIVE_INSERT], e)) == NULL)
		goto fail;
	db_bind_int(st, 1, caller);
	db_bind_int(st, 2, callee);
	db_bind_text(st, 3, call_id);
	db_bind_text(st, 4, now);
	if (db_done(db, st, e) == -1 || db_commit(db, e) == -1)
		goto fail;
	return 0;
fail:
	db_rollback(db);
	return -1;
}

void
cgi_pbx_rows_delete(struct db *db, int64_t log_id, const char *call_id)
{
	struct db_stmt *st;
	struct err e = { 0 };

	if (db_begin(db, &e) == -1)
		goto fail;
	if ((st = db_stmt(db, sql[Q_ACTIVE_DELETE], &e)) == NULL)
		goto fail;
	db_bind_text(st, 1, call_id);
	if (db_done(db, st, &e) == -1 ||
	    (st = db_stmt(db, sql[Q_LOG_DELETE], &e)) == NULL)
		goto fail;
	db_bind_int(st, 1, log_id);
	if (db_done(db, st, &e) == -1 || db_commit(db, &e) == -1)
		goto fail;
	return;
fail:
	db_rollback(db);
	log_msg(LOG_ERROR, "call %s: removing its rows: %s", call_id, e.msg);
}

struct json_object *
cgi_pbx_originate(struct db *db, const struct config *cfg,
    const struct cgi_pbx_party *caller, const struct cgi_pbx_party *callee,
    char *call_id, size_t size, struct err *e)
{
	struct json_object *rq, *reply;
	int64_t log_id = 0;

	if (cgi_pbx_call_id(call_id, size, e) == -1 ||
	    cgi_pbx_rows_insert(db, cfg, caller->id, callee->id, call_id,
		&log_id, e) == -1)
		return NULL;
	if ((rq = json_object_new_object()) != NULL) {
		jh_add_str(rq, "op", "pbx_originate");
		jh_add_str(rq, "call_id", call_id);
		jh_add_int(rq, "log_id", log_id);
		jh_add_int(rq, "caller_id", caller->id);
		jh_add_int(rq, "callee_id", callee->id);
		jh_add_str(rq, "caller_extension", caller->extension);
		jh_add_str(rq, "callee_extension", callee->extension);
		jh_add_str(rq, "caller_name", caller->username);
	}
	if ((reply = cgi_pbx_ask(cfg, rq, e)) == NULL)
		cgi_pbx_rows_delete(db, log_id, call_id);
	return reply;
}

struct json_object *
cgi_pbx_request(const char *op, int64_t user_id, const char *call_id,
    const char *channel)
{
	struct json_object *rq;

	if ((rq = json_object_new_object()) == NULL)
		return NULL;
	jh_add_str(rq, "op", op);
	jh_add_int(rq, "user_id", user_id);
	if (call_id != NULL && call_id[0] != '\0')
		jh_add_str(rq, "call_id", call_id);
	if (channel != NULL && channel[0] != '\0')
		jh_add_str(rq, "channel", channel);
	return rq;
}

void
cgi_relay_call_end(const struct config *cfg, const char *call_id,
    const char *by_extension)
{
	struct json_object *rq, *reply = NULL;
	struct err e = { 0 };

	if ((rq = json_object_new_object()) == NULL)
		return;
	jh_add_str(rq, "op", "call_end");
	jh_add_str(rq, "call_id", call_id);
	jh_add_str(rq, "by_extension", by_extension);
	if (ctl_call(cfg, rq, &reply, RELAY_END_TIMEOUT_MS, &e) == -1)
		log_msg(LOG_WARN, "call %s end: %s", call_id, e.msg);
	json_object_put(reply);
	json_object_put(rq);
}
