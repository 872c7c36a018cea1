/* The Table storage client; see table_client.h.
 *
 * Sources: Microsoft Learn, "Authorize with Shared Key" (Shared Key for the
 * Table service: StringToSign = VERB, Content-MD5, Content-Type, Date (the
 * x-ms-date value when that header is sent), CanonicalizedResource, joined by
 * "\n"; CanonicalizedResource = "/" + account + URI path, plus "?comp=..."),
 * "Insert Entity", "Update Entity", "Merge Entity", "Delete Entity", "Query Entities"
 * (paging with x-ms-continuation-NextPartitionKey / NextRowKey), "Create Table", and
 * "Payload format for Table service operations" (odata=nometadata /
 * minimalmetadata; minimal metadata carries each entity's odata.etag).
 * Every request also carries Content-Type: application/json, with or without a
 * body, so the signed Content-Type is always the one sent. */
#include "azure/table_client.h"
#include "azure/table_client_testing.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "azure/http_client.h"
#include "base/crypto.h"
#include "base/log.h"
#include "base/text.h"

#define ACCEPT_MINIMAL "application/json;odata=minimalmetadata"
#define ACCEPT_NONE "application/json;odata=nometadata"
#define CONTENT_TYPE "application/json"
#define MAX_RESPONSE (8u * 1024 * 1024)

struct table_client {
  char *endpoint; /* no trailing slash */
  char *path;     /* the endpoint's path ("" or "/devstoreaccount1") */
  char *account;
  uint8_t *key; /* NULL: bearer tokens */
  size_t key_len;
  struct credential *cred;
  char *table;
  const char *setting;         /* the account's setting (static text), for messages */
  http_transport_fn transport; /* tests; NULL: http_client_send_retry */
  void *transport_ctx;
  atomic_bool created;
  pthread_mutex_t create_lock; /* one create-table request at a time */
  atomic_uint_fast64_t reads, queries, writes, creates;
  atomic_uint_fast64_t generation; /* times TableNotFound made us create it again */
};

char *table_string_to_sign(const char *verb, const char *content_md5,
                           const char *content_type, const char *date,
                           const char *account, const char *path, const char *comp) {
  return text_format("%s\n%s\n%s\n%s\n/%s%s%s%s", verb, content_md5 ? content_md5 : "",
                     content_type ? content_type : "", date, account, path,
                     comp ? "?comp=" : "", comp ? comp : "");
}

char *table_shared_key(const char *account, const uint8_t *key, size_t key_len,
                       const char *string_to_sign) {
  uint8_t mac[32];
  crypto_hmac_sha256(key, key_len, string_to_sign, strlen(string_to_sign), mac);
  char *sig = crypto_base64(mac, sizeof mac);
  char *out = sig ? text_format("SharedKey %s:%s", account, sig) : NULL;
  free(sig);
  return out;
}

char *table_key_escape(const char *text) {
  size_t n = strlen(text);
  char *out = malloc(n * 3 + 1), *p = out;
  if (!out)
    return NULL;
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
    if (isalnum(*c) || *c == '-' || *c == '_' || *c == '.')
      *p++ = (char)*c;
    else
      p += sprintf(p, "~%02X", *c);
  }
  *p = '\0';
  return out;
}

static bool valid_table_name(const char *name) {
  size_t n = strlen(name);
  if (n < 3 || n > 63 || !isalpha((unsigned char)name[0]))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)name[i]))
      return false;
  return true;
}

void table_client_free(struct table_client *c) {
  if (!c)
    return;
  free(c->endpoint);
  free(c->path);
  free(c->account);
  if (c->key) {
    memset(c->key, 0, c->key_len);
    free(c->key);
  }
  free(c->table);
  pthread_mutex_destroy(&c->create_lock);
  free(c);
}

