/* test_domain_qmp.c — the qmp domain driver against a real QEMU: while an
 * op holds the domain, its calls share one monitor connection. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "domain.h"
#include "qemu_vm.h"
#include "qmp.h"

/* Whether QEMU is serving someone else: a new client gets no greeting. */
static int busy_for_others(vm *v)
{
  qmp_conn *c = NULL;
  vs_err err = {0};
  int rc = qmp_open(v->sock, 300, &c, &err);
  if (rc == 0) qmp_close(c);
  return rc == VMSNAP_E_BUSY;
}

static void test_domain_hold(void **state)
{
  vm *v = *state;
  domain_ref *d = NULL;
  vs_err err = {0};
  const char *st = NULL;
  json_t *disks = NULL, *ret = NULL;
  assert_int_equal(domain_qmp_resolve(NULL, v->sock, &d, &err), 0);
  /* Not held: a call connects and lets go at once. */
  assert_int_equal(d->drv->state(d, &st, &err), 0);
  assert_string_equal(st, "running");
  assert_false(busy_for_others(v));
  /* Held: the calls share one connection, kept between them. */
  domain_hold(d, 1);
  assert_int_equal(d->drv->state(d, &st, &err), 0);
  assert_true(busy_for_others(v));
  assert_int_equal(d->drv->disks(d, &disks, &err), 0);
  assert_int_equal(json_array_size(disks), 2);
  assert_int_equal(d->drv->qmp(d, "query-version", NULL, &ret, &err), 0);
  assert_non_null(json_object_get(ret, "qemu"));
  assert_true(busy_for_others(v));
  /* Let go: QEMU serves others again, and calls connect per call. */
  domain_hold(d, 0);
  assert_false(busy_for_others(v));
  assert_int_equal(d->drv->state(d, &st, &err), 0);
  assert_false(busy_for_others(v));
  /* Freeing a ref that holds its connection closes it. */
  domain_hold(d, 1);
  assert_int_equal(d->drv->state(d, &st, &err), 0);
  domain_ref_free(d);
  assert_false(busy_for_others(v));
  json_decref(disks);
  json_decref(ret);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      VM_TEST(test_domain_hold),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
