/*
 * The stream's order under concurrent writers: a reader that follows
 * "id > cursor", as every relay does, must never skip a row. On SQLite
 * writers are serialized by the engine; on PostgreSQL ids come from a
 * sequence, and a row whose transaction commits after a higher id's would
 * be skipped for good, unless writers are serialized (db_begin's lock).
 * Here WRITERS processes each write ROWS rows, pausing a random while
 * between the insert and the commit so that, unserialized, commits would
 * land out of id order, while this process reads as a relay does.
 *
 * SQLite in a temporary file, and PostgreSQL too when SB_TEST_DATABASE_URL
 * names a database this test may empty.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/notify.h"

#define WRITERS 8
#define ROWS    40
#define TOTAL   (WRITERS * ROWS)

enum q { Q_AFTER, Q_ALL, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_AFTER] = "SELECT id FROM notify WHERE id > ?1 ORDER BY id",
	[Q_ALL] = "SELECT id FROM notify ORDER BY id",
};

static void
pause_random(unsigned *seed)
{
	struct timespec ts = { 0, (long)(rand_r(seed) % 3000) * 1000 };

	nanosleep(&ts, NULL);
}

/* One writer process: ROWS rows, each in its own write transaction. */
static void
writer(const char *target, int n)
{
	unsigned seed = (unsigned)n * 7919u + (unsigned)getpid();
	struct err e = { 0 };
	char payload[64];
	struct db *db;
	int i, len;

	if ((db = db_open(target, 30000, &e)) == NULL) {
		fprintf(stderr, "writer %d: %s\n", n, e.msg);
		_exit(1);
	}
	for (i = 0; i < ROWS; i++) {
		len = snprintf(payload, sizeof(payload),
		    "{\"type\":\"order\",\"w\":%d,\"i\":%d}", n, i);
		/* Every other row without a transaction of the caller's:
		 * notify makes its own. */
		if (i % 2 == 0) {
			if (notify_enqueue_text(db, NOTIFY_ALL, "", payload,
				(size_t)len, &e) == -1) {
				fprintf(stderr, "writer %d: %s\n", n, e.msg);
				_exit(1);
			}
			continue;
		}
		if (db_begin(db, &e) == -1 ||
		    notify_enqueue_text(db, NOTIFY_ALL, "", payload,
			(size_t)len, &e) == -1) {
			fprintf(stderr, "writer %d: %s\n", n, e.msg);
			_exit(1);
		}
		pause_random(&seed);
		if (db_commit(db, &e) == -1) {
			fprintf(stderr, "writer %d: %s\n", n, e.msg);
			_exit(1);
		}
	}
	db_close(db);
	_exit(0);
}

/* Read past *cursor as a relay does, appending to got. */
static void
follow(struct db *db, int64_t *cursor, int64_t *got, int *ngot)
{
	struct err e = { 0 };
	struct db_stmt *st;
	int rc;

	CHECK((st = db_stmt(db, sql[Q_AFTER], &e)) != NULL);
	db_bind_int(st, 1, *cursor);
	while ((rc = db_row(db, st, &e)) == 1) {
		CHECK(*ngot < TOTAL);
		got[(*ngot)++] = *cursor = db_col_int(st, 0);
	}
	CHECK(rc == 0);
}

static void
check_order(struct db *db, const char *target, const char *label)
{
	int64_t got[TOTAL], all[TOTAL], cursor = 0;
	int ngot = 0, nall = 0, running = WRITERS, status, i, rc;
	struct err e = { 0 };
	struct db_stmt *st;
	pid_t pid;

	for (i = 0; i < WRITERS; i++) {
		CHECK((pid = fork()) != -1);
		if (pid == 0)
			writer(target, i);
	}
	while (running > 0) {
		follow(db, &cursor, got, &ngot);
		usleep(200);
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
			running--;
		}
	}
	follow(db, &cursor, got, &ngot);

	CHECK((st = db_stmt(db, sql[Q_ALL], &e)) != NULL);
	while ((rc = db_row(db, st, &e)) == 1) {
		CHECK(nall < TOTAL);
		all[nall++] = db_col_int(st, 0);
	}
	CHECK(rc == 0);
	CHECK(nall == TOTAL);
	/* What the follower saw is every row, each once, in id order. */
	CHECK(ngot == nall);
	CHECK(memcmp(got, all, sizeof(all)) == 0);
	printf("notify_order: %s: %d rows from %d writers, none skipped\n",
	    label, ngot, WRITERS);
}

int
main(void)
{
	const char *url = getenv("SB_TEST_DATABASE_URL");
	char dir[64], path[96];
	struct err e = { 0 };
	struct db *db;

	db = check_db_open(dir, sizeof(dir), "order.db");
	snprintf(path, sizeof(path), "%s/order.db", dir);
	check_order(db, path, "sqlite");
	check_db_close(db, dir);

	if (url != NULL && url[0] != '\0') {
		CHECK((db = db_open(url, 30000, &e)) != NULL);
		/* A database of its own for this run: emptied, migrated. */
		CHECK(db_exec(db,
			  "SET client_min_messages = warning; "
			  "DROP SCHEMA public CASCADE; CREATE SCHEMA public",
			  &e) == 0);
		CHECK(db_migrate(db, NULL, &e) == 0);
		check_order(db, url, "postgresql");
		db_close(db);
	}
	printf("notify_order: %d checks passed\n", checks);
	return 0;
}
