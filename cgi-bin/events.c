/*
 * events: the event stream without a relay. GET /protected/events?since=N
 * [&epoch=E][&wait=S] long-polls the notify stream and answers the caller's
 * events after seq N exactly as the WebSocket sends them: the same bytes,
 * the same order, the same seq. It is for hosts that run no relay (plain
 * CGI on shared hosting). Under FastCGI a waiting client holds a worker of
 * this program for the whole wait, so it has a program, a socket and
 * workers of its own and cannot starve the other routes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "lib/auth.h"
#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/notify.h"
#include "cgi-bin/common.h"

#define EVENTS_WAIT_MAX_S     25  /* under common proxy and browser timeouts */
#define EVENTS_POLL_MS        250 /* how often a waiting request looks again */
#define EVENTS_BATCH          100 /* rows read per look; the client asks again */
#define EVENTS_PRUNE_ROWS     500 /* retention: rows deleted per slice */
#define EVENTS_PRUNE_EVERY_US (INT64_C(60) * 1000000)
#define EVENTS_BODY_MAX       (8 * 1024 * 1024)

/* The events part of the reply, built from the rows' own text. */
struct batch {
	char *buf;
	size_t len, cap;
	size_t n;     /* events in buf */
	int64_t read; /* the id of the last row read, delivered or not */
	bool revoked; /* a revocation of the caller's tokens was read */
	bool overflow;
};

