/* Cryptography over mbedTLS 2.28: the one file that includes it.
 *
 * One CTR-DRBG, seeded once from the system's entropy, feeds random bytes,
 * UUIDs and the blinding of RSA signatures; it sits behind `rng_lock` because
 * mbedTLS's generator is not safe to share unlocked. Client credentials are
 * read from a PEM file that holds a certificate and an RSA private key (in any
 * order, the key optionally encrypted); the blocks are cut out of the file here
 * so each problem (no certificate, no key, wrong password) gets its own
 * sentence. mbedTLS error codes never leave this file: they become RESULT_*
 * values, and no sentence quotes key material or the password.
 *
 * Threading: every function is thread-safe once crypto_global_init() has run
 * (the generator also initialises itself on first use, under pthread_once).
 * A loaded credential is immutable except for the RSA blinding state, which
 * its own `sign_lock` guards. */
#include "base/crypto.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "base/files.h"

#define PEM_FILE_MAX (256 * 1024)

static pthread_once_t rng_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t rng_lock = PTHREAD_MUTEX_INITIALIZER;
static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static int rng_status = -1; /* 0 once seeded; the mbedTLS error otherwise */

static void rng_setup(void) {
  static const char personalisation[] = "aml-event-handler";
  mbedtls_entropy_init(&entropy);
  mbedtls_ctr_drbg_init(&drbg);
  rng_status = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
                                     (const unsigned char *)personalisation,
                                     sizeof personalisation - 1);
}

int crypto_global_init(struct error_info *err) {
  pthread_once(&rng_once, rng_setup);
  if (rng_status != 0)
    return error_set(err, RESULT_IO, "",
                     "the random generator could not be seeded from the system's "
                     "entropy (mbedTLS -0x%04x)",
                     (unsigned)-rng_status);
  return RESULT_OK;
}

void crypto_global_cleanup(void) {
  pthread_mutex_lock(&rng_lock);
  if (rng_status == 0) {
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    rng_status = -1;
  }
  pthread_mutex_unlock(&rng_lock);
}

/* An mbedTLS f_rng over the shared generator. */
static int rng_fill(void *ctx, unsigned char *out, size_t len) {
  (void)ctx;
  pthread_once(&rng_once, rng_setup);
  pthread_mutex_lock(&rng_lock);
  int r = rng_status == 0 ? mbedtls_ctr_drbg_random(&drbg, out, len)
                          : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
  pthread_mutex_unlock(&rng_lock);
  return r;
}

int crypto_random(void *out, size_t len) {
  /* ctr_drbg hands out at most MBEDTLS_CTR_DRBG_MAX_REQUEST bytes per call. */
  unsigned char *p = out;
  while (len > 0) {
    size_t n = len < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len : MBEDTLS_CTR_DRBG_MAX_REQUEST;
    if (rng_fill(NULL, p, n) != 0)
      return RESULT_IO;
    p += n;
    len -= n;
  }
  return RESULT_OK;
}

void crypto_sha1(const void *data, size_t len, uint8_t out[20]) {
  mbedtls_sha1_ret(data, len, out);
}

void crypto_sha256(const void *data, size_t len, uint8_t out[32]) {
  mbedtls_sha256_ret(data, len, out, 0);
}

void crypto_hex(const uint8_t *data, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 15];
  }
  out[2 * len] = '\0';
}

int crypto_uuid4(char out[37]) {
  uint8_t b[16];
  if (crypto_random(b, sizeof b) != RESULT_OK)
    return RESULT_IO;
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  char hex[33];
  crypto_hex(b, sizeof b, hex);
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
           hex + 20);
  return RESULT_OK;
}

void crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[32]) {
  mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, key_len, data, len,
                  out);
}

char *crypto_base64(const void *data, size_t len) {
  size_t cap = (len + 2) / 3 * 4 + 1, written = 0;
  char *out = malloc(cap);
  if (out && mbedtls_base64_encode((unsigned char *)out, cap, &written, data, len) != 0) {
    free(out);
    return NULL;
  }
  return out;
}

int crypto_base64_decode(const char *text, uint8_t **out, size_t *out_len) {
  size_t len = strlen(text), written = 0;
  *out = NULL;
  *out_len = 0;
  uint8_t *buf = malloc(len / 4 * 3 + 4);
  if (!buf)
    return RESULT_NOMEM;
  if (mbedtls_base64_decode(buf, len / 4 * 3 + 3, &written, (const unsigned char *)text,
                            len) != 0) {
    free(buf);
    return RESULT_INVALID;
  }
  buf[written] = '\0';
  *out = buf;
  *out_len = written;
  return RESULT_OK;
}

