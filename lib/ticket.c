/*
 * ticket: single-use WebSocket tickets (see ticket.h). The ticket text is
 * the row's key; it is as strong as a password and lives for seconds, and
 * redemption deletes it in the same statement that reads it, so two
 * upgrades presenting one ticket cannot both win.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lib/auth.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/password.h"
#include "lib/ticket.h"

enum q { Q_PRUNE, Q_TRIM, Q_INSERT, Q_TAKE, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_PRUNE] = "DELETE FROM ws_tickets WHERE expires_at < ?1",
	/* Keep the newest TICKET_PER_USER - 1, making room for one more. */
	[Q_TRIM] =
	    "DELETE FROM ws_tickets WHERE user_id = ?1 AND ticket NOT IN "
	    "(SELECT ticket FROM ws_tickets WHERE user_id = ?1 "
	    "ORDER BY expires_at DESC, rowid DESC LIMIT ?2)",
	[Q_INSERT] = "INSERT INTO ws_tickets "
		     "(ticket, user_id, generation, token_exp, expires_at) "
		     "VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_TAKE] = "DELETE FROM ws_tickets WHERE ticket = ?1 "
		   "RETURNING user_id, generation, token_exp, expires_at",
};

int
ticket_issue(struct db *db, const struct auth_claims *c, int64_t now, char *out,
    struct err *e)
{
	struct db_stmt *st;

	if (password_random(out, TICKET_LEN, e) == -1)
		return -1;
	if ((st = db_stmt(db, sql[Q_PRUNE], e)) == NULL)
		return -1;
	db_bind_int(st, 1, now);
	if (db_done(db, st, e) == -1 ||
	    (st = db_stmt(db, sql[Q_TRIM], e)) == NULL)
		return -1;
	db_bind_int(st, 1, c->user_id);
	db_bind_int(st, 2, TICKET_PER_USER - 1);
	if (db_done(db, st, e) == -1 ||
	    (st = db_stmt(db, sql[Q_INSERT], e)) == NULL)
		return -1;
	db_bind_textn(st, 1, out, (size_t)TICKET_LEN);
	db_bind_int(st, 2, c->user_id);
	db_bind_int(st, 3, c->gen);
	db_bind_int(st, 4, c->exp);
	db_bind_int(st, 5, now + TICKET_TTL_S);
	return db_done(db, st, e);
}

/* One answer for every refusal: a caller learns nothing by probing. */
static int
refuse(struct err *e)
{
	return err_set(e, ERR_AUTH, "Invalid ticket");
}

int
ticket_redeem(struct db *db, const char *ticket, int64_t now,
    struct auth_user *u, struct auth_claims *c, struct err *e)
{
	struct auth_claims got;
	int64_t expires_at;
	struct db_stmt *st;
	int rc;

	if (strlen(ticket) != TICKET_LEN)
		return refuse(e);
	if ((st = db_stmt(db, sql[Q_TAKE], e)) == NULL)
		return -1;
	db_bind_textn(st, 1, ticket, (size_t)TICKET_LEN);
	if ((rc = db_row(db, st, e)) == -1)
		return -1;
	if (rc == 0)
		return refuse(e);
	memset(&got, 0, sizeof(got));
	got.user_id = db_col_int(st, 0);
	got.gen = db_col_int(st, 1);
	got.exp = db_col_int(st, 2);
	expires_at = db_col_int(st, 3);
	/* Finish the DELETE before anything else runs on this connection. */
	if ((rc = db_row(db, st, e)) != 0)
		return rc == -1 ? -1 : refuse(e);
	if (now > expires_at || (got.exp != 0 && now >= got.exp))
		return refuse(e);
	if (auth_user_current(db, got.user_id, got.gen, u, e) == -1)
		return e->code == ERR_AUTH ? refuse(e) : -1;
	*c = got;
	return 0;
}
