/* Test support: inflates what base/gzip compressed (ingestion bodies, fuzz
 * round trips). Not part of the handler, which only compresses.
 * Thread-safe: no shared state. Ownership: *out is malloc'd; the caller frees. */
#ifndef HANDLER_TEST_GUNZIP_H
#define HANDLER_TEST_GUNZIP_H

#include <stddef.h>
#include <stdint.h>

#include "base/result.h"

/* Inflates gzip data; RESULT_TOOBIG past `max_out` bytes, RESULT_INVALID when the
 * input is not gzip. Never allocates more than max_out + 1 bytes. */
int gzip_decompress(const void *in, size_t len, size_t max_out, uint8_t **out,
                    size_t *out_len);

#endif
