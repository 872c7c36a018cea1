/* Fuzz target: APPLICATIONINSIGHTS_CONNECTION_STRING and
 * APPLICATIONINSIGHTS_AUTHENTICATION_STRING. Both parsers read the same input;
 * on success the results must be NUL-terminated and the key a GUID. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "export/connection_string.h"
#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet();
  char *text = fuzz_text(data, size);
  if (!text)
    return 0;

  struct connection_string cs;
  struct error_info err = {0};
  if (connection_string_parse(text, "APPLICATIONINSIGHTS_CONNECTION_STRING", &cs, &err) ==
      RESULT_OK) {
    if (memchr(cs.instrumentation_key, '\0', sizeof cs.instrumentation_key) == NULL ||
        memchr(cs.ingestion_endpoint, '\0', sizeof cs.ingestion_endpoint) == NULL ||
        !connection_string_is_guid(cs.instrumentation_key))
      abort();
  }
  if (memchr(err.message, '\0', sizeof err.message) == NULL)
    abort();

  struct authentication_string auth;
  struct error_info auth_err = {0};
  if (authentication_string_parse(text, &auth, &auth_err) == RESULT_OK &&
      memchr(auth.client_id, '\0', sizeof auth.client_id) == NULL)
    abort();
  (void)connection_string_is_guid(text);
  free(text);
  return 0;
}
