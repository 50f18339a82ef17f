/*
 * workers.c: a fixed pool of threads behind one bounded queue.
 *
 * Why: SQL, signing and CSR checks block; the event loop must not. Each
 * worker owns one PostgreSQL connection (struct db is not shared), so the
 * number of workers is also the number of database connections.
 *
 * Flow: workers_submit() (loop thread) appends to `queue` under `lock` and
 * signals `wake`; at most queue_max jobs wait, beyond that the caller answers
 * 503 at once rather than letting a backlog grow. A worker pops a job, sets
 * the log request id, and runs the handler unless db_request_begin()
 * (db_ensure()) fails, in which case the answer is 503 + Retry-After
 * without calling the door. Finished
 * jobs go on `done` and the worker that makes the list non-empty writes to
 * an eventfd; the loop thread's event on that fd drains `done` and calls the
 * done callback, which sends the reply. Only the loop thread touches libevent objects.
 */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "db.h"
#include "log.h"

/* Seconds a client is told to wait when the database is unreachable. */
#define WORKERS_DB_RETRY_AFTER 5

struct worker {
	struct workers *pool;
	pthread_t thread;
	bool started;
	int id;
	struct db *db;
};

struct workers {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *queue_head, *queue_tail;
	size_t queued;
	size_t queue_max;
	struct job *done_head, *done_tail;
	bool stopping;

	int event_fd;			/* workers -> loop: "done list is non-empty" */
	/* Edge-triggered (epoll): every write wakes the loop, so the loop need
	 * not read the counter back to zero; it would take 2^64 - 1 jobs to
	 * fill it. Without EV_ET (another backend) the loop reads it. */
	bool event_edge;
	struct event *done_event;
	workers_done_fn done;
	void *done_arg;
	size_t in_flight;		/* loop thread only */

	struct ca *ca;
	struct worker *workers;
	int n_workers;
};

static void
workers_finish(struct workers *w, struct job *job)
{
	uint64_t one = 1;
	ssize_t n;
	bool was_empty;

	pthread_mutex_lock(&w->lock);
	job->next = NULL;
	was_empty = w->done_head == NULL;
	if (w->done_tail != NULL)
		w->done_tail->next = job;
	else
		w->done_head = job;
	w->done_tail = job;
	pthread_mutex_unlock(&w->lock);
	/* Only the first job on an empty list signals: a non-empty list has
	 * been signalled already and the loop has not taken it yet (it takes
	 * the whole list under the lock after reading the eventfd), so it will
	 * find this job too. A write(2) less per job that finishes while
	 * others wait for the loop. */
	if (!was_empty)
		return;
	/* An eventfd counter only fails to add on overflow, never here. */
	do {
		n = write(w->event_fd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		log_warnx("write(eventfd): %s", strerror(errno));
}

static void *
workers_main(void *arg)
{
	struct worker *self = arg;
	struct workers *w = self->pool;
	struct door_context ctx;
	struct job *job;

	memset(&ctx, 0, sizeof(ctx));
	ctx.db = self->db;
	ctx.ca = w->ca;
	ctx.worker_id = self->id;

	for (;;) {
		pthread_mutex_lock(&w->lock);
		while (w->queue_head == NULL && !w->stopping)
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->queue_head == NULL) {
			/* stopping and nothing left to do */
			pthread_mutex_unlock(&w->lock);
			break;
		}
		job = w->queue_head;
		w->queue_head = job->next;
		if (w->queue_head == NULL)
			w->queue_tail = NULL;
		w->queued--;
		pthread_mutex_unlock(&w->lock);

		log_request_id(job->req.request_id);
		ctx.cfg = job->cfg;
		if (db_request_begin(self->db) != 0) {
			log_warnx("db_ensure: database unavailable; answering 503");
			http_response_unavailable(&job->resp, WORKERS_DB_RETRY_AFTER);
		} else {
			job->handler(&job->req, &ctx, &job->resp);
		}
		db_request_end(self->db);
		log_request_id(NULL);
		workers_finish(w, job);
	}
	return NULL;
}

/* Loop thread: the eventfd says some jobs are done. */
static void
workers_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct workers *w = arg;
	struct job *list, *job;
	uint64_t count;

	if (!w->event_edge && read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN &&
	    errno != EINTR)
		log_warnx("read(eventfd): %s", strerror(errno));
	pthread_mutex_lock(&w->lock);
	list = w->done_head;
	w->done_head = w->done_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	while ((job = list) != NULL) {
		list = job->next;
		job->next = NULL;
		w->in_flight--;
		w->done(job, w->done_arg);
	}
}

