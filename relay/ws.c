/*
 * ws: the browser WebSocket protocol (contract §1.7) on the "ws" vhost.
 * Sockets are authenticated at the upgrade, bound to one user and
 * extension, and exchange one JSON object per frame.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#include "lib/auth.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/ticket.h"
#include "lib/users.h"
#include "relay/relay.h"

#define WS_ARG_MAX        2048 /* one ?name=value, the token included */
#define WS_HTTP_REPLY_MAX 1024
#define WS_TIMER_MAX_S    86400 /* expiry timers are re-armed past this */

typedef void (*ws_handler)(struct relay *, struct client *,
    struct json_object *, const char *);

static void reply_obj(struct relay *r, struct client *c, struct json_object *o);

/* ---- the upgrade ---- */

/* A JSON error as the whole HTTP reply to a refused upgrade. */
static int
http_refuse(struct lws *wsi, unsigned int status, const char *text)
{
	unsigned char buf[LWS_PRE + WS_HTTP_REPLY_MAX];
	unsigned char *start = buf + LWS_PRE, *p = start;
	unsigned char *end = buf + sizeof(buf);
	struct json_object *o;
	const char *body;
	char clen[24];
	size_t blen = 0;
	int n, rc = -1;

	if ((o = json_object_new_object()) == NULL)
		return -1;
	jh_add_str(o, "error", text);
	if ((body = jh_text(o, &blen)) == NULL)
		goto out;
	n = snprintf(clen, sizeof(clen), "%zu", blen);
	if (lws_add_http_header_status(wsi, status, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
		(const unsigned char *)"application/json", 16, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
		(const unsigned char *)clen, n, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
		(const unsigned char *)"close", 5, &p, end) ||
	    lws_finalize_http_header(wsi, &p, end) || (size_t)(end - p) < blen)
		goto out;
	memcpy(p, body, blen);
	p += blen;
	if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP) ==
	    (int)(p - start))
		rc = 0;
out:
	json_object_put(o);
	return rc;
}

/* Refuse the upgrade with status; >0 tells lws the reply is written. */
static int
refuse(struct relay *r, struct lws *wsi, unsigned int status, const char *text)
{
	r->stats.auth_failed++;
	log_msg(LOG_INFO, "websocket refused: %u %s", status, text);
	return http_refuse(wsi, status, text) == 0 ? 1 : -1;
}

static bool
parse_since(const char *s, int64_t *v)
{
	char *end;
	long long x;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*v = x;
	return true;
}

/*
 * The credential in the URL: a single-use ticket (POST /protected/ws-ticket),
 * or on the legacy path the token itself. 1 with au and claims (user, gen,
 * exp) filled, 0 when the URL carries neither, -1 with e set.
 */
static int
ws_credential(struct relay *r, struct lws *wsi, struct auth_user *au,
    struct auth_claims *claims, struct err *e)
{
	char arg[WS_ARG_MAX];
	const char *v;
	int rc;

	if ((v = lws_get_urlarg_by_name(wsi, "ticket=", arg, sizeof(arg))) !=
	    NULL)
		rc =
		    ticket_redeem(r->db, v, (int64_t)time(NULL), au, claims, e);
	else if ((v = lws_get_urlarg_by_name(wsi, "token=", arg,
		      sizeof(arg))) != NULL &&
		 v[0] != '\0')
		rc = auth_token_verify(r->db, &r->cfg, v, claims, au, e);
	else
		return 0;
	explicit_bzero(arg, sizeof(arg));
	return rc == -1 ? -1 : 1;
}

/*
 * HTTP_CONFIRM_UPGRADE rather than FILTER_PROTOCOL_CONNECTION: here the
 * socket is still HTTP, so a refusal is a real 401 the browser (and nginx)
 * can read; from FILTER lws can only drop the connection. The result waits
 * in r->pending for FILTER, which lws calls for this same wsi before it
 * returns to the loop.
 */
