/* domain.c — picks the domain driver from how the domain is written. */
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "names.h"

static const char *offline_state(domain_ref *d) { (void)d; return "shutoff"; }
static json_t *offline_disks(domain_ref *d, vs_err *err) { (void)d; (void)err; return NULL; }

/* A set of disks no hypervisor runs: no memory, nothing to pause. */
static const domain_driver offline_driver = {
  .scheme = "offline",
  .state = offline_state,
  .disks = offline_disks,
};

int domain_resolve(vmsnap_ctx *ctx, const char *spec, domain_ref **out, vs_err *err)
{
  (void)ctx;
  *out = NULL;
  if (!spec) return err_set(err, VMSNAP_E_INVALID, "no domain given");
  static const char *const planned[] = {"qmp:", "xen:"};
  for (size_t i = 0; i < 2; i++)
    if (strncmp(spec, planned[i], 4) == 0)
      return err_set(err, VMSNAP_E_UNSUPPORTED,
                     "domain '%s': the %.3s domain driver is not part of this build yet; "
                     "for disks no hypervisor holds, use a plain domain name with --disk",
                     spec, planned[i]);
  int rc = name_validate(spec, "domain name", err);
  if (rc) return rc;
  domain_ref *d = calloc(1, sizeof *d);
  if (!d) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  d->drv = &offline_driver;
  d->key = xstrdup(spec);
  *out = d;
  return 0;
}

void domain_ref_free(domain_ref *d)
{
  if (!d) return;
  free(d->key);
  free(d->address);
  free(d);
}
