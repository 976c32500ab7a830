#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lib/check.h"
#include "lib/err.h"
#include "lib/json.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

struct in {
	const char *name;
	const char *ext;
	const char *email;
	int64_t age;
	int64_t big;
	bool admin;
	bool has_email;
	bool has_age;
	bool has_admin;
};

static const struct jh_field fields[] = {
	{ "name", JH_TEXT, true, 1, 8, offsetof(struct in, name), 0 },
	{ "ext", JH_DIGITS, false, 2, 6, offsetof(struct in, ext), 0 },
	{ "email", JH_EMAIL, false, 0, 32, offsetof(struct in, email),
	    offsetof(struct in, has_email) },
	{ "age", JH_INT, false, 0, 150, offsetof(struct in, age),
	    offsetof(struct in, has_age) },
	{ "big", JH_INT, false, INT64_MIN, INT64_MAX, offsetof(struct in, big),
	    0 },
	{ "admin", JH_BOOL, false, 0, 0, offsetof(struct in, admin),
	    offsetof(struct in, has_admin) },
};

/* Parse text (which must be valid) and decode it; the object is in *objp. */
static int
decode(const char *text, struct in *in, struct json_object **objp,
    struct err *e)
{
	struct err pe = { 0 };
	struct json_object *o;

	*objp = NULL;
	memset(in, 0, sizeof(*in));
	in->age = -7; /* untouched when absent */
	in->ext = "untouched";
	err_clear(e);
	if ((o = jh_parse(text, strlen(text), &pe)) == NULL) {
		fprintf(stderr, "unparsable test input: %s\n", text);
		exit(1);
	}
	*objp = o;
	return jh_decode(o, fields, nitems(fields), in, e);
}

/* Decoding text fails on field. */
static bool
rejects(const char *text, const char *field)
{
	struct json_object *o;
	struct err e;
	struct in in;
	int rc;

	rc = decode(text, &in, &o, &e);
	json_object_put(o);
	if (rc != -1 || e.code != ERR_INVALID || strcmp(e.field, field) != 0 ||
	    strcmp(e.msg, "Invalid request format") != 0) {
		fprintf(stderr, "not rejected as '%s': %s (rc %d field '%s')\n",
		    field, text, rc, e.field);
		return false;
	}
	return true;
}

static bool
accepts(const char *text)
{
	struct json_object *o;
	struct err e;
	struct in in;
	int rc;

	rc = decode(text, &in, &o, &e);
	json_object_put(o);
	if (rc != 0)
		fprintf(stderr, "rejected (field '%s'): %s\n", e.field, text);
	return rc == 0;
}

/* jh_parse of <buf, len>: whether it parsed, and the type it has. */
static bool
parses(const char *buf, size_t len, enum json_type *type)
{
	struct json_object *o;
	struct err e = { 0 };

	o = jh_parse(buf, len, &e);
	if (o == NULL) {
		CHECK(e.code == ERR_INVALID);
		CHECK(strcmp(e.msg, "Invalid request format") == 0);
		return false;
	}
	if (type != NULL)
		*type = json_object_get_type(o);
	json_object_put(o);
	return true;
}

static bool
parses_str(const char *s)
{
	return parses(s, strlen(s), NULL);
}

