/* Run details: AML run-history JSON -> record fields; see run_details.h.
 *
 * Every record field is read from a short list of candidate paths, tried in
 * order; the first that holds a non-empty scalar wins. The lists live in one
 * table so the mapping is read (and changed) in one place. No I/O, no shared
 * state. */
#include "aml/run_details.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/event.h"
#include "base/timeutil.h"

/* A NULL-terminated path of keys, each looked up case-insensitively. */
#define P(...) ((const char *const[]){__VA_ARGS__, NULL})
#define MAX_CANDIDATES 5

struct mapping {
  enum record_field field;
  const char *const *paths[MAX_CANDIDATES];
};

/* Fields the run document decides (replacing the event's value). */
static const struct mapping run_fields[] = {
    {REC_RUN_TYPE, {P("runType"), P("properties", "azureml.runsource")}},
    {REC_TARGET, {P("target"), P("compute", "target"), P("runDefinition", "target")}},
    {REC_COMPUTE_TARGET_TYPE,
     {P("compute", "targetType"), P("runTypeV2", "computeType"),
      P("properties", "_azureml.ComputeTargetType"), P("properties", "computeTargetType"),
      P("tags", "computeTargetType")}},
    {REC_DOCKER_IMAGE,
     {P("runDefinition", "environment", "docker", "baseImage"),
      P("runDefinition", "environment", "docker", "image"),
      P("runDefinition", "environment", "image")}},
    {REC_SCRIPT, {P("runDefinition", "script"), P("scriptName")}},
    {REC_SNAPSHOT_ID,
     {P("properties", "ContentSnapshotId"), P("runDefinition", "snapshotId"),
      P("snapshotId")}},
    {REC_STEP_TYPE, {P("properties", "StepType"), P("tags", "StepType")}},
    {REC_NODE_ID, {P("properties", "azureml.nodeid"), P("tags", "azureml.nodeid")}},
    {REC_PARENT_RUN_ID, {P("parentRunId")}},
    {REC_DISPLAY_NAME, {P("displayName")}},
};

/* What a step may borrow from its pipeline run (filled, never replaced). */
static const struct mapping parent_fields[] = {
    {REC_EXPERIMENT_ID, {P("experimentId")}},
    {REC_TARGET, {P("target"), P("compute", "target")}},
    {REC_COMPUTE_TARGET_TYPE,
     {P("compute", "targetType"), P("properties", "_azureml.ComputeTargetType"),
      P("properties", "computeTargetType")}},
};

/* Every member the functions below read from a Run or RunDetails document
 * (the paths of the tables above, the times, the error, the hierarchy), and
 * what aml/run_cost reads from the same Run for the cost estimate (compute
 * size, region, priority and nodes, the node count requested, reuse); a test
 * parses documents both ways and compares the records. */
#define S(...) ((const struct jsonx_select[]){__VA_ARGS__, {NULL, NULL}})
const struct jsonx_select run_details_select[] = {
    {"status", NULL}, /* not mapped: the workspace watch reads it */
    {"runType", NULL},
    {"runId", NULL},
    {"parentRunId", NULL},
    {"displayName", NULL},
    {"experimentId", NULL},
    {"target", NULL},
    {"scriptName", NULL},
    {"snapshotId", NULL},
    {"createdTimeUtc", NULL},
    {"createdUtc", NULL},
    {"startTimeUtc", NULL},
    {"effectiveStartTimeUtc", NULL},
    {"endTimeUtc", NULL},
    {"error", NULL},
    {"compute",
     S({"target", NULL}, {"targetType", NULL}, {"vmSize", NULL}, {"instanceType", NULL},
       {"instanceCount", NULL}, {"priority", NULL}, {"region", NULL})},
    {"computeRequest", S({"nodeCount", NULL})},
    {"runTypeV2", S({"computeType", NULL})},
    /* whole: the run's tags and properties are recorded (tag.<name>,
     * run_properties) besides the keys the mapping reads */
    {"properties", NULL},
    {"tags", NULL},
    {"runDefinition",
     S({"target", NULL}, {"script", NULL}, {"snapshotId", NULL}, {"nodeCount", NULL},
       {"environment",
        S({"image", NULL}, {"docker", S({"baseImage", NULL}, {"image", NULL})})})},
    {NULL, NULL},
};
#undef S

/* The non-empty scalar at `path` as text (numbers rendered into buf), or NULL. */
static const char *text_at(const json_t *doc, const char *const *path, char *buf,
                           size_t size) {
  const json_t *v = doc;
  for (; path[0] && path[1] && v; path++)
    v = jsonx_get_ci(v, path[0]);
  if (!v || !path[0])
    return NULL;
  const char *text = jsonx_scalar_ci(v, path[0], buf, size);
  return text && *text ? text : NULL;
}

