#include <stdio.h>
#include <string.h>

#include "lib/check.h"
#include "lib/err.h"

/* Every code has its own status and name; nothing falls through to 500 by
 * accident. */
static void
test_table(void)
{
	static const struct {
		enum err_code code;
		int status;
		const char *name;
	} want[] = {
		{ ERR_OK, 200, "ok" },
		{ ERR_INVALID, 400, "invalid" },
		{ ERR_AUTH, 401, "auth" },
		{ ERR_FORBIDDEN, 403, "forbidden" },
		{ ERR_NOTFOUND, 404, "notfound" },
		{ ERR_METHOD, 405, "method" },
		{ ERR_CONFLICT, 409, "conflict" },
		{ ERR_TOO_LARGE, 413, "too_large" },
		{ ERR_RATE_LIMITED, 429, "rate_limited" },
		{ ERR_INTERNAL, 500, "internal" },
		{ ERR_UPSTREAM, 502, "upstream" },
		{ ERR_BUSY, 503, "busy" },
	};
	size_t i;

	CHECK(sizeof(want) / sizeof(want[0]) == ERR__MAX);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		CHECK(err_http_status(want[i].code) == want[i].status);
		CHECK(strcmp(err_code_name(want[i].code), want[i].name) == 0);
	}
	CHECK(err_http_status(ERR__MAX) == 500);
	CHECK(err_http_status((enum err_code) - 1) == 500);
	CHECK(strcmp(err_code_name(ERR__MAX), "internal") == 0);
}

static void
test_set(void)
{
	struct err e;
	char longer[400];

	err_clear(&e);
	CHECK(e.code == ERR_OK && e.msg[0] == '\0' && e.field[0] == '\0');
	CHECK(
	    err_set(&e, ERR_CONFLICT, "extension '%s' is taken", "1001") == -1);
	CHECK(e.code == ERR_CONFLICT && e.field[0] == '\0');
	CHECK(strcmp(e.msg, "extension '1001' is taken") == 0);

	/* A field, and a later err_set without one clears it. */
	CHECK(err_set_field(&e, ERR_INVALID, "email", "Invalid request %s",
		  "format") == -1);
	CHECK(strcmp(e.field, "email") == 0);
	CHECK(strcmp(e.msg, "Invalid request format") == 0);
	e.retry_after_s = 7;
	err_set(&e, ERR_AUTH, "again");
	CHECK(e.field[0] == '\0' && e.retry_after_s == 0);

	/* Long texts are cut, never overflow. */
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	err_set_field(&e, ERR_INVALID, longer, "%s", longer);
	CHECK(strlen(e.msg) == sizeof(e.msg) - 1);
	CHECK(strlen(e.field) == sizeof(e.field) - 1);

	/* No err to fill is fine: callers may not care why. */
	CHECK(err_set(NULL, ERR_INTERNAL, "ignored") == -1);
	CHECK(err_set_field(NULL, ERR_INVALID, "f", "ignored") == -1);
}

int
main(void)
{
	test_table();
	test_set();
	printf("err: %d checks passed\n", checks);
	return 0;
}
