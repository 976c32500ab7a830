/*
 * wake: on PostgreSQL, where relays on other machines write to the same
 * stream, a thread of its own holds a LISTEN connection and wakes the
 * loop when a writer committed (lws_cancel_service is the one lws call
 * another thread may make); the loop then runs the pump at once. The
 * thread touches nothing of the relay but an atomic flag. On SQLite
 * nothing runs: every writer is on this machine and kicks the relay over
 * its control socket, and the pump's poll covers a lost kick.
 *
 * A lost connection is retried every WAKE_RETRY_MS; the loop is woken
 * after each reconnect, since whatever was written meanwhile was not
 * announced. The pump polls meanwhile, so nothing waits for longer than
 * its poll.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "lib/db_listen.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/notify.h"
#include "relay/relay.h"

#define WAKE_RETRY_MS 1000

struct wake {
	struct db_listener *l;
	struct lws_context *ctx;
	pthread_t thread;
	int stop[2]; /* a pipe: the loop closes its end to stop the thread */
	atomic_bool pending;
};

/* Wait up to ms for input on the listener (fd, -1 for none) or the stop
 * pipe: 1 input, 0 timeout, -1 stop. */
static int
wait_for(struct wake *w, int fd, int ms)
{
	struct pollfd p[2] = {
		{ .fd = w->stop[0], .events = POLLIN },
		{ .fd = fd, .events = POLLIN },
	};
	int n;

	do
		n = poll(p, fd >= 0 ? 2 : 1, ms);
	while (n == -1 && errno == EINTR);
	if (n == -1 || p[0].revents != 0)
		return -1;
	return n > 0 ? 1 : 0;
}

static void
announce(struct wake *w)
{
	atomic_store(&w->pending, true);
	lws_cancel_service(w->ctx);
}

static void *
wake_thread(void *arg)
{
	struct wake *w = arg;
	struct err e = { 0 };
	bool lost = false;
	int rc;

	for (;;) {
		if (lost) {
			if (wait_for(w, -1, WAKE_RETRY_MS) == -1)
				break;
			if (db_listener_reconnect(w->l, &e) == -1)
				continue;
			log_msg(LOG_INFO, "stream wake-ups: listening again");
			lost = false;
			announce(w);
		}
		if ((rc = wait_for(w, db_listener_fd(w->l), -1)) == -1)
			break;
		if ((rc = db_listener_drain(w->l, &e)) == -1) {
			log_msg(LOG_WARN, "stream wake-ups: %s (retrying)",
			    e.msg);
			lost = true;
		} else if (rc > 0)
			announce(w);
	}
	return NULL;
}

int
wake_start(struct relay *r, struct err *e)
{
	struct wake *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	w->stop[0] = w->stop[1] = -1;
	if ((w->l = db_listen(config_db_target(&r->cfg), NOTIFY_CHANNEL,
		 e)) == NULL) {
		free(w);
		return e->code == ERR_OK ? 0 : -1;
	}
	w->ctx = r->ctx;
	if (pipe(w->stop) == -1) {
		err_set(e, ERR_INTERNAL, "pipe: %s", strerror(errno));
		goto fail;
	}
	if ((errno = pthread_create(&w->thread, NULL, wake_thread, w)) != 0) {
		err_set(e, ERR_INTERNAL, "thread: %s", strerror(errno));
		goto fail;
	}
	r->wake = w;
	return 0;
fail:
	if (w->stop[0] != -1) {
		close(w->stop[0]);
		close(w->stop[1]);
	}
	db_listener_close(w->l);
	free(w);
	return -1;
}

bool
wake_enabled(const struct relay *r)
{
	return r->wake != NULL;
}

void
wake_check(struct relay *r)
{
	if (r->wake != NULL && atomic_exchange(&r->wake->pending, false))
		pump_kick(r);
}

void
wake_stop(struct relay *r)
{
	struct wake *w = r->wake;

	if (w == NULL)
		return;
	close(w->stop[1]);
	pthread_join(w->thread, NULL);
	close(w->stop[0]);
	db_listener_close(w->l);
	free(w);
	r->wake = NULL;
}
