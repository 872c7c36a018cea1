/* Unit tests of the Table storage client's requests, through a scripted
 * transport: what each operation sends (verb, URL, x-ms-version, Accept,
 * Content-Type, If-Match, the Shared Key Authorization whose signature is
 * recomputed here from the request, or an Entra ID bearer token for
 * https://storage.azure.com/.default obtained through the credential module),
 * and how answers map to results: 409/412 -> RESULT_CONFLICT, 404
 * ResourceNotFound -> RESULT_NOTFOUND, TableNotFound -> the table is created and
 * the request sent again, 403 -> RESULT_DENIED, query paging headers in and out.
 * That real storage accepts these requests is shown against Azurite
 * (tests/e2e/test_watch.py). The run table and the watch's purge are tested
 * here too where only a scripted service can show the case (a lost insert read
 * back, an over-long key, an empty page with a continuation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "azure/credential.h"
#include "azure/credential_testing.h"
#include "azure/storage_account.h"
#include "azure/table_client.h"
#include "azure/table_client_testing.h"
#include "base/crypto.h"
#include "core/event.h"
#include "core/record.h"
#include "core/config.h"
#include "core/exporter.h"
#include "watch/run_table.h"
#include "watch/workspace_watch.h"

#define MAX_SENT 8

struct sent {
  char method[16], url[512], auth[256], if_match[64], date[64], version[32];
  char accept[64], content_type[64], body[512];
};

/* The answers to give, in order, and what was sent. */
struct script {
  struct {
    long status;
    const char *body, *etag, *next_pk, *next_rk;
  } answers[MAX_SENT];
  size_t next;
  struct sent sent[MAX_SENT];
  size_t sent_count;
};

