/*
 * notify.c: tells systemd about start-up, reload and stop (Type=notify).
 *
 * The protocol is one datagram per state change to the AF_UNIX socket named
 * by $NOTIFY_SOCKET: a path, or an abstract name written with a leading '@'
 * (the '@' becomes a NUL byte in sun_path). Done by hand so that enrolld
 * needs no libsystemd. Failures are logged and otherwise ignored: readiness
 * reporting must never stop the daemon.
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int
notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t sun_len;
	size_t path_len;
	ssize_t sent;
	int fd = -1, rc = -1;

	if (path == NULL || path[0] == '\0')
		return 0;
	path_len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || path_len >= sizeof(sun.sun_path)) {
		log_warnx("notify_send: NOTIFY_SOCKET '%s' is not a usable socket address", path);
		goto out;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, path_len);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';	/* abstract namespace */
	sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warnx("socket(AF_UNIX, notify): %s", strerror(errno));
		goto out;
	}
	sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, sun_len);
	if (sent < 0) {
		log_warnx("sendto(NOTIFY_SOCKET %s): %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int
notify_reloading(void)
{
	struct timespec ts;
	char msg[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	return notify_send(msg);
}
