/*
 * WebSocket load client for the relay benchmarks: plain sockets, epoll, and
 * just enough of an RFC 6455 client (handshake, frame parsing, masked sends)
 * to talk to the relay through nginx. Control and results go over
 * stdin/stdout so tokens never appear on a command line.
 *
 *   wsfan fan HOST PORT MARKER
 *	stdin: one token per line, then an empty line. Opens one socket per
 *	token, at most MAX_INFLIGHT handshakes at a time, and prints
 *	"READY <open> <failed>" once every socket is welcomed or failed. For
 *	each socket it records when the first frame containing MARKER
 *	arrives (CLOCK_MONOTONIC, the clock of the coordinator too) and
 *	prints "RESULT <n> <min_ns> <p50_ns> <p99_ns> <max_ns> <closed>"
 *	once every open socket has one, or when stdin says "END". Exits at
 *	EOF on stdin, resetting its sockets.
 *
 *   wsfan rtt HOST PORT COUNT
 *	stdin: token A, token B, extension A, extension B, one per line.
 *	Connects both, prints "READY 2 0", reads "CALL <call id>" (the
 *	coordinator starts the call over REST), accepts it as B, bounces a
 *	webrtc_ice_candidate A->B->A COUNT times and prints
 *	"RTT <n> <p50_us> <p90_us> <p99_us> <max_us> <mean_us>".
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_INFLIGHT 64
#define BUF_MAX      (4 * 1024 * 1024)
#define TOKEN_MAX    2048
#define WARMUP       100

enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DONE };

struct conn {
	int fd;
	enum cstate state;
	size_t req_off;
	unsigned char *buf;
	size_t len, cap;
	bool welcomed;
	bool matched;
	int64_t t_match;
};

static struct sockaddr_in server;
static char host_hdr[64];

/* stdin, read by hand: stdio buffering would hide lines from epoll. */
static char in_buf[1 << 16];
static size_t in_len;

