#ifndef LIB_DB_HOLD_H
#define LIB_DB_HOLD_H

struct err;

/*
 * A hold: at most one process, on any machine sharing the database, holds
 * a given name at a time, and a holder that dies loses it at once, so
 * another takes over. On PostgreSQL it is a session advisory lock on a
 * connection of its own (the server releases it when that connection
 * ends); on SQLite, where every process is on one machine, an flock on a
 * file beside the database (the kernel releases it with the process).
 */
struct db_hold;

/*
 * Try to take name (letters, digits, '-' and '_') on the database target
 * (as db_open takes it): 1 with *out set, 0 when someone else holds it,
 * -1 on error.
 */
int db_hold_try(const char *target, const char *name, struct db_hold **out,
    struct err *e);

/*
 * Whether h still holds: 1, or 0 when its connection was lost (the hold
 * with it: release it and try again). Does not block.
 */
int db_hold_check(struct db_hold *h);

/* Give it up; NULL is fine. */
void db_hold_release(struct db_hold *h);

#endif
