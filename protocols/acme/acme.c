/*
 * acme.c: the ACME door (RFC 8555) - routing, nonces, the directory, and the
 * pipeline every signed request goes through.
 *
 * URLs: /acme/<endpoint>/ + directory, new-nonce, new-account, new-order,
 * revoke-cert, key-change, renewal-info/<certID>, acct/<id>,
 * acct/<id>/orders, order/<id>, order/<id>/finalize, authz/<id> (or a derived
 * authorization's authz/<order id>.<index>, store_acme.h), chall/<id>,
 * cert/<id>. <endpoint> is the name of an active ACME endpoint; object ids
 * other than accounts' are random (acme_public_id()).
 *
 * Nonces are stateless to hand out: base64url(16 random bytes || 8-byte
 * big-endian issue time || HMAC-SHA256(key, the first 24 bytes) cut to 16),
 * under a key every instance shares through acme_secrets (core/store_acme.c,
 * cached here per process). Using one checks HMAC and age here, then inserts
 * it into acme_nonces in the same statement that loads the account: a second
 * use finds the row and is badNonce, whichever instance saw the first. So
 * handing out a nonce costs no database work at all.
 *
 * The POST pipeline (RFC 8555 §6.2-6.5), in order: Content-Type
 * application/jose+json (else 415 malformed); acme_jws_parse() (structure,
 * bounds, alg, jwk); jwk or kid as the resource demands (malformed); nonce
 * HMAC and age (badNonce); url equal to the request URL (unauthorized); kid
 * an account URL of this endpoint (else accountDoesNotExist); then ONE
 * statement consumes the nonce, loads the account and the object the URL
 * names (order, authorization, challenge, certificate; for newOrder and
 * finalize the generation of the cached policy facts, core/facts.h) -
 * badNonce when used before,
 * accountDoesNotExist; then the signature (acme_jws_verify_with(), with
 * the account key's verifier from a per-process cache: the statement sends
 * the stored JWK only when its thumbprint is not the cached key's, so a key
 * rolled over on any instance is never trusted); then the account's status
 * (unauthorized when deactivated). Only then does a handler run, usually
 * without another read: a POST-as-GET costs one round trip in all (plus,
 * once per database connection, the check that crash recovery did not
 * empty acme_nonces: store_acme_auth()).
 *
 * newOrder of an account this process already authenticated (its parsed
 * key and its organization and department are in the key cache) is ONE
 * round trip in all (acme_new_order_fast(), acme_order.c): the signature is
 * verified with the cached key and the order decided with the cached
 * policy facts BEFORE the statement, which consumes the nonce, checks that
 * the account is still valid with that key, organization and department
 * and that the facts generation did not move, and only then inserts the
 * order. When it inserted nothing the account is judged and the order
 * decided again as above, without a second nonce. Every other outcome (a
 * refusal, a replacing order, a key that does not verify) takes the
 * ordinary way and answers exactly as it.
 *
 * Measured costs that shaped this (OpenSSL 3.0, PostgreSQL 15): turning a
 * stored JWK into a key costs more than the ECDSA verification itself (so
 * keys are cached), and initialising a verification context a further ~3%
 * of one (so a cached key keeps one to copy); every statement costs its own
 * transaction and protocol exchange in PostgreSQL, more than the small
 * queries themselves (so reads ride on the nonce statement).
 *
 * Every response, errors included, carries a fresh Replay-Nonce and
 * Link: <directory>;rel="index" (acme_handle() adds them last).
 *
 * Decisions worth knowing: a kid is accepted with any scheme://authority as
 * long as its path is this endpoint's account path (several instances or a
 * load balancer may be addressed by different names); inactive endpoints do
 * not exist (404).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "acme_door.h"
#include "db.h"
#include "doors.h"
#include "log.h"
#include "public_random.h"
#include "store_acme.h"

/* ---------- small helpers ---------- */

#define ACME_ENDPOINT_CACHE 16
#define ACME_ENDPOINT_TTL_MS 5000
#define ACME_NONCE_RAW 40
#define ACME_NONCE_MAC_INPUT 24
#define ACME_NONCE_LIFETIME 3600
#define ACME_NONCE_SKEW 60
/* One request in this many also deletes expired nonce rows. */
#define ACME_NONCE_PRUNE_EVERY 1000
#define ACME_RETRY_AFTER_DB 2

