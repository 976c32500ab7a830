#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lib/audit.h"
#include "lib/check.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/password.h"
#include "lib/users.h"

static int64_t alice_id, root_id;

enum q {
	Q_USER,
	Q_USERS,
	Q_AUDIT,
	Q_AUDITS,
	Q_CALL_LOG_ADD,
	Q_ACTIVE_CALL_ADD,
	Q_CALL_LOGS,
	Q_CALL_LOGS_HALF,
	Q_CALL_LOGS_ORPHAN,
	Q_ACTIVE_CALLS,
	Q_GENERATION,
	Q_NOTIFY,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_USER] = "SELECT username, email, password, extension, status, "
		   "role, created_at, updated_at, is_online, last_login "
		   "FROM users WHERE id = ?1",
	[Q_USERS] = "SELECT count(*) FROM users",
	[Q_AUDIT] = "SELECT at, actor_id, action, target, details "
		    "FROM audit_log ORDER BY id DESC LIMIT 1",
	[Q_AUDITS] = "SELECT count(*) FROM audit_log",
	[Q_CALL_LOG_ADD] =
	    "INSERT INTO call_logs (caller_id, callee_id, status) "
	    "VALUES (?1, ?2, 'completed'), (?2, ?1, 'missed')",
	[Q_ACTIVE_CALL_ADD] =
	    "INSERT INTO active_calls (caller_id, callee_id, status) "
	    "VALUES (?1, ?2, 'ringing')",
	[Q_CALL_LOGS] = "SELECT count(*) FROM call_logs",
	[Q_CALL_LOGS_HALF] =
	    "SELECT count(*) FROM call_logs "
	    "WHERE (caller_id IS NULL) + (callee_id IS NULL) = 1",
	[Q_CALL_LOGS_ORPHAN] = "SELECT count(*) FROM call_logs "
			       "WHERE caller_id IS NULL AND callee_id IS NULL",
	[Q_ACTIVE_CALLS] = "SELECT count(*) FROM active_calls",
	[Q_GENERATION] = "SELECT coalesce(max(generation), 0) "
			 "FROM token_generations WHERE user_id = ?1",
	[Q_NOTIFY] = "SELECT target_kind, payload FROM notify "
		     "ORDER BY id DESC LIMIT 1",
};

static long long
count(struct db *db, enum q q)
{
	struct err e = { 0 };
	struct db_stmt *st;
	long long n;

	st = db_stmt(db, sql[q], &e);
	CHECK(st != NULL && db_row(db, st, &e) == 1);
	n = db_col_int(st, 0);
	CHECK(db_row(db, st, &e) == 0);
	return n;
}

/* A statement of q with ?1 = id, ?2 = id2, stepped to completion. */
static void
exec_ids(struct db *db, enum q q, int64_t id, int64_t id2)
{
	struct err e = { 0 };
	struct db_stmt *st;

	st = db_stmt(db, sql[q], &e);
	CHECK(st != NULL);
	db_bind_int(st, 1, id);
	db_bind_int(st, 2, id2);
	CHECK(db_done(db, st, &e) == 0);
}

static long long
generation(struct db *db, int64_t id)
{
	struct err e = { 0 };
	struct db_stmt *st;
	long long n;

	st = db_stmt(db, sql[Q_GENERATION], &e);
	CHECK(st != NULL);
	db_bind_int(st, 1, id);
	CHECK(db_row(db, st, &e) == 1);
	n = db_col_int(st, 0);
	db_reset(st);
	return n;
}

static bool
col_is(struct db_stmt *st, int i, const char *want)
{
	const char *s = db_col_text(st, i);

	if (want == NULL)
		return db_col_null(st, i);
	return s != NULL && strcmp(s, want) == 0;
}

