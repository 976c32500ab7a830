#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/config.h"
#include "lib/err.h"

#define GOOD_SECRET "0123456789abcdef-good-secret"

static const char *const vars[] = { "PORT", "HOST", "JWT_SECRET",
	"JWT_EXPIRY_HOURS", "DB_PATH", "RUN_DIR", "ASTERISK_HOST",
	"ASTERISK_AMI_PORT", "ASTERISK_AMI_USERNAME", "ASTERISK_AMI_SECRET",
	"SIP_DOMAIN", "SIP_PORT", "CORS_ORIGINS", "DEBUG", "ENVIRONMENT",
	"SERVICE_NAME", "PUBLIC_HOST", "SWITCHBOARD_DEMO",
	"WS_LEGACY_EXTENSION_AUTH", "CALL_RING_TIMEOUT_S",
	"CALL_ATTEMPTS_PER_MIN", "NOTIFY_RETENTION_S", "FCGI_CHILDREN",
	"ENV_FILE", "ONLY_IN_FILE", "PUBLIC_URL", "TRUSTED_PROXIES",
	"REGISTER_PER_ADDR_HOUR", "DATABASE_URL", "AMI_HOST", "AMI_PORT",
	"AMI_USERNAME", "AMI_SECRET", NULL };

static char dir[64];
static char envpath[128];

/* A clean slate: no configuration in the environment, no .env file. */
static void
reset(void)
{
	size_t i;

	for (i = 0; vars[i] != NULL; i++)
		unsetenv(vars[i]);
	unlink(envpath);
	setenv("ENV_FILE", envpath, 1);
}

static void
write_env(const char *text)
{
	FILE *f = fopen(envpath, "w");

	CHECK(f != NULL);
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
}

/* config_load fails on field with ERR_INVALID; c is wiped. */
static bool
load_fails(const char *field)
{
	struct config c;
	struct err e = { 0 };
	size_t i;

	memset(&c, 'x', sizeof(c));
	if (config_load(&c, &e) != -1) {
		fprintf(stderr, "config_load succeeded, expected '%s'\n",
		    field);
		return false;
	}
	for (i = 0; i < sizeof(c); i++)
		if (((unsigned char *)&c)[i] != 0)
			return false;
	if (e.code != ERR_INVALID || strcmp(e.field, field) != 0) {
		fprintf(stderr, "failed on '%s' (%s), expected '%s'\n", e.field,
		    e.msg, field);
		return false;
	}
	return true;
}

static void
load_ok(struct config *c)
{
	struct err e = { 0 };

	if (config_load(c, &e) == -1) {
		fprintf(stderr, "config_load: %s: %s\n", e.field, e.msg);
		CHECK(0);
	}
}

static void
test_defaults(void)
{
	struct config c;

	reset();
	setenv("JWT_SECRET", GOOD_SECRET, 1);
	load_ok(&c);
	CHECK(strcmp(c.host, "0.0.0.0") == 0);
	CHECK(c.port == 8080);
	CHECK(strcmp(c.jwt_secret, GOOD_SECRET) == 0);
	CHECK(c.jwt_secret_len == strlen(GOOD_SECRET));
	CHECK(c.jwt_expiry_hours == 24);
	CHECK(strcmp(c.db_path, "./var/voip.db") == 0);
	CHECK(strcmp(c.run_dir, "./var/run") == 0);
	CHECK(strcmp(c.asterisk_host, "") == 0);
	CHECK(c.asterisk_ami_port == 5038);
	CHECK(strcmp(c.asterisk_ami_username, "admin") == 0);
	CHECK(strcmp(c.asterisk_ami_secret, "") == 0);
	/* No manager link unless asked for. */
	CHECK(strcmp(c.ami_host, "") == 0);
	CHECK(c.ami_port == 5038);
	CHECK(strcmp(c.ami_username, "switchboard") == 0);
	CHECK(strcmp(c.ami_secret, "") == 0);
	CHECK(strcmp(c.sip_domain, "") == 0);
	CHECK(c.sip_port == 8088);
	CHECK(strcmp(c.cors_origins,
		  "http://localhost:3000,http://127.0.0.1:3000") == 0);
	CHECK(strcmp(c.environment, "development") == 0);
	CHECK(strcmp(c.service_name, "voip-backend") == 0);
	CHECK(strcmp(c.public_host, "") == 0);
	CHECK(!c.debug && !c.demo && !c.ws_legacy_extension_auth);
	CHECK(c.call_ring_timeout_s == 60);
	CHECK(c.call_attempts_per_min == 20);
	CHECK(c.notify_retention_s == 86400);
	config_wipe(&c);

	/* SIP_DOMAIN follows ASTERISK_HOST unless set */
	setenv("ASTERISK_HOST", "pbx.example", 1);
	load_ok(&c);
	CHECK(strcmp(c.sip_domain, "pbx.example") == 0);
	setenv("SIP_DOMAIN", "sip.example", 1);
	load_ok(&c);
	CHECK(strcmp(c.sip_domain, "sip.example") == 0);
	CHECK(strcmp(c.asterisk_host, "pbx.example") == 0);

	/* a variable set to "" takes its default */
	setenv("PORT", "", 1);
	setenv("HOST", "", 1);
	load_ok(&c);
	CHECK(c.port == 8080);
	CHECK(strcmp(c.host, "0.0.0.0") == 0);
	config_wipe(&c);
}

