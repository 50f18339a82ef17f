/*
 * acme_jws.c: the JOSE layer of the ACME door, pure functions over bytes.
 *
 * Everything an ACME client sends arrives as a flattened JWS (RFC 7515 §7.2.2)
 * and everything in it is hostile until the signature verifies. So this file
 * is strict where the RFCs allow strictness and bounded everywhere:
 *
 *   - the body is at most ACME_JWS_MAX_BODY bytes and every JSON document in
 *     it (body, protected header, payload) at most ACME_JWS_MAX_DEPTH deep,
 *     checked by a pre-scan before jansson sees it (jansson's own limit is a
 *     compile-time 2048); duplicate keys are refused (JSON_REJECT_DUPLICATES)
 *     so that we and the client cannot read different values for "alg";
 *   - base64url is decoded strictly: one encoding per byte string, so a
 *     signature cannot be "the same" under two spellings;
 *   - keys are checked before use (RSA 2048..4096 bits with e = 65537, EC
 *     points on their curve), and the alg must fit the key, so a verifier is
 *     never asked to do something the client chose for us.
 *
 * Nothing here touches the database or the network; the caller consumes the
 * nonce, compares the url and looks the kid up. Errors become ACME problem
 * types (see acme_jws.h for which check gives which type).
 */
#include "acme/acme_jws.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#include "ecverify.h"
#include "log.h"

/* RSA account keys: as for certificate keys, never under 2048 bits; and not
 * over 4096, so that a client cannot make us verify with a huge modulus. */
#define ACME_RSA_MIN_BITS 2048
#define ACME_RSA_MAX_BITS 4096

const char *const acme_jws_algorithms[ACME_JWS_ALG__MAX + 1] = {
	[ACME_JWS_ALG_RS256] = "RS256",
	[ACME_JWS_ALG_ES256] = "ES256",
	[ACME_JWS_ALG_ES384] = "ES384",
	[ACME_JWS_ALG_ES512] = "ES512",
	[ACME_JWS_ALG_EDDSA] = "EdDSA",
	[ACME_JWS_ALG__MAX] = NULL,
};

static const char *const acme_eab_algorithms[] = {
	[ACME_EAB_ALG_HS256] = "HS256",
	[ACME_EAB_ALG_HS384] = "HS384",
	[ACME_EAB_ALG_HS512] = "HS512",
};

/* JWK members that carry private key material (RFC 7518 §6.3.2, §6.2.2,
 * §6.4.1; RFC 8037 §2): an account key with one of these was sent by a
 * client that leaked its key, or by one trying to confuse us. */
/* clang-format off */
static const char *const acme_jwk_private_members[] = {
	"d", "p", "q", "dp", "dq", "qi", "oth", "k", NULL,
};
/* clang-format on */

/* The EC curves we accept, with their JWS alg and coordinate length. */
struct acme_ec_curve {
	const char *crv; /* JWK name */
	int nid;
	const char *group; /* OpenSSL group name */
	size_t coord_len;
	enum acme_jws_alg alg;
	const char *digest;
};

static const struct acme_ec_curve acme_ec_curves[] = {
	{ "P-256", NID_X9_62_prime256v1, "prime256v1", 32, ACME_JWS_ALG_ES256, "SHA256" },
	{ "P-384", NID_secp384r1, "secp384r1", 48, ACME_JWS_ALG_ES384, "SHA384" },
	{ "P-521", NID_secp521r1, "secp521r1", 66, ACME_JWS_ALG_ES512, "SHA512" },
};
#define ACME_N_EC_CURVES (sizeof(acme_ec_curves) / sizeof(acme_ec_curves[0]))

/* Where a JWS sits, which decides what its protected header must hold. */
enum acme_jws_kind {
	ACME_JWS_OUTER, /* a request: nonce, exactly one of jwk / kid */
	ACME_JWS_INNER, /* key change inner JWS: jwk, no nonce, no kid */
};

/* Records the problem and a detail; always returns -1 so that callers can
 * `return acme_fail(...)` or `rc = acme_fail(...)`. */
