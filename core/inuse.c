/* inuse.c — is anything holding a disk? QEMU takes OFD byte-range locks on
 * the images it opens; any process may just have it open. We name the
 * holder so the user knows what to stop. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disks.h"

static int same_file(const struct stat *a, const struct stat *b)
{
  if (S_ISBLK(a->st_mode)) return S_ISBLK(b->st_mode) && a->st_rdev == b->st_rdev;
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static void proc_comm(long pid, char *out, size_t len)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/comm", pid);
  FILE *f = fopen(path, "re");
  out[0] = '\0';
  if (f) {
    if (fgets(out, (int)len, f)) out[strcspn(out, "\n")] = '\0';
    fclose(f);
  }
}

/* Finds a process other than us with the file open: its pid or 0. */
static long find_opener(const struct stat *want, char *comm, size_t len)
{
  DIR *proc = opendir("/proc");
  if (!proc) return 0;
  long self = (long)getpid(), found = 0;
  struct dirent *pe;
  while (!found && (pe = readdir(proc))) {
    char *end;
    long pid = strtol(pe->d_name, &end, 10);
    if (*end || pid <= 0 || pid == self) continue;
    char fddir[64];
    snprintf(fddir, sizeof fddir, "/proc/%ld/fd", pid);
    int dfd = open(fddir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *fds = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!fds) { if (dfd >= 0) close(dfd); continue; }
    struct dirent *fe;
    struct stat st;
    while ((fe = readdir(fds)))
      if (fe->d_name[0] != '.' && fstatat(dfd, fe->d_name, &st, 0) == 0 && same_file(want, &st)) {
        found = pid;
        proc_comm(pid, comm, len);
        break;
      }
    closedir(fds);
  }
  closedir(proc);
  return found;
}

static int locked_by_other(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return 0;
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  int locked = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  close(fd);
  return locked;
}

int disks_check_not_in_use(json_t *docs, vs_err *err)
{
  size_t i;
  json_t *doc;
  json_array_foreach(docs, i, doc) {
    const char *src = jstr(doc, "source"), *target = jstr(doc, "target");
    struct stat st;
    if (stat(src, &st) < 0 || S_ISDIR(st.st_mode)) continue; /* backends check dirs */
    char comm[64] = "";
    long pid = find_opener(&st, comm, sizeof comm);
    int locked = S_ISREG(st.st_mode) && locked_by_other(src);
    if (pid)
      return err_set(err, VMSNAP_E_BUSY,
                     "disk %s (%s) is in use by process %ld (%s)%s; stop it first, or snapshot "
                     "it through the hypervisor that runs it", target, src, pid,
                     comm[0] ? comm : "?", locked ? " which holds a lock on it" : "");
    if (locked)
      return err_set(err, VMSNAP_E_BUSY,
                     "disk %s (%s) is locked by another process (a QEMU image lock?); stop it "
                     "first", target, src);
  }
  return 0;
}