static int64_t
acme_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
acme_json_id(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

const char *
acme_json_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static int
acme_random_b64(size_t nbytes, char *out, size_t outlen)
{
	unsigned char raw[32];
	char *text = NULL;

	if (nbytes > sizeof(raw) || public_random_bytes(raw, nbytes) != 0) {
		log_ssl_warnx("public_random_bytes(acme id)");
		return -1;
	}
	text = acme_b64url_encode(raw, nbytes);
	if (text == NULL || strlen(text) >= outlen) {
		free(text);
		return -1;
	}
	memcpy(out, text, strlen(text) + 1);
	free(text);
	return 0;
}

int
acme_public_id(char out[ACME_PUBLIC_ID_LEN])
{
	return acme_random_b64(16, out, ACME_PUBLIC_ID_LEN);
}

int
acme_token(char out[ACME_TOKEN_LEN])
{
	return acme_random_b64(32, out, ACME_TOKEN_LEN);
}

const struct acme_profile *
acme_profile_by_id(const struct acme_endpoint *ep, int64_t id)
{
	size_t i;

	for (i = 0; i < ep->n_profiles; i++)
		if (ep->profiles[i].id == id)
			return &ep->profiles[i];
	return NULL;
}

const struct acme_profile *
acme_profile_by_name(const struct acme_endpoint *ep, const char *name)
{
	size_t i;

	for (i = 0; i < ep->n_profiles; i++)
		if (strcmp(ep->profiles[i].name, name) == 0)
			return &ep->profiles[i];
	return NULL;
}

/* ---------- responses ---------- */

/* A JSON string of text, or of a placeholder when text is not UTF-8. */
static json_t *
acme_json_text(const char *text)
{
	json_t *s = json_string(text);

	return s != NULL ? s : json_string("(not valid UTF-8)");
}

void
acme_problem_json(struct acme_request *r, int status, json_t *problem)
{
	char *text = NULL;

	if (problem != NULL && json_object_set_new(problem, "status", json_integer(status)) == 0)
		text = acme_json_dump(problem);
	json_decref(problem);
	if (text == NULL) {
		static const char fallback[] =
		    "{\"type\":\"urn:ietf:params:acme:error:serverInternal\",\"status\":500}";

		log_warnx("acme_json_dump(acme problem): failed");
		http_response_set(r->resp, 500, "application/problem+json", fallback,
		    sizeof(fallback) - 1);
		return;
	}
	http_response_take(r->resp, status, "application/problem+json", (unsigned char *)text,
	    strlen(text));
}

void
acme_problem(struct acme_request *r, int status, const char *type, const char *fmt, ...)
{
	char detail[1024];
	json_t *doc = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	doc = json_object();
	if (doc != NULL) {
		json_object_set_new(doc, "type", json_string(type));
		json_object_set_new(doc, "detail", acme_json_text(detail));
	}
	acme_problem_json(r, status, doc);
}

void
acme_problem_jws(struct acme_request *r, const char *problem, const char *detail)
{
	json_t *doc = NULL;
	int status = 400;

	if (problem == NULL)
		problem = ACME_PROBLEM_SERVER_INTERNAL;
	if (strcmp(problem, ACME_PROBLEM_UNAUTHORIZED) == 0)
		status = 403;
	else if (strcmp(problem, ACME_PROBLEM_SERVER_INTERNAL) == 0)
		status = 500;
	doc = json_object();
	if (doc != NULL) {
		json_object_set_new(doc, "type", json_string(problem));
		json_object_set_new(doc, "detail",
		    acme_json_text(detail != NULL && detail[0] != '\0' ? detail : "bad request"));
		if (strcmp(problem, ACME_PROBLEM_BAD_SIGNATURE_ALGORITHM) == 0)
			json_object_set_new(doc, "algorithms", acme_jws_algorithms_json());
	}
	acme_problem_json(r, status, doc);
}

void
acme_db_failure(struct acme_request *r, const char *what)
{
	char retry[16];

	db_rollback(r->door->db);
	if (db_unavailable(r->door->db)) {
		snprintf(retry, sizeof(retry), "%d", ACME_RETRY_AFTER_DB);
		(void)http_response_header(r->resp, "Retry-After", retry);
		acme_problem(r, 503, ACME_PROBLEM_SERVER_INTERNAL,
		    "the service is temporarily unavailable; retry later");
		return;
	}
	log_warnx("acme: %s failed in the database [%s]", what, r->door->db->last_sqlstate);
	acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "internal error");
}

void
acme_reply(struct acme_request *r, int status, json_t *body, const char *location)
{
	char *text = NULL;

	if (body != NULL)
		text = acme_json_dump(body);
	json_decref(body);
	if (text == NULL) {
		log_warnx("acme_json_dump(acme reply): failed");
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "the response could not be built");
		return;
	}
	if (location != NULL)
		(void)http_response_header(r->resp, "Location", location);
	http_response_take(r->resp, status, "application/json", (unsigned char *)text,
	    strlen(text));
}

/* prefix + "/" + the formatted path, or "" when the path is ACME_URL_MAX
 * bytes or more or the whole does not fit in len. Written in place: one
 * formatting pass per part, no intermediate copy. */
static void
acme_url_v(const struct acme_request *r, char *buf, size_t len, const char *fmt, va_list ap)
{
	int n, m;

	n = snprintf(buf, len, "%s/", r->prefix);
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		return;
	}
	m = vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	if (m < 0 || m >= ACME_URL_MAX || (size_t)n + (size_t)m >= len)
		buf[0] = '\0';
}

void
acme_url(const struct acme_request *r, char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	acme_url_v(r, buf, len, fmt, ap);
	va_end(ap);
}

