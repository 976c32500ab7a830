/*
 * roster: the users the relay holds state for, by id and by extension.
 * An entry exists while something holds it (a socket, a live call, a
 * presence change not yet written) and goes when nothing does, so memory
 * follows the connected users, not the registered ones. Entries are kept
 * true by the stream: every change of a user's extension, role or name,
 * and its deletion, revokes its tokens, and the pump reloads the entry
 * when that event passes (roster_reload).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/auth.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/log.h"
#include "relay/relay.h"

#define ROSTER_BUCKETS_MIN 256

enum q { Q_USER_BY_ID, Q_USER_BY_EXT, Q__MAX };
static const char *const sql[Q__MAX] = {
	[Q_USER_BY_ID] =
	    "SELECT id, extension, username, role FROM users WHERE id = ?1",
	[Q_USER_BY_EXT] = "SELECT id, extension, username, role FROM users "
			  "WHERE extension = ?1",
};

static size_t
hash_id(int64_t id, size_t nbuckets)
{
	uint64_t x = (uint64_t)id;

	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	return (size_t)(x & (nbuckets - 1));
}

static size_t
hash_ext(const char *s, size_t nbuckets)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(0x100000001b3);
	}
	return (size_t)(h & (nbuckets - 1));
}

static void
ext_unlink(struct relay *r, struct roster_user *u)
{
	struct roster_user **pp;

	if (u->extension[0] == '\0')
		return;
	for (pp = &r->by_ext[hash_ext(u->extension, r->nbuckets)]; *pp != NULL;
	     pp = &(*pp)->next_ext)
		if (*pp == u) {
			*pp = u->next_ext;
			break;
		}
	u->next_ext = NULL;
}

static void
ext_link(struct relay *r, struct roster_user *u)
{
	size_t b;

	if (u->extension[0] == '\0')
		return;
	b = hash_ext(u->extension, r->nbuckets);
	u->next_ext = r->by_ext[b];
	r->by_ext[b] = u;
}

static void
id_unlink(struct relay *r, struct roster_user *u)
{
	struct roster_user **pp;

	for (pp = &r->by_id[hash_id(u->id, r->nbuckets)]; *pp != NULL;
	     pp = &(*pp)->next_id)
		if (*pp == u) {
			*pp = u->next_id;
			break;
		}
	u->next_id = NULL;
}

/* Double the buckets; the chains are rebuilt from the entry list. */
static int
tables_grow(struct relay *r)
{
	size_t n = r->nbuckets ? r->nbuckets * 2 : ROSTER_BUCKETS_MIN, b;
	struct roster_user **id, **ext, *u;

	if ((id = calloc(n, sizeof(*id))) == NULL ||
	    (ext = calloc(n, sizeof(*ext))) == NULL) {
		free(id);
		return -1;
	}
	free(r->by_id);
	free(r->by_ext);
	r->by_id = id;
	r->by_ext = ext;
	r->nbuckets = n;
	for (u = r->users; u != NULL; u = u->next) {
		b = hash_id(u->id, n);
		u->next_id = id[b];
		id[b] = u;
		ext_link(r, u);
	}
	return 0;
}

struct roster_user *
roster_by_id(struct relay *r, int64_t id)
{
	struct roster_user *u;

	if (r->nbuckets == 0)
		return NULL;
	for (u = r->by_id[hash_id(id, r->nbuckets)]; u != NULL; u = u->next_id)
		if (u->id == id)
			return u;
	return NULL;
}

struct roster_user *
roster_by_ext(struct relay *r, const char *ext)
{
	struct roster_user *u;

	if (r->nbuckets == 0 || ext[0] == '\0')
		return NULL;
	for (u = r->by_ext[hash_ext(ext, r->nbuckets)]; u != NULL;
	     u = u->next_ext)
		if (strcmp(u->extension, ext) == 0)
			return u;
	return NULL;
}

