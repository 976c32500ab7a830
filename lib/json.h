#ifndef LIB_JSON_H
#define LIB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct json_object;

/*
 * Field tables over json-c: decode a request body into a typed struct in one
 * call, so handlers see validated values only.
 */
enum jh_type {
	JH_TEXT,   /* const char *: string, length in [min, max] bytes */
	JH_DIGITS, /* const char *: string of ASCII digits, length in [min, max]
		    */
	JH_EMAIL, /* const char *: string shaped local@domain.tld, len <= max */
	JH_INT,   /* int64_t: integer in [min, max] */
	JH_BOOL,  /* bool */
};

struct jh_field {
	const char *name;
	enum jh_type type;
	bool required;
	int64_t min, max;
	size_t offset;         /* offsetof(struct ..., member) */
	size_t present_offset; /* offsetof a bool set when given; 0 = none */
};

/*
 * Decode obj (must be a JSON object) into out by the table. Missing optional
 * fields leave out untouched; strings are borrowed from obj. Unknown keys are
 * ignored. ERR_INVALID with the field name on a missing required field, a
 * wrong type or a value out of range.
 */
int jh_decode(struct json_object *obj, const struct jh_field *fields,
    size_t nfields, void *out, struct err *e);

/*
 * Parse exactly one JSON value from <buf, len> (no trailing garbage, depth
 * limited). NULL with ERR_INVALID on failure. The caller owns the result.
 */
struct json_object *jh_parse(const char *buf, size_t len, struct err *e);

/* Add helpers: take ownership of nothing but build the member in place.
 * A NULL string becomes JSON null. */
void jh_add_str(struct json_object *o, const char *key, const char *val);
void jh_add_int(struct json_object *o, const char *key, int64_t val);
void jh_add_bool(struct json_object *o, const char *key, bool val);
void jh_add_null(struct json_object *o, const char *key);
void jh_add_double(struct json_object *o, const char *key, double val);

/* Borrowed string member or NULL when absent or not a string. */
const char *jh_get_str(struct json_object *o, const char *key);

/* Length of the well-formed UTF-8 sequence at s (at most n bytes; n > 0):
 * 1 to 4, or 0 for an invalid, overlong or surrogate one. */
size_t jh_utf8_seq(const unsigned char *s, size_t n);

/* The value of one hexadecimal digit (either case), or -1. Shared with the
 * URL decoder in http, which has the same rules as \u escapes. */
int jh_hex_digit(char c);

/* Serialize without spaces; the string lives as long as o. */
const char *jh_text(struct json_object *o, size_t *len);

/*
 * An object that serializes as text, which is JSON already (copied): a
 * value rendered once and written as it is, however often it is placed.
 * NULL when text is NULL or out of memory.
 */
struct json_object *jh_verbatim(const char *text);

#endif
