/*
 * types.h: the small vocabularies shared by every layer, each with a name
 * table so that the database, the JSON API and the logs use the same words.
 */
#ifndef ENROLLD_TYPES_H
#define ENROLLD_TYPES_H

#include <stdbool.h>

/* Certificate types (bit mask, so a delegation or a role can hold several). */
enum cert_type {
	CERT_TYPE_SSL = 1 << 0,		 /* "ssl" */
	CERT_TYPE_CLIENT = 1 << 1,	 /* "client" */
	CERT_TYPE_CODE_SIGNING = 1 << 2, /* "code_signing" */
	CERT_TYPE_DEVICE = 1 << 3,	 /* "device" */
};

/* Subject key types (bit mask, for a profile's allowed set). */
enum key_type {
	KEY_TYPE_RSA2048 = 1 << 0, /* "rsa2048" */
	KEY_TYPE_RSA3072 = 1 << 1, /* "rsa3072" */
	KEY_TYPE_RSA4096 = 1 << 2, /* "rsa4096" */
	KEY_TYPE_P256 = 1 << 3,	   /* "p256" */
	KEY_TYPE_P384 = 1 << 4,	   /* "p384" */
	KEY_TYPE_P521 = 1 << 5,	   /* "p521" */
};

/* Key usage and extended key usage (bit masks, for a profile). */
enum key_usage {
	KEY_USAGE_DIGITAL_SIGNATURE = 1 << 0, /* "digitalSignature" */
	KEY_USAGE_NON_REPUDIATION = 1 << 1,   /* "nonRepudiation" */
	KEY_USAGE_KEY_ENCIPHERMENT = 1 << 2,  /* "keyEncipherment" */
	KEY_USAGE_KEY_AGREEMENT = 1 << 3,     /* "keyAgreement" */
};
enum ext_key_usage {
	EKU_SERVER_AUTH = 1 << 0,      /* "serverAuth" */
	EKU_CLIENT_AUTH = 1 << 1,      /* "clientAuth" */
	EKU_CODE_SIGNING = 1 << 2,     /* "codeSigning" */
	EKU_EMAIL_PROTECTION = 1 << 3, /* "emailProtection" */
};

/* Certificate life (the certificates.status column). */
enum cert_status {
	CERT_STATUS_REQUESTED,
	CERT_STATUS_APPROVED,
	CERT_STATUS_DECLINED,
	CERT_STATUS_ISSUED,
	CERT_STATUS_REVOKED,
	CERT_STATUS_EXPIRED,
	CERT_STATUS__MAX,
};

/* name <-> value; each returns NULL / -1 (or false) for unknown input. */
const char *cert_type_name(enum cert_type t);
int cert_type_parse(const char *name);		  /* -1 if unknown */
const char *key_type_name(enum key_type t);
int key_type_parse(const char *name);
const char *key_usage_name(enum key_usage u);
int key_usage_parse(const char *name);
const char *ext_key_usage_name(enum ext_key_usage u);
int ext_key_usage_parse(const char *name);
const char *cert_status_name(enum cert_status s);
int cert_status_parse(const char *name);

#endif
