/*
 * cache_redis_test: the response cache's Redis backend (core/cache_redis.c) against a real redis-server the test starts
 * on a free port (no persistence, a temporary directory). The "worker" is a bare h2o event loop with a multithread
 * queue, pumped by the test, so answers arrive as on a data plane worker.
 *
 * Covers: the value format (round trip of every field, a body and header values with NUL bytes; another version, a cut
 * value, garbage: unreadable), the key layout (route in a hash tag, 32 hex, a variant differs from its resource), a
 * stored entry found by another lookup (a second data plane would do the same) with its Age, the PX Redis got, Vary
 * (marker, then the variant; other values miss), purge by route and by prefix with `at` (an entry stored after the
 * purge survives its replay, an earlier `at` changes nothing), cph_cache_purge_before on both backends, a stopped
 * server (ERROR within the timeout, never a hang), the bound on stores in flight, and a purge sent while the server
 * was down (kept pending, written by the first lookups once it is back, before anything is served).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "dataplane/core/cache.h"
#include "dataplane/core/cache_redis.h"
#include "dataplane/core/redis.h"
#include "redis_fixture.h"

#define TIMEOUT_MS 100
#define H(n, v)                                                                                                                    \
    {                                                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                                                         \
    }
#define NUM(a) (sizeof(a) / sizeof((a)[0]))

static struct {
    redis_fixture_t redis;
    cph_worker_t w;
    h2o_evloop_t *loop;
} fx;

typedef struct st_result_t {
    int count;
    cph_cache_redis_result_t result;
    cph_cache_entry_t *entry;
    uint64_t age_s;
    char vary[64];
} result_t;

static h2o_iovec_t iov(const char *s)
{
    return h2o_iovec_init(s, strlen(s));
}

/* ---------------------------------------------------------------- redis-server */

