/* The enricher interface: adds what the event alone does not say to a record.
 *
 * The AML client implements it (run details, parent pipeline run, metrics). The
 * pipeline calls it for run events after record_from_event(). Contract:
 *   - RESULT_OK: the record was completed, or could not be for a permanent reason
 *     (run not found, forbidden); either way the `enrichment` field says which
 *     ("ok", or why not) and the event is acknowledged.
 *   - RESULT_TRANSIENT / RESULT_TIMEOUT: upstream failed in a way that may pass;
 *     the invocation fails so Event Grid delivers again;
 *   - RESULT_DENIED: the credential was refused; the invocation fails too, so the
 *     events come again once the configuration is fixed.
 * Threading: enrich() is called concurrently; implementations are thread-safe. */
#ifndef HANDLER_ENRICHER_H
#define HANDLER_ENRICHER_H

#include <stdint.h>

#include "core/event.h"
#include "core/record.h"
#include "base/result.h"

struct enricher {
  const char *name;
  int (*enrich)(struct enricher *self, const struct aml_event *event, struct record *rec,
                int64_t deadline_ms, struct error_info *err);
  void (*free)(struct enricher *self);
};

#endif
