/* Bounded id set: a ring of `capacity` entries, oldest overwritten first, and a
 * hash index of chains threaded through the ring. An id is kept as the first
 * 16 bytes of its SHA-256 (no copy, no allocation per id; two ids agree there
 * with negligible probability, and no one can make them agree on purpose).
 * Links are 1 + a ring index, so 0 means "none" and calloc'd memory is an
 * empty set: pages are touched only as the ring fills.
 * Invariant: every used ring slot is on exactly one chain, the one of its
 * digest's bucket. One mutex guards everything. */
#include "base/dedup.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/crypto.h"

#define DIGEST_LEN 16

struct entry {
  uint8_t digest[DIGEST_LEN];
  uint32_t next; /* 1 + ring index of the next entry on this chain; 0 ends it */
  uint32_t used;
};

struct dedup {
  pthread_mutex_t lock;
  struct entry *ring;
  size_t capacity, head, size;
  uint32_t *buckets;   /* 1 + ring index of the chain's first entry; 0: empty */
  size_t bucket_count; /* a power of two */
};

struct digest {
  uint8_t bytes[DIGEST_LEN];
  size_t bucket_hash;
};

static struct digest digest_of(const char *id) {
  uint8_t full[32];
  crypto_sha256(id, strlen(id), full);
  struct digest d;
  memcpy(d.bytes, full, DIGEST_LEN);
  memcpy(&d.bucket_hash, full, sizeof d.bucket_hash);
  return d;
}

struct dedup *dedup_new(size_t capacity) {
  if (capacity == 0)
    capacity = DEDUP_DEFAULT_CAPACITY;
  if (capacity > UINT32_MAX / 4)
    return NULL;
  struct dedup *set = calloc(1, sizeof *set);
  if (!set)
    return NULL;
  set->capacity = capacity;
  set->bucket_count = 1;
  while (set->bucket_count < capacity * 2)
    set->bucket_count <<= 1;
  set->ring = calloc(capacity, sizeof *set->ring);
  set->buckets = calloc(set->bucket_count, sizeof *set->buckets);
  if (!set->ring || !set->buckets) {
    free(set->ring);
    free(set->buckets);
    free(set);
    return NULL;
  }
  pthread_mutex_init(&set->lock, NULL);
  return set;
}

void dedup_free(struct dedup *set) {
  if (!set)
    return;
  free(set->ring);
  free(set->buckets);
  pthread_mutex_destroy(&set->lock);
  free(set);
}

static uint32_t *bucket_of(struct dedup *set, const struct digest *d) {
  return &set->buckets[d->bucket_hash & (set->bucket_count - 1)];
}

/* 1 + the ring index holding `d`, or 0. */
static uint32_t find(struct dedup *set, const struct digest *d) {
  for (uint32_t link = *bucket_of(set, d); link; link = set->ring[link - 1].next)
    if (memcmp(set->ring[link - 1].digest, d->bytes, DIGEST_LEN) == 0)
      return link;
  return 0;
}

/* Removes ring slot `slot` from its chain. */
static void evict(struct dedup *set, size_t slot) {
  struct entry *e = &set->ring[slot];
  struct digest d;
  memcpy(d.bytes, e->digest, DIGEST_LEN);
  memcpy(&d.bucket_hash, e->digest, sizeof d.bucket_hash);
  uint32_t *link = bucket_of(set, &d);
  while (*link && *link - 1 != slot)
    link = &set->ring[*link - 1].next;
  if (*link)
    *link = e->next;
  memset(e, 0, sizeof *e);
  set->size--;
}

/* Under lock: inserts `d` at the ring's head, forgetting the oldest if full. */
static void insert(struct dedup *set, const struct digest *d) {
  size_t slot = set->head;
  set->head = (set->head + 1) % set->capacity;
  if (set->ring[slot].used)
    evict(set, slot);
  uint32_t *bucket = bucket_of(set, d);
  struct entry *e = &set->ring[slot];
  memcpy(e->digest, d->bytes, DIGEST_LEN);
  e->next = *bucket;
  e->used = 1;
  *bucket = (uint32_t)slot + 1;
  set->size++;
}

bool dedup_contains(struct dedup *set, const char *id) {
  if (!id)
    return false;
  struct digest d = digest_of(id);
  pthread_mutex_lock(&set->lock);
  bool found = find(set, &d) != 0;
  pthread_mutex_unlock(&set->lock);
  return found;
}

bool dedup_claim(struct dedup *set, const char *id) {
  if (!id)
    return false;
  struct digest d = digest_of(id);
  pthread_mutex_lock(&set->lock);
  bool added = find(set, &d) == 0;
  if (added)
    insert(set, &d);
  pthread_mutex_unlock(&set->lock);
  return added;
}

void dedup_add(struct dedup *set, const char *id) {
  dedup_claim(set, id);
}

void dedup_remove(struct dedup *set, const char *id) {
  if (!id)
    return;
  struct digest d = digest_of(id);
  pthread_mutex_lock(&set->lock);
  uint32_t link = find(set, &d);
  if (link)
    evict(set, link - 1);
  pthread_mutex_unlock(&set->lock);
}

size_t dedup_size(struct dedup *set) {
  pthread_mutex_lock(&set->lock);
  size_t n = set->size;
  pthread_mutex_unlock(&set->lock);
  return n;
}
