/*
 * notify.h: the systemd readiness protocol (sd_notify), without libsystemd.
 */
#ifndef ENROLLD_NOTIFY_H
#define ENROLLD_NOTIFY_H

/* Sends `state` ("READY=1", "STOPPING=1", ...) to $NOTIFY_SOCKET. A no-op
 * returning 0 when the variable is unset (not started by systemd). Returns
 * -1 (logged) when sending fails. */
int notify_send(const char *state);
/* "RELOADING=1" with MONOTONIC_USEC=, as systemd >= 253 wants it. */
int notify_reloading(void);

#endif
