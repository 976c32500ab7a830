#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lib/auth.h"
#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"

/*
 * The real code in real processes: each CGI case forks a server with a
 * synthetic CGI environment and pipes for stdin/stdout; the FastCGI cases
 * start a server on a listening Unix socket as fd 0 (as spawn-fcgi does)
 * and talk to it with a minimal FastCGI client. Every server process must
 * exit 0, so a sanitizer report or a leak in it fails the test.
 */

static int checks;
static char tmpdir[] = "/tmp/http_test.XXXXXX";
static char dbpath[96], logpath[96], sockpath[96];
static struct config cfg;
static char *tok_user, *tok_admin, *tok_gone;
static int64_t user_id, admin_id;

static void dump_log(void);

#define CHECK(c)                                                               \
	do {                                                                   \
		checks++;                                                      \
		if (!(c)) {                                                    \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
			    __LINE__, #c);                                     \
			dump_log();                                            \
			exit(1);                                               \
		}                                                              \
	} while (0)

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

#define ORIGIN_OK  "http://allowed.example"
#define ORIGIN_BAD "http://evil.example"

/* ---- the server side: handlers and routes ---- */

static int
h_echo(struct http_req *req, struct err *e)
{
	struct json_object *o, *body;
	char origin[300], client[64];

	if ((o = json_object_new_object()) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	jh_add_str(o, "a", http_param(req, "a"));
	jh_add_str(o, "b", http_param(req, "b"));
	jh_add_str(o, "missing", http_param(req, "zzz"));
	jh_add_str(o, "q", http_query(req, "q"));
	jh_add_str(o, "x", http_query(req, "x"));
	jh_add_str(o, "empty", http_query(req, "empty"));
	jh_add_str(o, "bare", http_query(req, "bare"));
	jh_add_str(o, "bad", http_query(req, "bad"));
	jh_add_str(o, "nul", http_query(req, "nul"));
	jh_add_str(o, "sp ace", http_query(req, "sp ace"));
	jh_add_str(o, "hdr", http_header(req, "X-Call-Method"));
	jh_add_str(o, "ctype", http_header(req, "content-type"));
	jh_add_str(o, "addr", http_remote_addr(req));
	http_origin(req, origin, sizeof(origin));
	jh_add_str(o, "origin", origin);
	http_client_addr(req, client, sizeof(client));
	jh_add_str(o, "client", client);
	jh_add_str(o, "path", http_path(req));
	jh_add_int(o, "method", http_method(req));
	jh_add_bool(o, "user", http_user(req) != NULL);
	if (http_method(req) == HTTP_POST) {
		if ((body = http_body_json(req, e)) == NULL) {
			json_object_put(o);
			return -1;
		}
		/* Parsed once, the same object again. */
		if (http_body_json(req, e) != body) {
			json_object_put(o);
			return err_set(e, ERR_INTERNAL, "body not cached");
		}
		jh_add_str(o, "name", jh_get_str(body, "name"));
	}
	http_reply_json(req, 200, o);
	return 0;
}

static int
h_me(struct http_req *req, struct err *e)
{
	const struct auth_user *u = http_user(req);
	const struct auth_claims *c = http_claims(req);
	struct json_object *o;

	if (u == NULL || c == NULL)
		return err_set(e, ERR_INTERNAL, "no user on a user route");
	o = json_object_new_object();
	jh_add_int(o, "id", u->id);
	jh_add_str(o, "username", u->username);
	jh_add_str(o, "role", u->role);
	jh_add_str(o, "claim_username", c->username);
	http_reply_json(req, 200, o);
	return 0;
}

static int
h_admin(struct http_req *req, struct err *e)
{
	struct json_object *o = json_object_new_object();

	(void)e;
	jh_add_bool(o, "admin", true);
	http_reply_json(req, 200, o);
	return 0;
}

static int
h_sf(struct http_req *req, struct err *e)
{
	(void)req;
	return err_set(e, ERR_NOTFOUND, "Thing not found");
}

static int
h_sf_body(struct http_req *req, struct err *e)
{
	if (http_body_json(req, e) == NULL)
		return -1;
	http_reply_json(req, 200, json_object_new_object());
	return 0;
}

static int
h_field(struct http_req *req, struct err *e)
{
	(void)req;
	return err_set_field(e, ERR_INVALID, "username",
	    "Username is required");
}

static int
h_fail(struct http_req *req, struct err *e)
{
	const char *kind = http_param(req, "kind");

	if (strcmp(kind, "internal") == 0)
		return err_set(e, ERR_INTERNAL, "disk on fire at /secret/path");
	if (strcmp(kind, "upstream") == 0)
		return err_set(e, ERR_UPSTREAM, "Relay unavailable");
	if (strcmp(kind, "busy") == 0)
		return err_set(e, ERR_BUSY, "Database busy");
	if (strcmp(kind, "limited") == 0) {
		err_set(e, ERR_RATE_LIMITED, "Too many failed login attempts");
		e->retry_after_s = 42;
		return -1;
	}
	if (strcmp(kind, "noreply") == 0)
		return 0;
	if (strcmp(kind, "noerr") == 0)
		return -1;
	if (strcmp(kind, "double") == 0) {
		http_reply_json(req, 200, json_object_new_object());
		return err_set(e, ERR_INTERNAL, "late failure");
	}
	return err_set(e, ERR_NOTFOUND, "Unknown kind");
}

static int
h_raw(struct http_req *req, struct err *e)
{
	static const char csv[] = "a,b\r\n1,2\r\n";

	(void)e;
	http_set_header(req, "Content-Disposition",
	    "attachment; filename=calls.csv");
	http_set_header(req, "X-Bad", "a\r\nInjected: 1");
	http_set_header(req, "Bad Name", "x");
	http_reply_raw(req, 200, "text/csv", csv, sizeof(csv) - 1);
	return 0;
}

static int
h_refresh(struct http_req *req, struct err *e)
{
	struct json_object *o;

	if (http_user(req) != NULL)
		return err_set(e, ERR_INTERNAL, "user before authenticate");
	if (http_authenticate(req, e) == -1)
		return -1;
	o = json_object_new_object();
	jh_add_int(o, "id", http_user(req)->id);
	http_reply_json(req, 200, o);
	return 0;
}

static int
h_bulk(struct http_req *req, struct err *e)
{
	struct json_object *o = json_object_new_object();

	(void)e;
	jh_add_str(o, "which", http_param(req, "id") ? "id" : "fixed");
	jh_add_str(o, "id", http_param(req, "id"));
	http_reply_json(req, 200, o);
	return 0;
}

static int
h_pid(struct http_req *req, struct err *e)
{
	struct json_object *o = json_object_new_object();

	(void)e;
	jh_add_int(o, "pid", getpid());
	http_reply_json(req, 200, o);
	return 0;
}

/* Long enough for a SIGTERM to arrive while the request is in hand. */
static int
h_slow(struct http_req *req, struct err *e)
{
	struct timespec ts = { 0, 400 * 1000 * 1000 }, rest;

	(void)e;
	while (nanosleep(&ts, &rest) == -1 && errno == EINTR)
		ts = rest;
	http_reply_json(req, 200, json_object_new_object());
	return 0;
}

static const struct http_route routes[] = {
	{ HTTP_GET, "/echo/:a/items/:b", HTTP_PUBLIC, h_echo, 0 },
	{ HTTP_POST, "/echo/:a/items/:b", HTTP_PUBLIC, h_echo, 0 },
	{ HTTP_GET, "/me", HTTP_USER, h_me, 0 },
	{ HTTP_GET, "/admin/only", HTTP_ADMIN, h_admin, 0 },
	{ HTTP_DELETE, "/sf/:id", HTTP_USER, h_sf, HTTP_SUCCESS_FALSE },
	{ HTTP_POST, "/sf/body", HTTP_PUBLIC, h_sf_body, HTTP_SUCCESS_FALSE },
	{ HTTP_POST, "/field", HTTP_PUBLIC, h_field, 0 },
	{ HTTP_GET, "/fail/:kind", HTTP_PUBLIC, h_fail, 0 },
	{ HTTP_GET, "/raw", HTTP_PUBLIC, h_raw, 0 },
	{ HTTP_POST, "/refresh", HTTP_PUBLIC, h_refresh, 0 },
	/* :id first: the literal route must still win for "fixed". */
	{ HTTP_GET, "/bulk/:id", HTTP_PUBLIC, h_bulk, 0 },
	{ HTTP_GET, "/bulk/fixed", HTTP_PUBLIC, h_bulk, 0 },
	{ HTTP_GET, "/pid", HTTP_PUBLIC, h_pid, 0 },
	{ HTTP_GET, "/slow", HTTP_PUBLIC, h_slow, 0 },
	{ HTTP_GET, "/", HTTP_PUBLIC, h_admin, 0 },
};

/* The whole server program, as a cgi-bin main would be. */
static void
serve(void)
{
	struct http_req *req;
	struct http *h;
	struct db *db;
	struct err e;

	log_init("http_test", false);
	err_clear(&e);
	if ((h = http_open("http_test", &cfg, NULL, &e)) == NULL) {
		log_msg(LOG_ERROR, "http_open: %s", e.msg);
		exit(3);
	}
	if ((db = db_open(dbpath, 2000, &e)) == NULL) {
		log_msg(LOG_ERROR, "db_open: %s", e.msg);
		exit(3);
	}
	http_set_db(h, db);
	while ((req = http_accept(h)) != NULL)
		http_dispatch(req, routes, nitems(routes));
	http_close(h);
	db_close(db);
	exit(0);
}

/* ---- the client side ---- */

struct buf {
	char *p;
	size_t n, cap;
};

static void
buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		CHECK(b->p != NULL);
	}
	if (n > 0)
		memcpy(b->p + b->n, data, n);
	b->n += n;
	b->p[b->n] = '\0';
}

