#ifndef LIB_PREFORK_H
#define LIB_PREFORK_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct err;

/*
 * A pre-forking supervisor for programs that share one listen socket: the
 * calling process forks n workers and only supervises them from then on. A
 * worker that dies while not stopping is restarted after a delay that grows
 * while it keeps dying young; a stop signal (any of stop[]) is passed on as
 * SIGTERM, the workers get PREFORK_STOP_WAIT_MS before SIGKILL, and the
 * supervisor exits 0 when they are gone. Workers get SIGTERM if the
 * supervisor dies.
 */

#define PREFORK_MAX 64

/*
 * Returns 0 in each new worker, whose signal mask is orig_mask plus stop[]
 * (blocked: the worker opens them where it can take them). Never returns in
 * the supervisor; -1 (e set) only when not even the first fork worked.
 */
int prefork_run(const char *program, int n, const sigset_t *orig_mask,
    const int *stop, size_t nstop, struct err *e);

/* The monotonic clock in milliseconds, which the supervisor's timers and a
 * worker's drain deadline run on. */
int64_t prefork_now_ms(void);

#endif
