/* A bounded set of recently seen ids (Event Grid event ids whose telemetry was
 * accepted), so a redelivered event is acknowledged without sending again.
 *
 * Holds at most `capacity` ids; adding one more forgets the oldest (a ring of
 * entries plus a chained hash index). Ids are not copied: each is kept as 16
 * bytes of its SHA-256, so a full set of 65,536 costs 2 MB, and memory is
 * touched only as it fills.
 *
 * Ownership: dedup_new() returns a heap object freed by dedup_free().
 * Threading: every function but dedup_free is thread-safe (one internal lock). */
#ifndef HANDLER_DEDUP_H
#define HANDLER_DEDUP_H

#include <stdbool.h>
#include <stddef.h>

#include "base/result.h"

#define DEDUP_DEFAULT_CAPACITY 65536

struct dedup;

/* NULL on allocation failure or a capacity above 2^30. */
HANDLER_NODISCARD struct dedup *dedup_new(size_t capacity);
void dedup_free(struct dedup *set);

bool dedup_contains(struct dedup *set, const char *id);
/* Adds `id` (no effect when present). */
void dedup_add(struct dedup *set, const char *id);
/* Adds `id` when absent and says whether it did (an atomic test-and-set: of
 * concurrent claims of one id exactly one wins). */
bool dedup_claim(struct dedup *set, const char *id);
/* Forgets `id` (a claim whose work failed). */
void dedup_remove(struct dedup *set, const char *id);
size_t dedup_size(struct dedup *set);

#endif
