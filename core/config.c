/*
 * config.c: reads the INI-like configuration file into struct enrolld_config.
 *
 *   # comment            ; comment
 *   [daemon]             sections: daemon, database, ca, acme, "listener NAME"
 *   workers = 4          key = value; keys are the struct field names
 *   state_dir = "/var/lib/enrolld"   values may be quoted ("..." with \" and
 *                                    \\ escapes, or '...' taken literally)
 *
 * In an unquoted value, '#' or ';' after whitespace starts a comment; quote a
 * value that must contain one (a conninfo password, say).
 *
 * Parsing is all-or-nothing: the file is read into a scratch copy that starts
 * from config_defaults(), and only a fully valid result replaces *cfg. That
 * is what SIGHUP relies on: a bad new file leaves the running config intact.
 * Every error names "file:line" and the key (or section) at fault.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acme_validate.h"
#include "log.h"

/* Largest config file we read; a real one is a few KiB. */
#define CONFIG_FILE_MAX (1024 * 1024)

enum config_section {
	CONFIG_SECTION_NONE,
	CONFIG_SECTION_DAEMON,
	CONFIG_SECTION_DATABASE,
	CONFIG_SECTION_CA,
	CONFIG_SECTION_ACME,
	CONFIG_SECTION_LISTENER,
};

/* Parser state for one pass over the text. */
struct config_parser {
	struct enrolld_config *cfg;	/* the scratch copy being filled */
	const char *name;		/* file name, for messages */
	int line;
	enum config_section section;
	struct listener_config *listener; /* current [listener NAME] */
	int listener_line;		/* where that section started */
	unsigned listener_seen;		/* listener keys set in this section */
	bool saw_listener;		/* a [listener] replaces the default one */
	int listener_lines[CONFIG_MAX_LISTENERS]; /* header line of each */
	unsigned long long seen;	/* global keys already set (bit per key) */
	int seen_line[64];		/* line each global key was set on */
	char *err;
	size_t errlen;
};

static int config_fail(struct config_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes "file:line: message" into the error buffer; returns -1. */
static int
config_fail(struct config_parser *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->err != NULL && p->errlen > 0)
		snprintf(p->err, p->errlen, "%s:%d: %s", p->name, p->line, msg);
	return -1;
}

static void
config_default_listener(struct listener_config *l, const char *name)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->address, sizeof(l->address), "127.0.0.1");
	l->port = 8443;
	l->tls = true;
	l->doors = DOOR_ALL;
}

int
config_default_workers(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	/* A worker holds one request at a time and spends part of it waiting
	 * on PostgreSQL: two per CPU keep the CPUs busy; more only add
	 * context switches (measured on 2 cores: ACME issuance with 4 workers
	 * about 8% faster and 10% cheaper in CPU than with 8, manual
	 * enrollment the same). */
	if (cpus < 2)
		cpus = 2;
	if (cpus > 32)
		cpus = 32;
	return (int)(2 * cpus);
}

void
config_defaults(struct enrolld_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/enrolld");
	snprintf(cfg->user, sizeof(cfg->user), "enrolld");
	cfg->workers = config_default_workers();
	cfg->queue_max = 1024;
	cfg->max_body = 1024 * 1024;
	snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
	snprintf(cfg->public_url, sizeof(cfg->public_url), "https://localhost:8443");
	snprintf(cfg->ca_key_type, sizeof(cfg->ca_key_type), "ec-p256");
	cfg->ca_root_days = 3650;
	cfg->ca_issuing_days = 1825;
	cfg->crl_days = 7;
	snprintf(cfg->tls_names, sizeof(cfg->tls_names), "localhost,127.0.0.1,::1");
	cfg->validation_http_port = 80;
	cfg->validation_tls_port = 443;
	cfg->validation_dns_resolver[0] = '\0';
	cfg->validation_allow_private = false;
	cfg->validation_timeout = 10;
	cfg->validation_workers = 2;
	cfg->retention_days = 30;
	cfg->retention_interval = 86400;
	config_default_listener(&cfg->listeners[0], "main");
	cfg->n_listeners = 1;
}

