/* Unit tests of records -> App Insights envelopes: the envelope set of each
 * record kind, operation ids and parent ids that correlate a pipeline run with
 * its steps, durations, tags, CI/CD attributes, the property limits, number
 * formatting, and the legacy trace option. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/record.h"
#include "export/telemetry.h"
#include "base/timeutil.h"

#define PIPELINE_ID "5D3F0A2B-1C4E-4F6A-8B9C-0D1E2F3A4B5C"
#define PIPELINE_OP "5d3f0a2b1c4e4f6a8b9c0d1e2f3a4b5c"
#define NOW 1700000000000LL

static struct telemetry_options options(void) {
  struct telemetry_options o = {.ikey = "00000000-1111-2222-3333-444444444444",
                                .role = "my-func-app",
                                .role_instance = "instance-1"};
  return o;
}

static void base_run(struct record *rec, const char *name, enum run_kind kind,
                     const char *run_id, const char *status) {
  record_init(rec);
  snprintf(rec->name, sizeof rec->name, "%s", name);
  rec->type = AML_EVENT_RUN_STATUS_CHANGED;
  rec->run_kind = kind;
  record_set_string(rec, REC_RUN_ID, run_id);
  record_set_string(rec, REC_STATUS, status);
  record_set_string(rec, REC_EXPERIMENT_NAME, "train-pipeline");
  record_set_string(rec, REC_EVENT_ID, "evt-1");
  record_set_string(rec, REC_EVENT_TIME, "2024-01-02T03:10:00Z");
  record_set_string(rec, REC_TARGET, "gpu-cluster");
  record_set_number(rec, REC_START_TIME_UTC_MS, 1704164400000.0); /* 03:00:00Z */
  record_set_number(rec, REC_EXECUTION_TIME_MS, 61500);
}

/* The envelope named "Microsoft.ApplicationInsights.<type>" (the nth of them). */
static json_t *find(json_t *envs, const char *type, int nth) {
  char name[96];
  snprintf(name, sizeof name, "Microsoft.ApplicationInsights.%s", type);
  size_t i;
  json_t *e;
  json_array_foreach(envs, i, e) {
    if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0 && nth-- == 0)
      return e;
  }
  return NULL;
}

static int count(json_t *envs, const char *type) {
  int n = 0;
  while (find(envs, type, n))
    n++;
  return n;
}

static const char *tag(json_t *env, const char *key) {
  return json_string_value(json_object_get(json_object_get(env, "tags"), key));
}

static json_t *base_data(json_t *env) {
  return json_object_get(json_object_get(env, "data"), "baseData");
}

static const char *prop(json_t *env, const char *key) {
  return json_string_value(
      json_object_get(json_object_get(base_data(env), "properties"), key));
}

static const char *str(json_t *env, const char *key) {
  return json_string_value(json_object_get(base_data(env), key));
}

static void common_envelope_shape(json_t *env, const char *base_type) {
  assert_string_equal(json_string_value(json_object_get(env, "iKey")),
                      "00000000-1111-2222-3333-444444444444");
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(env, "data"), "baseType")),
      base_type);
  assert_int_equal(json_integer_value(json_object_get(base_data(env), "ver")), 2);
  assert_string_equal(tag(env, "ai.cloud.role"), "my-func-app");
  assert_string_equal(tag(env, "ai.cloud.roleInstance"), "instance-1");
  assert_non_null(strstr(tag(env, "ai.internal.sdkVersion"), HANDLER_VERSION));
  const char *time = json_string_value(json_object_get(env, "time"));
  assert_non_null(time);
  assert_int_equal(time[strlen(time) - 1], 'Z');
}

