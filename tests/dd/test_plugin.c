/* test_plugin.c — the dd plugin's ops on real files, through a stand-in
 * host (the core's services reduced to a key/value table and a message
 * buffer), until snapctl integration tests exist.
 *
 *   test_plugin DD_SO DIR [BLOCKDEV|"" [SMALLDIR]]
 *
 * DIR: a scratch directory; BLOCKDEV: a scratch device of 64 MiB (content
 * destroyed); SMALLDIR: on a filesystem with less than 64 MiB free.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <vmsnap/vmsnap-plugin.h>

#define MiB (1024ull * 1024)

static const char *current = "?";

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "FAIL %s (%s:%d): %s\n", current, __FILE__, __LINE__,   \
              #cond);                                                         \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

/* ---- a stand-in for the core ---------------------------------------- */

#define MAX_KV 8

/* One disk snapshot's backend data, as the core would store it. */
typedef struct snap {
  char uuid[64], object[128];
  char keys[MAX_KV][32], values[MAX_KV][4096];
  int n;
} snap;

struct vmsnap_job {
  snap *s;
  int cancel;
  uint64_t done, total;
  char message[4096];
  int warnings, entries;
};

static void h_progress(vmsnap_job *job, uint64_t done, uint64_t total)
{
  job->done = done;
  job->total = total;
}

static int h_cancelled(vmsnap_job *job) { return job->cancel; }

static int __attribute__((format(printf, 3, 4)))
h_error(vmsnap_job *job, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(job->message, sizeof(job->message), fmt, ap);
  va_end(ap);
  return code;
}

