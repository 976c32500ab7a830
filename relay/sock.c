/*
 * sock: one browser socket's side of delivery. Each socket has a bounded
 * queue of shared messages drained one frame per WRITEABLE.
 *
 * The queue is hand-rolled rather than an lws_ring: an lws_ring has a fixed
 * capacity allocated when it is created, and RELAY_Q_MAX entries would cost
 * every idle socket 16 KiB, twice the per-socket memory budget. This one
 * starts at SOCK_QCAP_MIN entries (128 bytes), doubles up to RELAY_Q_MAX,
 * and a grown one is freed when it empties; the smallest stays, so an
 * event to everyone costs no allocation per socket.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "lib/log.h"
#include "relay/relay.h"

#define SOCK_QCAP_MIN    8
#define SOCK_SEQ_PREFIX  32 /* {"seq":<int64>, */
#define SOCK_WRITE_BURST 16

static void reap(lws_sorted_usec_list_t *sul);

static void
queue_clear(struct relay *r, struct client *c)
{
	while (c->qlen > 0) {
		msg_unref(c->q[c->qhead].m);
		c->qhead = (uint16_t)((c->qhead + 1) % c->qcap);
		c->qlen--;
	}
	free(c->q);
	c->q = NULL;
	c->qcap = c->qhead = 0;
	r->queued -= c->qbytes;
	c->qbytes = 0;
}

/*
 * A closing socket leaves its user at once (it gets nothing more, and no
 * longer counts as connected) but stays open until it can take its close
 * frame. Both steps are deferred: we may be inside another socket's
 * callback or in the middle of a delivery to this user. A peer that never
 * drains enough to become writeable is cut after RELAY_SLOW_KILL_S.
 */
void
sock_close(struct relay *r, struct client *c, int code, const char *reason)
{
	(void)reason;
	if (c->closing)
		return;
	c->closing = true;
	c->close_code = (uint16_t)code;
	c->replaying = false;
	queue_clear(r, c);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, RELAY_SLOW_KILL_S);
	lws_callback_on_writable(c->wsi);
	if (!c->attached || r->stopping)
		return;
	c->next_closing = r->closing;
	r->closing = c;
	lws_sul_schedule(r->ctx, 0, &r->sul_reap, reap, 1);
}

static void
too_slow(struct relay *r, struct client *c)
{
	r->stats.slow_closed++;
	log_msg(LOG_INFO, "socket of extension %s closed: too slow",
	    c->user != NULL ? c->user->extension : "?");
	sock_close(r, c, RELAY_CLOSE_SLOW, "client too slow");
}

