/*
 * switchboard user add|passwd|del|list: account changes from the shell,
 * each one transaction with its audit_log row (actor NULL) and, where the
 * browsers should know, its notify row.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lib/audit.h"
#include "lib/auth.h"
#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/password.h"
#include "lib/users.h"
#include "cli/cli.h"

enum q { Q_BY_NAME, Q_SET_PASSWORD, Q_LIST, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_BY_NAME] = "SELECT id, role FROM users WHERE username = ?1",
	[Q_SET_PASSWORD] =
	    "UPDATE users SET password = ?2, updated_at = ?3 WHERE id = ?1",
	[Q_LIST] = "SELECT id, username, email, extension, role, status "
		   "FROM users ORDER BY id",
};

/* The same limits as the REST routes, through the same field decoder. */
static const struct jh_field user_fields[] = {
	USERS_FIELD_USERNAME(struct users_new, true),
	USERS_FIELD_EMAIL(struct users_new, true),
	USERS_FIELD_EXTENSION(struct users_new, true),
};

static void
user_usage(void)
{
	fputs("usage: switchboard user add <username> <email> <extension> "
	      "[--role admin|user]\n"
	      "       switchboard user passwd <username>\n"
	      "       switchboard user del <username>\n"
	      "       switchboard user list\n",
	    stderr);
}

/* Echo stays off only while we read; a signal must not leave it off. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_altered;

static void
tty_restore_on_signal(int sig)
{
	if (tty_altered)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

int
cli_password_read(const char *prompt, char *buf, size_t size, struct err *e)
{
	struct sigaction sa, old_int, old_term;
	struct termios noecho;
	bool tty = isatty(STDIN_FILENO) == 1;
	size_t n;
	int c;
	char *got;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &saved_tty) == -1)
			return err_set(e, ERR_INTERNAL,
			    "cannot read the "
			    "terminal settings");
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = tty_restore_on_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		noecho = saved_tty;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		noecho.c_lflag |= ECHONL;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho) == 0)
			tty_altered = 1;
	}
	got = fgets(buf, (int)size, stdin);
	if (tty) {
		if (tty_altered)
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
		tty_altered = 0;
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
	}
	if (got == NULL) {
		buf[0] = '\0';
		return err_set(e, ERR_INVALID, "no password on standard input");
	}
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(stdin)) {
		/* Longer than the buffer: drop the rest, refuse the lot. */
		while ((c = getchar()) != EOF && c != '\n')
			;
		explicit_bzero(buf, size);
		return err_set(e, ERR_INVALID, "password is too long");
	}
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

/* Read and check a new password: twice when a person types it. */
static int
new_password(char *buf, size_t size)
{
	char again[USERS_PASSWORD_MAX + 2];
	struct err e = { 0 };
	size_t n;
	int rc = -1;

	if (cli_password_read("Password: ", buf, size, &e) == -1) {
		cli_fail("%s", e.msg);
		return -1;
	}
	n = strlen(buf);
	if (n < USERS_PASSWORD_MIN || n > USERS_PASSWORD_MAX) {
		cli_fail("the password must be %d to %d characters",
		    USERS_PASSWORD_MIN, USERS_PASSWORD_MAX);
		goto out;
	}
	if (isatty(STDIN_FILENO) == 1) {
		if (cli_password_read("Repeat password: ", again, sizeof(again),
			&e) == -1) {
			cli_fail("%s", e.msg);
			goto out;
		}
		if (strcmp(buf, again) != 0) {
			cli_fail("the passwords differ");
			goto out;
		}
	}
	rc = 0;
out:
	explicit_bzero(again, sizeof(again));
	if (rc == -1)
		explicit_bzero(buf, size);
	return rc;
}

