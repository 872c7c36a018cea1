/* The run table: one entity per run the handler has heard of, in Azure Table
 * storage, shared by every instance of the Function App.
 *
 * PartitionKey is the workspace ("<subscription>/<group>/<workspace>",
 * lower-cased) and RowKey the run id, both escaped by table_key_escape(). The
 * properties (all strings or booleans): Subscription, ResourceGroup, Workspace,
 * RunId, RunKind ("plain", "pipeline", "step"), ExperimentId, ExperimentName,
 * RunType, PipelineRunId, ComputeTarget, Status, Since (ISO-8601 UTC: the event
 * time at which the run entered Status), Open, StuckReported (the status an
 * AmlRunStuck was sent for, or ""), CheckedAt (when the watch last asked run
 * history, or ""), ClosedAt, EventId (the event that set Status).
 *
 * Merge rules (run_table_merge, pure): an event for a run not in the table
 * inserts it; a closed run stays closed (a terminal status is final); a
 * terminal status closes an open run whatever its time; otherwise a different
 * status replaces the stored one only when its event is newer (equal times: the
 * later status in a run's life wins); the same status again (a duplicate, or
 * RunStatusChanged after RunCompleted's twin) changes nothing. Every write is
 * conditional: an insert on the entity's absence, a merge on the ETag this
 * instance last saw; a lost race (409, 412) reads the entity and decides again,
 * so concurrent instances converge on the newest status. Each instance
 * remembers the last state and ETag of up to RUN_TABLE_CACHE runs, so an event
 * usually costs one request (insert or merge) or none (duplicate, older, closed);
 * an event for a run another instance wrote costs a read more. When the table
 * client had to create the table again (it vanished: an emulator restarted
 * empty), what the instance remembered is forgotten. A run whose escaped
 * key would exceed Table storage's key size (a run id of hundreds of
 * characters) is not tracked: logged, and the event goes on.
 *
 * Terminal runs are marked closed (Open = false), not deleted: an event older
 * than the terminal one can still arrive (Event Grid retries for 24 hours, out of
 * order) and must not reopen the run. The watch deletes closed entities once
 * they are older than RUN_TABLE_RETENTION_MS.
 *
 * Threading: thread-safe (the table client is). Ownership: the run table owns
 * its table client. */
#ifndef HANDLER_RUN_TABLE_H
#define HANDLER_RUN_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "azure/table_client.h"
#include "base/jsonx.h"
#include "base/result.h"
#include "core/event.h"
#include "core/record.h"

/* Runs remembered per instance (their status and ETag), see run_table.c. */
#define RUN_TABLE_CACHE 4096

/* Closed runs are kept two days: beyond Event Grid's 24 h of retries. */
#define RUN_TABLE_RETENTION_MS (48LL * 3600 * 1000)

struct run_table;

/* Takes ownership of `client`. NULL on allocation failure (client freed). */
struct run_table *run_table_new(struct table_client *client);
void run_table_free(struct run_table *rt);
struct table_client *run_table_client(struct run_table *rt);

/* Counters: run events seen, entity writes they caused, events that needed none. */
struct run_table_stats {
  uint64_t events, writes, unchanged, conflicts;
};
void run_table_get_stats(struct run_table *rt, struct run_table_stats *out);

/* Brings the table up to date with one run event (`rec` is its record, run
 * details included when enrichment ran). Non-run events and events without a
 * status are no-ops. RESULT_OK, or the table client's failure (transient: the
 * invocation fails and the event comes again). */
int run_table_record_event(struct run_table *rt, const struct aml_event *ev,
                           const struct record *rec, int64_t deadline_ms,
                           struct error_info *err);

enum run_merge {
  RUN_MERGE_INSERT,         /* not in the table */
  RUN_MERGE_REPLACE,        /* newer status */
  RUN_MERGE_SKIP_DUPLICATE, /* same status */
  RUN_MERGE_SKIP_OLDER,     /* older event than the stored status */
  RUN_MERGE_SKIP_CLOSED,    /* the run already ended */
};
/* What an event of `status` at `event_ms` does to `stored` (NULL: absent). */
enum run_merge run_table_merge(const json_t *stored, const char *status,
                               int64_t event_ms);

/* Order of statuses in a run's life (NotStarted 0 ... terminal 9), -1 unknown. */
int run_status_rank(const char *status);
/* NotStarted, Queued, Preparing, Provisioning, Starting. */
bool run_status_is_waiting(const char *status);

/* Entity accessors (borrowed strings; "" when absent). */
const char *run_entity_string(const json_t *entity, const char *key);
bool run_entity_open(const json_t *entity);
/* Since as ms since the epoch; false when unreadable. */
bool run_entity_since_ms(const json_t *entity, int64_t *out_ms);

#endif
