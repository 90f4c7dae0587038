/* op.c — an operation's life: start on a worker thread, progress, cancel,
 * finish exactly once, wait. The synchronous API is this path plus a wait. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PROGRESS_INTERVAL_NS (100 * 1000000ull)

vmsnap_op *op_new(vmsnap_ctx *ctx, op_kind kind)
{
  vmsnap_op *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->ctx = ctx;
  op->kind = kind;
  atomic_init(&op->refs, 1);
  pthread_mutex_init(&op->lock, NULL);
  pthread_cond_init(&op->cond, NULL);
  op->rc = VMSNAP_E_INPROGRESS;
  return op;
}

static void op_free(vmsnap_op *op)
{
  for (size_t i = 0; i < op->nsnaps; i++) snapshot_free(op->snaps[i]);
  free(op->snaps);
  for (size_t i = 0; i < op->nwarnings; i++) free(op->warnings[i]);
  free(op->warnings);
  free(op->job_done);
  free(op->job_total);
  free(op->domain);
  free(op->name);
  json_decref(op->create_args);
  json_decref(op->dom_disks);
  pthread_mutex_destroy(&op->lock);
  pthread_cond_destroy(&op->cond);
  free(op);
}

void vmsnap_op_ref(vmsnap_op *op) { atomic_fetch_add(&op->refs, 1); }

void vmsnap_op_unref(vmsnap_op *op)
{
  if (op && atomic_fetch_sub(&op->refs, 1) == 1) op_free(op);
}

void vmsnap_op_cancel(vmsnap_op *op)
{
  if (op) atomic_store(&op->cancel_requested, 1);
}

int op_cancelled(vmsnap_op *op)
{
  return atomic_load(&op->cancel_requested) && !atomic_load(&op->uncancellable);
}

int vmsnap_op_status(vmsnap_op *op)
{
  pthread_mutex_lock(&op->lock);
  int rc = op->finished ? op->rc : VMSNAP_E_INPROGRESS;
  pthread_mutex_unlock(&op->lock);
  return rc;
}

int vmsnap_op_wait(vmsnap_op *op)
{
  vmsnap_ctx *ctx = op->ctx;
  pthread_mutex_lock(&op->lock);
  while (!op->delivered) {
    if (ctx->flags & VMSNAP_CTX_HOST_DISPATCH) {
      /* Nobody else may be dispatching: deliver queued callbacks here. */
      pthread_mutex_unlock(&op->lock);
      vmsnap_ctx_dispatch(ctx);
      pthread_mutex_lock(&op->lock);
      if (op->delivered) break;
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 20 * 1000000;
      if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
      pthread_cond_timedwait(&op->cond, &op->lock, &ts);
    } else {
      pthread_cond_wait(&op->cond, &op->lock);
    }
  }
  int rc = op->rc;
  pthread_mutex_unlock(&op->lock);
  /* The completion was queued before delivered was set: run it now so a
   * synchronous call returns with every callback done. */
  if (ctx->flags & VMSNAP_CTX_HOST_DISPATCH) vmsnap_ctx_dispatch(ctx);
  return rc;
}

const char *vmsnap_op_message(vmsnap_op *op)
{
  return op->finished && op->rc ? (op->err.msg[0] ? op->err.msg : vmsnap_strerror(op->rc)) : "";
}

size_t vmsnap_op_snapshot_count(vmsnap_op *op) { return op->finished ? op->nsnaps : 0; }

const vmsnap_snapshot *vmsnap_op_snapshot(vmsnap_op *op, size_t i)
{
  return op->finished && i < op->nsnaps ? op->snaps[i] : NULL;
}

const char *vmsnap_op_warning(vmsnap_op *op, size_t i)
{
  return op->finished && i < op->nwarnings ? op->warnings[i] : NULL;
}

void op_add_result(vmsnap_op *op, vmsnap_snapshot *s)
{
  vmsnap_snapshot **g = realloc(op->snaps, (op->nsnaps + 1) * sizeof *g);
  if (!g) { snapshot_free(s); return; }
  op->snaps = g;
  op->snaps[op->nsnaps++] = s;
}

void op_warn(vmsnap_op *op, const char *fmt, ...)
{
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  if (!msg) return;
  pthread_mutex_lock(&op->lock);
  char **g = realloc(op->warnings, (op->nwarnings + 1) * sizeof *g);
  if (g) { op->warnings = g; op->warnings[op->nwarnings++] = msg; } else free(msg);
  pthread_mutex_unlock(&op->lock);
}

