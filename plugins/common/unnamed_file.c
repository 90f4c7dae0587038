/* unnamed_file.c — see unnamed_file.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "unnamed_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int vp_open_unnamed(int dirfd, const char *dir, mode_t mode)
{
  if (access("/proc/self/fd", X_OK) != 0)
    return -1;
  return openat(dirfd, dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
}

int vp_link_unnamed(int fd, int dirfd, const char *name)
{
  char proc[64];

  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
  return linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}
