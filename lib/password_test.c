#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/check.h"
#include "lib/err.h"
#include "lib/password.h"

/* voip-application's seeded users: bcrypt cost 10 of "password". */
static const char upstream[] =
    "$2a$10$92IXUNpkjO0rOQ5byMi.Ye4oKoEa3Ro9llC/.og/at2.uheWG/igi";

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double
verify_ms(const char *pw, const char *hash)
{
	double t0 = now_ms();

	(void)password_verify(pw, hash);
	return now_ms() - t0;
}

static void
test_bcrypt(void)
{
	char h[sizeof(upstream)];

	CHECK(password_verify("password", upstream));
	CHECK(!password_verify("Password", upstream));
	CHECK(!password_verify("password ", upstream));
	CHECK(!password_verify("", upstream));

	/* The bcrypt variants agree on ASCII passwords. */
	memcpy(h, upstream, sizeof(h));
	h[2] = 'b';
	CHECK(password_verify("password", h));
	h[2] = 'y';
	CHECK(password_verify("password", h));
	CHECK(!password_verify("Password", h));
}

static void
test_yescrypt(void)
{
	char h1[PASSWORD_HASH_MAX], h2[PASSWORD_HASH_MAX];
	char small[PASSWORD_HASH_MAX - 1];
	struct err e = { 0 };

	CHECK(password_hash("correct horse", h1, sizeof(h1), &e) == 0);
	CHECK(strncmp(h1, "$y$", 3) == 0);
	CHECK(strlen(h1) > 40);
	CHECK(password_verify("correct horse", h1));
	CHECK(!password_verify("correct horsE", h1));
	CHECK(!password_verify("", h1));

	/* Fresh salt each time. */
	CHECK(password_hash("correct horse", h2, sizeof(h2), &e) == 0);
	CHECK(strcmp(h1, h2) != 0);
	CHECK(password_verify("correct horse", h2));

	CHECK(password_hash("", h2, sizeof(h2), &e) == 0);
	CHECK(password_verify("", h2));
	CHECK(!password_verify("x", h2));

	CHECK(password_hash("x", small, sizeof(small), &e) == -1);
	CHECK(e.code == ERR_INTERNAL);
	CHECK(password_hash(NULL, h2, sizeof(h2), &e) == -1);
}

static void
test_malformed(void)
{
	char h[PASSWORD_HASH_MAX], t[PASSWORD_HASH_MAX];
	struct crypt_data *cd;
	struct err e = { 0 };
	const char *md5;
	size_t n;

	CHECK(password_hash("pw", h, sizeof(h), &e) == 0);

	CHECK(!password_verify("pw", NULL));
	CHECK(!password_verify(NULL, h));
	CHECK(!password_verify(NULL, NULL));
	CHECK(!password_verify("pw", ""));
	CHECK(!password_verify("pw", "pw")); /* a plaintext "hash" */
	CHECK(!password_verify("*0", "*0"));
	CHECK(!password_verify("pw", "$y$"));
	CHECK(!password_verify("pw", "$y$garbage"));
	CHECK(!password_verify("pw", "$2a$10$short"));
	CHECK(!password_verify("password", "$2a$"));
	CHECK(!password_verify("password", "$2x$10$92IXUNpkjO0rOQ5byMi.Ye4o"
					   "KoEa3Ro9llC/.og/at2.uheWG/igi"));

	/* Truncated, extended or altered real hashes. */
	n = strlen(h);
	memcpy(t, h, n + 1);
	t[n - 1] = '\0';
	CHECK(!password_verify("pw", t));
	memcpy(t, h, n + 1);
	t[n - 1] = t[n - 1] == 'A' ? 'B' : 'A';
	CHECK(!password_verify("pw", t));
	memcpy(t, h, n + 1);
	t[n] = 'A';
	t[n + 1] = '\0';
	CHECK(!password_verify("pw", t));

	/* The setting alone (no hash part) is not a hash of anything. */
	memcpy(t, h, n + 1);
	*strrchr(t, '$') = '\0';
	CHECK(!password_verify("pw", t));

	/* A correct hash in a method we do not accept. */
	cd = calloc(1, sizeof(*cd));
	CHECK(cd != NULL);
	md5 = crypt_r("pw", "$1$abcdefgh$", cd);
	if (md5 != NULL && md5[0] == '$') {
		CHECK(!password_verify("pw", md5));
	}
	md5 = crypt_r("pw", "ab", cd); /* traditional DES, if enabled */
	if (md5 != NULL && md5[0] != '*') {
		CHECK(!password_verify("pw", md5));
	}
	free(cd);
}

/* A missing user (NULL hash) must cost about what a real check costs. */
static void
test_timing(void)
{
	char h[PASSWORD_HASH_MAX];
	struct err e = { 0 };
	double real = 1e9, missing = 1e9, bad = 1e9, t;
	int i;

	CHECK(password_hash("timing", h, sizeof(h), &e) == 0);
	(void)verify_ms("x", NULL); /* the dummy setting is made once */
	for (i = 0; i < 3; i++) {
		if ((t = verify_ms("timing", h)) < real)
			real = t;
		if ((t = verify_ms("timing", NULL)) < missing)
			missing = t;
		if ((t = verify_ms("timing", "$y$garbage")) < bad)
			bad = t;
	}
	CHECK(missing > real / 3);
	CHECK(bad > real / 3);
}

static void
test_random(void)
{
	static const char url_safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz0123456789-_";
	char a[65], b[65];
	struct err e = { 0 };
	size_t i;

	CHECK(password_random(a, 64, &e) == 0);
	CHECK(strlen(a) == 64);
	for (i = 0; i < 64; i++)
		CHECK(a[i] != '\0' && strchr(url_safe, a[i]) != NULL);
	CHECK(password_random(b, 64, &e) == 0);
	CHECK(strcmp(a, b) != 0);
	CHECK(password_random(a, 0, &e) == 0);
	CHECK(a[0] == '\0');
	CHECK(password_random(a, 16, &e) == 0);
	CHECK(strlen(a) == 16);
}

int
main(void)
{
	test_bcrypt();
	test_yescrypt();
	test_malformed();
	test_timing();
	test_random();
	printf("password: %d checks passed\n", checks);
	return 0;
}
