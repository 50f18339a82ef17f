/*
 * csr.c: a PKCS#10 request taken apart, distrustfully.
 *
 * Input arrives from every door in one of three shapes: DER (EST, SCEP
 * inside PKCS#7), PEM with "CERTIFICATE REQUEST" or "NEW CERTIFICATE
 * REQUEST" armour (admin API, pasted), or bare base64 of the DER (EST bodies,
 * ACME finalize after base64url). All are bounded to CSR_MAX_INPUT bytes and
 * must decode to exactly one DER request with no trailing bytes.
 *
 * What is judged here, and reported as data for core/policy to decide on:
 *   - the self-signature (X509_REQ_verify);
 *   - the key: RSA 2048/3072/4096 with e = 65537, EC on P-256/P-384/P-521
 *     given by name with a valid point; anything else gets a stable reason;
 *   - the names: subject CN(s) when they read as a DNS name, IP address or
 *     e-mail, and SAN dNSName/iPAddress/rfc822Name, canonicalised through
 *     core/names.c and de-duplicated. Other SAN types, or a name that does
 *     not canonicalise, set name_error; the policy refuses the request.
 * Only "not a PKCS#10 at all" makes csr_parse() fail.
 *
 * Speed (OpenSSL 3.0; this runs on every enrollment): d2i_X509_REQ() in the
 * default library context builds an OSSL_DECODER pipeline for the subject
 * key, which cost more than the rest of the parse and the signature check
 * together (measured: 40% of the daemon's CPU per issuance). So the request
 * is decoded in a library context holding only the "null" provider, where
 * that decode is skipped (as core/signer.c does), and the key is made here:
 * EC keys on P-256/P-384/P-521 from their curve and point
 * (EVP_PKEY_set1_encoded_public_key(), which decodes the point and refuses
 * one off the curve, as the decoder does), every other key through
 * d2i_PUBKEY() in the default context, exactly as before. The signature is
 * then checked with that key in the default context. So the key of a parsed
 * request is info->pkey: X509_REQ_get0_pubkey(info->req) is NULL.
 *
 * Such an EC key whose point came in uncompressed or compressed form is
 * not classified again (csr_ec_point_checked()): decoding it already made
 * every check csr_key_ec() would (EVP_PKEY_public_check_quick() alone was
 * 2.5% of bench_finalize's instructions), and its curve is the one it was
 * made on. DER input is parsed where it lies, without a copy.
 */
#include "csr.h"
#include "log.h"
#include "types.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#define CSR_MAX_INPUT (64 * 1024)

static const char csr_pem_begin[] = "-----BEGIN CERTIFICATE REQUEST-----";
static const char csr_pem_begin_new[] = "-----BEGIN NEW CERTIFICATE REQUEST-----";
static const char csr_pem_end[] = "-----END ";

static void
csr_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* Value of one base64 character (standard or URL-safe alphabet), or -1. */
static int
csr_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

static bool
csr_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Decodes base64 [in, in+len) into out (capacity at least len * 3 / 4),
 * skipping whitespace; '=' padding only at the end, and optional. Returns
 * the decoded length or -1. */
static long
csr_b64_decode(const unsigned char *in, size_t len, unsigned char *out)
{
	uint32_t acc = 0;
	size_t i, n = 0, pad = 0;
	long o = 0;
	int v;

	for (i = 0; i < len; i++) {
		if (csr_is_space(in[i]))
			continue;
		if (in[i] == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (v = csr_b64_value(in[i])) < 0)
			return -1; /* data after padding, or not base64 */
		acc = (acc << 6) | (uint32_t)v;
		if (++n % 4 == 0) {
			out[o++] = (unsigned char)(acc >> 16);
			out[o++] = (unsigned char)(acc >> 8);
			out[o++] = (unsigned char)acc;
			acc = 0;
		}
	}
	switch (n % 4) {
	case 0:
		if (pad != 0)
			return -1;
		break;
	case 1:
		return -1;
	case 2:
		if (pad != 0 && pad != 2)
			return -1;
		out[o++] = (unsigned char)(acc >> 4);
		break;
	case 3:
		if (pad != 0 && pad != 1)
			return -1;
		out[o++] = (unsigned char)(acc >> 10);
		out[o++] = (unsigned char)(acc >> 2);
		break;
	}
	return o;
}