static void
set_text(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* Set the row's fields, moving u in the extension index when it changed;
 * an entry still holding the extension from before loses it. */
static void
user_set(struct relay *r, struct roster_user *u, const char *ext,
    const char *username, const char *role)
{
	struct roster_user *old;

	if (ext != NULL && strcmp(u->extension, ext) != 0) {
		ext_unlink(r, u);
		if ((old = roster_by_ext(r, ext)) != NULL) {
			ext_unlink(r, old);
			old->extension[0] = '\0';
		}
		set_text(u->extension, sizeof(u->extension), ext);
		ext_link(r, u);
	}
	if (username != NULL)
		set_text(u->username, sizeof(u->username), username);
	if (role != NULL)
		set_text(u->role, sizeof(u->role), role);
}

static struct roster_user *
user_new(struct relay *r, int64_t id)
{
	struct roster_user *u;
	size_t b;

	if (r->nusers >= r->nbuckets && tables_grow(r) == -1)
		return NULL;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	u->id = id;
	b = hash_id(id, r->nbuckets);
	u->next_id = r->by_id[b];
	r->by_id[b] = u;
	u->next = r->users;
	if (r->users != NULL)
		r->users->prev = u;
	r->users = u;
	r->nusers++;
	return u;
}

void
roster_release(struct relay *r, struct roster_user *u)
{
	if (u == NULL || u->nclients > 0 || u->clients != NULL ||
	    u->calls != NULL || u->presence_dirty)
		return;
	id_unlink(r, u);
	ext_unlink(r, u);
	if (u->prev != NULL)
		u->prev->next = u->next;
	else
		r->users = u->next;
	if (u->next != NULL)
		u->next->prev = u->prev;
	r->nusers--;
	free(u);
}

static const char *
col(struct db_stmt *st, int i)
{
	return db_col_text(st, i);
}

/* Look one user up by st (bound): 1 with its entry, 0 none, -1 error. */
static int
user_load(struct relay *r, struct db_stmt *st, struct roster_user **out)
{
	struct roster_user *u;
	struct err e = { 0 };
	int64_t id;
	int rc;

	*out = NULL;
	if ((rc = db_row(r->db, st, &e)) == 1) {
		id = db_col_int(st, 0);
		if ((u = roster_by_id(r, id)) == NULL &&
		    (u = user_new(r, id)) == NULL) {
			db_reset(st);
			log_msg(LOG_ERROR, "user lookup: out of memory");
			return -1;
		}
		user_set(r, u, col(st, 1), col(st, 2), col(st, 3));
		db_reset(st);
		*out = u;
	} else if (rc == -1)
		log_msg(LOG_WARN, "user lookup: %s", e.msg);
	return rc;
}

struct roster_user *
roster_load_id(struct relay *r, int64_t id)
{
	struct roster_user *u;
	struct db_stmt *st;

	if ((u = roster_by_id(r, id)) != NULL)
		return u;
	if ((st = db_stmt(r->db, sql[Q_USER_BY_ID], NULL)) == NULL)
		return NULL;
	db_bind_int(st, 1, id);
	user_load(r, st, &u);
	return u;
}

struct roster_user *
roster_load_ext(struct relay *r, const char *ext)
{
	struct roster_user *u;
	struct db_stmt *st;

	if ((u = roster_by_ext(r, ext)) != NULL)
		return u;
	if ((st = db_stmt(r->db, sql[Q_USER_BY_EXT], NULL)) == NULL)
		return NULL;
	db_bind_text(st, 1, ext);
	user_load(r, st, &u);
	return u;
}

int
roster_reload(struct relay *r, struct roster_user *u)
{
	struct roster_user *got;
	struct db_stmt *st;
	int rc;

	if ((st = db_stmt(r->db, sql[Q_USER_BY_ID], NULL)) == NULL)
		return -1;
	db_bind_int(st, 1, u->id);
	if ((rc = user_load(r, st, &got)) == 0) {
		/* Deleted: its extension may be given to someone else. */
		ext_unlink(r, u);
		u->extension[0] = '\0';
	}
	return rc;
}

struct roster_user *
roster_update(struct relay *r, const struct auth_user *au)
{
	struct roster_user *u;

	if ((u = roster_by_id(r, au->id)) == NULL &&
	    (u = user_new(r, au->id)) == NULL)
		return NULL;
	user_set(r, u, au->extension, au->username, au->role);
	return u;
}

int
roster_init(struct relay *r, struct err *e)
{
	if (tables_grow(r) == -1)
		return err_set(e, ERR_INTERNAL, "out of memory");
	return 0;
}

void
roster_free(struct relay *r)
{
	struct roster_user *u;

	while ((u = r->users) != NULL) {
		r->users = u->next;
		free(u);
	}
	free(r->by_id);
	free(r->by_ext);
	r->by_id = r->by_ext = NULL;
	r->nusers = r->nbuckets = 0;
}
