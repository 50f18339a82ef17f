/*
 * signer.c: the processes that alone hold the issuing CA's private key.
 *
 * Why a process: the daemon parses HTTP, JSON, JWS, PKCS#7 and CSRs from the
 * network, talks to PostgreSQL and runs webhooks. A memory bug in any of that
 * must not hand out the CA key or let an attacker sign whatever they like.
 * So, like OpenSMTPD's ca.c and acme-client's keyproc.c, the key lives in a
 * separate, small process that:
 *   - is forked before any thread exists and reads the key file itself (the
 *     daemon process never loads it), checks it against the issuing
 *     certificate, then drops to the unprivileged user, refuses ptrace and
 *     core dumps (PR_SET_DUMPABLE 0, RLIMIT_CORE 0) and closes every
 *     inherited descriptor but its socket (and stderr, for its log lines);
 *   - speaks one tiny protocol over socketpair(AF_UNIX, SOCK_SEQPACKET);
 *   - signs only what parses completely as a DER certificate or CRL issued
 *     by the issuing CA; a certificate must be v3, carry basicConstraints
 *     critical CA:FALSE, no keyCertSign/cRLSign, no proxy extension, valid
 *     extensions, a subject that is not the CA's, and end before the CA does;
 *     its to-be-signed part must be DER (re-encoded, it is the same bytes)
 *     and name the CA's signature algorithm.
 *
 * Wire format, both directions: a header of 8 bytes
 *   { code (op or status), 0, 0, 0, length (uint32, network order) }
 * and in the same packet the first SIGNER_FIRST - 8 bytes of the payload
 * (all of any certificate: one packet, one send and one receive each way),
 * the rest in packets of at most SIGNER_CHUNK bytes. SEQPACKET keeps packet
 * boundaries, so a packet larger or shorter than expected is seen
 * (MSG_TRUNC, the length) and treated as a protocol error; the signer exits
 * on any protocol error or on EOF. Answers: status 0 with the signed DER,
 * status 1 (refused) with a short reason text, status 2 (internal error).
 *
 * Parsing uses a library context holding only the "null" provider: OpenSSL
 * 3.0 would otherwise build a full OSSL_DECODER pipeline for the subject's
 * public key on every d2i_X509 (the largest cost of an issuance), and the
 * signer has no use for that key. Signing then uses an EVP_MD_CTX made in
 * the default context, not the certificate's: a copy, per request, of one
 * made at start (struct signer_key). A certificate's to-be-signed part
 * must be DER and already name the CA's signature algorithm; the signer
 * signs exactly those bytes and builds the answer around them
 * (signer_sign_cert()) instead of encoding the certificate twice more.
 *
 * Throughput: one request at a time per process; n_slots processes serve
 * n_slots worker threads in parallel. A caller borrows a free slot under a
 * mutex and condvar. A slot whose process dies or does not answer within
 * SIGNER_TIMEOUT_MS is killed and retired; there is no respawn (forking from
 * a threaded daemon that then needs OpenSSL is unsafe), so the daemon keeps
 * signing while at least one signer lives.
 */
#include "signer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"

#define SIGNER_HDR_LEN 8
#define SIGNER_CHUNK 32768
#define SIGNER_FIRST 8192 /* the first packet: header + payload */
#define SIGNER_MAX_CERT (64 * 1024)
#define SIGNER_MAX_CRL (64 * 1024 * 1024)
#define SIGNER_MAX_REASON 256
#define SIGNER_MAX_KEY_FILE (1024 * 1024)
#define SIGNER_TIMEOUT_MS 60000
#define SIGNER_START_TIMEOUT_MS 30000
#define SIGNER_MAX_SLOTS 16
#define SIGNER_SOCK_FD 3

enum signer_status {
	SIGNER_STATUS_OK = 0,
	SIGNER_STATUS_REFUSED = 1,
	SIGNER_STATUS_ERROR = 2,
};

struct signer_slot {
	int fd;		/* our end of the socketpair, -1 once retired */
	pid_t pid;	/* the signer process, -1 once reaped */
	bool busy;	/* borrowed by a thread */
};

struct signer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct signer_slot slots[SIGNER_MAX_SLOTS];
	size_t n_slots;
	size_t n_live;
};

/* ---------- framing (both sides) ---------- */

