/*
 * request.c: helpers every door uses to read a request and build a response.
 *
 * Nothing here knows a socket: daemon/http.c fills struct http_request and
 * sends struct http_response. Responses own their memory (headers and body
 * are malloc'd) and are released with http_response_free(). Error bodies are
 * RFC 9457 problem documents built with jansson, so that a detail string
 * containing quotes or control characters is always escaped correctly.
 */
#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "log.h"

const char *
http_request_header(const struct http_request *req, const char *name)
{
	size_t i;

	if (req == NULL || name == NULL)
		return NULL;
	for (i = 0; i < req->n_headers; i++) {
		if (req->headers[i].name != NULL &&
		    strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	}
	return NULL;
}

static int
request_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decodes application/x-www-form-urlencoded text of `len` bytes: "+" is a
 * space, "%XX" a byte; a malformed escape is kept literally. Returns a newly
 * allocated NUL-terminated string (the caller frees) or NULL on allocation
 * failure. A decoded NUL byte would silently cut the value, so "%00" yields
 * NULL as well: no caller wants an embedded NUL.
 */
static char *
request_form_decode(const char *s, size_t len)
{
	char *out = NULL;
	size_t i, o = 0;

	out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%' && i + 2 < len &&
		    request_hexval((unsigned char)s[i + 1]) >= 0 &&
		    request_hexval((unsigned char)s[i + 2]) >= 0) {
			int v = request_hexval((unsigned char)s[i + 1]) * 16 +
			    request_hexval((unsigned char)s[i + 2]);

			if (v == 0) {
				free(out);
				return NULL;
			}
			out[o++] = (char)v;
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

char *
http_request_query_param(const struct http_request *req, const char *name)
{
	const char *p, *end, *eq, *amp;
	size_t name_len;

	if (req == NULL || req->query == NULL || name == NULL)
		return NULL;
	name_len = strlen(name);
	p = req->query;
	end = p + strlen(p);
	while (p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (amp == NULL)
			amp = end;
		eq = memchr(p, '=', (size_t)(amp - p));
		/* The name itself may be encoded; compare its decoded form. */
		{
			const char *name_end = eq != NULL ? eq : amp;
			char *key = request_form_decode(p, (size_t)(name_end - p));
			bool match = key != NULL && strlen(key) == name_len &&
			    memcmp(key, name, name_len) == 0;

			free(key);
			if (match) {
				if (eq == NULL)
					return strdup("");
				return request_form_decode(eq + 1, (size_t)(amp - eq - 1));
			}
		}
		p = amp + 1;
	}
	return NULL;
}

/*
 * A response header is one allocation: name and value, each NUL-terminated,
 * in one block that headers[i].name points to (value points into it); only
 * name is freed. Two strdup()s per header were ~7 mallocs per ACME reply.
 */
static char *
response_header_block(const char *name, const char *value, char **value_out)
{
	size_t name_len = strlen(name), value_len = strlen(value);
	char *block = malloc(name_len + 1 + value_len + 1);

	if (block == NULL)
		return NULL;
	memcpy(block, name, name_len + 1);
	memcpy(block + name_len + 1, value, value_len + 1);
	*value_out = block + name_len + 1;
	return block;
}

int
http_response_header(struct http_response *resp, const char *name, const char *value)
{
	char *block = NULL, *v = NULL;

	if (resp->n_headers >= HTTP_RESPONSE_MAX_HEADERS) {
		log_warnx("http_response_header(%s): header table full", name);
		return -1;
	}
	/* CR or LF in a header would let a value inject more headers. */
	if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL) {
		log_warnx("http_response_header(%s): refusing CR/LF in header", name);
		return -1;
	}
	if ((block = response_header_block(name, value, &v)) == NULL) {
		log_warnx("http_response_header(%s): out of memory", name);
		return -1;
	}
	resp->headers[resp->n_headers].name = block;
	resp->headers[resp->n_headers].value = v;
	resp->n_headers++;
	return 0;
}

/* Replaces the Content-Type header (there is only ever one). */
static void
response_set_content_type(struct http_response *resp, const char *content_type)
{
	size_t i;

	for (i = 0; i < resp->n_headers; i++) {
		if (strcasecmp(resp->headers[i].name, "Content-Type") == 0) {
			char *v = NULL, *block = NULL;

			if (content_type == NULL ||
			    (block = response_header_block("Content-Type", content_type, &v)) == NULL)
				return;
			free(resp->headers[i].name);
			resp->headers[i].name = block;
			resp->headers[i].value = v;
			return;
		}
	}
	if (content_type != NULL)
		(void)http_response_header(resp, "Content-Type", content_type);
}

void
http_response_take(struct http_response *resp, int status,
    const char *content_type, unsigned char *body, size_t len)
{
	resp->status = status;
	free(resp->body);
	resp->body = body;
	resp->body_len = body != NULL ? len : 0;
	if (content_type != NULL)
		response_set_content_type(resp, content_type);
}

void
http_response_set(struct http_response *resp, int status,
    const char *content_type, const void *body, size_t len)
{
	unsigned char *copy = NULL;

	if (body != NULL && len > 0) {
		copy = malloc(len);
		if (copy == NULL) {
			log_warnx("http_response_set: out of memory (%zu bytes)", len);
			http_response_take(resp, 500, NULL, NULL, 0);
			return;
		}
		memcpy(copy, body, len);
	}
	http_response_take(resp, status, content_type, copy, copy != NULL ? len : 0);
}

/* The reason phrase of the status codes doors use, for the problem title. */
static const char *
response_status_title(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return status >= 500 ? "Server Error" : "Error";
	}
}

