/*
 * privdrop.c: from root to the run user.
 *
 * Started as root, enrolld does the few things that need it (create and own
 * the state directory, start the embedded PostgreSQL as the run user, bind
 * listeners, fork the CA signer) and then gives root up for good before any
 * request is served: initgroups (so that group membership such as ssl-cert
 * keeps working for configured key files), setgid, setuid, and a check that
 * setuid(0) now fails. Started as an ordinary user, none of this happens.
 */
#include "privdrop.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int
privdrop_lookup(const char *name, struct privdrop_user *out)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int rc;

	rc = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
	if (rc != 0) {
		log_errorx("getpwnam_r(%s): %s", name, strerror(rc));
		return -1;
	}
	if (found == NULL) {
		log_errorx("user '%s' does not exist; create it with useradd --system %s "
		    "(or set [daemon] user)", name, name);
		return -1;
	}
	if (found->pw_uid == 0) {
		log_errorx("user '%s' has uid 0; the run user must not be root", name);
		return -1;
	}
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->uid = found->pw_uid;
	out->gid = found->pw_gid;
	return 0;
}

int
privdrop_state_dir(const char *dir, const struct privdrop_user *owner)
{
	struct stat st;

	if (lstat(dir, &st) != 0) {
		if (errno != ENOENT) {
			log_errorx("lstat(%s): %s", dir, strerror(errno));
			return -1;
		}
		if (mkdir(dir, 0700) != 0) {
			log_errorx("mkdir(%s): %s", dir, strerror(errno));
			return -1;
		}
		if (lstat(dir, &st) != 0) {
			log_errorx("lstat(%s): %s", dir, strerror(errno));
			return -1;
		}
		log_info("created state directory %s", dir);
	}
	if (!S_ISDIR(st.st_mode)) {
		log_errorx("state directory %s is not a directory (or is a symlink)", dir);
		return -1;
	}
	if (owner != NULL && st.st_uid != owner->uid) {
		if (st.st_uid != 0) {
			log_errorx("state directory %s belongs to uid %u, not to %s",
			    dir, (unsigned)st.st_uid, owner->name);
			return -1;
		}
		if (lchown(dir, owner->uid, owner->gid) != 0) {
			log_errorx("lchown(%s, %s): %s", dir, owner->name, strerror(errno));
			return -1;
		}
	}
	/* Tokens, keys and the database live here: owner only. */
	if ((st.st_mode & 0077) != 0 && chmod(dir, 0700) != 0) {
		log_errorx("chmod(%s, 0700): %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int
privdrop_chown(const char *path, const struct privdrop_user *owner)
{
	if (lchown(path, owner->uid, owner->gid) != 0) {
		log_errorx("lchown(%s, %s): %s", path, owner->name, strerror(errno));
		return -1;
	}
	return 0;
}

int
privdrop_drop(const struct privdrop_user *user)
{
	if (initgroups(user->name, user->gid) != 0) {
		log_errorx("initgroups(%s): %s", user->name, strerror(errno));
		return -1;
	}
	if (setgid(user->gid) != 0) {
		log_errorx("setgid(%u): %s", (unsigned)user->gid, strerror(errno));
		return -1;
	}
	if (setuid(user->uid) != 0) {
		log_errorx("setuid(%u): %s", (unsigned)user->uid, strerror(errno));
		return -1;
	}
	/* Paranoia: the drop must be irreversible. */
	if (setuid(0) == 0 || seteuid(0) == 0 || getuid() != user->uid ||
	    geteuid() != user->uid || getgid() != user->gid || getegid() != user->gid) {
		log_errorx("privilege drop to %s did not stick", user->name);
		return -1;
	}
	log_info("running as user %s (uid %u)", user->name, (unsigned)user->uid);
	return 0;
}
