/* Unit tests of the cost arithmetic and the record fields it sets: price x
 * nodes x hours; a pipeline's total carries no VM; an unknown cost clears every
 * cost key and keeps only the reason; unusable inputs never become a price. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cost/cost.h"
#include "record_assert.h"

static void price_times_nodes_times_hours(void **state) {
  assert_float_equal(cost_usd(0.192, 2, 90 * 60 * 1000), 0.576, 1e-12);
  assert_float_equal(cost_usd(3.06, 1, 1000), 3.06 / 3600, 1e-12);
  assert_true(cost_usd(0.192, 4, 0) == 0);
  assert_true(isnan(cost_usd(-1, 1, 1000)));
  assert_true(isnan(cost_usd(1, NAN, 1000)));
  assert_true(isnan(cost_usd(1, 1, -5)));
}

static void fields_set_and_cleared(void **state) {
  struct record rec;
  double v;
  record_init(&rec);
  record_set_string(&rec, REC_COST_UNKNOWN_REASON, "earlier reason");
  struct cost_estimate e = {"STANDARD_NC6", "LowPriority", 3, 0.18, 2 * 3600 * 1000};
  assert_int_equal(cost_apply(&rec, &e), RESULT_OK);
  assert_field(&rec, REC_VM_SIZE, "STANDARD_NC6");
  assert_field(&rec, REC_VM_PRIORITY, "LowPriority");
  assert_field(&rec, REC_COST_UNKNOWN_REASON, NULL);
  assert_true(record_number(&rec, REC_NODE_COUNT, &v) && v == 3);
  assert_true(record_number(&rec, REC_COST_PRICE_PER_HOUR_USD, &v) && v == 0.18);
  assert_true(record_number(&rec, REC_COST_ESTIMATE_USD, &v));
  assert_float_equal(v, 1.08, 1e-12);

  assert_int_equal(cost_set_unknown(&rec, "no price"), RESULT_OK);
  assert_field(&rec, REC_VM_SIZE, NULL);
  assert_field(&rec, REC_VM_PRIORITY, NULL);
  assert_false(record_number(&rec, REC_NODE_COUNT, &v));
  assert_false(record_number(&rec, REC_COST_ESTIMATE_USD, &v));
  assert_field(&rec, REC_COST_UNKNOWN_REASON, "no price");

  assert_int_equal(cost_apply_total(&rec, 4.5), RESULT_OK);
  assert_true(record_number(&rec, REC_COST_ESTIMATE_USD, &v) && v == 4.5);
  assert_field(&rec, REC_COST_UNKNOWN_REASON, NULL);
  assert_field(&rec, REC_VM_SIZE, NULL);

  /* A sum that overflowed is no estimate, and says so. */
  assert_int_equal(cost_apply_total(&rec, INFINITY), RESULT_OK);
  assert_false(record_number(&rec, REC_COST_ESTIMATE_USD, &v));
  assert_non_null(record_string(&rec, REC_COST_UNKNOWN_REASON));
  assert_int_equal(cost_apply_total(&rec, -1), RESULT_OK);
  assert_false(record_number(&rec, REC_COST_ESTIMATE_USD, &v));
  assert_non_null(record_string(&rec, REC_COST_UNKNOWN_REASON));

  struct cost_estimate bad = {"X", "Dedicated", 1, NAN, 1000};
  assert_int_equal(cost_apply(&rec, &bad), RESULT_OK);
  assert_false(record_number(&rec, REC_COST_ESTIMATE_USD, &v));
  assert_non_null(record_string(&rec, REC_COST_UNKNOWN_REASON));
  record_cleanup(&rec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(price_times_nodes_times_hours),
      cmocka_unit_test(fields_set_and_cleared),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
