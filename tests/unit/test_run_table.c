/* Unit tests of the run table's merge rules (run_table_merge): a new run is
 * inserted, a closed run never reopens, a terminal status closes whatever its
 * time, a newer status replaces an older one, an older event changes nothing,
 * equal times order by the run's life, the same status twice changes nothing;
 * and of the status classes the watch uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "watch/run_table.h"

#define T0 1733500000000LL /* 2024-12-06T15:46:40Z */

static json_t *stored(const char *status, const char *since, bool open) {
  return json_pack("{s:s, s:s, s:b}", "Status", status, "Since", since, "Open", open);
}

static void absent_run_is_inserted(void **state) {
  assert_int_equal(run_table_merge(NULL, "Queued", T0), RUN_MERGE_INSERT);
  assert_int_equal(run_table_merge(NULL, "Completed", T0), RUN_MERGE_INSERT);
}

static void closed_run_never_reopens(void **state) {
  json_t *e = stored("Completed", "2024-12-06T15:46:40.000Z", false);
  assert_int_equal(run_table_merge(e, "Running", T0 + 60000), RUN_MERGE_SKIP_CLOSED);
  assert_int_equal(run_table_merge(e, "Failed", T0 + 60000), RUN_MERGE_SKIP_CLOSED);
  json_decref(e);
}

static void newer_status_replaces_older_is_skipped(void **state) {
  json_t *e = stored("Running", "2024-12-06T15:46:40.000Z", true);
  assert_int_equal(run_table_merge(e, "Finalizing", T0 + 1), RUN_MERGE_REPLACE);
  assert_int_equal(run_table_merge(e, "Queued", T0 - 1), RUN_MERGE_SKIP_OLDER);
  assert_int_equal(run_table_merge(e, "Running", T0 + 5000), RUN_MERGE_SKIP_DUPLICATE);
  assert_int_equal(run_table_merge(e, "running", T0), RUN_MERGE_SKIP_DUPLICATE);
  json_decref(e);
}

static void terminal_closes_whatever_its_time(void **state) {
  json_t *e = stored("Running", "2024-12-06T15:46:40.000Z", true);
  assert_int_equal(run_table_merge(e, "Completed", T0 - 3600000), RUN_MERGE_REPLACE);
  assert_int_equal(run_table_merge(e, "Canceled", T0 + 1), RUN_MERGE_REPLACE);
  json_decref(e);
}

static void equal_times_follow_the_run_life(void **state) {
  json_t *e = stored("Queued", "2024-12-06T15:46:40.000Z", true);
  assert_int_equal(run_table_merge(e, "Running", T0), RUN_MERGE_REPLACE);
  assert_int_equal(run_table_merge(e, "NotStarted", T0), RUN_MERGE_SKIP_OLDER);
  json_decref(e);
}

static void unreadable_since_takes_the_event(void **state) {
  json_t *e = stored("Queued", "", true);
  assert_int_equal(run_table_merge(e, "Running", T0), RUN_MERGE_REPLACE);
  json_decref(e);
}

static void status_classes(void **state) {
  assert_true(run_status_is_waiting("Queued"));
  assert_true(run_status_is_waiting("provisioning"));
  assert_true(run_status_is_waiting("NotStarted"));
  assert_false(run_status_is_waiting("Running"));
  assert_false(run_status_is_waiting("Finalizing"));
  assert_true(run_status_rank("Queued") < run_status_rank("Running"));
  assert_true(run_status_rank("Running") < run_status_rank("Completed"));
  assert_int_equal(run_status_rank("Bogus"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(absent_run_is_inserted),
      cmocka_unit_test(closed_run_never_reopens),
      cmocka_unit_test(newer_status_replaces_older_is_skipped),
      cmocka_unit_test(terminal_closes_whatever_its_time),
      cmocka_unit_test(equal_times_follow_the_run_life),
      cmocka_unit_test(unreadable_since_takes_the_event),
      cmocka_unit_test(status_classes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
