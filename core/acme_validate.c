/*
 * acme_validate.c: ACME challenge validation (RFC 8555 §8, RFC 8737, RFC 8738)
 * and the validator threads that run it (see acme_validate.h).
 *
 * Why it looks the way it does:
 *
 * - Every outbound byte goes to an address we resolved and checked
 *   ourselves. Host names are resolved here (our own small DNS client when
 *   validation_dns_resolver is set, res_nquery() on the system resolver
 *   otherwise; /etc/hosts is never consulted), every address is checked with
 *   acme_validate_addr_allowed(), and only then is anything contacted. For
 *   http-01 libcurl is pinned to those addresses (CURLOPT_RESOLVE) and every
 *   socket it opens is checked again (CURLOPT_OPENSOCKETFUNCTION): a name
 *   that curl would resolve on its own still cannot reach a refused address.
 *   Redirects are followed by hand, one fresh easy handle per hop, so each
 *   target goes through the same scheme, port, name and address checks.
 *
 * - One deadline (timeout_seconds from the start) bounds a whole check: DNS,
 *   every redirect hop, TLS. Waits are poll() slices of at most
 *   AV_SLICE_MS so that acme_validator_stop() (params->cancel) is seen soon.
 *
 * - The validator keeps no state the database does not have: a queued id is
 *   only a hint; the challenge row says whether there is work ('processing').
 *   A full queue, a crash or a stop loses nothing: a sweep of 'processing'
 *   challenges (at start, and after an overflow) finds the work again, and
 *   status-guarded UPDATEs make a second validation of the same challenge a
 *   no-op. The outcome transaction locks the order row first so that two
 *   authorizations of one order finishing at once cannot both miss that the
 *   order became ready (write skew under READ COMMITTED).
 */
#include "acme_validate.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "db.h"
#include "log.h"

/* Longest single wait, so that cancellation is noticed quickly. */
#define AV_SLICE_MS 100
/* Addresses kept per host name (A and AAAA together). */
#define AV_MAX_ADDRS 16
/* DNS messages: UDP answers with EDNS0 up to this size, TCP up to 64 KiB. */
#define AV_DNS_UDP_SIZE 1232
#define AV_DNS_MAX 65535
/* Bounds on what a stored challenge may hold. */
#define AV_TOKEN_MAX 256
#define AV_THUMBPRINT_MAX 128
#define AV_NAME_MAX 253
/* keyAuthorization = token "." thumbprint */
#define AV_KEYAUTH_MAX (AV_TOKEN_MAX + 1 + AV_THUMBPRINT_MAX + 1)
/* RFC 8737 id-pe-acmeIdentifier */
#define AV_ACME_IDENTIFIER_OID "1.3.6.1.5.5.7.1.31"
#define AV_ALPN "acme-tls/1"
#define AV_USER_AGENT "enrolld-acme-validator/1"

/* --- names, params -------------------------------------------------------- */

static const char *const av_type_names[ACME_VALIDATE__MAX] = {
	[ACME_VALIDATE_HTTP01] = "http-01",
	[ACME_VALIDATE_DNS01] = "dns-01",
	[ACME_VALIDATE_TLSALPN01] = "tls-alpn-01",
};

const char *
acme_validate_type_name(enum acme_validate_type type)
{
	if ((int)type < 0 || type >= ACME_VALIDATE__MAX)
		return NULL;
	return av_type_names[type];
}

int
acme_validate_type_parse(const char *name)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < ACME_VALIDATE__MAX; i++) {
		if (strcmp(name, av_type_names[i]) == 0)
			return i;
	}
	return -1;
}

void
acme_validate_params_from_config(const struct enrolld_config *cfg,
    struct acme_validate_params *params)
{
	memset(params, 0, sizeof(*params));
	params->http_port = cfg->validation_http_port;
	params->tls_port = cfg->validation_tls_port;
	snprintf(params->dns_resolver, sizeof(params->dns_resolver), "%s",
	    cfg->validation_dns_resolver);
	params->allow_private = cfg->validation_allow_private;
	params->timeout_seconds = cfg->validation_timeout;
	params->cancel = NULL;
}

int
acme_validate_parse_resolver(const char *text, struct sockaddr_storage *out, socklen_t *out_len)
{
	char host[64];
	const char *port_text = NULL;
	size_t host_len;
	long port = 53;
	char *end = NULL;

	memset(out, 0, sizeof(*out));
	if (text == NULL || text[0] == '\0')
		return -1;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL)
			return -1;
		host_len = (size_t)(close - text - 1);
		if (host_len == 0 || host_len >= sizeof(host))
			return -1;
		memcpy(host, text + 1, host_len);
		host[host_len] = '\0';
		if (close[1] == ':')
			port_text = close + 2;
		else if (close[1] != '\0')
			return -1;
	} else {
		const char *colon = strchr(text, ':');

		host_len = colon != NULL ? (size_t)(colon - text) : strlen(text);
		if (host_len == 0 || host_len >= sizeof(host))
			return -1;
		memcpy(host, text, host_len);
		host[host_len] = '\0';
		if (colon != NULL)
			port_text = colon + 1;
	}
	if (port_text != NULL) {
		if (port_text[0] < '0' || port_text[0] > '9')
			return -1;
		errno = 0;
		port = strtol(port_text, &end, 10);
		if (*end != '\0' || errno != 0 || port < 1 || port > 65535)
			return -1;
	}
	if (text[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)out;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*out_len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*out_len = sizeof(*sin6);
	}
	return 0;
}

/* --- the address rule ------------------------------------------------------ */

static bool
av_ipv4_allowed(const unsigned char a[4], bool allow_private)
{
	/* Never: "this network" 0/8 (connect() to 0.0.0.0 reaches this host),
	 * multicast 224/4, reserved 240/4 and the broadcast address. */
	if (a[0] == 0 || a[0] >= 224)
		return false;
	if (allow_private)
		return true;
	if (a[0] == 127 || a[0] == 10)				/* loopback, RFC 1918 */
		return false;
	if (a[0] == 172 && (a[1] & 0xf0) == 16)			/* RFC 1918 172.16/12 */
		return false;
	if (a[0] == 192 && a[1] == 168)				/* RFC 1918 */
		return false;
	if (a[0] == 169 && a[1] == 254)				/* link-local */
		return false;
	if (a[0] == 100 && (a[1] & 0xc0) == 64)			/* CGNAT 100.64/10 */
		return false;
	return true;
}

static bool
av_ipv6_allowed(const unsigned char a[16], bool allow_private)
{
	static const unsigned char zero[16];

	if (memcmp(a, zero, 15) == 0 && a[15] == 1)		/* ::1 loopback */
		return allow_private;
	if (memcmp(a, zero, 12) == 0)				/* ::, ::a.b.c.d */
		return false;
	if (memcmp(a, zero, 10) == 0 && a[10] == 0xff && a[11] == 0xff)
		return av_ipv4_allowed(a + 12, allow_private);	/* ::ffff:a.b.c.d */
	if (a[0] == 0 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b &&
	    memcmp(a + 4, zero, 8) == 0)
		return av_ipv4_allowed(a + 12, allow_private);	/* NAT64 64:ff9b::/96 */
	if (a[0] == 0xff)					/* multicast */
		return false;
	if (allow_private)
		return true;
	if ((a[0] & 0xfe) == 0xfc)				/* ULA fc00::/7 */
		return false;
	if (a[0] == 0xfe && (a[1] & 0x80) == 0x80)		/* fe80::/10, fec0::/10 */
		return false;
	return true;
}

bool
acme_validate_addr_allowed(const struct sockaddr *addr, bool allow_private)
{
	if (addr == NULL)
		return false;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

		return av_ipv4_allowed((const unsigned char *)&sin->sin_addr, allow_private);
	}
	if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;

		return av_ipv6_allowed(sin6->sin6_addr.s6_addr, allow_private);
	}
	return false;
}

/* --- small helpers ----------------------------------------------------------- */

static int64_t
av_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long
av_remaining_ms(int64_t deadline)
{
	int64_t left = deadline - av_now_ms();

	return left > 0 ? (long)left : 0;
}

static bool
av_cancelled(const struct acme_validate_params *params)
{
	return params->cancel != NULL && atomic_load(params->cancel);
}

static bool av_fail(struct acme_validate_problem *problem, const char *type,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Fills *problem; returns false so that a check can `return av_fail(...)`. */
static bool
av_fail(struct acme_validate_problem *problem, const char *type, const char *fmt, ...)
{
	va_list ap;

	problem->type = type;
	va_start(ap, fmt);
	vsnprintf(problem->detail, sizeof(problem->detail), fmt, ap);
	va_end(ap);
	return false;
}

/* Text of an address (no port), for messages. */
static void
av_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *bytes = NULL;

	if (sa->sa_family == AF_INET)
		bytes = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		bytes = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (bytes == NULL || inet_ntop(sa->sa_family, bytes, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "(address family %d)", sa->sa_family);
}

/* Copies at most `max` bytes of untrusted text into buf for a message:
 * printable ASCII kept, everything else as '?', "..." when cut. */
static void
av_quote(const char *text, size_t len, char *buf, size_t buflen, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < len && i < max && n + 1 < buflen; i++) {
		unsigned char c = (unsigned char)text[i];

		buf[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
	}
	buf[n] = '\0';
	if (len > max && n + 4 < buflen)
		memcpy(buf + n, "...", 4);
}

/* base64url without padding of len bytes into out (at least 4*len/3+4). */
static void
av_b64url(const unsigned char *in, size_t len, char *out)
{
	int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	int i;

	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (i = 0; i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
}

static bool
av_b64url_text(const char *s, size_t max)
{
	size_t i;

	if (s == NULL || s[0] == '\0')
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= max)
			return false;
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return false;
	}
	return true;
}

/* A host name we are willing to look up and put into a URL: ASCII letters,
 * digits, '-', '_', non-empty labels of at most 63, at most 253 in all, one
 * optional trailing dot. */
