/*
 * cache_test: core/cache.c, compile/cache.c and filter/cache.c (docs/dataplane.md "Response cache"). The rules: freshness from
 * s-maxage, max-age, Expires - Date and the route's ttl, capped by max_ttl; what forbids storing (status, no-store, private,
 * no-cache, Set-Cookie, Vary: *, no freshness, an authenticated request without public / s-maxage); weak ETag
 * comparison. The store: lookup by route + host + path + Vary values, LRU eviction by bytes, an entry held by a reader
 * while it is evicted or purged (ASan sees any use after free), purge by route and path prefix, stale entries, budget
 * 0, purge by store time (`at`: an entry stored after it survives a replayed purge). The key's host without the
 * scheme's default port. Compiling policies.cache and gateway.cache (max_bytes, backend) with defaults and range errors.
 * The stage on hand-built requests: bypass, miss then a capture that stores, hit with Age and X-Cache, 304, HEAD,
 * no-cache refresh, credentials, a Host with :80 hitting the entry stored without it.
 * h2o's senders are replaced below.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/compile/cache.h"
#include "dataplane/compile/compile.h"
#include "dataplane/core/cache.h"
#include "dataplane/filter/filter.h"
#include "snap_fixture.h"

/* ---------------------------------------------------------------- replaced senders */

static struct {
    int started, sends, final;
    size_t body_len;
    char body[256];
} sent;

void h2o_start_response(h2o_req_t *req, h2o_generator_t *generator)
{
    (void)req, (void)generator;
    sent.started++;
}

void h2o_send(h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    (void)req;
    sent.sends++;
    sent.final = state == H2O_SEND_STATE_FINAL;
    for (size_t i = 0; i != bufcnt; i++) {
        assert_true(sent.body_len + bufs[i].len < sizeof(sent.body));
        memcpy(sent.body + sent.body_len, bufs[i].base, bufs[i].len);
        sent.body_len += bufs[i].len;
    }
}

/* ---------------------------------------------------------------- helpers */

#define H(n, v)                                                                                                                    \
    {                                                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                                                         \
    }
#define NUM(a) (sizeof(a) / sizeof((a)[0]))
#define NOW 1700000000u

static cph_cache_resinfo_t info_of(int status, const struct phr_header *h, size_t n, uint64_t ttl, int need_shared)
{
    cph_cache_resinfo_t info;

    cph_cache_response_info(status, h, n, ttl, 86400, need_shared, NOW, &info);
    return info;
}

static h2o_iovec_t iov(const char *s)
{
    return h2o_iovec_init(s, strlen(s));
}

static cph_cache_entry_t *make_entry(uint32_t route, const char *path, const h2o_headers_t *req_headers, const struct phr_header *h,
                                     size_t n, const char *body)
{
    cph_cache_resinfo_t info;
    cph_cache_entry_t *e;

    cph_cache_response_info(200, h, n, 0, 86400, 0, NOW, &info);
    assert_true(info.storable);
    e = cph_cache_entry_new(route, iov("api.example.com"), iov(path), req_headers, &info, 200, iov("OK"), h, n);
    assert_int_equal(cph_cache_entry_append(e, body, strlen(body), 1 << 20), 0);
    return e;
}

static const struct phr_header cacheable[] = {H("Cache-Control", "public, max-age=60"),
                                              H("Content-Type", "text/plain"),
                                              H("ETag", "\"v1\""),
                                              H("Connection", "x-hop"),
                                              H("X-Hop", "1"),
                                              H("Age", "5"),
                                              H("Date", "Tue, 14 Nov 2023 22:13:20 GMT")};

/* ---------------------------------------------------------------- rules */

