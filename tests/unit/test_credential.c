/* Unit tests of credential, without a network: the token transport is replaced
 * by a scripted fake (credential_testing.h) that records every request, and
 * both clocks are mocked. Covered: DefaultAzureCredential precedence and the
 * setting aliases, start-up misconfiguration, the exact URLs and form bodies,
 * the certificate JWT (decoded, checked claim by claim, signature verified),
 * the federated token file re-read per request, managed identity URLs and every
 * expires_on form, the cache, refreshing ahead of expiry, single-flight with 16
 * threads, error classification, and that no secret reaches an error sentence
 * or a log line. Certificates are throwaway keys generated with the openssl CLI
 * into a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "azure/credential.h"
#include "azure/credential_testing.h"
#include "base/crypto.h"
#include "crypto_support.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/timeutil.h"

#define T0_MS 1795773600000LL /* 2026-11-27T10:00:00Z */
#define TENANT "72f988bf-0000-0000-0000-2d7cd011db47"
#define CLIENT "00000000-aaaa-bbbb-cccc-000000000001"
#define SECRET "Sup3r/Secret+Value&x=y"
#define ARM CREDENTIAL_SCOPE_ARM_DEFAULT
#define IDENTITY_URL "http://127.0.0.1:41000/msi/token"
#define IDENTITY_SECRET "identity-header-secret-value"

/* ---- fixtures ---------------------------------------------------------------- */

static char dir[64];
static char cert_file[128], enc_cert_file[128], token_file[128];
static FILE *log_capture;

static int64_t wall_ms = T0_MS, mono_ms = 5000000;
static int64_t fake_wall(void) {
  return wall_ms;
}
static int64_t fake_mono(void) {
  return mono_ms;
}

struct kv {
  const char *name, *value;
};
static const char *env_get(void *ctx, const char *name) {
  for (const struct kv *e = ctx; e && e->name; e++)
    if (strcmp(e->name, name) == 0)
      return e->value;
  return NULL;
}

struct reply {
  long status;
  const char *body;
  int result; /* a transport failure instead of an answer */
};

static struct {
  pthread_mutex_t lock;
  struct reply replies[16];
  size_t count, next;
  int calls;
  int delay_ms;
  char method[8];
  char url[1024];
  char headers[1024];
  char body[8192];
} mock = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void mock_reset(void) {
  pthread_mutex_lock(&mock.lock);
  mock.count = mock.next = 0;
  mock.calls = 0;
  mock.delay_ms = 0;
  mock.method[0] = mock.url[0] = mock.headers[0] = mock.body[0] = '\0';
  pthread_mutex_unlock(&mock.lock);
}

static void script(long status, const char *body) {
  mock.replies[mock.count++] = (struct reply){status, body, RESULT_OK};
}

static void script_failure(int result) {
  mock.replies[mock.count++] = (struct reply){0, NULL, result};
}

static int fake_transport(void *ctx, const struct http_request *req,
                          struct http_response *out, struct error_info *err) {
  pthread_mutex_lock(&mock.lock);
  mock.calls++;
  snprintf(mock.method, sizeof mock.method, "%s", req->method);
  snprintf(mock.url, sizeof mock.url, "%s", req->url);
  size_t off = 0;
  for (size_t i = 0; i < req->header_count; i++)
    off += (size_t)snprintf(mock.headers + off, sizeof mock.headers - off, "%s: %s\n",
                            req->headers[i].name, req->headers[i].value);
  snprintf(mock.body, sizeof mock.body, "%.*s", (int)req->body_len,
           req->body ? (const char *)req->body : "");
  assert_true(mock.count > 0);
  struct reply r = mock.replies[mock.next < mock.count ? mock.next++ : mock.count - 1];
  int delay = mock.delay_ms;
  pthread_mutex_unlock(&mock.lock);
  if (delay)
    usleep((useconds_t)delay * 1000);
  memset(out, 0, sizeof *out);
  if (r.result != RESULT_OK)
    return error_set(err, r.result, "", "connection refused (test)");
  out->status = r.status;
  out->body = strdup(r.body);
  out->body_len = strlen(r.body);
  return RESULT_OK;
}

static void write_file(const char *p, const char *text) {
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state) {
  snprintf(dir, sizeof dir, "/tmp/test_credential.XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  char cmd[1024];
  snprintf(
      cmd, sizeof cmd,
      "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem "
      "-subj /CN=throwaway-test -days 2 2>/dev/null && cat key.pem cert.pem > all.pem && "
      "openssl rsa -in key.pem -aes256 -passout pass:CertPa55 -traditional -out enc.pem "
      "2>/dev/null && cat cert.pem >> enc.pem",
      dir);
  if (system(cmd) != 0)
    return -1;
  snprintf(cert_file, sizeof cert_file, "%s/all.pem", dir);
  snprintf(enc_cert_file, sizeof enc_cert_file, "%s/enc.pem", dir);
  snprintf(token_file, sizeof token_file, "%s/federated-token", dir);
  time_set_clock(fake_wall, fake_mono);
  credential_set_transport_for_test(fake_transport, NULL);
  log_capture = tmpfile();
  log_set_streams(log_capture, log_capture);
  return 0;
}

static int teardown(void **state) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    return -1;
  log_set_streams(NULL, NULL);
  fclose(log_capture);
  time_set_clock(NULL, NULL);
  credential_set_transport_for_test(NULL, NULL);
  return 0;
}

static int before_each(void **state) {
  wall_ms = T0_MS;
  mono_ms = 5000000;
  mock_reset();
  return 0;
}

static struct credential *make(const struct kv *env) {
  struct credential *cred = NULL;
  struct error_info err = {{0}, {0}};
  int r = credential_from_env(env_get, (void *)env, &cred, &err);
  if (r != RESULT_OK)
    fail_msg("credential_from_env: %s", err.message);
  assert_non_null(cred);
  return cred;
}

