/* subvol.c — subvolumes through libbtrfsutil, and the checks that keep an
 * op from starting what it cannot finish: privileges, a read-only or full
 * filesystem, nested subvolumes, a mounted subvolume, open files. */
#define _GNU_SOURCE
#include "btrfs.h"

#include <btrfsutil.h>
#include <linux/btrfs_tree.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

int bt_errno_code(int err)
{
  switch (err) {
  case ENOENT: return VMSNAP_E_NOT_FOUND;
  case EEXIST: return VMSNAP_E_EXISTS;
  case EBUSY: case ETXTBSY: return VMSNAP_E_BUSY;
  case ENOSPC: case EDQUOT: return VMSNAP_E_NOSPC;
  case EPERM: case EACCES: case EROFS: return VMSNAP_E_UNSUPPORTED;
  default: return VMSNAP_E_BACKEND;
  }
}

/* host->error with ": <strerror(err)>" after the first clause of fmt. */
int bt_fail(const bt_job *j, int code, int err, const char *fmt, ...)
{
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char *semi = strchr(msg, ';');
  if (semi)
    return j->host->error(j->job, code, "%.*s: %s%s", (int)(semi - msg), msg, strerror(err),
                          semi);
  return j->host->error(j->job, code, "%s: %s", msg, strerror(err));
}

static void uuid_text(const uint8_t u[16], char out[37])
{
  static const uint8_t zero[16];
  if (memcmp(u, zero, 16) == 0) {
    out[0] = '\0';
    return;
  }
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
           u[13], u[14], u[15]);
}

/* fd is a subvolume's root: fills sv. 0, or -errno (-EINVAL: not a
 * subvolume). Uses GET_SUBVOL_INFO: no privilege, one ioctl. */
int bt_subvol_fd_info(int fd, bt_subvol *sv)
{
  struct btrfs_util_subvolume_info si;
  struct stat st;

  memset(sv, 0, sizeof *sv);
  if (fstat(fd, &st) < 0) return -errno;
  if (!S_ISDIR(st.st_mode) || st.st_ino != BT_SUBVOL_INO) return -EINVAL;
  enum btrfs_util_error e = btrfs_util_subvolume_info_fd(fd, 0, &si);
  if (e == BTRFS_UTIL_ERROR_NOT_BTRFS || e == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) return -EINVAL;
  if (e) return errno ? -errno : -EIO;
  sv->id = si.id;
  uuid_text(si.uuid, sv->uuid);
  uuid_text(si.parent_uuid, sv->parent_uuid);
  sv->readonly = (si.flags & BTRFS_ROOT_SUBVOL_RDONLY) != 0;
  sv->otime = si.otime.tv_sec;
  sv->dev = st.st_dev;
  return 0;
}

/* Opens a subvolume (never through a final symlink) and fills sv. Returns
 * the fd, or -errno (-EINVAL: there, but not a subvolume). */
int bt_open_subvol_at(int dirfd, const char *name, bt_subvol *sv)
{
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOTDIR || errno == ELOOP ? -EINVAL : -errno;
  int rc = bt_subvol_fd_info(fd, sv);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

int bt_open_subvol(const char *path, bt_subvol *sv)
{
  return bt_open_subvol_at(AT_FDCWD, path, sv);
}

/* A subvolume at a recorded path is ours when it has the recorded uuid,
 * or (the create stopped before recording it) when it is a snapshot of
 * the subvolume the create recorded in prepare. */
int bt_is_ours(const bt_job *j, const bt_subvol *sv)
{
  const char *uuid = j->host->get(j->job, "subvol-uuid");
  const char *src = j->host->get(j->job, "source-uuid");
  if (uuid) return strcmp(uuid, sv->uuid) == 0;
  return src && *src && strcmp(src, sv->parent_uuid) == 0;
}

int bt_set_u64(const bt_job *j, const char *key, uint64_t v)
{
  char text[32];
  snprintf(text, sizeof text, "%" PRIu64, v);
  return j->host->set(j->job, key, text);
}

int bt_delete_at(const bt_job *j, int dirfd, const char *name, const char *path)
{
  enum btrfs_util_error e = btrfs_util_delete_subvolume_fd(dirfd, name, 0);
  if (!e || errno == ENOENT) return 0;
  int err = errno;
  const char *hint =
      err == EPERM || err == EACCES
          ? "deleting a subvolume needs CAP_SYS_ADMIN (run as root) or the mount option "
            "user_subvol_rm_allowed"
      : err == ENOTEMPTY ? "it holds nested subvolumes: delete those first"
      : err == EROFS     ? "the filesystem is read-only: remount it read-write"
                         : "check the filesystem (dmesg)";
  return j->host->error(j->job, bt_errno_code(err),
                        "cannot delete the subvolume %s: "
                        "%s (%s); %s, then run the operation again",
                        path, strerror(err), btrfs_util_strerror(e), hint);
}

/* btrfs snapshots are not recursive: a subvolume inside the disk's would
 * be an empty directory in the snapshot. Refuse, naming it. */
int bt_check_nested(const bt_job *j, int fd, const char *path, const char *what)
{
  struct btrfs_util_subvolume_iterator *it;
  char *sub = NULL;
  uint64_t id;

  if (btrfs_util_create_subvolume_iterator_fd(fd, 0, 0, &it)) {
    int err = errno;
    return bt_fail(j, VMSNAP_E_BACKEND, err,
                   "cannot look for subvolumes inside %s; "
                   "nothing was changed",
                   path);
  }
  enum btrfs_util_error e = btrfs_util_subvolume_iterator_next(it, &sub, &id);
  btrfs_util_destroy_subvolume_iterator(it);
  if (e == BTRFS_UTIL_ERROR_STOP_ITERATION) return 0;
  if (e) {
    int err = errno;
    return bt_fail(j, VMSNAP_E_BACKEND, err,
                   "cannot look for subvolumes inside %s; "
                   "nothing was changed",
                   path);
  }
  int rc = j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "%s contains the nested subvolume %s/%s (id %" PRIu64 "); "
                          "btrfs snapshots are not recursive, so %s would lose it; move it out "
                          "of the disk's subvolume, or give it its own --disk so it is "
                          "snapshotted explicitly; nothing was changed",
                          path, path, sub, id, what);
  free(sub);
  return rc;
}

