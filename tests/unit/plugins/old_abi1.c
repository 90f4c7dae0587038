/* old_abi1.c — an ABI 1 plugin built when the ops table ended at `revert`
 * (as if compiled against an older header): it must load, and the fields
 * it does not know must read as NULL. */
#include <stddef.h>
#include <vmsnap/vmsnap-plugin.h>
static int probe(const vmsnap_disk *d) { (void)d; return 0; }
static uint64_t caps(const vmsnap_disk *d) { (void)d; return 0; }
static int op(vmsnap_job *j, const vmsnap_job_info *i) { (void)j; (void)i; return 0; }
/* Garbage after the reported size: the loader must not copy it. */
static const vmsnap_plugin ops = {.name = "old_abi1", .version = "0.9", .probe = probe,
  .capabilities = caps, .create = op, .remove = op, .revert = op,
  .revert_finish = (void *)1, .list = (void *)1};
__attribute__((visibility("default"))) const vmsnap_plugin *
vmsnap_plugin_init(size_t *struct_size, uint32_t *abi_version);
const vmsnap_plugin *vmsnap_plugin_init(size_t *struct_size, uint32_t *abi_version)
{
  *struct_size = offsetof(vmsnap_plugin, revert) + sizeof ops.revert;
  *abi_version = VMSNAP_PLUGIN_ABI_VERSION;
  return &ops;
}
