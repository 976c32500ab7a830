#ifndef RELAY_RELAY_H
#define RELAY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "lib/auth.h"
#include "lib/config.h"
#include "lib/notify.h"
#include "relay/amilink.h"

struct db;
struct err;
struct json_object;

/*
 * The relay: one process, one lws context, one thread. Shared state lives in
 * one struct relay (the context's user pointer); each connection kind keeps
 * its own state in the per-session data lws allocates for it.
 *
 * Modules, each importing only those above it:
 *   msg.c      messages built once, shared by reference
 *   roster.c   the users the relay holds state for (connected ones and
 *              the parties of live calls), by id and by extension
 *   sock.c     one browser socket: its send queue, its close
 *   fanout.c   events to the sockets they concern, replays from the stream
 *   outbox.c   the relay's own writes, in order, retried on BUSY
 *   presence.c who is online, coalesced per user; the stale sweep
 *   pump.c     the notify stream: live delivery, revocations, retention
 *   calls.c    live WebRTC calls
 *   cluster.c  several relays on one PostgreSQL database: mail, presence
 *   wake.c     LISTEN/NOTIFY wake-ups of the pump (PostgreSQL)
 *   amilink.c  the AMI manager link (one per relay, made in main.c)
 *   pbx.c      calls through Asterisk: state from the link's events
 *   ws.c, ctlsrv.c, main.c: the two protocols and the process
 */

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

#define RELAY_WS_MSG_MAX       (64 * 1024) /* one inbound message, reassembled */
#define RELAY_WS_RX_BUF        2048        /* lws rx buffer per socket */
#define RELAY_WS_TX_PACKET     (256 * 1024)  /* one send() per frame */
#define RELAY_Q_MAX            1024          /* messages queued per socket */
#define RELAY_Q_BYTES_MAX      (1024 * 1024) /* bytes queued per socket */
#define RELAY_QUEUED_MAX       (64 * 1024 * 1024) /* all sockets together */
#define RELAY_OUTBOX_MAX       (8 * 1024 * 1024)  /* unwritten own events */
#define RELAY_PING_S           30    /* server ping after this much silence */
#define RELAY_HANGUP_S         70    /* no pong by then: the peer is gone */
#define RELAY_DB_START_BUSY_MS 10000 /* calls and stream checks at start */
#define RELAY_DB_BUSY_MS       200
#define RELAY_SLOW_KILL_S      30 /* a slow socket that cannot take its close */
#define RELAY_GRACE_S          10 /* a call's party may be without sockets */
#define RELAY_STALE_S          120 /* no socket, no heartbeat: offline */
#define RELAY_SWEEP_S          60  /* how often stale presence is looked for */
#define RELAY_SOCKETS_MAX      16  /* per user: five per page, three pages */
#define RELAY_RX_FRAMES_S      50  /* inbound frames per second per socket */
#define RELAY_RX_FRAMES_BURST  200
#define RELAY_RX_BYTES_S       (512 * 1024) /* inbound bytes per second */
#define RELAY_RX_BYTES_BURST   (1024 * 1024)

/* Close codes the relay sends (besides 1002, 1007 and 1009). */
#define RELAY_CLOSE_EXPIRED 4001 /* the token expired */
#define RELAY_CLOSE_REVOKED 4003 /* the user's tokens were revoked */
#define RELAY_CLOSE_SLOW    4008 /* the send queue overflowed */

/*
 * A message built once and shared by every queue that holds it. An event's
 * text lacks its leading '{': it is written after {"seq":N, so a message
 * needs no copy per seq.
 */
struct msg {
	uint32_t refs;
	uint32_t len;
	bool event;
	char text[]; /* len bytes and a NUL */
};

struct qent {
	struct msg *m;
	int64_t seq; /* 0 for messages outside the stream, which carry none */
};

struct call;
struct roster_user;

/* A browser socket: the ws protocol's per-session data (kept small). */
struct client {
	struct lws *wsi;
	struct roster_user *user;
	struct client *next, *prev; /* the user's sockets */
	struct qent *q;             /* send queue, allocated while non-empty */
	uint32_t qbytes;
	uint16_t qcap, qhead, qlen;
	uint16_t close_code; /* closing: the code it is sent */
	bool attached, closing, replaying, rx_binary;
	bool rx_dropping, rx_limited; /* over the inbound limit */
	char *rx; /* a fragmented message being reassembled */
	uint32_t rxlen;
	struct client *next_closing; /* closing, not yet out of the roster */
	int64_t since;               /* replaying: the last seq queued */
	int64_t exp;                 /* token expiry, unix s; 0 none */
	int64_t gen;      /* token generation; -1: no token (legacy) */
	int64_t rx_at_us; /* the token bucket's last refill */
	double rx_frames, rx_bytes;
};

