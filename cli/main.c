/*
 * switchboard: the operator's command-line tool. Commands:
 *   init                    secret, directories, migrations, first admin
 *   migrate                 apply pending migrations
 *   user add|passwd|del|list
 *   cdr export              call records for cron (--watermark)
 *   backup create|list|restore
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/log.h"
#include "cli/cli.h"

/* The tool waits longer than a request for the programs' writes. */
#define CLI_BUSY_MS 10000

static void
usage(FILE *f)
{
	fputs("usage: switchboard init\n"
	      "       switchboard migrate\n"
	      "       switchboard user add <username> <email> <extension> "
	      "[--role admin|user]\n"
	      "       switchboard user passwd <username>\n"
	      "       switchboard user del <username>\n"
	      "       switchboard user list\n"
	      "       switchboard cdr export [--format csv|json] [--since T] "
	      "[--until T]\n"
	      "           [--tz ZONE] [--output FILE] [--watermark FILE]\n"
	      "       switchboard backup create [--name NAME] | list | "
	      "restore <id>\n"
	      "Passwords are read from standard input, one line.\n"
	      "Configuration comes from the environment and ENV_FILE "
	      "(default ./.env).\n",
	    f);
}

void
cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("switchboard: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int
mkdir_p(const char *dir)
{
	char path[PATH_MAX], *p;
	struct stat sb;

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		cli_fail("'%s': path too long", dir);
		return -1;
	}
	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) == -1 && errno != EEXIST) {
			cli_fail("cannot create '%s': %s", path,
			    strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(path, 0755) == -1 && errno != EEXIST) {
		cli_fail("cannot create '%s': %s", path, strerror(errno));
		return -1;
	}
	if (stat(path, &sb) == -1 || !S_ISDIR(sb.st_mode)) {
		cli_fail("'%s' is not a directory", path);
		return -1;
	}
	return 0;
}

/* The directory part of path ("." when it has none). */
static void
dir_of(const char *path, char *buf, size_t size)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(buf, size, ".");
	else if (slash == path)
		snprintf(buf, size, "/");
	else
		snprintf(buf, size, "%.*s", (int)(slash - path), path);
}

int
cli_open(struct cli *cli, bool create_dirs, bool allow_old)
{
	struct err e = { 0 };
	char dir[PATH_MAX];
	int current;

	memset(cli, 0, sizeof(*cli));
	if (config_load(&cli->cfg, &e) == -1) {
		cli_fail("configuration: %s", e.msg);
		return -1;
	}
	log_init("switchboard", cli->cfg.debug);
	config_db_label(&cli->cfg, cli->db_label, sizeof(cli->db_label));
	/* The SQLite file's directory; a PostgreSQL database is the
	 * server's to create. */
	if (create_dirs && cli->cfg.database_url[0] != '\0') {
		if (mkdir_p(cli->cfg.run_dir) == -1)
			goto fail;
	} else if (create_dirs) {
		dir_of(cli->cfg.db_path, dir, sizeof(dir));
		if (mkdir_p(dir) == -1 || mkdir_p(cli->cfg.run_dir) == -1)
			goto fail;
	}
	if ((cli->db = db_open(config_db_target(&cli->cfg), CLI_BUSY_MS, &e)) ==
	    NULL) {
		cli_fail("database '%s': %s", cli->db_label, e.msg);
		goto fail;
	}
	if (allow_old)
		return 0;
	if ((current = db_is_current(cli->db, &e)) == -1) {
		cli_fail("database '%s': %s", cli->db_label, e.msg);
		goto fail;
	}
	if (current == 0) {
		cli_fail("database '%s' is not migrated: run 'switchboard "
			 "migrate' (or 'switchboard init')",
		    cli->db_label);
		goto fail;
	}
	return 0;
fail:
	cli_close(cli);
	return -1;
}

void
cli_close(struct cli *cli)
{
	db_close(cli->db);
	cli->db = NULL;
	config_wipe(&cli->cfg);
}

static int
cmd_migrate(int argc, char **argv)
{
	struct cli cli;
	struct err e = { 0 };
	int applied = 0;

	(void)argv;
	if (argc != 1) {
		usage(stderr);
		return 1;
	}
	if (cli_open(&cli, true, true) == -1)
		return 1;
	if (db_migrate(cli.db, &applied, &e) == -1) {
		cli_fail("migrate '%s': %s", cli.db_label, e.msg);
		cli_close(&cli);
		return 1;
	}
	printf("applied %d migration%s to %s\n", applied,
	    applied == 1 ? "" : "s", cli.db_label);
	cli_close(&cli);
	return 0;
}

int
main(int argc, char **argv)
{
	int rc;

	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "init") == 0)
		rc = cli_init(argc - 1, argv + 1);
	else if (strcmp(argv[1], "migrate") == 0)
		rc = cmd_migrate(argc - 1, argv + 1);
	else if (strcmp(argv[1], "user") == 0)
		rc = cli_user(argc - 1, argv + 1);
	else if (strcmp(argv[1], "cdr") == 0)
		rc = cli_cdr(argc - 1, argv + 1);
	else if (strcmp(argv[1], "backup") == 0)
		rc = cli_backup(argc - 1, argv + 1);
	else {
		cli_fail("unknown command '%s'", argv[1]);
		usage(stderr);
		rc = 1;
	}
	if (fflush(stdout) == EOF) {
		cli_fail("writing output: %s", strerror(errno));
		rc = 1;
	}
	return rc;
}
