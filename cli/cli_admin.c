/*
 * switchboard cdr export ...   call records to a file, for cron
 * switchboard backup create|list|restore
 *
 * The export is the REST export's code (lib/export.h). With --watermark
 * each run exports the records after the last one the previous run
 * exported, in id order, and only records that are settled: a call that is
 * still ringing or talking is left, with everything after it, for a later
 * run, so that a record goes out once and complete. A call left open for a
 * day counts as settled (its row was abandoned). The file is written
 * aside and renamed into place, then the watermark the same way; any
 * failure exits non-zero with one line on stderr, which cron mails.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/backup.h"
#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/export.h"
#include "cli/cli.h"

#define SETTLE_US (INT64_C(86400) * 1000000)

enum q { Q_SETTLED, Q__MAX };
static const char *const sql[Q__MAX] = {
	/* The highest id before the oldest call still open (ended rows
	 * have end_time); every id when none is. */
	[Q_SETTLED] = "SELECT COALESCE((SELECT min(id) - 1 FROM call_logs "
		      "WHERE end_time IS NULL AND created_at >= ?1), "
		      "(SELECT max(id) FROM call_logs), 0)",
};

static void
cdr_usage(void)
{
	fputs("usage: switchboard cdr export [--format csv|json] "
	      "[--since T] [--until T]\n"
	      "           [--tz ZONE] [--output FILE] [--watermark FILE]\n"
	      "T is YYYY-MM-DD (a local day of ZONE) or RFC 3339; FILE - is "
	      "standard output.\n",
	    stderr);
}

struct out_file {
	FILE *f;
};

static int
file_write(void *arg, const char *buf, size_t len)
{
	struct out_file *o = arg;

	return fwrite(buf, 1, len, o->f) == len ? 0 : -1;
}

