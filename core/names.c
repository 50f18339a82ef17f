/*
 * names.c: the names a request asks for, in one canonical form, and the rule
 * that says whether a name lies inside a delegated domain.
 *
 * Every name is canonicalised before it is compared or stored, so that policy
 * (core/policy.c) and the database see one spelling per name:
 *   dns   lower-case ASCII, one trailing dot stripped, LDH labels of 1..63
 *         bytes, at most 253 bytes; IDNs only as A-labels ("xn--..."): a raw
 *         U-label (any byte >= 0x80) is refused rather than converted, so
 *         that no Unicode normalisation happens here; a wildcard only as the
 *         whole leftmost label with at least two labels after it; the TLD is
 *         never all digits, so "192.0.2.1" is not mistaken for a host name.
 *   ip    inet_pton then inet_ntop (v4 dotted quad, v6 RFC 5952 form).
 *   email local@domain; the local part is kept byte for byte (it may be
 *         case-sensitive), the domain is canonical DNS without wildcard.
 * Pure functions: no allocation, no logging, safe from any thread.
 */
#include "names.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNS_MAX_NAME 253
#define DNS_MAX_LABEL 63
#define EMAIL_MAX_LOCAL 64 /* RFC 5321 4.5.3.1.1 */

static bool
names_is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Checks one lower-cased label [s, s+len): 1..63 bytes, LDH, no hyphen at
 * either end. An A-label ("xn--" prefix) passes by the same rule: its
 * remainder must be LDH and non-empty (the trailing-hyphen rule refuses a
 * bare "xn--"). The label is not decoded; a CA cannot render it anyway. */
static bool
names_label_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > DNS_MAX_LABEL)
		return false;
	if (s[0] == '-' || s[len - 1] == '-')
		return false;
	for (i = 0; i < len; i++)
		if (!names_is_ldh((unsigned char)s[i]))
			return false;
	return true;
}

int
name_dns_canonical(const char *in, char *out, size_t outlen)
{
	char buf[DNS_MAX_NAME + 2];
	size_t len, i, start, nlabels = 0;
	const char *body = NULL;
	bool wildcard = false, tld_digits = true;

	if (in == NULL || out == NULL || outlen == 0)
		return -1;
	len = strnlen(in, sizeof(buf));
	if (len == 0 || len >= sizeof(buf))
		return -1;
	/* Lower-case ASCII only; any byte >= 0x80 is a U-label (or garbage). */
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 0x80)
			return -1;
		buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
	}
	buf[len] = '\0';
	/* One trailing dot is the absolute form of the same name. */
	if (buf[len - 1] == '.')
		buf[--len] = '\0';
	if (len == 0 || len > DNS_MAX_NAME)
		return -1;

	body = buf;
	if (len >= 2 && buf[0] == '*' && buf[1] == '.') {
		wildcard = true;
		body = buf + 2;
	}
	/* Walk the labels of the body; a '*' anywhere here is refused by the
	 * LDH check, which covers "*.*.x", "a.*.x", "*" and "f*o.x". */
	start = 0;
	for (i = 0;; i++) {
		if (body[i] == '.' || body[i] == '\0') {
			if (!names_label_ok(body + start, i - start))
				return -1;
			nlabels++;
			if (body[i] == '\0')
				break;
			start = i + 1;
		}
	}
	/* The TLD is the last label: body[start..]. */
	for (i = start; body[i] != '\0'; i++)
		if (body[i] < '0' || body[i] > '9')
			tld_digits = false;
	if (tld_digits)
		return -1;
	/* "*.com" would cover a whole TLD: a wildcard needs two labels after. */
	if (wildcard && nlabels < 2)
		return -1;
	if (len + 1 > outlen)
		return -1;
	memcpy(out, buf, len + 1);
	return 0;
}

int
name_ip_canonical(const char *in, char *out, size_t outlen)
{
	unsigned char addr[sizeof(struct in6_addr)];
	char text[INET6_ADDRSTRLEN];
	int af;

	if (in == NULL || out == NULL || outlen == 0)
		return -1;
	if (inet_pton(AF_INET, in, addr) == 1)
		af = AF_INET;
	else if (inet_pton(AF_INET6, in, addr) == 1)
		af = AF_INET6;
	else
		return -1;
	if (inet_ntop(af, addr, text, sizeof(text)) == NULL)
		return -1;
	if (strlen(text) + 1 > outlen)
		return -1;
	memcpy(out, text, strlen(text) + 1);
	return 0;
}

