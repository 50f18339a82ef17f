/*
 * bench_enroll.c: load driver for enrolld's manual enrollment path.
 *
 * It pre-generates P-256 (or P-384 / RSA) keys and PKCS#10 requests for
 * names under a delegated domain, then keeps N enrollments in flight against
 * POST /api/v1/certificates with one libcurl multi handle (one thread, N
 * easy handles, each reusing its keep-alive TLS connection), for a duration
 * or a count. It reports issuances per second, latency percentiles and
 * errors, and, measured in the same process just before and just after the
 * load (the better of the two), the single-core signing rate of the issuing
 * CA's key type (an EVP sign loop of about one second) and the ratio of the two: how close the whole RA path
 * (HTTP, TLS, JSON, policy, SQL, signer round trip, commit) comes to the
 * bare cost of one signature on one core.
 *
 *   bench_enroll --url https://127.0.0.1:8443 --token TOKEN --cacert root.pem \
 *       --org 1 --profile 1 [--dept 2] [--domain example.test] \
 *       --concurrency 16 (--duration 10 | --count 5000) \
 *       [--key p256|p384|rsa2048] [--sign-key p256|p384|rsa2048|rsa3072] \
 *       [--term 90] [--pool N] [--quiet]
 *
 * The last output line is machine-readable for tests/bench/run_bench.sh:
 *   RESULT concurrency=16 requests=... issued=... errors=... seconds=...
 *          rate=... p50_ms=... p90_ms=... p99_ms=... max_ms=...
 *          signs_per_s=... ratio=... cpu_ms=...
 * cpu_ms is this driver's own CPU time (user + system) per issued
 * certificate during the load alone (key and CSR generation and the sign
 * loops excluded): what the client's TLS, HTTP and JSON cost the shared
 * machine.
 * A response counts as issued when it is HTTP 201; anything else (202 held,
 * 4xx, 5xx, transport failure) is an error and the first few are printed.
 * The program is the client only: it never starts or configures enrolld
 * (run_bench.sh does that).
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define BENCH_MAX_CONCURRENCY 1024
#define BENCH_ERRORS_SHOWN 5

struct bench_options {
	const char *url;	/* base URL, "https://127.0.0.1:8443" */
	const char *token;
	const char *cacert;
	int64_t org_id;
	int64_t dept_id;	/* 0: none */
	int64_t profile_id;
	const char *domain;
	int concurrency;
	double duration;	/* seconds; 0 when --count is used */
	long count;		/* requests; 0 when --duration is used */
	const char *key;	/* subject key type of the CSRs */
	const char *sign_key;	/* issuing CA key type for the sign loop */
	int term_days;
	long pool;		/* distinct CSRs to pre-generate */
	bool quiet;
};

/* One in-flight slot: an easy handle and the response it is collecting. */
struct bench_slot {
	CURL *easy;
	double started;		/* monotonic seconds */
	char *resp;		/* response body (first BENCH_RESP_MAX bytes) */
	size_t resp_len;
	bool busy;
};
#define BENCH_RESP_MAX 4096

struct bench_stats {
	double *latency_ms;	/* of issued requests; grows */
	size_t n_latency, cap_latency;
	long requests, issued, errors, transport_errors;
	long by_status[600];
	int errors_shown;
};

static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) this process has used so far. */
static double
bench_cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
bench_ssl_fail(const char *what)
{
	unsigned long e;
	char buf[256];

	fprintf(stderr, "bench_enroll: %s failed", what);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, ": %s", buf);
	}
	fputc('\n', stderr);
}

/* A new key of `type` ("p256", "p384", "p521", "rsa2048", ...); the caller
 * frees it with EVP_PKEY_free(). NULL on failure or unknown type. */