static void
test_valid(void)
{
	CHECK(users_username_valid("bob"));
	CHECK(users_username_valid("Jos\xc3\xa9 d'Arc"));
	CHECK(users_username_valid("")); /* lengths are the field rows' */
	CHECK(!users_username_valid("a\tb"));
	CHECK(!users_username_valid("a\nb"));
	CHECK(!users_username_valid("\x1f"));
	CHECK(!users_username_valid("del\x7f"));
	CHECK(!users_username_valid(NULL));
	/* blanks inside, never at the ends */
	CHECK(users_username_valid("ann b"));
	CHECK(users_username_valid("ann\xc2\xa0"
				   "b"));
	CHECK(!users_username_valid("admin "));
	CHECK(!users_username_valid(" admin"));
	CHECK(!users_username_valid("admin\xc2\xa0")); /* U+00A0 */
	CHECK(!users_username_valid("\xe3\x80\x80"
				    "admin"));             /* U+3000 */
	CHECK(!users_username_valid("admin\xe2\x80\xaf")); /* U+202F */
	CHECK(!users_username_valid(" "));
	/* C1 controls and invisible marks anywhere */
	CHECK(!users_username_valid("ad\xc2\x85min"));     /* U+0085 */
	CHECK(!users_username_valid("ad\xc2\x9fmin"));     /* U+009F */
	CHECK(users_username_valid("ad\xc2\xa1min"));      /* U+00A1 */
	CHECK(!users_username_valid("ad\xe2\x80\x8bmin")); /* U+200B */
	CHECK(!users_username_valid("ad\xe2\x80\xaemin")); /* U+202E */
	CHECK(!users_username_valid("\xef\xbb\xbf"
				    "admin")); /* U+FEFF */
	CHECK(!users_username_valid("ad\xc2\xad"
				    "min")); /* U+00AD */
	/* not UTF-8 (argv of the command-line tool) */
	CHECK(!users_username_valid("ad\xffmin"));
	CHECK(!users_username_valid("ad\xc3"));
	CHECK(!users_username_valid("ad\xed\xa0\x80min")); /* a surrogate */
	CHECK(!users_username_valid("\xf0\x9f"));

	CHECK(users_role_valid("user"));
	CHECK(users_role_valid("admin"));
	CHECK(!users_role_valid("Admin"));
	CHECK(!users_role_valid("root"));
	CHECK(!users_role_valid(""));
	CHECK(!users_role_valid(NULL));

	CHECK(users_status_valid("online"));
	CHECK(users_status_valid("offline"));
	CHECK(users_status_valid("busy"));
	CHECK(users_status_valid("away"));
	CHECK(!users_status_valid("Online"));
	CHECK(!users_status_valid("dnd"));
	CHECK(!users_status_valid(""));
	CHECK(!users_status_valid(NULL));
}

/* The field rows carry the limits: one decode per value. */
static const struct jh_field fields[] = {
	USERS_FIELD_USERNAME(struct users_new, true),
	USERS_FIELD_EMAIL(struct users_new, true),
	USERS_FIELD_PASSWORD(struct users_new, true),
	USERS_FIELD_EXTENSION(struct users_new, true),
};

/* Decode a body with one field replaced: 0, or the failing field name. */
static const char *
decode_with(const char *key, const char *val)
{
	static char field[32];
	struct json_object *o;
	struct users_new u = { 0 };
	struct err e = { 0 };
	int rc;

	o = json_object_new_object();
	CHECK(o != NULL);
	jh_add_str(o, "username", "alice");
	jh_add_str(o, "email", "alice@example.test");
	jh_add_str(o, "password", "secret");
	jh_add_str(o, "extension", "1234");
	jh_add_str(o, key, val);
	rc = jh_decode(o, fields, sizeof(fields) / sizeof(fields[0]), &u, &e);
	if (rc == 0)
		CHECK(u.username != NULL && u.email != NULL &&
		      u.password != NULL && u.extension != NULL &&
		      u.role == NULL);
	snprintf(field, sizeof(field), "%s", rc == 0 ? "" : e.field);
	json_object_put(o);
	return field;
}

