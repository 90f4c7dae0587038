/* job.c — per-disk jobs: the host services a plugin calls, and running a
 * step of every disk of an op in parallel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "job.h"
#include "names.h"
#include "spawn.h"
#include "store.h"

vmsnap_job *job_new(vmsnap_op *op, size_t index, const plugin *pl, json_t *disk_doc,
                    json_t *data, vmsnap_job_kind kind, const char *snap_name,
                    const char *snap_uuid, unsigned flags)
{
  vmsnap_job *job = calloc(1, sizeof *job);
  if (!job) return NULL;
  job->op = op;
  job->index = index;
  job->pl = pl;
  job->disk_doc = json_incref(disk_doc);
  job->data = data ? json_incref(data) : json_object();
  job->others = json_array();
  job->qmp_actions = json_array();
  job->entries = json_array();
  job->object_name = snap_name ? name_object(snap_name) : NULL;
  job->disk = (vmsnap_disk){
    .struct_size = sizeof job->disk,
    .domain = op->dom ? op->dom->key : op->domain,
    .target = jstr(disk_doc, "target"),
    .source = jstr(disk_doc, "source"),
    .format = jstr(disk_doc, "format") ? jstr(disk_doc, "format") : "raw",
    .mode = jstr(disk_doc, "mode"),
    .file = jstr(disk_doc, "file"),
    .is_block_device = json_is_true(json_object_get(disk_doc, "block_device")),
    /* Live only while a QEMU serves it now: a snapshot taken live is
     * deleted offline once QEMU is gone (recover has no domain at all). */
    .live = json_is_true(json_object_get(disk_doc, "live")) && op->dom && op->dom->drv->qmp,
    .node_name = jstr(disk_doc, "node_name"),
  };
  /* The backend's options of the disk, pointing into disk_doc. */
  json_t *opts = json_object_get(disk_doc, "options");
  if (json_object_size(opts)) {
    const char *key;
    json_t *v;
    size_t n = 0;
    job->options = calloc(2 * json_object_size(opts) + 1, sizeof *job->options);
    json_object_foreach(opts, key, v)
      if (job->options && json_is_string(v)) {
        job->options[n++] = key;
        job->options[n++] = json_string_value(v);
      }
    job->disk.options = job->options;
  }
  /* The domain's disk with this target now, kept alive by the job. */
  size_t i;
  json_t *d;
  json_array_foreach(op->dom_disks, i, d)
    if (jstr(d, "target") && job->disk.target && !strcmp(jstr(d, "target"), job->disk.target)) {
      job->active_doc = json_incref(d);
      job->disk.active = jstr(d, "source");
    }
  job->info = (vmsnap_job_info){
    .struct_size = sizeof job->info,
    .host = &vs_host,
    .kind = kind,
    .flags = flags,
    .disk = &job->disk,
    .snapshot_name = snap_name,
    .snapshot_uuid = snap_uuid,
    .object_name = job->object_name,
  };
  return job;
}

void job_free(vmsnap_job *job)
{
  if (!job) return;
  json_decref(job->disk_doc);
  json_decref(job->data);
  json_decref(job->others);
  json_decref(job->siblings);
  json_decref(job->active_doc);
  json_decref(job->qmp_actions);
  json_decref(job->entries);
  free(job->object_name);
  free(job->options);
  free(job);
}

/* ---- host services ------------------------------------------------------ */

static void host_progress(vmsnap_job *job, uint64_t done, uint64_t total)
{
  op_job_progress(job->op, job->index, job->disk.target, done, total);
}

static int host_cancelled(vmsnap_job *job) { return op_cancelled(job->op); }

static int host_error(vmsnap_job *job, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  err_setv(&job->err, code, fmt, ap);
  va_end(ap);
  return code;
}

