/* chain.c — the backing chain of a disk with external snapshots, as the
 * files say it is, and the changes that keep it whole: merging a layer
 * with its only child, dropping a layer nothing depends on.
 *
 * The chain is read from the files (each qcow2 header names its backing
 * file), not from vmsnap's records: the layers vmsnap made live in the
 * disk's layer directory (q2_layer_dir), so scanning that directory and
 * the disk itself finds every image that can depend on a layer. The
 * records say which layer is which snapshot (data "layer"), and what each
 * layer was backed by when vmsnap last changed it ("layer_backing"), which
 * is how a chain changed behind vmsnap's back is noticed.
 *
 * A layer with several children (a branch point: a revert made a new
 * overlay on an older snapshot) cannot be merged into any of them; when
 * its snapshot is deleted it stays as an unnamed layer (an "orphan") until
 * only one child is left, and is merged or dropped then (q2_chain_tidy). */
#define _GNU_SOURCE
#include "qcow2.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ---- paths -------------------------------------------------------------- */

/* The layer directory of a disk: <dir>/.vmsnap/<basename>/. A disk whose
 * image already sits in such a directory (the active overlay of a live
 * external snapshot) keeps using it. */
int q2_layer_dir(const char *disk, char *buf, size_t len)
{
  char d[PATH_MAX], b[PATH_MAX];
  snprintf(d, sizeof(d), "%s", disk);
  snprintf(b, sizeof(b), "%s", disk);
  const char *dir = dirname(d), *base = basename(b);
  const char *p = strstr(dir, "/.vmsnap/");
  if (p && !strchr(p + 9, '/')) return snprintf(buf, len, "%s", dir) < (int)len ? 0 : -1;
  return snprintf(buf, len, "%s/.vmsnap/%s", strcmp(dir, "/") ? dir : "", base) < (int)len ? 0
                                                                                            : -1;
}

/* A backing name from a header, made absolute against the image's dir. */
static char *absolute_backing(const char *image, const char *backing)
{
  char d[PATH_MAX], *out = NULL;
  if (!backing || !*backing) return NULL;
  if (backing[0] == '/') return strdup(backing);
  snprintf(d, sizeof(d), "%s", image);
  if (asprintf(&out, "%s/%s", dirname(d), backing) < 0) return NULL;
  /* Canonical when it exists, so paths compare equal. */
  char real[PATH_MAX];
  if (realpath(out, real)) {
    free(out);
    out = strdup(real);
  }
  return out;
}

/* Whether path lies directly in dir (vmsnap's own layer directory). */
static int in_dir(const char *path, const char *dir)
{
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/');
}

/* ---- reading the chain -------------------------------------------------- */

void q2_chain_free(q2_chain *c)
{
  for (size_t i = 0; i < c->n; i++) {
    free(c->v[i].path);
    free(c->v[i].backing);
    free(c->v[i].uuid);
  }
  free(c->v);
  for (size_t i = 0; i < c->nrec; i++) {
    free(c->rec[i].uuid);
    free(c->rec[i].name);
    free(c->rec[i].layer);
    free(c->rec[i].layer_backing);
    free(c->rec[i].image);
  }
  free(c->rec);
  memset(c, 0, sizeof(*c));
}

static q2_node *add_node(q2_chain *c, const char *path)
{
  q2_node *v = realloc(c->v, (c->n + 1) * sizeof(*v));
  if (!v) return NULL;
  c->v = v;
  memset(&v[c->n], 0, sizeof(v[c->n]));
  v[c->n].path = strdup(path);
  return v[c->n].path ? &v[c->n++] : NULL;
}

static const char *kv_get(const char *const *kv, const char *key)
{
  for (size_t i = 0; kv[i]; i += 2)
    if (strcmp(kv[i], key) == 0) return kv[i + 1];
  return NULL;
}

static int add_record(void *user, const char *uuid, const char *name, const char *const *kv)
{
  q2_chain *c = user;
  q2_record *r = realloc(c->rec, (c->nrec + 1) * sizeof(*r));
  if (!r) return VMSNAP_E_NOMEM;
  c->rec = r;
  r = &r[c->nrec++];
  memset(r, 0, sizeof(*r));
  const char *layer = kv_get(kv, "layer"), *lb = kv_get(kv, "layer_backing"),
             *image = kv_get(kv, "image");
  r->uuid = strdup(uuid);
  r->name = strdup(name ? name : "?");
  r->layer = layer ? strdup(layer) : NULL;
  r->layer_backing = lb ? strdup(lb) : NULL;
  r->image = image ? strdup(image) : NULL;
  return 0;
}

