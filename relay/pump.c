/*
 * pump: the consumer of the notify table. Rows are read in id order past
 * the cursor (notify_cursor, consumer 'relay'), the new cursor is
 * committed, and only then are the events queued to the sockets, all in one
 * turn of the loop. A crash after the commit loses only what had not yet
 * been written to any socket, and those sockets die with the process: their
 * browsers reconnect with ?since= and are replayed, or told to resync. A
 * restart, even after kill -9, therefore delivers exactly what was pending
 * and nothing twice.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libwebsockets.h>
#include <sqlite3.h>

#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/notify.h"
#include "relay/relay.h"

#define PUMP_BATCH      500
#define PUMP_BATCHES    8 /* per turn of the loop; then let sockets run */
#define PUMP_POLL_US    (1000 * 1000)
#define PUMP_RETRY_US   (50 * 1000)
#define PUMP_AGAIN_US   1000
#define PUMP_PRUNE_US   (INT64_C(600) * 1000 * 1000)
#define PUMP_PRUNE_KEEP (INT64_C(86400) * 1000 * 1000)
#define PUMP_PRUNE_ROWS 5000
#define STR(x)          #x
#define XSTR(x)         STR(x)

enum q { Q_CURSOR_GET, Q_CURSOR_SET, Q_BATCH, Q_PRUNE, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_CURSOR_GET] =
	    "SELECT last_id FROM notify_cursor WHERE consumer = 'relay'",
	[Q_CURSOR_SET] = "INSERT INTO notify_cursor (consumer, last_id) "
			 "VALUES ('relay', ?1) ON CONFLICT (consumer) "
			 "DO UPDATE SET last_id = excluded.last_id",
	[Q_BATCH] = "SELECT id, target_kind, target_value, payload FROM notify "
		    "WHERE id > ?1 ORDER BY id LIMIT " XSTR(PUMP_BATCH),
	[Q_PRUNE] =
	    "DELETE FROM notify WHERE id IN (SELECT id FROM notify "
	    "WHERE id <= ?1 AND created_at < ?2 ORDER BY id LIMIT " XSTR(
		PUMP_PRUNE_ROWS) ")",
};

struct row {
	int kind;
	char *value;
	struct msg *m;
};

static void pump_run(lws_sorted_usec_list_t *sul);
static void pump_prune(lws_sorted_usec_list_t *sul);

static void
rows_free(struct row *rows, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(rows[i].value);
		msg_unref(rows[i].m);
	}
}

/*
 * user_status_changed in the REST form comes from programs that cannot see
 * the sockets: the relay fills in client_count and ws_connected.
 */
static struct msg *
event_new(struct relay *r, const char *payload, size_t len)
{
	struct json_object *o, *v;
	struct hub_user *u;
	const char *type;
	struct msg *m;

	if (strstr(payload, "\"user_status_changed\"") == NULL ||
	    strstr(payload, "\"ws_connected\"") == NULL ||
	    (o = jh_parse(payload, len, NULL)) == NULL)
		return msg_new(payload + 1, len - 1, true);
	if ((type = jh_get_str(o, "type")) != NULL &&
	    strcmp(type, "user_status_changed") == 0 &&
	    json_object_object_get_ex(o, "user_id", &v) &&
	    json_object_is_type(v, json_type_int) &&
	    (u = hub_user_by_id(r, json_object_get_int64(v), false)) != NULL) {
		jh_add_int(o, "client_count", u->nclients);
		jh_add_bool(o, "ws_connected", u->nclients > 0);
	}
	m = msg_json(o, true);
	json_object_put(o);
	return m;
}

static void
deliver(struct relay *r, const struct row *row)
{
	struct hub_user *u;
	char *end;
	long long id;

	switch (row->kind) {
	case NOTIFY_USER:
		id = strtoll(row->value, &end, 10);
		if (*end == '\0' && end != row->value &&
		    (u = hub_user_by_id(r, id, true)) != NULL)
			hub_push(r, u, row->m);
		break;
	case NOTIFY_EXTENSION:
		if ((u = hub_user_by_ext(r, row->value, true)) != NULL)
			hub_push(r, u, row->m);
		break;
	case NOTIFY_ROLE:
		hub_push_role(r, row->value, row->m);
		break;
	case NOTIFY_ALL:
		hub_push_all(r, row->m);
		break;
	default:
		break;
	}
}

/*
 * One batch: 1 when it was full (more may wait), 0 when it was not, -1
 * when nothing could be done (the cursor is unchanged, retried later).
 */