char *crypto_base64url(const void *data, size_t len) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const uint8_t *in = data;
  char *out = malloc(len / 3 * 4 + 5);
  if (!out)
    return NULL;
  size_t j = 0, i = 0;
  for (; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[j++] = alphabet[v >> 18 & 63];
    out[j++] = alphabet[v >> 12 & 63];
    out[j++] = alphabet[v >> 6 & 63];
    out[j++] = alphabet[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[j++] = alphabet[v >> 18 & 63];
    out[j++] = alphabet[v >> 12 & 63];
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[j++] = alphabet[v >> 18 & 63];
    out[j++] = alphabet[v >> 12 & 63];
    out[j++] = alphabet[v >> 6 & 63];
  }
  out[j] = '\0';
  return out;
}

struct crypto_credential {
  mbedtls_x509_crt cert;
  mbedtls_pk_context key;
  pthread_mutex_t sign_lock; /* the RSA context's blinding values change per signature */
};

/* Reads the certificate file (at most PEM_FILE_MAX bytes), NUL-terminated. */
static int read_file(const char *path, char **out, size_t *out_len,
                     struct error_info *err) {
  int e = 0;
  int r = files_read(path, PEM_FILE_MAX, out, out_len, &e);
  if (r == RESULT_NOTFOUND || r == RESULT_IO)
    return error_set(err, RESULT_IO, "",
                     "the certificate file \"%.200s\" cannot be read: %s", path,
                     strerror(e));
  if (r == RESULT_TOOBIG)
    return error_set(err, RESULT_TOOBIG, "",
                     "the certificate file \"%.200s\" is larger than %d bytes", path,
                     PEM_FILE_MAX);
  return r;
}

/* Copies the first PEM block whose BEGIN line is one of `labels` into a new
 * NUL-terminated buffer (mbedTLS wants the terminator counted in the length). */
static char *cut_block(const char *pem, const char *const *labels, size_t *out_len) {
  for (const char *p = strstr(pem, "-----BEGIN "); p; p = strstr(p + 1, "-----BEGIN ")) {
    for (const char *const *l = labels; *l; l++) {
      size_t n = strlen(*l);
      if (strncmp(p + 11, *l, n) != 0 || strncmp(p + 11 + n, "-----", 5) != 0)
        continue;
      char footer[64];
      snprintf(footer, sizeof footer, "-----END %s-----", *l);
      const char *end = strstr(p, footer);
      if (!end)
        return NULL;
      end += strlen(footer);
      size_t len = (size_t)(end - p);
      char *block = malloc(len + 2);
      if (!block)
        return NULL;
      memcpy(block, p, len);
      block[len] = '\n';
      block[len + 1] = '\0';
      *out_len = len + 2;
      return block;
    }
  }
  return NULL;
}

