/*
 * log.c: the daemon's one logging path.
 *
 * Every line is formatted into a stack buffer and written to stderr with a
 * single write(2), so that lines from several worker threads never interleave.
 * Format:
 *
 *   2026-11-26T10:00:00.123Z info [r-abc123] text
 *
 * The timestamp (UTC, milliseconds) is left out when JOURNAL_STREAM is set:
 * journald stamps lines itself. The request id is thread-local: a worker sets
 * it with log_request_id() when it picks up a request and clears it after.
 * log_ssl_warnx() appends OpenSSL's error queue (of the calling thread) and
 * drains it, so a stale error never shows up on a later, unrelated line.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

/* Longest line we write; longer messages are cut and end with "...". */
#define LOG_LINE_MAX 4096

/* Atomic: SIGHUP may change the level while workers log. */
static _Atomic int log_min_level = LOG_LEVEL_INFO;
static atomic_bool log_timestamps = true;
static _Thread_local char log_tls_request_id[48];

static const char *const log_level_names[] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

void
log_init(enum log_level level)
{
	const char *journal = getenv("JOURNAL_STREAM");

	atomic_store(&log_min_level, (int)level);
	atomic_store(&log_timestamps, !(journal != NULL && journal[0] != '\0'));
}

int
log_level_parse(const char *name, enum log_level *out)
{
	size_t i;

	if (name == NULL)
		return -1;
	for (i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (strcasecmp(name, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(name, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	return -1;
}

void
log_request_id(const char *request_id)
{
	size_t len;

	if (request_id == NULL) {
		log_tls_request_id[0] = '\0';
		return;
	}
	/* once per job on every worker: a copy, not a printf (~600
	 * instructions); cut to the buffer as snprintf() cut it */
	len = strnlen(request_id, sizeof(log_tls_request_id) - 1);
	memcpy(log_tls_request_id, request_id, len);
	log_tls_request_id[len] = '\0';
}

/* Appends to buf at *len, never past cap - 1; keeps *len <= cap - 1. */
static void
log_append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= cap - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*len += (size_t)n;
	if (*len > cap - 1)
		*len = cap - 1;
}

/* Formats one line and writes it with one write(2). */
static void
log_emit(enum log_level level, bool drain_ssl, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t len = 0, off;
	int saved_errno = errno;
	int n;

	if ((int)level < atomic_load(&log_min_level)) {
		if (drain_ssl)
			ERR_clear_error();
		return;
	}

	if (atomic_load(&log_timestamps)) {
		struct timeval tv;
		struct tm tm;

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		log_append(line, sizeof(line), &len, ".%03ldZ ", (long)(tv.tv_usec / 1000));
	}
	log_append(line, sizeof(line), &len, "%s ", log_level_names[level]);
	if (log_tls_request_id[0] != '\0')
		log_append(line, sizeof(line), &len, "[%s] ", log_tls_request_id);

	/* Reserve room for "...\n" at the end. */
	if (len < sizeof(line) - 5) {
		n = vsnprintf(line + len, sizeof(line) - 5 - len, fmt, ap);
		if (n > 0) {
			if ((size_t)n >= sizeof(line) - 5 - len) {
				len = sizeof(line) - 6;
				memcpy(line + len, "...", 3);
				len += 3;
			} else {
				len += (size_t)n;
			}
		}
	}

	if (drain_ssl) {
		unsigned long e;
		const char *sep = ": ";
		char ebuf[256];

		while ((e = ERR_get_error()) != 0) {
			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			log_append(line, sizeof(line) - 1, &len, "%s%s", sep, ebuf);
			sep = "; ";
		}
		if (sep[0] == ':')
			log_append(line, sizeof(line) - 1, &len, ": (no OpenSSL error)");
	}

	/* Keep one line per message: fold embedded newlines. */
	for (off = 0; off < len; off++) {
		if (line[off] == '\n' || line[off] == '\r')
			line[off] = ' ';
	}
	line[len++] = '\n';

	/* One write; a short write (pipe full, signal) is retried for the rest. */
	off = 0;
	while (off < len) {
		ssize_t w = write(STDERR_FILENO, line + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		off += (size_t)w;
	}
	errno = saved_errno;
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_DEBUG, false, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_INFO, false, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_WARN, false, fmt, ap);
	va_end(ap);
}

void
log_errorx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, false, fmt, ap);
	va_end(ap);
}

void
log_ssl_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_WARN, true, fmt, ap);
	va_end(ap);
}
