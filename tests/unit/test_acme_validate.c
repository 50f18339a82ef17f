/*
 * test_acme_validate.c: ACME challenge validation (core/acme_validate.c)
 * against real servers on loopback, and the validator against a real
 * PostgreSQL.
 *
 * The test starts, and stops before it exits:
 *   - pebble-challtestsrv (Debian package `pebble`) as the DNS server on
 *     free loopback ports (127.0.0.1 and ::1): every name resolves to
 *     127.0.0.1, TXT records and extra A records are set through its
 *     management API;
 *   - a DNS server of its own that truncates every UDP answer and answers
 *     over TCP (the fallback);
 *   - an HTTP responder (a thread per connection) on 127.0.0.1 and ::1 with
 *     routes for good and wrong bodies, redirects (relative, absolute, to a
 *     forbidden port or scheme, to 0.0.0.0, to https, a loop, a chain of
 *     exactly 10), oversized bodies and a server that never answers, plus a
 *     "trap" listener on another port that counts connections;
 *   - a TLS server presenting self-made acme-tls/1 certificates (good, no
 *     extension, non-critical, wrong digest, raw digest, two SANs, wrong
 *     SAN, IP SAN) or negotiating no ALPN; it also answers HTTP over TLS
 *     for the https redirect;
 *   - an embedded PostgreSQL cluster (pgsup) for acme_validator_process()
 *     and the validator threads.
 *
 * Refusals also check that nothing was contacted (request and connection
 * counters) or written (row states, audit rows). Nothing is skipped: without
 * pebble-challtestsrv the test fails. Prints "N passed, N failed".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "acme_validate.h"
#include "config.h"
#include "db.h"
#include "log.h"

static int passed, failed;

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (cond) {                                                                \
			passed++;                                                          \
		} else {                                                                   \
			failed++;                                                          \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
		}                                                                          \
	} while (0)

/* A check that failed prints its problem, to make a failure readable. */
#define CHECK_PROBLEM(ok, pr, want_type)                                                   \
	do {                                                                               \
		bool ok_ = (ok);                                                           \
		bool good_ = (want_type) == NULL ? ok_ :                                   \
		    (!ok_ && (pr).type != NULL && strcmp((pr).type, (want_type) == NULL ? "" : \
		    (const char *)(want_type)) == 0);                                      \
		if (good_) {                                                               \
			passed++;                                                          \
		} else {                                                                   \
			failed++;                                                          \
			fprintf(stderr, "FAIL %s:%d: got %s (%s: %s), want %s\n", __FILE__, \
			    __LINE__, ok_ ? "valid" : "invalid",                           \
			    (pr).type != NULL ? (pr).type : "-", (pr).detail,              \
			    (want_type) == NULL ? "valid" : (const char *)(want_type));    \
		}                                                                          \
	} while (0)

#define THUMB "dGh1bWJwcmludC1vZi10aGUtdGVzdC1hY2NvdW50LWtleQ"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A loopback port free for TCP and UDP right now. */
static int
free_port(void)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		socklen_t len = sizeof(sin);
		int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
		int port = -1;

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (t >= 0 && u >= 0 && bind(t, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
		    getsockname(t, (struct sockaddr *)&sin, &len) == 0 &&
		    bind(u, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			port = ntohs(sin.sin_port);
		if (t >= 0)
			close(t);
		if (u >= 0)
			close(u);
		if (port > 0)
			return port;
	}
	return -1;
}

/* A listening TCP socket on addr:port (port 0: any); returns fd, *port set. */
static int
listen_on(int family, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons((uint16_t)*port);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons((uint16_t)*port);
		len = sizeof(*sin6);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		close(fd);
		return -1;
	}
	*port = family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port) :
	    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/* --- pebble-challtestsrv ------------------------------------------------------- */

static pid_t cts_pid = -1;
static int dns_port, mgmt_port;

/* POSTs json to the management API; returns the HTTP status (0: failed). */
static long
cts_post(const char *path, const char *json)
{
	CURL *h = curl_easy_init();
	char url[128];
	long status = 0;
	FILE *sink = fopen("/dev/null", "w");

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", mgmt_port, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (sink != NULL)
		fclose(sink);
	return status;
}

static long
cts_set_txt(const char *host, const char *value)
{
	char json[512];

	snprintf(json, sizeof(json), "{\"host\":\"%s\",\"value\":\"%s\"}", host, value);
	return cts_post("/set-txt", json);
}

static int
cts_start(void)
{
	char dns[64], mgmt[32];
	double deadline;

	dns_port = free_port();
	mgmt_port = free_port();
	if (dns_port < 0 || mgmt_port < 0 || dns_port == mgmt_port)
		return -1;
	snprintf(dns, sizeof(dns), "127.0.0.1:%d,[::1]:%d", dns_port, dns_port);
	snprintf(mgmt, sizeof(mgmt), "127.0.0.1:%d", mgmt_port);
	cts_pid = fork();
	if (cts_pid < 0)
		return -1;
	if (cts_pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execlp("pebble-challtestsrv", "pebble-challtestsrv", "-dns01", dns, "-http01", "",
		    "-https01", "", "-tlsalpn01", "", "-management", mgmt, "-defaultIPv4",
		    "127.0.0.1", "-defaultIPv6", "", (char *)NULL);
		_exit(127);
	}
	deadline = now_ms() + 8000;
	while (now_ms() < deadline) {
		int status;

		if (waitpid(cts_pid, &status, WNOHANG) == cts_pid) {
			fprintf(stderr, "pebble-challtestsrv exited (status 0x%x): is package "
			    "pebble installed?\n", status);
			cts_pid = -1;
			return -1;
		}
		if (cts_post("/clear-txt", "{\"host\":\"_acme-challenge.ready.test.\"}") == 200)
			return 0;
		sleep_ms(50);
	}
	return -1;
}

static void
cts_stop(void)
{
	if (cts_pid > 0) {
		kill(cts_pid, SIGTERM);
		waitpid(cts_pid, NULL, 0);
		cts_pid = -1;
	}
}

/* --- the HTTP responder ------------------------------------------------------------ */

#define MAX_CONN_THREADS 512

static int http_port, trap_port, tls_port;
static int http_fd4 = -1, http_fd6 = -1, trap_fd = -1;
static pthread_t http_thread;
static atomic_bool http_stop;
static atomic_int http_requests;	/* requests parsed */
static atomic_int trap_connections;	/* connections to the trap port */
static pthread_t conn_threads[MAX_CONN_THREADS];
static int n_conn_threads;
static char last_host[256];		/* Host header of the last request */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;

static void
send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

static void
respond(int fd, int status, const char *extra_headers, const char *body)
{
	char head[1024];

	snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%sConnection: "
	    "close\r\n\r\n", status, strlen(body), extra_headers);
	send_all(fd, head, strlen(head));
	send_all(fd, body, strlen(body));
}

static void
redirect(int fd, int status, const char *location)
{
	char headers[600];

	snprintf(headers, sizeof(headers), "Location: %s\r\n", location);
	respond(fd, status, headers, "");
}