int bt_check_writable(const bt_job *j, int fd, const char *path, const char *nothing)
{
  struct statvfs sv;
  if (fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_RDONLY))
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "the btrfs holding %s is mounted read-only; remount it "
                          "read-write (mount -o remount,rw) and try again; %s",
                          path, nothing);
  return 0;
}

/* The filesystem's own figure (f_bavail: what btrfs says a user can still
 * write). A snapshot shares every extent; it needs only metadata now, and
 * every later write to the disk is copy-on-write, so a full filesystem
 * makes the snapshot useless even if it could be made. */
int bt_check_space(const bt_job *j, int fd, const char *path, const char *what)
{
  struct statvfs sv;
  if (fstatvfs(fd, &sv) < 0) {
    int err = errno;
    return bt_fail(j, VMSNAP_E_BACKEND, err,
                   "cannot read the free space of %s; "
                   "nothing was changed",
                   path);
  }
  uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
  j->host->log(j->job, VMSNAP_LOG_INFO,
               "%s shares all data with %s and costs only "
               "metadata now; %" PRIu64 " MiB free",
               what, path, avail >> 20);
  if (avail >= BT_MIN_FREE) return 0;
  return j->host->error(j->job, VMSNAP_E_NOSPC,
                        "the btrfs holding %s has %" PRIu64 " KiB free; %s needs at "
                        "least %llu MiB (metadata now, and room for the copy-on-write of later "
                        "writes); free some space (deleting snapshots frees it once the "
                        "btrfs cleaner ran) and try again; nothing was changed",
                        path, avail >> 10, what, BT_MIN_FREE >> 20);
}

int bt_has_cap_sys_admin(void)
{
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capget, &h, d) < 0) return 0;
  return (d[CAP_SYS_ADMIN / 32].effective >> (CAP_SYS_ADMIN % 32)) & 1;
}

/* Calls fn for every line of /proc/self/mountinfo until it returns non-zero. */
static int each_mount(int (*fn)(void *, char *), void *user)
{
  FILE *f = fopen("/proc/self/mountinfo", "re");
  char *line = NULL;
  size_t cap = 0;
  int rc = 0;
  if (!f) return 0;
  while (!rc && getline(&line, &cap, f) > 0) rc = fn(user, line);
  free(line);
  fclose(f);
  return rc;
}

/* mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE SOURCE SUPEROPTS" */
typedef struct mnt_line {
  unsigned long id;
  char devno[32], root[PATH_MAX], point[PATH_MAX], fstype[32], super[1024];
} mnt_line;

static int parse_mount(char *line, mnt_line *m)
{
  char *dash = strstr(line, " - ");
  if (!dash || sscanf(line, "%lu %*u %31s %4095s %4095s", &m->id, m->devno, m->root,
                      m->point) != 4)
    return -1;
  if (sscanf(dash + 3, "%31s %*s %1023s", m->fstype, m->super) != 2) return -1;
  return 0;
}

static int rm_allowed(void *user, char *line)
{
  mnt_line m;
  unsigned long *want = user;
  if (parse_mount(line, &m) < 0 || strcmp(m.fstype, "btrfs") != 0) return 0;
  if (*want && m.id != *want) return 0;
  return strstr(m.super, "user_subvol_rm_allowed") != NULL;
}

int bt_any_user_rm_mount(void)
{
  unsigned long any = 0;
  return each_mount(rm_allowed, &any);
}

static unsigned long mount_id(int fd)
{
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID))
    return 0;
  return (unsigned long)sx.stx_mnt_id;
}