/* memmem for bounded buffers. */
static const unsigned char *
csr_find(const unsigned char *hay, size_t hlen, const char *needle)
{
	size_t nlen = strlen(needle), i;

	if (nlen > hlen)
		return NULL;
	for (i = 0; i + nlen <= hlen; i++)
		if (memcmp(hay + i, needle, nlen) == 0)
			return hay + i;
	return NULL;
}

/* Finds the DER in the input: *der points into it when it is DER already,
 * else to *buf (newly allocated, the caller frees it; base64 decodes to
 * fewer bytes than it takes) holding it decoded. Returns its length or -1
 * with err set. */
static long
csr_to_der(const unsigned char *in, size_t len, const unsigned char **der, unsigned char **buf,
    char *err, size_t errlen)
{
	const unsigned char *begin = NULL, *body = NULL, *end = NULL;
	size_t skip = 0;
	long n;

	while (skip < len && csr_is_space(in[skip]))
		skip++;
	if (skip == len) {
		csr_err(err, errlen, "empty CSR");
		return -1;
	}
	if (in[skip] == 0x30) { /* DER: a SEQUENCE */
		*der = in + skip;
		return (long)(len - skip);
	}
	if ((*buf = OPENSSL_malloc(len)) == NULL) {
		csr_err(err, errlen, "out of memory");
		return -1;
	}
	*der = *buf;
	if (csr_find(in, len, "-----BEGIN") != NULL) {
		/* PEM, possibly after explanatory text ("openssl req -text"). */
		if ((begin = csr_find(in, len, csr_pem_begin)) != NULL)
			body = begin + strlen(csr_pem_begin);
		else if ((begin = csr_find(in, len, csr_pem_begin_new)) != NULL)
			body = begin + strlen(csr_pem_begin_new);
		else {
			csr_err(err, errlen, "PEM without a CERTIFICATE REQUEST block");
			return -1;
		}
		end = csr_find(body, len - (size_t)(body - in), csr_pem_end);
		if (end == NULL) {
			csr_err(err, errlen, "PEM CERTIFICATE REQUEST block is not terminated");
			return -1;
		}
		n = csr_b64_decode(body, (size_t)(end - body), *buf);
	} else
		n = csr_b64_decode(in + skip, len - skip, *buf);
	if (n <= 0) {
		csr_err(err, errlen, "CSR is neither DER, PEM nor base64");
		return -1;
	}
	return n;
}

/* ---------- keys ---------- */

static unsigned
csr_key_ec(EVP_PKEY *pkey, const char **reject)
{
	char group[64] = "", encoding[32] = "";
	EVP_PKEY_CTX *ctx = NULL;
	unsigned type = 0;
	int ok;

	/* Explicit parameters, even of an allowed curve, are refused: they
	 * are how curve-substitution attacks are spelled (CVE-2020-0601). */
	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_ENCODING, encoding,
	    sizeof(encoding), NULL) != 1 || strcmp(encoding, OSSL_PKEY_EC_ENCODING_GROUP) != 0 ||
	    EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) != 1) {
		*reject = "ec_curve_not_allowed";
		return 0;
	}
	if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
		type = KEY_TYPE_P256;
	else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
		type = KEY_TYPE_P384;
	else if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
		type = KEY_TYPE_P521;
	else {
		*reject = "ec_curve_not_allowed";
		return 0;
	}
	/* The point must be on the curve, not at infinity, with coordinates
	 * in range. EVP_PKEY_public_check() would also multiply it by the
	 * group order, which can only fail on a curve with a cofactor: P-256,
	 * P-384 and P-521 have cofactor 1 (every point on them but infinity
	 * has the prime order n), so the quick check refuses exactly the same
	 * keys at a fraction of the cost of that scalar multiplication. */
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	ok = ctx != NULL && EVP_PKEY_public_check_quick(ctx) == 1;
	EVP_PKEY_CTX_free(ctx);
	if (!ok) {
		*reject = "ec_invalid_point";
		return 0;
	}
	return type;
}

