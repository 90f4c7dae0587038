/* qemu_vm.h — a real QEMU per test (firmware only, no guest OS: the
 * firmware just spins) with two qcow2 disks on its QMP socket, for the
 * tests of the QMP client (test_qmp.c) and of the qmp domain
 * (test_domain_qmp.c). A missing qemu-system-x86_64 fails the test: CI
 * must never pass without having talked to QEMU.
 *
 * disk0: top.qcow2 (1 MiB of 0xa5) over base.qcow2 (64 MiB of 0x5a);
 * disk1: an empty d1.qcow2. Include after cmocka.h. */
#ifndef VMSNAP_TEST_QEMU_VM_H
#define VMSNAP_TEST_QEMU_VM_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h" /* now_ns */
#include "spawn.h"
#include "testutil.h"

typedef struct vm {
  char *dir;
  char sock[256], base[256], top[256], d1[256], log[256];
  pid_t pid;
} vm;

static inline struct sockaddr_un unix_addr(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  assert_true(strlen(path) < sizeof sa.sun_path);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  return sa;
}

static inline double secs(void) { return (double)now_ns() / 1e9; }

/* Runs a tool through the core's spawn; returns its stdout (free it). */
static inline char *run_tool(const char *const argv[])
{
  vmsnap_spawn_opts o = {.struct_size = sizeof o, .capture_stdout = 1};
  vmsnap_spawn_result r = {.struct_size = sizeof r};
  char eb[256];
  int rc = spawn_run(argv, &o, NULL, &r, eb, sizeof eb);
  if (rc || r.exit_status != 0) {
    print_error("%s failed (rc %d, status %d): %s %s\n", argv[0], rc, r.exit_status, eb,
                r.err_tail);
    free(r.out);
    return NULL;
  }
  return r.out ? r.out : strdup("");
}

static inline int have_tools(void)
{
  static const char *const tools[][2] = {{"qemu-system-x86_64", "qemu-system-x86"},
                                         {"qemu-img", "qemu-utils"},
                                         {"qemu-io", "qemu-utils"}};
  for (size_t i = 0; i < 3; i++) {
    char *p = spawn_find_program(tools[i][0]);
    if (!p) {
      print_error("%s is not on PATH: these tests need a real QEMU; install it with "
                  "`apt-get install -y %s`\n", tools[i][0], tools[i][1]);
      return 0;
    }
    free(p);
  }
  return 1;
}

/* Images: top.qcow2 (1 MiB of 0xa5) over base.qcow2 (64 MiB of 0x5a) as
 * disk0, an empty d1.qcow2 as disk1. */
static inline int make_images(vm *v)
{
  const char *const a[] = {"qemu-img", "create", "-q", "-f", "qcow2", v->base, "64M", NULL};
  const char *const b[] = {"qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64M", v->base, NULL};
  const char *const c[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-b", v->base,
                           "-F", "qcow2", v->top, NULL};
  const char *const d[] = {"qemu-io", "-f", "qcow2", "-c", "write -P 0xa5 0 1M", v->top, NULL};
  const char *const e[] = {"qemu-img", "create", "-q", "-f", "qcow2", v->d1, "64M", NULL};
  const char *const *steps[] = {a, b, c, d, e};
  for (size_t i = 0; i < 5; i++) {
    char *o = run_tool(steps[i]);
    if (!o) return -1;
    free(o);
  }
  return 0;
}

static inline void exec_qemu(vm *v)
{
  char qmp[300], f0[300], f1[300];
  snprintf(qmp, sizeof qmp, "unix:%s,server=on,wait=off", v->sock);
  snprintf(f0, sizeof f0, "driver=file,filename=%s,node-name=file0", v->top);
  snprintf(f1, sizeof f1, "driver=file,filename=%s,node-name=file1", v->d1);
  int fd = open(v->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  execlp("qemu-system-x86_64", "qemu-system-x86_64", "-nodefaults", "-display", "none",
         "-machine", "q35", "-accel", "kvm", "-accel", "tcg", "-m", "64", "-qmp", qmp,
         "-blockdev", f0, "-blockdev", "driver=qcow2,file=file0,node-name=disk0", "-device",
         "virtio-blk-pci,drive=disk0,id=vd0", "-blockdev", f1, "-blockdev",
         "driver=qcow2,file=file1,node-name=disk1", "-device",
         "virtio-blk-pci,drive=disk1,id=vd1", (char *)NULL);
  _exit(127);
}

/* Ready = the socket accepts a connection (QEMU binds before it listens). */
static inline int wait_socket(vm *v)
{
  for (int i = 0; i < 1000; i++) {
    int st;
    if (waitpid(v->pid, &st, WNOHANG) == v->pid) {
      v->pid = 0;
      print_error("QEMU exited at start (status %#x); see %s\n", st, v->log);
      return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = unix_addr(v->sock);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    if (ok) return 0;
    usleep(10000);
  }
  print_error("QEMU did not open %s within 10 s\n", v->sock);
  return -1;
}

static inline int vm_teardown(void **state);

static inline int vm_setup_fail(void **state)
{
  vm_teardown(state);
  *state = NULL;
  return -1;
}

static inline int vm_setup(void **state)
{
  *state = NULL;
  if (!have_tools()) return -1;
  vm *v = calloc(1, sizeof *v);
  *state = v;
  v->dir = tu_tempdir();
  snprintf(v->sock, sizeof v->sock, "%s/qmp.sock", v->dir);
  snprintf(v->base, sizeof v->base, "%s/base.qcow2", v->dir);
  snprintf(v->top, sizeof v->top, "%s/top.qcow2", v->dir);
  snprintf(v->d1, sizeof v->d1, "%s/d1.qcow2", v->dir);
  snprintf(v->log, sizeof v->log, "%s/qemu.log", v->dir);
  if (make_images(v)) return vm_setup_fail(state);
  v->pid = fork();
  if (v->pid == 0) exec_qemu(v);
  if (v->pid < 0 || wait_socket(v)) return vm_setup_fail(state);
  return 0;
}

static inline void vm_kill(vm *v)
{
  if (v->pid > 0) {
    kill(v->pid, SIGKILL);
    waitpid(v->pid, NULL, 0);
    v->pid = 0;
  }
}

static inline int vm_teardown(void **state)
{
  vm *v = *state;
  if (!v) return 0;
  vm_kill(v);
  tu_rmtree(v->dir);
  free(v->dir);
  free(v);
  return 0;
}

#define VM_TEST(t) cmocka_unit_test_setup_teardown(t, vm_setup, vm_teardown)

#endif
