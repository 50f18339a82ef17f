/*
 * ca.c: the private CA: bootstrap, certificates, CRLs.
 *
 * Files (state_dir/ca/, or the configured ca_* paths): root.pem, root.key,
 * issuing.pem, issuing.key, and tls.pem (leaf + issuing CA) / tls.key for the
 * listeners. When started as root, every file and directory made here is
 * chowned to cfg->user, to whom the daemon later drops.
 *
 * Who holds which key:
 *   - The CA keys never enter this process. The first-start bootstrap (key
 *     generation, root and issuing certificates, key files) runs in a
 *     short-lived forked child; afterwards this process loads only the
 *     public certificates. The signer processes (core/signer.c) read
 *     issuing.key themselves; root.key is used by nobody after bootstrap.
 *   - Certificates and CRLs are built here, completely, and sent to the
 *     signer as a well-formed Certificate / CertificateList with an empty
 *     signature: a certificate is encoded here around its to-be-signed part
 *     (ca_unsigned_der(), which names the CA's signature algorithm); a CRL
 *     is signed once with a throwaway Ed25519 "placeholder" key so that
 *     OpenSSL encodes it. The signer parses that DER strictly, re-signs it
 *     with the CA key (a CRL: replacing both signature algorithm fields and
 *     the signature; a certificate must name the CA's algorithm already,
 *     and only the outer one and the signature are replaced) and returns
 *     it. The placeholder key signs nothing
 *     anybody trusts. (Certificates skip it because an Ed25519 signature
 *     costs about three ECDSA P-256 signatures in OpenSSL 3.0.)
 *   - tls.key is this process's own TLS key (the listeners need it).
 * Every signed result is checked before it is returned, so a confused
 * signer cannot slip a bad certificate into the database: its DER must be
 * exactly what was sent, element by element, apart from the signature
 * algorithm (which must be the CA's), and the signature must be well formed
 * for the CA's key and verify with the issuing CA's key (ca_check_signed()),
 * for the reasons given at ca_sign_cert().
 *
 * Speed (OpenSSL 3.0): X509_set_pubkey() and d2i_X509() each build an
 * OSSL_ENCODER/OSSL_DECODER pipeline per call, which cost more than the
 * signature itself. So EC and RSA subject keys are put into the certificate
 * from their parameters (ca_set_pubkey()), and the answer is checked on the
 * DER rather than parsed back.
 *
 * Thread safety: after ca_open() the struct ca is read-only apart from the
 * signer's slot pool, which has its own lock, and the copying of the
 * verification template (verify_lock); the verify_fast table is read-only.
 */
#include "types.h"

/* enrolld's key usage bits (enum key_usage) differ from OpenSSL's KU_*
 * macros; these names keep the two apart where both are in use. */
static const unsigned ca_ku_digital_signature = KEY_USAGE_DIGITAL_SIGNATURE;
static const unsigned ca_ku_non_repudiation = KEY_USAGE_NON_REPUDIATION;
static const unsigned ca_ku_key_encipherment = KEY_USAGE_KEY_ENCIPHERMENT;
static const unsigned ca_ku_key_agreement = KEY_USAGE_KEY_AGREEMENT;

#include "ca.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "ecverify.h"
#include "log.h"
#include "names.h"
#include "signer.h"

#define CA_MAX_FILE (1024 * 1024)
#define CA_TLS_MAX_NAMES 32
#define CA_TLS_DAYS 365
#define CA_TLS_RENEW_DAYS 30
#define CA_MAX_ISSUE_NAMES 1000
#define CA_BACKDATE 60
#define CA_DAY 86400

struct ca {
	char dir[PATH_MAX];		/* state_dir/ca */
	char root_path[PATH_MAX];
	char root_key_path[PATH_MAX];	/* bootstrap only */
	char issuing_path[PATH_MAX];
	char issuing_key_path[PATH_MAX];
	char tls_cert_path[PATH_MAX];
	char tls_key_path[PATH_MAX];
	bool chown_files;		/* running as root: chown to uid/gid */
	uid_t uid;
	gid_t gid;
	X509 *root;
	X509 *issuing;
	ASN1_OCTET_STRING *issuer_skid;	/* keyid for AKI */
	time_t issuer_not_after;
	char *root_pem;
	char *issuing_pem;
	char *chain_pem;		/* issuing + root */
	EVP_PKEY *placeholder;		/* Ed25519; see the top of the file */
	EVP_MD *sha1;			/* for key identifiers */
	const EVP_MD *sig_md;		/* digest the signer uses (NULL: Ed25519) */
	int sig_nid;			/* its signature algorithm, e.g. ecdsa-with-SHA256 */
	int sig_param_type;		/* its AlgorithmIdentifier parameters: V_ASN1_NULL
					   for RSA (RFC 4055), else absent (RFC 5758, 8410) */
	int crl_days;
	struct signer *signer;
	/* the shape of a good signature, checked on every answer: */
	bool sig_ecdsa;			/* a DER ECDSA-Sig-Value, 0 < r, s < sig_order */
	BIGNUM *sig_order;		/* ECDSA: the issuing key's group order */
	int sig_size;			/* ECDSA: at most this many bytes, else exactly */
	/* EVP_DigestVerifyInit_ex() for the issuing key, done once: each
	 * answer is verified with a copy (ca_check_signed()), which costs a
	 * twentieth of that set-up (fetches, key context). OpenSSL does not
	 * promise that concurrent copies of one context are safe (the ACME
	 * account verifiers take a lock for theirs too), so workers copy it
	 * under verify_lock, held for the copy only. */
	EVP_MD_CTX *verify_template;
	pthread_mutex_t verify_lock;
	/* A P-256 issuing key signing with SHA-256 (the default) has a table
	 * for its public key (core/ecverify.h: built once here, ~25 ms of CPU
	 * and ~150 KB), which makes the check of each answer 37 us instead
	 * of 96. NULL for other keys, which keep verify_template only. */
	struct ecverify_p256 *verify_fast;
};

/* ---------- small helpers ---------- */

static bool
ca_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static int
ca_path(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	if (n < 0 || n >= PATH_MAX) {
		log_warnx("ca: path %s/%s too long", dir, name);
		return -1;
	}
	return 0;
}

/* ASN1_TIME -> time_t; -1 on error. */
static time_t
ca_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return (time_t)-1;
	return timegm(&tm);
}

/* Creates a directory (mode) if missing, chowned to the daemon user when
 * root. An existing directory is chowned too when `ours` (state_dir/ca is
 * wholly ours). */
static int
ca_mkdir(const struct ca *ca, const char *path, mode_t mode, bool ours)
{
	struct stat st;
	bool created = false;

	if (mkdir(path, mode) == 0)
		created = true;
	else if (errno != EEXIST) {
		log_warnx("ca: mkdir(%s): %s", path, strerror(errno));
		return -1;
	}
	if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
		log_warnx("ca: %s is not a directory", path);
		return -1;
	}
	if (ca->chown_files && (created || ours) && chown(path, ca->uid, ca->gid) == -1) {
		log_warnx("ca: chown(%s): %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Writes a file atomically (temporary file, fsync, rename) with exactly
 * `mode`, chowned to the daemon user when root. */
static int
ca_write_file(const struct ca *ca, const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX + 8];
	const unsigned char *p = data;
	size_t off = 0;
	ssize_t n;
	int fd = -1, rc = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	if (unlink(tmp) == -1 && errno != ENOENT) {
		log_warnx("ca: unlink(%s): %s", tmp, strerror(errno));
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)) == -1) {
		log_warnx("ca: open(%s): %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) == -1) {
		log_warnx("ca: fchmod(%s): %s", tmp, strerror(errno));
		goto out;
	}
	if (ca->chown_files && fchown(fd, ca->uid, ca->gid) == -1) {
		log_warnx("ca: fchown(%s): %s", tmp, strerror(errno));
		goto out;
	}
	while (off < len) {
		n = write(fd, p + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warnx("ca: write(%s): %s", tmp, strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1) {
		log_warnx("ca: fsync(%s): %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		log_warnx("ca: close(%s): %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		log_warnx("ca: rename(%s, %s): %s", tmp, path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	if (rc == -1)
		unlink(tmp);
	return rc;
}

/* Reads a whole (small) file. Returns a newly allocated buffer from the
 * OpenSSL secure heap when there is one (caller frees with
 * OPENSSL_secure_clear_free(buf, *len)), or NULL (logged unless missing and
 * quiet_missing). */
static unsigned char *
ca_read_file(const char *path, size_t *len, bool quiet_missing)
{
	unsigned char *buf = NULL;
	struct stat st;
	size_t off = 0;
	ssize_t n;
	int fd = -1;

	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (!(quiet_missing && errno == ENOENT))
			log_warnx("ca: open(%s): %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || st.st_size <= 0 || st.st_size > CA_MAX_FILE) {
		log_warnx("ca: %s: empty or larger than %d bytes", path, CA_MAX_FILE);
		goto fail;
	}
	if ((buf = OPENSSL_secure_malloc((size_t)st.st_size)) == NULL)
		goto fail;
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warnx("ca: read(%s): %s", path, n == 0 ? "short read" : strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	close(fd);
	*len = off;
	return buf;
fail:
	OPENSSL_secure_clear_free(buf, (size_t)(st.st_size > 0 ? st.st_size : 0));
	close(fd);
	return NULL;
}

/* The first certificate in a PEM file; newly allocated, caller frees. */
static X509 *
ca_load_cert(const char *path, bool quiet_missing)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *x = NULL;

	if ((buf = ca_read_file(path, &len, quiet_missing)) == NULL)
		return NULL;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) != NULL &&
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL)
		log_ssl_warnx("ca: PEM_read_bio_X509(%s)", path);
	BIO_free(bio);
	OPENSSL_secure_clear_free(buf, len);
	return x;
}

static int
ca_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* A PEM private key (TLS key; the root key in the bootstrap child); the file
 * bytes are wiped. Newly allocated, caller frees. */
static EVP_PKEY *
ca_load_key(const char *path, bool quiet_missing)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;

	if ((buf = ca_read_file(path, &len, quiet_missing)) == NULL)
		return NULL;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) != NULL &&
	    (key = PEM_read_bio_PrivateKey(bio, NULL, ca_no_passphrase, NULL)) == NULL)
		log_ssl_warnx("ca: PEM_read_bio_PrivateKey(%s)", path);
	BIO_free(bio);
	OPENSSL_secure_clear_free(buf, len);
	return key;
}

