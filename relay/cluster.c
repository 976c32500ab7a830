/*
 * cluster: several relays on one PostgreSQL database, each serving its own
 * browsers. On SQLite there is one relay and none of this runs.
 *
 * What crosses relays, and how:
 *   - Events of the notify stream: every relay reads the whole stream
 *     (pump.c), so they need nothing here. Revocations are events too, so
 *     a revoked user's sockets close on every relay.
 *   - Messages outside the stream (call invitations, WebRTC signalling):
 *     live only, never replayed, so they go through relay_mail, a table
 *     each relay reads past its own cursor like the stream and delivers to
 *     the sockets it holds of the addressee. Rows are written in the same
 *     serialized write transactions as the stream's, so their ids commit
 *     in order too; they are deleted after CLUSTER_MAIL_KEEP_S.
 *   - Presence: relay_sockets counts each relay's sockets per user; a user
 *     is online while a live relay holds one. Each relay proves it is
 *     alive with a heartbeat in relay_instances; one not heard of for
 *     CLUSTER_DEAD_S is dead, and any other deletes it with its counts.
 *   - Calls: the relay that got call_invite owns the call's timers (ring
 *     timeout, a vanished party's grace). Another relay that sees a
 *     party's message for a call it does not know adopts the call from
 *     its call_logs row (calls.c); the row, whose updates are guarded by
 *     its status, arbitrates between them.
 *
 * A relay's id is drawn at each start: a restarted relay is a new one,
 * and the old one's counts go with it when it is found dead.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/random.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#include "lib/db.h"
#include "lib/db_listen.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/notify.h"
#include "relay/relay.h"

#define CLUSTER_BEAT_S      5
#define CLUSTER_DEAD_S      15
#define CLUSTER_MAIL_KEEP_S 60
#define CLUSTER_MAIL_MAX    (1024 * 1024) /* bytes waiting to be written */
#define CLUSTER_MAIL_BATCH  500
#define CLUSTER_RETRY_US    (50 * 1000)
#define US_PER_S            INT64_C(1000000)

struct mail {
	struct mail *next;
	int64_t user_id;
	size_t len;
	char text[];
};

struct cluster {
	char id[40];
	char node[PATH_MAX + 300];
	int64_t cursor; /* the last relay_mail row read */
	struct mail *head, **tail;
	size_t bytes;
	lws_sorted_usec_list_t sul_beat, sul_send;
	struct relay *r;
};

enum q {
	Q_JOIN,
	Q_PREDECESSOR,
	Q_BEAT,
	Q_LEAVE,
	Q_BURY,
	Q_MAIL_LAST,
	Q_MAIL_ADD,
	Q_MAIL_READ,
	Q_MAIL_PRUNE,
	Q_SOCKETS_SET,
	Q_SOCKETS_DEL,
	Q_SOCKETS_LIVE,
	Q_ONLINE_NOW,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_JOIN] = "INSERT INTO relay_instances (id, node, started_at, "
		   "seen_at) VALUES (?1, ?3, ?2, ?2)",
	/* A relay that died on this node (kill -9) left its counts: they are
	 * this start's to replace, not another live relay's. */
	[Q_PREDECESSOR] = "DELETE FROM relay_instances WHERE node = ?1",
	[Q_BEAT] = "UPDATE relay_instances SET seen_at = ?2 WHERE id = ?1",
	[Q_LEAVE] = "DELETE FROM relay_instances WHERE id = ?1",
	[Q_BURY] = "DELETE FROM relay_instances WHERE seen_at < ?1",
	[Q_MAIL_LAST] = "SELECT coalesce(max(id), 0) FROM relay_mail",
	[Q_MAIL_ADD] = "INSERT INTO relay_mail "
		       "(created_at, origin, user_id, payload) "
		       "VALUES (?1, ?2, ?3, ?4)",
	[Q_MAIL_READ] = "SELECT id, origin, user_id, payload FROM relay_mail "
			"WHERE id > ?1 ORDER BY id LIMIT ?2",
	[Q_MAIL_PRUNE] = "DELETE FROM relay_mail WHERE created_at < ?1",
	[Q_SOCKETS_SET] =
	    "INSERT INTO relay_sockets (relay_id, user_id, sockets) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT (relay_id, user_id) "
	    "DO UPDATE SET sockets = excluded.sockets",
	[Q_SOCKETS_DEL] =
	    "DELETE FROM relay_sockets WHERE relay_id = ?1 AND user_id = ?2",
	[Q_SOCKETS_LIVE] =
	    "SELECT coalesce(sum(s.sockets), 0) FROM relay_sockets s "
	    "JOIN relay_instances i ON i.id = s.relay_id "
	    "WHERE s.user_id = ?1 AND s.relay_id <> ?2 AND i.seen_at >= ?3",
	[Q_ONLINE_NOW] = "SELECT is_online FROM users WHERE id = ?1",
};

