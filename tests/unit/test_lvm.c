/* test_lvm.c — the LVM backend's pure parts, on the host (no device-mapper
 * here): LV names, the snapshot size policy, lvs JSON reports and the
 * device-mapper snapshot status lines. The real LVM runs in the guest
 * (tests/vm/test-lvm.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lvm.h"

static void test_name_valid(void **state)
{
  (void)state;
  const char *why;
  assert_true(lv_name_valid("root", NULL));
  assert_true(lv_name_valid("vm1-disk_0.img+x", NULL));
  assert_false(lv_name_valid("", &why));
  assert_false(lv_name_valid("-x", &why));
  assert_false(lv_name_valid("..", &why));
  assert_false(lv_name_valid("a/b", &why));
  assert_false(lv_name_valid("a b", &why));
  assert_false(lv_name_valid("snapshot1", &why));
  assert_non_null(strstr(why, "reserved"));
  assert_false(lv_name_valid("pvmove0", &why));
  assert_false(lv_name_valid("x_tdata", &why));
  assert_false(lv_name_valid("x_rimage_1", &why));
  char big[200];
  memset(big, 'a', 128);
  big[128] = '\0';
  assert_false(lv_name_valid(big, &why));
  big[127] = '\0';
  assert_true(lv_name_valid(big, &why));
}

static void test_snapshot_name(void **state)
{
  (void)state;
  char out[LV_NAME_MAX + 1], back[256];
  assert_int_equal(lv_snapshot_name("vg0", "root", "vmsnap-s1", out, sizeof out), 0);
  assert_string_equal(out, "root-vmsnap-s1");
  assert_int_equal(lv_decode_snapshot_name("root", out, back, sizeof back), 0);
  assert_string_equal(back, "s1");

  /* The core's object name encodes bytes outside [A-Za-z0-9._-] as +HH. */
  assert_int_equal(lv_snapshot_name("vg0", "root", "vmsnap-before+20upgrade", out, sizeof out), 0);
  assert_true(lv_name_valid(out, NULL));
  assert_int_equal(lv_decode_snapshot_name("root", out, back, sizeof back), 0);
  assert_string_equal(back, "before upgrade");

  /* A reserved infix from the snapshot name is escaped, and decodes back. */
  assert_int_equal(lv_snapshot_name("vg0", "root", "vmsnap-a_tmeta_b", out, sizeof out), 0);
  assert_true(lv_name_valid(out, NULL));
  assert_string_equal(out, "root-vmsnap-a+5Ftmeta_b");
  assert_int_equal(lv_decode_snapshot_name("root", out, back, sizeof back), 0);
  assert_string_equal(back, "a_tmeta_b");

  /* Too long for "VG/LV": shortened with a hash, unique, decodes as lost. */
  char obj[220], out2[LV_NAME_MAX + 1];
  memset(obj, 'x', sizeof obj - 1);
  memcpy(obj, "vmsnap-", 7);
  obj[sizeof obj - 1] = '\0';
  assert_int_equal(lv_snapshot_name("vg0", "root", obj, out, sizeof out), 0);
  assert_true(strlen("vg0/") + strlen(out) <= LV_FULL_MAX);
  assert_true(lv_name_valid(out, NULL));
  assert_non_null(strstr(out, "+H"));
  assert_int_equal(lv_decode_snapshot_name("root", out, back, sizeof back), -1);
  obj[100] = 'y';
  assert_int_equal(lv_snapshot_name("vg0", "root", obj, out2, sizeof out2), 0);
  assert_string_not_equal(out, out2);

  /* Hyphens double in device-mapper names: that limit counts too. */
  char vg[60], origin[60];
  memset(vg, '-', 20);
  vg[0] = 'v';
  vg[20] = '\0';
  memset(origin, 'o', 40);
  origin[40] = '\0';
  assert_int_equal(lv_snapshot_name(vg, origin, obj, out, sizeof out), 0);
  char dm[512];
  assert_int_equal(lv_dm_name(vg, out, "-cow", dm, sizeof dm), 0);
  assert_true(strlen(dm) <= LV_DM_NAME_MAX);
  assert_true(strlen(dm) >= LV_DM_NAME_MAX - 3); /* the dm limit, not "VG/LV", was binding */
  /* A VG whose doubled hyphens leave no room: refused. */
  memset(vg, '-', 50);
  vg[0] = 'v';
  vg[50] = '\0';
  assert_int_equal(lv_snapshot_name(vg, origin, "vmsnap-s1", out, sizeof out), -1);

  /* No room at all: refused. */
  char longorigin[125];
  memset(longorigin, 'o', 120);
  longorigin[120] = '\0';
  assert_int_equal(lv_snapshot_name("vg0", longorigin, "vmsnap-s1", out, sizeof out), -1);

  /* Someone else's LV, or a name without the mark. */
  assert_int_equal(lv_decode_snapshot_name("root", "root-backup", back, sizeof back), -1);
  assert_int_equal(lv_decode_snapshot_name("root", "other-vmsnap-s1", back, sizeof back), -1);
}

