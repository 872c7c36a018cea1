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

/* Serialises a record as the exporters do: jsonx_dump must succeed exactly
 * when json_dumps does, and what it writes must read back to the same value
 * (every real to the same double: the shortest text that round-trips). */
static inline void fuzz_serialise(const struct record *rec) {
  json_t *json = record_to_json(rec);
  char *ours = jsonx_dump(json);
  char *theirs =
      json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
  if (!ours != !theirs)
    abort();
  if (ours) {
    json_t *back = json_loads(ours, JSON_DECODE_ANY, NULL);
    if (!back || !json_equal(back, json))
      abort();
    json_decref(back);
  }
  free(ours);
  free(theirs);
  json_decref(json);
}

#endif
