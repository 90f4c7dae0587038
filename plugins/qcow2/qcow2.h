/* qcow2.h — internals shared by the files of the qcow2 backend.
 *
 * INTERNAL snapshots: the snapshot is a tag in the image's own snapshot
 * table. Offline, qemu-img makes, applies and deletes it; for a disk a
 * running QEMU serves (disk->live), QEMU makes it (a QMP transaction action
 * the core submits for all disks at once) and deletes it (a QMP command),
 * and vmsnap only reads the table, without taking QEMU's lock (live.c).
 * Reverting a live disk is refused (it needs the memory snapshot).
 *
 * EXTERNAL snapshots: the image is frozen as the snapshot's layer and a new
 * overlay goes on top: offline the overlay takes the disk's path
 * (external.c), live QEMU makes it and writes to it (live_ext.c); the
 * backing chain, and merging a deleted snapshot's layer, in chain.c; the
 * overlay itself is written in-process (overlay.c). Their backend data:
 * external.c and live_ext.c.
 *
 * The image's header and snapshot table are read in-process (image.c),
 * never by probing: the format is the disk's declared one.
 *
 * Backend data (host->set):
 *   "tag"   the snapshot's tag in the image: info->object_name (the vmsnap
 *           mark). Set in prepare, so a crashed create can be rolled back.
 *   "image" the absolute path of the image that holds the snapshot. Set in
 *           prepare. Later (external snapshots) it may no longer be the
 *           disk's active layer, so ops use it rather than disk->source.
 *   "id"    the snapshot's qcow2 ID. Set by create once the snapshot exists.
 *   "date"  its creation time in the image ("SEC.NSEC"). Set with "id"
 *           (live: by live_done, once QEMU's transaction succeeded).
 *   "node"  live snapshots only: the QEMU block node-name it was taken on,
 *           for information; a delete uses the root node that serves
 *           "image" now (the recorded one when it still does).
 * qcow2 allows duplicate tags and reuses IDs (a new ID is the highest + 1),
 * so a snapshot is identified by tag + id + date, never by its tag alone.
 *
 * The snapshot table is read, and the image checked before it is changed,
 * in-process (image.c); qemu-img makes, applies and deletes snapshots, and
 * reads what image.c cannot (qemu_img.c says when).
 *
 * qemu-img is always told the format: info and check get -f qcow2, and the
 * image is named by a json: spec with "driver": "qcow2" (qemu-img 7.2's
 * snapshot subcommand has no -f) and "backing": null (internal snapshots
 * live in this one file; nothing in a backing chain is opened or probed).
 */
#ifndef QCOW2_H
#define QCOW2_H

#include <limits.h>
#include <stdint.h>

#include <vmsnap/vmsnap-plugin.h>

#include "plugin_util.h"

#define Q2_MARK_PREFIX "vmsnap-"

/* One disk of one op, as the qcow2 backend sees it. */
typedef struct q2_job {
  vmsnap_job *job;
  const vmsnap_host *host;
  const vmsnap_job_info *info;
  char image[PATH_MAX]; /* the image, absolute, symlinks resolved */
  int is_block;
  char *spec; /* json:{...} naming the image for qemu-img */
  int force_share; /* chain reads: a running QEMU holds the images (-U) */
} q2_job;

/* One entry of the image's snapshot table. */
typedef struct q2_snap {
  char *id;
  char *name; /* the tag */
  uint64_t vm_state_size;
  int64_t date_sec, date_nsec;
} q2_snap;

/* What the image says about itself (image.c, or qemu-img info). */
typedef struct q2_info {
  q2_snap *snaps; /* in table order: the order qemu-img looks tags up in */
  size_t n;
  uint64_t virtual_size, cluster_size;
  int corrupt; /* QEMU marked the image corrupt */
  char *backing;     /* the backing file name as the header holds it, or NULL */
  char *backing_fmt; /* its format from the header extension, or NULL */
  /* Read by image.c only (0 from qemu-img info): */
  int dirty;          /* not closed cleanly: QEMU repairs refcounts when it opens it */
  int data_file;      /* guest data lives in an external data file */
  uint64_t file_size; /* of the image file (the device's size for a block device) */
} q2_info;

