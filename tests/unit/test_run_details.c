/* Unit tests of run_details: AML RunDetails / Run / metrics JSON fixtures
 * (tests/data/aml/) mapped onto records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "record_assert.h"
#include "core/record.h"
#include "aml/run_details.h"

static json_t *load(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/data/aml/%s", TEST_DATA_DIR, name);
  json_error_t error;
  json_t *doc = json_load_file(path, 0, &error);
  if (!doc)
    fail_msg("%s: %s", path, error.text);
  return doc;
}

static double number(const struct record *rec, enum record_field field) {
  double v = -1;
  assert_true(record_number(rec, field, &v));
  return v;
}

/* A record as record_from_event() leaves it for a plain run event. */
static void event_record(struct record *rec, const char *run_id, enum run_kind kind) {
  record_init(rec);
  rec->run_kind = kind;
  record_set_string(rec, REC_RUN_ID, run_id);
  record_set_string(rec, REC_STATUS, "Running");
  record_set_string(rec, REC_EXPERIMENT_NAME, "exp");
}

static void plain_run(void **state) {
  struct record rec;
  json_t *doc = load("plain_run_details.json");
  event_record(&rec, "train_1715677200_a1b2c3d4", RUN_KIND_PLAIN);
  record_set_string(&rec, REC_COMPUTE_TARGET_TYPE, "from-event");

  assert_int_equal(run_details_apply(&rec, doc), RESULT_OK);
  assert_field(&rec, REC_STATUS, "Running"); /* the event says the status */
  assert_field(&rec, REC_RUN_TYPE, "azureml.scriptrun");
  assert_field(&rec, REC_TARGET, "gpu-cluster");
  assert_field(&rec, REC_COMPUTE_TARGET_TYPE, "AmlCompute");
  assert_field(
      &rec, REC_DOCKER_IMAGE,
      "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04:latest");
  assert_field(&rec, REC_SCRIPT, "train.py");
  assert_field(&rec, REC_SNAPSHOT_ID, "5d6e7f80-1111-4222-8333-944455566677");
  assert_field(&rec, REC_PARENT_RUN_ID, NULL);
  assert_field(&rec, REC_EXPERIMENT_NAME, "exp");
  assert_field(&rec, REC_ERROR_CODE, NULL);
  /* 7 fractional digits and a +02:00 offset. */
  assert_true(number(&rec, REC_START_TIME_UTC_MS) == 1715677205500.0);
  assert_true(number(&rec, REC_END_TIME_UTC_MS) == 1715677805750.0);
  assert_true(number(&rec, REC_EXECUTION_TIME_MS) == 600250.0);
  assert_true(number(&rec, REC_QUEUE_TIME_MS) == 5377.0);
  assert_int_equal(rec.run_kind, RUN_KIND_PLAIN);
  record_cleanup(&rec);
  json_decref(doc);
}

static void pipeline_run(void **state) {
  struct record rec;
  json_t *doc = load("pipeline_run_details.json");
  event_record(&rec, "da7e4950-79aa-4363-9d34-1c71e5fbd95f", RUN_KIND_PLAIN);

  assert_int_equal(run_details_apply(&rec, doc), RESULT_OK);
  assert_field(&rec, REC_RUN_TYPE, "azureml.PipelineRun");
  assert_int_equal(rec.run_kind, RUN_KIND_PIPELINE); /* learnt from the details */
  assert_field(&rec, REC_TARGET, "cpu-cluster");
  assert_field(&rec, REC_COMPUTE_TARGET_TYPE, NULL);
  assert_field(&rec, REC_DOCKER_IMAGE, NULL);
  assert_field(&rec, REC_PIPELINE_RUN_ID, NULL);
  double v;
  assert_false(record_number(&rec, REC_END_TIME_UTC_MS, &v));
  assert_false(record_number(&rec, REC_EXECUTION_TIME_MS, &v));
  assert_true(number(&rec, REC_QUEUE_TIME_MS) == 1667.0);
  record_cleanup(&rec);
  json_decref(doc);
}

