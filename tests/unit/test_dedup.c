/* Unit tests of the bounded id set: eviction of the oldest, claims, removal
 * from the middle of a chain, a capacity far above the ids it holds, and
 * concurrent claims of the same ids (exactly one winner each; run under TSan
 * in CI). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "base/dedup.h"

static void oldest_forgotten(void **state) {
  struct dedup *set = dedup_new(4);
  assert_non_null(set);
  char id[16];
  for (int i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "id-%d", i);
    dedup_add(set, id);
  }
  assert_int_equal(dedup_size(set), 4);
  assert_false(dedup_contains(set, "id-0")); /* the oldest was forgotten */
  for (int i = 1; i < 5; i++) {
    snprintf(id, sizeof id, "id-%d", i);
    assert_true(dedup_contains(set, id));
  }
  dedup_add(set, "id-4"); /* present: no effect */
  assert_int_equal(dedup_size(set), 4);
  assert_true(dedup_contains(set, "id-1"));
  assert_false(dedup_contains(set, NULL));
  /* 1000 ids through 8 buckets: long chains, every eviction unlinks one. */
  for (int i = 0; i < 1000; i++) {
    snprintf(id, sizeof id, "n-%d", i);
    dedup_add(set, id);
  }
  assert_int_equal(dedup_size(set), 4);
  for (int i = 996; i < 1000; i++) {
    snprintf(id, sizeof id, "n-%d", i);
    assert_true(dedup_contains(set, id));
  }
  for (int i = 0; i < 996; i++) {
    snprintf(id, sizeof id, "n-%d", i);
    assert_false(dedup_contains(set, id));
  }
  dedup_free(set);
}

static void claim_and_remove(void **state) {
  struct dedup *set = dedup_new(4);
  dedup_add(set, "n-999");
  assert_true(dedup_claim(set, "c"));
  assert_false(dedup_claim(set, "c"));
  assert_false(dedup_claim(set, NULL));
  dedup_remove(set, "c");
  dedup_remove(set, "never added");
  dedup_remove(set, NULL);
  assert_false(dedup_contains(set, "c"));
  assert_true(dedup_claim(set, "c"));
  assert_true(dedup_contains(set, "n-999"));
  dedup_remove(set, "c");
  /* A removed id leaves its ring slot empty until the ring comes round. */
  assert_int_equal(dedup_size(set), 1);
  dedup_free(set);
}

/* Removing entries from the middle and the ends of chains keeps the others. */
static void remove_within_chains(void **state) {
  struct dedup *set = dedup_new(512); /* 1024 buckets, 512 ids: some chains */
  char id[16];
  for (int i = 0; i < 512; i++) {
    snprintf(id, sizeof id, "r-%d", i);
    assert_true(dedup_claim(set, id));
  }
  for (int i = 0; i < 512; i += 3) {
    snprintf(id, sizeof id, "r-%d", i);
    dedup_remove(set, id);
  }
  for (int i = 0; i < 512; i++) {
    snprintf(id, sizeof id, "r-%d", i);
    assert_int_equal(dedup_contains(set, id), i % 3 != 0);
  }
  assert_int_equal(dedup_size(set), 512 - 171);
  dedup_free(set);
}

static void capacity_limits(void **state) {
  struct dedup *set = dedup_new(0); /* the default */
  assert_non_null(set);
  assert_true(dedup_claim(set, "x"));
  assert_int_equal(dedup_size(set), 1);
  dedup_free(set);
  assert_null(dedup_new((size_t)1 << 31));
  dedup_free(NULL);
}

#define THREADS 8
#define IDS 2000

static struct dedup *shared;
static int wins[THREADS];

static void *claimer(void *arg) {
  int *won = arg;
  char id[16];
  for (int i = 0; i < IDS; i++) {
    snprintf(id, sizeof id, "t-%d", i);
    if (dedup_claim(shared, id))
      (*won)++;
  }
  return NULL;
}

static void concurrent_claims_have_one_winner(void **state) {
  shared = dedup_new(IDS);
  pthread_t threads[THREADS];
  for (int t = 0; t < THREADS; t++) {
    wins[t] = 0;
    assert_int_equal(pthread_create(&threads[t], NULL, claimer, &wins[t]), 0);
  }
  int total = 0;
  for (int t = 0; t < THREADS; t++) {
    pthread_join(threads[t], NULL);
    total += wins[t];
  }
  assert_int_equal(total, IDS);
  assert_int_equal(dedup_size(shared), IDS);
  dedup_free(shared);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(oldest_forgotten),
      cmocka_unit_test(claim_and_remove),
      cmocka_unit_test(remove_within_chains),
      cmocka_unit_test(capacity_limits),
      cmocka_unit_test(concurrent_claims_have_one_winner),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
