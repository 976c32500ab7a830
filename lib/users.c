#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "lib/auth.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/notify.h"
#include "lib/password.h"
#include "lib/users.h"

enum q { Q_CONFLICTS, Q_INSERT, Q_ACTIVE_CALLS_DELETE, Q_DELETE, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_CONFLICTS] =
	    "SELECT EXISTS (SELECT 1 FROM users "
	    "WHERE lower(username) = lower(CAST(?1 AS text)) AND id != ?4), "
	    "EXISTS (SELECT 1 FROM users "
	    "WHERE lower(email) = lower(CAST(?2 AS text)) AND id != ?4), "
	    "EXISTS (SELECT 1 FROM users WHERE extension = ?3 AND id != ?4)",
	[Q_INSERT] =
	    "INSERT INTO users (username, email, password, extension, status, "
	    "role, created_at, updated_at, is_online) "
	    "VALUES (?1, ?2, ?3, ?4, 'offline', ?5, ?6, ?6, 0) RETURNING id",
	[Q_ACTIVE_CALLS_DELETE] =
	    "DELETE FROM active_calls WHERE caller_id = ?1 OR callee_id = ?1",
	[Q_DELETE] = "DELETE FROM users WHERE id = ?1",
};

/* In the order the contract checks them, which is the columns' order. */
static const struct {
	const char *column;
	const char *taken;
} unique[] = {
	{ "users.username", USERS_USERNAME_TAKEN },
	{ "users.email", USERS_EMAIL_TAKEN },
	{ "users.extension", USERS_EXTENSION_TAKEN },
};
#define NUNIQUE (sizeof(unique) / sizeof(unique[0]))

/* The code point of the len-byte well-formed UTF-8 sequence at p. */
static unsigned long
cp_at(const unsigned char *p, size_t len)
{
	static const unsigned char lead[] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	unsigned long c = p[0] & lead[len];
	size_t i;

	for (i = 1; i < len; i++)
		c = c << 6 | (p[i] & 0x3fUL);
	return c;
}

