#include <stddef.h>
#include <string.h>

#include <sqlite3.h>

#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/notify.h"

enum q { Q_INSERT, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_INSERT] = "INSERT INTO notify "
		     "(created_at, target_kind, target_value, payload) "
		     "VALUES (?1, ?2, ?3, ?4)",
};

static const char *const target_names[NOTIFY__MAX] = {
	[NOTIFY_USER] = "user",
	[NOTIFY_EXTENSION] = "extension",
	[NOTIFY_ROLE] = "role",
	[NOTIFY_ALL] = "all",
};

const char *
notify_target_name(enum notify_target t)
{
	if ((int)t < 0 || t >= NOTIFY__MAX)
		return NULL;
	return target_names[t];
}

int
notify_target_parse(const char *name)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < NOTIFY__MAX; i++)
		if (strcmp(target_names[i], name) == 0)
			return i;
	return -1;
}

int
notify_enqueue(struct db *db, enum notify_target target, const char *value,
    struct json_object *payload, struct err *e)
{
	const char *kind, *text;
	sqlite3_stmt *st;
	char now[40];
	size_t len;

	if ((kind = notify_target_name(target)) == NULL)
		return err_set(e, ERR_INTERNAL, "notify: bad target %d",
		    (int)target);
	if (payload == NULL || (text = jh_text(payload, &len)) == NULL)
		return err_set(e, ERR_INTERNAL, "notify: no payload");
	if ((st = db_stmt(db, sql[Q_INSERT], e)) == NULL)
		return -1;
	db_now(now, sizeof(now));
	sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, value != NULL ? value : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, text, (int)len, SQLITE_STATIC);
	return db_done(db, st, e);
}
