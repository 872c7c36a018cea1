/* Whole-file reads; see files.h. */
#include "base/files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILES_FIRST_CHUNK (64u * 1024)

int files_read(const char *path, size_t max, char **out, size_t *out_len,
               int *out_errno) {
  *out = NULL;
  *out_len = 0;
  if (out_errno)
    *out_errno = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (out_errno)
      *out_errno = errno;
    return errno == ENOENT ? RESULT_NOTFOUND : RESULT_IO;
  }
  /* The buffer grows by doubling up to max + 1 bytes: one byte more than
   * allowed tells a file that is too big from one that fills it exactly. */
  size_t cap = max + 1 < FILES_FIRST_CHUNK ? max + 1 : FILES_FIRST_CHUNK;
  size_t len = 0;
  char *buf = malloc(cap + 1);
  int r = buf ? RESULT_OK : RESULT_NOMEM;
  while (r == RESULT_OK) {
    len += fread(buf + len, 1, cap - len, f);
    if (ferror(f)) {
      if (out_errno)
        *out_errno = errno;
      r = RESULT_IO;
    } else if (len > max) {
      r = RESULT_TOOBIG;
    } else if (len < cap) {
      break; /* end of file */
    } else {
      size_t grown_cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
      char *grown = realloc(buf, grown_cap + 1);
      if (!grown)
        r = RESULT_NOMEM;
      else {
        buf = grown;
        cap = grown_cap;
      }
    }
  }
  fclose(f);
  if (r != RESULT_OK) {
    if (buf) /* what was read may be a secret (a token, a key) */
      explicit_bzero(buf, len);
    free(buf);
    return r;
  }
  buf[len] = '\0';
  *out = buf;
  *out_len = len;
  return RESULT_OK;
}