json_t *
acme_url_json(const struct acme_request *r, const char *fmt, ...)
{
	/* the prefix is shorter than ACME_URL_MAX and so is any path taken:
	 * the whole always fits, and "" means the path was too long */
	char url[2 * ACME_URL_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	acme_url_v(r, url, sizeof(url), fmt, ap);
	va_end(ap);
	if (url[0] == '\0')
		return NULL;
	return json_string(url);
}

/* ---------- the endpoint cache ---------- */

struct acme_endpoint_slot {
	char name[65];
	bool used;
	bool found;
	int64_t loaded_ms;
	struct acme_endpoint ep;
};

static pthread_mutex_t acme_endpoint_lock = PTHREAD_MUTEX_INITIALIZER;
static struct acme_endpoint_slot acme_endpoint_cache[ACME_ENDPOINT_CACHE];
static unsigned acme_endpoint_next;

static int
acme_int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Fills ep from the store's endpoint JSON. */
static void
acme_endpoint_parse(const json_t *j, struct acme_endpoint *ep)
{
	const json_t *settings = json_object_get(j, "settings");
	const json_t *profiles = json_object_get(j, "profiles");
	const json_t *p, *t;
	size_t i, k;

	memset(ep, 0, sizeof(*ep));
	ep->id = acme_json_id(j, "id");
	snprintf(ep->name, sizeof(ep->name), "%s",
	    acme_json_str(j, "name") != NULL ? acme_json_str(j, "name") : "");
	ep->org_id = acme_json_id(j, "org_id");
	ep->dept_id = acme_json_id(j, "dept_id");
	ep->default_profile_id = acme_json_id(j, "default_profile_id");
	/* EAB is required unless the endpoint says false in so many words */
	ep->eab_required = !json_is_false(json_object_get(settings, "eab_required"));
	ep->skip_validated =
	    json_is_true(json_object_get(settings, "skip_challenges_when_dcv_validated"));
	if (json_is_string(json_object_get(settings, "terms_of_service")))
		snprintf(ep->terms_of_service, sizeof(ep->terms_of_service), "%s",
		    acme_json_str(settings, "terms_of_service"));
	if (json_is_string(json_object_get(settings, "website")))
		snprintf(ep->website, sizeof(ep->website), "%s", acme_json_str(settings, "website"));
	json_array_foreach(profiles, i, p)
	{
		struct acme_profile *ap;

		if (ep->n_profiles >= ACME_MAX_PROFILES)
			break;
		ap = &ep->profiles[ep->n_profiles++];
		ap->id = acme_json_id(p, "id");
		snprintf(ap->name, sizeof(ap->name), "%s",
		    acme_json_str(p, "name") != NULL ? acme_json_str(p, "name") : "");
		snprintf(ap->description, sizeof(ap->description), "%s",
		    acme_json_str(p, "description") != NULL ? acme_json_str(p, "description")
							    : ap->name);
		ap->active = json_is_true(json_object_get(p, "active"));
		json_array_foreach(json_object_get(p, "terms_days"), k, t)
		{
			if (ap->n_terms < ACME_MAX_TERMS && json_integer_value(t) > 0)
				ap->terms[ap->n_terms++] = (int)json_integer_value(t);
		}
		qsort(ap->terms, ap->n_terms, sizeof(ap->terms[0]), acme_int_cmp);
	}
}

/* Copies src into *dst up to its last profile: the unused profile slots
 * are most of the struct, and copying them was a measurable part of every
 * request. */
static void
acme_endpoint_copy(struct acme_endpoint *dst, const struct acme_endpoint *src)
{
	memcpy(dst, src,
	    offsetof(struct acme_endpoint, profiles) + src->n_profiles * sizeof(src->profiles[0]));
}

/* The active ACME endpoint `name` into *ep: 1, 0 (none), -1 (database). Only
 * ep->profiles[0..n_profiles) are written. */
static int
acme_endpoint_get(struct door_context *door, const char *name, struct acme_endpoint *ep)
{
	struct acme_endpoint_slot *slot = NULL;
	json_t *j = NULL;
	int64_t now = acme_now_ms();
	size_t i;
	int r;

	pthread_mutex_lock(&acme_endpoint_lock);
	for (i = 0; i < ACME_ENDPOINT_CACHE; i++) {
		slot = &acme_endpoint_cache[i];
		if (slot->used && strcmp(slot->name, name) == 0 &&
		    now - slot->loaded_ms < ACME_ENDPOINT_TTL_MS) {
			r = slot->found ? 1 : 0;
			if (r == 1)
				acme_endpoint_copy(ep, &slot->ep);
			pthread_mutex_unlock(&acme_endpoint_lock);
			return r;
		}
	}
	pthread_mutex_unlock(&acme_endpoint_lock);

	if (db_ensure(door->db) != 0)
		return -1;
	r = store_acme_endpoint(door->db, name, &j);
	if (r < 0)
		return -1;
	if (r == 1)
		acme_endpoint_parse(j, ep);
	json_decref(j);

	pthread_mutex_lock(&acme_endpoint_lock);
	slot = NULL;
	for (i = 0; i < ACME_ENDPOINT_CACHE; i++)
		if (acme_endpoint_cache[i].used && strcmp(acme_endpoint_cache[i].name, name) == 0)
			slot = &acme_endpoint_cache[i];
	if (slot == NULL)
		slot = &acme_endpoint_cache[acme_endpoint_next++ % ACME_ENDPOINT_CACHE];
	slot->used = true;
	snprintf(slot->name, sizeof(slot->name), "%s", name);
	slot->found = r == 1;
	slot->loaded_ms = now;
	if (r == 1)
		acme_endpoint_copy(&slot->ep, ep);
	pthread_mutex_unlock(&acme_endpoint_lock);
	return r;
}

/* ---------- nonces ---------- */

static pthread_mutex_t acme_nonce_lock = PTHREAD_MUTEX_INITIALIZER;
static struct store_acme_nonce_key acme_nonce_key_cache;
static bool acme_nonce_key_loaded;

/* The current nonce key into *key (loading it when needed). 0 or -1. */
static int
acme_nonce_key(struct door_context *door, struct store_acme_nonce_key *key)
{
	struct store_acme_nonce_key fresh;

	pthread_mutex_lock(&acme_nonce_lock);
	if (acme_nonce_key_loaded) {
		memcpy(key, &acme_nonce_key_cache, sizeof(*key));
		pthread_mutex_unlock(&acme_nonce_lock);
		return 0;
	}
	pthread_mutex_unlock(&acme_nonce_lock);

	/* Two threads may load at once: both get the same stored key. */
	if (db_ensure(door->db) != 0 || store_acme_nonce_key(door->db, &fresh) != 0)
		return -1;
	pthread_mutex_lock(&acme_nonce_lock);
	memcpy(&acme_nonce_key_cache, &fresh, sizeof(fresh));
	acme_nonce_key_loaded = true;
	memcpy(key, &fresh, sizeof(*key));
	pthread_mutex_unlock(&acme_nonce_lock);
	OPENSSL_cleanse(&fresh, sizeof(fresh));
	return 0;
}

/* The key whose sentinel vanished: drop it so the next use reloads (and
 * rotates) it. */
static void
acme_nonce_key_forget(const char *sentinel)
{
	pthread_mutex_lock(&acme_nonce_lock);
	if (acme_nonce_key_loaded && strcmp(acme_nonce_key_cache.sentinel, sentinel) == 0) {
		OPENSSL_cleanse(&acme_nonce_key_cache, sizeof(acme_nonce_key_cache));
		acme_nonce_key_loaded = false;
	}
	pthread_mutex_unlock(&acme_nonce_lock);
}

/*
 * The nonce HMAC runs twice per request (check, then a fresh nonce). The
 * one-shot HMAC() fetches HMAC and SHA-256 from the provider store and keys
 * a new context every call, which cost more than the MAC itself; so each
 * thread keeps one HMAC-SHA256 context keyed with the key it last saw and
 * only re-initialises it (EVP_MAC_init() without a key keeps the key). A
 * different key (rotation) re-keys it. The context and its copy of the key
 * are freed and cleansed when the thread ends.
 */
struct acme_nonce_mac_state {
	EVP_MAC_CTX *ctx;
	bool keyed;
	unsigned char key[STORE_ACME_NONCE_KEY_LEN];
};

static EVP_MAC *acme_hmac;
static pthread_key_t acme_nonce_mac_tls;
static bool acme_nonce_mac_tls_ok;

static void
acme_nonce_mac_state_free(void *p)
{
	struct acme_nonce_mac_state *st = p;

	EVP_MAC_CTX_free(st->ctx);
	OPENSSL_cleanse(st, sizeof(*st));
	free(st);
}

static void
acme_nonce_mac_once(void)
{
	acme_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (acme_hmac == NULL)
		log_ssl_warnx("EVP_MAC_fetch(HMAC)");
	acme_nonce_mac_tls_ok = pthread_key_create(&acme_nonce_mac_tls,
	    acme_nonce_mac_state_free) == 0;
}

/* This thread's HMAC-SHA256 context, initialised for a new MAC under key,
 * or NULL (logged). */
static EVP_MAC_CTX *
acme_nonce_mac_ctx(const struct store_acme_nonce_key *key)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct acme_nonce_mac_state *st = NULL;
	OSSL_PARAM params[2];

	if (pthread_once(&once, acme_nonce_mac_once) != 0 || acme_hmac == NULL ||
	    !acme_nonce_mac_tls_ok)
		return NULL;
	st = pthread_getspecific(acme_nonce_mac_tls);
	if (st == NULL) {
		if ((st = calloc(1, sizeof(*st))) == NULL)
			return NULL;
		if ((st->ctx = EVP_MAC_CTX_new(acme_hmac)) == NULL ||
		    pthread_setspecific(acme_nonce_mac_tls, st) != 0) {
			log_ssl_warnx("EVP_MAC_CTX_new(nonce HMAC)");
			acme_nonce_mac_state_free(st);
			return NULL;
		}
	}
	if (st->keyed && CRYPTO_memcmp(st->key, key->key, sizeof(st->key)) == 0) {
		if (EVP_MAC_init(st->ctx, NULL, 0, NULL) == 1)
			return st->ctx;
	} else {
		st->keyed = false;
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		if (EVP_MAC_init(st->ctx, key->key, sizeof(key->key), params) == 1) {
			memcpy(st->key, key->key, sizeof(st->key));
			st->keyed = true;
			return st->ctx;
		}
	}
	st->keyed = false;
	log_ssl_warnx("EVP_MAC_init(nonce HMAC)");
	return NULL;
}