static EVP_PKEY *
bench_keygen(const char *type)
{
	if (strcmp(type, "p256") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (strcmp(type, "p384") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	if (strcmp(type, "p521") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	if (strncmp(type, "rsa", 3) == 0) {
		long bits = strtol(type + 3, NULL, 10);

		if (bits < 1024 || bits > 8192)
			return NULL;
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	}
	return NULL;
}

/* A PEM PKCS#10 request for `name` (CN and DNS SAN) signed with `key`.
 * Newly allocated; the caller frees. */
static char *
bench_csr_pem(EVP_PKEY *key, const char *name)
{
	X509_REQ *req = NULL;
	X509_NAME *subject = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *san = NULL;
	BIO *bio = NULL;
	char *pem = NULL, san_value[300];
	char *data;
	long len;

	if ((req = X509_REQ_new()) == NULL || (subject = X509_NAME_new()) == NULL ||
	    (exts = sk_X509_EXTENSION_new_null()) == NULL)
		goto out;
	if (!X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
	    (const unsigned char *)name, -1, -1, 0) ||
	    !X509_REQ_set_subject_name(req, subject) || !X509_REQ_set_pubkey(req, key))
		goto out;
	snprintf(san_value, sizeof(san_value), "DNS:%s", name);
	if ((san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san_value)) == NULL ||
	    !sk_X509_EXTENSION_push(exts, san))
		goto out;
	san = NULL; /* owned by exts now */
	if (!X509_REQ_add_extensions(req, exts) || !X509_REQ_sign(req, key, EVP_sha256()))
		goto out;
	if ((bio = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_X509_REQ(bio, req))
		goto out;
	len = BIO_get_mem_data(bio, &data);
	if ((pem = malloc((size_t)len + 1)) == NULL)
		goto out;
	memcpy(pem, data, (size_t)len);
	pem[len] = '\0';
out:
	if (pem == NULL)
		bench_ssl_fail("making a CSR");
	X509_EXTENSION_free(san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(subject);
	X509_REQ_free(req);
	BIO_free(bio);
	return pem;
}

/* Pre-generates opt->pool request bodies (JSON, newly allocated strings in
 * *bodies; the caller frees each and the array). Returns 0 or -1. */
static int
bench_make_bodies(const struct bench_options *opt, char ***bodies_out)
{
	char **bodies = NULL;
	char run_tag[9], name[256];
	unsigned char rnd[4];
	EVP_PKEY *key = NULL;
	char *csr = NULL;
	json_t *obj = NULL;
	long i;
	int rc = -1;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto out;
	snprintf(run_tag, sizeof(run_tag), "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	if ((bodies = calloc((size_t)opt->pool, sizeof(*bodies))) == NULL)
		goto out;
	for (i = 0; i < opt->pool; i++) {
		if ((key = bench_keygen(opt->key)) == NULL) {
			bench_ssl_fail("key generation");
			goto out;
		}
		snprintf(name, sizeof(name), "b%s-%ld.%s", run_tag, i, opt->domain);
		if ((csr = bench_csr_pem(key, name)) == NULL)
			goto out;
		obj = json_pack("{s:I, s:I, s:i, s:s}", "org_id", (json_int_t)opt->org_id,
		    "profile_id", (json_int_t)opt->profile_id, "term_days", opt->term_days,
		    "csr", csr);
		if (obj == NULL)
			goto out;
		if (opt->dept_id > 0 &&
		    json_object_set_new(obj, "dept_id", json_integer(opt->dept_id)) != 0)
			goto out;
		if ((bodies[i] = json_dumps(obj, JSON_COMPACT)) == NULL)
			goto out;
		json_decref(obj);
		obj = NULL;
		free(csr);
		csr = NULL;
		EVP_PKEY_free(key);
		key = NULL;
	}
	*bodies_out = bodies;
	bodies = NULL;
	rc = 0;
out:
	if (bodies != NULL) {
		for (i = 0; i < opt->pool; i++)
			free(bodies[i]);
		free(bodies);
	}
	json_decref(obj);
	free(csr);
	EVP_PKEY_free(key);
	return rc;
}

static size_t
bench_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct bench_slot *slot = userdata;
	size_t n = size * nmemb, room = BENCH_RESP_MAX - slot->resp_len;

	if (room > 0) {
		size_t take = n < room ? n : room;

		memcpy(slot->resp + slot->resp_len, data, take);
		slot->resp_len += take;
		slot->resp[slot->resp_len] = '\0';
	}
	return n;
}

static int
bench_record_latency(struct bench_stats *st, double ms)
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

static int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array; 0 when empty. */
static double
bench_percentile(const double *sorted, size_t n, double pct)
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

/* Signatures per second of one core with a key of `type`: EVP_DigestSign
 * (SHA-256) over a certificate-sized message for about one second. */
static double
bench_sign_rate(const char *type)
{
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char msg[512], sig[1024];
	size_t sig_len;
	double start, elapsed = 0;
	long n = 0;
	double rate = -1;

	memset(msg, 0x5a, sizeof(msg));
	if ((key = bench_keygen(type)) == NULL || (md = EVP_MD_CTX_new()) == NULL) {
		bench_ssl_fail("sign-loop setup");
		goto out;
	}
	start = bench_now();
	do {
		int i;

		for (i = 0; i < 16; i++) {
			sig_len = sizeof(sig);
			if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
			    EVP_DigestSign(md, sig, &sig_len, msg, sizeof(msg)) != 1) {
				bench_ssl_fail("EVP_DigestSign");
				goto out;
			}
			msg[n % sizeof(msg)] ^= sig[0];
			n++;
		}
		elapsed = bench_now() - start;
	} while (elapsed < 1.0);
	rate = (double)n / elapsed;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	return rate;
}

static void
bench_usage(FILE *f)
{
	fprintf(f,
	    "usage: bench_enroll --url URL --token TOKEN --cacert ROOT.pem --org ID\n"
	    "           --profile ID [--dept ID] [--domain example.test]\n"
	    "           --concurrency N (--duration SECONDS | --count N)\n"
	    "           [--key p256|p384|rsa2048] [--sign-key p256|p384|rsa2048|...]\n"
	    "           [--term DAYS] [--pool N] [--quiet]\n");
}

static int
bench_parse_args(int argc, char **argv, struct bench_options *opt)
{
	static const struct option longopts[] = {
		{"url", required_argument, NULL, 'u'},
		{"token", required_argument, NULL, 't'},
		{"cacert", required_argument, NULL, 'C'},
		{"org", required_argument, NULL, 'o'},
		{"dept", required_argument, NULL, 'D'},
		{"profile", required_argument, NULL, 'p'},
		{"domain", required_argument, NULL, 'd'},
		{"concurrency", required_argument, NULL, 'c'},
		{"duration", required_argument, NULL, 's'},
		{"count", required_argument, NULL, 'n'},
		{"key", required_argument, NULL, 'k'},
		{"sign-key", required_argument, NULL, 'K'},
		{"term", required_argument, NULL, 'T'},
		{"pool", required_argument, NULL, 'P'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	memset(opt, 0, sizeof(*opt));
	opt->domain = "example.test";
	opt->concurrency = 4;
	opt->key = "p256";
	opt->sign_key = "p256";
	opt->term_days = 90;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'u': opt->url = optarg; break;
		case 't': opt->token = optarg; break;
		case 'C': opt->cacert = optarg; break;
		case 'o': opt->org_id = strtoll(optarg, NULL, 10); break;
		case 'D': opt->dept_id = strtoll(optarg, NULL, 10); break;
		case 'p': opt->profile_id = strtoll(optarg, NULL, 10); break;
		case 'd': opt->domain = optarg; break;
		case 'c': opt->concurrency = atoi(optarg); break;
		case 's': opt->duration = strtod(optarg, NULL); break;
		case 'n': opt->count = strtol(optarg, NULL, 10); break;
		case 'k': opt->key = optarg; break;
		case 'K': opt->sign_key = optarg; break;
		case 'T': opt->term_days = atoi(optarg); break;
		case 'P': opt->pool = strtol(optarg, NULL, 10); break;
		case 'q': opt->quiet = true; break;
		case 'h': bench_usage(stdout); exit(0);
		default: bench_usage(stderr); return -1;
		}
	}
	if (opt->url == NULL || opt->token == NULL || opt->cacert == NULL ||
	    opt->org_id <= 0 || opt->profile_id <= 0) {
		fprintf(stderr, "bench_enroll: --url, --token, --cacert, --org and --profile are required\n");
		bench_usage(stderr);
		return -1;
	}
	if (opt->concurrency < 1 || opt->concurrency > BENCH_MAX_CONCURRENCY) {
		fprintf(stderr, "bench_enroll: --concurrency must be 1..%d\n", BENCH_MAX_CONCURRENCY);
		return -1;
	}
	if ((opt->duration > 0) == (opt->count > 0)) {
		fprintf(stderr, "bench_enroll: give exactly one of --duration and --count\n");
		return -1;
	}
	if (opt->pool <= 0) {
		/* Enough distinct requests that the same CSR is rarely in flight
		 * twice; re-sending one later is fine (a new certificate each time). */
		opt->pool = opt->count > 0 ? opt->count : 2000;
		if (opt->pool > 2000)
			opt->pool = 2000;
		if (opt->pool < opt->concurrency * 4)
			opt->pool = opt->concurrency * 4;
	}
	if (strncmp(opt->key, "rsa", 3) == 0 && opt->pool > 200 && opt->count == 0)
		opt->pool = 200; /* RSA key generation is slow; reuse more */
	return 0;
}

/* Sets up a slot's easy handle for the next request body. */
static int
bench_slot_prepare(struct bench_slot *slot, const char *endpoint, const char *cacert,
    struct curl_slist *headers, const char *body)
{
	slot->resp_len = 0;
	slot->resp[0] = '\0';
	if (curl_easy_setopt(slot->easy, CURLOPT_URL, endpoint) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_CAINFO, cacert) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_WRITEFUNCTION, bench_write_cb) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_WRITEDATA, slot) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_PRIVATE, slot) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_TIMEOUT, 60L) != CURLE_OK ||
	    curl_easy_setopt(slot->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) != CURLE_OK)
		return -1;
	return 0;
}

