/*
 * admin.h: the admin JSON API's own pieces, shared by its route files.
 *
 * admin.c holds the router, bearer-token authentication and the scope rules;
 * each resource lives in its own file (admin_orgs.c, admin_domains.c,
 * admin_certificates.c, ...) and exports a route table.
 *
 * Scope: an administrator asking for anything outside its scope gets 404
 * (never 403: it learns nothing), and the attempt is audited with outcome
 * 'denied' (admin_out_of_scope()).
 */
#ifndef ENROLLD_ADMIN_H
#define ENROLLD_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "../request.h"

enum admin_role { ADMIN_ROLE_MRAO, ADMIN_ROLE_RAO, ADMIN_ROLE_DRAO };

/* Privilege flags (admins.privileges). */
enum admin_privilege {
	ADMIN_PRIV_MANAGE_ADMINS = 1 << 0,	 /* "manage_admins" */
	ADMIN_PRIV_APPROVE_DELEGATIONS = 1 << 1, /* "approve_delegations" */
	ADMIN_PRIV_AUTO_APPROVE_SSL = 1 << 2,	 /* "auto_approve_ssl" */
	ADMIN_PRIV_API_ONLY = 1 << 3,		 /* "api_only" */
};

struct admin_identity {
	int64_t admin_id;
	enum admin_role role;
	int64_t org_id;		/* 0 for MRAO */
	int64_t dept_id;	/* 0 unless DRAO */
	unsigned cert_types;	/* enum cert_type bits (all for MRAO) */
	unsigned privileges;	/* enum admin_privilege bits */
	char actor[32];		/* "admin:<id>" for the audit log */
};

#define ADMIN_MAX_PATH_PARAMS 4

struct admin_call {
	const struct http_request *req;
	struct door_context *ctx;
	const struct admin_identity *who;
	/* values of the {id}-style segments of the matched pattern, in order */
	const char *params[ADMIN_MAX_PATH_PARAMS];
	int n_params;
};

typedef void (*admin_route_fn)(const struct admin_call *call, struct http_response *resp);

struct admin_route {
	enum http_method method;
	const char *pattern;	/* "/api/v1/organizations/{id}" */
	admin_route_fn fn;
};

/* Route tables, each terminated by { .pattern = NULL }. */
extern const struct admin_route admin_org_routes[];
extern const struct admin_route admin_admin_routes[];
extern const struct admin_route admin_domain_routes[];
extern const struct admin_route admin_profile_routes[];
extern const struct admin_route admin_certificate_routes[];
extern const struct admin_route admin_audit_routes[];
extern const struct admin_route admin_endpoint_routes[];
/* EAB keys of ACME endpoints, ACME accounts (admin_acme.c) */
extern const struct admin_route admin_acme_routes[];

/* Scope checks: does `who` cover this org/department (0 = none) and, when
 * cert_type is non-zero, this certificate type? */
bool admin_scope_covers(const struct admin_identity *who, int64_t org_id,
    int64_t dept_id, unsigned cert_type);

/* Audits the attempt (outcome 'denied', reason 'out_of_scope') and answers
 * 404 not_found, as if the object did not exist. */
void admin_out_of_scope(const struct admin_call *call, struct http_response *resp,
    const char *object_type, int64_t object_id);

/* Parses the request body as a JSON object, refusing (400 with a problem
 * document, returns NULL): not JSON, not an object, nesting deeper than 16,
 * keys not in `allowed` (NULL-terminated), or required keys (`required`,
 * NULL-terminated, may be NULL) missing. */
json_t *admin_json_body(const struct admin_call *call, struct http_response *resp,
    const char *const *allowed, const char *const *required);

/* Sends `obj` as application/json with `status`; steals the reference. */
void admin_json_reply(struct http_response *resp, int status, json_t *obj);

/* Parses a decimal id path parameter (> 0); -1 if malformed. */
int64_t admin_param_id(const char *s);

/* What admin_load() needs to know of one kind of object. */
struct admin_object_kind {
	const char *name; /* "profile": for the 404 and the audit entry */
	/* 1 found (*out a new reference), 0 absent, -1 database failure */
	int (*get)(struct db *db, int64_t id, json_t **out);
	/* may `who` see this object? */
	bool (*visible)(const struct admin_identity *who, int64_t id, const json_t *obj);
};

/* Loads the object named by path parameter `param` and requires the caller
 * to see it. Returns it (new reference), or NULL after answering: 404 for a
 * malformed id or an absent object, 404 + audit when out of scope,
 * 503/500 on a database failure. */
json_t *admin_load(const struct admin_call *call, struct http_response *resp, int param,
    const struct admin_object_kind *kind, int64_t *id);

/* 503 when the database is unreachable, else 500; logs. */
void admin_db_failure(const struct admin_call *call, struct http_response *resp);

/*
 * Additions used by the admin route files (admin.c implements them).
 */

struct store_scope;

/* "mrao", "rao", "drao"; admin_role_parse() returns -1 when unknown. */
const char *admin_role_name(enum admin_role role);
int admin_role_parse(const char *name);

