#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <jwt.h>

#include "lib/check.h"
#include "lib/auth.h"
#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"

/* Longer than any token auth.c agrees to parse. */
#define AUTH_TOKEN_LEN_OVER 10000

#define SECRET "auth-test-secret-0123456789abcdefghijklmnop"

static struct config cfg;
static struct db *db;

/* Run one statement with ?1 text, ?2 and ?3 integers (as many as it has);
 * the first column of its first row, or -1 when it returns none. */
static int64_t
sqlv(const char *text, const char *s1, int64_t i2, int64_t i3)
{
	struct err e = { 0 };
	struct db_stmt *st;
	int64_t v = -1;
	int rc;

	CHECK((st = db_stmt(db, text, &e)) != NULL);
	/* SQLite ignores a binding past the statement's last parameter. */
	db_bind_text(st, 1, s1);
	db_bind_int(st, 2, i2);
	db_bind_int(st, 3, i3);
	rc = db_row(db, st, &e);
	CHECK(rc != -1);
	if (rc == 1) {
		v = db_col_int(st, 0);
		db_reset(st);
	}
	return v;
}

static int64_t
user_add(const char *name, const char *ext)
{
	return sqlv("INSERT INTO users (username, email, password, extension, "
		    "role) VALUES (?1, CAST(?1 AS text) || '@example.com', "
		    "'x', ?2, 'user') RETURNING id",
	    name, atoll(ext), 0);
}

static void
b64url(const unsigned char *in, size_t n, char *out)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_";
	uint32_t v;
	size_t i;
	char *o = out;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		*o++ = a[v >> 18 & 63];
		*o++ = a[v >> 12 & 63];
		*o++ = a[v >> 6 & 63];
		*o++ = a[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		*o++ = a[v >> 18 & 63];
		*o++ = a[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*o++ = a[v >> 18 & 63];
		*o++ = a[v >> 12 & 63];
		*o++ = a[v >> 6 & 63];
	}
	*o = '\0';
}

/* header.payload.sig from raw JSON texts and a raw signature part. */
static char *
forge(const char *header, const char *payload, const char *sig)
{
	size_t n = 2 * (strlen(header) + strlen(payload)) + strlen(sig) + 16;
	char *t = malloc(n);

	CHECK(t != NULL);
	b64url((const unsigned char *)header, strlen(header), t);
	strcat(t, ".");
	b64url((const unsigned char *)payload, strlen(payload), t + strlen(t));
	strcat(t, ".");
	strcat(t, sig);
	return t;
}

/* A complete, valid claim set for user id at generation gen. */
static struct json_object *
claims_new(int64_t id, const char *name, int64_t gen)
{
	struct json_object *o = json_object_new_object();
	int64_t now = (int64_t)time(NULL);

	CHECK(o != NULL);
	json_object_object_add(o, "user_id", json_object_new_int64(id));
	json_object_object_add(o, "username", json_object_new_string(name));
	json_object_object_add(o, "extension", json_object_new_string("1000"));
	json_object_object_add(o, "role", json_object_new_string("user"));
	json_object_object_add(o, "iss", json_object_new_string(AUTH_ISSUER));
	json_object_object_add(o, "sub", json_object_new_string(name));
	json_object_object_add(o, "exp", json_object_new_int64(now + 3600));
	json_object_object_add(o, "nbf", json_object_new_int64(now));
	json_object_object_add(o, "iat", json_object_new_int64(now));
	json_object_object_add(o, "jti",
	    json_object_new_string("0123456789abcdef0123456789abcdef"));
	json_object_object_add(o, "gen", json_object_new_int64(gen));
	return o;
}

/* Sign claims (taken) with libjwt as a third party would. */
static char *
sign(jwt_alg_t alg, const char *key, struct json_object *claims)
{
	jwt_t *j;
	char *t;

	CHECK(jwt_new(&j) == 0);
	CHECK(jwt_add_grants_json(j, json_object_to_json_string(claims)) == 0);
	CHECK(jwt_set_alg(j, alg, (const unsigned char *)key,
		  key != NULL ? (int)strlen(key) : 0) == 0);
	t = jwt_encode_str(j);
	CHECK(t != NULL);
	jwt_free(j);
	json_object_put(claims);
	return t;
}

