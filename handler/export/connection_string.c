/* Parsing of the App Insights connection and authentication strings; see
 * connection_string.h. Both are `key=value;...` lists read with one tokenizer
 * (for_each_part) so the two share the trimming and splitting rules. */
#include "export/connection_string.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"

#define AUTH_SETTING "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"

struct part {
  const char *key, *value;
  size_t key_len, value_len;
};

static void trim(const char **start, size_t *len) {
  while (*len > 0 && isspace((unsigned char)**start)) {
    (*start)++;
    (*len)--;
  }
  while (*len > 0 && isspace((unsigned char)(*start)[*len - 1]))
    (*len)--;
}

/* Splits the next part of `*cursor`; false when the text is exhausted. Parts
 * without '=' come back with key_len 0 and are reported by the caller. */
static bool next_part(const char **cursor, struct part *out, bool *out_malformed) {
  const char *p = *cursor;
  for (;;) {
    if (*p == '\0')
      return false;
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *start = p;
    p = end ? end + 1 : p + len;
    trim(&start, &len);
    if (len == 0)
      continue; /* empty part */
    const char *eq = memchr(start, '=', len);
    *cursor = p;
    *out_malformed = eq == NULL;
    if (!eq)
      return true;
    out->key = start;
    out->key_len = (size_t)(eq - start);
    out->value = eq + 1;
    out->value_len = len - out->key_len - 1;
    trim(&out->key, &out->key_len);
    trim(&out->value, &out->value_len);
    return true;
  }
}

static bool key_is(const struct part *part, const char *name) {
  return part->key_len == strlen(name) &&
         strncasecmp(part->key, name, part->key_len) == 0;
}

bool connection_string_is_guid(const char *text) {
  static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
  if (!text || strlen(text) != sizeof shape - 1)
    return false;
  for (size_t i = 0; shape[i]; i++) {
    if (shape[i] == '-' ? text[i] != '-' : !isxdigit((unsigned char)text[i]))
      return false;
  }
  return true;
}

static void copy_value(char *dst, size_t dst_size, const char *src, size_t len) {
  if (len >= dst_size)
    len = dst_size - 1;
  memcpy(dst, src, len);
  dst[len] = '\0';
}

