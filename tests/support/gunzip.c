/* gzip decompression with a cap, for tests and fuzz targets only: the handler
 * compresses (base/gzip) and never inflates. See gunzip.h. */
#include "gunzip.h"

#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

#define GZIP_WINDOW_BITS (15 + 16) /* 16: gzip header and trailer instead of zlib's */

int gzip_decompress(const void *in, size_t len, size_t max_out, uint8_t **out,
                    size_t *out_len) {
  z_stream zs = {0};
  if (len >= UINT_MAX)
    return RESULT_TOOBIG;
  if (max_out >= UINT_MAX)
    max_out = UINT_MAX - 1;
  if (inflateInit2(&zs, GZIP_WINDOW_BITS) != Z_OK)
    return RESULT_NOMEM;
  size_t cap = len * 4 + 64;
  if (cap > max_out + 1)
    cap = max_out + 1;
  uint8_t *buf = malloc(cap);
  int r = RESULT_NOMEM, z = Z_OK;
  zs.next_in = (Bytef *)in;
  zs.avail_in = (uInt)len;
  while (buf) {
    zs.next_out = buf + zs.total_out;
    zs.avail_out = (uInt)(cap - zs.total_out);
    z = inflate(&zs, Z_NO_FLUSH);
    if (z == Z_STREAM_END)
      break;
    if (z != Z_OK && z != Z_BUF_ERROR) {
      r = RESULT_INVALID;
      goto fail;
    }
    if (zs.avail_out > 0) { /* input ended before the stream did */
      r = RESULT_INVALID;
      goto fail;
    }
    if (cap > max_out) {
      r = RESULT_TOOBIG;
      goto fail;
    }
    size_t grown_cap = cap * 2 > max_out + 1 ? max_out + 1 : cap * 2;
    uint8_t *grown = realloc(buf, grown_cap);
    if (!grown)
      goto fail;
    buf = grown;
    cap = grown_cap;
  }
  if (!buf)
    goto done;
  if (zs.total_out > max_out) {
    r = RESULT_TOOBIG;
    goto fail;
  }
  *out = buf;
  *out_len = zs.total_out;
  r = RESULT_OK;
  goto done;
fail:
  free(buf);
done:
  inflateEnd(&zs);
  return r;
}