int bt_check_can_delete(const bt_job *j, int fd, const char *path)
{
  unsigned long id = mount_id(fd);
  if (bt_has_cap_sys_admin() || (id && each_mount(rm_allowed, &id))) return 0;
  return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                        "deleting subvolumes on the btrfs holding %s needs "
                        "CAP_SYS_ADMIN (run as root) or the mount option user_subvol_rm_allowed; "
                        "nothing was changed",
                        path);
}

/* Where the subvolume id of the btrfs that fd is on is mounted (a
 * subvol= or subvolid= mount, or any bind of it): 1 with where filled. */
typedef struct mounted_q {
  char devno[32];
  uint64_t id;
  char *where;
  size_t len;
} mounted_q;

typedef struct devno_q {
  unsigned long id;
  char devno[32];
} devno_q;

static int find_devno(void *user, char *line)
{
  devno_q *q = user;
  mnt_line m;
  if (parse_mount(line, &m) < 0 || m.id != q->id) return 0;
  snprintf(q->devno, sizeof q->devno, "%s", m.devno);
  return 1;
}

static int subvol_mounted(void *user, char *line)
{
  mounted_q *q = user;
  mnt_line m;
  char opt[48];
  if (parse_mount(line, &m) < 0 || strcmp(m.fstype, "btrfs") != 0 ||
      strcmp(m.devno, q->devno) != 0)
    return 0;
  snprintf(opt, sizeof opt, "subvolid=%" PRIu64, q->id);
  for (char *p = strstr(m.super, opt); p; p = strstr(p + 1, opt))
    if ((p == m.super || p[-1] == ',') && (p[strlen(opt)] == ',' || p[strlen(opt)] == '\0')) {
      snprintf(q->where, q->len, "%s", m.point);
      return 1;
    }
  return 0;
}

int bt_mounted_at(int fd, uint64_t id, char *where, size_t len)
{
  devno_q d = {.id = mount_id(fd)};
  if (!d.id || !each_mount(find_devno, &d)) return 0;
  mounted_q q = {.id = id, .where = where, .len = len};
  snprintf(q.devno, sizeof q.devno, "%s", d.devno);
  return each_mount(subvol_mounted, &q);
}

/* Finds a process (not us) with a file open, or its working directory,
 * inside the subvolume (its st_dev is the subvolume's own). */
static long find_opener(dev_t dev, char *comm, size_t clen, char *file, size_t flen)
{
  DIR *proc = opendir("/proc");
  struct dirent *de;
  long self = (long)getpid(), found = 0;
  if (!proc) return 0;
  while (!found && (de = readdir(proc))) {
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    if (*end || pid <= 0 || pid == self) continue;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", pid);
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *fds = dfd < 0 ? NULL : fdopendir(dfd);
    struct dirent *fe;
    struct stat st;
    char link[64 + NAME_MAX + 2];
    while (fds && !found && (fe = readdir(fds)))
      if (fe->d_name[0] != '.' && fstatat(dfd, fe->d_name, &st, 0) == 0 && st.st_dev == dev) {
        found = pid;
        snprintf(link, sizeof link, "%s/%.*s", path, NAME_MAX, fe->d_name);
      }
    if (fds) closedir(fds);
    else if (dfd >= 0) close(dfd);
    snprintf(path, sizeof path, "/proc/%ld/cwd", pid);
    if (!found && stat(path, &st) == 0 && st.st_dev == dev) {
      found = pid;
      snprintf(link, sizeof link, "%s", path);
    }
    if (found) {
      ssize_t n = readlink(link, file, flen - 1);
      file[n > 0 ? n : 0] = '\0';
      snprintf(path, sizeof path, "/proc/%ld/comm", pid);
      FILE *f = fopen(path, "re");
      comm[0] = '\0';
      if (f && fgets(comm, (int)clen, f)) comm[strcspn(comm, "\n")] = '\0';
      if (f) fclose(f);
    }
  }
  closedir(proc);
  return found;
}

int bt_check_open_files(const bt_job *j, const bt_subvol *sv, const char *path)
{
  char comm[64], file[PATH_MAX];
  long pid = find_opener(sv->dev, comm, sizeof comm, file, sizeof file);
  if (!pid) return 0;
  if (j->info->flags & VMSNAP_JOB_FORCE) {
    j->host->warn(j->job,
                  "process %ld (%s) has %s open in %s; forced: it keeps "
                  "the old subvolume, which the revert deletes, and loses what it writes",
                  pid, comm, file, path);
    return 0;
  }
  return j->host->error(j->job, VMSNAP_E_BUSY,
                        "process %ld (%s) has %s open in the subvolume %s; after the "
                        "revert it would keep writing into the old copy; stop it (shut the "
                        "guest down), or add --force to revert anyway; nothing was changed",
                        pid, comm[0] ? comm : "?", file, path);
}