/* One packet; SEQPACKET sends it whole or not at all. */
static int
signer_send_packet(int fd, const void *buf, size_t len)
{
	ssize_t n;

	for (;;) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n == (ssize_t)len)
			return 0;
		if (n == -1 && errno == EINTR)
			continue;
		if (n >= 0)
			errno = EMSGSIZE;
		return -1;
	}
}

static int
signer_send_frame(int fd, uint8_t code, const unsigned char *data, size_t len)
{
	unsigned char hdr[SIGNER_HDR_LEN] = { 0 };
	struct iovec iov[2];
	struct msghdr msg;
	uint32_t nlen;
	size_t off, chunk;
	ssize_t n;

	if (len > SIGNER_MAX_CRL) {
		errno = EMSGSIZE;
		return -1;
	}
	hdr[0] = code;
	nlen = htonl((uint32_t)len);
	memcpy(hdr + 4, &nlen, sizeof(nlen));
	/* The header and the start of the payload: one packet. */
	off = len < SIGNER_FIRST - SIGNER_HDR_LEN ? len : SIGNER_FIRST - SIGNER_HDR_LEN;
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = off;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = off > 0 ? 2 : 1;
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)(sizeof(hdr) + off)) {
		if (n >= 0)
			errno = EMSGSIZE;
		return -1;
	}
	for (; off < len; off += chunk) {
		chunk = len - off < SIGNER_CHUNK ? len - off : SIGNER_CHUNK;
		if (signer_send_packet(fd, data + off, chunk) == -1)
			return -1;
	}
	return 0;
}

/* Receives one packet of at most cap bytes. Returns 1 with *got set, 0 on
 * EOF, -1 on error, timeout (errno ETIMEDOUT) or a packet larger than cap
 * (errno EMSGSIZE). timeout_ms < 0 waits forever. */
static int
signer_recv_packet(int fd, void *buf, size_t cap, size_t *got, int timeout_ms)
{
	struct pollfd pfd;
	struct iovec iov;
	struct msghdr msg;
	ssize_t n;
	int r;

	if (timeout_ms >= 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		do
			r = poll(&pfd, 1, timeout_ms);
		while (r == -1 && errno == EINTR);
		if (r == -1)
			return -1;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
	iov.iov_base = buf;
	iov.iov_len = cap;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	do
		n = recvmsg(fd, &msg, 0);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if (n == 0)
		return 0; /* we never send empty packets: this is EOF */
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		errno = EMSGSIZE;
		return -1;
	}
	*got = (size_t)n;
	return 1;
}

/* Receives one frame. Returns 1 with *data (newly allocated with
 * OPENSSL_malloc, caller frees; NULL when len is 0), 0 on EOF before a
 * header, -1 on any error, including EOF inside a frame. */
static int
signer_recv_frame(int fd, int timeout_ms, size_t max_len, uint8_t *code,
    unsigned char **data, size_t *len)
{
	/* one byte more than a first packet may hold: a longer one is seen */
	unsigned char first[SIGNER_FIRST + 1];
	unsigned char *buf = NULL;
	uint32_t nlen;
	size_t got = 0, off, want;
	int r;

	*data = NULL;
	*len = 0;
	r = signer_recv_packet(fd, first, sizeof(first), &got, timeout_ms);
	if (r <= 0)
		return r;
	if (got < SIGNER_HDR_LEN || first[1] != 0 || first[2] != 0 || first[3] != 0) {
		errno = EPROTO;
		return -1;
	}
	memcpy(&nlen, first + 4, sizeof(nlen));
	nlen = ntohl(nlen);
	if (nlen > max_len) {
		errno = EMSGSIZE;
		return -1;
	}
	/* The first packet carries exactly as much payload as fits. */
	off = nlen < SIGNER_FIRST - SIGNER_HDR_LEN ? nlen : SIGNER_FIRST - SIGNER_HDR_LEN;
	if (got != SIGNER_HDR_LEN + off) {
		errno = EPROTO;
		return -1;
	}
	if (nlen > 0 && (buf = OPENSSL_malloc(nlen)) == NULL)
		return -1;
	if (off > 0)
		memcpy(buf, first + SIGNER_HDR_LEN, off);
	for (; off < nlen; off += got) {
		want = nlen - off < SIGNER_CHUNK ? nlen - off : SIGNER_CHUNK;
		r = signer_recv_packet(fd, buf + off, want, &got, timeout_ms);
		if (r <= 0) {
			if (r == 0)
				errno = EPROTO;
			OPENSSL_free(buf);
			return -1;
		}
	}
	*code = first[0];
	*data = buf;
	*len = nlen;
	return 1;
}

