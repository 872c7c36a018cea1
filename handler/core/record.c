/* The run record: a fixed table of named fields; see record.h.
 *
 * The field table below is the single place that names the keys users query
 * (docs/records.md), so outputs (console line, App Insights properties) and tests
 * all iterate it instead of spelling names again. */
#include "core/record.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  enum record_kind kind;
} fields[REC_FIELD_COUNT] = {
    [REC_COMPUTE_TARGET_TYPE] = {"compute_target_type", REC_KIND_STRING},
    [REC_EXECUTION_TIME_MS] = {"execution_time_ms", REC_KIND_NUMBER},
    [REC_START_TIME_UTC_MS] = {"start_time_utc_ms", REC_KIND_NUMBER},
    [REC_END_TIME_UTC_MS] = {"end_time_utc_ms", REC_KIND_NUMBER},
    [REC_EXPERIMENT_NAME] = {"experimentName", REC_KIND_STRING},
    [REC_PIPELINE_RUN_ID] = {"pipelinerunid", REC_KIND_STRING},
    [REC_DOCKER_IMAGE] = {"docker_image", REC_KIND_STRING},
    [REC_EXPERIMENT_ID] = {"experimentId", REC_KIND_STRING},
    [REC_RESOURCE_GROUP] = {"resourceGroup", REC_KIND_STRING},
    [REC_SUBSCRIPTIONS] = {"subscriptions", REC_KIND_STRING},
    [REC_WORKSPACE] = {"amlWorkSpace", REC_KIND_STRING},
    [REC_SNAPSHOT_ID] = {"snapshot_id", REC_KIND_STRING},
    [REC_STEP_TYPE] = {"step_type", REC_KIND_STRING},
    [REC_RUN_TYPE] = {"run_type", REC_KIND_STRING},
    [REC_NODE_ID] = {"node_id", REC_KIND_STRING},
    [REC_RUN_ID] = {"run_id", REC_KIND_STRING},
    [REC_TARGET] = {"target", REC_KIND_STRING},
    [REC_SCRIPT] = {"script", REC_KIND_STRING},
    [REC_STATUS] = {"status", REC_KIND_STRING},
    [REC_EVENT_ID] = {"event_id", REC_KIND_STRING},
    [REC_EVENT_TIME] = {"event_time", REC_KIND_STRING},
    [REC_PARENT_RUN_ID] = {"parent_run_id", REC_KIND_STRING},
    [REC_QUEUE_TIME_MS] = {"queue_time_ms", REC_KIND_NUMBER},
    [REC_ERROR_CODE] = {"error_code", REC_KIND_STRING},
    [REC_ERROR_MESSAGE] = {"error_message", REC_KIND_STRING},
    [REC_ENRICHMENT] = {"enrichment", REC_KIND_STRING},
    [REC_DISPLAY_NAME] = {"display_name", REC_KIND_STRING},
    [REC_VM_SIZE] = {"vm_size", REC_KIND_STRING},
    [REC_VM_PRIORITY] = {"vm_priority", REC_KIND_STRING},
    [REC_NODE_COUNT] = {"node_count", REC_KIND_NUMBER},
    [REC_COST_PRICE_PER_HOUR_USD] = {"cost_price_per_hour_usd", REC_KIND_NUMBER},
    [REC_COST_ESTIMATE_USD] = {"cost_estimate_usd", REC_KIND_NUMBER},
    [REC_COST_UNKNOWN_REASON] = {"cost_unknown_reason", REC_KIND_STRING},
    [REC_MODEL_NAME] = {"model_name", REC_KIND_STRING},
    [REC_MODEL_VERSION] = {"model_version", REC_KIND_STRING},
    [REC_SERVICE_NAME] = {"service_name", REC_KIND_STRING},
    [REC_SERVICE_COMPUTE_TYPE] = {"service_compute_type", REC_KIND_STRING},
    [REC_MODEL_IDS] = {"model_ids", REC_KIND_STRING},
    [REC_DATA_DRIFT_ID] = {"data_drift_id", REC_KIND_STRING},
    [REC_DATA_DRIFT_NAME] = {"data_drift_name", REC_KIND_STRING},
    [REC_BASE_DATASET_ID] = {"base_dataset_id", REC_KIND_STRING},
    [REC_TARGET_DATASET_ID] = {"target_dataset_id", REC_KIND_STRING},
    [REC_DRIFT_COEFFICIENT] = {"drift_coefficient", REC_KIND_NUMBER},
    [REC_DRIFT_START_TIME] = {"drift_start_time", REC_KIND_STRING},
    [REC_DRIFT_END_TIME] = {"drift_end_time", REC_KIND_STRING},
    [REC_REASON] = {"reason", REC_KIND_STRING},
    [REC_EVENT_TYPE] = {"event_type", REC_KIND_STRING},
    [REC_RAW_EVENT] = {"raw_event", REC_KIND_STRING},
};

