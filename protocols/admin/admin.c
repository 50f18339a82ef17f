/*
 * admin.c: the admin JSON API's front door: the router over the route tables
 * of admin.h, bearer-token authentication, the scope rules, and the JSON
 * helpers every route file uses (bodies, fields, lists, problems, audited
 * commits).
 *
 * A request goes: match the path against every table (unknown path -> 404,
 * known path with another method -> 405 + Allow); health and the OpenAPI
 * document need no token; everything else needs "Authorization: Bearer
 * enr_..." which tokens_authenticate() turns into a struct admin_identity in
 * one round trip. The route function then checks scope itself: an object
 * outside the caller's scope is answered exactly like an absent one (404) and
 * the attempt is audited (admin_out_of_scope()).
 *
 * No SQL here: the store_* files of core/ hold it. The route files open a
 * transaction, call the store, and finish with admin_commit_audited(), so
 * every change and its audit entry commit together.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin.h"
#include "db.h"
#include "doors.h"
#include "embedded.h"
#include "log.h"
#include "store_admins.h"
#include "store_json.h"
#include "tokens.h"
#include "types.h"

#define ADMIN_PREFIX "/api/v1"
#define ADMIN_MAX_DEPTH 16
#define ADMIN_RETRY_AFTER 2
#define ADMIN_ALL_CERT_TYPES                                                                       \
	(CERT_TYPE_SSL | CERT_TYPE_CLIENT | CERT_TYPE_CODE_SIGNING | CERT_TYPE_DEVICE)
#define ADMIN_MAX_SEGMENTS 12

static const char *const admin_role_names[] = {"mrao", "rao", "drao"};

static const struct {
	unsigned bit;
	const char *name;
} admin_privileges[] = {
    {ADMIN_PRIV_MANAGE_ADMINS, "manage_admins"},
    {ADMIN_PRIV_APPROVE_DELEGATIONS, "approve_delegations"},
    {ADMIN_PRIV_AUTO_APPROVE_SSL, "auto_approve_ssl"},
    {ADMIN_PRIV_API_ONLY, "api_only"},
};

const char *admin_role_name(enum admin_role role)
{
	if ((unsigned)role >= sizeof(admin_role_names) / sizeof(admin_role_names[0]))
		return NULL;
	return admin_role_names[role];
}

int admin_role_parse(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(admin_role_names) / sizeof(admin_role_names[0]);
	     i++) {
		if (strcmp(name, admin_role_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

/* The name of one bit of a vocabulary, NULL when it has none. */
static const char *admin_vocab_name(enum admin_vocab vocab, unsigned bit)
{
	size_t i;

	switch (vocab) {
	case ADMIN_VOCAB_CERT_TYPE:
		return cert_type_name((enum cert_type)bit);
	case ADMIN_VOCAB_KEY_TYPE:
		return key_type_name((enum key_type)bit);
	case ADMIN_VOCAB_KEY_USAGE:
		return key_usage_name((enum key_usage)bit);
	case ADMIN_VOCAB_EXT_KEY_USAGE:
		return ext_key_usage_name((enum ext_key_usage)bit);
	case ADMIN_VOCAB_PRIVILEGE:
		for (i = 0; i < sizeof(admin_privileges) / sizeof(admin_privileges[0]); i++) {
			if (admin_privileges[i].bit == bit)
				return admin_privileges[i].name;
		}
		return NULL;
	}
	return NULL;
}

/* The bit of a name of a vocabulary, 0 when unknown. */
static unsigned admin_vocab_parse(enum admin_vocab vocab, const char *name)
{
	int v = -1;
	size_t i;

	switch (vocab) {
	case ADMIN_VOCAB_CERT_TYPE:
		v = cert_type_parse(name);
		break;
	case ADMIN_VOCAB_KEY_TYPE:
		v = key_type_parse(name);
		break;
	case ADMIN_VOCAB_KEY_USAGE:
		v = key_usage_parse(name);
		break;
	case ADMIN_VOCAB_EXT_KEY_USAGE:
		v = ext_key_usage_parse(name);
		break;
	case ADMIN_VOCAB_PRIVILEGE:
		for (i = 0; i < sizeof(admin_privileges) / sizeof(admin_privileges[0]); i++) {
			if (strcmp(admin_privileges[i].name, name) == 0)
				return admin_privileges[i].bit;
		}
		return 0;
	}
	return v > 0 ? (unsigned)v : 0;
}

