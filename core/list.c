/* list.c — a domain's snapshots (list, get), plus objects the backends
 * find on storage that no snapshot records (shown as foreign). */
#include <stdlib.h>
#include <string.h>

#include "disks.h"
#include "engine.h"

/* Every backend data value recorded for each disk target, as
 * {target: {value: [disk…]}}: an object a backend lists is vmsnap's when
 * its name is one of these for the same disk, and what the backend says of
 * it goes to those disks. Built once, so matching a listing is a hash lookup
 * per object, not a walk of every snapshot (quadratic at 500). */
static json_t *recorded_values(json_t *snaps)
{
  json_t *set = json_object();
  size_t i, k;
  json_t *d, *disk;
  json_array_foreach(snaps, i, d) {
    json_array_foreach(json_object_get(d, "disks"), k, disk) {
      const char *target = jstr(disk, "target"), *key;
      json_t *v, *values = json_object_get(set, target ? target : "");
      if (!values) json_object_set_new(set, target ? target : "", values = json_object());
      json_object_foreach(json_object_get(disk, "data"), key, v)
        if (json_is_string(v)) {
          json_t *disks = json_object_get(values, json_string_value(v));
          size_t n = json_array_size(disks);
          if (!disks) json_object_set_new(values, json_string_value(v), disks = json_array());
          if (n == 0 || json_array_get(disks, n - 1) != disk) /* a value twice in one disk */
            json_array_append(disks, disk);
        }
    }
  }
  return set;
}

static json_t *foreign_doc(const char *domain, json_t *disk, json_t *entry)
{
  json_t *d = json_deep_copy(disk);
  json_object_set_new(d, "data", json_pack("{s:O}", "object", json_object_get(entry, "object")));
  const char *note = jstr(entry, "note");
  const char *name = jstr(entry, "snapshot_name") ? jstr(entry, "snapshot_name")
                                                  : jstr(entry, "object");
  return json_pack("{s:i, s:s, s:s, s:s, s:s, s:{s:O, s:i}, s:s, s:n, s:[o], s:n, s:b}",
                   "format", 1, "uuid", "", "name", name, "domain", domain, "description",
                   note ? note : "", "ctime", "sec", json_object_get(entry, "ctime"), "nsec", 0,
                   "state", "shutoff", "parent", "disks", d, "memory", "foreign", 1);
}

/* What the backend said of a recorded snapshot's object (how full an LVM
 * snapshot is, that it overflowed…): shown as the disk's "status" in list
 * and info, never stored. */
static void attach_status(json_t *disks, json_t *entry)
{
  size_t i;
  json_t *disk;
  json_array_foreach(disks, i, disk)
    json_object_set_new(disk, "status",
                        json_pack("{s:O, s:O*}", "used", json_object_get(entry, "size"), "note",
                                  json_object_get(entry, "note")));
}

/* Asks each remembered disk's backend what is on storage. out NULL: only
 * the status of recorded snapshots (info). */
static void add_foreign(vmsnap_op *op, store_domain *sd, json_t *snaps, json_t *out)
{
  json_t *disks = json_deep_copy(json_object_get(sd->doc, "disks"));
  json_t *known = recorded_values(snaps);
  size_t i;
  json_t *disk;
  json_array_foreach(disks, i, disk) {
    vs_err err = {0};
    const plugin *pl = jstr(disk, "backend") ? loader_find(op->ctx, jstr(disk, "backend")) : NULL;
    if (!pl || !pl->ops.list) continue;
    vmsnap_job *job = job_new(op, 0, pl, disk, NULL, VMSNAP_JOB_LIST, NULL, NULL, 0);
    if (job) job->siblings = json_incref(snaps); /* every recorded snapshot of the disk */
    if (job && jobs_run(&job, 1, STEP_LIST, NULL, &err) == 0) {
      size_t k;
      json_t *e;
      json_array_foreach(job->entries, k, e) {
        json_t *mine = json_object_get(json_object_get(known, jstr(disk, "target")),
                                       jstr(e, "object"));
        if (mine)
          attach_status(mine, e);
        else if (out)
          json_array_append_new(out, foreign_doc(sd->name, disk, e));
      }
    } else if (err.code) {
      op_warn(op, "could not list objects on storage: %s", err.msg);
    }
    job_free(job);
  }
  json_decref(known);
  json_decref(disks);
}

static int list_body(vmsnap_op *op)
{
  vs_err *err = &op->err;
  domain_ref *dom = NULL;
  store_domain *sd = NULL;
  json_t *snaps = NULL, *foreign = json_array(), *index = NULL;
  int rc = domain_resolve(op->ctx, op->domain, &dom, err);
  op->dom = dom;
  if (!rc) rc = store_open(op->ctx, dom->key, STORE_READ, &sd, err);
  if (!rc) rc = store_load_snapshots(sd, &snaps, err);
  /* A list shows every document whole; get only the one it returns. */
  if (!rc && op->kind == OP_LIST) rc = store_docs_all(sd, err);
  if (rc) goto out;
  if (op->kind == OP_LIST && !(op->flags & (VMSNAP_LIST_ROOTS | VMSNAP_LIST_LEAVES)))
    add_foreign(op, sd, snaps, foreign);
  else if (op->kind == OP_GET)
    add_foreign(op, sd, snaps, NULL);
  const char *current = jstr(sd->doc, "current");
  index = snapshots_by_uuid(snaps);
  if (op->kind == OP_GET) {
    json_t *doc = find_snapshot(sd, snaps, dom->key, op->name, err);
    if (!doc) { rc = err->code; goto out; }
    op_add_result(op, snapshot_for_result(doc, index, current));
    goto out;
  }
  size_t i;
  json_t *d;
  json_array_foreach(snaps, i, d) {
    if ((op->flags & VMSNAP_LIST_ROOTS) && jstr(d, "parent")) continue;
    if ((op->flags & VMSNAP_LIST_LEAVES) && snapshot_has_children(snaps, jstr(d, "uuid"))) continue;
    op_add_result(op, snapshot_for_result(d, index, current));
  }
  json_array_foreach(foreign, i, d) {
    vmsnap_snapshot *s = snapshot_wrap(json_incref(d));
    if (s) { s->foreign = 1; op_add_result(op, s); }
  }
out:
  json_decref(index);
  json_decref(foreign);
  json_decref(snaps);
  store_close(sd);
  op->dom = NULL;
  domain_ref_free(dom);
  return rc;
}

int vmsnap_list(vmsnap_ctx *ctx, const char *domain, unsigned flags, const vmsnap_how *how,
                vmsnap_op **opp)
{
  if (!domain) return op_refuse(how, VMSNAP_E_INVALID);
  return op_start_named(ctx, OP_LIST, list_body, domain, NULL, flags, how, opp);
}

int vmsnap_get(vmsnap_ctx *ctx, const char *domain, const char *name, const vmsnap_how *how,
               vmsnap_op **opp)
{
  if (!domain || !name) return op_refuse(how, VMSNAP_E_INVALID);
  return op_start_named(ctx, OP_GET, list_body, domain, name, 0, how, opp);
}
