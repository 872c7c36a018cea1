/* Unit tests of the event model's building blocks. Whole events, in both
 * schemas and every type, are covered by the data-driven cases (test_cases). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/event.h"

static void splits_workspace_ids(void **state) {
  char *sub, *rg, *ws;
  assert_int_equal(workspace_id_parse("/subscriptions/s/resourceGroups/g/providers/"
                                      "Microsoft.MachineLearningServices/workspaces/w",
                                      &sub, &rg, &ws),
                   RESULT_OK);
  assert_string_equal(sub, "s");
  assert_string_equal(rg, "g");
  assert_string_equal(ws, "w");
  free(sub);
  free(rg);
  free(ws);
  assert_int_equal(workspace_id_parse("/SUBSCRIPTIONS/s/resourcegroups/g/PROVIDERS/"
                                      "microsoft.machinelearningservices/Workspaces/w",
                                      &sub, &rg, &ws),
                   RESULT_OK);
  free(sub);
  free(rg);
  free(ws);
}

static void refuses_other_resource_ids(void **state) {
  const char *bad[] = {
      "",
      "subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/"
      "workspaces/w",
      "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a",
      "/subscriptions//resourceGroups/g/providers/Microsoft.MachineLearningServices/"
      "workspaces/w",
      "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/"
      "workspaces/w/extra",
      "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/"
      "workspaces/",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *sub, *rg, *ws;
    assert_int_equal(workspace_id_parse(bad[i], &sub, &rg, &ws), RESULT_INVALID);
    assert_null(sub);
  }
}

static void canonicalises_run_status(void **state) {
  assert_string_equal(run_status_canonical("failed"), "Failed");
  assert_string_equal(run_status_canonical("CANCELREQUESTED"), "CancelRequested");
  assert_null(run_status_canonical("Exploded"));
  assert_true(run_status_is_terminal("completed"));
  assert_true(run_status_is_terminal("Canceled"));
  assert_false(run_status_is_terminal("Running"));
  assert_false(run_status_is_terminal(NULL));
}

static json_t *load(const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, 0, &e);
  assert_non_null(v);
  return v;
}

#define TOPIC                                                                            \
  "\"/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/"     \
  "workspaces/w\""

static void a_pipeline_run_is_its_own_pipeline(void **state) {
  json_t *raw =
      load("{\"id\":\"1\",\"topic\":" TOPIC ",\"subject\":\"experiments/x/runs/p\","
           "\"eventType\":\"Microsoft.MachineLearningServices.RunCompleted\","
           "\"eventTime\":\"2024-01-01T00:00:00Z\",\"data\":{\"runType\":null,"
           "\"runProperties\":{\"azureml.runsource\":\"azureml.PipelineRun\"}}}");
  struct aml_event ev;
  struct error_info err;
  assert_int_equal(event_parse(raw, &ev, &err), RESULT_OK);
  assert_int_equal(ev.run_kind, RUN_KIND_PIPELINE);
  assert_string_equal(ev.run_id, "p");
  assert_string_equal(ev.experiment_id, "x");
  assert_string_equal(ev.pipeline_run_id, "p");
  assert_string_equal(ev.run_type, "azureml.PipelineRun");
  assert_string_equal(ev.run_status, "Completed");
  event_cleanup(&ev);
  json_decref(raw);
}

static void a_run_with_a_foreign_pipeline_id_is_a_step(void **state) {
  json_t *raw =
      load("{\"id\":\"1\",\"topic\":" TOPIC ",\"subject\":\"experiments/x/runs/r\","
           "\"eventType\":\"Microsoft.MachineLearningServices.RunStatusChanged\","
           "\"eventTime\":\"2024-01-01T00:00:00Z\",\"data\":{\"RunStatus\":\"running\","
           "\"RunTags\":{\"azureml.pipelinerunid\":\"p\"}}}");
  struct aml_event ev;
  struct error_info err;
  assert_int_equal(event_parse(raw, &ev, &err), RESULT_OK);
  assert_int_equal(ev.run_kind, RUN_KIND_STEP);
  assert_string_equal(ev.run_status, "Running");
  event_cleanup(&ev);
  json_decref(raw);
}

static void refusals_say_why(void **state) {
  json_t *raw = load("{\"id\":\"1\",\"topic\":\"/subscriptions/s\",\"eventType\":"
                     "\"Microsoft.MachineLearningServices.RunCompleted\",\"eventTime\":"
                     "\"2024-01-01T00:00:00Z\",\"data\":{}}");
  struct aml_event ev;
  struct error_info err;
  assert_int_equal(event_parse(raw, &ev, &err), RESULT_INVALID);
  assert_string_equal(err.field, "topic");
  assert_non_null(strstr(err.message, "not an AML workspace resource id"));
  json_decref(raw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(splits_workspace_ids),
      cmocka_unit_test(refuses_other_resource_ids),
      cmocka_unit_test(canonicalises_run_status),
      cmocka_unit_test(a_pipeline_run_is_its_own_pipeline),
      cmocka_unit_test(a_run_with_a_foreign_pipeline_id_is_a_step),
      cmocka_unit_test(refusals_say_why),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
