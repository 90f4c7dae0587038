/* dmstatus.c — status reads through libdevmapper, in-process: is a block
 * device an LV, who has it open, how full a snapshot is, how far a merge
 * has come. Nothing here changes a device: changes go through lvm(8).
 *
 * libdevmapper keeps process-wide state (its control fd, caches) and does
 * not promise thread safety, while jobs of this plugin run on several
 * threads at once: every call is made under one lock. Its log function is
 * left alone (it is the process's, which may be a host's that uses
 * libdevmapper too); a missing device is asked with DM_DEVICE_INFO first,
 * which does not log. */
#include "lvm.h"

#include <libdevmapper.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t dm_lock = PTHREAD_MUTEX_INITIALIZER;

int lvdm_is_dm_major(uint32_t major)
{
  pthread_mutex_lock(&dm_lock);
  int r = dm_is_dm_major(major);
  pthread_mutex_unlock(&dm_lock);
  return r;
}

static struct dm_task *task(int type, const char *name, uint32_t major, uint32_t minor)
{
  struct dm_task *t = dm_task_create(type);
  if (!t) return NULL;
  int ok = name ? dm_task_set_name(t, name)
                : dm_task_set_major(t, (int)major) && dm_task_set_minor(t, (int)minor);
  if (!ok || !dm_task_run(t)) {
    dm_task_destroy(t);
    return NULL;
  }
  return t;
}

static int read_status(lvdm_state *st)
{
  struct dm_task *t = task(DM_DEVICE_STATUS, NULL, st->major, st->minor);
  uint64_t start, length;
  char *type = NULL, *params = NULL;
  if (!t) return -1;
  dm_get_next_target(t, NULL, &start, &length, &type, &params);
  snprintf(st->target, sizeof st->target, "%s", type ? type : "");
  snprintf(st->params, sizeof st->params, "%s", params ? params : "");
  dm_task_destroy(t);
  return 0;
}

int lvdm_read(const char *name, uint32_t major, uint32_t minor, int with_status, lvdm_state *st)
{
  struct dm_info info;
  int rc = -1;
  memset(st, 0, sizeof *st);
  pthread_mutex_lock(&dm_lock);
  struct dm_task *t = task(DM_DEVICE_INFO, name, major, minor);
  if (!t || !dm_task_get_info(t, &info)) goto out;
  rc = 0;
  if (!info.exists) goto out;
  st->exists = 1;
  st->open_count = info.open_count;
  st->major = (uint32_t)info.major;
  st->minor = (uint32_t)info.minor;
  const char *n = dm_task_get_name(t), *u = dm_task_get_uuid(t);
  snprintf(st->name, sizeof st->name, "%s", n ? n : "");
  snprintf(st->uuid, sizeof st->uuid, "%s", u ? u : "");
  if (with_status && read_status(st) < 0) rc = -1;
out:
  if (t) dm_task_destroy(t);
  pthread_mutex_unlock(&dm_lock);
  return rc;
}

int lvdm_parse_snapshot_status(const char *params, uint64_t *alloc, uint64_t *total,
                             uint64_t *meta)
{
  uint64_t a, t, m;
  if (!params || sscanf(params, "%" SCNu64 "/%" SCNu64 " %" SCNu64, &a, &t, &m) != 3 || t == 0 ||
      a > t || m > a)
    return -1;
  *alloc = a;
  *total = t;
  *meta = m;
  return 0;
}

int lvdm_table(uint32_t major, uint32_t minor, lvdm_table_info *out)
{
  uint64_t start, length;
  char *type = NULL, *params = NULL;
  void *next = NULL;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&dm_lock);
  struct dm_task *t = task(DM_DEVICE_TABLE, NULL, major, minor);
  if (!t) {
    pthread_mutex_unlock(&dm_lock);
    return -1;
  }
  int first = 1;
  do {
    next = dm_get_next_target(t, next, &start, &length, &type, &params);
    if (!type) break;
    out->sectors += length;
    if (first) {
      snprintf(out->type, sizeof out->type, "%s", type);
      snprintf(out->params, sizeof out->params, "%s", params ? params : "");
      first = 0;
    } else if (strcmp(out->type, type) != 0) {
      out->type[0] = '\0'; /* segments of several kinds */
    }
  } while (next);
  dm_task_destroy(t);
  pthread_mutex_unlock(&dm_lock);
  return first ? -1 : 0;
}

int lvdm_parse_pool_status(const char *params, uint64_t *used, uint64_t *total)
{
  uint64_t tid, mu, mt, du, dt;
  if (!params || sscanf(params, "%" SCNu64 " %" SCNu64 "/%" SCNu64 " %" SCNu64 "/%" SCNu64, &tid,
                        &mu, &mt, &du, &dt) != 5 || dt == 0 || du > dt)
    return -1;
  *used = du;
  *total = dt;
  return 0;
}
