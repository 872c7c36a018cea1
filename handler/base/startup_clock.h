/* How long start-up took: from the exec of this process, and from main().
 *
 * The Functions host gives a custom handler 30 s to listen (longer and it restarts
 * it), so the handler says in its first log line how long it took. Part of a program's
 * start-up happens before main() (exec, the loader, and for a dynamically linked build
 * mapping and relocating its libraries), so the time since exec is read from the
 * kernel: field 22 of /proc/self/stat, the start time in clock ticks
 * (sysconf(_SC_CLK_TCK), 100 a second on Linux) after boot, against CLOCK_BOOTTIME.
 * That reading is coarse: it can be up to one tick (10 ms) more than the truth, never
 * less. The time since main() is CLOCK_MONOTONIC.
 *
 * startup_clock_mark() must be the first thing main() does; the rest may be called
 * from any thread once it has. */
#ifndef HANDLER_STARTUP_CLOCK_H
#define HANDLER_STARTUP_CLOCK_H

#include <stdbool.h>

#include "base/result.h"

/* Remembers "now" as the entry of main(). */
void startup_clock_mark(void);

/* Milliseconds since startup_clock_mark(). */
double startup_clock_since_main_ms(void);

/* Milliseconds since the process was exec'd (at least since_main), or -1 when
 * /proc/self/stat cannot be read (no /proc mounted). */
double startup_clock_since_exec_ms(void);

/* The start time (field 22, in clock ticks) of a /proc/<pid>/stat line. The
 * command name (field 2) is in parentheses and may hold spaces and ')', so
 * fields are counted after its last ')'. False when the line is malformed. */
HANDLER_NODISCARD bool startup_clock_parse_starttime(const char *stat_line,
                                                     unsigned long long *ticks);

#endif