static int acme_fail(const char **problem, char *detail, size_t detail_len, const char *type,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int
acme_fail(
    const char **problem, char *detail, size_t detail_len, const char *type, const char *fmt, ...)
{
	va_list ap;

	if (problem != NULL)
		*problem = type;
	if (detail != NULL && detail_len > 0) {
		va_start(ap, fmt);
		vsnprintf(detail, detail_len, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---- base64url ---------------------------------------------------------- */

static const char acme_b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of each byte as a base64url digit; ACME_B64_BAD (high bit set)
 * for every byte that is not one. A table rather than range tests: the
 * decoder ORs four values and tests the high bit once per quantum. */
#define ACME_B64_BAD 0x80
#define BAD ACME_B64_BAD
static const unsigned char acme_b64url_table[256] = {
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, 0x3e, BAD, BAD,
	0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
	0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, BAD, BAD, BAD, BAD, 0x3f,
	BAD, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
	0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
};
#undef BAD

/* Value of one base64url character, or -1. */
static int
acme_b64url_value(unsigned char c)
{
	unsigned char v = acme_b64url_table[c];

	return (v & ACME_B64_BAD) != 0 ? -1 : v;
}

char *
acme_b64url_encode(const unsigned char *data, size_t len)
{
	char *out = NULL;
	size_t i, o = 0;

	if (len > (SIZE_MAX - 4) / 4 * 3)
		return NULL;
	out = malloc(len / 3 * 4 + 4 + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];

		out[o++] = acme_b64url_alphabet[(v >> 18) & 63];
		out[o++] = acme_b64url_alphabet[(v >> 12) & 63];
		out[o++] = acme_b64url_alphabet[(v >> 6) & 63];
		out[o++] = acme_b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)data[i] << 16;

		out[o++] = acme_b64url_alphabet[(v >> 18) & 63];
		out[o++] = acme_b64url_alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;

		out[o++] = acme_b64url_alphabet[(v >> 18) & 63];
		out[o++] = acme_b64url_alphabet[(v >> 12) & 63];
		out[o++] = acme_b64url_alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return out;
}

/* Strict decode into a new buffer. Returns 0, -1 for bad input, -2 when out
 * of memory (so that callers can tell the client's fault from ours). */
static int
acme_b64url_decode_strict(const char *text, size_t text_len, unsigned char **out, size_t *out_len)
{
	unsigned char *buf = NULL;
	size_t i, o = 0, rem = text_len % 4;
	uint32_t acc = 0;
	int bits = 0, v;

	*out = NULL;
	*out_len = 0;
	if (rem == 1)
		return -1;
	buf = malloc(text_len / 4 * 3 + 3 + 1);
	if (buf == NULL)
		return -2;
	/* Whole quanta: four digits, three bytes. */
	for (i = 0; i + 4 <= text_len; i += 4) {
		const unsigned char *t = (const unsigned char *)text + i;
		unsigned a = acme_b64url_table[t[0]], b = acme_b64url_table[t[1]],
			 c = acme_b64url_table[t[2]], d = acme_b64url_table[t[3]];

		if (((a | b | c | d) & ACME_B64_BAD) != 0) {
			free(buf);
			return -1;
		}
		acc = a << 18 | b << 12 | c << 6 | d;
		buf[o++] = (unsigned char)(acc >> 16);
		buf[o++] = (unsigned char)(acc >> 8);
		buf[o++] = (unsigned char)acc;
	}
	/* The tail (rem 2 or 3 digits): one or two bytes, the rest spare. */
	acc = 0;
	for (; i < text_len; i++) {
		v = acme_b64url_value((unsigned char)text[i]);
		if (v < 0) {
			free(buf);
			return -1;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Unused low bits of the last character must be zero: otherwise two
	 * spellings would decode to the same bytes. */
	if (acc != 0) {
		free(buf);
		return -1;
	}
	buf[o] = '\0';
	*out = buf;
	*out_len = o;
	return 0;
}

unsigned char *
acme_b64url_decode(const char *text, size_t text_len, size_t *out_len)
{
	unsigned char *buf = NULL;

	if (acme_b64url_decode_strict(text, text_len, &buf, out_len) != 0)
		return NULL;
	return buf;
}

bool
acme_b64url_valid(const char *text, size_t text_len)
{
	unsigned seen = 0;
	size_t i;
	int last;

	if (text_len == 0 || text_len % 4 == 1)
		return false;
	for (i = 0; i < text_len; i++)
		seen |= acme_b64url_table[(unsigned char)text[i]];
	if ((seen & ACME_B64_BAD) != 0)
		return false;
	/* Trailing bits: 2 chars carry 4 spare bits, 3 chars 2. */
	last = acme_b64url_value((unsigned char)text[text_len - 1]);
	if (text_len % 4 == 2 && (last & 0x0f) != 0)
		return false;
	if (text_len % 4 == 3 && (last & 0x03) != 0)
		return false;
	return true;
}

/* Decodes member `name` of obj (a base64url string). On failure sets a
 * malformed (or serverInternal) problem naming `what`. */
static int
acme_b64url_member(const json_t *obj, const char *name, const char *what, unsigned char **out,
    size_t *out_len, const char **problem, char *detail, size_t detail_len)
{
	const json_t *v = json_object_get(obj, name);
	int rc;

	*out = NULL;
	*out_len = 0;
	if (!json_is_string(v))
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s has no string member \"%s\"", what, name);
	rc = acme_b64url_decode_strict(json_string_value(v), json_string_length(v), out, out_len);
	if (rc == -2)
		return acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
	if (rc != 0)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s member \"%s\" is not base64url without padding", what, name);
	return 0;
}

/* ---- bounded JSON ------------------------------------------------------- */

/* True when the JSON text nests arrays/objects no deeper than max_depth.
 * Only counts brackets outside strings; jansson validates the rest. */
static bool
acme_json_depth_ok(const unsigned char *text, size_t len, int max_depth)
{
	bool in_string = false, escaped = false;
	int depth = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = text[i];

		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			if (++depth > max_depth)
				return false;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return true;
}

/* JSON insignificant whitespace (RFC 8259 §2). */
static bool
acme_json_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A plain string at text[*i] ('"', then printable ASCII other than '"' and
 * '\\', then '"'): its bytes are text[*start .. *start + *len) and *i moves
 * past it. False for anything else (escapes, non-ASCII, control bytes). */
static bool
acme_json_plain_string(
    const unsigned char *text, size_t len, size_t *i, size_t *start, size_t *str_len)
{
	const unsigned char *quote = NULL;
	size_t j, k;

	if (*i >= len || text[*i] != '"')
		return false;
	/* The closing quote (memchr: word at a time), then the bytes before it
	 * eight at a time: any below 0x20, above 0x7e, or a backslash. */
	quote = memchr(text + *i + 1, '"', len - *i - 1);
	if (quote == NULL)
		return false;
	j = (size_t)(quote - text);
	for (k = *i + 1; k + 8 <= j; k += 8) {
		const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
		uint64_t w, backslash;

		memcpy(&w, text + k, sizeof(w));
		backslash = w ^ (ones * '\\');
		if ((((w - ones * 0x20) & ~w) | (w + ones) | w | ((backslash - ones) & ~backslash)) &
		    highs)
			return false;
	}
	for (; k < j; k++) {
		if (text[k] < 0x20 || text[k] > 0x7e || text[k] == '\\')
			return false;
	}
	*start = *i + 1;
	*str_len = j - *start;
	*i = j + 1;
	return true;
}

/* One member of a flat JSON object: offsets and lengths of its key's and its
 * value's bytes (inside the quotes) in the scanned text. */
struct acme_json_member {
	size_t key, key_len, value, value_len;
};

/* Most members a flat object may have to be read here; more go to jansson. */
#define ACME_JSON_FLAT_MAX_MEMBERS 32

/* Scans text as ONE JSON object whose keys and values are all plain strings
 * (acme_json_plain_string()), with whitespace around its tokens and nothing
 * after it: true with members[0 .. *n) in text order when it has at most max
 * members and no key twice. False for anything else, valid JSON or not,
 * which the callers then leave to jansson. The grammar of
 * acme_json_flat_object() and of acme_jws_flat_parts(). */
static bool
acme_json_flat_scan(const unsigned char *text, size_t len, struct acme_json_member *members,
    size_t max, size_t *n)
{
	size_t i = 0, m = 0, j;

	while (i < len && acme_json_space(text[i]))
		i++;
	if (i >= len || text[i++] != '{')
		return false;
	while (i < len && acme_json_space(text[i]))
		i++;
	if (i < len && text[i] == '}') {
		i++;
	} else {
		for (;;) {
			struct acme_json_member *mb = &members[m];

			if (m == max || !acme_json_plain_string(text, len, &i, &mb->key, &mb->key_len))
				return false; /* also a trailing comma */
			for (j = 0; j < m; j++) {
				if (members[j].key_len == mb->key_len &&
				    memcmp(text + members[j].key, text + mb->key, mb->key_len) == 0)
					return false; /* jansson says so (JSON_REJECT_DUPLICATES) */
			}
			while (i < len && acme_json_space(text[i]))
				i++;
			if (i >= len || text[i++] != ':')
				return false;
			while (i < len && acme_json_space(text[i]))
				i++;
			if (!acme_json_plain_string(text, len, &i, &mb->value, &mb->value_len))
				return false;
			m++;
			while (i < len && acme_json_space(text[i]))
				i++;
			if (i >= len)
				return false;
			if (text[i] == '}') {
				i++;
				break;
			}
			if (text[i++] != ',')
				return false;
			while (i < len && acme_json_space(text[i]))
				i++;
		}
	}
	while (i < len && acme_json_space(text[i]))
		i++;
	if (i != len)
		return false;
	*n = m;
	return true;
}

json_t *
acme_json_flat_object(const unsigned char *text, size_t len)
{
	struct acme_json_member members[ACME_JSON_FLAT_MAX_MEMBERS];
	char key[64];
	json_t *obj = NULL, *value = NULL;
	size_t n = 0, i;

	if (!acme_json_flat_scan(text, len, members, ACME_JSON_FLAT_MAX_MEMBERS, &n) ||
	    (obj = json_object()) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (members[i].key_len >= sizeof(key))
			goto fail;
		memcpy(key, text + members[i].key, members[i].key_len);
		key[members[i].key_len] = '\0';
		value = json_stringn_nocheck((const char *)text + members[i].value, members[i].value_len);
		if (value == NULL || json_object_set_new_nocheck(obj, key, value) != 0)
			goto fail;
	}
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

/* ---- compact JSON writer ------------------------------------------------ */

#define ACME_DUMP_MAX_DEPTH 32

struct acme_dump {
	char *buf;
	size_t len, cap;
};

/* Room for n more bytes and the NUL. */
static bool
acme_dump_reserve(struct acme_dump *d, size_t n)
{
	size_t cap = d->cap;
	char *buf = NULL;

	if (d->len + n + 1 <= cap)
		return true;
	if (n > SIZE_MAX / 4 - d->len)
		return false;
	while (cap < d->len + n + 1)
		cap = cap < 256 ? 256 : cap * 2;
	if ((buf = realloc(d->buf, cap)) == NULL)
		return false;
	d->buf = buf;
	d->cap = cap;
	return true;
}

static bool
acme_dump_put(struct acme_dump *d, const char *s, size_t n)
{
	if (!acme_dump_reserve(d, n))
		return false;
	memcpy(d->buf + d->len, s, n);
	d->len += n;
	return true;
}

/* A quoted string, escaped as jansson's dump_string() does without flags:
 * '"', '\\' and control bytes; everything else as is. 1 for a byte >= 0x80
 * (jansson validates UTF-8 there: its call), -1 when out of memory. */
static int
acme_dump_string(struct acme_dump *d, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, run;

	/* at most 6 bytes per input byte, and the quotes */
	if (n > SIZE_MAX / 8 || !acme_dump_reserve(d, n + 2))
		return -1;
	d->buf[d->len++] = '"';
	for (i = 0; i < n; i = run) {
		unsigned char c;

		for (run = i; run < n; run++) {
			c = (unsigned char)s[run];
			if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
				break;
		}
		if (!acme_dump_put(d, s + i, run - i))
			return -1;
		if (run == n)
			break;
		c = (unsigned char)s[run];
		if (c >= 0x80)
			return 1;
		if (!acme_dump_reserve(d, 6))
			return -1;
		d->buf[d->len++] = '\\';
		switch (c) {
		case '"':
		case '\\':
			d->buf[d->len++] = (char)c;
			break;
		case '\b':
			d->buf[d->len++] = 'b';
			break;
		case '\f':
			d->buf[d->len++] = 'f';
			break;
		case '\n':
			d->buf[d->len++] = 'n';
			break;
		case '\r':
			d->buf[d->len++] = 'r';
			break;
		case '\t':
			d->buf[d->len++] = 't';
			break;
		default:
			memcpy(d->buf + d->len, "u00", 3);
			d->len += 3;
			d->buf[d->len++] = hex[c >> 4];
			d->buf[d->len++] = hex[c & 15];
			break;
		}
		run++;
	}
	if (!acme_dump_put(d, "\"", 1))
		return -1;
	return 0;
}

/* 0, 1 for a value this writer leaves to jansson, -1 when out of memory. */
static int
acme_dump_value(struct acme_dump *d, const json_t *v, int depth)
{
	char num[32];
	const char *key = NULL;
	json_t *member = NULL;
	size_t i;
	bool first = true;
	int n, rc;

	if (depth > ACME_DUMP_MAX_DEPTH)
		return 1;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (!acme_dump_put(d, "{", 1))
			return -1;
		json_object_foreach ((json_t *)v, key, member) {
			if (!first && !acme_dump_put(d, ",", 1))
				return -1;
			first = false;
			if ((rc = acme_dump_string(d, key, strlen(key))) != 0)
				return rc;
			if (!acme_dump_put(d, ":", 1))
				return -1;
			if ((rc = acme_dump_value(d, member, depth + 1)) != 0)
				return rc;
		}
		return acme_dump_put(d, "}", 1) ? 0 : -1;
	case JSON_ARRAY:
		if (!acme_dump_put(d, "[", 1))
			return -1;
		for (i = 0; i < json_array_size(v); i++) {
			if (i > 0 && !acme_dump_put(d, ",", 1))
				return -1;
			if ((rc = acme_dump_value(d, json_array_get(v, i), depth + 1)) != 0)
				return rc;
		}
		return acme_dump_put(d, "]", 1) ? 0 : -1;
	case JSON_STRING:
		return acme_dump_string(d, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		if (n < 0 || (size_t)n >= sizeof(num))
			return 1;
		return acme_dump_put(d, num, (size_t)n) ? 0 : -1;
	case JSON_TRUE:
		return acme_dump_put(d, "true", 4) ? 0 : -1;
	case JSON_FALSE:
		return acme_dump_put(d, "false", 5) ? 0 : -1;
	case JSON_NULL:
		return acme_dump_put(d, "null", 4) ? 0 : -1;
	default: /* JSON_REAL: jansson's own number formatting */
		return 1;
	}
}

char *
acme_json_dump(const json_t *value)
{
	struct acme_dump d = {NULL, 0, 0};
	int rc;

	if (value == NULL)
		return NULL;
	if (!json_is_object(value) && !json_is_array(value))
		return json_dumps(value, JSON_COMPACT);
	rc = acme_dump_value(&d, value, 0);
	if (rc == 0 && acme_dump_reserve(&d, 0)) {
		d.buf[d.len] = '\0';
		return d.buf;
	}
	free(d.buf);
	return rc > 0 ? json_dumps(value, JSON_COMPACT) : NULL;
}

/* Parses a JSON object from untrusted bytes: bounded size and depth, no
 * duplicate keys, nothing after it but whitespace. Returns a new reference or
 * NULL with a malformed problem naming `what`. */
static json_t *
acme_json_load_object(const unsigned char *text, size_t len, const char *what, const char **problem,
    char *detail, size_t detail_len)
{
	json_error_t jerr;
	json_t *root = NULL;

	if (len > ACME_JWS_MAX_BODY) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s is longer than %d bytes", what, ACME_JWS_MAX_BODY);
		return NULL;
	}
	/* Most ACME JSON (the JWS, its protected header with a kid, a
	 * finalize payload) is one object of plain strings: read that
	 * directly, jansson's lexer costing more per byte. Anything else, valid
	 * or not, is jansson's to judge. */
	root = acme_json_flat_object(text, len);
	if (root != NULL)
		return root;
	if (!acme_json_depth_ok(text, len, ACME_JWS_MAX_DEPTH)) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s nests deeper than %d", what, ACME_JWS_MAX_DEPTH);
		return NULL;
	}
	root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		/* jerr.text describes the syntax, never echoes much input. */
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s is not valid JSON: %.80s (position %d)", what, jerr.text, jerr.position);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s is not a JSON object", what);
		return NULL;
	}
	return root;
}

