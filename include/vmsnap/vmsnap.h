/* vmsnap.h — client API of libvmsnap, the VM snapshot framework.
 *
 * Threading: every function may be called from any thread. A context
 * serialises what must be serialised (per-domain locks on disk); several
 * contexts may live in one process.
 *
 * Signals: libvmsnap never installs a signal handler, never changes a signal
 * disposition or mask of the host, and never waits for a child it did not
 * create (no waitpid(-1)). Helpers it runs are invisible to a host that
 * reaps every child itself or sets SIGCHLD to SIG_IGN.
 *
 * Ownership: strings returned by accessors belong to the object they were
 * read from and live as long as it does. Objects returned with a reference
 * (vmsnap_op) are released with their _unref call.
 *
 * ABI: structs passed in start with struct_size; set it with sizeof. New
 * fields are only ever added at the end.
 */
#ifndef VMSNAP_H
#define VMSNAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMSNAP_API_VERSION 1

/* Return codes: 0 or one of these (negative). */
enum {
  VMSNAP_OK = 0,
  VMSNAP_E_INVALID = -1,     /* bad argument, bad name, bad disk spec */
  VMSNAP_E_NOT_FOUND = -2,   /* no such domain, snapshot, disk or backend */
  VMSNAP_E_EXISTS = -3,      /* a snapshot or object of that name exists */
  VMSNAP_E_BUSY = -4,        /* domain locked, disk in use by a process */
  VMSNAP_E_BACKEND = -5,     /* the backend or a tool it ran failed */
  VMSNAP_E_CANCELLED = -6,   /* vmsnap_op_cancel was called */
  VMSNAP_E_NOSPC = -7,       /* not enough space for the snapshot */
  VMSNAP_E_UNSUPPORTED = -8, /* a backend cannot do what was asked */
  VMSNAP_E_NOMEM = -9,
  VMSNAP_E_IO = -10,         /* reading or writing state failed */
  VMSNAP_E_NEEDS_RECOVER = -11, /* a half-done operation: run recover */
  VMSNAP_E_INPROGRESS = -12, /* the operation has not finished yet */
};

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *vmsnap_version(void);

/* A short, static description of a return code. */
const char *vmsnap_strerror(int code);

typedef struct vmsnap_ctx vmsnap_ctx;
typedef struct vmsnap_op vmsnap_op;
typedef struct vmsnap_snapshot vmsnap_snapshot;

/* ---- context ------------------------------------------------------- */

enum { VMSNAP_LOG_ERROR = 0, VMSNAP_LOG_WARN = 1, VMSNAP_LOG_INFO = 2, VMSNAP_LOG_DEBUG = 3 };

typedef void vmsnap_log_fn(void *user, int level, const char *message);

enum {
  /* Completion and progress callbacks are not run on libvmsnap's worker
   * threads but queued: the host polls vmsnap_ctx_get_fd() and calls
   * vmsnap_ctx_dispatch() on its own thread (libvirt-style event loops). */
  VMSNAP_CTX_HOST_DISPATCH = 1u << 0,
};

typedef struct vmsnap_config {
  size_t struct_size;      /* sizeof(vmsnap_config) */
  const char *state_dir;   /* NULL: $VMSNAP_STATE_DIR, else /var/lib/vmsnap
                              for root, $XDG_STATE_HOME/vmsnap otherwise */
  const char *plugin_path; /* colon-separated dirs; NULL: $VMSNAP_PLUGIN_PATH,
                              else the directory fixed at build time */
  vmsnap_log_fn *log;      /* NULL: warnings and errors go to stderr */
  void *log_user;
  int log_level;           /* highest level passed to log (default WARN) */
  unsigned flags;          /* VMSNAP_CTX_* */
} vmsnap_config;

/* Creates a context: makes the state dir (0700) and loads every plugin on
 * the plugin path. A plugin that cannot be used is skipped with a warning
 * through the logger naming the file and the reason. On failure returns a
 * negative code and, if errmsg is not NULL, a message to free with free(). */
int vmsnap_ctx_new(vmsnap_ctx **ctxp, const vmsnap_config *config, char **errmsg);

