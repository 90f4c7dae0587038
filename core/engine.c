/* engine.c — what create, delete, revert and recover share. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "disks.h"
#include "engine.h"

int jobs_for_snapshot(vmsnap_op *op, json_t *doc, json_t *snaps, vmsnap_job_kind kind,
                      unsigned flags, vmsnap_job ***jobsp, size_t *np, vs_err *err)
{
  *jobsp = NULL;
  *np = 0;
  int rc = store_doc(op->store, doc, err);
  if (rc) return rc;
  json_t *disks = json_object_get(doc, "disks");
  size_t n = json_array_size(disks), i;
  vmsnap_job **jobs = calloc(n ? n : 1, sizeof *jobs);
  json_t *disk;
  *jobsp = NULL;
  *np = 0;
  if (!jobs) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  json_array_foreach(disks, i, disk) {
    const char *backend = jstr(disk, "backend");
    const plugin *pl = backend ? loader_find(op->ctx, backend) : NULL;
    if (!pl) {
      const char *why = backend ? loader_failure(op->ctx, backend) : NULL;
      jobs_free(jobs, i);
      return err_set(err, VMSNAP_E_NOT_FOUND,
                     "disk %s of snapshot '%s' needs backend '%s', which %s%s (see "
                     "snapctl plugins)", jstr(disk, "target"), jstr(doc, "name"),
                     backend ? backend : "?", why ? "cannot be loaded: " : "is not loaded",
                     why ? why : "");
    }
    json_t *data = json_object_get(disk, "data");
    if (!data) {
      data = json_object();
      json_object_set_new(disk, "data", data);
    }
    jobs[i] = job_new(op, i, pl, disk, data, kind, jstr(doc, "name"), jstr(doc, "uuid"), flags);
    if (jobs[i]) jobs[i]->siblings = json_incref(snaps);
  }
  *jobsp = jobs;
  *np = n;
  return 0;
}

void jobs_free(vmsnap_job **jobs, size_t n)
{
  for (size_t i = 0; jobs && i < n; i++) job_free(jobs[i]);
  free(jobs);
}

int apply_updates(store_domain *sd, json_t *snaps, json_t *updates, vs_err *err)
{
  size_t i;
  json_t *u, *loaded = NULL;
  int rc = !snaps && json_array_size(updates) ? store_snapshots(sd, &loaded, err) : 0;
  if (rc) return rc;
  if (loaded) snaps = loaded;
  json_array_foreach(updates, i, u) {
    json_t *doc = store_find_by_uuid(snaps, jstr(u, "uuid"));
    if (!doc) continue; /* deleted meanwhile: nothing to update */
    if ((rc = store_doc(sd, doc, err))) break;
    size_t k;
    json_t *disk;
    json_array_foreach(json_object_get(doc, "disks"), k, disk) {
      if (strcmp(jstr(disk, "target"), jstr(u, "target"))) continue;
      json_t *data = json_object_get(disk, "data");
      if (!data) json_object_set_new(disk, "data", data = json_object());
      json_object_set(data, jstr(u, "key"), json_object_get(u, "value"));
    }
    if ((rc = store_write_snapshot(sd, doc, err))) break;
  }
  json_decref(loaded);
  return rc;
}

int apply_other_updates(store_domain *sd, json_t *snaps, vmsnap_job **jobs, size_t n,
                        json_t *journal, vs_err *err)
{
  json_t *updates = json_array();
  for (size_t j = 0; j < n; j++) json_array_extend(updates, jobs[j]->others);
  int rc = 0;
  if (json_array_size(updates)) {
    /* Journaled first: recover re-applies them if we die half-way. */
    if (journal) {
      json_object_set(journal, "updates", updates);
      rc = store_journal_write(sd, journal, err);
    }
    if (!rc) rc = apply_updates(sd, snaps, updates, err);
  }
  json_decref(updates);
  return rc;
}

json_t *snapshots_by_uuid(json_t *snaps)
{
  json_t *index = json_object();
  size_t i;
  json_t *d;
  json_array_foreach(snaps, i, d)
    if (jstr(d, "uuid")) json_object_set(index, jstr(d, "uuid"), d);
  return index;
}