/* The MAC of a nonce's first ACME_NONCE_MAC_INPUT bytes into mac. 0, or -1
 * (logged): then there is no nonce to hand out and none is accepted - a
 * failed MAC must never stand in for one (two failures would compare
 * equal). */
static int
acme_nonce_mac(const struct store_acme_nonce_key *key, const unsigned char *in,
    unsigned char mac[EVP_MAX_MD_SIZE])
{
	EVP_MAC_CTX *ctx = acme_nonce_mac_ctx(key);
	size_t mac_len = 0;

	if (ctx == NULL || EVP_MAC_update(ctx, in, ACME_NONCE_MAC_INPUT) != 1 ||
	    EVP_MAC_final(ctx, mac, &mac_len, EVP_MAX_MD_SIZE) != 1 ||
	    mac_len < ACME_NONCE_RAW - ACME_NONCE_MAC_INPUT) {
		log_ssl_warnx("nonce HMAC");
		OPENSSL_cleanse(mac, EVP_MAX_MD_SIZE);
		return -1;
	}
	return 0;
}

/* A new nonce (base64url text, newly allocated), or NULL. */
static char *
acme_nonce_new(struct door_context *door)
{
	struct store_acme_nonce_key key;
	unsigned char raw[ACME_NONCE_RAW], mac[EVP_MAX_MD_SIZE];
	uint64_t now = (uint64_t)time(NULL);
	char *text = NULL;
	int i;

	if (acme_nonce_key(door, &key) != 0)
		return NULL;
	if (public_random_bytes(raw, 16) != 0) {
		log_ssl_warnx("public_random_bytes(nonce)");
		goto out;
	}
	for (i = 0; i < 8; i++)
		raw[16 + i] = (unsigned char)(now >> (56 - 8 * i));
	if (acme_nonce_mac(&key, raw, mac) != 0)
		goto out;
	memcpy(raw + ACME_NONCE_MAC_INPUT, mac, ACME_NONCE_RAW - ACME_NONCE_MAC_INPUT);
	text = acme_b64url_encode(raw, sizeof(raw));
out:
	OPENSSL_cleanse(&key, sizeof(key));
	return text;
}

/* Checks a nonce's MAC and age (not yet whether it was used). 1 with
 * *expires and the key's sentinel, 0 when bad, -1 when no key or no MAC
 * could be had. */
static int
acme_nonce_check(struct door_context *door, const char *nonce, int64_t *expires,
    char sentinel[STORE_ACME_SENTINEL_LEN])
{
	struct store_acme_nonce_key key;
	unsigned char *raw = NULL, mac[EVP_MAX_MD_SIZE];
	size_t raw_len = 0;
	uint64_t issued = 0;
	int64_t now = (int64_t)time(NULL);
	int i, rc = 0;

	if (acme_nonce_key(door, &key) != 0)
		return -1;
	raw = acme_b64url_decode(nonce, strlen(nonce), &raw_len);
	if (raw == NULL || raw_len != ACME_NONCE_RAW)
		goto out;
	if (acme_nonce_mac(&key, raw, mac) != 0) {
		rc = -1; /* answered as a server failure, not as badNonce */
		goto out;
	}
	if (CRYPTO_memcmp(mac, raw + ACME_NONCE_MAC_INPUT, ACME_NONCE_RAW - ACME_NONCE_MAC_INPUT) !=
	    0)
		goto out;
	for (i = 0; i < 8; i++)
		issued = issued << 8 | raw[16 + i];
	if ((int64_t)issued > now + ACME_NONCE_SKEW ||
	    now - (int64_t)issued >= ACME_NONCE_LIFETIME)
		goto out;
	*expires = (int64_t)issued + ACME_NONCE_LIFETIME + ACME_NONCE_SKEW;
	memcpy(sentinel, key.sentinel, STORE_ACME_SENTINEL_LEN);
	rc = 1;
out:
	free(raw);
	OPENSSL_cleanse(&key, sizeof(key));
	return rc;
}

/* True about once in ACME_NONCE_PRUNE_EVERY calls per thread. */
static bool
acme_prune_now(void)
{
	static _Thread_local uint64_t state;

	if (state == 0 && RAND_bytes((unsigned char *)&state, sizeof(state)) != 1)
		state = (uint64_t)acme_now_ms() | 1;
	if (state == 0)
		state = 1;
	/* xorshift64: cheap, and a guess of when we prune is worth nothing */
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state % ACME_NONCE_PRUNE_EVERY == 0;
}

/* ---------- the directory and newNonce ---------- */

