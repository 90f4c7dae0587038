/* live_ext.c — external snapshots of a qcow2 disk a running QEMU serves.
 *
 * create  QEMU puts a new overlay on the disk's active image in the core's
 *         ONE transaction (blockdev-snapshot-sync, node named vs<uuid>);
 *         the old active image becomes the snapshot's layer where it is
 *         (a file QEMU has open is never renamed) and the new overlay is
 *         the disk's active image from then on: in the layer directory, or
 *         file= when given. The core remembers and reports the new path.
 * delete  a layer in QEMU's chain is merged by QEMU: block-stream copies it
 *         into its only child (never a write into an image others depend
 *         on; the active image keeps its path), started before the delete
 *         is journaled so a cancel (job-cancel) leaves the chain as it
 *         was; then the unused layer goes if vmsnap made it. A layer QEMU
 *         no longer has open is settled offline (chain.c); images in
 *         QEMU's chain are never touched with qemu-img.
 * revert  refused while QEMU runs (live.c).
 *
 * Backend data as external.c, plus "overlay" (the new active image) and
 * "overlay_node" (its QEMU node); "layer" is the image that was active. */
#define _GNU_SOURCE
#include "qcow2.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- QEMU's view --------------------------------------------------------- */

/* One qcow2 node of the running QEMU. */
typedef struct qnode {
  char node[128];
  char file[PATH_MAX];    /* canonical */
  char backing[PATH_MAX]; /* canonical, "" for none */
} qnode;

static void canon(const char *in, char *out, size_t len)
{
  char real[PATH_MAX];
  snprintf(out, len, "%s", in && realpath(in, real) ? real : in ? in : "");
}

static int run_json(q2_job *j, const char *cmd, json_t *args, int job, int complete)
{
  char *text = args ? json_dumps(args, JSON_COMPACT) : NULL;
  int rc;
  json_decref(args);
  if (!text) return j->host->error(j->job, VMSNAP_E_NOMEM, "out of memory");
  rc = job ? j->host->qmp_job(j->job, cmd, text, complete)
           : j->host->qmp_command(j->job, cmd, text, NULL);
  free(text);
  return rc;
}

/* Block jobs that stopped but were not dismissed. Ours (an interrupted
 * vmsnap started them with auto-dismiss off) are dismissed; one of ours that
 * still runs makes the op wait for a retry; another client's concluded job
 * is left alone and the op refused, because QEMU 7.2 crashes (the guest
 * with it) on query-named-block-nodes while a concluded stream job is not
 * dismissed (seen here). Called before every query-named-block-nodes. */
static int settle_jobs(q2_job *j, const char *what)
{
  char *ret = NULL;
  int rc = j->host->qmp_command(j->job, "query-jobs", "{}", &ret);
  json_t *jobs = rc == 0 ? json_loads(ret ? ret : "", JSON_DECODE_ANY, NULL) : NULL;
  size_t i;
  json_t *o;

  free(ret);
  json_array_foreach(jobs, i, o)
  {
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *st = json_string_value(json_object_get(o, "status"));
    if (!id || !st) continue;
    if (strncmp(id, "vmsnap-", 7) != 0) {
      if (strcmp(st, "concluded") == 0 && rc == 0)
        rc = j->host->error(j->job, VMSNAP_E_BUSY,
                            "%s: QEMU holds block job %s, concluded but not dismissed (another "
                            "client's); QEMU 7.2 crashes when asked for its block nodes then; "
                            "nothing was changed; dismiss it (QMP job-dismiss) and retry",
                            what, id);
      continue;
    }
    if (strcmp(st, "concluded") == 0) {
      json_t *args = json_pack("{s:s}", "id", id);
      run_json(j, "job-dismiss", args, 0, 0);
      j->host->log(j->job, VMSNAP_LOG_INFO, "dismissed QEMU job %s left by an earlier run", id);
    } else if (rc == 0) {
      rc = j->host->error(j->job, VMSNAP_E_BUSY,
                          "%s: QEMU still runs job %s (%s), started by an interrupted vmsnap; "
                          "nothing was changed; wait until query-jobs shows it concluded, then "
                          "retry",
                          what, id, st);
    }
  }
  json_decref(jobs);
  return rc;
}

