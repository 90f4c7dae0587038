/* list.c — the snapshots of a disk found on storage, with the subvolume
 * iterator: every subvolume in the disk's snapshot directory (vmsnap's, and
 * anything put there), and every snapshot of the disk's subvolume made
 * elsewhere by another tool (snapper, btrfs subvolume snapshot). The core
 * shows the ones no snapshot records as foreign. */
#define _GNU_SOURCE
#include "btrfs.h"

#include <btrfsutil.h>
#include <linux/btrfs_tree.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The root directory of the subvolume that holds dir: the nearest
 * ancestor (or dir) whose inode is a subvolume root. */
static int subvol_root(const char *dir, char *buf, size_t len)
{
  char p[PATH_MAX], up[PATH_MAX];
  struct stat st;
  snprintf(p, sizeof p, "%s", dir);
  for (;;) {
    if (stat(p, &st) < 0) return -errno;
    if (st.st_ino == BT_SUBVOL_INO || strcmp(p, "/") == 0) break;
    if (bt_parent_dir(p, up, sizeof up) < 0) return -ENAMETOOLONG;
    snprintf(p, sizeof p, "%s", up);
  }
  return snprintf(buf, len, "%s", p) >= (int)len ? -ENAMETOOLONG : 0;
}

/* "vmsnap-before+20upgrade" -> "before upgrade"; NULL for a name without
 * the mark or a shortened one (+H and a hash: the name is lost). */
static int decode_mark(const char *obj, char *out, size_t len)
{
  size_t plen = strlen(BT_MARK), o = 0;
  if (strncmp(obj, BT_MARK, plen) != 0 || !obj[plen]) return -1;
  for (const char *p = obj + plen; *p; p++) {
    unsigned v;
    if (o + 1 >= len) return -1;
    if (*p != '+') {
      out[o++] = *p;
    } else if (sscanf(p + 1, "%2x", &v) == 1 && p[1] && p[2] && p[1] != 'H') {
      out[o++] = (char)v;
      p += 2;
    } else {
      return -1;
    }
  }
  out[o] = '\0';
  return 0;
}

typedef struct scan {
  const bt_job *j;
  const char *loc;  /* the snapshot directory */
  const char *live_uuid;
  const char *live;
} scan;

static void report(const scan *s, const char *path, const struct btrfs_util_subvolume_info *si,
                   int in_loc)
{
  char name[NAME_MAX + 1];
  int ours = in_loc && decode_mark(bt_base_name(path), name, sizeof name) == 0;
  vmsnap_list_entry e = {
    .struct_size = sizeof e,
    .object = path,
    .snapshot_name = ours ? name : NULL,
    .ctime_sec = si->otime.tv_sec,
    .size = 0, /* shared with the disk; btrfs knows its own bytes only with quotas */
    .note = !in_loc ? "btrfs snapshot of the disk made outside vmsnap"
            : !ours ? "subvolume in vmsnap's snapshot directory, not named by vmsnap"
            : !(si->flags & BTRFS_ROOT_SUBVOL_RDONLY) ? "writable: changed after it was taken?"
                                                      : NULL,
  };
  s->j->host->list_entry(s->j->job, &e);
}

static void uuid_text(const uint8_t u[16], char out[37])
{
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
           u[13], u[14], u[15]);
}

/* Walks every subvolume beneath the one whose root is root. */
static int scan_root(const scan *s, const char *root)
{
  struct btrfs_util_subvolume_iterator *it;
  struct btrfs_util_subvolume_info si;
  char *rel = NULL, path[PATH_MAX], dir[PATH_MAX], pu[37];
  enum btrfs_util_error e;

  /* The iterator keeps the fd it opens: give it the path. */
  if ((e = btrfs_util_create_subvolume_iterator(root, 0, 0, &it)))
    return errno ? -errno : -EIO;
  while ((e = btrfs_util_subvolume_iterator_next_info(it, &rel, &si)) == BTRFS_UTIL_OK) {
    if (bt_join(path, sizeof path, root, rel) == 0 && bt_parent_dir(path, dir, sizeof dir) == 0) {
      uuid_text(si.parent_uuid, pu);
      int in_loc = strcmp(dir, s->loc) == 0;
      if (in_loc || (strcmp(pu, s->live_uuid) == 0 && strcmp(path, s->live) != 0))
        report(s, path, &si, in_loc);
    }
    free(rel);
    rel = NULL;
  }
  btrfs_util_destroy_subvolume_iterator(it);
  return e == BTRFS_UTIL_ERROR_STOP_ITERATION ? 0 : (errno ? -errno : -EIO);
}

int bt_list(vmsnap_job *job, const vmsnap_job_info *info)
{
  bt_job j = {job, info->host, info, info->disk->target};
  char live[PATH_MAX], loc[PATH_MAX], dir[PATH_MAX], root[PATH_MAX], lroot[PATH_MAX];
  bt_subvol lv;
  int rc;

  if ((rc = bt_live_path(&j, live, sizeof live)) < 0 ||
      (rc = bt_location(&j, live, loc, sizeof loc)) < 0)
    return rc;
  int fd = bt_open_subvol(live, &lv);
  if (fd < 0)
    return bt_fail(&j, VMSNAP_E_NOT_FOUND, fd == -EINVAL ? ENOTDIR : -fd,
                   "cannot open the subvolume %s", live);
  close(fd);
  scan s = {&j, loc, lv.uuid, live};
  if (bt_parent_dir(live, dir, sizeof dir) < 0 || (rc = subvol_root(dir, root, sizeof root)) < 0)
    return bt_fail(&j, VMSNAP_E_BACKEND, -rc, "cannot find the subvolume holding %s", dir);
  if ((rc = scan_root(&s, root)) < 0)
    return bt_fail(&j, VMSNAP_E_BACKEND, -rc, "cannot list the subvolumes under %s", root);
  /* file= in another subvolume than the disk's parent: walk that one too. */
  if (info->disk->file && subvol_root(loc, lroot, sizeof lroot) == 0 &&
      strcmp(lroot, root) != 0 && (rc = scan_root(&s, lroot)) < 0)
    return bt_fail(&j, VMSNAP_E_BACKEND, -rc, "cannot list the subvolumes under %s", lroot);
  return 0;
}
