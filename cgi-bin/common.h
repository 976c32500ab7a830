#ifndef CGI_COMMON_H
#define CGI_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/config.h"

struct db;
struct err;
struct http;
struct json_object;
struct sqlite3_stmt;

/* What every FastCGI program opens at start and closes at exit. */
struct cgi {
	struct config cfg;
	struct db *db;
	struct http *http;
};

/* Load config, start the log as program, open the database (which must be
 * migrated) and the HTTP side. On failure logs why and returns -1. */
int cgi_open(struct cgi *cgi, const char *program);
void cgi_close(struct cgi *cgi);

/* The column list cgi_user_render expects, for SELECTs on users. */
#define CGI_USER_COLUMNS                                                     \
	"id, username, email, extension, status, role, is_online, "          \
	"last_login, last_seen, created_at, updated_at"

/*
 * UserResponse (contract §1.5) from a row whose first columns, from col,
 * are CGI_USER_COLUMNS: id, username, email, extension, status, role,
 * is_online (bool), last_login, last_seen, created_at (null when NULL).
 * With_updated adds "updated_at" (the nested User shape). New object.
 */
struct json_object *cgi_user_render(struct sqlite3_stmt *st, int col,
    bool with_updated);

/* The zero User of a missing user (id 0, empty strings, zero time). */
struct json_object *cgi_user_zero(void);

/* Load user id as UserResponse. ERR_NOTFOUND "User not found". */
struct json_object *cgi_user_by_id(struct db *db, int64_t id, struct err *e);

/* {"success":true} plus the given key taking ownership of val. */
struct json_object *cgi_ok(const char *key, struct json_object *val);

#endif
