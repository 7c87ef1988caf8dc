/*
 * connlimit_test: core/connlimit.c - the cap holds per address and only per address, an IPv4 peer and its
 * IPv4-mapped IPv6 form are one address, a released slot is reusable and an emptied entry is gone, max 0 and
 * non-IP families are never counted, and four threads acquiring and releasing at once leave every count at zero.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <cmocka.h>
#include "dataplane/core/connlimit.h"

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(1234)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return sa;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};
    inet_pton(AF_INET6, ip, &sa.sin6_addr);
    return sa;
}

static void test_cap_per_address(void **state)
{
    cph_connlimit_t *l = cph_connlimit_new();
    struct sockaddr_in a = v4("10.0.0.1"), b = v4("10.0.0.2");
    struct sockaddr_in6 a6 = v6("::ffff:10.0.0.1"), c6 = v6("2001:db8::1");
    cph_connlimit_key_t ka[3], kb, kx;
    int counted;
    (void)state;

    for (int i = 0; i != 2; ++i) {
        assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&a, 3, &ka[i], &counted), 0);
        assert_true(counted);
    }
    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&a6, 3, &ka[2], &counted), 0); /* the same address */
    assert_int_equal(cph_connlimit_count(l, (struct sockaddr *)&a), 3);
    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&a, 3, &kx, &counted), -1);
    assert_false(counted);
    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&a6, 3, &kx, &counted), -1);
    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&b, 3, &kb, &counted), 0); /* others unaffected */
    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&c6, 1, &kx, &counted), 0);
    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&c6, 1, &kx, &counted), -1);
    cph_connlimit_release(l, &ka[0]);
    assert_int_equal(cph_connlimit_count(l, (struct sockaddr *)&a), 2);
    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&a, 3, &ka[0], &counted), 0); /* the slot is free again */
    for (int i = 0; i != 3; ++i)
        cph_connlimit_release(l, &ka[i]);
    assert_int_equal(cph_connlimit_count(l, (struct sockaddr *)&a), 0);
    /* a lower cap after a swap: the open ones stay, new ones wait until the count is under it */
    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&b, 1, &kx, &counted), -1);
    cph_connlimit_release(l, &kb);
    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&b, 1, &kb, &counted), 0);
    cph_connlimit_release(l, &kb);
    cph_connlimit_free(l);
}

static void test_never_counted(void **state)
{
    cph_connlimit_t *l = cph_connlimit_new();
    struct sockaddr_in a = v4("10.0.0.1");
    struct sockaddr_un u = {.sun_family = AF_UNIX};
    cph_connlimit_key_t k;
    int counted = 1;
    (void)state;

    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&a, 0, &k, &counted), 0); /* max 0: no cap */
    assert_false(counted);
    assert_int_equal(cph_connlimit_count(l, (struct sockaddr *)&a), 0);
    assert_int_equal(cph_connlimit_acquire(l, (struct sockaddr *)&u, 1, &k, &counted), 0);
    assert_false(counted);
    cph_connlimit_free(l);
}

typedef struct st_worker_arg_t {
    cph_connlimit_t *l;
    int id;
} worker_arg_t;

static void *hammer(void *p)
{
    worker_arg_t *w = p;
    cph_connlimit_key_t keys[8];
    int counted[8];

    for (int round = 0; round != 2000; ++round) {
        for (int i = 0; i != 8; ++i) {
            char ip[32];
            snprintf(ip, sizeof(ip), "192.0.2.%d", (round + i + w->id) % 16);
            struct sockaddr_in a = v4(ip);
            cph_connlimit_acquire(w->l, (struct sockaddr *)&a, 1000000, &keys[i], &counted[i]);
        }
        for (int i = 0; i != 8; ++i)
            if (counted[i])
                cph_connlimit_release(w->l, &keys[i]);
    }
    return NULL;
}

static void test_threads_leave_nothing(void **state)
{
    cph_connlimit_t *l = cph_connlimit_new();
    pthread_t t[4];
    worker_arg_t args[4];
    (void)state;

    for (int i = 0; i != 4; ++i) {
        args[i] = (worker_arg_t){l, i};
        pthread_create(&t[i], NULL, hammer, &args[i]);
    }
    for (int i = 0; i != 4; ++i)
        pthread_join(t[i], NULL);
    for (int i = 0; i != 16; ++i) {
        char ip[32];
        snprintf(ip, sizeof(ip), "192.0.2.%d", i);
        struct sockaddr_in a = v4(ip);
        assert_int_equal(cph_connlimit_count(l, (struct sockaddr *)&a), 0);
    }
    cph_connlimit_free(l); /* LeakSanitizer: every emptied entry was freed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_per_address),
        cmocka_unit_test(test_never_counted),
        cmocka_unit_test(test_threads_leave_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
