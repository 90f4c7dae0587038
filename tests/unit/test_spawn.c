/* test_spawn.c — spawn_run: statuses, output, cancel. The hosts that own
 * SIGCHLD, block signals or leak fds are in test_spawn_hosts.c. Only
 * spawn.h's API is used. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>


#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn_run_helpers.h"

/* ---- statuses ----------------------------------------------------------- */

static void test_exit_zero(void **state)
{
  vmsnap_spawn_result r;
  assert_int_equal(run((const char *const[]){"true", NULL}, NULL, NULL, &r), 0);
  assert_int_equal(r.exit_status, 0);
  assert_int_equal(r.term_signal, 0);
  assert_null(r.out);
}

static void test_exit_nonzero(void **state)
{
  vmsnap_spawn_result r;
  assert_int_equal(run(SH("exit 7"), NULL, NULL, &r), 0);
  assert_int_equal(r.exit_status, 7);
  assert_int_equal(r.term_signal, 0);
}

static void test_killed_by_signal(void **state)
{
  vmsnap_spawn_result r;
  assert_int_equal(run(SH("kill -USR1 $$; sleep 5"), NULL, NULL, &r), 0);
  assert_int_equal(r.exit_status, -1);
  assert_int_equal(r.term_signal, SIGUSR1);
}

static void test_not_found(void **state)
{
  vmsnap_spawn_result r;
  const char *const argv[] = {"vmsnap-no-such-tool-4711", "x", NULL};
  assert_int_equal(run(argv, NULL, NULL, &r), VMSNAP_E_NOT_FOUND);
  assert_non_null(strstr(errbuf, "vmsnap-no-such-tool-4711: not found on PATH"));
  const char *const abs[] = {"/nonexistent/vmsnap-tool", NULL};
  assert_int_equal(run(abs, NULL, NULL, &r), VMSNAP_E_NOT_FOUND);
  assert_null(spawn_find_program("vmsnap-no-such-tool-4711"));
  char *sh = spawn_find_program("sh");
  assert_non_null(sh);
  assert_true(sh[0] == '/');
  assert_string_equal(strrchr(sh, '/'), "/sh");
  free(sh);
}

/* A temporary directory with a fake tool and a file that cannot run. */
static void write_file(const char *path, const char *text, mode_t mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  assert_int_equal(chmod(path, mode), 0);
}

static void test_path_lookup_and_exec_error(void **state)
{
  char dir[] = "/tmp/vmsnap-spawn-XXXXXX", tool[64], bad[64], noexec[64], path[4096];
  const char *env_path = getenv("PATH");
  char *old = strdup(env_path ? env_path : "/usr/bin:/bin");
  vmsnap_spawn_result r;
  assert_non_null(mkdtemp(dir));
  snprintf(tool, sizeof tool, "%s/vmsnap-fake", dir);
  snprintf(bad, sizeof bad, "%s/vmsnap-bad", dir);
  snprintf(noexec, sizeof noexec, "%s/vmsnap-noexec", dir);
  write_file(tool, "#!/bin/sh\necho fake \"$1\"\n", 0755);
  write_file(bad, "this is not a program\n", 0755); /* execve: ENOEXEC */
  write_file(noexec, "#!/bin/sh\n", 0644);
  /* Empty and relative entries must be skipped, never mean ".". */
  snprintf(path, sizeof path, ":.:relative:%s:%s", dir, old);
  setenv("PATH", path, 1);

  assert_int_equal(run_capture((const char *const[]){"vmsnap-fake", "x", NULL}, &r), 0);
  assert_string_equal(r.out, "fake x\n");
  free(r.out);
  assert_int_equal(run((const char *const[]){"vmsnap-noexec", NULL}, NULL, NULL, &r),
                   VMSNAP_E_NOT_FOUND);
  assert_int_equal(run((const char *const[]){"vmsnap-bad", NULL}, NULL, NULL, &r),
                   VMSNAP_E_BACKEND);
  assert_non_null(strstr(errbuf, "cannot execute"));
  assert_int_equal(chdir(dir), 0);
  setenv("PATH", ":.:relative", 1);
  assert_null(spawn_find_program("vmsnap-fake"));
  assert_int_equal(chdir("/"), 0);

  setenv("PATH", old, 1);
  free(old);
  unlink(tool), unlink(bad), unlink(noexec), rmdir(dir);
}

