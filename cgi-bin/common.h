#ifndef CGI_COMMON_H
#define CGI_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth_user;
struct config;
struct db;
struct err;
struct http_req;
struct http_route;
struct jh_field;
struct json_object;
struct db_stmt;
struct users_new;

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/*
 * A program's whole main: load config, start the log as program, open the
 * HTTP side and the database (which must be migrated), serve routes until
 * told to stop, close. The exit status; on failure to start logs why.
 */
int cgi_serve(const char *program, const struct http_route *routes,
    size_t nroutes);

/* {"message","success":true,"user"}; takes user (also on failure). */
int cgi_reply_user(struct http_req *req, int status, const char *message,
    struct json_object *user, struct err *e);

/* The column list cgi_user_render expects, for SELECTs on users. */
#define CGI_USER_COLUMNS                                                       \
	"id, username, email, extension, status, role, is_online, "            \
	"last_login, last_seen, created_at, updated_at"

/* Their indexes. */
enum cgi_user_col {
	CGI_COL_ID,
	CGI_COL_USERNAME,
	CGI_COL_EMAIL,
	CGI_COL_EXTENSION,
	CGI_COL_STATUS,
	CGI_COL_ROLE,
	CGI_COL_IS_ONLINE,
	CGI_COL_LAST_LOGIN,
	CGI_COL_LAST_SEEN,
	CGI_COL_CREATED_AT,
	CGI_COL_UPDATED_AT
};

/*
 * UserResponse (contract §1.5) from a row whose first columns, from col,
 * are CGI_USER_COLUMNS: id, username, email, extension, status, role,
 * is_online (bool), last_login, last_seen, created_at (null when NULL).
 * With_updated adds "updated_at" (the nested User shape). Both end with
 * "online" (lib/stats.h: a socket or a fresh heartbeat). New object.
 */
struct json_object *cgi_user_render(struct db_stmt *st, int col,
    bool with_updated);

/*
 * A user with an open socket is online whatever its row says: in list (an
 * array of user objects, may be NULL) "online" becomes true for each user
 * whose extension the relay reports a socket for. Best effort, one short
 * question to the relay per list: when it does not answer, the rows'
 * own figure stands.
 */
void cgi_users_mark_sockets(struct http_req *req, struct json_object *list);

/* Column i as a string member ("" when NULL), or as a time (its text as
 * stored, null when NULL). */
void cgi_add_col_str(struct json_object *o, const char *key, struct db_stmt *st,
    int i);
void cgi_add_col_time(struct json_object *o, const char *key,
    struct db_stmt *st, int i);

/* The zero User of a missing user (id 0, empty strings, zero time). */
struct json_object *cgi_user_zero(void);

/*
 * The CGI_USER_COLUMNS row of user id: the statement stepped onto it, which
 * the caller resets once read. NULL with ERR_NOTFOUND "User not found".
 */
struct db_stmt *cgi_user_row(struct db *db, int64_t id, struct err *e);

/* Load user id as UserResponse. ERR_NOTFOUND "User not found". */
struct json_object *cgi_user_by_id(struct db *db, int64_t id, struct err *e);

/*
 * {"success":true} plus the given key taking ownership of val, the two keys
 * in alphabetical order as gin.H writes them. val NULL becomes null.
 */
struct json_object *cgi_ok(const char *key, struct json_object *val);

/* The caller of an HTTP_USER/HTTP_ADMIN route (dispatch guarantees one;
 * NULL with ERR_INTERNAL otherwise). */
const struct auth_user *cgi_me(struct http_req *req, struct err *e);

/*
 * The request body decoded by a field table (jh_decode). Any validation
 * failure is ERR_INVALID "Invalid request format" naming the field, as the
 * contract's binding errors read; ERR_TOO_LARGE passes through.
 */
int cgi_decode(struct http_req *req, const struct jh_field *fields,
    size_t nfields, void *out, struct err *e);

/*
 * Create a user (lib/users.h: hash, then in one transaction users_insert)
 * with its audit_log row (action, actor_id; actor_id <= 0 is NULL). *user
 * gets the new UserResponse (the caller owns it). On failure nothing is
 * written. in->hash is wiped either way.
 */
int cgi_user_create(struct db *db, struct users_new *in, int64_t actor_id,
    const char *action, struct json_object **user, struct err *e);