/* Whether decode refuses token (taken) with "Invalid token: <reason>". */
static int
refused(char *token, const char *reason)
{
	struct auth_claims c;
	struct err e = { 0 };
	char want[256];
	int ok;

	snprintf(want, sizeof(want), "Invalid token: %s", reason);
	ok = auth_token_decode(&cfg, token, &c, &e) == -1 &&
	     e.code == ERR_AUTH && strcmp(e.msg, want) == 0;
	if (!ok)
		fprintf(stderr, "want '%s', got code %d '%s'\n", want, e.code,
		    e.msg);
	free(token);
	return ok;
}

static int
verify_refused(const char *token, const char *reason)
{
	struct auth_user u;
	struct err e = { 0 };
	char want[256];
	int ok;

	snprintf(want, sizeof(want), "Invalid token: %s", reason);
	ok = auth_token_verify(db, &cfg, token, NULL, &u, &e) == -1 &&
	     e.code == ERR_AUTH && strcmp(e.msg, want) == 0;
	if (!ok)
		fprintf(stderr, "want '%s', got code %d '%s'\n", want, e.code,
		    e.msg);
	return ok;
}

static char *
with_claim(int64_t id, const char *key, struct json_object *val)
{
	struct json_object *o = claims_new(id, "alice", 0);

	if (val == NULL)
		json_object_object_del(o, key);
	else
		json_object_object_add(o, key, val);
	return sign(JWT_ALG_HS256, SECRET, o);
}

static void
test_round_trip(int64_t id)
{
	struct auth_claims c, d;
	struct auth_user u = { 0 }, v;
	struct err e = { 0 };
	char *tok, *dot;
	jwt_t *j;
	size_t i;

	u.id = id;
	strcpy(u.username, "alice");
	strcpy(u.extension, "1000");
	strcpy(u.role, "user");
	CHECK(auth_token_issue(db, &cfg, &u, &tok, &c, &e) == 0);
	CHECK(tok != NULL);
	CHECK((dot = strchr(tok, '.')) != NULL && strchr(dot + 1, '.'));
	CHECK(c.user_id == id);
	CHECK(strcmp(c.username, "alice") == 0);
	CHECK(strcmp(c.extension, "1000") == 0);
	CHECK(strcmp(c.role, "user") == 0);
	CHECK(c.gen == 0);
	CHECK(c.nbf == c.iat);
	CHECK(c.exp == c.iat + 24 * 3600);
	CHECK(llabs(c.iat - (int64_t)time(NULL)) <= 2);
	CHECK(strlen(c.jti) == 32);
	for (i = 0; i < 32; i++)
		CHECK(strchr("0123456789abcdef", c.jti[i]) != NULL);

	/* The wire form, as another HS256 implementation would read it. */
	CHECK(jwt_decode(&j, tok, (const unsigned char *)SECRET,
		  (int)strlen(SECRET)) == 0);
	CHECK(jwt_get_alg(j) == JWT_ALG_HS256);
	CHECK(strcmp(jwt_get_grant(j, "iss"), "voip-backend") == 0);
	CHECK(strcmp(jwt_get_grant(j, "sub"), "alice") == 0);
	CHECK(strcmp(jwt_get_grant(j, "username"), "alice") == 0);
	CHECK(strcmp(jwt_get_grant(j, "role"), "user") == 0);
	CHECK(strcmp(jwt_get_grant(j, "jti"), c.jti) == 0);
	CHECK(jwt_get_grant_int(j, "user_id") == id);
	CHECK(jwt_get_grant_int(j, "gen") == 0);
	CHECK(jwt_get_grant_int(j, "exp") == c.exp);
	jwt_free(j);

	CHECK(auth_token_decode(&cfg, tok, &d, &e) == 0);
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);
	memset(&v, 0xff, sizeof(v));
	CHECK(auth_token_verify(db, &cfg, tok, &d, &v, &e) == 0);
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);
	CHECK(v.id == id);
	CHECK(strcmp(v.username, "alice") == 0);
	CHECK(strcmp(v.extension, "1000") == 0);
	CHECK(strcmp(v.role, "user") == 0);
	CHECK(!v.is_admin);
	CHECK(e.code == ERR_OK); /* untouched on success */
	CHECK(auth_token_verify(db, &cfg, tok, NULL, NULL, &e) == 0);
	free(tok);

	/* Each token has its own jti. */
	CHECK(auth_token_issue(db, &cfg, &u, &tok, &d, &e) == 0);
	CHECK(strcmp(c.jti, d.jti) != 0);
	free(tok);
	CHECK(auth_token_issue(db, &cfg, &u, &tok, NULL, &e) == 0);
	free(tok);
}

