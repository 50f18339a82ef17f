/*
 * store_endpoints.h: protocol endpoints (ACME, SCEP, EST doors bound to an
 * organization or department) as the admin API reads and writes them
 * (protocols/admin/admin_endpoints.c validates and decides who may).
 *
 * JSON shape (built by PostgreSQL):
 *   endpoint {"id", "protocol", "name", "org_id", "dept_id",
 *             "default_profile_id", "profile_ids", "settings", "active",
 *             "created_at"}
 */
#ifndef ENROLLD_STORE_ENDPOINTS_H
#define ENROLLD_STORE_ENDPOINTS_H

#include <stdint.h>

#include <jansson.h>

struct db;
struct store_page;

/* Endpoints with id > page->after of org_id (when != 0) and dept_id (when
 * != 0). 0 with *items, or -1. */
int store_endpoints_list(struct db *db, int64_t org_id, int64_t dept_id,
                         const struct store_page *page, json_t **items)
    __attribute__((warn_unused_result));
/* 1 with *out, 0 absent, -1 on error. */
int store_endpoints_get(struct db *db, int64_t id, json_t **out)
    __attribute__((warn_unused_result));
/* fields: protocol, name, org_id, dept_id, default_profile_id, profile_ids,
 * settings, active. 0 with *out, -1 (23505: protocol + name exists). */
int store_endpoints_create(struct db *db, const char *fields, json_t **out)
    __attribute__((warn_unused_result));
/* Updates the keys present in fields (not protocol). 1, 0 absent, -1. */
int store_endpoints_update(struct db *db, int64_t id, const char *fields, json_t **out)
    __attribute__((warn_unused_result));

#endif