/* --- value parsers: each returns 0 or -1 with the message set ----------- */

static int
config_copy(struct config_parser *p, const char *key, char *dst, size_t cap,
    const char *value)
{
	size_t len = strlen(value);

	if (len >= cap)
		return config_fail(p, "key '%s': value too long (%zu bytes, at most %zu)",
		    key, len, cap - 1);
	memcpy(dst, value, len + 1);
	return 0;
}

static int
config_int(struct config_parser *p, const char *key, const char *value,
    long min, long max, int *out)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (value[0] == '\0' || *end != '\0' || errno != 0 ||
	    isspace((unsigned char)value[0]))
		return config_fail(p, "key '%s': '%s' is not an integer", key, value);
	if (v < min || v > max)
		return config_fail(p, "key '%s': %ld is out of range %ld..%ld",
		    key, v, min, max);
	*out = (int)v;
	return 0;
}

static int
config_bool(struct config_parser *p, const char *key, const char *value, bool *out)
{
	static const char *const yes[] = { "on", "true", "yes", "1" };
	static const char *const no[] = { "off", "false", "no", "0" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return config_fail(p, "key '%s': '%s' is not on/off, true/false or yes/no",
	    key, value);
}

/* Bytes, with an optional K/KiB or M/MiB suffix (powers of 1024). */
static int
config_size(struct config_parser *p, const char *key, const char *value,
    size_t min, size_t max, size_t *out)
{
	char *end = NULL;
	unsigned long long v, mult = 1;

	errno = 0;
	if (!isdigit((unsigned char)value[0]))
		return config_fail(p, "key '%s': '%s' is not a size (e.g. 1048576, 512K, 1M)",
		    key, value);
	v = strtoull(value, &end, 10);
	if (errno != 0)
		return config_fail(p, "key '%s': '%s' is out of range", key, value);
	while (*end == ' ' || *end == '\t')
		end++;
	if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kib") == 0 ||
	    strcasecmp(end, "kb") == 0)
		mult = 1024;
	else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mib") == 0 ||
	    strcasecmp(end, "mb") == 0)
		mult = 1024 * 1024;
	else if (*end != '\0')
		return config_fail(p, "key '%s': unknown size suffix '%s' (use K or M)",
		    key, end);
	if (v > max / mult || v * mult < min || v * mult > max)
		return config_fail(p, "key '%s': %s is out of range %zuK..%zuM",
		    key, value, min / 1024, max / (1024 * 1024));
	*out = (size_t)(v * mult);
	return 0;
}

static int
config_doors(struct config_parser *p, const char *key, const char *value,
    unsigned *out)
{
	static const struct { const char *name; unsigned bit; } names[] = {
		{ "admin", DOOR_ADMIN }, { "acme", DOOR_ACME }, { "scep", DOOR_SCEP },
		{ "est", DOOR_EST }, { "crl", DOOR_CRL }, { "all", DOOR_ALL },
	};
	char buf[256];
	char *save = NULL, *tok;
	unsigned doors = 0;
	size_t i;

	if (strlen(value) >= sizeof(buf))
		return config_fail(p, "key '%s': value too long", key);
	memcpy(buf, value, strlen(value) + 1);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		bool found = false;

		while (isspace((unsigned char)*tok))
			tok++;
		end = tok + strlen(tok);
		while (end > tok && isspace((unsigned char)end[-1]))
			*--end = '\0';
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (strcasecmp(tok, names[i].name) == 0) {
				doors |= names[i].bit;
				found = true;
				break;
			}
		}
		if (!found)
			return config_fail(p, "key '%s': unknown door '%s' "
			    "(use admin, acme, scep, est, crl or all)", key, tok);
	}
	if (doors == 0)
		return config_fail(p, "key '%s': no door given", key);
	*out = doors;
	return 0;
}

/* --- keys ---------------------------------------------------------------- */

