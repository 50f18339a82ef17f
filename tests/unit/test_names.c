/*
 * test_names.c: table-driven tests of core/names.c.
 *
 * Each table is input -> expected canonical form (NULL: refused). The tables
 * pin the rules policy depends on: case and trailing dot folding, label and
 * name lengths, LDH, A-labels accepted and raw UTF-8 refused, where a
 * wildcard may stand, all-numeric TLDs, IP canonical forms, e-mail shapes,
 * and label-aligned domain membership.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

static int passed, failed;

static void
check(bool ok, const char *what, const char *input, const char *got, const char *want)
{
	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s(\"%s\"): got %s, want %s\n", what, input, got ? got : "(refused)",
	    want ? want : "(refused)");
}

struct canon_case {
	const char *in;
	const char *want; /* NULL: must be refused */
};

/* Runs one canonicaliser over a table. */
static void
run_canon(const char *what, int (*fn)(const char *, char *, size_t),
    const struct canon_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char out[NAME_MAX_LEN];
		int rc;

		memset(out, 'Z', sizeof(out));
		rc = fn(cases[i].in, out, sizeof(out));
		if (cases[i].want == NULL)
			check(rc == -1, what, cases[i].in, rc == 0 ? out : NULL, NULL);
		else
			check(rc == 0 && strcmp(out, cases[i].want) == 0, what, cases[i].in,
			    rc == 0 ? out : NULL, cases[i].want);
	}
}

