#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <json-c/json.h>
#include <jwt.h>

#include "lib/auth.h"
#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/notify.h"

/* Far above any token we sign; anything longer is not worth parsing. */
#define AUTH_TOKEN_MAX 8192

enum q {
	Q_GEN_GET,
	Q_USER_GET,
	Q_REVOKE,
	Q_FAIL_NTH_PAIR,
	Q_FAIL_NTH_ADDR,
	Q_FAIL_COUNT_USER,
	Q_FAIL_INSERT,
	Q_FAIL_PRUNE,
	Q_FAIL_FORGET,
	Q_REG_NTH_ADDR,
	Q_REG_INSERT,
	Q_REG_PRUNE,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_GEN_GET] =
	    "SELECT generation FROM token_generations WHERE user_id = ?1",
	[Q_USER_GET] = "SELECT u.id, u.username, u.extension, u.role, "
		       "COALESCE(t.generation, 0) FROM users u "
		       "LEFT JOIN token_generations t ON t.user_id = u.id "
		       "WHERE u.id = ?1",
	[Q_REVOKE] = "INSERT INTO token_generations "
		     "(user_id, generation, revoked_at) VALUES (?1, 1, ?2) "
		     "ON CONFLICT (user_id) DO UPDATE SET "
		     "generation = token_generations.generation + 1, "
		     "revoked_at = ?2 "
		     "RETURNING generation",
	/*
	 * The n-th newest failure inside the window (OFFSET n-1): when it
	 * exists the limit is reached, and it leaving the window is what
	 * brings the count back under the limit.
	 */
	[Q_FAIL_NTH_PAIR] = "SELECT at FROM login_attempts "
			    "WHERE addr = ?1 AND username = ?4 AND at > ?2 "
			    "ORDER BY at DESC LIMIT 1 OFFSET ?3",
	[Q_FAIL_NTH_ADDR] = "SELECT at FROM login_attempts "
			    "WHERE addr = ?1 AND at > ?2 "
			    "ORDER BY at DESC LIMIT 1 OFFSET ?3",
	[Q_FAIL_COUNT_USER] = "SELECT count(*) FROM login_attempts "
			      "WHERE username = ?1 AND at > ?2",
	[Q_FAIL_INSERT] = "INSERT INTO login_attempts (username, addr, at) "
			  "VALUES (?1, ?2, ?3)",
	[Q_FAIL_PRUNE] = "DELETE FROM login_attempts WHERE at <= ?1",
	[Q_FAIL_FORGET] =
	    "DELETE FROM login_attempts WHERE username = ?1 AND addr = ?2",
	[Q_REG_NTH_ADDR] = "SELECT at FROM register_attempts "
			   "WHERE addr = ?1 AND at > ?2 "
			   "ORDER BY at DESC LIMIT 1 OFFSET ?3",
	[Q_REG_INSERT] =
	    "INSERT INTO register_attempts (addr, at) VALUES (?1, ?2)",
	[Q_REG_PRUNE] = "DELETE FROM register_attempts WHERE at <= ?1",
};

static int
refuse(struct err *e, const char *reason)
{
	return err_set(e, ERR_AUTH, "Invalid token: %s", reason);
}

static int
secret_ok(const struct config *cfg, struct err *e)
{
	/*
	 * libjwt treats a missing key as "do not verify" and then accepts
	 * any token: never let an empty secret reach it.
	 */
	if (cfg->jwt_secret_len == 0 ||
	    cfg->jwt_secret_len > sizeof(cfg->jwt_secret) ||
	    cfg->jwt_secret_len > INT_MAX)
		return err_set(e, ERR_INTERNAL, "jwt secret is not set");
	return 0;
}

/* Copy src; -1 when it does not fit (never truncate names). */
static int
copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		return -1;
	memcpy(dst, src, n + 1);
	return 0;
}

/* A text column as copy_str; dflt when it is NULL. */
static int
copy_col(struct db_stmt *st, int col, char *dst, size_t size, const char *dflt)
{
	const char *s = db_col_text(st, col);

	return copy_str(dst, size, s != NULL ? s : dflt);
}

/* 1 with u and *gen filled, 0 when there is no such user, -1 on error. */
static int
user_get(struct db *db, int64_t id, struct auth_user *u, int64_t *gen,
    struct err *e)
{
	struct db_stmt *st;
	int rc;

