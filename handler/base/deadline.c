/* Monotonic-clock condition waits; see deadline.h. */
#include "base/deadline.h"

#include <errno.h>
#include <time.h>

#include "base/timeutil.h"

int deadline_cond_init(pthread_cond_t *cond) {
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0)
    return RESULT_NOMEM;
  int failed = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
               pthread_cond_init(cond, &attr) != 0;
  pthread_condattr_destroy(&attr);
  return failed ? RESULT_NOMEM : RESULT_OK;
}

bool deadline_wait(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms) {
  if (deadline_ms - time_mono_ms() <= 0)
    return false;
  struct timespec ts = time_mono_timespec(deadline_ms);
  return pthread_cond_timedwait(cond, lock, &ts) != ETIMEDOUT;
}
