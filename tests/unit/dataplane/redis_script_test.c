/*
 * redis_script_test: the wire form of a rate-limit stack's EVALSHA (core/redis_script.c). cph_redis_script_format
 * writes RESP itself (no printf per argument); every stack here - 1 to CPH_RATELIMIT_MAX_STACK limits, numbers from 0
 * to UINT64_MAX, keys with CR, LF, NUL and '$' bytes, empty and long keys - must give exactly the bytes hiredis's own
 * redisFormatCommandArgv gives for the same argument vector, so redis-server reads the same command, and never more
 * than cph_redis_script_bound. So must any command of cph_redis_resp_format (0 to 40 random arguments).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include "dataplane/core/redis_script.h"

#define MAX_ARGS (3 + 4 * CPH_RATELIMIT_MAX_STACK)

/* What hiredis formats for the stack: EVALSHA sha n keys... (period_ms rate burst)... */
static int reference(char **cmd, size_t n, const char *const *keys, const size_t *key_lens, const cph_ratelimit_spec_t *specs)
{
    const char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS];
    char nums[1 + 3 * CPH_RATELIMIT_MAX_STACK][24];
    int argc = 0;

    argv[argc] = "EVALSHA", argvlen[argc++] = 7;
    argv[argc] = cph_redis_script_sha(), argvlen[argc++] = 40;
    argv[argc] = nums[0], argvlen[argc++] = (size_t)snprintf(nums[0], sizeof(nums[0]), "%zu", n);
    for (size_t i = 0; i != n; ++i)
        argv[argc] = keys[i], argvlen[argc++] = key_lens[i];
    for (size_t i = 0; i != n; ++i) {
        const uint64_t v[3] = {specs[i].period_ms, specs[i].rate, specs[i].burst};
        for (size_t j = 0; j != 3; ++j) {
            char *num = nums[1 + 3 * i + j];
            argv[argc] = num, argvlen[argc++] = (size_t)snprintf(num, 24, "%llu", (unsigned long long)v[j]);
        }
    }
    return redisFormatCommandArgv(cmd, argc, argv, argvlen);
}

static void check_stack(size_t n, const char *const *keys, const size_t *key_lens, const cph_ratelimit_spec_t *specs)
{
    const cph_ratelimit_spec_t *sp[CPH_RATELIMIT_MAX_STACK];
    size_t bound = cph_redis_script_bound(n, key_lens), len;
    char *ours = malloc(bound), *theirs = NULL;
    int want;

    assert_non_null(ours);
    for (size_t i = 0; i != n; ++i)
        sp[i] = &specs[i];
    len = cph_redis_script_format(ours, n, keys, key_lens, sp);
    assert_true(len <= bound);
    want = reference(&theirs, n, keys, key_lens, specs);
    assert_true(want > 0);
    if (len != (size_t)want || memcmp(ours, theirs, len) != 0)
        fail_msg("stack of %zu: %zu bytes, hiredis %d:\n%.*s\n---\n%.*s", n, len, want, (int)len, ours, want, theirs);
    free(ours);
    redisFreeCommand(theirs);
}

static void test_edge_numbers_and_keys(void **state)
{
    static const char nul_key[] = "cph:rl:ip:a\0b", resp_key[] = "a\r\n$3\r\nSET\r\n";
    const char *keys[] = {"cph:rl:principal:never:7f3a", "", nul_key, resp_key, "k"};
    const size_t lens[] = {27, 0, sizeof(nul_key) - 1, sizeof(resp_key) - 1, 1};
    const cph_ratelimit_spec_t specs[] = {
        {0, 0, 0}, {1, 1000, 1}, {UINT64_MAX, UINT64_MAX, UINT64_MAX}, {1000000000, 86400000, 999999999}, {9, 10, 11}};

    (void)state;
    for (size_t n = 1; n <= 5 && n <= CPH_RATELIMIT_MAX_STACK; ++n)
        check_stack(n, keys, lens, specs);
}

static void test_random_stacks(void **state)
{
    static char key_bytes[CPH_RATELIMIT_MAX_STACK][600];
    const char *keys[CPH_RATELIMIT_MAX_STACK];
    size_t lens[CPH_RATELIMIT_MAX_STACK];
    cph_ratelimit_spec_t specs[CPH_RATELIMIT_MAX_STACK];
    uint64_t x = 0x9e3779b97f4a7c15ull;

    (void)state;
    for (int round = 0; round != 2000; ++round) {
        size_t n = 1 + (size_t)(x % CPH_RATELIMIT_MAX_STACK);
        for (size_t i = 0; i != n; ++i) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            lens[i] = (size_t)(x % sizeof(key_bytes[i]));
            for (size_t b = 0; b != lens[i]; ++b)
                key_bytes[i][b] = (char)(x >> (b % 56));
            keys[i] = key_bytes[i];
            /* numbers of every length, 1 to 20 digits */
            specs[i] = (cph_ratelimit_spec_t){x >> (x % 64), (x * 31) >> (x % 61), x % 100000};
        }
        check_stack(n, keys, lens, specs);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    }
}

/* Any command: the same bytes as hiredis for 0 to 40 arguments of 0 to 300 random bytes (CR, LF, NUL included). */
static void test_generic_commands(void **state)
{
    static char arg_bytes[40][300];
    const char *argv[40];
    size_t argvlen[40];
    uint64_t x = 0x2545f4914f6cdd1dull;

    (void)state;
    for (int round = 0; round != 2000; ++round) {
        int argc = (int)(x % 41);
        for (int i = 0; i != argc; ++i) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            argvlen[i] = (size_t)(x % sizeof(arg_bytes[i]));
            for (size_t b = 0; b != argvlen[i]; ++b)
                arg_bytes[i][b] = (char)(x >> (b % 57));
            argv[i] = arg_bytes[i];
        }
        size_t bound = cph_redis_resp_bound(argc, argvlen), len;
        char *ours = malloc(bound), *theirs = NULL;
        assert_non_null(ours);
        len = cph_redis_resp_format(ours, argc, argv, argvlen);
        int want = redisFormatCommandArgv(&theirs, argc, argv, argvlen);
        assert_true(len <= bound);
        assert_int_equal(len, (size_t)want);
        assert_memory_equal(ours, theirs, len);
        free(ours);
        redisFreeCommand(theirs);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_numbers_and_keys),
        cmocka_unit_test(test_random_stacks),
        cmocka_unit_test(test_generic_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
