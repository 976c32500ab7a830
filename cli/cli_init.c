/*
 * switchboard init: make a fresh checkout or install runnable, and do
 * nothing more when run again. A JWT secret, the directories, the
 * migrations, and an admin account whose password is shown once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/password.h"
#include "lib/users.h"
#include "cli/cli.h"

/* What config_load accepts as a secret: not shorter, not the default. */
#define SECRET_MIN               16
#define SECRET_LEN               48
#define FIRST_ADMIN_PASSWORD_LEN 20
#define DEMO_PASSWORD            "password"

enum q { Q_HAS_ADMIN, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_HAS_ADMIN] = "SELECT EXISTS (SELECT 1 FROM users "
			"WHERE role = 'admin')",
};

/* The contract's seeded users, only with SWITCHBOARD_DEMO=1. */
static const struct {
	const char *username, *email, *extension, *role;
} demo_users[] = {
	{ "admin", "admin@voip.local", "1000", "admin" },
	{ "user1", "user1@voip.local", "1001", "user" },
	{ "user2", "user2@voip.local", "1002", "user" },
	{ "user3", "user3@voip.local", "1003", "user" },
};

static bool
env_true(const char *name)
{
	const char *v = config_get(name);

	return v != NULL &&
	       (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
		   strcasecmp(v, "yes") == 0);
}

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Without a usable JWT_SECRET the programs refuse to start (outside debug
 * and demo, which generate their own), so init writes one to the env file
 * the programs read. The .env parser lets the last line win, so appending
 * also replaces a weak line already there.
 */
static int
secret_ensure(void)
{
	const char *s = config_get("JWT_SECRET"), *path;
	char line[SECRET_LEN + 32], sec[SECRET_LEN + 1], last;
	struct err e = { 0 };
	struct stat sb;
	int fd, n, rc = -1;

	if (s != NULL && strlen(s) >= SECRET_MIN &&
	    strcmp(s, CONFIG_UPSTREAM_DEFAULT_SECRET) != 0)
		return 0;
	if (env_true("DEBUG") || env_true("SWITCHBOARD_DEMO"))
		return 0;
	path = getenv("ENV_FILE");
	if (path == NULL || *path == '\0')
		path = "./.env";
	if (password_random(sec, SECRET_LEN, &e) == -1) {
		cli_fail("generating a secret: %s", e.msg);
		return -1;
	}
	n = snprintf(line, sizeof(line), "JWT_SECRET=%s\n", sec);
	if ((fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) ==
	    -1) {
		cli_fail("cannot open '%s': %s", path, strerror(errno));
		goto out;
	}
	/* Start on a line of our own if the file does not end with one. */
	if (fstat(fd, &sb) == -1 ||
	    (sb.st_size > 0 &&
		(pread(fd, &last, 1, sb.st_size - 1) != 1 ||
		    (last != '\n' && write_all(fd, "\n", 1) == -1))) ||
	    write_all(fd, line, (size_t)n) == -1 || fsync(fd) == -1) {
		cli_fail("cannot write '%s': %s", path, strerror(errno));
		close(fd);
		goto out;
	}
	if (close(fd) == -1) {
		cli_fail("cannot write '%s': %s", path, strerror(errno));
		goto out;
	}
	if ((sb.st_mode & 077) != 0 && sb.st_size > 0)
		fprintf(stderr,
		    "switchboard: warning: '%s' is readable by others and now "
		    "holds a secret: chmod 600 it\n",
		    path);
	if (getenv("JWT_SECRET") != NULL && *getenv("JWT_SECRET") != '\0')
		fprintf(stderr,
		    "switchboard: warning: JWT_SECRET in the environment "
		    "overrides '%s': unset it before starting the programs\n",
		    path);
	if (setenv("JWT_SECRET", sec, 1) == -1) {
		cli_fail("setenv: %s", strerror(errno));
		goto out;
	}
	printf("wrote a new JWT_SECRET to %s\n", path);
	rc = 0;
out:
	explicit_bzero(sec, sizeof(sec));
	explicit_bzero(line, sizeof(line));
	return rc;
}

/* Whether there is an admin account: 1, 0, or -1. */
static int
has_admin(struct db *db, struct err *e)
{
	struct db_stmt *st;
	int r, v;

	if ((st = db_stmt(db, sql[Q_HAS_ADMIN], e)) == NULL)
		return -1;
	if ((r = db_row(db, st, e)) != 1)
		return r == 0 ? err_set(e, ERR_INTERNAL, "no row") : -1;
	v = db_col_int(st, 0);
	db_reset(st);
	return v != 0;
}

/* 1000 unless taken, else the next free four-digit extension. */
static int
free_extension(struct db *db, char *buf, size_t size, struct err *e)
{
	int n;

	for (n = 1000; n <= 9999; n++) {
		snprintf(buf, size, "%d", n);
		if (users_conflicts(db, 0, NULL, NULL, buf, e) == 0)
			return 0;
		if (e->code != ERR_CONFLICT)
			return -1;
	}
	return err_set(e, ERR_CONFLICT, "no free four-digit extension");
}

