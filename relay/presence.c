/*
 * presence: who is online. A user's first socket makes it online and its
 * last one offline; the row and the user_status_changed event that tells
 * everyone are written together on the next turn of the loop, coalesced
 * per user: a burst of connects and disconnects writes the state it ends
 * in, once (or nothing, when it ends where it began). Statuses a user
 * sends over its socket (user_status, user_online, user_offline) are
 * coalesced the same way: the latest one is written. A busy database
 * keeps the changes pending and retries; their users stay in the roster
 * until then.
 *
 * Several relays (cluster.c): a user is online while any live relay holds
 * one of its sockets, so the last socket here ends it only when no other
 * relay counts one, and the sweep leaves alone users counted anywhere.
 *
 * The stale sweep: rows that say online with nobody behind them (after a
 * crash, the users who had sockets then; at any time, a user who logged
 * in over REST and never opened a socket, or closed the browser without
 * logging out) go offline when their last_seen, which the REST heartbeat
 * keeps fresh, is older than r->presence_stale_s.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/notify.h"
#include "relay/relay.h"

#define PRESENCE_RETRY_US       (50 * 1000)
#define PRESENCE_SWEEP_RETRY_US (1000 * 1000)
#define PRESENCE_SWEEP_BATCH    100  /* users set offline per turn */
#define PRESENCE_SWEEP_NEXT     1000 /* us: after a full batch, the next one */

enum q { Q_PRESENCE, Q_STALE, Q_STALE_OFF, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_PRESENCE] = "UPDATE users SET is_online = ?2, status = ?3, "
		       "last_seen = ?4 WHERE id = ?1",
	/* Q_STALE_OFF repeats Q_STALE's condition: a heartbeat, login or
	 * socket between the two keeps the user online. */
	[Q_STALE] = "SELECT id, last_seen, extension, username FROM users "
		    "WHERE id > ?2 AND (is_online = 1 OR status = 'online') "
		    "AND (last_seen IS NULL OR last_seen < ?1) "
		    "AND NOT EXISTS (SELECT 1 FROM relay_sockets s "
		    "WHERE s.user_id = users.id AND s.sockets > 0) "
		    "ORDER BY id LIMIT ?3",
	[Q_STALE_OFF] =
	    "UPDATE users SET is_online = 0, status = 'offline' "
	    "WHERE id = ?1 AND (is_online = 1 OR status = 'online') "
	    "AND (last_seen IS NULL OR last_seen < ?2) "
	    "AND NOT EXISTS (SELECT 1 FROM relay_sockets s "
	    "WHERE s.user_id = users.id AND s.sockets > 0)",
};

static void flush(lws_sorted_usec_list_t *sul);

static void
mark(struct relay *r, struct roster_user *u)
{
	if (!u->presence_dirty) {
		u->presence_dirty = true;
		u->next_dirty = r->dirty;
		r->dirty = u;
	}
	if (!r->stopping)
		lws_sul_schedule(r->ctx, 0, &r->sul_presence, flush, 1);
}

void
presence_changed(struct relay *r, struct roster_user *u)
{
	mark(r, u);
}

void
presence_said(struct relay *r, struct roster_user *u, const char *type,
    const char *status)
{
	snprintf(u->said_type, sizeof(u->said_type), "%s", type);
	snprintf(u->said_status, sizeof(u->said_status), "%s", status);
	mark(r, u);
}

/* user_status_changed in the REST form (keys sorted, as gin.H); the
 * relay fills in client_count and ws_connected when it delivers it.
 * last_seen NULL: never seen. */
