/*
 * facts.h: the policy facts of the tenancy, cached in memory per process.
 *
 * What policy_decide() and its newOrder parts judge - an organization, its
 * departments, the domains delegated to it (approved delegations, with the
 * domains' active flag and DCV state), the profiles and the endpoints -
 * changes only through the admin API (or direct SQL), rarely. Every change
 * of those tables bumps policy_generation.generation in the same transaction
 * (migration 007's statement-level triggers). This cache holds the facts of
 * one generation: loaded lazily per organization (one statement, one
 * snapshot: the generation and the facts together; one load per
 * organization at a time, however many threads miss) and dropped as a whole
 * when a request brings a newer generation.
 *
 * A request reads the current generation in a statement it runs anyway
 * (FACTS_GENERATION_SQL as a column: core/store_acme.c, core/ra.c) and asks
 * facts_get() with it: when the cache is of that generation it answers from
 * memory, else it reloads before answering. So a change committed before the
 * request's statement began is always seen, on every instance sharing the
 * database. Time-dependent facts (a domain's DCV expiry) are judged here at
 * the time of the call, not when loaded.
 *
 * Thread-safe: the cache is guarded by a mutex; a view holds a reference to
 * the immutable entry it borrows from.
 */
#ifndef ENROLLD_FACTS_H
#define ENROLLD_FACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"
#include "policy.h"

struct db;
struct facts_entry;

/* The current generation, as an SQL expression. policy_generation holds at
 * most one row (migration 007: boolean primary key, CHECK (one)), so no
 * WHERE: a sequential scan of its one page, not an index scan (index opened,
 * locked and searched): 8-9k fewer instructions per statement (callgrind,
 * one backend, libpq, generic plans: finalize 278k -> 269k, newOrder,
 * which joins the row ON true, 329k -> 320k). */
#define FACTS_GENERATION_SQL "(SELECT pg.generation FROM policy_generation pg)"

/* The facts of one request: (org, dept, profile, endpoint). Strings and the
 * profile's terms are borrowed from the entry the view references. */
struct facts_view {
	struct facts_entry *entry;
	bool org_found, dept_found, profile_found, endpoint_found;
	const char *org_name, *org_city, *org_state, *org_country;
	const char *dept_name; /* NULL when no department */
	const char *profile_name;
	bool include_address;
	unsigned key_usage, ext_key_usage;
	struct policy_profile profile;
	/* the delegations to the org (dept NULL) or this department of the
	 * domains the request's names can be inside (their label-aligned
	 * suffixes), merged per domain (union of cert types); owned array,
	 * names borrowed */
	struct policy_domain *domains;
	size_t n_domains;
	/* csr, term and auto-approve left to the caller; profile points at
	 * this view's profile: do not copy the view */
	struct policy_input input;
};

/*
 * The facts of (org_id, dept_id (0: none), profile_id, endpoint_id (0: none))
 * as of `generation` or later: the value of FACTS_GENERATION_SQL the caller
 * read in a statement of its own, or 0 to read it here (a round trip). The
 * *_found flags say what exists; the rest is set for what was found. 0 with
 * *out (free it with facts_view_free()), or -1 (database: see
 * db_unavailable(), or out of memory).
 */
int facts_get(struct db *db, int64_t generation, int64_t org_id, int64_t dept_id,
    int64_t profile_id, int64_t endpoint_id, const struct req_name *names, size_t n_names,
    struct facts_view *out)
    __attribute__((warn_unused_result));

void facts_view_free(struct facts_view *v);

/* The generation of the facts cached now (0: none), for a caller that
 * decides before it reads the current generation and has its statement
 * check that the generation did not move (store_acme_new_order()). */
int64_t facts_cached_generation(void);
/* The generation of the facts view v was built from (0: not cached). */
int64_t facts_view_generation(const struct facts_view *v);

/* Drops every cached entry (tests; a process that knows it changed things). */
void facts_cache_flush(void);

/* How many loads facts_get() has run (one statement each) in this process. */
long facts_loads(void);

#endif