static void
acme_directory(struct acme_request *r)
{
	json_t *dir = NULL, *meta = NULL, *profiles = NULL;
	size_t i;

	dir = json_object();
	meta = json_object();
	profiles = json_object();
	if (dir == NULL || meta == NULL || profiles == NULL)
		goto fail;
	json_object_set_new(dir, "newNonce", acme_url_json(r, "new-nonce"));
	json_object_set_new(dir, "newAccount", acme_url_json(r, "new-account"));
	json_object_set_new(dir, "newOrder", acme_url_json(r, "new-order"));
	json_object_set_new(dir, "revokeCert", acme_url_json(r, "revoke-cert"));
	json_object_set_new(dir, "keyChange", acme_url_json(r, "key-change"));
	json_object_set_new(dir, "renewalInfo", acme_url_json(r, "renewal-info"));
	if (r->ep.terms_of_service[0] != '\0')
		json_object_set_new(meta, "termsOfService", json_string(r->ep.terms_of_service));
	if (r->ep.website[0] != '\0')
		json_object_set_new(meta, "website", json_string(r->ep.website));
	json_object_set_new(meta, "externalAccountRequired", json_boolean(r->ep.eab_required));
	for (i = 0; i < r->ep.n_profiles; i++)
		if (r->ep.profiles[i].active)
			json_object_set_new(profiles, r->ep.profiles[i].name,
			    acme_json_text(r->ep.profiles[i].description));
	json_object_set_new(meta, "profiles", profiles);
	profiles = NULL;
	json_object_set_new(dir, "meta", meta);
	meta = NULL;
	acme_reply(r, 200, dir, NULL);
	return;
fail:
	json_decref(dir);
	json_decref(meta);
	json_decref(profiles);
	acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
}

static void
acme_new_nonce(struct acme_request *r)
{
	(void)http_response_header(r->resp, "Cache-Control", "no-store");
	/* HEAD 200, GET 204 (RFC 8555 §7.2); the nonce itself is added with
	 * every response's headers. */
	http_response_take(r->resp, r->req->method == HTTP_HEAD ? 200 : 204, NULL, NULL, 0);
}

/* ---------- authentication ---------- */

enum acme_auth {
	ACME_AUTH_KID, /* an existing, valid account */
	ACME_AUTH_JWK, /* a key (newAccount) */
	ACME_AUTH_ANY, /* either (revokeCert) */
};

/* The account id of a kid naming an account of this endpoint (any
 * scheme://authority, path /acme/<endpoint>/acct/<digits>), or 0. */
static int64_t
acme_kid_account(const struct acme_request *r, const char *kid)
{
	char path[128];
	const char *p = NULL, *digits = NULL;
	int64_t id = 0;

	if (strncmp(kid, "https://", 8) == 0)
		p = kid + 8;
	else if (strncmp(kid, "http://", 7) == 0)
		p = kid + 7;
	else
		return 0;
	p = strchr(p, '/');
	if (p == NULL)
		return 0;
	snprintf(path, sizeof(path), "/acme/%s/acct/", r->ep.name);
	if (strncmp(p, path, strlen(path)) != 0)
		return 0;
	digits = p + strlen(path);
	if (*digits == '\0' || *digits == '0' || strlen(digits) > 18)
		return 0;
	for (p = digits; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		id = id * 10 + (*p - '0');
	}
	return id;
}

/* ---------- account keys ---------- */

/*
 * Parsed account keys, per process: turning a stored JWK into an EVP_PKEY
 * costs more than verifying the signature with it (OpenSSL 3 builds the key
 * through its provider machinery), and every signed request needs one.
 * Direct-mapped by account id. Only the key material is cached: the
 * account's status and thumbprint come from the database on every request.
 * Before its auth statement a request takes the cached key of its kid's
 * account (acme_key_cache_get()) and passes that key's thumbprint; the
 * statement returns the stored JWK only when the stored thumbprint differs
 * (a key rollover on any instance), and the returned thumbprint must equal
 * the held one for the held key to be used (acme_account_key()). EVP_PKEY
 * is safe to share between threads for verification; each user holds its
 * own reference.
 */
#define ACME_KEY_CACHE 1024

struct acme_key_slot {
	int64_t account_id;
	char thumbprint[ACME_JWK_THUMBPRINT_LEN];
	struct acme_jws_verifier *verifier;
	/* the account as a request last authenticated it (valid, with this
	 * key): newOrder decides with these before its one statement, which
	 * checks them (acme_new_order_fast()) */
	bool account_known;
	int64_t org_id, dept_id;
};

static pthread_mutex_t acme_key_lock = PTHREAD_MUTEX_INITIALIZER;
static struct acme_key_slot acme_key_cache[ACME_KEY_CACHE];

/* The cached key of account `id` (a new reference the caller frees) with its
 * thumbprint in `thumb`, or NULL (thumb "") when none is cached; *known (when
 * not NULL) true with the account's *org_id and *dept_id when a request
 * authenticated it with that key (acme_key_cache_account()). */
static struct acme_jws_verifier *
acme_key_cache_get(int64_t id, char thumb[ACME_JWK_THUMBPRINT_LEN], bool *known,
    int64_t *org_id, int64_t *dept_id)
{
	struct acme_key_slot *slot = &acme_key_cache[(uint64_t)id % ACME_KEY_CACHE];
	struct acme_jws_verifier *v = NULL;

	thumb[0] = '\0';
	if (known != NULL)
		*known = false;
	pthread_mutex_lock(&acme_key_lock);
	if (slot->verifier != NULL && slot->account_id == id &&
	    acme_jws_verifier_up_ref(slot->verifier) == 0) {
		v = slot->verifier;
		memcpy(thumb, slot->thumbprint, ACME_JWK_THUMBPRINT_LEN);
		if (known != NULL && slot->account_known) {
			*known = true;
			*org_id = slot->org_id;
			*dept_id = slot->dept_id;
		}
	}
	pthread_mutex_unlock(&acme_key_lock);
	return v;
}

/* Remembers that account id, holding the cached key of thumbprint thumb,
 * was valid with org_id and dept_id (0: none) when a request of it was
 * authenticated. */
static void
acme_key_cache_account(int64_t id, const char *thumb, int64_t org_id, int64_t dept_id)
{
	struct acme_key_slot *slot = &acme_key_cache[(uint64_t)id % ACME_KEY_CACHE];

	pthread_mutex_lock(&acme_key_lock);
	if (slot->verifier != NULL && slot->account_id == id &&
	    strcmp(slot->thumbprint, thumb) == 0) {
		slot->account_known = true;
		slot->org_id = org_id;
		slot->dept_id = dept_id;
	}
	pthread_mutex_unlock(&acme_key_lock);
}