json_t *admin_vocab_json(enum admin_vocab vocab, unsigned bits)
{
	json_t *array = NULL;
	unsigned bit;

	array = json_array();
	if (array == NULL)
		return NULL;
	for (bit = 1; bit != 0 && bit <= bits; bit <<= 1) {
		const char *name = (bits & bit) ? admin_vocab_name(vocab, bit) : NULL;

		if (name != NULL && json_array_append_new(array, json_string(name)) != 0) {
			json_decref(array);
			return NULL;
		}
	}
	return array;
}

unsigned admin_vocab_bits(enum admin_vocab vocab, const json_t *array)
{
	unsigned bits = 0;
	size_t i;
	json_t *v = NULL;

	json_array_foreach(array, i, v)
	{
		if (json_is_string(v))
			bits |= admin_vocab_parse(vocab, json_string_value(v));
	}
	return bits;
}

/* Bits of a comma-separated name list (as tokens_authenticate() gives). */
static unsigned admin_vocab_list_bits(enum admin_vocab vocab, const char *list)
{
	char buf[256];
	char *save = NULL, *word = NULL;
	unsigned bits = 0;

	snprintf(buf, sizeof(buf), "%s", list != NULL ? list : "");
	for (word = strtok_r(buf, ",", &save); word != NULL; word = strtok_r(NULL, ",", &save))
		bits |= admin_vocab_parse(vocab, word);
	return bits;
}

/* ------------------------------------------------------------------ scope */

bool admin_scope_covers(const struct admin_identity *who, int64_t org_id, int64_t dept_id,
                        unsigned cert_type)
{
	switch (who->role) {
	case ADMIN_ROLE_MRAO:
		return true;
	case ADMIN_ROLE_RAO:
		if (org_id == 0 || org_id != who->org_id)
			return false;
		break;
	case ADMIN_ROLE_DRAO:
		if (org_id == 0 || org_id != who->org_id || dept_id == 0 || dept_id != who->dept_id)
			return false;
		break;
	default:
		return false;
	}
	return cert_type == 0 || (cert_type & who->cert_types) == cert_type;
}

bool admin_sees_org(const struct admin_identity *who, int64_t org_id)
{
	if (who->role == ADMIN_ROLE_MRAO)
		return true;
	return org_id != 0 && org_id == who->org_id;
}

void admin_store_scope(const struct admin_identity *who, struct store_scope *out)
{
	memset(out, 0, sizeof(*out));
	if (who->role == ADMIN_ROLE_MRAO)
		return;
	out->org_id = who->org_id;
	out->dept_id = who->role == ADMIN_ROLE_DRAO ? who->dept_id : 0;
	out->cert_types = who->cert_types;
}

/* ------------------------------------------------------------- responses */

void admin_json_reply(struct http_response *resp, int status, json_t *obj)
{
	char *text = NULL;

	if (obj != NULL)
		text = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(obj);
	if (text == NULL) {
		log_warnx("json_dumps(admin reply): failed");
		http_response_problem(resp, 500, NULL, "internal_error",
		                      "the response could not be built");
		return;
	}
	http_response_take(resp, status, "application/json", (unsigned char *)text, strlen(text));
}

void admin_forbidden(struct http_response *resp, const char *detail_fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, detail_fmt);
	vsnprintf(detail, sizeof(detail), detail_fmt, ap);
	va_end(ap);
	http_response_problem(resp, 403, NULL, "role_not_permitted", "%s", detail);
}

void admin_not_found(struct http_response *resp, const char *object_type, int64_t object_id)
{
	if (object_id > 0)
		http_response_problem(resp, 404, NULL, "not_found", "%s %" PRId64 " not found",
		                      object_type, object_id);
	else
		http_response_problem(resp, 404, NULL, "not_found", "%s not found", object_type);
}

