#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <json-c/json.h>

#include "lib/auth.h"
#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/prefork.h"

#define HTTP_PATH_MAX     2048
#define HTTP_SEGS_MAX     32
#define HTTP_PARAMS_MAX   8
#define HTTP_HEADERS_MAX  4096
#define HTTP_CHILDREN_MAX PREFORK_MAX
#define HTTP_CHILDREN_DEF 2
#define HTTP_DRAIN_MS     250

#define JSON_TYPE     "application/json; charset=utf-8"
#define INTERNAL_BODY "{\"error\":\"Internal server error\"}"

#define CORS_METHODS "GET, POST, PUT, DELETE, OPTIONS"
#define CORS_HEADERS                                                           \
	"Origin, Content-Length, Content-Type, Authorization, X-Call-Method"
#define CORS_MAX_AGE "600"

static const char *const method_names[HTTP_METHOD__MAX] = {
	[HTTP_GET] = "GET",
	[HTTP_POST] = "POST",
	[HTTP_PUT] = "PUT",
	[HTTP_DELETE] = "DELETE",
	[HTTP_PATCH] = "PATCH",
	[HTTP_OPTIONS] = "OPTIONS",
	[HTTP_HEAD] = "HEAD",
};

/* Graceful stop of a worker: SIGTERM, SIGINT and SIGUSR1 (libfcgi's own). */
static const int stop_signals[] = { SIGTERM, SIGINT, SIGUSR1 };

static volatile sig_atomic_t http_stop;

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

struct http_param {
	const char *name; /* into the route pattern, not terminated */
	size_t name_len;
	const char *value;
};

struct http_qpair {
	const char *name, *value;
};

struct http_req {
	struct http *h;
	bool active;
	char **envp;
	FCGX_Stream *in, *out; /* NULL as plain CGI */
	struct timespec start;

	bool method_known;
	enum http_method method;
	const char *method_name;
	char request_id[65];
	const char *cors_origin; /* the request's Origin when allowed */

	bool path_ok;
	char path[HTTP_PATH_MAX + 1];
	char segbuf[HTTP_PATH_MAX + 1];
	char *segs[HTTP_SEGS_MAX];
	size_t nsegs;
	bool segs_over;

	const struct http_route *route;
	const char *log_route;
	unsigned flags;
	struct http_param params[HTTP_PARAMS_MAX];
	size_t nparams;

	bool query_parsed;
	char *qbuf;
	struct http_qpair *qpairs;
	size_t nq;

	size_t in_got;  /* body bytes read so far */
	int body_state; /* 0 unread, 1 parsed, -1 failed (body_err) */
	struct json_object *body;
	struct err body_err;

	bool authed;
	struct auth_user user;
	struct auth_claims claims;

	char headers[HTTP_HEADERS_MAX];
	size_t headers_len;
	bool replied;
	int status;
	bool has_err;
	char errmsg[256];
};

struct http {
	char program[64];
	const struct config *cfg;
	struct db *db;
	bool cgi, cgi_done;
	int64_t drain_until; /* ms, once stopping */
	FCGX_Request fcgx;
	sigset_t orig_mask; /* the mask http_open found */
	sigset_t wait_mask; /* waiting for a request: stop signals open */
	struct http_req req;
};

static void req_finish(struct http_req *r);

static const char *
param(const struct http_req *r, const char *name)
{
	return FCGX_GetParam(name, r->envp);
}

/*
 * The only two places where CGI and FastCGI differ: the body comes from
 * stdin or the FCGI_STDIN stream, the reply goes to stdout or FCGI_STDOUT.
 * io_read returns how many bytes it got before EOF (at most len), or -1.
 */
