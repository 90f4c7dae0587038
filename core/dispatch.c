/* dispatch.c — delivers completion and progress callbacks, either right
 * away on the worker thread or, with VMSNAP_CTX_HOST_DISPATCH, through a
 * queue the host drains from its own event loop (eventfd + dispatch). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct dispatch_item {
  dispatch_item *next;
  vmsnap_op *op;      /* holds a reference */
  int is_done;
  vmsnap_progress progress;
};

static void run_done(vmsnap_op *op)
{
  vmsnap_how *h = &op->how;
  if (h->done.fn) h->done.fn(h->done.user, op, op->rc);
  if (h->done.free) h->done.free(h->done.user);
  if (h->progress.free) h->progress.free(h->progress.user);
}

static void enqueue(vmsnap_op *op, int is_done, const vmsnap_progress *p)
{
  vmsnap_ctx *ctx = op->ctx;
  dispatch_item *it = calloc(1, sizeof *it);
  if (!it) return;
  vmsnap_op_ref(op);
  it->op = op;
  it->is_done = is_done;
  if (p) it->progress = *p;
  pthread_mutex_lock(&ctx->lock);
  if (ctx->qtail) ctx->qtail->next = it; else ctx->qhead = it;
  ctx->qtail = it;
  pthread_mutex_unlock(&ctx->lock);
  uint64_t one = 1;
  ssize_t w = write(ctx->evfd, &one, sizeof one);
  (void)w; /* the counter saturating still leaves the fd readable */
}

void dispatch_progress(vmsnap_op *op, const vmsnap_progress *p)
{
  if (op->ctx->flags & VMSNAP_CTX_HOST_DISPATCH) enqueue(op, 0, p);
  else op->how.progress.fn(op->how.progress.user, op, p);
}

void dispatch_done(vmsnap_op *op)
{
  if (op->ctx->flags & VMSNAP_CTX_HOST_DISPATCH) enqueue(op, 1, NULL);
  else run_done(op);
}

int vmsnap_ctx_dispatch(vmsnap_ctx *ctx)
{
  uint64_t count;
  ssize_t r = read(ctx->evfd, &count, sizeof count);
  (void)r;
  pthread_mutex_lock(&ctx->lock);
  dispatch_item *list = ctx->qhead;
  ctx->qhead = ctx->qtail = NULL;
  pthread_mutex_unlock(&ctx->lock);
  int n = 0;
  while (list) {
    dispatch_item *it = list;
    list = it->next;
    if (it->is_done) run_done(it->op);
    else if (it->op->how.progress.fn)
      it->op->how.progress.fn(it->op->how.progress.user, it->op, &it->progress);
    vmsnap_op_unref(it->op);
    free(it);
    n++;
  }
  return n;
}

void dispatch_drain(vmsnap_ctx *ctx)
{
  while (ctx->qhead) vmsnap_ctx_dispatch(ctx);
}
