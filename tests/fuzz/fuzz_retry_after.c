/* Fuzz target: the server-requested delay. The input is split on newlines into
 * up to three header values (retry-after-ms, x-ms-retry-after-ms, Retry-After;
 * a single line is tried as each of them), read by retry_after_from_headers()
 * and retry_delay_ms(); every line is also parsed as an HTTP date and as an
 * ISO-8601 time. The delay must be -1 or not negative, and the policy's delay
 * never negative. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "base/log.h"
#include "azure/retry.h"
#include "base/timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_MS INT64_C(1709816400000) /* 2024-03-07T13:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet();
  char *text = fuzz_text(data, size);
  if (!text)
    return 0;
  char *line[3] = {NULL, NULL, NULL};
  size_t lines = 0;
  for (char *p = text; p && lines < 3; lines++) {
    line[lines] = p;
    p = strchr(p, '\n');
    if (p)
      *p++ = '\0';
  }

  int64_t delay;
  if (lines == 1) {
    if ((delay = retry_after_from_headers(line[0], NULL, NULL, NOW_MS)) < -1 ||
        (delay = retry_after_from_headers(NULL, line[0], NULL, NOW_MS)) < -1 ||
        (delay = retry_after_from_headers(NULL, NULL, line[0], NOW_MS)) < -1)
      abort();
  }
  if (retry_after_from_headers(line[0], line[1], line[2], NOW_MS) < -1)
    abort();
  for (int attempt = 0; attempt < 20; attempt += 7) {
    if (retry_delay_ms(&RETRY_POLICY_DEFAULT, attempt, line[0], line[1], line[2], NOW_MS,
                       (uint32_t)size * 2654435761u) < 0)
      abort();
  }
  for (size_t i = 0; i < lines; i++) {
    int64_t ms;
    char buf[64];
    if (time_parse_http_date(line[i], &ms))
      time_format_iso8601(ms, buf, sizeof buf);
    if (time_parse_iso8601_ms(line[i], &ms)) {
      time_format_iso8601(ms, buf, sizeof buf);
      time_format_duration(ms, buf, sizeof buf);
    }
  }
  free(text);
  return 0;
}
