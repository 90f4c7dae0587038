/* qcow2.c — the qcow2 backend: internal snapshots (inside the image) and
 * external ones (a new overlay on the frozen image), offline with qemu-img
 * and live through QEMU (QMP). The files: qcow2.h; the ops: ops.c. */
#define _GNU_SOURCE
#include "qcow2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Above dd (10), which would copy a qcow2 image as raw bytes. */
#define Q2_SCORE 50

/* available() runs without a job, so it cannot spawn: look for qemu-img
 * on PATH the way the core's spawn will (an unset PATH means the
 * default search path, as for execvp). */
static int q2_available(char *why, size_t whylen)
{
  const char *path = getenv("PATH");
  char dir[PATH_MAX], file[PATH_MAX];

  if (!path || !*path) path = "/bin:/usr/bin";
  for (const char *p = path; *p;) {
    size_t n = strcspn(p, ":");
    if (n == 0)
      snprintf(dir, sizeof(dir), ".");
    else
      snprintf(dir, sizeof(dir), "%.*s", (int)n, p);
    if ((size_t)snprintf(file, sizeof(file), "%s/qemu-img", dir) < sizeof(file) &&
        access(file, X_OK) == 0)
      return 1;
    p += n;
    if (*p == ':') p++;
  }
  snprintf(why, whylen, "qemu-img not found on PATH: install qemu-utils");
  return 0;
}

static int q2_probe(const vmsnap_disk *disk)
{
  struct stat sb;

  if (!disk || !disk->format || strcmp(disk->format, "qcow2") != 0) return 0;
  if (stat(disk->source, &sb) < 0) return 0;
  return S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode) ? Q2_SCORE : 0;
}

static uint64_t q2_capabilities(const vmsnap_disk *disk)
{
  /* qemu-img (and QEMU) revert and delete any snapshot and keep the
   * others; no EXTERNAL yet. */
  const uint64_t base = VMSNAP_CAP_INTERNAL | VMSNAP_CAP_REVERT_KEEPS_NEWER |
                        VMSNAP_CAP_DELETE_ANY | VMSNAP_CAP_LIST | VMSNAP_CAP_BLOCK_DEVICE;

  /* External: overlays on frozen layers, offline; merges report progress
   * and can be cancelled while they change no snapshot (chain.c). */
  const uint64_t ext = VMSNAP_CAP_EXTERNAL | VMSNAP_CAP_REVERT_KEEPS_NEWER |
                       VMSNAP_CAP_DELETE_ANY | VMSNAP_CAP_LIST | VMSNAP_CAP_PROGRESS |
                       VMSNAP_CAP_CANCEL;

  /* At best (disk == NULL): live, no pause. */
  if (!disk) return base | ext | VMSNAP_CAP_LIVE_QMP;
  if (disk->mode && strcmp(disk->mode, "external") == 0)
    return disk->live ? ext | VMSNAP_CAP_LIVE_QMP : ext | VMSNAP_CAP_NEEDS_PAUSE;
  /* A live disk: QEMU takes the snapshot in one atomic transaction with
   * the other disks (blockdev-snapshot-internal-sync), no pause needed. */
  if (disk->live) {
    if (disk->mode && strcmp(disk->mode, "internal") != 0) return base;
    return base | VMSNAP_CAP_LIVE_QMP;
  }
  /* Offline with qemu-img: nothing may run on the image meanwhile. */
  return base | VMSNAP_CAP_NEEDS_PAUSE;
}

static const vmsnap_plugin q2_plugin = {
    .name = "qcow2",
    .version = "0.1",
    .description = "qcow2 snapshots: internal and external (overlays), offline with "
                   "qemu-img or live through QEMU",
    .available = q2_available,
    .probe = q2_probe,
    .capabilities = q2_capabilities,
    .prepare = q2_prepare,
    .create = q2_create,
    .remove = q2_remove,
    .revert = q2_revert,
    .revert_finish = q2_revert_finish,
    .revert_abort = q2_revert_abort,
    .list = q2_list,
    .live_done = q2_live_done,
};

VMSNAP_REGISTER_PLUGIN(q2_plugin)
