/*
 * amilink: the manager link (see relay/amilink.h). One connection at a time,
 * one reader: every byte from Asterisk goes through one lib/ami parser, and
 * every response is matched to its action by the ActionID the link chose,
 * so nothing a response carries can be read by the wrong waiter (the
 * upstream defect of contract 1.8).
 *
 * The socket is ours (socket + non-blocking connect) and lws adopts it as
 * a raw socket on the link's own vhost, so it is served by the same loop
 * and callbacks as every other socket of the relay. A name in AMI_HOST is
 * resolved with getaddrinfo_a, polled from the link's timer: the loop
 * never waits for a resolver.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#include "lib/ami.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "relay/amilink.h"

#define AMILINK_PROTOCOL    "switchboard-ami"
#define AMILINK_PENDING_MAX 256           /* actions awaiting answers */
#define AMILINK_OUT_MAX     (256 * 1024)  /* bytes not yet written */
#define AMILINK_QUEUE_BYTES (1024 * 1024) /* events not yet consumed */
#define AMILINK_QUEUE_SPARE 4096 /* kept for state changes: never dropped */
#define AMILINK_DRAIN_MAX   512  /* events handed over per loop turn */
#define AMILINK_DRAIN_US    5000 /* and no longer than this per turn */
#define AMILINK_TICK_MS     100  /* timeouts, pings, the resolver */
#define AMILINK_ID_MAX      32
#define AMILINK_READ_MAX    (256 * 1024) /* bytes read per loop turn */
#define AMILINK_ENTRY_HDR   8 /* u32 length, u8 kind, u8 state, 2 spare */

enum link_state {
	L_DISABLED,
	L_WAIT,       /* the backoff before the next attempt */
	L_RESOLVING,  /* getaddrinfo_a in flight */
	L_CONNECTING, /* adopted; waiting for the banner */
	L_LOGIN,      /* Login sent; nothing else until its response */
	L_UP,
	L_STOPPED,
};

static const char *const state_names[] = {
	[L_DISABLED] = "disabled",
	[L_WAIT] = "waiting",
	[L_RESOLVING] = "resolving",
	[L_CONNECTING] = "connecting",
	[L_LOGIN] = "login",
	[L_UP] = "up",
	[L_STOPPED] = "stopped",
};

enum { Q_EVENT, Q_STATE };

struct pending {
	uint64_t id; /* 0: free */
	int64_t deadline_us;
	amilink_reply_fn fn;
	void *arg;
	bool list_open;
};

struct amilink {
	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct lws *wsi;
	struct amilink_handlers h;
	void *arg;
	enum link_state state;

	char host[256], port[8], username[128], secret[256], events[128];
	int ping_ms, timeout_ms, backoff_min_ms, backoff_max_ms;

	struct ami_parser *parser;  /* the connection's bytes */
	struct ami_parser *qparser; /* the queue's entries, when handed over */

	struct pending pending[AMILINK_PENDING_MAX];
	size_t npending;
	uint64_t next_id;

	char rbuf[16 * 1024]; /* reads beyond lws's own */
	unsigned char *out;   /* LWS_PRE, then outlen bytes to write */
	size_t outlen;
	bool out_secret; /* out holds the Login's secret: wipe once written */

	unsigned char *q; /* queued entries in [qhead, qtail) */
	size_t qhead, qtail, qcount;

	struct gaicb gai;
	struct addrinfo gai_hints;
	bool gai_busy;
	struct addrinfo *ai, *ai_next; /* the host's addresses, the next one */

	lws_sorted_usec_list_t sul_tick, sul_retry, sul_drain, sul_next;
	bool drain_scheduled;
	bool dropping;    /* the last event was dropped */
	unsigned attempt; /* failures since the last login, for the backoff */
	int64_t ping_due_us;
	bool ping_pending;
	bool close_now; /* a reply handler asked for the connection to go */
	bool logged_in_once;

	/* health */
	bool connected, synced;
	int64_t since_s, last_event_s;
	uint64_t reconnects, attempts, login_failures, nevents, dropped;
	uint64_t timed_out, skipped, resync_channels;
};

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
addrs_free(struct amilink *l)
{
	if (l->ai != NULL)
		freeaddrinfo(l->ai);
	l->ai = l->ai_next = NULL;
}

/* -- the event queue: [u32 len][kind][state][2] then len bytes ---------- */