/* Reads the header of one image (no tool: q2_info_read on a job bound to
 * that path). */
static int read_node(q2_job *j, q2_node *v, const char *what)
{
  q2_job sub;
  q2_info inf;
  int rc = q2_job_rebind(&sub, j, v->path);
  if (rc == 0) rc = q2_info_read(&sub, j->force_share, what, "nothing was changed", &inf);
  if (rc == 0) {
    v->backing = absolute_backing(v->path, inf.backing);
    v->nsnaps = inf.n;
    v->virtual_size = inf.virtual_size;
    v->cluster_size = inf.cluster_size;
    q2_info_free(&inf);
    struct stat sb;
    v->allocated = stat(v->path, &sb) == 0 ? (uint64_t)sb.st_blocks * 512 : 0;
  }
  q2_job_dispose(&sub);
  return rc;
}

int q2_chain_read(q2_job *j, const char *disk, q2_chain *c, const char *what)
{
  const vmsnap_host *h = j->host;
  int rc;

  memset(c, 0, sizeof(*c));
  if (!realpath(disk, c->disk)) snprintf(c->disk, sizeof(c->disk), "%s", disk);
  disk = c->disk;
  if (q2_layer_dir(disk, c->dir, sizeof(c->dir)) < 0)
    return h->error(j->job, VMSNAP_E_INVALID, "%s: the path %s is too long", what, disk);
  if (h->struct_size < offsetof(vmsnap_host, siblings) + sizeof(h->siblings) || !h->siblings)
    return h->error(j->job, VMSNAP_E_UNSUPPORTED,
                    "%s: this libvmsnap does not show backends their other snapshots "
                    "(host->siblings), which external qcow2 snapshots need; use a libvmsnap "
                    "that matches this plugin",
                    what);
  if ((rc = h->siblings(j->job, add_record, c)) < 0) goto fail;
  /* The job's own snapshot is a record too (siblings leaves it out). */
  const char *self[] = {"layer", h->get(j->job, "layer"), "layer_backing",
                        h->get(j->job, "layer_backing"), "image", h->get(j->job, "image"), NULL};
  const char *own[7] = {NULL};
  for (size_t i = 0, k = 0; i < 6; i += 2)
    if (self[i + 1]) {
      own[k++] = self[i];
      own[k++] = self[i + 1];
    }
  if (j->info->snapshot_uuid &&
      (rc = add_record(c, j->info->snapshot_uuid, j->info->snapshot_name, own)) < 0)
    goto fail;
  if (j->info->snapshot_uuid) c->rec[c->nrec - 1].self = 1;

  if (!add_node(c, disk)) goto nomem;
  c->v[0].active = 1;
  DIR *d = opendir(c->dir);
  if (d) {
    struct dirent *e;
    size_t plen = strlen(Q2_MARK_PREFIX), n;
    while ((e = readdir(d))) {
      n = strlen(e->d_name);
      if (strncmp(e->d_name, Q2_MARK_PREFIX, plen) || n < 7 ||
          strcmp(e->d_name + n - 6, ".qcow2"))
        continue;
      char p[PATH_MAX];
      if ((size_t)snprintf(p, sizeof(p), "%s/%s", c->dir, e->d_name) >= sizeof(p)) continue;
      if (strcmp(p, disk) == 0) continue;
      if (!add_node(c, p)) {
        closedir(d);
        goto nomem;
      }
    }
    closedir(d);
  }
  /* Layers outside the directory: the image a live snapshot froze where
   * it was. */
  for (size_t k = 0; k < c->nrec; k++)
    if (c->rec[k].layer && !q2_chain_find(c, c->rec[k].layer) && access(c->rec[k].layer, F_OK) == 0 &&
        !add_node(c, c->rec[k].layer))
      goto nomem;
  for (size_t i = 0; i < c->n; i++) {
    if ((rc = read_node(j, &c->v[i], what)) < 0) goto fail;
    c->v[i].ours = in_dir(c->v[i].path, c->dir);
    c->v[i].record = -1;
    for (size_t k = 0; k < c->nrec; k++)
      if (c->rec[k].layer && strcmp(c->rec[k].layer, c->v[i].path) == 0) {
        c->v[i].record = (int)k;
        c->v[i].uuid = strdup(c->rec[k].uuid);
      }
  }
  return 0;
nomem:
  rc = h->error(j->job, VMSNAP_E_NOMEM, "%s: out of memory", what);
fail:
  q2_chain_free(c);
  return rc;
}