static int
ws_authenticate(struct relay *r, struct lws *wsi, const char *upgrade)
{
	char arg[WS_ARG_MAX], ext[sizeof(((struct auth_user *)0)->extension)];
	struct relay_pending *p = &r->pending;
	struct auth_claims claims;
	struct roster_user *u;
	struct auth_user au;
	struct err e = { 0 };
	const char *v;
	int64_t since = 0;
	bool has_since = false;
	int rc;

	memset(p, 0, sizeof(*p));
	if (upgrade == NULL || strcasecmp(upgrade, "websocket") != 0)
		return -1;
	ext[0] = '\0';
	if ((v = lws_get_urlarg_by_name(wsi, "extension=", arg, sizeof(arg))) !=
		NULL &&
	    v[0] != '\0') {
		if (strlen(v) >= sizeof(ext))
			return refuse(r, wsi, 400,
			    "Invalid extension parameter");
		snprintf(ext, sizeof(ext), "%s", v);
	}
	if ((v = lws_get_urlarg_by_name(wsi, "since=", arg, sizeof(arg))) !=
	    NULL) {
		if (!parse_since(v, &since))
			return refuse(r, wsi, 400, "Invalid since parameter");
		has_since = true;
	}
	if ((v = lws_get_urlarg_by_name(wsi, "epoch=", arg, sizeof(arg))) !=
	    NULL) {
		if (strlen(v) >= sizeof(p->epoch))
			return refuse(r, wsi, 400, "Invalid epoch parameter");
		snprintf(p->epoch, sizeof(p->epoch), "%s", v);
		p->has_epoch = true;
	}
	if ((rc = ws_credential(r, wsi, &au, &claims, &e)) != 0) {
		if (rc == -1) {
			if (e.code == ERR_AUTH)
				return refuse(r, wsi, 401, e.msg);
			log_msg(LOG_ERROR, "websocket auth: %s", e.msg);
			if (e.code == ERR_BUSY)
				return refuse(r, wsi, 503,
				    "Service temporarily unavailable");
			return refuse(r, wsi, 500, "Internal server error");
		}
		if (ext[0] != '\0' && strcmp(ext, au.extension) != 0)
			return refuse(r, wsi, 401,
			    "Extension does not match token");
		p->au = au;
		p->exp = claims.exp;
		p->gen = claims.gen;
	} else if (!r->cfg.ws_legacy_extension_auth) {
		return refuse(r, wsi, 401, "Token required");
	} else if (ext[0] == '\0') {
		return refuse(r, wsi, 400, "Extension parameter required");
	} else if ((u = roster_load_ext(r, ext)) == NULL) {
		return refuse(r, wsi, 401, "Unknown extension");
	} else {
		p->au.id = u->id;
		roster_release(r, u);
		p->gen = -1;
	}
	if ((u = roster_by_id(r, p->au.id)) != NULL &&
	    u->nclients >= (unsigned)r->sockets_max)
		return refuse(r, wsi, 429, "Too many connections");
	p->wsi = wsi;
	p->since = since;
	p->has_since = has_since;
	return 0;
}

/* FILTER_PROTOCOL_CONNECTION: c is the ws session, zeroed by lws. The
 * roster entry is made here, not at CONFIRM_UPGRADE: nothing must hold a
 * pointer across an upgrade that may still fail. */
static int
ws_bind(struct relay *r, struct lws *wsi, struct client *c)
{
	struct relay_pending *p = &r->pending;
	struct roster_user *u;

	if (p->wsi != wsi || p->au.id == 0) {
		memset(p, 0, sizeof(*p));
		log_msg(LOG_WARN, "websocket upgrade without authentication");
		return -1;
	}
	u = p->gen >= 0 ? roster_update(r, &p->au)
			: roster_load_id(r, p->au.id);
	if (u == NULL) {
		memset(p, 0, sizeof(*p));
		return -1;
	}
	c->wsi = wsi;
	c->user = u;
	c->exp = p->exp;
	c->gen = p->gen;
	c->rx_frames = r->rx_frames_s > 0 ? RELAY_RX_FRAMES_BURST : 0;
	c->rx_bytes = r->rx_bytes_s > 0 ? RELAY_RX_BYTES_BURST : 0;
	c->rx_at_us = lws_now_usecs();
	/* Held by the socket from here; attached at ESTABLISHED. */
	c->attached = false;
	return 0;
}

/* Arm the expiry timer: at most WS_TIMER_MAX_S ahead, re-armed then, so
 * no exp (up to INT64_MAX) can overflow the microseconds. */
static void
expiry_arm(struct lws *wsi, const struct client *c)
{
	int64_t now = (int64_t)time(NULL), left;

	if (c->exp <= 0)
		return;
	left = c->exp > now ? c->exp - now : 0;
	if (left > WS_TIMER_MAX_S)
		left = WS_TIMER_MAX_S;
	lws_set_timer_usecs(wsi,
	    left > 0 ? (lws_usec_t)left * LWS_USEC_PER_SEC : 1);
}

/*
 * The welcome names the stream (epoch) and where it stands (last_seq): a
 * browser keeps both and, after any loss of its socket, reconnects with
 * ?since=<last seq it saw>&epoch=<epoch>. A since it cannot be replayed
 * from (another epoch, older than what is kept, ahead of the stream) gets
 * resync_required with the same two fields, then live events.
 */
