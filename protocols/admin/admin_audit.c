/*
 * admin_audit.c: GET /api/v1/audit, the audit log read back.
 *
 * Filters: action, actor, object_type, object_id (exact), plus the usual
 * keyset page (limit, after; id ascending). An MRAO reads every entry, a RAO
 * the entries of its organization, a DRAO those of its department. Entries
 * of denied out-of-scope attempts carry no organization (admin.c), so only
 * an MRAO reads them.
 */
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "store_audit.h"
#include "store_json.h"

static void audit_list(const struct admin_call *call, struct http_response *resp)
{
	static const char *const names[] = {"action", "actor", "object_type", "object_id"};
	struct store_audit_filter filter;
	struct store_page page;
	char *values[4] = {NULL, NULL, NULL, NULL};
	json_t *items = NULL;
	size_t i;

	memset(&filter, 0, sizeof(filter));
	if (admin_page_params(call, resp, &page.after, &page.limit) != 0)
		return;
	for (i = 0; i < 4; i++) {
		values[i] = http_request_query_param(call->req, names[i]);
		if (values[i] != NULL && (values[i][0] == '\0' || strlen(values[i]) > 128)) {
			http_response_problem(resp, 400, NULL, "invalid_field",
			                      "query parameter \"%s\" must be 1 to 128 characters",
			                      names[i]);
			goto out;
		}
	}
	filter.action = values[0];
	filter.actor = values[1];
	filter.object_type = values[2];
	if (values[3] != NULL) {
		filter.object_id = admin_param_id(values[3]);
		if (filter.object_id <= 0) {
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "query parameter \"object_id\" must be a positive integer");
			goto out;
		}
	}
	if (call->who->role != ADMIN_ROLE_MRAO)
		filter.scope_org_id = call->who->org_id;
	if (call->who->role == ADMIN_ROLE_DRAO)
		filter.scope_dept_id = call->who->dept_id;
	if (store_audit_list(call->ctx->db, &filter, &page, &items) != 0) {
		admin_db_failure(call, resp);
		goto out;
	}
	admin_list_reply(resp, items, page.limit);
out:
	for (i = 0; i < 4; i++)
		free(values[i]);
}

const struct admin_route admin_audit_routes[] = {
    {HTTP_GET, "/api/v1/audit", audit_list},
    {.pattern = NULL},
};
