/*
 * test_policy.c: table-driven tests of policy_decide() (core/policy.c).
 *
 * Every case starts from one request that is issued (active endpoint,
 * organization, department and profile; good signature; a p256 key; a 90-day
 * term; www.example.com) and changes a few facts. Cases that break several
 * facts at once pin the ORDER of the checks: the first failure must be the
 * reason. The CSR is a hand-filled struct csr_info (req/pkey NULL), so this
 * test needs no OpenSSL parsing and does not link core/csr.c.
 */
#include <stdio.h>
#include <string.h>

#include "csr.h"
#include "names.h"
#include "policy.h"
#include "types.h"

/* Facts a case turns off (all on by default). */
#define OFF_ENDPOINT (1u << 0)
#define OFF_ORG (1u << 1)
#define OFF_DEPT (1u << 2)
#define OFF_ORG_VALIDATED (1u << 3)
#define OFF_PROFILE_ACTIVE (1u << 4)
#define OFF_PROFILE_ALLOWED (1u << 5)
#define OFF_SIGNATURE (1u << 6)
#define OFF_DOMAINS (1u << 7) /* no domain delegated at all */

/* Profile switches a case turns on (all off by default). */
#define P_APPROVAL (1u << 0)
#define P_WILDCARDS (1u << 1)
#define P_DCV (1u << 2)
#define P_ORG_VALIDATED (1u << 3)

/* The domains delegated to the requesting organization in every case. */
static const struct policy_domain domains[] = {
	{ "example.com", true, true, CERT_TYPE_SSL | CERT_TYPE_CLIENT },
	/* deactivated inside the active example.com */
	{ "sub.example.com", false, true, CERT_TYPE_SSL | CERT_TYPE_CLIENT },
	/* delegated for client certificates only */
	{ "client.example.com", true, true, CERT_TYPE_CLIENT },
	/* never validated */
	{ "nodcv.example.com", true, false, CERT_TYPE_SSL },
	/* single addresses, delegated by their exact text */
	{ "192.0.2.10", true, true, CERT_TYPE_SSL },
	{ "2001:DB8::10", true, true, CERT_TYPE_SSL },
	/* one domain through two delegations (organization and department) */
	{ "dup.example.org", true, true, CERT_TYPE_SSL },
	{ "dup.example.org", true, true, CERT_TYPE_CLIENT },
	{ "mail.example.net", true, true, CERT_TYPE_CLIENT },
};

struct policy_case {
	const char *label;
	unsigned off;		/* OFF_* */
	unsigned profile;	/* P_* */
	unsigned cert_type;	/* 0: ssl */
	unsigned key_type;	/* 0 with key_reject: refused; KEEP_KEY: p256 */
	const char *key_reject;
	int term_days;		/* 0: 90 */
	const char *name_error;
	const char *name_error_value;
	const char *names;	/* space-separated "dns:..", "ip:..", "email:.."; "" none */
	bool auto_approve;
	enum policy_outcome want;
	const char *want_reason;
	const char *want_detail; /* substring of detail, or NULL */
};

#define KEEP_KEY 0xffffu
#define WWW "dns:www.example.com"