/* C0, DEL and C1 controls. */
static bool
cp_control(unsigned long c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

/* Unicode White_Space, controls aside. */
static bool
cp_blank(unsigned long c)
{
	return c == 0x20 || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Invisible format characters: soft hyphen, zero-width marks, direction
 * overrides and isolates, the byte order mark. */
static bool
cp_invisible(unsigned long c)
{
	return c == 0xad || (c >= 0x200b && c <= 0x200f) ||
	       (c >= 0x202a && c <= 0x202e) || (c >= 0x2060 && c <= 0x2064) ||
	       (c >= 0x2066 && c <= 0x2069) || c == 0xfeff;
}

bool
users_username_valid(const char *s)
{
	const unsigned char *p;
	unsigned long c = 0;
	size_t len, n;
	bool first = true;

	if (s == NULL)
		return false;
	/*
	 * "admin ", "admin\u00a0" or "ad\u200bmin" would read as admin in
	 * every list: blanks only between other characters, controls and
	 * invisible marks nowhere, and the bytes well-formed UTF-8.
	 */
	p = (const unsigned char *)s;
	for (n = strlen(s); n > 0; p += len, n -= len) {
		/* The command-line tool's names come from argv, unchecked. */
		if ((len = jh_utf8_seq(p, n)) == 0)
			return false;
		c = cp_at(p, len);
		if (cp_control(c) || cp_invisible(c) || (first && cp_blank(c)))
			return false;
		first = false;
	}
	return !cp_blank(c);
}

bool
users_role_valid(const char *s)
{
	return s != NULL && (strcmp(s, "user") == 0 || strcmp(s, "admin") == 0);
}

bool
users_status_valid(const char *s)
{
	return s != NULL &&
	       (strcmp(s, "online") == 0 || strcmp(s, "offline") == 0 ||
		   strcmp(s, "busy") == 0 || strcmp(s, "away") == 0);
}

int
users_hash(struct users_new *u, struct err *e)
{
	return password_hash(u->password, u->hash, sizeof(u->hash), e);
}

int
users_conflicts(struct db *db, int64_t self_id, const char *username,
    const char *email, const char *extension, struct err *e)
{
	struct db_stmt *st;
	int r, taken[NUNIQUE];
	size_t i;

	if ((st = db_stmt(db, sql[Q_CONFLICTS], e)) == NULL)
		return -1;
	db_bind_text(st, 1, username);
	db_bind_text(st, 2, email);
	db_bind_text(st, 3, extension);
	db_bind_int(st, 4, self_id);
	if ((r = db_row(db, st, e)) == -1)
		return -1;
	if (r == 0)
		return err_set(e, ERR_INTERNAL, "conflict check gave no row");
	for (i = 0; i < NUNIQUE; i++)
		taken[i] = db_col_int(st, (int)i);
	db_reset(st);
	for (i = 0; i < NUNIQUE; i++)
		if (taken[i])
			return err_set(e, ERR_CONFLICT, "%s", unique[i].taken);
	return 0;
}

int
users_unique_text(struct err *e)
{
	size_t i;

	if (e->code != ERR_CONFLICT)
		return -1;
	for (i = 0; i < NUNIQUE; i++)
		if (strstr(e->msg, unique[i].column) != NULL)
			return err_set(e, ERR_CONFLICT, "%s", unique[i].taken);
	return -1;
}

int
users_insert(struct db *db, const struct users_new *u, int64_t *id,
    struct err *e)
{
	struct db_stmt *st;
	char now[40];

	if (users_conflicts(db, 0, u->username, u->email, u->extension, e) ==
	    -1)
		return -1;
	db_now(now, sizeof(now));
	if ((st = db_stmt(db, sql[Q_INSERT], e)) == NULL)
		return -1;
	db_bind_text(st, 1, u->username);
	db_bind_text(st, 2, u->email);
	db_bind_text(st, 3, u->hash);
	db_bind_text(st, 4, u->extension);
	db_bind_text(st, 5, u->role != NULL ? u->role : "user");
	db_bind_text(st, 6, now);
	/* Past the check only if a writer outside our lock (a tool on the
	 * same file) took the value meanwhile. */
	switch (db_row(db, st, e)) {
	case 1:
		*id = db_col_int(st, 0);
		return db_done(db, st, e);
	case 0:
		return err_set(e, ERR_INTERNAL, "insert returned no id");
	default:
		return users_unique_text(e);
	}
}

static int
exec_id(struct db *db, enum q q, int64_t id, struct err *e)
{
	struct db_stmt *st;

	if ((st = db_stmt(db, sql[q], e)) == NULL)
		return -1;
	db_bind_int(st, 1, id);
	return db_done(db, st, e);
}

static int
notify_deleted(struct db *db, int64_t id, const char *username, int64_t by,
    struct err *e)
{
	struct json_object *p;
	int rc;

	if ((p = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	if (by > 0)
		jh_add_int(p, "deleted_by", by);
	else
		jh_add_null(p, "deleted_by"); /* no account did it */
	jh_add_str(p, "type", "user_deleted");
	jh_add_int(p, "user_id", id);
	jh_add_str(p, "username", username);
	rc = notify_enqueue(db, NOTIFY_ALL, "", p, e);
	json_object_put(p);
	return rc;
}

int
users_delete(struct db *db, int64_t id, const char *username, int64_t by,
    struct err *e)
{
	/* token_generations has no foreign key, so the bump outlives the
	 * row: a token of the deleted id stays dead even if the id is ever
	 * reused. The call history stays: the schema's ON DELETE SET NULL
	 * leaves the other party's rows, and exports, with this side NULL. */
	if (auth_revoke_user(db, id, e) == -1 ||
	    exec_id(db, Q_ACTIVE_CALLS_DELETE, id, e) == -1 ||
	    exec_id(db, Q_DELETE, id, e) == -1)
		return -1;
	return notify_deleted(db, id, username, by, e);
}
