/*
 * store_domains.h: domains, their DCV state and their delegations, as the
 * admin API reads and writes them (protocols/admin/admin_domains.c decides
 * who may).
 *
 * JSON shapes (built by PostgreSQL):
 *   domain     {"id", "name", "description", "active", "dcv_status",
 *               "dcv_method", "dcv_validated_at", "dcv_expires_at",
 *               "created_by", "created_at"}
 *   delegation {"id", "domain_id", "domain", "org_id", "dept_id",
 *               "cert_types", "state", "requested_by", "approved_by",
 *               "created_at", "approved_at"}
 *
 * Visibility (struct store_scope): a delegation is visible when it is to the
 * scope's organization (to the whole of it, or to the scope's department when
 * the scope has one) and shares a cert type with the scope; a domain is
 * visible when one of its delegations is. A zero scope sees everything.
 */
#ifndef ENROLLD_STORE_DOMAINS_H
#define ENROLLD_STORE_DOMAINS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct db;
struct store_page;
struct store_scope;

/* Visible domains with id > page->after. 0 with *items, or -1. */
int store_domains_list(struct db *db, const struct store_scope *scope,
                       const struct store_page *page, json_t **items)
    __attribute__((warn_unused_result));
/* Domain id: 1 with *out and *visible (for `scope`), 0 absent, -1 error. */
int store_domains_get(struct db *db, int64_t id, const struct store_scope *scope, json_t **out,
                      bool *visible) __attribute__((warn_unused_result));
/* fields: name (canonical), description, active. 0 with *out, -1 on error
 * (23505: the name exists). */
int store_domains_create(struct db *db, const char *fields, int64_t created_by, json_t **out)
    __attribute__((warn_unused_result));
/* fields: active, description. 1 with *out, 0 absent, -1. */
int store_domains_update(struct db *db, int64_t id, const char *fields, json_t **out)
    __attribute__((warn_unused_result));
/* Sets the DCV state (method and expires_at may be NULL); 'validated' stamps
 * dcv_validated_at, 'not_started' clears it. 1 with *out, 0 absent, -1. */
int store_domains_dcv(struct db *db, int64_t id, const char *status, const char *method,
                      const char *expires_at, json_t **out) __attribute__((warn_unused_result));

/* Visible delegations of domain_id with id > page->after. */
int store_domains_deleg_list(struct db *db, int64_t domain_id, const struct store_scope *scope,
                             const struct store_page *page, json_t **items)
    __attribute__((warn_unused_result));
/* Delegation id (whoever may see it): 1 with *out, 0 absent, -1. */
int store_domains_deleg_get(struct db *db, int64_t id, json_t **out)
    __attribute__((warn_unused_result));
/* The delegation of domain_id to org_id as a whole (dept_id 0) or to
 * dept_id: 1 with *out, 0 none, -1. */
int store_domains_deleg_find(struct db *db, int64_t domain_id, int64_t org_id, int64_t dept_id,
                             json_t **out) __attribute__((warn_unused_result));
/* Inserts a delegation. cert_types: a JSON array text of names; state
 * "requested" or "approved" (then approved_by = requested_by, now).
 * 0 with *out, -1 on error (23505: that delegation exists). */
int store_domains_deleg_create(struct db *db, int64_t domain_id, int64_t org_id, int64_t dept_id,
                               const char *cert_types, const char *state, int64_t requested_by,
                               json_t **out) __attribute__((warn_unused_result));
/* requested -> approved. 1 with *out, 0 when not in state requested (or
 * absent), -1. */
int store_domains_deleg_approve(struct db *db, int64_t id, int64_t approver, json_t **out)
    __attribute__((warn_unused_result));
/* Deletes the delegation; when it is to a whole organization, also the
 * delegations of the same domain to that organization's departments (they
 * were carved out of it). 1 with *out (the deleted delegation plus
 * "cascaded": [ids]), 0 absent, -1. */
int store_domains_deleg_delete(struct db *db, int64_t id, json_t **out)
    __attribute__((warn_unused_result));

#endif
