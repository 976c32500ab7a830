#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"

struct db;
struct err;
struct users_new;

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* What a command works on: the configuration and the migrated database. */
struct cli {
	struct config cfg;
	struct db *db;
	char db_label[1100]; /* the database in messages (no password) */
};

/* Print "switchboard: <message>" on stderr. */
void cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Load the configuration and open the database (creating the directories
 * of DB_PATH and RUN_DIR when create_dirs). A database that is not fully
 * migrated is refused unless allow_old. Prints why and returns -1.
 */
int cli_open(struct cli *cli, bool create_dirs, bool allow_old);
void cli_close(struct cli *cli);

/* `switchboard init` and `switchboard user ...`; argv[0] is the command.
 * Exit codes. */
int cli_init(int argc, char **argv);
int cli_user(int argc, char **argv);

/* `switchboard cdr export ...` and `switchboard backup ...` (cli_admin.c). */
int cli_cdr(int argc, char **argv);
int cli_backup(int argc, char **argv);

/*
 * Read one line from stdin into buf (NUL-terminated, no newline): with a
 * terminal, prompt on stderr and turn echo off while reading. ERR_INVALID
 * when there is no line or it does not fit. The caller wipes buf.
 */
int cli_password_read(const char *prompt, char *buf, size_t size,
    struct err *e);

/*
 * Inside the caller's transaction: users_insert (lib/users.h), then the
 * audit_log row (actor NULL). ERR_CONFLICT names the taken field and value.
 */
int cli_user_insert(struct db *db, const struct users_new *u, int64_t *id,
    struct err *e);

#endif
