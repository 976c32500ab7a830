/*
 * admin: account management and the runtime settings, for admins only.
 * Every change is one transaction with its notify and audit_log rows.
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
#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/users.h"
#include "cgi-bin/admin.h"
#include "cgi-bin/common.h"

enum q { Q_USERS_LIST, Q_USER_UPDATE, Q_SETTING_PUT, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_USERS_LIST] = "SELECT " CGI_USER_COLUMNS " FROM users ORDER BY id",
	[Q_USER_UPDATE] =
	    "UPDATE users SET username = COALESCE(?2, username), "
	    "email = COALESCE(?3, email), "
	    "extension = COALESCE(?4, extension), "
	    "role = COALESCE(?5, role), status = COALESCE(?6, status), "
	    "is_online = CASE CAST(?6 AS text) WHEN 'online' THEN 1 "
	    "WHEN 'offline' THEN 0 "
	    "ELSE is_online END, updated_at = ?7 WHERE id = ?1",
	[Q_SETTING_PUT] =
	    "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) "
	    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
	    "updated_at = excluded.updated_at",
};

static const struct jh_field create_fields[] = {
	USERS_FIELD_USERNAME(struct users_new, true),
	USERS_FIELD_EMAIL(struct users_new, true),
	USERS_FIELD_PASSWORD(struct users_new, true),
	USERS_FIELD_EXTENSION(struct users_new, true),
	{ "role", JH_TEXT, false, 0, 64, offsetof(struct users_new, role), 0 },
};

struct update_in {
	const char *username;
	const char *email;
	const char *extension;
	const char *role;
	const char *status;
};

static const struct jh_field update_fields[] = {
	USERS_FIELD_USERNAME(struct update_in, false),
	USERS_FIELD_EMAIL(struct update_in, false),
	USERS_FIELD_EXTENSION(struct update_in, false),
	{ "role", JH_TEXT, false, 0, 64, offsetof(struct update_in, role), 0 },
	{ "status", JH_TEXT, false, 0, 64, offsetof(struct update_in, status),
	    0 },
};

struct settings_in {
	const char *asterisk_host;
	const char *asterisk_ami_port;
	const char *sip_port;
};

/* Empty strings are accepted and mean "leave as is", as upstream. */
static const struct jh_field settings_fields[] = {
	{ "asterisk_host", JH_TEXT, false, 0, 253,
	    offsetof(struct settings_in, asterisk_host), 0 },
	{ "asterisk_ami_port", JH_DIGITS, false, 0, 5,
	    offsetof(struct settings_in, asterisk_ami_port), 0 },
	{ "sip_port", JH_DIGITS, false, 0, 5,
	    offsetof(struct settings_in, sip_port), 0 },
};

static int
list_users(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	struct json_object *users = NULL, *exts = NULL, *user, *o;
	struct db_stmt *st;
	const char *ext;
	int r;

	if ((st = db_stmt(db, sql[Q_USERS_LIST], e)) == NULL)
		return -1;
	while ((r = db_row(db, st, e)) == 1) {
		if (users == NULL) {
			users = json_object_new_array();
			exts = json_object_new_array();
		}
		ext = db_col_text(st, CGI_COL_EXTENSION);
		if (users == NULL || exts == NULL ||
		    (user = cgi_user_render(st, 0, false)) == NULL) {
			db_reset(st);
			r = err_set(e, ERR_INTERNAL, "out of memory");
			break;
		}
		json_object_array_add(users, user);
		json_object_array_add(exts,
		    json_object_new_string(ext != NULL ? ext : ""));
	}
	if (r == -1 || (o = json_object_new_object()) == NULL) {
		json_object_put(users);
		json_object_put(exts);
		return r == -1 ? -1 : err_set(e, ERR_INTERNAL, "out of memory");
	}
	cgi_users_mark_sockets(req, users);
	json_object_object_add(o, "extensions", exts);
	jh_add_bool(o, "success", true);
	json_object_object_add(o, "users", users);
	http_reply_json(req, 200, o);
	return 0;
}

static int
create_user(struct http_req *req, struct err *e)
{
	struct users_new in = { 0 };
	const struct auth_user *u;
	struct json_object *user = NULL;
	int rc = -1;

	if (cgi_decode(req, create_fields, nitems(create_fields), &in, e) == -1)
		return -1;
	if (!users_username_valid(in.username))
		err_set_field(e, ERR_INVALID, "username",
		    "Invalid request format");
	else if (in.role != NULL && !users_role_valid(in.role))
		err_set_field(e, ERR_INVALID, "role", "%s", USERS_ROLE_ERROR);
	else if ((u = cgi_me(req, e)) != NULL)
		rc = cgi_user_create(http_db(req), &in, u->id, "user.create",
		    &user, e);
	cgi_wipe(in.password);
	if (rc == -1)
		return -1;
	return cgi_reply_user(req, 201, "User created successfully", user, e);
}