static const char *header(const struct http_request *r, const char *name) {
  for (size_t i = 0; i < r->header_count; i++)
    if (strcasecmp(r->headers[i].name, name) == 0)
      return r->headers[i].value;
  return "";
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static int scripted(void *ctx, const struct http_request *r, struct http_response *out,
                    struct error_info *err) {
  struct script *s = ctx;
  assert_true(s->next < MAX_SENT);
  struct sent *d = &s->sent[s->sent_count++];
  snprintf(d->method, sizeof d->method, "%s", r->method ? r->method : "GET");
  snprintf(d->url, sizeof d->url, "%s", r->url);
  snprintf(d->auth, sizeof d->auth, "%s", header(r, "Authorization"));
  snprintf(d->if_match, sizeof d->if_match, "%s", header(r, "If-Match"));
  snprintf(d->date, sizeof d->date, "%s", header(r, "x-ms-date"));
  snprintf(d->version, sizeof d->version, "%s", header(r, "x-ms-version"));
  snprintf(d->accept, sizeof d->accept, "%s", header(r, "Accept"));
  snprintf(d->content_type, sizeof d->content_type, "%s", header(r, "Content-Type"));
  snprintf(d->body, sizeof d->body, "%.*s", (int)r->body_len,
           r->body ? (const char *)r->body : "");
  memset(out, 0, sizeof *out);
  out->status = s->answers[s->next].status;
  const char *body = s->answers[s->next].body ? s->answers[s->next].body : "";
  out->body = strdup(body);
  out->body_len = strlen(body);
  out->etag = dup_or_null(s->answers[s->next].etag);
  out->next_partition_key = dup_or_null(s->answers[s->next].next_pk);
  out->next_row_key = dup_or_null(s->answers[s->next].next_rk);
  s->next++;
  return RESULT_OK;
}

static struct table_client *dev_client(struct script *s) {
  struct storage_account *a;
  struct table_client *tc;
  struct error_info err = {0};
  assert_int_equal(storage_account_parse("UseDevelopmentStorage=true", &a, &err),
                   RESULT_OK);
  assert_int_equal(table_client_new(a, NULL, "amlruns", &tc, &err), RESULT_OK);
  storage_account_free(a);
  table_client_set_transport_for_test(tc, scripted, s);
  return tc;
}

/* The Authorization a request must carry, recomputed from what it sent. */
static void assert_signed(const struct sent *d, const char *path) {
  uint8_t *key;
  size_t key_len;
  assert_int_equal(crypto_base64_decode(STORAGE_DEV_KEY, &key, &key_len), RESULT_OK);
  char *sts = table_string_to_sign(d->method, NULL, d->content_type, d->date,
                                   "devstoreaccount1", path, NULL);
  char *auth = table_shared_key("devstoreaccount1", key, key_len, sts);
  assert_string_equal(d->auth, auth);
  assert_string_equal(d->version, "2019-02-02");
  assert_string_equal(d->content_type, "application/json");
  free(auth);
  free(sts);
  free(key);
}

static void insert_creates_the_table_first_then_conflicts(void **state) {
  struct script s = {
      .answers = {{201, NULL, NULL, NULL, NULL},
                  {204, NULL, "W/\"datetime'1'\"", NULL, NULL},
                  {409, "{\"odata.error\":{\"code\":\"EntityAlreadyExists\"}}", NULL,
                   NULL, NULL}}};
  struct table_client *tc = dev_client(&s);
  struct error_info err = {0};
  json_t *e = json_pack("{s:s, s:s, s:b}", "PartitionKey", "p", "RowKey", "r", "Open", 1);
  char *etag = NULL;
  assert_int_equal(table_client_insert(tc, e, INT64_MAX, &etag, &err), RESULT_OK);
  assert_string_equal(etag, "W/\"datetime'1'\"");
  free(etag);
  assert_string_equal(s.sent[0].method, "POST");
  assert_string_equal(s.sent[0].url, "http://127.0.0.1:10002/devstoreaccount1/Tables");
  assert_string_equal(s.sent[0].body, "{\"TableName\":\"amlruns\"}");
  assert_signed(&s.sent[0], "/devstoreaccount1/Tables");
  assert_string_equal(s.sent[1].url, "http://127.0.0.1:10002/devstoreaccount1/amlruns");
  assert_string_equal(s.sent[1].body,
                      "{\"PartitionKey\":\"p\",\"RowKey\":\"r\",\"Open\":true}");
  assert_signed(&s.sent[1], "/devstoreaccount1/amlruns");
  assert_int_equal(table_client_insert(tc, e, INT64_MAX, NULL, &err), RESULT_CONFLICT);
  assert_int_equal(s.sent_count, 3); /* the table is created once */
  json_decref(e);
  table_client_free(tc);
}

static void conditional_writes_carry_the_etag(void **state) {
  struct script s = {.answers = {{201}, {204, NULL, "W/\"2\""}, {412}, {204}}};
  struct table_client *tc = dev_client(&s);
  struct error_info err = {0};
  json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s}", "PartitionKey", "p", "RowKey", "r",
                        "Status", "Running", "odata.etag", "W/\"1\"", "Timestamp", "t");
  assert_int_equal(table_client_merge(tc, e, "W/\"1\"", INT64_MAX, NULL, &err),
                   RESULT_OK);
  assert_string_equal(s.sent[1].method, "MERGE");
  assert_string_equal(s.sent[1].url, "http://127.0.0.1:10002/devstoreaccount1/amlruns"
                                     "(PartitionKey='p',RowKey='r')");
  assert_string_equal(s.sent[1].if_match, "W/\"1\"");
  assert_null(strstr(s.sent[1].body, "odata")); /* annotations are not sent back */
  assert_null(strstr(s.sent[1].body, "Timestamp"));
  assert_signed(&s.sent[1], "/devstoreaccount1/amlruns(PartitionKey='p',RowKey='r')");
  assert_int_equal(table_client_replace(tc, e, "W/\"1\"", INT64_MAX, NULL, &err),
                   RESULT_CONFLICT);
  assert_string_equal(s.sent[2].method, "PUT");
  assert_int_equal(table_client_delete(tc, "p", "r", NULL, INT64_MAX, &err), RESULT_OK);
  assert_string_equal(s.sent[3].method, "DELETE");
  assert_string_equal(s.sent[3].if_match, "*");
  json_decref(e);
  table_client_free(tc);
}

