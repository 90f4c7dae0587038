/* domain.h — domain drivers: what a domain is and how to drive it.
 *
 * `offline` (a named set of disks, no hypervisor) and `qmp` (a running
 * QEMU, through its monitor socket) are built; `xen` (libxenlight) plugs
 * into the same table. A driver reports the domain's state and disks,
 * pauses/resumes it and saves/restores its memory around the disk
 * snapshots (memory: planned). */
#ifndef VMSNAP_DOMAIN_H
#define VMSNAP_DOMAIN_H

#include "internal.h"

typedef struct domain_ref domain_ref;

typedef struct domain_driver {
  const char *scheme; /* "offline", "qmp", "xen" */
  /* "running", "paused" or "shutoff" (a static string). */
  int (*state)(domain_ref *d, const char **state, vs_err *err);
  /* The disks the hypervisor serves, as disk documents with live and
   * node_name set, or NULL (offline: the remembered set is used). */
  int (*disks)(domain_ref *d, json_t **docs, vs_err *err);
  /* One QMP command on the domain's monitor (NULL: not a QEMU domain). */
  int (*qmp)(domain_ref *d, const char *cmd, json_t *args, json_t **ret, vs_err *err);
  /* Runs a block job to its end (see host->qmp_job). */
  int (*qmp_job)(domain_ref *d, const char *cmd, json_t *args, int complete_when_ready,
                 vmsnap_op *op, void (*progress)(void *, uint64_t, uint64_t), void *puser,
                 vs_err *err);
  int (*pause)(domain_ref *d, vs_err *err);
  int (*resume)(domain_ref *d, vs_err *err);
  /* Memory image to a file (0600); restore starts the domain from it. */
  int (*save_memory)(domain_ref *d, const char *path, vs_err *err);
  int (*restore_memory)(domain_ref *d, const char *path, int paused, vs_err *err);
  /* Keeps one connection to the hypervisor for the calls that follow
   * (on) or drops it (off); NULL: nothing to keep. See domain_hold. */
  void (*hold)(domain_ref *d, int on);
  void (*dispose)(domain_ref *d); /* frees priv */
} domain_driver;

struct domain_ref {
  const domain_driver *drv;
  char *key;     /* the store key: the name, or derived from the hypervisor */
  char *address; /* qmp socket path, xen name/domid; NULL offline */
  void *priv;    /* the driver's own */
};

/* Parses DOMAIN as the user wrote it (a qmp: domain is asked who it is). */
int domain_resolve(vmsnap_ctx *ctx, const char *spec, domain_ref **out, vs_err *err);
void domain_ref_free(domain_ref *d);
/* An op holds the domain's monitor from when it has the domain's lock
 * (on) until it lets the lock go (off): its calls share one connection
 * instead of connecting for each. Never while waiting for the lock: the
 * op holding it may need the monitor (QEMU serves one client at a time). */
void domain_hold(domain_ref *d, int on);

/* The qmp driver (domain_qmp.c). */
int domain_qmp_resolve(vmsnap_ctx *ctx, const char *socket_path, domain_ref **out,
                       vs_err *err);
/* An offline ref to the stored domain last seen at this hypervisor
 * address (a QMP socket of a QEMU that has exited); NOT_FOUND if none. */
int domain_find_by_address(vmsnap_ctx *ctx, const char *address, domain_ref **out);
/* The offline driver for a known key. */
domain_ref *domain_offline(const char *key);

#endif