/* Waits for the context's operations to finish, then frees it. */
void vmsnap_ctx_free(vmsnap_ctx *ctx);

const char *vmsnap_ctx_state_dir(const vmsnap_ctx *ctx);

/* Event-loop integration (VMSNAP_CTX_HOST_DISPATCH): the fd becomes
 * readable when callbacks are queued; vmsnap_ctx_dispatch runs them on the
 * calling thread and returns how many ran. */
int vmsnap_ctx_get_fd(vmsnap_ctx *ctx);
int vmsnap_ctx_dispatch(vmsnap_ctx *ctx);

/* ---- backends ------------------------------------------------------ */

/* Capability bits a backend reports (per disk; combined per snapshot). */
#define VMSNAP_CAP_INTERNAL            (1ull << 0)  /* snapshot kept by the storage itself */
#define VMSNAP_CAP_EXTERNAL            (1ull << 1)  /* overlay on a frozen image */
#define VMSNAP_CAP_LIVE_QMP            (1ull << 2)  /* live through QMP transaction actions */
#define VMSNAP_CAP_NEEDS_PAUSE         (1ull << 3)  /* guest must be paused during create */
#define VMSNAP_CAP_REVERT_KEEPS_NEWER  (1ull << 4)  /* newer snapshots survive a revert */
#define VMSNAP_CAP_REVERT_CONSUMES_TARGET (1ull << 5) /* the reverted-to snapshot is gone after */
#define VMSNAP_CAP_REVERT_MAY_INVALIDATE_SIBLINGS (1ull << 6)
#define VMSNAP_CAP_DELETE_ANY          (1ull << 7)  /* any snapshot, not only the newest */
#define VMSNAP_CAP_LIST                (1ull << 8)  /* can list its objects on storage */
#define VMSNAP_CAP_REFLINK             (1ull << 9)  /* copy-on-write clone on this disk */
#define VMSNAP_CAP_PROGRESS            (1ull << 10) /* reports progress */
#define VMSNAP_CAP_CANCEL              (1ull << 11) /* can be cancelled mid-operation */
#define VMSNAP_CAP_BLOCK_DEVICE        (1ull << 12) /* takes block devices */

/* Name of one capability bit ("internal", "revert-keeps-newer"…), or NULL. */
const char *vmsnap_cap_name(uint64_t bit);

typedef struct vmsnap_backend_info {
  size_t struct_size;
  const char *name;
  const char *version;
  const char *description;
  const char *path;       /* the .so it was loaded from */
  uint64_t capabilities;  /* what it can do at best (disk-independent) */
  int available;          /* 1 if its tools and privileges are there */
  const char *why_unavailable; /* when available == 0 */
} vmsnap_backend_info;

size_t vmsnap_backend_count(const vmsnap_ctx *ctx);
/* Fills *info for backend i (0-based); strings live as long as ctx. */
int vmsnap_backend_get(const vmsnap_ctx *ctx, size_t i, vmsnap_backend_info *info);

/* ---- asynchronous operations -------------------------------------- */

typedef struct vmsnap_progress {
  size_t struct_size;
  const char *phase;  /* "prepare", "create", "revert", "delete", "recover" */
  const char *disk;   /* target whose progress moved, or NULL */
  uint64_t done;      /* bytes done, summed over every disk of the op */
  uint64_t total;     /* bytes in all (0 while unknown) */
} vmsnap_progress;

typedef void vmsnap_done_fn(void *user, vmsnap_op *op, int rc);
typedef void vmsnap_progress_fn(void *user, vmsnap_op *op, const vmsnap_progress *p);
typedef void vmsnap_free_fn(void *user);

/* How an operation reports back (like libxl_asyncop_how). Pass NULL, or a
 * how with done.fn == NULL, for a synchronous call: it returns the result.
 *
 * With done.fn set the call starts the operation and returns 0; done.fn then
 * runs exactly once, with the op's result, on a worker thread (or from
 * vmsnap_ctx_dispatch with VMSNAP_CTX_HOST_DISPATCH). A negative return means
 * it did not start (only for a NULL ctx or params, or out of memory) and
 * done.fn never runs. Either way each closure's free runs exactly once,
 * after its last call. Progress is rate-limited. */
