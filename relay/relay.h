#ifndef RELAY_RELAY_H
#define RELAY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "lib/config.h"

struct auth_user;
struct db;
struct err;
struct json_object;

/*
 * The relay: one process, one lws context, one thread. Shared state lives in
 * one struct relay (the context's user pointer); each connection kind keeps
 * its own state in the per-session data lws allocates for it.
 */

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

#define RELAY_WS_MSG_MAX     (64 * 1024)  /* one inbound message, reassembled */
#define RELAY_WS_RX_BUF      2048         /* lws rx buffer per socket */
#define RELAY_WS_TX_PACKET   (256 * 1024) /* one send() per frame */
#define RELAY_Q_MAX          1024         /* messages queued per socket */
#define RELAY_Q_BYTES_MAX    (1024 * 1024) /* bytes queued per socket */
#define RELAY_RING_MAX       256           /* events kept per user for replay */
#define RELAY_RING_BYTES_MAX (256 * 1024)
#define RELAY_PING_S         30 /* server ping after this much silence */
#define RELAY_HANGUP_S       70 /* no pong by then: the peer is gone */
#define RELAY_DB_BUSY_MS     200
#define RELAY_SLOW_KILL_S    30  /* a slow socket that cannot take its close */
#define RELAY_GRACE_S        10  /* a call's party may be without sockets */
#define RELAY_STALE_S        120 /* no socket, no heartbeat: offline */
#define RELAY_SWEEP_S        60  /* how often stale presence is looked for */

/* Close codes the relay sends (besides 1009 for an oversized message). */
#define RELAY_CLOSE_EXPIRED 4001 /* the token expired */
#define RELAY_CLOSE_SLOW    4008 /* the send queue overflowed */

/*
 * A message built once and shared by every queue and ring that holds it.
 * An event's text lacks its leading '{': it is written after {"seq":N, so
 * each recipient gets its own seq without a copy of the body per recipient.
 */
struct msg {
	uint32_t refs;
	uint32_t len;
	bool event;
	char text[]; /* len bytes and a NUL */
};

struct qent {
	struct msg *m;
	int64_t seq; /* 0 for replies, which carry none */
};

struct call;
struct hub_user;

/* A browser socket: the ws protocol's per-session data (kept small). */
struct client {
	struct lws *wsi;
	struct hub_user *user;
	struct client *next, *prev; /* the user's sockets */
	struct qent *q;             /* send queue, allocated while non-empty */
	uint32_t qbytes;
	uint16_t qcap, qhead, qlen;
	bool attached, slow, has_since, rx_binary;
	char *rx; /* a fragmented message being reassembled */
	uint32_t rxlen;
	struct client *next_slow; /* marked slow, not yet out of the hub */
	int64_t since;
	int64_t exp; /* token expiry, unix s; 0 none */
};

/*
 * What the relay knows of one user: created for every user at start and on
 * first need later, kept until exit. Events for a user get consecutive seqs
 * and the last RELAY_RING_MAX stay in the ring for ?since= replays, whether
 * or not a socket is open.
 */
struct hub_user {
	int64_t id;
	char extension[16];
	char username[64];
	char role[16];
	struct hub_user *next_id, *next_ext; /* hash chains */
	struct client *clients;
	unsigned nclients;
	int64_t next_seq;
	struct msg **ring;
	uint32_t ring_bytes;
	uint16_t ring_cap, ring_head, ring_len;
	bool complete; /* known since start: the ring began at the first seq */
	bool presence_dirty;
	struct hub_user *next_dirty;
	struct call *calls; /* live calls this user is part of */
};

struct relay_stats {
	uint64_t events;      /* seqs handed out */
	uint64_t delivered;   /* messages queued to sockets */
	uint64_t written;     /* frames written */
	uint64_t slow_closed; /* sockets closed for falling behind */
	uint64_t frames_in;
	uint64_t invalid_in;
	uint64_t auth_failed;
	uint64_t notify_rows;
	uint64_t ctl_requests;
	uint64_t connections; /* sockets ever attached */
};

struct relay {
	struct config cfg;
	struct db *db;
	struct lws_context *ctx;
	bool stopping;
	int64_t started_us;
	int64_t seq_base;     /* boot ms * 1000: seqs grow across restarts */
	int call_grace_s;     /* CALL_DISCONNECT_GRACE_S */
	int presence_stale_s; /* PRESENCE_STALE_S */

