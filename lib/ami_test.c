#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ami.h"
#include "lib/check.h"
#include "lib/err.h"

/*
 * The transcript (tests/fixtures/ami-transcript.raw) is what a real Asterisk
 * 22 sent and received, with "#### ..." annotation lines (LF only) before
 * each block: SECTION, SENT (client to Asterisk) and RECV (Asterisk to
 * client). The RECV blocks, joined, are the byte stream a client reads; a
 * block ends with the LF that precedes the next annotation.
 */
#define TRANSCRIPT          "tests/fixtures/ami-transcript.raw"
#define TRANSCRIPT_MESSAGES 472 /* 4 banners, 468 responses and events */

struct blob {
	char *p;
	size_t len;
};

static struct blob
read_file(const char *path)
{
	struct blob b = { NULL, 0 };
	FILE *f;
	long n;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr,
		    "%s: cannot open (run from the top of the "
		    "tree)\n",
		    path);
		exit(1);
	}
	CHECK(fseek(f, 0, SEEK_END) == 0);
	CHECK((n = ftell(f)) > 0);
	CHECK(fseek(f, 0, SEEK_SET) == 0);
	CHECK((b.p = malloc((size_t)n)) != NULL);
	CHECK(fread(b.p, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	b.len = (size_t)n;
	return b;
}

/* The blocks of one direction ("RECV" or "SENT"), joined. */
static struct blob
transcript_stream(const struct blob *t, const char *dir)
{
	struct blob out = { NULL, 0 };
	size_t i = 0, eol, end;
	bool take;

	CHECK((out.p = malloc(t->len)) != NULL);
	while (i < t->len) {
		/* i is at the start of a line */
		if (t->len - i < 5 || memcmp(t->p + i, "#### ", 5) != 0) {
			i++;
			continue;
		}
		eol = i;
		while (eol < t->len && t->p[eol] != '\n')
			eol++;
		take = eol - i >= 9 && memcmp(t->p + i + 5, dir, 4) == 0;
		i = eol + 1;
		end = i;
		while (end < t->len &&
		       !(t->p[end - 1] == '\n' && t->len - end >= 5 &&
			   memcmp(t->p + end, "#### ", 5) == 0))
			end++;
		if (take) {
			size_t n = end - i;

			/* The annotation's own LF, not part of the wire. */
			if (n > 0 && t->p[i + n - 1] == '\n' &&
			    (n < 2 || t->p[i + n - 2] != '\r'))
				n--;
			memcpy(out.p + out.len, t->p + i, n);
			out.len += n;
		}
		i = end;
	}
	return out;
}

/* A digest of a message sequence: FNV-1a over every field, so two runs
 * compare without keeping the messages. */
struct digest {
	uint64_t h;
	size_t msgs, errors, lists_start, lists_complete;
};

static void
mix(struct digest *d, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		d->h = (d->h ^ (unsigned char)s[i]) * 1099511628211ULL;
	d->h = (d->h ^ 0xff) * 1099511628211ULL;
}

/* Only lengths and the bytes at either end of each field: the split runs
 * are many, and a field cut or joined at a split changes a length. */
static bool cheap;

static void
mix_field(struct digest *d, const char *s, size_t len)
{
	if (!cheap) {
		mix(d, s, len);
		return;
	}
	d->h = (d->h ^ len) * 1099511628211ULL;
	if (len > 0)
		d->h = (d->h ^ (unsigned char)s[0] ^
			   ((uint64_t)(unsigned char)s[len - 1] << 8)) *
		       1099511628211ULL;
}

static void
mix_msg(struct digest *d, const struct ami_msg *m)
{
	char k = (char)('0' + m->kind);
	char l = (char)('0' + m->list);
	size_t i;

	mix(d, &k, 1);
	mix(d, &l, 1);
	mix_field(d, m->name, strlen(m->name));
	if (m->action_id != NULL)
		mix_field(d, m->action_id, strlen(m->action_id));
	for (i = 0; i < m->nheaders; i++) {
		mix_field(d, m->headers[i].name, m->headers[i].name_len);
		mix_field(d, m->headers[i].value, m->headers[i].value_len);
	}
	d->msgs++;
	d->lists_start += m->list == AMI_LIST_START;
	d->lists_complete += m->list == AMI_LIST_COMPLETE;
}

static void
drain(struct ami_parser *p, struct digest *d)
{
	struct ami_msg m;
	struct err e = { 0 };
	int rc;

	while ((rc = ami_parse_next(p, &m, &e)) != 0) {
		if (rc == 1)
			mix_msg(d, &m);
		else {
			d->errors++;
			mix(d, e.msg, strlen(e.msg));
		}
	}
}

static void
feed(struct ami_parser *p, const char *buf, size_t len, struct digest *d)
{
	size_t n;

	while (len > 0) {
		n = ami_parse_feed(p, buf, len);
		buf += n;
		len -= n;
		drain(p, d);
	}
}

static bool
same(const struct digest *a, const struct digest *b)
{
	return a->h == b->h && a->msgs == b->msgs && a->errors == b->errors;
}

/* The first messages of the transcript, field by field. */
static void
test_transcript_fields(const struct blob *s)
{
	struct err e = { 0 };
	struct ami_parser *p;
	struct ami_msg m;
	size_t n = 0, banners = 0, responses = 0, events = 0;
	bool saw_csc = false, saw_complete = false;
	int rc;

	/* Room for all of it, so every message stays readable at once. */
	CHECK((p = ami_parser_new(s->len, 0, &e)) != NULL);
	CHECK(ami_parse_feed(p, s->p, s->len) == s->len);
	while ((rc = ami_parse_next(p, &m, &e)) != 0) {
		CHECK(rc == 1);
		if (n == 0) {
			CHECK(m.kind == AMI_BANNER);
			CHECK(strcmp(m.name, "Asterisk Call Manager/11.0.0") ==
			      0);
			CHECK(m.nheaders == 0 && m.action_id == NULL);
		} else if (n == 1) {
			CHECK(m.kind == AMI_RESPONSE);
			CHECK(strcmp(m.name, "Error") == 0);
			CHECK(strcmp(m.action_id, "login-bad-1") == 0);
			CHECK(strcmp(ami_msg_get(&m, "message"),
				  "Authentication failed") == 0);
			CHECK(ami_msg_get(&m, "Nope") == NULL);
			CHECK(m.nheaders == 3);
		} else if (n == 4) {
			CHECK(m.kind == AMI_EVENT);
			CHECK(strcmp(m.name, "FullyBooted") == 0);
			CHECK(m.action_id == NULL);
			CHECK(strcmp(ami_msg_get(&m, "Status"),
				  "Fully Booted") == 0);
		}
		if (m.kind == AMI_RESPONSE && m.action_id != NULL &&
		    strcmp(m.action_id, "csc-idle") == 0) {
			CHECK(m.list == AMI_LIST_START);
			saw_csc = true;
		}
		if (m.kind == AMI_EVENT && m.list == AMI_LIST_COMPLETE &&
		    strcmp(m.name, "CoreShowChannelsComplete") == 0 &&
		    strcmp(m.action_id, "csc-idle") == 0) {
			CHECK(strcmp(ami_msg_get(&m, "ListItems"), "0") == 0);
			saw_complete = true;
		}
		/* An empty value is a value. */
		if (m.kind == AMI_EVENT && strcmp(m.name, "Cdr") == 0)
			CHECK(ami_msg_get(&m, "UserField") != NULL);
		banners += m.kind == AMI_BANNER;
		responses += m.kind == AMI_RESPONSE;
		events += m.kind == AMI_EVENT;
		n++;
	}
	CHECK(n == TRANSCRIPT_MESSAGES);
	CHECK(banners == 4);
	CHECK(saw_csc && saw_complete);
	printf("transcript: %zu messages (%zu banners, %zu responses, %zu "
	       "events)\n",
	    n, banners, responses, events);
	ami_parser_free(p);
}

/* Parse [lo, hi) of s as two chunks cut at at. */
static struct digest
parse_range(struct ami_parser *p, const struct blob *s, size_t lo, size_t at,
    size_t hi)
{
	struct digest d = { 14695981039346656037ULL, 0, 0, 0, 0 };

	ami_parser_reset(p);
	feed(p, s->p + lo, at - lo, &d);
	feed(p, s->p + at, hi - at, &d);
	return d;
}

static struct digest
parse_split(struct ami_parser *p, const struct blob *s, size_t at)
{
	return parse_range(p, s, 0, at, s->len);
}

/*
 * Where each message ends in s: fed one byte at a time, the offsets after
 * which a message came out; b[0] is 0 and the last is s->len.
 */
static size_t *
boundaries(struct ami_parser *p, const struct blob *s, size_t *nb)
{
	struct err e = { 0 };
	struct ami_msg m;
	size_t *b, n = 0, i;

	CHECK((b = malloc((s->len + 2) * sizeof(*b))) != NULL);
	b[n++] = 0;
	ami_parser_reset(p);
	for (i = 0; i < s->len; i++) {
		CHECK(ami_parse_feed(p, s->p + i, 1) == 1);
		while (ami_parse_next(p, &m, &e) != 0)
			if (b[n - 1] != i + 1)
				b[n++] = i + 1;
	}
	if (b[n - 1] != s->len)
		b[n++] = s->len;
	*nb = n;
	return b;
}

/*
 * Two chunks, split at every offset of the transcript. Each split is
 * checked on the two messages either side of it, against the same bytes
 * fed whole: parsing all of the transcript once per offset costs ~26 GB
 * of parsing, 20 s optimised and over a minute with sanitizers, so that
 * runs only with AMI_TEST_ALL_SPLITS=1; here the whole transcript is cut
 * at every 61st offset instead. Then one byte at a time, and odd chunks.
 */
static void
test_transcript_splits(const struct blob *s)
{
	struct err e = { 0 };
	struct ami_parser *p;
	struct digest ref, d;
	size_t at, i, n, nb, *b, lo, hi, step;

	CHECK((p = ami_parser_new(0, 0, &e)) != NULL);
	b = boundaries(p, s, &nb);
	CHECK(nb == TRANSCRIPT_MESSAGES + 1);
	for (at = 0, i = 0; at <= s->len; at++) {
		while (i + 1 < nb - 1 && b[i + 1] <= at)
			i++;
		lo = b[i >= 2 ? i - 2 : 0];
		hi = b[i + 3 < nb ? i + 3 : nb - 1];
		ref = parse_range(p, s, lo, hi, hi);
		d = parse_range(p, s, lo, at, hi);
		if (!same(&d, &ref))
			fprintf(stderr, "split at %zu differs\n", at);
		CHECK(same(&d, &ref) && d.errors == 0);
	}
	free(b);

	cheap = true;
	ref = parse_split(p, s, s->len);
	CHECK(ref.msgs == TRANSCRIPT_MESSAGES && ref.errors == 0);
	CHECK(ref.lists_start == 6 && ref.lists_complete == 6);
	step = getenv("AMI_TEST_ALL_SPLITS") != NULL ? 1 : 61;
	for (at = 0; at <= s->len; at += step) {
		d = parse_split(p, s, at);
		if (!same(&d, &ref))
			fprintf(stderr, "split at %zu differs\n", at);
		CHECK(same(&d, &ref));
	}
	/* Every byte of every field for the other feeds. */
	cheap = false;
	ref = parse_split(p, s, s->len);
	memset(&d, 0, sizeof(d));
	d.h = 14695981039346656037ULL;
	ami_parser_reset(p);
	for (i = 0; i < s->len; i++)
		feed(p, s->p + i, 1, &d);
	CHECK(same(&d, &ref));
	for (n = 2; n < 700; n = n * 3 + 1) {
		memset(&d, 0, sizeof(d));
		d.h = 14695981039346656037ULL;
		ami_parser_reset(p);
		for (i = 0; i < s->len; i += n)
			feed(p, s->p + i, s->len - i < n ? s->len - i : n, &d);
		CHECK(same(&d, &ref));
	}
	printf("transcript: %zu bytes, same messages at every split\n", s->len);
	ami_parser_free(p);
}

/* Feed text whole and one byte at a time; the kinds seen ('B', 'R', 'E',
 * or 'x' for a skip, with its code) must read want both times. */
static void
expect_seq(size_t msg_max, size_t hmax, const char *text, size_t len,
    const char *want)
{
	char got[64];
	size_t step, i, k, n;
	struct err e = { 0 };
	struct ami_parser *p;
	struct ami_msg m;
	int rc;

	CHECK((p = ami_parser_new(msg_max, hmax, &e)) != NULL);
	for (int pass = 0; pass < 2; pass++) {
		step = pass == 0 ? len : 1;
		ami_parser_reset(p);
		k = 0;
		for (i = 0; i < len; i += n) {
			n = ami_parse_feed(p, text + i,
			    len - i < step ? len - i : step);
			while ((rc = ami_parse_next(p, &m, &e)) != 0) {
				CHECK(k + 2 < sizeof(got));
				if (rc == 1)
					got[k++] = "BRE"[m.kind];
				else
					got[k++] =
					    e.code == ERR_TOO_LARGE ? 'L' : 'x';
			}
		}
		got[k] = '\0';
		if (strcmp(got, want) != 0)
			fprintf(stderr, "step %zu: got '%s', want '%s'\n", step,
			    got, want);
		CHECK(strcmp(got, want) == 0);
	}
	ami_parser_free(p);
}

#define EXPECT(max, hmax, text, want)                                          \
	expect_seq(max, hmax, text, strlen(text), want)

static void
test_bounds(void)
{
	char big[4096], *flood;
	size_t i, n;

	/* A message over msg_max is skipped, the next one parsed. */
	n = (size_t)snprintf(big, sizeof(big), "Event: Big\r\n");
	for (i = 0; i < 40; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n,
		    "Header%zu: %s\r\n", i, "0123456789012345678901234567890");
	n += (size_t)snprintf(big + n, sizeof(big) - n,
	    "\r\nResponse: Success\r\nActionID: 1\r\n\r\n");
	expect_seq(256, 0, big, n, "LR");
	/* The same message fits a larger buffer but not 8 headers. */
	expect_seq(4096, 8, big, n, "LR");
	expect_seq(4096, 0, big, n, "ER");

	/* A banner anywhere a message may start. */
	EXPECT(0, 0,
	    "Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n\r\n"
	    "Asterisk Call Manager/11.0.0\r\nEvent: X\r\n\r\n",
	    "BRBE");
	/* Garbage: a line without a colon, no Response/Event, an empty
	 * header name; stray empty lines; bare LF line ends. */
	EXPECT(0, 0,
	    "hello\r\n\r\nFoo: bar\r\n\r\n: x\r\n\r\n\r\n\r\nEvent: Y\n\n",
	    "xxxE");
	/* A CR alone is not a line end; a CR before the skipped message's
	 * empty line is. */
	EXPECT(32, 0,
	    "Event: Zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\r\r\n\r\n"
	    "Event: A\r\n\r\n",
	    "LE");

	/* A megabyte without a line end costs msg_max bytes, no more. */
	n = 1024 * 1024;
	CHECK((flood = malloc(n + 32)) != NULL);
	for (i = 0; i < n; i++)
		flood[i] = (char)('a' + i % 26);
	memcpy(flood + n, "\r\n\r\nEvent: After\r\n\r\n", 21);
	{
		struct err e = { 0 };
		struct ami_parser *p;
		struct ami_msg m;
		size_t off = 0, skips = 0, got = 0;
		int rc;

		CHECK((p = ami_parser_new(1024, 0, &e)) != NULL);
		while (off < n + 21) {
			off += ami_parse_feed(p, flood + off,
			    n + 21 - off < 5000 ? n + 21 - off : 5000);
			while ((rc = ami_parse_next(p, &m, &e)) != 0) {
				if (rc == -1) {
					CHECK(e.code == ERR_TOO_LARGE);
					skips++;
				} else {
					CHECK(strcmp(m.name, "After") == 0);
					got++;
				}
			}
		}
		CHECK(skips == 1 && got == 1);
		ami_parser_free(p);
	}
	free(flood);
}

static void
test_action(const struct blob *sent)
{
	char buf[256], small[29];
	struct ami_action a = { buf, sizeof(buf), 0 };
	struct ami_action s = { small, sizeof(small), 0 };
	struct err e = { 0 };
	size_t was;

	/* The transcript's failed login, byte for byte. */
	CHECK(ami_action_begin(&a, "Login", NULL, &e) == 0 &&
	      ami_action_add(&a, "Username", "admin", &e) == 0 &&
	      ami_action_add(&a, "Secret", "wrong", &e) == 0 &&
	      ami_action_add(&a, "ActionID", "login-bad-1", &e) == 0 &&
	      ami_action_end(&a, &e) == 0);
	CHECK(a.len == 72 && sent->len > 72);
	CHECK(memcmp(a.buf, sent->p, a.len) == 0);

	CHECK(ami_action_begin(&a, "Ping", "ping-1", &e) == 0 &&
	      ami_action_end(&a, &e) == 0);
	CHECK(a.len == 34);
	CHECK(
	    memcmp(a.buf, "Action: Ping\r\nActionID: ping-1\r\n\r\n", 34) == 0);

	/* CR or LF in a value cannot add a header; nothing is written. */
	was = a.len;
	CHECK(ami_action_add(&a, "Secret", "x\r\nAction: Logoff", &e) == -1);
	CHECK(e.code == ERR_INVALID && strcmp(e.field, "Secret") == 0);
	CHECK(strstr(e.msg, "Logoff") == NULL);
	CHECK(a.len == was);
	CHECK(ami_action_add(&a, "Exten", "1\n", &e) == -1 && a.len == was);
	CHECK(ami_action_add(&a, "Exten", "1\r", &e) == -1 && a.len == was);
	CHECK(ami_action_begin(&a, "Ping", "1\r\nX: y", &e) == -1);
	CHECK(a.len == was);
	CHECK(ami_action_begin(&a, "Ping\r\nX: y", "1", &e) == -1);
	CHECK(a.len == was);
	/* A name is a word: no colon, blank or line end. */
	CHECK(ami_action_add(&a, "A: b", "c", &e) == -1 && a.len == was);
	CHECK(ami_action_add(&a, "", "c", &e) == -1 && a.len == was);
	CHECK(ami_action_add(&a, "X\r\nY", "c", &e) == -1 && a.len == was);
	/* Everything else in a value is data. */
	CHECK(ami_action_add(&a, "Variable", "CALL_ID=a: b;c=\"d\"", &e) == 0);

	/* Full buffer: ERR_TOO_LARGE, nothing half written. */
	CHECK(ami_action_begin(&s, "Ping", "1", &e) == 0);
	was = s.len;
	CHECK(ami_action_add(&s, "Channel", "PJSIP/1000", &e) == -1);
	CHECK(e.code == ERR_TOO_LARGE && s.len == was);
	CHECK(ami_action_end(&s, &e) == 0 && s.len == 29);
	CHECK(ami_action_end(&s, &e) == -1 && s.len == 29);
	CHECK(ami_action_begin(&s, "CoreShowChannels", "12345678", &e) == -1);
}

int
main(int argc, char **argv)
{
	struct blob t = read_file(argc > 1 ? argv[1] : TRANSCRIPT);
	struct blob recv = transcript_stream(&t, "RECV");
	struct blob sent = transcript_stream(&t, "SENT");

	test_transcript_fields(&recv);
	test_transcript_splits(&recv);
	test_bounds();
	test_action(&sent);
	free(recv.p);
	free(sent.p);
	free(t.p);
	printf("ami: %d checks passed\n", checks);
	return 0;
}