static void
test_parse(void)
{
	char deep[200], *heap;
	enum json_type t;
	int k;

	CHECK(parses_str("{}"));
	CHECK(parses(" \r\n\t{\"a\": [1, 2.5, \"x\", true, false, null]} \n",
	    strlen(" \r\n\t{\"a\": [1, 2.5, \"x\", true, false, null]} \n"),
	    &t));
	CHECK(t == json_type_object);
	CHECK(parses("[1,2]", 5, &t) && t == json_type_array);
	CHECK(parses("\"s\"", 3, &t) && t == json_type_string);
	CHECK(parses("true", 4, &t) && t == json_type_boolean);
	CHECK(parses("-12", 3, &t) && t == json_type_int);
	CHECK(parses("1.5e3", 5, &t) && t == json_type_double);

	/* empty bodies */
	CHECK(!parses("", 0, NULL));
	CHECK(!parses(NULL, 0, NULL));
	CHECK(!parses_str(" \n\t "));
	CHECK(!parses_str("null"));

	/* trailing garbage and concatenated values */
	CHECK(!parses_str("{} x"));
	CHECK(!parses_str("{}{}"));
	CHECK(!parses_str("{},"));
	CHECK(!parses_str("12 3"));
	CHECK(!parses("{}\0x", 4, NULL));
	CHECK(!parses("{\"a\":1}\0", 8, NULL));

	/* malformed and lax syntax */
	CHECK(!parses_str("{"));
	CHECK(!parses_str("{\"a\":1"));
	CHECK(!parses_str("{\"a\":1,}"));
	CHECK(!parses_str("[1,]"));
	CHECK(!parses_str("{'a':1}"));
	CHECK(!parses_str("{a:1}"));
	CHECK(!parses_str("[Infinity]"));
	CHECK(!parses_str("[-Infinity]"));
	CHECK(!parses_str("[NaN]"));
	CHECK(!parses_str("[nan]"));
	CHECK(!parses_str("[True]"));
	CHECK(!parses_str("/*c*/{}"));
	CHECK(!parses_str("{} // c"));
	CHECK(!parses_str("01"));
	CHECK(!parses_str("\"unterminated"));
	CHECK(!parses_str("{\"k\":\"a\nb\"}"));
	CHECK(!parses_str("{\"k\":\"a\tb\"}"));
	CHECK(parses_str("{\"k\":\"a\\nb\\u0001\"}"));
	CHECK(parses_str("{\"it's\":\"l'eau\",\"q\":\"\\\"}\"}"));

	/* UTF-8 */
	CHECK(parses_str(
	    "{\"k\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"}"));
	CHECK(!parses_str("{\"k\":\"\xff\"}"));
	CHECK(!parses_str("{\"k\":\"\xc3\"}"));
	CHECK(!parses_str("{\"k\":\"\xc0\xaf\"}"));

	/* A number at the very end of an unterminated buffer. */
	heap = malloc(3);
	CHECK(heap != NULL);
	memcpy(heap, "427", 3);
	CHECK(parses(heap, 3, &t) && t == json_type_int);
	free(heap);

	/* Nesting: 32 levels parse, 33 are refused. */
	for (k = 31; k <= 34; k++) {
		memset(deep, '[', (size_t)k);
		memset(deep + k, ']', (size_t)k);
		CHECK(parses(deep, 2 * (size_t)k, NULL) == (k <= 32));
	}
	memset(deep, '[', sizeof(deep));
	CHECK(!parses(deep, sizeof(deep), NULL));
}

/* RFC 8259 and nothing more: numbers, escapes, one value per key. */
static void
test_strict(void)
{
	static const char *const good[] = {
		"[0]",
		"[-0]",
		"[1.5]",
		"[-1.5e3]",
		"[1E+2]",
		"[2e-2]",
		"[0.0]",
		"[9223372036854775807]",
		"[-9223372036854775808]",
		"[18446744073709551615]",
		"[1.5e-400]",
		"{\"a\":1,\"b\":{\"a\":2}}",
		"[{\"a\":1},{\"a\":1}]",
		"{\"a\":{\"a\":{\"a\":1}}}",
		"{\"k\":\"\\ud83d\\ude00\"}",
		"{\"k\":\"\\/\\b\\f\\r\\t\"}",
		"{\"a\":[],\"b\":{}}",
		"{\"{\":\":\",\"x\":\"{}[]:\"}",
	};
	static const char *const bad[] = {
		"1.",
		"[1.]",
		".5",
		"[.5]",
		"01",
		"[-01]",
		"[00]",
		"1e999",
		"[1e999]",
		"[-1e999]",
		"[1.0e400]",
		"NaN",
		"[+1]",
		"[1e]",
		"[1e+]",
		"[-]",
		"[1.e3]",
		"[0x10]",
		"[18446744073709551616]",
		"[-9223372036854775809]",
		"[99999999999999999999]",
		"{\"a\":1,\"a\":1}",
		"{\"a\":1,\"a\":2}",
		"{\"a\":1,\"\\u0061\":2}",
		"{\"o\":{\"a\":{},\"a\":[]}}",
		"[{\"x\":1},{\"y\":1,\"y\":2}]",
		"{\"a\":{\"x\":1},\"b\":2,\"a\":3}",
		"\"\\ud800\"",
		"{\"k\":\"\\ud800\"}",
		"{\"k\":\"\\udc00\"}",
		"{\"k\":\"\\ud800x\"}",
		"{\"k\":\"\\ud800\\u0041\"}",
		"{\"k\":\"\\udc00\\ud800\"}",
		"{\"k\":\"\\x41\"}",
		"{\"k\":\"\\u12\"}",
		"{\"k\":\"\\u12g4\"}",
		"{\"k\":\"\\'\"}",
		"{\"a\" 1}",
		"[1:2]",
	};
	size_t i;

	for (i = 0; i < nitems(good); i++)
		if (!parses_str(good[i])) {
			fprintf(stderr, "refused: %s\n", good[i]);
			CHECK(false);
		}
	for (i = 0; i < nitems(bad); i++)
		if (parses_str(bad[i])) {
			fprintf(stderr, "accepted: %s\n", bad[i]);
			CHECK(false);
		}
}

static void
test_decode_values(void)
{
	struct json_object *o;
	struct err e;
	struct in in;

	CHECK(decode("{\"name\":\"bob\",\"ext\":\"1001\",\"email\":"
		     "\"bob@example.com\",\"age\":42,\"big\":-5,"
		     "\"admin\":true,\"unknown\":{\"x\":1}}",
		  &in, &o, &e) == 0);
	CHECK(strcmp(in.name, "bob") == 0);
	CHECK(strcmp(in.ext, "1001") == 0);
	CHECK(strcmp(in.email, "bob@example.com") == 0);
	CHECK(in.age == 42 && in.has_age);
	CHECK(in.big == -5);
	CHECK(in.admin && in.has_admin && in.has_email);
	/* strings are borrowed from the object */
	CHECK(in.name == jh_get_str(o, "name"));
	json_object_put(o);

	/* absent optional fields: untouched, no present flag */
	CHECK(decode("{\"name\":\"x\"}", &in, &o, &e) == 0);
	CHECK(in.age == -7 && !in.has_age);
	CHECK(strcmp(in.ext, "untouched") == 0);
	CHECK(in.email == NULL && !in.has_email && !in.has_admin);
	json_object_put(o);

	/* null is the same as absent */
	CHECK(decode("{\"name\":\"x\",\"age\":null,\"email\":null}", &in, &o,
		  &e) == 0);
	CHECK(in.age == -7 && !in.has_age && !in.has_email);
	json_object_put(o);

	/* false is given, and says so */
	CHECK(decode("{\"name\":\"x\",\"admin\":false}", &in, &o, &e) == 0);
	CHECK(!in.admin && in.has_admin);
	json_object_put(o);

	/* the first failing field in table order is the one named */
	CHECK(rejects("{\"age\":\"x\",\"ext\":\"y\"}", "name"));
	CHECK(rejects("{\"name\":\"a\",\"age\":\"x\",\"ext\":\"y\"}", "ext"));
}

static void
test_decode_types(void)
{
	struct json_object *o, *s;
	struct err e;
	struct in in;

	/* not an object */
	o = json_object_new_array();
	CHECK(jh_decode(o, fields, nitems(fields), &in, &e) == -1);
	CHECK(e.code == ERR_INVALID && e.field[0] == '\0');
	json_object_put(o);
	CHECK(jh_decode(NULL, fields, nitems(fields), &in, &e) == -1);

	/* JH_TEXT */
	CHECK(rejects("{}", "name"));
	CHECK(rejects("{\"name\":null}", "name"));
	CHECK(rejects("{\"name\":\"\"}", "name"));
	CHECK(accepts("{\"name\":\"a\"}"));
	CHECK(accepts("{\"name\":\"12345678\"}"));
	CHECK(rejects("{\"name\":\"123456789\"}", "name"));
	CHECK(rejects("{\"name\":5}", "name"));
	CHECK(rejects("{\"name\":true}", "name"));
	CHECK(rejects("{\"name\":[\"a\"]}", "name"));
	CHECK(rejects("{\"name\":{}}", "name"));
	/* lengths are bytes: 4 two-byte letters fit, 5 do not */
	CHECK(accepts("{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}"));
	CHECK(rejects("{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}",
	    "name"));
	CHECK(accepts("{\"name\":\"\\u00e9t\\u00e9\"}"));
	CHECK(rejects("{\"name\":\"a\\u0000b\"}", "name"));

	/* bytes that never went through jh_parse: invalid UTF-8 */
	o = json_object_new_object();
	s = json_object_new_string_len("a\xff", 2);
	json_object_object_add(o, "name", s);
	CHECK(jh_decode(o, fields, nitems(fields), &in, &e) == -1);
	CHECK(strcmp(e.field, "name") == 0);
	json_object_object_add(o, "name",
	    json_object_new_string_len("\xed\xa0\x80", 3)); /* surrogate */
	CHECK(jh_decode(o, fields, nitems(fields), &in, &e) == -1);
	json_object_object_add(o, "name",
	    json_object_new_string_len("\xe0\x80\xaf", 3)); /* overlong */
	CHECK(jh_decode(o, fields, nitems(fields), &in, &e) == -1);
	json_object_object_add(o, "name",
	    json_object_new_string_len("\xf0\x9f\x98\x80", 4));
	CHECK(jh_decode(o, fields, nitems(fields), &in, &e) == 0);
	json_object_put(o);

	/* JH_DIGITS */
	CHECK(accepts("{\"name\":\"a\",\"ext\":\"10\"}"));
	CHECK(accepts("{\"name\":\"a\",\"ext\":\"123456\"}"));
	CHECK(rejects("{\"name\":\"a\",\"ext\":\"1\"}", "ext"));
	CHECK(rejects("{\"name\":\"a\",\"ext\":\"1234567\"}", "ext"));
	CHECK(rejects("{\"name\":\"a\",\"ext\":\"12a\"}", "ext"));
	CHECK(rejects("{\"name\":\"a\",\"ext\":\" 123\"}", "ext"));
	CHECK(rejects("{\"name\":\"a\",\"ext\":\"-12\"}", "ext"));
	CHECK(rejects("{\"name\":\"a\",\"ext\":1001}", "ext"));
	CHECK(rejects("{\"name\":\"a\",\"ext\":\"\xd9\xa1\xd9\xa2\"}", "ext"));

	/* JH_EMAIL */
	CHECK(accepts("{\"name\":\"a\",\"email\":\"a@b.co\"}"));
	CHECK(
	    accepts("{\"name\":\"a\",\"email\":\"first.last+x@mail.ex.org\"}"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"\"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"ab.co\"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"@b.co\"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"a@b\"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"a@@b.co\"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"a@b.co@c.de\"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"a b@c.de\"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"a@c.de \"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"a@c\\tde.f\"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"a@.bc\"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"a@bc.\"}", "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"a@b..c\"}", "email"));
	CHECK(accepts(
	    "{\"name\":\"a\",\"email\":\"x@abcdefghijklmnopqrstuvwxyz.com\"}"));
	CHECK(rejects("{\"name\":\"a\",\"email\":\"xy@"
		      "abcdefghijklmnopqrstuvwxyz.com\"}",
	    "email"));
	CHECK(rejects("{\"name\":\"a\",\"email\":7}", "email"));

	/* JH_INT */
	CHECK(accepts("{\"name\":\"a\",\"age\":0}"));
	CHECK(accepts("{\"name\":\"a\",\"age\":150}"));
	CHECK(rejects("{\"name\":\"a\",\"age\":151}", "age"));
	CHECK(rejects("{\"name\":\"a\",\"age\":-1}", "age"));
	CHECK(rejects("{\"name\":\"a\",\"age\":1.0}", "age"));
	CHECK(rejects("{\"name\":\"a\",\"age\":1e1}", "age"));
	CHECK(rejects("{\"name\":\"a\",\"age\":\"5\"}", "age"));
	CHECK(rejects("{\"name\":\"a\",\"age\":true}", "age"));
	CHECK(rejects("{\"name\":\"a\",\"age\":[5]}", "age"));
	CHECK(accepts("{\"name\":\"a\",\"big\":9223372036854775807}"));
	CHECK(accepts("{\"name\":\"a\",\"big\":-9223372036854775808}"));
	CHECK(rejects("{\"name\":\"a\",\"big\":9223372036854775808}", "big"));
	CHECK(rejects("{\"name\":\"a\",\"big\":18446744073709551615}", "big"));
	/* past uint64 too: not even parsed (json-c would saturate it) */
	CHECK(!parses_str("{\"name\":\"a\",\"big\":99999999999999999999}"));
	CHECK(decode("{\"name\":\"a\",\"big\":9223372036854775807}", &in, &o,
		  &e) == 0);
	CHECK(in.big == INT64_MAX);
	json_object_put(o);

	/* JH_BOOL */
	CHECK(accepts("{\"name\":\"a\",\"admin\":true}"));
	CHECK(rejects("{\"name\":\"a\",\"admin\":1}", "admin"));
	CHECK(rejects("{\"name\":\"a\",\"admin\":0}", "admin"));
	CHECK(rejects("{\"name\":\"a\",\"admin\":\"true\"}", "admin"));
	CHECK(rejects("{\"name\":\"a\",\"admin\":{}}", "admin"));
}

static void
test_build(void)
{
	struct json_object *o, *a;
	const char *text;
	size_t len;

	o = json_object_new_object();
	jh_add_str(o, "s", "a/b \"q\" \xc3\xa9\n");
	jh_add_str(o, "n", NULL);
	jh_add_int(o, "i", -5);
	jh_add_int(o, "max", INT64_MAX);
	jh_add_bool(o, "t", true);
	jh_add_bool(o, "f", false);
	jh_add_null(o, "z");
	jh_add_double(o, "d", 1.5);
	jh_add_double(o, "inf", INFINITY);
	a = json_object_new_array();
	json_object_array_add(a, json_object_new_int(1));
	json_object_object_add(o, "a", a);
	text = jh_text(o, &len);
	CHECK(strcmp(text, "{\"s\":\"a/b \\\"q\\\" \xc3\xa9\\n\",\"n\":null,"
			   "\"i\":-5,\"max\":9223372036854775807,"
			   "\"t\":true,\"f\":false,\"z\":null,\"d\":1.5,"
			   "\"inf\":null,\"a\":[1]}") == 0);
	CHECK(len == strlen(text));
	CHECK(jh_text(o, NULL) == text || strcmp(jh_text(o, NULL), text) == 0);

	CHECK(strcmp(jh_get_str(o, "s"), "a/b \"q\" \xc3\xa9\n") == 0);
	CHECK(jh_get_str(o, "i") == NULL);
	CHECK(jh_get_str(o, "n") == NULL);
	CHECK(jh_get_str(o, "missing") == NULL);

	/* a key added twice keeps the last value */
	jh_add_int(o, "i", 6);
	CHECK(strstr(jh_text(o, NULL), "\"i\":6") != NULL);
	json_object_put(o);

	/* the text round-trips through the parser */
	o = json_object_new_object();
	jh_add_str(o, "k", "\x01\x1f\\");
	text = jh_text(o, &len);
	a = jh_parse(text, len, NULL);
	CHECK(a != NULL);
	CHECK(strcmp(jh_get_str(a, "k"), "\x01\x1f\\") == 0);
	json_object_put(a);
	json_object_put(o);
}

int
main(void)
{
	test_parse();
	test_strict();
	test_decode_values();
	test_decode_types();
	test_build();
	printf("json: %d checks passed\n", checks);
	return 0;
}
