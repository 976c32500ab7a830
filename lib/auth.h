#ifndef LIB_AUTH_H
#define LIB_AUTH_H

#include <stdbool.h>
#include <stdint.h>

struct config;
struct db;
struct err;

/*
 * Tokens: HS256 JWTs with the voip-application claims (user_id, username,
 * extension, role, iss "voip-backend", sub, exp, nbf, iat) plus "jti" and
 * "gen", the user's token generation. Revoking a user's tokens bumps the
 * generation in the database; a token whose gen is not the current one is
 * refused. Roles always come from the database, never from the claim.
 */

#define AUTH_ISSUER "voip-backend"

struct auth_user {
	int64_t id;
	char username[64];
	char extension[16];
	char role[16]; /* "user" or "admin" */
	bool is_admin;
};

struct auth_claims {
	int64_t user_id;
	char username[64];
	char extension[16];
	char role[16];
	char jti[40];
	int64_t gen;
	int64_t iat, nbf, exp;
};

/*
 * Sign a token for u at its current generation. *token is malloc'd (the
 * caller frees it); claims (may be NULL) gets what was signed.
 */
int auth_token_issue(struct db *db, const struct config *cfg,
    const struct auth_user *u, char **token, struct auth_claims *claims,
    struct err *e);

/*
 * Verify signature (HS256 only: "none" and every other alg are refused),
 * expiry, not-before and issuer, without the database. ERR_AUTH with msg
 * "Invalid token: <reason>" on failure.
 */
int auth_token_decode(const struct config *cfg, const char *token,
    struct auth_claims *claims, struct err *e);

/*
 * decode, then check against the database: the user exists and the token's
 * gen is current. Fills u from the database row. ERR_AUTH on failure.
 */
int auth_token_verify(struct db *db, const struct config *cfg,
    const char *token, struct auth_claims *claims, struct auth_user *u,
    struct err *e);

/*
 * The user row of id into u, provided gen is still its token generation:
 * what every credential derived from a token (a WebSocket ticket) is
 * checked with. ERR_AUTH "Invalid token: ..." when the user is gone or gen
 * was revoked.
 */
int auth_user_current(struct db *db, int64_t id, int64_t gen,
    struct auth_user *u, struct err *e);

/* Load the user row by id into u. ERR_NOTFOUND when absent. */
int auth_user_load(struct db *db, int64_t id, struct auth_user *u,
    struct err *e);

/* Revoke every token of user id now (bumps the generation). Runs inside the
 * caller's transaction when there is one. */
int auth_revoke_user(struct db *db, int64_t user_id, struct err *e);

/*
 * Login throttling, counted in the database so it holds across workers.
 * auth_login_check: ERR_RATE_LIMITED (retry_after_s set) when username or
 * addr has too many recent failures. auth_login_failed records one failure;
 * auth_login_succeeded forgets username's failures.
 */
int auth_login_check(struct db *db, const char *username, const char *addr,
    struct err *e);
int auth_login_failed(struct db *db, const char *username, const char *addr,
    struct err *e);
int auth_login_succeeded(struct db *db, const char *username, struct err *e);

#define AUTH_LOGIN_MAX_PER_USER 5
#define AUTH_LOGIN_MAX_PER_ADDR 20
#define AUTH_LOGIN_WINDOW_S     300

#endif