/* Answers one request for `path` on fd. */
static void
route(int fd, const char *path)
{
	static const char prefix[] = "/.well-known/acme-challenge/";
	char body[256], location[512];

	if (strncmp(path, "/final/", 7) == 0) {
		snprintf(body, sizeof(body), "%.100s." THUMB, path + 7);
		respond(fd, 200, "", body);
		return;
	}
	if (strncmp(path, "/loop/", 6) == 0) {
		snprintf(location, sizeof(location), "/loop/%d", atoi(path + 6) + 1);
		redirect(fd, 302, location);
		return;
	}
	if (strncmp(path, "/chain/", 7) == 0) {
		static const int codes[4] = { 301, 307, 308, 303 };
		int n = atoi(path + 7);

		if (n >= 10) {
			respond(fd, 200, "", "chain." THUMB "\n");
			return;
		}
		snprintf(location, sizeof(location), "http://example.test:%d/chain/%d", http_port,
		    n + 1);
		redirect(fd, codes[n % 4], location);
		return;
	}
	if (strncmp(path, prefix, strlen(prefix)) != 0) {
		respond(fd, 404, "", "not here");
		return;
	}
	path += strlen(prefix);
	if (strcmp(path, "good") == 0) {
		respond(fd, 200, "", "good." THUMB " \r\n\t\n");	/* trailing blanks trimmed */
	} else if (strcmp(path, "wrong") == 0) {
		respond(fd, 200, "", "wrong.c29tZW9uZS1lbHNlcw");
	} else if (strcmp(path, "prefix") == 0) {
		respond(fd, 200, "", "prefix." THUMB "x");
	} else if (strcmp(path, "missing") == 0) {
		respond(fd, 404, "", "no such challenge");
	} else if (strcmp(path, "relredir") == 0) {
		redirect(fd, 302, "/final/relredir");
	} else if (strcmp(path, "absredir") == 0) {
		snprintf(location, sizeof(location), "http://Other.Test:%d/final/absredir",
		    http_port);
		redirect(fd, 301, location);
	} else if (strcmp(path, "portredir") == 0) {
		snprintf(location, sizeof(location), "http://example.test:%d/final/portredir",
		    trap_port);
		redirect(fd, 302, location);
	} else if (strcmp(path, "ftpredir") == 0) {
		redirect(fd, 302, "ftp://example.test/final/ftpredir");
	} else if (strcmp(path, "zeroredir") == 0) {
		snprintf(location, sizeof(location), "http://zero.test:%d/final/zeroredir",
		    http_port);
		redirect(fd, 302, location);
	} else if (strcmp(path, "zerolitredir") == 0) {
		snprintf(location, sizeof(location), "http://0.0.0.0:%d/final/zerolitredir",
		    http_port);
		redirect(fd, 302, location);
	} else if (strcmp(path, "httpsredir") == 0) {
		snprintf(location, sizeof(location), "https://example.test:%d/final/httpsredir",
		    tls_port);
		redirect(fd, 302, location);
	} else if (strcmp(path, "loop") == 0) {
		redirect(fd, 302, "/loop/1");
	} else if (strcmp(path, "chain") == 0) {
		redirect(fd, 302, "/chain/1");
	} else if (strcmp(path, "nolocation") == 0) {
		respond(fd, 302, "", "");
	} else if (strcmp(path, "big") == 0) {
		/* Declared length over the cap: refused from the headers. */
		static char big[6001];

		memset(big, 'x', sizeof(big) - 1);
		memcpy(big, "big." THUMB, strlen("big." THUMB));
		respond(fd, 200, "", big);
	} else if (strcmp(path, "bigstream") == 0) {
		/* No length: refused while reading. */
		char chunk[4096];
		int i;

		memset(chunk, 'y', sizeof(chunk));
		send_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 38);
		for (i = 0; i < 64 && !atomic_load(&http_stop); i++)
			send_all(fd, chunk, sizeof(chunk));
	} else if (strcmp(path, "slow") == 0) {
		/* Never answers; gives up after 4 s or at the end of the test. */
		for (int i = 0; i < 40 && !atomic_load(&http_stop); i++)
			sleep_ms(100);
	} else {
		respond(fd, 404, "", "unknown token");
	}
}

static void *
http_conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[8192], path[1024];
	size_t len = 0;
	struct timeval tv = { 3, 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (len < sizeof(req) - 1) {
		ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);

		if (n <= 0)
			break;
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	req[len] = '\0';
	if (sscanf(req, "GET %1023s HTTP/1.1", path) == 1) {
		const char *host = strcasestr(req, "\r\nHost: ");

		atomic_fetch_add(&http_requests, 1);
		pthread_mutex_lock(&last_lock);
		if (host != NULL)
			sscanf(host + 8, "%255[^\r]", last_host);
		pthread_mutex_unlock(&last_lock);
		route(fd, path);
	}
	close(fd);
	return NULL;
}

static void *
http_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&http_stop)) {
		struct pollfd pfd[3] = {
			{ .fd = http_fd4, .events = POLLIN },
			{ .fd = http_fd6, .events = POLLIN },
			{ .fd = trap_fd, .events = POLLIN },
		};
		int i;

		if (poll(pfd, 3, 100) <= 0)
			continue;
		for (i = 0; i < 3; i++) {
			int fd;

			if (!(pfd[i].revents & POLLIN))
				continue;
			fd = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			if (i == 2) {
				atomic_fetch_add(&trap_connections, 1);
				close(fd);
				continue;
			}
			if (n_conn_threads >= MAX_CONN_THREADS ||
			    pthread_create(&conn_threads[n_conn_threads], NULL, http_conn_main,
			    (void *)(intptr_t)fd) != 0) {
				close(fd);
				continue;
			}
			n_conn_threads++;
		}
	}
	return NULL;
}

static int
http_start(void)
{
	/* The same port on 127.0.0.1 and ::1 (for the IPv6 ip identifier). */
	for (int attempt = 0; attempt < 20; attempt++) {
		http_port = 0;
		http_fd4 = listen_on(AF_INET, &http_port);
		if (http_fd4 < 0)
			return -1;
		http_fd6 = listen_on(AF_INET6, &http_port);
		if (http_fd6 >= 0)
			break;
		close(http_fd4);
		http_fd4 = -1;
	}
	trap_port = 0;
	trap_fd = listen_on(AF_INET, &trap_port);
	if (http_fd4 < 0 || http_fd6 < 0 || trap_fd < 0)
		return -1;
	return pthread_create(&http_thread, NULL, http_main, NULL) == 0 ? 0 : -1;
}

static void
http_stop_all(void)
{
	atomic_store(&http_stop, true);
	pthread_join(http_thread, NULL);
	for (int i = 0; i < n_conn_threads; i++)
		pthread_join(conn_threads[i], NULL);
	close(http_fd4);
	close(http_fd6);
	close(trap_fd);
}

/* --- the TLS server (tls-alpn-01, and https for the redirect) -------------------------- */

enum ext_mode {
	EXT_CRITICAL,	  /* as RFC 8737 wants */
	EXT_NONE,	  /* no acmeIdentifier extension */
	EXT_NONCRITICAL,  /* present but not critical */
	EXT_RAW,	  /* the 32 bytes without the OCTET STRING wrapper */
};

static EVP_PKEY *tls_key;
static int tls_fd = -1;
static pthread_t tls_thread;
static atomic_bool tls_stop;
static atomic_int tls_connections;
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *tls_ctx;	/* the variant being served; guarded by tls_lock */
static bool tls_offer_alpn;	/* select acme-tls/1 when offered */
static char tls_last_sni[256];

static void
sha256_text(const char *text, unsigned char out[32])
{
	unsigned int len = 32;

	EVP_Digest(text, strlen(text), out, &len, EVP_sha256(), NULL);
}

/* A self-signed certificate with SANs (dNSNames, or one iPAddress when ip
 * is given) and the acmeIdentifier extension as `mode` says. */
static X509 *
make_cert(const char *const *dns_names, int n_dns, const unsigned char *ip, size_t ip_len,
    enum ext_mode mode, const unsigned char digest[32])
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	int i;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"acme test",
	    -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, tls_key);
	for (i = 0; i < n_dns; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();

		ASN1_STRING_set(s, dns_names[i], -1);
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		sk_GENERAL_NAME_push(gens, g);
	}
	if (ip != NULL) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();

		ASN1_OCTET_STRING_set(s, ip, (int)ip_len);
		GENERAL_NAME_set0_value(g, GEN_IPADD, s);
		sk_GENERAL_NAME_push(gens, g);
	}
	X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
	GENERAL_NAMES_free(gens);
	if (mode != EXT_NONE) {
		ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
		ASN1_OCTET_STRING *inner = ASN1_OCTET_STRING_new();
		ASN1_OCTET_STRING *value = ASN1_OCTET_STRING_new();
		unsigned char *der = NULL;
		int der_len;
		X509_EXTENSION *ext;

		ASN1_OCTET_STRING_set(inner, digest, 32);
		if (mode == EXT_RAW) {
			ASN1_OCTET_STRING_set(value, digest, 32);
		} else {
			der_len = i2d_ASN1_OCTET_STRING(inner, &der);
			ASN1_OCTET_STRING_set(value, der, der_len);
			OPENSSL_free(der);
		}
		ext = X509_EXTENSION_create_by_OBJ(NULL, obj, mode != EXT_NONCRITICAL, value);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
		ASN1_OBJECT_free(obj);
		ASN1_OCTET_STRING_free(inner);
		ASN1_OCTET_STRING_free(value);
	}
	X509_sign(x, tls_key, EVP_sha256());
	return x;
}

/* Records the SNI during the handshake (before the client can finish). */
static int
tls_servername(SSL *ssl, int *alert, void *arg)
{
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)alert;
	(void)arg;
	pthread_mutex_lock(&tls_lock);
	snprintf(tls_last_sni, sizeof(tls_last_sni), "%s", sni != NULL ? sni : "");
	pthread_mutex_unlock(&tls_lock);
	return SSL_TLSEXT_ERR_OK;
}

