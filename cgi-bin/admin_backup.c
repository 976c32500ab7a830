/*
 * admin: backups (lib/backup.h). A backup is taken and a restore made
 * within the request: SQLite's backup API copies a database of a few
 * hundred megabytes in seconds, and the status route then reads what the
 * table says rather than a worker's memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lib/auth.h"
#include "lib/backup.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"
#include "cgi-bin/admin.h"
#include "cgi-bin/common.h"

#define CHUNK 65536

struct create_in {
	bool include_database, include_config, include_call_logs;
	const char *backup_name;
};

static const struct jh_field create_fields[] = {
	{ "include_database", JH_BOOL, false, 0, 0,
	    offsetof(struct create_in, include_database), 0 },
	{ "include_config", JH_BOOL, false, 0, 0,
	    offsetof(struct create_in, include_config), 0 },
	{ "include_call_logs", JH_BOOL, false, 0, 0,
	    offsetof(struct create_in, include_call_logs), 0 },
	{ "backup_name", JH_TEXT, false, 0, 100,
	    offsetof(struct create_in, backup_name), 0 },
};

/* On PostgreSQL: 501 with the reason, in the backup routes' error shape. */
static int
refuse_pg(struct http_req *req)
{
	struct json_object *o;

	if (db_engine(http_db(req)) != DB_POSTGRES)
		return 0;
	if ((o = json_object_new_object()) != NULL) {
		jh_add_str(o, "error", BACKUP_PG_TEXT);
		jh_add_bool(o, "success", false);
	}
	http_reply_json(req, 501, o);
	return 1;
}

/* An id as backups have them; anything else is not found. */
static const char *
id_param(struct http_req *req, struct err *e)
{
	const char *id = http_param(req, "id");
	size_t n;

	if (id == NULL || (n = strlen(id)) == 0 || n >= 64 ||
	    strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789_") != n) {
		err_set(e, ERR_NOTFOUND, BACKUP_NOT_FOUND);
		return NULL;
	}
	return id;
}

/* BackupStatus (contract §1.5), declared order. */
static struct json_object *
status_json(const struct backup_row *r)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_str(o, "id", r->id);
	jh_add_str(o, "status", r->status);
	jh_add_int(o, "progress", r->progress);
	jh_add_str(o, "message", r->message);
	jh_add_str(o, "created_at", r->created_at);
	if (r->completed_at[0] != '\0')
		jh_add_str(o, "completed_at", r->completed_at);
	if (r->error[0] != '\0')
		jh_add_str(o, "error", r->error);
	return o;
}

