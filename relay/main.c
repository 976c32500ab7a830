/*
 * switchboard-relay: the long-lived side. One lws context on one thread
 * with two vhosts on Unix sockets in RUN_DIR: "ws" (relay.sock, browsers
 * through nginx) and "ctl" (ctl.sock, the cgi-bin programs). SIGTERM or
 * SIGINT stops it cleanly.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <libwebsockets.h>

#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/db_hold.h"
#include "relay/amilink.h"
#include "relay/relay.h"

/* Request headers of an upgrade, the token included. */
#define MAIN_HEADER_MAX 8192
#define MAIN_FD_MAX     (1 << 20)

static volatile sig_atomic_t stop;
static struct lws_context *volatile signal_ctx;

struct relay *
relay_from_wsi(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
	if (signal_ctx != NULL)
		lws_cancel_service(signal_ctx);
}

static void
lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_msg(level & LLL_ERR    ? LOG_ERROR
		: level & LLL_WARN ? LOG_WARN
				   : LOG_DEBUG,
	    "lws: %.*s", (int)n, line);
}

/* Room for as many sockets as the hard limit allows. */
static unsigned int
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 0;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > MAIN_FD_MAX)
		rl.rlim_max = MAIN_FD_MAX;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_msg(LOG_WARN, "raising the fd limit: %s",
			    strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 0;
	return rl.rlim_cur > MAIN_FD_MAX ? MAIN_FD_MAX
					 : (unsigned int)rl.rlim_cur;
}

static const lws_retry_bo_t ws_idle = {
	.secs_since_valid_ping = RELAY_PING_S,
	.secs_since_valid_hangup = RELAY_HANGUP_S,
};

