/* Crypto the tests need and the handler does not: decoding base64url (JWT parts)
 * and checking an RS256 signature against a certificate. See crypto_support.h. */
#include "crypto_support.h"

#include <stdlib.h>

#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "base/crypto.h"
#include "base/files.h"

static int b64url_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

int crypto_base64url_decode(const char *text, size_t len, uint8_t **out,
                            size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  while (len > 0 && text[len - 1] == '=')
    len--;
  if (len % 4 == 1)
    return RESULT_INVALID;
  uint8_t *buf = malloc(len / 4 * 3 + 3);
  if (!buf)
    return RESULT_NOMEM;
  size_t j = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64url_value(text[i]);
    if (v < 0) {
      free(buf);
      return RESULT_INVALID;
    }
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[j++] = (uint8_t)(acc >> bits);
    }
  }
  buf[j] = '\0';
  *out = buf;
  *out_len = j;
  return RESULT_OK;
}

int crypto_verify_rs256_with_cert(const char *pem_path, const void *data, size_t len,
                                  const uint8_t *sig, size_t sig_len) {
  char *pem = NULL;
  size_t pem_len = 0;
  if (files_read(pem_path, 1 << 20, &pem, &pem_len, NULL) != RESULT_OK)
    return RESULT_IO;
  mbedtls_x509_crt cert;
  mbedtls_x509_crt_init(&cert);
  int rc = mbedtls_x509_crt_parse(&cert, (const unsigned char *)pem, pem_len + 1);
  free(pem);
  uint8_t hash[32];
  crypto_sha256(data, len, hash);
  if (rc >= 0)
    rc = mbedtls_pk_verify(&cert.pk, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sig_len);
  mbedtls_x509_crt_free(&cert);
  return rc == 0 ? RESULT_OK : RESULT_INVALID;
}
