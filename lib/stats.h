#ifndef LIB_STATS_H
#define LIB_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct err;

/*
 * The figures of the admin area that come from the database, and the one
 * rule of who counts as online: the user's row says online (the relay
 * sets it while the user has a socket, login and the status route set it
 * too) and its last_seen is fresh, within PRESENCE_STALE_S (default 120 s,
 * the relay's stale sweep uses the same), which the REST heartbeat and
 * the relay's presence writes keep so.
 */

/* PRESENCE_STALE_S from the configuration, or 120. */
int stats_presence_s(void);

/* now_s less the presence window, in the db_now form, into buf. */
void stats_fresh_since(int64_t now_s, char *buf, size_t size);

/* Whether a user whose row says is_online and last_seen is online now;
 * fresh_since from stats_fresh_since. */
bool stats_online(bool is_online, const char *last_seen,
    const char *fresh_since);

struct stats_counts {
	int64_t total_users;
	int64_t online_users;
	int64_t calls_today; /* created since local midnight in tz */
	int64_t total_call_logs;
	int64_t successful_calls; /* answered or ended */
	int64_t total_duration_s; /* of the successful ones */
	int64_t open_calls;       /* ringing or answered, not ended */
};

/*
 * The counts as the database holds them now; "today" is the local day in
 * tz (an IANA name; NULL: the process's TZ). -1 with e set.
 */
int stats_counts(struct db *db, const char *tz, struct stats_counts *c,
    struct err *e);

/* "N days, N hours, N minutes", as the health reply writes an uptime. */
void stats_uptime_text(int64_t seconds, char *buf, size_t size);

#endif