static bool
q_push(struct amilink *l, int kind, int state, const struct ami_msg *m)
{
	size_t need = AMILINK_ENTRY_HDR, i, n, room;
	uint32_t len = 0;
	unsigned char *p;

	if (m != NULL)
		for (i = 0; i < m->nheaders; i++)
			len += (uint32_t)(m->headers[i].name_len +
					  m->headers[i].value_len + 4);
	if (m != NULL)
		len += 2;
	need += len;
	if (AMILINK_QUEUE_BYTES - l->qtail < need && l->qhead > 0) {
		memmove(l->q, l->q + l->qhead, l->qtail - l->qhead);
		l->qtail -= l->qhead;
		l->qhead = 0;
	}
	room = AMILINK_QUEUE_BYTES - l->qtail;
	/* Events leave room for the state changes, which carry no bytes
	 * and must arrive, or the consumer would trust a stale view. */
	if (room < need ||
	    (kind == Q_EVENT && room - need < AMILINK_QUEUE_SPARE))
		return false;
	p = l->q + l->qtail;
	memcpy(p, &len, 4);
	p[4] = (unsigned char)kind;
	p[5] = (unsigned char)state;
	p[6] = p[7] = 0;
	p += AMILINK_ENTRY_HDR;
	if (m != NULL) {
		for (i = 0; i < m->nheaders; i++) {
			n = m->headers[i].name_len;
			memcpy(p, m->headers[i].name, n);
			memcpy(p + n, ": ", 2);
			p += n + 2;
			n = m->headers[i].value_len;
			memcpy(p, m->headers[i].value, n);
			memcpy(p + n, "\r\n", 2);
			p += n + 2;
		}
		memcpy(p, "\r\n", 2);
	}
	l->qtail += need;
	l->qcount++;
	return true;
}

static void drain_cb(lws_sorted_usec_list_t *sul);

static void
drain_schedule(struct amilink *l)
{
	if (l->drain_scheduled || l->state == L_STOPPED)
		return;
	l->drain_scheduled = true;
	lws_sul_schedule(l->ctx, 0, &l->sul_drain, drain_cb, 1);
}

static void
q_state(struct amilink *l, enum amilink_state s)
{
	if (!q_push(l, Q_STATE, (int)s, NULL))
		log_msg(LOG_ERROR,
		    "ami: event queue cannot take a state change");
	drain_schedule(l);
}

static void
q_event(struct amilink *l, const struct ami_msg *m)
{
	l->nevents++;
	l->last_event_s = (int64_t)time(NULL);
	if (!q_push(l, Q_EVENT, 0, m)) {
		/* Counted always, logged once per run of drops. */
		l->dropped++;
		if (!l->dropping)
			log_msg(LOG_WARN,
			    "ami: event queue full, dropping "
			    "events (%" PRIu64 " so far)",
			    l->dropped);
		l->dropping = true;
		return;
	}
	l->dropping = false;
	drain_schedule(l);
}

/*
 * Hand queued entries to the consumer, a bounded number and time per loop
 * turn, so a storm from Asterisk never starves the browsers' sockets, and a
 * slow consumer never keeps the link from reading: Asterisk disconnects a
 * manager session it cannot write to (manager.conf writetimeout), so the
 * link reads on and drops, counted, what the consumer cannot take.
 */
static void
drain_cb(lws_sorted_usec_list_t *sul)
{
	struct amilink *l = lws_container_of(sul, struct amilink, sul_drain);
	struct err e = { 0 };
	struct ami_msg m;
	unsigned char *p;
	int64_t t0 = mono_us();
	uint32_t len;
	int kind, st, done = 0;

	l->drain_scheduled = false;
	while (l->qhead < l->qtail && done++ < AMILINK_DRAIN_MAX &&
	       ((done & 15) != 0 || mono_us() - t0 < AMILINK_DRAIN_US)) {
		p = l->q + l->qhead;
		memcpy(&len, p, 4);
		kind = p[4];
		st = p[5];
		l->qhead += AMILINK_ENTRY_HDR + len;
		l->qcount--;
		if (kind == Q_STATE) {
			if (l->h.state != NULL)
				l->h.state(l->arg, (enum amilink_state)st);
			continue;
		}
		if (l->h.event == NULL)
			continue;
		ami_parser_reset(l->qparser);
		if (ami_parse_feed(l->qparser,
			(const char *)p + AMILINK_ENTRY_HDR, len) == len &&
		    ami_parse_next(l->qparser, &m, &e) == 1)
			l->h.event(l->arg, &m);
	}
	if (l->qhead == l->qtail)
		l->qhead = l->qtail = 0;
	else
		drain_schedule(l);
}

/* -- actions ------------------------------------------------------------- */

