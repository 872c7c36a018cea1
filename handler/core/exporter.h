/* The exporter interface: where finished records go.
 *
 * An exporter takes the records of one invocation and returns only when they are
 * safely handed over (written, or accepted by the ingestion service), so the
 * invocation can be acknowledged. A transient failure returns RESULT_TRANSIENT or
 * RESULT_TIMEOUT: the caller fails the invocation and Event Grid delivers again.
 *
 * Implementations: console_exporter (JSON lines on stdout, when no App Insights
 * connection string is configured) and the App Insights exporter.
 *
 * Threading: export() is called concurrently from many invocations; each
 * implementation is thread-safe. free() runs once, after the last export. */
#ifndef HANDLER_EXPORTER_H
#define HANDLER_EXPORTER_H

#include <stddef.h>
#include <stdint.h>

#include "core/record.h"
#include "base/result.h"

struct exporter {
  const char *name;
  /* Exports `count` records (borrowed) before `deadline_ms` (time_mono_ms). */
  int (*export_records)(struct exporter *self, const struct record *const *records,
                        size_t count, int64_t deadline_ms, struct error_info *err);
  void (*free)(struct exporter *self);
};

static inline int exporter_export(struct exporter *exp,
                                  const struct record *const *records, size_t count,
                                  int64_t deadline_ms, struct error_info *err) {
  return exp->export_records(exp, records, count, deadline_ms, err);
}

static inline void exporter_free(struct exporter *exp) {
  if (exp)
    exp->free(exp);
}

/* One JSON line per record on stdout (record_to_json). Never fails but for
 * memory. */
HANDLER_NODISCARD struct exporter *console_exporter_new(void);

#endif
