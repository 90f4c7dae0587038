/* delete.c — remove snapshots: one (children re-parented to its parent),
 * with its children, only its children, or only its metadata.
 *
 * Journaled; once the first disk object is removed the delete is past its
 * point of no return and always completes (recover finishes it after a
 * crash or a failure). */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

typedef struct delete_state {
  vmsnap_op *op;
  vs_err *err;
  domain_ref *dom;
  store_domain *sd;
  json_t *snaps;   /* every document, or only the family (store_load_family) */
  int family_only;
  json_t *victims; /* uuids, children before parents */
} delete_state;

/* Descendants of uuid, deepest first. */
static void add_descendants(json_t *snaps, const char *uuid, json_t *out)
{
  size_t i;
  json_t *d;
  json_array_foreach(snaps, i, d) {
    const char *p = jstr(d, "parent");
    if (p && strcmp(p, uuid) == 0) {
      add_descendants(snaps, jstr(d, "uuid"), out);
      json_array_append_new(out, json_string(jstr(d, "uuid")));
    }
  }
}


/* Re-parents the survivors whose parent goes, and moves "current". */
static int reparent(store_domain *sd, json_t *snaps, const char *uuid, vs_err *err)
{
  json_t *doc = store_find_by_uuid(snaps, uuid);
  json_t *newp = doc ? json_object_get(doc, "parent") : NULL;
  size_t i;
  json_t *d;
  json_array_foreach(snaps, i, d) {
    const char *p = jstr(d, "parent");
    if (p && strcmp(p, uuid) == 0) {
      json_object_set(d, "parent", newp ? newp : json_null());
      int rc = store_write_snapshot(sd, d, err);
      if (rc) return rc;
    }
  }
  const char *cur = jstr(sd->doc, "current");
  if (cur && strcmp(cur, uuid) == 0) {
    json_object_set(sd->doc, "current", newp ? newp : json_null());
    return store_write_domain(sd, err);
  }
  return 0;
}

/* Removes one victim's storage objects and metadata. snaps holds every
 * document, or (family_only) the victim and its children: what else a
 * backend asks for (its siblings, another snapshot to update) the store
 * then loads on demand. */
int delete_one(vmsnap_op *op, store_domain *sd, json_t *snaps, int family_only,
               json_t *journal, const char *uuid, unsigned job_flags, int metadata_only,
               vs_err *err)
{
  json_t *others = family_only ? NULL : snaps;
  json_t *doc = store_find_by_uuid(snaps, uuid);
  if (!doc) return 0; /* already gone (recover repeating a delete) */
  /* The updates and the re-parented documents are one batch (recover
   * writes them again); the victim's document goes only once they are
   * durable, since recover skips a victim whose document is gone. */
  store_batch_begin(sd);
  if (!metadata_only) {
    vmsnap_job **jobs;
    size_t n;
    int rc = jobs_for_snapshot(op, doc, others, VMSNAP_JOB_DELETE, job_flags, &jobs, &n, err);
    if (!rc) {
      op_set_phase(op, "delete", n);
      rc = jobs_run(jobs, n, STEP_REMOVE, NULL, err);
      if (!rc) rc = apply_other_updates(sd, others, jobs, n, journal, err);
    }
    jobs_free(jobs, n);
    if (rc) return store_batch_end(sd, rc, err);
  }
  crashpoint("delete:objects-removed");
  int rc = reparent(sd, snaps, uuid, err);
  rc = store_batch_end(sd, rc, err);
  if (!rc) rc = store_remove_snapshot(sd, uuid, err);
  if (!rc) {
    size_t i;
    json_t *d;
    json_array_foreach(snaps, i, d)
      if (strcmp(jstr(d, "uuid"), uuid) == 0) { json_array_remove(snaps, i); break; }
  }
  return rc;
}

/* Every backend may refuse before the journal makes the delete final (an
 * image a running QEMU holds, a backend that is not loaded). */
