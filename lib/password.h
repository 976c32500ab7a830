#ifndef LIB_PASSWORD_H
#define LIB_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

struct err;

#define PASSWORD_HASH_MAX 128

/* Hash pw with yescrypt into out (at least PASSWORD_HASH_MAX bytes). */
int password_hash(const char *pw, char *out, size_t size, struct err *e);

/*
 * Whether pw matches hash. Accepts yescrypt ("$y$") and bcrypt ("$2a$",
 * "$2b$", "$2y$") hashes, so voip-application's users import as they are.
 * A NULL or malformed hash never matches (and costs the same time as a real
 * check, so missing users are not told apart by timing).
 */
bool password_verify(const char *pw, const char *hash);

/* Write a random password of len characters (URL-safe) plus NUL. */
int password_random(char *out, size_t len, struct err *e);

#endif