int crypto_credential_load_pem(const char *path, const char *password,
                               struct crypto_credential **out, struct error_info *err) {
  static const char *const cert_labels[] = {"CERTIFICATE", NULL};
  static const char *const key_labels[] = {"RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
                                           "PRIVATE KEY", NULL};
  int result = RESULT_NOMEM;
  char *pem = NULL, *cert_block = NULL, *key_block = NULL;
  size_t pem_len = 0, cert_len = 0, key_len = 0;
  struct crypto_credential *cred = NULL;
  *out = NULL;

  if ((result = read_file(path, &pem, &pem_len, err)) != RESULT_OK)
    goto done;
  result = RESULT_NOMEM;
  if (!(cred = calloc(1, sizeof *cred)))
    goto done;
  mbedtls_x509_crt_init(&cred->cert);
  mbedtls_pk_init(&cred->key);
  pthread_mutex_init(&cred->sign_lock, NULL);

  if (!(cert_block = cut_block(pem, cert_labels, &cert_len))) {
    result = error_set(err, RESULT_INVALID, "",
                       "the certificate file \"%.200s\" holds no PEM certificate "
                       "(-----BEGIN CERTIFICATE-----)",
                       path);
    goto done;
  }
  int rc =
      mbedtls_x509_crt_parse(&cred->cert, (const unsigned char *)cert_block, cert_len);
  if (rc != 0) {
    result = error_set(err, RESULT_INVALID, "",
                       "the certificate in \"%.200s\" cannot be parsed (mbedTLS -0x%04x)",
                       path, (unsigned)-rc);
    goto done;
  }
  if (!(key_block = cut_block(pem, key_labels, &key_len))) {
    result = error_set(err, RESULT_INVALID, "",
                       "the certificate file \"%.200s\" holds no PEM private key "
                       "(-----BEGIN PRIVATE KEY----- or RSA PRIVATE KEY); put the key "
                       "and the certificate in the same file",
                       path);
    goto done;
  }
  size_t pwd_len = password ? strlen(password) : 0;
  rc = mbedtls_pk_parse_key(&cred->key, (const unsigned char *)key_block, key_len,
                            (const unsigned char *)password, pwd_len);
  if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
    result = error_set(err, RESULT_DENIED, "",
                       "the private key in \"%.200s\" is encrypted and no password was "
                       "given",
                       path);
    goto done;
  }
  if (rc == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
    result =
        error_set(err, RESULT_DENIED, "",
                  "the private key in \"%.200s\" cannot be decrypted: the password is "
                  "wrong",
                  path);
    goto done;
  }
  if (rc == MBEDTLS_ERR_PKCS5_FEATURE_UNAVAILABLE ||
      rc == MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE) {
    result =
        error_set(err, RESULT_INVALID, "",
                  "the private key in \"%.200s\" is encrypted with a cipher this build "
                  "cannot read (PKCS#8 with AES); re-encrypt it as PKCS#8 with 3DES or "
                  "as a traditional RSA key (openssl rsa -aes256 -traditional)",
                  path);
    goto done;
  }
  if (rc != 0) {
    result = error_set(err, RESULT_INVALID, "",
                       "the private key in \"%.200s\" cannot be parsed (mbedTLS -0x%04x)",
                       path, (unsigned)-rc);
    goto done;
  }
  if (!mbedtls_pk_can_do(&cred->key, MBEDTLS_PK_RSA)) {
    result = error_set(
        err, RESULT_INVALID, "",
        "the private key in \"%.200s\" is not an RSA key (RS256 needs one)", path);
    goto done;
  }
  if (mbedtls_pk_check_pair(&cred->cert.pk, &cred->key) != 0) {
    result = error_set(err, RESULT_INVALID, "",
                       "the private key in \"%.200s\" does not belong to its certificate",
                       path);
    goto done;
  }
  *out = cred;
  cred = NULL;
  result = RESULT_OK;
done:
  if (pem) {
    mbedtls_platform_zeroize(pem, pem_len);
    free(pem);
  }
  if (key_block) {
    mbedtls_platform_zeroize(key_block, key_len);
    free(key_block);
  }
  free(cert_block);
  crypto_credential_free(cred);
  return result;
}

void crypto_credential_free(struct crypto_credential *cred) {
  if (!cred)
    return;
  mbedtls_x509_crt_free(&cred->cert);
  mbedtls_pk_free(&cred->key);
  pthread_mutex_destroy(&cred->sign_lock);
  free(cred);
}

void crypto_credential_thumbprints(const struct crypto_credential *cred, uint8_t sha1[20],
                                   uint8_t sha256[32]) {
  if (sha1)
    crypto_sha1(cred->cert.raw.p, cred->cert.raw.len, sha1);
  if (sha256)
    crypto_sha256(cred->cert.raw.p, cred->cert.raw.len, sha256);
}

int crypto_credential_sign_rs256(const struct crypto_credential *cred, const void *data,
                                 size_t len, uint8_t **out_sig, size_t *out_sig_len,
                                 struct error_info *err) {
  int result = RESULT_NOMEM;
  uint8_t hash[32];
  uint8_t *sig = NULL;
  size_t sig_len = 0;
  *out_sig = NULL;
  *out_sig_len = 0;
  crypto_sha256(data, len, hash);
  if (!(sig = malloc(MBEDTLS_PK_SIGNATURE_MAX_SIZE)))
    goto done;
  struct crypto_credential *mut = (struct crypto_credential *)cred;
  pthread_mutex_lock(&mut->sign_lock);
  int rc = mbedtls_pk_sign(&mut->key, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, &sig_len,
                           rng_fill, NULL);
  pthread_mutex_unlock(&mut->sign_lock);
  if (rc != 0) {
    result =
        error_set(err, RESULT_IO, "",
                  "signing the client assertion failed (mbedTLS -0x%04x)", (unsigned)-rc);
    goto done;
  }
  *out_sig = sig;
  *out_sig_len = sig_len;
  sig = NULL;
  result = RESULT_OK;
done:
  free(sig);
  return result;
}
