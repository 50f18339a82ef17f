/*
 * bench_acme.c: load driver for complete ACME (RFC 8555) issuances, the same
 * against enrolld and against pebble.
 *
 * N flows run concurrently, each with its own ES256 (P-256) account key, its
 * own P-256 certificate key and its own keep-alive connection. First every
 * flow registers its account (newAccount, with external account binding when
 * the directory says externalAccountRequired: the EAB kid and HMAC key of
 * flow i are line i of --eab-file). Then each flow repeats one complete
 * issuance for a new, unique name under --domain:
 *
 *   newOrder -> POST-as-GET each authorization -> if pending: POST {} to its
 *   challenge (--challenge type, else the first) and poll the authorization
 *   until valid -> finalize with a fresh CSR -> poll the order until valid
 *   (when finalize did not answer valid) -> download the certificate
 *   (POST-as-GET), whose first PEM certificate must carry the name.
 *
 * Every request is a JWS signed here with OpenSSL (ES256: raw r||s) carrying
 * the Replay-Nonce of the previous response on that flow (HEAD newNonce when
 * there is none); a badNonce answer is retried with the nonce it carries (at
 * most BENCH_NONCE_RETRIES times). Polls back off from 1 ms to 100 ms;
 * Retry-After is not honoured (a benchmark wants the earliest answer, and
 * neither server asks for a wait on this path). One thread, one libcurl multi
 * handle, HTTP/1.1 unless --http2.
 *
 * Measurement: once the accounts exist, flows run --warmup seconds
 * unmeasured, then --duration seconds measured. An issuance counts when its
 * certificate arrives inside the window, with its latency from its newOrder.
 * An error is a flow that fails inside the window or while draining, or a
 * request still unanswered at the end of the drain (a failed flow starts over
 * with a new order 10 ms later). The server's CPU: utime+stime+cutime+cstime
 * (so children reaped meanwhile count too) of every --pid process and all its
 * descendants, read from /proc/<pid>/stat at both ends of the window; the
 * difference over the issuances is its CPU per issuance. Give enrolld's pid
 * (its signer processes and an embedded PostgreSQL, postmaster and backends,
 * descend from it) plus the postmaster of an external PostgreSQL; for pebble
 * its own pid. After the window, flows finish their current request and stop
 * (at most BENCH_DRAIN_SECONDS). No answer at all for BENCH_STALL_SECONDS
 * while requests are in flight marks the run as stalled (pebble deadlocks).
 *
 *   bench_acme --directory URL --cacert ROOT.pem [--eab-file FILE]
 *       [--domain bench.test] [--concurrency 16] [--duration 10]
 *       [--warmup 1] [--pid PID]... [--label NAME] [--challenge http-01]
 *       [--timeout 10] [--http2] [--quiet]
 *
 * The last output line is machine-readable (tests/bench/run_bench_acme.sh):
 *   RESULT label=... concurrency=... seconds=... issued=... errors=...
 *          rate=... p50_ms=... p90_ms=... p99_ms=... max_ms=...
 *          requests=... req_per_issue=... nonce_retries=... polls=...
 *          cpu_ms=... cpu_ms_per_issue=... server_processes=...
 *          driver_cpu_ms_per_issue=... stalled=0|1 stalled_at_s=...
 * Exit status: 0 issuances and no errors, 1 errors (or nothing issued),
 * 2 setup failure (directory, accounts, arguments). The program is a client
 * only: it never starts or configures a server. EAB HMAC keys are never
 * printed.
 */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define BENCH_MAX_CONCURRENCY 1024
#define BENCH_MAX_PIDS 16
#define BENCH_MAX_AUTHZ 8
#define BENCH_URL_MAX 1024
#define BENCH_NONCE_MAX 256
#define BENCH_BODY_MAX (1024 * 1024) /* responses larger than this are errors */
#define BENCH_ERRORS_SHOWN 8
#define BENCH_NONCE_RETRIES 5
#define BENCH_MAX_POLLS 400       /* per wait (authorization or order) */
#define BENCH_FLOW_TIMEOUT 30.0   /* seconds one issuance may take */
#define BENCH_RESTART_DELAY 0.010 /* seconds after a failed flow */
#define BENCH_ACCOUNT_TRIES 3
#define BENCH_ACCOUNT_SECONDS 120.0 /* all accounts must exist by then */
#define BENCH_DRAIN_SECONDS 10.0
#define BENCH_STALL_SECONDS 2.0 /* no answer at all for this long: stalled */

struct bench_options {
	const char *directory; /* directory URL */
	const char *cacert;    /* PEM the server's TLS certificate chains to */
	const char *eab_file;  /* "kid hmac_b64url" per line, or NULL */
	const char *domain;
	const char *label;
	const char *challenge; /* preferred challenge type */
	int concurrency;
	double duration, warmup;
	long timeout_ms; /* per HTTP request */
	bool http2, quiet;
	pid_t pids[BENCH_MAX_PIDS];
	int n_pids;
};

/* What a flow's current (logical) request is. */
enum bench_req {
	BENCH_REQ_NONE,
	BENCH_REQ_ACCOUNT,
	BENCH_REQ_NEW_ORDER,
	BENCH_REQ_AUTHZ,
	BENCH_REQ_CHALLENGE,
	BENCH_REQ_FINALIZE,
	BENCH_REQ_ORDER,
	BENCH_REQ_CERT,
};

static const char *const bench_req_names[] = {
    "none",      "newAccount", "newOrder", "authorization",
    "challenge", "finalize",   "order",    "certificate",
};

/* What a sleeping flow does when it wakes. */
enum bench_wake {
	BENCH_WAKE_NONE,
	BENCH_WAKE_FIRE,      /* send the current request again (a poll) */
	BENCH_WAKE_NEW_ORDER, /* start a new issuance */
	BENCH_WAKE_ACCOUNT,   /* retry the account registration */
};

/* One response as received: status, the headers we use, the body. */
struct bench_response {
	long status;
	char nonce[BENCH_NONCE_MAX];
	char location[BENCH_URL_MAX];
	char content_type[128];
	char *body; /* NUL-terminated; owned by the flow, reused */
	size_t len, cap;
	bool overflow;
};

struct bench_flow {
	int id;
	CURL *easy;
	struct curl_slist *headers;
	bool busy;           /* an HTTP request is in flight */
	bool nonce_inflight; /* ... and it is HEAD newNonce */
	bool stopped;        /* drained: sends nothing more */
	double wake_at;      /* > 0: sleeping until then */
	enum bench_wake wake;

	EVP_PKEY *account_key;
	EVP_PKEY_CTX *sign_ctx;  /* signs with account_key */
	json_t *jwk;             /* public JWK of account_key */
	char kid[BENCH_URL_MAX]; /* account URL; "" before registration */
	EVP_PKEY *cert_key;
	X509_REQ *csr; /* template: cert_key's public key, set once */
	char eab_kid[256], eab_hmac[256];
	int account_tries;

	char nonce[BENCH_NONCE_MAX]; /* "" when none is known */
	enum bench_req req;
	char req_url[BENCH_URL_MAX];
	char *req_payload; /* JSON text; NULL for POST-as-GET; owned */
	char *req_body;    /* the JWS sent; owned (libcurl does not copy it) */
	int nonce_retries;

	/* the issuance under way */
	long seq;
	char name[256];
	double started;
	char order_url[BENCH_URL_MAX], finalize_url[BENCH_URL_MAX], cert_url[BENCH_URL_MAX];
	char authz_urls[BENCH_MAX_AUTHZ][BENCH_URL_MAX];
	int n_authz, authz_idx;
	bool challenge_posted;
	int polls;

	struct bench_response resp;
};

enum bench_phase {
	BENCH_PHASE_ACCOUNTS,
	BENCH_PHASE_WARMUP,
	BENCH_PHASE_MEASURE,
	BENCH_PHASE_DRAIN,
};

struct bench_stats {
	double *latency_ms; /* of the issuances in the window; grows */
	size_t n_latency, cap_latency;
	long issued, errors, requests, nonce_retries, polls;
	long errors_outside; /* during warm-up and drain */
	long accounts;
	int errors_shown;
	/* per kind of request, in the window: count and total time (curl's
	 * CURLINFO_TOTAL_TIME: from queueing to the last byte) */
	long kind_count[BENCH_REQ_CERT + 2];
	double kind_ms[BENCH_REQ_CERT + 2];
};

