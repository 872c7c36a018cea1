/* The storage account from Functions' own settings; see storage_account.h. */
#include "azure/storage_account.h"

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/crypto.h"
#include "base/loopback.h"

/* https anywhere, plain http to this machine only (Azurite). */
static bool endpoint_usable(const char *url) {
  if (strncasecmp(url, "https://", 8) == 0)
    return url[8] != '\0' && url[8] != '/';
  return strncasecmp(url, "http://", 7) == 0 && loopback_url(url);
}

/* Storage account names are letters and digits: nothing that could move the
 * host of an endpoint built from one. */
static bool account_name_ok(const char *name) {
  if (!*name)
    return false;
  for (const char *c = name; *c; c++)
    if (!isalnum((unsigned char)*c))
      return false;
  return true;
}

/* A copy without surrounding spaces (and, for a URL, trailing slashes). */
static char *trimmed_copy(const char *text, size_t len, bool url) {
  while (len > 0 && isspace((unsigned char)*text))
    text++, len--;
  while (len > 0 &&
         (isspace((unsigned char)text[len - 1]) || (url && text[len - 1] == '/')))
    len--;
  return strndup(text, len);
}

void storage_account_free(struct storage_account *account) {
  if (!account)
    return;
  free(account->table_endpoint);
  free(account->account_name);
  if (account->key) {
    memset(account->key, 0, account->key_len);
    free(account->key);
  }
  free(account);
}

/* The parts of a connection string this module reads. */
struct parts {
  const char *dev, *protocol, *name, *key, *suffix, *table, *sas;
  size_t dev_len, protocol_len, name_len, key_len, suffix_len, table_len, sas_len;
};

static void split(const char *cs, struct parts *p) {
  static const struct {
    const char *key;
    size_t value, len;
  } known[] = {
      {"UseDevelopmentStorage", offsetof(struct parts, dev),
       offsetof(struct parts, dev_len)},
      {"DefaultEndpointsProtocol", offsetof(struct parts, protocol),
       offsetof(struct parts, protocol_len)},
      {"AccountName", offsetof(struct parts, name), offsetof(struct parts, name_len)},
      {"AccountKey", offsetof(struct parts, key), offsetof(struct parts, key_len)},
      {"EndpointSuffix", offsetof(struct parts, suffix),
       offsetof(struct parts, suffix_len)},
      {"TableEndpoint", offsetof(struct parts, table), offsetof(struct parts, table_len)},
      {"SharedAccessSignature", offsetof(struct parts, sas),
       offsetof(struct parts, sas_len)},
  };
  memset(p, 0, sizeof *p);
  for (const char *item = cs; *item;) {
    size_t len = strcspn(item, ";");
    const char *eq = memchr(item, '=', len);
    if (eq) {
      const char *k = item;
      size_t klen = (size_t)(eq - item);
      while (klen > 0 && isspace((unsigned char)*k))
        k++, klen--;
      while (klen > 0 && isspace((unsigned char)k[klen - 1]))
        klen--;
      for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strlen(known[i].key) == klen && strncasecmp(k, known[i].key, klen) == 0) {
          *(const char **)((char *)p + known[i].value) = eq + 1;
          *(size_t *)((char *)p + known[i].len) = (size_t)(item + len - (eq + 1));
        }
    }
    item += len;
    if (*item == ';')
      item++;
  }
}

