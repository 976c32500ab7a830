/*
 * calls: the live browser-to-browser (WebRTC) calls. A call is registered
 * by the control op call_invite once its log row exists, rings until the
 * callee accepts or CALL_RING_TIMEOUT_S passes, and is forgotten when it
 * ends. Each step closes or advances its call_logs row through
 * lib/calllog.h, whose UPDATEs are guarded by the row's current status, so
 * the REST hangup and the relay can never both close the same call.
 *
 * An ended call lingers for CALLS_LINGER_S: browsers send their end in
 * several ways at once (webrtc_call_ended, hangup, the REST hangup) in any
 * order, and the late ones still reach the peer. Nothing else passes.
 *
 * A party whose last socket closes (tab closed, network gone, relay
 * restarted) gets r->call_grace_s to come back. Then the call ends as if
 * that party had hung up when it vanished, and the other one is told
 * (reason peer_disconnected). A ringing call waits only for its caller: a
 * callee that vanishes simply does not answer, and the ring timeout says
 * so.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#include "lib/calllog.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "relay/relay.h"

#define CALLS_ID_MAX 64
#define CALLS_ANSWERED_S                                                       \
	3600 /* answered calls older than this are not reloaded */
#define CALLS_LINGER_S 30
#define US_PER_S       INT64_C(1000000)

struct call {
	char id[CALLS_ID_MAX];
	int64_t log_id;
	struct roster_user *party[2]; /* caller, callee */
	struct call *pnext[2];        /* in each party's list */
	struct call *next, *prev;     /* all live calls */
	bool answered, ended;
	int64_t gone_us[2]; /* when each party's last socket closed; 0: here */
	lws_sorted_usec_list_t
	    sul; /* ring timeout, then the end of lingering */
	lws_sorted_usec_list_t sul_grace; /* a vanished party's deadline */
	struct relay *r;
};

enum q { Q_RELOAD, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_RELOAD] =
	    "SELECT id, channel, caller_id, callee_id, status, start_time "
	    "FROM call_logs WHERE channel LIKE 'webrtc-call-%' "
	    "AND status IN ('initiated', 'answered') AND start_time > ?1 "
	    "ORDER BY id",
};

static void call_timer(lws_sorted_usec_list_t *sul);
static void grace_timer(lws_sorted_usec_list_t *sul);

static int
side(const struct call *c, const struct roster_user *u)
{
	return c->party[0] == u ? 0 : c->party[1] == u ? 1 : -1;
}

struct roster_user *
calls_peer(const struct call *c, const struct roster_user *u)
{
	return c->party[side(c, u) == 0 ? 1 : 0];
}

struct call *
calls_find(const struct roster_user *u, const char *call_id)
{
	struct call *c;

	for (c = u->calls; c != NULL; c = c->pnext[side(c, u)])
		if (strcmp(c->id, call_id) == 0)
			return c;
	return NULL;
}

/* u's call with the holder of peer_ext: the one named call_id, else a
 * live one, else one that just ended. */
struct call *
calls_find_peer(const struct roster_user *u, const char *peer_ext,
    const char *call_id)
{
	struct call *c, *live = NULL, *ended = NULL;

	for (c = u->calls; c != NULL; c = c->pnext[side(c, u)]) {
		if (strcmp(calls_peer(c, u)->extension, peer_ext) != 0)
			continue;
		if (call_id != NULL && strcmp(c->id, call_id) == 0)
			return c;
		if (!c->ended && live == NULL)
			live = c;
		else if (c->ended && ended == NULL)
			ended = c;
	}
	return live != NULL ? live : ended;
}

bool
calls_allows(const struct call *c, const char *type)
{
	return !c->ended || strcmp(type, "webrtc_call_ended") == 0 ||
	       strcmp(type, "webrtc_call_rejected") == 0;
}

static struct call *
call_add(struct relay *r, const char *id, int64_t log_id,
    struct roster_user *caller, struct roster_user *callee)
{
	struct call *c;
	int i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->log_id = log_id;
	c->party[0] = caller;
	c->party[1] = callee;
	c->r = r;
	for (i = 0; i < 2; i++) {
		c->pnext[i] = c->party[i]->calls;
		c->party[i]->calls = c;
	}
	c->next = r->calls;
	if (r->calls != NULL)
		r->calls->prev = c;
	r->calls = c;
	r->ncalls++;
	return c;
}

static void
call_forget(struct relay *r, struct call *c)
{
	struct roster_user *parties[2];
	struct call **pp;
	int i;

	lws_sul_cancel(&c->sul);
	lws_sul_cancel(&c->sul_grace);
	for (i = 0; i < 2; i++)
		for (pp = &c->party[i]->calls; *pp != NULL;
		     pp = &(*pp)->pnext[side(*pp, c->party[i])])
			if (*pp == c) {
				*pp = c->pnext[i];
				break;
			}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		r->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	r->ncalls--;
	parties[0] = c->party[0];
	parties[1] = c->party[1];
	free(c);
	roster_release(r, parties[0]);
	roster_release(r, parties[1]);
}

