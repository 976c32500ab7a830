/*
 * calls: the call routes (contract §1.6). A WebRTC call is set up here: its
 * log row is written, then the relay is asked to ring the callee's
 * browsers; from there the relay carries the signalling and closes the
 * log. PBX (AMI) calls go through cgi-bin/common_pbx.c, shared with the
 * admin program.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netdb.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <json-c/printbuf.h>

#include "lib/auth.h"
#include "lib/calllog.h"
#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "cgi-bin/common.h"

#define WEBRTC_PREFIX  "webrtc-call-"
#define CALL_ID_MAX    64
#define CTL_TIMEOUT_MS 2000 /* the relay answers at once or not at all */
#define MSG_NO_CALL    "Active call not found"
#define MSG_NO_NOTIFY  "Failed to notify target user"
#define US_PER_S       INT64_C(1000000)

enum q {
	Q_TARGET,
	Q_RINGING,
	Q_LOG_INSERT,
	Q_USERS,
	Q_LOGS,
	Q_PARTY,
	Q_ACTIVE_MINE,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_TARGET] = "SELECT id FROM users WHERE extension = ?1",
	/* created_at rather than start_time: the index (caller_id,
	 * created_at) serves it, and the calls program sets both alike. */
	[Q_RINGING] = "SELECT channel FROM call_logs WHERE caller_id = ?1 "
		      "AND created_at > ?3 AND callee_id = ?2 "
		      "AND status = 'initiated' "
		      "AND channel LIKE 'webrtc-call-%' "
		      "ORDER BY created_at DESC, id DESC LIMIT 1",
	[Q_LOG_INSERT] = "INSERT INTO call_logs (caller_id, callee_id, "
			 "start_time, status, channel, direction, created_at) "
			 "VALUES (?1, ?2, ?3, 'initiated', ?4, 'outbound', ?3) "
			 "RETURNING id",
	[Q_USERS] = "SELECT extension, username, status FROM users "
		    "ORDER BY id",
	/*
	 * The newest ?2 of my calls. The UNION is a merge of two walks of
	 * the indexes (caller_id or callee_id, created_at; the rowid ends
	 * every index entry), each newest first in the ORDER BY's own
	 * order, so no sort, and the merge stops after ?2 rows; UNION drops
	 * the row both walks meet (a self-call). CROSS JOIN keeps those ?2
	 * keys the outer loop: SQLite does not reorder it (its condition is
	 * in WHERE: PostgreSQL's CROSS JOIN takes no ON). The parties are
	 * read apart (Q_PARTY), once each: the caller is in every row.
	 */
	[Q_LOGS] =
	    "WITH k (id, created_at) AS ("
	    "SELECT id, created_at FROM call_logs WHERE caller_id = ?1 "
	    "UNION "
	    "SELECT id, created_at FROM call_logs WHERE callee_id = ?1 "
	    "ORDER BY 2 DESC, 1 DESC LIMIT ?2) "
	    "SELECT l.id, l.caller_id, l.callee_id, l.start_time, l.end_time, "
	    "l.duration, l.status, l.channel, l.direction, l.created_at "
	    "FROM k CROSS JOIN call_logs l WHERE l.id = k.id "
	    "ORDER BY k.created_at DESC, k.id DESC",
	/* The nested User shape of a party. */
	[Q_PARTY] = "SELECT " CGI_USER_COLUMNS " FROM users WHERE id = ?1",
	[Q_ACTIVE_MINE] = "SELECT id, caller_id, callee_id, channel, status, "
			  "start_time, created_at FROM active_calls "
			  "WHERE caller_id = ?1 OR callee_id = ?1 ORDER BY id",
};

static int pbx_initiate(struct http_req *req, const struct auth_user *u,
    const char *target, int64_t target_id, struct err *e);
static int pbx_hangup(struct http_req *req, const struct auth_user *u,
    struct json_object *body, struct err *e);

struct initiate_in {
	const char *target_extension;
};

static const struct jh_field initiate_fields[] = {
	{ "target_extension", JH_DIGITS, true, 1, 15,
	    offsetof(struct initiate_in, target_extension), 0 },
};

static bool
webrtc_method(struct http_req *req)
{
	const char *m = http_query(req, "method");
	const char *h = http_header(req, "X-Call-Method");

	return (m != NULL && strcasecmp(m, "webrtc") == 0) ||
	       (h != NULL && strcasecmp(h, "webrtc") == 0);
}

/* ---- initiate ---- */

/* Unique even for many calls in one second: the time, then 32 random bits. */
static int
call_id_new(char *buf, size_t size, struct err *e)
{
	uint32_t rnd;

	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return err_set(e, ERR_INTERNAL, "getrandom failed");
	snprintf(buf, size, WEBRTC_PREFIX "%lld-%08" PRIx32,
	    (long long)time(NULL), rnd);
	return 0;
}

/*
 * The relay rings the callee: the invitation goes to the callee's
 * sockets and, when one got it, "initiated" to the caller's. *delivered is
 * how many of the callee's sockets got it (0 when the relay is down).
 */