static bool
av_hostname_ok(const char *name)
{
	size_t i, label = 0, len = strlen(name);

	if (len == 0 || len > AV_NAME_MAX + 1 || (len == AV_NAME_MAX + 1 && name[len - 1] != '.'))
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

/* The checked inputs of one check: identifier, key authorization. */
struct av_input {
	char name[AV_NAME_MAX + 2];	/* dns: the name (no "*."); ip: the literal */
	bool is_ip;
	int ip_family;			/* AF_INET / AF_INET6 for ip */
	unsigned char ip[16];
	char keyauth[AV_KEYAUTH_MAX];
};

static bool
av_prepare(const struct acme_validate_challenge *chall, struct av_input *in,
    struct acme_validate_problem *problem)
{
	const char *value = chall->id_value;

	memset(in, 0, sizeof(*in));
	if (!av_b64url_text(chall->token, AV_TOKEN_MAX))
		return av_fail(problem, ACME_VALIDATE_PROBLEM_MALFORMED,
		    "the challenge token is not base64url of at most %d characters", AV_TOKEN_MAX);
	if (!av_b64url_text(chall->thumbprint, AV_THUMBPRINT_MAX))
		return av_fail(problem, ACME_VALIDATE_PROBLEM_MALFORMED,
		    "the account key thumbprint is unusable");
	snprintf(in->keyauth, sizeof(in->keyauth), "%s.%s", chall->token, chall->thumbprint);
	if (value == NULL || value[0] == '\0')
		return av_fail(problem, ACME_VALIDATE_PROBLEM_MALFORMED, "empty identifier");

	if (chall->id_type == ACME_VALIDATE_ID_IP) {
		if (inet_pton(AF_INET, value, in->ip) == 1)
			in->ip_family = AF_INET;
		else if (inet_pton(AF_INET6, value, in->ip) == 1)
			in->ip_family = AF_INET6;
		else
			return av_fail(problem, ACME_VALIDATE_PROBLEM_MALFORMED,
			    "ip identifier is not an IPv4 or IPv6 address");
		in->is_ip = true;
		/* Canonical text: what URLs and messages show. */
		inet_ntop(in->ip_family, in->ip, in->name, sizeof(in->name));
		if (chall->type == ACME_VALIDATE_DNS01)
			return av_fail(problem, ACME_VALIDATE_PROBLEM_MALFORMED,
			    "dns-01 cannot validate an ip identifier (RFC 8738)");
		if (chall->wildcard)
			return av_fail(problem, ACME_VALIDATE_PROBLEM_MALFORMED,
			    "an ip identifier cannot be a wildcard");
		return true;
	}
	if (chall->id_type != ACME_VALIDATE_ID_DNS)
		return av_fail(problem, ACME_VALIDATE_PROBLEM_MALFORMED, "unknown identifier type");
	if (strncmp(value, "*.", 2) == 0)
		value += 2;
	if (!av_hostname_ok(value))
		return av_fail(problem, ACME_VALIDATE_PROBLEM_MALFORMED,
		    "dns identifier is not a usable host name");
	/* Lower case: DNS is case-insensitive, but not every server (nor
	 * every comparison downstream) is. */
	for (size_t i = 0; value[i] != '\0'; i++)
		in->name[i] = (char)tolower((unsigned char)value[i]);
	if ((chall->wildcard || value != chall->id_value) && chall->type != ACME_VALIDATE_DNS01)
		return av_fail(problem, ACME_VALIDATE_PROBLEM_MALFORMED,
		    "a wildcard can only be validated with dns-01");
	return true;
}

/* SHA-256 of the key authorization. */
static void
av_keyauth_digest(const char *keyauth, unsigned char digest[32])
{
	unsigned int len = 32;

	if (EVP_Digest(keyauth, strlen(keyauth), digest, &len, EVP_sha256(), NULL) != 1) {
		/* Cannot happen with the default provider; never match. */
		log_ssl_warnx("EVP_Digest(sha256)");
		RAND_bytes(digest, 32);
	}
}

/* --- waiting and connecting ---------------------------------------------------- */

/* Waits for `events` on fd until `until` (monotonic ms), in slices so that
 * cancellation is seen. 1 ready, 0 time is up, -1 poll error, -2 cancelled. */
static int
av_wait(const struct acme_validate_params *params, int fd, short events, int64_t until)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		long left = av_remaining_ms(until);
		int n;

		if (av_cancelled(params))
			return -2;
		if (left <= 0)
			return 0;
		n = poll(&pfd, 1, (int)(left < AV_SLICE_MS ? left : AV_SLICE_MS));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n > 0)
			return 1;
	}
}

/* Non-blocking TCP connect before the deadline. Returns the socket (still
 * non-blocking), or -1 with a message in err. */
static int
av_tcp_connect(const struct acme_validate_params *params, const struct sockaddr *sa,
    socklen_t sa_len, int64_t deadline, char *err, size_t errlen)
{
	int fd, soerr = 0, w;
	socklen_t soerr_len = sizeof(soerr);
	char addr[INET6_ADDRSTRLEN];

	av_addr_text(sa, addr, sizeof(addr));
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, sa, sa_len) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		snprintf(err, errlen, "connect to %s: %s", addr, strerror(errno));
		goto fail;
	}
	w = av_wait(params, fd, POLLOUT, deadline);
	if (w == -2) {
		snprintf(err, errlen, "validation cancelled");
		goto fail;
	}
	if (w <= 0) {
		snprintf(err, errlen, "timeout connecting to %s", addr);
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerr_len) != 0 || soerr != 0) {
		snprintf(err, errlen, "connect to %s: %s", addr, strerror(soerr != 0 ? soerr : errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* --- DNS ------------------------------------------------------------------------ */

/*
 * With validation_dns_resolver set, queries go to that server: UDP with EDNS0
 * (retransmitted every second), then TCP when the answer is truncated. The
 * answer must carry our random id and our question. Without it,
 * res_nquery() asks the system resolver (/etc/resolv.conf, no search list,
 * no /etc/hosts).
 */

/* Builds a query for name/qtype (RD set, one EDNS0 OPT record). Returns its
 * length, or -1 when the name does not fit. *qsection_len is the length of
 * the question section (it starts at offset 12). */
static int
av_dns_build(const char *name, int qtype, uint16_t id, unsigned char *buf, size_t cap,
    size_t *qsection_len)
{
	const char *p = name;
	size_t n = 12;

	if (cap < 12 + 256 + 4 + 11)
		return -1;
	memset(buf, 0, 12);
	buf[0] = (unsigned char)(id >> 8);
	buf[1] = (unsigned char)id;
	buf[2] = 0x01;	/* RD */
	buf[5] = 1;	/* QDCOUNT */
	buf[11] = 1;	/* ARCOUNT: the OPT record */
	while (*p != '\0') {
		const char *dot = strchr(p, '.');
		size_t label = dot != NULL ? (size_t)(dot - p) : strlen(p);

		if (label == 0 || label > 63 || n + 1 + label > 12 + 255)
			return -1;
		buf[n++] = (unsigned char)label;
		memcpy(buf + n, p, label);
		n += label;
		p += label;
		if (*p == '.')
			p++;
	}
	buf[n++] = 0;
	buf[n++] = (unsigned char)(qtype >> 8);
	buf[n++] = (unsigned char)qtype;
	buf[n++] = 0;
	buf[n++] = ns_c_in;
	*qsection_len = n - 12;
	/* OPT: root name, type 41, class = UDP payload size, TTL 0, no data */
	buf[n++] = 0;
	buf[n++] = 0;
	buf[n++] = ns_t_opt;
	buf[n++] = (unsigned char)(AV_DNS_UDP_SIZE >> 8);
	buf[n++] = (unsigned char)(AV_DNS_UDP_SIZE & 0xff);
	memset(buf + n, 0, 6);
	n += 6;
	return (int)n;
}

/* True when resp answers query: same id, QR set, one question equal to ours
 * (names compared case-insensitively). */
static bool
av_dns_matches(const unsigned char *query, size_t qsection_len, const unsigned char *resp,
    size_t resp_len)
{
	size_t i;

	if (resp_len < 12 + qsection_len)
		return false;
	if (resp[0] != query[0] || resp[1] != query[1] || (resp[2] & 0x80) == 0)
		return false;
	if (resp[4] != 0 || resp[5] != 1)
		return false;
	for (i = 12; i < 12 + qsection_len; i++) {
		if (tolower(resp[i]) != tolower(query[i]))
			return false;
	}
	return true;
}

/* Reads or writes exactly len bytes on a non-blocking stream before the
 * deadline. 0, or -1 with err set. */
static int
av_stream_io(const struct acme_validate_params *params, int fd, bool writing,
    unsigned char *buf, size_t len, int64_t deadline, char *err, size_t errlen)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = writing ? send(fd, buf + done, len - done, MSG_NOSIGNAL) :
		    recv(fd, buf + done, len - done, 0);
		int w;

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == 0) {
			snprintf(err, errlen, "connection closed early");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			snprintf(err, errlen, "%s: %s", writing ? "send" : "recv", strerror(errno));
			return -1;
		}
		w = av_wait(params, fd, writing ? POLLOUT : POLLIN, deadline);
		if (w == -2) {
			snprintf(err, errlen, "validation cancelled");
			return -1;
		}
		if (w <= 0) {
			snprintf(err, errlen, "timeout");
			return -1;
		}
	}
	return 0;
}

/* One exchange with the configured server. Returns the answer length, or -1
 * with err set. */
