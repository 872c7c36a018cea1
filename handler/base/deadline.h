/* Waiting on a condition variable until a deadline on the monotonic clock
 * (time_mono_ms), so that a change of the wall clock neither shortens nor
 * stretches a wait. Every timed wait of the handler goes through here.
 * Thread-safe: these are the pthread calls with a clock chosen. */
#ifndef HANDLER_DEADLINE_H
#define HANDLER_DEADLINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/result.h"

/* Initializes `cond` on CLOCK_MONOTONIC; RESULT_OK or RESULT_NOMEM. */
HANDLER_NODISCARD int deadline_cond_init(pthread_cond_t *cond);

/* Waits (with `lock` held) until `cond` is signalled or `deadline_ms` (on
 * time_mono_ms's scale) passes. False when the deadline has passed, at once
 * when it already had; true when signalled (or woken spuriously: callers
 * re-check their predicate). */
bool deadline_wait(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms);

#endif
