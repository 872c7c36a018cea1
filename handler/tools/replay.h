/* Replay: processes Event Grid events from files through the same pipeline as
 * the server, to backfill after an outage or to drain a dead-letter container.
 *
 * A file holds one event, a JSON array of events, or events one per line (Event
 * Grid dead-letter blobs are arrays of events with extra `deadLetterReason`,
 * `deliveryAttempts`, ... members, which the event model ignores). Either schema.
 * Each event gets its own time budget; a transient failure is retried by the
 * exporter and enricher within it and then counted as failed.
 *
 * Threading: single-threaded; the pipeline it drives is thread-safe anyway. */
#ifndef HANDLER_REPLAY_H
#define HANDLER_REPLAY_H

#include <stddef.h>
#include <stdio.h>

#include "base/result.h"
#include "core/pipeline.h"

struct replay_summary {
  size_t events;   /* events read */
  size_t recorded; /* exported as records */
  size_t rejected; /* exported as AmlEventRejected */
  size_t failed;   /* not exported (transient failure, unreadable file) */
  size_t files_unreadable;
};

/* Replays every file; writes progress lines and failures to `progress` (may be
 * NULL). Returns RESULT_OK when nothing failed. */
HANDLER_NODISCARD int replay_files(struct pipeline *pipe, const char *const *paths,
                                   size_t count, int budget_ms, FILE *progress,
                                   struct replay_summary *out);

#endif
