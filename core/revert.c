/* revert.c — roll a domain's disks back to a snapshot.
 *
 * Two phases, journaled: "stage" runs every backend's reversible step
 * (undone by revert_abort on failure, cancel or a crash); "finish" — the
 * point of no return — runs the irreversible steps, which recover repeats
 * after a crash. Newer snapshots survive on every backend that says
 * revert-keeps-newer; for the others the user must force it. */
#include <stdlib.h>
#include <string.h>

#include "disks.h"
#include "engine.h"

typedef struct revert_state {
  vmsnap_op *op;
  vs_err *err;
  domain_ref *dom;
  store_domain *sd;
  json_t *snaps, *doc, *journal;
  int family_only; /* snaps holds only doc and its children */
  vmsnap_job **jobs;
  size_t njobs;
  int *staged;
  inuse_check *inuse; /* running while prepare and the journal write */
} revert_state;

/* Every other document, when loaded; NULL: the store loads them when a
 * backend asks (its siblings, another snapshot to update). */
static json_t *others(revert_state *c)
{
  return c->family_only ? NULL : c->snaps;
}

/* Refuses up front what one backend cannot do safely. */
static int check_capabilities(revert_state *c)
{
  int force = c->op->flags & VMSNAP_REVERT_FORCE;
  for (size_t i = 0; i < c->njobs; i++) {
    uint64_t caps = c->jobs[i]->pl->ops.capabilities(&c->jobs[i]->disk);
    const char *why = NULL;
    if (caps & VMSNAP_CAP_REVERT_CONSUMES_TARGET)
      why = "the snapshot itself is used up by the revert";
    else if (!(caps & VMSNAP_CAP_REVERT_KEEPS_NEWER) && snapshot_has_children(c->snaps, jstr(c->doc, "uuid")))
      why = "newer snapshots taken after it would be lost";
    else if (caps & VMSNAP_CAP_REVERT_MAY_INVALIDATE_SIBLINGS)
      why = "other snapshots of the disk may become invalid";
    if (why && !force)
      return err_set(c->err, VMSNAP_E_UNSUPPORTED, "disk %s (backend %s): %s; add --force to "
                     "revert anyway", c->jobs[i]->disk.target, c->jobs[i]->pl->ops.name, why);
  }
  return 0;
}

/* The snapshot's disks must be the domain's disks now. */
static int check_disk_set(revert_state *c)
{
  json_t *now = json_object_get(c->sd->doc, "disks"), *then = json_object_get(c->doc, "disks");
  int same = json_array_size(now) == json_array_size(then);
  size_t i;
  json_t *d;
  json_array_foreach(then, i, d) {
    int found = 0;
    size_t k;
    json_t *n;
    /* An external snapshot's disk moves on (a live one makes a new active
     * image): the same target is the same disk. */
    int external = jstr(d, "mode") && !strcmp(jstr(d, "mode"), "external");
    json_array_foreach(now, k, n)
      if (!strcmp(jstr(n, "target"), jstr(d, "target")) &&
          (external || !strcmp(jstr(n, "source"), jstr(d, "source"))))
        found = 1;
    same = same && found;
  }
  if (!same && !(c->op->flags & VMSNAP_REVERT_FORCE))
    return err_set(c->err, VMSNAP_E_INVALID, "snapshot '%s' was taken of other disks than domain "
                   "%s has now; add --force to revert the snapshot's disks anyway",
                   jstr(c->doc, "name"), c->dom->key);
  if (c->op->flags & VMSNAP_REVERT_FORCE) return 0;
  /* What is in use matters where the disks are now. */
  return disks_inuse_start(same ? now : then, &c->inuse, c->err);
}

static int stage(revert_state *c)
{
  unsigned jf = (c->op->flags & VMSNAP_REVERT_FORCE) ? VMSNAP_JOB_FORCE : 0;
  int rc = jobs_for_snapshot(c->op, c->doc, others(c), VMSNAP_JOB_REVERT, jf, &c->jobs, &c->njobs,
                             c->err);
  if (!rc) rc = check_capabilities(c);
  if (!rc) rc = check_disk_set(c);
  if (rc) return rc;
  c->staged = calloc(c->njobs ? c->njobs : 1, sizeof *c->staged);
  op_set_phase(c->op, "prepare", c->njobs);
  if ((rc = jobs_run(c->jobs, c->njobs, STEP_PREPARE, NULL, c->err))) {
    rc = disks_inuse_explain(c->inuse, rc, c->err);
    c->inuse = NULL;
    return rc;
  }

  c->journal = journal_new("revert", c->doc);
  json_object_set_new(c->journal, "phase", json_string("stage"));
  if ((rc = journal_begin(c->sd, c->journal, &c->inuse, c->err))) return rc;
  crashpoint("revert:journaled");
  op_set_phase(c->op, "revert", c->njobs);
  rc = jobs_run(c->jobs, c->njobs, STEP_REVERT, c->staged, c->err);
  crashpoint("revert:staged");
  if (!rc && op_cancelled(c->op)) rc = err_set(c->err, VMSNAP_E_CANCELLED, "cancelled");
  if (rc) {
    vs_err e2 = {0};
    atomic_store(&c->op->uncancellable, 1);
    if (jobs_run(c->jobs, c->njobs, STEP_REVERT_ABORT, NULL, &e2) == 0)
      store_journal_clear(c->sd, &e2);
    else
      op_warn(c->op, "undoing the staged revert failed: %s; run snapctl recover %s", e2.msg,
              c->dom->key);
  }
  return rc;
}