/* ---------- the signer process ---------- */

/* The digest the CA signs with, by key: the hash strength follows the curve;
 * RSA uses SHA-256; Ed25519/Ed448 take none. */
static const EVP_MD *
signer_digest(EVP_PKEY *key)
{
	int bits = EVP_PKEY_get_bits(key);

	if (EVP_PKEY_is_a(key, "EC")) {
		if (bits > 384)
			return EVP_sha512();
		if (bits > 256)
			return EVP_sha384();
		return EVP_sha256();
	}
	if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
		return NULL;
	return EVP_sha256();
}

/* Refuses pass phrases instead of prompting on the terminal. */
static int
signer_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Reads a PEM private key; the file bytes are wiped before they are freed.
 * Returns the key (caller frees) or NULL (logged). */
static EVP_PKEY *
signer_load_key(const char *path)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	struct stat st;
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;
	int fd = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warnx("signer: open(%s): %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1 || st.st_size <= 0 || st.st_size > SIGNER_MAX_KEY_FILE) {
		log_warnx("signer: %s: not a key file of sane size", path);
		goto out;
	}
	/* Secure heap when the daemon set one up, else plain (then wiped). */
	if ((buf = OPENSSL_secure_malloc((size_t)st.st_size)) == NULL)
		goto out;
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warnx("signer: read(%s): %s", path, n == 0 ? "short file" : strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL)
		goto out;
	key = PEM_read_bio_PrivateKey(bio, NULL, signer_no_passphrase, NULL);
	if (key == NULL)
		log_ssl_warnx("signer: PEM_read_bio_PrivateKey(%s)", path);
out:
	BIO_free(bio);
	if (buf != NULL)
		OPENSSL_secure_clear_free(buf, (size_t)st.st_size);
	if (fd != -1)
		close(fd);
	return key;
}

/* The certificate rules; returns NULL when x may be signed, else why not. */
static const char *
signer_cert_refusal(X509 *x, X509 *issuing)
{
	/* basicConstraints CA:FALSE without pathLenConstraint, in DER: cA
	 * is DEFAULT FALSE, so left out: an empty SEQUENCE. */
	static const unsigned char bc_leaf[] = { 0x30, 0x00 };
	const ASN1_OCTET_STRING *bc = NULL;
	X509_EXTENSION *ext = NULL;
	uint32_t flags;
	int idx;

	if (X509_get_version(x) != X509_VERSION_3)
		return "not a v3 certificate";
	if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(issuing)) != 0)
		return "issuer is not the issuing CA";
	if (X509_NAME_cmp(X509_get_subject_name(x), X509_get_subject_name(issuing)) == 0)
		return "subject is the issuing CA's";
	flags = X509_get_extension_flags(x);
	if (flags & EXFLAG_INVALID)
		return "invalid or duplicate extensions";
	if (flags & (EXFLAG_CA | EXFLAG_PROXY))
		return "a CA or proxy certificate";
	if ((flags & EXFLAG_KUSAGE) && (X509_get_key_usage(x) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)))
		return "keyCertSign or cRLSign requested";
	/* Exactly one basicConstraints, critical, whose value is exactly the
	 * encoding of CA:FALSE: compared as bytes rather than decoded again. */
	if ((idx = X509_get_ext_by_NID(x, NID_basic_constraints, -1)) < 0 ||
	    X509_get_ext_by_NID(x, NID_basic_constraints, idx) >= 0 ||
	    (ext = X509_get_ext(x, idx)) == NULL || X509_EXTENSION_get_critical(ext) != 1 ||
	    (bc = X509_EXTENSION_get_data(ext)) == NULL ||
	    ASN1_STRING_length(bc) != (int)sizeof(bc_leaf) ||
	    memcmp(ASN1_STRING_get0_data(bc), bc_leaf, sizeof(bc_leaf)) != 0)
		return "basicConstraints is not critical CA:FALSE";
	if (X509_get0_notAfter(x) == NULL || X509_get0_notBefore(x) == NULL ||
	    ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuing)) > 0)
		return "validity ends after the issuing CA's";
	return NULL;
}

