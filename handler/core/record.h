/* The run record: what users query, one per AML event.
 *
 * A record is a fixed table of named fields (docs/records.md: the original sample's
 * keys plus event_id, event_time, parent_run_id, queue_time_ms, error_code,
 * error_message, enrichment, the cost estimate, and the ids of model and drift
 * events). Each field
 * is a string or a number and is either set or unknown; unknown fields are left
 * out of every output. record_from_event() fills what the event alone carries;
 * the AML client adds run details later through record_set_*.
 *
 * A rejected event is a record too (name "AmlEventRejected") carrying the reason
 * and the raw event, truncated.
 *
 * Ownership: a record owns its strings; record_cleanup() frees them. Thread-safe:
 * no shared state. */
#ifndef HANDLER_RECORD_H
#define HANDLER_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "base/result.h"
#include "core/event.h"
#include "base/jsonx.h"

enum record_field {
  /* Record keys of the original sample. */
  REC_COMPUTE_TARGET_TYPE,
  REC_EXECUTION_TIME_MS,
  REC_START_TIME_UTC_MS,
  REC_END_TIME_UTC_MS,
  REC_EXPERIMENT_NAME,
  REC_PIPELINE_RUN_ID,
  REC_DOCKER_IMAGE,
  REC_EXPERIMENT_ID,
  REC_RESOURCE_GROUP,
  REC_SUBSCRIPTIONS,
  REC_WORKSPACE,
  REC_SNAPSHOT_ID,
  REC_STEP_TYPE,
  REC_RUN_TYPE,
  REC_NODE_ID,
  REC_RUN_ID,
  REC_TARGET,
  REC_SCRIPT,
  REC_STATUS,
  /* Added by this project (docs/records.md). */
  REC_EVENT_ID,
  REC_EVENT_TIME,
  REC_PARENT_RUN_ID,
  REC_QUEUE_TIME_MS,
  REC_ERROR_CODE,
  REC_ERROR_MESSAGE,
  REC_ENRICHMENT,
  REC_DISPLAY_NAME, /* the run's display name (step name in a pipeline) */
  /* Cost estimate of a finished run (docs/records.md "Cost"). */
  REC_VM_SIZE,
  REC_VM_PRIORITY,
  REC_NODE_COUNT,
  REC_COST_PRICE_PER_HOUR_USD,
  REC_COST_ESTIMATE_USD,
  REC_COST_UNKNOWN_REASON,
  /* Model and drift events. */
  REC_MODEL_NAME,
  REC_MODEL_VERSION,
  REC_SERVICE_NAME,
  REC_SERVICE_COMPUTE_TYPE,
  REC_MODEL_IDS,
  REC_DATA_DRIFT_ID,
  REC_DATA_DRIFT_NAME,
  REC_BASE_DATASET_ID,
  REC_TARGET_DATASET_ID,
  REC_DRIFT_COEFFICIENT,
  REC_DRIFT_START_TIME,
  REC_DRIFT_END_TIME,
  /* The workspace watch (AmlRunStuck, AmlActiveRuns, AmlOldestWaitingRunAgeMs). */
  REC_STUCK_STATUS,
  REC_STUCK_FOR_MS,
  REC_THRESHOLD_MS,
  REC_METRIC_VALUE,
  /* Rejected events. */
  REC_REASON,
  REC_EVENT_TYPE,
  REC_RAW_EVENT,
  REC_FIELD_COUNT
};

enum record_kind { REC_KIND_STRING, REC_KIND_NUMBER };

/* The field's user-facing name ("execution_time_ms") and kind. */
const char *record_field_name(enum record_field field);
enum record_kind record_field_kind(enum record_field field);

struct record_value {
  bool set;
  char *text;    /* REC_KIND_STRING */
  double number; /* REC_KIND_NUMBER */
};

/* The raw event of a rejected record is cut to this many bytes. */
#define RECORD_RAW_EVENT_MAX 4096

/* Scalar metrics the run logged (last value of each), exported as measurements. */
#define RECORD_MAX_METRICS 32

struct record_metric {
  char *name;
  double value;
};

/* The properties objects a record can carry, each output as one JSON object
 * string under its name ("run_properties", "model_properties",
 * "service_properties"), cut past RECORD_PROPERTIES_MAX bytes with "...". Tags
 * (run, model or service tags) are output one per key as "tag.<name>". */
enum record_props { REC_PROPS_RUN, REC_PROPS_MODEL, REC_PROPS_SERVICE, REC_PROPS_COUNT };

