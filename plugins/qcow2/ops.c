/* ops.c — prepare, create, remove, revert and list of internal qcow2
 * snapshots. Every step reads the image's snapshot table first and acts
 * on the one snapshot the backend data names (see q2_pick). */
#define _GNU_SOURCE
#include "qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* An internal snapshot copies the L1 table and rewrites the snapshot
 * table and some refcount blocks; the data stays shared. */
#define Q2_SPACE_BASE (4ull << 20)

static int describe(const q2_job *j, char *buf, size_t len, const char *verb, const char *tag)
{
  return snprintf(buf, len, "%s snapshot %s of %s", verb, tag, j->image);
}

/* ---- prepare ------------------------------------------------------------ */

static int refuse_unsupported(const q2_job *j, const vmsnap_disk *d)
{
  if (d->mode && strcmp(d->mode, "internal") != 0 && strcmp(d->mode, "external") != 0)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "mode=%s is not a qcow2 snapshot mode; use mode=internal (inside the "
                          "image) or mode=external (a new overlay on the frozen image)",
                          d->mode);
  if (d->mode && strcmp(d->mode, "external") == 0) return 0; /* q2_ext_prepare checks the rest */
  if (d->file)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "file=%s: an internal snapshot stays inside %s and has no file of "
                          "its own; remove file= from the disk",
                          d->file, d->source);
  return 0;
}

static uint64_t block_size(const char *path)
{
  uint64_t size = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd >= 0) {
    if (ioctl(fd, BLKGETSIZE64, &size) < 0) size = 0;
    close(fd);
  }
  return size;
}

/* Rough: an internal snapshot needs little room (see Q2_SPACE_BASE), but
 * a full filesystem would fail it half-way. On a block device the image
 * cannot grow past the device; freed clusters inside it are reused, so
 * there only a warning. */
int q2_space_check(q2_job *j, const q2_info *inf, uint64_t end_offset)
{
  uint64_t cl = inf->cluster_size ? inf->cluster_size : 65536;
  uint64_t l2_span = cl * (cl / 8);
  uint64_t need = Q2_SPACE_BASE + 2 * 8 * ((inf->virtual_size + l2_span - 1) / l2_span);
  char need_s[32], have_s[32];

  if (j->is_block) {
    uint64_t dev = block_size(j->image);
    if (dev && end_offset && dev < end_offset + need) {
      vp_human_size(dev > end_offset ? dev - end_offset : 0, have_s, sizeof(have_s));
      j->host->warn(j->job,
                    "the qcow2 image on %s ends %s before the end of the device; "
                    "if the snapshot or later guest writes need more, they fail: grow the "
                    "device",
                    j->image, have_s);
    }
    return 0;
  }
  char dir[PATH_MAX];
  struct statvfs sv;
  const char *slash = strrchr(j->image, '/');
  snprintf(dir, sizeof(dir), "%.*s", slash && slash != j->image ? (int)(slash - j->image) : 1,
           j->image);
  if (statvfs(dir, &sv) < 0) {
    int err = errno;
    return j->host->error(j->job, VMSNAP_E_BACKEND, "cannot read the free space of %s: %s", dir,
                          strerror(err));
  }
  uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
  if (avail >= need) return 0;
  vp_human_size(need, need_s, sizeof(need_s));
  vp_human_size(avail, have_s, sizeof(have_s));
  return j->host->error(j->job, VMSNAP_E_NOSPC,
                        "an internal snapshot of %s needs about %s free on its filesystem "
                        "(metadata and refcounts), only %s is free in %s; free some space "
                        "there; nothing was changed",
                        j->image, need_s, have_s, dir);
}

/* The image is readable, qcow2 and intact (one read: q2_info_check). */
int q2_validate(q2_job *j, const char *what, q2_info *inf, uint64_t *end_offset)
{
  int rc = q2_info_check(j, what, inf, end_offset);

  if (rc < 0) return rc;
  if (inf->corrupt)
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "%s: QEMU has marked %s corrupt; nothing was changed; inspect it "
                          "with `qemu-img check -f qcow2 %s`, then restore it from a backup "
                          "or repair it (`-r all`, after copying it)",
                          what, j->image, j->image);
  return 0;
}

