/*
 * siphash: SipHash-1-3 (Aumasson and Bernstein), the keyed hash of the rate-limit table and the consistent-hash
 * balancer. Hand-written because OpenSSL's SipHash is an EVP_MAC (a context per call) and these run per request.
 */
#ifndef CPH_SIPHASH_H
#define CPH_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/**
 * SipHash-1-3 under the key (k0, k1) of: the 64-bit word *prefix (when prefix is not NULL, as the first 8 message
 * bytes in little-endian order), then in[0..len).
 */
uint64_t cph_siphash13(uint64_t k0, uint64_t k1, const uint64_t *prefix, const void *in, size_t len);

#endif
