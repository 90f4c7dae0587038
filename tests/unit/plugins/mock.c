/* mock.c — a scriptable backend for the core's unit tests (never installed).
 * It takes disks whose source ends in ".mock"; what it does is steered by
 * words in the source's name:
 *   fail-prepare / fail-create / fail-revert / fail-finish — that step fails
 *   slow      — create/revert loop for up to 10 s reporting progress, until cancelled
 *   nokeep    — capabilities lack revert-keeps-newer
 *   live      — create adds two QMP actions instead of a marker
 * A snapshot is a marker file "<source>.<object_name>" holding the source's
 * content at the time; revert copies it back (stage file + rename). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vmsnap/vmsnap-plugin.h>

static int has(const vmsnap_job_info *i, const char *word)
{
  return strstr(i->disk->source, word) != NULL;
}

static int mock_probe(const vmsnap_disk *d)
{
  size_t n = strlen(d->source);
  return n > 5 && strcmp(d->source + n - 5, ".mock") == 0 ? 50 : 0;
}

static uint64_t mock_caps(const vmsnap_disk *d)
{
  uint64_t caps = VMSNAP_CAP_INTERNAL | VMSNAP_CAP_DELETE_ANY | VMSNAP_CAP_CANCEL |
                  VMSNAP_CAP_PROGRESS | VMSNAP_CAP_LIVE_QMP;
  if (!d || !strstr(d->source, "nokeep")) caps |= VMSNAP_CAP_REVERT_KEEPS_NEWER;
  return caps;
}

static int copy_file(const char *from, const char *to)
{
  char buf[4096];
  FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
  size_t n;
  int rc = in && out ? 0 : -1;
  while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) rc = -1;
  if (in) fclose(in);
  if (out && fclose(out)) rc = -1;
  return rc;
}

static int slow(vmsnap_job *job, const vmsnap_job_info *i)
{
  for (int k = 0; k < 1000; k++) {
    if (i->host->cancelled(job)) return VMSNAP_E_CANCELLED;
    i->host->progress(job, (uint64_t)k, 1000);
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

static int mock_prepare(vmsnap_job *job, const vmsnap_job_info *i)
{
  if (has(i, "fail-prepare")) return i->host->error(job, VMSNAP_E_NOSPC, "mock: no space");
  if (i->kind != VMSNAP_JOB_CREATE) return 0;
  char path[4096];
  snprintf(path, sizeof path, "%s.%s", i->disk->source, i->object_name);
  return i->host->set(job, "marker", path);
}

static int mock_create(vmsnap_job *job, const vmsnap_job_info *i)
{
  if (has(i, "live"))
    return i->host->qmp_action(job, "blockdev-snapshot-internal-sync", "{\"node-name\":\"n1\"}") ||
           i->host->qmp_action(job, "blockdev-snapshot-internal-sync", "{\"node-name\":\"n2\"}");
  if (has(i, "fail-create")) return i->host->error(job, VMSNAP_E_BACKEND, "mock: create failed");
  if (has(i, "slow")) {
    int rc = slow(job, i);
    if (rc) return rc;
  }
  /* A disk option (mock takes color=) is recorded, to be seen in tests. */
  for (size_t k = 0; i->disk->options && i->disk->options[k]; k += 2)
    i->host->set(job, i->disk->options[k], i->disk->options[k + 1]);
  return copy_file(i->disk->source, i->host->get(job, "marker")) == 0
             ? 0 : i->host->error(job, VMSNAP_E_BACKEND, "mock: cannot write marker");
}

static int mock_remove(vmsnap_job *job, const vmsnap_job_info *i)
{
  const char *m = i->host->get(job, "marker");
  if (m) unlink(m);
  return 0;
}

static int mock_revert(vmsnap_job *job, const vmsnap_job_info *i)
{
  char stage[4200];
  if (has(i, "fail-revert")) return i->host->error(job, VMSNAP_E_BACKEND, "mock: revert failed");
  if (has(i, "slow") && slow(job, i)) return VMSNAP_E_CANCELLED;
  snprintf(stage, sizeof stage, "%s.stage", i->disk->source);
  return copy_file(i->host->get(job, "marker"), stage) == 0
             ? 0 : i->host->error(job, VMSNAP_E_BACKEND, "mock: cannot stage");
}

static int mock_finish(vmsnap_job *job, const vmsnap_job_info *i)
{
  char stage[4200];
  if (has(i, "fail-finish")) return i->host->error(job, VMSNAP_E_BACKEND, "mock: finish failed");
  snprintf(stage, sizeof stage, "%s.stage", i->disk->source);
  if (access(stage, F_OK) != 0) return 0; /* finished before a crash */
  return rename(stage, i->disk->source) == 0 ? 0 : VMSNAP_E_BACKEND;
}

static int mock_abort(vmsnap_job *job, const vmsnap_job_info *i)
{
  char stage[4200];
  snprintf(stage, sizeof stage, "%s.stage", i->disk->source);
  unlink(stage);
  return 0;
}

static int mock_live_done(vmsnap_job *job, const vmsnap_job_info *i, int rc, const char *ret)
{
  return i->host->set(job, "live_result", rc ? "failed" : ret);
}

static const char *const mock_options[] = {"color", NULL};

static const vmsnap_plugin mock = {
  .name = "mock", .version = "1", .description = "unit-test backend",
  .probe = mock_probe, .capabilities = mock_caps, .prepare = mock_prepare,
  .create = mock_create, .remove = mock_remove, .revert = mock_revert,
  .revert_finish = mock_finish, .revert_abort = mock_abort, .live_done = mock_live_done,
  .disk_options = mock_options,
};
VMSNAP_REGISTER_PLUGIN(mock)