static void
test_env_file(void)
{
	struct config c;

	reset();
	write_env("# a comment\n"
		  "\n"
		  "   # indented comment\n"
		  "JWT_SECRET=" GOOD_SECRET "\n"
		  "PORT=9000\n"
		  "export HOST = 127.0.0.2\n"
		  "ASTERISK_HOST='pbx # not a comment'\n"
		  "ASTERISK_AMI_SECRET=\"s3cr\\\"et\\\\x\\n\" # comment\n"
		  "SERVICE_NAME=svc # trailing comment\n"
		  "SIP_DOMAIN=host#notcomment\n"
		  "ENVIRONMENT=production\r\n"
		  "ASTERISK_AMI_USERNAME=\"\"\n"
		  "SIP_PORT=1\n"
		  "SIP_PORT=65535\n"
		  "CORS_ORIGINS=\"http://a.example, http://b.example\"\n"
		  "ONLY_IN_FILE='  spaced  '\n"
		  "DEBUG=no\n"
		  "WS_LEGACY_EXTENSION_AUTH=TRUE\n"
		  "CALL_RING_TIMEOUT_S=30\n"
		  "CALL_ATTEMPTS_PER_MIN=0");
	load_ok(&c);
	CHECK(strcmp(c.jwt_secret, GOOD_SECRET) == 0);
	CHECK(c.port == 9000);
	CHECK(strcmp(c.host, "127.0.0.2") == 0);
	CHECK(strcmp(c.asterisk_host, "pbx # not a comment") == 0);
	CHECK(strcmp(c.asterisk_ami_secret, "s3cr\"et\\x\n") == 0);
	CHECK(strcmp(c.service_name, "svc") == 0);
	CHECK(strcmp(c.sip_domain, "host#notcomment") == 0);
	CHECK(strcmp(c.environment, "production") == 0);
	CHECK(strcmp(c.asterisk_ami_username, "admin") == 0); /* "" */
	CHECK(c.sip_port == 65535);                           /* last wins */
	CHECK(
	    strcmp(c.cors_origins, "http://a.example, http://b.example") == 0);
	CHECK(!c.debug);
	CHECK(c.ws_legacy_extension_auth);
	CHECK(c.call_ring_timeout_s == 30);
	CHECK(c.call_attempts_per_min == 0); /* no limit */
	CHECK(strcmp(config_get("ONLY_IN_FILE"), "  spaced  ") == 0);
	CHECK(strcmp(config_get("PORT"), "9000") == 0);
	CHECK(config_get("NOT_ANYWHERE_AT_ALL") == NULL);

	/* the environment wins over the file, in config_load and config_get */
	setenv("PORT", "9100", 1);
	setenv("SERVICE_NAME", "from-env", 1);
	setenv("ONLY_IN_FILE", "env", 1);
	load_ok(&c);
	CHECK(c.port == 9100);
	CHECK(strcmp(c.service_name, "from-env") == 0);
	CHECK(strcmp(c.host, "127.0.0.2") == 0);
	CHECK(strcmp(config_get("PORT"), "9100") == 0);
	CHECK(strcmp(config_get("ONLY_IN_FILE"), "env") == 0);
	CHECK(strcmp(config_get("HOST"), "127.0.0.2") == 0);
	unsetenv("ONLY_IN_FILE");
	CHECK(strcmp(config_get("ONLY_IN_FILE"), "  spaced  ") == 0);

	/* a secret from the environment beats a file one */
	setenv("JWT_SECRET", "env-secret-0123456789", 1);
	load_ok(&c);
	CHECK(strcmp(c.jwt_secret, "env-secret-0123456789") == 0);

	/* the secrets go, and so does the cached file */
	config_wipe(&c);
	CHECK(c.jwt_secret_len == 0);
	CHECK(c.jwt_secret[0] == '\0' && c.asterisk_ami_secret[0] == '\0');
	CHECK(strcmp(config_get("HOST"), "127.0.0.2") == 0); /* re-read */

	/* a missing file is fine; ENV_FILE picks the file */
	reset();
	setenv("JWT_SECRET", GOOD_SECRET, 1);
	load_ok(&c);
	CHECK(c.port == 8080);
	CHECK(config_get("ONLY_IN_FILE") == NULL);
	write_env("ONLY_IN_FILE=again\n");
	load_ok(&c); /* config_load reads the file anew */
	CHECK(strcmp(config_get("ONLY_IN_FILE"), "again") == 0);
	config_wipe(&c);
}

