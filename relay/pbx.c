/*
 * pbx: calls placed through Asterisk. The calls program writes a call's
 * rows (call_logs 'initiated', active_calls 'ringing') and asks over the
 * control socket for the Originate; from then on Asterisk's own events
 * move the call: its channels are followed from Newchannel to Hangup, the
 * answer comes from OriginateResponse (the originated leg is up and in the
 * target's extension), a Dial answered or a bridge of two, and the end from
 * the last channel's Hangup (its cause kept) or a failed OriginateResponse
 * (its reason: busy, no-answer, failed).
 *
 * A channel is ours when it carries our call id (ChanVariable, with
 * manager.conf's channelvars = SWITCHBOARD_CALL_ID), shares the Linkedid of
 * one of our channels, or is the first channel of the originated device
 * while its Originate is unanswered. The OriginateResponse carries the
 * Originate's ActionID, which names the call whatever came before.
 *
 * Writes go through the outbox (one transaction per loop turn, however
 * many events the turn carried); the parties hear of each step through the
 * notify stream. After a reconnect the link lists the live channels
 * (CoreShowChannels): a call none of whose channels is listed is closed.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "lib/ami.h"
#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "relay/amilink.h"
#include "relay/relay.h"

#define PBX_VAR         "SWITCHBOARD_CALL_ID"
#define PBX_PREFIX      "pbx-call-"
#define PBX_RECENT      256 /* hung-up channels a late Cdr is matched to */
#define PBX_CHAN_MAX    96
#define PBX_UID_MAX     40
#define PBX_ID_MAX      64
#define PBX_TXT_MAX     64
#define PBX_CALLS_MAX   4096
#define PBX_POOL_MAX    1024 /* channels waiting for their OriginateResponse */
#define PBX_FIELD_MAX   128 /* one Cdr field as stored */
#define US_PER_S        INT64_C(1000000)
#define AST_STATE_UP    6

enum q {
	Q_LOAD,
	Q_ANSWER,
	Q_ACTIVE_ANSWER,
	Q_END_ANSWERED,
	Q_END_UNANSWERED,
	Q_ACTIVE_DELETE,
	Q_CDR_INSERT,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	/* The calls a previous relay left open: the resync after the first
	 * login closes those Asterisk no longer has. */
	[Q_LOAD] = "SELECT l.id, l.channel, l.caller_id, l.callee_id, "
		   "l.status, l.answer_time, "
		   "(SELECT extension FROM users WHERE id = l.caller_id), "
		   "(SELECT extension FROM users WHERE id = l.callee_id) "
		   "FROM call_logs l WHERE l.channel LIKE 'pbx-call-%' "
		   "AND l.status IN ('initiated', 'answered') ORDER BY l.id",
	[Q_ANSWER] = "UPDATE call_logs SET status = 'answered', "
		     "answer_time = ?2 WHERE id = ?1 AND status = 'initiated'",
	[Q_ACTIVE_ANSWER] = "UPDATE active_calls SET status = 'answered' "
			    "WHERE channel = ?1",
	[Q_END_ANSWERED] = "UPDATE call_logs SET status = 'ended', "
			   "end_time = ?2, duration = ?3, hangup_cause = ?4, "
			   "hangup_cause_txt = ?5 "
			   "WHERE id = ?1 AND status = 'answered'",
	[Q_END_UNANSWERED] = "UPDATE call_logs SET status = ?3, end_time = ?2, "
			     "duration = 0, hangup_cause = ?4, "
			     "hangup_cause_txt = ?5 "
			     "WHERE id = ?1 AND status = 'initiated'",
	[Q_ACTIVE_DELETE] = "DELETE FROM active_calls WHERE channel = ?1",
	[Q_CDR_INSERT] =
	    "INSERT INTO cdr (call_log_id, account_code, source, destination, "
	    "destination_context, caller_id, channel, destination_channel, "
	    "last_application, last_data, start_time, answer_time, end_time, "
	    "duration, billable_seconds, disposition, ama_flags, unique_id, "
	    "user_field, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
	    "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
};

/* The Cdr event's headers, in the order of the INSERT's ?2.. */
static const char *const cdr_fields[] = {
	"AccountCode", "Source", "Destination", "DestinationContext",
	"CallerID", "Channel", "DestinationChannel", "LastApplication",
	"LastData", "StartTime", "AnswerTime", "EndTime", "Duration",
	"BillableSeconds", "Disposition", "AMAFlags", "UniqueID", "UserField",
};
#define CDR_NFIELDS (sizeof(cdr_fields) / sizeof(cdr_fields[0]))
#define CDR_DURATION 12 /* indexes of the integer ones */
#define CDR_BILLSEC  13

struct pbx_chan {
	struct pbx_chan *next;
	char name[PBX_CHAN_MAX];
	char uid[PBX_UID_MAX];
	char linkedid[PBX_UID_MAX];
	bool up, seen;
};

struct pbx_call {
	struct pbx_call *next;
	struct relay *r;
	char call_id[PBX_ID_MAX];
	char action_id[32]; /* the Originate's; empty for a reloaded call */
	char device[PBX_CHAN_MAX]; /* the Originate's Channel */
	char linkedid[PBX_UID_MAX];
	char dialing[PBX_CHAN_MAX]; /* a channel whose Dial is ringing */
	char caller_ext[16], callee_ext[16];
	int64_t log_id, caller_id, callee_id;
	int64_t answered_us; /* 0: not answered */
	bool originated;     /* OriginateResponse (or its failure) came */
	bool reloaded;       /* left open by an earlier relay; no channels yet */
	bool hangup_wanted;  /* hung up over REST: each channel that comes */
	const char *outcome; /* when unanswered: busy, no-answer, failed */
	int cause;
	char cause_txt[PBX_TXT_MAX];
	struct pbx_chan *chans;
};

struct pbx {
	struct pbx_call *calls;
	size_t ncalls;
	/* Channels of an originated device while several of its Originates
	 * are unanswered: which call each is becomes known from the
	 * OriginateResponse (its Uniqueid), so they wait here, by Linkedid. */
	struct pbx_call pool;
	size_t npool;
	char template[PBX_CHAN_MAX]; /* ASTERISK_CHANNEL_TEMPLATE */
	char context[80];            /* ASTERISK_CONTEXT */
	char answer_context[80];     /* ASTERISK_ANSWER_CONTEXT */
	struct {
		char uid[PBX_UID_MAX];
		int64_t log_id;
	} recent[PBX_RECENT];
	size_t recent_next;
	uint64_t closed, cdrs, resync_closed;
	struct json_object *endpoints; /* the last PJSIPShowEndpoints, or NULL */
	char endpoints_error[PBX_TXT_MAX];
	struct json_object *collecting; /* endpoints being listed */
	bool listing; /* a PJSIPShowEndpoints is out: one at a time */
};

