/* test_loader.c — good, broken, foreign, wrong-ABI and unsafe plugins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "disks.h"
#include "internal.h"
#include "testutil.h"

static int has_backend(vmsnap_ctx *ctx, const char *name)
{
  for (size_t i = 0; i < vmsnap_backend_count(ctx); i++) {
    vmsnap_backend_info info = {.struct_size = sizeof info};
    assert_int_equal(vmsnap_backend_get(ctx, i, &info), 0);
    if (strcmp(info.name, name) == 0) return 1;
  }
  return 0;
}

static void test_good_and_bad_plugins(void **state)
{
  (void)state;
  char *dir = tu_tempdir();
  tu_log_reset();
  vmsnap_ctx *ctx = tu_ctx(dir, 0);
  assert_true(has_backend(ctx, "mock"));
  assert_true(has_backend(ctx, "old_abi1"));
  assert_false(has_backend(ctx, "bad_abi"));
  assert_false(has_backend(ctx, "missing_ops"));
  /* every skip names the file and the reason */
  assert_non_null(strstr(tu_log, "bad_abi.so: built for plugin ABI 999"));
  assert_non_null(strstr(tu_log, "missing_ops.so: required op 'create' is missing"));
  assert_non_null(strstr(tu_log, "not_plugin.so: not a vmsnap plugin"));
  vmsnap_ctx_free(ctx);
  tu_rmtree(dir);
  free(dir);
}

static void test_old_plugin_zero_filled(void **state)
{
  (void)state;
  char *dir = tu_tempdir();
  vmsnap_ctx *ctx = tu_ctx(dir, 0);
  const plugin *p = loader_find(ctx, "old_abi1");
  assert_non_null(p);
  /* fields past its struct_size must not be copied from its table */
  assert_null(p->ops.revert_finish);
  assert_null(p->ops.list);
  assert_null(p->ops.live_done);
  vmsnap_ctx_free(ctx);
  tu_rmtree(dir);
  free(dir);
}

static void copy(const char *from, const char *to, mode_t mode)
{
  char cmd[8192];
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  assert_non_null(in);
  assert_non_null(out);
  size_t n;
  while ((n = fread(cmd, 1, sizeof cmd, in)) > 0) fwrite(cmd, 1, n, out);
  fclose(in);
  fclose(out);
  chmod(to, mode);
}

static void test_unsafe_dir_and_file(void **state)
{
  (void)state;
  char *dir = tu_tempdir();
  char open_dir[4096], safe_dir[4096], path[4200];
  snprintf(open_dir, sizeof open_dir, "%s/world-writable", dir);
  snprintf(safe_dir, sizeof safe_dir, "%s/safe", dir);
  mkdir(open_dir, 0755);
  chmod(open_dir, 0777);
  mkdir(safe_dir, 0755);
  snprintf(path, sizeof path, "%s/mock.so", open_dir);
  copy(TEST_PLUGIN_DIR "/mock.so", path, 0755);
  snprintf(path, sizeof path, "%s/mock.so", safe_dir);
  copy(TEST_PLUGIN_DIR "/mock.so", path, 0666); /* writable by others */
  snprintf(path, sizeof path, "%s/old.so", safe_dir);
  copy(TEST_PLUGIN_DIR "/old_abi1.so", path, 0755);

  char plugin_path[8300];
  snprintf(plugin_path, sizeof plugin_path, "%s:%s", open_dir, safe_dir);
  tu_log_reset();
  vmsnap_ctx *ctx = tu_ctx_path(dir, plugin_path, 0);
  assert_false(has_backend(ctx, "mock"));
  assert_true(has_backend(ctx, "old_abi1")); /* the others still load */
  assert_non_null(strstr(tu_log, "world-writable: the directory is writable by others"));
  assert_non_null(strstr(tu_log, "safe/mock.so: the file is writable by others"));
  vmsnap_ctx_free(ctx);
  tu_rmtree(dir);
  free(dir);
}

static void test_duplicate_name_skipped(void **state)
{
  (void)state;
  char *dir = tu_tempdir();
  char plugin_path[8300];
  snprintf(plugin_path, sizeof plugin_path, "%s:%s", TEST_PLUGIN_DIR, TEST_PLUGIN_DIR);
  tu_log_reset();
  vmsnap_ctx *ctx = tu_ctx_path(dir, plugin_path, 0);
  size_t mocks = 0;
  for (size_t i = 0; i < vmsnap_backend_count(ctx); i++) {
    vmsnap_backend_info info = {.struct_size = sizeof info};
    vmsnap_backend_get(ctx, i, &info);
    mocks += strcmp(info.name, "mock") == 0;
  }
  assert_int_equal(mocks, 1);
  assert_non_null(strstr(tu_log, "backend 'mock' is already loaded"));
  vmsnap_ctx_free(ctx);
  tu_rmtree(dir);
  free(dir);
}

