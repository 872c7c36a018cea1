/* The event model: Event Grid or CloudEvents envelopes of AML events; see event.h.
 *
 * Parsing is liberal where real payloads vary (key casing in `data`, run status
 * casing, numbers for versions) and strict where a record would be wrong without
 * it (a missing id, a topic that is not a workspace, a run event without a run
 * id): those are refused with a sentence naming the field. */
#include "core/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/timeutil.h"

#define AML_TYPE_PREFIX "Microsoft.MachineLearningServices."

static const char *const type_names[AML_EVENT_TYPE_COUNT] = {
    [AML_EVENT_RUN_COMPLETED] = "RunCompleted",
    [AML_EVENT_RUN_STATUS_CHANGED] = "RunStatusChanged",
    [AML_EVENT_MODEL_REGISTERED] = "ModelRegistered",
    [AML_EVENT_MODEL_DEPLOYED] = "ModelDeployed",
    [AML_EVENT_DATASET_DRIFT_DETECTED] = "DatasetDriftDetected",
};

static const char *const run_statuses[] = {
    "NotStarted", "Unapproved", "Pausing",  "Paused",     "Starting",
    "Preparing",  "Queued",     "Running",  "Finalizing", "CancelRequested",
    "Completed",  "Failed",     "Canceled",
};

const char *aml_event_type_name(enum aml_event_type type) {
  return type < AML_EVENT_TYPE_COUNT ? type_names[type] : "Unknown";
}

const char *run_status_canonical(const char *status) {
  if (!status)
    return NULL;
  for (size_t i = 0; i < sizeof run_statuses / sizeof *run_statuses; i++)
    if (strcasecmp(status, run_statuses[i]) == 0)
      return run_statuses[i];
  return NULL;
}

bool run_status_is_terminal(const char *status) {
  return status &&
         (strcasecmp(status, "Completed") == 0 || strcasecmp(status, "Failed") == 0 ||
          strcasecmp(status, "Canceled") == 0);
}

/* Reads an optional string field; a present field of another type is an error.
 * Numbers are accepted as text (AML sends some versions and ids as numbers). */
static int take_string(const json_t *obj, const char *key, const char *where, char **out,
                       struct error_info *err) {
  json_t *v = jsonx_get_ci(obj, key);
  char buf[64];
  const char *text = jsonx_scalar_ci(obj, key, buf, sizeof buf);
  if (!v || json_is_null(v))
    return RESULT_OK;
  if (!text)
    return error_set(err, RESULT_INVALID, key, "%s%s is not a string", where, key);
  if (!(*out = strdup(text)))
    return error_set(err, RESULT_NOMEM, key, "out of memory");
  return RESULT_OK;
}

/* A string from the run's tags or properties (either may hold it; tags win),
 * copied into *out; *out stays NULL when neither has it. False when out of
 * memory. */
static bool lookup_tag(const json_t *tags, const json_t *props, const char *key,
                       char **out) {
  char buf[64];
  const char *v = jsonx_scalar_ci(tags, key, buf, sizeof buf);
  if (!v || !*v)
    v = jsonx_scalar_ci(props, key, buf, sizeof buf);
  if (!v || !*v)
    return true;
  return (*out = strdup(v)) != NULL;
}

static int optional_object(const json_t *data, const char *key, const json_t **out,
                           struct error_info *err) {
  json_t *v = jsonx_get_ci(data, key);
  *out = NULL;
  if (!v || json_is_null(v))
    return RESULT_OK;
  if (!json_is_object(v))
    return error_set(err, RESULT_INVALID, key, "data.%s is not an object", key);
  *out = v;
  return RESULT_OK;
}

/* Splits "a/{x}/b/{y}" style subjects: returns the segment after `key`. */
static char *subject_part(const char *subject, const char *const *keys) {
  if (!subject)
    return NULL;
  const char *p = subject;
  while (*p) {
    char *segment = resource_path_segment(&p);
    if (!segment)
      continue;
    bool match = false;
    for (const char *const *k = keys; *k; k++)
      match = match || strcasecmp(segment, *k) == 0;
    free(segment);
    if (match)
      return resource_path_segment(&p);
  }
  return NULL;
}

