#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/err.h"
#include "lib/password.h"

#define ENV_FILE_MAX     (1024 * 1024)
#define SECRET_MIN       16
#define SECRET_GENERATED 48

/*
 * The parsed .env file, kept for config_get: the buffer is the file read
 * once and cut in place, entries point into it.
 */
struct env_entry {
	const char *key;
	const char *val;
};

static struct {
	bool loaded;
	char path[PATH_MAX];
	char *buf;
	size_t bufsize;
	struct env_entry *v;
	size_t n, cap;
	int read_errno; /* reading failed other than "no such file" */
	int bad_line;   /* first malformed line, 0 when none */
} envf;

static void
envf_free(void)
{
	if (envf.buf != NULL)
		explicit_bzero(envf.buf, envf.bufsize);
	free(envf.buf);
	free(envf.v);
	memset(&envf, 0, sizeof(envf));
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool
is_key_char(char c, bool first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_')
		return true;
	return !first && ((c >= '0' && c <= '9') || c == '.');
}

static int
envf_put(const char *key, const char *val)
{
	struct env_entry *v;
	size_t i;

	for (i = 0; i < envf.n; i++)
		if (strcmp(envf.v[i].key, key) == 0) {
			envf.v[i].val = val; /* the last one wins */
			return 0;
		}
	if (envf.n == envf.cap) {
		size_t cap = envf.cap ? envf.cap * 2 : 32;

		if ((v = reallocarray(envf.v, cap, sizeof(*v))) == NULL)
			return -1;
		envf.v = v;
		envf.cap = cap;
	}
	envf.v[envf.n].key = key;
	envf.v[envf.n].val = val;
	envf.n++;
	return 0;
}

/* Whether only blanks and perhaps a comment follow p. */
static bool
rest_is_comment(const char *p)
{
	while (is_blank(*p))
		p++;
	return *p == '\0' || *p == '#';
}

/*
 * One line, NUL-terminated, cut in place: [export ]KEY=VALUE where VALUE is
 * 'literal', "with \n \" \\ escapes", or bare up to a " #" comment.
 * 0 when used or ignorable, -1 when malformed.
 */
static int
envf_line(char *p)
{
	char *key, *val, *q, *w;

	while (is_blank(*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	if (strncmp(p, "export", 6) == 0 && is_blank(p[6]))
		for (p += 6; is_blank(*p); p++)
			;
	key = p;
	if (!is_key_char(*p, true))
		return -1;
	while (is_key_char(*p, false))
		p++;
	q = p;
	while (is_blank(*p))
		p++;
	if (*p != '=')
		return -1;
	*q = '\0';
	for (p++; is_blank(*p); p++)
		;
	val = p;
	if (*p == '\'') {
		val = p + 1;
		if ((q = strchr(val, '\'')) == NULL || !rest_is_comment(q + 1))
			return -1;
		*q = '\0';
	} else if (*p == '"') {
		val = w = p + 1;
		for (q = val; *q != '"'; q++) {
			if (*q == '\0')
				return -1;
			if (*q == '\\' && q[1] != '\0') {
				switch (*++q) {
				case 'n':
					*w++ = '\n';
					break;
				case 't':
					*w++ = '\t';
					break;
				case '"':
				case '\\':
					*w++ = *q;
					break;
				default: /* unknown: kept as written */
					*w++ = '\\';
					*w++ = *q;
					break;
				}
			} else
				*w++ = *q;
		}
		if (!rest_is_comment(q + 1))
			return -1;
		*w = '\0';
	} else {
		for (q = p; *q != '\0'; q++)
			if (*q == '#' && q > val && is_blank(q[-1]))
				break;
		while (q > val && is_blank(q[-1]))
			q--;
		*q = '\0';
	}
	return envf_put(key, val) == -1 ? -1 : 0;
}

static const char *
envf_path(void)
{
	const char *p = getenv("ENV_FILE");

	return p != NULL && *p != '\0' ? p : "./.env";
}

/* Read fd until size bytes or EOF: how many it got, or -1 (errno set). */
static ssize_t
read_full(int fd, char *buf, size_t size)
{
	size_t got = 0;
	ssize_t n;

	while (got < size) {
		n = read(fd, buf + got, size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Read and parse the .env file, again when force or when its path moved. */
static void
envf_load(bool force)
{
	const char *path = envf_path();
	struct stat sb;
	char *p, *eol;
	ssize_t n;
	int fd, line;

	if (envf.loaded && !force && strcmp(envf.path, path) == 0)
		return;
	envf_free();
	envf.loaded = true;
	snprintf(envf.path, sizeof(envf.path), "%s", path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno != ENOENT)
			envf.read_errno = errno;
		return;
	}
	if (fstat(fd, &sb) == -1)
		envf.read_errno = errno;
	else if (S_ISDIR(sb.st_mode))
		envf.read_errno = EISDIR;
	else if (!S_ISREG(sb.st_mode))
		envf.read_errno = EINVAL;
	else if (sb.st_size > ENV_FILE_MAX)
		envf.read_errno = EFBIG;
	if (envf.read_errno != 0) {
		close(fd);
		return;
	}
	envf.bufsize = (size_t)sb.st_size + 1;
	if ((envf.buf = malloc(envf.bufsize)) == NULL) {
		envf.read_errno = ENOMEM;
		close(fd);
		return;
	}
	if ((n = read_full(fd, envf.buf, envf.bufsize - 1)) == -1) {
		envf.read_errno = errno;
		n = 0;
	}
	close(fd);
	envf.buf[n] = '\0';
	if (envf.read_errno != 0)
		return;
	for (p = envf.buf, line = 1; p != NULL; p = eol, line++) {
		if ((eol = strchr(p, '\n')) != NULL)
			*eol++ = '\0';
		if (*p != '\0' && p[strlen(p) - 1] == '\r')
			p[strlen(p) - 1] = '\0';
		if (envf_line(p) == -1 && envf.bad_line == 0)
			envf.bad_line = line;
	}
}

static const char *
lookup(const char *name)
{
	const char *v;
	size_t i;

	if ((v = getenv(name)) != NULL)
		return v;
	for (i = 0; i < envf.n; i++)
		if (strcmp(envf.v[i].key, name) == 0)
			return envf.v[i].val;
	return NULL;
}

const char *
config_get(const char *name)
{
	envf_load(false);
	return lookup(name);
}

/* As the upstream service: a variable set to "" takes its default. */
static const char *
value(const char *name)
{
	const char *v = lookup(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static int
get_str(const char *name, const char *def, char *dst, size_t size,
    struct err *e)
{
	const char *v = value(name);

	if (v == NULL)
		v = def;
	if (strlen(v) >= size)
		return err_set_field(e, ERR_INVALID, name,
		    "%s is too long (at most %zu bytes)", name, size - 1);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int
get_int(const char *name, int def, long min, long max, int *dst, struct err *e)
{
	const char *v = value(name);
	char *end;
	long x;

	if (v == NULL) {
		*dst = def;
		return 0;
	}
	errno = 0;
	x = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || x < min || x > max ||
	    !(*v == '-' || (*v >= '0' && *v <= '9')))
		return err_set_field(e, ERR_INVALID, name,
		    "%s must be a whole number from %ld to %ld, not '%.32s'",
		    name, min, max, v);
	*dst = (int)x;
	return 0;
}

int
config_int(const char *name, int def, long min, long max, int *dst,
    struct err *e)
{
	envf_load(false);
	return get_int(name, def, min, max, dst, e);
}

static int
get_bool(const char *name, bool def, bool *dst, struct err *e)
{
	static const char *const yes[] = { "true", "1", "yes" };
	static const char *const no[] = { "false", "0", "no" };
	const char *v = value(name);
	size_t i;

	if (v == NULL) {
		*dst = def;
		return 0;
	}
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*dst = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*dst = false;
			return 0;
		}
	}
	return err_set_field(e, ERR_INVALID, name,
	    "%s must be true or false, not '%.32s'", name, v);
}

static int
mkdir_p(const char *dir, struct err *e)
{
	char path[PATH_MAX], *p;
	struct stat sb;

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return err_set_field(e, ERR_INVALID, "RUN_DIR",
		    "RUN_DIR is too long");
	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) == -1 && errno != EEXIST)
			return err_set_field(e, ERR_INVALID, "RUN_DIR",
			    "cannot create '%s': %s", path, strerror(errno));
		*p = '/';
	}
	if (mkdir(path, 0755) == -1 && errno != EEXIST)
		return err_set_field(e, ERR_INVALID, "RUN_DIR",
		    "cannot create '%s': %s", path, strerror(errno));
	if (stat(path, &sb) == -1 || !S_ISDIR(sb.st_mode))
		return err_set_field(e, ERR_INVALID, "RUN_DIR",
		    "'%s' is not a directory", path);
	return 0;
}

/* The secret in path into c: 1 when read, 0 when there is no file. */
static int
secret_read(const char *path, struct config *c, struct err *e)
{
	char buf[sizeof(c->jwt_secret) + 1];
	struct stat sb;
	size_t got;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0;
		return err_set_field(e, ERR_INVALID, "JWT_SECRET",
		    "cannot open '%s': %s", path, strerror(errno));
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    (sb.st_mode & 077) != 0) {
		close(fd);
		return err_set_field(e, ERR_INVALID, "JWT_SECRET",
		    "'%s' must be a regular file of mode 0600", path);
	}
	if ((n = read_full(fd, buf, sizeof(buf))) == -1)
		n = 0; /* refused below as holding no usable secret */
	close(fd);
	got = (size_t)n;
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r' ||
			      is_blank(buf[got - 1])))
		got--;
	if (got < SECRET_MIN || got >= sizeof(c->jwt_secret) ||
	    memchr(buf, '\0', got) != NULL) {
		explicit_bzero(buf, sizeof(buf));
		return err_set_field(e, ERR_INVALID, "JWT_SECRET",
		    "'%s' holds no usable secret: remove it to have a new "
		    "one generated",
		    path);
	}
	memcpy(c->jwt_secret, buf, got);
	c->jwt_secret[got] = '\0';
	c->jwt_secret_len = got;
	explicit_bzero(buf, sizeof(buf));
	return 1;
}

