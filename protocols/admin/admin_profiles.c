/*
 * admin_profiles.c: /api/v1/profiles (certificate profiles).
 *
 * Every administrator may list and read the profiles its organization may
 * use (allowed_org_ids null, or containing it); an MRAO sees all. Only an
 * MRAO creates or changes one. Validation follows core/types.h: one cert
 * type, terms of 1..3650 days, key types from the key_type enum (which holds
 * nothing weaker than RSA 2048 / P-256), KU and EKU names from their enums.
 * Arrays are stored de-duplicated in enum order (terms ascending).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "store_json.h"
#include "store_orgs.h"
#include "store_profiles.h"
#include "types.h"

#define PROFILES_MAX_TERMS 16
#define PROFILES_MAX_TERM_DAYS 3650
#define PROFILES_MAX_ORGS 1000

static const char *const profiles_fields[] = {"name",
                                              "description",
                                              "cert_type",
                                              "ca_backend",
                                              "terms_days",
                                              "key_types",
                                              "key_usage",
                                              "ext_key_usage",
                                              "requires_approval",
                                              "allow_wildcards",
                                              "require_dcv",
                                              "require_org_validated",
                                              "include_address",
                                              "allowed_org_ids",
                                              "active",
                                              NULL};
static const char *const profiles_required[] = {"name", "cert_type", "terms_days", "key_types",
                                                NULL};
static const char *const profiles_flags[] = {
    "requires_approval", "allow_wildcards", "require_dcv", "require_org_validated",
    "include_address",   "active",          NULL};

static int profiles_int_cmp(const void *a, const void *b)
{
	json_int_t x = *(const json_int_t *)a, y = *(const json_int_t *)b;

	return x < y ? -1 : x > y;
}

/* terms_days: 1..16 distinct integers of 1..3650 days, sorted into
 * *out (new reference). 0 absent, 1 present, -1 after answering. */
static int profiles_terms(struct http_response *resp, const json_t *body, json_t **out)
{
	const json_t *v = json_object_get(body, "terms_days");
	json_int_t terms[PROFILES_MAX_TERMS];
	json_t *item = NULL;
	size_t i, n;

	*out = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > PROFILES_MAX_TERMS) {
		http_response_problem(
		    resp, 400, NULL, "invalid_field",
		    "field \"terms_days\": must be an array of 1 to %d terms in days",
		    PROFILES_MAX_TERMS);
		return -1;
	}
	n = json_array_size(v);
	json_array_foreach(v, i, item)
	{
		if (!json_is_integer(item) || json_integer_value(item) < 1 ||
		    json_integer_value(item) > PROFILES_MAX_TERM_DAYS) {
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "field \"terms_days\": every term must be an integer from 1 to %d days",
			    PROFILES_MAX_TERM_DAYS);
			return -1;
		}
		terms[i] = json_integer_value(item);
	}
	qsort(terms, n, sizeof(terms[0]), profiles_int_cmp);
	*out = json_array();
	for (i = 0; *out != NULL && i < n; i++) {
		if (i > 0 && terms[i] == terms[i - 1]) {
			json_decref(*out);
			*out = NULL;
			http_response_problem(resp, 400, NULL, "invalid_field",
			                      "field \"terms_days\": %lld is listed twice",
			                      (long long)terms[i]);
			return -1;
		}
		if (json_array_append_new(*out, json_integer(terms[i])) != 0) {
			json_decref(*out);
			*out = NULL;
		}
	}
	if (*out == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "internal error");
		return -1;
	}
	return 1;
}

/* allowed_org_ids: null or an array of distinct ids of existing
 * organizations. 0 absent, 1 present (*out a new reference, JSON null or the
 * array), -1 after answering. */
