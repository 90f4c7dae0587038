/* lvm.h — internals shared by the files of the LVM backend.
 *
 * A disk is a logical volume (/dev/VG/LV, /dev/mapper/VG-LV, /dev/dm-N).
 * It is recognised in-process through libdevmapper (its device-mapper
 * uuid starts with "LVM-"); everything that changes LVM goes through the
 * lvm binary (host->spawn, argv only), and reads of LVM's metadata through
 * `lvm lvs --reportformat json`. libdevmapper is used in-process only for
 * status reads: open count, snapshot fill, merge progress (dmstatus.c).
 *
 * Two kinds of origin:
 *   classic (thick) LV: the snapshot is a COW LV of a fixed size
 *     (lvcreate -s -L); revert is lvconvert --merge, which consumes the
 *     snapshot (classic.c);
 *   thin LV: the snapshot is a thin snapshot (no size); revert branches:
 *     a thin snapshot of the snapshot is renamed into the origin's place
 *     (thin.c).
 *
 * Names (names.c): the snapshot of VG/ORIGIN for the object name
 * "vmsnap-<encoded snapshot name>" is VG/ORIGIN-vmsnap-<encoded>, shortened
 * with a hash when LVM's limits require it. Every LV vmsnap makes carries
 * the tags "vmsnap" and "vmsnap-<snapshot uuid>" (a revert's staged LV
 * "vmsnap-revert-<snapshot uuid>"), so list tells ours from foreign ones
 * and a rollback recognises an LV whose uuid was never recorded.
 *
 * Backend data (host->set):
 *   prepare of create: "lv" (VG/NAME of the snapshot LV: the object),
 *     "vg", "origin" (the origin's LV name), "origin-uuid", "kind"
 *     ("classic" or "thin"), "size" (classic: COW bytes asked for);
 *   create: "lv-uuid" (classic: read from device-mapper; a thin snapshot
 *     skips activation, and its tag identifies it);
 *   prepare of revert (thin): "revert-staged" (VG/NAME of the LV staged in
 *     phase one), "revert-old" (the name the old origin takes until it is
 *     removed), "revert-origin", "revert-origin-uuid", "revert-leftover"
 *     (a staged LV of an earlier attempt is there); the staged LV is known
 *     by its tag; revert_finish: "origin-uuid" (the origin's new uuid; the
 *     same update is given to every other snapshot of the disk with
 *     set_other);
 *   prepare of revert (classic): "revert-merge-uuid" (the snapshot LV to
 *     merge); revert_finish: "merge" ("done" or "pending": the merge waits
 *     for the origin's next activation) and a new "lv-uuid" when the
 *     reverted point was kept (a fresh snapshot taken after the merge).
 *
 * Every lvm run costs a few hundred ms (it scans devices): the common
 * paths run as few as they can (create: lvcreate alone, its checks read
 * from device-mapper, and `lvs` only to explain a refusal or for kinds
 * device-mapper cannot tell; delete: one lvremove, by name when
 * device-mapper shows the LV with the recorded uuid, else selecting the
 * name and our tag; a revert's finish trusts what its prepare read), and
 * read device-mapper in-process where it knows the answer.
 */
#ifndef VMSNAP_LVM_H
#define VMSNAP_LVM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vmsnap/vmsnap-plugin.h>

#define LV_TAG "vmsnap"
#define LV_NAME_MAX 127     /* LVM: "VG/LV" must fit in NAME_LEN (128) with its NUL */
#define LV_FULL_MAX 120     /* what we allow for "VG/LV": thin code paths add a little */
#define LV_DM_NAME_MAX 127  /* device-mapper names, "-cow"/"-real" layers included */
#define LV_UUID_LEN 38      /* "xxxxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxxxx" */

/* Snapshot size policy when no size is asked for (size.c). */
#define LV_DEFAULT_PERCENT 20
#define LV_MIN_SNAP_BYTES (64ull << 20)

/* ---- names.c (pure) ---------------------------------------------------- */
/* 1 when s is a usable VG or LV name for LVM: 1-127 of [A-Za-z0-9+_.-], no
 * leading '-', not "." or "..", no reserved prefix or infix. why (may be
 * NULL) gets the reason. */
int lv_name_valid(const char *s, const char **why);
/* The snapshot LV name for origin and object_name ("vmsnap-…"): origin +
 * "-" + object_name, with '_' in a reserved infix written "+5F", shortened
 * (+H and 8 hex digits of a hash of the whole) to fit LVM's limits for vg.
 * Returns 0 or -1 (origin or vg too long to leave room). */
