/*
 * http.c: listeners, TLS, the router, and the trip of a request through the
 * worker pool.
 *
 * Each [listener] is one evhttp bound to one address. TLS listeners create a
 * bufferevent_openssl per connection (evhttp_set_bevcb) from the listener's
 * current SSL_CTX; SIGHUP builds new SSL_CTXs and swaps the pointer, so new
 * connections get the new certificate while open ones keep theirs (an SSL
 * holds a reference to its SSL_CTX). TLS 1.2 is the floor. On listeners that
 * serve EST a client certificate is requested but not required, and any is
 * accepted at the TLS layer: the door decides what it trusts.
 *
 * The loop thread (every function here) copies the request into a job --
 * method, decoded path, raw query, headers, body, peer address, client
 * certificate DER -- picks the door by path prefix, and submits it to the
 * worker pool; a full queue is answered 503 at once. The reply is sent from
 * http_server_job_done() when the worker hands the job back. If the client
 * went away meanwhile, libevent has detached the request from its connection
 * and evhttp_send_reply() merely frees it.
 *
 * Bodies larger than max_body are refused by evhttp itself (its own 413 page
 * and a closed connection): libevent 2.1 gives no hook to answer that case
 * with a problem document, and reading a body only to refuse it would defeat
 * the bound. A body that slips past (reload lowered the bound) gets a 413
 * problem document from here.
 *
 * One log line per request, on completion: method, path without the query
 * (it may carry secrets), status, duration, peer.
 */
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ca.h"
#include "config.h"
#include "doors.h"
#include "log.h"
#include "public_random.h"
#include "request.h"
#include "workers.h"

#define HTTP_MAX_HEADERS_SIZE (64 * 1024)
/* Seconds an idle or slow connection may stay open. */
#define HTTP_CONNECTION_TIMEOUT 60
/* The most plaintext one TLS record carries. */
#define HTTP_TLS_RECORD_MAX 16384
/* Retry-After when the queue is full. */
#define HTTP_QUEUE_RETRY_AFTER 1

/*
 * A reference-counted config snapshot. Each job points at the snapshot that
 * was current when it arrived, so a SIGHUP never changes the config under a
 * running handler. Only the loop thread takes and drops references.
 */
struct http_config_ref {
	struct enrolld_config cfg;
	int refs;
};

struct http_listener {
	struct http_server *server;
	struct listener_config conf;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	SSL_CTX *ssl_ctx;	/* NULL for plain HTTP */
};

struct http_server {
	struct event_base *base;
	struct ca *ca;
	struct http_config_ref *cfg;	/* current snapshot */
	struct http_listener listeners[CONFIG_MAX_LISTENERS];
	int n_listeners;
	struct workers *workers;
	bool stopping;
	/* replies handed to evhttp but not yet completely written (loop
	 * thread only): shutdown waits for them, or they would be cut off */
	size_t sending;
	/* The Date header for the second date_sec (loop thread only). */
	time_t date_sec;
	char date[32];
};

/* A request in flight: the job plus everything it points into. */
struct http_pending {
	struct job job;			/* first: &pending->job == job */
	struct http_server *server;
	struct http_listener *listener;
	struct evhttp_request *ev_req;
	struct http_config_ref *cfg_ref;
	struct timespec started;
	char request_id[16];
	const char *method_name;	/* static string */
	char *path;
	char peer_addr[INET6_ADDRSTRLEN + 16];
	/* One allocation for the header table, its strings, the query, the
	 * base URL and the body (see http_pending_fill): a request costs two
	 * mallocs here (this and the decoded path) instead of one per string. */
	void *block;
	unsigned char *peer_cert_der;
};

/* --- router --------------------------------------------------------------- */

/*
 * Path prefix -> door. A NULL handler is a door not built yet: it answers
 * 404 until protocols/acme, scep and est provide acme_handle(),
 * scep_handle() and est_handle() (declare them in protocols/doors.h and fill
 * the handler column).
 */
static const struct http_route {
	const char *prefix;
	unsigned door;
	door_handler_fn handler;
	const char *name;
} http_routes[] = {
	{ "/api/v1/", DOOR_ADMIN, admin_handle, "admin" },
	{ "/crl/", DOOR_CRL, crl_handle, "crl" },
	{ "/acme/", DOOR_ACME, acme_handle, "acme" },
	{ "/scep/", DOOR_SCEP, NULL, "scep" },
	{ "/.well-known/est/", DOOR_EST, NULL, "est" },
};

