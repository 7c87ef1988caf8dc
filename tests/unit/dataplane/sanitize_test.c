/*
 * sanitize_test: filter/sanitize.c on hand-built h2o requests (h2o_send_inline is replaced below to capture the
 * answer) and core/respond.c's error bodies: request ids are 32 hex characters, unique per thread and across threads;
 * a header name with '_' is 400; spoofed identity headers in any case or spelling are removed while the others keep
 * their order; the header caps answer 431 exactly above their limits; every error carries the request id in its body
 * and as x-request-id; 401 carries both WWW-Authenticate challenges; the client's x-request-id is adopted only when
 * trusted and valid; traceparent / tracestate are taken out and propagated with a new span, or a new trace starts.
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
#include "dataplane/compile/auth.h"
#include "dataplane/compile/edge.h"
#include "dataplane/core/trace.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/filter.h"
#include "dataplane/filter/proxy_head.h"
#include "send_fixture.h"


typedef struct st_fixture_t {
    h2o_req_t req;
    cph_snapshot_t snap;
    cph_req_t r;
} fixture_t;

static void fx_init(fixture_t *f, const char *path)
{
    const char *q = strchr(path, '?');

    memset(f, 0, sizeof(*f));
    h2o_mem_init_pool(&f->req.pool);
    f->req.input.method = h2o_iovec_init(H2O_STRLIT("GET"));
    f->req.input.path = h2o_iovec_init(path, strlen(path));
    f->req.input.query_at = q != NULL ? (size_t)(q - path) : SIZE_MAX;
    f->r.req = &f->req;
    f->r.snap = &f->snap;
    sent_status = 0;
    sent_body[0] = '\0';
}

static void fx_add(fixture_t *f, const char *name, const char *value)
{
    h2o_add_header_by_str(&f->req.pool, &f->req.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

static const char *res_header(fixture_t *f, const char *name)
{
    for (size_t i = 0; i != f->req.res.headers.size; ++i)
        if (h2o_lcstris(f->req.res.headers.entries[i].name->base, f->req.res.headers.entries[i].name->len, name, strlen(name)))
            return h2o_strdup(&f->req.pool, f->req.res.headers.entries[i].value.base, f->req.res.headers.entries[i].value.len).base;
    return NULL;
}

static void assert_hex_id(h2o_iovec_t id)
{
    assert_int_equal(id.len, CPH_REQUEST_ID_LEN);
    for (size_t i = 0; i != id.len; ++i)
        assert_non_null(strchr("0123456789abcdef", id.base[i]));
}

static void test_clean_request_passes_with_id_and_canonical_path(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, "/a/../b//c?x=1");
    fx_add(&f, "accept", "*/*");
    fx_add(&f, "X-Custom", "v");
    assert_int_equal(cph_sanitize_on_req(&f.r), CPH_NEXT);
    assert_int_equal(sent_status, 0);
    assert_hex_id(f.r.request_id);
    assert_true(h2o_memis(f.r.path.base, f.r.path.len, H2O_STRLIT("/b/c")));
    assert_true(h2o_memis(f.r.query.base, f.r.query.len, H2O_STRLIT("?x=1")));
    assert_int_equal(f.req.headers.size, 2);
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_spoofed_identity_headers_are_removed(void **state)
{
    (void)state;
    fixture_t f;
    static const char *kept[] = {"accept", "X-Cephalo", "x-cephalox-a", "x-other", "X-Cephal-o-user"};

    fx_init(&f, "/p");
    fx_add(&f, "accept", "a");
    fx_add(&f, "X-Cephalo-User-Id", "1");
    fx_add(&f, "X-Cephalo", "short: kept");
    fx_add(&f, "x-cephalo-roles", "admin");
    fx_add(&f, "x-cephalox-a", "kept");
    fx_add(&f, "X-CEPHALO-System", "shop");
    fx_add(&f, "x-other", "kept");
    fx_add(&f, "x-cephalo-request-id", "forged");
    fx_add(&f, "X-Cephal-o-user", "kept");
    fx_add(&f, "x-cephalo-", "empty suffix");
    assert_int_equal(cph_sanitize_on_req(&f.r), CPH_NEXT);
    assert_int_equal(f.req.headers.size, 5);
    for (size_t i = 0; i != 5; ++i)
        assert_true(h2o_memis(f.req.headers.entries[i].name->base, f.req.headers.entries[i].name->len, kept[i], strlen(kept[i])));
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_underscore_in_name_is_400(void **state)
{
    (void)state;
    static const char *names[] = {"x_cephalo_roles", "X_Cephalo_User_Id", "my_header", "_"};

    for (size_t n = 0; n != sizeof(names) / sizeof(names[0]); ++n) {
        fixture_t f;
        char want[128];
        fx_init(&f, "/p");
        fx_add(&f, "accept", "a");
        fx_add(&f, names[n], "v");
        assert_int_equal(cph_sanitize_on_req(&f.r), CPH_DONE);
        assert_int_equal(sent_status, 400);
        snprintf(want, sizeof(want), "\"request_id\":\"%.*s\"}", (int)f.r.request_id.len, f.r.request_id.base);
        assert_non_null(strstr(sent_body, "{\"error\":\"bad_header\""));
        assert_non_null(strstr(sent_body, want));
        assert_string_equal(res_header(&f, "x-request-id"), h2o_strdup(&f.req.pool, f.r.request_id.base, 32).base);
        assert_string_equal(res_header(&f, "content-type"), "application/json");
        h2o_mem_clear_pool(&f.req.pool);
    }
}

static int run_with(size_t count, size_t value_len, size_t each_len)
{
    fixture_t f;
    char *big = malloc(value_len + 1), *each = malloc(each_len + 1);
    int ret;

    memset(big, 'v', value_len), big[value_len] = '\0';
    memset(each, 'e', each_len), each[each_len] = '\0';
    fx_init(&f, "/p");
    fx_add(&f, "x-big", big);
    for (size_t i = 1; i < count; ++i)
        fx_add(&f, "x-n", each);
    ret = cph_sanitize_on_req(&f.r) == CPH_NEXT ? 0 : sent_status;
    if (ret != 0)
        assert_non_null(strstr(sent_body, "\"headers_too_large\""));
    h2o_mem_clear_pool(&f.req.pool);
    free(big);
    free(each);
    return ret;
}

static void test_header_caps_are_431_just_above_the_limits(void **state)
{
    (void)state;
    assert_int_equal(run_with(CPH_SANITIZE_MAX_HEADERS, 1, 1), 0);
    assert_int_equal(run_with(CPH_SANITIZE_MAX_HEADERS + 1, 1, 1), 431);
    assert_int_equal(run_with(1, CPH_SANITIZE_MAX_VALUE, 0), 0);
    assert_int_equal(run_with(1, CPH_SANITIZE_MAX_VALUE + 1, 0), 431);
    /* names and values add up: 5 + 16000 + 3 x (3 + 16000) fits in 64 KiB, one more value does not */
    assert_int_equal(run_with(4, 16000, 16000), 0);
    assert_int_equal(run_with(5, 16000, 16000), 431);
}

static void test_total_cap_is_exact(void **state)
{
    (void)state;
    h2o_mem_pool_t pool;
    h2o_headers_t headers = {NULL, 0, 0};
    char *v = malloc(CPH_SANITIZE_MAX_VALUE);
    h2o_iovec_t prefix = h2o_iovec_init(H2O_STRLIT("x-cephalo-"));

    memset(v, 'v', CPH_SANITIZE_MAX_VALUE);
    h2o_mem_init_pool(&pool);
    cph_trace_in_t in = {.pool = &pool};
    /* 4 x ("x-a" + 16381) = 64 KiB exactly */
    for (int i = 0; i != 4; ++i)
        h2o_add_header_by_str(&pool, &headers, H2O_STRLIT("x-a"), 0, NULL, v, CPH_SANITIZE_MAX_VALUE - 3);
    assert_int_equal(cph_sanitize_headers(&headers, prefix, &in), 0);
    h2o_add_header_by_str(&pool, &headers, H2O_STRLIT("x"), 0, NULL, "", 0);
    assert_int_equal(cph_sanitize_headers(&headers, prefix, &in), 431);
    h2o_mem_clear_pool(&pool);
    free(v);
}

static void test_bad_path_carries_request_id(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, "/a%2Fb");
    assert_int_equal(cph_sanitize_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 400);
    assert_non_null(strstr(sent_body, "\"bad_path\""));
    assert_non_null(strstr(sent_body, "\"request_id\":\""));
    h2o_mem_clear_pool(&f.req.pool);
}