static bool valid_host_part(const char *text) {
  for (const char *p = text; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
      return false;
  return text[0] != '\0';
}

/* The token scope from AADAudience, as _utils._get_scope does: the audience
 * followed by "/.default" ("https://monitor.azure.us/" ->
 * "https://monitor.azure.us//.default"), the public cloud's scope without one. */
static int ingestion_scope(const char *audience, const char *name,
                           struct connection_string *out, struct error_info *err) {
  if (!audience[0]) {
    snprintf(out->ingestion_scope, sizeof out->ingestion_scope, "%s",
             CONNECTION_STRING_DEFAULT_SCOPE);
    return RESULT_OK;
  }
  bool usable = strncasecmp(audience, "https://", 8) == 0 && audience[8] != '\0' &&
                strlen(audience) + sizeof "/.default" <= sizeof out->ingestion_scope;
  for (const char *p = audience; usable && *p; p++)
    usable = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
  if (!usable)
    return error_set(err, RESULT_INVALID, name,
                     "%s has an AADAudience that is not an https:// URL (e.g. "
                     "https://monitor.azure.us/)",
                     name);
  snprintf(out->ingestion_scope, sizeof out->ingestion_scope, "%s/.default", audience);
  return RESULT_OK;
}

int connection_string_parse(const char *text, const char *setting,
                            struct connection_string *out, struct error_info *err) {
  const char *name = setting ? setting : "APPLICATIONINSIGHTS_CONNECTION_STRING";
  char ikey[CONNECTION_STRING_MAX + 1] = "", endpoint[CONNECTION_STRING_MAX + 1] = "";
  char suffix[256] = "", location[128] = "", audience[CONNECTION_STRING_SCOPE_MAX] = "";
  memset(out, 0, sizeof *out);
  if (!text || !*text)
    return error_set(err, RESULT_INVALID, name, "%s is empty", name);
  if (strlen(text) > CONNECTION_STRING_MAX)
    return error_set(err, RESULT_INVALID, name, "%s is longer than %d characters", name,
                     CONNECTION_STRING_MAX);

  const char *cursor = text;
  struct part part;
  bool malformed;
  while (next_part(&cursor, &part, &malformed)) {
    if (malformed || part.key_len == 0)
      return error_set(err, RESULT_INVALID, name,
                       "%s has a part that is not key=value (expected "
                       "InstrumentationKey=<guid>;IngestionEndpoint=https://...)",
                       name);
    if (key_is(&part, "InstrumentationKey"))
      copy_value(ikey, sizeof ikey, part.value, part.value_len);
    else if (key_is(&part, "IngestionEndpoint"))
      copy_value(endpoint, sizeof endpoint, part.value, part.value_len);
    else if (key_is(&part, "EndpointSuffix"))
      copy_value(suffix, sizeof suffix, part.value, part.value_len);
    else if (key_is(&part, "Location"))
      copy_value(location, sizeof location, part.value, part.value_len);
    else if (key_is(&part, "AADAudience"))
      copy_value(audience, sizeof audience, part.value, part.value_len);
    /* Other keys (LiveEndpoint, ProfilerEndpoint, ApplicationId, ...) are not ours. */
  }

  if (!ikey[0])
    return error_set(err, RESULT_INVALID, name, "%s has no InstrumentationKey", name);
  if (!connection_string_is_guid(ikey)) {
    char masked[64];
    log_mask(ikey, masked, sizeof masked);
    return error_set(err, RESULT_INVALID, name,
                     "%s has an InstrumentationKey that is not a GUID (%s)", name,
                     masked);
  }
  for (size_t i = 0; ikey[i]; i++)
    out->instrumentation_key[i] = (char)tolower((unsigned char)ikey[i]);

  if (endpoint[0]) {
    if (strncasecmp(endpoint, "https://", 8) != 0 &&
        strncasecmp(endpoint, "http://", 7) != 0)
      return error_set(err, RESULT_INVALID, name,
                       "%s has an IngestionEndpoint that is not an http(s) URL", name);
    snprintf(out->ingestion_endpoint, sizeof out->ingestion_endpoint, "%s", endpoint);
  } else if (suffix[0]) {
    const char *s = suffix;
    while (*s == '.')
      s++;
    char trimmed[256];
    snprintf(trimmed, sizeof trimmed, "%s", s);
    size_t n = strlen(trimmed);
    while (n > 0 && (trimmed[n - 1] == '/' || trimmed[n - 1] == '.'))
      trimmed[--n] = '\0';
    if (!valid_host_part(trimmed) || (location[0] && !valid_host_part(location)))
      return error_set(err, RESULT_INVALID, name,
                       "%s has an EndpointSuffix or Location that is not a host name",
                       name);
    snprintf(out->ingestion_endpoint, sizeof out->ingestion_endpoint, "https://%s%sdc.%s",
             location, location[0] ? "." : "", trimmed);
  } else {
    snprintf(out->ingestion_endpoint, sizeof out->ingestion_endpoint, "%s",
             CONNECTION_STRING_DEFAULT_ENDPOINT);
  }
  size_t host =
      (size_t)(strstr(out->ingestion_endpoint, "://") + 3 - out->ingestion_endpoint);
  size_t n = strlen(out->ingestion_endpoint);
  while (n > host && out->ingestion_endpoint[n - 1] == '/')
    out->ingestion_endpoint[--n] = '\0';
  if (n == host)
    return error_set(err, RESULT_INVALID, name, "%s has an empty IngestionEndpoint",
                     name);
  return ingestion_scope(audience, name, out, err);
}

int authentication_string_parse(const char *text, struct authentication_string *out,
                                struct error_info *err) {
  memset(out, 0, sizeof *out);
  if (!text || !*text)
    return RESULT_OK;
  if (strlen(text) > CONNECTION_STRING_MAX)
    return error_set(err, RESULT_INVALID, AUTH_SETTING, "%s is too long", AUTH_SETTING);
  bool has_authorization = false;
  const char *cursor = text;
  struct part part;
  bool malformed;
  while (next_part(&cursor, &part, &malformed)) {
    if (malformed || part.key_len == 0)
      return error_set(err, RESULT_INVALID, AUTH_SETTING,
                       "%s has a part that is not key=value (expected "
                       "Authorization=AAD[;ClientId=<id>])",
                       AUTH_SETTING);
    if (key_is(&part, "Authorization")) {
      if (part.value_len != 3 || strncasecmp(part.value, "AAD", 3) != 0)
        return error_set(err, RESULT_INVALID, AUTH_SETTING,
                         "%s: Authorization must be AAD", AUTH_SETTING);
      has_authorization = true;
    } else if (key_is(&part, "ClientId")) {
      if (part.value_len == 0 || part.value_len >= sizeof out->client_id)
        return error_set(err, RESULT_INVALID, AUTH_SETTING,
                         "%s: ClientId is empty or too long", AUTH_SETTING);
      copy_value(out->client_id, sizeof out->client_id, part.value, part.value_len);
    }
  }
  if (!has_authorization)
    return error_set(err, RESULT_INVALID, AUTH_SETTING, "%s has no Authorization=AAD",
                     AUTH_SETTING);
  out->aad = true;
  return RESULT_OK;
}
