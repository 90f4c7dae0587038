/* external.c — external qcow2 snapshots of a disk no QEMU runs (offline).
 *
 * create  the disk's image is frozen as the snapshot's layer and a new
 *         empty overlay backed by it takes the disk's path, so the VM's
 *         own config stays valid: the image is hard-linked into the layer
 *         directory (<dir>/.vmsnap/<disk>/vmsnap-NAME.qcow2), the overlay
 *         is made next to it and renamed over the disk. Until that rename
 *         the disk is untouched; after it the snapshot exists.
 *  revert a fresh overlay on the snapshot's layer replaces the disk's
 *         image (phase two, a rename); every other layer stays, so newer
 *         snapshots survive (branching). What the disk held since its last
 *         snapshot is discarded, as a revert means.
 *  delete the layer is merged with its only child, dropped when nothing
 *         depends on it, kept unnamed while several images do (chain.c).
 *
 * Backend data: "mode" = "external"; "layer", the frozen image (absolute);
 * "layer_backing", what the layer is backed by ("" for nothing), to notice
 * a chain changed behind vmsnap's back; "disk", the disk's path. */
#define _GNU_SOURCE
#include "qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int q2_is_external(vmsnap_job *job, const vmsnap_job_info *info)
{
  const char *mode = info->host->get(job, "mode");
  if (mode) return strcmp(mode, "external") == 0;
  return info->kind == VMSNAP_JOB_CREATE && info->disk->mode &&
         strcmp(info->disk->mode, "external") == 0;
}

static const char *domain_of(const q2_job *j)
{
  return j->info->disk->domain ? j->info->disk->domain : "DOMAIN";
}

static const char *snap_of(const q2_job *j)
{
  return j->info->snapshot_name ? j->info->snapshot_name : "NAME";
}

/* The temporary overlay of a create or revert, in the layer directory. */
static void temp_path(const char *layer, const char *suffix, char *buf, size_t len)
{
  size_t n = strlen(layer);
  snprintf(buf, len, "%.*s.%s", (int)(n > 6 ? n - 6 : n), layer, suffix);
}

static int errno_error(q2_job *j, const char *what, const char *action, const char *path)
{
  int err = errno;
  return j->host->error(j->job, err == ENOSPC ? VMSNAP_E_NOSPC : VMSNAP_E_BACKEND,
                        "%s: cannot %s %s: %s", what, action, path, strerror(err));
}

static int make_dirs(q2_job *j, const char *dir, const char *what)
{
  char parent[PATH_MAX];
  snprintf(parent, sizeof(parent), "%s", dir);
  dirname(parent);
  if ((mkdir(parent, 0700) < 0 && errno != EEXIST) || (mkdir(dir, 0700) < 0 && errno != EEXIST))
    return errno_error(j, what, "make the layer directory", dir);
  return 0;
}

/* An empty overlay at path backed by layer, with the disk's owner and mode;
 * flushed. */
static int make_overlay(q2_job *j, const char *path, const char *layer, uint64_t size,
                        uint64_t cluster, const struct stat *like, const char *what)
{
  int rc;
  unlink(path);
  if (q2_overlay_write(path, layer, size, cluster ? cluster : 65536) < 0) {
    if (errno != EINVAL) return errno_error(j, what, "write the new overlay", path);
    /* A cluster size or name the in-process writer does not take. */
    char size_s[32], opts[64];
    snprintf(size_s, sizeof(size_s), "%llu", (unsigned long long)size);
    snprintf(opts, sizeof(opts), "cluster_size=%llu", (unsigned long long)cluster);
    const char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", layer, "-F",
                          "qcow2",    "-o",     opts, path, size_s, NULL};
    if ((rc = q2_tool(j, argv, what, "nothing was changed")) < 0) {
      unlink(path);
      return rc;
    }
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error(j, what, "open the new overlay", path);
  if (fchown(fd, like->st_uid, like->st_gid) < 0) { /* not root: keep ours */
  }
  if (fchmod(fd, like->st_mode & 07777) < 0 || fsync(fd) < 0) {
    rc = errno_error(j, what, "set up the new overlay", path);
    close(fd);
    unlink(path);
    return rc;
  }
  close(fd);
  return 0;
}

/* ---- create ------------------------------------------------------------- */

