/*
 * store_admins.h: administrator rows as the admin API reads and writes them
 * (protocols/admin/admin_admins.c decides who may). Tokens are in tokens.h.
 *
 * JSON shape (built by PostgreSQL):
 *   admin {"id", "login", "email", "role", "org_id", "dept_id",
 *          "cert_types", "privileges", "active", "created_by", "created_at"}
 *
 * Writes take the validated request fields as one JSON object (see
 * store_orgs.h) and run in the caller's transaction.
 */
#ifndef ENROLLD_STORE_ADMINS_H
#define ENROLLD_STORE_ADMINS_H

#include <stdint.h>

#include <jansson.h>

struct db;
struct store_page;

/* Admins with id > page->after, of org_id (when != 0) and dept_id (when
 * != 0). 0 with *items, or -1. */
int store_admins_list(struct db *db, int64_t org_id, int64_t dept_id, const struct store_page *page,
                      json_t **items) __attribute__((warn_unused_result));
/* 1 with *out, 0 absent, -1 on error. */
int store_admins_get(struct db *db, int64_t id, json_t **out) __attribute__((warn_unused_result));
/* fields: login, email, role, org_id, dept_id, cert_types, privileges.
 * 0 with *out, -1 on error (23505: login taken). */
int store_admins_create(struct db *db, const char *fields, int64_t created_by, json_t **out)
    __attribute__((warn_unused_result));
/* fields: any of active, email, cert_types, privileges. 1, 0 absent, -1. */
int store_admins_update(struct db *db, int64_t id, const char *fields, json_t **out)
    __attribute__((warn_unused_result));
/* Number of active MRAOs other than `id`, in *count. 0, or -1. */
int store_admins_other_mraos(struct db *db, int64_t id, int64_t *count)
    __attribute__((warn_unused_result));

#endif