/* Gets a token, expecting `expect`; returns it (caller frees) or NULL. */
static char *get(struct credential *cred, const char *scope, int expect,
                 struct error_info *err) {
  char *token = NULL;
  struct error_info local = {{0}, {0}};
  int r = credential_get_token(cred, scope, mono_ms + 10000, &token, err ? err : &local);
  if (r != expect)
    fail_msg("credential_get_token returned %d (%s), expected %d", r,
             err ? err->message : local.message, expect);
  return token;
}

static void expect_token(struct credential *cred, const char *scope, const char *want) {
  char *token = get(cred, scope, RESULT_OK, NULL);
  assert_string_equal(token, want);
  free(token);
}

#define AAD_OK(tok)                                                                      \
  "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"" tok "\"}"

/* ---- selection and settings -------------------------------------------------- */

static void picks_credentials_in_default_order(void **state) {
  struct kv all[] = {{"AZURE_TENANT_ID", TENANT},
                     {"AZURE_CLIENT_ID", CLIENT},
                     {"AZURE_CLIENT_SECRET", SECRET},
                     {"AZURE_CLIENT_CERTIFICATE_PATH", cert_file},
                     {"AZURE_FEDERATED_TOKEN_FILE", token_file},
                     {"IDENTITY_ENDPOINT", IDENTITY_URL},
                     {"IDENTITY_HEADER", IDENTITY_SECRET},
                     {NULL, NULL}};
  const char *kinds[] = {"client secret", "client certificate", "workload identity"};
  /* Dropping the winner each round reveals the next in line. */
  for (int i = 0; i < 3; i++) {
    struct credential *cred = make(all);
    assert_string_equal(credential_kind(cred), kinds[i]);
    credential_free(cred);
    all[2 + i].value = NULL;
  }
  struct kv mi[] = {{"IDENTITY_ENDPOINT", IDENTITY_URL},
                    {"IDENTITY_HEADER", IDENTITY_SECRET},
                    {NULL, NULL}};
  struct credential *cred = make(mi);
  assert_string_equal(credential_kind(cred), "managed identity");
  credential_free(cred);

  /* Nothing configured: no credential, and that is fine. */
  struct kv none[] = {{"UNRELATED", "x"}, {NULL, NULL}};
  cred = (struct credential *)1;
  assert_int_equal(credential_from_env(env_get, none, &cred, NULL), RESULT_OK);
  assert_null(cred);
}

static void reads_the_aliases(void **state) {
  struct kv env[] = {{"TENANT_ID", "alias-tenant"},
                     {"APP_ID", "alias-app"},
                     {"SERVICE_PRINCIPAL_PASSWORD", "alias-pass"},
                     {NULL, NULL}};
  struct credential *cred = make(env);
  assert_string_equal(credential_kind(cred), "client secret");
  script(200, AAD_OK("tok"));
  expect_token(cred, ARM, "tok");
  assert_string_equal(mock.url,
                      "https://login.microsoftonline.com/alias-tenant/oauth2/v2.0/token");
  assert_string_equal(mock.body,
                      "grant_type=client_credentials&client_id=alias-app&scope="
                      "https%3A%2F%2Fmanagement.azure.com%2F.default&"
                      "client_secret=alias-pass");
  credential_free(cred);

  /* The AZURE_ names win over the aliases. */
  struct kv both[] = {{"AZURE_TENANT_ID", "t1"},
                      {"TENANT_ID", "t2"},
                      {"AZURE_CLIENT_ID", "c1"},
                      {"APP_ID", "c2"},
                      {"AZURE_CLIENT_SECRET", "s1"},
                      {"SERVICE_PRINCIPAL_PASSWORD", "s2"},
                      {NULL, NULL}};
  mock_reset();
  script(200, AAD_OK("tok"));
  cred = make(both);
  expect_token(cred, ARM, "tok");
  assert_string_equal(mock.url, "https://login.microsoftonline.com/t1/oauth2/v2.0/token");
  assert_non_null(strstr(mock.body, "client_id=c1&"));
  assert_non_null(strstr(mock.body, "client_secret=s1"));
  credential_free(cred);
}

static void expect_invalid(const struct kv *env, const char *field, const char *phrase) {
  struct credential *cred = (struct credential *)1;
  struct error_info err = {{0}, {0}};
  assert_int_equal(credential_from_env(env_get, (void *)env, &cred, &err),
                   RESULT_INVALID);
  assert_null(cred);
  assert_string_equal(err.field, field);
  if (!strstr(err.message, phrase))
    fail_msg("\"%s\" does not say \"%s\"", err.message, phrase);
  assert_null(strstr(err.message, SECRET));
  assert_null(strstr(err.message, "CertPa55"));
  assert_null(strstr(err.message, IDENTITY_SECRET));
}