typedef struct vmsnap_how {
  size_t struct_size;
  struct { vmsnap_done_fn *fn; void *user; vmsnap_free_fn *free; } done;
  struct { vmsnap_progress_fn *fn; void *user; vmsnap_free_fn *free; } progress;
} vmsnap_how;

/* Every operation call takes `vmsnap_op **opp`: if not NULL it receives a
 * reference to the op (release with vmsnap_op_unref) — after a synchronous
 * call to read the result, after an asynchronous one to cancel or wait. */

void vmsnap_op_ref(vmsnap_op *op);
void vmsnap_op_unref(vmsnap_op *op);
/* Cooperative and idempotent: the op ends with VMSNAP_E_CANCELLED, leaving
 * what its documentation says (create: nothing; delete and revert: the state
 * before, or, past their point of no return, the finished operation). */
void vmsnap_op_cancel(vmsnap_op *op);
/* Blocks until the op finished; returns its result. */
int vmsnap_op_wait(vmsnap_op *op);
/* VMSNAP_E_INPROGRESS while running, then the result. */
int vmsnap_op_status(vmsnap_op *op);
/* A message a person can act on when the op failed ("" on success). */
const char *vmsnap_op_message(vmsnap_op *op);
/* Results: create, get and revert give one snapshot, list gives many. */
size_t vmsnap_op_snapshot_count(vmsnap_op *op);
const vmsnap_snapshot *vmsnap_op_snapshot(vmsnap_op *op, size_t i);
/* Warnings the op collected (a qcow2 hint, space freed later…), or NULL. */
const char *vmsnap_op_warning(vmsnap_op *op, size_t i);

/* ---- snapshots ----------------------------------------------------- */

/* A disk of a snapshot request. Text form (snapctl --disk):
 *   TARGET=SOURCE[,format=raw|qcow2][,backend=B][,mode=internal|external][,file=F]
 *                [,KEY=VALUE]...   (options of the disk's backend, e.g. size= for lvm) */
typedef struct vmsnap_disk_spec {
  const char *target;  /* "vda", "xvda"… */
  const char *source;  /* file, block device or subvolume */
  const char *format;  /* "raw" or "qcow2"; NULL: from the domain, else raw */
  const char *backend; /* NULL: the best-scoring backend that takes it */
  const char *mode;    /* NULL, "internal" or "external" */
  const char *file;    /* where the backend puts the snapshot, or NULL */
  /* Added later (a caller says it fills it with disk_spec_size in
   * vmsnap_create_params): the backend's own options, "KEY=VALUE[,KEY=VALUE]..."
   * (",," for a comma in a value), or NULL. A key the chosen backend does
   * not take is refused. Remembered with the domain's disks. */
  const char *options;
} vmsnap_disk_spec;

/* Parses the text form into *spec; strings point into *bufp (free with
 * free()). Returns 0 or VMSNAP_E_INVALID with *errmsg (free with free()). */
int vmsnap_disk_spec_parse(const char *text, vmsnap_disk_spec *spec,
                           char **bufp, char **errmsg);

enum {
  VMSNAP_CREATE_DISK_ONLY = 1u << 0,   /* no memory image even if running */
  VMSNAP_CREATE_LIVE = 1u << 1,        /* keep the guest running (memory live) */
  VMSNAP_CREATE_NO_METADATA = 1u << 2, /* storage objects only, nothing recorded */
};

typedef struct vmsnap_create_params {
  size_t struct_size;
  const char *domain;      /* NAME (offline), qmp:/path, xen:NAME|DOMID */
  const char *name;        /* NULL: epoch seconds, suffixed if taken */
  const char *description; /* may be NULL */
  const vmsnap_disk_spec *disks; /* NULL/0: the disks remembered for domain */
  size_t ndisks;
  unsigned flags;          /* VMSNAP_CREATE_* */
  /* "internal" or "external" for every disk that names no mode of its own
   * (the disks of a domain a hypervisor serves, or the remembered ones);
   * NULL: as remembered, else the backend's default. */
  const char *mode;
  /* sizeof(vmsnap_disk_spec) as the caller was built (the stride of disks);
   * 0: this header's. A caller whose struct_size ends before this field was
   * built before vmsnap_disk_spec.options, and its array is read so. */
  size_t disk_spec_size;
} vmsnap_create_params;

