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
    [REC_STUCK_STATUS] = {"stuck_status", REC_KIND_STRING},
    [REC_STUCK_FOR_MS] = {"stuck_for_ms", REC_KIND_NUMBER},
    [REC_THRESHOLD_MS] = {"threshold_ms", REC_KIND_NUMBER},
    [REC_METRIC_VALUE] = {"value", REC_KIND_NUMBER},
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
  json_decref(rec->tags);
  for (int i = 0; i < REC_PROPS_COUNT; i++)
    json_decref(rec->properties[i]);
  record_init(rec);
}

static const char *const props_names[REC_PROPS_COUNT] = {
    [REC_PROPS_RUN] = "run_properties",
    [REC_PROPS_MODEL] = "model_properties",
    [REC_PROPS_SERVICE] = "service_properties",
};

const char *record_props_name(enum record_props which) {
  return props_names[which];
}

int record_add_tags(struct record *rec, const json_t *tags) {
  const char *key;
  json_t *value;
  if (!json_is_object(tags) || json_object_size(tags) == 0)
    return RESULT_OK;
  if (!rec->tags && !(rec->tags = json_object()))
    return RESULT_NOMEM;
  json_object_foreach((json_t *)tags, key, value) {
    if (json_object_get(rec->tags, key))
      continue;
    json_t *text;
    if (json_is_string(value)) {
      text = json_stringn(json_string_value(value), json_string_length(value));
    } else {
      char *dumped = jsonx_dump(value);
      text = dumped ? json_string(dumped) : NULL;
      free(dumped);
    }
    if (!text || json_object_set_new(rec->tags, key, text) != 0)
      return RESULT_NOMEM;
  }
  return RESULT_OK;
}

int record_add_properties(struct record *rec, enum record_props which,
                          const json_t *props) {
  const char *key;
  json_t *value;
  if (!json_is_object(props) || json_object_size(props) == 0)
    return RESULT_OK; /* an empty object says nothing: left out */
  if (!rec->properties[which] && !(rec->properties[which] = json_object()))
    return RESULT_NOMEM;
  json_object_foreach((json_t *)props, key, value) {
    if (json_object_get(rec->properties[which], key))
      continue;
    json_t *copy = json_deep_copy(value);
    if (!copy || json_object_set_new(rec->properties[which], key, copy) != 0)
      return RESULT_NOMEM;
  }
  return RESULT_OK;
}

/* Cuts `text` (malloc'd) to `max` bytes ending in "..." on a UTF-8 boundary. */
static void cut_with_marker(char *text, size_t max) {
  if (strlen(text) <= max)
    return;
  size_t cut = max - 3;
  while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
    cut--;
  memcpy(text + cut, "...", 4);
}

char *record_properties_text(const struct record *rec, enum record_props which) {
  if (!rec->properties[which])
    return NULL;
  char *text = jsonx_dump(rec->properties[which]);
  if (text)
    cut_with_marker(text, RECORD_PROPERTIES_MAX);
  return text;
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
  enum record_props which = ev->type == AML_EVENT_MODEL_REGISTERED ? REC_PROPS_MODEL
                            : ev->type == AML_EVENT_MODEL_DEPLOYED ? REC_PROPS_SERVICE
                                                                   : REC_PROPS_RUN;
  if (record_add_tags(rec, ev->tags) != RESULT_OK ||
      record_add_properties(rec, which, ev->properties) != RESULT_OK)
    return RESULT_NOMEM;
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
  cut_with_marker(text, RECORD_RAW_EVENT_MAX);
  int result = SET_STRINGS(rec, {REC_EVENT_ID, id}, {REC_EVENT_TYPE, type},
                           {REC_EVENT_TIME, time}, {REC_RAW_EVENT, text});
  free(text);
  return result;
}

int record_tags_and_properties(const struct record *rec, json_t *out) {
  const char *key;
  json_t *value;
  json_object_foreach(rec->tags, key, value) {
    char *name = malloc(strlen(key) + sizeof RECORD_TAG_PREFIX);
    if (!name)
      return RESULT_NOMEM;
    strcpy(name, RECORD_TAG_PREFIX);
    strcat(name, key);
    int r = json_object_set(out, name, value);
    free(name);
    if (r != 0)
      return RESULT_NOMEM;
  }
  for (int i = 0; i < REC_PROPS_COUNT; i++) {
    if (!rec->properties[i])
      continue;
    char *text = record_properties_text(rec, (enum record_props)i);
    if (!text || json_object_set_new(out, props_names[i], json_string(text)) != 0) {
      free(text);
      return RESULT_NOMEM;
    }
    free(text);
  }
  return RESULT_OK;
}

int record_copy(struct record *dst, const struct record *src) {
  memcpy(dst->name, src->name, sizeof dst->name);
  dst->type = src->type;
  dst->run_kind = src->run_kind;
  dst->rejected = src->rejected;
  dst->shape = src->shape;
  for (int i = 0; i < REC_FIELD_COUNT; i++) {
    const struct record_value *v = &src->values[i];
    if (!v->set)
      continue;
    if (fields[i].kind == REC_KIND_NUMBER)
      record_set_number(dst, (enum record_field)i, v->number);
    else if (record_set_string(dst, (enum record_field)i, v->text) != RESULT_OK)
      return RESULT_NOMEM;
  }
  for (size_t i = 0; i < src->metric_count; i++)
    if (record_add_metric(dst, src->metrics[i].name, src->metrics[i].value) ==
        RESULT_NOMEM)
      return RESULT_NOMEM;
  if (record_add_tags(dst, src->tags) != RESULT_OK)
    return RESULT_NOMEM;
  for (int i = 0; i < REC_PROPS_COUNT; i++)
    if (record_add_properties(dst, (enum record_props)i, src->properties[i]) != RESULT_OK)
      return RESULT_NOMEM;
  return RESULT_OK;
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
  if (record_tags_and_properties(rec, fields_json) != RESULT_OK)
    goto fail;
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