static int
av_dns_exchange(const struct acme_validate_params *params, const char *name, int qtype,
    int64_t deadline, unsigned char *resp, size_t cap, char *err, size_t errlen)
{
	struct sockaddr_storage server;
	socklen_t server_len = 0;
	unsigned char query[512];
	unsigned char lenbuf[2];
	size_t qsection_len = 0, resp_len;
	uint16_t id;
	int qlen, fd = -1, rc = -1;
	bool truncated = false;

	if (acme_validate_parse_resolver(params->dns_resolver, &server, &server_len) != 0) {
		snprintf(err, errlen, "validation_dns_resolver is not usable");
		return -1;
	}
	if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1) {
		snprintf(err, errlen, "RAND_bytes failed");
		return -1;
	}
	qlen = av_dns_build(name, qtype, id, query, sizeof(query), &qsection_len);
	if (qlen < 0) {
		snprintf(err, errlen, "name too long for a DNS query");
		return -1;
	}

	/* UDP: connected, so only the server's datagrams arrive; retransmit
	 * every second until the deadline. */
	fd = socket(server.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&server, server_len) != 0) {
		snprintf(err, errlen, "UDP socket to the resolver: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		int64_t resend_at = av_now_ms() + 1000;
		ssize_t n;
		int w;

		if (send(fd, query, (size_t)qlen, 0) != qlen) {
			snprintf(err, errlen, "send to the resolver: %s", strerror(errno));
			goto out;
		}
		for (;;) {
			w = av_wait(params, fd, POLLIN, resend_at < deadline ? resend_at : deadline);
			if (w == -2) {
				snprintf(err, errlen, "validation cancelled");
				goto out;
			}
			if (w < 0) {
				snprintf(err, errlen, "poll: %s", strerror(errno));
				goto out;
			}
			if (w == 0)
				break;
			n = recv(fd, resp, cap, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n < 0) {
				/* ICMP port unreachable and the like */
				snprintf(err, errlen, "resolver %s: %s", params->dns_resolver,
				    strerror(errno));
				goto out;
			}
			if (!av_dns_matches(query, qsection_len, resp, (size_t)n))
				continue;	/* stray or spoofed: keep waiting */
			if (resp[2] & 0x02) {
				truncated = true;
				break;
			}
			rc = (int)n;
			goto out;
		}
		if (truncated)
			break;
		if (av_remaining_ms(deadline) == 0) {
			snprintf(err, errlen, "timeout asking %s", params->dns_resolver);
			goto out;
		}
	}

	/* TCP (RFC 7766): two-byte length prefix both ways. */
	close(fd);
	fd = av_tcp_connect(params, (struct sockaddr *)&server, server_len, deadline, err, errlen);
	if (fd < 0)
		goto out;
	lenbuf[0] = (unsigned char)(qlen >> 8);
	lenbuf[1] = (unsigned char)qlen;
	if (av_stream_io(params, fd, true, lenbuf, 2, deadline, err, errlen) != 0 ||
	    av_stream_io(params, fd, true, query, (size_t)qlen, deadline, err, errlen) != 0 ||
	    av_stream_io(params, fd, false, lenbuf, 2, deadline, err, errlen) != 0)
		goto out;
	resp_len = ((size_t)lenbuf[0] << 8) | lenbuf[1];
	if (resp_len > cap || resp_len < 12) {
		snprintf(err, errlen, "DNS answer over TCP of unusable length %zu", resp_len);
		goto out;
	}
	if (av_stream_io(params, fd, false, resp, resp_len, deadline, err, errlen) != 0)
		goto out;
	if (!av_dns_matches(query, qsection_len, resp, resp_len)) {
		snprintf(err, errlen, "DNS answer over TCP does not match the question");
		goto out;
	}
	rc = (int)resp_len;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

static const char *
av_rcode_name(int rcode)
{
	switch (rcode) {
	case ns_r_formerr: return "FORMERR";
	case ns_r_servfail: return "SERVFAIL";
	case ns_r_nxdomain: return "NXDOMAIN";
	case ns_r_notimpl: return "NOTIMP";
	case ns_r_refused: return "REFUSED";
	default: return "an error";
	}
}

static const char *
av_qtype_name(int qtype)
{
	switch (qtype) {
	case ns_t_a: return "A";
	case ns_t_aaaa: return "AAAA";
	case ns_t_txt: return "TXT";
	default: return "?";
	}
}

/*
 * Looks up name/qtype. Returns 0 with *msg parsed over buf (it may hold no
 * record of qtype: NODATA; *empty tells), or -1 with *problem set (dns:
 * timeout, NXDOMAIN, SERVFAIL, ...). *nxdomain tells NXDOMAIN apart.
 */
static int
av_dns_query(const struct acme_validate_params *params, const char *name, int qtype,
    int64_t deadline, unsigned char *buf, size_t cap, ns_msg *msg, bool *empty,
    bool *nxdomain, struct acme_validate_problem *problem)
{
	char err[256];
	int len, rcode;

	*empty = false;
	*nxdomain = false;
	if (params->dns_resolver[0] != '\0') {
		len = av_dns_exchange(params, name, qtype, deadline, buf, cap, err, sizeof(err));
		if (len < 0) {
			if (av_cancelled(params))
				av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION, "validation cancelled");
			else
				av_fail(problem, ACME_VALIDATE_PROBLEM_DNS, "looking up %s for %s: %s",
				    av_qtype_name(qtype), name, err);
			return -1;
		}
	} else {
		struct __res_state st;
		long left = av_remaining_ms(deadline) / 1000;

		memset(&st, 0, sizeof(st));
		if (res_ninit(&st) != 0) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_DNS, "res_ninit failed");
			return -1;
		}
		/* Three tries within what is left (retrans, then 2 * retrans). */
		st.retrans = (int)(left / 3 > 0 ? left / 3 : 1);
		st.retry = 2;
		st.options |= RES_USE_EDNS0;
		len = res_nquery(&st, name, ns_c_in, qtype, buf, (int)cap);
		if (len < 0) {
			int herr = st.res_h_errno;

			res_nclose(&st);
			if (herr == NO_DATA) {
				*empty = true;
				return 0;
			}
			*nxdomain = herr == HOST_NOT_FOUND;
			av_fail(problem, ACME_VALIDATE_PROBLEM_DNS, "looking up %s for %s: %s",
			    av_qtype_name(qtype), name,
			    herr == HOST_NOT_FOUND ? "NXDOMAIN" :
			    herr == TRY_AGAIN ? "timeout or SERVFAIL" : "no answer");
			return -1;
		}
		res_nclose(&st);
	}
	if (ns_initparse(buf, len, msg) != 0) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_DNS, "looking up %s for %s: "
		    "unparsable answer", av_qtype_name(qtype), name);
		return -1;
	}
	rcode = ns_msg_getflag(*msg, ns_f_rcode);
	if (rcode != ns_r_noerror) {
		*nxdomain = rcode == ns_r_nxdomain;
		av_fail(problem, ACME_VALIDATE_PROBLEM_DNS, "looking up %s for %s: %s",
		    av_qtype_name(qtype), name, av_rcode_name(rcode));
		return -1;
	}
	*empty = ns_msg_count(*msg, ns_s_an) == 0;
	return 0;
}

/* Names an answer may legitimately talk about: the question and the CNAME
 * chain from it (at most 8 links), without trailing dots. */
struct av_dns_chain {
	char names[9][NS_MAXDNAME];
	int n;
};

static bool
av_dns_chain_has(const struct av_dns_chain *chain, const char *name)
{
	int i;

	for (i = 0; i < chain->n; i++) {
		if (strcasecmp(chain->names[i], name) == 0)
			return true;
	}
	return false;
}

static void
av_dns_chain_build(ns_msg *msg, const char *qname, struct av_dns_chain *chain)
{
	bool grew = true;
	int count = ns_msg_count(*msg, ns_s_an);

	memset(chain, 0, sizeof(*chain));
	snprintf(chain->names[0], sizeof(chain->names[0]), "%s", qname);
	if (chain->names[0][0] != '\0' && chain->names[0][strlen(chain->names[0]) - 1] == '.')
		chain->names[0][strlen(chain->names[0]) - 1] = '\0';
	chain->n = 1;
	while (grew && chain->n < 9) {
		int i;

		grew = false;
		for (i = 0; i < count && chain->n < 9; i++) {
			ns_rr rr;
			char target[NS_MAXDNAME];

			if (ns_parserr(msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != ns_t_cname ||
			    !av_dns_chain_has(chain, ns_rr_name(rr)))
				continue;
			if (ns_name_uncompress(ns_msg_base(*msg), ns_msg_end(*msg), ns_rr_rdata(rr),
			    target, sizeof(target)) < 0 || av_dns_chain_has(chain, target))
				continue;
			snprintf(chain->names[chain->n++], sizeof(chain->names[0]), "%s", target);
			grew = true;
		}
	}
}

/* The addresses of one host, each with the port set. */
struct av_addrs {
	struct sockaddr_storage addr[AV_MAX_ADDRS];
	socklen_t len[AV_MAX_ADDRS];
	size_t n;
};

static void
av_addrs_add(struct av_addrs *addrs, int family, const void *bytes, int port)
{
	struct sockaddr_storage *ss;

	if (addrs->n >= AV_MAX_ADDRS)
		return;
	ss = &addrs->addr[addrs->n];
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		memcpy(&sin->sin_addr, bytes, 4);
		addrs->len[addrs->n] = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		memcpy(&sin6->sin6_addr, bytes, 16);
		addrs->len[addrs->n] = sizeof(*sin6);
	}
	addrs->n++;
}

/* True when sa (address and port) is one of addrs. */
static bool
av_addrs_has(const struct av_addrs *addrs, const struct sockaddr *sa)
{
	size_t i;

	for (i = 0; i < addrs->n; i++) {
		const struct sockaddr *a = (const struct sockaddr *)&addrs->addr[i];

		if (a->sa_family != sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET) {
			const struct sockaddr_in *x = (const struct sockaddr_in *)a;
			const struct sockaddr_in *y = (const struct sockaddr_in *)sa;

			if (x->sin_port == y->sin_port &&
			    memcmp(&x->sin_addr, &y->sin_addr, 4) == 0)
				return true;
		} else if (sa->sa_family == AF_INET6) {
			const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
			const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)sa;

			if (x->sin6_port == y->sin6_port &&
			    memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0)
				return true;
		}
	}
	return false;
}