/*
 * What the relay knows of one user. Only users with a socket, a live call
 * or a presence change not yet written have one: an offline user costs
 * nothing, its replay comes from the database.
 */
struct roster_user {
	int64_t id;
	char extension[16];
	char username[64];
	char role[16];
	struct roster_user *next_id, *next_ext; /* hash chains */
	struct roster_user *next, *prev;        /* every entry */
	struct client *clients;
	unsigned nclients;
	bool presence_dirty, online_written;
	bool online_next; /* what the pending write says, then written */
	char said_type[24]; /* a status the user sent, not yet written */
	char said_status[16];
	struct roster_user *next_dirty;
	struct call *calls; /* live calls this user is part of */
};

struct relay_stats {
	uint64_t events;      /* stream rows delivered */
	uint64_t delivered;   /* messages queued to sockets */
	uint64_t written;     /* frames written */
	uint64_t slow_closed; /* sockets closed for falling behind */
	uint64_t revoked_closed;
	uint64_t rx_dropped; /* messages dropped over the inbound limit */
	uint64_t frames_in;
	uint64_t invalid_in;
	uint64_t auth_failed;
	uint64_t notify_rows;
	uint64_t replayed;
	uint64_t ctl_requests;
	uint64_t connections; /* sockets ever attached */
	uint64_t outbox_dropped;
};

struct relay {
	struct config cfg;
	struct db *db;
	struct lws_context *ctx;
	bool stopping;
	int64_t started_us;
	int call_grace_s;            /* CALL_DISCONNECT_GRACE_S */
	int presence_stale_s;        /* PRESENCE_STALE_S */
	int sockets_max;             /* WS_MAX_SOCKETS_PER_USER */
	int rx_frames_s, rx_bytes_s; /* WS_RX_FRAMES_PER_S, WS_RX_BYTES_PER_S */

	/* roster.c */
	struct roster_user **by_id, **by_ext;
	size_t nbuckets;
	struct roster_user *users; /* every entry */
	size_t nusers;
	size_t nclients;

	/* sock.c */
	struct client *closing;
	lws_sorted_usec_list_t sul_reap;
	unsigned char *sendbuf;
	size_t sendcap;
	uint64_t queued; /* bytes in all send queues */
	/* A closing socket left its user, who has no socket left: set by
	 * ws.c, which tells presence and calls (sock.c imports neither). */
	void (*user_gone)(struct relay *, struct roster_user *);

	/* presence.c */
	struct roster_user *dirty;
	lws_sorted_usec_list_t sul_presence;
	lws_sorted_usec_list_t sul_sweep;
	int64_t sweep_after; /* the id the current sweep resumes after */

	/* outbox.c */
	struct outbox_item *ob_head, **ob_tail;
	size_t ob_bytes;
	lws_sorted_usec_list_t sul_outbox;

	/* ws.c: the upgrade authenticated in CONFIRM_UPGRADE, bound in FILTER
	 */
	struct relay_pending {
		struct lws *wsi;
		struct auth_user au; /* au.id 0: legacy, by extension */
		int64_t since, exp, gen;
		bool has_since, has_epoch;
		char epoch[40];
	} pending;

	/* pump.c: the stream */
	int64_t cursor; /* the last row delivered */
	int64_t pruned_through;
	char epoch[40];
	lws_sorted_usec_list_t sul_pump, sul_prune;

	/* calls.c */
	struct call *calls;
	size_t ncalls;

	/* cluster.c, wake.c: NULL on SQLite */
	struct cluster *cluster;
	struct wake *wake;
	struct amilink *ami; /* amilink.c: the manager link (maybe disabled) */
	/* main.c: the hold that makes this relay the one driving Asterisk;
	 * without it the link is a disabled one, on standby. */
	struct db_hold *ami_hold;
	bool ami_standby;
	lws_sorted_usec_list_t sul_ami_hold;
	struct pbx *pbx;     /* pbx.c: calls through Asterisk */

	struct relay_stats stats;
};

