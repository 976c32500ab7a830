#ifndef LIB_AUDIT_H
#define LIB_AUDIT_H

#include <stdint.h>

struct db;
struct err;
struct json_object;

/*
 * The audit_log table: one row per change, written inside the change's own
 * transaction so that a change rolled back leaves no row behind.
 */

/*
 * Inside the caller's transaction: one row at db_now(). actor_id <= 0 is
 * NULL (the system or the command-line tool); target and details may be
 * NULL (details is serialized, not taken). On failure nothing is written.
 */
int audit_insert(struct db *db, int64_t actor_id, const char *action,
    const char *target, struct json_object *details, struct err *e);

/* audit_insert with the target of an account, "user:<user_id>". */
int audit_user(struct db *db, int64_t actor_id, const char *action,
    int64_t user_id, struct json_object *details, struct err *e);

#endif