int q2_ext_prepare(q2_job *j, const vmsnap_job_info *info)
{
  char what[PATH_MAX + 512], dir[PATH_MAX], layer[PATH_MAX];
  uint64_t end = 0;
  q2_info inf = {0};
  struct stat sb;
  int rc;

  snprintf(what, sizeof(what), "cannot take external snapshot %s of %s", info->object_name,
           j->image);
  if (j->is_block)
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "%s: it is a block device; an external snapshot needs a new file for "
                          "the overlay and cannot keep a device's path; use mode=internal",
                          what);
  if (info->disk->file)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "%s: file=%s: offline, the disk keeps its path and the frozen image "
                          "goes to the layer directory next to it; remove file=",
                          what, info->disk->file);
  if ((rc = q2_validate(j, what, &inf, &end)) < 0) goto out;
  if (inf.backing && !inf.backing_fmt) {
    rc = j->host->error(j->job, VMSNAP_E_INVALID,
                        "%s: it is backed by %s without a recorded backing format, and vmsnap "
                        "never lets qemu-img guess one; record it first with `qemu-img rebase "
                        "-u -f qcow2 -F FORMAT -b %s %s`",
                        what, inf.backing, inf.backing, j->image);
    goto out;
  }
  if (q2_layer_dir(j->image, dir, sizeof(dir)) < 0 ||
      (size_t)snprintf(layer, sizeof(layer), "%s/%s.qcow2", dir, info->object_name) >=
          sizeof(layer)) {
    rc = j->host->error(j->job, VMSNAP_E_INVALID, "%s: its path is too long", what);
    goto out;
  }
  if (lstat(layer, &sb) == 0) {
    rc = j->host->error(j->job, VMSNAP_E_EXISTS,
                        "%s: %s already exists and no recorded snapshot owns it; vmsnap never "
                        "overwrites a file: choose another snapshot name, or remove that file "
                        "if it is not needed",
                        what, layer);
    goto out;
  }
  if ((rc = q2_space_check(j, &inf, end)) < 0) goto out;
  if ((rc = j->host->set(j->job, "mode", "external")) < 0 ||
      (rc = j->host->set(j->job, "layer", layer)) < 0 ||
      (rc = j->host->set(j->job, "disk", j->image)) < 0)
    goto out;
out:
  q2_info_free(&inf);
  return rc;
}

/* A relative backing name would break once the image is seen through its
 * link in the layer directory: make it absolute (same file, same data). */
static int absolute_backing(q2_job *j, const q2_info *inf, const char *what)
{
  char d[PATH_MAX], abs[PATH_MAX * 2];
  if (!inf->backing || inf->backing[0] == '/') return 0;
  snprintf(d, sizeof(d), "%s", j->image);
  snprintf(abs, sizeof(abs), "%s/%s", dirname(d), inf->backing);
  const char *argv[] = {"qemu-img", "rebase", "-q", "-u",    "-f",     "qcow2",
                        "-b",       abs,      "-F", inf->backing_fmt, j->image, NULL};
  return q2_tool(j, argv, what, "nothing was changed");
}

int q2_ext_create(q2_job *j)
{
  const char *layer = j->host->get(j->job, "layer");
  char what[PATH_MAX + 512], dir[PATH_MAX], tmp[PATH_MAX + 16];
  q2_info inf = {0};
  q2_chain c = {0};
  struct stat disk_st, layer_st;
  int rc;

  snprintf(what, sizeof(what), "cannot take external snapshot of %s", j->image);
  if (!layer)
    return j->host->error(j->job, VMSNAP_E_INVALID, "%s: no layer was recorded (a bug)", what);
  snprintf(dir, sizeof(dir), "%s", layer);
  dirname(dir);
  temp_path(layer, "new", tmp, sizeof(tmp));
  if (j->host->cancelled(j->job)) return VMSNAP_E_CANCELLED;
  if ((rc = q2_info_read(j, 0, what, "nothing was changed", &inf)) < 0) return rc;
  if ((rc = make_dirs(j, dir, what)) < 0 || (rc = absolute_backing(j, &inf, what)) < 0) goto out;
  if (stat(j->image, &disk_st) < 0) {
    rc = errno_error(j, what, "read", j->image);
    goto out;
  }
  /* The frozen layer: the disk's own image under a second name. */
  if (link(j->image, layer) < 0 &&
      !(errno == EEXIST && stat(layer, &layer_st) == 0 && layer_st.st_ino == disk_st.st_ino &&
        layer_st.st_dev == disk_st.st_dev)) {
    rc = errno == EXDEV || errno == EPERM
             ? j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                              "%s: cannot hard-link it into %s (%s); the filesystem must "
                              "allow hard links; nothing was changed",
                              what, dir, strerror(errno))
             : errno_error(j, what, "link the image to", layer);
    goto out;
  }
  rc = make_overlay(j, tmp, layer, inf.virtual_size, inf.cluster_size, &disk_st, what);
  if (rc == 0 && j->host->cancelled(j->job)) rc = VMSNAP_E_CANCELLED;
  if (rc == 0 && rename(tmp, j->image) < 0) rc = errno_error(j, what, "move the overlay to", j->image);
  if (rc < 0) {
    unlink(tmp);
    unlink(layer); /* the disk still has its own name */
    goto out;
  }
  /* The snapshot exists from here on. */
  q2_fsync_dir(j->image);
  q2_fsync_dir(layer);
  char *abs = NULL;
  if (inf.backing && asprintf(&abs, "%s", inf.backing) < 0) abs = NULL;
  q2_info_free(&inf);
  if ((rc = q2_info_read(j, 0, what, "the snapshot was made", &inf)) < 0) {
    free(abs);
    goto out;
  }
  q2_job lj;
  q2_info linf = {0};
  rc = q2_job_rebind(&lj, j, layer);
  if (rc == 0) rc = q2_info_read(&lj, 0, what, "the snapshot was made", &linf);
  q2_job_dispose(&lj);
  free(abs);
  if (rc == 0) rc = j->host->set(j->job, "layer_backing", linf.backing ? linf.backing : "");
  q2_info_free(&linf);
  /* Internal snapshots the image held moved with it into the layer. */
  if (rc == 0 && (rc = q2_chain_read(j, j->image, &c, what)) == 0)
    rc = q2_chain_update_records(j, &c, j->image, layer);
  if (rc == 0)
    j->host->log(j->job, VMSNAP_LOG_INFO, "froze %s as %s under a new overlay", j->image, layer);