static int parse_run(const json_t *data, struct aml_event *ev, struct error_info *err) {
  const json_t *tags, *props;
  int r;
  if ((r = take_string(data, "experimentId", "data.", &ev->experiment_id, err)) ||
      (r = take_string(data, "experimentName", "data.", &ev->experiment_name, err)) ||
      (r = take_string(data, "runId", "data.", &ev->run_id, err)) ||
      (r = take_string(data, "runType", "data.", &ev->run_type, err)) ||
      (r = take_string(data, "runStatus", "data.", &ev->run_status, err)) ||
      (r = optional_object(data, "runTags", &tags, err)) ||
      (r = optional_object(data, "runProperties", &props, err)))
    return r;
  ev->tags = tags;
  ev->properties = props;

  static const char *const experiments[] = {"experiments", NULL};
  static const char *const runs[] = {"runs", NULL};
  if (!ev->experiment_id)
    ev->experiment_id = subject_part(ev->subject, experiments);
  if (!ev->run_id || !*ev->run_id) {
    free(ev->run_id);
    ev->run_id = subject_part(ev->subject, runs);
  }
  if (!ev->run_id)
    return error_set(err, RESULT_INVALID, "runId",
                     "the run event has no run id (neither data.runId nor the subject)");

  if (ev->type == AML_EVENT_RUN_COMPLETED && !ev->run_status) {
    if (!(ev->run_status = strdup("Completed")))
      return error_set(err, RESULT_NOMEM, "", "out of memory");
  } else if (ev->type == AML_EVENT_RUN_STATUS_CHANGED && !ev->run_status) {
    return error_set(err, RESULT_INVALID, "runStatus",
                     "the RunStatusChanged event has no data.runStatus");
  } else if (ev->run_status) {
    const char *canonical = run_status_canonical(ev->run_status);
    if (canonical) {
      free(ev->run_status);
      if (!(ev->run_status = strdup(canonical)))
        return error_set(err, RESULT_NOMEM, "", "out of memory");
    }
  }

  char *source = NULL;
  bool copied =
      (ev->run_type || lookup_tag(NULL, props, "azureml.runsource", &ev->run_type)) &&
      lookup_tag(tags, props, "azureml.pipelinerunid", &ev->pipeline_run_id) &&
      lookup_tag(tags, props, "azureml.nodeid", &ev->node_id) &&
      lookup_tag(NULL, props, "StepType", &ev->step_type) &&
      lookup_tag(NULL, props, "computeTargetType", &ev->compute_target_type) &&
      (ev->compute_target_type ||
       lookup_tag(NULL, props, "_azureml.ComputeTargetType", &ev->compute_target_type)) &&
      lookup_tag(NULL, props, "ContentSnapshotId", &ev->snapshot_id) &&
      lookup_tag(NULL, props, "azureml.target", &ev->target) &&
      lookup_tag(NULL, props, "azureml.runsource", &source);
  if (!copied) {
    free(source);
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  }
  bool is_pipeline =
      (ev->run_type && strcasecmp(ev->run_type, "azureml.PipelineRun") == 0) ||
      (source && strcasecmp(source, "azureml.PipelineRun") == 0);
  bool is_step = (ev->run_type && strcasecmp(ev->run_type, "azureml.StepRun") == 0) ||
                 (source && strcasecmp(source, "azureml.StepRun") == 0);
  free(source);
  if (is_pipeline) {
    ev->run_kind = RUN_KIND_PIPELINE;
    if (!ev->pipeline_run_id && !(ev->pipeline_run_id = strdup(ev->run_id)))
      return error_set(err, RESULT_NOMEM, "", "out of memory");
  } else if (is_step ||
             (ev->pipeline_run_id && strcmp(ev->pipeline_run_id, ev->run_id))) {
    ev->run_kind = RUN_KIND_STEP;
  } else {
    ev->run_kind = RUN_KIND_PLAIN;
  }
  return RESULT_OK;
}

