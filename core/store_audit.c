/*
 * store_audit.c: the audit log as the admin API lists it (store_audit.h).
 */
#include <stddef.h>

#include "db.h"
#include "store_audit.h"
#include "store_json.h"

#define AUDIT_JSON                                                                                 \
	"json_build_object('id', l.id, 'at', " STORE_JSON_TS(                                      \
	    "l.at") ", 'actor', l.actor, "                                                         \
	            "'action', l.action, 'object_type', l.object_type, 'object_id', l.object_id, " \
	            "'org_id', l.org_id, 'dept_id', l.dept_id, 'outcome', l.outcome, 'reason', "   \
	            "l.reason, "                                                                   \
	            "'details', l.details)"

int store_audit_list(struct db *db, const struct store_audit_filter *f,
                     const struct store_page *page, json_t **items)
{
	char object_buf[24], org_buf[24], dept_buf[24], after[24], limit[24];
	const char *params[8];

	store_json_page(page, after, limit);
	params[0] = f->action;
	params[1] = f->actor;
	params[2] = f->object_type;
	params[3] = store_json_int(object_buf, f->object_id);
	params[4] = store_json_int(org_buf, f->scope_org_id);
	params[5] = store_json_int(dept_buf, f->scope_dept_id);
	params[6] = after;
	params[7] = limit;
	return store_json_must(db, "audit_list",
	                       "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM ("
	                       " SELECT l.id, " AUDIT_JSON " AS j FROM audit_log l"
	                       " WHERE ($1::text IS NULL OR l.action = $1)"
	                       " AND ($2::text IS NULL OR l.actor = $2)"
	                       " AND ($3::text IS NULL OR l.object_type = $3)"
	                       " AND ($4::bigint IS NULL OR l.object_id = $4::bigint)"
	                       " AND ($5::bigint IS NULL OR l.org_id = $5::bigint)"
	                       " AND ($6::bigint IS NULL OR l.dept_id = $6::bigint)"
	                       " AND l.id > $7::bigint ORDER BY l.id LIMIT $8::int) s",
	                       8, params, items);
}
