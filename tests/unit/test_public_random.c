/*
 * test_public_random.c: core/public_random.c hands out each pooled byte once,
 * refills across the pool's end, refuses oversized requests, gives each
 * thread its own values, and gives a forked child values its parent never
 * hands out.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "public_random.h"

#define DRAWS 200	/* 16-byte draws: several pool refills */

static int passed, failed;

static void
check(bool ok, const char *what)
{
	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s\n", what);
}

/* True when any two of the n 16-byte values are equal. */
static bool
any_repeat(unsigned char (*v)[16], size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (memcmp(v[i], v[j], 16) == 0)
				return true;
	return false;
}

static void *
thread_draw(void *arg)
{
	unsigned char (*v)[16] = arg;
	size_t i;

	for (i = 0; i < DRAWS / 2; i++)
		if (public_random_bytes(v[i], 16) != 0)
			memset(v[i], 0, 16);
	return NULL;
}

int
main(void)
{
	static unsigned char values[2 * DRAWS][16];
	unsigned char zero[16] = { 0 }, odd[7], big[PUBLIC_RANDOM_MAX + 1];
	unsigned char from_child[16];
	pthread_t thread;
	int pipe_fd[2], status;
	size_t i;
	bool ok;
	pid_t pid;

	/* Sequential draws of odd and even sizes never repeat or come back zero. */
	ok = true;
	for (i = 0; i < DRAWS; i++) {
		ok = ok && public_random_bytes(odd, sizeof(odd)) == 0;
		ok = ok && public_random_bytes(values[i], 16) == 0;
		ok = ok && memcmp(values[i], zero, 16) != 0;
	}
	check(ok, "public_random_bytes succeeds across refills");
	check(!any_repeat(values, DRAWS), "no 16-byte value repeats across refills");

	check(public_random_bytes(big, sizeof(big)) == -1, "more than PUBLIC_RANDOM_MAX is refused");
	check(public_random_bytes(big, PUBLIC_RANDOM_MAX) == 0, "PUBLIC_RANDOM_MAX is served");

	/* Another thread draws from its own pool: no value shared with ours. */
	check(pthread_create(&thread, NULL, thread_draw, values[DRAWS]) == 0, "pthread_create");
	thread_draw(values[DRAWS + DRAWS / 2]);
	pthread_join(thread, NULL);
	check(!any_repeat(values, 2 * DRAWS), "two threads never draw the same value");

	/* A forked child does not repeat what the parent draws next. */
	check(pipe(pipe_fd) == 0, "pipe");
	pid = fork();
	if (pid == 0) {
		unsigned char mine[16];

		if (public_random_bytes(mine, sizeof(mine)) != 0 ||
		    write(pipe_fd[1], mine, sizeof(mine)) != (ssize_t)sizeof(mine))
			_exit(1);
		_exit(0);
	}
	check(pid > 0, "fork");
	check(public_random_bytes(values[0], 16) == 0, "parent draws after fork");
	check(read(pipe_fd[0], from_child, sizeof(from_child)) == (ssize_t)sizeof(from_child),
	    "child's value read");
	check(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child exits 0");
	check(memcmp(values[0], from_child, 16) != 0, "child and parent draw different values");

	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
