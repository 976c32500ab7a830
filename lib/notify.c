#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "lib/db.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/notify.h"

enum q {
	Q_INSERT,
	Q_READ_FOR,
	Q_STREAM,
	Q_LAST,
	Q_ISSUED,
	Q_KEPT,
	Q_STREAM_NEW,
	Q_MARK,
	Q_PRUNE_UPTO,
	Q_PRUNE,
	Q_PRUNED,
	Q__MAX
};
static const char *const sql[Q__MAX] = {
	[Q_INSERT] = "INSERT INTO notify "
		     "(created_at, target_kind, target_value, payload) "
		     "VALUES (?1, ?2, ?3, ?4)",
	[Q_READ_FOR] =
	    "SELECT id, target_kind, target_value, payload FROM notify "
	    "WHERE id > ?1 AND (?2 = 0 OR id <= ?2) AND ("
	    "(target_kind = 'user' AND target_value = ?3) OR "
	    "(target_kind = 'extension' AND target_value = ?4) OR "
	    "(target_kind = 'role' AND target_value = ?5) OR "
	    "target_kind = 'all') ORDER BY id LIMIT ?6",
	[Q_STREAM] = "SELECT epoch, pruned_through, high_water "
		     "FROM notify_stream WHERE id = 1",
	/* The newest id given, whether or not its row is still there. */
	[Q_LAST] = "SELECT max(COALESCE((SELECT max(id) FROM notify), 0), "
		   "COALESCE((SELECT seq FROM sqlite_sequence "
		   "WHERE name = 'notify'), 0))",
	/* Ids are handed out by AUTOINCREMENT: the highest ever given
	 * stays in sqlite_sequence after its row is deleted. */
	[Q_ISSUED] = "SELECT seq FROM sqlite_sequence WHERE name = 'notify'",
	/* AUTOINCREMENT ids have no gaps (a rolled back insert gives its id
	 * back): past pruned_through, every id up to the newest has a row. */
	[Q_KEPT] = "SELECT count(*) FROM notify WHERE id > ?1",
	[Q_STREAM_NEW] =
	    "INSERT INTO notify_stream (id, epoch, pruned_through, "
	    "high_water) VALUES (1, ?2, ?1, ?1) "
	    "ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, "
	    "pruned_through = ?1, high_water = ?1",
	[Q_MARK] = "UPDATE notify_stream SET high_water = ?1 "
		   "WHERE id = 1 AND high_water < ?1",
	[Q_PRUNE_UPTO] = "SELECT max(id) FROM (SELECT id FROM notify "
			 "WHERE created_at < ?1 ORDER BY id LIMIT ?2) AS old",
	[Q_PRUNE] = "DELETE FROM notify WHERE id <= ?1",
	[Q_PRUNED] = "UPDATE notify_stream SET pruned_through = ?1 "
		     "WHERE id = 1 AND pruned_through < ?1",
};

static const char *const target_names[NOTIFY__MAX] = {
	[NOTIFY_USER] = "user",
	[NOTIFY_EXTENSION] = "extension",
	[NOTIFY_ROLE] = "role",
	[NOTIFY_ALL] = "all",
};

const char *
notify_target_name(enum notify_target t)
{
	if ((int)t < 0 || t >= NOTIFY__MAX)
		return NULL;
	return target_names[t];
}

bool
notify_is_revocation(enum notify_target target, const char *payload, size_t len)
{
	size_t plen = sizeof(NOTIFY_REVOKED_PREFIX) - 1;

	return target == NOTIFY_USER && payload != NULL && len > plen &&
	       memcmp(payload, NOTIFY_REVOKED_PREFIX, plen) == 0;
}

int
notify_target_parse(const char *name)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < NOTIFY__MAX; i++)
		if (strcmp(target_names[i], name) == 0)
			return i;
	return -1;
}