static void
ring_start(struct relay *r, struct call *c, int64_t after_us)
{
	lws_sul_schedule(r->ctx, 0, &c->sul, call_timer,
	    after_us > 0 ? after_us : 1);
}

/* Over: only late end messages pass until the timer forgets it. */
static void
call_linger(struct relay *r, struct call *c)
{
	c->ended = true;
	lws_sul_cancel(&c->sul_grace);
	lws_sul_schedule(r->ctx, 0, &c->sul, call_timer,
	    CALLS_LINGER_S * US_PER_S);
}

/* ---- the log row ---- */

/*
 * Close the row as of at_us: ended with its duration when answered, else
 * as how says of a ringing call. The steps of a call's row go through the
 * outbox, in order, retried while the database is busy: the call goes on
 * in memory at once, and its row follows.
 */
static void
log_close(struct relay *r, struct call *c, int64_t at_us, enum calllog_end how)
{
	outbox_close(r, c->log_id, how, at_us);
}

/* ---- parties without sockets ---- */

/* Whether side's absence can end c: either party of an answered call, only
 * the caller of a ringing one. */
static bool
grace_counts(const struct call *c, int side)
{
	return c->gone_us[side] != 0 && (c->answered || side == 0);
}

/* The side whose grace ends first, -1 when nobody is awaited. */
static int
grace_first(const struct call *c)
{
	int s, first = -1;

	for (s = 0; s < 2; s++)
		if (grace_counts(c, s) &&
		    (first == -1 || c->gone_us[s] < c->gone_us[first]))
			first = s;
	return first;
}

/* (Re)schedule the grace timer for whoever is missing, or cancel it. */
static void
grace_arm(struct relay *r, struct call *c)
{
	int64_t grace_us = (int64_t)r->call_grace_s * US_PER_S, left;
	int s;

	if (c->ended || r->stopping || (s = grace_first(c)) == -1) {
		lws_sul_cancel(&c->sul_grace);
		return;
	}
	left = c->gone_us[s] + grace_us - db_now_us();
	lws_sul_schedule(r->ctx, 0, &c->sul_grace, grace_timer,
	    left > 0 ? left : 1);
}

static void
mark_answered(struct relay *r, struct call *c)
{
	if (c->answered)
		return;
	/* A REST hangup that closed the row first ends the call through
	 * call_end; the answer then changes nothing in the row. */
	outbox_answer(r, c->log_id, db_now_us());
	c->answered = true;
	lws_sul_cancel(&c->sul);
	/* The callee's absence counts from now on too. */
	grace_arm(r, c);
}

/* ---- events to the two parties ---- */

/*
 * o (taken) to one party, or to both when to is NULL, as events of the
 * stream: a party that was away when its call ended learns it from its
 * replay.
 */
static void
push_obj(struct relay *r, struct call *c, struct roster_user *to,
    struct json_object *o)
{
	if (o == NULL)
		return;
	outbox_notify_user(r, (to != NULL ? to : c->party[0])->id, o);
	if (to == NULL)
		outbox_notify_user(r, c->party[1]->id, o);
	json_object_put(o);
}

/* {"type":"call_ended"|"call_answered","from","channel","status","timestamp":0}
 */
static void
push_call_event(struct relay *r, struct call *c, const char *type,
    const char *from, const char *status)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return;
	jh_add_str(o, "type", type);
	jh_add_str(o, "from", from);
	jh_add_str(o, "channel", c->id);
	jh_add_str(o, "status", status);
	jh_add_int(o, "timestamp", 0);
	push_obj(r, c, NULL, o);
}

/* webrtc_call_ended from the relay itself: the call ended for `reason`. */
static void
push_ended(struct relay *r, struct call *c, struct roster_user *to,
    const char *reason)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return;
	jh_add_str(o, "type", "webrtc_call_ended");
	jh_add_str(o, "call_id", c->id);
	jh_add_str(o, "channel", c->id);
	jh_add_str(o, "reason", reason);
	push_obj(r, c, to, o);
}

static void
call_timer(lws_sorted_usec_list_t *sul)
{
	struct call *c = lws_container_of(sul, struct call, sul);
	struct relay *r = c->r;

	if (c->ended) {
		call_forget(r, c);
		return;
	}
	if (c->answered)
		return;
	log_msg(LOG_INFO, "call %s: no answer", c->id);
	log_close(r, c, db_now_us(), CALLLOG_MISSED);
	push_ended(r, c, NULL, "no_answer");
	call_linger(r, c);
}

