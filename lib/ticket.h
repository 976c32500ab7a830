#ifndef LIB_TICKET_H
#define LIB_TICKET_H

#include <stdint.h>

struct auth_claims;
struct auth_user;
struct db;
struct err;

/*
 * WebSocket tickets: a short-lived, single-use stand-in for a token in the
 * upgrade URL (/ws?ticket=...). Issued over REST to a token's holder,
 * redeemed once by the relay. A ticket is bound to the token's user,
 * generation and expiry, so revocation and expiry still apply to it.
 */

#define TICKET_LEN      43 /* URL-safe characters: 258 random bits */
#define TICKET_TTL_S    30
#define TICKET_PER_USER 16 /* unredeemed at once; the oldest go first */

/*
 * Issue a ticket for the holder of token claims c (user, gen, exp) at unix
 * time now, into out (TICKET_LEN + 1 bytes). Runs inside the caller's
 * write transaction when there is one; prunes expired tickets and the
 * user's oldest past TICKET_PER_USER. On failure nothing is written.
 */
int ticket_issue(struct db *db, const struct auth_claims *c, int64_t now,
    char *out, struct err *e);

/*
 * Redeem ticket at unix time now: it is consumed whatever the outcome, and
 * accepted only when it exists, has not expired, its token has not, and
 * its user's generation is still the one it was issued at. Fills u from
 * the user row, and of c the token's user_id, gen and exp (the rest
 * zeroed). ERR_AUTH "Invalid
 * ticket", the same text for every reason, when refused.
 */
int ticket_redeem(struct db *db, const char *ticket, int64_t now,
    struct auth_user *u, struct auth_claims *c, struct err *e);

#endif