static ssize_t
io_read(struct http_req *r, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;
	int want;

	while (got < len) {
		if (r->in != NULL) {
			want = len - got > INT_MAX ? INT_MAX : (int)(len - got);
			n = FCGX_GetStr(buf + got, want, r->in);
			if (n < 0)
				return -1;
			got += (size_t)n;
			if (n < want)
				break;
			continue;
		}
		n = read(STDIN_FILENO, buf + got, len - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	r->in_got += got;
	return (ssize_t)got;
}

/*
 * Plain CGI: read what is left of the body before exiting. A CGI server
 * that passes the body on a socket (mod_cgid) sees an exit with unread
 * input as a reset and cuts the reply short; a reply sent before the body
 * was read (401, 405, 413) would never arrive whole. Never more than
 * CONTENT_LENGTH (RFC 3875 4.2), and not past a bound: a client that sends
 * that much for an error gets what its server makes of it.
 */
static void
cgi_drain(struct http_req *r)
{
	const char *cl = param(r, "CONTENT_LENGTH");
	unsigned long long len = 0;
	char buf[4096];
	ssize_t n;
	size_t i, want;

	if (cl == NULL)
		return;
	for (i = 0; cl[i] >= '0' && cl[i] <= '9' && i < 19; i++)
		len = len * 10 + (unsigned long long)(cl[i] - '0');
	if (cl[i] != '\0' || len > 16 * 1024 * 1024)
		return;
	while (r->in_got < len) {
		want = len - r->in_got < sizeof(buf) ? (size_t)(len - r->in_got)
						     : sizeof(buf);
		if ((n = io_read(r, buf, want)) <= 0)
			break;
	}
}

static int
io_write(struct http_req *r, const char *buf, size_t len)
{
	ssize_t n;
	int chunk;

	while (len > 0) {
		if (r->out != NULL) {
			chunk = len > INT_MAX ? INT_MAX : (int)len;
			if (FCGX_PutStr(buf, chunk, r->out) != chunk)
				return -1;
			n = chunk;
		} else {
			n = write(STDOUT_FILENO, buf, len);
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static const struct {
	int status;
	const char *text;
} reasons[] = {
	{ 200, "OK" },
	{ 201, "Created" },
	{ 202, "Accepted" },
	{ 204, "No Content" },
	{ 301, "Moved Permanently" },
	{ 302, "Found" },
	{ 304, "Not Modified" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 409, "Conflict" },
	{ 410, "Gone" },
	{ 413, "Payload Too Large" },
	{ 415, "Unsupported Media Type" },
	{ 422, "Unprocessable Entity" },
	{ 429, "Too Many Requests" },
	{ 500, "Internal Server Error" },
	{ 501, "Not Implemented" },
	{ 502, "Bad Gateway" },
	{ 503, "Service Unavailable" },
	{ 504, "Gateway Timeout" },
};

static const char *
reason(int status)
{
	size_t i;

	for (i = 0; i < nitems(reasons); i++)
		if (reasons[i].status == status)
			return reasons[i].text;
	if (status < 300)
		return "Success";
	if (status < 400)
		return "Redirection";
	if (status < 500)
		return "Client Error";
	return "Server Error";
}

/* Safe inside a header value: no control characters (CR, LF, NUL...). */
static bool
header_safe(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool
token_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/*
 * Decode %XX (and '+' as space when plus) from <src, n> into dst, which
 * has room for n + 1 bytes. A malformed escape stays as it is. Returns the
 * decoded length; a decoded NUL is kept, so callers can refuse it.
 */
static size_t
url_decode(char *dst, const char *src, size_t n, bool plus)
{
	size_t i, j = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (src[i] == '%' && i + 2 < n &&
		    (hi = jh_hex_digit(src[i + 1])) >= 0 &&
		    (lo = jh_hex_digit(src[i + 2])) >= 0) {
			dst[j++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (plus && src[i] == '+')
			dst[j++] = ' ';
		else
			dst[j++] = src[i];
	}
	dst[j] = '\0';
	return j;
}

static bool
has_pct00(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 2 < n; i++)
		if (s[i] == '%' && s[i + 1] == '0' && s[i + 2] == '0')
			return true;
	return false;
}

/*
 * The path to route. A CGI server (Apache, fcgiwrap, shared hosting) names
 * the program in SCRIPT_NAME (/cgi-bin/auth) and passes the route after it
 * as PATH_INFO (/health), already decoded: PATH_INFO wins when there is
 * one. Else DOCUMENT_URI (nginx, already decoded and normalized), else the
 * path part of REQUEST_URI (decoded here), else SCRIPT_NAME. Too long, NUL
 * or %00, or not absolute: not routable.
 */
static bool
req_path(struct http_req *r)
{
	char *seg, *slash;
	const char *v;
	size_t n, len;

	if (((v = param(r, "PATH_INFO")) != NULL && *v != '\0') ||
	    ((v = param(r, "DOCUMENT_URI")) != NULL && *v != '\0')) {
		n = strlen(v);
		if (n > HTTP_PATH_MAX || has_pct00(v, n))
			return false;
		memcpy(r->path, v, n + 1);
		len = n;
	} else if ((v = param(r, "REQUEST_URI")) != NULL && *v != '\0') {
		n = strcspn(v, "?#");
		if (n > HTTP_PATH_MAX || has_pct00(v, n))
			return false;
		len = url_decode(r->path, v, n, false);
		if (strlen(r->path) != len)
			return false;
	} else {
		if ((v = param(r, "SCRIPT_NAME")) == NULL || *v == '\0')
			v = "/";
		n = strlen(v);
		if (n > HTTP_PATH_MAX || has_pct00(v, n))
			return false;
		memcpy(r->path, v, n + 1);
		len = n;
	}
	if (r->path[0] != '/')
		return false;
	/* Segments of everything after the leading slash, split in place. */
	memcpy(r->segbuf, r->path + 1, len);
	r->nsegs = 0;
	for (seg = r->segbuf;; seg = slash + 1) {
		if (r->nsegs == HTTP_SEGS_MAX) {
			r->segs_over = true;
			break;
		}
		r->segs[r->nsegs++] = seg;
		if ((slash = strchr(seg, '/')) == NULL)
			break;
		*slash = '\0';
	}
	return true;
}

/* REQUEST_ID from nginx ($request_id) when sane, else 16 random hex. */
static void
req_id(struct http_req *r)
{
	static const char hex[] = "0123456789abcdef";
	static uint64_t fallback;
	const char *v = param(r, "REQUEST_ID");
	unsigned char rnd[8];
	size_t i, n;

	if (v != NULL && (n = strlen(v)) > 0 && n < sizeof(r->request_id)) {
		for (i = 0; i < n && token_char(v[i]); i++)
			;
		if (i == n) {
			memcpy(r->request_id, v, n + 1);
			return;
		}
	}
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
		/* Only an id for logs: uniqueness matters, not secrecy. */
		fallback +=
		    (uint64_t)prefork_now_ms() ^ ((uint64_t)getpid() << 32);
		fallback =
		    fallback * 6364136223846793005ULL + 1442695040888963407ULL;
		for (i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)(fallback >> (i * 8));
	}
	for (i = 0; i < sizeof(rnd); i++) {
		r->request_id[i * 2] = hex[rnd[i] >> 4];
		r->request_id[i * 2 + 1] = hex[rnd[i] & 0xf];
	}
	r->request_id[sizeof(rnd) * 2] = '\0';
}

static void
req_begin(struct http *h, char **envp, FCGX_Stream *in, FCGX_Stream *out)
{
	struct http_req *r = &h->req;
	const char *m, *origin;
	int i;

	memset(r, 0, sizeof(*r));
	r->h = h;
	r->active = true;
	r->envp = envp;
	r->in = in;
	r->out = out;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	r->method_name = "OTHER";
	if ((m = param(r, "REQUEST_METHOD")) != NULL)
		for (i = 0; i < HTTP_METHOD__MAX; i++)
			if (strcmp(m, method_names[i]) == 0) {
				r->method = (enum http_method)i;
				r->method_known = true;
				r->method_name = method_names[i];
				break;
			}
	req_id(r);
	r->path_ok = req_path(r);
	r->log_route = "(none)";
	origin = param(r, "HTTP_ORIGIN");
	if (origin != NULL && strlen(origin) <= 1024 && header_safe(origin) &&
	    h->cfg != NULL && config_cors_allowed(h->cfg, origin))
		r->cors_origin = origin;
}

static void
worker_stop(int sig)
{
	(void)sig;
	http_stop = 1;
}

/*
 * A worker keeps the stop signals blocked except while it waits for a
 * request (ppoll opens them atomically). So a signal never interrupts the
 * I/O of a request in hand (libfcgi does not retry EINTR), and there is no
 * window in which it arrives after the flag check but before the wait.
 */
static int
worker_signals(struct http *h, struct err *e)
{
	struct sigaction sa;
	sigset_t block;
	size_t i;

	http_stop = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = worker_stop;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (i = 0; i < nitems(stop_signals); i++) {
		if (sigaction(stop_signals[i], &sa, NULL) == -1)
			return err_set(e, ERR_INTERNAL, "sigaction: %s",
			    strerror(errno));
		sigaddset(&block, stop_signals[i]);
	}
	h->wait_mask = h->orig_mask;
	for (i = 0; i < nitems(stop_signals); i++)
		sigdelset(&h->wait_mask, stop_signals[i]);
	if (sigprocmask(SIG_BLOCK, &block, NULL) == -1)
		return err_set(e, ERR_INTERNAL, "sigprocmask: %s",
		    strerror(errno));
	return 0;
}

static int
children(int *n, struct err *e)
{
	const char *v = config_get("FCGI_CHILDREN");
	char *end;
	long l;

	*n = HTTP_CHILDREN_DEF;
	if (v == NULL || *v == '\0')
		return 0;
	errno = 0;
	l = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || l < 1 || l > HTTP_CHILDREN_MAX)
		return err_set_field(e, ERR_INVALID, "FCGI_CHILDREN",
		    "FCGI_CHILDREN must be a number from 1 to %d",
		    HTTP_CHILDREN_MAX);
	*n = (int)l;
	return 0;
}

struct http *
http_open(const char *program, const struct config *cfg, struct db *db,
    struct err *e)
{
	struct sigaction term, usr1;
	struct http *h;
	sigset_t stop;
	int rc, n, fl;
	size_t i;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	snprintf(h->program, sizeof(h->program), "%s",
	    program != NULL ? program : "");
	h->cfg = cfg;
	h->db = db;
	/*
	 * Stop signals stay blocked from here: FCGX_Init hooks SIGTERM and
	 * SIGUSR1 to a flag that would make every later accept fail, and
	 * our own handlers only come after the fork.
	 */
	sigemptyset(&stop);
	for (i = 0; i < nitems(stop_signals); i++)
		sigaddset(&stop, stop_signals[i]);
	if (sigprocmask(SIG_BLOCK, &stop, &h->orig_mask) == -1) {
		err_set(e, ERR_INTERNAL, "sigprocmask: %s", strerror(errno));
		free(h);
		return NULL;
	}
	sigaction(SIGTERM, NULL, &term);
	sigaction(SIGUSR1, NULL, &usr1);
	if ((rc = FCGX_Init()) != 0) {
		err_set(e, ERR_INTERNAL, "libfcgi init failed (%d)", rc);
		goto fail;
	}
	if (FCGX_IsCGI()) {
		/*
		 * libfcgi turned SIGTERM into a request to leave an accept
		 * loop; a CGI has none, and its server's SIGTERM must end it.
		 */
		sigaction(SIGTERM, &term, NULL);
		sigaction(SIGUSR1, &usr1, NULL);
		sigprocmask(SIG_SETMASK, &h->orig_mask, NULL);
		h->cgi = true;
		return h;
	}
	if (children(&n, e) == -1)
		goto fail;
	if (FCGX_InitRequest(&h->fcgx, STDIN_FILENO, 0) != 0) {
		err_set(e, ERR_INTERNAL, "libfcgi request init failed");
		goto fail;
	}
	/*
	 * Non-blocking listen socket: the workers that lose the race for a
	 * connection get EAGAIN and go back to waiting with the stop signals
	 * open, instead of sleeping in accept() with them blocked.
	 */
	if ((fl = fcntl(STDIN_FILENO, F_GETFL)) == -1 ||
	    fcntl(STDIN_FILENO, F_SETFL, fl | O_NONBLOCK) == -1) {
		err_set(e, ERR_INTERNAL, "listen socket: %s", strerror(errno));
		goto fail;
	}
	if (n > 1 && prefork_run(h->program, n, &h->orig_mask, stop_signals,
			 nitems(stop_signals), e) == -1)
		goto fail;
	if (worker_signals(h, e) == -1)
		goto fail;
	return h;
fail:
	sigprocmask(SIG_SETMASK, &h->orig_mask, NULL);
	free(h);
	return NULL;
}

void
http_set_db(struct http *h, struct db *db)
{
	if (h != NULL)
		h->db = db;
}

void
http_close(struct http *h)
{
	if (h == NULL)
		return;
	if (h->req.active)
		req_finish(&h->req);
	if (!h->cgi)
		FCGX_Free(&h->fcgx, 1);
	free(h);
}

/* Wait for and accept the next FastCGI request: 0, or -1 to stop. */
static int
fcgi_next(struct http *h)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 }, zero = { 0, 0 };
	struct pollfd pfd;
	int rc, n;

	for (;;) {
		/*
		 * Stopping: serve what already waits (for a short while),
		 * since connections left in the backlog are reset when the
		 * socket closes, which nginx turns into 502s.
		 */
		if (http_stop && h->drain_until == 0)
			h->drain_until = prefork_now_ms() + HTTP_DRAIN_MS;
		if (http_stop && prefork_now_ms() >= h->drain_until)
			return -1;
		/*
		 * With fastcgi_keep_conn the next request comes on the kept
		 * connection (libfcgi reads it before accepting anew).
		 */
		pfd.fd =
		    h->fcgx.ipcFd >= 0 ? h->fcgx.ipcFd : h->fcgx.listen_sock;
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = ppoll(&pfd, 1, http_stop ? &zero : NULL, &h->wait_mask);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_msg(LOG_ERROR, "http: poll: %s", strerror(errno));
			return -1;
		}
		if (n == 0 && h->fcgx.ipcFd >= 0) {
			FCGX_Free(&h->fcgx, 1); /* idle kept connection */
			continue;
		}
		if (n == 0)
			return -1;
		if ((rc = FCGX_Accept_r(&h->fcgx)) == 0)
			return 0;
		switch (-rc) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			log_msg(LOG_ERROR, "http: accept: %s", strerror(-rc));
			nanosleep(&pause, NULL);
			continue;
		}
		log_msg(LOG_ERROR, "http: accept failed (%d%s%s)", rc,
		    rc < 0 && rc > -4096 ? ": " : "",
		    rc < 0 && rc > -4096 ? strerror(-rc) : "");
		return -1;
	}
}