static int
tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned int i = 0;

	(void)ssl;
	(void)arg;
	/* acme-tls/1 when offered (and this variant agrees), else http/1.1 when
	 * offered (curl, for the https redirect), else nothing. */
	while (i < inlen) {
		unsigned int l = in[i];

		if (i + 1 + l > inlen)
			break;
		if (l == 10 && memcmp(in + i + 1, "acme-tls/1", 10) == 0) {
			if (!tls_offer_alpn)
				return SSL_TLSEXT_ERR_NOACK;
			*out = in + i + 1;
			*outlen = (unsigned char)l;
			return SSL_TLSEXT_ERR_OK;
		}
		if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)l;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + l;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* Serves `cert` from now on; select acme-tls/1 only when offer_alpn. */
static void
tls_serve(X509 *cert, bool offer_alpn)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_use_certificate(ctx, cert);
	SSL_CTX_use_PrivateKey(ctx, tls_key);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
	SSL_CTX_set_tlsext_servername_callback(ctx, tls_servername);
	X509_free(cert);
	pthread_mutex_lock(&tls_lock);
	SSL_CTX_free(tls_ctx);
	tls_ctx = ctx;
	tls_offer_alpn = offer_alpn;
	tls_last_sni[0] = '\0';
	pthread_mutex_unlock(&tls_lock);
}

static void *
tls_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&tls_stop)) {
		struct pollfd pfd = { .fd = tls_fd, .events = POLLIN };
		struct timeval tv = { 2, 0 };
		const unsigned char *alpn = NULL;
		unsigned int alpn_len = 0;
		SSL *ssl;
		int fd;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		fd = accept4(tls_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		atomic_fetch_add(&tls_connections, 1);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		pthread_mutex_lock(&tls_lock);
		ssl = SSL_new(tls_ctx);
		pthread_mutex_unlock(&tls_lock);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1) {
			SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
			if (alpn_len == 8) {
				/* HTTP over TLS: /final/<token> */
				char req[4096], path[128], resp[1024], body[256];
				int n = SSL_read(ssl, req, sizeof(req) - 1);

				if (n > 0) {
					req[n] = '\0';
					if (sscanf(req, "GET /final/%100s HTTP/1.1", path) == 1) {
						atomic_fetch_add(&http_requests, 1);
						snprintf(body, sizeof(body), "%s." THUMB, path);
						snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n"
						    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
						    strlen(body), body);
						SSL_write(ssl, resp, (int)strlen(resp));
					}
				}
			}
			SSL_shutdown(ssl);
		}
		SSL_free(ssl);
		close(fd);
	}
	return NULL;
}

static int
tls_start(void)
{
	EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
	const char *names[1] = { "example.test" };
	unsigned char digest[32] = { 0 };

	if (kctx == NULL || EVP_PKEY_keygen_init(kctx) != 1 ||
	    EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kctx, NID_X9_62_prime256v1) != 1 ||
	    EVP_PKEY_keygen(kctx, &tls_key) != 1)
		return -1;
	EVP_PKEY_CTX_free(kctx);
	tls_serve(make_cert(names, 1, NULL, 0, EXT_NONE, digest), false);
	tls_port = 0;
	tls_fd = listen_on(AF_INET, &tls_port);
	if (tls_fd < 0)
		return -1;
	return pthread_create(&tls_thread, NULL, tls_main, NULL) == 0 ? 0 : -1;
}

static void
tls_stop_all(void)
{
	atomic_store(&tls_stop, true);
	pthread_join(tls_thread, NULL);
	close(tls_fd);
	SSL_CTX_free(tls_ctx);
	EVP_PKEY_free(tls_key);
}

/* --- a DNS server that truncates over UDP (for the TCP fallback) --------------------- */

static int tc_udp = -1, tc_tcp = -1, tc_port;
static pthread_t tc_thread;
static atomic_bool tc_stop;
static atomic_int tc_udp_queries, tc_tcp_queries;
static char tc_value[64];	/* the TXT value served over TCP */

/* Length of header + question of a query, or 0. */
static size_t
tc_question_end(const unsigned char *q, size_t n)
{
	size_t i = 12;

	while (i < n && q[i] != 0)
		i += 1 + q[i];
	return i + 5 <= n ? i + 5 : 0;
}

static void *
tc_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&tc_stop)) {
		struct pollfd pfd[2] = { { .fd = tc_udp, .events = POLLIN },
					 { .fd = tc_tcp, .events = POLLIN } };
		unsigned char q[1024], r[1200];
		struct sockaddr_storage from;
		socklen_t from_len = sizeof(from);
		ssize_t n;
		size_t end;

		if (poll(pfd, 2, 100) <= 0)
			continue;
		if (pfd[0].revents & POLLIN) {
			n = recvfrom(tc_udp, q, sizeof(q), 0, (struct sockaddr *)&from, &from_len);
			if (n > 12 && (end = tc_question_end(q, (size_t)n)) > 0) {
				memcpy(r, q, end);
				r[2] = 0x80 | 0x02 | (q[2] & 0x01);	/* QR, TC, RD */
				r[3] = 0x80;				/* RA */
				memset(r + 6, 0, 6);			/* no records */
				atomic_fetch_add(&tc_udp_queries, 1);
				sendto(tc_udp, r, end, 0, (struct sockaddr *)&from, from_len);
			}
		}
		if (pfd[1].revents & POLLIN) {
			int fd = accept4(tc_tcp, NULL, NULL, SOCK_CLOEXEC);
			struct timeval tv = { 2, 0 };
			unsigned char len[2];
			size_t qlen, vlen = strlen(tc_value), rlen;

			if (fd < 0)
				continue;
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			if (recv(fd, len, 2, MSG_WAITALL) == 2 &&
			    (qlen = ((size_t)len[0] << 8) | len[1]) <= sizeof(q) &&
			    recv(fd, q, qlen, MSG_WAITALL) == (ssize_t)qlen &&
			    (end = tc_question_end(q, qlen)) > 0) {
				memcpy(r + 2, q, end);
				r[2 + 2] = 0x80 | (q[2] & 0x01);
				r[2 + 3] = 0x80;
				memset(r + 2 + 6, 0, 6);
				r[2 + 7] = 1;				/* ANCOUNT */
				rlen = end;
				/* answer: pointer to the question name, TXT, IN, TTL 60 */
				memcpy(r + 2 + rlen, "\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c", 10);
				rlen += 10;
				r[2 + rlen++] = (unsigned char)((vlen + 1) >> 8);
				r[2 + rlen++] = (unsigned char)(vlen + 1);
				r[2 + rlen++] = (unsigned char)vlen;
				memcpy(r + 2 + rlen, tc_value, vlen);
				rlen += vlen;
				r[0] = (unsigned char)(rlen >> 8);
				r[1] = (unsigned char)rlen;
				atomic_fetch_add(&tc_tcp_queries, 1);
				send_all(fd, (const char *)r, rlen + 2);
			}
			close(fd);
		}
	}
	return NULL;
}

static int
tc_start(void)
{
	for (int attempt = 0; attempt < 20 && tc_tcp < 0; attempt++) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		socklen_t len = sizeof(sin);

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (tc_udp >= 0)
			close(tc_udp);
		tc_udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (tc_udp < 0 || bind(tc_udp, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
		    getsockname(tc_udp, (struct sockaddr *)&sin, &len) != 0)
			return -1;
		tc_port = ntohs(sin.sin_port);
		tc_tcp = listen_on(AF_INET, &tc_port);
	}
	if (tc_tcp < 0)
		return -1;
	return pthread_create(&tc_thread, NULL, tc_main, NULL) == 0 ? 0 : -1;
}

static void
tc_stop_all(void)
{
	atomic_store(&tc_stop, true);
	pthread_join(tc_thread, NULL);
	close(tc_udp);
	close(tc_tcp);
}

/* --- pure functions ---------------------------------------------------------------------- */

static void
params_init(struct acme_validate_params *p, bool allow_private, int timeout)
{
	memset(p, 0, sizeof(*p));
	p->http_port = http_port;
	p->tls_port = tls_port;
	snprintf(p->dns_resolver, sizeof(p->dns_resolver), "127.0.0.1:%d", dns_port);
	p->allow_private = allow_private;
	p->timeout_seconds = timeout;
}

static struct acme_validate_challenge
chall_of(enum acme_validate_type type, enum acme_validate_id_type id_type, const char *value,
    const char *token)
{
	struct acme_validate_challenge c;

	memset(&c, 0, sizeof(c));
	c.type = type;
	c.id_type = id_type;
	c.id_value = value;
	c.token = token;
	c.thumbprint = THUMB;
	return c;
}