static void beat(lws_sorted_usec_list_t *sul);
static void send_mail(lws_sorted_usec_list_t *sul);

static int64_t
now_s(void)
{
	return db_now_us() / US_PER_S;
}

bool
cluster_on(const struct relay *r)
{
	return r->cluster != NULL;
}

static int
join(struct relay *r, struct err *e)
{
	struct db_stmt *st;

	if ((st = db_stmt(r->db, sql[Q_JOIN], e)) == NULL)
		return -1;
	db_bind_text(st, 1, r->cluster->id);
	db_bind_int(st, 2, now_s());
	db_bind_text(st, 3, r->cluster->node);
	return db_done(r->db, st, e);
}

int
cluster_start(struct relay *r, struct err *e)
{
	unsigned char raw[8];
	char host[256];
	struct cluster *k;
	struct db_stmt *st;
	size_t i;
	int rc;

	if (db_engine(r->db) != DB_POSTGRES)
		return 0;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		free(k);
		return err_set(e, ERR_INTERNAL, "no randomness for an id");
	}
	for (i = 0; i < sizeof(raw); i++)
		snprintf(k->id + 2 * i, 3, "%02x", raw[i]);
	k->tail = &k->head;
	k->r = r;
	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(k->node, sizeof(k->node), "%s:%s", host, r->cfg.run_dir);
	r->cluster = k;
	if ((st = db_stmt(r->db, sql[Q_PREDECESSOR], e)) == NULL)
		goto fail;
	db_bind_text(st, 1, k->node);
	if (db_done(r->db, st, e) == -1)
		goto fail;
	if (join(r, e) == -1 ||
	    (st = db_stmt(r->db, sql[Q_MAIL_LAST], e)) == NULL ||
	    (rc = db_row(r->db, st, e)) == -1) {
		goto fail;
	}
	if (rc == 1) {
		k->cursor = db_col_int(st, 0);
		db_reset(st);
	}
	log_msg(LOG_INFO, "relay %s joins the cluster (mail at %" PRId64 ")",
	    k->id, k->cursor);
	lws_sul_schedule(r->ctx, 0, &k->sul_beat, beat,
	    CLUSTER_BEAT_S * US_PER_S);
	return 0;
fail:
	r->cluster = NULL;
	free(k);
	return -1;
}

/*
 * The heartbeat, the burial of relays that stopped beating, and the
 * retention of the mail. A relay found dead by the others (it stalled
 * past CLUSTER_DEAD_S) joins again and rewrites its socket counts.
 */
static int
beat_once(struct relay *r, struct err *e)
{
	struct cluster *k = r->cluster;
	int64_t now = now_s();
	struct roster_user *u;
	struct db_stmt *st;
	bool rejoined = false;

	if (db_begin(r->db, e) == -1)
		return -1;
	if ((st = db_stmt(r->db, sql[Q_BEAT], e)) == NULL)
		goto fail;
	db_bind_text(st, 1, k->id);
	db_bind_int(st, 2, now);
	if (db_done(r->db, st, e) == -1)
		goto fail;
	if (db_changes(r->db) == 0) {
		if (join(r, e) == -1)
			goto fail;
		rejoined = true;
	}
	if ((st = db_stmt(r->db, sql[Q_BURY], e)) == NULL)
		goto fail;
	db_bind_int(st, 1, now - CLUSTER_DEAD_S);
	if (db_done(r->db, st, e) == -1)
		goto fail;
	if (db_changes(r->db) > 0)
		log_msg(LOG_INFO, "%d relays stopped beating: forgotten",
		    db_changes(r->db));
	if ((st = db_stmt(r->db, sql[Q_MAIL_PRUNE], e)) == NULL)
		goto fail;
	db_bind_int(st, 1, now - CLUSTER_MAIL_KEEP_S);
	if (db_done(r->db, st, e) == -1 || db_commit(r->db, e) == -1)
		goto fail;
	if (rejoined) {
		log_msg(LOG_WARN, "relay %s was taken for dead: joins again",
		    k->id);
		for (u = r->users; u != NULL; u = u->next)
			if (u->nclients > 0)
				presence_changed(r, u);
	}
	return 0;
fail:
	db_rollback(r->db);
	return -1;
}