static void chan_joined(struct pbx_call *c, const struct pbx_chan *ch);

/* -- writes (inside the outbox's transaction) --------------------------- */

struct w_answer {
	int64_t log_id, at_us;
	char call_id[PBX_ID_MAX];
};

struct w_close {
	int64_t log_id, at_us, duration;
	int cause;
	char status[16];
	char cause_txt[PBX_TXT_MAX];
	char call_id[PBX_ID_MAX];
};

struct w_cdr {
	int64_t log_id; /* 0: not one of ours */
	int64_t at_us;
	char f[CDR_NFIELDS][PBX_FIELD_MAX];
};

static int
w_answer_run(struct relay *r, const void *data, struct err *e)
{
	const struct w_answer *w = data;
	struct db_stmt *st;
	char stamp[40];

	db_time_format(w->at_us, stamp, sizeof(stamp));
	if ((st = db_stmt(r->db, sql[Q_ANSWER], e)) == NULL)
		return -1;
	db_bind_int(st, 1, w->log_id);
	db_bind_text(st, 2, stamp);
	if (db_done(r->db, st, e) == -1 ||
	    (st = db_stmt(r->db, sql[Q_ACTIVE_ANSWER], e)) == NULL)
		return -1;
	db_bind_text(st, 1, w->call_id);
	return db_done(r->db, st, e);
}

static int
w_close_run(struct relay *r, const void *data, struct err *e)
{
	const struct w_close *w = data;
	struct db_stmt *st;
	char stamp[40];
	bool answered = strcmp(w->status, "ended") == 0;

	db_time_format(w->at_us, stamp, sizeof(stamp));
	if ((st = db_stmt(r->db,
		 sql[answered ? Q_END_ANSWERED : Q_END_UNANSWERED], e)) == NULL)
		return -1;
	db_bind_int(st, 1, w->log_id);
	db_bind_text(st, 2, stamp);
	if (answered)
		db_bind_int(st, 3, w->duration);
	else
		db_bind_text(st, 3, w->status);
	db_bind_int(st, 4, w->cause);
	db_bind_text(st, 5, w->cause_txt);
	if (db_done(r->db, st, e) == -1 ||
	    (st = db_stmt(r->db, sql[Q_ACTIVE_DELETE], e)) == NULL)
		return -1;
	db_bind_text(st, 1, w->call_id);
	return db_done(r->db, st, e);
}

static int
w_cdr_run(struct relay *r, const void *data, struct err *e)
{
	const struct w_cdr *w = data;
	struct db_stmt *st;
	char stamp[40];
	size_t i;

	if ((st = db_stmt(r->db, sql[Q_CDR_INSERT], e)) == NULL)
		return -1;
	if (w->log_id > 0)
		db_bind_int(st, 1, w->log_id);
	else
		db_bind_null(st, 1);
	for (i = 0; i < CDR_NFIELDS; i++) {
		if (i == CDR_DURATION || i == CDR_BILLSEC)
			db_bind_int(st, (int)i + 2, strtoll(w->f[i], NULL, 10));
		else
			db_bind_text(st, (int)i + 2, w->f[i]);
	}
	db_time_format(w->at_us, stamp, sizeof(stamp));
	db_bind_text(st, 20, stamp);
	return db_done(r->db, st, e);
}

/* -- calls and channels -------------------------------------------------- */

static struct pbx_call *
call_by_id(struct pbx *p, const char *call_id)
{
	struct pbx_call *c;

	for (c = p->calls; c != NULL; c = c->next)
		if (strcmp(c->call_id, call_id) == 0)
			return c;
	return NULL;
}

static struct pbx_chan *
chan_find(struct pbx *p, const char *uid, const char *name,
    struct pbx_call **call)
{
	struct pbx_chan *ch;
	struct pbx_call *c;

	for (c = p->calls; c != NULL; c = c->next)
		for (ch = c->chans; ch != NULL; ch = ch->next)
			if ((uid != NULL && uid[0] != '\0' &&
				strcmp(ch->uid, uid) == 0) ||
			    (name != NULL && name[0] != '\0' &&
				strcmp(ch->name, name) == 0)) {
				*call = c;
				return ch;
			}
	return NULL;
}

/* A channel waiting in the pool, or NULL. */
static struct pbx_chan *
pool_find(struct pbx *p, const char *uid, const char *name)
{
	struct pbx_chan *ch;

	for (ch = p->pool.chans; ch != NULL; ch = ch->next)
		if ((uid != NULL && uid[0] != '\0' &&
			strcmp(ch->uid, uid) == 0) ||
		    (name != NULL && name[0] != '\0' &&
			strcmp(ch->name, name) == 0))
			return ch;
	return NULL;
}

/* The pool's channels of group linked move to call c. */
static void
pool_claim(struct pbx *p, struct pbx_call *c, const char *linked)
{
	struct pbx_chan **pp, *ch;

	for (pp = &p->pool.chans; (ch = *pp) != NULL;) {
		if (strcmp(ch->linkedid, linked) != 0) {
			pp = &ch->next;
			continue;
		}
		*pp = ch->next;
		p->npool--;
		ch->next = c->chans;
		c->chans = ch;
		chan_joined(c, ch);
	}
	snprintf(c->linkedid, sizeof(c->linkedid), "%s", linked);
}

/* Our call id in a ChanVariable header ("NAME=value", or the older
 * "ChanVariable(NAME): value"), or NULL. */
static const char *
chanvar(const struct ami_msg *m, char *buf, size_t size)
{
	size_t i, n = strlen(PBX_VAR);
	const struct ami_header *h;

	for (i = 0; i < m->nheaders; i++) {
		h = &m->headers[i];
		if (strcasecmp(h->name, "ChanVariable") == 0 &&
		    strncmp(h->value, PBX_VAR "=", n + 1) == 0) {
			snprintf(buf, size, "%s", h->value + n + 1);
			return buf;
		}
		if (strcasecmp(h->name, "ChanVariable(" PBX_VAR ")") == 0) {
			snprintf(buf, size, "%s", h->value);
			return buf;
		}
	}
	return NULL;
}

/*
 * The call a channel not yet known belongs to; &p->pool when it is an
 * originated device's channel but which of several calls it is cannot be
 * told yet; NULL when it is none of ours.
 */