static void
test_limits(void)
{
	char s[USERS_EMAIL_MAX + 8];

	CHECK(strcmp(decode_with("username", "alice"), "") == 0);
	CHECK(strcmp(decode_with("username", "abc"), "") == 0);
	CHECK(strcmp(decode_with("username", "ab"), "username") == 0);
	memset(s, 'a', USERS_USERNAME_MAX);
	s[USERS_USERNAME_MAX] = '\0';
	CHECK(strcmp(decode_with("username", s), "") == 0);
	s[USERS_USERNAME_MAX] = 'a';
	s[USERS_USERNAME_MAX + 1] = '\0';
	CHECK(strcmp(decode_with("username", s), "username") == 0);

	CHECK(strcmp(decode_with("email", "not-an-address"), "email") == 0);
	memset(s, 'a', USERS_EMAIL_MAX);
	memcpy(s + USERS_EMAIL_MAX - 6, "@b.com", 7);
	CHECK(strcmp(decode_with("email", s), "") == 0);
	memset(s, 'a', USERS_EMAIL_MAX + 1);
	memcpy(s + USERS_EMAIL_MAX + 1 - 6, "@b.com", 7);
	CHECK(strcmp(decode_with("email", s), "email") == 0);

	CHECK(strcmp(decode_with("password", "12345"), "password") == 0);
	CHECK(strcmp(decode_with("password", "123456"), "") == 0);

	CHECK(strcmp(decode_with("extension", "123"), "extension") == 0);
	CHECK(strcmp(decode_with("extension", "1234"), "") == 0);
	CHECK(strcmp(decode_with("extension", "123456"), "") == 0);
	CHECK(strcmp(decode_with("extension", "1234567"), "extension") == 0);
	CHECK(strcmp(decode_with("extension", "12a4"), "extension") == 0);
}

static int64_t
insert(struct db *db, const char *name, const char *email, const char *ext,
    const char *role, const char *pw)
{
	struct users_new u = { .username = name,
		.email = email,
		.password = pw,
		.extension = ext,
		.role = role };
	struct err e = { 0 };
	int64_t id = 0;

	CHECK(users_hash(&u, &e) == 0);
	CHECK(db_begin(db, &e) == 0);
	CHECK(users_insert(db, &u, &id, &e) == 0);
	CHECK(db_commit(db, &e) == 0);
	explicit_bzero(u.hash, sizeof(u.hash));
	CHECK(id > 0);
	return id;
}

static void
test_insert(struct db *db)
{
	struct err e = { 0 };
	struct db_stmt *st;
	int64_t id, us;
	const char *hash, *created;

	id = alice_id =
	    insert(db, "alice", "alice@example.test", "1001", NULL, "alice-pw");
	st = db_stmt(db, sql[Q_USER], &e);
	CHECK(st != NULL);
	db_bind_int(st, 1, id);
	CHECK(db_row(db, st, &e) == 1);
	CHECK(col_is(st, 0, "alice"));
	CHECK(col_is(st, 1, "alice@example.test"));
	hash = db_col_text(st, 2);
	CHECK(hash != NULL && strncmp(hash, "$y$", 3) == 0);
	CHECK(password_verify("alice-pw", hash));
	CHECK(!password_verify("alice-PW", hash));
	CHECK(col_is(st, 3, "1001"));
	CHECK(col_is(st, 4, "offline"));
	CHECK(col_is(st, 5, "user")); /* NULL role */
	created = db_col_text(st, 6);
	CHECK(created != NULL && db_time_parse(created, &us) == 0);
	CHECK(strlen(created) == strlen("2026-11-21T06:07:28.123456Z"));
	CHECK(col_is(st, 7, created));
	CHECK(db_col_int(st, 8) == 0);
	CHECK(col_is(st, 9, NULL));
	CHECK(db_row(db, st, &e) == 0);

	root_id = insert(db, "root", "root@example.test", "1002", "admin", "x");
	CHECK(root_id > id);
	st = db_stmt(db, sql[Q_USER], &e);
	db_bind_int(st, 1, root_id);
	CHECK(db_row(db, st, &e) == 1);
	CHECK(col_is(st, 5, "admin"));
	db_reset(st);
	/* users_insert writes no audit row: the callers choose its details. */
	CHECK(count(db, Q_AUDITS) == 0);
}

