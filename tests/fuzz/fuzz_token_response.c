/* Fuzz target: token responses. The same body is read as an Entra ID answer
 * (access_token, expires_in, refresh_in) and as a managed identity answer
 * (access_token, expires_on in every form), and, NUL-terminated, as a bare
 * expires_on date. On success a token must be present and the times sane. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "azure/credential_testing.h"
#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed "now" (2024-03-07T13:00:00Z), so every run is the same. */
#define NOW_MS INT64_C(1709816400000)

static void check(int result, struct credential_token *token) {
  if (result != RESULT_OK)
    return;
  if (!token->access_token || !token->access_token[0])
    abort();
  free(token->access_token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet();
  struct credential_token token = {0};
  struct error_info err = {0};
  check(credential_parse_aad_response((const char *)data, size, NOW_MS, &token, &err),
        &token);
  memset(&token, 0, sizeof token);
  check(credential_parse_msi_response((const char *)data, size, NOW_MS, &token, &err),
        &token);

  char *text = fuzz_text(data, size);
  if (!text)
    return 0;
  int64_t ms;
  (void)credential_parse_expires_on(text, &ms);
  free(text);
  return 0;
}