/*
 * Debug and demo runs without a usable JWT_SECRET: one random secret per
 * RUN_DIR, so every program of the system signs with the same key. It is
 * written to a private temporary file and linked into place, so a program
 * reading it never sees a partial file, and when several start at once the
 * first link wins and the others read that one.
 */
static int
secret_generated(struct config *c, struct err *e)
{
	char path[PATH_MAX], tmp[PATH_MAX], sec[SECRET_GENERATED + 1];
	int fd, rc;

	if (snprintf(path, sizeof(path), "%s/jwt_secret", c->run_dir) >=
		(int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.jwt_secret.XXXXXX", c->run_dir) >=
		(int)sizeof(tmp))
		return err_set_field(e, ERR_INVALID, "RUN_DIR",
		    "RUN_DIR is too long");
	if (mkdir_p(c->run_dir, e) == -1)
		return -1;
	if ((rc = secret_read(path, c, e)) != 0)
		return rc == 1 ? 0 : -1;
	if (password_random(sec, SECRET_GENERATED, e) == -1)
		return -1;
	sec[SECRET_GENERATED] = '\n';
	if ((fd = mkstemp(tmp)) == -1)
		return err_set_field(e, ERR_INVALID, "JWT_SECRET",
		    "cannot create '%s': %s", tmp, strerror(errno));
	errno = EIO; /* what a short write reports */
	if (fchmod(fd, 0600) == -1 ||
	    write(fd, sec, sizeof(sec)) != (ssize_t)sizeof(sec) ||
	    fsync(fd) == -1) {
		rc = errno;
		close(fd);
		unlink(tmp);
		explicit_bzero(sec, sizeof(sec));
		return err_set_field(e, ERR_INVALID, "JWT_SECRET",
		    "cannot write '%s': %s", tmp, strerror(rc));
	}
	close(fd);
	rc = link(tmp, path) == 0 ? 0 : errno;
	unlink(tmp);
	if (rc == 0) {
		memcpy(c->jwt_secret, sec, SECRET_GENERATED);
		c->jwt_secret[SECRET_GENERATED] = '\0';
		c->jwt_secret_len = SECRET_GENERATED;
		explicit_bzero(sec, sizeof(sec));
		return 0;
	}
	explicit_bzero(sec, sizeof(sec));
	if (rc != EEXIST)
		return err_set_field(e, ERR_INVALID, "JWT_SECRET",
		    "cannot create '%s': %s", path, strerror(rc));
	if ((rc = secret_read(path, c, e)) == 0)
		return err_set_field(e, ERR_INVALID, "JWT_SECRET",
		    "'%s' vanished while being created", path);
	return rc == 1 ? 0 : -1;
}

static int
load_secret(struct config *c, struct err *e)
{
	const char *s = lookup("JWT_SECRET");
	size_t n = s != NULL ? strlen(s) : 0;

	if (n >= SECRET_MIN && strcmp(s, CONFIG_UPSTREAM_DEFAULT_SECRET) != 0) {
		if (n >= sizeof(c->jwt_secret))
			return err_set_field(e, ERR_INVALID, "JWT_SECRET",
			    "JWT_SECRET is too long (at most %zu bytes)",
			    sizeof(c->jwt_secret) - 1);
		memcpy(c->jwt_secret, s, n + 1);
		c->jwt_secret_len = n;
		return 0;
	}
	if (c->debug || c->demo)
		return secret_generated(c, e);
	return err_set_field(e, ERR_INVALID, "JWT_SECRET",
	    "JWT_SECRET is not set (or is the well-known default): set a "
	    "random secret of at least %d characters, or run with "
	    "DEBUG=true / SWITCHBOARD_DEMO=1 for a generated one",
	    SECRET_MIN);
}

/* Host name or address characters, brackets for IPv6: what a URL may hold. */
static bool
host_chars_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
			(s[i] >= 'a' && s[i] <= 'z') ||
			(s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
			s[i] == '-' || s[i] == ':' || s[i] == '[' ||
			s[i] == ']'))
			return false;
	return true;
}