/* One image of a disk's backing chain (chain.c). */
typedef struct q2_node {
  char *path;        /* absolute */
  char *backing;     /* absolute, or NULL for none */
  char *uuid;        /* the snapshot whose layer this is, or NULL */
  int record;        /* index in q2_chain.rec, or -1 */
  int active;        /* the disk's active image */
  int ours;          /* in the disk's layer directory: vmsnap made it */
  int gone;          /* dropped or merged away during this op */
  int held;          /* a running QEMU has it open: never touched here */
  size_t nsnaps;     /* internal snapshots it holds */
  uint64_t virtual_size, cluster_size;
  uint64_t allocated; /* bytes on disk: what a merge of it costs */
} q2_node;

/* What another vmsnap snapshot of the disk recorded (host->siblings). */
typedef struct q2_record {
  char *uuid, *name;
  char *layer, *layer_backing; /* external snapshots */
  char *image;                 /* internal snapshots */
  int self;                    /* the job's own snapshot */
} q2_record;

typedef struct q2_chain {
  char disk[PATH_MAX]; /* the active image */
  char dir[PATH_MAX];  /* the layer directory */
  q2_node *v;          /* v[0] is the disk */
  size_t n;
  q2_record *rec;
  size_t nrec;
} q2_chain;

/* An image opened by image.c: its header, and what q2_image_info and
 * q2_image_check learn from what it points to. */
struct q2_snap_l1 {
  uint64_t offset;
  uint32_t size;
};
typedef struct q2_image {
  int fd, is_block, err_no; /* err_no: errno of a Q2_IMG_IO failure */
  uint64_t file_size;
  uint32_t version, cluster_bits, crypt_method, l1_size, refcount_table_clusters;
  uint32_t nb_snapshots, refcount_order, header_length, backing_size;
  uint64_t cluster_size, virtual_size, backing_offset, l1_offset, refcount_table_offset;
  uint64_t snapshots_offset, incompat;
  /* private */
  unsigned char *buf; /* read cache for the header and the snapshot table */
  size_t buf_cap, buf_len;
  uint64_t buf_off;
  struct q2_snap_l1 *snap_l1;                  /* per snapshot, by q2_image_info */
  uint64_t snapshots_end;                      /* set by q2_image_info */
  uint64_t last_refblock, last_refblock_index; /* set by q2_image_check */
} q2_image;

/* image.c failures; err says why, as "it ..."/"a ...": what the image has. */
enum {
  Q2_IMG_IO = -1,          /* open or read failed: err_no */
  Q2_IMG_NOT_QCOW2 = -2,   /* no qcow2 signature */
  Q2_IMG_UNSUPPORTED = -3, /* a version or feature vmsnap does not read */
  Q2_IMG_DAMAGED = -4,     /* truncated, marked corrupt, or absurd values */
  Q2_IMG_NOMEM = -5,
};

/* image.c: read-only, no qemu-img. open reads and checks the header;
 * info the backing names and the snapshot table; check (after info) that
 * the tables lie inside the file and the active L2 entries point into it. */
int q2_image_open(q2_image *img, const char *path, char *err, size_t len);
int q2_image_info(q2_image *img, q2_info *out, char *err, size_t len);
void q2_info_free(q2_info *inf);
int q2_image_check(q2_image *img, char *err, size_t len);
uint64_t q2_image_end(q2_image *img);
int q2_image_in_use(const q2_image *img);
void q2_image_close(q2_image *img);

/* qemu_img.c */
int q2_job_rebind(q2_job *sub, const q2_job *j, const char *image);
int q2_job_init(q2_job *j, vmsnap_job *job, const vmsnap_job_info *info, int missing_ok);
void q2_job_dispose(q2_job *j);
int q2_run(q2_job *j, const char *const argv[], int capture, vmsnap_spawn_result *r);
int q2_tool_error(q2_job *j, const vmsnap_spawn_result *r, const char *what, const char *hint);
int q2_info_read(q2_job *j, int force_share, const char *what, const char *hint, q2_info *out);
int q2_check(q2_job *j, const char *what, uint64_t *end_offset);
int q2_info_check(q2_job *j, const char *what, q2_info *out, uint64_t *end_offset);
int q2_snapshot_cmd(q2_job *j, const char *flag, const char *arg, const char *what,
                    const char *hint);