static void pipeline_run_completed(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  base_run(&rec, "AmlRunStatusChanged", RUN_KIND_PIPELINE, PIPELINE_ID, "Completed");
  record_set_number(&rec, REC_QUEUE_TIME_MS, 2000);
  record_add_metric(&rec, "accuracy", 0.875);
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  assert_int_equal(json_array_size(envs), 4);
  assert_int_equal(count(envs, "Event"), 1);
  assert_int_equal(count(envs, "Metric"), 2);
  assert_int_equal(count(envs, "Request"), 1);
  assert_int_equal(count(envs, "Message"), 0); /* legacy traces are off by default */

  char request_id[17];
  telemetry_request_id(PIPELINE_ID, request_id);
  assert_int_equal(strlen(request_id), 16);

  json_t *req = find(envs, "Request", 0);
  common_envelope_shape(req, "RequestData");
  assert_string_equal(tag(req, "ai.operation.id"), PIPELINE_OP);
  assert_null(tag(req, "ai.operation.parentId"));
  assert_string_equal(tag(req, "ai.operation.name"), "train-pipeline");
  assert_string_equal(str(req, "id"), request_id);
  assert_string_equal(str(req, "name"), "train-pipeline");
  assert_string_equal(str(req, "duration"), "00:01:01.5000000");
  assert_string_equal(str(req, "responseCode"), "Completed");
  assert_true(json_is_true(json_object_get(base_data(req), "success")));
  assert_string_equal(json_string_value(json_object_get(req, "time")),
                      "2024-01-02T03:00:00.000Z"); /* the run's start */
  assert_string_equal(prop(req, "cicd.pipeline.name"), "train-pipeline");
  assert_string_equal(prop(req, "cicd.pipeline.run.id"), PIPELINE_ID);
  assert_string_equal(prop(req, "cicd.pipeline.result"), "success");
  assert_null(prop(req, "error.type"));
  assert_string_equal(prop(req, "execution_time_ms"), "61500");

  json_t *event = find(envs, "Event", 0);
  common_envelope_shape(event, "EventData");
  assert_string_equal(str(event, "name"), "AmlRunStatusChanged");
  assert_string_equal(json_string_value(json_object_get(event, "time")),
                      "2024-01-02T03:10:00.000Z"); /* the event's time */
  assert_string_equal(tag(event, "ai.operation.id"), PIPELINE_OP);
  assert_string_equal(tag(event, "ai.operation.parentId"), request_id);
  assert_string_equal(prop(event, "run_id"), PIPELINE_ID);
  assert_string_equal(prop(event, "status"), "Completed");
  assert_string_equal(prop(event, "queue_time_ms"), "2000");
  assert_string_equal(prop(event, "start_time_utc_ms"), "1704164400000");
  json_t *m = json_object_get(base_data(event), "measurements");
  assert_true(json_number_value(json_object_get(m, "execution_time_ms")) == 61500);
  assert_true(json_number_value(json_object_get(m, "queue_time_ms")) == 2000);
  assert_true(json_number_value(json_object_get(m, "accuracy")) == 0.875);

  json_t *metric = find(envs, "Metric", 0);
  common_envelope_shape(metric, "MetricData");
  json_t *point = json_array_get(json_object_get(base_data(metric), "metrics"), 0);
  assert_string_equal(json_string_value(json_object_get(point, "name")),
                      "AmlRunDurationMs");
  assert_string_equal(json_string_value(json_object_get(point, "kind")), "Measurement");
  assert_true(json_number_value(json_object_get(point, "value")) == 61500);
  assert_string_equal(prop(metric, "experiment"), "train-pipeline");
  assert_string_equal(prop(metric, "status"), "Completed");
  assert_string_equal(prop(metric, "compute_target"), "gpu-cluster");
  assert_null(prop(metric, "step_type"));
  point =
      json_array_get(json_object_get(base_data(find(envs, "Metric", 1)), "metrics"), 0);
  assert_string_equal(json_string_value(json_object_get(point, "name")),
                      "AmlRunQueueTimeMs");
  json_decref(envs);
  record_cleanup(&rec);
}