static void
beat(lws_sorted_usec_list_t *sul)
{
	struct cluster *k = lws_container_of(sul, struct cluster, sul_beat);
	struct err e = { 0 };

	if (beat_once(k->r, &e) == -1)
		log_msg(LOG_WARN, "cluster heartbeat: %s", e.msg);
	lws_sul_schedule(k->r->ctx, 0, &k->sul_beat, beat,
	    CLUSTER_BEAT_S * US_PER_S);
}

/* ---- mail ---- */

static int
send_once(struct relay *r, struct err *e)
{
	struct cluster *k = r->cluster;
	int64_t now = now_s();
	struct db_stmt *st;
	struct mail *m;

	if (k->head == NULL)
		return 0;
	if (db_begin(r->db, e) == -1)
		return -1;
	for (m = k->head; m != NULL; m = m->next) {
		if ((st = db_stmt(r->db, sql[Q_MAIL_ADD], e)) == NULL)
			goto fail;
		db_bind_int(st, 1, now);
		db_bind_text(st, 2, k->id);
		db_bind_int(st, 3, m->user_id);
		db_bind_textn(st, 4, m->text, m->len);
		if (db_done(r->db, st, e) == -1)
			goto fail;
	}
	if (db_wake(r->db, NOTIFY_CHANNEL, e) == -1 ||
	    db_commit(r->db, e) == -1)
		goto fail;
	while ((m = k->head) != NULL) {
		k->head = m->next;
		free(m);
	}
	k->tail = &k->head;
	k->bytes = 0;
	return 0;
fail:
	db_rollback(r->db);
	return -1;
}

static void
send_mail(lws_sorted_usec_list_t *sul)
{
	struct cluster *k = lws_container_of(sul, struct cluster, sul_send);
	struct err e = { 0 };

	if (send_once(k->r, &e) == -1) {
		log_msg(LOG_WARN, "relay mail waits: %s (will retry)", e.msg);
		if (!k->r->stopping)
			lws_sul_schedule(k->r->ctx, 0, &k->sul_send,
			    send_mail, CLUSTER_RETRY_US);
	}
}

void
cluster_send(struct relay *r, const struct roster_user *u,
    struct json_object *o)
{
	struct cluster *k = r->cluster;
	const char *text;
	struct mail *m;
	size_t len;

	if (k == NULL || o == NULL || (text = jh_text(o, &len)) == NULL)
		return;
	if (k->bytes + len > CLUSTER_MAIL_MAX ||
	    (m = malloc(sizeof(*m) + len + 1)) == NULL) {
		r->stats.outbox_dropped++;
		log_msg(LOG_WARN, "relay mail dropped: %zu bytes wait",
		    k->bytes);
		return;
	}
	m->next = NULL;
	m->user_id = u->id;
	m->len = len;
	memcpy(m->text, text, len + 1);
	*k->tail = m;
	k->tail = &m->next;
	k->bytes += len;
	if (!r->stopping)
		lws_sul_schedule(r->ctx, 0, &k->sul_send, send_mail, 1);
}

/* One row of another relay's mail, to the sockets here of its user. */
static void
mail_deliver(struct relay *r, int64_t user_id, const char *payload,
    size_t len)
{
	struct roster_user *u;
	struct json_object *o;
	struct msg *m;

	/* The user's calls hold it in the roster even without sockets. */
	if ((u = roster_by_id(r, user_id)) == NULL)
		return;
	if (u->clients != NULL &&
	    (m = msg_new(payload, len, false)) != NULL) {
		fan_user(r, u, m, 0);
		msg_unref(m);
	}
	/* A party's step within a call this relay owns or adopted. */
	if ((o = jh_parse(payload, len, NULL)) != NULL) {
		calls_remote_signal(r, u, o);
		json_object_put(o);
	}
}