static void refuses_misconfiguration(void **state) {
  struct kv tenant_only[] = {{"AZURE_TENANT_ID", TENANT}, {NULL, NULL}};
  expect_invalid(tenant_only, "AZURE_CLIENT_ID", "AZURE_TENANT_ID is set without");
  struct kv no_tenant[] = {
      {"AZURE_CLIENT_ID", CLIENT}, {"AZURE_CLIENT_SECRET", SECRET}, {NULL, NULL}};
  expect_invalid(no_tenant, "AZURE_TENANT_ID", "AZURE_TENANT_ID is not");
  struct kv no_client[] = {{"AZURE_TENANT_ID", TENANT},
                           {"AZURE_FEDERATED_TOKEN_FILE", token_file},
                           {NULL, NULL}};
  expect_invalid(no_client, "AZURE_CLIENT_ID", "AZURE_CLIENT_ID is not");
  struct kv no_secret[] = {
      {"AZURE_TENANT_ID", TENANT}, {"AZURE_CLIENT_ID", CLIENT}, {NULL, NULL}};
  expect_invalid(no_secret, "AZURE_CLIENT_SECRET", "none of AZURE_CLIENT_SECRET");
  /* Half a service principal (issue 11 item 7): a client id that neither a
   * service principal nor a managed identity could use. */
  struct kv client_only[] = {{"AZURE_CLIENT_ID", CLIENT}, {NULL, NULL}};
  expect_invalid(client_only, "AZURE_CLIENT_ID",
                 "AZURE_CLIENT_ID is set, but no credential can use it");
  struct kv app_id_only[] = {{"APP_ID", CLIENT}, {NULL, NULL}};
  expect_invalid(app_id_only, "APP_ID", "APP_ID is set, but no credential can use it");
  struct kv bad_tenant[] = {{"AZURE_TENANT_ID", "a/b?c"},
                            {"AZURE_CLIENT_ID", CLIENT},
                            {"AZURE_CLIENT_SECRET", SECRET},
                            {NULL, NULL}};
  expect_invalid(bad_tenant, "AZURE_TENANT_ID", "tenant id");
  struct kv no_header[] = {{"IDENTITY_ENDPOINT", IDENTITY_URL}, {NULL, NULL}};
  expect_invalid(no_header, "IDENTITY_HEADER", "IDENTITY_ENDPOINT is set without");
  struct kv http_authority[] = {{"AZURE_TENANT_ID", TENANT},
                                {"AZURE_CLIENT_ID", CLIENT},
                                {"AZURE_CLIENT_SECRET", SECRET},
                                {"AZURE_AUTHORITY_HOST", "http://login.example.test"},
                                {NULL, NULL}};
  expect_invalid(http_authority, "AZURE_AUTHORITY_HOST", "https://");

  char missing[160];
  snprintf(missing, sizeof missing, "%s/no-such.pem", dir);
  struct kv bad_cert[] = {{"AZURE_TENANT_ID", TENANT},
                          {"AZURE_CLIENT_ID", CLIENT},
                          {"AZURE_CLIENT_CERTIFICATE_PATH", missing},
                          {NULL, NULL}};
  expect_invalid(bad_cert, "AZURE_CLIENT_CERTIFICATE_PATH", missing);
  struct kv wrong_password[] = {{"AZURE_TENANT_ID", TENANT},
                                {"AZURE_CLIENT_ID", CLIENT},
                                {"AZURE_CLIENT_CERTIFICATE_PATH", enc_cert_file},
                                {"AZURE_CLIENT_CERTIFICATE_PASSWORD", "NotCertPa55"},
                                {NULL, NULL}};
  expect_invalid(wrong_password, "AZURE_CLIENT_CERTIFICATE_PASSWORD",
                 "password is wrong");

  /* The encrypted key with its password is fine. */
  wrong_password[3].value = "CertPa55";
  credential_free(make(wrong_password));

  /* App Insights' Authorization=AAD needs the platform's identity endpoint. */
  struct credential *cred = (struct credential *)1;
  struct error_info err = {{0}, {0}};
  assert_int_equal(credential_managed_identity(env_get, tenant_only, NULL, &cred, &err),
                   RESULT_INVALID);
  assert_null(cred);
  assert_string_equal(err.field, "IDENTITY_ENDPOINT");
}

static void builds_the_token_url_from_the_authority(void **state) {
  const char *hosts[] = {NULL, "https://login.example.test///",
                         "login.microsoftonline.us"};
  const char *urls[] = {"https://login.microsoftonline.com/" TENANT "/oauth2/v2.0/token",
                        "https://login.example.test/" TENANT "/oauth2/v2.0/token",
                        "https://login.microsoftonline.us/" TENANT "/oauth2/v2.0/token"};
  for (int i = 0; i < 3; i++) {
    struct kv env[] = {{"AZURE_TENANT_ID", TENANT},
                       {"AZURE_CLIENT_ID", CLIENT},
                       {"AZURE_CLIENT_SECRET", SECRET},
                       {"AZURE_AUTHORITY_HOST", hosts[i]},
                       {NULL, NULL}};
    mock_reset();
    script(200, AAD_OK("tok"));
    struct credential *cred = make(env);
    expect_token(cred, ARM, "tok");
    assert_string_equal(mock.method, "POST");
    assert_string_equal(mock.url, urls[i]);
    credential_free(cred);
  }
}

/* ---- request shapes ---------------------------------------------------------- */

static void sends_the_client_secret_form(void **state) {
  struct kv env[] = {{"AZURE_TENANT_ID", TENANT},
                     {"AZURE_CLIENT_ID", CLIENT},
                     {"AZURE_CLIENT_SECRET", SECRET},
                     {NULL, NULL}};
  struct credential *cred = make(env);
  script(200, AAD_OK("secret-tok"));
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "secret-tok");
  assert_string_equal(mock.body, "grant_type=client_credentials&client_id=" CLIENT
                                 "&scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default"
                                 "&client_secret=Sup3r%2FSecret%2BValue%26x%3Dy");
  assert_non_null(
      strstr(mock.headers, "Content-Type: application/x-www-form-urlencoded\n"));
  credential_free(cred);
}