static int
ring(const struct config *cfg, const struct auth_user *u, const char *call_id,
    const char *target, const char *now, int64_t *delivered)
{
	struct json_object *rq, *inv, *ini, *reply = NULL, *v;
	struct err e = { 0 };
	int rc = -1;

	*delivered = 0;
	rq = json_object_new_object();
	inv = json_object_new_object();
	ini = json_object_new_object();
	if (rq == NULL || inv == NULL || ini == NULL) {
		json_object_put(rq);
		json_object_put(inv);
		json_object_put(ini);
		return -1;
	}
	/* gin.H: keys sorted. */
	jh_add_str(inv, "call_id", call_id);
	jh_add_str(inv, "caller_extension", u->extension);
	jh_add_int(inv, "caller_id", u->id);
	jh_add_str(inv, "caller_username", u->username);
	jh_add_str(inv, "target_extension", target);
	jh_add_str(inv, "timestamp", now);
	jh_add_str(inv, "type", "webrtc_call_invitation");
	jh_add_str(ini, "call_id", call_id);
	jh_add_str(ini, "status", "calling");
	jh_add_str(ini, "target", target);
	jh_add_str(ini, "type", "webrtc_call_initiated");
	jh_add_str(rq, "op", "call_invite");
	jh_add_str(rq, "call_id", call_id);
	jh_add_str(rq, "caller_extension", u->extension);
	jh_add_str(rq, "callee_extension", target);
	json_object_object_add(rq, "invitation", inv);
	json_object_object_add(rq, "initiated", ini);
	if (ctl_call(cfg, rq, &reply, CTL_TIMEOUT_MS, &e) == -1)
		log_msg(LOG_WARN, "call %s: %s", call_id, e.msg);
	else if (!json_object_object_get_ex(reply, "ok", &v) ||
		 !json_object_get_boolean(v))
		log_msg(LOG_WARN, "call %s: relay: %s", call_id,
		    jh_get_str(reply, "error") ? jh_get_str(reply, "error")
					       : "refused");
	else {
		if (json_object_object_get_ex(reply, "delivered", &v))
			*delivered = json_object_get_int64(v);
		rc = 0;
	}
	json_object_put(reply);
	json_object_put(rq);
	return rc;
}

/* The 200 of an initiate, a first one or its repeat alike. */
static int
initiate_reply(struct http_req *req, const char *call_id, const char *target,
    struct err *e)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(o, "call_id", call_id);
	jh_add_str(o, "channel", call_id);
	jh_add_str(o, "message", "WebRTC call initiated successfully");
	jh_add_str(o, "method", "webrtc");
	jh_add_str(o, "priority", "1");
	jh_add_bool(o, "success", true);
	jh_add_str(o, "target", target);
	http_reply_json(req, 200, o);
	return 0;
}

/*
 * The caller's call to target still ringing (status initiated, younger
 * than the ring timeout, after which the relay closes it as missed):
 * 1 with its channel in call_id, 0 when there is none.
 */
static int
ringing_find(struct db *db, const struct config *cfg, int64_t caller,
    int64_t target, int64_t now_us, char *call_id, size_t size, struct err *e)
{
	struct db_stmt *st;
	const char *ch;
	char since[40];
	int r;

	db_time_format(now_us - (int64_t)cfg->call_ring_timeout_s * US_PER_S,
	    since, sizeof(since));
	if ((st = db_stmt(db, sql[Q_RINGING], e)) == NULL)
		return -1;
	db_bind_int(st, 1, caller);
	db_bind_int(st, 2, target);
	db_bind_text(st, 3, since);
	if ((r = db_row(db, st, e)) != 1)
		return r;
	ch = db_col_text(st, 0);
	snprintf(call_id, size, "%s", ch != NULL ? ch : "");
	db_reset(st);
	return 1;
}

/*
 * The call an initiate is, in one write transaction so that two initiates
 * at once (the voip-application frontend sends two per click) cannot both
 * insert: 0 when the caller's call to target is still ringing (call_id is
 * its channel, nothing written), else 1 with a new initiated row committed
 * (*log_id, call_id, now its time), unless the caller is past its attempts
 * (ERR_RATE_LIMITED, nothing written).
 */
static int
call_open(struct db *db, const struct config *cfg, int64_t caller,
    int64_t target, char *call_id, size_t size, char *now, size_t nowsize,
    int64_t *log_id, struct err *e)
{
	struct db_stmt *st;
	int64_t now_us;
	int r;

	if (db_begin(db, e) == -1)
		return -1;
	/* Taken inside the transaction: every row it can see is older. */
	now_us = db_now_us();
	if ((r = ringing_find(db, cfg, caller, target, now_us, call_id, size,
		 e)) == -1)
		goto fail;
	if (r == 1) {
		db_rollback(db);
		return 0;
	}
	if (cgi_pbx_attempts_check(db, cfg, caller, now_us, e) == -1 ||
	    call_id_new(call_id, size, e) == -1)
		goto fail;
	db_time_format(now_us, now, (unsigned)nowsize);
	if ((st = db_stmt(db, sql[Q_LOG_INSERT], e)) == NULL)
		goto fail;
	db_bind_int(st, 1, caller);
	db_bind_int(st, 2, target);
	db_bind_text(st, 3, now);
	db_bind_text(st, 4, call_id);
	if ((r = db_row(db, st, e)) != 1) {
		if (r == 0)
			err_set(e, ERR_INTERNAL, "insert returned no id");
		goto fail;
	}
	*log_id = db_col_int(st, 0);
	if (db_done(db, st, e) == -1)
		goto fail;
	if (db_commit(db, e) == -1)
		return -1;
	return 1;
fail:
	db_rollback(db);
	return -1;
}

/*
 * One initiate at a time per caller, from the row's insert to the end of
 * its ring: a repeat must see how the first one's ring went (a call the
 * relay could not ring is failed, not ringing) before it answers with
 * that call. The lock is an open-file-description lock on the caller's
 * byte of RUN_DIR/calls.lock, so it is shared by every worker of every
 * program and dies with the process holding it; the ring it covers is
 * bounded by CTL_TIMEOUT_MS. Without the file (a read-only RUN_DIR) the
 * initiates go unserialized: the transaction still keeps a repeat from
 * inserting, and a repeat during a failing ring answers with that call.
 */
