#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lib/json.h"
#include "lib/log.h"

#define LOG_MSG_MAX 4096

static char log_program[64];
static bool log_debug;

static const char *const level_names[] = {
	[LOG_DEBUG] = "debug",
	[LOG_INFO] = "info",
	[LOG_WARN] = "warn",
	[LOG_ERROR] = "error",
};

void
log_init(const char *program, bool debug)
{
	snprintf(log_program, sizeof(log_program), "%s",
	    program != NULL ? program : "");
	log_debug = debug;
}

static const char *
log_program_name(void)
{
	if (log_program[0] != '\0')
		return log_program;
	return program_invocation_short_name;
}

/*
 * A JSON string member from arbitrary bytes: json-c escapes quotes and
 * control characters but copies invalid UTF-8 through, which would make the
 * line unparsable for log readers, so such bytes become U+FFFD.
 */
static void
add_text(struct json_object *o, const char *key, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i, k, j = 0;
	char *clean;

	for (i = 0; i < n; i += k)
		if ((k = jh_utf8_seq(p + i, n - i)) == 0)
			break;
	if (i == n) {
		json_object_object_add(o, key, json_object_new_string(s));
		return;
	}
	if ((clean = malloc(n * 3 + 1)) == NULL) {
		json_object_object_add(o, key,
		    json_object_new_string("(unloggable text)"));
		return;
	}
	for (i = 0; i < n; i += k) {
		if ((k = jh_utf8_seq(p + i, n - i)) == 0) {
			memcpy(clean + j, "\xef\xbf\xbd", 3);
			j += 3;
			k = 1;
		} else {
			memcpy(clean + j, p + i, k);
			j += k;
		}
	}
	clean[j] = '\0';
	json_object_object_add(o, key, json_object_new_string(clean));
	free(clean);
}

static struct json_object *
log_begin(enum log_level level)
{
	struct json_object *o;
	struct timespec ts;
	struct tm tm;
	char buf[64], stamp[40];

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, sizeof(buf), "%s.%03ldZ", stamp, ts.tv_nsec / 1000000);
	json_object_object_add(o, "time", json_object_new_string(buf));
	json_object_object_add(o, "level",
	    json_object_new_string(level_names[level]));
	add_text(o, "program", log_program_name());
	return o;
}

/*
 * One write(2) per line: stderr is shared by the FastCGI workers of a
 * program, and a single write to a pipe or an O_APPEND file is not split.
 */
static void
log_end(struct json_object *o)
{
	const char *text;
	size_t len, off;
	ssize_t n;
	char *line;

	text = json_object_to_json_string_length(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (text == NULL || (line = malloc(len + 1)) == NULL) {
		json_object_put(o);
		return;
	}
	memcpy(line, text, len);
	line[len++] = '\n';
	json_object_put(o);
	for (off = 0; off < len; off += (size_t)n) {
		n = write(STDERR_FILENO, line + off, len - off);
		if (n == -1 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n <= 0)
			break;
	}
	free(line);
}

static bool
log_wanted(enum log_level level)
{
	if ((int)level < LOG_DEBUG || level > LOG_ERROR)
		return false;
	return level != LOG_DEBUG || log_debug;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	struct json_object *o;
	char msg[LOG_MSG_MAX];
	va_list ap;
	int saved = errno; /* callers may format %m */

	if (!log_wanted(level))
		return;
	errno = saved;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if ((o = log_begin(level)) == NULL)
		goto out;
	add_text(o, "msg", msg);
	log_end(o);
out:
	errno = saved;
}

void
log_request(const char *request_id, const char *method, const char *route,
    int status, double duration_ms, const char *err_msg)
{
	struct json_object *o;
	enum log_level level;
	char dur[32];
	int saved = errno;

	level = status >= 500 ? LOG_ERROR : LOG_INFO;
	if ((o = log_begin(level)) == NULL)
		goto out;
	add_text(o, "request_id", request_id != NULL ? request_id : "");
	add_text(o, "method", method != NULL ? method : "");
	add_text(o, "route", route != NULL ? route : "");
	json_object_object_add(o, "status", json_object_new_int(status));
	/* Three decimals: json-c would otherwise print up to 17 digits. */
	if (!isfinite(duration_ms) || duration_ms < 0)
		duration_ms = 0;
	snprintf(dur, sizeof(dur), "%.3f", duration_ms);
	json_object_object_add(o, "duration_ms",
	    json_object_new_double_s(duration_ms, dur));
	if (err_msg != NULL)
		add_text(o, "error", err_msg);
	log_end(o);
out:
	errno = saved;
}