/*
 * The addresses to contact for host:port: the literal itself, or the AAAA
 * then A records of the name. Every one must pass the address rule, else
 * nothing is contacted (connection problem). Returns true with *addrs
 * filled.
 */
static bool
av_resolve(const struct acme_validate_params *params, const char *host, int port,
    int64_t deadline, struct av_addrs *addrs, struct acme_validate_problem *problem)
{
	static const int qtypes[2] = { ns_t_aaaa, ns_t_a };
	unsigned char bytes[16];
	unsigned char *buf = NULL;
	struct acme_validate_problem first = { NULL, "" };
	bool ok = false;
	size_t i;
	int q;

	memset(addrs, 0, sizeof(*addrs));
	if (inet_pton(AF_INET, host, bytes) == 1) {
		av_addrs_add(addrs, AF_INET, bytes, port);
	} else if (inet_pton(AF_INET6, host, bytes) == 1) {
		av_addrs_add(addrs, AF_INET6, bytes, port);
	} else {
		if (!av_hostname_ok(host))
			return av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
			    "\"%.64s\" is not a usable host name", host);
		buf = malloc(AV_DNS_MAX);
		if (buf == NULL)
			return av_fail(problem, ACME_VALIDATE_PROBLEM_INTERNAL, "out of memory");
		for (q = 0; q < 2; q++) {
			struct acme_validate_problem pr = { NULL, "" };
			struct av_dns_chain chain;
			ns_msg msg;
			bool empty, nxdomain;
			int j, count;

			if (av_dns_query(params, host, qtypes[q], deadline, buf, AV_DNS_MAX, &msg,
			    &empty, &nxdomain, &pr) != 0) {
				if (first.type == NULL)
					first = pr;
				if (nxdomain || av_cancelled(params))
					break;	/* the other type cannot do better */
				continue;
			}
			if (empty)
				continue;
			av_dns_chain_build(&msg, host, &chain);
			count = ns_msg_count(msg, ns_s_an);
			for (j = 0; j < count; j++) {
				ns_rr rr;

				if (ns_parserr(&msg, ns_s_an, j, &rr) != 0 ||
				    ns_rr_class(rr) != ns_c_in || (int)ns_rr_type(rr) != qtypes[q] ||
				    !av_dns_chain_has(&chain, ns_rr_name(rr)))
					continue;
				if (qtypes[q] == ns_t_a && ns_rr_rdlen(rr) == 4)
					av_addrs_add(addrs, AF_INET, ns_rr_rdata(rr), port);
				else if (qtypes[q] == ns_t_aaaa && ns_rr_rdlen(rr) == 16)
					av_addrs_add(addrs, AF_INET6, ns_rr_rdata(rr), port);
			}
		}
		if (addrs->n == 0) {
			if (first.type != NULL)
				*problem = first;
			else
				av_fail(problem, ACME_VALIDATE_PROBLEM_DNS,
				    "no A or AAAA record found for %s", host);
			goto out;
		}
	}
	for (i = 0; i < addrs->n; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&addrs->addr[i];

		if (!acme_validate_addr_allowed(sa, params->allow_private)) {
			char text[INET6_ADDRSTRLEN];

			av_addr_text(sa, text, sizeof(text));
			if (strcmp(text, host) == 0)
				av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
				    "%s is an address that validation may not contact", text);
			else
				av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
				    "%s resolves to %s, an address that validation may not contact",
				    host, text);
			goto out;
		}
	}
	ok = true;
out:
	free(buf);
	return ok;
}

/* --- http-01 ------------------------------------------------------------------------ */

/* State of one http-01 hop, shared with libcurl's callbacks. */
struct av_http_hop {
	const struct acme_validate_params *params;
	const struct av_addrs *allowed;	/* the only addresses this hop may use */
	char *body;			/* up to limit bytes, NUL-terminated */
	size_t body_len;
	size_t limit;
	bool too_large;
	bool refused;			/* a socket to another address was asked for */
	char refused_addr[INET6_ADDRSTRLEN];
};

static size_t
av_http_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct av_http_hop *hop = arg;
	size_t n = size * nmemb;

	if (n > hop->limit - hop->body_len) {
		hop->too_large = true;
		return 0;	/* stop reading: curl fails with CURLE_WRITE_ERROR */
	}
	memcpy(hop->body + hop->body_len, data, n);
	hop->body_len += n;
	hop->body[hop->body_len] = '\0';
	return n;
}

/* Every socket curl opens: only to an address we resolved and allowed. */
static curl_socket_t
av_http_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *address)
{
	struct av_http_hop *hop = arg;
	int fd;

	if (purpose != CURLSOCKTYPE_IPCXN ||
	    !acme_validate_addr_allowed(&address->addr, hop->params->allow_private) ||
	    !av_addrs_has(hop->allowed, &address->addr)) {
		hop->refused = true;
		av_addr_text(&address->addr, hop->refused_addr, sizeof(hop->refused_addr));
		return CURL_SOCKET_BAD;
	}
	fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static int
av_http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct av_http_hop *hop = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return av_cancelled(hop->params) ? 1 : 0;
}

/* Ports a hop may use: http on 80 or validation_http_port, https on 443 or
 * validation_tls_port. */
static bool
av_http_port_ok(const struct acme_validate_params *params, bool https, long port)
{
	if (https)
		return port == 443 || port == params->tls_port;
	return port == 80 || port == params->http_port;
}

/*
 * Takes the URL of one hop apart and checks it: scheme, port, host. On
 * success *u holds the URL with the host lower-cased (what curl will use),
 * host[] the host without brackets, *port the port.
 */
static bool
av_http_target(const struct acme_validate_params *params, const char *url, CURLU **out,
    char *host, size_t host_len, long *port, bool *https, struct acme_validate_problem *problem)
{
	CURLU *u = NULL;
	char *scheme = NULL, *h = NULL, *port_text = NULL, *user = NULL;
	char quoted[80];
	bool ok = false;
	size_t i, len;

	av_quote(url, strlen(url), quoted, sizeof(quoted), 64);
	u = curl_url();
	if (u == NULL) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_INTERNAL, "out of memory");
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port_text, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION, "unusable URL \"%s\"", quoted);
		goto out;
	}
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
		    "redirect to \"%s\": only http and https are followed", quoted);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
		    "redirect to \"%s\": URLs with credentials are not followed", quoted);
		goto out;
	}
	*https = strcasecmp(scheme, "https") == 0;
	*port = strtol(port_text, NULL, 10);
	if (!av_http_port_ok(params, *https, *port)) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
		    "redirect to \"%s\": port %ld is not allowed for %s", quoted, *port,
		    *https ? "https" : "http");
		goto out;
	}
	len = strlen(h);
	if (h[0] == '[') {
		if (len < 3 || h[len - 1] != ']' || len - 2 >= host_len) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION, "unusable host in \"%s\"",
			    quoted);
			goto out;
		}
		memcpy(host, h + 1, len - 2);
		host[len - 2] = '\0';
		/* zone ids and the like fail here */
		{
			unsigned char tmp[16];

			if (inet_pton(AF_INET6, host, tmp) != 1) {
				av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
				    "unusable host in \"%s\"", quoted);
				goto out;
			}
		}
	} else {
		if (len >= host_len || !av_hostname_ok(h)) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION, "unusable host in \"%s\"",
			    quoted);
			goto out;
		}
		for (i = 0; i <= len; i++)
			host[i] = (char)tolower((unsigned char)h[i]);
		if (curl_url_set(u, CURLUPART_HOST, host, 0) != CURLUE_OK) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION, "unusable host in \"%s\"",
			    quoted);
			goto out;
		}
	}
	*out = u;
	u = NULL;
	ok = true;
out:
	curl_free(scheme);
	curl_free(h);
	curl_free(port_text);
	curl_free(user);
	curl_url_cleanup(u);
	return ok;
}

/* Body with trailing whitespace (SP, HTAB, CR, LF) removed equals keyauth? */
static bool
av_http_body_matches(const char *body, size_t len, const char *keyauth)
{
	while (len > 0 && (body[len - 1] == ' ' || body[len - 1] == '\t' ||
	    body[len - 1] == '\r' || body[len - 1] == '\n'))
		len--;
	return len == strlen(keyauth) && memcmp(body, keyauth, len) == 0;
}