static void test_helper_and_dm_names(void **state)
{
  (void)state;
  char out[LV_NAME_MAX + 1], vg[128], lv[128], dm[300];
  assert_int_equal(lv_helper_name("vg0", "root", "rv", "1234-uuid", out, sizeof out), 0);
  assert_int_equal(strncmp(out, "root-vmsnap-rv-", 15), 0);
  assert_int_equal(strlen(out), strlen("root-vmsnap-rv-") + 8);
  assert_true(lv_name_valid(out, NULL));

  assert_int_equal(lv_dm_name("my-vg", "a-b", NULL, dm, sizeof dm), 0);
  assert_string_equal(dm, "my--vg-a--b");
  assert_int_equal(lv_dm_split(dm, vg, sizeof vg, lv, sizeof lv), 0);
  assert_string_equal(vg, "my-vg");
  assert_string_equal(lv, "a-b");
  assert_int_equal(lv_dm_split("vg0-lv", vg, sizeof vg, lv, sizeof lv), 0);
  assert_string_equal(vg, "vg0");
  assert_string_equal(lv, "lv");
  /* Layers and non-LVM names are not LVs. */
  assert_int_equal(lv_dm_split("vg0-lv-real", vg, sizeof vg, lv, sizeof lv), -1);
  assert_int_equal(lv_dm_split("vg0-pool-tpool", vg, sizeof vg, lv, sizeof lv), -1);
  assert_int_equal(lv_dm_split("cryptroot", vg, sizeof vg, lv, sizeof lv), -1);

  char u[64];
  lv_uuid_strip("dkav8c-4iiJ-yQ3U-X5Cl-BJUZ-zAfl-Mhvfc4", u, sizeof u);
  assert_string_equal(u, "dkav8c4iiJyQ3UX5ClBJUZzAflMhvfc4");
  char f[LV_UUID_LEN + 2];
  assert_int_equal(lv_uuid_format(u, f, sizeof f), 0);
  assert_string_equal(f, "dkav8c-4iiJ-yQ3U-X5Cl-BJUZ-zAfl-Mhvfc4");
  /* Recorded: device-mapper's uuid of vg-a and what lvs said of vg/a. */
  const char *dmu = "LVM-UBxVoj6V47CLwUR1WPhZ5PHFroIKnjTJvYnGetzy5c0YtYf5kQwD0LOese5xSd9I";
  assert_int_equal(lv_uuid_format(dmu + 36, f, sizeof f), 0);
  assert_string_equal(f, "vYnGet-zy5c-0YtY-f5kQ-wD0L-Oese-5xSd9I");
  assert_int_equal(lv_uuid_format("short", f, sizeof f), -1);
}