/*
 * The CA key and what signing with it needs, made once at start: a signing
 * context (EVP_DigestSignInit_ex() fetches the digest and the signature
 * algorithm and sets the key up, which cost about as much as a tenth of
 * the signature; every request signs with a copy), and the DER of the
 * signature AlgorithmIdentifier that context produces (as the provider
 * says, the same as X509_sign_ctx() would put in the certificate).
 */
struct signer_key {
	EVP_PKEY *key;
	EVP_MD_CTX *sign_template;	/* initialised, never used but to copy */
	unsigned char alg_der[128];
	size_t alg_len;
	X509_ALGOR *alg;		/* alg_der decoded, to compare with */
	size_t sig_max;			/* EVP_PKEY_get_size() */
};

/* Fills k for key (which it then owns). Returns 0 or -1 (logged). */
static int
signer_key_init(struct signer_key *k, EVP_PKEY *key)
{
	const EVP_MD *md = signer_digest(key);
	OSSL_PARAM params[2];
	const unsigned char *p = NULL;

	memset(k, 0, sizeof(*k));
	k->key = key;
	if ((k->sign_template = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit_ex(k->sign_template, NULL, md != NULL ? EVP_MD_get0_name(md) : NULL,
	    NULL, NULL, key, NULL) != 1) {
		log_ssl_warnx("signer: EVP_DigestSignInit_ex");
		return -1;
	}
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID,
	    k->alg_der, sizeof(k->alg_der));
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_CTX_get_params(EVP_MD_CTX_get_pkey_ctx(k->sign_template), params) != 1 ||
	    !OSSL_PARAM_modified(&params[0]) || params[0].return_size == 0 ||
	    params[0].return_size > sizeof(k->alg_der)) {
		log_ssl_warnx("signer: the signature AlgorithmIdentifier of the CA key");
		return -1;
	}
	k->alg_len = params[0].return_size;
	p = k->alg_der;
	if ((k->alg = d2i_X509_ALGOR(NULL, &p, (long)k->alg_len)) == NULL ||
	    p != k->alg_der + k->alg_len || EVP_PKEY_get_size(key) <= 0) {
		log_ssl_warnx("signer: the signature AlgorithmIdentifier of the CA key");
		return -1;
	}
	k->sig_max = (size_t)EVP_PKEY_get_size(key);
	return 0;
}

/* A signing context for one request: a copy of the template. Newly
 * allocated, caller frees. */
static EVP_MD_CTX *
signer_md_ctx(const struct signer_key *k)
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();

	if (mctx == NULL || EVP_MD_CTX_copy_ex(mctx, k->sign_template) != 1) {
		log_ssl_warnx("signer: EVP_MD_CTX_copy_ex");
		EVP_MD_CTX_free(mctx);
		return NULL;
	}
	return mctx;
}

/* The to-be-signed part of the request der (a Certificate that parsed
 * completely): its first element. */
static int
signer_tbs(const unsigned char *der, size_t len, const unsigned char **tbs, size_t *tbs_len)
{
	const unsigned char *p = der;
	long content = 0;
	int tag, xclass, r;

	r = ASN1_get_object(&p, &content, &tag, &xclass, (long)len);
	if ((r & 0x80) || tag != V_ASN1_SEQUENCE)
		return -1;
	*tbs = p;
	r = ASN1_get_object(&p, &content, &tag, &xclass, (long)(der + len - p));
	if ((r & 0x80) || tag != V_ASN1_SEQUENCE || content > der + len - p)
		return -1;
	*tbs_len = (size_t)(p - *tbs) + (size_t)content;
	return 0;
}

/*
 * Signs the certificate x, parsed from der and allowed by the rules. What is
 * signed is the DER of x's to-be-signed part as OpenSSL encodes it from
 * what it parsed; it must be byte for byte the one received (so the request
 * was DER, not merely BER that parses) and name the CA's signature
 * algorithm already (core/ca.c puts it there), so nothing is changed: the
 * answer is the request with the outer algorithm and the signature
 * replaced, built here rather than by encoding x again. Returns the status;
 * on OK *out (OPENSSL_malloc'd) holds *out_len bytes.
 */