/* Writes a private key as PKCS#8 PEM, mode 0600, through a secure-memory
 * BIO that is wiped when freed. */
static int
ca_write_key(const struct ca *ca, const char *path, EVP_PKEY *key)
{
	BIO *bio = NULL;
	char *data = NULL;
	long len;
	int rc = -1;

	if ((bio = BIO_new(BIO_s_secmem())) == NULL ||
	    PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
		log_ssl_warnx("ca: PEM_write_bio_PrivateKey(%s)", path);
		goto out;
	}
	if ((len = BIO_get_mem_data(bio, &data)) <= 0)
		goto out;
	rc = ca_write_file(ca, path, data, (size_t)len, 0600);
out:
	BIO_free(bio);
	return rc;
}

/* PEM of one certificate; newly allocated (malloc), caller frees. */
static char *
ca_x509_pem(X509 *x)
{
	BIO *bio = NULL;
	char *data = NULL, *pem = NULL;
	long len;

	if ((bio = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(bio, x) != 1) {
		log_ssl_warnx("ca: PEM_write_bio_X509");
		goto out;
	}
	if ((len = BIO_get_mem_data(bio, &data)) <= 0)
		goto out;
	if ((pem = malloc((size_t)len + 1)) == NULL)
		goto out;
	memcpy(pem, data, (size_t)len);
	pem[len] = '\0';
out:
	BIO_free(bio);
	return pem;
}

/* Concatenation of two strings; newly allocated, caller frees. */
static char *
ca_concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s == NULL)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

/* Parses upper- or lower-case hex of a positive serial of at most 20
 * octets. Newly allocated, caller frees; NULL when invalid. */
static ASN1_INTEGER *
ca_serial_from_hex(const char *hex)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	size_t i, len;

	if (hex == NULL || (len = strlen(hex)) == 0 || len > 40)
		return NULL;
	for (i = 0; i < len; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'A' && hex[i] <= 'F') ||
		    (hex[i] >= 'a' && hex[i] <= 'f')))
			return NULL;
	if (BN_hex2bn(&bn, hex) != (int)len || BN_is_zero(bn) || BN_num_bytes(bn) > 20 ||
	    BN_num_bits(bn) > 159) /* the DER INTEGER must fit 20 octets */
		goto out;
	ai = BN_to_ASN1_INTEGER(bn, NULL);
out:
	BN_free(bn);
	return ai;
}

void
ca_new_serial(char out[41])
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char b[16];
	size_t i, n = 0;
	bool zero = true;

	do {
		if (RAND_bytes(b, sizeof(b)) != 1) {
			/* No randomness means no safe serials: stop rather
			 * than issue predictable ones. */
			log_ssl_warnx("ca_new_serial: RAND_bytes");
			abort();
		}
		b[0] &= 0x7f;
		for (i = 0; i < sizeof(b); i++)
			if (b[i] != 0)
				zero = false;
	} while (zero);
	for (i = 0; i < 2 * sizeof(b); i++) {
		unsigned nib = (i % 2 == 0) ? b[i / 2] >> 4 : b[i / 2] & 0x0f;
		if (n == 0 && nib == 0)
			continue; /* no leading zeros */
		out[n++] = hex[nib];
	}
	out[n] = '\0';
}

/* Adds one extension from its decoded value. */
static int
ca_add_ext(X509 *x, int nid, int crit, void *value)
{
	if (X509_add1_ext_i2d(x, nid, value, crit, X509V3_ADD_DEFAULT) != 1) {
		log_ssl_warnx("ca: X509_add1_ext_i2d(%s)", OBJ_nid2sn(nid));
		return -1;
	}
	return 0;
}

/* Adds one extension from its OpenSSL config text (fixed strings only:
 * the CA certificates). */
static int
ca_add_ext_conf(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int rc = -1;

	if (ext == NULL || X509_add_ext(x, ext, -1) != 1)
		log_ssl_warnx("ca: X509V3_EXT_conf_nid(%s, %s)", OBJ_nid2sn(nid), value);
	else
		rc = 0;
	X509_EXTENSION_free(ext);
	return rc;
}

/* The digest a CA key signs with (as the signer chooses it). */
static const EVP_MD *
ca_digest(EVP_PKEY *key)
{
	int bits = EVP_PKEY_get_bits(key);

	if (EVP_PKEY_is_a(key, "EC"))
		return bits > 384 ? EVP_sha512() : bits > 256 ? EVP_sha384() : EVP_sha256();
	if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
		return NULL;
	return EVP_sha256();
}

/* ---------- bootstrap (runs in a forked child) ---------- */

static EVP_PKEY *
ca_keygen(const char *type)
{
	EVP_PKEY *key = NULL;

	if (type[0] == '\0' || strcmp(type, "ec-p256") == 0)
		key = EVP_EC_gen("P-256");
	else if (strcmp(type, "ec-p384") == 0)
		key = EVP_EC_gen("P-384");
	else if (strcmp(type, "rsa-2048") == 0)
		key = EVP_RSA_gen(2048);
	else if (strcmp(type, "rsa-3072") == 0)
		key = EVP_RSA_gen(3072);
	else if (strcmp(type, "rsa-4096") == 0)
		key = EVP_RSA_gen(4096);
	else {
		log_warnx("ca: ca_key_type \"%s\" is not ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096",
		    type);
		return NULL;
	}
	if (key == NULL)
		log_ssl_warnx("ca: key generation (%s)", type[0] ? type : "ec-p256");
	return key;
}

/* A CA certificate: the root (issuer NULL: self-signed) or the issuing CA
 * (pathlen 0, AKI, validity capped at the root's). Newly allocated. */
