/* The retry policy, as azure-core has it: a pure function of the attempt number
 * and the answer's headers, so it is tested without sleeping.
 *
 * Retryable: transport errors, and 408, 429, 500, 502, 503, 504. The delay is
 * the server's `retry-after-ms`, else `x-ms-retry-after-ms`, else `Retry-After`
 * (seconds or an HTTP date), else exponential backoff (base * 2^attempt, capped)
 * with jitter. The caller stops when the delay would pass its deadline.
 * Thread-safe: no shared state. */
#ifndef HANDLER_RETRY_H
#define HANDLER_RETRY_H

#include <stdbool.h>
#include <stdint.h>

struct retry_policy {
  int max_attempts;      /* including the first; default 5 */
  int64_t base_delay_ms; /* default 200 */
  int64_t max_delay_ms;  /* default 8000 */
};

extern const struct retry_policy RETRY_POLICY_DEFAULT;

bool retry_status_is_retryable(long status);

/* Delay before attempt `attempt + 1` (attempt counts from 0 = the first try).
 * Header values may be NULL. `now_ms` is the wall clock (for HTTP dates);
 * `random` is a uniformly random 32-bit value for the jitter. */
int64_t retry_delay_ms(const struct retry_policy *policy, int attempt,
                       const char *retry_after_ms, const char *x_ms_retry_after_ms,
                       const char *retry_after, int64_t now_ms, uint32_t random);

/* The server-requested delay alone, or -1 when none of the headers is usable. */
int64_t retry_after_from_headers(const char *retry_after_ms,
                                 const char *x_ms_retry_after_ms, const char *retry_after,
                                 int64_t now_ms);

#endif
