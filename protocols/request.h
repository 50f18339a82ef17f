/*
 * request.h: the one shape every door sees.
 *
 * A protocol handler is a function from a parsed HTTP request plus a door
 * context (this worker's database connection, the CA, the configuration) to a
 * response. Handlers run on a worker thread, may block (SQL, signing), and
 * know nothing of sockets or libevent: daemon/http.c fills the request, runs
 * the handler on a worker and sends the response from the loop thread.
 */
#ifndef ENROLLD_REQUEST_H
#define ENROLLD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct ca;
struct enrolld_config;

enum http_method {
	HTTP_GET,
	HTTP_HEAD,
	HTTP_POST,
	HTTP_PUT,
	HTTP_PATCH,
	HTTP_DELETE,
	HTTP_OTHER,
};

struct http_header {
	char *name;
	char *value;
};

struct http_request {
	const char *request_id;	  /* e.g. "r-1a2b3c4d5e6f"; on every log line */
	enum http_method method;
	const char *method_name;  /* "GET", ... as received */
	const char *path;	  /* percent-decoded path, no query */
	const char *query;	  /* raw query string without '?', or NULL */
	const struct http_header *headers;
	size_t n_headers;
	const unsigned char *body; /* never NULL; NUL-terminated for convenience */
	size_t body_len;
	const char *peer_addr;	  /* "127.0.0.1:53122" */
	bool tls;
	/* DER of the TLS client certificate, if the peer presented one */
	const unsigned char *peer_cert_der;
	size_t peer_cert_der_len;
	/* "https://host:port" as the client addressed us (Host header), for URLs */
	const char *base_url;
};

#define HTTP_RESPONSE_MAX_HEADERS 16

struct http_response {
	int status;
	/* owned: name and value share one block, freed through name
	 * (http_response_header()) */
	struct http_header headers[HTTP_RESPONSE_MAX_HEADERS];
	size_t n_headers;
	unsigned char *body; /* owned, malloc'd, may be NULL */
	size_t body_len;
};

/* What a handler may use; one per worker thread. */
struct door_context {
	struct db *db;
	struct ca *ca;
	const struct enrolld_config *cfg;
	int worker_id;
};

typedef void (*door_handler_fn)(const struct http_request *req,
    struct door_context *ctx, struct http_response *resp);

/* Case-insensitive header lookup; NULL if absent. */
const char *http_request_header(const struct http_request *req, const char *name);
/* Value of query parameter `name` (percent-decoded, newly allocated; caller
 * frees), or NULL if absent. */
char *http_request_query_param(const struct http_request *req, const char *name);

/* Adds (copies) a header. Returns 0, or -1 when the table is full. */
int http_response_header(struct http_response *resp, const char *name, const char *value);
/* Sets status, Content-Type and a copy of the body. */
void http_response_set(struct http_response *resp, int status,
    const char *content_type, const void *body, size_t len);
/* Takes ownership of a malloc'd body. */
void http_response_take(struct http_response *resp, int status,
    const char *content_type, unsigned char *body, size_t len);
/* RFC 9457 problem document: {"type","title","status","detail","reason"}.
 * `type` is a URI or NULL ("about:blank"); `reason` is the stable reason code
 * (e.g. "name_not_delegated") or NULL. Content-Type application/problem+json. */
void http_response_problem(struct http_response *resp, int status,
    const char *type, const char *reason, const char *detail_fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* 503 + Retry-After for "try again later" (database down, queue full). */
void http_response_unavailable(struct http_response *resp, int retry_after_seconds);
void http_response_free(struct http_response *resp);

#endif