/* Taken values refuse the account in the contract's order, writing
 * nothing even inside the open transaction. */
static void
test_conflicts(struct db *db)
{
	static const struct {
		const char *username, *email, *extension, *text;
	} cases[] = {
		{ "alice", "alice@example.test", "1001", USERS_USERNAME_TAKEN },
		{ "alice", "new@example.test", "1999", USERS_USERNAME_TAKEN },
		{ "carol", "alice@example.test", "1001", USERS_EMAIL_TAKEN },
		{ "carol", "root@example.test", "1999", USERS_EMAIL_TAKEN },
		{ "carol", "carol@example.test", "1002",
		    USERS_EXTENSION_TAKEN },
	};
	struct users_new u = { .password = "carol-pw" };
	struct err e = { 0 };
	long long users = count(db, Q_USERS), audits = count(db, Q_AUDITS);
	int64_t id = -7;
	size_t i;

	CHECK(strcmp(USERS_USERNAME_TAKEN, "Username already exists") == 0);
	CHECK(strcmp(USERS_EMAIL_TAKEN, "Email already exists") == 0);
	CHECK(strcmp(USERS_EXTENSION_TAKEN, "Extension already exists") == 0);
	CHECK(users_hash(&u, &e) == 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		u.username = cases[i].username;
		u.email = cases[i].email;
		u.extension = cases[i].extension;
		err_clear(&e);
		CHECK(db_begin(db, &e) == 0);
		CHECK(users_insert(db, &u, &id, &e) == -1);
		CHECK(e.code == ERR_CONFLICT);
		CHECK(strcmp(e.msg, cases[i].text) == 0);
		CHECK(e.field[0] == '\0'); /* the 409 body has no field */
		CHECK(count(db, Q_USERS) == users);
		CHECK(count(db, Q_AUDITS) == audits);
		db_rollback(db);
		CHECK(id == -7);

		err_clear(&e);
		CHECK(users_conflicts(db, 0, u.username, u.email, u.extension,
			  &e) == -1);
		CHECK(strcmp(e.msg, cases[i].text) == 0);
	}
	explicit_bzero(u.hash, sizeof(u.hash));
	CHECK(count(db, Q_USERS) == users);

	/* NULL is not checked; the user itself is not a conflict. */
	err_clear(&e);
	CHECK(users_conflicts(db, 0, NULL, NULL, NULL, &e) == 0);
	CHECK(users_conflicts(db, 0, "carol", "carol@example.test", "1999",
		  &e) == 0);
	CHECK(users_conflicts(db, 0, NULL, NULL, "1001", &e) == -1);
	CHECK(strcmp(e.msg, USERS_EXTENSION_TAKEN) == 0);
	err_clear(&e);
	CHECK(users_conflicts(db, alice_id, "alice", "alice@example.test",
		  "1001", &e) == 0);
	CHECK(e.code == ERR_OK);
	CHECK(users_conflicts(db, root_id, "alice", NULL, NULL, &e) == -1);
	CHECK(strcmp(e.msg, USERS_USERNAME_TAKEN) == 0);

	/* Whatever the ASCII case; the user itself still is no conflict. */
	err_clear(&e);
	CHECK(users_conflicts(db, root_id, "ALICE", NULL, NULL, &e) == -1);
	CHECK(strcmp(e.msg, USERS_USERNAME_TAKEN) == 0);
	err_clear(&e);
	CHECK(users_conflicts(db, root_id, NULL, "Alice@Example.TEST", NULL,
		  &e) == -1);
	CHECK(strcmp(e.msg, USERS_EMAIL_TAKEN) == 0);
	err_clear(&e);
	CHECK(users_conflicts(db, alice_id, "Alice", "ALICE@example.test",
		  "1001", &e) == 0);
	CHECK(e.code == ERR_OK);
}