/*
 * PUBLIC_URL: http:// or https://, a host, perhaps a port, perhaps one
 * final slash (dropped); no path, query or credentials, since /config
 * appends "/ws" to it. Else PUBLIC_HOST, voip-application's name for the
 * same thing, which meant http://PUBLIC_HOST:PORT.
 */
static int
load_public_url(struct config *c, struct err *e)
{
	const char *v = value("PUBLIC_URL"), *host;
	size_t n, hn;

	if (v == NULL) {
		if (c->public_host[0] == '\0')
			return 0;
		if (!host_chars_ok(c->public_host, strlen(c->public_host)))
			return err_set_field(e, ERR_INVALID, "PUBLIC_HOST",
			    "PUBLIC_HOST must be a host name or address, not "
			    "'%.64s'",
			    c->public_host);
		snprintf(c->public_url, sizeof(c->public_url), "http://%s:%d",
		    c->public_host, c->port);
		return 0;
	}
	n = strlen(v);
	if (n > 0 && v[n - 1] == '/')
		n--;
	if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else
		host = NULL;
	hn = host != NULL && (size_t)(host - v) <= n ? n - (size_t)(host - v)
						     : 0;
	if (host == NULL || n >= sizeof(c->public_url) ||
	    !host_chars_ok(host, hn) || host[0] == ':')
		return err_set_field(e, ERR_INVALID, "PUBLIC_URL",
		    "PUBLIC_URL must be http(s)://host[:port] without a path, "
		    "not '%.64s'",
		    v);
	memcpy(c->public_url, v, n);
	c->public_url[n] = '\0';
	return 0;
}