static bool
addr_allowed_text(const char *text, bool allow_private)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return true;	/* makes the CHECK fail visibly */
	return acme_validate_addr_allowed((struct sockaddr *)&ss, allow_private);
}

static void
test_addr_rule(void)
{
	static const struct {
		const char *addr;
		bool off;	/* allowed with allow_private off */
		bool on;	/* allowed with allow_private on */
	} cases[] = {
		{ "8.8.8.8", true, true },
		{ "192.0.2.1", true, true },
		{ "172.32.0.1", true, true },
		{ "100.128.0.1", true, true },
		{ "127.0.0.1", false, true },
		{ "127.255.0.9", false, true },
		{ "10.1.2.3", false, true },
		{ "172.16.0.1", false, true },
		{ "172.31.255.255", false, true },
		{ "192.168.1.1", false, true },
		{ "169.254.169.254", false, true },	/* cloud metadata */
		{ "100.64.0.1", false, true },
		{ "100.127.255.255", false, true },
		{ "0.0.0.0", false, false },
		{ "0.1.2.3", false, false },
		{ "224.0.0.1", false, false },
		{ "239.255.255.250", false, false },
		{ "240.0.0.1", false, false },
		{ "255.255.255.255", false, false },
		{ "2001:4860:4860::8888", true, true },
		{ "::1", false, true },
		{ "::", false, false },
		{ "fe80::1", false, true },
		{ "febf::1", false, true },
		{ "fec0::1", false, true },
		{ "fc00::1", false, true },
		{ "fd12:3456::1", false, true },
		{ "ff02::1", false, false },
		{ "::ffff:127.0.0.1", false, true },
		{ "::ffff:10.0.0.1", false, true },
		{ "::ffff:8.8.8.8", true, true },
		{ "::ffff:0.0.0.0", false, false },
		{ "::127.0.0.1", false, false },
		{ "64:ff9b::a00:1", false, true },	/* NAT64 of 10.0.0.1 */
		{ "64:ff9b::808:808", true, true },
	};
	struct sockaddr_un_like { sa_family_t family; char path[20]; } other = { AF_UNIX, "x" };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool off = addr_allowed_text(cases[i].addr, false);
		bool on = addr_allowed_text(cases[i].addr, true);

		if (off != cases[i].off || on != cases[i].on) {
			failed++;
			fprintf(stderr, "FAIL addr rule %s: off %d on %d, want %d %d\n",
			    cases[i].addr, off, on, cases[i].off, cases[i].on);
		} else {
			passed++;
		}
	}
	CHECK(!acme_validate_addr_allowed((struct sockaddr *)&other, true));
	CHECK(!acme_validate_addr_allowed(NULL, true));
}

static void
test_parse_resolver(void)
{
	struct sockaddr_storage ss;
	socklen_t len;

	CHECK(acme_validate_parse_resolver("127.0.0.1:8053", &ss, &len) == 0 &&
	    ss.ss_family == AF_INET && ntohs(((struct sockaddr_in *)&ss)->sin_port) == 8053 &&
	    len == sizeof(struct sockaddr_in));
	CHECK(acme_validate_parse_resolver("9.9.9.9", &ss, &len) == 0 &&
	    ntohs(((struct sockaddr_in *)&ss)->sin_port) == 53);
	CHECK(acme_validate_parse_resolver("[::1]:5353", &ss, &len) == 0 &&
	    ss.ss_family == AF_INET6 && ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == 5353);
	CHECK(acme_validate_parse_resolver("[2001:db8::53]", &ss, &len) == 0 &&
	    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == 53);
	CHECK(acme_validate_parse_resolver("", &ss, &len) == -1);
	CHECK(acme_validate_parse_resolver("dns.example", &ss, &len) == -1);
	CHECK(acme_validate_parse_resolver("127.0.0.1:", &ss, &len) == -1);
	CHECK(acme_validate_parse_resolver("127.0.0.1:65536", &ss, &len) == -1);
	CHECK(acme_validate_parse_resolver("127.0.0.1:53x", &ss, &len) == -1);
	CHECK(acme_validate_parse_resolver("::1", &ss, &len) == -1);
	CHECK(acme_validate_parse_resolver("[::1", &ss, &len) == -1);
	CHECK(acme_validate_parse_resolver("[::1]x", &ss, &len) == -1);
	CHECK(acme_validate_parse_resolver("[127.0.0.1]:53", &ss, &len) == -1);
}

static void
test_names_and_json(void)
{
	struct acme_validate_problem pr = { ACME_VALIDATE_PROBLEM_DNS, "no \"TXT\" here" };
	char *json;

	CHECK(strcmp(acme_validate_type_name(ACME_VALIDATE_TLSALPN01), "tls-alpn-01") == 0);
	CHECK(acme_validate_type_parse("http-01") == ACME_VALIDATE_HTTP01);
	CHECK(acme_validate_type_parse("dns-01") == ACME_VALIDATE_DNS01);
	CHECK(acme_validate_type_parse("tls-sni-01") == -1);
	CHECK(acme_validate_type_name(ACME_VALIDATE__MAX) == NULL);
	json = acme_validate_problem_json(&pr);
	CHECK(json != NULL && strcmp(json, "{\"type\":\"urn:ietf:params:acme:error:dns\","
	    "\"detail\":\"no \\\"TXT\\\" here\",\"status\":400}") == 0);
	free(json);
}

/* An http-01 check with the request counter around it: *requests is how
 * many requests the responders saw during the check. */
static bool
http01(const struct acme_validate_params *p, enum acme_validate_id_type id_type,
    const char *value, const char *token, struct acme_validate_problem *pr, int *requests)
{
	struct acme_validate_challenge c = chall_of(ACME_VALIDATE_HTTP01, id_type, value, token);
	int before = atomic_load(&http_requests);
	bool ok = acme_validate_http01(p, &c, pr);

	/* Handler threads may count a moment after the client is done. */
	sleep_ms(20);
	if (requests != NULL)
		*requests = atomic_load(&http_requests) - before;
	return ok;
}