struct resp {
	bool head; /* a HEAD request: Content-Length without the body */
	int status;
	struct buf raw;
	char *hdr[32];
	size_t nhdr;
	const char *body;
	size_t bodylen;
	struct json_object *json;
};

static void
resp_free(struct resp *r)
{
	free(r->raw.p);
	json_object_put(r->json);
	memset(r, 0, sizeof(*r));
}

/* The value of header name, or NULL. */
static const char *
hget(const struct resp *r, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < r->nhdr; i++)
		if (strncasecmp(r->hdr[i], name, n) == 0 &&
		    r->hdr[i][n] == ':' && r->hdr[i][n + 1] == ' ')
			return r->hdr[i] + n + 2;
	return NULL;
}

static const char *
jstr(const struct resp *r, const char *key)
{
	struct json_object *v;

	if (r->json == NULL || !json_object_object_get_ex(r->json, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool
streq(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

static bool
jnull(const struct resp *r, const char *key)
{
	struct json_object *v;

	return r->json != NULL && json_object_object_get_ex(r->json, key, &v) &&
	       v == NULL;
}

static int64_t
jint(const struct resp *r, const char *key)
{
	struct json_object *v;

	if (r->json == NULL || !json_object_object_get_ex(r->json, key, &v))
		return -1;
	return json_object_get_int64(v);
}

/* Split a CGI response: "Status:" line, headers, blank line, body. */
static void
resp_parse(struct resp *r)
{
	char *end, *line, *next;
	const char *cl;

	CHECK(r->raw.p != NULL);
	end = strstr(r->raw.p, "\r\n\r\n");
	CHECK(end != NULL);
	*end = '\0';
	r->body = end + 4;
	r->bodylen = r->raw.n - (size_t)(r->body - r->raw.p);
	CHECK(strncmp(r->raw.p, "Status: ", 8) == 0);
	r->status = atoi(r->raw.p + 8);
	for (line = r->raw.p; line != NULL; line = next) {
		if ((next = strstr(line, "\r\n")) != NULL) {
			*next = '\0';
			next += 2;
		}
		CHECK(strchr(line, '\n') == NULL && strchr(line, '\r') == NULL);
		CHECK(r->nhdr < nitems(r->hdr));
		r->hdr[r->nhdr++] = line;
	}
	if ((cl = hget(r, "Content-Length")) != NULL)
		CHECK((size_t)strtoul(cl, NULL, 10) == r->bodylen ||
		      (r->head && r->bodylen == 0));
	else
		CHECK(r->bodylen == 0);
	if (r->bodylen > 0 && hget(r, "Content-Type") != NULL &&
	    strncmp(hget(r, "Content-Type"), "application/json", 16) == 0) {
		r->json = json_tokener_parse(r->body);
		CHECK(r->json != NULL);
	}
}

static void
dump_log(void)
{
	char line[4096];
	FILE *f;

	if (logpath[0] == '\0' || (f = fopen(logpath, "r")) == NULL)
		return;
	fprintf(stderr, "--- server log %s ---\n", logpath);
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

static bool
env_has(const char *const *env, const char *name)
{
	size_t n = strlen(name);

	for (; *env != NULL; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return true;
	return false;
}

static const char *
getenv_in(const char *const *env, const char *name)
{
	size_t n = strlen(name);

	for (; *env != NULL; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

static void
child_stderr(void)
{
	int fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0600);

	if (fd == -1 || dup2(fd, STDERR_FILENO) == -1)
		_exit(4);
	close(fd);
}

/* One plain CGI request: env is NULL-terminated "NAME=value". */
static void
run_cgi(struct resp *r, const char *body, size_t blen, const char *const *env)
{
	int in[2], out[2], st;
	char tmp[8192], num[32], name[128];
	struct pollfd pfd[2];
	size_t off = 0;
	const char *eq;
	ssize_t n;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	r->head = env_has(env, "REQUEST_METHOD") &&
		  strcmp(getenv_in(env, "REQUEST_METHOD"), "HEAD") == 0;
	CHECK(pipe(in) == 0 && pipe(out) == 0);
	fflush(stdout);
	fflush(stderr);
	CHECK((pid = fork()) != -1);
	if (pid == 0) {
		if (dup2(in[0], STDIN_FILENO) == -1 ||
		    dup2(out[1], STDOUT_FILENO) == -1)
			_exit(4);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		child_stderr();
		clearenv();
		for (; *env != NULL; env++) {
			eq = strchr(*env, '=');
			snprintf(name, sizeof(name), "%.*s", (int)(eq - *env),
			    *env);
			setenv(name, eq + 1, 1);
		}
		if (body != NULL && getenv("CONTENT_LENGTH") == NULL) {
			snprintf(num, sizeof(num), "%zu", blen);
			setenv("CONTENT_LENGTH", num, 1);
		}
		serve();
	}
	close(in[0]);
	close(out[1]);
	if (body == NULL || blen == 0) {
		close(in[1]);
		in[1] = -1;
	} else
		fcntl(in[1], F_SETFL, O_NONBLOCK);
	/* Feed stdin while reading stdout: the server may not read it all. */
	for (;;) {
		pfd[0].fd = out[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = in[1];
		pfd[1].events = POLLOUT;
		CHECK(poll(pfd, in[1] >= 0 ? 2 : 1, 10000) > 0);
		if (in[1] >= 0 && (pfd[1].revents & (POLLOUT | POLLERR))) {
			n = write(in[1], body + off, blen - off);
			if (n > 0)
				off += (size_t)n;
			if (n <= 0 || off == blen) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (pfd[0].revents & (POLLIN | POLLHUP)) {
			n = read(out[0], tmp, sizeof(tmp));
			CHECK(n >= 0);
			if (n == 0)
				break;
			buf_add(&r->raw, tmp, (size_t)n);
		}
	}
	if (in[1] >= 0)
		close(in[1]);
	close(out[0]);
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	resp_parse(r);
}

#define ENV(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void
cgi(struct resp *r, const char *body, const char *const *env)
{
	run_cgi(r, body, body != NULL ? strlen(body) : 0, env);
}

/* ---- FastCGI: a minimal client and a server on a Unix socket ---- */

enum {
	FCGI_BEGIN_REQUEST = 1,
	FCGI_END_REQUEST = 3,
	FCGI_PARAMS = 4,
	FCGI_STDIN = 5,
	FCGI_STDOUT = 6,
	FCGI_STDERR = 7,
};

static void
fcgi_record(struct buf *b, int type, int id, const char *data, size_t len)
{
	unsigned char h[8] = { 1, (unsigned char)type, (unsigned char)(id >> 8),
		(unsigned char)id, (unsigned char)(len >> 8),
		(unsigned char)len, 0, 0 };

	CHECK(len <= 65535);
	buf_add(b, h, sizeof(h));
	buf_add(b, data, len);
}

/* A stream of records of type, then its empty terminating record. */
static void
fcgi_stream(struct buf *b, int type, int id, const char *data, size_t len)
{
	size_t off, n;

	for (off = 0; off < len; off += n) {
		n = len - off > 65535 ? 65535 : len - off;
		fcgi_record(b, type, id, data + off, n);
	}
	fcgi_record(b, type, id, NULL, 0);
}

static void
fcgi_len(struct buf *b, size_t n)
{
	unsigned char c[4] = { (unsigned char)(0x80 | (n >> 24)),
		(unsigned char)(n >> 16), (unsigned char)(n >> 8),
		(unsigned char)n };

	if (n < 128) {
		c[0] = (unsigned char)n;
		buf_add(b, c, 1);
	} else
		buf_add(b, c, 4);
}

static void
fcgi_nv(struct buf *b, const char *name, size_t nl, const char *value)
{
	fcgi_len(b, nl);
	fcgi_len(b, strlen(value));
	buf_add(b, name, nl);
	buf_add(b, value, strlen(value));
}

static void
read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	ssize_t k;

	while (got < n) {
		k = read(fd, (char *)p + got, n - got);
		CHECK(k > 0);
		got += (size_t)k;
	}
}

static int
fcgi_connect(void)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sockpath);
	CHECK((fd = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

/* One request with id on connection fd (keep asks to keep it open). */
static void
fcgi_on(int fd, int id, bool keep, struct resp *r, const char *body,
    size_t blen, const char *const *env)
{
	unsigned char begin[8] = { 0, 1, keep ? 1 : 0, 0, 0, 0, 0, 0 };
	struct buf msg = { 0 }, params = { 0 };
	unsigned char h[8];
	char num[32], content[65535 + 255];
	size_t off, clen;
	const char *eq;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	for (; *env != NULL; env++) {
		eq = strchr(*env, '=');
		fcgi_nv(&params, *env, (size_t)(eq - *env), eq + 1);
	}
	if (body != NULL && !env_has(env, "CONTENT_LENGTH")) {
		snprintf(num, sizeof(num), "%zu", blen);
		fcgi_nv(&params, "CONTENT_LENGTH", 14, num);
	}
	fcgi_record(&msg, FCGI_BEGIN_REQUEST, id, (const char *)begin, 8);
	fcgi_stream(&msg, FCGI_PARAMS, id, params.p, params.n);
	fcgi_stream(&msg, FCGI_STDIN, id, body, body != NULL ? blen : 0);
	for (off = 0; off < msg.n; off += (size_t)n) {
		n = write(fd, msg.p + off, msg.n - off);
		CHECK(n > 0);
	}
	free(msg.p);
	free(params.p);
	for (;;) {
		read_full(fd, h, sizeof(h));
		CHECK(h[0] == 1 && (h[2] << 8 | h[3]) == id);
		clen = (size_t)(h[4] << 8 | h[5]) + h[6];
		read_full(fd, content, clen);
		if (h[1] == FCGI_STDOUT)
			buf_add(&r->raw, content, (size_t)(h[4] << 8 | h[5]));
		else if (h[1] == FCGI_END_REQUEST)
			break;
		else
			CHECK(h[1] == FCGI_STDERR);
	}
	resp_parse(r);
}

static void
fcgi(struct resp *r, const char *body, size_t blen, const char *const *env)
{
	int fd = fcgi_connect();

	fcgi_on(fd, 1, false, r, body, blen, env);
	close(fd);
}

static pid_t
fcgi_start(int children)
{
	struct sockaddr_un sa;
	char num[16];
	pid_t pid;
	int ls;

	unlink(sockpath);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sockpath);
	CHECK((ls = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	CHECK(bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(ls, 64) == 0);
	fflush(stdout);
	fflush(stderr);
	CHECK((pid = fork()) != -1);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (dup2(ls, STDIN_FILENO) == -1 || null == -1 ||
		    dup2(null, STDOUT_FILENO) == -1)
			_exit(4);
		close(ls);
		close(null);
		child_stderr();
		snprintf(num, sizeof(num), "%d", children);
		setenv("FCGI_CHILDREN", num, 1);
		serve();
	}
	close(ls);
	return pid;
}

/* Wait up to ms for pid to exit; its status, or -1 on timeout. */
static int
wait_exit(pid_t pid, int ms)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int st, i;

	for (i = 0; i < ms / 10; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		nanosleep(&ts, NULL);
	}
	return -1;
}

/* Live children of parent, from /proc. */
static size_t
children_of(pid_t parent, pid_t *out, size_t max)
{
	char path[300], stat[512], *rp, state;
	struct dirent *de;
	size_t n = 0;
	ssize_t k;
	DIR *d;
	int fd, ppid;

	CHECK((d = opendir("/proc")) != NULL);
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((fd = open(path, O_RDONLY)) == -1)
			continue;
		k = read(fd, stat, sizeof(stat) - 1);
		close(fd);
		if (k <= 0)
			continue;
		stat[k] = '\0';
		if ((rp = strrchr(stat, ')')) == NULL ||
		    sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
			continue;
		if (ppid == parent && state != 'Z' && n < max)
			out[n++] = atoi(de->d_name);
	}
	closedir(d);
	return n;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- fixtures ---- */

static int64_t
add_user(struct db *db, const char *name, const char *ext, const char *role)
{
	static const char q[] =
	    "INSERT INTO users (username, email, password, extension, role, "
	    "status, created_at, updated_at) VALUES (?1, ?2, 'x', ?3, ?4, "
	    "'offline', '2026-01-01T00:00:00.000000Z', "
	    "'2026-01-01T00:00:00.000000Z') RETURNING id";
	struct err e = { 0 };
	struct db_stmt *st;
	char email[128];
	int64_t id;

	snprintf(email, sizeof(email), "%s@example.org", name);
	CHECK((st = db_stmt(db, q, &e)) != NULL);
	db_bind_text(st, 1, name);
	db_bind_text(st, 2, email);
	db_bind_text(st, 3, ext);
	db_bind_text(st, 4, role);
	CHECK(db_row(db, st, &e) == 1);
	id = db_col_int(st, 0);
	CHECK(db_done(db, st, &e) == 0);
	return id;
}

static char *
token_for(struct db *db, int64_t id, const char *name, const char *ext,
    const char *role)
{
	struct auth_user u;
	struct err e;
	char *tok = NULL;

	memset(&u, 0, sizeof(u));
	u.id = id;
	snprintf(u.username, sizeof(u.username), "%s", name);
	snprintf(u.extension, sizeof(u.extension), "%s", ext);
	snprintf(u.role, sizeof(u.role), "%s", role);
	u.is_admin = strcmp(role, "admin") == 0;
	err_clear(&e);
	CHECK(auth_token_issue(db, &cfg, &u, &tok, NULL, &e) == 0);
	return tok;
}

static void
setup(void)
{
	static const char secret[] =
	    "http-test-secret-0123456789abcdef01234567";
	struct db *db;
	struct err e;
	int64_t ghost;

	CHECK(mkdtemp(tmpdir) != NULL);
	snprintf(dbpath, sizeof(dbpath), "%s/test.db", tmpdir);
	snprintf(logpath, sizeof(logpath), "%s/server.log", tmpdir);
	snprintf(sockpath, sizeof(sockpath), "%s/fcgi.sock", tmpdir);
	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.jwt_secret, secret, sizeof(secret));
	cfg.jwt_secret_len = sizeof(secret) - 1;
	cfg.jwt_expiry_hours = 24;
	snprintf(cfg.db_path, sizeof(cfg.db_path), "%s", dbpath);
	snprintf(cfg.run_dir, sizeof(cfg.run_dir), "%s", tmpdir);
	snprintf(cfg.cors_origins, sizeof(cfg.cors_origins),
	    "%s, http://localhost:3000", ORIGIN_OK);
	err_clear(&e);
	CHECK((db = db_open(dbpath, 2000, &e)) != NULL);
	CHECK(db_migrate(db, NULL, &e) == 0);
	admin_id = add_user(db, "root", "1000", "admin");
	user_id = add_user(db, "alice", "1001", "user");
	ghost = add_user(db, "ghost", "1002", "user");
	tok_admin = token_for(db, admin_id, "root", "1000", "admin");
	tok_user = token_for(db, user_id, "alice", "1001", "user");
	tok_gone = token_for(db, ghost, "ghost", "1002", "user");
	CHECK(
	    db_exec(db, "DELETE FROM users WHERE username = 'ghost'", &e) == 0);
	db_close(db);
}

static void
teardown(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s-wal", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", dbpath);
	unlink(p);
	unlink(dbpath);
	unlink(logpath);
	unlink(sockpath);
	rmdir(tmpdir);
	free(tok_admin);
	free(tok_user);
	free(tok_gone);
}

static char *
read_log(void)
{
	struct buf b = { 0 };
	char tmp[4096];
	size_t n;
	FILE *f;

	CHECK((f = fopen(logpath, "r")) != NULL);
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_add(&b, tmp, n);
	fclose(f);
	buf_add(&b, "", 0);
	return b.p;
}

/* ---- CGI cases ---- */

/*
 * The public origin and the client's address: from configuration and the
 * connection, forwarded headers only from a trusted proxy, never Host.
 */
static void
test_origin_and_client(void)
{
	struct config saved = cfg;
	struct resp r;

	/* Untrusted peer: Host and every forwarded header are ignored. */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b",
		"REMOTE_ADDR=203.0.113.5", "HTTP_HOST=evil.example",
		"HTTP_X_FORWARDED_PROTO=https",
		"HTTP_X_FORWARDED_HOST=evil.example",
		"HTTP_X_FORWARDED_FOR=198.51.100.1", "SERVER_ADDR=192.0.2.10",
		"SERVER_PORT=8080"));
	CHECK(streq(jstr(&r, "origin"), "http://192.0.2.10:8080"));
	CHECK(streq(jstr(&r, "client"), "203.0.113.5"));
	CHECK(streq(hget(&r, "Cache-Control"), "no-store"));
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b",
		"REMOTE_ADDR=::1", "SERVER_ADDR=2001:db8::7", "SERVER_PORT=443",
		"HTTPS=on"));
	CHECK(streq(jstr(&r, "origin"), "https://[2001:db8::7]"));
	CHECK(streq(jstr(&r, "client"), "::1"));
	resp_free(&r);

	/* A trusted proxy: its forwarded headers count. */
	cfg.trusted_proxies[0].family = AF_INET;
	CHECK(inet_pton(AF_INET, "10.0.0.0", cfg.trusted_proxies[0].addr) == 1);
	cfg.trusted_proxies[0].prefix = 8;
	cfg.ntrusted_proxies = 1;
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b",
		"REMOTE_ADDR=10.1.2.3", "HTTP_HOST=evil.example",
		"HTTP_X_FORWARDED_PROTO=https",
		"HTTP_X_FORWARDED_HOST=voip.example.org:8443, evil.example",
		"HTTP_X_FORWARDED_FOR=6.6.6.6, 198.51.100.1 , 10.9.9.9",
		"SERVER_ADDR=10.0.0.2", "SERVER_PORT=8080"));
	CHECK(streq(jstr(&r, "origin"), "https://voip.example.org:8443"));
	/* right to left, past the trusted hops; what the client wrote is
	 * left of that and ignored */
	CHECK(streq(jstr(&r, "client"), "198.51.100.1"));
	resp_free(&r);
	/* no usable X-Forwarded-Host: the server's own address */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b",
		"REMOTE_ADDR=10.1.2.3", "HTTP_X_FORWARDED_HOST=bad host/",
		"HTTP_X_FORWARDED_FOR=10.0.0.9,garbage, 10.0.0.8",
		"SERVER_ADDR=10.0.0.2", "SERVER_PORT=80"));
	CHECK(streq(jstr(&r, "origin"), "http://10.0.0.2"));
	/* nonsense left of trusted hops: the last trusted one */
	CHECK(streq(jstr(&r, "client"), "10.0.0.8"));
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b",
		"REMOTE_ADDR=10.1.2.3", "HTTP_X_FORWARDED_FOR=10.0.0.9"));
	CHECK(streq(jstr(&r, "client"), "10.0.0.9")); /* all trusted */
	CHECK(streq(jstr(&r, "origin"), "http://localhost"));
	resp_free(&r);

	/* PUBLIC_URL wins over everything. */
	snprintf(cfg.public_url, sizeof(cfg.public_url),
	    "https://voip.example.net");
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b",
		"REMOTE_ADDR=10.1.2.3", "HTTP_X_FORWARDED_PROTO=http",
		"HTTP_X_FORWARDED_HOST=other.example",
		"HTTP_HOST=evil.example"));
	CHECK(streq(jstr(&r, "origin"), "https://voip.example.net"));
	resp_free(&r);
	cfg = saved;
}