static void die(const char *what) __attribute__((noreturn));

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
die(const char *what)
{
	fprintf(stderr, "wsfan: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The next complete line from in_buf into out; 0, or -1 when none yet. */
static int
line_take(char *out, size_t size)
{
	char *nl;
	size_t n;

	if ((nl = memchr(in_buf, '\n', in_len)) == NULL)
		return -1;
	n = (size_t)(nl - in_buf);
	if (n >= size)
		n = size - 1;
	memcpy(out, in_buf, n);
	out[n] = '\0';
	if (n > 0 && out[n - 1] == '\r')
		out[n - 1] = '\0';
	n = (size_t)(nl - in_buf) + 1;
	memmove(in_buf, in_buf + n, in_len - n);
	in_len -= n;
	return 0;
}

/* Read more of stdin; 0 at EOF, -1 on EAGAIN, else bytes read. */
static ssize_t
line_fill(void)
{
	ssize_t n;

	if (in_len == sizeof(in_buf))
		return -1;
	n = read(0, in_buf + in_len, sizeof(in_buf) - in_len);
	if (n > 0)
		in_len += (size_t)n;
	return n;
}

/* A whole line, blocking. -1 at EOF. */
static int
line_read(char *out, size_t size)
{
	while (line_take(out, size) == -1) {
		ssize_t n = line_fill();

		if (n == 0)
			return -1;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			die("stdin");
	}
	return 0;
}

static int
request_build(char *out, size_t size, const char *token)
{
	int n;

	n = snprintf(out, size,
	    "GET /ws?token=%s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "\r\n",
	    token, host_hdr);
	return n > 0 && (size_t)n < size ? n : -1;
}

/* A masked client frame of opcode op around payload into out. */
static size_t
frame_build(unsigned char *out, int op, const unsigned char *p, size_t n)
{
	size_t off = 0, i;
	unsigned char key[4];
	uint32_t r = (uint32_t)random();

	out[off++] = (unsigned char)(0x80 | op);
	if (n < 126) {
		out[off++] = (unsigned char)(0x80 | n);
	} else if (n < 65536) {
		out[off++] = 0x80 | 126;
		out[off++] = (unsigned char)(n >> 8);
		out[off++] = (unsigned char)n;
	} else {
		out[off++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			out[off++] =
			    (unsigned char)((uint64_t)n >> (56 - 8 * i));
	}
	memcpy(key, &r, 4);
	memcpy(out + off, key, 4);
	off += 4;
	for (i = 0; i < n; i++)
		out[off + i] = p[i] ^ key[i & 3];
	return off + n;
}

static int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, c, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static void
buf_reserve(struct conn *c, size_t more)
{
	size_t cap = c->cap ? c->cap : 2048;
	unsigned char *nb;

	if (c->cap - c->len >= more)
		return;
	while (cap - c->len < more)
		cap *= 2;
	if (cap > BUF_MAX) {
		errno = EMSGSIZE;
		die("frame too large");
	}
	if ((nb = realloc(c->buf, cap)) == NULL)
		die("realloc");
	c->buf = nb;
	c->cap = cap;
}

/*
 * One complete frame at c->buf + *pos: opcode, payload and length; 0, or
 * -1 when more bytes are needed.
 */
static int
frame_next(struct conn *c, size_t *pos, int *op, unsigned char **p, size_t *n)
{
	unsigned char *b = c->buf + *pos;
	size_t avail = c->len - *pos, off = 2, len, i;

	if (avail < 2)
		return -1;
	len = b[1] & 0x7f;
	if (len == 126) {
		if (avail < 4)
			return -1;
		len = (size_t)b[2] << 8 | b[3];
		off = 4;
	} else if (len == 127) {
		if (avail < 10)
			return -1;
		len = 0;
		for (i = 0; i < 8; i++)
			len = len << 8 | b[2 + i];
		off = 10;
	}
	if (b[1] & 0x80)
		off += 4; /* servers do not mask; skip a key anyway */
	if (avail < off + len) {
		buf_reserve(c, off + len - avail);
		return -1;
	}
	*op = b[0] & 0x0f;
	*p = b + off;
	*n = len;
	*pos += off + len;
	return 0;
}

static void
buf_consume(struct conn *c, size_t pos)
{
	memmove(c->buf, c->buf + pos, c->len - pos);
	c->len -= pos;
}

static void
pong_send(int fd, const unsigned char *p, size_t n)
{
	unsigned char f[256];

	if (n > 125)
		n = 125;
	/* Best effort: a lost pong only costs a ping timeout later. */
	if (write(fd, f, frame_build(f, 0xA, p, n)) == -1)
		return;
}

static void
sock_tune(int fd)
{
	int one = 1;
	/* Reset on close: repeated runs do not pile up TIME_WAIT ports. */
	struct linger lg = { 1, 0 };

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* The end of the 101 response in c->buf: header length, or 0. */
static size_t
handshake_end(struct conn *c)
{
	unsigned char *e;

	e = memmem(c->buf, c->len, "\r\n\r\n", 4);
	if (e == NULL)
		return 0;
	if (c->len < 12 || memcmp(c->buf, "HTTP/1.1 101", 12) != 0) {
		fprintf(stderr, "wsfan: upgrade refused: %.*s\n",
		    (int)(strchr((char *)c->buf, '\r') - (char *)c->buf),
		    (char *)c->buf);
		return (size_t)-1;
	}
	return (size_t)(e - c->buf) + 4;
}

/* -- fan ------------------------------------------------------------------ */

struct fan {
	struct conn *c;
	char **tokens;
	size_t n, next, inflight;
	size_t welcomed, failed, matched, closed;
	const char *marker;
	size_t marker_len;
	int ep;
	bool ready_said, result_said;
};

static void
fan_fail(struct fan *f, struct conn *c)
{
	if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
		f->inflight--;
		f->failed++;
	} else if (c->state == C_OPEN) {
		f->closed++;
		if (!c->welcomed)
			f->failed++;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = C_DONE;
}

static void
fan_start_more(struct fan *f)
{
	struct epoll_event ev;
	struct conn *c;

	while (f->inflight < MAX_INFLIGHT && f->next < f->n) {
		c = &f->c[f->next];
		c->fd = socket(AF_INET,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd == -1)
			die("socket");
		sock_tune(c->fd);
		c->state = C_CONNECTING;
		f->inflight++;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLOUT | EPOLLIN;
		ev.data.u64 = f->next;
		f->next++;
		if (connect(c->fd, (struct sockaddr *)&server,
			sizeof(server)) == -1 &&
		    errno != EINPROGRESS) {
			fan_fail(f, c);
			continue;
		}
		if (epoll_ctl(f->ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
			die("epoll_ctl");
	}
}

static void
fan_writable(struct fan *f, struct conn *c, size_t idx)
{
	char req[TOKEN_MAX + 512];
	int err = 0, n;
	socklen_t sl = sizeof(err);
	ssize_t w;
	struct epoll_event ev;

	if (c->state != C_CONNECTING)
		return;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1 ||
	    err != 0) {
		fan_fail(f, c);
		return;
	}
	if ((n = request_build(req, sizeof(req), f->tokens[idx])) == -1) {
		fan_fail(f, c);
		return;
	}
	w = write(c->fd, req + c->req_off, (size_t)n - c->req_off);
	if (w == -1) {
		if (errno != EAGAIN)
			fan_fail(f, c);
		return;
	}
	c->req_off += (size_t)w;
	if (c->req_off < (size_t)n)
		return;
	c->state = C_HANDSHAKE;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = idx;
	epoll_ctl(f->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
fan_frames(struct fan *f, struct conn *c, int64_t ts)
{
	size_t pos = 0, n;
	unsigned char *p;
	int op;

	while (c->state == C_OPEN && frame_next(c, &pos, &op, &p, &n) == 0) {
		switch (op) {
		case 0x0:
		case 0x1:
		case 0x2:
			if (!c->welcomed) {
				c->welcomed = true;
				f->welcomed++;
			}
			if (!c->matched &&
			    memmem(p, n, f->marker, f->marker_len) != NULL) {
				c->matched = true;
				c->t_match = ts;
				f->matched++;
			}
			break;
		case 0x8:
			fan_fail(f, c);
			return;
		case 0x9:
			pong_send(c->fd, p, n);
			break;
		default:
			break;
		}
	}
	buf_consume(c, pos);
}

static void
fan_readable(struct fan *f, struct conn *c)
{
	ssize_t r;
	size_t hl;
	int64_t ts;

	if (c->state == C_CONNECTING)
		return; /* EPOLLOUT comes with it and handles errors */
	for (;;) {
		buf_reserve(c, 16384);
		r = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == EAGAIN)
			return;
		if (r <= 0) {
			fan_fail(f, c);
			return;
		}
		ts = now_ns();
		c->len += (size_t)r;
		if (c->state == C_HANDSHAKE) {
			if ((hl = handshake_end(c)) == 0)
				continue;
			if (hl == (size_t)-1) {
				fan_fail(f, c);
				return;
			}
			buf_consume(c, hl);
			c->state = C_OPEN;
			f->inflight--;
		}
		fan_frames(f, c, ts);
		if (c->state != C_OPEN)
			return;
	}
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
fan_result(struct fan *f)
{
	int64_t *t;
	size_t i, k = 0;

	if ((t = calloc(f->n + 1, sizeof(*t))) == NULL)
		die("calloc");
	for (i = 0; i < f->n; i++)
		if (f->c[i].matched)
			t[k++] = f->c[i].t_match;
	qsort(t, k, sizeof(*t), cmp_i64);
	if (k == 0)
		printf("RESULT 0 0 0 0 0 %zu\n", f->closed);
	else
		printf("RESULT %zu %lld %lld %lld %lld %zu\n", k,
		    (long long)t[0], (long long)t[k / 2],
		    (long long)t[k * 99 / 100], (long long)t[k - 1], f->closed);
	fflush(stdout);
	free(t);
	f->result_said = true;
}

static int
fan_main(const char *marker)
{
	struct fan f;
	struct epoll_event evs[256], ev;
	char line[TOKEN_MAX];
	size_t cap = 0, i;
	int k, nev;

	memset(&f, 0, sizeof(f));
	f.marker = marker;
	f.marker_len = strlen(marker);
	while (line_read(line, sizeof(line)) == 0 && line[0] != '\0') {
		if (f.n == cap) {
			cap = cap ? cap * 2 : 256;
			f.tokens = realloc(f.tokens, cap * sizeof(*f.tokens));
			if (f.tokens == NULL)
				die("realloc");
		}
		if ((f.tokens[f.n++] = strdup(line)) == NULL)
			die("strdup");
	}
	if ((f.c = calloc(f.n + 1, sizeof(*f.c))) == NULL)
		die("calloc");
	for (i = 0; i < f.n; i++)
		f.c[i].fd = -1;
	if ((f.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = UINT64_MAX;
	if (epoll_ctl(f.ep, EPOLL_CTL_ADD, 0, &ev) == -1)
		die("epoll_ctl stdin");
	fan_start_more(&f);
	for (;;) {
		if (!f.ready_said && f.welcomed + f.failed >= f.n) {
			printf("READY %zu %zu\n", f.welcomed, f.failed);
			fflush(stdout);
			f.ready_said = true;
		}
		if (f.ready_said && !f.result_said && f.matched > 0 &&
		    f.matched + f.closed >= f.welcomed)
			fan_result(&f);
		nev = epoll_wait(f.ep, evs, 256, 1000);
		if (nev == -1 && errno == EINTR)
			continue;
		if (nev == -1)
			die("epoll_wait");
		for (k = 0; k < nev; k++) {
			uint64_t idx = evs[k].data.u64;

			if (idx == UINT64_MAX) {
				ssize_t r = line_fill();

				if (r == 0)
					goto out;
				while (line_take(line, sizeof(line)) == 0)
					if (strcmp(line, "END") == 0 &&
					    !f.result_said)
						fan_result(&f);
				continue;
			}
			if (f.c[idx].state == C_DONE)
				continue;
			if (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
				fan_writable(&f, &f.c[idx], idx);
			if (f.c[idx].state != C_DONE &&
			    evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				fan_readable(&f, &f.c[idx]);
		}
		fan_start_more(&f);
	}
out:
	for (i = 0; i < f.n; i++) {
		if (f.c[i].fd >= 0)
			close(f.c[i].fd);
		free(f.c[i].buf);
		free(f.tokens[i]);
	}
	free(f.c);
	free(f.tokens);
	close(f.ep);
	return 0;
}

/* -- rtt (blocking) ------------------------------------------------------- */

static void
rtt_connect(struct conn *c, const char *token)
{
	char req[TOKEN_MAX + 512];
	int n;
	ssize_t r;
	size_t hl;

	memset(c, 0, sizeof(*c));
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket");
	sock_tune(c->fd);
	if (connect(c->fd, (struct sockaddr *)&server, sizeof(server)) == -1)
		die("connect");
	if ((n = request_build(req, sizeof(req), token)) == -1 ||
	    write_all(c->fd, req, (size_t)n) == -1)
		die("handshake");
	for (;;) {
		buf_reserve(c, 4096);
		if ((r = read(c->fd, c->buf + c->len, c->cap - c->len)) <= 0)
			die("handshake read");
		c->len += (size_t)r;
		if ((hl = handshake_end(c)) == (size_t)-1)
			exit(1);
		if (hl > 0)
			break;
	}
	buf_consume(c, hl);
	c->state = C_OPEN;
}

/* Block until a data frame containing needle; pings answered, others
 * skipped. */
static void
rtt_wait(struct conn *c, const char *needle)
{
	size_t pos = 0, n, nl = strlen(needle);
	unsigned char *p;
	int op;
	ssize_t r;

	for (;;) {
		while (frame_next(c, &pos, &op, &p, &n) == 0) {
			if (op == 0x8) {
				errno = ECONNRESET;
				die("closed by relay");
			}
			if (op == 0x9)
				pong_send(c->fd, p, n);
			if ((op == 0x1 || op == 0x0) &&
			    memmem(p, n, needle, nl) != NULL) {
				buf_consume(c, pos);
				return;
			}
		}
		buf_consume(c, pos);
		pos = 0;
		buf_reserve(c, 16384);
		r = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read");
		c->len += (size_t)r;
	}
}

static void
rtt_send(struct conn *c, const char *text)
{
	unsigned char f[8192];
	size_t n = strlen(text);

	if (n + 14 > sizeof(f)) {
		errno = EMSGSIZE;
		die("message");
	}
	if (write_all(c->fd, f, frame_build(f, 0x1, (const void *)text, n)) ==
	    -1)
		die("write");
}

static int
rtt_main(long count)
{
	char tok_a[TOKEN_MAX], tok_b[TOKEN_MAX], ext_a[32], ext_b[32];
	char line[512], call_id[256], msg[2048];
	struct conn a, b;
	int64_t *t, t0, sum = 0;
	long i, total = count + WARMUP;

	if (line_read(tok_a, sizeof(tok_a)) == -1 ||
	    line_read(tok_b, sizeof(tok_b)) == -1 ||
	    line_read(ext_a, sizeof(ext_a)) == -1 ||
	    line_read(ext_b, sizeof(ext_b)) == -1) {
		fprintf(stderr, "wsfan: rtt: short input\n");
		return 1;
	}
	rtt_connect(&a, tok_a);
	rtt_connect(&b, tok_b);
	explicit_bzero(tok_a, sizeof(tok_a));
	explicit_bzero(tok_b, sizeof(tok_b));
	rtt_wait(&a, "welcome");
	rtt_wait(&b, "welcome");
	printf("READY 2 0\n");
	fflush(stdout);
	if (line_read(line, sizeof(line)) == -1 ||
	    sscanf(line, "CALL %255s", call_id) != 1) {
		fprintf(stderr, "wsfan: rtt: no CALL line\n");
		return 1;
	}
	rtt_wait(&b, "webrtc_call_invitation");
	snprintf(msg, sizeof(msg),
	    "{\"type\":\"webrtc_call_accepted\",\"call_id\":\"%s\","
	    "\"to\":\"%s\",\"channel\":\"%s\"}",
	    call_id, ext_a, call_id);
	rtt_send(&b, msg);
	rtt_wait(&a, "webrtc_call_accepted");
	if ((t = calloc((size_t)total, sizeof(*t))) == NULL)
		die("calloc");
	for (i = 0; i < total; i++) {
		snprintf(msg, sizeof(msg),
		    "{\"type\":\"webrtc_ice_candidate\",\"to\":\"%s\","
		    "\"channel\":\"%s\",\"candidate\":{\"candidate\":"
		    "\"candidate:842163049 1 udp 1677729535 192.0.2.%ld "
		    "%ld typ srflx raddr 0.0.0.0 rport 0 generation 0 "
		    "ufrag sbch network-cost 999\",\"sdpMid\":\"0\","
		    "\"sdpMLineIndex\":0,\"usernameFragment\":\"sbch\"}}",
		    ext_b, call_id, i % 250 + 1, 40000 + i);
		t0 = now_ns();
		rtt_send(&a, msg);
		rtt_wait(&b, "webrtc_ice_candidate");
		snprintf(msg, sizeof(msg),
		    "{\"type\":\"webrtc_ice_candidate\",\"to\":\"%s\","
		    "\"channel\":\"%s\",\"candidate\":{\"candidate\":"
		    "\"candidate:1 1 udp 2122260223 198.51.100.%ld %ld typ "
		    "host generation 0\",\"sdpMid\":\"0\","
		    "\"sdpMLineIndex\":0}}",
		    ext_a, call_id, i % 250 + 1, 50000 + i);
		rtt_send(&b, msg);
		rtt_wait(&a, "webrtc_ice_candidate");
		t[i] = now_ns() - t0;
	}
	snprintf(msg, sizeof(msg),
	    "{\"type\":\"webrtc_call_ended\",\"call_id\":\"%s\",\"to\":\"%s\","
	    "\"channel\":\"%s\"}",
	    call_id, ext_b, call_id);
	rtt_send(&a, msg);
	rtt_wait(&b, "webrtc_call_ended");
	for (i = WARMUP; i < total; i++)
		sum += t[i];
	qsort(t + WARMUP, (size_t)count, sizeof(*t), cmp_i64);
	t += WARMUP;
	printf("RTT %ld %.1f %.1f %.1f %.1f %.1f\n", count,
	    (double)t[count / 2] / 1e3, (double)t[count * 90 / 100] / 1e3,
	    (double)t[count * 99 / 100] / 1e3, (double)t[count - 1] / 1e3,
	    (double)sum / (double)count / 1e3);
	fflush(stdout);
	free(t - WARMUP);
	close(a.fd);
	close(b.fd);
	free(a.buf);
	free(b.buf);
	return 0;
}

int
main(int argc, char *argv[])
{
	int port;

	if (argc != 5 ||
	    (strcmp(argv[1], "fan") != 0 && strcmp(argv[1], "rtt") != 0)) {
		fprintf(stderr, "usage: wsfan fan HOST PORT MARKER\n"
				"       wsfan rtt HOST PORT COUNT\n");
		return 2;
	}
	port = atoi(argv[3]);
	memset(&server, 0, sizeof(server));
	server.sin_family = AF_INET;
	server.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, argv[2], &server.sin_addr) != 1) {
		fprintf(stderr, "wsfan: %s: not an IPv4 address\n", argv[2]);
		return 2;
	}
	snprintf(host_hdr, sizeof(host_hdr), "%s:%d", argv[2], port);
	srandom((unsigned)now_ns());
	if (strcmp(argv[1], "fan") == 0)
		return fan_main(argv[4]);
	if (atol(argv[4]) < 1)
		return 2;
	return rtt_main(atol(argv[4]));
}