static int profiles_orgs(const struct admin_call *call, struct http_response *resp,
                         const json_t *body, json_t **out)
{
	const json_t *v = json_object_get(body, "allowed_org_ids");
	json_t *item = NULL, *missing = NULL;
	char *text = NULL;
	size_t i, j;

	*out = NULL;
	if (v == NULL)
		return 0;
	if (json_is_null(v)) {
		*out = json_null();
		return 1;
	}
	if (!json_is_array(v) || json_array_size(v) > PROFILES_MAX_ORGS)
		goto bad;
	json_array_foreach(v, i, item)
	{
		if (!json_is_integer(item) || json_integer_value(item) <= 0)
			goto bad;
		for (j = 0; j < i; j++) {
			if (json_integer_value(json_array_get(v, j)) == json_integer_value(item))
				goto bad;
		}
	}
	text = store_json_text(v);
	if (text == NULL || store_orgs_missing(call->ctx->db, text, &missing) != 0) {
		free(text);
		admin_db_failure(call, resp);
		return -1;
	}
	free(text);
	if (json_array_size(missing) > 0) {
		http_response_problem(resp, 404, NULL, "not_found", "organization %lld not found",
		                      (long long)json_integer_value(json_array_get(missing, 0)));
		json_decref(missing);
		return -1;
	}
	json_decref(missing);
	*out = json_deep_copy(v);
	return 1;
bad:
	http_response_problem(
	    resp, 400, NULL, "invalid_field",
	    "field \"allowed_org_ids\": must be null or an array of distinct organization ids");
	return -1;
}

/* Validates the profile fields present in body into *fields (new
 * reference, canonical values, only the keys present). 0, or -1 after
 * answering. */
static int profiles_validate(const struct admin_call *call, struct http_response *resp,
                             const json_t *body, json_t **fields)
{
	static const struct {
		const char *key;
		enum admin_vocab vocab;
		bool allow_empty;
	} lists[] = {
	    {"key_types", ADMIN_VOCAB_KEY_TYPE, false},
	    {"key_usage", ADMIN_VOCAB_KEY_USAGE, true},
	    {"ext_key_usage", ADMIN_VOCAB_EXT_KEY_USAGE, true},
	};
	const char *s = NULL;
	json_t *value = NULL;
	unsigned bits;
	size_t i;
	bool b;
	int r;

	*fields = json_object();
	if (*fields == NULL)
		goto fail;
	r = admin_field_string(resp, body, "name", 1, 128, false, &s);
	if (r < 0)
		goto err;
	if (r == 1 && json_object_set_new(*fields, "name", json_string(s)) != 0)
		goto fail;
	r = admin_field_string(resp, body, "description", 0, 1024, true, &s);
	if (r < 0)
		goto err;
	if (r == 1 && json_object_set_new(*fields, "description",
	                                  s != NULL ? json_string(s) : json_null()) != 0)
		goto fail;
	r = admin_field_string(resp, body, "cert_type", 1, 32, false, &s);
	if (r < 0)
		goto err;
	if (r == 1) {
		if (cert_type_parse(s) < 0) {
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "field \"cert_type\": must be ssl, client, code_signing or device");
			goto err;
		}
		if (json_object_set_new(*fields, "cert_type", json_string(s)) != 0)
			goto fail;
	}
	r = admin_field_string(resp, body, "ca_backend", 1, 32, false, &s);
	if (r < 0)
		goto err;
	if (r == 1) {
		if (strcmp(s, "private") != 0) {
			http_response_problem(resp, 400, NULL, "invalid_field",
			                      "field \"ca_backend\": must be private");
			goto err;
		}
		if (json_object_set_new(*fields, "ca_backend", json_string(s)) != 0)
			goto fail;
	}
	r = profiles_terms(resp, body, &value);
	if (r < 0)
		goto err;
	if (r == 1 && json_object_set_new(*fields, "terms_days", value) != 0)
		goto fail;
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		r = admin_field_names(resp, body, lists[i].key, lists[i].vocab,
		                      lists[i].allow_empty, &bits);
		if (r < 0)
			goto err;
		if (r == 1 && json_object_set_new(*fields, lists[i].key,
		                                  admin_vocab_json(lists[i].vocab, bits)) != 0)
			goto fail;
	}
	for (i = 0; profiles_flags[i] != NULL; i++) {
		r = admin_field_bool(resp, body, profiles_flags[i], &b);
		if (r < 0)
			goto err;
		if (r == 1 && json_object_set_new(*fields, profiles_flags[i], json_boolean(b)) != 0)
			goto fail;
	}
	r = profiles_orgs(call, resp, body, &value);
	if (r < 0)
		goto err;
	if (r == 1 && json_object_set_new(*fields, "allowed_org_ids", value) != 0)
		goto fail;
	return 0;
fail:
	http_response_problem(resp, 500, NULL, "internal_error", "internal error");
err:
	json_decref(*fields);
	*fields = NULL;
	return -1;
}

