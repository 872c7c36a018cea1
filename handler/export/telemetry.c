/* Records -> App Insights envelopes; see telemetry.h for what becomes what.
 *
 * Everything here is a pure function of the record and the options (plus
 * `now_ms` for records without any time), so the envelope shapes are pinned by
 * unit tests. Correlation: every envelope of a run carries the operation id of
 * its pipeline run (or of the run itself outside a pipeline); the request's id
 * is derived from that run id, so a step's dependency names its parent even when
 * it reaches ingestion before the pipeline run ends. */
#include "export/telemetry.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "export/connection_string.h"
#include "base/crypto.h"
#include "base/timeutil.h"

#define ENVELOPE_PREFIX "Microsoft.ApplicationInsights."
#define SDK_VERSION "c-aml:" HANDLER_VERSION
#define DEPENDENCY_TYPE "AzureML Pipeline Step"
#define LEGACY_MESSAGE "aml_pipeline_run_metrics"

/* Where a run record sits in its end-to-end transaction. */
struct correlation {
  bool set;
  char operation_id[33];
  char request_id[17]; /* the request of the pipeline run (or plain run) */
  const char *pipeline_run_id;
  const char *operation_name;
};

int telemetry_options_init(struct telemetry_options *out, const char *ikey,
                           settings_getenv_fn getenv_fn, void *ctx,
                           struct error_info *err) {
  memset(out, 0, sizeof *out);
  snprintf(out->ikey, sizeof out->ikey, "%s", ikey ? ikey : "");
  const char *site = settings_get(getenv_fn, ctx, "WEBSITE_SITE_NAME");
  snprintf(out->role, sizeof out->role, "%s", site && *site ? site : "aml-event-handler");
  const char *instance = settings_get(getenv_fn, ctx, "WEBSITE_INSTANCE_ID");
  if (instance && *instance) {
    snprintf(out->role_instance, sizeof out->role_instance, "%s", instance);
  } else if (gethostname(out->role_instance, sizeof out->role_instance - 1) != 0) {
    snprintf(out->role_instance, sizeof out->role_instance, "unknown");
  }
  return settings_get_switch(getenv_fn, ctx, TELEMETRY_LEGACY_TRACES_SETTING, false,
                             &out->legacy_traces, err);
}

void telemetry_operation_id(const char *run_id, char out[33]) {
  const char *id = run_id ? run_id : "";
  if (connection_string_is_guid(id)) {
    size_t j = 0;
    for (size_t i = 0; id[i]; i++)
      if (id[i] != '-')
        out[j++] = (char)((id[i] >= 'A' && id[i] <= 'F') ? id[i] - 'A' + 'a' : id[i]);
    out[j] = '\0';
    return;
  }
  uint8_t digest[32];
  crypto_sha256(id, strlen(id), digest);
  crypto_hex(digest, 16, out);
}

void telemetry_request_id(const char *run_id, char out[17]) {
  char text[1100];
  snprintf(text, sizeof text, "aml-run:%s", run_id ? run_id : "");
  uint8_t digest[32];
  crypto_sha256(text, strlen(text), digest);
  crypto_hex(digest, 8, out);
}

/* Sets props[name] = value under the ingestion limits: names longer than 150
 * characters are dropped (as ingestion does), values cut at a UTF-8 boundary. */
static int set_property(json_t *props, const char *name, const char *value) {
  size_t name_len = strlen(name);
  if (name_len == 0 || name_len > TELEMETRY_MAX_PROPERTY_NAME || !value)
    return RESULT_OK;
  size_t len = strlen(value);
  if (len > TELEMETRY_MAX_PROPERTY_VALUE) {
    len = TELEMETRY_MAX_PROPERTY_VALUE;
    while (len > 0 && ((unsigned char)value[len] & 0xC0) == 0x80)
      len--;
  }
  json_t *s = json_stringn(value, len);
  if (!s)
    s = json_string("(not valid UTF-8)");
  return json_object_set_new(props, name, s) == 0 ? RESULT_OK : RESULT_NOMEM;
}

static int set_measurement(json_t *measurements, const char *name, double value) {
  size_t name_len = strlen(name);
  if (name_len == 0 || name_len > TELEMETRY_MAX_PROPERTY_NAME || !isfinite(value))
    return RESULT_OK;
  return json_object_set_new(measurements, name, json_real(value)) == 0 ? RESULT_OK
                                                                        : RESULT_NOMEM;
}