static struct pbx_call *
call_for_new(struct pbx *p, const struct ami_msg *m, const char *name)
{
	const char *linked = ami_msg_get(m, "Linkedid");
	struct pbx_call *c, *cand = NULL;
	struct pbx_chan *ch;
	char var[PBX_ID_MAX];
	size_t n, ncand = 0;

	if (chanvar(m, var, sizeof(var)) != NULL &&
	    (c = call_by_id(p, var)) != NULL)
		return c;
	for (c = p->calls; c != NULL; c = c->next) {
		if (linked != NULL && c->linkedid[0] != '\0' &&
		    strcmp(c->linkedid, linked) == 0)
			return c;
		n = strlen(c->device);
		/* An unanswered Originate's device, or a call an earlier relay
		 * left (its first resync finds its device's channel). */
		if (c->linkedid[0] == '\0' && (!c->originated || c->reloaded) &&
		    n > 0 &&
		    strncmp(name, c->device, n) == 0 && name[n] == '-') {
			cand = c;
			ncand++;
		}
	}
	for (ch = p->pool.chans; linked != NULL && ch != NULL; ch = ch->next)
		if (strcmp(ch->linkedid, linked) == 0)
			return &p->pool;
	if (ncand == 1)
		return cand;
	return ncand > 1 ? &p->pool : NULL;
}

static void on_action_reply(void *arg, enum amilink_result res,
    const struct ami_msg *m);

/* AMI Hangup of one of c's channels. */
static int
chan_hangup(struct pbx_call *c, const struct pbx_chan *ch, struct err *e)
{
	const char *const hdrs[] = { "Channel", ch->name, "Cause", "16", NULL };

	return amilink_send(c->r->ami, "Hangup", hdrs, 0, on_action_reply, c,
	    e);
}

/* A channel joined c: a call hung up before its channels were known
 * loses this one at once. */
static void
chan_joined(struct pbx_call *c, const struct pbx_chan *ch)
{
	struct err e = { 0 };

	if (c->hangup_wanted && c->r != NULL && chan_hangup(c, ch, &e) == -1)
		log_msg(LOG_WARN, "call %s: hangup of %s: %s", c->call_id,
		    ch->name, e.msg);
}

static struct pbx_chan *
chan_add(struct pbx_call *c, const char *name, const char *uid,
    const char *linked)
{
	struct pbx_chan *ch;

	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		log_msg(LOG_ERROR, "call %s: out of memory", c->call_id);
		return NULL;
	}
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	snprintf(ch->uid, sizeof(ch->uid), "%s", uid != NULL ? uid : "");
	snprintf(ch->linkedid, sizeof(ch->linkedid), "%s",
	    linked != NULL ? linked : "");
	ch->seen = true;
	ch->next = c->chans;
	c->chans = ch;
	if (c->linkedid[0] == '\0' && linked != NULL)
		snprintf(c->linkedid, sizeof(c->linkedid), "%s", linked);
	chan_joined(c, ch);
	return ch;
}

static void
recent_add(struct pbx *p, const char *uid, int64_t log_id)
{
	if (uid[0] == '\0')
		return;
	snprintf(p->recent[p->recent_next].uid,
	    sizeof(p->recent[p->recent_next].uid), "%s", uid);
	p->recent[p->recent_next].log_id = log_id;
	p->recent_next = (p->recent_next + 1) % PBX_RECENT;
}

static void
chan_remove(struct pbx *p, struct pbx_call *c, struct pbx_chan *ch)
{
	struct pbx_chan **pp;

	for (pp = &c->chans; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ch) {
			*pp = ch->next;
			break;
		}
	if (strcmp(c->dialing, ch->name) == 0)
		c->dialing[0] = '\0';
	recent_add(p, ch->uid, c->log_id);
	free(ch);
}

/* {"type":"call_status","caller","callee","channel","status",...} */
static struct json_object *
status_msg(const struct pbx_call *c, const char *status)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_str(o, "type", "call_status");
	jh_add_str(o, "caller", c->caller_ext);
	jh_add_str(o, "callee", c->callee_ext);
	jh_add_str(o, "channel", c->device);
	jh_add_str(o, "status", status);
	jh_add_str(o, "call_id", c->call_id);
	return o;
}

static void
tell_both(struct relay *r, const struct pbx_call *c, struct json_object *o)
{
	if (o == NULL)
		return;
	if (c->caller_id > 0)
		outbox_notify_user(r, c->caller_id, o);
	if (c->callee_id > 0 && c->callee_id != c->caller_id)
		outbox_notify_user(r, c->callee_id, o);
	json_object_put(o);
}

static void
call_answer(struct relay *r, struct pbx_call *c)
{
	struct w_answer w = { 0 };

	if (c->answered_us != 0)
		return;
	c->answered_us = db_now_us();
	c->dialing[0] = '\0';
	w.log_id = c->log_id;
	w.at_us = c->answered_us;
	snprintf(w.call_id, sizeof(w.call_id), "%s", c->call_id);
	outbox_call(r, w_answer_run, &w, sizeof(w));
	tell_both(r, c, status_msg(c, "connected"));
}