bool
acme_validate_http01(const struct acme_validate_params *params,
    const struct acme_validate_challenge *chall, struct acme_validate_problem *problem)
{
	struct av_input in;
	struct av_http_hop hop;
	struct av_addrs addrs;
	char url[1024], current[1024], errbuf[CURL_ERROR_SIZE];
	char host[AV_NAME_MAX + 2];
	int64_t deadline = av_now_ms() + (int64_t)params->timeout_seconds * 1000;
	bool valid = false;
	int redirects;

	problem->type = NULL;
	problem->detail[0] = '\0';
	memset(&hop, 0, sizeof(hop));
	if (!av_prepare(chall, &in, problem))
		return false;
	hop.params = params;
	hop.allowed = &addrs;
	hop.limit = strlen(in.keyauth) + ACME_VALIDATE_BODY_SLACK;
	hop.body = malloc(hop.limit + 1);
	if (hop.body == NULL)
		return av_fail(problem, ACME_VALIDATE_PROBLEM_INTERNAL, "out of memory");

	if (in.is_ip && in.ip_family == AF_INET6)
		snprintf(current, sizeof(current), "http://[%s]:%d/.well-known/acme-challenge/%s",
		    in.name, params->http_port, chall->token);
	else
		snprintf(current, sizeof(current), "http://%s:%d/.well-known/acme-challenge/%s",
		    in.name, params->http_port, chall->token);
	snprintf(url, sizeof(url), "%s", current);

	for (redirects = 0;; redirects++) {
		CURL *h = NULL;
		CURLU *u = NULL;
		struct curl_slist *pin = NULL;
		CURLcode rc;
		long status = 0, port = 0;
		bool https = false, done = false;
		char quoted[80];

		if (!av_http_target(params, current, &u, host, sizeof(host), &port, &https, problem))
			break;
		if (!av_resolve(params, host, (int)port, deadline, &addrs, problem)) {
			curl_url_cleanup(u);
			break;
		}
		av_quote(current, strlen(current), quoted, sizeof(quoted), 64);

		/* Pin curl to our addresses: "host:port:addr,addr,..." */
		{
			unsigned char tmp[16];

			if (inet_pton(AF_INET, host, tmp) != 1 && inet_pton(AF_INET6, host, tmp) != 1) {
				char entry[AV_NAME_MAX + 16 + AV_MAX_ADDRS * (INET6_ADDRSTRLEN + 3)];
				size_t used, i;

				used = (size_t)snprintf(entry, sizeof(entry), "%s:%ld:", host, port);
				for (i = 0; i < addrs.n && used < sizeof(entry); i++) {
					const struct sockaddr *sa = (const struct sockaddr *)&addrs.addr[i];
					char text[INET6_ADDRSTRLEN];

					av_addr_text(sa, text, sizeof(text));
					used += (size_t)snprintf(entry + used, sizeof(entry) - used,
					    sa->sa_family == AF_INET6 ? "%s[%s]" : "%s%s",
					    i > 0 ? "," : "", text);
				}
				pin = curl_slist_append(NULL, entry);
				if (pin == NULL) {
					curl_url_cleanup(u);
					av_fail(problem, ACME_VALIDATE_PROBLEM_INTERNAL, "out of memory");
					break;
				}
			}
		}

		hop.body_len = 0;
		hop.body[0] = '\0';
		hop.too_large = false;
		hop.refused = false;
		errbuf[0] = '\0';
		h = curl_easy_init();
		if (h == NULL) {
			curl_url_cleanup(u);
			curl_slist_free_all(pin);
			av_fail(problem, ACME_VALIDATE_PROBLEM_INTERNAL, "curl_easy_init failed");
			break;
		}
		curl_easy_setopt(h, CURLOPT_CURLU, u);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_PROXY, "");
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(h, CURLOPT_USERAGENT, AV_USER_AGENT);
		curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
		curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, av_remaining_ms(deadline) + 1L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, av_remaining_ms(deadline) + 1L);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, av_http_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &hop);
		curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)hop.limit);
		curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, av_http_opensocket);
		curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &hop);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, av_http_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, &hop);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		/* A redirect to https is followed without checking the certificate
		 * (the challenge is the proof, as with other ACME servers). */
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
		if (pin != NULL)
			curl_easy_setopt(h, CURLOPT_RESOLVE, pin);

		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (hop.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
			    "%s: the body is larger than %zu bytes", quoted, hop.limit);
			done = true;
		} else if (hop.refused) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
			    "%s: refused to connect to %s", quoted, hop.refused_addr);
			done = true;
		} else if (rc == CURLE_ABORTED_BY_CALLBACK || av_cancelled(params)) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION, "validation cancelled");
			done = true;
		} else if (rc == CURLE_OPERATION_TIMEDOUT) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION, "%s: timeout after %d s",
			    quoted, params->timeout_seconds);
			done = true;
		} else if (rc == CURLE_SSL_CONNECT_ERROR) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_TLS, "%s: %s", quoted,
			    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
			done = true;
		} else if (rc != CURLE_OK) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION, "%s: %s", quoted,
			    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
			done = true;
		} else if (status == 301 || status == 302 || status == 303 || status == 307 ||
		    status == 308) {
			char *location = NULL;

			curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &location);
			if (location == NULL || location[0] == '\0') {
				av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
				    "%s: redirect (%ld) without a usable Location", quoted, status);
				done = true;
			} else if (redirects >= ACME_VALIDATE_MAX_REDIRECTS) {
				av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
				    "too many redirects (more than %d), the last from %s",
				    ACME_VALIDATE_MAX_REDIRECTS, quoted);
				done = true;
			} else if (strlen(location) >= sizeof(current)) {
				av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
				    "%s: redirect to a URL longer than %zu bytes", quoted,
				    sizeof(current) - 1);
				done = true;
			} else {
				snprintf(current, sizeof(current), "%s", location);
			}
		} else if (status != 200) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_UNAUTHORIZED,
			    "%s answered with status %ld", quoted, status);
			done = true;
		} else if (!av_http_body_matches(hop.body, hop.body_len, in.keyauth)) {
			char got[80];

			av_quote(hop.body, hop.body_len, got, sizeof(got), 40);
			av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
			    "%s: the body \"%s\" is not the key authorization", quoted, got);
			done = true;
		} else {
			valid = true;
			done = true;
		}
		curl_easy_cleanup(h);
		curl_url_cleanup(u);
		curl_slist_free_all(pin);
		if (done)
			break;
	}
	free(hop.body);
	if (valid) {
		problem->type = NULL;
		problem->detail[0] = '\0';
	}
	return valid;
}

/* --- dns-01 -------------------------------------------------------------------------- */

bool
acme_validate_dns01(const struct acme_validate_params *params,
    const struct acme_validate_challenge *chall, struct acme_validate_problem *problem)
{
	struct av_input in;
	struct av_dns_chain chain;
	unsigned char digest[32];
	char expected[64], qname[AV_NAME_MAX + 32], first_wrong[80] = "";
	unsigned char *buf = NULL;
	char *txt = NULL;
	int64_t deadline = av_now_ms() + (int64_t)params->timeout_seconds * 1000;
	ns_msg msg;
	bool empty, nxdomain, valid = false;
	int i, count, found = 0;

	problem->type = NULL;
	problem->detail[0] = '\0';
	if (!av_prepare(chall, &in, problem))
		return false;
	av_keyauth_digest(in.keyauth, digest);
	av_b64url(digest, sizeof(digest), expected);
	snprintf(qname, sizeof(qname), "_acme-challenge.%s", in.name);

	buf = malloc(AV_DNS_MAX);
	txt = malloc(AV_DNS_MAX);
	if (buf == NULL || txt == NULL) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_INTERNAL, "out of memory");
		goto out;
	}
	if (av_dns_query(params, qname, ns_t_txt, deadline, buf, AV_DNS_MAX, &msg, &empty,
	    &nxdomain, problem) != 0)
		goto out;
	if (empty) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_UNAUTHORIZED, "no TXT record found at %s",
		    qname);
		goto out;
	}
	av_dns_chain_build(&msg, qname, &chain);
	count = ns_msg_count(msg, ns_s_an);
	for (i = 0; i < count; i++) {
		const unsigned char *rd, *end;
		size_t len = 0;
		ns_rr rr;

		if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_class(rr) != ns_c_in ||
		    ns_rr_type(rr) != ns_t_txt || !av_dns_chain_has(&chain, ns_rr_name(rr)))
			continue;
		/* A TXT record is one or more <length><bytes> strings: joined. */
		rd = ns_rr_rdata(rr);
		end = rd + ns_rr_rdlen(rr);
		while (rd < end) {
			size_t l = *rd++;

			if (l > (size_t)(end - rd))
				break;
			memcpy(txt + len, rd, l);
			len += l;
			rd += l;
		}
		found++;
		if (len == strlen(expected) && memcmp(txt, expected, len) == 0) {
			valid = true;
			break;
		}
		if (first_wrong[0] == '\0')
			av_quote(txt, len, first_wrong, sizeof(first_wrong), 60);
	}
	if (!valid && found == 0)
		av_fail(problem, ACME_VALIDATE_PROBLEM_UNAUTHORIZED, "no TXT record found at %s",
		    qname);
	else if (!valid)
		av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
		    "incorrect TXT record \"%s\"%s found at %s", first_wrong,
		    found > 1 ? " (and others)" : "", qname);
out:
	free(buf);
	free(txt);
	return valid;
}

/* --- tls-alpn-01 ----------------------------------------------------------------------- */

/* RFC 8738 §6: the SNI for an ip identifier is its reverse-mapping name. */
static void
av_reverse_name(const struct av_input *in, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t used = 0;
	int i;

	if (in->ip_family == AF_INET) {
		snprintf(buf, len, "%u.%u.%u.%u.in-addr.arpa", in->ip[3], in->ip[2], in->ip[1],
		    in->ip[0]);
		return;
	}
	for (i = 15; i >= 0 && used + 4 < len; i--) {
		buf[used++] = hex[in->ip[i] & 0xf];
		buf[used++] = '.';
		buf[used++] = hex[in->ip[i] >> 4];
		buf[used++] = '.';
	}
	snprintf(buf + used, len - used, "ip6.arpa");
}