/* The fields that can change a token's meaning or a socket's identity. */
struct user_old {
	char username[64];
	char extension[16];
	char role[16];
};

static int
user_get(struct db *db, int64_t id, struct user_old *old,
    struct json_object **rendered, struct err *e)
{
	struct db_stmt *st;
	const char *s;

	if ((st = cgi_user_row(db, id, e)) == NULL)
		return -1;
	s = db_col_text(st, CGI_COL_USERNAME);
	snprintf(old->username, sizeof(old->username), "%s", s ? s : "");
	s = db_col_text(st, CGI_COL_EXTENSION);
	snprintf(old->extension, sizeof(old->extension), "%s", s ? s : "");
	s = db_col_text(st, CGI_COL_ROLE);
	snprintf(old->role, sizeof(old->role), "%s", s ? s : "");
	if (rendered != NULL &&
	    (*rendered = cgi_user_render(st, 0, false)) == NULL) {
		db_reset(st);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	db_reset(st);
	return 0;
}

static int
user_update_row(struct db *db, int64_t id, const struct update_in *in,
    struct err *e)
{
	struct db_stmt *st;
	char now[40];

	db_now(now, sizeof(now));
	if ((st = db_stmt(db, sql[Q_USER_UPDATE], e)) == NULL)
		return -1;
	db_bind_int(st, 1, id);
	db_bind_text(st, 2, in->username);
	db_bind_text(st, 3, in->email);
	db_bind_text(st, 4, in->extension);
	db_bind_text(st, 5, in->role);
	db_bind_text(st, 6, in->status);
	db_bind_text(st, 7, now);
	/* Past the conflict check only if another writer raced. */
	if (db_done(db, st, e) == -1)
		return users_unique_text(e);
	return 0;
}

static bool
changed(const char *val, const char *old)
{
	return val != NULL && strcmp(val, old) != 0;
}

static int
update_user(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	struct update_in in = { 0 };
	struct user_old old;
	const struct auth_user *u;
	struct json_object *details = NULL, *user = NULL;
	int64_t id;
	bool revoke;
	int rc;

	if (cgi_parse_id(http_param(req, "id"), &id) == -1)
		return err_set_field(e, ERR_INVALID, "id", "Invalid user ID");
	if (cgi_decode(req, update_fields, nitems(update_fields), &in, e) == -1)
		return -1;
	/* An empty role or status is the form's "unchanged". */
	if (in.role != NULL && in.role[0] == '\0')
		in.role = NULL;
	if (in.status != NULL && in.status[0] == '\0')
		in.status = NULL;
	if (in.username != NULL && !users_username_valid(in.username))
		return err_set_field(e, ERR_INVALID, "username",
		    "Invalid request format");
	if (in.role != NULL && !users_role_valid(in.role))
		return err_set_field(e, ERR_INVALID, "role", "%s",
		    USERS_ROLE_ERROR);
	if (in.status != NULL && !users_status_valid(in.status))
		return err_set_field(e, ERR_INVALID, "status", "%s",
		    USERS_STATUS_ERROR);
	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	if ((details = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if (in.username != NULL)
		jh_add_str(details, "username", in.username);
	if (in.email != NULL)
		jh_add_str(details, "email", in.email);
	if (in.extension != NULL)
		jh_add_str(details, "extension", in.extension);
	if (in.role != NULL)
		jh_add_str(details, "role", in.role);
	if (in.status != NULL)
		jh_add_str(details, "status", in.status);

	if (db_begin(db, e) == -1)
		goto fail;
	if (user_get(db, id, &old, NULL, e) == -1 ||
	    users_conflicts(db, id, in.username, in.email, in.extension, e) ==
		-1 ||
	    user_update_row(db, id, &in, e) == -1)
		goto rollback;
	/* Tokens carry username, extension and role: a token saying what is
	 * no longer true must stop working. */
	revoke = changed(in.role, old.role) ||
		 changed(in.username, old.username) ||
		 changed(in.extension, old.extension);
	if ((revoke && auth_revoke_user(db, id, e) == -1) ||
	    audit_user(db, u->id, "user.update", id, details, e) == -1)
		goto rollback;
	/* The reply and a status event are made from one read of the row. */
	if (in.status != NULL)
		rc = cgi_notify_user_status(db, id, &user, e);
	else
		rc = (user = cgi_user_by_id(db, id, e)) == NULL ? -1 : 0;
	if (rc == -1 || db_commit(db, e) == -1)
		goto rollback;
	json_object_put(details);
	if (in.status != NULL)
		ctl_kick(http_config(req));
	return cgi_reply_user(req, 200, "User updated successfully", user, e);
rollback:
	db_rollback(db);
fail:
	json_object_put(user);
	json_object_put(details);
	return -1;
}

static int
delete_user(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct auth_user *u;
	struct json_object *user = NULL, *details = NULL;
	struct user_old old;
	int64_t id;

	if (cgi_parse_id(http_param(req, "id"), &id) == -1)
		return err_set_field(e, ERR_INVALID, "id", "Invalid user ID");
	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	if (db_begin(db, e) == -1)
		return -1;
	if (user_get(db, id, &old, &user, e) == -1)
		goto rollback;
	if (strcmp(old.role, "admin") == 0) {
		err_set(e, ERR_FORBIDDEN, "Cannot delete admin users");
		goto rollback;
	}
	if ((details = json_object_new_object()) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		goto rollback;
	}
	jh_add_str(details, "username", old.username);
	jh_add_str(details, "extension", old.extension);
	if (users_delete(db, id, old.username, u->id, e) == -1 ||
	    audit_user(db, u->id, "user.delete", id, details, e) == -1 ||
	    db_commit(db, e) == -1)
		goto rollback;
	json_object_put(details);
	ctl_kick(http_config(req));
	return cgi_reply_user(req, 200, "User deleted successfully", user, e);
rollback:
	db_rollback(db);
	json_object_put(details);
	json_object_put(user);
	return -1;
}

static bool
host_valid(const char *s)
{
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789.-") == strlen(s);
}

/* A port 1..65535 in digits into buf as plain decimal; -1 if not one. */
static int
port_norm(const char *s, char *buf, size_t size)
{
	int64_t v;

	if (cgi_parse_id(s, &v) == -1 || v > 65535)
		return -1;
	snprintf(buf, size, "%" PRId64, v);
	return 0;
}

static int
setting_put(struct db *db, const char *key, const char *value, const char *now,
    struct err *e)
{
	struct db_stmt *st;

	if (value == NULL)
		return 0;
	if ((st = db_stmt(db, sql[Q_SETTING_PUT], e)) == NULL)
		return -1;
	db_bind_text(st, 1, key);
	db_bind_text(st, 2, value);
	db_bind_text(st, 3, now);
	return db_done(db, st, e);
}

/*
 * Programs are stateless, so "updating the configuration" persists the
 * values in the settings table; /config renders them over the environment.
 */
static int
config_update(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	struct settings_in in = { 0 };
	const struct auth_user *u;
	struct json_object *details = NULL, *cfg, *o;
	char ami[24], sip[24], now[40];
	const char *host = NULL, *ami_port = NULL, *sip_port = NULL;

	if (cgi_decode(req, settings_fields, nitems(settings_fields), &in, e) ==
	    -1)
		return -1;
	if (in.asterisk_host != NULL && in.asterisk_host[0] != '\0') {
		if (!host_valid(in.asterisk_host))
			return err_set_field(e, ERR_INVALID, "asterisk_host",
			    "Invalid request format");
		host = in.asterisk_host;
	}
	if (in.asterisk_ami_port != NULL && in.asterisk_ami_port[0] != '\0') {
		if (port_norm(in.asterisk_ami_port, ami, sizeof(ami)) == -1)
			return err_set_field(e, ERR_INVALID,
			    "asterisk_ami_port", "Invalid request format");
		ami_port = ami;
	}
	if (in.sip_port != NULL && in.sip_port[0] != '\0') {
		if (port_norm(in.sip_port, sip, sizeof(sip)) == -1)
			return err_set_field(e, ERR_INVALID, "sip_port",
			    "Invalid request format");
		sip_port = sip;
	}
	if ((u = cgi_me(req, e)) == NULL)
		return -1;

	if (host != NULL || ami_port != NULL || sip_port != NULL) {
		if ((details = json_object_new_object()) == NULL)
			return err_set(e, ERR_INTERNAL, "out of memory");
		if (host != NULL)
			jh_add_str(details, CGI_SETTING_ASTERISK_HOST, host);
		if (ami_port != NULL)
			jh_add_str(details, CGI_SETTING_AMI_PORT, ami_port);
		if (sip_port != NULL)
			jh_add_str(details, CGI_SETTING_SIP_PORT, sip_port);
		db_now(now, sizeof(now));
		if (db_begin(db, e) == -1) {
			json_object_put(details);
			return -1;
		}
		if (setting_put(db, CGI_SETTING_ASTERISK_HOST, host, now, e) ==
			-1 ||
		    setting_put(db, CGI_SETTING_AMI_PORT, ami_port, now, e) ==
			-1 ||
		    setting_put(db, CGI_SETTING_SIP_PORT, sip_port, now, e) ==
			-1 ||
		    audit_insert(db, u->id, "config.update", "settings",
			details, e) == -1 ||
		    db_commit(db, e) == -1) {
			db_rollback(db);
			json_object_put(details);
			return -1;
		}
		json_object_put(details);
	}

	if ((cfg = cgi_frontend_config(req, e)) == NULL)
		return -1;
	if ((o = json_object_new_object()) == NULL) {
		json_object_put(cfg);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	json_object_object_add(o, "config", cfg);
	jh_add_str(o, "message", "Configuration updated successfully");
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
}

static const struct http_route routes[] = {
	{ HTTP_GET, "/protected/admin/users", HTTP_ADMIN, list_users, 0 },
	{ HTTP_POST, "/protected/admin/users", HTTP_ADMIN, create_user, 0 },
	{ HTTP_PUT, "/protected/admin/users/:id", HTTP_ADMIN, update_user, 0 },
	{ HTTP_DELETE, "/protected/admin/users/:id", HTTP_ADMIN, delete_user,
	    HTTP_SUCCESS_FALSE },
	{ HTTP_POST, "/config/update", HTTP_ADMIN, config_update,
	    HTTP_SUCCESS_FALSE },
	/* admin_stats.c */
	{ HTTP_GET, "/protected/admin/stats", HTTP_ADMIN, admin_stats, 0 },
	{ HTTP_GET, "/protected/admin/metrics/realtime", HTTP_ADMIN,
	    admin_metrics, 0 },
	{ HTTP_GET, "/protected/health", HTTP_USER, admin_health_fast, 0 },
	{ HTTP_GET, "/protected/health/detailed", HTTP_USER,
	    admin_health_detailed, 0 },
	{ HTTP_GET, "/protected/admin/health", HTTP_ADMIN,
	    admin_health_detailed, 0 },
	{ HTTP_GET, "/protected/admin/health/fast", HTTP_ADMIN,
	    admin_health_fast, 0 },
	/* admin_logs.c */
	{ HTTP_DELETE, "/protected/admin/call-logs/:id", HTTP_ADMIN,
	    admin_log_delete, 0 },
	{ HTTP_DELETE, "/protected/admin/call-logs/bulk-delete", HTTP_ADMIN,
	    admin_log_bulk_delete, 0 },
	{ HTTP_DELETE, "/protected/admin/call-logs/clear-all", HTTP_ADMIN,
	    admin_log_clear_all, 0 },
	{ HTTP_DELETE, "/protected/admin/call-logs/bulk-delete-filter",
	    HTTP_ADMIN, admin_log_filter_delete, 0 },
	{ HTTP_GET, "/protected/admin/export/call-logs", HTTP_ADMIN,
	    admin_log_export, 0 },
	/* admin_backup.c: errors carry success:false, as upstream's */
	{ HTTP_POST, "/protected/admin/backup", HTTP_ADMIN, admin_backup_create,
	    HTTP_SUCCESS_FALSE },
	{ HTTP_GET, "/protected/admin/backup/status/:id", HTTP_ADMIN,
	    admin_backup_status, HTTP_SUCCESS_FALSE },
	{ HTTP_GET, "/protected/admin/backups", HTTP_ADMIN, admin_backup_list,
	    HTTP_SUCCESS_FALSE },
	{ HTTP_GET, "/protected/admin/backup/download/:id", HTTP_ADMIN,
	    admin_backup_download, HTTP_SUCCESS_FALSE },
	{ HTTP_DELETE, "/protected/admin/backup/:id", HTTP_ADMIN,
	    admin_backup_delete, HTTP_SUCCESS_FALSE },
	{ HTTP_POST, "/protected/admin/backup/restore/:id", HTTP_ADMIN,
	    admin_backup_restore, HTTP_SUCCESS_FALSE },
	/* admin_calls.c */
	{ HTTP_GET, "/protected/admin/active-calls", HTTP_ADMIN,
	    admin_active_calls, 0 },
	{ HTTP_POST, "/protected/admin/call", HTTP_ADMIN, admin_call,
	    HTTP_SUCCESS_FALSE },
	{ HTTP_POST, "/protected/admin/terminate-call", HTTP_ADMIN,
	    admin_terminate_call, 0 },
};

int
main(void)
{
	return cgi_serve("admin", routes, nitems(routes));
}
