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
#include "relay/relay.h"

#define WS_ARG_MAX        2048 /* one ?name=value, the token included */
#define WS_STATUS_MAX     32   /* user_status "status" */
#define WS_HTTP_REPLY_MAX 1024

typedef void (*ws_handler)(struct relay *, struct client *,
    struct json_object *, const char *);

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
 * or on the legacy path the token itself. 1 with au and *exp (the token's
 * expiry) filled, 0 when the URL carries neither, -1 with e set.
 */
static int
ws_credential(struct relay *r, struct lws *wsi, struct auth_user *au,
    int64_t *exp, struct err *e)
{
	struct auth_claims claims;
	char arg[WS_ARG_MAX];
	const char *v;
	int rc;

	if ((v = lws_get_urlarg_by_name(wsi, "ticket=", arg, sizeof(arg))) !=
	    NULL) {
		rc = ticket_redeem(r->db, v, (int64_t)time(NULL), au, exp, e);
	} else if ((v = lws_get_urlarg_by_name(wsi, "token=", arg,
			sizeof(arg))) != NULL &&
		   v[0] != '\0') {
		if ((rc = auth_token_verify(r->db, &r->cfg, v, &claims, au,
			 e)) == 0)
			*exp = claims.exp;
	} else {
		return 0;
	}
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
	struct hub_user *u = NULL;
	struct auth_user au;
	struct err e = { 0 };
	const char *v;
	int64_t since = 0, exp = 0;
	bool has_since = false;
	int rc;

	memset(&r->pending, 0, sizeof(r->pending));
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
	if ((rc = ws_credential(r, wsi, &au, &exp, &e)) != 0) {
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
		if ((u = hub_user_update(r, &au)) == NULL)
			return refuse(r, wsi, 500, "Internal server error");
		r->pending.exp = exp;
	} else if (!r->cfg.ws_legacy_extension_auth) {
		return refuse(r, wsi, 401, "Token required");
	} else if (ext[0] == '\0') {
		return refuse(r, wsi, 400, "Extension parameter required");
	} else if ((u = hub_user_by_ext(r, ext, true)) == NULL) {
		return refuse(r, wsi, 401, "Unknown extension");
	}
	r->pending.wsi = wsi;
	r->pending.user = u;
	r->pending.since = since;
	r->pending.has_since = has_since;
	return 0;
}

/* FILTER_PROTOCOL_CONNECTION: c is the ws session, zeroed by lws. */
static int
ws_bind(struct relay *r, struct lws *wsi, struct client *c)
{
	if (r->pending.wsi != wsi || r->pending.user == NULL) {
		memset(&r->pending, 0, sizeof(r->pending));
		log_msg(LOG_WARN, "websocket upgrade without authentication");
		return -1;
	}
	c->wsi = wsi;
	c->user = r->pending.user;
	c->since = r->pending.since;
	c->has_since = r->pending.has_since;
	c->exp = r->pending.exp;
	memset(&r->pending, 0, sizeof(r->pending));
	return 0;
}

static void
ws_established(struct relay *r, struct lws *wsi, struct client *c)
{
	time_t now = time(NULL);

	hub_reply(r, c, r->welcome);
	if (c->has_since)
		hub_replay(r, c, c->since);
	hub_attach(r, c);
	if (c->exp > 0)
		lws_set_timer_usecs(wsi,
		    c->exp > now ? (lws_usec_t)(c->exp - now) * LWS_USEC_PER_SEC
				 : 1);
}

/* ---- replies and events ---- */

