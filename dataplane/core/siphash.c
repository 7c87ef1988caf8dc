/*
 * siphash: SipHash-1-3 with one compression round per 8-byte word and three finalisation rounds (core/siphash.h).
 */
#include <string.h>
#include "dataplane/core/siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3)                                                                                                   \
    do {                                                                                                                           \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                                                                  \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                                                                     \
        v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                                                                     \
        v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                                                                  \
    } while (0)

uint64_t cph_siphash13(uint64_t k0, uint64_t k1, const uint64_t *prefix, const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull, m;
    uint64_t b = (uint64_t)(len + (prefix != NULL ? 8 : 0)) << 56;

    if (prefix != NULL) {
        v3 ^= *prefix;
        SIPROUND(v0, v1, v2, v3);
        v0 ^= *prefix;
    }
    for (; len >= 8; in += 8, len -= 8) {
        memcpy(&m, in, 8);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    for (size_t i = 0; i != len; i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i != 3; i++)
        SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}
