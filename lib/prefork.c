#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/prefork.h"

#define PREFORK_RESPAWN_MS     1000
#define PREFORK_RESPAWN_MAX_MS 30000
#define PREFORK_STOP_WAIT_MS   10000

/* What a new worker needs to set its signal mask. */
struct prefork {
	const sigset_t *orig_mask;
	const int *stop;
	size_t nstop;
};

int64_t
prefork_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the new worker: 0. In the supervisor: the pid, or -1. */
static pid_t
spawn(const struct prefork *p, pid_t supervisor)
{
	sigset_t mask;
	size_t i;
	pid_t pid;

	if ((pid = fork()) != 0)
		return pid;
	/* The supervisor's mask, less SIGCHLD: stop signals stay blocked. */
	mask = *p->orig_mask;
	for (i = 0; i < p->nstop; i++)
		sigaddset(&mask, p->stop[i]);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	/* A worker must not outlive its supervisor and keep the socket. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != supervisor)
		raise(SIGTERM); /* pending until the first wait */
	return 0;
}

struct worker {
	pid_t pid;        /* 0: none running */
	int64_t started;  /* ms */
	int64_t due;      /* ms: restart then; 0: not scheduled */
	int64_t delay_ms; /* the last restart delay */
};

static void
supervise_reap(struct worker *w, int n, bool stopping)
{
	int64_t now;
	pid_t pid;
	int st, i;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (i = 0; i < n && w[i].pid != pid; i++)
			;
		if (i == n)
			continue;
		w[i].pid = 0;
		if (WIFSIGNALED(st))
			log_msg(stopping ? LOG_WARN : LOG_ERROR,
			    "prefork: worker %d killed by signal %d%s",
			    (int)pid, WTERMSIG(st),
			    stopping ? "" : ", restarting");
		else if (WEXITSTATUS(st) != 0 || !stopping)
			log_msg(stopping ? LOG_WARN : LOG_ERROR,
			    "prefork: worker %d exited with status %d%s",
			    (int)pid, WEXITSTATUS(st),
			    stopping ? "" : ", restarting");
		if (stopping)
			continue;
		/* Delayed, and more so each time it dies young: no spin. */
		now = prefork_now_ms();
		if (now - w[i].started >= PREFORK_RESPAWN_MAX_MS ||
		    w[i].delay_ms == 0)
			w[i].delay_ms = PREFORK_RESPAWN_MS;
		else if ((w[i].delay_ms *= 2) > PREFORK_RESPAWN_MAX_MS)
			w[i].delay_ms = PREFORK_RESPAWN_MAX_MS;
		w[i].due = now + w[i].delay_ms;
	}
}

/* Start worker slot i: 0 in the new worker, 1 in the supervisor. */
static int
supervise_start(const struct prefork *p, struct worker *w, pid_t self)
{
	pid_t pid;

	w->due = 0;
	if ((pid = spawn(p, self)) == 0)
		return 0;
	if (pid == -1) {
		log_msg(LOG_ERROR, "prefork: fork: %s", strerror(errno));
		w->delay_ms = PREFORK_RESPAWN_MS;
		w->due = prefork_now_ms() + w->delay_ms;
		return 1;
	}
	w->pid = pid;
	w->started = prefork_now_ms();
	return 1;
}

/*
 * The supervisor: forks n workers, restarts any that dies while not
 * stopping, and on a stop signal passes SIGTERM on, waits for them (SIGKILL
 * after PREFORK_STOP_WAIT_MS) and exits 0. Returns 0 only in a new worker,
 * -1 when not even the first worker could be forked.
 */
int
prefork_run(const char *program, int n, const sigset_t *orig_mask,
    const int *stop, size_t nstop, struct err *e)
{
	const struct prefork p = { orig_mask, stop, nstop };
	struct worker w[PREFORK_MAX];
	int64_t deadline = 0, now, wait_ms;
	bool stopping = false, killed = false;
	pid_t self = getpid();
	struct sigaction sa;
	struct timespec ts;
	sigset_t set;
	int i, sig, live;

	sigemptyset(&set);
	for (i = 0; i < (int)nstop; i++)
		sigaddset(&set, stop[i]);
	sigaddset(&set, SIGCHLD);
	/* SIGCHLD must not be ignored, or children are reaped unseen. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    sigaction(SIGCHLD, &sa, NULL) == -1)
		return err_set(e, ERR_INTERNAL, "signals: %s", strerror(errno));
	memset(w, 0, sizeof(w));
	for (i = 0; i < n; i++) {
		if (supervise_start(&p, &w[i], self) == 0)
			return 0;
		if (i == 0 && w[0].pid == 0) {
			sigprocmask(SIG_SETMASK, orig_mask, NULL);
			return err_set(e, ERR_INTERNAL, "fork: %s",
			    strerror(errno));
		}
	}
	log_msg(LOG_INFO, "prefork: %s supervising %d workers", program, n);
	for (;;) {
		supervise_reap(w, n, stopping);
		now = prefork_now_ms();
		wait_ms = -1;
		live = 0;
		for (i = 0; i < n; i++) {
			if (w[i].pid == 0 && !stopping && w[i].due != 0 &&
			    w[i].due <= now &&
			    supervise_start(&p, &w[i], self) == 0)
				return 0;
			if (w[i].pid != 0)
				live++;
			else if (!stopping && w[i].due != 0 &&
				 (wait_ms == -1 || w[i].due - now < wait_ms))
				wait_ms = w[i].due - now;
		}
		if (stopping) {
			if (live == 0)
				_exit(0);
			if (!killed && now >= deadline) {
				log_msg(LOG_WARN, "prefork: killing %d workers",
				    live);
				for (i = 0; i < n; i++)
					if (w[i].pid != 0)
						kill(w[i].pid, SIGKILL);
				killed = true;
			}
			wait_ms = killed ? 1000 : deadline - now;
		}
		if (wait_ms >= 0) {
			ts.tv_sec = wait_ms / 1000;
			ts.tv_nsec = (wait_ms % 1000) * 1000000;
		}
		sig = sigtimedwait(&set, NULL, wait_ms >= 0 ? &ts : NULL);
		if (sig == -1 || sig == SIGCHLD || stopping)
			continue;
		log_msg(LOG_INFO, "prefork: %s stopping on signal %d", program,
		    sig);
		stopping = true;
		deadline = prefork_now_ms() + PREFORK_STOP_WAIT_MS;
		for (i = 0; i < n; i++)
			if (w[i].pid != 0)
				kill(w[i].pid, SIGTERM);
	}
}