static void
ws_established(struct relay *r, struct lws *wsi, struct client *c)
{
	struct relay_pending *p = &r->pending;
	struct notify_stream s;
	struct json_object *o;
	bool since = false, replay = false;

	s.last = r->cursor;
	s.pruned_through = r->pruned_through;
	snprintf(s.epoch, sizeof(s.epoch), "%s", r->epoch);
	if (p->wsi == wsi) {
		since = p->has_since;
		replay = since && notify_stream_replayable(&s,
				      p->has_epoch ? p->epoch : NULL, p->since);
		c->since = p->since;
	}
	memset(p, 0, sizeof(*p));
	if ((o = json_object_new_object()) != NULL) {
		jh_add_str(o, "type", "welcome");
		jh_add_str(o, "status", "connected");
		jh_add_int(o, "timestamp", 0);
		jh_add_str(o, "epoch", r->epoch);
		jh_add_int(o, "last_seq", r->cursor);
		reply_obj(r, c, o);
	}
	if (since && !replay)
		reply_obj(r, c, notify_resync_message(&s));
	c->replaying = replay;
	if (sock_attach(r, c)) {
		presence_changed(r, c->user);
		calls_present(r, c->user);
	}
	fan_replay(r, c);
	expiry_arm(wsi, c);
}

/* ---- replies and events ---- */

static void
reply_obj(struct relay *r, struct client *c, struct json_object *o)
{
	struct msg *m;

	if (o == NULL)
		return;
	if ((m = msg_json(o, false)) != NULL) {
		sock_send(r, c, m, 0);
		msg_unref(m);
	}
	json_object_put(o);
}

static void
ws_error(struct relay *r, struct client *c, const char *text, const char *ref)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return;
	jh_add_str(o, "type", "error");
	jh_add_str(o, "error", text);
	if (ref != NULL)
		jh_add_str(o, "ref", ref);
	reply_obj(r, c, o);
}

/* ---- inbound messages ---- */

static void
ws_ping(struct relay *r, struct client *c, struct json_object *in,
    const char *type)
{
	struct json_object *o;

	(void)in;
	(void)type;
	if ((o = json_object_new_object()) == NULL)
		return;
	jh_add_str(o, "type", "pong");
	jh_add_int(o, "timestamp", (int64_t)time(NULL));
	reply_obj(r, c, o);
}

/*
 * The raw object goes on with every field, "from" being the sender's own
 * extension whatever it said. Signalling (call_status and webrtc_*) only
 * flows between the two parties of a call the relay knows, and outside the
 * stream (no seq): it is only meaningful to the sockets open now, and a
 * replayed offer or ICE candidate of a call long over would be nonsense.
 */
static void
ws_forward(struct relay *r, struct client *c, struct json_object *in,
    const char *type)
{
	const char *to = jh_get_str(in, "to"), *hint;
	struct roster_user *dst;
	struct call *call;
	char text[96];
	struct msg *m;

	if (to == NULL || to[0] == '\0') {
		ws_error(r, c, "invalid message", type);
		return;
	}
	if ((hint = jh_get_str(in, "call_id")) == NULL)
		hint = jh_get_str(in, "channel");
	if ((call = calls_find_peer(c->user, to, hint)) == NULL &&
	    cluster_on(r))
		call = calls_adopt(r, c->user, to, hint);
	if (call == NULL || !calls_allows(call, type)) {
		snprintf(text, sizeof(text), "no active call with %.40s", to);
		ws_error(r, c, text, type);
		return;
	}
	dst = calls_peer(call, c->user);
	jh_add_str(in, "from", c->user->extension);
	if ((m = msg_json(in, false)) != NULL) {
		fan_user(r, dst, m, 0);
		msg_unref(m);
	}
	cluster_send(r, dst, in);
	calls_signal(r, call, c->user, type);
}

static void
ws_call_action(struct relay *r, struct client *c, struct json_object *in,
    const char *type)
{
	const char *channel = jh_get_str(in, "channel");
	struct call *call = NULL;

	if (channel != NULL && (call = calls_find(c->user, channel)) == NULL &&
	    cluster_on(r))
		call = calls_adopt(r, c->user, NULL, channel);
	if (channel == NULL || call == NULL) {
		log_msg(LOG_DEBUG, "%s without a live call ignored", type);
		return;
	}
	if (strcmp(type, "hangup") == 0)
		calls_hangup(r, call, c->user);
	else
		calls_answer(r, call, c->user);
}

/* The statuses REST accepts (lib/users.h); everyone hears the latest
 * one, coalesced per user (presence.c). */
