#ifndef LIB_NOTIFY_H
#define LIB_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct err;
struct json_object;

/*
 * Events for browsers: a row in the notify table written inside the
 * caller's transaction. The table is a stream: a row's id is the seq its
 * readers see, ids only grow, and a reader's events are the rows addressed
 * to it, in id order (so its seqs increase but skip the rows of others).
 * The stream's epoch names one unbroken run of ids (see notify_stream_get).
 */
enum notify_target {
	NOTIFY_USER,      /* value: user id */
	NOTIFY_EXTENSION, /* value: extension */
	NOTIFY_ROLE,      /* value: "admin" / "user" */
	NOTIFY_ALL,       /* value: "" */
	NOTIFY__MAX
};

/*
 * The type of the event auth_revoke_user writes for a user: its tokens up
 * to generation "generation" are dead, and any of its rows (extension,
 * role, username, or the row itself) may have changed. Readers holding
 * state for the user reload it; the relay closes the user's sockets. It is
 * not something to show a browser.
 */
#define NOTIFY_TYPE_REVOKED "session_revoked"
/* How such a row's payload begins, as auth_revoke_user writes it. */
#define NOTIFY_REVOKED_PREFIX "{\"type\":\"" NOTIFY_TYPE_REVOKED "\","

/*
 * Whether a row is a revocation: addressed to a user, its payload
 * beginning with NOTIFY_REVOKED_PREFIX. Judged by shape, never by a search
 * of the text, which may hold a user's own words ("session_revoked" is a
 * valid username).
 */
bool notify_is_revocation(enum notify_target target, const char *payload,
    size_t len);

/* The LISTEN/NOTIFY channel on which writers wake the relays
 * (lib/db_listen.h). */
#define NOTIFY_CHANNEL "switchboard_stream"

/* Insert one event; payload is serialized, not taken. */
int notify_enqueue(struct db *db, enum notify_target target, const char *value,
    struct json_object *payload, struct err *e);

/* The same with the payload's text (a JSON object, len bytes). */
int notify_enqueue_text(struct db *db, enum notify_target target,
    const char *value, const char *payload, size_t len, struct err *e);

/* "user", "extension", "role", "all"; and back (-1 when unknown). */
const char *notify_target_name(enum notify_target t);
int notify_target_parse(const char *name);

/* One row as a reader gets it; the pointers die when the callback returns. */
struct notify_event {
	int64_t id; /* the seq */
	enum notify_target target;
	const char *value;
	const char *payload; /* a JSON object's text */
	size_t len;
};

/* Return 0 to go on, anything else to stop after this row. */
typedef int (*notify_fn)(void *arg, const struct notify_event *ev);

/*
 * The events for one user, read from the database only (no process needs
 * to be running): rows with since < id <= upto (upto 0: no bound), in id
 * order, at most limit of them, whose target is that user's id, its
 * extension, its role, or everyone. The extension and role are the ones
 * given, i.e. the user's present ones: a row addressed to an extension
 * before it changed hands goes to its present holder. fn is called for
 * each row; the return is the number of rows passed to fn (fewer than
 * limit: there were no more), or -1 on error (rows already passed stay
 * passed). Rows of type NOTIFY_TYPE_REVOKED are passed too.
 */
int notify_read_for(struct db *db, int64_t user_id, const char *extension,
    const char *role, int64_t since, int64_t upto, size_t limit, notify_fn fn,
    void *arg, struct err *e);

/*
 * The stream as it stands: its epoch, the newest id (0 for none yet) and
 * the id through which the retention deleted rows: a reader that last saw
 * seq S of the same epoch can be replayed when pruned_through <= S <= last.
 */
struct notify_stream {
	char epoch[40];
	int64_t last;
	int64_t pruned_through;
};
int notify_stream_get(struct db *db, struct notify_stream *s, struct err *e);

/*
 * {"type":"resync_required","epoch":E,"last_seq":N} for s: what a reader
 * whose since cannot be replayed is told, by the socket and the long-poll
 * alike. NULL when out of memory; the caller owns it.
 */
struct json_object *notify_resync_message(const struct notify_stream *s);

/* Whether a reader presenting (epoch, since) can be replayed from s;
 * epoch NULL: not presented, taken to be s's. */
int notify_stream_replayable(const struct notify_stream *s, const char *epoch,
    int64_t since);

/*
 * For the one consumer that watches over the stream (the relay), at its
 * start: when the table went back below the high-water mark, or rows past
 * pruned_through are missing that the retention did not delete (a restored
 * or wiped table), a new epoch is drawn and everything before the present
 * newest id counts as pruned. Then the high-water mark is raised to the
 * newest id. *rotated (may be NULL) says whether a new epoch was drawn.
 * Its own transaction; -1 on error, nothing written.
 */
int notify_stream_check(struct db *db, int *rotated, struct err *e);

/* Raise the high-water mark to id (never lowers it). */
int notify_stream_mark(struct db *db, int64_t id, struct err *e);

/*
 * Retention: delete at most max_rows of the oldest rows created before
 * before_us (unix microseconds), raising pruned_through past them in the
 * same transaction. *deleted (may be NULL) gets how many went.
 */
int notify_prune(struct db *db, int64_t before_us, int max_rows, int *deleted,
    struct err *e);

#endif
