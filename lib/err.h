#ifndef LIB_ERR_H
#define LIB_ERR_H

/*
 * Errors travel as a struct err passed last to any call that can fail. A
 * failing call fills it and returns -1 (or NULL); a succeeding call leaves it
 * untouched, so calls chain with ||. The code alone decides the HTTP status.
 */

enum err_code {
	ERR_OK = 0,
	ERR_INVALID,      /* 400: bad input; field names it when known */
	ERR_AUTH,         /* 401: no or bad credentials */
	ERR_FORBIDDEN,    /* 403 */
	ERR_NOTFOUND,     /* 404 */
	ERR_METHOD,       /* 405 */
	ERR_CONFLICT,     /* 409 */
	ERR_TOO_LARGE,    /* 413 */
	ERR_RATE_LIMITED, /* 429: retry_after_s says when */
	ERR_INTERNAL,     /* 500: msg goes to the log, never to the client */
	ERR_UPSTREAM,     /* 502: relay or Asterisk unreachable */
	ERR_BUSY,         /* 503: database locked past the timeout */
	ERR__MAX
};

struct err {
	enum err_code code;
	char field[32];    /* offending input field, or "" */
	char msg[256];     /* client text for 4xx; log text for 5xx */
	int retry_after_s; /* with ERR_RATE_LIMITED */
};

/* Fill e (when not NULL) with code and a printf-style message; returns -1. */
int err_set(struct err *e, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As err_set, naming the offending input field. Returns -1. */
int err_set_field(struct err *e, enum err_code code, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The HTTP status of a code (500 for anything unknown). */
int err_http_status(enum err_code code);

/* A short stable name of a code ("invalid", "auth", ...), for logs. */
const char *err_code_name(enum err_code code);

/* Reset e to ERR_OK with empty texts. */
void err_clear(struct err *e);

#endif