static void test_size_policy(void **state)
{
  (void)state;
  const uint64_t MiB = 1ull << 20, ext = 4 * MiB;
  uint64_t s;
  const char *why;
  /* Default: 20% of the origin, at least 64 MiB, whole extents. */
  assert_int_equal(lv_snapshot_size(NULL, 10240 * MiB, ext, &s, &why), 0);
  assert_int_equal(s, 2048 * MiB);
  assert_int_equal(lv_snapshot_size(NULL, 100 * MiB, ext, &s, &why), 0);
  assert_int_equal(s, 64 * MiB);
  assert_int_equal(lv_snapshot_size(NULL, 1001 * MiB, ext, &s, &why), 0);
  assert_int_equal(s % ext, 0);
  assert_true(s >= 1001 * MiB / 5);
  /* Never more than the origin (plus room for the exception table). */
  assert_int_equal(lv_snapshot_size(NULL, 8 * MiB, ext, &s, &why), 0);
  assert_true(s <= 8 * MiB + ext + 8 * MiB / 100 + ext);
  /* size=N% and size=N[unit]. */
  assert_int_equal(lv_snapshot_size("50%", 1000 * MiB, ext, &s, &why), 0);
  assert_int_equal(s, 500 * MiB);
  assert_int_equal(lv_snapshot_size("2G", 10240 * MiB, ext, &s, &why), 0);
  assert_int_equal(s, 2048 * MiB);
  assert_int_equal(lv_snapshot_size("100m", 10240 * MiB, ext, &s, &why), 0);
  assert_int_equal(s, 100 * MiB);
  assert_int_equal(lv_snapshot_size("3MiB", 10240 * MiB, ext, &s, &why), 0);
  assert_int_equal(s, 4 * MiB);
  assert_int_equal(lv_snapshot_size("1.5g", 10240 * MiB, ext, &s, &why), 0);
  assert_int_equal(s, 1536 * MiB);
  assert_int_equal(lv_snapshot_size("64", 10240 * MiB, ext, &s, &why), 0);
  assert_int_equal(s, 64 * MiB);
  /* Refused with a reason. */
  const char *bad[] = {"", "0", "-1G", "abc", "10q", "0%", "101%", "x%", "5G-", "1e99", NULL};
  for (size_t i = 0; bad[i]; i++) {
    why = NULL;
    assert_int_equal(lv_snapshot_size(bad[i], 10240 * MiB, ext, &s, &why), -1);
    assert_non_null(why);
  }
}

/* Recorded from lvm2 2.03.16 (`lvs --reportformat json --units b
 * --nosuffix --config report/time_format="%s" -o LV_FIELDS vg0`). */