static int
batch_add(struct batch *b, const char *s, size_t len)
{
	size_t cap = b->cap == 0 ? 4096 : b->cap;
	char *p;

	if (b->buf == NULL || b->len + len + 1 > b->cap) {
		while (cap < b->len + len + 1)
			cap *= 2;
		if (cap > EVENTS_BODY_MAX ||
		    (p = realloc(b->buf, cap)) == NULL) {
			b->overflow = true;
			return -1;
		}
		b->buf = p;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return 0;
}

/* notify_read_for's callback: {"seq":N, then the payload after its '{'. */
static int
batch_row(void *arg, const struct notify_event *ev)
{
	struct batch *b = arg;
	char head[48];
	int n;

	b->read = ev->id;
	/* Revocations steer readers; they are not for the browser. */
	if (notify_is_revocation(ev->target, ev->payload, ev->len)) {
		b->revoked = true;
		return 1;
	}
	if (ev->len < 2 || ev->payload[0] != '{')
		return 0;
	n = snprintf(head, sizeof(head), "%s{\"seq\":%lld%s",
	    b->n > 0 ? "," : "", (long long)ev->id, ev->len > 2 ? "," : "");
	if (batch_add(b, head, (size_t)n) == -1 ||
	    batch_add(b, ev->payload + 1, ev->len - 1) == -1)
		return 1;
	b->n++;
	return 0;
}

/* A whole number from the query, at most max; absent leaves *v. */
static int
query_int(struct http_req *req, const char *name, int64_t max, int64_t *v,
    bool *present, struct err *e)
{
	const char *s = http_query(req, name);
	char *end;
	long long x;

	*present = s != NULL;
	if (s == NULL)
		return 0;
	errno = 0;
	x = strtoll(s, &end, 10);
	if (*s < '0' || *s > '9' || errno != 0 || *end != '\0' || x > max)
		return err_set_field(e, ERR_INVALID, name,
		    "Invalid %s parameter", name);
	*v = x;
	return 0;
}

/*
 * The retention, a slice a minute. With no relay running, this program
 * is the only one that visits the stream, so it keeps the table bounded.
 */
static void
prune(struct db *db, const struct config *cfg)
{
	static int64_t last_us;
	int64_t now_us = db_now_us();
	struct err e = { 0 };

	/* A slice a minute per worker is plenty, and spares every poll a
	 * write transaction. */
	if (now_us - last_us < EVENTS_PRUNE_EVERY_US)
		return;
	last_us = now_us;
	if (notify_prune(db,
		now_us - cfg->notify_retention_s * INT64_C(1000000),
		EVENTS_PRUNE_ROWS, NULL, &e) == -1)
		log_msg(LOG_WARN, "notify retention: %s", e.msg);
}

/* {"epoch":E,"last_seq":N,"events":[...]}; events may be NULL. */
static int
reply(struct http_req *req, const char *epoch, int64_t last,
    const struct batch *events, struct err *e)
{
	struct json_object *ep = json_object_new_string(epoch);
	const char *eps;
	char *text;
	size_t size;
	int n;

	if (ep == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	eps = json_object_to_json_string(ep);
	size = strlen(eps) + 64 + (events != NULL ? events->len : 0);
	if ((text = malloc(size)) == NULL) {
		json_object_put(ep);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	n = snprintf(text, size,
	    "{\"epoch\":%s,\"last_seq\":%lld,"
	    "\"events\":[%s]}",
	    eps, (long long)last,
	    events != NULL && events->buf != NULL ? events->buf : "");
	json_object_put(ep);
	http_reply_raw(req, 200, "application/json", text, (size_t)n);
	free(text);
	return 0;
}

/* resync_required, as the socket sends it, as the only event. */
static int
reply_resync(struct http_req *req, const struct notify_stream *s, struct err *e)
{
	struct batch b = { 0 };
	struct json_object *o;
	const char *text;
	int rc;

	if ((o = notify_resync_message(s)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	rc = batch_add(&b, text, strlen(text));
	json_object_put(o);
	if (rc == -1)
		return err_set(e, ERR_INTERNAL, "out of memory");
	rc = reply(req, s->epoch, s->last, &b, e);
	free(b.buf);
	return rc;
}

/* One look at the stream in a read snapshot of its own. */
static int
look(struct db *db, const struct auth_user *u, int64_t since,
    struct notify_stream *s, struct batch *b, struct err *e)
{
	int n;

	if (db_begin_read(db, e) == -1)
		return -1;
	if (notify_stream_get(db, s, e) == -1 ||
	    (n = notify_read_for(db, u->id, u->extension, u->role, since,
		 s->last, EVENTS_BATCH, batch_row, b, e)) == -1) {
		db_rollback(db);
		return -1;
	}
	db_rollback(db);
	if (b->overflow)
		return err_set(e, ERR_INTERNAL, "events reply too large");
	/* Every row up to s->last was looked at when the batch ran short. */
	if ((size_t)n < EVENTS_BATCH && !b->revoked)
		b->read = s->last;
	return 0;
}

static int
events(struct http_req *req, struct err *e)
{
	const struct auth_claims *claims = http_claims(req);
	const struct auth_user *me = http_user(req);
	struct db *db = http_db(req);
	const char *epoch = http_query(req, "epoch");
	int64_t since = 0, wait_s = EVENTS_WAIT_MAX_S, deadline_ms;
	struct timespec pause = { 0, EVENTS_POLL_MS * 1000000L };
	struct notify_stream s;
	struct auth_user u;
	struct batch b = { 0 };
	bool has_since, has_wait;
	int rc = -1;

	if (me == NULL || claims == NULL)
		return err_set(e, ERR_INTERNAL, "events without a caller");
	u = *me;
	if (query_int(req, "since", INT64_MAX, &since, &has_since, e) == -1 ||
	    query_int(req, "wait", EVENTS_WAIT_MAX_S, &wait_s, &has_wait, e) ==
		-1)
		return -1;
	if (epoch != NULL && strlen(epoch) >= sizeof(s.epoch))
		return err_set_field(e, ERR_INVALID, "epoch",
		    "Invalid epoch parameter");
	prune(db, http_config(req));
	if (db_begin_read(db, e) == -1)
		return -1;
	rc = notify_stream_get(db, &s, e);
	db_rollback(db);
	if (rc == -1)
		return -1;
	/* No since: where the stream stands, to follow from. */
	if (!has_since)
		return reply(req, s.epoch, s.last, NULL, e);
	if (!notify_stream_replayable(&s, epoch, since))
		return reply_resync(req, &s, e);
	deadline_ms = db_now_us() / 1000 + wait_s * 1000;
	rc = -1;
	for (;;) {
		b.read = since;
		if (look(db, &u, since, &s, &b, e) == -1)
			goto out;
		/* A revocation ends the wait; a token it spared (issued after
		 * it) goes on from past it. */
		if (b.revoked) {
			if (auth_user_current(db, u.id, claims->gen, &u, e) ==
			    -1)
				goto out;
			b.revoked = false;
		}
		since = b.read;
		if (b.n > 0 || db_now_us() / 1000 >= deadline_ms)
			break;
		nanosleep(&pause, NULL);
	}
	rc = reply(req, s.epoch, since, &b, e);
out:
	free(b.buf);
	return rc;
}

static const struct http_route routes[] = {
	{ HTTP_GET, "/protected/events", HTTP_USER, events, HTTP_NO_SNAPSHOT },
};

int
main(void)
{
	return cgi_serve("events", routes, nitems(routes));
}
