/* live.c — internal snapshots of a qcow2 image a running QEMU serves
 * (disk->live): QEMU makes and deletes them, vmsnap only reads the
 * snapshot table (qemu-img info -U: QEMU holds the image's lock, and
 * reading changes nothing).
 *
 *   create  prepare checks the tag is free and records tag, image and
 *           node; create adds a blockdev-snapshot-internal-sync action
 *           to the core's ONE transaction for all disks; live_done
 *           records the new snapshot's qcow2 id and date.
 *   remove  blockdev-snapshot-delete-internal-sync by id AND name, on the
 *           root node that serves the image (query-block).
 *   revert  refused: a running guest cannot have its disk changed under
 *           it; that needs the memory snapshot too.
 * A disk recorded live whose op runs without a QMP channel (QEMU shut
 * down, the domain worked on offline by its key) takes the offline path
 * (q2_live_now). */
#define _GNU_SOURCE
#include "qcow2.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The host (an older libvmsnap may predate a service) offers field f. */
#define HOST_HAS(h, f)                                                                             \
  ((h)->struct_size >= offsetof(vmsnap_host, f) + sizeof((h)->f) && (h)->f != NULL)

static const char *domain_of(const q2_job *j)
{
  return j->info->disk->domain ? j->info->disk->domain : "DOMAIN";
}

static int no_service(q2_job *j, const char *what, const char *service)
{
  return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                        "%s: this libvmsnap gives backends no QMP service (%s), which a live "
                        "qcow2 snapshot needs; nothing was changed; use a libvmsnap that matches "
                        "this plugin",
                        what, service);
}

/* Whether a running QEMU serves the disk now: 1, or 0 when the disk is
 * not live, or was recorded live but the op runs without a QMP channel
 * (QEMU was shut down and the domain is worked on offline: the offline
 * path then runs, and qemu-img's locks refuse an image that some process
 * still holds), or an error (a monitor held by another client: BUSY). */
int q2_live_now(vmsnap_job *job, const vmsnap_job_info *info)
{
  const vmsnap_host *h = info->host;
  char *ret = NULL;
  int rc;

  if (!info->disk->live) return 0;
  if (!HOST_HAS(h, qmp_command)) return 1; /* the create path says what is missing */
  rc = h->qmp_command(job, "query-version", "{}", &ret);
  free(ret);
  if (rc == 0) return 1;
  if (rc != VMSNAP_E_UNSUPPORTED) return rc;
  h->log(job, VMSNAP_LOG_INFO,
         "%s was served by QEMU (node %s) but no QEMU monitor serves this domain now: "
         "working on the image offline",
         info->disk->source, info->disk->node_name ? info->disk->node_name : "?");
  return 0;
}

int q2_live_refuse_revert(q2_job *j)
{
  return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                        "cannot revert %s while QEMU runs it (node %s): reverting a running "
                        "domain needs its memory snapshot (coming with the qmp memory support); "
                        "shut QEMU down and revert the disks offline; nothing was changed",
                        j->image[0] ? j->image : j->info->disk->source,
                        j->info->disk->node_name ? j->info->disk->node_name : "?");
}

/* ---- create ------------------------------------------------------------- */

