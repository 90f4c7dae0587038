/* unnamed_file.h — a new file written without a name and linked under its
 * final one once complete (O_TMPFILE): no temporary name to rename, and
 * none left behind by a crash. Shared by the core (its documents) and the
 * dd backend (its copies). */
#ifndef VMSNAP_UNNAMED_FILE_H
#define VMSNAP_UNNAMED_FILE_H

#include <sys/types.h>

/* An unnamed file, open for writing, in the directory dir (relative to
 * dirfd, as openat), or -1 where there can be none: no O_TMPFILE in the
 * filesystem or kernel, or no /proc to link it by (linkat with
 * AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH). The caller then makes a named
 * temporary instead. */
int vp_open_unnamed(int dirfd, const char *dir, mode_t mode);

/* Links the unnamed file fd as name in dirfd, never replacing anything:
 * 0, or -errno (-EEXIST when name is taken). Flush fd BEFORE this when
 * the name must never stand for content that is not on disk yet (a commit
 * record), then the directory. Flush it after (then the directory) when
 * nothing refers to the name until both are done: one flush then covers
 * the content and the link count, the file's own metadata. */
int vp_link_unnamed(int fd, int dirfd, const char *name);

#endif