bool
sock_send(struct relay *r, struct client *c, struct msg *m, int64_t seq)
{
	struct qent *q;
	size_t cap, i;

	if (m == NULL || c->closing || r->stopping)
		return false;
	if (c->qlen >= RELAY_Q_MAX ||
	    (uint64_t)c->qbytes + m->len > RELAY_Q_BYTES_MAX ||
	    r->queued + m->len > RELAY_QUEUED_MAX) {
		too_slow(r, c);
		return false;
	}
	if (c->qlen == c->qcap) {
		cap = c->qcap ? c->qcap * 2u : SOCK_QCAP_MIN;
		if ((q = malloc(cap * sizeof(*q))) == NULL) {
			too_slow(r, c);
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
	r->queued += m->len;
	if (c->qlen++ == 0)
		lws_callback_on_writable(c->wsi);
	return true;
}

static const char *
close_reason(int code)
{
	switch (code) {
	case RELAY_CLOSE_REVOKED:
		return "session revoked";
	case RELAY_CLOSE_EXPIRED:
		return "token expired";
	default:
		return "client too slow";
	}
}

/* Write c's oldest message as one frame: 0, or -1 when lws could not. */
static int
write_one(struct relay *r, struct client *c)
{
	unsigned char *p, *buf;
	struct qent e;
	size_t need, n = 0;
	int k;

	e = c->q[c->qhead];
	need = LWS_PRE + SOCK_SEQ_PREFIX + e.m->len;
	if (need > r->sendcap) {
		if ((buf = realloc(r->sendbuf, need)) == NULL)
			return -1;
		r->sendbuf = buf;
		r->sendcap = need;
	}
	p = r->sendbuf + LWS_PRE;
	if (e.m->event && e.seq > 0) {
		k = snprintf((char *)p, SOCK_SEQ_PREFIX,
		    "{\"seq\":%" PRId64 "%s", e.seq,
		    e.m->text[0] == '}' ? "" : ",");
		n = (size_t)k;
	} else if (e.m->event)
		p[n++] = '{';
	memcpy(p + n, e.m->text, e.m->len);
	n += e.m->len;
	c->qhead = (uint16_t)((c->qhead + 1) % c->qcap);
	c->qlen--;
	c->qbytes -= e.m->len;
	r->queued -= e.m->len;
	msg_unref(e.m);
	if (c->qlen == 0 && c->qcap > SOCK_QCAP_MIN)
		queue_clear(r, c); /* a burst's queue goes back to nothing */
	if (lws_write(c->wsi, p, n, LWS_WRITE_TEXT) < (int)n)
		return -1;
	r->stats.written++;
	return 0;
}

/*
 * Up to SOCK_WRITE_BURST frames per WRITEABLE, as long as the kernel takes
 * them whole (lws_send_pipe_choked): a backlog drains in fewer turns of
 * the loop, and lws never has to buffer a partial frame.
 */
int
sock_write(struct relay *r, struct client *c)
{
	const char *why;
	int i;

	if (c->closing) {
		why = close_reason(c->close_code);
		lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
		    (unsigned char *)(uintptr_t)why, strlen(why));
		return -1;
	}
	for (i = 0; i < SOCK_WRITE_BURST && c->qlen > 0; i++) {
		if (i > 0 && lws_send_pipe_choked(c->wsi))
			break;
		if (write_one(r, c) == -1)
			return -1;
	}
	if (c->qlen > 0)
		lws_callback_on_writable(c->wsi);
	return 0;
}

bool
sock_attach(struct relay *r, struct client *c)
{
	struct roster_user *u = c->user;

	c->prev = NULL;
	c->next = u->clients;
	if (u->clients != NULL)
		u->clients->prev = c;
	u->clients = c;
	c->attached = true;
	r->nclients++;
	r->stats.connections++;
	return ++u->nclients == 1;
}

/* Take c out of its user's sockets: whether that was the last one. */
static bool
unlink_client(struct relay *r, struct client *c)
{
	struct roster_user *u = c->user;

	if (!c->attached)
		return false;
	c->attached = false;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		u->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	r->nclients--;
	return --u->nclients == 0;
}

static void
reap(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_reap);
	struct roster_user *u;
	struct client *c;

	while ((c = r->closing) != NULL) {
		r->closing = c->next_closing;
		c->next_closing = NULL;
		/* The socket no longer holds its user: the entry may go
		 * before the socket does. */
		u = c->user;
		if (unlink_client(r, c) && r->user_gone != NULL)
			r->user_gone(r, u);
		c->user = NULL;
		roster_release(r, u);
	}
}

bool
sock_detach(struct relay *r, struct client *c)
{
	struct client **pp;

	free(c->rx);
	c->rx = NULL;
	c->rxlen = 0;
	queue_clear(r, c);
	for (pp = &r->closing; *pp != NULL; pp = &(*pp)->next_closing)
		if (*pp == c) {
			*pp = c->next_closing;
			break;
		}
	return unlink_client(r, c);
}

void
sock_stop(struct relay *r)
{
	lws_sul_cancel(&r->sul_reap);
}

void
sock_free(struct relay *r)
{
	free(r->sendbuf);
	r->sendbuf = NULL;
	r->sendcap = 0;
}
