/*
 * policy.h: the one decision every door asks for.
 *
 * policy_decide() is a pure function of its input: core/ra.c takes the facts
 * from the facts cache (core/facts.h: endpoint, organization, department,
 * profile, the domains delegated to the org/department) and the parsed CSR, and the decision is
 * made here, the same way whichever door the request came in by. Table-driven
 * tests in tests/unit/test_policy.c pin every reason code.
 */
#ifndef ENROLLD_POLICY_H
#define ENROLLD_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "csr.h"

enum policy_outcome { POLICY_ISSUE, POLICY_HOLD, POLICY_DENY };

/* Stable reason codes (the strings are API: never change one). */
#define POLICY_ENDPOINT_INACTIVE "endpoint_inactive"
#define POLICY_ORG_INACTIVE "organization_inactive"
#define POLICY_DEPT_INACTIVE "department_inactive"
#define POLICY_ORG_NOT_VALIDATED "organization_not_validated"
#define POLICY_PROFILE_INACTIVE "profile_inactive"
#define POLICY_PROFILE_NOT_ALLOWED "profile_not_allowed"
#define POLICY_CSR_SIGNATURE_INVALID "csr_signature_invalid"
#define POLICY_KEY_TYPE_NOT_ALLOWED "key_type_not_allowed"
#define POLICY_WEAK_KEY "weak_key"
#define POLICY_TERM_NOT_ALLOWED "term_not_allowed"
#define POLICY_NO_NAMES "no_names"
#define POLICY_NAME_INVALID "name_invalid"
#define POLICY_NAME_NOT_DELEGATED "name_not_delegated"
#define POLICY_DOMAIN_INACTIVE "domain_inactive"
#define POLICY_WILDCARD_NOT_ALLOWED "wildcard_not_allowed"
#define POLICY_DCV_REQUIRED "dcv_required"
#define POLICY_NAME_TYPE_NOT_ALLOWED "name_type_not_allowed"
#define POLICY_APPROVAL_REQUIRED "approval_required" /* reason for HOLD */

/* One domain that is approved-delegated to the request's org (dept NULL) or
 * to its department, for the certificate types in `cert_types`. A domain that
 * exists but is inactive is still listed (active = false) so that the
 * decision can say domain_inactive rather than name_not_delegated. */
struct policy_domain {
	const char *name;	/* canonical */
	bool active;
	bool dcv_validated;	/* dcv_status = 'validated' and not expired */
	unsigned cert_types;	/* enum cert_type bits of the covering delegations */
};

struct policy_profile {
	bool active;
	unsigned cert_type;	/* one enum cert_type bit */
	const int *terms_days;
	size_t n_terms;
	unsigned key_types;	/* enum key_type bits */
	bool requires_approval;
	bool allow_wildcards;
	bool require_dcv;
	bool require_org_validated;
};

struct policy_input {
	bool endpoint_active;	/* true for doors without an endpoint (admin) */
	bool org_active;
	bool dept_active;	/* true when no department */
	bool org_validated;
	bool profile_allowed;	/* for this org and this endpoint */
	const struct policy_profile *profile;
	const struct csr_info *csr;
	int term_days;
	const struct policy_domain *domains;
	size_t n_domains;
	/* the requester may skip approval (MRAO, or an admin with
	 * auto_approve_ssl for an ssl profile) */
	bool requester_auto_approve;
};

struct policy_decision {
	enum policy_outcome outcome;
	const char *reason;	/* NULL on ISSUE; POLICY_* otherwise */
	char detail[256];	/* human sentence, names the offending value */
};

void policy_decide(const struct policy_input *in, struct policy_decision *out);

/*
 * Parts of policy_decide() for a door that judges names before it has a CSR
 * (ACME newOrder). Each sets *out: outcome POLICY_ISSUE with reason NULL when
 * the check passes, POLICY_DENY with a reason and detail otherwise. csr and
 * term_days of `in` are not read.
 *   policy_check_scope  endpoint, organization, department, profile active
 *                       and allowed, organization validated;
 *   policy_check_name   one canonical name against the delegated domains
 *                       (wildcards, delegation, domain active, cert type,
 *                       DCV when the profile requires it).
 * policy_name_dcv_validated() says whether the domain deciding for `name` is
 * active and has passed domain-control validation (ACME skips challenges
 * for such names when the endpoint says so).
 */
void policy_check_scope(const struct policy_input *in, struct policy_decision *out);
void policy_check_name(const struct policy_input *in, const struct req_name *name,
    struct policy_decision *out);
bool policy_name_dcv_validated(const struct policy_input *in, const struct req_name *name);
const char *policy_outcome_name(enum policy_outcome o);

#endif