/* The route whose prefix matches (also the prefix without its final '/'). */
static const struct http_route *
http_route_find(const char *path)
{
	size_t i, len;

	for (i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]); i++) {
		len = strlen(http_routes[i].prefix);
		if (strncmp(path, http_routes[i].prefix, len) == 0 ||
		    (strncmp(path, http_routes[i].prefix, len - 1) == 0 && path[len - 1] == '\0'))
			return &http_routes[i];
	}
	return NULL;
}

/* --- config snapshots ----------------------------------------------------- */

static struct http_config_ref *
http_config_new(const struct enrolld_config *cfg)
{
	struct http_config_ref *ref = malloc(sizeof(*ref));

	if (ref == NULL)
		return NULL;
	memcpy(&ref->cfg, cfg, sizeof(*cfg));
	ref->refs = 1;
	return ref;
}

static void
http_config_release(struct http_config_ref *ref)
{
	if (ref != NULL && --ref->refs == 0)
		free(ref);
}

/* --- TLS ------------------------------------------------------------------ */

/* Any client certificate passes the handshake; EST checks it against the CA. */
static int
http_tls_verify_any(int preverify_ok, X509_STORE_CTX *store)
{
	(void)preverify_ok;
	(void)store;
	return 1;
}

/* Offers only HTTP/1.1 (evhttp speaks nothing else). */
static int
http_tls_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char http11[] = "\x08http/1.1";
	unsigned char *selected = NULL;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&selected, outlen, http11, sizeof(http11) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = selected;
	return SSL_TLSEXT_ERR_OK;
}

/*
 * A server context for one listener from PEM files (certificate chain, key).
 * Returns a new SSL_CTX (the caller frees) or NULL (logged).
 */
static SSL_CTX *
http_tls_ctx_new(const struct listener_config *lc, const char *cert_file, const char *key_file)
{
	static const unsigned char session_ctx[] = "enrolld";
	SSL_CTX *ctx = NULL;

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		log_ssl_warnx("SSL_CTX_new(listener %s)", lc->name);
		goto fail;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		log_ssl_warnx("SSL_CTX_set_min_proto_version(listener %s)", lc->name);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_COMPRESSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		log_ssl_warnx("SSL_CTX_use_certificate_chain_file(%s)", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		log_ssl_warnx("SSL_CTX_use_PrivateKey_file(%s)", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		log_ssl_warnx("SSL_CTX_check_private_key(%s, %s): key does not match certificate",
		    cert_file, key_file);
		goto fail;
	}
	/* Needed for session resumption once client certificates are in play. */
	if (SSL_CTX_set_session_id_context(ctx, session_ctx, sizeof(session_ctx) - 1) != 1) {
		log_ssl_warnx("SSL_CTX_set_session_id_context(listener %s)", lc->name);
		goto fail;
	}
	if (lc->doors & DOOR_EST)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, http_tls_verify_any);
	SSL_CTX_set_alpn_select_cb(ctx, http_tls_alpn, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL_CTX *
http_listener_tls_ctx(const struct http_server *s, const struct listener_config *lc)
{
	const char *cert = lc->cert_file, *key = lc->key_file;

	if (cert[0] == '\0') {
		cert = s->ca != NULL ? ca_tls_cert_path(s->ca) : NULL;
		key = s->ca != NULL ? ca_tls_key_path(s->ca) : NULL;
		if (cert == NULL || key == NULL || cert[0] == '\0' || key[0] == '\0') {
			log_errorx("listener %s: TLS but no certificate configured and none "
			    "bootstrapped", lc->name);
			return NULL;
		}
	}
	return http_tls_ctx_new(lc, cert, key);
}

/* evhttp asks for each new connection's bufferevent: a TLS one. */
static struct bufferevent *
http_tls_bevcb(struct event_base *base, void *arg)
{
	struct http_listener *l = arg;
	struct bufferevent *bev = NULL;
	SSL *ssl = NULL;

	ssl = SSL_new(l->ssl_ctx);
	if (ssl != NULL)
		bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		/* evhttp would fall back to a plain bufferevent: never serve
		 * cleartext on a TLS port. Only allocation failure gets here. */
		log_ssl_warnx("SSL_new/bufferevent_openssl_socket_new(listener %s)",
		    l->conf.name);
		abort();
	}
	/* Many clients close without close_notify; that is not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* --- the reply ------------------------------------------------------------ */

static double
http_elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) * 1000.0 +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

static void
http_pending_free(struct http_pending *p)
{
	if (p == NULL)
		return;
	http_response_free(&p->job.resp);
	free(p->path);
	free(p->block);
	OPENSSL_free(p->peer_cert_der);
	http_config_release(p->cfg_ref);
	free(p);
}

/* evhttp has written a reply completely. (A connection that fails while
 * writing never calls this; shutdown's bounded wait covers that case.) */
static void
http_reply_sent(struct evhttp_request *req, void *arg)
{
	struct http_server *s = arg;

	(void)req;
	if (s->sending > 0)
		s->sending--;
}

size_t
http_server_sending(const struct http_server *s)
{
	return s->sending;
}

/*
 * evhttp queues a reply as a chain of evbuffer chunks (the status line and
 * headers, then the body), and bufferevent_openssl makes one SSL_write, so
 * one TLS record and one write(2), per chunk. Made contiguous before the
 * loop writes it, a reply goes out as one record in one system call.
 */
static void
http_reply_coalesce(struct evhttp_connection *conn)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
	struct evbuffer *out = bev != NULL ? bufferevent_get_output(bev) : NULL;
	size_t len = out != NULL ? evbuffer_get_length(out) : 0;

	/* Larger replies take several records anyway: not worth a copy.
	 * Failure leaves the chain as it was, which is merely slower. */
	if (len > 0 && len <= HTTP_TLS_RECORD_MAX)
		(void)evbuffer_pullup(out, -1);
}