	if ((st = db_stmt(db, sql[Q_USER_GET], e)) == NULL)
		return -1;
	db_bind_int(st, 1, id);
	if ((rc = db_row(db, st, e)) != 1)
		return rc;
	memset(u, 0, sizeof(*u));
	u->id = db_col_int(st, 0);
	if (copy_col(st, 1, u->username, sizeof(u->username), "") == -1 ||
	    copy_col(st, 2, u->extension, sizeof(u->extension), "") == -1 ||
	    copy_col(st, 3, u->role, sizeof(u->role), "user") == -1) {
		db_reset(st);
		return err_set(e, ERR_INTERNAL,
		    "user %lld: a column is too long", (long long)id);
	}
	*gen = db_col_int(st, 4);
	db_reset(st);
	u->is_admin = strcmp(u->role, "admin") == 0;
	return 1;
}

static int
gen_get(struct db *db, int64_t user_id, int64_t *gen, struct err *e)
{
	struct db_stmt *st;
	int rc;

	if ((st = db_stmt(db, sql[Q_GEN_GET], e)) == NULL)
		return -1;
	db_bind_int(st, 1, user_id);
	if ((rc = db_row(db, st, e)) == -1)
		return -1;
	*gen = 0;
	if (rc == 1) {
		*gen = db_col_int(st, 0);
		db_reset(st);
	}
	return 0;
}

/* 128 random bits as 32 hex digits. */
static int
make_jti(char *out, size_t size, struct err *e)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];
	size_t i, got = 0;
	ssize_t n;

	if (size < 2 * sizeof(r) + 1)
		return err_set(e, ERR_INTERNAL, "jti buffer too small");
	while (got < sizeof(r)) {
		if ((n = getrandom(r + got, sizeof(r) - got, 0)) < 0) {
			if (errno == EINTR)
				continue;
			return err_set(e, ERR_INTERNAL, "getrandom: %s",
			    strerror(errno));
		}
		got += (size_t)n;
	}
	for (i = 0; i < sizeof(r); i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[2 * sizeof(r)] = '\0';
	return 0;
}

int
auth_token_issue(struct db *db, const struct config *cfg,
    const struct auth_user *u, char **token, struct auth_claims *claims,
    struct err *e)
{
	struct auth_claims c;
	jwt_t *jwt = NULL;
	char *out;
	int bad;

	*token = NULL;
	if (secret_ok(cfg, e) == -1)
		return -1;
	if (cfg->jwt_expiry_hours <= 0)
		return err_set(e, ERR_INTERNAL, "jwt expiry hours must be > 0");
	memset(&c, 0, sizeof(c));
	c.user_id = u->id;
	if (copy_str(c.username, sizeof(c.username), u->username) == -1 ||
	    copy_str(c.extension, sizeof(c.extension), u->extension) == -1 ||
	    copy_str(c.role, sizeof(c.role), u->role) == -1)
		return err_set(e, ERR_INTERNAL, "user %lld: field too long",
		    (long long)u->id);
	if (make_jti(c.jti, sizeof(c.jti), e) == -1 ||
	    gen_get(db, u->id, &c.gen, e) == -1)
		return -1;
	c.iat = (int64_t)time(NULL);
	c.nbf = c.iat;
	c.exp = c.iat + (int64_t)cfg->jwt_expiry_hours * 3600;

	if (jwt_new(&jwt) != 0)
		return err_set(e, ERR_INTERNAL, "jwt_new: out of memory");
	bad = jwt_add_grant_int(jwt, "user_id", (long)c.user_id) ||
	      jwt_add_grant(jwt, "username", c.username) ||
	      jwt_add_grant(jwt, "extension", c.extension) ||
	      jwt_add_grant(jwt, "role", c.role) ||
	      jwt_add_grant(jwt, "iss", AUTH_ISSUER) ||
	      jwt_add_grant(jwt, "sub", c.username) ||
	      jwt_add_grant_int(jwt, "exp", (long)c.exp) ||
	      jwt_add_grant_int(jwt, "nbf", (long)c.nbf) ||
	      jwt_add_grant_int(jwt, "iat", (long)c.iat) ||
	      jwt_add_grant(jwt, "jti", c.jti) ||
	      jwt_add_grant_int(jwt, "gen", (long)c.gen) ||
	      jwt_set_alg(jwt, JWT_ALG_HS256,
		  (const unsigned char *)cfg->jwt_secret,
		  (int)cfg->jwt_secret_len);
	out = bad ? NULL : jwt_encode_str(jwt);
	jwt_free(jwt); /* scrubs libjwt's copy of the key */
	if (out == NULL)
		return err_set(e, ERR_INTERNAL, "jwt: cannot sign token");
	*token = out;
	if (claims != NULL)
		*claims = c;
	return 0;
}

