/* The Function App's storage account: where the Table service is and how to
 * authorize to it, read from the settings Functions itself uses.
 *
 *   - AzureWebJobsStorage, a connection string: `UseDevelopmentStorage=true`
 *     (Azurite's well-known development account at http://127.0.0.1:10002/
 *     devstoreaccount1), or DefaultEndpointsProtocol / AccountName / AccountKey /
 *     EndpointSuffix / TableEndpoint: Shared Key with the account key;
 *   - AzureWebJobsStorage__tableServiceUri, or AzureWebJobsStorage__accountName
 *     (https://<name>.table.core.windows.net): identity-based, an Entra ID token
 *     for https://storage.azure.com/.default from the handler's credential.
 * A connection string wins when both kinds are set, as in Functions. Nothing
 * set: *out is NULL and RESULT_OK (the workspace watch is off). A setting that
 * is present but unusable (no AccountKey, a key that is not base64, a SAS-only
 * string, an http endpoint that is not loopback, an endpoint with a query, an
 * AccountName that is not letters and digits) is RESULT_INVALID naming it;
 * the message never quotes the key.
 *
 * Ownership: storage_account_free() frees what storage_account_from_env()
 * returns. Read-only afterwards, so thread-safe to share. */
#ifndef HANDLER_STORAGE_ACCOUNT_H
#define HANDLER_STORAGE_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "base/result.h"
#include "base/settings.h"

#define STORAGE_SETTING "AzureWebJobsStorage"
#define STORAGE_SETTING_ACCOUNT_NAME "AzureWebJobsStorage__accountName"
#define STORAGE_SETTING_TABLE_URI "AzureWebJobsStorage__tableServiceUri"
#define STORAGE_SCOPE "https://storage.azure.com/.default"
/* Azurite's documented development account (a published, well-known key). */
#define STORAGE_DEV_ACCOUNT "devstoreaccount1"
#define STORAGE_DEV_KEY                                                                  \
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"           \
  "KBHBeksoGMGw=="
#define STORAGE_DEV_TABLE_ENDPOINT "http://127.0.0.1:10002/devstoreaccount1"

struct storage_account {
  char *table_endpoint; /* no trailing slash; https, or http to a loopback host */
  char *account_name;   /* the account (Shared Key's canonicalized resource) */
  uint8_t *key;         /* decoded account key; NULL: Entra ID bearer tokens */
  size_t key_len;
  const char *setting; /* the setting it came from, for messages */
};

HANDLER_NODISCARD int storage_account_from_env(settings_getenv_fn getenv_fn, void *ctx,
                                               struct storage_account **out,
                                               struct error_info *err);

/* Parses a storage connection string (exposed for tests). */
HANDLER_NODISCARD int storage_account_parse(const char *connection_string,
                                            struct storage_account **out,
                                            struct error_info *err);

void storage_account_free(struct storage_account *account);

#endif