static int
notify_presence(struct db *db, int64_t id, const char *ext,
    const char *username, bool online, const char *last_seen, struct err *e)
{
	struct json_object *o;
	int rc;

	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_int(o, "client_count", 0);
	jh_add_str(o, "extension", ext);
	jh_add_bool(o, "is_online", online);
	if (last_seen != NULL)
		jh_add_str(o, "last_seen", last_seen);
	else
		jh_add_null(o, "last_seen");
	jh_add_str(o, "status", online ? "online" : "offline");
	jh_add_int(o, "timestamp", (int64_t)time(NULL));
	jh_add_str(o, "type", "user_status_changed");
	jh_add_int(o, "user_id", id);
	jh_add_str(o, "username", username != NULL ? username : "");
	jh_add_bool(o, "ws_connected", false);
	rc = notify_enqueue(db, NOTIFY_ALL, "", o, e);
	json_object_put(o);
	return rc;
}

static int
notify_said(struct db *db, const struct roster_user *u, struct err *e)
{
	struct json_object *o;
	int rc;

	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(o, "type", u->said_type);
	jh_add_str(o, "from", u->extension);
	jh_add_str(o, "status", u->said_status);
	jh_add_int(o, "timestamp", (int64_t)time(NULL));
	rc = notify_enqueue(db, NOTIFY_ALL, "", o, e);
	json_object_put(o);
	return rc;
}

static int
write_one(struct relay *r, struct roster_user *u, const char *now,
    struct err *e)
{
	bool online = u->nclients > 0, write = online != u->online_written;
	struct db_stmt *st;

	/* With other relays, the user is online while any of them holds a
	 * socket; the row, not this relay's last write, says what it is. */
	if (cluster_on(r) &&
	    cluster_presence(r, u, &online, &write, e) == -1)
		return -1;
	u->online_next = online;
	if (write) {
		if ((st = db_stmt(r->db, sql[Q_PRESENCE], e)) == NULL)
			return -1;
		db_bind_int(st, 1, u->id);
		db_bind_int(st, 2, online);
		db_bind_text(st, 3, online ? "online" : "offline");
		db_bind_text(st, 4, now);
		if (db_done(r->db, st, e) == -1)
			return -1;
		/* A deleted user's row is gone: nobody is told. */
		if (db_changes(r->db) > 0 &&
		    notify_presence(r->db, u->id, u->extension, u->username,
			online, now, e) == -1)
			return -1;
	}
	if (u->said_type[0] != '\0' && u->extension[0] != '\0' &&
	    notify_said(r->db, u, e) == -1)
		return -1;
	return 0;
}

static int
flush_once(struct relay *r)
{
	struct roster_user *u, *next;
	struct err e = { 0 };
	char now[40];

	if (r->dirty == NULL)
		return 0;
	db_now(now, sizeof(now));
	if (db_begin(r->db, &e) == -1)
		goto fail;
	for (u = r->dirty; u != NULL; u = u->next_dirty)
		if (write_one(r, u, now, &e) == -1) {
			db_rollback(r->db);
			goto fail;
		}
	if (db_commit(r->db, &e) == -1)
		goto fail;
	for (u = r->dirty, r->dirty = NULL; u != NULL; u = next) {
		next = u->next_dirty;
		u->next_dirty = NULL;
		u->presence_dirty = false;
		u->online_written = u->online_next;
		u->said_type[0] = u->said_status[0] = '\0';
		roster_release(r, u);
	}
	if (!r->stopping)
		pump_kick(r);
	return 0;
fail:
	log_msg(LOG_WARN, "presence: %s (will retry)", e.msg);
	return -1;
}

static void
flush(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_presence);

	if (flush_once(r) == -1 && !r->stopping)
		lws_sul_schedule(r->ctx, 0, &r->sul_presence, flush,
		    PRESENCE_RETRY_US);
}

/*
 * One batch of the sweep: the candidates are read, then each is updated
 * under the same condition, with its event, in one short transaction.
 * 1 when the batch was full, 0 when not, -1 on failure.
 */