int q2_live_prepare_create(q2_job *j, const vmsnap_job_info *info)
{
  const vmsnap_disk *d = info->disk;
  const char *tag = info->object_name;
  char what[PATH_MAX + 512];
  q2_info inf = {0};
  int rc;

  if (!d->node_name || !*d->node_name)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "%s is live but the core gave no QEMU node name for it (a bug in "
                          "the domain driver); nothing was changed",
                          j->image);
  if (!tag || !*tag || strlen(tag) > 255)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "unusable object name \"%s\" for a qcow2 tag (a bug in the caller)",
                          tag ? tag : "");
  if (!HOST_HAS(j->host, qmp_action)) {
    snprintf(what, sizeof(what), "cannot take snapshot %s of %s", tag, j->image);
    return no_service(j, what, "qmp_action");
  }
  snprintf(what, sizeof(what), "cannot take snapshot %s of %s (QEMU node %s)", tag, j->image,
           d->node_name);
  /* -U: QEMU holds the image; reading its table changes nothing. The
   * image's consistency is QEMU's business while it runs it (qemu-img
   * check of an image in use would see stale metadata). */
  if ((rc = q2_info_read(j, 1, what, "nothing was changed", &inf)) < 0) goto out;
  if (inf.corrupt) {
    rc = j->host->error(j->job, VMSNAP_E_BACKEND,
                        "%s: QEMU has marked %s corrupt; nothing was changed; shut QEMU down "
                        "and inspect it with `qemu-img check -f qcow2 %s`",
                        what, j->image, j->image);
    goto out;
  }
  if ((rc = q2_refuse_taken_tag(j, &inf, tag, what)) < 0) goto out;
  if ((rc = q2_space_check(j, &inf, 0)) < 0) goto out;
  if ((rc = j->host->set(j->job, "tag", tag)) < 0 ||
      (rc = j->host->set(j->job, "image", j->image)) < 0 ||
      (rc = j->host->set(j->job, "node", d->node_name)) < 0)
    goto out;
out:
  q2_info_free(&inf);
  return rc;
}

int q2_live_create(q2_job *j, const char *tag)
{
  const char *node = j->host->get(j->job, "node");
  json_t *data;
  char *text;
  int rc;

  if (!node) node = j->info->disk->node_name;
  if (!node || !*node)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "no QEMU node was recorded for %s; prepare must run before create",
                          j->image);
  if (!HOST_HAS(j->host, qmp_action)) {
    char what[PATH_MAX + 512];
    snprintf(what, sizeof(what), "cannot take snapshot %s of %s", tag, j->image);
    return no_service(j, what, "qmp_action");
  }
  if (j->host->cancelled(j->job)) return VMSNAP_E_CANCELLED;
  /* "device" takes a node name too; nodes, never device names, are
   * addressed (-blockdev setups and Xen's device models leave it ""). */
  data = json_pack("{s:s, s:s}", "device", node, "name", tag);
  text = data ? json_dumps(data, JSON_COMPACT) : NULL;
  json_decref(data);
  if (!text) return j->host->error(j->job, VMSNAP_E_NOMEM, "out of memory");
  rc = j->host->qmp_action(j->job, "blockdev-snapshot-internal-sync", text);
  free(text);
  if (rc == 0)
    j->host->log(j->job, VMSNAP_LOG_DEBUG,
                 "internal snapshot %s of %s (node %s) queued for the "
                 "transaction",
                 tag, j->image, node);
  return rc;
}

/* The transaction ran. It is all or nothing: on failure no disk got a
 * snapshot, and nothing was recorded beyond the tag (a transaction that
 * timed out may still have run in QEMU: the rollback deletes our tag if
 * it is there). On success: the new snapshot's id and date. */