/*
 * A party stayed away past its grace: close the row as a hangup by that
 * party at the moment it vanished (an answered call's duration runs from
 * its answer to then), tell the other party, forget the call.
 */
static void
grace_timer(lws_sorted_usec_list_t *sul)
{
	struct call *c = lws_container_of(sul, struct call, sul_grace);
	struct relay *r = c->r;
	int64_t gone;
	int s;

	if (c->ended || (s = grace_first(c)) == -1)
		return;
	gone = c->gone_us[s];
	if (gone + (int64_t)r->call_grace_s * US_PER_S > db_now_us()) {
		grace_arm(r, c); /* early: the wall clock stepped back */
		return;
	}
	log_msg(LOG_INFO, "call %s: extension %s gone for %d s, ending", c->id,
	    c->party[s]->extension, r->call_grace_s);
	log_close(r, c, gone, CALLLOG_HANGUP);
	push_ended(r, c, c->party[s == 0 ? 1 : 0], "peer_disconnected");
	call_forget(r, c);
}

void
calls_absent(struct relay *r, struct roster_user *u)
{
	int64_t now = db_now_us();
	struct call *c;
	int s;

	for (c = u->calls; c != NULL; c = c->pnext[s]) {
		s = side(c, u);
		if (c->ended)
			continue;
		c->gone_us[s] = now;
		grace_arm(r, c);
	}
}

void
calls_present(struct relay *r, struct roster_user *u)
{
	struct call *c;
	int s;

	for (c = u->calls; c != NULL; c = c->pnext[s]) {
		s = side(c, u);
		if (c->gone_us[s] == 0)
			continue;
		c->gone_us[s] = 0;
		grace_arm(r, c);
	}
}

void
calls_signal(struct relay *r, struct call *c, struct roster_user *from,
    const char *type)
{
	bool callee = side(c, from) == 1;

	if (c->ended)
		return;
	if (strcmp(type, "webrtc_call_accepted") == 0) {
		if (callee)
			mark_answered(r, c);
	} else if (strcmp(type, "webrtc_call_rejected") == 0) {
		if (callee) {
			log_close(r, c, db_now_us(), CALLLOG_REJECTED);
			call_linger(r, c);
		}
	} else if (strcmp(type, "webrtc_call_ended") == 0) {
		log_close(r, c, db_now_us(), CALLLOG_HANGUP);
		call_linger(r, c);
	}
}

/* hangup: both parties hear call_ended (again, if it already ended). */
void
calls_hangup(struct relay *r, struct call *c, struct roster_user *by)
{
	push_call_event(r, c, "call_ended", by->extension, "ended");
	if (c->ended)
		return;
	log_close(r, c, db_now_us(), CALLLOG_HANGUP);
	call_linger(r, c);
}

void
calls_answer(struct relay *r, struct call *c, struct roster_user *by)
{
	if (c->ended)
		return;
	push_call_event(r, c, "call_answered", by->extension, "answered");
	if (side(c, by) == 1)
		mark_answered(r, c);
}

bool
calls_end(struct relay *r, const char *call_id, const char *by_ext)
{
	struct roster_user *by;
	struct call *c;

	for (c = r->calls; c != NULL; c = c->next)
		if (!c->ended && strcmp(c->id, call_id) == 0)
			break;
	if (c == NULL)
		return false;
	by = roster_by_ext(r, by_ext);
	push_call_event(r, c, "call_ended",
	    by != NULL && side(c, by) >= 0 ? by->extension
					   : c->party[0]->extension,
	    "ended");
	call_linger(r, c);
	return true;
}

/*
 * The invitation goes to the callee's sockets; only when it reached one
 * does the caller hear the call is ringing and does the relay track it.
 * The parties are those of the log row, by id, so an extension that
 * changed hands since can never ring its former holder.
 *
 * The invitation and webrtc_call_initiated are outside the stream (no
 * seq): call_invite must answer whether a socket got the invitation, and
 * a replayed one would ring for a call that is over or taken elsewhere.
 */
int
calls_invite(struct relay *r, const char *call_id, const char *caller_ext,
    const char *callee_ext, struct json_object *invitation,
    struct json_object *initiated, size_t *delivered, struct err *e)
{
	struct roster_user *caller, *callee;
	struct calllog_row row;
	struct msg *m;
	struct call *c;
	int rc;