static void
test_bad_values(void)
{
	static const struct {
		const char *var, *val;
	} bad[] = {
		{ "DEBUG", "maybe" },
		{ "DEBUG", "2" },
		{ "DEBUG", "on" },
		{ "SWITCHBOARD_DEMO", "yes please" },
		{ "WS_LEGACY_EXTENSION_AUTH", "t" },
		{ "PORT", "0" },
		{ "PORT", "65536" },
		{ "PORT", "80x" },
		{ "PORT", " 80" },
		{ "PORT", "-80" },
		{ "PORT", "99999999999999999999" },
		{ "ASTERISK_AMI_PORT", "abc" },
		{ "SIP_PORT", "70000" },
		{ "JWT_EXPIRY_HOURS", "0" },
		{ "JWT_EXPIRY_HOURS", "-1" },
		{ "JWT_EXPIRY_HOURS", "1.5" },
		{ "CALL_RING_TIMEOUT_S", "0" },
		{ "CALL_ATTEMPTS_PER_MIN", "-1" },
		{ "CALL_ATTEMPTS_PER_MIN", "100001" },
		{ "NOTIFY_RETENTION_S", "-1" },
		{ "NOTIFY_RETENTION_S", "31536001" },
	};
	static const struct {
		const char *val;
		bool b;
	} good[] = {
		{ "true", true },
		{ "TRUE", true },
		{ "True", true },
		{ "1", true },
		{ "yes", true },
		{ "YES", true },
		{ "false", false },
		{ "False", false },
		{ "0", false },
		{ "no", false },
		{ "NO", false },
	};
	struct config c;
	char longhost[300];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reset();
		setenv("JWT_SECRET", GOOD_SECRET, 1);
		setenv(bad[i].var, bad[i].val, 1);
		CHECK(load_fails(bad[i].var));
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		reset();
		setenv("JWT_SECRET", GOOD_SECRET, 1);
		setenv("WS_LEGACY_EXTENSION_AUTH", good[i].val, 1);
		load_ok(&c);
		CHECK(c.ws_legacy_extension_auth == good[i].b);
	}

	/* the message names the variable */
	{
		struct err e = { 0 };

		reset();
		setenv("JWT_SECRET", GOOD_SECRET, 1);
		setenv("DEBUG", "maybe", 1);
		CHECK(config_load(&c, &e) == -1);
		CHECK(strstr(e.msg, "DEBUG") != NULL);
	}

	/* boundaries that are fine */
	reset();
	setenv("JWT_SECRET", GOOD_SECRET, 1);
	setenv("PORT", "65535", 1);
	setenv("ASTERISK_AMI_PORT", "1", 1);
	setenv("JWT_EXPIRY_HOURS", "1", 1);
	load_ok(&c);
	CHECK(c.port == 65535 && c.asterisk_ami_port == 1);
	CHECK(c.jwt_expiry_hours == 1);

	/* too long for its field */
	memset(longhost, 'h', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = '\0';
	setenv("HOST", longhost, 1);
	CHECK(load_fails("HOST"));

	/* a malformed .env line */
	reset();
	setenv("JWT_SECRET", GOOD_SECRET, 1);
	write_env("PORT=1\nthis line is not an assignment\n");
	CHECK(load_fails("ENV_FILE"));
	write_env("PORT='unterminated\n");
	CHECK(load_fails("ENV_FILE"));
	write_env("PORT=\"1\" trailing\n");
	CHECK(load_fails("ENV_FILE"));
	write_env("1PORT=1\n");
	CHECK(load_fails("ENV_FILE"));
	/* a bad value in the file names the variable */
	write_env("DEBUG=perhaps\n");
	CHECK(load_fails("DEBUG"));
	/* ENV_FILE naming a directory */
	setenv("ENV_FILE", dir, 1);
	CHECK(load_fails("ENV_FILE"));
	reset();
	config_wipe(&c);
}