/*
 * Inside the caller's transaction: enqueue the REST form of
 * user_status_changed for user id (as it is now in the database) to all.
 * user (may be NULL) gets the UserResponse of the same row, owned by the
 * caller; it is left untouched on failure.
 */
int cgi_notify_user_status(struct db *db, int64_t id, struct json_object **user,
    struct err *e);

/*
 * The frontend config of GET /config: URLs from the public origin
 * (http_origin: configured, never the request's Host), Asterisk host and
 * SIP port from the settings table over the configuration.
 * New object, or NULL with e set.
 */
struct json_object *cgi_frontend_config(struct http_req *req, struct err *e);

/* Settings keys that /config/update writes and cgi_frontend_config reads. */
#define CGI_SETTING_ASTERISK_HOST "asterisk_host"
#define CGI_SETTING_AMI_PORT      "asterisk_ami_port"
#define CGI_SETTING_SIP_PORT      "sip_port"

/* Parse a positive int64 written in plain decimal digits. -1 if it is not. */
int cgi_parse_id(const char *s, int64_t *id);

/* Overwrite a borrowed string (a password in a request body) with zeros. */
void cgi_wipe(const char *s);

/* ---- PBX calls through the relay's AMI link (common_pbx.c) ---- */

/* A PBX call's id (also its channel in call_logs and active_calls). */
#define CGI_PBX_PREFIX          "pbx-call-"
#define CGI_PBX_CALL_ID_MAX     64
#define CGI_PBX_MSG_NO_ASTERISK "Asterisk is not connected"

/* A party of a PBX call, as the relay needs it; the strings are borrowed. */
struct cgi_pbx_party {
	int64_t id;
	const char *extension;
	const char *username;
};

/*
 * ERR_RATE_LIMITED (with retry_after_s) when caller started
 * CALL_ATTEMPTS_PER_MIN calls, WebRTC or PBX, in the minute before now_us;
 * run inside the transaction that writes the new call's row.
 */
int cgi_pbx_attempts_check(struct db *db, const struct config *cfg,
    int64_t caller, int64_t now_us, struct err *e);

/* A new PBX call id into buf (CGI_PBX_CALL_ID_MAX is enough). */
int cgi_pbx_call_id(char *buf, size_t size, struct err *e);

/*
 * rq (taken, may be NULL: out of memory) to the relay; its reply (owned by
 * the caller) when it says ok. Otherwise NULL with e: ERR_BUSY (503) when
 * the relay or Asterisk is not there, ERR_NOTFOUND and ERR_CONFLICT as the
 * relay's "code" says.
 */
struct json_object *cgi_pbx_ask(const struct config *cfg,
    struct json_object *rq, struct err *e);

/*
 * The call's two rows (call_logs 'initiated', active_calls 'ringing'), in
 * one transaction: *log_id. ERR_RATE_LIMITED past CALL_ATTEMPTS_PER_MIN;
 * on failure nothing is written.
 */
int cgi_pbx_rows_insert(struct db *db, const struct config *cfg, int64_t caller,
    int64_t callee, const char *call_id, int64_t *log_id, struct err *e);

/* The Originate was not sent: the rows go, so nothing stays 'initiated'.
 * Best effort: a failure is logged. */
void cgi_pbx_rows_delete(struct db *db, int64_t log_id, const char *call_id);

/*
 * Place a PBX call: a new id into call_id, the rows, then the relay's
 * pbx_originate (Asterisk rings caller's device and dials callee's
 * extension). The relay's reply (owned by the caller: "channel",
 * "call_id"), or NULL with e as cgi_pbx_ask says and the rows removed.
 */
struct json_object *cgi_pbx_originate(struct db *db, const struct config *cfg,
    const struct cgi_pbx_party *caller, const struct cgi_pbx_party *callee,
    char *call_id, size_t size, struct err *e);

/*
 * A relay request {op, user_id, call_id?, channel?} naming a call of
 * user_id (empty or NULL strings are left out); NULL when out of memory,
 * which cgi_pbx_ask reports.
 */
struct json_object *cgi_pbx_request(const char *op, int64_t user_id,
    const char *call_id, const char *channel);

/*
 * Best effort, after the call's row was closed: tell the relay the call
 * ended (by_extension: who hung up, "" for an admin), so both parties
 * hear it. The row is closed whether or not the relay hears of it.
 */
void cgi_relay_call_end(const struct config *cfg, const char *call_id,
    const char *by_extension);

#endif