static void step_failed_is_dependency_of_the_pipeline_request(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  base_run(&rec, "AmlRunCompleted", RUN_KIND_STEP, "step-run-7", "failed");
  record_set_string(&rec, REC_PIPELINE_RUN_ID, PIPELINE_ID);
  record_set_string(&rec, REC_DISPLAY_NAME, "prep_data");
  record_set_string(&rec, REC_STEP_TYPE, "PythonScriptStep");
  record_set_string(&rec, REC_ERROR_CODE, "UserError");
  record_set_string(&rec, REC_SCRIPT, "prep.py");
  record_set_number(&rec, REC_EXECUTION_TIME_MS, 90061001); /* 1 day 1 h 1 min 1.001 s */
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  assert_int_equal(count(envs, "Request"), 0);
  assert_int_equal(count(envs, "RemoteDependency"), 1);
  char request_id[17], own_id[17];
  telemetry_request_id(PIPELINE_ID, request_id);
  telemetry_request_id("step-run-7", own_id);
  assert_string_not_equal(request_id, own_id);

  json_t *dep = find(envs, "RemoteDependency", 0);
  common_envelope_shape(dep, "RemoteDependencyData");
  assert_string_equal(tag(dep, "ai.operation.id"), PIPELINE_OP);
  assert_string_equal(tag(dep, "ai.operation.parentId"), request_id);
  assert_string_equal(str(dep, "id"), own_id);
  assert_string_equal(str(dep, "name"), "prep_data");
  assert_string_equal(str(dep, "type"), "AzureML Pipeline Step");
  assert_string_equal(str(dep, "target"), "gpu-cluster");
  assert_string_equal(str(dep, "data"), "prep.py");
  assert_string_equal(str(dep, "resultCode"), "failed");
  assert_string_equal(str(dep, "duration"), "1.01:01:01.0010000");
  assert_true(json_is_false(json_object_get(base_data(dep), "success")));
  assert_string_equal(prop(dep, "cicd.pipeline.name"), "train-pipeline");
  assert_string_equal(prop(dep, "cicd.pipeline.run.id"), PIPELINE_ID);
  assert_string_equal(prop(dep, "cicd.pipeline.task.name"), "prep_data");
  assert_string_equal(prop(dep, "cicd.pipeline.task.run.id"), "step-run-7");
  assert_string_equal(prop(dep, "cicd.pipeline.task.run.result"), "failure");
  assert_string_equal(prop(dep, "cicd.pipeline.task.type"), "PythonScriptStep");
  assert_string_equal(prop(dep, "error.type"), "UserError");
  /* The step's own event hangs off the same transaction. */
  assert_string_equal(tag(find(envs, "Event", 0), "ai.operation.id"), PIPELINE_OP);
  json_decref(envs);
  record_cleanup(&rec);
}

static void plain_run_canceled_and_hashed_operation_id(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  base_run(&rec, "AmlRunStatusChanged", RUN_KIND_PLAIN, "abc", "Canceled");
  record_clear(&rec, REC_START_TIME_UTC_MS); /* falls back to the event time */
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  json_t *req = find(envs, "Request", 0);
  assert_non_null(req);
  /* SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b003... */
  assert_string_equal(tag(req, "ai.operation.id"), "ba7816bf8f01cfea414140de5dae2223");
  assert_string_equal(prop(req, "cicd.pipeline.result"), "cancellation");
  assert_null(prop(req, "error.type"));
  assert_true(json_is_false(json_object_get(base_data(req), "success")));
  assert_string_equal(json_string_value(json_object_get(req, "time")),
                      "2024-01-02T03:10:00.000Z");
  json_decref(envs);
  record_cleanup(&rec);
}

static void running_run_has_no_request(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  base_run(&rec, "AmlRunStatusChanged", RUN_KIND_PIPELINE, PIPELINE_ID, "Running");
  record_clear(&rec, REC_EXECUTION_TIME_MS);
  record_clear(&rec, REC_EVENT_TIME);
  o.legacy_traces = true;
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  assert_int_equal(json_array_size(envs), 1); /* the event alone */
  json_t *event = find(envs, "Event", 0);
  char now[40];
  time_format_iso8601(NOW, now, sizeof now);
  assert_string_equal(json_string_value(json_object_get(event, "time")), now);
  json_decref(envs);
  record_cleanup(&rec);
}