static void
test_refusals(int64_t id)
{
	struct auth_claims c;
	struct config bad;
	struct auth_user u = { 0 };
	struct err e = { 0 };
	static char big[AUTH_TOKEN_LEN_OVER];
	char *a, *b, *t, *p, *q;
	size_t n;

	/* Algorithms other than HS256, even keyed with our secret. */
	CHECK(refused(sign(JWT_ALG_NONE, NULL, claims_new(id, "alice", 0)),
	    "signing method none is invalid"));
	CHECK(refused(sign(JWT_ALG_HS384, SECRET, claims_new(id, "alice", 0)),
	    "signing method HS384 is invalid"));
	CHECK(refused(sign(JWT_ALG_HS512, SECRET, claims_new(id, "alice", 0)),
	    "signing method HS512 is invalid"));
	/* Hand-made "none" tokens, with and without a signature part. */
	CHECK(refused(forge("{\"alg\":\"none\",\"typ\":\"JWT\"}",
			  "{\"user_id\":1}", ""),
	    "signing method none is invalid"));
	CHECK(refused(forge("{\"alg\":\"none\"}", "{\"user_id\":1}", "abc"),
	    "signing method none is invalid"));
	CHECK(refused(forge("{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
			  "{\"user_id\":1}", "abc"),
	    "signing method RS256 is invalid"));
	CHECK(refused(forge("{\"alg\":\"XX999\",\"typ\":\"JWT\"}",
			  "{\"user_id\":1}", "abc"),
	    "token is malformed"));

	/* Another secret; a missing or altered signature. */
	CHECK(refused(sign(JWT_ALG_HS256, "another-secret",
			  claims_new(id, "alice", 0)),
	    "signature is invalid"));
	a = sign(JWT_ALG_HS256, SECRET, claims_new(id, "alice", 0));
	t = strdup(a);
	*(strrchr(t, '.') + 1) = '\0';
	CHECK(refused(t, "signature is invalid"));

	/* Payload altered: b's payload under a's signature. */
	{
		struct json_object *o = claims_new(id, "alice", 0);

		json_object_object_add(o, "role",
		    json_object_new_string("admin"));
		b = sign(JWT_ALG_HS256, "x", o);
	}
	p = strchr(a, '.');
	q = strchr(b, '.');
	n = (size_t)(strchr(q + 1, '.') - q);
	t = malloc(strlen(a) + strlen(b));
	CHECK(t != NULL);
	memcpy(t, a, (size_t)(p - a));
	memcpy(t + (p - a), q, n);
	strcpy(t + (p - a) + n, strrchr(a, '.'));
	CHECK(refused(t, "signature is invalid"));
	/* and the untouched original still passes */
	CHECK(auth_token_decode(&cfg, a, &c, &e) == 0);
	free(a);
	free(b);

	/* Garbage. */
	CHECK(refused(strdup("garbage"), "token is malformed"));
	CHECK(refused(strdup(""), "token is malformed"));
	CHECK(refused(strdup("a.b.c"), "token is malformed"));
	CHECK(refused(strdup(".."), "token is malformed"));
	/* Empty segments crash-test libjwt: they must not reach it. */
	CHECK(refused(strdup(".eyJ1c2VyX2lkIjoxfQ.c"), "token is malformed"));
	CHECK(refused(strdup("eyJhbGciOiJub25lIn0..c"), "token is malformed"));
	CHECK(refused(strdup("eyJhbGciOiJub25lIn0.."), "token is malformed"));
	CHECK(refused(strdup("a.b.c.d"), "token is malformed"));
	CHECK(refused(strdup("a.b"), "token is malformed"));
	CHECK(refused(strdup("a b.c.d"), "token is malformed"));
	CHECK(refused(strdup("eyJhbGciOiJub25lIn0=.eyJ1c2VyX2lkIjoxfQ=.c"),
	    "token is malformed"));
	CHECK(refused(strdup("eyJhbGciOiJIUzI1NiJ9"), "token is malformed"));
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(refused(strdup(big), "token is malformed"));
	CHECK(auth_token_decode(&cfg, NULL, &c, &e) == -1);
	CHECK(e.code == ERR_AUTH);

	/* Claims: issuer, time, presence and types. */
	CHECK(refused(with_claim(id, "iss", json_object_new_string("other")),
	    "token has invalid issuer"));
	CHECK(refused(with_claim(id, "iss", NULL), "token has invalid issuer"));
	CHECK(refused(with_claim(id, "exp",
			  json_object_new_int64((int64_t)time(NULL) - 10)),
	    "token is expired"));
	CHECK(refused(with_claim(id, "exp",
			  json_object_new_int64((int64_t)time(NULL))),
	    "token is expired"));
	CHECK(refused(with_claim(id, "nbf",
			  json_object_new_int64((int64_t)time(NULL) + 60)),
	    "token is not valid yet"));
	CHECK(refused(with_claim(id, "user_id", NULL),
	    "token claim 'user_id' is missing or invalid"));
	CHECK(refused(with_claim(id, "user_id", json_object_new_string("1")),
	    "token claim 'user_id' is missing or invalid"));
	CHECK(refused(with_claim(id, "user_id", json_object_new_double(1.5)),
	    "token claim 'user_id' is missing or invalid"));
	CHECK(refused(with_claim(id, "user_id", json_object_new_int64(0)),
	    "token has invalid claims"));
	CHECK(refused(with_claim(id, "username", json_object_new_int(7)),
	    "token claim 'username' is missing or invalid"));
	CHECK(refused(with_claim(id, "extension", NULL),
	    "token claim 'extension' is missing or invalid"));
	CHECK(refused(with_claim(id, "role", json_object_new_null()),
	    "token claim 'role' is missing or invalid"));
	CHECK(refused(with_claim(id, "role",
			  json_object_new_string("a-role-name-far-too-long")),
	    "token claim 'role' is missing or invalid"));
	CHECK(refused(with_claim(id, "jti", NULL),
	    "token claim 'jti' is missing or invalid"));
	CHECK(refused(with_claim(id, "gen", json_object_new_boolean(1)),
	    "token claim 'gen' is missing or invalid"));
	CHECK(refused(with_claim(id, "gen", NULL),
	    "token claim 'gen' is missing or invalid"));
	CHECK(refused(with_claim(id, "iat", NULL),
	    "token claim 'iat' is missing or invalid"));
	CHECK(refused(with_claim(id, "nbf", json_object_new_string("0")),
	    "token claim 'nbf' is missing or invalid"));
	CHECK(refused(with_claim(id, "exp", json_object_new_double(4e9)),
	    "token claim 'exp' is missing or invalid"));
	CHECK(refused(with_claim(id, "sub", json_object_new_string("bob")),
	    "token claim 'sub' is missing or invalid"));
	CHECK(refused(with_claim(id, "sub", NULL),
	    "token claim 'sub' is missing or invalid"));
	CHECK(refused(sign(JWT_ALG_HS256, SECRET, json_object_new_object()),
	    "token claim 'user_id' is missing or invalid"));

	/* A correctly signed third-party token with every claim passes. */
	t = sign(JWT_ALG_HS256, SECRET, claims_new(id, "alice", 0));
	CHECK(auth_token_decode(&cfg, t, &c, &e) == 0);
	CHECK(c.user_id == id && c.gen == 0);
	CHECK(strcmp(c.jti, "0123456789abcdef0123456789abcdef") == 0);
	free(t);

	/* No secret: nothing is issued, nothing verifies. */
	bad = cfg;
	bad.jwt_secret_len = 0;
	bad.jwt_secret[0] = '\0';
	t = sign(JWT_ALG_NONE, NULL, claims_new(id, "alice", 0));
	CHECK(auth_token_decode(&bad, t, &c, &e) == -1);
	CHECK(e.code == ERR_INTERNAL);
	free(t);
	u.id = id;
	strcpy(u.username, "alice");
	strcpy(u.extension, "1000");
	strcpy(u.role, "user");
	t = (char *)"unchanged";
	CHECK(auth_token_issue(db, &bad, &u, &t, NULL, &e) == -1);
	CHECK(t == NULL && e.code == ERR_INTERNAL);
	bad = cfg;
	bad.jwt_expiry_hours = 0;
	CHECK(auth_token_issue(db, &bad, &u, &t, NULL, &e) == -1);
}