static void
test_http01(void)
{
	struct acme_validate_params p, strict;
	struct acme_validate_problem pr;
	struct acme_validate_challenge c;
	int n, trap_before;
	double t;
	bool ok;

	params_init(&p, true, 5);
	params_init(&strict, false, 5);

	/* Valid: a name through the DNS, trailing whitespace trimmed. */
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "good", &pr, &n);
	CHECK_PROBLEM(ok, pr, NULL);
	CHECK(n == 1);
	pthread_mutex_lock(&last_lock);
	{
		char want[64];

		snprintf(want, sizeof(want), "example.test:%d", http_port);
		CHECK(strcmp(last_host, want) == 0);
	}
	pthread_mutex_unlock(&last_lock);
	/* ip identifiers: the address itself, IPv4 and IPv6. */
	ok = http01(&p, ACME_VALIDATE_ID_IP, "127.0.0.1", "good", &pr, &n);
	CHECK_PROBLEM(ok, pr, NULL);
	ok = http01(&p, ACME_VALIDATE_ID_IP, "::1", "good", &pr, &n);
	CHECK_PROBLEM(ok, pr, NULL);
	pthread_mutex_lock(&last_lock);
	{
		char want[64];

		snprintf(want, sizeof(want), "[::1]:%d", http_port);
		CHECK(strcmp(last_host, want) == 0);
	}
	pthread_mutex_unlock(&last_lock);

	/* Wrong answers. */
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "wrong", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	CHECK(strstr(pr.detail, "wrong.c29tZW9uZS1lbHNlcw") != NULL);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "prefix", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "missing", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_UNAUTHORIZED);
	CHECK(strstr(pr.detail, "404") != NULL);

	/* Redirects that are followed. */
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "relredir", &pr, &n);
	CHECK_PROBLEM(ok, pr, NULL);
	CHECK(n == 2);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "absredir", &pr, &n);
	CHECK_PROBLEM(ok, pr, NULL);
	CHECK(n == 2);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "httpsredir", &pr, &n);
	CHECK_PROBLEM(ok, pr, NULL);
	CHECK(n == 2);	/* the second one over TLS */
	/* Exactly 10 redirects: still fine. */
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "chain", &pr, &n);
	CHECK_PROBLEM(ok, pr, NULL);
	CHECK(n == 11);

	/* Redirects that are not. */
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "loop", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	CHECK(strstr(pr.detail, "too many redirects") != NULL);
	CHECK(n == 11);	/* the first request and 10 redirects, no 12th */
	trap_before = atomic_load(&trap_connections);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "portredir", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	CHECK(strstr(pr.detail, "not allowed") != NULL);
	CHECK(n == 1);
	CHECK(atomic_load(&trap_connections) == trap_before);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "ftpredir", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	CHECK(n == 1);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "nolocation", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	/* zero.test resolves to 0.0.0.0, which reaches this host if connected
	 * to: refused even with private addresses allowed. */
	CHECK(cts_post("/add-a", "{\"host\":\"zero.test.\",\"addresses\":[\"0.0.0.0\"]}") == 200);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "zeroredir", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	CHECK(strstr(pr.detail, "0.0.0.0") != NULL);
	CHECK(n == 1);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "zerolitredir", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	CHECK(n == 1);

	/* Bodies over the cap: declared, and streamed without a length. */
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "big", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	CHECK(strstr(pr.detail, "larger than") != NULL);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "bigstream", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	CHECK(strstr(pr.detail, "larger than") != NULL);

	/* Private addresses off: refused before any connection. */
	ok = http01(&strict, ACME_VALIDATE_ID_DNS, "example.test", "good", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	CHECK(strstr(pr.detail, "127.0.0.1") != NULL);
	CHECK(n == 0);
	ok = http01(&strict, ACME_VALIDATE_ID_IP, "127.0.0.1", "good", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	CHECK(n == 0);
	ok = http01(&strict, ACME_VALIDATE_ID_IP, "::1", "good", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	CHECK(n == 0);

	/* A server that never answers: the timeout holds. */
	p.timeout_seconds = 1;
	t = now_ms();
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "slow", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	CHECK(now_ms() - t < 2500);
	p.timeout_seconds = 5;

	/* A resolver that does not answer (nothing on that port). */
	{
		struct acme_validate_params nodns = p;

		snprintf(nodns.dns_resolver, sizeof(nodns.dns_resolver), "127.0.0.1:%d",
		    free_port());
		nodns.timeout_seconds = 2;
		t = now_ms();
		ok = http01(&nodns, ACME_VALIDATE_ID_DNS, "example.test", "good", &pr, &n);
		CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_DNS);
		CHECK(n == 0);
		CHECK(now_ms() - t < 3000);
	}

	/* Unusable challenges: nothing is contacted. */
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test", "../../etc", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_MALFORMED);
	CHECK(n == 0);
	ok = http01(&p, ACME_VALIDATE_ID_DNS, "example.test/x?", "good", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_MALFORMED);
	CHECK(n == 0);
	ok = http01(&p, ACME_VALIDATE_ID_IP, "example.test", "good", &pr, &n);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_MALFORMED);
	c = chall_of(ACME_VALIDATE_HTTP01, ACME_VALIDATE_ID_DNS, "example.test", "good");
	c.wildcard = true;
	n = atomic_load(&http_requests);
	ok = acme_validate_http01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_MALFORMED);
	CHECK(atomic_load(&http_requests) == n);

	/* Cancellation: a check in progress gives up at once. */
	{
		atomic_bool cancel = true;
		struct acme_validate_params cp = p;

		cp.cancel = &cancel;
		t = now_ms();
		ok = http01(&cp, ACME_VALIDATE_ID_DNS, "example.test", "slow", &pr, &n);
		CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
		CHECK(now_ms() - t < 500);
	}
}

static void
test_dns01(void)
{
	struct acme_validate_params p;
	struct acme_validate_problem pr;
	struct acme_validate_challenge c;
	unsigned char digest[32];
	char expected[64];
	int n;
	bool ok;

	params_init(&p, false, 5);	/* dns-01 contacts only the resolver */
	sha256_text("tok1." THUMB, digest);
	{
		int len = EVP_EncodeBlock((unsigned char *)expected, digest, 32);

		while (len > 0 && expected[len - 1] == '=')
			expected[--len] = '\0';
		for (int i = 0; i < len; i++)
			expected[i] = expected[i] == '+' ? '-' : expected[i] == '/' ? '_' : expected[i];
	}

	CHECK(cts_set_txt("_acme-challenge.dns.test.", expected) == 200);
	c = chall_of(ACME_VALIDATE_DNS01, ACME_VALIDATE_ID_DNS, "dns.test", "tok1");
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, NULL);
	/* Case does not matter in the name. */
	c.id_value = "DNS.Test";
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, NULL);

	/* Another token: the same record is wrong for it. */
	c = chall_of(ACME_VALIDATE_DNS01, ACME_VALIDATE_ID_DNS, "dns.test", "tok2");
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	CHECK(strstr(pr.detail, expected) != NULL);

	/* Several records, one right: valid. */
	CHECK(cts_set_txt("_acme-challenge.multi.test.", "not-it") == 200);
	CHECK(cts_set_txt("_acme-challenge.multi.test.", expected) == 200);
	c = chall_of(ACME_VALIDATE_DNS01, ACME_VALIDATE_ID_DNS, "multi.test", "tok1");
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, NULL);

	/* Only wrong records. */
	CHECK(cts_set_txt("_acme-challenge.bad.test.", "not-it") == 200);
	c = chall_of(ACME_VALIDATE_DNS01, ACME_VALIDATE_ID_DNS, "bad.test", "tok1");
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);

	/* No record at all. */
	c = chall_of(ACME_VALIDATE_DNS01, ACME_VALIDATE_ID_DNS, "none.test", "tok1");
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_UNAUTHORIZED);
	CHECK(strstr(pr.detail, "_acme-challenge.none.test") != NULL);

	/* Wildcard: the record of the base name, given either way. */
	CHECK(cts_set_txt("_acme-challenge.wild.test.", expected) == 200);
	c = chall_of(ACME_VALIDATE_DNS01, ACME_VALIDATE_ID_DNS, "wild.test", "tok1");
	c.wildcard = true;
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, NULL);
	c.id_value = "*.wild.test";
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, NULL);
	/* ...and not the record of a name below it. */
	CHECK(cts_set_txt("_acme-challenge.sub.wild2.test.", expected) == 200);
	c.id_value = "wild2.test";
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_UNAUTHORIZED);

	/* The resolver given by an IPv6 address. */
	{
		struct acme_validate_params v6 = p;

		snprintf(v6.dns_resolver, sizeof(v6.dns_resolver), "[::1]:%d", dns_port);
		c = chall_of(ACME_VALIDATE_DNS01, ACME_VALIDATE_ID_DNS, "dns.test", "tok1");
		ok = acme_validate_dns01(&v6, &c, &pr);
		CHECK_PROBLEM(ok, pr, NULL);
	}

	/* A truncated UDP answer: asked again over TCP. */
	{
		struct acme_validate_params tcp = p;

		snprintf(tc_value, sizeof(tc_value), "%s", expected);
		snprintf(tcp.dns_resolver, sizeof(tcp.dns_resolver), "127.0.0.1:%d", tc_port);
		c = chall_of(ACME_VALIDATE_DNS01, ACME_VALIDATE_ID_DNS, "tc.test", "tok1");
		ok = acme_validate_dns01(&tcp, &c, &pr);
		CHECK_PROBLEM(ok, pr, NULL);
		CHECK(atomic_load(&tc_udp_queries) == 1 && atomic_load(&tc_tcp_queries) == 1);
		c.token = "tok2";
		ok = acme_validate_dns01(&tcp, &c, &pr);
		CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
		CHECK(atomic_load(&tc_tcp_queries) == 2);
	}

	/* dns-01 cannot prove an ip identifier (RFC 8738). */
	c = chall_of(ACME_VALIDATE_DNS01, ACME_VALIDATE_ID_IP, "192.0.2.1", "tok1");
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_MALFORMED);

	/* A resolver that is not there. */
	n = free_port();
	snprintf(p.dns_resolver, sizeof(p.dns_resolver), "127.0.0.1:%d", n);
	p.timeout_seconds = 1;
	c = chall_of(ACME_VALIDATE_DNS01, ACME_VALIDATE_ID_DNS, "dns.test", "tok1");
	ok = acme_validate_dns01(&p, &c, &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_DNS);
}

/* One tls-alpn-01 check of `value` against the certificate being served. */
static bool
tlsalpn(const struct acme_validate_params *p, enum acme_validate_id_type id_type,
    const char *value, struct acme_validate_problem *pr)
{
	struct acme_validate_challenge c = chall_of(ACME_VALIDATE_TLSALPN01, id_type, value, "tls1");

	return acme_validate_tlsalpn01(p, &c, pr);
}