static void missing_entity_table_and_refusals(void **state) {
  struct script s = {
      .answers = {{201},
                  {404, "{\"odata.error\":{\"code\":\"ResourceNotFound\"}}"},
                  {404, "{\"odata.error\":{\"code\":\"TableNotFound\"}}"},
                  {201},
                  {200, "{\"PartitionKey\":\"p\",\"RowKey\":\"r\"}", "W/\"3\""},
                  {403, "{\"odata.error\":{\"code\":\"AuthenticationFailed\"}}"}}};
  struct table_client *tc = dev_client(&s);
  struct error_info err = {0};
  json_t *e = NULL;
  assert_int_equal(table_client_get(tc, "p", "r", INT64_MAX, &e, &err), RESULT_NOTFOUND);
  assert_int_equal(table_client_get(tc, "p", "r", INT64_MAX, &e, &err), RESULT_OK);
  assert_string_equal(s.sent[3].url, "http://127.0.0.1:10002/devstoreaccount1/Tables");
  assert_string_equal(json_string_value(json_object_get(e, "odata.etag")), "W/\"3\"");
  assert_string_equal(s.sent[4].accept, "application/json;odata=minimalmetadata");
  json_decref(e);
  assert_int_equal(table_client_get(tc, "p", "r", INT64_MAX, &e, &err), RESULT_DENIED);
  assert_non_null(strstr(err.message, "AuthenticationFailed"));
  assert_int_equal(table_client_get(tc, "p/x", "r", INT64_MAX, &e, &err), RESULT_INVALID);
  table_client_free(tc);
}

static void query_pages(void **state) {
  struct script s = {
      .answers = {{201},
                  {200, "{\"value\":[{\"RowKey\":\"a\"}]}", NULL, "1!8!cA--", "1!8!cg--"},
                  {200, "{\"value\":[{\"RowKey\":\"b\"}]}"}}};
  struct table_client *tc = dev_client(&s);
  struct error_info err = {0};
  struct table_continuation cont = {0};
  json_t *page = NULL;
  assert_int_equal(
      table_client_query(tc, "Open eq true", 1000, &cont, INT64_MAX, &page, &err),
      RESULT_OK);
  assert_int_equal(json_array_size(page), 1);
  json_decref(page);
  assert_string_equal(s.sent[1].url, "http://127.0.0.1:10002/devstoreaccount1/amlruns()"
                                     "?$top=1000&$filter=Open%20eq%20true");
  assert_signed(&s.sent[1], "/devstoreaccount1/amlruns()");
  assert_string_equal(cont.next_partition_key, "1!8!cA--");
  assert_int_equal(
      table_client_query(tc, "Open eq true", 1000, &cont, INT64_MAX, &page, &err),
      RESULT_OK);
  assert_non_null(
      strstr(s.sent[2].url, "&NextPartitionKey=1%218%21cA--&NextRowKey=1%218%21cg--"));
  assert_null(cont.next_partition_key);
  assert_null(cont.next_row_key);
  json_decref(page);
  table_client_free(tc);
}

/* The token service's side: answers every token request with one token. */
static char token_body[512];
static int token_service(void *ctx, const struct http_request *r,
                         struct http_response *out, struct error_info *err) {
  snprintf(token_body, sizeof token_body, "%.*s", (int)r->body_len,
           (const char *)r->body);
  memset(out, 0, sizeof *out);
  out->status = 200;
  out->body = strdup("{\"access_token\":\"storage-token\",\"expires_in\":3600}");
  out->body_len = strlen(out->body);
  return RESULT_OK;
}