/*
 * Why a keyed decode failed. Decoding again without a key only parses
 * (libjwt then skips the signature), which tells a forged or foreign
 * signature from garbage; nothing read here is trusted.
 */
static int
refuse_undecodable(const char *token, struct err *e)
{
	char reason[64];
	const char *alg, *name;
	jwt_alg_t a;
	jwt_t *jwt = NULL;

	if (jwt_decode(&jwt, token, NULL, 0) != 0) {
		jwt_free(jwt);
		return refuse(e, "token is malformed");
	}
	alg = jwt_get_header(jwt, "alg");
	a = alg != NULL ? jwt_str_alg(alg) : JWT_ALG_INVAL;
	if (a == JWT_ALG_HS256) {
		snprintf(reason, sizeof(reason), "signature is invalid");
	} else if ((name = jwt_alg_str(a)) != NULL) {
		/* The library's spelling, not the token's bytes. */
		snprintf(reason, sizeof(reason), "signing method %s is invalid",
		    name);
	} else {
		snprintf(reason, sizeof(reason), "token is malformed");
	}
	jwt_free(jwt);
	return refuse(e, reason);
}

/*
 * Three base64url segments, the first two not empty, at most
 * AUTH_TOKEN_MAX bytes in all. libjwt 1.10.2 writes one byte past a
 * zero-size buffer when a segment is empty, and copies each segment onto
 * the stack (alloca): such input must never reach it.
 */
static bool
token_shape_ok(const char *t)
{
	size_t i, dots = 0, seglen = 0;
	unsigned char ch;

	if (t == NULL)
		return false;
	for (i = 0; (ch = (unsigned char)t[i]) != '\0'; i++) {
		if (i >= AUTH_TOKEN_MAX)
			return false;
		if (ch == '.') {
			if (seglen == 0 || ++dots > 2)
				return false;
			seglen = 0;
		} else if ((ch >= 'A' && ch <= 'Z') ||
			   (ch >= 'a' && ch <= 'z') ||
			   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
			seglen++;
		} else {
			return false;
		}
	}
	return dots == 2;
}

/* An integer claim; -1 when missing or not a JSON integer. */
static int
claim_int(struct json_object *o, const char *key, int64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	errno = 0;
	*out = json_object_get_int64(v);
	return errno == 0 ? 0 : -1;
}

/* A string claim copied into dst; -1 when missing, not a string or long. */
static int
claim_str(struct json_object *o, const char *key, char *dst, size_t size)
{
	struct json_object *v;
	const char *s;
	size_t n;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n >= size || memchr(s, '\0', n) != NULL)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* Typed claims from the verified payload; reason set on failure. */
static int
claims_read(struct json_object *o, struct auth_claims *c, char *reason,
    size_t size)
{
	static const struct {
		const char *name;
		size_t off, size; /* size 0: an integer claim */
	} want[] = {
		{ "user_id", offsetof(struct auth_claims, user_id), 0 },
		{ "username", offsetof(struct auth_claims, username),
		    sizeof(c->username) },
		{ "extension", offsetof(struct auth_claims, extension),
		    sizeof(c->extension) },
		{ "role", offsetof(struct auth_claims, role), sizeof(c->role) },
		{ "jti", offsetof(struct auth_claims, jti), sizeof(c->jti) },
		{ "gen", offsetof(struct auth_claims, gen), 0 },
		{ "iat", offsetof(struct auth_claims, iat), 0 },
		{ "nbf", offsetof(struct auth_claims, nbf), 0 },
		{ "exp", offsetof(struct auth_claims, exp), 0 },
	};
	char iss[32], sub[sizeof(c->username)];
	char *base = (char *)c;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (want[i].size == 0)
			rc = claim_int(o, want[i].name,
			    (int64_t *)(void *)(base + want[i].off));
		else
			rc = claim_str(o, want[i].name, base + want[i].off,
			    want[i].size);
		if (rc == -1) {
			snprintf(reason, size,
			    "token claim '%s' is missing or invalid",
			    want[i].name);
			return -1;
		}
	}
	if (claim_str(o, "sub", sub, sizeof(sub)) == -1 ||
	    strcmp(sub, c->username) != 0) {
		snprintf(reason, size,
		    "token claim 'sub' is missing or invalid");
		return -1;
	}
	if (claim_str(o, "iss", iss, sizeof(iss)) == -1 ||
	    strcmp(iss, AUTH_ISSUER) != 0) {
		snprintf(reason, size, "token has invalid issuer");
		return -1;
	}
	if (c->user_id <= 0 || c->gen < 0 || c->jti[0] == '\0') {
		snprintf(reason, size, "token has invalid claims");
		return -1;
	}
	return 0;
}

