/*
 * admin: call-log deletes, each one transaction with its audit_log row
 * (who, what, how many, which filter), and the export, streamed.
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
#include "lib/db.h"
#include "lib/err.h"
#include "lib/export.h"
#include "lib/http.h"
#include "lib/json.h"
#include "cgi-bin/admin.h"
#include "cgi-bin/common.h"

#define MSG_INVALID   "Invalid request format"
#define MSG_NO_IDS    "No log IDs provided"
#define MSG_NO_MATCH  "No call logs match the specified filters"
#define MSG_FORMAT    "Unsupported format. Use 'csv' or 'json'"
#define MSG_DATE      "Invalid date format. Use YYYY-MM-DD"
#define MSG_TZ        "Invalid time zone"
#define MSG_CONFIRM   "Confirmation required: add ?confirm=true"
#define MSG_NO_FILTER "At least one filter is required"
#define TEXT_MAX      64
#define DAYS_MAX      36500

enum q { Q_DEL_ONE, Q_DEL_ALL, Q_DEL_FILTER, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_DEL_ONE] = "DELETE FROM call_logs WHERE id = ?1",
	[Q_DEL_ALL] = "DELETE FROM call_logs",
	/* CAST: ?N IS NULL alone fixes no type on PostgreSQL. */
	[Q_DEL_FILTER] = "DELETE FROM call_logs WHERE "
			 "(CAST(?1 AS text) IS NULL OR status = ?1) "
			 "AND (CAST(?2 AS text) IS NULL OR direction = ?2) "
			 "AND (CAST(?3 AS text) IS NULL OR created_at >= ?3) "
			 "AND (CAST(?4 AS text) IS NULL OR created_at < ?4) "
			 "AND (?5 = 0 OR caller_id = ?5) "
			 "AND (?6 = 0 OR callee_id = ?6)",
};

int
admin_tz(struct http_req *req, const char **tz, struct err *e)
{
	const char *s = http_query(req, "tz");

	*tz = NULL;
	if (s == NULL || s[0] == '\0')
		return 0;
	if (!export_tz_valid(s))
		return err_set_field(e, ERR_INVALID, "tz", MSG_TZ);
	*tz = s;
	return 0;
}

/* {"deleted_count","message","success"}, as gin.H sorts them. */
static int
reply_deleted(struct http_req *req, int64_t n, const char *message,
    struct err *e)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_int(o, "deleted_count", n);
	jh_add_str(o, "message", message);
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
}

/* Run st (bound) and the audit row in one transaction; *n the rows gone.
 * Takes details. */
static int
delete_audited(struct db *db, struct db_stmt *st, int64_t actor,
    const char *action, struct json_object *details, int64_t *n, struct err *e)
{
	if (db_done(db, st, e) == -1)
		goto fail;
	*n = db_changes(db);
	jh_add_int(details, "deleted", *n);
	if (audit_insert(db, actor, action, "call_logs", details, e) == -1)
		goto fail;
	json_object_put(details);
	return 0;
fail:
	json_object_put(details);
	return -1;
}

