/* Line-oriented key=value logging; see log.h for the stream and safety rules. */
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

static atomic_int min_level = LOG_INFO;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out_stream;
static FILE *err_stream;
static _Thread_local char invocation[80];

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

void log_write(enum log_level level, const char *fmt, ...) {
  if (!log_enabled(level))
    return;
  char message[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);

  char safe[4096];
  escape_controls(safe, sizeof safe, message);

  FILE *stream = level >= LOG_WARN ? (err_stream ? err_stream : stderr)
                                   : (out_stream ? out_stream : stdout);
  pthread_mutex_lock(&out_lock);
  if (invocation[0])
    fprintf(stream, "level=%s invocation_id=%s %s\n", level_names[level], invocation,
            safe);
  else
    fprintf(stream, "level=%s %s\n", level_names[level], safe);
  fflush(stream);
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