static void
a_run_without_details_has_no_span_and_a_lone_step_keeps_its_metric(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  /* No run details: duration unknown, so no request with a made-up zero. */
  base_run(&rec, "AmlRunCompleted", RUN_KIND_PLAIN, PIPELINE_ID, "Completed");
  record_clear(&rec, REC_EXECUTION_TIME_MS);
  record_clear(&rec, REC_START_TIME_UTC_MS);
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  assert_int_equal(count(envs, "Event"), 1);
  assert_int_equal(count(envs, "Request"), 0);
  json_decref(envs);
  record_cleanup(&rec);

  /* A finished step whose pipeline is unknown: no dependency to hang anywhere,
   * but its duration is still a metric. */
  base_run(&rec, "AmlRunCompleted", RUN_KIND_STEP, "step-1", "Completed");
  envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  assert_int_equal(count(envs, "RemoteDependency"), 0);
  assert_int_equal(count(envs, "Metric"), 1);
  json_decref(envs);
  record_cleanup(&rec);
}

static void rejected_and_model_events(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  record_init(&rec);
  assert_int_equal(record_rejected(&rec, "unknown event type", NULL), 0);
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  assert_int_equal(json_array_size(envs), 1);
  json_t *event = find(envs, "Event", 0);
  assert_string_equal(str(event, "name"), "AmlEventRejected");
  assert_string_equal(prop(event, "reason"), "unknown event type");
  assert_null(tag(event, "ai.operation.id"));
  record_cleanup(&rec);

  record_init(&rec);
  snprintf(rec.name, sizeof rec.name, "AmlModelRegistered");
  record_set_string(&rec, REC_MODEL_NAME, "churn");
  record_set_string(&rec, REC_MODEL_VERSION, "3");
  json_array_clear(envs);
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  assert_int_equal(json_array_size(envs), 1);
  assert_string_equal(prop(find(envs, "Event", 0), "model_name"), "churn");
  json_decref(envs);
  record_cleanup(&rec);
}

static void limits(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  base_run(&rec, "AmlRunCompleted", RUN_KIND_PLAIN, "r1", "Completed");
  /* 8191 ASCII bytes then a 3-byte character straddling the 8192 cut. */
  char *long_text = malloc(9000);
  memset(long_text, 'x', 8191);
  strcpy(long_text + 8191, "\xe2\x82\xac tail");
  record_set_string(&rec, REC_ERROR_MESSAGE, long_text);
  char long_name[200];
  memset(long_name, 'm', 151);
  long_name[151] = '\0';
  record_add_metric(&rec, long_name, 1.0);
  memset(long_name, 'k', 150);
  long_name[150] = '\0';
  record_add_metric(&rec, long_name, 2.0);
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  json_t *event = find(envs, "Event", 0);
  const char *cut = prop(event, "error_message");
  assert_int_equal(strlen(cut), 8191); /* cut before the split character */
  json_t *m = json_object_get(base_data(event), "measurements");
  assert_int_equal(json_object_size(m), 2); /* execution_time_ms + the 150-char one */
  assert_non_null(json_object_get(m, long_name));
  free(long_text);
  json_decref(envs);
  record_cleanup(&rec);
}

static void legacy_traces(void **state) {
  struct telemetry_options o = options();
  o.legacy_traces = true;
  struct record rec;
  base_run(&rec, "AmlRunCompleted", RUN_KIND_PIPELINE, PIPELINE_ID, "Completed");
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  json_t *msg = find(envs, "Message", 0);
  assert_non_null(msg);
  common_envelope_shape(msg, "MessageData");
  assert_string_equal(str(msg, "message"), "aml_pipeline_run_metrics");
  assert_string_equal(str(msg, "severityLevel"), "Information");
  assert_string_equal(prop(msg, "experimentName"), "train-pipeline");
  assert_string_equal(prop(msg, "execution_time_ms"), "61500");
  json_decref(envs);
  record_cleanup(&rec);
}