/* The RFC 8737 §3 checks of the presented certificate. */
static bool
av_tls_check_cert(X509 *cert, const struct av_input *in, const unsigned char digest[32],
    struct acme_validate_problem *problem)
{
	GENERAL_NAMES *sans = NULL;
	GENERAL_NAME *gn;
	ASN1_OBJECT *oid = NULL;
	ASN1_OCTET_STRING *inner = NULL;
	const ASN1_OCTET_STRING *data;
	const unsigned char *p;
	X509_EXTENSION *ext;
	bool ok = false;
	int crit = -1, idx;

	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (sans == NULL) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT, crit == -2 ?
		    "the certificate has more than one subjectAltName extension" :
		    "the certificate has no subjectAltName");
		goto out;
	}
	if (sk_GENERAL_NAME_num(sans) != 1) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
		    "the certificate's subjectAltName must hold exactly %s, it holds %d names",
		    in->name, sk_GENERAL_NAME_num(sans));
		goto out;
	}
	gn = sk_GENERAL_NAME_value(sans, 0);
	if (in->is_ip) {
		size_t want = in->ip_family == AF_INET ? 4 : 16;

		if (gn->type != GEN_IPADD || (size_t)ASN1_STRING_length(gn->d.iPAddress) != want ||
		    memcmp(ASN1_STRING_get0_data(gn->d.iPAddress), in->ip, want) != 0) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
			    "the certificate's subjectAltName is not the address %s", in->name);
			goto out;
		}
	} else {
		const unsigned char *name;
		size_t len, want = strlen(in->name);

		if (want > 0 && in->name[want - 1] == '.')
			want--;
		if (gn->type != GEN_DNS) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
			    "the certificate's subjectAltName is not a dNSName");
			goto out;
		}
		name = ASN1_STRING_get0_data(gn->d.dNSName);
		len = (size_t)ASN1_STRING_length(gn->d.dNSName);
		if (len != want || memchr(name, '\0', len) != NULL ||
		    strncasecmp((const char *)name, in->name, want) != 0) {
			char got[80];

			av_quote((const char *)name, len, got, sizeof(got), 64);
			av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
			    "the certificate's dNSName \"%s\" is not %s", got, in->name);
			goto out;
		}
	}

	oid = OBJ_txt2obj(AV_ACME_IDENTIFIER_OID, 1);
	if (oid == NULL) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_INTERNAL, "OBJ_txt2obj failed");
		goto out;
	}
	idx = X509_get_ext_by_OBJ(cert, oid, -1);
	if (idx < 0) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
		    "the certificate has no acmeIdentifier extension (%s)", AV_ACME_IDENTIFIER_OID);
		goto out;
	}
	if (X509_get_ext_by_OBJ(cert, oid, idx) >= 0) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
		    "the certificate has more than one acmeIdentifier extension");
		goto out;
	}
	ext = X509_get_ext(cert, idx);
	if (X509_EXTENSION_get_critical(ext) != 1) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
		    "the acmeIdentifier extension is not critical");
		goto out;
	}
	/* extnValue holds the DER of Authorization ::= OCTET STRING (SIZE (32)) */
	data = X509_EXTENSION_get_data(ext);
	p = ASN1_STRING_get0_data(data);
	inner = d2i_ASN1_OCTET_STRING(NULL, &p, ASN1_STRING_length(data));
	if (inner == NULL || p != ASN1_STRING_get0_data(data) + ASN1_STRING_length(data) ||
	    ASN1_STRING_length(inner) != 32) {
		ERR_clear_error();
		av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
		    "the acmeIdentifier extension is not an OCTET STRING of 32 bytes");
		goto out;
	}
	if (CRYPTO_memcmp(ASN1_STRING_get0_data(inner), digest, 32) != 0) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_INCORRECT,
		    "the acmeIdentifier extension does not hold the SHA-256 of the key "
		    "authorization");
		goto out;
	}
	ok = true;
out:
	GENERAL_NAMES_free(sans);
	ASN1_OBJECT_free(oid);
	ASN1_OCTET_STRING_free(inner);
	return ok;
}

/* The first OpenSSL error as text (the queue is drained). */
static void
av_ssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "handshake failed");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

bool
acme_validate_tlsalpn01(const struct acme_validate_params *params,
    const struct acme_validate_challenge *chall, struct acme_validate_problem *problem)
{
	static const unsigned char alpn_wire[] = "\x0a" AV_ALPN;
	struct av_input in;
	struct av_addrs addrs;
	unsigned char digest[32];
	char sni[AV_NAME_MAX + 2], err[256] = "", where[AV_NAME_MAX + 48];
	int64_t deadline = av_now_ms() + (int64_t)params->timeout_seconds * 1000;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	X509 *cert = NULL;
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;
	bool valid = false;
	size_t i;
	int fd = -1;

	problem->type = NULL;
	problem->detail[0] = '\0';
	if (!av_prepare(chall, &in, problem))
		return false;
	if (in.is_ip)
		av_reverse_name(&in, sni, sizeof(sni));
	else
		snprintf(sni, sizeof(sni), "%s", in.name);
	if (!av_resolve(params, in.name, params->tls_port, deadline, &addrs, problem))
		return false;
	av_keyauth_digest(in.keyauth, digest);

	for (i = 0; i < addrs.n && fd < 0; i++) {
		if (av_cancelled(params) || av_remaining_ms(deadline) == 0)
			break;
		fd = av_tcp_connect(params, (struct sockaddr *)&addrs.addr[i], addrs.len[i],
		    deadline, err, sizeof(err));
	}
	if (in.is_ip && in.ip_family == AF_INET6)
		snprintf(where, sizeof(where), "[%s]:%d", in.name, params->tls_port);
	else
		snprintf(where, sizeof(where), "%s:%d", in.name, params->tls_port);
	if (fd < 0) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION, "%s: %s", where,
		    av_cancelled(params) ? "validation cancelled" :
		    err[0] != '\0' ? err : "timeout");
		goto out;
	}

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		log_ssl_warnx("SSL_CTX_new(tls-alpn-01)");
		av_fail(problem, ACME_VALIDATE_PROBLEM_INTERNAL, "cannot set up TLS");
		goto out;
	}
	/* RFC 8737 §3: the certificate is self-signed; its content is checked
	 * below, not its chain. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(ssl, sni) != 1 ||
	    SSL_set_alpn_protos(ssl, alpn_wire, sizeof(alpn_wire) - 1) != 0) {
		log_ssl_warnx("SSL_new(tls-alpn-01)");
		av_fail(problem, ACME_VALIDATE_PROBLEM_INTERNAL, "cannot set up TLS");
		goto out;
	}
	for (;;) {
		int r = SSL_connect(ssl), e, w;

		if (r == 1)
			break;
		e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			av_ssl_error(err, sizeof(err));
			av_fail(problem, ACME_VALIDATE_PROBLEM_TLS, "%s: TLS handshake: %s", where,
			    err);
			goto out;
		}
		w = av_wait(params, fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
		if (w == -2) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION, "validation cancelled");
			goto out;
		}
		if (w <= 0) {
			av_fail(problem, ACME_VALIDATE_PROBLEM_CONNECTION,
			    "%s: timeout in the TLS handshake", where);
			goto out;
		}
	}
	SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
	if (alpn_len != strlen(AV_ALPN) || memcmp(alpn, AV_ALPN, alpn_len) != 0) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_TLS,
		    "%s: the server did not negotiate the %s protocol", where, AV_ALPN);
		goto out;
	}
	cert = SSL_get1_peer_certificate(ssl);
	if (cert == NULL) {
		av_fail(problem, ACME_VALIDATE_PROBLEM_TLS, "%s: no certificate presented", where);
		goto out;
	}
	valid = av_tls_check_cert(cert, &in, digest, problem);
	if (!valid) {
		char detail[sizeof(problem->detail)];

		snprintf(detail, sizeof(detail), "%.200s: %.300s", where, problem->detail);
		memcpy(problem->detail, detail, sizeof(detail));
	}
out:
	X509_free(cert);
	if (ssl != NULL)
		SSL_free(ssl);	/* no close_notify: nothing more to say */
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
	return valid;
}

/* --- dispatch, problem document ------------------------------------------------------------- */

bool
acme_validate_run(const struct acme_validate_params *params,
    const struct acme_validate_challenge *chall, struct acme_validate_problem *problem)
{
	switch (chall->type) {
	case ACME_VALIDATE_HTTP01:
		return acme_validate_http01(params, chall, problem);
	case ACME_VALIDATE_DNS01:
		return acme_validate_dns01(params, chall, problem);
	case ACME_VALIDATE_TLSALPN01:
		return acme_validate_tlsalpn01(params, chall, problem);
	case ACME_VALIDATE__MAX:
		break;
	}
	return av_fail(problem, ACME_VALIDATE_PROBLEM_MALFORMED, "unknown challenge type");
}

char *
acme_validate_problem_json(const struct acme_validate_problem *problem)
{
	json_t *doc = NULL;
	char *text = NULL;
	const char *type = problem->type != NULL ? problem->type : ACME_VALIDATE_PROBLEM_INTERNAL;
	int status = 403;

	if (strcmp(type, ACME_VALIDATE_PROBLEM_CONNECTION) == 0 ||
	    strcmp(type, ACME_VALIDATE_PROBLEM_MALFORMED) == 0 ||
	    strcmp(type, ACME_VALIDATE_PROBLEM_TLS) == 0 ||
	    strcmp(type, ACME_VALIDATE_PROBLEM_DNS) == 0)
		status = 400;
	else if (strcmp(type, ACME_VALIDATE_PROBLEM_INTERNAL) == 0)
		status = 500;
	doc = json_pack("{s:s, s:s, s:i}", "type", type, "detail", problem->detail,
	    "status", status);
	if (doc == NULL)
		return NULL;
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return text;
}

/* --- the validator: one challenge ------------------------------------------------------------ */

/* A challenge as loaded, copied out of the PGresult so that no result or
 * transaction is held during the (slow) check. */
struct av_job {
	int64_t challenge_id;
	int64_t authz_id;
	int64_t order_id;
	int64_t org_id;
	int64_t dept_id;
	char type[16];
	char token[AV_TOKEN_MAX + 1];
	char thumbprint[AV_THUMBPRINT_MAX + 1];
	char id_type[8];
	char id_value[AV_NAME_MAX + 8];
	bool wildcard;
	char authz_status[16];
	bool authz_expired;
	char account_status[16];
};

/* SQLSTATEs worth retrying the outcome transaction for. */
static bool
av_sqlstate_retry(const struct db *db)
{
	return strcmp(db->last_sqlstate, "40P01") == 0 || strcmp(db->last_sqlstate, "40001") == 0;
}

static int64_t
av_int64(const char *text)
{
	return text != NULL && text[0] != '\0' ? strtoll(text, NULL, 10) : 0;
}