void op_set_phase(vmsnap_op *op, const char *phase, size_t njobs)
{
  pthread_mutex_lock(&op->lock);
  op->phase = phase;
  free(op->job_done);
  free(op->job_total);
  op->job_done = calloc(njobs ? njobs : 1, sizeof *op->job_done);
  op->job_total = calloc(njobs ? njobs : 1, sizeof *op->job_total);
  op->njobs_progress = njobs;
  op->last_progress_ns = 0;
  pthread_mutex_unlock(&op->lock);
}

/* Sums every job of the phase; at most one report per interval, and always
 * the one that says a job is complete. */
void op_job_progress(vmsnap_op *op, size_t job, const char *disk, uint64_t done, uint64_t total)
{
  if (!op->how.progress.fn) return;
  pthread_mutex_lock(&op->lock);
  if (job >= op->njobs_progress || !op->job_done) { pthread_mutex_unlock(&op->lock); return; }
  op->job_done[job] = done;
  op->job_total[job] = total;
  uint64_t now = now_ns();
  int complete = total && done >= total;
  if (!complete && now - op->last_progress_ns < PROGRESS_INTERVAL_NS) {
    pthread_mutex_unlock(&op->lock);
    return;
  }
  op->last_progress_ns = now;
  vmsnap_progress p = {.struct_size = sizeof p, .phase = op->phase, .disk = disk};
  for (size_t i = 0; i < op->njobs_progress; i++) {
    p.done += op->job_done[i];
    p.total += op->job_total[i];
  }
  pthread_mutex_unlock(&op->lock);
  dispatch_progress(op, &p);
}

static void *op_thread(void *arg)
{
  vmsnap_op *op = arg;
  vs_err err = {0};
  int rc = op->body(op);
  if (rc && !op->err.code) err_set(&err, rc, "%s", vmsnap_strerror(rc));
  pthread_mutex_lock(&op->lock);
  if (err.code) op->err = err;
  op->rc = rc;
  op->finished = 1;
  pthread_mutex_unlock(&op->lock);
  dispatch_done(op); /* runs or queues the completion, then frees closures */
  pthread_mutex_lock(&op->lock);
  op->delivered = 1;
  pthread_cond_broadcast(&op->cond);
  pthread_mutex_unlock(&op->lock);

  vmsnap_ctx *ctx = op->ctx;
  vmsnap_op_unref(op); /* the worker's reference */
  pthread_mutex_lock(&ctx->lock);
  if (--ctx->running == 0) pthread_cond_broadcast(&ctx->idle);
  pthread_mutex_unlock(&ctx->lock);
  return NULL;
}

static void free_closures(const vmsnap_how *how)
{
  if (how && how->done.free) how->done.free(how->done.user);
  if (how && how->progress.free) how->progress.free(how->progress.user);
}

int op_refuse(const vmsnap_how *how, int rc)
{
  free_closures(how);
  return rc;
}

int op_start(vmsnap_ctx *ctx, op_kind kind, const vmsnap_how *how, vmsnap_op **opp, vmsnap_op *op)
{
  (void)kind;
  if (opp) *opp = NULL;
  if (how) memcpy(&op->how, how, how->struct_size && how->struct_size < sizeof op->how
                                      ? how->struct_size : sizeof op->how);
  int sync = !op->how.done.fn;
  pthread_mutex_lock(&ctx->lock);
  ctx->running++;
  pthread_mutex_unlock(&ctx->lock);
  vmsnap_op_ref(op); /* the worker's */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int e = pthread_create(&t, &attr, op_thread, op);
  pthread_attr_destroy(&attr);
  if (e) {
    pthread_mutex_lock(&ctx->lock);
    ctx->running--;
    pthread_mutex_unlock(&ctx->lock);
    free_closures(&op->how);
    vmsnap_op_unref(op);
    vmsnap_op_unref(op);
    return VMSNAP_E_NOMEM;
  }
  if (!sync) {
    if (opp) *opp = op; else vmsnap_op_unref(op);
    return 0;
  }
  int rc = vmsnap_op_wait(op);
  if (opp) *opp = op; else vmsnap_op_unref(op);
  return rc;
}

int op_start_named(vmsnap_ctx *ctx, op_kind kind, op_body_fn *body, const char *domain,
                   const char *name, unsigned flags, const vmsnap_how *how, vmsnap_op **opp)
{
  if (opp) *opp = NULL;
  if (!ctx) return op_refuse(how, VMSNAP_E_INVALID);
  vmsnap_op *op = op_new(ctx, kind);
  if (!op) return op_refuse(how, VMSNAP_E_NOMEM);
  op->domain = xstrdup(domain);
  op->name = xstrdup(name);
  op->flags = flags;
  op->body = body;
  return op_start(ctx, kind, how, opp, op);
}