static void host_warn(vmsnap_job *job, const char *fmt, ...)
{
  char msg[VS_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  op_warn(job->op, "disk %s (%s): %s", job->disk.target, job->pl->ops.name, msg);
}

static void host_log(vmsnap_job *job, int level, const char *fmt, ...)
{
  char msg[VS_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (job)
    ctx_log(job->op->ctx, level, "disk %s (%s): %s", job->disk.target, job->pl->ops.name, msg);
  else if (level <= VMSNAP_LOG_WARN)
    fprintf(stderr, "vmsnap: plugin: %s\n", msg); /* no context to log to yet */
}

static int spawn_cancelled(void *user) { return op_cancelled(user); }
static void spawn_progress(void *user, uint64_t done, uint64_t total)
{
  vmsnap_job *job = user;
  host_progress(job, done, total);
}

static int host_spawn(vmsnap_job *job, const char *const argv[], const vmsnap_spawn_opts *opts,
                      vmsnap_spawn_result *result)
{
  spawn_ctl ctl = {.cancelled = spawn_cancelled, .cancel_user = job->op,
                   .progress = spawn_progress, .progress_user = job};
  char msg[VS_MSG_MAX] = "";
  ctx_log(job->op->ctx, VMSNAP_LOG_DEBUG, "disk %s: running %s", job->disk.target, argv[0]);
  int rc = spawn_run(argv, opts, &ctl, result, msg, sizeof msg);
  if (rc && rc != VMSNAP_E_CANCELLED) err_set(&job->err, rc, "%s", msg);
  return rc;
}

static const char *host_get(vmsnap_job *job, const char *key)
{
  return jstr(job->data, key);
}

static int host_set(vmsnap_job *job, const char *key, const char *value)
{
  if (!key || !value) return VMSNAP_E_INVALID;
  return json_object_set_new(job->data, key, json_string(value)) ? VMSNAP_E_INVALID : 0;
}

static int host_set_other(vmsnap_job *job, const char *uuid, const char *key, const char *value)
{
  if (!uuid || !key || !value) return VMSNAP_E_INVALID;
  json_t *u = json_pack("{s:s, s:s, s:s, s:s}", "uuid", uuid, "target", job->disk.target,
                        "key", key, "value", value);
  return u && json_array_append_new(job->others, u) == 0 ? 0 : VMSNAP_E_INVALID;
}

/* The other snapshots of this disk target that this job's backend made. */
static int host_siblings(vmsnap_job *job, vmsnap_sibling_fn *fn, void *user)
{
  const char *self = job->info.snapshot_uuid;
  if (job->op->store) {
    /* A create loads the documents only when something asks for them. */
    json_t *snaps = json_incref(job->siblings);
    vs_err err = {0};
    if (!snaps && store_snapshots(job->op->store, &snaps, &err)) {
      op_warn(job->op, "%s", err.msg);
      return err.code;
    }
    int rc = store_siblings(job->op->store, snaps, self, job->disk.target, job->pl->ops.name, fn,
                            user);
    json_decref(snaps);
    return rc;
  }
  size_t i;
  json_t *doc;
  json_array_foreach(job->siblings, i, doc) {
    const char *uuid = jstr(doc, "uuid");
    if (!uuid || (self && strcmp(uuid, self) == 0)) continue;
    int rc = store_doc_siblings(doc, job->disk.target, job->pl->ops.name, fn, user);
    if (rc) return rc;
  }
  return 0;
}

static int host_list_entry(vmsnap_job *job, const vmsnap_list_entry *e)
{
  if (!e || !e->object) return VMSNAP_E_INVALID;
  json_t *o = json_pack("{s:s, s:I, s:I}", "object", e->object, "ctime", (json_int_t)e->ctime_sec,
                        "size", (json_int_t)e->size);
  if (!o) return VMSNAP_E_INVALID;
  if (e->snapshot_name) json_object_set_new(o, "snapshot_name", json_string(e->snapshot_name));
  if (e->note) json_object_set_new(o, "note", json_string(e->note));
  return json_array_append_new(job->entries, o) ? VMSNAP_E_NOMEM : 0;
}

static int host_qmp_action(vmsnap_job *job, const char *type, const char *data_json)
{
  json_error_t je;
  json_t *data = json_loads(data_json ? data_json : "{}", 0, &je);
  if (!type || !json_is_object(data)) {
    json_decref(data);
    return host_error(job, VMSNAP_E_INVALID, "plugin %s gave a malformed QMP action: %s",
                      job->pl->ops.name, data ? "not an object" : je.text);
  }
  json_t *a = json_pack("{s:s, s:o}", "type", type, "data", data);
  return json_array_append_new(job->qmp_actions, a) ? VMSNAP_E_NOMEM : 0;
}

/* The live channel of the job's disk, or an error set on the job. */
static domain_ref *live_domain(vmsnap_job *job)
{
  domain_ref *d = job->op->dom;
  if (job->disk.live && d && d->drv->qmp) return d;
  host_error(job, VMSNAP_E_UNSUPPORTED, "disk %s is not served by a running QEMU: no QMP "
             "channel for it", job->disk.target);
  return NULL;
}

static json_t *parse_args(vmsnap_job *job, const char *args_json)
{
  json_error_t je;
  json_t *args = json_loads(args_json ? args_json : "{}", 0, &je);
  if (!json_is_object(args)) {
    json_decref(args);
    host_error(job, VMSNAP_E_INVALID, "plugin %s gave malformed QMP arguments: %s",
               job->pl->ops.name, je.text);
    return NULL;
  }
  return args;
}

static int host_qmp_command(vmsnap_job *job, const char *command, const char *args_json,
                            char **return_json)
{
  if (return_json) *return_json = NULL;
  domain_ref *d = live_domain(job);
  json_t *args = d ? parse_args(job, args_json) : NULL;
  if (!args) return job->err.code;
  json_t *ret = NULL;
  int rc = d->drv->qmp(d, command, args, &ret, &job->err);
  if (!rc && return_json) *return_json = json_dumps(ret, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(ret);
  return rc;
}

static int host_qmp_job(vmsnap_job *job, const char *command, const char *args_json,
                        int complete_when_ready)
{
  domain_ref *d = live_domain(job);
  json_t *args = d ? parse_args(job, args_json) : NULL;
  if (!args) return job->err.code;
  return d->drv->qmp_job(d, command, args, complete_when_ready, job->op, spawn_progress, job,
                         &job->err);
}

const vmsnap_host vs_host = {
  .struct_size = sizeof(vmsnap_host),
  .abi_version = VMSNAP_PLUGIN_ABI_VERSION,
  .progress = host_progress,
  .cancelled = host_cancelled,
  .error = host_error,
  .warn = host_warn,
  .log = host_log,
  .spawn = host_spawn,
  .get = host_get,
  .set = host_set,
  .set_other = host_set_other,
  .list_entry = host_list_entry,
  .qmp_action = host_qmp_action,
  .qmp_command = host_qmp_command,
  .qmp_job = host_qmp_job,
  .siblings = host_siblings,
};

/* ---- running a step on every disk in parallel --------------------------- */

typedef struct step_run {
  vmsnap_job *job;
  job_step step;
  pthread_t thread;
  int started;
} step_run;

static int call_step(vmsnap_job *job, job_step step)
{
  const vmsnap_plugin *o = &job->pl->ops;
  const vmsnap_job_info *i = &job->info;
  switch (step) {
  case STEP_PREPARE: return o->prepare ? o->prepare(job, i) : 0;
  case STEP_CREATE: return o->create(job, i);
  case STEP_REMOVE: return o->remove(job, i);
  case STEP_REVERT: return o->revert(job, i);
  case STEP_REVERT_FINISH: return o->revert_finish ? o->revert_finish(job, i) : 0;
  case STEP_REVERT_ABORT: return o->revert_abort ? o->revert_abort(job, i) : 0;
  case STEP_LIST: return o->list ? o->list(job, i) : 0;
  }
  return VMSNAP_E_INVALID;
}

static void *step_thread(void *arg)
{
  step_run *r = arg;
  r->job->rc = call_step(r->job, r->step);
  if (r->job->rc > 0) r->job->rc = VMSNAP_E_BACKEND; /* plugins return negatives */
  return NULL;
}

int jobs_run(vmsnap_job **jobs, size_t n, job_step step, int *done, vs_err *err)
{
  step_run *runs = calloc(n ? n : 1, sizeof *runs);
  if (!runs) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    runs[i] = (step_run){.job = jobs[i], .step = step};
    jobs[i]->rc = 0;
    memset(&jobs[i]->err, 0, sizeof jobs[i]->err);
    /* One disk runs on this thread: no thread for the common single disk. */
    if (n > 1 && pthread_create(&runs[i].thread, NULL, step_thread, &runs[i]) == 0)
      runs[i].started = 1;
    else
      step_thread(&runs[i]);
  }
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    if (runs[i].started) pthread_join(runs[i].thread, NULL);
    vmsnap_job *j = jobs[i];
    if (done) done[i] = j->rc == 0;
    if (j->rc && !rc) {
      rc = j->rc;
      if (rc == VMSNAP_E_CANCELLED && !j->err.code)
        err_set(err, rc, "cancelled");
      else
        err_set(err, rc, "disk %s (%s, backend %s): %s", j->disk.target, j->disk.source,
                j->pl->ops.name, j->err.code ? j->err.msg : vmsnap_strerror(rc));
    }
  }
  /* A cancel seen by one job outranks another job's cleanup error. */
  free(runs);
  return rc;
}