static int prepare_create(q2_job *j, const vmsnap_job_info *info)
{
  const char *tag = info->object_name;
  char what[PATH_MAX + 512];
  uint64_t end_offset = 0;
  q2_info inf;
  int rc;

  if (!tag || !*tag || strlen(tag) > 255)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "unusable object name \"%s\" for a qcow2 tag (a bug in the caller)",
                          tag ? tag : "");
  describe(j, what, sizeof(what), "cannot take", tag);
  if ((rc = q2_validate(j, what, &inf, &end_offset)) < 0) goto out;
  if ((rc = q2_refuse_taken_tag(j, &inf, tag, what)) < 0) goto out;
  if ((rc = q2_space_check(j, &inf, end_offset)) < 0) goto out;
  if ((rc = j->host->set(j->job, "tag", tag)) < 0 ||
      (rc = j->host->set(j->job, "image", j->image)) < 0)
    goto out;
out:
  q2_info_free(&inf);
  return rc;
}

/* Finds the snapshot the job's data names; NOT_FOUND (message set) when
 * it is gone, so it cannot be reverted to. */
static int find_for_revert(q2_job *j, const q2_info *inf, const char *what, size_t *idx)
{
  const char *tag = j->host->get(j->job, "tag"), *id = j->host->get(j->job, "id");
  const char *date = j->host->get(j->job, "date");
  char ids[256];

  if (!tag)
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                          "%s: the snapshot records no qcow2 tag; it cannot be reverted to", what);
  size_t n = q2_pick(inf, tag, id, date, idx);
  if (n == 1) return 0;
  q2_ids_with_tag(inf, tag, ids, sizeof(ids));
  if (n > 1)
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "%s: several snapshots in the image are tagged %s (qcow2 ids %s) and "
                          "vmsnap did not record which one it made; nothing was changed; "
                          "delete the ones that are not vmsnap's with qemu-img, then retry",
                          what, tag, ids);
  char when[64];
  q2_date_text(date, when, sizeof(when));
  return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                        "%s: snapshot %s (qcow2 id %s, taken at %s) was removed from %s "
                        "behind vmsnap's back%s%s%s; nothing was changed; it cannot be "
                        "reverted to: drop its record with `snapctl delete %s %s`",
                        what, tag, id ? id : "?", when, j->image,
                        *ids ? " (the snapshot now tagged so, qcow2 id " : "", ids,
                        *ids ? ", is another one)" : "",
                        j->info->disk->domain ? j->info->disk->domain : "DOMAIN",
                        j->info->snapshot_name ? j->info->snapshot_name : "NAME");
}

static int prepare_revert(q2_job *j, const vmsnap_job_info *info)
{
  char what[PATH_MAX + 512];
  q2_info inf;
  size_t idx = 0;
  int rc;

  describe(j, what, sizeof(what), "cannot revert to",
           j->host->get(j->job, "tag") ? j->host->get(j->job, "tag") : "?");
  if ((rc = q2_validate(j, what, &inf, NULL)) == 0) rc = find_for_revert(j, &inf, what, &idx);
  q2_info_free(&inf);
  return rc;
}

/* Before a delete is journaled: the image must be ours to change now (no
 * QEMU holds it), so the delete is refused instead of left half-done. */
static int prepare_delete(q2_job *j)
{
  char what[PATH_MAX + 512];
  q2_info inf;
  describe(j, what, sizeof(what), "cannot delete",
           j->host->get(j->job, "tag") ? j->host->get(j->job, "tag") : "?");
  int rc = q2_info_read(j, 0, what, "stop the process that holds it, then retry", &inf);
  if (rc == 0) q2_info_free(&inf);
  return rc;
}

int q2_prepare(vmsnap_job *job, const vmsnap_job_info *info)
{
  q2_job j;
  int rc, live;

  if (info->kind != VMSNAP_JOB_CREATE && info->kind != VMSNAP_JOB_REVERT &&
      info->kind != VMSNAP_JOB_DELETE)
    return 0;
  if ((live = q2_live_now(job, info)) < 0) return live;
  if (info->kind == VMSNAP_JOB_DELETE) {
    rc = q2_job_init(&j, job, info, 1); /* a missing image: nothing to refuse */
    if (rc == 0 && q2_is_external(job, info))
      rc = live ? q2_live_ext_prepare_delete(&j) : q2_ext_prepare_delete(&j);
    else if (rc == 0 && !live)
      rc = prepare_delete(&j);
    if (rc == 0 && live && j.host->get(job, "tag")) {
      char what[PATH_MAX + 512];
      describe(&j, what, sizeof(what), "cannot delete", j.host->get(job, "tag"));
      rc = q2_live_prepare_delete(&j, what);
    }
    q2_job_dispose(&j);
    return rc < 0 ? rc : 0;
  }
  if (live && info->kind == VMSNAP_JOB_REVERT) {
    /* Refused before anything is read or changed. */
    memset(&j, 0, sizeof(j));
    j.job = job;
    j.host = info->host;
    j.info = info;
    return q2_live_refuse_revert(&j);
  }
  if ((rc = q2_job_init(&j, job, info, 0)) < 0) goto out;
  if (info->kind == VMSNAP_JOB_CREATE && (rc = refuse_unsupported(&j, info->disk)) < 0) goto out;
  if (live && q2_is_external(job, info))
    rc = q2_live_ext_prepare(&j, info);
  else if (live)
    rc = q2_live_prepare_create(&j, info);
  else if (q2_is_external(job, info))
    rc = info->kind == VMSNAP_JOB_CREATE ? q2_ext_prepare(&j, info) : 0; /* revert: phase one */
  else
    rc = info->kind == VMSNAP_JOB_CREATE ? prepare_create(&j, info) : prepare_revert(&j, info);
out:
  q2_job_dispose(&j);
  return rc;
}

