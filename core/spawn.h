/* spawn.h — the one place libvmsnap runs helper programs.
 *
 * argv only, never a shell. Never installs a SIGCHLD handler, never calls
 * waitpid(-1), never changes the host's signal dispositions or mask. Each
 * tool runs under a small intermediate child (clone3, exit signal 0, pidfd)
 * that never execs: it resets signal mask and dispositions, closes every
 * inherited fd, starts the tool, forwards cancel requests to it, waits for
 * it and reports its exit status through a pipe. So the status survives a
 * host that reaps every child itself or sets SIGCHLD to SIG_IGN.
 */
#ifndef VMSNAP_SPAWN_H
#define VMSNAP_SPAWN_H

#include <stddef.h>
#include <stdint.h>

#include <vmsnap/vmsnap-plugin.h>

typedef struct spawn_ctl {
  /* Polled every ~50 ms while the tool runs; non-zero = cancel: SIGTERM to
   * the tool, SIGKILL after grace_ms. May be NULL. */
  int (*cancelled)(void *user);
  void *cancel_user;
  /* Called when the line extractor (opts->line) reported progress. */
  void (*progress)(void *user, uint64_t done, uint64_t total);
  void *progress_user;
  int grace_ms; /* 0 = default 3000 */
} spawn_ctl;

/* Runs argv[0] (looked up on PATH unless it contains '/') with stdin from
 * /dev/null, waits for it. Returns:
 *   0                    the tool ran; see result->exit_status/term_signal
 *   VMSNAP_E_CANCELLED   ctl->cancelled became true; the tool was stopped
 *   VMSNAP_E_NOT_FOUND   argv[0] is not on PATH (message in errbuf)
 *   VMSNAP_E_BACKEND     it could not be started (message in errbuf)
 * result->out (when opts->capture_stdout) must be freed by the caller, also
 * on error. opts and ctl may be NULL. */
int spawn_run(const char *const argv[], const vmsnap_spawn_opts *opts,
              const spawn_ctl *ctl, vmsnap_spawn_result *result,
              char *errbuf, size_t errlen);

/* Finds a program on PATH; returns a malloc'd absolute path or NULL. */
char *spawn_find_program(const char *name);

#endif
