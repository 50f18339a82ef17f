/*
 * fuzz_csr.c: libFuzzer target for csr_parse(), the parser every door feeds
 * with untrusted bytes (DER, PEM, base64). It checks nothing but memory
 * safety and the invariants of a successful parse; run it under ASan/UBSan.
 *
 * Not built by CMake. Build and run from the source root:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -std=c17 \
 *       -Icore tests/fuzz/fuzz_csr.c core/csr.c core/names.c \
 *       -lcrypto -o fuzz_csr
 *   mkdir -p corpus && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
 *       -nodes -keyout /dev/null -subj /CN=www.example.com -outform DER \
 *       -addext subjectAltName=DNS:a.example.com,IP:192.0.2.1 -out corpus/p256.der
 *   ./fuzz_csr -max_len=65536 -max_total_time=60 corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csr_info info;
	char err[128];
	size_t i;

	if (csr_parse(data, size, &info, err, sizeof(err)) == 0) {
		/* A successful parse always holds a request, bounded names,
		 * and a reason whenever the key is refused. */
		if (info.req == NULL || info.n_names > CSR_MAX_NAMES ||
		    (info.key_type == 0 && info.key_reject == NULL) ||
		    (info.key_type != 0 && info.key_reject != NULL))
			abort();
		for (i = 0; i < info.n_names; i++)
			if (memchr(info.names[i].value, '\0', sizeof(info.names[i].value)) == NULL)
				abort();
		if (info.name_error != NULL &&
		    memchr(info.name_error_value, '\0', sizeof(info.name_error_value)) == NULL)
			abort();
		/* csr_parse() skips csr_key_classify() for EC points whose
		 * decoding already checked them: the general checks must agree
		 * with the verdict it gave, for every key it made. */
		if (info.pkey != NULL) {
			const char *reject = NULL;
			unsigned type = csr_key_classify(info.pkey, &reject);

			if (type != info.key_type || (reject == NULL) != (info.key_reject == NULL) ||
			    (reject != NULL && strcmp(reject, info.key_reject) != 0))
				abort();
		}
		csr_info_free(&info);
	} else if (err[0] == '\0') {
		abort(); /* a failure always says why */
	}
	return 0;
}