static void test_freshness(void **state)
{
    (void)state;
    struct phr_header maxage[] = {H("Cache-Control", "max-age=120")};
    struct phr_header both[] = {H("cache-control", "max-age=120, s-maxage=30")};
    struct phr_header expires[] = {H("Date", "Tue, 14 Nov 2023 22:13:20 GMT"), H("Expires", "Tue, 14 Nov 2023 22:15:00 GMT")};
    struct phr_header bad_expires[] = {H("Expires", "0")};
    struct phr_header huge[] = {H("Cache-Control", "max-age=999999999")};
    struct phr_header none[] = {H("Content-Type", "text/plain")};
    struct phr_header quoted[] = {H("Cache-Control", "max-age=\"42\"")};

    assert_int_equal(info_of(200, maxage, 1, 0, 0).freshness_s, 120);
    assert_int_equal(info_of(200, both, 1, 0, 0).freshness_s, 30);
    assert_true(info_of(200, both, 1, 0, 0).shared_ok);
    assert_int_equal(info_of(200, expires, 2, 0, 0).freshness_s, 100);
    assert_false(info_of(200, bad_expires, 1, 500, 0).storable); /* unreadable Expires: already stale, ttl ignored */
    assert_int_equal(info_of(200, huge, 1, 0, 0).freshness_s, 86400);
    assert_false(info_of(200, none, 1, 0, 0).storable); /* ttl 0: only what the upstream marks */
    assert_int_equal(info_of(200, none, 1, 15, 0).freshness_s, 15);
    assert_true(info_of(200, none, 1, 15, 0).storable);
    assert_int_equal(info_of(200, quoted, 1, 0, 0).freshness_s, 42);
    assert_int_equal(info_of(200, cacheable, NUM(cacheable), 0, 0).age_s, 5);
}

static void test_storability(void **state)
{
    (void)state;
    struct phr_header ok[] = {H("Cache-Control", "max-age=60")};
    struct phr_header nostore[] = {H("Cache-Control", "max-age=60"), H("Cache-Control", "no-store")};
    struct phr_header priv[] = {H("Cache-Control", "private, max-age=60")};
    struct phr_header nocache[] = {H("Cache-Control", "no-cache, max-age=60")};
    struct phr_header cookie[] = {H("Cache-Control", "max-age=60"), H("Set-Cookie", "a=b")};
    struct phr_header star[] = {H("Cache-Control", "max-age=60"), H("Vary", "Accept, *")};
    struct phr_header pub[] = {H("Cache-Control", "public, max-age=60")};
    static const int yes[] = {200, 203, 204, 300, 301, 404, 405, 410, 414, 501};
    static const int no[] = {201, 206, 302, 304, 400, 403, 500, 502, 503};

    for (size_t i = 0; i != NUM(yes); i++)
        assert_true(info_of(yes[i], ok, 1, 0, 0).storable);
    for (size_t i = 0; i != NUM(no); i++)
        assert_false(info_of(no[i], ok, 1, 0, 0).storable);
    assert_false(info_of(200, nostore, 2, 0, 0).storable);
    assert_false(info_of(200, priv, 1, 0, 0).storable);
    assert_false(info_of(200, nocache, 1, 0, 0).storable);
    assert_false(info_of(200, cookie, 2, 0, 0).storable);
    assert_false(info_of(200, star, 2, 0, 0).storable);
    assert_false(info_of(200, ok, 1, 0, 1).storable); /* authenticated: needs public or s-maxage */
    assert_true(info_of(200, pub, 1, 0, 1).storable);
}

static void test_etag(void **state)
{
    (void)state;
    assert_true(cph_cache_etag_match(iov("\"a\""), iov("\"a\"")));
    assert_true(cph_cache_etag_match(iov("W/\"a\""), iov("\"a\"")));
    assert_true(cph_cache_etag_match(iov("\"x\", W/\"a\""), iov("W/\"a\"")));
    assert_true(cph_cache_etag_match(iov("*"), iov("\"a\"")));
    assert_false(cph_cache_etag_match(iov("\"b\""), iov("\"a\"")));
    assert_false(cph_cache_etag_match(iov("\"a\""), iov("")));
}

/* ---------------------------------------------------------------- store */

static void test_store_lookup_and_headers(void **state)
{
    (void)state;
    cph_cache_t *c = cph_cache_create(1 << 20);
    cph_cache_entry_t *e = make_entry(7, "/a?x=1", NULL, cacheable, NUM(cacheable), "hello"), *got;
    uint64_t age = 99, bytes, entries;

    assert_int_equal(cph_cache_insert(c, e, 1000), 0);
    cph_cache_usage(c, &bytes, &entries);
    assert_int_equal(entries, 1);
    assert_int_equal(bytes, e->bytes);
    assert_null(cph_cache_lookup(c, 8, iov("api.example.com"), iov("/a?x=1"), NULL, 1000, &age));
    assert_null(cph_cache_lookup(c, 7, iov("other.example.com"), iov("/a?x=1"), NULL, 1000, &age));
    assert_null(cph_cache_lookup(c, 7, iov("api.example.com"), iov("/a?x=2"), NULL, 1000, &age));
    got = cph_cache_lookup(c, 7, iov("api.example.com"), iov("/a?x=1"), NULL, 3000, &age);
    assert_ptr_equal(got, e);
    assert_int_equal(age, 7); /* upstream Age 5 + 2 s in the store */
    assert_int_equal(got->body_len, 5);
    for (size_t i = 0; i != got->num_headers; i++) /* hop-by-hop, Connection-named, Age and Date are not stored */
        assert_true(strcmp(got->headers[i].name.base, "cache-control") == 0 ||
                    strcmp(got->headers[i].name.base, "content-type") == 0 || strcmp(got->headers[i].name.base, "etag") == 0);
    assert_int_equal(got->num_headers, 3);
    assert_string_equal(got->etag.base, "\"v1\"");
    cph_cache_entry_release(got);
    /* stale at 5 + 55 = 60 s: removed on lookup */
    assert_null(cph_cache_lookup(c, 7, iov("api.example.com"), iov("/a?x=1"), NULL, 56000, &age));
    cph_cache_usage(c, &bytes, &entries);
    assert_int_equal(entries, 0);
    assert_int_equal(bytes, 0);
    cph_cache_destroy(c);
}

