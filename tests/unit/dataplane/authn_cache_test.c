/*
 * authn_cache_test: a verified token is found again only with the exact same bytes, on the same snapshot, before its
 * exp (plus the snapshot's leeway), on the same thread; a hit is a deep copy the caller owns (the entry can be replaced
 * while a request still reads its principal); a colliding token replaces the entry without being taken for it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include "dataplane/core/authn_cache.h"

static const char *EPOCH = "0123456789abcdef0123456789abcdef";
static const char *TOKEN = "aaaa.bbbb.signature-bytes-01";
static const char *COLLIDING = "zzzz.yyyy.signature-bytes-01"; /* same last 8 bytes: the same slot */

static cph_snapshot_t *build(uint64_t version, int leeway)
{
    char text[256], hash[CPH_HASH_SIZE] = "";
    cph_error_t err;
    json_t *body;
    cph_snapshot_t *snap;

    snprintf(text, sizeof(text), "{\"services\":[],\"routes\":[],\"auth\":{\"leeway_s\":%d}}", leeway);
    body = json_loads(text, 0, NULL);
    cph_snapshot_hash(body, hash);
    snap = cph_snapshot_build(body, EPOCH, version, hash, "cp", &err);
    json_decref(body);
    if (snap == NULL)
        fail_msg("snapshot: %s at %s", err.msg, err.path);
    return snap;
}

/* A principal whose strings live in buffers the test overwrites after the put. */
typedef struct {
    char id[8], system[16], role0[16], role1[16], group0[16], jti[40];
    h2o_iovec_t roles[2], groups[1];
    cph_principal_t p;
} owned_t;

static void make(owned_t *o, int64_t exp)
{
    memset(o, 0, sizeof(*o));
    strcpy(o->id, "42"), strcpy(o->system, "shop"), strcpy(o->role0, "reader"), strcpy(o->role1, "writer");
    strcpy(o->group0, "staff"), strcpy(o->jti, "0123456789abcdef0123456789abcdef");
    o->roles[0] = h2o_iovec_init(o->role0, strlen(o->role0));
    o->roles[1] = h2o_iovec_init(o->role1, strlen(o->role1));
    o->groups[0] = h2o_iovec_init(o->group0, strlen(o->group0));
    o->p = (cph_principal_t){.kind = CPH_PRINCIPAL_USER,
                             .id = h2o_iovec_init(o->id, 2),
                             .system = h2o_iovec_init(o->system, 4),
                             .roles = o->roles,
                             .num_roles = 2,
                             .groups = o->groups,
                             .num_groups = 1,
                             .superuser = 1,
                             .jti = h2o_iovec_init(o->jti, 32),
                             .iat = 1000,
                             .exp = exp};
}

static int get(const cph_snapshot_t *snap, const char *token, time_t now, h2o_mem_pool_t *pool, cph_principal_t *out)
{
    return cph_authn_cache_get(snap, token, strlen(token), now, pool, out);
}

static void test_hit_is_a_deep_copy(void **state)
{
    cph_snapshot_t *snap = build(1, 30);
    h2o_mem_pool_t pool;
    owned_t o;
    cph_principal_t got;

    (void)state;
    h2o_mem_init_pool(&pool);
    make(&o, 2000);
    assert_int_equal(get(snap, TOKEN, 1500, &pool, &got), 0);
    cph_authn_cache_put(snap, TOKEN, strlen(TOKEN), &o.p);
    memset(o.role0, 'X', 6), memset(o.system, 'X', 4), memset(o.jti, 'X', 32); /* the caller's buffers change */
    assert_int_equal(get(snap, TOKEN, 1500, &pool, &got), 1);
    assert_int_equal(got.kind, CPH_PRINCIPAL_USER);
    assert_true(h2o_memis(got.id.base, got.id.len, H2O_STRLIT("42")));
    assert_true(h2o_memis(got.system.base, got.system.len, H2O_STRLIT("shop")));
    assert_int_equal(got.num_roles, 2);
    assert_true(h2o_memis(got.roles[0].base, got.roles[0].len, H2O_STRLIT("reader")));
    assert_true(h2o_memis(got.roles[1].base, got.roles[1].len, H2O_STRLIT("writer")));
    assert_int_equal(got.num_groups, 1);
    assert_true(h2o_memis(got.groups[0].base, got.groups[0].len, H2O_STRLIT("staff")));
    assert_true(h2o_memis(got.jti.base, got.jti.len, H2O_STRLIT("0123456789abcdef0123456789abcdef")));
    assert_int_equal(got.superuser, 1);
    assert_int_equal(got.exp, 2000);
    /* the copy lives in the pool: replacing the entry does not touch it */
    cph_authn_cache_put(snap, COLLIDING, strlen(COLLIDING), &o.p);
    assert_true(h2o_memis(got.roles[0].base, got.roles[0].len, H2O_STRLIT("reader")));
    h2o_mem_clear_pool(&pool);
    cph_snapshot_release(snap);
}

