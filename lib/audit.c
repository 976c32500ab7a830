#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/audit.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"

enum q { Q_INSERT, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_INSERT] = "INSERT INTO audit_log (at, actor_id, action, target, "
		     "details) VALUES (?1, ?2, ?3, ?4, ?5)",
};

int
audit_insert(struct db *db, int64_t actor_id, const char *action,
    const char *target, struct json_object *details, struct err *e)
{
	struct db_stmt *st;
	char now[40];
	const char *text = NULL;

	db_now(now, sizeof(now));
	if (details != NULL && (text = jh_text(details, NULL)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if ((st = db_stmt(db, sql[Q_INSERT], e)) == NULL)
		return -1;
	db_bind_text(st, 1, now);
	if (actor_id > 0)
		db_bind_int(st, 2, actor_id);
	else
		db_bind_null(st, 2);
	db_bind_text(st, 3, action);
	db_bind_text(st, 4, target);
	db_bind_text(st, 5, text);
	return db_done(db, st, e);
}

int
audit_user(struct db *db, int64_t actor_id, const char *action, int64_t user_id,
    struct json_object *details, struct err *e)
{
	char target[32];

	snprintf(target, sizeof(target), "user:%" PRId64, user_id);
	return audit_insert(db, actor_id, action, target, details, e);
}
