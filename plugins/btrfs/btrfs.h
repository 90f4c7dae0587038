/* btrfs.h — internals shared by the files of the btrfs backend.
 *
 * A disk is a btrfs subvolume (a VM's image directory, a directory-backed
 * guest root). A snapshot is a read-only btrfs snapshot of it, made and
 * deleted with libbtrfsutil, never by running btrfs(8).
 *
 * Layout on storage, for the subvolume /pool/vm1 of domain "web":
 *   /pool/.vmsnap/web/vm1/vmsnap-<name>        a snapshot (read-only subvolume)
 *   /pool/.vm1.vmsnap-revert-<uuid>            revert: the writable copy being
 *                                              staged, then (after the swap) the
 *                                              old live subvolume until deleted
 * file=DIR on the disk puts the snapshots in DIR/vmsnap-<name> instead (DIR
 * must be on the same btrfs). The domain's name is written with every byte
 * outside [A-Za-z0-9_-] (and a leading '.') as +HH.
 *
 * Backend data (host->set):
 *   prepare of create: "subvol" (the snapshot's absolute path), "source-id"
 *     and "source-uuid" (the live subvolume it is taken of). A subvolume at
 *     "subvol" is ours when its uuid is "subvol-uuid", or, before that was
 *     recorded (a crash inside create), when it is a snapshot of
 *     "source-uuid" (its parent uuid): prepare refused a taken path.
 *   create: "subvol-id", "subvol-uuid".
 *   prepare of revert: "revert-staged" (the staging path), "revert-old-id",
 *     "revert-old-uuid" (the live subvolume before the revert).
 *   revert: "revert-staged-id", "revert-staged-uuid" (journaled at the
 *     point of no return, so a restarted revert_finish can tell what it did).
 *   revert_finish: "live-id", "live-uuid" (the disk's subvolume now: the
 *     revert gives it a new id).
 */
#ifndef VMSNAP_BTRFS_H
#define VMSNAP_BTRFS_H

#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <vmsnap/vmsnap-plugin.h>

#define BT_MARK "vmsnap-"
#define BT_TOP_DIR ".vmsnap"
#define BT_REVERT_SUFFIX ".vmsnap-revert-"
/* The inode number of every subvolume's root directory. */
#define BT_SUBVOL_INO 256
/* What a snapshot (or the writable copy of a revert) takes before any
 * write: a few metadata blocks; ask for a little room to be safe. */
#define BT_MIN_FREE (4ull << 20)

/* The job seen by the helpers. */
typedef struct bt_job {
  vmsnap_job *job;
  const vmsnap_host *host;
  const vmsnap_job_info *info;
  const char *target; /* the disk's target, for messages */
} bt_job;

/* What the backend needs to know of one subvolume. */
typedef struct bt_subvol {
  uint64_t id;
  char uuid[37];
  char parent_uuid[37]; /* "" unless it is a snapshot */
  int readonly;
  int64_t otime;
  dev_t dev; /* st_dev of its root: every subvolume has its own */
} bt_subvol;

/* paths.c */
int bt_parent_dir(const char *path, char *buf, size_t len);
const char *bt_base_name(const char *path);
int bt_join(char *buf, size_t len, const char *dir, const char *name);
int bt_live_path(const bt_job *j, char *buf, size_t len);
int bt_location(const bt_job *j, const char *live, char *buf, size_t len);
int bt_open_location(const bt_job *j, const char *live, const char *loc);
void bt_rmdir_location(const bt_job *j, const char *snap);
int bt_staged_path(const char *live, const char *uuid, char *buf, size_t len);
int bt_same_fs(int fd_a, int fd_b);

/* subvol.c */
int bt_open_subvol(const char *path, bt_subvol *sv);
int bt_open_subvol_at(int dirfd, const char *name, bt_subvol *sv);
int bt_subvol_fd_info(int fd, bt_subvol *sv);
int bt_fail(const bt_job *j, int code, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int bt_errno_code(int err);
int bt_delete_at(const bt_job *j, int dirfd, const char *name, const char *path);
int bt_check_nested(const bt_job *j, int fd, const char *path, const char *what);
int bt_check_writable(const bt_job *j, int fd, const char *path, const char *nothing);
int bt_check_space(const bt_job *j, int fd, const char *path, const char *what);
int bt_check_can_delete(const bt_job *j, int fd, const char *path);
int bt_mounted_at(int fd, uint64_t id, char *where, size_t len);
int bt_check_open_files(const bt_job *j, const bt_subvol *sv, const char *path);
int bt_has_cap_sys_admin(void);
int bt_any_user_rm_mount(void);
int bt_set_u64(const bt_job *j, const char *key, uint64_t v);
int bt_is_ours(const bt_job *j, const bt_subvol *sv);

/* create.c */
int bt_prepare_create(const bt_job *j);
int bt_prepare_delete(const bt_job *j);
int bt_create(vmsnap_job *job, const vmsnap_job_info *info);
int bt_remove(vmsnap_job *job, const vmsnap_job_info *info);

/* revert.c */
int bt_prepare_revert(const bt_job *j);
int bt_revert(vmsnap_job *job, const vmsnap_job_info *info);
int bt_revert_finish(vmsnap_job *job, const vmsnap_job_info *info);
int bt_revert_abort(vmsnap_job *job, const vmsnap_job_info *info);

/* list.c */
int bt_list(vmsnap_job *job, const vmsnap_job_info *info);

#endif /* VMSNAP_BTRFS_H */