/* utime+stime (and cutime+cstime) in clock ticks of a process tree. */
struct bench_cpu {
	unsigned long long ticks;
	int processes;
};

struct bench {
	struct bench_options opt;
	CURLM *multi;
	struct bench_flow *flows;
	enum bench_phase phase;
	struct bench_stats st;
	char new_nonce_url[BENCH_URL_MAX], new_account_url[BENCH_URL_MAX];
	char new_order_url[BENCH_URL_MAX];
	bool eab_required;
	char run_tag[16];
	EVP_MD *sha256; /* fetched once */
	int in_flight;
	double last_answer; /* when the last HTTP request completed */
	double stalled_at;  /* > 0: when a stall began (its last answer) */
};

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_ssl_fail(const char *what)
{
	unsigned long e;
	char buf[256];

	fprintf(stderr, "bench_acme: %s failed", what);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, ": %s", buf);
	}
	fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* base64url, keys, JWS */

/* base64url without padding of len bytes into a new string; the caller
 * frees it. NULL when out of memory. */
static char *bench_b64url(const unsigned char *data, size_t len)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = malloc(len / 3 * 4 + 5), *p;
	size_t i;

	if (out == NULL)
		return NULL;
	p = out;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];

		*p++ = alphabet[v >> 18 & 63];
		*p++ = alphabet[v >> 12 & 63];
		*p++ = alphabet[v >> 6 & 63];
		*p++ = alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)data[i] << 16;

		*p++ = alphabet[v >> 18 & 63];
		*p++ = alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;

		*p++ = alphabet[v >> 18 & 63];
		*p++ = alphabet[v >> 12 & 63];
		*p++ = alphabet[v >> 6 & 63];
	}
	*p = '\0';
	return out;
}

/* Decodes base64url (padding and standard base64's '+' '/' tolerated) into
 * out (at most cap bytes). Returns the length, or -1 on bad input. */
static long bench_b64url_decode(const char *text, unsigned char *out, size_t cap)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;
	const char *p;

	for (p = text; *p != '\0' && *p != '='; p++) {
		int v;

		if (*p >= 'A' && *p <= 'Z')
			v = *p - 'A';
		else if (*p >= 'a' && *p <= 'z')
			v = *p - 'a' + 26;
		else if (*p >= '0' && *p <= '9')
			v = *p - '0' + 52;
		else if (*p == '-' || *p == '+')
			v = 62;
		else if (*p == '_' || *p == '/')
			v = 63;
		else
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == cap)
				return -1;
			out[n++] = (unsigned char)(acc >> bits & 0xff);
		}
	}
	return (long)n;
}

static EVP_PKEY *bench_p256(void)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (key == NULL)
		bench_ssl_fail("EVP_PKEY_Q_keygen(P-256)");
	return key;
}

/* The public JWK ({"crv","kty","x","y"}) of a P-256 key; a new reference,
 * NULL on failure. */
static json_t *bench_jwk(EVP_PKEY *key)
{
	unsigned char point[65];
	size_t len = 0;
	char *x = NULL, *y = NULL;
	json_t *jwk = NULL;

	if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
	                                    sizeof(point), &len) != 1 ||
	    len != 65 || point[0] != 0x04) {
		bench_ssl_fail("EVP_PKEY_get_octet_string_param(public key)");
		goto out;
	}
	if ((x = bench_b64url(point + 1, 32)) == NULL || (y = bench_b64url(point + 33, 32)) == NULL)
		goto out;
	jwk = json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256", "kty", "EC", "x", x, "y", y);
out:
	free(x);
	free(y);
	return jwk;
}

/* ES256 signature (raw r||s, 64 bytes) of data with the key behind
 * sign_ctx (an EVP_PKEY_CTX after EVP_PKEY_sign_init, reused for every
 * signature of that key: OpenSSL 3's per-call fetches and context set-up
 * would otherwise cost the driver more than the signature). 0 or -1. */
static int bench_es256(struct bench *b, EVP_PKEY_CTX *sign_ctx, const char *data, size_t len,
                       unsigned char out[64])
{
	unsigned char digest[32], der[80];
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	unsigned int digest_len = 0;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r, *s;
	int rc = -1;

	if (EVP_Digest(data, len, digest, &digest_len, b->sha256, NULL) != 1 ||
	    EVP_PKEY_sign(sign_ctx, der, &der_len, digest, digest_len) != 1) {
		bench_ssl_fail("EVP_PKEY_sign(ES256)");
		goto out;
	}
	if ((sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) == NULL) {
		bench_ssl_fail("d2i_ECDSA_SIG");
		goto out;
	}
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, out, 32) != 32 || BN_bn2binpad(s, out + 32, 32) != 32)
		goto out;
	rc = 0;
out:
	ECDSA_SIG_free(sig);
	return rc;
}

/* A signing context for key (EVP_PKEY_sign_init done); the caller frees it
 * with EVP_PKEY_CTX_free(). NULL on failure. */
static EVP_PKEY_CTX *bench_sign_ctx(EVP_PKEY *key)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);

	if (ctx == NULL || EVP_PKEY_sign_init(ctx) != 1) {
		bench_ssl_fail("EVP_PKEY_sign_init");
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* A flattened JWS {"protected","payload","signature"} as a new string (the
 * caller frees it): `protected` (stolen) encoded, payload text as is ("" for
 * POST-as-GET), signed with ES256 by sign_ctx or, when hmac_key is set, with
 * HS256 (EAB). NULL on failure. */
static char *bench_jws(struct bench *b, json_t *protected, const char *payload,
                       EVP_PKEY_CTX *sign_ctx, const unsigned char *hmac_key, size_t hmac_len)
{
	char *prot_text = NULL, *prot64 = NULL, *pay64 = NULL, *sig64 = NULL, *input = NULL;
	char *out = NULL;
	unsigned char sig[EVP_MAX_MD_SIZE];
	unsigned int sig_len = 0;
	size_t input_len;
	json_t *jws = NULL;

	if (protected == NULL || (prot_text = json_dumps(protected, JSON_COMPACT)) == NULL ||
	    (prot64 = bench_b64url((const unsigned char *)prot_text, strlen(prot_text))) == NULL ||
	    (pay64 = bench_b64url((const unsigned char *)payload, strlen(payload))) == NULL)
		goto out;
	input_len = strlen(prot64) + 1 + strlen(pay64);
	if ((input = malloc(input_len + 1)) == NULL)
		goto out;
	snprintf(input, input_len + 1, "%s.%s", prot64, pay64);
	if (hmac_key != NULL) {
		if (HMAC(EVP_sha256(), hmac_key, (int)hmac_len, (const unsigned char *)input,
		         input_len, sig, &sig_len) == NULL) {
			bench_ssl_fail("HMAC(HS256)");
			goto out;
		}
	} else {
		if (bench_es256(b, sign_ctx, input, input_len, sig) != 0)
			goto out;
		sig_len = 64;
	}
	if ((sig64 = bench_b64url(sig, sig_len)) == NULL)
		goto out;
	jws =
	    json_pack("{s:s, s:s, s:s}", "protected", prot64, "payload", pay64, "signature", sig64);
	if (jws != NULL)
		out = json_dumps(jws, JSON_COMPACT);
out:
	json_decref(protected);
	json_decref(jws);
	free(prot_text);
	free(prot64);
	free(pay64);
	free(sig64);
	free(input);
	return out;
}

/* The base64url DER of a CSR for `name` (CN and the one DNS SAN) signed by
 * key, made from the flow's template `req` (which holds key's public key:
 * setting it anew costs OpenSSL 3 an encoder round trip each time); its
 * subject and extensions are replaced. Newly allocated, the caller frees it.
 * NULL on failure. */
static char *bench_csr_b64(X509_REQ *req, EVP_PKEY *key, const char *name)
{
	X509_NAME *subject = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *san = NULL;
	X509_ATTRIBUTE *old;
	unsigned char *der = NULL;
	char san_value[300], *out = NULL;
	int der_len, idx;

	while ((idx = X509_REQ_get_attr_by_NID(req, NID_ext_req, -1)) >= 0) {
		if ((old = X509_REQ_delete_attr(req, idx)) == NULL)
			goto out;
		X509_ATTRIBUTE_free(old);
	}
	if ((subject = X509_NAME_new()) == NULL || (exts = sk_X509_EXTENSION_new_null()) == NULL)
		goto out;
	if (!X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)name,
	                                -1, -1, 0) ||
	    !X509_REQ_set_subject_name(req, subject))
		goto out;
	snprintf(san_value, sizeof(san_value), "DNS:%s", name);
	if ((san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san_value)) == NULL ||
	    !sk_X509_EXTENSION_push(exts, san))
		goto out;
	san = NULL; /* owned by exts now */
	if (!X509_REQ_add_extensions(req, exts) || !X509_REQ_sign(req, key, EVP_sha256()))
		goto out;
	if ((der_len = i2d_X509_REQ(req, &der)) <= 0)
		goto out;
	out = bench_b64url(der, (size_t)der_len);