static int
sweep_batch(struct relay *r, const char *cutoff)
{
	struct cand {
		int64_t id;
		char seen[40], ext[16], name[64];
	} * cs;
	struct roster_user *u;
	struct err e = { 0 };
	size_t n = 0, noff = 0, i;
	struct db_stmt *st;
	const char *s;
	int rc;

	if ((cs = calloc(PRESENCE_SWEEP_BATCH, sizeof(*cs))) == NULL)
		return -1;
	if ((st = db_stmt(r->db, sql[Q_STALE], &e)) == NULL)
		goto fail;
	db_bind_text(st, 1, cutoff);
	db_bind_int(st, 2, r->sweep_after);
	db_bind_int(st, 3, PRESENCE_SWEEP_BATCH);
	while ((rc = db_row(r->db, st, &e)) == 1) {
		cs[n].id = db_col_int(st, 0);
		s = db_col_text(st, 1);
		snprintf(cs[n].seen, sizeof(cs[n].seen), "%s", s ? s : "");
		s = db_col_text(st, 2);
		snprintf(cs[n].ext, sizeof(cs[n].ext), "%s", s ? s : "");
		s = db_col_text(st, 3);
		snprintf(cs[n].name, sizeof(cs[n].name), "%s", s ? s : "");
		n++;
	}
	if (rc == -1)
		goto fail;
	if (n == 0) {
		free(cs);
		return 0;
	}
	if (db_begin(r->db, &e) == -1)
		goto fail;
	for (i = 0; i < n; i++) {
		u = roster_by_id(r, cs[i].id);
		if (u != NULL && u->nclients > 0)
			continue;
		if ((st = db_stmt(r->db, sql[Q_STALE_OFF], &e)) == NULL)
			goto rollback;
		db_bind_int(st, 1, cs[i].id);
		db_bind_text(st, 2, cutoff);
		if (db_done(r->db, st, &e) == -1)
			goto rollback;
		if (db_changes(r->db) == 0)
			continue;
		if (notify_presence(r->db, cs[i].id, cs[i].ext, cs[i].name,
			false, cs[i].seen[0] != '\0' ? cs[i].seen : NULL,
			&e) == -1)
			goto rollback;
		noff++;
	}
	if (db_commit(r->db, &e) == -1)
		goto fail;
	r->sweep_after = cs[n - 1].id;
	if (noff > 0) {
		log_msg(LOG_INFO, "%zu users without sockets set offline",
		    noff);
		pump_kick(r);
	}
	rc = n == PRESENCE_SWEEP_BATCH ? 1 : 0;
	free(cs);
	return rc;
rollback:
	db_rollback(r->db);
fail:
	free(cs);
	log_msg(LOG_WARN, "presence sweep: %s (will retry)", e.msg);
	return -1;
}

static void
sweep(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_sweep);
	int64_t next = (int64_t)RELAY_SWEEP_S * LWS_USEC_PER_SEC;
	int64_t stale = (int64_t)r->presence_stale_s * LWS_USEC_PER_SEC;
	char cutoff[40];
	int rc;

	db_time_format(db_now_us() - stale, cutoff, sizeof(cutoff));
	if ((rc = sweep_batch(r, cutoff)) == -1)
		next = PRESENCE_SWEEP_RETRY_US;
	else if (rc == 1)
		next = PRESENCE_SWEEP_NEXT;
	else
		r->sweep_after = 0;
	lws_sul_schedule(r->ctx, 0, &r->sul_sweep, sweep, next);
}

void
presence_start(struct relay *r)
{
	r->sweep_after = 0;
	lws_sul_schedule(r->ctx, 0, &r->sul_sweep, sweep, 1);
}

void
presence_stop(struct relay *r)
{
	lws_sul_cancel(&r->sul_presence);
	lws_sul_cancel(&r->sul_sweep);
}

/* After the loop: one last try at what is pending. */
void
presence_free(struct relay *r)
{
	struct roster_user *u;

	flush_once(r);
	for (u = r->dirty; u != NULL; u = u->next_dirty)
		u->presence_dirty = false;
	r->dirty = NULL;
}