struct http_req *
http_accept(struct http *h)
{
	if (h == NULL)
		return NULL;
	if (h->req.active)
		req_finish(&h->req);
	if (h->cgi) {
		if (h->cgi_done)
			return NULL;
		h->cgi_done = true;
		req_begin(h, environ, NULL, NULL);
		return &h->req;
	}
	if (fcgi_next(h) == -1)
		return NULL;
	req_begin(h, h->fcgx.envp, h->fcgx.in, h->fcgx.out);
	return &h->req;
}

/* The reply's header block; a line that does not fit marks it over. */
struct hbuf {
	char b[HTTP_HEADERS_MAX * 2];
	size_t n;
	bool over;
};

static void hadd(struct hbuf *hb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
hadd(struct hbuf *hb, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(hb->b + hb->n, sizeof(hb->b) - hb->n, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= sizeof(hb->b) - hb->n)
		hb->over = true;
	else
		hb->n += (size_t)k;
}

/* Whether a handler set header name (http_set_header) for this reply. */
static bool
has_header(const struct http_req *r, const char *name)
{
	size_t n = strlen(name), i = 0;

	while (i + n < r->headers_len) {
		if (strncasecmp(r->headers + i, name, n) == 0 &&
		    r->headers[i + n] == ':')
			return true;
		while (i < r->headers_len && r->headers[i] != '\n')
			i++;
		i++;
	}
	return false;
}

/* A reply's length when its body follows in pieces (http_stream_*). */
#define LEN_STREAM SIZE_MAX

static void
reply(struct http_req *r, int status, const char *type, const char *body,
    size_t len)
{
	struct hbuf hb;
	bool nobody;

	if (!r->active)
		return;
	if (r->replied) {
		log_msg(LOG_ERROR, "http: bug: second reply (%d) to %s %s",
		    status, r->method_name, r->log_route);
		return;
	}
	if (status < 200 || status > 599 || type == NULL ||
	    strlen(type) > 256 || !header_safe(type)) {
		log_msg(LOG_ERROR, "http: bug: reply status %d or type refused",
		    status);
		status = 500;
		type = JSON_TYPE;
		body = INTERNAL_BODY;
		len = strlen(INTERNAL_BODY);
	}
	r->replied = true;
	r->status = status;
	nobody = status == 204 || status == 304;
	hb.n = 0;
	hb.over = false;
	hadd(&hb, "Status: %d %s\r\n", status, reason(status));
	if (!nobody && len == LEN_STREAM)
		hadd(&hb, "Content-Type: %s\r\n", type);
	else if (!nobody)
		hadd(&hb, "Content-Type: %s\r\nContent-Length: %zu\r\n", type,
		    len);
	hadd(&hb, "X-Request-Id: %s\r\n", r->request_id);
	/*
	 * Tokens, profiles, call logs, and errors that say whether an
	 * account exists: nothing a program answers belongs in a shared
	 * cache, nor in the browser's, unless the handler says otherwise.
	 */
	if (!has_header(r, "Cache-Control"))
		hadd(&hb, "Cache-Control: no-store\r\n");
	if (r->cors_origin != NULL)
		hadd(&hb,
		    "Access-Control-Allow-Origin: %s\r\n"
		    "Access-Control-Allow-Credentials: true\r\n"
		    "Vary: Origin\r\n",
		    r->cors_origin);
	hadd(&hb, "%.*s\r\n", (int)r->headers_len, r->headers);
	if (hb.over) {
		log_msg(LOG_ERROR, "http: reply headers too long");
		r->replied = false;
		r->cors_origin = NULL;
		r->headers_len = 0;
		reply(r, 500, JSON_TYPE, INTERNAL_BODY, strlen(INTERNAL_BODY));
		return;
	}
	if (io_write(r, hb.b, hb.n) == -1 ||
	    (!nobody && len > 0 && len != LEN_STREAM &&
		!(r->method_known && r->method == HTTP_HEAD) &&
		io_write(r, body, len) == -1))
		log_msg(LOG_WARN, "http: writing the reply failed: %s",
		    strerror(errno));
}

void
http_set_header(struct http_req *r, const char *name, const char *value)
{
	size_t i, nl, vl;

	if (r == NULL || !r->active || name == NULL || value == NULL)
		return;
	nl = strlen(name);
	vl = strlen(value);
	for (i = 0; i < nl && token_char(name[i]); i++)
		;
	if (nl == 0 || i != nl || !header_safe(value) ||
	    strcasecmp(name, "Status") == 0 ||
	    strcasecmp(name, "Content-Length") == 0) {
		log_msg(LOG_ERROR, "http: bug: header '%.64s' refused", name);
		return;
	}
	if (r->headers_len + nl + vl + 4 > sizeof(r->headers)) {
		log_msg(LOG_ERROR, "http: header '%.64s' dropped: no room",
		    name);
		return;
	}
	r->headers_len += (size_t)snprintf(r->headers + r->headers_len,
	    sizeof(r->headers) - r->headers_len, "%s: %s\r\n", name, value);
}

void
http_reply_raw(struct http_req *r, int status, const char *type,
    const char *buf, size_t len)
{
	if (r == NULL)
		return;
	reply(r, status, type != NULL ? type : "application/octet-stream", buf,
	    buf != NULL ? len : 0);
}

void
http_stream_begin(struct http_req *r, int status, const char *type)
{
	if (r == NULL)
		return;
	reply(r, status, type != NULL ? type : "application/octet-stream",
	    NULL, LEN_STREAM);
}

int
http_stream_write(struct http_req *r, const char *buf, size_t len)
{
	if (r == NULL || !r->active || !r->replied || r->status >= 500)
		return -1;
	if (r->method_known && r->method == HTTP_HEAD)
		return 0;
	if (io_write(r, buf, len) == -1) {
		log_msg(LOG_WARN, "http: writing the reply failed: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

void
http_reply_json(struct http_req *r, int status, struct json_object *obj)
{
	const char *text = NULL;
	size_t len = 0;

	if (r == NULL) {
		json_object_put(obj);
		return;
	}
	if (obj != NULL)
		text = jh_text(obj, &len);
	if (text == NULL) {
		log_msg(LOG_ERROR, "http: reply object missing");
		r->has_err = true;
		snprintf(r->errmsg, sizeof(r->errmsg), "reply not built");
		text = INTERNAL_BODY;
		len = strlen(text);
		status = 500;
	}
	reply(r, status, JSON_TYPE, text, len);
	json_object_put(obj);
}

void
http_reply_error(struct http_req *r, const struct err *e)
{
	struct json_object *o;
	char num[16], brief[sizeof(e->msg)];
	const char *msg;
	int status;

	if (r == NULL)
		return;
	if (e == NULL || e->code == ERR_OK) {
		log_msg(LOG_ERROR, "http: bug: error reply without an error");
		status = 500;
		msg = "Internal server error";
		r->has_err = true;
		snprintf(r->errmsg, sizeof(r->errmsg), "no error given");
	} else {
		status = err_http_status(e->code);
		r->has_err = true;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s",
		    e->msg[0] != '\0' ? e->msg : err_code_name(e->code));
		if (status < 500)
			msg = e->msg[0] != '\0' ? e->msg : reason(status);
		else if ((e->code == ERR_UPSTREAM || e->code == ERR_BUSY) &&
			 e->msg[0] != '\0') {
			/* "what failed: why" — the client gets what failed;
			 * why (a server's address, a socket path) is for the
			 * log. */
			snprintf(brief, sizeof(brief), "%.*s",
			    (int)strcspn(e->msg, ":"), e->msg);
			msg = brief;
		} else
			msg = "Internal server error";
	}
	if ((o = json_object_new_object()) == NULL) {
		http_reply_json(r, status, NULL);
		return;
	}
	/* Sorted keys, as the replaced backend's maps serialise. */
	jh_add_str(o, "error", msg);
	if (e != NULL && status < 500 && e->field[0] != '\0')
		jh_add_str(o, "field", e->field);
	if (r->flags & HTTP_SUCCESS_FALSE)
		jh_add_bool(o, "success", false);
	if (e != NULL && e->code == ERR_RATE_LIMITED) {
		snprintf(num, sizeof(num), "%d",
		    e->retry_after_s > 0 ? e->retry_after_s : 1);
		http_set_header(r, "Retry-After", num);
	}
	http_reply_json(r, status, o);
}

static void
req_finish(struct http_req *r)
{
	struct timespec end;
	double ms;

	if (!r->replied) {
		log_msg(LOG_ERROR, "http: bug: request finished unanswered");
		reply(r, 500, JSON_TYPE, INTERNAL_BODY, strlen(INTERNAL_BODY));
		r->has_err = true;
		snprintf(r->errmsg, sizeof(r->errmsg), "no reply");
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	ms = (double)(end.tv_sec - r->start.tv_sec) * 1e3 +
	     (double)(end.tv_nsec - r->start.tv_nsec) / 1e6;
	log_request(r->request_id, r->method_name, r->log_route, r->status, ms,
	    r->has_err ? r->errmsg : NULL);
	json_object_put(r->body);
	r->body = NULL;
	free(r->qbuf);
	free(r->qpairs);
	r->qbuf = NULL;
	r->qpairs = NULL;
	explicit_bzero(&r->claims, sizeof(r->claims));
	r->active = false;
	if (r->h->cgi)
		cgi_drain(r);
	else
		FCGX_Finish_r(&r->h->fcgx);
}

/*
 * Whether pattern matches the request path segment by segment; fills
 * params. The score ranks literal segments over :params from the left, so
 * "/logs/bulk" wins over "/logs/:id" whatever the table order.
 */
static bool
route_match(const struct http_req *r, const char *pattern,
    struct http_param *params, size_t *nparams, uint64_t *score)
{
	const char *p, *end;
	size_t i = 0, n, np = 0;
	uint64_t s = 0;

	if (r->segs_over || pattern == NULL || pattern[0] != '/')
		return false;
	for (p = pattern + 1;; p = end + 1) {
		end = strchrnul(p, '/');
		n = (size_t)(end - p);
		if (i >= r->nsegs)
			return false;
		if (n > 1 && p[0] == ':') {
			if (r->segs[i][0] == '\0' || np == HTTP_PARAMS_MAX)
				return false;
			params[np].name = p + 1;
			params[np].name_len = n - 1;
			params[np].value = r->segs[i];
			np++;
		} else {
			if (strlen(r->segs[i]) != n ||
			    memcmp(r->segs[i], p, n) != 0)
				return false;
			s |= (uint64_t)1 << (63 - i);
		}
		i++;
		if (*end == '\0')
			break;
	}
	if (i != r->nsegs)
		return false;
	*nparams = np;
	*score = s;
	return true;
}

static void
reply_preflight(struct http_req *r)
{
	if (r->cors_origin != NULL) {
		http_set_header(r, "Access-Control-Allow-Methods",
		    CORS_METHODS);
		http_set_header(r, "Access-Control-Allow-Headers",
		    CORS_HEADERS);
		http_set_header(r, "Access-Control-Max-Age", CORS_MAX_AGE);
	}
	reply(r, 204, JSON_TYPE, NULL, 0);
}

static void
reply_not_allowed(struct http_req *r, unsigned allow)
{
	struct err e;
	char buf[128];
	size_t n = 0;
	int i;

	allow |= 1u << HTTP_OPTIONS; /* the preflight answers any known path */
	buf[0] = '\0';
	for (i = 0; i < HTTP_METHOD__MAX; i++)
		if (allow & (1u << i))
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s",
			    n > 0 ? ", " : "", method_names[i]);
	http_set_header(r, "Allow", buf);
	err_set(&e, ERR_METHOD, "Method not allowed");
	http_reply_error(r, &e);
}

static int
req_auth(struct http_req *r, struct err *e)
{
	const char *hdr = param(r, "HTTP_AUTHORIZATION"), *token;

	if (hdr == NULL || *hdr == '\0')
		return err_set(e, ERR_AUTH, "Authorization header required");
	/* HTTP strips trailing blanks, so "Bearer " arrives as "Bearer". */
	if (strcmp(hdr, "Bearer") == 0)
		return err_set(e, ERR_AUTH, "Token required");
	if (strncmp(hdr, "Bearer ", 7) != 0 || strchr(hdr + 7, ' ') != NULL)
		return err_set(e, ERR_AUTH,
		    "Invalid authorization header format");
	token = hdr + 7;
	if (*token == '\0')
		return err_set(e, ERR_AUTH, "Token required");
	if (r->h->db == NULL || r->h->cfg == NULL)
		return err_set(e, ERR_INTERNAL, "no database to authenticate");
	/* Fills claims and user only on success; req_finish wipes them. */
	if (auth_token_verify(r->h->db, r->h->cfg, token, &r->claims, &r->user,
		e) == -1)
		return -1;
	r->authed = true;
	return 0;
}

void
http_dispatch(struct http_req *r, const struct http_route *routes,
    size_t nroutes)
{
	struct http_param params[HTTP_PARAMS_MAX];
	const struct http_route *best = NULL;
	uint64_t score, best_score = 0;
	unsigned allow = 0;
	bool snapshot = false;
	size_t i, np;
	struct err e;
	int rc;

	if (r == NULL || !r->active)
		return;
	err_clear(&e);
	if (!r->path_ok) {
		r->log_route = "(invalid path)";
		err_set(&e, ERR_INVALID, "Invalid request path");
		http_reply_error(r, &e);
		goto done;
	}
	for (i = 0; i < nroutes; i++) {
		if (!route_match(r, routes[i].pattern, params, &np, &score))
			continue;
		if (allow == 0)
			r->log_route = routes[i].pattern;
		allow |= 1u << routes[i].method;
		if (!r->method_known || routes[i].method != r->method)
			continue;
		if (best == NULL || score > best_score) {
			best = &routes[i];
			best_score = score;
			memcpy(r->params, params, np * sizeof(params[0]));
			r->nparams = np;
		}
	}
	if (allow == 0) {
		err_set(&e, ERR_NOTFOUND, "Not found");
		http_reply_error(r, &e);
		goto done;
	}
	if (best == NULL) {
		if (r->method_known && r->method == HTTP_OPTIONS)
			reply_preflight(r);
		else
			reply_not_allowed(r, allow);
		goto done;
	}
	r->route = best;
	r->log_route = best->pattern;
	r->flags = best->flags;
	/*
	 * A GET reads only: one snapshot covers the token check, the role
	 * gate and the handler's reads, and takes the WAL read lock once.
	 */
	if (best->method == HTTP_GET && r->h->db != NULL &&
	    !(best->flags & HTTP_NO_SNAPSHOT)) {
		if (db_begin_read(r->h->db, &e) == -1) {
			http_reply_error(r, &e);
			goto done;
		}
		snapshot = true;
	}
	if (best->access != HTTP_PUBLIC && req_auth(r, &e) == -1) {
		http_reply_error(r, &e);
		goto done;
	}
	if (best->access == HTTP_ADMIN && !r->user.is_admin) {
		err_set(&e, ERR_FORBIDDEN, "Admin access required");
		http_reply_error(r, &e);
		goto done;
	}
	if (best->handler == NULL)
		rc = err_set(&e, ERR_INTERNAL, "route %s has no handler",
		    best->pattern);
	else
		rc = best->handler(r, &e);
	if (rc == 0 && !r->replied) {
		log_msg(LOG_ERROR,
		    "http: bug: handler of %s %s returned without replying",
		    r->method_name, best->pattern);
		err_set(&e, ERR_INTERNAL, "handler returned without replying");
		http_reply_error(r, &e);
	} else if (rc != 0 && r->replied) {
		log_msg(LOG_WARN,
		    "http: handler of %s %s failed after reply: %s",
		    r->method_name, best->pattern, e.msg);
		r->has_err = true;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", e.msg);
	} else if (rc != 0) {
		if (e.code == ERR_OK)
			err_set(&e, ERR_INTERNAL,
			    "handler of %s failed silently", best->pattern);
		http_reply_error(r, &e);
	}
done:
	if (snapshot)
		db_rollback(
		    r->h->db); /* nothing to keep: GET handlers never write */
	req_finish(r);
}

enum http_method
http_method(const struct http_req *r)
{
	return r->method;
}

const char *
http_path(const struct http_req *r)
{
	return r->path;
}

const char *
http_param(const struct http_req *r, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < r->nparams; i++)
		if (r->params[i].name_len == n &&
		    memcmp(r->params[i].name, name, n) == 0)
			return r->params[i].value;
	return NULL;
}

/* Split QUERY_STRING once; pairs whose decoding holds a NUL are dropped. */
static void
query_parse(struct http_req *r)
{
	const char *qs = param(r, "QUERY_STRING"), *p, *amp, *eq;
	size_t len, cap = 1, off = 0, nl, vl;
	char *name, *value;

	r->query_parsed = true;
	if (qs == NULL || *qs == '\0')
		return;
	len = strlen(qs);
	for (p = qs; *p != '\0'; p++)
		cap += *p == '&';
	if ((r->qbuf = malloc(len + cap + 1)) == NULL ||
	    (r->qpairs = calloc(cap, sizeof(*r->qpairs))) == NULL) {
		log_msg(LOG_ERROR, "http: query: out of memory");
		return;
	}
	for (p = qs;; p = amp + 1) {
		amp = strchrnul(p, '&');
		eq = memchr(p, '=', (size_t)(amp - p));
		if (amp > p) {
			nl = (size_t)((eq != NULL ? eq : amp) - p);
			name = r->qbuf + off;
			if (url_decode(name, p, nl, true) != strlen(name))
				goto next;
			off += strlen(name) + 1;
			value = r->qbuf + off;
			vl = eq != NULL ? (size_t)(amp - eq - 1) : 0;
			if (url_decode(value, eq != NULL ? eq + 1 : "", vl,
				true) != strlen(value)) {
				off -= strlen(name) + 1;
				goto next;
			}
			off += strlen(value) + 1;
			r->qpairs[r->nq].name = name;
			r->qpairs[r->nq].value = value;
			r->nq++;
		}
	next:
		if (*amp == '\0')
			break;
	}
}

const char *
http_query(const struct http_req *cr, const char *name)
{
	/* Parsed on first use; the cache is not part of the request's value. */
	struct http_req *r = &cr->h->req;
	size_t i;

	if (r != cr)
		return NULL;
	if (!r->query_parsed)
		query_parse(r);
	for (i = 0; i < r->nq; i++)
		if (strcmp(r->qpairs[i].name, name) == 0)
			return r->qpairs[i].value;
	return NULL;
}

const char *
http_header(const struct http_req *r, const char *name)
{
	char key[128];
	size_t i, n = strlen(name);

	if (strcasecmp(name, "Content-Type") == 0)
		return param(r, "CONTENT_TYPE");
	if (strcasecmp(name, "Content-Length") == 0)
		return param(r, "CONTENT_LENGTH");
	if (n + 6 > sizeof(key))
		return NULL;
	memcpy(key, "HTTP_", 5);
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (c == '-')
			c = '_';
		else if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		key[5 + i] = c;
	}
	key[5 + n] = '\0';
	return param(r, key);
}

const char *
http_remote_addr(const struct http_req *r)
{
	const char *v = param(r, "REMOTE_ADDR");

	return v != NULL ? v : "";
}

static bool
host_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!((s[n] >= 'A' && s[n] <= 'Z') ||
			(s[n] >= 'a' && s[n] <= 'z') ||
			(s[n] >= '0' && s[n] <= '9') || s[n] == '.' ||
			s[n] == ':' || s[n] == '-' || s[n] == '[' ||
			s[n] == ']'))
			return false;
	return n > 0 && n <= 255;
}

