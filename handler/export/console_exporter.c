/* The console exporter: each record as one JSON line on stdout, which the
 * Functions host logs at Information level. Used when no App Insights connection
 * string is configured (local runs, `func start`, the demo). */
#include <stdlib.h>

#include "core/exporter.h"
#include "base/log.h"

static int console_export(struct exporter *self, const struct record *const *records,
                          size_t count, int64_t deadline_ms, struct error_info *err) {
  for (size_t i = 0; i < count; i++) {
    json_t *json = record_to_json(records[i]);
    char *line = json ? jsonx_dump(json) : NULL;
    json_decref(json);
    if (!line)
      return error_set(err, RESULT_NOMEM, "", "out of memory writing a record");
    log_stdout_line(line);
    free(line);
  }
  return RESULT_OK;
}

static void console_free(struct exporter *self) {
  free(self);
}

struct exporter *console_exporter_new(void) {
  struct exporter *exp = calloc(1, sizeof *exp);
  if (!exp)
    return NULL;
  exp->name = "console";
  exp->export_records = console_export;
  exp->free = console_free;
  return exp;
}
