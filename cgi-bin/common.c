#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "lib/audit.h"
#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/notify.h"
#include "lib/stats.h"
#include "lib/users.h"
#include "cgi-bin/common.h"

/* A request waits this long for another writer before it answers 503. */
#define CGI_BUSY_MS 5000

enum q { Q_USER_BY_ID, Q_SETTINGS, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_USER_BY_ID] = "SELECT " CGI_USER_COLUMNS " FROM users WHERE id = ?1",
	[Q_SETTINGS] = "SELECT key, value FROM settings",
};

/* What every FastCGI program opens at start and closes at exit. */
struct cgi {
	struct config cfg;
	struct db *db;
	struct http *http;
};

/* The database, all migrations applied; logs why not. */
static struct db *
open_db(const struct config *cfg)
{
	struct err e = { 0 };
	struct db *db;

	if ((db = db_open_current(config_db_target(cfg), CGI_BUSY_MS,
		 &e)) == NULL)
		log_msg(LOG_ERROR, "database: %s", e.msg);
	return db;
}

static void
cgi_close(struct cgi *cgi)
{
	http_close(cgi->http);
	cgi->http = NULL;
	db_close(cgi->db);
	cgi->db = NULL;
	config_wipe(&cgi->cfg);
}

/*
 * Under FastCGI http_open forks the workers and returns only in them, so
 * each worker opens its own database connection. On failure logs why.
 */
static int
cgi_open(struct cgi *cgi, const char *program)
{
	struct err e = { 0 };
	struct db *db;

	memset(cgi, 0, sizeof(*cgi));
	if (config_load(&cgi->cfg, &e) == -1) {
		log_init(program, false);
		log_msg(LOG_ERROR, "config: %s%s%s", e.msg,
		    e.field[0] != '\0' ? " in " : "", e.field);
		return -1;
	}
	log_init(program, cgi->cfg.debug);
	/* Checked before http_open forks the workers, so a database that is
	 * not there fails the program once instead of every worker. */
	if ((db = open_db(&cgi->cfg)) == NULL)
		goto fail;
	db_close(db);
	/* A SQLite connection must not cross fork: each worker opens its
	 * own after http_open, which returns in the workers only. */
	if ((cgi->http = http_open(program, &cgi->cfg, NULL, &e)) == NULL) {
		log_msg(LOG_ERROR, "http: %s", e.msg);
		goto fail;
	}
	if ((cgi->db = open_db(&cgi->cfg)) == NULL)
		goto fail;
	http_set_db(cgi->http, cgi->db);
	return 0;
fail:
	cgi_close(cgi);
	return -1;
}

int
cgi_serve(const char *program, const struct http_route *routes, size_t nroutes)
{
	struct cgi cgi;
	struct http_req *req;

	if (cgi_open(&cgi, program) == -1)
		return 1;
	while ((req = http_accept(cgi.http)) != NULL)
		http_dispatch(req, routes, nroutes);
	cgi_close(&cgi);
	return 0;
}

int
cgi_reply_user(struct http_req *req, int status, const char *message,
    struct json_object *user, struct err *e)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL) {
		json_object_put(user);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	jh_add_str(o, "message", message);
	jh_add_bool(o, "success", true);
	json_object_object_add(o, "user", user);
	http_reply_json(req, status, o);
	return 0;
}

static const char *
col_text(struct db_stmt *st, int i)
{
	return db_col_text(st, i);
}

void
cgi_add_col_str(struct json_object *o, const char *key, struct db_stmt *st,
    int i)
{
	const char *s = col_text(st, i);

	jh_add_str(o, key, s != NULL ? s : "");
}

void
cgi_add_col_time(struct json_object *o, const char *key, struct db_stmt *st,
    int i)
{
	jh_add_str(o, key, col_text(st, i));
}

struct json_object *
cgi_user_render(struct db_stmt *st, int col, bool with_updated)
{
	struct json_object *o;
	char fresh[40];

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_int(o, "id", db_col_int(st, col));
	cgi_add_col_str(o, "username", st, col + 1);
	cgi_add_col_str(o, "email", st, col + 2);
	cgi_add_col_str(o, "extension", st, col + 3);
	cgi_add_col_str(o, "status", st, col + 4);
	cgi_add_col_str(o, "role", st, col + 5);
	jh_add_bool(o, "is_online", db_col_bool(st, col + 6));
	cgi_add_col_time(o, "last_login", st, col + 7);
	cgi_add_col_time(o, "last_seen", st, col + 8);
	cgi_add_col_time(o, "created_at", st, col + 9);
	if (with_updated)
		cgi_add_col_time(o, "updated_at", st, col + 10);
	/* What the Contacts page reads: true while the user has a socket or
	 * a fresh heartbeat (lib/stats.h), where is_online alone stays true
	 * for a browser closed without logging out until the sweep. */
	stats_fresh_since((int64_t)time(NULL), fresh, sizeof(fresh));
	jh_add_bool(o, "online",
	    stats_online(db_col_bool(st, col + 6), db_col_text(st, col + 8),
		fresh));
	return o;
}

