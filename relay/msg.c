/*
 * msg: a message built once and shared by reference by every send queue
 * that holds it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lib/json.h"
#include "relay/relay.h"

struct msg *
msg_new(const char *text, size_t len, bool event)
{
	struct msg *m;

	if (len >= UINT32_MAX || (m = malloc(sizeof(*m) + len + 1)) == NULL)
		return NULL;
	m->refs = 1;
	m->len = (uint32_t)len;
	m->event = event;
	memcpy(m->text, text, len);
	m->text[len] = '\0';
	return m;
}

struct msg *
msg_json(struct json_object *o, bool event)
{
	const char *text;
	size_t len;

	if ((text = jh_text(o, &len)) == NULL || len < 2 || text[0] != '{')
		return NULL;
	if (event)
		return msg_new(text + 1, len - 1, true);
	return msg_new(text, len, false);
}

struct msg *
msg_ref(struct msg *m)
{
	m->refs++;
	return m;
}

void
msg_unref(struct msg *m)
{
	if (m != NULL && --m->refs == 0)
		free(m);
}