static void
test_echo(void)
{
	struct resp r;
	const char *id;
	size_t i;

	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/abc/items/x y",
		"QUERY_STRING=q=hello+world%21&x=%E2%9C%93&q=second&empty="
		"&bare&bad=%zz%4&nul=a%00b&sp%20ace=1",
		"HTTP_X_CALL_METHOD=webrtc", "CONTENT_TYPE=text/plain",
		"REMOTE_ADDR=10.0.0.7", "HTTP_HOST=example.org:8443",
		"HTTPS=on", "REQUEST_ID=0123456789abcdef0123456789abcdef"));
	CHECK(r.status == 200);
	CHECK(strcmp(r.hdr[0], "Status: 200 OK") == 0);
	CHECK(strcmp(r.hdr[1], "Content-Type: application/json; "
			       "charset=utf-8") == 0);
	CHECK(strncmp(r.hdr[2], "Content-Length: ", 16) == 0);
	CHECK(streq(hget(&r, "X-Request-Id"),
	    "0123456789abcdef0123456789abcdef"));
	CHECK(hget(&r, "Access-Control-Allow-Origin") == NULL);
	CHECK(streq(jstr(&r, "a"), "abc"));
	CHECK(streq(jstr(&r, "b"), "x y"));
	CHECK(jnull(&r, "missing"));
	CHECK(streq(jstr(&r, "q"), "hello world!"));
	CHECK(streq(jstr(&r, "x"), "\xe2\x9c\x93"));
	CHECK(streq(jstr(&r, "empty"), ""));
	CHECK(streq(jstr(&r, "bare"), ""));
	CHECK(streq(jstr(&r, "bad"), "%zz%4"));
	CHECK(jnull(&r, "nul"));
	CHECK(streq(jstr(&r, "sp ace"), "1"));
	CHECK(streq(jstr(&r, "hdr"), "webrtc"));
	CHECK(streq(jstr(&r, "ctype"), "text/plain"));
	CHECK(streq(jstr(&r, "addr"), "10.0.0.7"));
	/* Host is never the origin; no SERVER_ADDR here */
	CHECK(streq(jstr(&r, "origin"), "https://localhost"));
	CHECK(streq(jstr(&r, "path"), "/echo/abc/items/x y"));
	CHECK(jint(&r, "method") == HTTP_GET);
	resp_free(&r);

	/* REQUEST_URI alone: decoded path, query cut off; generated id. */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET",
		"REQUEST_URI=/echo/caf%C3%A9/items/7?q=zz", "QUERY_STRING=q=zz",
		"HTTP_X_FORWARDED_PROTO=https", "HTTP_HOST=bad host/",
		"SERVER_NAME=srv.local", "SERVER_PORT=443",
		"REQUEST_ID=has space"));
	CHECK(r.status == 200);
	CHECK(streq(jstr(&r, "a"), "caf\xc3\xa9"));
	CHECK(streq(jstr(&r, "b"), "7"));
	CHECK(streq(jstr(&r, "q"), "zz"));
	/* X-Forwarded-Proto from an untrusted peer is ignored */
	CHECK(streq(jstr(&r, "origin"), "http://localhost:443"));
	CHECK(jnull(&r, "hdr"));
	CHECK(streq(jstr(&r, "addr"), ""));
	id = hget(&r, "X-Request-Id");
	CHECK(id != NULL && strlen(id) == 16);
	for (i = 0; i < 16; i++)
		CHECK(isxdigit((unsigned char)id[i]));
	resp_free(&r);

	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b",
		"SERVER_NAME=srv.local", "SERVER_PORT=8080"));
	CHECK(streq(jstr(&r, "origin"), "http://localhost:8080"));
	resp_free(&r);

	/* SCRIPT_NAME alone when nothing else says the path. */
	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "SCRIPT_NAME=/echo/p/items/q"));
	CHECK(r.status == 200);
	CHECK(streq(jstr(&r, "a"), "p"));
	resp_free(&r);

	/* Literal segments win over :params regardless of table order. */
	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/bulk/fixed"));
	CHECK(streq(jstr(&r, "which"), "fixed"));
	resp_free(&r);
	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/bulk/77"));
	CHECK(streq(jstr(&r, "which"), "id"));
	CHECK(streq(jstr(&r, "id"), "77"));
	resp_free(&r);
	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/"));
	CHECK(r.status == 200);
	resp_free(&r);
}

