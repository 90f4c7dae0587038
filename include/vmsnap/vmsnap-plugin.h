/* vmsnap-plugin.h — the ABI between libvmsnap and storage backend plugins.
 *
 * A backend is a shared object with one exported symbol, vmsnap_plugin_init,
 * defined by VMSNAP_REGISTER_PLUGIN(ops). The core dlopens it with
 * RTLD_NOW|RTLD_LOCAL, checks struct_size and abi_version, copies up to the
 * plugin's struct_size (zero-filling fields the plugin does not know), and
 * refuses it when a required op is missing. The contract, op by op, is in
 * docs/vmsnap-plugin.md; plugins/example/ is a minimal backend.
 *
 * Rules: plugins never fork or exec (use host->spawn), never touch signals,
 * never open QMP (return transaction actions instead), never write vmsnap
 * metadata (store what they need with host->set; the core journals it).
 * Ops run on core worker threads, one thread per disk job, several jobs of
 * one plugin at once: keep no unlocked global state.
 */
#ifndef VMSNAP_PLUGIN_H
#define VMSNAP_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <vmsnap/vmsnap.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMSNAP_PLUGIN_ABI_VERSION 1

typedef struct vmsnap_job vmsnap_job; /* core-owned: one disk of one op */

/* A disk as the core resolved it. */
typedef struct vmsnap_disk {
  size_t struct_size;
  const char *domain;    /* domain key */
  const char *target;    /* "vda" */
  const char *source;    /* absolute path of file, block device or subvolume */
  const char *format;    /* "raw" or "qcow2", never NULL, never probed */
  const char *mode;      /* NULL, "internal" or "external" */
  const char *file;      /* user's file= option, or NULL */
  int is_block_device;
  int live;              /* served by a running QEMU: use host->qmp_action */
  const char *node_name; /* the QEMU block node when live, else NULL */
  /* Where the domain's disk with this target is now, or NULL if unknown.
   * For a snapshot's job it may differ from source (the disk as it was
   * then): a live external snapshot moves the active image. */
  const char *active;
  /* Added after active (check struct_size): the disk's backend options
   * (snapctl --disk ...,KEY=VALUE) as "key", "value" pairs ending with NULL,
   * or NULL for none; only keys the plugin lists in disk_options. */
  const char *const *options;
} vmsnap_disk;

typedef enum vmsnap_job_kind {
  VMSNAP_JOB_CREATE = 1,
  VMSNAP_JOB_DELETE = 2,
  VMSNAP_JOB_REVERT = 3,
  VMSNAP_JOB_LIST = 4,
  VMSNAP_JOB_ROLLBACK = 5, /* undo a create that did not finish */
} vmsnap_job_kind;

/* Job flags */
#define VMSNAP_JOB_FORCE (1u << 0)     /* user forced (in use, mismatch) */
#define VMSNAP_JOB_RECOVERY (1u << 1)  /* run by recover after a crash: the
                                          previous attempt may have stopped
                                          anywhere; be idempotent */

typedef struct vmsnap_host vmsnap_host;

typedef struct vmsnap_job_info {
  size_t struct_size;
  const vmsnap_host *host;    /* the core's services (same as load got) */
  vmsnap_job_kind kind;
  unsigned flags;             /* VMSNAP_JOB_* */
  const vmsnap_disk *disk;
  const char *snapshot_name;  /* NULL for LIST */
  const char *snapshot_uuid;  /* NULL for LIST */
  /* Name for objects this snapshot creates: derived from the snapshot name,
   * starts with "vmsnap-" (the mark), only [A-Za-z0-9+._-], at most 200
   * bytes; a backend with shorter limits truncates and keeps it unique. */
  const char *object_name;
} vmsnap_job_info;

/* One storage object a LIST job found. */
typedef struct vmsnap_list_entry {
  size_t struct_size;
  const char *object;   /* backend's name for it (file, tag, LV…) */
  const char *snapshot_name; /* recovered from a vmsnap mark, else NULL */
  int64_t ctime_sec;    /* 0 if unknown */
  uint64_t size;        /* bytes it holds, 0 if unknown */
  const char *note;     /* e.g. "holds VM state", or NULL */
} vmsnap_list_entry;

/* Spawn a tool: argv[0] is looked up on PATH by the core. */
typedef int vmsnap_line_fn(void *user, const char *line, uint64_t *done, uint64_t *total);

typedef struct vmsnap_spawn_opts {
  size_t struct_size;
  /* Called for each line of the tool's stdout and stderr (split on \n and \r);
   * return 1 after setting *done and *total to report progress, else 0. */
  vmsnap_line_fn *line;
  void *line_user;
  int capture_stdout;       /* keep stdout in result->out */
  const char *const *env_add; /* extra "K=V" entries, NULL-terminated, or NULL */
} vmsnap_spawn_opts;

