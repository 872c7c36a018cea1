/* Unit tests of the run record: field table, JSON shape, rejected records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/record.h"

static void field_names_are_unique_and_complete(void **state) {
  for (int i = 0; i < REC_FIELD_COUNT; i++) {
    assert_non_null(record_field_name(i));
    for (int j = i + 1; j < REC_FIELD_COUNT; j++)
      assert_string_not_equal(record_field_name(i), record_field_name(j));
  }
  assert_string_equal(record_field_name(REC_WORKSPACE), "amlWorkSpace");
  assert_int_equal(record_field_kind(REC_EXECUTION_TIME_MS), REC_KIND_NUMBER);
}

static void json_holds_only_known_fields(void **state) {
  struct record rec;
  record_init(&rec);
  snprintf(rec.name, sizeof rec.name, "AmlRunCompleted");
  record_set_string(&rec, REC_RUN_ID, "r1");
  record_set_number(&rec, REC_EXECUTION_TIME_MS, 1500);
  record_set_number(&rec, REC_DRIFT_COEFFICIENT, 0.25);
  record_set_number(&rec, REC_QUEUE_TIME_MS, 0.0 / 0.0); /* NaN is unknown */
  record_set_string(&rec, REC_STATUS, "x");
  record_set_string(&rec, REC_STATUS, NULL); /* cleared */
  assert_int_equal(record_add_metric(&rec, "accuracy", 0.5), RESULT_OK);
  assert_int_equal(record_add_metric(&rec, "accuracy", 0.75), RESULT_OK);

  json_t *json = record_to_json(&rec);
  char *text = jsonx_dump(json);
  assert_string_equal(text,
                      "{\"name\":\"AmlRunCompleted\",\"record\":{\"execution_time_ms\":"
                      "1500,\"run_id\":\"r1\",\"drift_coefficient\":0.25},"
                      "\"metrics\":{\"accuracy\":0.75}}");
  free(text);
  json_decref(json);
  record_cleanup(&rec);
}

static void metrics_are_bounded(void **state) {
  struct record rec;
  record_init(&rec);
  char name[16];
  for (int i = 0; i < RECORD_MAX_METRICS; i++) {
    snprintf(name, sizeof name, "m%d", i);
    assert_int_equal(record_add_metric(&rec, name, i), RESULT_OK);
  }
  assert_int_equal(record_add_metric(&rec, "one-more", 1), RESULT_TOOBIG);
  assert_int_equal(record_add_metric(&rec, "inf", 1.0 / 0.0), RESULT_INVALID);
  record_cleanup(&rec);
}

static void rejected_records_keep_a_truncated_raw_event(void **state) {
  json_t *raw =
      json_pack("{s:s,s:s,s:s}", "id", "e1", "eventType", "Other.Type", "blob", "");
  char *big = malloc(RECORD_RAW_EVENT_MAX * 2);
  memset(big, 'x', RECORD_RAW_EVENT_MAX * 2 - 1);
  big[RECORD_RAW_EVENT_MAX * 2 - 1] = '\0';
  json_object_set_new(raw, "blob", json_string(big));
  free(big);

  struct record rec;
  record_init(&rec);
  assert_int_equal(record_rejected(&rec, "not an AML event", raw), RESULT_OK);
  assert_true(rec.rejected);
  assert_string_equal(rec.name, "AmlEventRejected");
  assert_string_equal(record_string(&rec, REC_EVENT_ID), "e1");
  assert_string_equal(record_string(&rec, REC_EVENT_TYPE), "Other.Type");
  const char *kept = record_string(&rec, REC_RAW_EVENT);
  assert_int_equal(strlen(kept), RECORD_RAW_EVENT_MAX);
  assert_string_equal(kept + RECORD_RAW_EVENT_MAX - 3, "...");
  record_cleanup(&rec);
  json_decref(raw);
}

/* The raw event keeps every digit of its numbers (issue 11 item 3). */
static void rejected_raw_event_keeps_number_digits(void **state) {
  json_t *raw = json_pack("{s:s, s:{s:f, s:f}}", "id", "e1", "data", "driftCoefficient",
                          0.8350349068479208, "tiny", 4e-7);
  struct record rec;
  record_init(&rec);
  assert_int_equal(record_rejected(&rec, "unknown type", raw), RESULT_OK);
  assert_string_equal(record_string(&rec, REC_RAW_EVENT),
                      "{\"id\":\"e1\",\"data\":{\"driftCoefficient\":0.8350349068479208,"
                      "\"tiny\":4e-7}}");
  record_cleanup(&rec);
  json_decref(raw);
}

/* Tags and properties (issue 11 item 2): "tag.<name>" per tag, one JSON
 * string per properties object cut past 8 KB with "...", the first writer of
 * a key wins (the event), later sources (the Run document) complete it. */
static void tags_and_properties(void **state) {
  struct record rec;
  record_init(&rec);
  snprintf(rec.name, sizeof rec.name, "AmlRunCompleted");
  json_t *event_tags =
      json_pack("{s:s, s:i, s:n}", "team", "vision", "epochs", 30, "flag");
  json_t *run_tags = json_pack("{s:s, s:s}", "team", "other", "dataset", "v3");
  json_t *props =
      json_pack("{s:s, s:f}", "runTemplate", "automl_child", "score", 0.8350349068479208);
  assert_int_equal(record_add_tags(&rec, event_tags), RESULT_OK);
  assert_int_equal(record_add_tags(&rec, run_tags), RESULT_OK);
  assert_int_equal(record_add_tags(&rec, NULL), RESULT_OK);
  assert_int_equal(record_add_properties(&rec, REC_PROPS_RUN, props), RESULT_OK);
  json_t *out = record_to_json(&rec);
  json_t *fields = json_object_get(out, "record");
  assert_string_equal(json_string_value(json_object_get(fields, "tag.team")), "vision");
  assert_string_equal(json_string_value(json_object_get(fields, "tag.epochs")), "30");
  assert_string_equal(json_string_value(json_object_get(fields, "tag.flag")), "null");
  assert_string_equal(json_string_value(json_object_get(fields, "tag.dataset")), "v3");
  assert_string_equal(json_string_value(json_object_get(fields, "run_properties")),
                      "{\"runTemplate\":\"automl_child\",\"score\":0.8350349068479208}");
  assert_null(json_object_get(fields, "model_properties"));
  json_decref(out);

  /* Past 8 KB: cut, on a character boundary, with a marker. */
  char big[10000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  json_t *large = json_pack("{s:s}", "blob", big);
  assert_int_equal(record_add_properties(&rec, REC_PROPS_MODEL, large), RESULT_OK);
  char *text = record_properties_text(&rec, REC_PROPS_MODEL);
  assert_int_equal(strlen(text), RECORD_PROPERTIES_MAX);
  assert_string_equal(text + RECORD_PROPERTIES_MAX - 3, "...");
  free(text);
  json_decref(large);
  json_decref(event_tags);
  json_decref(run_tags);
  json_decref(props);
  record_cleanup(&rec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(field_names_are_unique_and_complete),
      cmocka_unit_test(json_holds_only_known_fields),
      cmocka_unit_test(metrics_are_bounded),
      cmocka_unit_test(rejected_records_keep_a_truncated_raw_event),
      cmocka_unit_test(rejected_raw_event_keeps_number_digits),
      cmocka_unit_test(tags_and_properties),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
