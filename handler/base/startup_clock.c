/* Start-up time since exec and since main(); see startup_clock.h. */
#include "base/startup_clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct timespec main_entry; /* written once, before any thread starts */

static double elapsed_ms(const struct timespec *from, const struct timespec *to) {
  return (double)(to->tv_sec - from->tv_sec) * 1e3 +
         (double)(to->tv_nsec - from->tv_nsec) / 1e6;
}

void startup_clock_mark(void) {
  clock_gettime(CLOCK_MONOTONIC, &main_entry);
}

double startup_clock_since_main_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return elapsed_ms(&main_entry, &now);
}

bool startup_clock_parse_starttime(const char *stat_line, unsigned long long *ticks) {
  const char *p = stat_line ? strrchr(stat_line, ')') : NULL;
  if (!p)
    return false;
  p++;
  /* After the name: field 3 (state) ... field 22 (starttime): skip 19 fields. */
  for (int field = 3; field < 22; field++) {
    while (*p == ' ')
      p++;
    if (!*p)
      return false;
    while (*p && *p != ' ')
      p++;
  }
  while (*p == ' ')
    p++;
  if (*p < '0' || *p > '9')
    return false;
  char *end;
  errno = 0;
  unsigned long long value = strtoull(p, &end, 10);
  if (errno || (*end && *end != ' ' && *end != '\n'))
    return false;
  *ticks = value;
  return true;
}

double startup_clock_since_exec_ms(void) {
  FILE *f = fopen("/proc/self/stat", "re");
  if (!f)
    return -1;
  char line[1024];
  bool read = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  unsigned long long ticks;
  long hz = sysconf(_SC_CLK_TCK);
  struct timespec boot;
  if (!read || hz <= 0 || !startup_clock_parse_starttime(line, &ticks) ||
      clock_gettime(CLOCK_BOOTTIME, &boot) != 0)
    return -1;
  double since_boot_ms = (double)boot.tv_sec * 1e3 + (double)boot.tv_nsec / 1e6;
  double ms = since_boot_ms - (double)ticks * 1e3 / (double)hz;
  double since_main = startup_clock_since_main_ms();
  return ms < since_main ? since_main : ms;
}
