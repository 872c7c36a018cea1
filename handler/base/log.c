/* Line-oriented key=value logging; see log.h for the stream and safety rules. */
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static atomic_int min_level = LOG_INFO;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out_stream;
static FILE *err_stream;
static _Thread_local char invocation[80];

/* Lines held back at start-up (log_hold), each a whole line with its newline;
 * guarded by out_lock. */
static bool holding;
static char *held[LOG_HOLD_MAX];
static size_t held_count;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int log_level_parse(const char *name) {
  if (!name)
    return -1;
  for (int i = 0; i <= LOG_OFF; i++)
    if (strcasecmp(name, level_names[i]) == 0)
      return i;
  if (strcasecmp(name, "warning") == 0)
    return LOG_WARN;
  return -1;
}

void log_set_level(enum log_level level) {
  atomic_store(&min_level, (int)level);
}

bool log_enabled(enum log_level level) {
  return (int)level >= atomic_load(&min_level) && level < LOG_OFF;
}

void log_set_invocation(const char *invocation_id) {
  snprintf(invocation, sizeof invocation, "%s", invocation_id ? invocation_id : "");
}

void log_set_streams(FILE *out, FILE *err) {
  out_stream = out;
  err_stream = err;
}

/* Escapes control characters in place-free fashion into dst (always terminated). */
static void escape_controls(char *dst, size_t dst_size, const char *src) {
  static const char hex[] = "0123456789abcdef";
  size_t j = 0;
  for (const unsigned char *p = (const unsigned char *)src; *p && j + 5 < dst_size; p++) {
    if (*p >= 0x20 && *p != 0x7f) {
      dst[j++] = (char)*p;
    } else if (*p == '\n') {
      dst[j++] = '\\';
      dst[j++] = 'n';
    } else {
      dst[j++] = '\\';
      dst[j++] = 'x';
      dst[j++] = hex[*p >> 4];
      dst[j++] = hex[*p & 15];
    }
  }
  dst[j] = '\0';
}

/* Formats one whole line ("level=... [invocation_id=...] message\n") into out. */
static void format_line(char *out, size_t out_size, enum log_level level, const char *fmt,
                        va_list ap) HANDLER_PRINTF(4, 0);
static void format_line(char *out, size_t out_size, enum log_level level, const char *fmt,
                        va_list ap) {
  char message[2048];
  vsnprintf(message, sizeof message, fmt, ap);
  char safe[4096];
  escape_controls(safe, sizeof safe, message);
  int n = invocation[0]
              ? snprintf(out, out_size, "level=%s invocation_id=%s %s\n",
                         level_names[level], invocation, safe)
              : snprintf(out, out_size, "level=%s %s\n", level_names[level], safe);
  if (n < 0 || (size_t)n >= out_size) /* cut short: still one whole line */
    memcpy(out + out_size - 2, "\n", 2);
}

static FILE *stream_for(enum log_level level) {
  return level >= LOG_WARN ? (err_stream ? err_stream : stderr)
                           : (out_stream ? out_stream : stdout);
}

/* Writes the held lines to stdout and stops holding; call with out_lock held. */
static void flush_held_locked(void) {
  FILE *stream = stream_for(LOG_INFO);
  for (size_t i = 0; i < held_count; i++) {
    fputs(held[i], stream);
    free(held[i]);
    held[i] = NULL;
  }
  held_count = 0;
  holding = false;
  fflush(stream);
}

void log_write(enum log_level level, const char *fmt, ...) {
  if (!log_enabled(level))
    return;
  char line[4300];
  va_list ap;
  va_start(ap, fmt);
  format_line(line, sizeof line, level, fmt, ap);
  va_end(ap);

  FILE *stream = stream_for(level);
  pthread_mutex_lock(&out_lock);
  if (holding && level < LOG_WARN && held_count < LOG_HOLD_MAX &&
      (held[held_count] = strdup(line)) != NULL) {
    held_count++;
  } else {
    fputs(line, stream);
    fflush(stream);
  }
  pthread_mutex_unlock(&out_lock);
}

void log_hold(void) {
  pthread_mutex_lock(&out_lock);
  holding = true;
  pthread_mutex_unlock(&out_lock);
}

void log_release_after(const char *fmt, ...) {
  char line[4300];
  bool write = log_enabled(LOG_INFO);
  if (write) {
    va_list ap;
    va_start(ap, fmt);
    format_line(line, sizeof line, LOG_INFO, fmt, ap);
    va_end(ap);
  }
  pthread_mutex_lock(&out_lock);
  if (write)
    fputs(line, stream_for(LOG_INFO));
  flush_held_locked();
  pthread_mutex_unlock(&out_lock);
}

void log_release(void) {
  pthread_mutex_lock(&out_lock);
  flush_held_locked();
  pthread_mutex_unlock(&out_lock);
}

void log_stdout_line(const char *line) {
  FILE *stream = out_stream ? out_stream : stdout;
  pthread_mutex_lock(&out_lock);
  fputs(line, stream);
  fputc('\n', stream);
  fflush(stream);
  pthread_mutex_unlock(&out_lock);
}

void log_mask(const char *secret, char *out, size_t out_size) {
  size_t n = secret ? strlen(secret) : 0;
  if (n == 0)
    snprintf(out, out_size, "(empty)");
  else if (n <= 8)
    snprintf(out, out_size, "***(%zu chars)", n);
  else
    snprintf(out, out_size, "%.4s...(%zu chars)", secret, n);
}