/* ---- output ------------------------------------------------------------- */

static void test_capture_stdout(void **state)
{
  vmsnap_spawn_result r;
  assert_int_equal(run_capture(SH("printf 'hello\\nworld'; echo to-stderr >&2"), &r), 0);
  assert_string_equal(r.out, "hello\nworld");
  free(r.out);
  assert_int_equal(run_capture(SH("true"), &r), 0);
  assert_string_equal(r.out, "");
  free(r.out);
  assert_int_equal(run(SH("echo not kept"), NULL, NULL, &r), 0); /* no capture */
  assert_null(r.out);
}

static void test_capture_large(void **state)
{
  enum { N = 300000 };
  vmsnap_spawn_result r;
  size_t size = (size_t)8 * N, len = 0;
  char *want = malloc(size);
  assert_non_null(want);
  for (int i = 1; i <= N; i++)
    len += (size_t)snprintf(want + len, size - len, "%d\n", i);
  assert_true(len > (size_t)1024 * 1024);
  assert_int_equal(run_capture((const char *const[]){"seq", "1", "300000", NULL}, &r), 0);
  assert_int_equal(r.exit_status, 0);
  assert_non_null(r.out);
  assert_int_equal(strlen(r.out), len);
  assert_memory_equal(r.out, want, len);
  free(r.out);
  free(want);
}

static void test_stderr_tail(void **state)
{
  vmsnap_spawn_result r;
  const char *script = "i=0; while [ $i -lt 200 ]; do echo \"  error line $i  \" >&2; "
                       "i=$((i+1)); done; echo out; exit 3";
  assert_int_equal(run(SH(script), NULL, NULL, &r), 0);
  assert_int_equal(r.exit_status, 3);
  size_t len = strlen(r.err_tail);
  assert_true(len > 500 && len < sizeof r.err_tail);
  /* Whole, trimmed lines, the newest last, no trailing newline. */
  assert_int_equal(strncmp(r.err_tail, "error line ", 11), 0);
  assert_string_equal(r.err_tail + len - 14, "error line 199");
  assert_null(strstr(r.err_tail, "  "));
  assert_non_null(strstr(r.err_tail, "error line 198\nerror line 199"));
  assert_null(strstr(r.err_tail, "out"));

  /* One line longer than the tail keeps its end. */
  assert_int_equal(run(SH("head -c 5000 /dev/zero | tr '\\0' y >&2; printf END >&2"), NULL,
                       NULL, &r),
                   0);
  assert_int_equal(strlen(r.err_tail), sizeof r.err_tail - 1);
  assert_string_equal(r.err_tail + strlen(r.err_tail) - 4, "yEND");
}

typedef struct lines_seen {
  char *line[32];
  int n;
  uint64_t done[32];
  int n_progress;
  int64_t max_len;
} lines_seen;

/* Extractor in qemu-img -p style: "    (12.50/100%)". */
static int line_cb(void *user, const char *line, uint64_t *done, uint64_t *total)
{
  lines_seen *s = user;
  double pct;
  if ((int64_t)strlen(line) > s->max_len)
    s->max_len = (int64_t)strlen(line);
  if (s->n < 32)
    s->line[s->n++] = strdup(line);
  const char *p = strchr(line, '(');
  if (!p || sscanf(p, "(%lf/100%%)", &pct) != 1)
    return 0;
  *done = (uint64_t)(pct * 100), *total = 10000;
  return 1;
}