static void
test_unique_text(void)
{
	struct err e = { 0 };

	err_set(&e, ERR_CONFLICT, "UNIQUE constraint failed: users.email");
	CHECK(users_unique_text(&e) == -1);
	CHECK(e.code == ERR_CONFLICT && strcmp(e.msg, USERS_EMAIL_TAKEN) == 0);
	err_set(&e, ERR_CONFLICT, "UNIQUE constraint failed: users.username");
	CHECK(users_unique_text(&e) == -1);
	CHECK(strcmp(e.msg, USERS_USERNAME_TAKEN) == 0);
	err_set(&e, ERR_CONFLICT, "UNIQUE constraint failed: users.extension");
	CHECK(users_unique_text(&e) == -1);
	CHECK(strcmp(e.msg, USERS_EXTENSION_TAKEN) == 0);
	err_set(&e, ERR_CONFLICT, "NOT NULL constraint failed: users.role");
	CHECK(users_unique_text(&e) == -1);
	CHECK(strstr(e.msg, "NOT NULL") != NULL);
	err_set(&e, ERR_BUSY, "database is busy: users.email");
	CHECK(users_unique_text(&e) == -1);
	CHECK(e.code == ERR_BUSY && strstr(e.msg, "busy") != NULL);
}

static void
test_audit(struct db *db)
{
	struct json_object *d;
	struct err e = { 0 };
	struct db_stmt *st;
	long long audits = count(db, Q_AUDITS);
	int64_t us;

	d = json_object_new_object();
	CHECK(d != NULL);
	jh_add_str(d, "username", "alice");
	jh_add_str(d, "via", "cli");

	CHECK(db_begin(db, &e) == 0);
	CHECK(audit_user(db, 0, "user.create", 42, d, &e) == 0);
	CHECK(db_commit(db, &e) == 0);
	CHECK(count(db, Q_AUDITS) == audits + 1);
	st = db_stmt(db, sql[Q_AUDIT], &e);
	CHECK(st != NULL && db_row(db, st, &e) == 1);
	CHECK(db_time_parse(db_col_text(st, 0), &us) == 0);
	CHECK(col_is(st, 1, NULL)); /* 0: no actor */
	CHECK(col_is(st, 2, "user.create"));
	CHECK(col_is(st, 3, "user:42"));
	CHECK(col_is(st, 4, "{\"username\":\"alice\",\"via\":\"cli\"}"));
	db_reset(st);

	CHECK(audit_insert(db, 7, "config.update", "settings", d, &e) == 0);
	st = db_stmt(db, sql[Q_AUDIT], &e);
	CHECK(st != NULL && db_row(db, st, &e) == 1);
	CHECK(db_col_type(st, 1) == DB_INT);
	CHECK(db_col_int(st, 1) == 7);
	CHECK(col_is(st, 2, "config.update"));
	CHECK(col_is(st, 3, "settings"));
	db_reset(st);

	CHECK(audit_insert(db, -1, "system.thing", NULL, NULL, &e) == 0);
	st = db_stmt(db, sql[Q_AUDIT], &e);
	CHECK(st != NULL && db_row(db, st, &e) == 1);
	CHECK(col_is(st, 1, NULL));
	CHECK(col_is(st, 2, "system.thing"));
	CHECK(col_is(st, 3, NULL));
	CHECK(col_is(st, 4, NULL));
	db_reset(st);
	CHECK(count(db, Q_AUDITS) == audits + 3);

	/* Inside a transaction rolled back, the row goes with the change. */
	CHECK(db_begin(db, &e) == 0);
	CHECK(audit_user(db, 1, "user.update", 1, d, &e) == 0);
	db_rollback(db);
	CHECK(count(db, Q_AUDITS) == audits + 3);
	json_object_put(d);
}