out:
	if (out == NULL)
		bench_ssl_fail("making a CSR");
	OPENSSL_free(der);
	X509_EXTENSION_free(san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(subject);
	return out;
}

/* ------------------------------------------------------------------------ */
/* CPU of process trees from /proc */

/* Fields of /proc/<pid>/stat: ppid, and utime+stime+cutime+cstime in ticks.
 * 0, or -1 when the process is gone or the file is odd. */
static int bench_proc_stat(pid_t pid, pid_t *ppid, unsigned long long *ticks)
{
	char path[64], buf[1024], *p;
	unsigned long long utime, stime, cutime, cstime;
	long long parent;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) state ppid ..." - comm may hold spaces and parentheses */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* fields 3.. : state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime cutime cstime */
	if (sscanf(p + 1, " %*c %lld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
	           &parent, &utime, &stime, &cutime, &cstime) != 5)
		return -1;
	*ppid = (pid_t)parent;
	*ticks = utime + stime + cutime + cstime;
	return 0;
}

/* Sums the CPU of every process that is one of opt->pids or descends from
 * one: their own time and that of their reaped children. Processes that
 * exit between the scan and the read are simply missed (their time moves to
 * their parent's cutime once reaped). */
static void bench_cpu_snapshot(const struct bench_options *opt, struct bench_cpu *cpu)
{
	pid_t *pids = NULL, *parents = NULL, *set = NULL;
	unsigned long long *ticks = NULL;
	size_t n = 0, cap = 0, n_set = 0, i, j;
	struct dirent *de;
	DIR *dir = NULL;

	memset(cpu, 0, sizeof(*cpu));
	if (opt->n_pids == 0)
		return;
	if ((dir = opendir("/proc")) == NULL) {
		fprintf(stderr, "bench_acme: opendir(/proc): %s\n", strerror(errno));
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		pid_t pid, ppid;
		unsigned long long t;
		char *end;
		long v = strtol(de->d_name, &end, 10);

		if (*end != '\0' || v <= 0)
			continue;
		pid = (pid_t)v;
		if (bench_proc_stat(pid, &ppid, &t) != 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			pid_t *np = realloc(pids, ncap * sizeof(*np));
			pid_t *npp;
			unsigned long long *nt;

			if (np == NULL)
				goto out;
			pids = np;
			if ((npp = realloc(parents, ncap * sizeof(*npp))) == NULL)
				goto out;
			parents = npp;
			if ((nt = realloc(ticks, ncap * sizeof(*nt))) == NULL)
				goto out;
			ticks = nt;
			cap = ncap;
		}
		pids[n] = pid;
		parents[n] = ppid;
		ticks[n] = t;
		n++;
	}
	/* the set: the roots, then repeatedly every child of a member (a
	 * process tree is shallow; n passes bound it anyway) */
	if ((set = calloc(n + 1, sizeof(*set))) == NULL)
		goto out;
	for (i = 0; i < n; i++)
		for (j = 0; j < (size_t)opt->n_pids; j++)
			if (pids[i] == opt->pids[j])
				set[n_set++] = pids[i];
	for (;;) {
		size_t before = n_set;

		for (i = 0; i < n; i++) {
			bool member = false, parent_member = false;

			for (j = 0; j < n_set; j++) {
				if (set[j] == pids[i])
					member = true;
				if (set[j] == parents[i])
					parent_member = true;
			}
			if (!member && parent_member)
				set[n_set++] = pids[i];
		}
		if (n_set == before)
			break;
	}
	for (i = 0; i < n; i++)
		for (j = 0; j < n_set; j++)
			if (set[j] == pids[i]) {
				cpu->ticks += ticks[i];
				cpu->processes++;
			}
out:
	closedir(dir);
	free(pids);
	free(parents);
	free(ticks);
	free(set);
}

static double bench_self_cpu_ms(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

/* ------------------------------------------------------------------------ */
/* statistics */

static int bench_record_latency(struct bench_stats *st, double ms)
{
	if (st->n_latency == st->cap_latency) {
		size_t cap = st->cap_latency ? st->cap_latency * 2 : 4096;
		double *p = realloc(st->latency_ms, cap * sizeof(*p));

		if (p == NULL)
			return -1;
		st->latency_ms = p;
		st->cap_latency = cap;
	}
	st->latency_ms[st->n_latency++] = ms;
	return 0;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array; 0 when empty. */
static double bench_percentile(const double *sorted, size_t n, double pct)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)((pct / 100.0) * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

/* ------------------------------------------------------------------------ */
/* HTTP */

static size_t bench_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct bench_response *r = userdata;
	size_t n = size * nmemb;

	if (r->overflow || r->len + n > BENCH_BODY_MAX) {
		r->overflow = true;
		return n;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 8192;
		char *p;

		while (cap < r->len + n + 1)
			cap *= 2;
		if ((p = realloc(r->body, cap)) == NULL)
			return 0; /* curl fails the transfer */
		r->body = p;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* Copies a header's value (leading blanks and trailing CR/LF/blanks cut). */
static void bench_header_value(const char *line, size_t len, size_t name_len, char *out, size_t cap)
{
	const char *v = line + name_len, *end = line + len;

	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && isspace((unsigned char)end[-1]))
		end--;
	if ((size_t)(end - v) >= cap) {
		out[0] = '\0'; /* too long to be one we want */
		return;
	}
	memcpy(out, v, (size_t)(end - v));
	out[end - v] = '\0';
}

static size_t bench_header_cb(char *line, size_t size, size_t nmemb, void *userdata)
{
	struct bench_response *r = userdata;
	size_t n = size * nmemb;

	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* a new response (after a 100 Continue or a redirect) */
		r->nonce[0] = r->location[0] = r->content_type[0] = '\0';
		r->len = 0;
		if (r->body != NULL)
			r->body[0] = '\0';
	} else if (n > 13 && strncasecmp(line, "Replay-Nonce:", 13) == 0) {
		bench_header_value(line, n, 13, r->nonce, sizeof(r->nonce));
	} else if (n > 9 && strncasecmp(line, "Location:", 9) == 0) {
		bench_header_value(line, n, 9, r->location, sizeof(r->location));
	} else if (n > 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
		bench_header_value(line, n, 13, r->content_type, sizeof(r->content_type));
	}
	return n;
}

/* The options of a flow's handle that never change. 0 or -1. */
static int bench_easy_setup(const struct bench_options *opt, CURL *easy, struct curl_slist *headers,
                            struct bench_response *resp, void *private)
{
	long version = opt->http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1;

	if (curl_easy_setopt(easy, CURLOPT_CAINFO, opt->cacert) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, bench_write_cb) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_WRITEDATA, resp) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, bench_header_cb) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_HEADERDATA, resp) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_PRIVATE, private) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, opt->timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, opt->timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https,http") != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, version) != CURLE_OK)
		return -1;
	return 0;
}

static void bench_response_reset(struct bench_response *r)
{
	r->status = 0;
	r->nonce[0] = r->location[0] = r->content_type[0] = '\0';
	r->len = 0;
	r->overflow = false;
	if (r->body != NULL)
		r->body[0] = '\0';
}

/* GET the directory (blocking, before any flow runs) and note its URLs.
 * 0 or -1 (said why). */