/* Global keys, in one table: section, name, and a bit for "already set". */
enum config_key {
	KEY_STATE_DIR, KEY_USER, KEY_WORKERS, KEY_QUEUE_MAX, KEY_MAX_BODY,
	KEY_LOG_LEVEL, KEY_PUBLIC_URL,
	KEY_DATABASE_URL, KEY_PG_BINDIR,
	KEY_CA_KEY_TYPE, KEY_CA_ROOT_CERT, KEY_CA_ISSUING_CERT, KEY_CA_ISSUING_KEY,
	KEY_CA_ROOT_DAYS, KEY_CA_ISSUING_DAYS, KEY_CRL_DAYS, KEY_TLS_NAMES,
	KEY_VALIDATION_HTTP_PORT, KEY_VALIDATION_TLS_PORT, KEY_VALIDATION_DNS_RESOLVER,
	KEY_VALIDATION_ALLOW_PRIVATE, KEY_VALIDATION_TIMEOUT, KEY_VALIDATION_WORKERS,
	KEY_RETENTION_DAYS, KEY_RETENTION_INTERVAL,
	KEY__MAX,
};

static const struct {
	enum config_section section;
	const char *name;
} config_keys[KEY__MAX] = {
	[KEY_STATE_DIR] = { CONFIG_SECTION_DAEMON, "state_dir" },
	[KEY_USER] = { CONFIG_SECTION_DAEMON, "user" },
	[KEY_WORKERS] = { CONFIG_SECTION_DAEMON, "workers" },
	[KEY_QUEUE_MAX] = { CONFIG_SECTION_DAEMON, "queue_max" },
	[KEY_MAX_BODY] = { CONFIG_SECTION_DAEMON, "max_body" },
	[KEY_LOG_LEVEL] = { CONFIG_SECTION_DAEMON, "log_level" },
	[KEY_PUBLIC_URL] = { CONFIG_SECTION_DAEMON, "public_url" },
	[KEY_DATABASE_URL] = { CONFIG_SECTION_DATABASE, "database_url" },
	[KEY_PG_BINDIR] = { CONFIG_SECTION_DATABASE, "pg_bindir" },
	[KEY_CA_KEY_TYPE] = { CONFIG_SECTION_CA, "ca_key_type" },
	[KEY_CA_ROOT_CERT] = { CONFIG_SECTION_CA, "ca_root_cert" },
	[KEY_CA_ISSUING_CERT] = { CONFIG_SECTION_CA, "ca_issuing_cert" },
	[KEY_CA_ISSUING_KEY] = { CONFIG_SECTION_CA, "ca_issuing_key" },
	[KEY_CA_ROOT_DAYS] = { CONFIG_SECTION_CA, "ca_root_days" },
	[KEY_CA_ISSUING_DAYS] = { CONFIG_SECTION_CA, "ca_issuing_days" },
	[KEY_CRL_DAYS] = { CONFIG_SECTION_CA, "crl_days" },
	[KEY_TLS_NAMES] = { CONFIG_SECTION_CA, "tls_names" },
	[KEY_VALIDATION_HTTP_PORT] = { CONFIG_SECTION_ACME, "validation_http_port" },
	[KEY_VALIDATION_TLS_PORT] = { CONFIG_SECTION_ACME, "validation_tls_port" },
	[KEY_VALIDATION_DNS_RESOLVER] = { CONFIG_SECTION_ACME, "validation_dns_resolver" },
	[KEY_VALIDATION_ALLOW_PRIVATE] = { CONFIG_SECTION_ACME, "validation_allow_private" },
	[KEY_VALIDATION_TIMEOUT] = { CONFIG_SECTION_ACME, "validation_timeout" },
	[KEY_VALIDATION_WORKERS] = { CONFIG_SECTION_ACME, "validation_workers" },
	[KEY_RETENTION_DAYS] = { CONFIG_SECTION_ACME, "retention_days" },
	[KEY_RETENTION_INTERVAL] = { CONFIG_SECTION_ACME, "retention_interval" },
};

