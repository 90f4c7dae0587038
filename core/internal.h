/* internal.h — types shared inside libvmsnap (never installed). */
#ifndef VMSNAP_INTERNAL_H
#define VMSNAP_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <vmsnap/vmsnap-plugin.h>
#include <vmsnap/vmsnap.h>

#define VS_MSG_MAX 1024

/* An error: the code and a message a person can act on. The first error
 * set wins, so the root cause is what the user sees. */
typedef struct vs_err {
  int code;
  char msg[VS_MSG_MAX];
} vs_err;

int err_set(vs_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int err_setv(vs_err *e, int code, const char *fmt, va_list ap);
/* Replaces whatever was there (used to add context around a deeper error). */
int err_wrap(vs_err *e, const char *prefix_fmt, ...) __attribute__((format(printf, 2, 3)));
int err_from_errno(int errnum);

/* ---- plugins -------------------------------------------------------- */

typedef struct plugin {
  vmsnap_plugin ops; /* copied up to the plugin's struct_size, rest zero */
  void *dl;
  char *path;
  int available;
  char why[256];
} plugin;

/* A *.so file of the plugin path, loaded on demand. */
typedef struct loader_file {
  char *path;
  int tried; /* loaded, or failed with why */
  char *why;
} loader_file;

/* Lists the plugin files of a colon-separated path (nothing is loaded). */
int loader_load_path(vmsnap_ctx *ctx, const char *path);
/* Loads every listed file (probe, listing); thread-safe. */
void loader_load_all(vmsnap_ctx *ctx);
void loader_unload_all(vmsnap_ctx *ctx);
/* The backend with that name, loading <name>.so (else every file) when
 * it is not loaded yet; NULL when none has it. Thread-safe. */
const plugin *loader_find(const vmsnap_ctx *ctx, const char *name);
/* Why the file <name>.so could not be loaded, or NULL. */
const char *loader_failure(const vmsnap_ctx *ctx, const char *name);
extern const vmsnap_host vs_host;

/* ---- context -------------------------------------------------------- */

typedef struct dispatch_item dispatch_item;

struct vmsnap_ctx {
  char *state_dir;
  vmsnap_log_fn *log;
  void *log_user;
  int log_level;
  unsigned flags;

  /* Grown on demand under plugins_lock; fixed once all_loaded is set. */
  pthread_mutex_t plugins_lock;
  plugin **plugins;
  size_t nplugins;
  loader_file *plugin_files;
  size_t nfiles;
  int all_loaded;

  pthread_mutex_t lock; /* guards the dispatch queue and running */
  pthread_cond_t idle;
  int running;          /* ops not yet finished */
  int evfd;             /* eventfd: callbacks queued for the host */
  dispatch_item *qhead, *qtail;
};

void ctx_log(vmsnap_ctx *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- snapshots (in memory) ------------------------------------------ */

/* A snapshot document plus what list computes around it. */
struct vmsnap_snapshot {
  json_t *doc;        /* the stored document */
  char *parent_name;  /* resolved from doc.parent (a uuid) */
  char **disk_data;   /* JSON text of each disk's backend data */
  size_t ndisks;
  int current;
  int foreign;
};

vmsnap_snapshot *snapshot_wrap(json_t *doc); /* steals a reference */
void snapshot_free(vmsnap_snapshot *s);
const char *jstr(const json_t *obj, const char *key); /* "" → NULL-safe */

/* ---- operations ------------------------------------------------------ */

typedef struct vmsnap_op vmsnap_op;
typedef int op_body_fn(vmsnap_op *op);

typedef enum op_kind {
  OP_CREATE, OP_LIST, OP_GET, OP_DELETE, OP_REVERT, OP_RECOVER
} op_kind;

struct vmsnap_op {
  vmsnap_ctx *ctx;
  op_kind kind;
  atomic_int refs;
  atomic_int cancel_requested;
  /* Set once past a point of no return: cancel is then ignored. */
  atomic_int uncancellable;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  int finished;  /* the result can be read (also inside the callbacks) */
  int delivered; /* the completion ran or was queued: waiters may return */
  int rc;
  vs_err err;
  vmsnap_how how;

  /* results */
  vmsnap_snapshot **snaps;
  size_t nsnaps;
  char **warnings;
  size_t nwarnings;

  /* progress across jobs */
  const char *phase;
  uint64_t *job_done, *job_total;
  size_t njobs_progress;
  uint64_t last_progress_ns;

  /* arguments (owned copies) */
  char *domain;
  char *name;
  unsigned flags;
  json_t *create_args; /* disks and text of a create */
  op_body_fn *body;
  struct domain_ref *dom; /* set by the body once resolved (live disks) */
  struct store_domain *store; /* the domain's store while the body has it open */
  json_t *dom_disks;      /* the domain's disks now (disk->active); body-owned */
};

/* Starts body on a worker thread; sync when how is NULL or has no done. */
int op_start(vmsnap_ctx *ctx, op_kind kind, const vmsnap_how *how,
             vmsnap_op **opp, vmsnap_op *op);
vmsnap_op *op_new(vmsnap_ctx *ctx, op_kind kind);
/* New op with copies of domain/name/flags, started with op_start. */
int op_start_named(vmsnap_ctx *ctx, op_kind kind, op_body_fn *body, const char *domain,
                   const char *name, unsigned flags, const vmsnap_how *how, vmsnap_op **opp);
/* For a call that cannot start: frees how's closures, returns rc. */
int op_refuse(const vmsnap_how *how, int rc);
int op_cancelled(vmsnap_op *op);
void op_add_result(vmsnap_op *op, vmsnap_snapshot *s);
void op_warn(vmsnap_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void op_set_phase(vmsnap_op *op, const char *phase, size_t njobs);
void op_job_progress(vmsnap_op *op, size_t job, const char *disk,
                     uint64_t done, uint64_t total);

/* ---- dispatch (host event loop) -------------------------------------- */

void dispatch_progress(vmsnap_op *op, const vmsnap_progress *p);
void dispatch_done(vmsnap_op *op);
void dispatch_drain(vmsnap_ctx *ctx);

/* ---- misc ------------------------------------------------------------ */

uint64_t now_ns(void);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Test hook: VMSNAP_CRASHPOINT=NAME kills the process with SIGKILL at that
 * point of an operation, so tests can prove recover handles every step. */
void crashpoint(const char *name);

#endif
