/* spawn_run_helpers.h — what the spawn tests share: a run that checks the
 * caller's signal mask is left alone, output capture, and a cancel after
 * a delay. /bin/sh appears as a tool; the library never runs a shell.
 * Include after cmocka.h. */
#ifndef VMSNAP_TEST_SPAWN_RUN_HELPERS_H
#define VMSNAP_TEST_SPAWN_RUN_HELPERS_H

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "spawn.h"
#include "testutil.h"

#define SH(script) ((const char *const[]){"sh", "-c", (script), NULL})

static char errbuf[512];

static inline int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline vmsnap_spawn_opts opts_new(void)
{
  vmsnap_spawn_opts o = {.struct_size = sizeof o};
  return o;
}

/* Every run also checks that the calling thread's mask is left as it was. */
static inline int run(const char *const argv[], const vmsnap_spawn_opts *o, const spawn_ctl *ctl,
               vmsnap_spawn_result *r)
{
  sigset_t before, after;
  memset(r, 0, sizeof *r);
  r->struct_size = sizeof *r;
  pthread_sigmask(SIG_BLOCK, NULL, &before);
  int rc = spawn_run(argv, o, ctl, r, errbuf, sizeof errbuf);
  pthread_sigmask(SIG_BLOCK, NULL, &after);
  for (int sig = 1; sig < NSIG; sig++)
    assert_int_equal(sigismember(&before, sig), sigismember(&after, sig));
  return rc;
}

static inline int run_capture(const char *const argv[], vmsnap_spawn_result *r)
{
  vmsnap_spawn_opts o = opts_new();
  o.capture_stdout = 1;
  return run(argv, &o, NULL, r);
}

/* ---- cancel helpers ----------------------------------------------------- */

typedef struct cancel_after {
  int64_t at; /* cancel once now_ms() >= at */
  int calls;
} cancel_after;

static inline int cancel_cb(void *user)
{
  cancel_after *c = user;
  c->calls++;
  return now_ms() >= c->at;
}

static inline spawn_ctl ctl_cancel_after(cancel_after *c, int delay_ms, int grace_ms)
{
  c->at = now_ms() + delay_ms;
  c->calls = 0;
  spawn_ctl ctl = {.cancelled = cancel_cb, .cancel_user = c, .grace_ms = grace_ms};
  return ctl;
}

#endif