static void
test_expired_issue(int64_t id)
{
	struct err e = { 0 };
	struct json_object *o;
	char *t;

	/* As if issued a day ago: exp one second in the past. */
	o = claims_new(id, "alice", 0);
	json_object_object_add(o, "iat",
	    json_object_new_int64((int64_t)time(NULL) - 86401));
	json_object_object_add(o, "nbf",
	    json_object_new_int64((int64_t)time(NULL) - 86401));
	json_object_object_add(o, "exp",
	    json_object_new_int64((int64_t)time(NULL) - 1));
	t = sign(JWT_ALG_HS256, SECRET, o);
	CHECK(verify_refused(t, "token is expired"));
	CHECK(auth_token_verify(db, &cfg, t, NULL, NULL, &e) == -1);
	CHECK(strcmp(e.msg, "Invalid token: token is expired") == 0);
	free(t);
}

static void
test_revocation(int64_t id)
{
	struct auth_user u = { 0 }, v;
	struct auth_claims c;
	struct err e = { 0 };
	char *t1, *t2, *t3;

	CHECK(auth_user_load(db, id, &u, &e) == 0);
	CHECK(auth_token_issue(db, &cfg, &u, &t1, &c, &e) == 0);
	CHECK(c.gen == 0);
	CHECK(auth_token_verify(db, &cfg, t1, NULL, &v, &e) == 0);

	CHECK(auth_revoke_user(db, id, &e) == 0);
	CHECK(sqlv("SELECT generation FROM token_generations WHERE user_id "
		   "= ?2",
		  NULL, id, 0) == 1);
	CHECK(sqlv("SELECT length(revoked_at) FROM token_generations "
		   "WHERE user_id = ?2",
		  NULL, id, 0) == 27);
	CHECK(verify_refused(t1, "token has been revoked"));
	/* decode alone does not consult the database */
	CHECK(auth_token_decode(&cfg, t1, NULL, &e) == 0);

	CHECK(auth_token_issue(db, &cfg, &u, &t2, &c, &e) == 0);
	CHECK(c.gen == 1);
	CHECK(auth_token_verify(db, &cfg, t2, &c, &v, &e) == 0);
	CHECK(c.gen == 1);

	CHECK(auth_revoke_user(db, id, &e) == 0);
	CHECK(sqlv("SELECT generation FROM token_generations WHERE user_id "
		   "= ?2",
		  NULL, id, 0) == 2);
	CHECK(verify_refused(t1, "token has been revoked"));
	CHECK(verify_refused(t2, "token has been revoked"));
	CHECK(auth_token_issue(db, &cfg, &u, &t3, &c, &e) == 0);
	CHECK(c.gen == 2);
	CHECK(auth_token_verify(db, &cfg, t3, NULL, NULL, &e) == 0);

	/* A gen from the future (forged with the secret) is not current. */
	free(t1);
	t1 = sign(JWT_ALG_HS256, SECRET, claims_new(id, "alice", 3));
	CHECK(verify_refused(t1, "token has been revoked"));
	free(t1);
	free(t2);
	free(t3);

	/* Revoking a user without a row yet starts at 1. */
	CHECK(auth_revoke_user(db, 999999, &e) == 0);
	CHECK(sqlv("SELECT generation FROM token_generations WHERE user_id "
		   "= ?2",
		  NULL, 999999, 0) == 1);
}

