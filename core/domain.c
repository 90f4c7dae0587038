/* domain.c — picks the domain driver from how the domain is written. */
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "names.h"

static int offline_state(domain_ref *d, const char **state, vs_err *err)
{
  (void)d; (void)err;
  *state = "shutoff";
  return 0;
}

static int offline_disks(domain_ref *d, json_t **docs, vs_err *err)
{
  (void)d; (void)err;
  *docs = NULL;
  return 0;
}

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
  if (strncmp(spec, "qmp:", 4) == 0) return domain_qmp_resolve(spec + 4, out, err);
  if (strncmp(spec, "xen:", 4) == 0)
    return err_set(err, VMSNAP_E_UNSUPPORTED,
                   "domain '%s': the xen domain driver is not part of this build yet; "
                   "for disks no hypervisor holds, use a plain domain name with --disk", spec);
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