static struct pending *
pending_find(struct amilink *l, const char *action_id)
{
	char *end;
	uint64_t id;
	size_t i;

	if (action_id == NULL || strncmp(action_id, "sb-", 3) != 0)
		return NULL;
	errno = 0;
	id = strtoull(action_id + 3, &end, 10);
	if (errno != 0 || *end != '\0' || id == 0)
		return NULL;
	for (i = 0; i < AMILINK_PENDING_MAX; i++)
		if (l->pending[i].id == id)
			return &l->pending[i];
	return NULL;
}

static void
pending_done(struct amilink *l, struct pending *p)
{
	p->id = 0;
	p->fn = NULL;
	p->arg = NULL;
	l->npending--;
}

/* Every pending action ends with res (the connection went). */
static void
pending_fail_all(struct amilink *l, enum amilink_result res)
{
	struct pending p;
	size_t i;

	for (i = 0; i < AMILINK_PENDING_MAX; i++) {
		if (l->pending[i].id == 0)
			continue;
		p = l->pending[i];
		pending_done(l, &l->pending[i]);
		if (p.fn != NULL)
			p.fn(p.arg, res, NULL);
	}
}

/*
 * Build an action into the send buffer and register its answer handler.
 * The link's own actions (Login, Ping, CoreShowChannels) come here too,
 * before the link is up, which is why this does not check the state.
 */
static int
action_queue(struct amilink *l, const char *action, const char *const *hdrs,
    int timeout_ms, amilink_reply_fn fn, void *arg, char *id_out,
    size_t id_size, struct err *e)
{
	char id[AMILINK_ID_MAX];
	struct ami_action a;
	struct pending *p = NULL;
	size_t i;

	if (l->npending == AMILINK_PENDING_MAX)
		return err_set(e, ERR_BUSY, "too many AMI actions pending");
	for (i = 0; i < AMILINK_PENDING_MAX && p == NULL; i++)
		if (l->pending[i].id == 0)
			p = &l->pending[i];
	snprintf(id, sizeof(id), "sb-%" PRIu64, ++l->next_id);
	a.buf = (char *)l->out + LWS_PRE + l->outlen;
	a.size = AMILINK_OUT_MAX - l->outlen;
	a.len = 0;
	if (ami_action_begin(&a, action, id, e) == -1)
		goto fail;
	for (i = 0; hdrs != NULL && hdrs[i] != NULL && hdrs[i + 1] != NULL;
	     i += 2)
		if (ami_action_add(&a, hdrs[i], hdrs[i + 1], e) == -1)
			goto fail;
	if (ami_action_end(&a, e) == -1)
		goto fail;
	l->outlen += a.len;
	p->id = l->next_id;
	p->deadline_us =
	    mono_us() +
	    (int64_t)(timeout_ms > 0 ? timeout_ms : l->timeout_ms) * 1000;
	p->fn = fn;
	p->arg = arg;
	p->list_open = false;
	l->npending++;
	if (id_out != NULL && id_size > 0)
		snprintf(id_out, id_size, "%s", id);
	if (l->wsi != NULL)
		lws_callback_on_writable(l->wsi);
	return 0;
fail:
	/* Whatever was built stays out of the buffer (the secret too). */
	explicit_bzero(a.buf, a.len);
	if (e != NULL && e->code == ERR_TOO_LARGE)
		e->code = ERR_BUSY;
	return -1;
}

int
amilink_send(struct amilink *l, const char *action, const char *const *headers,
    int timeout_ms, amilink_reply_fn fn, void *arg, struct err *e)
{
	return amilink_send_id(l, action, headers, timeout_ms, fn, arg, NULL,
	    0, e);
}

int
amilink_send_id(struct amilink *l, const char *action,
    const char *const *headers, int timeout_ms, amilink_reply_fn fn,
    void *arg, char *action_id, size_t size, struct err *e)
{
	if (l == NULL || l->state != L_UP)
		return err_set(e, ERR_UPSTREAM, "Asterisk is not connected");
	return action_queue(l, action, headers, timeout_ms, fn, arg,
	    action_id, size, e);
}

bool
amilink_enabled(const struct amilink *l)
{
	return l != NULL && l->state != L_DISABLED;
}

void
amilink_cancel(struct amilink *l, void *arg)
{
	size_t i;

	for (i = 0; l != NULL && i < AMILINK_PENDING_MAX; i++)
		if (l->pending[i].id != 0 && l->pending[i].arg == arg)
			l->pending[i].fn = NULL;
}

bool
amilink_ready(const struct amilink *l)
{
	return l != NULL && l->state == L_UP;
}

/* -- the session: login, resync, ping -------------------------------- */

/* The counters, once per change of the connection: an operator reading
 * the log sees what /health will say. */
