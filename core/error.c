/* error.c — return codes and the error messages ops carry. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *vmsnap_version(void) { return VMSNAP_VERSION; }

const char *vmsnap_strerror(int code)
{
  switch (code) {
  case VMSNAP_OK: return "success";
  case VMSNAP_E_INVALID: return "invalid argument";
  case VMSNAP_E_NOT_FOUND: return "not found";
  case VMSNAP_E_EXISTS: return "already exists";
  case VMSNAP_E_BUSY: return "busy or in use";
  case VMSNAP_E_BACKEND: return "backend failure";
  case VMSNAP_E_CANCELLED: return "cancelled";
  case VMSNAP_E_NOSPC: return "not enough space";
  case VMSNAP_E_UNSUPPORTED: return "not supported by the backend";
  case VMSNAP_E_NOMEM: return "out of memory";
  case VMSNAP_E_IO: return "I/O error on vmsnap state";
  case VMSNAP_E_NEEDS_RECOVER: return "an interrupted operation needs recover";
  case VMSNAP_E_INPROGRESS: return "operation in progress";
  }
  return "unknown error";
}

int err_setv(vs_err *e, int code, const char *fmt, va_list ap)
{
  if (e && e->code == 0) {
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  }
  return code;
}

int err_set(vs_err *e, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  err_setv(e, code, fmt, ap);
  va_end(ap);
  return code;
}

int err_wrap(vs_err *e, const char *prefix_fmt, ...)
{
  char prefix[VS_MSG_MAX], old[VS_MSG_MAX];
  va_list ap;
  va_start(ap, prefix_fmt);
  vsnprintf(prefix, sizeof prefix, prefix_fmt, ap);
  va_end(ap);
  snprintf(old, sizeof old, "%s", e->msg);
  int plen = (int)strnlen(prefix, sizeof e->msg - 1);
  snprintf(e->msg, sizeof e->msg, "%.*s%.*s", plen, prefix, (int)(sizeof e->msg - 1) - plen, old);
  return e->code;
}

int err_from_errno(int errnum)
{
  switch (errnum) {
  case ENOENT: return VMSNAP_E_NOT_FOUND;
  case EEXIST: return VMSNAP_E_EXISTS;
  case EBUSY: case ETXTBSY: case EWOULDBLOCK: return VMSNAP_E_BUSY;
  case ENOSPC: case EDQUOT: return VMSNAP_E_NOSPC;
  case ENOMEM: return VMSNAP_E_NOMEM;
  case EINVAL: return VMSNAP_E_INVALID;
  case EOPNOTSUPP: return VMSNAP_E_UNSUPPORTED;
  }
  return VMSNAP_E_IO;
}