/* Caches `v` (the caller keeps its reference) as account id's key with
 * thumbprint thumb. */
static void
acme_key_cache_put(int64_t id, const char *thumb, struct acme_jws_verifier *v)
{
	struct acme_key_slot *slot = &acme_key_cache[(uint64_t)id % ACME_KEY_CACHE];
	struct acme_jws_verifier *old = NULL;

	if (acme_jws_verifier_up_ref(v) != 0)
		return;
	pthread_mutex_lock(&acme_key_lock);
	old = slot->verifier;
	slot->verifier = v;
	slot->account_id = id;
	slot->account_known = false;
	snprintf(slot->thumbprint, sizeof(slot->thumbprint), "%s", thumb);
	pthread_mutex_unlock(&acme_key_lock);
	acme_jws_verifier_free(old);
}

/* The key of `account` as its auth statement returned it: `held` (the
 * cached key the request passed, with thumbprint held_thumb) when that is
 * the stored thumbprint, else the stored JWK the statement then sent
 * (parsed and cached). A new reference the caller frees, or NULL (logged). */
static struct acme_jws_verifier *
acme_account_key(const json_t *account, struct acme_jws_verifier *held, const char *held_thumb)
{
	int64_t id = acme_json_id(account, "id");
	const char *thumb = acme_json_str(account, "thumbprint");
	const json_t *jwk = json_object_get(account, "jwk");
	struct acme_jws_verifier *v = NULL;
	const char *problem = NULL;
	char detail[256] = "";
	EVP_PKEY *key = NULL;

	if (thumb == NULL || thumb[0] == '\0' || strlen(thumb) >= ACME_JWK_THUMBPRINT_LEN) {
		log_warnx("acme: account %" PRId64 " has no usable key thumbprint", id);
		return NULL;
	}
	if (held != NULL && strcmp(held_thumb, thumb) == 0 && acme_jws_verifier_up_ref(held) == 0)
		return held;
	if (jwk == NULL) {
		/* the statement held back the JWK of a key we do not hold */
		log_warnx("acme: account %" PRId64 ": no stored JWK and no cached key of its "
			  "thumbprint", id);
		return NULL;
	}
	if (acme_jwk_parse(jwk, &key, &problem, detail, sizeof(detail)) != 0) {
		log_warnx("acme_jwk_parse(account %" PRId64 "): stored key unusable: %s", id, detail);
		return NULL;
	}
	v = acme_jws_verifier_new(key);
	EVP_PKEY_free(key);
	if (v == NULL) {
		log_warnx("acme_jws_verifier_new(account %" PRId64 "): out of memory", id);
		return NULL;
	}
	acme_key_cache_put(id, thumb, v);
	return v;
}

/* Runs the POST pipeline (see the top of this file), loading the object
 * `obj` named `public_id` with the account. 0 when the handler may run, -1
 * after answering. A newOrder (STORE_ACME_OBJ_FACTS) of an account this
 * process authenticated before is tried in one statement first
 * (acme_new_order_fast()): when that answered, so does this (-1). */
static int
acme_authenticate(struct acme_request *r, enum acme_auth mode, enum store_acme_object obj,
    const char *public_id)
{
	const char *ctype = http_request_header(r->req, "Content-Type");
	const char *problem = NULL;
	char detail[256] = "", sentinel[STORE_ACME_SENTINEL_LEN];
	char thumb[ACME_JWK_THUMBPRINT_LEN], held_thumb[ACME_JWK_THUMBPRINT_LEN] = "";
	struct acme_jws_verifier *held = NULL;
	struct store_acme_auth_in in;
	struct store_acme_auth_out out;
	int64_t expires = 0, kid_id = 0, org_id = 0, dept_id = 0;
	bool known = false;
	size_t len;
	int r_nonce;

	memset(&out, 0, sizeof(out));
	len = strlen("application/jose+json");
	if (ctype == NULL || strncasecmp(ctype, "application/jose+json", len) != 0 ||
	    (ctype[len] != '\0' && ctype[len] != ';' && ctype[len] != ' ')) {
		acme_problem(r, 415, ACME_PROBLEM_MALFORMED,
		    "the Content-Type of an ACME request must be application/jose+json");
		return -1;
	}
	if (acme_jws_parse(r->req->body, r->req->body_len, &r->jws, &problem, detail,
		sizeof(detail)) != 0) {
		acme_problem_jws(r, problem, detail);
		return -1;
	}
	if (mode == ACME_AUTH_KID && r->jws.kid == NULL) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "this request must be signed by an account key and carry \"kid\"");
		return -1;
	}
	if (mode == ACME_AUTH_JWK && r->jws.jwk == NULL) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "this request must carry the account key as \"jwk\"");
		return -1;
	}
	r_nonce = acme_nonce_check(r->door, r->jws.nonce, &expires, sentinel);
	if (r_nonce < 0) {
		acme_db_failure(r, "nonce key");
		return -1;
	}
	if (r_nonce == 0) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_NONCE, "the nonce is not one of ours or expired");
		return -1;
	}
	if (strcmp(r->jws.url, r->url) != 0) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED,
		    "the JWS \"url\" is not the URL this request was sent to");
		return -1;
	}
	if (r->jws.kid != NULL) {
		kid_id = acme_kid_account(r, r->jws.kid);
		if (kid_id == 0) {
			acme_problem(r, 400, ACME_PROBLEM_ACCOUNT_DOES_NOT_EXIST,
			    "\"kid\" is not an account URL of this ACME endpoint");
			return -1;
		}
	} else if (acme_jwk_thumbprint(r->jws.jwk, thumb) != 0) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_PUBLIC_KEY, "unsupported account key");
		return -1;
	}

	memset(&in, 0, sizeof(in));
	in.nonce = r->jws.nonce;
	in.nonce_expires = expires;
	in.prune = acme_prune_now();
	in.sentinel = sentinel;
	in.endpoint_id = r->ep.id;
	in.account_id = kid_id;
	in.thumbprint = r->jws.kid == NULL ? thumb : NULL;
	if (kid_id != 0) {
		held = acme_key_cache_get(kid_id, held_thumb, &known, &org_id, &dept_id);
		in.key_thumbprint = held_thumb;
	}
	in.object = obj;
	in.public_id = public_id;
	in.authz_index = r->authz_index;
	if (obj == STORE_ACME_OBJ_FACTS && held != NULL && known) {
		if (db_ensure(r->door->db) != 0) {
			acme_jws_verifier_free(held);
			acme_db_failure(r, "nonce and account");
			return -1;
		}
		if (acme_new_order_fast(r, &in, held, held_thumb, org_id, dept_id) != 0) {
			acme_jws_verifier_free(held);
			return -1; /* answered */
		}
	}
	if (db_ensure(r->door->db) != 0 || store_acme_auth(r->door->db, &in, &out) != 0) {
		acme_jws_verifier_free(held);
		acme_db_failure(r, "nonce and account");
		return -1;
	}
	return acme_auth_finish(r, &out, held, held_thumb, sentinel);
}

