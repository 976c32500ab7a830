#ifndef CGI_ADMIN_H
#define CGI_ADMIN_H

/*
 * The admin program's parts (cgi-bin/admin_*.c, linked into it alone):
 * the handlers its route table in cgi-bin/admin.c names.
 */

#include <stdbool.h>

struct err;
struct http_req;

/* admin_stats.c: figures and health. */
int admin_stats(struct http_req *req, struct err *e);
int admin_metrics(struct http_req *req, struct err *e);
int admin_health_fast(struct http_req *req, struct err *e);
int admin_health_detailed(struct http_req *req, struct err *e);

/* admin_logs.c: call-log deletes and the export. */
int admin_log_delete(struct http_req *req, struct err *e);
int admin_log_bulk_delete(struct http_req *req, struct err *e);
int admin_log_clear_all(struct http_req *req, struct err *e);
int admin_log_filter_delete(struct http_req *req, struct err *e);
int admin_log_export(struct http_req *req, struct err *e);

/* admin_backup.c: backups. */
int admin_backup_create(struct http_req *req, struct err *e);
int admin_backup_status(struct http_req *req, struct err *e);
int admin_backup_list(struct http_req *req, struct err *e);
int admin_backup_download(struct http_req *req, struct err *e);
int admin_backup_delete(struct http_req *req, struct err *e);
int admin_backup_restore(struct http_req *req, struct err *e);

/* admin_calls.c: the live calls. */
int admin_active_calls(struct http_req *req, struct err *e);
int admin_call(struct http_req *req, struct err *e);
int admin_terminate_call(struct http_req *req, struct err *e);

/*
 * Whether the relay has a manager link to Asterisk: AMI_HOST is set (the
 * relay's setting, read the same way). Without it nothing can be placed
 * or hung up on the PBX, and health says "not configured".
 */
bool admin_ami_configured(void);

/*
 * The time zone a request asks for (?tz=, an IANA name) into *tz, NULL
 * when none was given (the process's TZ then). ERR_INVALID naming "tz"
 * when it is not a zone this machine knows.
 */
int admin_tz(struct http_req *req, const char **tz, struct err *e);

#endif