static void
reply_obj(struct relay *r, struct client *c, struct json_object *o)
{
	struct msg *m;

	if (o == NULL)
		return;
	if ((m = msg_json(o, false)) != NULL) {
		hub_reply(r, c, m);
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

/* {"type","from","status","timestamp"} from c's user to everyone. */
static void
push_status(struct relay *r, struct client *c, const char *type,
    const char *status)
{
	struct json_object *o;
	struct msg *m;

	if ((o = json_object_new_object()) == NULL)
		return;
	jh_add_str(o, "type", type);
	jh_add_str(o, "from", c->user->extension);
	jh_add_str(o, "status", status);
	jh_add_int(o, "timestamp", (int64_t)time(NULL));
	if ((m = msg_json(o, true)) != NULL) {
		hub_push_all(r, m);
		msg_unref(m);
	}
	json_object_put(o);
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
 * extension whatever it said. WebRTC signalling only flows between the two
 * parties of a live call.
 */
static void
ws_forward(struct relay *r, struct client *c, struct json_object *in,
    const char *type)
{
	bool webrtc = strncmp(type, "webrtc_", 7) == 0;
	const char *to = jh_get_str(in, "to"), *hint;
	struct call *call = NULL;
	struct hub_user *dst;
	char text[96];
	struct msg *m;

	if (to == NULL || to[0] == '\0') {
		if (webrtc)
			ws_error(r, c, "invalid message", type);
		return;
	}
	if (webrtc) {
		if ((hint = jh_get_str(in, "call_id")) == NULL)
			hint = jh_get_str(in, "channel");
		if ((call = calls_find_peer(c->user, to, hint)) == NULL ||
		    !calls_allows(call, type)) {
			snprintf(text, sizeof(text),
			    "no active call with %.40s", to);
			ws_error(r, c, text, type);
			return;
		}
		dst = calls_peer(call, c->user);
	} else if ((dst = hub_user_by_ext(r, to, true)) == NULL) {
		log_msg(LOG_DEBUG, "%s to unknown extension dropped", type);
		return;
	}
	json_object_object_add(in, "from",
	    json_object_new_string(c->user->extension));
	if ((m = msg_json(in, true)) != NULL) {
		hub_push(r, dst, m);
		msg_unref(m);
	}
	if (call != NULL)
		calls_signal(r, call, c->user, type);
}

static void
ws_call_action(struct relay *r, struct client *c, struct json_object *in,
    const char *type)
{
	const char *channel = jh_get_str(in, "channel");
	struct call *call;

	if (channel == NULL || (call = calls_find(c->user, channel)) == NULL) {
		log_msg(LOG_DEBUG, "%s without a live call ignored", type);
		return;
	}
	if (strcmp(type, "hangup") == 0)
		calls_hangup(r, call, c->user);
	else
		calls_answer(r, call, c->user);
}

static void
ws_user_status(struct relay *r, struct client *c, struct json_object *in,
    const char *type)
{
	struct json_object *v;

	if (!json_object_object_get_ex(in, "status", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) > WS_STATUS_MAX) {
		ws_error(r, c, "invalid message", type);
		return;
	}
	push_status(r, c, "user_status", json_object_get_string(v));
}

static void
ws_user_online(struct relay *r, struct client *c, struct json_object *in,
    const char *type)
{
	(void)in;
	push_status(r, c, "user_status_changed",
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
	if (c->slow)
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
 * Fragments and frames longer than the rx buffer arrive in pieces; they
 * are gathered in a buffer that exists only while a message is incomplete.
 * A message that would pass RELAY_WS_MSG_MAX closes the socket with 1009.
 */
static int
ws_receive(struct relay *r, struct client *c, const char *in, size_t len)
{
	size_t more = lws_remaining_packet_payload(c->wsi), need;
	bool final = lws_is_final_fragment(c->wsi);
	char *p;

	if (c->rx == NULL && final) {
		ws_message(r, c, in, len, lws_frame_is_binary(c->wsi));
		return 0;
	}
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
		ws_message(r, c, c->rx, c->rxlen, c->rx_binary);
		free(c->rx);
		c->rx = NULL;
		c->rxlen = 0;
	}
	return 0;
}

static int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct relay *r = relay_from_wsi(wsi);
	struct client *c = user;

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
		return hub_write(r, c);
	case LWS_CALLBACK_TIMER:
		return close_with(wsi, RELAY_CLOSE_EXPIRED, "token expired");
	case LWS_CALLBACK_CLOSED:
		hub_detach(r, c);
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
