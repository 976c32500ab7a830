/*
 * libFuzzer target for the AMI parser (make fuzz). The first input byte
 * picks the chunk size and a small or default buffer; the rest is the byte
 * stream. Every message that comes out is checked against the parser's
 * promises: names and values NUL-terminated at their lengths, no line end
 * inside, the list and ActionID fields agreeing with the headers. The
 * builder is fed the same bytes as a value: it must refuse CR and LF, and
 * what it accepts must parse back to the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ami.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_msg(const struct ami_msg *m)
{
	size_t i;

	if (m->name == NULL || strchr(m->name, '\n') != NULL)
		abort();
	if (m->kind == AMI_BANNER && strncmp(m->name, AMI_BANNER_PREFIX,
					 sizeof(AMI_BANNER_PREFIX) - 1) != 0)
		abort();
	for (i = 0; i < m->nheaders; i++) {
		const struct ami_header *h = &m->headers[i];

		if (memchr(h->name, '\0', h->name_len) != NULL ||
		    h->name[h->name_len] != '\0' || h->name_len == 0 ||
		    memchr(h->value, '\n', h->value_len) != NULL ||
		    h->value[h->value_len] != '\0')
			abort();
	}
	if (m->action_id != NULL && ami_msg_get(m, "ActionID") != m->action_id)
		abort();
	if (m->list == AMI_LIST_START && m->kind != AMI_RESPONSE)
		abort();
}

static void
check_builder(const uint8_t *data, size_t size)
{
	char value[512], buf[1024];
	struct ami_action a = { buf, sizeof(buf), 0 };
	struct err e = { 0 };
	struct ami_parser *p;
	struct ami_msg m;
	size_t n = size < sizeof(value) - 1 ? size : sizeof(value) - 1;
	int rc;

	memcpy(value, data, n);
	value[n] = '\0';
	rc = ami_action_begin(&a, "Originate", "f-1", &e) == 0 &&
	     ami_action_add(&a, "Exten", value, &e) == 0 &&
	     ami_action_end(&a, &e) == 0;
	if (strpbrk(value, "\r\n") != NULL) {
		if (rc)
			abort();
		return;
	}
	if (!rc)
		abort();
	/* An action is parsed like a message once it starts with Response:
	 * the same bytes, the header after it intact. */
	if ((p = ami_parser_new(0, 0, &e)) == NULL)
		return;
	memmove(buf + 8, buf + 6, a.len - 6);
	memcpy(buf, "Response", 8);
	a.len += 2;
	if (ami_parse_feed(p, buf, a.len) != a.len ||
	    ami_parse_next(p, &m, &e) != 1 || m.nheaders != 3 ||
	    strcmp(m.action_id, "f-1") != 0)
		abort();
	/* Leading blanks of a value are not kept (AMI has no quoting). */
	{
		const char *v = value;

		while (*v == ' ' || *v == '\t')
			v++;
		if (strcmp(ami_msg_get(&m, "Exten"), v) != 0)
			abort();
	}
	ami_parser_free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = { 0 };
	struct ami_parser *p;
	struct ami_msg m;
	size_t chunk, off = 0, n;
	int rc;

	if (size == 0)
		return 0;
	chunk = (size_t)(data[0] & 0x3f) + 1;
	p = ami_parser_new(data[0] & 0x40 ? 96 : 0, data[0] & 0x80 ? 4 : 0, &e);
	if (p == NULL)
		return 0;
	data++;
	size--;
	while (off < size) {
		n = ami_parse_feed(p, (const char *)data + off,
		    size - off < chunk ? size - off : chunk);
		off += n;
		while ((rc = ami_parse_next(p, &m, &e)) != 0)
			if (rc == 1)
				check_msg(&m);
			else if (e.code != ERR_TOO_LARGE &&
				 e.code != ERR_INVALID)
				abort();
	}
	ami_parser_free(p);
	check_builder(data, size);
	return 0;
}
