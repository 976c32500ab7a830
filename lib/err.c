#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

static const struct {
	int status;
	const char *name;
} codes[ERR__MAX] = {
	[ERR_OK] = { 200, "ok" },
	[ERR_INVALID] = { 400, "invalid" },
	[ERR_AUTH] = { 401, "auth" },
	[ERR_FORBIDDEN] = { 403, "forbidden" },
	[ERR_NOTFOUND] = { 404, "notfound" },
	[ERR_METHOD] = { 405, "method" },
	[ERR_CONFLICT] = { 409, "conflict" },
	[ERR_TOO_LARGE] = { 413, "too_large" },
	[ERR_RATE_LIMITED] = { 429, "rate_limited" },
	[ERR_INTERNAL] = { 500, "internal" },
	[ERR_UPSTREAM] = { 502, "upstream" },
	[ERR_BUSY] = { 503, "busy" },
};

static int
err_vset(struct err *e, enum err_code code, const char *field, const char *fmt,
    va_list ap)
{
	if (e == NULL)
		return -1;
	e->code = code;
	snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	e->retry_after_s = 0;
	return -1;
}

int
err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(e, code, NULL, fmt, ap);
	va_end(ap);
	return -1;
}

int
err_set_field(struct err *e, enum err_code code, const char *field,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(e, code, field, fmt, ap);
	va_end(ap);
	return -1;
}

int
err_http_status(enum err_code code)
{
	if ((int)code < 0 || code >= ERR__MAX || codes[code].name == NULL)
		return 500;
	return codes[code].status;
}

const char *
err_code_name(enum err_code code)
{
	if ((int)code < 0 || code >= ERR__MAX || codes[code].name == NULL)
		return "internal";
	return codes[code].name;
}

void
err_clear(struct err *e)
{
	memset(e, 0, sizeof(*e));
}
