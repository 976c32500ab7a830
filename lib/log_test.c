#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lib/check.h"
#include "lib/json.h"
#include "lib/log.h"

static char path[64];
static int saved_stderr = -1;

/* Send stderr to a fresh file until capture_end. */
static void
capture_begin(void)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	CHECK(fd != -1);
	saved_stderr = dup(STDERR_FILENO);
	CHECK(saved_stderr != -1);
	CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	close(fd);
}

/* Restore stderr; the captured bytes, NUL-terminated, to be freed. */
static char *
capture_end(size_t *lenp)
{
	struct stat sb;
	char *buf;
	FILE *f;

	CHECK(dup2(saved_stderr, STDERR_FILENO) == STDERR_FILENO);
	close(saved_stderr);
	CHECK(stat(path, &sb) == 0);
	buf = malloc((size_t)sb.st_size + 1);
	CHECK(buf != NULL);
	f = fopen(path, "r");
	CHECK(f != NULL);
	CHECK(fread(buf, 1, (size_t)sb.st_size, f) == (size_t)sb.st_size);
	fclose(f);
	buf[sb.st_size] = '\0';
	if (lenp != NULL)
		*lenp = (size_t)sb.st_size;
	return buf;
}

/* Split buf into lines in place; every line must end with '\n'. */
static int
split_lines(char *buf, char **lines, int max)
{
	int n = 0;
	char *p = buf, *nl;

	while (*p != '\0') {
		nl = strchr(p, '\n');
		CHECK(nl != NULL);
		CHECK(n < max);
		*nl = '\0';
		lines[n++] = p;
		p = nl + 1;
	}
	return n;
}

/* The line as an object whose keys are exactly keys[], in that order. */
static struct json_object *
parse_line(const char *line, const char *const *keys)
{
	struct json_object *o;
	size_t i = 0;

	o = jh_parse(line, strlen(line), NULL);
	CHECK(o != NULL);
	CHECK(json_object_is_type(o, json_type_object));
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		CHECK(keys[i] != NULL);
		CHECK(strcmp(k, keys[i]) == 0);
		i++;
	}
	CHECK(keys[i] == NULL);
	return o;
}

static void
check_time(struct json_object *o)
{
	const char *t = jh_get_str(o, "time");
	int y, mo, d, h, mi, s, ms;
	char c1, c2;

	CHECK(t != NULL);
	CHECK(strlen(t) == 24);
	CHECK(sscanf(t, "%4d-%2d-%2d%c%2d:%2d:%2d.%3d%c", &y, &mo, &d, &c1, &h,
		  &mi, &s, &ms, &c2) == 9);
	CHECK(c1 == 'T' && c2 == 'Z');
	CHECK(y >= 2024 && mo >= 1 && mo <= 12);
}

static const char *const msg_keys[] = { "time", "level", "program", "msg",
	NULL };
static const char *const req_keys[] = { "time", "level", "program",
	"request_id", "method", "route", "status", "duration_ms", NULL };
static const char *const req_err_keys[] = { "time", "level", "program",
	"request_id", "method", "route", "status", "duration_ms", "error",
	NULL };