static void parts_and_measured_run(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  base_run(&rec, "AmlRunStatusChanged", RUN_KIND_PIPELINE, PIPELINE_ID, "Failed");
  assert_string_equal(telemetry_measured_run(&rec), PIPELINE_ID);
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_EVENT, envs), 0);
  assert_int_equal(json_array_size(envs), 1);
  assert_non_null(find(envs, "Event", 0));
  json_array_clear(envs);
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_RUN, envs), 0);
  assert_int_equal(count(envs, "Event"), 0);
  assert_int_equal(count(envs, "Metric"), 1); /* no queue time in this record */
  assert_int_equal(count(envs, "Request"), 1);
  record_set_string(&rec, REC_STATUS, "Running");
  assert_null(telemetry_measured_run(&rec));
  json_array_clear(envs);
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_RUN, envs), 0);
  assert_int_equal(json_array_size(envs), 0); /* not terminal: nothing to measure */
  json_decref(envs);
  record_cleanup(&rec);
  record_init(&rec);
  record_rejected(&rec, "bad", NULL);
  assert_null(telemetry_measured_run(&rec));
  record_cleanup(&rec);
}

/* Numeric fields become property text with every digit (issue 11 item 3):
 * the shortest text that reads back to the same double. */
static void number_format(void **state) {
  struct {
    double value;
    const char *text;
  } cases[] = {{0.8350349068479208, "0.8350349068479208"},
               {4e-7, "4e-7"},
               {0, "0"},
               {-0.0, "0"},
               {61500, "61500"},
               {0.25, "0.25"},
               {-3.5, "-3.5"},
               {1e20, "1e20"},
               {1.0 / 3, "0.3333333333333333"},
               {1e-9, "1e-9"},
               {1704164400000.0, "1704164400000"}};
  struct telemetry_options o = options();
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct record rec;
    record_init(&rec);
    snprintf(rec.name, sizeof rec.name, "AmlDatasetDriftDetected");
    record_set_number(&rec, REC_DRIFT_COEFFICIENT, cases[i].value);
    json_t *envs = json_array();
    assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), RESULT_OK);
    assert_string_equal(prop(find(envs, "Event", 0), "drift_coefficient"), cases[i].text);
    json_decref(envs);
    record_cleanup(&rec);
  }
}

/* Ingestion refuses items timed more than 48 h ago (issue 11 item 1): every
 * item of a run that started three days ago is moved to the oldest accepted
 * time plus a margin and marked, the true times stay in the record keys, and
 * the durations stay true. */
static void items_older_than_48_hours_are_moved_and_marked(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  base_run(&rec, "AmlRunCompleted", RUN_KIND_PIPELINE, PIPELINE_ID, "Completed");
  record_set_number(&rec, REC_QUEUE_TIME_MS, 2000);
  /* Started 2024-01-02T03:00:00Z, event at 03:10; now is three days later. */
  int64_t now = 1704164400000LL + 3 * 86400000LL;
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, now, TELEMETRY_ALL, envs), RESULT_OK);
  assert_int_equal(count(envs, "Request"), 1);
  char oldest[40];
  time_format_iso8601(now - TELEMETRY_MAX_AGE_MS + TELEMETRY_AGE_MARGIN_MS, oldest,
                      sizeof oldest);
  size_t i;
  json_t *env;
  json_array_foreach(envs, i, env) {
    assert_string_equal(json_string_value(json_object_get(env, "time")), oldest);
    assert_string_equal(prop(env, "timestamp_adjusted"), "true");
  }
  json_t *req = find(envs, "Request", 0);
  assert_string_equal(str(req, "duration"), "00:01:01.5000000");
  assert_string_equal(prop(req, "start_time_utc_ms"), "1704164400000");
  json_t *event = find(envs, "Event", 0);
  assert_string_equal(prop(event, "event_time"), "2024-01-02T03:10:00Z");
  json_decref(envs);

  /* Within 48 hours nothing moves and nothing is marked. */
  envs = json_array();
  now = 1704164400000LL + 47 * 3600000LL;
  assert_int_equal(telemetry_envelopes(&o, &rec, now, TELEMETRY_ALL, envs), RESULT_OK);
  assert_string_equal(
      json_string_value(json_object_get(find(envs, "Request", 0), "time")),
      "2024-01-02T03:00:00.000Z");
  json_array_foreach(envs, i, env) assert_null(prop(env, "timestamp_adjusted"));
  json_decref(envs);
  record_cleanup(&rec);
}

