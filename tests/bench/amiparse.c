/*
 * AMI events parsed per second by lib/ami on one core (make bench):
 *
 *   amiparse [TRANSCRIPT [SECONDS]]
 *
 * The stream is the captured transcript's received bytes (429 events, 39
 * responses, 4 banners, 161 KB), fed again and again in 16 KB reads as a
 * socket would deliver them; every message's ActionID and one header are
 * looked up, as the link does. Prints one line:
 *   "AMIPARSE <events/s> <messages/s> <MB/s> <errors>".
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/ami.h"
#include "lib/err.h"

#define READ_SIZE (16 * 1024)

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The RECV blocks of the annotated transcript, joined (see
 * lib/ami_test.c for the format). */
static char *
recv_stream(const char *path, size_t *len)
{
	char *t, *out;
	size_t n, i = 0, eol, end, k, o = 0;
	long sz;
	bool take;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 ||
	    (sz = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "amiparse: %s: cannot read\n", path);
		exit(2);
	}
	n = (size_t)sz;
	if ((t = malloc(n)) == NULL || (out = malloc(n)) == NULL ||
	    fread(t, 1, n, f) != n) {
		fprintf(stderr, "amiparse: %s: cannot read\n", path);
		exit(2);
	}
	fclose(f);
	while (i < n) {
		if (n - i < 5 || memcmp(t + i, "#### ", 5) != 0) {
			i++;
			continue;
		}
		for (eol = i; eol < n && t[eol] != '\n'; eol++)
			;
		take = eol - i >= 9 && memcmp(t + i + 5, "RECV", 4) == 0;
		i = eol + 1;
		for (end = i; end < n && !(t[end - 1] == '\n' && n - end >= 5 &&
					     memcmp(t + end, "#### ", 5) == 0);
		     end++)
			;
		if (take) {
			k = end - i;
			if (k > 0 && t[i + k - 1] == '\n' &&
			    (k < 2 || t[i + k - 2] != '\r'))
				k--;
			memcpy(out + o, t + i, k);
			o += k;
		}
		i = end;
	}
	free(t);
	*len = o;
	return out;
}

int
main(int argc, char **argv)
{
	const char *path =
	    argc > 1 ? argv[1] : "tests/fixtures/ami-transcript.raw";
	double secs = argc > 2 ? atof(argv[2]) : 2.0, t0, dt;
	uint64_t events = 0, msgs = 0, errors = 0, bytes = 0, sink = 0;
	struct err e = { 0 };
	struct ami_parser *p;
	struct ami_msg m;
	size_t len, off, n, got;
	char *s;
	int rc;

	s = recv_stream(path, &len);
	if ((p = ami_parser_new(0, 0, &e)) == NULL) {
		fprintf(stderr, "amiparse: %s\n", e.msg);
		return 1;
	}
	t0 = now_s();
	do {
		for (off = 0; off < len; off += got) {
			n = len - off < READ_SIZE ? len - off : READ_SIZE;
			for (got = 0; got < n;) {
				got +=
				    ami_parse_feed(p, s + off + got, n - got);
				while ((rc = ami_parse_next(p, &m, &e)) != 0) {
					if (rc == -1) {
						errors++;
						continue;
					}
					msgs++;
					events += m.kind == AMI_EVENT;
					sink += m.action_id != NULL;
					sink +=
					    ami_msg_get(&m, "Uniqueid") != NULL;
				}
			}
		}
		bytes += len;
	} while ((dt = now_s() - t0) < secs);
	printf("AMIPARSE %.0f %.0f %.1f %llu\n", (double)events / dt,
	    (double)msgs / dt, (double)bytes / dt / 1e6,
	    (unsigned long long)errors + (sink == 0));
	ami_parser_free(p);
	free(s);
	return 0;
}
