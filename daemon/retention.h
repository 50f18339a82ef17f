/*
 * retention.h: keeps the ACME tables bounded.
 *
 * acme_orders, acme_authzs and acme_challenges get rows at every newOrder
 * (acme_orders alone when the authorizations are derived from the order:
 * store_acme.h) and lose none on their own. One thread per instance, with its own database
 * connection, wakes every retention_interval seconds (the first pass a
 * minute after start, or sooner with a shorter interval) and deletes, in
 * batches of RETENTION_BATCH orders (one statement and one transaction
 * each), the orders past retention with their authorizations and challenges
 * (store_acme_retention_prune() says which). A pass that deleted something
 * logs one line with the counts. Off the event loop and off the request
 * workers; several instances on one database prune disjoint rows
 * (SKIP LOCKED). retention_days = 0 starts no thread.
 */
#ifndef ENROLLD_RETENTION_H
#define ENROLLD_RETENTION_H

struct enrolld_config;

/* Orders deleted per statement. */
#define RETENTION_BATCH 1000
/* At most this many batches per pass (a million orders); the rest waits
 * for the next pass. */
#define RETENTION_MAX_BATCHES 1000

/* Starts the thread (none when cfg->retention_days is 0). 0, or -1 (logged). */
int retention_start(const struct enrolld_config *cfg, const char *conninfo)
    __attribute__((warn_unused_result));
/* SIGHUP: takes the new retention_days and retention_interval; when either
 * changed, the next pass is an interval from now (a change to or from 0
 * takes effect at the next start). */
void retention_reload(const struct enrolld_config *cfg);
/* Stops the thread, waiting for the batch in progress. */
void retention_stop(void);

#endif