/*
 * Tokens this process has already checked the signature and claims of. A
 * browser sends the same token with every request, and the HMAC and the two
 * JSON parses behind a check are most of a short request's work. Only the
 * same bytes under the same secret hit; expiry and not-before are checked on
 * every use and revocation is the caller's database check, so a cached token
 * is never trusted longer than an uncached one.
 */
#define CACHE_SLOTS     32
#define CACHE_TOKEN_MAX 1024

struct cache_slot {
	bool used;
	uint64_t secret_hash;
	char token[CACHE_TOKEN_MAX];
	struct auth_claims claims;
};

static struct cache_slot cache[CACHE_SLOTS];

static uint64_t
fnv1a(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u;

	while (len-- > 0) {
		h ^= (unsigned char)*p++;
		h *= 0x100000001b3u;
	}
	return h;
}

static struct cache_slot *
cache_slot(const char *token, size_t len)
{
	return &cache[fnv1a(token, len) % CACHE_SLOTS];
}

static bool
cache_get(const char *token, uint64_t secret_hash, struct auth_claims *c)
{
	size_t len = strlen(token);
	const struct cache_slot *slot;

	if (len >= CACHE_TOKEN_MAX)
		return false;
	slot = cache_slot(token, len);
	if (!slot->used || slot->secret_hash != secret_hash ||
	    strcmp(slot->token, token) != 0)
		return false;
	*c = slot->claims;
	return true;
}

static void
cache_put(const char *token, uint64_t secret_hash, const struct auth_claims *c)
{
	size_t len = strlen(token);
	struct cache_slot *slot;

	if (len >= CACHE_TOKEN_MAX)
		return;
	slot = cache_slot(token, len);
	memcpy(slot->token, token, len + 1);
	slot->secret_hash = secret_hash;
	slot->claims = *c;
	slot->used = true;
}

/* Claims that passed the signature check, valid at this moment? */
static int
claims_current(const struct auth_claims *c, char *reason, size_t size)
{
	int64_t now = (int64_t)time(NULL);

	if (now >= c->exp) {
		snprintf(reason, size, "token is expired");
		return -1;
	}
	if (now < c->nbf) {
		snprintf(reason, size, "token is not valid yet");
		return -1;
	}
	return 0;
}

int
auth_token_decode(const struct config *cfg, const char *token,
    struct auth_claims *claims, struct err *e)
{
	struct auth_claims c;
	struct json_object *o = NULL;
	char reason[96], *grants = NULL;
	uint64_t secret_hash;
	jwt_t *jwt = NULL;
	int rc = -1;

	if (secret_ok(cfg, e) == -1)
		return -1;
	if (!token_shape_ok(token))
		return refuse(e, "token is malformed");
	secret_hash = fnv1a(cfg->jwt_secret, cfg->jwt_secret_len);
	if (cache_get(token, secret_hash, &c)) {
		if (claims_current(&c, reason, sizeof(reason)) == -1)
			return refuse(e, reason);
		if (claims != NULL)
			*claims = c;
		return 0;
	}
	if (jwt_decode(&jwt, token, (const unsigned char *)cfg->jwt_secret,
		(int)cfg->jwt_secret_len) != 0) {
		jwt_free(jwt);
		return refuse_undecodable(token, e);
	}
	/*
	 * libjwt verifies with whatever HMAC the header names (HS384/HS512
	 * pass with our secret): only the one we sign with is accepted.
	 */
	if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
		snprintf(reason, sizeof(reason), "signing method %s is invalid",
		    jwt_alg_str(jwt_get_alg(jwt)) != NULL
			? jwt_alg_str(jwt_get_alg(jwt))
			: "unknown");
		goto refused;
	}
	if ((grants = jwt_get_grants_json(jwt, NULL)) == NULL ||
	    (o = jh_parse(grants, strlen(grants), NULL)) == NULL ||
	    !json_object_is_type(o, json_type_object)) {
		snprintf(reason, sizeof(reason), "token is malformed");
		goto refused;
	}
	memset(&c, 0, sizeof(c));
	if (claims_read(o, &c, reason, sizeof(reason)) == -1)
		goto refused;
	cache_put(token, secret_hash, &c);
	if (claims_current(&c, reason, sizeof(reason)) == -1)
		goto refused;
	if (claims != NULL)
		*claims = c;
	rc = 0;
	goto out;
