/*
 * loginlimit_test: the login failure limiter - the account and IP thresholds within the window, the exact wait
 * (until the oldest counted failure leaves the window), a success clearing the account but not the IP, the bound on
 * memory (a full table evicts the least recently touched key), and a long random run checked against a naive model
 * (which exercises the hash chains, the recency list and the slot compaction of a forgotten key), and a few threads
 * hammering one small limiter (ASan catches any corruption of the shared tables).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include "controlplane/loginlimit.h"

static cph_loginlimit_t *make(unsigned account_max, unsigned ip_max, int64_t window, size_t capacity)
{
    cph_loginlimit_config_t c = {account_max, ip_max, window, capacity};

    return cph_loginlimit_new(&c);
}

static void test_defaults(void **state)
{
    cph_loginlimit_config_t c;

    (void)state;
    cph_loginlimit_defaults(&c);
    assert_int_equal(c.account_max, 5);
    assert_int_equal(c.ip_max, 20);
    assert_int_equal(c.window_s, 900);
    assert_true(c.capacity >= 1024);
}

static void test_account_threshold_and_wait(void **state)
{
    cph_loginlimit_t *l = make(5, 20, 900, 64);

    (void)state;
    for (int i = 0; i < 5; ++i) {
        assert_int_equal(cph_loginlimit_check(l, "10.0.0.1", "alice", 1000 + i), 0);
        cph_loginlimit_fail(l, "10.0.0.1", "alice", 1000 + i);
    }
    /* the 6th try: blocked until the first failure (t=1000) is 900 s old */
    assert_int_equal(cph_loginlimit_check(l, "10.0.0.2", "alice", 1010), 1000 + 900 - 1010);
    assert_int_equal(cph_loginlimit_check(l, NULL, "alice", 1899), 1);
    assert_int_equal(cph_loginlimit_check(l, NULL, "alice", 1900), 0);
    /* another account from the same IP is fine (5 < 20) */
    assert_int_equal(cph_loginlimit_check(l, "10.0.0.1", "bob", 1010), 0);
    /* a new failure at 1900 pushes the oldest out: blocked again until the second one (t=1001) ages */
    cph_loginlimit_fail(l, NULL, "alice", 1900);
    assert_int_equal(cph_loginlimit_check(l, NULL, "alice", 1900), 1);
    assert_int_equal(cph_loginlimit_check(l, NULL, "alice", 1901), 0);
    cph_loginlimit_fail(l, NULL, "alice", 1901); /* now 1002, 1003, 1004, 1900, 1901 */
    assert_int_equal(cph_loginlimit_check(l, NULL, "alice", 1901), 1002 + 900 - 1901);
    cph_loginlimit_free(l);
}

static void test_ip_threshold(void **state)
{
    cph_loginlimit_t *l = make(5, 20, 900, 64);
    char acct[16];

    (void)state;
    for (int i = 0; i < 20; ++i) {
        snprintf(acct, sizeof(acct), "user%d", i);
        assert_int_equal(cph_loginlimit_check(l, "192.0.2.7", acct, 5000), 0);
        cph_loginlimit_fail(l, "192.0.2.7", acct, 5000);
    }
    assert_int_equal(cph_loginlimit_check(l, "192.0.2.7", "fresh", 5000), 900);
    assert_int_equal(cph_loginlimit_check(l, "192.0.2.8", "fresh", 5000), 0);
    assert_int_equal(cph_loginlimit_check(l, NULL, "user3", 5000), 0); /* one failure each */
    cph_loginlimit_free(l);
}

static void test_success_clears_account_only(void **state)
{
    cph_loginlimit_t *l = make(2, 3, 900, 64);

    (void)state;
    cph_loginlimit_fail(l, "ip", "carol", 10);
    cph_loginlimit_fail(l, "ip", "carol", 11);
    assert_true(cph_loginlimit_check(l, NULL, "carol", 12) > 0);
    cph_loginlimit_success(l, "carol");
    assert_int_equal(cph_loginlimit_check(l, NULL, "carol", 12), 0);
    cph_loginlimit_fail(l, "ip", "dave", 13);
    assert_int_equal(cph_loginlimit_check(l, "ip", NULL, 14), 900 + 10 - 14); /* the IP kept its 3 failures */
    cph_loginlimit_success(l, "nobody");                                      /* unknown: a no-op */
    cph_loginlimit_success(l, NULL);
    cph_loginlimit_free(l);
}