static const char *
config_section_name(enum config_section s)
{
	switch (s) {
	case CONFIG_SECTION_DAEMON: return "daemon";
	case CONFIG_SECTION_DATABASE: return "database";
	case CONFIG_SECTION_CA: return "ca";
	case CONFIG_SECTION_ACME: return "acme";
	case CONFIG_SECTION_LISTENER: return "listener";
	default: return "(none)";
	}
}

static int
config_set_global(struct config_parser *p, enum config_key k, const char *key,
    const char *value)
{
	struct enrolld_config *cfg = p->cfg;
	enum log_level level;

	switch (k) {
	case KEY_STATE_DIR:
		if (value[0] != '/')
			return config_fail(p, "key '%s': must be an absolute path", key);
		return config_copy(p, key, cfg->state_dir, sizeof(cfg->state_dir), value);
	case KEY_USER: {
		const char *c;

		if (value[0] == '\0')
			return config_fail(p, "key '%s': must not be empty", key);
		for (c = value; *c != '\0'; c++) {
			if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.')
				return config_fail(p, "key '%s': '%s' is not a user name", key, value);
		}
		return config_copy(p, key, cfg->user, sizeof(cfg->user), value);
	}
	case KEY_WORKERS:
		return config_int(p, key, value, 1, 256, &cfg->workers);
	case KEY_QUEUE_MAX:
		return config_int(p, key, value, 1, 100000, &cfg->queue_max);
	case KEY_MAX_BODY:
		return config_size(p, key, value, 1024, 64 * 1024 * 1024, &cfg->max_body);
	case KEY_LOG_LEVEL:
		if (log_level_parse(value, &level) != 0)
			return config_fail(p, "key '%s': '%s' is not debug, info, warn or error",
			    key, value);
		return config_copy(p, key, cfg->log_level, sizeof(cfg->log_level), value);
	case KEY_PUBLIC_URL: {
		size_t len, scheme_len;

		if (strncasecmp(value, "https://", 8) != 0 &&
		    strncasecmp(value, "http://", 7) != 0)
			return config_fail(p, "key '%s': '%s' must start with https:// or http://",
			    key, value);
		if (config_copy(p, key, cfg->public_url, sizeof(cfg->public_url), value) != 0)
			return -1;
		/* No trailing '/': doors append "/crl/...", "/acme/...". */
		len = strlen(cfg->public_url);
		while (len > 0 && cfg->public_url[len - 1] == '/')
			cfg->public_url[--len] = '\0';
		scheme_len = strncasecmp(value, "https://", 8) == 0 ? 8 : 7;
		if (len <= scheme_len || strpbrk(cfg->public_url, " \t\"<>") != NULL)
			return config_fail(p, "key '%s': '%s' is not a usable URL", key, value);
		return 0;
	}
	case KEY_DATABASE_URL:
		return config_copy(p, key, cfg->database_url, sizeof(cfg->database_url), value);
	case KEY_PG_BINDIR:
		return config_copy(p, key, cfg->pg_bindir, sizeof(cfg->pg_bindir), value);
	case KEY_CA_KEY_TYPE: {
		static const char *const types[] = {
			"ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096",
		};
		size_t i;

		for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
			if (strcmp(value, types[i]) == 0)
				return config_copy(p, key, cfg->ca_key_type,
				    sizeof(cfg->ca_key_type), value);
		}
		return config_fail(p, "key '%s': '%s' is not one of ec-p256, ec-p384, "
		    "rsa-2048, rsa-3072, rsa-4096", key, value);
	}
	case KEY_CA_ROOT_CERT:
		return config_copy(p, key, cfg->ca_root_cert, sizeof(cfg->ca_root_cert), value);
	case KEY_CA_ISSUING_CERT:
		return config_copy(p, key, cfg->ca_issuing_cert, sizeof(cfg->ca_issuing_cert), value);
	case KEY_CA_ISSUING_KEY:
		return config_copy(p, key, cfg->ca_issuing_key, sizeof(cfg->ca_issuing_key), value);
	/* Upper bounds keep notAfter arithmetic far from overflow (100 years). */
	case KEY_CA_ROOT_DAYS:
		return config_int(p, key, value, 1, 36500, &cfg->ca_root_days);
	case KEY_CA_ISSUING_DAYS:
		return config_int(p, key, value, 1, 36500, &cfg->ca_issuing_days);
	case KEY_CRL_DAYS:
		return config_int(p, key, value, 1, 3650, &cfg->crl_days);
	case KEY_TLS_NAMES:
		if (value[0] == '\0')
			return config_fail(p, "key '%s': must name at least one host or address", key);
		return config_copy(p, key, cfg->tls_names, sizeof(cfg->tls_names), value);
	case KEY_VALIDATION_HTTP_PORT:
		return config_int(p, key, value, 1, 65535, &cfg->validation_http_port);
	case KEY_VALIDATION_TLS_PORT:
		return config_int(p, key, value, 1, 65535, &cfg->validation_tls_port);
	case KEY_VALIDATION_DNS_RESOLVER: {
		struct sockaddr_storage ss;
		socklen_t ss_len;

		/* Empty: the system resolver. Otherwise an address literal, so
		 * that finding the resolver needs no resolver. */
		if (value[0] != '\0' &&
		    acme_validate_parse_resolver(value, &ss, &ss_len) != 0)
			return config_fail(p, "key '%s': '%s' is not an address with an optional "
			    "port (e.g. 127.0.0.1:8053 or [::1]:53)", key, value);
		return config_copy(p, key, cfg->validation_dns_resolver,
		    sizeof(cfg->validation_dns_resolver), value);
	}
	case KEY_VALIDATION_ALLOW_PRIVATE:
		return config_bool(p, key, value, &cfg->validation_allow_private);
	case KEY_VALIDATION_TIMEOUT:
		return config_int(p, key, value, 1, 300, &cfg->validation_timeout);
	case KEY_VALIDATION_WORKERS:
		return config_int(p, key, value, 1, 64, &cfg->validation_workers);
	/* 0 keeps ACME objects forever; at most ten years. */
	case KEY_RETENTION_DAYS:
		return config_int(p, key, value, 0, 3650, &cfg->retention_days);
	/* At most a week between passes; 1 s is for tests. */
	case KEY_RETENTION_INTERVAL:
		return config_int(p, key, value, 1, 7 * 86400, &cfg->retention_interval);
	case KEY__MAX:
		break;
	}
	return config_fail(p, "key '%s': internal error", key);
}