static void
health_log(const struct amilink *l)
{
	struct json_object *o = amilink_health_json(l);
	const char *text;

	if (o != NULL && (text = jh_text(o, NULL)) != NULL)
		log_msg(LOG_INFO, "ami: health %s", text);
	json_object_put(o);
}

static void
link_close_async(struct amilink *l)
{
	if (l->wsi != NULL)
		lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK,
		    LWS_TO_KILL_ASYNC);
}

static void
on_resync(void *arg, enum amilink_result res, const struct ami_msg *m)
{
	struct amilink *l = arg;
	const char *n;

	switch (res) {
	case AMILINK_RESPONSE:
		if (m->list != AMI_LIST_START) {
			log_msg(LOG_WARN, "ami: CoreShowChannels refused: %s",
			    ami_msg_get(m, "Message") != NULL
				? ami_msg_get(m, "Message")
				: m->name);
			q_state(l, AMILINK_RESYNC_END);
			return;
		}
		l->resync_channels = 0;
		q_state(l, AMILINK_RESYNC_BEGIN);
		return;
	case AMILINK_ITEM:
		l->resync_channels++;
		q_event(l, m);
		return;
	case AMILINK_COMPLETE:
		q_event(l, m);
		l->synced = true;
		n = ami_msg_get(m, "ListItems");
		log_msg(LOG_INFO, "ami: resynced, %s live channel(s)",
		    n != NULL ? n : "?");
		health_log(l);
		q_state(l, AMILINK_RESYNC_END);
		return;
	case AMILINK_TIMEOUT:
		log_msg(LOG_WARN,
		    "ami: CoreShowChannels timed out; reconnecting");
		link_close_async(l);
		return;
	case AMILINK_GONE:
		return;
	}
}

static void
on_login(void *arg, enum amilink_result res, const struct ami_msg *m)
{
	static const char *const csc[] = { NULL };
	struct amilink *l = arg;
	const char *msg;
	struct err e = { 0 };

	if (res == AMILINK_GONE)
		return;
	if (res == AMILINK_TIMEOUT) {
		log_msg(LOG_WARN, "ami: no answer to Login from %s:%s in %d ms",
		    l->host, l->port, l->timeout_ms);
		link_close_async(l);
		return;
	}
	if (res != AMILINK_RESPONSE)
		return;
	if (strcasecmp(m->name, "Success") != 0) {
		msg = ami_msg_get(m, "Message");
		l->login_failures++;
		/* Asterisk's own words; the secret is never in them. */
		log_msg(LOG_ERROR,
		    "ami: login as '%s' to %s:%s refused: %.128s", l->username,
		    l->host, l->port, msg != NULL ? msg : m->name);
		l->close_now = true;
		return;
	}
	l->state = L_UP;
	l->connected = true;
	l->synced = false;
	l->since_s = (int64_t)time(NULL);
	if (l->logged_in_once)
		l->reconnects++;
	l->logged_in_once = true;
	l->attempt = 0;
	addrs_free(l);
	l->ping_due_us = mono_us() + (int64_t)l->ping_ms * 1000;
	if (l->wsi != NULL)
		lws_set_timeout(l->wsi, NO_PENDING_TIMEOUT, 0);
	log_msg(LOG_INFO, "ami: logged in to %s:%s as '%s' (events: %s)",
	    l->host, l->port, l->username, l->events);
	health_log(l);
	q_state(l, AMILINK_UP);
	if (action_queue(l, "CoreShowChannels", csc, 0, on_resync, l, NULL, 0, &e) ==
	    -1) {
		log_msg(LOG_ERROR, "ami: CoreShowChannels: %s", e.msg);
		l->close_now = true;
	}
}

static void
on_pong(void *arg, enum amilink_result res, const struct ami_msg *m)
{
	struct amilink *l = arg;

	(void)m;
	l->ping_pending = false;
	if (res == AMILINK_TIMEOUT) {
		log_msg(LOG_WARN,
		    "ami: no answer to Ping in %d ms; reconnecting",
		    l->timeout_ms);
		link_close_async(l);
	}
}

static int
send_login(struct amilink *l)
{
	const char *hdrs[] = { "Username", l->username, "Secret", l->secret,
		"Events", l->events, NULL };
	struct err e = { 0 };

	l->out_secret = true;
	if (action_queue(l, "Login", hdrs, 0, on_login, l, NULL, 0, &e) == -1) {
		/* The message names the header, never its value. */
		log_msg(LOG_ERROR, "ami: cannot build the Login: %s", e.msg);
		return -1;
	}
	l->state = L_LOGIN;
	return 0;
}