static enum signer_status
signer_sign_cert(const struct signer_key *k, X509 *x, const unsigned char *der, size_t len,
    unsigned char **out, int *out_len, const char **why)
{
	static const int bit_string_overhead = 1; /* the unused-bits byte */
	const unsigned char *rx_tbs = NULL;
	unsigned char *tbs = NULL, *sig = NULL, *w = NULL, *res = NULL;
	size_t rx_tbs_len = 0, sig_len = 0;
	EVP_MD_CTX *mctx = NULL;
	int tbs_len, bits_len, content, total;
	enum signer_status st = SIGNER_STATUS_REFUSED;

	if (X509_ALGOR_cmp(X509_get0_tbs_sigalg(x), k->alg) != 0) {
		*why = "the to-be-signed signature algorithm is not the CA's";
		goto out;
	}
	if (signer_tbs(der, len, &rx_tbs, &rx_tbs_len) == -1 ||
	    (tbs_len = i2d_re_X509_tbs(x, &tbs)) <= 0 || (size_t)tbs_len != rx_tbs_len ||
	    memcmp(tbs, rx_tbs, rx_tbs_len) != 0) {
		*why = "the to-be-signed part is not DER";
		goto out;
	}
	st = SIGNER_STATUS_ERROR;
	sig_len = k->sig_max;
	if ((sig = OPENSSL_malloc(sig_len)) == NULL || (mctx = signer_md_ctx(k)) == NULL ||
	    EVP_DigestSign(mctx, sig, &sig_len, tbs, (size_t)tbs_len) != 1) {
		log_ssl_warnx("signer: EVP_DigestSign");
		goto out;
	}
	/* Certificate ::= SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING } */
	bits_len = ASN1_object_size(0, (int)sig_len + bit_string_overhead, V_ASN1_BIT_STRING);
	content = tbs_len + (int)k->alg_len + bits_len;
	if (bits_len <= 0 || (total = ASN1_object_size(1, content, V_ASN1_SEQUENCE)) <= 0 ||
	    (res = OPENSSL_malloc((size_t)total)) == NULL)
		goto out;
	w = res;
	ASN1_put_object(&w, 1, content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memcpy(w, tbs, (size_t)tbs_len);
	w += tbs_len;
	memcpy(w, k->alg_der, k->alg_len);
	w += k->alg_len;
	ASN1_put_object(&w, 0, (int)sig_len + bit_string_overhead, V_ASN1_BIT_STRING,
	    V_ASN1_UNIVERSAL);
	*w++ = 0; /* no unused bits */
	memcpy(w, sig, sig_len);
	w += sig_len;
	if (w != res + total)
		goto out;
	*out = res;
	*out_len = total;
	res = NULL;
	st = SIGNER_STATUS_OK;
out:
	OPENSSL_free(tbs);
	OPENSSL_free(sig);
	OPENSSL_free(res);
	EVP_MD_CTX_free(mctx);
	return st;
}

/* Handles one request. Returns the status; on OK *out (OPENSSL_malloc'd) is
 * the signed DER, on REFUSED *why says why. */
static enum signer_status
signer_handle(uint8_t op, const unsigned char *der, size_t len, const struct signer_key *k,
    X509 *issuing, OSSL_LIB_CTX *parse_ctx, unsigned char **out, int *out_len, const char **why)
{
	EVP_MD_CTX *mctx = NULL;
	const unsigned char *p = der;
	X509 *x = NULL;
	X509_CRL *crl = NULL;
	enum signer_status st = SIGNER_STATUS_REFUSED;

	*out = NULL;
	*out_len = 0;
	*why = NULL;
	if (len == 0 || der == NULL) {
		*why = "empty request";
		goto out;
	}
	switch (op) {
	case SIGNER_OP_SIGN_CERT:
		if (len > SIGNER_MAX_CERT) {
			*why = "certificate too large";
			goto out;
		}
		x = (X509 *)ASN1_item_d2i_ex(NULL, &p, (long)len, ASN1_ITEM_rptr(X509), parse_ctx,
		    NULL);
		if (x == NULL || p != der + len) {
			*why = "not exactly one DER certificate";
			goto out;
		}
		if ((*why = signer_cert_refusal(x, issuing)) != NULL)
			goto out;
		st = signer_sign_cert(k, x, der, len, out, out_len, why);
		goto out;
	case SIGNER_OP_SIGN_CRL:
		crl = d2i_X509_CRL(NULL, &p, (long)len);
		if (crl == NULL || p != der + len) {
			*why = "not exactly one DER CRL";
			goto out;
		}
		if (X509_CRL_get_version(crl) != X509_CRL_VERSION_2) {
			*why = "not a v2 CRL";
			goto out;
		}
		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuing)) != 0) {
			*why = "CRL issuer is not the issuing CA";
			goto out;
		}
		if ((mctx = signer_md_ctx(k)) == NULL || X509_CRL_sign_ctx(crl, mctx) <= 0) {
			log_ssl_warnx("signer: X509_CRL_sign_ctx");
			st = SIGNER_STATUS_ERROR;
			goto out;
		}
		*out_len = i2d_X509_CRL(crl, out);
		break;
	default:
		*why = "unknown operation";
		goto out;
	}
	if (*out_len <= 0) {
		log_ssl_warnx("signer: i2d");
		*out = NULL;
		st = SIGNER_STATUS_ERROR;
		goto out;
	}
	st = SIGNER_STATUS_OK;