enum listener_key {
	LKEY_ADDRESS, LKEY_PORT, LKEY_TLS, LKEY_CERTIFICATE, LKEY_PRIVATE_KEY, LKEY_DOORS,
	LKEY__MAX,
};

static const char *const listener_keys[LKEY__MAX] = {
	[LKEY_ADDRESS] = "address",
	[LKEY_PORT] = "port",
	[LKEY_TLS] = "tls",
	[LKEY_CERTIFICATE] = "certificate",
	[LKEY_PRIVATE_KEY] = "private_key",
	[LKEY_DOORS] = "doors",
};

static int
config_set_listener(struct config_parser *p, enum listener_key k, const char *key,
    const char *value)
{
	struct listener_config *l = p->listener;

	switch (k) {
	case LKEY_ADDRESS: {
		unsigned char addr[16];

		if (inet_pton(AF_INET, value, addr) != 1 && inet_pton(AF_INET6, value, addr) != 1)
			return config_fail(p, "key '%s': '%s' is not an IPv4 or IPv6 address",
			    key, value);
		return config_copy(p, key, l->address, sizeof(l->address), value);
	}
	case LKEY_PORT:
		return config_int(p, key, value, 1, 65535, &l->port);
	case LKEY_TLS:
		return config_bool(p, key, value, &l->tls);
	case LKEY_CERTIFICATE:
		return config_copy(p, key, l->cert_file, sizeof(l->cert_file), value);
	case LKEY_PRIVATE_KEY:
		return config_copy(p, key, l->key_file, sizeof(l->key_file), value);
	case LKEY_DOORS:
		return config_doors(p, key, value, &l->doors);
	case LKEY__MAX:
		break;
	}
	return config_fail(p, "key '%s': internal error", key);
}