static void __attribute__((format(printf, 2, 3)))
h_warn(vmsnap_job *job, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("     warning: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  job->warnings++;
}

static void __attribute__((format(printf, 3, 4)))
h_log(vmsnap_job *job, int level, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("     log: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

static const char *h_get(vmsnap_job *job, const char *key)
{
  for (int i = 0; i < job->s->n; i++)
    if (strcmp(job->s->keys[i], key) == 0)
      return job->s->values[i];
  return NULL;
}

static int h_set(vmsnap_job *job, const char *key, const char *value)
{
  snap *s = job->s;
  int i = 0;
  while (i < s->n && strcmp(s->keys[i], key) != 0)
    i++;
  CHECK(i < MAX_KV);
  snprintf(s->keys[i], sizeof(s->keys[i]), "%s", key);
  snprintf(s->values[i], sizeof(s->values[i]), "%s", value);
  if (i == s->n)
    s->n++;
  return 0;
}

static int h_list_entry(vmsnap_job *job, const vmsnap_list_entry *e)
{
  printf("     listed %s: %llu bytes, ctime %lld\n", e->object,
         (unsigned long long)e->size, (long long)e->ctime_sec);
  CHECK(e->ctime_sec > 0 && strstr(e->object, "/vmsnap-") != NULL);
  job->entries++;
  return 0;
}

static const vmsnap_host host = {
  .struct_size = sizeof(vmsnap_host),
  .abi_version = VMSNAP_PLUGIN_ABI_VERSION,
  .progress = h_progress, .cancelled = h_cancelled, .error = h_error,
  .warn = h_warn, .log = h_log, .get = h_get, .set = h_set,
  .list_entry = h_list_entry,
};

static const vmsnap_plugin *dd;

/* The snapshots of one test run: they live as long as the process. */
static snap snaps[16];

static snap *new_snap(const char *name)
{
  static int counter;
  CHECK(counter < (int)(sizeof(snaps) / sizeof(snaps[0])));
  snap *s = &snaps[counter];
  snprintf(s->uuid, sizeof(s->uuid), "00000000-0000-4000-8000-%012d", ++counter);
  snprintf(s->object, sizeof(s->object), "vmsnap-%s", name);
  return s;
}

static vmsnap_job_info info_for(vmsnap_job_kind kind, const vmsnap_disk *disk,
                                const snap *s)
{
  return (vmsnap_job_info){
    .struct_size = sizeof(vmsnap_job_info), .host = &host, .kind = kind,
    .disk = disk, .snapshot_name = s ? s->object + 7 : NULL,
    .snapshot_uuid = s ? s->uuid : NULL, .object_name = s ? s->object : NULL,
  };
}

/* Runs op on a fresh job; prints the message of a failure. */
typedef int op_fn(vmsnap_job *, const vmsnap_job_info *);
static int run(op_fn *op, vmsnap_job_kind kind, const vmsnap_disk *disk,
               snap *s, vmsnap_job *job)
{
  vmsnap_job local = {0};
  if (!job)
    job = &local;
  job->s = s;
  vmsnap_job_info info = info_for(kind, disk, s);
  int rc = op(job, &info);
  if (rc)
    printf("     -> %d: %s\n", rc, job->message);
  return rc;
}

/* Prepare then create, as the core does. */
static int take(const vmsnap_disk *disk, snap *s, vmsnap_job *job)
{
  int rc = run(dd->prepare, VMSNAP_JOB_CREATE, disk, s, job);
  return rc ? rc : run(dd->create, VMSNAP_JOB_CREATE, disk, s, job);
}

/* ---- files ---------------------------------------------------------- */

static void write_pattern(const char *path, uint64_t off, uint64_t len, char c)
{
  static char buf[1 << 20];
  int fd = open(path, O_WRONLY | O_CREAT, 0640);
  CHECK(fd >= 0);
  memset(buf, c, sizeof(buf));
  for (uint64_t o = 0; o < len; o += sizeof(buf))
    CHECK(pwrite(fd, buf, sizeof(buf), (off_t)(off + o)) == (ssize_t)sizeof(buf));
  CHECK(fsync(fd) == 0 && close(fd) == 0);
}

static int same_content(const char *a, const char *b)
{
  char cmd[8192];
  snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
  return system(cmd) == 0;
}

static int exists(const char *path)
{
  struct stat sb;
  return lstat(path, &sb) == 0;
}

static void copy_file(const char *from, const char *to)
{
  char cmd[8192];
  snprintf(cmd, sizeof(cmd), "cp --sparse=always '%s' '%s'", from, to);
  CHECK(system(cmd) == 0);
}

/* ---- scenarios ------------------------------------------------------ */

static void test_probe(const char *dir, const char *disk_path)
{
  current = "probe and capabilities";
  vmsnap_disk raw = {.struct_size = sizeof(raw), .target = "vda",
                     .source = disk_path, .format = "raw"};
  vmsnap_disk qcow = raw, dirdisk = raw;
  qcow.format = "qcow2";
  dirdisk.source = dir;
  CHECK(dd->probe(&raw) == 10 && dd->probe(&qcow) == 0 && dd->probe(&dirdisk) == 0);
  uint64_t caps = dd->capabilities(&raw);
  uint64_t want = VMSNAP_CAP_INTERNAL | VMSNAP_CAP_REVERT_KEEPS_NEWER |
                  VMSNAP_CAP_DELETE_ANY | VMSNAP_CAP_LIST | VMSNAP_CAP_PROGRESS |
                  VMSNAP_CAP_CANCEL | VMSNAP_CAP_BLOCK_DEVICE;
  CHECK((caps & want) == want);
  /* On btrfs the copy must be a reflink, anywhere else it cannot be. */
  struct statfs sf;
  CHECK(statfs(dir, &sf) == 0);
  CHECK(!!(caps & VMSNAP_CAP_REFLINK) == (sf.f_type == BTRFS_SUPER_MAGIC));
  char why[64];
  CHECK(dd->available(why, sizeof(why)) == 1);
  printf("ok   %-30s caps %#llx (reflink %s)\n", current, (unsigned long long)caps,
         caps & VMSNAP_CAP_REFLINK ? "yes" : "no");
}

static void test_file_disk(const char *dir)
{
  char disk_path[4096], keep1[4096], snapdir[4096];
  snprintf(disk_path, sizeof(disk_path), "%s/disks/vm.img", dir);
  snprintf(snapdir, sizeof(snapdir), "%s/disks/.vmsnap/vm.img", dir);
  snprintf(keep1, sizeof(keep1), "%s/state-s1.img", dir);
  char sub[4096];
  snprintf(sub, sizeof(sub), "%s/disks", dir);
  CHECK(mkdir(sub, 0755) == 0);
  CHECK(truncate(disk_path, 0) == 0 || errno == ENOENT);
  write_pattern(disk_path, 0, 8 * MiB, 'A');
  write_pattern(disk_path, 40 * MiB, 2 * MiB, 'a');
  CHECK(truncate(disk_path, 64 * MiB) == 0 && chmod(disk_path, 0640) == 0);
  copy_file(disk_path, keep1);
  test_probe(dir, disk_path);

  vmsnap_disk disk = {.struct_size = sizeof(disk), .domain = "d", .target = "vda",
                      .source = disk_path, .format = "raw"};
  snap *s1 = new_snap("s1"), *s2 = new_snap("s2");
  vmsnap_job job = {0};

  current = "create";
  CHECK(take(&disk, s1, &job) == 0);
  const char *f1 = h_get(&job, "file");
  CHECK(f1 && strncmp(f1, snapdir, strlen(snapdir)) == 0);
  CHECK(same_content(f1, disk_path));
  struct stat sb;
  CHECK(stat(f1, &sb) == 0 && (sb.st_mode & 07777) == 0600);
  CHECK(stat(snapdir, &sb) == 0 && (sb.st_mode & 07777) == 0700);
  char mark[64] = "";
  CHECK(getxattr(f1, "user.vmsnap.snapshot", mark, sizeof(mark)) > 0 &&
        strcmp(mark, s1->uuid) == 0);
  CHECK(strcmp(h_get(&job, "size"), "10485760") == 0 && job.done == 10 * MiB);
  printf("ok   %-30s %s (size %s)\n", current, f1, h_get(&job, "size"));

  current = "create refuses an existing name";
  snap dup = *s1;
  dup.n = 0;
  CHECK(run(dd->prepare, VMSNAP_JOB_CREATE, &disk, &dup, NULL) == VMSNAP_E_EXISTS);
  printf("ok   %s\n", current);

  write_pattern(disk_path, 0, 4 * MiB, 'B'); /* the guest writes on */
  current = "second snapshot, list";
  CHECK(take(&disk, s2, NULL) == 0);
  vmsnap_job lj = {0};
  CHECK(run(dd->list, VMSNAP_JOB_LIST, &disk, NULL, &lj) == 0 && lj.entries == 2);
  printf("ok   %s\n", current);

  current = "revert: staging, then finish";
  char after_s2[4096];
  snprintf(after_s2, sizeof(after_s2), "%s/state-s2.img", dir);
  copy_file(disk_path, after_s2);
  CHECK(run(dd->prepare, VMSNAP_JOB_REVERT, &disk, s1, NULL) == 0);
  CHECK(run(dd->revert, VMSNAP_JOB_REVERT, &disk, s1, NULL) == 0);
  CHECK(same_content(disk_path, after_s2)); /* untouched until finish */
  CHECK(run(dd->revert_finish, VMSNAP_JOB_REVERT, &disk, s1, NULL) == 0);
  CHECK(same_content(disk_path, keep1));
  CHECK(stat(disk_path, &sb) == 0 && (sb.st_mode & 07777) == 0640);
  CHECK((uint64_t)sb.st_blocks * 512 <= 10 * MiB + 64 * 1024); /* holes kept */
  CHECK(run(dd->revert_finish, VMSNAP_JOB_REVERT, &disk, s1, NULL) == 0); /* again */
  CHECK(same_content(disk_path, keep1));
  CHECK(exists(h_get(&(vmsnap_job){.s = s2}, "file"))); /* newer survives */
  printf("ok   %s\n", current);

  current = "revert abort";
  CHECK(run(dd->revert, VMSNAP_JOB_REVERT, &disk, s2, NULL) == 0);
  CHECK(run(dd->revert_abort, VMSNAP_JOB_REVERT, &disk, s2, NULL) == 0);
  CHECK(same_content(disk_path, keep1));
  char cmd[8192];
  snprintf(cmd, sizeof(cmd), "ls -a '%s/disks' | grep -q revert", dir);
  CHECK(system(cmd) != 0); /* no staging left */
  printf("ok   %s\n", current);

  current = "cancel create";
  snap *s3 = new_snap("s3");
  vmsnap_job cj = {.cancel = 1};
  CHECK(take(&disk, s3, &cj) == VMSNAP_E_CANCELLED);
  snprintf(cmd, sizeof(cmd), "ls -a '%s' | grep -q -e s3 -e part", snapdir);
  CHECK(system(cmd) != 0);
  CHECK(run(dd->remove, VMSNAP_JOB_ROLLBACK, &disk, s3, NULL) == 0);
  printf("ok   %s\n", current);

  current = "remove never deletes a foreign file";
  snap *s4 = new_snap("s4");
  vmsnap_job fj = {0};
  CHECK(run(dd->prepare, VMSNAP_JOB_CREATE, &disk, s4, &fj) == 0);
  write_pattern(h_get(&fj, "file"), 0, MiB, 'X'); /* someone takes the name */
  CHECK(run(dd->create, VMSNAP_JOB_CREATE, &disk, s4, &fj) == VMSNAP_E_EXISTS);
  vmsnap_job rj = {0};
  CHECK(run(dd->remove, VMSNAP_JOB_ROLLBACK, &disk, s4, &rj) == 0 && rj.warnings == 1);
  CHECK(exists(h_get(&fj, "file")));
  unlink(h_get(&fj, "file"));
  printf("ok   %s\n", current);

  current = "remove, idempotent";
  CHECK(run(dd->remove, VMSNAP_JOB_DELETE, &disk, s2, NULL) == 0);
  CHECK(run(dd->remove, VMSNAP_JOB_DELETE, &disk, s2, NULL) == 0);
  CHECK(run(dd->remove, VMSNAP_JOB_DELETE, &disk, s1, NULL) == 0);
  CHECK(!exists(snapdir)); /* empty per-disk dir removed */
  printf("ok   %s\n", current);
}

static void test_nospc(const char *dir, const char *small)
{
  char disk_path[4096], file[4096];
  snprintf(disk_path, sizeof(disk_path), "%s/disks/big.img", dir);
  snprintf(file, sizeof(file), "%s/big-snap.raw", small);
  write_pattern(disk_path, 0, 64 * MiB, 'D');
  vmsnap_disk disk = {.struct_size = sizeof(disk), .target = "vdb",
                      .source = disk_path, .format = "raw", .file = file};
  vmsnap_job job = {0};

  current = "prepare refuses when space is short";
  CHECK(run(dd->prepare, VMSNAP_JOB_CREATE, &disk, new_snap("big"), &job) == VMSNAP_E_NOSPC);
  CHECK(strstr(job.message, "needs 64.0 MiB") && !exists(file));
  printf("ok   %s\n", current);
  unlink(disk_path);
}

static void test_block_disk(const char *dir, const char *dev)
{
  char file[4096], want[4096];
  snprintf(file, sizeof(file), "%s/dev-snap.raw", dir);
  snprintf(want, sizeof(want), "%s/dev-want.img", dir);
  vmsnap_disk disk = {.struct_size = sizeof(disk), .target = "xvda",
                      .source = dev, .format = "raw", .is_block_device = 1};
  snap *s = new_snap("blk");
  vmsnap_job job = {0};

  current = "block device needs file=";
  CHECK(run(dd->prepare, VMSNAP_JOB_CREATE, &disk, s, &job) == VMSNAP_E_INVALID);
  CHECK(strstr(job.message, ",file=PATH") && strstr(job.message, dev) /* the core adds the target */);
  printf("ok   %s\n", current);

  current = "block device: create, revert";
  write_pattern(dev, 0, 64 * MiB, 0);
  write_pattern(dev, 8 * MiB, 4 * MiB, 'Q');
  disk.file = file;
  CHECK(take(&disk, s, &job) == 0 && same_content(file, dev));
  struct stat sb;
  CHECK(stat(file, &sb) == 0 && (uint64_t)sb.st_blocks * 512 <= 4 * MiB + 64 * 1024);
  copy_file(file, want);
  write_pattern(dev, 0, 64 * MiB, 'Z'); /* the guest scribbles */
  CHECK(run(dd->revert, VMSNAP_JOB_REVERT, &disk, s, NULL) == 0);
  CHECK(run(dd->revert_finish, VMSNAP_JOB_REVERT, &disk, s, NULL) == 0);
  CHECK(same_content(dev, want));
  CHECK(run(dd->remove, VMSNAP_JOB_DELETE, &disk, s, NULL) == 0 && !exists(file));
  printf("ok   %s\n", current);
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: %s DD_SO DIR [BLOCKDEV [SMALLDIR]]\n", argv[0]);
    return 2;
  }
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  CHECK(h != NULL);
  const vmsnap_plugin *(*init)(size_t *, uint32_t *) =
      (const vmsnap_plugin *(*)(size_t *, uint32_t *))dlsym(h, VMSNAP_PLUGIN_INIT_SYMBOL);
  size_t size;
  uint32_t abi;
  CHECK(init != NULL);
  dd = init(&size, &abi);
  CHECK(dd && size == sizeof(vmsnap_plugin) && abi == VMSNAP_PLUGIN_ABI_VERSION);
  CHECK(strcmp(dd->name, "dd") == 0);
  test_file_disk(argv[2]);
  if (argc > 4)
    test_nospc(argv[2], argv[4]);
  if (argc > 3 && *argv[3])
    test_block_disk(argv[2], argv[3]);
  printf("all plugin tests passed\n");
  return 0;
}
