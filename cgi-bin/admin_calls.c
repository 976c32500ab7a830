/*
 * admin: the three routes the frontend's admin pages call that the
 * replaced backend never had: the live calls, a call placed between two
 * extensions, and a call ended by an admin.
 *
 * A call placed between two other extensions rings the first one's phone
 * and bridges it to the second: that is a PBX originate. The WebRTC path
 * of /protected/call/initiate cannot do it (it rings a browser on behalf
 * of the user asking, and no browser dials on a server's word), so
 * without Asterisk the route places nothing and answers 503.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "lib/audit.h"
#include "lib/auth.h"
#include "lib/calllog.h"
#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "cgi-bin/admin.h"
#include "cgi-bin/common.h"

#define WEBRTC_PREFIX  "webrtc-call-"
#define MSG_NO_PBX     "Asterisk is not configured"
#define MSG_NO_CALL    "Active call not found"
#define ACTIVE_MAX     500
/* A WebRTC row still open after a day was left behind, not live. */
#define OPEN_MAX_US (INT64_C(86400) * 1000000)

#define USER_COLS(t)                                                           \
	t ".id, " t ".username, " t ".email, " t ".extension, " t              \
	  ".status, " t ".role, " t ".is_online, " t ".last_login, " t         \
	  ".last_seen, " t ".created_at, " t ".updated_at"

enum q { Q_ACTIVE, Q_EXT, Q_ACTIVE_BY_CHANNEL, Q__MAX };
static const char *const sql[Q__MAX] = {
	/* The PBX's calls (active_calls) and the WebRTC calls still open
	 * (their call_logs rows), in the ActiveCall shape. */
	[Q_ACTIVE] =
	    "SELECT a.id, a.caller_id, a.callee_id, a.channel, a.status, "
	    "a.start_time, a.created_at, " USER_COLS("cu") ", " USER_COLS(
		"ce") " FROM active_calls a "
		      "LEFT JOIN users cu ON cu.id = a.caller_id "
		      "LEFT JOIN users ce ON ce.id = a.callee_id "
		      "UNION ALL "
		      "SELECT l.id, l.caller_id, l.callee_id, l.channel, "
		      "CASE l.status WHEN 'answered' THEN 'connected' ELSE "
		      "'ringing' END, "
		      "l.start_time, l.created_at, " USER_COLS(
			  "cu") ", " USER_COLS("ce") " FROM call_logs l "
						     "LEFT JOIN users cu ON "
						     "cu.id = l.caller_id "
						     "LEFT JOIN users ce ON "
						     "ce.id = l.callee_id "
						     "WHERE l.end_time IS NULL "
						     "AND l.status IN "
						     "('initiated', "
						     "'answered') "
						     "AND l.channel LIKE "
						     "'webrtc-call-%' AND "
						     "l.created_at >= ?1 "
						     "ORDER BY 7 DESC LIMIT ?2",
	[Q_EXT] = "SELECT id, username FROM users WHERE extension = ?1",
	[Q_ACTIVE_BY_CHANNEL] =
	    "SELECT id FROM active_calls WHERE channel = ?1",
};

enum { C_CALLER = 7, C_CALLEE = 18 };

static struct json_object *
party(struct db_stmt *st, int col)
{
	if (db_col_null(st, col))
		return cgi_user_zero();
	return cgi_user_render(st, col, true);
}