/* text as an address of its family into addr; AF_INET, AF_INET6 or 0. */
static int
addr_parse(const char *text, unsigned char addr[16])
{
	if (inet_pton(AF_INET, text, addr) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, text, addr) != 1)
		return 0;
	/* ::ffff:a.b.c.d is how a dual-stack socket shows an IPv4 peer. */
	if (memcmp(addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		memmove(addr, addr + 12, 4);
		return AF_INET;
	}
	return AF_INET6;
}

/* TRUSTED_PROXIES: a comma list of addresses and address/prefix ranges. */
static int
load_proxies(struct config *c, struct err *e)
{
	const char *v = value("TRUSTED_PROXIES"), *p, *end, *slash;
	struct config_net *net;
	char item[64], *q;
	long prefix;
	size_t n;

	for (p = v; p != NULL; p = *end == ',' ? end + 1 : NULL) {
		end = strchrnul(p, ',');
		while (p < end && is_blank(*p))
			p++;
		n = (size_t)(end - p);
		while (n > 0 && is_blank(p[n - 1]))
			n--;
		if (n == 0)
			continue;
		if (c->ntrusted_proxies == CONFIG_PROXIES_MAX)
			return err_set_field(e, ERR_INVALID, "TRUSTED_PROXIES",
			    "TRUSTED_PROXIES has more than %d entries",
			    CONFIG_PROXIES_MAX);
		if (n >= sizeof(item))
			goto bad;
		memcpy(item, p, n);
		item[n] = '\0';
		net = &c->trusted_proxies[c->ntrusted_proxies];
		if ((slash = strchr(item, '/')) != NULL)
			item[slash - item] = '\0';
		if ((net->family = addr_parse(item, net->addr)) == 0)
			goto bad;
		net->prefix = net->family == AF_INET ? 32 : 128;
		if (slash != NULL) {
			errno = 0;
			prefix = strtol(slash + 1, &q, 10);
			if (errno != 0 || q == slash + 1 || *q != '\0' ||
			    slash[1] < '0' || slash[1] > '9' || prefix < 0 ||
			    prefix > net->prefix)
				goto bad;
			net->prefix = (int)prefix;
		}
		c->ntrusted_proxies++;
	}
	return 0;
bad:
	return err_set_field(e, ERR_INVALID, "TRUSTED_PROXIES",
	    "TRUSTED_PROXIES: '%.*s' is not an address or address/prefix",
	    (int)(n < 64 ? n : 64), p);
}

