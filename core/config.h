/*
 * config.h: the configuration, parsed once at start and again on SIGHUP.
 *
 * File format (config/enrolld.conf.example documents every key):
 *
 *   # comment
 *   [daemon]
 *   state_dir = /var/lib/enrolld
 *   [listener main]
 *   address = 127.0.0.1
 *   port = 8443
 *
 * Every key has a safe default; config_defaults() sets them all. Unknown
 * sections or keys, and bad values, are errors that name file and line.
 */
#ifndef ENROLLD_CONFIG_H
#define ENROLLD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define CONFIG_MAX_LISTENERS 8

/* Doors a listener serves (bit mask). */
enum door {
	DOOR_ADMIN = 1 << 0, /* /api/v1/ */
	DOOR_ACME = 1 << 1,  /* /acme/ */
	DOOR_SCEP = 1 << 2,  /* /scep/ */
	DOOR_EST = 1 << 3,   /* /.well-known/est/ */
	DOOR_CRL = 1 << 4,   /* /crl/ */
	DOOR_ALL = 0x1f,
};

struct listener_config {
	char name[32];
	char address[64];  /* "127.0.0.1", "::1", "0.0.0.0" */
	int port;
	bool tls;
	char cert_file[PATH_MAX]; /* empty: the bootstrapped TLS certificate */
	char key_file[PATH_MAX];
	unsigned doors;	   /* enum door bits; default DOOR_ALL */
};

struct enrolld_config {
	char path[PATH_MAX];	   /* file it was read from, "" for built-in */

	/* [daemon] */
	char state_dir[PATH_MAX];  /* default /var/lib/enrolld */
	char user[64];		   /* drop to this user when started as root; default "enrolld" */
	int workers;		   /* worker threads, each with its own db connection;
				      default config_default_workers() */
	int queue_max;		   /* pending requests before 503; default 1024 */
	size_t max_body;	   /* bytes; default 1 MiB */
	char log_level[16];	   /* debug, info, warn, error; default info */
	char public_url[256];	   /* base URL clients use, for CRL DP and ACME URLs;
				      default https://localhost:8443 */

	/* [database] */
	char database_url[1024];   /* libpq conninfo/URL; empty: embedded PostgreSQL */
	char pg_bindir[PATH_MAX];  /* embedded: where initdb/postgres live; default: found */

	/* [ca] */
	char ca_key_type[16];	   /* ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096 */
	char ca_root_cert[PATH_MAX];	/* empty: bootstrap in state_dir/ca/ */
	char ca_issuing_cert[PATH_MAX];
	char ca_issuing_key[PATH_MAX];
	int ca_root_days;	   /* default 3650 */
	int ca_issuing_days;	   /* default 1825 */
	int crl_days;		   /* nextUpdate - thisUpdate; default 7 */
	char tls_names[512];	   /* names/addresses in the bootstrapped TLS certificate;
				      default "localhost,127.0.0.1,::1" */

	/* [acme]: challenge validation (core/acme_validate.h). The defaults are
	 * what production wants; tests point the ports and the resolver at
	 * loopback and allow private addresses. */
	int validation_http_port;	/* http-01 port; default 80 */
	int validation_tls_port;	/* tls-alpn-01 port; default 443 */
	char validation_dns_resolver[128]; /* "" = the system resolver; else
					      "a.b.c.d[:port]" or "[v6][:port]" */
	bool validation_allow_private;	/* contact loopback/private addresses;
					   default off */
	int validation_timeout;		/* seconds per check; default 10 */
	int validation_workers;		/* validator threads; default 2 */
	/* Retention of ACME orders, authorizations and challenges
	 * (daemon/retention.h): days kept past the order's expiry, or past its
	 * certificate's notAfter; 0 keeps them forever. Default 30. */
	int retention_days;
	int retention_interval;		/* seconds between prune passes; default 86400 */

	/* [listener NAME] sections; when none is given, one listener "main" on
	 * 127.0.0.1:8443, TLS, all doors. */
	struct listener_config listeners[CONFIG_MAX_LISTENERS];
	int n_listeners;
};

/* The default number of request workers: two per online CPU, 4 to 64. */
int config_default_workers(void);
void config_defaults(struct enrolld_config *cfg);
/* Reads `path` over the defaults. Returns 0, or -1 with a message naming file
 * and line in err. */
int config_load(struct enrolld_config *cfg, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Parses config text (for tests); `name` is used in messages. */
int config_parse(struct enrolld_config *cfg, const char *name, const char *text,
    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
