#ifndef RELAY_AMILINK_H
#define RELAY_AMILINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ami_msg;
struct config;
struct err;
struct json_object;
struct lws_context;

/*
 * The relay's one connection to the Asterisk Manager Interface: a raw TCP
 * client on the relay's lws loop (its own vhost, "ami"). It connects
 * without blocking, logs in before sending anything else, narrows the
 * events (Login with Events: AMI_EVENTS, default "call,cdr"), pings every
 * AMI_PING_S, matches every response and list event to its action by
 * ActionID, times actions out, reconnects with capped exponential backoff
 * and jitter, and lists live channels (CoreShowChannels) after each login
 * before the consumer is told the link is synced.
 *
 * Events reach the consumer on a later loop turn than the one that read
 * them, through a bounded queue (drops counted), in wire order, with the
 * link's state changes in the same order:
 *   AMILINK_UP, AMILINK_RESYNC_BEGIN, CoreShowChannel events,
 *   CoreShowChannelsComplete, AMILINK_RESYNC_END, events ...,
 *   AMILINK_DOWN (every live channel is unknown from here), AMILINK_UP ...
 *
 * Settings (struct config): AMI_HOST (empty: no link, the default),
 * AMI_PORT, AMI_USERNAME, AMI_SECRET. Relay-only tunables from the
 * environment: AMI_EVENTS, AMI_PING_S (20), AMI_TIMEOUT_MS (10000: an
 * action's default timeout, the login's and the ping's),
 * AMI_RECONNECT_MIN_MS (500), AMI_RECONNECT_MAX_MS (30000).
 * The secret is sent once per login and wiped from the send buffer once
 * written; no log line holds it.
 */

struct amilink;

enum amilink_state {
	AMILINK_UP,           /* logged in */
	AMILINK_DOWN,         /* connection lost; reconnecting */
	AMILINK_RESYNC_BEGIN, /* the live channel list follows */
	AMILINK_RESYNC_END,   /* the list is complete: state may be trusted */
};

/* The consumer (NULL members: not interested). Called from the loop, never
 * from inside amilink_send. */
struct amilink_handlers {
	/* An event; m and its strings live until the call returns. */
	void (*event)(void *arg, const struct ami_msg *m);
	void (*state)(void *arg, enum amilink_state s);
};

enum amilink_result {
	AMILINK_RESPONSE, /* the Response (Success or Error: see m->name) */
	AMILINK_ITEM,     /* a list event (after a Response with EventList) */
	AMILINK_COMPLETE, /* the list's last event; the action is done */
	AMILINK_TIMEOUT,  /* no answer in time; m is NULL; the action is done */
	AMILINK_GONE,     /* the connection closed first; m is NULL; done */
};

/*
 * An action's answers. Called once with AMILINK_RESPONSE (the action is
 * done, unless the response opened a list: then AMILINK_ITEM for each
 * list event and AMILINK_COMPLETE at its end), or once with
 * AMILINK_TIMEOUT or AMILINK_GONE. m lives until the call returns.
 */
typedef void (*amilink_reply_fn)(void *arg, enum amilink_result res,
    const struct ami_msg *m);

/*
 * The link of ctx, configured from cfg (copied: cfg may go), with
 * handlers h (copied; NULL: none) and their arg. With AMI_HOST empty it
 * is a disabled link that never connects. Otherwise the first connection
 * starts on the next loop turn. NULL with e set on failure.
 */
struct amilink *amilink_new(struct lws_context *ctx, const struct config *cfg,
    const struct amilink_handlers *h, void *arg, struct err *e);

/* Before lws_context_destroy: no more timers, reconnects or callbacks. */
void amilink_stop(struct amilink *l);

/* After lws_context_destroy; wipes the secret. NULL is a no-op. */
void amilink_free(struct amilink *l);

/* Whether the link is logged in (actions can be sent). */
bool amilink_ready(const struct amilink *l);

/*
 * Queue an action: "Action: <action>", an ActionID the link chooses, then
 * headers, a NULL-terminated array of name, value pairs. fn (may be NULL)
 * gets its answers; timeout_ms (0: AMI_TIMEOUT_MS) covers the whole
 * answer, a list's last event included. ERR_UPSTREAM when the
 * link is not logged in (nothing is queued: the caller answers 503),
 * ERR_INVALID for a name or a value that would break the framing (CR or
 * LF), ERR_BUSY when too many actions are pending or the send buffer is
 * full. On failure fn is never called.
 */
int amilink_send(struct amilink *l, const char *action,
    const char *const *headers, int timeout_ms, amilink_reply_fn fn, void *arg,
    struct err *e);

/* amilink_send, and the ActionID chosen into action_id (size bytes; may be
 * NULL): an event answering the action later (OriginateResponse) carries
 * it. */
int amilink_send_id(struct amilink *l, const char *action,
    const char *const *headers, int timeout_ms, amilink_reply_fn fn,
    void *arg, char *action_id, size_t size, struct err *e);

/* Whether the link is configured (AMI_HOST set), connected or not. */
bool amilink_enabled(const struct amilink *l);

/* Forget every pending answer for arg (its owner is going away): fn is
 * not called for them. */
void amilink_cancel(struct amilink *l, void *arg);

/*
 * The health counters as a new object (the caller owns it), NULL when out
 * of memory: {"enabled", "state", "connected", "since" (unix s of the
 * last change of connected, null before any), "reconnects",
 * "connect_attempts", "login_failures", "last_event_at" (unix s or null),
 * "events", "events_dropped", "actions_timed_out", "synced",
 * "resync_channels", "host", "port"}.
 */
struct json_object *amilink_health_json(const struct amilink *l);

#endif