bool
config_proxy_trusted(const struct config *c, const char *addr)
{
	const struct config_net *net;
	unsigned char a[16];
	int family, bits;
	size_t i;

	if (c == NULL || addr == NULL || c->ntrusted_proxies == 0 ||
	    (family = addr_parse(addr, a)) == 0)
		return false;
	for (i = 0; i < c->ntrusted_proxies; i++) {
		net = &c->trusted_proxies[i];
		if (net->family != family)
			continue;
		bits = net->prefix;
		if (memcmp(a, net->addr, (size_t)bits / 8) != 0)
			continue;
		if (bits % 8 != 0 && ((a[bits / 8] ^ net->addr[bits / 8]) &
					 (0xff << (8 - bits % 8)) & 0xff) != 0)
			continue;
		return true;
	}
	return false;
}

/* DATABASE_URL: empty, or a PostgreSQL connection URI. */
static int
get_database_url(struct config *c, struct err *e)
{
	const char *u;

	if (get_str("DATABASE_URL", "", c->database_url,
		sizeof(c->database_url), e) == -1)
		return -1;
	u = c->database_url;
	if (*u != '\0' && strncmp(u, "postgresql://", 13) != 0 &&
	    strncmp(u, "postgres://", 11) != 0)
		return err_set_field(e, ERR_INVALID, "DATABASE_URL",
		    "expected postgresql://... or nothing (SQLite at "
		    "DB_PATH)");
	return 0;
}

static int
load_all(struct config *c, struct err *e)
{
	if (envf.read_errno != 0)
		return err_set_field(e, ERR_INVALID, "ENV_FILE",
		    "cannot read '%s': %s", envf.path,
		    strerror(envf.read_errno));
	if (envf.bad_line != 0)
		return err_set_field(e, ERR_INVALID, "ENV_FILE",
		    "'%s' line %d: expected KEY=VALUE", envf.path,
		    envf.bad_line);
	if (get_str("HOST", "0.0.0.0", c->host, sizeof(c->host), e) == -1 ||
	    get_int("PORT", 8080, 1, 65535, &c->port, e) == -1 ||
	    get_int("JWT_EXPIRY_HOURS", 24, 1, 24 * 366 * 10,
		&c->jwt_expiry_hours, e) == -1 ||
	    get_str("DB_PATH", "./var/voip.db", c->db_path, sizeof(c->db_path),
		e) == -1 ||
	    get_database_url(c, e) == -1 ||
	    get_str("RUN_DIR", "./var/run", c->run_dir, sizeof(c->run_dir),
		e) == -1 ||
	    get_str("ASTERISK_HOST", "", c->asterisk_host,
		sizeof(c->asterisk_host), e) == -1 ||
	    get_int("ASTERISK_AMI_PORT", 5038, 1, 65535, &c->asterisk_ami_port,
		e) == -1 ||
	    get_str("ASTERISK_AMI_USERNAME", "admin", c->asterisk_ami_username,
		sizeof(c->asterisk_ami_username), e) == -1 ||
	    get_str("ASTERISK_AMI_SECRET", "", c->asterisk_ami_secret,
		sizeof(c->asterisk_ami_secret), e) == -1 ||
	    get_str("AMI_HOST", "", c->ami_host, sizeof(c->ami_host), e) ==
		-1 ||
	    get_int("AMI_PORT", 5038, 1, 65535, &c->ami_port, e) == -1 ||
	    get_str("AMI_USERNAME", "switchboard", c->ami_username,
		sizeof(c->ami_username), e) == -1 ||
	    get_str("AMI_SECRET", "", c->ami_secret, sizeof(c->ami_secret),
		e) == -1 ||
	    get_str("SIP_DOMAIN", c->asterisk_host, c->sip_domain,
		sizeof(c->sip_domain), e) == -1 ||
	    get_int("SIP_PORT", 8088, 1, 65535, &c->sip_port, e) == -1 ||
	    get_str("CORS_ORIGINS",
		"http://localhost:3000,http://127.0.0.1:3000", c->cors_origins,
		sizeof(c->cors_origins), e) == -1 ||
	    get_str("ENVIRONMENT", "development", c->environment,
		sizeof(c->environment), e) == -1 ||
	    get_str("SERVICE_NAME", "voip-backend", c->service_name,
		sizeof(c->service_name), e) == -1 ||
	    get_str("PUBLIC_HOST", "", c->public_host, sizeof(c->public_host),
		e) == -1 ||
	    get_bool("DEBUG", false, &c->debug, e) == -1 ||
	    get_bool("SWITCHBOARD_DEMO", false, &c->demo, e) == -1 ||
	    get_bool("WS_LEGACY_EXTENSION_AUTH", false,
		&c->ws_legacy_extension_auth, e) == -1 ||
	    get_int("CALL_RING_TIMEOUT_S", 60, 1, 3600, &c->call_ring_timeout_s,
		e) == -1 ||
	    get_int("CALL_ATTEMPTS_PER_MIN", 20, 0, 100000,
		&c->call_attempts_per_min, e) == -1 ||
	    get_int("NOTIFY_RETENTION_S", 86400, 0, 86400 * 365,
		&c->notify_retention_s, e) == -1 ||
	    get_int("REGISTER_PER_ADDR_HOUR", 10, 1, 1000000,
		&c->register_per_addr_hour, e) == -1 ||
	    load_public_url(c, e) == -1 || load_proxies(c, e) == -1)
		return -1;
	return load_secret(c, e);
}

