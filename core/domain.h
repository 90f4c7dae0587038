/* domain.h — domain drivers: what a domain is and how to drive it.
 *
 * `offline` (a named set of disks, no hypervisor) is built now; `qmp` (a
 * running QEMU) and `xen` (libxenlight) plug into the same table: they
 * report the domain's state and disks, pause/resume it and save/restore
 * its memory around the disk snapshots. */
#ifndef VMSNAP_DOMAIN_H
#define VMSNAP_DOMAIN_H

#include "internal.h"

typedef struct domain_ref domain_ref;

typedef struct domain_driver {
  const char *scheme;   /* "offline", "qmp", "xen" */
  /* "running", "paused" or "shutoff" */
  const char *(*state)(domain_ref *d);
  /* The disks the hypervisor reports, as disk documents, or NULL when the
   * driver has none (offline: the remembered set is used). */
  json_t *(*disks)(domain_ref *d, vs_err *err);
  int (*pause)(domain_ref *d, vs_err *err);
  int (*resume)(domain_ref *d, vs_err *err);
  /* Memory image to a file (0600); restore starts the domain from it. */
  int (*save_memory)(domain_ref *d, const char *path, vs_err *err);
  int (*restore_memory)(domain_ref *d, const char *path, int paused, vs_err *err);
} domain_driver;

struct domain_ref {
  const domain_driver *drv;
  char *key;     /* the store key: the name, or the hypervisor's UUID */
  char *address; /* qmp socket path, xen name/domid; NULL offline */
};

/* Parses DOMAIN as the user wrote it. */
int domain_resolve(vmsnap_ctx *ctx, const char *spec, domain_ref **out, vs_err *err);
void domain_ref_free(domain_ref *d);

#endif
