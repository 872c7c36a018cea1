/* Unit tests of jsonx: capped parsing and case-insensitive lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/jsonx.h"

static json_t *parse(const char *text, int max_depth, int *result) {
  struct error_info err;
  return jsonx_parse(text, strlen(text), max_depth, result, &err);
}

static void parses_and_reports_errors(void **state) {
  int r;
  json_t *v = parse("{\"a\": [1, 2]}", 8, &r);
  assert_non_null(v);
  assert_int_equal(r, RESULT_OK);
  json_decref(v);

  struct error_info err;
  assert_null(jsonx_parse("{\"a\":", 5, 8, &r, &err));
  assert_int_equal(r, RESULT_INVALID);
  assert_non_null(strstr(err.message, "not valid JSON"));
}

static void refuses_deep_nesting(void **state) {
  char deep[300];
  memset(deep, '[', 150);
  memset(deep + 150, ']', 150);
  int r;
  struct error_info err;
  assert_null(jsonx_parse(deep, 300, 64, &r, &err));
  assert_int_equal(r, RESULT_TOOBIG);
  /* Brackets inside strings do not count. */
  assert_int_equal(jsonx_depth("{\"a\":\"[[[[\\\"[[[\"}", 17, 2), 1);
  assert_int_equal(jsonx_depth("[[[1]]]", 7, 2), 3);
}

static void looks_up_keys_case_insensitively(void **state) {
  int r;
  json_t *v = parse("{\"RunTags\": {\"a\": 1}, \"runId\": \"r\", \"Version\": 3, "
                    "\"Coefficient\": 0.5, \"nothing\": null}",
                    8, &r);
  assert_non_null(jsonx_get_ci(v, "runtags"));
  assert_string_equal(jsonx_string_ci(v, "RUNID"), "r");
  assert_null(jsonx_string_ci(v, "version"));
  char buf[32];
  assert_string_equal(jsonx_scalar_ci(v, "version", buf, sizeof buf), "3");
  assert_string_equal(jsonx_scalar_ci(v, "coefficient", buf, sizeof buf), "0.5");
  assert_null(jsonx_scalar_ci(v, "nothing", buf, sizeof buf));
  assert_null(jsonx_get_ci(v, "absent"));
  assert_null(jsonx_get_ci(NULL, "absent"));
  json_decref(v);
}

static void exact_key_wins_over_other_casings(void **state) {
  int r;
  json_t *v = parse("{\"runid\": \"lower\", \"runId\": \"exact\"}", 8, &r);
  assert_string_equal(jsonx_string_ci(v, "runId"), "exact");
  json_decref(v);
}

static void dumps_compactly(void **state) {
  int r;
  json_t *v = parse("{ \"a\" : [ 1 , \"x\" ] }", 8, &r);
  char *text = jsonx_dump(v);
  assert_string_equal(text, "{\"a\":[1,\"x\"]}");
  free(text);
  json_decref(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_and_reports_errors),
      cmocka_unit_test(refuses_deep_nesting),
      cmocka_unit_test(looks_up_keys_case_insensitively),
      cmocka_unit_test(exact_key_wins_over_other_casings),
      cmocka_unit_test(dumps_compactly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
