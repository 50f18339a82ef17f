/*
 * retention.c: the ACME retention thread (retention.h).
 *
 * The thread sleeps on a condition variable with a deadline, so that
 * retention_stop() wakes it at once; a pass runs batches until one deletes
 * fewer than RETENTION_BATCH orders, and checks the stop flag between
 * batches. A database that cannot be reached skips the pass (logged once per
 * pass); the next interval tries again.
 */
#include "retention.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "store_acme.h"

/* Seconds from start to the first pass (when the interval is longer):
 * start-up is busy enough, and a daemon restarted in a loop should not
 * prune at each start. */
#define RETENTION_FIRST_PASS 60

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running;
	bool stopping;
	int days;
	int interval;
	unsigned generation;	/* bumped by retention_reload(): sleep afresh */
	char *conninfo;
} retention = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
};

static double
retention_ms_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	    (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

/* One pass: batches until nothing is left or stop. */
static void
retention_pass(struct db *db, int days)
{
	struct store_acme_pruned total, batch;
	struct timespec start;
	int i;
	bool stop;

	memset(&total, 0, sizeof(total));
	clock_gettime(CLOCK_MONOTONIC, &start);
	if (db_ensure(db) != 0) {
		log_warnx("retention: database unavailable; pass skipped");
		return;
	}
	for (i = 0; i < RETENTION_MAX_BATCHES; i++) {
		if (store_acme_retention_prune(db, days, RETENTION_BATCH, &batch) != 0) {
			log_warnx("retention: store_acme_retention_prune failed; the rest waits "
			    "for the next pass");
			break;
		}
		total.orders += batch.orders;
		total.authzs += batch.authzs;
		total.challenges += batch.challenges;
		if (batch.orders < RETENTION_BATCH)
			break;
		pthread_mutex_lock(&retention.lock);
		stop = retention.stopping;
		pthread_mutex_unlock(&retention.lock);
		if (stop)
			break;
	}
	if (total.orders > 0)
		log_info("retention: deleted %" PRId64 " ACME order(s), %" PRId64
		    " authorization(s), %" PRId64 " challenge(s) past %d day(s) of retention "
		    "in %.0f ms", total.orders, total.authzs, total.challenges, days,
		    retention_ms_since(&start));
}

static void *
retention_main(void *arg)
{
	struct db *db = db_new(retention.conninfo);
	struct timespec deadline;
	int days, interval;
	unsigned generation;
	bool first = true, timed_out;

	(void)arg;
	if (db == NULL) {
		log_errorx("retention: db_new failed; nothing will be pruned");
		return NULL;
	}
	pthread_mutex_lock(&retention.lock);
	while (!retention.stopping) {
		interval = retention.interval;
		if (first && interval > RETENTION_FIRST_PASS)
			interval = RETENTION_FIRST_PASS;
		generation = retention.generation;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += interval;
		timed_out = false;
		while (!retention.stopping && generation == retention.generation && !timed_out)
			timed_out = pthread_cond_timedwait(&retention.wake, &retention.lock,
			    &deadline) == ETIMEDOUT;
		if (retention.stopping)
			break;
		if (!timed_out)
			continue;	/* reloaded: the new interval, from now */
		first = false;
		days = retention.days;
		pthread_mutex_unlock(&retention.lock);
		log_request_id("retention");
		retention_pass(db, days);
		log_request_id(NULL);
		pthread_mutex_lock(&retention.lock);
	}
	pthread_mutex_unlock(&retention.lock);
	db_close(db);
	return NULL;
}

int
retention_start(const struct enrolld_config *cfg, const char *conninfo)
{
	sigset_t all, old;
	bool mask_set = false;
	int err;

	if (cfg->retention_days <= 0) {
		log_info("retention: ACME orders, authorizations and challenges are kept forever "
		    "(retention_days = 0)");
		return 0;
	}
	pthread_mutex_lock(&retention.lock);
	if (retention.running) {
		pthread_mutex_unlock(&retention.lock);
		log_errorx("retention_start: already running");
		return -1;
	}
	retention.conninfo = strdup(conninfo != NULL ? conninfo : "");
	if (retention.conninfo == NULL) {
		pthread_mutex_unlock(&retention.lock);
		log_errorx("retention_start: out of memory");
		return -1;
	}
	retention.days = cfg->retention_days;
	retention.interval = cfg->retention_interval > 0 ? cfg->retention_interval : 86400;
	retention.stopping = false;
	/* Signals belong to the loop thread. */
	sigfillset(&all);
	if (pthread_sigmask(SIG_SETMASK, &all, &old) == 0)
		mask_set = true;
	err = pthread_create(&retention.thread, NULL, retention_main, NULL);
	if (mask_set)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		free(retention.conninfo);
		retention.conninfo = NULL;
		pthread_mutex_unlock(&retention.lock);
		log_errorx("pthread_create(retention): %s", strerror(err));
		return -1;
	}
	retention.running = true;
	log_info("retention: ACME orders kept %d day(s) past their expiry or their "
	    "certificate's notAfter; a pass every %d s", retention.days, retention.interval);
	pthread_mutex_unlock(&retention.lock);
	return 0;
}

void
retention_reload(const struct enrolld_config *cfg)
{
	pthread_mutex_lock(&retention.lock);
	if (retention.running && cfg->retention_days > 0 &&
	    (retention.days != cfg->retention_days ||
	    retention.interval != cfg->retention_interval)) {
		retention.days = cfg->retention_days;
		retention.interval = cfg->retention_interval;
		retention.generation++;
		pthread_cond_broadcast(&retention.wake);
		log_info("retention: now %d day(s), a pass every %d s", retention.days,
		    retention.interval);
	}
	pthread_mutex_unlock(&retention.lock);
}

void
retention_stop(void)
{
	pthread_mutex_lock(&retention.lock);
	if (!retention.running) {
		pthread_mutex_unlock(&retention.lock);
		return;
	}
	retention.stopping = true;
	pthread_cond_broadcast(&retention.wake);
	pthread_mutex_unlock(&retention.lock);
	pthread_join(retention.thread, NULL);
	pthread_mutex_lock(&retention.lock);
	free(retention.conninfo);
	retention.conninfo = NULL;
	retention.running = false;
	retention.stopping = false;
	pthread_mutex_unlock(&retention.lock);
}