int
admin_log_delete(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct auth_user *u;
	struct json_object *details, *o;
	struct db_stmt *st;
	int64_t id, n = 0;

	if (cgi_parse_id(http_param(req, "id"), &id) == -1)
		return err_set_field(e, ERR_INVALID, "id", "Invalid log ID");
	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	if ((details = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_int(details, "id", id);
	if (db_begin(db, e) == -1) {
		json_object_put(details);
		return -1;
	}
	if ((st = db_stmt(db, sql[Q_DEL_ONE], e)) == NULL) {
		json_object_put(details);
		goto rollback;
	}
	db_bind_int(st, 1, id);
	if (delete_audited(db, st, u->id, "call_logs.delete", details, &n, e) ==
	    -1)
		goto rollback;
	if (n == 0) {
		err_set(e, ERR_NOTFOUND, "Call log not found");
		goto rollback;
	}
	if (db_commit(db, e) == -1)
		goto rollback;
	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(o, "message", "Call log deleted successfully");
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
rollback:
	db_rollback(db);
	return -1;
}

/* A positive integer: a JSON integer, or a string of digits. */
static int
id_value(struct json_object *v, int64_t *id)
{
	if (json_object_is_type(v, json_type_int)) {
		*id = json_object_get_int64(v);
		return *id > 0 ? 0 : -1;
	}
	if (json_object_is_type(v, json_type_string))
		return cgi_parse_id(json_object_get_string(v), id);
	return -1;
}

int
admin_log_bulk_delete(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct auth_user *u;
	struct json_object *body, *ids, *details = NULL, *list;
	struct db_stmt *st;
	int64_t id, n = 0;
	size_t i, len;

	if ((body = http_body_json(req, e)) == NULL)
		return -1;
	if (!json_object_object_get_ex(body, "log_ids", &ids) ||
	    json_object_is_type(ids, json_type_null))
		return err_set_field(e, ERR_INVALID, "log_ids", MSG_NO_IDS);
	if (!json_object_is_type(ids, json_type_array))
		return err_set_field(e, ERR_INVALID, "log_ids", MSG_INVALID);
	if ((len = json_object_array_length(ids)) == 0)
		return err_set_field(e, ERR_INVALID, "log_ids", MSG_NO_IDS);
	/* Every id is checked before anything is deleted. */
	for (i = 0; i < len; i++)
		if (id_value(json_object_array_get_idx(ids, i), &id) == -1)
			return err_set_field(e, ERR_INVALID, "log_ids",
			    MSG_INVALID);
	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	if ((details = json_object_new_object()) == NULL ||
	    (list = json_object_new_array()) == NULL) {
		json_object_put(details);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	json_object_object_add(details, "log_ids", list);
	if (db_begin(db, e) == -1)
		goto fail;
	for (i = 0; i < len; i++) {
		(void)id_value(json_object_array_get_idx(ids, i), &id);
		if ((st = db_stmt(db, sql[Q_DEL_ONE], e)) == NULL)
			goto rollback;
		db_bind_int(st, 1, id);
		if (db_done(db, st, e) == -1)
			goto rollback;
		if (db_changes(db) > 0) {
			n += db_changes(db);
			json_object_array_add(list, json_object_new_int64(id));
		}
	}
	jh_add_int(details, "deleted", n);
	if (audit_insert(db, u->id, "call_logs.bulk_delete", "call_logs",
		details, e) == -1 ||
	    db_commit(db, e) == -1)
		goto rollback;
	json_object_put(details);
	{
		char msg[96];

		snprintf(msg, sizeof(msg),
		    "Successfully deleted %" PRId64 " call logs", n);
		return reply_deleted(req, n, msg, e);
	}
rollback:
	db_rollback(db);
fail:
	json_object_put(details);
	return -1;
}

int
admin_log_clear_all(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const char *confirm = http_query(req, "confirm");
	const struct auth_user *u;
	struct json_object *details;
	struct db_stmt *st;
	char msg[128];
	int64_t n = 0;

	if (confirm == NULL || strcmp(confirm, "true") != 0)
		return err_set_field(e, ERR_INVALID, "confirm", MSG_CONFIRM);
	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	if ((details = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_bool(details, "all", true);
	if (db_begin(db, e) == -1) {
		json_object_put(details);
		return -1;
	}
	if ((st = db_stmt(db, sql[Q_DEL_ALL], e)) == NULL) {
		json_object_put(details);
		goto rollback;
	}
	if (delete_audited(db, st, u->id, "call_logs.clear_all", details, &n,
		e) == -1 ||
	    db_commit(db, e) == -1)
		goto rollback;
	snprintf(msg, sizeof(msg),
	    "Successfully cleared all call logs (%" PRId64 " logs deleted)", n);
	return reply_deleted(req, n, msg, e);
rollback:
	db_rollback(db);
	return -1;
}

/* The filter of bulk-delete-filter, checked. */
struct filter_in {
	const char *status, *direction;
	char from[40], to[40]; /* db_now form, "" for none */
	int64_t caller_id, callee_id;
};

/* A text member of at most TEXT_MAX bytes; "" is absent. */
static int
text_member(struct json_object *body, const char *key, const char **out,
    struct err *e)
{
	struct json_object *v;
	const char *s;

	*out = NULL;
	if (!json_object_object_get_ex(body, key, &v) ||
	    json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string) ||
	    strlen(s = json_object_get_string(v)) > TEXT_MAX)
		return err_set_field(e, ERR_INVALID, key, MSG_INVALID);
	if (s[0] != '\0')
		*out = s;
	return 0;
}

/*
 * A whole number member: a JSON integer, or a string of digits (the
 * frontend sends older_than as a string, which upstream refused). 0 when
 * absent or "".
 */
static int
num_member(struct json_object *body, const char *key, int64_t max, int64_t *out,
    struct err *e)
{
	struct json_object *v;
	const char *s;

	*out = 0;
	if (!json_object_object_get_ex(body, key, &v) ||
	    json_object_is_type(v, json_type_null))
		return 0;
	if (json_object_is_type(v, json_type_int))
		*out = json_object_get_int64(v);
	else if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		if (s[0] == '\0')
			return 0;
		if (strcmp(s, "0") != 0 && cgi_parse_id(s, out) == -1)
			return err_set_field(e, ERR_INVALID, key, MSG_INVALID);
	} else
		return err_set_field(e, ERR_INVALID, key, MSG_INVALID);
	if (*out < 0 || *out > max)
		return err_set_field(e, ERR_INVALID, key, MSG_INVALID);
	return 0;
}

static int
filter_decode(struct http_req *req, struct filter_in *f,
    struct json_object *details, struct err *e)
{
	struct json_object *body;
	const char *from, *to;
	char cut[40];
	int64_t older;

	memset(f, 0, sizeof(*f));
	if ((body = http_body_json(req, e)) == NULL ||
	    text_member(body, "status", &f->status, e) == -1 ||
	    text_member(body, "direction", &f->direction, e) == -1 ||
	    text_member(body, "date_from", &from, e) == -1 ||
	    text_member(body, "date_to", &to, e) == -1 ||
	    num_member(body, "caller_id", INT64_MAX, &f->caller_id, e) == -1 ||
	    num_member(body, "callee_id", INT64_MAX, &f->callee_id, e) == -1 ||
	    num_member(body, "older_than", DAYS_MAX, &older, e) == -1)
		return -1;
	/* Dates are days of the configured zone; date_to's day included. */
	if (from != NULL && export_parse_bound(NULL, from, false, f->from,
				sizeof(f->from)) == -1)
		return err_set_field(e, ERR_INVALID, "date_from", MSG_DATE);
	if (to != NULL &&
	    export_parse_bound(NULL, to, true, f->to, sizeof(f->to)) == -1)
		return err_set_field(e, ERR_INVALID, "date_to", MSG_DATE);
	if (older > 0) {
		db_time_format(db_now_us() - older * 86400 * INT64_C(1000000),
		    cut, sizeof(cut));
		if (f->to[0] == '\0' || strcmp(cut, f->to) < 0)
			snprintf(f->to, sizeof(f->to), "%s", cut);
		jh_add_int(details, "older_than", older);
	}
	if (f->status == NULL && f->direction == NULL && f->from[0] == '\0' &&
	    f->to[0] == '\0' && f->caller_id == 0 && f->callee_id == 0)
		return err_set(e, ERR_INVALID, MSG_NO_FILTER);
	if (f->status != NULL)
		jh_add_str(details, "status", f->status);
	if (f->direction != NULL)
		jh_add_str(details, "direction", f->direction);
	if (from != NULL)
		jh_add_str(details, "date_from", from);
	if (to != NULL)
		jh_add_str(details, "date_to", to);
	if (f->caller_id != 0)
		jh_add_int(details, "caller_id", f->caller_id);
	if (f->callee_id != 0)
		jh_add_int(details, "callee_id", f->callee_id);
	return 0;
}

static void
bind_opt(struct db_stmt *st, int i, const char *s)
{
	if (s != NULL && s[0] != '\0')
		db_bind_text(st, i, s);
	else
		db_bind_null(st, i);
}

int
admin_log_filter_delete(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct auth_user *u;
	struct json_object *details, *filter;
	struct filter_in f;
	struct db_stmt *st;
	char msg[96];
	int64_t n = 0;

	if ((details = json_object_new_object()) == NULL ||
	    (filter = json_object_new_object()) == NULL) {
		json_object_put(details);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	json_object_object_add(details, "filter", filter);
	if (filter_decode(req, &f, filter, e) == -1 ||
	    (u = cgi_me(req, e)) == NULL) {
		json_object_put(details);
		return -1;
	}
	if (db_begin(db, e) == -1) {
		json_object_put(details);
		return -1;
	}
	if ((st = db_stmt(db, sql[Q_DEL_FILTER], e)) == NULL) {
		json_object_put(details);
		goto rollback;
	}
	bind_opt(st, 1, f.status);
	bind_opt(st, 2, f.direction);
	bind_opt(st, 3, f.from);
	bind_opt(st, 4, f.to);
	db_bind_int(st, 5, f.caller_id);
	db_bind_int(st, 6, f.callee_id);
	if (delete_audited(db, st, u->id, "call_logs.filter_delete", details,
		&n, e) == -1 ||
	    db_commit(db, e) == -1)
		goto rollback;
	if (n == 0)
		return reply_deleted(req, 0, MSG_NO_MATCH, e);
	snprintf(msg, sizeof(msg), "Successfully deleted %" PRId64 " call logs",
	    n);
	return reply_deleted(req, n, msg, e);
rollback:
	db_rollback(db);
	return -1;
}

/* ---- export ---- */

static int
stream_write(void *arg, const char *buf, size_t len)
{
	return http_stream_write(arg, buf, len);
}

/* ?format=, else what Accept asks for, else CSV. -1 when unknown. */
static int
export_format(struct http_req *req, enum export_format *fmt)
{
	const char *f = http_query(req, "format");
	const char *accept;

	if (f == NULL || f[0] == '\0') {
		accept = http_header(req, "Accept");
		*fmt = accept != NULL && strstr(accept, "application/json") &&
			       !strstr(accept, "text/csv")
			   ? EXPORT_JSON
			   : EXPORT_CSV;
		return 0;
	}
	if (strcmp(f, "csv") == 0)
		*fmt = EXPORT_CSV;
	else if (strcmp(f, "json") == 0)
		*fmt = EXPORT_JSON;
	else
		return -1;
	return 0;
}

/* A bound ?name= (a local day or an RFC 3339 time) into buf; *out NULL
 * when not given. */
static int
bound_query(struct http_req *req, const char *name, const char *tz, bool end,
    char *buf, size_t size, const char **out, struct err *e)
{
	const char *s = http_query(req, name);

	*out = NULL;
	if (s == NULL || s[0] == '\0')
		return 0;
	if (export_parse_bound(tz, s, end, buf, size) == -1)
		return err_set_field(e, ERR_INVALID, name, MSG_DATE);
	*out = buf;
	return 0;
}

int
admin_log_export(struct http_req *req, struct err *e)
{
	struct export_filter f = { 0 };
	struct export_result res;
	enum export_format fmt;
	const char *tz, *s;
	char from[40], to[40];

	if (export_format(req, &fmt) == -1)
		return err_set_field(e, ERR_INVALID, "format", MSG_FORMAT);
	if (admin_tz(req, &tz, e) == -1 ||
	    bound_query(req, "date_from", tz, false, from, sizeof(from),
		&f.since, e) == -1 ||
	    bound_query(req, "date_to", tz, true, to, sizeof(to), &f.until,
		e) == -1)
		return -1;
	if ((s = http_query(req, "status")) != NULL && s[0] != '\0') {
		if (strlen(s) > TEXT_MAX)
			return err_set_field(e, ERR_INVALID, "status",
			    MSG_INVALID);
		f.status = s;
	}
	if ((s = http_query(req, "extension")) != NULL && s[0] != '\0') {
		if (strlen(s) > 15 || strspn(s, "0123456789") != strlen(s))
			return err_set_field(e, ERR_INVALID, "extension",
			    MSG_INVALID);
		f.extension = s;
	}
	http_set_header(req, "Content-Disposition",
	    fmt == EXPORT_CSV ? "attachment; filename=call-logs.csv"
			      : "attachment; filename=call-logs.json");
	/* nginx passes the body on as it comes instead of spooling it. */
	http_set_header(req, "X-Accel-Buffering", "no");
	http_stream_begin(req, 200,
	    fmt == EXPORT_CSV ? "text/csv; charset=utf-8" : "application/json");
	return export_call_logs(http_db(req), fmt, &f, tz, stream_write, req,
	    &res, e);
}