static void
ws_user_status(struct relay *r, struct client *c, struct json_object *in,
    const char *type)
{
	const char *status = jh_get_str(in, "status");

	if (!users_status_valid(status)) {
		ws_error(r, c, USERS_STATUS_ERROR, type);
		return;
	}
	presence_said(r, c->user, "user_status", status);
}

static void
ws_user_online(struct relay *r, struct client *c, struct json_object *in,
    const char *type)
{
	(void)in;
	presence_said(r, c->user, "user_status_changed",
	    strcmp(type, "user_online") == 0 ? "online" : "offline");
}

static const struct {
	const char *type;
	ws_handler fn;
} handlers[] = {
	{ "ping", ws_ping },
	{ "call_status", ws_forward },
	{ "webrtc_call_accepted", ws_forward },
	{ "webrtc_call_rejected", ws_forward },
	{ "webrtc_offer", ws_forward },
	{ "webrtc_answer", ws_forward },
	{ "webrtc_ice_candidate", ws_forward },
	{ "webrtc_call_ended", ws_forward },
	{ "hangup", ws_call_action },
	{ "answer_call", ws_call_action },
	{ "user_status", ws_user_status },
	{ "user_online", ws_user_online },
	{ "user_offline", ws_user_online },
};

static void
ws_message(struct relay *r, struct client *c, const char *buf, size_t len,
    bool binary)
{
	struct json_object *o = NULL;
	const char *type = NULL;
	size_t i;

	r->stats.frames_in++;
	if (c->closing)
		return;
	if (!binary)
		o = jh_parse(buf, len, NULL);
	if (o == NULL || !json_object_is_type(o, json_type_object) ||
	    (type = jh_get_str(o, "type")) == NULL) {
		r->stats.invalid_in++;
		ws_error(r, c, "invalid message", NULL);
		json_object_put(o);
		return;
	}
	for (i = 0; i < nitems(handlers); i++)
		if (strcmp(handlers[i].type, type) == 0) {
			handlers[i].fn(r, c, o, type);
			break;
		}
	if (i == nitems(handlers))
		log_msg(LOG_DEBUG, "message type '%.40s' from %s ignored", type,
		    c->user->extension);
	json_object_put(o);
}

static int
close_with(struct lws *wsi, int code, const char *why)
{
	unsigned char reason[64];
	size_t n = strlen(why) < sizeof(reason) ? strlen(why) : sizeof(reason);

	memcpy(reason, why, n);
	lws_close_reason(wsi, (enum lws_close_status)code, reason, n);
	return -1;
}

/*
 * Whether s is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF).
 */
static bool
utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf) {
			n = 1;
			cp = s[i] & 0x1f;
		} else if (s[i] >= 0xe0 && s[i] <= 0xef) {
			n = 2;
			cp = s[i] & 0x0f;
		} else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
			n = 3;
			cp = s[i] & 0x07;
		} else
			return false;
		if (len - i <= n)
			return false;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 &&
			(cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += n + 1;
	}
	return true;
}

/*
 * The token bucket: every socket may send r->rx_frames_s messages and
 * r->rx_bytes_s bytes a second, with bursts up to RELAY_RX_FRAMES_BURST
 * and RELAY_RX_BYTES_BURST. Past that its messages are dropped unread and
 * counted (stats rx_dropped), and it is told once per burst with an error
 * "rate limit exceeded": a client that floods loses its own messages, not
 * its peers' sockets. Dropping rather than closing with 1008: a socket
 * closed with a flood still unread is reset, and the proxy in front logs
 * that reset with the request line, the token in it. A rate of 0 turns a
 * limit off. False when c is over.
 */
static bool
rx_charge(struct relay *r, struct client *c, size_t bytes, bool frame)
{
	int64_t now = lws_now_usecs();
	double dt = (double)(now - c->rx_at_us) / 1e6;

	if (dt < 0)
		dt = 0;
	c->rx_at_us = now;
	if (r->rx_frames_s > 0) {
		c->rx_frames += dt * r->rx_frames_s;
		if (c->rx_frames > RELAY_RX_FRAMES_BURST)
			c->rx_frames = RELAY_RX_FRAMES_BURST;
		if (frame && c->rx_frames < 1)
			return false;
		if (frame)
			c->rx_frames -= 1;
	}
	if (r->rx_bytes_s > 0) {
		c->rx_bytes += dt * r->rx_bytes_s;
		if (c->rx_bytes > RELAY_RX_BYTES_BURST)
			c->rx_bytes = RELAY_RX_BYTES_BURST;
		/* What is dropped costs nothing: the bucket never goes into
		 * debt, so a client that stops flooding is heard again at
		 * once. */
		if (c->rx_bytes < (double)bytes)
			return false;
		c->rx_bytes -= (double)bytes;
	}
	return true;
}

