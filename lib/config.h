#ifndef LIB_CONFIG_H
#define LIB_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

struct err;

/* One TRUSTED_PROXIES entry: an address and how many leading bits count. */
struct config_net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};

#define CONFIG_PROXIES_MAX 32

/*
 * Configuration: the voip-application variable names and defaults, read
 * from the environment and from a .env file (ENV_FILE, default "./.env");
 * the environment wins.
 */
struct config {
	char host[256];
	int port;
	char jwt_secret[512];
	size_t jwt_secret_len;
	int jwt_expiry_hours;
	char db_path[PATH_MAX];
	/* DATABASE_URL: "postgresql://..." selects PostgreSQL; "" is SQLite
	 * at db_path. May hold a password: see config_db_label. */
	char database_url[1024];
	char run_dir[PATH_MAX]; /* sockets, pid files, logs */
	char asterisk_host[256];
	int asterisk_ami_port;
	char asterisk_ami_username[128];
	char asterisk_ami_secret[256];
	/* The relay's manager link (relay/amilink.c); AMI_HOST empty: none. */
	char ami_host[256];
	int ami_port;
	char ami_username[128];
	char ami_secret[256];
	char sip_domain[256];
	int sip_port;
	char cors_origins[2048]; /* comma list */
	char environment[64];
	char service_name[64];
	char public_host[256];
	char public_url[512]; /* "scheme://host[:port]", "" when not set */
	struct config_net trusted_proxies[CONFIG_PROXIES_MAX];
	size_t ntrusted_proxies;
	int register_per_addr_hour; /* REGISTER_PER_ADDR_HOUR, default 10 */
	bool debug;
	bool demo;                     /* SWITCHBOARD_DEMO=1 */
	bool ws_legacy_extension_auth; /* WS_LEGACY_EXTENSION_AUTH=true */
	int call_ring_timeout_s;       /* CALL_RING_TIMEOUT_S, default 60 */
	int call_attempts_per_min;     /* CALL_ATTEMPTS_PER_MIN, 20; 0: off */
	int notify_retention_s; /* NOTIFY_RETENTION_S, 86400: replays kept */
};

/* The default secret of voip-application, refused outside debug/demo. */
#define CONFIG_UPSTREAM_DEFAULT_SECRET "default-secret-change-this"

/*
 * Fill c from defaults, the .env file and the environment, in that order of
 * precedence (environment last). A JWT_SECRET that is unset or equals the
 * upstream default is refused (ERR_INVALID, field "JWT_SECRET") unless
 * DEBUG=true or demo mode, where a random secret is generated once into
 * RUN_DIR/jwt_secret (mode 0600) and reused. Malformed numbers are
 * ERR_INVALID naming the variable.
 */
int config_load(struct config *c, struct err *e);

/* The value of name from the environment, else the .env file, else NULL. */
/*
 * A setting outside struct config read as a whole number from min to max
 * (unset or empty: def): for the one program that uses it. ERR_INVALID
 * naming it otherwise.
 */
int config_int(const char *name, int def, long min, long max, int *dst,
    struct err *e);

const char *config_get(const char *name);

/* Whether origin appears in the comma list c->cors_origins. */
bool config_cors_allowed(const struct config *c, const char *origin);

/*
 * Whether addr (text, IPv4 or IPv6) is inside one of TRUSTED_PROXIES: only
 * such a peer's forwarded headers (X-Forwarded-For, -Proto, -Host) count.
 */
bool config_proxy_trusted(const struct config *c, const char *addr);

/*
 * What db_open is given: DATABASE_URL when set, else DB_PATH. The one
 * place that decides, for every program.
 */
const char *config_db_target(const struct config *c);

/*
 * config_db_target for messages and logs: a URL's password (in the user
 * part or a password= parameter) replaced by "xxx".
 */
void config_db_label(const struct config *c, char *buf, size_t size);

/* Wipe secrets from c. */
void config_wipe(struct config *c);

#endif