/* evbuffer_add_reference's cleanup: the reply body handed over by http_reply. */
static void
http_reply_body_free(const void *data, size_t len, void *extra)
{
	(void)data;
	(void)len;
	free(extra);
}

/*
 * The Date header value (RFC 9110 IMF-fixdate, as evhttp writes it) for the
 * loop's cached time. evhttp would format it with snprintf for every reply;
 * it changes once a second.
 */
static const char *
http_date(struct http_server *s)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	    "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct timeval tv;
	struct tm tm;

	if (event_base_gettimeofday_cached(s->base, &tv) != 0)
		gettimeofday(&tv, NULL);
	if (s->date[0] != '\0' && tv.tv_sec == s->date_sec)
		return s->date;
	if (gmtime_r(&tv.tv_sec, &tm) == NULL)
		return NULL;
	snprintf(s->date, sizeof(s->date), "%s, %02d %s %4d %02d:%02d:%02d GMT",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], 1900 + tm.tm_year,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
	s->date_sec = tv.tv_sec;
	return s->date;
}

/*
 * Sends p->job.resp on p->ev_req, logs the request line, and frees p.
 * `close` adds Connection: close (shutting down).
 */
static void
http_reply(struct http_pending *p)
{
	struct http_response *resp = &p->job.resp;
	struct evhttp_request *req = p->ev_req;
	struct evkeyvalq *out;
	struct evbuffer *body = NULL;
	struct evhttp_connection *req_conn = evhttp_request_get_connection(req);
	bool gone = req_conn == NULL;
	const char *date;
	char len_text[32];
	size_t i;

	if (resp->status < 100 || resp->status > 599) {
		log_request_id(p->request_id);
		log_errorx("door handler for %s left status %d; answering 500", p->path != NULL ?
		    p->path : "?", resp->status);
		log_request_id(NULL);
		http_response_free(resp);
		http_response_problem(resp, 500, NULL, "internal_error", "internal error");
	}

	out = evhttp_request_get_output_headers(req);
	for (i = 0; i < resp->n_headers; i++)
		evhttp_add_header(out, resp->headers[i].name, resp->headers[i].value);
	evhttp_add_header(out, "X-Request-Id", p->request_id);
	/* evhttp adds a Date to HTTP/1.1 replies that lack one, formatting it
	 * anew each time; with ours present it adds none. Same replies. */
	if (req->major == 1 && req->minor >= 1 && (date = http_date(p->server)) != NULL)
		evhttp_add_header(out, "Date", date);
	if (p->server->stopping)
		evhttp_add_header(out, "Connection", "close");

	body = evbuffer_new();
	if (body == NULL) {
		log_errorx("evbuffer_new(reply): out of memory");
	} else if (resp->body != NULL && resp->body_len > 0) {
		if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
			/* HEAD: the length of the body a GET would get, no body. */
			snprintf(len_text, sizeof(len_text), "%zu", resp->body_len);
			evhttp_remove_header(out, "Content-Length");
			evhttp_add_header(out, "Content-Length", len_text);
		} else if (evbuffer_add_reference(body, resp->body, resp->body_len,
		    http_reply_body_free, resp->body) == 0) {
			/* The evbuffer owns the body now: no copy, and no
			 * >= 1 KiB chain malloc'd for it per reply. */
			resp->body = NULL;
		} else if (evbuffer_add(body, resp->body, resp->body_len) != 0) {
			log_errorx("evbuffer_add(reply, %zu bytes): failed", resp->body_len);
		}
	}
	/* With the client gone this only frees the request. */
	if (!gone) {
		p->server->sending++;
		evhttp_request_set_on_complete_cb(req, http_reply_sent, p->server);
	}
	evhttp_send_reply(req, resp->status, NULL, body);
	if (body != NULL)
		evbuffer_free(body);
	if (!gone && p->listener->ssl_ctx != NULL)
		http_reply_coalesce(req_conn);

	if (log_enabled(LOG_LEVEL_INFO)) {
		log_request_id(p->request_id);
		log_info("%s %s %d %.1f ms %s%s", p->method_name, p->path != NULL ? p->path : "-",
		    resp->status, http_elapsed_ms(&p->started), p->peer_addr,
		    gone ? " (client gone)" : "");
		log_request_id(NULL);
	}
	http_pending_free(p);
}