/* ---- algorithms --------------------------------------------------------- */

json_t *
acme_jws_algorithms_json(void)
{
	json_t *arr = json_array();
	int i;

	if (arr == NULL)
		return NULL;
	for (i = 0; i < ACME_JWS_ALG__MAX; i++) {
		if (json_array_append_new(arr, json_string(acme_jws_algorithms[i])) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* True when s is short and plain enough to quote in a problem detail. */
static bool
acme_safe_to_quote(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= 16)
			return false;
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		        (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return false;
	}
	return i > 0;
}

/* ---- JWK -> key --------------------------------------------------------- */

/* Builds a key from OSSL_PARAMs (RSA or EC public key). Returns NULL when
 * OpenSSL refuses the parameters (the caller decides whose fault that is). */
static EVP_PKEY *
acme_pkey_fromdata(const char *type, OSSL_PARAM *params)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (ctx == NULL)
		goto out;
	if (EVP_PKEY_fromdata_init(ctx) != 1)
		goto out;
	if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

static int
acme_jwk_parse_rsa(
    const json_t *jwk, EVP_PKEY **out, const char **problem, char *detail, size_t detail_len)
{
	unsigned char *n_bin = NULL, *e_bin = NULL;
	size_t n_len = 0, e_len = 0;
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pkey = NULL;
	int bits, rc = -1;

	if (acme_b64url_member(jwk, "n", "RSA jwk", &n_bin, &n_len, problem, detail, detail_len) !=
	    0)
		goto out;
	if (acme_b64url_member(jwk, "e", "RSA jwk", &e_bin, &e_len, problem, detail, detail_len) !=
	    0)
		goto out;
	/* Bound the sizes before any big-number work; a leading zero octet in n
	 * is tolerated (some encoders add one) and allowed for in the bound. */
	if (n_len > ACME_RSA_MAX_BITS / 8 + 1 || e_len > 8) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "RSA key larger than %d bits or exponent too long", ACME_RSA_MAX_BITS);
		goto out;
	}
	n = BN_bin2bn(n_bin, (int)n_len, NULL);
	e = BN_bin2bn(e_bin, (int)e_len, NULL);
	if (n == NULL || e == NULL) {
		log_ssl_warnx("BN_bin2bn(jwk)");
		acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		goto out;
	}
	bits = BN_num_bits(n);
	if (bits < ACME_RSA_MIN_BITS || bits > ACME_RSA_MAX_BITS) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "RSA key of %d bits; %d to %d bits accepted", bits, ACME_RSA_MIN_BITS,
		    ACME_RSA_MAX_BITS);
		goto out;
	}
	if (!BN_is_odd(n)) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "RSA modulus is even");
		goto out;
	}
	if (!BN_is_word(e, 65537)) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "RSA public exponent must be 65537");
		goto out;
	}
	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
		log_ssl_warnx("OSSL_PARAM_BLD(rsa jwk)");
		acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		goto out;
	}
	pkey = acme_pkey_fromdata("RSA", params);
	if (pkey == NULL) {
		ERR_clear_error();
		acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY, "RSA key refused");
		goto out;
	}
	*out = pkey;
	pkey = NULL;
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	free(n_bin);
	free(e_bin);
	return rc;
}

static int
acme_jwk_parse_ec(
    const json_t *jwk, EVP_PKEY **out, const char **problem, char *detail, size_t detail_len)
{
	const struct acme_ec_curve *curve = NULL;
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	unsigned char *x = NULL, *y = NULL, *point = NULL;
	size_t x_len = 0, y_len = 0, i;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *check = NULL;
	EVP_PKEY *pkey = NULL;
	int rc = -1;

	if (crv == NULL) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "EC jwk has no string member \"crv\"");
		goto out;
	}
	for (i = 0; i < ACME_N_EC_CURVES; i++) {
		if (strcmp(crv, acme_ec_curves[i].crv) == 0)
			curve = &acme_ec_curves[i];
	}
	if (curve == NULL) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "EC curve not supported; P-256, P-384 and P-521 are");
		goto out;
	}
	if (acme_b64url_member(jwk, "x", "EC jwk", &x, &x_len, problem, detail, detail_len) != 0 ||
	    acme_b64url_member(jwk, "y", "EC jwk", &y, &y_len, problem, detail, detail_len) != 0)
		goto out;
	/* RFC 7518 §6.2.1.2: full length, leading zeros kept. */
	if (x_len != curve->coord_len || y_len != curve->coord_len) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "EC %s coordinates must be %zu bytes", curve->crv, curve->coord_len);
		goto out;
	}
	point = malloc(1 + 2 * curve->coord_len);
	if (point == NULL) {
		acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		goto out;
	}
	point[0] = 0x04; /* uncompressed */
	memcpy(point + 1, x, x_len);
	memcpy(point + 1 + x_len, y, y_len);

	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve->group, 0) !=
	        1 ||
	    OSSL_PARAM_BLD_push_octet_string(
	        bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * curve->coord_len) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
		log_ssl_warnx("OSSL_PARAM_BLD(ec jwk)");
		acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		goto out;
	}
	/* Import refuses most bad points; the explicit check below makes sure
	 * (on the curve, not infinity, coordinates in range, right order). */
	pkey = acme_pkey_fromdata("EC", params);
	if (pkey == NULL) {
		ERR_clear_error();
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "EC point is not on curve %s", curve->crv);
		goto out;
	}
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (check == NULL) {
		log_ssl_warnx("EVP_PKEY_CTX_new_from_pkey(ec jwk)");
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL,
		    "cannot check EC key");
		goto out;
	}
	if (EVP_PKEY_public_check(check) != 1) {
		ERR_clear_error();
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "EC point is not on curve %s", curve->crv);
		goto out;
	}
	*out = pkey;
	pkey = NULL;
	rc = 0;
