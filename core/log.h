/*
 * log.h: one logging convention for the whole daemon.
 *
 * Lines go to stderr (journald adds the timestamp under systemd; we add one
 * when stderr is not the journal). A worker handling a request sets
 * log_request_id() so that every line it writes names the request. Never log
 * a secret: tokens, keys, EAB MAC keys, challenge passwords.
 *
 * log_warnx() for a failed call: name the call, e.g.
 *   log_warnx("PQexecParams(cert_insert): %s", PQerrorMessage(c));
 * log_ssl_warnx() appends and drains OpenSSL's error queue.
 */
#ifndef ENROLLD_LOG_H
#define ENROLLD_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_init(enum log_level level);
int log_level_parse(const char *name, enum log_level *out);
/* Thread-local request id shown on every line; NULL to clear. */
void log_request_id(const char *request_id);
/* Whether a line at `level` would be written: lets a hot path skip the work
 * of preparing a line nobody reads. */
bool log_enabled(enum log_level level);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like log_warnx, then ": " and the drained OpenSSL error queue. */
void log_ssl_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