/* Checks a finished [listener] section; p->line is moved to its header. */
static int
config_listener_done(struct config_parser *p)
{
	struct listener_config *l = p->listener;
	int line = p->line, rc = 0;

	if (l == NULL)
		return 0;
	p->line = p->listener_line;
	if ((l->cert_file[0] == '\0') != (l->key_file[0] == '\0'))
		rc = config_fail(p, "listener '%s': key '%s': 'certificate' and "
		    "'private_key' must be given together", l->name,
		    l->cert_file[0] == '\0' ? "certificate" : "private_key");
	else if (!l->tls && l->cert_file[0] != '\0')
		rc = config_fail(p, "listener '%s': key 'certificate': given but tls is off",
		    l->name);
	p->line = line;
	p->listener = NULL;
	return rc;
}

/* "[daemon]", "[listener NAME]"; `s` is the text between the brackets. */
static int
config_section_open(struct config_parser *p, char *s)
{
	char *name, *end;
	int i;

	if (config_listener_done(p) != 0)
		return -1;
	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';

	if (strcmp(s, "daemon") == 0) {
		p->section = CONFIG_SECTION_DAEMON;
		return 0;
	}
	if (strcmp(s, "database") == 0) {
		p->section = CONFIG_SECTION_DATABASE;
		return 0;
	}
	if (strcmp(s, "ca") == 0) {
		p->section = CONFIG_SECTION_CA;
		return 0;
	}
	if (strcmp(s, "acme") == 0) {
		p->section = CONFIG_SECTION_ACME;
		return 0;
	}
	if (strncmp(s, "listener", 8) != 0 ||
	    (s[8] != '\0' && !isspace((unsigned char)s[8])))
		return config_fail(p, "unknown section [%s] (use daemon, database, ca, "
		    "acme or \"listener NAME\")", s);

	name = s + 8;
	while (isspace((unsigned char)*name))
		name++;
	if (name[0] == '"' && strlen(name) >= 2 && name[strlen(name) - 1] == '"') {
		name[strlen(name) - 1] = '\0';
		name++;
	}
	if (name[0] == '\0')
		return config_fail(p, "section [listener]: needs a name, e.g. [listener main]");
	if (strlen(name) >= sizeof(p->cfg->listeners[0].name))
		return config_fail(p, "section [listener %s]: name too long", name);
	for (end = name; *end != '\0'; end++) {
		if (!isalnum((unsigned char)*end) && *end != '_' && *end != '-' && *end != '.')
			return config_fail(p, "section [listener %s]: name may hold only "
			    "letters, digits, '_', '-' and '.'", name);
	}

	/* The first [listener] replaces the built-in default listener. */
	if (!p->saw_listener) {
		p->cfg->n_listeners = 0;
		p->saw_listener = true;
	}
	for (i = 0; i < p->cfg->n_listeners; i++) {
		if (strcmp(p->cfg->listeners[i].name, name) == 0)
			return config_fail(p, "section [listener %s]: defined twice", name);
	}
	if (p->cfg->n_listeners >= CONFIG_MAX_LISTENERS)
		return config_fail(p, "section [listener %s]: at most %d listeners",
		    name, CONFIG_MAX_LISTENERS);
	p->listener = &p->cfg->listeners[p->cfg->n_listeners++];
	config_default_listener(p->listener, name);
	p->section = CONFIG_SECTION_LISTENER;
	p->listener_line = p->line;
	p->listener_lines[p->cfg->n_listeners - 1] = p->line;
	p->listener_seen = 0;
	return 0;
}

