/* create.c — a snapshot of every disk of a domain, all or nothing.
 *
 * Steps: validate → lock → resolve disks and backends → capability, in-use
 * and (in prepare) space checks → journal the intent with every disk's
 * planned objects → make the disk snapshots in parallel → write metadata →
 * clear the journal (the commit point). A failure or cancel removes the
 * disk snapshots already made; a crash is rolled back by recover. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "disks.h"
#include "engine.h"
#include "names.h"
#include "qmp_txn.h"

typedef struct create_state {
  vmsnap_op *op;
  vs_err *err;
  domain_ref *dom;
  store_domain *sd;
  json_t *snaps;   /* existing snapshot documents; NULL until needed when
                     the index answers what a create asks (load_snapshots) */
  json_t *disks;   /* resolved disk documents */
  json_t *doc;     /* the new snapshot */
  json_t *journal;
  const char *state; /* the domain's, when the create started */
  vmsnap_job **jobs;
  size_t njobs;
  int *made;
  inuse_check *inuse; /* running while prepare and the journal write */
} create_state;

/* --mode: every disk that names no mode of its own takes it. */
static int apply_mode(create_state *c)
{
  const char *mode = jstr(c->op->create_args, "mode");
  if (!mode) return 0;
  if (strcmp(mode, "internal") && strcmp(mode, "external"))
    return err_set(c->err, VMSNAP_E_INVALID, "mode %s: use internal or external", mode);
  json_t *given = json_object_get(c->op->create_args, "disks");
  size_t i;
  json_t *d;
  json_array_foreach(c->disks, i, d) {
    /* A disk named with --disk keeps the mode it was given. */
    if (!(d == json_array_get(given, i) && jstr(d, "mode")))
      json_object_set_new(d, "mode", json_string(mode));
  }
  return 0;
}

static int resolve_disks(create_state *c)
{
  json_t *args = c->op->create_args;
  json_t *given = json_object_get(args, "disks");
  json_t *served = NULL;
  int rc = c->dom->drv->disks(c->dom, &served, c->err);
  if (rc) return rc;
  if (served) {
    if (json_array_size(given)) {
      json_decref(served);
      return err_set(c->err, VMSNAP_E_INVALID, "domain %s: its disks come from the hypervisor; "
                     "drop --disk", c->dom->key);
    }
    c->disks = served;
    return disks_resolve(c->op->ctx, c->disks, json_object_get(c->sd->doc, "disks"), c->err);
  }
  if (json_array_size(given)) {
    c->disks = json_incref(given); /* resolved before the store was opened */
    return 0;
  }
  c->disks = json_deep_copy(json_object_get(c->sd->doc, "disks"));
  return disks_resolve(c->op->ctx, c->disks, NULL, c->err);
}

static int check_request(create_state *c)
{
  unsigned flags = c->op->flags;
  const char *state = c->state;
  if ((flags & VMSNAP_CREATE_LIVE) && strcmp(state, "running") != 0)
    return err_set(c->err, VMSNAP_E_UNSUPPORTED,
                   "--live needs a running domain; %s is %s (%s driver), so there is no memory "
                   "to keep live", c->dom->key, state, c->dom->drv->scheme);
  if (strcmp(state, "shutoff") != 0 && !(flags & VMSNAP_CREATE_DISK_ONLY))
    return err_set(c->err, VMSNAP_E_UNSUPPORTED,
                   "domain %s is %s: snapshots with its memory are not built yet; add "
                   "--disk-only for a crash-consistent snapshot of its disks", c->dom->key, state);
  return 0;
}

/* Live disks: every disk's actions in ONE transaction, so all disks are
 * taken at the same instant; then each backend learns the outcome. */
static int run_transaction(create_state *c)
{
  json_t *txn = qmp_txn_build(c->jobs, c->njobs);
  if (!txn) return 0;
  int rc;
  json_t *ret = NULL;
  if (!c->dom->drv->qmp) {
    rc = err_set(c->err, VMSNAP_E_UNSUPPORTED, "a backend asked for a live QMP snapshot but "
                 "domain %s has no running QEMU", c->dom->key);
  } else {
    rc = c->dom->drv->qmp(c->dom, "transaction",
                          json_incref(json_object_get(txn, "arguments")), &ret, c->err);
  }
  vs_err derr = {0};
  int drc = qmp_txn_deliver(c->jobs, c->njobs, rc, ret, &derr);
  if (!rc && drc) rc = err_set(c->err, drc, "%s", derr.msg);
  json_decref(ret);
  json_decref(txn);
  return rc;
}