/* Every set field of the record as a string property, then its tags
 * ("tag.<name>") and properties objects ("run_properties", ...). */
static json_t *record_properties(const struct record *rec) {
  json_t *props = json_object();
  if (!props)
    return NULL;
  for (int f = 0; f < REC_FIELD_COUNT; f++) {
    const struct record_value *v = &rec->values[f];
    if (!v->set)
      continue;
    char num[JSONX_NUMBER_MAX];
    const char *text = v->text;
    if (record_field_kind((enum record_field)f) == REC_KIND_NUMBER) {
      jsonx_format_double(v->number, num, sizeof num);
      text = num;
    }
    if (set_property(props, record_field_name((enum record_field)f), text) != RESULT_OK)
      goto fail;
  }
  /* Tags and properties objects, under the same ingestion limits. */
  json_t *extra = json_object();
  const char *key;
  json_t *value;
  if (!extra || record_tags_and_properties(rec, extra) != RESULT_OK) {
    json_decref(extra);
    goto fail;
  }
  json_object_foreach(extra, key, value) {
    if (set_property(props, key, json_string_value(value)) != RESULT_OK) {
      json_decref(extra);
      goto fail;
    }
  }
  json_decref(extra);
  return props;
fail:
  json_decref(props);
  return NULL;
}

/* Durations and the run's logged metrics. */
static json_t *record_measurements(const struct record *rec) {
  static const enum record_field numeric[] = {
      REC_EXECUTION_TIME_MS, REC_QUEUE_TIME_MS,          REC_DRIFT_COEFFICIENT,
      REC_STUCK_FOR_MS,      REC_THRESHOLD_MS,           REC_NODE_COUNT,
      REC_COST_ESTIMATE_USD, REC_COST_PRICE_PER_HOUR_USD};
  json_t *m = json_object();
  if (!m)
    return NULL;
  for (size_t i = 0; i < sizeof numeric / sizeof *numeric; i++) {
    double value;
    if (record_number(rec, numeric[i], &value) &&
        set_measurement(m, record_field_name(numeric[i]), value) != RESULT_OK)
      goto fail;
  }
  for (size_t i = 0; i < rec->metric_count; i++)
    if (set_measurement(m, rec->metrics[i].name, rec->metrics[i].value) != RESULT_OK)
      goto fail;
  return m;
fail:
  json_decref(m);
  return NULL;
}

/* The time the record's items happened: the event time, else now. */
static int64_t event_time_ms(const struct record *rec, int64_t now_ms) {
  int64_t ms;
  const char *t = record_string(rec, REC_EVENT_TIME);
  return t && time_parse_iso8601_ms(t, &ms) ? ms : now_ms;
}

/* The run's start (requests and dependencies are placed on the timeline). */
static int64_t run_start_ms(const struct record *rec, int64_t now_ms) {
  double start;
  if (record_number(rec, REC_START_TIME_UTC_MS, &start) && start > 0)
    return (int64_t)start;
  return event_time_ms(rec, now_ms);
}

/* The run's duration: its execution time, else end - start. False when
 * neither is known (or they make no sense): no span gets a made-up duration. */
static bool run_duration_ms(const struct record *rec, int64_t *out_ms) {
  double exec, start, end;
  if (record_number(rec, REC_EXECUTION_TIME_MS, &exec) && exec >= 0) {
    *out_ms = (int64_t)llround(exec);
    return true;
  }
  if (record_number(rec, REC_START_TIME_UTC_MS, &start) &&
      record_number(rec, REC_END_TIME_UTC_MS, &end) && end >= start) {
    *out_ms = (int64_t)llround(end - start);
    return true;
  }
  return false;
}

/* Ingestion refuses items timed before now - 48 h: such an item is moved to
 * the oldest accepted time plus a margin and says so in its properties (the
 * true times stay in start_time_utc_ms, end_time_utc_ms and event_time). */
static int64_t accepted_time(int64_t time_ms, int64_t now_ms, json_t *base_data) {
  int64_t oldest = now_ms - TELEMETRY_MAX_AGE_MS + TELEMETRY_AGE_MARGIN_MS;
  if (time_ms >= oldest)
    return time_ms;
  json_t *props = json_object_get(base_data, "properties");
  if (!props) {
    props = json_object();
    json_object_set_new(base_data, "properties", props);
  }
  json_object_set_new(props, TELEMETRY_TIMESTAMP_ADJUSTED, json_string("true"));
  return oldest;
}