	*delivered = 0;
	if (strlen(call_id) >= CALLS_ID_MAX)
		return err_set(e, ERR_INVALID, "call_id too long");
	if ((rc = calllog_find(r->db, call_id, &row, e)) == -1)
		return -1;
	if (rc == 0)
		return err_set(e, ERR_NOTFOUND, "no call log for '%s'",
		    call_id);
	if (row.caller_id == row.callee_id)
		return err_set(e, ERR_INVALID, "caller is the callee");
	if ((caller = roster_load_id(r, row.caller_id)) == NULL)
		return err_set(e, ERR_NOTFOUND, "unknown extension");
	if ((callee = roster_load_id(r, row.callee_id)) == NULL) {
		roster_release(r, caller);
		return err_set(e, ERR_NOTFOUND, "unknown extension");
	}
	if (strcmp(caller->extension, caller_ext) != 0 ||
	    strcmp(callee->extension, callee_ext) != 0)
		rc = err_set(e, ERR_INVALID, "call log parties differ");
	else if (strcmp(row.status, "initiated") != 0)
		rc = err_set(e, ERR_CONFLICT, "call is %s", row.status);
	else if (calls_find(callee, call_id) != NULL)
		rc = err_set(e, ERR_CONFLICT, "call already known");
	else if ((m = msg_json(invitation, false)) == NULL)
		rc = err_set(e, ERR_INVALID, "invitation is not an object");
	else {
		*delivered = fan_user(r, callee, m, 0);
		msg_unref(m);
		rc = 0;
	}
	if (rc == -1 || *delivered == 0 ||
	    (c = call_add(r, call_id, row.id, caller, callee)) == NULL) {
		roster_release(r, caller);
		roster_release(r, callee);
		if (rc == 0 && *delivered > 0)
			return err_set(e, ERR_INTERNAL, "out of memory");
		return rc;
	}
	ring_start(r, c, (int64_t)r->cfg.call_ring_timeout_s * US_PER_S);
	/* A caller that rang over REST without a socket of its own is as
	 * good as gone: it cannot hear the answer unless it connects. */
	if (caller->nclients == 0) {
		c->gone_us[0] = db_now_us();
		grace_arm(r, c);
	}
	if (initiated != NULL && (m = msg_json(initiated, false)) != NULL) {
		fan_user(r, caller, m, 0);
		msg_unref(m);
	}
	return 0;
}

/*
 * After a restart: ringing calls come back with what is left of their ring
 * time (those past it are closed as missed), answered ones younger than an
 * hour come back to be ended. Their parties lost their sockets with the old
 * process, so each is counted absent from now and gets the grace to come
 * back. When the relay died is unknown: a party that never returns is
 * taken to have vanished at this start, the first moment the relay could
 * notice, so an abandoned call's duration runs from its answer_time to
 * this start: too long by the downtime at most.
 */
int
calls_init(struct relay *r, struct err *e)
{
	int64_t now = db_now_us(), ring_us, start_us;
	struct roster_user *caller, *callee;
	const char *status, *channel, *at;
	char cutoff[40];
	struct db_stmt *st;
	struct call *c;
	int rc;

	ring_us = (int64_t)r->cfg.call_ring_timeout_s * US_PER_S;
	if (calllog_miss_stale(r->db, now - ring_us, now, e) == -1)
		return -1;
	db_time_format(now - CALLS_ANSWERED_S * US_PER_S, cutoff,
	    sizeof(cutoff));
	if ((st = db_stmt(r->db, sql[Q_RELOAD], e)) == NULL)
		return -1;
	db_bind_text(st, 1, cutoff);
	while ((rc = db_row(r->db, st, e)) == 1) {
		channel = db_col_text(st, 1);
		status = db_col_text(st, 4);
		if (channel == NULL || status == NULL ||
		    strlen(channel) >= CALLS_ID_MAX ||
		    db_col_int(st, 2) == db_col_int(st, 3))
			continue;
		caller = roster_load_id(r, db_col_int(st, 2));
		callee = roster_load_id(r, db_col_int(st, 3));
		if (caller == NULL || callee == NULL) {
			roster_release(r, caller);
			roster_release(r, callee);
			continue;
		}
		if ((c = call_add(r, channel, db_col_int(st, 0), caller,
			 callee)) == NULL) {
			db_reset(st);
			return err_set(e, ERR_INTERNAL, "out of memory");
		}
		if (strcmp(status, "answered") == 0)
			c->answered = true;
		else {
			at = db_col_text(st, 5);
			if (at == NULL || db_time_parse(at, &start_us) == -1)
				start_us = now;
			ring_start(r, c, start_us + ring_us - now);
		}
		c->gone_us[0] = c->gone_us[1] = r->started_us;
		grace_arm(r, c);
	}
	if (rc == -1)
		return -1;
	if (r->ncalls > 0)
		log_msg(LOG_INFO, "%zu live calls reloaded", r->ncalls);
	return 0;
}

/* Forget every call without touching the log: they outlive the relay. */
void
calls_stop(struct relay *r)
{
	while (r->calls != NULL)
		call_forget(r, r->calls);
}
