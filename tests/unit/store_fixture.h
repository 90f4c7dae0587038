/* store_fixture.h — what the store's unit tests share: a state directory
 * and a context per test, and snapshot documents written by hand. */
#ifndef VMSNAP_TEST_STORE_FIXTURE_H
#define VMSNAP_TEST_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "store.h"
#include "testutil.h"

typedef struct fixture {
  char *dir;
  vmsnap_ctx *ctx;
} fixture;

static inline int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  f->ctx = tu_ctx(f->dir, 0);
  *state = f;
  return 0;
}

static inline int teardown(void **state)
{
  fixture *f = *state;
  vmsnap_ctx_free(f->ctx);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static inline json_t *snap_doc(const char *uuid, const char *name, const char *parent, int sec)
{
  return json_pack("{s:i, s:s, s:s, s:s?, s:{s:i, s:i}, s:[{s:s, s:s, s:{s:s, s:s, s:s}}]}",
                   "format", 1, "uuid", uuid, "name", name, "parent", parent, "ctime", "sec", sec,
                   "nsec", 0, "disks", "target", "vda", "backend", "qcow2", "data", "tag", name,
                   "layer_backing", "", "image", "/i.qcow2");
}

static inline void snap_path(fixture *f, const char *dom, const char *file, char *path, size_t len)
{
  snprintf(path, len, "%s/state/domains/%s/snapshots/%s", f->dir, dom, file);
}

#endif
