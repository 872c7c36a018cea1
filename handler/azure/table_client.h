/* The Azure Table storage client: one table, entities as JSON objects.
 *
 * It speaks the Table service REST API (x-ms-version 2019-02-02, JSON) through
 * http_client_send_retry(), so transport errors, 408, 429 and 5xx are retried
 * within the caller's deadline. Requests are authorized with the account key
 * (Shared Key for the Table service: HMAC-SHA256 over VERB, Content-MD5,
 * Content-Type, the x-ms-date value and the canonicalized resource, see
 * table_string_to_sign()) or with an Entra ID bearer token for
 * https://storage.azure.com/.default. The table is created on first use, and
 * again when the service says it is gone (an emulator restarted empty).
 *
 * Entities are JSON objects with PartitionKey, RowKey and properties of type
 * string, boolean or double. Reads return them with "odata.etag"; updates and
 * deletes are conditional on an ETag ("*" for any). Results: RESULT_OK;
 * RESULT_NOTFOUND (no such entity); RESULT_CONFLICT (insert of an existing
 * entity, or an ETag that no longer matches: read again); RESULT_TRANSIENT /
 * RESULT_TIMEOUT (the service could not be reached or kept failing: the caller's
 * invocation fails and is retried); RESULT_DENIED (401/403: the key or the
 * identity's role); RESULT_PERMANENT (any other refusal), each with a sentence
 * in `err` that never carries the key or a token.
 *
 * Threading: every function is thread-safe (counters are atomic, the
 * created-table flag is an atomic). Ownership: the client copies the account and
 * borrows `cred`, which must outlive it; returned JSON values are new
 * references, strings malloc'd. */
#ifndef HANDLER_TABLE_CLIENT_H
#define HANDLER_TABLE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "azure/credential.h"
#include "azure/storage_account.h"
#include "base/jsonx.h"
#include "base/result.h"

#define TABLE_API_VERSION "2019-02-02"

struct table_client;

/* Counters of requests sent (attempts with retries counted once). */
struct table_client_stats {
  uint64_t reads;   /* single-entity GETs */
  uint64_t queries; /* query pages */
  uint64_t writes;  /* inserts, updates, deletes */
  uint64_t creates; /* create-table requests */
};

/* `table` must be a valid table name (3-63 letters and digits, not starting
 * with a digit): RESULT_INVALID otherwise. `cred` may be NULL with a key. */
int table_client_new(const struct storage_account *account, struct credential *cred,
                     const char *table, struct table_client **out,
                     struct error_info *err);
void table_client_free(struct table_client *client);
const char *table_client_table(const struct table_client *client);
void table_client_get_stats(const struct table_client *client,
                            struct table_client_stats *out);

/* How many times the table was found missing and created again (0 at first):
 * what callers remember about its entities is void when this changes. */
uint64_t table_client_generation(const struct table_client *client);

/* Creates the table when it does not exist (201, or 409 TableAlreadyExists). */
int table_client_create_table(struct table_client *client, int64_t deadline_ms,
                              struct error_info *err);

/* The entity, with "odata.etag"; RESULT_NOTFOUND when absent. */
int table_client_get(struct table_client *client, const char *partition_key,
                     const char *row_key, int64_t deadline_ms, json_t **out_entity,
                     struct error_info *err);

/* Inserts `entity`; RESULT_CONFLICT when it exists. *out_etag may be NULL. */
int table_client_insert(struct table_client *client, const json_t *entity,
                        int64_t deadline_ms, char **out_etag, struct error_info *err);

/* Replaces the entity when its ETag is still `etag` ("*": whatever it is);
 * RESULT_CONFLICT when it changed, RESULT_NOTFOUND when it is gone. */
int table_client_replace(struct table_client *client, const json_t *entity,
                         const char *etag, int64_t deadline_ms, char **out_etag,
                         struct error_info *err);

/* Merges `entity`'s properties into the stored entity (properties it does not
 * carry keep their values) when its ETag is still `etag` ("*": any). */
int table_client_merge(struct table_client *client, const json_t *entity,
                       const char *etag, int64_t deadline_ms, char **out_etag,
                       struct error_info *err);

int table_client_delete(struct table_client *client, const char *partition_key,
                        const char *row_key, const char *etag, int64_t deadline_ms,
                        struct error_info *err);

/* A position in a query's results. Empty (both NULL) = start / no more pages. */
struct table_continuation {
  char *next_partition_key;
  char *next_row_key;
};
void table_continuation_cleanup(struct table_continuation *c);

/* One page (at most `top` entities, 1-1000) of the entities matching the OData
 * `filter` (NULL: all), each with "odata.etag". `cont` is read as where to
 * start and overwritten with where the next page starts (empty: no more). */
int table_client_query(struct table_client *client, const char *filter, int top,
                       struct table_continuation *cont, int64_t deadline_ms,
                       json_t **out_entities, struct error_info *err);

/* Shared Key for the Table service, exposed for tests: the string to sign and
 * the Authorization header value "SharedKey <account>:<base64 signature>"
 * (malloc'd). `path` is the request URL's path (e.g. "/devstoreaccount1/Tables"
 * for a path-style endpoint); `comp` the value of a comp= query parameter or
 * NULL. */
char *table_string_to_sign(const char *verb, const char *content_md5,
                           const char *content_type, const char *date,
                           const char *account, const char *path, const char *comp);
char *table_shared_key(const char *account, const uint8_t *key, size_t key_len,
                       const char *string_to_sign);

/* Escapes any text into a valid PartitionKey/RowKey that also needs no URL
 * escaping: letters, digits, '-', '_' and '.' stay, any other byte becomes
 * '~' and two upper-case hex digits. Malloc'd, NULL on allocation failure. */
char *table_key_escape(const char *text);

#endif
