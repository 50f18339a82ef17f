/*
 * store_profiles.h: certificate profiles as the admin API reads and writes
 * them (protocols/admin/admin_profiles.c validates and decides who may).
 *
 * JSON shape (built by PostgreSQL):
 *   profile {"id", "name", "description", "cert_type", "ca_backend",
 *            "terms_days", "key_types", "key_usage", "ext_key_usage",
 *            "requires_approval", "allow_wildcards", "require_dcv",
 *            "require_org_validated", "include_address", "allowed_org_ids",
 *            "active", "created_at"}
 * allowed_org_ids is null when every organization may use the profile.
 */
#ifndef ENROLLD_STORE_PROFILES_H
#define ENROLLD_STORE_PROFILES_H

#include <stdint.h>

#include <jansson.h>

struct db;
struct store_page;

/* Profiles with id > page->after usable by org_id (every profile when
 * org_id is 0). 0 with *items, or -1. */
int store_profiles_list(struct db *db, int64_t org_id, const struct store_page *page,
                        json_t **items) __attribute__((warn_unused_result));
/* 1 with *out, 0 absent, -1 on error. */
int store_profiles_get(struct db *db, int64_t id, json_t **out) __attribute__((warn_unused_result));
/* The existing profiles among `ids` (a JSON array text of integers), as a
 * JSON array of profile objects in *out. 0, or -1. */
int store_profiles_by_ids(struct db *db, const char *ids, json_t **out)
    __attribute__((warn_unused_result));
/* fields: the profile keys above but id and created_at. 0 with *out, -1 on
 * error (23505: the name exists). */
int store_profiles_create(struct db *db, const char *fields, json_t **out)
    __attribute__((warn_unused_result));
/* Updates the keys present in fields. 1 with *out, 0 absent, -1. */
int store_profiles_update(struct db *db, int64_t id, const char *fields, json_t **out)
    __attribute__((warn_unused_result));

#endif