int
cluster_pump(struct relay *r)
{
	struct cluster *k = r->cluster;
	struct err e = { 0 };
	struct db_stmt *st;
	const char *origin, *payload;
	size_t n = 0;
	int rc;

	if (k == NULL)
		return 0;
	if ((st = db_stmt(r->db, sql[Q_MAIL_READ], &e)) == NULL)
		goto fail;
	db_bind_int(st, 1, k->cursor);
	db_bind_int(st, 2, CLUSTER_MAIL_BATCH);
	while ((rc = db_row(r->db, st, &e)) == 1) {
		k->cursor = db_col_int(st, 0);
		n++;
		origin = db_col_text(st, 1);
		payload = db_col_text(st, 3);
		if (origin == NULL || payload == NULL ||
		    strcmp(origin, k->id) == 0)
			continue;
		mail_deliver(r, db_col_int(st, 2), payload,
		    db_col_len(st, 3));
	}
	if (rc == -1)
		goto fail;
	return n == CLUSTER_MAIL_BATCH ? 1 : 0;
fail:
	log_msg(LOG_WARN, "relay mail: %s (retrying)", e.msg);
	return -1;
}

/* ---- presence ---- */

/* u's sockets on the other live relays: 0 or more, -1 on error. */
static int64_t
sockets_elsewhere(struct relay *r, const struct roster_user *u,
    struct err *e)
{
	struct db_stmt *st;
	int64_t n = 0;
	int rc;

	if ((st = db_stmt(r->db, sql[Q_SOCKETS_LIVE], e)) == NULL)
		return -1;
	db_bind_int(st, 1, u->id);
	db_bind_text(st, 2, r->cluster->id);
	db_bind_int(st, 3, now_s() - CLUSTER_DEAD_S);
	if ((rc = db_row(r->db, st, e)) == -1)
		return -1;
	if (rc == 1) {
		n = db_col_int(st, 0);
		db_reset(st);
	}
	return n;
}

int
cluster_presence(struct relay *r, const struct roster_user *u, bool *online,
    bool *write, struct err *e)
{
	struct cluster *k = r->cluster;
	int64_t elsewhere, now_online = 0;
	struct db_stmt *st;
	int rc;

	*online = u->nclients > 0;
	if (k == NULL)
		return 0;
	if ((st = db_stmt(r->db,
		 sql[u->nclients > 0 ? Q_SOCKETS_SET : Q_SOCKETS_DEL], e)) ==
	    NULL)
		return -1;
	db_bind_text(st, 1, k->id);
	db_bind_int(st, 2, u->id);
	if (u->nclients > 0)
		db_bind_int(st, 3, u->nclients);
	if (db_done(r->db, st, e) == -1 ||
	    (elsewhere = sockets_elsewhere(r, u, e)) == -1)
		return -1;
	*online = u->nclients > 0 || elsewhere > 0;
	/* What the row says decides, not what this relay last wrote:
	 * another relay may have written since. */
	if ((st = db_stmt(r->db, sql[Q_ONLINE_NOW], e)) == NULL)
		return -1;
	db_bind_int(st, 1, u->id);
	if ((rc = db_row(r->db, st, e)) == -1)
		return -1;
	if (rc == 1) {
		now_online = db_col_int(st, 0);
		db_reset(st);
	}
	/* As on one relay, a change from what this relay last wrote is
	 * written (and said); so is a row that disagrees with the relays. */
	*write = *online != u->online_written ||
		 (rc == 1 && (now_online != 0) != *online);
	return 0;
}

int64_t
cluster_sockets_elsewhere(struct relay *r, const struct roster_user *u)
{
	struct err e = { 0 };
	int64_t n;

	if (r->cluster == NULL)
		return 0;
	if ((n = sockets_elsewhere(r, u, &e)) == -1) {
		log_msg(LOG_WARN, "cluster sockets: %s", e.msg);
		return 0;
	}
	return n;
}

/* ---- the end ---- */

void
cluster_stop(struct relay *r)
{
	struct cluster *k = r->cluster;

	if (k == NULL)
		return;
	lws_sul_cancel(&k->sul_beat);
	lws_sul_cancel(&k->sul_send);
}

/* After presence_free: the last mail, then this relay leaves with its
 * socket counts. */
void
cluster_free(struct relay *r)
{
	struct cluster *k = r->cluster;
	struct err e = { 0 };
	struct db_stmt *st;
	struct mail *m;

	if (k == NULL)
		return;
	if (send_once(r, &e) == -1)
		log_msg(LOG_WARN, "relay mail lost at stop: %s", e.msg);
	if ((st = db_stmt(r->db, sql[Q_LEAVE], &e)) != NULL) {
		db_bind_text(st, 1, k->id);
		if (db_done(r->db, st, &e) == -1)
			st = NULL;
	}
	if (st == NULL)
		log_msg(LOG_WARN, "relay leaves: %s", e.msg);
	while ((m = k->head) != NULL) {
		k->head = m->next;
		free(m);
	}
	free(k);
	r->cluster = NULL;
}
