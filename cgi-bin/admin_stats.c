/*
 * admin: the figures of the Overview tab and System Status. What the
 * database holds comes from lib/stats; what is live (sockets, calls, the
 * relay's uptime) from the relay over the control socket, and when the
 * relay does not answer the reply says so instead of inventing numbers.
 * Host metrics come from /proc without sampling for a second: CPU usage is
 * measured between this request and the previous one (their sample kept
 * in RUN_DIR), the load average standing in for the first.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lib/config.h"
#include "lib/ctl.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/export.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/stats.h"
#include "cgi-bin/admin.h"
#include "cgi-bin/common.h"

#define RELAY_FAST_MS     300
#define RELAY_DETAILED_MS 1000
#define RECENT_CALLS      10
#define VERSION           "1.0.0"
#define CPU_SAMPLE        "cpu.sample"

/* What the relay says; up false (and error) when it did not answer. */
struct relay_fig {
	bool up;
	int64_t clients, calls, uptime_s;
	double ms;
	char error[128];
	struct json_object *ami; /* the relay's "ami" member, when it has one */
	struct json_object *reply;
};

static double
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 +
	       (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static int64_t
int_member(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v)
						     : 0;
}

static void
relay_ask(const struct config *cfg, const char *op, int timeout_ms,
    struct relay_fig *f)
{
	struct json_object *rq, *v;
	struct err e = { 0 };
	struct timespec t0;

	memset(f, 0, sizeof(*f));
	if ((rq = json_object_new_object()) == NULL) {
		snprintf(f->error, sizeof(f->error), "out of memory");
		return;
	}
	jh_add_str(rq, "op", op);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ctl_call(cfg, rq, &f->reply, timeout_ms, &e) == -1) {
		snprintf(f->error, sizeof(f->error),
		    "relay not reachable: %.100s", e.msg);
		json_object_put(rq);
		return;
	}
	json_object_put(rq);
	f->ms = ms_since(&t0);
	if (!json_object_object_get_ex(f->reply, "ok", &v) ||
	    !json_object_get_boolean(v)) {
		snprintf(f->error, sizeof(f->error), "relay refused '%s'", op);
		return;
	}
	f->up = true;
	f->clients = int_member(f->reply, "clients");
	f->calls = int_member(f->reply, "calls");
	f->uptime_s = int_member(f->reply, "uptime_s");
	if (json_object_object_get_ex(f->reply, "ami", &v))
		f->ami = v;
}

static void
relay_done(struct relay_fig *f)
{
	json_object_put(f->reply);
	f->reply = NULL;
}

/* The host's uptime, standing in for the relay's when it is down. */
static int64_t
host_uptime_s(void)
{
	double up = 0;
	FILE *fp;

	if ((fp = fopen("/proc/uptime", "r")) == NULL)
		return 0;
	if (fscanf(fp, "%lf", &up) != 1)
		up = 0;
	fclose(fp);
	return (int64_t)up;
}