static void test_only_the_exact_token(void **state)
{
    cph_snapshot_t *snap = build(2, 30);
    h2o_mem_pool_t pool;
    owned_t o;
    cph_principal_t got;
    char longer[64];

    (void)state;
    h2o_mem_init_pool(&pool);
    make(&o, 2000);
    cph_authn_cache_put(snap, TOKEN, strlen(TOKEN), &o.p);
    assert_int_equal(get(snap, COLLIDING, 1500, &pool, &got), 0); /* same slot, other bytes */
    snprintf(longer, sizeof(longer), "x%s", TOKEN);
    assert_int_equal(get(snap, longer, 1500, &pool, &got), 0);
    assert_int_equal(cph_authn_cache_get(snap, TOKEN, strlen(TOKEN) - 1, 1500, &pool, &got), 0);
    assert_int_equal(get(snap, TOKEN, 1500, &pool, &got), 1);
    cph_authn_cache_put(snap, COLLIDING, strlen(COLLIDING), &o.p); /* evicts TOKEN */
    assert_int_equal(get(snap, TOKEN, 1500, &pool, &got), 0);
    assert_int_equal(get(snap, COLLIDING, 1500, &pool, &got), 1);
    h2o_mem_clear_pool(&pool);
    cph_snapshot_release(snap);
}

static void test_another_snapshot_misses(void **state)
{
    cph_snapshot_t *a = build(3, 30), *b = build(4, 30);
    h2o_mem_pool_t pool;
    owned_t o;
    cph_principal_t got;

    (void)state;
    h2o_mem_init_pool(&pool);
    make(&o, 2000);
    cph_authn_cache_put(a, TOKEN, strlen(TOKEN), &o.p);
    assert_int_equal(get(b, TOKEN, 1500, &pool, &got), 0); /* new keys, settings or revocations: verify again */
    assert_int_equal(get(a, TOKEN, 1500, &pool, &got), 1);
    h2o_mem_clear_pool(&pool);
    cph_snapshot_release(a);
    cph_snapshot_release(b);
}

static void test_exp_with_leeway(void **state)
{
    cph_snapshot_t *snap = build(5, 30);
    h2o_mem_pool_t pool;
    owned_t o;
    cph_principal_t got;

    (void)state;
    h2o_mem_init_pool(&pool);
    make(&o, 2000);
    cph_authn_cache_put(snap, TOKEN, strlen(TOKEN), &o.p);
    assert_int_equal(get(snap, TOKEN, 2029, &pool, &got), 1); /* exp 2000 + leeway 30: valid while exp > now - 30 */
    assert_int_equal(get(snap, TOKEN, 2030, &pool, &got), 0);
    assert_int_equal(get(snap, TOKEN, 999999, &pool, &got), 0);
    h2o_mem_clear_pool(&pool);
    cph_snapshot_release(snap);
}

static void *other_thread(void *arg)
{
    h2o_mem_pool_t pool;
    cph_principal_t got;
    intptr_t hit;

    h2o_mem_init_pool(&pool);
    hit = get(arg, TOKEN, 1500, &pool, &got);
    h2o_mem_clear_pool(&pool);
    return (void *)hit;
}

static void test_per_thread(void **state)
{
    cph_snapshot_t *snap = build(6, 30);
    owned_t o;
    pthread_t tid;
    void *hit = (void *)1;

    (void)state;
    make(&o, 2000);
    cph_authn_cache_put(snap, TOKEN, strlen(TOKEN), &o.p);
    assert_int_equal(pthread_create(&tid, NULL, other_thread, snap), 0);
    assert_int_equal(pthread_join(tid, &hit), 0);
    assert_null(hit);
    cph_snapshot_release(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_is_a_deep_copy),
        cmocka_unit_test(test_only_the_exact_token),
        cmocka_unit_test(test_another_snapshot_misses),
        cmocka_unit_test(test_exp_with_leeway),
        cmocka_unit_test(test_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