out:
  q2_chain_free(&c);
  q2_info_free(&inf);
  return rc;
}

/* A live create (QEMU made the overlay) that did not finish, undone after
 * QEMU is gone: QEMU may have written the guest's data into the overlay
 * before it stopped, so that data goes back into the image it came from
 * (the disk's own image), and then the overlay goes. */
static int rollback_live(q2_job *j, const char *layer, const char *overlay, const char *what)
{
  q2_job oj;
  q2_info inf = {0};
  int rc = q2_job_rebind(&oj, j, overlay);

  if (rc == VMSNAP_E_NOT_FOUND) { /* QEMU never made it */
    q2_job_dispose(&oj);
    return 0;
  }
  if (rc == 0) rc = q2_info_read(&oj, 0, what, "run `snapctl recover` again", &inf);
  char back[PATH_MAX] = "";
  if (rc == 0 && inf.backing && !realpath(inf.backing, back)) back[0] = '\0';
  if (rc == 0 && strcmp(back, layer) == 0) {
    const char *argv[] = {"qemu-img", "commit", "-p", "-f", "qcow2", overlay, NULL};
    rc = q2_tool(j, argv, what, "run `snapctl recover` again");
  } else if (rc == 0) {
    j->host->warn(j->job, "%s is not the overlay vmsnap asked QEMU for on %s; it is left alone",
                  overlay, layer);
    rc = 1;
  }
  q2_info_free(&inf);
  q2_job_dispose(&oj);
  if (rc == 0 && unlink(overlay) < 0 && errno != ENOENT) return errno_error(j, what, "remove", overlay);
  return rc < 0 ? rc : 0;
}

/* Undoes a create that did not finish, wherever it stopped. */
static int rollback(q2_job *j, const char *what)
{
  const char *layer = j->host->get(j->job, "layer");
  const char *overlay = j->host->get(j->job, "overlay");
  char tmp[PATH_MAX + 16], dir[PATH_MAX];
  struct stat ds, ls;
  q2_info inf = {0};
  q2_chain c = {0};
  int rc = 0;

  if (!layer) return 0;
  if (overlay) return rollback_live(j, layer, overlay, what);
  temp_path(layer, "new", tmp, sizeof(tmp));
  unlink(tmp);
  if (stat(layer, &ls) < 0) return 0; /* never linked */
  /* Only the second name this create gave the image is removed. */
  if (q2_layer_dir(j->image, dir, sizeof(dir)) < 0 || strncmp(layer, dir, strlen(dir)) != 0) {
    j->host->warn(j->job, "%s is not in the layer directory of %s; left alone", layer, j->image);
    return 0;
  }
  if (stat(j->image, &ds) == 0 && ds.st_ino == ls.st_ino && ds.st_dev == ls.st_dev) {
    if (unlink(layer) < 0) return errno_error(j, what, "remove", layer);
    q2_fsync_dir(layer);
    return 0;
  }
  /* The overlay took the disk's path: give it back to the frozen image. */
  if ((rc = q2_info_read(j, 0, what, "run `snapctl recover` again", &inf)) < 0) return rc;
  char *backing = inf.backing ? strdup(inf.backing) : NULL;
  q2_info_free(&inf);
  if (!backing || strcmp(backing, layer) != 0) {
    free(backing);
    j->host->warn(j->job, "%s is no longer the overlay vmsnap put on %s; both are left as they "
                  "are", j->image, layer);
    return 0;
  }
  free(backing);
  if (rename(layer, j->image) < 0) return errno_error(j, what, "move back", layer);
  q2_fsync_dir(j->image);
  if ((rc = q2_chain_read(j, j->image, &c, what)) == 0)
    rc = q2_chain_update_records(j, &c, layer, j->image);
  q2_chain_free(&c);
  return rc;
}