void
http_server_job_done(struct job *job, void *arg)
{
	(void)arg;
	http_reply((struct http_pending *)job->owner);
}

/* --- the request ---------------------------------------------------------- */

static enum http_method
http_method_of(enum evhttp_cmd_type cmd, const char **name)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: *name = "GET"; return HTTP_GET;
	case EVHTTP_REQ_HEAD: *name = "HEAD"; return HTTP_HEAD;
	case EVHTTP_REQ_POST: *name = "POST"; return HTTP_POST;
	case EVHTTP_REQ_PUT: *name = "PUT"; return HTTP_PUT;
	case EVHTTP_REQ_PATCH: *name = "PATCH"; return HTTP_PATCH;
	case EVHTTP_REQ_DELETE: *name = "DELETE"; return HTTP_DELETE;
	case EVHTTP_REQ_OPTIONS: *name = "OPTIONS"; return HTTP_OTHER;
	case EVHTTP_REQ_TRACE: *name = "TRACE"; return HTTP_OTHER;
	case EVHTTP_REQ_CONNECT: *name = "CONNECT"; return HTTP_OTHER;
	default: *name = "OTHER"; return HTTP_OTHER;
	}
}

/* "r-" + 12 hex characters from the CSPRNG (not secret, but unguessable ids
 * do no harm and cost nothing). */
static void
http_request_id(char out[16])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[6];
	size_t i;

	if (public_random_bytes(raw, sizeof(raw)) != 0) {
		/* Not fatal: an id only needs to tell log lines apart. */
		static unsigned long counter;

		ERR_clear_error();
		counter++;
		for (i = 0; i < sizeof(raw); i++)
			raw[i] = (unsigned char)(counter >> (8 * i));
	}
	out[0] = 'r';
	out[1] = '-';
	for (i = 0; i < sizeof(raw); i++) {
		out[2 + 2 * i] = hex[raw[i] >> 4];
		out[3 + 2 * i] = hex[raw[i] & 0xf];
	}
	out[14] = '\0';
}

/* A Host header we are willing to echo into URLs: host[:port], no oddities. */
static bool
http_host_ok(const char *host)
{
	const char *c;

	if (host == NULL || host[0] == '\0' || strlen(host) > 255)
		return false;
	for (c = host; *c != '\0'; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == ':' ||
		    *c == '[' || *c == ']' || *c == '_'))
			return false;
	}
	return true;
}

/*
 * Appends src (NUL-terminated) to out at *len, never past cap - 1, and
 * keeps out NUL-terminated. For the few short strings built per request,
 * where snprintf's format parsing costs more than the copy.
 */
