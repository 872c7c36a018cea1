/* The workspace watch: what the timer function `workspace_watch` does each tick.
 *
 * A tick reads the open runs of the run table (paged), and for each run past
 * its threshold (waiting longer than HANDLER_STUCK_WAITING_MINUTES, Running
 * longer than HANDLER_STUCK_RUNNING_HOURS; other open states such as Finalizing
 * after the waiting threshold, to find lost endings, never reported as stuck)
 * asks run history once for the truth, at most HANDLER_WATCH_MAX_CHECKS runs per
 * tick (runs never reported and least recently checked first, so every
 * candidate gets its turn):
 *   - still in that waiting or Running status: AmlRunStuck, once per run and
 *     status (the entity's StuckReported, claimed with a conditional write
 *     before the export, so two ticks or two instances never both report it);
 *   - ended: the entity is closed (conditional write), then AmlRunReconciled
 *     and the normal record of the final state go out through the pipeline
 *     (run details, request or dependency, as for a delivered event);
 *   - in another open status: the entity follows it;
 *   - gone (404): the entity is deleted, with a log line.
 * A claim whose export fails is undone (best effort) and the tick fails. Then
 * AmlActiveRuns (one point per status and one for status "all") and
 * AmlOldestWaitingRunAgeMs (0 when nothing waits). Closed entities older than
 * RUN_TABLE_RETENTION_MS are deleted (bounded per tick). A tick whose deadline
 * comes stops where it is (logged) and the next one goes on.
 *
 * Without an AML client (no Azure credential) runs cannot be verified: stuck
 * runs are reported from the table alone and nothing is reconciled.
 *
 * The clock is the caller's (`now_ms`), so tests can age runs. Threading: one
 * tick at a time per watch (the Functions host runs one timer invocation at a
 * time; a lock makes a second concurrent tick wait). Ownership: everything in
 * the options is borrowed and must outlive the watch. */
#ifndef HANDLER_WORKSPACE_WATCH_H
#define HANDLER_WORKSPACE_WATCH_H

#include <stdint.h>

#include "base/jsonx.h"
#include "base/result.h"
#include "core/config.h"
#include "core/enricher.h"
#include "core/exporter.h"
#include "watch/run_table.h"

struct pipeline;

struct watch_options {
  const struct config *config;
  struct run_table *runs;
  struct enricher *aml; /* NULL: no verification against run history */
  struct exporter *exporter;
  struct pipeline *pipeline; /* records reconciled runs */
};

struct watch_tick_report {
  unsigned open, candidates, checked, stuck, reconciled, gone, moved, deferred, purged,
      history_calls;
  bool complete; /* false: the deadline stopped the tick early */
};

struct workspace_watch;

struct workspace_watch *workspace_watch_new(const struct watch_options *options);
void workspace_watch_free(struct workspace_watch *watch);

/* One tick at wall time `now_ms`, before `deadline_ms` (time_mono_ms). Appends
 * lines for the host's log to `logs`. RESULT_OK (also for a tick stopped by its
 * deadline), or the failure that stopped it (storage or run history down). */
int workspace_watch_tick(struct workspace_watch *watch, int64_t now_ms,
                         int64_t deadline_ms, json_t *logs, struct watch_tick_report *out,
                         struct error_info *err);

#endif