/* Repeats c n times into buf (NUL-terminated). */
static char *
rep(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static void
test_dns(void)
{
	static const struct canon_case cases[] = {
		/* case and trailing dot */
		{ "example.com", "example.com" },
		{ "Example.COM", "example.com" },
		{ "WWW.Example.Com.", "www.example.com" },
		{ "example.com..", NULL },	/* only ONE trailing dot */
		{ ".", NULL },
		{ "", NULL },
		{ ".example.com", NULL },	/* empty leading label */
		{ "a..example.com", NULL },	/* empty middle label */
		{ "localhost", "localhost" },	/* single label is a host name */
		/* LDH and hyphens */
		{ "a-b.example.com", "a-b.example.com" },
		{ "-ab.example.com", NULL },
		{ "ab-.example.com", NULL },
		{ "a_b.example.com", NULL },
		{ "a b.example.com", NULL },
		{ "a/b.example.com", NULL },
		{ "a@b.example.com", NULL },
		{ "1.example.com", "1.example.com" },	/* digit labels are fine */
		{ "3com.com", "3com.com" },
		/* IDN: A-labels accepted (any case), U-labels refused */
		{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
		{ "XN--Bcher-KVA.Example", "xn--bcher-kva.example" },
		{ "www.xn--mnchen-3ya.de", "www.xn--mnchen-3ya.de" },
		{ "xn--.example.com", NULL },	/* empty A-label body ends in '-' */
		{ "xn--a_b.example.com", NULL },
		{ "b\xc3\xbc" "cher.example", NULL },	/* raw UTF-8 "bücher" */
		{ "example.\xe4\xb8\xad\xe5\x9b\xbd", NULL },
		{ "\x80.example.com", NULL },
		/* wildcards */
		{ "*.example.com", "*.example.com" },
		{ "*.Example.COM.", "*.example.com" },
		{ "*.a.example.com", "*.a.example.com" },
		{ "*", NULL },
		{ "*.", NULL },
		{ "*.com", NULL },		/* needs two labels after */
		{ "*.*.example.com", NULL },
		{ "a.*.example.com", NULL },
		{ "example.*", NULL },
		{ "f*o.example.com", NULL },
		{ "*foo.example.com", NULL },
		{ "**.example.com", NULL },
		/* all-numeric TLD: IPv4 text is not a host name */
		{ "192.0.2.1", NULL },
		{ "example.123", NULL },
		{ "example.1a", "example.1a" },
		{ "*.1.2", NULL },
	};
	char label63[64], label64[65], name[300];

	run_canon("name_dns_canonical", name_dns_canonical, cases,
	    sizeof(cases) / sizeof(cases[0]));

	/* label length limit 63 */
	rep(label63, 'a', 63);
	rep(label64, 'a', 64);
	snprintf(name, sizeof(name), "%s.example.com", label63);
	{
		struct canon_case c[] = { { name, name } };
		run_canon("name_dns_canonical", name_dns_canonical, c, 1);
	}
	snprintf(name, sizeof(name), "%s.example.com", label64);
	{
		struct canon_case c[] = { { name, NULL } };
		run_canon("name_dns_canonical", name_dns_canonical, c, 1);
	}
	/* total length limit 253 (4 x 63 + 3 dots = 255 -> too long; trim) */
	{
		char ok253[300], bad254[300], ok253dot[310];

		/* 63+1+63+1+63+1+61 = 253 */
		snprintf(ok253, sizeof(ok253), "%s.%s.%s.%s", label63, label63, label63,
		    rep(label64, 'b', 61));
		snprintf(bad254, sizeof(bad254), "%s.%s.%s.%s", label63, label63, label63,
		    rep(label64, 'b', 62));
		snprintf(ok253dot, sizeof(ok253dot), "%s.", ok253);
		struct canon_case c[] = { { ok253, ok253 }, { bad254, NULL }, { ok253dot, ok253 } };
		if (strlen(ok253) != 253 || strlen(bad254) != 254) {
			failed++;
			printf("FAIL length fixture\n");
		}
		run_canon("name_dns_canonical", name_dns_canonical, c, 3);
	}
	/* output buffer too small is refused, not truncated */
	{
		char small[8];
		int rc = name_dns_canonical("example.com", small, sizeof(small));
		check(rc == -1, "name_dns_canonical(small buffer)", "example.com",
		    rc == 0 ? small : NULL, NULL);
	}
	{
		char exact[12];
		int rc = name_dns_canonical("example.com", exact, sizeof(exact));
		check(rc == 0 && strcmp(exact, "example.com") == 0,
		    "name_dns_canonical(exact buffer)", "example.com", rc == 0 ? exact : NULL,
		    "example.com");
	}
}

static void
test_ip(void)
{
	static const struct canon_case cases[] = {
		{ "192.0.2.1", "192.0.2.1" },
		{ "0.0.0.0", "0.0.0.0" },
		{ "255.255.255.255", "255.255.255.255" },
		{ "256.0.0.1", NULL },
		{ "192.0.2", NULL },
		{ "192.0.2.1.5", NULL },
		{ "192.0.2.1 ", NULL },
		{ "example.com", NULL },
		{ "", NULL },
		{ "2001:DB8::1", "2001:db8::1" },
		{ "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1" },
		{ "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
		{ "::1", "::1" },
		{ "::", "::" },
		{ "::ffff:192.0.2.1", "::ffff:192.0.2.1" },
		{ "fe80::1%eth0", NULL },	/* zone ids are not addresses */
		{ "2001:db8::1::2", NULL },
		{ "[2001:db8::1]", NULL },
		{ "2001:db8::g", NULL },
	};

	run_canon("name_ip_canonical", name_ip_canonical, cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_email(void)
{
	static const struct canon_case cases[] = {
		{ "alice@example.com", "alice@example.com" },
		{ "Alice@Example.COM", "Alice@example.com" },	/* local part kept */
		{ "alice@example.com.", "alice@example.com" },
		{ "a.b+tag@mail.example.com", "a.b+tag@mail.example.com" },
		{ "o'hara!#$%&*/=?^_`{|}~-@example.com", "o'hara!#$%&*/=?^_`{|}~-@example.com" },
		{ "alice@xn--bcher-kva.example", "alice@xn--bcher-kva.example" },
		{ "@example.com", NULL },
		{ "alice@", NULL },
		{ "alice", NULL },
		{ "alice@bob@example.com", NULL },
		{ "al ice@example.com", NULL },
		{ "alice\t@example.com", NULL },
		{ "al\xc3\xaf" "ce@example.com", NULL },	/* non-ASCII local part */
		{ "alice@*.example.com", NULL },	/* no wildcard domain */
		{ "alice@exa_mple.com", NULL },
		{ "alice@192.0.2.1", NULL },
		{ "alice@b\xc3\xbc" "cher.example", NULL },
		{ "x@a", "x@a" },
		{ "0123456789012345678901234567890123456789012345678901234567890123@example.com",
		    "0123456789012345678901234567890123456789012345678901234567890123@example.com" },
		{ "01234567890123456789012345678901234567890123456789012345678901234@example.com",
		    NULL }, /* local part 65 > 64 */
	};

	run_canon("name_email_canonical", name_email_canonical, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

static void
test_wildcard(void)
{
	static const struct {
		const char *name;
		bool want;
	} cases[] = {
		{ "*.example.com", true },
		{ "example.com", false },
		{ "a*.example.com", false },
		{ "*", false },
		{ "", false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = name_is_wildcard(cases[i].name);
		check(got == cases[i].want, "name_is_wildcard", cases[i].name, got ? "true" : "false",
		    cases[i].want ? "true" : "false");
	}
	check(!name_is_wildcard(NULL), "name_is_wildcard", "NULL", "true", "false");
}

static void
test_in_domain(void)
{
	static const struct {
		const char *name, *domain;
		bool want;
	} cases[] = {
		{ "example.com", "example.com", true },
		{ "a.example.com", "example.com", true },
		{ "a.b.c.example.com", "example.com", true },
		{ "badexample.com", "example.com", false },	/* label alignment */
		{ "example.com.evil.org", "example.com", false },
		{ "xample.com", "example.com", false },
		{ "com", "example.com", false },
		{ "example.org", "example.com", false },
		{ "example.com", "a.example.com", false },	/* parent not in child */
		{ "b.example.com", "a.example.com", false },
		{ "x.a.example.com", "a.example.com", true },
		{ ".example.com", "example.com", false },	/* not canonical */
		{ "*.example.com", "example.com", true },
		{ "*.a.example.com", "example.com", true },
		{ "*.a.example.com", "a.example.com", true },
		{ "*.example.com", "a.example.com", false },	/* covers more than a.example.com */
		{ "*.badexample.com", "example.com", false },
		{ "*.com", "example.com", false },
		{ "a.example.com", "*.example.com", false },	/* a domain is never a wildcard */
		{ "a.example.com", "", false },
		{ "192.0.2.1", "192.0.2.1", true },		/* exact text (IP rule in policy) */
		{ "2001:db8::1", "2001:db8::1", true },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = name_in_domain(cases[i].name, cases[i].domain);
		char label[600];

		snprintf(label, sizeof(label), "%s\", \"%s", cases[i].name, cases[i].domain);
		check(got == cases[i].want, "name_in_domain", label, got ? "true" : "false",
		    cases[i].want ? "true" : "false");
	}
	check(!name_in_domain(NULL, "example.com"), "name_in_domain", "NULL", "true", "false");
	check(!name_in_domain("example.com", NULL), "name_in_domain", "NULL", "true", "false");
}

static void
test_typed(void)
{
	static const struct {
		enum name_kind kind;
		const char *value, *want;
	} cases[] = {
		{ NAME_DNS, "www.example.com", "dns:www.example.com" },
		{ NAME_DNS, "*.example.com", "dns:*.example.com" },
		{ NAME_IP, "2001:db8::1", "ip:2001:db8::1" },
		{ NAME_IP, "192.0.2.1", "ip:192.0.2.1" },
		{ NAME_EMAIL, "Alice@example.com", "email:Alice@example.com" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct req_name n;
		char out[NAME_MAX_LEN + 8];

		n.kind = cases[i].kind;
		snprintf(n.value, sizeof(n.value), "%s", cases[i].value);
		name_typed(&n, out, sizeof(out));
		check(strcmp(out, cases[i].want) == 0, "name_typed", cases[i].value, out,
		    cases[i].want);
	}
	/* a short buffer truncates but stays terminated */
	{
		struct req_name n = { .kind = NAME_DNS };
		char out[6];

		snprintf(n.value, sizeof(n.value), "example.com");
		name_typed(&n, out, sizeof(out));
		check(strcmp(out, "dns:e") == 0, "name_typed(short)", "example.com", out, "dns:e");
	}
}

/* names_candidates(): every label-aligned suffix of DNS names and e-mail
 * domains, addresses as they are, as a text[] literal. */
static void
test_candidates(void)
{
	static const struct {
		enum name_kind kind;
		const char *value;
	} in[] = {
		{ NAME_DNS, "a.b.example.com" },
		{ NAME_DNS, "*.example.org" },
		{ NAME_IP, "192.0.2.1" },
		{ NAME_IP, "2001:db8::1" },
		{ NAME_EMAIL, "Alice.Smith@mail.example.net" },
		{ NAME_DNS, "localhost" },
	};
	static const char want[] =
	    "{\"a.b.example.com\",\"b.example.com\",\"example.com\",\"com\","
	    "\"*.example.org\",\"example.org\",\"org\",\"192.0.2.1\",\"2001:db8::1\","
	    "\"mail.example.net\",\"example.net\",\"net\",\"localhost\"}";
	struct req_name names[sizeof(in) / sizeof(in[0])];
	char *got;
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		names[i].kind = in[i].kind;
		snprintf(names[i].value, sizeof(names[i].value), "%s", in[i].value);
	}
	got = names_candidates(names, sizeof(in) / sizeof(in[0]));
	check(got != NULL && strcmp(got, want) == 0, "names_candidates", "(six names)", got, want);
	free(got);

	/* none: the empty array; a value that could break the literal is left out */
	got = names_candidates(NULL, 0);
	check(got != NULL && strcmp(got, "{}") == 0, "names_candidates", "(none)", got, "{}");
	free(got);
	names[0].kind = NAME_DNS;
	snprintf(names[0].value, sizeof(names[0].value), "a\",\"evil.test");
	names[1].kind = NAME_EMAIL;
	snprintf(names[1].value, sizeof(names[1].value), "no-at-sign");
	got = names_candidates(names, 2);
	check(got != NULL && strcmp(got, "{}") == 0, "names_candidates", "(quote, no @)", got,
	    "{}");
	free(got);
}

int
main(void)
{
	test_dns();
	test_ip();
	test_email();
	test_wildcard();
	test_in_domain();
	test_typed();
	test_candidates();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
