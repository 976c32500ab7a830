/*
 * auth: the public routes (health, frontend config, login, register,
 * refresh). nginx also sends it every path no other program claims, so its
 * dispatch is where unknown routes get their 404.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "lib/auth.h"
#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/password.h"
#include "lib/users.h"
#include "cgi-bin/common.h"

enum q { Q_LOGIN_USER, Q_LOGIN_SET_ONLINE, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_LOGIN_USER] = "SELECT id, username, extension, role, password "
			 "FROM users WHERE username = ?1",
	[Q_LOGIN_SET_ONLINE] =
	    "UPDATE users SET status = 'online', is_online = 1, "
	    "last_login = ?2, last_seen = ?2, updated_at = ?2 WHERE id = ?1",
};

struct login_in {
	const char *username;
	const char *password;
};

static const struct jh_field login_fields[] = {
	{ "username", JH_TEXT, true, 1, 256,
	    offsetof(struct login_in, username), 0 },
	{ "password", JH_TEXT, true, 1, USERS_PASSWORD_MAX,
	    offsetof(struct login_in, password), 0 },
};

static const struct jh_field register_fields[] = {
	USERS_FIELD_USERNAME(struct users_new, true),
	USERS_FIELD_EMAIL(struct users_new, true),
	USERS_FIELD_PASSWORD(struct users_new, true),
	USERS_FIELD_EXTENSION(struct users_new, true),
};

/*
 * GET /health?detail=1 adds "ami": the manager link's state as the relay
 * reports it ("connected", "disconnected", "not configured", "standby"
 * (another relay drives Asterisk), or "unknown"
 * when the relay does not answer), with its reconnect count and the time
 * of its last change. Nothing else of the link (no host, no user) is
 * shown to an unauthenticated caller.
 */
static void
health_detail(struct http_req *req, struct json_object *o)
{
	struct json_object *rq, *reply = NULL, *ami, *h, *v;
	struct err e = { 0 };
	const char *state = "unknown";

	if ((rq = json_object_new_object()) == NULL ||
	    (ami = json_object_new_object()) == NULL) {
		json_object_put(rq);
		return;
	}
	jh_add_str(rq, "op", "pbx_health");
	if (ctl_call(http_config(req), rq, &reply, 1000, &e) == 0 &&
	    json_object_object_get_ex(reply, "ami", &h)) {
		if (json_object_object_get_ex(h, "enabled", &v) &&
		    !json_object_get_boolean(v))
			state = "not configured";
		else if ((v = json_object_object_get(h, "state")) != NULL &&
			 json_object_is_type(v, json_type_string) &&
			 strcmp(json_object_get_string(v), "standby") == 0)
			state = "standby";
		else if (json_object_object_get_ex(h, "connected", &v))
			state = json_object_get_boolean(v) ? "connected"
							   : "disconnected";
		if (json_object_object_get_ex(h, "reconnects", &v))
			jh_add_int(ami, "reconnects", json_object_get_int64(v));
		if (json_object_object_get_ex(h, "since", &v))
			json_object_object_add(ami, "since",
			    json_object_get(v));
	}
	jh_add_str(ami, "state", state);
	json_object_object_add(o, "ami", ami);
	json_object_put(reply);
	json_object_put(rq);
}

static int
health(struct http_req *req, struct err *e)
{
	struct json_object *o;
	const char *d;

	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_int(o, "response_time_ms", 0);
	jh_add_str(o, "service", "voip-backend");
	jh_add_str(o, "status", "ok");
	jh_add_int(o, "timestamp", (int64_t)time(NULL));
	if ((d = http_query(req, "detail")) != NULL && strcmp(d, "1") == 0)
		health_detail(req, o);
	http_reply_json(req, 200, o);
	return 0;
}