/* snaps.c */
void q2_snap_date(const q2_snap *s, char *buf, size_t len);
void q2_date_text(const char *date, char *buf, size_t len);
size_t q2_count_tag(const q2_info *inf, const char *tag);
void q2_ids_with_tag(const q2_info *inf, const char *tag, char *buf, size_t len);
size_t q2_pick(const q2_info *inf, const char *tag, const char *id, const char *date, size_t *idx);
int q2_first_with_tag(const q2_info *inf, const char *tag, size_t idx);
int q2_decode_tag(const char *tag, char *buf, size_t len);
int q2_refuse_taken_tag(q2_job *j, const q2_info *inf, const char *tag, const char *what);

/* chain.c */
int q2_layer_dir(const char *disk, char *buf, size_t len);
int q2_chain_read(q2_job *j, const char *disk, q2_chain *c, const char *what);
void q2_chain_free(q2_chain *c);
q2_node *q2_chain_find(q2_chain *c, const char *path);
size_t q2_chain_children(q2_chain *c, const char *path, q2_node **first);
int q2_chain_backing_ok(q2_chain *c, const char *recorded, const char *actual);
int q2_chain_verify(q2_job *j, q2_chain *c, const char *layer, const char *layer_backing,
                    const char *what);
int q2_chain_premerge(q2_job *j, q2_chain *c, q2_node *layer, const char *what);
int q2_chain_stream(q2_job *j, q2_node *layer, q2_node *child, const char *what);
int q2_chain_settle(q2_job *j, q2_chain *c, q2_node *layer, const char *what);
int q2_chain_update_records(q2_job *j, q2_chain *c, const char *moved_from, const char *moved_to);
int q2_tool(q2_job *j, const char *const argv[], const char *what, const char *hint);
int q2_fsync_dir(const char *path);

/* live_ext.c */
int q2_live_ext_prepare(q2_job *j, const vmsnap_job_info *info);
int q2_live_ext_create(q2_job *j);
void q2_live_ext_done(q2_job *j, int rc);
int q2_live_ext_prepare_delete(q2_job *j);
int q2_live_ext_remove(q2_job *j);

/* overlay.c */
int q2_overlay_write(const char *path, const char *backing, uint64_t size, uint64_t cluster);

/* external.c */
int q2_is_external(vmsnap_job *job, const vmsnap_job_info *info);
int q2_ext_prepare(q2_job *j, const vmsnap_job_info *info);
int q2_ext_prepare_delete(q2_job *j);
int q2_ext_create(q2_job *j);
int q2_ext_remove(q2_job *j);
int q2_ext_revert(q2_job *j);
int q2_ext_revert_finish(q2_job *j);
int q2_ext_revert_abort(q2_job *j);
void q2_ext_list(q2_job *j);

/* ops.c */
int q2_space_check(q2_job *j, const q2_info *inf, uint64_t end_offset);
int q2_validate(q2_job *j, const char *what, q2_info *inf, uint64_t *end_offset);
int q2_prepare(vmsnap_job *job, const vmsnap_job_info *info);
int q2_create(vmsnap_job *job, const vmsnap_job_info *info);
int q2_remove(vmsnap_job *job, const vmsnap_job_info *info);
int q2_revert(vmsnap_job *job, const vmsnap_job_info *info);
int q2_revert_finish(vmsnap_job *job, const vmsnap_job_info *info);
int q2_revert_abort(vmsnap_job *job, const vmsnap_job_info *info);
int q2_list(vmsnap_job *job, const vmsnap_job_info *info);

/* live.c */
int q2_live_now(vmsnap_job *job, const vmsnap_job_info *info);
int q2_live_prepare_create(q2_job *j, const vmsnap_job_info *info);
int q2_live_create(q2_job *j, const char *tag);
int q2_live_done(vmsnap_job *job, const vmsnap_job_info *info, int rc, const char *return_json);
int q2_live_prepare_delete(q2_job *j, const char *what);
int q2_live_delete(q2_job *j, const q2_info *inf, size_t idx, const char *what);
int q2_live_refuse_revert(q2_job *j);

#endif /* QCOW2_H */
