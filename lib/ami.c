#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/ami.h"
#include "lib/err.h"

/*
 * The parser keeps one buffer of msg_max bytes: [start, end) is what was
 * fed and not yet returned, scan is the first byte of the first line of the
 * current message not yet looked at, so bytes fed one at a time are still
 * looked at once. A complete message is split into headers in place (the
 * colon and the line end become NULs), which is why nothing is allocated
 * per message or header.
 */
struct ami_parser {
	char *buf;
	size_t cap;
	size_t start, end, scan;
	struct ami_header *h;
	size_t hmax;
	/* Dropping an oversized message until its empty line. */
	bool skipping;
	bool skip_line_start; /* no byte but CR seen since the last LF */
};

struct ami_parser *
ami_parser_new(size_t msg_max, size_t header_max, struct err *e)
{
	struct ami_parser *p;

	if (msg_max == 0)
		msg_max = AMI_MSG_MAX_DEFAULT;
	if (header_max == 0)
		header_max = AMI_HEADERS_MAX_DEFAULT;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->buf = malloc(msg_max)) == NULL ||
	    (p->h = calloc(header_max, sizeof(*p->h))) == NULL) {
		ami_parser_free(p);
		err_set(e, ERR_INTERNAL, "ami parser: out of memory");
		return NULL;
	}
	p->cap = msg_max;
	p->hmax = header_max;
	return p;
}

void
ami_parser_free(struct ami_parser *p)
{
	if (p == NULL)
		return;
	free(p->buf);
	free(p->h);
	free(p);
}

void
ami_parser_reset(struct ami_parser *p)
{
	p->start = p->end = p->scan = 0;
	p->skipping = false;
}

/* Drop bytes of an oversized message up to and including its empty line;
 * returns how many of len were dropped. */
static size_t
skip_bytes(struct ami_parser *p, const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			if (p->skip_line_start) {
				p->skipping = false;
				return i + 1;
			}
			p->skip_line_start = true;
		} else if (buf[i] != '\r')
			p->skip_line_start = false;
	}
	return len;
}

size_t
ami_parse_feed(struct ami_parser *p, const char *buf, size_t len)
{
	size_t taken = 0, n;

	if (p->skipping) {
		taken = skip_bytes(p, buf, len);
		buf += taken;
		len -= taken;
		if (len == 0)
			return taken;
	}
	if (p->cap - p->end < len && p->start > 0) {
		memmove(p->buf, p->buf + p->start, p->end - p->start);
		p->end -= p->start;
		p->scan -= p->start;
		p->start = 0;
	}
	n = p->cap - p->end < len ? p->cap - p->end : len;
	memcpy(p->buf + p->end, buf, n);
	p->end += n;
	return taken + n;
}

/* The buffer is full and holds no whole message: drop it, and the rest of
 * the message as it arrives. */
static int
overflow(struct ami_parser *p, struct err *e)
{
	size_t i = p->end;

	/* Whether the bytes dropped ended a line decides whether the next
	 * LF (a CR-only tail counts as nothing) is the empty line. */
	while (i > p->start && p->buf[i - 1] == '\r')
		i--;
	p->skip_line_start = i > p->start && p->buf[i - 1] == '\n';
	p->skipping = true;
	p->start = p->end = p->scan = 0;
	return err_set(e, ERR_TOO_LARGE, "ami message over %zu bytes skipped",
	    p->cap);
}

static bool
name_is(const struct ami_header *h, const char *name, size_t len)
{
	return h->name_len == len && strcasecmp(h->name, name) == 0;
}

/* Split the lines of [s, end) (each ending with LF) into headers. */
static int
parse_msg(struct ami_parser *p, size_t s, size_t end, struct ami_msg *m,
    struct err *e)
{
	char *line = p->buf + s, *last = p->buf + end, *nl, *colon, *v, *ve;
	struct ami_header *h;
	size_t nh = 0, i;

