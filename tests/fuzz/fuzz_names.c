/*
 * fuzz_names.c: libFuzzer target for core/names.c (name_dns_canonical,
 * name_ip_canonical, name_email_canonical, name_in_domain).
 *
 * Not built by CMake (the default build uses gcc). Build and run by hand:
 *
 *   clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -I core tests/fuzz/fuzz_names.c core/names.c -o fuzz_names
 *   ./fuzz_names -max_total_time=60 -max_len=600
 *
 * Besides crashes and sanitizer reports, it aborts when an invariant the
 * policy relies on breaks:
 *   - a canonical DNS name is a fixed point (canonicalising it again gives
 *     the same text), at most 253 bytes, lower-case LDH plus dots and a
 *     leading "*." only;
 *   - a canonical IP is a fixed point;
 *   - a canonical e-mail is a fixed point and contains exactly one '@';
 *   - name_in_domain(name, domain) implies name (without "*.") equals domain
 *     or ends in "." + domain: nothing outside a domain is ever inside it;
 *   - names_candidates() of a canonical name lists every domain the name is
 *     inside (the policy facts load only those: one left out would wrongly
 *     refuse), and of any input is a well-formed text[] literal.
 * The input is split at the first NUL byte into a name and a domain.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

static void
fuzz_check_dns(const char *in)
{
	char out[NAME_MAX_LEN], again[NAME_MAX_LEN];
	size_t i, len;

	if (name_dns_canonical(in, out, sizeof(out)) != 0)
		return;
	len = strlen(out);
	if (len == 0 || len > 253)
		abort();
	for (i = 0; i < len; i++) {
		char c = out[i];
		if (c == '*' && i == 0 && out[1] == '.')
			continue;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			abort();
	}
	if (name_dns_canonical(out, again, sizeof(again)) != 0 || strcmp(out, again) != 0)
		abort();
	/* a name is inside itself, and a wildcard inside its base */
	if (!name_is_wildcard(out) && !name_in_domain(out, out))
		abort();
	if (name_is_wildcard(out) && !name_in_domain(out, out + 2))
		abort();
}

static void
fuzz_check_ip(const char *in)
{
	char out[NAME_MAX_LEN], again[NAME_MAX_LEN];

	if (name_ip_canonical(in, out, sizeof(out)) != 0)
		return;
	if (name_ip_canonical(out, again, sizeof(again)) != 0 || strcmp(out, again) != 0)
		abort();
}

static void
fuzz_check_email(const char *in)
{
	char out[NAME_MAX_LEN], again[NAME_MAX_LEN];
	const char *at = NULL;

	if (name_email_canonical(in, out, sizeof(out)) != 0)
		return;
	at = strchr(out, '@');
	if (at == NULL || strchr(at + 1, '@') != NULL)
		abort();
	if (name_email_canonical(out, again, sizeof(again)) != 0 || strcmp(out, again) != 0)
		abort();
}

static void
fuzz_check_in_domain(const char *name, const char *domain)
{
	size_t nlen, dlen;

	if (!name_in_domain(name, domain))
		return;
	if (name_is_wildcard(name))
		name += 2;
	nlen = strlen(name);
	dlen = strlen(domain);
	if (dlen == 0 || nlen < dlen)
		abort();
	if (strcmp(name + nlen - dlen, domain) != 0)
		abort();
	if (nlen > dlen && name[nlen - dlen - 1] != '.')
		abort();
}

/* Is "domain" one of the quoted elements of text[] literal lit? */
static int
fuzz_literal_has(const char *lit, const char *domain)
{
	size_t dlen = strlen(domain);
	const char *p = lit;

	while ((p = strchr(p, '"')) != NULL) {
		const char *end = strchr(p + 1, '"');

		if (end == NULL)
			abort(); /* unbalanced quotes */
		if ((size_t)(end - p - 1) == dlen && memcmp(p + 1, domain, dlen) == 0)
			return 1;
		p = end + 1;
	}
	return 0;
}

static void
fuzz_check_candidates(enum name_kind kind, const char *value, const char *domain)
{
	struct req_name n;
	char *lit;
	size_t len;

	n.kind = kind;
	if (strlen(value) >= sizeof(n.value))
		return;
	memcpy(n.value, value, strlen(value) + 1);
	lit = names_candidates(&n, 1);
	if (lit == NULL)
		return;
	len = strlen(lit);
	if (len < 2 || lit[0] != '{' || lit[len - 1] != '}')
		abort();
	if (domain != NULL && !fuzz_literal_has(lit, domain))
		abort();
	free(lit);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = NULL, *domain = NULL;
	char cname[NAME_MAX_LEN], cdomain[NAME_MAX_LEN];

	/* NUL-terminated copy; a second NUL terminator holds the domain. */
	buf = malloc(size + 2);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	buf[size + 1] = '\0';
	domain = buf + strlen(buf) + 1;
	if (domain > buf + size)
		domain = buf + size + 1;

	fuzz_check_dns(buf);
	fuzz_check_ip(buf);
	fuzz_check_email(buf);
	fuzz_check_dns(domain);
	/* raw text (callers should pass canonical names, but must not crash) */
	fuzz_check_in_domain(buf, domain);
	/* canonical text, the way policy calls it */
	if (name_dns_canonical(buf, cname, sizeof(cname)) == 0 &&
	    name_dns_canonical(domain, cdomain, sizeof(cdomain)) == 0) {
		fuzz_check_in_domain(cname, cdomain);
		fuzz_check_candidates(NAME_DNS, cname,
		    name_in_domain(cname, cdomain) && !name_is_wildcard(cdomain) ? cdomain : NULL);
	}
	/* raw text of every kind: never a broken literal */
	fuzz_check_candidates(NAME_DNS, buf, NULL);
	fuzz_check_candidates(NAME_EMAIL, buf, NULL);
	fuzz_check_candidates(NAME_IP, buf, NULL);

	free(buf);
	return 0;
}
