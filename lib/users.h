#ifndef LIB_USERS_H
#define LIB_USERS_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/password.h"

struct db;
struct err;

/*
 * The account rules the REST programs and the command-line tool share: the
 * limits, what a valid username, role and status are, which duplicates are
 * refused, and how an account is written and removed.
 */

#define USERS_USERNAME_MIN  3
#define USERS_USERNAME_MAX  50
#define USERS_EMAIL_MIN     3
#define USERS_EMAIL_MAX     254
#define USERS_PASSWORD_MIN  6
#define USERS_PASSWORD_MAX  256
#define USERS_EXTENSION_MIN 4
#define USERS_EXTENSION_MAX 6

/*
 * Field-table rows (lib/json.h, which the user includes with <stddef.h>) for
 * the account fields with those limits, decoding into the member of the same
 * name of type; req says whether the field is required.
 */
#define USERS_FIELD_USERNAME(type, req)                                        \
	{                                                                      \
		"username", JH_TEXT, (req), USERS_USERNAME_MIN,                \
		    USERS_USERNAME_MAX, offsetof(type, username), 0            \
	}
#define USERS_FIELD_EMAIL(type, req)                                           \
	{                                                                      \
		"email", JH_EMAIL, (req), USERS_EMAIL_MIN, USERS_EMAIL_MAX,    \
		    offsetof(type, email), 0                                   \
	}
#define USERS_FIELD_PASSWORD(type, req)                                        \
	{                                                                      \
		"password", JH_TEXT, (req), USERS_PASSWORD_MIN,                \
		    USERS_PASSWORD_MAX, offsetof(type, password), 0            \
	}
#define USERS_FIELD_EXTENSION(type, req)                                       \
	{                                                                      \
		"extension", JH_DIGITS, (req), USERS_EXTENSION_MIN,            \
		    USERS_EXTENSION_MAX, offsetof(type, extension), 0          \
	}

/* The contract's texts for a taken username, email and extension. */
#define USERS_USERNAME_TAKEN  "Username already exists"
#define USERS_EMAIL_TAKEN     "Email already exists"
#define USERS_EXTENSION_TAKEN "Extension already exists"

/*
 * Whether s is well-formed UTF-8 with no control characters (C0, DEL,
 * C1), no invisible format marks (zero-width, direction overrides, BOM,
 * soft hyphen) and no blank at either end (space, no-break and the other
 * Unicode spaces); lengths are the field rows'. NULL is not valid.
 */
bool users_username_valid(const char *s);

/* Whether s is "user" or "admin". */
bool users_role_valid(const char *s);
#define USERS_ROLE_ERROR "Role must be 'user' or 'admin'"

/* Whether s is one of the statuses online, offline, busy, away. */
bool users_status_valid(const char *s);
#define USERS_STATUS_ERROR                                                     \
	"Invalid status. Must be one of: online, offline, busy, away"

/*
 * A new account, validated by the caller (field rows and checks above).
 * password is plain text, borrowed, and read by users_hash only; hash is
 * what users_hash makes of it, and the caller wipes it once done.
 */
struct users_new {
	const char *username;
	const char *email;
	const char *password;
	const char *extension;
	const char *role; /* NULL: "user" */
	char hash[PASSWORD_HASH_MAX];
};

/*
 * The yescrypt hash of u->password into u->hash. It is the slow part of
 * creating an account: call it before db_begin so no writer waits on it.
 */
int users_hash(struct users_new *u, struct err *e);

/*
 * Inside the caller's transaction: ERR_CONFLICT with the contract's text
 * when a user other than self_id (0: none) has username, email or extension,
 * checked in that order; each may be NULL (not checked). Usernames and
 * emails compare without regard to ASCII case ("Admin" is "admin").
 * Writes nothing.
 */
int users_conflicts(struct db *db, int64_t self_id, const char *username,
    const char *email, const char *extension, struct err *e);

/*
 * Inside the caller's transaction: users_conflicts, then the row of u with
 * u->hash (role, status offline, created_at = updated_at = db_now()). *id
 * gets its id. ERR_CONFLICT as users_conflicts, also when a UNIQUE
 * constraint stops a writer that raced the check. On failure nothing is
 * written.
 */
int users_insert(struct db *db, const struct users_new *u, int64_t *id,
    struct err *e);

/*
 * Inside the caller's transaction: revoke user id's tokens, delete its
 * active_calls rows and the user, and enqueue user_deleted to all
 * (deleted_by: by, null when by <= 0; username as given). Its call_logs
 * rows stay, with its side set to NULL (the other party's history). Whether
 * the user exists and may be deleted is the caller's to check.
 */
int users_delete(struct db *db, int64_t id, const char *username, int64_t by,
    struct err *e);

/*
 * Rewrite an ERR_CONFLICT from a write to users that names a UNIQUE column
 * into the contract's text; any other error is left as it is. Returns -1.
 */
int users_unique_text(struct err *e);

#endif
