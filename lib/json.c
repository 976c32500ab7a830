#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lib/err.h"
#include "lib/json.h"

#define JH_DEPTH 32

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* The contract's one client text for any malformed body or field. */
#define JH_BAD "Invalid request format"

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
jh_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t
jh_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;
	unsigned long cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* Whether <s, n> is well-formed UTF-8: no overlongs, surrogates or NUL. */
static bool
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, len;

	while (i < n) {
		if (s[i] == 0 || (len = jh_utf8_seq(s + i, n - i)) == 0)
			return false;
		i += len;
	}
	return true;
}

/*
 * What the bytes must be before json-c sees them. json-c accepts
 * single-quoted strings, Infinity, "1." and raw control characters in
 * strings even when strict, turns a lone surrogate escape into U+FFFD and
 * keeps the last of two equal keys, so the text is checked first: outside
 * strings only structure, RFC 8259 numbers and the words true, false and
 * null; inside, only the escapes RFC 8259 names, surrogates in pairs.
 * members gets the member count of each object in the order the objects
 * open, which dup_free compares with what json-c built.
 */
struct lex {
	const char *buf;
	size_t len, i;
	size_t *members; /* one per '{', in order */
	size_t nobj;
};

static int
hex4(const char *p, size_t n, unsigned *out)
{
	unsigned v = 0;
	size_t i;
	int d;

	if (n < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		if ((d = jh_hex_digit(p[i])) < 0)
			return -1;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return 0;
}

/* A string from its opening quote; i ends past the closing one. */
static bool
lex_string(struct lex *l)
{
	const char *b = l->buf;
	unsigned u, lo;
	size_t i = l->i + 1;

	for (; i < l->len && b[i] != '"'; i++) {
		if ((unsigned char)b[i] < 0x20)
			return false;
		if (b[i] != '\\')
			continue;
		if (++i == l->len)
			return false;
		if (strchr("\"\\/bfnrt", b[i]) != NULL && b[i] != '\0')
			continue;
		if (b[i] != 'u' || hex4(b + i + 1, l->len - i - 1, &u) == -1)
			return false;
		i += 4;
		if (u >= 0xdc00 && u <= 0xdfff)
			return false; /* a low half alone */
		if (u < 0xd800 || u > 0xdbff)
			continue;
		/* A high half: only with a low half right after it. */
		if (i + 2 >= l->len || b[i + 1] != '\\' || b[i + 2] != 'u' ||
		    hex4(b + i + 3, l->len - i - 3, &lo) == -1 || lo < 0xdc00 ||
		    lo > 0xdfff)
			return false;
		i += 6;
	}
	if (i >= l->len)
		return false;
	l->i = i + 1;
	return true;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? from i. An integer must
 * also fit json-c's int64 or uint64, which otherwise saturates silently;
 * a too large fraction or exponent is caught once parsed (not finite).
 */
static bool
lex_number(struct lex *l)
{
	const char *b = l->buf;
	size_t i = l->i;
	bool neg = false, integer = true;
	uint64_t v = 0, d;

	if (b[i] == '-') {
		neg = true;
		i++;
	}
	if (i == l->len || !is_digit(b[i]))
		return false;
	if (b[i] == '0') {
		/* json-c takes "-01" for -1. */
		if (++i < l->len && is_digit(b[i]))
			return false;
	} else
		for (; i < l->len && is_digit(b[i]); i++) {
			d = (uint64_t)(b[i] - '0');
			if (v > (UINT64_MAX - d) / 10)
				return false;
			v = v * 10 + d;
		}
	if (i < l->len && b[i] == '.') {
		integer = false;
		if (++i == l->len || !is_digit(b[i]))
			return false;
		while (i < l->len && is_digit(b[i]))
			i++;
	}
	if (i < l->len && (b[i] == 'e' || b[i] == 'E')) {
		integer = false;
		if (++i < l->len && (b[i] == '+' || b[i] == '-'))
			i++;
		if (i == l->len || !is_digit(b[i]))
			return false;
		while (i < l->len && is_digit(b[i]))
			i++;
	}
	if (integer && neg && v > (uint64_t)INT64_MAX + 1)
		return false;
	l->i = i;
	return true;
}

static bool
lex_ok(struct lex *l)
{
	/* Which open containers are objects, and their members' slots. */
	size_t stack[JH_DEPTH + 1], depth = 0, n;
	const char *b = l->buf;
	char c;

	while (l->i < l->len) {
		c = b[l->i];
		if (c == '"') {
			if (!lex_string(l))
				return false;
		} else if (c == '-' || is_digit(c)) {
			if (!lex_number(l))
				return false;
		} else if (c >= 'a' && c <= 'z') {
			for (n = 0; l->i + n < l->len && b[l->i + n] >= 'a' &&
				    b[l->i + n] <= 'z';
			     n++)
				;
			if (!((n == 4 && memcmp(b + l->i, "true", 4) == 0) ||
				(n == 5 && memcmp(b + l->i, "false", 5) == 0) ||
				(n == 4 && memcmp(b + l->i, "null", 4) == 0)))
				return false;
			l->i += n;
		} else if (c == '{' || c == '[') {
			if (depth == nitems(stack))
				return false; /* past json-c's limit anyway */
			if (c == '{') {
				l->members[l->nobj] = 0;
				stack[depth++] = l->nobj++;
			} else
				stack[depth++] = SIZE_MAX;
			l->i++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return false;
			depth--;
			l->i++;
		} else if (c == ':') {
			if (depth == 0 || stack[depth - 1] == SIZE_MAX)
				return false;
			l->members[stack[depth - 1]]++;
			l->i++;
		} else if (c == ',' || is_space(c))
			l->i++;
		else
			return false;
	}
	return true;
}

/*
 * Whether every object of the tree has as many members as its text had
 * (json-c keeps one of two equal keys) and every number is finite. Objects
 * are visited in the order they opened in the text, as lex_ok counted them.
 */
static bool
tree_ok(struct json_object *o, const struct lex *l, size_t *k)
{
	struct json_object_iterator it, end;
	size_t i, n;

	switch (json_object_get_type(o)) {
	case json_type_double:
		return isfinite(json_object_get_double(o));
	case json_type_object:
		if (*k >= l->nobj ||
		    (size_t)json_object_object_length(o) != l->members[*k])
			return false;
		(*k)++;
		it = json_object_iter_begin(o);
		end = json_object_iter_end(o);
		for (; !json_object_iter_equal(&it, &end);
		     json_object_iter_next(&it))
			if (!tree_ok(json_object_iter_peek_value(&it), l, k))
				return false;
		return true;
	case json_type_array:
		n = json_object_array_length(o);
		for (i = 0; i < n; i++)
			if (!tree_ok(json_object_array_get_idx(o, i), l, k))
				return false;
		return true;
	default:
		return true;
	}
}

static struct json_object *
refused(struct json_object *obj, struct err *e)
{
	json_object_put(obj);
	err_set(e, ERR_INVALID, JH_BAD);
	return NULL;
}

struct json_object *
jh_parse(const char *buf, size_t len, struct err *e)
{
	enum json_tokener_error jerr;
	struct json_tokener *tok;
	struct json_object *obj;
	struct lex l = { 0 };
	size_t i, end, k = 0, opens = 0;
	bool ok;

	if (buf == NULL)
		len = 0;
	for (i = 0; i < len && is_space(buf[i]); i++)
		;
	/* json-c's own UTF-8 check lets overlong forms through. */
	if (i == len || len > INT_MAX - 1 ||
	    !utf8_valid((const unsigned char *)buf, len))
		return refused(NULL, e);
	for (i = 0; i < len; i++)
		opens += buf[i] == '{';
	l.buf = buf;
	l.len = len;
	if ((l.members = calloc(opens + 1, sizeof(*l.members))) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (!lex_ok(&l)) {
		free(l.members);
		return refused(NULL, e);
	}
	if ((tok = json_tokener_new_ex(JH_DEPTH)) == NULL) {
		free(l.members);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	/* Strict: no comments, trailing commas or leading zeros. */
	json_tokener_set_flags(tok,
	    JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue) {
		/* A top-level number only ends at the end of input: say so. */
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	for (i = end; i < len && is_space(buf[i]); i++)
		;
	ok = jerr == json_tokener_success && obj != NULL && i == len &&
	     tree_ok(obj, &l, &k);
	free(l.members);
	return ok ? obj : refused(obj, e);
}

static bool
len_ok(size_t n, const struct jh_field *f)
{
	return f->min >= 0 && f->max >= 0 && n >= (uint64_t)f->min &&
	       n <= (uint64_t)f->max;
}

/* local@domain.tld: one @, no blanks or controls, a dot inside the domain. */
static bool
email_ok(const char *s, size_t n)
{
	const char *at, *dom;
	size_t i, dn;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return false;
	/* C1 controls, U+0080 to U+009F, are 0xc2 0x80-0x9f in UTF-8. */
	for (i = 0; i + 1 < n; i++)
		if ((unsigned char)s[i] == 0xc2 &&
		    (unsigned char)s[i + 1] <= 0x9f)
			return false;
	if ((at = memchr(s, '@', n)) == NULL || at == s)
		return false;
	dom = at + 1;
	dn = n - (size_t)(dom - s);
	if (memchr(dom, '@', dn) != NULL || dn < 3)
		return false;
	if (dom[0] == '.' || dom[dn - 1] == '.' || memchr(dom, '.', dn) == NULL)
		return false;
	for (i = 1; i < dn; i++)
		if (dom[i] == '.' && dom[i - 1] == '.')
			return false;
	return true;
}

static int
decode_string(struct json_object *v, const struct jh_field *f, void *dst)
{
	const char *s;
	size_t n, i;

	if (!json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (!len_ok(n, f) || !utf8_valid((const unsigned char *)s, n))
		return -1;
	switch (f->type) {
	case JH_DIGITS:
		for (i = 0; i < n; i++)
			if (s[i] < '0' || s[i] > '9')
				return -1;
		break;
	case JH_EMAIL:
		if (!email_ok(s, n))
			return -1;
		break;
	default:
		break;
	}
	memcpy(dst, &s, sizeof(s));
	return 0;
}

static int
decode_int(struct json_object *v, const struct jh_field *f, void *dst)
{
	int64_t x;

	if (!json_object_is_type(v, json_type_int))
		return -1;
	x = json_object_get_int64(v);
	/* get_int64 saturates values that only fit in a uint64. */
	if (x == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
		return -1;
	if (x < f->min || x > f->max)
		return -1;
	memcpy(dst, &x, sizeof(x));
	return 0;
}

static int
decode_bool(struct json_object *v, void *dst)
{
	bool b;

	if (!json_object_is_type(v, json_type_boolean))
		return -1;
	b = json_object_get_boolean(v) != 0;
	memcpy(dst, &b, sizeof(b));
	return 0;
}

int
jh_decode(struct json_object *obj, const struct jh_field *fields,
    size_t nfields, void *out, struct err *e)
{
	const struct jh_field *f;
	struct json_object *v;
	char *base = out;
	bool yes = true;
	size_t i;
	int rc;

	if (!json_object_is_type(obj, json_type_object))
		return err_set(e, ERR_INVALID, JH_BAD);
	for (i = 0; i < nfields; i++) {
		f = &fields[i];
		/* null counts as absent, as an omitted key would. */
		if (!json_object_object_get_ex(obj, f->name, &v) || v == NULL) {
			if (f->required)
				return err_set_field(e, ERR_INVALID, f->name,
				    JH_BAD);
			continue;
		}
		switch (f->type) {
		case JH_TEXT:
		case JH_DIGITS:
		case JH_EMAIL:
			rc = decode_string(v, f, base + f->offset);
			break;
		case JH_INT:
			rc = decode_int(v, f, base + f->offset);
			break;
		case JH_BOOL:
			rc = decode_bool(v, base + f->offset);
			break;
		default:
			rc = -1;
			break;
		}
		if (rc == -1)
			return err_set_field(e, ERR_INVALID, f->name, JH_BAD);
		if (f->present_offset != 0)
			memcpy(base + f->present_offset, &yes, sizeof(yes));
	}
	return 0;
}

void
jh_add_str(struct json_object *o, const char *key, const char *val)
{
	json_object_object_add(o, key,
	    val != NULL ? json_object_new_string(val) : NULL);
}

void
jh_add_int(struct json_object *o, const char *key, int64_t val)
{
	json_object_object_add(o, key, json_object_new_int64(val));
}

void
jh_add_bool(struct json_object *o, const char *key, bool val)
{
	json_object_object_add(o, key, json_object_new_boolean(val));
}

void
jh_add_null(struct json_object *o, const char *key)
{
	json_object_object_add(o, key, NULL);
}

void
jh_add_double(struct json_object *o, const char *key, double val)
{
	/* json-c would write NaN or Infinity, which is not JSON. */
	json_object_object_add(o, key,
	    isfinite(val) ? json_object_new_double(val) : NULL);
}

const char *
jh_get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

const char *
jh_text(struct json_object *o, size_t *len)
{
	size_t n = 0;
	const char *s;

	s = json_object_to_json_string_length(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	if (len != NULL)
		*len = n;
	return s;
}

struct json_object *
jh_verbatim(const char *text)
{
	struct json_object *o;
	char *copy;

	if (text == NULL || (copy = strdup(text)) == NULL)
		return NULL;
	if ((o = json_object_new_object()) == NULL) {
		free(copy);
		return NULL;
	}
	json_object_set_serializer(o, json_object_userdata_to_json_string, copy,
	    json_object_free_userdata);
	return o;
}
