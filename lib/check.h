#ifndef LIB_CHECK_H
#define LIB_CHECK_H

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/db.h"
#include "lib/err.h"

/*
 * The unit tests' one assertion: counts, and on failure prints file, line
 * and the expression, then exits 1. Tests end with
 * printf("<module>: %d checks passed\n", checks).
 */
static int checks __attribute__((unused));

#define CHECK(x)                                                               \
	do {                                                                   \
		checks++;                                                      \
		if (!(x)) {                                                    \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
			    __LINE__, #x);                                     \
			exit(1);                                               \
		}                                                              \
	} while (0)

/*
 * A fresh database with every migration applied: the file name in a new
 * directory under /tmp, whose path goes into dir for check_db_close.
 */
static inline struct db *
check_db_open(char *dir, size_t dirsize, const char *name)
{
	struct err e = { 0 };
	char path[PATH_MAX];
	struct db *db;
	int rc;

	snprintf(dir, dirsize, "/tmp/%s.XXXXXX", program_invocation_short_name);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	db = db_open(path, 1000, &e);
	if (db == NULL)
		fprintf(stderr, "db_open %s: %s\n", path, e.msg);
	CHECK(db != NULL);
	if ((rc = db_migrate(db, NULL, &e)) != 0)
		fprintf(stderr, "db_migrate %s: %s\n", path, e.msg);
	CHECK(rc == 0);
	return db;
}

/* Close db and remove dir with what is in it (the database, -wal, -shm). */
static inline void
check_db_close(struct db *db, const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	db_close(db);
	CHECK((d = opendir(dir)) != NULL);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0) {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path);
		}
	closedir(d);
	CHECK(rmdir(dir) == 0);
}

#endif
