/*
 * db_backup: SQLite's online backup API. Both directions step the whole
 * database at once (-1): a copy made in several steps restarts whenever
 * another connection writes to the source in between, and under steady
 * writes it might never finish, while one step reads one snapshot.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/db_backup.h"
#include "lib/err.h"

#define BACKUP_SLEEP_MS     20
#define BACKUP_COPY_BUSY_MS 10000

static int
fail_db(struct err *e, sqlite3 *h, const char *what, const char *path)
{
	return err_set(e, ERR_INTERNAL, "%s '%s': %s", what, path,
	    h != NULL ? sqlite3_errmsg(h) : "out of memory");
}

static int
open_db(const char *path, int flags, int busy_ms, sqlite3 **h, struct err *e)
{
	if (sqlite3_open_v2(path, h, flags, NULL) != SQLITE_OK) {
		fail_db(e, *h, "open", path);
		sqlite3_close(*h);
		*h = NULL;
		return -1;
	}
	sqlite3_busy_timeout(*h, busy_ms);
	sqlite3_extended_result_codes(*h, 1);
	return 0;
}

/* Copy everything from src into dst, retrying while locked until the
 * deadline of busy_ms. */
static int
run(sqlite3 *dst, sqlite3 *src, int busy_ms, const char *what, struct err *e)
{
	sqlite3_backup *b;
	int rc, waited = 0;

	if ((b = sqlite3_backup_init(dst, "main", src, "main")) == NULL)
		return err_set(e, ERR_INTERNAL, "%s: %s", what,
		    sqlite3_errmsg(dst));
	for (;;) {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_DONE)
			break;
		if ((rc & 0xff) != SQLITE_BUSY &&
		    (rc & 0xff) != SQLITE_LOCKED && rc != SQLITE_OK)
			break;
		if (rc != SQLITE_OK) {
			if (waited >= busy_ms)
				break;
			sqlite3_sleep(BACKUP_SLEEP_MS);
			waited += BACKUP_SLEEP_MS;
		}
	}
	sqlite3_backup_finish(b);
	if (rc == SQLITE_DONE)
		return 0;
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return err_set(e, ERR_BUSY, "%s: database locked", what);
	return err_set(e, ERR_INTERNAL, "%s: %s", what, sqlite3_errstr(rc));
}

static int
quick_check(sqlite3 *h, const char *path, struct err *e)
{
	sqlite3_stmt *st = NULL;
	const char *s;
	int rc;

	if (sqlite3_prepare_v2(h, "PRAGMA quick_check", -1, &st, NULL) !=
	    SQLITE_OK)
		return fail_db(e, h, "check", path);
	rc = sqlite3_step(st);
	s = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	if (s == NULL || strcmp(s, "ok") != 0) {
		err_set(e, ERR_INVALID, "'%s' is not a sound database: %.120s",
		    path, s != NULL ? s : sqlite3_errmsg(h));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

int
db_backup_check(const char *path, struct err *e)
{
	sqlite3 *h = NULL;
	int rc;

	if (open_db(path, SQLITE_OPEN_READONLY, BACKUP_COPY_BUSY_MS, &h, e) ==
	    -1)
		return -1;
	rc = quick_check(h, path, e);
	sqlite3_close(h);
	return rc;
}

int
db_backup_copy(const char *src, const char *dst, long long *bytes,
    struct err *e)
{
	sqlite3 *s = NULL, *d = NULL;
	char tmp[4096];
	struct stat sb;
	int fd, rc = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", dst) >= (int)sizeof(tmp))
		return err_set(e, ERR_INTERNAL, "backup path too long");
	/* Created here so that the copy is never readable by others, even
	 * for the moment before SQLite would have set its mode. */
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) ==
	    -1)
		return err_set(e, ERR_INTERNAL, "create '%s': %s", tmp,
		    strerror(errno));
	close(fd);
	if (open_db(src, SQLITE_OPEN_READONLY, BACKUP_COPY_BUSY_MS, &s, e) ==
		-1 ||
	    open_db(tmp, SQLITE_OPEN_READWRITE, BACKUP_COPY_BUSY_MS, &d, e) ==
		-1 ||
	    run(d, s, BACKUP_COPY_BUSY_MS, "backup", e) == -1)
		goto out;
	/* The copy carries the source's WAL flag; a standalone file is
	 * easier to move around as one file. */
	if (sqlite3_exec(d, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) !=
		SQLITE_OK ||
	    quick_check(d, tmp, e) == -1)
		goto out;
	if (sqlite3_close(d) != SQLITE_OK) {
		fail_db(e, d, "close", tmp);
		goto out;
	}
	d = NULL;
	if (rename(tmp, dst) == -1) {
		err_set(e, ERR_INTERNAL, "rename to '%s': %s", dst,
		    strerror(errno));
		goto out;
	}
	if (bytes != NULL)
		*bytes = stat(dst, &sb) == 0 ? (long long)sb.st_size : 0;
	rc = 0;
out:
	sqlite3_close(d);
	sqlite3_close(s);
	if (rc == -1)
		(void)unlink(tmp);
	return rc;
}

int
db_backup_restore(const char *src, const char *dst, int busy_ms, struct err *e)
{
	sqlite3 *s = NULL, *d = NULL;
	int rc = -1;

	if (db_backup_check(src, e) == -1)
		return -1;
	if (open_db(src, SQLITE_OPEN_READONLY, busy_ms, &s, e) == -1 ||
	    open_db(dst, SQLITE_OPEN_READWRITE, busy_ms, &d, e) == -1)
		goto out;
	/* The backup writes through dst's pager, in dst's own journal mode
	 * (WAL): a reader in another connection keeps its snapshot until its
	 * transaction ends, then sees the restored pages. */
	rc = run(d, s, busy_ms, "restore", e);
out:
	sqlite3_close(d);
	sqlite3_close(s);
	return rc;
}
