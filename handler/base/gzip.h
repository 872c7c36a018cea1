/* gzip for request bodies (App Insights ingestion accepts Content-Encoding:
 * gzip): the one module that includes zlib.
 * Thread-safe: no shared state. Ownership: *out is malloc'd; the caller frees. */
#ifndef HANDLER_GZIP_H
#define HANDLER_GZIP_H

#include <stddef.h>
#include <stdint.h>

#include "base/result.h"

HANDLER_NODISCARD int gzip_compress(const void *in, size_t len, uint8_t **out,
                                    size_t *out_len);

#endif
