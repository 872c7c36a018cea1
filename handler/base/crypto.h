/* Cryptography: the one module that includes mbedTLS.
 *
 * Hashes (SHA-1 for certificate thumbprints, SHA-256 for ids and x5t#S256),
 * HMAC-SHA256 and base64 (Azure Storage Shared Key), base64url, random bytes and UUIDs
 * from a CTR-DRBG seeded by the system's entropy, and RS256 signatures with a PEM private
 * key for JWT client assertions. Errors from mbedTLS are translated into RESULT_* with a
 * sentence (never the key material).
 *
 * Threading: crypto_global_init() once before threads start; afterwards every
 * function is thread-safe (the random generator sits behind its own lock).
 * Ownership: buffers are the caller's; crypto_key_free/crypto_cert_free free what
 * the loaders return. */
#ifndef HANDLER_CRYPTO_H
#define HANDLER_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "base/result.h"

HANDLER_NODISCARD int crypto_global_init(struct error_info *err);
void crypto_global_cleanup(void);

void crypto_sha1(const void *data, size_t len, uint8_t out[20]);
void crypto_sha256(const void *data, size_t len, uint8_t out[32]);

/* HMAC-SHA256 of `data` with `key` (Shared Key signatures of Azure Storage). */
void crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[32]);

HANDLER_NODISCARD int crypto_random(void *out, size_t len);
/* A random (version 4) UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (37 bytes). */
HANDLER_NODISCARD int crypto_uuid4(char out[37]);
/* Lower-case hex of `len` bytes into out (2*len+1 bytes). */
void crypto_hex(const uint8_t *data, size_t len, char *out);

/* base64url without padding into a malloc'd string; NULL on allocation failure. */
HANDLER_NODISCARD char *crypto_base64url(const void *data, size_t len);

/* Standard base64 (RFC 4648 section 4, with padding) into a malloc'd string;
 * NULL on allocation failure. */
HANDLER_NODISCARD char *crypto_base64(const void *data, size_t len);
/* Decodes standard base64 (padding required, as an account key carries it) into
 * a malloc'd buffer; RESULT_INVALID when `text` is not base64. */
HANDLER_NODISCARD int crypto_base64_decode(const char *text, uint8_t **out,
                                           size_t *out_len);

/* A certificate and private key read from one PEM file (password may be NULL).
 * The file may hold the blocks in any order; the first certificate is the one
 * whose thumbprints are reported. Errors name the path, never key material:
 * RESULT_IO (unreadable), RESULT_INVALID (no certificate, no private key, not
 * an RSA key, key and certificate do not match), RESULT_DENIED (password
 * missing or wrong). */
struct crypto_credential;
HANDLER_NODISCARD int crypto_credential_load_pem(const char *path, const char *password,
                                                 struct crypto_credential **out,
                                                 struct error_info *err);
void crypto_credential_free(struct crypto_credential *cred);
/* SHA-1 and SHA-256 of the certificate's DER encoding. */
void crypto_credential_thumbprints(const struct crypto_credential *cred, uint8_t sha1[20],
                                   uint8_t sha256[32]);
/* RSASSA-PKCS1-v1_5 with SHA-256 over `data`; malloc'd signature in *out_sig. */
HANDLER_NODISCARD int crypto_credential_sign_rs256(const struct crypto_credential *cred,
                                                   const void *data, size_t len,
                                                   uint8_t **out_sig, size_t *out_sig_len,
                                                   struct error_info *err);

#endif
