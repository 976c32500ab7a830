#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "lib/check.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/notify.h"

enum q { Q_ROWS, Q_COUNT, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_ROWS] = "SELECT id, created_at, target_kind, target_value, payload "
		   "FROM notify ORDER BY id",
	[Q_COUNT] = "SELECT count(*) FROM notify",
};

struct row {
	long long id;
	char created_at[40];
	char kind[16];
	char value[32];
	char payload[256];
};

static int
read_rows(struct db *db, struct row *rows, int max)
{
	struct err e = { 0 };
	sqlite3_stmt *st;
	int n = 0, rc;

	st = db_stmt(db, sql[Q_ROWS], &e);
	CHECK(st != NULL);
	while ((rc = db_row(db, st, &e)) == 1) {
		CHECK(n < max);
		rows[n].id = sqlite3_column_int64(st, 0);
		snprintf(rows[n].created_at, sizeof(rows[n].created_at), "%s",
		    (const char *)sqlite3_column_text(st, 1));
		snprintf(rows[n].kind, sizeof(rows[n].kind), "%s",
		    (const char *)sqlite3_column_text(st, 2));
		snprintf(rows[n].value, sizeof(rows[n].value), "%s",
		    (const char *)sqlite3_column_text(st, 3));
		snprintf(rows[n].payload, sizeof(rows[n].payload), "%s",
		    (const char *)sqlite3_column_text(st, 4));
		n++;
	}
	CHECK(rc == 0);
	return n;
}

static long long
count(struct db *db)
{
	struct err e = { 0 };
	sqlite3_stmt *st;
	long long n;

	st = db_stmt(db, sql[Q_COUNT], &e);
	CHECK(st != NULL && db_row(db, st, &e) == 1);
	n = sqlite3_column_int64(st, 0);
	CHECK(db_row(db, st, &e) == 0);
	return n;
}

static void
test_names(void)
{
	int t;

	CHECK(strcmp(notify_target_name(NOTIFY_USER), "user") == 0);
	CHECK(strcmp(notify_target_name(NOTIFY_EXTENSION), "extension") == 0);
	CHECK(strcmp(notify_target_name(NOTIFY_ROLE), "role") == 0);
	CHECK(strcmp(notify_target_name(NOTIFY_ALL), "all") == 0);
	CHECK(notify_target_name(NOTIFY__MAX) == NULL);
	CHECK(notify_target_name((enum notify_target) - 1) == NULL);
	for (t = 0; t < NOTIFY__MAX; t++)
		CHECK(notify_target_parse(
			  notify_target_name((enum notify_target)t)) == t);
	CHECK(notify_target_parse("users") == -1);
	CHECK(notify_target_parse("") == -1);
	CHECK(notify_target_parse("USER") == -1);
	CHECK(notify_target_parse(NULL) == -1);
}

static void
test_enqueue(struct db *db)
{
	struct json_object *p, *back;
	struct err e = { 0 };
	struct row rows[8];
	char now[40];

	p = json_object_new_object();
	jh_add_str(p, "type", "user_updated");
	jh_add_int(p, "id", 7);
	jh_add_str(p, "note", "a/b \"q\" \xc3\xa9");

	db_now(now, sizeof(now));
	CHECK(db_begin(db, &e) == 0);
	CHECK(notify_enqueue(db, NOTIFY_EXTENSION, "1001", p, &e) == 0);
	CHECK(notify_enqueue(db, NOTIFY_ALL, NULL, p, &e) == 0);
	CHECK(notify_enqueue(db, NOTIFY_ROLE, "admin", p, &e) == 0);
	CHECK(notify_enqueue(db, NOTIFY_USER, "7", p, &e) == 0);
	CHECK(db_commit(db, &e) == 0);

	CHECK(read_rows(db, rows, 8) == 4);
	CHECK(rows[0].id < rows[1].id && rows[1].id < rows[2].id &&
	      rows[2].id < rows[3].id);
	CHECK(strcmp(rows[0].kind, "extension") == 0);
	CHECK(strcmp(rows[0].value, "1001") == 0);
	CHECK(strcmp(rows[1].kind, "all") == 0);
	CHECK(strcmp(rows[1].value, "") == 0);
	CHECK(strcmp(rows[2].kind, "role") == 0);
	CHECK(strcmp(rows[2].value, "admin") == 0);
	CHECK(strcmp(rows[3].kind, "user") == 0);
	CHECK(strcmp(rows[3].value, "7") == 0);
	/* the payload is the compact serialization, unchanged by the insert */
	CHECK(strcmp(rows[0].payload,
		  "{\"type\":\"user_updated\",\"id\":7,"
		  "\"note\":\"a/b \\\"q\\\" \xc3\xa9\"}") == 0);
	CHECK(strcmp(rows[3].payload, rows[0].payload) == 0);
	back = jh_parse(rows[0].payload, strlen(rows[0].payload), &e);
	CHECK(back != NULL);
	CHECK(strcmp(jh_get_str(back, "note"), "a/b \"q\" \xc3\xa9") == 0);
	json_object_put(back);
	/* created_at is db_now(): comparable as text */
	CHECK(strlen(rows[0].created_at) == 27);
	CHECK(rows[0].created_at[26] == 'Z');
	CHECK(strcmp(rows[0].created_at, now) >= 0);
	CHECK(strcmp(rows[3].created_at, rows[0].created_at) >= 0);

	/* the payload is serialized, not taken: still ours */
	jh_add_bool(p, "still_mine", true);
	json_object_put(p);

	/* inside a rolled-back transaction: nothing stays */
	p = json_object_new_object();
	CHECK(db_begin(db, &e) == 0);
	CHECK(notify_enqueue(db, NOTIFY_ALL, "", p, &e) == 0);
	CHECK(count(db) == 5);
	db_rollback(db);
	CHECK(count(db) == 4);

	/* bad input: nothing written */
	err_clear(&e);
	CHECK(notify_enqueue(db, NOTIFY__MAX, "x", p, &e) == -1);
	CHECK(e.code == ERR_INTERNAL);
	err_clear(&e);
	CHECK(notify_enqueue(db, (enum notify_target) - 3, "x", p, &e) == -1);
	CHECK(e.code == ERR_INTERNAL);
	err_clear(&e);
	CHECK(notify_enqueue(db, NOTIFY_USER, "1", NULL, &e) == -1);
	CHECK(e.code == ERR_INTERNAL);
	CHECK(count(db) == 4);

	/* an empty object and an array are fine payloads */
	CHECK(notify_enqueue(db, NOTIFY_USER, "1", p, &e) == 0);
	json_object_put(p);
	p = json_object_new_array();
	CHECK(notify_enqueue(db, NOTIFY_USER, "1", p, &e) == 0);
	json_object_put(p);
	CHECK(read_rows(db, rows, 8) == 6);
	CHECK(strcmp(rows[4].payload, "{}") == 0);
	CHECK(strcmp(rows[5].payload, "[]") == 0);
}

int
main(void)
{
	char dir[64];
	struct db *db;

	db = check_db_open(dir, sizeof(dir), "n.db");
	test_names();
	test_enqueue(db);
	check_db_close(db, dir);
	printf("notify: %d checks passed\n", checks);
	return 0;
}