out:
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_free(pkey);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	free(point);
	free(x);
	free(y);
	return rc;
}

static int
acme_jwk_parse_okp(
    const json_t *jwk, EVP_PKEY **out, const char **problem, char *detail, size_t detail_len)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	unsigned char *x = NULL;
	size_t x_len = 0;
	EVP_PKEY *pkey = NULL;
	int rc = -1;

	if (crv == NULL) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "OKP jwk has no string member \"crv\"");
		goto out;
	}
	if (strcmp(crv, "Ed25519") != 0) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "OKP curve not supported; Ed25519 is");
		goto out;
	}
	if (acme_b64url_member(jwk, "x", "OKP jwk", &x, &x_len, problem, detail, detail_len) != 0)
		goto out;
	if (x_len != 32) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "Ed25519 public key must be 32 bytes");
		goto out;
	}
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, x_len);
	if (pkey == NULL) {
		ERR_clear_error();
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "Ed25519 key refused");
		goto out;
	}
	*out = pkey;
	rc = 0;
out:
	free(x);
	return rc;
}

int
acme_jwk_parse(
    const json_t *jwk, EVP_PKEY **out, const char **problem, char *detail, size_t detail_len)
{
	const char *kty = NULL;
	size_t i;

	*out = NULL;
	if (!json_is_object(jwk))
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "jwk is not a JSON object");
	for (i = 0; acme_jwk_private_members[i] != NULL; i++) {
		if (json_object_get(jwk, acme_jwk_private_members[i]) != NULL)
			return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
			    "jwk contains private key member \"%s\"", acme_jwk_private_members[i]);
	}
	kty = json_string_value(json_object_get(jwk, "kty"));
	if (kty == NULL)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "jwk has no string member \"kty\"");
	if (strcmp(kty, "RSA") == 0)
		return acme_jwk_parse_rsa(jwk, out, problem, detail, detail_len);
	if (strcmp(kty, "EC") == 0)
		return acme_jwk_parse_ec(jwk, out, problem, detail, detail_len);
	if (strcmp(kty, "OKP") == 0)
		return acme_jwk_parse_okp(jwk, out, problem, detail, detail_len);
	return acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
	    "jwk key type not supported; RSA, EC and OKP are");
}

/* ---- key -> JWK, thumbprint --------------------------------------------- */

/* The EC curve of key, or NULL when key is not EC or on another curve. */
static const struct acme_ec_curve *
acme_key_ec_curve(EVP_PKEY *key)
{
	char name[64];
	size_t i;
	int nid;

	if (!EVP_PKEY_is_a(key, "EC"))
		return NULL;
	if (EVP_PKEY_get_group_name(key, name, sizeof(name), NULL) != 1) {
		ERR_clear_error();
		return NULL;
	}
	nid = OBJ_sn2nid(name);
	if (nid == NID_undef)
		nid = EC_curve_nist2nid(name);
	for (i = 0; i < ACME_N_EC_CURVES; i++) {
		if (acme_ec_curves[i].nid == nid)
			return &acme_ec_curves[i];
	}
	return NULL;
}

/* The JWS alg that key must sign with, or -1 for a key we do not take; for
 * an EC key, *curve (when curve is not NULL) says which (looking the group
 * up costs a provider call, so callers ask once). */
static int
acme_key_alg(EVP_PKEY *key, const struct acme_ec_curve **curve)
{
	const struct acme_ec_curve *c = NULL;

	if (curve != NULL)
		*curve = NULL;
	if (key == NULL)
		return -1;
	if (EVP_PKEY_is_a(key, "RSA"))
		return ACME_JWS_ALG_RS256;
	if (EVP_PKEY_is_a(key, "ED25519"))
		return ACME_JWS_ALG_EDDSA;
	c = acme_key_ec_curve(key);
	if (c == NULL)
		return -1;
	if (curve != NULL)
		*curve = c;
	return (int)c->alg;
}

/* base64url of a BIGNUM parameter, padded to pad_len bytes (0: minimal). */
static char *
acme_bn_param_b64url(EVP_PKEY *key, const char *param, size_t pad_len)
{
	BIGNUM *bn = NULL;
	unsigned char *bin = NULL;
	char *text = NULL;
	int len;

	if (EVP_PKEY_get_bn_param(key, param, &bn) != 1)
		goto out;
	len = pad_len > 0 ? (int)pad_len : BN_num_bytes(bn);
	if (len <= 0)
		goto out;
	bin = malloc((size_t)len);
	if (bin == NULL || BN_bn2binpad(bn, bin, len) != len)
		goto out;
	text = acme_b64url_encode(bin, (size_t)len);
out:
	if (text == NULL)
		log_ssl_warnx("EVP_PKEY_get_bn_param(%s)", param);
	free(bin);
	BN_free(bn);
	return text;
}

json_t *
acme_jwk_to_json(EVP_PKEY *key)
{
	const struct acme_ec_curve *curve = NULL;
	unsigned char raw[32];
	size_t raw_len = sizeof(raw);
	char *a = NULL, *b = NULL;
	json_t *jwk = NULL;

	if (key == NULL)
		return NULL;
	if (EVP_PKEY_is_a(key, "RSA")) {
		a = acme_bn_param_b64url(key, OSSL_PKEY_PARAM_RSA_N, 0);
		b = acme_bn_param_b64url(key, OSSL_PKEY_PARAM_RSA_E, 0);
		if (a != NULL && b != NULL)
			jwk = json_pack("{s:s, s:s, s:s}", "e", b, "kty", "RSA", "n", a);
	} else if (EVP_PKEY_is_a(key, "ED25519")) {
		if (EVP_PKEY_get_raw_public_key(key, raw, &raw_len) != 1 || raw_len != 32) {
			log_ssl_warnx("EVP_PKEY_get_raw_public_key(jwk)");
			goto out;
		}
		a = acme_b64url_encode(raw, raw_len);
		if (a != NULL)
			jwk = json_pack("{s:s, s:s, s:s}", "crv", "Ed25519", "kty", "OKP", "x", a);
	} else if ((curve = acme_key_ec_curve(key)) != NULL) {
		a = acme_bn_param_b64url(key, OSSL_PKEY_PARAM_EC_PUB_X, curve->coord_len);
		b = acme_bn_param_b64url(key, OSSL_PKEY_PARAM_EC_PUB_Y, curve->coord_len);
		if (a != NULL && b != NULL)
			jwk = json_pack(
			    "{s:s, s:s, s:s, s:s}", "crv", curve->crv, "kty", "EC", "x", a, "y", b);
	}
out:
	free(a);
	free(b);
	return jwk;
}

char *
acme_jwk_to_string(EVP_PKEY *key)
{
	json_t *jwk = acme_jwk_to_json(key);
	char *text = NULL;

	if (jwk == NULL)
		return NULL;
	/* Members sorted, no whitespace: exactly the RFC 7638 §3 input, since
	 * base64url and the fixed names need no escaping. */
	text = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(jwk);
	return text;
}

int
acme_jwk_thumbprint(EVP_PKEY *key, char out[ACME_JWK_THUMBPRINT_LEN])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	char *text = NULL, *b64 = NULL;
	int rc = -1;

	out[0] = '\0';
	text = acme_jwk_to_string(key);
	if (text == NULL)
		goto out;
	if (EVP_Digest(text, strlen(text), digest, &digest_len, EVP_sha256(), NULL) != 1) {
		log_ssl_warnx("EVP_Digest(jwk thumbprint)");
		goto out;
	}
	b64 = acme_b64url_encode(digest, digest_len);
	if (b64 == NULL || strlen(b64) != ACME_JWK_THUMBPRINT_LEN - 1)
		goto out;
	memcpy(out, b64, ACME_JWK_THUMBPRINT_LEN);
	rc = 0;
out:
	free(b64);
	free(text);
	return rc;
}

/* ---- flattened JWS ------------------------------------------------------ */

