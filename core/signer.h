/*
 * signer.h: the key-holding processes behind core/ca.c (internal to core/).
 *
 * signer_start() forks n_slots signer processes, each reached over its own
 * socketpair(AF_UNIX, SOCK_SEQPACKET). Every signer reads the issuing CA's
 * private key itself (this process never does), checks it against the
 * issuing certificate, drops to `user` when started as root, turns off core
 * dumps and then signs, one request at a time, only what it can parse
 * strictly: a complete DER certificate or CRL whose issuer is the issuing
 * CA and, for certificates, that is no CA (see core/signer.c for the rules).
 *
 * A caller borrows a free slot (mutex + condvar), so several worker threads
 * sign at once, one per slot. A signer that dies or stops answering is
 * killed and its slot retired; when none is left signer_sign() fails.
 */
#ifndef ENROLLD_SIGNER_H
#define ENROLLD_SIGNER_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/x509.h>

/* What the parent asks for: one op byte, then the DER (certificate or CRL
 * as built by core/ca.c, with a placeholder signature the signer replaces). */
enum signer_op {
	SIGNER_OP_SIGN_CERT = 1,
	SIGNER_OP_SIGN_CRL = 2,
};

enum signer_result {
	SIGNER_SIGNED,	/* *out holds the signed DER */
	SIGNER_REFUSED,	/* the signer parsed the request and said no (logged) */
	SIGNER_FAILED,	/* no signer answered: dead, timed out, I/O error (logged) */
};

struct signer_params {
	const char *key_path;	/* PEM private key of the issuing CA */
	X509 *issuing;		/* borrowed; the certificate the key belongs to */
	const char *user;	/* drop to this user when root; NULL/"" to stay */
	int n_slots;		/* signer processes, 1..16 */
};

struct signer;

/* Forks the signers and waits until each reports its key loaded. Call before
 * any thread exists. Returns 0 and a handle, or -1 (logged). */
int signer_start(const struct signer_params *p, struct signer **out)
    __attribute__((warn_unused_result));

/* Closes the sockets (each signer exits on EOF) and reaps the processes. */
void signer_stop(struct signer *s);

/* Sends one request and waits for the answer. On SIGNER_SIGNED *out is newly
 * allocated (caller frees with OPENSSL_free). `op` is sent as given so that
 * tests can check that unknown ops are refused. Thread-safe. */
enum signer_result signer_sign(struct signer *s, int op, const unsigned char *der,
    size_t len, unsigned char **out, size_t *out_len)
    __attribute__((warn_unused_result));

/* signer_sign(), also saying which signer answered: *slot (0 .. n_slots-1)
 * names one signer process for the life of the handle (a retired slot is
 * never refilled). *slot is set whenever a signer was borrowed. */
enum signer_result signer_sign_slot(struct signer *s, int op, const unsigned char *der,
    size_t len, unsigned char **out, size_t *out_len, size_t *slot)
    __attribute__((warn_unused_result));

/* The process ids of the live signers (for tests and the start-up message).
 * Returns how many were written (at most max). */
size_t signer_pids(struct signer *s, pid_t *pids, size_t max);

#endif
