/*
 * policy.c: the one decision - issue, hold for approval, or deny with a
 * stable reason - that every door asks for.
 *
 * policy_decide() is a pure function of struct policy_input: no database, no
 * clock, no logging. core/ra.c loads the facts; this file only judges them,
 * so that the table in tests/unit/test_policy.c can pin every outcome.
 *
 * Checks run in a fixed order and the FIRST failure is the reason: who is
 * asking (endpoint, organization, department), under which profile, with
 * which CSR (signature, key, term), for which names. Ordering matters to the
 * caller: a request through a disabled endpoint says endpoint_inactive even
 * if its CSR is also bad, so that an administrator fixes the outer problem
 * first, and a requester learns nothing about the domains of an
 * organization whose door is closed.
 *
 * Name rule. Every name must fall inside a domain listed in the input:
 *   dns    name_in_domain() (label-aligned; "*.x.d" is inside d when x.d is);
 *   email  its domain part, by the same rule;
 *   ip     only a domain entry whose name IS that address (compared in
 *          canonical inet_ntop form): an address is never "inside" a DNS
 *          domain, so an administrator delegates addresses one by one.
 * Several listed domains may cover one name (example.com and
 * sub.example.com); the most specific (longest) one decides alone: if it is
 * inactive the name is refused even when a parent is active, because an
 * administrator who deactivates sub.example.com inside example.com means it.
 * Entries with the same name (one domain delegated to both the organization
 * and the department) are merged: their certificate types add up, while
 * active and DCV state must hold for all of them.
 */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "names.h"
#include "types.h"

/* Local name tables for the detail sentences: policy.c stays free of any
 * other core object at link time (types.c has the canonical tables; the
 * words must match them). */
static const char *
policy_cert_type_word(unsigned cert_type)
{
	switch (cert_type) {
	case CERT_TYPE_SSL:
		return "ssl";
	case CERT_TYPE_CLIENT:
		return "client";
	case CERT_TYPE_CODE_SIGNING:
		return "code_signing";
	case CERT_TYPE_DEVICE:
		return "device";
	default:
		return "these";
	}
}

static const char *
policy_key_type_word(unsigned key_type)
{
	switch (key_type) {
	case KEY_TYPE_RSA2048:
		return "rsa2048";
	case KEY_TYPE_RSA3072:
		return "rsa3072";
	case KEY_TYPE_RSA4096:
		return "rsa4096";
	case KEY_TYPE_P256:
		return "p256";
	case KEY_TYPE_P384:
		return "p384";
	case KEY_TYPE_P521:
		return "p521";
	default:
		return "unknown";
	}
}

/* Sets a non-issue outcome with its reason and a formatted detail. */
static void __attribute__((format(printf, 4, 5)))
policy_set(struct policy_decision *out, enum policy_outcome outcome, const char *reason,
    const char *fmt, ...)
{
	va_list ap;

	out->outcome = outcome;
	out->reason = reason;
	va_start(ap, fmt);
	vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
	va_end(ap);
}

/* The deciding domain for one name, after merging same-named entries. */
struct policy_cover {
	const char *name; /* NULL: no domain covers the name */
	bool active;
	bool dcv_validated;
	unsigned cert_types;
};

/* Does listed domain `d` cover request name `n`? */
static bool
policy_domain_covers(const struct policy_domain *d, const struct req_name *n)
{
	const char *at = NULL;
	char a[NAME_MAX_LEN], b[NAME_MAX_LEN];

	if (d->name == NULL)
		return false;
	switch (n->kind) {
	case NAME_DNS:
		return name_in_domain(n->value, d->name);
	case NAME_EMAIL:
		at = strrchr(n->value, '@');
		return at != NULL && name_in_domain(at + 1, d->name);
	case NAME_IP:
		/* Exact address only; both sides re-canonicalised so that a
		 * domain row "2001:DB8::1" still equals "2001:db8::1". */
		if (name_ip_canonical(n->value, a, sizeof(a)) != 0 ||
		    name_ip_canonical(d->name, b, sizeof(b)) != 0)
			return false;
		return strcmp(a, b) == 0;
	}
	return false;
}

/* Finds the most specific covering domain of `n` into *cover. */
static void
policy_find_cover(const struct policy_input *in, const struct req_name *n,
    struct policy_cover *cover)
{
	size_t i, best_len = 0;

