/*
 * test_types.c: the name tables of core/types.h. Every value round-trips
 * through its name, the names are exactly the words the schema's CHECK
 * constraints accept, and unknown or combined inputs are refused.
 */
#include <stdio.h>
#include <string.h>

#include "types.h"

static int passed, failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (cond) {                                                                        \
			passed++;                                                                  \
		} else {                                                                           \
			failed++;                                                                  \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
		}                                                                                  \
	} while (0)

static int streq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void test_cert_type(void)
{
	static const struct {
		enum cert_type value;
		const char *name;
	} table[] = {
	    {CERT_TYPE_SSL, "ssl"},
	    {CERT_TYPE_CLIENT, "client"},
	    {CERT_TYPE_CODE_SIGNING, "code_signing"},
	    {CERT_TYPE_DEVICE, "device"},
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		CHECK(streq(cert_type_name(table[i].value), table[i].name));
		CHECK(cert_type_parse(table[i].name) == (int)table[i].value);
	}
	CHECK(cert_type_parse("SSL") == -1); /* exact words only */
	CHECK(cert_type_parse("code-signing") == -1);
	CHECK(cert_type_parse("") == -1);
	CHECK(cert_type_parse(NULL) == -1);
	CHECK(cert_type_name((enum cert_type)0) == NULL);
	CHECK(cert_type_name(CERT_TYPE_SSL | CERT_TYPE_CLIENT) == NULL);
}

static void test_key_type(void)
{
	static const struct {
		enum key_type value;
		const char *name;
	} table[] = {
	    {KEY_TYPE_RSA2048, "rsa2048"}, {KEY_TYPE_RSA3072, "rsa3072"},
	    {KEY_TYPE_RSA4096, "rsa4096"}, {KEY_TYPE_P256, "p256"},
	    {KEY_TYPE_P384, "p384"},       {KEY_TYPE_P521, "p521"},
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		CHECK(streq(key_type_name(table[i].value), table[i].name));
		CHECK(key_type_parse(table[i].name) == (int)table[i].value);
	}
	CHECK(key_type_parse("rsa1024") == -1);
	CHECK(key_type_parse("P-256") == -1);
	CHECK(key_type_parse("rsa2048 ") == -1);
	CHECK(key_type_name((enum key_type)(1 << 10)) == NULL);
}

static void test_key_usage(void)
{
	static const struct {
		enum key_usage value;
		const char *name;
	} table[] = {
	    {KEY_USAGE_DIGITAL_SIGNATURE, "digitalSignature"},
	    {KEY_USAGE_NON_REPUDIATION, "nonRepudiation"},
	    {KEY_USAGE_KEY_ENCIPHERMENT, "keyEncipherment"},
	    {KEY_USAGE_KEY_AGREEMENT, "keyAgreement"},
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		CHECK(streq(key_usage_name(table[i].value), table[i].name));
		CHECK(key_usage_parse(table[i].name) == (int)table[i].value);
	}
	CHECK(key_usage_parse("digitalsignature") == -1);
	CHECK(key_usage_parse("keyCertSign") == -1); /* CA-only usage */
	CHECK(key_usage_name(KEY_USAGE_DIGITAL_SIGNATURE | KEY_USAGE_KEY_AGREEMENT) == NULL);
}

static void test_ext_key_usage(void)
{
	static const struct {
		enum ext_key_usage value;
		const char *name;
	} table[] = {
	    {EKU_SERVER_AUTH, "serverAuth"},
	    {EKU_CLIENT_AUTH, "clientAuth"},
	    {EKU_CODE_SIGNING, "codeSigning"},
	    {EKU_EMAIL_PROTECTION, "emailProtection"},
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		CHECK(streq(ext_key_usage_name(table[i].value), table[i].name));
		CHECK(ext_key_usage_parse(table[i].name) == (int)table[i].value);
	}
	CHECK(ext_key_usage_parse("OCSPSigning") == -1);
	CHECK(ext_key_usage_parse("1.3.6.1.5.5.7.3.1") == -1);
	CHECK(ext_key_usage_name((enum ext_key_usage)0) == NULL);
}

static void test_cert_status(void)
{
	static const char *const names[CERT_STATUS__MAX] = {
	    [CERT_STATUS_REQUESTED] = "requested", [CERT_STATUS_APPROVED] = "approved",
	    [CERT_STATUS_DECLINED] = "declined",   [CERT_STATUS_ISSUED] = "issued",
	    [CERT_STATUS_REVOKED] = "revoked",     [CERT_STATUS_EXPIRED] = "expired",
	};

	for (int s = 0; s < CERT_STATUS__MAX; s++) {
		CHECK(streq(cert_status_name((enum cert_status)s), names[s]));
		CHECK(cert_status_parse(names[s]) == s);
	}
	CHECK(cert_status_name(CERT_STATUS__MAX) == NULL);
	CHECK(cert_status_name((enum cert_status) - 1) == NULL);
	CHECK(cert_status_parse("downloaded") == -1);
	CHECK(cert_status_parse("Issued") == -1);
	CHECK(cert_status_parse(NULL) == -1);
}

int main(void)
{
	test_cert_type();
	test_key_type();
	test_key_usage();
	test_ext_key_usage();
	test_cert_status();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
