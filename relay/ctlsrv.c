/*
 * ctlsrv: the control socket (RUN_DIR/ctl.sock, raw Unix stream). One JSON
 * object per line, one request per connection, one reply line, then the
 * relay closes. A bad request gets {"ok":false,"error":...} and never
 * disturbs anything else. Kicks are fire-and-forget: their senders close
 * without reading the reply.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/notify.h"
#include "relay/relay.h"

#define CTL_IDLE_S 10 /* a client that sends no full line is cut */

struct ctl_conn {
	char *in;
	size_t inlen;
	unsigned char *out; /* LWS_PRE, the reply and its newline */
	size_t outlen;
	bool sent;
};

typedef struct json_object *(*ctl_op)(struct relay *, struct json_object *);

static struct json_object *
reply_new(bool ok, const char *error)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_bool(o, "ok", ok);
	if (error != NULL)
		jh_add_str(o, "error", error);
	return o;
}

/* {"ok":true,"delivered":n}: how many sockets a message was queued to. */
static struct json_object *
reply_delivered(size_t n)
{
	struct json_object *o;

	if ((o = reply_new(true, NULL)) != NULL)
		jh_add_int(o, "delivered", (int64_t)n);
	return o;
}

static struct json_object *
op_kick(struct relay *r, struct json_object *rq)
{
	(void)rq;
	pump_kick(r);
	return reply_new(true, NULL);
}

/*
 * {"op":"who"}: every connected extension with its socket count.
 * {"op":"who","extension":E}: that one only, {"ok":true,"extension":E,
 * "clients":n}, one lookup whatever the number of users.
 */
static struct json_object *
op_who(struct relay *r, struct json_object *rq)
{
	const char *ext = jh_get_str(rq, "extension");
	struct json_object *o, *exts;
	struct roster_user *u;

	if ((o = reply_new(true, NULL)) == NULL)
		return NULL;
	if (ext != NULL) {
		u = roster_by_ext(r, ext);
		jh_add_str(o, "extension", ext);
		jh_add_int(o, "clients", u != NULL ? u->nclients : 0);
		return o;
	}
	if ((exts = json_object_new_object()) == NULL) {
		json_object_put(o);
		return NULL;
	}
	for (u = r->users; u != NULL; u = u->next)
		if (u->nclients > 0 && u->extension[0] != '\0')
			jh_add_int(exts, u->extension, u->nclients);
	json_object_object_add(o, "extensions", exts);
	jh_add_int(o, "total_clients", (int64_t)r->nclients);
	return o;
}

/* A message straight to the sockets of an extension open now, outside the
 * stream (no seq, no replay): an operator's or a test's probe. */
static struct json_object *
op_deliver(struct relay *r, struct json_object *rq)
{
	const char *ext = jh_get_str(rq, "extension");
	struct json_object *msg;
	struct roster_user *u;
	struct msg *m;
	size_t n = 0;

	if (ext == NULL || ext[0] == '\0')
		return reply_new(false, "extension is required");
	if (!json_object_object_get_ex(rq, "message", &msg) ||
	    !json_object_is_type(msg, json_type_object))
		return reply_new(false, "message must be an object");
	if ((u = roster_by_ext(r, ext)) != NULL) {
		if ((m = msg_json(msg, false)) == NULL)
			return reply_new(false, "out of memory");
		n = fan_user(r, u, m, 0);
		msg_unref(m);
	}
	return reply_delivered(n);
}

static struct json_object *
op_call_invite(struct relay *r, struct json_object *rq)
{
	const char *id = jh_get_str(rq, "call_id");
	const char *caller = jh_get_str(rq, "caller_extension");
	const char *callee = jh_get_str(rq, "callee_extension");
	struct json_object *inv, *ini = NULL;
	struct err e = { 0 };
	size_t n;

	if (id == NULL || caller == NULL || callee == NULL)
		return reply_new(false,
		    "call_id, caller_extension and callee_extension are "
		    "required");
	if (!json_object_object_get_ex(rq, "invitation", &inv) ||
	    !json_object_is_type(inv, json_type_object))
		return reply_new(false, "invitation must be an object");
	if (json_object_object_get_ex(rq, "initiated", &ini) &&
	    !json_object_is_type(ini, json_type_object))
		return reply_new(false, "initiated must be an object");
	if (calls_invite(r, id, caller, callee, inv, ini, &n, &e) == -1) {
		log_msg(LOG_WARN, "call_invite %.64s: %s", id, e.msg);
		return reply_new(false, e.msg);
	}
	return reply_delivered(n);
}