int
notify_enqueue_text(struct db *db, enum notify_target target, const char *value,
    const char *payload, size_t len, struct err *e)
{
	const char *kind;
	struct db_stmt *st;
	char now[40];

	if ((kind = notify_target_name(target)) == NULL)
		return err_set(e, ERR_INTERNAL, "notify: bad target %d",
		    (int)target);
	if (payload == NULL || len < 2 || payload[0] != '{' || len > INT32_MAX)
		return err_set(e, ERR_INTERNAL, "notify: no payload");
	if ((st = db_stmt(db, sql[Q_INSERT], e)) == NULL)
		return -1;
	db_now(now, sizeof(now));
	db_bind_text(st, 1, now);
	db_bind_text(st, 2, kind);
	db_bind_text(st, 3, value != NULL ? value : "");
	db_bind_textn(st, 4, payload, (size_t)len);
	return db_done(db, st, e);
}

int
notify_enqueue(struct db *db, enum notify_target target, const char *value,
    struct json_object *payload, struct err *e)
{
	const char *text;
	size_t len;

	if (payload == NULL || (text = jh_text(payload, &len)) == NULL)
		return err_set(e, ERR_INTERNAL, "notify: no payload");
	return notify_enqueue_text(db, target, value, text, len, e);
}

int
notify_read_for(struct db *db, int64_t user_id, const char *extension,
    const char *role, int64_t since, int64_t upto, size_t limit, notify_fn fn,
    void *arg, struct err *e)
{
	struct notify_event ev;
	struct db_stmt *st;
	const char *kind;
	char id[24];
	int n = 0, rc;

	if (limit == 0)
		return 0;
	if (limit > INT32_MAX)
		limit = INT32_MAX;
	if ((st = db_stmt(db, sql[Q_READ_FOR], e)) == NULL)
		return -1;
	snprintf(id, sizeof(id), "%" PRId64, user_id);
	db_bind_int(st, 1, since);
	db_bind_int(st, 2, upto);
	db_bind_text(st, 3, id);
	db_bind_text(st, 4, extension != NULL ? extension : "");
	db_bind_text(st, 5, role != NULL ? role : "");
	db_bind_int(st, 6, (int64_t)limit);
	while ((rc = db_row(db, st, e)) == 1) {
		ev.id = db_col_int(st, 0);
		kind = db_col_text(st, 1);
		ev.target = (enum notify_target)notify_target_parse(kind);
		ev.value = db_col_text(st, 2);
		ev.payload = db_col_text(st, 3);
		ev.len = db_col_len(st, 3);
		if (ev.value == NULL)
			ev.value = "";
		n++;
		if (ev.payload == NULL || ev.len < 2 || ev.payload[0] != '{')
			continue;
		if (fn(arg, &ev) != 0) {
			db_reset(st);
			return n;
		}
	}
	return rc == -1 ? -1 : n;
}

/* One integer from st's first row (def when none or NULL). */
static int
int_get(struct db *db, enum q q, int64_t def, int64_t *v, struct err *e)
{
	struct db_stmt *st;
	int rc;

	*v = def;
	if ((st = db_stmt(db, sql[q], e)) == NULL)
		return -1;
	if ((rc = db_row(db, st, e)) == 1) {
		if (!db_col_null(st, 0))
			*v = db_col_int(st, 0);
		db_reset(st);
	}
	return rc == -1 ? -1 : 0;
}

/* The stream row: 1, 0 when there is none, -1 on error. */
static int
stream_row(struct db *db, char *epoch, size_t size, int64_t *pruned,
    int64_t *high, struct err *e)
{
	struct db_stmt *st;
	const char *s;
	int rc;

	if ((st = db_stmt(db, sql[Q_STREAM], e)) == NULL)
		return -1;
	if ((rc = db_row(db, st, e)) != 1)
		return rc;
	s = db_col_text(st, 0);
	snprintf(epoch, size, "%s", s != NULL ? s : "");
	*pruned = db_col_int(st, 1);
	*high = db_col_int(st, 2);
	db_reset(st);
	return 1;
}

int
notify_stream_get(struct db *db, struct notify_stream *s, struct err *e)
{
	int64_t high;
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = stream_row(db, s->epoch, sizeof(s->epoch), &s->pruned_through,
		 &high, e)) == -1)
		return -1;
	if (rc == 0)
		return err_set(e, ERR_INTERNAL, "notify stream has no epoch");
	return int_get(db, Q_LAST, 0, &s->last, e);
}