static void
test_lines(void)
{
	struct json_object *o, *v;
	char *buf, *lines[16], big[6000];
	int n;

	capture_begin();
	log_init("logtest", false);
	log_msg(LOG_DEBUG, "hidden %d", 1);
	log_msg(LOG_INFO, "hello %s", "w\xc3\xb6rld \"q\" \\ / \n\t\x01 end");
	log_msg(LOG_WARN, "bad bytes \xff\xc3 here");
	log_msg(LOG_ERROR, "%s", "");
	log_request("r-1", "GET", "/protected/users/:id", 200, 1.23456, NULL);
	log_request("r-2", "POST", "/api/login", 503, 12.0, "database busy");
	log_request(NULL, NULL, NULL, 404, -1.0, "");
	log_init("logtest2", true);
	log_msg(LOG_DEBUG, "shown %d", 2);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_msg(LOG_INFO, "%s", big);
	errno = ENOENT;
	log_msg(LOG_INFO, "errno kept: %m");
	CHECK(errno == ENOENT);
	buf = capture_end(NULL);

	n = split_lines(buf, lines, 16);
	CHECK(n == 9);

	o = parse_line(lines[0], msg_keys);
	check_time(o);
	CHECK(strcmp(jh_get_str(o, "level"), "info") == 0);
	CHECK(strcmp(jh_get_str(o, "program"), "logtest") == 0);
	CHECK(strcmp(jh_get_str(o, "msg"),
		  "hello w\xc3\xb6rld \"q\" \\ / \n\t\x01 end") == 0);
	CHECK(strstr(lines[0], "\\n\\t\\u0001") != NULL);
	CHECK(strstr(lines[0], " / ") != NULL); /* no slash escaping */
	json_object_put(o);

	o = parse_line(lines[1], msg_keys);
	CHECK(strcmp(jh_get_str(o, "level"), "warn") == 0);
	CHECK(strcmp(jh_get_str(o, "msg"),
		  "bad bytes \xef\xbf\xbd\xef\xbf\xbd here") == 0);
	json_object_put(o);

	o = parse_line(lines[2], msg_keys);
	CHECK(strcmp(jh_get_str(o, "level"), "error") == 0);
	CHECK(strcmp(jh_get_str(o, "msg"), "") == 0);
	json_object_put(o);

	o = parse_line(lines[3], req_keys);
	check_time(o);
	CHECK(strcmp(jh_get_str(o, "level"), "info") == 0);
	CHECK(strcmp(jh_get_str(o, "request_id"), "r-1") == 0);
	CHECK(strcmp(jh_get_str(o, "method"), "GET") == 0);
	CHECK(strcmp(jh_get_str(o, "route"), "/protected/users/:id") == 0);
	CHECK(json_object_object_get_ex(o, "status", &v));
	CHECK(json_object_is_type(v, json_type_int));
	CHECK(json_object_get_int(v) == 200);
	CHECK(json_object_object_get_ex(o, "duration_ms", &v));
	CHECK(json_object_is_type(v, json_type_double));
	CHECK(json_object_get_double(v) > 1.234 &&
	      json_object_get_double(v) < 1.236);
	CHECK(strstr(lines[3], "\"duration_ms\":1.235") != NULL);
	json_object_put(o);

	o = parse_line(lines[4], req_err_keys);
	CHECK(strcmp(jh_get_str(o, "level"), "error") == 0); /* a 5xx */
	CHECK(strcmp(jh_get_str(o, "error"), "database busy") == 0);
	CHECK(strstr(lines[4], "\"status\":503") != NULL);
	json_object_put(o);

	o = parse_line(lines[5], req_err_keys);
	CHECK(strcmp(jh_get_str(o, "level"), "info") == 0);
	CHECK(strcmp(jh_get_str(o, "request_id"), "") == 0);
	CHECK(strcmp(jh_get_str(o, "error"), "") == 0);
	CHECK(strstr(lines[5], "\"duration_ms\":0.000") != NULL);
	json_object_put(o);

	o = parse_line(lines[6], msg_keys);
	CHECK(strcmp(jh_get_str(o, "level"), "debug") == 0);
	CHECK(strcmp(jh_get_str(o, "program"), "logtest2") == 0);
	CHECK(strcmp(jh_get_str(o, "msg"), "shown 2") == 0);
	json_object_put(o);

	/* long messages are cut, the line stays whole */
	o = parse_line(lines[7], msg_keys);
	CHECK(strlen(jh_get_str(o, "msg")) == 4095);
	json_object_put(o);

	o = parse_line(lines[8], msg_keys);
	CHECK(strcmp(jh_get_str(o, "msg"),
		  "errno kept: No such file or directory") == 0);
	json_object_put(o);
	free(buf);
}

/* Workers sharing stderr: every line arrives whole. */
static void
test_concurrent(void)
{
	enum { KIDS = 4, LINES = 250 };
	char *buf, **lines, msg[3000];
	struct json_object *o;
	int i, k, n, status, seen[KIDS];
	pid_t pid[KIDS];
	size_t len;

	capture_begin();
	log_init("worker", false);
	for (k = 0; k < KIDS; k++) {
		CHECK((pid[k] = fork()) != -1);
		if (pid[k] == 0) {
			memset(msg, 'a' + k, sizeof(msg) - 1);
			msg[sizeof(msg) - 1] = '\0';
			for (i = 0; i < LINES; i++)
				log_msg(LOG_INFO, "%d %s", k, msg);
			_exit(0);
		}
	}
	for (k = 0; k < KIDS; k++) {
		CHECK(waitpid(pid[k], &status, 0) == pid[k]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	buf = capture_end(&len);
	lines = calloc(KIDS * LINES + 1, sizeof(*lines));
	CHECK(lines != NULL);
	n = split_lines(buf, lines, KIDS * LINES);
	CHECK(n == KIDS * LINES);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < n; i++) {
		const char *m;

		o = parse_line(lines[i], msg_keys);
		m = jh_get_str(o, "msg");
		k = m[0] - '0';
		CHECK(k >= 0 && k < KIDS);
		CHECK(strlen(m) == 2 + sizeof(msg) - 1);
		CHECK(m[2] == 'a' + k && m[strlen(m) - 1] == 'a' + k);
		seen[k]++;
		json_object_put(o);
	}
	for (k = 0; k < KIDS; k++)
		CHECK(seen[k] == LINES);
	free(lines);
	free(buf);
}

int
main(void)
{
	char dir[] = "/tmp/log_test.XXXXXX";

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/stderr", dir);
	test_lines();
	test_concurrent();
	unlink(path);
	CHECK(rmdir(dir) == 0);
	printf("log: %d checks passed\n", checks);
	return 0;
}