static X509 *
ca_make_ca_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int days)
{
	X509 *x = NULL;
	X509_NAME *name = NULL;
	ASN1_INTEGER *serial = NULL;
	X509V3_CTX ctx;
	char serial_hex[41];
	time_t now = time(NULL), not_after, cap;
	bool ok = false;

	ca_new_serial(serial_hex);
	if ((x = X509_new()) == NULL || (name = X509_NAME_new()) == NULL ||
	    (serial = ca_serial_from_hex(serial_hex)) == NULL)
		goto out;
	if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1)
		goto out;
	not_after = now + (time_t)(days > 0 ? days : 1) * CA_DAY;
	if (issuer != NULL && (cap = ca_asn1_time(X509_get0_notAfter(issuer))) != (time_t)-1 &&
	    cap < not_after)
		not_after = cap;
	if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_serialNumber(x, serial) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), now - CA_BACKDATE) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), not_after) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto out;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	if (ca_add_ext_conf(x, &ctx, NID_basic_constraints,
	    issuer != NULL ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE") == -1 ||
	    ca_add_ext_conf(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") == -1 ||
	    ca_add_ext_conf(x, &ctx, NID_subject_key_identifier, "hash") == -1)
		goto out;
	if (issuer != NULL &&
	    ca_add_ext_conf(x, &ctx, NID_authority_key_identifier, "keyid:always") == -1)
		goto out;
	if (X509_sign(x, issuer_key, ca_digest(issuer_key)) <= 0) {
		log_ssl_warnx("ca: X509_sign(%s)", cn);
		goto out;
	}
	ok = true;
out:
	if (!ok) {
		log_ssl_warnx("ca: building the certificate \"%s\"", cn);
		X509_free(x);
		x = NULL;
	}
	X509_NAME_free(name);
	ASN1_INTEGER_free(serial);
	return x;
}

static int
ca_write_cert(const struct ca *ca, const char *path, X509 *x)
{
	char *pem = ca_x509_pem(x);
	int rc = -1;

	if (pem != NULL)
		rc = ca_write_file(ca, path, pem, strlen(pem), 0644);
	free(pem);
	return rc;
}

/* Creates what is missing of root + issuing CA. Runs in the bootstrap child,
 * whose memory (with the keys) disappears when it exits. */
static int
ca_bootstrap_run(const struct ca *ca, const struct enrolld_config *cfg)
{
	EVP_PKEY *root_key = NULL, *issuing_key = NULL;
	X509 *root = NULL, *issuing = NULL;
	int rc = -1;

	if (ca_exists(ca->root_path) && ca_exists(ca->root_key_path)) {
		/* A root from an interrupted bootstrap: keep it. */
		if ((root = ca_load_cert(ca->root_path, false)) == NULL ||
		    (root_key = ca_load_key(ca->root_key_path, false)) == NULL)
			goto out;
		if (X509_check_private_key(root, root_key) != 1) {
			log_ssl_warnx("ca: %s does not match %s", ca->root_key_path, ca->root_path);
			goto out;
		}
	} else if (ca_exists(ca->root_path)) {
		log_warnx("ca: %s exists but %s does not: cannot create an issuing CA",
		    ca->root_path, ca->root_key_path);
		goto out;
	} else {
		if ((root_key = ca_keygen(cfg->ca_key_type)) == NULL ||
		    (root = ca_make_ca_cert("enrolld Root CA", root_key, NULL, root_key,
		    cfg->ca_root_days)) == NULL)
			goto out;
		if (ca_write_key(ca, ca->root_key_path, root_key) == -1 ||
		    ca_write_cert(ca, ca->root_path, root) == -1)
			goto out;
		log_info("ca: created root CA %s (key %s)", ca->root_path, ca->root_key_path);
	}
	if ((issuing_key = ca_keygen(cfg->ca_key_type)) == NULL ||
	    (issuing = ca_make_ca_cert("enrolld Issuing CA 1", issuing_key, root, root_key,
	    cfg->ca_issuing_days)) == NULL)
		goto out;
	if (ca_write_key(ca, ca->issuing_key_path, issuing_key) == -1 ||
	    ca_write_cert(ca, ca->issuing_path, issuing) == -1)
		goto out;
	log_info("ca: created issuing CA %s (key %s)", ca->issuing_path, ca->issuing_key_path);
	rc = 0;
out:
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(issuing_key);
	X509_free(root);
	X509_free(issuing);
	return rc;
}

/* Runs ca_bootstrap_run() in a child so that the CA keys never live in this
 * process's memory. */
static int
ca_bootstrap(const struct ca *ca, const struct enrolld_config *cfg)
{
	pid_t pid, r;
	int status = 0;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		log_warnx("ca: fork (bootstrap): %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		_exit(ca_bootstrap_run(ca, cfg) == 0 ? 0 : 1);
	}
	do
		r = waitpid(pid, &status, 0);
	while (r == -1 && errno == EINTR);
	if (r != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_warnx("ca: bootstrapping the CA in %s failed", ca->dir);
		return -1;
	}
	return 0;
}

/* ---------- certificates ---------- */

/* Subject from the params, in the usual order, into x's own (empty) subject
 * name: building it apart and setting it would copy it. Fields NULL or ""
 * are left out. Returns 0 or -1 (logged). */
static int
ca_set_subject(X509 *x, const struct ca_issue_params *p)
{
	const struct {
		int nid;
		const char *value;
	} parts[] = {
		{ NID_countryName, p->c },
		{ NID_stateOrProvinceName, p->st },
		{ NID_localityName, p->l },
		{ NID_organizationName, p->o },
		{ NID_organizationalUnitName, p->ou },
		{ NID_commonName, p->cn },
	};
	X509_NAME *name = X509_get_subject_name(x);
	size_t i;

	if (name == NULL || X509_NAME_entry_count(name) != 0)
		return -1;
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (parts[i].value == NULL || parts[i].value[0] == '\0')
			continue;
		if (X509_NAME_add_entry_by_NID(name, parts[i].nid, MBSTRING_UTF8,
		    (const unsigned char *)parts[i].value, -1, -1, 0) != 1) {
			log_ssl_warnx("ca_issue: subject %s \"%s\"", OBJ_nid2sn(parts[i].nid),
			    parts[i].value);
			return -1;
		}
	}
	return 0;
}

/* GENERAL_NAME of the given type holding an IA5String / octets. */
static GENERAL_NAME *
ca_general_name(int type, const void *data, int len)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_STRING *s = ASN1_STRING_type_new(type == GEN_IPADD ? V_ASN1_OCTET_STRING : V_ASN1_IA5STRING);

	if (gn == NULL || s == NULL || ASN1_STRING_set(s, data, len) != 1) {
		GENERAL_NAME_free(gn);
		ASN1_STRING_free(s);
		return NULL;
	}
	GENERAL_NAME_set0_value(gn, type, s);
	return gn;
}

/* subjectAltName from the request names. Newly allocated. */
static GENERAL_NAMES *
ca_san(const struct req_name *names, size_t n)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = NULL;
	unsigned char addr[16];
	size_t i;

	if (gens == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		gn = NULL;
		switch (names[i].kind) {
		case NAME_DNS:
			gn = ca_general_name(GEN_DNS, names[i].value, -1);
			break;
		case NAME_EMAIL:
			gn = ca_general_name(GEN_EMAIL, names[i].value, -1);
			break;
		case NAME_IP:
			if (inet_pton(AF_INET, names[i].value, addr) == 1)
				gn = ca_general_name(GEN_IPADD, addr, 4);
			else if (inet_pton(AF_INET6, names[i].value, addr) == 1)
				gn = ca_general_name(GEN_IPADD, addr, 16);
			else
				log_warnx("ca_issue: \"%s\" is not an IP address", names[i].value);
			break;
		}
		if (gn == NULL || sk_GENERAL_NAME_push(gens, gn) == 0) {
			GENERAL_NAME_free(gn);
			GENERAL_NAMES_free(gens);
			return NULL;
		}
	}
	return gens;
}

static int
ca_add_key_usage(X509 *x, unsigned ku)
{
	ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
	int rc = -1;

	/* RFC 5280 4.2.1.3 bit numbers. */
	if (bits == NULL ||
	    ((ku & ca_ku_digital_signature) && !ASN1_BIT_STRING_set_bit(bits, 0, 1)) ||
	    ((ku & ca_ku_non_repudiation) && !ASN1_BIT_STRING_set_bit(bits, 1, 1)) ||
	    ((ku & ca_ku_key_encipherment) && !ASN1_BIT_STRING_set_bit(bits, 2, 1)) ||
	    ((ku & ca_ku_key_agreement) && !ASN1_BIT_STRING_set_bit(bits, 4, 1)))
		goto out;
	rc = ca_add_ext(x, NID_key_usage, 1, bits);
out:
	ASN1_BIT_STRING_free(bits);
	return rc;
}

static int
ca_add_ext_key_usage(X509 *x, unsigned eku)
{
	const struct {
		unsigned bit;
		int nid;
	} map[] = {
		{ EKU_SERVER_AUTH, NID_server_auth },
		{ EKU_CLIENT_AUTH, NID_client_auth },
		{ EKU_CODE_SIGNING, NID_code_sign },
		{ EKU_EMAIL_PROTECTION, NID_email_protect },
	};
	EXTENDED_KEY_USAGE *ekus = sk_ASN1_OBJECT_new_null();
	size_t i;
	int rc = -1;

	if (ekus == NULL)
		return -1;
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if ((eku & map[i].bit) && sk_ASN1_OBJECT_push(ekus, OBJ_nid2obj(map[i].nid)) == 0)
			goto out;
	rc = ca_add_ext(x, NID_ext_key_usage, 0, ekus);
out:
	sk_ASN1_OBJECT_free(ekus); /* the objects are static */
	return rc;
}

static int
ca_add_crl_dp(X509 *x, const char *url)
{
	CRL_DIST_POINTS *dps = sk_DIST_POINT_new_null();
	DIST_POINT *dp = NULL;
	GENERAL_NAME *gn = NULL;
	int rc = -1;

	if (dps == NULL || (dp = DIST_POINT_new()) == NULL ||
	    (dp->distpoint = DIST_POINT_NAME_new()) == NULL ||
	    (dp->distpoint->name.fullname = GENERAL_NAMES_new()) == NULL)
		goto out;
	dp->distpoint->type = 0; /* fullName */
	if ((gn = ca_general_name(GEN_URI, url, -1)) == NULL ||
	    sk_GENERAL_NAME_push(dp->distpoint->name.fullname, gn) == 0) {
		GENERAL_NAME_free(gn);
		goto out;
	}
	if (sk_DIST_POINT_push(dps, dp) == 0)
		goto out;
	dp = NULL;
	rc = ca_add_ext(x, NID_crl_distribution_points, 0, dps);
out:
	DIST_POINT_free(dp);
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	return rc;
}