/* openssl's SHA-1 fingerprint of the test certificate, as base64url. */
static char *expected_x5t(void) {
  char cmd[256], line[256];
  snprintf(cmd, sizeof cmd, "openssl x509 -in %s/cert.pem -noout -fingerprint -sha1",
           dir);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  assert_non_null(fgets(line, sizeof line, p));
  pclose(p);
  uint8_t der_sha1[20];
  const char *v = strchr(line, '=') + 1;
  for (int i = 0; i < 20; i++, v += 3) {
    unsigned byte;
    assert_int_equal(sscanf(v, "%2x", &byte), 1);
    der_sha1[i] = (uint8_t)byte;
  }
  return crypto_base64url(der_sha1, sizeof der_sha1);
}

static json_t *decode_part(const char *b64, size_t len) {
  uint8_t *text;
  size_t text_len;
  assert_int_equal(crypto_base64url_decode(b64, len, &text, &text_len), RESULT_OK);
  json_t *v = jsonx_parse((const char *)text, text_len, 8, NULL, NULL);
  free(text);
  assert_non_null(v);
  return v;
}

static void signs_a_verifiable_client_assertion(void **state) {
  struct kv env[] = {{"AZURE_TENANT_ID", TENANT},
                     {"AZURE_CLIENT_ID", CLIENT},
                     {"AZURE_CLIENT_CERTIFICATE_PATH", cert_file},
                     {NULL, NULL}};
  struct credential *cred = make(env);
  script(200, AAD_OK("cert-tok"));
  expect_token(cred, ARM, "cert-tok");
  const char *prefix = "grant_type=client_credentials&client_id=" CLIENT
                       "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
                       "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-"
                       "assertion-type%3Ajwt-bearer&client_assertion=";
  assert_memory_equal(mock.body, prefix, strlen(prefix));
  const char *jwt = mock.body + strlen(prefix);
  const char *dot1 = strchr(jwt, '.');
  assert_non_null(dot1);
  const char *dot2 = strchr(dot1 + 1, '.');
  assert_non_null(dot2);
  assert_null(strchr(dot2 + 1, '.'));
  assert_null(strchr(jwt, '&'));

  json_t *header = decode_part(jwt, (size_t)(dot1 - jwt));
  assert_string_equal(json_string_value(json_object_get(header, "alg")), "RS256");
  assert_string_equal(json_string_value(json_object_get(header, "typ")), "JWT");
  char *x5t = expected_x5t();
  assert_string_equal(json_string_value(json_object_get(header, "x5t")), x5t);
  free(x5t);
  json_decref(header);

  json_t *claims = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
  assert_string_equal(json_string_value(json_object_get(claims, "aud")),
                      "https://login.microsoftonline.com/" TENANT "/oauth2/v2.0/token");
  assert_string_equal(json_string_value(json_object_get(claims, "iss")), CLIENT);
  assert_string_equal(json_string_value(json_object_get(claims, "sub")), CLIENT);
  const char *jti = json_string_value(json_object_get(claims, "jti"));
  assert_non_null(jti);
  assert_int_equal(strlen(jti), 36);
  assert_int_equal(jti[14], '4');
  assert_int_equal(json_integer_value(json_object_get(claims, "nbf")), T0_MS / 1000);
  assert_int_equal(json_integer_value(json_object_get(claims, "exp")),
                   T0_MS / 1000 + 600);
  char first_jti[37];
  snprintf(first_jti, sizeof first_jti, "%s", jti);
  json_decref(claims);

  /* The signature verifies with the certificate's public key. */
  uint8_t *sig;
  size_t sig_len;
  assert_int_equal(crypto_base64url_decode(dot2 + 1, strlen(dot2 + 1), &sig, &sig_len),
                   RESULT_OK);
  struct crypto_credential *cc = NULL;
  assert_int_equal(crypto_credential_load_pem(cert_file, NULL, &cc, NULL), RESULT_OK);
  assert_int_equal(
      crypto_verify_rs256_with_cert(cert_file, jwt, (size_t)(dot2 - jwt), sig, sig_len),
      RESULT_OK);
  assert_int_equal(crypto_verify_rs256_with_cert(cert_file, jwt, (size_t)(dot2 - jwt) - 1,
                                                 sig, sig_len),
                   RESULT_INVALID);
  crypto_credential_free(cc);
  free(sig);

  /* A new assertion for every request: a fresh jti. */
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "cert-tok");
  assert_int_equal(mock.calls, 2);
  claims = decode_part(
      strchr(mock.body + strlen(prefix), '.') + 1,
      (size_t)(strrchr(mock.body, '.') - strchr(mock.body + strlen(prefix), '.') - 1));
  assert_string_not_equal(json_string_value(json_object_get(claims, "jti")), first_jti);
  json_decref(claims);
  credential_free(cred);
}

static void rereads_the_federated_token_file(void **state) {
  struct kv env[] = {{"AZURE_TENANT_ID", TENANT},
                     {"AZURE_CLIENT_ID", CLIENT},
                     {"AZURE_FEDERATED_TOKEN_FILE", token_file},
                     {NULL, NULL}};
  write_file(token_file, "  fed-token-A\n");
  struct credential *cred = make(env);
  script(200, AAD_OK("wi-tok"));
  expect_token(cred, ARM, "wi-tok");
  assert_string_equal(mock.body,
                      "grant_type=client_credentials&client_id=" CLIENT
                      "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
                      "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-"
                      "assertion-type%3Ajwt-bearer&client_assertion=fed-token-A");

  /* Kubernetes rotated the file: the next request carries the new token. */
  write_file(token_file, "fed-token-B");
  wall_ms += 3600 * 1000;
  expect_token(cred, ARM, "wi-tok");
  assert_int_equal(mock.calls, 2);
  assert_non_null(strstr(mock.body, "&client_assertion=fed-token-B"));

  struct error_info err;
  write_file(token_file, " \n\t");
  assert_null(get(cred, CREDENTIAL_SCOPE_MONITOR, RESULT_IO, &err));
  assert_string_equal(err.field, "AZURE_FEDERATED_TOKEN_FILE");
  assert_non_null(strstr(err.message, "is empty"));
  unlink(token_file);
  assert_null(get(cred, CREDENTIAL_SCOPE_MONITOR, RESULT_IO, &err));
  assert_non_null(strstr(err.message, token_file));
  assert_non_null(strstr(err.message, "cannot be read"));
  assert_int_equal(mock.calls, 2);
  credential_free(cred);
}

