/* A single-flight cache of strings for remote lookups, with expiry.
 *
 * Keys and values are strings (a URL, a trimmed JSON document, a price as
 * text). The first caller of a key leads the lookup: lookup_cache_begin() hands
 * it a ticket and it reports the outcome with lookup_cache_end(); callers that
 * arrive meanwhile wait on the cache's condition variable (bounded by their own
 * deadline) and share the leader's outcome, so concurrent first events of a
 * workspace, pipeline, compute or VM size cost one request.
 *
 * A value is served for `ttl_ms` after it was stored (0: until evicted). A
 * failure is served to the callers that waited for it and, when
 * `failure_ttl_ms` > 0, to every caller for that long (a negative cache: a
 * service that is down is not asked again by every event); after that the next
 * caller leads a new lookup. An expired value is looked up again the same way.
 * At most `cap` keys are held; the least recently used settled entry nobody
 * waits on makes room. With every slot pending, a caller leads uncached.
 *
 * Ownership: the cache owns copies of keys and values; values handed out are
 * malloc'd copies the caller frees. Threading: every function but init and
 * cleanup is thread-safe (one lock per cache). Times come from time_mono_ms(),
 * so tests move them with time_set_clock(). */
#ifndef HANDLER_LOOKUP_CACHE_H
#define HANDLER_LOOKUP_CACHE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/result.h"

struct lookup_cache_entry; /* private to lookup_cache.c */

/* Fields are private; the struct is public so owners can embed it. */
struct lookup_cache {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* CLOCK_MONOTONIC; broadcast when a lookup ends */
  struct lookup_cache_entry *entries;
  size_t cap;
  uint64_t tick;
  int64_t ttl_ms, failure_ttl_ms;
};

/* RESULT_OK or RESULT_NOMEM. */
HANDLER_NODISCARD int lookup_cache_init(struct lookup_cache *c, size_t cap,
                                        int64_t ttl_ms, int64_t failure_ttl_ms);
void lookup_cache_cleanup(struct lookup_cache *c);

/* RESULT_OK with *out_value (a malloc'd copy): a hit. RESULT_OK with *out_value
 * NULL: the caller leads the lookup and must call lookup_cache_end() with
 * *out_ticket (0 when it leads uncached). Otherwise the failure of the lookup
 * this caller waited for (or of a recent one, within failure_ttl_ms) with its
 * `err`, or RESULT_TIMEOUT when `deadline_ms` passed while waiting. */
HANDLER_NODISCARD int lookup_cache_begin(struct lookup_cache *c, const char *key,
                                         int64_t deadline_ms, char **out_value,
                                         uint64_t *out_ticket, struct error_info *err);

/* The leader's outcome: `value` (copied) when `result` is RESULT_OK, else the
 * failure and its `err` (may be NULL). Wakes the waiters. */
void lookup_cache_end(struct lookup_cache *c, const char *key, uint64_t ticket,
                      const char *value, int result, const struct error_info *err);

#endif