static void step_run_and_parent(void **state) {
  struct record rec;
  json_t *doc = load("step_run_details.json");
  json_t *parent = load("parent_run_document.json");
  /* The event said nothing of the pipeline: the details make it a step. */
  event_record(&rec, "b5fb4970-c5e1-48a7-ac98-8d4f951669ef", RUN_KIND_PLAIN);

  assert_int_equal(run_details_apply(&rec, doc), RESULT_OK);
  assert_int_equal(rec.run_kind, RUN_KIND_STEP);
  assert_field(&rec, REC_PIPELINE_RUN_ID, "da7e4950-79aa-4363-9d34-1c71e5fbd95f");
  assert_field(&rec, REC_PARENT_RUN_ID, "da7e4950-79aa-4363-9d34-1c71e5fbd95f");
  assert_field(&rec, REC_STEP_TYPE, "PythonScriptStep");
  assert_field(&rec, REC_NODE_ID, "41b8a599");
  assert_field(&rec, REC_RUN_TYPE, "azureml.StepRun");
  /* compute is null: runTypeV2.computeType is next. */
  assert_field(&rec, REC_COMPUTE_TARGET_TYPE, "AmlCompute");
  assert_field(&rec, REC_SNAPSHOT_ID, "28940b1b-a5ba-433d-a294-73599b934a92");
  assert_field(&rec, REC_DOCKER_IMAGE,
               "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:20240418.v1");
  assert_true(number(&rec, REC_START_TIME_UTC_MS) == 1715679280250.0);
  assert_true(number(&rec, REC_EXECUTION_TIME_MS) == 1715679931000.0 - 1715679280250.0);
  assert_true(number(&rec, REC_QUEUE_TIME_MS) == 90250.0);
  assert_field(&rec, REC_EXPERIMENT_ID, NULL);

  /* The parent fills only what the step lacks. */
  record_set_string(&rec, REC_TARGET, "step-target");
  assert_int_equal(run_details_apply_parent(&rec, parent), RESULT_OK);
  assert_field(&rec, REC_EXPERIMENT_ID, "82c99df0-345e-47f5-9f37-17182d398f02");
  assert_field(&rec, REC_TARGET, "step-target");
  assert_field(&rec, REC_RUN_TYPE, "azureml.StepRun");
  assert_field(&rec, REC_STATUS, "Running");
  record_cleanup(&rec);
  json_decref(doc);
  json_decref(parent);
}

static void run_document_adds_display_name(void **state) {
  struct record rec;
  json_t *doc = load("run_document.json");
  event_record(&rec, "b5fb4970-c5e1-48a7-ac98-8d4f951669ef", RUN_KIND_STEP);
  record_set_string(&rec, REC_PIPELINE_RUN_ID, "da7e4950-79aa-4363-9d34-1c71e5fbd95f");

  assert_int_equal(run_details_apply(&rec, doc), RESULT_OK);
  assert_field(&rec, REC_DISPLAY_NAME, "train");
  assert_field(&rec, REC_SCRIPT, "train.py"); /* runDefinition null: scriptName */
  assert_field(&rec, REC_COMPUTE_TARGET_TYPE, "AmlCompute");
  assert_field(&rec, REC_RUN_TYPE, "azureml.StepRun");
  assert_field(&rec, REC_EXPERIMENT_ID, "82c99df0-345e-47f5-9f37-17182d398f02");
  assert_true(number(&rec, REC_QUEUE_TIME_MS) == 90250.0); /* createdUtc */
  assert_int_equal(rec.run_kind, RUN_KIND_STEP);
  record_cleanup(&rec);
  json_decref(doc);
}

/* The Run document's tags and properties complete what the event carried
 * (issue 11 item 2); the event's values win where both have a key. */
static void run_document_completes_tags_and_properties(void **state) {
  struct record rec;
  event_record(&rec, "run-1", RUN_KIND_PLAIN);
  json_t *event_tags = json_pack("{s:s}", "team", "vision");
  assert_int_equal(record_add_tags(&rec, event_tags), RESULT_OK);
  json_t *doc = json_loads("{\"runId\":\"run-1\",\"tags\":{\"team\":\"other\","
                           "\"dataset\":\"v3\"},\"properties\":{\"runTemplate\":"
                           "\"automl_child\",\"score\":\"0.9\"}}",
                           0, NULL);
  assert_int_equal(run_details_apply(&rec, doc), RESULT_OK);
  assert_string_equal(json_string_value(json_object_get(rec.tags, "team")), "vision");
  assert_string_equal(json_string_value(json_object_get(rec.tags, "dataset")), "v3");
  char *text = record_properties_text(&rec, REC_PROPS_RUN);
  assert_string_equal(text, "{\"runTemplate\":\"automl_child\",\"score\":\"0.9\"}");
  free(text);
  json_decref(doc);
  json_decref(event_tags);
  record_cleanup(&rec);
}