static void
on_message(struct amilink *l, const struct ami_msg *m)
{
	struct pending *p;
	struct pending copy;

	if (m->kind == AMI_BANNER) {
		if (l->state == L_CONNECTING && send_login(l) == -1)
			l->close_now = true;
		return;
	}
	p = pending_find(l, m->action_id);
	if (m->kind == AMI_RESPONSE) {
		if (p == NULL || p->list_open) {
			log_msg(LOG_DEBUG, "ami: response to no action (%.32s)",
			    m->action_id != NULL ? m->action_id
						 : "no ActionID");
			return;
		}
		copy = *p;
		if (m->list == AMI_LIST_START)
			p->list_open = true;
		else
			pending_done(l, p);
		if (copy.fn != NULL)
			copy.fn(copy.arg, AMILINK_RESPONSE, m);
		return;
	}
	/* An event: a list item of an open list action, else for the
	 * consumer (OriginateResponse carries its Originate's ActionID but is
	 * call state, not a list item). */
	if (p != NULL && p->list_open) {
		copy = *p;
		if (m->list == AMI_LIST_COMPLETE)
			pending_done(l, p);
		if (copy.fn != NULL)
			copy.fn(copy.arg,
			    m->list == AMI_LIST_COMPLETE ? AMILINK_COMPLETE
							 : AMILINK_ITEM,
			    m);
		return;
	}
	if (l->state == L_UP)
		q_event(l, m);
}

static int
parse_bytes(struct amilink *l, const char *in, size_t len)
{
	struct err e = { 0 };
	struct ami_msg m;
	size_t n;
	int rc;

	while (len > 0) {
		n = ami_parse_feed(l->parser, in, len);
		in += n;
		len -= n;
		while ((rc = ami_parse_next(l->parser, &m, &e)) != 0) {
			if (rc == -1) {
				if (l->skipped++ == 0)
					log_msg(LOG_WARN, "ami: %s", e.msg);
				continue;
			}
			on_message(l, &m);
			if (l->close_now)
				return -1;
		}
	}
	return 0;
}

/*
 * What lws read, then what else the socket holds, up to AMILINK_READ_MAX
 * a turn: lws reads one small buffer per turn, and a link that reads
 * slower than Asterisk writes is one Asterisk drops (its writetimeout).
 * Events beyond what the consumer takes are dropped in the queue, counted.
 */
static int
on_rx(struct amilink *l, const char *in, size_t len)
{
	size_t total = len;
	ssize_t n;
	int fd;

	if (parse_bytes(l, in, len) == -1)
		return -1;
	fd = (int)lws_get_socket_fd(l->wsi);
	while (fd >= 0 && total < AMILINK_READ_MAX) {
		n = recv(fd, l->rbuf, sizeof(l->rbuf), MSG_DONTWAIT);
		if (n == 0)
			return -1; /* Asterisk closed */
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ||
				       errno == EINTR
				   ? 0
				   : -1;
		total += (size_t)n;
		if (parse_bytes(l, l->rbuf, (size_t)n) == -1)
			return -1;
	}
	return 0;
}

static int
on_writeable(struct amilink *l)
{
	size_t n = l->outlen;

	if (n == 0)
		return 0;
	/* Raw: lws keeps what the kernel does not take and sends it before
	 * anything else, so one write per callback is the whole buffer. */
	if (lws_write(l->wsi, l->out + LWS_PRE, n, LWS_WRITE_RAW) < (int)n) {
		log_msg(LOG_WARN, "ami: write to %s:%s failed", l->host,
		    l->port);
		return -1;
	}
	if (l->out_secret) {
		explicit_bzero(l->out + LWS_PRE, n);
		l->out_secret = false;
	}
	l->outlen = 0;
	return 0;
}

/* -- connecting ----------------------------------------------------------- */

static void retry_cb(lws_sorted_usec_list_t *sul);
static void tick_cb(lws_sorted_usec_list_t *sul);
static void connect_next(struct amilink *l);

static void
next_cb(lws_sorted_usec_list_t *sul)
{
	struct amilink *l = lws_container_of(sul, struct amilink, sul_next);

	if (l->state == L_WAIT)
		connect_next(l);
}

static void
retry_schedule(struct amilink *l)
{
	uint32_t r = 0;
	int64_t ms;

	if (l->state == L_STOPPED || l->state == L_DISABLED)
		return;
	l->state = L_WAIT;
	ms = l->backoff_min_ms;
	if (l->attempt < 20)
		ms <<= l->attempt;
	else
		ms = l->backoff_max_ms;
	if (ms > l->backoff_max_ms)
		ms = l->backoff_max_ms;
	l->attempt++;
	/* Full jitter on the upper half: many relays restarted together do
	 * not knock on Asterisk in step. */
	lws_get_random(l->ctx, &r, sizeof(r));
	ms = ms / 2 + (int64_t)(r % (uint32_t)(ms / 2 + 1));
	log_msg(LOG_DEBUG, "ami: next attempt in %lld ms", (long long)ms);
	lws_sul_schedule(l->ctx, 0, &l->sul_retry, retry_cb,
	    ms * LWS_US_PER_MS);
}

