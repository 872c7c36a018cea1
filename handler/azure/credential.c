/* Entra ID credentials and their token cache; see credential.h.
 *
 * A credential is built once from the settings (DefaultAzureCredential's order:
 * client secret, client certificate, workload identity, managed identity) and
 * then only hands out tokens. Each scope has a cache entry. A token is handed
 * out while the wall clock is before its `refresh_at_ms` (5 minutes before
 * expiry, half-way for short-lived tokens, or the service's refresh_in, as the
 * Azure SDKs do). When a refresh is due, exactly one caller (the one that sets
 * `refreshing`) asks upstream, without the lock held; the others either keep
 * using the old token while it is still valid, or wait on `cond` for the
 * refresh to end and then share its outcome, so a failing authority sees one
 * request, not one per waiting invocation. A token is used for as long as it
 * is valid, however soon it expires: a managed identity endpoint hands out its
 * cached token, which may be seconds from expiry, and keeps handing it out;
 * refusing it would fail every invocation. A failed refresh keeps a token that
 * is still valid.
 *
 * Secrets (client secret, assertions, federated tokens, the identity header,
 * access tokens) go only into request bodies and headers, never into a log line
 * or an error sentence: failures name the credential kind, the setting to check
 * and the service's error code.
 *
 * Threading: credential_get_token() and credential_token_requests() are
 * thread-safe; `lock` guards the cache entries. Everything else in the struct is
 * read-only after construction. */
#include "azure/credential.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "azure/credential_testing.h"
#include "base/crypto.h"
#include "base/deadline.h"
#include "base/files.h"
#include "azure/http_client.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/settings.h"
#include "base/timeutil.h"

#define REFRESH_AHEAD_MS (5 * 60 * 1000)   /* refresh this long before expiry */
#define MIN_REFRESH_GAP_MS 1000            /* nor more often than this near expiry */
#define RETRY_AFTER_FAILURE_MS (30 * 1000) /* keep a valid old token this long */
#define ASSERTION_LIFETIME_S 600
#define TOKEN_RESPONSE_MAX (256 * 1024)
#define ACCESS_TOKEN_MAX (32 * 1024)
#define FEDERATED_TOKEN_MAX (64 * 1024)
#define SCOPE_MAX 512
#define DEFAULT_AUTHORITY "https://login.microsoftonline.com"
#define JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

enum kind { KIND_SECRET, KIND_CERTIFICATE, KIND_WORKLOAD, KIND_MANAGED };

static const char *const kind_names[] = {"client secret", "client certificate",
                                         "workload identity", "managed identity"};

struct cache_entry {
  struct cache_entry *next;
  char *scope;
  char *token;           /* NULL until a refresh succeeds */
  int64_t expires_at_ms; /* wall clock */
  int64_t refresh_at_ms; /* wall clock; <= expires_at_ms */
  bool refreshing;       /* one caller is asking upstream right now */
  uint64_t generation;   /* bumped when a refresh ends */
  int last_result;       /* outcome of the last refresh, for the waiters */
  struct error_info last_err;
};

struct credential {
  enum kind kind;
  char *client_id;     /* may be NULL for a system-assigned managed identity */
  char *client_secret; /* KIND_SECRET */
  char *token_url;     /* Entra ID kinds: {authority}/{tenant}/oauth2/v2.0/token */
  char *x5t;           /* KIND_CERTIFICATE: base64url SHA-1 of the certificate */
  struct crypto_credential *cert;
  char *federated_token_file; /* KIND_WORKLOAD */
  char *identity_endpoint;    /* KIND_MANAGED */
  char *identity_header;
  const char *secret_setting; /* the setting names actually read, for messages */
  const char *client_id_setting;
  const char *tenant_setting;

  pthread_mutex_t lock;
  pthread_cond_t cond; /* CLOCK_MONOTONIC */
  struct cache_entry *entries;
  atomic_uint_fast64_t requests;
};

static http_transport_fn transport;
static void *transport_ctx;

void credential_set_transport_for_test(http_transport_fn fn, void *ctx) {
  transport = fn;
  transport_ctx = ctx;
}

static int send_request(const struct http_request *request, struct http_response *out,
                        struct error_info *err) {
  if (transport)
    return transport(transport_ctx, request, out, err);
  return http_client_send_retry(request, out, err);
}

const char *credential_kind(const struct credential *cred) {
  return cred ? kind_names[cred->kind] : "none";
}

uint64_t credential_token_requests(const struct credential *cred) {
  return cred ? atomic_load(&((struct credential *)cred)->requests) : 0;
}

