#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

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
	struct db_stmt *st;
	int n = 0, rc;

	st = db_stmt(db, sql[Q_ROWS], &e);
	CHECK(st != NULL);
	while ((rc = db_row(db, st, &e)) == 1) {
		CHECK(n < max);
		rows[n].id = db_col_int(st, 0);
		snprintf(rows[n].created_at, sizeof(rows[n].created_at), "%s",
		    db_col_text(st, 1));
		snprintf(rows[n].kind, sizeof(rows[n].kind), "%s",
		    db_col_text(st, 2));
		snprintf(rows[n].value, sizeof(rows[n].value), "%s",
		    db_col_text(st, 3));
		snprintf(rows[n].payload, sizeof(rows[n].payload), "%s",
		    db_col_text(st, 4));
		n++;
	}
	CHECK(rc == 0);
	return n;
}

static long long
count(struct db *db)
{
	struct err e = { 0 };
	struct db_stmt *st;
	long long n;

	st = db_stmt(db, sql[Q_COUNT], &e);
	CHECK(st != NULL && db_row(db, st, &e) == 1);
	n = db_col_int(st, 0);
	CHECK(db_row(db, st, &e) == 0);
	return n;
}

static void
test_revocation_shape(void)
{
	static const char row[] =
	    "{\"type\":\"session_revoked\",\"user_id\":7,\"generation\":2}";
	static const char named[] =
	    "{\"type\":\"user_status_changed\",\"user_id\":7,"
	    "\"username\":\"session_revoked\"}";
	static const char spaced[] =
	    "{ \"type\":\"session_revoked\",\"user_id\":7}";

	CHECK(notify_is_revocation(NOTIFY_USER, row, strlen(row)));
	CHECK(!notify_is_revocation(NOTIFY_ALL, row, strlen(row)));
	CHECK(!notify_is_revocation(NOTIFY_EXTENSION, row, strlen(row)));
	CHECK(!notify_is_revocation(NOTIFY_USER, named, strlen(named)));
	CHECK(!notify_is_revocation(NOTIFY_USER, spaced, strlen(spaced)));
	CHECK(!notify_is_revocation(NOTIFY_USER, row, 10));
	CHECK(!notify_is_revocation(NOTIFY_USER, NULL, 0));
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

	/* an empty object is a fine payload; an event is an object */
	CHECK(notify_enqueue(db, NOTIFY_USER, "1", p, &e) == 0);
	json_object_put(p);
	p = json_object_new_array();
	err_clear(&e);
	CHECK(notify_enqueue(db, NOTIFY_USER, "1", p, &e) == -1);
	CHECK(e.code == ERR_INTERNAL);
	json_object_put(p);
	CHECK(read_rows(db, rows, 8) == 5);
	CHECK(strcmp(rows[4].payload, "{}") == 0);
}

struct got {
	int64_t ids[16];
	int n, stop_at;
};

static int
collect(void *arg, const struct notify_event *ev)
{
	struct got *g = arg;

	CHECK(g->n < 16);
	CHECK(ev->payload[0] == '{' && ev->len == strlen(ev->payload));
	g->ids[g->n++] = ev->id;
	return g->stop_at > 0 && g->n == g->stop_at;
}

static void
put(struct db *db, enum notify_target t, const char *v)
{
	struct err e = { 0 };

	CHECK(notify_enqueue_text(db, t, v, "{\"k\":1}", 7, &e) == 0);
}

/* The newest notify row's id. */
static int64_t
last_id(struct db *db)
{
	static const char q[] = "SELECT max(id) FROM notify";
	struct err e = { 0 };
	struct db_stmt *st;
	int64_t id;

	CHECK((st = db_stmt(db, q, &e)) != NULL);
	CHECK(db_row(db, st, &e) == 1);
	id = db_col_int(st, 0);
	db_reset(st);
	return id;
}