static int bench_directory(struct bench *b)
{
	struct bench_response resp;
	struct curl_slist *headers = NULL;
	CURL *easy = NULL;
	json_t *dir = NULL, *meta;
	const char *s;
	CURLcode cc;
	int rc = -1;

	memset(&resp, 0, sizeof(resp));
	if ((easy = curl_easy_init()) == NULL ||
	    bench_easy_setup(&b->opt, easy, headers, &resp, NULL) != 0 ||
	    curl_easy_setopt(easy, CURLOPT_URL, b->opt.directory) != CURLE_OK) {
		fprintf(stderr, "bench_acme: setting up the directory request failed\n");
		goto out;
	}
	if ((cc = curl_easy_perform(easy)) != CURLE_OK) {
		fprintf(stderr, "bench_acme: GET %s: %s\n", b->opt.directory,
		        curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &resp.status);
	if (resp.status != 200 || resp.body == NULL ||
	    (dir = json_loads(resp.body, 0, NULL)) == NULL || !json_is_object(dir)) {
		fprintf(stderr, "bench_acme: GET %s: HTTP %ld %.300s\n", b->opt.directory,
		        resp.status, resp.body != NULL ? resp.body : "");
		goto out;
	}
	if ((s = json_string_value(json_object_get(dir, "newNonce"))) == NULL ||
	    snprintf(b->new_nonce_url, sizeof(b->new_nonce_url), "%s", s) >= BENCH_URL_MAX ||
	    (s = json_string_value(json_object_get(dir, "newAccount"))) == NULL ||
	    snprintf(b->new_account_url, sizeof(b->new_account_url), "%s", s) >= BENCH_URL_MAX ||
	    (s = json_string_value(json_object_get(dir, "newOrder"))) == NULL ||
	    snprintf(b->new_order_url, sizeof(b->new_order_url), "%s", s) >= BENCH_URL_MAX) {
		fprintf(stderr, "bench_acme: directory without newNonce/newAccount/newOrder\n");
		goto out;
	}
	meta = json_object_get(dir, "meta");
	b->eab_required = json_is_true(json_object_get(meta, "externalAccountRequired"));
	rc = 0;
out:
	json_decref(dir);
	free(resp.body);
	if (easy != NULL)
		curl_easy_cleanup(easy);
	curl_slist_free_all(headers);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* flows */

static bool bench_measuring(const struct bench *b)
{
	return b->phase == BENCH_PHASE_MEASURE;
}

/* Sends the flow's current request: HEAD newNonce first when no nonce is
 * known, else the JWS POST. In the drain phase the flow stops instead.
 * 0, or -1 on a local failure (fatal for the run). */
static int bench_fire(struct bench *b, struct bench_flow *f)
{
	CURL *easy = f->easy;
	json_t *prot = NULL;
	char *body = NULL;

	f->wake_at = 0;
	f->wake = BENCH_WAKE_NONE;
	if (b->phase == BENCH_PHASE_DRAIN) {
		f->stopped = true;
		return 0;
	}
	bench_response_reset(&f->resp);
	if (f->nonce[0] == '\0') {
		if (curl_easy_setopt(easy, CURLOPT_URL, b->new_nonce_url) != CURLE_OK ||
		    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L) != CURLE_OK)
			return -1;
		f->nonce_inflight = true;
	} else {
		if (f->req == BENCH_REQ_ACCOUNT) {
			prot = json_pack("{s:s, s:s, s:s, s:O}", "alg", "ES256", "nonce", f->nonce,
			                 "url", f->req_url, "jwk", f->jwk);
		} else {
			prot = json_pack("{s:s, s:s, s:s, s:s}", "alg", "ES256", "nonce", f->nonce,
			                 "url", f->req_url, "kid", f->kid);
		}
		body = bench_jws(b, prot, f->req_payload != NULL ? f->req_payload : "", f->sign_ctx,
		                 NULL, 0);
		if (body == NULL)
			return -1;
		f->nonce[0] = '\0'; /* single use */
		free(f->req_body);
		f->req_body = body;
		if (curl_easy_setopt(easy, CURLOPT_URL, f->req_url) != CURLE_OK ||
		    curl_easy_setopt(easy, CURLOPT_NOBODY, 0L) != CURLE_OK ||
		    curl_easy_setopt(easy, CURLOPT_POST, 1L) != CURLE_OK ||
		    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, f->req_body) != CURLE_OK ||
		    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)strlen(f->req_body)) !=
		        CURLE_OK)
			return -1;
		f->nonce_inflight = false;
	}
	if (curl_multi_add_handle(b->multi, easy) != CURLM_OK)
		return -1;
	f->busy = true;
	b->in_flight++;
	return 0;
}

/* Makes (url, payload) the flow's current request and sends it. */
static int bench_request(struct bench *b, struct bench_flow *f, enum bench_req req, const char *url,
                         char *payload)
{
	f->req = req;
	snprintf(f->req_url, sizeof(f->req_url), "%s", url);
	free(f->req_payload);
	f->req_payload = payload; /* stolen; NULL: POST-as-GET */
	f->nonce_retries = 0;
	return bench_fire(b, f);
}

/* The flow sleeps `seconds`, then does `wake`. */
static void bench_sleep(struct bench_flow *f, double seconds, enum bench_wake wake)
{
	f->wake_at = bench_now() + seconds;
	f->wake = wake;
}

/* An issuance (or a registration) went wrong: counted, the first few said,
 * and the flow starts over after a short pause. */