/*
 * Plain CGI as Apache, fcgiwrap or a shared host runs it: SCRIPT_NAME names
 * the program, PATH_INFO (decoded by the server) is the route, REQUEST_URI
 * is what the client asked for (the program's URL, or the URL a rewrite
 * rule mapped onto it).
 */
static void
test_path_info(void)
{
	struct resp r;

	/* /cgi-bin/echo/echo/p/items/q asked for directly. */
	cgi(&r, NULL,
	    ENV("GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET",
		"SCRIPT_NAME=/cgi-bin/echo", "PATH_INFO=/echo/p/items/q",
		"REQUEST_URI=/cgi-bin/echo/echo/p/items/q?x=1",
		"QUERY_STRING=x=1"));
	CHECK(r.status == 200);
	CHECK(streq(jstr(&r, "path"), "/echo/p/items/q"));
	CHECK(streq(jstr(&r, "a"), "p"));
	CHECK(streq(jstr(&r, "b"), "q"));
	CHECK(streq(jstr(&r, "x"), "1"));
	resp_free(&r);

	/* /me rewritten onto /cgi-bin/echo/me (.htaccess). */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "SCRIPT_NAME=/cgi-bin/echo",
		"PATH_INFO=/me", "REQUEST_URI=/me"));
	CHECK(r.status == 401); /* found, and needs a token */
	resp_free(&r);

	/* Routed on PATH_INFO whatever DOCUMENT_URI says (fcgiwrap). */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "SCRIPT_NAME=/cgi-bin/echo",
		"PATH_INFO=/echo/a/items/b",
		"DOCUMENT_URI=/cgi-bin/echo/echo/a/items/b"));
	CHECK(r.status == 200);
	CHECK(streq(jstr(&r, "path"), "/echo/a/items/b"));
	resp_free(&r);

	/* Already decoded: not decoded a second time. */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "SCRIPT_NAME=/cgi-bin/echo",
		"PATH_INFO=/echo/caf\xc3\xa9 100%41/items/7",
		"REQUEST_URI=/cgi-bin/echo/echo/caf%C3%A9%20100%2541/items/7"));
	CHECK(r.status == 200);
	CHECK(streq(jstr(&r, "a"), "caf\xc3\xa9 100%41"));
	CHECK(streq(jstr(&r, "b"), "7"));
	resp_free(&r);

	/* A route the program does not have; the program's own URL. */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "SCRIPT_NAME=/cgi-bin/echo",
		"PATH_INFO=/nope", "REQUEST_URI=/cgi-bin/echo/nope"));
	CHECK(r.status == 404);
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "SCRIPT_NAME=/cgi-bin/echo",
		"PATH_INFO=", "REQUEST_URI=/cgi-bin/echo"));
	CHECK(r.status == 404);
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=DELETE", "SCRIPT_NAME=/cgi-bin/echo",
		"PATH_INFO=/echo/a/items/b"));
	CHECK(r.status == 405);
	CHECK(streq(hget(&r, "Allow"), "GET, POST, OPTIONS"));
	resp_free(&r);

	/* Not routable: %00, relative. */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "SCRIPT_NAME=/cgi-bin/echo",
		"PATH_INFO=/echo/%00/items/b"));
	CHECK(r.status == 400);
	CHECK(streq(jstr(&r, "error"), "Invalid request path"));
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "SCRIPT_NAME=/cgi-bin/echo",
		"PATH_INFO=me"));
	CHECK(r.status == 400);
	resp_free(&r);
}

