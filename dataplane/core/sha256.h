/*
 * sha256: SHA-256 for the request path (rate-limit keys, API-key secrets). OpenSSL 3's one-shot SHA256() looks the
 * algorithm up in the provider tables on every call (EVP_Q_digest -> EVP_MD_fetch: more instructions than hashing a
 * short key); here the algorithm is fetched once per process and each thread keeps one digest context.
 */
#ifndef CPH_SHA256_H
#define CPH_SHA256_H

#include <stddef.h>

#define CPH_SHA256_LEN 32

/** SHA-256 of data[0..len) into out (any thread). Fatal only when OpenSSL cannot provide SHA-256 at all. */
void cph_sha256(const void *data, size_t len, unsigned char out[CPH_SHA256_LEN]);

#endif