/* A create that names its snapshot asks of the others only whether the
 * name is taken and its parent's name: the index answers both when it
 * describes the directory as it is, so no document is made (flat in the
 * number of snapshots). Anything else loads them: a default name, a
 * backend that asks for its siblings or updates another snapshot. */
static int load_snapshots(create_state *c)
{
  if (c->op->name && store_index_trusted(c->sd)) return 0;
  return store_snapshots(c->sd, &c->snaps, c->err);
}

static int name_taken(create_state *c, const char *name)
{
  return c->snaps ? store_find_by_name(c->snaps, name) != NULL
                  : store_index_uuid_named(c->sd, name) != NULL;
}

static int pick_name(create_state *c)
{
  const char *name = c->op->name;
  if (name) {
    if (name_taken(c, name))
      return err_set(c->err, VMSNAP_E_EXISTS,
                     "domain %s already has a snapshot named '%s'; pick another name or delete "
                     "it first", c->dom->key, name);
    return 0;
  }
  c->op->name = name_default(c->snaps);
  return c->op->name ? 0 : err_set(c->err, VMSNAP_E_NOMEM, "out of memory");
}

static void build_doc(create_state *c)
{
  char uuid[37];
  struct timespec ts;
  uuid_new(uuid);
  clock_gettime(CLOCK_REALTIME, &ts);
  json_t *args = c->op->create_args, *current = json_object_get(c->sd->doc, "current");
  json_t *disks = json_array();
  size_t i;
  json_t *d;
  json_array_foreach(c->disks, i, d) {
    json_t *copy = json_deep_copy(d);
    json_object_set_new(copy, "data", json_object());
    json_array_append_new(disks, copy);
  }
  c->doc = json_pack("{s:i, s:s, s:s, s:s, s:O, s:{s:I, s:I}, s:s, s:O, s:o, s:n}",
                     "format", 1, "uuid", uuid, "name", c->op->name, "domain", c->dom->key,
                     "description", json_object_get(args, "description"),
                     "ctime", "sec", (json_int_t)ts.tv_sec, "nsec", (json_int_t)ts.tv_nsec,
                     "state", c->state, "parent", current ? current : json_null(),
                     "disks", disks, "memory");
  /* Disks taken while the guest runs, without its memory or a frozen guest
   * filesystem: what a power cut would have left. */
  if (strcmp(c->state, "shutoff") != 0)
    json_object_set_new(c->doc, "consistency", json_string("crash"));
}

/* Undo the disk snapshots that were made (failure, cancel). */
static void roll_back(create_state *c)
{
  vmsnap_job **undo = calloc(c->njobs ? c->njobs : 1, sizeof *undo);
  size_t k = 0;
  for (size_t i = 0; undo && i < c->njobs; i++)
    if (c->made[i]) {
      undo[k] = c->jobs[i];
      undo[k]->info.kind = VMSNAP_JOB_ROLLBACK;
      k++;
    }
  vs_err err = {0};
  atomic_store(&c->op->uncancellable, 1); /* cleanup must not itself be cancelled */
  op_set_phase(c->op, "rollback", c->njobs);
  if (k && jobs_run(undo, k, STEP_REMOVE, NULL, &err))
    op_warn(c->op, "could not remove everything this create made: %s; run snapctl recover %s",
            err.msg, c->dom->key);
  free(undo);
  if (!err.code) store_journal_clear(c->sd, &err);
}