static void *draw_ids(void *arg)
{
    char *out = arg;

    for (int i = 0; i != 3; ++i)
        cph_sanitize_next_request_id(out + i * CPH_REQUEST_ID_LEN);
    return NULL;
}

static void test_request_ids_are_unique_per_thread_and_across(void **state)
{
    (void)state;
    char a[3 * CPH_REQUEST_ID_LEN], b[3 * CPH_REQUEST_ID_LEN], mine[2][CPH_REQUEST_ID_LEN];
    pthread_t t1, t2;

    assert_int_equal(pthread_create(&t1, NULL, draw_ids, a), 0);
    assert_int_equal(pthread_create(&t2, NULL, draw_ids, b), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    /* same thread: same seed half, counter 1, 2, 3 */
    assert_memory_equal(a, a + CPH_REQUEST_ID_LEN, 16);
    assert_memory_equal(a + 16, "0000000000000001", 16);
    assert_memory_equal(a + CPH_REQUEST_ID_LEN + 16, "0000000000000002", 16);
    assert_memory_equal(a + 2 * CPH_REQUEST_ID_LEN + 16, "0000000000000003", 16);
    /* another thread: another seed (a collision is 2^-64) */
    assert_memory_not_equal(a, b, 16);
    cph_sanitize_next_request_id(mine[0]);
    cph_sanitize_next_request_id(mine[1]);
    assert_memory_not_equal(mine[0], mine[1], CPH_REQUEST_ID_LEN);
    assert_hex_id(h2o_iovec_init(mine[1], CPH_REQUEST_ID_LEN));
}

static const char *extra_header(fixture_t *f, const char *name)
{
    for (size_t i = 0; i != f->r.res_extra.size; ++i)
        if (h2o_memis(f->r.res_extra.entries[i].name->base, f->r.res_extra.entries[i].name->len, name, strlen(name)))
            return h2o_strdup(&f->req.pool, f->r.res_extra.entries[i].value.base, f->r.res_extra.entries[i].value.len).base;
    return NULL;
}

#define PARENT "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void test_trace_context_is_propagated_with_a_new_span(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, "/a");
    fx_add(&f, "traceparent", PARENT);
    fx_add(&f, "tracestate", "congo=t61rcWkgMzE");
    fx_add(&f, "accept", "*/*");
    fx_add(&f, "tracestate", "rojo=00f067aa0ba902b7");
    fx_add(&f, "x-request-id", "client-chosen-1");
    assert_int_equal(cph_sanitize_on_req(&f.r), CPH_NEXT);
    assert_int_equal(f.req.headers.size, 1); /* only accept is left: the proxy writes the gateway's own */
    assert_int_equal(f.r.traceparent.len, CPH_TRACEPARENT_LEN);
    assert_memory_equal(f.r.traceparent.base, PARENT, 36);                       /* version and trace id kept */
    assert_memory_not_equal(f.r.traceparent.base + 36, PARENT + 36, 16);         /* the gateway's span */
    assert_memory_equal(f.r.traceparent.base + 52, "-01", 3);                    /* the flags kept */
    assert_true(h2o_memis(f.r.tracestate.base, f.r.tracestate.len, H2O_STRLIT("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")));
    assert_hex_id(f.r.request_id); /* not trusted by default: ours */
    assert_string_equal(extra_header(&f, "x-request-id"), h2o_strdup(&f.req.pool, f.r.request_id.base, f.r.request_id.len).base);
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_bad_traceparent_starts_a_new_trace(void **state)
{
    static const char *const bad[] = {
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* upper case */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version ff */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero parent */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* version 00 with more */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "",
    };
    (void)state;

    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]) + 1; ++i) {
        fixture_t f;
        fx_init(&f, "/a");
        if (i < sizeof(bad) / sizeof(bad[0])) {
            fx_add(&f, "traceparent", bad[i]);
        } else { /* a repeated traceparent is invalid even when each copy parses */
            fx_add(&f, "traceparent", PARENT);
            fx_add(&f, "traceparent", PARENT);
        }
        fx_add(&f, "tracestate", "congo=t61rcWkgMzE");
        assert_int_equal(cph_sanitize_on_req(&f.r), CPH_NEXT);
        assert_int_equal(f.req.headers.size, 0);
        assert_int_equal(f.r.traceparent.len, CPH_TRACEPARENT_LEN);
        char tid[CPH_TRACE_ID_HEX], flags[2];
        assert_int_equal(cph_trace_parse(f.r.traceparent.base, f.r.traceparent.len, tid, flags), 0);
        assert_memory_not_equal(tid, PARENT + 3, CPH_TRACE_ID_HEX);
        assert_memory_equal(tid, f.r.request_id.base, CPH_TRACE_ID_HEX); /* a new trace is named by our request id */
        assert_memory_equal(flags, "00", 2);
        assert_int_equal(f.r.tracestate.len, 0); /* a tracestate without a valid parent is not forwarded */
        h2o_mem_clear_pool(&f.req.pool);
    }
}