	/* Names and values are handed out as C strings too: a NUL inside
	 * would make them say less than their lengths (found by the fuzzer). */
	if (memchr(line, '\0', (size_t)(last - line)) != NULL)
		return err_set(e, ERR_INVALID,
		    "ami message with a NUL skipped");
	while (line < last) {
		nl = memchr(line, '\n', (size_t)(last - line));
		ve = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
		if ((colon = memchr(line, ':', (size_t)(ve - line))) == NULL ||
		    colon == line)
			return err_set(e, ERR_INVALID,
			    "ami line without a header name skipped");
		if (nh == p->hmax)
			return err_set(e, ERR_TOO_LARGE,
			    "ami message over %zu headers skipped", p->hmax);
		for (v = colon + 1; v < ve && (*v == ' ' || *v == '\t'); v++)
			;
		*colon = '\0';
		*ve = '\0';
		h = &p->h[nh++];
		h->name = line;
		h->name_len = (size_t)(colon - line);
		h->value = v;
		h->value_len = (size_t)(ve - v);
		line = nl + 1;
	}
	/* Asterisk puts Response or Event first; a message without either is
	 * of no use to anyone and is reported rather than guessed at. */
	h = &p->h[0];
	if (name_is(h, "Response", 8))
		m->kind = AMI_RESPONSE;
	else if (name_is(h, "Event", 5))
		m->kind = AMI_EVENT;
	else
		return err_set(e, ERR_INVALID,
		    "ami message neither response nor event skipped");
	m->name = h->value;
	m->action_id = NULL;
	m->list = AMI_LIST_NONE;
	m->headers = p->h;
	m->nheaders = nh;
	for (i = 1; i < nh; i++) {
		h = &p->h[i];
		if (m->action_id == NULL && name_is(h, "ActionID", 8))
			m->action_id = h->value;
		else if (name_is(h, "EventList", 9)) {
			if (m->kind == AMI_RESPONSE &&
			    strcasecmp(h->value, "start") == 0)
				m->list = AMI_LIST_START;
			else if (m->kind == AMI_EVENT &&
				 strcasecmp(h->value, "Complete") == 0)
				m->list = AMI_LIST_COMPLETE;
		}
	}
	return 1;
}

int
ami_parse_next(struct ami_parser *p, struct ami_msg *m, struct err *e)
{
	static const size_t blen = sizeof(AMI_BANNER_PREFIX) - 1;
	char *nl;
	size_t ls, le, len, s;

	for (;;) {
		nl = memchr(p->buf + p->scan, '\n', p->end - p->scan);
		if (nl == NULL) {
			if (p->end - p->start == p->cap)
				return overflow(p, e);
			return 0;
		}
		ls = p->scan;
		le = (size_t)(nl - p->buf);
		len = le - ls;
		if (len > 0 && p->buf[le - 1] == '\r')
			len--;
		p->scan = le + 1;
		if (ls == p->start) {
			/* Stray empty lines between messages are harmless. */
			if (len == 0) {
				p->start = p->scan;
				continue;
			}
			if (len >= blen &&
			    memcmp(p->buf + ls, AMI_BANNER_PREFIX, blen) == 0) {
				p->buf[ls + len] = '\0';
				p->start = p->scan;
				m->kind = AMI_BANNER;
				m->name = p->buf + ls;
				m->action_id = NULL;
				m->list = AMI_LIST_NONE;
				m->headers = NULL;
				m->nheaders = 0;
				return 1;
			}
			continue;
		}
		if (len == 0) {
			s = p->start;
			p->start = p->scan;
			return parse_msg(p, s, ls, m, e);
		}
	}
}

const char *
ami_msg_get(const struct ami_msg *m, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < m->nheaders; i++)
		if (name_is(&m->headers[i], name, len))
			return m->headers[i].value;
	return NULL;
}

static bool
name_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			(*s >= '0' && *s <= '9') ||
			strchr("-_()/.", *s) != NULL))
			return false;
	return true;
}

static int
put_header(struct ami_action *a, const char *name, const char *value,
    struct err *e)
{
	size_t nl, vl;

	if (!name_ok(name))
		return err_set_field(e, ERR_INVALID, "name",
		    "ami header name '%.64s' is not a word", name);
	if (strpbrk(value, "\r\n") != NULL)
		return err_set_field(e, ERR_INVALID, name,
		    "ami value of '%s' contains CR or LF", name);
	nl = strlen(name);
	vl = strlen(value);
	if (a->size - a->len < nl + vl + 4)
		return err_set(e, ERR_TOO_LARGE, "ami action over %zu bytes",
		    a->size);
	memcpy(a->buf + a->len, name, nl);
	memcpy(a->buf + a->len + nl, ": ", 2);
	memcpy(a->buf + a->len + nl + 2, value, vl);
	memcpy(a->buf + a->len + nl + 2 + vl, "\r\n", 2);
	a->len += nl + vl + 4;
	return 0;
}

int
ami_action_begin(struct ami_action *a, const char *action,
    const char *action_id, struct err *e)
{
	size_t was = a->len;

	a->len = 0;
	if (put_header(a, "Action", action, e) == -1 ||
	    (action_id != NULL &&
		put_header(a, "ActionID", action_id, e) == -1)) {
		a->len = was;
		return -1;
	}
	return 0;
}

int
ami_action_add(struct ami_action *a, const char *name, const char *value,
    struct err *e)
{
	return put_header(a, name, value, e);
}

int
ami_action_end(struct ami_action *a, struct err *e)
{
	if (a->size - a->len < 2)
		return err_set(e, ERR_TOO_LARGE, "ami action over %zu bytes",
		    a->size);
	memcpy(a->buf + a->len, "\r\n", 2);
	a->len += 2;
	return 0;
}