static void
http_append(char *out, size_t cap, size_t *len, const char *src)
{
	size_t n = strlen(src);

	if (*len >= cap - 1)
		return;
	if (n > cap - 1 - *len)
		n = cap - 1 - *len;
	memcpy(out + *len, src, n);
	*len += n;
	out[*len] = '\0';
}

/* "host:port", or "[host]:port" for an IPv6 address. */
static void
http_format_peer(char *out, size_t cap, const char *host, unsigned port)
{
	char digits[8];
	size_t len = 0, i = sizeof(digits);

	out[0] = '\0';
	digits[--i] = '\0';
	do {
		digits[--i] = (char)('0' + port % 10);
		port /= 10;
	} while (port > 0 && i > 0);
	if (strchr(host, ':') != NULL) {
		http_append(out, cap, &len, "[");
		http_append(out, cap, &len, host);
		http_append(out, cap, &len, "]");
	} else {
		http_append(out, cap, &len, host);
	}
	http_append(out, cap, &len, ":");
	http_append(out, cap, &len, digits + i);
}

/*
 * Copies what the door needs out of libevent into p. Returns 0, or an HTTP
 * status (400 for a path we cannot decode, 413, 500) with the problem
 * already in p->job.resp.
 *
 * The header table, the header strings, the query, the base URL and the
 * body share one allocation (p->block), sized first and filled second: a
 * request used to cost two strdup()s per header plus four more mallocs.
 */
static int
http_pending_fill(struct http_pending *p, struct evhttp_request *req)
{
	struct http_request *r = &p->job.req;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *input = evhttp_request_get_input_buffer(req);
	struct evkeyval *kv;
	struct http_header *headers = NULL;
	const char *raw_path, *raw_query, *host;
	char *peer = NULL, *text;
	ev_uint16_t peer_port = 0;
	size_t n, decoded_len = 0, body_len, size, len, base_len = 0, query_len = 0;
	char base[300];

	r->request_id = p->request_id;
	r->method = http_method_of(evhttp_request_get_command(req), &p->method_name);
	r->method_name = p->method_name;

	if (evcon != NULL) {
		evhttp_connection_get_peer(evcon, &peer, &peer_port);
		http_format_peer(p->peer_addr, sizeof(p->peer_addr), peer != NULL ? peer : "?",
		    peer_port);
	} else {
		memcpy(p->peer_addr, "?", 2);
	}
	r->peer_addr = p->peer_addr;

	raw_path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	if (raw_path == NULL || raw_path[0] == '\0')
		raw_path = "/";
	p->path = evhttp_uridecode(raw_path, 0, &decoded_len);
	if (p->path == NULL) {
		http_response_problem(&p->job.resp, 500, NULL, "internal_error", "out of memory");
		return 500;
	}
	if (strlen(p->path) != decoded_len || p->path[0] != '/') {
		/* An encoded NUL, or no leading '/': log a safe form. */
		free(p->path);
		p->path = strdup("(undecodable)");
		http_response_problem(&p->job.resp, 400, NULL, "bad_path",
		    "the request path cannot be decoded");
		return 400;
	}
	r->path = p->path;

	body_len = evbuffer_get_length(input);
	if (body_len > p->cfg_ref->cfg.max_body) {
		http_response_problem(&p->job.resp, 413, NULL, "body_too_large",
		    "the request body exceeds %zu bytes", p->cfg_ref->cfg.max_body);
		return 413;
	}

	r->tls = p->listener->ssl_ctx != NULL;
	host = evhttp_find_header(in, "Host");
	if (http_host_ok(host)) {
		http_append(base, sizeof(base), &base_len, r->tls ? "https://" : "http://");
		http_append(base, sizeof(base), &base_len, host);
	} else if (strchr(p->listener->conf.address, ':') != NULL) {
		base_len = (size_t)snprintf(base, sizeof(base), "%s://[%s]:%d",
		    r->tls ? "https" : "http", p->listener->conf.address,
		    p->listener->conf.port);
	} else {
		base_len = (size_t)snprintf(base, sizeof(base), "%s://%s:%d",
		    r->tls ? "https" : "http", p->listener->conf.address,
		    p->listener->conf.port);
	}
	if (base_len >= sizeof(base))
		base_len = sizeof(base) - 1;

	raw_query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	if (raw_query != NULL)
		query_len = strlen(raw_query);

	/* Size the block: table, strings, query, base URL, body. */
	n = 0;
	size = 0;
	for (kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		n++;
		size += strlen(kv->key) + 1 + strlen(kv->value) + 1;
	}
	size += n * sizeof(*headers) + (raw_query != NULL ? query_len + 1 : 0) + base_len + 1 +
	    body_len + 1;
	p->block = malloc(size);
	if (p->block == NULL)
		goto oom;
	headers = p->block;
	text = (char *)(headers + n);

	n = 0;
	for (kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		len = strlen(kv->key) + 1;
		memcpy(text, kv->key, len);
		headers[n].name = text;
		text += len;
		len = strlen(kv->value) + 1;
		memcpy(text, kv->value, len);
		headers[n].value = text;
		text += len;
		n++;
	}
	r->headers = n > 0 ? headers : NULL;
	r->n_headers = n;

	if (raw_query != NULL) {
		memcpy(text, raw_query, query_len + 1);
		r->query = text;
		text += query_len + 1;
	}

	memcpy(text, base, base_len);
	text[base_len] = '\0';
	r->base_url = text;
	text += base_len + 1;

	if (body_len > 0 && evbuffer_copyout(input, text, body_len) != (ev_ssize_t)body_len)
		goto oom;
	text[body_len] = '\0';
	r->body = (const unsigned char *)text;
	r->body_len = body_len;

	if (r->tls && evcon != NULL) {
		struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
		SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
		X509 *cert = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;

		if (cert != NULL) {
			int der_len = i2d_X509(cert, &p->peer_cert_der);

			if (der_len <= 0) {
				log_ssl_warnx("i2d_X509(peer certificate)");
				p->peer_cert_der = NULL;
			} else {
				r->peer_cert_der = p->peer_cert_der;
				r->peer_cert_der_len = (size_t)der_len;
			}
		}
	}
	return 0;
oom:
	log_errorx("http_pending_fill: out of memory");
	http_response_free(&p->job.resp);
	http_response_problem(&p->job.resp, 500, NULL, "internal_error", "out of memory");
	return 500;
}