static int finish(revert_state *c)
{
  /* The point of no return: from here the revert completes, cancel or not. */
  atomic_store(&c->op->uncancellable, 1);
  json_object_set_new(c->journal, "phase", json_string("finish"));
  int rc = store_journal_write(c->sd, c->journal, c->err);
  if (rc) return rc;
  crashpoint("revert:finishing");
  rc = jobs_run(c->jobs, c->njobs, STEP_REVERT_FINISH, NULL, c->err);
  if (rc) return err_wrap(c->err, "revert past its point of no return failed; fix the cause and "
                          "run snapctl recover %s to complete it: ", c->dom->key);
  crashpoint("revert:finished");
  /* One batch: recover writes all of it again after a crash. */
  store_batch_begin(c->sd);
  rc = apply_other_updates(c->sd, others(c), c->jobs, c->njobs, c->journal, c->err);
  /* What a backend recorded while reverting (a new id…) is kept. */
  if (!rc) rc = store_write_snapshot(c->sd, c->doc, c->err);
  json_object_set(c->sd->doc, "current", json_object_get(c->doc, "uuid"));
  if (!rc) rc = store_write_domain(c->sd, c->err);
  rc = store_batch_end(c->sd, rc, c->err);
  if (!rc) rc = store_journal_clear(c->sd, c->err);
  return rc;
}

/* Until memory snapshots exist, a domain a hypervisor runs cannot be
 * rolled back: its disks would change under a guest that remembers them. */
static int check_stopped(revert_state *c)
{
  const char *state;
  int rc = c->dom->drv->state(c->dom, &state, c->err);
  if (rc || strcmp(state, "shutoff") == 0) return rc;
  return err_set(c->err, VMSNAP_E_UNSUPPORTED, "domain %s is %s: reverting it needs its memory "
                 "snapshot (not built yet); shut the guest down and revert its disks as an "
                 "offline domain", c->dom->key, state);
}

static int revert_body(vmsnap_op *op)
{
  revert_state c = {.op = op, .err = &op->err};
  /* The snapshot and its children (revert-keeps-newer) are all a revert
   * looks at itself. */
  int rc = open_for_write(op, op->name, &c.dom, &c.sd, &c.snaps, &c.family_only);
  if (!rc) rc = check_stopped(&c);
  if (!rc && !(c.doc = find_snapshot(c.sd, c.snaps, c.dom->key, op->name, c.err))) rc = c.err->code;
  if (!rc && json_is_true(json_object_get(c.doc, "foreign")))
    rc = err_set(c.err, VMSNAP_E_UNSUPPORTED, "snapshot '%s' was not made by vmsnap", op->name);
  if (!rc) rc = stage(&c);
  if (!rc) rc = finish(&c);
  if (!rc && c.family_only) {
    const char *parent = jstr(c.doc, "parent");
    op_add_result(op, snapshot_result_named(c.doc, parent ? store_index_name_of(c.sd, parent)
                                                          : NULL));
  } else if (!rc) {
    op_add_result(op, snapshot_result(c.doc, c.snaps));
  }
  disks_inuse_finish(c.inuse, &(vs_err){0}); /* stopped early: wait for the scan */
  jobs_free(c.jobs, c.njobs);
  free(c.staged);
  json_decref(c.journal);
  json_decref(c.snaps);
  close_for_write(op, c.dom, c.sd);
  return rc;
}

int vmsnap_revert(vmsnap_ctx *ctx, const char *domain, const char *name, unsigned flags,
                  const vmsnap_how *how, vmsnap_op **opp)
{
  if (!ctx || !domain || !name) return op_refuse(how, VMSNAP_E_INVALID);
  return op_start_named(ctx, OP_REVERT, revert_body, domain, name, flags, how, opp);
}
