/* Unit tests of the invocation payload: the event as object, string or
 * double-encoded string; bodies that are not invocations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "host/invocation.h"

static int parse(const char *body, struct invocation *inv, struct error_info *err) {
  return invocation_parse(body, strlen(body), "event", inv, err);
}

static void decodes_every_encoding(void **state) {
  const char *bodies[] = {
      "{\"Data\":{\"event\":{\"id\":\"e\"}},\"Metadata\":{}}",
      "{\"Data\":{\"event\":\"{\\\"id\\\":\\\"e\\\"}\"}}",
      "{\"Data\":{\"event\":\"\\\"{\\\\\\\"id\\\\\\\":\\\\\\\"e\\\\\\\"}\\\"\"}}",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    struct invocation inv;
    struct error_info err;
    assert_int_equal(parse(bodies[i], &inv, &err), RESULT_OK);
    assert_non_null(inv.event);
    assert_string_equal(json_string_value(json_object_get(inv.event, "id")), "e");
    invocation_cleanup(&inv);
  }
}

static void uses_the_only_binding_when_the_name_differs(void **state) {
  struct invocation inv;
  struct error_info err;
  assert_int_equal(parse("{\"Data\":{\"other\":{\"id\":\"x\"}}}", &inv, &err), RESULT_OK);
  assert_non_null(inv.event);
  invocation_cleanup(&inv);
}

static void refuses_what_is_not_an_invocation(void **state) {
  const char *bodies[] = {"", "not json", "[]", "{\"Metadata\":{}}", "{\"Data\":\"x\"}"};
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    struct invocation inv;
    struct error_info err;
    error_clear(&err);
    assert_int_equal(parse(bodies[i], &inv, &err), RESULT_INVALID);
    assert_true(strlen(err.message) > 0);
  }
}

static void an_undecodable_event_is_kept_for_the_rejected_record(void **state) {
  struct invocation inv;
  struct error_info err;
  assert_int_equal(parse("{\"Data\":{\"event\":\"{broken\"}}", &inv, &err), RESULT_OK);
  assert_null(inv.event);
  assert_non_null(inv.raw_event);
  assert_non_null(strstr(inv.event_error.message, "could not be decoded"));
  invocation_cleanup(&inv);

  assert_int_equal(parse("{\"Data\":{\"a\":1,\"b\":2}}", &inv, &err), RESULT_OK);
  assert_null(inv.event);
  assert_non_null(strstr(inv.event_error.message, "no event"));
  invocation_cleanup(&inv);

  assert_int_equal(parse("{\"Data\":{\"event\":\"42\"}}", &inv, &err), RESULT_OK);
  assert_null(inv.event);
  invocation_cleanup(&inv);
}

/* The host repeats the event's data in Metadata: with an event it is not
 * built (the handler never reads it); without one, the whole body is kept for
 * the rejected record. */
static void builds_metadata_only_for_a_rejected_record(void **state) {
  struct invocation inv;
  struct error_info err;
  assert_int_equal(parse("{\"Data\":{\"event\":{\"id\":\"e\"}},\"Metadata\":{\"data\":"
                         "{\"big\":[1,2,3]},\"sys\":{\"MethodName\":\"f\"}}}",
                         &inv, &err),
                   RESULT_OK);
  assert_non_null(inv.event);
  assert_null(json_object_get(inv.root, "Metadata"));
  invocation_cleanup(&inv);

  assert_int_equal(
      parse("{\"Data\":{\"a\":1,\"b\":2},\"Metadata\":{\"data\":{\"big\":[1]},"
            "\"sys\":{\"MethodName\":\"f\"}}}",
            &inv, &err),
      RESULT_OK);
  assert_null(inv.raw_event);
  json_t *metadata = json_object_get(inv.root, "Metadata");
  assert_non_null(json_object_get(metadata, "data"));
  invocation_cleanup(&inv);

  /* Metadata is still checked: a body that is not JSON there is refused */
  assert_int_equal(
      parse("{\"Data\":{\"event\":{}},\"Metadata\":{\"data\":[1,}}", &inv, &err),
      RESULT_INVALID);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(decodes_every_encoding),
      cmocka_unit_test(uses_the_only_binding_when_the_name_differs),
      cmocka_unit_test(refuses_what_is_not_an_invocation),
      cmocka_unit_test(an_undecodable_event_is_kept_for_the_rejected_record),
      cmocka_unit_test(builds_metadata_only_for_a_rejected_record),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
