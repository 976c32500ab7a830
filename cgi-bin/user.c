/*
 * user: what a signed-in user does to and asks about accounts: profile,
 * logout, presence (status, heartbeat), the online list and lookups.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "lib/auth.h"
#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/notify.h"
#include "lib/ticket.h"
#include "lib/users.h"
#include "cgi-bin/common.h"

/* How long heartbeat waits for the relay's list of live sockets. */
#define WHO_TIMEOUT_MS 300

enum q {
	Q_LOGOUT,
	Q_STATUS_SET,
	Q_HEARTBEAT_SEEN,
	Q_HEARTBEAT_ONLINE,
	Q_ONLINE_LIST,
	Q_BY_EXTENSION,
	Q_AUTH_EXISTS,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_LOGOUT] = "UPDATE users SET status = 'offline', is_online = 0, "
		     "last_seen = ?2, updated_at = ?2 WHERE id = ?1",
	[Q_STATUS_SET] =
	    "UPDATE users SET status = ?2, last_seen = ?3, updated_at = ?3, "
	    "is_online = CASE CAST(?2 AS text) WHEN 'online' THEN 1 "
	    "WHEN 'offline' THEN 0 "
	    "ELSE is_online END WHERE id = ?1",
	[Q_HEARTBEAT_SEEN] =
	    "UPDATE users SET last_seen = ?2, updated_at = ?2 WHERE id = ?1",
	[Q_HEARTBEAT_ONLINE] = "UPDATE users SET status = 'online', "
			       "is_online = 1 WHERE id = ?1",
	[Q_ONLINE_LIST] = "SELECT " CGI_USER_COLUMNS " FROM users "
			  "WHERE status = 'online' AND id != ?1 ORDER BY id",
	[Q_BY_EXTENSION] =
	    "SELECT " CGI_USER_COLUMNS " FROM users WHERE extension = ?1",
	[Q_AUTH_EXISTS] = "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1), "
			  "EXISTS (SELECT 1 FROM users WHERE username = ?2), "
			  "EXISTS (SELECT 1 FROM users WHERE extension = ?3)",
};

struct status_in {
	const char *status;
};

static const struct jh_field status_fields[] = {
	{ "status", JH_TEXT, true, 0, 64, offsetof(struct status_in, status),
	    0 },
};