/* Tags and properties reach App Insights as properties (issue 11 item 2),
 * under its limits: names over 150 characters are left out, values cut at
 * 8192 bytes. */
static void tags_and_properties_are_properties(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  base_run(&rec, "AmlRunCompleted", RUN_KIND_PIPELINE, PIPELINE_ID, "Completed");
  char long_name[200], long_value[9000];
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  memset(long_value, 'v', sizeof long_value - 1);
  long_value[sizeof long_value - 1] = '\0';
  json_t *tags =
      json_pack("{s:s, s:s, s:s}", "team", "vision", long_name, "x", "huge", long_value);
  json_t *props = json_pack("{s:s}", "runTemplate", "automl_child");
  assert_int_equal(record_add_tags(&rec, tags), RESULT_OK);
  assert_int_equal(record_add_properties(&rec, REC_PROPS_RUN, props), RESULT_OK);
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), RESULT_OK);
  json_t *event = find(envs, "Event", 0), *req = find(envs, "Request", 0);
  assert_string_equal(prop(event, "tag.team"), "vision");
  assert_string_equal(prop(req, "tag.team"), "vision");
  assert_string_equal(prop(event, "run_properties"),
                      "{\"runTemplate\":\"automl_child\"}");
  char tag_name[210];
  snprintf(tag_name, sizeof tag_name, "tag.%s", long_name);
  assert_null(prop(event, tag_name));
  assert_int_equal(strlen(prop(event, "tag.huge")), TELEMETRY_MAX_PROPERTY_VALUE);
  json_decref(envs);
  json_decref(tags);
  json_decref(props);
  record_cleanup(&rec);
}

static void ids(void **state) {
  char op[33], a[17], b[17];
  telemetry_operation_id("5d3f0a2b-1c4e-4f6a-8b9c-0d1e2f3a4b5c", op);
  assert_string_equal(op, PIPELINE_OP);
  telemetry_operation_id("", op);
  assert_int_equal(strlen(op), 32);
  telemetry_request_id("x", a);
  telemetry_request_id("x", b);
  assert_string_equal(a, b);
  telemetry_request_id("y", b);
  assert_string_not_equal(a, b);
  assert_int_equal(strspn(a, "0123456789abcdef"), 16);
}

static const char *table_getenv(void *ctx, const char *name) {
  const char *const *kv = ctx;
  for (; kv[0]; kv += 2)
    if (strcmp(kv[0], name) == 0)
      return kv[1];
  return NULL;
}

static void options_from_env(void **state) {
  const char *env[] = {"WEBSITE_SITE_NAME",
                       "site-a",
                       "WEBSITE_INSTANCE_ID",
                       "inst-9",
                       "HANDLER_LEGACY_TRACES",
                       "TRUE",
                       NULL};
  struct telemetry_options o;
  assert_int_equal(telemetry_options_init(&o, "k", table_getenv, env, NULL), 0);
  assert_string_equal(o.role, "site-a");
  assert_string_equal(o.role_instance, "inst-9");
  assert_string_equal(o.ikey, "k");
  assert_true(o.legacy_traces);
  const char *none[] = {NULL};
  assert_int_equal(telemetry_options_init(&o, "k", table_getenv, none, NULL), 0);
  assert_string_equal(o.role, "aml-event-handler");
  assert_true(o.role_instance[0] != '\0'); /* the host name */
  assert_false(o.legacy_traces);
  const char *bad[] = {"HANDLER_LEGACY_TRACES", "maybe", NULL};
  struct error_info err = {0};
  assert_int_equal(telemetry_options_init(&o, "k", table_getenv, bad, &err),
                   RESULT_INVALID);
  assert_string_equal(err.field, "HANDLER_LEGACY_TRACES");
}