static void
test_routing(void)
{
	static const char *const notfound[] = { "/nope", "/echo/a/items",
		"/echo/a/items/b/c", "/echo/a/items/", "/echo//items/b", "/me/",
		"//me", "/ME" };
	char env_uri[64], longuri[3100];
	struct resp r;
	size_t i;

	for (i = 0; i < nitems(notfound); i++) {
		snprintf(env_uri, sizeof(env_uri), "DOCUMENT_URI=%s",
		    notfound[i]);
		cgi(&r, NULL, ENV("REQUEST_METHOD=GET", env_uri));
		CHECK(r.status == 404);
		CHECK(strcmp(r.hdr[0], "Status: 404 Not Found") == 0);
		CHECK(strcmp(r.body, "{\"error\":\"Not found\"}") == 0);
		CHECK(hget(&r, "Allow") == NULL);
		resp_free(&r);
	}

	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=DELETE", "DOCUMENT_URI=/echo/a/items/b"));
	CHECK(r.status == 405);
	CHECK(strcmp(r.body, "{\"error\":\"Method not allowed\"}") == 0);
	CHECK(streq(hget(&r, "Allow"), "GET, POST, OPTIONS"));
	resp_free(&r);

	cgi(&r, NULL, ENV("REQUEST_METHOD=BREW", "DOCUMENT_URI=/me"));
	CHECK(r.status == 405);
	CHECK(streq(hget(&r, "Allow"), "GET, OPTIONS"));
	resp_free(&r);

	cgi(&r, NULL, ENV("DOCUMENT_URI=/me"));
	CHECK(r.status == 405);
	resp_free(&r);

	/* Not routable at all. */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "REQUEST_URI=/echo/%00/items/b"));
	CHECK(r.status == 400);
	CHECK(streq(jstr(&r, "error"), "Invalid request path"));
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/%00/items/b"));
	CHECK(r.status == 400);
	resp_free(&r);
	memcpy(longuri, "DOCUMENT_URI=", 13);
	for (i = 13; i < 13 + 2049; i++)
		longuri[i] = i % 2 ? '/' : 'a';
	longuri[i] = '\0';
	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", longuri));
	CHECK(r.status == 400);
	resp_free(&r);
	/* Exactly the limit is a path (that matches nothing). */
	longuri[13 + 2048] = '\0';
	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", longuri));
	CHECK(r.status == 404);
	resp_free(&r);
}