int
admin_stats(struct http_req *req, struct err *e)
{
	struct stats_counts c;
	struct relay_fig f;
	struct json_object *o, *s;
	char up[80];

	if (stats_counts(http_db(req), NULL, &c, e) == -1)
		return -1;
	relay_ask(http_config(req), "stats", RELAY_FAST_MS, &f);
	stats_uptime_text(f.up ? f.uptime_s : host_uptime_s(), up, sizeof(up));
	if ((s = json_object_new_object()) == NULL) {
		relay_done(&f);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	/* gin.H: sorted keys. Live calls are the relay's when it runs; the
	 * database's open rows stand in when it does not. */
	jh_add_int(s, "active_calls", f.up ? f.calls : c.open_calls);
	jh_add_int(s, "calls_today", c.calls_today);
	jh_add_int(s, "online_users", c.online_users);
	jh_add_int(s, "total_users", c.total_users);
	jh_add_str(s, "uptime", up);
	jh_add_int(s, "ws_connections", f.up ? f.clients : 0);
	relay_done(&f);
	if ((o = cgi_ok("stats", s)) == NULL)
		return err_set(e, ERR_INTERNAL, "out of memory");
	http_reply_json(req, 200, o);
	return 0;
}

/* ---- metrics ---- */

static int
pb_write(void *arg, const char *buf, size_t len)
{
	return printbuf_memappend(arg, buf, (int)len) < 0 ? -1 : 0;
}

/* The newest calls as CallLogs, times as stored. */
static struct json_object *
recent_calls(struct db *db, struct err *e)
{
	struct export_filter f = { 0 };
	struct json_object *o = NULL;
	struct printbuf *pb;

	f.limit = RECENT_CALLS;
	f.bare = true;
	if ((pb = printbuf_new()) == NULL) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (export_call_logs(db, EXPORT_JSON, &f, NULL, pb_write, pb, NULL,
		e) == 0 &&
	    (o = jh_verbatim(pb->buf)) == NULL)
		err_set(e, ERR_INTERNAL, "out of memory");
	printbuf_free(pb);
	return o;
}

int
admin_metrics(struct http_req *req, struct err *e)
{
	struct db *db = http_db(req);
	struct json_object *o, *cs, *m, *exts, *recent, *v;
	struct relay_fig f, w;
	struct stats_counts c;
	double avg = 0, rate = 0;
	char fmt[32], now[40];

	if (stats_counts(db, NULL, &c, e) == -1 ||
	    (recent = recent_calls(db, e)) == NULL)
		return -1;
	if (c.successful_calls > 0)
		avg = (double)c.total_duration_s / (double)c.successful_calls;
	if (c.total_call_logs > 0)
		rate = 100.0 * (double)c.successful_calls /
		       (double)c.total_call_logs;
	snprintf(fmt, sizeof(fmt), "%" PRId64 ":%02" PRId64, (int64_t)avg / 60,
	    (int64_t)avg % 60);
	relay_ask(http_config(req), "stats", RELAY_FAST_MS, &f);
	relay_ask(http_config(req), "who", RELAY_FAST_MS, &w);
	o = json_object_new_object();
	cs = json_object_new_object();
	m = json_object_new_object();
	exts = json_object_new_array();
	if (o == NULL || cs == NULL || m == NULL || exts == NULL) {
		json_object_put(o);
		json_object_put(cs);
		json_object_put(m);
		json_object_put(exts);
		json_object_put(recent);
		relay_done(&f);
		relay_done(&w);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	if (w.up && json_object_object_get_ex(w.reply, "extensions", &v) &&
	    json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, val)
		{
			(void)val;
			json_object_array_add(exts,
			    json_object_new_string(key));
		}
	}
	jh_add_str(cs, "avg_duration_formatted", fmt);
	jh_add_double(cs, "avg_duration_seconds", avg);
	jh_add_double(cs, "success_rate", rate);
	jh_add_int(cs, "successful_calls", c.successful_calls);
	jh_add_int(cs, "total_calls", c.total_call_logs);
	jh_add_int(cs, "total_duration_seconds", c.total_duration_s);
	jh_add_int(m, "active_calls", f.up ? f.calls : c.open_calls);
	jh_add_double(m, "avg_call_duration", avg);
	jh_add_double(m, "call_success_rate", rate);
	jh_add_int(m, "calls_today", c.calls_today);
	json_object_object_add(m, "connected_extensions", exts);
	jh_add_int(m, "online_users", c.online_users);
	jh_add_int(m, "successful_calls", c.successful_calls);
	jh_add_int(m, "total_call_logs", c.total_call_logs);
	jh_add_int(m, "total_users", c.total_users);
	jh_add_int(m, "ws_connections", f.up ? f.clients : 0);
	relay_done(&f);
	relay_done(&w);
	json_object_object_add(o, "call_stats", cs);
	json_object_object_add(o, "metrics", m);
	json_object_object_add(o, "recent_calls", recent);
	jh_add_bool(o, "success", true);
	db_now(now, sizeof(now));
	jh_add_str(o, "timestamp", now);
	http_reply_json(req, 200, o);
	return 0;
}

/* ---- health ---- */

struct cpu_sample {
	unsigned long long total, idle;
};

static int
cpu_read(struct cpu_sample *s)
{
	unsigned long long v[10] = { 0 };
	FILE *fp;
	int n, i;

	if ((fp = fopen("/proc/stat", "r")) == NULL)
		return -1;
	n = fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
	    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
	    &v[9]);
	fclose(fp);
	if (n < 4)
		return -1;
	s->total = 0;
	/* guest and guest_nice are already inside user and nice. */
	for (i = 0; i < n && i < 8; i++)
		s->total += v[i];
	s->idle = v[3] + v[4];
	return 0;
}