static unsigned
csr_key_rsa(EVP_PKEY *pkey, const char **reject)
{
	BIGNUM *e = NULL;
	int bits = EVP_PKEY_get_bits(pkey);
	bool e_ok;

	if (bits < 2048) {
		*reject = "rsa_too_small";
		return 0;
	}
	if (bits % 8 != 0 || bits > 8192) {
		*reject = "rsa_bad_size";
		return 0;
	}
	e_ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1 && BN_is_word(e, 65537);
	BN_free(e);
	if (!e_ok) {
		*reject = "rsa_bad_exponent";
		return 0;
	}
	switch (bits) {
	case 2048:
		return KEY_TYPE_RSA2048;
	case 3072:
		return KEY_TYPE_RSA3072;
	case 4096:
		return KEY_TYPE_RSA4096;
	}
	*reject = "rsa_bad_size";
	return 0;
}

unsigned
csr_key_classify(EVP_PKEY *pkey, const char **reject)
{
	unsigned type = 0;

	*reject = "key_type_unknown";
	if (pkey == NULL)
		return 0;
	/* EVP_PKEY_RSA only: RSA-PSS-restricted keys are "everything else". */
	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA)
		type = csr_key_rsa(pkey, reject);
	else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC)
		type = csr_key_ec(pkey, reject);
	ERR_clear_error();
	if (type != 0)
		*reject = NULL;
	return type;
}

/* Why a public key that OpenSSL could not even decode is refused: an EC key
 * with a point off its curve still names its algorithm and curve. */
static const char *
csr_undecodable_key_reason(X509_REQ *req)
{
	X509_PUBKEY *pub = X509_REQ_get_X509_PUBKEY(req);
	ASN1_OBJECT *alg = NULL;
	X509_ALGOR *algor = NULL;
	const void *pval = NULL;
	int ptype = V_ASN1_UNDEF, nid;

	if (pub == NULL || X509_PUBKEY_get0_param(&alg, NULL, NULL, &algor, pub) != 1 ||
	    OBJ_obj2nid(alg) != NID_X9_62_id_ecPublicKey)
		return "key_type_unknown";
	X509_ALGOR_get0(NULL, &ptype, &pval, algor);
	if (ptype != V_ASN1_OBJECT)
		return "ec_curve_not_allowed"; /* explicit or implicit parameters */
	nid = OBJ_obj2nid(pval);
	if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1 || nid == NID_secp521r1)
		return "ec_invalid_point";
	return "ec_curve_not_allowed";
}

/* ---------- names ---------- */

/* Copies an untrusted value for messages: printable ASCII kept, the rest
 * shown as '?', truncated to fit. */
static void
csr_printable(char *out, size_t outlen, const unsigned char *in, size_t len)
{
	size_t i, n = 0;

	if (outlen == 0)
		return;
	for (i = 0; i < len && n + 1 < outlen; i++)
		out[n++] = (in[i] >= 0x20 && in[i] < 0x7f) ? (char)in[i] : '?';
	out[n] = '\0';
}

static void
csr_name_error(struct csr_info *info, const char *reason, const unsigned char *value, size_t len)
{
	if (info->name_error != NULL)
		return; /* the first problem is the one reported */
	info->name_error = reason;
	csr_printable(info->name_error_value, sizeof(info->name_error_value), value, len);
}

/* Appends a canonical name unless already present. */
static void
csr_add_name(struct csr_info *info, enum name_kind kind, const char *value)
{
	size_t i;

	for (i = 0; i < info->n_names; i++)
		if (info->names[i].kind == kind && strcmp(info->names[i].value, value) == 0)
			return;
	if (info->n_names == CSR_MAX_NAMES) {
		if (info->name_error == NULL) {
			info->name_error = "name_invalid";
			snprintf(info->name_error_value, sizeof(info->name_error_value),
			    "too many names (more than %d)", CSR_MAX_NAMES);
		}
		return;
	}
	info->names[info->n_names].kind = kind;
	snprintf(info->names[info->n_names].value, NAME_MAX_LEN, "%s", value);
	info->n_names++;
}