/* An audit_log row about user_id, made by no account (actor NULL). */
static int
cli_audit(struct db *db, const char *action, int64_t user_id,
    const char *username, struct err *e)
{
	struct json_object *d;
	int rc;

	if ((d = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(d, "username", username);
	jh_add_str(d, "via", "cli");
	rc = audit_user(db, 0, action, user_id, d, e);
	json_object_put(d);
	return rc;
}

/*
 * The tool names the taken value ("extension '1000' already exists") and
 * the field, which tells init a taken "admin" username apart.
 */
static int
conflict_named(const struct users_new *u, struct err *e)
{
	if (e->code != ERR_CONFLICT)
		return -1;
	if (strcmp(e->msg, USERS_USERNAME_TAKEN) == 0)
		return err_set_field(e, ERR_CONFLICT, "username",
		    "username '%s' already exists", u->username);
	if (strcmp(e->msg, USERS_EMAIL_TAKEN) == 0)
		return err_set_field(e, ERR_CONFLICT, "email",
		    "email '%s' already exists", u->email);
	if (strcmp(e->msg, USERS_EXTENSION_TAKEN) == 0)
		return err_set_field(e, ERR_CONFLICT, "extension",
		    "extension '%s' already exists", u->extension);
	return -1;
}

int
cli_user_insert(struct db *db, const struct users_new *u, int64_t *id,
    struct err *e)
{
	if (users_insert(db, u, id, e) == -1)
		return conflict_named(u, e);
	return cli_audit(db, "user.create", *id, u->username, e);
}

/* The id and role of username: 1 found, 0 absent, -1 error. */
static int
user_find(struct db *db, const char *username, int64_t *id, char *role,
    size_t rolesize, struct err *e)
{
	struct db_stmt *st;
	const char *s;
	int r;

	if ((st = db_stmt(db, sql[Q_BY_NAME], e)) == NULL)
		return -1;
	db_bind_text(st, 1, username);
	if ((r = db_row(db, st, e)) != 1)
		return r;
	*id = db_col_int(st, 0);
	s = db_col_text(st, 1);
	snprintf(role, rolesize, "%s", s != NULL ? s : "");
	db_reset(st);
	return 1;
}

/*
 * BEGIN IMMEDIATE, then user_find under the lock: the user may have gone
 * since the caller last looked. ERR_NOTFOUND when absent; on failure no
 * transaction is left open.
 */
static int
user_lock(struct db *db, const char *username, int64_t *id, char *role,
    size_t rolesize, struct err *e)
{
	int found;

	if (db_begin(db, e) == -1)
		return -1;
	if ((found = user_find(db, username, id, role, rolesize, e)) == 1)
		return 0;
	if (found == 0)
		err_set(e, ERR_NOTFOUND, "no user '%s'", username);
	db_rollback(db);
	return -1;
}

static int
user_add(int argc, char **argv)
{
	struct json_object *o;
	struct users_new in = { 0 };
	struct err e = { 0 };
	struct cli cli;
	const char *pos[3], *role = "user";
	char pw[USERS_PASSWORD_MAX + 2];
	int64_t id = 0;
	int i, npos = 0, rc = 1;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
			role = argv[++i];
		else if (strncmp(argv[i], "--role=", 7) == 0)
			role = argv[i] + 7;
		else if (argv[i][0] == '-' && argv[i][1] == '-') {
			user_usage();
			return 1;
		} else if (npos < 3)
			pos[npos++] = argv[i];
		else {
			user_usage();
			return 1;
		}
	}
	if (npos != 3) {
		user_usage();
		return 1;
	}
	if (!users_role_valid(role)) {
		cli_fail("the role must be 'user' or 'admin'");
		return 1;
	}
	if ((o = json_object_new_object()) == NULL) {
		cli_fail("out of memory");
		return 1;
	}
	jh_add_str(o, "username", pos[0]);
	jh_add_str(o, "email", pos[1]);
	jh_add_str(o, "extension", pos[2]);
	if (jh_decode(o, user_fields, nitems(user_fields), &in, &e) == -1) {
		if (strcmp(e.field, "username") == 0)
			cli_fail("the username must be %d to %d characters",
			    USERS_USERNAME_MIN, USERS_USERNAME_MAX);
		else if (strcmp(e.field, "email") == 0)
			cli_fail("'%s' is not an email address", pos[1]);
		else
			cli_fail("the extension must be %d to %d digits",
			    USERS_EXTENSION_MIN, USERS_EXTENSION_MAX);
		json_object_put(o);
		return 1;
	}
	if (!users_username_valid(in.username)) {
		cli_fail("the username has control characters");
		json_object_put(o);
		return 1;
	}
	in.role = role;
	if (cli_open(&cli, false, false) == -1) {
		json_object_put(o);
		return 1;
	}
	if (new_password(pw, sizeof(pw)) == -1)
		goto out;
	in.password = pw;
	if (users_hash(&in, &e) == -1) {
		cli_fail("hashing the password: %s", e.msg);
		goto out;
	}
	if (db_begin(cli.db, &e) == -1 ||
	    cli_user_insert(cli.db, &in, &id, &e) == -1 ||
	    db_commit(cli.db, &e) == -1) {
		db_rollback(cli.db);
		cli_fail("%s", e.msg);
	} else {
		printf("created user %s (id %" PRId64 ", extension %s, "
		       "role %s)\n",
		    in.username, id, in.extension, role);
		rc = 0;
	}
out:
	cli_close(&cli);
	json_object_put(o);
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(in.hash, sizeof(in.hash));
	return rc;
}

static int
user_passwd(int argc, char **argv)
{
	struct err e = { 0 };
	struct cli cli;
	struct db_stmt *st;
	char pw[USERS_PASSWORD_MAX + 2], hash[PASSWORD_HASH_MAX], role[16];
	char now[40];
	int64_t id;
	int found, rc = 1;

	if (argc != 2) {
		user_usage();
		return 1;
	}
	if (cli_open(&cli, false, false) == -1)
		return 1;
	/* Refuse an unknown name before asking for a password. */
	if ((found = user_find(cli.db, argv[1], &id, role, sizeof(role), &e)) !=
	    1) {
		if (found == 0)
			cli_fail("no user '%s'", argv[1]);
		else
			cli_fail("%s", e.msg);
		cli_close(&cli);
		return 1;
	}
	if (new_password(pw, sizeof(pw)) == -1) {
		cli_close(&cli);
		return 1;
	}
	if (password_hash(pw, hash, sizeof(hash), &e) == -1) {
		cli_fail("hashing the password: %s", e.msg);
		goto out;
	}
	db_now(now, sizeof(now));
	if (user_lock(cli.db, argv[1], &id, role, sizeof(role), &e) == -1)
		goto fail;
	if ((st = db_stmt(cli.db, sql[Q_SET_PASSWORD], &e)) == NULL)
		goto rollback;
	db_bind_int(st, 1, id);
	db_bind_text(st, 2, hash);
	db_bind_text(st, 3, now);
	/* A new password ends the sessions signed in with the old one. */
	if (db_done(cli.db, st, &e) == -1 ||
	    auth_revoke_user(cli.db, id, &e) == -1 ||
	    cli_audit(cli.db, "user.passwd", id, argv[1], &e) == -1 ||
	    db_commit(cli.db, &e) == -1)
		goto rollback;
	printf("changed the password of %s\n", argv[1]);
	rc = 0;
	goto out;
rollback:
	db_rollback(cli.db);
fail:
	cli_fail("%s", e.msg);
out:
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(hash, sizeof(hash));
	cli_close(&cli);
	return rc;
}

static int
user_del(int argc, char **argv)
{
	struct err e = { 0 };
	struct cli cli;
	char role[16];
	int64_t id;

	if (argc != 2) {
		user_usage();
		return 1;
	}
	if (cli_open(&cli, false, false) == -1)
		return 1;
	if (user_lock(cli.db, argv[1], &id, role, sizeof(role), &e) == -1)
		goto fail;
	if (users_delete(cli.db, id, argv[1], 0, &e) == -1 ||
	    cli_audit(cli.db, "user.delete", id, argv[1], &e) == -1 ||
	    db_commit(cli.db, &e) == -1)
		goto rollback;
	ctl_kick(&cli.cfg);
	printf("deleted user %s%s\n", argv[1],
	    strcmp(role, "admin") == 0 ? " (an admin)" : "");
	cli_close(&cli);
	return 0;
rollback:
	db_rollback(cli.db);
fail:
	cli_fail("%s", e.msg);
	cli_close(&cli);
	return 1;
}

static const char *
col(struct db_stmt *st, int i)
{
	const char *s = db_col_text(st, i);

	return s != NULL ? s : "";
}

static int
user_list(int argc, char **argv)
{
	struct err e = { 0 };
	struct cli cli;
	struct db_stmt *st;
	int r;

	(void)argv;
	if (argc != 1) {
		user_usage();
		return 1;
	}
	if (cli_open(&cli, false, false) == -1)
		return 1;
	if ((st = db_stmt(cli.db, sql[Q_LIST], &e)) == NULL) {
		cli_fail("%s", e.msg);
		cli_close(&cli);
		return 1;
	}
	printf("%-6s %-20s %-32s %-9s %-6s %s\n", "ID", "USERNAME", "EMAIL",
	    "EXTENSION", "ROLE", "STATUS");
	while ((r = db_row(cli.db, st, &e)) == 1)
		printf("%-6" PRId64 " %-20s %-32s %-9s %-6s %s\n",
		    (int64_t)db_col_int(st, 0), col(st, 1), col(st, 2),
		    col(st, 3), col(st, 4), col(st, 5));
	if (r == -1)
		cli_fail("%s", e.msg);
	cli_close(&cli);
	return r == -1 ? 1 : 0;
}

int
cli_user(int argc, char **argv)
{
	if (argc < 2) {
		user_usage();
		return 1;
	}
	if (strcmp(argv[1], "add") == 0)
		return user_add(argc - 1, argv + 1);
	if (strcmp(argv[1], "passwd") == 0)
		return user_passwd(argc - 1, argv + 1);
	if (strcmp(argv[1], "del") == 0)
		return user_del(argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0)
		return user_list(argc - 1, argv + 1);
	cli_fail("unknown user command '%s'", argv[1]);
	user_usage();
	return 1;
}
