/*
 * facts.c: the policy facts cache (facts.h).
 *
 * One entry per organization, loaded by ONE statement (so the generation and
 * the facts come from one snapshot): the organization row, its departments,
 * its approved delegations with their domains, and - the same for every
 * organization, small - the profiles and the endpoints. JSON is parsed once
 * per load into plain C arrays; an entry is immutable after that and shared
 * by reference count, so a view built from it needs no lock.
 *
 * The cache is one generation and an array of entries of that generation.
 * A request that read an older or the same generation is answered from it
 * (facts at least as new as what the request read: what coherence needs);
 * one that read a newer generation (an administrator changed something)
 * loads, and installing what it loaded drops every entry of an older
 * generation. A load that raced with a newer one answers its own request
 * and is not installed over the newer entries.
 *
 * One load per organization at a time (single flight): after a policy
 * change every worker thread misses at once, and for an organization with
 * thousands of delegations one load each would be a storm. A request that
 * misses while its organization is being loaded waits for that load, then
 * looks again (and loads itself only if what was loaded is still older than
 * the generation it read).
 */
#include "facts.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db.h"
#include "log.h"
#include "names.h"
#include "types.h"

struct facts_dept {
	int64_t id;
	bool active;
	char *name;
};

struct facts_delegation {
	int64_t domain_id; /* delegations come ordered by domain */
	char *name;
	bool active;
	bool dcv_status_validated;
	bool has_dcv_expiry;
	double dcv_expires; /* unix time */
	int64_t dept_id;    /* 0: the organization as a whole */
	unsigned cert_types;
};

struct facts_profile {
	int64_t id;
	char *name;
	struct policy_profile policy; /* terms_days points at terms */
	int *terms;
	unsigned key_usage, ext_key_usage;
	bool include_address;
	bool allowed; /* for this entry's organization */
};

struct facts_endpoint {
	int64_t id;
	bool active;
	int64_t *profile_ids;
	size_t n_profile_ids;
};

struct facts_entry {
	atomic_int refs;
	int64_t generation;
	int64_t org_id;
	bool org_found;
	bool org_active, org_validated;
	char *org_name, *org_city, *org_state, *org_country;
	struct facts_dept *depts;
	size_t n_depts;
	struct facts_delegation *dels;
	size_t n_dels;
	struct facts_profile *profiles;
	size_t n_profiles;
	struct facts_endpoint *endpoints;
	size_t n_endpoints;
};

static pthread_mutex_t facts_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t facts_generation; /* of every entry below; 0: none */
static struct facts_entry **facts_entries;
static size_t facts_n_entries, facts_cap_entries;

/* Under facts_lock: the organizations being loaded (at most one load each;
 * bounded by the worker threads: a load that finds the table full runs
 * without it), and the signal that one of those loads ended. */
#define FACTS_LOADING_MAX 128
static int64_t facts_loading[FACTS_LOADING_MAX];
static size_t facts_n_loading;
static pthread_cond_t facts_loaded = PTHREAD_COND_INITIALIZER;
static atomic_long facts_n_loads; /* facts_loads() */

/* $1 the organization. Columns: generation, org, departments, delegations,
 * profiles, endpoints (JSON text). A DCV expiry of +-infinity is clamped to
 * a finite time on the same side of now (epoch of infinity is not JSON). */