static void
test_tlsalpn01(void)
{
	struct acme_validate_params p, strict;
	struct acme_validate_problem pr;
	unsigned char digest[32], other[32], ip4[4] = { 127, 0, 0, 1 }, ip6[16] = { 0 };
	const char *one[1] = { "example.test" };
	const char *two[2] = { "example.test", "www.example.test" };
	const char *wrong[1] = { "other.test" };
	int before;
	bool ok;

	params_init(&p, true, 5);
	params_init(&strict, false, 5);
	sha256_text("tls1." THUMB, digest);
	sha256_text("tls2." THUMB, other);
	ip6[15] = 1;

	tls_serve(make_cert(one, 1, NULL, 0, EXT_CRITICAL, digest), true);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_DNS, "example.test", &pr);
	CHECK_PROBLEM(ok, pr, NULL);
	pthread_mutex_lock(&tls_lock);
	CHECK(strcmp(tls_last_sni, "example.test") == 0);
	pthread_mutex_unlock(&tls_lock);

	/* Private addresses off: not even a connection. */
	before = atomic_load(&tls_connections);
	ok = tlsalpn(&strict, ACME_VALIDATE_ID_DNS, "example.test", &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	sleep_ms(50);
	CHECK(atomic_load(&tls_connections) == before);

	tls_serve(make_cert(one, 1, NULL, 0, EXT_NONE, digest), true);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_DNS, "example.test", &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	CHECK(strstr(pr.detail, "no acmeIdentifier") != NULL);

	tls_serve(make_cert(one, 1, NULL, 0, EXT_NONCRITICAL, digest), true);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_DNS, "example.test", &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	CHECK(strstr(pr.detail, "not critical") != NULL);

	tls_serve(make_cert(one, 1, NULL, 0, EXT_CRITICAL, other), true);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_DNS, "example.test", &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	CHECK(strstr(pr.detail, "SHA-256") != NULL);

	tls_serve(make_cert(one, 1, NULL, 0, EXT_RAW, digest), true);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_DNS, "example.test", &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	CHECK(strstr(pr.detail, "OCTET STRING") != NULL);

	tls_serve(make_cert(two, 2, NULL, 0, EXT_CRITICAL, digest), true);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_DNS, "example.test", &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	CHECK(strstr(pr.detail, "exactly") != NULL);

	tls_serve(make_cert(wrong, 1, NULL, 0, EXT_CRITICAL, digest), true);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_DNS, "example.test", &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);

	/* The right certificate, but acme-tls/1 not negotiated. */
	tls_serve(make_cert(one, 1, NULL, 0, EXT_CRITICAL, digest), false);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_DNS, "example.test", &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_TLS);
	CHECK(strstr(pr.detail, "acme-tls/1") != NULL);

	/* ip identifier (RFC 8738): iPAddress SAN, reverse-mapping SNI. */
	tls_serve(make_cert(NULL, 0, ip4, 4, EXT_CRITICAL, digest), true);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_IP, "127.0.0.1", &pr);
	CHECK_PROBLEM(ok, pr, NULL);
	pthread_mutex_lock(&tls_lock);
	CHECK(strcmp(tls_last_sni, "1.0.0.127.in-addr.arpa") == 0);
	pthread_mutex_unlock(&tls_lock);
	/* ...and a dNSName does not prove the address. */
	tls_serve(make_cert(one, 1, NULL, 0, EXT_CRITICAL, digest), true);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_IP, "127.0.0.1", &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);
	/* ...nor another address. */
	tls_serve(make_cert(NULL, 0, ip6, 16, EXT_CRITICAL, digest), true);
	ok = tlsalpn(&p, ACME_VALIDATE_ID_IP, "127.0.0.1", &pr);
	CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_INCORRECT);

	/* Nothing listening: connection problem. */
	{
		struct acme_validate_params closed = p;

		closed.tls_port = free_port();
		ok = tlsalpn(&closed, ACME_VALIDATE_ID_DNS, "example.test", &pr);
		CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_CONNECTION);
	}
	/* A server that hangs up in the handshake: TLS problem. */
	{
		struct acme_validate_params hangup = p;

		hangup.tls_port = trap_port;
		ok = tlsalpn(&hangup, ACME_VALIDATE_ID_DNS, "example.test", &pr);
		CHECK_PROBLEM(ok, pr, ACME_VALIDATE_PROBLEM_TLS);
	}
}

/* --- the validator against PostgreSQL ------------------------------------------------------ */

static char state_dir[PATH_MAX];
static const char *run_user;
static char account_id[24], profile_id[24];

/* Runs sql with params and returns its single value (newly allocated; the
 * caller frees), or NULL. */
static char *
value(struct db *db, const char *sql, int n, const char *const *params)
{
	return db_value(db, "test", sql, n, params);
}

/* Same, into a fixed buffer; "" on error. */
static const char *
value_buf(struct db *db, char *buf, size_t len, const char *sql, int n, const char *const *params)
{
	char *v = value(db, sql, n, params);

	snprintf(buf, len, "%s", v != NULL ? v : "");
	free(v);
	return buf;
}

static long
count_of(struct db *db, const char *sql)
{
	char buf[32];

	value_buf(db, buf, sizeof(buf), sql, 0, NULL);
	return buf[0] != '\0' ? strtol(buf, NULL, 10) : -1;
}

static bool
exec_ok(struct db *db, const char *sql, int n, const char *const *params)
{
	PGresult *res = db_exec(db, "test", sql, n, params);

	PQclear(res);
	return res != NULL;
}

/* An order for account `account` (or the default one); returns its id. */
static void
make_order(struct db *db, const char *account, char *id, size_t len)
{
	const char *p[2] = { account != NULL ? account : account_id, profile_id };

	value_buf(db, id, len,
	    "INSERT INTO acme_orders (public_id, account_id, identifiers, profile_id, term_days,"
	    " expires_at) VALUES (md5(random()::text), $1, '[]', $2, 90,"
	    " now() + interval '1 day') RETURNING id",
	    2, p);
}

/* An authz of order with one challenge; returns the challenge id (and the
 * authz id in authz when not NULL). expires: SQL interval from now. */
static int64_t
make_challenge(struct db *db, const char *order, const char *id_type, const char *id_value,
    bool wildcard, const char *type, const char *token, const char *status, const char *expires,
    char *authz, size_t authz_len)
{
	char aid[24], cid[24];
	const char *pa[5] = { order, id_type, id_value, wildcard ? "t" : "f", expires };
	const char *pc[4] = { aid, type, token, status };

	value_buf(db, aid, sizeof(aid),
	    "INSERT INTO acme_authzs (public_id, order_id, account_id, id_type, id_value,"
	    " wildcard, expires_at) SELECT md5(random()::text), o.id, o.account_id, $2, $3,"
	    " $4::boolean, now() + $5::interval FROM acme_orders o WHERE o.id = $1 RETURNING id",
	    5, pa);
	value_buf(db, cid, sizeof(cid),
	    "INSERT INTO acme_challenges (public_id, authz_id, type, token, status)"
	    " VALUES (md5(random()::text), $1, $2, $3, $4) RETURNING id", 4, pc);
	if (authz != NULL)
		snprintf(authz, authz_len, "%s", aid);
	return cid[0] != '\0' ? strtoll(cid, NULL, 10) : -1;
}

/* "status" of table row id. */
static const char *
status_of(struct db *db, const char *table, int64_t id, char *buf, size_t len)
{
	char sql[128], idt[24];
	const char *p[1] = { idt };

	snprintf(idt, sizeof(idt), "%" PRId64, id);
	snprintf(sql, sizeof(sql), "SELECT status FROM %s WHERE id = $1", table);
	return value_buf(db, buf, len, sql, 1, p);
}

static const char *
order_status(struct db *db, const char *order, char *buf, size_t len)
{
	return status_of(db, "acme_orders", strtoll(order, NULL, 10), buf, len);
}

static int
make_state_dir(void)
{
	char tmpl[] = "/tmp/enrolld-test-validate-XXXXXX";
	struct passwd *pw;

	if (mkdtemp(tmpl) == NULL)
		return -1;
	snprintf(state_dir, sizeof(state_dir), "%s/state", tmpl);
	if (mkdir(state_dir, 0700) != 0)
		return -1;
	if (getuid() == 0) {
		run_user = "enrolld";
		pw = getpwnam(run_user);
		if (pw == NULL) {
			fprintf(stderr, "no user %s\n", run_user);
			return -1;
		}
		if (chown(tmpl, pw->pw_uid, pw->pw_gid) != 0 ||
		    chown(state_dir, pw->pw_uid, pw->pw_gid) != 0)
			return -1;
	}
	return 0;
}

static void
remove_state_dir(void)
{
	char cmd[PATH_MAX + 32];
	char *slash = strrchr(state_dir, '/');

	if (slash == NULL || strncmp(state_dir, "/tmp/enrolld-test-validate-", 27) != 0)
		return;
	*slash = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", state_dir);
}

