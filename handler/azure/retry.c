/* The retry policy of azure-core as pure functions; see retry.h.
 *
 * Server-requested delays are parsed strictly (digits, an ignored fraction, blanks
 * around): anything else, negative numbers included, is ignored and the next
 * header is tried. Every delay is clamped to one hour so arithmetic cannot
 * overflow; the caller's deadline is what really bounds the wait. The backoff is
 * base * 2^attempt capped at max_delay_ms, times a jitter factor in [0.8, 1.2)
 * taken from the caller's random value. Threading: no state at all. */
#include "azure/retry.h"

#include <ctype.h>
#include <stdlib.h>

#include "base/timeutil.h"

/* A server asking for more than this is clamped: the caller's deadline decides
 * anyway, and an absurd value must not overflow arithmetic. */
#define MAX_SERVER_DELAY_MS (3600 * 1000LL)

const struct retry_policy RETRY_POLICY_DEFAULT = {
    .max_attempts = 5, .base_delay_ms = 200, .max_delay_ms = 8000};

bool retry_status_is_retryable(long status) {
  switch (status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return true;
    default:
      return false;
  }
}

/* A non-negative decimal number (optionally with a fraction, which is dropped),
 * surrounded by optional blanks; -1 when the text is anything else. */
static int64_t parse_decimal(const char *text) {
  if (!text)
    return -1;
  while (isspace((unsigned char)*text))
    text++;
  if (!isdigit((unsigned char)*text))
    return -1;
  int64_t v = 0;
  for (; isdigit((unsigned char)*text); text++)
    if ((v = v * 10 + (*text - '0')) > MAX_SERVER_DELAY_MS)
      v = MAX_SERVER_DELAY_MS;
  if (*text == '.')
    for (text++; isdigit((unsigned char)*text); text++)
      ;
  while (isspace((unsigned char)*text))
    text++;
  return *text ? -1 : v;
}

int64_t retry_after_from_headers(const char *retry_after_ms,
                                 const char *x_ms_retry_after_ms, const char *retry_after,
                                 int64_t now_ms) {
  int64_t v = parse_decimal(retry_after_ms);
  if (v >= 0)
    return v;
  if ((v = parse_decimal(x_ms_retry_after_ms)) >= 0)
    return v;
  if ((v = parse_decimal(retry_after)) >= 0)
    return v >= MAX_SERVER_DELAY_MS / 1000 ? MAX_SERVER_DELAY_MS : v * 1000;
  int64_t when;
  if (time_parse_http_date(retry_after, &when)) {
    int64_t delay = when - now_ms;
    return delay < 0 ? 0 : delay > MAX_SERVER_DELAY_MS ? MAX_SERVER_DELAY_MS : delay;
  }
  return -1;
}

int64_t retry_delay_ms(const struct retry_policy *policy, int attempt,
                       const char *retry_after_ms, const char *x_ms_retry_after_ms,
                       const char *retry_after, int64_t now_ms, uint32_t random) {
  int64_t server =
      retry_after_from_headers(retry_after_ms, x_ms_retry_after_ms, retry_after, now_ms);
  if (server >= 0)
    return server;
  int64_t delay = policy->base_delay_ms;
  for (int i = 0; i < attempt && delay < policy->max_delay_ms; i++)
    delay *= 2;
  if (delay > policy->max_delay_ms)
    delay = policy->max_delay_ms;
  /* Jitter: 80% to 120% of the delay, so concurrent clients spread out. */
  return delay * 8 / 10 + (int64_t)(random % 1000) * (delay * 4 / 10) / 1000;
}
