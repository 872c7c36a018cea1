/* Fuzz target: what the cost estimate reads from outside: Retail Prices API
 * pages (retail_prices_scan, for a dedicated and a low-priority query, across
 * two "pages") and ARM compute documents (compute_info_from_arm), as arbitrary
 * JSON. A chosen price must be finite and positive; compute fields must be
 * NUL-terminated and free of control characters. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aml/compute.h"
#include "base/jsonx.h"
#include "cost/retail_prices.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *text, size_t size) {
  if (strnlen(text, size) == size)
    abort();
  for (const char *p = text; *p; p++)
    if ((unsigned char)*p < 0x20)
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet();
  json_t *doc =
      jsonx_parse((const char *)data, size, JSONX_DEFAULT_MAX_DEPTH, NULL, NULL);
  if (!doc)
    return 0;
  static const struct price_query queries[] = {
      {"eastus", "Standard_D4s_v3", false},
      {"EASTUS", "standard_ds3_v2", true},
  };
  for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
    struct price_choice choice = {0};
    retail_prices_scan(doc, &queries[i], &choice);
    retail_prices_scan(doc, &queries[i], &choice); /* a second page */
    if (choice.found && !(isfinite(choice.usd) && choice.usd > 0))
      abort();
    if (strnlen(choice.effective, sizeof choice.effective) == sizeof choice.effective)
      abort();
  }
  struct compute_info info;
  if (compute_info_from_arm(doc, &info)) {
    check_text(info.compute_type, sizeof info.compute_type);
    check_text(info.location, sizeof info.location);
    check_text(info.vm_size, sizeof info.vm_size);
    check_text(info.vm_priority, sizeof info.vm_priority);
    check_text(info.os_type, sizeof info.os_type);
  }
  json_decref(doc);
  return 0;
}
