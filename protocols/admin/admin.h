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

/* 503 when the database is unreachable, else 500; logs. */
void admin_db_failure(const struct admin_call *call, struct http_response *resp);

#endif
