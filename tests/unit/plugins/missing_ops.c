/* missing_ops.c — has no create op: the loader must skip it. */
#include <vmsnap/vmsnap-plugin.h>
static int probe(const vmsnap_disk *d) { (void)d; return 0; }
static uint64_t caps(const vmsnap_disk *d) { (void)d; return 0; }
static int op(vmsnap_job *j, const vmsnap_job_info *i) { (void)j; (void)i; return 0; }
static const vmsnap_plugin ops = {.name = "missing_ops", .version = "1", .probe = probe,
  .capabilities = caps, .remove = op, .revert = op};
VMSNAP_REGISTER_PLUGIN(ops)