/* main.c */
struct relay *relay_from_wsi(struct lws *wsi);

/* msg.c */
struct msg *msg_new(const char *text, size_t len, bool event);
/* Serialize o; an event drops the leading '{'. NULL on failure. */
struct msg *msg_json(struct json_object *o, bool event);
struct msg *msg_ref(struct msg *m);
void msg_unref(struct msg *m);

/* roster.c */
int roster_init(struct relay *r, struct err *e);
void roster_free(struct relay *r);
/* The entry of a user the relay holds state for, or NULL. */
struct roster_user *roster_by_id(struct relay *r, int64_t id);
struct roster_user *roster_by_ext(struct relay *r, const char *ext);
/* The same, loading the user from the database when it has no entry
 * (NULL: no such user, or an error, logged). Pair with roster_release. */
struct roster_user *roster_load_id(struct relay *r, int64_t id);
struct roster_user *roster_load_ext(struct relay *r, const char *ext);
/* The entry of au, created or refreshed from its database row. */
struct roster_user *roster_update(struct relay *r, const struct auth_user *au);
/* Read u's row again: 1, 0 when the user is gone (u loses its
 * extension), -1 on error. */
int roster_reload(struct relay *r, struct roster_user *u);
/* Forget u if nothing holds it: no socket, no call, nothing to write. */
void roster_release(struct relay *r, struct roster_user *u);

/* sock.c */
/* Queue m with seq (0: outside the stream); false when it was not. */
bool sock_send(struct relay *r, struct client *c, struct msg *m, int64_t seq);
/* Close c with code and reason (a literal) once it can take the frame;
 * it gets nothing more and leaves its user at once. */
void sock_close(struct relay *r, struct client *c, int code,
    const char *reason);
/* Into its user's sockets; out of them (CLOSED). Each returns whether the
 * user's socket count went from or to zero. */
bool sock_attach(struct relay *r, struct client *c);
bool sock_detach(struct relay *r, struct client *c);
/* The WRITEABLE callback's work: one frame. -1 closes the socket. */
int sock_write(struct relay *r, struct client *c);
void sock_stop(struct relay *r);
void sock_free(struct relay *r);

/* fanout.c: events, each queued once to each socket it concerns */
struct msg *fan_event(struct relay *r, const char *payload, size_t len);
size_t fan_user(struct relay *r, struct roster_user *u, struct msg *m,
    int64_t seq);
size_t fan_all(struct relay *r, struct msg *m, int64_t seq);
/* role NULL: every connected user, as fan_all. */
size_t fan_role(struct relay *r, const char *role, struct msg *m, int64_t seq);
/* One step of c's replay from the stream: up to a chunk of rows after
 * c->since up to the cursor; c->replaying ends when it has caught up. */
void fan_replay(struct relay *r, struct client *c);

/* outbox.c: the relay's own writes, done in order on the next turn of the
 * loop, retried while the database is busy. */
void outbox_notify(struct relay *r, enum notify_target target,
    const char *value, struct json_object *payload);
void outbox_notify_user(struct relay *r, int64_t id,
    struct json_object *payload);
void outbox_answer(struct relay *r, int64_t log_id, int64_t at_us);
void outbox_close(struct relay *r, int64_t log_id, int how, int64_t at_us);
/* fn(r, data, e) inside the next batch's transaction, in order with the
 * rest; data (len bytes) is copied. fn returns 0, or -1 with e set (ERR_BUSY
 * retries the whole batch: fn must be safe to run again). */
typedef int (*outbox_fn_t)(struct relay *r, const void *data, struct err *e);
void outbox_call(struct relay *r, outbox_fn_t fn, const void *data,
    size_t len);
void outbox_stop(struct relay *r);
/* After the loop: one last try, then whatever is left is freed. */
void outbox_free(struct relay *r);

/* presence.c */
/* u's socket count went from or to zero. */
void presence_changed(struct relay *r, struct roster_user *u);
/* u said type ("user_status", "user_status_changed") with status. */
void presence_said(struct relay *r, struct roster_user *u, const char *type,
    const char *status);
/* Start the stale presence sweep: now, then every RELAY_SWEEP_S. */
void presence_start(struct relay *r);
void presence_stop(struct relay *r);
void presence_free(struct relay *r);

/* ws.c: u has no socket left (r->user_gone) */
void ws_user_gone(struct relay *r, struct roster_user *u);

