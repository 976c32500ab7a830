/*
 * export: call logs as CSV or JSON, a row at a time into a 64 KiB buffer
 * that goes out through the caller's write function whenever it fills.
 *
 * Times are stored as UTC text. Each is parsed and converted by hand
 * (civil-date arithmetic), and the zone's offset comes from a small cache
 * per UTC hour: localtime_r runs twice for an hour (its first and last
 * second), and the hour's offset is used for every time in it when both
 * agree. An hour holding a DST change (they differ) is converted one
 * time at a time. A million rows cost a few thousand localtime_r calls.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/db.h"
#include "lib/err.h"
#include "lib/export.h"
#include "lib/json.h"
#include "lib/stats.h"

#define OUT_SIZE    (64 * 1024)
#define ZONE_SLOTS  256
#define OFF_VARIES  INT32_MIN
#define LIMIT_NONE  INT64_MAX
#define EXPORT_PAGE 1000
#define ZERO_TIME   "0001-01-01T00:00:00Z"

/* The rows of a filter; ?7 the limit. The extension is either party's.
 * The id range is always two plain bounds (no "?2 = 0 OR"), so each page
 * is a range of the primary key, not a scan down from the newest row.
 * CAST(?N AS text): ?N IS NULL alone fixes no type on PostgreSQL. */
#define WHERE                                                                  \
	" FROM call_logs l LEFT JOIN users cu ON cu.id = l.caller_id "         \
	"LEFT JOIN users ce ON ce.id = l.callee_id "                           \
	"WHERE l.id > ?1 AND l.id <= ?2 "                                      \
	"AND (CAST(?3 AS text) IS NULL OR l.created_at >= ?3) "                \
	"AND (CAST(?4 AS text) IS NULL OR l.created_at < ?4) "                 \
	"AND (CAST(?5 AS text) IS NULL OR l.status = ?5) "                     \
	"AND (CAST(?6 AS text) IS NULL OR cu.extension = ?6 "                  \
	"OR ce.extension = ?6) "

#define CSV_COLS                                                               \
	"SELECT l.id, cu.username, cu.extension, ce.username, ce.extension, "  \
	"l.start_time, l.end_time, l.duration, l.status, l.direction, "        \
	"l.channel"
#define USER_COLS(t)                                                           \
	t ".id, " t ".username, " t ".email, " t ".extension, " t              \
	  ".status, " t ".role, " t ".is_online, " t ".last_login, " t         \
	  ".last_seen, " t ".created_at, " t ".updated_at"
#define JSON_COLS                                                              \
	"SELECT l.id, l.caller_id, l.callee_id, l.start_time, l.end_time, "    \
	"l.duration, l.status, l.channel, l.direction, "                       \
	"l.created_at, " USER_COLS("cu") ", " USER_COLS("ce")

enum q { Q_CSV_NEW, Q_CSV_OLD, Q_JSON_NEW, Q_JSON_OLD, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_CSV_NEW] = CSV_COLS WHERE "ORDER BY l.id DESC LIMIT ?7",
	[Q_CSV_OLD] = CSV_COLS WHERE "ORDER BY l.id LIMIT ?7",
	[Q_JSON_NEW] = JSON_COLS WHERE "ORDER BY l.id DESC LIMIT ?7",
	[Q_JSON_OLD] = JSON_COLS WHERE "ORDER BY l.id LIMIT ?7",
};

/* JSON_COLS: where each party's user columns start. */
enum { J_CALLER = 10, J_CALLEE = 21 };

/* ---- zones */

struct zone {
	bool entered, had_tz;
	char saved[256];
	int64_t hour[ZONE_SLOTS];
	int32_t off[ZONE_SLOTS];
	bool used[ZONE_SLOTS];
};