static const char report[] =
    "  {\n"
    "      \"report\": [\n"
    "          {\n"
    "              \"lv\": [\n"
    "                  {\"vg_name\":\"vg0\", \"lv_name\":\"lv\", "
    "\"lv_uuid\":\"dkav8c-4iiJ-yQ3U-X5Cl-BJUZ-zAfl-Mhvfc4\", \"lv_attr\":\"owi-a-s---\", "
    "\"segtype\":\"linear\", \"origin\":\"\", \"pool_lv\":\"\", \"lv_tags\":\"\", "
    "\"lv_size\":\"67108864\", \"snap_percent\":\"\", \"data_percent\":\"\", "
    "\"lv_time\":\"1795335194\", \"vg_free\":\"448790528\", \"vg_extent_size\":\"4194304\"},\n"
    "                  {\"vg_name\":\"vg0\", \"lv_name\":\"lv-vmsnap-s1\", "
    "\"lv_uuid\":\"OMjnw1-APy9-KHu6-27P1-EtvS-Ne8n-EHA05b\", \"lv_attr\":\"swi-a-s---\", "
    "\"segtype\":\"snapshot\", \"origin\":\"lv\", \"pool_lv\":\"\", "
    "\"lv_tags\":\"vmsnap,vmsnap-0f2d\", \"lv_size\":\"16777216\", \"snap_percent\":\"12.50\", "
    "\"data_percent\":\"12.50\", \"lv_time\":\"1795335195\", \"vg_free\":\"448790528\", "
    "\"vg_extent_size\":\"4194304\"},\n"
    "                  {\"vg_name\":\"vg0\", \"lv_name\":\"bad\", "
    "\"lv_uuid\":\"AAAAAA-APy9-KHu6-27P1-EtvS-Ne8n-EHA05b\", \"lv_attr\":\"swi-I-s---\", "
    "\"segtype\":\"snapshot\", \"origin\":\"lv\", \"pool_lv\":\"\", \"lv_tags\":\"\", "
    "\"lv_size\":\"8388608\", \"snap_percent\":\"100.00\", \"data_percent\":\"100.00\", "
    "\"lv_time\":\"1795335196\", \"vg_free\":\"448790528\", \"vg_extent_size\":\"4194304\"},\n"
    "                  {\"vg_name\":\"vg0\", \"lv_name\":\"[pool_tdata]\", "
    "\"lv_uuid\":\"BBBBBB-APy9-KHu6-27P1-EtvS-Ne8n-EHA05b\", \"lv_attr\":\"Twi-ao----\", "
    "\"segtype\":\"linear\", \"origin\":\"\", \"pool_lv\":\"\", \"lv_tags\":\"\", "
    "\"lv_size\":\"104857600\", \"snap_percent\":\"\", \"data_percent\":\"\", "
    "\"lv_time\":\"\", \"vg_free\":\"448790528\", \"vg_extent_size\":\"4194304\"},\n"
    "                  {\"vg_name\":\"vg0\", \"lv_name\":\"tsnap\", "
    "\"lv_uuid\":\"CCCCCC-APy9-KHu6-27P1-EtvS-Ne8n-EHA05b\", \"lv_attr\":\"Vwi---tz-k\", "
    "\"segtype\":\"thin\", \"origin\":\"thin\", \"pool_lv\":\"pool\", \"lv_tags\":\"vmsnap\", "
    "\"lv_size\":\"67108864\", \"snap_percent\":\"\", \"data_percent\":\"\", "
    "\"lv_time\":\"1795335197\", \"vg_free\":\"448790528\", \"vg_extent_size\":\"4194304\"}\n"
    "              ]\n"
    "          }\n"
    "      ]\n"
    "  }\n";

static void test_lvs_report(void **state)
{
  (void)state;
  lv_report r;
  const char *why = NULL;
  char note[256];
  assert_int_equal(lv_report_parse(report, &r, &why), 0);
  assert_int_equal(r.n, 5);
  const lv_info *o = lv_find_name(&r, "lv");
  assert_non_null(o);
  assert_int_equal(o->size, 64u << 20);
  assert_int_equal(o->vg_free, 448790528u);
  assert_int_equal(o->extent_size, 4u << 20);
  assert_int_equal(o->ctime, 1795335194);
  assert_true(o->snap_percent < 0);
  assert_false(lv_is_thin(o));
  assert_false(lv_is_classic_snapshot(o));
  assert_true(lv_is_active(o));

  const lv_info *s = lv_find_uuid(&r, "OMjnw1-APy9-KHu6-27P1-EtvS-Ne8n-EHA05b");
  assert_non_null(s);
  assert_string_equal(s->name, "lv-vmsnap-s1");
  assert_string_equal(s->origin, "lv");
  assert_true(lv_is_classic_snapshot(s));
  assert_false(lv_is_invalid(s));
  assert_true(lv_has_tag(s, "vmsnap"));
  assert_true(lv_has_tag(s, "vmsnap-0f2d"));
  assert_false(lv_has_tag(s, "vmsnap-0f"));
  lv_fill_note(s, note, sizeof note);
  assert_non_null(strstr(note, "fill 12.50%"));

  const lv_info *bad = lv_find_name(&r, "bad");
  assert_true(lv_is_invalid(bad));
  lv_fill_note(bad, note, sizeof note);
  assert_non_null(strstr(note, "INVALID"));

  assert_non_null(lv_find_name(&r, "pool_tdata")); /* brackets dropped */
  const lv_info *t = lv_find_name(&r, "tsnap");
  assert_true(lv_is_thin(t));
  assert_true(lv_skips_activation(t));
  assert_false(lv_is_active(t));
  assert_string_equal(t->pool, "pool");
  lv_fill_note(t, note, sizeof note);
  assert_non_null(strstr(note, "skips activation"));
  assert_null(lv_find_name(&r, "nope"));
  assert_null(lv_find_uuid(&r, ""));
  lv_report_free(&r);

  assert_int_equal(lv_report_parse("not json", &r, &why), -1);
  assert_non_null(why);
  assert_int_equal(lv_report_parse("{\"x\":1}", &r, &why), -1);
  assert_int_equal(lv_report_parse("{\"report\":[]}", &r, &why), 0);
  assert_int_equal(r.n, 0);
  lv_report_free(&r);
}