const char *record_field_name(enum record_field field) {
  return fields[field].name;
}

enum record_kind record_field_kind(enum record_field field) {
  return fields[field].kind;
}

void record_init(struct record *rec) {
  memset(rec, 0, sizeof *rec);
  rec->run_kind = RUN_KIND_NONE;
}

void record_clear(struct record *rec, enum record_field field) {
  free(rec->values[field].text);
  rec->values[field] = (struct record_value){0};
}

void record_cleanup(struct record *rec) {
  for (int i = 0; i < REC_FIELD_COUNT; i++)
    free(rec->values[i].text);
  for (size_t i = 0; i < rec->metric_count; i++)
    free(rec->metrics[i].name);
  record_init(rec);
}

int record_set_string(struct record *rec, enum record_field field, const char *text) {
  if (!text) {
    record_clear(rec, field);
    return RESULT_OK;
  }
  char *copy = strdup(text);
  if (!copy)
    return RESULT_NOMEM;
  free(rec->values[field].text);
  rec->values[field] = (struct record_value){.set = true, .text = copy};
  return RESULT_OK;
}

void record_set_number(struct record *rec, enum record_field field, double number) {
  free(rec->values[field].text);
  /* JSON has no NaN or infinity: such a value is as good as unknown. */
  rec->values[field] = (struct record_value){.set = isfinite(number), .number = number};
}

const char *record_string(const struct record *rec, enum record_field field) {
  return rec->values[field].set ? rec->values[field].text : NULL;
}

bool record_number(const struct record *rec, enum record_field field, double *out) {
  if (!rec->values[field].set || fields[field].kind != REC_KIND_NUMBER)
    return false;
  *out = rec->values[field].number;
  return true;
}

int record_add_metric(struct record *rec, const char *name, double value) {
  if (!name || !isfinite(value))
    return RESULT_INVALID;
  for (size_t i = 0; i < rec->metric_count; i++) {
    if (strcmp(rec->metrics[i].name, name) == 0) {
      rec->metrics[i].value = value;
      return RESULT_OK;
    }
  }
  if (rec->metric_count == RECORD_MAX_METRICS)
    return RESULT_TOOBIG;
  char *copy = strdup(name);
  if (!copy)
    return RESULT_NOMEM;
  rec->metrics[rec->metric_count++] =
      (struct record_metric){.name = copy, .value = value};
  return RESULT_OK;
}

struct field_text {
  enum record_field field;
  const char *text;
};

/* Sets each listed field whose text is known; stops at an allocation failure. */
static int set_strings(struct record *rec, const struct field_text *pairs, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (pairs[i].text &&
        record_set_string(rec, pairs[i].field, pairs[i].text) != RESULT_OK)
      return RESULT_NOMEM;
  return RESULT_OK;
}

#define SET_STRINGS(rec, ...)                                                            \
  set_strings(rec, (const struct field_text[]){__VA_ARGS__},                             \
              sizeof((const struct field_text[]){__VA_ARGS__}) /                         \
                  sizeof(struct field_text))