int table_client_new(const struct storage_account *account, struct credential *cred,
                     const char *table, struct table_client **out,
                     struct error_info *err) {
  *out = NULL;
  if (!valid_table_name(table))
    return error_set(err, RESULT_INVALID, "HANDLER_RUNS_TABLE",
                     "HANDLER_RUNS_TABLE \"%.64s\" is not a table name (3-63 letters and "
                     "digits, starting with a letter)",
                     table);
  if (!account->key && !cred)
    return error_set(err, RESULT_INVALID, account->setting,
                     "%s names the storage account by identity, but no Azure credential "
                     "is configured (AZURE_CLIENT_ID..., or a managed identity)",
                     account->setting);
  struct table_client *c = calloc(1, sizeof *c);
  if (!c)
    goto nomem;
  pthread_mutex_init(&c->create_lock, NULL);
  const char *scheme_end = strstr(account->table_endpoint, "://");
  const char *path = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
  if (!(c->endpoint = strdup(account->table_endpoint)) ||
      !(c->path = strdup(path ? path : "")) || !(c->table = strdup(table)))
    goto nomem;
  if (account->account_name && !(c->account = strdup(account->account_name)))
    goto nomem;
  if (account->key) {
    if (!(c->key = malloc(account->key_len)))
      goto nomem;
    memcpy(c->key, account->key, account->key_len);
    c->key_len = account->key_len;
  }
  c->cred = cred;
  c->setting = account->setting;
  *out = c;
  return RESULT_OK;
nomem:
  table_client_free(c);
  return error_set(err, RESULT_NOMEM, "", "out of memory creating the table client");
}

void table_client_set_transport_for_test(struct table_client *c, http_transport_fn fn,
                                         void *ctx) {
  c->transport = fn;
  c->transport_ctx = ctx;
}

uint64_t table_client_generation(const struct table_client *c) {
  return atomic_load(&c->generation);
}

const char *table_client_table(const struct table_client *c) {
  return c->table;
}

void table_client_get_stats(const struct table_client *c,
                            struct table_client_stats *out) {
  out->reads = atomic_load(&c->reads);
  out->queries = atomic_load(&c->queries);
  out->writes = atomic_load(&c->writes);
  out->creates = atomic_load(&c->creates);
}

void table_continuation_cleanup(struct table_continuation *cont) {
  free(cont->next_partition_key);
  free(cont->next_row_key);
  cont->next_partition_key = cont->next_row_key = NULL;
}

/* One request: `resource` is the path after the endpoint ("/Tables",
 * "/amlruns(PartitionKey='a',RowKey='b')"), `query` what follows '?' or NULL. */
struct call {
  const char *method, *resource, *query, *accept, *if_match, *body;
  bool no_content; /* Prefer: return-no-content */
};

static int send_call(struct table_client *c, const struct call *call, int64_t deadline_ms,
                     struct http_response *out, struct error_info *err) {
  char date[64], *url = NULL, *path = NULL, *sts = NULL, *auth = NULL;
  struct http_header headers[10];
  size_t n = 0;
  int r = RESULT_NOMEM;
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  url = text_format("%s%s%s%s", c->endpoint, call->resource, call->query ? "?" : "",
                    call->query ? call->query : "");
  if (!url)
    goto done;
  if (c->key) {
    if (!(path = text_format("%s%s", c->path, call->resource)) ||
        !(sts = table_string_to_sign(call->method, NULL, CONTENT_TYPE, date, c->account,
                                     path, NULL)) ||
        !(auth = table_shared_key(c->account, c->key, c->key_len, sts)))
      goto done;
  } else {
    char *token = NULL;
    if ((r = credential_get_token(c->cred, STORAGE_SCOPE, deadline_ms, &token, err)) !=
        RESULT_OK)
      goto done;
    auth = text_format("Bearer %s", token);
    memset(token, 0, strlen(token));
    free(token);
    r = RESULT_NOMEM;
    if (!auth)
      goto done;
  }
  headers[n++] = (struct http_header){"Authorization", auth};
  headers[n++] = (struct http_header){"x-ms-date", date};
  headers[n++] = (struct http_header){"x-ms-version", TABLE_API_VERSION};
  headers[n++] =
      (struct http_header){"Accept", call->accept ? call->accept : ACCEPT_NONE};
  headers[n++] = (struct http_header){"Content-Type", CONTENT_TYPE};
  headers[n++] = (struct http_header){"DataServiceVersion", "3.0;NetFx"};
  headers[n++] = (struct http_header){"MaxDataServiceVersion", "3.0;NetFx"};
  if (call->if_match)
    headers[n++] = (struct http_header){"If-Match", call->if_match};
  if (call->no_content)
    headers[n++] = (struct http_header){"Prefer", "return-no-content"};
  struct http_request req = {.method = call->method,
                             .url = url,
                             .headers = headers,
                             .header_count = n,
                             .body = call->body,
                             .body_len = call->body ? strlen(call->body) : 0,
                             .deadline_ms = deadline_ms,
                             .max_response = MAX_RESPONSE};
  r = c->transport ? c->transport(c->transport_ctx, &req, out, err)
                   : http_client_send_retry(&req, out, err);
  if (r == RESULT_IO || r == RESULT_INVALID)
    r = r == RESULT_IO ? RESULT_TRANSIENT : RESULT_PERMANENT;
done:
  if (auth) {
    memset(auth, 0, strlen(auth));
    free(auth);
  }
  free(sts);
  free(path);
  free(url);
  if (r == RESULT_NOMEM)
    error_set(err, r, "", "out of memory building a Table storage request");
  return r;
}