int
workers_submit(struct workers *w, struct job *job)
{
	pthread_mutex_lock(&w->lock);
	if (w->stopping || w->queued >= w->queue_max) {
		pthread_mutex_unlock(&w->lock);
		return -1;
	}
	job->next = NULL;
	if (w->queue_tail != NULL)
		w->queue_tail->next = job;
	else
		w->queue_head = job;
	w->queue_tail = job;
	w->queued++;
	w->in_flight++;
	pthread_mutex_unlock(&w->lock);
	/* Signalled after unlocking: the woken worker then does not block
	 * at once on the mutex still held here (a futex wait + wake less).
	 * Workers re-check the queue under the lock, so nothing is lost. */
	pthread_cond_signal(&w->wake);
	return 0;
}

size_t
workers_in_flight(const struct workers *w)
{
	return w->in_flight;
}

int
workers_start(struct event_base *base, int n, int queue_max, const char *conninfo,
    struct ca *ca, workers_done_fn done, void *done_arg, struct workers **out)
{
	struct workers *w = NULL;
	sigset_t all, old;
	int i, rc;
	bool mask_set = false;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		log_errorx("workers_start: out of memory");
		return -1;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->event_fd = -1;
	w->queue_max = (size_t)queue_max;
	w->done = done;
	w->done_arg = done_arg;
	w->ca = ca;

	w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->event_fd < 0) {
		log_errorx("eventfd: %s", strerror(errno));
		goto fail;
	}
	w->event_edge = (event_base_get_features(base) & EV_FEATURE_ET) != 0;
	w->done_event = event_new(base, w->event_fd, EV_READ | EV_PERSIST |
	    (w->event_edge ? EV_ET : 0), workers_done_cb, w);
	if (w->done_event == NULL || event_add(w->done_event, NULL) != 0) {
		log_errorx("event_new/event_add(workers eventfd): failed");
		goto fail;
	}

	w->workers = calloc((size_t)n, sizeof(*w->workers));
	if (w->workers == NULL) {
		log_errorx("workers_start: out of memory");
		goto fail;
	}
	w->n_workers = n;
	for (i = 0; i < n; i++) {
		w->workers[i].pool = w;
		w->workers[i].id = i;
		w->workers[i].db = db_new(conninfo);
		if (w->workers[i].db == NULL) {
			log_errorx("db_new(worker %d): failed", i);
			goto fail;
		}
	}

	/* Signals belong to the loop thread: workers start with all blocked. */
	sigfillset(&all);
	if (pthread_sigmask(SIG_SETMASK, &all, &old) == 0)
		mask_set = true;
	for (i = 0; i < n; i++) {
		rc = pthread_create(&w->workers[i].thread, NULL, workers_main, &w->workers[i]);
		if (rc != 0) {
			log_errorx("pthread_create(worker %d): %s", i, strerror(rc));
			break;
		}
		w->workers[i].started = true;
	}
	if (mask_set)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (i < n)
		goto fail;

	*out = w;
	return 0;
fail:
	workers_stop(w);
	return -1;
}

void
workers_stop(struct workers *w)
{
	int i;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);

	if (w->in_flight > 0) {
		log_warnx("workers_stop: %zu request(s) still running; not waiting for them",
		    w->in_flight);
		if (w->done_event != NULL)
			event_del(w->done_event);
		return;
	}
	for (i = 0; i < w->n_workers; i++) {
		if (w->workers[i].started)
			pthread_join(w->workers[i].thread, NULL);
		if (w->workers[i].db != NULL)
			db_close(w->workers[i].db);
	}
	free(w->workers);
	if (w->done_event != NULL)
		event_free(w->done_event);
	if (w->event_fd >= 0)
		close(w->event_fd);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
