/*
 * acme_validate.h: ACME challenge validation (RFC 8555 §8, RFC 8737 tls-alpn-01,
 * RFC 8738 ip identifiers), off the event loop and off the HTTP workers.
 *
 * Two layers:
 *
 *   acme_validate_*()   pure checks with no database: one challenge
 *                       (http-01, dns-01 or tls-alpn-01) against the network,
 *                       bounded by acme_validate_params (ports, resolver,
 *                       address rule, timeout). They block for at most
 *                       timeout_seconds and are meant for validator threads.
 *
 *   acme_validator_*()  the validator: validation_workers threads, each with
 *                       its own struct db, fed by a bounded in-process queue.
 *                       The ACME door sets a challenge 'processing', COMMITS,
 *                       then calls acme_validator_submit(id). A thread loads
 *                       the challenge (one query), runs the check and writes
 *                       the outcome in one transaction: challenge -> valid or
 *                       invalid (with an ACME problem document in error),
 *                       authz -> valid / invalid, order -> ready when all its
 *                       authzs are valid or invalid when one became invalid.
 *                       Every UPDATE is guarded by the expected current
 *                       status, so a challenge validated twice (two instances,
 *                       a restart) is written once.
 *
 * Outbound safety (every check): only the configured ports (http-01 first
 * hop: validation_http_port; redirects: http on 80 or validation_http_port,
 * https on 443 or validation_tls_port), at most ACME_VALIDATE_MAX_REDIRECTS
 * redirects, no proxy, capped bodies, one deadline for the whole check, and
 * every address checked with acme_validate_addr_allowed() before any connect
 * (redirect targets included): loopback, RFC 1918, link-local, ULA, CGNAT are
 * refused unless allow_private; unspecified, multicast, broadcast and the
 * reserved 240/4 are refused always.
 *
 * Problem types (the "type" of the problem document written to
 * acme_challenges.error):
 *   connection         cannot connect, timeout, address or port not allowed,
 *                      bad redirect, too many redirects
 *   dns                the DNS lookup failed (timeout, SERVFAIL, NXDOMAIN, no
 *                      address)
 *   tls                TLS handshake failed or acme-tls/1 not negotiated
 *   unauthorized       http-01 answered with a status other than 200;
 *                      dns-01 found no TXT record; the account or the
 *                      authorization is no longer usable
 *   incorrectResponse  the answer was there but wrong: http-01 body, dns-01
 *                      TXT value, tls-alpn-01 certificate (SAN, extension,
 *                      digest), or a body over the cap
 *   malformed          the stored challenge itself is unusable (bad token,
 *                      bad identifier)
 */
#ifndef ENROLLD_ACME_VALIDATE_H
#define ENROLLD_ACME_VALIDATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

/* Only pointers to these cross this header: protocols/ that include it need
 * neither libpq nor the config layout. */
struct db;
struct enrolld_config;

#define ACME_VALIDATE_PROBLEM_CONNECTION   "urn:ietf:params:acme:error:connection"
#define ACME_VALIDATE_PROBLEM_DNS          "urn:ietf:params:acme:error:dns"
#define ACME_VALIDATE_PROBLEM_TLS          "urn:ietf:params:acme:error:tls"
#define ACME_VALIDATE_PROBLEM_UNAUTHORIZED "urn:ietf:params:acme:error:unauthorized"
#define ACME_VALIDATE_PROBLEM_INCORRECT    "urn:ietf:params:acme:error:incorrectResponse"
#define ACME_VALIDATE_PROBLEM_MALFORMED    "urn:ietf:params:acme:error:malformed"
#define ACME_VALIDATE_PROBLEM_INTERNAL     "urn:ietf:params:acme:error:serverInternal"

/* RFC 8555 §8.3 / Let's Encrypt practice. */
#define ACME_VALIDATE_MAX_REDIRECTS 10
/* http-01 bodies larger than the key authorization plus this are refused
 * (reading stops there). */
#define ACME_VALIDATE_BODY_SLACK 1024
/* Validator queue capacity; when full, submissions are picked up later by a
 * sweep of 'processing' challenges. */
#define ACME_VALIDATOR_QUEUE_MAX 1024

enum acme_validate_type {
	ACME_VALIDATE_HTTP01,	 /* "http-01" */
	ACME_VALIDATE_DNS01,	 /* "dns-01" */
	ACME_VALIDATE_TLSALPN01, /* "tls-alpn-01" */
	ACME_VALIDATE__MAX,
};

enum acme_validate_id_type {
	ACME_VALIDATE_ID_DNS, /* "dns" */
	ACME_VALIDATE_ID_IP,  /* "ip" */
};

/* The knobs of one check (from the [acme] configuration). */
struct acme_validate_params {
	int http_port;		/* http-01 first hop; default 80 */
	int tls_port;		/* tls-alpn-01; default 443 */
	char dns_resolver[128];	/* "" = system resolver; "127.0.0.1:8053", "[::1]:53" */
	bool allow_private;	/* see acme_validate_addr_allowed() */
	int timeout_seconds;	/* whole check, DNS included */
	/* Optional: when it becomes true a running check gives up soon
	 * (connection problem "validation cancelled"). NULL: never. */
	const atomic_bool *cancel;
};