refused:
	rc = refuse(e, reason);
out:
	json_object_put(o);
	free(grants);
	jwt_free(jwt);
	return rc;
}

int
auth_token_verify(struct db *db, const struct config *cfg, const char *token,
    struct auth_claims *claims, struct auth_user *u, struct err *e)
{
	struct auth_claims c;
	struct auth_user row;

	if (auth_token_decode(cfg, token, &c, e) == -1 ||
	    auth_user_current(db, c.user_id, c.gen, &row, e) == -1)
		return -1;
	if (claims != NULL)
		*claims = c;
	if (u != NULL)
		*u = row;
	return 0;
}

int
auth_user_current(struct db *db, int64_t id, int64_t gen, struct auth_user *u,
    struct err *e)
{
	int64_t current = -1; /* never a token's gen */
	int rc;

	if ((rc = user_get(db, id, u, &current, e)) == -1)
		return -1;
	if (rc == 0)
		return refuse(e, "user no longer exists");
	if (current != gen)
		return refuse(e, "token has been revoked");
	return 0;
}

int
auth_user_load(struct db *db, int64_t id, struct auth_user *u, struct err *e)
{
	int64_t gen;
	int rc;

	if ((rc = user_get(db, id, u, &gen, e)) == -1)
		return -1;
	if (rc == 0)
		return err_set(e, ERR_NOTFOUND, "User not found");
	return 0;
}

int
auth_revoke_user(struct db *db, int64_t user_id, struct err *e)
{
	char now[40], event[96], id[24];
	struct db_stmt *st;
	int64_t gen;
	int n, rc;

	if ((st = db_stmt(db, sql[Q_REVOKE], e)) == NULL)
		return -1;
	db_now(now, sizeof(now));
	db_bind_int(st, 1, user_id);
	db_bind_text(st, 2, now);
	if ((rc = db_row(db, st, e)) != 1)
		return rc == -1
			   ? -1
			   : err_set(e, ERR_INTERNAL, "revoke: no generation");
	gen = db_col_int(st, 0);
	db_reset(st);
	/* In the same transaction: whoever holds the user's sockets or
	 * state (the relay) hears of it in stream order. */
	n = snprintf(event, sizeof(event),
	    NOTIFY_REVOKED_PREFIX "\"user_id\":%lld,"
				  "\"generation\":%lld}",
	    (long long)user_id, (long long)gen);
	snprintf(id, sizeof(id), "%lld", (long long)user_id);
	return notify_enqueue_text(db, NOTIFY_USER, id, event, (size_t)n, e);
}

/*
 * 1 when addr (and username, when not NULL) has max failures inside the
 * window (*retry_s raised to when the count drops below max), 0 when not,
 * -1 on error.
 */
static int
limit_reached(struct db *db, enum q q, const char *addr, const char *username,
    int max, int64_t window_s, int64_t now, int *retry_s, struct err *e)
{
	struct db_stmt *st;
	int64_t at, wait;
	int rc;

	if ((st = db_stmt(db, sql[q], e)) == NULL)
		return -1;
	db_bind_text(st, 1, addr);
	db_bind_int(st, 2, now - window_s);
	db_bind_int(st, 3, max - 1);
	if (username != NULL)
		db_bind_text(st, 4, username);
	if ((rc = db_row(db, st, e)) != 1)
		return rc;
	at = db_col_int(st, 0);
	db_reset(st);
	wait = at + window_s - now;
	/* A row from the future (clock stepped back) still waits a window. */
	if (wait < 1)
		wait = 1;
	if (wait > window_s)
		wait = window_s;
	if (wait > *retry_s)
		*retry_s = (int)wait;
	return 1;
}

int
auth_login_delay_ms(int failures)
{
	int ms = AUTH_LOGIN_DELAY_MS, n;

	if (failures <= AUTH_LOGIN_DELAY_FREE)
		return 0;
	for (n = failures - AUTH_LOGIN_DELAY_FREE - 1;
	     n > 0 && ms < AUTH_LOGIN_DELAY_MAX_MS; n--)
		ms *= 2;
	return ms < AUTH_LOGIN_DELAY_MAX_MS ? ms : AUTH_LOGIN_DELAY_MAX_MS;
}