	/* hub.c */
	struct hub_user **by_id, **by_ext;
	size_t nbuckets;
	struct hub_user **users;
	size_t nusers, users_cap;
	size_t nclients;
	struct hub_user *dirty;
	lws_sorted_usec_list_t sul_presence;
	lws_sorted_usec_list_t sul_sweep;
	int64_t sweep_after; /* the id the current sweep resumes after */
	struct client *slow;
	lws_sorted_usec_list_t sul_reap;
	unsigned char *sendbuf;
	size_t sendcap;
	struct msg *welcome;

	/* ws.c: the upgrade authenticated in CONFIRM_UPGRADE, bound in FILTER
	 */
	struct {
		struct lws *wsi;
		struct hub_user *user;
		int64_t since, exp;
		bool has_since;
	} pending;

	/* pump.c */
	int64_t cursor;
	lws_sorted_usec_list_t sul_pump, sul_prune;

	/* calls.c */
	struct call *calls;
	size_t ncalls;

	struct relay_stats stats;
};

/* main.c: time */
struct relay *relay_from_wsi(struct lws *wsi);

/* hub.c: messages */
struct msg *msg_new(const char *text, size_t len, bool event);
/* Serialize o; an event drops the leading '{'. NULL on failure. */
struct msg *msg_json(struct json_object *o, bool event);
void msg_unref(struct msg *m);

/* hub.c: users and sockets */
int hub_init(struct relay *r, struct err *e);
/* Start the stale presence sweep: now, then every RELAY_SWEEP_S. */
void hub_sweep_start(struct relay *r);
void hub_stop(struct relay *r);
void hub_free(struct relay *r);
struct hub_user *hub_user_by_id(struct relay *r, int64_t id, bool load);
struct hub_user *hub_user_by_ext(struct relay *r, const char *ext, bool load);
/* The state of au, created or refreshed from the database row. */
struct hub_user *hub_user_update(struct relay *r, const struct auth_user *au);
void hub_attach(struct relay *r, struct client *c);
void hub_detach(struct relay *r, struct client *c);
/* A reply (no seq) to one socket; false when it was not queued. */
bool hub_reply(struct relay *r, struct client *c, struct msg *m);
/* Replay u's events after since to c, or tell it to resync. */
void hub_replay(struct relay *r, struct client *c, int64_t since);
/* Events: a seq for each user, into the ring, onto every socket. The
 * return is how many sockets it was queued to. */
size_t hub_push(struct relay *r, struct hub_user *u, struct msg *m);
size_t hub_push_all(struct relay *r, struct msg *m);
size_t hub_push_role(struct relay *r, const char *role, struct msg *m);
/* The WRITEABLE callback's work: one frame. -1 closes the socket. */
int hub_write(struct relay *r, struct client *c);

/* ws.c, ctlsrv.c: the protocols of the two vhosts */
extern const struct lws_protocols ws_protocols[];
extern const struct lws_protocols ctl_protocols[];

/* pump.c */
int pump_init(struct relay *r, struct err *e);
void pump_kick(struct relay *r);
void pump_stop(struct relay *r);

/* calls.c */
int calls_init(struct relay *r, struct err *e);
void calls_stop(struct relay *r);
struct call *calls_find(const struct hub_user *u, const char *call_id);
struct call *calls_find_peer(const struct hub_user *u, const char *peer_ext,
    const char *call_id);
struct hub_user *calls_peer(const struct call *c, const struct hub_user *u);
/* Whether a webrtc_* message of type may pass within c (an ended call
 * still lets the late end messages through). */
bool calls_allows(const struct call *c, const char *type);
int calls_invite(struct relay *r, const char *call_id, const char *caller_ext,
    const char *callee_ext, struct json_object *invitation,
    struct json_object *initiated, size_t *delivered, struct err *e);
/* After a webrtc_* message from `from` was forwarded within c. */
void calls_signal(struct relay *r, struct call *c, struct hub_user *from,
    const char *type);
void calls_hangup(struct relay *r, struct call *c, struct hub_user *by);
void calls_answer(struct relay *r, struct call *c, struct hub_user *by);
/* ctl call_end: the log was closed over REST; tell both, end the call.
 * False when no live call has that id. */
bool calls_end(struct relay *r, const char *call_id, const char *by_ext);
/* u's last socket closed: its live calls wait r->call_grace_s for it. */
void calls_absent(struct relay *r, struct hub_user *u);
/* u has a socket again: its calls stop waiting. */
void calls_present(struct relay *r, struct hub_user *u);

#endif