/* The word lists a request body may carry as arrays of names. */
enum admin_vocab {
	ADMIN_VOCAB_CERT_TYPE,	   /* "ssl", ... (core/types.h) */
	ADMIN_VOCAB_KEY_TYPE,	   /* "rsa2048", ... */
	ADMIN_VOCAB_KEY_USAGE,	   /* "digitalSignature", ... */
	ADMIN_VOCAB_EXT_KEY_USAGE, /* "serverAuth", ... */
	ADMIN_VOCAB_PRIVILEGE,	   /* "manage_admins", ... (enum admin_privilege) */
};
/* The names of `bits` in bit order, as a new JSON array. */
json_t *admin_vocab_json(enum admin_vocab vocab, unsigned bits);
/* The bits of the known names in a JSON array of strings (others ignored). */
unsigned admin_vocab_bits(enum admin_vocab vocab, const json_t *array);

/* The caller's scope as the store_* list filters take it. */
void admin_store_scope(const struct admin_identity *who, struct store_scope *out);
/* May `who` read things of this organization at all? MRAO: any; RAO and
 * DRAO: their own (a DRAO sees its organization, not its other
 * departments). */
bool admin_sees_org(const struct admin_identity *who, int64_t org_id);

/*
 * Request body fields. Each returns 1 when `key` is present and valid (value
 * in *out; a JSON null gives NULL / 0 when `nullable`), 0 when absent, and -1
 * after answering 400 invalid_field naming the field.
 */
/* A string of min_len..max_len bytes without control characters. */
int admin_field_string(struct http_response *resp, const json_t *body, const char *key,
    size_t min_len, size_t max_len, bool nullable, const char **out);
int admin_field_bool(struct http_response *resp, const json_t *body, const char *key, bool *out);
/* A positive integer id. */
int admin_field_id(struct http_response *resp, const json_t *body, const char *key,
    bool nullable, int64_t *out);
/* An array of distinct names of `vocab` (empty only when allow_empty). */
int admin_field_names(struct http_response *resp, const json_t *body, const char *key,
    enum admin_vocab vocab, bool allow_empty, unsigned *out);
/* An RFC 3339 timestamp ("2026-11-26T10:00:00Z", offsets allowed), in the
 * future when `future`; copied into out (PostgreSQL parses it as is). */
#define ADMIN_TIMESTAMP_LEN 40
int admin_field_timestamp(struct http_response *resp, const json_t *body, const char *key,
    bool nullable, bool future, char out[ADMIN_TIMESTAMP_LEN]);

/* The integer `key` of a JSON object; 0 when absent or null. */
int64_t admin_json_id(const json_t *obj, const char *key);

/* ?limit= (default 50, 1..500) and ?after= (default 0). 0, or -1 after
 * answering 400 invalid_field. */
#define ADMIN_LIST_DEFAULT 50
#define ADMIN_LIST_MAX 500
int admin_page_params(const struct admin_call *call, struct http_response *resp,
    int64_t *after, int *limit);
/* Answers {"items": [...], "next_after": id|null} from up to limit + 1
 * items (the extra one only says another page exists); steals items. */
void admin_list_reply(struct http_response *resp, json_t *items, int limit);

/* 403 role_not_permitted with a detail. */
void admin_forbidden(struct http_response *resp, const char *detail_fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* 404 not_found, the body admin_out_of_scope() also sends. */
void admin_not_found(struct http_response *resp, const char *object_type, int64_t object_id);
/* After a failed store call: rolls back any open transaction and answers
 * 409 conflict for a unique violation (detail names `what`), 400
 * invalid_field for a check or foreign-key violation, else 503/500. */
void admin_db_error(const struct admin_call *call, struct http_response *resp, const char *what);
/* After a store write returned r != 1 in the caller's transaction: rolls
 * back, then r == 0 answers 404 for object_type object_id (it vanished), and
 * r < 0 answers like admin_db_error(call, resp, what). */
void admin_write_failed(const struct admin_call *call, struct http_response *resp, int r,
    const char *object_type, int64_t object_id, const char *what);
/* Writes an audit entry of a change into the caller's transaction without
 * committing (for a change with several entries). 0, or -1 after rolling
 * back and answering like admin_db_error(). */
int admin_audit(const struct admin_call *call, struct http_response *resp, const char *action,
    const char *object_type, int64_t object_id, int64_t org_id, int64_t dept_id,
    const json_t *details) __attribute__((warn_unused_result));
/* The validated request fields as JSON text for a store_* write, then
 * admin_begin(). Returns the text (newly allocated; the caller frees), or
 * NULL after answering 500/503. */
char *admin_begin_fields(const struct admin_call *call, struct http_response *resp,
    const json_t *fields) __attribute__((warn_unused_result));
/* Rolls back the caller's open transaction, if any. */
void admin_rollback(const struct admin_call *call);
/* Opens a transaction; 0, or -1 after answering 503/500. */
int admin_begin(const struct admin_call *call, struct http_response *resp)
    __attribute__((warn_unused_result));
/* Writes the audit entry of a change (actor who->actor, outcome ok, details
 * may be NULL) and commits the caller's transaction. 0, or -1 after rolling
 * back and answering like admin_db_error(). */
int admin_commit_audited(const struct admin_call *call, struct http_response *resp,
    const char *action, const char *object_type, int64_t object_id, int64_t org_id,
    int64_t dept_id, const json_t *details) __attribute__((warn_unused_result));

#endif
