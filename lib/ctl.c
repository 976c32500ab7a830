#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/err.h"
#include "lib/json.h"

#define MSG_NOT_RUNNING "relay is not running"
#define MSG_NO_ANSWER   "relay did not answer"
#define MSG_CLOSED      "relay closed the connection"

void
ctl_socket_path(const struct config *cfg, char *buf, size_t size)
{
	snprintf(buf, size, "%s/ctl.sock", cfg->run_dir);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
left_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* 1 when fd is ready for events (or has an error to report), 0 at the
 * deadline, -1 when poll fails. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p;
	int rc;

	for (;;) {
		p.fd = fd;
		p.events = events;
		p.revents = 0;
		if ((rc = poll(&p, 1, left_ms(deadline))) > 0)
			return 1;
		if (rc == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int
ctl_addr(const struct config *cfg, struct sockaddr_un *sa, struct err *e)
{
	char path[sizeof(cfg->run_dir) + sizeof("/ctl.sock")];

	ctl_socket_path(cfg, path, sizeof(path));
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return err_set(e, ERR_INTERNAL, "control socket path too long");
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

static int
connect_to(const struct config *cfg, int64_t deadline, struct err *e)
{
	struct sockaddr_un sa;
	int fd, err = 0;
	socklen_t len;

	if (ctl_addr(cfg, &sa, e) == -1)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		return err_set(e, ERR_INTERNAL, "socket: %s", strerror(errno));
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			/* Backlog full: alive but busy, so retry. */
			if (left_ms(deadline) == 0)
				break;
			poll(NULL, 0,
			    left_ms(deadline) < 5 ? left_ms(deadline) : 5);
			continue;
		}
		if (errno == EINPROGRESS) {
			if (wait_fd(fd, POLLOUT, deadline) != 1)
				break;
			len = sizeof(err);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) ==
			    -1)
				err = errno;
			if (err == 0)
				return fd;
		} else {
			err = errno;
		}
		close(fd);
		if (err == ENOENT || err == ECONNREFUSED)
			return err_set(e, ERR_UPSTREAM, MSG_NOT_RUNNING);
		return err_set(e, ERR_UPSTREAM, MSG_NOT_RUNNING ": %s",
		    strerror(err));
	}
	close(fd);
	return err_set(e, ERR_UPSTREAM, MSG_NO_ANSWER);
}

static int
send_all(int fd, const char *buf, size_t len, int64_t deadline, struct err *e)
{
	ssize_t n;
	int rc;

	while (len > 0) {
		/* MSG_NOSIGNAL: a dead relay must not SIGPIPE us. */
		if ((n = send(fd, buf, len, MSG_NOSIGNAL)) >= 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return err_set(e, ERR_UPSTREAM, MSG_CLOSED);
		if ((rc = wait_fd(fd, POLLOUT, deadline)) == 0)
			return err_set(e, ERR_UPSTREAM, MSG_NO_ANSWER);
		if (rc == -1)
			return err_set(e, ERR_INTERNAL, "poll: %s",
			    strerror(errno));
	}
	return 0;
}

/*
 * Read up to the first newline. *line (malloc'd, the caller frees) gets the
 * bytes before it; whatever follows the newline is ignored, as there is one
 * reply per connection.
 */
static int
read_line(int fd, int64_t deadline, char **line, size_t *linelen, struct err *e)
{
	size_t cap = 4096, len = 0, scanned = 0;
	char *buf, *nl, *p;
	ssize_t n;
	int rc;

	if ((buf = malloc(cap)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	for (;;) {
		if (len == cap) {
			if (cap > CTL_LINE_MAX) {
				free(buf);
				return err_set(e, ERR_UPSTREAM,
				    "relay reply longer than %d bytes",
				    CTL_LINE_MAX);
			}
			/* Room for CTL_LINE_MAX bytes and the newline. */
			cap = cap * 2 > CTL_LINE_MAX + 1 ? CTL_LINE_MAX + 1
							 : cap * 2;
			if ((p = realloc(buf, cap)) == NULL) {
				free(buf);
				return err_set(e, ERR_INTERNAL,
				    "out of memory");
			}
			buf = p;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n > 0) {
			len += (size_t)n;
			if ((nl = memchr(buf + scanned, '\n', len - scanned)) !=
			    NULL) {
				*line = buf;
				*linelen = (size_t)(nl - buf);
				return 0;
			}
			scanned = len;
			continue;
		}
		if (n == 0) {
			free(buf);
			return err_set(e, ERR_UPSTREAM, MSG_CLOSED);
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			free(buf);
			return err_set(e, ERR_UPSTREAM, MSG_CLOSED);
		}
		if ((rc = wait_fd(fd, POLLIN, deadline)) != 1) {
			free(buf);
			if (rc == 0)
				return err_set(e, ERR_UPSTREAM, MSG_NO_ANSWER);
			return err_set(e, ERR_INTERNAL, "poll: %s",
			    strerror(errno));
		}
	}
}

int
ctl_call(const struct config *cfg, struct json_object *request,
    struct json_object **reply, int timeout_ms, struct err *e)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	char *out = NULL, *line = NULL;
	struct json_object *obj;
	size_t len, linelen = 0;
	const char *text;
	int fd, rc = -1;

	*reply = NULL;
	if ((text = jh_text(request, &len)) == NULL)
		return err_set(e, ERR_INTERNAL, "ctl: cannot serialize");
	if (len > CTL_LINE_MAX)
		return err_set(e, ERR_INTERNAL, "ctl: request of %zu bytes",
		    len);
	if ((out = malloc(len + 1)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	memcpy(out, text, len);
	out[len] = '\n';
	if ((fd = connect_to(cfg, deadline, e)) == -1) {
		free(out);
		return -1;
	}
	if (send_all(fd, out, len + 1, deadline, e) == 0 &&
	    read_line(fd, deadline, &line, &linelen, e) == 0) {
		obj = jh_parse(line, linelen, NULL);
		if (obj == NULL ||
		    !json_object_is_type(obj, json_type_object)) {
			json_object_put(obj);
			err_set(e, ERR_UPSTREAM, "relay sent an invalid reply");
		} else {
			*reply = obj;
			rc = 0;
		}
	}
	close(fd);
	free(line);
	free(out);
	return rc;
}

/*
 * Fire and forget: the relay polls the notify table anyway, so a kick is
 * only a shortcut. It is never worth a wait: a relay in the middle of a
 * large fanout serves its control socket late, and every REST write that
 * kicks would wait with it. So no reply is read, and a connect or send that
 * cannot complete at once (backlog full, socket buffer full) drops it.
 */
void
ctl_kick(const struct config *cfg)
{
	static const char line[] = "{\"op\":\"kick\"}\n";
	struct sockaddr_un sa;
	int fd;

	if (ctl_addr(cfg, &sa, NULL) == -1)
		return;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		return;
	/* One send of the whole line; MSG_NOSIGNAL: a dead relay must not
	 * SIGPIPE us. A partial send leaves half a line, which the relay
	 * drops when we close. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		(void)send(fd, line, sizeof(line) - 1,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}