out:
	EVP_MD_CTX_free(mctx);
	X509_free(x);
	X509_CRL_free(crl);
	ERR_clear_error();
	return st;
}

/* Drops to uid/gid (supplementary groups cleared) and checks that root
 * cannot be regained. */
static int
signer_drop_privileges(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		log_warnx("signer: dropping privileges: %s", strerror(errno));
		return -1;
	}
	if (uid != 0 && setuid(0) != -1) {
		log_warnx("signer: setuid(0) succeeded after the privilege drop");
		return -1;
	}
	return 0;
}

/* Leaves only the socket (on SIGNER_SOCK_FD) and stderr; 0 and 1 become
 * /dev/null so that a stray write cannot reach an inherited file. */
static int
signer_close_fds(int fd)
{
	int devnull;

	if (fd != SIGNER_SOCK_FD) {
		if (dup2(fd, SIGNER_SOCK_FD) == -1)
			return -1;
	}
	if ((devnull = open("/dev/null", O_RDWR)) == -1)
		return -1;
	if (dup2(devnull, 0) == -1 || dup2(devnull, 1) == -1)
		return -1;
	if (fd == 2 && dup2(devnull, 2) == -1)
		return -1;
	if (close_range(SIGNER_SOCK_FD + 1, ~0U, 0) == -1) {
		long max = sysconf(_SC_OPEN_MAX), i;
		for (i = SIGNER_SOCK_FD + 1; i < (max > 0 ? max : 65536); i++)
			close((int)i);
	}
	return 0;
}

/* The signer's life: never returns. Exit status 0 on EOF, 1 on a failed
 * start, 2 on a protocol error. */
static void __attribute__((noreturn))
signer_child(int fd, const struct signer_params *p, bool drop, uid_t uid, gid_t gid)
{
	struct rlimit nocore = { 0, 0 };
	struct sigaction sa;
	sigset_t all;
	struct signer_key k;
	EVP_PKEY *key = NULL;
	OSSL_LIB_CTX *parse_ctx = NULL;
	unsigned char *req = NULL, *resp = NULL;
	size_t req_len = 0;
	int resp_len = 0, sig, r;
	uint8_t op = 0, hello;
	const char *why = NULL;
	enum signer_status st;

	/* Before the key is in memory: no core file, no ptrace by peers. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	setrlimit(RLIMIT_CORE, &nocore);
	/* The daemon's signal handlers are not ours. Ctrl-C / SIGTERM go to
	 * the whole process group: the signer stays until the daemon closes
	 * the socket, so that in-flight signatures finish. */
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		sa.sa_handler = (sig == SIGINT || sig == SIGTERM || sig == SIGHUP ||
		    sig == SIGPIPE || sig == SIGUSR1 || sig == SIGUSR2) ? SIG_IGN : SIG_DFL;
		sigaction(sig, &sa, NULL);
	}
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	if (signer_close_fds(fd) == -1)
		_exit(1);
	fd = SIGNER_SOCK_FD;

	hello = SIGNER_STATUS_ERROR;
	if ((key = signer_load_key(p->key_path)) == NULL)
		goto hello;
	if (X509_check_private_key(p->issuing, key) != 1) {
		log_ssl_warnx("signer: X509_check_private_key(%s): key does not match the issuing certificate",
		    p->key_path);
		goto hello;
	}
	if (signer_key_init(&k, key) == -1)
		goto hello;
	if ((parse_ctx = OSSL_LIB_CTX_new()) == NULL ||
	    OSSL_PROVIDER_load(parse_ctx, "null") == NULL) {
		log_ssl_warnx("signer: a parse-only library context");
		goto hello;
	}
	if (drop && signer_drop_privileges(uid, gid) == -1)
		goto hello;
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* a uid change may reset it */
	hello = SIGNER_STATUS_OK;