/* One challenge to check. Pointers are borrowed for the call. */
struct acme_validate_challenge {
	enum acme_validate_type type;
	enum acme_validate_id_type id_type;
	/* "example.com" (for a wildcard authorization the base name; a leading
	 * "*." is also accepted and stripped), "192.0.2.1", "2001:db8::1" */
	const char *id_value;
	bool wildcard;
	const char *token;	/* the challenge token (base64url) */
	const char *thumbprint;	/* RFC 7638 thumbprint of the account key */
};

/* Why a check failed. type is one of ACME_VALIDATE_PROBLEM_* (static, never
 * freed), NULL when the check passed; detail is for humans (no secrets). */
struct acme_validate_problem {
	const char *type;
	char detail[512];
};

/* "http-01" ... ; NULL for an unknown value. */
const char *acme_validate_type_name(enum acme_validate_type type);
/* -1 for an unknown name. */
int acme_validate_type_parse(const char *name);

/* Copies the [acme] validation keys of cfg into *params (cancel = NULL). */
void acme_validate_params_from_config(const struct enrolld_config *cfg,
    struct acme_validate_params *params);

/* Parses "a.b.c.d", "a.b.c.d:port", "[v6]" or "[v6]:port" (port default 53)
 * into *out. Returns 0, or -1 for anything else. */
int acme_validate_parse_resolver(const char *text, struct sockaddr_storage *out,
    socklen_t *out_len) __attribute__((warn_unused_result));

/* The address rule. Always refused: unspecified (0.0.0.0/8, ::), multicast,
 * broadcast, 240.0.0.0/4, IPv4-compatible ::/96. Refused unless
 * allow_private: loopback, RFC 1918, CGNAT 100.64/10, link-local
 * (169.254/16, fe80::/10), ULA fc00::/7, site-local fec0::/10. IPv4-mapped
 * and NAT64 (64:ff9b::/96) IPv6 addresses are judged by their IPv4 part.
 * Other families: refused. */
bool acme_validate_addr_allowed(const struct sockaddr *addr, bool allow_private);

/* The checks. Each returns true when the challenge is fulfilled; otherwise
 * false with *problem filled. They block at most params->timeout_seconds
 * (plus a fraction of a second). Thread-safe; no database. */
bool acme_validate_http01(const struct acme_validate_params *params,
    const struct acme_validate_challenge *chall, struct acme_validate_problem *problem);
bool acme_validate_dns01(const struct acme_validate_params *params,
    const struct acme_validate_challenge *chall, struct acme_validate_problem *problem);
bool acme_validate_tlsalpn01(const struct acme_validate_params *params,
    const struct acme_validate_challenge *chall, struct acme_validate_problem *problem);
/* Dispatches on chall->type. */
bool acme_validate_run(const struct acme_validate_params *params,
    const struct acme_validate_challenge *chall, struct acme_validate_problem *problem);

/* The problem as an RFC 8555 problem document
 * {"type":...,"detail":...,"status":...}. Returns a newly allocated string
 * (the caller frees it), or NULL when out of memory. */
char *acme_validate_problem_json(const struct acme_validate_problem *problem);

/* --- the validator ------------------------------------------------------ */

/* Starts cfg->validation_workers threads, each with its own connection to
 * conninfo (connected lazily), and schedules a sweep that picks up every
 * challenge left 'processing' (a previous run died). Call once, after the
 * privilege drop (no fork after this). Returns 0, or -1 (nothing started). */
int acme_validator_start(const struct enrolld_config *cfg, const char *conninfo)
    __attribute__((warn_unused_result));

/* Queues a challenge the caller has set 'processing' and committed. Never
 * blocks on the network or the database; thread-safe. A duplicate of a
 * queued or running id is ignored; when the queue is full the id is found
 * later by a sweep of 'processing' challenges. Without a running validator
 * the challenge waits for the next start (logged). */
void acme_validator_submit(int64_t challenge_id);

/* Cancels running checks, lets each thread finish its current write, joins
 * them and frees everything. Challenges still 'processing' are picked up by
 * the next start. Safe to call when not started. */
void acme_validator_stop(void);

/* One challenge, synchronously, on the caller's connection: load, check,
 * write (the work a validator thread does for each queued id). Returns 1 when
 * an outcome was written, 0 when there was nothing to do (no such challenge,
 * not 'processing' any more, or the check was cancelled through
 * params->cancel: it stays 'processing'), -1 on a database error (the
 * challenge stays 'processing'; db_unavailable() tells whether to retry). */
int acme_validator_process(struct db *db, const struct acme_validate_params *params,
    int64_t challenge_id) __attribute__((warn_unused_result));

#endif