/* Builds and sets the problem document; detail may be NULL. */
static void
response_problem(struct http_response *resp, int status, const char *type,
    const char *reason, const char *detail)
{
	json_t *doc = NULL;
	char *text = NULL;

	doc = json_object();
	if (doc == NULL)
		goto out;
	if (json_object_set_new(doc, "type", json_string(type != NULL ? type : "about:blank")) != 0 ||
	    json_object_set_new(doc, "title", json_string(response_status_title(status))) != 0 ||
	    json_object_set_new(doc, "status", json_integer(status)) != 0)
		goto out;
	/* json_string() refuses invalid UTF-8; fall back to a lossy copy. */
	if (detail != NULL && detail[0] != '\0') {
		json_t *d = json_string(detail);

		if (d == NULL)
			d = json_string("(detail not valid UTF-8)");
		if (json_object_set_new(doc, "detail", d) != 0)
			goto out;
	}
	if (reason != NULL &&
	    json_object_set_new(doc, "reason", json_string(reason)) != 0)
		goto out;
	text = json_dumps(doc, JSON_COMPACT);
out:
	json_decref(doc);
	if (text == NULL) {
		static const char fallback[] =
		    "{\"type\":\"about:blank\",\"title\":\"Internal Server Error\",\"status\":500}";

		log_warnx("json_dumps(problem): failed");
		http_response_set(resp, 500, "application/problem+json", fallback,
		    sizeof(fallback) - 1);
		return;
	}
	http_response_take(resp, status, "application/problem+json",
	    (unsigned char *)text, strlen(text));
}

void
http_response_problem(struct http_response *resp, int status,
    const char *type, const char *reason, const char *detail_fmt, ...)
{
	char detail[1024];
	va_list ap;

	detail[0] = '\0';
	if (detail_fmt != NULL) {
		va_start(ap, detail_fmt);
		vsnprintf(detail, sizeof(detail), detail_fmt, ap);
		va_end(ap);
	}
	response_problem(resp, status, type, reason, detail);
}

void
http_response_unavailable(struct http_response *resp, int retry_after_seconds)
{
	char value[16];
	size_t i;
	bool have_retry = false;

	if (retry_after_seconds < 1)
		retry_after_seconds = 1;
	snprintf(value, sizeof(value), "%d", retry_after_seconds);
	for (i = 0; i < resp->n_headers; i++) {
		if (strcasecmp(resp->headers[i].name, "Retry-After") == 0)
			have_retry = true;
	}
	if (!have_retry)
		(void)http_response_header(resp, "Retry-After", value);
	response_problem(resp, 503, NULL, "unavailable",
	    "the service is temporarily unavailable; retry later");
}

void
http_response_free(struct http_response *resp)
{
	size_t i;

	if (resp == NULL)
		return;
	for (i = 0; i < resp->n_headers; i++) {
		free(resp->headers[i].name); /* value is in the same block */
		resp->headers[i].name = NULL;
		resp->headers[i].value = NULL;
	}
	resp->n_headers = 0;
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}