static const char facts_load_sql[] =
    "SELECT " FACTS_GENERATION_SQL "::text,"
    " (SELECT json_build_object('active', o.active,"
    " 'validated', o.validation_status = 'validated', 'name', o.name, 'city', o.city,"
    " 'state', o.state, 'country', o.country) FROM organizations o WHERE o.id = $1::bigint)::text,"
    " (SELECT coalesce(json_agg(json_build_object('id', d.id, 'active', d.active,"
    " 'name', d.name)), '[]') FROM departments d WHERE d.org_id = $1::bigint)::text,"
    " (SELECT coalesce(json_agg(json_build_object('domain_id', dm.id, 'name', dm.name,"
    " 'active', dm.active, 'dcv', dm.dcv_status = 'validated',"
    " 'dcv_expires', CASE WHEN dm.dcv_expires_at IS NOT NULL THEN extract(epoch FROM"
    " greatest(least(dm.dcv_expires_at, '9999-01-01'), '1970-01-01')) END,"
    " 'dept_id', dl.dept_id, 'cert_types', dl.cert_types) ORDER BY dm.id), '[]')"
    " FROM delegations dl JOIN domains dm ON dm.id = dl.domain_id"
    " WHERE dl.org_id = $1::bigint AND dl.state = 'approved')::text,"
    " (SELECT coalesce(json_agg(json_build_object('id', p.id, 'name', p.name,"
    " 'active', p.active, 'cert_type', p.cert_type, 'terms_days', p.terms_days,"
    " 'key_types', p.key_types, 'key_usage', p.key_usage, 'ext_key_usage', p.ext_key_usage,"
    " 'requires_approval', p.requires_approval, 'allow_wildcards', p.allow_wildcards,"
    " 'require_dcv', p.require_dcv, 'require_org_validated', p.require_org_validated,"
    " 'include_address', p.include_address,"
    " 'allowed', p.allowed_org_ids IS NULL OR $1::bigint = ANY (p.allowed_org_ids))),"
    " '[]') FROM profiles p)::text,"
    " (SELECT coalesce(json_agg(json_build_object('id', e.id, 'active', e.active,"
    " 'profile_ids', e.profile_ids)), '[]') FROM endpoints e)::text";

static void facts_entry_free(struct facts_entry *e)
{
	size_t i;

	if (e == NULL)
		return;
	free(e->org_name);
	free(e->org_city);
	free(e->org_state);
	free(e->org_country);
	for (i = 0; i < e->n_depts; i++)
		free(e->depts[i].name);
	free(e->depts);
	for (i = 0; i < e->n_dels; i++)
		free(e->dels[i].name);
	free(e->dels);
	for (i = 0; i < e->n_profiles; i++) {
		free(e->profiles[i].name);
		free(e->profiles[i].terms);
	}
	free(e->profiles);
	for (i = 0; i < e->n_endpoints; i++)
		free(e->endpoints[i].profile_ids);
	free(e->endpoints);
	free(e);
}

static void facts_entry_release(struct facts_entry *e)
{
	if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1)
		facts_entry_free(e);
}

/* A copy of the string at key, NULL when absent, null or empty (as ra.c
 * always read them); *fail set when out of memory. */
static char *facts_strdup(const json_t *obj, const char *key, bool *fail)
{
	const char *s = json_string_value(json_object_get(obj, key));
	char *c;

	if (s == NULL || s[0] == '\0')
		return NULL;
	c = strdup(s);
	if (c == NULL)
		*fail = true;
	return c;
}

static bool facts_bool(const json_t *obj, const char *key)
{
	return json_is_true(json_object_get(obj, key));
}

static int64_t facts_int(const json_t *obj, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(obj, key));
}

/* OR of parse(each string of the array at key); unknown words are logged and
 * ignored (the schema CHECKs make them impossible). */
static unsigned facts_bits(const json_t *obj, const char *key, int (*parse)(const char *))
{
	const json_t *arr = json_object_get(obj, key);
	unsigned bits = 0;
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
	{
		int b = parse(json_string_value(v));
		if (b > 0)
			bits |= (unsigned)b;
		else
			log_warnx("facts_bits(%s): unknown word", key);
	}
	return bits;
}

/* Parses column col of row 0 (JSON text) into a new reference, or NULL
 * (SQL NULL, or unparseable: *fail). */
static json_t *facts_column(PGresult *res, int col, bool *fail)
{
	json_error_t jerr;
	json_t *j;

	if (PQgetisnull(res, 0, col))
		return NULL;
	j = json_loadb(PQgetvalue(res, 0, col), (size_t)PQgetlength(res, 0, col), 0, &jerr);
	if (j == NULL) {
		log_warnx("json_loadb(facts column %d): %s", col, jerr.text);
		*fail = true;
	}
	return j;
}

