/* The pipeline: one event in, one record exported.
 *
 * For each event it checks the workspace is watched, builds the record, asks
 * the enricher (when there is one) to add run details, and hands the record to
 * the exporter. An event that cannot be used (undecodable, malformed, another
 * workspace) becomes a rejected-event record (AmlEventRejected) with the reason
 * and the raw event: bad input is recorded, never dropped. A transient failure
 * upstream (run history, ingestion) is returned, so the caller can fail the
 * delivery and Event Grid delivers the event again.
 *
 * With a run table (watch/run_table.h), a run event also brings its run's entity
 * up to date, after the run details and before the export; a storage failure
 * is transient like any other.
 *
 * Callers: the host protocol (host/responder, one event per invocation) and
 * replay (tools/replay, events from files). The pipeline knows neither.
 *
 * Threading: pipeline_process() runs concurrently on server threads; the
 * pipeline holds no mutable state of its own. Ownership: the pipeline borrows
 * everything in its options; they must outlive it. */
#ifndef HANDLER_PIPELINE_H
#define HANDLER_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/jsonx.h"
#include "base/result.h"
#include "core/config.h"
#include "core/enricher.h"
#include "core/exporter.h"

struct run_table;

struct pipeline_options {
  const struct config *config;
  struct exporter *exporter;
  struct enricher *enricher; /* NULL: records carry what the event alone says */
  struct run_table *runs;    /* the workspace watch's run table; NULL: watch off */
};

/* What became of one event that was exported. */
struct pipeline_outcome {
  bool rejected;     /* exported as AmlEventRejected */
  char summary[512]; /* one line for a person ("recorded AmlRunCompleted for ...") */
};

struct pipeline;

HANDLER_NODISCARD struct pipeline *pipeline_new(const struct pipeline_options *options);
void pipeline_free(struct pipeline *pipe);

/* Processes one decoded event (or, with `event` NULL, an event that could not be
 * decoded: `decode_error` says why and `raw` is what arrived). Returns RESULT_OK
 * when a record or a rejected record was exported (`out` says which, and sums
 * it up), otherwise the transient failure with `err`. */
HANDLER_NODISCARD int pipeline_process(struct pipeline *pipe, const json_t *event,
                                       const json_t *raw, const char *decode_error,
                                       int64_t deadline_ms, struct pipeline_outcome *out,
                                       struct error_info *err);

/* A run the workspace watch found ended: `event` is the RunStatusChanged it
 * made from run history. Processed as a delivered event, and its record is also
 * exported as AmlRunReconciled (customEvent only), in the same export call. */
HANDLER_NODISCARD int pipeline_process_reconciled(struct pipeline *pipe,
                                                  const json_t *event,
                                                  int64_t deadline_ms,
                                                  struct pipeline_outcome *out,
                                                  struct error_info *err);

#endif