static void test_lru_eviction_by_bytes(void **state)
{
    (void)state;
    cph_cache_entry_t *a = make_entry(1, "/a", NULL, cacheable, NUM(cacheable), "aaaa");
    cph_cache_entry_t *b = make_entry(1, "/b", NULL, cacheable, NUM(cacheable), "bbbb");
    cph_cache_entry_t *d = make_entry(1, "/d", NULL, cacheable, NUM(cacheable), "dddd");
    cph_cache_t *c = cph_cache_create(a->bytes + b->bytes + a->bytes / 2); /* room for two */
    uint64_t age, bytes, entries;

    assert_int_equal(cph_cache_insert(c, a, 0), 0);
    assert_int_equal(cph_cache_insert(c, b, 0), 0);
    cph_cache_entry_t *held = cph_cache_lookup(c, 1, iov("api.example.com"), iov("/a"), NULL, 0, &age); /* a is now the newest */
    assert_non_null(held);
    assert_int_equal(cph_cache_insert(c, d, 0), 0); /* evicts b, the least recently used */
    assert_null(cph_cache_lookup(c, 1, iov("api.example.com"), iov("/b"), NULL, 0, &age));
    cph_cache_entry_t *x = cph_cache_lookup(c, 1, iov("api.example.com"), iov("/d"), NULL, 0, &age);
    assert_non_null(x);
    cph_cache_entry_release(x);
    cph_cache_usage(c, &bytes, &entries);
    assert_int_equal(entries, 2);
    /* the budget shrinks to nothing: a is evicted while held, and stays readable until released */
    cph_cache_configure(c, 0);
    cph_cache_usage(c, &bytes, &entries);
    assert_int_equal(entries, 0);
    assert_int_equal(held->body_len, 4);
    assert_memory_equal(held->body, "aaaa", 4);
    cph_cache_entry_release(held);
    /* budget 0: nothing is stored; an entry bigger than the budget neither */
    assert_int_equal(cph_cache_insert(c, make_entry(1, "/e", NULL, cacheable, NUM(cacheable), "e"), 0), -1);
    cph_cache_configure(c, 10);
    assert_int_equal(cph_cache_insert(c, make_entry(1, "/e", NULL, cacheable, NUM(cacheable), "e"), 0), -1);
    cph_cache_destroy(c);
}

static void test_purge(void **state)
{
    (void)state;
    cph_cache_t *c = cph_cache_create(1 << 20);
    const char *paths[] = {"/items/1", "/items/2?q", "/itemsx", "/other"};
    uint64_t age, bytes, entries;

    for (size_t i = 0; i != NUM(paths); i++) {
        assert_int_equal(cph_cache_insert(c, make_entry(1, paths[i], NULL, cacheable, NUM(cacheable), "x"), 0), 0);
        assert_int_equal(cph_cache_insert(c, make_entry(2, paths[i], NULL, cacheable, NUM(cacheable), "x"), 0), 0);
    }
    cph_cache_entry_t *held = cph_cache_lookup(c, 1, iov("api.example.com"), iov("/items/1"), NULL, 0, &age);
    assert_int_equal(cph_cache_purge(c, 1, H2O_STRLIT("/items/")), 2);
    assert_memory_equal(held->body, "x", 1); /* purged while held */
    cph_cache_entry_release(held);
    assert_null(cph_cache_lookup(c, 1, iov("api.example.com"), iov("/items/2?q"), NULL, 0, &age));
    cph_cache_entry_t *x = cph_cache_lookup(c, 1, iov("api.example.com"), iov("/itemsx"), NULL, 0, &age);
    assert_non_null(x);
    cph_cache_entry_release(x);
    x = cph_cache_lookup(c, 2, iov("api.example.com"), iov("/items/1"), NULL, 0, &age);
    assert_non_null(x); /* another route keeps its entries */
    cph_cache_entry_release(x);
    assert_int_equal(cph_cache_purge(c, 1, "", 0), 2);
    assert_int_equal(cph_cache_purge(c, 3, "", 0), 0);
    cph_cache_usage(c, &bytes, &entries);
    assert_int_equal(entries, 4);
    cph_cache_destroy(c);
}