static void
test_roles_and_users(void)
{
	struct auth_user u = { 0 }, v;
	struct auth_claims c;
	struct err e = { 0 };
	int64_t id;
	char *t;

	id = user_add("carol", "1002");
	CHECK(auth_user_load(db, id, &u, &e) == 0);
	CHECK(u.id == id && strcmp(u.username, "carol") == 0);
	CHECK(strcmp(u.extension, "1002") == 0);
	CHECK(strcmp(u.role, "user") == 0 && !u.is_admin);
	CHECK(auth_token_issue(db, &cfg, &u, &t, NULL, &e) == 0);

	/* Promotion without revocation: the database role wins. */
	sqlv("UPDATE users SET role = 'admin' WHERE id = ?2", NULL, id, 0);
	CHECK(auth_token_verify(db, &cfg, t, &c, &v, &e) == 0);
	CHECK(strcmp(c.role, "user") == 0);
	CHECK(strcmp(v.role, "admin") == 0 && v.is_admin);
	/* and demotion */
	sqlv("UPDATE users SET role = 'user' WHERE id = ?2", NULL, id, 0);
	CHECK(auth_token_verify(db, &cfg, t, &c, &v, &e) == 0);
	CHECK(strcmp(v.role, "user") == 0 && !v.is_admin);
	/* a NULL role reads as the column default */
	sqlv("UPDATE users SET role = NULL WHERE id = ?2", NULL, id, 0);
	CHECK(auth_user_load(db, id, &v, &e) == 0);
	CHECK(strcmp(v.role, "user") == 0 && !v.is_admin);

	/* Deleted user. */
	sqlv("DELETE FROM users WHERE id = ?2", NULL, id, 0);
	CHECK(verify_refused(t, "user no longer exists"));
	free(t);
	CHECK(auth_user_load(db, id, &v, &e) == -1);
	CHECK(e.code == ERR_NOTFOUND);
	CHECK(strcmp(e.msg, "User not found") == 0);
}