/* The last notify row: to all, with this payload. */
static void
check_notified(struct db *db, const char *payload)
{
	struct err e = { 0 };
	struct db_stmt *st;

	st = db_stmt(db, sql[Q_NOTIFY], &e);
	CHECK(st != NULL && db_row(db, st, &e) == 1);
	CHECK(col_is(st, 0, "all"));
	CHECK(col_is(st, 1, payload));
	db_reset(st);
}

static void
test_delete(struct db *db)
{
	struct err e = { 0 };
	struct db_stmt *st;
	int64_t dave, erin;
	long long logs, active, users, gen;
	char want[160];

	dave = insert(db, "dave", "dave@example.test", "1501", NULL, "d-pw");
	erin = insert(db, "erin", "erin@example.test", "1502", NULL, "e-pw");
	exec_ids(db, Q_CALL_LOG_ADD, dave, erin);
	exec_ids(db, Q_CALL_LOG_ADD, alice_id, root_id);
	exec_ids(db, Q_ACTIVE_CALL_ADD, dave, erin);
	logs = count(db, Q_CALL_LOGS);
	active = count(db, Q_ACTIVE_CALLS);
	users = count(db, Q_USERS);
	gen = generation(db, dave);

	/* Rolled back, the user and its calls are all still there. */
	CHECK(db_begin(db, &e) == 0);
	CHECK(users_delete(db, dave, "dave", 0, &e) == 0);
	CHECK(count(db, Q_USERS) == users - 1);
	db_rollback(db);
	CHECK(count(db, Q_USERS) == users);
	CHECK(count(db, Q_CALL_LOGS) == logs);
	CHECK(generation(db, dave) == gen);

	CHECK(db_begin(db, &e) == 0);
	CHECK(users_delete(db, dave, "dave", 0, &e) == 0);
	CHECK(db_commit(db, &e) == 0);
	CHECK(count(db, Q_USERS) == users - 1);
	st = db_stmt(db, sql[Q_USER], &e);
	db_bind_int(st, 1, dave);
	CHECK(db_row(db, st, &e) == 0);
	/* The history stays, dave's side NULL: erin's rows are erin's. */
	CHECK(count(db, Q_CALL_LOGS) == logs);
	CHECK(count(db, Q_CALL_LOGS_HALF) == 2);
	CHECK(count(db, Q_CALL_LOGS_ORPHAN) == 0);
	CHECK(count(db, Q_ACTIVE_CALLS) == active - 1);
	CHECK(generation(db, dave) == gen + 1);
	snprintf(want, sizeof(want),
	    "{\"deleted_by\":null,\"type\":\"user_deleted\","
	    "\"user_id\":%lld,\"username\":\"dave\"}",
	    (long long)dave);
	check_notified(db, want);

	CHECK(db_begin(db, &e) == 0);
	CHECK(users_delete(db, erin, "erin", root_id, &e) == 0);
	CHECK(db_commit(db, &e) == 0);
	CHECK(count(db, Q_USERS) == users - 2);
	/* Both parties gone, the rows stay for exports. */
	CHECK(count(db, Q_CALL_LOGS) == logs);
	CHECK(count(db, Q_CALL_LOGS_HALF) == 0);
	CHECK(count(db, Q_CALL_LOGS_ORPHAN) == 2);
	snprintf(want, sizeof(want),
	    "{\"deleted_by\":%lld,\"type\":\"user_deleted\","
	    "\"user_id\":%lld,\"username\":\"erin\"}",
	    (long long)root_id, (long long)erin);
	check_notified(db, want);
}

int
main(void)
{
	char dir[64];
	struct db *db;

	db = check_db_open(dir, sizeof(dir), "u.db");
	test_valid();
	test_limits();
	test_insert(db);
	test_conflicts(db);
	test_unique_text();
	test_audit(db);
	test_delete(db);
	check_db_close(db, dir);
	printf("users: %d checks passed\n", checks);
	return 0;
}