static int prepare_victims(delete_state *c)
{
  size_t i;
  json_t *v;
  json_array_foreach(c->victims, i, v) {
    json_t *doc = store_find_by_uuid(c->snaps, json_string_value(v));
    vmsnap_job **jobs;
    size_t n;
    int rc = jobs_for_snapshot(c->op, doc, c->family_only ? NULL : c->snaps, VMSNAP_JOB_DELETE,
                               0, &jobs, &n, c->err);
    if (!rc) {
      op_set_phase(c->op, "prepare", n);
      rc = jobs_run(jobs, n, STEP_PREPARE, NULL, c->err);
    }
    jobs_free(jobs, n);
    if (rc) return rc;
  }
  return 0;
}

static int delete_body(vmsnap_op *op)
{
  delete_state c = {.op = op, .err = &op->err, .victims = json_array()};
  json_t *doc = NULL, *journal = NULL;
  /* Deleting one snapshot needs its document and its children's (they
   * are re-parented); deleting a subtree needs them all. */
  const char *family = op->flags & (VMSNAP_DELETE_CHILDREN | VMSNAP_DELETE_CHILDREN_ONLY)
                       ? NULL : op->name;
  int rc = open_for_write(op, family, &c.dom, &c.sd, &c.snaps, &c.family_only);
  if (!rc && !(doc = find_snapshot(c.sd, c.snaps, c.dom->key, op->name, c.err))) rc = c.err->code;
  if (rc) goto out;
  const char *uuid = jstr(doc, "uuid");
  if (op->flags & (VMSNAP_DELETE_CHILDREN | VMSNAP_DELETE_CHILDREN_ONLY))
    add_descendants(c.snaps, uuid, c.victims);
  if (!(op->flags & VMSNAP_DELETE_CHILDREN_ONLY))
    json_array_append_new(c.victims, json_string(uuid));
  if (json_array_size(c.victims) == 0) {
    op_warn(op, "snapshot '%s' has no children: nothing to delete", op->name);
    goto out;
  }
  if (!(op->flags & VMSNAP_DELETE_METADATA_ONLY) && (rc = prepare_victims(&c))) goto out;
  if (op_cancelled(op)) { rc = err_set(c.err, VMSNAP_E_CANCELLED, "cancelled"); goto out; }

  journal = journal_new("delete", doc);
  json_object_set(journal, "victims", c.victims);
  json_object_set_new(journal, "metadata_only",
                      json_boolean(op->flags & VMSNAP_DELETE_METADATA_ONLY));
  if ((rc = store_journal_write(c.sd, journal, c.err))) goto out;
  crashpoint("delete:journaled");
  atomic_store(&op->uncancellable, 1);
  size_t i;
  json_t *v;
  json_array_foreach(c.victims, i, v) {
    rc = delete_one(op, c.sd, c.snaps, c.family_only, journal, json_string_value(v), 0,
                    op->flags & VMSNAP_DELETE_METADATA_ONLY, c.err);
    if (rc) {
      err_wrap(c.err, "delete stopped: fix the cause and run snapctl recover %s to finish it: ",
               c.dom->key);
      goto out;
    }
  }
  /* Recover finds every victim's document gone and has nothing to do. */
  rc = store_journal_clear_done(c.sd, c.err);
out:
  json_decref(journal);
  json_decref(c.victims);
  json_decref(c.snaps);
  close_for_write(op, c.dom, c.sd);
  return rc;
}

int vmsnap_delete(vmsnap_ctx *ctx, const char *domain, const char *name, unsigned flags,
                  const vmsnap_how *how, vmsnap_op **opp)
{
  if (!ctx || !domain || !name) return op_refuse(how, VMSNAP_E_INVALID);
  if ((flags & VMSNAP_DELETE_CHILDREN) && (flags & VMSNAP_DELETE_CHILDREN_ONLY))
    return op_refuse(how, VMSNAP_E_INVALID);
  return op_start_named(ctx, OP_DELETE, delete_body, domain, name, flags, how, opp);
}