static void
test_cors(void)
{
	struct resp r;

	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=OPTIONS", "DOCUMENT_URI=/echo/a/items/b",
		"HTTP_ORIGIN=" ORIGIN_OK,
		"HTTP_ACCESS_CONTROL_REQUEST_METHOD=POST"));
	CHECK(r.status == 204);
	CHECK(strcmp(r.hdr[0], "Status: 204 No Content") == 0);
	CHECK(r.bodylen == 0);
	CHECK(hget(&r, "Content-Length") == NULL);
	CHECK(hget(&r, "X-Request-Id") != NULL);
	CHECK(streq(hget(&r, "Access-Control-Allow-Origin"), ORIGIN_OK));
	CHECK(streq(hget(&r, "Access-Control-Allow-Credentials"), "true"));
	CHECK(streq(hget(&r, "Vary"), "Origin"));
	CHECK(streq(hget(&r, "Access-Control-Allow-Methods"),
	    "GET, POST, PUT, DELETE, OPTIONS"));
	CHECK(streq(hget(&r, "Access-Control-Allow-Headers"),
	    "Origin, Content-Length, Content-Type, Authorization, "
	    "X-Call-Method"));
	CHECK(streq(hget(&r, "Access-Control-Max-Age"), "600"));
	resp_free(&r);

	/* Preflight needs no token even on a user route. */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=OPTIONS", "DOCUMENT_URI=/me",
		"HTTP_ORIGIN=http://localhost:3000"));
	CHECK(r.status == 204);
	CHECK(streq(hget(&r, "Access-Control-Allow-Origin"),
	    "http://localhost:3000"));
	resp_free(&r);

	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=OPTIONS", "DOCUMENT_URI=/echo/a/items/b",
		"HTTP_ORIGIN=" ORIGIN_BAD));
	CHECK(r.status == 204);
	CHECK(hget(&r, "Access-Control-Allow-Origin") == NULL);
	CHECK(hget(&r, "Access-Control-Allow-Methods") == NULL);
	CHECK(hget(&r, "Vary") == NULL);
	resp_free(&r);

	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=OPTIONS", "DOCUMENT_URI=/nope",
		"HTTP_ORIGIN=" ORIGIN_OK));
	CHECK(r.status == 404);
	resp_free(&r);

	/* Normal replies, errors included, carry CORS for allowed origins. */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b",
		"HTTP_ORIGIN=" ORIGIN_OK));
	CHECK(r.status == 200);
	CHECK(streq(hget(&r, "Access-Control-Allow-Origin"), ORIGIN_OK));
	CHECK(streq(hget(&r, "Access-Control-Allow-Credentials"), "true"));
	CHECK(streq(hget(&r, "Vary"), "Origin"));
	CHECK(hget(&r, "Access-Control-Allow-Methods") == NULL);
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/me",
		"HTTP_ORIGIN=" ORIGIN_OK));
	CHECK(r.status == 401);
	CHECK(streq(hget(&r, "Access-Control-Allow-Origin"), ORIGIN_OK));
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b",
		"HTTP_ORIGIN=" ORIGIN_BAD));
	CHECK(r.status == 200);
	CHECK(hget(&r, "Access-Control-Allow-Origin") == NULL);
	CHECK(hget(&r, "Vary") == NULL);
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b",
		"HTTP_ORIGIN=*"));
	CHECK(hget(&r, "Access-Control-Allow-Origin") == NULL);
	resp_free(&r);
}

static void
check_401(const char *auth, const char *msg)
{
	char env_auth[2048];
	struct resp r;

	snprintf(env_auth, sizeof(env_auth), "HTTP_AUTHORIZATION=%s",
	    auth != NULL ? auth : "");
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/me",
		auth != NULL ? env_auth : "X=1"));
	CHECK(r.status == 401);
	CHECK(strcmp(r.hdr[0], "Status: 401 Unauthorized") == 0);
	CHECK(jstr(&r, "error") != NULL);
	if (msg[strlen(msg) - 1] == '*')
		CHECK(strncmp(jstr(&r, "error"), msg, strlen(msg) - 1) == 0);
	else
		CHECK(streq(jstr(&r, "error"), msg));
	CHECK(json_object_object_length(r.json) == 1);
	resp_free(&r);
}

static void
test_auth(void)
{
	char bearer[1024], bearer_admin[1024], bad[1024];
	struct resp r;

	snprintf(bearer, sizeof(bearer), "HTTP_AUTHORIZATION=Bearer %s",
	    tok_user);
	snprintf(bearer_admin, sizeof(bearer_admin),
	    "HTTP_AUTHORIZATION=Bearer %s", tok_admin);

	check_401(NULL, "Authorization header required");
	check_401("", "Authorization header required");
	check_401("Basic YWxpY2U6cHc=", "Invalid authorization header format");
	check_401("bearer x", "Invalid authorization header format");
	check_401("Bearer", "Token required");
	check_401("Bearer a b", "Invalid authorization header format");
	check_401("Bearer ", "Token required");
	check_401("Bearer garbage", "Invalid token: *");
	snprintf(bad, sizeof(bad), "Bearer %s", tok_gone);
	check_401(bad, "Invalid token: *");
	/* A signature that does not verify. */
	snprintf(bad, sizeof(bad), "Bearer %s", tok_user);
	bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
	check_401(bad, "Invalid token: *");

	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/me", bearer));
	CHECK(r.status == 200);
	CHECK(jint(&r, "id") == user_id);
	CHECK(streq(jstr(&r, "username"), "alice"));
	CHECK(streq(jstr(&r, "role"), "user"));
	CHECK(streq(jstr(&r, "claim_username"), "alice"));
	resp_free(&r);

	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/admin/only", bearer));
	CHECK(r.status == 403);
	CHECK(strcmp(r.hdr[0], "Status: 403 Forbidden") == 0);
	CHECK(strcmp(r.body, "{\"error\":\"Admin access required\"}") == 0);
	resp_free(&r);
	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/admin/only"));
	CHECK(r.status == 401);
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/admin/only",
		bearer_admin));
	CHECK(r.status == 200);
	resp_free(&r);

	/* A public route sees no user unless it authenticates. */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/a/items/b", bearer));
	CHECK(json_object_get_boolean(json_object_object_get(r.json, "user")) ==
	      0);
	resp_free(&r);
	cgi(&r, NULL, ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/refresh"));
	CHECK(r.status == 401);
	CHECK(streq(jstr(&r, "error"), "Authorization header required"));
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/refresh",
		"HTTP_AUTHORIZATION=Bearer "));
	CHECK(streq(jstr(&r, "error"), "Token required"));
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/refresh", bearer_admin));
	CHECK(r.status == 200);
	CHECK(jint(&r, "id") == admin_id);
	resp_free(&r);

	/* HTTP_SUCCESS_FALSE: "success": false (keys sorted), on every error.
	 */
	cgi(&r, NULL, ENV("REQUEST_METHOD=DELETE", "DOCUMENT_URI=/sf/5"));
	CHECK(r.status == 401);
	CHECK(strcmp(r.body, "{\"error\":\"Authorization header required\","
			     "\"success\":false}") == 0);
	resp_free(&r);
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=DELETE", "DOCUMENT_URI=/sf/5", bearer));
	CHECK(r.status == 404);
	CHECK(strcmp(r.body,
		  "{\"error\":\"Thing not found\",\"success\":false}") == 0);
	resp_free(&r);
}