/* SHA-1 of the subject public key BIT STRING (RFC 5280 4.2.1.2 method 1).
 * Newly allocated. */
static ASN1_OCTET_STRING *
ca_key_id(const struct ca *ca, X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	ASN1_OCTET_STRING *id = NULL;

	if (X509_pubkey_digest(x, ca->sha1, md, &len) != 1)
		return NULL;
	if ((id = ASN1_OCTET_STRING_new()) == NULL || ASN1_OCTET_STRING_set(id, md, (int)len) != 1) {
		ASN1_OCTET_STRING_free(id);
		return NULL;
	}
	return id;
}

/* Copies from (the SubjectPublicKeyInfo key was made from) into spki when
 * it is an EC key on a named curve and key is an EC key: the curve's OID
 * and the point as encoded there, the same bytes ca_set_pubkey() would
 * encode from key, without the point conversion (a field inversion) and
 * parameter look-ups. RSA keys are not copied: their bits hold DER
 * (RSAPublicKey) that is re-encoded from the key, so that the certificate
 * is DER whatever the request held. Returns 0, or -1 when from is
 * anything else (nothing changed). */
static int
ca_copy_spki(X509_PUBKEY *spki, const X509_PUBKEY *from, EVP_PKEY *key)
{
	ASN1_OBJECT *alg = NULL;
	X509_ALGOR *algor = NULL;
	const unsigned char *bits = NULL;
	const void *pval = NULL;
	unsigned char *copy = NULL;
	int bits_len = 0, ptype = V_ASN1_UNDEF, curve = NID_undef;

	if (X509_PUBKEY_get0_param(&alg, &bits, &bits_len, &algor, from) != 1 || bits == NULL ||
	    bits_len <= 0)
		return -1;
	X509_ALGOR_get0(NULL, &ptype, &pval, algor);
	if (OBJ_obj2nid(alg) == NID_X9_62_id_ecPublicKey && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
	    ptype == V_ASN1_OBJECT && (curve = OBJ_obj2nid(pval)) != NID_undef) {
		if ((copy = OPENSSL_memdup(bits, (size_t)bits_len)) == NULL ||
		    X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
		    OBJ_nid2obj(curve), copy, bits_len) != 1) {
			OPENSSL_free(copy);
			return -1;
		}
		return 0;
	}
	return -1;
}

/* Puts key into x's SubjectPublicKeyInfo: copied from `from` when given
 * and it is EC (ca_copy_spki()); else EC keys on a named curve and RSA
 * keys are encoded here from their parameters (see the top of the file for
 * why); other keys go through X509_set_pubkey(). */
static int
ca_set_pubkey(X509 *x, EVP_PKEY *key, const X509_PUBKEY *from)
{
	X509_PUBKEY *spki = X509_get_X509_PUBKEY(x);
	char group[64], encoding[32];
	unsigned char point[1024], *enc = NULL, *w = NULL;
	size_t len = 0;
	BIGNUM *n = NULL, *e = NULL;
	ASN1_INTEGER *ai_n = NULL, *ai_e = NULL;
	int curve = NID_undef, content, total, rc = -1;

	if (from != NULL && ca_copy_spki(spki, from, key) == 0)
		return 0;
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
	    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, encoding,
	    sizeof(encoding), NULL) == 1 && strcmp(encoding, OSSL_PKEY_EC_ENCODING_GROUP) == 0 &&
	    EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) == 1 &&
	    (curve = OBJ_txt2nid(group)) != NID_undef) {
		/* One call into a buffer big enough for any curve: each call
		 * converts the point to affine form again (a field inversion). */
		if (EVP_PKEY_get_octet_string_param(
		        key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &len) != 1 ||
		    len == 0 || len > sizeof(point) || (enc = OPENSSL_memdup(point, len)) == NULL ||
		    X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
		    OBJ_nid2obj(curve), enc, (int)len) != 1)
			goto out;
		enc = NULL; /* owned by spki now */
		rc = 0;
	} else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		/* RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } */
		if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
		    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1 ||
		    (ai_n = BN_to_ASN1_INTEGER(n, NULL)) == NULL ||
		    (ai_e = BN_to_ASN1_INTEGER(e, NULL)) == NULL)
			goto out;
		content = i2d_ASN1_INTEGER(ai_n, NULL) + i2d_ASN1_INTEGER(ai_e, NULL);
		if (content <= 0 || (total = ASN1_object_size(1, content, V_ASN1_SEQUENCE)) <= 0 ||
		    (enc = OPENSSL_malloc((size_t)total)) == NULL)
			goto out;
		w = enc;
		ASN1_put_object(&w, 1, content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
		if (i2d_ASN1_INTEGER(ai_n, &w) <= 0 || i2d_ASN1_INTEGER(ai_e, &w) <= 0 ||
		    w != enc + total ||
		    X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, NULL, enc,
		    total) != 1)
			goto out;
		enc = NULL;
		rc = 0;
	} else
		rc = X509_set_pubkey(x, key) == 1 ? 0 : -1;
out:
	if (rc == -1)
		log_ssl_warnx("ca_issue: setting the subject public key");
	OPENSSL_free(enc);
	BN_free(n);
	BN_free(e);
	ASN1_INTEGER_free(ai_n);
	ASN1_INTEGER_free(ai_e);
	return rc;
}

/* One DER element (tag, length, value) at *p before end: *tlv and *tlv_len
 * cover all of it, *content its value; *p moves past it. Definite lengths
 * only. Returns 0 or -1. */
static int
ca_der_next(const unsigned char **p, const unsigned char *end, const unsigned char **tlv,
    size_t *tlv_len, const unsigned char **content)
{
	const unsigned char *q = *p;
	long len = 0;
	int tag, xclass, r;

	if (q >= end)
		return -1;
	r = ASN1_get_object(&q, &len, &tag, &xclass, (long)(end - q));
	if ((r & 0x80) || (r & 0x01) || len < 0 || len > end - q)
		return -1;
	*tlv = *p;
	*tlv_len = (size_t)(q - *p) + (size_t)len;
	*content = q;
	*p = q + len;
	return 0;
}

/* Splits a signed object SEQUENCE { tbs, algorithm, signature } with no
 * bytes before, between or after. */
static int
ca_der_split(const unsigned char *der, size_t len, const unsigned char **tbs, size_t *tbs_len,
    const unsigned char **alg, size_t *alg_len, const unsigned char **sig, size_t *sig_len)
{
	const unsigned char *p = der, *end = der + len, *outer = NULL, *content = NULL, *c = NULL;
	size_t outer_len = 0;

	if (ca_der_next(&p, end, &outer, &outer_len, &content) == -1 || p != end ||
	    outer[0] != 0x30)
		return -1;
	p = content;
	if (ca_der_next(&p, end, tbs, tbs_len, &c) == -1 || (*tbs)[0] != 0x30 ||
	    ca_der_next(&p, end, alg, alg_len, &c) == -1 || (*alg)[0] != 0x30 ||
	    ca_der_next(&p, end, sig, sig_len, &c) == -1 || (*sig)[0] != 0x03 || p != end)
		return -1;
	return 0;
}

/* Whether sig (the value of the signature BIT STRING) has the shape of a
 * signature by the issuing CA's key: for ECDSA one DER ECDSA-Sig-Value with
 * 0 < r, s < n, nothing after it; for other keys exactly the key's size. */
static bool
ca_signature_well_formed(const struct ca *ca, const unsigned char *sig, size_t len)
{
	const unsigned char *p = sig;
	const BIGNUM *r = NULL, *s = NULL;
	ECDSA_SIG *es = NULL;
	bool ok;

	if (!ca->sig_ecdsa)
		return len == (size_t)ca->sig_size;
	if (len == 0 || len > (size_t)ca->sig_size ||
	    (es = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL)
		return false;
	ECDSA_SIG_get0(es, &r, &s);
	ok = p == sig + len && r != NULL && s != NULL && !BN_is_zero(r) && !BN_is_zero(s) &&
	    !BN_is_negative(r) && !BN_is_negative(s) && (ca->sig_order == NULL ||
	    (BN_cmp(r, ca->sig_order) < 0 && BN_cmp(s, ca->sig_order) < 0));
	ECDSA_SIG_free(es);
	return ok;
}

/* The signature sig (DER ECDSA-Sig-Value) of tbs checked with the issuing
 * key's table: 1 valid, 0 invalid, -1 cannot tell here (no table, or an
 * error): then EVP_DigestVerify() decides. */
static int
ca_verify_fast(const struct ca *ca, const unsigned char *sig, size_t sig_len,
    const unsigned char *tbs, size_t tbs_len)
{
	unsigned char digest[SHA256_DIGEST_LENGTH], r[32], s[32], *der = NULL;
	const unsigned char *p = sig;
	const BIGNUM *br = NULL, *bs = NULL;
	ECDSA_SIG *es = NULL;
	int rc = -1, der_len;

	if (ca->verify_fast == NULL)
		return -1;
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len)) != NULL && p == sig + sig_len) {
		/* DER only, as OpenSSL's own ECDSA verification insists: the
		 * value must be exactly its re-encoding (EVP_DigestVerify()
		 * refuses any other as invalid; so does this check) */
		der_len = i2d_ECDSA_SIG(es, &der);
		if (der_len > 0 && ((size_t)der_len != sig_len || memcmp(der, sig, sig_len) != 0))
			rc = 0;
		else if (der_len > 0) {
			ECDSA_SIG_get0(es, &br, &bs);
			if (BN_bn2binpad(br, r, 32) == 32 && BN_bn2binpad(bs, s, 32) == 32 &&
			    SHA256(tbs, tbs_len, digest) != NULL)
				rc = ecverify_p256_verify(ca->verify_fast, digest, r, s);
		}
	}
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	if (rc == -1)
		ERR_clear_error();
	return rc;
}

