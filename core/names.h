/*
 * names.h: what a name in a request is, and whether it falls inside a domain.
 *
 * Names are compared in canonical form: lower case, A-labels (punycode; an
 * IDN U-label in a request is refused, not converted), no trailing dot.
 */
#ifndef ENROLLD_NAMES_H
#define ENROLLD_NAMES_H

#include <stdbool.h>
#include <stddef.h>

enum name_kind { NAME_DNS, NAME_IP, NAME_EMAIL };

#define NAME_MAX_LEN 256

struct req_name {
	enum name_kind kind;
	char value[NAME_MAX_LEN]; /* canonical: dns lower-case no trailing dot;
				     ip in inet_ntop form; email local@domain
				     with domain lower-cased */
};

/* Canonicalises a DNS name (may start with "*." ) into out. Returns 0, or -1
 * when it is not a valid host name: empty label, label > 63, name > 253,
 * characters outside LDH, leading/trailing hyphen, non-ASCII (U-label),
 * a wildcard anywhere but the whole leftmost label, an all-numeric TLD. */
int name_dns_canonical(const char *in, char *out, size_t outlen);
/* Canonical IPv4/IPv6 text; -1 if not an address. */
int name_ip_canonical(const char *in, char *out, size_t outlen);
/* The domain part of an e-mail address, canonical; -1 if malformed. */
int name_email_canonical(const char *in, char *out, size_t outlen);

bool name_is_wildcard(const char *canonical_dns);

/* True when canonical DNS name `name` is `domain` or a subdomain of it; a
 * wildcard "*.x.domain" is inside `domain` when "x.domain" is (or equal
 * "*.domain" when the domain itself). Label-aligned: "badexample.com" is not
 * inside "example.com". */
bool name_in_domain(const char *name, const char *domain);

/* The "typed" text form stored in certificates.names: "dns:..", "ip:..",
 * "email:..". */
void name_typed(const struct req_name *n, char *out, size_t outlen);

/* The domains that could decide for name n, one after another: the first is
 * names_lookup_part() (the address, the DNS name, or the e-mail address's
 * domain; NULL when empty), each next one names_next_suffix() of the one
 * before (the part after its first dot; NULL after the last, and at once
 * for an address, which decides only as it is).
 * "a.b.example.com" -> a.b.example.com, b.example.com, example.com, com. */
const char *names_lookup_part(const struct req_name *n);
const char *names_next_suffix(const struct req_name *n, const char *s);

/* The domains that could decide for names[0..n): every label-aligned
 * suffix of each DNS name and of each e-mail address's domain
 * ("a.b.example.com" -> a.b.example.com, b.example.com, example.com, com),
 * and each address as it is; as a PostgreSQL text[] literal
 * ('{"a.example.com","example.com","com","192.0.2.1"}'). Newly allocated,
 * or NULL (out of memory). Used to load only the delegated domains a request
 * can touch, however many an organization has. */
char *names_candidates(const struct req_name *names, size_t n);

#endif
