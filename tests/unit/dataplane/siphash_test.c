/*
 * Unit tests for core/siphash.c: known answers (CPython's hash of bytes is SipHash-1-3, and PYTHONHASHSEED=0 makes
 * its key zero: `PYTHONHASHSEED=0 python3 -c 'print(hash(b"a") & (2**64 - 1))'`), the prefix word is hashed exactly as its 8 little-endian bytes in front of the data,
 * every message length's tail is absorbed, and every key and message bit changes the result.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/core/siphash.h"

static const uint64_t K0 = 0x0706050403020100ull, K1 = 0x0f0e0d0c0b0a0908ull;

static void test_known_answers(void **state)
{
    (void)state;
    assert_true(cph_siphash13(0, 0, NULL, "a", 1) == 4644417185603328019ull);
    assert_true(cph_siphash13(0, 0, NULL, "abcdefgh", 8) == 4574395652268504554ull);
    assert_true(cph_siphash13(0, 0, NULL, "hello world, siphash13!", 23) == 10351542119523534088ull);
}

static void test_prefix_is_the_leading_word(void **state)
{
    (void)state;
    uint8_t msg[80], joined[88];
    uint64_t prefix = 0x1122334455667788ull;

    for (size_t i = 0; i != sizeof(msg); ++i)
        msg[i] = (uint8_t)(i * 7 + 1);
    for (int i = 0; i != 8; ++i)
        joined[i] = (uint8_t)(prefix >> (8 * i));
    memcpy(joined + 8, msg, sizeof(msg));
    for (size_t len = 0; len <= sizeof(msg); ++len)
        assert_true(cph_siphash13(K0, K1, &prefix, msg, len) == cph_siphash13(K0, K1, NULL, joined, len + 8));
}

static void test_every_bit_counts(void **state)
{
    (void)state;
    uint8_t msg[19];

    for (size_t i = 0; i != sizeof(msg); ++i)
        msg[i] = (uint8_t)i;
    uint64_t base = cph_siphash13(K0, K1, NULL, msg, sizeof(msg));
    for (size_t bit = 0; bit != sizeof(msg) * 8; ++bit) {
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_true(cph_siphash13(K0, K1, NULL, msg, sizeof(msg)) != base);
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (int bit = 0; bit != 64; ++bit) {
        assert_true(cph_siphash13(K0 ^ (1ull << bit), K1, NULL, msg, sizeof(msg)) != base);
        assert_true(cph_siphash13(K0, K1 ^ (1ull << bit), NULL, msg, sizeof(msg)) != base);
    }
    /* the length is part of the message: a trailing zero byte makes another message */
    uint8_t zeros[9] = {0};
    assert_true(cph_siphash13(K0, K1, NULL, zeros, 8) != cph_siphash13(K0, K1, NULL, zeros, 9));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_prefix_is_the_leading_word),
        cmocka_unit_test(test_every_bit_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
