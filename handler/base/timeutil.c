/* Clocks and time formats; see timeutil.h. */
#include "base/timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static time_clock_fn wall_clock;
static time_clock_fn mono_clock;

void time_set_clock(time_clock_fn wall, time_clock_fn mono) {
  wall_clock = wall;
  mono_clock = mono;
}

int64_t time_now_ms(void) {
  if (wall_clock)
    return wall_clock();
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_mono_ms(void) {
  if (mono_clock)
    return mono_clock();
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec time_mono_timespec(int64_t deadline_ms) {
  int64_t left = deadline_ms - time_mono_ms();
  if (left < 0)
    left = 0;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t)(left / 1000);
  ts.tv_nsec += (long)(left % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's method). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static bool read_digits(const char **p, int count, int *out) {
  int v = 0;
  for (int i = 0; i < count; i++) {
    if (!isdigit((unsigned char)(*p)[i]))
      return false;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += count;
  *out = v;
  return true;
}

bool time_parse_iso8601_ms(const char *text, int64_t *out_ms) {
  if (!text)
    return false;
  const char *p = text;
  int y, mo, d, h, mi, s;
  if (!read_digits(&p, 4, &y) || *p++ != '-' || !read_digits(&p, 2, &mo) || *p++ != '-' ||
      !read_digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
    return false;
  p++;
  if (!read_digits(&p, 2, &h) || *p++ != ':' || !read_digits(&p, 2, &mi) || *p++ != ':' ||
      !read_digits(&p, 2, &s))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
    return false;
  int ms = 0;
  if (*p == '.' || *p == ',') {
    p++;
    if (!isdigit((unsigned char)*p))
      return false;
    int scale = 100;
    for (; isdigit((unsigned char)*p); p++) {
      ms += (*p - '0') * scale;
      scale /= 10;
    }
  }
  int offset_min = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
    if (!read_digits(&p, 2, &oh))
      return false;
    if (*p == ':')
      p++;
    if (*p && !read_digits(&p, 2, &om))
      return false;
    offset_min = sign * (oh * 60 + om);
  }
  if (*p != '\0')
    return false;
  int64_t days = days_from_civil(y, mo, d);
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + s - (int64_t)offset_min * 60;
  *out_ms = secs * 1000 + ms;
  return true;
}

void time_format_iso8601(int64_t ms, char *buf, size_t buf_size) {
  time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  int frac = (int)(ms - (int64_t)secs * 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(buf, buf_size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

void time_format_duration(int64_t ms, char *buf, size_t buf_size) {
  if (ms < 0)
    ms = 0;
  int64_t days = ms / 86400000;
  int64_t rest = ms % 86400000;
  int h = (int)(rest / 3600000), m = (int)(rest / 60000 % 60),
      s = (int)(rest / 1000 % 60);
  int frac = (int)(rest % 1000);
  if (days > 0)
    snprintf(buf, buf_size, "%lld.%02d:%02d:%02d.%03d0000", (long long)days, h, m, s,
             frac);
  else
    snprintf(buf, buf_size, "%02d:%02d:%02d.%03d0000", h, m, s, frac);
}

bool time_parse_http_date(const char *text, int64_t *out_ms) {
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  if (!text)
    return false;
  char wday[4], mon[4], zone[4];
  int d, y, h, mi, s, n = 0;
  if (sscanf(text, "%3s, %2d %3s %4d %2d:%2d:%2d %3s%n", wday, &d, mon, &y, &h, &mi, &s,
             zone, &n) != 8 ||
      text[n] != '\0' || strcmp(zone, "GMT") != 0)
    return false;
  const char *m = strstr(months, mon);
  if (!m || strlen(mon) != 3 || (m - months) % 3 != 0)
    return false;
  int mo = (int)(m - months) / 3 + 1;
  if (d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
    return false;
  *out_ms = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1000;
  return true;
}