static int lock_fd = -1;
static bool lock_unavailable; /* said once; initiates go on unserialized */

static bool
caller_lock(const struct config *cfg, int64_t caller, short type)
{
	struct flock l = { .l_whence = SEEK_SET, .l_len = 1 };
	char path[sizeof(cfg->run_dir) + sizeof("/calls.lock")];

	if (lock_fd == -1 && type != F_UNLCK && !lock_unavailable) {
		snprintf(path, sizeof(path), "%s/calls.lock", cfg->run_dir);
		if ((lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC,
			 0600)) == -1) {
			log_msg(LOG_WARN, "%s: %s", path, strerror(errno));
			lock_unavailable = true;
			return false;
		}
	}
	if (lock_fd == -1 || caller < 0)
		return false;
	l.l_type = type;
	l.l_start = (off_t)caller;
	while (fcntl(lock_fd, F_OFD_SETLKW, &l) == -1) {
		if (errno != EINTR) {
			log_msg(LOG_WARN, "calls.lock: %s", strerror(errno));
			return false;
		}
	}
	return true;
}

static int
initiate(struct http_req *req, struct err *e)
{
	struct initiate_in in = { 0 };
	char call_id[CALL_ID_MAX], now[40];
	struct db *db = http_db(req);
	const struct auth_user *u;
	const struct config *cfg = http_config(req);
	int64_t target_id, log_id = 0, delivered;
	struct json_object *o;
	struct db_stmt *st;
	bool locked, rung;
	int r;

	if ((u = cgi_me(req, e)) == NULL ||
	    cgi_decode(req, initiate_fields, nitems(initiate_fields), &in, e) ==
		-1)
		return -1;
	if ((st = db_stmt(db, sql[Q_TARGET], e)) == NULL)
		return -1;
	db_bind_text(st, 1, in.target_extension);
	if ((r = db_row(db, st, e)) == -1)
		return -1;
	if (r == 0)
		return err_set(e, ERR_NOTFOUND, "Target extension not found");
	target_id = db_col_int(st, 0);
	db_reset(st);
	if (target_id == u->id)
		return err_set(e, ERR_INVALID, "Cannot call yourself");
	if (!webrtc_method(req))
		return pbx_initiate(req, u, in.target_extension, target_id, e);

	locked = caller_lock(cfg, u->id, F_WRLCK);
	r = call_open(db, cfg, u->id, target_id, call_id, sizeof(call_id), now,
	    sizeof(now), &log_id, e);
	/* The row is committed first: the relay reads it to track the call. */
	rung = false;
	if (r == 1 &&
	    ring(cfg, u, call_id, in.target_extension, now, &delivered) == 0)
		rung = delivered > 0;
	if (r == 1 && !rung &&
	    calllog_close(db, log_id, CALLLOG_FAILED, db_now_us(), NULL, e) ==
		-1)
		r = -1;
	if (locked)
		caller_lock(cfg, u->id, F_UNLCK);
	if (r == -1)
		return -1;
	if (r == 0 || rung)
		return initiate_reply(req, call_id, in.target_extension, e);
	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(o, "error", MSG_NO_NOTIFY);
	http_reply_json(req, 500, o);
	return 0;
}

/* ---- hangup ---- */

static int
hangup(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	const struct auth_user *u;
	struct json_object *body, *o;
	struct calllog_row row;
	const char *channel;
	int64_t duration = 0;
	int r;

	if ((u = cgi_me(req, e)) == NULL ||
	    (body = http_body_json(req, e)) == NULL)
		return -1;
	channel = jh_get_str(body, "channel");
	if ((channel == NULL || channel[0] == '\0') &&
	    jh_get_str(body, "call_id") != NULL)
		channel = jh_get_str(body, "call_id");
	if (channel == NULL || channel[0] == '\0')
		return err_set(e, ERR_INVALID, "Channel is required");
	if (strncmp(channel, WEBRTC_PREFIX, strlen(WEBRTC_PREFIX)) != 0)
		return pbx_hangup(req, u, body, e);
	if ((r = calllog_find(db, channel, &row, e)) == -1)
		return -1;
	if (r == 0 || (row.caller_id != u->id && row.callee_id != u->id))
		return err_set(e, ERR_NOTFOUND, MSG_NO_CALL);
	/* Guarded by the status: when the relay closed it a moment earlier,
	 * its duration stands. */
	if (calllog_close(db, row.id, CALLLOG_HANGUP, db_now_us(), &duration,
		e) == -1)
		return -1;
	cgi_relay_call_end(http_config(req), channel, u->extension);
	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(o, "channel", channel);
	jh_add_int(o, "duration", duration);
	jh_add_str(o, "message", "Call ended successfully");
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
}

/* ---- connected extensions ---- */

/* What the relay says of the live sockets: its reply (owned), the
 * "extensions" object in it, their names sorted (borrowed from it), and
 * "total_clients". */
struct who {
	struct json_object *reply, *exts;
	const char **names;
	size_t n;
	int64_t total;
};