static int parse_model_registered(const json_t *data, struct aml_event *ev,
                                  struct error_info *err) {
  int r;
  if ((r = take_string(data, "modelName", "data.", &ev->model_name, err)) ||
      (r = take_string(data, "modelVersion", "data.", &ev->model_version, err)) ||
      (r = optional_object(data, "modelTags", &ev->tags, err)) ||
      (r = optional_object(data, "modelProperties", &ev->properties, err)))
    return r;
  /* Subject: models/{name}:{version} */
  static const char *const models[] = {"models", NULL};
  char *part = subject_part(ev->subject, models);
  if (part) {
    char *colon = strrchr(part, ':');
    bool nomem = colon && !ev->model_version && !(ev->model_version = strdup(colon + 1));
    if (colon)
      *colon = '\0';
    nomem = nomem || (!ev->model_name && !(ev->model_name = strdup(part)));
    free(part);
    if (nomem)
      return error_set(err, RESULT_NOMEM, "", "out of memory");
  }
  if (!ev->model_name)
    return error_set(err, RESULT_INVALID, "modelName",
                     "the ModelRegistered event has no model name");
  return RESULT_OK;
}

static int parse_model_deployed(const json_t *data, struct aml_event *ev,
                                struct error_info *err) {
  int r;
  if ((r = take_string(data, "serviceName", "data.", &ev->service_name, err)) ||
      (r = take_string(data, "serviceComputeType", "data.", &ev->service_compute_type,
                       err)) ||
      (r = take_string(data, "modelIds", "data.", &ev->model_ids, err)) ||
      (r = optional_object(data, "serviceTags", &ev->tags, err)) ||
      (r = optional_object(data, "serviceProperties", &ev->properties, err)))
    return r;
  static const char *const endpoints[] = {"endpoints", NULL};
  if (!ev->service_name)
    ev->service_name = subject_part(ev->subject, endpoints);
  if (!ev->service_name)
    return error_set(err, RESULT_INVALID, "serviceName",
                     "the ModelDeployed event has no service name");
  return RESULT_OK;
}

static int parse_drift(const json_t *data, struct aml_event *ev, struct error_info *err) {
  int r;
  if ((r = take_string(data, "dataDriftId", "data.", &ev->data_drift_id, err)) ||
      (r = take_string(data, "dataDriftName", "data.", &ev->data_drift_name, err)) ||
      (r = take_string(data, "runId", "data.", &ev->run_id, err)) ||
      (r = take_string(data, "baseDatasetId", "data.", &ev->base_dataset_id, err)) ||
      (r = take_string(data, "targetDatasetId", "data.", &ev->target_dataset_id, err)) ||
      (r = take_string(data, "startTime", "data.", &ev->drift_start_time, err)) ||
      (r = take_string(data, "endTime", "data.", &ev->drift_end_time, err)))
    return r;
  json_t *coefficient = jsonx_get_ci(data, "driftCoefficient");
  if (json_is_number(coefficient)) {
    ev->drift_coefficient = json_number_value(coefficient);
    ev->has_drift_coefficient = true;
  } else if (coefficient && !json_is_null(coefficient)) {
    return error_set(err, RESULT_INVALID, "driftCoefficient",
                     "data.driftCoefficient is not a number");
  }
  static const char *const drifts[] = {"datadrift", "datadrifts", NULL};
  static const char *const runs[] = {"run", "runs", NULL};
  if (!ev->data_drift_id)
    ev->data_drift_id = subject_part(ev->subject, drifts);
  if (!ev->run_id)
    ev->run_id = subject_part(ev->subject, runs);
  if (!ev->data_drift_id)
    return error_set(err, RESULT_INVALID, "dataDriftId",
                     "the DatasetDriftDetected event has no data drift id");
  return RESULT_OK;
}

/* Reads a required, non-empty string member of the envelope. */
static int envelope_string(const json_t *event, const char *key, char **out,
                           struct error_info *err) {
  const char *v = jsonx_string_ci(event, key);
  if (!v || !*v)
    return error_set(err, RESULT_INVALID, key, "the event has no %s", key);
  if (!(*out = strdup(v)))
    return error_set(err, RESULT_NOMEM, key, "out of memory");
  return RESULT_OK;
}