#define RECORD_TAG_PREFIX "tag."
#define RECORD_PROPERTIES_MAX 8192

/* What a record becomes in telemetry. */
enum record_shape {
  RECORD_SHAPE_EVENT,  /* a customEvent, and a terminal run's measurement */
  RECORD_SHAPE_NOTICE, /* a customEvent only (AmlRunStuck, AmlRunReconciled) */
  RECORD_SHAPE_METRIC, /* a customMetric named `name`, value REC_METRIC_VALUE, the
                          set string fields as dimensions (AmlActiveRuns) */
};

struct record {
  char name[48]; /* telemetry name: "AmlRunCompleted", ..., "AmlEventRejected" */
  enum aml_event_type type; /* meaningless for rejected records */
  enum run_kind run_kind;   /* RUN_KIND_NONE for non-run and rejected records */
  bool rejected;
  enum record_shape shape; /* RECORD_SHAPE_EVENT after record_init */
  struct record_value values[REC_FIELD_COUNT];
  struct record_metric metrics[RECORD_MAX_METRICS];
  size_t metric_count;
  json_t *tags; /* NULL, or an object: tag name -> its value as text */
  json_t *properties[REC_PROPS_COUNT]; /* NULL, or a copy of the object */
};

void record_init(struct record *rec);
void record_cleanup(struct record *rec);

/* Fills a freshly initialised record from what `event` carries. */
HANDLER_NODISCARD int record_from_event(struct record *rec,
                                        const struct aml_event *event);

/* Fills a freshly initialised record for an event that was refused: `reason` is
 * the sentence saying why; `raw` (may be NULL) is the event as received, whose
 * compact JSON is kept up to RECORD_RAW_EVENT_MAX bytes; its id and type are
 * copied when they can be read. */
HANDLER_NODISCARD int record_rejected(struct record *rec, const char *reason,
                                      const json_t *raw);

/* Copies every field, metric, tag, properties object and flag of `src` into a
 * freshly initialised `dst`. */
HANDLER_NODISCARD int record_copy(struct record *dst, const struct record *src);

/* Setters copy `text`; NULL text clears the field. Return 0 or RESULT_NOMEM. */
HANDLER_NODISCARD int record_set_string(struct record *rec, enum record_field field,
                                        const char *text);
void record_set_number(struct record *rec, enum record_field field, double number);
void record_clear(struct record *rec, enum record_field field);

/* Adds or replaces metric `name`. RESULT_TOOBIG once RECORD_MAX_METRICS are held. */
HANDLER_NODISCARD int record_add_metric(struct record *rec, const char *name,
                                        double value);

/* Adds the members of the object `tags` (run, model or service tags) whose
 * names the record does not hold yet: what the event carries wins, run details
 * complete it. Values are kept as text (strings as they are, anything else as
 * compact JSON). NULL or a non-object adds nothing. 0 or RESULT_NOMEM. */
HANDLER_NODISCARD int record_add_tags(struct record *rec, const json_t *tags);

/* Adds the members of `props` missing from the record's properties object
 * `which` (copies; first writer wins, as for tags). 0 or RESULT_NOMEM. */
HANDLER_NODISCARD int record_add_properties(struct record *rec, enum record_props which,
                                            const json_t *props);

/* "run_properties", "model_properties", "service_properties". */
const char *record_props_name(enum record_props which);

/* The compact JSON text of properties object `which`, cut at
 * RECORD_PROPERTIES_MAX bytes (on a UTF-8 boundary, ending in "...") when
 * longer; malloc'd, NULL when the record has none (or out of memory). */
HANDLER_NODISCARD char *record_properties_text(const struct record *rec,
                                               enum record_props which);

/* Sets "tag.<name>" per tag and "<kind>_properties" per properties object of
 * `rec` as string members of the object `out` (record_to_json's "record", or
 * telemetry properties). 0 or RESULT_NOMEM. */
HANDLER_NODISCARD int record_tags_and_properties(const struct record *rec, json_t *out);

/* Borrowed string value or NULL; number getter returns false when unset. */
const char *record_string(const struct record *rec, enum record_field field);
bool record_number(const struct record *rec, enum record_field field, double *out);

/* {"name": ..., "record": {<set fields, numbers as numbers, "tag.<name>" per
 * tag, "<kind>_properties" per properties object>}, "metrics": {...}}
 * ("metrics" only when there are any): the console line
 * and the shape the data-driven tests compare. New reference. */
HANDLER_NODISCARD json_t *record_to_json(const struct record *rec);

#endif