/* Checks the signer's answer against what was sent: the same to-be-signed
 * elements in the same order, except the one at sigalg_index (the
 * signature algorithm: 2 in a certificate, 1 in a v2 CRL), which must be
 * the CA's algorithm and equal the outer one; a signature of the right
 * shape (ca_signature_well_formed()) that verifies with the issuing CA's
 * key. Returns 0 or -1 (logged). */
static int
ca_check_signed(struct ca *ca, const char *what, const unsigned char *sent,
    size_t sent_len, const unsigned char *got, size_t got_len, int sigalg_index)
{
	const unsigned char *s_tbs, *s_alg, *s_sig, *g_tbs, *g_alg, *g_sig;
	const unsigned char *sp, *gp, *s_end, *g_end, *s_el, *g_el, *c, *tbs_alg = NULL;
	const unsigned char *s_content = NULL, *g_content = NULL;
	size_t s_tbs_len, s_alg_len, s_sig_len, g_tbs_len, g_alg_len, g_sig_len, s_el_len, g_el_len;
	size_t tbs_alg_len = 0;
	X509_ALGOR *algor = NULL;
	const unsigned char *ap = NULL;
	EVP_MD_CTX *mctx = NULL;
	const char *why = NULL;
	int i, rc = -1;

	if (ca_der_split(sent, sent_len, &s_tbs, &s_tbs_len, &s_alg, &s_alg_len, &s_sig,
	    &s_sig_len) == -1 || ca_der_split(got, got_len, &g_tbs, &g_tbs_len, &g_alg, &g_alg_len,
	    &g_sig, &g_sig_len) == -1) {
		why = "not one complete signed object";
		goto out;
	}
	/* Walk the elements of both to-be-signed SEQUENCEs in step. */
	s_end = s_tbs + s_tbs_len;
	g_end = g_tbs + g_tbs_len;
	sp = s_tbs;
	gp = g_tbs;
	if (ca_der_next(&sp, s_end, &s_el, &s_el_len, &s_content) == -1 ||
	    ca_der_next(&gp, g_end, &g_el, &g_el_len, &g_content) == -1)
		goto out;
	sp = s_content;
	gp = g_content;
	for (i = 0; sp < s_end || gp < g_end; i++) {
		if (ca_der_next(&sp, s_end, &s_el, &s_el_len, &c) == -1 ||
		    ca_der_next(&gp, g_end, &g_el, &g_el_len, &c) == -1) {
			why = "different structure";
			goto out;
		}
		if (i == sigalg_index) {
			tbs_alg = g_el;
			tbs_alg_len = g_el_len;
		} else if (s_el_len != g_el_len || memcmp(s_el, g_el, s_el_len) != 0) {
			why = "content differs from the request";
			goto out;
		}
	}
	if (tbs_alg == NULL || tbs_alg_len != g_alg_len || memcmp(tbs_alg, g_alg, g_alg_len) != 0) {
		why = "inner and outer signature algorithms differ";
		goto out;
	}
	ap = g_alg;
	if ((algor = d2i_X509_ALGOR(NULL, &ap, (long)g_alg_len)) == NULL ||
	    OBJ_obj2nid(algor->algorithm) != ca->sig_nid) {
		why = "not the CA's signature algorithm";
		goto out;
	}
	/* BIT STRING: skip tag/length; the first value byte (unused bits)
	 * must be 0. */
	{
		const unsigned char *q = g_sig, *val = NULL, *t = NULL;
		size_t tl = 0;
		int copied = 0, fast;

		if (ca_der_next(&q, g_sig + g_sig_len, &t, &tl, &val) == -1 || val >= g_sig + g_sig_len ||
		    val[0] != 0 ||
		    !ca_signature_well_formed(ca, val + 1, (size_t)(g_sig + g_sig_len - val - 1))) {
			why = "malformed signature";
			goto out;
		}
		fast = ca_verify_fast(ca, val + 1, (size_t)(g_sig + g_sig_len - val - 1), g_tbs,
		    g_tbs_len);
		if (fast == 0) {
			why = "signature does not verify with the issuing CA's key";
			goto out;
		}
		if (fast == -1 && (mctx = EVP_MD_CTX_new()) != NULL) {
			pthread_mutex_lock(&ca->verify_lock);
			copied = EVP_MD_CTX_copy_ex(mctx, ca->verify_template);
			pthread_mutex_unlock(&ca->verify_lock);
		}
		if (fast == -1 && (copied != 1 ||
		    EVP_DigestVerify(mctx, val + 1, (size_t)(g_sig + g_sig_len - val - 1), g_tbs,
		    g_tbs_len) != 1)) {
			why = "signature does not verify with the issuing CA's key";
			goto out;
		}
	}
	rc = 0;
out:
	if (rc == -1)
		log_ssl_warnx("%s: the signer's answer does not check out: %s", what,
		    why ? why : "malformed");
	X509_ALGOR_free(algor);
	EVP_MD_CTX_free(mctx);
	return rc;
}

/* Builds the complete, still unsigned leaf certificate. Newly allocated. */
static X509 *
ca_build_cert(const struct ca *ca, const struct ca_issue_params *p, time_t *nb, time_t *na)
{
	X509 *x = NULL;
	ASN1_INTEGER *serial = NULL;
	BASIC_CONSTRAINTS *bc = NULL;
	ASN1_OCTET_STRING *skid = NULL;
	AUTHORITY_KEYID *akid = NULL;
	GENERAL_NAMES *san = NULL;
	time_t now = time(NULL), not_after;
	bool ok = false;

	if (p->subject_key == NULL || p->term_days <= 0 || p->n_names > CA_MAX_ISSUE_NAMES ||
	    (p->n_names > 0 && p->names == NULL)) {
		log_warnx("ca_issue: bad parameters (key %s, term %d days, %zu names)",
		    p->subject_key ? "set" : "missing", p->term_days, p->n_names);
		return NULL;
	}
	if ((serial = ca_serial_from_hex(p->serial_hex)) == NULL) {
		log_warnx("ca_issue: serial \"%s\" is not positive hex of at most 20 octets",
		    p->serial_hex ? p->serial_hex : "(null)");
		return NULL;
	}
	not_after = now + (time_t)p->term_days * CA_DAY;
	if (not_after > ca->issuer_not_after)
		not_after = ca->issuer_not_after;
	if (not_after <= now) {
		log_warnx("ca_issue: the issuing CA has expired");
		goto out;
	}
	if ((x = X509_new()) == NULL || ca_set_subject(x, p) == -1)
		goto out;
	if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_serialNumber(x, serial) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca->issuing)) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), now - CA_BACKDATE) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), not_after) == NULL) {
		log_ssl_warnx("ca_issue: setting certificate fields");
		goto out;
	}
	if (ca_set_pubkey(x, p->subject_key, p->subject_spki) == -1)
		goto out;

	if ((bc = BASIC_CONSTRAINTS_new()) == NULL)
		goto out;
	bc->ca = 0;
	if (ca_add_ext(x, NID_basic_constraints, 1, bc) == -1)
		goto out;
	if (p->key_usage != 0 && ca_add_key_usage(x, p->key_usage) == -1)
		goto out;
	if (p->ext_key_usage != 0 && ca_add_ext_key_usage(x, p->ext_key_usage) == -1)
		goto out;
	if ((skid = ca_key_id(ca, x)) == NULL ||
	    ca_add_ext(x, NID_subject_key_identifier, 0, skid) == -1)
		goto out;
	if ((akid = AUTHORITY_KEYID_new()) == NULL ||
	    (akid->keyid = ASN1_OCTET_STRING_dup(ca->issuer_skid)) == NULL ||
	    ca_add_ext(x, NID_authority_key_identifier, 0, akid) == -1)
		goto out;
	if (p->n_names > 0) {
		/* RFC 5280 4.2.1.6: critical when the subject is empty. */
		if ((san = ca_san(p->names, p->n_names)) == NULL ||
		    ca_add_ext(x, NID_subject_alt_name,
		        X509_NAME_entry_count(X509_get_subject_name(x)) == 0, san) == -1)
			goto out;
	}
	if (p->crl_url != NULL && p->crl_url[0] != '\0' && ca_add_crl_dp(x, p->crl_url) == -1)
		goto out;
	*nb = now - CA_BACKDATE;
	*na = not_after;
	ok = true;