hello:
	ERR_clear_error();
	if (signer_send_frame(fd, hello, NULL, 0) == -1 || hello != SIGNER_STATUS_OK)
		_exit(1);

	for (;;) {
		r = signer_recv_frame(fd, -1, SIGNER_MAX_CRL, &op, &req, &req_len);
		if (r == 0)
			_exit(0);
		if (r == -1) {
			log_warnx("signer: bad request frame: %s", strerror(errno));
			_exit(2);
		}
		st = signer_handle(op, req, req_len, &k, p->issuing, parse_ctx, &resp, &resp_len, &why);
		OPENSSL_free(req);
		req = NULL;
		if (st == SIGNER_STATUS_OK)
			r = signer_send_frame(fd, st, resp, (size_t)resp_len);
		else if (st == SIGNER_STATUS_REFUSED)
			r = signer_send_frame(fd, st, (const unsigned char *)why, strlen(why));
		else
			r = signer_send_frame(fd, st, NULL, 0);
		OPENSSL_free(resp);
		resp = NULL;
		if (r == -1)
			_exit(2);
	}
}

/* ---------- the parent side ---------- */

/* Kills (when asked) and reaps a signer process. A healthy signer exits at
 * once on EOF; one that has not after 5 s is killed. ECHILD (someone else
 * reaped it) ends the wait too. */
static void
signer_reap(pid_t pid, bool kill_it)
{
	int status, i;
	pid_t r;

	if (pid <= 0)
		return;
	if (kill_it)
		kill(pid, SIGKILL);
	for (i = 0; i < 500; i++) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid || (r == -1 && errno != EINTR))
			return;
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	log_warnx("signer: process %ld did not exit on EOF; killing it", (long)pid);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
}