/* evhttp's callback for every request on every listener. */
static void
http_request_cb(struct evhttp_request *req, void *arg)
{
	struct http_listener *l = arg;
	struct http_server *s = l->server;
	struct http_pending *p = NULL;
	const struct http_route *route;

	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		log_errorx("calloc(request): out of memory");
		evhttp_send_error(req, 500, NULL);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &p->started);
	p->server = s;
	p->listener = l;
	p->ev_req = req;
	p->job.owner = p;
	p->cfg_ref = s->cfg;
	s->cfg->refs++;
	p->job.cfg = &p->cfg_ref->cfg;
	http_request_id(p->request_id);

	if (http_pending_fill(p, req) != 0)
		goto reply;

	if (s->stopping || s->workers == NULL) {
		http_response_unavailable(&p->job.resp, HTTP_QUEUE_RETRY_AFTER);
		goto reply;
	}

	route = http_route_find(p->path);
	if (route == NULL || (l->conf.doors & route->door) == 0) {
		http_response_problem(&p->job.resp, 404, NULL, "not_found",
		    "no such resource");
		goto reply;
	}
	if (route->handler == NULL) {
		/* ACME, SCEP and EST: not built yet (see http_routes). */
		http_response_problem(&p->job.resp, 404, NULL, "door_not_available",
		    "the %s door is not available on this server", route->name);
		goto reply;
	}

	p->job.handler = route->handler;
	if (workers_submit(s->workers, &p->job) != 0) {
		log_request_id(p->request_id);
		log_warnx("worker queue full (%d); answering 503", p->cfg_ref->cfg.queue_max);
		log_request_id(NULL);
		http_response_unavailable(&p->job.resp, HTTP_QUEUE_RETRY_AFTER);
		goto reply;
	}
	return;
reply:
	http_reply(p);
}

/* --- listeners ------------------------------------------------------------ */