static const char *sp_env(void *ctx, const char *name) {
  if (strcmp(name, "AZURE_TENANT_ID") == 0)
    return "tenant";
  if (strcmp(name, "AZURE_CLIENT_ID") == 0)
    return "client";
  if (strcmp(name, "AZURE_CLIENT_SECRET") == 0)
    return "secret";
  if (strcmp(name, "AzureWebJobsStorage__accountName") == 0)
    return "acct";
  return NULL;
}

static void identity_uses_a_storage_token(void **state) {
  struct error_info err = {0};
  struct credential *cred = NULL;
  struct storage_account *a = NULL;
  struct table_client *tc = NULL;
  credential_set_transport_for_test(token_service, NULL);
  assert_int_equal(credential_from_env(sp_env, NULL, &cred, &err), RESULT_OK);
  assert_int_equal(storage_account_from_env(sp_env, NULL, &a, &err), RESULT_OK);
  assert_null(a->key);
  assert_int_equal(table_client_new(a, NULL, "amlruns", &tc, &err), RESULT_INVALID);
  assert_string_equal(err.field, "AzureWebJobsStorage__accountName");
  assert_int_equal(table_client_new(a, cred, "amlruns", &tc, &err), RESULT_OK);
  struct script s = {
      .answers = {{204}, {403, "{\"odata.error\":{\"code\":\"AuthorizationFailure\"}}"}}};
  table_client_set_transport_for_test(tc, scripted, &s);
  assert_int_equal(table_client_create_table(tc, INT64_MAX, &err), RESULT_OK);
  json_t *e = NULL;
  assert_int_equal(table_client_get(tc, "p", "r", INT64_MAX, &e, &err), RESULT_DENIED);
  assert_non_null(strstr(err.message, "check AzureWebJobsStorage__accountName "));
  assert_string_equal(s.sent[0].url, "https://acct.table.core.windows.net/Tables");
  assert_string_equal(s.sent[0].auth, "Bearer storage-token");
  assert_non_null(strstr(token_body, "scope=https%3A%2F%2Fstorage.azure.com%2F.default"));
  table_client_free(tc);
  storage_account_free(a);
  credential_free(cred);
  credential_set_transport_for_test(NULL, NULL);
}

/* An event for a run another instance wrote: the insert loses (409), the read
 * shows the same status, and what was read is remembered, so the same event
 * again costs no request. */
static void run_table_remembers_what_it_read(void **state) {
  struct script s = {
      .answers = {{201},
                  {409, "{\"odata.error\":{\"code\":\"EntityAlreadyExists\"}}"},
                  {200,
                   "{\"Status\":\"Running\",\"Since\":\"2026-01-01T00:00:00Z\","
                   "\"Open\":true}",
                   "W/\"1\""},
                  {409, "{\"odata.error\":{\"code\":\"EntityAlreadyExists\"}}"},
                  {200,
                   "{\"Status\":\"Running\",\"Since\":\"2026-01-01T00:00:00Z\","
                   "\"Open\":true}",
                   "W/\"1\""}}};
  struct run_table *rt = run_table_new(dev_client(&s));
  struct error_info err = {0};
  struct aml_event ev = {.type = AML_EVENT_RUN_STATUS_CHANGED,
                         .id = "e1",
                         .time = "2026-01-01T00:00:00Z",
                         .subscription_id = "Sub",
                         .resource_group = "rg",
                         .workspace = "ws",
                         .run_id = "run-1",
                         .run_status = "Running",
                         .run_kind = RUN_KIND_PLAIN};
  struct record rec;
  record_init(&rec);
  assert_int_equal(run_table_record_event(rt, &ev, &rec, INT64_MAX, &err), RESULT_OK);
  assert_int_equal(s.sent_count, 3);
  assert_string_equal(s.sent[2].method, "GET");
  assert_non_null(strstr(s.sent[2].url, "(PartitionKey='sub~2Frg~2Fws',RowKey='run-1')"));
  assert_int_equal(run_table_record_event(rt, &ev, &rec, INT64_MAX, &err), RESULT_OK);
  assert_int_equal(s.sent_count, 3);
  struct run_table_stats st;
  run_table_get_stats(rt, &st);
  assert_int_equal(st.unchanged, 2);
  record_cleanup(&rec);
  run_table_free(rt);
}

