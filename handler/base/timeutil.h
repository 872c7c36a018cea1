/* Time: clocks, and the time formats the protocols use.
 *
 * AML and Event Grid send ISO-8601 times with offsets and 0-7 fractional
 * digits; App Insights wants ISO-8601 UTC with "Z" and durations as
 * "d.hh:mm:ss.fffffff"; Retry-After may be an HTTP date. All conversions are
 * pure functions. The clocks can be replaced in tests (time_set_clock).
 * Thread-safe, except time_set_clock (call it before starting threads). */
#ifndef HANDLER_TIMEUTIL_H
#define HANDLER_TIMEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Wall clock, milliseconds since the Unix epoch. */
int64_t time_now_ms(void);
/* Monotonic clock in milliseconds, for deadlines and timeouts. */
int64_t time_mono_ms(void);

/* The CLOCK_MONOTONIC time, as a timespec for pthread_cond_timedwait on a
 * condition set to CLOCK_MONOTONIC, at which `deadline_ms` (on time_mono_ms's
 * scale) falls. Taken as now + the time left, so a test clock shifts it too. */
struct timespec time_mono_timespec(int64_t deadline_ms);

/* Test hook: replace both clocks (NULL restores the system's). */
typedef int64_t (*time_clock_fn)(void);
void time_set_clock(time_clock_fn wall, time_clock_fn mono);

/* "2024-01-02T03:04:05.123Z", "...+02:00", "...05" (UTC assumed), fractions of any
 * length (extra digits beyond milliseconds are dropped). False when malformed. */
bool time_parse_iso8601_ms(const char *text, int64_t *out_ms);

/* Writes "2024-01-02T03:04:05.123Z" into buf (at least 25 bytes). */
void time_format_iso8601(int64_t ms, char *buf, size_t buf_size);

/* App Insights duration "d.hh:mm:ss.fffffff" (days omitted when zero); negative
 * durations are written as zero. buf needs at least 32 bytes. */
void time_format_duration(int64_t ms, char *buf, size_t buf_size);

/* RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). False when malformed. */
bool time_parse_http_date(const char *text, int64_t *out_ms);

#endif