/* The service's error code ("TableNotFound", "EntityAlreadyExists"), or "".
 * A success is not parsed: its body (a query page of up to 8 MiB) is the
 * caller's to read. */
static void error_code(const struct http_response *resp, char *buf, size_t size) {
  buf[0] = '\0';
  json_t *doc = resp->status >= 300 && resp->body && resp->body_len
                    ? jsonx_parse(resp->body, resp->body_len, 8, NULL, NULL)
                    : NULL;
  const char *code = jsonx_string_ci(jsonx_get_ci(doc, "odata.error"), "code");
  if (code)
    snprintf(buf, size, "%s", code);
  json_decref(doc);
}

/* Maps an HTTP answer of `what` to a result. */
static int judge(const struct table_client *c, const struct http_response *resp,
                 const char *what, const char *code, struct error_info *err) {
  long s = resp->status;
  if (s >= 200 && s < 300)
    return RESULT_OK;
  if (s == 404)
    return error_set(err, RESULT_NOTFOUND, "", "%s: not found (%s)", what,
                     code[0] ? code : "404");
  if (s == 409 || s == 412)
    return error_set(err, RESULT_CONFLICT, "", "%s: %s", what,
                     code[0] ? code : "conflict");
  if (s == 401 || s == 403)
    return error_set(
        err, RESULT_DENIED, "",
        "%s refused (HTTP %ld%s%s): check %s (the account key it holds, or the "
        "identity's role on the account)",
        what, s, code[0] ? " " : "", code, c->setting);
  if (s == 408 || s == 429 || s >= 500)
    return error_set(err, RESULT_TRANSIENT, "", "%s: HTTP %ld %s (table %s)", what, s,
                     code, c->table);
  return error_set(err, RESULT_PERMANENT, "", "%s refused: HTTP %ld %s", what, s,
                   code[0] ? code : "");
}

static int ensure_table(struct table_client *c, int64_t deadline_ms,
                        struct error_info *err);

/* Sends, and on TableNotFound creates the table and sends once more. */
static int exchange(struct table_client *c, const struct call *call, const char *what,
                    int64_t deadline_ms, struct http_response *out,
                    struct error_info *err) {
  for (int attempt = 0;; attempt++) {
    memset(out, 0, sizeof *out);
    int r = send_call(c, call, deadline_ms, out, err);
    if (r != RESULT_OK)
      return r;
    char code[64];
    error_code(out, code, sizeof code);
    r = judge(c, out, what, code, err);
    if (r == RESULT_NOTFOUND && strcmp(code, "TableNotFound") == 0 && attempt == 0) {
      http_response_cleanup(out);
      atomic_store(&c->created, false);
      atomic_fetch_add(&c->generation, 1);
      log_warn("event=table_missing table=%s action=create", c->table);
      if ((r = ensure_table(c, deadline_ms, err)) != RESULT_OK)
        return r;
      continue;
    }
    if (r != RESULT_OK)
      http_response_cleanup(out);
    return r;
  }
}

int table_client_create_table(struct table_client *c, int64_t deadline_ms,
                              struct error_info *err) {
  char body[128];
  snprintf(body, sizeof body, "{\"TableName\":\"%s\"}", c->table);
  struct call call = {
      .method = "POST", .resource = "/Tables", .body = body, .no_content = true};
  struct http_response resp;
  atomic_fetch_add(&c->creates, 1);
  int r = send_call(c, &call, deadline_ms, &resp, err);
  if (r == RESULT_OK) {
    char code[64];
    error_code(&resp, code, sizeof code);
    r = judge(c, &resp, "create table", code, err);
    if (r == RESULT_CONFLICT) /* TableAlreadyExists (or being deleted: retried later) */
      r = strcmp(code, "TableBeingDeleted") == 0 ? RESULT_TRANSIENT : RESULT_OK;
    http_response_cleanup(&resp);
  }
  if (r == RESULT_OK && !atomic_exchange(&c->created, true))
    log_info("event=table_ready table=%s", c->table);
  return r;
}