/*
 * CPU usage since the previous health request (of any worker), whose
 * sample RUN_DIR/cpu.sample keeps; -1 when there is none to compare with.
 */
static double
cpu_usage(const struct config *cfg)
{
	struct cpu_sample now, then;
	char path[PATH_MAX], tmp[PATH_MAX + 16];
	double usage = -1;
	FILE *fp;

	if (cpu_read(&now) == -1)
		return -1;
	if (snprintf(path, sizeof(path), "%s/" CPU_SAMPLE, cfg->run_dir) >=
	    (int)sizeof(path))
		return -1;
	if ((fp = fopen(path, "r")) != NULL) {
		if (fscanf(fp, "%llu %llu", &then.total, &then.idle) == 2 &&
		    now.total > then.total && now.idle >= then.idle)
			usage = 100.0 *
				(1.0 - (double)(now.idle - then.idle) /
					   (double)(now.total - then.total));
		fclose(fp);
	}
	/* Written aside and renamed: a reader never sees half a sample. */
	snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
	if ((fp = fopen(tmp, "w")) != NULL) {
		fprintf(fp, "%llu %llu\n", now.total, now.idle);
		if (fclose(fp) != 0 || rename(tmp, path) == -1)
			(void)unlink(tmp);
	}
	if (usage < 0)
		return -1;
	return usage > 100 ? 100 : usage;
}

static json_object *
cpu_metrics(const struct config *cfg)
{
	struct json_object *o, *la;
	double l[3] = { 0, 0, 0 }, usage;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int n;

	if (cores < 1)
		cores = 1;
	if ((o = json_object_new_object()) == NULL)
		return NULL;
	n = getloadavg(l, 3);
	if ((usage = cpu_usage(cfg)) < 0)
		usage = n >= 1 ? 100.0 * l[0] / (double)cores : 0;
	if (usage > 100)
		usage = 100;
	jh_add_double(o, "usage_percent", usage);
	jh_add_int(o, "cores", cores);
	if (n == 3 && (la = json_object_new_array()) != NULL) {
		json_object_array_add(la, json_object_new_double(l[0]));
		json_object_array_add(la, json_object_new_double(l[1]));
		json_object_array_add(la, json_object_new_double(l[2]));
		json_object_object_add(o, "load_avg", la);
	} else
		jh_add_null(o, "load_avg");
	return o;
}

static json_object *
memory_metrics(void)
{
	unsigned long long total = 0, avail = 0, v;
	struct json_object *o;
	char key[64];
	FILE *fp;

	if ((fp = fopen("/proc/meminfo", "r")) != NULL) {
		while (fscanf(fp, "%63s %llu kB\n", key, &v) == 2) {
			if (strcmp(key, "MemTotal:") == 0)
				total = v * 1024;
			else if (strcmp(key, "MemAvailable:") == 0)
				avail = v * 1024;
		}
		fclose(fp);
	}
	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_int(o, "total_bytes", (int64_t)total);
	jh_add_int(o, "used_bytes", (int64_t)(total - avail));
	jh_add_int(o, "available_bytes", (int64_t)avail);
	jh_add_double(o, "usage_percent",
	    total > 0 ? 100.0 * (double)(total - avail) / (double)total : 0);
	return o;
}

/* The file system holding the database; on PostgreSQL, whose files are
 * the server's, the one of the run directory (logs, sockets). */