/* Tenant ids are GUIDs or domain names; anything else would change the URL. */
static bool valid_tenant(const char *tenant) {
  if (!*tenant || strlen(tenant) > 256)
    return false;
  for (const char *p = tenant; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
      return false;
  return true;
}

static bool has_control(const char *text) {
  for (const unsigned char *p = (const unsigned char *)text; *p; p++)
    if (*p < 0x20 || *p == 0x7f)
      return true;
  return false;
}

/* "{authority}/{tenant}/oauth2/v2.0/token" from AZURE_AUTHORITY_HOST. */
static int build_token_url(settings_getenv_fn getenv_fn, void *ctx, const char *tenant,
                           char **out, struct error_info *err) {
  const char *host = settings_get(getenv_fn, ctx, "AZURE_AUTHORITY_HOST");
  const char *scheme = "";
  if (!host)
    host = DEFAULT_AUTHORITY;
  while (isspace((unsigned char)*host))
    host++;
  if (strncmp(host, "http://", 7) == 0)
    return error_set(err, RESULT_INVALID, "AZURE_AUTHORITY_HOST",
                     "AZURE_AUTHORITY_HOST must be an https:// URL (Entra ID refuses "
                     "plain http)");
  if (!strstr(host, "://"))
    scheme = "https://";
  else if (strncmp(host, "https://", 8) != 0)
    return error_set(err, RESULT_INVALID, "AZURE_AUTHORITY_HOST",
                     "AZURE_AUTHORITY_HOST must be an https:// URL");
  size_t len = strlen(host);
  while (len > 0 && (host[len - 1] == '/' || isspace((unsigned char)host[len - 1])))
    len--;
  if (len == 0 || has_control(host) || strchr(host, '?') || strchr(host, '#'))
    return error_set(err, RESULT_INVALID, "AZURE_AUTHORITY_HOST",
                     "AZURE_AUTHORITY_HOST is not a usable URL");
  size_t size = strlen(scheme) + len + strlen(tenant) + 32;
  char *url = malloc(size);
  if (!url)
    return RESULT_NOMEM;
  snprintf(url, size, "%s%.*s/%s/oauth2/v2.0/token", scheme, (int)len, host, tenant);
  *out = url;
  return RESULT_OK;
}

static struct credential *credential_new(enum kind kind) {
  struct credential *cred = calloc(1, sizeof *cred);
  if (!cred)
    return NULL;
  cred->kind = kind;
  if (deadline_cond_init(&cred->cond) != RESULT_OK) {
    free(cred);
    return NULL;
  }
  pthread_mutex_init(&cred->lock, NULL);
  atomic_init(&cred->requests, 0);
  return cred;
}

static int dup_into(char **dst, const char *src) {
  if (!src)
    return RESULT_OK;
  return (*dst = strdup(src)) ? RESULT_OK : RESULT_NOMEM;
}

static int make_managed(settings_getenv_fn getenv_fn, void *ctx, const char *client_id,
                        struct credential **out, struct error_info *err) {
  int result = RESULT_NOMEM;
  struct credential *cred = NULL;
  const char *endpoint = settings_get(getenv_fn, ctx, "IDENTITY_ENDPOINT");
  const char *header = settings_get(getenv_fn, ctx, "IDENTITY_HEADER");
  if (!endpoint) {
    result = error_set(err, RESULT_INVALID, "IDENTITY_ENDPOINT",
                       "IDENTITY_ENDPOINT is not set: enable a managed identity on the "
                       "Function App");
    goto done;
  }
  if (!header) {
    result = error_set(err, RESULT_INVALID, "IDENTITY_HEADER",
                       "IDENTITY_ENDPOINT is set without IDENTITY_HEADER");
    goto done;
  }
  if ((strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0) ||
      has_control(endpoint) || strchr(endpoint, ' ')) {
    result = error_set(err, RESULT_INVALID, "IDENTITY_ENDPOINT",
                       "IDENTITY_ENDPOINT is not an http(s) URL");
    goto done;
  }
  if (has_control(header)) {
    result = error_set(err, RESULT_INVALID, "IDENTITY_HEADER",
                       "IDENTITY_HEADER holds control characters");
    goto done;
  }
  if (client_id && (!*client_id || has_control(client_id))) {
    result = error_set(err, RESULT_INVALID, "AZURE_CLIENT_ID",
                       "the managed identity client id is empty or malformed");
    goto done;
  }
  if (!(cred = credential_new(KIND_MANAGED)))
    goto done;
  cred->client_id_setting = "AZURE_CLIENT_ID";
  if (dup_into(&cred->identity_endpoint, endpoint) ||
      dup_into(&cred->identity_header, header) || dup_into(&cred->client_id, client_id))
    goto done;
  *out = cred;
  cred = NULL;
  result = RESULT_OK;
done:
  credential_free(cred);
  return result;
}

int credential_managed_identity(settings_getenv_fn getenv_fn, void *ctx,
                                const char *client_id, struct credential **out,
                                struct error_info *err) {
  *out = NULL;
  return make_managed(getenv_fn, ctx, client_id, out, err);
}

int credential_from_env(settings_getenv_fn getenv_fn, void *ctx, struct credential **out,
                        struct error_info *err) {
  int result = RESULT_NOMEM;
  struct credential *cred = NULL;
  const char *tenant_name, *client_name, *secret_name;
  *out = NULL;
  static const char *const tenant_names[] = {"AZURE_TENANT_ID", "TENANT_ID", NULL};
  static const char *const client_names[] = {"AZURE_CLIENT_ID", "APP_ID", NULL};
  static const char *const secret_names[] = {"AZURE_CLIENT_SECRET",
                                             "SERVICE_PRINCIPAL_PASSWORD", NULL};
  const char *tenant = settings_first(getenv_fn, ctx, tenant_names, &tenant_name);
  const char *client = settings_first(getenv_fn, ctx, client_names, &client_name);
  const char *secret = settings_first(getenv_fn, ctx, secret_names, &secret_name);
  const char *cert_path = settings_get(getenv_fn, ctx, "AZURE_CLIENT_CERTIFICATE_PATH");
  const char *cert_password =
      settings_get(getenv_fn, ctx, "AZURE_CLIENT_CERTIFICATE_PASSWORD");
  const char *token_file = settings_get(getenv_fn, ctx, "AZURE_FEDERATED_TOKEN_FILE");
  const char *identity_endpoint = settings_get(getenv_fn, ctx, "IDENTITY_ENDPOINT");

  if (!secret && !cert_path && !token_file) {
    if (tenant && !client) {
      result = error_set(err, RESULT_INVALID, "AZURE_CLIENT_ID",
                         "%s is set without AZURE_CLIENT_ID", tenant_name);
      goto done;
    }
    if (tenant && !identity_endpoint) {
      result = error_set(err, RESULT_INVALID, "AZURE_CLIENT_SECRET",
                         "%s and %s are set, but none of AZURE_CLIENT_SECRET, "
                         "AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE",
                         tenant_name, client_name);
      goto done;
    }
    if (client && !identity_endpoint) {
      /* Half a service principal: the client id alone names no credential. */
      result = error_set(err, RESULT_INVALID, client_name,
                         "%s is set, but no credential can use it: set AZURE_TENANT_ID "
                         "with AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or "
                         "AZURE_FEDERATED_TOKEN_FILE, or enable a managed identity "
                         "(IDENTITY_ENDPOINT is not set)",
                         client_name);
      goto done;
    }
    if (identity_endpoint) {
      result = make_managed(getenv_fn, ctx, client, out, err);
      if (result == RESULT_OK)
        log_info("event=credential_selected kind=managed_identity user_assigned=%s",
                 client ? "true" : "false");
      return result;
    }
    result = RESULT_OK; /* nothing configured: no credential */
    goto done;
  }

  const char *needing = secret      ? secret_name
                        : cert_path ? "AZURE_CLIENT_CERTIFICATE_PATH"
                                    : "AZURE_FEDERATED_TOKEN_FILE";
  if (!tenant || !client) {
    result =
        error_set(err, RESULT_INVALID, tenant ? "AZURE_CLIENT_ID" : "AZURE_TENANT_ID",
                  "%s is set, but %s is not (both AZURE_TENANT_ID and AZURE_CLIENT_ID "
                  "are needed)",
                  needing, tenant ? "AZURE_CLIENT_ID" : "AZURE_TENANT_ID");
    goto done;
  }
  if (!valid_tenant(tenant)) {
    result = error_set(err, RESULT_INVALID, tenant_name,
                       "%s must be a tenant id (GUID) or domain name", tenant_name);
    goto done;
  }
  if (has_control(client)) {
    result = error_set(err, RESULT_INVALID, client_name, "%s holds control characters",
                       client_name);
    goto done;
  }

  enum kind kind = secret ? KIND_SECRET : cert_path ? KIND_CERTIFICATE : KIND_WORKLOAD;
  result = RESULT_NOMEM;
  if (!(cred = credential_new(kind)))
    goto done;
  cred->tenant_setting = tenant_name;
  cred->client_id_setting = client_name;
  cred->secret_setting = kind == KIND_SECRET ? secret_name : needing;
  if (dup_into(&cred->client_id, client))
    goto done;
  if ((result = build_token_url(getenv_fn, ctx, tenant, &cred->token_url, err)) !=
      RESULT_OK)
    goto done;
  result = RESULT_NOMEM;

  if (kind == KIND_SECRET) {
    if (dup_into(&cred->client_secret, secret))
      goto done;
  } else if (kind == KIND_CERTIFICATE) {
    struct error_info cerr = {{0}, {0}};
    int r = crypto_credential_load_pem(cert_path, cert_password, &cred->cert, &cerr);
    if (r == RESULT_NOMEM)
      goto done;
    if (r != RESULT_OK) {
      bool password = r == RESULT_DENIED;
      result = error_set(err, RESULT_INVALID,
                         password ? "AZURE_CLIENT_CERTIFICATE_PASSWORD"
                                  : "AZURE_CLIENT_CERTIFICATE_PATH",
                         "%s: %s",
                         password ? "AZURE_CLIENT_CERTIFICATE_PASSWORD"
                                  : "AZURE_CLIENT_CERTIFICATE_PATH",
                         cerr.message);
      goto done;
    }
    uint8_t sha1[20];
    crypto_credential_thumbprints(cred->cert, sha1, NULL);
    if (!(cred->x5t = crypto_base64url(sha1, sizeof sha1)))
      goto done;
  } else {
    if (dup_into(&cred->federated_token_file, token_file))
      goto done;
  }
  log_info("event=credential_selected kind=%s tenant_setting=%s client_id_setting=%s",
           kind == KIND_SECRET        ? "client_secret"
           : kind == KIND_CERTIFICATE ? "client_certificate"
                                      : "workload_identity",
           tenant_name, client_name);
  *out = cred;
  cred = NULL;
  result = RESULT_OK;
done:
  credential_free(cred);
  return result;
}

void credential_free(struct credential *cred) {
  if (!cred)
    return;
  for (struct cache_entry *e = cred->entries, *next; e; e = next) {
    next = e->next;
    free(e->scope);
    if (e->token) {
      memset(e->token, 0, strlen(e->token));
      free(e->token);
    }
    free(e);
  }
  if (cred->client_secret) {
    memset(cred->client_secret, 0, strlen(cred->client_secret));
    free(cred->client_secret);
  }
  free(cred->client_id);
  free(cred->token_url);
  free(cred->x5t);
  crypto_credential_free(cred->cert);
  free(cred->federated_token_file);
  free(cred->identity_endpoint);
  free(cred->identity_header);
  pthread_mutex_destroy(&cred->lock);
  pthread_cond_destroy(&cred->cond);
  free(cred);
}

/* ---- token responses --------------------------------------------------------- */

/* A JSON number or numeric string as a finite double; false otherwise (strtod
 * reads "nan" and "inf", which no bound check below may meet: NaN passes every
 * comparison's negation, and its cast to int64_t is undefined). */
static bool json_number(const json_t *v, double *out) {
  if (json_is_number(v)) {
    *out = json_number_value(v);
    return true;
  }
  if (!json_is_string(v))
    return false;
  const char *s = json_string_value(v);
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  while (isspace((unsigned char)*end))
    end++;
  if (end == s || *end || errno || !isfinite(d))
    return false;
  *out = d;
  return true;
}

static int malformed(struct error_info *err, const char *source, const char *what) {
  return error_set(err, RESULT_TRANSIENT, "", "the %s token response is malformed: %s",
                   source, what);
}

/* Takes access_token out of `root` after checking it fits an HTTP header. */
static int take_access_token(const json_t *root, const char *source, char **out,
                             struct error_info *err) {
  const char *token = json_string_value(json_object_get(root, "access_token"));
  if (!token || !*token)
    return malformed(err, source, "access_token is missing");
  if (strlen(token) > ACCESS_TOKEN_MAX)
    return malformed(err, source, "access_token is too long");
  for (const unsigned char *p = (const unsigned char *)token; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return malformed(err, source,
                       "access_token holds characters a header cannot carry");
  if (!(*out = strdup(token)))
    return RESULT_NOMEM;
  return RESULT_OK;
}

static int parse_body(const char *body, size_t len, const char *source, json_t **out,
                      struct error_info *err) {
  *out = NULL;
  if (!body || len == 0)
    return malformed(err, source, "the body is empty");
  json_t *root = jsonx_parse(body, len, 8, NULL, NULL);
  if (!json_is_object(root)) {
    json_decref(root);
    return malformed(err, source, "the body is not a JSON object");
  }
  *out = root;
  return RESULT_OK;
}

#define MAX_LIFETIME_S                                                                   \
  (400 * 86400.0)                /* longer-lived tokens are refused as malformed         \
                                  */
#define MAX_EPOCH_S 4102444800.0 /* 2100-01-01: later expiry times are garbage */

static int check_expiry(struct credential_token *out, int64_t now_ms, const char *source,
                        struct error_info *err) {
  if (out->expires_at_ms <= now_ms) {
    free(out->access_token);
    out->access_token = NULL;
    return malformed(err, source, "the token has already expired");
  }
  return RESULT_OK;
}

int credential_parse_aad_response(const char *body, size_t len, int64_t now_ms,
                                  struct credential_token *out, struct error_info *err) {
  static const char source[] = "Entra ID";
  json_t *root = NULL;
  int result;
  memset(out, 0, sizeof *out);
  if ((result = parse_body(body, len, source, &root, err)) != RESULT_OK)
    goto done;
  double expires_in, refresh_in;
  if (!json_number(json_object_get(root, "expires_in"), &expires_in) || expires_in <= 0 ||
      expires_in > MAX_LIFETIME_S) {
    result = malformed(err, source, "expires_in is missing or not a positive number");
    goto done;
  }
  if ((result = take_access_token(root, source, &out->access_token, err)) != RESULT_OK)
    goto done;
  out->expires_at_ms = now_ms + (int64_t)(expires_in * 1000);
  json_t *r = json_object_get(root, "refresh_in");
  if (r && json_number(r, &refresh_in) && refresh_in >= 0 && refresh_in < expires_in)
    out->refresh_at_ms = now_ms + (int64_t)(refresh_in * 1000);
  result = check_expiry(out, now_ms, source, err);
done:
  json_decref(root);
  return result;
}

bool credential_parse_expires_on(const char *text, int64_t *out_ms) {
  if (!text)
    return false;
  while (isspace((unsigned char)*text))
    text++;
  if (time_parse_iso8601_ms(text, out_ms))
    return true;
  /* App Service's older format: "M/D/YYYY H:MM:SS [AM|PM] [+hh:mm]". */
  int mo, d, y, h, mi, s, n = 0;
  if (sscanf(text, "%2d/%2d/%4d %2d:%2d:%2d%n", &mo, &d, &y, &h, &mi, &s, &n) != 6)
    return false;
  const char *p = text + n;
  while (*p == ' ')
    p++;
  if ((p[0] == 'A' || p[0] == 'P' || p[0] == 'a' || p[0] == 'p') &&
      (p[1] == 'M' || p[1] == 'm')) {
    if (h < 1 || h > 12)
      return false;
    h = h % 12 + ((p[0] == 'P' || p[0] == 'p') ? 12 : 0);
    p += 2;
    while (*p == ' ')
      p++;
  }
  char iso[64];
  snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02d%s", y, mo, d, h, mi, s,
           *p ? p : "Z");
  if (strlen(p) > 10)
    return false;
  return time_parse_iso8601_ms(iso, out_ms);
}

int credential_parse_msi_response(const char *body, size_t len, int64_t now_ms,
                                  struct credential_token *out, struct error_info *err) {
  static const char source[] = "managed identity";
  json_t *root = NULL;
  int result;
  memset(out, 0, sizeof *out);
  if ((result = parse_body(body, len, source, &root, err)) != RESULT_OK)
    goto done;
  json_t *on = json_object_get(root, "expires_on");
  double seconds;
  int64_t at_ms;
  /* Bounds before any arithmetic: an epoch before 2100, a lifetime of at most
   * 400 days (as for Entra ID), so nothing overflows whatever the service says. */
  if (on && json_number(on, &seconds) && seconds > 0 && seconds < MAX_EPOCH_S) {
    at_ms = (int64_t)(seconds * 1000);
  } else if (json_is_string(on) &&
             credential_parse_expires_on(json_string_value(on), &at_ms) &&
             at_ms < MAX_EPOCH_S * 1000) {
    /* a date */
  } else if (!on && json_number(json_object_get(root, "expires_in"), &seconds) &&
             seconds > 0 && seconds <= MAX_LIFETIME_S) {
    at_ms = now_ms + (int64_t)(seconds * 1000);
  } else {
    result =
        malformed(err, source, "expires_on is missing or is neither a number nor a date");
    goto done;
  }
  if ((result = take_access_token(root, source, &out->access_token, err)) != RESULT_OK)
    goto done;
  out->expires_at_ms = at_ms;
  double refresh_in;
  json_t *r = json_object_get(root, "refresh_in");
  if (r && json_number(r, &refresh_in) && refresh_in >= 0 && refresh_in <= MAX_LIFETIME_S)
    out->refresh_at_ms = now_ms + (int64_t)(refresh_in * 1000);
  if (at_ms - now_ms > (int64_t)MAX_LIFETIME_S * 1000) {
    free(out->access_token);
    out->access_token = NULL;
    result = malformed(err, source, "expires_on is more than 400 days away");
    goto done;
  }
  result = check_expiry(out, now_ms, source, err);
done:
  json_decref(root);
  return result;
}

/* ---- token requests ---------------------------------------------------------- */

/* "a=b&c=d" from name/value pairs, every value percent-encoded. */
static char *form_encode(const char *const *pairs, size_t count) {
  char *escaped[8] = {0};
  char *form = NULL;
  size_t total = 1;
  if (count > 8)
    return NULL;
  for (size_t i = 0; i < count; i++) {
    if (!(escaped[i] = http_client_escape(pairs[2 * i + 1])))
      goto done;
    total += strlen(pairs[2 * i]) + strlen(escaped[i]) + 2;
  }
  if (!(form = malloc(total)))
    goto done;
  size_t off = 0;
  for (size_t i = 0; i < count; i++)
    off += (size_t)snprintf(form + off, total - off, "%s%s=%s", i ? "&" : "",
                            pairs[2 * i], escaped[i]);
done:
  for (size_t i = 0; i < count; i++) {
    if (escaped[i]) {
      memset(escaped[i], 0, strlen(escaped[i]));
      free(escaped[i]);
    }
  }
  return form;
}

static void free_secret(char *s) {
  if (s) {
    memset(s, 0, strlen(s));
    free(s);
  }
}

/* base64url(JSON of `value`), consuming the reference. */
static char *b64_json(json_t *value) {
  char *text = value ? jsonx_dump(value) : NULL;
  char *b64 = text ? crypto_base64url(text, strlen(text)) : NULL;
  free(text);
  json_decref(value);
  return b64;
}

/* The RS256 client assertion of the certificate credential. */
static int build_assertion(const struct credential *cred, char **out,
                           struct error_info *err) {
  int result = RESULT_NOMEM;
  char *header = NULL, *claims = NULL, *signing = NULL, *sig_b64 = NULL;
  uint8_t *sig = NULL;
  size_t sig_len = 0;
  char jti[37];
  *out = NULL;
  if (crypto_uuid4(jti) != RESULT_OK) {
    result = error_set(err, RESULT_IO, "", "the random generator failed");
    goto done;
  }
  json_int_t now_s = (json_int_t)(time_now_ms() / 1000);
  if (!(header = b64_json(
            json_pack("{s:s,s:s,s:s}", "alg", "RS256", "typ", "JWT", "x5t", cred->x5t))))
    goto done;
  if (!(claims =
            b64_json(json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "aud", cred->token_url, "iss",
                               cred->client_id, "sub", cred->client_id, "jti", jti, "nbf",
                               now_s, "exp", now_s + ASSERTION_LIFETIME_S))))
    goto done;
  size_t signing_len = strlen(header) + strlen(claims) + 1;
  if (!(signing = malloc(signing_len + 1)))
    goto done;
  snprintf(signing, signing_len + 1, "%s.%s", header, claims);
  if ((result = crypto_credential_sign_rs256(cred->cert, signing, signing_len, &sig,
                                             &sig_len, err)) != RESULT_OK)
    goto done;
  result = RESULT_NOMEM;
  if (!(sig_b64 = crypto_base64url(sig, sig_len)))
    goto done;
  size_t jwt_len = signing_len + strlen(sig_b64) + 2;
  if (!(*out = malloc(jwt_len)))
    goto done;
  snprintf(*out, jwt_len, "%s.%s", signing, sig_b64);
  result = RESULT_OK;
done:
  free(header);
  free(claims);
  free(signing);
  free(sig);
  free(sig_b64);
  return result;
}