	memset(cover, 0, sizeof(*cover));
	for (i = 0; i < in->n_domains; i++) {
		const struct policy_domain *d = &in->domains[i];
		size_t len;

		if (!policy_domain_covers(d, n))
			continue;
		len = strlen(d->name);
		if (cover->name != NULL && len == best_len && strcmp(d->name, cover->name) == 0) {
			/* the same domain listed twice: merge conservatively */
			cover->cert_types |= d->cert_types;
			cover->active = cover->active && d->active;
			cover->dcv_validated = cover->dcv_validated && d->dcv_validated;
			continue;
		}
		if (cover->name == NULL || len > best_len) {
			cover->name = d->name;
			cover->active = d->active;
			cover->dcv_validated = d->dcv_validated;
			cover->cert_types = d->cert_types;
			best_len = len;
		}
	}
}

/* Judges one name; returns false with *out set when it is refused. */
static bool
policy_name_ok(const struct policy_input *in, const struct req_name *n,
    struct policy_decision *out)
{
	const struct policy_profile *p = in->profile;
	const char *type_word = policy_cert_type_word(p->cert_type);
	struct policy_cover cover;

	if (n->kind == NAME_DNS && name_is_wildcard(n->value) && !p->allow_wildcards) {
		policy_set(out, POLICY_DENY, POLICY_WILDCARD_NOT_ALLOWED,
		    "%s is a wildcard name and this profile does not allow wildcards", n->value);
		return false;
	}
	policy_find_cover(in, n, &cover);
	if (cover.name == NULL) {
		policy_set(out, POLICY_DENY, POLICY_NAME_NOT_DELEGATED,
		    "%s is not in a domain delegated to this organization for %s certificates",
		    n->value, type_word);
		return false;
	}
	if (!cover.active) {
		policy_set(out, POLICY_DENY, POLICY_DOMAIN_INACTIVE,
		    "%s is in domain %s, which is not active", n->value, cover.name);
		return false;
	}
	if ((cover.cert_types & p->cert_type) == 0) {
		policy_set(out, POLICY_DENY, POLICY_NAME_NOT_DELEGATED,
		    "%s is in domain %s, which is not delegated to this organization for %s "
		    "certificates",
		    n->value, cover.name, type_word);
		return false;
	}
	if (p->require_dcv && !cover.dcv_validated) {
		policy_set(out, POLICY_DENY, POLICY_DCV_REQUIRED,
		    "%s is in domain %s, which has not passed domain-control validation",
		    n->value, cover.name);
		return false;
	}
	return true;
}

static bool
policy_term_allowed(const struct policy_profile *p, int term_days)
{
	size_t i;

	for (i = 0; i < p->n_terms; i++)
		if (p->terms_days != NULL && p->terms_days[i] == term_days)
			return true;
	return false;
}

/* Who is asking, under which profile: endpoint, organization, department,
 * profile active and allowed, organization validated. Returns false with
 * *out set at the first failure. */
static bool
policy_scope_ok(const struct policy_input *in, struct policy_decision *out)
{
	const struct policy_profile *p = in->profile;

	if (!in->endpoint_active) {
		policy_set(out, POLICY_DENY, POLICY_ENDPOINT_INACTIVE,
		    "the enrollment endpoint is not active");
		return false;
	}
	if (!in->org_active) {
		policy_set(out, POLICY_DENY, POLICY_ORG_INACTIVE, "the organization is not active");
		return false;
	}
	if (!in->dept_active) {
		policy_set(out, POLICY_DENY, POLICY_DEPT_INACTIVE, "the department is not active");
		return false;
	}
	if (!p->active) {
		policy_set(out, POLICY_DENY, POLICY_PROFILE_INACTIVE,
		    "the certificate profile is not active");
		return false;
	}
	if (!in->profile_allowed) {
		policy_set(out, POLICY_DENY, POLICY_PROFILE_NOT_ALLOWED,
		    "the certificate profile is not allowed for this organization or endpoint");
		return false;
	}
	if (p->require_org_validated && !in->org_validated) {
		policy_set(out, POLICY_DENY, POLICY_ORG_NOT_VALIDATED,
		    "this profile requires a validated organization and the organization is not "
		    "validated");
		return false;
	}
	return true;
}