void
http_origin(const struct http_req *r, char *buf, size_t size)
{
	const struct config *cfg = r->h->cfg;
	const char *https = param(r, "HTTPS"), *fwd, *host, *port;
	bool tls = false, trusted;
	char fhost[256];
	size_t n;

	if (size == 0)
		return;
	if (cfg != NULL && cfg->public_url[0] != '\0') {
		snprintf(buf, size, "%s", cfg->public_url);
		return;
	}
	/*
	 * Never from Host: anyone can send any Host, and a reply built from
	 * it (wss://evil.example/ws) is worth poisoning a cache with. The
	 * forwarded headers count only from a proxy the operator listed.
	 */
	trusted =
	    cfg != NULL && config_proxy_trusted(cfg, param(r, "REMOTE_ADDR"));
	if (https != NULL && *https != '\0' && strcasecmp(https, "off") != 0)
		tls = true;
	else if (trusted &&
		 (fwd = param(r, "HTTP_X_FORWARDED_PROTO")) != NULL) {
		n = strcspn(fwd, ", ");
		tls = n == 5 && strncasecmp(fwd, "https", 5) == 0;
	}
	/* The first entry: the host the client asked the first proxy for. */
	if (trusted && (fwd = param(r, "HTTP_X_FORWARDED_HOST")) != NULL &&
	    (n = strcspn(fwd, ",")) < sizeof(fhost)) {
		while (n > 0 && (fwd[n - 1] == ' ' || fwd[n - 1] == '\t'))
			n--;
		memcpy(fhost, fwd, n);
		fhost[n] = '\0';
		if (host_ok(fhost)) {
			snprintf(buf, size, "%s://%s", tls ? "https" : "http",
			    fhost);
			return;
		}
	}
	/* The address the connection came in on: the server's own. */
	host = param(r, "SERVER_ADDR");
	port = param(r, "SERVER_PORT");
	if (host == NULL || !host_ok(host))
		host = "localhost";
	if (port == NULL || strspn(port, "0123456789") != strlen(port) ||
	    *port == '\0' || strlen(port) > 5 ||
	    strcmp(port, tls ? "443" : "80") == 0)
		port = NULL;
	snprintf(buf, size, "%s://%s%s%s%s%s", tls ? "https" : "http",
	    strchr(host, ':') != NULL ? "[" : "", host,
	    strchr(host, ':') != NULL ? "]" : "", port != NULL ? ":" : "",
	    port != NULL ? port : "");
}