/* Loads challenge_id. 1 loaded and 'processing', 0 nothing to do, -1 error. */
static int
av_job_load(struct db *db, int64_t challenge_id, struct av_job *job)
{
	static const char sql[] =
	    "SELECT c.type, c.token, c.status, a.id, a.status, a.id_type, a.id_value,"
	    " a.wildcard, a.expires_at <= now(), a.order_id, acc.key_thumbprint, acc.status,"
	    " COALESCE(acc.org_id, 0), COALESCE(acc.dept_id, 0)"
	    " FROM acme_challenges c"
	    " JOIN acme_authzs a ON a.id = c.authz_id"
	    " JOIN acme_accounts acc ON acc.id = a.account_id"
	    " WHERE c.id = $1";
	char id_text[24];
	const char *params[1] = { id_text };
	PGresult *res = NULL;
	int rc = -1;

	memset(job, 0, sizeof(*job));
	snprintf(id_text, sizeof(id_text), "%" PRId64, challenge_id);
	res = db_exec(db, "acme_challenge_load", sql, 1, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 2), "processing") != 0) {
		rc = 0;
		goto out;
	}
	job->challenge_id = challenge_id;
	snprintf(job->type, sizeof(job->type), "%s", PQgetvalue(res, 0, 0));
	snprintf(job->token, sizeof(job->token), "%s", PQgetvalue(res, 0, 1));
	job->authz_id = av_int64(PQgetvalue(res, 0, 3));
	snprintf(job->authz_status, sizeof(job->authz_status), "%s", PQgetvalue(res, 0, 4));
	snprintf(job->id_type, sizeof(job->id_type), "%s", PQgetvalue(res, 0, 5));
	snprintf(job->id_value, sizeof(job->id_value), "%s", PQgetvalue(res, 0, 6));
	job->wildcard = strcmp(PQgetvalue(res, 0, 7), "t") == 0;
	job->authz_expired = strcmp(PQgetvalue(res, 0, 8), "t") == 0;
	job->order_id = av_int64(PQgetvalue(res, 0, 9));
	snprintf(job->thumbprint, sizeof(job->thumbprint), "%s", PQgetvalue(res, 0, 10));
	snprintf(job->account_status, sizeof(job->account_status), "%s", PQgetvalue(res, 0, 11));
	job->org_id = av_int64(PQgetvalue(res, 0, 12));
	job->dept_id = av_int64(PQgetvalue(res, 0, 13));
	/* A stored value longer than our buffer is emptied rather than cut,
	 * so that av_prepare() refuses it instead of checking a prefix. */
	if (PQgetlength(res, 0, 1) > AV_TOKEN_MAX)
		job->token[0] = '\0';
	if (PQgetlength(res, 0, 6) >= (int)sizeof(job->id_value))
		job->id_value[0] = '\0';
	if (PQgetlength(res, 0, 10) > AV_THUMBPRINT_MAX)
		job->thumbprint[0] = '\0';
	rc = 1;
out:
	PQclear(res);
	return rc;
}

/* Runs one statement; returns the number of rows it touched, or -1. */
static int
av_exec_count(struct db *db, const char *what, const char *sql, int n, const char *const *params)
{
	PGresult *res = db_exec(db, what, sql, n, params);
	int count;

	if (res == NULL)
		return -1;
	count = atoi(PQcmdTuples(res));
	PQclear(res);
	return count;
}

/*
 * The outcome, in one transaction. valid: challenge valid, authz valid,
 * order ready if every authz is valid now. Otherwise challenge invalid with
 * problem_json; authz_status ("invalid", "expired", or NULL to leave the
 * authz alone) and, when the authz changed, the order invalid.
 * 1 written, 0 the challenge was no longer 'processing', -1 error.
 */
static int
av_job_record(struct db *db, const struct av_job *job, bool valid, const char *authz_status,
    const char *problem_json, const char *problem_type, const char *details_json)
{
	char cid[24], aid[24], oid[24];
	const char *p[3];
	int n, rc = -1;

	snprintf(cid, sizeof(cid), "%" PRId64, job->challenge_id);
	snprintf(aid, sizeof(aid), "%" PRId64, job->authz_id);
	snprintf(oid, sizeof(oid), "%" PRId64, job->order_id);
	if (db_begin(db) != 0)
		return -1;

	/* The order row first: serializes the outcomes of one order's authzs. */
	p[0] = oid;
	if (av_exec_count(db, "acme_order_lock",
	    "SELECT 1 FROM acme_orders WHERE id = $1 FOR UPDATE", 1, p) < 0)
		goto out;

	p[0] = cid;
	p[1] = valid ? "valid" : "invalid";
	p[2] = valid ? NULL : problem_json;
	n = av_exec_count(db, "acme_challenge_outcome",
	    "UPDATE acme_challenges SET status = $2::text,"
	    " validated_at = CASE WHEN $2 = 'valid' THEN now() END, error = $3::jsonb"
	    " WHERE id = $1 AND status = 'processing'", 3, p);
	if (n < 0)
		goto out;
	if (n == 0) {
		/* Someone else (another instance, an earlier run) wrote it. */
		db_rollback(db);
		return 0;
	}

	if (valid)
		authz_status = "valid";
	if (authz_status != NULL) {
		p[0] = aid;
		p[1] = authz_status;
		n = av_exec_count(db, "acme_authz_outcome",
		    "UPDATE acme_authzs SET status = $2 WHERE id = $1 AND status = 'pending'", 2, p);
		if (n < 0)
			goto out;
		if (n == 1 && valid) {
			p[0] = oid;
			if (av_exec_count(db, "acme_order_ready",
			    "UPDATE acme_orders o SET status = 'ready'"
			    " WHERE o.id = $1 AND o.status = 'pending'"
			    " AND NOT EXISTS (SELECT 1 FROM acme_authzs z"
			    "  WHERE z.order_id = o.id AND z.status <> 'valid')", 1, p) < 0)
				goto out;
		} else if (n == 1) {
			p[0] = oid;
			p[1] = problem_json;
			if (av_exec_count(db, "acme_order_invalid",
			    "UPDATE acme_orders SET status = 'invalid', error = $2::jsonb"
			    " WHERE id = $1 AND status = 'pending'", 2, p) < 0)
				goto out;
		}
	}
	if (db_audit(db, "acme-validator", "acme.challenge.validate", "acme_challenge",
	    job->challenge_id, job->org_id, job->dept_id, valid ? "ok" : "denied",
	    valid ? NULL : problem_type, details_json) != 0)
		goto out;
	if (db_commit(db) != 0)
		goto out;
	rc = 1;
out:
	if (rc < 0)
		db_rollback(db);
	return rc;
}

/* Sleeps ms in slices, returning early when cancelled. */
static void
av_sleep(const struct acme_validate_params *params, long ms)
{
	while (ms > 0 && !av_cancelled(params)) {
		struct timespec ts = { 0, (ms < AV_SLICE_MS ? ms : AV_SLICE_MS) * 1000000L };

		nanosleep(&ts, NULL);
		ms -= AV_SLICE_MS;
	}
}

int
acme_validator_process(struct db *db, const struct acme_validate_params *params,
    int64_t challenge_id)
{
	struct av_job job;
	struct acme_validate_challenge chall;
	struct acme_validate_problem problem = { NULL, "" };
	const char *authz_status = "invalid";
	char *problem_json = NULL, *details_json = NULL;
	json_t *details = NULL;
	bool valid = false;
	int type, rc, attempt;
	int64_t started;

	if (db_ensure(db) != 0)
		return -1;
	rc = av_job_load(db, challenge_id, &job);
	if (rc <= 0)
		return rc;

	type = acme_validate_type_parse(job.type);
	memset(&chall, 0, sizeof(chall));
	chall.type = type >= 0 ? (enum acme_validate_type)type : ACME_VALIDATE__MAX;
	chall.id_type = strcmp(job.id_type, "ip") == 0 ? ACME_VALIDATE_ID_IP : ACME_VALIDATE_ID_DNS;
	chall.id_value = job.id_value;
	chall.wildcard = job.wildcard;
	chall.token = job.token;
	chall.thumbprint = job.thumbprint;

	started = av_now_ms();
	if (strcmp(job.account_status, "valid") != 0) {
		av_fail(&problem, ACME_VALIDATE_PROBLEM_UNAUTHORIZED, "the account is %s",
		    job.account_status);
	} else if (strcmp(job.authz_status, "pending") != 0) {
		/* Deactivated, or already settled by another challenge: this
		 * one fails, the authorization keeps its status. */
		av_fail(&problem, ACME_VALIDATE_PROBLEM_UNAUTHORIZED, "the authorization is %s",
		    job.authz_status);
		authz_status = NULL;
	} else if (job.authz_expired) {
		av_fail(&problem, ACME_VALIDATE_PROBLEM_UNAUTHORIZED, "the authorization expired");
		authz_status = "expired";
	} else {
		valid = acme_validate_run(params, &chall, &problem);
	}
	if (!valid && av_cancelled(params)) {
		/* Stopping: leave it 'processing' for the next start. */
		log_info("acme challenge %" PRId64 ": validation cancelled; left processing",
		    challenge_id);
		return 0;
	}
	log_info("acme challenge %" PRId64 " (%s %s%s): %s%s (%" PRId64 " ms)", challenge_id,
	    job.type, job.wildcard ? "*." : "", job.id_value[0] != '\0' ? job.id_value : "?",
	    valid ? "valid" : "invalid: ", valid ? "" : problem.detail, av_now_ms() - started);

	if (!valid) {
		problem_json = acme_validate_problem_json(&problem);
		if (problem_json == NULL) {
			struct acme_validate_problem plain = { problem.type, "" };

			snprintf(plain.detail, sizeof(plain.detail), "validation failed");
			problem_json = acme_validate_problem_json(&plain);
		}
		if (problem_json == NULL) {
			log_errorx("acme_validate_problem_json: out of memory");
			return -1;
		}
	}
	details = json_pack("{s:s, s:{s:s, s:s}, s:b, s:s, s:s}", "challenge_type", job.type,
	    "identifier", "type", job.id_type, "value", job.id_value, "wildcard", job.wildcard,
	    "status", valid ? "valid" : "invalid", "detail", valid ? "" : problem.detail);
	if (details != NULL)
		details_json = json_dumps(details, JSON_COMPACT);

	/* Write; a deadlock or a lost connection is retried for a while (the
	 * check itself is not repeated). */
	rc = -1;
	for (attempt = 0; attempt < 40; attempt++) {
		if (db_ensure(db) == 0) {
			rc = av_job_record(db, &job, valid, authz_status, problem_json, problem.type,
			    details_json);
			if (rc >= 0)
				break;
			if (!db_unavailable(db) && !av_sqlstate_retry(db))
				break;
		}
		if (av_cancelled(params))
			break;
		av_sleep(params, attempt < 3 ? 50 : 500);
	}
	if (rc < 0)
		log_errorx("acme challenge %" PRId64 ": cannot record the outcome; it stays "
		    "processing", challenge_id);
	json_decref(details);
	free(details_json);
	free(problem_json);
	return rc;
}