/* A new envelope `{name, time, iKey, tags, data: {baseType, baseData}}`; steals
 * `base_data`. `parent_id` may be NULL. */
static json_t *envelope(const struct telemetry_options *o, const char *base_type,
                        int64_t time_ms, int64_t now_ms, json_t *base_data,
                        const struct correlation *c, const char *parent_id) {
  char name[96], time_text[40];
  json_t *env = NULL, *tags = NULL;
  if (!base_data)
    goto fail;
  time_ms = accepted_time(time_ms, now_ms, base_data);
  snprintf(name, sizeof name, ENVELOPE_PREFIX "%.*s", (int)(strlen(base_type) - 4),
           base_type); /* "EventData" -> "...Event" */
  if (strcmp(base_type, "MetricData") == 0)
    snprintf(name, sizeof name, ENVELOPE_PREFIX "Metric");
  time_format_iso8601(time_ms, time_text, sizeof time_text);
  tags = json_object();
  if (!tags)
    goto fail;
  if (jsonx_set_string(tags, "ai.cloud.role", o->role) ||
      jsonx_set_string(tags, "ai.cloud.roleInstance", o->role_instance) ||
      jsonx_set_string(tags, "ai.internal.sdkVersion", SDK_VERSION))
    goto fail;
  if (c && c->set) {
    if (jsonx_set_string(tags, "ai.operation.id", c->operation_id) ||
        jsonx_set_string(tags, "ai.operation.parentId", parent_id) ||
        jsonx_set_string(tags, "ai.operation.name", c->operation_name))
      goto fail;
  }
  json_object_set_new(base_data, "ver", json_integer(2));
  env = json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:o}}", "name", name, "time", time_text,
                  "iKey", o->ikey, "tags", tags, "data", "baseType", base_type,
                  "baseData", base_data);
  return env; /* json_pack's "o" steals tags and base_data, even on failure */
fail:
  json_decref(tags);
  json_decref(base_data);
  return NULL;
}

static int append(json_t *out, json_t *env) {
  return env && json_array_append_new(out, env) == 0 ? RESULT_OK : RESULT_NOMEM;
}

static void correlation_of(const struct record *rec, struct correlation *c) {
  memset(c, 0, sizeof *c);
  const char *run_id = record_string(rec, REC_RUN_ID);
  const char *pipeline = NULL;
  if (rec->rejected)
    return;
  if (rec->run_kind == RUN_KIND_STEP) {
    pipeline = record_string(rec, REC_PIPELINE_RUN_ID);
    if (!pipeline)
      pipeline = record_string(rec, REC_PARENT_RUN_ID);
  } else if (rec->run_kind == RUN_KIND_PIPELINE || rec->run_kind == RUN_KIND_PLAIN) {
    pipeline = run_id;
  }
  if (!pipeline)
    return;
  c->set = true;
  c->pipeline_run_id = pipeline;
  telemetry_operation_id(pipeline, c->operation_id);
  telemetry_request_id(pipeline, c->request_id);
  c->operation_name = record_string(rec, REC_EXPERIMENT_NAME);
}

static int add_event(const struct telemetry_options *o, const struct record *rec,
                     int64_t now_ms, const struct correlation *c, json_t *out) {
  json_t *props = record_properties(rec), *m = record_measurements(rec);
  if (!props || !m)
    goto fail;
  json_t *base = json_pack("{s:s%, s:o, s:o}", "name", rec->name,
                           strnlen(rec->name, sizeof rec->name), "properties", props,
                           "measurements", m);
  return append(out, envelope(o, "EventData", event_time_ms(rec, now_ms), now_ms, base, c,
                              c->set ? c->request_id : NULL));
fail:
  json_decref(props);
  json_decref(m);
  return RESULT_NOMEM;
}