/* Whether <s, n> is an IPv4 or IPv6 address (text). */
static bool
addr_text_ok(const char *s, size_t n)
{
	unsigned char a[16];
	char tmp[64];

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET, tmp, a) == 1 ||
	       inet_pton(AF_INET6, tmp, a) == 1;
}

void
http_client_addr(const struct http_req *r, char *buf, size_t size)
{
	const struct config *cfg = r->h->cfg;
	const char *peer = param(r, "REMOTE_ADDR"), *xff, *p, *end, *s;
	size_t n;

	if (size == 0)
		return;
	if (peer == NULL)
		peer = "";
	snprintf(buf, size, "%s", peer);
	if (cfg == NULL || !config_proxy_trusted(cfg, peer) ||
	    (xff = param(r, "HTTP_X_FORWARDED_FOR")) == NULL)
		return;
	/*
	 * Right to left: each trusted proxy appended the address it saw, so
	 * the first one that is not a trusted proxy is the client. What is
	 * left of it the client wrote itself and proves nothing.
	 */
	for (end = xff + strlen(xff);; end = p - 1) {
		for (p = end; p > xff && p[-1] != ','; p--)
			;
		s = p;
		n = (size_t)(end - p);
		while (n > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			n--;
		}
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		/* buf keeps the last proxy when the list makes no sense. */
		if (!addr_text_ok(s, n) || n >= size)
			return;
		memcpy(buf, s, n);
		buf[n] = '\0';
		if (!config_proxy_trusted(cfg, buf) || p == xff)
			return;
	}
}

