/* qmp_jobs.c — what the qmp domain driver asks QEMU: run state, block
 * devices, and waiting for block jobs.
 *
 * Jobs are followed by polling query-jobs, not by events: QMP events are
 * lost while no client is connected, and vmsnap connects briefly (or a
 * recover runs in a new process), so only query-jobs tells the truth.
 * JOB_STATUS_CHANGE only wakes the poll early. */
#include <stdlib.h>
#include <string.h>

#include "qmp.h"

#define JOB_POLL_MS 100
#define KEEP_WAITING 3 /* internal: neither an outcome nor a QMP_JOB_* stop */

enum { STOP_READY = 1, STOP_PENDING = 2 };

int qmp_query_status(qmp_conn *c, char **status, vs_err *err)
{
  *status = NULL;
  json_t *r;
  int rc = qmp_execute(c, "query-status", NULL, 0, &r, err);
  if (rc) return rc;
  const char *s = jstr(r, "status");
  if (!s)
    rc = err_set(err, VMSNAP_E_BACKEND, "QMP query-status: QEMU's reply has no status");
  else if (!(*status = strdup(s)))
    rc = err_set(err, VMSNAP_E_NOMEM, "QMP query-status: out of memory");
  json_decref(r);
  return rc;
}

int qmp_query_block(qmp_conn *c, json_t **devices, vs_err *err)
{
  *devices = NULL;
  json_t *r;
  int rc = qmp_execute(c, "query-block", NULL, 0, &r, err);
  if (rc) return rc;
  if (!json_is_array(r)) {
    json_decref(r);
    return err_set(err, VMSNAP_E_BACKEND, "QMP query-block: QEMU's reply is not an array");
  }
  *devices = r;
  return 0;
}

/* ---- jobs ---------------------------------------------------------------- */

typedef struct job_wait {
  const char *id;
  int (*cancelled)(void *);
  void *user;
  void (*progress)(void *, uint64_t, uint64_t);
  void *puser;
  int seen;        /* query-jobs listed it at least once */
  int cancel_sent; /* job-cancel went out: wait for the end, ignore ready */
  int reported;
  uint64_t done, total;
} job_wait;

/* The query-jobs entry of job `id` (new ref), or *job NULL when absent. */
static int find_job(qmp_conn *c, const char *id, json_t **job, vs_err *err)
{
  *job = NULL;
  json_t *jobs, *j;
  size_t i;
  int rc = qmp_execute(c, "query-jobs", NULL, 0, &jobs, err);
  if (rc) return rc;
  json_array_foreach(jobs, i, j) {
    const char *jid = jstr(j, "id");
    if (jid && strcmp(jid, id) == 0) {
      *job = json_incref(j);
      break;
    }
  }
  json_decref(jobs);
  return 0;
}

/* A finished job's events are noise for everyone else: keep the queue small. */
static void drop_job_events(qmp_conn *c, const char *id)
{
  static const char *const kinds[][2] = {
      {"JOB_STATUS_CHANGE", "id"},      {"BLOCK_JOB_PENDING", "id"},
      {"BLOCK_JOB_READY", "device"},    {"BLOCK_JOB_ERROR", "device"},
      {"BLOCK_JOB_COMPLETED", "device"}, {"BLOCK_JOB_CANCELLED", "device"}};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    json_t *ev;
    vs_err ignored = {0};
    while (qmp_next_event_match(c, kinds[k][0], kinds[k][1], id, 0, &ev, &ignored) == 0 && ev)
      json_decref(ev);
  }
}

static void report_progress(job_wait *w, json_t *job)
{
  json_int_t d = json_integer_value(json_object_get(job, "current-progress"));
  json_int_t t = json_integer_value(json_object_get(job, "total-progress"));
  uint64_t done = d > 0 ? (uint64_t)d : 0, total = t > 0 ? (uint64_t)t : 0;
  if (w->progress && (!w->reported || done != w->done || total != w->total))
    w->progress(w->puser, done, total);
  w->reported = 1;
  w->done = done;
  w->total = total;
}

/* "concluded": read the outcome, then dismiss. A failed dismiss is not an
 * error: the job's work is done (or undone) either way. */
static int concluded(qmp_conn *c, job_wait *w, json_t *job, vs_err *err)
{
  const char *e = jstr(job, "error"), *type = jstr(job, "type");
  int rc = 0;
  if (e && (w->cancel_sent || strcmp(e, "Operation canceled") == 0))
    rc = err_set(err, VMSNAP_E_CANCELLED, "QMP job %s (%s) was cancelled", w->id,
                 type ? type : "?");
  else if (e)
    rc = err_set(err, VMSNAP_E_BACKEND, "QMP job %s (%s) failed: %s", w->id, type ? type : "?", e);
  vs_err ignored = {0};
  qmp_execute(c, "job-dismiss", json_pack("{s:s}", "id", w->id), 0, NULL, &ignored);
  drop_job_events(c, w->id);
  return rc;
}