/* PTTL of a key in db 2 (-2: none). */
static long long pttl(const char *key)
{
    redisContext *c = redis_fixture_connect(&fx.redis);
    long long v;

    assert_non_null(c);
    redisReply *r = redisCommand(c, "SELECT 2");
    freeReplyObject(r);
    r = redisCommand(c, "PTTL %s", key);
    assert_true(r != NULL && r->type == REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* ---------------------------------------------------------------- helpers */

static void pump_until(const int *count, int want)
{
    uint64_t end = mono_ms() + 10000;

    while (*count < want && mono_ms() < end)
        h2o_evloop_run(fx.loop, 10);
    assert_int_equal(*count, want);
}

static void on_result(void *ud, cph_cache_redis_result_t result, cph_cache_entry_t *entry, uint64_t age_s, h2o_iovec_t vary)
{
    result_t *r = ud;

    r->count++;
    r->result = result;
    r->entry = entry;
    r->age_s = age_s;
    assert_true(vary.len < sizeof(r->vary));
    if (vary.len != 0)
        memcpy(r->vary, vary.base, vary.len);
    r->vary[vary.len] = '\0';
    assert_true((entry != NULL) == (result == CPH_CACHE_REDIS_HIT));
    assert_true((vary.len != 0) == (result == CPH_CACHE_REDIS_VARY));
}

static result_t lookup(const char *route, const char *path, const char *vary, const char *values, size_t values_len)
{
    result_t r = {0};

    cph_cache_redis_lookup(&fx.w, route, iov("api.example.com"), iov(path), iov(vary), h2o_iovec_init(values, values_len),
                           on_result, &r);
    assert_int_equal(r.count, 0);
    pump_until(&r.count, 1);
    return r;
}

static const struct phr_header response[] = {H("Cache-Control", "max-age=60"), H("Content-Type", "text/plain"), H("ETag", "\"v1\""),
                                             H("Age", "7")};

/* A complete entry for path with body (the request's Accept-Language when vary). */
static cph_cache_entry_t *make_entry(const char *path, const char *body, size_t body_len, const char *lang)
{
    h2o_mem_pool_t pool;
    h2o_headers_t req = {NULL, 0, 0};
    struct phr_header h[NUM(response) + 1];
    cph_cache_resinfo_t info;
    size_t n = NUM(response);

    memcpy(h, response, sizeof(response));
    if (lang != NULL)
        h[n++] = (struct phr_header)H("Vary", "Accept-Language");
    h2o_mem_init_pool(&pool);
    if (lang != NULL)
        h2o_add_header_by_str(&pool, &req, H2O_STRLIT("accept-language"), 1, NULL, lang, strlen(lang));
    cph_cache_response_info(200, h, n, 0, 86400, 0, (uint64_t)time(NULL), &info);
    assert_true(info.storable);
    cph_cache_entry_t *e = cph_cache_entry_new(0, iov("api.example.com"), iov(path), &req, &info, 200, iov("OK"), h, n);
    assert_int_equal(cph_cache_entry_append(e, body, body_len, 1 << 20), 0);
    h2o_mem_clear_pool(&pool);
    return e;
}

/* Stores and waits until the store was answered. */
static void store(const char *route, cph_cache_entry_t *e)
{
    assert_int_equal(cph_cache_redis_store(&fx.w, route, e, 3600), 0);
    uint64_t end = mono_ms() + 5000;
    while (cph_cache_redis_stores_in_flight() != 0 && mono_ms() < end)
        h2o_evloop_run(fx.loop, 10);
    assert_int_equal(cph_cache_redis_stores_in_flight(), 0);
    sleep_ms(20); /* the marker of a Vary goes without an answer */
}

static void wait_connected(void)
{
    for (int i = 0; i < 200; i++) {
        result_t r = lookup("warmup", "/", "", NULL, 0);
        if (r.result != CPH_CACHE_REDIS_ERROR)
            return;
        sleep_ms(20);
    }
    fail_msg("no connection to redis");
}

/* ---------------------------------------------------------------- fixtures */

static int group_setup(void **state)
{
    cph_redis_config_t cfg;

    (void)state;
    if (redis_fixture_setup(&fx.redis, "cache-redis") != 0)
        return -1;
    fx.loop = h2o_evloop_create();
    fx.w.ctx.loop = fx.loop;
    fx.w.ctx.queue = h2o_multithread_create_queue(fx.loop);
    cph_redis_worker_init(&fx.w);
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = fx.redis.port;
    cfg.db = 2;
    cfg.timeout_ms = TIMEOUT_MS;
    cph_redis_configure(&cfg);
    cph_redis_start();
    wait_connected();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cph_redis_stop();
    if (fx.loop != NULL) {
        cph_redis_worker_dispose(&fx.w);
        h2o_multithread_destroy_queue(fx.w.ctx.queue);
        h2o_evloop_destroy(fx.loop);
    }
    return redis_fixture_teardown(&fx.redis);
}

/* ---------------------------------------------------------------- format and keys */

static void test_format(void **state)
{
    (void)state;
    static const char body[] = "bo\0dy";
    cph_cache_entry_t *e = make_entry("/items/1?q=1", body, sizeof(body) - 1, "en"), *d;
    h2o_iovec_t vary;
    char *buf;
    size_t len;

    e->stored_wall_ms = 1234567;
    len = cph_cache_redis_encode(e, &buf);
    d = cph_cache_redis_decode(buf, len, &vary);
    assert_non_null(d);
    assert_null(vary.base);
    assert_int_equal(d->stored_wall_ms, 1234567);
    assert_int_equal(d->age_s, 7);
    assert_int_equal(d->freshness_s, 60);
    assert_int_equal(d->status, 200);
    assert_string_equal(d->reason.base, "OK");
    assert_string_equal(d->host.base, "api.example.com");
    assert_string_equal(d->path.base, "/items/1?q=1");
    assert_string_equal(d->vary.base, "accept-language");
    assert_int_equal(d->vary_values.len, e->vary_values.len);
    assert_memory_equal(d->vary_values.base, e->vary_values.base, e->vary_values.len);
    assert_int_equal(d->num_headers, e->num_headers);
    for (size_t i = 0; i != e->num_headers; i++) {
        assert_string_equal(d->headers[i].name.base, e->headers[i].name.base);
        assert_string_equal(d->headers[i].value.base, e->headers[i].value.base);
    }
    assert_string_equal(d->etag.base, "\"v1\"");
    assert_int_equal(d->body_len, sizeof(body) - 1);
    assert_memory_equal(d->body, body, sizeof(body) - 1);
    cph_cache_entry_release(d);

    for (size_t cut = 0; cut != len; cut++) { /* every shorter value is unreadable */
        assert_null(cph_cache_redis_decode(buf, cut, &vary));
        assert_null(vary.base);
    }
    buf[4] = CPH_CACHE_REDIS_FORMAT + 1; /* another version */
    assert_null(cph_cache_redis_decode(buf, len, &vary));
    assert_null(vary.base);
    free(buf);
    assert_null(cph_cache_redis_decode("garbage", 7, &vary));

    len = cph_cache_redis_encode_vary(e->host, e->path, e->vary, 1, &buf);
    assert_null(cph_cache_redis_decode(buf, len, &vary));
    assert_non_null(vary.base);
    assert_string_equal(vary.base, "accept-language");
    free(vary.base);
    assert_null(cph_cache_redis_decode(buf, len - 1, &vary));
    assert_null(vary.base);
    free(buf);
    cph_cache_entry_release(e);
}

static void test_keys(void **state)
{
    (void)state;
    h2o_iovec_t none = {NULL, 0};
    h2o_iovec_t k1 = cph_cache_redis_key("r-1.x", iov("a.example"), iov("/p"), none, none);
    h2o_iovec_t k2 = cph_cache_redis_key("r-1.x", iov("a.example"), iov("/p"), iov("accept"), h2o_iovec_init("x\0", 2));
    h2o_iovec_t k3 = cph_cache_redis_key("r-1.x", iov("a.example"), iov("/p"), iov("accept"), h2o_iovec_init("y\0", 2));
    h2o_iovec_t k4 = cph_cache_redis_key("r-1.x", iov("a.example"), iov("/q"), none, none);

    assert_int_equal(k1.len, strlen("cephalo:cache:v1:{r-1.x}:") + 32);
    assert_memory_equal(k1.base, "cephalo:cache:v1:{r-1.x}:", strlen("cephalo:cache:v1:{r-1.x}:"));
    assert_int_equal(strlen(k1.base), k1.len);
    assert_int_equal(strspn(k1.base + k1.len - 32, "0123456789abcdef"), 32);
    assert_string_not_equal(k1.base, k2.base);
    assert_string_not_equal(k2.base, k3.base);
    assert_string_not_equal(k1.base, k4.base);
    free(k1.base);
    free(k2.base);
    free(k3.base);
    free(k4.base);
}

/* ---------------------------------------------------------------- against redis */

static void test_store_and_hit(void **state)
{
    (void)state;
    cph_cache_entry_t *e = make_entry("/items/1", "hello", 5, NULL);
    result_t r = lookup("shop", "/items/1", "", NULL, 0);

    assert_int_equal(r.result, CPH_CACHE_REDIS_MISS);
    store("shop", e);
    r = lookup("shop", "/items/1", "", NULL, 0); /* what any data plane pointing at this redis would find */
    assert_int_equal(r.result, CPH_CACHE_REDIS_HIT);
    assert_int_equal(r.entry->body_len, 5);
    assert_memory_equal(r.entry->body, "hello", 5);
    assert_string_equal(r.entry->etag.base, "\"v1\"");
    assert_int_equal(r.age_s, 7); /* the upstream's Age, plus nothing yet */
    cph_cache_entry_release(r.entry);
    h2o_iovec_t key =
        cph_cache_redis_key("shop", iov("api.example.com"), iov("/items/1"), h2o_iovec_init(NULL, 0), h2o_iovec_init(NULL, 0));
    long long px = pttl(key.base);
    assert_true(px > 50000 && px <= 53000); /* freshness 60 - Age 7 */
    free(key.base);
    assert_int_equal(lookup("shop", "/items/2", "", NULL, 0).result, CPH_CACHE_REDIS_MISS);
    assert_int_equal(lookup("other", "/items/1", "", NULL, 0).result, CPH_CACHE_REDIS_MISS);

    e->stored_wall_ms = cph_cache_wall_ms() - 3000; /* stored 3 s ago: Age 10 */
    store("shop", e);
    r = lookup("shop", "/items/1", "", NULL, 0);
    assert_int_equal(r.result, CPH_CACHE_REDIS_HIT);
    assert_int_equal(r.age_s, 10);
    cph_cache_entry_release(r.entry);
    e->stored_wall_ms = cph_cache_wall_ms() - 60000; /* stale by the time it is read */
    store("shop", e);
    assert_int_equal(lookup("shop", "/items/1", "", NULL, 0).result, CPH_CACHE_REDIS_MISS);
    e->age_s = 60;
    assert_int_equal(cph_cache_redis_store(&fx.w, "shop", e, 3600), -1); /* stale already: not sent */
    cph_cache_entry_release(e);
}

static void test_vary(void **state)
{
    (void)state;
    cph_cache_entry_t *en = make_entry("/v", "english", 7, "en"), *fr = make_entry("/v", "french", 6, "fr");

    store("shop", en);
    store("shop", fr);
    result_t r = lookup("shop", "/v", "", NULL, 0);
    assert_int_equal(r.result, CPH_CACHE_REDIS_VARY);
    assert_string_equal(r.vary, "accept-language");
    r = lookup("shop", "/v", "accept-language", "en", 3);
    assert_int_equal(r.result, CPH_CACHE_REDIS_HIT);
    assert_memory_equal(r.entry->body, "english", 7);
    cph_cache_entry_release(r.entry);
    r = lookup("shop", "/v", "accept-language", "fr", 3);
    assert_int_equal(r.result, CPH_CACHE_REDIS_HIT); /* both variants live, as in memory */
    assert_memory_equal(r.entry->body, "french", 6);
    cph_cache_entry_release(r.entry);
    assert_int_equal(lookup("shop", "/v", "accept-language", "de", 3).result, CPH_CACHE_REDIS_MISS);
    cph_cache_entry_t *plain = make_entry("/v", "plain", 5, NULL); /* the resource stops varying */
    store("shop", plain);
    r = lookup("shop", "/v", "", NULL, 0);
    assert_int_equal(r.result, CPH_CACHE_REDIS_HIT);
    assert_memory_equal(r.entry->body, "plain", 5);
    cph_cache_entry_release(r.entry);
    cph_cache_entry_release(plain);
    cph_cache_entry_release(en);
    cph_cache_entry_release(fr);
}

/* Waits until a fire-and-forget purge reached redis (the next command on the same connection is behind it). */
static void purge_and_sync(const char *route, const char *prefix, uint64_t at)
{
    cph_cache_redis_purge(route, prefix, at);
    (void)lookup("sync", "/", "", NULL, 0);
}

static int hit(const char *route, const char *path)
{
    result_t r = lookup(route, path, "", NULL, 0);

    cph_cache_entry_release(r.entry);
    return r.result == CPH_CACHE_REDIS_HIT;
}

static void test_purge(void **state)
{
    (void)state;
    cph_cache_entry_t *a = make_entry("/items/1", "a", 1, NULL), *b = make_entry("/other/1", "b", 1, NULL);
    uint64_t now = cph_cache_wall_ms();

    a->stored_wall_ms = b->stored_wall_ms = now - 10000;
    store("pr", a);
    store("pr", b);
    store("pr2", a);
    assert_true(hit("pr", "/items/1") && hit("pr", "/other/1"));
    purge_and_sync("pr", "/items/", now - 20000); /* an `at` before the store: nothing */
    assert_true(hit("pr", "/items/1"));
    purge_and_sync("pr", "/items/", now - 5000);
    assert_false(hit("pr", "/items/1"));
    assert_true(hit("pr", "/other/1"));
    assert_true(hit("pr2", "/items/1"));          /* another route */
    purge_and_sync("pr", "/items/", now - 20000); /* an earlier `at` never lowers the record */
    assert_false(hit("pr", "/items/1"));

    a->stored_wall_ms = now - 1000; /* stored after the purge */
    store("pr", a);
    assert_true(hit("pr", "/items/1"));
    purge_and_sync("pr", "/items/", now - 5000); /* replayed: the younger entry survives */
    assert_true(hit("pr", "/items/1"));
    purge_and_sync("pr", NULL, now); /* the whole route */
    assert_false(hit("pr", "/items/1"));
    assert_false(hit("pr", "/other/1"));
    assert_true(hit("pr2", "/items/1"));
    cph_cache_entry_release(a);
    cph_cache_entry_release(b);
}

static void test_purge_before_both_backends(void **state)
{
    (void)state;
    cph_cache_entry_t *e = make_entry("/pb/1", "x", 1, NULL);

    e->stored_wall_ms = cph_cache_wall_ms() - 1000;
    store("pb", e);
    assert_true(hit("pb", "/pb/1"));
    cph_cache_purge_before("pb", "/pb", 0); /* 0: now, for redis */
    (void)lookup("sync", "/", "", NULL, 0);
    assert_false(hit("pb", "/pb/1"));
    cph_cache_entry_release(e);
}

static void test_stopped_server_is_an_error(void **state)
{
    (void)state;
    cph_cache_entry_t *e = make_entry("/s/1", "x", 1, NULL);
    int skipped = 0;

    store("st", e);
    assert_int_equal(kill(fx.redis.pid, SIGSTOP), 0);
    uint64_t t0 = mono_ms();
    result_t r = lookup("st", "/s/1", "", NULL, 0);
    assert_int_equal(r.result, CPH_CACHE_REDIS_ERROR);
    assert_true(mono_ms() - t0 < TIMEOUT_MS + 500);
    for (int i = 0; i != CPH_CACHE_REDIS_MAX_STORES + 10; i++) /* stores pile up to the bound, then are skipped */
        skipped += cph_cache_redis_store(&fx.w, "st", e, 3600) != 0;
    assert_int_equal(skipped, 10);
    assert_int_equal(cph_cache_redis_stores_in_flight(), CPH_CACHE_REDIS_MAX_STORES);
    uint64_t end = mono_ms() + 5000; /* each is answered by its deadline */
    while (cph_cache_redis_stores_in_flight() != 0 && mono_ms() < end)
        h2o_evloop_run(fx.loop, 10);
    assert_int_equal(cph_cache_redis_stores_in_flight(), 0);
    assert_int_equal(kill(fx.redis.pid, SIGCONT), 0);
    for (int i = 0; i < 200 && !hit("st", "/s/1"); i++)
        sleep_ms(20);
    assert_true(hit("st", "/s/1"));
    cph_cache_entry_release(e);
}

static void test_purge_sent_while_redis_was_down(void **state)
{
    (void)state;
    cph_cache_entry_t *e = make_entry("/d/1", "x", 1, NULL);
    uint64_t now = cph_cache_wall_ms();

    assert_true(fx.redis.pid > 0);
    redis_fixture_kill(&fx.redis);
    assert_int_equal(lookup("down", "/d/1", "", NULL, 0).result, CPH_CACHE_REDIS_ERROR);
    cph_cache_redis_purge("down", "/d/", now); /* nobody hears it now */
    assert_int_equal(cph_cache_redis_pending_purges(), 1);
    redis_fixture_start(&fx.redis); /* empty, on the same port */
    wait_connected();               /* its lookups write the pending purge first */
    for (int i = 0; i < 100 && cph_cache_redis_pending_purges() != 0; i++)
        (void)lookup("sync", "/", "", NULL, 0);
    assert_int_equal(cph_cache_redis_pending_purges(), 0);
    e->stored_wall_ms = now - 1000; /* an entry from before the purge (another data plane's, say) */
    store("down", e);
    assert_false(hit("down", "/d/1"));
    e->stored_wall_ms = now + 1;
    store("down", e);
    assert_true(hit("down", "/d/1"));
    cph_cache_entry_release(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_store_and_hit),
        cmocka_unit_test(test_vary),
        cmocka_unit_test(test_purge),
        cmocka_unit_test(test_purge_before_both_backends),
        cmocka_unit_test(test_stopped_server_is_an_error),
        cmocka_unit_test(test_purge_sent_while_redis_was_down),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