int storage_account_parse(const char *cs, struct storage_account **out,
                          struct error_info *err) {
  struct parts p;
  char *key_text = NULL;
  int r = RESULT_NOMEM;
  *out = NULL;
  split(cs, &p);
  struct storage_account *a = calloc(1, sizeof *a);
  if (!a)
    goto fail;
  a->setting = STORAGE_SETTING;
  if (p.dev && p.dev_len == 4 && strncasecmp(p.dev, "true", 4) == 0) {
    if (!(a->table_endpoint = strdup(STORAGE_DEV_TABLE_ENDPOINT)) ||
        !(a->account_name = strdup(STORAGE_DEV_ACCOUNT)) ||
        !(key_text = strdup(STORAGE_DEV_KEY)))
      goto fail;
  } else {
    if (!p.key && p.sas) {
      r = error_set(err, RESULT_INVALID, STORAGE_SETTING,
                    "%s carries a SharedAccessSignature but no AccountKey; the run table "
                    "needs the account key or an identity (%s)",
                    STORAGE_SETTING, STORAGE_SETTING_ACCOUNT_NAME);
      goto fail;
    }
    if (!p.name || !p.key || p.name_len == 0 || p.key_len == 0) {
      r = error_set(err, RESULT_INVALID, STORAGE_SETTING,
                    "%s must hold AccountName and AccountKey (or "
                    "UseDevelopmentStorage=true)",
                    STORAGE_SETTING);
      goto fail;
    }
    if (!(a->account_name = trimmed_copy(p.name, p.name_len, false)) ||
        !(key_text = trimmed_copy(p.key, p.key_len, false)))
      goto fail;
    if (!account_name_ok(a->account_name)) {
      r = error_set(err, RESULT_INVALID, STORAGE_SETTING,
                    "the AccountName of %s must be letters and digits", STORAGE_SETTING);
      goto fail;
    }
    if (p.table) {
      a->table_endpoint = trimmed_copy(p.table, p.table_len, true);
    } else {
      char url[512];
      int n = snprintf(
          url, sizeof url, "%.*s://%s.table.%.*s", p.protocol ? (int)p.protocol_len : 5,
          p.protocol ? p.protocol : "https", a->account_name,
          p.suffix ? (int)p.suffix_len : 16, p.suffix ? p.suffix : "core.windows.net");
      a->table_endpoint = n > 0 && (size_t)n < sizeof url ? strdup(url) : NULL;
    }
    if (!a->table_endpoint)
      goto fail;
  }
  if (crypto_base64_decode(key_text, &a->key, &a->key_len) != RESULT_OK ||
      a->key_len == 0) {
    r = error_set(err, RESULT_INVALID, STORAGE_SETTING,
                  "the AccountKey of %s is not base64", STORAGE_SETTING);
    goto fail;
  }
  if (!endpoint_usable(a->table_endpoint) || strpbrk(a->table_endpoint, "?#")) {
    r = error_set(err, RESULT_INVALID, STORAGE_SETTING,
                  "the Table endpoint of %s must be an https URL without a query (http "
                  "only to a loopback host, as Azurite is)",
                  STORAGE_SETTING);
    goto fail;
  }
  memset(key_text, 0, strlen(key_text));
  free(key_text);
  *out = a;
  return RESULT_OK;
fail:
  if (key_text) {
    memset(key_text, 0, strlen(key_text));
    free(key_text);
  }
  storage_account_free(a);
  if (r == RESULT_NOMEM)
    error_set(err, r, STORAGE_SETTING, "out of memory reading %s", STORAGE_SETTING);
  return r;
}

/* Identity-based: the Table endpoint from __tableServiceUri or __accountName. */
static int identity_account(const char *uri, const char *name,
                            struct storage_account **out, struct error_info *err) {
  struct storage_account *a = calloc(1, sizeof *a);
  char url[512];
  if (!a)
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  a->setting = uri ? STORAGE_SETTING_TABLE_URI : STORAGE_SETTING_ACCOUNT_NAME;
  if (!uri) {
    if (!account_name_ok(name)) {
      storage_account_free(a);
      return error_set(err, RESULT_INVALID, STORAGE_SETTING_ACCOUNT_NAME,
                       "%s must be a storage account name (letters and digits)",
                       STORAGE_SETTING_ACCOUNT_NAME);
    }
    snprintf(url, sizeof url, "https://%.100s.table.core.windows.net", name);
    uri = url;
  }
  a->table_endpoint = trimmed_copy(uri, strlen(uri), true);
  if (!a->table_endpoint) {
    storage_account_free(a);
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  }
  if (!endpoint_usable(a->table_endpoint) || strpbrk(a->table_endpoint, "?#")) {
    const char *which = a->setting;
    storage_account_free(a);
    return error_set(err, RESULT_INVALID, which,
                     "%s must be an https URL without a query (http only to a loopback "
                     "host)",
                     which);
  }
  *out = a;
  return RESULT_OK;
}

int storage_account_from_env(settings_getenv_fn getenv_fn, void *ctx,
                             struct storage_account **out, struct error_info *err) {
  *out = NULL;
  const char *cs = settings_get(getenv_fn, ctx, STORAGE_SETTING);
  if (cs)
    return storage_account_parse(cs, out, err);
  const char *uri = settings_get(getenv_fn, ctx, STORAGE_SETTING_TABLE_URI);
  const char *name = settings_get(getenv_fn, ctx, STORAGE_SETTING_ACCOUNT_NAME);
  if (uri || name)
    return identity_account(uri, name, out, err);
  return RESULT_OK;
}
