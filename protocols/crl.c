/*
 * crl.c: the CRL door - GET /crl/<issuer>.crl (DER, application/pkix-crl)
 * and /crl/<issuer>.pem (PEM), without authentication: relying parties fetch
 * the URL written into every certificate's CRL distribution point.
 *
 * The CRL itself comes from ra_crl(): the stored one while it is fresh,
 * otherwise a newly signed one with the next CRL number. An unknown issuer
 * is 404; a database that cannot be reached is 503 + Retry-After.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ca.h"
#include "doors.h"
#include "log.h"
#include "ra.h"

#define CRL_PREFIX "/crl/"

/* PEM ("X509 CRL") of a DER CRL; newly allocated, the caller frees. */
static char *crl_pem(const unsigned char *der, size_t len, size_t *out_len)
{
	static const char head[] = "-----BEGIN X509 CRL-----\n";
	static const char tail[] = "-----END X509 CRL-----\n";
	size_t lines = (len + 47) / 48, cap, used = 0;
	char *pem = NULL;

	cap = sizeof(head) + sizeof(tail) + lines * 66 + 1;
	pem = malloc(cap);
	if (pem == NULL)
		return NULL;
	memcpy(pem, head, sizeof(head) - 1);
	used = sizeof(head) - 1;
	/* 48 bytes -> 64 base64 characters per line */
	for (size_t off = 0; off < len; off += 48) {
		size_t chunk = len - off < 48 ? len - off : 48;
		used += (size_t)EVP_EncodeBlock((unsigned char *)pem + used, der + off, (int)chunk);
		pem[used++] = '\n';
	}
	memcpy(pem + used, tail, sizeof(tail) - 1);
	used += sizeof(tail) - 1;
	pem[used] = '\0';
	*out_len = used;
	return pem;
}

void crl_handle(const struct http_request *req, struct door_context *ctx,
                struct http_response *resp)
{
	const char *name = NULL, *ext = NULL, *issuer = ca_issuer_name(ctx->ca);
	unsigned char *der = NULL;
	size_t der_len = 0, name_len, pem_len = 0;
	char *pem = NULL;
	bool want_pem;
	enum ra_status st;

	if (strncmp(req->path, CRL_PREFIX, strlen(CRL_PREFIX)) != 0)
		goto not_found;
	name = req->path + strlen(CRL_PREFIX);
	ext = strrchr(name, '.');
	if (ext == NULL || (strcmp(ext, ".crl") != 0 && strcmp(ext, ".pem") != 0))
		goto not_found;
	name_len = (size_t)(ext - name);
	if (issuer == NULL || name_len != strlen(issuer) || memcmp(name, issuer, name_len) != 0)
		goto not_found;
	want_pem = strcmp(ext, ".pem") == 0;
	if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
		(void)http_response_header(resp, "Allow", "GET, HEAD");
		http_response_problem(resp, 405, NULL, "method_not_allowed",
		                      "%s is not allowed here", req->method_name);
		return;
	}

	st = ra_crl(ctx->db, ctx->ca, ctx->cfg, &der, &der_len);
	switch (st) {
	case RA_OK:
		break;
	case RA_UNAVAILABLE:
		http_response_unavailable(resp, 5);
		return;
	default:
		log_warnx("ra_crl(%s): failed", issuer);
		http_response_problem(resp, 500, NULL, "internal_error",
		                      "the CRL is not available");
		return;
	}
	if (want_pem) {
		pem = crl_pem(der, der_len, &pem_len);
		free(der);
		if (pem == NULL) {
			http_response_problem(resp, 500, NULL, "internal_error", "out of memory");
			return;
		}
		http_response_take(resp, 200, "application/x-pem-file", (unsigned char *)pem,
		                   pem_len);
		return;
	}
	http_response_take(resp, 200, "application/pkix-crl", der, der_len);
	return;

not_found:
	http_response_problem(resp, 404, NULL, "not_found", "no such CRL");
}