static void bench_fail(struct bench *b, struct bench_flow *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void bench_fail(struct bench *b, struct bench_flow *f, const char *fmt, ...)
{
	va_list ap;

	/* failures seen while draining belong to the window's work (a server
	 * that stalls shows up there) */
	if (b->phase == BENCH_PHASE_MEASURE || b->phase == BENCH_PHASE_DRAIN)
		b->st.errors++;
	else
		b->st.errors_outside++;
	if (b->st.errors_shown < BENCH_ERRORS_SHOWN) {
		b->st.errors_shown++;
		fprintf(stderr, "bench_acme: flow %d, %s %s: ", f->id, bench_req_names[f->req],
		        f->name[0] != '\0' ? f->name : "");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	bench_sleep(f, BENCH_RESTART_DELAY,
	            f->kid[0] == '\0' ? BENCH_WAKE_ACCOUNT : BENCH_WAKE_NEW_ORDER);
}

/* The registration: newAccount with the account key's JWK, and an EAB JWS
 * over that JWK when the server requires one. */
static int bench_start_account(struct bench *b, struct bench_flow *f)
{
	json_t *payload = NULL, *eab_prot = NULL;
	char *jwk_text = NULL, *eab = NULL, *text = NULL;
	unsigned char hmac_key[256];
	long hmac_len;
	int rc = -1;

	f->account_tries++;
	if ((payload = json_pack("{s:b}", "termsOfServiceAgreed", 1)) == NULL)
		goto out;
	if (b->eab_required) {
		hmac_len = bench_b64url_decode(f->eab_hmac, hmac_key, sizeof(hmac_key));
		if (hmac_len <= 0) {
			fprintf(stderr, "bench_acme: flow %d: bad EAB HMAC key\n", f->id);
			goto out;
		}
		eab_prot = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", f->eab_kid, "url",
		                     b->new_account_url);
		if ((jwk_text = json_dumps(f->jwk, JSON_COMPACT)) == NULL ||
		    (eab = bench_jws(b, eab_prot, jwk_text, NULL, hmac_key, (size_t)hmac_len)) ==
		        NULL)
			goto out;
		eab_prot = NULL; /* stolen by bench_jws */
		if (json_object_set_new(payload, "externalAccountBinding",
		                        json_loads(eab, 0, NULL)) != 0)
			goto out;
	}
	if ((text = json_dumps(payload, JSON_COMPACT)) == NULL)
		goto out;
	rc = bench_request(b, f, BENCH_REQ_ACCOUNT, b->new_account_url, text);
	text = NULL;
out:
	OPENSSL_cleanse(hmac_key, sizeof(hmac_key));
	json_decref(payload);
	json_decref(eab_prot);
	free(jwk_text);
	free(eab);
	free(text);
	return rc;
}

/* A new issuance for a new unique name: newOrder. */
static int bench_start_order(struct bench *b, struct bench_flow *f)
{
	json_t *payload = NULL;
	char *text = NULL;

	if (b->phase == BENCH_PHASE_DRAIN) {
		f->stopped = true;
		return 0;
	}
	f->seq++;
	snprintf(f->name, sizeof(f->name), "%s-%d-%ld.%s", b->run_tag, f->id, f->seq,
	         b->opt.domain);
	f->started = bench_now();
	f->order_url[0] = f->finalize_url[0] = f->cert_url[0] = '\0';
	f->n_authz = f->authz_idx = 0;
	f->challenge_posted = false;
	f->polls = 0;
	payload = json_pack("{s:[{s:s, s:s}]}", "identifiers", "type", "dns", "value", f->name);
	if (payload == NULL || (text = json_dumps(payload, JSON_COMPACT)) == NULL) {
		json_decref(payload);
		return -1;
	}
	json_decref(payload);
	return bench_request(b, f, BENCH_REQ_NEW_ORDER, b->new_order_url, text);
}

/* The next wait of a poll loop, or a failure when the loop is exhausted. */
static int bench_poll(struct bench *b, struct bench_flow *f, const char *what)
{
	static const double delays_ms[] = {1, 2, 5, 10, 20, 50, 100};
	size_t i = (size_t)f->polls;

	if (f->polls >= BENCH_MAX_POLLS || bench_now() - f->started > BENCH_FLOW_TIMEOUT) {
		bench_fail(b, f, "still %s after %d polls", what, f->polls);
		return 0;
	}
	if (i >= sizeof(delays_ms) / sizeof(delays_ms[0]))
		i = sizeof(delays_ms) / sizeof(delays_ms[0]) - 1;
	f->polls++;
	if (bench_measuring(b))
		b->st.polls++;
	bench_sleep(f, delays_ms[i] / 1000.0, BENCH_WAKE_FIRE);
	return 0;
}

/* After the last authorization: finalize with a fresh CSR. */
static int bench_finalize(struct bench *b, struct bench_flow *f)
{
	json_t *payload = NULL;
	char *csr = NULL, *text = NULL;

	if ((csr = bench_csr_b64(f->csr, f->cert_key, f->name)) == NULL)
		return -1;
	payload = json_pack("{s:s}", "csr", csr);
	free(csr);
	if (payload == NULL || (text = json_dumps(payload, JSON_COMPACT)) == NULL) {
		json_decref(payload);
		return -1;
	}
	json_decref(payload);
	f->polls = 0;
	return bench_request(b, f, BENCH_REQ_FINALIZE, f->finalize_url, text);
}

/* The next authorization, or finalize when all are valid. */
static int bench_next_authz(struct bench *b, struct bench_flow *f)
{
	if (f->authz_idx >= f->n_authz)
		return bench_finalize(b, f);
	f->challenge_posted = false;
	f->polls = 0;
	return bench_request(b, f, BENCH_REQ_AUTHZ, f->authz_urls[f->authz_idx], NULL);
}

/* "type" of a problem document, or "". */
static const char *bench_problem_type(const struct bench_response *r, json_t *body)
{
	const char *t;

	if (strncasecmp(r->content_type, "application/problem+json", 24) != 0 || body == NULL)
		return "";
	t = json_string_value(json_object_get(body, "type"));
	return t != NULL ? t : "";
}

/* Says what a failed request answered: status, problem type and detail. */
static void bench_fail_response(struct bench *b, struct bench_flow *f, json_t *body)
{
	const char *detail = json_string_value(json_object_get(body, "detail"));

	bench_fail(b, f, "HTTP %ld %s %.300s", f->resp.status, bench_problem_type(&f->resp, body),
	           detail != NULL ? detail : (f->resp.body != NULL ? f->resp.body : ""));
}

/* The order in `body` (from newOrder, finalize or a poll): note its URLs;
 * then fetch the certificate, or keep polling, or fail. */
static int bench_order_state(struct bench *b, struct bench_flow *f, json_t *body)
{
	const char *status = json_string_value(json_object_get(body, "status"));
	const char *cert = json_string_value(json_object_get(body, "certificate"));

	if (status == NULL) {
		bench_fail(b, f, "order without status: %.300s", f->resp.body);
		return 0;
	}
	if (strcmp(status, "valid") == 0) {
		if (cert == NULL ||
		    snprintf(f->cert_url, sizeof(f->cert_url), "%s", cert) >= BENCH_URL_MAX) {
			bench_fail(b, f, "valid order without a certificate URL");
			return 0;
		}
		return bench_request(b, f, BENCH_REQ_CERT, f->cert_url, NULL);
	}
	if (strcmp(status, "processing") == 0 || strcmp(status, "ready") == 0 ||
	    strcmp(status, "pending") == 0) {
		if (f->order_url[0] == '\0') {
			bench_fail(b, f, "no order URL to poll");
			return 0;
		}
		f->req = BENCH_REQ_ORDER;
		snprintf(f->req_url, sizeof(f->req_url), "%s", f->order_url);
		free(f->req_payload);
		f->req_payload = NULL;
		return bench_poll(b, f, status);
	}
	bench_fail(b, f, "order %s: %.300s", status, f->resp.body);
	return 0;
}

/* The authorization in `body`: next one when valid; answer its challenge
 * once when pending; then poll it. */
static int bench_authz_state(struct bench *b, struct bench_flow *f, json_t *body)
{
	const char *status = json_string_value(json_object_get(body, "status"));
	json_t *challenges = json_object_get(body, "challenges"), *ch, *pick = NULL;
	const char *url;
	size_t i;

	if (status == NULL) {
		bench_fail(b, f, "authorization without status");
		return 0;
	}
	if (strcmp(status, "valid") == 0) {
		f->authz_idx++;
		return bench_next_authz(b, f);
	}
	if (strcmp(status, "pending") != 0) {
		bench_fail(b, f, "authorization %s: %.300s", status, f->resp.body);
		return 0;
	}
	if (f->challenge_posted) {
		f->req = BENCH_REQ_AUTHZ;
		snprintf(f->req_url, sizeof(f->req_url), "%s", f->authz_urls[f->authz_idx]);
		free(f->req_payload);
		f->req_payload = NULL;
		return bench_poll(b, f, "pending");
	}
	json_array_foreach(challenges, i, ch)
	{
		const char *type = json_string_value(json_object_get(ch, "type"));

		if (pick == NULL)
			pick = ch;
		if (type != NULL && strcmp(type, b->opt.challenge) == 0) {
			pick = ch;
			break;
		}
	}
	if (pick == NULL || (url = json_string_value(json_object_get(pick, "url"))) == NULL) {
		bench_fail(b, f, "pending authorization without a challenge");
		return 0;
	}
	f->challenge_posted = true;
	{
		char *empty = strdup("{}");

		if (empty == NULL)
			return -1;
		return bench_request(b, f, BENCH_REQ_CHALLENGE, url, empty);
	}
}

/* Whether the first PEM certificate of a chain base64-decodes to a DER
 * SEQUENCE that contains `name`. (A full X.509 parse would cost OpenSSL 3.0
 * a public-key decoder set-up per certificate, more driver CPU than all the
 * JWS of a flow; the name inside the DER is what shows the server answered
 * this order.) */
static bool bench_chain_has_name(const char *pem, size_t pem_len, const char *name)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	const char *start, *stop;
	unsigned char *der = NULL;
	EVP_ENCODE_CTX *ctx = NULL;
	int len = 0, tail = 0;
	bool ok = false;

	if (pem == NULL || (start = memmem(pem, pem_len, begin, sizeof(begin) - 1)) == NULL)
		return false;
	start += sizeof(begin) - 1;
	if ((stop = memmem(start, pem_len - (size_t)(start - pem), end, sizeof(end) - 1)) == NULL ||
	    stop - start > 64 * 1024)
		return false;
	if ((der = malloc((size_t)(stop - start))) == NULL || (ctx = EVP_ENCODE_CTX_new()) == NULL)
		goto out;
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, der, &len, (const unsigned char *)start, (int)(stop - start)) <
	        0 ||
	    EVP_DecodeFinal(ctx, der + len, &tail) != 1)
		goto out;
	len += tail;
	ok = len > 100 && der[0] == 0x30 && memmem(der, (size_t)len, name, strlen(name)) != NULL;