void admin_out_of_scope(const struct admin_call *call, struct http_response *resp,
                        const char *object_type, int64_t object_id)
{
	json_t *details = NULL;
	char *text = NULL;

	/* The entry carries no org/department: a RAO reading the audit log of
	 * its organization must not learn that the object exists. */
	details =
	    json_pack("{s:s, s:s}", "method", call->req->method_name, "path", call->req->path);
	text = details != NULL ? json_dumps(details, JSON_COMPACT) : NULL;
	if (db_audit(call->ctx->db, call->who->actor, "access", object_type,
	             object_id > 0 ? object_id : 0, 0, 0, "denied", "out_of_scope", text) != 0)
		log_warnx("admin: audit of an out-of-scope %s by %s failed", object_type,
		          call->who->actor);
	free(text);
	json_decref(details);
	admin_not_found(resp, object_type, object_id);
}

char *admin_begin_fields(const struct admin_call *call, struct http_response *resp,
                         const json_t *fields)
{
	char *text = store_json_text(fields);

	if (text == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "internal error");
		return NULL;
	}
	if (admin_begin(call, resp) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

json_t *admin_load(const struct admin_call *call, struct http_response *resp, int param,
                   const struct admin_object_kind *kind, int64_t *id)
{
	json_t *obj = NULL;
	int r;

	*id = param < call->n_params ? admin_param_id(call->params[param]) : -1;
	if (*id <= 0) {
		admin_not_found(resp, kind->name, 0);
		return NULL;
	}
	r = kind->get(call->ctx->db, *id, &obj);
	if (r < 0) {
		admin_db_failure(call, resp);
		return NULL;
	}
	if (r == 0) {
		admin_not_found(resp, kind->name, *id);
		return NULL;
	}
	if (!kind->visible(call->who, *id, obj)) {
		json_decref(obj);
		admin_out_of_scope(call, resp, kind->name, *id);
		return NULL;
	}
	return obj;
}

void admin_db_failure(const struct admin_call *call, struct http_response *resp)
{
	struct db *db = call->ctx->db;

	db_rollback(db);
	if (db_unavailable(db)) {
		http_response_unavailable(resp, ADMIN_RETRY_AFTER);
		return;
	}
	log_warnx("admin: %s %s failed in the database [%s]", call->req->method_name,
	          call->req->path, db->last_sqlstate);
	http_response_problem(resp, 500, NULL, "internal_error", "internal error");
}

void admin_db_error(const struct admin_call *call, struct http_response *resp, const char *what)
{
	struct db *db = call->ctx->db;

	db_rollback(db);
	if (strcmp(db->last_sqlstate, "23505") == 0) {
		http_response_problem(resp, 409, NULL, "conflict", "%s already exists", what);
		return;
	}
	if (strcmp(db->last_sqlstate, "23514") == 0 || strcmp(db->last_sqlstate, "23503") == 0 ||
	    strcmp(db->last_sqlstate, "23502") == 0 || strcmp(db->last_sqlstate, "22P02") == 0 ||
	    strcmp(db->last_sqlstate, "22007") == 0 || strcmp(db->last_sqlstate, "22008") == 0 ||
	    strcmp(db->last_sqlstate, "22003") == 0) {
		http_response_problem(resp, 400, NULL, "invalid_field", "%s: a value is not valid",
		                      what);
		return;
	}
	admin_db_failure(call, resp);
}

void admin_write_failed(const struct admin_call *call, struct http_response *resp, int r,
                        const char *object_type, int64_t object_id, const char *what)
{
	if (r == 0) {
		db_rollback(call->ctx->db);
		admin_not_found(resp, object_type, object_id);
		return;
	}
	admin_db_error(call, resp, what);
}

void admin_rollback(const struct admin_call *call)
{
	db_rollback(call->ctx->db);
}

int admin_begin(const struct admin_call *call, struct http_response *resp)
{
	if (db_begin(call->ctx->db) != 0) {
		admin_db_failure(call, resp);
		return -1;
	}
	return 0;
}

int admin_audit(const struct admin_call *call, struct http_response *resp, const char *action,
                const char *object_type, int64_t object_id, int64_t org_id, int64_t dept_id,
                const json_t *details)
{
	char *text = NULL;
	int rc = -1;

	if (details != NULL) {
		text = json_dumps(details, JSON_COMPACT);
		if (text == NULL) {
			db_rollback(call->ctx->db);
			http_response_problem(resp, 500, NULL, "internal_error", "internal error");
			return -1;
		}
	}
	if (db_audit(call->ctx->db, call->who->actor, action, object_type, object_id, org_id,
	             dept_id, "ok", NULL, text) != 0) {
		admin_db_error(call, resp, object_type);
		goto out;
	}
	rc = 0;
out:
	free(text);
	return rc;
}

int admin_commit_audited(const struct admin_call *call, struct http_response *resp,
                         const char *action, const char *object_type, int64_t object_id,
                         int64_t org_id, int64_t dept_id, const json_t *details)
{
	if (admin_audit(call, resp, action, object_type, object_id, org_id, dept_id, details) != 0)
		return -1;
	if (db_commit(call->ctx->db) != 0) {
		admin_db_error(call, resp, object_type);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ JSON input */

/* Nesting depth of a JSON text, counted outside strings, before jansson
 * (which recurses) sees it. */
static bool admin_json_too_deep(const unsigned char *s, size_t len, int max)
{
	bool in_string = false, escaped = false;
	int depth = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[') {
			if (++depth > max)
				return true;
		} else if (c == '}' || c == ']')
			depth--;
	}
	return false;
}

json_t *admin_json_body(const struct admin_call *call, struct http_response *resp,
                        const char *const *allowed, const char *const *required)
{
	const struct http_request *req = call->req;
	json_error_t jerr;
	json_t *body = NULL;
	const char *key = NULL;
	json_t *value = NULL;
	size_t i;

	if (req->body_len == 0) {
		http_response_problem(resp, 400, NULL, "malformed_json",
		                      "the request body is empty");
		return NULL;
	}
	if (admin_json_too_deep(req->body, req->body_len, ADMIN_MAX_DEPTH)) {
		http_response_problem(resp, 400, NULL, "malformed_json",
		                      "JSON nested deeper than %d levels", ADMIN_MAX_DEPTH);
		return NULL;
	}
	body = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (body == NULL) {
		http_response_problem(resp, 400, NULL, "malformed_json",
		                      "not valid JSON: %s (line %d, column %d)", jerr.text,
		                      jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		http_response_problem(resp, 400, NULL, "malformed_json",
		                      "the request body must be a JSON object");
		return NULL;
	}
	json_object_foreach(body, key, value)
	{
		bool known = false;

		for (i = 0; allowed != NULL && allowed[i] != NULL; i++) {
			if (strcmp(allowed[i], key) == 0) {
				known = true;
				break;
			}
		}
		if (!known) {
			http_response_problem(resp, 400, NULL, "unknown_field",
			                      "unknown field \"%.64s\"", key);
			json_decref(body);
			return NULL;
		}
	}
	for (i = 0; required != NULL && required[i] != NULL; i++) {
		if (json_object_get(body, required[i]) == NULL) {
			http_response_problem(resp, 400, NULL, "missing_field",
			                      "field \"%s\" is required", required[i]);
			json_decref(body);
			return NULL;
		}
	}
	return body;
}

static int admin_field_invalid(struct http_response *resp, const char *key, const char *why)
{
	http_response_problem(resp, 400, NULL, "invalid_field", "field \"%s\": %s", key, why);
	return -1;
}

int admin_field_string(struct http_response *resp, const json_t *body, const char *key,
                       size_t min_len, size_t max_len, bool nullable, const char **out)
{
	const json_t *v = json_object_get(body, key);
	const char *s = NULL;
	size_t len, i;

	*out = NULL;
	if (v == NULL)
		return 0;
	if (json_is_null(v)) {
		if (nullable)
			return 1;
		return admin_field_invalid(resp, key, "must not be null");
	}
	if (!json_is_string(v))
		return admin_field_invalid(resp, key, "must be a string");
	s = json_string_value(v);
	len = json_string_length(v);
	if (len < min_len || len > max_len) {
		char why[96];

		snprintf(why, sizeof(why), "must be %zu to %zu bytes long", min_len, max_len);
		return admin_field_invalid(resp, key, why);
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return admin_field_invalid(resp, key,
			                           "must not contain control characters");
	}
	*out = s;
	return 1;
}

int admin_field_bool(struct http_response *resp, const json_t *body, const char *key, bool *out)
{
	const json_t *v = json_object_get(body, key);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return admin_field_invalid(resp, key, "must be true or false");
	*out = json_is_true(v);
	return 1;
}

int admin_field_id(struct http_response *resp, const json_t *body, const char *key, bool nullable,
                   int64_t *out)
{
	const json_t *v = json_object_get(body, key);

	*out = 0;
	if (v == NULL)
		return 0;
	if (json_is_null(v)) {
		if (nullable)
			return 1;
		return admin_field_invalid(resp, key, "must not be null");
	}
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return admin_field_invalid(resp, key, "must be a positive integer id");
	*out = (int64_t)json_integer_value(v);
	return 1;
}

int admin_field_names(struct http_response *resp, const json_t *body, const char *key,
                      enum admin_vocab vocab, bool allow_empty, unsigned *out)
{
	const json_t *v = json_object_get(body, key);
	json_t *item = NULL;
	size_t i;
	unsigned bits = 0, bit;

	*out = 0;
	if (v == NULL)
		return 0;
	if (!json_is_array(v))
		return admin_field_invalid(resp, key, "must be an array of names");
	if (json_array_size(v) == 0 && !allow_empty)
		return admin_field_invalid(resp, key, "must not be empty");
	json_array_foreach(v, i, item)
	{
		char why[160];

		if (!json_is_string(item))
			return admin_field_invalid(resp, key, "must be an array of names");
		bit = admin_vocab_parse(vocab, json_string_value(item));
		if (bit == 0) {
			snprintf(why, sizeof(why), "unknown name \"%.64s\"",
			         json_string_value(item));
			return admin_field_invalid(resp, key, why);
		}
		if (bits & bit) {
			snprintf(why, sizeof(why), "\"%.64s\" is listed twice",
			         json_string_value(item));
			return admin_field_invalid(resp, key, why);
		}
		bits |= bit;
	}
	*out = bits;
	return 1;
}

/* Reads exactly n decimal digits. */
static bool admin_digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Parses RFC 3339 date-time strictly; the instant in *when. */
static bool admin_parse_rfc3339(const char *s, time_t *when)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0, dim;
	const char *p = s;
	struct tm tm;

	if (!admin_digits(p, 4, &year) || p[4] != '-' || !admin_digits(p + 5, 2, &mon) ||
	    p[7] != '-' || !admin_digits(p + 8, 2, &day) || (p[10] != 'T' && p[10] != 't') ||
	    !admin_digits(p + 11, 2, &hour) || p[13] != ':' || !admin_digits(p + 14, 2, &min) ||
	    p[16] != ':' || !admin_digits(p + 17, 2, &sec))
		return false;
	p += 19;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return false;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!admin_digits(p + 1, 2, &oh) || p[3] != ':' || !admin_digits(p + 4, 2, &om) ||
		    oh > 23 || om > 59)
			return false;
		p += 6;
	} else {
		return false;
	}
	if (*p != '\0' || year < 1970 || year > 9999 || mon < 1 || mon > 12 || hour > 23 ||
	    min > 59 || sec > 59)
		return false;
	dim = mdays[mon - 1];
	if (mon == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
		dim = 29;
	if (day < 1 || day > dim)
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	*when = timegm(&tm) - sign * (oh * 3600 + om * 60);
	return true;
}

int admin_field_timestamp(struct http_response *resp, const json_t *body, const char *key,
                          bool nullable, bool future, char out[ADMIN_TIMESTAMP_LEN])
{
	const json_t *v = json_object_get(body, key);
	time_t when;

	out[0] = '\0';
	if (v == NULL)
		return 0;
	if (json_is_null(v)) {
		if (nullable)
			return 1;
		return admin_field_invalid(resp, key, "must not be null");
	}
	if (!json_is_string(v) || json_string_length(v) >= ADMIN_TIMESTAMP_LEN ||
	    !admin_parse_rfc3339(json_string_value(v), &when))
		return admin_field_invalid(
		    resp, key, "must be an RFC 3339 timestamp such as \"2026-11-26T10:00:00Z\"");
	if (future && when <= time(NULL))
		return admin_field_invalid(resp, key, "must be in the future");
	snprintf(out, ADMIN_TIMESTAMP_LEN, "%s", json_string_value(v));
	return 1;
}

int64_t admin_json_id(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

int64_t admin_param_id(const char *s)
{
	int64_t v = 0;
	size_t i;

	if (s == NULL || s[0] == '\0' || strlen(s) > 18)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v > 0 ? v : -1;
}

/* ----------------------------------------------------------------- lists */

/* A query parameter that must be a decimal in [min, max]. 1 present, 0
 * absent, -1 after answering 400. */
static int admin_query_int(const struct admin_call *call, struct http_response *resp,
                           const char *name, int64_t min, int64_t max, int64_t *out)
{
	char *text = NULL;
	char *end = NULL;
	long long v;
	int rc = -1;

	text = http_request_query_param(call->req, name);
	if (text == NULL)
		return 0;
	if (text[0] == '\0' || !isdigit((unsigned char)text[0]) || strlen(text) > 18)
		goto bad;
	v = strtoll(text, &end, 10);
	if (end == NULL || *end != '\0' || v < min || v > max)
		goto bad;
	*out = v;
	rc = 1;
	goto out;
bad:
	http_response_problem(resp, 400, NULL, "invalid_field",
	                      "query parameter \"%s\" must be an integer from %" PRId64
	                      " to %" PRId64,
	                      name, min, max);
out:
	free(text);
	return rc;
}

int admin_page_params(const struct admin_call *call, struct http_response *resp, int64_t *after,
                      int *limit)
{
	int64_t v = 0;
	int r;

	*after = 0;
	*limit = ADMIN_LIST_DEFAULT;
	r = admin_query_int(call, resp, "limit", 1, ADMIN_LIST_MAX, &v);
	if (r < 0)
		return -1;
	if (r == 1)
		*limit = (int)v;
	r = admin_query_int(call, resp, "after", 0, INT64_MAX / 2, &v);
	if (r < 0)
		return -1;
	if (r == 1)
		*after = v;
	return 0;
}

void admin_list_reply(struct http_response *resp, json_t *items, int limit)
{
	json_t *reply = NULL;
	json_t *next = NULL;

	if (!json_is_array(items)) {
		json_decref(items);
		admin_json_reply(resp, 500, NULL);
		return;
	}
	if (json_array_size(items) > (size_t)limit) {
		while (json_array_size(items) > (size_t)limit)
			json_array_remove(items, json_array_size(items) - 1);
		next = json_integer(
		    admin_json_id(json_array_get(items, json_array_size(items) - 1), "id"));
	} else {
		next = json_null();
	}
	reply = json_pack("{s:o, s:o}", "items", items, "next_after", next);
	admin_json_reply(resp, 200, reply);
}

/* ---------------------------------------------------------------- router */

/* GET /api/v1/me: the caller's own administrator record. */
static void admin_me(const struct admin_call *call, struct http_response *resp)
{
	json_t *me = NULL;
	int r;

	r = store_admins_get(call->ctx->db, call->who->admin_id, &me);
	if (r < 0) {
		admin_db_failure(call, resp);
		return;
	}
	if (r == 0) {
		admin_not_found(resp, "admin", call->who->admin_id);
		return;
	}
	admin_json_reply(resp, 200, me);
}

static const struct admin_route admin_me_routes[] = {
    {HTTP_GET, ADMIN_PREFIX "/me", admin_me},
    {.pattern = NULL},
};

/* Every route of the admin API; admin_handle() tries them in this order. */
static const struct admin_route *const admin_tables[] = {
    admin_me_routes,          /* admin.c */
    admin_org_routes,         /* admin_orgs.c */
    admin_admin_routes,       /* admin_admins.c */
    admin_domain_routes,      /* admin_domains.c */
    admin_profile_routes,     /* admin_profiles.c */
    admin_certificate_routes, /* admin_certificates.c */
    admin_audit_routes,       /* admin_audit.c */
    admin_endpoint_routes,    /* admin_endpoints.c */
    admin_acme_routes,        /* admin_acme.c: EAB keys, ACME accounts */
    NULL,
};

static const char *admin_method_name(enum http_method m)
{
	switch (m) {
	case HTTP_GET:
		return "GET";
	case HTTP_HEAD:
		return "HEAD";
	case HTTP_POST:
		return "POST";
	case HTTP_PUT:
		return "PUT";
	case HTTP_PATCH:
		return "PATCH";
	case HTTP_DELETE:
		return "DELETE";
	default:
		return "OTHER";
	}
}

/* Splits a path ("/a/b/c") in place into its segments; -1 when it does not
 * start with '/' or has more than `max` segments. */
static int admin_split(char *s, char **segments, int max)
{
	int n = 0;
	char *slash = NULL;

	if (*s != '/')
		return -1;
	s++;
	for (;;) {
		if (n >= max)
			return -1;
		segments[n++] = s;
		slash = strchr(s, '/');
		if (slash == NULL)
			break;
		*slash = '\0';
		s = slash + 1;
	}
	return n;
}

/* Does the split path match `pattern`? "{x}" takes one non-empty segment;
 * the parameters point into the split path. */
static bool admin_match(const char *pattern, char *const *segments, int n_segments,
                        const char **params, int *n_params)
{
	char buf[256];
	char *pat[ADMIN_MAX_SEGMENTS];
	int n, i, np = 0;

	if (strlen(pattern) >= sizeof(buf))
		return false;
	memcpy(buf, pattern, strlen(pattern) + 1);
	n = admin_split(buf, pat, ADMIN_MAX_SEGMENTS);
	if (n != n_segments)
		return false;
	for (i = 0; i < n; i++) {
		if (pat[i][0] == '{') {
			if (segments[i][0] == '\0' || np >= ADMIN_MAX_PATH_PARAMS)
				return false;
			params[np++] = segments[i];
		} else if (strcmp(pat[i], segments[i]) != 0) {
			return false;
		}
	}
	*n_params = np;
	return true;
}

/* GET /api/v1/health: unauthenticated; 503 when PostgreSQL is not usable. */
static void admin_health(struct door_context *ctx, struct http_response *resp)
{
	json_t *one = NULL;
	int r = -1;

	if (db_ensure(ctx->db) == 0)
		r = store_json_one(ctx->db, "health", "SELECT '1'::json", 0, NULL, &one);
	json_decref(one);
	if (r != 1) {
		(void)http_response_header(resp, "Retry-After", "2");
		admin_json_reply(
		    resp, 503,
		    json_pack("{s:s, s:s}", "status", "unavailable", "database", "unavailable"));
		return;
	}
	admin_json_reply(resp, 200, json_pack("{s:s, s:s}", "status", "ok", "database", "ok"));
}

/* Authenticates the bearer token into *who. 0, or -1 after answering
 * (401, or 503/500 when the database fails). */
static int admin_authenticate(const struct http_request *req, struct door_context *ctx,
                              struct http_response *resp, struct admin_identity *who)
{
	const char *auth = http_request_header(req, "Authorization");
	struct tokens_principal principal;
	const char *token = NULL;
	char tok[TOKENS_BUF_SIZE];
	size_t len;
	int role, r;

	memset(who, 0, sizeof(*who));
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
		(void)http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"enrolld\"");
		http_response_problem(resp, 401, NULL, "token_missing",
		                      auth == NULL ? "an Authorization: Bearer token is required"
		                                   : "the Authorization scheme must be Bearer");
		return -1;
	}
	token = auth + 7;
	while (*token == ' ')
		token++;
	len = strlen(token);
	while (len > 0 && token[len - 1] == ' ')
		len--;
	if (len == 0 || len >= sizeof(tok))
		goto invalid;
	memcpy(tok, token, len);
	tok[len] = '\0';
	if (db_ensure(ctx->db) != 0) {
		http_response_unavailable(resp, ADMIN_RETRY_AFTER);
		return -1;
	}
	r = tokens_authenticate(ctx->db, tok, &principal);
	memset(tok, 0, sizeof(tok));
	if (r < 0) {
		if (db_unavailable(ctx->db))
			http_response_unavailable(resp, ADMIN_RETRY_AFTER);
		else
			http_response_problem(resp, 500, NULL, "internal_error", "internal error");
		return -1;
	}
	if (r == 0)
		goto invalid;
	role = admin_role_parse(principal.role);
	if (role < 0) {
		log_warnx("admin: admin:%" PRId64 " has unknown role", principal.admin_id);
		goto invalid;
	}
	who->admin_id = principal.admin_id;
	who->role = (enum admin_role)role;
	who->org_id = principal.org_id;
	who->dept_id = principal.dept_id;
	who->cert_types = who->role == ADMIN_ROLE_MRAO
	                      ? ADMIN_ALL_CERT_TYPES
	                      : admin_vocab_list_bits(ADMIN_VOCAB_CERT_TYPE, principal.cert_types);
	who->privileges = admin_vocab_list_bits(ADMIN_VOCAB_PRIVILEGE, principal.privileges);
	snprintf(who->actor, sizeof(who->actor), "admin:%" PRId64, who->admin_id);
	return 0;
invalid:
	(void)http_response_header(resp, "WWW-Authenticate",
	                           "Bearer realm=\"enrolld\", error=\"invalid_token\"");
	http_response_problem(
	    resp, 401, NULL, "token_invalid",
	    "the token is unknown, revoked or expired, or its administrator is inactive");
	return -1;
}

