/* Fuzz target: a request body as the Functions host would POST it, through the
 * host protocol and the whole pipeline (payload, event model, workspace filter, record)
 * to an exporter that serialises and drops the record. Nothing the host can send may
 * crash the handler or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "core/config.h"
#include "core/exporter.h"
#include "host/function_app.h"
#include "base/log.h"
#include "core/pipeline.h"
#include "host/responder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int serialise_and_drop(struct exporter *self, const struct record *const *records,
                              size_t count, int64_t deadline_ms, struct error_info *err) {
  for (size_t i = 0; i < count; i++) {
    fuzz_serialise(records[i]);
  }
  return RESULT_OK;
}

static const char *watch_one(void *ctx, const char *name) {
  return strcmp(name, "AML_WORKSPACES") == 0
             ? "/subscriptions/s/resourceGroups/g/providers/"
               "Microsoft.MachineLearningServices/workspaces/w"
             : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct config cfg;
  static struct function_app app;
  static struct function_def fn = {.name = "function_app", .binding = "event"};
  static const char *names[] = {"function_app", NULL};
  static struct exporter exporter = {.name = "fuzz",
                                     .export_records = serialise_and_drop};
  static struct pipeline *pipe;
  static struct responder *proc;
  if (!proc) {
    log_set_level(LOG_OFF);
    struct error_info err;
    if (config_load(&cfg, watch_one, NULL, &err) != RESULT_OK)
      abort();
    app = (struct function_app){.functions = &fn, .count = 1, .names = names};
    struct pipeline_options options = {.config = &cfg, .exporter = &exporter};
    struct responder_options ropts = {.app = &app,
                                      .invocation_budget_ms = cfg.invocation_budget_ms};
    if (!(pipe = pipeline_new(&options)) || !(ropts.pipeline = pipe) ||
        !(proc = responder_new(&ropts)))
      abort();
  }
  char *body = fuzz_text(data, size);
  if (!body)
    return 0;
  struct server_request request = {.function = "function_app",
                                   .invocation_id = "fuzz",
                                   .body = body,
                                   .body_len = size};
  struct server_response response = {0};
  responder_invoke(proc, &request, &response);
  free(response.body);
  free(body);
  return 0;
}