static void test_purge_at(void **state)
{
    (void)state;
    cph_cache_t *c = cph_cache_create(1 << 20);
    cph_cache_entry_t *old = make_entry(1, "/a/old", NULL, cacheable, NUM(cacheable), "x");
    cph_cache_entry_t *young = make_entry(1, "/a/young", NULL, cacheable, NUM(cacheable), "x");
    cph_cache_entry_t *now = make_entry(1, "/b/now", NULL, cacheable, NUM(cacheable), "x");
    uint64_t age, bytes, entries, t0 = cph_cache_wall_ms();

    old->stored_wall_ms = 1000;
    young->stored_wall_ms = 3000;
    assert_int_equal(cph_cache_insert(c, old, 0), 0);
    assert_int_equal(cph_cache_insert(c, young, 0), 0);
    assert_int_equal(cph_cache_insert(c, now, 0), 0);
    assert_true(now->stored_wall_ms >= t0 && now->stored_wall_ms <= cph_cache_wall_ms()); /* set by the insert */
    assert_int_equal(cph_cache_purge_at(c, 1, H2O_STRLIT("/a/"), 2000), 1);               /* only what was stored before 2000 */
    assert_null(cph_cache_lookup(c, 1, iov("api.example.com"), iov("/a/old"), NULL, 0, &age));
    cph_cache_entry_t *x = cph_cache_lookup(c, 1, iov("api.example.com"), iov("/a/young"), NULL, 0, &age);
    assert_non_null(x);
    cph_cache_entry_release(x);
    assert_int_equal(cph_cache_purge_at(c, 1, H2O_STRLIT("/a/"), 2000), 0); /* replayed: the younger entry survives */
    assert_int_equal(cph_cache_purge_at(c, 1, "", 0, 3000), 0);             /* before is exclusive */
    assert_int_equal(cph_cache_purge_at(c, 1, "", 0, 3001), 1);
    cph_cache_usage(c, &bytes, &entries);
    assert_int_equal(entries, 1);
    assert_int_equal(cph_cache_purge_at(c, 1, "", 0, 0), 1); /* 0: whenever stored */
    cph_cache_destroy(c);
}

static void test_key_host(void **state)
{
    (void)state;
    h2o_mem_pool_t pool;
    static const struct {
        const char *authority;
        int tls;
        const char *want;
    } cases[] = {{"Example.COM", 0, "example.com"},
                 {"example.com:80", 0, "example.com"},
                 {"example.com:443", 1, "example.com"},
                 {"example.com:443", 0, "example.com:443"},
                 {"example.com:80", 1, "example.com:80"},
                 {"example.com:8080", 0, "example.com:8080"},
                 {"[::1]:80", 0, "[::1]"},
                 {"example.com:180", 0, "example.com:180"},
                 {":80", 0, ":80"},
                 {"", 0, ""}};

    h2o_mem_init_pool(&pool);
    for (size_t i = 0; i != NUM(cases); i++) {
        h2o_iovec_t h = cph_cache_key_host(&pool, iov(cases[i].authority), cases[i].tls);
        assert_int_equal(h.len, strlen(cases[i].want));
        assert_memory_equal(h.base, cases[i].want, h.len);
        assert_int_equal(h.base[h.len], '\0');
    }
    h2o_mem_clear_pool(&pool);
}

static void add_req_header(h2o_mem_pool_t *pool, h2o_headers_t *headers, const char *name, const char *value)
{
    h2o_add_header_by_str(pool, headers, name, strlen(name), 1, NULL, value, strlen(value));
}

