/*
 * hub: who is connected, and getting messages to them. Users are known by
 * id and by extension; each has its sockets, its event sequence and a
 * replay ring. Messages are built once and shared; each socket has a
 * bounded queue drained one frame per WRITEABLE.
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
#include <sqlite3.h>

#include "lib/auth.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "relay/relay.h"

#define HUB_BUCKETS_MIN 256
#define HUB_QCAP_MIN    8
#define HUB_RING_MIN    8
#define HUB_SEQ_PREFIX  32 /* {"seq":<int64>, */
#define HUB_RETRY_US    (1000 * 1000)
#define HUB_SWEEP_BATCH 100  /* users set offline per turn of the loop */
#define HUB_SWEEP_NEXT  1000 /* us: after a full batch, the next one */

enum q {
	Q_USERS_ALL,
	Q_USER_BY_ID,
	Q_USER_BY_EXT,
	Q_PRESENCE,
	Q_STALE,
	Q_STALE_OFF,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_USERS_ALL] = "SELECT id, extension, username, role FROM users",
	[Q_USER_BY_ID] =
	    "SELECT id, extension, username, role FROM users WHERE id = ?1",
	[Q_USER_BY_EXT] = "SELECT id, extension, username, role FROM users "
			  "WHERE extension = ?1",
	[Q_PRESENCE] = "UPDATE users SET is_online = ?2, status = ?3, "
		       "last_seen = ?4 WHERE id = ?1",
	/* Q_STALE_OFF repeats Q_STALE's condition: a heartbeat, login or
	 * socket between the two keeps the user online. */
	[Q_STALE] = "SELECT id, last_seen FROM users WHERE id > ?2 "
		    "AND (is_online = 1 OR status = 'online') "
		    "AND (last_seen IS NULL OR last_seen < ?1) "
		    "ORDER BY id LIMIT ?3",
	[Q_STALE_OFF] =
	    "UPDATE users SET is_online = 0, status = 'offline' "
	    "WHERE id = ?1 AND (is_online = 1 OR status = 'online') "
	    "AND (last_seen IS NULL OR last_seen < ?2)",
};

static void presence_retry(lws_sorted_usec_list_t *sul);
static void presence_sweep(lws_sorted_usec_list_t *sul);
static void slow_reap(lws_sorted_usec_list_t *sul);

/* ---- messages ---- */

struct msg *
msg_new(const char *text, size_t len, bool event)
{
	struct msg *m;

	if (len >= UINT32_MAX || (m = malloc(sizeof(*m) + len + 1)) == NULL)
		return NULL;
	m->refs = 1;
	m->len = (uint32_t)len;
	m->event = event;
	memcpy(m->text, text, len);
	m->text[len] = '\0';
	return m;
}

struct msg *
msg_json(struct json_object *o, bool event)
{
	const char *text;
	size_t len;

	if ((text = jh_text(o, &len)) == NULL || len < 2 || text[0] != '{')
		return NULL;
	if (event)
		return msg_new(text + 1, len - 1, true);
	return msg_new(text, len, false);
}

static struct msg *
msg_ref(struct msg *m)
{
	m->refs++;
	return m;
}

void
msg_unref(struct msg *m)
{
	if (m != NULL && --m->refs == 0)
		free(m);
}

/* ---- the user tables ---- */

static size_t
hash_id(int64_t id, size_t nbuckets)
{
	uint64_t x = (uint64_t)id;

	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	return (size_t)(x & (nbuckets - 1));
}

static size_t
hash_ext(const char *s, size_t nbuckets)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(0x100000001b3);
	}
	return (size_t)(h & (nbuckets - 1));
}

static void
ext_unlink(struct relay *r, struct hub_user *u)
{
	struct hub_user **pp;

	if (u->extension[0] == '\0')
		return;
	for (pp = &r->by_ext[hash_ext(u->extension, r->nbuckets)]; *pp != NULL;
	     pp = &(*pp)->next_ext)
		if (*pp == u) {
			*pp = u->next_ext;
			break;
		}
	u->next_ext = NULL;
}