static void asks_the_managed_identity_endpoint(void **state) {
  struct kv env[] = {{"IDENTITY_ENDPOINT", IDENTITY_URL},
                     {"IDENTITY_HEADER", IDENTITY_SECRET},
                     {NULL, NULL}};
  struct credential *cred = make(env);
  script(200, "{\"access_token\":\"mi-tok\",\"expires_on\":1795860000,\"resource\":\"x\","
              "\"token_type\":\"Bearer\"}");
  expect_token(cred, ARM, "mi-tok");
  assert_string_equal(mock.method, "GET");
  assert_string_equal(mock.url, IDENTITY_URL "?api-version=2019-08-01&resource="
                                             "https%3A%2F%2Fmanagement.azure.com");
  assert_non_null(strstr(mock.headers, "X-IDENTITY-HEADER: " IDENTITY_SECRET "\n"));
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "mi-tok");
  assert_string_equal(mock.url, IDENTITY_URL "?api-version=2019-08-01&resource="
                                             "https%3A%2F%2Fmonitor.azure.com%2F");
  credential_free(cred);

  /* User-assigned: AZURE_CLIENT_ID, or the ClientId of App Insights' string. */
  struct kv user[] = {{"IDENTITY_ENDPOINT", IDENTITY_URL},
                      {"IDENTITY_HEADER", IDENTITY_SECRET},
                      {"AZURE_CLIENT_ID", CLIENT},
                      {NULL, NULL}};
  cred = make(user);
  assert_string_equal(credential_kind(cred), "managed identity");
  expect_token(cred, ARM, "mi-tok");
  assert_string_equal(mock.url, IDENTITY_URL "?api-version=2019-08-01&resource="
                                             "https%3A%2F%2Fmanagement.azure.com"
                                             "&client_id=" CLIENT);
  credential_free(cred);
  assert_int_equal(credential_managed_identity(env_get, env, "ai-client", &cred, NULL),
                   RESULT_OK);
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "mi-tok");
  assert_string_equal(mock.url, IDENTITY_URL "?api-version=2019-08-01&resource="
                                             "https%3A%2F%2Fmonitor.azure.com%2F"
                                             "&client_id=ai-client");
  credential_free(cred);
}

/* ---- responses and the cache ------------------------------------------------- */

static void parses_every_expires_on_form(void **state) {
  const int64_t at = 1795860000000LL; /* 2026-11-28T10:00:00Z */
  const char *dates[] = {
      "11/28/2026 10:00:00 +00:00",        "11/28/2026 11:00:00 +01:00",
      "11/28/2026 10:00:00 AM +00:00",     "2026-11-28T10:00:00Z",
      "2026-11-28T10:00:00.0000000+00:00", "11/28/2026 10:00:00"};
  for (size_t i = 0; i < sizeof dates / sizeof *dates; i++) {
    int64_t ms = 0;
    if (!credential_parse_expires_on(dates[i], &ms) || ms != at)
      fail_msg("\"%s\" parsed as %lld", dates[i], (long long)ms);
  }
  int64_t ms;
  assert_true(credential_parse_expires_on("6/20/2019 4:58:10 PM +00:00", &ms));
  assert_int_equal(ms, 1561049890000LL);
  assert_true(credential_parse_expires_on("6/20/2019 12:58:10 AM +00:00", &ms));
  assert_int_equal(ms, 1561049890000LL - 16 * 3600000LL);
  assert_false(credential_parse_expires_on("tomorrow", &ms));
  assert_false(credential_parse_expires_on("13/40/2026 10:00:00", &ms));

  /* Through the whole flow: each form is cached until five minutes before it. */
  char bodies[5][160];
  const char *forms[] = {"1795860000", "\"1795860000\"", "\"11/28/2026 10:00:00 +00:00\"",
                         "\"2026-11-28T10:00:00Z\"", "1795860000.0"};
  struct kv env[] = {{"IDENTITY_ENDPOINT", IDENTITY_URL},
                     {"IDENTITY_HEADER", IDENTITY_SECRET},
                     {NULL, NULL}};
  for (int i = 0; i < 5; i++) {
    snprintf(bodies[i], sizeof bodies[i],
             "{\"access_token\":\"mi-%d\",\"expires_on\":%s,\"token_type\":\"Bearer\"}",
             i, forms[i]);
    mock_reset();
    wall_ms = T0_MS;
    script(200, bodies[i]);
    struct credential *cred = make(env);
    char want[8];
    snprintf(want, sizeof want, "mi-%d", i);
    expect_token(cred, ARM, want);
    wall_ms = at - 301 * 1000;
    expect_token(cred, ARM, want);
    assert_int_equal(mock.calls, 1);
    wall_ms = at - 299 * 1000;
    expect_token(cred, ARM, want);
    assert_int_equal(mock.calls, 2);
    credential_free(cred);
  }

  /* Entra ID: expires_in as a number or a numeric string, refresh_in optional. */
  struct credential_token tok;
  const char *as_string = "{\"access_token\":\"a\",\"expires_in\":\"3599\"}";
  assert_int_equal(
      credential_parse_aad_response(as_string, strlen(as_string), 1000, &tok, NULL),
      RESULT_OK);
  assert_int_equal(tok.expires_at_ms, 1000 + 3599000);
  assert_int_equal(tok.refresh_at_ms, 0);
  free(tok.access_token);
  const char *with_refresh =
      "{\"access_token\":\"a\",\"expires_in\":86399,\"refresh_in\":43199}";
  assert_int_equal(
      credential_parse_aad_response(with_refresh, strlen(with_refresh), 0, &tok, NULL),
      RESULT_OK);
  assert_int_equal(tok.refresh_at_ms, 43199000);
  free(tok.access_token);
  /* strtod reads "nan": not a lifetime (no NaN reaches an int64_t cast). */
  const char *nan_lifetime = "{\"access_token\":\"a\",\"expires_in\":\"nan\"}";
  struct error_info err = {0};
  assert_int_equal(
      credential_parse_aad_response(nan_lifetime, strlen(nan_lifetime), 0, &tok, &err),
      RESULT_TRANSIENT);
  assert_non_null(strstr(err.message, "expires_in"));
  assert_null(tok.access_token);
}