out:
	EVP_ENCODE_CTX_free(ctx);
	free(der);
	return ok;
}

/* The certificate chain: the first certificate must carry the flow's name.
 * Then the issuance counts and the next one begins. */
static int bench_certificate(struct bench *b, struct bench_flow *f)
{
	double now = bench_now();

	if (!bench_chain_has_name(f->resp.body, f->resp.len, f->name)) {
		bench_fail(b, f, "no certificate for the name in: %.200s",
		           f->resp.body != NULL ? f->resp.body : "");
		return 0;
	}
	if (bench_measuring(b)) {
		b->st.issued++;
		if (bench_record_latency(&b->st, (now - f->started) * 1000.0) != 0)
			return -1;
	}
	return bench_start_order(b, f);
}

/* One finished HTTP request of a flow. 0, or -1 on a local failure. */
static int bench_on_done(struct bench *b, struct bench_flow *f, CURLcode result)
{
	json_t *body = NULL;
	const char *ptype;
	int rc = 0;

	curl_multi_remove_handle(b->multi, f->easy);
	f->busy = false;
	b->in_flight--;
	b->last_answer = bench_now();
	if (bench_measuring(b)) {
		/* the last slot counts HEAD newNonce */
		int kind = f->nonce_inflight ? BENCH_REQ_CERT + 1 : (int)f->req;
		curl_off_t us = 0;

		b->st.requests++;
		curl_easy_getinfo(f->easy, CURLINFO_TOTAL_TIME_T, &us);
		b->st.kind_count[kind]++;
		b->st.kind_ms[kind] += (double)us / 1000.0;
	}
	if (result != CURLE_OK) {
		f->nonce[0] = '\0';
		bench_fail(b, f, "transport: %s", curl_easy_strerror(result));
		return 0;
	}
	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &f->resp.status);
	if (f->resp.nonce[0] != '\0')
		snprintf(f->nonce, sizeof(f->nonce), "%s", f->resp.nonce);
	if (f->nonce_inflight) {
		f->nonce_inflight = false;
		if (f->nonce[0] == '\0') {
			bench_fail(b, f, "newNonce answered HTTP %ld without Replay-Nonce",
			           f->resp.status);
			return 0;
		}
		return bench_fire(b, f);
	}
	if (f->resp.overflow) {
		bench_fail(b, f, "response body over %d bytes", BENCH_BODY_MAX);
		return 0;
	}
	/* JSON, except a certificate chain (a problem document is JSON again) */
	if (f->resp.body != NULL && f->resp.len > 0 &&
	    (f->req != BENCH_REQ_CERT ||
	     strncasecmp(f->resp.content_type, "application/problem+json", 24) == 0))
		body = json_loadb(f->resp.body, f->resp.len, 0, NULL);
	ptype = bench_problem_type(&f->resp, body);
	if (f->resp.status == 400 && strcmp(ptype, "urn:ietf:params:acme:error:badNonce") == 0 &&
	    f->nonce_retries < BENCH_NONCE_RETRIES) {
		f->nonce_retries++;
		if (bench_measuring(b))
			b->st.nonce_retries++;
		rc = bench_fire(b, f);
		goto out;
	}
	switch (f->req) {
	case BENCH_REQ_ACCOUNT:
		if ((f->resp.status != 201 && f->resp.status != 200) ||
		    f->resp.location[0] == '\0') {
			bench_fail_response(b, f, body);
			break;
		}
		snprintf(f->kid, sizeof(f->kid), "%s", f->resp.location);
		b->st.accounts++;
		f->req = BENCH_REQ_NONE; /* idle until the issuances start */
		break;
	case BENCH_REQ_NEW_ORDER: {
		json_t *authzs = json_object_get(body, "authorizations"), *a;
		const char *fin = json_string_value(json_object_get(body, "finalize"));
		size_t i;

		if (f->resp.status != 201 || !json_is_array(authzs) || fin == NULL ||
		    f->resp.location[0] == '\0') {
			bench_fail_response(b, f, body);
			break;
		}
		snprintf(f->order_url, sizeof(f->order_url), "%s", f->resp.location);
		snprintf(f->finalize_url, sizeof(f->finalize_url), "%s", fin);
		f->n_authz = 0;
		json_array_foreach(authzs, i, a)
		{
			const char *u = json_string_value(a);

			if (u == NULL || f->n_authz == BENCH_MAX_AUTHZ)
				break;
			snprintf(f->authz_urls[f->n_authz++], BENCH_URL_MAX, "%s", u);
		}
		f->authz_idx = 0;
		rc = bench_next_authz(b, f);
		break;
	}
	case BENCH_REQ_AUTHZ:
		if (f->resp.status != 200 || body == NULL) {
			bench_fail_response(b, f, body);
			break;
		}
		rc = bench_authz_state(b, f, body);
		break;
	case BENCH_REQ_CHALLENGE:
		if (f->resp.status != 200 || body == NULL) {
			bench_fail_response(b, f, body);
			break;
		}
		/* poll the authorization (its validation may still be running) */
		f->polls = 0;
		rc = bench_request(b, f, BENCH_REQ_AUTHZ, f->authz_urls[f->authz_idx], NULL);
		break;
	case BENCH_REQ_FINALIZE:
	case BENCH_REQ_ORDER:
		if (f->resp.status != 200 || body == NULL) {
			bench_fail_response(b, f, body);
			break;
		}
		rc = bench_order_state(b, f, body);
		break;
	case BENCH_REQ_CERT:
		if (f->resp.status != 200) {
			bench_fail_response(b, f, body);
			break;
		}
		rc = bench_certificate(b, f);
		break;
	case BENCH_REQ_NONE:
		break;
	}
out:
	json_decref(body);
	return rc;
}

/* A sleeping flow whose time has come. */
static int bench_wake(struct bench *b, struct bench_flow *f)
{
	enum bench_wake wake = f->wake;

	f->wake_at = 0;
	f->wake = BENCH_WAKE_NONE;
	switch (wake) {
	case BENCH_WAKE_FIRE:
		f->nonce_retries = 0;
		return bench_fire(b, f);
	case BENCH_WAKE_NEW_ORDER:
		return bench_start_order(b, f);
	case BENCH_WAKE_ACCOUNT:
		if (b->phase != BENCH_PHASE_ACCOUNTS || f->account_tries >= BENCH_ACCOUNT_TRIES) {
			f->stopped = true;
			return 0;
		}
		return bench_start_account(b, f);
	case BENCH_WAKE_NONE:
		break;
	}
	return 0;
}

/* Line i of the EAB file ("kid hmac"), wrapping around. 0 or -1. */
static int bench_load_eab(struct bench *b)
{
	FILE *fp = NULL;
	char line[600], kid[256], hmac[256];
	int n = 0, i, rc = -1;

	if ((fp = fopen(b->opt.eab_file, "r")) == NULL) {
		fprintf(stderr, "bench_acme: %s: %s\n", b->opt.eab_file, strerror(errno));
		return -1;
	}
	while (n < b->opt.concurrency && fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, "%255s %255s", kid, hmac) != 2)
			continue;
		snprintf(b->flows[n].eab_kid, sizeof(b->flows[n].eab_kid), "%s", kid);
		snprintf(b->flows[n].eab_hmac, sizeof(b->flows[n].eab_hmac), "%s", hmac);
		n++;
	}
	if (n == 0) {
		fprintf(stderr, "bench_acme: no \"kid hmac\" line in %s\n", b->opt.eab_file);
		goto out;
	}
	if (n < b->opt.concurrency)
		fprintf(stderr, "bench_acme: %d EAB keys for %d flows: reusing them\n", n,
		        b->opt.concurrency);
	for (i = n; i < b->opt.concurrency; i++) {
		memcpy(b->flows[i].eab_kid, b->flows[i % n].eab_kid, sizeof(b->flows[i].eab_kid));
		memcpy(b->flows[i].eab_hmac, b->flows[i % n].eab_hmac,
		       sizeof(b->flows[i].eab_hmac));
	}
	rc = 0;
out:
	OPENSSL_cleanse(line, sizeof(line));
	OPENSSL_cleanse(hmac, sizeof(hmac));
	fclose(fp);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* arguments */