bool
export_tz_valid(const char *name)
{
	const char *dir = getenv("TZDIR");
	char path[PATH_MAX];
	struct stat sb;
	size_t n;

	if (name == NULL || (n = strlen(name)) == 0 || n > 64 ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789/_+-") != n ||
	    name[0] == '/' || name[0] == '-' || strstr(name, "//") != NULL)
		return false;
	if (dir == NULL || dir[0] == '\0')
		dir = "/usr/share/zoneinfo";
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path))
		return false;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Make tz the zone localtime_r uses (NULL: leave the process's), until
 * zone_leave. -1 when tz is not valid. */
static int
zone_enter(struct zone *z, const char *tz)
{
	const char *cur;

	memset(z, 0, sizeof(*z));
	if (tz == NULL) {
		tzset();
		return 0;
	}
	if (!export_tz_valid(tz))
		return -1;
	if ((cur = getenv("TZ")) != NULL) {
		if (strlen(cur) >= sizeof(z->saved))
			return -1;
		z->had_tz = true;
		snprintf(z->saved, sizeof(z->saved), "%s", cur);
	}
	if (setenv("TZ", tz, 1) == -1)
		return -1;
	/* localtime_r does not look at TZ again by itself. */
	tzset();
	z->entered = true;
	return 0;
}

static void
zone_leave(struct zone *z)
{
	if (!z->entered)
		return;
	if (z->had_tz)
		(void)setenv("TZ", z->saved, 1);
	else
		(void)unsetenv("TZ");
	tzset();
	z->entered = false;
}

static int32_t
gmtoff(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	return (int32_t)tm.tm_gmtoff;
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* The zone's offset from UTC at unix second t. */
static int32_t
zone_off(struct zone *z, int64_t t)
{
	int64_t h = floor_div(t, 3600);
	size_t i = (size_t)h & (ZONE_SLOTS - 1);
	int32_t a, b;

	if (!z->used[i] || z->hour[i] != h) {
		a = gmtoff(h * 3600);
		b = gmtoff(h * 3600 + 3599);
		z->hour[i] = h;
		z->off[i] = a == b ? a : OFF_VARIES;
		z->used[i] = true;
	}
	return z->off[i] != OFF_VARIES ? z->off[i] : gmtoff(t);
}

/* ---- civil dates (proleptic Gregorian, days since 1970-01-01) */

static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int
digits(const char *s, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * A stored time, "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (a space for the T
 * too): unix seconds, and the fraction's digits (frac, nfrac, up to 9).
 * -1 when it is not in that form.
 */
static int
time_parse(const char *s, size_t len, int64_t *t, const char **frac,
    size_t *nfrac)
{
	int y, mo, d, h, mi, sec;
	size_t n = 19, f;

	if (len < 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':' ||
	    (y = digits(s, 4)) < 0 || (mo = digits(s + 5, 2)) < 1 || mo > 12 ||
	    (d = digits(s + 8, 2)) < 1 || d > 31 ||
	    (h = digits(s + 11, 2)) < 0 || h > 23 ||
	    (mi = digits(s + 14, 2)) < 0 || mi > 59 ||
	    (sec = digits(s + 17, 2)) < 0 || sec > 60)
		return -1;
	*frac = NULL;
	*nfrac = 0;
	if (s[n] == '.') {
		for (f = n + 1; f < len && s[f] >= '0' && s[f] <= '9'; f++)
			;
		if (f == n + 1 || f - n - 1 > 9)
			return -1;
		*frac = s + n + 1;
		*nfrac = f - n - 1;
		n = f;
	}
	if (n + 1 != len || s[n] != 'Z')
		return -1;
	*t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	return 0;
}

static char *
put2(char *p, int v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

/*
 * Unix second t (plus the fraction's digits, when given) in the zone as
 * "YYYY-MM-DDTHH:MM:SS[.f]+HH:MM" into p (room for 48 bytes); returns
 * the end.
 */
static char *
time_local(struct zone *z, int64_t t, const char *frac, size_t nfrac, char *p)
{
	int32_t off = zone_off(z, t);
	int64_t local = t + off, days, y, secs;
	int m, d, a;

	days = floor_div(local, 86400);
	secs = local - days * 86400;
	civil_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999) {
		memcpy(p, ZERO_TIME, sizeof(ZERO_TIME) - 1);
		return p + sizeof(ZERO_TIME) - 1;
	}
	p = put2(p, (int)(y / 100));
	p = put2(p, (int)(y % 100));
	*p++ = '-';
	p = put2(p, m);
	*p++ = '-';
	p = put2(p, d);
	*p++ = 'T';
	p = put2(p, (int)(secs / 3600));
	*p++ = ':';
	p = put2(p, (int)(secs / 60 % 60));
	*p++ = ':';
	p = put2(p, (int)(secs % 60));
	if (nfrac > 0) {
		*p++ = '.';
		memcpy(p, frac, nfrac);
		p += nfrac;
	}
	a = off < 0 ? -off : off;
	*p++ = off < 0 ? '-' : '+';
	p = put2(p, a / 3600);
	*p++ = ':';
	p = put2(p, a / 60 % 60);
	return p;
}

int
export_local_day(const char *tz, int64_t t, int64_t *start, int64_t *next)
{
	struct zone z;
	struct tm tm;
	time_t tt = (time_t)t, a, b;

	if (zone_enter(&z, tz) == -1)
		return -1;
	localtime_r(&tt, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	a = mktime(&tm);
	tm.tm_mday++;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	b = mktime(&tm);
	zone_leave(&z);
	if (a == (time_t)-1 || b == (time_t)-1)
		return -1;
	*start = a;
	*next = b;
	return 0;
}

int
export_parse_day(const char *tz, const char *date, int64_t *start,
    int64_t *next)
{
	int y, m, d;
	int64_t noon;

	if (date == NULL || strlen(date) != 10 || date[4] != '-' ||
	    date[7] != '-' || (y = digits(date, 4)) < 1 ||
	    (m = digits(date + 5, 2)) < 1 || m > 12 ||
	    (d = digits(date + 8, 2)) < 1 || d > 31)
		return -1;
	/* 2026-02-31 is not a day: it must come back as itself. */
	noon = days_from_civil(y, m, d);
	{
		int64_t yy;
		int mm, dd;

		civil_from_days(noon, &yy, &mm, &dd);
		if (yy != y || mm != m || dd != d)
			return -1;
	}
	/* Noon UTC of the date is inside the local day for every zone
	 * within +-12 h; zones beyond that are a day off at worst, so go
	 * from the local noon of that date instead. */
	noon = noon * 86400 + 12 * 3600;
	{
		struct zone z;
		int32_t off;

		if (zone_enter(&z, tz) == -1)
			return -1;
		off = gmtoff(noon);
		zone_leave(&z);
		noon -= off;
	}
	return export_local_day(tz, noon, start, next);
}

int
export_parse_bound(const char *tz, const char *s, bool end, char *buf,
    size_t size)
{
	int64_t start, next, t, us = 0;
	const char *frac;
	size_t len, nfrac, i;
	int oh, om, sign;

	if (s == NULL)
		return -1;
	len = strlen(s);
	if (len == 10) {
		if (export_parse_day(tz, s, &start, &next) == -1)
			return -1;
		db_time_format((end ? next : start) * 1000000, buf,
		    (unsigned)size);
		return 0;
	}
	if (time_parse(s, len, &t, &frac, &nfrac) == -1) {
		/* An offset instead of Z: "...SS[.f]+HH:MM". */
		char copy[64];

		if (len < 25 || len >= sizeof(copy) ||
		    (s[len - 6] != '+' && s[len - 6] != '-') ||
		    s[len - 3] != ':' || (oh = digits(s + len - 5, 2)) < 0 ||
		    oh > 23 || (om = digits(s + len - 2, 2)) < 0 || om > 59)
			return -1;
		sign = s[len - 6] == '-' ? -1 : 1;
		memcpy(copy, s, len - 6);
		copy[len - 6] = 'Z';
		copy[len - 5] = '\0';
		if (time_parse(copy, len - 5, &t, &frac, &nfrac) == -1)
			return -1;
		t -= sign * (oh * 3600 + om * 60);
		frac = frac != NULL ? s + (frac - copy) : NULL;
	}
	for (i = 0; i < 6; i++)
		us = us * 10 + (i < nfrac ? frac[i] - '0' : 0);
	db_time_format(t * 1000000 + us, buf, (unsigned)size);
	return 0;
}

/* ---- output */

struct out {
	export_write_fn w;
	void *arg;
	bool failed;
	size_t n;
	char buf[OUT_SIZE];
};

static void
out_flush(struct out *o)
{
	if (o->n > 0 && !o->failed && o->w(o->arg, o->buf, o->n) == -1)
		o->failed = true;
	o->n = 0;
}

/* Room for need bytes (need <= 256) at the end of the buffer. */
static char *
out_room(struct out *o, size_t need)
{
	if (o->n + need > sizeof(o->buf))
		out_flush(o);
	return o->buf + o->n;
}

static void
out_put(struct out *o, const char *s, size_t len)
{
	size_t k;

	while (len > 0) {
		if (o->n == sizeof(o->buf))
			out_flush(o);
		k = sizeof(o->buf) - o->n;
		if (k > len)
			k = len;
		memcpy(o->buf + o->n, s, k);
		o->n += k;
		s += k;
		len -= k;
	}
}

#define out_lit(o, s) out_put((o), (s), sizeof(s) - 1)

static void
out_int(struct out *o, int64_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	out_put(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* RFC 4180: a field holding a comma, quote or line break is quoted and
 * its quotes doubled. A field a spreadsheet would take for a formula (it
 * starts with = + - @, a tab or a carriage return) gets a leading ' inside
 * the quotes, as OWASP recommends, so it stays text. */
static void
csv_text(struct out *o, const char *s, size_t len)
{
	bool formula, quote;
	const char *q;

	if (s == NULL || len == 0)
		return;
	formula = strchr("=+-@\t\r", s[0]) != NULL;
	quote = formula;
	for (q = s; !quote && q < s + len; q++)
		quote = *q == ',' || *q == '"' || *q == '\n' || *q == '\r';
	if (!quote) {
		out_put(o, s, len);
		return;
	}
	out_lit(o, "\"");
	if (formula)
		out_lit(o, "'");
	while (len > 0 && (q = memchr(s, '"', len)) != NULL) {
		out_put(o, s, (size_t)(q - s) + 1);
		out_lit(o, "\"");
		len -= (size_t)(q - s) + 1;
		s = q + 1;
	}
	out_put(o, s, len);
	out_lit(o, "\"");
}

/* A stored time in the zone, to the second, as a CSV field; a text not
 * in the stored form is written as it is. */
static void
csv_time(struct out *o, struct zone *z, const char *s, size_t len)
{
	const char *frac;
	size_t nfrac;
	int64_t t;
	char *p;

	if (s == NULL)
		return;
	if (time_parse(s, len, &t, &frac, &nfrac) == -1) {
		csv_text(o, s, len);
		return;
	}
	p = out_room(o, 64);
	p = time_local(z, t, NULL, 0, p);
	o->n = (size_t)(p - o->buf);
}

/* A JSON string: quotes, backslashes and controls escaped, a byte that
 * is not well-formed UTF-8 replaced by U+FFFD. NULL is "" unless null. */
static void
json_text(struct out *o, const char *s, size_t len, bool null)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s, *end = u + len;
	const unsigned char *run;
	char esc[8];
	size_t k;

	if (s == NULL) {
		if (null)
			out_lit(o, "null");
		else
			out_lit(o, "\"\"");
		return;
	}
	out_lit(o, "\"");
	while (u < end) {
		run = u;
		while (u < end && *u >= 0x20 && *u < 0x80 && *u != '"' &&
		       *u != '\\')
			u++;
		out_put(o, (const char *)run, (size_t)(u - run));
		if (u == end)
			break;
		if (*u >= 0x80) {
			if ((k = jh_utf8_seq(u, (size_t)(end - u))) == 0) {
				out_lit(o, "\\ufffd");
				u++;
			} else {
				out_put(o, (const char *)u, k);
				u += k;
			}
			continue;
		}
		esc[0] = '\\';
		switch (*u) {
		case '"':
		case '\\':
			esc[1] = (char)*u;
			k = 2;
			break;
		case '\n':
			esc[1] = 'n';
			k = 2;
			break;
		case '\r':
			esc[1] = 'r';
			k = 2;
			break;
		case '\t':
			esc[1] = 't';
			k = 2;
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[*u >> 4];
			esc[5] = hex[*u & 15];
			k = 6;
			break;
		}
		out_put(o, esc, k);
		u++;
	}
	out_lit(o, "\"");
}

/* ---- rows */

struct run {
	struct db *db;
	struct db_stmt *st;
	struct out *o;
	struct zone z;
	bool bare;
	char fresh[40]; /* last_seen from here on: online */
};

static const char *
col(struct run *r, int i, size_t *len)
{
	const char *s = db_col_text(r->st, i);

	*len = s != NULL ? db_col_len(r->st, i) : 0;
	return s;
}

static void
csv_col(struct run *r, int i)
{
	size_t len;
	const char *s = col(r, i, &len);

	csv_text(r->o, s, len);
}

static void
csv_row(struct run *r)
{
	struct out *o = r->o;
	size_t len;
	const char *s;
	int i;

	out_int(o, db_col_int(r->st, 0));
	for (i = 1; i <= 4; i++) {
		out_lit(o, ",");
		csv_col(r, i);
	}
	for (i = 5; i <= 6; i++) {
		out_lit(o, ",");
		s = col(r, i, &len);
		csv_time(o, &r->z, s, len);
	}
	out_lit(o, ",");
	if (!db_col_null(r->st, 7))
		out_int(o, db_col_int(r->st, 7));
	for (i = 8; i <= 10; i++) {
		out_lit(o, ",");
		csv_col(r, i);
	}
	out_lit(o, "\r\n");
}

static void
json_key(struct out *o, const char *key)
{
	out_put(o, key, strlen(key));
}

static void
json_col(struct run *r, const char *key, int i, bool null)
{
	size_t len;
	const char *s = col(r, i, &len);

	json_key(r->o, key);
	json_text(r->o, s, len, null);
}

static void
json_time(struct run *r, const char *key, int i)
{
	size_t len, nfrac;
	const char *s = col(r, i, &len), *frac;
	int64_t t;
	char *p;

	json_key(r->o, key);
	if (s == NULL) {
		out_lit(r->o, "null");
		return;
	}
	if (r->bare || time_parse(s, len, &t, &frac, &nfrac) == -1) {
		json_text(r->o, s, len, true);
		return;
	}
	p = out_room(r->o, 64);
	*p++ = '"';
	p = time_local(&r->z, t, frac, nfrac, p);
	*p++ = '"';
	r->o->n = (size_t)(p - r->o->buf);
}

/* The nested User (contract §1.5, plus online) of the party whose user
 * columns start at c; the zero User with status "deleted" when the user
 * is gone, as the call history renders it. */
static void
json_user(struct run *r, int c)
{
	struct out *o = r->o;
	bool is_online;
	size_t len;
	const char *seen;

	if (db_col_null(r->st, c)) {
		out_lit(o, "{\"id\":0,\"username\":\"\",\"email\":\"\","
			   "\"extension\":\"\",\"status\":\"deleted\","
			   "\"role\":\"\",\"is_online\":false,"
			   "\"last_login\":null,\"last_seen\":null,"
			   "\"created_at\":\"" ZERO_TIME "\","
			   "\"updated_at\":\"" ZERO_TIME "\","
			   "\"online\":false}");
		return;
	}
	out_lit(o, "{\"id\":");
	out_int(o, db_col_int(r->st, c));
	json_col(r, ",\"username\":", c + 1, false);
	json_col(r, ",\"email\":", c + 2, false);
	json_col(r, ",\"extension\":", c + 3, false);
	json_col(r, ",\"status\":", c + 4, false);
	json_col(r, ",\"role\":", c + 5, false);
	is_online = db_col_bool(r->st, c + 6);
	if (is_online)
		out_lit(o, ",\"is_online\":true");
	else
		out_lit(o, ",\"is_online\":false");
	json_time(r, ",\"last_login\":", c + 7);
	json_time(r, ",\"last_seen\":", c + 8);
	json_time(r, ",\"created_at\":", c + 9);
	json_time(r, ",\"updated_at\":", c + 10);
	seen = col(r, c + 8, &len);
	if (stats_online(is_online, seen, r->fresh))
		out_lit(o, ",\"online\":true}");
	else
		out_lit(o, ",\"online\":false}");
}

static void
json_row(struct run *r, bool first)
{
	struct out *o = r->o;

	if (first)
		out_lit(o, "{\"id\":");
	else
		out_lit(o, ",{\"id\":");
	out_int(o, db_col_int(r->st, 0));
	out_lit(o, ",\"caller_id\":");
	out_int(o, db_col_int(r->st, 1));
	out_lit(o, ",\"callee_id\":");
	out_int(o, db_col_int(r->st, 2));
	out_lit(o, ",\"caller\":");
	json_user(r, J_CALLER);
	out_lit(o, ",\"callee\":");
	json_user(r, J_CALLEE);
	json_time(r, ",\"start_time\":", 3);
	json_time(r, ",\"end_time\":", 4);
	out_lit(o, ",\"duration\":");
	out_int(o, db_col_int(r->st, 5));
	json_col(r, ",\"status\":", 6, false);
	json_col(r, ",\"channel\":", 7, false);
	json_col(r, ",\"direction\":", 8, false);
	json_time(r, ",\"created_at\":", 9);
	out_lit(o, "}");
}

static void
bind_opt(struct db_stmt *st, int i, const char *s)
{
	if (s != NULL)
		db_bind_text(st, i, s);
	else
		db_bind_null(st, i);
}

int
export_call_logs(struct db *db, enum export_format fmt,
    const struct export_filter *f, const char *tz, export_write_fn w, void *arg,
    struct export_result *res, struct err *e)
{
	struct export_result none;
	struct run *r;
	char now[48], *p;
	int64_t now_s;
	int64_t after, upto, left, want, got, id;
	enum q q;
	int rc = -1, row = 0;

	if (res == NULL)
		res = &none;
	res->rows = 0;
	res->last_id = 0;
	/* The buffer is 64 KiB: on the heap, not a FastCGI worker's stack. */
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->o = malloc(sizeof(*r->o))) == NULL) {
		free(r);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	r->o->w = w;
	r->o->arg = arg;
	r->o->failed = false;
	r->o->n = 0;
	r->db = db;
	r->bare = f->bare;
	if (zone_enter(&r->z, tz) == -1) {
		err_set_field(e, ERR_INVALID, "tz", "Invalid time zone");
		goto out;
	}
	now_s = db_now_us() / 1000000;
	stats_fresh_since(now_s, r->fresh, sizeof(r->fresh));
	if (fmt == EXPORT_CSV)
		q = f->oldest_first ? Q_CSV_OLD : Q_CSV_NEW;
	else
		q = f->oldest_first ? Q_JSON_OLD : Q_JSON_NEW;
	if (fmt == EXPORT_CSV)
		out_lit(r->o, EXPORT_CSV_HEADER "\r\n");
	else if (!f->bare)
		out_lit(r->o, "{\"call_logs\":[");
	else
		out_lit(r->o, "[");
	/*
	 * In pages of EXPORT_PAGE rows by id: PostgreSQL hands a statement's
	 * whole result to the client at once, so one statement over the
	 * table would hold it all in the worker's memory.
	 */
	after = f->after_id;
	upto = f->upto_id != 0 ? f->upto_id : INT64_MAX;
	left = f->limit > 0 ? f->limit : LIMIT_NONE;
	while (left > 0) {
		want = left < EXPORT_PAGE ? left : EXPORT_PAGE;
		got = 0;
		if ((r->st = db_stmt(db, sql[q], e)) == NULL)
			goto out;
		db_bind_int(r->st, 1, after);
		db_bind_int(r->st, 2, upto);
		bind_opt(r->st, 3, f->since);
		bind_opt(r->st, 4, f->until);
		bind_opt(r->st, 5, f->status);
		bind_opt(r->st, 6, f->extension);
		db_bind_int(r->st, 7, want);
		while (!r->o->failed && (row = db_row(db, r->st, e)) == 1) {
			if (fmt == EXPORT_CSV)
				csv_row(r);
			else
				json_row(r, res->rows == 0);
			id = db_col_int(r->st, 0);
			if (id > res->last_id)
				res->last_id = id;
			/* The next page starts past this row. */
			if (f->oldest_first)
				after = id;
			else
				upto = id - 1;
			res->rows++;
			got++;
		}
		if (r->o->failed) {
			db_reset(r->st);
			err_set(e, ERR_INTERNAL, "writing the export failed");
			goto out;
		}
		if (row == -1)
			goto out;
		left -= got;
		if (got < want || (!f->oldest_first && upto <= after))
			break;
	}
	if (fmt == EXPORT_JSON && !f->bare) {
		out_lit(r->o, "],\"exported_at\":\"");
		p = time_local(&r->z, now_s, NULL, 0, now);
		out_put(r->o, now, (size_t)(p - now));
		out_lit(r->o, "\",\"success\":true}");
	} else if (fmt == EXPORT_JSON)
		out_lit(r->o, "]");
	out_flush(r->o);
	if (r->o->failed) {
		err_set(e, ERR_INTERNAL, "writing the export failed");
		goto out;
	}
	rc = 0;
out:
	zone_leave(&r->z);
	free(r->o);
	free(r);
	return rc;
}