/* Copies an ASN1 string as a C string; false when it holds a NUL byte or
 * does not fit (a NUL inside a name is the classic certificate-spoofing
 * trick). */
static bool
csr_string(const unsigned char *data, int len, char *out, size_t outlen)
{
	if (data == NULL || len <= 0 || (size_t)len >= outlen || memchr(data, '\0', (size_t)len))
		return false;
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	return true;
}

/* A subject CN: a DNS name, an IP address or an e-mail address; anything
 * else is name_invalid (it would be unchecked text in the certificate). */
static void
csr_name_from_cn(struct csr_info *info, const X509_NAME_ENTRY *entry, bool first)
{
	unsigned char *utf8 = NULL;
	char text[NAME_MAX_LEN], canon[NAME_MAX_LEN];
	int len;

	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
	if (len < 0) {
		csr_name_error(info, "name_invalid", (const unsigned char *)"(unreadable CN)", 15);
		return;
	}
	if (first)
		csr_printable(info->common_name, sizeof(info->common_name), utf8, (size_t)len);
	if (!csr_string(utf8, len, text, sizeof(text))) {
		csr_name_error(info, "name_invalid", utf8, (size_t)len);
		goto out;
	}
	if (strchr(text, '@') != NULL) {
		if (name_email_canonical(text, canon, sizeof(canon)) == 0) {
			csr_add_name(info, NAME_EMAIL, canon);
			goto found;
		}
	} else if (name_ip_canonical(text, canon, sizeof(canon)) == 0) {
		csr_add_name(info, NAME_IP, canon);
		goto found;
	} else if (name_dns_canonical(text, canon, sizeof(canon)) == 0) {
		csr_add_name(info, NAME_DNS, canon);
		goto found;
	}
	csr_name_error(info, "name_invalid", utf8, (size_t)len);
	goto out;
found:
	if (first)
		snprintf(info->common_name, sizeof(info->common_name), "%s", canon);
out:
	OPENSSL_free(utf8);
}

static const char *
csr_gen_type_name(int type)
{
	switch (type) {
	case GEN_OTHERNAME:
		return "otherName";
	case GEN_X400:
		return "x400Address";
	case GEN_DIRNAME:
		return "directoryName";
	case GEN_EDIPARTY:
		return "ediPartyName";
	case GEN_URI:
		return "uniformResourceIdentifier";
	case GEN_RID:
		return "registeredID";
	}
	return "unknown";
}

static void
csr_name_from_san(struct csr_info *info, const GENERAL_NAME *gn)
{
	char text[NAME_MAX_LEN], canon[NAME_MAX_LEN], msg[NAME_MAX_LEN];
	const ASN1_STRING *s = NULL;
	const unsigned char *data = NULL;
	int len = 0;

	switch (gn->type) {
	case GEN_DNS:
	case GEN_EMAIL:
		s = gn->type == GEN_DNS ? gn->d.dNSName : gn->d.rfc822Name;
		data = ASN1_STRING_get0_data(s);
		len = ASN1_STRING_length(s);
		if (!csr_string(data, len, text, sizeof(text)) ||
		    (gn->type == GEN_DNS ? name_dns_canonical(text, canon, sizeof(canon))
		    : name_email_canonical(text, canon, sizeof(canon))) == -1) {
			csr_name_error(info, "name_invalid", data != NULL ? data : (const unsigned char *)"",
			    len > 0 ? (size_t)len : 0);
			return;
		}
		csr_add_name(info, gn->type == GEN_DNS ? NAME_DNS : NAME_EMAIL, canon);
		return;
	case GEN_IPADD:
		s = gn->d.iPAddress;
		len = ASN1_STRING_length(s);
		if ((len != 4 && len != 16) ||
		    inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), text,
		    sizeof(text)) == NULL ||
		    name_ip_canonical(text, canon, sizeof(canon)) == -1) {
			snprintf(msg, sizeof(msg), "iPAddress of %d bytes", len);
			csr_name_error(info, "name_invalid", (const unsigned char *)msg, strlen(msg));
			return;
		}
		csr_add_name(info, NAME_IP, canon);
		return;
	case GEN_URI:
		s = gn->d.uniformResourceIdentifier;
		snprintf(msg, sizeof(msg), "URI:%.*s", ASN1_STRING_length(s) > 200 ? 200 :
		    ASN1_STRING_length(s), (const char *)ASN1_STRING_get0_data(s));
		csr_name_error(info, "name_type_not_allowed", (const unsigned char *)msg,
		    strnlen(msg, sizeof(msg)));
		return;
	default:
		csr_name_error(info, "name_type_not_allowed",
		    (const unsigned char *)csr_gen_type_name(gn->type),
		    strlen(csr_gen_type_name(gn->type)));
		return;
	}
}