static void test_vary(void **state)
{
    (void)state;
    struct phr_header vary[] = {H("Cache-Control", "max-age=60"), H("Vary", "Accept-Encoding, Accept-Language")};
    cph_cache_t *c = cph_cache_create(1 << 20);
    h2o_mem_pool_t pool;
    h2o_headers_t gzip = {NULL, 0, 0}, br = {NULL, 0, 0}, none = {NULL, 0, 0}, gzip_fr = {NULL, 0, 0};
    uint64_t age, bytes, entries;

    h2o_mem_init_pool(&pool);
    add_req_header(&pool, &gzip, "accept-encoding", "gzip");
    add_req_header(&pool, &br, "Accept-Encoding", "br");
    add_req_header(&pool, &gzip_fr, "accept-encoding", "gzip");
    add_req_header(&pool, &gzip_fr, "accept-language", "fr");
    assert_int_equal(cph_cache_insert(c, make_entry(1, "/v", &gzip, vary, 2, "gz"), 0), 0);
    assert_int_equal(cph_cache_insert(c, make_entry(1, "/v", &br, vary, 2, "br"), 0), 0);
    cph_cache_entry_t *x = cph_cache_lookup(c, 1, iov("api.example.com"), iov("/v"), &br, 0, &age);
    assert_non_null(x);
    assert_memory_equal(x->body, "br", 2);
    cph_cache_entry_release(x);
    x = cph_cache_lookup(c, 1, iov("api.example.com"), iov("/v"), &gzip, 0, &age);
    assert_non_null(x);
    assert_memory_equal(x->body, "gz", 2);
    cph_cache_entry_release(x);
    assert_null(cph_cache_lookup(c, 1, iov("api.example.com"), iov("/v"), &none, 0, &age));
    assert_null(cph_cache_lookup(c, 1, iov("api.example.com"), iov("/v"), &gzip_fr, 0, &age));
    /* the same variant again replaces it; a response without Vary replaces every variant */
    assert_int_equal(cph_cache_insert(c, make_entry(1, "/v", &gzip, vary, 2, "g2"), 0), 0);
    cph_cache_usage(c, &bytes, &entries);
    assert_int_equal(entries, 2);
    assert_int_equal(cph_cache_insert(c, make_entry(1, "/v", &gzip, cacheable, NUM(cacheable), "plain"), 0), 0);
    cph_cache_usage(c, &bytes, &entries);
    assert_int_equal(entries, 1);
    x = cph_cache_lookup(c, 1, iov("api.example.com"), iov("/v"), &br, 0, &age);
    assert_non_null(x);
    assert_memory_equal(x->body, "plain", 5);
    cph_cache_entry_release(x);
    cph_cache_destroy(c);
    h2o_mem_clear_pool(&pool);
}

static void test_body_limit(void **state)
{
    (void)state;
    cph_cache_entry_t *e = make_entry(1, "/big", NULL, cacheable, NUM(cacheable), "1234");
    size_t bytes = e->bytes;

    assert_int_equal(cph_cache_entry_append(e, "5678", 4, 8), 0);
    assert_int_equal(e->bytes, bytes + 4); /* the body counts against the budget */
    assert_int_equal(cph_cache_entry_append(e, "9", 1, 8), -1);
    assert_int_equal(e->body_len, 8);
    cph_cache_t *c = cph_cache_create(e->bytes - 1); /* an entry bigger than the budget is never stored */
    assert_int_equal(cph_cache_insert(c, e, 0), -1);
    cph_cache_destroy(c); /* insert released e */
}

/* ---------------------------------------------------------------- compile */

/* The snapshot with services, routes and the cache stage compiled (snap_fixture.h). */
static int build(snapfx_t *f, const char *json, cph_error_t *err)
{
    return snapfx_build(f, json, cph_cache_compile, err);
}

