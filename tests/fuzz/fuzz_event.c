/* Fuzz target: the event model. The input is JSON as Event Grid delivers it, in
 * either schema (Event Grid or CloudEvents 1.0), one event or an array of them;
 * each is parsed by event_parse() and, when accepted, turned into a record and
 * serialised, as the processor does. Nothing a publisher sends may crash the
 * handler or leak. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "core/event.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "core/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const json_t *value) {
  struct aml_event ev;
  struct error_info err = {0};
  if (event_parse(value, &ev, &err) != RESULT_OK) {
    struct record rejected;
    record_init(&rejected);
    if (record_rejected(&rejected, err.message, value) == RESULT_OK) {
      fuzz_serialise(&rejected);
    }
    record_cleanup(&rejected);
    return;
  }
  (void)aml_event_type_name(ev.type);
  (void)run_status_is_terminal(ev.run_status);
  struct record rec;
  record_init(&rec);
  if (record_from_event(&rec, &ev) == RESULT_OK) {
    fuzz_serialise(&rec);
  }
  record_cleanup(&rec);
  event_cleanup(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet();
  json_t *doc =
      jsonx_parse((const char *)data, size, JSONX_DEFAULT_MAX_DEPTH, NULL, NULL);
  if (!doc)
    return 0;
  if (json_is_array(doc)) {
    size_t i;
    json_t *value;
    json_array_foreach(doc, i, value) {
      if (i >= 64)
        break;
      one(value);
    }
  } else {
    one(doc);
  }
  json_decref(doc);
  return 0;
}