/* A run id too long for a table key would be refused (400) on every
 * redelivery: the run is not tracked and the event goes on. */
static void run_table_skips_a_key_too_long(void **state) {
  struct script s = {
      .answers = {{201}, {400, "{\"odata.error\":{\"code\":\"OutOfRangeInput\"}}"}}};
  struct run_table *rt = run_table_new(dev_client(&s));
  struct error_info err = {0};
  char run_id[300];
  for (size_t i = 0; i < sizeof run_id - 1; i += 2)
    memcpy(run_id + i, "r/", 2);
  run_id[sizeof run_id - 1] = '\0';
  struct aml_event ev = {.type = AML_EVENT_RUN_STATUS_CHANGED,
                         .id = "e1",
                         .time = "2026-01-01T00:00:00Z",
                         .subscription_id = "sub",
                         .resource_group = "rg",
                         .workspace = "ws",
                         .run_id = run_id,
                         .run_status = "Running",
                         .run_kind = RUN_KIND_PLAIN};
  struct record rec;
  record_init(&rec);
  assert_int_equal(run_table_record_event(rt, &ev, &rec, INT64_MAX, &err), RESULT_OK);
  assert_int_equal(s.sent_count, 0);
  record_cleanup(&rec);
  run_table_free(rt);
}

static int count_records(struct exporter *self, const struct record *const *records,
                         size_t count, int64_t deadline_ms, struct error_info *err) {
  return RESULT_OK;
}

/* The purge's query scans the table and may get a page with no entities but a
 * continuation: it follows it to the closed runs past the retention. */
static void watch_purge_follows_empty_pages(void **state) {
  struct script s = {
      .answers = {{201},
                  {200, "{\"value\":[]}"}, /* no open runs */
                  {200, "{\"value\":[]}", NULL, "1!8!cA--", "1!8!cg--"},
                  {200, "{\"value\":[{\"PartitionKey\":\"p\",\"RowKey\":\"r\","
                        "\"odata.etag\":\"W/\\\"1\\\"\"}]}"},
                  {204}}};
  struct run_table *rt = run_table_new(dev_client(&s));
  struct config cfg = {
      .stuck_waiting_minutes = 60, .stuck_running_hours = 24, .watch_max_checks = 10};
  struct exporter exp = {.name = "test", .export_records = count_records};
  struct watch_options o = {.config = &cfg, .runs = rt, .exporter = &exp};
  struct workspace_watch *w = workspace_watch_new(&o);
  struct watch_tick_report rep;
  struct error_info err = {0};
  assert_int_equal(workspace_watch_tick(w, 1800000000000LL, INT64_MAX, NULL, &rep, &err),
                   RESULT_OK);
  assert_int_equal(rep.purged, 1);
  assert_string_equal(s.sent[4].method, "DELETE");
  assert_string_equal(s.sent[4].if_match, "W/\"1\"");
  workspace_watch_free(w);
  run_table_free(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(insert_creates_the_table_first_then_conflicts),
      cmocka_unit_test(conditional_writes_carry_the_etag),
      cmocka_unit_test(missing_entity_table_and_refusals),
      cmocka_unit_test(query_pages),
      cmocka_unit_test(identity_uses_a_storage_token),
      cmocka_unit_test(run_table_remembers_what_it_read),
      cmocka_unit_test(run_table_skips_a_key_too_long),
      cmocka_unit_test(watch_purge_follows_empty_pages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