static void bench_usage(FILE *f)
{
	fprintf(f, "usage: bench_acme --directory URL --cacert ROOT.pem [--eab-file FILE]\n"
	           "           [--domain bench.test] [--concurrency N] [--duration SECONDS]\n"
	           "           [--warmup SECONDS] [--pid PID]... [--label NAME]\n"
	           "           [--challenge http-01] [--timeout SECONDS] [--http2] [--quiet]\n");
}

static int bench_parse_args(int argc, char **argv, struct bench_options *opt)
{
	static const struct option longopts[] = {
	    {"directory", required_argument, NULL, 'u'},
	    {"cacert", required_argument, NULL, 'C'},
	    {"eab-file", required_argument, NULL, 'e'},
	    {"domain", required_argument, NULL, 'd'},
	    {"concurrency", required_argument, NULL, 'c'},
	    {"duration", required_argument, NULL, 's'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"pid", required_argument, NULL, 'p'},
	    {"label", required_argument, NULL, 'l'},
	    {"challenge", required_argument, NULL, 'x'},
	    {"timeout", required_argument, NULL, 't'},
	    {"http2", no_argument, NULL, '2'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	double timeout = 10;
	int ch;

	memset(opt, 0, sizeof(*opt));
	opt->domain = "bench.test";
	opt->label = "server";
	opt->challenge = "http-01";
	opt->concurrency = 4;
	opt->duration = 10;
	opt->warmup = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			opt->directory = optarg;
			break;
		case 'C':
			opt->cacert = optarg;
			break;
		case 'e':
			opt->eab_file = optarg;
			break;
		case 'd':
			opt->domain = optarg;
			break;
		case 'c':
			opt->concurrency = atoi(optarg);
			break;
		case 's':
			opt->duration = strtod(optarg, NULL);
			break;
		case 'w':
			opt->warmup = strtod(optarg, NULL);
			break;
		case 'l':
			opt->label = optarg;
			break;
		case 'x':
			opt->challenge = optarg;
			break;
		case 't':
			timeout = strtod(optarg, NULL);
			break;
		case '2':
			opt->http2 = true;
			break;
		case 'q':
			opt->quiet = true;
			break;
		case 'p': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end != '\0' || v <= 0 || opt->n_pids == BENCH_MAX_PIDS) {
				fprintf(stderr, "bench_acme: bad or too many --pid: %s\n", optarg);
				return -1;
			}
			opt->pids[opt->n_pids++] = (pid_t)v;
			break;
		}
		case 'h':
			bench_usage(stdout);
			exit(0);
		default:
			bench_usage(stderr);
			return -1;
		}
	}
	if (opt->directory == NULL || opt->cacert == NULL) {
		fprintf(stderr, "bench_acme: --directory and --cacert are required\n");
		bench_usage(stderr);
		return -1;
	}
	if (opt->concurrency < 1 || opt->concurrency > BENCH_MAX_CONCURRENCY) {
		fprintf(stderr, "bench_acme: --concurrency must be 1..%d\n", BENCH_MAX_CONCURRENCY);
		return -1;
	}
	if (!(opt->duration > 0 && opt->duration <= 3600) ||
	    !(opt->warmup >= 0 && opt->warmup <= 600) || !(timeout > 0 && timeout <= 300)) {
		fprintf(stderr, "bench_acme: --duration 0..3600, --warmup 0..600, "
		                "--timeout 0..300 seconds\n");
		return -1;
	}
	if (strlen(opt->domain) > 200) {
		fprintf(stderr, "bench_acme: --domain too long\n");
		return -1;
	}
	opt->timeout_ms = (long)(timeout * 1000);
	return 0;
}

/* ------------------------------------------------------------------------ */

static int bench_flows_init(struct bench *b)
{
	int i;

	if ((b->flows = calloc((size_t)b->opt.concurrency, sizeof(*b->flows))) == NULL)
		return -1;
	for (i = 0; i < b->opt.concurrency; i++) {
		struct bench_flow *f = &b->flows[i];

		f->id = i;
		if ((f->account_key = bench_p256()) == NULL ||
		    (f->cert_key = bench_p256()) == NULL ||
		    (f->sign_ctx = bench_sign_ctx(f->account_key)) == NULL ||
		    (f->jwk = bench_jwk(f->account_key)) == NULL)
			return -1;
		if ((f->csr = X509_REQ_new()) == NULL ||
		    !X509_REQ_set_pubkey(f->csr, f->cert_key)) {
			bench_ssl_fail("X509_REQ_set_pubkey");
			return -1;
		}
		/* "Expect:" off: bodies are small; no 100-continue round trip */
		if ((f->headers = curl_slist_append(NULL, "Content-Type: application/jose+json")) ==
		        NULL ||
		    (f->headers = curl_slist_append(f->headers, "Expect:")) == NULL)
			return -1;
		if ((f->easy = curl_easy_init()) == NULL ||
		    bench_easy_setup(&b->opt, f->easy, f->headers, &f->resp, f) != 0)
			return -1;
	}
	return 0;
}

static void bench_flows_free(struct bench *b)
{
	int i;

	if (b->flows == NULL)
		return;
	for (i = 0; i < b->opt.concurrency; i++) {
		struct bench_flow *f = &b->flows[i];

		if (f->easy != NULL) {
			if (f->busy)
				curl_multi_remove_handle(b->multi, f->easy);
			curl_easy_cleanup(f->easy);
		}
		curl_slist_free_all(f->headers);
		EVP_PKEY_CTX_free(f->sign_ctx);
		EVP_PKEY_free(f->account_key);
		EVP_PKEY_free(f->cert_key);
		X509_REQ_free(f->csr);
		json_decref(f->jwk);
		free(f->req_payload);
		free(f->req_body);
		free(f->resp.body);
		OPENSSL_cleanse(f->eab_hmac, sizeof(f->eab_hmac));
	}
	free(b->flows);
	b->flows = NULL;
}

/* One turn of the event loop: wake sleepers, move transfers, handle what
 * finished, then wait for I/O or the next timer (at most `until`). 0 or -1. */
