/*
 * pump: the notify table as a live stream. Rows past the cursor are read in
 * id order and delivered to the sockets they concern, with their id as the
 * seq; the cursor lives in memory only. Nothing is marked delivered in the
 * database, because nothing needs to be: a socket that missed rows (it was
 * closed, or the relay died, even with kill -9, even with a backlog)
 * reconnects with ?since=<last seq>&epoch=<epoch> and is replayed from the
 * table (fanout.c). At start the cursor is the newest row: nobody is
 * connected yet, so there is nobody to deliver older rows to live.
 *
 * Rows of type NOTIFY_TYPE_REVOKED are not delivered: they close the
 * sockets of the user whose tokens were revoked, and refresh what the
 * roster holds of it (its extension, role and name may have changed, or
 * the user may be gone).
 *
 * Retention: rows older than NOTIFY_RETENTION_S are deleted, a slice at a
 * time; a since older than what is kept is answered resync_required.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/notify.h"
#include "relay/relay.h"

#define PUMP_BATCH      500
#define PUMP_BATCHES    8 /* per turn of the loop; then let sockets run */
#define PUMP_POLL_US    (200 * 1000) /* when nobody kicks */
#define PUMP_RETRY_US   (50 * 1000)
#define PUMP_AGAIN_US   1000
#define PUMP_PRUNE_US   (INT64_C(60) * 1000 * 1000)
#define PUMP_PRUNE_ROWS 5000
#define STR(x)          #x
#define XSTR(x)         STR(x)

enum q { Q_BATCH, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_BATCH] = "SELECT id, target_kind, target_value, payload FROM notify "
		    "WHERE id > ?1 ORDER BY id LIMIT " XSTR(PUMP_BATCH),
};

static void pump_run(lws_sorted_usec_list_t *sul);
static void pump_prune(lws_sorted_usec_list_t *sul);

/* A revocation: the user's sockets with an older token close, and its
 * roster entry is read again. */
static void
revoked(struct relay *r, const char *payload, size_t len)
{
	struct json_object *o, *v;
	struct roster_user *u;
	struct client *c, *next;
	int64_t id, gen = INT64_MAX;
	size_t n = 0;

	if ((o = jh_parse(payload, len, NULL)) == NULL)
		return;
	if (!json_object_object_get_ex(o, "user_id", &v) ||
	    !json_object_is_type(v, json_type_int)) {
		json_object_put(o);
		return;
	}
	id = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "generation", &v) &&
	    json_object_is_type(v, json_type_int))
		gen = json_object_get_int64(v);
	json_object_put(o);
	if ((u = roster_by_id(r, id)) == NULL)
		return;
	for (c = u->clients; c != NULL; c = next) {
		next = c->next;
		if (c->gen < gen) {
			sock_close(r, c, RELAY_CLOSE_REVOKED,
			    "session revoked");
			n++;
		}
	}
	r->stats.revoked_closed += n;
	if (n > 0)
		log_msg(LOG_INFO, "user %" PRId64 ": %zu sockets revoked", id,
		    n);
	roster_reload(r, u);
}

static void
deliver(struct relay *r, int64_t id, int kind, const char *value,
    const char *payload, size_t len)
{
	struct roster_user *u;
	struct msg *m;
	char *end;
	long long uid;

	if (notify_is_revocation(kind, payload, len)) {
		revoked(r, payload, len);
		return;
	}
	switch (kind) {
	case NOTIFY_USER:
		uid = strtoll(value, &end, 10);
		if (*end != '\0' || end == value ||
		    (u = roster_by_id(r, uid)) == NULL || u->clients == NULL)
			return;
		break;
	case NOTIFY_EXTENSION:
		if ((u = roster_by_ext(r, value)) == NULL || u->clients == NULL)
			return;
		break;
	case NOTIFY_ROLE:
	case NOTIFY_ALL:
		u = NULL;
		break;
	default:
		return;
	}
	if ((m = fan_event(r, payload, len)) == NULL) {
		log_msg(LOG_ERROR, "notify %" PRId64 ": out of memory", id);
		return;
	}
	r->stats.events++;
	if (u != NULL)
		fan_user(r, u, m, id);
	else if (kind == NOTIFY_ROLE)
		fan_role(r, value, m, id);
	else
		fan_all(r, m, id);
	msg_unref(m);
}

/*
 * One batch: 1 when it was full (more may wait), 0 when it was not, -1
 * when the read failed (retried soon; rows already delivered stay so).
 */
static int
pump_batch(struct relay *r)
{
	const char *kind, *value, *payload;
	struct err e = { 0 };
	struct db_stmt *st;
	size_t n = 0, len;
	int64_t id;
	int rc;

	if ((st = db_stmt(r->db, sql[Q_BATCH], &e)) == NULL)
		goto fail;
	db_bind_int(st, 1, r->cursor);
	/* Delivery queues and at most reads (a revoked user's row), so the
	 * rows are used in place while the statement steps. */
	while ((rc = db_row(r->db, st, &e)) == 1) {
		id = db_col_int(st, 0);
		kind = db_col_text(st, 1);
		value = db_col_text(st, 2);
		payload = db_col_text(st, 3);
		len = db_col_len(st, 3);
		r->cursor = id;
		n++;
		/* An event body is an object's text without its '{'. */
		if (kind == NULL || payload == NULL || len < 2 ||
		    payload[0] != '{' || payload[len - 1] != '}') {
			log_msg(LOG_WARN, "notify %" PRId64 " skipped: bad row",
			    id);
			continue;
		}
		deliver(r, id, notify_target_parse(kind),
		    value != NULL ? value : "", payload, len);
	}
	if (rc == -1)
		goto fail;
	r->stats.notify_rows += n;
	return n == PUMP_BATCH ? 1 : 0;
fail:
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
		next = PUMP_RETRY_US;
	lws_sul_schedule(r->ctx, 0, &r->sul_pump, pump_run, next);
}

/* Rows past the retention go, a slice at a time; the high-water mark
 * follows the cursor. */
static void
pump_prune(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_prune);
	int64_t keep = (int64_t)r->cfg.notify_retention_s * LWS_USEC_PER_SEC;
	struct notify_stream s;
	struct err e = { 0 };
	int64_t next = PUMP_PRUNE_US;
	int n = 0;

	if (notify_prune(r->db, db_now_us() - keep, PUMP_PRUNE_ROWS, &n, &e) ==
		-1 ||
	    notify_stream_mark(r->db, r->cursor, &e) == -1 ||
	    notify_stream_get(r->db, &s, &e) == -1) {
		log_msg(LOG_WARN, "notify retention: %s", e.msg);
		next = PUMP_RETRY_US * 20;
	} else {
		r->pruned_through = s.pruned_through;
		if (n == PUMP_PRUNE_ROWS)
			next = PUMP_AGAIN_US * 100;
	}
	lws_sul_schedule(r->ctx, 0, &r->sul_prune, pump_prune, next);
}

int
pump_init(struct relay *r, struct err *e)
{
	struct notify_stream s;
	int rotated;

	if (notify_stream_check(r->db, &rotated, e) == -1 ||
	    notify_stream_get(r->db, &s, e) == -1)
		return -1;
	if (rotated)
		log_msg(LOG_WARN,
		    "notify stream broken (restored or wiped): new epoch %s",
		    s.epoch);
	snprintf(r->epoch, sizeof(r->epoch), "%s", s.epoch);
	r->pruned_through = s.pruned_through;
	r->cursor = s.last;
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
