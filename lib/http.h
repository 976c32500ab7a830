#ifndef LIB_HTTP_H
#define LIB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth_claims;
struct auth_user;
struct config;
struct db;
struct err;
struct json_object;

/*
 * HTTP over FastCGI (or plain CGI when not started under a FastCGI manager):
 * the accept loop, routing with :params, auth and role gates, bodies with a
 * cap, and every reply. One JSON error path: {"error": msg} plus "field" when
 * known, plus "success": false on routes flagged HTTP_SUCCESS_FALSE.
 */

#define HTTP_BODY_MAX (64 * 1024)

enum http_method {
	HTTP_GET,
	HTTP_POST,
	HTTP_PUT,
	HTTP_DELETE,
	HTTP_PATCH,
	HTTP_OPTIONS,
	HTTP_HEAD,
	HTTP_METHOD__MAX
};

enum http_access {
	HTTP_PUBLIC, /* no token */
	HTTP_USER,   /* valid, unrevoked token of an existing user */
	HTTP_ADMIN,  /* as HTTP_USER, and role admin in the database */
};

#define HTTP_SUCCESS_FALSE 0x1u /* error bodies carry "success": false */
/* A GET that waits for rows others commit (a long-poll): no read snapshot
 * around it, which would hide them; it reads in snapshots of its own. */
#define HTTP_NO_SNAPSHOT 0x2u

struct http;
struct http_req;

/* Handlers reply through http_reply_* and return 0, or return -1 with e set
 * and write nothing: dispatch then sends the error reply. GET handlers run
 * inside one read transaction and must not write. */
typedef int (*http_handler)(struct http_req *req, struct err *e);

struct http_route {
	enum http_method method;
	const char *pattern; /* "/protected/users/:extension" */
	enum http_access access;
	http_handler handler;
	unsigned flags;
};

/*
 * The server side of one program. cfg and db are borrowed for its lifetime.
 * Under FastCGI it accepts on the socket inherited as fd 0 (spawn-fcgi,
 * systemd); as plain CGI it serves the one request in the environment.
 * Under FastCGI with FCGI_CHILDREN > 1 (default 2, at most 64) it forks the
 * workers here and returns only in them; the first process stays inside to
 * supervise (restarts a worker that dies, forwards SIGTERM/SIGINT, then
 * exits 0 itself). So call it before opening anything that must not be
 * shared across fork: pass db NULL and give the database with http_set_db.
 * In a worker SIGTERM/SIGINT make http_accept return NULL once the request
 * in hand is finished.
 */
struct http *http_open(const char *program, const struct config *cfg,
    struct db *db, struct err *e);
void http_close(struct http *h);

/* The database handlers get from http_db (borrowed). */
void http_set_db(struct http *h, struct db *db);

/* The next request, or NULL when there are no more (CGI: after the first). */
struct http_req *http_accept(struct http *h);

/*
 * Route req: 404 for an unknown path, 405 (with Allow) for a known path with
 * another method, CORS preflight for OPTIONS, 401/403 by the route's access,
 * then the handler; a handler's -1 becomes the error reply. Logs one line and
 * finishes the request (req is invalid afterwards).
 */
void http_dispatch(struct http_req *req, const struct http_route *routes,
    size_t nroutes);

/* Request data, borrowed until the request finishes. */
enum http_method http_method(const struct http_req *req);
const char *http_path(const struct http_req *req);
const char *http_param(const struct http_req *req, const char *name);
const char *http_query(const struct http_req *req, const char *name);
/* Request header by its HTTP name ("X-Call-Method"), or NULL. */
const char *http_header(const struct http_req *req, const char *name);
const char *http_remote_addr(const struct http_req *req);
/*
 * The public origin, "http[s]://host[:port]", into buf: PUBLIC_URL (or
 * PUBLIC_HOST) when configured; else, from a peer in TRUSTED_PROXIES,
 * X-Forwarded-Proto and X-Forwarded-Host; else the address and port the
 * request came in on (SERVER_ADDR, SERVER_PORT; scheme from HTTPS). Never
 * from Host, which any client sets.
 */
void http_origin(const struct http_req *req, char *buf, size_t size);

/*
 * The client's address into buf: REMOTE_ADDR, or, when that peer is in
 * TRUSTED_PROXIES, the right-most X-Forwarded-For entry that is not
 * (left-most when all are). Anything else a client sends is ignored.
 */
void http_client_addr(const struct http_req *req, char *buf, size_t size);

/*
 * The body as a JSON object: ERR_TOO_LARGE past HTTP_BODY_MAX, ERR_INVALID
 * ("Invalid request format") when it is not one JSON object. Borrowed.
 */
struct json_object *http_body_json(struct http_req *req, struct err *e);

/* The caller on HTTP_USER/HTTP_ADMIN routes (role as in the database) and
 * the claims of its token; NULL on public routes. */
const struct auth_user *http_user(const struct http_req *req);
const struct auth_claims *http_claims(const struct http_req *req);

/*
 * Authenticate from the Authorization header on a public route (refresh):
 * fills what http_user/http_claims return. ERR_AUTH with the contract's texts.
 */
int http_authenticate(struct http_req *req, struct err *e);

struct db *http_db(const struct http_req *req);
const struct config *http_config(const struct http_req *req);

/* Add a response header before replying. Every reply carries
 * "Cache-Control: no-store" unless a handler sets Cache-Control itself. */
void http_set_header(struct http_req *req, const char *name, const char *value);

/* Reply with obj serialized; takes ownership of obj. */
void http_reply_json(struct http_req *req, int status, struct json_object *obj);

/* Reply with a raw body (CSV, downloads). The caller keeps buf. */
void http_reply_raw(struct http_req *req, int status, const char *type,
    const char *buf, size_t len);

/*
 * A reply whose body follows in pieces (exports, downloads): the status and
 * headers now, without Content-Length, then http_stream_write as often as
 * needed; the request's end ends the body. Memory does not grow with the
 * body. A HEAD request gets the headers alone.
 */
void http_stream_begin(struct http_req *req, int status, const char *type);

/* Write a piece of the body: 0, or -1 when the client has gone (stop). */
int http_stream_write(struct http_req *req, const char *buf, size_t len);

/* The error reply for e (what dispatch sends for a handler's -1). */
void http_reply_error(struct http_req *req, const struct err *e);

#endif