static void progress_cb(void *user, uint64_t done, uint64_t total)
{
  lines_seen *s = user;
  assert_int_equal(total, 10000);
  if (s->n_progress < 32)
    s->done[s->n_progress++] = done;
}

static bool seen(const lines_seen *s, const char *line)
{
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->line[i], line) == 0)
      return true;
  return false;
}

static void lines_free(lines_seen *s)
{
  for (int i = 0; i < s->n; i++)
    free(s->line[i]);
}

static void test_lines_and_progress(void **state)
{
  lines_seen s = {.n = 0};
  vmsnap_spawn_opts o = opts_new();
  spawn_ctl ctl = {.progress = progress_cb, .progress_user = &s};
  vmsnap_spawn_result r;
  o.line = line_cb, o.line_user = &s;
  const char *script = "printf '    (0.00/100%%)\\r    (12.50/100%%)\\r    (100.00/100%%)\\r\\n';"
                       "echo 'on stderr' >&2; printf 'a\\r\\rb\\n\\nno newline'";
  assert_int_equal(run(SH(script), &o, &ctl, &r), 0);
  assert_int_equal(s.n_progress, 3);
  assert_int_equal(s.done[0], 0);
  assert_int_equal(s.done[1], 1250);
  assert_int_equal(s.done[2], 10000);
  assert_int_equal(s.n, 7); /* empty lines are not reported */
  assert_true(seen(&s, "    (12.50/100%)"));
  assert_true(seen(&s, "on stderr"));
  assert_true(seen(&s, "a") && seen(&s, "b") && seen(&s, "no newline"));
  lines_free(&s);
}

static void test_long_line_is_cut(void **state)
{
  lines_seen s = {.n = 0};
  vmsnap_spawn_opts o = opts_new();
  vmsnap_spawn_result r;
  o.line = line_cb, o.line_user = &s, o.capture_stdout = 1;
  assert_int_equal(run(SH("head -c 300000 /dev/zero | tr '\\0' x; echo; echo after"), &o, NULL,
                       &r),
                   0);
  assert_int_equal(s.n, 2);
  assert_true(s.max_len >= 4096 && s.max_len <= (int64_t)64 * 1024);
  assert_string_equal(s.line[1], "after");
  assert_int_equal(strlen(r.out), 300000 + 1 + 6); /* capture is not cut */
  free(r.out);
  lines_free(&s);
}

static void test_env_add(void **state)
{
  vmsnap_spawn_opts o = opts_new();
  vmsnap_spawn_result r;
  const char *const env[] = {"VMSNAP_T_A=hello world", "HOME=/x-home", NULL};
  const char *const bad_env[] = {"NO_EQUALS_SIGN", NULL};
  setenv("VMSNAP_T_PARENT", "p", 1);
  o.capture_stdout = 1, o.env_add = env;
  assert_int_equal(run(SH("echo \"$VMSNAP_T_A|$HOME|$VMSNAP_T_PARENT\"; env | grep -c '^HOME='"),
                       &o, NULL, &r),
                   0);
  assert_string_equal(r.out, "hello world|/x-home|p\n1\n");
  free(r.out);
  o.env_add = bad_env;
  assert_int_equal(run(SH("true"), &o, NULL, &r), VMSNAP_E_INVALID);
  unsetenv("VMSNAP_T_PARENT");
}

/* ---- cancel ------------------------------------------------------------- */

static void test_cancel_sleep(void **state)
{
  cancel_after c;
  spawn_ctl ctl = ctl_cancel_after(&c, 100, 0);
  vmsnap_spawn_result r;
  int64_t t0 = now_ms();
  assert_int_equal(run((const char *const[]){"sleep", "30", NULL}, NULL, &ctl, &r),
                   VMSNAP_E_CANCELLED);
  assert_true(now_ms() - t0 < 2000);
  assert_true(c.calls >= 2); /* polled while it ran */
  assert_int_equal(r.term_signal, SIGTERM);
}

