/* The event model: one Azure Machine Learning event, from either schema.
 *
 * event_parse() turns a decoded Event Grid event (Event Grid schema or
 * CloudEvents 1.0) into a `struct aml_event`: the type, the workspace from the
 * topic, the ids from the subject, the payload's fields looked up
 * case-insensitively, and the pipeline hierarchy read from run tags and
 * properties (docs/protocols.md §3). Anything that is not a usable AML event is
 * refused with RESULT_INVALID and a sentence in `err` saying why; the caller
 * records it as rejected.
 *
 * Ownership: every string in a parsed event is owned by it (malloc'd copies);
 * event_cleanup() frees them. `raw` is a new reference to the event JSON.
 * Thread-safe: no shared state. */
#ifndef HANDLER_EVENT_H
#define HANDLER_EVENT_H

#include <stdbool.h>

#include "base/jsonx.h"
#include "base/result.h"
#include "core/resource_path.h"

enum aml_event_type {
  AML_EVENT_RUN_COMPLETED,
  AML_EVENT_RUN_STATUS_CHANGED,
  AML_EVENT_MODEL_REGISTERED,
  AML_EVENT_MODEL_DEPLOYED,
  AML_EVENT_DATASET_DRIFT_DETECTED,
  AML_EVENT_TYPE_COUNT
};

enum event_schema { EVENT_SCHEMA_EVENT_GRID, EVENT_SCHEMA_CLOUD_EVENTS };

/* Where a run sits in a pipeline. */
enum run_kind {
  RUN_KIND_NONE,     /* not a run event */
  RUN_KIND_PLAIN,    /* a run outside any pipeline */
  RUN_KIND_PIPELINE, /* a pipeline run (the parent of steps) */
  RUN_KIND_STEP,     /* a step of a pipeline run */
};

struct aml_event {
  enum aml_event_type type;
  enum event_schema schema;
  json_t *raw; /* the whole event (new reference) */

  char *id, *time, *topic, *subject;
  char *subscription_id, *resource_group, *workspace; /* from the topic */

  /* Run events (RunCompleted, RunStatusChanged). */
  char *experiment_id, *experiment_name, *run_id, *run_type;
  char *run_status; /* canonical casing ("Completed") when known, else as sent */
  enum run_kind run_kind;
  char *pipeline_run_id, *node_id, *step_type, *compute_target_type, *snapshot_id;
  char *target;

  /* ModelRegistered / ModelDeployed. */
  char *model_name, *model_version;
  char *service_name, *service_compute_type, *model_ids;

  /* The tags and properties the event carries, borrowed from `raw` (NULL when
   * absent): runTags / runProperties, modelTags / modelProperties,
   * serviceTags / serviceProperties (any key casing). */
  const json_t *tags, *properties;

  /* DatasetDriftDetected. */
  char *data_drift_id, *data_drift_name, *base_dataset_id, *target_dataset_id;
  char *drift_start_time, *drift_end_time;
  double drift_coefficient;
  bool has_drift_coefficient;
};

/* Parses `event` (borrowed). On success fills `out` (caller cleans it up with
 * event_cleanup) and returns RESULT_OK; on failure returns RESULT_INVALID with
 * `err` saying what is wrong, and `out` needs no cleanup. */
HANDLER_NODISCARD int event_parse(const json_t *event, struct aml_event *out,
                                  struct error_info *err);
void event_cleanup(struct aml_event *event);

/* "RunCompleted", ... */
const char *aml_event_type_name(enum aml_event_type type);

/* Canonical casing of a run status ("failed" -> "Failed"), or NULL when unknown. */
const char *run_status_canonical(const char *status);
/* Completed, Failed and Canceled (any casing). */
bool run_status_is_terminal(const char *status);

#endif
