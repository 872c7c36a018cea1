/* Fuzz target: everything the AML client reads from the services, through the
 * real client (aml_client.c), so the ARM workspace, the discovery document, the
 * RunDetails and Run documents, the parent pipeline run and the metrics v2
 * answers are all read as the handler reads them. The input is a script of
 * answers separated by lines "--": the n-th request gets the n-th answer; an
 * answer may start with a line "HTTP <status>" (200 otherwise); requests past
 * the script get 404. The event is a fixed RunCompleted(Completed) of a
 * pipeline step, so every fetch is tried. A fresh client per input keeps runs
 * independent (its caches would otherwise carry answers across inputs). No
 * header the client sends may carry a CR or LF. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "aml/aml_client.h"
#include "aml/aml_client_testing.h"
#include "core/event.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "core/record.h"
#include "base/timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ANSWERS 12

static const char EVENT[] =
    "{\"id\":\"evt-1\",\"topic\":\"/subscriptions/s-1/resourceGroups/rg/providers/"
    "Microsoft.MachineLearningServices/workspaces/ws\",\"subject\":\"experiments/"
    "exp-1/runs/step-1\",\"eventType\":\"Microsoft.MachineLearningServices."
    "RunCompleted\",\"eventTime\":\"2024-03-05T10:20:30Z\",\"data\":{\"experimentId\":"
    "\"exp-1\",\"experimentName\":\"e\",\"runId\":\"step-1\",\"runType\":\"azureml."
    "StepRun\",\"runStatus\":\"Completed\",\"runTags\":{\"azureml.pipelinerunid\":"
    "\"pipe-1\",\"azureml.nodeid\":\"n1\"},\"runProperties\":{}}}";

struct script {
  const char *answer[MAX_ANSWERS];
  size_t len[MAX_ANSWERS];
  size_t count, next;
};

static int answer(void *ctx, const struct http_request *request,
                  struct http_response *out, struct error_info *err) {
  struct script *s = ctx;
  for (size_t i = 0; i < request->header_count; i++) {
    const char *v = request->headers[i].value;
    if (v && strpbrk(v, "\r\n"))
      abort();
  }
  memset(out, 0, sizeof *out);
  const char *body = "{\"error\":{\"code\":\"NotFound\"}}";
  size_t len = strlen(body);
  out->status = 404;
  if (s->next < s->count) {
    body = s->answer[s->next];
    len = s->len[s->next];
    out->status = 200;
    if (len >= 9 && memcmp(body, "HTTP ", 5) == 0) {
      /* The input is not NUL-terminated: read the digits within it. */
      long status = 0;
      for (size_t i = 5; i < len && i < 8 && body[i] >= '0' && body[i] <= '9'; i++)
        status = status * 10 + (body[i] - '0');
      out->status = status;
      const char *eol = memchr(body, '\n', len);
      len = eol ? len - (size_t)(eol + 1 - body) : 0;
      body = eol ? eol + 1 : body;
    }
    s->next++;
  }
  if (!(out->body = malloc(len + 1)))
    return RESULT_NOMEM;
  memcpy(out->body, body, len);
  out->body[len] = '\0';
  out->body_len = len;
  return RESULT_OK;
}

static int token(void *ctx, const char *scope, int64_t deadline_ms, char **out_token,
                 struct error_info *err) {
  *out_token = strdup("fuzz-token");
  return *out_token ? RESULT_OK : RESULT_NOMEM;
}

static const char *arm_env(void *ctx, const char *name) {
  return strcmp(name, "AZURE_RESOURCE_MANAGER_ENDPOINT") == 0 ? "https://arm.example.com"
                                                              : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct aml_event ev;
  static int ready;
  if (!ready) {
    fuzz_quiet();
    struct error_info err = {0};
    json_t *doc = jsonx_parse(EVENT, strlen(EVENT), JSONX_DEFAULT_MAX_DEPTH, NULL, &err);
    if (!doc || event_parse(doc, &ev, &err) != RESULT_OK)
      abort();
    json_decref(doc);
    ready = 1;
  }
  struct script s = {0};
  const char *p = (const char *)data, *end = p + size;
  while (p <= end && s.count < MAX_ANSWERS) {
    const char *sep = NULL;
    for (const char *q = p; q + 4 <= end; q++)
      if (memcmp(q, "\n--\n", 4) == 0) {
        sep = q;
        break;
      }
    s.answer[s.count] = p;
    s.len[s.count] = (size_t)((sep ? sep : end) - p);
    s.count++;
    if (!sep)
      break;
    p = sep + 4;
  }

  struct enricher *client = NULL;
  struct error_info err = {0};
  if (aml_client_new(NULL, arm_env, NULL, &client, &err) != RESULT_OK)
    abort();
  aml_client_set_transport_for_test(client, answer, &s);
  aml_client_set_token_for_test(client, token, NULL);

  struct record rec;
  record_init(&rec);
  if (record_from_event(&rec, &ev) == RESULT_OK) {
    client->enrich(client, &ev, &rec, time_mono_ms() + 5000, &err);
    fuzz_serialise(&rec);
  }
  record_cleanup(&rec);
  client->free(client);
  return 0;
}
