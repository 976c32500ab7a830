#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lib/check.h"
#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/err.h"
#include "lib/json.h"

/* What the fake relay does with its one connection. */
enum mode {
	M_WHO,        /* expects {"op":"who"}, answers, then junk */
	M_ECHO,       /* answers with the request line itself */
	M_SPLIT,      /* answers in pieces, with pauses */
	M_SILENT,     /* reads the request, never answers */
	M_CLOSE,      /* reads the request, closes */
	M_SLAM,       /* closes without reading anything */
	M_LONG,       /* a line longer than CTL_LINE_MAX */
	M_EXACT,      /* a reply line of exactly CTL_LINE_MAX bytes */
	M_NOT_OBJECT, /* a JSON array */
	M_GARBAGE,    /* not JSON */
	M_KICK,       /* expects {"op":"kick"}, answers */
	M_KICK_MUTE,  /* expects {"op":"kick"}, never answers */
	M_SIZE,       /* answers with the request's length */
};

static struct config cfg;
static char dir[] = "/tmp/ctl_test.XXXXXX";
static char sock[sizeof(dir) + 16];

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
put(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = send(fd, buf, len, MSG_NOSIGNAL)) <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void
puts_fd(int fd, const char *s)
{
	put(fd, s, strlen(s));
}

/* The request line, without its newline; NULL when the peer closed first. */
static char *
get_line(int fd, size_t *len)
{
	size_t cap = CTL_LINE_MAX + 2, n = 0;
	char *buf = malloc(cap), *nl;
	ssize_t r;

	if (buf == NULL)
		_exit(3);
	while (n < cap) {
		if ((r = recv(fd, buf + n, cap - n, 0)) <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			free(buf);
			return NULL;
		}
		n += (size_t)r;
		if ((nl = memchr(buf, '\n', n)) != NULL) {
			*nl = '\0';
			*len = (size_t)(nl - buf);
			return buf;
		}
	}
	free(buf);
	return NULL;
}

/* Wait for the client to hang up. */
static void
drain(int fd)
{
	char b[256];

	while (recv(fd, b, sizeof(b), 0) > 0)
		;
}

/* Serve one connection; the exit status says whether the request was as
 * expected (0) or not (2). */
static void
serve(int lfd, enum mode m)
{
	char *line = NULL, *big, num[64];
	size_t len = 0;
	int fd, status = 0;

	if ((fd = accept(lfd, NULL, NULL)) == -1)
		_exit(3);
	if (m != M_SLAM && (line = get_line(fd, &len)) == NULL)
		_exit(2);
	switch (m) {
	case M_WHO:
		if (strcmp(line, "{\"op\":\"who\"}") != 0)
			status = 2;
		puts_fd(fd, "{\"ok\":true,\"extensions\":{\"1000\":2},"
			    "\"total_clients\":2}\nJUNK AFTER");
		break;
	case M_ECHO:
		put(fd, line, len);
		puts_fd(fd, "\n");
		break;
	case M_SPLIT:
		puts_fd(fd, "{\"ok\":");
		usleep(30000);
		puts_fd(fd, "true,\"n\"");
		usleep(30000);
		puts_fd(fd, ":7}\n");
		break;
	case M_SILENT:
		break;
	case M_CLOSE:
	case M_SLAM:
		free(line);
		close(fd);
		_exit(0);
	case M_LONG:
	case M_EXACT:
		if ((big = malloc(CTL_LINE_MAX + 200)) == NULL)
			_exit(3);
		memset(big, 'a', CTL_LINE_MAX + 200);
		memcpy(big, "{\"ok\":true,\"pad\":\"", 18);
		if (m == M_EXACT) {
			memcpy(big + CTL_LINE_MAX - 2, "\"}\n", 3);
			put(fd, big, CTL_LINE_MAX + 1);
		} else {
			put(fd, big, CTL_LINE_MAX + 200);
		}
		free(big);
		break;
	case M_NOT_OBJECT:
		puts_fd(fd, "[1,2,3]\n");
		break;
	case M_GARBAGE:
		puts_fd(fd, "{\"ok\":tru\n");
		break;
	case M_KICK:
	case M_KICK_MUTE:
		if (strcmp(line, "{\"op\":\"kick\"}") != 0)
			status = 2;
		/* The kicker is usually gone by now: MSG_NOSIGNAL in put. */
		if (m == M_KICK)
			puts_fd(fd, "{\"ok\":true}\n");
		break;
	case M_SIZE:
		snprintf(num, sizeof(num), "{\"ok\":true,\"len\":%zu}\n", len);
		puts_fd(fd, num);
		break;
	}
	drain(fd);
	free(line);
	close(fd);
	_exit(status);
}