int lv_snapshot_name(const char *vg, const char *origin, const char *object_name, char *out,
                     size_t len);
/* A derived helper name: origin + "-vmsnap-" + what + "-" + 8 hex of key. */
int lv_helper_name(const char *vg, const char *origin, const char *what, const char *key,
                   char *out, size_t len);
/* The device-mapper name of VG/LV ("-" doubled), with suffix appended. */
int lv_dm_name(const char *vg, const char *lv, const char *suffix, char *out, size_t len);
/* Splits a device-mapper name "vg-lv" (with "--" for '-') into vg and lv.
 * Returns 0, or -1 when it is not of that shape or has a layer suffix. */
int lv_dm_split(const char *dm, char *vg, size_t vglen, char *lv, size_t lvlen);
/* Decodes the snapshot name from an LV name origin-vmsnap-<enc>; 0 or -1
 * (not ours, or shortened: the name is lost). */
int lv_decode_snapshot_name(const char *origin, const char *lvname, char *out, size_t len);
/* "dkav8c-4iiJ-…" -> "dkav8c4iiJ…" (the form in device-mapper uuids). */
void lv_uuid_strip(const char *uuid, char *out, size_t len);
/* The 32 characters of a device-mapper LV uuid -> LVM's "xxxxxx-xxxx-…". */
int lv_uuid_format(const char *bare, char *out, size_t len);

/* ---- size.c (pure) ---------------------------------------------------- */
/* The classic snapshot size: spec NULL (the default policy: 20% of the
 * origin, at least 64 MiB, at most the origin plus 1%), "N%" of the
 * origin, or a size "N[bBsSkKmMgGtT]" (binary units, like lvcreate -L).
 * Rounded up to whole extents. Returns 0, or -1 with why set. */
int lv_snapshot_size(const char *spec, uint64_t origin_bytes, uint64_t extent_bytes,
                     uint64_t *out, const char **why);

/* ---- lvs.c ------------------------------------------------------------ */
typedef struct lv_info {
  char vg[128];
  char name[128];
  char uuid[LV_UUID_LEN + 2];
  char attr[16];
  char segtype[32];
  char origin[128];
  char pool[128];
  char tags[1024];       /* comma separated */
  uint64_t size;         /* bytes */
  double snap_percent;   /* classic COW fill, -1 when not reported */
  double data_percent;   /* thin/pool data fill, -1 when not reported */
  int64_t ctime;         /* lv_time, epoch seconds; 0 if unknown */
  uint64_t vg_free;      /* bytes */
  uint64_t extent_size;  /* bytes */
} lv_info;

typedef struct lv_report {
  lv_info *lv;
  size_t n;
} lv_report;

/* Parses `lvs --reportformat json --units b --nosuffix -o LV_FIELDS`.
 * Returns 0, or -1 with why set (static text). */
int lv_report_parse(const char *json, lv_report *out, const char **why);
void lv_report_free(lv_report *r);
const lv_info *lv_find_name(const lv_report *r, const char *name);
const lv_info *lv_find_uuid(const lv_report *r, const char *uuid);
int lv_has_tag(const lv_info *lv, const char *tag);
/* Attribute helpers on lv_attr. */
int lv_is_thin(const lv_info *lv);
int lv_is_classic_snapshot(const lv_info *lv); /* 's' or 'S' */
int lv_is_merging(const lv_info *lv);          /* 'S' (snapshot) or 'O' (origin) */
int lv_is_invalid(const lv_info *lv);          /* overflowed or merge failed */
int lv_is_active(const lv_info *lv);
int lv_skips_activation(const lv_info *lv);

extern const char LV_FIELDS[];

/* ---- dmstatus.c ------------------------------------------------------- */
typedef struct lvdm_state {
  int exists;
  int open_count;
  uint32_t major, minor;
  char name[256];
  char uuid[160];
  char target[32];     /* the first target's type: "linear", "snapshot-merge"… */
  char params[256];    /* its status line */
} lvdm_state;

/* Reads a device by major:minor (name NULL) or by name; 0 or -1. Holds
 * the plugin's libdevmapper lock. */