/* The qcow2 nodes QEMU has open (query-named-block-nodes). */
static int qemu_nodes(q2_job *j, qnode **out, size_t *n)
{
  char *ret = NULL;
  int rc = settle_jobs(j, "cannot read QEMU's block nodes");
  if (rc == 0)
    rc = j->host->qmp_command(j->job, "query-named-block-nodes", "{\"flat\":true}", &ret);
  json_t *arr = rc == 0 ? json_loads(ret ? ret : "", JSON_DECODE_ANY, NULL) : NULL;
  size_t i;
  json_t *o;

  free(ret);
  *out = NULL;
  *n = 0;
  if (rc < 0) return rc;
  *out = calloc(json_array_size(arr) + 1, sizeof(**out));
  if (!*out) {
    json_decref(arr);
    return j->host->error(j->job, VMSNAP_E_NOMEM, "out of memory");
  }
  json_array_foreach(arr, i, o)
  {
    const char *drv = json_string_value(json_object_get(o, "drv"));
    const char *name = json_string_value(json_object_get(o, "node-name"));
    const char *file = json_string_value(json_object_get(o, "file"));
    if (!drv || strcmp(drv, "qcow2") || !name || !file) continue;
    qnode *q = &(*out)[(*n)++];
    snprintf(q->node, sizeof(q->node), "%s", name);
    canon(file, q->file, sizeof(q->file));
    canon(json_string_value(json_object_get(o, "backing_file")), q->backing,
          sizeof(q->backing));
  }
  json_decref(arr);
  return 0;
}

static qnode *node_of(qnode *v, size_t n, const char *file)
{
  for (size_t i = 0; file && i < n; i++)
    if (strcmp(v[i].file, file) == 0) return &v[i];
  return NULL;
}

/* The image QEMU writes to for the chain holding file: its top node. */
static qnode *top_of(qnode *v, size_t n, qnode *q)
{
  for (size_t hops = 0; q && hops < n; hops++) {
    qnode *up = NULL;
    for (size_t i = 0; i < n; i++)
      if (strcmp(v[i].backing, q->file) == 0) up = &v[i];
    if (!up) return q;
    q = up;
  }
  return q;
}


/* ---- create -------------------------------------------------------------- */

int q2_live_ext_prepare(q2_job *j, const vmsnap_job_info *info)
{
  const vmsnap_disk *d = info->disk;
  char what[PATH_MAX + 512], dir[PATH_MAX], overlay[PATH_MAX], node[32];
  q2_info inf = {0};
  struct stat sb;
  int rc;

  snprintf(what, sizeof(what), "cannot take external snapshot %s of %s (QEMU node %s)",
           info->object_name, j->image, d->node_name ? d->node_name : "?");
  if (!d->node_name || !*d->node_name || !info->snapshot_uuid)
    return j->host->error(j->job, VMSNAP_E_INVALID, "%s: no QEMU node name (a bug)", what);
  if (d->file && d->file[0] != '/')
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "%s: file=%s must be an absolute path (QEMU resolves it itself)", what,
                          d->file);
  if (d->file)
    snprintf(overlay, sizeof(overlay), "%s", d->file);
  else if (q2_layer_dir(j->image, dir, sizeof(dir)) < 0 ||
           (size_t)snprintf(overlay, sizeof(overlay), "%s/%s.qcow2", dir, info->object_name) >=
               sizeof(overlay))
    return j->host->error(j->job, VMSNAP_E_INVALID, "%s: its path is too long", what);
  if (lstat(overlay, &sb) == 0)
    return j->host->error(j->job, VMSNAP_E_EXISTS,
                          "%s: %s already exists; vmsnap never overwrites a file: choose another "
                          "snapshot name or file=",
                          what, overlay);
  /* -U: QEMU holds the image; reading its header changes nothing. */
  if ((rc = q2_info_read(j, 1, what, "nothing was changed", &inf)) < 0) goto out;
  if (inf.corrupt) {
    rc = j->host->error(j->job, VMSNAP_E_BACKEND, "%s: QEMU has marked %s corrupt; nothing was "
                        "changed", what, j->image);
    goto out;
  }
  if ((rc = q2_space_check(j, &inf, 0)) < 0) goto out;
  char backing[PATH_MAX];
  canon(inf.backing, backing, sizeof(backing));
  /* A node name QEMU accepts (a letter, then [A-Za-z0-9_.-], 31 at most),
   * unique per snapshot and disk: "vs" + 8 hex digits of the uuid + the
   * disk's target. */
  int k = snprintf(node, sizeof(node), "vs%.8s-", info->snapshot_uuid);
  for (const char *t = d->target ? d->target : ""; *t && k < 27; t++)
    node[k++] = (*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9')
                    ? *t
                    : '_';
  node[k] = '\0';
  if ((rc = j->host->set(j->job, "mode", "external")) < 0 ||
      (rc = j->host->set(j->job, "layer", j->image)) < 0 ||
      (rc = j->host->set(j->job, "layer_backing", backing)) < 0 ||
      (rc = j->host->set(j->job, "overlay", overlay)) < 0 ||
      (rc = j->host->set(j->job, "overlay_node", node)) < 0 ||
      (rc = j->host->set(j->job, "node", d->node_name)) < 0 ||
      (rc = j->host->set(j->job, "disk", j->image)) < 0)
    goto out;
out:
  q2_info_free(&inf);
  return rc;
}