static void
ext_link(struct relay *r, struct hub_user *u)
{
	size_t b;

	if (u->extension[0] == '\0')
		return;
	b = hash_ext(u->extension, r->nbuckets);
	u->next_ext = r->by_ext[b];
	r->by_ext[b] = u;
}

/* Double the buckets; the chains are rebuilt from the users array. */
static int
tables_grow(struct relay *r)
{
	size_t n = r->nbuckets ? r->nbuckets * 2 : HUB_BUCKETS_MIN, i, b;
	struct hub_user **id, **ext, *u;

	if ((id = calloc(n, sizeof(*id))) == NULL ||
	    (ext = calloc(n, sizeof(*ext))) == NULL) {
		free(id);
		return -1;
	}
	free(r->by_id);
	free(r->by_ext);
	r->by_id = id;
	r->by_ext = ext;
	r->nbuckets = n;
	for (i = 0; i < r->nusers; i++) {
		u = r->users[i];
		b = hash_id(u->id, n);
		u->next_id = id[b];
		id[b] = u;
		ext_link(r, u);
	}
	return 0;
}

static struct hub_user *
find_id(struct relay *r, int64_t id)
{
	struct hub_user *u;

	if (r->nbuckets == 0)
		return NULL;
	for (u = r->by_id[hash_id(id, r->nbuckets)]; u != NULL; u = u->next_id)
		if (u->id == id)
			return u;
	return NULL;
}

static struct hub_user *
find_ext(struct relay *r, const char *ext)
{
	struct hub_user *u;

	if (r->nbuckets == 0 || ext[0] == '\0')
		return NULL;
	for (u = r->by_ext[hash_ext(ext, r->nbuckets)]; u != NULL;
	     u = u->next_ext)
		if (strcmp(u->extension, ext) == 0)
			return u;
	return NULL;
}

