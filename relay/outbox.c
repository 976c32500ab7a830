/*
 * outbox: the relay's own writes (the events it originates, the call log
 * steps of live calls), done in the order they were made, together, in one
 * transaction on the next turn of the loop. When the database is busy the
 * whole batch is rolled back and tried again shortly, still in order, so a
 * call's answer is never lost and never lands after its hangup. Events then
 * reach the sockets through the pump like any other row, with their seq.
 *
 * Memory: call log steps are a few per live call; events are capped at
 * RELAY_OUTBOX_MAX bytes, past which new ones are dropped and counted (a
 * database that stays locked that long has bigger problems).
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
#include "lib/notify.h"
#include "relay/relay.h"

#define OUTBOX_RETRY_US (50 * 1000)

enum outbox_op { OB_NOTIFY, OB_ANSWER, OB_CLOSE, OB_FN };

struct outbox_item {
	struct outbox_item *next;
	enum outbox_op op;
	enum notify_target target;
	int how;
	int64_t log_id, at_us;
	outbox_fn_t fn; /* OB_FN: called with text, len */
	char value[24];
	size_t len;
	char text[]; /* OB_NOTIFY: the payload */
};

static void flush(lws_sorted_usec_list_t *sul);

static void
append(struct relay *r, struct outbox_item *it)
{
	if (r->ob_tail == NULL)
		r->ob_tail = &r->ob_head;
	it->next = NULL;
	*r->ob_tail = it;
	r->ob_tail = &it->next;
	r->ob_bytes += sizeof(*it) + it->len;
	if (!r->stopping)
		lws_sul_schedule(r->ctx, 0, &r->sul_outbox, flush, 1);
}

void
outbox_notify(struct relay *r, enum notify_target target, const char *value,
    struct json_object *payload)
{
	struct outbox_item *it;
	const char *text;
	size_t len;

	if (payload == NULL || (text = jh_text(payload, &len)) == NULL)
		return;
	if (r->ob_bytes + len > RELAY_OUTBOX_MAX ||
	    (it = calloc(1, sizeof(*it) + len + 1)) == NULL) {
		r->stats.outbox_dropped++;
		log_msg(LOG_WARN,
		    "event dropped: %zu bytes wait for the "
		    "database",
		    r->ob_bytes);
		return;
	}
	it->op = OB_NOTIFY;
	it->target = target;
	snprintf(it->value, sizeof(it->value), "%s",
	    value != NULL ? value : "");
	memcpy(it->text, text, len);
	it->len = len;
	append(r, it);
}

void
outbox_notify_user(struct relay *r, int64_t id, struct json_object *payload)
{
	char v[24];

	snprintf(v, sizeof(v), "%" PRId64, id);
	outbox_notify(r, NOTIFY_USER, v, payload);
}

static void
calllog_step(struct relay *r, enum outbox_op op, int64_t log_id, int how,
    int64_t at_us)
{
	struct outbox_item *it;

	if ((it = calloc(1, sizeof(*it))) == NULL) {
		log_msg(LOG_ERROR, "call log %" PRId64 ": out of memory",
		    log_id);
		return;
	}
	it->op = op;
	it->log_id = log_id;
	it->how = how;
	it->at_us = at_us;
	append(r, it);
}

void
outbox_answer(struct relay *r, int64_t log_id, int64_t at_us)
{
	calllog_step(r, OB_ANSWER, log_id, 0, at_us);
}

void
outbox_close(struct relay *r, int64_t log_id, int how, int64_t at_us)
{
	calllog_step(r, OB_CLOSE, log_id, how, at_us);
}

void
outbox_call(struct relay *r, outbox_fn_t fn, const void *data, size_t len)
{
	struct outbox_item *it;

	if ((it = calloc(1, sizeof(*it) + len + 1)) == NULL) {
		r->stats.outbox_dropped++;
		log_msg(LOG_ERROR, "relay write dropped: out of memory");
		return;
	}
	it->op = OB_FN;
	it->fn = fn;
	memcpy(it->text, data, len);
	it->len = len;
	append(r, it);
}

/* One item inside the transaction: 0, or -1 with e set. */
static int
run(struct relay *r, const struct outbox_item *it, struct err *e)
{
	int rc;

	switch (it->op) {
	case OB_NOTIFY:
		return notify_enqueue_text(r->db, it->target, it->value,
		    it->text, it->len, e);
	case OB_ANSWER:
		if ((rc = calllog_answer(r->db, it->log_id, it->at_us, e)) == 0)
			log_msg(LOG_INFO,
			    "call log %" PRId64 " answered after it ended",
			    it->log_id);
		return rc == -1 ? -1 : 0;
	case OB_CLOSE:
		return calllog_close(r->db, it->log_id,
			   (enum calllog_end)it->how, it->at_us, NULL, e) == -1
			   ? -1
			   : 0;
	case OB_FN:
		return it->fn(r, it->text, e);
	}
	return 0;
}

static void
item_free(struct relay *r, struct outbox_item *it)
{
	r->ob_bytes -= sizeof(*it) + it->len;
	free(it);
}

/*
 * Everything waiting, in one transaction. A busy database rolls it all
 * back to be retried; any other failure of one item is logged and that
 * item dropped (it would fail the same way forever), the rest go on.
 */
static int
flush_once(struct relay *r)
{
	struct outbox_item *it, **pp;
	struct err e = { 0 };
	bool events = false;

	if (r->ob_head == NULL)
		return 0;
	if (db_begin(r->db, &e) == -1)
		goto busy;
	for (pp = &r->ob_head; (it = *pp) != NULL;) {
		if (run(r, it, &e) == 0) {
			events |= it->op == OB_NOTIFY;
			pp = &it->next;
			continue;
		}
		if (e.code == ERR_BUSY)
			goto rollback;
		log_msg(LOG_ERROR, "relay write dropped: %s", e.msg);
		*pp = it->next;
		item_free(r, it);
		memset(&e, 0, sizeof(e));
	}
	if (db_commit(r->db, &e) == -1)
		goto busy;
	while ((it = r->ob_head) != NULL) {
		r->ob_head = it->next;
		item_free(r, it);
	}
	r->ob_tail = &r->ob_head;
	if (events && !r->stopping)
		pump_kick(r);
	return 0;
rollback:
	db_rollback(r->db);
busy:
	/* The list is intact: a dropped item was unlinked in place. */
	for (pp = &r->ob_head; *pp != NULL; pp = &(*pp)->next)
		;
	r->ob_tail = pp;
	log_msg(LOG_WARN, "relay writes wait: %s (will retry)", e.msg);
	return -1;
}

static void
flush(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_outbox);

	if (flush_once(r) == -1 && !r->stopping)
		lws_sul_schedule(r->ctx, 0, &r->sul_outbox, flush,
		    OUTBOX_RETRY_US);
}

void
outbox_stop(struct relay *r)
{
	lws_sul_cancel(&r->sul_outbox);
}

void
outbox_free(struct relay *r)
{
	struct outbox_item *it;

	if (flush_once(r) == -1)
		log_msg(LOG_ERROR, "relay writes lost at stop: %zu bytes",
		    r->ob_bytes);
	while ((it = r->ob_head) != NULL) {
		r->ob_head = it->next;
		item_free(r, it);
	}
	r->ob_tail = &r->ob_head;
}