static int
profile(struct http_req *req, struct err *e)
{
	const struct auth_user *u;
	struct json_object *user, *o;

	if ((u = cgi_me(req, e)) == NULL ||
	    (user = cgi_user_by_id(http_db(req), u->id, e)) == NULL)
		return -1;
	if ((o = cgi_ok("user", user)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

static int
exec_id_now(struct db *db, enum q q, int64_t id, const char *now, struct err *e)
{
	struct db_stmt *st;

	if ((st = db_stmt(db, sql[q], e)) == NULL)
		return -1;
	db_bind_int(st, 1, id);
	if (now != NULL)
		db_bind_text(st, 2, now);
	return db_done(db, st, e);
}

static int
logout(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct auth_user *u;
	struct json_object *o;
	char now[40];

	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	db_now(now, sizeof(now));
	if (db_begin(db, e) == -1)
		return -1;
	/* Revoking here is what makes the same token useless afterwards. */
	if (exec_id_now(db, Q_LOGOUT, u->id, now, e) == -1 ||
	    cgi_notify_user_status(db, u->id, NULL, e) == -1 ||
	    auth_revoke_user(db, u->id, e) == -1 || db_commit(db, e) == -1) {
		db_rollback(db);
		return -1;
	}
	ctl_kick(http_config(req));
	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(o, "message", "Logged out successfully");
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
}

static int
status_set(struct db *db, int64_t id, const char *status, const char *now,
    struct err *e)
{
	struct db_stmt *st;

	if ((st = db_stmt(db, sql[Q_STATUS_SET], e)) == NULL)
		return -1;
	db_bind_int(st, 1, id);
	db_bind_text(st, 2, status);
	db_bind_text(st, 3, now);
	return db_done(db, st, e);
}

static int
notify_user_status(struct db *db, const char *extension, const char *status,
    struct err *e)
{
	struct json_object *p;
	int rc;

	/* The WebSocket message struct's order, timestamp 0 as upstream. */
	if ((p = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(p, "type", "user_status");
	jh_add_str(p, "from", extension);
	jh_add_str(p, "status", status);
	jh_add_int(p, "timestamp", 0);
	rc = notify_enqueue(db, NOTIFY_ALL, "", p, e);
	json_object_put(p);
	return rc;
}

static int
status_update(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct auth_user *u;
	struct status_in in = { 0 };
	struct json_object *user = NULL;
	char now[40];

	if (cgi_decode(req, status_fields, nitems(status_fields), &in, e) == -1)
		return -1;
	if (!users_status_valid(in.status))
		return err_set_field(e, ERR_INVALID, "status", "%s",
		    USERS_STATUS_ERROR);
	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	db_now(now, sizeof(now));
	if (db_begin(db, e) == -1)
		return -1;
	if (status_set(db, u->id, in.status, now, e) == -1 ||
	    cgi_notify_user_status(db, u->id, &user, e) == -1 ||
	    notify_user_status(db, u->extension, in.status, e) == -1 ||
	    db_commit(db, e) == -1) {
		db_rollback(db);
		json_object_put(user);
		return -1;
	}
	ctl_kick(http_config(req));
	return cgi_reply_user(req, 200, "Status updated successfully", user, e);
}

/* Whether the relay holds a live WebSocket of extension. A relay that is
 * down or slow counts as no socket: heartbeat must not fail for it. */
static bool
has_socket(const struct config *cfg, const char *extension)
{
	struct json_object *rq, *reply = NULL, *n;
	struct err e = { 0 };
	bool live = false;

	if ((rq = json_object_new_object()) == NULL)
		return false;
	/* Asked about this extension only: one lookup in the relay. */
	jh_add_str(rq, "op", "who");
	jh_add_str(rq, "extension", extension);
	if (ctl_call(cfg, rq, &reply, WHO_TIMEOUT_MS, &e) == 0 &&
	    json_object_object_get_ex(reply, "clients", &n))
		live = json_object_get_int64(n) > 0;
	json_object_put(reply);
	json_object_put(rq);
	return live;
}

static int
heartbeat(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct auth_user *u;
	struct json_object *o;
	struct db_stmt *st;
	char now[40], status[16];
	bool online, live, promote;
	const char *s;

	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	/* Ask the relay before taking the write lock. */
	live = has_socket(http_config(req), u->extension);
	db_now(now, sizeof(now));
	if (db_begin(db, e) == -1)
		return -1;
	if ((st = cgi_user_row(db, u->id, e)) == NULL)
		goto rollback;
	s = db_col_text(st, CGI_COL_STATUS);
	snprintf(status, sizeof(status), "%s", s != NULL ? s : "");
	online = db_col_bool(st, CGI_COL_IS_ONLINE);
	db_reset(st);
	promote = live && strcmp(status, "offline") == 0;
	if (exec_id_now(db, Q_HEARTBEAT_SEEN, u->id, now, e) == -1 ||
	    (promote &&
		(exec_id_now(db, Q_HEARTBEAT_ONLINE, u->id, NULL, e) == -1 ||
		    cgi_notify_user_status(db, u->id, NULL, e) == -1)) ||
	    db_commit(db, e) == -1)
		goto rollback;
	if (promote)
		ctl_kick(http_config(req));

	/* The values from before this heartbeat, as upstream replies. */
	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_bool(o, "is_online", online);
	jh_add_str(o, "status", status);
	jh_add_bool(o, "success", true);
	jh_add_str(o, "timestamp", now);
	http_reply_json(req, 200, o);
	return 0;
rollback:
	db_rollback(db);
	return -1;
}

static int
users_online(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct auth_user *u;
	struct json_object *list = NULL, *user, *o;
	struct db_stmt *st;
	int r;

	if ((u = cgi_me(req, e)) == NULL ||
	    (st = db_stmt(db, sql[Q_ONLINE_LIST], e)) == NULL)
		return -1;
	db_bind_int(st, 1, u->id);
	while ((r = db_row(db, st, e)) == 1) {
		if ((list == NULL &&
			(list = json_object_new_array()) == NULL) ||
		    (user = cgi_user_render(st, 0, false)) == NULL) {
			db_reset(st);
			json_object_put(list);
			return err_set(e, ERR_INTERNAL, "out of memory");
		}
		json_object_array_add(list, user);
	}
	if (r == -1) {
		json_object_put(list);
		return -1;
	}
	cgi_users_mark_sockets(req, list);
	/* An empty Go slice that was never appended to: null, not []. */
	if ((o = cgi_ok("users", list)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

static int
user_by_extension(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	struct json_object *user, *o;
	struct db_stmt *st;
	const char *ext = http_param(req, "extension");
	int r;

	if (ext == NULL || ext[0] == '\0')
		return err_set(e, ERR_NOTFOUND, "User not found");
	if ((st = db_stmt(db, sql[Q_BY_EXTENSION], e)) == NULL)
		return -1;
	db_bind_text(st, 1, ext);
	if ((r = db_row(db, st, e)) == -1)
		return -1;
	if (r == 0)
		return err_set(e, ERR_NOTFOUND, "User not found");
	user = cgi_user_render(st, 0, false);
	db_reset(st);
	if (user == NULL || (o = cgi_ok("user", user)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

static int
debug_auth(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct auth_claims *c = http_claims(req);
	const struct auth_user *u;
	struct json_object *info, *o;
	struct db_stmt *st;
	bool id_exists, name_exists, ext_exists;
	int r;

	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	if (c == NULL)
		return err_set(e, ERR_INTERNAL, "no claims on a user route");
	if ((st = db_stmt(db, sql[Q_AUTH_EXISTS], e)) == NULL)
		return -1;
	db_bind_int(st, 1, c->user_id);
	db_bind_text(st, 2, c->username);
	db_bind_text(st, 3, c->extension);
	if ((r = db_row(db, st, e)) == -1)
		return -1;
	if (r == 0)
		return err_set(e, ERR_INTERNAL, "exists check gave no row");
	id_exists = db_col_int(st, 0) != 0;
	name_exists = db_col_int(st, 1) != 0;
	ext_exists = db_col_int(st, 2) != 0;
	db_reset(st);

	/* What the token says, and whether the database still agrees; the
	 * admin gate itself uses the database role. */
	if ((info = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(info, "extension", c->extension);
	jh_add_bool(info, "extension_exists", ext_exists);
	jh_add_bool(info, "is_admin", u->is_admin);
	jh_add_str(info, "role", c->role);
	jh_add_bool(info, "role_exists", c->role[0] != '\0');
	jh_add_int(info, "user_id", c->user_id);
	jh_add_bool(info, "user_id_exists", id_exists);
	jh_add_str(info, "username", c->username);
	jh_add_bool(info, "username_exists", name_exists);
	if ((o = cgi_ok("auth_info", info)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

/*
 * A single-use ticket for the WebSocket upgrade, so the long-lived token
 * stays out of the URL that proxies and servers log. Bound to this token's
 * generation and expiry (lib/ticket.h).
 */
static int
ws_ticket(struct http_req *req, struct err *e)
{
	const struct auth_claims *c = http_claims(req);
	struct db *db = http_db(req);
	char ticket[TICKET_LEN + 1];
	struct json_object *o;

	if (c == NULL)
		return err_set(e, ERR_INTERNAL, "ws-ticket without claims");
	if (db_begin(db, e) == -1)
		return -1;
	if (ticket_issue(db, c, db_now_us() / 1000000, ticket, e) == -1 ||
	    db_commit(db, e) == -1) {
		db_rollback(db);
		return -1;
	}
	if ((o = json_object_new_object()) == NULL) {
		explicit_bzero(ticket, sizeof(ticket));
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	jh_add_str(o, "ticket", ticket);
	jh_add_int(o, "expires_in", TICKET_TTL_S);
	explicit_bzero(ticket, sizeof(ticket));
	http_reply_json(req, 200, o);
	return 0;
}

static const struct http_route routes[] = {
	{ HTTP_GET, "/protected/profile", HTTP_USER, profile, 0 },
	{ HTTP_POST, "/protected/logout", HTTP_USER, logout, 0 },
	{ HTTP_PUT, "/protected/status", HTTP_USER, status_update, 0 },
	{ HTTP_POST, "/protected/heartbeat", HTTP_USER, heartbeat, 0 },
	{ HTTP_GET, "/protected/users/online", HTTP_USER, users_online, 0 },
	{ HTTP_GET, "/protected/users/:extension", HTTP_USER, user_by_extension,
	    0 },
	{ HTTP_GET, "/protected/debug/auth", HTTP_USER, debug_auth, 0 },
	{ HTTP_POST, "/protected/ws-ticket", HTTP_USER, ws_ticket, 0 },
};

int
main(void)
{
	return cgi_serve("user", routes, nitems(routes));
}