/* The watermark: the last id exported, 0 when the file does not exist. */
static int
watermark_read(const char *path, int64_t *id)
{
	char buf[32], *end;
	long long v;
	size_t n;
	FILE *f;

	*id = 0;
	if ((f = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return 0;
		cli_fail("watermark '%s': %s", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	if (n == 0 || errno != 0 || *end != '\0' || v < 0 || buf[0] == '-') {
		cli_fail("watermark '%s': not a record id", path);
		return -1;
	}
	*id = v;
	return 0;
}

/* path.tmp, flushed to disk and renamed over path. */
static int
commit_file(FILE *f, const char *tmp, const char *path)
{
	if (fflush(f) == EOF || fsync(fileno(f)) == -1) {
		cli_fail("writing '%s': %s", tmp, strerror(errno));
		fclose(f);
		return -1;
	}
	if (fclose(f) == EOF) {
		cli_fail("writing '%s': %s", tmp, strerror(errno));
		return -1;
	}
	if (rename(tmp, path) == -1) {
		cli_fail("rename to '%s': %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static FILE *
open_tmp(const char *path, char *tmp, size_t size)
{
	FILE *f;
	int fd;

	if (snprintf(tmp, size, "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)size) {
		cli_fail("'%s': path too long", path);
		return NULL;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) ==
		-1 ||
	    (f = fdopen(fd, "w")) == NULL) {
		cli_fail("create '%s': %s", tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	return f;
}

static int
watermark_write(const char *path, int64_t id)
{
	char tmp[PATH_MAX];
	FILE *f;

	if ((f = open_tmp(path, tmp, sizeof(tmp))) == NULL)
		return -1;
	if (fprintf(f, "%" PRId64 "\n", id) < 0) {
		cli_fail("writing '%s': %s", tmp, strerror(errno));
		fclose(f);
		(void)unlink(tmp);
		return -1;
	}
	if (commit_file(f, tmp, path) == -1) {
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

static int
settled_id(struct db *db, int64_t *id, struct err *e)
{
	struct db_stmt *st;
	char since[40];
	int r;

	db_time_format(db_now_us() - SETTLE_US, since, sizeof(since));
	if ((st = db_stmt(db, sql[Q_SETTLED], e)) == NULL)
		return -1;
	db_bind_text(st, 1, since);
	if ((r = db_row(db, st, e)) != 1)
		return r == 0 ? err_set(e, ERR_INTERNAL, "no row") : -1;
	*id = db_col_int(st, 0);
	db_reset(st);
	return 0;
}

struct cdr_args {
	enum export_format fmt;
	const char *since, *until, *tz, *output, *watermark;
};

static int
cdr_parse(int argc, char **argv, struct cdr_args *a)
{
	const char *v;
	int i;

	memset(a, 0, sizeof(*a));
	a->fmt = EXPORT_CSV;
	a->output = "-";
	for (i = 2; i < argc; i++) {
		if (i + 1 >= argc || strncmp(argv[i], "--", 2) != 0) {
			cdr_usage();
			return -1;
		}
		v = argv[++i];
		if (strcmp(argv[i - 1], "--format") == 0) {
			if (strcmp(v, "csv") == 0)
				a->fmt = EXPORT_CSV;
			else if (strcmp(v, "json") == 0)
				a->fmt = EXPORT_JSON;
			else {
				cli_fail("--format: '%s' is not csv or json",
				    v);
				return -1;
			}
		} else if (strcmp(argv[i - 1], "--since") == 0)
			a->since = v;
		else if (strcmp(argv[i - 1], "--until") == 0)
			a->until = v;
		else if (strcmp(argv[i - 1], "--tz") == 0)
			a->tz = v;
		else if (strcmp(argv[i - 1], "--output") == 0)
			a->output = v;
		else if (strcmp(argv[i - 1], "--watermark") == 0)
			a->watermark = v;
		else {
			cli_fail("unknown option '%s'", argv[i - 1]);
			cdr_usage();
			return -1;
		}
	}
	if (a->tz != NULL && !export_tz_valid(a->tz)) {
		cli_fail("--tz: '%s' is not a time zone", a->tz);
		return -1;
	}
	return 0;
}

static int
cdr_export(int argc, char **argv)
{
	struct export_filter f = { 0 };
	struct export_result res;
	struct out_file o;
	struct cdr_args a;
	struct err e = { 0 };
	struct cli cli;
	char since[40], until[40], tmp[PATH_MAX];
	bool to_stdout;
	int64_t wm = 0, upto = 0;
	int rc = 1;

	if (cdr_parse(argc, argv, &a) == -1)
		return 1;
	if (a.since != NULL) {
		if (export_parse_bound(a.tz, a.since, false, since,
			sizeof(since)) == -1) {
			cli_fail("--since: '%s' is not a date or time",
			    a.since);
			return 1;
		}
		f.since = since;
	}
	if (a.until != NULL) {
		if (export_parse_bound(a.tz, a.until, true, until,
			sizeof(until)) == -1) {
			cli_fail("--until: '%s' is not a date or time",
			    a.until);
			return 1;
		}
		f.until = until;
	}
	if (a.watermark != NULL && watermark_read(a.watermark, &wm) == -1)
		return 1;
	if (cli_open(&cli, false, false) == -1)
		return 1;
	to_stdout = strcmp(a.output, "-") == 0;
	o.f = stdout;
	if (!to_stdout && (o.f = open_tmp(a.output, tmp, sizeof(tmp))) == NULL)
		goto out;
	/* One snapshot: the settled bound and the rows agree. */
	if (db_begin_read(cli.db, &e) == -1)
		goto fail;
	if (a.watermark != NULL) {
		if (settled_id(cli.db, &upto, &e) == -1)
			goto fail;
		f.after_id = wm;
		/* Nothing settled past the watermark: no row (an id is never
		 * below 0), the header or [] alone. */
		f.upto_id = upto > wm ? upto : -1;
		f.oldest_first = true;
	}
	if (export_call_logs(cli.db, a.fmt, &f, a.tz, file_write, &o, &res,
		&e) == -1)
		goto fail;
	db_rollback(cli.db);
	if (to_stdout) {
		if (fflush(stdout) == EOF) {
			cli_fail("writing the export: %s", strerror(errno));
			goto out;
		}
	} else {
		if (commit_file(o.f, tmp, a.output) == -1) {
			(void)unlink(tmp);
			o.f = NULL;
			goto out;
		}
		o.f = NULL;
	}
	if (a.watermark != NULL && res.rows > 0 &&
	    watermark_write(a.watermark, res.last_id) == -1)
		goto out;
	rc = 0;
	goto out;
fail:
	db_rollback(cli.db);
	cli_fail("export: %s", e.msg);
out:
	/* A file not renamed into place is not left behind. */
	if (!to_stdout && o.f != NULL) {
		fclose(o.f);
		(void)unlink(tmp);
	}
	cli_close(&cli);
	return rc;
}

int
cli_cdr(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "export") == 0)
		return cdr_export(argc, argv);
	cdr_usage();
	return 1;
}

/* ---- backup ---- */

static void
backup_usage(void)
{
	fputs("usage: switchboard backup create [--name NAME]\n"
	      "       switchboard backup list\n"
	      "       switchboard backup restore <id>\n",
	    stderr);
}

static int
print_row(void *arg, const struct backup_row *r, struct err *e)
{
	(void)arg;
	(void)e;
	printf("%s\t%s\t%" PRId64 "\t%s\t%s\n", r->id, r->status, r->size,
	    r->created_at, r->name);
	return 0;
}

int
cli_backup(int argc, char **argv)
{
	struct backup_row *row = NULL;
	const char *name = NULL;
	struct err e = { 0 };
	struct cli cli;
	int rc = 1, r = 0;

	if (argc < 2 ||
	    (strcmp(argv[1], "create") == 0 &&
		!(argc == 2 ||
		    (argc == 4 && strcmp(argv[2], "--name") == 0))) ||
	    (strcmp(argv[1], "list") == 0 && argc != 2) ||
	    (strcmp(argv[1], "restore") == 0 && argc != 3) ||
	    (strcmp(argv[1], "create") != 0 && strcmp(argv[1], "list") != 0 &&
		strcmp(argv[1], "restore") != 0)) {
		backup_usage();
		return 1;
	}
	if (argc == 4)
		name = argv[3];
	if (cli_open(&cli, false, false) == -1)
		return 1;
	if (db_engine(cli.db) == DB_POSTGRES) {
		cli_fail("%s", BACKUP_PG_TEXT);
		goto out;
	}
	if ((row = malloc(sizeof(*row))) == NULL) {
		cli_fail("out of memory");
		goto out;
	}
	if (strcmp(argv[1], "create") == 0) {
		if ((r = backup_create(cli.db, &cli.cfg, name, "", 0, row,
			 &e)) == 0)
			printf("%s\t%" PRId64 "\t%s\n", row->id, row->size,
			    row->path);
	} else if (strcmp(argv[1], "list") == 0)
		r = backup_list(cli.db, print_row, NULL, &e);
	else if ((r = backup_restore(cli.db, &cli.cfg, argv[2], 0, row, &e)) ==
		 0)
		printf("restored %s; the database before it is backup %s\n",
		    argv[2], row->id);
	if (r == -1) {
		cli_fail("backup %s: %s", argv[1], e.msg);
		goto out;
	}
	rc = 0;
out:
	free(row);
	cli_close(&cli);
	return rc;
}