/* The three parts of a flattened JWS, pointing into its JSON object. */
struct acme_jws_parts {
	const char *protected_b64;
	size_t protected_len;
	const char *payload_b64;
	size_t payload_len;
	const char *signature_b64;
	size_t signature_len;
};

/* Checks the flattened JSON serialization (RFC 7515 §7.2.2) and finds its
 * parts. Other members are ignored, as RFC 7515 §7.2.1 asks, except the
 * general serialization and an unprotected header, which are refused: every
 * header parameter must be integrity protected (RFC 8555 §6.2). */
static int
acme_jws_split(const json_t *obj, const char *what, struct acme_jws_parts *parts,
    const char **problem, char *detail, size_t detail_len)
{
	const json_t *p, *pl, *s;

	if (!json_is_object(obj))
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s is not a JSON object", what);
	if (json_object_get(obj, "signatures") != NULL)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s uses the general JWS serialization; only flattened is accepted", what);
	if (json_object_get(obj, "header") != NULL)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s has an unprotected header", what);
	p = json_object_get(obj, "protected");
	pl = json_object_get(obj, "payload");
	s = json_object_get(obj, "signature");
	if (!json_is_string(p) || !json_is_string(pl) || !json_is_string(s))
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s needs string members \"protected\", \"payload\" and \"signature\"", what);
	parts->protected_b64 = json_string_value(p);
	parts->protected_len = json_string_length(p);
	parts->payload_b64 = json_string_value(pl);
	parts->payload_len = json_string_length(pl);
	parts->signature_b64 = json_string_value(s);
	parts->signature_len = json_string_length(s);
	if (parts->protected_len == 0)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s has an empty protected header", what);
	return 0;
}

/* ASCII(protected || '.' || payload), newly allocated. */
static char *
acme_signing_input(const struct acme_jws_parts *parts, size_t *len)
{
	char *s = NULL;

	*len = parts->protected_len + 1 + parts->payload_len;
	s = malloc(*len + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, parts->protected_b64, parts->protected_len);
	s[parts->protected_len] = '.';
	memcpy(s + parts->protected_len + 1, parts->payload_b64, parts->payload_len);
	s[*len] = '\0';
	return s;
}

/* Decodes one part of a JWS, strict base64url (RFC 7515 §2). Returns 0 with
 * *out newly allocated (the caller frees), or -1 with the problem set:
 * "<what> <part> is not base64url without padding". */
static int
acme_jws_part_decode(const char *b64, size_t b64_len, unsigned char **out, size_t *out_len,
    const char *what, const char *part, const char **problem, char *detail, size_t detail_len)
{
	int rc = acme_b64url_decode_strict(b64, b64_len, out, out_len);

	if (rc == -2) {
		acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		return -1;
	}
	if (rc != 0) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "%s %s is not base64url without padding", what, part);
		return -1;
	}
	return 0;
}

/* Decodes and parses the protected header of parts into a new object. */
static json_t *
acme_protected_header(const struct acme_jws_parts *parts, const char *what, const char **problem,
    char *detail, size_t detail_len)
{
	unsigned char *bytes = NULL;
	size_t len = 0;
	json_t *hdr = NULL;

	if (acme_jws_part_decode(parts->protected_b64, parts->protected_len, &bytes, &len, what,
	    "protected header", problem, detail, detail_len) != 0)
		return NULL;
	hdr = acme_json_load_object(bytes, len, "protected header", problem, detail, detail_len);
	free(bytes);
	return hdr;
}

/* Header parameters both kinds of JWS refuse: "crit" (we implement no
 * extension, so every critical one is unknown: RFC 7515 §4.1.11) and an
 * unencoded payload (RFC 7797 "b64": false). */
static int
acme_header_common(const json_t *hdr, const char **problem, char *detail, size_t detail_len)
{
	const json_t *b64 = NULL;

	if (json_object_get(hdr, "crit") != NULL)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "protected header has \"crit\"; no JWS extension is supported");
	b64 = json_object_get(hdr, "b64");
	if (b64 != NULL && !json_is_true(b64))
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "unencoded JWS payload (\"b64\") not supported");
	return 0;
}

/* Copies the non-empty string member `name` of hdr; malformed otherwise. */
static int
acme_header_string(const json_t *hdr, const char *name, char **out, const char **problem,
    char *detail, size_t detail_len)
{
	const json_t *v = json_object_get(hdr, name);

	*out = NULL;
	if (!json_is_string(v) || json_string_length(v) == 0)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "protected header has no non-empty string \"%s\"", name);
	*out = strdup(json_string_value(v));
	if (*out == NULL)
		return acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
	return 0;
}

static int acme_jws_parse_parts(const struct acme_jws_parts *parts, enum acme_jws_kind kind,
    struct acme_jws *out, const char **problem, char *detail, size_t detail_len);

/* The shared body of acme_jws_parse and acme_jws_parse_inner. */
static int
acme_jws_parse_object(const json_t *obj, enum acme_jws_kind kind, struct acme_jws *out,
    const char **problem, char *detail, size_t detail_len)
{
	const char *what = kind == ACME_JWS_OUTER ? "JWS" : "inner JWS";
	struct acme_jws_parts parts;

	memset(out, 0, sizeof(*out));
	if (acme_jws_split(obj, what, &parts, problem, detail, detail_len) != 0)
		return -1;
	return acme_jws_parse_parts(&parts, kind, out, problem, detail, detail_len);
}

/* The JWS from its three parts (which out does not point into). */
static int
acme_jws_parse_parts(const struct acme_jws_parts *parts_in, enum acme_jws_kind kind,
    struct acme_jws *out, const char **problem, char *detail, size_t detail_len)
{
	const char *what = kind == ACME_JWS_OUTER ? "JWS" : "inner JWS";
	const struct acme_jws_parts parts = *parts_in;
	const json_t *alg_v, *jwk_v, *kid_v, *nonce_v;
	const char *alg;
	int i, rc = -1;

	memset(out, 0, sizeof(*out));
	out->protected_header = acme_protected_header(&parts, what, problem, detail, detail_len);
	if (out->protected_header == NULL)
		goto out;

	/* alg first: badSignatureAlgorithm tells the client what to use. */
	alg_v = json_object_get(out->protected_header, "alg");
	if (!json_is_string(alg_v)) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "protected header has no string \"alg\"");
		goto out;
	}
	alg = json_string_value(alg_v);
	for (i = 0; i < ACME_JWS_ALG__MAX; i++) {
		if (strcmp(alg, acme_jws_algorithms[i]) == 0)
			break;
	}
	if (i == ACME_JWS_ALG__MAX) {
		if (acme_safe_to_quote(alg))
			acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_SIGNATURE_ALGORITHM,
			    "JWS alg \"%s\" not accepted", alg);
		else
			acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_SIGNATURE_ALGORITHM,
			    "JWS alg not accepted");
		goto out;
	}
	out->alg = (enum acme_jws_alg)i;
	if (acme_header_common(out->protected_header, problem, detail, detail_len) != 0)
		goto out;

	if (acme_header_string(
	        out->protected_header, "url", &out->url, problem, detail, detail_len) != 0)
		goto out;

	nonce_v = json_object_get(out->protected_header, "nonce");
	if (kind == ACME_JWS_INNER) {
		if (nonce_v != NULL) {
			acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
			    "inner JWS must not have a nonce");
			goto out;
		}
	} else if (nonce_v == NULL) {
		/* RFC 8555 §6.5: unacceptable or absent nonce -> badNonce. */
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_NONCE, "JWS has no nonce");
		goto out;
	} else {
		/* RFC 8555 §6.5.2: a nonce that is not base64url is malformed. */
		if (!json_is_string(nonce_v) ||
		    !acme_b64url_valid(json_string_value(nonce_v), json_string_length(nonce_v))) {
			acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
			    "JWS nonce is not base64url");
			goto out;
		}
		out->nonce = strdup(json_string_value(nonce_v));
		if (out->nonce == NULL) {
			acme_fail(problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL,
			    "out of memory");
			goto out;
		}
	}

	jwk_v = json_object_get(out->protected_header, "jwk");
	kid_v = json_object_get(out->protected_header, "kid");
	if (kind == ACME_JWS_INNER && (jwk_v == NULL || kid_v != NULL)) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "inner JWS must have \"jwk\" and no \"kid\"");
		goto out;
	}
	if ((jwk_v == NULL) == (kid_v == NULL)) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "JWS protected header must have exactly one of \"jwk\" and \"kid\"");
		goto out;
	}
	if (kid_v != NULL) {
		if (acme_header_string(
		        out->protected_header, "kid", &out->kid, problem, detail, detail_len) != 0)
			goto out;
	} else {
		if (acme_jwk_parse(jwk_v, &out->jwk, problem, detail, detail_len) != 0)
			goto out;
	}

	/* Payload: "" is POST-as-GET (RFC 8555 §6.3); anything else must be a
	 * JSON object, as every ACME request payload is. */
	if (acme_jws_part_decode(parts.payload_b64, parts.payload_len, &out->payload,
	    &out->payload_len, what, "payload", problem, detail, detail_len) != 0)
		goto out;
	if (out->payload_len == 0) {
		out->post_as_get = true;
	} else {
		out->payload_json = acme_json_load_object(
		    out->payload, out->payload_len, "JWS payload", problem, detail, detail_len);
		if (out->payload_json == NULL)
			goto out;
	}

	if (acme_jws_part_decode(parts.signature_b64, parts.signature_len, &out->signature,
	    &out->signature_len, what, "signature", problem, detail, detail_len) != 0)
		goto out;

	out->signing_input = acme_signing_input(&parts, &out->signing_input_len);
	if (out->signing_input == NULL) {
		acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		acme_jws_free(out);
	return rc;
}