/*
 * Splits the value part of "key = value" in place: strips blanks, removes
 * quotes (handling \" and \\ in "..."), drops a trailing comment. Returns the
 * value, or NULL with the error set.
 */
static char *
config_value(struct config_parser *p, const char *key, char *v)
{
	char *end, *r, *w;

	while (*v == ' ' || *v == '\t')
		v++;
	if (*v == '"' || *v == '\'') {
		char quote = *v;

		r = w = v + 1;
		for (;;) {
			if (*r == '\0')
				return config_fail(p, "key '%s': unterminated quoted value", key),
				    NULL;
			if (*r == quote) {
				r++;
				break;
			}
			if (quote == '"' && *r == '\\' && (r[1] == '"' || r[1] == '\\'))
				r++;
			*w++ = *r++;
		}
		*w = '\0';
		/* Only blanks or a comment may follow the closing quote. */
		while (*r == ' ' || *r == '\t')
			r++;
		if (*r != '\0' && *r != '#' && *r != ';')
			return config_fail(p, "key '%s': text after the closing quote", key),
			    NULL;
		return v + 1;
	}
	/* Unquoted: a '#' or ';' after a blank starts a comment. */
	for (r = v; *r != '\0'; r++) {
		if ((*r == '#' || *r == ';') && (r == v || r[-1] == ' ' || r[-1] == '\t')) {
			*r = '\0';
			break;
		}
	}
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return v;
}

static int
config_line(struct config_parser *p, char *s)
{
	char *eq, *key, *kend, *value;
	size_t len;
	int k;

	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	if (s[0] == '\0' || s[0] == '#' || s[0] == ';')
		return 0;

	if (s[0] == '[') {
		char *close = strchr(s, ']');
		char *after;

		if (close == NULL)
			return config_fail(p, "section header without ']'");
		after = close + 1;
		while (isspace((unsigned char)*after))
			after++;
		if (*after != '\0' && *after != '#' && *after != ';')
			return config_fail(p, "text after the section header");
		*close = '\0';
		return config_section_open(p, s + 1);
	}

	eq = strchr(s, '=');
	if (eq == NULL)
		return config_fail(p, "expected 'key = value', '[section]' or a comment");
	*eq = '\0';
	key = s;
	kend = eq;
	while (kend > key && isspace((unsigned char)kend[-1]))
		*--kend = '\0';
	if (key[0] == '\0')
		return config_fail(p, "missing key before '='");

	if (p->section == CONFIG_SECTION_NONE)
		return config_fail(p, "key '%s' outside any section (start with [daemon], "
		    "[database], [ca], [acme] or [listener NAME])", key);

	value = config_value(p, key, eq + 1);
	if (value == NULL)
		return -1;

	if (p->section == CONFIG_SECTION_LISTENER) {
		for (k = 0; k < LKEY__MAX; k++) {
			if (strcmp(key, listener_keys[k]) == 0)
				break;
		}
		if (k == LKEY__MAX)
			return config_fail(p, "key '%s': unknown in [listener %s] (known: address, "
			    "port, tls, certificate, private_key, doors)", key, p->listener->name);
		if (p->listener_seen & (1u << k))
			return config_fail(p, "key '%s': set twice in [listener %s]",
			    key, p->listener->name);
		p->listener_seen |= 1u << k;
		return config_set_listener(p, (enum listener_key)k, key, value);
	}

	for (k = 0; k < KEY__MAX; k++) {
		if (config_keys[k].section == p->section && strcmp(key, config_keys[k].name) == 0)
			break;
	}
	if (k == KEY__MAX) {
		/* Say where the key belongs if it is merely in the wrong section. */
		for (k = 0; k < KEY__MAX; k++) {
			if (strcmp(key, config_keys[k].name) == 0)
				return config_fail(p, "key '%s': belongs in [%s], not [%s]", key,
				    config_section_name(config_keys[k].section),
				    config_section_name(p->section));
		}
		return config_fail(p, "key '%s': unknown in [%s]", key,
		    config_section_name(p->section));
	}
	if (p->seen & (1ull << k))
		return config_fail(p, "key '%s': already set on line %d", key, p->seen_line[k]);
	p->seen |= 1ull << k;
	p->seen_line[k] = p->line;
	return config_set_global(p, (enum config_key)k, key, value);
}

