/* disks.h — from what the user named to disks a backend can take. */
#ifndef VMSNAP_DISKS_H
#define VMSNAP_DISKS_H

#include "internal.h"

/* Builds disk documents {target, source, format, [backend, mode, file],
 * block_device} from specs. Sources must exist; formats are what the user
 * declared (raw by default), never probed. Picks each disk's backend. */
int disks_from_specs(vmsnap_ctx *ctx, const vmsnap_disk_spec *specs, size_t n,
                     json_t **docs, vs_err *err);
/* Re-checks disk documents (still there, same kind) and picks their
 * backends: the one a document names; else the one the domain's
 * remembered disk of the same target, source and format has, while it
 * still takes the disk; else the best of every backend. remembered may be
 * NULL. */
int disks_resolve(vmsnap_ctx *ctx, json_t *docs, json_t *remembered, vs_err *err);
const plugin *disks_backend(vmsnap_ctx *ctx, json_t *disk_doc, json_t *remembered,
                            vs_err *err);

/* How many /proc scans ran (tests: a free file is answered without one). */
extern atomic_uint inuse_scans;
/* BUSY naming the holder when a process has the disk open or locked
 * (QEMU's image locks are OFD locks; open files are found in /proc). */
int disks_check_not_in_use(json_t *docs, vs_err *err);
/* The same check in two halves: start scans in the background (it only
 * reads), finish waits for it and gives its verdict, then frees it. An op
 * may record its intent in between but must change nothing on storage
 * before finish said 0. finish(NULL) is 0. */
typedef struct inuse_check inuse_check;
int disks_inuse_start(json_t *docs, inuse_check **out, vs_err *err);
int disks_inuse_finish(inuse_check *c, vs_err *err);
/* For an op that failed with rc before finish: waits for the check too and,
 * when a disk is in use, reports that instead (the likelier cause of a
 * backend's failure to prepare); else keeps rc and err. Frees c. */
int disks_inuse_explain(inuse_check *c, int rc, vs_err *err);

#endif
