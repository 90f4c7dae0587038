/* test_names.c — what names are accepted and the object names derived. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "testutil.h"

static void refused(const char *name, const char *needle)
{
  vs_err e = {0};
  assert_int_equal(name_validate(name, "snapshot name", &e), VMSNAP_E_INVALID);
  assert_non_null(strstr(e.msg, needle));
}

static void test_bad_names(void **state)
{
  (void)state;
  refused("", "empty");
  refused(NULL, "empty");
  refused("a/b", "'/'");
  refused("..", "'..'");
  refused("x..y", "'..'");
  refused(".hidden", "starts with");
  refused("-rf", "starts with");
  refused("a\x01z", "control character");
  refused("tab\there", "control character");
  refused("del\x7f", "control character");
  refused("bad\xff" "utf8", "UTF-8");
  refused("\xc0\xaf", "UTF-8"); /* overlong '/' */
  char big[300];
  memset(big, 'a', 256);
  big[256] = '\0';
  refused(big, "256 bytes");
}

static void test_good_names(void **state)
{
  (void)state;
  vs_err e = {0};
  char max[256];
  memset(max, 'b', 255);
  max[255] = '\0';
  const char *ok[] = {"s1", "before upgrade", "2026-11-22T10:00", "été", "a.b", "x_y-z", max};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    assert_int_equal(name_validate(ok[i], "snapshot name", &e), 0);
}

static void test_object_names(void **state)
{
  (void)state;
  char *o = name_object("before upgrade");
  assert_string_equal(o, "vmsnap-before+20upgrade");
  free(o);
  o = name_object("été");
  assert_string_equal(o, "vmsnap-+C3+A9t+C3+A9");
  free(o);
  /* long names are cut, stay within limits, and stay distinct */
  char a[256], b[256];
  memset(a, 0xe2, 255); a[255] = 0; /* not valid UTF-8 but enough for encoding */
  memcpy(b, a, sizeof b);
  b[254] = 'x';
  char *oa = name_object(a), *ob = name_object(b);
  assert_true(strlen(oa) <= OBJECT_NAME_MAX);
  assert_true(strlen(ob) <= OBJECT_NAME_MAX);
  assert_string_not_equal(oa, ob);
  for (const char *p = oa; *p; p++)
    assert_non_null(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+._-", *p));
  free(oa);
  free(ob);
}

static void test_default_names(void **state)
{
  (void)state;
  json_t *taken = json_array();
  char *n1 = name_default(taken);
  assert_non_null(n1);
  assert_true(strtoll(n1, NULL, 10) > 1700000000);
  json_array_append_new(taken, json_pack("{s:s}", "name", n1));
  char *n2 = name_default(taken);
  /* same second: a suffix keeps it unique (or the clock moved on) */
  assert_string_not_equal(n1, n2);
  json_array_append_new(taken, json_pack("{s:s}", "name", n2));
  char *n3 = name_default(taken);
  assert_string_not_equal(n3, n1);
  assert_string_not_equal(n3, n2);
  free(n1); free(n2); free(n3);
  json_decref(taken);
}

static void test_disk_spec(void **state)
{
  (void)state;
  vmsnap_disk_spec s;
  char *buf, *msg;
  assert_int_equal(vmsnap_disk_spec_parse("vda=/a,,b.img,format=qcow2,mode=external,file=/x",
                                          &s, &buf, &msg), 0);
  assert_string_equal(s.target, "vda");
  assert_string_equal(s.source, "/a,b.img");
  assert_string_equal(s.format, "qcow2");
  assert_string_equal(s.mode, "external");
  assert_string_equal(s.file, "/x");
  assert_null(s.backend);
  assert_null(s.options);
  free(buf);
  /* Other keys are the backend's options, checked once it is known. */
  assert_int_equal(vmsnap_disk_spec_parse("vdb=/dev/vg/lv,size=20%,backend=lvm,note=a,,b", &s,
                                          &buf, &msg), 0);
  assert_string_equal(s.backend, "lvm");
  assert_string_equal(s.options, "size=20%,note=a,,b");
  free(buf);
  const char *bad[] = {"", "vda", "=x", "vda=", "vda=/x,format=vmdk", "vda=/x,Color=red",
                       "vda=/x,size=", "vda=/x,a b=c",
                       "vda=/x,format=raw,format=raw", "vda=/x,mode=sideways", "vda=/x,junk"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(vmsnap_disk_spec_parse(bad[i], &s, &buf, &msg), VMSNAP_E_INVALID);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "TARGET=SOURCE"));
    assert_null(buf);
    free(msg);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bad_names), cmocka_unit_test(test_good_names),
    cmocka_unit_test(test_object_names), cmocka_unit_test(test_default_names),
    cmocka_unit_test(test_disk_spec),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
