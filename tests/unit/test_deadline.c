/* Unit tests of deadline: timed waits on the monotonic clock end at the
 * deadline, at once when it has passed, and early when signalled. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/deadline.h"
#include "base/timeutil.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;

static void waits_until_the_deadline(void **state) {
  assert_int_equal(deadline_cond_init(&cond), RESULT_OK);
  pthread_mutex_lock(&lock);
  int64_t start = time_mono_ms();
  assert_false(deadline_wait(&cond, &lock, start - 1)); /* passed: no wait */
  assert_true(time_mono_ms() - start < 50);
  start = time_mono_ms();
  bool signalled = true;
  while (signalled && time_mono_ms() < start + 120)
    signalled = deadline_wait(&cond, &lock, start + 120);
  assert_false(signalled);
  int64_t waited = time_mono_ms() - start;
  assert_true(waited >= 120);
  assert_true(waited < 1000);
  pthread_mutex_unlock(&lock);
  pthread_cond_destroy(&cond);
}

static void *signal_soon(void *arg) {
  (void)arg;
  pthread_mutex_lock(&lock);
  pthread_cond_signal(&cond);
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void a_signal_ends_the_wait_early(void **state) {
  assert_int_equal(deadline_cond_init(&cond), RESULT_OK);
  pthread_mutex_lock(&lock);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, signal_soon, NULL), 0);
  int64_t start = time_mono_ms();
  bool signalled = deadline_wait(&cond, &lock, start + 10000);
  pthread_mutex_unlock(&lock);
  pthread_join(t, NULL);
  assert_true(signalled);
  assert_true(time_mono_ms() - start < 5000);
  pthread_cond_destroy(&cond);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(waits_until_the_deadline),
      cmocka_unit_test(a_signal_ends_the_wait_early),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