/* The relay answers at once or is not there: a list waits no longer. */
#define CGI_WHO_MS 300

void
cgi_users_mark_sockets(struct http_req *req, struct json_object *list)
{
	struct json_object *rq, *reply = NULL, *exts, *u, *v;
	struct err e = { 0 };
	const char *ext;
	size_t i, n;

	if (list == NULL || (n = json_object_array_length(list)) == 0 ||
	    (rq = json_object_new_object()) == NULL)
		return;
	jh_add_str(rq, "op", "who");
	if (ctl_call(http_config(req), rq, &reply, CGI_WHO_MS, &e) == 0 &&
	    json_object_object_get_ex(reply, "extensions", &exts) &&
	    json_object_is_type(exts, json_type_object))
		for (i = 0; i < n; i++) {
			u = json_object_array_get_idx(list, i);
			if ((ext = jh_get_str(u, "extension")) != NULL &&
			    ext[0] != '\0' &&
			    json_object_object_get_ex(exts, ext, &v) &&
			    json_object_get_int64(v) > 0)
				jh_add_bool(u, "online", true);
		}
	json_object_put(reply);
	json_object_put(rq);
}

struct json_object *
cgi_user_zero(void)
{
	static const char zero_time[] = "0001-01-01T00:00:00Z";
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_int(o, "id", 0);
	jh_add_str(o, "username", "");
	jh_add_str(o, "email", "");
	jh_add_str(o, "extension", "");
	jh_add_str(o, "status", "");
	jh_add_str(o, "role", "");
	jh_add_bool(o, "is_online", false);
	jh_add_null(o, "last_login");
	jh_add_null(o, "last_seen");
	jh_add_str(o, "created_at", zero_time);
	jh_add_str(o, "updated_at", zero_time);
	jh_add_bool(o, "online", false);
	return o;
}

struct db_stmt *
cgi_user_row(struct db *db, int64_t id, struct err *e)
{
	struct db_stmt *st;
	int r;

	if ((st = db_stmt(db, sql[Q_USER_BY_ID], e)) == NULL)
		return NULL;
	db_bind_int(st, 1, id);
	if ((r = db_row(db, st, e)) == 1)
		return st;
	if (r == 0)
		err_set(e, ERR_NOTFOUND, "User not found");
	return NULL;
}

struct json_object *
cgi_user_by_id(struct db *db, int64_t id, struct err *e)
{
	struct json_object *o;
	struct db_stmt *st;

	if ((st = cgi_user_row(db, id, e)) == NULL)
		return NULL;
	o = cgi_user_render(st, 0, false);
	db_reset(st);
	if (o == NULL)
		err_set(e, ERR_INTERNAL, "out of memory");
	return o;
}

const struct auth_user *
cgi_me(struct http_req *req, struct err *e)
{
	const struct auth_user *u;

	if ((u = http_user(req)) == NULL)
		err_set(e, ERR_INTERNAL, "no user on an authenticated route");
	return u;
}

struct json_object *
cgi_ok(const char *key, struct json_object *val)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL) {
		json_object_put(val);
		return NULL;
	}
	if (strcmp(key, "success") < 0) {
		json_object_object_add(o, key, val);
		jh_add_bool(o, "success", true);
	} else {
		jh_add_bool(o, "success", true);
		json_object_object_add(o, key, val);
	}
	return o;
}

int
cgi_decode(struct http_req *req, const struct jh_field *fields, size_t nfields,
    void *out, struct err *e)
{
	struct json_object *body;
	char field[sizeof(e->field)];

	if ((body = http_body_json(req, e)) == NULL)
		return -1;
	if (jh_decode(body, fields, nfields, out, e) == 0)
		return 0;
	if (e->code != ERR_INVALID)
		return -1;
	snprintf(field, sizeof(field), "%s", e->field);
	return err_set_field(e, ERR_INVALID, field, "Invalid request format");
}

int
cgi_user_create(struct db *db, struct users_new *in, int64_t actor_id,
    const char *action, struct json_object **user, struct err *e)
{
	struct json_object *details = NULL, *u = NULL;
	int64_t id = 0;
	int rc = -1;

	*user = NULL;
	if (users_hash(in, e) == -1)
		goto out;
	if ((details = json_object_new_object()) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		goto out;
	}
	jh_add_str(details, "username", in->username);
	jh_add_str(details, "email", in->email);
	jh_add_str(details, "extension", in->extension);
	jh_add_str(details, "role", in->role != NULL ? in->role : "user");
	if (db_begin(db, e) == -1)
		goto out;
	if (users_insert(db, in, &id, e) == -1 ||
	    audit_user(db, actor_id, action, id, details, e) == -1 ||
	    (u = cgi_user_by_id(db, id, e)) == NULL || db_commit(db, e) == -1)
		goto rollback;
	*user = u;
	u = NULL;
	rc = 0;
	goto out;
rollback:
	db_rollback(db);
out:
	json_object_put(u);
	json_object_put(details);
	explicit_bzero(in->hash, sizeof(in->hash));
	return rc;
}