/* The name of the nth metric point, or NULL. */
static const char *metric_name(json_t *envs, int nth) {
  json_t *env = find(envs, "Metric", nth);
  json_t *point =
      env ? json_array_get(json_object_get(base_data(env), "metrics"), 0) : NULL;
  return point ? json_string_value(json_object_get(point, "name")) : NULL;
}

static bool has_metric(json_t *envs, const char *name) {
  for (int i = 0; metric_name(envs, i); i++)
    if (strcmp(metric_name(envs, i), name) == 0)
      return true;
  return false;
}

static void cost_on_spans_and_metric(void **state) {
  struct telemetry_options o = options();
  struct record rec;
  base_run(&rec, "AmlRunCompleted", RUN_KIND_STEP, "step-run-7", "Completed");
  record_set_string(&rec, REC_PIPELINE_RUN_ID, PIPELINE_ID);
  record_set_string(&rec, REC_VM_SIZE, "STANDARD_D4S_V3");
  record_set_string(&rec, REC_VM_PRIORITY, "Dedicated");
  record_set_number(&rec, REC_NODE_COUNT, 2);
  record_set_number(&rec, REC_COST_PRICE_PER_HOUR_USD, 0.192);
  record_set_number(&rec, REC_COST_ESTIMATE_USD, 0.576);
  json_t *envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  json_t *dep = find(envs, "RemoteDependency", 0);
  assert_string_equal(prop(dep, "vm_size"), "STANDARD_D4S_V3");
  assert_string_equal(prop(dep, "cost_estimate_usd"), "0.576");
  assert_true(
      json_real_value(json_object_get(json_object_get(base_data(dep), "measurements"),
                                      "cost_estimate_usd")) == 0.576);
  assert_true(has_metric(envs, "AmlRunCostUsd"));
  json_t *event = find(envs, "Event", 0);
  assert_string_equal(prop(event, "cost_price_per_hour_usd"), "0.192");
  json_decref(envs);
  record_cleanup(&rec);

  /* A pipeline's request carries the sum; its metric point would count the
   * steps twice, so there is none. */
  base_run(&rec, "AmlRunCompleted", RUN_KIND_PIPELINE, PIPELINE_ID, "Failed");
  record_set_number(&rec, REC_COST_ESTIMATE_USD, 1.25);
  envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  assert_string_equal(prop(find(envs, "Request", 0), "cost_estimate_usd"), "1.25");
  assert_false(has_metric(envs, "AmlRunCostUsd"));
  assert_true(has_metric(envs, "AmlRunDurationMs"));
  json_decref(envs);
  record_cleanup(&rec);

  /* Unknown cost: the reason, no metric. */
  base_run(&rec, "AmlRunCompleted", RUN_KIND_PLAIN, "run-9", "Completed");
  record_set_string(&rec, REC_COST_UNKNOWN_REASON, "a local run uses no Azure compute");
  envs = json_array();
  assert_int_equal(telemetry_envelopes(&o, &rec, NOW, TELEMETRY_ALL, envs), 0);
  assert_string_equal(prop(find(envs, "Request", 0), "cost_unknown_reason"),
                      "a local run uses no Azure compute");
  assert_false(has_metric(envs, "AmlRunCostUsd"));
  json_decref(envs);
  record_cleanup(&rec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pipeline_run_completed),
      cmocka_unit_test(cost_on_spans_and_metric),
      cmocka_unit_test(step_failed_is_dependency_of_the_pipeline_request),
      cmocka_unit_test(plain_run_canceled_and_hashed_operation_id),
      cmocka_unit_test(running_run_has_no_request),
      cmocka_unit_test(
          a_run_without_details_has_no_span_and_a_lone_step_keeps_its_metric),
      cmocka_unit_test(rejected_and_model_events),
      cmocka_unit_test(limits),
      cmocka_unit_test(legacy_traces),
      cmocka_unit_test(parts_and_measured_run),
      cmocka_unit_test(number_format),
      cmocka_unit_test(items_older_than_48_hours_are_moved_and_marked),
      cmocka_unit_test(tags_and_properties_are_properties),
      cmocka_unit_test(ids),
      cmocka_unit_test(options_from_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
