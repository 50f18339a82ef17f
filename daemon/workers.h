/*
 * workers.h: the worker pool that runs door handlers off the event loop.
 *
 * The loop thread builds a struct job (a self-contained copy of the request)
 * and submits it; a worker thread runs the handler with its own database
 * connection and hands the job back; the loop thread then sends the reply.
 * The loop thread never blocks on a handler.
 */
#ifndef ENROLLD_WORKERS_H
#define ENROLLD_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"

struct event_base;
struct ca;
struct enrolld_config;

/*
 * One request on its way through the pool. http.c fills it and frees it;
 * every pointer inside `req` points into memory the job owns, so a worker
 * never touches libevent state. Fields marked "loop" are used by the loop
 * thread only.
 */
struct job {
	struct http_request req;
	struct http_response resp;	/* filled by the handler */
	door_handler_fn handler;
	const struct enrolld_config *cfg; /* config snapshot for this request */
	void *owner;			/* loop: http.c's state for the reply */
	struct job *next;		/* queue / done list linkage */
};

struct workers;

/* Called on the loop thread with each finished job; takes ownership. */
typedef void (*workers_done_fn)(struct job *job, void *arg);

/*
 * Starts `n` threads, each with its own db_new(conninfo) connection (opened
 * lazily by db_ensure()), and a queue of at most `queue_max` waiting jobs.
 * Finished jobs come back through `done` on `base`'s loop thread. Returns 0
 * with a new pool, or -1 (logged).
 */
int workers_start(struct event_base *base, int n, int queue_max, const char *conninfo,
    struct ca *ca, workers_done_fn done, void *done_arg, struct workers **out)
    __attribute__((warn_unused_result));

/* Queues a job (loop thread). 0, or -1 when the queue is full: the caller
 * still owns the job and answers 503. */
int workers_submit(struct workers *w, struct job *job) __attribute__((warn_unused_result));

/* Jobs submitted whose completion has not yet been delivered (loop thread). */
size_t workers_in_flight(const struct workers *w);

/*
 * Stops the threads and frees the pool. With in-flight jobs left (a handler
 * stuck past the shutdown deadline) the threads are not joined and the pool
 * is deliberately leaked: the process is about to exit and a running handler
 * may still use it.
 */
void workers_stop(struct workers *w);

#endif