struct json_object *
notify_resync_message(const struct notify_stream *s)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_str(o, "type", "resync_required");
	jh_add_str(o, "epoch", s->epoch);
	jh_add_int(o, "last_seq", s->last);
	return o;
}

int
notify_stream_replayable(const struct notify_stream *s, const char *epoch,
    int64_t since)
{
	if (epoch != NULL && strcmp(epoch, s->epoch) != 0)
		return 0;
	return since >= s->pruned_through && since <= s->last;
}

static int
id_exec(struct db *db, enum q q, int64_t id, struct err *e)
{
	struct db_stmt *st;

	if ((st = db_stmt(db, sql[q], e)) == NULL)
		return -1;
	db_bind_int(st, 1, id);
	return db_done(db, st, e);
}

/* A new epoch (16 random hex digits) starting after id. */
static int
stream_new(struct db *db, int64_t id, struct err *e)
{
	unsigned char r[8];
	struct db_stmt *st;
	char epoch[2 * sizeof(r) + 1];
	size_t i;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return err_set(e, ERR_INTERNAL, "getrandom failed");
	for (i = 0; i < sizeof(r); i++)
		snprintf(epoch + 2 * i, 3, "%02x", r[i]);
	if ((st = db_stmt(db, sql[Q_STREAM_NEW], e)) == NULL)
		return -1;
	db_bind_int(st, 1, id);
	db_bind_text(st, 2, epoch);
	return db_done(db, st, e);
}

int
notify_stream_check(struct db *db, int *rotated, struct err *e)
{
	int64_t pruned = 0, high = 0, last, issued, kept = 0;
	struct db_stmt *st;
	char epoch[40];
	bool broken;
	int rc;

	if (rotated != NULL)
		*rotated = 0;
	if (db_begin(db, e) == -1)
		return -1;
	if ((rc = stream_row(db, epoch, sizeof(epoch), &pruned, &high, e)) ==
		-1 ||
	    int_get(db, Q_LAST, 0, &last, e) == -1 ||
	    int_get(db, Q_ISSUED, 0, &issued, e) == -1 ||
	    (st = db_stmt(db, sql[Q_KEPT], e)) == NULL)
		goto fail;
	db_bind_int(st, 1, pruned);
	if (db_row(db, st, e) != 1)
		goto fail;
	kept = db_col_int(st, 0);
	db_reset(st);
	if (issued < last)
		issued = last;
	/* No row (deleted to ask for a new epoch), ids that went back, or
	 * rows gone that the retention did not take. */
	broken = rc == 0 || issued < high || kept != issued - pruned;
	if (broken) {
		if (stream_new(db, issued, e) == -1)
			goto fail;
		if (rotated != NULL)
			*rotated = 1;
	} else if (id_exec(db, Q_MARK, issued, e) == -1)
		goto fail;
	return db_commit(db, e);
fail:
	db_rollback(db);
	return -1;
}

int
notify_stream_mark(struct db *db, int64_t id, struct err *e)
{
	return id_exec(db, Q_MARK, id, e);
}

int
notify_prune(struct db *db, int64_t before_us, int max_rows, int *deleted,
    struct err *e)
{
	int64_t upto = 0;
	struct db_stmt *st;
	char cutoff[40];
	int n = 0;

	if (deleted != NULL)
		*deleted = 0;
	db_time_format(before_us, cutoff, sizeof(cutoff));
	if (db_begin(db, e) == -1)
		return -1;
	if ((st = db_stmt(db, sql[Q_PRUNE_UPTO], e)) == NULL)
		goto fail;
	db_bind_text(st, 1, cutoff);
	db_bind_int(st, 2, max_rows);
	switch (db_row(db, st, e)) {
	case 1:
		if (!db_col_null(st, 0))
			upto = db_col_int(st, 0);
		db_reset(st);
		break;
	case 0:
		break;
	default:
		goto fail;
	}
	if (upto > 0) {
		if (id_exec(db, Q_PRUNE, upto, e) == -1)
			goto fail;
		n = db_changes(db);
		if (id_exec(db, Q_PRUNED, upto, e) == -1)
			goto fail;
	}
	if (db_commit(db, e) == -1)
		return -1;
	if (deleted != NULL)
		*deleted = n;
	return 0;
fail:
	db_rollback(db);
	return -1;
}
