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
 * Hard limits stop one address: AUTH_LOGIN_MAX_PER_PAIR failures for one
 * username from one address, AUTH_LOGIN_MAX_PER_ADDR from one address in
 * all, inside AUTH_LOGIN_WINDOW_S. An account as such is never locked,
 * since then anyone could lock its owner out: past AUTH_LOGIN_DELAY_FREE
 * failures from anywhere it is only slowed down (auth_login_delay_ms).
 *
 * auth_login_begin, outside any transaction: checks the limits and records
 * the attempt as a failure in one BEGIN IMMEDIATE, so parallel attempts
 * see each other and a burst gets exactly the limit. ERR_RATE_LIMITED
 * (retry_after_s set) writes nothing. *delay_ms gets how long the caller
 * waits before checking the password.
 *
 * auth_login_succeeded, inside the caller's transaction: forgets the
 * failures of username from addr, this attempt's included. The others'
 * failures stay: they still count for their addresses and for the delay.
 */
int auth_login_begin(struct db *db, const char *username, const char *addr,
    int *delay_ms, struct err *e);
int auth_login_succeeded(struct db *db, const char *username, const char *addr,
    struct err *e);

/*
 * The wait before the password is checked, for an account with failures
 * recent failed logins from any address: 0 up to AUTH_LOGIN_DELAY_FREE,
 * then AUTH_LOGIN_DELAY_MS doubling with each one, up to
 * AUTH_LOGIN_DELAY_MAX_MS. The wait holds a FastCGI worker, which is why
 * the cap is low: a higher one would make tying the workers up cheaper.
 */
int auth_login_delay_ms(int failures);

#define AUTH_LOGIN_MAX_PER_PAIR 5
#define AUTH_LOGIN_MAX_PER_ADDR 20
#define AUTH_LOGIN_WINDOW_S     300
#define AUTH_LOGIN_DELAY_FREE   3
#define AUTH_LOGIN_DELAY_MS     250
#define AUTH_LOGIN_DELAY_MAX_MS 4000

/*
 * Inside the caller's write transaction, before a public registration
 * spends a password hash: ERR_RATE_LIMITED "Too many registrations"
 * (retry_after_s set, nothing written) when addr has registered max times
 * in the last AUTH_REGISTER_WINDOW_S; else counts this one for addr.
 */
int auth_register_record(struct db *db, const char *addr, int max,
    struct err *e);

#define AUTH_REGISTER_WINDOW_S 3600

#endif