q2_node *q2_chain_find(q2_chain *c, const char *path)
{
  for (size_t i = 0; path && i < c->n; i++)
    if (strcmp(c->v[i].path, path) == 0) return &c->v[i];
  return NULL;
}

/* The images backed by path; *first: one of them. */
size_t q2_chain_children(q2_chain *c, const char *path, q2_node **first)
{
  size_t n = 0;
  for (size_t i = 0; i < c->n; i++)
    if (!c->v[i].gone && c->v[i].backing && strcmp(c->v[i].backing, path) == 0 && n++ == 0 &&
        first)
      *first = &c->v[i];
  return n;
}

/* Whether the layer's backing is one vmsnap explains: the recorded one,
 * or an ancestor of it through recorded layers (vmsnap streamed a deleted
 * layer into this one and the record is updated at the end of that op). */
int q2_chain_backing_ok(q2_chain *c, const char *recorded, const char *actual)
{
  const char *x = recorded && *recorded ? recorded : NULL;
  for (size_t hops = 0; hops <= c->nrec + c->n; hops++) {
    if (!x || !actual) return !x && !actual;
    if (strcmp(x, actual) == 0) return 1;
    const char *next = NULL;
    for (size_t k = 0; k < c->nrec; k++)
      if (c->rec[k].layer && strcmp(c->rec[k].layer, x) == 0) next = c->rec[k].layer_backing;
    q2_node *v = next ? NULL : q2_chain_find(c, x);
    if (!next && v && v->ours) next = v->backing ? v->backing : "";
    if (!next) return 0;
    x = *next ? next : NULL;
  }
  return 0;
}

/* The snapshot's layer is there and backed by what vmsnap left it on. */
int q2_chain_verify(q2_job *j, q2_chain *c, const char *layer, const char *layer_backing,
                    const char *what)
{
  q2_node *v = q2_chain_find(c, layer);
  if (!v)
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                          "%s: its layer %s is gone (deleted or moved behind vmsnap's back); "
                          "nothing was changed; if it is lost for good, drop the record with "
                          "`snapctl delete %s %s --metadata-only`",
                          what, layer, j->info->disk->domain ? j->info->disk->domain : "DOMAIN",
                          j->info->snapshot_name ? j->info->snapshot_name : "NAME");
  if (!q2_chain_backing_ok(c, layer_backing, v->backing))
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "%s: the backing chain was changed behind vmsnap's back: layer %s is "
                          "now backed by %s, vmsnap left it on %s; nothing was changed; put the "
                          "chain back (qemu-img rebase -u) or drop the record with --metadata-only",
                          what, layer, v->backing ? v->backing : "nothing",
                          layer_backing && *layer_backing ? layer_backing : "nothing");
  return 0;
}

/* ---- changing the chain ------------------------------------------------- */

/* qemu-img -p redraws "    (12.34/100%)" with \r. */
static int progress_line(void *user, const char *line, uint64_t *done, uint64_t *total)
{
  const char *p = strchr(line, '(');
  double pct;
  (void)user;
  if (!p || sscanf(p, "(%lf/100%%)", &pct) != 1) return 0;
  *done = (uint64_t)(pct * 100);
  *total = 10000;
  return 1;
}

int q2_tool(q2_job *j, const char *const argv[], const char *what, const char *hint)
{
  static const char *const env[] = {"LC_ALL=C", NULL};
  vmsnap_spawn_opts opts = {.struct_size = sizeof(opts), .line = progress_line, .env_add = env};
  vmsnap_spawn_result r = {.struct_size = sizeof(r)};
  int rc = j->host->spawn(j->job, argv, &opts, &r);
  if (rc == 0 && r.exit_status != 0) rc = q2_tool_error(j, &r, what, hint);
  free(r.out);
  return rc;
}

