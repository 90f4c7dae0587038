/* job.c — the copy engine seen from a vmsnap job: its callbacks go to the
 * host, its errno results become vmsnap codes and messages. */
#define _GNU_SOURCE
#include "dd.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static void job_progress(void *user, uint64_t done, uint64_t total)
{
  dd_job *j = user;
  j->host->progress(j->job, done, total);
}

static int job_cancelled(void *user)
{
  dd_job *j = user;
  return j->host->cancelled(j->job);
}

/* Not cancellable: past a point of no return (rewriting a device in place)
 * stopping halfway is worse than finishing. */
dd_copy_ops dd_job_ops(dd_job *j, int cancellable)
{
  dd_copy_ops ops = {
    .progress = job_progress,
    .cancelled = cancellable ? job_cancelled : NULL,
    .user = j,
  };
  return ops;
}

/* res->message says what failed, on which file and why; what names the
 * step for the user; nospc_hint and hint say what to do when space ran
 * out, and for other failures. */
int dd_copy_failed(const dd_job *j, int rc, const dd_copy_result *res,
                   const char *what, const char *nospc_hint, const char *hint)
{
  switch (rc) {
  case -ECANCELED:
    return j->host->error(j->job, VMSNAP_E_CANCELLED,
                          "%s cancelled; the partial copy was removed", what);
  case -ENOSPC:
    return j->host->error(j->job, VMSNAP_E_NOSPC,
                          "%s failed: %s; the partial copy was removed; %s",
                          what, res->message, nospc_hint);
  case -EEXIST:
    return j->host->error(j->job, VMSNAP_E_EXISTS,
                          "%s failed: %s; it was not made by this snapshot and "
                          "vmsnap never overwrites it: move it away or choose "
                          "another name", what, res->message);
  default:
    return j->host->error(j->job, VMSNAP_E_BACKEND, "%s failed: %s; %s", what,
                          res->message, hint);
  }
}

/* Every file name of a snapshot carries its uuid; without one, no op
 * could tell its files from another snapshot's. */
int dd_need_uuid(const dd_job *j, const vmsnap_job_info *info)
{
  if (info->snapshot_uuid && *info->snapshot_uuid && !strchr(info->snapshot_uuid, '/'))
    return 0;
  return j->host->error(j->job, VMSNAP_E_INVALID,
                        "the job has no usable snapshot uuid "
                        "(a bug in the caller of the dd plugin)");
}

double dd_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void dd_copy_done(const dd_job *j, const char *what, const dd_copy_result *res,
                  double seconds)
{
  static const char *const methods[] = {"nothing to copy", "reflink",
                                        "copy_file_range", "read/write"};
  char size_s[32];

  vp_human_size(res->done, size_s, sizeof(size_s));
  j->host->log(j->job, VMSNAP_LOG_INFO, "%s: %s of data by %s in %.3f s", what,
               size_s, methods[res->method], seconds);
}
