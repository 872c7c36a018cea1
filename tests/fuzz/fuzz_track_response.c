/* Fuzz target: what App Insights ingestion answers to a track POST. The track
 * response parser (judge_items) is static in appinsights.c, so it is reached
 * through a real exporter whose transport answers from the input: line 1 is the
 * status code (206 when not a number), line 2 the Location header (empty: none),
 * the rest the body (a TrackResponse: itemsReceived, itemsAccepted,
 * errors[{index, statusCode, message}]). Any later POST (a retry, a redirect)
 * is answered 200, so every export ends. Three records go out per input, so
 * indexes in and out of range both occur. A fresh exporter per input keeps runs
 * independent (a redirect changes the exporter's URL for good). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "export/appinsights_testing.h"
#include "core/config.h"
#include "core/exporter.h"
#include "base/log.h"
#include "core/record.h"
#include "base/timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct answer {
  long status;
  const char *location; /* NUL-terminated or NULL */
  const char *body;
  size_t body_len;
  int calls;
};

static char *dup_n(const char *text, size_t len) {
  char *copy = malloc(len + 1);
  if (copy) {
    memcpy(copy, text, len);
    copy[len] = '\0';
  }
  return copy;
}

static int answer_from_input(void *ctx, const struct http_request *request,
                             struct http_response *out, struct error_info *err) {
  struct answer *a = ctx;
  memset(out, 0, sizeof *out);
  if (a->calls++ > 0) {
    out->status = 200;
    out->body = dup_n("{\"itemsReceived\":1,\"itemsAccepted\":1,\"errors\":[]}", 49);
    out->body_len = out->body ? 49 : 0;
    return out->body ? RESULT_OK : RESULT_NOMEM;
  }
  out->status = a->status;
  out->body = dup_n(a->body, a->body_len);
  out->body_len = a->body_len;
  if (a->location)
    out->location = strdup(a->location);
  return out->body ? RESULT_OK : RESULT_NOMEM;
}

static const char *no_env(void *ctx, const char *name) {
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned long serial;
  fuzz_quiet();
  char *text = dup_n((const char *)data, size);
  if (!text)
    return 0;
  struct answer a = {.status = 206};
  char *line2 = memchr(text, '\n', size);
  char *rest = line2 ? memchr(line2 + 1, '\n', size - (size_t)(line2 + 1 - text)) : NULL;
  if (line2 && rest) {
    *line2++ = '\0';
    *rest++ = '\0';
    char *end;
    long status = strtol(text, &end, 10);
    if (end != text && status >= 100 && status <= 599)
      a.status = status;
    a.location = *line2 ? line2 : NULL;
    a.body = rest;
    a.body_len = size - (size_t)(rest - text);
  } else {
    a.body = text;
    a.body_len = size;
  }

  struct config cfg = {.appinsights_connection_string =
                           "InstrumentationKey=00000000-0000-4000-8000-"
                           "000000000001;IngestionEndpoint=https://"
                           "dc.example.com/",
                       .appinsights_setting = "APPLICATIONINSIGHTS_CONNECTION_STRING"};
  struct appinsights_tuning tuning = {
      .window_ms = 1,
      .retry = {.max_attempts = 3, .base_delay_ms = 1, .max_delay_ms = 2},
      .dedup_capacity = 16};
  struct exporter *exp = NULL;
  struct error_info err = {0};
  if (appinsights_exporter_new_with(&cfg, no_env, NULL, &tuning, &exp, &err) != RESULT_OK)
    abort();
  appinsights_exporter_set_transport_for_test(exp, answer_from_input, &a);

  struct record recs[3];
  const struct record *ptrs[3];
  for (int i = 0; i < 3; i++) {
    char id[32];
    record_init(&recs[i]);
    snprintf(recs[i].name, sizeof recs[i].name, "AmlFuzz");
    snprintf(id, sizeof id, "fuzz-%lu", serial++);
    record_set_string(&recs[i], REC_EVENT_ID, id);
    ptrs[i] = &recs[i];
  }
  exp->export_records(exp, ptrs, 3, time_mono_ms() + 2000, &err);
  exp->free(exp);
  for (int i = 0; i < 3; i++)
    record_cleanup(&recs[i]);
  free(text);
  return 0;
}
