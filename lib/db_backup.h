#ifndef LIB_DB_BACKUP_H
#define LIB_DB_BACKUP_H

struct err;

/*
 * Whole-database copies of a SQLite file through SQLite's online backup
 * API, the one engine-specific part of backups (lib/backup.h does the
 * rest). A PostgreSQL database is copied with pg_dump instead; callers ask
 * db_engine() first.
 */

/*
 * Copy the database at src into the file dst, consistent while others
 * write: the copy is made inside one read transaction on src, which in WAL
 * mode blocks no writer. dst is written as dst.tmp (mode 0600), checked
 * (quick_check) and renamed into place, so dst is either absent or whole.
 * *bytes (may be NULL) gets dst's size. On failure nothing is left at dst.
 */
int db_backup_copy(const char *src, const char *dst, long long *bytes,
    struct err *e);

/*
 * Replace the contents of the live database dst with the database in src
 * (checked first), through the backup API: dst's write lock is taken (a
 * writer holding it is waited for up to busy_ms), every page replaced, and
 * other connections, in this or another process, see the restored
 * contents from their next transaction on. On failure dst is unchanged.
 */
int db_backup_restore(const char *src, const char *dst, int busy_ms,
    struct err *e);

/* Whether path holds a SQLite database that passes quick_check. */
int db_backup_check(const char *path, struct err *e);

#endif
