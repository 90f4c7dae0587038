/* recover.c — finish or roll back what a crash interrupted, as the
 * journal's op and phase allow:
 *   create          → its document in place: it had committed, keep it;
 *                     else roll back: remove every disk snapshot it planned
 *                     (backends treat missing objects as done), forget it;
 *   delete          → finish: remove what is left of every victim;
 *   revert "stage"  → roll back with revert_abort;
 *   revert "finish" → finish with revert_finish (restartable). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "domain.h"
#include "engine.h"

/* Runs one step of every disk of the journaled snapshot; updates the
 * backends make to other snapshots are journaled and applied as usual. */
static int run_all(vmsnap_op *op, store_domain *sd, json_t *j, vmsnap_job_kind kind,
                   job_step step, vs_err *err)
{
  vmsnap_job **jobs;
  size_t n;
  json_t *snaps = NULL;
  int rc = store_load_snapshots(sd, &snaps, err);
  if (!rc) rc = jobs_for_snapshot(op, json_object_get(j, "snapshot"), snaps, kind,
                                  VMSNAP_JOB_RECOVERY, &jobs, &n, err);
  if (rc) {
    json_decref(snaps);
    return rc;
  }
  op_set_phase(op, "recover", n);
  rc = jobs_run(jobs, n, step, NULL, err);
  if (!rc) rc = apply_other_updates(sd, snaps, jobs, n, j, err);
  json_decref(snaps);
  jobs_free(jobs, n);
  return rc;
}

/* A create's document is the last thing it installs (create.c, record):
 * in place, the create had committed and only its journal's clear, which
 * it does not wait for, was lost. A look at the name is enough: the
 * documents are loaded once, by the rollback that may follow. */
