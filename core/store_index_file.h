/* store_index_file.h — shared by the index's two halves: store_index.c
 * (loading documents through the index) and store_index_file.c (the
 * index file itself). Private to the store. */
#ifndef VMSNAP_STORE_INDEX_FILE_H
#define VMSNAP_STORE_INDEX_FILE_H

#include "store.h"

/* What the index says of one document file. */
struct store_known {
  char *file;
  uint64_t ino, size;
  int64_t msec, mnsec;
  char *uuid, *name, *parent; /* parent NULL: null; parent_absent: no key */
  char *disks; /* per disk "target US backend (US key US value)*", RS between */
  int parent_absent;
  int64_t csec, cnsec;
  char *mem; /* owns the strings above when not NULL */
  int used;  /* seen in the directory by this load */
};

/* Separators of a document's disks summary (store_known.disks). */
#define RS ((char)0x1e)
#define US ((char)0x1f)

/* Reads snapshots/.index into d->known (sorted by file); nothing when it
 * is missing, damaged or of another format. */
void index_file_read(store_domain *d);
/* The index read describes the snapshots directory as it is: the
 * directory is as the index's writer left it (nothing added, removed or
 * replaced since) and no operation was journaled since it was written. */
int index_current(store_domain *d);
void known_clear(store_domain *d);
store_known *known_find(store_domain *d, const char *file);
void known_put(store_domain *d, store_known *k);
void known_drop(store_domain *d, const char *file);
int known_from_doc(store_known *k, const char *file, const struct stat *st, json_t *doc);

#endif