/* The connection ended, whatever the state it reached. */
static void
on_closed(struct amilink *l)
{
	enum link_state was = l->state;

	l->wsi = NULL;
	l->close_now = false;
	l->ping_pending = false;
	/* Not up any more before anyone hears of it: an answer handler that
	 * sends again gets ERR_UPSTREAM, and nothing it could queue would be
	 * written ahead of the next connection's Login. */
	if (was != L_STOPPED)
		l->state = L_WAIT;
	pending_fail_all(l, AMILINK_GONE);
	explicit_bzero(l->out, LWS_PRE + AMILINK_OUT_MAX);
	l->outlen = 0;
	l->out_secret = false;
	if (was == L_STOPPED)
		return;
	if (was == L_UP) {
		l->connected = false;
		l->synced = false;
		l->since_s = (int64_t)time(NULL);
		log_msg(LOG_WARN, "ami: connection to %s:%s lost", l->host,
		    l->port);
		health_log(l);
		q_state(l, AMILINK_DOWN);
	} else if (was == L_CONNECTING && l->ai_next != NULL) {
		log_msg(LOG_WARN,
		    "ami: cannot reach %s:%s at one of its "
		    "addresses, trying the next",
		    l->host, l->port);
		/* On the next turn: not from inside this socket's close. */
		lws_sul_schedule(l->ctx, 0, &l->sul_next, next_cb, 1);
		return;
	} else if (was == L_CONNECTING)
		log_msg(LOG_WARN, "ami: cannot reach %s:%s", l->host, l->port);
	addrs_free(l);
	retry_schedule(l);
}

/* Start connecting to ai: 0 once lws has the socket (the outcome comes
 * as RX or CLOSE), -1 when it failed at once (logged). */
static int
connect_one(struct amilink *l, const struct addrinfo *ai)
{
	lws_adopt_desc_t ad;
	int fd;

	l->attempts++;
	fd = socket(ai->ai_family,
	    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1 || (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
			    errno != EINPROGRESS)) {
		log_msg(LOG_WARN, "ami: connect to %s:%s: %s", l->host, l->port,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	memset(&ad, 0, sizeof(ad));
	ad.vh = l->vh;
	ad.type = LWS_ADOPT_SOCKET; /* without LWS_ADOPT_HTTP: raw */
	ad.fd.sockfd = fd;
	ad.vh_prot_name = AMILINK_PROTOCOL;
	ad.opaque = l;
	l->state = L_CONNECTING;
	ami_parser_reset(l->parser);
	l->outlen = 0;
	/* lws closes fd when it cannot adopt it. */
	if ((l->wsi = lws_adopt_descriptor_vhost_via_info(&ad)) == NULL) {
		log_msg(LOG_ERROR, "ami: cannot adopt the connection");
		return -1;
	}
	/* The banner and the login, in time, or the attempt is over. */
	lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK,
	    (l->timeout_ms + 999) / 1000 * 2);
	return 0;
}

/*
 * The next address of the host (a name may have several: "localhost" is
 * often ::1 first while Asterisk listens on 127.0.0.1 only); none left:
 * the backoff, then the name is resolved again.
 */
static void
connect_next(struct amilink *l)
{
	const struct addrinfo *ai;

	while ((ai = l->ai_next) != NULL) {
		l->ai_next = ai->ai_next;
		if (connect_one(l, ai) == 0)
			return;
	}
	addrs_free(l);
	l->state = L_WAIT;
	retry_schedule(l);
}

static void
resolved(struct amilink *l, int rc)
{
	struct addrinfo *ai = l->gai.ar_result;

	l->gai_busy = false;
	l->gai.ar_result = NULL;
	if (rc != 0 || ai == NULL) {
		if (ai != NULL)
			freeaddrinfo(ai);
		l->attempts++;
		log_msg(LOG_WARN, "ami: cannot resolve '%s': %s", l->host,
		    gai_strerror(rc));
		retry_schedule(l);
		return;
	}
	l->ai = l->ai_next = ai;
	connect_next(l);
}

static void
retry_cb(lws_sorted_usec_list_t *sul)
{
	struct amilink *l = lws_container_of(sul, struct amilink, sul_retry);
	struct gaicb *list[1] = { &l->gai };
	int rc;

	if (l->state != L_WAIT)
		return;
	addrs_free(l);
	memset(&l->gai_hints, 0, sizeof(l->gai_hints));
	l->gai_hints.ai_family = AF_UNSPEC;
	l->gai_hints.ai_socktype = SOCK_STREAM;
	l->gai_hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	/* An address needs no resolver. */
	if (getaddrinfo(l->host, l->port, &l->gai_hints, &l->ai) == 0) {
		l->ai_next = l->ai;
		connect_next(l);
		return;
	}
	l->ai = NULL;
	l->gai_hints.ai_flags = AI_NUMERICSERV;
	memset(&l->gai, 0, sizeof(l->gai));
	l->gai.ar_name = l->host;
	l->gai.ar_service = l->port;
	l->gai.ar_request = &l->gai_hints;
	l->state = L_RESOLVING;
	if ((rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL)) != 0) {
		resolved(l, rc);
		return;
	}
	l->gai_busy = true;
}

