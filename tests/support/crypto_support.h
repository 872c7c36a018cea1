/* Test support: the crypto that only tests need (the handler signs and encodes,
 * it never decodes or verifies). Thread-safe: no shared state. */
#ifndef HANDLER_TEST_CRYPTO_SUPPORT_H
#define HANDLER_TEST_CRYPTO_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "base/result.h"

/* Decodes base64url (padding optional) into a malloc'd buffer (NUL-terminated for
 * convenience, the terminator not counted in *out_len). RESULT_INVALID when
 * `text` is not base64url. */
int crypto_base64url_decode(const char *text, size_t len, uint8_t **out, size_t *out_len);

/* Verifies an RS256 signature with the public key of the first certificate in
 * the PEM file at `pem_path`. RESULT_OK, RESULT_INVALID, or RESULT_IO. */
int crypto_verify_rs256_with_cert(const char *pem_path, const void *data, size_t len,
                                  const uint8_t *sig, size_t sig_len);

#endif