vmsnap_snapshot *snapshot_for_result(json_t *doc, json_t *by_uuid, const char *current_uuid)
{
  vmsnap_snapshot *s = snapshot_wrap(json_incref(doc));
  if (!s) return NULL;
  const char *parent = jstr(doc, "parent"), *uuid = jstr(doc, "uuid");
  json_t *p = parent ? json_object_get(by_uuid, parent) : NULL;
  s->parent_name = p ? xstrdup(jstr(p, "name")) : NULL;
  s->current = current_uuid && uuid && strcmp(current_uuid, uuid) == 0;
  return s;
}

int journal_begin(store_domain *sd, json_t *journal, struct inuse_check **inuse, vs_err *err)
{
  int rc = store_journal_write(sd, journal, err);
  if (rc) return rc;
  rc = disks_inuse_finish(*inuse, err);
  *inuse = NULL;
  if (rc) {
    vs_err ignore = {0};
    store_journal_clear(sd, &ignore);
  }
  return rc;
}

json_t *journal_new(const char *op, json_t *snapshot_doc)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return json_pack("{s:i, s:s, s:O, s:I, s:I, s:s}", "format", 1, "op", op, "snapshot",
                   snapshot_doc, "pid", (json_int_t)getpid(), "started", (json_int_t)ts.tv_sec,
                   "phase", "start");
}

int open_for_write(vmsnap_op *op, const char *family, domain_ref **domp, store_domain **sdp,
                   json_t **snapsp, int *family_only)
{
  if (family_only) *family_only = 0;
  vs_err *err = &op->err;
  int rc = domain_resolve(op->ctx, op->domain, domp, err);
  if (rc) return rc;
  op->dom = *domp; /* for host services of live disks; cleared by the body */
  rc = store_open(op->ctx, (*domp)->key, STORE_WRITE, sdp, err);
  if (!rc) domain_hold(*domp, 1); /* until close_for_write */
  op->store = *sdp; /* cleared by the body before it closes it */
  if (!rc) op->dom_disks = json_incref(json_object_get((*sdp)->doc, "disks"));
  if (!rc) rc = store_check_no_journal(*sdp, err);
  if (!rc && family && (rc = store_load_family(*sdp, family, snapsp, err)) >= 0) {
    if (family_only) *family_only = rc;
    if (rc) return 0;
  }
  if (!rc) rc = store_load_snapshots(*sdp, snapsp, err);
  return rc;
}

void close_for_write(vmsnap_op *op, domain_ref *dom, store_domain *sd)
{
  op->store = NULL;
  domain_hold(dom, 0);
  store_close(sd);
  op->dom = NULL;
  domain_ref_free(dom);
}

json_t *find_snapshot(store_domain *sd, json_t *snaps, const char *domain, const char *name,
                      vs_err *err)
{
  json_t *doc = store_find_by_name(snaps, name);
  if (!doc)
    err_set(err, VMSNAP_E_NOT_FOUND, "domain %s has no snapshot named '%s' (see snapctl list %s)",
            domain, name, domain);
  else if (store_doc(sd, doc, err))
    doc = NULL;
  return doc;
}

int snapshot_has_children(json_t *snaps, const char *uuid)
{
  size_t i;
  json_t *d;
  json_array_foreach(snaps, i, d)
    if (uuid && jstr(d, "parent") && strcmp(jstr(d, "parent"), uuid) == 0) return 1;
  return 0;
}

vmsnap_snapshot *snapshot_result(json_t *doc, json_t *snaps)
{
  /* One parent to look up: a search, not an index of every snapshot. */
  const char *parent = jstr(doc, "parent");
  json_t *p = parent ? store_find_by_uuid(snaps, parent) : NULL;
  return snapshot_result_named(doc, p ? jstr(p, "name") : NULL);
}

vmsnap_snapshot *snapshot_result_named(json_t *doc, const char *parent_name)
{
  vmsnap_snapshot *s = snapshot_wrap(json_incref(doc));
  if (!s) return NULL;
  s->parent_name = parent_name ? xstrdup(parent_name) : NULL;
  s->current = jstr(doc, "uuid") != NULL;
  return s;
}
