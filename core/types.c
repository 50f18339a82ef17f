/*
 * types.c: the name tables of types.h. These strings are the words stored in
 * the database (see the CHECK constraints of 001_init.sql), used by the JSON
 * API and written to the logs; change one only with a migration.
 *
 * The bit-mask vocabularies map one bit to one name: a value with several
 * bits set (or none) has no name and *_name() returns NULL.
 */
#include <stddef.h>
#include <string.h>

#include "types.h"

struct types_entry {
	int value;
	const char *name;
};

static const struct types_entry types_cert_type[] = {
    {CERT_TYPE_SSL, "ssl"},
    {CERT_TYPE_CLIENT, "client"},
    {CERT_TYPE_CODE_SIGNING, "code_signing"},
    {CERT_TYPE_DEVICE, "device"},
    {0, NULL},
};

static const struct types_entry types_key_type[] = {
    {KEY_TYPE_RSA2048, "rsa2048"},
    {KEY_TYPE_RSA3072, "rsa3072"},
    {KEY_TYPE_RSA4096, "rsa4096"},
    {KEY_TYPE_P256, "p256"},
    {KEY_TYPE_P384, "p384"},
    {KEY_TYPE_P521, "p521"},
    {0, NULL},
};

static const struct types_entry types_key_usage[] = {
    {KEY_USAGE_DIGITAL_SIGNATURE, "digitalSignature"},
    {KEY_USAGE_NON_REPUDIATION, "nonRepudiation"},
    {KEY_USAGE_KEY_ENCIPHERMENT, "keyEncipherment"},
    {KEY_USAGE_KEY_AGREEMENT, "keyAgreement"},
    {0, NULL},
};

static const struct types_entry types_ext_key_usage[] = {
    {EKU_SERVER_AUTH, "serverAuth"},
    {EKU_CLIENT_AUTH, "clientAuth"},
    {EKU_CODE_SIGNING, "codeSigning"},
    {EKU_EMAIL_PROTECTION, "emailProtection"},
    {0, NULL},
};

static const struct types_entry types_cert_status[] = {
    {CERT_STATUS_REQUESTED, "requested"},
    {CERT_STATUS_APPROVED, "approved"},
    {CERT_STATUS_DECLINED, "declined"},
    {CERT_STATUS_ISSUED, "issued"},
    {CERT_STATUS_REVOKED, "revoked"},
    {CERT_STATUS_EXPIRED, "expired"},
    {0, NULL},
};

static const char *types_name(const struct types_entry *table, int value)
{
	for (; table->name != NULL; table++)
		if (table->value == value)
			return table->name;
	return NULL;
}

/* Exact, case-sensitive match: the database stores these exact words. */
static int types_parse(const struct types_entry *table, const char *name)
{
	if (name == NULL)
		return -1;
	for (; table->name != NULL; table++)
		if (strcmp(table->name, name) == 0)
			return table->value;
	return -1;
}

const char *cert_type_name(enum cert_type t)
{
	return types_name(types_cert_type, (int)t);
}

int cert_type_parse(const char *name)
{
	return types_parse(types_cert_type, name);
}

const char *key_type_name(enum key_type t)
{
	return types_name(types_key_type, (int)t);
}

int key_type_parse(const char *name)
{
	return types_parse(types_key_type, name);
}

const char *key_usage_name(enum key_usage u)
{
	return types_name(types_key_usage, (int)u);
}

int key_usage_parse(const char *name)
{
	return types_parse(types_key_usage, name);
}

const char *ext_key_usage_name(enum ext_key_usage u)
{
	return types_name(types_ext_key_usage, (int)u);
}

int ext_key_usage_parse(const char *name)
{
	return types_parse(types_ext_key_usage, name);
}

const char *cert_status_name(enum cert_status s)
{
	return types_name(types_cert_status, (int)s);
}

int cert_status_parse(const char *name)
{
	return types_parse(types_cert_status, name);
}