out:
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	ASN1_INTEGER_free(serial);
	BASIC_CONSTRAINTS_free(bc);
	ASN1_OCTET_STRING_free(skid);
	AUTHORITY_KEYID_free(akid);
	GENERAL_NAMES_free(san);
	return x;
}

/*
 * The DER of x as a Certificate with an empty signature, for the signer:
 * SEQUENCE { tbsCertificate, signatureAlgorithm, BIT STRING (no bits) },
 * both algorithm fields naming the CA's signature algorithm. Returns its
 * length with *out newly allocated (OPENSSL_free), or -1 (logged).
 */
static int
ca_unsigned_der(const struct ca *ca, X509 *x, unsigned char **out)
{
	static const unsigned char empty_signature[] = {V_ASN1_BIT_STRING, 1, 0};
	/* OpenSSL 3.0 has no setter for the TBS signature algorithm other than
	 * signing; the X509_ALGOR belongs to x and is writable, only the
	 * accessor returns it const. */
	X509_ALGOR *tbs_alg = (X509_ALGOR *)X509_get0_tbs_sigalg(x);
	unsigned char *tbs = NULL, *alg = NULL, *der = NULL, *w = NULL;
	int tbs_len, alg_len, content, total = -1;

	*out = NULL;
	if (tbs_alg == NULL ||
	    X509_ALGOR_set0(tbs_alg, OBJ_nid2obj(ca->sig_nid), ca->sig_param_type, NULL) != 1 ||
	    (tbs_len = i2d_re_X509_tbs(x, &tbs)) <= 0 ||
	    (alg_len = i2d_X509_ALGOR(tbs_alg, &alg)) <= 0) {
		log_ssl_warnx("ca_issue: encoding the certificate");
		goto out;
	}
	content = tbs_len + alg_len + (int)sizeof(empty_signature);
	total = ASN1_object_size(1, content, V_ASN1_SEQUENCE);
	if (total <= 0 || (der = OPENSSL_malloc((size_t)total)) == NULL) {
		total = -1;
		goto out;
	}
	w = der;
	ASN1_put_object(&w, 1, content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memcpy(w, tbs, (size_t)tbs_len);
	w += tbs_len;
	memcpy(w, alg, (size_t)alg_len);
	w += alg_len;
	memcpy(w, empty_signature, sizeof(empty_signature));
	*out = der;
out:
	OPENSSL_free(tbs);
	OPENSSL_free(alg);
	return total;
}

/*
 * Encodes x for the signer, has the signer sign it and checks the answer
 * (ca_check_signed()). On success *der is newly allocated (OPENSSL_free).
 *
 * What the check protects against. The signer is trusted with the key but not to
 * be right: a bug, a desynchronised socket or a compromised signer could
 * answer with a certificate other than the one asked for - another serial,
 * subject, key, validity or extension, another algorithm. Every answer is
 * therefore compared with the request, byte for byte, apart from the
 * signature algorithm (which must be the CA's, inside and out), and its
 * signature must have the shape of one by the CA's key. That comparison is
 * what keeps anything the RA did not decide out of the database, and it
 * costs next to nothing. Verifying the signature adds one thing: it
 * catches a signer whose signatures are wrong (a key that is not the
 * issuing CA's, a fault in its memory or arithmetic). Such a certificate
 * deceives nobody - every relying party rejects it - but it must never be
 * recorded as issued, so every answer is verified. (A full ECDSA
 * verification costs about three signatures, ~0.08 ms per issuance; a
 * sample would leave certificates with bad signatures in the database
 * between samples.)
 */
static int
ca_sign_cert(struct ca *ca, X509 *x, unsigned char **der, size_t *der_len)
{
	unsigned char *req = NULL, *signed_der = NULL;
	size_t signed_len = 0;
	int req_len, rc = -1;

	if ((req_len = ca_unsigned_der(ca, x, &req)) <= 0)
		goto out; /* logged */
	if (signer_sign(ca->signer, SIGNER_OP_SIGN_CERT, req, (size_t)req_len, &signed_der,
	    &signed_len) != SIGNER_SIGNED)
		goto out; /* logged */
	/* Certificate TBS: [0] version, serial, signature, ... */
	if (ca_check_signed(ca, "ca_issue", req, (size_t)req_len, signed_der, signed_len, 2) == -1)
		goto out;
	*der = signed_der;
	*der_len = signed_len;
	signed_der = NULL;
	rc = 0;
out:
	OPENSSL_free(req);
	OPENSSL_free(signed_der);
	return rc;
}

int
ca_issue(struct ca *ca, const struct ca_issue_params *p, unsigned char **der, size_t *der_len,
    time_t *not_before, time_t *not_after)
{
	X509 *x = NULL;
	time_t nb = 0, na = 0;
	int rc = -1;

	*der = NULL;
	*der_len = 0;
	if ((x = ca_build_cert(ca, p, &nb, &na)) == NULL)
		goto out;
	if (ca_sign_cert(ca, x, der, der_len) == -1)
		goto out;
	if (not_before != NULL)
		*not_before = nb;
	if (not_after != NULL)
		*not_after = na;
	rc = 0;
out:
	X509_free(x);
	ERR_clear_error();
	return rc;
}

/* ---------- CRL ---------- */

int
ca_crl(struct ca *ca, int64_t crl_number, const struct ca_revoked *revoked, size_t n_revoked,
    unsigned char **der, size_t *der_len)
{
	X509_CRL *crl = NULL;
	X509_REVOKED *r = NULL;
	ASN1_TIME *t = NULL;
	ASN1_INTEGER *serial = NULL, *number = NULL;
	ASN1_ENUMERATED *reason = NULL;
	AUTHORITY_KEYID *akid = NULL;
	unsigned char *req = NULL, *signed_der = NULL;
	size_t signed_len = 0, i;
	time_t now = time(NULL);
	int req_len, rc = -1;

	*der = NULL;
	*der_len = 0;
	if (crl_number < 0 || (n_revoked > 0 && revoked == NULL)) {
		log_warnx("ca_crl: bad parameters");
		return -1;
	}
	if ((crl = X509_CRL_new()) == NULL || (t = ASN1_TIME_new()) == NULL)
		goto out;
	if (X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->issuing)) != 1 ||
	    ASN1_TIME_set(t, now) == NULL || X509_CRL_set1_lastUpdate(crl, t) != 1 ||
	    ASN1_TIME_set(t, now + (time_t)ca->crl_days * CA_DAY) == NULL ||
	    X509_CRL_set1_nextUpdate(crl, t) != 1) {
		log_ssl_warnx("ca_crl: setting CRL fields");
		goto out;
	}
	for (i = 0; i < n_revoked; i++) {
		if (revoked[i].reason < 0 || revoked[i].reason > 10 || revoked[i].reason == 7) {
			log_warnx("ca_crl: serial %s: reason %d is not an RFC 5280 CRLReason",
			    revoked[i].serial_hex ? revoked[i].serial_hex : "(null)", revoked[i].reason);
			goto out;
		}
		if ((serial = ca_serial_from_hex(revoked[i].serial_hex)) == NULL) {
			log_warnx("ca_crl: bad serial \"%s\"",
			    revoked[i].serial_hex ? revoked[i].serial_hex : "(null)");
			goto out;
		}
		if ((r = X509_REVOKED_new()) == NULL || X509_REVOKED_set_serialNumber(r, serial) != 1 ||
		    ASN1_TIME_set(t, revoked[i].revoked_at) == NULL ||
		    X509_REVOKED_set_revocationDate(r, t) != 1)
			goto out;
		/* RFC 5280 5.3.1: unspecified (0) is expressed by absence. */
		if (revoked[i].reason != 0) {
			if ((reason = ASN1_ENUMERATED_new()) == NULL ||
			    ASN1_ENUMERATED_set(reason, revoked[i].reason) != 1 ||
			    X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, reason, 0, 0) != 1)
				goto out;
			ASN1_ENUMERATED_free(reason);
			reason = NULL;
		}
		if (X509_CRL_add0_revoked(crl, r) != 1)
			goto out;
		r = NULL;
		ASN1_INTEGER_free(serial);
		serial = NULL;
	}
	if (X509_CRL_sort(crl) != 1)
		goto out;
	if ((number = ASN1_INTEGER_new()) == NULL || ASN1_INTEGER_set_int64(number, crl_number) != 1 ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0) != 1)
		goto out;
	if ((akid = AUTHORITY_KEYID_new()) == NULL ||
	    (akid->keyid = ASN1_OCTET_STRING_dup(ca->issuer_skid)) == NULL ||
	    X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0) != 1)
		goto out;
	if (X509_CRL_sign(crl, ca->placeholder, NULL) <= 0 ||
	    (req_len = i2d_X509_CRL(crl, &req)) <= 0) {
		log_ssl_warnx("ca_crl: encoding the CRL");
		goto out;
	}
	if (signer_sign(ca->signer, SIGNER_OP_SIGN_CRL, req, (size_t)req_len, &signed_der,
	    &signed_len) != SIGNER_SIGNED)
		goto out; /* logged */
	/* TBSCertList: version, signature, issuer, ... */
	if (ca_check_signed(ca, "ca_crl", req, (size_t)req_len, signed_der, signed_len, 1) == -1)
		goto out;
	*der = signed_der;
	*der_len = signed_len;
	signed_der = NULL;
	rc = 0;