static void
limited(const char *user, const char *addr, int lo, int hi)
{
	struct err e = { 0 };
	int64_t before =
	    sqlv("SELECT count(*) FROM login_attempts", NULL, 0, 0);
	int delay = -1;

	if (auth_login_begin(db, user, addr, &delay, &e) != -1)
		fprintf(stderr, "'%s' from '%s' not limited\n", user,
		    addr != NULL ? addr : "(null)");
	CHECK(e.code != ERR_OK);
	CHECK(e.code == ERR_RATE_LIMITED);
	CHECK(strcmp(e.msg, "Too many failed login attempts") == 0);
	if (e.retry_after_s < lo || e.retry_after_s > hi)
		fprintf(stderr, "retry_after_s %d not in [%d, %d]\n",
		    e.retry_after_s, lo, hi);
	CHECK(e.retry_after_s >= lo && e.retry_after_s <= hi);
	/* refused: nothing written */
	CHECK(
	    sqlv("SELECT count(*) FROM login_attempts", NULL, 0, 0) == before);
}

/* One attempt that passes the limits; its delay. */
static int
attempt(const char *user, const char *addr)
{
	struct err e = { 0 };
	int delay = -1;

	CHECK(auth_login_begin(db, user, addr, &delay, &e) == 0);
	CHECK(delay >= 0);
	return delay;
}

