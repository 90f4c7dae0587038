/* bad_abi.c — claims a future plugin ABI: the loader must skip it. */
#include <vmsnap/vmsnap-plugin.h>
static int probe(const vmsnap_disk *d) { (void)d; return 0; }
static uint64_t caps(const vmsnap_disk *d) { (void)d; return 0; }
static int op(vmsnap_job *j, const vmsnap_job_info *i) { (void)j; (void)i; return 0; }
static const vmsnap_plugin ops = {.name = "bad_abi", .version = "1", .probe = probe,
  .capabilities = caps, .create = op, .remove = op, .revert = op};
__attribute__((visibility("default"))) const vmsnap_plugin *
vmsnap_plugin_init(size_t *struct_size, uint32_t *abi_version);
const vmsnap_plugin *vmsnap_plugin_init(size_t *struct_size, uint32_t *abi_version)
{
  *struct_size = sizeof ops;
  *abi_version = 999;
  return &ops;
}