/* The call is over: its row closed, its parties told, c freed. */
static void
call_close(struct relay *r, struct pbx_call *c)
{
	struct pbx *p = r->pbx;
	struct pbx_call **pp;
	struct json_object *o;
	struct w_close w = { 0 };

	for (pp = &p->calls; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	p->ncalls--;
	p->closed++;
	amilink_cancel(r->ami, c);
	while (c->chans != NULL)
		chan_remove(p, c, c->chans);
	w.log_id = c->log_id;
	w.at_us = db_now_us();
	w.cause = c->cause;
	snprintf(w.cause_txt, sizeof(w.cause_txt), "%s", c->cause_txt);
	snprintf(w.call_id, sizeof(w.call_id), "%s", c->call_id);
	if (c->answered_us != 0) {
		snprintf(w.status, sizeof(w.status), "ended");
		w.duration = w.at_us > c->answered_us
				 ? (w.at_us - c->answered_us) / US_PER_S
				 : 0;
	} else
		snprintf(w.status, sizeof(w.status), "%s",
		    c->outcome != NULL ? c->outcome : "failed");
	outbox_call(r, w_close_run, &w, sizeof(w));
	log_msg(LOG_INFO, "call %s %s (cause %d %s, %" PRId64 " s)",
	    c->call_id, w.status, w.cause, w.cause_txt, w.duration);
	if ((o = status_msg(c, "ended")) != NULL) {
		jh_add_str(o, "result", w.status);
		jh_add_int(o, "cause", w.cause);
		jh_add_str(o, "cause_txt", w.cause_txt);
		jh_add_int(o, "duration", w.duration);
	}
	tell_both(r, c, o);
	free(c);
}

/* The cause a call is closed with: the most telling Hangup's (anything
 * but 0 beats nothing, anything but Normal Clearing beats it). */
static void
cause_note(struct pbx_call *c, const char *cause, const char *txt)
{
	int n;

	if (cause == NULL)
		return;
	n = atoi(cause);
	if (n == 0 || (c->cause != 0 && c->cause != 16) ||
	    (c->cause == 16 && n == 16))
		return;
	c->cause = n;
	snprintf(c->cause_txt, sizeof(c->cause_txt), "%s",
	    txt != NULL ? txt : "");
}

/* An unanswered call's end from a Dial's status or an Originate's reason. */
static const char *
outcome_of_dial(const char *s)
{
	if (s == NULL)
		return NULL;
	if (strcmp(s, "BUSY") == 0)
		return "busy";
	if (strcmp(s, "NOANSWER") == 0 || strcmp(s, "RINGING") == 0 ||
	    strcmp(s, "CANCEL") == 0)
		return "no-answer";
	if (strcmp(s, "ANSWER") == 0)
		return NULL;
	return "failed";
}

/* OriginateResponse Reason (Asterisk's AST_CONTROL_*). */
static const char *
outcome_of_reason(int reason, const char **txt)
{
	switch (reason) {
	case 5:
		*txt = "Busy";
		return "busy";
	case 3:
		*txt = "No answer";
		return "no-answer";
	case 1:
		*txt = "Hung up while ringing";
		return "no-answer";
	case 8:
		*txt = "Congestion";
		return "failed";
	default:
		*txt = "Failed to originate";
		return "failed";
	}
}

/* After a channel went: the call ends with its last channel, once its
 * Originate is settled (a Failure can come before or after the Hangups). */
static void
call_maybe_done(struct relay *r, struct pbx_call *c)
{
	if (c->chans == NULL && (c->originated || c->answered_us != 0))
		call_close(r, c);
}

/* -- events -------------------------------------------------------------- */

static void
on_newchannel(struct relay *r, const struct ami_msg *m, bool resync)
{
	struct pbx *p = r->pbx;
	const char *name = ami_msg_get(m, "Channel");
	const char *uid = ami_msg_get(m, "Uniqueid");
	const char *state = ami_msg_get(m, "ChannelState");
	struct pbx_chan *ch;
	struct pbx_call *c;

	if (name == NULL)
		return;
	if ((ch = pool_find(p, uid, name)) != NULL) {
		ch->seen = true;
		return;
	}
	if ((ch = chan_find(p, uid, name, &c)) == NULL) {
		if ((c = call_for_new(p, m, name)) == NULL)
			return;
		if (c == &p->pool) {
			if (p->npool >= PBX_POOL_MAX)
				return;
			if ((ch = chan_add(c, name, uid,
				 ami_msg_get(m, "Linkedid"))) != NULL)
				p->npool++;
			p->pool.linkedid[0] = '\0'; /* the pool has many */
			return;
		}
		if ((ch = chan_add(c, name, uid, ami_msg_get(m, "Linkedid"))) ==
		    NULL)
			return;
	}
	ch->seen = true;
	if (state != NULL && atoi(state) == AST_STATE_UP)
		ch->up = true;
	if (resync && ch->up && c->answered_us == 0 && c->originated)
		call_answer(r, c);
}

static void
on_newstate(struct relay *r, const struct ami_msg *m)
{
	const char *state = ami_msg_get(m, "ChannelState");
	struct pbx_chan *ch;
	struct pbx_call *c;

	if ((ch = chan_find(r->pbx, ami_msg_get(m, "Uniqueid"),
		 ami_msg_get(m, "Channel"), &c)) == NULL)
		return;
	ch->up = state != NULL && atoi(state) == AST_STATE_UP;
}

static void
on_dial(struct relay *r, const struct ami_msg *m, bool begin)
{
	struct pbx *p = r->pbx;
	const char *src = ami_msg_get(m, "Channel");
	const char *dest = ami_msg_get(m, "DestChannel");
	const char *status = ami_msg_get(m, "DialStatus");
	struct pbx_chan *ch;
	struct pbx_call *c = NULL;
	const char *o;

	if (src != NULL && src[0] != '\0') {
		/* A Dial in the dialplan, from one of our channels. */
		if (chan_find(p, ami_msg_get(m, "Uniqueid"), src, &c) == NULL)
			return;
		if (begin) {
			snprintf(c->dialing, sizeof(c->dialing), "%s", src);
			if (dest != NULL && chan_find(p,
						ami_msg_get(m, "DestUniqueid"),
						dest, &c) == NULL)
				chan_add(c, dest,
				    ami_msg_get(m, "DestUniqueid"), NULL);
			return;
		}
		c->dialing[0] = '\0';
		if (status != NULL && strcmp(status, "ANSWER") == 0)
			call_answer(r, c);
		else if ((o = outcome_of_dial(status)) != NULL &&
			 c->answered_us == 0)
			c->outcome = o;
		return;
	}
	/* The Originate's own dial of the device: only its failure counts
	 * here (OriginateResponse says the rest). */
	if (begin || dest == NULL ||
	    (ch = chan_find(p, ami_msg_get(m, "DestUniqueid"), dest, &c)) ==
		NULL)
		return;
	if ((o = outcome_of_dial(status)) != NULL && c->answered_us == 0)
		c->outcome = o;
}

static void
on_bridge(struct relay *r, const struct ami_msg *m)
{
	const char *n = ami_msg_get(m, "BridgeNumChannels");
	struct pbx_call *c;

	if (n == NULL || atoi(n) < 2 ||
	    chan_find(r->pbx, ami_msg_get(m, "Uniqueid"),
		ami_msg_get(m, "Channel"), &c) == NULL)
		return;
	call_answer(r, c);
}

static void
on_hangup(struct relay *r, const struct ami_msg *m)
{
	struct pbx_chan *ch;
	struct pbx_call *c;

	if ((ch = chan_find(r->pbx, ami_msg_get(m, "Uniqueid"),
		 ami_msg_get(m, "Channel"), &c)) == NULL) {
		if ((ch = pool_find(r->pbx, ami_msg_get(m, "Uniqueid"),
			 ami_msg_get(m, "Channel"))) != NULL) {
			struct pbx_chan **pp;

			for (pp = &r->pbx->pool.chans; *pp != ch;
			     pp = &(*pp)->next)
				;
			*pp = ch->next;
			r->pbx->npool--;
			free(ch);
		}
		return;
	}
	cause_note(c, ami_msg_get(m, "Cause"), ami_msg_get(m, "Cause-txt"));
	chan_remove(r->pbx, c, ch);
	call_maybe_done(r, c);
}

static void
on_originate_response(struct relay *r, const struct ami_msg *m)
{
	const char *resp = ami_msg_get(m, "Response");
	const char *uid = ami_msg_get(m, "Uniqueid");
	const char *reason = ami_msg_get(m, "Reason");
	struct pbx_call *c, *owner;
	struct pbx_chan *ch;
	const char *txt = "";

	if (m->action_id == NULL)
		return;
	for (c = r->pbx->calls; c != NULL; c = c->next)
		if (c->action_id[0] != '\0' &&
		    strcmp(c->action_id, m->action_id) == 0)
			break;
	if (c == NULL)
		return;
	c->originated = true;
	if (resp != NULL && strcmp(resp, "Success") == 0) {
		/* The device answered and runs the target's extension:
		 * connected, as Asterisk's own CDR counts an originate. */
		if (uid != NULL && (ch = pool_find(r->pbx, uid, NULL)) != NULL)
			pool_claim(r->pbx, c,
			    ch->linkedid[0] != '\0' ? ch->linkedid : uid);
		else if (uid != NULL &&
			 chan_find(r->pbx, uid, NULL, &owner) == NULL &&
			 ami_msg_get(m, "Channel") != NULL) {
			if ((ch = chan_add(c, ami_msg_get(m, "Channel"), uid,
				 uid)) != NULL)
				ch->up = true;
		}
		call_answer(r, c);
		return;
	}
	if (c->answered_us == 0) {
		c->outcome = outcome_of_reason(reason ? atoi(reason) : 0, &txt);
		if (c->cause == 0)
			snprintf(c->cause_txt, sizeof(c->cause_txt),
			    "%s (reason %s)", txt, reason ? reason : "?");
	}
	call_maybe_done(r, c);
}

static void
on_cdr(struct relay *r, const struct ami_msg *m)
{
	struct pbx *p = r->pbx;
	struct w_cdr *w;
	struct pbx_call *c;
	const char *v, *uid;
	size_t i;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return;
	for (i = 0; i < CDR_NFIELDS; i++)
		if ((v = ami_msg_get(m, cdr_fields[i])) != NULL)
			snprintf(w->f[i], sizeof(w->f[i]), "%s", v);
	uid = w->f[16];
	if (uid[0] != '\0' && chan_find(p, uid, NULL, &c) != NULL)
		w->log_id = c->log_id;
	for (i = 0; w->log_id == 0 && uid[0] != '\0' && i < PBX_RECENT; i++)
		if (strcmp(p->recent[i].uid, uid) == 0)
			w->log_id = p->recent[i].log_id;
	w->at_us = db_now_us();
	p->cdrs++;
	outbox_call(r, w_cdr_run, w, sizeof(*w));
	free(w);
}

void
pbx_on_event(void *arg, const struct ami_msg *m)
{
	struct relay *r = arg;
	const char *n = m->name;

	if (r->pbx == NULL)
		return;
	if (strcmp(n, "Newchannel") == 0)
		on_newchannel(r, m, false);
	else if (strcmp(n, "CoreShowChannel") == 0)
		on_newchannel(r, m, true);
	else if (strcmp(n, "Newstate") == 0)
		on_newstate(r, m);
	else if (strcmp(n, "DialBegin") == 0)
		on_dial(r, m, true);
	else if (strcmp(n, "DialEnd") == 0)
		on_dial(r, m, false);
	else if (strcmp(n, "BridgeEnter") == 0)
		on_bridge(r, m);
	else if (strcmp(n, "Hangup") == 0)
		on_hangup(r, m);
	else if (strcmp(n, "OriginateResponse") == 0)
		on_originate_response(r, m);
	else if (strcmp(n, "Cdr") == 0)
		on_cdr(r, m);
}

/* -- endpoint state for diagnostics -------------------------------------- */

static void
on_endpoints(void *arg, enum amilink_result res, const struct ami_msg *m)
{
	struct relay *r = arg;
	struct pbx *p = r->pbx;
	struct json_object *o;
	const char *v;

	if (res != AMILINK_ITEM && !(res == AMILINK_RESPONSE &&
					  m->list == AMI_LIST_START))
		p->listing = false; /* the answer is complete */
	switch (res) {
	case AMILINK_RESPONSE:
		if (strcmp(m->name, "Success") != 0) {
			/* chan_pjsip not loaded: "Invalid/unknown command" */
			v = ami_msg_get(m, "Message");
			snprintf(p->endpoints_error,
			    sizeof(p->endpoints_error), "%s",
			    v != NULL ? v : m->name);
			json_object_put(p->endpoints);
			p->endpoints = NULL;
			return;
		}
		json_object_put(p->collecting);
		p->collecting = json_object_new_array();
		return;
	case AMILINK_ITEM:
		if (p->collecting == NULL ||
		    (o = json_object_new_object()) == NULL)
			return;
		v = ami_msg_get(m, "ObjectName");
		jh_add_str(o, "endpoint", v != NULL ? v : "");
		v = ami_msg_get(m, "DeviceState");
		jh_add_str(o, "device_state", v != NULL ? v : "");
		v = ami_msg_get(m, "Contacts");
		jh_add_str(o, "contacts", v != NULL ? v : "");
		v = ami_msg_get(m, "ActiveChannels");
		jh_add_str(o, "active_channels", v != NULL ? v : "");
		json_object_array_add(p->collecting, o);
		return;
	case AMILINK_COMPLETE:
		json_object_put(p->endpoints);
		p->endpoints = p->collecting;
		p->collecting = NULL;
		p->endpoints_error[0] = '\0';
		return;
	case AMILINK_TIMEOUT:
	case AMILINK_GONE:
		json_object_put(p->collecting);
		p->collecting = NULL;
		snprintf(p->endpoints_error, sizeof(p->endpoints_error), "%s",
		    res == AMILINK_TIMEOUT ? "no answer" : "link lost");
		return;
	}
}

static void
endpoints_refresh(struct relay *r)
{
	struct err e = { 0 };

	if (r->pbx->listing)
		return;
	if (amilink_send(r->ami, "PJSIPShowEndpoints", NULL, 0, on_endpoints,
		r, &e) == -1)
		log_msg(LOG_DEBUG, "endpoints: %s", e.msg);
	else
		r->pbx->listing = true;
}

/* -- the link's state ---------------------------------------------------- */

void
pbx_on_state(void *arg, enum amilink_state s)
{
	struct relay *r = arg;
	struct pbx *p = r->pbx;
	struct pbx_call *c, *next;
	struct pbx_chan *ch, *chnext;

	if (p == NULL)
		return;
	switch (s) {
	case AMILINK_RESYNC_BEGIN:
		/* Unclaimed channels are listed again if they still live. */
		while ((ch = p->pool.chans) != NULL) {
			p->pool.chans = ch->next;
			free(ch);
		}
		p->npool = 0;
		for (c = p->calls; c != NULL; c = c->next)
			for (ch = c->chans; ch != NULL; ch = ch->next)
				ch->seen = false;
		return;
	case AMILINK_RESYNC_END:
		/* Whatever Asterisk did not list is gone; a call left with
		 * no channel ended while we were not listening. */
		for (c = p->calls; c != NULL; c = next) {
			next = c->next;
			for (ch = c->chans; ch != NULL; ch = chnext) {
				chnext = ch->next;
				if (!ch->seen)
					chan_remove(p, c, ch);
			}
			c->reloaded = false;
			if (c->chans != NULL)
				continue;
			if (c->cause == 0)
				snprintf(c->cause_txt, sizeof(c->cause_txt),
				    "channels gone while Asterisk was away");
			c->originated = true;
			p->resync_closed++;
			call_close(r, c);
		}
		endpoints_refresh(r);
		return;
	case AMILINK_UP:
	case AMILINK_DOWN:
		return;
	}
}

/* -- ctl ops ------------------------------------------------------------- */

static struct json_object *
reply_new(bool ok, const char *error, const char *code)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_bool(o, "ok", ok);
	if (error != NULL)
		jh_add_str(o, "error", error);
	if (code != NULL)
		jh_add_str(o, "code", code);
	return o;
}