static void
csr_collect_names(struct csr_info *info)
{
	X509_NAME *subject = X509_REQ_get_subject_name(info->req);
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *gens = NULL;
	int idx = -1, crit = -1, i;
	bool first = true;

	/* Every CN, not just the first: no name may slip past the policy. */
	while ((idx = X509_NAME_get_index_by_NID(subject, NID_commonName, idx)) >= 0) {
		csr_name_from_cn(info, X509_NAME_get_entry(subject, idx), first);
		first = false;
	}
	exts = X509_REQ_get_extensions(info->req);
	if (exts == NULL) {
		/* Absent, or an extensionRequest that does not decode. */
		if (X509_REQ_get_attr_by_NID(info->req, NID_ext_req, -1) >= 0 ||
		    X509_REQ_get_attr_by_NID(info->req, NID_ms_ext_req, -1) >= 0)
			csr_name_error(info, "name_invalid",
			    (const unsigned char *)"unreadable extension request", 28);
		goto out;
	}
	gens = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL) {
		if (crit == -2)
			csr_name_error(info, "name_invalid",
			    (const unsigned char *)"more than one subjectAltName", 28);
		else if (crit >= 0)
			csr_name_error(info, "name_invalid",
			    (const unsigned char *)"unreadable subjectAltName", 25);
		goto out;
	}
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++)
		csr_name_from_san(info, sk_GENERAL_NAME_value(gens, i));
out:
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

/* ---------- the request ---------- */

static OSSL_LIB_CTX *csr_null_ctx;

static void
csr_null_ctx_init(void)
{
	OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();

	if (ctx == NULL || OSSL_PROVIDER_load(ctx, "null") == NULL) {
		log_ssl_warnx("csr_parse: a library context with the null provider "
		    "(requests are decoded the slow way)");
		OSSL_LIB_CTX_free(ctx);
		return;
	}
	csr_null_ctx = ctx;
}

/* The library context requests are decoded in: the "null" provider only, so
 * that decoding skips the subject key (see the top of the file). Made once,
 * kept for the life of the process. Should it not be made, NULL: the
 * default context, slower but the same result. */
static OSSL_LIB_CTX *
csr_parse_ctx(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if (pthread_once(&once, csr_null_ctx_init) != 0)
		return NULL;
	return csr_null_ctx;
}

/* The curves csr_ec_pubkey() makes keys on, and a key holding only each
 * one's parameters, made once: a request's key starts as a duplicate of one
 * (EVP_PKEY_dup(), a little cheaper than EVP_PKEY_copy_parameters() into a
 * new key). Setting the curve up by name for every request costs far more:
 * one EVP_PKEY_fromdata() with the group name and the point took 4 times
 * the instructions of dup + set1_encoded_public_key (callgrind, P-256). */
static const char *const csr_curves[] = {"P-256", "P-384", "P-521"};
static EVP_PKEY *csr_curve_params[3];

