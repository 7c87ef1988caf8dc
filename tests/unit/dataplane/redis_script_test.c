/*
 * redis_script_test: the wire form of the rate-limit script's EVALSHA and the reading of its reply
 * (core/redis_script.c). cph_redis_script_format writes RESP itself (no printf per argument); every batch here - 1 to
 * 8 stacks of 1 to CPH_RATELIMIT_MAX_STACK limits, numbers from 0 to UINT64_MAX, keys with CR, LF, NUL and '$' bytes,
 * empty and long keys - must give exactly the bytes hiredis's own redisFormatCommandArgv gives for the same argument
 * vector, so redis-server reads the same command, and never more than cph_redis_script_bound. So must any command of
 * cph_redis_resp_format (0 to 40 random arguments). A batch's reply is read answer after answer; hostile replies
 * (errors, short or nested arrays, strings and nils where counts go, out-of-range limit indexes) are refused.
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

#define MAX_STACKS 8
#define MAX_ARGS (5 + MAX_STACKS * (1 + 4 * CPH_RATELIMIT_MAX_STACK))

/* What hiredis formats for the batch: EVALSHA sha numkeys keys... m (n (period_ms rate burst)...)... */
static int reference(char **cmd, const cph_redis_stack_t *stacks, size_t m)
{
    static const char *argv[MAX_ARGS];
    static size_t argvlen[MAX_ARGS];
    static char nums[MAX_ARGS][24];
    size_t num_keys = 0;
    int argc = 0;

    for (size_t r = 0; r != m; ++r)
        num_keys += stacks[r].n;
    argv[argc] = "EVALSHA", argvlen[argc++] = 7;
    argv[argc] = cph_redis_script_sha(), argvlen[argc++] = 40;
    argv[argc] = nums[argc], argvlen[argc] = (size_t)snprintf(nums[argc], 24, "%zu", num_keys), argc++;
    for (size_t r = 0; r != m; ++r)
        for (size_t i = 0; i != stacks[r].n; ++i)
            argv[argc] = stacks[r].keys[i].base, argvlen[argc++] = stacks[r].keys[i].len;
    argv[argc] = nums[argc], argvlen[argc] = (size_t)snprintf(nums[argc], 24, "%zu", m), argc++;
    for (size_t r = 0; r != m; ++r) {
        argv[argc] = nums[argc], argvlen[argc] = (size_t)snprintf(nums[argc], 24, "%zu", stacks[r].n), argc++;
        for (size_t i = 0; i != stacks[r].n; ++i) {
            const uint64_t v[3] = {stacks[r].specs[i].period_ms, stacks[r].specs[i].rate, stacks[r].specs[i].burst};
            for (size_t j = 0; j != 3; ++j)
                argv[argc] = nums[argc], argvlen[argc] = (size_t)snprintf(nums[argc], 24, "%llu", (unsigned long long)v[j]), argc++;
        }
    }
    return redisFormatCommandArgv(cmd, argc, argv, argvlen);
}

static void check_batch(const cph_redis_stack_t *stacks, size_t m)
{
    size_t bound = cph_redis_script_bound(stacks, m), len;
    char *ours = malloc(bound), *theirs = NULL;
    int want;

    assert_non_null(ours);
    len = cph_redis_script_format(ours, stacks, m);
    assert_true(len <= bound);
    want = reference(&theirs, stacks, m);
    assert_true(want > 0);
    if (len != (size_t)want || memcmp(ours, theirs, len) != 0)
        fail_msg("batch of %zu: %zu bytes, hiredis %d:\n%.*s\n---\n%.*s", m, len, want, (int)len, ours, want, theirs);
    free(ours);
    redisFreeCommand(theirs);
}

static void test_edge_numbers_and_keys(void **state)
{
    static const char nul_key[] = "cph:rl:ip:a\0b", resp_key[] = "a\r\n$3\r\nSET\r\n";
    const h2o_iovec_t keys[] = {{"cph:rl:principal:never:7f3a", 27},
                                {"", 0},
                                {(char *)nul_key, sizeof(nul_key) - 1},
                                {(char *)resp_key, sizeof(resp_key) - 1},
                                {"k", 1}};
    const cph_ratelimit_spec_t specs[] = {
        {0, 0, 0}, {1, 1000, 1}, {UINT64_MAX, UINT64_MAX, UINT64_MAX}, {1000000000, 86400000, 999999999}, {9, 10, 11}};
    cph_redis_stack_t stacks[5];

    (void)state;
    for (size_t n = 1; n <= 5 && n <= CPH_RATELIMIT_MAX_STACK; ++n) {
        stacks[0] = (cph_redis_stack_t){n, keys, specs};
        check_batch(stacks, 1);
    }
    for (size_t m = 1; m <= 5; ++m) { /* a batch: stack r holds the limits r.. of the lists */
        for (size_t r = 0; r != m; ++r)
            stacks[r] = (cph_redis_stack_t){5 - r, keys + r, specs + r};
        check_batch(stacks, m);
    }
}