int
config_load(struct config *c, struct err *e)
{
	memset(c, 0, sizeof(*c));
	envf_load(true);
	if (load_all(c, e) == -1) {
		explicit_bzero(c, sizeof(*c));
		return -1;
	}
	return 0;
}

bool
config_cors_allowed(const struct config *c, const char *origin)
{
	const char *p, *end, *comma;
	size_t n;

	if (origin == NULL || *origin == '\0')
		return false;
	n = strlen(origin);
	for (p = c->cors_origins;; p = comma + 1) {
		comma = strchr(p, ',');
		end = comma != NULL ? comma : p + strlen(p);
		while (p < end && is_blank(*p))
			p++;
		while (end > p && is_blank(end[-1]))
			end--;
		if ((size_t)(end - p) == n && memcmp(p, origin, n) == 0)
			return true;
		if (comma == NULL)
			break;
	}
	return false;
}

const char *
config_db_target(const struct config *c)
{
	return c->database_url[0] != '\0' ? c->database_url : c->db_path;
}

void
config_db_label(const struct config *c, char *buf, size_t size)
{
	const char *u = config_db_target(c), *auth, *at, *colon, *p;
	size_t n = 0;

	if (size == 0)
		return;
	if (c->database_url[0] == '\0') {
		snprintf(buf, size, "%s", u);
		return;
	}
	/* scheme://user:password@host...: the user part ends at the first
	 * '@' before the path. */
	auth = strstr(u, "://") + 3;
	at = strchr(auth, '@');
	if (at != NULL && at > auth + strcspn(auth, "/?"))
		at = NULL;
	colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	for (p = u; *p != '\0' && n + 1 < size;) {
		if (p == colon) {
			n += (size_t)snprintf(buf + n, size - n, ":xxx");
			p = at;
		} else if (p > u && (p[-1] == '?' || p[-1] == '&') &&
			   strncmp(p, "password=", 9) == 0) {
			n +=
			    (size_t)snprintf(buf + n, size - n, "password=xxx");
			p += strcspn(p, "&");
		} else
			buf[n++] = *p++;
		if (n >= size)
			n = size - 1;
	}
	buf[n] = '\0';
}

void
config_wipe(struct config *c)
{
	if (c != NULL) {
		explicit_bzero(c->database_url, sizeof(c->database_url));
		explicit_bzero(c->jwt_secret, sizeof(c->jwt_secret));
		c->jwt_secret_len = 0;
		explicit_bzero(c->asterisk_ami_secret,
		    sizeof(c->asterisk_ami_secret));
		explicit_bzero(c->ami_secret, sizeof(c->ami_secret));
	}
	/* The .env file may hold the same secrets. */
	envf_free();
}
