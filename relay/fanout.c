/*
 * fanout: an event to every socket it concerns, and the replays that
 * bring a reconnecting socket up to the live stream. Work is proportional
 * to the sockets concerned: a user or an extension is one lookup, "all"
 * and a role walk the roster, which holds connected users only.
 *
 * A socket that asked for ?since= is "replaying": live delivery skips it,
 * and it reads its rows from the database in chunks, each when its queue
 * has drained, up to the pump's cursor; when a chunk comes back short it
 * has caught up and live delivery (rows past the cursor) takes over. The
 * loop is single-threaded and the cursor moves only when a row has been
 * delivered live, so every row reaches it exactly once, in order.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/notify.h"
#include "relay/relay.h"

#define FAN_REPLAY_CHUNK 200

/*
 * user_status_changed in the REST form comes from programs that cannot see
 * the sockets: the relay fills in client_count and ws_connected.
 */
struct msg *
fan_event(struct relay *r, const char *payload, size_t len)
{
	struct json_object *o, *v;
	struct roster_user *u;
	const char *type;
	struct msg *m;
	int64_t n = 0;

	if (strstr(payload, "\"user_status_changed\"") == NULL ||
	    strstr(payload, "\"ws_connected\"") == NULL ||
	    (o = jh_parse(payload, len, NULL)) == NULL)
		return msg_new(payload + 1, len - 1, true);
	if ((type = jh_get_str(o, "type")) != NULL &&
	    strcmp(type, "user_status_changed") == 0 &&
	    json_object_object_get_ex(o, "user_id", &v) &&
	    json_object_is_type(v, json_type_int)) {
		if ((u = roster_by_id(r, json_object_get_int64(v))) != NULL)
			n = u->nclients;
		jh_add_int(o, "client_count", n);
		jh_add_bool(o, "ws_connected", n > 0);
	}
	m = msg_json(o, true);
	json_object_put(o);
	return m;
}

size_t
fan_user(struct relay *r, struct roster_user *u, struct msg *m, int64_t seq)
{
	struct client *c;
	size_t n = 0;

	/* A replaying socket gets stream events from its replay, in order;
	 * what is outside the stream (seq 0) is never replayed: now or not
	 * at all. */
	for (c = u->clients; c != NULL; c = c->next)
		if ((seq == 0 || !c->replaying) && sock_send(r, c, m, seq))
			n++;
	r->stats.delivered += n;
	return n;
}

size_t
fan_all(struct relay *r, struct msg *m, int64_t seq)
{
	return fan_role(r, NULL, m, seq);
}

size_t
fan_role(struct relay *r, const char *role, struct msg *m, int64_t seq)
{
	struct roster_user *u;
	size_t n = 0;

	for (u = r->users; u != NULL; u = u->next)
		if (u->clients != NULL &&
		    (role == NULL || strcmp(u->role, role) == 0))
			n += fan_user(r, u, m, seq);
	return n;
}

struct replay {
	struct relay *r;
	struct client *c;
	bool stopped;
};

static int
replay_row(void *arg, const struct notify_event *ev)
{
	struct replay *rp = arg;
	struct client *c = rp->c;
	struct msg *m;
	bool ok;

	c->since = ev->id;
	/* Revocations are for the relay: this socket's token is newer. */
	if (notify_is_revocation(ev->target, ev->payload, ev->len))
		return 0;
	if ((m = fan_event(rp->r, ev->payload, ev->len)) == NULL)
		return 0;
	ok = sock_send(rp->r, c, m, ev->id);
	msg_unref(m);
	rp->r->stats.replayed++;
	/* Half the queue is plenty for one turn: the rest on the next. */
	if (!ok || c->qbytes > RELAY_Q_BYTES_MAX / 2 ||
	    c->qlen > RELAY_Q_MAX / 2) {
		rp->stopped = true;
		return 1;
	}
	return 0;
}

void
fan_replay(struct relay *r, struct client *c)
{
	struct replay rp = { .r = r, .c = c };
	struct roster_user *u = c->user;
	struct err e = { 0 };
	int n;

	if (!c->replaying || c->closing || u == NULL)
		return;
	n = notify_read_for(r->db, u->id, u->extension, u->role, c->since,
	    r->cursor, FAN_REPLAY_CHUNK, replay_row, &rp, &e);
	if (n == -1) {
		/* The socket waits for its next WRITEABLE to try again. */
		log_msg(LOG_WARN, "replay for extension %s: %s", u->extension,
		    e.msg);
		lws_callback_on_writable(c->wsi);
		return;
	}
	if (!rp.stopped && n < FAN_REPLAY_CHUNK)
		c->replaying = false;
	else if (c->qlen == 0)
		lws_callback_on_writable(c->wsi);
}