/* Writes the whole address "local@domain" with the domain canonical (the
 * struct req_name form); the local part is kept as sent, since RFC 5321
 * leaves its case to the receiving host. */
int
name_email_canonical(const char *in, char *out, size_t outlen)
{
	char domain[DNS_MAX_NAME + 1];
	const char *at = NULL;
	size_t local_len, i;
	int n;

	if (in == NULL || out == NULL || outlen == 0)
		return -1;
	at = strchr(in, '@');
	if (at == NULL || strchr(at + 1, '@') != NULL)
		return -1;
	local_len = (size_t)(at - in);
	if (local_len == 0 || local_len > EMAIL_MAX_LOCAL)
		return -1;
	/* Printable ASCII without space; '@' was excluded above. */
	for (i = 0; i < local_len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c <= 0x20 || c >= 0x7f)
			return -1;
	}
	if (name_dns_canonical(at + 1, domain, sizeof(domain)) != 0)
		return -1;
	if (name_is_wildcard(domain))
		return -1;
	n = snprintf(out, outlen, "%.*s@%s", (int)local_len, in, domain);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return 0;
}

bool
name_is_wildcard(const char *canonical_dns)
{
	return canonical_dns != NULL && canonical_dns[0] == '*' && canonical_dns[1] == '.';
}

bool
name_in_domain(const char *name, const char *domain)
{
	size_t nlen, dlen;

	if (name == NULL || domain == NULL || domain[0] == '\0' || domain[0] == '*')
		return false;
	/* "*.x.domain" stands for names under "x.domain": it is inside domain
	 * exactly when "x.domain" is; "*.domain" when the base is domain. */
	if (name_is_wildcard(name))
		name += 2;
	nlen = strlen(name);
	dlen = strlen(domain);
	if (nlen == dlen)
		return memcmp(name, domain, nlen) == 0;
	/* Label-aligned suffix: the byte before the suffix must be a dot. */
	if (nlen > dlen + 1 && name[nlen - dlen - 1] == '.')
		return memcmp(name + nlen - dlen, domain, dlen) == 0;
	return false;
}

void
name_typed(const struct req_name *n, char *out, size_t outlen)
{
	const char *prefix = "dns";

	if (out == NULL || outlen == 0)
		return;
	if (n == NULL) {
		out[0] = '\0';
		return;
	}
	switch (n->kind) {
	case NAME_DNS:
		prefix = "dns";
		break;
	case NAME_IP:
		prefix = "ip";
		break;
	case NAME_EMAIL:
		prefix = "email";
		break;
	}
	snprintf(out, outlen, "%s:%s", prefix, n->value);
}

const char *
names_lookup_part(const struct req_name *n)
{
	const char *at;

	if (n->kind != NAME_EMAIL)
		return n->value[0] != '\0' ? n->value : NULL;
	at = strrchr(n->value, '@');
	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

const char *
names_next_suffix(const struct req_name *n, const char *s)
{
	if (n->kind == NAME_IP || (s = strchr(s, '.')) == NULL)
		return NULL;
	return s + 1;
}

char *
names_candidates(const struct req_name *names, size_t n)
{
	size_t cap = 3, used = 0, i;
	const char *s;
	char *out = NULL;
	int pass;

	/* pass 0 sizes (each suffix quoted plus a comma), pass 1 writes */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			out = malloc(cap);
			if (out == NULL)
				return NULL;
			out[used++] = '{';
		}
		for (i = 0; i < n; i++) {
			s = names_lookup_part(&names[i]);
			/* canonical names hold no quote or backslash; anything
			 * else is no domain of ours */
			if (s == NULL || strpbrk(s, "\"\\{},") != NULL)
				continue;
			for (; s != NULL; s = names_next_suffix(&names[i], s)) {
				if (pass == 0)
					cap += strlen(s) + 3;
				else
					used += (size_t)snprintf(out + used, cap - used, "%s\"%s\"",
					    used > 1 ? "," : "", s);
			}
		}
	}
	out[used++] = '}';
	out[used] = '\0';
	return out;
}