static void test_bounded_memory_evicts_oldest(void **state)
{
    cph_loginlimit_t *l = make(1, 1000, 900, 4);
    char acct[16];

    (void)state;
    for (int i = 0; i < 1000; ++i) {
        snprintf(acct, sizeof(acct), "a%d", i);
        cph_loginlimit_fail(l, "ip", acct, 100);
    }
    assert_int_equal(cph_loginlimit_size(l), 4 + 1);
    /* the 4 newest are remembered, the rest were evicted */
    assert_true(cph_loginlimit_check(l, NULL, "a999", 100) > 0);
    assert_true(cph_loginlimit_check(l, NULL, "a996", 100) > 0);
    assert_int_equal(cph_loginlimit_check(l, NULL, "a995", 100), 0);
    assert_int_equal(cph_loginlimit_check(l, NULL, "a0", 100), 0);
    /* touching a996 makes it the newest: the next new key evicts a997 instead */
    cph_loginlimit_fail(l, NULL, "a996", 101);
    cph_loginlimit_fail(l, NULL, "new", 101);
    assert_true(cph_loginlimit_check(l, NULL, "a996", 101) > 0);
    assert_int_equal(cph_loginlimit_check(l, NULL, "a997", 101), 0);
    cph_loginlimit_free(l);
}

/* ---------------------------------------------------------------- random run against a model */

#define KEYS 24
#define MAX 3
#define WINDOW 50

typedef struct st_model_t {
    int64_t t[KEYS][64];
    int n[KEYS];
} model_t;

static int64_t model_wait(const model_t *m, int k, int64_t now)
{
    int64_t oldest, w;

    if (m->n[k] < MAX)
        return 0;
    oldest = m->t[k][m->n[k] - MAX];
    w = oldest + WINDOW - now;
    return w > 0 ? w : 0;
}

static void test_random_against_model(void **state)
{
    cph_loginlimit_t *l = make(MAX, 1000000, WINDOW, KEYS); /* never full: the model needs no eviction */
    model_t *m = calloc(1, sizeof(*m));
    char key[16];
    int64_t now = 1;
    unsigned seed = 12345;

    (void)state;
    for (int step = 0; step < 20000; ++step) {
        int k = (int)(rand_r(&seed) % KEYS), op = (int)(rand_r(&seed) % 10);
        snprintf(key, sizeof(key), "k%d", k);
        now += rand_r(&seed) % 3;
        if (op < 6) {
            cph_loginlimit_fail(l, NULL, key, now);
            if (m->n[k] == 64) {
                memmove(m->t[k], m->t[k] + 32, 32 * sizeof(int64_t));
                m->n[k] = 32;
            }
            m->t[k][m->n[k]++] = now;
        } else if (op < 7) {
            cph_loginlimit_success(l, key);
            m->n[k] = 0;
        } else {
            assert_int_equal(cph_loginlimit_check(l, NULL, key, now), model_wait(m, k, now));
        }
    }
    for (int k = 0; k < KEYS; ++k) {
        snprintf(key, sizeof(key), "k%d", k);
        assert_int_equal(cph_loginlimit_check(l, NULL, key, now), model_wait(m, k, now));
    }
    free(m);
    cph_loginlimit_free(l);
}

/* ---------------------------------------------------------------- threads */

static void *hammer(void *p)
{
    cph_loginlimit_t *l = p;
    char key[16];
    unsigned seed = (unsigned)(uintptr_t)&key;

    for (int i = 0; i < 20000; ++i) {
        snprintf(key, sizeof(key), "u%u", rand_r(&seed) % 100);
        cph_loginlimit_fail(l, key, key, i);
        cph_loginlimit_check(l, key, key, i);
        if (i % 7 == 0)
            cph_loginlimit_success(l, key);
    }
    return NULL;
}

static void test_threads(void **state)
{
    cph_loginlimit_t *l = make(5, 20, 900, 32);
    pthread_t th[4];

    (void)state;
    for (int i = 0; i < 4; ++i)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, l), 0);
    for (int i = 0; i < 4; ++i)
        pthread_join(th[i], NULL);
    assert_true(cph_loginlimit_size(l) <= 64);
    cph_loginlimit_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_account_threshold_and_wait),
        cmocka_unit_test(test_ip_threshold),
        cmocka_unit_test(test_success_clears_account_only),
        cmocka_unit_test(test_bounded_memory_evicts_oldest),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