int q2_fsync_dir(const char *path)
{
  char d[PATH_MAX];
  snprintf(d, sizeof(d), "%s", path);
  int fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

static int fsync_file(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* Free space for up to `need` bytes of merged data next to path. */
static int space_for(q2_job *j, const char *path, uint64_t need, const char *what)
{
  char d[PATH_MAX], need_s[32], have_s[32];
  struct statvfs sv;
  snprintf(d, sizeof(d), "%s", path);
  if (statvfs(dirname(d), &sv) < 0) return 0; /* the tool will say */
  uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
  if (avail >= need) return 0;
  vp_human_size(need, need_s, sizeof(need_s));
  vp_human_size(avail, have_s, sizeof(have_s));
  return j->host->error(j->job, VMSNAP_E_NOSPC,
                        "%s: merging the layer needs up to %s free next to %s, only %s is "
                        "free; nothing was changed; free some space there",
                        what, need_s, path, have_s);
}

/* Commit (write the child's data into the layer, then the layer takes the
 * child's name) is cheaper when the child holds less data than the layer;
 * it is allowed only into a layer vmsnap made that no other image shares
 * and that holds no internal snapshot. Otherwise stream: the child gets
 * the layer's data (qemu-img rebase onto the layer's own backing), and the
 * layer, now unused, goes. */
static int use_commit(const q2_node *layer, const q2_node *child)
{
  return layer->ours && !layer->nsnaps && !child->nsnaps && child->allocated < layer->allocated;
}

/* Before a delete is journaled: room for the merge, and when the merge
 * streams, the stream itself (see q2_chain_stream); a commit waits for
 * remove. */
int q2_chain_premerge(q2_job *j, q2_chain *c, q2_node *layer, const char *what)
{
  q2_node *child = NULL;
  if (!layer || q2_chain_children(c, layer->path, &child) != 1) return 0;
  if (use_commit(layer, child)) return space_for(j, layer->path, child->allocated, what);
  int rc = space_for(j, child->path, layer->allocated, what);
  return rc ? rc : q2_chain_stream(j, layer, child, what);
}

/* Streams the layer's data into its only child: afterwards the child is
 * backed by the layer's backing and the layer has no child. Changes no
 * image's content as seen through its chain, and a stop half-way (cancel,
 * crash) leaves the child backed by the layer as before: so it may run
 * before the delete is journaled, and be cancelled. */
int q2_chain_stream(q2_job *j, q2_node *layer, q2_node *child, const char *what)
{
  const char *argv[] = {"qemu-img", "rebase", "-p",
                        "-f",       "qcow2",  "-b",
                        layer->backing ? layer->backing : "",
                        layer->backing ? "-F" : child->path,
                        layer->backing ? "qcow2" : NULL,
                        child->path, NULL};
  j->host->log(j->job, VMSNAP_LOG_INFO, "streaming %s into %s", layer->path, child->path);
  int rc = q2_tool(j, argv, what, "the chain is as it was; run the delete again");
  if (rc == 0 && fsync_file(child->path) < 0) rc = j->host->error(j->job, VMSNAP_E_BACKEND,
                                                 "%s: cannot flush %s", what, child->path);
  if (rc == 0) {
    free(child->backing);
    child->backing = layer->backing ? strdup(layer->backing) : NULL;
  }
  return rc;
}

/* Commits the child into the layer, then renames the layer over the child:
 * the child's path (a snapshot's layer, or the disk itself) now names the
 * merged image and whatever depends on the child still finds it. A stop
 * half-way leaves the child's view whole (it still overrides the layer),
 * and the commit runs again. The layer's snapshot is lost from the first
 * write on, so this runs only after the delete is journaled. */
static int commit_into(q2_job *j, q2_node *layer, q2_node *child, const char *what)
{
  const char *argv[] = {"qemu-img", "commit", "-p", "-d", "-f", "qcow2", child->path, NULL};
  struct stat sb;
  int rc;

  j->host->log(j->job, VMSNAP_LOG_INFO, "committing %s into %s", child->path, layer->path);
  if ((rc = q2_tool(j, argv, what, "the chain is whole; run `snapctl recover` to finish")) < 0)
    return rc;
  if (j->info->flags & VMSNAP_JOB_RECOVERY) {
    /* A commit killed half-way may have left clusters allocated and never
     * used (leaks: wasted space, no harm); the image is ours and idle. */
    const char *fix[] = {"qemu-img", "check", "-q", "-r", "leaks", "-f", "qcow2", layer->path, NULL};
    if (q2_tool(j, fix, what, "") < 0)
      j->host->warn(j->job, "%s may hold leaked clusters; `qemu-img check -r leaks -f qcow2 %s` "
                    "reclaims them", layer->path, layer->path);
  }
  /* The merged image takes the child's owner and mode (the disk's). */
  if (stat(child->path, &sb) == 0) {
    if (chown(layer->path, sb.st_uid, sb.st_gid) < 0) { /* best effort */
    }
    chmod(layer->path, sb.st_mode & 07777);
  }
  if (fsync_file(layer->path) < 0 || rename(layer->path, child->path) < 0 ||
      q2_fsync_dir(child->path) < 0) {
    int err = errno;
    return j->host->error(j->job, VMSNAP_E_BACKEND, "%s: cannot move %s to %s: %s", what,
                          layer->path, child->path, strerror(err));
  }
  free(child->backing);
  child->backing = layer->backing ? strdup(layer->backing) : NULL;
  child->allocated += layer->allocated;
  layer->gone = 1;
  return 0;
}

static int drop_layer(q2_job *j, q2_node *layer, const char *what)
{
  if (!layer->ours) {
    j->host->log(j->job, VMSNAP_LOG_INFO, "%s is no longer part of the chain; vmsnap did not "
                 "make it, so it is left where it is", layer->path);
    layer->gone = 1;
    return 0;
  }
  if (layer->nsnaps) {
    j->host->warn(j->job, "%s holds %zu internal snapshot(s), so it is kept although no image "
                  "depends on it any more", layer->path, layer->nsnaps);
    layer->gone = 1;
    return 0;
  }
  if (unlink(layer->path) < 0 && errno != ENOENT) {
    int err = errno;
    return j->host->error(j->job, VMSNAP_E_BACKEND, "%s: cannot remove %s: %s", what,
                          layer->path, strerror(err));
  }
  q2_fsync_dir(layer->path);
  layer->gone = 1;
  return 0;
}

static int is_orphan(const q2_node *v)
{
  return v && !v->gone && !v->active && v->ours && v->record < 0;
}

/* Brings one layer whose snapshot is gone (or going) to its end state:
 * no child → dropped; one child → merged with it; several → kept. Then
 * the same for its parent when that is an unnamed layer of ours. */
int q2_chain_settle(q2_job *j, q2_chain *c, q2_node *layer, const char *what)
{
  for (size_t hops = 0; layer && hops < c->n; hops++) {
    q2_node *child = NULL;
    size_t n = q2_chain_children(c, layer->path, &child);
    if (layer->held || (n == 1 && child->held)) {
      /* qemu-img never writes an image QEMU has open, nor renames over it. */
      j->host->log(j->job, VMSNAP_LOG_INFO, "%s stays in the chain: QEMU has it or its child open",
                   layer->path);
      return 0;
    }
    char *parent = layer->backing ? strdup(layer->backing) : NULL;
    int rc = 0;
    if (n == 0) {
      rc = drop_layer(j, layer, what);
    } else if (n == 1 && use_commit(layer, child)) {
      rc = commit_into(j, layer, child, what);
    } else if (n == 1) {
      if ((rc = q2_chain_stream(j, layer, child, what)) == 0) rc = drop_layer(j, layer, what);
    } else {
      j->host->log(j->job, VMSNAP_LOG_INFO, "%s stays as an unnamed layer: %zu images depend "
                   "on it", layer->path, n);
      free(parent);
      return 0;
    }
    if (rc < 0) {
      free(parent);
      return rc;
    }
    /* The parent lost a child: settle it too if nothing names it. */
    q2_node *p = parent ? q2_chain_find(c, parent) : NULL;
    free(parent);
    layer = is_orphan(p) ? p : NULL;
  }
  return 0;
}

/* Records whose layer's backing changed get the new one; records of
 * internal snapshots in an image that moved follow it. */
int q2_chain_update_records(q2_job *j, q2_chain *c, const char *moved_from, const char *moved_to)
{
  for (size_t k = 0; k < c->nrec; k++) {
    q2_record *r = &c->rec[k];
    q2_node *v = r->layer ? q2_chain_find(c, r->layer) : NULL;
    int rc = 0;
    if (v) {
      const char *now = v->backing ? v->backing : "";
      if (!r->layer_backing || strcmp(r->layer_backing, now) != 0)
        rc = r->self ? j->host->set(j->job, "layer_backing", now)
                     : j->host->set_other(j->job, r->uuid, "layer_backing", now);
    }
    if (!rc && moved_from && r->image && strcmp(r->image, moved_from) == 0)
      rc = r->self ? j->host->set(j->job, "image", moved_to)
                   : j->host->set_other(j->job, r->uuid, "image", moved_to);
    if (rc < 0) return rc;
  }
  return 0;
}