static int create_committed(store_domain *sd, const char *uuid)
{
  char file[64];
  if (!uuid || snprintf(file, sizeof file, "%s.json", uuid) >= (int)sizeof file) return 0;
  return faccessat(sd->snapdirfd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static int recover_create(vmsnap_op *op, store_domain *sd, json_t *j, vs_err *err)
{
  json_t *doc = json_object_get(j, "snapshot");
  if (create_committed(sd, jstr(doc, "uuid"))) {
    op_warn(op, "domain %s: the interrupted create of snapshot '%s' had completed; kept it",
            sd->name, jstr(doc, "name"));
    return 0;
  }
  int rc = run_all(op, sd, j, VMSNAP_JOB_ROLLBACK, STEP_REMOVE, err);
  if (!rc) rc = store_remove_snapshot(sd, jstr(doc, "uuid"), err);
  if (!rc && json_is_true(json_object_get(j, "first"))) {
    rc = store_forget_domain_doc(sd, err); /* the domain recorded nothing before */
  } else if (!rc) {
    json_t *prev_disks = json_object_get(j, "prev_disks");
    json_object_set(sd->doc, "current", json_object_get(j, "prev_current"));
    json_object_set_new(sd->doc, "disks", prev_disks ? json_incref(prev_disks) : json_array());
    rc = store_write_domain(sd, err);
  }
  op_warn(op, "domain %s: rolled back the interrupted create of snapshot '%s'", sd->name,
          jstr(doc, "name"));
  return rc;
}

static int recover_delete(vmsnap_op *op, store_domain *sd, json_t *j, vs_err *err)
{
  json_t *snaps;
  int rc = store_load_snapshots(sd, &snaps, err);
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(j, "victims"), i, v) {
    if (rc) break;
    rc = delete_one(op, sd, snaps, 0, j, json_string_value(v), VMSNAP_JOB_RECOVERY,
                    json_is_true(json_object_get(j, "metadata_only")), err);
  }
  json_decref(snaps);
  op_warn(op, "domain %s: finished the interrupted delete of snapshot '%s'", sd->name,
          jstr(json_object_get(j, "snapshot"), "name"));
  return rc;
}

static int recover_revert(vmsnap_op *op, store_domain *sd, json_t *j, vs_err *err)
{
  json_t *doc = json_object_get(j, "snapshot");
  const char *phase = jstr(j, "phase");
  if (!phase || strcmp(phase, "finish") != 0) {
    int rc = run_all(op, sd, j, VMSNAP_JOB_REVERT, STEP_REVERT_ABORT, err);
    op_warn(op, "domain %s: rolled back the interrupted revert to '%s'", sd->name,
            jstr(doc, "name"));
    return rc;
  }
  int rc = run_all(op, sd, j, VMSNAP_JOB_REVERT, STEP_REVERT_FINISH, err);
  /* What a backend recorded while finishing is kept, as after a revert. */
  if (!rc) rc = store_write_snapshot(sd, doc, err);
  if (!rc) {
    json_object_set(sd->doc, "current", json_object_get(doc, "uuid"));
    rc = store_write_domain(sd, err);
  }
  op_warn(op, "domain %s: finished the interrupted revert to '%s'", sd->name, jstr(doc, "name"));
  return rc;
}

/* Updates to other snapshots that were journaled are re-applied first:
 * they describe storage the backend already changed. */
static int reapply_updates(store_domain *sd, json_t *j, vs_err *err)
{
  json_t *updates = json_object_get(j, "updates"), *snaps;
  if (!json_array_size(updates)) return 0;
  int rc = store_load_snapshots(sd, &snaps, err);
  if (!rc) rc = apply_updates(sd, snaps, updates, err);
  json_decref(snaps);
  return rc;
}

static int recover_op(vmsnap_op *op, store_domain *sd, json_t *j, vs_err *err)
{
  const char *what = jstr(j, "op");
  if (what && !strcmp(what, "create")) return recover_create(op, sd, j, err);
  if (what && !strcmp(what, "delete")) return recover_delete(op, sd, j, err);
  if (what && !strcmp(what, "revert")) return recover_revert(op, sd, j, err);
  return err_set(err, VMSNAP_E_IO, "%s/journal.json names an unknown operation '%s'", sd->dir,
                 what ? what : "");
}

static int recover_domain(vmsnap_op *op, const char *name, vs_err *err)
{
  store_domain *sd;
  json_t *j = NULL;
  int rc = store_open(op->ctx, name, STORE_WRITE, &sd, err);
  if (rc) return rc;
  store_remove_temps(sd); /* a batch cut short: what it had not installed */
  rc = store_journal_read(sd, &j, err);
  if (rc == VMSNAP_E_NOT_FOUND) { /* nothing to do */
    rc = 0;
    store_forget_fresh(sd); /* a domain left empty by a crash inside forgetting it */
    goto out;
  }
  if (rc) goto out;
  /* A QEMU that still serves the disks is driven live (its images are
   * locked to qemu-img); otherwise recover works offline. */
  domain_ref *dom = NULL;
  const char *driver = jstr(sd->doc, "driver"), *address = jstr(sd->doc, "address");
  vs_err ignore = {0};
  if (driver && strcmp(driver, "qmp") == 0 && address &&
      domain_qmp_resolve(op->ctx, address, &dom, &ignore) == 0 && dom->drv->qmp) {
    op->dom = dom;
    domain_hold(dom, 1); /* the domain's lock is ours */
  }
  json_decref(op->dom_disks); /* one op may recover several domains */
  op->dom_disks = json_incref(json_object_get(sd->doc, "disks"));
  op->store = sd;
  rc = reapply_updates(sd, j, err);
  if (!rc) rc = recover_op(op, sd, j, err);
  op->store = NULL;
  op->dom = NULL;
  domain_ref_free(dom);
  if (!rc) rc = store_journal_clear(sd, err);
  if (!rc) store_forget_fresh(sd); /* a rolled-back first create: no domain left */
  if (rc) err_wrap(err, "recover of domain %s failed (the journal is kept; fix the cause and run "
                "recover again): ", name);
out:
  json_decref(j);
  store_close(sd);
  return rc;
}

static int recover_body(vmsnap_op *op)
{
  atomic_store(&op->uncancellable, 1); /* recovery runs to its end */
  if (op->domain) return recover_domain(op, op->domain, &op->err);
  json_t *names;
  int rc = store_list_domains(op->ctx, &names, &op->err);
  size_t i;
  json_t *n;
  json_array_foreach(names, i, n) {
    vs_err e = {0};
    int r = recover_domain(op, json_string_value(n), &e);
    if (r && !rc) { rc = r; op->err = e; }
  }
  json_decref(names);
  return rc;
}

int vmsnap_recover(vmsnap_ctx *ctx, const char *domain, const vmsnap_how *how, vmsnap_op **opp)
{
  return op_start_named(ctx, OP_RECOVER, recover_body, domain, NULL, 0, how, opp);
}