static void caches_per_scope(void **state) {
  struct kv env[] = {{"AZURE_TENANT_ID", TENANT},
                     {"AZURE_CLIENT_ID", CLIENT},
                     {"AZURE_CLIENT_SECRET", SECRET},
                     {NULL, NULL}};
  struct credential *cred = make(env);
  script(200, AAD_OK("arm-tok"));
  script(200, AAD_OK("monitor-tok"));
  for (int i = 0; i < 5; i++)
    expect_token(cred, ARM, "arm-tok");
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "monitor-tok");
  expect_token(cred, ARM, "arm-tok");
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "monitor-tok");
  assert_int_equal(mock.calls, 2);
  assert_int_equal(credential_token_requests(cred), 2);
  credential_free(cred);
}

static void refreshes_ahead_of_expiry(void **state) {
  struct kv env[] = {{"AZURE_TENANT_ID", TENANT},
                     {"AZURE_CLIENT_ID", CLIENT},
                     {"AZURE_CLIENT_SECRET", SECRET},
                     {NULL, NULL}};
  struct credential *cred = make(env);
  script(200, AAD_OK("tok1"));
  script(200,
         "{\"access_token\":\"tok2\",\"expires_in\":\"86400\",\"refresh_in\":43200}");
  script(503, "{\"error\":\"temporarily_unavailable\"}");
  script(200, AAD_OK("tok3"));
  expect_token(cred, ARM, "tok1");
  wall_ms = T0_MS + 3299 * 1000; /* 301 s left: still good */
  expect_token(cred, ARM, "tok1");
  assert_int_equal(mock.calls, 1);
  wall_ms = T0_MS + 3301 * 1000; /* 299 s left: refresh */
  expect_token(cred, ARM, "tok2");
  assert_int_equal(mock.calls, 2);

  /* refresh_in is honoured before the five-minute rule. */
  int64_t t2 = wall_ms;
  wall_ms = t2 + 43199 * 1000;
  expect_token(cred, ARM, "tok2");
  assert_int_equal(mock.calls, 2);
  /* The refresh fails (503): the current token still has hours, so it is kept,
   * and no new attempt is made for 30 s. */
  wall_ms = t2 + 43201 * 1000;
  expect_token(cred, ARM, "tok2");
  assert_int_equal(mock.calls, 3);
  wall_ms += 29 * 1000;
  expect_token(cred, ARM, "tok2");
  assert_int_equal(mock.calls, 3);
  wall_ms += 2 * 1000;
  expect_token(cred, ARM, "tok3");
  assert_int_equal(mock.calls, 4);

  /* Expired and the refresh fails: an error, not the dead token. */
  mock_reset();
  script(503, "{}");
  wall_ms += 3600 * 1000;
  struct error_info err;
  assert_null(get(cred, ARM, RESULT_TRANSIENT, &err));
  credential_free(cred);

  /* A short-lived token is refreshed half-way. */
  mock_reset();
  wall_ms = T0_MS;
  script(200, "{\"access_token\":\"short\",\"expires_in\":90}");
  script(200, AAD_OK("long"));
  cred = make(env);
  expect_token(cred, ARM, "short");
  wall_ms = T0_MS + 44 * 1000;
  expect_token(cred, ARM, "short");
  wall_ms = T0_MS + 46 * 1000;
  expect_token(cred, ARM, "long");
  assert_int_equal(mock.calls, 2);

  /* A token still valid is used, however soon it expires (issue 11 item 6). */
  mock_reset();
  script(200, "{\"access_token\":\"brief\",\"expires_in\":59}");
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "brief");
  credential_free(cred);
}

/* A managed identity endpoint hands out its cached token, which may be seconds
 * from expiry, and keeps handing it out until it has a new one: every one of
 * those tokens is still valid and is used; refreshes are tried ahead of expiry
 * and a failing one keeps the valid token; only an expired token is an error
 * (issue 11 item 6). */