void
policy_decide(const struct policy_input *in, struct policy_decision *out)
{
	const struct policy_profile *p = NULL;
	const struct csr_info *csr = NULL;
	size_t i;

	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	out->outcome = POLICY_ISSUE;
	out->reason = NULL;

	/* A caller bug (nothing loaded) denies rather than issues. */
	if (in == NULL || in->profile == NULL) {
		policy_set(out, POLICY_DENY, POLICY_PROFILE_NOT_ALLOWED, "no profile was given");
		return;
	}
	p = in->profile;
	csr = in->csr;

	if (!policy_scope_ok(in, out))
		return;
	if (csr == NULL || !csr->signature_ok) {
		policy_set(out, POLICY_DENY, POLICY_CSR_SIGNATURE_INVALID,
		    "the CSR signature does not verify with its own public key");
		return;
	}
	if (csr->key_type == 0) {
		policy_set(out, POLICY_DENY, POLICY_WEAK_KEY, "the public key was refused: %s",
		    csr->key_reject != NULL ? csr->key_reject : "key_type_unknown");
		return;
	}
	if ((csr->key_type & p->key_types) == 0) {
		policy_set(out, POLICY_DENY, POLICY_KEY_TYPE_NOT_ALLOWED,
		    "key type %s is not allowed by this profile",
		    policy_key_type_word(csr->key_type));
		return;
	}
	if (!policy_term_allowed(p, in->term_days)) {
		policy_set(out, POLICY_DENY, POLICY_TERM_NOT_ALLOWED,
		    "a term of %d days is not allowed by this profile", in->term_days);
		return;
	}
	if (csr->name_error != NULL) {
		const char *value = csr->name_error_value[0] != '\0'
		    ? csr->name_error_value
		    : "(unreadable)";

		/* Normalise to a stable reason code whatever string csr.c set. */
		if (strcmp(csr->name_error, POLICY_NAME_TYPE_NOT_ALLOWED) == 0)
			policy_set(out, POLICY_DENY, POLICY_NAME_TYPE_NOT_ALLOWED,
			    "the CSR asks for a name of a type that cannot be certified: %s",
			    value);
		else
			policy_set(out, POLICY_DENY, POLICY_NAME_INVALID,
			    "the CSR name %s is not a valid name", value);
		return;
	}
	if (csr->n_names == 0) {
		policy_set(out, POLICY_DENY, POLICY_NO_NAMES,
		    "the CSR names no DNS name, IP address or e-mail address");
		return;
	}
	for (i = 0; i < csr->n_names && i < CSR_MAX_NAMES; i++)
		if (!policy_name_ok(in, &csr->names[i], out))
			return;

	if (p->requires_approval && !in->requester_auto_approve) {
		policy_set(out, POLICY_HOLD, POLICY_APPROVAL_REQUIRED,
		    "this profile requires approval by an administrator");
		return;
	}
	out->outcome = POLICY_ISSUE;
	out->reason = NULL;
	out->detail[0] = '\0';
}

const char *
policy_outcome_name(enum policy_outcome o)
{
	switch (o) {
	case POLICY_ISSUE:
		return "issue";
	case POLICY_HOLD:
		return "hold";
	case POLICY_DENY:
		return "deny";
	}
	return "unknown";
}

/*
 * The per-name and scope checks on their own, for a door that learns the
 * names before it has a CSR (ACME newOrder judges every identifier before it
 * stores anything). They are the very rules policy_decide() applies, so an
 * identifier accepted here is accepted again at finalize unless the facts
 * changed in between.
 */
static bool
policy_input_usable(const struct policy_input *in, struct policy_decision *out)
{
	memset(out, 0, sizeof(*out));
	out->outcome = POLICY_ISSUE;
	if (in == NULL || in->profile == NULL) {
		policy_set(out, POLICY_DENY, POLICY_PROFILE_NOT_ALLOWED, "no profile was given");
		return false;
	}
	return true;
}

void
policy_check_scope(const struct policy_input *in, struct policy_decision *out)
{
	if (out == NULL || !policy_input_usable(in, out))
		return;
	if (!policy_scope_ok(in, out))
		return;
	out->outcome = POLICY_ISSUE;
	out->reason = NULL;
	out->detail[0] = '\0';
}

void
policy_check_name(const struct policy_input *in, const struct req_name *name,
    struct policy_decision *out)
{
	if (out == NULL || !policy_input_usable(in, out))
		return;
	if (name == NULL) {
		policy_set(out, POLICY_DENY, POLICY_NO_NAMES, "no name was given");
		return;
	}
	if (!policy_name_ok(in, name, out))
		return;
	out->outcome = POLICY_ISSUE;
	out->reason = NULL;
	out->detail[0] = '\0';
}

bool
policy_name_dcv_validated(const struct policy_input *in, const struct req_name *name)
{
	struct policy_cover cover;

	if (in == NULL || name == NULL)
		return false;
	policy_find_cover(in, name, &cover);
	return cover.name != NULL && cover.active && cover.dcv_validated;
}