/* May `who` use this profile (and so see it)? */
static bool profiles_visible(const struct admin_identity *who, const json_t *profile)
{
	const json_t *orgs = json_object_get(profile, "allowed_org_ids");
	json_t *item = NULL;
	size_t i;

	if (who->role == ADMIN_ROLE_MRAO || json_is_null(orgs) || orgs == NULL)
		return true;
	json_array_foreach(orgs, i, item)
	{
		if (json_integer_value(item) == who->org_id)
			return true;
	}
	return false;
}

static bool profiles_visible_kind(const struct admin_identity *who, int64_t id, const json_t *obj)
{
	return profiles_visible(who, obj);
}

static const struct admin_object_kind profiles_kind = {"profile", store_profiles_get,
                                                       profiles_visible_kind};

/* Loads profile params[0] and requires the caller to see it. */
static json_t *profiles_load(const struct admin_call *call, struct http_response *resp, int64_t *id)
{
	return admin_load(call, resp, 0, &profiles_kind, id);
}

static void profiles_list(const struct admin_call *call, struct http_response *resp)
{
	struct store_page page;
	json_t *items = NULL;

	if (admin_page_params(call, resp, &page.after, &page.limit) != 0)
		return;
	if (store_profiles_list(call->ctx->db,
	                        call->who->role == ADMIN_ROLE_MRAO ? 0 : call->who->org_id, &page,
	                        &items) != 0) {
		admin_db_failure(call, resp);
		return;
	}
	admin_list_reply(resp, items, page.limit);
}

static void profiles_create(const struct admin_call *call, struct http_response *resp)
{
	json_t *body = NULL, *fields = NULL, *profile = NULL;
	char *text = NULL;

	if (call->who->role != ADMIN_ROLE_MRAO) {
		admin_forbidden(resp, "only a master administrator may create profiles");
		return;
	}
	body = admin_json_body(call, resp, profiles_fields, profiles_required);
	if (body == NULL || profiles_validate(call, resp, body, &fields) != 0)
		goto out;
	text = admin_begin_fields(call, resp, fields);
	if (text == NULL)
		goto out;
	if (store_profiles_create(call->ctx->db, text, &profile) != 0) {
		admin_db_error(call, resp, "a profile with this name");
		goto out;
	}
	if (admin_commit_audited(call, resp, "profile.create", "profile",
	                         admin_json_id(profile, "id"), 0, 0, fields) != 0)
		goto out;
	admin_json_reply(resp, 201, profile);
	profile = NULL;
out:
	free(text);
	json_decref(profile);
	json_decref(fields);
	json_decref(body);
}

static void profiles_get(const struct admin_call *call, struct http_response *resp)
{
	json_t *profile = NULL;
	int64_t id;

	profile = profiles_load(call, resp, &id);
	if (profile != NULL)
		admin_json_reply(resp, 200, profile);
}

static void profiles_patch(const struct admin_call *call, struct http_response *resp)
{
	json_t *profile = NULL, *body = NULL, *fields = NULL, *updated = NULL;
	char *text = NULL;
	int64_t id;
	int r;

	profile = profiles_load(call, resp, &id);
	if (profile == NULL)
		return;
	if (call->who->role != ADMIN_ROLE_MRAO) {
		admin_forbidden(resp, "only a master administrator may change profiles");
		goto out;
	}
	body = admin_json_body(call, resp, profiles_fields, NULL);
	if (body == NULL || profiles_validate(call, resp, body, &fields) != 0)
		goto out;
	text = admin_begin_fields(call, resp, fields);
	if (text == NULL)
		goto out;
	r = store_profiles_update(call->ctx->db, id, text, &updated);
	if (r != 1) {
		admin_write_failed(call, resp, r, "profile", id, "a profile with this name");
		goto out;
	}
	if (admin_commit_audited(call, resp, "profile.update", "profile", id, 0, 0, fields) != 0)
		goto out;
	admin_json_reply(resp, 200, updated);
	updated = NULL;
out:
	free(text);
	json_decref(updated);
	json_decref(fields);
	json_decref(body);
	json_decref(profile);
}

const struct admin_route admin_profile_routes[] = {
    {HTTP_GET, "/api/v1/profiles", profiles_list},
    {HTTP_POST, "/api/v1/profiles", profiles_create},
    {HTTP_GET, "/api/v1/profiles/{id}", profiles_get},
    {HTTP_PATCH, "/api/v1/profiles/{id}", profiles_patch},
    {.pattern = NULL},
};