typedef struct vmsnap_spawn_result {
  size_t struct_size;
  int exit_status;        /* 0..255, or -1 if killed by a signal */
  int term_signal;        /* the signal, when exit_status == -1 */
  char *out;              /* captured stdout (NUL-terminated), free with free() */
  char err_tail[1024];    /* the last lines of stderr, for messages */
} vmsnap_spawn_result;

/* host->siblings: one other recorded snapshot of the same disk. data holds
 * its backend data as "key", "value" pairs, NULL-terminated; valid only
 * during the call. Return non-zero to stop. */
typedef int vmsnap_sibling_fn(void *user, const char *snapshot_uuid, const char *snapshot_name,
                              const char *const *data);

/* Services the core gives a plugin (passed to load). */
struct vmsnap_host {
  size_t struct_size;
  uint32_t abi_version;

  /* Progress of this job in bytes; cheap, call as often as you like. */
  void (*progress)(vmsnap_job *job, uint64_t done, uint64_t total);
  /* Non-zero once the op was cancelled: stop, clean up, return
   * VMSNAP_E_CANCELLED. */
  int (*cancelled)(vmsnap_job *job);
  /* Records the job's error message; returns code so ops can
   * `return host->error(job, VMSNAP_E_BACKEND, "...");` */
  int (*error)(vmsnap_job *job, int code, const char *fmt, ...)
      __attribute__((format(printf, 3, 4)));
  /* A warning shown to the user with the op's result. */
  void (*warn)(vmsnap_job *job, const char *fmt, ...)
      __attribute__((format(printf, 2, 3)));
  /* Log for debugging. level: VMSNAP_LOG_*. With job == NULL (e.g. in
   * load) warnings and errors go to stderr, the rest is dropped. */
  void (*log)(vmsnap_job *job, int level, const char *fmt, ...)
      __attribute__((format(printf, 3, 4)));

  /* Runs a tool (argv only, never a shell) and waits for it; returns 0 when
   * it ran (check result->exit_status), VMSNAP_E_CANCELLED if the op was
   * cancelled (the tool got SIGTERM, then SIGKILL), or another error if it
   * could not be started (the message is set). */
  int (*spawn)(vmsnap_job *job, const char *const argv[],
               const vmsnap_spawn_opts *opts, vmsnap_spawn_result *result);

  /* The backend data of this job's disk snapshot: string key/value pairs
   * the core stores in the snapshot's metadata. A create sets them BEFORE it
   * makes anything (in prepare), so a crash can be rolled back; delete and
   * revert read them. get returns NULL for a missing key. */
  const char *(*get)(vmsnap_job *job, const char *key);
  int (*set)(vmsnap_job *job, const char *key, const char *value);
  /* Changes the backend data of another snapshot of the same disk (a rebased
   * layer, a renamed LV…); the core journals and writes it with the op. */
  int (*set_other)(vmsnap_job *job, const char *snapshot_uuid,
                   const char *key, const char *value);

  /* LIST: report one object found on storage. */
  int (*list_entry)(vmsnap_job *job, const vmsnap_list_entry *entry);

  /* Live disks: add one QMP transaction action, e.g. type
   * "blockdev-snapshot-internal-sync", data "{\"node-name\":…}". The core
   * merges the actions of every disk into ONE transaction and then calls
   * the plugin's live_done with the outcome. */
  int (*qmp_action)(vmsnap_job *job, const char *type, const char *data_json);

  /* Live disks: runs one QMP command (not a block job) on the monitor of the
   * QEMU that serves the disk, e.g. "blockdev-snapshot-delete-internal-sync".
   * *return_json (may be NULL; free with free()) receives QEMU's "return".
   * VMSNAP_E_UNSUPPORTED when the disk is not live. The core connects
   * briefly: QEMU serves one monitor client at a time. */
  int (*qmp_command)(vmsnap_job *job, const char *command, const char *args_json,
                     char **return_json);
  /* Live disks: starts a block job ("block-commit", "block-stream"…) with
   * args_json — the core adds "job-id" and "auto-dismiss": false, so recover
   * can read its outcome — and waits for it, reporting progress and
   * cancelling it (job-cancel) when the op is cancelled. A job that becomes
   * "ready" (active commit) is completed (pivot) when complete_when_ready,
   * else cancelled after ready (no pivot). Returns 0 or an error. */
  int (*qmp_job)(vmsnap_job *job, const char *command, const char *args_json,
                 int complete_when_ready);