static void test_compile(void **state)
{
    (void)state;
    snapfx_t f;
    cph_error_t err;

    assert_int_equal(build(&f,
                           "{" SERVICES
                           ",\"routes\":[" ROUTE("a", "/a", ",\"policies\":{\"cache\":{}}") "," ROUTE("b", "/b", "") "," ROUTE(
                               "c", "/c",
                               ",\"policies\":{\"cache\":{\"ttl_s\":30,\"max_ttl_s\":600,\"max_body_bytes\":1000,"
                               "\"share_authenticated\":true}}") "]}",
                           &err),
                     0);
    assert_int_equal(f.snap.cache_max_bytes, CPH_CACHE_DEFAULT_MAX_BYTES);
    assert_non_null(f.snap.routes[0].cache);
    assert_int_equal(f.snap.routes[0].cache->ttl_s, 0);
    assert_int_equal(f.snap.routes[0].cache->max_ttl_s, 86400);
    assert_int_equal(f.snap.routes[0].cache->max_body_bytes, 1048576);
    assert_false(f.snap.routes[0].cache->share_authenticated);
    assert_null(f.snap.routes[1].cache);
    assert_int_equal(f.snap.routes[2].cache->ttl_s, 30);
    assert_int_equal(f.snap.routes[2].cache->max_ttl_s, 600);
    assert_int_equal(f.snap.routes[2].cache->max_body_bytes, 1000);
    assert_true(f.snap.routes[2].cache->share_authenticated);
    snapfx_destroy(&f);

    assert_int_equal(build(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{\"cache\":{\"max_bytes\":0}}}", &err), 0);
    assert_int_equal(f.snap.cache_max_bytes, 0);
    snapfx_destroy(&f);
    assert_int_equal(build(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{\"cache\":{\"max_bytes\":17179869185}}}", &err), -1);
    assert_string_equal(err.path, "/gateway/cache/max_bytes");
    snapfx_destroy(&f);
    assert_int_equal(
        build(&f, "{" SERVICES ",\"routes\":[" ROUTE("a", "/a", ",\"policies\":{\"cache\":{\"max_ttl_s\":0}}") "]}", &err), -1);
    assert_string_equal(err.path, "/routes/0/policies/cache/max_ttl_s");
    snapfx_destroy(&f);
    assert_int_equal(
        build(&f, "{" SERVICES ",\"routes\":[" ROUTE("a", "/a", ",\"policies\":{\"cache\":{\"max_body_bytes\":67108865}}") "]}",
              &err),
        -1);
    snapfx_destroy(&f);
    assert_int_equal(
        build(&f, "{" SERVICES ",\"routes\":[" ROUTE("a", "/a", ",\"policies\":{\"cache\":{\"share_authenticated\":1}}") "]}",
              &err),
        -1);
    snapfx_destroy(&f);
}

#define REDIS_GW "\"redis\":{\"host\":\"127.0.0.1\"}"

static void test_compile_backend(void **state)
{
    (void)state;
    snapfx_t f;
    cph_error_t err;

    assert_int_equal(build(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{\"cache\":{\"backend\":\"memory\"}}}", &err), 0);
    assert_false(f.snap.cache_redis);
    snapfx_destroy(&f);
    assert_int_equal(
        build(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{" REDIS_GW ",\"cache\":{\"backend\":\"redis\",\"max_bytes\":0}}}",
              &err),
        0);
    assert_true(f.snap.cache_redis);
    assert_int_equal(f.snap.cache_max_bytes, 0); /* ignored by the redis backend */
    snapfx_destroy(&f);
    assert_int_equal(build(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{\"cache\":{\"backend\":\"redis\"}}}", &err), -1);
    assert_string_equal(err.path, "/gateway/cache/backend");
    snapfx_destroy(&f);
    assert_int_equal(build(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{\"redis\":null,\"cache\":{\"backend\":\"redis\"}}}", &err),
                     -1);
    assert_string_equal(err.path, "/gateway/cache/backend");
    snapfx_destroy(&f);
    assert_int_equal(build(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{" REDIS_GW ",\"cache\":{\"backend\":\"disk\"}}}", &err),
                     -1);
    assert_string_equal(err.path, "/gateway/cache/backend");
    snapfx_destroy(&f);
}

/* ---------------------------------------------------------------- the stage */

typedef struct st_reqfx_t {
    h2o_conn_t conn;
    h2o_req_t req;
    cph_req_t r;
} reqfx_t;

static void req_init(reqfx_t *q, snapfx_t *f, size_t route, const char *method, const char *path)
{
    memset(q, 0, sizeof(*q));
    memset(&sent, 0, sizeof(sent));
    h2o_mem_init_pool(&q->req.pool);
    q->req.conn = &q->conn;
    q->req.input.method = iov(method);
    q->req.input.authority = iov("API.example.com");
    q->r.req = &q->req;
    q->r.snap = &f->snap;
    q->r.route = &f->snap.routes[route];
    q->r.upstream_path = iov(path);
}

static void req_done(reqfx_t *q)
{
    h2o_mem_clear_pool(&q->req.pool); /* runs the entry's release */
}

static const char *extra(reqfx_t *q, const char *name)
{
    for (size_t i = 0; i != q->r.res_extra.size; i++)
        if (h2o_memis(q->r.res_extra.entries[i].name->base, q->r.res_extra.entries[i].name->len, name, strlen(name)))
            return q->r.res_extra.entries[i].value.base;
    return NULL;
}

static const char *res_header(reqfx_t *q, const char *name)
{
    for (size_t i = 0; i != q->req.res.headers.size; ++i)
        if (h2o_lcstris(q->req.res.headers.entries[i].name->base, q->req.res.headers.entries[i].name->len, name, strlen(name)))
            return q->req.res.headers.entries[i].value.base;
    return NULL;
}

/* A miss on route 0 whose response the capture stores. */
static void store_one(snapfx_t *f, const char *path, const char *body)
{
    reqfx_t q;

    req_init(&q, f, 0, "GET", path);
    assert_int_equal(cph_cache_on_req(&q.r), CPH_NEXT);
    assert_non_null(extra(&q, "x-cache"));
    assert_memory_equal(extra(&q, "x-cache"), "MISS", 4);
    cph_cache_capture_t *cap = cph_cache_capture_begin(&q.r, 200, "OK", 2, cacheable, NUM(cacheable));
    assert_non_null(cap);
    assert_int_equal(cph_cache_capture_append(cap, body, strlen(body)), 0);
    cph_cache_capture_end(cap, 1);
    req_done(&q);
}

static void test_stage(void **state)
{
    (void)state;
    snapfx_t f;
    cph_error_t err;
    reqfx_t q;

    cph_cache_configure(cph_cache_default(), 1 << 20);
    assert_int_equal(build(&f,
                           "{" SERVICES ",\"routes\":[" ROUTE(
                               "c", "/c", ",\"policies\":{\"cache\":{\"max_body_bytes\":8}}") "," ROUTE("n", "/n", "") "]}",
                           &err),
                     0);
    store_one(&f, "/c/1", "body");

    req_init(&q, &f, 0, "GET", "/c/1"); /* hit */
    assert_int_equal(cph_cache_on_req(&q.r), CPH_DONE);
    assert_int_equal(q.req.res.status, 200);
    assert_int_equal(sent.body_len, 4);
    assert_memory_equal(sent.body, "body", 4);
    assert_true(sent.final);
    assert_string_equal(res_header(&q, "x-cache"), "HIT");
    assert_string_equal(res_header(&q, "age"), "5");
    assert_string_equal(res_header(&q, "content-type"), "text/plain");
    assert_null(res_header(&q, "x-hop"));
    req_done(&q);

    req_init(&q, &f, 0, "GET", "/c/1"); /* conditional: 304 with ETag, no body */
    add_req_header(&q.req.pool, &q.req.headers, "if-none-match", "W/\"v1\"");
    assert_int_equal(cph_cache_on_req(&q.r), CPH_DONE);
    assert_int_equal(q.req.res.status, 304);
    assert_int_equal(sent.body_len, 0);
    assert_string_equal(res_header(&q, "etag"), "\"v1\"");
    assert_null(res_header(&q, "content-type"));
    req_done(&q);

    req_init(&q, &f, 0, "HEAD", "/c/1"); /* HEAD: the headers only */
    assert_int_equal(cph_cache_on_req(&q.r), CPH_DONE);
    assert_int_equal(q.req.res.status, 200);
    assert_int_equal(q.req.res.content_length, 4);
    assert_int_equal(sent.body_len, 0);
    req_done(&q);

    req_init(&q, &f, 0, "GET", "/c/1"); /* the default port names the same resource */
    q.req.input.authority = iov("api.example.com:80");
    assert_int_equal(cph_cache_on_req(&q.r), CPH_DONE);
    assert_string_equal(res_header(&q, "x-cache"), "HIT");
    req_done(&q);
    req_init(&q, &f, 0, "GET", "/c/1"); /* another port is another resource */
    q.req.input.authority = iov("api.example.com:8080");
    assert_int_equal(cph_cache_on_req(&q.r), CPH_NEXT);
    req_done(&q);

    req_init(&q, &f, 0, "GET", "/c/1"); /* no-cache: a miss that may refresh */
    add_req_header(&q.req.pool, &q.req.headers, "cache-control", "no-cache");
    assert_int_equal(cph_cache_on_req(&q.r), CPH_NEXT);
    assert_memory_equal(extra(&q, "x-cache"), "MISS", 4);
    cph_cache_capture_t *cap = cph_cache_capture_begin(&q.r, 200, "OK", 2, cacheable, NUM(cacheable));
    assert_non_null(cap);
    assert_int_equal(cph_cache_capture_append(cap, "123456789", 9), -1); /* over max_body_bytes 8: ended, not stored */
    req_done(&q);

    static const char *const bypass[][2] = {
        {"authorization", "Bearer x"}, {"cookie", "a=b"}, {"x-api-key", "k"}, {"cache-control", "no-store"}};
    for (size_t i = 0; i != NUM(bypass); i++) {
        req_init(&q, &f, 0, "GET", "/c/1");
        add_req_header(&q.req.pool, &q.req.headers, bypass[i][0], bypass[i][1]);
        assert_int_equal(cph_cache_on_req(&q.r), CPH_NEXT);
        assert_null(extra(&q, "x-cache"));
        assert_null(cph_cache_capture_begin(&q.r, 200, "OK", 2, cacheable, NUM(cacheable)));
        req_done(&q);
    }
    req_init(&q, &f, 0, "POST", "/c/1");
    assert_int_equal(cph_cache_on_req(&q.r), CPH_NEXT);
    assert_null(extra(&q, "x-cache"));
    req_done(&q);
    req_init(&q, &f, 1, "GET", "/n/1"); /* no policy: nothing */
    assert_int_equal(cph_cache_on_req(&q.r), CPH_NEXT);
    assert_int_equal(q.r.res_extra.size, 0);
    req_done(&q);

    /* a response that may not be stored: no capture; purge empties the route */
    req_init(&q, &f, 0, "GET", "/c/2");
    struct phr_header nostore[] = {H("Cache-Control", "no-store")};
    assert_int_equal(cph_cache_on_req(&q.r), CPH_NEXT);
    assert_null(cph_cache_capture_begin(&q.r, 200, "OK", 2, nostore, 1));
    req_done(&q);
    assert_int_equal(cph_cache_purge(cph_cache_default(), f.snap.routes[0].metric_id, H2O_STRLIT("/c/")), 1);
    req_init(&q, &f, 0, "GET", "/c/1");
    assert_int_equal(cph_cache_on_req(&q.r), CPH_NEXT);
    req_done(&q);
    cph_cache_configure(cph_cache_default(), 0);
    snapfx_destroy(&f);
}

/* share_authenticated: a credential may be answered only from an entry the upstream said public (or s-maxage). */
static void test_stage_shared(void **state)
{
    (void)state;
    struct phr_header fresh[] = {H("Cache-Control", "max-age=60")};
    snapfx_t f;
    cph_error_t err;
    reqfx_t q;

    cph_cache_configure(cph_cache_default(), 1 << 20);
    assert_int_equal(
        build(&f, "{" SERVICES ",\"routes\":[" ROUTE("s", "/s", ",\"policies\":{\"cache\":{\"share_authenticated\":true}}") "]}",
              &err),
        0);
    req_init(&q, &f, 0, "GET", "/s/priv"); /* anonymous: stored although not public */
    assert_int_equal(cph_cache_on_req(&q.r), CPH_NEXT);
    cph_cache_capture_t *cap = cph_cache_capture_begin(&q.r, 200, "OK", 2, fresh, 1);
    assert_non_null(cap);
    cph_cache_capture_end(cap, 1);
    req_done(&q);
    req_init(&q, &f, 0, "GET", "/s/priv"); /* a credential: not answered from it, and its response not stored */
    add_req_header(&q.req.pool, &q.req.headers, "x-api-key", "k");
    assert_int_equal(cph_cache_on_req(&q.r), CPH_NEXT);
    assert_memory_equal(extra(&q, "x-cache"), "MISS", 4);
    assert_null(cph_cache_capture_begin(&q.r, 200, "OK", 2, fresh, 1));
    req_done(&q);
    req_init(&q, &f, 0, "GET", "/s/priv"); /* the anonymous still get it */
    assert_int_equal(cph_cache_on_req(&q.r), CPH_DONE);
    req_done(&q);
    store_one(&f, "/s/pub", "pub"); /* public: a credential gets it too */
    req_init(&q, &f, 0, "GET", "/s/pub");
    add_req_header(&q.req.pool, &q.req.headers, "authorization", "Bearer t");
    assert_int_equal(cph_cache_on_req(&q.r), CPH_DONE);
    assert_memory_equal(sent.body, "pub", 3);
    req_done(&q);
    cph_cache_configure(cph_cache_default(), 0);
    snapfx_destroy(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_freshness),
        cmocka_unit_test(test_storability),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_store_lookup_and_headers),
        cmocka_unit_test(test_lru_eviction_by_bytes),
        cmocka_unit_test(test_purge),
        cmocka_unit_test(test_purge_at),
        cmocka_unit_test(test_key_host),
        cmocka_unit_test(test_compile_backend),
        cmocka_unit_test(test_vary),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_compile),
        cmocka_unit_test(test_stage),
        cmocka_unit_test(test_stage_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
