/*
 * bench_finalize.c: the crypto of one ACME finalize, in a loop, without the
 * network or the database: csr_parse() of a P-256 CSR with two dNSNames,
 * then ca_issue() (certificate built here, signed by the signer process,
 * answer checked). Prints microseconds per issuance. Meant for callgrind:
 *   valgrind --tool=callgrind --trace-children=yes bench_finalize N
 * at two values of N; the difference of the totals over the difference of
 * N is the instruction count per issuance, for this process and the signer.
 */
#include <pwd.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "config.h"
#include "csr.h"
#include "log.h"
#include "types.h"

static int
make_csr(unsigned char **der)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ext = NULL;
	int len = -1;

	if (key == NULL || req == NULL || exts == NULL ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
	    (const unsigned char *)"www.example.com", -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 ||
	    (ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    "DNS:www.example.com,DNS:example.com")) == NULL ||
	    sk_X509_EXTENSION_push(exts, ext) == 0 || X509_REQ_add_extensions(req, exts) != 1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto out;
	len = i2d_X509_REQ(req, der);
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return len;
}

static double
tv_us(const struct timeval *user, const struct timeval *sys)
{
	return (double)(user->tv_sec + sys->tv_sec) * 1e6 + (double)(user->tv_usec + sys->tv_usec);
}

int
main(int argc, char **argv)
{
	struct enrolld_config cfg;
	struct ca *ca = NULL;
	struct passwd *pw = NULL;
	struct csr_info info;
	struct ca_issue_params p;
	struct timespec t0, t1;
	struct rusage self, children;
	char tmp[] = "/tmp/bench_finalize.XXXXXX", serial[41], err[256], cmd[128];
	unsigned char *csr = NULL, *der = NULL;
	size_t der_len = 0;
	time_t nb, na;
	int n = argc > 1 ? atoi(argv[1]) : 1000, csr_len, i, rc = 1;

	log_init(LOG_LEVEL_WARN);
	if (mkdtemp(tmp) == NULL)
		return 1;
	config_defaults(&cfg);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", tmp);
	cfg.user[0] = '\0';
	if (geteuid() == 0 && (pw = getpwnam("enrolld")) != NULL) {
		if (chown(tmp, pw->pw_uid, pw->pw_gid) == -1)
			perror("chown");
		snprintf(cfg.user, sizeof(cfg.user), "enrolld");
	}
	if ((csr_len = make_csr(&csr)) <= 0 || ca_open(&cfg, &ca) != 0) {
		fprintf(stderr, "set-up failed\n");
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		if (csr_parse(csr, (size_t)csr_len, &info, err, sizeof(err)) != 0 ||
		    !info.signature_ok || info.key_type != KEY_TYPE_P256) {
			fprintf(stderr, "csr_parse: %s\n", err);
			goto out;
		}
		memset(&p, 0, sizeof(p));
		ca_new_serial(serial);
		p.serial_hex = serial;
		p.subject_key = info.pkey;
		p.subject_spki = X509_REQ_get_X509_PUBKEY(info.req); /* as core/ra.c */
		p.cn = info.common_name;
		p.names = info.names;
		p.n_names = info.n_names;
		p.term_days = 90;
		p.key_usage = KEY_USAGE_DIGITAL_SIGNATURE;
		p.ext_key_usage = EKU_SERVER_AUTH;
		p.crl_url = "http://ca.example/crl/default.crl";
		if (ca_issue(ca, &p, &der, &der_len, &nb, &na) != 0) {
			fprintf(stderr, "ca_issue failed\n");
			csr_info_free(&info);
			goto out;
		}
		OPENSSL_free(der);
		csr_info_free(&info);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%d issuances, %.1f us each\n", n,
	    ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / n);
	rc = 0;
out:
	getrusage(RUSAGE_SELF, &self);
	ca_close(ca); /* reaps the signers: their CPU is then the children's */
	ca = NULL;
	getrusage(RUSAGE_CHILDREN, &children);
	if (rc == 0)
		printf("CPU us per issuance: this process %.1f, signers %.1f (incl. set-up)\n",
		    tv_us(&self.ru_utime, &self.ru_stime) / n,
		    tv_us(&children.ru_utime, &children.ru_stime) / n);
	OPENSSL_free(csr);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
