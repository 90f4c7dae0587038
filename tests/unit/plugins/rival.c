/* rival.c — a backend that bids higher than mock (60 against 50) for the
 * mock disks whose path has "rival" in it: the disk-backend choice tests
 * use it as "a better plugin installed since the first snapshot". */
#include <stddef.h>
#include <string.h>
#include <vmsnap/vmsnap-plugin.h>
static int probe(const vmsnap_disk *d) { return strstr(d->source, "rival") ? 60 : 0; }
static uint64_t caps(const vmsnap_disk *d) { (void)d; return 0; }
static int op(vmsnap_job *j, const vmsnap_job_info *i) { (void)j; (void)i; return 0; }
static const vmsnap_plugin ops = {.name = "rival", .version = "1", .probe = probe,
  .capabilities = caps, .create = op, .remove = op, .revert = op};
__attribute__((visibility("default"))) const vmsnap_plugin *
vmsnap_plugin_init(size_t *struct_size, uint32_t *abi_version);
const vmsnap_plugin *vmsnap_plugin_init(size_t *struct_size, uint32_t *abi_version)
{
  *struct_size = sizeof ops;
  *abi_version = VMSNAP_PLUGIN_ABI_VERSION;
  return &ops;
}