static int
vhosts_create(struct relay *r, const char *ws_path, const char *ctl_path)
{
	struct lws_context_creation_info info;
	mode_t old;

	memset(&info, 0, sizeof(info));
	info.vhost_name = "ws";
	info.options =
	    LWS_SERVER_OPTION_UNIX_SOCK | LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.iface = ws_path;
	info.port = 0;
	info.protocols = ws_protocols;
	info.retry_and_idle_policy = &ws_idle;
	if (lws_create_vhost(r->ctx, &info) == NULL) {
		log_msg(LOG_ERROR, "cannot listen on %s", ws_path);
		return -1;
	}
	/* nginx's workers connect here. */
	if (chmod(ws_path, 0660) == -1)
		log_msg(LOG_WARN, "chmod %s: %s", ws_path, strerror(errno));

	memset(&info, 0, sizeof(info));
	info.vhost_name = "ctl";
	info.options = LWS_SERVER_OPTION_UNIX_SOCK |
		       LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
	info.iface = ctl_path;
	info.port = 0;
	info.protocols = ctl_protocols;
	info.listen_accept_role = "raw-skt";
	info.listen_accept_protocol = "switchboard-ctl";
	/* Created 0600 from the start: no window where others connect. */
	old = umask(0177);
	if (lws_create_vhost(r->ctx, &info) == NULL) {
		umask(old);
		log_msg(LOG_ERROR, "cannot listen on %s", ctl_path);
		return -1;
	}
	umask(old);
	if (chmod(ctl_path, 0600) == -1) {
		log_msg(LOG_ERROR, "chmod %s: %s", ctl_path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * A relay-only setting, a whole number from 0 to max (unset or empty:
 * def). Read here rather than in struct config, which the cgi-bin programs
 * share and never need these for. A malformed value stops the start, as
 * config_load does.
 */
static int
number_get(const char *name, int def, long max, int *dst)
{
	struct err e = { 0 };

	if (config_int(name, def, 0, max, dst, &e) == 0)
		return 0;
	log_msg(LOG_ERROR, "config: %s", e.msg);
	return -1;
}

static int
relay_open(struct relay *r)
{
	struct err e = { 0 };

	if (config_load(&r->cfg, &e) == -1) {
		log_init("relay", false);
		log_msg(LOG_ERROR, "config: %s%s%s", e.msg,
		    e.field[0] != '\0' ? " in " : "", e.field);
		return -1;
	}
	log_init("relay", r->cfg.debug);
	if (number_get("CALL_DISCONNECT_GRACE_S", RELAY_GRACE_S, 86400,
		&r->call_grace_s) == -1 ||
	    number_get("PRESENCE_STALE_S", RELAY_STALE_S, 86400 * 30,
		&r->presence_stale_s) == -1 ||
	    number_get("WS_MAX_SOCKETS_PER_USER", RELAY_SOCKETS_MAX, 100000,
		&r->sockets_max) == -1 ||
	    number_get("WS_RX_FRAMES_PER_S", RELAY_RX_FRAMES_S, 1000000,
		&r->rx_frames_s) == -1 ||
	    number_get("WS_RX_BYTES_PER_S", RELAY_RX_BYTES_S, 1 << 30,
		&r->rx_bytes_s) == -1)
		return -1;
	/* Start-up waits for writers as a program does; the loop, once
	 * running, must not: main shortens the timeout then. */
	if ((r->db = db_open_current(config_db_target(&r->cfg),
		 RELAY_DB_START_BUSY_MS, &e)) == NULL) {
		log_msg(LOG_ERROR, "database: %s", e.msg);
		return -1;
	}
	r->started_us = db_now_us();
	r->user_gone = ws_user_gone;
	if (roster_init(r, &e) == -1) {
		log_msg(LOG_ERROR, "users: %s", e.msg);
		return -1;
	}
	return 0;
}

/*
 * Exactly one relay drives Asterisk, however many share the database: the
 * one holding the "ami-link" hold (lib/db_hold.h: an advisory lock on
 * PostgreSQL, an flock beside the SQLite file). The others wait on
 * standby, trying again every AMIHOLD_RETRY_US, so when the holder dies
 * (its database connection, and the lock with it, goes) another takes
 * over within that. A holder whose hold is lost while it lives (its lock
 * connection dropped) stops, so that two relays never drive Asterisk at
 * once: its supervisor starts it again, on standby until the hold is free.
 */
#define AMIHOLD_RETRY_US (2 * LWS_USEC_PER_SEC)

static int ami_link(struct relay *r, bool standby, struct err *e);

static void
ami_hold_tick(lws_sorted_usec_list_t *sul)
{
	struct relay *r = lws_container_of(sul, struct relay, sul_ami_hold);
	struct err e = { 0 };
	struct amilink *old;
	int rc;

	if (r->ami_hold != NULL) {
		if (db_hold_check(r->ami_hold) == 0) {
			log_msg(LOG_ERROR, "AMI link: the hold on it was lost "
					   "(its database connection); stopping");
			stop = 1;
			lws_cancel_service(r->ctx);
			return;
		}
	} else if ((rc = db_hold_try(config_db_target(&r->cfg), "ami-link",
			&r->ami_hold, &e)) == 1) {
		log_msg(LOG_INFO, "AMI link: this relay holds it now");
		/* The standby link is a disabled one: nothing of it runs. */
		old = r->ami;
		if (ami_link(r, false, &e) == -1) {
			log_msg(LOG_ERROR, "AMI link: %s", e.msg);
			r->ami = old;
			db_hold_release(r->ami_hold);
			r->ami_hold = NULL;
		} else
			amilink_free(old);
	} else if (rc == -1)
		log_msg(LOG_WARN, "AMI link hold: %s", e.msg);
	lws_sul_schedule(r->ctx, 0, &r->sul_ami_hold, ami_hold_tick,
	    AMIHOLD_RETRY_US);
}

/*
 * The one place the AMI link is made: its events and state changes go to
 * pbx.c, which keeps the calls' state from them. (A relay that is not to
 * hold the link would get a disabled one here instead.)
 */
static int
ami_link(struct relay *r, bool standby, struct err *e)
{
	static const struct amilink_handlers h = {
		.event = pbx_on_event,
		.state = pbx_on_state,
	};
	struct config off;
	const struct config *cfg = &r->cfg;

	if (standby) {
		off = r->cfg;
		off.ami_host[0] = '\0';
		cfg = &off;
	}
	r->ami_standby = standby;
	r->ami = amilink_new(r->ctx, cfg, &h, r, e);
	if (standby)
		config_wipe(&off);
	return r->ami == NULL ? -1 : 0;
}

static int
ami_start(struct relay *r, struct err *e)
{
	int rc;

	if (r->cfg.ami_host[0] == '\0')
		return ami_link(r, false, e);
	if ((rc = db_hold_try(config_db_target(&r->cfg), "ami-link",
		 &r->ami_hold, e)) == -1)
		return -1;
	if (rc == 0)
		log_msg(LOG_INFO, "AMI link: held by another relay; standby");
	lws_sul_schedule(r->ctx, 0, &r->sul_ami_hold, ami_hold_tick,
	    AMIHOLD_RETRY_US);
	return ami_link(r, rc == 0, e);
}

int
main(void)
{
	char ws_path[PATH_MAX + 16], ctl_path[PATH_MAX + 16];
	struct lws_context_creation_info info;
	struct relay r;
	struct err e = { 0 };
	int rc = 1;

	memset(&r, 0, sizeof(r));
	if (relay_open(&r) == -1)
		goto out;
	lws_set_log_level(LLL_ERR | LLL_WARN | (r.cfg.debug ? LLL_NOTICE : 0),
	    lws_log);
	snprintf(ws_path, sizeof(ws_path), "%s/relay.sock", r.cfg.run_dir);
	snprintf(ctl_path, sizeof(ctl_path), "%s/ctl.sock", r.cfg.run_dir);

	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
		       LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.user = &r;
	info.fd_limit_per_thread = raise_fd_limit();
	info.max_http_header_data = MAIN_HEADER_MAX;
	info.count_threads = 1;
	if ((r.ctx = lws_create_context(&info)) == NULL) {
		log_msg(LOG_ERROR, "cannot create the lws context");
		goto out;
	}
	if (vhosts_create(&r, ws_path, ctl_path) == -1)
		goto out;
	if (cluster_start(&r, &e) == -1 || calls_init(&r, &e) == -1 ||
	    pump_init(&r, &e) == -1 || wake_start(&r, &e) == -1 ||
	    pbx_init(&r, &e) == -1 || ami_start(&r, &e) == -1) {
		log_msg(LOG_ERROR, "start: %s", e.msg);
		goto out;
	}
	db_set_busy(r.db, RELAY_DB_BUSY_MS);
	presence_start(&r);
	signal_ctx = r.ctx;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	log_msg(LOG_INFO, "listening on %s and %s (stream %s at %lld)", ws_path,
	    ctl_path, r.epoch, (long long)r.cursor);

	while (!stop)
		if (lws_service(r.ctx, 0) < 0)
			break;
	rc = stop ? 0 : 1;
	log_msg(LOG_INFO, "stopping");
out:
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal_ctx = NULL;
	r.stopping = true;
	lws_sul_cancel(&r.sul_ami_hold);
	amilink_stop(r.ami);
	wake_stop(&r);
	cluster_stop(&r);
	pump_stop(&r);
	calls_stop(&r);
	presence_stop(&r);
	outbox_stop(&r);
	sock_stop(&r);
	if (r.ctx != NULL)
		lws_context_destroy(r.ctx);
	r.ctx = NULL;
	/* The sockets are gone: their users' offline rows, then the rest. */
	if (r.db != NULL) {
		outbox_free(&r);
		presence_free(&r);
		cluster_free(&r);
	}
	amilink_free(r.ami);
	db_hold_release(r.ami_hold);
	pbx_free(&r);
	sock_free(&r);
	roster_free(&r);
	db_close(r.db);
	config_wipe(&r.cfg);
	return rc;
}