static int make_disks(create_state *c)
{
  int rc = jobs_for_snapshot(c->op, c->doc, c->snaps, VMSNAP_JOB_CREATE, 0, &c->jobs, &c->njobs, c->err);
  if (rc) return rc;
  c->made = calloc(c->njobs ? c->njobs : 1, sizeof *c->made);
  op_set_phase(c->op, "prepare", c->njobs);
  if ((rc = jobs_run(c->jobs, c->njobs, STEP_PREPARE, NULL, c->err))) {
    rc = disks_inuse_explain(c->inuse, rc, c->err);
    c->inuse = NULL;
    return rc;
  }
  if (op_cancelled(c->op)) return err_set(c->err, VMSNAP_E_CANCELLED, "cancelled");

  c->journal = journal_new("create", c->doc);
  /* What domain.json said before, so a rolled-back create restores it. */
  json_object_set(c->journal, "prev_current", json_object_get(c->sd->doc, "current"));
  json_object_set(c->journal, "prev_disks", json_object_get(c->sd->doc, "disks"));
  /* The domain's first: rolled back, recover leaves no domain behind. */
  if (c->sd->fresh) json_object_set_new(c->journal, "first", json_true());
  if ((rc = journal_begin(c->sd, c->journal, &c->inuse, c->err))) return rc;
  crashpoint("create:journaled");

  op_set_phase(c->op, "create", c->njobs);
  rc = jobs_run(c->jobs, c->njobs, STEP_CREATE, c->made, c->err);
  crashpoint("create:disks-made");
  if (!rc) rc = run_transaction(c);
  if (!rc && op_cancelled(c->op)) rc = err_set(c->err, VMSNAP_E_CANCELLED, "cancelled");
  if (rc) roll_back(c);
  return rc;
}

/* A live external snapshot made QEMU write to a new image: remember each
 * disk where the hypervisor serves it now (best effort: the next op asks
 * the hypervisor again anyway). */
static void follow_served(create_state *c, json_t *remembered)
{
  json_t *served = NULL;
  vs_err err = {0};
  if (!c->dom->drv->qmp || c->dom->drv->disks(c->dom, &served, &err) || !served) return;
  size_t i, k;
  json_t *d, *s;
  json_array_foreach(remembered, i, d) {
    json_array_foreach(served, k, s) {
      const char *t = jstr(s, "target"), *src = jstr(s, "source");
      if (!t || !src || strcmp(t, jstr(d, "target"))) continue;
      if (strcmp(src, jstr(d, "source")))
        op_warn(c->op, "disk %s is now %s (the new active image); point the domain's own "
                "configuration there before its next start", t, src);
      json_object_set(d, "source", json_object_get(s, "source"));
      json_object_set(d, "node_name", json_object_get(s, "node_name"));
    }
  }
  json_decref(served);
}

/* The updates to other snapshots, domain.json and the new document are
 * written as one batch, the document last: it is the create's commit
 * record. Recover undoes a batch that stopped short of it and keeps one
 * that reached it, so the journal's clear need not wait for the disk. */
static int record(create_state *c)
{
  int metadata = !(c->op->flags & VMSNAP_CREATE_NO_METADATA);
  store_batch_begin(c->sd);
  int rc = apply_other_updates(c->sd, c->snaps, c->jobs, c->njobs, c->journal, c->err);
  if (!rc && metadata) {
    json_t *remembered = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(c->disks, i, d) json_array_append_new(remembered, json_deep_copy(d));
    follow_served(c, remembered);
    json_object_set_new(c->sd->doc, "disks", remembered);
    json_object_set(c->sd->doc, "current", json_object_get(c->doc, "uuid"));
    /* How to find this domain again once its hypervisor is gone. */
    json_object_set_new(c->sd->doc, "driver", json_string(c->dom->drv->scheme));
    if (c->dom->address) json_object_set_new(c->sd->doc, "address", json_string(c->dom->address));
    rc = store_write_domain(c->sd, c->err);
    store_batch_commit_record(c->sd, "create:domain-written");
    if (!rc) rc = store_write_snapshot(c->sd, c->doc, c->err);
  }
  rc = store_batch_end(c->sd, rc, c->err);
  crashpoint("create:metadata-written");
  /* Without a document, the clear is the only record that it committed. */
  if (!rc) rc = metadata ? store_journal_clear_done(c->sd, c->err)
                         : store_journal_clear(c->sd, c->err);
  return rc;
}

/* The new snapshot as the caller gets it, its parent named. */
static vmsnap_snapshot *result_of(create_state *c)
{
  const char *parent = jstr(c->doc, "parent");
  const char *known = parent && !c->snaps ? store_index_name_of(c->sd, parent) : NULL;
  if (!parent || known) return snapshot_result_named(c->doc, known);
  if (!c->snaps) store_snapshots(c->sd, &c->snaps, &(vs_err){0}); /* no array: no name */
  return snapshot_result(c->doc, c->snaps);
}

