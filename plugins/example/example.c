/* example.c — a minimal vmsnap backend to read and copy; its contract: docs/vmsnap-plugin.md.
 * A snapshot is a cp copy (a reflink clone where the filesystem can) of a raw *.example file.
 * Build: cc $(pkg-config --cflags vmsnap) -fPIC -shared example.c -o example.so */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vmsnap/vmsnap-plugin.h>

static int path2(char *buf, const char *a, const char *b) { /* "a.b" into buf[PATH_MAX] */
  return (unsigned)snprintf(buf, PATH_MAX, "%s.%s", a, b) < PATH_MAX ? 0 : -1; /* too long */
}
/* Run tools with host->spawn, never fork/exec: argv only, no shell; a cancel stops the
 * tool and spawn returns VMSNAP_E_CANCELLED. host->error sets the message, returns code. */
static int run_cp(vmsnap_job *job, const vmsnap_host *h, const char *from, const char *to) {
  const char *const argv[] = {"cp", "--reflink=auto", "--sparse=always", from, to, NULL};
  vmsnap_spawn_opts opts = {.struct_size = sizeof opts}; /* .line: a progress extractor */
  vmsnap_spawn_result r = {.struct_size = sizeof r};
  int rc = h->spawn(job, argv, &opts, &r); /* < 0: the core has set the message */
  if (rc == 0 && r.exit_status != 0)
    rc = h->error(job, VMSNAP_E_BACKEND, "cp %s %s failed: %s", from, to, r.err_tail);
  return rc;
}
/* Every op runs on core worker threads, several jobs (disks) at once: no unlocked globals.
 * probe: any time, for any disk. Look, change nothing. 0 = not ours, higher = better;
 * our 1 loses to dd's 10, so we run only when named: --disk vda=F,backend=example. */
static int ex_probe(const vmsnap_disk *d) {
  size_t n = strlen(d->source);
  return !strcmp(d->format, "raw") && n > 8 && !strcmp(d->source + n - 8, ".example");
}
/* capabilities: combined over all disks; the core refuses up front what one cannot do. */
static uint64_t ex_capabilities(const vmsnap_disk *d) {
  return VMSNAP_CAP_NEEDS_PAUSE | VMSNAP_CAP_REVERT_KEEPS_NEWER | VMSNAP_CAP_DELETE_ANY;
}
/* prepare: for every disk before any disk is touched (create, revert). Validate, name
 * objects, record them with host->set; change nothing. The core journals what we set
 * before create runs, so after a crash recover gives it back to remove. */
static int ex_prepare(vmsnap_job *job, const vmsnap_job_info *info) {
  char path[PATH_MAX];
  if (info->kind != VMSNAP_JOB_CREATE) return 0; /* revert: data recorded at create time */
  if (path2(path, info->disk->source, info->object_name) < 0) /* "vmsnap-<name>": our mark */
    return info->host->error(job, VMSNAP_E_INVALID, "path too long: %s", info->disk->source);
  if (access(path, F_OK) == 0) /* never overwrite, nor later delete, what is not ours */
    return info->host->error(job, VMSNAP_E_EXISTS, "%s exists; move it away", path);
  return info->host->set(job, "copy", path);
}
/* create: after every disk's prepare succeeded. On error or cancel leave nothing. */
static int ex_create(vmsnap_job *job, const vmsnap_job_info *info) {
  const char *copy = info->host->get(job, "copy");
  int rc = run_cp(job, info->host, info->disk->source, copy);
  if (rc < 0) unlink(copy);
  return rc;
}
/* remove: DELETE, or ROLLBACK of an unfinished create (VMSNAP_JOB_RECOVERY after a
 * crash: the copy may be half made, or not there). Idempotent: nothing is success. */
static int ex_remove(vmsnap_job *job, const vmsnap_job_info *info) {
  const char *copy = info->host->get(job, "copy");
  if (copy && unlink(copy) < 0 && errno != ENOENT)
    return info->host->error(job, VMSNAP_E_IO, "remove %s: %s", copy, strerror(errno));
  return 0;
}
/* revert, phase one: only what can be undone. Stage the copy beside the disk. */
static int ex_revert(vmsnap_job *job, const vmsnap_job_info *info) {
  const vmsnap_host *h = info->host;
  const char *copy = h->get(job, "copy");
  char staged[PATH_MAX]; struct stat st;
  if (!copy || stat(copy, &st) < 0 || path2(staged, info->disk->source, "vmsnap-revert") < 0)
    return h->error(job, VMSNAP_E_NOT_FOUND, "the copy of %s is gone", info->disk->target);
  h->progress(job, 0, (uint64_t)st.st_size); /* bytes; cheap, call as often as you like */
  if (h->cancelled(job)) return VMSNAP_E_CANCELLED; /* check between your own steps */
  int rc = run_cp(job, h, copy, staged);
  if (rc < 0) unlink(staged);
  else h->progress(job, (uint64_t)st.st_size, (uint64_t)st.st_size);
  return rc;
}
/* revert_finish, phase two, only after every disk's revert succeeded: the irreversible
 * step. Restartable: after a crash recover calls it again, maybe after the rename. */
static int ex_revert_finish(vmsnap_job *job, const vmsnap_job_info *info) {
  char staged[PATH_MAX];
  if (!path2(staged, info->disk->source, "vmsnap-revert") &&
      rename(staged, info->disk->source) < 0 && errno != ENOENT)
    return info->host->error(job, VMSNAP_E_IO, "rename %s: %s", staged, strerror(errno));
  return 0;
}
/* revert_abort: undo phase one (another disk failed, a cancel, or recover). */
static int ex_revert_abort(vmsnap_job *job, const vmsnap_job_info *info) {
  char staged[PATH_MAX];
  if (!path2(staged, info->disk->source, "vmsnap-revert")) unlink(staged);
  return 0;
}
/* Ops left out (load, unload, available, list, live_done) stay NULL: they are optional. */
static const vmsnap_plugin ops = {
    .name = "example", .version = "1.0", .description = "teaching backend: cp of *.example",
    .probe = ex_probe, .capabilities = ex_capabilities, .prepare = ex_prepare,
    .create = ex_create, .remove = ex_remove, .revert = ex_revert,
    .revert_finish = ex_revert_finish, .revert_abort = ex_revert_abort};
VMSNAP_REGISTER_PLUGIN(ops) /* defines the one exported symbol, vmsnap_plugin_init */