static void test_cancel_sigkill_after_grace(void **state)
{
  cancel_after c;
  spawn_ctl ctl = ctl_cancel_after(&c, 100, 500);
  vmsnap_spawn_result r;
  int64_t t0 = now_ms();
  assert_int_equal(run(SH("trap '' TERM; sleep 30; echo survived"), NULL, &ctl, &r),
                   VMSNAP_E_CANCELLED);
  int64_t took = now_ms() - t0;
  assert_true(took >= 550 && took < 3000);
  assert_int_equal(r.term_signal, SIGKILL);
}

static bool gone_or_zombie(pid_t pid)
{
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return true;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  char *p = strrchr(buf, ')');
  return !p || p[2] == 'Z' || p[2] == 'X';
}

/* The cancel reaches what the tool started, and a background child that
 * keeps the pipes open does not hold spawn_run. */
static void test_cancel_reaches_tool_children(void **state)
{
  cancel_after c;
  spawn_ctl ctl = ctl_cancel_after(&c, 300, 0);
  vmsnap_spawn_result r;
  vmsnap_spawn_opts o = opts_new();
  o.capture_stdout = 1;
  assert_int_equal(run(SH("sleep 30 & echo $!; wait"), &o, &ctl, &r), VMSNAP_E_CANCELLED);
  pid_t bg = (pid_t)atoi(r.out);
  free(r.out);
  assert_true(bg > 0);
  int64_t t0 = now_ms();
  while (!gone_or_zombie(bg) && now_ms() - t0 < 2000)
    usleep(10000);
  assert_true(gone_or_zombie(bg));

  t0 = now_ms();
  assert_int_equal(run(SH("sleep 3 & echo done"), &o, NULL, &r), 0);
  assert_true(now_ms() - t0 < 1500);
  assert_string_equal(r.out, "done\n");
  free(r.out);
}

/* Someone kills the intermediate (its pid is the tool's $PPID): the tool
 * must die with it, and spawn_run must say the status is unknown. */
static int kill_parent_cb(void *user, const char *line, uint64_t *done, uint64_t *total)
{
  pid_t *tool = user;
  int ppid = 0, pid = 0;
  if (sscanf(line, "%d %d", &ppid, &pid) == 2 && ppid > 1) {
    *tool = (pid_t)pid;
    kill((pid_t)ppid, SIGKILL);
  }
  return 0;
}

static void test_helper_killed(void **state)
{
  pid_t tool = 0;
  vmsnap_spawn_opts o = opts_new();
  vmsnap_spawn_result r;
  o.line = kill_parent_cb, o.line_user = &tool;
  int64_t t0 = now_ms();
  assert_int_equal(run(SH("echo $PPID $$; exec sleep 30"), &o, NULL, &r), VMSNAP_E_BACKEND);
  assert_true(now_ms() - t0 < 2000);
  assert_non_null(strstr(errbuf, "signal 9"));
  assert_true(tool > 0);
  while (!gone_or_zombie(tool) && now_ms() - t0 < 2000)
    usleep(10000);
  assert_true(gone_or_zombie(tool));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exit_zero),
      cmocka_unit_test(test_exit_nonzero),
      cmocka_unit_test(test_killed_by_signal),
      cmocka_unit_test(test_not_found),
      cmocka_unit_test(test_path_lookup_and_exec_error),
      cmocka_unit_test(test_capture_stdout),
      cmocka_unit_test(test_capture_large),
      cmocka_unit_test(test_stderr_tail),
      cmocka_unit_test(test_lines_and_progress),
      cmocka_unit_test(test_long_line_is_cut),
      cmocka_unit_test(test_env_add),
      cmocka_unit_test(test_cancel_sleep),
      cmocka_unit_test(test_cancel_sigkill_after_grace),
      cmocka_unit_test(test_cancel_reaches_tool_children),
      cmocka_unit_test(test_helper_killed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