static int create_body(vmsnap_op *op)
{
  create_state c = {.op = op, .err = &op->err};
  int rc = domain_resolve(op->ctx, op->domain, &c.dom, c.err);
  op->dom = c.dom;
  if (!rc && op->name) rc = name_validate(op->name, "snapshot name", c.err);
  json_t *given = json_object_get(op->create_args, "disks");
  /* Disks named now are checked before anything is written anywhere. */
  if (!rc && json_array_size(given)) {
    json_t *remembered = store_peek_disks(op->ctx, c.dom->key);
    rc = disks_resolve(op->ctx, given, remembered, c.err);
    json_decref(remembered);
  }
  if (!rc) rc = store_open(op->ctx, c.dom->key, STORE_CREATE, &c.sd, c.err);
  if (!rc) domain_hold(c.dom, 1);
  /* Asked with the lock held: on the op's one connection, and as it is now. */
  if (!rc) rc = c.dom->drv->state(c.dom, &c.state, c.err);
  op->store = c.sd;
  if (!rc) rc = store_check_no_journal(c.sd, c.err);
  if (!rc) rc = load_snapshots(&c);
  if (!rc) rc = check_request(&c);
  if (!rc) rc = pick_name(&c);
  if (!rc) rc = resolve_disks(&c);
  if (!rc) rc = apply_mode(&c);
  if (!rc) op->dom_disks = json_incref(c.disks);
  if (!rc && strcmp(c.state, "shutoff") == 0) rc = disks_inuse_start(c.disks, &c.inuse, c.err);
  if (!rc) {
    build_doc(&c);
    rc = make_disks(&c);
  }
  if (!rc) rc = record(&c);
  if (!rc) {
    op_add_result(op, result_of(&c));
  }
  disks_inuse_finish(c.inuse, &(vs_err){0}); /* stopped early: wait for the scan */
  jobs_free(c.jobs, c.njobs);
  free(c.made);
  json_decref(c.doc);
  json_decref(c.journal);
  json_decref(c.disks);
  json_decref(c.snaps);
  op->store = NULL;
  domain_hold(c.dom, 0);
  if (rc) store_forget_fresh(c.sd);
  store_close(c.sd);
  op->dom = NULL;
  domain_ref_free(c.dom);
  return rc;
}

int vmsnap_create(vmsnap_ctx *ctx, const vmsnap_create_params *params, const vmsnap_how *how,
                  vmsnap_op **opp)
{
  if (!ctx || !params || !params->domain) return op_refuse(how, VMSNAP_E_INVALID);
  vmsnap_create_params p = {0};
  memcpy(&p, params, params->struct_size && params->struct_size < sizeof p ? params->struct_size
                                                                           : sizeof p);
  vmsnap_op *op = op_new(ctx, OP_CREATE);
  if (!op) return op_refuse(how, VMSNAP_E_NOMEM);
  op->domain = xstrdup(p.domain);
  op->name = xstrdup(p.name);
  op->flags = p.flags;
  op->body = create_body;
  json_t *disks = json_array();
  /* Step through the caller's array by the size of vmsnap_disk_spec it was
   * built with: its params' size tells which header that was. */
  int new_caller = params->struct_size >= offsetof(vmsnap_create_params, disk_spec_size) +
                                              sizeof(p.disk_spec_size);
  size_t stride = !new_caller ? offsetof(vmsnap_disk_spec, options)
                  : p.disk_spec_size ? p.disk_spec_size : sizeof(vmsnap_disk_spec);
  for (size_t i = 0; i < p.ndisks; i++) {
    vmsnap_disk_spec spec = {0};
    memcpy(&spec, (const char *)p.disks + i * stride, stride < sizeof spec ? stride : sizeof spec);
    const vmsnap_disk_spec *s = &spec;
    json_t *d = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "target", s->target,
                          "source", s->source, "format", s->format, "backend", s->backend,
                          "mode", s->mode, "file", s->file, "options", s->options);
    json_array_append_new(disks, d ? d : json_object());
  }
  op->create_args = json_pack("{s:o, s:s, s:s?}", "disks", disks, "description",
                              p.description ? p.description : "", "mode", p.mode);
  if (!op->create_args) op->create_args = json_pack("{s:[], s:s}", "disks", "description", "");
  return op_start(ctx, OP_CREATE, how, opp, op);
}