int q2_live_done(vmsnap_job *job, const vmsnap_job_info *info, int rc, const char *return_json)
{
  const vmsnap_host *h = info->host;
  const char *tag = h->get(job, "tag");
  char what[PATH_MAX + 512], date[48], ids[256];
  q2_info inf = {0};
  size_t idx = 0, n = 0;
  q2_job j;

  (void)return_json; /* blockdev-snapshot-internal-sync returns {} */
  if (q2_is_external(job, info)) {
    if (q2_job_init(&j, job, info, 0) == 0) q2_live_ext_done(&j, rc);
    q2_job_dispose(&j);
    return 0;
  }
  if (rc != 0 || !tag) return 0;
  if ((rc = q2_job_init(&j, job, info, 0)) < 0) goto out;
  snprintf(what, sizeof(what), "QEMU took snapshot %s of %s, but", tag, j.image);
  rc = q2_info_read(&j, 1, what, "its qcow2 id is unknown; the create is rolled back", &inf);
  if (rc < 0) goto out;
  for (size_t i = 0; i < inf.n; i++)
    if (strcmp(inf.snaps[i].name, tag) == 0 && n++ == 0) idx = i;
  if (n != 1) {
    q2_ids_with_tag(&inf, tag, ids, sizeof(ids));
    rc = h->error(job, VMSNAP_E_BACKEND,
                  "%s the image holds %zu snapshots tagged %s (qcow2 ids %s) instead of one; "
                  "the create is rolled back; check the image with `qemu-img snapshot -l -U %s`",
                  what, n, tag, *ids ? ids : "none", j.image);
    goto out;
  }
  q2_snap_date(&inf.snaps[idx], date, sizeof(date));
  if ((rc = h->set(job, "id", inf.snaps[idx].id)) < 0 || (rc = h->set(job, "date", date)) < 0)
    goto out;
  h->log(job, VMSNAP_LOG_INFO, "QEMU took internal snapshot %s (qcow2 id %s) of %s", tag,
         inf.snaps[idx].id, j.image);
out:
  q2_info_free(&inf);
  q2_job_dispose(&j);
  return rc;
}

/* ---- remove ------------------------------------------------------------- */

/* The root node of this QEMU that serves j->image: the recorded node (or
 * the disk's) when it still does, else the one node that does (QEMU was
 * restarted with other node names: the snapshot lives in the image, not
 * in the node). VMSNAP_E_NOT_FOUND (message set) when no node serves it. */
static int find_node(q2_job *j, const char *what, char *node, size_t len)
{
  const char *want = j->host->get(j->job, "node");
  char *ret = NULL, real[PATH_MAX], seen[512] = "";
  json_t *devs, *dev;
  size_t i, nseen = 0, nmatch = 0;
  int rc, want_here = 0;

  if (!want) want = j->info->disk->node_name;
  if (!HOST_HAS(j->host, qmp_command)) return no_service(j, what, "qmp_command");
  if ((rc = j->host->qmp_command(j->job, "query-block", "{}", &ret)) < 0) {
    free(ret);
    return rc;
  }
  devs = json_loads(ret ? ret : "", JSON_DECODE_ANY, NULL);
  free(ret);
  node[0] = '\0';
  json_array_foreach(devs, i, dev)
  {
    json_t *ins = json_object_get(dev, "inserted");
    const char *nn = json_string_value(json_object_get(ins, "node-name"));
    const char *file = json_string_value(json_object_get(ins, "file"));
    if (!nn || !file) continue;
    int serves = realpath(file, real) && strcmp(real, j->image) == 0;
    if (want && strcmp(nn, want) == 0) want_here = 1;
    if (!serves) continue;
    if (nseen < 4) {
      size_t k = strlen(seen);
      snprintf(seen + k, sizeof(seen) - k, "%s%s", k ? ", " : "", nn);
    }
    nseen++;
    if (want && strcmp(nn, want) == 0) {
      snprintf(node, len, "%s", nn);
      nmatch = 1;
      break;
    }
    if (nmatch++ == 0) snprintf(node, len, "%s", nn);
  }
  json_decref(devs);
  if (nmatch == 1) {
    if (want && strcmp(node, want) != 0)
      j->host->log(j->job, VMSNAP_LOG_INFO,
                   "%s was recorded on QEMU node %s; it is now served "
                   "by node %s",
                   j->image, want, node);
    return 0;
  }
  if (nmatch > 1)
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "%s: QEMU block node %s no longer exists, and several nodes (%s) serve "
                          "%s; nothing was changed; delete the snapshot with QMP "
                          "blockdev-snapshot-delete-internal-sync yourself, or shut QEMU down "
                          "and delete it offline",
                          what, want ? want : "?", seen, j->image);
  return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                        "%s: QEMU block node %s %s in the running QEMU (domain %s), and none "
                        "of its nodes serves %s (was the disk unplugged or replaced, or QEMU "
                        "restarted with another disk?); nothing was changed; shut QEMU down "
                        "and delete the snapshot offline, or give QEMU the image back",
                        what, want ? want : "(none recorded)",
                        want_here ? "serves another image" : "no longer exists", domain_of(j),
                        j->image);
}