static int
config_get_route(struct http_req *req, struct err *e)
{
	struct json_object *c, *o;

	if ((c = cgi_frontend_config(req, e)) == NULL)
		return -1;
	if ((o = cgi_ok("config", c)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

/* The user row of username into u and hash. 0 absent, 1 found, -1 error. */
static int
login_lookup(struct db *db, const char *username, struct auth_user *u,
    char *hash, size_t hashsize, struct err *e)
{
	struct db_stmt *st;
	const char *s;
	int r;

	if ((st = db_stmt(db, sql[Q_LOGIN_USER], e)) == NULL)
		return -1;
	db_bind_text(st, 1, username);
	if ((r = db_row(db, st, e)) != 1)
		return r;
	memset(u, 0, sizeof(*u));
	u->id = db_col_int(st, 0);
	s = db_col_text(st, 1);
	snprintf(u->username, sizeof(u->username), "%s", s ? s : "");
	s = db_col_text(st, 2);
	snprintf(u->extension, sizeof(u->extension), "%s", s ? s : "");
	s = db_col_text(st, 3);
	snprintf(u->role, sizeof(u->role), "%s", s ? s : "user");
	u->is_admin = strcmp(u->role, "admin") == 0;
	s = db_col_text(st, 4);
	snprintf(hash, hashsize, "%s", s ? s : "");
	db_reset(st);
	return 1;
}

static int
login_set_online(struct db *db, int64_t id, struct err *e)
{
	struct db_stmt *st;
	char now[40];

	db_now(now, sizeof(now));
	if ((st = db_stmt(db, sql[Q_LOGIN_SET_ONLINE], e)) == NULL)
		return -1;
	db_bind_int(st, 1, id);
	db_bind_text(st, 2, now);
	return db_done(db, st, e);
}

/* Sleep ms milliseconds, whatever signals arrive meanwhile. */
static void
login_wait(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
login(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct config *cfg = http_config(req);
	struct login_in in = { 0 };
	struct auth_user u = { 0 };
	struct json_object *user = NULL, *o;
	char hash[PASSWORD_HASH_MAX * 2], addr[64];
	char *token = NULL;
	int found, delay_ms, rc = -1;
	bool ok;

	if (cgi_decode(req, login_fields, nitems(login_fields), &in, e) == -1)
		return -1;
	http_client_addr(req, addr, sizeof(addr));
	if (auth_login_begin(db, in.username, addr, &delay_ms, e) == -1)
		goto out;
	/* Others' failures slow this account down; they never lock it. */
	if (delay_ms > 0)
		login_wait(delay_ms);
	hash[0] = '\0';
	if ((found = login_lookup(db, in.username, &u, hash, sizeof(hash),
		 e)) == -1)
		goto out;
	/* An unknown user costs a hash check too, and reads the same. */
	ok = password_verify(in.password, found ? hash : NULL) && found;
	explicit_bzero(hash, sizeof(hash));
	if (!ok) {
		/* auth_login_begin has counted it already. */
		err_set(e, ERR_AUTH, "Invalid credentials");
		goto out;
	}

	if (db_begin(db, e) == -1)
		goto out;
	if (auth_login_succeeded(db, in.username, addr, e) == -1 ||
	    login_set_online(db, u.id, e) == -1 ||
	    cgi_notify_user_status(db, u.id, &user, e) == -1 ||
	    auth_token_issue(db, cfg, &u, &token, NULL, e) == -1 ||
	    db_commit(db, e) == -1) {
		db_rollback(db);
		goto out;
	}
	ctl_kick(cfg);

	if ((o = json_object_new_object()) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		goto out;
	}
	jh_add_str(o, "message", "Login successful");
	jh_add_bool(o, "success", true);
	jh_add_str(o, "token", token);
	json_object_object_add(o, "user", user);
	user = NULL;
	http_reply_json(req, 200, o);
	rc = 0;
out:
	cgi_wipe(in.password);
	json_object_put(user);
	if (token != NULL) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	return rc;
}

/*
 * Before the hash, in one write transaction: a taken username, email or
 * extension is 409 and an address past its registrations 429, both
 * writing nothing; else the registration counts for the address. The
 * insert checks what is taken again, in its own transaction.
 */
static int
register_admit(struct http_req *req, const struct users_new *in, struct err *e)
{
	struct db *db = http_db(req);
	char addr[64];

	http_client_addr(req, addr, sizeof(addr));
	if (db_begin(db, e) == -1)
		return -1;
	if (users_conflicts(db, 0, in->username, in->email, in->extension, e) ==
		-1 ||
	    auth_register_record(db, addr,
		http_config(req)->register_per_addr_hour, e) == -1 ||
	    db_commit(db, e) == -1) {
		db_rollback(db);
		return -1;
	}
	return 0;
}

static int
register_user(struct http_req *req, struct err *e)
{
	struct users_new in = { .role = "user" };
	struct json_object *user = NULL;
	int rc = -1;

	if (cgi_decode(req, register_fields, nitems(register_fields), &in, e) ==
	    -1)
		return -1;
	if (!users_username_valid(in.username))
		err_set_field(e, ERR_INVALID, "username",
		    "Invalid request format");
	else if (register_admit(req, &in, e) == 0)
		rc = cgi_user_create(http_db(req), &in, 0, "user.register",
		    &user, e);
	cgi_wipe(in.password);
	if (rc == -1)
		return -1;
	return cgi_reply_user(req, 201, "User registered successfully", user,
	    e);
}

static int
refresh(struct http_req *req, struct err *e)
{
	const struct auth_user *u;
	struct json_object *o;
	char *token = NULL;

	if (http_authenticate(req, e) == -1)
		return -1;
	if ((u = http_user(req)) == NULL)
		return err_set(e, ERR_INTERNAL, "authenticated without a user");
	/* A new jti at the current generation: revoking still catches it. */
	if (auth_token_issue(http_db(req), http_config(req), u, &token, NULL,
		e) == -1)
		return -1;
	o = cgi_ok("token", json_object_new_string(token));
	explicit_bzero(token, strlen(token));
	free(token);
	if (o == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

static const struct http_route routes[] = {
	{ HTTP_GET, "/health", HTTP_PUBLIC, health, 0 },
	{ HTTP_GET, "/config", HTTP_PUBLIC, config_get_route, 0 },
	{ HTTP_POST, "/api/login", HTTP_PUBLIC, login, 0 },
	{ HTTP_POST, "/api/register", HTTP_PUBLIC, register_user, 0 },
	{ HTTP_POST, "/api/refresh", HTTP_PUBLIC, refresh, 0 },
};

int
main(void)
{
	return cgi_serve("auth", routes, nitems(routes));
}