/* Checks that need the whole file (pairs of keys, listener clashes). */
static int
config_finish(struct config_parser *p)
{
	struct enrolld_config *cfg = p->cfg;
	int i, j;

	if (config_listener_done(p) != 0)
		return -1;
	if ((cfg->ca_issuing_cert[0] == '\0') != (cfg->ca_issuing_key[0] == '\0')) {
		enum config_key given = cfg->ca_issuing_cert[0] != '\0' ?
		    KEY_CA_ISSUING_CERT : KEY_CA_ISSUING_KEY;

		p->line = p->seen_line[given];
		return config_fail(p, "key '%s': ca_issuing_cert and ca_issuing_key must be "
		    "given together", config_keys[given].name);
	}
	if (cfg->ca_root_cert[0] != '\0' && cfg->ca_issuing_cert[0] == '\0') {
		p->line = p->seen_line[KEY_CA_ROOT_CERT];
		return config_fail(p, "key 'ca_root_cert': needs ca_issuing_cert and "
		    "ca_issuing_key as well");
	}
	for (i = 0; i < cfg->n_listeners; i++) {
		for (j = i + 1; j < cfg->n_listeners; j++) {
			if (cfg->listeners[i].port == cfg->listeners[j].port &&
			    strcmp(cfg->listeners[i].address, cfg->listeners[j].address) == 0) {
				p->line = p->listener_lines[j];
				return config_fail(p, "key 'port': listeners '%s' and '%s' both "
				    "use %s port %d", cfg->listeners[i].name, cfg->listeners[j].name,
				    cfg->listeners[i].address, cfg->listeners[i].port);
			}
		}
	}
	return 0;
}

int
config_parse(struct enrolld_config *cfg, const char *name, const char *text,
    char *err, size_t errlen)
{
	struct enrolld_config *scratch = NULL;
	struct config_parser p;
	const char *s, *nl;
	char *line = NULL;
	int rc = -1;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(&p, 0, sizeof(p));
	p.name = name != NULL ? name : "(config)";
	p.err = err;
	p.errlen = errlen;

	/* The struct is large (PATH_MAX fields); keep it off the stack. */
	scratch = malloc(sizeof(*scratch));
	line = malloc(strlen(text) + 1);
	if (scratch == NULL || line == NULL) {
		config_fail(&p, "out of memory");
		goto out;
	}
	config_defaults(scratch);
	p.cfg = scratch;

	for (s = text; *s != '\0'; s = nl != NULL ? nl + 1 : s + strlen(s)) {
		size_t len;

		p.line++;
		nl = strchr(s, '\n');
		len = nl != NULL ? (size_t)(nl - s) : strlen(s);
		memcpy(line, s, len);
		line[len] = '\0';
		if (config_line(&p, line) != 0)
			goto out;
	}
	if (config_finish(&p) != 0)
		goto out;

	snprintf(scratch->path, sizeof(scratch->path), "%s", name != NULL ? name : "");
	memcpy(cfg, scratch, sizeof(*cfg));
	rc = 0;
out:
	free(line);
	free(scratch);
	return rc;
}

int
config_load(struct enrolld_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = NULL;
	char *text = NULL;
	size_t n = 0;
	struct stat st;
	int rc = -1;

	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fileno(f), &st) != 0) {
		snprintf(err, errlen, "%s: fstat: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	n = fread(text, 1, (size_t)st.st_size, f);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto out;
	}
	text[n] = '\0';
	if (memchr(text, '\0', n) != NULL) {
		snprintf(err, errlen, "%s: contains a NUL byte", path);
		goto out;
	}
	rc = config_parse(cfg, path, text, err, errlen);
out:
	if (f != NULL)
		fclose(f);
	free(text);
	return rc;
}