/* Before a delete is journaled: the image is readable and a node of the
 * running QEMU serves it. No lock is taken: QEMU holds the image. */
int q2_live_prepare_delete(q2_job *j, const char *what)
{
  char node[256];
  q2_info inf;
  int rc = q2_info_read(j, 1, what, "nothing was changed", &inf);

  if (rc == 0) q2_info_free(&inf);
  if (rc == 0) rc = find_node(j, what, node, sizeof(node));
  return rc;
}

/* The table after QEMU deleted (or failed to delete) snapshot s: 1 when
 * s is gone and every other snapshot is still there, 0 when s is there,
 * -1 when the table changed otherwise. */
static int check_gone(q2_job *j, const q2_info *before, size_t idx, const char *what, int *state)
{
  const q2_snap *s = &before->snaps[idx];
  char date[48];
  q2_info after;
  size_t k;
  int rc = q2_info_read(j, 1, what, "check the image with `qemu-img snapshot -l -U`", &after);

  if (rc < 0) return rc;
  q2_snap_date(s, date, sizeof(date));
  if (q2_pick(&after, s->name, s->id, date, &k) > 0) {
    *state = 0;
  } else {
    *state = 1;
    for (size_t i = 0; i < before->n; i++) {
      int there = 0;
      if (i == idx) continue;
      for (size_t m = 0; m < after.n; m++)
        if (strcmp(after.snaps[m].id, before->snaps[i].id) == 0) there = 1;
      if (!there) *state = -1;
    }
  }
  q2_info_free(&after);
  return 0;
}

/* Deletes the snapshot the job's data names, through QEMU. The table was
 * read (inf) and the snapshot found at idx. */
int q2_live_delete(q2_job *j, const q2_info *inf, size_t idx, const char *what)
{
  const q2_snap *s = &inf->snaps[idx];
  char node[256], *text;
  json_t *args;
  int rc, qrc, state = 0;

  if ((rc = find_node(j, what, node, sizeof(node))) < 0) return rc;
  /* By id AND name: QEMU deletes exactly that one, whatever other
   * snapshots share its tag. */
  args = json_pack("{s:s, s:s, s:s}", "device", node, "id", s->id, "name", s->name);
  text = args ? json_dumps(args, JSON_COMPACT) : NULL;
  json_decref(args);
  if (!text) return j->host->error(j->job, VMSNAP_E_NOMEM, "out of memory");
  qrc = j->host->qmp_command(j->job, "blockdev-snapshot-delete-internal-sync", text, NULL);
  free(text);
  /* Whatever QEMU answered, the table says what happened: a snapshot that
   * was already gone ("does not exist") is success. */
  if ((rc = check_gone(j, inf, idx, what, &state)) < 0) return qrc < 0 ? qrc : rc;
  if (state == 1) {
    j->host->log(j->job, VMSNAP_LOG_INFO, "%s internal snapshot %s (qcow2 id %s) of %s (node %s)",
                 qrc < 0 ? "QEMU found no" : "QEMU deleted", s->name, s->id, j->image, node);
    return 0;
  }
  if (qrc < 0) return qrc; /* QEMU's message is set */
  return j->host->error(j->job, VMSNAP_E_BACKEND,
                        "%s: after QEMU's blockdev-snapshot-delete-internal-sync the image's "
                        "snapshot table is not what it should be (snapshot id %s alone "
                        "removed); check it with `qemu-img snapshot -l -U %s`",
                        what, s->id, j->image);
}