static json_object *
disk_metrics(const struct config *cfg)
{
	unsigned long long total = 0, free_b = 0, used = 0;
	struct json_object *o;
	struct statvfs vfs;
	char dir[PATH_MAX], *slash;

	if (cfg->database_url[0] != '\0') {
		snprintf(dir, sizeof(dir), "%s",
		    cfg->run_dir[0] != '\0' ? cfg->run_dir : ".");
	} else {
		snprintf(dir, sizeof(dir), "%s", cfg->db_path);
		if ((slash = strrchr(dir, '/')) != NULL && slash != dir)
			*slash = '\0';
		else
			snprintf(dir, sizeof(dir), "%s",
			    slash == dir ? "/" : ".");
	}
	if (statvfs(dir, &vfs) == 0) {
		total = (unsigned long long)vfs.f_blocks * vfs.f_frsize;
		free_b = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
		used = total - (unsigned long long)vfs.f_bfree * vfs.f_frsize;
	}
	if ((o = json_object_new_object()) == NULL)
		return NULL;
	jh_add_int(o, "total_bytes", (int64_t)total);
	jh_add_int(o, "used_bytes", (int64_t)used);
	jh_add_int(o, "free_bytes", (int64_t)free_b);
	jh_add_double(o, "usage_percent",
	    total > 0 ? 100.0 * (double)used / (double)total : 0);
	return o;
}

