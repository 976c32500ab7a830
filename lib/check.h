#ifndef LIB_CHECK_H
#define LIB_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/*
 * The unit tests' one assertion: counts, and on failure prints file, line
 * and the expression, then exits 1. Tests end with
 * printf("<module>: %d checks passed\n", checks).
 */
static int checks __attribute__((unused));

#define CHECK(x)                                                               \
	do {                                                                   \
		checks++;                                                      \
		if (!(x)) {                                                    \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
			    __LINE__, #x);                                     \
			exit(1);                                               \
		}                                                              \
	} while (0)

#endif