/* By domain name (unique per domain: a domain's delegations end up
 * adjacent). */
static int facts_delegation_cmp(const void *a, const void *b)
{
	const struct facts_delegation *x = a, *y = b;

	return strcmp(x->name != NULL ? x->name : "", y->name != NULL ? y->name : "");
}

/* The index of the first delegation of domain `name` in e (sorted), or -1. */
static ptrdiff_t facts_delegation_find(const struct facts_entry *e, const char *name)
{
	size_t lo = 0, hi = e->n_dels;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(e->dels[mid].name != NULL ? e->dels[mid].name : "", name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < e->n_dels && e->dels[lo].name != NULL && strcmp(e->dels[lo].name, name) == 0)
		return (ptrdiff_t)lo;
	return -1;
}

static int facts_index_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* Fills e from the load statement's row. 0 or -1. */
static int facts_entry_parse(struct facts_entry *e, PGresult *res)
{
	json_t *org = NULL, *depts = NULL, *dels = NULL, *profs = NULL, *eps = NULL;
	const json_t *v, *w;
	bool fail = false;
	size_t i, k;
	int rc = -1;

	e->generation = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	org = facts_column(res, 1, &fail);
	depts = facts_column(res, 2, &fail);
	dels = facts_column(res, 3, &fail);
	profs = facts_column(res, 4, &fail);
	eps = facts_column(res, 5, &fail);
	if (fail)
		goto out;

	e->org_found = json_is_object(org);
	e->org_active = facts_bool(org, "active");
	e->org_validated = facts_bool(org, "validated");
	e->org_name = facts_strdup(org, "name", &fail);
	e->org_city = facts_strdup(org, "city", &fail);
	e->org_state = facts_strdup(org, "state", &fail);
	e->org_country = facts_strdup(org, "country", &fail);

	e->depts = calloc(json_array_size(depts) + 1, sizeof(*e->depts));
	e->dels = calloc(json_array_size(dels) + 1, sizeof(*e->dels));
	e->profiles = calloc(json_array_size(profs) + 1, sizeof(*e->profiles));
	e->endpoints = calloc(json_array_size(eps) + 1, sizeof(*e->endpoints));
	if (e->depts == NULL || e->dels == NULL || e->profiles == NULL || e->endpoints == NULL)
		goto out;

	json_array_foreach(depts, i, v)
	{
		struct facts_dept *d = &e->depts[e->n_depts++];

		d->id = facts_int(v, "id");
		d->active = facts_bool(v, "active");
		d->name = facts_strdup(v, "name", &fail);
	}
	json_array_foreach(dels, i, v)
	{
		struct facts_delegation *d = &e->dels[e->n_dels++];
		const json_t *exp = json_object_get(v, "dcv_expires");

		d->domain_id = facts_int(v, "domain_id");
		d->name = facts_strdup(v, "name", &fail);
		d->active = facts_bool(v, "active");
		d->dcv_status_validated = facts_bool(v, "dcv");
		d->has_dcv_expiry = json_is_number(exp);
		d->dcv_expires = json_number_value(exp);
		d->dept_id = facts_int(v, "dept_id");
		d->cert_types = facts_bits(v, "cert_types", cert_type_parse);
	}
	json_array_foreach(profs, i, v)
	{
		struct facts_profile *p = &e->profiles[e->n_profiles++];
		int t;

		p->id = facts_int(v, "id");
		p->name = facts_strdup(v, "name", &fail);
		t = cert_type_parse(json_string_value(json_object_get(v, "cert_type")));
		p->policy.cert_type = t > 0 ? (unsigned)t : 0;
		w = json_object_get(v, "terms_days");
		p->policy.n_terms = json_array_size(w);
		p->terms = calloc(p->policy.n_terms + 1, sizeof(int));
		if (p->terms == NULL) {
			fail = true;
			break;
		}
		for (k = 0; k < p->policy.n_terms; k++)
			p->terms[k] = (int)json_integer_value(json_array_get(w, k));
		p->policy.terms_days = p->terms;
		p->policy.active = facts_bool(v, "active");
		p->policy.key_types = facts_bits(v, "key_types", key_type_parse);
		p->policy.requires_approval = facts_bool(v, "requires_approval");
		p->policy.allow_wildcards = facts_bool(v, "allow_wildcards");
		p->policy.require_dcv = facts_bool(v, "require_dcv");
		p->policy.require_org_validated = facts_bool(v, "require_org_validated");
		p->key_usage = facts_bits(v, "key_usage", key_usage_parse);
		p->ext_key_usage = facts_bits(v, "ext_key_usage", ext_key_usage_parse);
		p->include_address = facts_bool(v, "include_address");
		p->allowed = facts_bool(v, "allowed");
	}
	json_array_foreach(eps, i, v)
	{
		struct facts_endpoint *ep = &e->endpoints[e->n_endpoints++];

		ep->id = facts_int(v, "id");
		ep->active = facts_bool(v, "active");
		w = json_object_get(v, "profile_ids");
		ep->profile_ids = calloc(json_array_size(w) + 1, sizeof(int64_t));
		if (ep->profile_ids == NULL) {
			fail = true;
			break;
		}
		for (k = 0; k < json_array_size(w); k++)
			ep->profile_ids[ep->n_profile_ids++] = (int64_t)json_integer_value(json_array_get(w, k));
	}
	if (!fail)
		qsort(e->dels, e->n_dels, sizeof(*e->dels), facts_delegation_cmp);
	rc = fail ? -1 : 0;
out:
	json_decref(org);
	json_decref(depts);
	json_decref(dels);
	json_decref(profs);
	json_decref(eps);
	return rc;
}