static int bench_turn(struct bench *b, double until)
{
	CURLMsg *msg;
	double now = bench_now(), next = until;
	int i, still, queued, completed = 0;

	for (i = 0; i < b->opt.concurrency; i++) {
		struct bench_flow *f = &b->flows[i];

		if (!f->busy && !f->stopped && f->wake_at > 0 && f->wake_at <= now &&
		    bench_wake(b, f) != 0)
			return -1;
	}
	if (curl_multi_perform(b->multi, &still) != CURLM_OK)
		return -1;
	while ((msg = curl_multi_info_read(b->multi, &queued)) != NULL) {
		struct bench_flow *f = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
		if (bench_on_done(b, f, msg->data.result) != 0)
			return -1;
		completed++;
	}
	if (completed > 0)
		return 0; /* new requests were queued: drive them at once */
	if (b->in_flight > 0 && b->stalled_at == 0 && b->phase != BENCH_PHASE_ACCOUNTS &&
	    now - b->last_answer > BENCH_STALL_SECONDS) {
		b->stalled_at = b->last_answer;
		fprintf(stderr,
		        "bench_acme: %s: no answer for %.0f s with %d requests in flight: "
		        "the server stalled\n",
		        b->opt.label, BENCH_STALL_SECONDS, b->in_flight);
	}
	for (i = 0; i < b->opt.concurrency; i++) {
		const struct bench_flow *f = &b->flows[i];

		if (!f->busy && !f->stopped && f->wake_at > 0 && f->wake_at < next)
			next = f->wake_at;
	}
	now = bench_now();
	if (next > now) {
		/* rounded up: a 0 ms poll before a timer that is due in 0.3 ms
		 * would spin */
		int ms = (int)((next - now) * 1000.0) + 1;

		if (ms > 100)
			ms = 100;
		if (curl_multi_poll(b->multi, NULL, 0, ms, NULL) != CURLM_OK)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct bench b;
	struct bench_cpu cpu0, cpu1;
	unsigned char rnd[4];
	double t_start, t0 = 0, t1 = 0, deadline, self0 = 0, self1 = 0, elapsed, rate;
	double cpu_ms = 0, tick_ms;
	int i, rc = 2;

	memset(&b, 0, sizeof(b));
	memset(&cpu0, 0, sizeof(cpu0));
	memset(&cpu1, 0, sizeof(cpu1));
	if (bench_parse_args(argc, argv, &b.opt) != 0)
		return 2;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "bench_acme: curl_global_init failed\n");
		return 2;
	}
	tick_ms = 1000.0 / (double)sysconf(_SC_CLK_TCK);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
	    (b.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		bench_ssl_fail("setup");
		goto out;
	}
	snprintf(b.run_tag, sizeof(b.run_tag), "b%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	if (bench_directory(&b) != 0)
		goto out;
	if (b.eab_required && b.opt.eab_file == NULL) {
		fprintf(stderr, "bench_acme: the server requires external account binding: "
		                "give --eab-file\n");
		goto out;
	}
	if ((b.multi = curl_multi_init()) == NULL ||
	    curl_multi_setopt(b.multi, CURLMOPT_MAXCONNECTS, (long)b.opt.concurrency + 4) !=
	        CURLM_OK ||
	    bench_flows_init(&b) != 0) {
		fprintf(stderr, "bench_acme: setting up %d flows failed\n", b.opt.concurrency);
		goto out;
	}
	if (b.eab_required && bench_load_eab(&b) != 0)
		goto out;

	/* 1. accounts, all flows at once */
	b.phase = BENCH_PHASE_ACCOUNTS;
	for (i = 0; i < b.opt.concurrency; i++)
		if (bench_start_account(&b, &b.flows[i]) != 0)
			goto out;
	deadline = bench_now() + BENCH_ACCOUNT_SECONDS;
	while (b.st.accounts < b.opt.concurrency) {
		bool gave_up = false;

		for (i = 0; i < b.opt.concurrency; i++)
			if (b.flows[i].stopped && b.flows[i].kid[0] == '\0')
				gave_up = true;
		if (gave_up || bench_now() > deadline) {
			fprintf(stderr, "bench_acme: %ld of %d accounts registered; giving up\n",
			        b.st.accounts, b.opt.concurrency);
			goto out;
		}
		if (bench_turn(&b, bench_now() + 0.1) != 0)
			goto out;
	}
	if (!b.opt.quiet)
		fprintf(stderr, "bench_acme: %s: %d accounts registered%s\n", b.opt.label,
		        b.opt.concurrency, b.eab_required ? " (with EAB)" : "");

	/* 2. issuances: warm-up, then the measured window, then drain */
	b.phase = b.opt.warmup > 0 ? BENCH_PHASE_WARMUP : BENCH_PHASE_MEASURE;
	t_start = bench_now();
	b.last_answer = t_start;
	if (b.phase == BENCH_PHASE_MEASURE) {
		bench_cpu_snapshot(&b.opt, &cpu0);
		self0 = bench_self_cpu_ms();
		t0 = bench_now();
	}
	for (i = 0; i < b.opt.concurrency; i++)
		if (bench_start_order(&b, &b.flows[i]) != 0)
			goto out;
	for (;;) {
		double now = bench_now(), until;

		if (b.phase == BENCH_PHASE_WARMUP && now >= t_start + b.opt.warmup) {
			bench_cpu_snapshot(&b.opt, &cpu0);
			self0 = bench_self_cpu_ms();
			t0 = bench_now();
			b.phase = BENCH_PHASE_MEASURE;
		} else if (b.phase == BENCH_PHASE_MEASURE && now >= t0 + b.opt.duration) {
			t1 = bench_now();
			self1 = bench_self_cpu_ms();
			bench_cpu_snapshot(&b.opt, &cpu1);
			b.phase = BENCH_PHASE_DRAIN;
		}
		if (b.phase == BENCH_PHASE_DRAIN &&
		    (b.in_flight == 0 || now > t1 + BENCH_DRAIN_SECONDS))
			break;
		switch (b.phase) {
		case BENCH_PHASE_WARMUP:
			until = t_start + b.opt.warmup;
			break;
		case BENCH_PHASE_MEASURE:
			until = t0 + b.opt.duration;
			break;
		default:
			until = t1 + BENCH_DRAIN_SECONDS;
			break;
		}
		if (bench_turn(&b, until) != 0)
			goto out;
	}
	if (b.in_flight > 0) {
		/* a stalled server: each unanswered request is a failed flow */
		fprintf(stderr,
		        "bench_acme: %s: %d requests still unanswered %.0f s after the end\n",
		        b.opt.label, b.in_flight, BENCH_DRAIN_SECONDS);
		b.st.errors += b.in_flight;
	}

	elapsed = t1 - t0;
	rate = elapsed > 0 ? (double)b.st.issued / elapsed : 0;
	if (b.opt.n_pids > 0 && cpu1.ticks >= cpu0.ticks)
		cpu_ms = (double)(cpu1.ticks - cpu0.ticks) * tick_ms;
	qsort(b.st.latency_ms, b.st.n_latency, sizeof(double), bench_cmp_double);
	{
		double p50 = bench_percentile(b.st.latency_ms, b.st.n_latency, 50);
		double p90 = bench_percentile(b.st.latency_ms, b.st.n_latency, 90);
		double p99 = bench_percentile(b.st.latency_ms, b.st.n_latency, 99);
		double max = b.st.n_latency ? b.st.latency_ms[b.st.n_latency - 1] : 0.0;
		double per = b.st.issued > 0 ? 1.0 / (double)b.st.issued : 0;

		if (!b.opt.quiet) {
			printf("%s, %d concurrent flows, %.2f s measured (after %.1f s warm-up)\n",
			       b.opt.label, b.opt.concurrency, elapsed, b.opt.warmup);
			printf(
			    "  issuances          %ld (%.1f/s), errors %ld (%ld during warm-up)\n",
			    b.st.issued, rate, b.st.errors, b.st.errors_outside);
			printf("  flow latency ms    p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", p50,
			       p90, p99, max);
			printf(
			    "  requests           %ld (%.2f per issuance; %ld polls, %ld badNonce "
			    "retries)\n",
			    b.st.requests, (double)b.st.requests * per, b.st.polls,
			    b.st.nonce_retries);
			printf("  mean ms by request");
			for (i = 0; i < BENCH_REQ_CERT + 2; i++)
				if (b.st.kind_count[i] > 0)
					printf("  %s %.2f (%ld)",
					       i <= BENCH_REQ_CERT ? bench_req_names[i]
					                           : "newNonce",
					       b.st.kind_ms[i] / (double)b.st.kind_count[i],
					       b.st.kind_count[i]);
			printf("\n");
			if (b.stalled_at > 0)
				printf(
				    "  STALLED            no answer after %.1f s into the window\n",
				    b.stalled_at - t0);
			if (b.opt.n_pids > 0)
				printf("  server CPU         %.0f ms (%d processes): %.3f ms per "
				       "issuance\n",
				       cpu_ms, cpu1.processes, cpu_ms * per);
			printf("  driver CPU         %.0f ms: %.3f ms per issuance\n",
			       self1 - self0, (self1 - self0) * per);
		}
		printf("RESULT label=%s concurrency=%d seconds=%.3f issued=%ld errors=%ld "
		       "rate=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f requests=%ld "
		       "req_per_issue=%.2f nonce_retries=%ld polls=%ld cpu_ms=%.0f "
		       "cpu_ms_per_issue=%.3f server_processes=%d driver_cpu_ms_per_issue=%.3f "
		       "stalled=%d stalled_at_s=%.1f\n",
		       b.opt.label, b.opt.concurrency, elapsed, b.st.issued, b.st.errors, rate, p50,
		       p90, p99, max, b.st.requests, (double)b.st.requests * per,
		       b.st.nonce_retries, b.st.polls, cpu_ms, cpu_ms * per, cpu1.processes,
		       (self1 - self0) * per, b.stalled_at > 0,
		       b.stalled_at > 0 ? b.stalled_at - t0 : -1.0);
		fflush(stdout);
	}
	rc = (b.st.errors > 0 || b.st.issued == 0) ? 1 : 0;
out:
	if (rc == 2)
		fprintf(stderr, "bench_acme: %s: failed\n", b.opt.label);
	bench_flows_free(&b);
	if (b.multi != NULL)
		curl_multi_cleanup(b.multi);
	EVP_MD_free(b.sha256);
	free(b.st.latency_ms);
	curl_global_cleanup();
	return rc;
}