static int64_t
get_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	return json_object_get_int64(v);
}

/* The Originate's Channel: the template with {ext} replaced. */
static int
device_of(const struct pbx *p, const char *ext, char *buf, size_t size)
{
	const char *at = strstr(p->template, "{ext}");
	int n;

	if (at == NULL)
		n = snprintf(buf, size, "%s/%s", p->template, ext);
	else
		n = snprintf(buf, size, "%.*s%s%s", (int)(at - p->template),
		    p->template, ext, at + 5);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static void
on_originate_reply(void *arg, enum amilink_result res,
    const struct ami_msg *m)
{
	struct pbx_call *c = arg;
	const char *msg;

	if (res == AMILINK_RESPONSE && strcmp(m->name, "Success") == 0)
		return;
	msg = res == AMILINK_RESPONSE ? ami_msg_get(m, "Message") : NULL;
	/* The Response to an Async Originate is only "queued"; a refusal
	 * (permissions, a bad header) is logged, and the call is closed by
	 * the next resync or its ring timeout. */
	log_msg(LOG_WARN, "call %s: Originate %s%s%s", c->call_id,
	    res == AMILINK_TIMEOUT ? "timed out"
	    : res == AMILINK_GONE  ? "lost with the link"
				   : "refused",
	    msg != NULL ? ": " : "", msg != NULL ? msg : "");
	if (res == AMILINK_GONE)
		return; /* the resync after the reconnect says what became of it */
	c->outcome = "failed";
	c->originated = true;
	snprintf(c->cause_txt, sizeof(c->cause_txt), "%s",
	    msg != NULL ? msg : "Originate not accepted");
	call_maybe_done(c->r, c);
}

/*
 * {"op":"pbx_originate","call_id","log_id","caller_id","callee_id",
 * "caller_extension","callee_extension","caller_name"}: the rows exist
 * (the calls program wrote them); Originate Async goes out. Not ok (with
 * "code":"unavailable") when the link is off or down: the caller then
 * removes its rows.
 */
struct json_object *
pbx_ctl_originate(struct relay *r, struct json_object *rq)
{
	struct pbx *p = r->pbx;
	const char *id = jh_get_str(rq, "call_id");
	const char *caller = jh_get_str(rq, "caller_extension");
	const char *callee = jh_get_str(rq, "callee_extension");
	const char *name = jh_get_str(rq, "caller_name");
	char var[PBX_ID_MAX + 32], timeout[24], cid[160];
	struct json_object *o, *inv;
	struct pbx_call *c;
	struct err e = { 0 };

	if (id == NULL || caller == NULL || callee == NULL ||
	    strncmp(id, PBX_PREFIX, strlen(PBX_PREFIX)) != 0 ||
	    get_int(rq, "log_id") <= 0)
		return reply_new(false,
		    "call_id, log_id, caller_extension and callee_extension "
		    "are required",
		    "invalid");
	if (!amilink_enabled(r->ami))
		return reply_new(false,
		    r->ami_standby ? "Asterisk is driven by another relay"
				   : "Asterisk is not configured",
		    "unavailable");
	if (!amilink_ready(r->ami))
		return reply_new(false, "Asterisk is not connected",
		    "unavailable");
	if (p->ncalls >= PBX_CALLS_MAX)
		return reply_new(false, "too many calls", "unavailable");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->r = r;
	snprintf(c->call_id, sizeof(c->call_id), "%s", id);
	snprintf(c->caller_ext, sizeof(c->caller_ext), "%s", caller);
	snprintf(c->callee_ext, sizeof(c->callee_ext), "%s", callee);
	c->log_id = get_int(rq, "log_id");
	c->caller_id = get_int(rq, "caller_id");
	c->callee_id = get_int(rq, "callee_id");
	if (device_of(p, caller, c->device, sizeof(c->device)) == -1) {
		free(c);
		return reply_new(false, "channel template too long", NULL);
	}
	snprintf(var, sizeof(var), PBX_VAR "=%s", id);
	snprintf(timeout, sizeof(timeout), "%d",
	    (r->cfg.call_ring_timeout_s > 0 ? r->cfg.call_ring_timeout_s : 60) *
		1000);
	if (name != NULL && name[0] != '\0' && strpbrk(name, "\"<>") == NULL)
		snprintf(cid, sizeof(cid), "\"%s\" <%s>", name, caller);
	else
		snprintf(cid, sizeof(cid), "%s", caller);
	{
		const char *const hdrs[] = {
			"Channel", c->device,
			"Context", p->context,
			"Exten", callee,
			"Priority", "1",
			"CallerID", cid,
			"Timeout", timeout,
			"Variable", var,
			"Async", "true",
			NULL,
		};

		if (amilink_send_id(r->ami, "Originate", hdrs, 0,
			on_originate_reply, c, c->action_id,
			sizeof(c->action_id), &e) == -1) {
			free(c);
			return reply_new(false, e.msg,
			    e.code == ERR_INVALID ? "invalid" : "unavailable");
		}
	}
	c->next = p->calls;
	p->calls = c;
	p->ncalls++;
	/* The callee's browsers ring (contract §1.7's incoming_call). */
	if ((inv = json_object_new_object()) != NULL) {
		jh_add_str(inv, "type", "incoming_call");
		jh_add_str(inv, "caller", caller);
		jh_add_str(inv, "callee", callee);
		jh_add_str(inv, "channel", c->device);
		jh_add_str(inv, "status", "ringing");
		jh_add_str(inv, "priority", "normal");
		jh_add_str(inv, "transport", "transport-ws");
		jh_add_str(inv, "call_id", id);
		if (c->callee_id > 0)
			outbox_notify_user(r, c->callee_id, inv);
		json_object_put(inv);
	}
	log_msg(LOG_INFO, "call %s: Originate %s -> %s", id, c->device,
	    callee);
	if ((o = reply_new(true, NULL, NULL)) != NULL) {
		jh_add_str(o, "channel", c->device);
		jh_add_str(o, "call_id", id);
	}
	return o;
}

/* The call rq names (call_id, or channel: a live channel, the device or
 * the call id) that user_id is a party of, or any call when any (an
 * admin's request: the admin program checked the role). */
static struct pbx_call *
call_of(struct relay *r, struct json_object *rq, bool any)
{
	const char *id = jh_get_str(rq, "call_id");
	const char *ch = jh_get_str(rq, "channel");
	int64_t user = get_int(rq, "user_id");
	struct pbx_call *c, *found = NULL;
	struct pbx_chan *x;

	for (c = r->pbx->calls; c != NULL && found == NULL; c = c->next) {
		if (!any && c->caller_id != user && c->callee_id != user)
			continue;
		if (id != NULL && id[0] != '\0') {
			if (strcmp(c->call_id, id) == 0)
				found = c;
			continue;
		}
		if (ch == NULL || ch[0] == '\0')
			continue;
		if (strcmp(c->call_id, ch) == 0 || strcmp(c->device, ch) == 0)
			found = c;
		for (x = c->chans; x != NULL && found == NULL; x = x->next)
			if (strcmp(x->name, ch) == 0)
				found = c;
	}
	return found;
}

static void
on_action_reply(void *arg, enum amilink_result res, const struct ami_msg *m)
{
	struct pbx_call *c = arg;

	if (res == AMILINK_RESPONSE && strcmp(m->name, "Success") == 0)
		return;
	log_msg(LOG_WARN, "call %s: action %s%s", c->call_id,
	    res == AMILINK_TIMEOUT ? "timed out"
	    : res == AMILINK_GONE  ? "lost with the link"
				   : "refused: ",
	    res == AMILINK_RESPONSE && ami_msg_get(m, "Message") != NULL
		? ami_msg_get(m, "Message")
		: "");
}

/* {"op":"pbx_hangup","user_id", "call_id" or "channel", "admin"?}: Hangup
 * on each of the call's live channels. With "admin": true the call need
 * not be user_id's (an admin ends anyone's call). */
struct json_object *
pbx_ctl_hangup(struct relay *r, struct json_object *rq)
{
	struct json_object *o, *arr, *v;
	struct pbx_call *c;
	struct pbx_chan *x;
	struct err e = { 0 };
	bool any;

	any = json_object_object_get_ex(rq, "admin", &v) &&
	      json_object_get_boolean(v);
	if ((c = call_of(r, rq, any)) == NULL)
		return reply_new(false, "Active call not found", "notfound");
	if (!amilink_ready(r->ami))
		return reply_new(false, "Asterisk is not connected",
		    "unavailable");
	if ((o = reply_new(true, NULL, NULL)) == NULL ||
	    (arr = json_object_new_array()) == NULL) {
		json_object_put(o);
		return NULL;
	}
	/* Channels not known yet (the Originate's events are still coming)
	 * are hung up as they come. */
	c->hangup_wanted = true;
	for (x = c->chans; x != NULL; x = x->next) {
		if (chan_hangup(c, x, &e) == -1) {
			json_object_put(arr);
			json_object_put(o);
			return reply_new(false, e.msg, "unavailable");
		}
		json_object_array_add(arr, json_object_new_string(x->name));
	}
	jh_add_str(o, "call_id", c->call_id);
	jh_add_str(o, "channel", c->device);
	jh_add_int(o, "duration",
	    c->answered_us != 0 ? (db_now_us() - c->answered_us) / US_PER_S
				: 0);
	jh_add_bool(o, "pending", c->chans == NULL);
	json_object_object_add(o, "channels", arr);
	return o;
}

/*
 * {"op":"pbx_answer","user_id", "call_id" or "channel"}: the callee takes
 * the call. AMI has no Answer; the channel whose Dial rings the callee is
 * redirected into ASTERISK_ANSWER_CONTEXT at the callee's extension,
 * which answers it and dials the callee's device again asking it to
 * answer at once (asterisk-config/extensions.conf), bridging the two.
 */
struct json_object *
pbx_ctl_answer(struct relay *r, struct json_object *rq)
{
	struct json_object *o;
	struct pbx_call *c;
	struct err e = { 0 };

	if ((c = call_of(r, rq, false)) == NULL ||
	    c->callee_id != get_int(rq, "user_id"))
		return reply_new(false, "Active call not found", "notfound");
	if (c->answered_us != 0)
		return reply_new(false, "Call is already answered", "conflict");
	if (c->dialing[0] == '\0')
		return reply_new(false, "Call is not ringing yet", "conflict");
	if (!amilink_ready(r->ami))
		return reply_new(false, "Asterisk is not connected",
		    "unavailable");
	{
		const char *const hdrs[] = {
			"Channel", c->dialing,
			"Context", r->pbx->answer_context,
			"Exten", c->callee_ext,
			"Priority", "1",
			NULL,
		};

		if (amilink_send(r->ami, "Redirect", hdrs, 0, on_action_reply,
			c, &e) == -1)
			return reply_new(false, e.msg, "unavailable");
	}
	if ((o = reply_new(true, NULL, NULL)) != NULL) {
		jh_add_str(o, "call_id", c->call_id);
		jh_add_str(o, "channel", c->device);
		jh_add_str(o, "redirected", c->dialing);
	}
	return o;
}

/* {"op":"pbx_active","user_id"}: the live calls of that user, as the
 * relay sees them now (channels included). */
struct json_object *
pbx_ctl_active(struct relay *r, struct json_object *rq)
{
	int64_t user = get_int(rq, "user_id");
	struct json_object *o, *arr, *co, *chs;
	struct pbx_call *c;
	struct pbx_chan *x;

	if ((o = reply_new(true, NULL, NULL)) == NULL ||
	    (arr = json_object_new_array()) == NULL) {
		json_object_put(o);
		return NULL;
	}
	for (c = r->pbx->calls; c != NULL; c = c->next) {
		if (c->caller_id != user && c->callee_id != user)
			continue;
		if ((co = json_object_new_object()) == NULL ||
		    (chs = json_object_new_array()) == NULL) {
			json_object_put(co);
			break;
		}
		jh_add_str(co, "call_id", c->call_id);
		jh_add_str(co, "status",
		    c->answered_us != 0 ? "answered" : "ringing");
		for (x = c->chans; x != NULL; x = x->next)
			json_object_array_add(chs,
			    json_object_new_string(x->name));
		json_object_object_add(co, "channels", chs);
		json_object_array_add(arr, co);
	}
	json_object_object_add(o, "calls", arr);
	return o;
}

/* {"op":"pbx_health"}: the link's counters and the calls'. */
struct json_object *
pbx_ctl_health(struct relay *r, struct json_object *rq)
{
	struct json_object *o, *h;

	(void)rq;
	if ((o = reply_new(true, NULL, NULL)) == NULL)
		return NULL;
	if ((h = amilink_health_json(r->ami)) != NULL) {
		if (r->ami_standby) {
			/* Configured, and driven by the relay holding it. */
			jh_add_bool(h, "enabled", true);
			jh_add_str(h, "state", "standby");
			jh_add_bool(h, "connected", false);
		}
		jh_add_int(h, "calls", (int64_t)r->pbx->ncalls);
		jh_add_int(h, "calls_closed", (int64_t)r->pbx->closed);
		jh_add_int(h, "calls_closed_by_resync",
		    (int64_t)r->pbx->resync_closed);
		jh_add_int(h, "cdrs", (int64_t)r->pbx->cdrs);
		json_object_object_add(o, "ami", h);
	}
	return o;
}

/* {"op":"pbx_endpoints"}: the PJSIP endpoints as last listed (the list
 * is asked for again now, for the next caller). */
struct json_object *
pbx_ctl_endpoints(struct relay *r, struct json_object *rq)
{
	struct pbx *p = r->pbx;
	struct json_object *o;

	(void)rq;
	if ((o = reply_new(true, NULL, NULL)) == NULL)
		return NULL;
	if (p->endpoints != NULL)
		json_object_object_add(o, "endpoints",
		    json_object_get(p->endpoints));
	if (p->endpoints_error[0] != '\0')
		jh_add_str(o, "endpoints_error", p->endpoints_error);
	if (amilink_ready(r->ami))
		endpoints_refresh(r);
	return o;
}

/* -- life ---------------------------------------------------------------- */

static void
setting(char *dst, size_t size, const char *name, const char *def)
{
	const char *v = config_get(name);

	snprintf(dst, size, "%s", v != NULL && v[0] != '\0' ? v : def);
}

/* The calls a previous relay left open, back in memory without channels:
 * the first resync closes each one Asterisk no longer has. */
static int
load_open(struct relay *r, struct err *e)
{
	struct pbx *p = r->pbx;
	struct db_stmt *st;
	struct pbx_call *c;
	const char *s;
	int64_t at;
	int rc;

	if ((st = db_stmt(r->db, sql[Q_LOAD], e)) == NULL)
		return -1;
	while ((rc = db_row(r->db, st, e)) == 1) {
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			db_reset(st);
			return err_set(e, ERR_INTERNAL, "out of memory");
		}
		c->r = r;
		c->log_id = db_col_int(st, 0);
		s = db_col_text(st, 1);
		snprintf(c->call_id, sizeof(c->call_id), "%s", s ? s : "");
		c->caller_id = db_col_int(st, 2);
		c->callee_id = db_col_int(st, 3);
		s = db_col_text(st, 4);
		if (s != NULL && strcmp(s, "answered") == 0) {
			s = db_col_text(st, 5);
			if (s == NULL || db_time_parse(s, &at) == -1)
				at = db_now_us();
			c->answered_us = at;
		}
		s = db_col_text(st, 6);
		snprintf(c->caller_ext, sizeof(c->caller_ext), "%s",
		    s ? s : "");
		s = db_col_text(st, 7);
		snprintf(c->callee_ext, sizeof(c->callee_ext), "%s",
		    s ? s : "");
		if (device_of(p, c->caller_ext, c->device, sizeof(c->device)) ==
		    -1)
			c->device[0] = '\0';
		c->originated = true;
		c->reloaded = true;
		c->next = p->calls;
		p->calls = c;
		p->ncalls++;
	}
	return rc;
}

int
pbx_init(struct relay *r, struct err *e)
{
	struct pbx *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	r->pbx = p;
	setting(p->template, sizeof(p->template), "ASTERISK_CHANNEL_TEMPLATE",
	    "PJSIP/{ext}");
	setting(p->context, sizeof(p->context), "ASTERISK_CONTEXT", "default");
	setting(p->answer_context, sizeof(p->answer_context),
	    "ASTERISK_ANSWER_CONTEXT", "switchboard-answer");
	return load_open(r, e);
}

void
pbx_free(struct relay *r)
{
	struct pbx *p = r->pbx;
	struct pbx_call *c;

	if (p == NULL)
		return;
	while ((c = p->calls) != NULL) {
		p->calls = c->next;
		while (c->chans != NULL) {
			struct pbx_chan *x = c->chans;

			c->chans = x->next;
			free(x);
		}
		free(c);
	}
	while (p->pool.chans != NULL) {
		struct pbx_chan *x = p->pool.chans;

		p->pool.chans = x->next;
		free(x);
	}
	json_object_put(p->endpoints);
	json_object_put(p->collecting);
	free(p);
	r->pbx = NULL;
}