int vmsnap_create(vmsnap_ctx *ctx, const vmsnap_create_params *params,
                  const vmsnap_how *how, vmsnap_op **opp);

enum {
  VMSNAP_LIST_ROOTS = 1u << 0,  /* only snapshots without parent */
  VMSNAP_LIST_LEAVES = 1u << 1, /* only snapshots without children */
};
/* Snapshots of a domain in creation order, with foreign objects the
 * backends found on storage (vmsnap_snapshot_is_foreign). */
int vmsnap_list(vmsnap_ctx *ctx, const char *domain, unsigned flags,
                const vmsnap_how *how, vmsnap_op **opp);
int vmsnap_get(vmsnap_ctx *ctx, const char *domain, const char *name,
               const vmsnap_how *how, vmsnap_op **opp);

enum {
  VMSNAP_REVERT_RUNNING = 1u << 0, /* resume the guest after (memory snapshots) */
  VMSNAP_REVERT_PAUSED = 1u << 1,  /* leave it paused after */
  VMSNAP_REVERT_FORCE = 1u << 2,   /* despite a disk-set mismatch or disks in use */
};
int vmsnap_revert(vmsnap_ctx *ctx, const char *domain, const char *name,
                  unsigned flags, const vmsnap_how *how, vmsnap_op **opp);

enum {
  VMSNAP_DELETE_CHILDREN = 1u << 0,      /* the snapshot and all below it */
  VMSNAP_DELETE_CHILDREN_ONLY = 1u << 1, /* only what is below it */
  VMSNAP_DELETE_METADATA_ONLY = 1u << 2, /* forget it, keep storage objects */
};
int vmsnap_delete(vmsnap_ctx *ctx, const char *domain, const char *name,
                  unsigned flags, const vmsnap_how *how, vmsnap_op **opp);

/* Finishes or rolls back half-done operations (domain NULL: every domain). */
int vmsnap_recover(vmsnap_ctx *ctx, const char *domain,
                   const vmsnap_how *how, vmsnap_op **opp);

/* ---- snapshot accessors ------------------------------------------- */

const char *vmsnap_snapshot_name(const vmsnap_snapshot *s);
const char *vmsnap_snapshot_uuid(const vmsnap_snapshot *s);
const char *vmsnap_snapshot_domain(const vmsnap_snapshot *s);
const char *vmsnap_snapshot_description(const vmsnap_snapshot *s); /* "" if none */
const char *vmsnap_snapshot_parent(const vmsnap_snapshot *s);      /* name or NULL */
/* "running", "paused" or "shutoff" at the time of the snapshot */
const char *vmsnap_snapshot_state(const vmsnap_snapshot *s);
void vmsnap_snapshot_ctime(const vmsnap_snapshot *s, int64_t *sec, long *nsec);
int vmsnap_snapshot_is_current(const vmsnap_snapshot *s);
/* Found on storage but not recorded by vmsnap (made by another tool). */
int vmsnap_snapshot_is_foreign(const vmsnap_snapshot *s);
const char *vmsnap_snapshot_memory(const vmsnap_snapshot *s); /* path or NULL */
size_t vmsnap_snapshot_disk_count(const vmsnap_snapshot *s);
const char *vmsnap_snapshot_disk_target(const vmsnap_snapshot *s, size_t i);
const char *vmsnap_snapshot_disk_source(const vmsnap_snapshot *s, size_t i);
const char *vmsnap_snapshot_disk_format(const vmsnap_snapshot *s, size_t i);
const char *vmsnap_snapshot_disk_backend(const vmsnap_snapshot *s, size_t i);
/* The backend's data for disk i as a JSON object text. */
const char *vmsnap_snapshot_disk_data(const vmsnap_snapshot *s, size_t i);
/* The whole snapshot as JSON (the stored document); free with free(). */
char *vmsnap_snapshot_to_json(const vmsnap_snapshot *s);

#ifdef __cplusplus
}
#endif
#endif /* VMSNAP_H */
