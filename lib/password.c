#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lib/err.h"
#include "lib/password.h"

/*
 * Used when a setting cannot be generated: any valid yescrypt setting does,
 * since it only has to cost what a real check costs.
 */
#define DUMMY_FALLBACK "$y$j9T$Bv7mHgJ3n1u1iGtlrCr9E/"

static const char *const prefixes[] = { "$y$", "$2a$", "$2b$", "$2y$" };

static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_setting[CRYPT_GENSALT_OUTPUT_SIZE];

static void
dummy_init(void)
{
	char *s;

	s = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (s != NULL && s[0] != '*' && strlen(s) < sizeof(dummy_setting))
		memcpy(dummy_setting, s, strlen(s) + 1);
	else
		memcpy(dummy_setting, DUMMY_FALLBACK, sizeof(DUMMY_FALLBACK));
	free(s);
}

/*
 * crypt_r into a zeroed heap buffer (struct crypt_data is ~32 KiB, too big
 * for FastCGI and relay stacks). Copies the result into out; -1 when crypt
 * fails (NULL or the "*" failure token) or out is too small. The scratch
 * area is wiped because it held the password's derived state.
 */
static int
crypt_into(const char *pw, const char *setting, char *out, size_t size)
{
	struct crypt_data *cd;
	const char *h;
	size_t len;
	int rc = -1;

	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	h = crypt_r(pw, setting, cd);
	if (h != NULL && h[0] != '*' && (len = strlen(h)) < size) {
		memcpy(out, h, len + 1);
		rc = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}

int
password_hash(const char *pw, char *out, size_t size, struct err *e)
{
	char *setting;
	int rc;

	if (pw == NULL)
		return err_set(e, ERR_INTERNAL, "password_hash: no password");
	if (size < PASSWORD_HASH_MAX)
		return err_set(e, ERR_INTERNAL,
		    "password_hash: output buffer too small");
	if ((setting = crypt_gensalt_ra("$y$", 0, NULL, 0)) == NULL)
		return err_set(e, ERR_INTERNAL, "crypt_gensalt: %s",
		    strerror(errno));
	rc = crypt_into(pw, setting, out, size);
	free(setting);
	if (rc == -1) {
		explicit_bzero(out, size);
		return err_set(e, ERR_INTERNAL, "crypt: hashing failed");
	}
	return 0;
}

static bool
known_prefix(const char *hash)
{
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(hash, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/* Whether a and b are equal, in time that depends only on their lengths. */
static bool
equal_ct(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	volatile unsigned char diff = 0;

	if (la != lb)
		return false;
	for (i = 0; i < la; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
	return diff == 0;
}

/* Spend one yescrypt computation for nothing. */
static void
burn(const char *pw)
{
	char scratch[CRYPT_OUTPUT_SIZE];

	pthread_once(&dummy_once, dummy_init);
	(void)crypt_into(pw != NULL ? pw : "", dummy_setting, scratch,
	    sizeof(scratch));
	explicit_bzero(scratch, sizeof(scratch));
}

bool
password_verify(const char *pw, const char *hash)
{
	char computed[CRYPT_OUTPUT_SIZE];
	bool ok;

	if (pw == NULL || hash == NULL || !known_prefix(hash) ||
	    strlen(hash) >= CRYPT_OUTPUT_SIZE) {
		burn(pw);
		return false;
	}
	if (crypt_into(pw, hash, computed, sizeof(computed)) == -1) {
		/* A malformed hash fails fast inside crypt: pay anyway. */
		burn(pw);
		return false;
	}
	ok = equal_ct(computed, hash);
	explicit_bzero(computed, sizeof(computed));
	return ok;
}

int
password_random(char *out, size_t len, struct err *e)
{
	/* 64 symbols: a byte masked to 6 bits picks one without bias. */
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz"
				       "0123456789-_";
	unsigned char buf[64];
	size_t done = 0, i, n;
	ssize_t got;

	while (done < len) {
		n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		got = getrandom(buf, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			explicit_bzero(buf, sizeof(buf));
			explicit_bzero(out, done);
			return err_set(e, ERR_INTERNAL, "getrandom: %s",
			    strerror(errno));
		}
		for (i = 0; i < (size_t)got; i++)
			out[done + i] = alphabet[buf[i] & 63];
		done += (size_t)got;
	}
	out[len] = '\0';
	explicit_bzero(buf, sizeof(buf));
	return 0;
}