  /* Calls fn for every OTHER recorded snapshot of this job's disk (same
   * target) that this backend made, with its backend data: a backend whose
   * objects depend on each other (a qcow2 backing chain) finds them here,
   * and changes them with set_other. Returns 0, or what fn returned. */
  int (*siblings)(vmsnap_job *job, vmsnap_sibling_fn *fn, void *user);
};

/* The ops table a plugin registers. */
typedef struct vmsnap_plugin {
  /* The size of this struct and the ABI version are reported by
   * vmsnap_plugin_init (VMSNAP_REGISTER_PLUGIN fills them in). */
  const char *name;        /* required: [a-z0-9_-]+, used in backend= */
  const char *version;     /* required */
  const char *description; /* one line */

  /* Optional: once after loading, before any other op. Non-zero = refuse. */
  int (*load)(const vmsnap_host *host);
  /* Optional: once before unloading. */
  void (*unload)(void);

  /* Optional: can this backend work here at all (tools, privileges)?
   * Returns 1, or 0 with a reason in why. */
  int (*available)(char *why, size_t whylen);

  /* Required: how well this backend takes the disk: 0 = not at all, higher
   * = better (dd, the fallback, answers 10). Must not change anything. */
  int (*probe)(const vmsnap_disk *disk);

  /* Required: VMSNAP_CAP_* for this disk; disk == NULL asks for everything
   * the backend can do at best (shown by `snapctl plugins`). */
  uint64_t (*capabilities)(const vmsnap_disk *disk);

  /* Optional: before create or revert touches any disk. Validate, check
   * space, decide object names and record them with host->set. Changes
   * nothing on storage. */
  int (*prepare)(vmsnap_job *job, const vmsnap_job_info *info);

  /* Required: make the disk snapshot. On error or cancel remove what this
   * call made. For a live disk, add actions with host->qmp_action instead. */
  int (*create)(vmsnap_job *job, const vmsnap_job_info *info);

  /* Required: remove the disk snapshot described by the job's data. Called
   * for DELETE and ROLLBACK; a missing object is success (idempotent). */
  int (*remove)(vmsnap_job *job, const vmsnap_job_info *info);

  /* Required: first phase of revert: every step that can still be undone
   * (e.g. stage a copy). A backend without phases does everything here. */
  int (*revert)(vmsnap_job *job, const vmsnap_job_info *info);
  /* Optional: second phase, the irreversible steps; runs only after every
   * disk's revert succeeded. Must be restartable after a crash. */
  int (*revert_finish)(vmsnap_job *job, const vmsnap_job_info *info);
  /* Optional: undo the first phase (another disk failed, or cancel). */
  int (*revert_abort)(vmsnap_job *job, const vmsnap_job_info *info);

  /* Optional: report the objects on storage with host->list_entry. */
  int (*list)(vmsnap_job *job, const vmsnap_job_info *info);

  /* Optional: a live create's transaction ran; return_json is QEMU's
   * "return" (or NULL and rc < 0 on failure). */
  int (*live_done)(vmsnap_job *job, const vmsnap_job_info *info, int rc,
                   const char *return_json);

  /* Optional: the per-disk option keys this backend takes ([a-z0-9_-]+),
   * NULL-terminated; the core refuses any other key given for a disk it
   * picks this backend for. NULL: none. */
  const char *const *disk_options;
} vmsnap_plugin;

#define VMSNAP_PLUGIN_INIT_SYMBOL "vmsnap_plugin_init"

/* Defines the one exported entry point. Use once per plugin:
 *   static const vmsnap_plugin ops = { .name = "x", ... };
 *   VMSNAP_REGISTER_PLUGIN(ops)  */
#ifdef __cplusplus
#define VMSNAP_PLUGIN_EXTERN_C extern "C"
#else
#define VMSNAP_PLUGIN_EXTERN_C
#endif
#define VMSNAP_REGISTER_PLUGIN(ops)                                           \
  VMSNAP_PLUGIN_EXTERN_C __attribute__((visibility("default")))              \
  const vmsnap_plugin *vmsnap_plugin_init(size_t *struct_size,               \
                                          uint32_t *abi_version);            \
  VMSNAP_PLUGIN_EXTERN_C __attribute__((visibility("default")))              \
  const vmsnap_plugin *vmsnap_plugin_init(size_t *struct_size,               \
                                          uint32_t *abi_version)             \
  {                                                                           \
    *struct_size = sizeof(vmsnap_plugin);                                     \
    *abi_version = VMSNAP_PLUGIN_ABI_VERSION;                                 \
    return &(ops);                                                            \
  }

#ifdef __cplusplus
}
#endif
#endif /* VMSNAP_PLUGIN_H */