static void
tick_cb(lws_sorted_usec_list_t *sul)
{
	struct amilink *l = lws_container_of(sul, struct amilink, sul_tick);
	static const char *const none[] = { NULL };
	int64_t now = mono_us();
	struct err e = { 0 };
	struct pending p;
	size_t i;
	int rc;

	if (l->state == L_STOPPED)
		return;
	if (l->gai_busy && (rc = gai_error(&l->gai)) != EAI_INPROGRESS)
		resolved(l, rc);
	for (i = 0; i < AMILINK_PENDING_MAX; i++) {
		if (l->pending[i].id == 0 || l->pending[i].deadline_us > now)
			continue;
		p = l->pending[i];
		pending_done(l, &l->pending[i]);
		l->timed_out++;
		if (p.fn != NULL)
			p.fn(p.arg, AMILINK_TIMEOUT, NULL);
	}
	if (l->state == L_UP && !l->ping_pending && now >= l->ping_due_us) {
		l->ping_due_us = now + (int64_t)l->ping_ms * 1000;
		if (action_queue(l, "Ping", none, 0, on_pong, l, NULL, 0, &e) == 0)
			l->ping_pending = true;
		else
			log_msg(LOG_WARN, "ami: Ping: %s", e.msg);
	}
	lws_sul_schedule(l->ctx, 0, &l->sul_tick, tick_cb,
	    AMILINK_TICK_MS * LWS_US_PER_MS);
}

/* -- lws ------------------------------------------------------------------ */

static int
amilink_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct amilink *l = lws_get_opaque_user_data(wsi);

	(void)user;
	if (l == NULL || (l->wsi != wsi && reason != LWS_CALLBACK_RAW_ADOPT))
		return 0;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX:
		return on_rx(l, in, len);
	case LWS_CALLBACK_RAW_WRITEABLE:
		return on_writeable(l);
	case LWS_CALLBACK_RAW_CLOSE:
		on_closed(l);
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols amilink_protocols[] = {
	{
	    .name = AMILINK_PROTOCOL,
	    .callback = amilink_callback,
	    .per_session_data_size = 0,
	    .rx_buffer_size = 16 * 1024,
	},
	{ .name = NULL },
};

