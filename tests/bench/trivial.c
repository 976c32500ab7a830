/*
 * The cheapest possible FastCGI program, the baseline the REST programs are
 * measured against: a fixed small JSON reply, no parsing, no database.
 * Started under spawn-fcgi like the real programs (listen socket on fd 0);
 * forks FCGI_CHILDREN workers (default 2) that accept on it.
 */
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

static const char reply[] = "Status: 200 OK\r\n"
			    "Content-Type: application/json\r\n"
			    "\r\n"
			    "{\"status\":\"ok\",\"success\":true}\n";

static volatile sig_atomic_t stopping;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static int
serve(void)
{
	FCGX_Request req;

	if (FCGX_InitRequest(&req, 0, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&req) >= 0) {
		FCGX_PutStr(reply, (int)sizeof(reply) - 1, req.out);
		FCGX_Finish_r(&req);
	}
	return 0;
}

int
main(void)
{
	const char *s;
	int i, n = 2;
	pid_t pids[64];
	struct sigaction sa;

	if ((s = getenv("FCGI_CHILDREN")) != NULL && atoi(s) > 0)
		n = atoi(s);
	if (n > 64)
		n = 64;
	if (FCGX_Init() != 0)
		return 1;
	for (i = 0; i < n; i++) {
		if ((pids[i] = fork()) == -1) {
			perror("fork");
			return 1;
		}
		if (pids[i] == 0) {
			/* A worker never outlives its parent. */
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			return serve();
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	while (!stopping) {
		if (wait(NULL) == -1 && errno == ECHILD)
			break;
	}
	for (i = 0; i < n; i++)
		kill(pids[i], SIGTERM);
	while (wait(NULL) != -1 || errno == EINTR)
		;
	return 0;
}