static void uses_a_valid_token_however_soon_it_expires(void **state) {
  struct kv env[] = {{"IDENTITY_ENDPOINT", IDENTITY_URL},
                     {"IDENTITY_HEADER", IDENTITY_SECRET},
                     {NULL, NULL}};
  struct credential *cred = make(env);
  char body[200];
  int64_t expires_s = T0_MS / 1000 + 30; /* the endpoint's cached token: 30 s left */
  snprintf(body, sizeof body,
           "{\"access_token\":\"cached\",\"expires_on\":%lld,\"token_type\":\"Bearer\"}",
           (long long)expires_s);
  for (int i = 0; i < 4; i++)
    script(200, body);
  script(503, "{}");
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "cached");
  assert_int_equal(mock.calls, 1);
  wall_ms = T0_MS + 10 * 1000; /* 20 s left: before the half-way refresh */
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "cached");
  assert_int_equal(mock.calls, 1);
  wall_ms = T0_MS + 20 * 1000; /* 10 s left: refreshed, the same token again */
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "cached");
  assert_int_equal(mock.calls, 2);
  wall_ms = T0_MS + 28 * 1000; /* 2 s left: still used */
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "cached");
  wall_ms = T0_MS + 29 * 1000;
  expect_token(cred, CREDENTIAL_SCOPE_MONITOR, "cached");
  int calls = mock.calls;
  assert_true(calls >= 3 && calls <= 5);

  /* Expired, and the endpoint still hands out the dead token: an error that
   * says so (the invocation fails and Event Grid delivers it again). */
  mock_reset();
  script(200, body);
  wall_ms = T0_MS + 31 * 1000;
  struct error_info err;
  assert_null(get(cred, CREDENTIAL_SCOPE_MONITOR, RESULT_TRANSIENT, &err));
  assert_non_null(strstr(err.message, "already expired"));
  credential_free(cred);
}

struct racer {
  pthread_barrier_t *barrier;
  struct credential *cred;
  int result;
  char *token;
  struct error_info err;
};

static void *race(void *arg) {
  struct racer *r = arg;
  pthread_barrier_wait(r->barrier);
  r->result = credential_get_token(r->cred, ARM, mono_ms + 10000, &r->token, &r->err);
  return NULL;
}

static void run_racers(struct credential *cred, struct racer *racers, int n) {
  pthread_barrier_t barrier;
  pthread_t threads[16];
  pthread_barrier_init(&barrier, NULL, (unsigned)n);
  for (int i = 0; i < n; i++) {
    racers[i] = (struct racer){.barrier = &barrier, .cred = cred};
    assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
  }
  for (int i = 0; i < n; i++)
    pthread_join(threads[i], NULL);
  pthread_barrier_destroy(&barrier);
}

static void refreshes_once_for_many_callers(void **state) {
  struct kv env[] = {{"AZURE_TENANT_ID", TENANT},
                     {"AZURE_CLIENT_ID", CLIENT},
                     {"AZURE_CLIENT_SECRET", SECRET},
                     {NULL, NULL}};
  struct racer racers[16];
  struct credential *cred = make(env);
  script(200, AAD_OK("shared-tok"));
  mock.delay_ms = 200;
  run_racers(cred, racers, 16);
  for (int i = 0; i < 16; i++) {
    assert_int_equal(racers[i].result, RESULT_OK);
    assert_string_equal(racers[i].token, "shared-tok");
    free(racers[i].token);
  }
  assert_int_equal(mock.calls, 1);
  assert_int_equal(credential_token_requests(cred), 1);
  credential_free(cred);

  /* A refused refresh: every waiter gets the same error, from one request. */
  mock_reset();
  script(401, "{\"error\":\"invalid_client\",\"error_codes\":[7000215]}");
  mock.delay_ms = 200;
  cred = make(env);
  run_racers(cred, racers, 16);
  for (int i = 0; i < 16; i++) {
    assert_int_equal(racers[i].result, RESULT_DENIED);
    assert_null(racers[i].token);
    assert_string_equal(racers[i].err.message, racers[0].err.message);
  }
  assert_int_equal(mock.calls, 1);
  credential_free(cred);

  /* A waiter whose own deadline passes first gives up with RESULT_TIMEOUT. */
  mock_reset();
  script(200, AAD_OK("slow-tok"));
  mock.delay_ms = 300;
  cred = make(env);
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, 1);
  struct racer slow = {.barrier = &barrier, .cred = cred};
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, race, &slow), 0);
  usleep(50 * 1000);
  char *token = NULL;
  struct error_info err;
  assert_int_equal(credential_get_token(cred, ARM, mono_ms + 50, &token, &err),
                   RESULT_TIMEOUT);
  assert_null(token);
  assert_non_null(strstr(err.message, "waiting"));
  pthread_join(thread, NULL);
  pthread_barrier_destroy(&barrier);
  assert_int_equal(slow.result, RESULT_OK);
  assert_string_equal(slow.token, "slow-tok");
  free(slow.token);
  assert_int_equal(mock.calls, 1);
  credential_free(cred);
}

/* ---- failures ---------------------------------------------------------------- */

struct failure_case {
  long status;
  const char *body;
  int transport_result;
  int expect;
  const char *phrases[4];
};