static void test_random_batches(void **state)
{
    static char key_bytes[MAX_STACKS][CPH_RATELIMIT_MAX_STACK][300];
    static h2o_iovec_t keys[MAX_STACKS][CPH_RATELIMIT_MAX_STACK];
    static cph_ratelimit_spec_t specs[MAX_STACKS][CPH_RATELIMIT_MAX_STACK];
    cph_redis_stack_t stacks[MAX_STACKS];
    uint64_t x = 0x9e3779b97f4a7c15ull;

    (void)state;
    for (int round = 0; round != 2000; ++round) {
        size_t m = 1 + (size_t)(x % MAX_STACKS);
        for (size_t r = 0; r != m; ++r) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t n = 1 + (size_t)(x % CPH_RATELIMIT_MAX_STACK);
            for (size_t i = 0; i != n; ++i) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                keys[r][i] = h2o_iovec_init(key_bytes[r][i], (size_t)(x % sizeof(key_bytes[r][i])));
                for (size_t b = 0; b != keys[r][i].len; ++b)
                    key_bytes[r][i][b] = (char)(x >> (b % 56));
                /* numbers of every length, 1 to 20 digits */
                specs[r][i] = (cph_ratelimit_spec_t){x >> (x % 64), (x * 31) >> (x % 61), x % 100000};
            }
            stacks[r] = (cph_redis_stack_t){n, keys[r], specs[r]};
        }
        check_batch(stacks, m);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    }
}

/* The reply parsed from RESP by hiredis's reader (what core/redis.c does). Free it. */
static redisReply *reply_of(const char *resp)
{
    redisReader *reader = redisReaderCreate();
    void *r = NULL;

    assert_non_null(reader);
    assert_int_equal(redisReaderFeed(reader, resp, strlen(resp)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(reader, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(reader);
    return r;
}

/* A batch's reply read request after request: a stack of 2 allowed, one of 3 refused by its second limit, one of 1. */
static void test_parse_batch_reply(void **state)
{
    redisReply *r = reply_of("*9\r\n:0\r\n:4\r\n:100\r\n:1\r\n:200\r\n:2\r\n:30\r\n:60\r\n:0\r\n");
    cph_ratelimit_result_t res[3];
    size_t pos = 0, refused;

    (void)state;
    assert_int_equal(cph_redis_script_parse(r, &pos, 2, &refused, res), 0);
    assert_int_equal(refused, 2);
    assert_int_equal(pos, 5);
    assert_true(res[0].allowed && res[1].allowed);
    assert_int_equal(res[0].remaining, 4);
    assert_int_equal(res[0].reset_ms, 100);
    assert_int_equal(res[1].remaining, 1);
    assert_int_equal(res[1].reset_ms, 200);
    assert_int_equal(cph_redis_script_parse(r, &pos, 3, &refused, res), 0);
    assert_int_equal(refused, 1);
    assert_int_equal(pos, 8);
    assert_false(res[0].allowed || res[1].allowed || res[2].allowed);
    assert_int_equal(res[1].retry_after_ms, 30);
    assert_int_equal(res[1].reset_ms, 60);
    assert_int_equal(res[0].remaining + res[0].reset_ms + res[2].remaining + res[2].reset_ms, 0);
    /* the third answer is cut short: 0 then nothing */
    assert_int_equal(cph_redis_script_parse(r, &pos, 1, &refused, res), -1);
    freeReplyObject(r);
}

/* Whatever Redis (or something in its place) sends, a reply that is not one well-formed answer is refused. */
static void test_parse_hostile_replies(void **state)
{
    static const struct {
        const char *resp;
        size_t n;
    } bad[] = {
        {"-ERR boom\r\n", 1},
        {"+OK\r\n", 1},
        {":0\r\n", 1},
        {"$-1\r\n", 1},
        {"*0\r\n", 1},
        {"*1\r\n:0\r\n", 1},                   /* allowed, no results */
        {"*2\r\n:0\r\n:1\r\n", 1},             /* half a result */
        {"*3\r\n:0\r\n$1\r\n1\r\n:1\r\n", 1},  /* a string where a count goes */
        {"*3\r\n:2\r\n:1\r\n:1\r\n", 1},       /* limit 2 of a stack of 1 */
        {"*3\r\n:-1\r\n:1\r\n:1\r\n", 1},      /* a negative index */
        {"*2\r\n:1\r\n:1\r\n", 1},             /* a refusal cut short */
        {"*3\r\n*1\r\n:0\r\n:1\r\n:1\r\n", 1}, /* a nested array */
        {"*3\r\n:1\r\n-ERR x\r\n:1\r\n", 1},   /* an error inside */
        {"*3\r\n:1\r\n:1\r\n$-1\r\n", 1},      /* nil inside */
    };
    cph_ratelimit_result_t res[CPH_RATELIMIT_MAX_STACK];
    size_t refused;

    (void)state;
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        redisReply *r = reply_of(bad[i].resp);
        size_t pos = 0;
        if (cph_redis_script_parse(r, &pos, bad[i].n, &refused, res) != -1)
            fail_msg("accepted %s", bad[i].resp);
        freeReplyObject(r);
    }
    /* huge numbers are clamped at 0 from below and kept as they are above */
    redisReply *r = reply_of("*3\r\n:0\r\n:9223372036854775807\r\n:-5\r\n");
    size_t pos = 0;
    assert_int_equal(cph_redis_script_parse(r, &pos, 1, &refused, res), 0);
    assert_int_equal(res[0].remaining, 9223372036854775807ull);
    assert_int_equal(res[0].reset_ms, 0);
    freeReplyObject(r);
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
        cmocka_unit_test(test_edge_numbers_and_keys), cmocka_unit_test(test_random_batches),
        cmocka_unit_test(test_parse_batch_reply),     cmocka_unit_test(test_parse_hostile_replies),
        cmocka_unit_test(test_generic_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