static void
bench_note_error(struct bench_stats *st, const char *fmt, long code, const char *body)
{
	if (st->errors_shown >= BENCH_ERRORS_SHOWN)
		return;
	st->errors_shown++;
	fprintf(stderr, "bench_enroll: error: ");
	fprintf(stderr, fmt, code);
	fprintf(stderr, " %.300s\n", body != NULL ? body : "");
}

int
main(int argc, char **argv)
{
	struct bench_options opt;
	struct bench_stats st;
	struct bench_slot *slots = NULL;
	struct curl_slist *headers = NULL;
	CURLM *multi = NULL;
	char **bodies = NULL;
	char endpoint[1024], auth[1024];
	double t0, t_gen, t_end, elapsed, rate, signs, signs_after, deadline, cpu0, cpu;
	long next = 0, in_flight = 0, i;
	bool done_sending = false;
	int rc = 2, still;

	memset(&st, 0, sizeof(st));
	if (bench_parse_args(argc, argv, &opt) != 0)
		return 2;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "bench_enroll: curl_global_init failed\n");
		return 2;
	}
	snprintf(endpoint, sizeof(endpoint), "%s/api/v1/certificates", opt.url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", opt.token);

	t_gen = bench_now();
	if (bench_make_bodies(&opt, &bodies) != 0)
		goto out;
	if (!opt.quiet)
		fprintf(stderr, "bench_enroll: %ld %s CSRs under %s generated in %.2f s\n",
		    opt.pool, opt.key, opt.domain, bench_now() - t_gen);

	/* "Expect:" off: bodies are small and evhttp gains nothing from 100-continue. */
	if ((headers = curl_slist_append(NULL, auth)) == NULL ||
	    (headers = curl_slist_append(headers, "Content-Type: application/json")) == NULL ||
	    (headers = curl_slist_append(headers, "Expect:")) == NULL)
		goto out;
	if ((multi = curl_multi_init()) == NULL ||
	    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)opt.concurrency) != CURLM_OK)
		goto out;
	if ((slots = calloc((size_t)opt.concurrency, sizeof(*slots))) == NULL)
		goto out;
	for (i = 0; i < opt.concurrency; i++) {
		if ((slots[i].easy = curl_easy_init()) == NULL ||
		    (slots[i].resp = malloc(BENCH_RESP_MAX + 1)) == NULL)
			goto out;
	}

	/* The signing rate is measured before and after the load, each alone on
	 * an otherwise idle driver; the better of the two is the figure (the
	 * machine's PostgreSQL may still be flushing right after a run). */
	signs = bench_sign_rate(opt.sign_key);

	cpu0 = bench_cpu_seconds();
	t0 = bench_now();
	deadline = opt.duration > 0 ? t0 + opt.duration : 0;
	for (;;) {
		CURLMsg *msg;
		int queued, completed;

		/* Fill free slots while there is work left. */
		if (!done_sending) {
			if ((opt.count > 0 && next >= opt.count) ||
			    (deadline > 0 && bench_now() >= deadline))
				done_sending = true;
		}
		for (i = 0; i < opt.concurrency && !done_sending; i++) {
			struct bench_slot *slot = &slots[i];

			if (slot->busy)
				continue;
			if (bench_slot_prepare(slot, endpoint, opt.cacert, headers,
			    bodies[next % opt.pool]) != 0 ||
			    curl_multi_add_handle(multi, slot->easy) != CURLM_OK) {
				fprintf(stderr, "bench_enroll: setting up a request failed\n");
				goto out;
			}
			slot->busy = true;
			slot->started = bench_now();
			in_flight++;
			next++;
			if (opt.count > 0 && next >= opt.count)
				done_sending = true;
		}
		if (done_sending && in_flight == 0)
			break;

		if (curl_multi_perform(multi, &still) != CURLM_OK)
			goto out;
		completed = 0;
		while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
			struct bench_slot *slot = NULL;
			long code = 0;
			double ms;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&slot);
			ms = (bench_now() - slot->started) * 1000.0;
			st.requests++;
			if (msg->data.result != CURLE_OK) {
				st.errors++;
				st.transport_errors++;
				bench_note_error(&st, "transport (curl %ld)", (long)msg->data.result,
				    curl_easy_strerror(msg->data.result));
			} else {
				curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &code);
				if (code >= 0 && code < 600)
					st.by_status[code]++;
				if (code == 201) {
					st.issued++;
					if (bench_record_latency(&st, ms) != 0)
						goto out;
				} else {
					st.errors++;
					bench_note_error(&st, "HTTP %ld", code, slot->resp);
				}
			}
			curl_multi_remove_handle(multi, slot->easy);
			slot->busy = false;
			in_flight--;
			completed++;
		}
		/* Refill at once when something finished; otherwise wait for I/O. */
		if (completed == 0 && curl_multi_poll(multi, NULL, 0, 100, NULL) != CURLM_OK)
			goto out;
	}
	t_end = bench_now();
	cpu = bench_cpu_seconds() - cpu0;
	elapsed = t_end - t0;

	qsort(st.latency_ms, st.n_latency, sizeof(double), bench_cmp_double);
	rate = elapsed > 0 ? (double)st.issued / elapsed : 0;
	signs_after = bench_sign_rate(opt.sign_key);
	if (signs_after > signs)
		signs = signs_after;

	if (!opt.quiet) {
		printf("concurrency        %d\n", opt.concurrency);
		printf("requests           %ld in %.2f s\n", st.requests, elapsed);
		printf("issued (201)       %ld\n", st.issued);
		printf("errors             %ld (transport %ld", st.errors, st.transport_errors);
		for (i = 0; i < 600; i++)
			if (st.by_status[i] > 0 && i != 201)
				printf(", HTTP %ld: %ld", i, st.by_status[i]);
		printf(")\n");
		printf("issuances/s        %.1f\n", rate);
		printf("latency ms         p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
		    bench_percentile(st.latency_ms, st.n_latency, 50),
		    bench_percentile(st.latency_ms, st.n_latency, 90),
		    bench_percentile(st.latency_ms, st.n_latency, 99),
		    st.n_latency ? st.latency_ms[st.n_latency - 1] : 0.0);
		printf("%s signs/s, 1 core %.0f\n", opt.sign_key, signs);
		printf("issuances / signs  %.3f\n", signs > 0 ? rate / signs : 0.0);
		printf("driver CPU         %.3f ms per issuance\n",
		    st.issued > 0 ? cpu * 1000.0 / (double)st.issued : 0.0);
	}
	printf("RESULT concurrency=%d requests=%ld issued=%ld errors=%ld seconds=%.3f "
	    "rate=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f "
	    "signs_per_s=%.0f ratio=%.4f cpu_ms=%.3f\n",
	    opt.concurrency, st.requests, st.issued, st.errors, elapsed, rate,
	    bench_percentile(st.latency_ms, st.n_latency, 50),
	    bench_percentile(st.latency_ms, st.n_latency, 90),
	    bench_percentile(st.latency_ms, st.n_latency, 99),
	    st.n_latency ? st.latency_ms[st.n_latency - 1] : 0.0,
	    signs, signs > 0 ? rate / signs : 0.0,
	    st.issued > 0 ? cpu * 1000.0 / (double)st.issued : 0.0);
	fflush(stdout);
	rc = st.errors > 0 ? 1 : 0;
out:
	if (rc == 2)
		fprintf(stderr, "bench_enroll: failed\n");
	if (slots != NULL) {
		for (i = 0; i < opt.concurrency; i++) {
			if (slots[i].easy != NULL) {
				if (slots[i].busy)
					curl_multi_remove_handle(multi, slots[i].easy);
				curl_easy_cleanup(slots[i].easy);
			}
			free(slots[i].resp);
		}
		free(slots);
	}
	if (multi != NULL)
		curl_multi_cleanup(multi);
	curl_slist_free_all(headers);
	if (bodies != NULL) {
		for (i = 0; i < opt.pool; i++)
			free(bodies[i]);
		free(bodies);
	}
	free(st.latency_ms);
	curl_global_cleanup();
	return rc;
}
