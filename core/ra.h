/*
 * ra.h: the registration authority: enrollment, approval, revocation.
 *
 * Every door turns its request into a struct enroll_request and calls
 * ra_enroll(). It takes the facts the policy needs from the facts cache
 * (core/facts.h, coherent with PostgreSQL through a generation), asks
 * policy_decide(), and then, in one transaction:
 *   issue -> certificate row (status issued, serial, DER) + audit entry,
 *            signed by ca_issue() inside the transaction before COMMIT, so
 *            nothing is returned that is not recorded;
 *   hold  -> certificate row (status requested) + audit entry;
 *   deny  -> audit entry only: no certificate row is written.
 * A request with an idempotency_key that was already seen returns the stored
 * result instead of issuing again (SCEP transactionID, ACME finalize).
 */
#ifndef ENROLLD_RA_H
#define ENROLLD_RA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

struct db;
struct ca;
struct enrolld_config;
struct csr_info;

struct enroll_request {
	const char *protocol;		/* "admin", "acme", "scep", "est" */
	const char *requester;		/* audit actor: "admin:3", "acme:17", ... */
	int64_t requester_admin_id;	/* 0 when not an administrator */
	int64_t org_id;
	int64_t dept_id;		/* 0: none */
	int64_t profile_id;
	int64_t endpoint_id;		/* 0: no endpoint (admin API) */
	int term_days;
	const void *csr;		/* DER, PEM or base64 DER */
	size_t csr_len;
	bool requester_auto_approve;
	const char *idempotency_key;	/* NULL or unique per logical request */
	const char *comment;		/* free text for the audit entry, or NULL */
	/* 0: ra_enroll() reads the facts generation and the row stored under
	 * idempotency_key itself (one statement; the facts come from the
	 * cache, core/facts.h). Else the generation (FACTS_GENERATION_SQL) as
	 * the caller read it in a statement it ran anyway, and existing_json
	 * the RA_EXISTING_JSON text (ra_sql.h) of the row under exactly this
	 * request's idempotency_key read in the same statement, or NULL when
	 * there is none (a round trip less per issuance). */
	int64_t facts_generation;
	const char *existing_json;
	/* NULL: ra_enroll() parses csr itself. Else csr_parse()'s result for
	 * exactly csr/csr_len, which the caller made anyway (a CSR signature
	 * check less per issuance); the caller keeps and frees it. */
	const struct csr_info *parsed_csr;
	/* true: a newly stored row comes back as result.cert_json (the admin
	 * API shows it); false: the statement does not build it, and
	 * cert_json is set only when an earlier row is replayed. */
	bool want_cert_json;
};

enum ra_status {
	RA_OK,		/* see result.outcome */
	RA_BAD_CSR,	/* not a PKCS#10 at all: result.detail says why */
	RA_NOT_FOUND,	/* org/department/profile/endpoint does not exist */
	RA_CONFLICT,	/* e.g. approve a certificate that is not requested */
	RA_UNAVAILABLE,	/* database down: answer 503 */
	RA_ERROR,	/* internal failure (logged) */
};

struct enroll_result {
	enum policy_outcome outcome;
	const char *reason;	/* policy reason code, NULL on issue */
	char detail[256];
	int64_t cert_id;	/* 0 on deny */
	char serial[41];	/* "" unless issued */
	char *cert_pem;		/* issued certificate (newly allocated) or NULL */
	char *chain_pem;	/* certificate + issuing CA + root (newly allocated) or NULL */
	/* the certificate row as the admin API shows it (STORE_CERT_JSON text,
	 * newly allocated), or NULL on deny and, for a new row, unless the
	 * request set want_cert_json */
	char *cert_json;
};

void enroll_result_free(struct enroll_result *r);

enum ra_status ra_enroll(struct db *db, struct ca *ca, const struct enrolld_config *cfg,
    const struct enroll_request *req, struct enroll_result *out)
    __attribute__((warn_unused_result));

/*
 * ra_enroll() for a door that must check the caller's scope against the
 * certificate type of the requested profile (the admin API), without a
 * round trip of its own: the type comes with the facts. In this order:
 * a profile that does not exist is RA_NOT_FOUND ("profile N not found");
 * then scope(scope_arg, cert_type, &auto_approve) is called, with
 * auto_approve preset to req->requester_auto_approve, and may change it;
 * when it returns false nothing is decided or written and the answer is
 * RA_NOT_FOUND with an empty detail (the callback has answered the caller
 * and audited the attempt); then everything else as in ra_enroll().
 */
typedef bool (*ra_scope_fn)(void *scope_arg, unsigned cert_type, bool *auto_approve);

enum ra_status ra_enroll_scoped(struct db *db, struct ca *ca, const struct enrolld_config *cfg,
    const struct enroll_request *req, ra_scope_fn scope, void *scope_arg,
    struct enroll_result *out) __attribute__((warn_unused_result));

/* Approve a 'requested' certificate (the caller has checked the approver's
 * scope): re-runs the policy (a domain may have been deactivated since),
 * then issues. */
enum ra_status ra_approve(struct db *db, struct ca *ca, const struct enrolld_config *cfg,
    int64_t cert_id, int64_t approver_admin_id, struct enroll_result *out)
    __attribute__((warn_unused_result));
enum ra_status ra_decline(struct db *db, int64_t cert_id, int64_t approver_admin_id,
    const char *reason) __attribute__((warn_unused_result));

/* Revokes an issued certificate with an RFC 5280 reason and regenerates the
 * CRL; RA_CONFLICT when already revoked or not issued. */
enum ra_status ra_revoke(struct db *db, struct ca *ca, int64_t cert_id, int reason,
    const char *actor) __attribute__((warn_unused_result));

/* The current CRL of the issuing CA (DER, newly allocated, caller frees),
 * regenerated when missing or past half its validity. */
enum ra_status ra_crl(struct db *db, struct ca *ca, const struct enrolld_config *cfg,
    unsigned char **der, size_t *der_len) __attribute__((warn_unused_result));

#endif