#define ACME_JWS_FLAT_MAX_MEMBERS 8

/* The request body's parts without building a JSON object, when it is a
 * flat object of plain strings (acme_json_flat_scan()) with at most
 * ACME_JWS_FLAT_MAX_MEMBERS members, no "signatures" or "header", and
 * string "protected" (non-empty), "payload" and "signature": then true, and
 * parts point into body. False for anything else, which the general path
 * then judges (and answers with its problem); what is taken here, that path
 * takes as the same three strings. */
static bool
acme_jws_flat_parts(const unsigned char *body, size_t len, struct acme_jws_parts *parts)
{
	static const char *const names[3] = {"protected", "payload", "signature"};
	struct acme_json_member members[ACME_JWS_FLAT_MAX_MEMBERS];
	const struct acme_json_member *found[3] = {NULL, NULL, NULL};
	size_t n = 0, i, j;

	if (!acme_json_flat_scan(body, len, members, ACME_JWS_FLAT_MAX_MEMBERS, &n))
		return false;
	for (i = 0; i < n; i++) {
		const unsigned char *key = body + members[i].key;
		size_t key_len = members[i].key_len;

		if ((key_len == 10 && memcmp(key, "signatures", 10) == 0) ||
		    (key_len == 6 && memcmp(key, "header", 6) == 0))
			return false;
		for (j = 0; j < 3; j++) {
			if (key_len == strlen(names[j]) && memcmp(key, names[j], key_len) == 0)
				found[j] = &members[i];
		}
	}
	if (found[0] == NULL || found[1] == NULL || found[2] == NULL || found[0]->value_len == 0)
		return false;
	parts->protected_b64 = (const char *)body + found[0]->value;
	parts->protected_len = found[0]->value_len;
	parts->payload_b64 = (const char *)body + found[1]->value;
	parts->payload_len = found[1]->value_len;
	parts->signature_b64 = (const char *)body + found[2]->value;
	parts->signature_len = found[2]->value_len;
	return true;
}

int
acme_jws_parse(const unsigned char *body, size_t len, struct acme_jws *out, const char **problem,
    char *detail, size_t detail_len)
{
	struct acme_jws_parts parts;
	json_t *root = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (body == NULL || len == 0)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "request body is empty; a JWS is required");
	if (len > ACME_JWS_MAX_BODY)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "request body is longer than %d bytes", ACME_JWS_MAX_BODY);
	/* The usual body: its parts found in place, no JSON object built
	 * and freed for them (nor copies of the three strings). */
	if (acme_jws_flat_parts(body, len, &parts))
		return acme_jws_parse_parts(&parts, ACME_JWS_OUTER, out, problem, detail, detail_len);
	root = acme_json_load_object(body, len, "request body", problem, detail, detail_len);
	if (root == NULL)
		return -1;
	rc = acme_jws_parse_object(root, ACME_JWS_OUTER, out, problem, detail, detail_len);
	json_decref(root);
	return rc;
}

int
acme_jws_parse_inner(const json_t *jws_object, struct acme_jws *out, const char **problem,
    char *detail, size_t detail_len)
{
	return acme_jws_parse_object(jws_object, ACME_JWS_INNER, out, problem, detail, detail_len);
}

void
acme_jws_free(struct acme_jws *jws)
{
	if (jws == NULL)
		return;
	free(jws->nonce);
	free(jws->url);
	free(jws->kid);
	EVP_PKEY_free(jws->jwk);
	json_decref(jws->protected_header);
	free(jws->payload);
	json_decref(jws->payload_json);
	free(jws->signing_input);
	free(jws->signature);
	memset(jws, 0, sizeof(*jws));
}

/* ---- signature verification --------------------------------------------- */

/* Longest DER ECDSA-Sig-Value of the curves we take (P-521: two INTEGERs of
 * at most 1 + 66 content bytes, each with a 2-byte header, in a SEQUENCE
 * with a 3-byte header). */
#define ACME_ECDSA_DER_MAX (3 + 2 * (2 + 1 + 66))

/* Appends DER INTEGER of the unsigned big-endian n bytes at p to out (room
 * enough: ACME_ECDSA_DER_MAX); returns the bytes written. */
static size_t
acme_der_uint(unsigned char *out, const unsigned char *p, size_t n)
{
	size_t len;

	while (n > 1 && p[0] == 0) { /* minimal: no leading zero octets */
		p++;
		n--;
	}
	len = n + (p[0] & 0x80 ? 1 : 0); /* a set top bit would read negative */
	out[0] = 0x02;
	out[1] = (unsigned char)len;
	if (len > n)
		out[2] = 0x00;
	memcpy(out + 2 + (len - n), p, n);
	return 2 + len;
}

/* JWS ECDSA signature (R || S, each coord_len bytes (at most 66): RFC 7518
 * §3.4) -> DER ECDSA-Sig-Value into der (ACME_ECDSA_DER_MAX bytes), as
 * i2d_ECDSA_SIG() writes it, without its BIGNUM and ASN.1 machinery.
 * Returns its length. */
static size_t
acme_ecdsa_raw_to_der(const unsigned char *sig, size_t coord_len,
    unsigned char der[ACME_ECDSA_DER_MAX])
{
	unsigned char body[ACME_ECDSA_DER_MAX];
	size_t body_len, hdr;

	body_len = acme_der_uint(body, sig, coord_len);
	body_len += acme_der_uint(body + body_len, sig + coord_len, coord_len);
	der[0] = 0x30;
	if (body_len < 0x80) {
		der[1] = (unsigned char)body_len;
		hdr = 2;
	} else {
		der[1] = 0x81;
		der[2] = (unsigned char)body_len;
		hdr = 3;
	}
	memcpy(der + hdr, body, body_len);
	return hdr + body_len;
}

/* The digests JWS signatures use, fetched once: naming one per call
 * (EVP_DigestVerifyInit_ex) fetches it from the provider store every time. */
static const char *const acme_jws_digest_names[] = { "SHA256", "SHA384", "SHA512" };
static EVP_MD *acme_jws_digests[3];

static void
acme_jws_digests_fetch(void)
{
	for (size_t i = 0; i < 3; i++)
		acme_jws_digests[i] = EVP_MD_fetch(NULL, acme_jws_digest_names[i], NULL);
}

/* The fetched digest called name, NULL for none (Ed25519). Should the
 * fetch have failed, NULL too: the verify init then fails (logged). */
static const EVP_MD *
acme_jws_digest(const char *name)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if (name == NULL || pthread_once(&once, acme_jws_digests_fetch) != 0)
		return NULL;
	for (size_t i = 0; i < 3; i++)
		if (strcmp(name, acme_jws_digest_names[i]) == 0)
			return acme_jws_digests[i];
	return NULL;
}

/* A key made ready to verify again and again (acme_jws.h). */
struct acme_jws_verifier {
	atomic_int refs;
	EVP_PKEY *key;
	int alg;				/* enum acme_jws_alg */
	const struct acme_ec_curve *curve;	/* EC keys */
	/* EVP_DigestVerifyInit() done once; each signature verifies on a
	 * copy. NULL for Ed25519. OpenSSL 3.0's copy reads its source and
	 * takes references atomically, but does not promise to be safe against
	 * concurrent copies of one context, so copies are made under init_lock
	 * (about a microsecond; worker threads of one account rarely meet). */
	EVP_MD_CTX *init;
	pthread_mutex_t init_lock;
	/* ES256 keys that sign often get a table for their public key
	 * (core/ecverify.h): 37 us per verification instead of ~96, for
	 * ~25 ms of CPU once and ~150 KB. So only a key that has verified
	 * ACME_JWS_TABLE_AFTER signatures in this process gets one, built on
	 * a thread of its own (acme_jws_table_build(): never on the event
	 * loop, never in a request's time), one build at a time, at most
	 * ACME_JWS_TABLES_MAX tables alive (~5 MB). It pays for itself after
	 * ~420 verifications. Until it is published (fast != NULL, never
	 * changed again) every signature takes EVP_DigestVerify(). */
	atomic_uint verified;
	atomic_bool table_started;
	_Atomic(struct ecverify_p256 *) fast;
};

