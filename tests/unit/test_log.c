/* log: the start-up hold (the listening line first, the rest after it in order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/log.h"

static FILE *out;
static FILE *err;

static int setup(void **state) {
  (void)state;
  out = tmpfile();
  err = tmpfile();
  log_set_streams(out, err);
  log_set_level(LOG_DEBUG);
  return out && err ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  log_release();
  log_set_streams(NULL, NULL);
  log_set_level(LOG_INFO);
  fclose(out);
  fclose(err);
  return 0;
}

/* Everything written to `f` so far. */
static const char *contents(FILE *f) {
  static char buf[16384];
  fflush(f);
  long end = ftell(f);
  rewind(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fseek(f, end, SEEK_SET);
  return buf;
}

static void held_lines_follow_the_release_line_in_order(void **state) {
  (void)state;
  log_hold();
  log_info("event=one");
  log_debug("event=two");
  assert_string_equal(contents(out), "");
  log_release_after("event=listening port=%d", 7);
  assert_string_equal(contents(out), "level=info event=listening port=7\n"
                                     "level=info event=one\n"
                                     "level=debug event=two\n");
  log_info("event=three"); /* no longer held */
  assert_non_null(strstr(contents(out), "event=two\nlevel=info event=three\n"));
}

static void warnings_and_errors_are_never_held(void **state) {
  (void)state;
  log_hold();
  log_info("event=held");
  log_warn("event=careful");
  log_error("event=broken");
  assert_string_equal(contents(err),
                      "level=warn event=careful\nlevel=error event=broken\n");
  assert_string_equal(contents(out), "");
  log_release(); /* a failed start-up: what was held still goes out */
  assert_string_equal(contents(out), "level=info event=held\n");
}

static void at_most_log_hold_max_lines_wait(void **state) {
  (void)state;
  log_hold();
  for (int i = 0; i < LOG_HOLD_MAX + 3; i++)
    log_info("event=n%d", i);
  /* The three beyond the limit went out at once. */
  char expected[256];
  snprintf(expected, sizeof expected,
           "level=info event=n%d\nlevel=info event=n%d\n"
           "level=info event=n%d\n",
           LOG_HOLD_MAX, LOG_HOLD_MAX + 1, LOG_HOLD_MAX + 2);
  assert_string_equal(contents(out), expected);
  log_release_after("event=first");
  const char *all = contents(out);
  assert_non_null(strstr(all, "level=info event=first\nlevel=info event=n0\n"));
  char last[64];
  snprintf(last, sizeof last, "event=n%d\n", LOG_HOLD_MAX - 1);
  assert_non_null(strstr(all, last));
}

static void release_without_a_hold_writes_the_line(void **state) {
  (void)state;
  log_release_after("event=alone");
  assert_string_equal(contents(out), "level=info event=alone\n");
  log_set_level(LOG_WARN); /* info off: the line is skipped */
  log_release_after("event=quiet");
  assert_string_equal(contents(out), "level=info event=alone\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(held_lines_follow_the_release_line_in_order, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(warnings_and_errors_are_never_held, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(at_most_log_hold_max_lines_wait, setup, teardown),
      cmocka_unit_test_setup_teardown(release_without_a_hold_writes_the_line, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
