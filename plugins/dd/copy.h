/* copy.h — the dd backend's copy engine.
 *
 * Copies a raw image as fast as the storage allows, keeping holes:
 *   1. FICLONE (reflink) when source and destination are regular files on a
 *      filesystem that shares extents (btrfs, xfs): constant time;
 *   2. else the source's data extents (SEEK_DATA/SEEK_HOLE), each with
 *      copy_file_range in 16 MiB calls, so the kernel moves the bytes;
 *   3. else (other filesystem, block device) pread/pwrite through an 8 MiB
 *      buffer, leaving all-zero blocks as holes in a regular destination.
 *
 * It knows nothing of vmsnap: callers pass callbacks for progress and cancel
 * and get 0 or a negative errno (-ECANCELED, -ENOSPC for ENOSPC and EDQUOT,
 * -EEXIST when the final name is taken, else the failing call's errno) with
 * a message naming the step, the file and the reason.
 *
 * Threading: no global state; any number of copies may run at once.
 */
#ifndef DD_COPY_H
#define DD_COPY_H

#include <stdint.h>
#include <sys/types.h>

typedef struct dd_copy_ops {
  /* Bytes copied so far of total (the source's allocated bytes; a block
   * device counts whole). Called once per chunk, never per block. NULL: none. */
  void (*progress)(void *user, uint64_t done, uint64_t total);
  /* Non-zero: stop, the copy returns -ECANCELED. Checked before every
   * chunk. NULL: the copy cannot be cancelled. */
  int (*cancelled)(void *user);
  void *user;
} dd_copy_ops;

typedef enum dd_copy_method {
  DD_COPY_NOTHING = 0,   /* nothing copied (failed early, or empty source) */
  DD_COPY_REFLINK,       /* FICLONE: extents shared, no data moved */
  DD_COPY_RANGE,         /* copy_file_range per data extent */
  DD_COPY_READWRITE,     /* pread/pwrite (at least for part of the copy) */
} dd_copy_method;

/* Flags of a copy. */
#define DD_COPY_NO_REFLINK (1u << 0) /* no FICLONE (tests, benchmarks); note
                                        copy_file_range may still share
                                        extents on btrfs */
#define DD_COPY_NO_RANGE (1u << 1)   /* never copy_file_range (tests) */
#define DD_COPY_NO_PARALLEL (1u << 2) /* one copy_file_range stream (tests) */
#define DD_COPY_NO_SYNC (1u << 3)     /* dd_copy_fd leaves the fsync to its caller */
#define DD_COPY_NAMED_TEMP (1u << 4)  /* dd_copy_new_file writes tmp_path even
                                         where O_TMPFILE works (tests) */

typedef struct dd_copy_result {
  dd_copy_method method;
  uint64_t size;        /* apparent size of the source */
  uint64_t total;       /* allocated bytes of the source */
  uint64_t done;        /* bytes copied (== total on success) */
  char message[1024];   /* on failure: "writing /x at offset 4096: No space…" */
} dd_copy_result;

/* Copies src_fd into dst_fd, then fsyncs dst_fd. A regular destination is
 * truncated first and keeps the source's holes; a block-device destination
 * is written in place, the source's holes zeroed (restartable: running it
 * again gives the same result). The names are for messages only. */
int dd_copy_fd(int src_fd, const char *src_name, int dst_fd,
               const char *dst_name, unsigned flags, const dd_copy_ops *ops,
               dd_copy_result *res);

/* A new file made by dd_copy_new_file. */
typedef struct dd_new_file {
  const char *tmp_path; /* written first; must not exist; removed on failure */
  const char *path;     /* final name, taken without replacing anything */
  mode_t mode;          /* permission bits */
  uid_t uid;            /* (uid_t)-1: the caller's */
  gid_t gid;            /* (gid_t)-1: the caller's */
  int xattrs_from;      /* fd whose extended attributes to copy, or -1 */
  const char *mark_name;  /* xattr marking the file as ours, or NULL */
  const char *mark_value;
} dd_new_file;

/* Copies src_path into a new file (mode, owner, xattrs, mark set first)
 * that appears as path, complete, without replacing anything (-EEXIST if
 * path exists), then makes it and its directory durable. The copy is
 * written into an unnamed file of path's directory (O_TMPFILE), linked as
 * path, then flushed; where the filesystem or the kernel has no O_TMPFILE,
 * or no /proc names the file, into tmp_path, flushed and renamed. On any
 * failure or cancel neither tmp_path nor path is left. */
int dd_copy_new_file(const char *src_path, const dd_new_file *nf,
                     unsigned flags, const dd_copy_ops *ops,
                     dd_copy_result *res);

/* Apparent size of a regular file or block device (BLKGETSIZE64). */
int dd_fd_size(int fd, uint64_t *size);

/* Bytes of data: the sum of SEEK_DATA extents of a regular file; a block
 * device's size. 0 or -errno. */
int dd_allocated_bytes(int fd, uint64_t *bytes);

/* 1 if files in dir can be cloned with FICLONE (tried on two unnamed
 * O_TMPFILE files, so nothing is left behind), else 0. */
int dd_reflink_works(const char *dir);

/* fsync of the directory holding path (after a rename or unlink). */
int dd_fsync_parent(const char *path);

/* rename that never replaces: renameat2(RENAME_NOREPLACE), or link+unlink
 * where the filesystem lacks it. 0 or -errno (-EEXIST). */
int dd_rename_noreplace(const char *from, const char *to);

#endif /* DD_COPY_H */
