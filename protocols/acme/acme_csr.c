/*
 * acme_csr.c: what finalize needs to know of a CSR before the policy core
 * sees it - its names and its key - without the work ra_enroll() does again
 * anyway (signature verification and key judgement, in core/csr.c).
 *
 * Why not csr_parse(): finalize must compare the CSR with the order BEFORE
 * ra_enroll(), which parses the CSR itself; parsing it fully twice doubled
 * the CPU of a finalize (verification and key classification cost more than
 * everything else the door does). So this file reads the request and
 * collects names by csr.c's rules - every subject CN (a DNS name, an IP
 * address or an e-mail address, else invalid), every SAN (dNSName,
 * iPAddress, rfc822Name; any other type refused), canonical and
 * de-duplicated through core/names.h - and leaves the rest to the policy
 * core. The names must come out the same as csr.c's: the order check here
 * and the certificate's SANs there must agree; where this file is unsure
 * (a name it cannot read) it refuses, which csr.c would too.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme_door.h"
#include "csr.h"
#include "names.h"

/* Records the first problem only. */
static void
acme_csr_error(struct acme_csr *c, const char *what)
{
	if (c->error[0] == '\0')
		snprintf(c->error, sizeof(c->error), "%s", what);
}

static void
acme_csr_add(struct acme_csr *c, enum name_kind kind, const char *value)
{
	size_t i;

	for (i = 0; i < c->n_names; i++)
		if (c->names[i].kind == kind && strcmp(c->names[i].value, value) == 0)
			return;
	if (c->n_names == CSR_MAX_NAMES) {
		acme_csr_error(c, "too many names");
		return;
	}
	c->names[c->n_names].kind = kind;
	snprintf(c->names[c->n_names].value, sizeof(c->names[c->n_names].value), "%s", value);
	c->n_names++;
}

/* An ASN1 string as C text: false with a NUL inside or too long. */
static bool
acme_csr_text(const ASN1_STRING *s, char *out, size_t outlen)
{
	const unsigned char *data = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s);

	if (data == NULL || len <= 0 || (size_t)len >= outlen || memchr(data, '\0', (size_t)len))
		return false;
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	return true;
}

static void
acme_csr_cn(struct acme_csr *c, const X509_NAME_ENTRY *entry)
{
	unsigned char *utf8 = NULL;
	char text[NAME_MAX_LEN], canon[NAME_MAX_LEN];
	int len;

	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
	if (len <= 0 || (size_t)len >= sizeof(text) || memchr(utf8, '\0', (size_t)len) != NULL) {
		acme_csr_error(c, "an unreadable common name");
		goto out;
	}
	memcpy(text, utf8, (size_t)len);
	text[len] = '\0';
	if (strchr(text, '@') != NULL) {
		if (name_email_canonical(text, canon, sizeof(canon)) == 0) {
			acme_csr_add(c, NAME_EMAIL, canon);
			goto out;
		}
	} else if (name_ip_canonical(text, canon, sizeof(canon)) == 0) {
		acme_csr_add(c, NAME_IP, canon);
		goto out;
	} else if (name_dns_canonical(text, canon, sizeof(canon)) == 0) {
		acme_csr_add(c, NAME_DNS, canon);
		goto out;
	}
	acme_csr_error(c, "a common name that is not a DNS name or an IP address");
out:
	OPENSSL_free(utf8);
}

static void
acme_csr_san(struct acme_csr *c, const GENERAL_NAME *gn)
{
	char text[NAME_MAX_LEN], canon[NAME_MAX_LEN];
	int len;

	switch (gn->type) {
	case GEN_DNS:
		if (!acme_csr_text(gn->d.dNSName, text, sizeof(text)) ||
		    name_dns_canonical(text, canon, sizeof(canon)) != 0) {
			acme_csr_error(c, "a dNSName that is not a valid DNS name");
			return;
		}
		acme_csr_add(c, NAME_DNS, canon);
		return;
	case GEN_EMAIL:
		if (!acme_csr_text(gn->d.rfc822Name, text, sizeof(text)) ||
		    name_email_canonical(text, canon, sizeof(canon)) != 0) {
			acme_csr_error(c, "an rfc822Name that is not an e-mail address");
			return;
		}
		acme_csr_add(c, NAME_EMAIL, canon);
		return;
	case GEN_IPADD:
		len = ASN1_STRING_length(gn->d.iPAddress);
		if ((len != 4 && len != 16) ||
		    inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(gn->d.iPAddress),
			text, sizeof(text)) == NULL ||
		    name_ip_canonical(text, canon, sizeof(canon)) != 0) {
			acme_csr_error(c, "an iPAddress that is not an address");
			return;
		}
		acme_csr_add(c, NAME_IP, canon);
		return;
	default:
		acme_csr_error(c, "a subjectAltName of a type that cannot be certified");
		return;
	}
}

int
acme_csr_read(const unsigned char *der, size_t len, struct acme_csr *c)
{
	const unsigned char *p = der;
	X509_NAME *subject = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *gens = NULL;
	int idx = -1, crit = -1, i;

	memset(c, 0, sizeof(*c));
	if (der == NULL || len == 0 || len > 64 * 1024)
		goto bad;
	c->req = d2i_X509_REQ(NULL, &p, (long)len);
	if (c->req == NULL || p != der + len)
		goto bad;
	c->pkey = X509_REQ_get0_pubkey(c->req);
	if (c->pkey == NULL) {
		acme_csr_error(c, "a public key that cannot be read");
		goto done;
	}
	/* every CN, as csr.c reads them: no name may slip past the check */
	subject = X509_REQ_get_subject_name(c->req);
	while ((idx = X509_NAME_get_index_by_NID(subject, NID_commonName, idx)) >= 0)
		acme_csr_cn(c, X509_NAME_get_entry(subject, idx));
	exts = X509_REQ_get_extensions(c->req);
	if (exts == NULL) {
		if (X509_REQ_get_attr_by_NID(c->req, NID_ext_req, -1) >= 0 ||
		    X509_REQ_get_attr_by_NID(c->req, NID_ms_ext_req, -1) >= 0)
			acme_csr_error(c, "an extension request that cannot be read");
		goto done;
	}
	gens = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL) {
		if (crit == -2)
			acme_csr_error(c, "more than one subjectAltName");
		else if (crit >= 0)
			acme_csr_error(c, "a subjectAltName that cannot be read");
		goto done;
	}
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++)
		acme_csr_san(c, sk_GENERAL_NAME_value(gens, i));
done:
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
	return 0;
bad:
	acme_csr_free(c);
	ERR_clear_error();
	return -1;
}

void
acme_csr_free(struct acme_csr *c)
{
	if (c == NULL)
		return;
	X509_REQ_free(c->req);
	memset(c, 0, sizeof(*c));
}