static void
test_secret_refused(void)
{
	static const char *const weak[] = { "", CONFIG_UPSTREAM_DEFAULT_SECRET,
		"short", "0123456789abcde" /* 15 */ };
	struct err e = { 0 };
	struct config c;
	size_t i;

	reset();
	CHECK(load_fails("JWT_SECRET"));
	CHECK(config_load(&c, &e) == -1);
	CHECK(strcmp(e.msg,
		  "JWT_SECRET is not set (or is the well-known default): set a "
		  "random secret of at least 16 characters, or run with "
		  "DEBUG=true / SWITCHBOARD_DEMO=1 for a generated one") == 0);
	for (i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
		setenv("JWT_SECRET", weak[i], 1);
		CHECK(load_fails("JWT_SECRET"));
	}
	/* the default in the file is refused too */
	unsetenv("JWT_SECRET");
	write_env("JWT_SECRET=" CONFIG_UPSTREAM_DEFAULT_SECRET "\n");
	CHECK(load_fails("JWT_SECRET"));
	/* 16 is enough */
	setenv("JWT_SECRET", "0123456789abcdef", 1);
	load_ok(&c);
	CHECK(c.jwt_secret_len == 16);
	config_wipe(&c);
}

static void
read_file(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	CHECK(fd != -1);
	n = read(fd, buf, size - 1);
	CHECK(n >= 0);
	buf[n] = '\0';
	close(fd);
}