int
acme_auth_finish(struct acme_request *r, struct store_acme_auth_out *out,
    struct acme_jws_verifier *held, const char *held_thumb, const char *sentinel)
{
	const char *problem = NULL, *status = NULL;
	char detail[256] = "";

	r->account = out->account;
	r->object = out->object;
	r->facts_generation = out->facts_generation;
	out->account = out->object = NULL;
	if (r->jws.kid != NULL && r->account != NULL && out->nonce_fresh) {
		r->verifier = acme_account_key(r->account, held, held_thumb);
		if (r->verifier != NULL &&
		    EVP_PKEY_up_ref(acme_jws_verifier_key(r->verifier)) == 1)
			r->key = acme_jws_verifier_key(r->verifier);
	}
	acme_jws_verifier_free(held);
	if (!out->sentinel_ok) {
		acme_nonce_key_forget(sentinel);
		acme_problem(r, 400, ACME_PROBLEM_BAD_NONCE,
		    "the nonce key was replaced; retry with a new nonce");
		return -1;
	}
	if (!out->nonce_fresh) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_NONCE, "the nonce was used before");
		return -1;
	}
	if (r->account != NULL)
		r->account_id = acme_json_id(r->account, "id");

	if (r->jws.kid != NULL) {
		if (r->account == NULL) {
			acme_problem(r, 400, ACME_PROBLEM_ACCOUNT_DOES_NOT_EXIST,
			    "no such account at this ACME endpoint");
			return -1;
		}
		if (r->key == NULL) {
			acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "internal error");
			return -1;
		}
	} else {
		r->key = r->jws.jwk;
		if (EVP_PKEY_up_ref(r->key) != 1) {
			r->key = NULL;
			acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "internal error");
			return -1;
		}
	}
	if ((r->verifier != NULL
		? acme_jws_verify_with(&r->jws, r->verifier, &problem, detail, sizeof(detail))
		: acme_jws_verify(&r->jws, r->key, &problem, detail, sizeof(detail))) != 0) {
		acme_problem_jws(r, problem, detail);
		return -1;
	}
	/* Only a verified request learns that an account is deactivated. */
	status = acme_json_str(r->account, "status");
	if (r->jws.kid != NULL && (status == NULL || strcmp(status, "valid") != 0)) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED, "the account is %s",
		    status != NULL ? status : "not valid");
		return -1;
	}
	if (r->jws.kid != NULL && r->verifier != NULL)
		acme_key_cache_account(r->account_id, acme_json_str(r->account, "thumbprint"),
		    acme_json_id(r->account, "org_id"), acme_json_id(r->account, "dept_id"));
	return 0;
}

/* ---------- routing ---------- */

/* Splits rest ("a/b/c") in place into at most max segments; the count, or
 * -1 when there are more or one is empty. */
static int
acme_split(char *rest, char **seg, int max)
{
	int n = 0;
	char *slash = NULL;

	for (;;) {
		if (n >= max || *rest == '\0')
			return -1;
		seg[n++] = rest;
		slash = strchr(rest, '/');
		if (slash == NULL)
			return n;
		*slash = '\0';
		rest = slash + 1;
	}
}

static void
acme_method_not_allowed(struct acme_request *r, const char *allow)
{
	(void)http_response_header(r->resp, "Allow", allow);
	acme_problem(r, 405, ACME_PROBLEM_MALFORMED, "method %s is not allowed here%s",
	    r->req->method_name,
	    strcmp(allow, "POST") == 0 ? " (use POST-as-GET)" : "");
}

static void
acme_not_found(struct acme_request *r)
{
	acme_problem(r, 404, ACME_PROBLEM_MALFORMED, "no such resource");
}

/* A POST to rest (split into seg[0..n)). */
static void
acme_route_post(struct acme_request *r, char **seg, int n)
{
	const char *what = seg[0];
	const enum store_acme_object none = STORE_ACME_OBJ_NONE;

	if (n == 1 && strcmp(what, "new-account") == 0) {
		if (acme_authenticate(r, ACME_AUTH_JWK, none, NULL) == 0)
			acme_new_account(r);
	} else if (n == 1 && strcmp(what, "new-order") == 0) {
		if (acme_authenticate(r, ACME_AUTH_KID, STORE_ACME_OBJ_FACTS, NULL) == 0)
			acme_new_order(r);
	} else if (n == 1 && strcmp(what, "revoke-cert") == 0) {
		if (acme_authenticate(r, ACME_AUTH_ANY, none, NULL) == 0)
			acme_revoke(r);
	} else if (n == 1 && strcmp(what, "key-change") == 0) {
		if (acme_authenticate(r, ACME_AUTH_KID, none, NULL) == 0)
			acme_key_change(r);
	} else if (n == 2 && strcmp(what, "acct") == 0) {
		if (acme_authenticate(r, ACME_AUTH_KID, none, NULL) == 0)
			acme_account(r, seg[1]);
	} else if (n == 3 && strcmp(what, "acct") == 0 && strcmp(seg[2], "orders") == 0) {
		if (acme_authenticate(r, ACME_AUTH_KID, none, NULL) == 0)
			acme_orders(r, seg[1]);
	} else if (n == 2 && strcmp(what, "order") == 0) {
		if (acme_authenticate(r, ACME_AUTH_KID, STORE_ACME_OBJ_ORDER, seg[1]) == 0)
			acme_order(r);
	} else if (n == 3 && strcmp(what, "order") == 0 && strcmp(seg[2], "finalize") == 0) {
		if (acme_authenticate(r, ACME_AUTH_KID, STORE_ACME_OBJ_FINALIZE, seg[1]) == 0)
			acme_finalize(r);
	} else if (n == 2 && strcmp(what, "authz") == 0) {
		/* a stored authorization's public id, or a derived one's
		 * <order>.<index>; anything else with the separator is no
		 * authorization: authenticated all the same, then 404 */
		enum store_acme_object obj = STORE_ACME_OBJ_AUTHZ;

		if (strchr(seg[1], ACME_DERIVED_AUTHZ_SEP[0]) != NULL)
			obj = acme_derived_authz_parse(seg[1], &r->authz_index)
			    ? STORE_ACME_OBJ_DERIVED_AUTHZ : none;
		if (acme_authenticate(r, ACME_AUTH_KID, obj, obj == none ? NULL : seg[1]) == 0)
			acme_authz(r);
	} else if (n == 2 && strcmp(what, "chall") == 0) {
		if (acme_authenticate(r, ACME_AUTH_KID, STORE_ACME_OBJ_CHALL, seg[1]) == 0)
			acme_chall(r);
	} else if (n == 2 && strcmp(what, "cert") == 0) {
		if (acme_authenticate(r, ACME_AUTH_KID, STORE_ACME_OBJ_CERT, seg[1]) == 0)
			acme_cert(r);
	} else {
		acme_not_found(r);
	}
}