/* ---- create ------------------------------------------------------------- */

static int in_info(const q2_info *inf, const char *id)
{
  for (size_t i = 0; i < inf->n; i++)
    if (strcmp(inf->snaps[i].id, id) == 0) return 1;
  return 0;
}

/* After a failed `snapshot -c`: delete any snapshot with our tag that was
 * not there before (before had none: create checked). Best effort; the
 * root cause's message is already recorded. */
static void remove_new(q2_job *j, const char *tag, const q2_info *before)
{
  q2_info inf;
  char what[PATH_MAX + 512];

  describe(j, what, sizeof(what), "cannot clean up", tag);
  for (int tries = 0; tries < 4; tries++) {
    size_t idx = 0, n = 0;
    if (q2_info_read(j, 0, what, "", &inf) < 0) return;
    for (size_t i = 0; i < inf.n; i++)
      if (strcmp(inf.snaps[i].name, tag) == 0 && !in_info(before, inf.snaps[i].id) && n++ == 0)
        idx = i;
    int ok = n && q2_first_with_tag(&inf, tag, idx);
    q2_info_free(&inf);
    if (!ok || q2_snapshot_cmd(j, "-d", tag, what, "") < 0) return;
  }
}

static int record_new(q2_job *j, const char *tag, const q2_info *before, const q2_info *after,
                      const char *what)
{
  char date[48];
  size_t idx = 0, n = 0;
  int rc;

  for (size_t i = 0; i < after->n; i++)
    if (strcmp(after->snaps[i].name, tag) == 0 && !in_info(before, after->snaps[i].id) && n++ == 0)
      idx = i;
  if (n != 1)
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "%s: qemu-img reported success but %zu new snapshots tagged %s are "
                          "in the image; the create is rolled back; check the image with "
                          "`qemu-img snapshot -l`",
                          what, n, tag);
  q2_snap_date(&after->snaps[idx], date, sizeof(date));
  if ((rc = j->host->set(j->job, "id", after->snaps[idx].id)) < 0 ||
      (rc = j->host->set(j->job, "date", date)) < 0)
    return rc;
  j->host->log(j->job, VMSNAP_LOG_INFO, "took internal snapshot %s (qcow2 id %s) of %s", tag,
               after->snaps[idx].id, j->image);
  return 0;
}

