#ifndef LIB_CTL_H
#define LIB_CTL_H

#include <stddef.h>

struct config;
struct err;
struct json_object;

/*
 * The control socket between cgi-bin programs and the relay: a Unix stream
 * socket at RUN_DIR/ctl.sock; one JSON object per line each way, one request
 * per connection. Requests carry "op"; replies carry "ok" (bool) and, when
 * not ok, "error". Ops: "kick", "who" (every connected extension, or
 * with "extension" that one's socket count), "deliver", "call_invite",
 * "call_end", "stats", "stream_reset" (see relay/ctlsrv.c); PBX calls:
 * "pbx_originate", "pbx_hangup", "pbx_answer", "pbx_active",
 * "pbx_health", "pbx_endpoints" (see relay/pbx.c). A PBX op that fails
 * carries "code": "unavailable" (Asterisk off or away), "notfound",
 * "conflict" or "invalid".
 */

#define CTL_LINE_MAX (128 * 1024)

/* RUN_DIR/ctl.sock into buf. */
void ctl_socket_path(const struct config *cfg, char *buf, size_t size);

/*
 * Send request, wait up to timeout_ms for the reply line. *reply (owned by
 * the caller) is the parsed reply. ERR_UPSTREAM when the relay is not
 * there or does not answer in time; nothing else is retried.
 */
int ctl_call(const struct config *cfg, struct json_object *request,
    struct json_object **reply, int timeout_ms, struct err *e);

/* Wake the relay's notify consumer: one non-blocking send, no reply
 * awaited; dropped silently when the relay is not there. */
void ctl_kick(const struct config *cfg);

#endif