out:
	if (rc == -1)
		log_ssl_warnx("ca_crl: CRL number %lld not produced", (long long)crl_number);
	X509_CRL_free(crl);
	X509_REVOKED_free(r);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(serial);
	ASN1_INTEGER_free(number);
	ASN1_ENUMERATED_free(reason);
	AUTHORITY_KEYID_free(akid);
	OPENSSL_free(req);
	OPENSSL_free(signed_der);
	ERR_clear_error();
	return rc;
}

/* ---------- the TLS certificate of the listeners ---------- */

static bool
ca_name_listed(const struct req_name *list, size_t n, const struct req_name *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (list[i].kind == name->kind && strcmp(list[i].value, name->value) == 0)
			return true;
	return false;
}

/* cfg->tls_names ("localhost,127.0.0.1,::1") as canonical, de-duplicated
 * names. Returns the count, or -1 (logged). */
static int
ca_tls_names(const char *text, struct req_name *names)
{
	char buf[512], *save = NULL, *tok;
	struct req_name n;
	int count = 0;

	if (snprintf(buf, sizeof(buf), "%s", text[0] ? text : "localhost,127.0.0.1,::1") >=
	    (int)sizeof(buf))
		return -1;
	for (tok = strtok_r(buf, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save)) {
		memset(&n, 0, sizeof(n));
		if (name_ip_canonical(tok, n.value, sizeof(n.value)) == 0)
			n.kind = NAME_IP;
		else if (name_dns_canonical(tok, n.value, sizeof(n.value)) == 0)
			n.kind = NAME_DNS;
		else {
			log_warnx("ca: tls_names: \"%s\" is neither a host name nor an IP address", tok);
			return -1;
		}
		if (ca_name_listed(names, (size_t)count, &n))
			continue;
		if (count == CA_TLS_MAX_NAMES) {
			log_warnx("ca: tls_names: more than %d names", CA_TLS_MAX_NAMES);
			return -1;
		}
		names[count++] = n;
	}
	if (count == 0) {
		log_warnx("ca: tls_names is empty");
		return -1;
	}
	return count;
}

/* True when tls.pem/tls.key exist, match, are issued by the current issuing
 * CA, are valid for more than CA_TLS_RENEW_DAYS and name exactly `want`. */
static bool
ca_tls_current(const struct ca *ca, const struct req_name *want, size_t n_want)
{
	X509 *x = NULL;
	EVP_PKEY *key = NULL;
	GENERAL_NAMES *gens = NULL;
	struct req_name have[CA_TLS_MAX_NAMES], n;
	size_t n_have = 0, i;
	time_t limit = time(NULL) + (time_t)CA_TLS_RENEW_DAYS * CA_DAY;
	const char *why = NULL;
	bool ok = false;

	if ((x = ca_load_cert(ca->tls_cert_path, true)) == NULL ||
	    (key = ca_load_key(ca->tls_key_path, true)) == NULL) {
		why = "missing or unreadable";
		goto out;
	}
	if (X509_check_private_key(x, key) != 1) {
		why = "key does not match";
		goto out;
	}
	if (X509_verify(x, X509_get0_pubkey(ca->issuing)) != 1) {
		why = "not issued by the current issuing CA";
		goto out;
	}
	if (X509_cmp_time(X509_get0_notAfter(x), &limit) != 1) {
		why = "expires within 30 days";
		goto out;
	}
	why = "names differ from tls_names";
	if ((gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL)) == NULL)
		goto out;
	for (i = 0; i < (size_t)sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, (int)i);
		const ASN1_STRING *s = NULL;
		char text[NAME_MAX_LEN];

		memset(&n, 0, sizeof(n));
		if (gn->type == GEN_DNS) {
			s = gn->d.dNSName;
			if (ASN1_STRING_length(s) <= 0 || ASN1_STRING_length(s) >= (int)sizeof(text))
				goto out;
			memcpy(text, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
			text[ASN1_STRING_length(s)] = '\0';
			if (name_dns_canonical(text, n.value, sizeof(n.value)) == -1)
				goto out;
			n.kind = NAME_DNS;
		} else if (gn->type == GEN_IPADD) {
			s = gn->d.iPAddress;
			if (ASN1_STRING_length(s) != 4 && ASN1_STRING_length(s) != 16)
				goto out;
			if (inet_ntop(ASN1_STRING_length(s) == 4 ? AF_INET : AF_INET6,
			    ASN1_STRING_get0_data(s), n.value, sizeof(n.value)) == NULL)
				goto out;
			n.kind = NAME_IP;
		} else
			goto out;
		if (!ca_name_listed(have, n_have, &n)) {
			if (n_have == CA_TLS_MAX_NAMES)
				goto out;
			have[n_have++] = n;
		}
	}
	if (n_have != n_want)
		goto out;
	for (i = 0; i < n_want; i++)
		if (!ca_name_listed(have, n_have, &want[i]))
			goto out;
	ok = true;
out:
	if (!ok)
		log_info("ca: TLS certificate %s: %s; issuing a new one", ca->tls_cert_path, why);
	GENERAL_NAMES_free(gens);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return ok;
}

/* Makes sure tls.pem (leaf + issuing CA) and tls.key are current; issues a
 * new EC P-256 certificate through the signer when not. */
static int
ca_tls_ensure(struct ca *ca, const struct enrolld_config *cfg)
{
	struct req_name names[CA_TLS_MAX_NAMES];
	struct ca_issue_params p;
	char serial[41];
	const char *cn = NULL;
	EVP_PKEY *key = NULL;
	unsigned char *der = NULL;
	size_t der_len = 0;
	char *leaf = NULL, *chain = NULL;
	int n, i, rc = -1;

	memset(names, 0, sizeof(names));
	if ((n = ca_tls_names(cfg->tls_names, names)) == -1)
		return -1;
	if (ca_tls_current(ca, names, (size_t)n))
		return 0;
	for (i = 0; i < n && cn == NULL; i++)
		if (names[i].kind == NAME_DNS && strlen(names[i].value) <= 64)
			cn = names[i].value;
	if ((key = EVP_EC_gen("P-256")) == NULL) {
		log_ssl_warnx("ca: EVP_EC_gen(P-256) for the TLS key");
		goto out;
	}
	ca_new_serial(serial);
	memset(&p, 0, sizeof(p));
	p.serial_hex = serial;
	p.subject_key = key;
	p.cn = cn;
	p.names = names;
	p.n_names = (size_t)n;
	p.term_days = CA_TLS_DAYS;
	p.key_usage = ca_ku_digital_signature;
	p.ext_key_usage = EKU_SERVER_AUTH;
	if (ca_issue(ca, &p, &der, &der_len, NULL, NULL) == -1)
		goto out;
	if ((leaf = ca_der_to_pem(der, der_len)) == NULL ||
	    (chain = ca_concat(leaf, ca->issuing_pem)) == NULL)
		goto out;
	/* Key first: a crash in between leaves a mismatch, which the next
	 * start notices and repairs. */
	if (ca_write_key(ca, ca->tls_key_path, key) == -1 ||
	    ca_write_file(ca, ca->tls_cert_path, chain, strlen(chain), 0644) == -1)
		goto out;
	log_info("ca: wrote TLS certificate %s for %s", ca->tls_cert_path, cfg->tls_names);
	rc = 0;
out:
	EVP_PKEY_free(key);
	OPENSSL_free(der);
	free(leaf);
	free(chain);
	return rc;
}

/* ---------- open / close ---------- */

