#ifndef LIB_NOTIFY_H
#define LIB_NOTIFY_H

struct db;
struct err;
struct json_object;

/*
 * Events for browsers: a row in the notify table written inside the
 * caller's transaction, delivered by the relay in id order.
 */
enum notify_target {
	NOTIFY_USER,      /* value: user id */
	NOTIFY_EXTENSION, /* value: extension */
	NOTIFY_ROLE,      /* value: "admin" / "user" */
	NOTIFY_ALL,       /* value: "" */
	NOTIFY__MAX
};

/* Insert one event; payload is serialized, not taken. */
int notify_enqueue(struct db *db, enum notify_target target, const char *value,
    struct json_object *payload, struct err *e);

/* "user", "extension", "role", "all"; and back (-1 when unknown). */
const char *notify_target_name(enum notify_target t);
int notify_target_parse(const char *name);

#endif