static int
http_listener_open(struct http_server *s, struct http_listener *l,
    const struct listener_config *lc)
{
	int one = 1;

	l->server = s;
	memcpy(&l->conf, lc, sizeof(*lc));
	l->http = evhttp_new(s->base);
	if (l->http == NULL) {
		log_errorx("evhttp_new(listener %s): failed", lc->name);
		return -1;
	}
	evhttp_set_max_headers_size(l->http, HTTP_MAX_HEADERS_SIZE);
	evhttp_set_max_body_size(l->http, (ev_ssize_t)s->cfg->cfg.max_body);
	evhttp_set_timeout(l->http, HTTP_CONNECTION_TIMEOUT);
	/* evhttp would label an untyped body text/html; say nothing instead. */
	evhttp_set_default_content_type(l->http, NULL);
	evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(l->http, http_request_cb, l);
	if (lc->tls) {
		l->ssl_ctx = http_listener_tls_ctx(s, lc);
		if (l->ssl_ctx == NULL)
			return -1;
		evhttp_set_bevcb(l->http, http_tls_bevcb, l);
	}
	l->bound = evhttp_bind_socket_with_handle(l->http, lc->address, (ev_uint16_t)lc->port);
	if (l->bound == NULL) {
		log_errorx("bind(listener %s, %s port %d): %s", lc->name, lc->address, lc->port,
		    strerror(errno));
		return -1;
	}
	/* Responses are written whole; without TCP_NODELAY a response that
	 * spans two segments waits for the client's delayed ACK (~40 ms).
	 * Linux copies the option to every socket accept() returns. */
	if (setsockopt(evhttp_bound_socket_get_fd(l->bound), IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) != 0)
		log_warnx("setsockopt(listener %s, TCP_NODELAY): %s", lc->name, strerror(errno));
	log_info("listener %s on %s port %d (%s)", lc->name, lc->address, lc->port,
	    lc->tls ? "https" : "http");
	return 0;
}

int
http_server_start(struct event_base *base, const struct enrolld_config *cfg,
    struct ca *ca, struct http_server **out)
{
	struct http_server *s = NULL;
	int i;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		log_errorx("http_server_start: out of memory");
		return -1;
	}
	s->base = base;
	s->ca = ca;
	s->cfg = http_config_new(cfg);
	if (s->cfg == NULL) {
		log_errorx("http_server_start: out of memory");
		goto fail;
	}
	for (i = 0; i < cfg->n_listeners; i++) {
		s->n_listeners++;
		if (http_listener_open(s, &s->listeners[i], &cfg->listeners[i]) != 0)
			goto fail;
	}
	*out = s;
	return 0;
fail:
	http_server_free(s);
	return -1;
}

void
http_server_set_workers(struct http_server *s, struct workers *w)
{
	s->workers = w;
}

bool
http_server_admin_url(const struct http_server *s, char *buf, size_t len)
{
	const struct listener_config *lc;
	int i;

	for (i = 0; i < s->n_listeners; i++) {
		lc = &s->listeners[i].conf;
		if ((lc->doors & DOOR_ADMIN) == 0)
			continue;
		snprintf(buf, len, "%s://%s%s%s:%d/api/v1/", lc->tls ? "https" : "http",
		    strchr(lc->address, ':') != NULL ? "[" : "", lc->address,
		    strchr(lc->address, ':') != NULL ? "]" : "", lc->port);
		return true;
	}
	return false;
}

/* Appends `name` to the list of changed restart-only settings. */
static void
http_note_change(char *list, size_t len, const char *name)
{
	size_t used = strlen(list);

	snprintf(list + used, len - used, "%s%s", used > 0 ? ", " : "", name);
}