static void
who_free(struct who *w)
{
	free(w->names);
	json_object_put(w->reply);
	memset(w, 0, sizeof(*w));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ERR_UPSTREAM when the relay is not there or answers nonsense. */
static int
who(const struct config *cfg, struct who *w, struct err *e)
{
	struct json_object *rq, *v;
	size_t i = 0;
	int rc;

	memset(w, 0, sizeof(*w));
	if ((rq = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(rq, "op", "who");
	rc = ctl_call(cfg, rq, &w->reply, CTL_TIMEOUT_MS, e);
	json_object_put(rq);
	if (rc == -1)
		return -1;
	if (!json_object_object_get_ex(w->reply, "extensions", &w->exts) ||
	    !json_object_is_type(w->exts, json_type_object)) {
		who_free(w);
		return err_set(e, ERR_UPSTREAM, "relay sent an invalid reply");
	}
	if (json_object_object_get_ex(w->reply, "total_clients", &v))
		w->total = json_object_get_int64(v);
	w->n = (size_t)json_object_object_length(w->exts);
	if ((w->names = calloc(w->n + 1, sizeof(*w->names))) == NULL) {
		who_free(w);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	json_object_object_foreach(w->exts, key, val)
	{
		(void)val;
		if (i < w->n)
			w->names[i++] = key;
	}
	w->n = i;
	qsort(w->names, w->n, sizeof(*w->names), cmp_str);
	return 0;
}

/* The sockets of extension (0 when it has none). */
static int64_t
who_count(const struct who *w, const char *extension)
{
	struct json_object *v;

	return json_object_object_get_ex(w->exts, extension, &v)
		   ? json_object_get_int64(v)
		   : 0;
}

/* Both replies end alike (gin.H sorts the keys); takes o, frees w. */
static int
who_reply(struct http_req *req, struct who *w, struct json_object *o)
{
	jh_add_bool(o, "success", true);
	jh_add_int(o, "total_clients", w->total);
	who_free(w);
	http_reply_json(req, 200, o);
	return 0;
}

static int
extensions_connected(struct http_req *req, struct err *e)
{
	struct json_object *o, *details, *list, *d;
	struct who w;
	size_t i;

	if (who(http_config(req), &w, e) == -1)
		return -1;
	o = json_object_new_object();
	details = json_object_new_object();
	list = json_object_new_array();
	if (o == NULL || details == NULL || list == NULL)
		goto oom;
	for (i = 0; i < w.n; i++) {
		if ((d = json_object_new_object()) == NULL)
			goto oom;
		jh_add_int(d, "client_count", who_count(&w, w.names[i]));
		jh_add_bool(d, "connected", true);
		json_object_object_add(details, w.names[i], d);
		json_object_array_add(list, json_object_new_string(w.names[i]));
	}
	jh_add_int(o, "count", (int64_t)w.n);
	json_object_object_add(o, "details", details);
	json_object_object_add(o, "extensions", list);
	return who_reply(req, &w, o);
oom:
	json_object_put(o);
	json_object_put(details);
	json_object_put(list);
	who_free(&w);
	return err_set(e, ERR_INTERNAL, "out of memory");
}

static int
extensions_status(struct http_req *req, struct err *e)
{
	struct json_object *o = NULL, *conn, *rows, *x;
	struct db *db = http_db(req);
	const char *ext, *status;
	struct db_stmt *st;
	struct who w;
	int64_t count;
	size_t i;
	int r;

	if (who(http_config(req), &w, e) == -1)
		return -1;
	conn = json_object_new_array();
	rows = json_object_new_array();
	if ((o = json_object_new_object()) == NULL || conn == NULL ||
	    rows == NULL) {
		json_object_put(conn);
		json_object_put(rows);
		goto oom;
	}
	json_object_object_add(o, "connected_extensions", conn);
	json_object_object_add(o, "connection_status", rows);
	for (i = 0; i < w.n; i++)
		json_object_array_add(conn, json_object_new_string(w.names[i]));
	if ((st = db_stmt(db, sql[Q_USERS], e)) == NULL)
		goto fail;
	while ((r = db_row(db, st, e)) == 1) {
		ext = db_col_text(st, 0);
		status = db_col_text(st, 2);
		ext = ext != NULL ? ext : "";
		status = status != NULL ? status : "";
		count = who_count(&w, ext);
		if ((x = json_object_new_object()) == NULL) {
			db_reset(st);
			goto oom;
		}
		jh_add_int(x, "client_count", count);
		jh_add_str(x, "extension", ext);
		jh_add_str(x, "status", status);
		/* The database and the sockets agree on being online. */
		jh_add_bool(x, "status_match",
		    (strcmp(status, "online") == 0) == (count > 0));
		jh_add_str(x, "username", db_col_text(st, 1));
		jh_add_bool(x, "ws_connected", count > 0);
		json_object_array_add(rows, x);
	}
	if (r == -1)
		goto fail;
	return who_reply(req, &w, o);
oom:
	err_set(e, ERR_INTERNAL, "out of memory");
fail:
	json_object_put(o);
	who_free(&w);
	return -1;
}

/* ---- logs ---- */

#define LOGS_DEFAULT 50
#define LOGS_MAX     500

/*
 * The parties of one page of logs, each rendered once and shared by its
 * rows (a reference each): the caller is in every row, so a page renders
 * a few Users instead of two per row, and serializes each of them once
 * (party_text). The cache holds one reference.
 */
struct parties {
	int64_t id[2 * LOGS_MAX];
	struct json_object *user[2 * LOGS_MAX];
	size_t n;
};

static void
parties_free(struct parties *p)
{
	while (p->n > 0)
		json_object_put(p->user[--p->n]);
}

/*
 * o (taken) as an object that serializes as o's text, rendered once: a
 * party is written as often as its rows, and json-c would walk its tree
 * each time.
 */
static struct json_object *
party_text(struct json_object *o)
{
	struct json_object *t = NULL;

	if (o != NULL)
		t = jh_verbatim(jh_text(o, NULL));
	json_object_put(o);
	return t;
}

/*
 * The nested User of the party whose id is in column col of a Q_LOGS row:
 * a new reference, or NULL with e set. A deleted user's side of the row
 * is NULL (users are deleted, their call history stays with the other
 * party): it is the contract's zero User (id 0, empty strings, as the
 * replaced backend rendered a missing user) with status "deleted", so a
 * client can say so without a new field.
 */
static struct json_object *
log_party(struct db *db, struct db_stmt *row, int col, struct parties *p,
    struct err *e)
{
	struct json_object *o = NULL;
	struct db_stmt *st;
	int64_t id = 0;
	size_t i;
	int r = 0;

	if (!db_col_null(row, col))
		id = db_col_int(row, col);
	for (i = 0; i < p->n; i++)
		if (p->id[i] == id)
			return json_object_get(p->user[i]);
	if (id != 0) {
		if ((st = db_stmt(db, sql[Q_PARTY], e)) == NULL)
			return NULL;
		db_bind_int(st, 1, id);
		if ((r = db_row(db, st, e)) == -1)
			return NULL;
		if (r == 1) {
			o = cgi_user_render(st, 0, true);
			db_reset(st);
		}
	}
	if (r == 0 && (o = cgi_user_zero()) != NULL)
		jh_add_str(o, "status", "deleted"); /* replaced in place */
	if ((o = party_text(o)) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (p->n == nitems(p->id))
		return o;
	p->id[p->n] = id;
	p->user[p->n++] = o;
	return json_object_get(o);
}

/*
 * A page is up to LOGS_MAX rows of twelve fields: a json-c tree built and
 * freed per row cost more than the query. One row object is refilled in
 * place for each row (its keys stay, in order), its text appended to the
 * page's, and the page goes out as one text object.
 */

/* Key of o becomes s, or null when s is NULL; its string is reused. */
static void
row_str(struct json_object *o, const char *key, const char *s)
{
	struct json_object *v;

	if (s != NULL && json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string) &&
	    json_object_set_string(v, s) == 1)
		return;
	jh_add_str(o, key, s);
}

static void
row_int(struct json_object *o, const char *key, int64_t n)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_set_int64(v, n) == 1)
		return;
	jh_add_int(o, key, n);
}

/* Text columns the contract renders as "" rather than null. */
static const char *
col_text(struct db_stmt *st, int i)
{
	const char *s = db_col_text(st, i);

	return s != NULL ? s : "";
}

/* Row o becomes the CallLog (contract §1.5) of a Q_LOGS row; -1 with e
 * set. */
static int
log_fill(struct db *db, struct db_stmt *st, struct json_object *o,
    struct parties *p, struct err *e)
{
	struct json_object *caller, *callee;

	if ((caller = log_party(db, st, 1, p, e)) == NULL)
		return -1;
	if ((callee = log_party(db, st, 2, p, e)) == NULL) {
		json_object_put(caller);
		return -1;
	}
	row_int(o, "id", db_col_int(st, 0));
	row_int(o, "caller_id", db_col_int(st, 1));
	row_int(o, "callee_id", db_col_int(st, 2));
	json_object_object_add(o, "caller", caller);
	json_object_object_add(o, "callee", callee);
	row_str(o, "start_time", db_col_text(st, 3));
	row_str(o, "end_time", db_col_text(st, 4));
	row_int(o, "duration", db_col_int(st, 5));
	row_str(o, "status", col_text(st, 6));
	row_str(o, "channel", col_text(st, 7));
	row_str(o, "direction", col_text(st, 8));
	row_str(o, "created_at", db_col_text(st, 9));
	return 0;
}

/* The JSON array of the page Q_LOGS steps through, as a text object; NULL
 * with e set. */
static struct json_object *
log_page(struct db *db, struct db_stmt *st, struct err *e)
{
	struct json_object *row, *page = NULL;
	struct parties parties;
	struct printbuf *pb;
	const char *t;
	size_t n = 0, len;
	int r;

	parties.n = 0;
	row = json_object_new_object();
	if (row == NULL || (pb = printbuf_new()) == NULL) {
		json_object_put(row);
		db_reset(st);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	r = printbuf_strappend(pb, "[") < 0 ? -2 : 0;
	while (r == 0 && (r = db_row(db, st, e)) == 1) {
		if (log_fill(db, st, row, &parties, e) == -1)
			r = -1;
		else if ((t = jh_text(row, &len)) == NULL ||
			 (n++ > 0 && printbuf_strappend(pb, ",") < 0) ||
			 printbuf_memappend(pb, t, (int)len) < 0)
			r = -2;
		else
			r = 0;
	}
	if (r != 0) /* stopped before the end: the statement is mid-page */
		db_reset(st);
	if (r == 0 && (printbuf_strappend(pb, "]") < 0 ||
			  (page = jh_verbatim(pb->buf)) == NULL))
		r = -2;
	if (r == -2)
		err_set(e, ERR_INTERNAL, "out of memory");
	json_object_put(row);
	parties_free(&parties);
	printbuf_free(pb);
	return page;
}

/*
 * The caller's own calls, newest first. Upstream ignored ?limit=; it is
 * honoured here (1..LOGS_MAX), the default staying the upstream 50.
 */
static int
logs(struct http_req *req, struct err *e)
{
	const struct auth_user *u;
	const char *q = http_query(req, "limit");
	struct json_object *list, *o;
	struct db *db = http_db(req);
	struct db_stmt *st;
	int64_t limit = LOGS_DEFAULT;

	if (q != NULL && *q != '\0') {
		if (cgi_parse_id(q, &limit) == -1 || limit > LOGS_MAX)
			return err_set_field(e, ERR_INVALID, "limit",
			    "Invalid request format");
	}
	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	if ((st = db_stmt(db, sql[Q_LOGS], e)) == NULL)
		return -1;
	db_bind_int(st, 1, u->id);
	db_bind_int(st, 2, limit);
	if ((list = log_page(db, st, e)) == NULL)
		return -1;
	if ((o = cgi_ok("call_logs", list)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

/* ---- PBX calls (through the relay's AMI link) ---- */

#define PROBE_TIMEOUT_MS 2000

static int
pbx_initiate(struct http_req *req, const struct auth_user *u,
    const char *target, int64_t target_id, struct err *e)
{
	struct cgi_pbx_party caller, callee;
	struct db *db = http_db(req);
	struct json_object *reply, *o;
	char call_id[CGI_PBX_CALL_ID_MAX], username[64] = "";
	struct db_stmt *st;
	const char *s;
	int r;

	/* The callee's username, for the reply (contract: "callee"). */
	if ((st = db_stmt(db, sql[Q_PARTY], e)) == NULL)
		return -1;
	db_bind_int(st, 1, target_id);
	if ((r = db_row(db, st, e)) == -1)
		return -1;
	if (r == 1) {
		s = db_col_text(st, 1);
		snprintf(username, sizeof(username), "%s", s ? s : "");
		db_reset(st);
	}
	caller = (struct cgi_pbx_party){ u->id, u->extension, u->username };
	callee = (struct cgi_pbx_party){ target_id, target, username };
	if ((reply = cgi_pbx_originate(db, http_config(req), &caller, &callee,
		 call_id, sizeof(call_id), e)) == NULL)
		return -1;
	if ((o = json_object_new_object()) == NULL) {
		json_object_put(reply);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	jh_add_str(o, "call_id", call_id);
	jh_add_str(o, "callee", username);
	jh_add_str(o, "caller", u->username);
	s = jh_get_str(reply, "channel");
	jh_add_str(o, "channel", s != NULL ? s : "");
	jh_add_str(o, "message", "Call initiated successfully");
	jh_add_bool(o, "success", true);
	json_object_put(reply);
	http_reply_json(req, 200, o);
	return 0;
}

/* A reply naming the relay's call: its call_id and channel. */
static struct json_object *
reply_ids(struct json_object *reply)
{
	struct json_object *o;
	const char *s;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	s = jh_get_str(reply, "call_id");
	jh_add_str(o, "call_id", s != NULL ? s : "");
	s = jh_get_str(reply, "channel");
	jh_add_str(o, "channel", s != NULL ? s : "");
	return o;
}

static int
pbx_hangup(struct http_req *req, const struct auth_user *u,
    struct json_object *body, struct err *e)
{
	struct json_object *reply, *o, *v;

	if ((reply = cgi_pbx_ask(http_config(req),
		 cgi_pbx_request("pbx_hangup", u->id,
		     jh_get_str(body, "call_id"), jh_get_str(body, "channel")),
		 e)) == NULL)
		return -1;
	if ((o = reply_ids(reply)) == NULL) {
		json_object_put(reply);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	if (json_object_object_get_ex(reply, "channels", &v))
		json_object_object_add(o, "channels", json_object_get(v));
	/* No channel known yet: each is hung up as Asterisk reports it. */
	jh_add_bool(o, "pending",
	    json_object_object_get_ex(reply, "pending", &v) &&
		json_object_get_boolean(v));
	jh_add_int(o, "duration",
	    json_object_object_get_ex(reply, "duration", &v)
		? json_object_get_int64(v)
		: 0);
	jh_add_str(o, "message", "Call ended successfully");
	jh_add_bool(o, "success", true);
	json_object_put(reply);
	http_reply_json(req, 200, o);
	return 0;
}

/* AMI has no Answer: the relay redirects the leg ringing me into the
 * answer context (see relay/pbx.c and asterisk-config/extensions.conf). */
static int
answer(struct http_req *req, struct err *e)
{
	struct json_object *body, *reply, *o;
	const struct auth_user *u;
	const char *s;

	if ((u = cgi_me(req, e)) == NULL ||
	    (body = http_body_json(req, e)) == NULL)
		return -1;
	if ((s = jh_get_str(body, "channel")) == NULL &&
	    jh_get_str(body, "call_id") == NULL)
		return err_set(e, ERR_INVALID, "Channel is required");
	if ((reply = cgi_pbx_ask(http_config(req),
		 cgi_pbx_request("pbx_answer", u->id,
		     jh_get_str(body, "call_id"), jh_get_str(body, "channel")),
		 e)) == NULL)
		return -1;
	if ((o = reply_ids(reply)) == NULL) {
		json_object_put(reply);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	jh_add_str(o, "message", "Call answered successfully");
	jh_add_bool(o, "success", true);
	json_object_put(reply);
	http_reply_json(req, 200, o);
	return 0;
}

/* My live calls (contract ActiveCall), from active_calls: the relay keeps
 * the table true from Asterisk's events and its resync. */
static int
active(struct http_req *req, struct err *e)
{
	static struct parties parties;
	struct json_object *arr, *o, *row;
	struct db *db = http_db(req);
	const struct auth_user *u;
	struct db_stmt *st;
	int r;

	if ((u = cgi_me(req, e)) == NULL)
		return -1;
	if ((arr = json_object_new_array()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if ((st = db_stmt(db, sql[Q_ACTIVE_MINE], e)) == NULL)
		goto fail;
	db_bind_int(st, 1, u->id);
	while ((r = db_row(db, st, e)) == 1) {
		struct json_object *caller, *callee;

		if ((row = json_object_new_object()) == NULL) {
			err_set(e, ERR_INTERNAL, "out of memory");
			db_reset(st);
			goto fail;
		}
		json_object_array_add(arr, row);
		jh_add_int(row, "id", db_col_int(st, 0));
		jh_add_int(row, "caller_id", db_col_int(st, 1));
		jh_add_int(row, "callee_id", db_col_int(st, 2));
		if ((caller = log_party(db, st, 1, &parties, e)) == NULL ||
		    (callee = log_party(db, st, 2, &parties, e)) == NULL) {
			json_object_put(caller);
			db_reset(st);
			goto fail;
		}
		json_object_object_add(row, "caller", caller);
		json_object_object_add(row, "callee", callee);
		row_str(row, "channel", col_text(st, 3));
		row_str(row, "status", col_text(st, 4));
		row_str(row, "start_time", col_text(st, 5));
		row_str(row, "created_at", col_text(st, 6));
	}
	if (r == -1)
		goto fail;
	parties_free(&parties);
	if ((o = json_object_new_object()) == NULL) {
		json_object_put(arr);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	jh_add_int(o, "count", (int64_t)json_object_array_length(arr));
	json_object_object_add(o, "active_calls", arr);
	jh_add_str(o, "cleanup_info", "Cleaned up 0 stale calls");
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
fail:
	parties_free(&parties);
	json_object_put(arr);
	return -1;
}

/* The relay's pbx_health / pbx_endpoints reply, or NULL (relay away). */
static struct json_object *
relay_ask(const struct config *cfg, const char *op)
{
	struct json_object *rq, *reply = NULL;
	struct err e = { 0 };

	if ((rq = json_object_new_object()) == NULL)
		return NULL;
	jh_add_str(rq, "op", op);
	if (ctl_call(cfg, rq, &reply, CTL_TIMEOUT_MS, &e) == -1) {
		log_msg(LOG_WARN, "%s: %s", op, e.msg);
		reply = NULL;
	}
	json_object_put(rq);
	return reply;
}

/* "connected", "disconnected" or "not configured", from the health. */
static const char *
ami_status(struct json_object *ami)
{
	struct json_object *v;

	if (ami == NULL)
		return "disconnected";
	if (json_object_object_get_ex(ami, "enabled", &v) &&
	    !json_object_get_boolean(v))
		return "not configured";
	if (json_object_object_get_ex(ami, "connected", &v) &&
	    json_object_get_boolean(v))
		return "connected";
	return "disconnected";
}

static int
diagnostics(struct http_req *req, struct err *e)
{
	const struct config *cfg = http_config(req);
	struct json_object *health, *eps = NULL, *ami = NULL, *d, *o, *errs,
					    *v;
	char now[40];
	const char *st;

	if (cgi_me(req, e) == NULL)
		return -1;
	health = relay_ask(cfg, "pbx_health");
	if (health != NULL && json_object_object_get_ex(health, "ami", &v))
		ami = v;
	st = ami_status(ami);
	if (strcmp(st, "connected") == 0)
		eps = relay_ask(cfg, "pbx_endpoints");
	if ((d = json_object_new_object()) == NULL ||
	    (errs = json_object_new_array()) == NULL) {
		json_object_put(d);
		json_object_put(health);
		json_object_put(eps);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	jh_add_str(d, "ami_status", st);
	if (ami != NULL)
		json_object_object_add(d, "ami", json_object_get(ami));
	if (eps != NULL && json_object_object_get_ex(eps, "endpoints", &v))
		json_object_object_add(d, "endpoints", json_object_get(v));
	else
		json_object_object_add(d, "endpoints",
		    json_object_new_array());
	if (health == NULL)
		json_object_array_add(errs,
		    json_object_new_string("relay is not reachable"));
	else if (strcmp(st, "not configured") == 0)
		json_object_array_add(errs,
		    json_object_new_string("AMI is not configured (AMI_HOST "
					   "is empty)"));
	else if (strcmp(st, "connected") != 0)
		json_object_array_add(errs,
		    json_object_new_string(CGI_PBX_MSG_NO_ASTERISK));
	if (eps != NULL && jh_get_str(eps, "endpoints_error") != NULL)
		json_object_array_add(errs,
		    json_object_new_string(jh_get_str(eps, "endpoints_error")));
	json_object_object_add(d, "errors", errs);
	db_now(now, sizeof(now));
	jh_add_str(d, "timestamp", now);
	json_object_put(health);
	json_object_put(eps);
	if ((o = cgi_ok("diagnostics", d)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

/*
 * One TCP probe of host:port within PROBE_TIMEOUT_MS: send `send` (may be
 * NULL), read the first bytes into buf. 0, or -1 with why in buf.
 */
static int
probe(const char *host, const char *port, const char *send, char *buf,
    size_t size)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct pollfd pfd;
	ssize_t n;
	int fd = -1, rc;

	buf[0] = '\0';
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(buf, size, "cannot resolve host: %s",
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
				     SOCK_CLOEXEC,
			 ai->ai_protocol)) == -1)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
		    errno != EINPROGRESS) {
			close(fd);
			fd = -1;
			continue;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, PROBE_TIMEOUT_MS) != 1 ||
		    (pfd.revents & (POLLERR | POLLHUP))) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd == -1) {
		snprintf(buf, size, "connection failed");
		return -1;
	}
	if (send != NULL &&
	    write(fd, send, strlen(send)) != (ssize_t)strlen(send)) {
		close(fd);
		snprintf(buf, size, "write failed");
		return -1;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, PROBE_TIMEOUT_MS) != 1 ||
	    (n = read(fd, buf, size - 1)) <= 0) {
		close(fd);
		snprintf(buf, size, "no answer");
		return -1;
	}
	buf[n] = '\0';
	close(fd);
	return 0;
}

/* A test result T: {"success", "message"|"error", "details"}. */
static struct json_object *
test_result(bool ok, const char *text, const char *details)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_str(o, "details", details);
	jh_add_str(o, ok ? "message" : "error", text);
	jh_add_bool(o, "success", ok);
	return o;
}

/* The AMI port answers with Asterisk's banner; HTTP /httpstatus with 200;
 * the WebSocket path with an upgrade or a refusal of a plain GET. */
static struct json_object *
tests_run(const char *host, const char *http_port, const char *ami_port,
    struct json_object *ami_link)
{
	char buf[256], req[512], now[40], summary[160];
	struct json_object *tests, *res, *o;
	bool ok[3];

	if ((tests = json_object_new_object()) == NULL ||
	    (res = json_object_new_object()) == NULL) {
		json_object_put(tests);
		return NULL;
	}
	if (ami_link != NULL) {
		ok[0] = strcmp(ami_status(ami_link), "connected") == 0;
		o = test_result(ok[0],
		    ok[0] ? "AMI link is connected" : ami_status(ami_link),
		    "the relay's manager link");
	} else {
		ok[0] = probe(host, ami_port, NULL, buf, sizeof(buf)) == 0 &&
			strncmp(buf, "Asterisk Call Manager/", 22) == 0;
		o = test_result(ok[0],
		    ok[0] ? "AMI port answers with the Asterisk banner"
			  : "AMI port does not answer as Asterisk",
		    ami_port);
	}
	json_object_object_add(tests, "ami", o);
	snprintf(req, sizeof(req),
	    "GET /httpstatus HTTP/1.0\r\nHost: %s\r\n\r\n", host);
	ok[1] = probe(host, http_port, req, buf, sizeof(buf)) == 0 &&
		strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 8, " 200", 4) == 0;
	json_object_object_add(tests, "http",
	    test_result(ok[1],
		ok[1] ? "HTTP status page answers" : "HTTP status page fails",
		"/httpstatus"));
	snprintf(req, sizeof(req), "GET /ws HTTP/1.0\r\nHost: %s\r\n\r\n",
	    host);
	ok[2] = probe(host, http_port, req, buf, sizeof(buf)) == 0 &&
		strncmp(buf, "HTTP/1.", 7) == 0 &&
		(strncmp(buf + 8, " 400", 4) == 0 ||
		    strncmp(buf + 8, " 426", 4) == 0 ||
		    strncmp(buf + 8, " 101", 4) == 0);
	json_object_object_add(tests, "websocket",
	    test_result(ok[2],
		ok[2] ? "WebSocket path answers" : "WebSocket path fails",
		"/ws"));
	db_now(now, sizeof(now));
	jh_add_bool(res, "overall_success", ok[0] && ok[1] && ok[2]);
	snprintf(summary, sizeof(summary), "AMI: %s, HTTP: %s, WebSocket: %s",
	    ok[0] ? "OK" : "FAIL", ok[1] ? "OK" : "FAIL",
	    ok[2] ? "OK" : "FAIL");
	jh_add_str(res, "summary", summary);
	json_object_object_add(res, "tests", tests);
	jh_add_str(res, "timestamp", now);
	return res;
}

static int
test_asterisk_get(struct http_req *req, struct err *e)
{
	const struct config *cfg = http_config(req);
	struct json_object *health, *ami = NULL, *res, *o, *v;
	char port[16], amiport[16];

	if (cgi_me(req, e) == NULL)
		return -1;
	health = relay_ask(cfg, "pbx_health");
	if (health != NULL && json_object_object_get_ex(health, "ami", &v))
		ami = v;
	snprintf(port, sizeof(port), "%d", cfg->sip_port);
	snprintf(amiport, sizeof(amiport), "%d", cfg->ami_port);
	res = tests_run(cfg->ami_host[0] != '\0' ? cfg->ami_host : "127.0.0.1",
	    port, amiport, ami);
	json_object_put(health);
	if (res == NULL || (o = cgi_ok("results", res)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

struct probe_in {
	const char *host, *port, *ami_port;
};

static const struct jh_field probe_fields[] = {
	{ "asteriskHost", JH_TEXT, true, 1, 253,
	    offsetof(struct probe_in, host), 0 },
	{ "asteriskPort", JH_DIGITS, true, 1, 5,
	    offsetof(struct probe_in, port), 0 },
	{ "asteriskAMIPort", JH_DIGITS, true, 1, 5,
	    offsetof(struct probe_in, ami_port), 0 },
};

/* Admin only: upstream let anyone use it to probe ports. */
static int
test_asterisk_post(struct http_req *req, struct err *e)
{
	struct probe_in in = { 0 };
	struct json_object *res, *o;

	if (cgi_me(req, e) == NULL ||
	    cgi_decode(req, probe_fields, nitems(probe_fields), &in, e) == -1)
		return -1;
	if ((res = tests_run(in.host, in.port, in.ami_port, NULL)) == NULL ||
	    (o = cgi_ok("results", res)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

static const struct http_route routes[] = {
	{ HTTP_GET, "/protected/call/logs", HTTP_USER, logs, 0 },
	{ HTTP_POST, "/protected/call/initiate", HTTP_USER, initiate, 0 },
	{ HTTP_POST, "/protected/call/hangup", HTTP_USER, hangup, 0 },
	{ HTTP_POST, "/protected/call/answer", HTTP_USER, answer, 0 },
	{ HTTP_GET, "/protected/call/active", HTTP_USER, active, 0 },
	{ HTTP_GET, "/protected/diagnostics", HTTP_USER, diagnostics, 0 },
	{ HTTP_GET, "/protected/test-asterisk", HTTP_USER, test_asterisk_get,
	    0 },
	{ HTTP_POST, "/api/test-asterisk", HTTP_ADMIN, test_asterisk_post, 0 },
	{ HTTP_GET, "/protected/extensions/connected", HTTP_USER,
	    extensions_connected, 0 },
	{ HTTP_GET, "/protected/extensions/status", HTTP_USER,
	    extensions_status, 0 },
};

int
main(void)
{
	return cgi_serve("calls", routes, nitems(routes));
}