int event_parse(const json_t *event, struct aml_event *out, struct error_info *err) {
  memset(out, 0, sizeof *out);
  int r = RESULT_INVALID;
  if (!json_is_object(event)) {
    error_set(err, RESULT_INVALID, "", "the event is not a JSON object");
    goto fail;
  }
  bool cloud = jsonx_get_ci(event, "specversion") != NULL;
  out->schema = cloud ? EVENT_SCHEMA_CLOUD_EVENTS : EVENT_SCHEMA_EVENT_GRID;
  const char *type_key = cloud ? "type" : "eventType";
  const char *topic_key = cloud ? "source" : "topic";
  const char *time_key = cloud ? "time" : "eventTime";

  const char *type = jsonx_string_ci(event, type_key);
  if (!type) {
    error_set(err, RESULT_INVALID, type_key, "the event has no %s", type_key);
    goto fail;
  }
  size_t prefix = strlen(AML_TYPE_PREFIX);
  if (strncasecmp(type, AML_TYPE_PREFIX, prefix) != 0) {
    error_set(err, RESULT_INVALID, type_key,
              "not an Azure Machine Learning event (%s is \"%.100s\")", type_key, type);
    goto fail;
  }
  out->type = AML_EVENT_TYPE_COUNT;
  for (int i = 0; i < AML_EVENT_TYPE_COUNT; i++)
    if (strcasecmp(type + prefix, type_names[i]) == 0)
      out->type = (enum aml_event_type)i;
  if (out->type == AML_EVENT_TYPE_COUNT) {
    error_set(err, RESULT_INVALID, type_key, "unknown AML event type \"%.100s\"", type);
    goto fail;
  }

  if ((r = envelope_string(event, "id", &out->id, err)) ||
      (r = envelope_string(event, topic_key, &out->topic, err)) ||
      (r = envelope_string(event, time_key, &out->time, err)))
    goto fail;
  r = RESULT_INVALID;
  int64_t ms;
  if (!time_parse_iso8601_ms(out->time, &ms)) {
    error_set(err, RESULT_INVALID, time_key, "%s \"%.64s\" is not an ISO-8601 time",
              time_key, out->time);
    goto fail;
  }
  const char *subject = jsonx_string_ci(event, "subject");
  if (subject && !(out->subject = strdup(subject)))
    goto nomem;
  if (workspace_id_parse(out->topic, &out->subscription_id, &out->resource_group,
                         &out->workspace) != RESULT_OK) {
    error_set(err, RESULT_INVALID, topic_key,
              "%s \"%.200s\" is not an AML workspace resource id", topic_key, out->topic);
    goto fail;
  }
  const json_t *data = jsonx_get_ci(event, "data");
  if (!json_is_object(data)) {
    error_set(err, RESULT_INVALID, "data", "the event has no data object");
    goto fail;
  }

  switch (out->type) {
    case AML_EVENT_RUN_COMPLETED:
    case AML_EVENT_RUN_STATUS_CHANGED:
      r = parse_run(data, out, err);
      break;
    case AML_EVENT_MODEL_REGISTERED:
      r = parse_model_registered(data, out, err);
      break;
    case AML_EVENT_MODEL_DEPLOYED:
      r = parse_model_deployed(data, out, err);
      break;
    default:
      r = parse_drift(data, out, err);
      break;
  }
  if (r != RESULT_OK)
    goto fail;
  out->raw = json_incref((json_t *)event);
  return RESULT_OK;
nomem:
  r = error_set(err, RESULT_NOMEM, "", "out of memory");
fail:
  event_cleanup(out);
  return r == RESULT_NOMEM ? r : RESULT_INVALID;
}

void event_cleanup(struct aml_event *ev) {
  char **strings[] = {
      &ev->id,
      &ev->time,
      &ev->topic,
      &ev->subject,
      &ev->subscription_id,
      &ev->resource_group,
      &ev->workspace,
      &ev->experiment_id,
      &ev->experiment_name,
      &ev->run_id,
      &ev->run_type,
      &ev->run_status,
      &ev->pipeline_run_id,
      &ev->node_id,
      &ev->step_type,
      &ev->compute_target_type,
      &ev->snapshot_id,
      &ev->target,
      &ev->model_name,
      &ev->model_version,
      &ev->service_name,
      &ev->service_compute_type,
      &ev->model_ids,
      &ev->data_drift_id,
      &ev->data_drift_name,
      &ev->base_dataset_id,
      &ev->target_dataset_id,
      &ev->drift_start_time,
      &ev->drift_end_time,
  };
  for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
    free(*strings[i]);
  json_decref(ev->raw);
  memset(ev, 0, sizeof *ev);
}
