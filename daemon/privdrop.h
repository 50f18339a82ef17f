/*
 * privdrop.h: the run user, the state directory and dropping root.
 */
#ifndef ENROLLD_PRIVDROP_H
#define ENROLLD_PRIVDROP_H

#include <stdbool.h>
#include <sys/types.h>

struct privdrop_user {
	char name[64];
	uid_t uid;
	gid_t gid;
};

/* Looks up `name` in the password database. Returns 0, or -1 with a message
 * telling how to create the user. */
int privdrop_lookup(const char *name, struct privdrop_user *out)
    __attribute__((warn_unused_result));

/* Makes `dir` exist as a real directory (not a symlink), mode 0700. With
 * `owner` non-NULL (we are root) it is also owned by that user. An existing
 * directory is kept; its owner is corrected when root-owned (systemd's
 * StateDirectory= creates it so). Returns 0 or -1 (logged). */
int privdrop_state_dir(const char *dir, const struct privdrop_user *owner)
    __attribute__((warn_unused_result));

/* Gives an existing file to `owner` (not following symlinks). 0 or -1. */
int privdrop_chown(const char *path, const struct privdrop_user *owner)
    __attribute__((warn_unused_result));

/* Drops root for good: supplementary groups, gid, uid; then checks that
 * root cannot be regained. Returns 0, or -1 (logged): the caller exits. */
int privdrop_drop(const struct privdrop_user *user) __attribute__((warn_unused_result));

#endif