int q2_create(vmsnap_job *job, const vmsnap_job_info *info)
{
  const char *tag = info->host->get(job, "tag");
  char what[PATH_MAX + 512];
  q2_info before = {0}, after = {0};
  q2_job j;
  int rc;

  if (q2_is_external(job, info)) {
    if ((rc = q2_job_init(&j, job, info, 0)) == 0)
      rc = info->disk->live && info->host->get(job, "overlay") ? q2_live_ext_create(&j)
                                                               : q2_ext_create(&j);
    q2_job_dispose(&j);
    return rc;
  }

  if (!tag)
    return info->host->error(job, VMSNAP_E_INVALID,
                             "no qcow2 tag was recorded; prepare must run before create");
  if ((rc = q2_job_init(&j, job, info, 0)) < 0) goto out;
  /* QEMU takes it, in the core's transaction; prepare recorded the node
   * when (and only when) it found QEMU serving the disk. */
  if (info->disk->live && info->host->get(job, "node")) {
    rc = q2_live_create(&j, tag);
    goto out;
  }
  describe(&j, what, sizeof(what), "cannot take", tag);
  if (info->host->cancelled(job)) {
    rc = VMSNAP_E_CANCELLED;
    goto out;
  }
  if ((rc = q2_info_read(&j, 0, what, "nothing was changed", &before)) < 0) goto out;
  if (q2_count_tag(&before, tag)) {
    rc = info->host->error(job, VMSNAP_E_EXISTS,
                           "%s: a snapshot tagged %s appeared in the image since the create "
                           "began (made by another tool?); vmsnap leaves it alone; nothing "
                           "was changed",
                           what, tag);
    goto out;
  }
  rc = q2_snapshot_cmd(&j, "-c", tag, what, "the image is unchanged");
  if (rc == VMSNAP_E_CANCELLED) goto cancelled;
  if (rc < 0) {
    remove_new(&j, tag, &before);
    goto out;
  }
  rc = q2_info_read(&j, 0, what,
                    "the snapshot was made but its id is unknown; it is rolled "
                    "back by its tag",
                    &after);
  if (rc == VMSNAP_E_CANCELLED) goto cancelled;
  if (rc == 0 && (rc = record_new(&j, tag, &before, &after, what)) < 0)
    remove_new(&j, tag, &before);
  goto out;

cancelled:
  /* qemu-img was stopped, maybe after it made the snapshot, and a
   * cancelled op can run no more tools to look. Report the disk as made:
   * the core then rolls the cancelled create back through remove, which
   * runs uncancellable and deletes our tag if it is there. */
  info->host->log(job, VMSNAP_LOG_INFO,
                  "create of %s in %s cancelled; leaving the cleanup "
                  "to the rollback",
                  tag, j.image);
  rc = 0;
out:
  q2_info_free(&before);
  q2_info_free(&after);
  q2_job_dispose(&j);
  return rc;
}

/* ---- remove ------------------------------------------------------------- */

/* Deletes the snapshot at idx by its tag (see q2_first_with_tag) and
 * checks that exactly that one went. */
static int delete_one(q2_job *j, const q2_info *inf, size_t idx, const char *what)
{
  const q2_snap *s = &inf->snaps[idx];
  char date[48];
  q2_info after;
  size_t k;
  int rc;

  if (!q2_first_with_tag(inf, s->name, idx)) {
    char ids[256];
    q2_ids_with_tag(inf, s->name, ids, sizeof(ids));
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "%s: the image holds several snapshots tagged %s (qcow2 ids %s) and "
                          "qemu-img deletes by tag only, the first one, which is not vmsnap's "
                          "(vmsnap's is id %s); nothing was changed; delete the other one(s) "
                          "yourself, then run this again",
                          what, s->name, ids, s->id);
  }
  if ((rc = q2_snapshot_cmd(j, "-d", s->name, what, "the snapshot is still there")) < 0) return rc;
  if ((rc = q2_info_read(j, 0, what, "check the image with `qemu-img snapshot -l`", &after)) < 0)
    return rc;
  q2_snap_date(s, date, sizeof(date));
  int gone = q2_pick(&after, s->name, s->id, date, &k) == 0 && after.n + 1 == inf->n;
  for (size_t i = 0; gone && i < inf->n; i++)
    if (i != idx && !in_info(&after, inf->snaps[i].id)) gone = 0;
  q2_info_free(&after);
  if (!gone)
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "%s: after `qemu-img snapshot -d %s` the image's snapshot table is "
                          "not what it should be (snapshot id %s alone removed); check it with "
                          "`qemu-img snapshot -l`",
                          what, s->name, s->id);
  j->host->log(j->job, VMSNAP_LOG_INFO, "deleted internal snapshot %s (qcow2 id %s) of %s", s->name,
               s->id, j->image);
  return 0;
}