int
signer_start(const struct signer_params *p, struct signer **out)
{
	struct signer *s = NULL;
	struct passwd *pw = NULL;
	unsigned char *data = NULL;
	size_t len = 0;
	uint8_t code = 0;
	uid_t uid = 0;
	gid_t gid = 0;
	bool drop = false;
	int sv[2] = { -1, -1 };
	size_t i, n;
	pid_t pid;
	int r, rc = -1;

	*out = NULL;
	n = p->n_slots < 1 ? 1 : p->n_slots > SIGNER_MAX_SLOTS ? SIGNER_MAX_SLOTS : (size_t)p->n_slots;
	if (geteuid() == 0 && p->user != NULL && p->user[0] != '\0') {
		if ((pw = getpwnam(p->user)) == NULL) {
			log_warnx("signer: getpwnam(%s): no such user", p->user);
			return -1;
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		drop = true;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	for (i = 0; i < SIGNER_MAX_SLOTS; i++) {
		s->slots[i].fd = -1;
		s->slots[i].pid = -1;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);

	for (i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
			log_warnx("signer: socketpair: %s", strerror(errno));
			goto out;
		}
		fflush(stdout);
		fflush(stderr);
		if ((pid = fork()) == -1) {
			log_warnx("signer: fork: %s", strerror(errno));
			close(sv[0]);
			close(sv[1]);
			goto out;
		}
		if (pid == 0) {
			close(sv[0]);
			signer_child(sv[1], p, drop, uid, gid);
		}
		close(sv[1]);
		s->slots[i].fd = sv[0];
		s->slots[i].pid = pid;
		s->n_slots = i + 1;
	}
	/* Each signer says it holds a matching key before we go on. */
	for (i = 0; i < n; i++) {
		r = signer_recv_frame(s->slots[i].fd, SIGNER_START_TIMEOUT_MS, 0, &code, &data, &len);
		OPENSSL_free(data);
		data = NULL;
		if (r != 1 || code != SIGNER_STATUS_OK) {
			log_warnx("signer: process %ld did not start (see its messages above)",
			    (long)s->slots[i].pid);
			goto out;
		}
		s->n_live++;
	}
	log_debug("signer: %zu signer processes ready%s%s", n, drop ? " as " : "",
	    drop ? p->user : "");
	*out = s;
	s = NULL;
	rc = 0;
out:
	signer_stop(s);
	return rc;
}

void
signer_stop(struct signer *s)
{
	size_t i;

	if (s == NULL)
		return;
	/* Close every socket first so that all signers exit together. */
	for (i = 0; i < s->n_slots; i++) {
		if (s->slots[i].fd != -1) {
			close(s->slots[i].fd);
			s->slots[i].fd = -1;
		}
	}
	for (i = 0; i < s->n_slots; i++) {
		signer_reap(s->slots[i].pid, false);
		s->slots[i].pid = -1;
	}
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

/* Borrows a free live slot; NULL when no signer is left. */
static struct signer_slot *
signer_borrow(struct signer *s)
{
	struct signer_slot *slot = NULL;
	size_t i;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (s->n_live == 0)
			break;
		for (i = 0; i < s->n_slots; i++) {
			if (s->slots[i].fd != -1 && !s->slots[i].busy) {
				slot = &s->slots[i];
				slot->busy = true;
				break;
			}
		}
		if (slot != NULL)
			break;
		pthread_cond_wait(&s->cond, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return slot;
}

static void
signer_give_back(struct signer *s, struct signer_slot *slot, bool dead)
{
	pid_t pid = slot->pid;

	/* The slot is ours while busy: nobody else touches its socket. */
	if (dead) {
		close(slot->fd);
		signer_reap(pid, true);
	}
	pthread_mutex_lock(&s->lock);
	slot->busy = false;
	if (dead) {
		slot->fd = -1;
		slot->pid = -1;
		s->n_live--;
		log_warnx("signer: process %ld retired, %zu signer(s) left", (long)pid, s->n_live);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

enum signer_result
signer_sign(struct signer *s, int op, const unsigned char *der, size_t len,
    unsigned char **out, size_t *out_len)
{
	size_t slot;

	return signer_sign_slot(s, op, der, len, out, out_len, &slot);
}

enum signer_result
signer_sign_slot(struct signer *s, int op, const unsigned char *der, size_t len,
    unsigned char **out, size_t *out_len, size_t *slot_index)
{
	struct signer_slot *slot = NULL;
	unsigned char *data = NULL;
	size_t data_len = 0;
	uint8_t code = 0;
	enum signer_result res = SIGNER_FAILED;
	bool dead = false;
	int r;

	*out = NULL;
	*out_len = 0;
	if (s == NULL || op < 0 || op > 255 || len > SIGNER_MAX_CRL) {
		log_warnx("signer_sign: bad arguments");
		return SIGNER_FAILED;
	}
	if ((slot = signer_borrow(s)) == NULL) {
		log_warnx("signer_sign: no signer process is left");
		return SIGNER_FAILED;
	}
	*slot_index = (size_t)(slot - s->slots);
	if (signer_send_frame(slot->fd, (uint8_t)op, der, len) == -1) {
		log_warnx("signer_sign: send to signer %ld: %s", (long)slot->pid, strerror(errno));
		dead = true;
		goto out;
	}
	r = signer_recv_frame(slot->fd, SIGNER_TIMEOUT_MS, SIGNER_MAX_CRL, &code, &data, &data_len);
	if (r != 1) {
		log_warnx("signer_sign: answer from signer %ld: %s", (long)slot->pid,
		    r == 0 ? "the signer exited" : strerror(errno));
		dead = true;
		goto out;
	}
	switch (code) {
	case SIGNER_STATUS_OK:
		if (data_len == 0) {
			log_warnx("signer_sign: empty answer");
			break;
		}
		*out = data;
		*out_len = data_len;
		data = NULL;
		res = SIGNER_SIGNED;
		break;
	case SIGNER_STATUS_REFUSED:
		log_warnx("signer_sign: the signer refused: %.*s",
		    (int)(data_len < SIGNER_MAX_REASON ? data_len : SIGNER_MAX_REASON),
		    data != NULL ? (const char *)data : "");
		res = SIGNER_REFUSED;
		break;
	default:
		log_warnx("signer_sign: the signer failed (status %u)", code);
		break;
	}
out:
	OPENSSL_free(data);
	signer_give_back(s, slot, dead);
	return res;
}

size_t
signer_pids(struct signer *s, pid_t *pids, size_t max)
{
	size_t i, n = 0;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->n_slots && n < max; i++)
		if (s->slots[i].fd != -1 && s->slots[i].pid > 0)
			pids[n++] = s->slots[i].pid;
	pthread_mutex_unlock(&s->lock);
	return n;
}
