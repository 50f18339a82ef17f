/*
 * store_orgs.h: organizations and their departments, as the admin API reads
 * and writes them (protocols/admin/admin_orgs.c decides who may).
 *
 * JSON shapes (built by PostgreSQL):
 *   organization {"id", "name", "street1", "street2", "street3", "city",
 *                 "state", "postal_code", "country", "validation_status",
 *                 "active", "created_at"}
 *   department   {"id", "org_id", "name", "active", "created_at"}
 *
 * Writes take the validated request fields as one JSON object (`fields`,
 * serialised); keys absent from it keep their current (or default) value.
 * They run in the caller's transaction. Lists follow store_json.h: at most
 * page->limit + 1 items, id ascending.
 */
#ifndef ENROLLD_STORE_ORGS_H
#define ENROLLD_STORE_ORGS_H

#include <stdint.h>

#include <jansson.h>

struct db;
struct store_page;

/* Organizations with id > page->after; only org_id when org_id != 0.
 * 0 with *items (new reference), or -1. */
int store_orgs_list(struct db *db, int64_t org_id, const struct store_page *page, json_t **items)
    __attribute__((warn_unused_result));
/* 1 with *out, 0 absent, -1 on error. */
int store_orgs_get(struct db *db, int64_t id, json_t **out) __attribute__((warn_unused_result));
/* Inserts; 0 with *out (the new organization), -1 on error (23505: the name
 * exists). */
int store_orgs_create(struct db *db, const char *fields, json_t **out)
    __attribute__((warn_unused_result));
/* Updates the keys present in fields; 1 with *out, 0 absent, -1 on error. */
int store_orgs_update(struct db *db, int64_t id, const char *fields, json_t **out)
    __attribute__((warn_unused_result));

/* The ids of `ids` (a JSON array text of integers) that name no
 * organization, as a JSON array in *missing (new reference). 0, or -1. */
int store_orgs_missing(struct db *db, const char *ids, json_t **missing)
    __attribute__((warn_unused_result));

/* Departments of org_id with id > page->after; only dept_id when != 0. */
int store_orgs_dept_list(struct db *db, int64_t org_id, int64_t dept_id,
                         const struct store_page *page, json_t **items)
    __attribute__((warn_unused_result));
int store_orgs_dept_get(struct db *db, int64_t id, json_t **out)
    __attribute__((warn_unused_result));
/* Inserts a department of org_id; 0 with *out, -1 on error (23505: name
 * taken in that organization). */
int store_orgs_dept_create(struct db *db, int64_t org_id, const char *fields, json_t **out)
    __attribute__((warn_unused_result));
int store_orgs_dept_update(struct db *db, int64_t id, const char *fields, json_t **out)
    __attribute__((warn_unused_result));

#endif