static void
acme_route(struct acme_request *r, char *rest)
{
	enum http_method m = r->req->method;
	bool get = m == HTTP_GET || m == HTTP_HEAD;
	char *seg[4];
	int n;

	n = acme_split(rest, seg, 4);
	if (n < 0) {
		acme_not_found(r);
		return;
	}
	if (n == 1 && strcmp(seg[0], "directory") == 0) {
		if (get)
			acme_directory(r);
		else
			acme_method_not_allowed(r, "GET, HEAD");
		return;
	}
	if (n == 1 && strcmp(seg[0], "new-nonce") == 0) {
		if (get)
			acme_new_nonce(r);
		else
			acme_method_not_allowed(r, "GET, HEAD");
		return;
	}
	if (strcmp(seg[0], "renewal-info") == 0) {
		if (n != 2)
			acme_not_found(r);
		else if (get)
			acme_renewal_info(r, seg[1]);
		else
			acme_method_not_allowed(r, "GET, HEAD");
		return;
	}
	if (m != HTTP_POST) {
		acme_method_not_allowed(r, "POST");
		return;
	}
	acme_route_post(r, seg, n);
}

/* Replay-Nonce and Link rel="index" on every response. */
static void
acme_finish(struct acme_request *r, bool have_endpoint)
{
	char link[ACME_URL_MAX + 32];
	char *nonce = NULL;

	nonce = acme_nonce_new(r->door);
	if (nonce != NULL) {
		(void)http_response_header(r->resp, "Replay-Nonce", nonce);
		free(nonce);
	}
	if (have_endpoint) {
		snprintf(link, sizeof(link), "<%s/directory>;rel=\"index\"", r->prefix);
		(void)http_response_header(r->resp, "Link", link);
	}
}

/* acme_handle()'s request, one per thread (see there). */
static _Thread_local struct acme_request acme_request_slot;

void
acme_handle(const struct http_request *req, struct door_context *ctx, struct http_response *resp)
{
	struct acme_request *r = NULL;
	const char *p = req->path + strlen("/acme/");
	const char *slash = NULL;
	char name[65], rest_buf[ACME_URL_MAX], *rest = NULL;
	size_t name_len, rest_len;
	bool have_endpoint = false;
	int found;

	/* Large (the endpoint's profiles): kept off the worker's stack, in
	 * the calling thread's own slot, which no other request uses while
	 * this one runs (a handler finishes before its thread takes the next
	 * one, and acme_handle() is never re-entered). A malloc() of it per
	 * request made glibc consolidate every fastbin each time (a request
	 * of 1 KiB or more does; its free did again, merged into the top
	 * chunk). Zeroed but for the endpoint's profile slots, which
	 * acme_endpoint_get() fills as far as they are used. */
	r = &acme_request_slot;
	memset(r, 0, offsetof(struct acme_request, ep.profiles));
	r->req = req;
	r->door = ctx;
	r->resp = resp;

	if (strncmp(req->path, "/acme/", 6) != 0 || (slash = strchr(p, '/')) == NULL) {
		acme_not_found(r);
		goto out;
	}
	name_len = (size_t)(slash - p);
	if (name_len == 0 || name_len >= sizeof(name)) {
		acme_not_found(r);
		goto out;
	}
	memcpy(name, p, name_len);
	name[name_len] = '\0';
	found = acme_endpoint_get(ctx, name, &r->ep);
	if (found < 0) {
		acme_db_failure(r, "endpoint");
		goto out;
	}
	if (found == 0) {
		acme_problem(r, 404, ACME_PROBLEM_MALFORMED, "no such ACME endpoint");
		goto out;
	}
	have_endpoint = true;
	/* ep.name is NUL-terminated within its array; the bound tells GCC,
	 * which sees r inside acme_request_slot and would otherwise assume
	 * the name may run on through the rest of it (-Wformat-truncation). */
	snprintf(r->prefix, sizeof(r->prefix), "%s/acme/%.*s", req->base_url,
	    (int)sizeof(r->ep.name) - 1, r->ep.name);
	snprintf(r->url, sizeof(r->url), "%s%s%s%s", req->base_url, req->path,
	    req->query != NULL ? "?" : "", req->query != NULL ? req->query : "");
	/* acme_route() splits it in place; URLs that fit (all of ours)
	 * are split on the stack, no strdup() per request */
	rest_len = strlen(slash + 1);
	if (rest_len < sizeof(rest_buf))
		rest = memcpy(rest_buf, slash + 1, rest_len + 1);
	else
		rest = strdup(slash + 1);
	if (rest == NULL) {
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		goto out;
	}
	acme_route(r, rest);
out:
	acme_finish(r, have_endpoint);
	if (rest != rest_buf)
		free(rest);
	acme_jws_free(&r->jws);
	EVP_PKEY_free(r->key);
	acme_jws_verifier_free(r->verifier);
	json_decref(r->account);
	json_decref(r->object);
}