int
admin_backup_create(struct http_req *req, struct err *e)
{
	struct create_in in = { 0 };
	const struct auth_user *u;
	struct backup_row *row;
	struct json_object *o, *st;
	int rc = -1;

	if (refuse_pg(req))
		return 0;
	if (cgi_decode(req, create_fields, nitems(create_fields), &in, e) ==
		-1 ||
	    (u = cgi_me(req, e)) == NULL)
		return -1;
	if ((row = malloc(sizeof(*row))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	/* The whole database is one file: the include_* flags of the
	 * replaced backend's zip do not split it. */
	if (backup_create(http_db(req), http_config(req), in.backup_name, "",
		u->id, row, e) == -1)
		goto out;
	if ((o = json_object_new_object()) == NULL ||
	    (st = status_json(row)) == NULL) {
		json_object_put(o);
		err_set(e, ERR_INTERNAL, "out of memory");
		goto out;
	}
	jh_add_str(o, "backup_id", row->id);
	jh_add_str(o, "message", "Backup started successfully");
	json_object_object_add(o, "status", st);
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	rc = 0;
out:
	free(row);
	return rc;
}

int
admin_backup_status(struct http_req *req, struct err *e)
{
	struct backup_row *row;
	struct json_object *o;
	const char *id;
	int rc = -1;

	if (refuse_pg(req))
		return 0;
	if ((id = id_param(req, e)) == NULL)
		return -1;
	if ((row = malloc(sizeof(*row))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if (backup_get(http_db(req), id, row, e) == 0) {
		if ((o = cgi_ok("status", status_json(row))) == NULL)
			err_set(e, ERR_INTERNAL, "out of memory");
		else {
			http_reply_json(req, 200, o);
			rc = 0;
		}
	}
	free(row);
	return rc;
}

static int
list_one(void *arg, const struct backup_row *r, struct err *e)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	/* BackupResponse (contract §1.5), declared order. */
	jh_add_str(o, "id", r->id);
	jh_add_str(o, "name", r->name);
	jh_add_str(o, "created_at", r->created_at);
	jh_add_int(o, "size", r->size);
	jh_add_str(o, "path", r->path);
	jh_add_str(o, "status", r->status);
	jh_add_null(o, "components");
	jh_add_str(o, "description", r->description);
	json_object_array_add(arg, o);
	return 0;
}

int
admin_backup_list(struct http_req *req, struct err *e)
{
	struct json_object *list, *o;

	if (refuse_pg(req))
		return 0;
	if ((list = json_object_new_array()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if (backup_list(http_db(req), list_one, list, e) == -1) {
		json_object_put(list);
		return -1;
	}
	if ((o = json_object_new_object()) == NULL) {
		json_object_put(list);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	/* gin.H: sorted keys. */
	json_object_object_add(o, "backups", list);
	jh_add_int(o, "count", (int64_t)json_object_array_length(list));
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
}

int
admin_backup_download(struct http_req *req, struct err *e)
{
	struct backup_row *row;
	char disp[128], *buf = NULL;
	const char *id;
	ssize_t n;
	int fd = -1, rc = -1;

	if (refuse_pg(req))
		return 0;
	if ((id = id_param(req, e)) == NULL)
		return -1;
	if ((row = malloc(sizeof(*row))) == NULL ||
	    (buf = malloc(CHUNK)) == NULL) {
		free(row);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	if (backup_get(http_db(req), id, row, e) == -1)
		goto out;
	if (strcmp(row->status, "completed") != 0 ||
	    (fd = open(row->path, O_RDONLY | O_CLOEXEC)) == -1) {
		err_set(e, ERR_NOTFOUND, BACKUP_NOT_FOUND);
		goto out;
	}
	snprintf(disp, sizeof(disp), "attachment; filename=%s.sqlite3", id);
	http_set_header(req, "Content-Disposition", disp);
	http_set_header(req, "X-Accel-Buffering", "no");
	http_stream_begin(req, 200, "application/vnd.sqlite3");
	while ((n = read(fd, buf, CHUNK)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err_set(e, ERR_INTERNAL, "read '%s': %s", row->path,
			    strerror(errno));
			goto out;
		}
		if (http_stream_write(req, buf, (size_t)n) == -1) {
			err_set(e, ERR_INTERNAL, "client gone mid-download");
			goto out;
		}
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	free(buf);
	free(row);
	return rc;
}

int
admin_backup_delete(struct http_req *req, struct err *e)
{
	const struct auth_user *u;
	struct json_object *o;
	const char *id;

	if (refuse_pg(req))
		return 0;
	if ((id = id_param(req, e)) == NULL || (u = cgi_me(req, e)) == NULL ||
	    backup_delete(http_db(req), id, u->id, e) == -1)
		return -1;
	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(o, "message", "Backup deleted successfully");
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
}

int
admin_backup_restore(struct http_req *req, struct err *e)
{
	const struct auth_user *u;
	struct backup_row *pre;
	struct json_object *o, *st;
	char rid[80];
	const char *id;
	int rc = -1;

	if (refuse_pg(req))
		return 0;
	if ((id = id_param(req, e)) == NULL || (u = cgi_me(req, e)) == NULL)
		return -1;
	if ((pre = malloc(sizeof(*pre))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if (backup_restore(http_db(req), http_config(req), id, u->id, pre, e) ==
	    -1)
		goto out;
	if ((o = json_object_new_object()) == NULL ||
	    (st = json_object_new_object()) == NULL) {
		json_object_put(o);
		err_set(e, ERR_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(rid, sizeof(rid), "restore_%s", id);
	/* The restore is over when the reply goes: its status says so. */
	jh_add_str(st, "id", rid);
	jh_add_str(st, "status", "completed");
	jh_add_int(st, "progress", 100);
	jh_add_str(st, "message", "Restore completed successfully");
	jh_add_str(st, "pre_restore_backup", pre->id);
	jh_add_str(o, "message", "Restore started successfully");
	jh_add_str(o, "restore_id", rid);
	json_object_object_add(o, "status", st);
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	rc = 0;
out:
	free(pre);
	return rc;
}