/* The federated token, read afresh (Kubernetes rotates the file). */
static int read_federated_token(const struct credential *cred, char **out,
                                struct error_info *err) {
  char *buf = NULL;
  size_t n = 0;
  int e = 0;
  *out = NULL;
  int result = files_read(cred->federated_token_file, FEDERATED_TOKEN_MAX, &buf, &n, &e);
  if (result == RESULT_NOTFOUND || result == RESULT_IO) {
    result = error_set(err, RESULT_IO, "AZURE_FEDERATED_TOKEN_FILE",
                       "AZURE_FEDERATED_TOKEN_FILE \"%.200s\" cannot be read: %s",
                       cred->federated_token_file, strerror(e));
    goto done;
  }
  if (result == RESULT_TOOBIG) {
    result =
        error_set(err, RESULT_IO, "AZURE_FEDERATED_TOKEN_FILE",
                  "AZURE_FEDERATED_TOKEN_FILE \"%.200s\" cannot be read or is larger "
                  "than %d bytes",
                  cred->federated_token_file, FEDERATED_TOKEN_MAX);
    goto done;
  }
  if (result != RESULT_OK)
    goto done;
  size_t start = 0;
  while (start < n && isspace((unsigned char)buf[start]))
    start++;
  while (n > start && isspace((unsigned char)buf[n - 1]))
    buf[--n] = '\0';
  if (n == start) {
    result = error_set(err, RESULT_IO, "AZURE_FEDERATED_TOKEN_FILE",
                       "AZURE_FEDERATED_TOKEN_FILE \"%.200s\" is empty",
                       cred->federated_token_file);
    goto done;
  }
  memmove(buf, buf + start, n - start + 1);
  *out = buf;
  buf = NULL;
  result = RESULT_OK;
done:
  free_secret(buf);
  return result;
}