static void
test_secret_generated(void)
{
	char run[128], file[160], other[160], content[128], first[512];
	struct config c;
	struct stat sb;
	size_t i;
	FILE *f;

	reset();
	snprintf(run, sizeof(run), "%s/run/nested", dir);
	snprintf(file, sizeof(file), "%s/jwt_secret", run);
	setenv("RUN_DIR", run, 1);
	setenv("DEBUG", "true", 1);
	load_ok(&c);
	CHECK(c.debug);
	CHECK(c.jwt_secret_len == 48);
	CHECK(strlen(c.jwt_secret) == 48);
	for (i = 0; i < 48; i++)
		CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
			     "xyz"
			     "0123456789-_",
			  c.jwt_secret[i]) != NULL);
	CHECK(stat(file, &sb) == 0);
	CHECK(S_ISREG(sb.st_mode));
	CHECK((sb.st_mode & 07777) == 0600);
	read_file(file, content, sizeof(content));
	CHECK(strlen(content) == 49 && content[48] == '\n');
	CHECK(strncmp(content, c.jwt_secret, 48) == 0);
	snprintf(first, sizeof(first), "%s", c.jwt_secret);

	/* reused on the next load, also in demo mode */
	load_ok(&c);
	CHECK(strcmp(c.jwt_secret, first) == 0);
	unsetenv("DEBUG");
	setenv("SWITCHBOARD_DEMO", "1", 1);
	load_ok(&c);
	CHECK(c.demo && !c.debug);
	CHECK(strcmp(c.jwt_secret, first) == 0);
	/* a weak secret in debug: the generated one is used */
	setenv("JWT_SECRET", CONFIG_UPSTREAM_DEFAULT_SECRET, 1);
	load_ok(&c);
	CHECK(strcmp(c.jwt_secret, first) == 0);
	/* a good one is used as given */
	setenv("JWT_SECRET", GOOD_SECRET, 1);
	load_ok(&c);
	CHECK(strcmp(c.jwt_secret, GOOD_SECRET) == 0);
	unsetenv("JWT_SECRET");

	/* a file others can read is refused */
	CHECK(chmod(file, 0644) == 0);
	CHECK(load_fails("JWT_SECRET"));
	CHECK(chmod(file, 0600) == 0);
	/* a symbolic link is refused, even to a good file */
	snprintf(other, sizeof(other), "%s/real", run);
	CHECK(rename(file, other) == 0);
	CHECK(symlink(other, file) == 0);
	CHECK(load_fails("JWT_SECRET"));
	CHECK(unlink(file) == 0);
	CHECK(rename(other, file) == 0);
	load_ok(&c);
	CHECK(strcmp(c.jwt_secret, first) == 0);
	/* a secret longer than the configuration holds is refused */
	CHECK((f = fopen(file, "w")) != NULL);
	for (i = 0; i < sizeof(c.jwt_secret) + 64; i++)
		CHECK(fputc('s', f) == 's');
	CHECK(fclose(f) == 0);
	CHECK(load_fails("JWT_SECRET"));
	/* a truncated file is refused, not silently replaced */
	CHECK(truncate(file, 5) == 0);
	CHECK(load_fails("JWT_SECRET"));
	CHECK(unlink(file) == 0);

	/* a new one when it is gone, different from the first */
	load_ok(&c);
	CHECK(c.jwt_secret_len == 48);
	CHECK(strcmp(c.jwt_secret, first) != 0);
	CHECK(unlink(file) == 0);
	/* no temporary files left behind */
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) = 0",
		    run);
		CHECK(system(cmd) == 0);
	}
	config_wipe(&c);
}

