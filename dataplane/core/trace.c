/*
 * trace: request ids and W3C trace context (trace.h).
 *
 * Trace and span ids come from a per-thread xoshiro256** generator seeded from OpenSSL on the thread's first use:
 * ids must be unpredictable enough not to collide across gateways and restarts, not secret, and drawing them from
 * RAND_bytes per request would cost more than the rest of the header work together.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>
#include "dataplane/core/trace.h"

static _Thread_local uint64_t rng[4];
static _Thread_local int rng_seeded;

static void seed(void)
{
    if (RAND_bytes((unsigned char *)rng, sizeof(rng)) != 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rng[0] = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
        rng[1] = (uint64_t)pthread_self() ^ 0x9e3779b97f4a7c15u;
        rng[2] = (uint64_t)(uintptr_t)&rng ^ 0xbf58476d1ce4e5b9u;
        rng[3] = 0x94d049bb133111ebu;
    }
    if ((rng[0] | rng[1] | rng[2] | rng[3]) == 0)
        rng[0] = 1; /* the one state xoshiro never leaves */
    rng_seeded = 1;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next64(void)
{
    uint64_t result = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;

    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return result;
}

/* "00" "01" ... "ff": two hex characters per byte, so an id costs one table load per byte. */
static const char HEX_PAIRS[513] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                                   "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
                                   "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
                                   "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
                                   "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
                                   "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
                                   "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                                   "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

void cph_trace_random_hex(char *out, size_t n)
{
    if (!rng_seeded)
        seed();
    for (size_t i = 0; i < n; i += 16) {
        uint64_t v = next64();
        if (i == 0 && v == 0)
            v = 1; /* an all-zero id is invalid (2^-64) */
        for (size_t j = 0; j < 16 && i + j < n; j += 2, v >>= 8) {
            memcpy(out + i + j, HEX_PAIRS + 2 * (v & 0xff), i + j + 1 < n ? 2 : 1);
        }
    }
}

static int is_lhex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* n lower-case hex characters, not all '0'. */
static int hex_field(const char *s, size_t n, int may_be_zero)
{
    int nonzero = 0;

    for (size_t i = 0; i != n; ++i) {
        if (!is_lhex(s[i]))
            return 0;
        nonzero |= s[i] != '0';
    }
    return nonzero || may_be_zero;
}

int cph_trace_parse(const char *s, size_t len, char trace_id[CPH_TRACE_ID_HEX], char flags[2])
{
    if (len < CPH_TRACEPARENT_LEN || !hex_field(s, 2, 1) || (s[0] == 'f' && s[1] == 'f'))
        return -1;
    if (s[0] == '0' && s[1] == '0' ? len != CPH_TRACEPARENT_LEN : len != CPH_TRACEPARENT_LEN && s[CPH_TRACEPARENT_LEN] != '-')
        return -1; /* version 00 is exactly 55 bytes; a later one may append "-..." */
    if (s[2] != '-' || s[35] != '-' || s[52] != '-' || !hex_field(s + 3, 32, 0) || !hex_field(s + 36, 16, 0) ||
        !hex_field(s + 53, 2, 1))
        return -1;
    memcpy(trace_id, s + 3, CPH_TRACE_ID_HEX);
    memcpy(flags, s + 53, 2);
    return 0;
}

int cph_trace_state_valid(const char *s, size_t len)
{
    if (len == 0 || len > CPH_TRACESTATE_MAX)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

int cph_trace_request_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > CPH_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.:+/=@", c) != NULL) ||
            c == '\0')
            return 0;
    }
    return 1;
}

void cph_trace_write_parent(char *out, const char *trace_id, const char *flags)
{
    memcpy(out, "00-", 3);
    if (trace_id != NULL)
        memcpy(out + 3, trace_id, CPH_TRACE_ID_HEX);
    else
        cph_trace_random_hex(out + 3, CPH_TRACE_ID_HEX);
    out[35] = '-';
    cph_trace_random_hex(out + 36, CPH_SPAN_ID_HEX);
    out[52] = '-';
    memcpy(out + 53, flags != NULL ? flags : "00", 2);
}