/* The managed identity resource of a scope: "https://x/.default" -> "https://x". */
static char *scope_to_resource(const char *scope) {
  static const char suffix[] = "/.default";
  size_t len = strlen(scope), n = sizeof suffix - 1;
  if (len > n && strcmp(scope + len - n, suffix) == 0)
    len -= n;
  return strndup(scope, len);
}

/* Copies the error code characters of `text` ([A-Za-z0-9_.-]) into out. */
static void safe_code(const char *text, char *out, size_t size) {
  size_t j = 0;
  for (const char *p = text ? text : ""; *p && j + 1 < size; p++)
    if (isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.')
      out[j++] = *p;
  out[j] = '\0';
}

/* Explains a refusal: the service's error and AADSTS code, never its free text. */
static int classify_failure(const struct credential *cred,
                            const struct http_response *resp, struct error_info *err) {
  char code[64] = "", aadsts[32] = "";
  json_t *root =
      resp->body ? jsonx_parse(resp->body, resp->body_len, 8, NULL, NULL) : NULL;
  if (json_is_object(root)) {
    json_t *e = json_object_get(root, "error");
    if (json_is_string(e))
      safe_code(json_string_value(e), code, sizeof code);
    else if (json_is_object(e))
      safe_code(json_string_value(json_object_get(e, "code")), code, sizeof code);
    json_t *codes = json_object_get(root, "error_codes");
    if (json_is_array(codes) && json_is_integer(json_array_get(codes, 0)))
      snprintf(aadsts, sizeof aadsts, "AADSTS%" JSON_INTEGER_FORMAT,
               json_integer_value(json_array_get(codes, 0)));
    const char *desc = json_string_value(json_object_get(root, "error_description"));
    if (!desc)
      desc = json_string_value(json_object_get(root, "message"));
    const char *at = desc ? strstr(desc, "AADSTS") : NULL;
    if (!aadsts[0] && at) {
      size_t j = 6;
      memcpy(aadsts, "AADSTS", 6);
      for (const char *p = at + 6; isdigit((unsigned char)*p) && j + 1 < sizeof aadsts;
           p++)
        aadsts[j++] = *p;
      aadsts[j > 6 ? j : 0] = '\0';
    }
  }
  json_decref(root);
  char detail[128];
  snprintf(detail, sizeof detail, "HTTP %ld%s%s%s%s", resp->status, code[0] ? ", " : "",
           code, aadsts[0] ? ", " : "", aadsts);

  long s = resp->status;
  if (s == 408 || s == 429 || s >= 500 || s < 400)
    return error_set(err, RESULT_TRANSIENT, "",
                     "the %s token request failed (%s); it may pass on retry",
                     kind_names[cred->kind], detail);
  switch (cred->kind) {
    case KIND_SECRET:
      return error_set(err, RESULT_DENIED, cred->secret_setting,
                       "Entra ID refused the client secret credential (%s); check %s, %s "
                       "and %s",
                       detail, cred->secret_setting, cred->client_id_setting,
                       cred->tenant_setting);
    case KIND_CERTIFICATE:
      return error_set(
          err, RESULT_DENIED, "AZURE_CLIENT_CERTIFICATE_PATH",
          "Entra ID refused the client certificate credential (%s); check that "
          "the certificate in AZURE_CLIENT_CERTIFICATE_PATH is registered for "
          "%s in tenant %s",
          detail, cred->client_id_setting, cred->tenant_setting);
    case KIND_WORKLOAD:
      return error_set(
          err, RESULT_DENIED, "AZURE_FEDERATED_TOKEN_FILE",
          "Entra ID refused the workload identity credential (%s); check the "
          "federated credential of %s and the token in "
          "AZURE_FEDERATED_TOKEN_FILE",
          detail, cred->client_id_setting);
    default:
      return error_set(
          err, RESULT_DENIED, cred->client_id ? "AZURE_CLIENT_ID" : "IDENTITY_ENDPOINT",
          "the managed identity endpoint refused the request (%s); check that "
          "the Function App has %s managed identity%s",
          detail, cred->client_id ? "the user-assigned" : "a system-assigned",
          cred->client_id ? " named by AZURE_CLIENT_ID" : "");
  }
}

/* One upstream token request for `scope`; fills `tok` on success. */
static int request_token(struct credential *cred, const char *scope, int64_t deadline_ms,
                         struct credential_token *tok, struct error_info *err) {
  int result = RESULT_NOMEM;
  char *body = NULL, *url = NULL, *assertion = NULL, *resource = NULL, *esc_res = NULL,
       *esc_client = NULL;
  struct http_response resp;
  memset(&resp, 0, sizeof resp);
  memset(tok, 0, sizeof *tok);
  struct http_header headers[2];
  struct http_request req = {.deadline_ms = deadline_ms,
                             .max_response = TOKEN_RESPONSE_MAX,
                             .headers = headers,
                             .header_count = 2};

  if (time_mono_ms() >= deadline_ms) {
    result = error_set(err, RESULT_TIMEOUT, "",
                       "the deadline passed before a %s token could be requested",
                       kind_names[cred->kind]);
    goto done;
  }
  if (cred->kind == KIND_MANAGED) {
    if (!(resource = scope_to_resource(scope)) ||
        !(esc_res = http_client_escape(resource)))
      goto done;
    if (cred->client_id && !(esc_client = http_client_escape(cred->client_id)))
      goto done;
    size_t size = strlen(cred->identity_endpoint) + strlen(esc_res) +
                  (esc_client ? strlen(esc_client) : 0) + 64;
    if (!(url = malloc(size)))
      goto done;
    snprintf(url, size, "%s%capi-version=2019-08-01&resource=%s%s%s",
             cred->identity_endpoint, strchr(cred->identity_endpoint, '?') ? '&' : '?',
             esc_res, esc_client ? "&client_id=" : "", esc_client ? esc_client : "");
    headers[0] = (struct http_header){"X-IDENTITY-HEADER", cred->identity_header};
    headers[1] = (struct http_header){"Accept", "application/json"};
    req.method = "GET";
    req.url = url;
  } else {
    if (cred->kind == KIND_SECRET) {
      const char *pairs[] = {"grant_type",    "client_credentials",
                             "client_id",     cred->client_id,
                             "scope",         scope,
                             "client_secret", cred->client_secret};
      body = form_encode(pairs, 4);
    } else {
      result = cred->kind == KIND_CERTIFICATE
                   ? build_assertion(cred, &assertion, err)
                   : read_federated_token(cred, &assertion, err);
      if (result != RESULT_OK)
        goto done;
      result = RESULT_NOMEM;
      const char *pairs[] = {"grant_type",
                             "client_credentials",
                             "client_id",
                             cred->client_id,
                             "scope",
                             scope,
                             "client_assertion_type",
                             JWT_BEARER,
                             "client_assertion",
                             assertion};
      body = form_encode(pairs, 5);
    }
    if (!body)
      goto done;
    headers[0] =
        (struct http_header){"Content-Type", "application/x-www-form-urlencoded"};
    headers[1] = (struct http_header){"Accept", "application/json"};
    req.method = "POST";
    req.url = cred->token_url;
    req.body = body;
    req.body_len = strlen(body);
  }

  atomic_fetch_add(&cred->requests, 1);
  int64_t now_ms = time_now_ms();
  struct error_info terr = {{0}, {0}};
  result = send_request(&req, &resp, &terr);
  if (result != RESULT_OK) {
    if (result != RESULT_TIMEOUT && result != RESULT_NOMEM)
      result = RESULT_TRANSIENT;
    error_set(err, result, "", "the %s token request failed: %s", kind_names[cred->kind],
              terr.message[0] ? terr.message : result_str(result));
    goto done;
  }
  if (resp.status != 200) {
    result = classify_failure(cred, &resp, err);
    goto done;
  }
  result =
      cred->kind == KIND_MANAGED
          ? credential_parse_msi_response(resp.body, resp.body_len, now_ms, tok, err)
          : credential_parse_aad_response(resp.body, resp.body_len, now_ms, tok, err);
done:
  http_response_cleanup(&resp);
  free_secret(body);
  free_secret(assertion);
  free(url);
  free(resource);
  free(esc_res);
  free(esc_client);
  return result;
}

/* ---- the cache --------------------------------------------------------------- */

static struct cache_entry *find_entry(struct credential *cred, const char *scope) {
  for (struct cache_entry *e = cred->entries; e; e = e->next)
    if (strcmp(e->scope, scope) == 0)
      return e;
  struct cache_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->scope = strdup(scope))) {
    free(e);
    return NULL;
  }
  e->next = cred->entries;
  cred->entries = e;
  return e;
}