/* Not listed (any more). An auto-dismissed block job leaves its outcome in
 * a BLOCK_JOB_COMPLETED/CANCELLED event, queued if it came while we were
 * connected. */
static int vanished(qmp_conn *c, job_wait *w, vs_err *err)
{
  if (!w->seen)
    return err_set(err, VMSNAP_E_NOT_FOUND, "QMP: no job %s (query-jobs does not list it)", w->id);
  json_t *cancel_ev = NULL, *done_ev = NULL;
  vs_err ignored = {0};
  int rc;
  qmp_next_event_match(c, "BLOCK_JOB_CANCELLED", "device", w->id, 0, &cancel_ev, &ignored);
  if (!cancel_ev)
    qmp_next_event_match(c, "BLOCK_JOB_COMPLETED", "device", w->id, 0, &done_ev, &ignored);
  const char *e = jstr(json_object_get(done_ev, "data"), "error");
  if (cancel_ev || (!done_ev && w->cancel_sent))
    rc = err_set(err, VMSNAP_E_CANCELLED, "QMP job %s was cancelled", w->id);
  else if (done_ev)
    rc = e ? err_set(err, VMSNAP_E_BACKEND, "QMP job %s failed: %s", w->id, e) : 0;
  else
    rc = err_set(err, VMSNAP_E_BACKEND,
                 "QMP job %s disappeared before vmsnap saw how it ended: start jobs with "
                 "\"auto-dismiss\": false", w->id);
  json_decref(cancel_ev);
  json_decref(done_ev);
  drop_job_events(c, w->id);
  return rc;
}

/* job-cancel once. It fails harmlessly when the job is already ending (it
 * cannot accept the verb) or gone; only a dead connection matters. */
static int send_cancel(qmp_conn *c, job_wait *w, vs_err *err)
{
  vs_err e = {0};
  w->cancel_sent = 1;
  int rc = qmp_execute(c, "job-cancel", json_pack("{s:s}", "id", w->id), 0, NULL, &e);
  if (rc == VMSNAP_E_IO || rc == VMSNAP_E_NOMEM) return err_set(err, rc, "%s", e.msg);
  return 0;
}

/* One poll's decision: an outcome, a QMP_JOB_* stop, or KEEP_WAITING. */
static int step(qmp_conn *c, job_wait *w, json_t *job, unsigned stop, vs_err *err)
{
  const char *st = jstr(job, "status");
  if (!st) st = "";
  if (strcmp(st, "concluded") == 0) return concluded(c, w, job, err);
  if (w->cancel_sent) return KEEP_WAITING;
  if (w->cancelled && w->cancelled(w->user)) {
    int rc = send_cancel(c, w, err);
    return rc ? rc : KEEP_WAITING;
  }
  if ((stop & STOP_READY) && strcmp(st, "ready") == 0) return QMP_JOB_READY;
  if ((stop & STOP_PENDING) && strcmp(st, "pending") == 0) return QMP_JOB_PENDING;
  return KEEP_WAITING;
}

static int wait_loop(qmp_conn *c, job_wait *w, unsigned stop, vs_err *err)
{
  for (;;) {
    json_t *job, *ev = NULL;
    int rc = find_job(c, w->id, &job, err);
    if (rc) return rc;
    if (!job) return vanished(c, w, err);
    w->seen = 1;
    report_progress(w, job);
    rc = step(c, w, job, stop, err);
    json_decref(job);
    if (rc != KEEP_WAITING) return rc;
    rc = qmp_next_event_match(c, "JOB_STATUS_CHANGE", "id", w->id, JOB_POLL_MS, &ev, err);
    json_decref(ev);
    if (rc) return rc;
  }
}

int qmp_wait_job(qmp_conn *c, const char *job_id, int (*cancelled)(void *), void *user,
                 void (*progress)(void *, uint64_t, uint64_t), void *puser, vs_err *err)
{
  job_wait w = {.id = job_id, .cancelled = cancelled, .user = user,
                .progress = progress, .puser = puser};
  return wait_loop(c, &w, STOP_READY | STOP_PENDING, err);
}

int qmp_job_complete(qmp_conn *c, const char *job_id, int (*cancelled)(void *), void *user,
                     void (*progress)(void *, uint64_t, uint64_t), void *puser, vs_err *err)
{
  int rc = qmp_execute(c, "job-complete", json_pack("{s:s}", "id", job_id), 0, NULL, err);
  if (rc) return rc;
  job_wait w = {.id = job_id, .cancelled = cancelled, .user = user,
                .progress = progress, .puser = puser};
  return wait_loop(c, &w, STOP_PENDING, err);
}