int record_from_event(struct record *rec, const struct aml_event *ev) {
  rec->type = ev->type;
  rec->run_kind = ev->run_kind;
  snprintf(rec->name, sizeof rec->name, "Aml%s", aml_event_type_name(ev->type));

  /* A step's parent run is its pipeline run; other runs' parents are only known
   * from run details. */
  const char *parent = ev->run_kind == RUN_KIND_STEP ? ev->pipeline_run_id : NULL;

  int result = SET_STRINGS(
      rec, {REC_EVENT_ID, ev->id}, {REC_EVENT_TIME, ev->time},
      {REC_SUBSCRIPTIONS, ev->subscription_id}, {REC_RESOURCE_GROUP, ev->resource_group},
      {REC_WORKSPACE, ev->workspace}, {REC_EXPERIMENT_ID, ev->experiment_id},
      {REC_EXPERIMENT_NAME, ev->experiment_name}, {REC_RUN_ID, ev->run_id},
      {REC_RUN_TYPE, ev->run_type}, {REC_STATUS, ev->run_status},
      {REC_PIPELINE_RUN_ID, ev->pipeline_run_id}, {REC_PARENT_RUN_ID, parent},
      {REC_NODE_ID, ev->node_id}, {REC_STEP_TYPE, ev->step_type},
      {REC_COMPUTE_TARGET_TYPE, ev->compute_target_type},
      {REC_SNAPSHOT_ID, ev->snapshot_id}, {REC_TARGET, ev->target},
      {REC_MODEL_NAME, ev->model_name}, {REC_MODEL_VERSION, ev->model_version},
      {REC_SERVICE_NAME, ev->service_name},
      {REC_SERVICE_COMPUTE_TYPE, ev->service_compute_type},
      {REC_MODEL_IDS, ev->model_ids}, {REC_DATA_DRIFT_ID, ev->data_drift_id},
      {REC_DATA_DRIFT_NAME, ev->data_drift_name},
      {REC_BASE_DATASET_ID, ev->base_dataset_id},
      {REC_TARGET_DATASET_ID, ev->target_dataset_id},
      {REC_DRIFT_START_TIME, ev->drift_start_time},
      {REC_DRIFT_END_TIME, ev->drift_end_time});
  if (result != RESULT_OK)
    return result;
  if (ev->has_drift_coefficient)
    record_set_number(rec, REC_DRIFT_COEFFICIENT, ev->drift_coefficient);
  return RESULT_OK;
}

int record_rejected(struct record *rec, const char *reason, const json_t *raw) {
  rec->rejected = true;
  rec->run_kind = RUN_KIND_NONE;
  snprintf(rec->name, sizeof rec->name, "AmlEventRejected");
  if (record_set_string(rec, REC_REASON, reason) != RESULT_OK)
    return RESULT_NOMEM;
  if (!raw)
    return RESULT_OK;

  /* Whatever identifies the event, when it can be read, helps find it again. */
  const char *id = jsonx_string_ci(raw, "id");
  const char *type = jsonx_string_ci(raw, "eventType");
  if (!type)
    type = jsonx_string_ci(raw, "type");
  const char *time = jsonx_string_ci(raw, "eventTime");
  if (!time)
    time = jsonx_string_ci(raw, "time");
  char *text = jsonx_dump(raw);
  if (!text)
    return RESULT_NOMEM;
  size_t len = strlen(text);
  if (len > RECORD_RAW_EVENT_MAX) {
    /* Cut on a UTF-8 character boundary and mark the cut. */
    size_t cut = RECORD_RAW_EVENT_MAX - 3;
    while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
      cut--;
    memcpy(text + cut, "...", 4);
  }
  int result = SET_STRINGS(rec, {REC_EVENT_ID, id}, {REC_EVENT_TYPE, type},
                           {REC_EVENT_TIME, time}, {REC_RAW_EVENT, text});
  free(text);
  return result;
}

json_t *record_to_json(const struct record *rec) {
  json_t *fields_json = json_object();
  json_t *out = json_object();
  if (!fields_json || !out)
    goto fail;
  for (int i = 0; i < REC_FIELD_COUNT; i++) {
    const struct record_value *v = &rec->values[i];
    if (!v->set)
      continue;
    json_t *value;
    if (fields[i].kind == REC_KIND_STRING)
      value = json_string(v->text);
    else if (v->number == (double)(json_int_t)v->number)
      value = json_integer((json_int_t)v->number);
    else
      value = json_real(v->number);
    if (json_object_set_new(fields_json, fields[i].name, value) != 0)
      goto fail;
  }
  if (json_object_set_new(out, "name", json_string(rec->name)) != 0 ||
      json_object_set(out, "record", fields_json) != 0)
    goto fail;
  if (rec->metric_count > 0) {
    json_t *metrics = json_object();
    if (json_object_set_new(out, "metrics", metrics) != 0)
      goto fail;
    for (size_t i = 0; i < rec->metric_count; i++)
      if (json_object_set_new(metrics, rec->metrics[i].name,
                              json_real(rec->metrics[i].value)) != 0)
        goto fail;
  }
  json_decref(fields_json);
  return out;
fail:
  json_decref(fields_json);
  json_decref(out);
  return NULL;
}
