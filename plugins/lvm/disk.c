/* disk.c — which LV a disk is (libdevmapper: its uuid says it is an LV,
 * its name which one), and whether an LV is one this job's snapshot made. */
#include "lvm.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static const char *disk_path(const lv_job *j)
{
  const vmsnap_disk *d = j->info->disk;
  if (d->struct_size >= offsetof(vmsnap_disk, active) + sizeof(d->active) && d->active)
    return d->active;
  return d->source;
}

int lv_resolve_disk(const lv_job *j, lv_origin *o)
{
  const char *path = disk_path(j);
  struct stat st;
  lvdm_state dm;
  memset(o, 0, sizeof *o);
  if (!path || stat(path, &st) < 0)
    return j->host->error(j->job, errno == ENOENT ? VMSNAP_E_NOT_FOUND : VMSNAP_E_BACKEND,
                          "cannot access %s: %s; is the logical volume active "
                          "(lvchange -ay VG/LV)?",
                          path ? path : "(none)", strerror(errno));
  if (!S_ISBLK(st.st_mode) || !lvdm_is_dm_major(major(st.st_rdev)))
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "%s is not a device-mapper "
                          "block device, so not a logical volume; use another backend",
                          path);
  if (lvdm_read(NULL, major(st.st_rdev), minor(st.st_rdev), 0, &dm) < 0 || !dm.exists)
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "device-mapper does not answer "
                          "for %s (%u:%u); is dm-mod loaded and /dev/mapper/control there?",
                          path, major(st.st_rdev), minor(st.st_rdev));
  if (strncmp(dm.uuid, "LVM-", 4) != 0 || strlen(dm.uuid) != 68)
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "%s (device-mapper %s) is "
                          "not a logical volume of LVM%s",
                          path, dm.name,
                          strncmp(dm.uuid, "LVM-", 4) == 0 ? " but an internal layer of one" : "");
  if (lv_dm_split(dm.name, o->vg, sizeof o->vg, o->name, sizeof o->name) < 0)
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "cannot tell the volume group "
                          "and LV from the device-mapper name %s",
                          dm.name);
  snprintf(o->dm_uuid, sizeof o->dm_uuid, "%s", dm.uuid);
  o->major = major(st.st_rdev);
  o->minor = minor(st.st_rdev);
  return 0;
}

int lv_snapshot_tag(const lv_job *j, char *buf, size_t len)
{
  const char *u = j->info->snapshot_uuid;
  if (!u || !*u || strlen(u) > 64 || strspn(u, "0123456789abcdefABCDEF-") != strlen(u))
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the job has no usable snapshot "
                          "uuid (a bug in the caller of the lvm plugin)");
  snprintf(buf, len, LV_TAG "-%s", u);
  return 0;
}

int lv_is_ours(const lv_job *j, const lv_info *lv)
{
  const char *uuid = j->host->get(j->job, "lv-uuid");
  char tag[96];
  if (uuid && !strcmp(uuid, lv->uuid)) return 1;
  /* Before create recorded the uuid (a crash inside it), or after a kept
   * revert made a new one: our tag for this snapshot. */
  return lv_snapshot_tag(j, tag, sizeof tag) == 0 && lv_has_tag(lv, tag);
}

int lv_recorded(const lv_job *j, char *vg, size_t vglen, char *name, size_t nlen)
{
  const char *full = j->host->get(j->job, "lv");
  const char *slash = full ? strchr(full, '/') : NULL;
  if (!slash || (size_t)(slash - full) >= vglen || strlen(slash + 1) >= nlen ||
      !lv_name_valid(slash + 1, NULL))
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the snapshot records no usable "
                          "logical volume (\"lv\" is %s)",
                          full ? full : "missing");
  snprintf(vg, vglen, "%.*s", (int)(slash - full), full);
  snprintf(name, nlen, "%s", slash + 1);
  if (!lv_name_valid(vg, NULL))
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the recorded volume group name "
                          "%s is not valid",
                          vg);
  return 0;
}

const char *lv_disk_option(const lv_job *j, const char *key)
{
  const vmsnap_disk *d = j->info->disk;
  /* An older core's disk ends before options. */
  if (d->struct_size < offsetof(vmsnap_disk, options) + sizeof(d->options) || !d->options)
    return NULL;
  for (size_t i = 0; d->options[i] && d->options[i + 1]; i += 2)
    if (!strcmp(d->options[i], key)) return d->options[i + 1];
  return NULL;
}

int lv_active_uuid(const char *vg, const char *name, char *out, size_t len)
{
  char dm[300];
  lvdm_state st;
  if (lv_dm_name(vg, name, NULL, dm, sizeof dm) < 0 || lvdm_read(dm, 0, 0, 0, &st) < 0 ||
      !st.exists || strncmp(st.uuid, "LVM-", 4) != 0 || strlen(st.uuid) != 68)
    return -1;
  return lv_uuid_format(st.uuid + 36, out, len);
}