static void
test_throttle(void)
{
	const char *ins = "INSERT INTO login_attempts (username, addr, at) "
			  "VALUES (?1, 'old', ?2)";
	struct err e = { 0 };
	int64_t now = (int64_t)time(NULL);
	char name[32], addr[32];
	int i;

	/* The pair: one username from one address. */
	for (i = 0; i < AUTH_LOGIN_MAX_PER_PAIR; i++)
		attempt("alice", "10.0.0.1");
	CHECK(sqlv("SELECT count(*) FROM login_attempts WHERE username = ?1",
		  "alice", 0, 0) == AUTH_LOGIN_MAX_PER_PAIR);
	limited("alice", "10.0.0.1", AUTH_LOGIN_WINDOW_S - 2,
	    AUTH_LOGIN_WINDOW_S);
	/* The owner, from elsewhere, is not locked out... */
	CHECK(attempt("alice", "10.9.9.9") ==
	      auth_login_delay_ms(AUTH_LOGIN_MAX_PER_PAIR));
	CHECK(auth_login_succeeded(db, "alice", "10.9.9.9", &e) == 0);
	/* ... and the address is far from its own limit for others. */
	CHECK(attempt("bob", "10.0.0.1") == 0);
	/* Success forgets the pair's failures only. */
	CHECK(auth_login_succeeded(db, "alice", "10.0.0.1", &e) == 0);
	CHECK(sqlv("SELECT count(*) FROM login_attempts WHERE username = ?1",
		  "alice", 0, 0) == 0);
	CHECK(attempt("alice", "10.0.0.1") == 0);
	CHECK(auth_login_succeeded(db, "nobody", "10.0.0.1", &e) == 0);
	CHECK(auth_login_succeeded(db, NULL, NULL, &e) == 0);

	/* Failures from many addresses: a slow-down, never a lock. */
	for (i = 0; i < 3 * AUTH_LOGIN_MAX_PER_ADDR; i++) {
		snprintf(addr, sizeof(addr), "192.0.2.%d", i + 1);
		CHECK(attempt("carol", addr) == auth_login_delay_ms(i));
	}
	CHECK(attempt("carol", "198.51.100.1") == AUTH_LOGIN_DELAY_MAX_MS);

	/* retry_after: until the oldest counted failure leaves the window. */
	sqlv(ins, "dave", now - (AUTH_LOGIN_WINDOW_S - 10), 0);
	for (i = 1; i < AUTH_LOGIN_MAX_PER_PAIR; i++)
		sqlv(ins, "dave", now - 100 + i, 0);
	limited("dave", "old", 8, 10);
	/* a sixth, older failure does not shorten or lengthen that */
	sqlv(ins, "dave", now - (AUTH_LOGIN_WINDOW_S - 5), 0);
	limited("dave", "old", 8, 10);
	/* failures past the window do not count */
	for (i = 0; i < AUTH_LOGIN_MAX_PER_PAIR; i++)
		sqlv(ins, "erin", now - AUTH_LOGIN_WINDOW_S - 1 - i, 0);
	CHECK(sqlv("SELECT count(*) FROM login_attempts WHERE username = ?1",
		  "erin", 0, 0) == AUTH_LOGIN_MAX_PER_PAIR);
	/* ... and recording an attempt prunes them */
	CHECK(attempt("erin", "old") == 0);
	CHECK(sqlv("SELECT count(*) FROM login_attempts WHERE username = ?1",
		  "erin", 0, 0) == 1);
	CHECK(sqlv("SELECT count(*) FROM login_attempts WHERE username = ?1",
		  "dave", 0, 0) == AUTH_LOGIN_MAX_PER_PAIR + 1);

	/* Per address, across usernames. */
	for (i = 0; i < AUTH_LOGIN_MAX_PER_ADDR; i++) {
		snprintf(name, sizeof(name), "spray%d", i);
		attempt(name, "10.0.0.9");
	}
	limited("zed", "10.0.0.9", AUTH_LOGIN_WINDOW_S - 2,
	    AUTH_LOGIN_WINDOW_S);
	CHECK(attempt("zed", "10.0.0.10") == 0);
	/* a success forgets only that user's failures from the address */
	CHECK(auth_login_succeeded(db, "spray0", "10.0.0.9", &e) == 0);
	CHECK(sqlv("SELECT count(*) FROM login_attempts WHERE addr = ?1",
		  "10.0.0.9", 0, 0) == AUTH_LOGIN_MAX_PER_ADDR - 1);
	CHECK(attempt("zed", "10.0.0.9") == 0);
	limited("zed", "10.0.0.9", AUTH_LOGIN_WINDOW_S - 2,
	    AUTH_LOGIN_WINDOW_S);
}

