/* dd.h — internals shared by the files of the dd backend.
 *
 * Layout on storage, for a regular-file disk /images/vm.img:
 *   /images/.vmsnap/vm.img/vmsnap-<name>.raw        a snapshot (0600)
 *   /images/.vm.img.vmsnap-revert-<uuid>            revert staging copy
 * Both are copied into an unnamed file (O_TMPFILE) and linked under their
 * name once complete; where that cannot be, into a named temporary,
 * .vmsnap-<name>.raw.part-<uuid> and .vm.img.vmsnap-revert-<uuid>.part.
 * The user's file= puts the snapshot exactly there instead (required for a
 * block device). Every file a create makes carries the xattr DD_MARK_XATTR
 * = snapshot uuid, so remove never deletes a file that took its name.
 * Backend data (host->set in prepare): "file" (the snapshot's path), "size"
 * (bytes of data it holds), "source-size" (the disk's apparent size).
 */
#ifndef DD_H
#define DD_H

#include <limits.h>
#include <sys/stat.h>

#include <vmsnap/vmsnap-plugin.h>

#include "plugin_util.h"

#include "copy.h"

#define DD_MARK_XATTR "user.vmsnap.snapshot"
#define DD_MARK_PREFIX "vmsnap-"
#define DD_SUFFIX ".raw"

/* A disk as the dd backend sees it. */
typedef struct dd_disk {
  const vmsnap_disk *disk;
  char path[PATH_MAX]; /* the source with symlinks resolved: what we copy
                          and, on revert, what we replace */
  struct stat st;
  int is_block;
} dd_disk;

/* The job a copy reports to (the user of dd_copy_ops). */
typedef struct dd_job {
  vmsnap_job *job;
  const vmsnap_host *host;
} dd_job;

/* paths.c */
int dd_disk_resolve(const dd_job *j, const vmsnap_disk *disk, dd_disk *d);
int dd_default_dir(const dd_disk *d, char *buf, size_t len);
int dd_make_default_dir(const dd_job *j, const dd_disk *d);
int dd_snapshot_path(const dd_job *j, const vmsnap_job_info *info,
                     const dd_disk *d, char *buf, size_t len);
int dd_hidden_sibling(const char *path, const char *suffix, char *buf,
                      size_t len);
int dd_parent_dir(const char *path, char *buf, size_t len);
int dd_is_ours(const char *path, const char *uuid);
int dd_remove_ours(const dd_job *j, const char *path, const char *uuid);

/* space.c */
int dd_space_check(const dd_job *j, const char *dir,
                   uint64_t needed);
int dd_needed_bytes(const dd_job *j, const char *src, const char *dest_dir,
                    uint64_t *needed, uint64_t *data, uint64_t *size);

/* job.c */
dd_copy_ops dd_job_ops(dd_job *j, int cancellable);
int dd_copy_failed(const dd_job *j, int rc, const dd_copy_result *res,
                   const char *what, const char *nospc_hint, const char *hint);
void dd_copy_done(const dd_job *j, const char *what,
                  const dd_copy_result *res, double seconds);
int dd_need_uuid(const dd_job *j, const vmsnap_job_info *info);
double dd_now(void);

/* revert.c */
int dd_revert(vmsnap_job *job, const vmsnap_job_info *info);
int dd_revert_finish(vmsnap_job *job, const vmsnap_job_info *info);
int dd_revert_abort(vmsnap_job *job, const vmsnap_job_info *info);
int dd_revert_check(const dd_job *j, const vmsnap_job_info *info,
                    const dd_disk *d, const char *snap);

#endif /* DD_H */