int
http_server_reload(struct http_server *s, const struct enrolld_config *newcfg)
{
	struct enrolld_config *next = NULL;
	struct http_config_ref *ref = NULL;
	SSL_CTX *ctxs[CONFIG_MAX_LISTENERS] = { NULL };
	const struct enrolld_config *old = &s->cfg->cfg;
	char changed[512] = "";
	enum log_level level;
	int i, j, rc = -1;

	next = malloc(sizeof(*next));
	if (next == NULL) {
		log_errorx("http_server_reload: out of memory");
		goto out;
	}
	memcpy(next, newcfg, sizeof(*next));

	/* Settings fixed at start: note changes, keep the running values. */
#define KEEP_STR(field) do { \
		if (strcmp(next->field, old->field) != 0) \
			http_note_change(changed, sizeof(changed), #field); \
		memcpy(next->field, old->field, sizeof(next->field)); \
	} while (0)
#define KEEP_INT(field) do { \
		if (next->field != old->field) \
			http_note_change(changed, sizeof(changed), #field); \
		next->field = old->field; \
	} while (0)
	KEEP_STR(state_dir);
	KEEP_STR(user);
	KEEP_INT(workers);
	KEEP_INT(queue_max);
	KEEP_STR(database_url);
	KEEP_STR(pg_bindir);
	KEEP_STR(ca_key_type);
	KEEP_STR(ca_root_cert);
	KEEP_STR(ca_issuing_cert);
	KEEP_STR(ca_issuing_key);
	KEEP_INT(ca_root_days);
	KEEP_INT(ca_issuing_days);
	KEEP_STR(tls_names);
#undef KEEP_STR
#undef KEEP_INT

	/* Listeners are matched by name; only their TLS files may change. */
	for (i = 0; i < s->n_listeners; i++) {
		struct listener_config *cur = &s->listeners[i].conf;
		struct listener_config merged;
		bool found = false;

		memcpy(&merged, cur, sizeof(merged));
		for (j = 0; j < newcfg->n_listeners; j++) {
			const struct listener_config *nl = &newcfg->listeners[j];

			if (strcmp(nl->name, cur->name) != 0)
				continue;
			found = true;
			if (strcmp(nl->address, cur->address) != 0 || nl->port != cur->port ||
			    nl->tls != cur->tls || nl->doors != cur->doors)
				http_note_change(changed, sizeof(changed), cur->name);
			memcpy(merged.cert_file, nl->cert_file, sizeof(merged.cert_file));
			memcpy(merged.key_file, nl->key_file, sizeof(merged.key_file));
		}
		if (!found)
			http_note_change(changed, sizeof(changed), cur->name);
		if (cur->tls) {
			ctxs[i] = http_listener_tls_ctx(s, &merged);
			if (ctxs[i] == NULL) {
				log_errorx("reload: listener %s: cannot load its TLS certificate; "
				    "keeping the running configuration", cur->name);
				goto out;
			}
		}
		memcpy(&next->listeners[i], &merged, sizeof(merged));
	}
	for (j = 0; j < newcfg->n_listeners; j++) {
		for (i = 0; i < s->n_listeners; i++) {
			if (strcmp(newcfg->listeners[j].name, s->listeners[i].conf.name) == 0)
				break;
		}
		if (i == s->n_listeners)
			http_note_change(changed, sizeof(changed), newcfg->listeners[j].name);
	}
	next->n_listeners = s->n_listeners;

	if (log_level_parse(next->log_level, &level) != 0) {
		log_errorx("reload: bad log_level '%s'", next->log_level);
		goto out;
	}
	ref = http_config_new(next);
	if (ref == NULL) {
		log_errorx("http_server_reload: out of memory");
		goto out;
	}

	/* Everything is ready: switch. */
	for (i = 0; i < s->n_listeners; i++) {
		struct http_listener *l = &s->listeners[i];

		if (ctxs[i] != NULL) {
			SSL_CTX_free(l->ssl_ctx);	/* open connections hold their own reference */
			l->ssl_ctx = ctxs[i];
			ctxs[i] = NULL;
		}
		memcpy(l->conf.cert_file, next->listeners[i].cert_file, sizeof(l->conf.cert_file));
		memcpy(l->conf.key_file, next->listeners[i].key_file, sizeof(l->conf.key_file));
		evhttp_set_max_body_size(l->http, (ev_ssize_t)next->max_body);
	}
	http_config_release(s->cfg);
	s->cfg = ref;
	log_init(level);
	if (changed[0] != '\0')
		log_warnx("reload: these settings need a restart and keep their running "
		    "values: %s", changed);
	log_info("reload: configuration applied (TLS certificates re-read for new connections)");
	rc = 0;
out:
	for (i = 0; i < CONFIG_MAX_LISTENERS; i++)
		SSL_CTX_free(ctxs[i]);
	free(next);
	return rc;
}

void
http_server_stop_accepting(struct http_server *s)
{
	int i;

	s->stopping = true;
	for (i = 0; i < s->n_listeners; i++) {
		if (s->listeners[i].bound != NULL) {
			evhttp_del_accept_socket(s->listeners[i].http, s->listeners[i].bound);
			s->listeners[i].bound = NULL;
		}
	}
}

void
http_server_free(struct http_server *s)
{
	int i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n_listeners; i++) {
		if (s->listeners[i].http != NULL)
			evhttp_free(s->listeners[i].http);
		SSL_CTX_free(s->listeners[i].ssl_ctx);
	}
	http_config_release(s->cfg);
	free(s);
}
