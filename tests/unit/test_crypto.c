/* Unit tests of crypto: hashes, hex and base64url against known vectors, UUIDs,
 * and client credentials read from PEM files generated at test time with the
 * openssl CLI into a temporary directory (throwaway keys, never committed):
 * key and certificate in either order, encrypted keys (traditional AES and
 * PKCS#8 3DES), each failure with its own sentence that names the path and
 * never the key or the password, thumbprints equal to openssl's fingerprints,
 * and RS256 signatures that openssl itself verifies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/crypto.h"
#include "crypto_support.h"

static char dir[64];

static void run(const char *fmt, ...) HANDLER_PRINTF(1, 2);
static void run(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  if (system(cmd) != 0)
    fail_msg("command failed: %s", cmd);
}

static void path(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s", dir, name);
}

static int setup_keys(void **state) {
  snprintf(dir, sizeof dir, "/tmp/test_crypto.XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  char cmd[2048];
  snprintf(
      cmd, sizeof cmd,
      "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem "
      "-subj /CN=throwaway-test -days 2 2>/dev/null && "
      "cat cert.pem key.pem > cert_key.pem && cat key.pem cert.pem > key_cert.pem && "
      "openssl rsa -in key.pem -aes256 -passout pass:Pa55word -traditional "
      "-out enc_trad.pem 2>/dev/null && cat enc_trad.pem cert.pem > enc_trad_all.pem && "
      "openssl pkcs8 -topk8 -v2 des3 -in key.pem -passout pass:Pa55word "
      "-out enc_p8.pem && cat cert.pem enc_p8.pem > enc_p8_all.pem && "
      "openssl pkcs8 -topk8 -v2 aes256 -in key.pem -passout pass:Pa55word "
      "-out aes_p8.pem && cat cert.pem aes_p8.pem > aes_p8_all.pem && "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout other_key.pem -out other.pem "
      "-subj /CN=other -days 2 2>/dev/null && cat cert.pem other_key.pem > mismatch.pem "
      "&& "
      "openssl x509 -in cert.pem -pubkey -noout > pub.pem",
      dir);
  return system(cmd) == 0 ? 0 : -1;
}

static int teardown_keys(void **state) {
  run("rm -rf %s", dir);
  return 0;
}

static void hashes_match_known_vectors(void **state) {
  uint8_t d1[20], d256[32];
  char hex[65];
  crypto_sha1("abc", 3, d1);
  crypto_hex(d1, sizeof d1, hex);
  assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
  crypto_sha256("abc", 3, d256);
  crypto_hex(d256, sizeof d256, hex);
  assert_string_equal(hex,
                      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  crypto_sha256("", 0, d256);
  crypto_hex(d256, sizeof d256, hex);
  assert_string_equal(hex,
                      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void base64url_round_trips(void **state) {
  const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
  for (size_t i = 0; i < 7; i++) {
    char *b = crypto_base64url(plain[i], strlen(plain[i]));
    assert_string_equal(b, coded[i]);
    uint8_t *back;
    size_t len;
    assert_int_equal(crypto_base64url_decode(b, strlen(b), &back, &len), RESULT_OK);
    assert_int_equal(len, strlen(plain[i]));
    assert_memory_equal(back, plain[i], len);
    free(back);
    free(b);
  }
  /* The URL-safe alphabet, no padding. */
  const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
  char *b = crypto_base64url(bytes, sizeof bytes);
  assert_string_equal(b, "-_-_");
  free(b);
  uint8_t *out;
  size_t len;
  assert_int_equal(crypto_base64url_decode("Zm8=", 4, &out, &len), RESULT_OK);
  assert_int_equal(len, 2);
  free(out);
  assert_int_equal(crypto_base64url_decode("Zm+v", 4, &out, &len), RESULT_INVALID);
  assert_int_equal(crypto_base64url_decode("Z", 1, &out, &len), RESULT_INVALID);
}

static void uuid4_and_random(void **state) {
  assert_int_equal(crypto_global_init(NULL), RESULT_OK);
  char a[37], b[37];
  assert_int_equal(crypto_uuid4(a), RESULT_OK);
  assert_int_equal(crypto_uuid4(b), RESULT_OK);
  assert_int_equal(strlen(a), 36);
  assert_string_not_equal(a, b);
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23)
      assert_int_equal(a[i], '-');
    else
      assert_non_null(strchr("0123456789abcdef", a[i]));
  }
  assert_int_equal(a[14], '4');
  assert_non_null(strchr("89ab", a[19]));
  uint8_t big[3000] = {0};
  assert_int_equal(crypto_random(big, sizeof big), RESULT_OK);
  int zeros = 0;
  for (size_t i = 0; i < sizeof big; i++)
    zeros += big[i] == 0;
  assert_true(zeros < 100);
}

/* openssl's SHA-1/SHA-256 fingerprint of cert.pem, as lower-case hex. */
static void openssl_fingerprint(const char *alg, char *out) {
  char cmd[512], line[256];
  snprintf(cmd, sizeof cmd, "openssl x509 -in %s/cert.pem -noout -fingerprint -%s", dir,
           alg);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  assert_non_null(fgets(line, sizeof line, p));
  pclose(p);
  const char *v = strchr(line, '=');
  assert_non_null(v);
  size_t j = 0;
  for (v++; *v && *v != '\n'; v++)
    if (*v != ':')
      out[j++] = (char)(*v >= 'A' && *v <= 'F' ? *v - 'A' + 'a' : *v);
  out[j] = '\0';
}