static void
set_text(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* Set the row's fields, moving u in the extension index when it changed;
 * a stale holder of the extension loses it. */
static void
user_set(struct relay *r, struct hub_user *u, const char *ext,
    const char *username, const char *role)
{
	struct hub_user *old;

	if (ext != NULL && strcmp(u->extension, ext) != 0) {
		ext_unlink(r, u);
		if ((old = find_ext(r, ext)) != NULL) {
			ext_unlink(r, old);
			old->extension[0] = '\0';
		}
		set_text(u->extension, sizeof(u->extension), ext);
		ext_link(r, u);
	}
	if (username != NULL)
		set_text(u->username, sizeof(u->username), username);
	if (role != NULL)
		set_text(u->role, sizeof(u->role), role);
}

static struct hub_user *
user_new(struct relay *r, int64_t id, bool complete)
{
	struct hub_user *u, **users;
	size_t b, cap;

	if (r->nusers >= r->nbuckets && tables_grow(r) == -1)
		return NULL;
	if (r->nusers == r->users_cap) {
		cap = r->users_cap ? r->users_cap * 2 : HUB_BUCKETS_MIN;
		if ((users = realloc(r->users, cap * sizeof(*users))) == NULL)
			return NULL;
		r->users = users;
		r->users_cap = cap;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	u->id = id;
	u->next_seq = r->seq_base + 1;
	u->complete = complete;
	b = hash_id(id, r->nbuckets);
	u->next_id = r->by_id[b];
	r->by_id[b] = u;
	r->users[r->nusers++] = u;
	return u;
}

static const char *
col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* Get or create the state of the user in the current row of st. */
static struct hub_user *
user_from_row(struct relay *r, sqlite3_stmt *st, bool complete)
{
	int64_t id = sqlite3_column_int64(st, 0);
	struct hub_user *u;

	if ((u = find_id(r, id)) == NULL &&
	    (u = user_new(r, id, complete)) == NULL)
		return NULL;
	user_set(r, u, col(st, 1), col(st, 2), col(st, 3));
	return u;
}

/* Look one user up by st (bound), creating its state. */
static struct hub_user *
user_load(struct relay *r, sqlite3_stmt *st)
{
	struct hub_user *u = NULL;
	struct err e = { 0 };
	int rc;

	if ((rc = db_row(r->db, st, &e)) == 1) {
		u = user_from_row(r, st, false);
		sqlite3_reset(st);
	} else if (rc == -1)
		log_msg(LOG_WARN, "user lookup: %s", e.msg);
	return u;
}

struct hub_user *
hub_user_by_id(struct relay *r, int64_t id, bool load)
{
	struct hub_user *u;
	sqlite3_stmt *st;

	if ((u = find_id(r, id)) != NULL || !load)
		return u;
	if ((st = db_stmt(r->db, sql[Q_USER_BY_ID], NULL)) == NULL)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	return user_load(r, st);
}

struct hub_user *
hub_user_by_ext(struct relay *r, const char *ext, bool load)
{
	struct hub_user *u;
	sqlite3_stmt *st;

	if ((u = find_ext(r, ext)) != NULL || !load)
		return u;
	if ((st = db_stmt(r->db, sql[Q_USER_BY_EXT], NULL)) == NULL)
		return NULL;
	sqlite3_bind_text(st, 1, ext, -1, SQLITE_TRANSIENT);
	return user_load(r, st);
}

struct hub_user *
hub_user_update(struct relay *r, const struct auth_user *au)
{
	struct hub_user *u;

	if ((u = find_id(r, au->id)) == NULL &&
	    (u = user_new(r, au->id, false)) == NULL)
		return NULL;
	user_set(r, u, au->extension, au->username, au->role);
	return u;
}

/*
 * Every user gets a state at start, so the rings of all of them hold every
 * event of this run: a browser reconnecting after a restart with the seq it
 * last saw is replayed what it missed, including what the notify table had
 * pending while the relay was down.
 */
int
hub_init(struct relay *r, struct err *e)
{
	static const char welcome[] =
	    "{\"type\":\"welcome\",\"status\":\"connected\",\"timestamp\":0}";
	sqlite3_stmt *st;
	int rc;

	if ((r->welcome = msg_new(welcome, sizeof(welcome) - 1, false)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if (tables_grow(r) == -1)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if ((st = db_stmt(r->db, sql[Q_USERS_ALL], e)) == NULL)
		return -1;
	while ((rc = db_row(r->db, st, e)) == 1)
		if (user_from_row(r, st, true) == NULL) {
			sqlite3_reset(st);
			return err_set(e, ERR_INTERNAL, "out of memory");
		}
	return rc;
}

/* ---- rings and queues ---- */

static struct msg *
ring_at(const struct hub_user *u, size_t i)
{
	return u->ring[(u->ring_head + i) % u->ring_cap];
}

static void
ring_drop_oldest(struct hub_user *u)
{
	struct msg *m = u->ring[u->ring_head];

	u->ring_bytes -= m->len;
	msg_unref(m);
	u->ring_head = (uint16_t)((u->ring_head + 1) % u->ring_cap);
	u->ring_len--;
}

/* Keep m as u's newest event; the oldest go when a bound is reached. A
 * failed allocation drops the oldest instead of growing. */
static void
ring_append(struct hub_user *u, struct msg *m)
{
	struct msg **ring;
	size_t cap, i;

	while (u->ring_len > 0 && u->ring_bytes + m->len > RELAY_RING_BYTES_MAX)
		ring_drop_oldest(u);
	if (u->ring_len == u->ring_cap && u->ring_cap < RELAY_RING_MAX) {
		cap = u->ring_cap ? u->ring_cap * 2u : HUB_RING_MIN;
		if ((ring = malloc(cap * sizeof(*ring))) != NULL) {
			for (i = 0; i < u->ring_len; i++)
				ring[i] = ring_at(u, i);
			free(u->ring);
			u->ring = ring;
			u->ring_cap = (uint16_t)cap;
			u->ring_head = 0;
		}
	}
	if (u->ring_cap == 0)
		return;
	if (u->ring_len == u->ring_cap)
		ring_drop_oldest(u);
	u->ring[(u->ring_head + u->ring_len) % u->ring_cap] = msg_ref(m);
	u->ring_len++;
	u->ring_bytes += m->len;
}

static void
ring_free(struct hub_user *u)
{
	while (u->ring_len > 0)
		ring_drop_oldest(u);
	free(u->ring);
	u->ring = NULL;
	u->ring_cap = u->ring_head = 0;
}

static void
queue_clear(struct client *c)
{
	while (c->qlen > 0) {
		msg_unref(c->q[c->qhead].m);
		c->qhead = (uint16_t)((c->qhead + 1) % c->qcap);
		c->qlen--;
	}
	free(c->q);
	c->q = NULL;
	c->qcap = c->qhead = 0;
	c->qbytes = 0;
}

/*
 * A socket that fell behind leaves the hub at once (it gets nothing more,
 * and no longer counts as connected) but stays open until it can take its
 * 4008 close frame. Both steps are deferred: we may be inside another
 * socket's callback or in the middle of a delivery to this user. A peer that
 * never drains enough to become writeable is cut after RELAY_SLOW_KILL_S.
 */
static void
client_too_slow(struct relay *r, struct client *c)
{
	c->slow = true;
	r->stats.slow_closed++;
	queue_clear(c);
	log_msg(LOG_INFO, "socket of extension %s closed: too slow",
	    c->user != NULL ? c->user->extension : "?");
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, RELAY_SLOW_KILL_S);
	lws_callback_on_writable(c->wsi);
	if (!c->attached || r->stopping)
		return;
	c->next_slow = r->slow;
	r->slow = c;
	lws_sul_schedule(r->ctx, 0, &r->sul_reap, slow_reap, 1);
}

static bool
client_enqueue(struct relay *r, struct client *c, struct msg *m, int64_t seq)
{
	struct qent *q;
	size_t cap, i;

	if (c->slow || r->stopping)
		return false;
	if (c->qlen >= RELAY_Q_MAX ||
	    (uint64_t)c->qbytes + m->len > RELAY_Q_BYTES_MAX) {
		client_too_slow(r, c);
		return false;
	}
	if (c->qlen == c->qcap) {
		cap = c->qcap ? c->qcap * 2u : HUB_QCAP_MIN;
		if ((q = malloc(cap * sizeof(*q))) == NULL) {
			client_too_slow(r, c);
			return false;
		}
		for (i = 0; i < c->qlen; i++)
			q[i] = c->q[(c->qhead + i) % c->qcap];
		free(c->q);
		c->q = q;
		c->qcap = (uint16_t)cap;
		c->qhead = 0;
	}
	c->q[(c->qhead + c->qlen) % c->qcap] =
	    (struct qent){ .m = msg_ref(m), .seq = seq };
	c->qbytes += m->len;
	if (c->qlen++ == 0)
		lws_callback_on_writable(c->wsi);
	return true;
}

bool
hub_reply(struct relay *r, struct client *c, struct msg *m)
{
	if (m == NULL)
		return false;
	return client_enqueue(r, c, m, 0);
}

size_t
hub_push(struct relay *r, struct hub_user *u, struct msg *m)
{
	int64_t seq = u->next_seq++;
	struct client *c;
	size_t n = 0;

	r->stats.events++;
	ring_append(u, m);
	for (c = u->clients; c != NULL; c = c->next)
		if (client_enqueue(r, c, m, seq))
			n++;
	r->stats.delivered += n;
	return n;
}

size_t
hub_push_all(struct relay *r, struct msg *m)
{
	size_t i, n = 0;

	for (i = 0; i < r->nusers; i++)
		n += hub_push(r, r->users[i], m);
	return n;
}

size_t
hub_push_role(struct relay *r, const char *role, struct msg *m)
{
	size_t i, n = 0;

	for (i = 0; i < r->nusers; i++)
		if (strcmp(r->users[i]->role, role) == 0)
			n += hub_push(r, r->users[i], m);
	return n;
}

static void
reply_literal(struct relay *r, struct client *c, const char *text)
{
	struct msg *m;

	if ((m = msg_new(text, strlen(text), false)) != NULL) {
		hub_reply(r, c, m);
		msg_unref(m);
	}
}

/*
 * since is the last seq the browser saw. Seqs of an earlier run are below
 * seq_base: those are answered from the ring only when it still holds
 * everything of this run for the user.
 */
void
hub_replay(struct relay *r, struct client *c, int64_t since)
{
	struct hub_user *u = c->user;
	int64_t last = u->next_seq - 1, first = u->next_seq - u->ring_len;
	int64_t from, s;
	bool ok;

	if (since <= r->seq_base) {
		ok = u->complete && first == r->seq_base + 1;
		from = first;
	} else {
		ok = since <= last && since + 1 >= first;
		from = since + 1;
	}
	if (!ok) {
		reply_literal(r, c, "{\"type\":\"resync_required\"}");
		return;
	}
	for (s = from; s <= last; s++)
		if (!client_enqueue(r, c, ring_at(u, (size_t)(s - first)), s))
			break;
}

int
hub_write(struct relay *r, struct client *c)
{
	unsigned char reason[] = "client too slow";
	unsigned char *p, *buf;
	struct qent e;
	size_t need, n = 0;
	int k;

	if (c->slow) {
		lws_close_reason(c->wsi, RELAY_CLOSE_SLOW, reason,
		    sizeof(reason) - 1);
		return -1;
	}
	if (c->qlen == 0)
		return 0;
	e = c->q[c->qhead];
	need = LWS_PRE + HUB_SEQ_PREFIX + e.m->len;
	if (need > r->sendcap) {
		if ((buf = realloc(r->sendbuf, need)) == NULL)
			return -1;
		r->sendbuf = buf;
		r->sendcap = need;
	}
	p = r->sendbuf + LWS_PRE;
	if (e.m->event) {
		k = snprintf((char *)p, HUB_SEQ_PREFIX,
		    "{\"seq\":%" PRId64 "%s", e.seq,
		    e.m->text[0] == '}' ? "" : ",");
		n = (size_t)k;
	}
	memcpy(p + n, e.m->text, e.m->len);
	n += e.m->len;
	c->qhead = (uint16_t)((c->qhead + 1) % c->qcap);
	c->qlen--;
	c->qbytes -= e.m->len;
	msg_unref(e.m);
	if (c->qlen == 0)
		queue_clear(c); /* an idle socket holds no queue memory */
	if (lws_write(c->wsi, p, n, LWS_WRITE_TEXT) < (int)n)
		return -1;
	r->stats.written++;
	if (c->qlen > 0)
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* ---- presence ---- */

static int
presence_store(struct relay *r, struct hub_user *u, const char *now)
{
	bool online = u->nclients > 0;
	struct err e = { 0 };
	sqlite3_stmt *st;

	if ((st = db_stmt(r->db, sql[Q_PRESENCE], &e)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, u->id);
	sqlite3_bind_int(st, 2, online);
	sqlite3_bind_text(st, 3, online ? "online" : "offline", -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
	if (db_done(r->db, st, &e) == 0)
		return 0;
fail:
	log_msg(LOG_WARN, "presence of user %" PRId64 ": %s (will retry)",
	    u->id, e.msg);
	return -1;
}

static void
presence_mark_dirty(struct relay *r, struct hub_user *u)
{
	if (u->presence_dirty)
		return;
	u->presence_dirty = true;
	u->next_dirty = r->dirty;
	r->dirty = u;
	/* While stopping the context is going: hub_free tries once more. */
	if (!r->stopping)
		lws_sul_schedule(r->ctx, 0, &r->sul_presence, presence_retry,
		    HUB_RETRY_US);
}

static void
presence_retry(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_presence);
	struct hub_user *u, *list = r->dirty;
	char now[40];

	r->dirty = NULL;
	db_now(now, sizeof(now));
	while ((u = list) != NULL) {
		list = u->next_dirty;
		u->presence_dirty = false;
		if (presence_store(r, u, now) == -1)
			presence_mark_dirty(r, u);
	}
}

/* Everyone hears of u's presence in the REST form of user_status_changed;
 * last_seen NULL: never seen. */
static void
presence_broadcast(struct relay *r, struct hub_user *u, const char *last_seen)
{
	bool online = u->nclients > 0;
	struct json_object *o;
	struct msg *m;

	if (r->stopping)
		return;
	if ((o = json_object_new_object()) == NULL)
		return;
	jh_add_int(o, "client_count", u->nclients);
	jh_add_str(o, "extension", u->extension);
	jh_add_bool(o, "is_online", online);
	if (last_seen != NULL)
		jh_add_str(o, "last_seen", last_seen);
	else
		jh_add_null(o, "last_seen");
	jh_add_str(o, "status", online ? "online" : "offline");
	jh_add_int(o, "timestamp", (int64_t)time(NULL));
	jh_add_str(o, "type", "user_status_changed");
	jh_add_int(o, "user_id", u->id);
	jh_add_str(o, "username", u->username);
	jh_add_bool(o, "ws_connected", online);
	if ((m = msg_json(o, true)) != NULL) {
		hub_push_all(r, m);
		msg_unref(m);
	}
	json_object_put(o);
}

/* The database row follows the sockets, and everyone hears of it. */
static void
presence_changed(struct relay *r, struct hub_user *u)
{
	char now[40];

	db_now(now, sizeof(now));
	if (presence_store(r, u, now) == -1)
		presence_mark_dirty(r, u);
	presence_broadcast(r, u, now);
}

/*
 * Rows that say online with nobody behind them: after a crash, the users
 * who had sockets then; at any time, a user who logged in over REST and
 * never opened a socket, or closed the browser without logging out. Those
 * without a socket here whose last_seen (which the REST heartbeat keeps
 * fresh) is older than r->presence_stale_s go offline, and everyone hears
 * it as if a last socket had closed. last_seen stays: it is when the user
 * was last seen. One batch per turn of the loop: the candidates are read,
 * then each is updated under the same condition in one short transaction.
 * As pump_batch: 1 when the batch was full, 0 when not, -1 on failure.
 */
static int
sweep_batch(struct relay *r, const char *cutoff)
{
	int64_t ids[HUB_SWEEP_BATCH], after = r->sweep_after;
	char seen[HUB_SWEEP_BATCH][40];
	bool off[HUB_SWEEP_BATCH];
	struct err e = { 0 };
	struct hub_user *u;
	size_t n = 0, noff = 0, i;
	sqlite3_stmt *st;
	int rc;

	if ((st = db_stmt(r->db, sql[Q_STALE], &e)) == NULL)
		goto fail;
	sqlite3_bind_text(st, 1, cutoff, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, HUB_SWEEP_BATCH);
	while ((rc = db_row(r->db, st, &e)) == 1) {
		ids[n] = sqlite3_column_int64(st, 0);
		set_text(seen[n], sizeof(seen[n]), col(st, 1));
		off[n] = false;
		n++;
	}
	if (rc == -1)
		goto fail;
	if (n == 0)
		return 0;
	if (db_begin(r->db, &e) == -1)
		goto fail;
	for (i = 0; i < n; i++) {
		u = hub_user_by_id(r, ids[i], false);
		if (u != NULL && u->nclients > 0)
			continue;
		if ((st = db_stmt(r->db, sql[Q_STALE_OFF], &e)) == NULL)
			goto rollback;
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_bind_text(st, 2, cutoff, -1, SQLITE_STATIC);
		if (db_done(r->db, st, &e) == -1)
			goto rollback;
		if (db_changes(r->db) > 0) {
			off[i] = true;
			noff++;
		}
	}
	if (db_commit(r->db, &e) == -1)
		goto rollback;
	r->sweep_after = ids[n - 1];
	for (i = 0; i < n; i++)
		if (off[i] && (u = hub_user_by_id(r, ids[i], true)) != NULL &&
		    u->nclients == 0)
			presence_broadcast(r, u,
			    seen[i][0] != '\0' ? seen[i] : NULL);
	if (noff > 0)
		log_msg(LOG_INFO, "%zu users without sockets set offline",
		    noff);
	return n == HUB_SWEEP_BATCH ? 1 : 0;
rollback:
	db_rollback(r->db);
fail:
	log_msg(LOG_WARN, "presence sweep: %s (will retry)", e.msg);
	return -1;
}

static void
presence_sweep(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_sweep);
	int64_t next = (int64_t)RELAY_SWEEP_S * LWS_USEC_PER_SEC;
	int64_t stale = (int64_t)r->presence_stale_s * LWS_USEC_PER_SEC;
	char cutoff[40];
	int rc;

	db_time_format(db_now_us() - stale, cutoff, sizeof(cutoff));
	if ((rc = sweep_batch(r, cutoff)) == -1)
		next = HUB_RETRY_US;
	else if (rc == 1)
		next = HUB_SWEEP_NEXT;
	else
		r->sweep_after = 0;
	lws_sul_schedule(r->ctx, 0, &r->sul_sweep, presence_sweep, next);
}

void
hub_sweep_start(struct relay *r)
{
	r->sweep_after = 0;
	lws_sul_schedule(r->ctx, 0, &r->sul_sweep, presence_sweep, 1);
}

void
hub_attach(struct relay *r, struct client *c)
{
	struct hub_user *u = c->user;

	c->prev = NULL;
	c->next = u->clients;
	if (u->clients != NULL)
		u->clients->prev = c;
	u->clients = c;
	c->attached = true;
	r->nclients++;
	r->stats.connections++;
	if (++u->nclients == 1) {
		presence_changed(r, u);
		calls_present(r, u);
	}
}

/* Take c out of its user's sockets; the last one takes the user offline. */
static void
client_unlink(struct relay *r, struct client *c)
{
	struct hub_user *u = c->user;

	if (!c->attached)
		return;
	c->attached = false;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		u->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	r->nclients--;
	if (--u->nclients == 0) {
		presence_changed(r, u);
		/* While stopping the calls are already forgotten. */
		calls_absent(r, u);
	}
}

static void
slow_reap(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_reap);
	struct client *c;

	while ((c = r->slow) != NULL) {
		r->slow = c->next_slow;
		c->next_slow = NULL;
		client_unlink(r, c);
	}
}

void
hub_detach(struct relay *r, struct client *c)
{
	struct client **pp;

	free(c->rx);
	c->rx = NULL;
	c->rxlen = 0;
	queue_clear(c);
	for (pp = &r->slow; *pp != NULL; pp = &(*pp)->next_slow)
		if (*pp == c) {
			*pp = c->next_slow;
			break;
		}
	client_unlink(r, c);
}

/* Before the context goes: a last attempt at the pending presence rows. */
void
hub_stop(struct relay *r)
{
	lws_sul_cancel(&r->sul_presence);
	lws_sul_cancel(&r->sul_reap);
	lws_sul_cancel(&r->sul_sweep);
}

void
hub_free(struct relay *r)
{
	struct hub_user *u;
	char now[40];
	size_t i;

	db_now(now, sizeof(now));
	for (u = r->dirty; u != NULL; u = u->next_dirty)
		presence_store(r, u, now);
	r->dirty = NULL;
	for (i = 0; i < r->nusers; i++) {
		ring_free(r->users[i]);
		free(r->users[i]);
	}
	free(r->users);
	free(r->by_id);
	free(r->by_ext);
	free(r->sendbuf);
	msg_unref(r->welcome);
	r->users = r->by_id = r->by_ext = NULL;
	r->sendbuf = NULL;
	r->welcome = NULL;
	r->nusers = r->users_cap = r->nbuckets = r->sendcap = 0;
}