int
admin_active_calls(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	struct json_object *list, *o, *c;
	struct db_stmt *st;
	char since[40];
	int r;

	if ((list = json_object_new_array()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	db_time_format(db_now_us() - OPEN_MAX_US, since, sizeof(since));
	if ((st = db_stmt(db, sql[Q_ACTIVE], e)) == NULL) {
		json_object_put(list);
		return -1;
	}
	db_bind_text(st, 1, since);
	db_bind_int(st, 2, ACTIVE_MAX);
	while ((r = db_row(db, st, e)) == 1) {
		if ((c = json_object_new_object()) == NULL) {
			db_reset(st);
			r = err_set(e, ERR_INTERNAL, "out of memory");
			break;
		}
		/* ActiveCall (contract §1.5), declared order. */
		jh_add_int(c, "id", db_col_int(st, 0));
		jh_add_int(c, "caller_id", db_col_int(st, 1));
		jh_add_int(c, "callee_id", db_col_int(st, 2));
		json_object_object_add(c, "caller", party(st, C_CALLER));
		json_object_object_add(c, "callee", party(st, C_CALLEE));
		cgi_add_col_str(c, "channel", st, 3);
		cgi_add_col_str(c, "status", st, 4);
		cgi_add_col_time(c, "start_time", st, 5);
		cgi_add_col_time(c, "created_at", st, 6);
		json_object_array_add(list, c);
	}
	if (r == -1 || (o = json_object_new_object()) == NULL) {
		json_object_put(list);
		return r == -1 ? -1 : err_set(e, ERR_INTERNAL, "out of memory");
	}
	/* gin.H: sorted keys. */
	json_object_object_add(o, "active_calls", list);
	jh_add_int(o, "count", (int64_t)json_object_array_length(list));
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
}

struct call_in {
	const char *target_extension;
	const char *caller_extension;
};

static const struct jh_field call_fields[] = {
	{ "target_extension", JH_DIGITS, true, 1, 15,
	    offsetof(struct call_in, target_extension), 0 },
	{ "caller_extension", JH_DIGITS, true, 1, 15,
	    offsetof(struct call_in, caller_extension), 0 },
};

bool
admin_ami_configured(void)
{
	const char *h = config_get("AMI_HOST");

	return h != NULL && h[0] != '\0';
}

/* The user holding extension ext. */
struct holder {
	int64_t id;
	char username[64];
};

/* 1 with *h when a user has extension ext, 0 when none does. */
static int
ext_holder(struct db *db, const char *ext, struct holder *h, struct err *e)
{
	struct db_stmt *st;
	const char *s;
	int r;

	if ((st = db_stmt(db, sql[Q_EXT], e)) == NULL)
		return -1;
	db_bind_text(st, 1, ext);
	if ((r = db_row(db, st, e)) != 1)
		return r;
	h->id = db_col_int(st, 0);
	s = db_col_text(st, 1);
	snprintf(h->username, sizeof(h->username), "%s", s != NULL ? s : "");
	db_reset(st);
	return 1;
}

/* The audit row of a PBX action already done: a failure to write it is
 * logged, not answered, since the call was placed or ended all the same.
 * Takes details. */
static void
audit_done(struct db *db, int64_t actor, const char *action,
    struct json_object *details)
{
	struct err e = { 0 };

	if (details == NULL)
		log_msg(LOG_ERROR, "audit %s: out of memory", action);
	else if (db_begin(db, &e) == -1)
		log_msg(LOG_ERROR, "audit %s: %s", action, e.msg);
	else if (audit_insert(db, actor, action, "call_logs", details, &e) ==
		     -1 ||
		 db_commit(db, &e) == -1) {
		db_rollback(db);
		log_msg(LOG_ERROR, "audit %s: %s", action, e.msg);
	}
	json_object_put(details);
}

/*
 * A PBX call from the user holding caller_extension to target_extension,
 * placed as that user's own would be (cgi_pbx_originate: its rows, its
 * attempts, the relay's Originate ringing the caller's device first).
 */
int
admin_call(struct http_req *req, struct err *e)
{
	const struct auth_user *u;
	struct db *db = http_db(req);
	struct call_in in = { 0 };
	struct holder from, to;
	struct cgi_pbx_party caller, callee;
	struct json_object *reply, *o, *details;
	char call_id[CGI_PBX_CALL_ID_MAX];
	int r;

	if ((u = cgi_me(req, e)) == NULL ||
	    cgi_decode(req, call_fields, nitems(call_fields), &in, e) == -1)
		return -1;
	if (strcmp(in.caller_extension, in.target_extension) == 0)
		return err_set(e, ERR_INVALID, "Cannot call yourself");
	if ((r = ext_holder(db, in.caller_extension, &from, e)) == -1)
		return -1;
	if (r == 0)
		return err_set(e, ERR_NOTFOUND, "Caller extension not found");
	if ((r = ext_holder(db, in.target_extension, &to, e)) == -1)
		return -1;
	if (r == 0)
		return err_set(e, ERR_NOTFOUND, "Target extension not found");
	/* Checked first: without Asterisk no row is written at all. */
	if (!admin_ami_configured())
		return err_set(e, ERR_BUSY, MSG_NO_PBX);
	caller = (struct cgi_pbx_party){ from.id, in.caller_extension,
		from.username };
	callee =
	    (struct cgi_pbx_party){ to.id, in.target_extension, to.username };
	if ((reply = cgi_pbx_originate(db, http_config(req), &caller, &callee,
		 call_id, sizeof(call_id), e)) == NULL)
		return -1;
	json_object_put(reply);
	if ((details = json_object_new_object()) != NULL) {
		jh_add_str(details, "call_id", call_id);
		jh_add_str(details, "caller_extension", in.caller_extension);
		jh_add_str(details, "target_extension", in.target_extension);
	}
	audit_done(db, u->id, "call.originate", details);
	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	/* gin.H: sorted keys. */
	jh_add_str(o, "call_id", call_id);
	jh_add_str(o, "caller_extension", in.caller_extension);
	jh_add_str(o, "message", "Call initiated successfully");
	jh_add_bool(o, "success", true);
	jh_add_str(o, "target_extension", in.target_extension);
	http_reply_json(req, 200, o);
	return 0;
}

static int
terminate_webrtc(struct http_req *req, const char *call_id,
    const struct auth_user *u, struct err *e)
{
	struct db *db = http_db(req);
	struct json_object *details, *o;
	struct calllog_row row;
	int64_t duration = 0;
	int r;

	if ((details = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(details, "call_id", call_id);
	if (db_begin(db, e) == -1) {
		json_object_put(details);
		return -1;
	}
	if ((r = calllog_find(db, call_id, &row, e)) == -1)
		goto rollback;
	if (r == 0) {
		err_set(e, ERR_NOTFOUND, MSG_NO_CALL);
		goto rollback;
	}
	/* Guarded by its status: a call that ended meanwhile keeps its
	 * duration, and an ended one is not found. */
	if ((r = calllog_close(db, row.id, CALLLOG_HANGUP, db_now_us(),
		 &duration, e)) == -1)
		goto rollback;
	if (r == 0) {
		err_set(e, ERR_NOTFOUND, MSG_NO_CALL);
		goto rollback;
	}
	jh_add_int(details, "call_log_id", row.id);
	if (audit_insert(db, u->id, "call.terminate", "call_logs", details,
		e) == -1 ||
	    db_commit(db, e) == -1)
		goto rollback;
	json_object_put(details);
	cgi_relay_call_end(http_config(req), call_id, "");
	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(o, "call_id", call_id);
	jh_add_int(o, "duration", duration);
	jh_add_str(o, "message", "Call terminated successfully");
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
rollback:
	db_rollback(db);
	json_object_put(details);
	return -1;
}

int
admin_terminate_call(struct http_req *req, struct err *e)
{
	struct json_object *body, *rq, *reply, *details, *o, *v;
	const struct auth_user *u;
	struct db_stmt *st;
	const char *call_id;
	int64_t duration;
	int r;

	if ((u = cgi_me(req, e)) == NULL ||
	    (body = http_body_json(req, e)) == NULL)
		return -1;
	call_id = jh_get_str(body, "call_id");
	if (call_id == NULL || call_id[0] == '\0' || strlen(call_id) > 128)
		return err_set_field(e, ERR_INVALID, "call_id",
		    "Call ID is required");
	if (strncmp(call_id, WEBRTC_PREFIX, strlen(WEBRTC_PREFIX)) == 0)
		return terminate_webrtc(req, call_id, u, e);
	/* A PBX channel: only Asterisk can hang it up. */
	if ((st = db_stmt(http_db(req), sql[Q_ACTIVE_BY_CHANNEL], e)) == NULL)
		return -1;
	db_bind_text(st, 1, call_id);
	if ((r = db_row(http_db(req), st, e)) == -1)
		return -1;
	if (r == 0)
		return err_set(e, ERR_NOTFOUND, MSG_NO_CALL);
	db_reset(st);
	if (!admin_ami_configured())
		return err_set(e, ERR_BUSY, MSG_NO_PBX);
	/* The relay's own hangup, as the caller's would be, but for any
	 * party: the admin flag. */
	if ((rq = cgi_pbx_request("pbx_hangup", u->id, call_id, NULL)) != NULL)
		jh_add_bool(rq, "admin", true);
	if ((reply = cgi_pbx_ask(http_config(req), rq, e)) == NULL)
		return -1;
	duration = json_object_object_get_ex(reply, "duration", &v)
		       ? json_object_get_int64(v)
		       : 0;
	json_object_put(reply);
	if ((details = json_object_new_object()) != NULL)
		jh_add_str(details, "call_id", call_id);
	audit_done(http_db(req), u->id, "call.terminate", details);
	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(o, "call_id", call_id);
	jh_add_int(o, "duration", duration);
	jh_add_str(o, "message", "Call terminated successfully");
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
}