/* ---- delete ------------------------------------------------------------- */

static int delete_what(q2_job *j, char *buf, size_t len)
{
  return snprintf(buf, len, "cannot delete external snapshot %s of %s", snap_of(j), j->image);
}

/* Before the delete is journaled: the chain is as vmsnap left it, there is
 * room for the merge, and the data that moves into the child (the one
 * direction that changes no snapshot) is moved now, where a cancel or a
 * failure leaves everything whole. */
int q2_ext_prepare_delete(q2_job *j)
{
  const char *layer = j->host->get(j->job, "layer");
  char what[PATH_MAX + 512];
  q2_chain c;
  int rc;

  delete_what(j, what, sizeof(what));
  if (!layer) return 0;
  if ((rc = q2_chain_read(j, j->image, &c, what)) < 0) return rc;
  if ((rc = q2_chain_verify(j, &c, layer, j->host->get(j->job, "layer_backing"), what)) == 0)
    rc = q2_chain_premerge(j, &c, q2_chain_find(&c, layer), what);
  q2_chain_free(&c);
  return rc;
}

int q2_ext_remove(q2_job *j)
{
  const char *layer = j->host->get(j->job, "layer");
  char what[PATH_MAX + 512];
  q2_chain c;
  int rc;

  delete_what(j, what, sizeof(what));
  if (j->info->kind == VMSNAP_JOB_ROLLBACK) return rollback(j, what);
  if (!layer) return 0;
  if ((rc = q2_chain_read(j, j->image, &c, what)) < 0) return rc;
  q2_node *v = q2_chain_find(&c, layer);
  if (v) {
    v->record = -1; /* its snapshot is going: settle it like an unnamed layer */
    rc = q2_chain_settle(j, &c, v, what);
  }
  /* Children now backed by something else get that recorded. */
  if (rc == 0) rc = q2_chain_update_records(j, &c, NULL, NULL);
  q2_chain_free(&c);
  return rc;
}

/* ---- revert ------------------------------------------------------------- */

static int revert_what(q2_job *j, char *buf, size_t len)
{
  return snprintf(buf, len, "cannot revert %s to external snapshot %s", j->image, snap_of(j));
}

/* Phase one: a fresh overlay on the snapshot's layer, beside the disk. */
int q2_ext_revert(q2_job *j)
{
  const char *layer = j->host->get(j->job, "layer");
  char what[PATH_MAX + 512], tmp[PATH_MAX + 16];
  struct stat ds;
  q2_chain c;
  int rc;

  revert_what(j, what, sizeof(what));
  if (!layer)
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND, "%s: no layer was recorded", what);
  if ((rc = q2_chain_read(j, j->image, &c, what)) < 0) return rc;
  if ((rc = q2_chain_verify(j, &c, layer, j->host->get(j->job, "layer_backing"), what)) < 0)
    goto out;
  q2_node *snap = q2_chain_find(&c, layer);
  if (c.v[0].nsnaps) {
    rc = j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                        "%s: the current image holds %zu internal snapshot(s), which a revert "
                        "would discard with it; nothing was changed; delete them, or take an "
                        "external snapshot first (snapctl create %s --disk %s,mode=external)",
                        what, c.v[0].nsnaps, domain_of(j), j->info->disk->target);
    goto out;
  }
  if (q2_chain_children(&c, j->image, NULL)) {
    rc = j->host->error(j->job, VMSNAP_E_BACKEND,
                        "%s: other images are backed by the disk's image itself; nothing was "
                        "changed; vmsnap does not replace an image others depend on",
                        what);
    goto out;
  }
  if (stat(j->image, &ds) < 0) {
    rc = errno_error(j, what, "read", j->image);
    goto out;
  }
  temp_path(layer, "revert", tmp, sizeof(tmp));
  rc = make_overlay(j, tmp, layer, snap->virtual_size, snap->cluster_size, &ds, what);