#define ACME_JWS_TABLE_AFTER 64
#define ACME_JWS_TABLES_MAX 32
static atomic_bool acme_jws_table_building;
static atomic_int acme_jws_tables;
/* Build threads alive, from before pthread_create() until the thread's last
 * call into OpenSSL (acme_jws_tables_wait() waits for 0). */
static atomic_int acme_jws_table_threads;

static void *
acme_jws_table_main(void *arg)
{
	struct acme_jws_verifier *v = arg;
	struct ecverify_p256 *fast = ecverify_p256_new(v->key);

	if (fast != NULL) {
		int tables = atomic_fetch_add(&acme_jws_tables, 1) + 1;

		atomic_store(&v->fast, fast);
		log_info("acme: ES256 account key verified %d signatures: its verification "
			 "table is built (%d in this process)", ACME_JWS_TABLE_AFTER, tables);
	} else
		log_warnx("acme: no verification table for an ES256 account key (ecverify_p256_new)");
	atomic_store(&acme_jws_table_building, false);
	acme_jws_verifier_free(v);
	/* its OpenSSL thread state now, not in a destructor after the
	 * count below says it is done */
	OPENSSL_thread_stop();
	atomic_fetch_sub(&acme_jws_table_threads, 1);
	return NULL;
}

/* Counts one good ES256 verification with v and starts the build of its
 * table when it is due and none is being built. */
static void
acme_jws_table_build(struct acme_jws_verifier *v)
{
	pthread_attr_t attr;
	pthread_t thread;
	int err;

	if (atomic_fetch_add(&v->verified, 1) + 1 < ACME_JWS_TABLE_AFTER ||
	    atomic_load(&v->table_started) ||
	    atomic_load(&acme_jws_tables) >= ACME_JWS_TABLES_MAX ||
	    atomic_exchange(&acme_jws_table_building, true))
		return;
	if (atomic_exchange(&v->table_started, true)) {
		atomic_store(&acme_jws_table_building, false);
		return;
	}
	atomic_fetch_add(&v->refs, 1); /* the builder's */
	atomic_fetch_add(&acme_jws_table_threads, 1);
	if ((err = pthread_attr_init(&attr)) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		err = pthread_create(&thread, &attr, acme_jws_table_main, v);
		pthread_attr_destroy(&attr);
	}
	if (err != 0) {
		/* not retried: this key keeps EVP_DigestVerify() */
		log_warnx("pthread_create(ES256 key table): %s", strerror(err));
		atomic_store(&acme_jws_table_building, false);
		acme_jws_verifier_free(v);
		atomic_fetch_sub(&acme_jws_table_threads, 1);
	}
}

/* jws (alg ES256) checked with v's table: 1 valid, 0 invalid, -1 no table
 * or cannot tell (then EVP_DigestVerify() decides). */
static int
acme_jws_verify_fast(const struct acme_jws *jws, const struct acme_jws_verifier *v)
{
	const struct ecverify_p256 *fast = atomic_load(&v->fast);
	unsigned char digest[SHA256_DIGEST_LENGTH];

	if (fast == NULL || v->alg != ACME_JWS_ALG_ES256 || jws->alg != ACME_JWS_ALG_ES256 ||
	    jws->signature_len != 64 ||
	    SHA256((const unsigned char *)jws->signing_input, jws->signing_input_len, digest) ==
		NULL)
		return -1;
	return ecverify_p256_verify(fast, digest, jws->signature, jws->signature + 32);
}

/* The signature check itself, with the key's alg (key_alg, curve) known;
 * `init`, when not NULL, is an EVP_MD_CTX initialised for key to copy
 * instead of initialising one. */
static int
acme_jws_verify_key(const struct acme_jws *jws, EVP_PKEY *key, int key_alg,
    const struct acme_ec_curve *curve, const EVP_MD_CTX *init, pthread_mutex_t *init_lock,
    const char **problem, char *detail, size_t detail_len)
{
	EVP_MD_CTX *md_ctx = NULL;
	const unsigned char *sig = NULL;
	unsigned char der[ACME_ECDSA_DER_MAX];
	const char *digest = NULL;
	size_t sig_len = 0;
	int rc = -1, vrc;

	if (key_alg < 0)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_PUBLIC_KEY,
		    "account key type not supported");
	if (key_alg != (int)jws->alg)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_BAD_SIGNATURE_ALGORITHM,
		    "JWS alg %s does not fit the key (needs %s)", acme_jws_algorithms[jws->alg],
		    acme_jws_algorithms[key_alg]);

	sig = jws->signature;
	sig_len = jws->signature_len;
	switch (jws->alg) {
	case ACME_JWS_ALG_RS256:
		digest = "SHA256";
		/* RFC 7518 §3.3: exactly the modulus length. */
		if (sig_len != (size_t)EVP_PKEY_get_size(key))
			goto invalid;
		break;
	case ACME_JWS_ALG_ES256:
	case ACME_JWS_ALG_ES384:
	case ACME_JWS_ALG_ES512:
		if (curve == NULL) /* cannot be: the alg fits an EC key */
			goto invalid;
		digest = curve->digest;
		if (sig_len != 2 * curve->coord_len)
			goto invalid;
		if (curve->coord_len > 66) /* cannot be: see acme_ec_curves */
			goto invalid;
		sig_len = acme_ecdsa_raw_to_der(sig, curve->coord_len, der);
		sig = der;
		break;
	case ACME_JWS_ALG_EDDSA:
		digest = NULL; /* Ed25519 hashes internally */
		if (sig_len != 64)
			goto invalid;
		break;
	default:
		goto invalid;
	}

	md_ctx = EVP_MD_CTX_new();
	if (md_ctx == NULL) {
		log_ssl_warnx("EVP_MD_CTX_new");
		acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		goto out;
	}
	if (init != NULL) {
		pthread_mutex_lock(init_lock);
		vrc = EVP_MD_CTX_copy_ex(md_ctx, init);
		pthread_mutex_unlock(init_lock);
	} else {
		vrc = (digest == NULL || acme_jws_digest(digest) != NULL) &&
		    EVP_DigestVerifyInit(md_ctx, NULL, acme_jws_digest(digest), NULL, key) == 1;
	}
	if (vrc != 1) {
		log_ssl_warnx("%s(%s)", init != NULL ? "EVP_MD_CTX_copy_ex" : "EVP_DigestVerifyInit",
		    acme_jws_algorithms[jws->alg]);
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL,
		    "cannot verify %s", acme_jws_algorithms[jws->alg]);
		goto out;
	}
	/* RSA defaults to PKCS#1 v1.5 padding: RS256 as RFC 7518 §3.3 says. */
	vrc = EVP_DigestVerify(md_ctx, sig, sig_len, (const unsigned char *)jws->signing_input,
	    jws->signing_input_len);
	if (vrc != 1)
		goto invalid;
	rc = 0;
	goto out;

invalid:
	/* A bad signature is the client's problem: no log line, no stale
	 * OpenSSL errors left for the next caller. */
	ERR_clear_error();
	acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED, "JWS signature invalid");
out:
	EVP_MD_CTX_free(md_ctx);
	return rc;
}

int
acme_jws_verify(const struct acme_jws *jws, EVP_PKEY *key, const char **problem, char *detail,
    size_t detail_len)
{
	const struct acme_ec_curve *curve = NULL;
	int key_alg;

	if (jws == NULL || jws->signing_input == NULL || key == NULL)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL,
		    "no key to verify the JWS with");
	key_alg = acme_key_alg(key, &curve); /* sets curve: not in the call's arguments */
	return acme_jws_verify_key(jws, key, key_alg, curve, NULL, NULL, problem, detail,
	    detail_len);
}