int q2_live_ext_create(q2_job *j)
{
  const char *overlay = j->host->get(j->job, "overlay"), *node = j->host->get(j->job, "node");
  const char *onode = j->host->get(j->job, "overlay_node");
  char dir[PATH_MAX];

  if (!overlay || !node || !onode)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "no overlay was recorded for %s; prepare must run before create",
                          j->image);
  if (j->host->cancelled(j->job)) return VMSNAP_E_CANCELLED;
  if (!j->info->disk->file) {
    snprintf(dir, sizeof(dir), "%s", overlay);
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", dirname(dir));
    if ((mkdir(dirname(parent), 0700) < 0 && errno != EEXIST) ||
        (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
      int err = errno;
      return j->host->error(j->job, VMSNAP_E_BACKEND, "cannot make the layer directory %s: %s",
                            dir, strerror(err));
    }
  }
  json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:s}", "node-name", node, "snapshot-file",
                           overlay, "snapshot-node-name", onode, "format", "qcow2", "mode",
                           "absolute-paths");
  char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
  json_decref(data);
  if (!text) return j->host->error(j->job, VMSNAP_E_NOMEM, "out of memory");
  int rc = j->host->qmp_action(j->job, "blockdev-snapshot-sync", text);
  free(text);
  return rc;
}

void q2_live_ext_done(q2_job *j, int rc)
{
  if (rc == 0)
    j->host->log(j->job, VMSNAP_LOG_INFO, "QEMU froze %s and now writes to %s", j->image,
                 j->host->get(j->job, "overlay"));
}

/* Undoes a create whose transaction failed or may have run (a timeout):
 * an overlay QEMU writes to is committed back (the job pivots to the old
 * image), then the file goes. */
static int rollback(q2_job *j)
{
  const char *overlay = j->host->get(j->job, "overlay");
  qnode *v = NULL;
  size_t n = 0;
  int rc = 0;

  if (!overlay) return 0;
  if ((rc = qemu_nodes(j, &v, &n)) < 0) return rc;
  char ov[PATH_MAX];
  canon(overlay, ov, sizeof(ov));
  qnode *q = node_of(v, n, ov);
  if (q) {
    rc = run_json(j, "block-commit", json_pack("{s:s}", "device", q->node), 1, 1);
    if (rc == 0 && (free(v), qemu_nodes(j, &v, &n)) == 0 && node_of(v, n, ov))
      rc = j->host->error(j->job, VMSNAP_E_BACKEND, "QEMU still uses %s after the commit", ov);
  }
  free(v);
  if (rc == 0 && unlink(overlay) < 0 && errno != ENOENT)
    j->host->warn(j->job, "cannot remove %s: %s", overlay, strerror(errno));
  return rc;
}