static int
fixtures(struct db *db)
{
	char org[24], endpoint[24];
	const char *p[3];

	value_buf(db, org, sizeof(org),
	    "INSERT INTO organizations (name) VALUES ('Validate Org') RETURNING id", 0, NULL);
	value_buf(db, profile_id, sizeof(profile_id),
	    "INSERT INTO profiles (name, cert_type, terms_days, key_types)"
	    " VALUES ('acme-tls', 'ssl', '{90}', '{p256}') RETURNING id", 0, NULL);
	p[0] = org;
	p[1] = profile_id;
	value_buf(db, endpoint, sizeof(endpoint),
	    "INSERT INTO endpoints (protocol, name, org_id, default_profile_id, profile_ids)"
	    " VALUES ('acme', 'acme1', $1, $2, ARRAY[$2::bigint]) RETURNING id", 2, p);
	p[0] = endpoint;
	p[1] = org;
	value_buf(db, account_id, sizeof(account_id),
	    "INSERT INTO acme_accounts (endpoint_id, key_thumbprint, jwk, org_id)"
	    " VALUES ($1, '" THUMB "', '{}', $2) RETURNING id", 2, p);
	return org[0] != '\0' && profile_id[0] != '\0' && endpoint[0] != '\0' &&
	    account_id[0] != '\0' ? 0 : -1;
}

/* acme_validator_process(): one challenge at a time on our connection. */
static void
test_process(struct db *db)
{
	struct acme_validate_params p;
	char order[24], a1[24], a2[24], buf[256], idt[24];
	const char *prm[1] = { idt };
	int64_t c1, c2, c3, c4, c5;
	long audits;
	int before;

	params_init(&p, true, 5);

	/* Two authorizations: the order becomes ready after the second. */
	make_order(db, NULL, order, sizeof(order));
	c1 = make_challenge(db, order, "dns", "example.test", false, "http-01", "good",
	    "processing", "1 day", a1, sizeof(a1));
	c2 = make_challenge(db, order, "dns", "dns.test", false, "dns-01", "tok1", "processing",
	    "1 day", a2, sizeof(a2));
	CHECK(c1 > 0 && c2 > 0);
	audits = count_of(db, "SELECT count(*) FROM audit_log");

	CHECK(acme_validator_process(db, &p, c1) == 1);
	CHECK(strcmp(status_of(db, "acme_challenges", c1, buf, sizeof(buf)), "valid") == 0);
	snprintf(idt, sizeof(idt), "%" PRId64, c1);
	CHECK(strcmp(value_buf(db, buf, sizeof(buf), "SELECT (validated_at IS NOT NULL AND"
	    " error IS NULL)::text FROM acme_challenges WHERE id = $1", 1, prm), "true") == 0);
	CHECK(strcmp(status_of(db, "acme_authzs", strtoll(a1, NULL, 10), buf, sizeof(buf)),
	    "valid") == 0);
	CHECK(strcmp(order_status(db, order, buf, sizeof(buf)), "pending") == 0);

	CHECK(acme_validator_process(db, &p, c2) == 1);	/* TXT set by test_dns01 */
	CHECK(strcmp(status_of(db, "acme_authzs", strtoll(a2, NULL, 10), buf, sizeof(buf)),
	    "valid") == 0);
	CHECK(strcmp(order_status(db, order, buf, sizeof(buf)), "ready") == 0);
	CHECK(count_of(db, "SELECT count(*) FROM audit_log") == audits + 2);
	snprintf(idt, sizeof(idt), "%" PRId64, c2);
	CHECK(strcmp(value_buf(db, buf, sizeof(buf), "SELECT outcome || ' ' || (details->>"
	    "'challenge_type') FROM audit_log WHERE object_type = 'acme_challenge' AND"
	    " object_id = $1", 1, prm), "ok dns-01") == 0);

	/* Done once: a second run finds nothing to do and writes nothing. */
	before = atomic_load(&http_requests);
	CHECK(acme_validator_process(db, &p, c1) == 0);
	CHECK(atomic_load(&http_requests) == before);
	CHECK(count_of(db, "SELECT count(*) FROM audit_log") == audits + 2);
	CHECK(acme_validator_process(db, &p, 999999) == 0);

	/* A wrong answer: challenge, authz and order invalid, with the problem. */
	make_order(db, NULL, order, sizeof(order));
	c3 = make_challenge(db, order, "dns", "example.test", false, "http-01", "wrong",
	    "processing", "1 day", a1, sizeof(a1));
	CHECK(acme_validator_process(db, &p, c3) == 1);
	snprintf(idt, sizeof(idt), "%" PRId64, c3);
	CHECK(strcmp(value_buf(db, buf, sizeof(buf), "SELECT status || ' ' || (error->>'type')"
	    " || ' ' || (validated_at IS NULL)::text FROM acme_challenges WHERE id = $1", 1, prm),
	    "invalid urn:ietf:params:acme:error:incorrectResponse true") == 0);
	CHECK(strcmp(status_of(db, "acme_authzs", strtoll(a1, NULL, 10), buf, sizeof(buf)),
	    "invalid") == 0);
	prm[0] = order;
	CHECK(strcmp(value_buf(db, buf, sizeof(buf), "SELECT status || ' ' || (error->>'type')"
	    " FROM acme_orders WHERE id = $1", 1, prm),
	    "invalid urn:ietf:params:acme:error:incorrectResponse") == 0);
	prm[0] = idt;
	CHECK(count_of(db, "SELECT count(*) FROM audit_log WHERE outcome = 'denied' AND"
	    " reason = 'urn:ietf:params:acme:error:incorrectResponse'") == 1);

	/* Not 'processing' (the door has not asked): nothing happens. */
	make_order(db, NULL, order, sizeof(order));
	c4 = make_challenge(db, order, "dns", "example.test", false, "http-01", "good",
	    "pending", "1 day", a1, sizeof(a1));
	audits = count_of(db, "SELECT count(*) FROM audit_log");
	before = atomic_load(&http_requests);
	CHECK(acme_validator_process(db, &p, c4) == 0);
	CHECK(strcmp(status_of(db, "acme_challenges", c4, buf, sizeof(buf)), "pending") == 0);
	CHECK(strcmp(status_of(db, "acme_authzs", strtoll(a1, NULL, 10), buf, sizeof(buf)),
	    "pending") == 0);
	CHECK(atomic_load(&http_requests) == before);
	CHECK(count_of(db, "SELECT count(*) FROM audit_log") == audits);

	/* An expired authorization: no request; authz expired, order invalid. */
	make_order(db, NULL, order, sizeof(order));
	c5 = make_challenge(db, order, "dns", "example.test", false, "http-01", "good",
	    "processing", "-1 minute", a1, sizeof(a1));
	CHECK(acme_validator_process(db, &p, c5) == 1);
	CHECK(atomic_load(&http_requests) == before);
	CHECK(strcmp(status_of(db, "acme_challenges", c5, buf, sizeof(buf)), "invalid") == 0);
	CHECK(strcmp(status_of(db, "acme_authzs", strtoll(a1, NULL, 10), buf, sizeof(buf)),
	    "expired") == 0);
	CHECK(strcmp(order_status(db, order, buf, sizeof(buf)), "invalid") == 0);

	/* A deactivated account: refused without a request. */
	{
		char acct[24], ep[24];
		const char *pp[1] = { account_id };
		int64_t c6;

		value_buf(db, ep, sizeof(ep), "SELECT endpoint_id FROM acme_accounts WHERE id = $1",
		    1, pp);
		pp[0] = ep;
		value_buf(db, acct, sizeof(acct), "INSERT INTO acme_accounts (endpoint_id,"
		    " key_thumbprint, jwk, status) VALUES ($1, 'other-thumb', '{}', 'deactivated')"
		    " RETURNING id", 1, pp);
		make_order(db, acct, order, sizeof(order));
		c6 = make_challenge(db, order, "dns", "example.test", false, "http-01", "good",
		    "processing", "1 day", a1, sizeof(a1));
		CHECK(acme_validator_process(db, &p, c6) == 1);
		CHECK(atomic_load(&http_requests) == before);
		snprintf(idt, sizeof(idt), "%" PRId64, c6);
		prm[0] = idt;
		CHECK(strcmp(value_buf(db, buf, sizeof(buf), "SELECT status || ' ' ||"
		    " (error->>'type') FROM acme_challenges WHERE id = $1", 1, prm),
		    "invalid urn:ietf:params:acme:error:unauthorized") == 0);
		CHECK(strcmp(order_status(db, order, buf, sizeof(buf)), "invalid") == 0);
	}

	/* An authorization another challenge already settled: this challenge
	 * fails, the authorization and the order keep their status. */
	{
		int64_t c7, c8;
		char auth[24];
		const char *pp[3];

		make_order(db, NULL, order, sizeof(order));
		c7 = make_challenge(db, order, "dns", "example.test", false, "http-01", "good",
		    "processing", "1 day", auth, sizeof(auth));
		snprintf(idt, sizeof(idt), "%" PRId64, c7);
		pp[0] = auth;
		pp[1] = "tls-alpn-01";
		pp[2] = "tls1";
		value_buf(db, buf, sizeof(buf), "INSERT INTO acme_challenges (public_id, authz_id,"
		    " type, token, status) VALUES (md5(random()::text), $1, $2, $3, 'processing')"
		    " RETURNING id", 3, pp);
		c8 = strtoll(buf, NULL, 10);
		CHECK(acme_validator_process(db, &p, c7) == 1);
		CHECK(strcmp(order_status(db, order, buf, sizeof(buf)), "ready") == 0);
		CHECK(acme_validator_process(db, &p, c8) == 1);
		CHECK(strcmp(status_of(db, "acme_challenges", c8, buf, sizeof(buf)), "invalid") == 0);
		CHECK(strcmp(status_of(db, "acme_authzs", strtoll(auth, NULL, 10), buf, sizeof(buf)),
		    "valid") == 0);
		CHECK(strcmp(order_status(db, order, buf, sizeof(buf)), "ready") == 0);
	}
}