static int add_metric(const struct telemetry_options *o, const struct record *rec,
                      int64_t now_ms, const struct correlation *c, const char *metric,
                      enum record_field field, json_t *out) {
  static const struct {
    const char *dimension;
    enum record_field field;
  } dims[] = {{"experiment", REC_EXPERIMENT_NAME},
              {"run_type", REC_RUN_TYPE},
              {"step_type", REC_STEP_TYPE},
              {"status", REC_STATUS},
              {"compute_target", REC_TARGET}};
  double value;
  if (!record_number(rec, field, &value))
    return RESULT_OK;
  json_t *props = json_object();
  if (!props)
    return RESULT_NOMEM;
  for (size_t i = 0; i < sizeof dims / sizeof *dims; i++)
    if (set_property(props, dims[i].dimension, record_string(rec, dims[i].field)))
      goto fail;
  json_t *base =
      json_pack("{s:[{s:s, s:s, s:s, s:f}], s:o}", "metrics", "ns", "azureml", "name",
                metric, "kind", "Measurement", "value", value, "properties", props);
  return append(out, envelope(o, "MetricData", event_time_ms(rec, now_ms), now_ms, base,
                              c, c->set ? c->request_id : NULL));
fail:
  json_decref(props);
  return RESULT_NOMEM;
}

static const char *cicd_result(const char *status) {
  if (strcasecmp(status, "Completed") == 0)
    return "success";
  if (strcasecmp(status, "Canceled") == 0)
    return "cancellation";
  return "failure";
}

/* The step's kind: AML's step type ("PythonScriptStep", "command"), else its run
 * type, else "step" (the semconv attribute has no fitting well-known value). */
static const char *task_type(const struct record *rec) {
  const char *type = record_string(rec, REC_STEP_TYPE);
  if (!type)
    type = record_string(rec, REC_RUN_TYPE);
  return type ? type : "step";
}

/* The request of a pipeline run (or plain run), or the dependency of a step. */
static int add_span(const struct telemetry_options *o, const struct record *rec,
                    int64_t duration_ms, int64_t now_ms, const struct correlation *c,
                    json_t *out) {
  const char *status = record_string(rec, REC_STATUS);
  const char *run_id = record_string(rec, REC_RUN_ID);
  bool step = rec->run_kind == RUN_KIND_STEP;
  bool failed = strcasecmp(status, "Failed") == 0;
  char duration[40], own_id[17];
  time_format_duration(duration_ms, duration, sizeof duration);
  json_t *props = record_properties(rec), *m = record_measurements(rec), *base = NULL;
  if (!props || !m)
    goto fail;

  const char *pipeline_name = record_string(rec, REC_EXPERIMENT_NAME);
  const char *error_code = record_string(rec, REC_ERROR_CODE);
  int bad = set_property(props, "cicd.pipeline.name", pipeline_name) |
            set_property(props, "cicd.pipeline.run.id", c->pipeline_run_id);
  if (failed)
    bad |= set_property(props, "error.type", error_code ? error_code : "_OTHER");

  if (!step) {
    bad |= set_property(props, "cicd.pipeline.result", cicd_result(status));
    const char *name = pipeline_name ? pipeline_name : run_id;
    if (bad)
      goto fail;
    base = json_pack("{s:s, s:s, s:s, s:s, s:b, s:o, s:o}", "id", c->request_id, "name",
                     name ? name : "", "duration", duration, "responseCode", status,
                     "success", !strcasecmp(status, "Completed"), "properties", props,
                     "measurements", m);
    return append(out, envelope(o, "RequestData", run_start_ms(rec, now_ms), now_ms, base,
                                c, NULL));
  }

  const char *task = record_string(rec, REC_DISPLAY_NAME);
  if (!task)
    task = record_string(rec, REC_NODE_ID);
  if (!task)
    task = run_id;
  bad |= set_property(props, "cicd.pipeline.task.name", task) |
         set_property(props, "cicd.pipeline.task.run.id", run_id) |
         set_property(props, "cicd.pipeline.task.run.result", cicd_result(status)) |
         set_property(props, "cicd.pipeline.task.type", task_type(rec));
  if (bad)
    goto fail;
  telemetry_request_id(run_id, own_id);
  base = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o, s:o}", "id", own_id, "name",
                   task ? task : "", "duration", duration, "resultCode", status, "type",
                   DEPENDENCY_TYPE, "success", !strcasecmp(status, "Completed"),
                   "properties", props, "measurements", m);
  if (base) {
    if (jsonx_set_string(base, "target", record_string(rec, REC_TARGET)) ||
        jsonx_set_string(base, "data", record_string(rec, REC_SCRIPT))) {
      json_decref(base);
      return RESULT_NOMEM;
    }
  }
  return append(out, envelope(o, "RemoteDependencyData", run_start_ms(rec, now_ms),
                              now_ms, base, c, c->request_id));