/* Nothing is opened until needed; a named backend loads its own file. */
static void test_lazy_loading(void **state)
{
  (void)state;
  char *dir = tu_tempdir();
  tu_log_reset();
  vmsnap_ctx *ctx = tu_ctx(dir, 0);
  assert_int_equal(ctx->nplugins, 0);
  assert_non_null(loader_find(ctx, "mock"));
  assert_int_equal(ctx->nplugins, 1);
  assert_null(strstr(tu_log, "bad_abi.so")); /* not needed, not opened */
  /* listing loads (and reports) the rest */
  assert_true(has_backend(ctx, "old_abi1"));
  assert_non_null(strstr(tu_log, "bad_abi.so: built for plugin ABI 999"));
  vmsnap_ctx_free(ctx);
  tu_rmtree(dir);
  free(dir);
}

/* A broken plugin in the file a disk's backend needs is refused when it is
 * needed, with the reason; a backend in a file named otherwise is found. */
static void test_lazy_bad_plugin_needed(void **state)
{
  (void)state;
  char *dir = tu_tempdir();
  char plugins[4096], path[4200], disk[4200];
  snprintf(plugins, sizeof plugins, "%s/plugins", dir);
  mkdir(plugins, 0755);
  snprintf(path, sizeof path, "%s/mock.so", plugins);
  copy(TEST_PLUGIN_DIR "/bad_abi.so", path, 0755);
  snprintf(path, sizeof path, "%s/other.so", plugins);
  copy(TEST_PLUGIN_DIR "/old_abi1.so", path, 0755);
  snprintf(disk, sizeof disk, "%s/disk.raw", dir);
  tu_write_file(disk, 'x', 4096);
  vmsnap_ctx *ctx = tu_ctx_path(dir, plugins, 0);
  json_t *docs = json_pack("[{s:s, s:s, s:s}]", "target", "vda", "source", disk, "backend", "mock");
  vs_err err = {0};
  assert_int_equal(disks_resolve(ctx, docs, NULL, &err), VMSNAP_E_NOT_FOUND);
  assert_non_null(strstr(err.msg, "backend 'mock' cannot be loaded"));
  assert_non_null(strstr(err.msg, "built for plugin ABI 999"));
  assert_non_null(strstr(loader_failure(ctx, "mock"), "built for plugin ABI 999"));
  assert_non_null(loader_find(ctx, "old_abi1"));
  json_decref(docs);
  vmsnap_ctx_free(ctx);
  tu_rmtree(dir);
  free(dir);
}

static const char *backend_of(vmsnap_ctx *ctx, const char *disk, json_t *remembered)
{
  static char name[64];
  json_t *docs = json_pack("[{s:s, s:s, s:s}]", "target", "vda", "source", disk, "format", "raw");
  vs_err err = {0};
  assert_int_equal(disks_resolve(ctx, docs, remembered, &err), 0);
  snprintf(name, sizeof name, "%s", jstr(json_array_get(docs, 0), "backend"));
  json_decref(docs);
  return name;
}

/* A disk stays with the backend its domain remembers for it while that one
 * still takes it, and only that plugin is loaded; otherwise the best bid. */
static void test_recorded_backend_kept(void **state)
{
  (void)state;
  char *dir = tu_tempdir();
  char disk[4200], other[4200];
  snprintf(disk, sizeof disk, "%s/rival.mock", dir);
  snprintf(other, sizeof other, "%s/other-rival.mock", dir);
  tu_write_file(disk, 'x', 4096);
  tu_write_file(other, 'x', 4096);
  json_t *mine = json_pack("[{s:s, s:s, s:s, s:s}]", "target", "vda", "source", disk, "format",
                           "raw", "backend", "mock");
  json_t *gone = json_pack("[{s:s, s:s, s:s, s:s}]", "target", "vda", "source", disk, "format",
                           "raw", "backend", "old_abi1"); /* takes no disk */

  vmsnap_ctx *ctx = tu_ctx(dir, 0);
  assert_string_equal(backend_of(ctx, disk, mine), "mock");
  assert_int_equal(ctx->nplugins, 1); /* mock alone: nothing else was compared */
  vmsnap_ctx_free(ctx);

  ctx = tu_ctx(dir, 0);
  assert_string_equal(backend_of(ctx, disk, NULL), "rival");       /* no history */
  assert_string_equal(backend_of(ctx, other, mine), "rival");      /* another source */
  assert_string_equal(backend_of(ctx, disk, gone), "rival");       /* it no longer takes it */
  vmsnap_ctx_free(ctx);
  json_decref(mine);
  json_decref(gone);
  tu_rmtree(dir);
  free(dir);
}

static void test_capability_names(void **state)
{
  (void)state;
  assert_string_equal(vmsnap_cap_name(VMSNAP_CAP_REVERT_KEEPS_NEWER), "revert-keeps-newer");
  assert_string_equal(vmsnap_cap_name(VMSNAP_CAP_BLOCK_DEVICE), "block-device");
  assert_null(vmsnap_cap_name(1ull << 63));
  assert_null(vmsnap_cap_name(3));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_good_and_bad_plugins), cmocka_unit_test(test_old_plugin_zero_filled),
    cmocka_unit_test(test_unsafe_dir_and_file), cmocka_unit_test(test_duplicate_name_skipped),
    cmocka_unit_test(test_capability_names), cmocka_unit_test(test_lazy_loading),
    cmocka_unit_test(test_lazy_bad_plugin_needed), cmocka_unit_test(test_recorded_backend_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
