#ifndef LIB_LOG_H
#define LIB_LOG_H

#include <stdbool.h>

/*
 * Structured logging: one JSON object per line on stderr, nothing else
 * prints. Every line has "time" (RFC 3339, UTC, milliseconds), "level" and
 * "program". Callers never pass passwords, tokens or hashes.
 */

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Name the program for every later line; debug lines only when debug. */
void log_init(const char *program, bool debug);

/* A free-form line: {"msg": <formatted text>}. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * One line per finished HTTP request: request id, method, route pattern
 * (not the raw path, so ids stay out of the log), status, duration, and
 * err_msg when the request failed (NULL otherwise).
 */
void log_request(const char *request_id, const char *method, const char *route,
    int status, double duration_ms, const char *err_msg);

#endif
