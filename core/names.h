/* names.h — what a snapshot, domain or disk may be called, and the names
 * backends give the objects they make. */
#ifndef VMSNAP_NAMES_H
#define VMSNAP_NAMES_H

#include "internal.h"

#define NAME_MAX_BYTES 255
#define OBJECT_NAME_MAX 200

/* 0, or VMSNAP_E_INVALID with a message naming `what` ("snapshot name").
 * Refused: empty, over 255 bytes, '/', "..", control characters, invalid
 * UTF-8, a leading '.' or '-'. */
int name_validate(const char *name, const char *what, vs_err *err);
/* "vmsnap-" + name with bytes outside [A-Za-z0-9._-] written as +XX; over
 * OBJECT_NAME_MAX it is cut and a hash of the whole name appended. */
char *name_object(const char *name);
/* The default name: epoch seconds, "-2", "-3"… when taken in `taken`
 * (array of snapshot documents). */
char *name_default(json_t *taken);
void uuid_new(char out[37]);

#endif
