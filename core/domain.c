/* domain.c — picks the domain driver from how the domain is written. */
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "names.h"
#include "store.h"

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
  *out = NULL;
  if (!spec) return err_set(err, VMSNAP_E_INVALID, "no domain given");
  if (strncmp(spec, "qmp:", 4) == 0) return domain_qmp_resolve(ctx, spec + 4, out, err);
  if (strncmp(spec, "xen:", 4) == 0)
    return err_set(err, VMSNAP_E_UNSUPPORTED,
                   "domain '%s': the xen domain driver is not part of this build yet; "
                   "for disks no hypervisor holds, use a plain domain name with --disk", spec);
  int rc = name_validate(spec, "domain name", err);
  if (rc) return rc;
  *out = domain_offline(spec);
  return *out ? 0 : err_set(err, VMSNAP_E_NOMEM, "out of memory");
}

domain_ref *domain_offline(const char *key)
{
  domain_ref *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->drv = &offline_driver;
  d->key = xstrdup(key);
  return d;
}

int domain_find_by_address(vmsnap_ctx *ctx, const char *address, domain_ref **out)
{
  json_t *names;
  vs_err err = {0};
  int rc = VMSNAP_E_NOT_FOUND;
  if (store_list_domains(ctx, &names, &err)) return rc;
  size_t i;
  json_t *n;
  json_array_foreach(names, i, n) {
    store_domain *sd;
    vs_err e2 = {0};
    if (store_open(ctx, json_string_value(n), STORE_READ, &sd, &e2)) continue;
    const char *addr = jstr(sd->doc, "address");
    if (rc && addr && strcmp(addr, address) == 0) {
      *out = domain_offline(sd->name);
      rc = *out ? 0 : VMSNAP_E_NOMEM;
    }
    store_close(sd);
  }
  json_decref(names);
  return rc;
}

void domain_hold(domain_ref *d, int on)
{
  if (d && d->drv->hold) d->drv->hold(d, on);
}

void domain_ref_free(domain_ref *d)
{
  if (!d) return;
  if (d->drv->dispose) d->drv->dispose(d);
  free(d->key);
  free(d->address);
  free(d);
}