/* ws.c, ctlsrv.c: the protocols of the two vhosts */
extern const struct lws_protocols ws_protocols[];
extern const struct lws_protocols ctl_protocols[];

/* pump.c */
int pump_init(struct relay *r, struct err *e);
void pump_kick(struct relay *r);
void pump_stop(struct relay *r);

/* pbx.c: calls placed through Asterisk, their state from its events */
struct pbx;
struct ami_msg;
int pbx_init(struct relay *r, struct err *e);
void pbx_free(struct relay *r);
/* The amilink handlers (arg: the relay). */
void pbx_on_event(void *arg, const struct ami_msg *m);
void pbx_on_state(void *arg, enum amilink_state s);
/* ctl ops: each returns its reply object (NULL: out of memory). */
struct json_object *pbx_ctl_originate(struct relay *r, struct json_object *rq);
struct json_object *pbx_ctl_hangup(struct relay *r, struct json_object *rq);
struct json_object *pbx_ctl_answer(struct relay *r, struct json_object *rq);
struct json_object *pbx_ctl_active(struct relay *r, struct json_object *rq);
struct json_object *pbx_ctl_health(struct relay *r, struct json_object *rq);
struct json_object *pbx_ctl_endpoints(struct relay *r, struct json_object *rq);

/* calls.c */
int calls_init(struct relay *r, struct err *e);
void calls_stop(struct relay *r);
struct call *calls_find(const struct roster_user *u, const char *call_id);
struct call *calls_find_peer(const struct roster_user *u, const char *peer_ext,
    const char *call_id);
struct roster_user *calls_peer(const struct call *c,
    const struct roster_user *u);
/* Whether a message of type may pass within c (an ended call still lets
 * the late end messages through). */
bool calls_allows(const struct call *c, const char *type);
int calls_invite(struct relay *r, const char *call_id, const char *caller_ext,
    const char *callee_ext, struct json_object *invitation,
    struct json_object *initiated, size_t *delivered, struct err *e);
/* After a webrtc_* message from `from` was forwarded within c. */
void calls_signal(struct relay *r, struct call *c, struct roster_user *from,
    const char *type);
void calls_hangup(struct relay *r, struct call *c, struct roster_user *by);
void calls_answer(struct relay *r, struct call *c, struct roster_user *by);
/* ctl call_end: the log was closed over REST; tell both, end the call.
 * False when no live call has that id. */
bool calls_end(struct relay *r, const char *call_id, const char *by_ext);
/* u's last socket closed: its live calls wait r->call_grace_s for it. */
void calls_absent(struct relay *r, struct roster_user *u);
/* u has a socket again: its calls stop waiting. */
void calls_present(struct relay *r, struct roster_user *u);
/*
 * Another relay's call that u's message concerns (named by call_id, else
 * the live one with the holder of peer_ext), taken over from its call_logs
 * row: NULL when there is none. The adopting relay runs no ring timer.
 */
struct call *calls_adopt(struct relay *r, struct roster_user *u,
    const char *peer_ext, const char *call_id);
/* A message another relay forwarded to u: a step of u's peer within one
 * of u's calls here (accepted, rejected, ended) is applied. */
void calls_remote_signal(struct relay *r, struct roster_user *u,
    struct json_object *o);

/* cluster.c */
int cluster_start(struct relay *r, struct err *e);
bool cluster_on(const struct relay *r);
/* o (not taken) to u's sockets on the other relays, written on the next
 * turn of the loop. */
void cluster_send(struct relay *r, const struct roster_user *u,
    struct json_object *o);
/* Read the other relays' mail: 1 more may wait, 0 not, -1 error. */
int cluster_pump(struct relay *r);
/* Inside presence's transaction: record u's sockets here; *online is
 * whether any live relay holds one, *write whether the row must change. */
int cluster_presence(struct relay *r, const struct roster_user *u,
    bool *online, bool *write, struct err *e);
/* How many sockets of u the other live relays hold. */
int64_t cluster_sockets_elsewhere(struct relay *r, const struct roster_user *u);
void cluster_stop(struct relay *r);
void cluster_free(struct relay *r);

/* wake.c */
int wake_start(struct relay *r, struct err *e);
bool wake_enabled(const struct relay *r);
/* On LWS_CALLBACK_EVENT_WAIT_CANCELLED: kick the pump if woken. */
void wake_check(struct relay *r);
void wake_stop(struct relay *r);

#endif
