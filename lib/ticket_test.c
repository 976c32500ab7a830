#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/auth.h"
#include "lib/check.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/ticket.h"

#define NOW INT64_C(1900000000)

static void
exec(struct db *db, const char *text)
{
	struct err e = { 0 };

	CHECK(db_exec(db, text, &e) == 0);
}

static long long
count(struct db *db, const char *query)
{
	struct err e = { 0 };
	struct db_stmt *st;
	long long n;

	CHECK((st = db_stmt(db, query, &e)) != NULL);
	CHECK(db_row(db, st, &e) == 1);
	n = db_col_int(st, 0);
	db_reset(st);
	return n;
}

static struct auth_claims
claims_for(int64_t user_id, int64_t gen, int64_t exp)
{
	struct auth_claims c;

	memset(&c, 0, sizeof(c));
	c.user_id = user_id;
	c.gen = gen;
	c.exp = exp;
	return c;
}

static void
issue(struct db *db, const struct auth_claims *c, int64_t now, char *out)
{
	struct err e = { 0 };

	CHECK(ticket_issue(db, c, now, out, &e) == 0);
	CHECK(strlen(out) == TICKET_LEN);
	CHECK(strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789-_") == TICKET_LEN);
}

static void
refused(struct db *db, const char *ticket, int64_t now)
{
	struct auth_claims got = { .exp = -7 };
	struct auth_user u;
	struct err e = { 0 };

	CHECK(ticket_redeem(db, ticket, now, &u, &got, &e) == -1);
	CHECK(e.code == ERR_AUTH);
	CHECK(strcmp(e.msg, "Invalid ticket") == 0);
	CHECK(got.exp == -7);
}

static void
test_once(struct db *db)
{
	struct auth_claims c = claims_for(1, 0, NOW + 3600);
	char t[TICKET_LEN + 1], t2[TICKET_LEN + 1];
	struct auth_claims got;
	struct auth_user u;
	struct err e = { 0 };

	issue(db, &c, NOW, t);
	issue(db, &c, NOW, t2);
	CHECK(strcmp(t, t2) != 0);
	CHECK(ticket_redeem(db, t, NOW + 1, &u, &got, &e) == 0);
	CHECK(u.id == 1 && strcmp(u.username, "ann") == 0);
	CHECK(strcmp(u.extension, "1001") == 0);
	CHECK(got.user_id == 1 && got.gen == 0 && got.exp == NOW + 3600);
	/* Single use: the second try fails, the other ticket still works. */
	refused(db, t, NOW + 1);
	CHECK(ticket_redeem(db, t2, NOW + 2, &u, &got, &e) == 0);
	CHECK(count(db, "SELECT count(*) FROM ws_tickets") == 0);
}

static void
test_refusals(struct db *db)
{
	struct auth_claims c = claims_for(1, 0, NOW + 3600);
	struct auth_claims short_lived = claims_for(1, 0, NOW + 5);
	char t[TICKET_LEN + 1];

	refused(db, "", NOW);
	refused(db, "short", NOW);
	refused(db, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NOW);
	refused(db, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' OR '1'='1",
	    NOW);

	issue(db, &c, NOW, t); /* past its TTL */
	refused(db, t, NOW + TICKET_TTL_S + 1);
	CHECK(count(db, "SELECT count(*) FROM ws_tickets") == 0);

	issue(db, &short_lived, NOW, t); /* its token expired first */
	refused(db, t, NOW + 5);

	issue(db, &c, NOW, t); /* revoked between issue and redeem */
	exec(db, "INSERT INTO token_generations (user_id, generation) "
		 "VALUES (1, 1)");
	refused(db, t, NOW + 1);

	c.gen = 1; /* the user goes: its tickets go with it */
	issue(db, &c, NOW, t);
	exec(db, "DELETE FROM users WHERE id = 1");
	CHECK(count(db, "SELECT count(*) FROM ws_tickets") == 0);
	refused(db, t, NOW + 1);
}

static void
test_bounds(struct db *db)
{
	struct auth_claims c = claims_for(2, 0, 0);
	char t[TICKET_PER_USER + 4][TICKET_LEN + 1];
	struct auth_claims got;
	struct auth_user u;
	struct err e = { 0 };
	int i;

	for (i = 0; i < TICKET_PER_USER + 4; i++)
		issue(db, &c, NOW + i, t[i]);
	CHECK(count(db, "SELECT count(*) FROM ws_tickets WHERE user_id = 2") ==
	      TICKET_PER_USER);
	refused(db, t[0], NOW + 21);
	refused(db, t[3], NOW + 21);
	CHECK(ticket_redeem(db, t[TICKET_PER_USER + 3], NOW + 21, &u, &got,
		  &e) == 0);
	CHECK(got.exp == 0); /* a token without exp: the socket has no end */
	/* Issuing later prunes everything expired, any user's. */
	issue(db, &c, NOW + 1000, t[0]);
	CHECK(count(db, "SELECT count(*) FROM ws_tickets") == 1);
}

int
main(void)
{
	char dir[64];
	struct db *db = check_db_open(dir, sizeof(dir), "ticket.db");

	exec(db, "INSERT INTO users (id, username, email, password, extension) "
		 "VALUES (1, 'ann', 'ann@example.org', 'x', '1001'), "
		 "(2, 'bob', 'bob@example.org', 'x', '1002')");
	test_once(db);
	test_refusals(db);
	test_bounds(db);
	check_db_close(db, dir);
	printf("ticket: %d checks passed\n", checks);
	return 0;
}