struct acme_jws_verifier *
acme_jws_verifier_new(EVP_PKEY *key)
{
	struct acme_jws_verifier *v = NULL;
	const char *digest = NULL;

	if (key == NULL)
		return NULL;
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	atomic_init(&v->refs, 1);
	atomic_init(&v->verified, 0);
	atomic_init(&v->table_started, false);
	atomic_init(&v->fast, NULL);
	v->alg = acme_key_alg(key, &v->curve);
	if (pthread_mutex_init(&v->init_lock, NULL) != 0) {
		free(v);
		return NULL;
	}
	if (EVP_PKEY_up_ref(key) != 1) {
		pthread_mutex_destroy(&v->init_lock);
		free(v);
		return NULL;
	}
	v->key = key;
	if (v->alg == ACME_JWS_ALG_RS256)
		digest = "SHA256";
	else if (v->curve != NULL)
		digest = v->curve->digest;
	if (digest != NULL && acme_jws_digest(digest) != NULL) {
		v->init = EVP_MD_CTX_new();
		if (v->init == NULL ||
		    EVP_DigestVerifyInit(v->init, NULL, acme_jws_digest(digest), NULL, key) != 1) {
			/* acme_jws_verify_with() then initialises per call */
			log_ssl_warnx("EVP_DigestVerifyInit(verifier)");
			EVP_MD_CTX_free(v->init);
			v->init = NULL;
		}
	}
	return v;
}

int
acme_jws_verifier_up_ref(struct acme_jws_verifier *v)
{
	if (v == NULL)
		return -1;
	atomic_fetch_add(&v->refs, 1);
	return 0;
}

void
acme_jws_verifier_free(struct acme_jws_verifier *v)
{
	if (v == NULL || atomic_fetch_sub(&v->refs, 1) != 1)
		return;
	if (atomic_load(&v->fast) != NULL) {
		ecverify_p256_free(atomic_load(&v->fast));
		atomic_fetch_sub(&acme_jws_tables, 1);
	}
	EVP_MD_CTX_free(v->init);
	pthread_mutex_destroy(&v->init_lock);
	EVP_PKEY_free(v->key);
	free(v);
}

EVP_PKEY *
acme_jws_verifier_key(const struct acme_jws_verifier *v)
{
	return v->key;
}

int
acme_jws_verify_with(const struct acme_jws *jws, struct acme_jws_verifier *v,
    const char **problem, char *detail, size_t detail_len)
{
	int rc;

	if (jws == NULL || jws->signing_input == NULL || v == NULL)
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL,
		    "no key to verify the JWS with");
	switch (acme_jws_verify_fast(jws, v)) {
	case 1:
		return 0;
	case 0:
		/* as acme_jws_verify_key() answers a bad signature */
		ERR_clear_error();
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "JWS signature invalid");
	default:
		break;
	}
	rc = acme_jws_verify_key(jws, v->key, v->alg, v->curve, v->init, &v->init_lock, problem,
	    detail, detail_len);
	if (rc == 0 && v->alg == ACME_JWS_ALG_ES256)
		acme_jws_table_build(v);
	return rc;
}

bool
acme_jws_verifier_fast(const struct acme_jws_verifier *v)
{
	return v != NULL && atomic_load(&v->fast) != NULL;
}

void
acme_jws_tables_wait(void)
{
	const struct timespec tick = {0, 1000 * 1000};

	/* a build takes ~25 ms of CPU; 5 s covers a loaded machine */
	for (int ms = 0; ms < 5000 && atomic_load(&acme_jws_table_threads) > 0; ms++)
		nanosleep(&tick, NULL);
}

/* ---- external account binding ------------------------------------------- */

int
acme_eab_parse(const json_t *eab, const char *new_account_url, struct acme_eab *out,
    const char **problem, char *detail, size_t detail_len)
{
	struct acme_jws_parts parts;
	json_t *hdr = NULL;
	const char *alg = NULL;
	size_t i;
	int rc = -1, drc;

	memset(out, 0, sizeof(*out));
	if (acme_jws_split(eab, "externalAccountBinding", &parts, problem, detail, detail_len) != 0)
		goto out;
	hdr = acme_protected_header(&parts, "externalAccountBinding", problem, detail, detail_len);
	if (hdr == NULL)
		goto out;
	alg = json_string_value(json_object_get(hdr, "alg"));
	if (alg == NULL) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "externalAccountBinding has no string \"alg\"");
		goto out;
	}
	for (i = 0; i < sizeof(acme_eab_algorithms) / sizeof(acme_eab_algorithms[0]); i++) {
		if (strcmp(alg, acme_eab_algorithms[i]) == 0)
			break;
	}
	if (i == sizeof(acme_eab_algorithms) / sizeof(acme_eab_algorithms[0])) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "externalAccountBinding alg must be HS256, HS384 or HS512");
		goto out;
	}
	out->alg = (enum acme_eab_alg)i;
	if (acme_header_common(hdr, problem, detail, detail_len) != 0)
		goto out;
	/* RFC 8555 §7.3.4: the EAB JWS "MUST NOT contain a nonce". */
	if (json_object_get(hdr, "nonce") != NULL) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "externalAccountBinding must not have a nonce");
		goto out;
	}
	if (acme_header_string(hdr, "kid", &out->kid, problem, detail, detail_len) != 0 ||
	    acme_header_string(hdr, "url", &out->url, problem, detail, detail_len) != 0)
		goto out;
	/* Bound to this newAccount request, as the outer url is (§6.4). */
	if (new_account_url == NULL || strcmp(out->url, new_account_url) != 0) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_UNAUTHORIZED,
		    "externalAccountBinding url is not the newAccount URL");
		goto out;
	}
	drc = acme_b64url_decode_strict(
	    parts.payload_b64, parts.payload_len, &out->payload, &out->payload_len);
	if (drc == 0 && out->payload_len > 0)
		drc = acme_b64url_decode_strict(
		    parts.signature_b64, parts.signature_len, &out->mac, &out->mac_len);
	else if (drc == 0)
		drc = -1; /* the payload must be the account key, never empty */
	if (drc == -2) {
		acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		goto out;
	}
	if (drc != 0) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "externalAccountBinding payload or signature is not base64url");
		goto out;
	}
	out->signing_input = acme_signing_input(&parts, &out->signing_input_len);
	if (out->signing_input == NULL) {
		acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_decref(hdr);
	if (rc != 0)
		acme_eab_free(out);
	return rc;
}

int
acme_eab_verify(const struct acme_eab *eab, const unsigned char *mac_key, size_t mac_key_len,
    EVP_PKEY *account_key, const char **problem, char *detail, size_t detail_len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	const EVP_MD *md = NULL;
	json_t *payload = NULL;
	EVP_PKEY *bound = NULL;
	const char *ignored = NULL;
	char ignored_detail[8];
	int rc = -1;

	if (eab == NULL || eab->signing_input == NULL || account_key == NULL)
		return acme_fail(
		    problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL, "nothing to verify");
	if (mac_key == NULL || mac_key_len == 0 || mac_key_len > INT32_MAX) {
		log_warnx("acme_eab_verify: EAB key for kid %.64s is empty", eab->kid);
		return acme_fail(problem, detail, detail_len, ACME_PROBLEM_UNAUTHORIZED,
		    "externalAccountBinding cannot be verified");
	}
	switch (eab->alg) {
	case ACME_EAB_ALG_HS256:
		md = EVP_sha256();
		break;
	case ACME_EAB_ALG_HS384:
		md = EVP_sha384();
		break;
	case ACME_EAB_ALG_HS512:
		md = EVP_sha512();
		break;
	}
	if (md == NULL ||
	    HMAC(md, mac_key, (int)mac_key_len, (const unsigned char *)eab->signing_input,
	        eab->signing_input_len, mac, &mac_len) == NULL) {
		log_ssl_warnx("HMAC(eab)");
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_SERVER_INTERNAL,
		    "cannot compute the EAB MAC");
		goto out;
	}
	/* The length is public (it follows from alg); the bytes are compared
	 * in constant time. */
	if (eab->mac_len != mac_len || CRYPTO_memcmp(eab->mac, mac, mac_len) != 0) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_UNAUTHORIZED,
		    "externalAccountBinding MAC invalid");
		goto out;
	}
	/* Authentic; now it must bind the key that signed the outer JWS. */
	payload = acme_json_load_object(eab->payload, eab->payload_len,
	    "externalAccountBinding payload", problem, detail, detail_len);
	if (payload == NULL)
		goto out;
	if (acme_jwk_parse(payload, &bound, &ignored, ignored_detail, sizeof(ignored_detail)) !=
	    0) {
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_MALFORMED,
		    "externalAccountBinding payload is not a usable JWK");
		goto out;
	}
	if (EVP_PKEY_eq(bound, account_key) != 1) {
		ERR_clear_error();
		acme_fail(problem, detail, detail_len, ACME_PROBLEM_UNAUTHORIZED,
		    "externalAccountBinding binds another key than the account key");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	EVP_PKEY_free(bound);
	json_decref(payload);
	return rc;
}

void
acme_eab_free(struct acme_eab *eab)
{
	if (eab == NULL)
		return;
	free(eab->kid);
	free(eab->url);
	free(eab->payload);
	free(eab->signing_input);
	free(eab->mac);
	memset(eab, 0, sizeof(*eab));
}
