/* The single-flight lookup cache; see lookup_cache.h.
 *
 * A fixed array of entries searched linearly (caches hold tens to hundreds of
 * keys). An entry is EMPTY, PENDING (a leader is looking it up), READY (a
 * value) or FAILED (the leader's result and sentence). `generation` names the
 * lookup a waiter waits for, so a waiter takes the outcome of that lookup and
 * not of a later one. Entries with waiters are never evicted or re-keyed. */
#include "base/lookup_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/deadline.h"
#include "base/timeutil.h"

enum entry_state { ENTRY_EMPTY, ENTRY_PENDING, ENTRY_READY, ENTRY_FAILED };

struct lookup_cache_entry {
  enum entry_state state;
  char *key;   /* owned */
  char *value; /* READY: owned */
  int result;  /* FAILED: the leader's outcome */
  struct error_info error;
  uint64_t generation; /* set when a leader takes the entry */
  uint64_t last_used;
  int64_t settled_ms; /* time_mono_ms() when the lookup ended */
  unsigned waiters;   /* > 0: the entry is neither evicted nor re-keyed */
};

int lookup_cache_init(struct lookup_cache *c, size_t cap, int64_t ttl_ms,
                      int64_t failure_ttl_ms) {
  memset(c, 0, sizeof *c);
  if (!(c->entries = calloc(cap ? cap : 1, sizeof *c->entries)))
    return RESULT_NOMEM;
  c->cap = cap ? cap : 1;
  c->ttl_ms = ttl_ms;
  c->failure_ttl_ms = failure_ttl_ms;
  if (deadline_cond_init(&c->cond) != RESULT_OK) {
    free(c->entries);
    c->entries = NULL;
    return RESULT_NOMEM;
  }
  pthread_mutex_init(&c->lock, NULL);
  return RESULT_OK;
}

void lookup_cache_cleanup(struct lookup_cache *c) {
  if (!c->entries)
    return;
  for (size_t i = 0; i < c->cap; i++) {
    free(c->entries[i].key);
    free(c->entries[i].value);
  }
  free(c->entries);
  c->entries = NULL;
  pthread_cond_destroy(&c->cond);
  pthread_mutex_destroy(&c->lock);
}

static struct lookup_cache_entry *find(struct lookup_cache *c, const char *key) {
  for (size_t i = 0; i < c->cap; i++)
    if (c->entries[i].state != ENTRY_EMPTY && strcmp(c->entries[i].key, key) == 0)
      return &c->entries[i];
  return NULL;
}

/* An empty slot, else the least recently used settled entry nobody waits on. */
static struct lookup_cache_entry *take_slot(struct lookup_cache *c, const char *key) {
  struct lookup_cache_entry *slot = NULL;
  for (size_t i = 0; i < c->cap; i++) {
    struct lookup_cache_entry *e = &c->entries[i];
    if (e->state == ENTRY_EMPTY) {
      slot = e;
      break;
    }
    if (e->state != ENTRY_PENDING && e->waiters == 0 &&
        (!slot || e->last_used < slot->last_used))
      slot = e;
  }
  if (!slot)
    return NULL;
  char *copy = strdup(key);
  if (!copy)
    return NULL;
  free(slot->key);
  free(slot->value);
  memset(slot, 0, sizeof *slot);
  slot->key = copy;
  return slot;
}

static bool fresh(const struct lookup_cache_entry *e, int64_t ttl_ms, int64_t now) {
  return ttl_ms <= 0 || now - e->settled_ms < ttl_ms;
}

int lookup_cache_begin(struct lookup_cache *c, const char *key, int64_t deadline_ms,
                       char **out_value, uint64_t *out_ticket, struct error_info *err) {
  int result = RESULT_OK;
  uint64_t waited_for = 0;
  *out_value = NULL;
  *out_ticket = 0;
  pthread_mutex_lock(&c->lock);
  for (;;) {
    struct lookup_cache_entry *e = find(c, key);
    int64_t now = time_mono_ms();
    if (e && e->state == ENTRY_READY && fresh(e, c->ttl_ms, now)) {
      e->last_used = ++c->tick;
      if (!(*out_value = strdup(e->value)))
        result = RESULT_NOMEM;
      break;
    }
    if (e && e->state == ENTRY_FAILED &&
        ((waited_for && waited_for == e->generation) ||
         (c->failure_ttl_ms > 0 && fresh(e, c->failure_ttl_ms, now)))) {
      e->last_used = ++c->tick;
      result = e->result;
      if (err)
        *err = e->error;
      break;
    }
    if (e && e->state == ENTRY_PENDING) {
      waited_for = e->generation;
      e->waiters++;
      bool signalled = deadline_wait(&c->cond, &c->lock, deadline_ms);
      e->waiters--;
      if (!signalled && e->state == ENTRY_PENDING) {
        result = error_set(err, RESULT_TIMEOUT, "", "timed out waiting for a lookup");
        break;
      }
      continue;
    }
    /* Absent, expired, or an earlier lookup failed: this caller leads. Without
     * a free slot (all pending) it leads uncached. */
    if (!e)
      e = take_slot(c, key);
    if (e) {
      free(e->value);
      e->value = NULL;
      e->state = ENTRY_PENDING;
      e->generation = ++c->tick;
      *out_ticket = e->generation;
    }
    break;
  }
  pthread_mutex_unlock(&c->lock);
  return result;
}

void lookup_cache_end(struct lookup_cache *c, const char *key, uint64_t ticket,
                      const char *value, int result, const struct error_info *err) {
  pthread_mutex_lock(&c->lock);
  struct lookup_cache_entry *e = ticket ? find(c, key) : NULL;
  if (e && e->state == ENTRY_PENDING && e->generation == ticket) {
    e->last_used = ++c->tick;
    e->settled_ms = time_mono_ms();
    if (result == RESULT_OK && value && (e->value = strdup(value))) {
      e->state = ENTRY_READY;
    } else {
      e->state = ENTRY_FAILED;
      e->result = result == RESULT_OK ? RESULT_NOMEM : result;
      if (err)
        e->error = *err;
      else
        memset(&e->error, 0, sizeof e->error);
    }
    pthread_cond_broadcast(&c->cond);
  }
  pthread_mutex_unlock(&c->lock);
}