static int
listen_at(int backlog)
{
	struct sockaddr_un sa;
	int fd;

	unlink(sock);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	CHECK((fd = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(fd, backlog) == 0);
	return fd;
}

/* A fake relay in a child process, serving one connection. */
static pid_t
relay(enum mode m)
{
	int lfd = listen_at(4);
	pid_t pid;

	CHECK((pid = fork()) != -1);
	if (pid == 0)
		serve(lfd, m);
	close(lfd);
	return pid;
}

/* The child's exit status. */
static int
reap(pid_t pid)
{
	int st;

	CHECK(waitpid(pid, &st, 0) == pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static struct json_object *
op(const char *name)
{
	struct json_object *o = json_object_new_object();

	CHECK(o != NULL);
	jh_add_str(o, "op", name);
	return o;
}

/* ctl_call with a fresh {"op": name}; reply (or NULL) returned. */
static struct json_object *
call(const char *name, int timeout_ms, struct err *e)
{
	struct json_object *req = op(name), *reply = (void *)&reply;

	err_clear(e);
	if (ctl_call(&cfg, req, &reply, timeout_ms, e) == -1)
		CHECK(reply == NULL);
	json_object_put(req);
	return reply;
}

static void
test_path(void)
{
	struct config c;
	char buf[sizeof(c.run_dir) + 16];

	memset(&c, 0, sizeof(c));
	strcpy(c.run_dir, "./var/run");
	ctl_socket_path(&c, buf, sizeof(buf));
	CHECK(strcmp(buf, "./var/run/ctl.sock") == 0);
}

static void
test_round_trip(void)
{
	struct json_object *r, *req, *v, *msg;
	struct err e;
	const char *s;
	pid_t pid;

	pid = relay(M_WHO);
	r = call("who", 2000, &e);
	CHECK(r != NULL);
	CHECK(json_object_is_type(r, json_type_object));
	CHECK(json_object_object_get_ex(r, "ok", &v) &&
	      json_object_get_boolean(v));
	CHECK(json_object_object_get_ex(r, "total_clients", &v) &&
	      json_object_get_int(v) == 2);
	CHECK(json_object_object_get_ex(r, "extensions", &v) &&
	      json_object_object_get_ex(v, "1000", &v) &&
	      json_object_get_int(v) == 2);
	json_object_put(r);
	CHECK(reap(pid) == 0);

	/* Strings with newlines and non-ASCII survive the line framing. */
	pid = relay(M_ECHO);
	req = op("deliver");
	jh_add_str(req, "extension", "1001");
	msg = json_object_new_object();
	jh_add_str(msg, "text", "line one\nline two\r\n\"quoted\" caf\xc3\xa9");
	json_object_object_add(req, "message", msg);
	CHECK(ctl_call(&cfg, req, &r, 2000, &e) == 0);
	CHECK(json_object_object_get_ex(r, "message", &v));
	CHECK((s = jh_get_str(v, "text")) != NULL);
	CHECK(strcmp(s, "line one\nline two\r\n\"quoted\" caf\xc3\xa9") == 0);
	CHECK(strcmp(jh_get_str(r, "extension"), "1001") == 0);
	json_object_put(r);
	json_object_put(req);
	CHECK(reap(pid) == 0);

	/* A reply arriving in pieces. */
	pid = relay(M_SPLIT);
	r = call("stats", 2000, &e);
	CHECK(r != NULL);
	CHECK(json_object_object_get_ex(r, "n", &v) &&
	      json_object_get_int(v) == 7);
	json_object_put(r);
	CHECK(reap(pid) == 0);

	/* A reply line of exactly CTL_LINE_MAX bytes is fine. */
	pid = relay(M_EXACT);
	r = call("stats", 5000, &e);
	CHECK(r != NULL);
	CHECK(json_object_object_get_ex(r, "pad", &v) &&
	      json_object_get_string_len(v) == CTL_LINE_MAX - 20);
	json_object_put(r);
	CHECK(reap(pid) == 0);
}

static void
test_big_request(void)
{
	struct json_object *req, *r, *v;
	struct err e;
	size_t n = CTL_LINE_MAX - 100, len;
	char *pad;
	pid_t pid;

	CHECK((pad = malloc(n + 1)) != NULL);
	memset(pad, 'x', n);
	pad[n] = '\0';

	/* Near the limit: written in full. */
	pid = relay(M_SIZE);
	req = op("deliver");
	jh_add_str(req, "pad", pad);
	CHECK(jh_text(req, &len) != NULL);
	CHECK(len <= CTL_LINE_MAX);
	CHECK(ctl_call(&cfg, req, &r, 5000, &e) == 0);
	CHECK(json_object_object_get_ex(r, "len", &v) &&
	      (size_t)json_object_get_int64(v) == len);
	json_object_put(r);
	json_object_put(req);
	CHECK(reap(pid) == 0);

	/* Over the limit: refused before connecting. */
	req = op("deliver");
	jh_add_str(req, "pad", pad);
	jh_add_str(req, "more",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	r = (void *)&r;
	CHECK(ctl_call(&cfg, req, &r, 1000, &e) == -1);
	CHECK(r == NULL && e.code == ERR_INTERNAL);
	json_object_put(req);

	/*
	 * A relay that hangs up without reading: an error, not a SIGPIPE
	 * (the default action is in force here).
	 */
	signal(SIGPIPE, SIG_DFL);
	pid = relay(M_SLAM);
	req = op("deliver");
	jh_add_str(req, "pad", pad);
	CHECK(ctl_call(&cfg, req, &r, 2000, &e) == -1);
	CHECK(e.code == ERR_UPSTREAM);
	CHECK(strcmp(e.msg, "relay closed the connection") == 0);
	json_object_put(req);
	CHECK(reap(pid) == 0);
	free(pad);
}

static void
test_failures(void)
{
	struct config c;
	struct err e;
	struct sockaddr_un sa;
	int64_t t0, dt;
	pid_t pid;
	int fd, lfd, hold;

	/* No socket file. */
	unlink(sock);
	CHECK(call("who", 1000, &e) == NULL);
	CHECK(e.code == ERR_UPSTREAM);
	CHECK(strcmp(e.msg, "relay is not running") == 0);

	/* A stale socket file nobody listens on. */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	CHECK((fd = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	t0 = now_ms();
	CHECK(call("who", 1000, &e) == NULL);
	CHECK(now_ms() - t0 < 500);
	CHECK(e.code == ERR_UPSTREAM);
	CHECK(strcmp(e.msg, "relay is not running") == 0);
	unlink(sock);

	/* A relay that never answers: bounded by the timeout. */
	pid = relay(M_SILENT);
	t0 = now_ms();
	CHECK(call("who", 200, &e) == NULL);
	dt = now_ms() - t0;
	CHECK(dt >= 190 && dt < 1500);
	CHECK(e.code == ERR_UPSTREAM);
	CHECK(strcmp(e.msg, "relay did not answer") == 0);
	CHECK(reap(pid) == 0);

	/* A relay too busy to accept (backlog full): bounded too. */
	lfd = listen_at(0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	CHECK((hold = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	CHECK(connect(hold, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	t0 = now_ms();
	CHECK(call("who", 200, &e) == NULL);
	dt = now_ms() - t0;
	CHECK(dt >= 190 && dt < 1500);
	CHECK(e.code == ERR_UPSTREAM);
	CHECK(strcmp(e.msg, "relay did not answer") == 0);
	close(hold);
	close(lfd);

	/* Closed before answering. */
	pid = relay(M_CLOSE);
	CHECK(call("who", 1000, &e) == NULL);
	CHECK(e.code == ERR_UPSTREAM);
	CHECK(strcmp(e.msg, "relay closed the connection") == 0);
	CHECK(reap(pid) == 0);

	/* Over-long, non-object and malformed replies. */
	pid = relay(M_LONG);
	CHECK(call("who", 5000, &e) == NULL);
	CHECK(e.code == ERR_UPSTREAM);
	CHECK(strstr(e.msg, "longer than") != NULL);
	CHECK(reap(pid) == 0);
	pid = relay(M_NOT_OBJECT);
	CHECK(call("who", 1000, &e) == NULL);
	CHECK(e.code == ERR_UPSTREAM);
	CHECK(strcmp(e.msg, "relay sent an invalid reply") == 0);
	CHECK(reap(pid) == 0);
	pid = relay(M_GARBAGE);
	CHECK(call("who", 1000, &e) == NULL);
	CHECK(e.code == ERR_UPSTREAM);
	CHECK(strcmp(e.msg, "relay sent an invalid reply") == 0);
	CHECK(reap(pid) == 0);

	/* A run directory too long for a socket address. */
	memset(&c, 0, sizeof(c));
	memset(c.run_dir, 'd', 200);
	{
		struct json_object *req = op("who"), *r;

		CHECK(ctl_call(&c, req, &r, 100, &e) == -1);
		CHECK(r == NULL && e.code == ERR_INTERNAL);
		json_object_put(req);
	}
}

/*
 * Kicks never wait for the relay: not for its reply, not for a full
 * backlog, not for an absent socket. The bounds are generous; without the
 * fix a silent relay held a kick for its whole timeout.
 */
static void
test_kick(void)
{
	struct sockaddr_un sa;
	int64_t t0;
	pid_t pid;
	int lfd, hold;

	/* The line arrives whether or not the relay answers. */
	pid = relay(M_KICK);
	ctl_kick(&cfg);
	CHECK(reap(pid) == 0);
	pid = relay(M_KICK_MUTE);
	t0 = now_ms();
	ctl_kick(&cfg);
	CHECK(now_ms() - t0 < 100);
	CHECK(reap(pid) == 0);

	/* A relay that never even accepts: the line is dropped or queued,
	 * kick returns all the same. */
	lfd = listen_at(4);
	t0 = now_ms();
	ctl_kick(&cfg);
	CHECK(now_ms() - t0 < 100);
	close(lfd);

	/* Backlog full: given up at once, not retried. */
	lfd = listen_at(0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	CHECK((hold = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	CHECK(connect(hold, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	t0 = now_ms();
	ctl_kick(&cfg);
	CHECK(now_ms() - t0 < 100);
	close(hold);
	close(lfd);

	/* Absent relay. */
	unlink(sock);
	t0 = now_ms();
	ctl_kick(&cfg);
	CHECK(now_ms() - t0 < 100);

	/* A run directory too long for a socket address: nothing happens. */
	{
		struct config c;

		memset(&c, 0, sizeof(c));
		memset(c.run_dir, 'd', 200);
		ctl_kick(&c);
	}
}

int
main(void)
{
	CHECK(mkdtemp(dir) != NULL);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.run_dir, sizeof(cfg.run_dir), "%s", dir);

	test_path();
	test_round_trip();
	test_big_request();
	test_failures();
	test_kick();

	unlink(sock);
	rmdir(dir);
	printf("ctl: %d checks passed\n", checks);
	return 0;
}