/* Inside the transaction: the limits, then the attempt's row. */
static int
login_record(struct db *db, const char *username, const char *addr, int64_t now,
    int *delay_ms, struct err *e)
{
	struct db_stmt *st;
	int retry = 0, rc, limited, failures;

	if ((limited = limit_reached(db, Q_FAIL_NTH_PAIR, addr, username,
		 AUTH_LOGIN_MAX_PER_PAIR, AUTH_LOGIN_WINDOW_S, now, &retry,
		 e)) == -1 ||
	    (rc = limit_reached(db, Q_FAIL_NTH_ADDR, addr, NULL,
		 AUTH_LOGIN_MAX_PER_ADDR, AUTH_LOGIN_WINDOW_S, now, &retry,
		 e)) == -1)
		return -1;
	if (limited || rc) {
		err_set(e, ERR_RATE_LIMITED, "Too many failed login attempts");
		if (e != NULL)
			e->retry_after_s = retry;
		return -1;
	}
	if ((st = db_stmt(db, sql[Q_FAIL_COUNT_USER], e)) == NULL)
		return -1;
	db_bind_text(st, 1, username);
	db_bind_int(st, 2, now - AUTH_LOGIN_WINDOW_S);
	if ((rc = db_row(db, st, e)) == -1)
		return -1;
	failures = rc == 1 ? db_col_int(st, 0) : 0;
	db_reset(st);
	*delay_ms = auth_login_delay_ms(failures);

	if ((st = db_stmt(db, sql[Q_FAIL_INSERT], e)) == NULL)
		return -1;
	db_bind_text(st, 1, username);
	db_bind_text(st, 2, addr);
	db_bind_int(st, 3, now);
	if (db_done(db, st, e) == -1)
		return -1;
	/* Rows that no longer count: keeps the table as small as the window. */
	if ((st = db_stmt(db, sql[Q_FAIL_PRUNE], e)) == NULL)
		return -1;
	db_bind_int(st, 1, now - AUTH_LOGIN_WINDOW_S);
	return db_done(db, st, e);
}

int
auth_login_begin(struct db *db, const char *username, const char *addr,
    int *delay_ms, struct err *e)
{
	int64_t now = (int64_t)time(NULL);

	*delay_ms = 0;
	if (username == NULL)
		username = "";
	if (addr == NULL)
		addr = "";
	/*
	 * Counted as a failure before the password is known: the check and
	 * the row are one step, so no parallel attempt can pass the check
	 * in between. A right password takes the row back.
	 */
	if (db_begin(db, e) == -1)
		return -1;
	if (login_record(db, username, addr, now, delay_ms, e) == -1 ||
	    db_commit(db, e) == -1) {
		db_rollback(db);
		return -1;
	}
	return 0;
}

int
auth_login_succeeded(struct db *db, const char *username, const char *addr,
    struct err *e)
{
	struct db_stmt *st;

	if ((st = db_stmt(db, sql[Q_FAIL_FORGET], e)) == NULL)
		return -1;
	db_bind_text(st, 1, username != NULL ? username : "");
	db_bind_text(st, 2, addr != NULL ? addr : "");
	return db_done(db, st, e);
}

int
auth_register_record(struct db *db, const char *addr, int max, struct err *e)
{
	int64_t now = (int64_t)time(NULL);
	struct db_stmt *st;
	int retry = 0, rc;

	if (addr == NULL)
		addr = "";
	if ((rc = limit_reached(db, Q_REG_NTH_ADDR, addr, NULL, max,
		 AUTH_REGISTER_WINDOW_S, now, &retry, e)) == -1)
		return -1;
	if (rc == 1) {
		err_set(e, ERR_RATE_LIMITED, "Too many registrations");
		if (e != NULL)
			e->retry_after_s = retry;
		return -1;
	}
	if ((st = db_stmt(db, sql[Q_REG_INSERT], e)) == NULL)
		return -1;
	db_bind_text(st, 1, addr);
	db_bind_int(st, 2, now);
	if (db_done(db, st, e) == -1)
		return -1;
	if ((st = db_stmt(db, sql[Q_REG_PRUNE], e)) == NULL)
		return -1;
	db_bind_int(st, 1, now - AUTH_REGISTER_WINDOW_S);
	return db_done(db, st, e);
}
