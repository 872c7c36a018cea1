/* Telemetry: run records -> Application Insights envelopes. Pure.
 *
 * telemetry_envelopes() appends to a JSON array the envelopes one record
 * becomes (docs/queries.md, "What the handler sends"):
 *   - a customEvent (EventData) named after the record, every set field as a
 *     string property (plus "tag.<name>" per tag and one JSON string per
 *     properties object), durations, the cost estimate's numbers and the run's
 *     logged metrics as measurements (requests and dependencies carry the same
 *     properties and measurements);
 *   - for a terminal run (Completed, Failed, Canceled): customMetrics
 *     (MetricData, one Measurement point each) for the run duration
 *     ("AmlRunDurationMs"), queue time ("AmlRunQueueTimeMs") and, for a step
 *     or a run outside any pipeline with a cost estimate, its cost
 *     ("AmlRunCostUsd"; a pipeline's cost is the sum of its steps'), with the
 *     dimensions experiment, run_type, step_type, status, compute_target;
 *     a request (RequestData)
 *     for a pipeline run or a run outside any pipeline, a dependency
 *     (RemoteDependencyData) for a pipeline step, correlated by operation id
 *     (telemetry_operation_id of the pipeline run id) and parent id
 *     (telemetry_request_id of the pipeline run id), with the OpenTelemetry CI/CD
 *     attributes (cicd.pipeline.*, error.type) among the properties;
 *   - with legacy_traces, also a trace (MessageData "aml_pipeline_run_metrics",
 *     severity Information) per terminal run, the original sample's log shape.
 * An item timed more than 48 hours before `now_ms` (a long run's request, an
 * event replayed late) is moved to the oldest time ingestion accepts, with a
 * margin, and marked timestamp_adjusted = "true"; durations are not changed.
 * Rejected records are a customEvent only. Numbers become property text by
 * jsonx_format_double (every digit kept). Property names longer than 150
 * characters are dropped, values cut to 8192 bytes (at a UTF-8 boundary).
 *
 * Ownership: `out` is the caller's array; envelopes are appended as new
 * values. Thread-safe: no shared state (options are read-only). */
#ifndef HANDLER_TELEMETRY_H
#define HANDLER_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/result.h"
#include "base/jsonx.h"
#include "base/settings.h"
#include "core/record.h"

#define TELEMETRY_MAX_PROPERTY_NAME 150
#define TELEMETRY_MAX_PROPERTY_VALUE 8192
#define TELEMETRY_LEGACY_TRACES_SETTING "HANDLER_LEGACY_TRACES"

/* Ingestion refuses items timed more than 48 hours ago; older items are moved
 * to now - TELEMETRY_MAX_AGE_MS + TELEMETRY_AGE_MARGIN_MS (the margin covers
 * retries and clock skew) and carry the property timestamp_adjusted = "true". */
#define TELEMETRY_MAX_AGE_MS (48LL * 3600 * 1000)
#define TELEMETRY_AGE_MARGIN_MS (15LL * 60 * 1000)
#define TELEMETRY_TIMESTAMP_ADJUSTED "timestamp_adjusted"

struct telemetry_options {
  char ikey[64];           /* instrumentation key, on every envelope */
  char role[256];          /* ai.cloud.role: WEBSITE_SITE_NAME or "aml-event-handler" */
  char role_instance[256]; /* ai.cloud.roleInstance: WEBSITE_INSTANCE_ID or host name */
  bool legacy_traces;      /* HANDLER_LEGACY_TRACES=true */
};

/* Fills role, role instance and legacy_traces from the environment; `ikey` is
 * copied. RESULT_INVALID (naming the setting) when HANDLER_LEGACY_TRACES is not
 * a boolean. */
HANDLER_NODISCARD int telemetry_options_init(struct telemetry_options *out,
                                             const char *ikey,
                                             settings_getenv_fn getenv_fn, void *ctx,
                                             struct error_info *err);

/* Which envelopes of a record to build: the customEvent (every record), and the
 * run's measurement (metrics, request or dependency, legacy trace), which only
 * a terminal run has and which must be sent once per run although AML sends
 * several events for it (RunStatusChanged and RunCompleted, and an early event
 * enriched after the run ended looks terminal too): the exporter decides. */
enum telemetry_parts {
  TELEMETRY_EVENT = 1,
  TELEMETRY_RUN = 2,
  TELEMETRY_ALL = 3,
};

/* Appends the envelopes of `rec` selected by `parts` to `out`; `now_ms` (wall
 * clock) is the time of envelopes when the record carries none, and the
 * reference of the 48-hour limit. Returns
 * RESULT_OK or RESULT_NOMEM. */
HANDLER_NODISCARD int telemetry_envelopes(const struct telemetry_options *options,
                                          const struct record *rec, int64_t now_ms,
                                          unsigned parts, json_t *out);

/* The run id whose measurement `rec` would carry (TELEMETRY_RUN builds
 * something), or NULL: a terminal run, not rejected, with a run id. Borrowed. */
const char *telemetry_measured_run(const struct record *rec);

/* The operation id of a run id: a GUID as 32 lower-case hex digits without dashes;
 * any other id the first 16 bytes of its SHA-256 in hex. */
void telemetry_operation_id(const char *run_id, char out[33]);

/* The id of the request of a pipeline run (or plain run): 16 hex digits derived
 * from its run id, so its steps name it as parent before it is sent. Steps use
 * the same function on their own run id for the dependency's id. */
void telemetry_request_id(const char *run_id, char out[17]);

#endif