out:
  q2_chain_free(&c);
  return rc;
}

/* Phase two: the overlay takes the disk's path. Restartable: when the
 * overlay is gone and the disk is backed by the layer, it is done. Layers
 * nothing names any more are settled (chain.c). */
int q2_ext_revert_finish(q2_job *j)
{
  const char *layer = j->host->get(j->job, "layer");
  char what[PATH_MAX + 512], tmp[PATH_MAX + 16];
  q2_chain c;
  int rc;

  revert_what(j, what, sizeof(what));
  if (!layer) return 0;
  temp_path(layer, "revert", tmp, sizeof(tmp));
  if ((rc = q2_chain_read(j, j->image, &c, what)) < 0) return rc;
  char *old = c.v[0].backing ? strdup(c.v[0].backing) : NULL;
  if (access(tmp, F_OK) == 0) {
    if (rename(tmp, j->image) < 0) {
      rc = errno_error(j, what, "move the new overlay to", j->image);
      goto out;
    }
    q2_fsync_dir(j->image);
  } else if (!old || strcmp(old, layer) != 0) {
    rc = j->host->error(j->job, VMSNAP_E_BACKEND,
                        "%s: the overlay made in the first phase (%s) is gone; run `snapctl "
                        "revert %s %s` again",
                        what, tmp, domain_of(j), snap_of(j));
    goto out;
  }
  free(c.v[0].backing);
  c.v[0].backing = strdup(layer);
  j->host->log(j->job, VMSNAP_LOG_INFO, "%s now starts from %s", j->image, layer);
  /* The image the disk had before may leave an unnamed layer childless. */
  q2_node *prev = old ? q2_chain_find(&c, old) : NULL;
  if (prev && prev->ours && prev->record < 0) rc = q2_chain_settle(j, &c, prev, what);
  if (rc == 0) rc = q2_chain_update_records(j, &c, NULL, NULL);
out:
  free(old);
  q2_chain_free(&c);
  return rc;
}

int q2_ext_revert_abort(q2_job *j)
{
  const char *layer = j->host->get(j->job, "layer");
  char tmp[PATH_MAX + 16];
  if (!layer) return 0;
  temp_path(layer, "revert", tmp, sizeof(tmp));
  if (unlink(tmp) < 0 && errno != ENOENT) {
    char what[PATH_MAX + 512];
    revert_what(j, what, sizeof(what));
    return errno_error(j, what, "remove", tmp);
  }
  return 0;
}

/* ---- list --------------------------------------------------------------- */

/* The layers in the disk's layer directory; a layer no snapshot names is
 * an unnamed one kept for the images that depend on it. */
void q2_ext_list(q2_job *j)
{
  char what[PATH_MAX + 64], name[512], tag[PATH_MAX], note[PATH_MAX + 128], obj[PATH_MAX + 32];
  q2_chain c;

  snprintf(what, sizeof(what), "cannot list the layers of %s", j->image);
  if (q2_chain_read(j, j->image, &c, what) < 0) return;
  for (size_t i = 1; i < c.n; i++) {
    q2_node *v = &c.v[i];
    const char *base = strrchr(v->path, '/') + 1;
    size_t kids = q2_chain_children(&c, v->path, NULL);
    struct stat sb;
    snprintf(tag, sizeof(tag), "%.*s", (int)(strlen(base) - 6), base);
    /* A layer no snapshot names any more (its snapshot was deleted while
     * several images depended on it) is named apart: the records of those
     * images name its path as their backing, which would hide it. */
    int unnamed = v->record < 0;
    snprintf(obj, sizeof(obj), "%s%s", unnamed ? "unnamed layer " : "", v->path);
    snprintf(note, sizeof(note), "%s layer%s%s; %zu image(s) depend on it",
             unnamed ? "unnamed" : "external", v->backing ? ", backed by " : "",
             v->backing ? v->backing : "", kids);
    vmsnap_list_entry e = {
        .struct_size = sizeof(e),
        .object = obj,
        .snapshot_name = q2_decode_tag(tag, name, sizeof(name)) ? name : NULL,
        .ctime_sec = stat(v->path, &sb) == 0 ? sb.st_mtime : 0,
        .size = v->allocated,
        .note = note,
    };
    j->host->list_entry(j->job, &e);
  }
  q2_chain_free(&c);
}