void admin_handle(const struct http_request *req, struct door_context *ctx,
                  struct http_response *resp)
{
	char path[512];
	char *segments[ADMIN_MAX_SEGMENTS];
	char allow[64] = "";
	const struct admin_route *found = NULL;
	struct admin_identity who;
	struct admin_call call;
	enum http_method method = req->method == HTTP_HEAD ? HTTP_GET : req->method;
	int n_segments, t;

	memset(&call, 0, sizeof(call));
	if (strcmp(req->path, ADMIN_PREFIX "/health") == 0 ||
	    strcmp(req->path, ADMIN_PREFIX "/openapi.json") == 0) {
		if (method != HTTP_GET) {
			(void)http_response_header(resp, "Allow", "GET");
			http_response_problem(resp, 405, NULL, "method_not_allowed",
			                      "%s is not allowed here", req->method_name);
			return;
		}
		if (strcmp(req->path, ADMIN_PREFIX "/health") == 0)
			admin_health(ctx, resp);
		else
			http_response_set(resp, 200, "application/json", embedded_openapi,
			                  strlen(embedded_openapi));
		return;
	}

	n_segments = -1;
	if (strlen(req->path) < sizeof(path)) {
		memcpy(path, req->path, strlen(req->path) + 1);
		n_segments = admin_split(path, segments, ADMIN_MAX_SEGMENTS);
	}
	for (t = 0; n_segments > 0 && admin_tables[t] != NULL; t++) {
		const struct admin_route *r = NULL;

		for (r = admin_tables[t]; r->pattern != NULL; r++) {
			const char *params[ADMIN_MAX_PATH_PARAMS] = {NULL};
			int n_params = 0;

			if (!admin_match(r->pattern, segments, n_segments, params, &n_params))
				continue;
			if (r->method == method && found == NULL) {
				found = r;
				memcpy(call.params, params, sizeof(params));
				call.n_params = n_params;
			}
			/* Collect Allow in case no method matches. */
			if (strstr(allow, admin_method_name(r->method)) == NULL &&
			    strlen(allow) + 10 < sizeof(allow)) {
				if (allow[0] != '\0')
					strcat(allow, ", ");
				strcat(allow, admin_method_name(r->method));
			}
		}
	}
	if (found == NULL) {
		if (allow[0] != '\0') {
			(void)http_response_header(resp, "Allow", allow);
			http_response_problem(resp, 405, NULL, "method_not_allowed",
			                      "%s is not allowed here", req->method_name);
		} else {
			http_response_problem(resp, 404, NULL, "not_found", "no such resource");
		}
		return;
	}

	if (admin_authenticate(req, ctx, resp, &who) != 0)
		return;
	call.req = req;
	call.ctx = ctx;
	call.who = &who;
	found->fn(&call, resp);
	/* A route that returned with its transaction open has a bug; do not
	 * let the next request on this connection inherit it. */
	db_rollback(ctx->db);
}