struct amilink *
amilink_new(struct lws_context *ctx, const struct config *cfg,
    const struct amilink_handlers *h, void *arg, struct err *e)
{
	struct lws_context_creation_info info;
	struct amilink *l;
	const char *ev;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	l->ctx = ctx;
	if (h != NULL)
		l->h = *h;
	l->arg = arg;
	l->state = L_DISABLED;
	if (cfg->ami_host[0] == '\0')
		return l;
	if (config_int("AMI_PING_S", 20, 1, 3600, &l->ping_ms, e) == -1 ||
	    config_int("AMI_TIMEOUT_MS", 10000, 100, 600000, &l->timeout_ms, e) ==
		-1 ||
	    config_int("AMI_RECONNECT_MIN_MS", 500, 10, 600000, &l->backoff_min_ms,
		e) == -1 ||
	    config_int("AMI_RECONNECT_MAX_MS", 30000, 10, 3600000,
		&l->backoff_max_ms, e) == -1)
		goto fail;
	l->ping_ms *= 1000;
	if (l->backoff_max_ms < l->backoff_min_ms)
		l->backoff_max_ms = l->backoff_min_ms;
	ev = config_get("AMI_EVENTS");
	snprintf(l->events, sizeof(l->events), "%s",
	    ev != NULL && *ev != '\0' ? ev : "call,cdr");
	snprintf(l->host, sizeof(l->host), "%s", cfg->ami_host);
	snprintf(l->port, sizeof(l->port), "%d", cfg->ami_port);
	snprintf(l->username, sizeof(l->username), "%s", cfg->ami_username);
	memcpy(l->secret, cfg->ami_secret, sizeof(l->secret));
	if ((l->parser = ami_parser_new(0, 0, e)) == NULL ||
	    /* An entry written back with CRLF can outgrow a message that
	     * came with bare LFs. */
	    (l->qparser = ami_parser_new(2 * AMI_MSG_MAX_DEFAULT, 0, e)) ==
		NULL)
		goto fail;
	if ((l->out = malloc(LWS_PRE + AMILINK_OUT_MAX)) == NULL ||
	    (l->q = malloc(AMILINK_QUEUE_BYTES)) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		goto fail;
	}
	memset(&info, 0, sizeof(info));
	info.vhost_name = "ami";
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = amilink_protocols;
	if ((l->vh = lws_create_vhost(ctx, &info)) == NULL) {
		err_set(e, ERR_INTERNAL, "cannot create the ami vhost");
		goto fail;
	}
	l->state = L_WAIT;
	l->since_s = 0;
	log_msg(LOG_INFO, "ami: connecting to %s:%s as '%s'", l->host, l->port,
	    l->username);
	lws_sul_schedule(ctx, 0, &l->sul_retry, retry_cb, 1);
	lws_sul_schedule(ctx, 0, &l->sul_tick, tick_cb,
	    AMILINK_TICK_MS * LWS_US_PER_MS);
	return l;
fail:
	amilink_free(l);
	return NULL;
}

void
amilink_stop(struct amilink *l)
{
	if (l == NULL || l->state == L_DISABLED)
		return;
	l->state = L_STOPPED;
	lws_sul_cancel(&l->sul_tick);
	lws_sul_cancel(&l->sul_retry);
	lws_sul_cancel(&l->sul_drain);
	lws_sul_cancel(&l->sul_next);
	/* The consumer is going away: no answer reaches it any more. */
	memset(&l->h, 0, sizeof(l->h));
	for (size_t i = 0; i < AMILINK_PENDING_MAX; i++)
		l->pending[i].fn = NULL;
}

void
amilink_free(struct amilink *l)
{
	struct gaicb *list[1];

	if (l == NULL)
		return;
	if (l->gai_busy) {
		/* A resolver thread may still write into l->gai. */
		list[0] = &l->gai;
		if (gai_cancel(&l->gai) == EAI_NOTCANCELED)
			gai_suspend((const struct gaicb *const *)list, 1, NULL);
		if (l->gai.ar_result != NULL)
			freeaddrinfo(l->gai.ar_result);
	}
	addrs_free(l);
	explicit_bzero(l->secret, sizeof(l->secret));
	if (l->out != NULL)
		explicit_bzero(l->out, LWS_PRE + AMILINK_OUT_MAX);
	ami_parser_free(l->parser);
	ami_parser_free(l->qparser);
	free(l->out);
	free(l->q);
	free(l);
}

struct json_object *
amilink_health_json(const struct amilink *l)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_bool(o, "enabled", l != NULL && l->state != L_DISABLED);
	if (l == NULL || l->state == L_DISABLED)
		return o;
	jh_add_str(o, "state", state_names[l->state]);
	jh_add_bool(o, "connected", l->connected);
	if (l->since_s > 0)
		jh_add_int(o, "since", l->since_s);
	else
		json_object_object_add(o, "since", NULL);
	jh_add_int(o, "reconnects", (int64_t)l->reconnects);
	jh_add_int(o, "connect_attempts", (int64_t)l->attempts);
	jh_add_int(o, "login_failures", (int64_t)l->login_failures);
	if (l->last_event_s > 0)
		jh_add_int(o, "last_event_at", l->last_event_s);
	else
		json_object_object_add(o, "last_event_at", NULL);
	jh_add_int(o, "events", (int64_t)l->nevents);
	jh_add_int(o, "events_dropped", (int64_t)l->dropped);
	jh_add_int(o, "queued", (int64_t)l->qcount);
	jh_add_int(o, "queued_bytes", (int64_t)(l->qtail - l->qhead));
	jh_add_int(o, "actions_timed_out", (int64_t)l->timed_out);
	jh_add_int(o, "messages_skipped", (int64_t)l->skipped);
	jh_add_bool(o, "synced", l->synced);
	jh_add_int(o, "resync_channels", (int64_t)l->resync_channels);
	jh_add_str(o, "host", l->host);
	jh_add_int(o, "port", atoi(l->port));
	return o;
}