/* Creates the table on first use; concurrent first callers share one request. */
static int ensure_table(struct table_client *c, int64_t deadline_ms,
                        struct error_info *err) {
  if (atomic_load(&c->created))
    return RESULT_OK;
  pthread_mutex_lock(&c->create_lock);
  int r = atomic_load(&c->created) ? RESULT_OK
                                   : table_client_create_table(c, deadline_ms, err);
  pthread_mutex_unlock(&c->create_lock);
  return r;
}

static char *entity_resource(const struct table_client *c, const char *pk,
                             const char *rk) {
  return text_format("/%s(PartitionKey='%s',RowKey='%s')", c->table, pk, rk);
}

static bool key_ok(const char *key) {
  for (const char *p = key; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("-_.~", *p))
      return false;
  return true;
}

/* Parses a JSON object answer (new reference) or fails transiently. */
static json_t *parse_object(const struct http_response *resp, const char *what,
                            struct error_info *err) {
  json_t *doc = jsonx_parse(resp->body ? resp->body : "", resp->body_len,
                            JSONX_DEFAULT_MAX_DEPTH, NULL, NULL);
  if (!json_is_object(doc)) {
    json_decref(doc);
    error_set(err, RESULT_TRANSIENT, "", "%s: the answer is not a JSON object", what);
    return NULL;
  }
  return doc;
}

int table_client_get(struct table_client *c, const char *pk, const char *rk,
                     int64_t deadline_ms, json_t **out_entity, struct error_info *err) {
  *out_entity = NULL;
  if (!key_ok(pk) || !key_ok(rk))
    return error_set(err, RESULT_INVALID, "", "entity keys must be escaped");
  int r = ensure_table(c, deadline_ms, err);
  char *res = r == RESULT_OK ? entity_resource(c, pk, rk) : NULL;
  if (r != RESULT_OK)
    return r;
  if (!res)
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  struct call call = {.method = "GET", .resource = res, .accept = ACCEPT_MINIMAL};
  struct http_response resp;
  atomic_fetch_add(&c->reads, 1);
  r = exchange(c, &call, "read entity", deadline_ms, &resp, err);
  free(res);
  if (r != RESULT_OK)
    return r;
  json_t *entity = parse_object(&resp, "read entity", err);
  if (entity && resp.etag && !json_object_get(entity, "odata.etag"))
    json_object_set_new(entity, "odata.etag", json_string(resp.etag));
  http_response_cleanup(&resp);
  if (!entity)
    return RESULT_TRANSIENT;
  *out_entity = entity;
  return RESULT_OK;
}

/* The entity's JSON without annotations and the service's Timestamp (what a
 * write sends). */
static char *entity_body(const json_t *entity) {
  json_t *copy = json_object();
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)entity, k, v) {
    if (strncmp(k, "odata.", 6) != 0 && !strstr(k, "@odata.") && strcmp(k, "Timestamp"))
      json_object_set(copy, k, v);
  }
  char *text = copy ? jsonx_dump(copy) : NULL;
  json_decref(copy);
  return text;
}

static int write_entity(struct table_client *c, const char *method, const json_t *entity,
                        const char *etag, int64_t deadline_ms, char **out_etag,
                        struct error_info *err) {
  const char *pk = json_string_value(json_object_get(entity, "PartitionKey"));
  const char *rk = json_string_value(json_object_get(entity, "RowKey"));
  if (out_etag)
    *out_etag = NULL;
  if (!pk || !rk || !key_ok(pk) || !key_ok(rk))
    return error_set(err, RESULT_INVALID, "", "an entity needs escaped keys");
  int r = ensure_table(c, deadline_ms, err);
  if (r != RESULT_OK)
    return r;
  char *res = strcmp(method, "POST") == 0 ? text_format("/%s", c->table)
                                          : entity_resource(c, pk, rk);
  char *body = entity_body(entity);
  if (!res || !body) {
    free(res);
    free(body);
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  }
  struct call call = {.method = method,
                      .resource = res,
                      .body = body,
                      .if_match = etag,
                      .no_content = true};
  struct http_response resp;
  atomic_fetch_add(&c->writes, 1);
  r = exchange(c, &call, strcmp(method, "POST") == 0 ? "insert entity" : "update entity",
               deadline_ms, &resp, err);
  if (r == RESULT_OK) {
    if (out_etag && resp.etag && !(*out_etag = strdup(resp.etag)))
      r = error_set(err, RESULT_NOMEM, "", "out of memory");
    http_response_cleanup(&resp);
  }
  free(res);
  free(body);
  return r;
}