static void test_dm_status(void **state)
{
  (void)state;
  uint64_t a, t, m;
  /* Recorded: a fresh classic snapshot, and a merge under way and done. */
  assert_int_equal(lvdm_parse_snapshot_status("16/32768 16", &a, &t, &m), 0);
  assert_int_equal(a, 16);
  assert_int_equal(t, 32768);
  assert_int_equal(m, 16);
  assert_int_equal(lvdm_parse_snapshot_status("20512/65536 80", &a, &t, &m), 0);
  assert_int_equal(a, 20512);
  assert_int_equal(m, 80);
  assert_int_equal(lvdm_parse_snapshot_status("80/65536 80", &a, &t, &m), 0);
  assert_int_equal(lvdm_parse_snapshot_status("Invalid", &a, &t, &m), -1);
  assert_int_equal(lvdm_parse_snapshot_status("Merge failed", &a, &t, &m), -1);
  assert_int_equal(lvdm_parse_snapshot_status("Overflow", &a, &t, &m), -1);
  assert_int_equal(lvdm_parse_snapshot_status("", &a, &t, &m), -1);
  assert_int_equal(lvdm_parse_snapshot_status("5/0 1", &a, &t, &m), -1);
  assert_int_equal(lvdm_parse_snapshot_status(NULL, &a, &t, &m), -1);
  /* A thin pool's status: transaction, metadata and data blocks used/all. */
  assert_int_equal(lvdm_parse_pool_status("3 12/4096 40/1024 - rw no_discard_passdown "
                                          "queue_if_no_space - 1024", &a, &t), 0);
  assert_int_equal(a, 40);
  assert_int_equal(t, 1024);
  assert_int_equal(lvdm_parse_pool_status("Fail", &a, &t), -1);
  assert_int_equal(lvdm_parse_pool_status("0 1/2 5/0", &a, &t), -1);
  assert_int_equal(lvdm_parse_pool_status("0 1/2 9/8", &a, &t), -1);
}

static void test_classify(void **state)
{
  (void)state;
  assert_int_equal(lv_classify("Volume group \"vg0\" has insufficient free space (3 extents): "
                               "16 required."),
                   VMSNAP_E_NOSPC);
  assert_int_equal(lv_classify("Logical Volume \"x\" already exists in volume group \"vg0\""),
                   VMSNAP_E_EXISTS);
  assert_int_equal(lv_classify("Logical volume vg0/x in use."), VMSNAP_E_BUSY);
  assert_int_equal(lv_classify("Snapshot vg0/s is already merging."), VMSNAP_E_BUSY);
  assert_int_equal(lv_classify("Failed to find logical volume \"vg0/x\""), VMSNAP_E_NOT_FOUND);
  assert_int_equal(lv_classify("something else"), VMSNAP_E_BACKEND);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_name_valid),       cmocka_unit_test(test_snapshot_name),
    cmocka_unit_test(test_helper_and_dm_names), cmocka_unit_test(test_size_policy),
    cmocka_unit_test(test_lvs_report),       cmocka_unit_test(test_dm_status),
    cmocka_unit_test(test_classify),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