int
ca_open(const struct enrolld_config *cfg, struct ca **out)
{
	struct ca *ca = NULL;
	struct passwd *pw = NULL;
	struct signer_params sp;
	const ASN1_OCTET_STRING *skid = NULL;
	bool configured;
	int rc = -1;

	*out = NULL;
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return -1;
	pthread_mutex_init(&ca->verify_lock, NULL);
	ca->crl_days = cfg->crl_days > 0 ? cfg->crl_days : 7;
	if (geteuid() == 0 && cfg->user[0] != '\0') {
		if ((pw = getpwnam(cfg->user)) == NULL) {
			log_warnx("ca: getpwnam(%s): no such user", cfg->user);
			goto out;
		}
		ca->chown_files = true;
		ca->uid = pw->pw_uid;
		ca->gid = pw->pw_gid;
	}
	if ((ca->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL)) == NULL) {
		log_ssl_warnx("ca: EVP_MD_fetch(SHA1)");
		goto out;
	}

	/* state_dir/ca always exists: the TLS certificate lives there. */
	if (ca_mkdir(ca, cfg->state_dir, 0750, false) == -1 ||
	    ca_path(ca->dir, cfg->state_dir, "ca") == -1 || ca_mkdir(ca, ca->dir, 0700, true) == -1 ||
	    ca_path(ca->tls_cert_path, ca->dir, "tls.pem") == -1 ||
	    ca_path(ca->tls_key_path, ca->dir, "tls.key") == -1)
		goto out;

	configured = cfg->ca_issuing_cert[0] != '\0' || cfg->ca_issuing_key[0] != '\0';
	if (configured) {
		if (cfg->ca_issuing_cert[0] == '\0' || cfg->ca_issuing_key[0] == '\0') {
			log_warnx("ca: ca_issuing_cert and ca_issuing_key must be set together");
			goto out;
		}
		snprintf(ca->issuing_path, PATH_MAX, "%s", cfg->ca_issuing_cert);
		snprintf(ca->issuing_key_path, PATH_MAX, "%s", cfg->ca_issuing_key);
		snprintf(ca->root_path, PATH_MAX, "%s", cfg->ca_root_cert);
	} else {
		if (ca_path(ca->root_path, ca->dir, "root.pem") == -1 ||
		    ca_path(ca->root_key_path, ca->dir, "root.key") == -1 ||
		    ca_path(ca->issuing_path, ca->dir, "issuing.pem") == -1 ||
		    ca_path(ca->issuing_key_path, ca->dir, "issuing.key") == -1)
			goto out;
		if (!ca_exists(ca->issuing_path) || !ca_exists(ca->issuing_key_path) ||
		    !ca_exists(ca->root_path)) {
			if (ca_bootstrap(ca, cfg) == -1)
				goto out;
		}
	}

	/* Public certificates only, from here on. */
	if ((ca->issuing = ca_load_cert(ca->issuing_path, false)) == NULL)
		goto out;
	if (ca->root_path[0] != '\0') {
		if ((ca->root = ca_load_cert(ca->root_path, false)) == NULL)
			goto out;
	} else if (X509_check_issued(ca->issuing, ca->issuing) == X509_V_OK) {
		ca->root = ca->issuing; /* a self-signed issuing CA is its own root */
		X509_up_ref(ca->root);
		snprintf(ca->root_path, PATH_MAX, "%s", ca->issuing_path);
	} else {
		log_warnx("ca: %s is not self-signed: set ca_root_cert", ca->issuing_path);
		goto out;
	}
	if (X509_verify(ca->issuing, X509_get0_pubkey(ca->root)) != 1 ||
	    X509_check_issued(ca->root, ca->issuing) != X509_V_OK) {
		log_ssl_warnx("ca: %s is not issued by %s", ca->issuing_path, ca->root_path);
		goto out;
	}
	if (X509_check_ca(ca->issuing) == 0 ||
	    ((X509_get_extension_flags(ca->issuing) & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(ca->issuing) & KU_KEY_CERT_SIGN))) {
		log_warnx("ca: %s is not a CA certificate that may sign certificates",
		    ca->issuing_path);
		goto out;
	}
	if ((skid = X509_get0_subject_key_id(ca->issuing)) != NULL)
		ca->issuer_skid = ASN1_OCTET_STRING_dup(skid);
	else
		ca->issuer_skid = ca_key_id(ca, ca->issuing);
	if (ca->issuer_skid == NULL)
		goto out;
	if ((ca->issuer_not_after = ca_asn1_time(X509_get0_notAfter(ca->issuing))) == (time_t)-1) {
		log_warnx("ca: %s: unreadable notAfter", ca->issuing_path);
		goto out;
	}
	/* The algorithm the signer will use (core/signer.c picks it the same
	 * way), for checking its answers. */
	ca->sig_md = ca_digest(X509_get0_pubkey(ca->issuing));
	if (OBJ_find_sigid_by_algs(&ca->sig_nid, ca->sig_md ? EVP_MD_get_type(ca->sig_md) : NID_undef,
	    EVP_PKEY_get_base_id(X509_get0_pubkey(ca->issuing))) != 1) {
		log_warnx("ca: %s: no signature algorithm for its key type", ca->issuing_path);
		goto out;
	}
	ca->sig_param_type =
	    EVP_PKEY_get_base_id(X509_get0_pubkey(ca->issuing)) == EVP_PKEY_RSA ? V_ASN1_NULL
	    : V_ASN1_UNDEF;
	ca->sig_ecdsa = EVP_PKEY_get_base_id(X509_get0_pubkey(ca->issuing)) == EVP_PKEY_EC;
	ca->sig_size = EVP_PKEY_get_size(X509_get0_pubkey(ca->issuing));
	if (ca->sig_size <= 0 || (ca->sig_ecdsa &&
	    EVP_PKEY_get_bn_param(X509_get0_pubkey(ca->issuing), OSSL_PKEY_PARAM_EC_ORDER,
	    &ca->sig_order) != 1)) {
		log_ssl_warnx("ca: %s: the size of its signatures", ca->issuing_path);
		goto out;
	}
	if ((ca->verify_template = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(ca->verify_template, NULL,
	    ca->sig_md ? EVP_MD_get0_name(ca->sig_md) : NULL, NULL, NULL,
	    X509_get0_pubkey(ca->issuing), NULL) != 1) {
		log_ssl_warnx("ca: %s: a verification context for its key", ca->issuing_path);
		goto out;
	}
	if (ca->sig_nid == NID_ecdsa_with_SHA256)
		/* NULL (not P-256, or it failed): verify_template alone */
		ca->verify_fast = ecverify_p256_new(X509_get0_pubkey(ca->issuing));
	if ((ca->root_pem = ca_x509_pem(ca->root)) == NULL ||
	    (ca->issuing_pem = ca_x509_pem(ca->issuing)) == NULL ||
	    (ca->chain_pem = ca_concat(ca->issuing_pem, ca->root == ca->issuing ? "" : ca->root_pem)) ==
	    NULL)
		goto out;
	if ((ca->placeholder = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL) {
		log_ssl_warnx("ca: EVP_PKEY_Q_keygen(ED25519) for the placeholder key");
		goto out;
	}

	memset(&sp, 0, sizeof(sp));
	sp.key_path = ca->issuing_key_path;
	sp.issuing = ca->issuing;
	sp.user = cfg->user;
	sp.n_slots = cfg->workers;
	if (signer_start(&sp, &ca->signer) == -1)
		goto out;

	if (ca_tls_ensure(ca, cfg) == -1)
		goto out;
	*out = ca;
	ca = NULL;
	rc = 0;
out:
	ca_close(ca);
	ERR_clear_error();
	return rc;
}

void
ca_close(struct ca *ca)
{
	if (ca == NULL)
		return;
	signer_stop(ca->signer);
	X509_free(ca->root);
	X509_free(ca->issuing);
	ASN1_OCTET_STRING_free(ca->issuer_skid);
	free(ca->root_pem);
	free(ca->issuing_pem);
	free(ca->chain_pem);
	EVP_PKEY_free(ca->placeholder);
	EVP_MD_free(ca->sha1);
	BN_free(ca->sig_order);
	EVP_MD_CTX_free(ca->verify_template);
	ecverify_p256_free(ca->verify_fast);
	pthread_mutex_destroy(&ca->verify_lock);
	free(ca);
}

const char *
ca_root_cert_path(const struct ca *ca)
{
	return ca->root_path;
}

const char *
ca_tls_cert_path(const struct ca *ca)
{
	return ca->tls_cert_path;
}

const char *
ca_tls_key_path(const struct ca *ca)
{
	return ca->tls_key_path;
}

const char *
ca_issuing_pem(const struct ca *ca)
{
	return ca->issuing_pem;
}

const char *
ca_chain_pem(const struct ca *ca)
{
	return ca->chain_pem;
}

const char *
ca_root_pem(const struct ca *ca)
{
	return ca->root_pem;
}

X509 *
ca_issuing_cert(const struct ca *ca)
{
	return ca->issuing;
}

const char *
ca_issuer_name(const struct ca *ca)
{
	(void)ca;
	return "default";
}

char *
ca_der_to_pem(const unsigned char *der, size_t len)
{
	static const char head[] = "-----BEGIN CERTIFICATE-----\n";
	static const char tail[] = "-----END CERTIFICATE-----\n";
	size_t lines, cap, off, i, chunk;
	char *pem = NULL;

	if (der == NULL || len == 0 || len > 16 * 1024 * 1024)
		return NULL;
	lines = (len + 47) / 48;
	cap = sizeof(head) + sizeof(tail) + lines * 66 + 1;
	if ((pem = malloc(cap)) == NULL)
		return NULL;
	memcpy(pem, head, sizeof(head) - 1);
	off = sizeof(head) - 1;
	for (i = 0; i < len; i += chunk) {
		chunk = len - i < 48 ? len - i : 48;
		off += (size_t)EVP_EncodeBlock((unsigned char *)pem + off, der + i, (int)chunk);
		pem[off++] = '\n';
	}
	memcpy(pem + off, tail, sizeof(tail));
	return pem;
}