static int
first_admin(struct db *db)
{
	char pw[FIRST_ADMIN_PASSWORD_LEN + 1], ext[16];
	struct users_new u = { .username = "admin",
		.email = "admin@localhost",
		.password = pw,
		.extension = ext,
		.role = "admin" };
	struct err e = { 0 };
	int64_t id;
	int r, rc = -1;

	if ((r = has_admin(db, &e)) != 0) {
		if (r == -1)
			cli_fail("%s", e.msg);
		return r == -1 ? -1 : 0;
	}
	if (password_random(pw, FIRST_ADMIN_PASSWORD_LEN, &e) == -1 ||
	    users_hash(&u, &e) == -1) {
		cli_fail("first admin password: %s", e.msg);
		goto out;
	}
	if (db_begin(db, &e) == -1) {
		cli_fail("%s", e.msg);
		goto out;
	}
	/* Again under the lock: another init may have won the race. */
	if ((r = has_admin(db, &e)) != 0) {
		db_rollback(db);
		if (r == -1)
			cli_fail("%s", e.msg);
		rc = r == -1 ? -1 : 0;
		goto out;
	}
	if (free_extension(db, ext, sizeof(ext), &e) == -1 ||
	    cli_user_insert(db, &u, &id, &e) == -1 || db_commit(db, &e) == -1) {
		db_rollback(db);
		if (e.code == ERR_CONFLICT && strcmp(e.field, "username") == 0)
			cli_fail(
			    "there is no admin, but a user named 'admin' "
			    "exists: create one with 'switchboard user "
			    "add <name> <email> <extension> --role admin'");
		else
			cli_fail("first admin: %s", e.msg);
		goto out;
	}
	/* The one place a password is shown, by design: nobody knows it
	 * otherwise. */
	printf("first admin: username admin, password %s\n", pw);
	rc = 0;
out:
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(u.hash, sizeof(u.hash));
	return rc;
}

static int
demo_seed(struct db *db)
{
	struct users_new u;
	struct err e = { 0 };
	int64_t id;
	size_t i;

	for (i = 0; i < nitems(demo_users); i++) {
		/* A name taken is an account of an earlier run: kept. */
		if (users_conflicts(db, 0, demo_users[i].username, NULL, NULL,
			&e) == -1) {
			if (e.code == ERR_CONFLICT)
				continue;
			cli_fail("%s", e.msg);
			return -1;
		}
		u = (struct users_new){ .username = demo_users[i].username,
			.email = demo_users[i].email,
			.password = DEMO_PASSWORD,
			.extension = demo_users[i].extension,
			.role = demo_users[i].role };
		if (users_hash(&u, &e) == -1) {
			cli_fail("demo password: %s", e.msg);
			return -1;
		}
		if (db_begin(db, &e) == -1 ||
		    cli_user_insert(db, &u, &id, &e) == -1 ||
		    db_commit(db, &e) == -1) {
			db_rollback(db);
			explicit_bzero(u.hash, sizeof(u.hash));
			/* Someone else holds the address or extension: the
			 * demo goes on without this account. */
			if (e.code == ERR_CONFLICT) {
				fprintf(stderr,
				    "switchboard: warning: demo user '%s' not "
				    "created: %s\n",
				    demo_users[i].username, e.msg);
				continue;
			}
			cli_fail("demo user '%s': %s", demo_users[i].username,
			    e.msg);
			return -1;
		}
		explicit_bzero(u.hash, sizeof(u.hash));
		printf("created demo user %s (extension %s, role %s)\n",
		    demo_users[i].username, demo_users[i].extension,
		    demo_users[i].role);
	}
	printf("\n"
	       "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
	       "!!!!!!!!!!!!!\n"
	       "DEMO MODE: demo users admin, user1-user3 with password "
	       "'password' exist — never use this on a reachable server\n"
	       "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
	       "!!!!!!!!!!!!!\n\n");
	return 0;
}

int
cli_init(int argc, char **argv)
{
	struct err e = { 0 };
	struct cli cli;
	int applied = 0, rc = 1;

	(void)argv;
	if (argc != 1) {
		cli_fail("usage: switchboard init");
		return 1;
	}
	if (secret_ensure() == -1)
		return 1;
	if (cli_open(&cli, true, true) == -1)
		return 1;
	if (db_migrate(cli.db, &applied, &e) == -1) {
		cli_fail("migrate '%s': %s", cli.cfg.db_path, e.msg);
		goto out;
	}
	printf("applied %d migration%s to %s\n", applied,
	    applied == 1 ? "" : "s", cli.cfg.db_path);
	if (cli.cfg.demo ? demo_seed(cli.db) == -1 : first_admin(cli.db) == -1)
		goto out;
	rc = 0;
out:
	cli_close(&cli);
	return rc;
}
