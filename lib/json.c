#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "lib/err.h"
#include "lib/json.h"

#define JH_DEPTH 32

/* The contract's one client text for any malformed body or field. */
#define JH_BAD "Invalid request format"

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
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
 * json-c accepts single-quoted strings, Infinity and raw control characters
 * in strings even when strict, so the bytes are checked first: outside
 * strings only structure, numbers and the words true, false and null.
 */
static bool
lex_ok(const char *buf, size_t len)
{
	size_t i = 0, n;
	char c;

	while (i < len) {
		c = buf[i];
		if (c == '"') {
			for (i++; i < len && buf[i] != '"'; i++) {
				if ((unsigned char)buf[i] < 0x20)
					return false;
				if (buf[i] == '\\')
					i++;
			}
			i++;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			if ((c == 'e' || c == 'E') && i > 0 &&
			    buf[i - 1] >= '0' && buf[i - 1] <= '9') {
				i++;
				continue;
			}
			for (n = 0; i + n < len && buf[i + n] >= 'a' &&
				    buf[i + n] <= 'z';
			     n++)
				;
			if (!((n == 4 && memcmp(buf + i, "true", 4) == 0) ||
				(n == 5 && memcmp(buf + i, "false", 5) == 0) ||
				(n == 4 && memcmp(buf + i, "null", 4) == 0)))
				return false;
			i += n;
		} else if (strchr(" \t\r\n{}[],:0123456789+-.", c) != NULL &&
			   c != '\0')
			i++;
		else
			return false;
	}
	return true;
}

struct json_object *
jh_parse(const char *buf, size_t len, struct err *e)
{
	enum json_tokener_error jerr;
	struct json_tokener *tok;
	struct json_object *obj;
	size_t i, end;

	if (buf == NULL)
		len = 0;
	for (i = 0; i < len && is_space(buf[i]); i++)
		;
	/* json-c's own UTF-8 check lets overlong forms through. */
	if (i == len || len > INT_MAX - 1 || !lex_ok(buf, len) ||
	    !utf8_valid((const unsigned char *)buf, len)) {
		err_set(e, ERR_INVALID, JH_BAD);
		return NULL;
	}
	if ((tok = json_tokener_new_ex(JH_DEPTH)) == NULL) {
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
	if (jerr != json_tokener_success || obj == NULL) {
		json_object_put(obj);
		err_set(e, ERR_INVALID, JH_BAD);
		return NULL;
	}
	for (i = end; i < len && is_space(buf[i]); i++)
		;
	if (i != len) {
		json_object_put(obj);
		err_set(e, ERR_INVALID, JH_BAD);
		return NULL;
	}
	return obj;
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
