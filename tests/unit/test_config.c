/*
 * test_config.c: table-driven tests of core/config.c.
 *
 * Each case is a config text and either a list of expected field values
 * ("workers=8", "l0.port=9443", "l0.doors=0x3", "n_listeners=2") or the
 * substring the error message must contain. A failing parse must also leave
 * the caller's struct untouched (SIGHUP keeps the old config on a bad file).
 * Prints "N passed, N failed" and exits non-zero on any failure.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define MAX_EXPECT 16

struct config_case {
	const char *name;
	const char *text;
	const char *error;		 /* substring expected in the error; NULL = success */
	const char *expect[MAX_EXPECT];	 /* "field=value", NULL-terminated */
};

static const struct config_case cases[] = {
	{ "empty text gives every default", "", NULL, {
		"state_dir=/var/lib/enrolld", "user=enrolld", "workers=@auto", "queue_max=1024",
		"max_body=1048576", "log_level=info", "public_url=https://localhost:8443",
		"database_url=", "ca_key_type=ec-p256", "ca_root_days=3650",
		"ca_issuing_days=1825", "crl_days=7", "tls_names=localhost,127.0.0.1,::1",
		"n_listeners=1", "l0=main 127.0.0.1 8443 tls 0x1f", NULL } },
	{ "acme validation defaults", "", NULL, {
		"validation_http_port=80", "validation_tls_port=443", "validation_dns_resolver=",
		"validation_allow_private=0", "validation_timeout=10", "validation_workers=2",
		NULL } },
	{ "acme validation keys", "[acme]\nvalidation_http_port = 5002\n"
		"validation_tls_port=5001\nvalidation_dns_resolver = 127.0.0.1:8053\n"
		"validation_allow_private = on\nvalidation_timeout = 3\nvalidation_workers = 4\n",
		NULL, { "validation_http_port=5002", "validation_tls_port=5001",
		  "validation_dns_resolver=127.0.0.1:8053", "validation_allow_private=1",
		  "validation_timeout=3", "validation_workers=4", NULL } },
	{ "acme retention defaults", "", NULL, {
		"retention_days=30", "retention_interval=86400", NULL } },
	{ "acme retention keys", "[acme]\nretention_days = 90\nretention_interval = 3600\n", NULL,
		{ "retention_days=90", "retention_interval=3600", NULL } },
	{ "acme retention zero keeps forever", "[acme]\nretention_days = 0\n", NULL,
		{ "retention_days=0", NULL } },
	{ "acme retention negative", "[acme]\nretention_days = -1\n",
		"key 'retention_days': -1 is out of range 0..3650", { NULL } },
	{ "acme retention too long", "[acme]\nretention_days = 3651\n", "key 'retention_days'",
		{ NULL } },
	{ "acme retention interval zero", "[acme]\nretention_interval = 0\n",
		"key 'retention_interval': 0 is out of range 1..604800", { NULL } },
	{ "acme retention interval not a number", "[acme]\nretention_interval = hourly\n",
		"key 'retention_interval'", { NULL } },
	{ "acme retention in wrong section", "[daemon]\nretention_days = 3\n",
		"key 'retention_days': belongs in [acme]", { NULL } },
	{ "acme resolver without port", "[acme]\nvalidation_dns_resolver = 10.0.0.53\n", NULL,
		{ "validation_dns_resolver=10.0.0.53", NULL } },
	{ "acme resolver IPv6 with port", "[acme]\nvalidation_dns_resolver = \"[::1]:8053\"\n",
		NULL, { "validation_dns_resolver=[::1]:8053", NULL } },
	{ "acme resolver empty is the system one", "[acme]\nvalidation_dns_resolver = \"\"\n",
		NULL, { "validation_dns_resolver=", NULL } },
	{ "acme resolver host name refused", "[acme]\nvalidation_dns_resolver = dns.example:53\n",
		"test.conf:2: key 'validation_dns_resolver'", { NULL } },
	{ "acme resolver bad port", "[acme]\nvalidation_dns_resolver = 127.0.0.1:0\n",
		"key 'validation_dns_resolver'", { NULL } },
	{ "acme resolver IPv6 without brackets", "[acme]\nvalidation_dns_resolver = ::1\n",
		"key 'validation_dns_resolver'", { NULL } },
	{ "acme port zero", "[acme]\nvalidation_http_port = 0\n",
		"key 'validation_http_port': 0 is out of range 1..65535", { NULL } },
	{ "acme tls port too big", "[acme]\nvalidation_tls_port = 70000\n",
		"key 'validation_tls_port'", { NULL } },
	{ "acme timeout zero", "[acme]\nvalidation_timeout = 0\n", "key 'validation_timeout'",
		{ NULL } },
	{ "acme timeout too long", "[acme]\nvalidation_timeout = 301\n", "1..300", { NULL } },
	{ "acme workers zero", "[acme]\nvalidation_workers = 0\n", "key 'validation_workers'",
		{ NULL } },
	{ "acme allow_private not a bool", "[acme]\nvalidation_allow_private = sometimes\n",
		"key 'validation_allow_private'", { NULL } },
	{ "acme key in wrong section", "[daemon]\nvalidation_timeout = 3\n",
		"key 'validation_timeout': belongs in [acme]", { NULL } },
	{ "unknown acme key", "[acme]\nvalidation_proxy = x\n",
		"key 'validation_proxy': unknown in [acme]", { NULL } },
	{ "acme key twice", "[acme]\nvalidation_workers = 2\nvalidation_workers = 3\n",
		"test.conf:3: key 'validation_workers': already set on line 2", { NULL } },
	{ "comments and blank lines", "# a comment\n; another\n\n   \n[daemon]\n  # indented\n", NULL,
		{ "workers=@auto", NULL } },
	{ "daemon keys", "[daemon]\nstate_dir = /srv/e\nuser = ra\nworkers = 12\nqueue_max=5\n"
		"max_body = 2M\nlog_level = debug\npublic_url = https://ra.example:9443/\n", NULL,
		{ "state_dir=/srv/e", "user=ra", "workers=12", "queue_max=5",
		  "max_body=2097152", "log_level=debug", "public_url=https://ra.example:9443", NULL } },
	{ "max_body K suffix", "[daemon]\nmax_body = 64K\n", NULL, { "max_body=65536", NULL } },
	{ "max_body KiB suffix", "[daemon]\nmax_body = 4 KiB\n", NULL, { "max_body=4096", NULL } },
	{ "max_body plain bytes", "[daemon]\nmax_body = 1024\n", NULL, { "max_body=1024", NULL } },
	{ "max_body 64M is the ceiling", "[daemon]\nmax_body = 64M\n", NULL,
		{ "max_body=67108864", NULL } },
	{ "max_body too small", "[daemon]\nmax_body = 1023\n", "max_body", { NULL } },
	{ "max_body too large", "[daemon]\nmax_body = 65M\n", "out of range", { NULL } },
	{ "max_body bad suffix", "[daemon]\nmax_body = 3G\n", "suffix", { NULL } },
	{ "max_body huge overflow", "[daemon]\nmax_body = 99999999999999999999M\n", "max_body",
		{ NULL } },
	{ "quoted values", "[daemon]\nstate_dir = \"/srv/with space\"\nuser = 'ra'\n"
		"[database]\ndatabase_url = \"host=/tmp password='a#b;c' x=\\\"q\\\\\\\"\" # c\n", NULL,
		{ "state_dir=/srv/with space", "user=ra",
		  "database_url=host=/tmp password='a#b;c' x=\"q\\\"", NULL } },
	{ "trailing comment on unquoted value", "[daemon]\nworkers = 3   # three\n", NULL,
		{ "workers=3", NULL } },
	{ "hash inside unquoted value kept", "[database]\ndatabase_url = host=x#y\n", NULL,
		{ "database_url=host=x#y", NULL } },
	{ "CRLF line ends", "[daemon]\r\nworkers = 2\r\n", NULL, { "workers=2", NULL } },
	{ "database and ca", "[database]\ndatabase_url = postgresql:///enrolld\npg_bindir = /opt/pg/bin\n"
		"[ca]\nca_key_type = rsa-3072\nca_root_days = 100\nca_issuing_days = 50\n"
		"crl_days = 2\ntls_names = ra.example,10.0.0.1\n", NULL,
		{ "database_url=postgresql:///enrolld", "pg_bindir=/opt/pg/bin",
		  "ca_key_type=rsa-3072", "ca_root_days=100", "ca_issuing_days=50", "crl_days=2",
		  "tls_names=ra.example,10.0.0.1", NULL } },
	{ "configured CA files", "[ca]\nca_root_cert=/r.pem\nca_issuing_cert=/i.pem\n"
		"ca_issuing_key=/i.key\n", NULL,
		{ "ca_root_cert=/r.pem", "ca_issuing_cert=/i.pem", "ca_issuing_key=/i.key", NULL } },
	{ "issuing cert without key", "[ca]\n\nca_issuing_cert=/i.pem\n", ":3: key 'ca_issuing_cert'",
		{ NULL } },
	{ "root without issuing", "[ca]\nca_root_cert=/r.pem\n", "ca_root_cert", { NULL } },
	{ "listener replaces default", "[listener admin]\naddress = ::1\nport = 9443\ntls = off\n"
		"doors = admin, crl\n", NULL,
		{ "n_listeners=1", "l0=admin ::1 9443 plain 0x11", NULL } },
	{ "two listeners with files", "[listener a]\nport=1\n[listener b]\nport = 65535\n"
		"certificate = /etc/c.pem\nprivate_key = \"/etc/k.pem\"\ndoors = all\ntls = yes\n", NULL,
		{ "n_listeners=2", "l0=a 127.0.0.1 1 tls 0x1f", "l1=b 127.0.0.1 65535 tls 0x1f",
		  "l1.certificate=/etc/c.pem", "l1.private_key=/etc/k.pem", NULL } },
	{ "tls spellings", "[listener a]\ntls=FALSE\n[listener b]\nport=2\ntls=no\n"
		"[listener c]\nport=3\ntls=true\n", NULL,
		{ "l0=a 127.0.0.1 8443 plain 0x1f", "l1=b 127.0.0.1 2 plain 0x1f",
		  "l2=c 127.0.0.1 3 tls 0x1f", NULL } },
	{ "doors each", "[listener a]\ndoors=acme,scep,est\n", NULL,
		{ "l0=a 127.0.0.1 8443 tls 0xe", NULL } },
	/* errors: each names file:line and the key */
	{ "port zero", "[listener a]\nport = 0\n", "test.conf:2: key 'port': 0 is out of range 1..65535",
		{ NULL } },
	{ "port too big", "[listener a]\nport = 65536\n", "key 'port'", { NULL } },
	{ "port not a number", "[listener a]\nport = 84x\n", "key 'port': '84x' is not an integer",
		{ NULL } },
	{ "workers zero", "[daemon]\nworkers = 0\n", "test.conf:2: key 'workers'", { NULL } },
	{ "workers 257", "[daemon]\nworkers = 257\n", "1..256", { NULL } },
	{ "workers 256 ok", "[daemon]\nworkers = 256\n", NULL, { "workers=256", NULL } },
	{ "queue_max zero", "[daemon]\nqueue_max = 0\n", "key 'queue_max'", { NULL } },
	{ "queue_max too big", "[daemon]\nqueue_max = 100001\n", "key 'queue_max'", { NULL } },
	{ "bad ca_key_type", "[ca]\nca_key_type = rsa-1024\n", "key 'ca_key_type': 'rsa-1024'",
		{ NULL } },
	{ "days zero", "[ca]\nca_root_days = 0\n", "key 'ca_root_days'", { NULL } },
	{ "crl days negative", "[ca]\ncrl_days = -1\n", "key 'crl_days'", { NULL } },
	{ "bad log level", "[daemon]\nlog_level = loud\n", "key 'log_level'", { NULL } },
	{ "bad tls", "[listener a]\ntls = maybe\n", "key 'tls'", { NULL } },
	{ "bad door", "[listener a]\ndoors = admin,ftp\n", "key 'doors': unknown door 'ftp'", { NULL } },
	{ "empty doors", "[listener a]\ndoors = ,\n", "key 'doors'", { NULL } },
	{ "bad address", "[listener a]\naddress = example.org\n", "key 'address'", { NULL } },
	{ "unknown key", "[daemon]\nworkerz = 3\n", "test.conf:2: key 'workerz': unknown in [daemon]",
		{ NULL } },
	{ "key in wrong section", "[daemon]\ncrl_days = 3\n", "key 'crl_days': belongs in [ca]",
		{ NULL } },
	{ "unknown listener key", "[listener a]\nhost = x\n", "key 'host'", { NULL } },
	{ "unknown section", "[server]\n", "test.conf:1: unknown section [server]", { NULL } },
	{ "listener without name", "[listener]\n", "needs a name", { NULL } },
	{ "duplicate listener", "[listener a]\nport=1\n[listener a]\nport=2\n",
		"test.conf:3: section [listener a]: defined twice", { NULL } },
	{ "same address and port", "[listener a]\nport=1\n[listener b]\nport=1\n",
		"test.conf:3: key 'port'", { NULL } },
	{ "too many listeners", "[listener a]\nport=1\n[listener b]\nport=2\n[listener c]\nport=3\n"
		"[listener d]\nport=4\n[listener e]\nport=5\n[listener f]\nport=6\n"
		"[listener g]\nport=7\n[listener h]\nport=8\n[listener i]\nport=9\n",
		"at most 8", { NULL } },
	{ "key outside section", "workers = 2\n", "test.conf:1: key 'workers' outside any section",
		{ NULL } },
	{ "no equals", "[daemon]\nworkers\n", "test.conf:2: expected 'key = value'", { NULL } },
	{ "unterminated quote", "[daemon]\nuser = \"abc\n", "key 'user': unterminated", { NULL } },
	{ "text after quote", "[daemon]\nuser = \"abc\" def\n", "key 'user': text after", { NULL } },
	{ "duplicate key", "[daemon]\nworkers=2\n[daemon]\nworkers=3\n",
		"test.conf:4: key 'workers': already set on line 2", { NULL } },
	{ "relative state_dir", "[daemon]\nstate_dir = var/lib\n", "key 'state_dir'", { NULL } },
	{ "certificate without key", "[listener a]\ncertificate=/c.pem\n",
		"test.conf:1: listener 'a': key 'private_key'", { NULL } },
	{ "certificate with tls off", "[listener a]\ntls=off\ncertificate=/c\nprivate_key=/k\n",
		"tls is off", { NULL } },
	{ "public_url without scheme", "[daemon]\npublic_url = ra.example\n", "key 'public_url'",
		{ NULL } },
	{ "unclosed section", "[daemon\n", "test.conf:1: section header without ']'", { NULL } },
	{ "value too long", "[daemon]\nuser = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		"key 'user': value too long", { NULL } },
};

/* Formats the named field of cfg into buf; returns false for an unknown name. */
static bool
field(const struct enrolld_config *cfg, const char *name, char *buf, size_t len)
{
	const struct listener_config *l;
	int i;

	if (strcmp(name, "state_dir") == 0) snprintf(buf, len, "%s", cfg->state_dir);
	else if (strcmp(name, "user") == 0) snprintf(buf, len, "%s", cfg->user);
	else if (strcmp(name, "workers") == 0) snprintf(buf, len, "%d", cfg->workers);
	else if (strcmp(name, "queue_max") == 0) snprintf(buf, len, "%d", cfg->queue_max);
	else if (strcmp(name, "max_body") == 0) snprintf(buf, len, "%zu", cfg->max_body);
	else if (strcmp(name, "log_level") == 0) snprintf(buf, len, "%s", cfg->log_level);
	else if (strcmp(name, "public_url") == 0) snprintf(buf, len, "%s", cfg->public_url);
	else if (strcmp(name, "database_url") == 0) snprintf(buf, len, "%s", cfg->database_url);
	else if (strcmp(name, "pg_bindir") == 0) snprintf(buf, len, "%s", cfg->pg_bindir);
	else if (strcmp(name, "ca_key_type") == 0) snprintf(buf, len, "%s", cfg->ca_key_type);
	else if (strcmp(name, "ca_root_cert") == 0) snprintf(buf, len, "%s", cfg->ca_root_cert);
	else if (strcmp(name, "ca_issuing_cert") == 0) snprintf(buf, len, "%s", cfg->ca_issuing_cert);
	else if (strcmp(name, "ca_issuing_key") == 0) snprintf(buf, len, "%s", cfg->ca_issuing_key);
	else if (strcmp(name, "ca_root_days") == 0) snprintf(buf, len, "%d", cfg->ca_root_days);
	else if (strcmp(name, "ca_issuing_days") == 0) snprintf(buf, len, "%d", cfg->ca_issuing_days);
	else if (strcmp(name, "crl_days") == 0) snprintf(buf, len, "%d", cfg->crl_days);
	else if (strcmp(name, "tls_names") == 0) snprintf(buf, len, "%s", cfg->tls_names);
	else if (strcmp(name, "validation_http_port") == 0)
		snprintf(buf, len, "%d", cfg->validation_http_port);
	else if (strcmp(name, "validation_tls_port") == 0)
		snprintf(buf, len, "%d", cfg->validation_tls_port);
	else if (strcmp(name, "validation_dns_resolver") == 0)
		snprintf(buf, len, "%s", cfg->validation_dns_resolver);
	else if (strcmp(name, "validation_allow_private") == 0)
		snprintf(buf, len, "%d", cfg->validation_allow_private ? 1 : 0);
	else if (strcmp(name, "validation_timeout") == 0)
		snprintf(buf, len, "%d", cfg->validation_timeout);
	else if (strcmp(name, "validation_workers") == 0)
		snprintf(buf, len, "%d", cfg->validation_workers);
	else if (strcmp(name, "retention_days") == 0)
		snprintf(buf, len, "%d", cfg->retention_days);
	else if (strcmp(name, "retention_interval") == 0)
		snprintf(buf, len, "%d", cfg->retention_interval);
	else if (strcmp(name, "n_listeners") == 0) snprintf(buf, len, "%d", cfg->n_listeners);
	else if (name[0] == 'l' && name[1] >= '0' && name[1] <= '9') {
		i = name[1] - '0';
		if (i >= cfg->n_listeners) {
			snprintf(buf, len, "(no listener %d)", i);
			return true;
		}
		l = &cfg->listeners[i];
		if (name[2] == '\0')
			snprintf(buf, len, "%s %s %d %s 0x%x", l->name, l->address, l->port,
			    l->tls ? "tls" : "plain", l->doors);
		else if (strcmp(name + 2, ".certificate") == 0)
			snprintf(buf, len, "%s", l->cert_file);
		else if (strcmp(name + 2, ".private_key") == 0)
			snprintf(buf, len, "%s", l->key_file);
		else
			return false;
	} else
		return false;
	return true;
}

static int
run_case(const struct config_case *c)
{
	struct enrolld_config *cfg = NULL, *before = NULL;
	char err[512], got[PATH_MAX + 200], fname[64], auto_workers[16];
	const char *want;
	int rc, i, ok = 0;

	cfg = malloc(sizeof(*cfg));
	before = malloc(sizeof(*before));
	if (cfg == NULL || before == NULL)
		goto out;
	/* Start from a recognisable non-default state, to see that a failed
	 * parse leaves it untouched. */
	memset(cfg, 0, sizeof(*cfg));
	cfg->workers = 77;
	memcpy(before, cfg, sizeof(*cfg));

	rc = config_parse(cfg, "test.conf", c->text, err, sizeof(err));
	if (c->error != NULL) {
		if (rc == 0) {
			printf("FAIL %s: parsed, expected error containing \"%s\"\n", c->name, c->error);
			goto out;
		}
		if (strstr(err, c->error) == NULL) {
			printf("FAIL %s: error \"%s\" lacks \"%s\"\n", c->name, err, c->error);
			goto out;
		}
		if (memcmp(cfg, before, sizeof(*cfg)) != 0) {
			printf("FAIL %s: failed parse modified the config\n", c->name);
			goto out;
		}
		ok = 1;
		goto out;
	}
	if (rc != 0) {
		printf("FAIL %s: unexpected error: %s\n", c->name, err);
		goto out;
	}
	if (strcmp(cfg->path, "test.conf") != 0) {
		printf("FAIL %s: path is \"%s\"\n", c->name, cfg->path);
		goto out;
	}
	for (i = 0; i < MAX_EXPECT && c->expect[i] != NULL; i++) {
		const char *eq = strchr(c->expect[i], '=');

		snprintf(fname, sizeof(fname), "%.*s", (int)(eq - c->expect[i]), c->expect[i]);
		if (!field(cfg, fname, got, sizeof(got))) {
			printf("FAIL %s: test names unknown field %s\n", c->name, fname);
			goto out;
		}
		want = eq + 1;
		if (strcmp(want, "@auto") == 0) {
			/* the default workers: two per online CPU, 4 to 64 */
			long cpus = sysconf(_SC_NPROCESSORS_ONLN);

			cpus = cpus < 2 ? 2 : cpus > 32 ? 32 : cpus;
			snprintf(auto_workers, sizeof(auto_workers), "%ld", 2 * cpus);
			want = auto_workers;
		}
		if (strcmp(got, want) != 0) {
			printf("FAIL %s: %s is \"%s\", expected \"%s\"\n", c->name, fname, got, want);
			goto out;
		}
	}
	ok = 1;
out:
	free(cfg);
	free(before);
	return ok;
}

/* config_load(): reads a real file, names it in errors, refuses a missing one. */
static int
run_load_cases(int *passed, int *failed)
{
	struct enrolld_config *cfg = NULL;
	char path[] = "/tmp/test_config_XXXXXX";
	char err[512];
	const char text[] = "[daemon]\nworkers = 9\n[listener x]\nport = 0\n";
	const char good[] = "[daemon]\nworkers = 9\n";
	int fd = -1, rc;
	FILE *f = NULL;

	cfg = malloc(sizeof(*cfg));
	if (cfg == NULL)
		return -1;
	fd = mkstemp(path);
	if (fd < 0) {
		free(cfg);
		return -1;
	}
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	rc = config_load(cfg, path, err, sizeof(err));
	{
		char want[128];

		snprintf(want, sizeof(want), "%s:4: key 'port'", path);
		if (rc == 0 || strstr(err, want) == NULL) {
			printf("FAIL config_load bad file: rc %d err \"%s\"\n", rc, err);
			(*failed)++;
		} else
			(*passed)++;
	}
	f = fopen(path, "w");
	fputs(good, f);
	fclose(f);
	rc = config_load(cfg, path, err, sizeof(err));
	if (rc != 0 || cfg->workers != 9 || strcmp(cfg->path, path) != 0 || cfg->n_listeners != 1) {
		printf("FAIL config_load good file: rc %d err \"%s\"\n", rc, rc ? err : "");
		(*failed)++;
	} else
		(*passed)++;
	unlink(path);
	rc = config_load(cfg, path, err, sizeof(err));
	if (rc == 0 || strstr(err, path) == NULL || strstr(err, "cannot open") == NULL) {
		printf("FAIL config_load missing file: rc %d err \"%s\"\n", rc, err);
		(*failed)++;
	} else
		(*passed)++;
	free(cfg);
	return 0;
}

int
main(void)
{
	size_t i;
	int passed = 0, failed = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (run_case(&cases[i]))
			passed++;
		else
			failed++;
	}
	if (run_load_cases(&passed, &failed) != 0) {
		printf("FAIL could not set up config_load cases\n");
		failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
