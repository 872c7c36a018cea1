/* Fuzz target: run history documents (RunDetails, Run, the parent pipeline run)
 * and metrics v2 answers, as arbitrary JSON, mapped onto records the way the
 * AML client does: apply, apply_parent, the error reader, metric names and each
 * metric's last value. The records are then serialised. Differential: jsonx_parse
 * must accept what jansson's json_loadb accepts, with an equal value, and the
 * selecting parse (run_details_select) the same, giving the same records. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "core/record.h"
#include "aml/run_details.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The records run_details makes of `doc`, serialised. */
static char *records_of(const json_t *doc) {
  struct record step, plain;
  record_init(&step);
  record_init(&plain);
  record_set_string(&step, REC_RUN_ID, "step-1");
  record_set_string(&step, REC_STATUS, "Completed");
  run_details_apply(&step, doc);
  run_details_apply_parent(&step, doc);
  run_details_apply(&plain, doc);
  json_t *both = json_pack("[oo]", record_to_json(&step), record_to_json(&plain));
  char *text = jsonx_dump(both);
  json_decref(both);
  record_cleanup(&step);
  record_cleanup(&plain);
  return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet();
  int r1 = -1, r2 = -1;
  json_t *doc = jsonx_parse((const char *)data, size, JSONX_DEFAULT_MAX_DEPTH, &r1, NULL);
  json_t *some = jsonx_parse_select((const char *)data, size, JSONX_DEFAULT_MAX_DEPTH,
                                    run_details_select, &r2, NULL);
  if (!doc != !some || r1 != r2)
    abort();
  /* jsonx_parse checks and builds in one pass through jansson's API; jansson's
   * own parser must give the same verdict and an equal value. */
  if (size > 0 && jsonx_depth((const char *)data, size, JSONX_DEFAULT_MAX_DEPTH) <=
                      JSONX_DEFAULT_MAX_DEPTH) {
    json_t *ref = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!ref != !doc || (ref && !json_equal(ref, doc)))
      abort();
    json_decref(ref);
  }
  if (some) {
    char *a = records_of(doc), *b = records_of(some);
    if (!a || !b || strcmp(a, b) != 0)
      abort();
    free(a);
    free(b);
    json_decref(some);
  }
  if (!doc)
    return 0;

  /* A step known from its event, and a run the event said little about. */
  struct record step, plain;
  record_init(&step);
  record_init(&plain);
  record_set_string(&step, REC_RUN_ID, "step-1");
  record_set_string(&step, REC_STATUS, "Completed");
  run_details_apply(&step, doc);
  run_details_apply_parent(&step, doc);
  run_details_apply(&plain, doc);
  run_details_apply(&plain, doc); /* twice: replacing what it set */

  const char *code = NULL, *message = NULL;
  run_details_error(doc, &code, &message);

  struct run_metric_key keys[16];
  size_t count = run_details_metric_keys(doc, keys, 0, 16);
  if (count > 16)
    abort();
  run_details_continuation(doc);
  run_details_next_link(doc);
  for (size_t i = 0; i < count; i++) {
    double value;
    if (!keys[i].name || !keys[i].ns)
      abort();
    if (run_details_last_metric(doc, keys[i].name, &value)) {
      if (!isfinite(value))
        abort();
      record_add_metric(&plain, keys[i].name, value);
    }
  }
  double value;
  if (run_details_last_metric(doc, "loss", &value) && !isfinite(value))
    abort();

  fuzz_serialise(&step);
  fuzz_serialise(&plain);
  record_cleanup(&step);
  record_cleanup(&plain);
  json_decref(doc);
  return 0;
}