static void test_incoming_request_id_only_when_trusted_and_valid(void **state)
{
    (void)state;
    cph_edge_t edge = {.trust_request_id = 1};
    char long_id[CPH_REQUEST_ID_MAX + 2];
    const struct {
        const char *value;
        int adopted;
    } cases[] = {{"0b7a2c4e-9d1f-4c55-8f0e-2f6c1b7d9a10", 1}, {"req:abc+/=_.@-1", 1}, {"has space", 0}, {"a\"b", 0},
                 {"x\x7f", 0}, {"", 0}, {long_id, 0}};

    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        fixture_t f;
        fx_init(&f, "/a");
        f.snap.edge = &edge;
        fx_add(&f, "x-request-id", cases[i].value);
        assert_int_equal(cph_sanitize_on_req(&f.r), CPH_NEXT);
        if (cases[i].adopted)
            assert_true(h2o_memis(f.r.request_id.base, f.r.request_id.len, cases[i].value, strlen(cases[i].value)));
        else
            assert_hex_id(f.r.request_id);
        h2o_mem_clear_pool(&f.req.pool);
    }
    /* the same valid id without trust is replaced */
    fixture_t f;
    fx_init(&f, "/a");
    fx_add(&f, "x-request-id", "0b7a2c4e-9d1f-4c55-8f0e-2f6c1b7d9a10");
    assert_int_equal(cph_sanitize_on_req(&f.r), CPH_NEXT);
    assert_hex_id(f.r.request_id);
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_empty_name_from_obs_fold_is_400_and_closes(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, "/a");
    f.req.http1_is_persistent = 1;
    fx_add(&f, "x-a", "one");
    h2o_add_header_by_str(&f.req.pool, &f.req.headers, NULL, 0, 0, NULL, H2O_STRLIT("two")); /* what h2o makes of " two" */
    assert_int_equal(cph_sanitize_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 400);
    assert_non_null(strstr(sent_body, "\"bad_header\""));
    assert_int_equal(f.req.http1_is_persistent, 0);
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_snapshot_prefix_is_used(void **state)
{
    (void)state;
    fixture_t f;
    cph_auth_t auth;

    memset(&auth, 0, sizeof(auth));
    auth.settings.header_prefix = h2o_iovec_init(H2O_STRLIT("x-gw-"));
    fx_init(&f, "/p");
    f.snap.auth = &auth;
    fx_add(&f, "X-Gw-User-Id", "1");
    fx_add(&f, "x-cephalo-user-id", "kept: not our prefix here");
    assert_int_equal(cph_sanitize_on_req(&f.r), CPH_NEXT);
    assert_int_equal(f.req.headers.size, 1);
    assert_true(
        h2o_memis(f.req.headers.entries[0].name->base, f.req.headers.entries[0].name->len, H2O_STRLIT("x-cephalo-user-id")));
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_prefix_match_reads_underscore_as_dash(void **state)
{
    (void)state;
    h2o_iovec_t p = h2o_iovec_init(H2O_STRLIT("x-cephalo-"));
    h2o_iovec_t custom = h2o_iovec_init(H2O_STRLIT("x-gw-"));

    assert_true(cph_proxy_has_prefix(H2O_STRLIT("X_Cephalo_Roles"), p));
    assert_true(cph_proxy_has_prefix(H2O_STRLIT("x-cephalo-"), p));
    assert_true(cph_proxy_has_prefix(H2O_STRLIT("X-CEPHALO_system"), p));
    assert_false(cph_proxy_has_prefix(H2O_STRLIT("x-cephalo"), p));
    assert_false(cph_proxy_has_prefix(H2O_STRLIT("x-cephalob"), p));
    assert_false(cph_proxy_has_prefix(H2O_STRLIT("y-cephalo-a"), p));
    assert_true(cph_proxy_has_prefix(H2O_STRLIT("X_GW_user-id"), custom));
    assert_false(cph_proxy_has_prefix(H2O_STRLIT("x-cephalo-user-id"), custom));
    cph_snapshot_t snap;
    memset(&snap, 0, sizeof(snap)); /* no compiled auth settings: the default prefix */
    assert_true(h2o_memis(cph_proxy_header_prefix(&snap).base, cph_proxy_header_prefix(&snap).len,
                          H2O_STRLIT(CPH_AUTH_DEFAULT_HEADER_PREFIX)));
}

static void test_error_body_escapes_and_adds_request_id(void **state)
{
    (void)state;
    h2o_mem_pool_t pool;
    h2o_iovec_t b;

    h2o_mem_init_pool(&pool);
    b = cph_respond_error_body(&pool, "c\"1", "a\\b\n", h2o_iovec_init(NULL, 0));
    assert_true(h2o_memis(b.base, b.len, H2O_STRLIT("{\"error\":\"c\\\"1\",\"message\":\"a\\\\b\\u000a\"}\n")));
    b = cph_respond_error_body(&pool, "x", "y", h2o_iovec_init(H2O_STRLIT("00ff")));
    assert_true(h2o_memis(b.base, b.len, H2O_STRLIT("{\"error\":\"x\",\"message\":\"y\",\"request_id\":\"00ff\"}\n")));
    h2o_mem_clear_pool(&pool);
}

static void test_401_has_both_challenges(void **state)
{
    (void)state;
    fixture_t f;
    const char *want[2][2] = {{"Bearer realm=\"cephalo\", error=\"invalid_token\"", "ApiKey realm=\"cephalo\""},
                              {"Bearer realm=\"cephalo\"", "ApiKey realm=\"cephalo\""}};

    for (int k = 0; k != 2; ++k) {
        size_t found = 0;
        fx_init(&f, "/p");
        f.r.request_id = h2o_iovec_init(H2O_STRLIT("0123456789abcdef0123456789abcdef"));
        cph_respond_401(&f.r, "invalid_token", "The credential is not valid", k == 0 ? "invalid_token" : NULL);
        assert_int_equal(sent_status, 401);
        assert_non_null(strstr(sent_body, "\"request_id\":\"0123456789abcdef0123456789abcdef\""));
        for (size_t i = 0; i != f.req.res.headers.size; ++i) {
            const h2o_header_t *h = &f.req.res.headers.entries[i];
            if (h->name != &H2O_TOKEN_WWW_AUTHENTICATE->buf)
                continue;
            assert_true(found < 2);
            assert_true(h2o_memis(h->value.base, h->value.len, want[k][found], strlen(want[k][found])));
            ++found;
        }
        assert_int_equal(found, 2);
        h2o_mem_clear_pool(&f.req.pool);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_request_passes_with_id_and_canonical_path),
        cmocka_unit_test(test_spoofed_identity_headers_are_removed),
        cmocka_unit_test(test_underscore_in_name_is_400),
        cmocka_unit_test(test_header_caps_are_431_just_above_the_limits),
        cmocka_unit_test(test_total_cap_is_exact),
        cmocka_unit_test(test_bad_path_carries_request_id),
        cmocka_unit_test(test_request_ids_are_unique_per_thread_and_across),
        cmocka_unit_test(test_trace_context_is_propagated_with_a_new_span),
        cmocka_unit_test(test_bad_traceparent_starts_a_new_trace),
        cmocka_unit_test(test_incoming_request_id_only_when_trusted_and_valid),
        cmocka_unit_test(test_empty_name_from_obs_fold_is_400_and_closes),
        cmocka_unit_test(test_snapshot_prefix_is_used),
        cmocka_unit_test(test_prefix_match_reads_underscore_as_dash),
        cmocka_unit_test(test_error_body_escapes_and_adds_request_id),
        cmocka_unit_test(test_401_has_both_challenges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