static void failed_run_error(void **state) {
  struct record rec;
  json_t *doc = load("failed_run_details.json");
  event_record(&rec, "907918cc-bca5-4cc9-8e33-b44feeff4d62", RUN_KIND_STEP);

  assert_int_equal(run_details_apply(&rec, doc), RESULT_OK);
  assert_field(&rec, REC_STATUS, "Running");
  assert_field(&rec, REC_ERROR_CODE, "UserError");
  assert_field(&rec, REC_ERROR_MESSAGE,
               "Execution failed. User process 'python' exited with status code 1.");
  assert_field(&rec, REC_SCRIPT, "evaluate.py");
  assert_true(number(&rec, REC_EXECUTION_TIME_MS) == 130500.0);
  record_cleanup(&rec);
  json_decref(doc);
}

static void error_shapes(void **state) {
  const char *code, *message;
  json_t *doc = json_loads("{\"error\":\"plain text\"}", 0, NULL);
  assert_true(run_details_error(doc, &code, &message));
  assert_null(code);
  assert_string_equal(message, "plain text");
  json_decref(doc);

  /* No outer code: the innermost innerError code. */
  doc = json_loads("{\"error\":{\"error\":{\"message\":\"m\",\"innerError\":{\"code\":"
                   "\"A\",\"innerError\":{\"code\":\"B\",\"innerError\":null}}}}}",
                   0, NULL);
  assert_true(run_details_error(doc, &code, &message));
  assert_string_equal(code, "B");
  assert_string_equal(message, "m");
  json_decref(doc);

  doc = json_loads("{\"error\":null}", 0, NULL);
  assert_false(run_details_error(doc, &code, &message));
  json_decref(doc);
  doc = json_loads("{\"error\":{\"error\":{}}}", 0, NULL);
  assert_false(run_details_error(doc, &code, &message));
  json_decref(doc);
}

static void odd_casing_and_numbers(void **state) {
  struct record rec;
  json_t *doc = load("odd_casing_details.json");
  event_record(&rec, "12345", RUN_KIND_PLAIN);

  assert_int_equal(run_details_apply(&rec, doc), RESULT_OK);
  assert_field(&rec, REC_STATUS, "Running");
  assert_field(&rec, REC_PARENT_RUN_ID, "777");
  assert_field(&rec, REC_NODE_ID, "4711");
  assert_field(&rec, REC_STEP_TYPE, "ParallelRunStep");
  assert_field(&rec, REC_SNAPSHOT_ID, "abc-snapshot");
  assert_field(&rec, REC_COMPUTE_TARGET_TYPE, "AKS");
  assert_field(&rec, REC_SCRIPT, "score.py");
  assert_field(&rec, REC_DOCKER_IMAGE, "myregistry.azurecr.io/score:1");
  assert_field(&rec, REC_TARGET, "aks-inference");
  assert_field(&rec, REC_ERROR_CODE, "ServiceError");
  assert_field(&rec, REC_ERROR_MESSAGE, "The compute was preempted.");
  assert_true(number(&rec, REC_START_TIME_UTC_MS) == 1715680802123.0);
  assert_true(number(&rec, REC_EXECUTION_TIME_MS) == 877.0);
  assert_true(number(&rec, REC_QUEUE_TIME_MS) == 3602123.0);
  assert_int_equal(rec.run_kind, RUN_KIND_PLAIN);
  record_cleanup(&rec);
  json_decref(doc);
}

static void missing_fields_keep_the_event(void **state) {
  struct record rec;
  json_t *doc = load("missing_fields_details.json");
  event_record(&rec, "sparse-run", RUN_KIND_PLAIN);
  record_set_string(&rec, REC_TARGET, "event-target");

  assert_int_equal(run_details_apply(&rec, doc), RESULT_OK);
  assert_field(&rec, REC_STATUS, "Running");      /* null status: event's kept */
  assert_field(&rec, REC_TARGET, "event-target"); /* empty target ignored */
  assert_field(&rec, REC_SCRIPT, NULL);
  assert_field(&rec, REC_DOCKER_IMAGE, NULL);
  assert_field(&rec, REC_COMPUTE_TARGET_TYPE, NULL);
  assert_field(&rec, REC_ERROR_CODE, NULL);
  double v;
  assert_false(record_number(&rec, REC_START_TIME_UTC_MS, &v)); /* malformed */
  assert_false(record_number(&rec, REC_QUEUE_TIME_MS, &v));

  json_t *array = json_array();
  assert_int_equal(run_details_apply(&rec, array), RESULT_INVALID);
  assert_int_equal(run_details_apply_parent(&rec, NULL), RESULT_INVALID);
  json_decref(array);
  record_cleanup(&rec);
  json_decref(doc);
}

