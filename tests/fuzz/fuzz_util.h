/* Helpers shared by the fuzz targets (header-only: each target is its own
 * program). Not thread-safe: libFuzzer calls a target from one thread. */
#ifndef HANDLER_FUZZ_UTIL_H
#define HANDLER_FUZZ_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonx.h"
#include "base/log.h"
#include "core/record.h"

/* Silences the handler's log once: millions of inputs would print millions of
 * lines, and the log is not what is under test. */
static inline void fuzz_quiet(void) {
  static int done;
  if (!done) {
    log_set_level(LOG_OFF);
    done = 1;
  }
}

/* The input as a NUL-terminated string (libFuzzer's buffer is not); NULL when
 * out of memory. The caller frees it. */
static inline char *fuzz_text(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text) {
    memcpy(text, data, size);
    text[size] = '\0';
  }
  return text;
}

/* Serialises a record as the exporters do, and drops the result. */
/* Serialises a record; jsonx_dump must write exactly what json_dumps does. */
static inline void fuzz_serialise(const struct record *rec) {
  json_t *json = record_to_json(rec);
  char *ours = jsonx_dump(json);
  char *theirs =
      json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
  if (!ours != !theirs || (ours && strcmp(ours, theirs) != 0))
    abort();
  free(ours);
  free(theirs);
  json_decref(json);
}

#endif
