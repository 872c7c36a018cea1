/* The Application Insights connection string and authentication string.
 *
 * connection_string_parse() reads `key=value;...` as the official exporters do
 * (docs/protocols.md §6): keys case-insensitive, parts trimmed, empty parts skipped,
 * each part split on its first '='. InstrumentationKey must be a GUID. The
 * ingestion endpoint is IngestionEndpoint when given, else
 * https://[<Location>.]dc.<EndpointSuffix>, else https://dc.services.visualstudio.com;
 * trailing slashes are stripped. The Entra ID token scope for ingestion is
 * AADAudience + "/.default" when the string names an audience (sovereign
 * clouds: https://monitor.azure.us/, https://monitor.azure.cn/), else
 * https://monitor.azure.com//.default, as the official Python exporter builds
 * it (azure-monitor-opentelemetry-exporter, _utils._get_scope). Errors name the setting
 * and never show the instrumentation key whole (log_mask).
 *
 * authentication_string_parse() reads APPLICATIONINSIGHTS_AUTHENTICATION_STRING:
 * `Authorization=AAD[;ClientId=<id>]` (Entra ID ingestion with a managed identity).
 *
 * Ownership: results live in caller-owned structs (fixed buffers, nothing to
 * free). Thread-safe: no shared state. */
#ifndef HANDLER_CONNECTION_STRING_H
#define HANDLER_CONNECTION_STRING_H

#include <stdbool.h>

#include "base/result.h"

#define CONNECTION_STRING_MAX 4096
#define CONNECTION_STRING_DEFAULT_ENDPOINT "https://dc.services.visualstudio.com"
#define CONNECTION_STRING_DEFAULT_SCOPE "https://monitor.azure.com//.default"
#define CONNECTION_STRING_SCOPE_MAX 512

struct connection_string {
  char instrumentation_key[37];                        /* GUID, lower-cased */
  char ingestion_endpoint[CONNECTION_STRING_MAX + 64]; /* no trailing slash */
  char ingestion_scope[CONNECTION_STRING_SCOPE_MAX];   /* Entra ID token scope */
};

/* `setting` names the app setting in error messages (may be NULL). */
HANDLER_NODISCARD int connection_string_parse(const char *text, const char *setting,
                                              struct connection_string *out,
                                              struct error_info *err);

struct authentication_string {
  bool aad;            /* Authorization=AAD */
  char client_id[128]; /* user-assigned identity; empty for system-assigned */
};

HANDLER_NODISCARD int authentication_string_parse(const char *text,
                                                  struct authentication_string *out,
                                                  struct error_info *err);

/* True for 8-4-4-4-12 hexadecimal digits. */
bool connection_string_is_guid(const char *text);

#endif
