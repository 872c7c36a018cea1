/* Bounded id set: a ring of `capacity` entries, oldest overwritten first, and a
 * hash index of chains threaded through the ring (next = ring index, -1 ends).
 * Invariant: every occupied ring slot is on exactly one chain, the one of its
 * hash's bucket. One mutex guards everything. */
#include "dedup.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"

struct entry {
  char *id; /* NULL: free slot */
  uint64_t hash;
  long next;
};

struct dedup {
  pthread_mutex_t lock;
  struct entry *ring;
  size_t capacity, head, size;
  long *buckets;
  size_t bucket_count; /* a power of two */
};

static uint64_t hash_id(const char *id) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  return h;
}

struct dedup *dedup_new(size_t capacity) {
  struct dedup *set = calloc(1, sizeof *set);
  if (!set)
    return NULL;
  set->capacity = capacity ? capacity : DEDUP_DEFAULT_CAPACITY;
  set->bucket_count = 1;
  while (set->bucket_count < set->capacity * 2)
    set->bucket_count <<= 1;
  set->ring = calloc(set->capacity, sizeof *set->ring);
  set->buckets = malloc(set->bucket_count * sizeof *set->buckets);
  if (!set->ring || !set->buckets) {
    free(set->ring);
    free(set->buckets);
    free(set);
    return NULL;
  }
  for (size_t i = 0; i < set->bucket_count; i++)
    set->buckets[i] = -1;
  pthread_mutex_init(&set->lock, NULL);
  return set;
}

void dedup_free(struct dedup *set) {
  if (!set)
    return;
  for (size_t i = 0; i < set->capacity; i++)
    free(set->ring[i].id);
  free(set->ring);
  free(set->buckets);
  pthread_mutex_destroy(&set->lock);
  free(set);
}

static long find(const struct dedup *set, const char *id, uint64_t hash) {
  for (long i = set->buckets[hash & (set->bucket_count - 1)]; i >= 0;
       i = set->ring[i].next)
    if (set->ring[i].hash == hash && strcmp(set->ring[i].id, id) == 0)
      return i;
  return -1;
}

bool dedup_contains(struct dedup *set, const char *id) {
  if (!id)
    return false;
  uint64_t hash = hash_id(id);
  pthread_mutex_lock(&set->lock);
  bool found = find(set, id, hash) >= 0;
  pthread_mutex_unlock(&set->lock);
  return found;
}

/* Removes ring slot `slot` from its chain and frees its id. */
static void evict(struct dedup *set, size_t slot) {
  struct entry *e = &set->ring[slot];
  long *link = &set->buckets[e->hash & (set->bucket_count - 1)];
  while (*link >= 0 && (size_t)*link != slot)
    link = &set->ring[*link].next;
  if (*link >= 0)
    *link = e->next;
  free(e->id);
  e->id = NULL;
  set->size--;
}

/* Under lock: inserts `copy` (taken) at the ring's head. */
static void insert(struct dedup *set, char *copy, uint64_t hash) {
  size_t slot = set->head;
  set->head = (set->head + 1) % set->capacity;
  if (set->ring[slot].id)
    evict(set, slot);
  long *bucket = &set->buckets[hash & (set->bucket_count - 1)];
  set->ring[slot] = (struct entry){.id = copy, .hash = hash, .next = *bucket};
  *bucket = (long)slot;
  set->size++;
}

bool dedup_claim(struct dedup *set, const char *id) {
  if (!id)
    return false;
  uint64_t hash = hash_id(id);
  char *copy = strdup(id);
  if (!copy)
    return false;
  pthread_mutex_lock(&set->lock);
  bool added = find(set, id, hash) < 0;
  if (added)
    insert(set, copy, hash);
  pthread_mutex_unlock(&set->lock);
  if (!added)
    free(copy);
  return added;
}

int dedup_add(struct dedup *set, const char *id) {
  if (!id)
    return RESULT_OK;
  if (dedup_claim(set, id) || dedup_contains(set, id))
    return RESULT_OK;
  return RESULT_NOMEM;
}

void dedup_remove(struct dedup *set, const char *id) {
  if (!id)
    return;
  uint64_t hash = hash_id(id);
  pthread_mutex_lock(&set->lock);
  long slot = find(set, id, hash);
  if (slot >= 0)
    evict(set, (size_t)slot);
  pthread_mutex_unlock(&set->lock);
}

size_t dedup_size(struct dedup *set) {
  pthread_mutex_lock(&set->lock);
  size_t n = set->size;
  pthread_mutex_unlock(&set->lock);
  return n;
}