/* ---- delete -------------------------------------------------------------- */

/* Streams the layer into its only child when QEMU has both open. Returns
 * 1 when QEMU does not have the layer open (the offline path applies),
 * else 0 or an error. */
static int stream_in_qemu(q2_job *j, const char *layer, const char *what)
{
  qnode *v = NULL;
  size_t n = 0, kids = 0;
  int rc = qemu_nodes(j, &v, &n);
  char l[PATH_MAX];
  qnode *child = NULL;

  if (rc < 0) return rc;
  canon(layer, l, sizeof(l));
  qnode *q = node_of(v, n, l);
  if (!q) {
    free(v);
    return 1;
  }
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].backing, l) == 0 && kids++ == 0) child = &v[i];
  /* Images outside QEMU backed by the layer (an older branch) count too. */
  q2_chain c;
  qnode *top = top_of(v, n, q);
  j->force_share = 1;
  if ((rc = q2_chain_read(j, top->file, &c, what)) == 0) {
    for (size_t i = 0; i < c.n; i++)
      if (c.v[i].backing && strcmp(c.v[i].backing, l) == 0 && !node_of(v, n, c.v[i].path))
        kids++;
    q2_chain_free(&c);
  }
  if (rc == 0 && kids == 1 && child) {
    qnode *base = q->backing[0] ? node_of(v, n, q->backing) : NULL;
    json_t *args = json_pack("{s:s}", "device", child->node);
    if (base) json_object_set_new(args, "base-node", json_string(base->node));
    j->host->log(j->job, VMSNAP_LOG_INFO, "QEMU streams %s into %s", l, child->file);
    rc = run_json(j, "block-stream", args, 1, 0);
  } else if (rc == 0) {
    j->host->log(j->job, VMSNAP_LOG_INFO, "%s stays as an unnamed layer: %zu images depend on "
                 "it", l, kids);
  }
  free(v);
  return rc;
}

int q2_live_ext_prepare_delete(q2_job *j)
{
  const char *layer = j->host->get(j->job, "layer");
  char what[PATH_MAX + 512];
  snprintf(what, sizeof(what), "cannot delete external snapshot %s of %s",
           j->info->snapshot_name ? j->info->snapshot_name : "?", j->image);
  if (!layer) return 0;
  int rc = stream_in_qemu(j, layer, what);
  return rc == 1 ? q2_ext_prepare_delete(j) : rc;
}

int q2_live_ext_remove(q2_job *j)
{
  const char *layer = j->host->get(j->job, "layer");
  char what[PATH_MAX + 512];
  int rc;

  if (j->info->kind == VMSNAP_JOB_ROLLBACK) return rollback(j);
  snprintf(what, sizeof(what), "cannot delete external snapshot %s of %s",
           j->info->snapshot_name ? j->info->snapshot_name : "?", j->image);
  if (!layer) return 0;
  /* A stream the prepare could not start (several children then) or a
   * recover after a crash: QEMU still has the layer open. */
  if ((rc = stream_in_qemu(j, layer, what)) < 0) return rc;
  qnode *v = NULL;
  size_t n = 0;
  if ((rc = qemu_nodes(j, &v, &n)) < 0) return rc;
  char l[PATH_MAX];
  canon(layer, l, sizeof(l));
  if (node_of(v, n, l)) { /* kept: other images depend on it */
    free(v);
    return 0;
  }
  /* QEMU let go of the layer: settle it as offline, but never touch an
   * image QEMU has open. */
  q2_chain c;
  j->force_share = 1;
  rc = q2_chain_read(j, j->image, &c, what); /* j->image: where the disk is now */
  for (size_t i = 0; rc == 0 && i < c.n; i++) c.v[i].held = node_of(v, n, c.v[i].path) != NULL;
  q2_node *me = rc == 0 ? q2_chain_find(&c, l) : NULL;
  if (me) {
    me->record = -1;
    rc = q2_chain_settle(j, &c, me, what);
  }
  if (rc == 0) rc = q2_chain_update_records(j, &c, NULL, NULL);
  q2_chain_free(&c);
  free(v);
  return rc;
}
