/*
 * http.h: the listeners (HTTP and HTTPS via evhttp), the router from path to
 * door, and the hand-off of each request to the worker pool.
 */
#ifndef ENROLLD_HTTP_H
#define ENROLLD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct ca;
struct enrolld_config;
struct workers;
struct job;
struct http_server;

/*
 * Binds every listener of `cfg` (before the privilege drop: ports < 1024)
 * and loads the TLS certificates: a listener's certificate/private_key, or
 * the CA's bootstrapped TLS files when those are empty. Requests arriving
 * before http_server_set_workers() get 503. `cfg` is copied. Returns 0 with
 * a new server, or -1 (logged).
 */
int http_server_start(struct event_base *base, const struct enrolld_config *cfg,
    struct ca *ca, struct http_server **out) __attribute__((warn_unused_result));

/* Requests go to `w` from now on. */
void http_server_set_workers(struct http_server *s, struct workers *w);

/* The worker pool's done callback (workers_done_fn): sends the reply. */
void http_server_job_done(struct job *job, void *arg);

/* "https://127.0.0.1:8443/api/v1/" for the first listener serving the
 * admin door, or false when none does. */
bool http_server_admin_url(const struct http_server *s, char *buf, size_t len);

/*
 * SIGHUP: applies a freshly loaded config. New TLS contexts are built from
 * the (possibly replaced) certificate and key files for new connections;
 * existing connections keep theirs. log_level, public_url and max_body take
 * effect; settings that need a restart (addresses, ports, workers, database,
 * CA, state_dir, user) are kept and a warning names them. On any error the
 * old configuration stays entirely. Returns 0 or -1 (logged).
 */
int http_server_reload(struct http_server *s, const struct enrolld_config *newcfg)
    __attribute__((warn_unused_result));

/* Stops accepting connections; requests still arriving on open connections
 * get 503 with Connection: close. */
void http_server_stop_accepting(struct http_server *s);
/* Replies not yet completely written to their clients. */
size_t http_server_sending(const struct http_server *s);

/* Frees the listeners (closing open connections) and TLS contexts. */
void http_server_free(struct http_server *s);

#endif