static void
test_delay(void)
{
	int i;

	for (i = -1; i <= AUTH_LOGIN_DELAY_FREE; i++)
		CHECK(auth_login_delay_ms(i) == 0);
	CHECK(auth_login_delay_ms(AUTH_LOGIN_DELAY_FREE + 1) ==
	      AUTH_LOGIN_DELAY_MS);
	CHECK(auth_login_delay_ms(AUTH_LOGIN_DELAY_FREE + 2) ==
	      2 * AUTH_LOGIN_DELAY_MS);
	for (i = AUTH_LOGIN_DELAY_FREE + 1; i < 1000; i++) {
		CHECK(auth_login_delay_ms(i) >= auth_login_delay_ms(i - 1));
		CHECK(auth_login_delay_ms(i) <= AUTH_LOGIN_DELAY_MAX_MS);
	}
	CHECK(auth_login_delay_ms(INT_MAX) == AUTH_LOGIN_DELAY_MAX_MS);
}

/*
 * The cache of checked tokens answers exactly as a full check would: the
 * same token again, one byte changed, another secret, and expiry reached
 * after the token was first accepted.
 */
static void
test_cache(int64_t id)
{
	struct config other = cfg;
	struct auth_claims c;
	struct err e = { 0 };
	char *t, *tampered;
	struct json_object *o;

	o = claims_new(id, "alice", 0);
	t = sign(JWT_ALG_HS256, SECRET, o);
	CHECK(auth_token_decode(&cfg, t, &c, &e) == 0 && c.user_id == id);
	CHECK(auth_token_decode(&cfg, t, &c, &e) == 0 && c.user_id == id);
	CHECK(strcmp(c.jti, "0123456789abcdef0123456789abcdef") == 0);

	tampered = strdup(t);
	CHECK(tampered != NULL);
	/* Another base64url letter, so the shape stays valid. */
	tampered[strlen(tampered) - 2] =
	    tampered[strlen(tampered) - 2] == 'A' ? 'B' : 'A';
	CHECK(refused(tampered, "signature is invalid"));

	snprintf(other.jwt_secret, sizeof(other.jwt_secret), "%s",
	    "another-secret-of-enough-length");
	other.jwt_secret_len = strlen(other.jwt_secret);
	e = (struct err){ 0 };
	CHECK(auth_token_decode(&other, t, &c, &e) == -1 &&
	      strcmp(e.msg, "Invalid token: signature is invalid") == 0);
	CHECK(auth_token_decode(&cfg, t, &c, &e) == 0);
	free(t);

	/* Accepted (and cached) while valid, refused once exp passes. */
	o = claims_new(id, "alice", 0);
	json_object_object_add(o, "exp",
	    json_object_new_int64((int64_t)time(NULL) + 1));
	t = sign(JWT_ALG_HS256, SECRET, o);
	e = (struct err){ 0 };
	CHECK(auth_token_decode(&cfg, t, &c, &e) == 0);
	sleep(2);
	CHECK(auth_token_decode(&cfg, t, &c, &e) == -1 &&
	      strcmp(e.msg, "Invalid token: token is expired") == 0);
	free(t);
}

int
main(void)
{
	char dir[64];
	int64_t alice;

	db = check_db_open(dir, sizeof(dir), "test.db");

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.jwt_secret, sizeof(cfg.jwt_secret), "%s", SECRET);
	cfg.jwt_secret_len = strlen(SECRET);
	cfg.jwt_expiry_hours = 24;

	alice = user_add("alice", "1000");
	user_add("bob", "1001");

	test_round_trip(alice);
	test_refusals(alice);
	test_expired_issue(alice);
	test_revocation(alice);
	test_cache(alice);
	test_roles_and_users();
	test_throttle();
	test_delay();

	check_db_close(db, dir);
	printf("auth: %d checks passed\n", checks);
	return 0;
}
