/* Fuzz target: the storage account connection string (AzureWebJobsStorage),
 * the key escaping of the run table, and its merge rules over an entity read
 * from the same bytes as JSON. A parsed account must have an https (or
 * loopback http) endpoint and a key; an escaped key may hold only letters,
 * digits, '-', '_', '.', '~'; the merge rules must give one of their answers. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "azure/storage_account.h"
#include "azure/table_client.h"
#include "base/jsonx.h"
#include "fuzz_util.h"
#include "watch/run_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet();
  char *text = fuzz_text(data, size);
  if (!text)
    return 0;

  struct storage_account *a = NULL;
  struct error_info err = {0};
  if (storage_account_parse(text, &a, &err) == RESULT_OK) {
    if (!a || !a->table_endpoint || !a->account_name || !a->key || a->key_len == 0 ||
        (strncasecmp(a->table_endpoint, "https://", 8) != 0 &&
         strncasecmp(a->table_endpoint, "http://", 7) != 0))
      abort();
    storage_account_free(a);
  } else if (a || memchr(err.message, '\0', sizeof err.message) == NULL) {
    abort();
  }

  char *key = table_key_escape(text);
  for (const char *p = key; p && *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("-_.~", *p))
      abort();
  free(key);

  json_t *entity = jsonx_parse(text, strlen(text), JSONX_DEFAULT_MAX_DEPTH, NULL, NULL);
  static const char *const statuses[] = {"Queued", "Running", "Completed", "Bogus"};
  for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
    enum run_merge m = run_table_merge(json_is_object(entity) ? entity : NULL,
                                       statuses[i], 1733500000000LL);
    if (m < RUN_MERGE_INSERT || m > RUN_MERGE_SKIP_CLOSED)
      abort();
  }
  json_decref(entity);
  free(text);
  return 0;
}
