/* qmp.h — the core's QMP client (QEMU Machine Protocol over a unix socket).
 *
 * Used by the qmp domain driver and by live snapshots. Short-lived by
 * design: QEMU serves ONE client per monitor socket at a time, and a client
 * that stays connected locks out libvirt, libxl or the user's own tools. So
 * connect, do the work, qmp_close (the qmp domain keeps one connection
 * for the calls of an op while it holds the domain's lock: domain_qmp.c).
 * Anything that must survive a disconnect
 * (block jobs) is started with "auto-dismiss": false and read back with
 * query-jobs, because QMP events are lost while nobody is connected.
 *
 * Threads: a qmp_conn is used by one thread at a time (the caller
 * serialises); distinct connections are independent. Nothing here installs
 * signal handlers or touches the signal mask: writes use MSG_NOSIGNAL, so a
 * QEMU that dies never raises SIGPIPE. The socket is close-on-exec.
 *
 * Time: every call is bounded. timeout_ms <= 0 means the connection's
 * default, the timeout given to qmp_open (QMP_DEFAULT_TIMEOUT_MS if that
 * was <= 0). A call that times out leaves the connection usable; a reply
 * that arrives late is recognised by its id and dropped. After EOF or an
 * I/O error the connection is dead: every later call fails at once.
 *
 * Errors: 0 or a negative VMSNAP_E_* with the message in *err. A QMP error
 * reply {"error":{"class","desc"}} becomes "QMP <cmd>: <desc>" with
 *   VMSNAP_E_NOT_FOUND    class DeviceNotFound, or a desc about a missing
 *                         device, node, job or file
 *   VMSNAP_E_UNSUPPORTED  class CommandNotFound (this QEMU lacks the command)
 *   VMSNAP_E_EXISTS       desc "... already exists"
 *   VMSNAP_E_BUSY         desc about a lock, "is busy" or "in use"
 *   VMSNAP_E_BACKEND      anything else
 * and qmp_error_class() tells the class when the caller needs it. */
#ifndef VMSNAP_QMP_H
#define VMSNAP_QMP_H

#include <stdint.h>

#include "internal.h"

#define QMP_DEFAULT_TIMEOUT_MS 5000

typedef struct qmp_conn qmp_conn;

/* Connects to socket_path, reads QEMU's greeting and negotiates
 * capabilities (no OOB), all within timeout_ms. On success *out is a
 * connection for qmp_close. Errors:
 *   VMSNAP_E_NOT_FOUND  no socket at that path
 *   VMSNAP_E_BUSY       connection refused (no QEMU listens: stale socket),
 *                       or no greeting in time: another client holds the monitor
 *   VMSNAP_E_INVALID    not a QMP monitor (e.g. an HMP -monitor socket), bad path
 *   VMSNAP_E_IO         QEMU closed the connection, or another socket error */
int qmp_open(const char *socket_path, int timeout_ms, qmp_conn **out, vs_err *err);

/* Closes the socket, frees queued events. NULL is fine. QEMU keeps running
 * whatever the connection started (jobs, migration). */
void qmp_close(qmp_conn *c);
/* 0 once EOF or an I/O error killed the connection. */
int qmp_alive(const qmp_conn *c);

/* QEMU's version from the greeting. */
void qmp_version(const qmp_conn *c, int *major, int *minor, int *micro);

/* Runs one command: sends {"execute": cmd, "arguments": args, "id": …}
 * and reads until the reply with that id. args (an object or NULL) is
 * stolen, also on error. On success *ret (if ret) gets the reply's
 * "return" value, a new reference. Events that arrive meanwhile are queued
 * for qmp_next_event. A timed-out command may still complete in QEMU. */
int qmp_execute(qmp_conn *c, const char *cmd, json_t *args, int timeout_ms, json_t **ret,
                vs_err *err);

/* The class of the last error reply ("GenericError", "DeviceNotFound"…),
 * or "" when the last command succeeded. Valid until the next call. */
const char *qmp_error_class(const qmp_conn *c);

/* The oldest queued event named `name` (any event when NULL), else the
 * first such event to arrive within timeout_ms (0: only what has already
 * arrived, < 0: the connection's default). *event is the whole message
 * {"event","data","timestamp"} (new reference), or NULL when none came:
 * that is not an error. The queue keeps the newest QMP_MAX_EVENTS events;
 * older ones are dropped (events are hints, query-* is the truth). */
#define QMP_MAX_EVENTS 1024
int qmp_next_event(qmp_conn *c, const char *name, int timeout_ms, json_t **event, vs_err *err);

/* Like qmp_next_event, but only events whose data.<key> is the string
 * `value` (e.g. "JOB_STATUS_CHANGE", "id", "job0"). Others stay queued. */
int qmp_next_event_match(qmp_conn *c, const char *name, const char *key, const char *value,
                         int timeout_ms, json_t **event, vs_err *err);

/* ---- helpers for the domain driver (qmp_jobs.c) ---------------------- */

/* query-status: *status is "running", "paused", "prelaunch", "postmigrate",
 * "inmigrate", "shutdown"… (free with free()). */
int qmp_query_status(qmp_conn *c, char **status, vs_err *err);

/* query-block: the raw array of devices (new reference). Address disks by
 * inserted.node-name: with -blockdev (and under libxl) "device" is "". */
int qmp_query_block(qmp_conn *c, json_t **devices, vs_err *err);

/* qmp_wait_job returns these (positive) when the job needs the caller. */
#define QMP_JOB_READY 1   /* "ready": mirror / active block-commit converged */
#define QMP_JOB_PENDING 2 /* "pending": started with auto-finalize false */

/* Waits for job job_id (started with "auto-dismiss": false) by polling
 * query-jobs every ~100 ms (a JOB_STATUS_CHANGE event for it wakes the
 * poll earlier; such events are consumed). Reports current/total progress
 * to progress(puser, done, total) when it changes. When cancelled(user)
 * turns true it sends job-cancel once and waits until the job concludes.
 * At the end it dismisses the job and drops its queued events. Returns
 *   0                   the job concluded without error (also when a cancel
 *                       came too late: the job's effect is then in place)
 *   VMSNAP_E_CANCELLED  the job was cancelled (by us or someone else)
 *   VMSNAP_E_BACKEND    the job failed: its error string is in the message
 *   VMSNAP_E_NOT_FOUND  no such job
 *   QMP_JOB_READY       the job is "ready" and still running: the caller
 *                       decides: qmp_job_complete (pivot), or job-cancel
 *                       through cancelled() and call again (no pivot)
 *   QMP_JOB_PENDING     waiting for job-finalize: the caller sends it (for
 *                       the whole transaction) and calls again
 * or a transport error. cancelled and progress may be NULL. A job started
 * with auto-dismiss true vanishes when it ends; its outcome is then taken
 * from the queued BLOCK_JOB_COMPLETED/CANCELLED event if one was seen. */
int qmp_wait_job(qmp_conn *c, const char *job_id, int (*cancelled)(void *), void *user,
                 void (*progress)(void *, uint64_t, uint64_t), void *puser, vs_err *err);

/* Sends job-complete to a "ready" job (the active block-commit pivots to
 * the base, a mirror to its target), then waits like qmp_wait_job until it
 * concludes, ignoring "ready". Returns what qmp_wait_job returns. */
int qmp_job_complete(qmp_conn *c, const char *job_id, int (*cancelled)(void *), void *user,
                     void (*progress)(void *, uint64_t, uint64_t), void *puser, vs_err *err);

#endif