static int
body_fail(struct http_req *r, struct err *e, enum err_code code,
    const char *msg)
{
	err_set(&r->body_err, code, "%s", msg);
	r->body_state = -1;
	if (e != NULL)
		*e = r->body_err;
	return -1;
}

struct json_object *
http_body_json(struct http_req *r, struct err *e)
{
	const char *cl;
	struct json_object *obj;
	struct err pe;
	unsigned long long len = 0;
	ssize_t got;
	char *buf;
	size_t i;

	if (r->body_state == 1)
		return r->body;
	if (r->body_state == -1) {
		if (e != NULL)
			*e = r->body_err;
		return NULL;
	}
	if ((cl = param(r, "CONTENT_LENGTH")) != NULL && *cl != '\0') {
		for (i = 0; cl[i] >= '0' && cl[i] <= '9' && i < 19; i++)
			len = len * 10 + (unsigned long long)(cl[i] - '0');
		if (cl[i] != '\0') {
			body_fail(r, e, ERR_INVALID, "Invalid request format");
			return NULL;
		}
	}
	if (len > HTTP_BODY_MAX) {
		body_fail(r, e, ERR_TOO_LARGE, "Request body too large");
		return NULL;
	}
	if ((buf = malloc((size_t)len + 1)) == NULL) {
		body_fail(r, e, ERR_INTERNAL, "body: out of memory");
		return NULL;
	}
	got = io_read(r, buf, (size_t)len);
	if (got < 0 || (unsigned long long)got != len) {
		free(buf);
		log_msg(LOG_DEBUG, "http: body shorter than its length");
		body_fail(r, e, ERR_INVALID, "Invalid request format");
		return NULL;
	}
	err_clear(&pe);
	obj = jh_parse(buf, (size_t)len, &pe);
	free(buf);
	if (obj == NULL) {
		body_fail(r, e,
		    pe.code == ERR_INTERNAL ? ERR_INTERNAL : ERR_INVALID,
		    pe.code == ERR_INTERNAL ? pe.msg
					    : "Invalid request format");
		return NULL;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		body_fail(r, e, ERR_INVALID, "Invalid request format");
		return NULL;
	}
	r->body = obj;
	r->body_state = 1;
	return obj;
}

const struct auth_user *
http_user(const struct http_req *r)
{
	return r->authed ? &r->user : NULL;
}

const struct auth_claims *
http_claims(const struct http_req *r)
{
	return r->authed ? &r->claims : NULL;
}

int
http_authenticate(struct http_req *r, struct err *e)
{
	if (r->authed)
		return 0;
	return req_auth(r, e);
}

struct db *
http_db(const struct http_req *r)
{
	return r->h->db;
}

const struct config *
http_config(const struct http_req *r)
{
	return r->h->cfg;
}