static int
pump_batch(struct relay *r)
{
	struct row rows[PUMP_BATCH];
	const char *kind, *value, *payload;
	int64_t last = r->cursor;
	struct err e = { 0 };
	size_t n = 0, i, len;
	sqlite3_stmt *st;
	int rc;

	if ((st = db_stmt(r->db, sql[Q_BATCH], &e)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, r->cursor);
	while ((rc = db_row(r->db, st, &e)) == 1) {
		last = sqlite3_column_int64(st, 0);
		kind = (const char *)sqlite3_column_text(st, 1);
		value = (const char *)sqlite3_column_text(st, 2);
		payload = (const char *)sqlite3_column_text(st, 3);
		len = (size_t)sqlite3_column_bytes(st, 3);
		rows[n].kind = kind != NULL ? notify_target_parse(kind) : -1;
		/* An event body is an object's text without its '{'. */
		if (rows[n].kind == -1 || payload == NULL || len < 2 ||
		    payload[0] != '{' || payload[len - 1] != '}') {
			log_msg(LOG_WARN, "notify %" PRId64 " skipped: bad row",
			    last);
			continue;
		}
		rows[n].value = strdup(value != NULL ? value : "");
		rows[n].m = event_new(r, payload, len);
		n++; /* counted now: fail frees a half-built row too */
		if (rows[n - 1].value == NULL || rows[n - 1].m == NULL) {
			sqlite3_reset(st);
			err_set(&e, ERR_INTERNAL, "out of memory");
			goto fail;
		}
	}
	if (rc == -1)
		goto fail;
	if (last == r->cursor)
		return 0;
	if ((st = db_stmt(r->db, sql[Q_CURSOR_SET], &e)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, last);
	if (db_done(r->db, st, &e) == -1)
		goto fail;
	r->cursor = last;
	for (i = 0; i < n; i++)
		deliver(r, &rows[i]);
	r->stats.notify_rows += n;
	rows_free(rows, n);
	return n == PUMP_BATCH ? 1 : 0;
fail:
	rows_free(rows, n);
	log_msg(LOG_WARN, "notify: %s (retrying)", e.msg);
	return -1;
}

static void
pump_run(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_pump);
	lws_usec_t next = PUMP_POLL_US;
	int i, rc = 0;

	for (i = 0; i < PUMP_BATCHES; i++)
		if ((rc = pump_batch(r)) != 1)
			break;
	if (rc == 1)
		next = PUMP_AGAIN_US;
	else if (rc == -1)
		next =
		    PUMP_RETRY_US; /* a busy database: soon, not in a second */
	lws_sul_schedule(r->ctx, 0, &r->sul_pump, pump_run, next);
}

/* Delivered rows older than a day go, a slice at a time. */
static void
pump_prune(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_prune);
	struct err e = { 0 };
	sqlite3_stmt *st;
	char cutoff[40];
	int64_t next = PUMP_PRUNE_US;

	db_time_format(db_now_us() - PUMP_PRUNE_KEEP, cutoff, sizeof(cutoff));
	if ((st = db_stmt(r->db, sql[Q_PRUNE], &e)) == NULL)
		goto out;
	sqlite3_bind_int64(st, 1, r->cursor);
	sqlite3_bind_text(st, 2, cutoff, -1, SQLITE_STATIC);
	if (db_done(r->db, st, &e) == -1)
		goto out;
	if (db_changes(r->db) == PUMP_PRUNE_ROWS)
		next = PUMP_AGAIN_US * 100;
out:
	if (e.code != ERR_OK)
		log_msg(LOG_WARN, "notify prune: %s", e.msg);
	lws_sul_schedule(r->ctx, 0, &r->sul_prune, pump_prune, next);
}

int
pump_init(struct relay *r, struct err *e)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = db_stmt(r->db, sql[Q_CURSOR_GET], e)) == NULL)
		return -1;
	if ((rc = db_row(r->db, st, e)) == -1)
		return -1;
	/* No cursor yet: everything in the table is pending. */
	r->cursor = rc == 1 ? sqlite3_column_int64(st, 0) : 0;
	if (rc == 1)
		sqlite3_reset(st);
	lws_sul_schedule(r->ctx, 0, &r->sul_pump, pump_run, 1);
	lws_sul_schedule(r->ctx, 0, &r->sul_prune, pump_prune, PUMP_AGAIN_US);
	return 0;
}

void
pump_kick(struct relay *r)
{
	lws_sul_schedule(r->ctx, 0, &r->sul_pump, pump_run, 1);
}

void
pump_stop(struct relay *r)
{
	lws_sul_cancel(&r->sul_pump);
	lws_sul_cancel(&r->sul_prune);
}