fail:
  json_decref(props);
  json_decref(m);
  return RESULT_NOMEM;
}

/* A watch metric: one point named after the record, the string fields as
 * dimensions. */
static int add_watch_metric(const struct telemetry_options *o, const struct record *rec,
                            int64_t now_ms, json_t *out) {
  double value;
  if (!record_number(rec, REC_METRIC_VALUE, &value))
    return RESULT_OK;
  json_t *props = json_object();
  if (!props)
    return RESULT_NOMEM;
  for (int f = 0; f < REC_FIELD_COUNT; f++)
    if (record_field_kind((enum record_field)f) == REC_KIND_STRING &&
        set_property(props, record_field_name((enum record_field)f),
                     record_string(rec, (enum record_field)f)) != RESULT_OK) {
      json_decref(props);
      return RESULT_NOMEM;
    }
  json_t *base = json_pack("{s:[{s:s, s:s%, s:s, s:f}], s:o}", "metrics", "ns", "azureml",
                           "name", rec->name, strnlen(rec->name, sizeof rec->name),
                           "kind", "Measurement", "value", value, "properties", props);
  return append(out, envelope(o, "MetricData", event_time_ms(rec, now_ms), now_ms, base,
                              NULL, NULL));
}

static int add_legacy_trace(const struct telemetry_options *o, const struct record *rec,
                            int64_t now_ms, const struct correlation *c, json_t *out) {
  json_t *props = record_properties(rec);
  if (!props)
    return RESULT_NOMEM;
  json_t *base = json_pack("{s:s, s:s, s:o}", "message", LEGACY_MESSAGE, "severityLevel",
                           "Information", "properties", props);
  return append(out, envelope(o, "MessageData", event_time_ms(rec, now_ms), now_ms, base,
                              c, c->set ? c->request_id : NULL));
}

const char *telemetry_measured_run(const struct record *rec) {
  const char *status = record_string(rec, REC_STATUS);
  if (rec->rejected || rec->shape != RECORD_SHAPE_EVENT ||
      rec->run_kind == RUN_KIND_NONE || !status || !run_status_is_terminal(status))
    return NULL;
  return record_string(rec, REC_RUN_ID);
}

int telemetry_envelopes(const struct telemetry_options *options, const struct record *rec,
                        int64_t now_ms, unsigned parts, json_t *out) {
  if (rec->shape == RECORD_SHAPE_METRIC)
    return add_watch_metric(options, rec, now_ms, out);
  struct correlation c;
  correlation_of(rec, &c);
  int r = RESULT_OK;
  if ((parts & TELEMETRY_EVENT) && (r = add_event(options, rec, now_ms, &c, out)))
    return r;
  if (!(parts & TELEMETRY_RUN) || !telemetry_measured_run(rec))
    return RESULT_OK;
  /* Metrics need no correlation; a request or dependency needs its pipeline and
   * a real duration (without run details a run's timing is unknown, and a zero
   * would skew every percentile). */
  if ((r = add_metric(options, rec, now_ms, &c, "AmlRunDurationMs", REC_EXECUTION_TIME_MS,
                      out)) != RESULT_OK ||
      (r = add_metric(options, rec, now_ms, &c, "AmlRunQueueTimeMs", REC_QUEUE_TIME_MS,
                      out)) != RESULT_OK)
    return r;
  /* A pipeline's cost is the sum of its steps', which have their own points:
   * summing the metric must not count them twice. */
  if (rec->run_kind != RUN_KIND_PIPELINE &&
      (r = add_metric(options, rec, now_ms, &c, "AmlRunCostUsd", REC_COST_ESTIMATE_USD,
                      out)) != RESULT_OK)
    return r;
  int64_t duration_ms;
  if (c.set && run_duration_ms(rec, &duration_ms) &&
      (r = add_span(options, rec, duration_ms, now_ms, &c, out)))
    return r;
  if (options->legacy_traces)
    r = add_legacy_trace(options, rec, now_ms, &c, out);
  return r;
}