static void loads_key_and_certificate_in_any_order(void **state) {
  const char *files[] = {"cert_key.pem", "key_cert.pem"};
  char expect1[64], expect256[80];
  openssl_fingerprint("sha1", expect1);
  openssl_fingerprint("sha256", expect256);
  for (int i = 0; i < 2; i++) {
    char p[128];
    path(p, sizeof p, files[i]);
    struct crypto_credential *cred = NULL;
    struct error_info err = {{0}, {0}};
    assert_int_equal(crypto_credential_load_pem(p, NULL, &cred, &err), RESULT_OK);
    uint8_t s1[20], s256[32];
    char hex[65];
    crypto_credential_thumbprints(cred, s1, s256);
    crypto_hex(s1, 20, hex);
    assert_string_equal(hex, expect1);
    crypto_hex(s256, 32, hex);
    assert_string_equal(hex, expect256);
    crypto_credential_free(cred);
  }
}

static void loads_encrypted_keys(void **state) {
  const char *files[] = {"enc_trad_all.pem", "enc_p8_all.pem"};
  for (int i = 0; i < 2; i++) {
    char p[128];
    path(p, sizeof p, files[i]);
    struct crypto_credential *cred = NULL;
    struct error_info err = {{0}, {0}};
    assert_int_equal(crypto_credential_load_pem(p, "Pa55word", &cred, &err), RESULT_OK);
    crypto_credential_free(cred);

    /* No password, and a wrong one: RESULT_DENIED, naming the path only. */
    assert_int_equal(crypto_credential_load_pem(p, NULL, &cred, &err), RESULT_DENIED);
    assert_null(cred);
    assert_non_null(strstr(err.message, p));
    assert_non_null(strstr(err.message, "no password"));
    assert_int_equal(crypto_credential_load_pem(p, "wrong-password", &cred, &err),
                     RESULT_DENIED);
    assert_null(cred);
    assert_non_null(strstr(err.message, "password is wrong"));
    assert_null(strstr(err.message, "wrong-password"));
    assert_null(strstr(err.message, "MII"));
  }
}

static void explains_each_unusable_file(void **state) {
  struct crypto_credential *cred = NULL;
  struct error_info err = {{0}, {0}};
  char p[128];

  path(p, sizeof p, "missing.pem");
  assert_int_equal(crypto_credential_load_pem(p, NULL, &cred, &err), RESULT_IO);
  assert_non_null(strstr(err.message, p));
  assert_non_null(strstr(err.message, "cannot be read"));

  path(p, sizeof p, "key.pem");
  assert_int_equal(crypto_credential_load_pem(p, NULL, &cred, &err), RESULT_INVALID);
  assert_non_null(strstr(err.message, "no PEM certificate"));
  assert_null(strstr(err.message, "MII"));

  path(p, sizeof p, "cert.pem");
  assert_int_equal(crypto_credential_load_pem(p, NULL, &cred, &err), RESULT_INVALID);
  assert_non_null(strstr(err.message, "no PEM private key"));

  /* mbedTLS 2.28 reads PBES2 with 3DES only: say so rather than "wrong password". */
  path(p, sizeof p, "aes_p8_all.pem");
  assert_int_equal(crypto_credential_load_pem(p, "Pa55word", &cred, &err),
                   RESULT_INVALID);
  assert_non_null(strstr(err.message, "cipher this build cannot read"));

  path(p, sizeof p, "mismatch.pem");
  assert_int_equal(crypto_credential_load_pem(p, NULL, &cred, &err), RESULT_INVALID);
  assert_non_null(strstr(err.message, "does not belong"));
  assert_null(cred);
}

static void signs_rs256_verifiably(void **state) {
  char p[128];
  path(p, sizeof p, "key_cert.pem");
  struct crypto_credential *cred = NULL;
  struct error_info err = {{0}, {0}};
  assert_int_equal(crypto_credential_load_pem(p, NULL, &cred, &err), RESULT_OK);
  const char data[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0";
  uint8_t *sig = NULL;
  size_t sig_len = 0;
  assert_int_equal(
      crypto_credential_sign_rs256(cred, data, strlen(data), &sig, &sig_len, &err),
      RESULT_OK);
  assert_int_equal(sig_len, 256);
  assert_int_equal(crypto_verify_rs256_with_cert(p, data, strlen(data), sig, sig_len),
                   RESULT_OK);
  assert_int_equal(crypto_verify_rs256_with_cert(p, data, strlen(data) - 1, sig, sig_len),
                   RESULT_INVALID);

  /* PKCS#1 v1.5 is deterministic: a second signature is identical, and openssl
   * verifies it with the certificate's public key. */
  uint8_t *again = NULL;
  size_t again_len = 0;
  assert_int_equal(
      crypto_credential_sign_rs256(cred, data, strlen(data), &again, &again_len, &err),
      RESULT_OK);
  assert_memory_equal(sig, again, sig_len);
  char sp[128], dp[128];
  path(sp, sizeof sp, "sig.bin");
  path(dp, sizeof dp, "data.txt");
  FILE *f = fopen(sp, "wb");
  fwrite(sig, 1, sig_len, f);
  fclose(f);
  f = fopen(dp, "wb");
  fwrite(data, 1, strlen(data), f);
  fclose(f);
  run("openssl dgst -sha256 -verify %s/pub.pem -signature %s %s >/dev/null", dir, sp, dp);
  free(sig);
  free(again);
  crypto_credential_free(cred);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hashes_match_known_vectors),
      cmocka_unit_test(base64url_round_trips),
      cmocka_unit_test(uuid4_and_random),
      cmocka_unit_test(loads_key_and_certificate_in_any_order),
      cmocka_unit_test(loads_encrypted_keys),
      cmocka_unit_test(explains_each_unusable_file),
      cmocka_unit_test(signs_rs256_verifiably),
  };
  int failed = cmocka_run_group_tests(tests, setup_keys, teardown_keys);
  crypto_global_cleanup();
  return failed;
}