static const char *first_text(const json_t *doc, const struct mapping *m, char *buf,
                              size_t size) {
  for (int i = 0; i < MAX_CANDIDATES && m->paths[i]; i++) {
    const char *text = text_at(doc, m->paths[i], buf, size);
    if (text)
      return text;
  }
  return NULL;
}

static int apply_table(struct record *rec, const json_t *doc, const struct mapping *table,
                       size_t count, bool replace) {
  char buf[64];
  for (size_t i = 0; i < count; i++) {
    if (!replace && record_string(rec, table[i].field))
      continue;
    const char *text = first_text(doc, &table[i], buf, sizeof buf);
    if (!text)
      continue;
    if (record_set_string(rec, table[i].field, text) != RESULT_OK)
      return RESULT_NOMEM;
  }
  return RESULT_OK;
}

static bool time_at(const json_t *doc, const char *key, int64_t *out_ms) {
  const char *text = jsonx_string_ci(doc, key);
  return text && time_parse_iso8601_ms(text, out_ms);
}

static void apply_times(struct record *rec, const json_t *doc) {
  int64_t created, start, end;
  bool has_created =
      time_at(doc, "createdTimeUtc", &created) || time_at(doc, "createdUtc", &created);
  bool has_start = time_at(doc, "startTimeUtc", &start) ||
                   time_at(doc, "effectiveStartTimeUtc", &start);
  bool has_end = time_at(doc, "endTimeUtc", &end);
  if (has_start)
    record_set_number(rec, REC_START_TIME_UTC_MS, (double)start);
  if (has_end)
    record_set_number(rec, REC_END_TIME_UTC_MS, (double)end);
  if (has_start && has_end && end >= start)
    record_set_number(rec, REC_EXECUTION_TIME_MS, (double)(end - start));
  if (has_created && has_start && start >= created)
    record_set_number(rec, REC_QUEUE_TIME_MS, (double)(start - created));
}

bool run_details_error(const json_t *doc, const char **out_code,
                       const char **out_message) {
  *out_code = NULL;
  *out_message = NULL;
  const json_t *error = jsonx_get_ci(doc, "error");
  if (json_is_string(error) && *json_string_value(error)) {
    *out_message = json_string_value(error);
    return true;
  }
  if (!json_is_object(error))
    return false;
  /* RunDetails wraps an ErrorResponse: {"error": {"error": {...}}}. */
  const json_t *inner = jsonx_get_ci(error, "error");
  const json_t *src = json_is_object(inner) ? inner : error;
  const char *code = jsonx_string_ci(src, "code");
  const char *message = jsonx_string_ci(src, "message");
  if (!message && json_is_string(inner))
    message = json_string_value(inner);
  if (!message && src != error)
    message = jsonx_string_ci(error, "message");
  if (!code || !*code) {
    code = NULL;
    /* No outer code: the innermost innerError code says most. */
    for (const json_t *ie = jsonx_get_ci(src, "innerError"); json_is_object(ie);
         ie = jsonx_get_ci(ie, "innerError")) {
      const char *c = jsonx_string_ci(ie, "code");
      if (c && *c)
        code = c;
    }
  }
  *out_code = code && *code ? code : NULL;
  *out_message = message && *message ? message : NULL;
  return *out_code || *out_message;
}

/* A run whose properties name a pipeline run other than itself is a step. */
static int apply_hierarchy(struct record *rec, const json_t *doc) {
  char buf[64], idbuf[64];
  const char *pipeline =
      text_at(doc, P("properties", "azureml.pipelinerunid"), buf, sizeof buf);
  if (!pipeline)
    pipeline = text_at(doc, P("tags", "azureml.pipelinerunid"), buf, sizeof buf);
  const char *run_id = text_at(doc, P("runId"), idbuf, sizeof idbuf);
  if (!run_id)
    run_id = record_string(rec, REC_RUN_ID);
  if (pipeline && (!run_id || strcasecmp(pipeline, run_id) != 0)) {
    if (rec->run_kind != RUN_KIND_STEP) {
      rec->run_kind = RUN_KIND_STEP;
      if (record_set_string(rec, REC_PIPELINE_RUN_ID, pipeline) != RESULT_OK)
        return RESULT_NOMEM;
    }
    if (!record_string(rec, REC_PIPELINE_RUN_ID) &&
        record_set_string(rec, REC_PIPELINE_RUN_ID, pipeline) != RESULT_OK)
      return RESULT_NOMEM;
    if (!record_string(rec, REC_PARENT_RUN_ID) &&
        record_set_string(rec, REC_PARENT_RUN_ID, pipeline) != RESULT_OK)
      return RESULT_NOMEM;
  } else if (rec->run_kind == RUN_KIND_PLAIN) {
    const char *type = record_string(rec, REC_RUN_TYPE);
    if (type && strcasecmp(type, "azureml.PipelineRun") == 0)
      rec->run_kind = RUN_KIND_PIPELINE;
  }
  return RESULT_OK;
}