/* Programs starting at once end up with one secret. */
static void
test_secret_race(void)
{
	enum { KIDS = 8 };
	char run[128], got[KIDS][64];
	int fds[KIDS][2], k, status;
	pid_t pid[KIDS];
	ssize_t n;

	reset();
	snprintf(run, sizeof(run), "%s/race", dir);
	setenv("RUN_DIR", run, 1);
	setenv("SWITCHBOARD_DEMO", "true", 1);
	for (k = 0; k < KIDS; k++) {
		CHECK(pipe(fds[k]) == 0);
		CHECK((pid[k] = fork()) != -1);
		if (pid[k] == 0) {
			struct config c;
			struct err e = { 0 };

			close(fds[k][0]);
			if (config_load(&c, &e) == -1)
				_exit(2);
			if (write(fds[k][1], c.jwt_secret, c.jwt_secret_len) !=
			    (ssize_t)c.jwt_secret_len)
				_exit(3);
			_exit(0);
		}
		close(fds[k][1]);
	}
	for (k = 0; k < KIDS; k++) {
		n = read(fds[k][0], got[k], sizeof(got[k]) - 1);
		CHECK(n == 48);
		got[k][n] = '\0';
		close(fds[k][0]);
		CHECK(waitpid(pid[k], &status, 0) == pid[k]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	for (k = 1; k < KIDS; k++)
		CHECK(strcmp(got[k], got[0]) == 0);
}

static void
test_cors(void)
{
	struct config c;

	reset();
	setenv("JWT_SECRET", GOOD_SECRET, 1);
	load_ok(&c);
	CHECK(config_cors_allowed(&c, "http://localhost:3000"));
	CHECK(config_cors_allowed(&c, "http://127.0.0.1:3000"));
	CHECK(!config_cors_allowed(&c, "http://localhost:300"));
	CHECK(!config_cors_allowed(&c, "http://localhost:30000"));
	CHECK(!config_cors_allowed(&c, "http://localhost"));
	CHECK(!config_cors_allowed(&c, "HTTP://LOCALHOST:3000"));
	CHECK(!config_cors_allowed(&c, ""));
	CHECK(!config_cors_allowed(&c, NULL));
	CHECK(!config_cors_allowed(&c, ","));
	CHECK(!config_cors_allowed(&c,
	    "http://localhost:3000,http://127.0.0.1:3000"));

	setenv("CORS_ORIGINS",
	    " https://a.example ,\thttps://b.example:8443,,"
	    "https://c.example ",
	    1);
	load_ok(&c);
	CHECK(config_cors_allowed(&c, "https://a.example"));
	CHECK(config_cors_allowed(&c, "https://b.example:8443"));
	CHECK(config_cors_allowed(&c, "https://c.example"));
	CHECK(!config_cors_allowed(&c, " https://a.example"));
	CHECK(!config_cors_allowed(&c, "https://a.exampl"));
	CHECK(!config_cors_allowed(&c, "http://localhost:3000"));
	CHECK(!config_cors_allowed(&c, ""));
	config_wipe(&c);
}

/* PUBLIC_URL, PUBLIC_HOST, TRUSTED_PROXIES and REGISTER_PER_ADDR_HOUR. */
static void
test_public_edges(void)
{
	static const char *const bad_urls[] = { "voip.example.org",
		"ftp://voip.example.org", "https://", "https:///",
		"https://voip.example.org/app", "https://u:p@voip.example.org",
		"https://voip.example.org?x=1", "https://voip example.org",
		"https://:8443", "http://voip.example.org//" };
	static const char *const bad_proxies[] = { "10.0.0.300", "10.0.0.1/33",
		"::1/129", "10.0.0.1/", "10.0.0.1/x", "10.0.0.1/-1", "proxy",
		"10.0.0.1,,fe80::1/ 64", "10.0.0.0/8 10.1.0.0/16" };
	struct config c;
	size_t i;

	reset();
	setenv("JWT_SECRET", GOOD_SECRET, 1);
	load_ok(&c);
	CHECK(c.public_url[0] == '\0');
	CHECK(c.ntrusted_proxies == 0);
	CHECK(c.register_per_addr_hour == 10);
	CHECK(!config_proxy_trusted(&c, "127.0.0.1"));
	config_wipe(&c);

	setenv("PUBLIC_URL", "https://voip.example.org/", 1);
	setenv("PUBLIC_HOST", "ignored.example", 1);
	load_ok(&c);
	CHECK(strcmp(c.public_url, "https://voip.example.org") == 0);
	config_wipe(&c);
	setenv("PUBLIC_URL", "http://[2001:db8::1]:8443", 1);
	load_ok(&c);
	CHECK(strcmp(c.public_url, "http://[2001:db8::1]:8443") == 0);
	config_wipe(&c);
	for (i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		setenv("PUBLIC_URL", bad_urls[i], 1);
		if (!load_fails("PUBLIC_URL"))
			fprintf(stderr, "PUBLIC_URL=%s accepted\n",
			    bad_urls[i]);
	}
	/* voip-application's PUBLIC_HOST meant http://PUBLIC_HOST:PORT */
	unsetenv("PUBLIC_URL");
	setenv("PORT", "8443", 1);
	load_ok(&c);
	CHECK(strcmp(c.public_url, "http://ignored.example:8443") == 0);
	config_wipe(&c);
	setenv("PUBLIC_HOST", "bad/host", 1);
	CHECK(load_fails("PUBLIC_HOST"));
	unsetenv("PUBLIC_HOST");

	setenv("TRUSTED_PROXIES",
	    " 10.0.0.1, 192.168.0.0/16,2001:db8::/32 ,"
	    "172.16.0.0/12,::1",
	    1);
	load_ok(&c);
	CHECK(c.ntrusted_proxies == 5);
	CHECK(config_proxy_trusted(&c, "10.0.0.1"));
	CHECK(!config_proxy_trusted(&c, "10.0.0.2"));
	CHECK(config_proxy_trusted(&c, "192.168.200.7"));
	CHECK(!config_proxy_trusted(&c, "192.169.0.1"));
	CHECK(config_proxy_trusted(&c, "172.31.255.255"));
	CHECK(!config_proxy_trusted(&c, "172.32.0.0"));
	CHECK(config_proxy_trusted(&c, "2001:db8:ffff::5"));
	CHECK(!config_proxy_trusted(&c, "2001:db9::5"));
	CHECK(config_proxy_trusted(&c, "::1"));
	CHECK(config_proxy_trusted(&c, "::ffff:10.0.0.1"));
	CHECK(!config_proxy_trusted(&c, "::2"));
	CHECK(!config_proxy_trusted(&c, ""));
	CHECK(!config_proxy_trusted(&c, NULL));
	CHECK(!config_proxy_trusted(&c, "10.0.0.1 "));
	CHECK(!config_proxy_trusted(&c, "localhost"));
	config_wipe(&c);
	setenv("TRUSTED_PROXIES", "0.0.0.0/0", 1);
	load_ok(&c);
	CHECK(config_proxy_trusted(&c, "203.0.113.9"));
	CHECK(!config_proxy_trusted(&c, "2001:db8::1"));
	config_wipe(&c);
	for (i = 0; i < sizeof(bad_proxies) / sizeof(bad_proxies[0]); i++) {
		setenv("TRUSTED_PROXIES", bad_proxies[i], 1);
		if (!load_fails("TRUSTED_PROXIES"))
			fprintf(stderr, "TRUSTED_PROXIES=%s accepted\n",
			    bad_proxies[i]);
	}
	unsetenv("TRUSTED_PROXIES");

	setenv("REGISTER_PER_ADDR_HOUR", "3", 1);
	load_ok(&c);
	CHECK(c.register_per_addr_hour == 3);
	config_wipe(&c);
	setenv("REGISTER_PER_ADDR_HOUR", "0", 1);
	CHECK(load_fails("REGISTER_PER_ADDR_HOUR"));
	unsetenv("REGISTER_PER_ADDR_HOUR");
	unsetenv("PORT");
}

/* DATABASE_URL selects the target; its password never reaches a label. */
static void
test_database_url(void)
{
	struct config c;
	struct err e = { 0 };
	char label[256];

	reset();
	setenv("JWT_SECRET", GOOD_SECRET, 1);
	setenv("DB_PATH", "/srv/voip.db", 1);
	load_ok(&c);
	CHECK(strcmp(config_db_target(&c), "/srv/voip.db") == 0);
	config_db_label(&c, label, sizeof(label));
	CHECK(strcmp(label, "/srv/voip.db") == 0);

	setenv("DATABASE_URL", "postgresql://sb:s3cr3t@db.example:5433/voip"
			       "?sslmode=require&password=other&x=1", 1);
	load_ok(&c);
	CHECK(strcmp(config_db_target(&c), getenv("DATABASE_URL")) == 0);
	config_db_label(&c, label, sizeof(label));
	CHECK(strcmp(label, "postgresql://sb:xxx@db.example:5433/voip"
			    "?sslmode=require&password=xxx&x=1") == 0);
	CHECK(strstr(label, "s3cr3t") == NULL);
	/* A short buffer truncates, still without the password. */
	config_db_label(&c, label, 20);
	CHECK(strcmp(label, "postgresql://sb:xxx") == 0);

	setenv("DATABASE_URL", "postgres:///voip?host=/run/pg", 1);
	load_ok(&c);
	config_db_label(&c, label, sizeof(label));
	CHECK(strcmp(label, "postgres:///voip?host=/run/pg") == 0);
	/* An '@' after the path is not a user part. */
	setenv("DATABASE_URL", "postgresql://h/db?options=a:b@c", 1);
	load_ok(&c);
	config_db_label(&c, label, sizeof(label));
	CHECK(strcmp(label, "postgresql://h/db?options=a:b@c") == 0);

	setenv("DATABASE_URL", "mysql://x/y", 1);
	CHECK(config_load(&c, &e) == -1);
	CHECK(e.code == ERR_INVALID);
	CHECK(strcmp(e.field, "DATABASE_URL") == 0);
	unsetenv("DATABASE_URL");
	unsetenv("DB_PATH");
	config_wipe(&c);
}

int
main(void)
{
	char cmd[128];

	snprintf(dir, sizeof(dir), "/tmp/config_test.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(envpath, sizeof(envpath), "%s/test.env", dir);
	test_defaults();
	test_env_file();
	test_bad_values();
	test_secret_refused();
	test_secret_generated();
	test_secret_race();
	test_cors();
	test_public_edges();
	test_database_url();
	reset();
	config_wipe(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	printf("config: %d checks passed\n", checks);
	return 0;
}