static void metrics(void **state) {
  json_t *list = load("metrics_list.json");
  json_t *full = load("metrics_full_loss.json");
  struct run_metric_key keys[8];
  assert_int_equal(run_details_metric_keys(list, keys, 0, 8), 3);
  assert_string_equal(keys[0].name, "accuracy");
  assert_string_equal(keys[0].ns, "");
  assert_string_equal(keys[1].name, "loss");
  assert_string_equal(keys[2].name, "epochs");
  /* A second page appends; what is already held is not added twice. */
  assert_int_equal(run_details_metric_keys(list, keys, 3, 8), 3);
  assert_int_equal(run_details_metric_keys(list, keys, 0, 1), 1);
  assert_int_equal(run_details_metric_keys(full, keys, 0, 8), 0);
  assert_null(run_details_continuation(list));

  /* The same name in two namespaces is two metrics (metricKey.namespace). */
  json_t *spaced =
      json_loads("{\"value\":[{\"metricKey\":{\"namespace\":\"eval\",\"name\":\"f1\"}},"
                 "{\"metricKey\":{\"namespace\":\"train\",\"name\":\"f1\"}}],"
                 "\"continuationToken\":\"next-page\"}",
                 0, NULL);
  assert_int_equal(run_details_metric_keys(spaced, keys, 0, 8), 2);
  assert_string_equal(keys[0].ns, "eval");
  assert_string_equal(keys[1].ns, "train");
  assert_string_equal(run_details_continuation(spaced), "next-page");
  json_decref(spaced);

  double value = 0;
  /* Highest finite step wins, whatever the order; numeric strings accepted. */
  assert_true(run_details_last_metric(full, "loss", &value));
  assert_true(value == 0.2);
  /* Another name: the only numeric column of each point. */
  assert_true(run_details_last_metric(full, "renamed", &value));
  assert_true(value == 0.33);

  json_t *bad = json_loads("{\"value\":[{\"step\":0,\"data\":{\"x\":true}}]}", 0, NULL);
  assert_false(run_details_last_metric(bad, "x", &value));
  assert_false(run_details_last_metric(list, "accuracy", &value));
  json_decref(bad);
  json_decref(list);
  json_decref(full);
}

/* The record a document gives, as JSON text: the run applied to a step's and a
 * plain run's event record, and the document as a parent of a bare step. */
static char *records_from(const json_t *doc) {
  struct record step, plain, child;
  event_record(&step, "step-1", RUN_KIND_STEP);
  event_record(&plain, "run-1", RUN_KIND_PLAIN);
  event_record(&child, "child-1", RUN_KIND_STEP);
  assert_int_equal(run_details_apply(&step, doc), RESULT_OK);
  assert_int_equal(run_details_apply(&plain, doc), RESULT_OK);
  assert_int_equal(run_details_apply_parent(&child, doc), RESULT_OK);
  json_t *all = json_pack("[ooo]", record_to_json(&step), record_to_json(&plain),
                          record_to_json(&child));
  char *text = jsonx_dump(all);
  json_decref(all);
  record_cleanup(&step);
  record_cleanup(&plain);
  record_cleanup(&child);
  return text;
}

/* run_details_select names every member the mapping reads: each fixture gives
 * the same records parsed whole and parsed with the selection. */
static void selection_reads_what_the_mapping_reads(void **state) {
  static const char *const fixtures[] = {
      "failed_run_details.json",   "missing_fields_details.json",
      "odd_casing_details.json",   "parent_run_document.json",
      "pipeline_run_details.json", "plain_run_details.json",
      "run_document.json",         "step_run_details.json",
  };
  for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
    json_t *whole = load(fixtures[i]);
    char *text = json_dumps(whole, 0);
    struct error_info err;
    json_t *some = jsonx_parse_select(text, strlen(text), JSONX_DEFAULT_MAX_DEPTH,
                                      run_details_select, NULL, &err);
    assert_non_null(some);
    char *expected = records_from(whole), *got = records_from(some);
    if (strcmp(expected, got) != 0)
      fail_msg("%s:\n whole:    %s\n selected: %s", fixtures[i], expected, got);
    char *kept = json_dumps(some, 0);
    assert_true(strlen(kept) <= strlen(text));
    free(kept);
    free(expected);
    free(got);
    free(text);
    json_decref(some);
    json_decref(whole);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(plain_run),
      cmocka_unit_test(pipeline_run),
      cmocka_unit_test(step_run_and_parent),
      cmocka_unit_test(run_document_adds_display_name),
      cmocka_unit_test(failed_run_error),
      cmocka_unit_test(run_document_completes_tags_and_properties),
      cmocka_unit_test(error_shapes),
      cmocka_unit_test(odd_casing_and_numbers),
      cmocka_unit_test(missing_fields_keep_the_event),
      cmocka_unit_test(metrics),
      cmocka_unit_test(selection_reads_what_the_mapping_reads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
