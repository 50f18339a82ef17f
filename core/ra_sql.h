/*
 * ra_sql.h: the SQL of the RA's facts query, as expressions, so that a door
 * may fetch the facts inside a statement it runs anyway (the ACME finalize
 * loads them with its nonce, account and order: core/store_acme.c) and hand
 * the text to ra_enroll() (enroll_request.facts_json) instead of paying a
 * round trip of their own. ra.c runs the same expression on its own.
 */
#ifndef ENROLLD_RA_SQL_H
#define ENROLLD_RA_SQL_H

#include "store_certs.h"

/* clang-format off */
/* The facts of a row found by idempotency key. */
#define RA_EXISTING_JSON(c) \
	"json_build_object(" \
	"'id', " c ".id, " \
	"'status', " c ".status, " \
	"'serial', " c ".serial, " \
	"'cert_der', encode(" c ".cert_der, 'hex'), " \
	"'decline_reason', " c ".decline_reason, " \
	"'json', " STORE_CERT_JSON(c) ")"

/*
 * The domains among the candidates cand (text[], names_candidates()) with an
 * approved delegation to organization org as a whole or to department dept,
 * with the union of the delegations' certificate types, as a json array
 * [{"name","active","dcv","cert_types"}] (policy_domain). Shared by the RA's
 * facts and the ACME newOrder's (core/store_acme.c).
 */
#define RA_DOMAINS_JSON(org, dept, cand) \
    "(SELECT coalesce(json_agg(json_build_object('name', dm.name," \
    " 'active', dm.active, 'dcv', dm.dcv_status = 'validated'" \
    " AND (dm.dcv_expires_at IS NULL OR dm.dcv_expires_at > now())," \
    " 'cert_types', x.cert_types)), '[]'::json)" \
    " FROM (SELECT dl.domain_id, array_agg(DISTINCT t) AS cert_types" \
    " FROM domains cd JOIN delegations dl ON dl.domain_id = cd.id" \
    " CROSS JOIN unnest(dl.cert_types) AS t" \
    " WHERE cd.name = ANY (" cand ") AND dl.state = 'approved' AND dl.org_id = " org \
    " AND (dl.dept_id IS NULL OR dl.dept_id = " dept ")" \
    " GROUP BY dl.domain_id) x JOIN domains dm ON dm.id = x.domain_id)"

/*
 * The facts as one json value, for organization org, department dept (NULL:
 * none), profile, endpoint (NULL: none), idempotency key (NULL: none) and
 * the candidate domains cand (text[], names_candidates()), each an SQL
 * expression (used several times: keep them parameters or columns).
 * Domains: those among the candidates with an approved delegation to the
 * organization as a whole or to this department, with the union of the
 * delegations' certificate types - only what the request's names can
 * touch, however many domains the organization has.
 */
#define RA_FACTS_JSON(org, dept, profile, endpoint, key, cand) \
    "json_build_object(" \
    "'org', (SELECT json_build_object('active', o.active," \
    " 'validated', o.validation_status = 'validated', 'name', o.name, 'city', o.city," \
    " 'state', o.state, 'country', o.country) FROM organizations o WHERE o.id = " org ")," \
    "'dept', (SELECT json_build_object('active', d.active, 'name', d.name)" \
    " FROM departments d WHERE d.id = " dept " AND d.org_id = " org ")," \
    "'profile', (SELECT json_build_object('name', p.name, 'active', p.active," \
    " 'cert_type', p.cert_type, 'terms_days', p.terms_days, 'key_types', p.key_types," \
    " 'key_usage', p.key_usage, 'ext_key_usage', p.ext_key_usage," \
    " 'requires_approval', p.requires_approval, 'allow_wildcards', p.allow_wildcards," \
    " 'require_dcv', p.require_dcv, 'require_org_validated', p.require_org_validated," \
    " 'include_address', p.include_address," \
    " 'allowed', p.allowed_org_ids IS NULL OR " org " = ANY (p.allowed_org_ids))" \
    " FROM profiles p WHERE p.id = " profile ")," \
    "'endpoint', (SELECT json_build_object('active', e.active," \
    " 'lists_profile', " profile " = ANY (e.profile_ids))" \
    " FROM endpoints e WHERE e.id = " endpoint ")," \
    "'domains', " RA_DOMAINS_JSON(org, dept, cand) "," \
    "'existing', (SELECT " RA_EXISTING_JSON("c") \
    " FROM certificates c WHERE c.idempotency_key = " key "))"
/* clang-format on */

#endif
