#ifndef LIB_EXPORT_H
#define LIB_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct err;

/*
 * Call-log exports, CSV (RFC 4180) or JSON, written row by row through a
 * caller's write function: the REST export streams them to the client and
 * the command-line tool to a file, with the same code, and memory does not
 * grow with the table. Times are ISO 8601 with the offset of a time zone
 * (an IANA name, or the process's TZ when none is given).
 */

enum export_format {
	EXPORT_CSV,
	EXPORT_JSON,
};

/* The contract's CSV header line (without its CRLF). */
#define EXPORT_CSV_HEADER                                                      \
	"ID,Caller,Caller Extension,Callee,Callee Extension,Start Time,"       \
	"End Time,Duration,Status,Direction,Channel"

/* Which rows. Times are in the db_now form (UTC); NULL or 0: no bound. */
struct export_filter {
	const char *since;     /* created_at >= since */
	const char *until;     /* created_at < until */
	const char *status;    /* status = */
	const char *extension; /* the caller's or the callee's extension */
	int64_t after_id;      /* id > after_id (a watermark) */
	int64_t upto_id;       /* id <= upto_id */
	int64_t limit;         /* at most this many rows */
	bool oldest_first;     /* id order; else newest first, as upstream */
	bool bare;             /* JSON: the array alone, times as stored */
};

/* Write len bytes; 0, or -1 when the output failed (the export stops). */
typedef int (*export_write_fn)(void *arg, const char *buf, size_t len);

struct export_result {
	int64_t rows;    /* rows written */
	int64_t last_id; /* the highest id among them (0 for none) */
};

/*
 * Write the call logs that f selects: CSV with the contract's header and
 * columns, or JSON {"call_logs":[CallLog],"exported_at":T,"success":true}
 * (f->bare: the array only). tz is an IANA zone name (export_tz_valid) or
 * NULL for the process's own. Output goes through w in pieces of up to
 * 64 KiB. Runs in the caller's transaction if any (a read snapshot keeps
 * the rows consistent). -1 with e set when the database or w failed; what
 * w got until then stays written.
 */
int export_call_logs(struct db *db, enum export_format fmt,
    const struct export_filter *f, const char *tz, export_write_fn w, void *arg,
    struct export_result *res, struct err *e);

/*
 * Whether name is an IANA zone this machine knows ("Europe/Berlin",
 * "UTC"): a file under TZDIR (default /usr/share/zoneinfo), named in the
 * zone name characters only. glibc takes any unknown name for UTC, so
 * this is checked before any use.
 */
bool export_tz_valid(const char *name);

/*
 * Unix seconds of local midnight starting the day that holds t in zone tz
 * (NULL: the process's), and of the next one; the day a DST change makes
 * 23 or 25 hours long is that long here too. -1 when tz is not valid.
 */
int export_local_day(const char *tz, int64_t t, int64_t *start, int64_t *next);

/*
 * "YYYY-MM-DD" as a local day in zone tz (NULL: the process's): the unix
 * seconds of its first instant into *start and of the next day's into
 * *next. -1 when the date or the zone is not valid.
 */
int export_parse_day(const char *tz, const char *date, int64_t *start,
    int64_t *next);

/*
 * A time as a filter takes it, into buf in the db_now form: "YYYY-MM-DD"
 * (local midnight in tz; with end, the next day's midnight, so the day is
 * included), or RFC 3339 with "Z" or an offset. -1 when it is neither.
 */
int export_parse_bound(const char *tz, const char *s, bool end, char *buf,
    size_t size);

#endif