/* Loads the entry of org_id (a new reference), or NULL. */
static struct facts_entry *facts_entry_load(struct db *db, int64_t org_id)
{
	char org[24];
	const char *params[1] = { org };
	struct facts_entry *e = NULL;
	PGresult *res = NULL;

	snprintf(org, sizeof(org), "%lld", (long long)org_id);
	res = db_exec(db, "facts_load", facts_load_sql, 1, params);
	if (res == NULL)
		return NULL;
	if (PQntuples(res) != 1) {
		log_warnx("PQexecParams(facts_load): %d rows", PQntuples(res));
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		goto out;
	atomic_init(&e->refs, 1);
	e->org_id = org_id;
	if (facts_entry_parse(e, res) != 0) {
		facts_entry_free(e);
		e = NULL;
	}
out:
	PQclear(res);
	return e;
}

/* Under facts_lock: the cached entry of org_id of `generation` (a new
 * reference), or NULL. */
static struct facts_entry *facts_cache_find(int64_t generation, int64_t org_id)
{
	size_t i;

	if (generation == 0 || facts_generation < generation)
		return NULL;
	for (i = 0; i < facts_n_entries; i++) {
		if (facts_entries[i]->org_id == org_id) {
			atomic_fetch_add(&facts_entries[i]->refs, 1);
			return facts_entries[i];
		}
	}
	return NULL;
}

/* Under facts_lock: drops every entry. */
static void facts_cache_drop(void)
{
	size_t i;

	for (i = 0; i < facts_n_entries; i++)
		facts_entry_release(facts_entries[i]);
	facts_n_entries = 0;
	facts_generation = 0;
}

/* Under facts_lock: installs e (takes a reference of its own), dropping the
 * entries of another generation and an older entry of the same org. */
static void facts_cache_install(struct facts_entry *e)
{
	size_t i;

	if (e->generation < facts_generation)
		return; /* a newer load came first: keep its entries */
	if (e->generation != facts_generation)
		facts_cache_drop();
	facts_generation = e->generation;
	for (i = 0; i < facts_n_entries; i++) {
		if (facts_entries[i]->org_id == e->org_id) {
			facts_entry_release(facts_entries[i]);
			atomic_fetch_add(&e->refs, 1);
			facts_entries[i] = e;
			return;
		}
	}
	if (facts_n_entries == facts_cap_entries) {
		size_t cap = facts_cap_entries != 0 ? facts_cap_entries * 2 : 16;
		struct facts_entry **grown = realloc(facts_entries, cap * sizeof(*grown));

		if (grown == NULL)
			return; /* not cached: the next request loads again */
		facts_entries = grown;
		facts_cap_entries = cap;
	}
	atomic_fetch_add(&e->refs, 1);
	facts_entries[facts_n_entries++] = e;
}

/* Under facts_lock: is org_id being loaded? */
static bool facts_is_loading(int64_t org_id)
{
	for (size_t i = 0; i < facts_n_loading; i++)
		if (facts_loading[i] == org_id)
			return true;
	return false;
}

/* Under facts_lock: marks org_id as being loaded; false when the table is
 * full (the load then runs unmarked). */
static bool facts_loading_add(int64_t org_id)
{
	if (facts_n_loading == FACTS_LOADING_MAX)
		return false;
	facts_loading[facts_n_loading++] = org_id;
	return true;
}

/* Under facts_lock: org_id's load ended; wakes the requests waiting. */
static void facts_loading_done(int64_t org_id)
{
	for (size_t i = 0; i < facts_n_loading; i++) {
		if (facts_loading[i] == org_id) {
			facts_loading[i] = facts_loading[--facts_n_loading];
			break;
		}
	}
	pthread_cond_broadcast(&facts_loaded);
}

long facts_loads(void)
{
	return atomic_load(&facts_n_loads);
}

void facts_cache_flush(void)
{
	pthread_mutex_lock(&facts_lock);
	facts_cache_drop();
	pthread_mutex_unlock(&facts_lock);
}

int64_t facts_cached_generation(void)
{
	int64_t generation;

	pthread_mutex_lock(&facts_lock);
	generation = facts_generation;
	pthread_mutex_unlock(&facts_lock);
	return generation;
}

int64_t facts_view_generation(const struct facts_view *v)
{
	return v->entry != NULL ? v->entry->generation : 0;
}

void facts_view_free(struct facts_view *v)
{
	free(v->domains);
	facts_entry_release(v->entry);
	memset(v, 0, sizeof(*v));
}

/* Fills the view of (dept, profile, endpoint) from v->entry. 0 or -1. */
static int facts_view_build(struct facts_view *v, int64_t dept_id, int64_t profile_id,
    int64_t endpoint_id, const struct req_name *names, size_t n_names)
{
	const struct facts_entry *e = v->entry;
	const struct facts_dept *dept = NULL;
	const struct facts_profile *prof = NULL;
	const struct facts_endpoint *ep = NULL;
	bool lists_profile = false;
	struct timeval tv;
	double now;
	size_t i, k, n_cand = 0, *starts = NULL;
	const char *p;

	for (i = 0; dept_id != 0 && i < e->n_depts; i++)
		if (e->depts[i].id == dept_id)
			dept = &e->depts[i];
	for (i = 0; i < e->n_profiles; i++)
		if (e->profiles[i].id == profile_id)
			prof = &e->profiles[i];
	for (i = 0; endpoint_id != 0 && i < e->n_endpoints; i++)
		if (e->endpoints[i].id == endpoint_id)
			ep = &e->endpoints[i];
	v->org_found = e->org_found;
	v->dept_found = dept_id == 0 || dept != NULL;
	v->profile_found = prof != NULL;
	v->endpoint_found = endpoint_id == 0 || ep != NULL;

	v->org_name = e->org_name;
	v->org_city = e->org_city;
	v->org_state = e->org_state;
	v->org_country = e->org_country;
	v->dept_name = dept != NULL ? dept->name : NULL;
	if (prof != NULL) {
		v->profile = prof->policy;
		v->profile_name = prof->name;
		v->include_address = prof->include_address;
		v->key_usage = prof->key_usage;
		v->ext_key_usage = prof->ext_key_usage;
	}
	for (i = 0; ep != NULL && i < ep->n_profile_ids; i++)
		if (ep->profile_ids[i] == profile_id)
			lists_profile = true;

	/* The delegations to the organization or this department of the
	 * domains the names can be inside (every label-aligned suffix of each
	 * name: names_lookup_part()/names_next_suffix()), one entry per domain with the
	 * union of their certificate types - however many domains the
	 * organization has. DCV expiry judged now. */
	for (i = 0; i < n_names; i++)
		for (p = names_lookup_part(&names[i]); p != NULL; p = names_next_suffix(&names[i], p))
			n_cand++;
	starts = calloc(n_cand + 1, sizeof(*starts));
	v->domains = calloc(n_cand + 1, sizeof(*v->domains));
	if (starts == NULL || v->domains == NULL) {
		free(starts);
		return -1;
	}
	n_cand = 0;
	for (i = 0; i < n_names; i++) {
		for (p = names_lookup_part(&names[i]); p != NULL; p = names_next_suffix(&names[i], p)) {
			ptrdiff_t at = facts_delegation_find(e, p);

			if (at >= 0)
				starts[n_cand++] = (size_t)at;
		}
	}
	qsort(starts, n_cand, sizeof(*starts), facts_index_cmp);
	gettimeofday(&tv, NULL);
	now = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
	for (k = 0; k < n_cand; k++) {
		struct policy_domain *out = NULL;

		if (k > 0 && starts[k] == starts[k - 1])
			continue;
		for (i = starts[k]; i < e->n_dels && strcmp(e->dels[i].name, e->dels[starts[k]].name) == 0;
		     i++) {
			const struct facts_delegation *d = &e->dels[i];

			if (d->dept_id != 0 && d->dept_id != dept_id)
				continue;
			if (out != NULL) {
				out->cert_types |= d->cert_types;
				continue;
			}
			out = &v->domains[v->n_domains++];
			out->name = d->name;
			out->active = d->active;
			out->dcv_validated =
			    d->dcv_status_validated && (!d->has_dcv_expiry || d->dcv_expires > now);
			out->cert_types = d->cert_types;
		}
	}
	free(starts);

	v->input.endpoint_active = endpoint_id == 0 || (ep != NULL && ep->active);
	v->input.org_active = e->org_active;
	v->input.dept_active = dept_id == 0 || (dept != NULL && dept->active);
	v->input.org_validated = e->org_validated;
	v->input.profile_allowed =
	    prof != NULL && prof->allowed && (endpoint_id == 0 || lists_profile);
	v->input.profile = &v->profile;
	v->input.domains = v->domains;
	v->input.n_domains = v->n_domains;
	return 0;
}

int facts_get(struct db *db, int64_t generation, int64_t org_id, int64_t dept_id,
    int64_t profile_id, int64_t endpoint_id, const struct req_name *names, size_t n_names,
    struct facts_view *out)
{
	struct facts_entry *e = NULL;
	bool marked;