/* The rows for user 5 (extension 2005, role admin), from the database. */
static void
test_read_for(struct db *db)
{
	struct err e = { 0 };
	struct got g;
	int64_t base, mine[5];
	int i, k = 0;

	CHECK(notify_enqueue_text(db, NOTIFY_ALL, "", "{}", 2, &e) == 0);
	base = last_id(db);
	put(db, NOTIFY_USER, "5");
	mine[k++] = last_id(db);
	put(db, NOTIFY_USER, "50");
	put(db, NOTIFY_EXTENSION, "2005");
	mine[k++] = last_id(db);
	put(db, NOTIFY_EXTENSION, "20050");
	put(db, NOTIFY_ROLE, "user");
	put(db, NOTIFY_ROLE, "admin");
	mine[k++] = last_id(db);
	put(db, NOTIFY_ALL, "");
	mine[k++] = last_id(db);
	put(db, NOTIFY_USER, "5");
	mine[k++] = last_id(db);

	memset(&g, 0, sizeof(g));
	CHECK(notify_read_for(db, 5, "2005", "admin", base, 0, 100, collect, &g,
		  &e) == 5);
	CHECK(g.n == 5);
	for (i = 0; i < 5; i++)
		CHECK(g.ids[i] == mine[i]);
	/* limit, and a bound above */
	memset(&g, 0, sizeof(g));
	CHECK(notify_read_for(db, 5, "2005", "admin", base, 0, 2, collect, &g,
		  &e) == 2);
	CHECK(g.ids[1] == mine[1]);
	memset(&g, 0, sizeof(g));
	CHECK(notify_read_for(db, 5, "2005", "admin", mine[1], mine[3], 100,
		  collect, &g, &e) == 2);
	CHECK(g.ids[0] == mine[2] && g.ids[1] == mine[3]);
	/* the callback stops it */
	memset(&g, 0, sizeof(g));
	g.stop_at = 1;
	CHECK(notify_read_for(db, 5, "2005", "admin", base, 0, 100, collect, &g,
		  &e) == 1);
	/* nothing after the newest */
	memset(&g, 0, sizeof(g));
	CHECK(notify_read_for(db, 5, "2005", "admin", mine[4], 0, 100, collect,
		  &g, &e) == 0);
}

static void
test_stream(struct db *db)
{
	struct notify_stream s, s2;
	struct err e = { 0 };
	int rotated, n;
	int64_t last;

	CHECK(notify_stream_get(db, &s, &e) == 0);
	CHECK(strlen(s.epoch) == 16);
	CHECK(s.last == last_id(db) && s.pruned_through == 0);
	CHECK(notify_stream_replayable(&s, s.epoch, s.last));
	CHECK(notify_stream_replayable(&s, NULL, 0));
	CHECK(!notify_stream_replayable(&s, "feedfacefeedface", s.last));
	CHECK(!notify_stream_replayable(&s, s.epoch, s.last + 1));

	/* Continuous: no new epoch; the mark follows. */
	CHECK(notify_stream_check(db, &rotated, &e) == 0 && rotated == 0);
	CHECK(notify_stream_get(db, &s2, &e) == 0);
	CHECK(strcmp(s.epoch, s2.epoch) == 0);

	/* The retention: rows go, pruned_through follows, same epoch. */
	CHECK(notify_prune(db, db_now_us() + 1000000, 3, &n, &e) == 0);
	CHECK(n == 3);
	CHECK(notify_stream_get(db, &s2, &e) == 0);
	CHECK(s2.pruned_through == 3 && s2.last == s.last);
	CHECK(!notify_stream_replayable(&s2, s.epoch, 2));
	CHECK(notify_stream_replayable(&s2, s.epoch, 3));
	CHECK(notify_stream_check(db, &rotated, &e) == 0 && rotated == 0);
	/* Nothing old enough: nothing goes. */
	CHECK(notify_prune(db, 0, 100, &n, &e) == 0 && n == 0);

	/* Rows deleted behind the retention's back: a new epoch, and
	 * everything before counts as pruned. */
	last = s2.last;
	CHECK(db_exec(db, "DELETE FROM notify WHERE id = 5", &e) == 0);
	CHECK(notify_stream_check(db, &rotated, &e) == 0 && rotated == 1);
	CHECK(notify_stream_get(db, &s, &e) == 0);
	CHECK(strcmp(s.epoch, s2.epoch) != 0);
	CHECK(s.pruned_through == last && s.last == last);
	CHECK(notify_stream_check(db, &rotated, &e) == 0 && rotated == 0);

	/* A table that went back (restored, recreated): a new epoch. */
	CHECK(db_exec(db,
		  "DELETE FROM notify; UPDATE sqlite_sequence SET seq = 2 "
		  "WHERE name = 'notify'",
		  &e) == 0);
	CHECK(notify_stream_check(db, &rotated, &e) == 0 && rotated == 1);
	CHECK(notify_stream_get(db, &s2, &e) == 0);
	CHECK(strcmp(s.epoch, s2.epoch) != 0 && s2.last == 2);

	/* No stream row (an operator asking for a new epoch). */
	CHECK(db_exec(db, "DELETE FROM notify_stream", &e) == 0);
	CHECK(notify_stream_get(db, &s, &e) == -1);
	CHECK(notify_stream_check(db, &rotated, &e) == 0 && rotated == 1);
	CHECK(notify_stream_get(db, &s, &e) == 0);
	CHECK(strcmp(s.epoch, s2.epoch) != 0);
}

int
main(void)
{
	char dir[64];
	struct db *db;

	db = check_db_open(dir, sizeof(dir), "n.db");
	test_names();
	test_revocation_shape();
	test_enqueue(db);
	test_read_for(db);
	test_stream(db);
	check_db_close(db, dir);
	printf("notify: %d checks passed\n", checks);
	return 0;
}