int run_details_apply(struct record *rec, const json_t *doc) {
  if (!json_is_object(doc))
    return RESULT_INVALID;
  int result =
      apply_table(rec, doc, run_fields, sizeof run_fields / sizeof *run_fields, true);
  if (result != RESULT_OK)
    return result;
  if (!record_string(rec, REC_EXPERIMENT_ID)) {
    char buf[64];
    const char *id = text_at(doc, P("experimentId"), buf, sizeof buf);
    if (id && record_set_string(rec, REC_EXPERIMENT_ID, id) != RESULT_OK)
      return RESULT_NOMEM;
  }
  apply_times(rec, doc);

  const char *code, *message;
  if (run_details_error(doc, &code, &message)) {
    if (code && record_set_string(rec, REC_ERROR_CODE, code) != RESULT_OK)
      return RESULT_NOMEM;
    if (message && record_set_string(rec, REC_ERROR_MESSAGE, message) != RESULT_OK)
      return RESULT_NOMEM;
  }
  /* The Run's tags and properties complete what the event carried. */
  if (record_add_tags(rec, jsonx_get_ci(doc, "tags")) != RESULT_OK ||
      record_add_properties(rec, REC_PROPS_RUN, jsonx_get_ci(doc, "properties")) !=
          RESULT_OK)
    return RESULT_NOMEM;
  return apply_hierarchy(rec, doc);
}

int run_details_apply_parent(struct record *rec, const json_t *parent) {
  if (!json_is_object(parent))
    return RESULT_INVALID;
  return apply_table(rec, parent, parent_fields,
                     sizeof parent_fields / sizeof *parent_fields, false);
}

size_t run_details_metric_keys(const json_t *list, struct run_metric_key *keys,
                               size_t have, size_t max) {
  const json_t *value = jsonx_get_ci(list, "value");
  size_t n = have, i;
  const json_t *item;
  if (!json_is_array(value))
    return n;
  json_array_foreach(value, i, item) {
    if (n >= max)
      break;
    const json_t *key = jsonx_get_ci(item, "metricKey");
    const char *name = jsonx_string_ci(key, "name");
    const char *ns = jsonx_string_ci(key, "namespace");
    if (!name || !*name)
      continue;
    if (!ns)
      ns = "";
    bool seen = false;
    for (size_t k = 0; k < n && !seen; k++)
      seen = strcmp(keys[k].name, name) == 0 && strcmp(keys[k].ns, ns) == 0;
    if (!seen)
      keys[n++] = (struct run_metric_key){.ns = ns, .name = name};
  }
  return n;
}

const char *run_details_continuation(const json_t *page) {
  const char *token = jsonx_string_ci(page, "continuationToken");
  return token && *token ? token : NULL;
}

const char *run_details_next_link(const json_t *page) {
  const char *link = jsonx_string_ci(page, "nextLink");
  return link && *link ? link : NULL;
}

static bool number_of(const json_t *v, double *out) {
  if (json_is_integer(v) || json_is_real(v)) {
    *out = json_number_value(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (end == s || *end || errno)
      return false;
  } else {
    return false;
  }
  return isfinite(*out);
}

static bool point_value(const json_t *point, const char *name, double *out) {
  const json_t *data = jsonx_get_ci(point, "data");
  if (!json_is_object(data))
    return false;
  const json_t *v = jsonx_get_ci(data, name);
  if (v)
    return number_of(v, out);
  /* Only one numeric column: that is the metric, whatever it is called. */
  const char *key;
  const json_t *item;
  int found = 0;
  json_object_foreach((json_t *)data, key, item) {
    double d;
    if ((json_is_integer(item) || json_is_real(item)) && number_of(item, &d)) {
      *out = d;
      found++;
    }
  }
  return found == 1;
}

bool run_details_last_metric(const json_t *full, const char *name, double *out_value) {
  const json_t *value = jsonx_get_ci(full, "value");
  size_t i;
  const json_t *point;
  bool found = false;
  double best_step = 0;
  if (!json_is_array(value))
    return false;
  json_array_foreach(value, i, point) {
    double v, step = (double)i;
    const json_t *s = jsonx_get_ci(point, "step");
    if (s && !number_of(s, &step))
      step = (double)i;
    if (!point_value(point, name, &v))
      continue;
    if (!found || step >= best_step) {
      best_step = step;
      *out_value = v;
      found = true;
    }
  }
  return found;
}