int lvdm_read(const char *name, uint32_t major, uint32_t minor, int with_status, lvdm_state *st);
int lvdm_is_dm_major(uint32_t major);
/* "<allocated>/<total> <metadata>" of a snapshot or snapshot-merge target,
 * in sectors; "Invalid", "Merge failed", "Overflow" give -1 (pure). */
int lvdm_parse_snapshot_status(const char *params, uint64_t *alloc, uint64_t *total,
                             uint64_t *meta);
/* A device's table, by major:minor: the kind of its targets ("" when they
 * are of several kinds), the first one's parameters, the length of all. */
typedef struct lvdm_table_info {
  char type[32];
  char params[256];
  uint64_t sectors;
} lvdm_table_info;
int lvdm_table(uint32_t major, uint32_t minor, lvdm_table_info *out);
/* Data blocks used and in all from a thin-pool target's status (pure). */
int lvdm_parse_pool_status(const char *params, uint64_t *used, uint64_t *total);

/* ---- lvm.c: the job as the helpers see it ------------------------------ */
typedef struct lv_job {
  vmsnap_job *job;
  const vmsnap_host *host;
  const vmsnap_job_info *info;
  const char *target;
} lv_job;

/* The disk's origin as it is now. */
typedef struct lv_origin {
  char vg[128];
  char name[128];
  char dm_uuid[160];
  uint32_t major, minor;
} lv_origin;

/* Resolves the disk (active, else source) to its LV through libdevmapper.
 * Returns 0 or an error with the message set. */
int lv_resolve_disk(const lv_job *j, lv_origin *o);
/* The message for a failed lvm run (rc, its cleaned stderr why) as lv_run
 * gives it; returns rc. */
int lv_explain(const lv_job *j, int rc, const char *why, const char *what, const char *hint);
/* Runs lvm with argv (argv[0] == "lvm"); 0 when it ran and exited 0;
 * else an error with "what: <lvm's stderr>; hint" as message. */
int lv_run(const lv_job *j, const char *const argv[], vmsnap_line_fn *line, void *user,
           char **out, const char *what, const char *hint);
/* The same without a message: lvm's cleaned stderr in why (the rc says
 * which kind of failure). */
int lv_run_text(const lv_job *j, const char *const argv[], vmsnap_line_fn *line, void *user,
                char **out, char *why, size_t whylen);
/* lvs -a of one VG (hidden LVs too: a merging snapshot is hidden). */
int lv_list_vg(const lv_job *j, const char *vg, lv_report *r);
/* Error class of lvm's stderr text (pure). */
int lv_classify(const char *err);
/* Is the job's LV (by recorded uuid, else by our snapshot tag) lv? */
int lv_is_ours(const lv_job *j, const lv_info *lv);
/* The recorded snapshot LV ("lv" split): 0, or an error. */
int lv_recorded(const lv_job *j, char *vg, size_t vglen, char *name, size_t nlen);
int lv_snapshot_tag(const lv_job *j, char *buf, size_t len);
int lv_remove_lv(const lv_job *j, const char *vg, const char *name);
/* The LVM uuid of an active LV, read from device-mapper (no lvm run); 0 or -1. */
int lv_active_uuid(const char *vg, const char *name, char *out, size_t len);
/* The disk's option key (size=…), or NULL. */
const char *lv_disk_option(const lv_job *j, const char *key);

/* classic.c */
int lv_classic_prepare_create(const lv_job *j, const lv_origin *o, const lv_info *ol,
                              const lv_report *r);
int lv_classic_prepare_revert(const lv_job *j, const lv_report *r, const lv_info *snap);
int lv_classic_revert_finish(const lv_job *j);

/* thin.c */
int lv_thin_prepare_revert(const lv_job *j, const lv_origin *o, const lv_report *r,
                           const lv_info *snap);
int lv_thin_revert(const lv_job *j);
int lv_thin_revert_finish(const lv_job *j);
int lv_thin_revert_abort(const lv_job *j);

/* create.c */
int lv_prepare_create(const lv_job *j);
int lv_prepare_revert(const lv_job *j);
int lv_prepare_delete(const lv_job *j);
int lv_create(vmsnap_job *job, const vmsnap_job_info *info);
int lv_remove(vmsnap_job *job, const vmsnap_job_info *info);

/* list.c */
int lv_list(vmsnap_job *job, const vmsnap_job_info *info);
void lv_fill_note(const lv_info *lv, char *buf, size_t len);

#endif /* VMSNAP_LVM_H */
