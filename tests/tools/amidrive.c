/*
 * amidrive: relay/amilink on an lws loop of its own, driven over stdin and
 * stdout, so tests can hold the link's API to account against the fake AMI
 * server (tests/test_amilink_api.py). The link's settings come from the
 * environment (AMI_HOST, AMI_PORT, AMI_USERNAME, AMI_SECRET and the
 * relay-only AMI_* tunables); its log goes to stderr.
 *
 * stdin, one command a line:
 *   send TAG TIMEOUT_MS ACTION [NAME=VALUE ...]   (a value runs to the end
 *                                                  of its word)
 *   health
 *   quit
 * stdout, one JSON object a line:
 *   {"state":"up"|"down"|"resync_begin"|"resync_end"}
 *   {"event":NAME,"headers":{...}}
 *   {"reply":TAG,"result":"response"|"item"|"complete"|"timeout"|"gone",
 *    "headers":{...}}
 *   {"send_error":TAG,"code":CODE,"msg":TEXT}
 *   {"health":{...}}
 * AMIDRIVE_EVENT_SLEEP_US: each event handler call sleeps this long (a slow
 * consumer, to fill the link's queue).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#include "lib/ami.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "relay/amilink.h"

#define LINE_MAX_ 4096
#define ARGS_MAX  64
#define TAGS      1024 /* tags of actions in flight, reused in turn */

static struct amilink *link_;
static struct lws_context *ctx;
static lws_sorted_usec_list_t sul_stdin;
static bool quit;
static char inbuf[LINE_MAX_];
static size_t inlen;
static useconds_t event_sleep_us;
static char tags[TAGS][32];
static unsigned ntag;

static void
emit(struct json_object *o)
{
	const char *t = jh_text(o, NULL);

	if (t != NULL)
		printf("%s\n", t);
	fflush(stdout);
	json_object_put(o);
}

static struct json_object *
headers_json(const struct ami_msg *m)
{
	struct json_object *h = json_object_new_object();
	size_t i;

	for (i = 0; m != NULL && h != NULL && i < m->nheaders; i++)
		jh_add_str(h, m->headers[i].name, m->headers[i].value);
	return h;
}

static void
on_event(void *arg, const struct ami_msg *m)
{
	struct json_object *o = json_object_new_object();

	(void)arg;
	if (event_sleep_us > 0)
		usleep(event_sleep_us);
	jh_add_str(o, "event", m->name);
	json_object_object_add(o, "headers", headers_json(m));
	emit(o);
}

static void
on_state(void *arg, enum amilink_state s)
{
	static const char *const names[] = { "up", "down", "resync_begin",
		"resync_end" };
	struct json_object *o = json_object_new_object();

	(void)arg;
	jh_add_str(o, "state", names[s]);
	emit(o);
}

static void
on_reply(void *arg, enum amilink_result res, const struct ami_msg *m)
{
	static const char *const names[] = { "response", "item", "complete",
		"timeout", "gone" };
	struct json_object *o = json_object_new_object();

	jh_add_str(o, "reply", arg);
	jh_add_str(o, "result", names[res]);
	json_object_object_add(o, "headers", headers_json(m));
	emit(o);
}

static void
command(char *line)
{
	char *argv[ARGS_MAX], *tok, *save = NULL, *tag;
	const char *hdrs[2 * ARGS_MAX + 1];
	struct json_object *o;
	struct err e = { 0 };
	int argc = 0, i, n = 0;

	for (tok = strtok_r(line, " ", &save); tok != NULL && argc < ARGS_MAX;
	     tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	if (argc == 0)
		return;
	if (strcmp(argv[0], "quit") == 0) {
		quit = true;
		return;
	}
	if (strcmp(argv[0], "health") == 0) {
		o = json_object_new_object();
		json_object_object_add(o, "health", amilink_health_json(link_));
		emit(o);
		return;
	}
	if (strcmp(argv[0], "send") != 0 || argc < 4)
		return;
	for (i = 4; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (eq == NULL)
			continue;
		*eq = '\0';
		hdrs[n++] = argv[i];
		hdrs[n++] = eq + 1;
	}
	hdrs[n] = NULL;
	tag = tags[ntag++ % TAGS];
	snprintf(tag, sizeof(tags[0]), "%s", argv[1]);
	if (amilink_send(link_, argv[3], hdrs, atoi(argv[2]), on_reply, tag,
		&e) == -1) {
		o = json_object_new_object();
		jh_add_str(o, "send_error", tag);
		jh_add_str(o, "code", err_code_name(e.code));
		jh_add_str(o, "msg", e.msg);
		emit(o);
	}
}

static void
stdin_cb(lws_sorted_usec_list_t *sul)
{
	ssize_t n;
	char *nl;

	(void)sul;
	while ((n = read(0, inbuf + inlen, sizeof(inbuf) - 1 - inlen)) > 0) {
		inlen += (size_t)n;
		while ((nl = memchr(inbuf, '\n', inlen)) != NULL) {
			*nl = '\0';
			command(inbuf);
			inlen -= (size_t)(nl + 1 - inbuf);
			memmove(inbuf, nl + 1, inlen);
		}
		if (inlen == sizeof(inbuf) - 1)
			inlen = 0; /* a line too long: dropped */
	}
	if (n == 0)
		quit = true;
	if (!quit)
		lws_sul_schedule(ctx, 0, &sul_stdin, stdin_cb,
		    10 * LWS_US_PER_MS);
	else
		lws_cancel_service(ctx);
}

static void
env_copy(const char *name, char *dst, size_t size)
{
	const char *v = getenv(name);

	snprintf(dst, size, "%s", v != NULL ? v : "");
}

int
main(void)
{
	static const struct amilink_handlers h = { on_event, on_state };
	struct lws_context_creation_info info;
	struct config cfg;
	struct err e = { 0 };
	const char *v;

	log_init("amidrive", true);
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
	memset(&cfg, 0, sizeof(cfg));
	env_copy("AMI_HOST", cfg.ami_host, sizeof(cfg.ami_host));
	env_copy("AMI_USERNAME", cfg.ami_username, sizeof(cfg.ami_username));
	env_copy("AMI_SECRET", cfg.ami_secret, sizeof(cfg.ami_secret));
	cfg.ami_port = (v = getenv("AMI_PORT")) != NULL ? atoi(v) : 5038;
	if ((v = getenv("AMIDRIVE_EVENT_SLEEP_US")) != NULL)
		event_sleep_us = (useconds_t)atoi(v);
	if (fcntl(0, F_SETFL, O_NONBLOCK) == -1)
		return 1;

	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.port = CONTEXT_PORT_NO_LISTEN;
	if ((ctx = lws_create_context(&info)) == NULL)
		return 1;
	if ((link_ = amilink_new(ctx, &cfg, &h, NULL, &e)) == NULL) {
		fprintf(stderr, "amidrive: %s\n", e.msg);
		lws_context_destroy(ctx);
		return 1;
	}
	explicit_bzero(cfg.ami_secret, sizeof(cfg.ami_secret));
	lws_sul_schedule(ctx, 0, &sul_stdin, stdin_cb, 1);
	while (!quit)
		if (lws_service(ctx, 0) < 0)
			break;
	amilink_stop(link_);
	lws_sul_cancel(&sul_stdin);
	lws_context_destroy(ctx);
	amilink_free(link_);
	return 0;
}