static void classifies_failures(void **state) {
  static const struct failure_case cases[] = {
      {400,
       "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid "
       "client "
       "secret provided: Sup3r/Secret+Value&x=y\",\"error_codes\":[7000215]}",
       0,
       RESULT_DENIED,
       {"client secret", "AZURE_CLIENT_SECRET", "invalid_client", "AADSTS7000215"}},
      {401,
       "{\"error\":\"unauthorized_client\",\"error_description\":\"AADSTS700016: "
       "Application not found\"}",
       0,
       RESULT_DENIED,
       {"HTTP 401", "unauthorized_client", "AADSTS700016", "AZURE_TENANT_ID"}},
      {403, "{}", 0, RESULT_DENIED, {"HTTP 403", "client secret", NULL, NULL}},
      {429,
       "{\"error\":\"throttled\"}",
       0,
       RESULT_TRANSIENT,
       {"HTTP 429", NULL, NULL, NULL}},
      {503, "<html>down</html>", 0, RESULT_TRANSIENT, {"HTTP 503", NULL, NULL, NULL}},
      {0,
       NULL,
       RESULT_TRANSIENT,
       RESULT_TRANSIENT,
       {"connection refused", NULL, NULL, NULL}},
      {0, NULL, RESULT_TIMEOUT, RESULT_TIMEOUT, {"client secret", NULL, NULL, NULL}},
      {200,
       "not json",
       0,
       RESULT_TRANSIENT,
       {"malformed", "not a JSON object", NULL, NULL}},
      {200,
       "{\"expires_in\":3600}",
       0,
       RESULT_TRANSIENT,
       {"access_token", NULL, NULL, NULL}},
      {200,
       "{\"access_token\":\"x\"}",
       0,
       RESULT_TRANSIENT,
       {"expires_in", NULL, NULL, NULL}},
      {200,
       "{\"access_token\":\"a\\r\\nX-Evil: 1\",\"expires_in\":3600}",
       0,
       RESULT_TRANSIENT,
       {"header", NULL, NULL, NULL}},
  };
  struct kv env[] = {{"AZURE_TENANT_ID", TENANT},
                     {"AZURE_CLIENT_ID", CLIENT},
                     {"AZURE_CLIENT_SECRET", SECRET},
                     {NULL, NULL}};
  struct credential *cred = make(env);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const struct failure_case *c = &cases[i];
    mock_reset();
    if (c->transport_result)
      script_failure(c->transport_result);
    else
      script(c->status, c->body);
    struct error_info err = {{0}, {0}};
    assert_null(get(cred, ARM, c->expect, &err));
    for (int j = 0; j < 4 && c->phrases[j]; j++)
      if (!strstr(err.message, c->phrases[j]))
        fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err.message, c->phrases[j]);
    assert_null(strstr(err.message, "Sup3r"));
    assert_null(strstr(err.message, "Invalid client secret provided"));
  }
  credential_free(cred);

  /* The certificate credential names its setting and never echoes the JWT. */
  struct kv cert_env[] = {{"AZURE_TENANT_ID", TENANT},
                          {"AZURE_CLIENT_ID", CLIENT},
                          {"AZURE_CLIENT_CERTIFICATE_PATH", cert_file},
                          {NULL, NULL}};
  mock_reset();
  script(401, "{\"error\":\"invalid_client\",\"error_codes\":[700027]}");
  cred = make(cert_env);
  struct error_info err;
  assert_null(get(cred, ARM, RESULT_DENIED, &err));
  assert_string_equal(err.field, "AZURE_CLIENT_CERTIFICATE_PATH");
  assert_non_null(strstr(err.message, "client certificate"));
  assert_non_null(strstr(err.message, "AADSTS700027"));
  assert_null(strstr(err.message, "eyJ"));
  credential_free(cred);

  /* Managed identity refusals say so. */
  struct kv mi_env[] = {{"IDENTITY_ENDPOINT", IDENTITY_URL},
                        {"IDENTITY_HEADER", IDENTITY_SECRET},
                        {"AZURE_CLIENT_ID", CLIENT},
                        {NULL, NULL}};
  mock_reset();
  script(400, "{\"statusCode\":400,\"message\":\"No User Assigned or Delegated Managed "
              "Identity found for specified ClientId/ResourceId/PrincipalId.\"}");
  cred = make(mi_env);
  assert_null(get(cred, ARM, RESULT_DENIED, &err));
  assert_string_equal(err.field, "AZURE_CLIENT_ID");
  assert_non_null(strstr(err.message, "managed identity"));
  assert_null(strstr(err.message, IDENTITY_SECRET));
  credential_free(cred);

  /* A passed deadline sends nothing. */
  mock_reset();
  script(200, AAD_OK("late"));
  cred = make(env);
  char *token = NULL;
  assert_int_equal(credential_get_token(cred, ARM, mono_ms - 1, &token, &err),
                   RESULT_TIMEOUT);
  assert_null(token);
  assert_int_equal(mock.calls, 0);
  assert_int_equal(credential_get_token(cred, "", mono_ms + 1000, &token, &err),
                   RESULT_INVALID);
  credential_free(cred);
}

/* Runs last: nothing any test did put a secret or a token into the log. */
static void logs_no_secrets(void **state) {
  fflush(log_capture);
  long size = ftell(log_capture);
  assert_true(size > 0);
  char *text = calloc(1, (size_t)size + 1);
  rewind(log_capture);
  assert_int_equal(fread(text, 1, (size_t)size, log_capture), (size_t)size);
  const char *secrets[] = {"Sup3r",     "alias-pass", "CertPa55",   IDENTITY_SECRET,
                           "fed-token", "eyJ",        "secret-tok", "shared-tok",
                           "mi-tok",    "cert-tok"};
  for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
    if (strstr(text, secrets[i]))
      fail_msg("the log holds \"%s\"", secrets[i]);
  assert_non_null(strstr(text, "event=token_acquired"));
  assert_non_null(strstr(text, "event=token_failed"));
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(picks_credentials_in_default_order, before_each),
      cmocka_unit_test_setup(reads_the_aliases, before_each),
      cmocka_unit_test_setup(refuses_misconfiguration, before_each),
      cmocka_unit_test_setup(builds_the_token_url_from_the_authority, before_each),
      cmocka_unit_test_setup(sends_the_client_secret_form, before_each),
      cmocka_unit_test_setup(signs_a_verifiable_client_assertion, before_each),
      cmocka_unit_test_setup(rereads_the_federated_token_file, before_each),
      cmocka_unit_test_setup(asks_the_managed_identity_endpoint, before_each),
      cmocka_unit_test_setup(parses_every_expires_on_form, before_each),
      cmocka_unit_test_setup(caches_per_scope, before_each),
      cmocka_unit_test_setup(refreshes_ahead_of_expiry, before_each),
      cmocka_unit_test_setup(uses_a_valid_token_however_soon_it_expires, before_each),
      cmocka_unit_test_setup(refreshes_once_for_many_callers, before_each),
      cmocka_unit_test_setup(classifies_failures, before_each),
      cmocka_unit_test(logs_no_secrets),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