int q2_remove(vmsnap_job *job, const vmsnap_job_info *info)
{
  const vmsnap_host *h = info->host;
  const char *tag = h->get(job, "tag"), *id = h->get(job, "id"), *date = h->get(job, "date");
  int rollback = info->kind == VMSNAP_JOB_ROLLBACK, live;
  char what[PATH_MAX + 512], ids[256];
  q2_info inf = {0};
  size_t idx = 0;
  q2_job j;
  int rc;

  if (q2_is_external(job, info)) {
    if ((live = q2_live_now(job, info)) < 0) return live;
    if ((rc = q2_job_init(&j, job, info, 0)) == 0)
      rc = live ? q2_live_ext_remove(&j) : q2_ext_remove(&j);
    q2_job_dispose(&j);
    return rc;
  }
  /* Nothing recorded: prepare never decided a tag, nothing was made. */
  if (!tag) return 0;
  if ((live = q2_live_now(job, info)) < 0) return live;
  rc = q2_job_init(&j, job, info, 1);
  if (rc == 1) {
    const char *img = h->get(job, "image") ? h->get(job, "image") : info->disk->source;
    if (rollback) { /* a rollback must finish: nothing of ours can be left there */
      h->warn(job, "the qcow2 image %s is gone; nothing to roll back in it", img);
      rc = 0;
    } else {
      rc = h->error(job, VMSNAP_E_NOT_FOUND,
                    "the qcow2 image %s that holds snapshot %s does not exist (moved, deleted "
                    "or not mounted?); if it is gone for good, drop the record with `snapctl "
                    "delete %s %s --metadata-only`",
                    img, tag, info->disk->domain ? info->disk->domain : "DOMAIN",
                    info->snapshot_name ? info->snapshot_name : "NAME");
    }
    goto out;
  }
  if (rc < 0) goto out;
  describe(&j, what, sizeof(what), "cannot delete", tag);
  /* A live image is QEMU's: read it without its lock (-U), and let QEMU
   * delete the snapshot. */
  if ((rc = q2_info_read(&j, live, what, "nothing was changed", &inf)) < 0) goto out;
  size_t n = q2_pick(&inf, tag, id, date, &idx);
  q2_ids_with_tag(&inf, tag, ids, sizeof(ids));
  if (n == 0) {
    char when[64];
    q2_date_text(date, when, sizeof(when));
    if (*ids)
      h->warn(job,
              "%s holds a snapshot tagged %s (qcow2 id %s) that is not the one vmsnap "
              "made (id %s, taken at %s), which is gone; it is left alone",
              j.image, tag, ids, id ? id : "unrecorded", when);
    goto out; /* already gone: success */
  }
  if (n > 1) {
    rc = h->error(job, VMSNAP_E_BACKEND,
                  "%s: several snapshots in the image are tagged %s (qcow2 ids %s) and vmsnap "
                  "did not record which one it made (its create stopped before that); "
                  "nothing was changed; delete the extra one(s) yourself, then run `snapctl "
                  "%s` again",
                  what, tag, ids, rollback ? "recover" : "delete");
    goto out;
  }
  if (inf.snaps[idx].vm_state_size > 0) {
    /* vmsnap's snapshots hold disks only; VM state is never dropped
     * unseen. */
    h->warn(job,
            "snapshot %s (qcow2 id %s) in %s holds VM state (%llu bytes, made by "
            "savevm), which vmsnap never makes; it is left in the image: delete it yourself "
            "if it is not needed",
            tag, inf.snaps[idx].id, j.image, (unsigned long long)inf.snaps[idx].vm_state_size);
    goto out;
  }
  rc = live ? q2_live_delete(&j, &inf, idx, what) : delete_one(&j, &inf, idx, what);
out:
  q2_info_free(&inf);
  q2_job_dispose(&j);
  return rc;
}

/* ---- revert ------------------------------------------------------------- */

/* What both revert phases start with: the job, refusal of a live disk
 * (prepare refuses it already), and the snapshot's place in the table.
 * Returns 0 with *j, *inf and *idx set (dispose both), or an error. */
static int revert_locate(vmsnap_job *job, const vmsnap_job_info *info, const char *hint,
                         q2_job *j, q2_info *inf, size_t *idx, char *what, size_t whatlen)
{
  int rc = q2_job_init(j, job, info, 0);
  if (rc < 0) return rc;
  if ((rc = q2_live_now(job, info)) != 0) return rc > 0 ? q2_live_refuse_revert(j) : rc;
  describe(j, what, whatlen, "cannot revert to",
           info->host->get(job, "tag") ? info->host->get(job, "tag") : "?");
  if ((rc = q2_info_read(j, 0, what, hint, inf)) < 0) return rc;
  return find_for_revert(j, inf, what, idx);
}

/* An external snapshot's step, on a job bound to the disk. */
static int ext_step(vmsnap_job *job, const vmsnap_job_info *info, int (*step)(q2_job *))
{
  q2_job j;
  int rc = q2_job_init(&j, job, info, 0);
  if (rc == 0) rc = step(&j);
  q2_job_dispose(&j);
  return rc;
}

/* Applying an internal snapshot to an image that other images are backed
 * by (it became an external snapshot's layer) would change what they see
 * under their own data: corrupt them. */
