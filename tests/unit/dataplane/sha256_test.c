/*
 * sha256_test: cph_sha256 (core/sha256.c) gives OpenSSL's one-shot SHA256() for the FIPS 180-2 vectors, for every
 * length around the block boundaries, and from several threads at once (each with its own context).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>
#include "dataplane/core/sha256.h"

static void test_vectors(void **state)
{
    static const unsigned char abc[CPH_SHA256_LEN] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                                      0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                                      0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    unsigned char out[CPH_SHA256_LEN], want[CPH_SHA256_LEN], buf[300];

    (void)state;
    cph_sha256("abc", 3, out);
    assert_memory_equal(out, abc, sizeof(abc));
    for (size_t i = 0; i != sizeof(buf); ++i)
        buf[i] = (unsigned char)(i * 7 + 1);
    for (size_t len = 0; len <= sizeof(buf); ++len) {
        cph_sha256(buf, len, out);
        SHA256(buf, len, want);
        assert_memory_equal(out, want, sizeof(want));
    }
}

static void *hash_a_lot(void *arg)
{
    unsigned char out[CPH_SHA256_LEN], want[CPH_SHA256_LEN];
    char text[32];

    for (int i = 0; i != 2000; ++i) {
        size_t n = (size_t)snprintf(text, sizeof(text), "key-%d-%d", *(int *)arg, i);
        cph_sha256(text, n, out);
        SHA256((const unsigned char *)text, n, want);
        if (memcmp(out, want, sizeof(out)) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t t[4];
    int ids[4];
    void *ret;

    (void)state;
    for (int i = 0; i != 4; ++i) {
        ids[i] = i;
        assert_int_equal(pthread_create(&t[i], NULL, hash_a_lot, &ids[i]), 0);
    }
    for (int i = 0; i != 4; ++i) {
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