static const struct policy_case cases[] = {
	/* the baseline */
	{ "baseline issues", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, WWW, false,
	    POLICY_ISSUE, NULL, NULL },

	/* order of checks: each row breaks its own fact and every later one */
	{ "endpoint first", OFF_ENDPOINT | OFF_ORG | OFF_DEPT | OFF_PROFILE_ACTIVE |
	    OFF_PROFILE_ALLOWED | OFF_SIGNATURE | OFF_ORG_VALIDATED, P_ORG_VALIDATED, 0, 0,
	    "rsa_too_small", 7, "name_invalid", "x", "", false,
	    POLICY_DENY, POLICY_ENDPOINT_INACTIVE, "endpoint" },
	{ "organization second", OFF_ORG | OFF_DEPT | OFF_PROFILE_ACTIVE | OFF_PROFILE_ALLOWED |
	    OFF_SIGNATURE, 0, 0, 0, "rsa_too_small", 7, NULL, NULL, "", false,
	    POLICY_DENY, POLICY_ORG_INACTIVE, "organization" },
	{ "department third", OFF_DEPT | OFF_PROFILE_ACTIVE | OFF_PROFILE_ALLOWED, 0, 0,
	    KEEP_KEY, NULL, 7, NULL, NULL, "", false,
	    POLICY_DENY, POLICY_DEPT_INACTIVE, "department" },
	{ "profile active before allowed", OFF_PROFILE_ACTIVE | OFF_PROFILE_ALLOWED |
	    OFF_ORG_VALIDATED | OFF_SIGNATURE, P_ORG_VALIDATED, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    WWW, false, POLICY_DENY, POLICY_PROFILE_INACTIVE, "profile" },
	{ "profile allowed before org validated", OFF_PROFILE_ALLOWED | OFF_ORG_VALIDATED |
	    OFF_SIGNATURE, P_ORG_VALIDATED, 0, KEEP_KEY, NULL, 0, NULL, NULL, WWW, false,
	    POLICY_DENY, POLICY_PROFILE_NOT_ALLOWED, "profile" },
	{ "org validation required", OFF_ORG_VALIDATED | OFF_SIGNATURE, P_ORG_VALIDATED, 0,
	    KEEP_KEY, NULL, 0, NULL, NULL, WWW, false,
	    POLICY_DENY, POLICY_ORG_NOT_VALIDATED, "validated" },
	{ "org validation not required", OFF_ORG_VALIDATED, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    WWW, false, POLICY_ISSUE, NULL, NULL },
	{ "signature before key", OFF_SIGNATURE, 0, 0, 0, "rsa_too_small", 7, NULL, NULL, WWW,
	    false, POLICY_DENY, POLICY_CSR_SIGNATURE_INVALID, "signature" },
	{ "weak key before term", 0, 0, 0, 0, "rsa_too_small", 7, NULL, NULL, WWW, false,
	    POLICY_DENY, POLICY_WEAK_KEY, "rsa_too_small" },
	{ "weak key, curve", 0, 0, 0, 0, "ec_curve_not_allowed", 0, NULL, NULL, WWW, false,
	    POLICY_DENY, POLICY_WEAK_KEY, "ec_curve_not_allowed" },
	{ "weak key, no reason given", 0, 0, 0, 0, NULL, 0, NULL, NULL, WWW, false,
	    POLICY_DENY, POLICY_WEAK_KEY, "key_type_unknown" },
	{ "key type not in profile before term", 0, 0, 0, KEY_TYPE_RSA4096, NULL, 7, NULL, NULL,
	    WWW, false, POLICY_DENY, POLICY_KEY_TYPE_NOT_ALLOWED, "rsa4096" },
	{ "key type in profile", 0, 0, 0, KEY_TYPE_RSA2048, NULL, 0, NULL, NULL, WWW, false,
	    POLICY_ISSUE, NULL, NULL },
	{ "term before names", 0, 0, 0, KEEP_KEY, NULL, 30, "name_invalid", "bad_name", "", false,
	    POLICY_DENY, POLICY_TERM_NOT_ALLOWED, "30 days" },
	{ "other allowed term", 0, 0, 0, KEEP_KEY, NULL, 365, NULL, NULL, WWW, false,
	    POLICY_ISSUE, NULL, NULL },
	{ "name error before no names", 0, 0, 0, KEEP_KEY, NULL, 0, "name_invalid", "ex ample.com",
	    "", false, POLICY_DENY, POLICY_NAME_INVALID, "ex ample.com" },
	{ "name type not allowed", 0, 0, 0, KEEP_KEY, NULL, 0, "name_type_not_allowed",
	    "uri:https://x", WWW, false, POLICY_DENY, POLICY_NAME_TYPE_NOT_ALLOWED, "uri:https://x" },
	{ "unknown name error string is name_invalid", 0, 0, 0, KEEP_KEY, NULL, 0, "something_else",
	    "zz", WWW, false, POLICY_DENY, POLICY_NAME_INVALID, "zz" },
	{ "name error without a value", 0, 0, 0, KEEP_KEY, NULL, 0, "name_invalid", NULL, WWW,
	    false, POLICY_DENY, POLICY_NAME_INVALID, "(unreadable)" },
	{ "no names", 0, P_APPROVAL, 0, KEEP_KEY, NULL, 0, NULL, NULL, "", false,
	    POLICY_DENY, POLICY_NO_NAMES, NULL },

	/* delegation: exact, subdomain, label alignment */
	{ "domain itself", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "dns:example.com", false,
	    POLICY_ISSUE, NULL, NULL },
	{ "deep subdomain", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "dns:a.b.c.example.com", false,
	    POLICY_ISSUE, NULL, NULL },
	{ "other domain", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "dns:www.other.org", false,
	    POLICY_DENY, POLICY_NAME_NOT_DELEGATED,
	    "www.other.org is not in a domain delegated to this organization for ssl certificates" },
	{ "label alignment", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "dns:badexample.com", false,
	    POLICY_DENY, POLICY_NAME_NOT_DELEGATED, "badexample.com" },
	{ "parent of a delegated domain", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:example.org", false, POLICY_DENY, POLICY_NAME_NOT_DELEGATED, "example.org" },
	{ "nothing delegated", OFF_DOMAINS, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, WWW, false,
	    POLICY_DENY, POLICY_NAME_NOT_DELEGATED, "www.example.com" },
	{ "every name is checked", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    WWW " dns:example.com dns:www.other.org", false,
	    POLICY_DENY, POLICY_NAME_NOT_DELEGATED, "www.other.org" },
	{ "first bad name decides", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:www.sub.example.com dns:www.other.org", false,
	    POLICY_DENY, POLICY_DOMAIN_INACTIVE, "www.sub.example.com" },

	/* most specific covering domain decides */
	{ "inactive subdomain inside active domain", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:www.sub.example.com", false, POLICY_DENY, POLICY_DOMAIN_INACTIVE,
	    "sub.example.com, which is not active" },
	{ "inactive domain itself", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "dns:sub.example.com",
	    false, POLICY_DENY, POLICY_DOMAIN_INACTIVE, "sub.example.com" },
	{ "sibling of inactive subdomain", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:www.subx.example.com", false, POLICY_ISSUE, NULL, NULL },
	{ "subdomain delegated for another type", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:a.client.example.com", false, POLICY_DENY, POLICY_NAME_NOT_DELEGATED,
	    "client.example.com, which is not delegated to this organization for ssl" },
	{ "subdomain delegated for this type", 0, 0, CERT_TYPE_CLIENT, KEEP_KEY, NULL, 0, NULL,
	    NULL, "dns:a.client.example.com", false, POLICY_ISSUE, NULL, NULL },
	{ "type named in detail", 0, 0, CERT_TYPE_DEVICE, KEEP_KEY, NULL, 0, NULL, NULL, WWW, false,
	    POLICY_DENY, POLICY_NAME_NOT_DELEGATED, "for device certificates" },
	{ "undelegated for code signing", 0, 0, CERT_TYPE_CODE_SIGNING, KEEP_KEY, NULL, 0, NULL,
	    NULL, "dns:x.other.org", false, POLICY_DENY, POLICY_NAME_NOT_DELEGATED,
	    "for code_signing certificates" },
	{ "same domain twice: types add up (ssl)", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:www.dup.example.org", false, POLICY_ISSUE, NULL, NULL },
	{ "same domain twice: types add up (client)", 0, 0, CERT_TYPE_CLIENT, KEEP_KEY, NULL, 0,
	    NULL, NULL, "dns:www.dup.example.org", false, POLICY_ISSUE, NULL, NULL },
	{ "same domain twice: device not delegated", 0, 0, CERT_TYPE_DEVICE, KEEP_KEY, NULL, 0,
	    NULL, NULL, "dns:www.dup.example.org", false, POLICY_DENY, POLICY_NAME_NOT_DELEGATED,
	    "dup.example.org" },

	/* wildcards */
	{ "wildcard not allowed", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "dns:*.example.com",
	    false, POLICY_DENY, POLICY_WILDCARD_NOT_ALLOWED, "*.example.com" },
	{ "wildcard allowed", 0, P_WILDCARDS, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:*.example.com", false, POLICY_ISSUE, NULL, NULL },
	{ "wildcard of a subdomain", 0, P_WILDCARDS, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:*.a.example.com", false, POLICY_ISSUE, NULL, NULL },
	{ "wildcard check before delegation", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:*.other.org", false, POLICY_DENY, POLICY_WILDCARD_NOT_ALLOWED, "*.other.org" },
	{ "allowed wildcard still needs delegation", 0, P_WILDCARDS, 0, KEEP_KEY, NULL, 0, NULL,
	    NULL, "dns:*.other.org", false, POLICY_DENY, POLICY_NAME_NOT_DELEGATED, "*.other.org" },
	{ "wildcard over inactive subdomain", 0, P_WILDCARDS, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:*.sub.example.com", false, POLICY_DENY, POLICY_DOMAIN_INACTIVE, "sub.example.com" },
	{ "wildcard over a delegated domain's parent", 0, P_WILDCARDS, 0, KEEP_KEY, NULL, 0, NULL,
	    NULL, "dns:*.example.org", false, POLICY_DENY, POLICY_NAME_NOT_DELEGATED,
	    "*.example.org" },
	{ "wildcard among good names", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    WWW " dns:*.example.com", false, POLICY_DENY, POLICY_WILDCARD_NOT_ALLOWED, NULL },

	/* DCV */
	{ "dcv required, not validated", 0, P_DCV, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:a.nodcv.example.com", false, POLICY_DENY, POLICY_DCV_REQUIRED, "nodcv.example.com" },
	{ "dcv not required", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "dns:a.nodcv.example.com",
	    false, POLICY_ISSUE, NULL, NULL },
	{ "dcv required, validated", 0, P_DCV, 0, KEEP_KEY, NULL, 0, NULL, NULL, WWW, false,
	    POLICY_ISSUE, NULL, NULL },
	{ "inactive before dcv", 0, P_DCV, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "dns:www.sub.example.com", false, POLICY_DENY, POLICY_DOMAIN_INACTIVE, NULL },

	/* IP addresses: exact delegation only */
	{ "ipv4 delegated", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "ip:192.0.2.10", false,
	    POLICY_ISSUE, NULL, NULL },
	{ "ipv4 not delegated", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "ip:192.0.2.11", false,
	    POLICY_DENY, POLICY_NAME_NOT_DELEGATED, "192.0.2.11" },
	{ "ipv4 prefix is no match", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "ip:192.0.2.1", false,
	    POLICY_DENY, POLICY_NAME_NOT_DELEGATED, "192.0.2.1" },
	{ "ipv6 delegated (domain row not canonical)", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    "ip:2001:db8::10", false, POLICY_ISSUE, NULL, NULL },
	{ "ipv6 not delegated", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, "ip:2001:db8::11", false,
	    POLICY_DENY, POLICY_NAME_NOT_DELEGATED, "2001:db8::11" },
	{ "ip delegated for ssl only", 0, 0, CERT_TYPE_CLIENT, KEEP_KEY, NULL, 0, NULL, NULL,
	    "ip:192.0.2.10", false, POLICY_DENY, POLICY_NAME_NOT_DELEGATED, "for client" },

	/* e-mail addresses: judged by their domain part */
	{ "email in delegated domain", 0, 0, CERT_TYPE_CLIENT, KEEP_KEY, NULL, 0, NULL, NULL,
	    "email:Alice@example.com", false, POLICY_ISSUE, NULL, NULL },
	{ "email in delegated subdomain", 0, 0, CERT_TYPE_CLIENT, KEEP_KEY, NULL, 0, NULL, NULL,
	    "email:bob@mail.example.net", false, POLICY_ISSUE, NULL, NULL },
	{ "email in parent of delegated domain", 0, 0, CERT_TYPE_CLIENT, KEEP_KEY, NULL, 0, NULL,
	    NULL, "email:bob@example.net", false, POLICY_DENY, POLICY_NAME_NOT_DELEGATED,
	    "bob@example.net" },
	{ "email in inactive domain", 0, 0, CERT_TYPE_CLIENT, KEEP_KEY, NULL, 0, NULL, NULL,
	    "email:carol@sub.example.com", false, POLICY_DENY, POLICY_DOMAIN_INACTIVE,
	    "carol@sub.example.com" },
	{ "email local part never matches a domain", 0, 0, CERT_TYPE_CLIENT, KEEP_KEY, NULL, 0,
	    NULL, NULL, "email:example.com@other.org", false, POLICY_DENY,
	    POLICY_NAME_NOT_DELEGATED, NULL },
	{ "mixed names", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL,
	    WWW " ip:192.0.2.10 email:ops@example.com", false, POLICY_ISSUE, NULL, NULL },

	/* hold vs auto-approve */
	{ "approval required", 0, P_APPROVAL, 0, KEEP_KEY, NULL, 0, NULL, NULL, WWW, false,
	    POLICY_HOLD, POLICY_APPROVAL_REQUIRED, "approval" },
	{ "approval required, auto-approve", 0, P_APPROVAL, 0, KEEP_KEY, NULL, 0, NULL, NULL, WWW,
	    true, POLICY_ISSUE, NULL, NULL },
	{ "auto-approve without approval", 0, 0, 0, KEEP_KEY, NULL, 0, NULL, NULL, WWW, true,
	    POLICY_ISSUE, NULL, NULL },
	{ "deny beats hold", 0, P_APPROVAL, 0, KEEP_KEY, NULL, 0, NULL, NULL, "dns:www.other.org",
	    false, POLICY_DENY, POLICY_NAME_NOT_DELEGATED, NULL },
	{ "auto-approve does not skip policy", OFF_PROFILE_ALLOWED, P_APPROVAL, 0, KEEP_KEY, NULL,
	    0, NULL, NULL, WWW, true, POLICY_DENY, POLICY_PROFILE_NOT_ALLOWED, NULL },
};

static int passed, failed;

/* Fills csr->names from "kind:value kind:value ..."; returns -1 on a bad
 * fixture. */
static int
fill_names(struct csr_info *csr, const char *spec)
{
	char buf[1024], *tok = NULL, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
		struct req_name *n = &csr->names[csr->n_names];
		const char *v = NULL;

		if (strncmp(tok, "dns:", 4) == 0) {
			n->kind = NAME_DNS;
			v = tok + 4;
		} else if (strncmp(tok, "ip:", 3) == 0) {
			n->kind = NAME_IP;
			v = tok + 3;
		} else if (strncmp(tok, "email:", 6) == 0) {
			n->kind = NAME_EMAIL;
			v = tok + 6;
		} else {
			return -1;
		}
		snprintf(n->value, sizeof(n->value), "%s", v);
		csr->n_names++;
	}
	return 0;
}

static void
run_case(const struct policy_case *c)
{
	static const int terms[] = { 90, 365 };
	static struct csr_info csr; /* large: keep it off the stack */
	struct policy_profile profile = {
		.active = !(c->off & OFF_PROFILE_ACTIVE),
		.cert_type = c->cert_type ? c->cert_type : CERT_TYPE_SSL,
		.terms_days = terms,
		.n_terms = sizeof(terms) / sizeof(terms[0]),
		.key_types = KEY_TYPE_RSA2048 | KEY_TYPE_P256,
		.requires_approval = (c->profile & P_APPROVAL) != 0,
		.allow_wildcards = (c->profile & P_WILDCARDS) != 0,
		.require_dcv = (c->profile & P_DCV) != 0,
		.require_org_validated = (c->profile & P_ORG_VALIDATED) != 0,
	};
	struct policy_input in = {
		.endpoint_active = !(c->off & OFF_ENDPOINT),
		.org_active = !(c->off & OFF_ORG),
		.dept_active = !(c->off & OFF_DEPT),
		.org_validated = !(c->off & OFF_ORG_VALIDATED),
		.profile_allowed = !(c->off & OFF_PROFILE_ALLOWED),
		.profile = &profile,
		.csr = &csr,
		.term_days = c->term_days ? c->term_days : 90,
		.domains = (c->off & OFF_DOMAINS) ? NULL : domains,
		.n_domains = (c->off & OFF_DOMAINS) ? 0 : sizeof(domains) / sizeof(domains[0]),
		.requester_auto_approve = c->auto_approve,
	};
	struct policy_decision d;
	bool ok;

	memset(&csr, 0, sizeof(csr));
	csr.req = NULL;
	csr.pkey = NULL;
	csr.signature_ok = !(c->off & OFF_SIGNATURE);
	csr.key_type = c->key_type == KEEP_KEY ? KEY_TYPE_P256 : c->key_type;
	csr.key_reject = c->key_reject;
	csr.name_error = c->name_error;
	if (c->name_error_value != NULL)
		snprintf(csr.name_error_value, sizeof(csr.name_error_value), "%s",
		    c->name_error_value);
	if (fill_names(&csr, c->names) != 0) {
		failed++;
		printf("FAIL %s: bad fixture names \"%s\"\n", c->label, c->names);
		return;
	}

	memset(&d, 0x5a, sizeof(d)); /* policy_decide must set every field */
	policy_decide(&in, &d);

	ok = d.outcome == c->want;
	if (c->want_reason == NULL)
		ok = ok && d.reason == NULL && d.detail[0] == '\0';
	else
		ok = ok && d.reason != NULL && strcmp(d.reason, c->want_reason) == 0 &&
		    d.detail[0] != '\0' && memchr(d.detail, '\0', sizeof(d.detail)) != NULL;
	if (ok && c->want_detail != NULL)
		ok = strstr(d.detail, c->want_detail) != NULL;
	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s: got %s/%s \"%.*s\", want %s/%s \"%s\"\n", c->label,
	    policy_outcome_name(d.outcome),
	    d.reason != NULL ? d.reason : "(null)",
	    (int)sizeof(d.detail), d.detail, policy_outcome_name(c->want),
	    c->want_reason ? c->want_reason : "(null)", c->want_detail ? c->want_detail : "");
}

/* The reason strings are API: pin them. */
static void
test_reason_strings(void)
{
	const struct {
		const char *got, *want;
	} codes[] = {
		{ POLICY_ENDPOINT_INACTIVE, "endpoint_inactive" },
		{ POLICY_ORG_INACTIVE, "organization_inactive" },
		{ POLICY_DEPT_INACTIVE, "department_inactive" },
		{ POLICY_ORG_NOT_VALIDATED, "organization_not_validated" },
		{ POLICY_PROFILE_INACTIVE, "profile_inactive" },
		{ POLICY_PROFILE_NOT_ALLOWED, "profile_not_allowed" },
		{ POLICY_CSR_SIGNATURE_INVALID, "csr_signature_invalid" },
		{ POLICY_KEY_TYPE_NOT_ALLOWED, "key_type_not_allowed" },
		{ POLICY_WEAK_KEY, "weak_key" },
		{ POLICY_TERM_NOT_ALLOWED, "term_not_allowed" },
		{ POLICY_NO_NAMES, "no_names" },
		{ POLICY_NAME_INVALID, "name_invalid" },
		{ POLICY_NAME_NOT_DELEGATED, "name_not_delegated" },
		{ POLICY_DOMAIN_INACTIVE, "domain_inactive" },
		{ POLICY_WILDCARD_NOT_ALLOWED, "wildcard_not_allowed" },
		{ POLICY_DCV_REQUIRED, "dcv_required" },
		{ POLICY_NAME_TYPE_NOT_ALLOWED, "name_type_not_allowed" },
		{ POLICY_APPROVAL_REQUIRED, "approval_required" },
		{ policy_outcome_name(POLICY_ISSUE), "issue" },
		{ policy_outcome_name(POLICY_HOLD), "hold" },
		{ policy_outcome_name(POLICY_DENY), "deny" },
	};
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		if (strcmp(codes[i].got, codes[i].want) == 0) {
			passed++;
		} else {
			failed++;
			printf("FAIL reason string %s != %s\n", codes[i].got, codes[i].want);
		}
	}
}

/* Every reason code must be reachable by some case in the table. */
static void
test_every_reason_covered(void)
{
	static const char *const reasons[] = {
		POLICY_ENDPOINT_INACTIVE, POLICY_ORG_INACTIVE, POLICY_DEPT_INACTIVE,
		POLICY_ORG_NOT_VALIDATED, POLICY_PROFILE_INACTIVE, POLICY_PROFILE_NOT_ALLOWED,
		POLICY_CSR_SIGNATURE_INVALID, POLICY_KEY_TYPE_NOT_ALLOWED, POLICY_WEAK_KEY,
		POLICY_TERM_NOT_ALLOWED, POLICY_NO_NAMES, POLICY_NAME_INVALID,
		POLICY_NAME_NOT_DELEGATED, POLICY_DOMAIN_INACTIVE, POLICY_WILDCARD_NOT_ALLOWED,
		POLICY_DCV_REQUIRED, POLICY_NAME_TYPE_NOT_ALLOWED, POLICY_APPROVAL_REQUIRED,
	};
	size_t i, j;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		bool found = false;

		for (j = 0; j < sizeof(cases) / sizeof(cases[0]); j++)
			if (cases[j].want_reason != NULL &&
			    strcmp(cases[j].want_reason, reasons[i]) == 0)
				found = true;
		if (found) {
			passed++;
		} else {
			failed++;
			printf("FAIL no case for reason %s\n", reasons[i]);
		}
	}
}

/* A caller that loaded nothing gets a denial, never an issue. */
static void
test_missing_input(void)
{
	struct policy_input in;
	struct policy_decision d;

	memset(&in, 0, sizeof(in));
	policy_decide(NULL, &d);
	if (d.outcome == POLICY_DENY && d.reason != NULL)
		passed++;
	else
		failed++, printf("FAIL NULL input was not denied\n");
	in.endpoint_active = in.org_active = in.dept_active = in.profile_allowed = true;
	policy_decide(&in, &d);
	if (d.outcome == POLICY_DENY && d.reason != NULL)
		passed++;
	else
		failed++, printf("FAIL NULL profile was not denied\n");
	policy_decide(&in, NULL); /* must not crash */
}

/*
 * policy_check_name / policy_check_scope / policy_name_dcv_validated: the
 * ACME door judges each identifier of a newOrder before a CSR exists. Each
 * row is one name against the shared domain table; the verdict must be the
 * one policy_decide() gives a CSR holding that name alone.
 */
struct name_case {
	const char *label;
	unsigned profile;	/* P_* */
	unsigned cert_type;	/* 0: ssl */
	const char *name;	/* "dns:..", "ip:.." */
	const char *want_reason; /* NULL: accepted */
	bool want_dcv;		/* policy_name_dcv_validated */
};

static const struct name_case name_cases[] = {
	{ "name inside a delegated domain", 0, 0, "dns:www.example.com", NULL, true },
	{ "the domain itself", 0, 0, "dns:example.com", NULL, true },
	{ "outside every domain", 0, 0, "dns:www.other.org", POLICY_NAME_NOT_DELEGATED, false },
	{ "label-aligned only", 0, 0, "dns:badexample.com", POLICY_NAME_NOT_DELEGATED, false },
	{ "inactive subdomain wins", 0, 0, "dns:a.sub.example.com", POLICY_DOMAIN_INACTIVE,
	    false },
	{ "wildcard refused by profile", 0, 0, "dns:*.example.com", POLICY_WILDCARD_NOT_ALLOWED,
	    true },
	{ "wildcard allowed", P_WILDCARDS, 0, "dns:*.example.com", NULL, true },
	{ "wrong cert type", 0, 0, "dns:x.client.example.com", POLICY_NAME_NOT_DELEGATED, true },
	{ "client profile there", 0, CERT_TYPE_CLIENT, "dns:x.client.example.com", NULL, true },
	{ "dcv required, not validated", P_DCV, 0, "dns:a.nodcv.example.com",
	    POLICY_DCV_REQUIRED, false },
	{ "dcv not required", 0, 0, "dns:a.nodcv.example.com", NULL, false },
	{ "ip delegated exactly", 0, 0, "ip:192.0.2.10", NULL, true },
	{ "ip not delegated", 0, 0, "ip:192.0.2.11", POLICY_NAME_NOT_DELEGATED, false },
	{ "ipv6 canonical match", 0, 0, "ip:2001:db8::10", NULL, true },
};

static void
test_check_name(void)
{
	static const int terms[] = { 90 };
	static struct csr_info csr;
	size_t i;

	for (i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
		const struct name_case *c = &name_cases[i];
		struct policy_profile profile = {
			.active = true,
			.cert_type = c->cert_type ? c->cert_type : CERT_TYPE_SSL,
			.terms_days = terms,
			.n_terms = 1,
			.key_types = KEY_TYPE_P256,
			.allow_wildcards = (c->profile & P_WILDCARDS) != 0,
			.require_dcv = (c->profile & P_DCV) != 0,
		};
		struct policy_input in = {
			.endpoint_active = true,
			.org_active = true,
			.dept_active = true,
			.org_validated = true,
			.profile_allowed = true,
			.profile = &profile,
			.csr = &csr,
			.term_days = 90,
			.domains = domains,
			.n_domains = sizeof(domains) / sizeof(domains[0]),
		};
		struct policy_decision d, whole;
		bool ok;

		memset(&csr, 0, sizeof(csr));
		csr.signature_ok = true;
		csr.key_type = KEY_TYPE_P256;
		if (fill_names(&csr, c->name) != 0 || csr.n_names != 1) {
			failed++;
			printf("FAIL %s: bad fixture\n", c->label);
			continue;
		}
		memset(&d, 0x5a, sizeof(d));
		policy_check_name(&in, &csr.names[0], &d);
		policy_decide(&in, &whole);
		if (c->want_reason == NULL)
			ok = d.outcome == POLICY_ISSUE && d.reason == NULL && d.detail[0] == '\0';
		else
			ok = d.outcome == POLICY_DENY && d.reason != NULL &&
			    strcmp(d.reason, c->want_reason) == 0 && d.detail[0] != '\0';
		/* the same verdict as the whole decision on a CSR of that name */
		ok = ok && whole.outcome == d.outcome &&
		    (d.reason == NULL ? whole.reason == NULL :
					whole.reason != NULL && strcmp(whole.reason, d.reason) == 0);
		ok = ok && policy_name_dcv_validated(&in, &csr.names[0]) == c->want_dcv;
		if (ok) {
			passed++;
		} else {
			failed++;
			printf("FAIL check_name %s: got %s/%s \"%s\"\n", c->label,
			    policy_outcome_name(d.outcome), d.reason ? d.reason : "(null)", d.detail);
		}
	}
}

/* policy_check_scope: the requester checks alone, first failure wins. */
static void
test_check_scope(void)
{
	static const int terms[] = { 90 };
	struct policy_profile profile = { .active = true, .cert_type = CERT_TYPE_SSL,
		.terms_days = terms, .n_terms = 1, .key_types = KEY_TYPE_P256 };
	struct policy_input in = { .endpoint_active = true, .org_active = true,
		.dept_active = true, .org_validated = true, .profile_allowed = true,
		.profile = &profile };
	struct policy_decision d;

	policy_check_scope(&in, &d); /* no CSR needed */
	if (d.outcome == POLICY_ISSUE && d.reason == NULL)
		passed++;
	else
		failed++, printf("FAIL check_scope baseline: %s\n", d.reason ? d.reason : "?");
	in.dept_active = false;
	in.profile_allowed = false;
	policy_check_scope(&in, &d);
	if (d.outcome == POLICY_DENY && d.reason != NULL &&
	    strcmp(d.reason, POLICY_DEPT_INACTIVE) == 0)
		passed++;
	else
		failed++, printf("FAIL check_scope order: %s\n", d.reason ? d.reason : "?");
	in.dept_active = true;
	policy_check_scope(&in, &d);
	if (d.outcome == POLICY_DENY && d.reason != NULL &&
	    strcmp(d.reason, POLICY_PROFILE_NOT_ALLOWED) == 0)
		passed++;
	else
		failed++, printf("FAIL check_scope profile: %s\n", d.reason ? d.reason : "?");
	policy_check_scope(NULL, &d);
	policy_check_name(NULL, NULL, &d);
	if (d.outcome == POLICY_DENY && d.reason != NULL)
		passed++;
	else
		failed++, printf("FAIL check_name NULL input was not denied\n");
	policy_check_name(&in, NULL, NULL); /* must not crash */
	if (!policy_name_dcv_validated(NULL, NULL))
		passed++;
	else
		failed++, printf("FAIL dcv_validated(NULL)\n");
}

int
main(void)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_reason_strings();
	test_every_reason_covered();
	test_missing_input();
	test_check_name();
	test_check_scope();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
