#ifndef LIB_DB_LISTEN_H
#define LIB_DB_LISTEN_H

struct db;
struct err;

/*
 * Wake-ups between processes that share a database: a writer calls
 * db_wake in its transaction, and every db_listener on the channel becomes
 * readable once that transaction commits (PostgreSQL's LISTEN/NOTIFY).
 * SQLite has no such thing; there a listener cannot be opened and readers
 * poll (on one machine the relay is also kicked over its control socket).
 * A wake-up carries nothing: the reader looks at the tables for what is
 * new, so wake-ups that were coalesced or lost cost latency, never rows.
 */
struct db_listener;

/*
 * A connection of its own, listening on channel (an identifier: letters,
 * digits, underscores). NULL with e->code ERR_OK when the engine has no
 * notifications; NULL with e set when it failed.
 */
struct db_listener *db_listen(const char *target, const char *channel,
    struct err *e);

/* The descriptor to poll for input. */
int db_listener_fd(struct db_listener *l);

/*
 * Read what arrived without blocking: the number of wake-ups (0 or more),
 * or -1 when the connection is lost (db_listener_reconnect).
 */
int db_listener_drain(struct db_listener *l, struct err *e);

/* Connect and LISTEN again; 0 or -1. */
int db_listener_reconnect(struct db_listener *l, struct err *e);

void db_listener_close(struct db_listener *l);

/*
 * Wake channel's listeners when the present transaction commits (at once
 * outside one). Nothing on SQLite.
 */
int db_wake(struct db *db, const char *channel, struct err *e);

#endif