int
cgi_notify_user_status(struct db *db, int64_t id, struct json_object **user,
    struct err *e)
{
	struct json_object *p, *u = NULL;
	struct db_stmt *st;
	int rc;

	if ((st = cgi_user_row(db, id, e)) == NULL)
		return -1;
	if ((p = json_object_new_object()) == NULL ||
	    (user != NULL && (u = cgi_user_render(st, 0, false)) == NULL)) {
		db_reset(st);
		json_object_put(p);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	/* gin.H: keys sorted. The relay knows the live sockets; REST does
	 * not, so client_count and ws_connected say none, as upstream. */
	jh_add_int(p, "client_count", 0);
	cgi_add_col_str(p, "extension", st, CGI_COL_EXTENSION);
	jh_add_bool(p, "is_online", db_col_bool(st, CGI_COL_IS_ONLINE));
	cgi_add_col_time(p, "last_seen", st, CGI_COL_LAST_SEEN);
	cgi_add_col_str(p, "status", st, CGI_COL_STATUS);
	jh_add_int(p, "timestamp", (int64_t)time(NULL));
	jh_add_str(p, "type", "user_status_changed");
	jh_add_int(p, "user_id", db_col_int(st, CGI_COL_ID));
	cgi_add_col_str(p, "username", st, CGI_COL_USERNAME);
	jh_add_bool(p, "ws_connected", false);
	db_reset(st);
	if ((rc = notify_enqueue(db, NOTIFY_ALL, "", p, e)) == 0 &&
	    user != NULL) {
		*user = u;
		u = NULL;
	}
	json_object_put(u);
	json_object_put(p);
	return rc;
}

/* A port number as /config/update stores it; 0 when it is not one. */
static int
port_parse(const char *s)
{
	int64_t v;

	if (s == NULL || cgi_parse_id(s, &v) == -1 || v > 65535)
		return 0;
	return (int)v;
}

struct json_object *
cgi_frontend_config(struct http_req *req, struct err *e)
{
	const struct config *cfg = http_config(req);
	struct db *db = http_db(req);
	struct json_object *o, *ast;
	struct db_stmt *st;
	char origin[512], url[600], host[256];
	const char *k, *v;
	int sip_port = cfg->sip_port, port, r;

	/* No ASTERISK_HOST: upstream's probe settles on localhost. */
	snprintf(host, sizeof(host), "%s",
	    cfg->asterisk_host[0] != '\0' ? cfg->asterisk_host : "localhost");
	if ((st = db_stmt(db, sql[Q_SETTINGS], e)) == NULL)
		return NULL;
	while ((r = db_row(db, st, e)) == 1) {
		k = col_text(st, 0);
		v = col_text(st, 1);
		if (k == NULL || v == NULL)
			continue;
		if (strcmp(k, CGI_SETTING_ASTERISK_HOST) == 0 && v[0] != '\0')
			snprintf(host, sizeof(host), "%s", v);
		else if (strcmp(k, CGI_SETTING_SIP_PORT) == 0 &&
			 (port = port_parse(v)) != 0)
			sip_port = port;
	}
	if (r == -1)
		return NULL;

	if ((o = json_object_new_object()) == NULL ||
	    (ast = json_object_new_object()) == NULL) {
		json_object_put(o);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	http_origin(req, origin, sizeof(origin));
	jh_add_str(o, "api_url", origin);
	if (strncmp(origin, "https://", 8) == 0)
		snprintf(url, sizeof(url), "wss://%s/ws", origin + 8);
	else if (strncmp(origin, "http://", 7) == 0)
		snprintf(url, sizeof(url), "ws://%s/ws", origin + 7);
	else
		snprintf(url, sizeof(url), "ws://%s/ws", origin);
	jh_add_str(o, "ws_url", url);
	/* The Go struct's declared order, not sorted. */
	jh_add_str(ast, "host", host);
	snprintf(url, sizeof(url), "ws://%s:%d/asterisk/ws", host, sip_port);
	jh_add_str(ast, "ws_url", url);
	json_object_object_add(o, "asterisk", ast);
	jh_add_str(o, "environment", cfg->environment);
	jh_add_bool(o, "debug", cfg->debug);
	jh_add_str(o, "service", cfg->service_name);
	return o;
}

int
cgi_parse_id(const char *s, int64_t *id)
{
	size_t n;
	char *end;
	long long v;

	if (s == NULL || (n = strlen(s)) == 0 || n > 19 ||
	    strspn(s, "0123456789") != n)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -1;
	*id = (int64_t)v;
	return 0;
}

void
cgi_wipe(const char *s)
{
	if (s != NULL)
		explicit_bzero((void *)(uintptr_t)s, strlen(s));
}