/* Waits until the challenge's status is `want` (at most ms). */
static bool
wait_status(struct db *db, int64_t challenge, const char *want, long ms)
{
	char buf[32];
	double deadline = now_ms() + ms;

	while (now_ms() < deadline) {
		if (strcmp(status_of(db, "acme_challenges", challenge, buf, sizeof(buf)), want) == 0)
			return true;
		sleep_ms(20);
	}
	return false;
}

/* The threads: pick-up of leftovers, submit, concurrency, stop. */
static void
test_validator(struct db *db, const char *conninfo)
{
	struct enrolld_config *cfg = malloc(sizeof(*cfg));
	char order[24], order2[24], buf[32], a[24];
	int64_t left, c1, c2, c3, slow;
	double t;

	if (cfg == NULL) {
		CHECK(cfg != NULL);
		return;
	}
	config_defaults(cfg);
	cfg->validation_http_port = http_port;
	cfg->validation_tls_port = tls_port;
	snprintf(cfg->validation_dns_resolver, sizeof(cfg->validation_dns_resolver),
	    "127.0.0.1:%d", dns_port);
	cfg->validation_allow_private = true;
	cfg->validation_timeout = 4;
	cfg->validation_workers = 2;

	/* Submitting with no validator running is harmless. */
	acme_validator_submit(1);

	/* Left 'processing' by a previous run: found at start, no submit. */
	make_order(db, NULL, order, sizeof(order));
	left = make_challenge(db, order, "dns", "example.test", false, "http-01", "relredir",
	    "processing", "1 day", a, sizeof(a));
	CHECK(acme_validator_start(cfg, conninfo) == 0);
	CHECK(acme_validator_start(cfg, conninfo) == -1);	/* only one */
	CHECK(wait_status(db, left, "valid", 5000));
	CHECK(strcmp(order_status(db, order, buf, sizeof(buf)), "ready") == 0);

	/* Two authorizations of one order on two threads at once: whichever
	 * finishes last must see the other and make the order ready. Run it a
	 * few times to give the race its chance. */
	{
		const char *names[1] = { "other.test" };
		unsigned char digest[32];

		sha256_text("tls1." THUMB, digest);
		tls_serve(make_cert(names, 1, NULL, 0, EXT_CRITICAL, digest), true);
	}
	for (int round = 0; round < 5; round++) {
		make_order(db, NULL, order2, sizeof(order2));
		c1 = make_challenge(db, order2, "dns", "example.test", false, "http-01", "good",
		    "processing", "1 day", NULL, 0);
		c2 = make_challenge(db, order2, "dns", "other.test", false, "tls-alpn-01", "tls1",
		    "processing", "1 day", NULL, 0);
		acme_validator_submit(c1);
		acme_validator_submit(c2);
		acme_validator_submit(c1);	/* a duplicate is ignored */
		CHECK(wait_status(db, c1, "valid", 5000) && wait_status(db, c2, "valid", 5000));
		sleep_ms(50);
		CHECK(strcmp(order_status(db, order2, buf, sizeof(buf)), "ready") == 0);
	}

	/* Both valid concurrently: dns-01 and http-01 on one order. */
	for (int round = 0; round < 5; round++) {
		make_order(db, NULL, order2, sizeof(order2));
		c1 = make_challenge(db, order2, "dns", "example.test", false, "http-01", "good",
		    "processing", "1 day", NULL, 0);
		c3 = make_challenge(db, order2, "dns", "dns.test", false, "dns-01", "tok1",
		    "processing", "1 day", NULL, 0);
		acme_validator_submit(c1);
		acme_validator_submit(c3);
		CHECK(wait_status(db, c1, "valid", 5000) && wait_status(db, c3, "valid", 5000));
		sleep_ms(50);
		CHECK(strcmp(order_status(db, order2, buf, sizeof(buf)), "ready") == 0);
	}
	CHECK(count_of(db, "SELECT count(*) FROM acme_challenges WHERE status = 'processing'") == 0);

	/* Stop while a check hangs: cancelled at once, left 'processing'. */
	make_order(db, NULL, order, sizeof(order));
	slow = make_challenge(db, order, "dns", "example.test", false, "http-01", "slow",
	    "processing", "1 day", NULL, 0);
	acme_validator_submit(slow);
	sleep_ms(300);
	t = now_ms();
	acme_validator_stop();
	CHECK(now_ms() - t < 1000);
	CHECK(strcmp(status_of(db, "acme_challenges", slow, buf, sizeof(buf)), "processing") == 0);
	acme_validator_stop();	/* twice is fine */

	/* The next start picks it up (and it fails: the server never answers). */
	cfg->validation_timeout = 1;
	CHECK(acme_validator_start(cfg, conninfo) == 0);
	CHECK(wait_status(db, slow, "invalid", 5000));
	acme_validator_stop();
	free(cfg);
}

static void
test_database(void)
{
	struct pgsup *pg = NULL;
	struct db *db = NULL;
	char conninfo[1024];
	double t0 = now_ms();

	if (make_state_dir() != 0) {
		CHECK(!"make_state_dir");
		return;
	}
	CHECK(pgsup_start(state_dir, run_user, NULL, &pg, conninfo, sizeof(conninfo)) == 0);
	if (pg == NULL)
		goto out;
	fprintf(stderr, "  cluster up after %.0f ms\n", now_ms() - t0);
	db = db_new(conninfo);
	CHECK(db != NULL && db_ensure(db) == 0 && db_migrate(db) == 0);
	if (db != NULL && fixtures(db) == 0) {
		t0 = now_ms();
		test_process(db);
		fprintf(stderr, "  acme_validator_process cases: %.0f ms\n", now_ms() - t0);
		t0 = now_ms();
		test_validator(db, conninfo);
		fprintf(stderr, "  validator thread cases: %.0f ms\n", now_ms() - t0);
	} else {
		CHECK(!"database fixtures");
	}
	CHECK(exec_ok(db, "SELECT 1", 0, NULL));
out:
	db_close(db);
	if (pg != NULL)
		pgsup_stop(pg);
	if (failed == 0)
		remove_state_dir();
	else
		fprintf(stderr, "state left in %s\n", state_dir);
}

int
main(void)
{
	double t0 = now_ms();

	log_init(getenv("TEST_VERBOSE") != NULL ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (cts_start() != 0) {
		fprintf(stderr, "cannot start pebble-challtestsrv (apt-get install pebble)\n");
		failed++;
		goto out;
	}
	if (http_start() != 0 || tls_start() != 0 || tc_start() != 0) {
		fprintf(stderr, "cannot start the test servers\n");
		failed++;
		goto out;
	}
	test_addr_rule();
	test_parse_resolver();
	test_names_and_json();
	test_http01();
	test_dns01();
	test_tlsalpn01();
	fprintf(stderr, "  network checks done after %.0f ms\n", now_ms() - t0);
	test_database();
out:
	if (http_fd4 >= 0)
		http_stop_all();
	if (tls_fd >= 0)
		tls_stop_all();
	if (tc_tcp >= 0)
		tc_stop_all();
	cts_stop();
	curl_global_cleanup();
	fprintf(stderr, "  total %.0f ms\n", now_ms() - t0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