static void
csr_curve_params_init(void)
{
	for (size_t i = 0; i < 3; i++) {
		OSSL_PARAM params[2];
		EVP_PKEY_CTX *ctx = NULL;

		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
		    (char *)csr_curves[i], 0);
		params[1] = OSSL_PARAM_construct_end();
		if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
		    EVP_PKEY_fromdata_init(ctx) != 1 ||
		    EVP_PKEY_fromdata(ctx, &csr_curve_params[i], EVP_PKEY_KEY_PARAMETERS,
		    params) != 1)
			csr_curve_params[i] = NULL;
		EVP_PKEY_CTX_free(ctx);
	}
}

/* An EC public key on csr_curves[curve] from its encoded point (the
 * decoder's result, without the decoder): EVP_PKEY_set1_encoded_public_key()
 * decodes the point with EC_POINT_oct2point(), which refuses one off the
 * curve, as the decoder does, and keeps the form it came in (compressed
 * stays compressed in the certificate, as with d2i_PUBKEY). Returns a new
 * key, or NULL when the point does not decode. */
static EVP_PKEY *
csr_ec_pubkey(size_t curve, const unsigned char *point, int point_len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	EVP_PKEY *pkey = NULL;

	if (point == NULL || point_len < 1)
		return NULL;
	if (pthread_once(&once, csr_curve_params_init) != 0 || csr_curve_params[curve] == NULL) {
		log_ssl_warnx("csr_parse: the parameters of %s", csr_curves[curve]);
		return NULL;
	}
	if ((pkey = EVP_PKEY_dup(csr_curve_params[curve])) == NULL ||
	    EVP_PKEY_set1_encoded_public_key(pkey, point, (size_t)point_len) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	return pkey;
}

/* The field size in bytes of csr_curves[curve]. */
static const size_t csr_curve_field_len[] = {32, 48, 66};
static const unsigned csr_curve_key_type[] = {KEY_TYPE_P256, KEY_TYPE_P384, KEY_TYPE_P521};

/*
 * Whether an EC key csr_ec_pubkey() made from point is already known to pass
 * csr_key_ec(), so that its checks need not be run again: the key was made
 * on a named allowed curve (so csr_key_ec()'s group and encoding queries
 * can only answer that curve), and the point is in uncompressed (04 || x ||
 * y) or compressed (02/03 || x) form of exactly the curve's length. For
 * those forms EC_POINT_oct2point() has refused x or y >= p, and set the
 * point through EC_POINT_set_affine_coordinates(), which refuses a point
 * off the curve (compressed: y is computed from the curve equation, and a
 * missing square root refused), and an affine point is never infinity:
 * exactly what EVP_PKEY_public_check_quick() checks. Any other form that
 * decoded (infinity, a single 00 byte; hybrid 06/07) takes the general
 * checks. test_csr's test_point_encodings() pins the outcome for each form.
 */
static bool
csr_ec_point_checked(size_t curve, const unsigned char *point, int point_len)
{
	size_t flen = csr_curve_field_len[curve];

	if (point[0] == 0x04)
		return (size_t)point_len == 1 + 2 * flen;
	if (point[0] == 0x02 || point[0] == 0x03)
		return (size_t)point_len == 1 + flen;
	return false;
}

/* The request's public key as X509_REQ_get_pubkey() would give it in the
 * default library context: EC keys on the three allowed curves made
 * directly, every other key decoded from its SubjectPublicKeyInfo. Returns a
 * new key, or NULL when it does not decode. *known_type is set to the key's
 * type when csr_ec_point_checked() says the key needs no csr_key_classify(),
 * else to 0. */
static EVP_PKEY *
csr_pubkey(X509_REQ *req, unsigned *known_type)
{
	X509_PUBKEY *pub = X509_REQ_get_X509_PUBKEY(req);
	ASN1_OBJECT *alg = NULL;
	X509_ALGOR *algor = NULL;
	const unsigned char *point = NULL, *p = NULL;
	const void *pval = NULL;
	unsigned char *spki = NULL;
	EVP_PKEY *pkey = NULL;
	int ptype = V_ASN1_UNDEF, point_len = 0, spki_len;
	int curve = -1;

	*known_type = 0;
	if (pub == NULL || X509_PUBKEY_get0_param(&alg, &point, &point_len, &algor, pub) != 1)
		return NULL;
	if (OBJ_obj2nid(alg) == NID_X9_62_id_ecPublicKey) {
		X509_ALGOR_get0(NULL, &ptype, &pval, algor);
		if (ptype == V_ASN1_OBJECT) {
			switch (OBJ_obj2nid(pval)) {
			case NID_X9_62_prime256v1:
				curve = 0;
				break;
			case NID_secp384r1:
				curve = 1;
				break;
			case NID_secp521r1:
				curve = 2;
				break;
			}
		}
	}
	if (curve >= 0) {
		pkey = csr_ec_pubkey((size_t)curve, point, point_len);
		if (pkey != NULL && csr_ec_point_checked((size_t)curve, point, point_len))
			*known_type = csr_curve_key_type[curve];
		return pkey;
	}
	/* Anything else, rare and mostly refused later: the general path. */
	if ((spki_len = i2d_X509_PUBKEY(pub, &spki)) <= 0)
		return NULL;
	p = spki;
	pkey = d2i_PUBKEY_ex(NULL, &p, spki_len, NULL, NULL);
	if (pkey != NULL && p != spki + spki_len) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	OPENSSL_free(spki);
	return pkey;
}

void
csr_info_init(struct csr_info *info)
{
	memset(info, 0, offsetof(struct csr_info, names));
	info->n_names = 0;
	info->name_error = NULL;
	info->name_error_value[0] = '\0';
}

int
csr_parse(const void *data, size_t len, struct csr_info *info, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	const unsigned char *der = NULL, *p = NULL;
	OSSL_LIB_CTX *parse_ctx = NULL;
	unsigned known_type = 0;
	long der_len;
	int rc = -1;

	csr_info_init(info);
	csr_err(err, errlen, "");
	if (data == NULL || len == 0) {
		csr_err(err, errlen, "empty CSR");
		return -1;
	}
	if (len > CSR_MAX_INPUT) {
		csr_err(err, errlen, "CSR larger than 64 KiB");
		return -1;
	}
	if ((der_len = csr_to_der(data, len, &der, &buf, err, errlen)) < 0)
		goto out;
	parse_ctx = csr_parse_ctx();
	p = der;
	info->req = (X509_REQ *)ASN1_item_d2i_ex(NULL, &p, der_len, ASN1_ITEM_rptr(X509_REQ),
	    parse_ctx, NULL);
	if (info->req == NULL) {
		csr_err(err, errlen, "not a PKCS#10 certificate request");
		goto out;
	}
	if (p != der + der_len) {
		csr_err(err, errlen, "trailing bytes after the PKCS#10 request");
		goto out;
	}
	info->pkey = csr_pubkey(info->req, &known_type);
	if (info->pkey == NULL) {
		/* Parsed as PKCS#10, but the key does not decode (e.g. an EC
		 * point off the curve): a request with a refused key. */
		info->key_reject = csr_undecodable_key_reason(info->req);
		info->signature_ok = false;
	} else {
		/* the default context: the request's own cannot verify */
		info->signature_ok = X509_REQ_verify_ex(info->req, info->pkey, NULL, NULL) == 1;
		if (known_type != 0) {
			info->key_type = known_type;
			info->key_reject = NULL;
		} else
			info->key_type = csr_key_classify(info->pkey, &info->key_reject);
	}
	csr_collect_names(info);
	rc = 0;
out:
	if (rc == -1)
		csr_info_free(info);
	OPENSSL_free(buf);
	ERR_clear_error();
	return rc;
}

void
csr_info_free(struct csr_info *info)
{
	if (info == NULL)
		return;
	X509_REQ_free(info->req);
	EVP_PKEY_free(info->pkey);
	csr_info_init(info);
}