int table_client_insert(struct table_client *c, const json_t *entity, int64_t deadline_ms,
                        char **out_etag, struct error_info *err) {
  return write_entity(c, "POST", entity, NULL, deadline_ms, out_etag, err);
}

int table_client_replace(struct table_client *c, const json_t *entity, const char *etag,
                         int64_t deadline_ms, char **out_etag, struct error_info *err) {
  return write_entity(c, "PUT", entity, etag ? etag : "*", deadline_ms, out_etag, err);
}

int table_client_merge(struct table_client *c, const json_t *entity, const char *etag,
                       int64_t deadline_ms, char **out_etag, struct error_info *err) {
  return write_entity(c, "MERGE", entity, etag ? etag : "*", deadline_ms, out_etag, err);
}

int table_client_delete(struct table_client *c, const char *pk, const char *rk,
                        const char *etag, int64_t deadline_ms, struct error_info *err) {
  if (!key_ok(pk) || !key_ok(rk))
    return error_set(err, RESULT_INVALID, "", "entity keys must be escaped");
  char *res = entity_resource(c, pk, rk);
  if (!res)
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  struct call call = {.method = "DELETE", .resource = res, .if_match = etag ? etag : "*"};
  struct http_response resp;
  atomic_fetch_add(&c->writes, 1);
  int r = exchange(c, &call, "delete entity", deadline_ms, &resp, err);
  if (r == RESULT_OK)
    http_response_cleanup(&resp);
  free(res);
  return r;
}

int table_client_query(struct table_client *c, const char *filter, int top,
                       struct table_continuation *cont, int64_t deadline_ms,
                       json_t **out_entities, struct error_info *err) {
  *out_entities = NULL;
  int r = ensure_table(c, deadline_ms, err);
  if (r != RESULT_OK)
    return r;
  char *f = filter ? http_client_escape(filter) : NULL;
  char *npk =
      cont->next_partition_key ? http_client_escape(cont->next_partition_key) : NULL;
  char *nrk = cont->next_row_key ? http_client_escape(cont->next_row_key) : NULL;
  char *res = text_format("/%s()", c->table);
  char *query =
      text_format("$top=%d%s%s%s%s%s%s",
                  top < 1      ? 1
                  : top > 1000 ? 1000
                               : top,
                  f ? "&$filter=" : "", f ? f : "", npk ? "&NextPartitionKey=" : "",
                  npk ? npk : "", nrk ? "&NextRowKey=" : "", nrk ? nrk : "");
  free(f);
  free(npk);
  free(nrk);
  if (!res || !query) {
    free(res);
    free(query);
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  }
  struct call call = {
      .method = "GET", .resource = res, .query = query, .accept = ACCEPT_MINIMAL};
  struct http_response resp;
  atomic_fetch_add(&c->queries, 1);
  r = exchange(c, &call, "query entities", deadline_ms, &resp, err);
  free(res);
  free(query);
  if (r != RESULT_OK)
    return r;
  json_t *doc = parse_object(&resp, "query entities", err);
  json_t *value = doc ? json_object_get(doc, "value") : NULL;
  table_continuation_cleanup(cont);
  if (!json_is_array(value)) {
    json_decref(doc);
    http_response_cleanup(&resp);
    return error_set(err, RESULT_TRANSIENT, "", "query entities: no \"value\" array");
  }
  cont->next_partition_key = resp.next_partition_key;
  cont->next_row_key = resp.next_row_key;
  resp.next_partition_key = resp.next_row_key = NULL;
  *out_entities = json_incref(value);
  json_decref(doc);
  http_response_cleanup(&resp);
  return RESULT_OK;
}
