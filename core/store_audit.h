/*
 * store_audit.h: reading the audit log for GET /api/v1/audit (writing is
 * db_audit() in db.h).
 *
 * JSON shape (built by PostgreSQL):
 *   entry {"id", "at", "actor", "action", "object_type", "object_id",
 *          "org_id", "dept_id", "outcome", "reason", "details"}
 */
#ifndef ENROLLD_STORE_AUDIT_H
#define ENROLLD_STORE_AUDIT_H

#include <stdint.h>

#include <jansson.h>

struct db;
struct store_page;

/* Filters (NULL / 0: any) and the reader's scope. */
struct store_audit_filter {
	const char *action;
	const char *actor;
	const char *object_type;
	int64_t object_id;
	int64_t scope_org_id;  /* 0: every entry (MRAO) */
	int64_t scope_dept_id; /* 0: every department of scope_org_id */
};

/* Entries with id > page->after, id ascending. 0 with *items, or -1. */
int store_audit_list(struct db *db, const struct store_audit_filter *f,
                     const struct store_page *page, json_t **items)
    __attribute__((warn_unused_result));

#endif