/* When to refresh a token: 5 minutes ahead (half-way for short-lived tokens), or
 * when the service asked, whichever is first; not sooner than a second from now
 * (an endpoint that keeps handing out the same dying token is not hammered),
 * and never after expiry. */
static int64_t refresh_time(const struct credential_token *tok, int64_t now_ms) {
  int64_t at = tok->expires_at_ms - REFRESH_AHEAD_MS;
  if (at <= now_ms)
    at = now_ms + (tok->expires_at_ms - now_ms) / 2;
  if (tok->refresh_at_ms > 0 && tok->refresh_at_ms < at)
    at = tok->refresh_at_ms;
  if (at < now_ms + MIN_REFRESH_GAP_MS)
    at = now_ms + MIN_REFRESH_GAP_MS;
  if (at > tok->expires_at_ms)
    at = tok->expires_at_ms;
  return at;
}

int credential_get_token(struct credential *cred, const char *scope, int64_t deadline_ms,
                         char **out_token, struct error_info *err) {
  int result = RESULT_NOMEM;
  *out_token = NULL;
  if (!cred || !scope || !*scope || strlen(scope) > SCOPE_MAX || has_control(scope))
    return error_set(err, RESULT_INVALID, "",
                     "a token was asked for without a usable scope");

  pthread_mutex_lock(&cred->lock);
  struct cache_entry *e = find_entry(cred, scope);
  if (!e)
    goto unlock;
  for (;;) {
    int64_t now = time_now_ms();
    if (e->token &&
        (now < e->refresh_at_ms || (e->refreshing && now < e->expires_at_ms))) {
      result = (*out_token = strdup(e->token)) ? RESULT_OK : RESULT_NOMEM;
      goto unlock;
    }
    if (!e->refreshing)
      break;
    uint64_t generation = e->generation;
    while (e->refreshing && e->generation == generation) {
      if (!deadline_wait(&cred->cond, &cred->lock, deadline_ms) &&
          e->generation == generation) {
        result = error_set(err, RESULT_TIMEOUT, "",
                           "the deadline passed while waiting for a %s token",
                           kind_names[cred->kind]);
        goto unlock;
      }
    }
    if (e->generation != generation && e->last_result != RESULT_OK) {
      result = e->last_result;
      if (err)
        *err = e->last_err;
      goto unlock;
    }
  }

  e->refreshing = true;
  pthread_mutex_unlock(&cred->lock);
  struct credential_token tok;
  struct error_info rerr = {{0}, {0}};
  result = request_token(cred, scope, deadline_ms, &tok, &rerr);
  pthread_mutex_lock(&cred->lock);

  int64_t now = time_now_ms();
  if (result == RESULT_OK) {
    free_secret(e->token);
    e->token = tok.access_token;
    e->expires_at_ms = tok.expires_at_ms;
    e->refresh_at_ms = refresh_time(&tok, now);
    log_info("event=token_acquired kind=%s scope=%s expires_in_s=%lld refresh_in_s=%lld",
             kind_names[cred->kind], scope, (long long)((e->expires_at_ms - now) / 1000),
             (long long)((e->refresh_at_ms - now) / 1000));
  } else if (e->token && now < e->expires_at_ms) {
    /* Refreshing ahead failed, but the old token is still valid. */
    log_warn("event=token_refresh_failed kind=%s scope=%s result=\"%s\" reason=\"%s\" "
             "action=keep_current_token",
             kind_names[cred->kind], scope, result_str(result), rerr.message);
    e->refresh_at_ms = now + RETRY_AFTER_FAILURE_MS;
    if (e->refresh_at_ms > e->expires_at_ms)
      e->refresh_at_ms = e->expires_at_ms;
    result = RESULT_OK;
  } else {
    log_warn("event=token_failed kind=%s scope=%s result=\"%s\" reason=\"%s\"",
             kind_names[cred->kind], scope, result_str(result), rerr.message);
  }
  e->last_result = result;
  e->last_err = rerr;
  e->refreshing = false;
  e->generation++;
  pthread_cond_broadcast(&cred->cond);
  if (result == RESULT_OK)
    result = (*out_token = strdup(e->token)) ? RESULT_OK : RESULT_NOMEM;
  else if (err)
    *err = rerr;
unlock:
  pthread_mutex_unlock(&cred->lock);
  return result;
}