/* Established TCP connections of the host (IPv4 and IPv6). */
static int64_t
tcp_established(void)
{
	static const char *const files[] = { "/proc/net/tcp",
		"/proc/net/tcp6" };
	char line[512], st[8];
	int64_t n = 0;
	size_t i;
	FILE *fp;

	for (i = 0; i < 2; i++) {
		if ((fp = fopen(files[i], "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), fp) != NULL)
			if (sscanf(line, "%*s %*s %*s %7s", st) == 1 &&
			    strcmp(st, "01") == 0)
				n++;
		fclose(fp);
	}
	return n;
}

static void
size_text(long long bytes, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KB", "MB", "GB", "TB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%lld B", bytes);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
}

/* The database file with its WAL. */
static long long
db_bytes(const struct config *cfg)
{
	char wal[PATH_MAX + 8];
	struct stat sb;
	long long n = 0;

	if (stat(cfg->db_path, &sb) == 0)
		n += (long long)sb.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", cfg->db_path);
	if (stat(wal, &sb) == 0)
		n += (long long)sb.st_size;
	return n;
}

/* ServiceInfo: {"status","last_check","response_time_ms","error"?,
 * "details"?}; takes details. */
static struct json_object *
service(const char *status, const char *now, double ms, const char *error,
    struct json_object *details)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL) {
		json_object_put(details);
		return NULL;
	}
	jh_add_str(o, "status", status);
	jh_add_str(o, "last_check", now);
	jh_add_double(o, "response_time_ms", ms);
	if (error != NULL)
		jh_add_str(o, "error", error);
	if (details != NULL)
		json_object_object_add(o, "details", details);
	return o;
}

static struct json_object *
asterisk_service(const struct config *cfg, const struct relay_fig *f,
    const char *now)
{
	struct json_object *d, *v;

	(void)cfg;
	if (!admin_ami_configured()) {
		if ((d = json_object_new_object()) != NULL)
			jh_add_str(d, "reason", "AMI_HOST is empty");
		return service("not configured", now, 0, NULL, d);
	}
	if (!f->up)
		return service("unknown", now, 0, f->error, NULL);
	/* The relay's AMI link, when it reports one: {"connected":bool}. */
	if (f->ami != NULL &&
	    json_object_object_get_ex(f->ami, "connected", &v))
		return json_object_get_boolean(v)
			   ? service("healthy", now, f->ms, NULL,
				 json_object_get(f->ami))
			   : service("unhealthy", now, f->ms,
				 "AMI not connected", json_object_get(f->ami));
	return service("unknown", now, f->ms,
	    "the relay does not report the AMI link", NULL);
}

/* SystemHealthResponse (contract §1.5); NULL with e set. */
static struct json_object *
health(struct http_req *req, int relay_ms, struct err *e)
{
	const struct config *cfg = http_config(req);
	struct db *db = http_db(req);
	struct json_object *h, *svc, *sm, *net, *dbh, *d;
	struct stats_counts c;
	struct relay_fig f;
	struct timespec t0;
	struct err dbe = { 0 };
	const char *overall = "healthy", *dbstatus = "healthy";
	char now[40], up[80], size[32];
	double dbms;
	bool db_ok;

	db_now(now, sizeof(now));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	db_ok = stats_counts(db, NULL, &c, &dbe) == 0;
	dbms = ms_since(&t0);
	if (!db_ok) {
		log_msg(LOG_WARN, "health: database: %s", dbe.msg);
		dbstatus = "unhealthy";
		overall = "critical";
	}
	relay_ask(cfg, "stats", relay_ms, &f);
	if (!f.up && db_ok)
		overall = "warning"; /* no live events, calls or presence */

	h = json_object_new_object();
	svc = json_object_new_object();
	sm = json_object_new_object();
	net = json_object_new_object();
	dbh = json_object_new_object();
	if (h == NULL || svc == NULL || sm == NULL || net == NULL ||
	    dbh == NULL) {
		json_object_put(h);
		json_object_put(svc);
		json_object_put(sm);
		json_object_put(net);
		json_object_put(dbh);
		relay_done(&f);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	/* A Go map: sorted keys. */
	json_object_object_add(svc, "asterisk", asterisk_service(cfg, &f, now));
	if ((d = json_object_new_object()) != NULL) {
		jh_add_int(d, "pid", (int64_t)getpid());
		jh_add_str(d, "program", "admin");
	}
	json_object_object_add(svc, "backend",
	    service("healthy", now, ms_since(&t0), NULL, d));
	if ((d = json_object_new_object()) != NULL)
		jh_add_str(d, "engine",
		    db_engine(db) == DB_POSTGRES ? "postgresql" : "sqlite");
	json_object_object_add(svc, "database",
	    service(dbstatus, now, dbms, db_ok ? NULL : "query failed", d));
	d = NULL;
	if (f.up && (d = json_object_new_object()) != NULL) {
		jh_add_int(d, "clients", f.clients);
		jh_add_int(d, "active_calls", f.calls);
		jh_add_int(d, "uptime_s", f.uptime_s);
	}
	json_object_object_add(svc, "websocket",
	    service(f.up ? "healthy" : "unhealthy", now, f.ms,
		f.up ? NULL : f.error, d));

	json_object_object_add(sm, "cpu", cpu_metrics(cfg));
	json_object_object_add(sm, "memory", memory_metrics());
	json_object_object_add(sm, "disk", disk_metrics(cfg));
	jh_add_int(net, "active_connections", tcp_established());
	jh_add_int(net, "websocket_clients", f.up ? f.clients : 0);
	json_object_object_add(sm, "network", net);

	jh_add_str(dbh, "status", dbstatus);
	jh_add_int(dbh, "total_users", c.total_users);
	jh_add_int(dbh, "active_calls", f.up ? f.calls : c.open_calls);
	jh_add_int(dbh, "call_logs_count", c.total_call_logs);
	if (db_engine(db) == DB_POSTGRES)
		snprintf(size, sizeof(size), "n/a");
	else
		size_text(db_bytes(cfg), size, sizeof(size));
	jh_add_str(dbh, "database_size", size);

	stats_uptime_text(f.up ? f.uptime_s : host_uptime_s(), up, sizeof(up));
	/* A Go struct: declared order. */
	jh_add_str(h, "timestamp", now);
	jh_add_str(h, "status", overall);
	json_object_object_add(h, "services", svc);
	json_object_object_add(h, "system_metrics", sm);
	json_object_object_add(h, "database_health", dbh);
	jh_add_str(h, "uptime", up);
	jh_add_str(h, "version", VERSION);
	jh_add_str(h, "environment", cfg->environment);
	relay_done(&f);
	return h;
}

static int
health_reply(struct http_req *req, int relay_ms, struct err *e)
{
	struct json_object *h, *o;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((h = health(req, relay_ms, e)) == NULL)
		return -1;
	if ((o = json_object_new_object()) == NULL) {
		json_object_put(h);
		return err_set(e, ERR_INTERNAL, "out of memory");
	}
	json_object_object_add(o, "health", h);
	jh_add_int(o, "response_time_ms", (int64_t)ms_since(&t0));
	jh_add_bool(o, "success", true);
	http_reply_json(req, 200, o);
	return 0;
}

int
admin_health_fast(struct http_req *req, struct err *e)
{
	return health_reply(req, RELAY_FAST_MS, e);
}

int
admin_health_detailed(struct http_req *req, struct err *e)
{
	return health_reply(req, RELAY_DETAILED_MS, e);
}
