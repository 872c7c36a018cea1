/* startup_clock: the /proc/self/stat start time, and the two clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "base/startup_clock.h"

static void parses_field_22_after_the_last_parenthesis(void **state) {
  (void)state;
  unsigned long long ticks = 0;
  /* A name with a space and a ')' in it: fields are counted after the last ')'. */
  const char *line = "4242 (odd) name) S 1 4242 4242 0 -1 4194560 120 0 0 0 1 0 0 0 20 0 "
                     "1 0 987654 10000 200 18446744073709551615\n";
  assert_true(startup_clock_parse_starttime(line, &ticks));
  assert_int_equal(ticks, 987654);
  assert_true(startup_clock_parse_starttime(
      "1 (handler) R 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 17", &ticks));
  assert_int_equal(ticks, 17);
}

static void refuses_malformed_lines(void **state) {
  (void)state;
  unsigned long long ticks = 7;
  assert_false(startup_clock_parse_starttime(NULL, &ticks));
  assert_false(startup_clock_parse_starttime("", &ticks));
  assert_false(startup_clock_parse_starttime("1 handler S 1 2 3", &ticks));
  assert_false(startup_clock_parse_starttime("1 (handler) S 1 2 3 4 5", &ticks));
  assert_false(startup_clock_parse_starttime(
      "1 (h) R 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12x 5", &ticks));
  assert_int_equal(ticks, 7);
}

static void since_exec_is_at_least_since_main(void **state) {
  (void)state;
  startup_clock_mark();
  struct timespec nap = {0, 20 * 1000 * 1000};
  nanosleep(&nap, NULL);
  double main_ms = startup_clock_since_main_ms();
  double exec_ms = startup_clock_since_exec_ms();
  assert_true(main_ms >= 20.0);
  assert_true(main_ms < 5000.0);
  /* /proc is mounted where the tests run; the process started before the mark. */
  assert_true(exec_ms >= main_ms);
  assert_true(exec_ms < 600000.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_field_22_after_the_last_parenthesis),
      cmocka_unit_test(refuses_malformed_lines),
      cmocka_unit_test(since_exec_is_at_least_since_main),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