/* c went over its limit: the message is dropped; the first drop of a
 * burst is answered. */
static void
rx_drop(struct relay *r, struct client *c)
{
	r->stats.rx_dropped++;
	if (c->rx_limited)
		return;
	c->rx_limited = true;
	log_msg(LOG_INFO, "socket of extension %s: rate limit exceeded",
	    c->user->extension);
	ws_error(r, c, "rate limit exceeded", NULL);
}

/* A whole message: checked, then handled. -1 closes the socket. */
static int
ws_complete(struct relay *r, struct client *c, const char *buf, size_t len,
    bool binary)
{
	if (c->rx_dropping || !rx_charge(r, c, 0, true)) {
		c->rx_dropping = false;
		rx_drop(r, c);
		return 0;
	}
	c->rx_limited = false;
	if (!binary && !utf8_valid((const unsigned char *)buf, len)) {
		r->stats.invalid_in++;
		return close_with(c->wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD,
		    "invalid utf-8");
	}
	ws_message(r, c, buf, len, binary);
	return 0;
}

/*
 * Fragments and frames longer than the rx buffer arrive in pieces; they
 * are gathered in a buffer that exists only while a message is incomplete.
 * A message that would pass RELAY_WS_MSG_MAX closes the socket with 1009.
 */
static int
ws_receive(struct relay *r, struct client *c, const char *in, size_t len)
{
	size_t more = lws_remaining_packet_payload(c->wsi), need;
	bool final = lws_is_final_fragment(c->wsi);
	int rc;
	char *p;

	if (c->closing || c->user == NULL)
		return 0;
	if (!rx_charge(r, c, len, false) || c->rx_dropping) {
		/* The rest of this message goes unread too. */
		free(c->rx);
		c->rx = NULL;
		c->rxlen = 0;
		c->rx_dropping = true;
		if (final)
			return ws_complete(r, c, NULL, 0, false);
		return 0;
	}
	if (c->rx == NULL && final)
		return ws_complete(r, c, in, len, lws_frame_is_binary(c->wsi));
	if (c->rx == NULL)
		c->rx_binary = lws_frame_is_binary(c->wsi);
	need = (size_t)c->rxlen + len + more;
	if (need > RELAY_WS_MSG_MAX) {
		log_msg(LOG_INFO, "socket of extension %s: message too large",
		    c->user->extension);
		return close_with(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
		    "message too large");
	}
	if ((p = realloc(c->rx, need > 0 ? need : 1)) == NULL)
		return -1;
	c->rx = p;
	memcpy(c->rx + c->rxlen, in, len);
	c->rxlen += (uint32_t)len;
	if (final) {
		rc = ws_complete(r, c, c->rx, c->rxlen, c->rx_binary);
		free(c->rx);
		c->rx = NULL;
		c->rxlen = 0;
		return rc;
	}
	return 0;
}

void
ws_user_gone(struct relay *r, struct roster_user *u)
{
	presence_changed(r, u);
	/* While stopping the calls are already forgotten. */
	calls_absent(r, u);
}

static int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct relay *r = relay_from_wsi(wsi);
	struct client *c = user;
	struct roster_user *u;
	int rc;

	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return ws_authenticate(r, wsi, in);
	case LWS_CALLBACK_HTTP:
		if (http_refuse(wsi, 400, "WebSocket upgrade required") == -1)
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return ws_bind(r, wsi, c);
	case LWS_CALLBACK_ESTABLISHED:
		ws_established(r, wsi, c);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		return ws_receive(r, c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if ((rc = sock_write(r, c)) == 0 && c->replaying &&
		    c->qlen == 0)
			fan_replay(r, c);
		return rc;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		wake_check(r);
		return 0;
	case LWS_CALLBACK_TIMER:
		if (c->exp > (int64_t)time(NULL)) {
			expiry_arm(wsi, c);
			return 0;
		}
		return close_with(wsi, RELAY_CLOSE_EXPIRED, "token expired");
	case LWS_CALLBACK_CLOSED:
		u = c->user;
		if (sock_detach(r, c))
			ws_user_gone(r, u);
		c->user = NULL;
		if (u != NULL)
			roster_release(r, u);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols ws_protocols[] = {
	{
	    .name = "switchboard",
	    .callback = ws_callback,
	    .per_session_data_size = sizeof(struct client),
	    .rx_buffer_size = RELAY_WS_RX_BUF,
	    .tx_packet_size = RELAY_WS_TX_PACKET,
	},
	{ .name = NULL },
};