static struct json_object *
op_call_end(struct relay *r, struct json_object *rq)
{
	const char *id = jh_get_str(rq, "call_id");
	const char *by = jh_get_str(rq, "by_extension");
	struct json_object *o;
	bool known;

	if (id == NULL)
		return reply_new(false, "call_id is required");
	known = calls_end(r, id, by != NULL ? by : "");
	if ((o = reply_new(true, NULL)) != NULL)
		jh_add_bool(o, "known", known);
	return o;
}

static int64_t
rss_kb(void)
{
	long long size, resident;
	FILE *f;
	int n;

	if ((f = fopen("/proc/self/statm", "r")) == NULL)
		return 0;
	n = fscanf(f, "%lld %lld", &size, &resident);
	fclose(f);
	if (n != 2)
		return 0;
	return (int64_t)resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static struct json_object *
op_stats(struct relay *r, struct json_object *rq)
{
	const struct relay_stats *s = &r->stats;
	struct roster_user *u;
	struct json_object *o;
	size_t online = 0;

	(void)rq;
	if ((o = reply_new(true, NULL)) == NULL)
		return NULL;
	for (u = r->users; u != NULL; u = u->next)
		if (u->nclients > 0)
			online++;
	jh_add_int(o, "clients", (int64_t)r->nclients);
	jh_add_int(o, "extensions", (int64_t)online);
	jh_add_int(o, "users", (int64_t)r->nusers);
	jh_add_int(o, "calls", (int64_t)r->ncalls);
	jh_add_int(o, "slow_closed", (int64_t)s->slow_closed);
	jh_add_int(o, "delivered", (int64_t)s->delivered);
	jh_add_int(o, "written", (int64_t)s->written);
	jh_add_int(o, "events", (int64_t)s->events);
	jh_add_int(o, "frames_in", (int64_t)s->frames_in);
	jh_add_int(o, "invalid_in", (int64_t)s->invalid_in);
	jh_add_int(o, "auth_failed", (int64_t)s->auth_failed);
	jh_add_int(o, "connections", (int64_t)s->connections);
	jh_add_int(o, "notify_rows", (int64_t)s->notify_rows);
	jh_add_int(o, "notify_cursor", r->cursor);
	jh_add_str(o, "epoch", r->epoch);
	jh_add_int(o, "replayed", (int64_t)s->replayed);
	jh_add_int(o, "revoked_closed", (int64_t)s->revoked_closed);
	jh_add_int(o, "rx_dropped", (int64_t)s->rx_dropped);
	jh_add_int(o, "outbox_dropped", (int64_t)s->outbox_dropped);
	jh_add_int(o, "queued_bytes", (int64_t)r->queued);
	jh_add_int(o, "ctl_requests", (int64_t)s->ctl_requests);
	jh_add_int(o, "uptime_s", (db_now_us() - r->started_us) / 1000000);
	jh_add_int(o, "rss_kb", rss_kb());
	return o;
}

/*
 * {"op":"stream_reset"}: the notify stream started anew behind the relay's
 * back (a restore replaced the table and drew a new epoch). The relay takes
 * the new epoch and goes on from the table's newest row, and every socket
 * is told resync_required, so browsers reload over REST instead of waiting
 * for seqs that will never come. {"ok":true,"delivered":n}.
 */
static struct json_object *
op_stream_reset(struct relay *r, struct json_object *rq)
{
	struct json_object *o;
	struct notify_stream s;
	struct err e = { 0 };
	struct msg *m;
	size_t n = 0;

	(void)rq;
	if (notify_stream_check(r->db, NULL, &e) == -1 ||
	    notify_stream_get(r->db, &s, &e) == -1) {
		log_msg(LOG_WARN, "stream_reset: %s", e.msg);
		return reply_new(false, e.msg);
	}
	log_msg(LOG_INFO, "notify stream reset: epoch %s from seq %" PRId64,
	    s.epoch, s.last);
	snprintf(r->epoch, sizeof(r->epoch), "%s", s.epoch);
	r->pruned_through = s.pruned_through;
	r->cursor = s.last;
	if ((o = notify_resync_message(&s)) == NULL)
		return reply_new(false, "out of memory");
	m = msg_json(o, false);
	json_object_put(o);
	if (m == NULL)
		return reply_new(false, "out of memory");
	n = fan_all(r, m, 0);
	msg_unref(m);
	return reply_delivered(n);
}

static const struct {
	const char *op;
	ctl_op fn;
} ops[] = {
	{ "kick", op_kick },
	{ "who", op_who },
	{ "deliver", op_deliver },
	{ "call_invite", op_call_invite },
	{ "call_end", op_call_end },
	{ "stats", op_stats },
	{ "stream_reset", op_stream_reset },
	{ "pbx_originate", pbx_ctl_originate },
	{ "pbx_hangup", pbx_ctl_hangup },
	{ "pbx_answer", pbx_ctl_answer },
	{ "pbx_active", pbx_ctl_active },
	{ "pbx_health", pbx_ctl_health },
	{ "pbx_endpoints", pbx_ctl_endpoints },
};

static struct json_object *
ctl_handle(struct relay *r, const char *line, size_t len)
{
	struct json_object *rq, *reply = NULL;
	const char *op;
	size_t i;

	r->stats.ctl_requests++;
	if ((rq = jh_parse(line, len, NULL)) == NULL ||
	    !json_object_is_type(rq, json_type_object)) {
		json_object_put(rq);
		return reply_new(false, "invalid json");
	}
	if ((op = jh_get_str(rq, "op")) == NULL)
		reply = reply_new(false, "op is required");
	else {
		for (i = 0; i < nitems(ops); i++)
			if (strcmp(ops[i].op, op) == 0) {
				reply = ops[i].fn(r, rq);
				break;
			}
		if (i == nitems(ops))
			reply = reply_new(false, "unknown op");
	}
	json_object_put(rq);
	return reply;
}

/* Queue the reply line and ask to write it. */
static int
ctl_reply(struct lws *wsi, struct ctl_conn *cc, struct json_object *reply)
{
	const char *text = NULL;
	size_t len = 0;

	if (reply != NULL)
		text = jh_text(reply, &len);
	if (text == NULL) {
		text = "{\"ok\":false,\"error\":\"out of memory\"}";
		len = strlen(text);
	}
	if ((cc->out = malloc(LWS_PRE + len + 1)) == NULL) {
		json_object_put(reply);
		return -1;
	}
	memcpy(cc->out + LWS_PRE, text, len);
	cc->out[LWS_PRE + len] = '\n';
	cc->outlen = len + 1;
	json_object_put(reply);
	lws_callback_on_writable(wsi);
	return 0;
}

static int
ctl_rx(struct relay *r, struct lws *wsi, struct ctl_conn *cc, const char *in,
    size_t len)
{
	const char *nl;
	size_t take, n;
	char *p;

	if (cc->out != NULL)
		return 0; /* one request per connection: the rest is ignored */
	nl = memchr(in, '\n', len);
	take = nl != NULL ? (size_t)(nl - in) : len;
	if (cc->inlen + take > CTL_LINE_MAX) {
		free(cc->in);
		cc->in = NULL;
		cc->inlen = 0;
		return ctl_reply(wsi, cc, reply_new(false, "line too long"));
	}
	if ((p = realloc(cc->in, cc->inlen + take + 1)) == NULL)
		return -1;
	cc->in = p;
	memcpy(cc->in + cc->inlen, in, take);
	cc->inlen += take;
	if (nl == NULL)
		return 0;
	n = cc->inlen;
	if (n > 0 && cc->in[n - 1] == '\r')
		n--;
	return ctl_reply(wsi, cc, ctl_handle(r, cc->in, n));
}

/*
 * The reply line, then (once lws has it all out) the close. A kicker does
 * not wait for its reply (ctl_kick closes right after sending), so a peer
 * already gone is normal: the connection is just closed, and RAW_CLOSE
 * frees what it held.
 */
static int
ctl_write(struct lws *wsi, struct ctl_conn *cc)
{
	if (cc->out == NULL)
		return 0;
	if (cc->sent)
		return -1;
	if (lws_write(wsi, cc->out + LWS_PRE, cc->outlen, LWS_WRITE_RAW) <
	    (int)cc->outlen) {
		log_msg(LOG_DEBUG, "ctl: peer left before its reply");
		return -1;
	}
	cc->sent = true;
	lws_callback_on_writable(wsi);
	return 0;
}

static int
ctl_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct relay *r = relay_from_wsi(wsi);
	struct ctl_conn *cc = user;

	switch (reason) {
	case LWS_CALLBACK_RAW_ADOPT:
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, CTL_IDLE_S);
		return 0;
	case LWS_CALLBACK_RAW_RX:
		return ctl_rx(r, wsi, cc, in, len);
	case LWS_CALLBACK_RAW_WRITEABLE:
		return ctl_write(wsi, cc);
	case LWS_CALLBACK_RAW_CLOSE:
		free(cc->in);
		free(cc->out);
		cc->in = NULL;
		cc->out = NULL;
		return 0;
	default:
		break;
	}
	return 0;
}

const struct lws_protocols ctl_protocols[] = {
	{
	    .name = "switchboard-ctl",
	    .callback = ctl_callback,
	    .per_session_data_size = sizeof(struct ctl_conn),
	    .rx_buffer_size = 4096,
	},
	{ .name = NULL },
};