static int refuse_backing_file(q2_job *j, const char *what)
{
  q2_chain c;
  size_t n = 0;
  int rc = q2_chain_read(j, j->info->disk->source, &c, what);
  if (rc < 0) return rc;
  n = q2_chain_children(&c, j->image, NULL);
  q2_chain_free(&c);
  if (!n) return 0;
  return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                        "%s: %s has since become the backing file of %zu image(s) (an external "
                        "snapshot froze it); applying a snapshot inside it would corrupt them; "
                        "nothing was changed; revert to the external snapshot instead",
                        what, j->image, n);
}

/* Phase one changes nothing: it checks that the snapshot is still there.
 * Applying an internal snapshot cannot be staged; it is phase two. */
int q2_revert(vmsnap_job *job, const vmsnap_job_info *info)
{
  char what[PATH_MAX + 512];
  q2_info inf = {0};
  size_t idx = 0;
  q2_job j = {0};
  int rc;

  if (q2_is_external(job, info)) return ext_step(job, info, q2_ext_revert);
  rc = info->host->cancelled(job) ? VMSNAP_E_CANCELLED
                                  : revert_locate(job, info, "nothing was changed", &j, &inf,
                                                  &idx, what, sizeof(what));
  if (rc == 0) rc = refuse_backing_file(&j, what);
  q2_info_free(&inf);
  q2_job_dispose(&j);
  return rc;
}

/* Phase two: `qemu-img snapshot -a ID` (qemu-img looks an ID up before a
 * tag). Applying the same snapshot twice gives the same image, so a
 * restart after a crash simply applies it again. */
int q2_revert_finish(vmsnap_job *job, const vmsnap_job_info *info)
{
  char what[PATH_MAX + 512];
  q2_info inf = {0};
  size_t idx = 0;
  q2_job j;

  if (q2_is_external(job, info)) return ext_step(job, info, q2_ext_revert_finish);
  int rc = revert_locate(job, info,
                         "the image is unchanged; fix this and run `snapctl recover`", &j,
                         &inf, &idx, what, sizeof(what));
  if (rc == 0)
    rc = q2_snapshot_cmd(&j, "-a", inf.snaps[idx].id, what,
                         "fix this and run `snapctl recover` to finish the revert");
  if (rc == 0)
    info->host->log(job, VMSNAP_LOG_INFO, "applied internal snapshot %s (qcow2 id %s) to %s",
                    inf.snaps[idx].name, inf.snaps[idx].id, j.image);
  q2_info_free(&inf);
  q2_job_dispose(&j);
  return rc;
}

int q2_revert_abort(vmsnap_job *job, const vmsnap_job_info *info)
{
  /* Internal: phase one changed nothing. */
  return q2_is_external(job, info) ? ext_step(job, info, q2_ext_revert_abort) : 0;
}

/* ---- list --------------------------------------------------------------- */

static void list_one(q2_job *j, const q2_info *inf, const q2_snap *s)
{
  char name[512], note[256];
  size_t shared = q2_count_tag(inf, s->name);
  int n = 0;

  if (s->vm_state_size > 0)
    n = snprintf(note, sizeof(note), "holds VM state (%llu bytes, made by savevm); ",
                 (unsigned long long)s->vm_state_size);
  snprintf(note + n, sizeof(note) - (size_t)n, "qcow2 id %s%s", s->id,
           shared > 1 ? "; its tag is shared with other snapshots" : "");
  vmsnap_list_entry e = {
      .struct_size = sizeof(e),
      .object = s->name, /* what prepare recorded as "tag" */
      .snapshot_name = q2_decode_tag(s->name, name, sizeof(name)) ? name : NULL,
      .ctime_sec = s->date_sec,
      .size = s->vm_state_size,
      .note = note,
  };
  j->host->list_entry(j->job, &e);
}

int q2_list(vmsnap_job *job, const vmsnap_job_info *info)
{
  char what[PATH_MAX + 64];
  q2_info inf = {0};
  q2_job j;
  int rc;

  if ((rc = q2_job_init(&j, job, info, 0)) < 0) goto out;
  snprintf(what, sizeof(what), "cannot list the snapshots of %s", j.image);
  /* -U: reading the table of an image a QEMU holds changes nothing. */
  if ((rc = q2_info_read(&j, 1, what, "the list shows recorded snapshots only", &inf)) < 0)
    goto out;
  for (size_t i = 0; i < inf.n; i++) list_one(&j, &inf, &inf.snaps[i]);
  q2_ext_list(&j);
out:
  q2_info_free(&inf);
  q2_job_dispose(&j);
  return rc;
}