static void
test_body(void)
{
	static const char *const bad[] = { "{bad", "[1,2]", "\"str\"", "42",
		"{} x", "{\"name\":\"a\"}{}", "", "   ", "{\"a\":1,}", "nul" };
	char *big;
	struct resp r;
	size_t i;

	cgi(&r, "{\"name\":\"Zo\\u00eb\"}",
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/a/items/b",
		"CONTENT_TYPE=application/json"));
	CHECK(r.status == 200);
	CHECK(streq(jstr(&r, "name"), "Zo\xc3\xab"));
	CHECK(jint(&r, "method") == HTTP_POST);
	resp_free(&r);

	for (i = 0; i < nitems(bad); i++) {
		cgi(&r, bad[i],
		    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/a/items/b"));
		CHECK(r.status == 400);
		CHECK(strcmp(r.body,
			  "{\"error\":\"Invalid request format\"}") == 0);
		resp_free(&r);
	}
	/* No CONTENT_LENGTH at all, a short body, a bad length. */
	cgi(&r, NULL,
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/a/items/b"));
	CHECK(r.status == 400);
	resp_free(&r);
	cgi(&r, "{\"name\":\"x\"}",
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/a/items/b",
		"CONTENT_LENGTH=100"));
	CHECK(r.status == 400);
	resp_free(&r);
	cgi(&r, "{}",
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/a/items/b",
		"CONTENT_LENGTH=2x"));
	CHECK(r.status == 400);
	resp_free(&r);
	cgi(&r, "{}",
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/a/items/b",
		"CONTENT_LENGTH=-2"));
	CHECK(r.status == 400);
	resp_free(&r);

	/* 70000 bytes: refused unread. */
	CHECK((big = malloc(70000 + 1)) != NULL);
	memset(big, ' ', 70000);
	memcpy(big, "{\"name\":\"", 9);
	memcpy(big + 70000 - 2, "\"}", 2);
	big[70000] = '\0';
	memset(big + 9, 'n', 70000 - 11);
	cgi(&r, big,
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/a/items/b",
		"HTTP_ORIGIN=" ORIGIN_OK));
	CHECK(r.status == 413);
	CHECK(strcmp(r.hdr[0], "Status: 413 Payload Too Large") == 0);
	CHECK(strcmp(r.body, "{\"error\":\"Request body too large\"}") == 0);
	CHECK(hget(&r, "Access-Control-Allow-Origin") != NULL);
	resp_free(&r);
	cgi(&r, "{}",
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/a/items/b",
		"CONTENT_LENGTH=99999999999999999999999"));
	CHECK(r.status == 413 || r.status == 400);
	resp_free(&r);
	/* Exactly HTTP_BODY_MAX is fine. */
	memcpy(big + HTTP_BODY_MAX - 2, "\"}", 2);
	run_cgi(&r, big, HTTP_BODY_MAX,
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/a/items/b"));
	CHECK(r.status == 200);
	CHECK(jstr(&r, "name") != NULL &&
	      strlen(jstr(&r, "name")) == HTTP_BODY_MAX - 11);
	resp_free(&r);
	free(big);

	cgi(&r, "not json",
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/sf/body"));
	CHECK(r.status == 400);
	CHECK(strcmp(r.body, "{\"error\":\"Invalid request format\","
			     "\"success\":false}") == 0);
	resp_free(&r);
}

static void
test_errors(void)
{
	struct resp r;

	cgi(&r, "{}", ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/field"));
	CHECK(r.status == 400);
	CHECK(strcmp(r.body, "{\"error\":\"Username is required\","
			     "\"field\":\"username\"}") == 0);
	resp_free(&r);

	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/fail/internal"));
	CHECK(r.status == 500);
	CHECK(strcmp(r.hdr[0], "Status: 500 Internal Server Error") == 0);
	CHECK(strcmp(r.body, "{\"error\":\"Internal server error\"}") == 0);
	resp_free(&r);

	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/fail/upstream"));
	CHECK(r.status == 502);
	CHECK(strcmp(r.body, "{\"error\":\"Relay unavailable\"}") == 0);
	resp_free(&r);

	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/fail/busy"));
	CHECK(r.status == 503);
	CHECK(strcmp(r.body, "{\"error\":\"Database busy\"}") == 0);
	resp_free(&r);

	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/fail/limited"));
	CHECK(r.status == 429);
	CHECK(streq(hget(&r, "Retry-After"), "42"));
	CHECK(strcmp(r.body,
		  "{\"error\":\"Too many failed login attempts\"}") == 0);
	resp_free(&r);

	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/fail/noreply"));
	CHECK(r.status == 500);
	CHECK(strcmp(r.body, "{\"error\":\"Internal server error\"}") == 0);
	resp_free(&r);

	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/fail/noerr"));
	CHECK(r.status == 500);
	resp_free(&r);

	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/fail/double"));
	CHECK(r.status == 200);
	CHECK(strcmp(r.body, "{}") == 0);
	resp_free(&r);

	cgi(&r, NULL, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/raw"));
	CHECK(r.status == 200);
	CHECK(streq(hget(&r, "Content-Type"), "text/csv"));
	CHECK(streq(hget(&r, "Content-Disposition"),
	    "attachment; filename=calls.csv"));
	CHECK(hget(&r, "X-Bad") == NULL && hget(&r, "Injected") == NULL);
	CHECK(r.bodylen == 10 && memcmp(r.body, "a,b\r\n1,2\r\n", 10) == 0);
	resp_free(&r);

	cgi(&r, NULL, ENV("REQUEST_METHOD=HEAD", "DOCUMENT_URI=/raw"));
	CHECK(r.status == 405);
	CHECK(r.bodylen == 0 && hget(&r, "Content-Length") != NULL);
	resp_free(&r);
}

static void
test_log(void)
{
	char *log = read_log();

	/* 5xx details reach the log only. */
	CHECK(strstr(log, "disk on fire at /secret/path") != NULL);
	CHECK(strstr(log, "without replying") != NULL);
	CHECK(strstr(log, "late failure") != NULL);
	/* Route patterns, not raw paths; no tokens. */
	CHECK(strstr(log, "\"route\":\"/echo/:a/items/:b\"") != NULL);
	CHECK(strstr(log, "\"route\":\"/sf/:id\"") != NULL);
	CHECK(strstr(log, "/bulk/77") == NULL);
	CHECK(strstr(log, "items/7") == NULL);
	CHECK(strstr(log, "items/x y") == NULL);
	CHECK(strstr(log, tok_user) == NULL);
	CHECK(strstr(log, "0123456789abcdef0123456789abcdef") != NULL);
	CHECK(strstr(log, "Sanitizer") == NULL);
	CHECK(strstr(log, "runtime error") == NULL);
	free(log);
}

/* ---- FastCGI cases ---- */

static void
test_fcgi_one(void)
{
	char bearer[1024], *big;
	pid_t pid, killer;
	struct resp r;
	int i, st, fd;

	snprintf(bearer, sizeof(bearer), "HTTP_AUTHORIZATION=Bearer %s",
	    tok_user);
	pid = fcgi_start(1);

	fcgi(&r, NULL, 0,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/echo/f/items/g",
		"QUERY_STRING=q=a+b&x=%41", "HTTP_X_CALL_METHOD=ami",
		"REMOTE_ADDR=127.0.0.1", "HTTP_HOST=h.example",
		"REQUEST_ID=fcgi-1", "HTTP_ORIGIN=" ORIGIN_OK));
	CHECK(r.status == 200);
	CHECK(streq(hget(&r, "X-Request-Id"), "fcgi-1"));
	CHECK(streq(hget(&r, "Access-Control-Allow-Origin"), ORIGIN_OK));
	CHECK(streq(jstr(&r, "a"), "f"));
	CHECK(streq(jstr(&r, "b"), "g"));
	CHECK(streq(jstr(&r, "q"), "a b"));
	CHECK(streq(jstr(&r, "x"), "A"));
	CHECK(streq(jstr(&r, "hdr"), "ami"));
	CHECK(streq(jstr(&r, "addr"), "127.0.0.1"));
	CHECK(streq(jstr(&r, "origin"), "http://localhost"));
	resp_free(&r);

	/* Bodies and replies spanning many records both ways. */
	CHECK((big = malloc(70000 + 1)) != NULL);
	memset(big, 'z', 70000);
	memcpy(big, "{\"name\":\"", 9);
	memcpy(big + 60000 - 2, "\"}", 2);
	fcgi(&r, big, 60000,
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/f/items/g"));
	CHECK(r.status == 200);
	CHECK(
	    jstr(&r, "name") != NULL && strlen(jstr(&r, "name")) == 60000 - 11);
	resp_free(&r);
	fcgi(&r, big, 70000,
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/f/items/g"));
	CHECK(r.status == 413);
	CHECK(strcmp(r.body, "{\"error\":\"Request body too large\"}") == 0);
	resp_free(&r);
	fcgi(&r, big, 100,
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/f/items/g"));
	CHECK(r.status == 400);
	resp_free(&r);
	/* A length the stream does not deliver. */
	fcgi(&r, "{}", 2,
	    ENV("REQUEST_METHOD=POST", "DOCUMENT_URI=/echo/f/items/g",
		"CONTENT_LENGTH=50"));
	CHECK(r.status == 400);
	resp_free(&r);
	free(big);

	/* Many requests: the leak checker at exit sees all of them. */
	for (i = 0; i < 60; i++) {
		switch (i % 6) {
		case 0:
			fcgi(&r, NULL, 0,
			    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/me",
				bearer));
			CHECK(r.status == 200);
			break;
		case 1:
			fcgi(&r, NULL, 0,
			    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/me"));
			CHECK(r.status == 401);
			break;
		case 2:
			fcgi(&r, "{\"name\":\"n\"}", 12,
			    ENV("REQUEST_METHOD=POST",
				"DOCUMENT_URI=/echo/1/items/2",
				"QUERY_STRING=q=1&q=2&x"));
			CHECK(r.status == 200);
			CHECK(streq(jstr(&r, "q"), "1"));
			break;
		case 3:
			fcgi(&r, NULL, 0,
			    ENV("REQUEST_METHOD=GET",
				"DOCUMENT_URI=/fail/internal"));
			CHECK(r.status == 500);
			break;
		case 4:
			fcgi(&r, NULL, 0,
			    ENV("REQUEST_METHOD=PUT", "DOCUMENT_URI=/me"));
			CHECK(r.status == 405);
			break;
		default:
			fcgi(&r, "[]", 2,
			    ENV("REQUEST_METHOD=POST",
				"DOCUMENT_URI=/sf/body"));
			CHECK(r.status == 400);
			CHECK(jstr(&r, "error") != NULL);
			break;
		}
		resp_free(&r);
	}

	/* fastcgi_keep_conn: two requests on one connection. */
	fd = fcgi_connect();
	fcgi_on(fd, 1, true, &r, NULL, 0,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/pid"));
	CHECK(r.status == 200 && jint(&r, "pid") == pid);
	resp_free(&r);
	fcgi_on(fd, 2, true, &r, NULL, 0,
	    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/bulk/9"));
	CHECK(r.status == 200 && streq(jstr(&r, "id"), "9"));
	resp_free(&r);
	close(fd);
	fcgi(&r, NULL, 0, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/pid"));
	CHECK(r.status == 200);
	resp_free(&r);

	/*
	 * SIGTERM in the middle of a request: the request completes, then
	 * the worker leaves its loop and exits 0.
	 */
	fflush(stdout);
	fflush(stderr);
	CHECK((killer = fork()) != -1);
	if (killer == 0) {
		sleep_ms(150);
		_exit(kill(pid, SIGTERM) == 0 ? 0 : 1);
	}
	fcgi(&r, NULL, 0, ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/slow"));
	CHECK(r.status == 200);
	resp_free(&r);
	CHECK(waitpid(killer, &st, 0) == killer && WIFEXITED(st) &&
	      WEXITSTATUS(st) == 0);
	st = wait_exit(pid, 5000);
	CHECK(st != -1);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void
test_fcgi_prefork(void)
{
	pid_t sup, kids[8], again[8], seen;
	struct resp r;
	size_t n, i;
	int st, tries;
	char *log;

	sup = fcgi_start(2);
	for (tries = 0; tries < 300; tries++) {
		if ((n = children_of(sup, kids, nitems(kids))) == 2)
			break;
		sleep_ms(10);
	}
	CHECK(n == 2);
	for (i = 0; i < 6; i++) {
		fcgi(&r, NULL, 0,
		    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/pid"));
		CHECK(r.status == 200);
		seen = (pid_t)jint(&r, "pid");
		CHECK(seen == kids[0] || seen == kids[1]);
		resp_free(&r);
	}

	/* A worker killed outright is replaced after a short delay. */
	CHECK(kill(kids[0], SIGKILL) == 0);
	for (tries = 0; tries < 500; tries++) {
		n = children_of(sup, again, nitems(again));
		if (n == 2 && again[0] != kids[0] && again[1] != kids[0])
			break;
		sleep_ms(10);
	}
	CHECK(n == 2 && again[0] != kids[0] && again[1] != kids[0]);
	for (i = 0; i < 4; i++) {
		fcgi(&r, NULL, 0,
		    ENV("REQUEST_METHOD=GET", "DOCUMENT_URI=/pid"));
		CHECK(r.status == 200);
		seen = (pid_t)jint(&r, "pid");
		CHECK(seen == again[0] || seen == again[1]);
		resp_free(&r);
	}

	/* SIGTERM to the supervisor: workers stop, it exits 0. */
	CHECK(kill(sup, SIGTERM) == 0);
	st = wait_exit(sup, 5000);
	CHECK(st != -1);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(kill(again[0], 0) == -1 && errno == ESRCH);
	CHECK(kill(again[1], 0) == -1 && errno == ESRCH);

	log = read_log();
	CHECK(strstr(log, "killed by signal 9") != NULL);
	/* Workers that stop on SIGTERM exit cleanly (leak checker too). */
	CHECK(strstr(log, "exited with status") == NULL);
	CHECK(strstr(log, "Sanitizer") == NULL);
	free(log);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	alarm(300);
	setenv("ENV_FILE", "/nonexistent/.env", 1);
	setup();
	test_echo();
	test_origin_and_client();
	test_path_info();
	test_routing();
	test_cors();
	test_auth();
	test_body();
	test_errors();
	test_log();
	test_fcgi_one();
	test_fcgi_prefork();
	teardown();
	printf("http: %d checks passed\n", checks);
	return 0;
}