	memset(out, 0, sizeof(*out));
	if (generation <= 0) {
		char *g = db_value(db, "facts_generation", "SELECT " FACTS_GENERATION_SQL "::text",
		    0, NULL);

		if (g == NULL)
			return -1;
		generation = strtoll(g, NULL, 10);
		free(g);
	}
	pthread_mutex_lock(&facts_lock);
	while ((e = facts_cache_find(generation, org_id)) == NULL && facts_is_loading(org_id))
		pthread_cond_wait(&facts_loaded, &facts_lock);
	marked = e == NULL && facts_loading_add(org_id);
	pthread_mutex_unlock(&facts_lock);
	if (e == NULL) {
		e = facts_entry_load(db, org_id);
		atomic_fetch_add(&facts_n_loads, 1);
		pthread_mutex_lock(&facts_lock);
		/* generation 0: the counter row is gone (no coherence):
		 * answer from the database every time */
		if (e != NULL && e->generation != 0)
			facts_cache_install(e);
		if (marked)
			facts_loading_done(org_id);
		pthread_mutex_unlock(&facts_lock);
		if (e == NULL)
			return -1;
	}
	out->entry = e;
	if (facts_view_build(out, dept_id, profile_id, endpoint_id, names, n_names) != 0) {
		facts_view_free(out);
		return -1;
	}
	return 0;
}