/* --- the validator: threads and queue --------------------------------------------------------- */

struct av_worker {
	pthread_t thread;
	int64_t current;	/* challenge being worked on, 0 when idle */
	bool started;
};

/* One validator per process (acme_validator_submit() takes no handle). The
 * lock and condition are static so that submit before start is safe. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool running;
	bool stopping;
	atomic_bool cancel;
	struct acme_validate_params params;
	char *conninfo;
	struct av_worker *workers;
	int n_workers;
	int64_t queue[ACME_VALIDATOR_QUEUE_MAX];
	size_t head, count;
	bool sweep;		/* look for 'processing' challenges when idle */
	int64_t sweep_after;	/* pagination cursor of the sweep */
} av_validator = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
};

/* Queued or being worked on? Called with the lock held. */
static bool
av_known(int64_t id)
{
	size_t i;
	int w;

	for (i = 0; i < av_validator.count; i++) {
		if (av_validator.queue[(av_validator.head + i) % ACME_VALIDATOR_QUEUE_MAX] == id)
			return true;
	}
	for (w = 0; w < av_validator.n_workers; w++) {
		if (av_validator.workers[w].current == id)
			return true;
	}
	return false;
}

/* Appends id (lock held). false when the queue is full. */
static bool
av_enqueue(int64_t id)
{
	if (av_known(id))
		return true;
	if (av_validator.count >= ACME_VALIDATOR_QUEUE_MAX)
		return false;
	av_validator.queue[(av_validator.head + av_validator.count) % ACME_VALIDATOR_QUEUE_MAX] = id;
	av_validator.count++;
	pthread_cond_signal(&av_validator.wake);
	return true;
}

void
acme_validator_submit(int64_t challenge_id)
{
	if (challenge_id <= 0)
		return;
	pthread_mutex_lock(&av_validator.lock);
	if (!av_validator.running || av_validator.stopping) {
		pthread_mutex_unlock(&av_validator.lock);
		log_warnx("acme_validator_submit(%" PRId64 "): validator not running; the "
		    "challenge waits for the next start", challenge_id);
		return;
	}
	if (!av_enqueue(challenge_id)) {
		/* Full: the sweep finds it in the database later. */
		if (!av_validator.sweep)
			log_warnx("acme validator: queue full (%d); challenge %" PRId64
			    " will be found by a sweep", ACME_VALIDATOR_QUEUE_MAX, challenge_id);
		av_validator.sweep = true;
		av_validator.sweep_after = 0;
	}
	pthread_mutex_unlock(&av_validator.lock);
}

/* One page of 'processing' challenges into the queue (called with the queue
 * empty and the lock NOT held). */
static void
av_sweep(struct db *db, int64_t after)
{
	char after_text[24], limit_text[24];
	const char *params[2] = { after_text, limit_text };
	PGresult *res = NULL;
	int i, n;
	int64_t last = 0;

	snprintf(after_text, sizeof(after_text), "%" PRId64, after);
	snprintf(limit_text, sizeof(limit_text), "%d", ACME_VALIDATOR_QUEUE_MAX);
	if (db_ensure(db) != 0 || (res = db_exec(db, "acme_challenge_sweep",
	    "SELECT id FROM acme_challenges WHERE status = 'processing' AND id > $1"
	    " ORDER BY id LIMIT $2::int", 2, params)) == NULL) {
		/* Try again later: the database may be starting. */
		pthread_mutex_lock(&av_validator.lock);
		av_validator.sweep = true;
		av_validator.sweep_after = after;
		pthread_mutex_unlock(&av_validator.lock);
		av_sleep(&av_validator.params, 1000);
		return;
	}
	n = PQntuples(res);
	pthread_mutex_lock(&av_validator.lock);
	for (i = 0; i < n; i++) {
		last = av_int64(PQgetvalue(res, i, 0));
		(void)av_enqueue(last);
	}
	if (n == ACME_VALIDATOR_QUEUE_MAX) {
		/* More: the next page when this one is done. */
		av_validator.sweep = true;
		av_validator.sweep_after = last;
	}
	pthread_mutex_unlock(&av_validator.lock);
	if (n > 0)
		log_info("acme validator: picked up %d challenge(s) left processing", n);
	PQclear(res);
}

static void *
av_worker_main(void *arg)
{
	struct av_worker *self = arg;
	struct db *db = db_new(av_validator.conninfo);
	char request_id[40];

	if (db == NULL)
		log_errorx("acme validator: db_new failed; this thread validates nothing");
	pthread_mutex_lock(&av_validator.lock);
	while (!av_validator.stopping) {
		int64_t id;
		int rc;

		if (db == NULL) {
			pthread_cond_wait(&av_validator.wake, &av_validator.lock);
			continue;
		}
		if (av_validator.count > 0) {
			id = av_validator.queue[av_validator.head];
			av_validator.head = (av_validator.head + 1) % ACME_VALIDATOR_QUEUE_MAX;
			av_validator.count--;
			self->current = id;
			pthread_mutex_unlock(&av_validator.lock);

			snprintf(request_id, sizeof(request_id), "acme-chall-%" PRId64, id);
			log_request_id(request_id);
			rc = acme_validator_process(db, &av_validator.params, id);
			log_request_id(NULL);

			pthread_mutex_lock(&av_validator.lock);
			self->current = 0;
			if (rc < 0 && !av_validator.stopping) {
				/* The database is away: put it back and wait a bit. */
				if (!av_enqueue(id)) {
					av_validator.sweep = true;
					av_validator.sweep_after = 0;
				}
				pthread_mutex_unlock(&av_validator.lock);
				av_sleep(&av_validator.params, 1000);
				pthread_mutex_lock(&av_validator.lock);
			}
			continue;
		}
		if (av_validator.sweep) {
			int64_t after = av_validator.sweep_after;

			av_validator.sweep = false;
			av_validator.sweep_after = 0;
			pthread_mutex_unlock(&av_validator.lock);
			av_sweep(db, after);
			pthread_mutex_lock(&av_validator.lock);
			continue;
		}
		pthread_cond_wait(&av_validator.wake, &av_validator.lock);
	}
	pthread_mutex_unlock(&av_validator.lock);
	db_close(db);
	return NULL;
}

int
acme_validator_start(const struct enrolld_config *cfg, const char *conninfo)
{
	int i, n = cfg->validation_workers > 0 ? cfg->validation_workers : 1;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_errorx("curl_global_init: failed");
		return -1;
	}
	pthread_mutex_lock(&av_validator.lock);
	if (av_validator.running) {
		pthread_mutex_unlock(&av_validator.lock);
		log_errorx("acme_validator_start: already running");
		return -1;
	}
	acme_validate_params_from_config(cfg, &av_validator.params);
	atomic_store(&av_validator.cancel, false);
	av_validator.params.cancel = &av_validator.cancel;
	av_validator.conninfo = strdup(conninfo != NULL ? conninfo : "");
	av_validator.workers = calloc((size_t)n, sizeof(*av_validator.workers));
	if (av_validator.conninfo == NULL || av_validator.workers == NULL) {
		free(av_validator.conninfo);
		free(av_validator.workers);
		av_validator.conninfo = NULL;
		av_validator.workers = NULL;
		pthread_mutex_unlock(&av_validator.lock);
		log_errorx("acme_validator_start: out of memory");
		return -1;
	}
	av_validator.n_workers = n;
	av_validator.head = 0;
	av_validator.count = 0;
	av_validator.stopping = false;
	av_validator.running = true;
	/* Challenges a previous run left 'processing'. */
	av_validator.sweep = true;
	av_validator.sweep_after = 0;
	for (i = 0; i < n; i++) {
		int err = pthread_create(&av_validator.workers[i].thread, NULL, av_worker_main,
		    &av_validator.workers[i]);

		if (err != 0) {
			log_errorx("pthread_create(acme validator): %s", strerror(err));
			break;
		}
		av_validator.workers[i].started = true;
	}
	pthread_mutex_unlock(&av_validator.lock);
	if (i < n) {
		acme_validator_stop();
		return -1;
	}
	log_info("acme validator: %d thread(s), timeout %d s, http port %d, tls port %d, "
	    "resolver %s%s", n, av_validator.params.timeout_seconds, av_validator.params.http_port,
	    av_validator.params.tls_port,
	    av_validator.params.dns_resolver[0] != '\0' ? av_validator.params.dns_resolver : "system",
	    av_validator.params.allow_private ? ", private addresses allowed" : "");
	return 0;
}

void
acme_validator_stop(void)
{
	int i;

	pthread_mutex_lock(&av_validator.lock);
	if (!av_validator.running) {
		pthread_mutex_unlock(&av_validator.lock);
		return;
	}
	av_validator.stopping = true;
	atomic_store(&av_validator.cancel, true);
	pthread_cond_broadcast(&av_validator.wake);
	pthread_mutex_unlock(&av_validator.lock);

	/* Threads see the flag within AV_SLICE_MS of any wait. */
	for (i = 0; i < av_validator.n_workers; i++) {
		if (av_validator.workers[i].started)
			pthread_join(av_validator.workers[i].thread, NULL);
	}

	pthread_mutex_lock(&av_validator.lock);
	free(av_validator.workers);
	free(av_validator.conninfo);
	av_validator.workers = NULL;
	av_validator.conninfo = NULL;
	av_validator.n_workers = 0;
	av_validator.count = 0;
	av_validator.head = 0;
	av_validator.sweep = false;
	av_validator.running = false;
	av_validator.stopping = false;
	pthread_mutex_unlock(&av_validator.lock);
}
