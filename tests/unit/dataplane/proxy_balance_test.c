/*
 * proxy_balance_test: the proxy's side of the balancer without a socket. compile/upstream.c turns a route's
 * policies.timeouts and policies.retries into the route fields (defaults from the service, the built-in auth route
 * included); cph_proxy_retryable follows docs/dataplane.md "Timeouts and retries" (idempotent methods only, never a first-byte timeout, a listed
 * status only, at most retry_max); cph_proxy_hash_key keys on the address, the principal (user and API key kept apart)
 * or a header, falling back to the address; and every pick is ended exactly once (the in-flight count of the target
 * returns to zero whatever path the request took).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include "dataplane/compile/router.h"
#include "dataplane/core/pipeline.h"
#include "dataplane/filter/proxy_balance.h"

static const char *peer_ip = "10.1.2.3";

static socklen_t get_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    struct sockaddr_in *sin = (void *)sa;
    struct sockaddr_in6 *sin6 = (void *)sa;

    (void)conn;
    if (strchr(peer_ip, ':') != NULL) {
        memset(sin6, 0, sizeof(*sin6));
        sin6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, peer_ip, &sin6->sin6_addr), 1);
        return sizeof(*sin6);
    }
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, peer_ip, &sin->sin_addr), 1);
    return sizeof(*sin);
}

static const h2o_conn_callbacks_t callbacks = {.get_peername = get_peername};

static cph_snapshot_t *build(const char *text, cph_error_t *err)
{
    char hash[CPH_HASH_SIZE] = "";
    json_t *body = json_loads(text, 0, NULL);
    cph_snapshot_t *s;

    assert_non_null(body);
    cph_snapshot_hash(body, hash);
    s = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", err);
    json_decref(body);
    return s;
}

#define SERVICE "{\"name\":\"s\",\"targets\":[{\"url\":\"http://127.0.0.1:9001\"}],\"timeout_ms\":3000}"
#define ROUTE(name, policies)                                                                                                      \
    "{\"name\":\"" name "\",\"service\":\"s\",\"paths\":[\"/" name "\"],\"default_access\":\"public\",\"policies\":" policies "}"

static void test_compile_defaults_and_values(void **state)
{
    cph_error_t err;
    cph_snapshot_t *s = build("{\"services\":[" SERVICE "],\"routes\":[" ROUTE("a", "{}") "," ROUTE(
                                  "b", "{\"timeouts\":{\"connect_ms\":250,\"first_byte_ms\":700,\"idle_ms\":900,\"total_"
                                       "ms\":5000},"
                                       "\"retries\":{\"max\":3,\"statuses\":[502,503],\"budget_percent\":50,\"min_"
                                       "concurrent\":7}}") "," ROUTE("c", "{\"timeouts\":{\"idle_ms\":42},\"retries\":{\"max\":"
                                                                          "0}}") "],"
                                                                                 "\"auth\":{\"api\":\"http://127.0.0.1:9999\"}}",
                              &err);
    (void)state;
    if (s == NULL)
        fail_msg("%s at %s: %s", err.code, err.path, err.msg);
    const cph_route_t *a = &s->routes[0], *b = &s->routes[1], *c = &s->routes[2];
    assert_int_equal(a->connect_timeout_ms, 5000);
    assert_int_equal(a->first_byte_timeout_ms, 3000); /* the service's timeout_ms */
    assert_int_equal(a->idle_timeout_ms, 3000);
    assert_int_equal(a->total_timeout_ms, 0);
    assert_int_equal(a->retry_max, 1);
    assert_int_equal(a->num_retry_statuses, 0);
    assert_int_equal(a->retry_budget_percent, 20);
    assert_int_equal(a->retry_min_concurrent, 3);
    assert_int_equal(b->connect_timeout_ms, 250);
    assert_int_equal(b->first_byte_timeout_ms, 700);
    assert_int_equal(b->idle_timeout_ms, 900);
    assert_int_equal(b->total_timeout_ms, 5000);
    assert_int_equal(b->retry_max, 3);
    assert_int_equal(b->num_retry_statuses, 2);
    assert_int_equal(b->retry_statuses[0], 502);
    assert_int_equal(b->retry_statuses[1], 503);
    assert_int_equal(b->retry_budget_percent, 50);
    assert_int_equal(b->retry_min_concurrent, 7);
    assert_int_equal(c->idle_timeout_ms, 42);
    assert_int_equal(c->first_byte_timeout_ms, 3000); /* members not given keep the defaults */
    assert_int_equal(c->retry_max, 0);
    assert_non_null(s->auth_api_route);
    assert_int_equal(s->auth_api_route->first_byte_timeout_ms, 10000); /* the built-in service's 10 s */
    assert_int_equal(s->auth_api_route->connect_timeout_ms, 5000);
    cph_snapshot_release(s);
}

static void test_compile_refuses_out_of_range(void **state)
{
    static const struct {
        const char *policies, *path;
    } cases[] = {
        {"{\"timeouts\":{\"connect_ms\":0}}", "/routes/0/policies/timeouts/connect_ms"},
        {"{\"timeouts\":{\"total_ms\":86400001}}", "/routes/0/policies/timeouts/total_ms"},
        {"{\"retries\":{\"max\":6}}", "/routes/0/policies/retries/max"},
        {"{\"retries\":{\"statuses\":[404]}}", "/routes/0/policies/retries/statuses/0"},
        {"{\"retries\":{\"statuses\":[502,502]}}", "/routes/0/policies/retries/statuses/1"},
    };
    (void)state;
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        char text[1024];
        cph_error_t err;
        memset(&err, 0, sizeof(err));
        snprintf(text, sizeof(text),
                 "{\"services\":[" SERVICE "],\"routes\":[{\"name\":\"a\",\"service\":\"s\",\"paths\":[\"/a\"],"
                 "\"default_access\":\"public\",\"policies\":%s}]}",
                 cases[i].policies);
        cph_snapshot_t *s = build(text, &err);
        if (s != NULL)
            fail_msg("accepted %s", cases[i].policies);
        /* the validator or compile/upstream.c: either way the pointer names the member */
        if (strncmp(err.path, cases[i].path, strlen("/routes/0/policies/")) != 0)
            fail_msg("%s: error at %s, want under %s", cases[i].policies, err.path, cases[i].path);
    }
}

/* ---------------------------------------------------------------- requests by hand */

typedef struct st_fixture_t {
    h2o_conn_t conn;
    h2o_req_t req;
    cph_req_t r;
    cph_worker_t worker;
    cph_service_t svc;
    cph_target_t targets[3];
    cph_route_t route;
    uint16_t statuses[2];
} fixture_t;

static void fx_init(fixture_t *f, const char *method)
{
    memset(f, 0, sizeof(*f));
    f->conn.callbacks = &callbacks;
    h2o_mem_init_pool(&f->req.pool);
    f->req.conn = &f->conn;
    f->req.input.method = h2o_iovec_init(method, strlen(method));
    f->svc.name = "fx";
    f->svc.targets = f->targets;
    f->svc.num_targets = 3;
    f->svc.max_requests = f->svc.max_pending = 1024;
    f->svc.state = cph_service_state_get("proxy_balance_test");
    for (size_t i = 0; i != 3; ++i) {
        char auth[32];
        snprintf(auth, sizeof(auth), "127.0.0.1:%zu", 9100 + i);
        f->targets[i].index = (uint32_t)i;
        f->targets[i].weight = 1;
        f->targets[i].state = cph_target_state_get("proxy_balance_test", auth);
    }
    f->statuses[0] = 502;
    f->statuses[1] = 503;
    f->route.service = &f->svc;
    f->route.retry_max = 2;
    f->route.retry_statuses = f->statuses;
    f->route.num_retry_statuses = 2;
    f->route.retry_budget_percent = 100;
    f->route.retry_min_concurrent = 100;
    f->worker.balance = cph_balance_worker_new();
    f->r.req = &f->req;
    f->r.route = &f->route;
    f->r.worker = &f->worker;
}

static void fx_dispose(fixture_t *f)
{
    cph_balance_worker_free(f->worker.balance);
    h2o_mem_clear_pool(&f->req.pool);
}

static void test_retryable_rules(void **state)
{
    static const char *idempotent[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
    fixture_t f;
    cph_proxy_attempts_t a;
    (void)state;

    for (size_t i = 0; i != sizeof(idempotent) / sizeof(idempotent[0]); ++i) {
        fx_init(&f, idempotent[i]);
        memset(&a, 0, sizeof(a));
        a.picked = 1;
        assert_true(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_CONNECT_FAILURE, 0));
        assert_true(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_RESET, 0));
        assert_true(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_5XX, 503));
        assert_false(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_5XX, 500));   /* not listed */
        assert_false(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_TIMEOUT, 0)); /* first byte */
        a.connecting = 1;
        assert_true(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_TIMEOUT, 0)); /* connect */
        a.connecting = 0;
        assert_false(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_ABANDONED, 0));
        assert_false(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_SUCCESS, 0));
        a.retries = 2; /* retry_max */
        assert_false(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_CONNECT_FAILURE, 0));
        fx_dispose(&f);
    }
    static const char *never[] = {"POST", "PATCH", "CONNECT", "PURGE"};
    for (size_t i = 0; i != sizeof(never) / sizeof(never[0]); ++i) {
        fx_init(&f, never[i]);
        memset(&a, 0, sizeof(a));
        a.picked = 1;
        a.connecting = 1;
        assert_false(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_CONNECT_FAILURE, 0));
        assert_false(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_RESET, 0));
        assert_false(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_5XX, 502));
        assert_false(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_TIMEOUT, 0));
        fx_dispose(&f);
    }
    fx_init(&f, "GET");
    memset(&a, 0, sizeof(a));
    f.route.retry_max = 0;
    a.picked = 1;
    assert_false(cph_proxy_retryable(&f.r, &a, CPH_OUTCOME_CONNECT_FAILURE, 0));
    fx_dispose(&f);
}

static uint64_t key_of(fixture_t *f, const char *ip)
{
    peer_ip = ip;
    return cph_proxy_hash_key(&f->r);
}

static void test_hash_key(void **state)
{
    fixture_t f;
    (void)state;

    fx_init(&f, "GET");
    assert_int_equal(key_of(&f, "10.0.0.1"), 0); /* round robin: nothing hashed */
    f.svc.lb = CPH_LB_CONSISTENT_HASH;
    f.svc.hash_on = CPH_HASH_ON_IP;
    assert_int_equal(key_of(&f, "10.0.0.1"), key_of(&f, "10.0.0.1"));
    assert_int_not_equal(key_of(&f, "10.0.0.1"), key_of(&f, "10.0.0.2"));
    uint64_t ip1 = key_of(&f, "10.0.0.1");
    /* as rate limits count clients: a mapped IPv4 address is the address, an IPv6 client is its /64 */
    assert_int_equal(key_of(&f, "::ffff:10.0.0.1"), ip1);
    assert_int_equal(key_of(&f, "2001:db8:0:7::1"), key_of(&f, "2001:db8:0:7:a:b:c:d"));
    assert_int_not_equal(key_of(&f, "2001:db8:0:7::1"), key_of(&f, "2001:db8:0:8::1"));

    f.svc.hash_on = CPH_HASH_ON_HEADER;
    f.svc.hash_header = h2o_iovec_init(H2O_STRLIT("x-tenant"));
    assert_int_equal(key_of(&f, "10.0.0.1"), ip1); /* header absent: the address */
    h2o_add_header_by_str(&f.req.pool, &f.req.headers, H2O_STRLIT("x-tenant"), 1, NULL, H2O_STRLIT("acme"));
    uint64_t acme = key_of(&f, "10.0.0.1");
    assert_int_not_equal(acme, ip1);
    assert_int_equal(key_of(&f, "10.0.0.2"), acme); /* the header wins over the address */

    f.svc.hash_on = CPH_HASH_ON_PRINCIPAL;
    assert_int_equal(key_of(&f, "10.0.0.1"), ip1); /* anonymous: the address */
    f.r.principal.kind = CPH_PRINCIPAL_USER;
    f.r.principal.id = h2o_iovec_init(H2O_STRLIT("42"));
    uint64_t user = key_of(&f, "10.0.0.1");
    assert_int_equal(key_of(&f, "10.0.0.2"), user);
    f.r.principal.kind = CPH_PRINCIPAL_API_KEY;
    assert_int_not_equal(key_of(&f, "10.0.0.1"), user); /* key 42 is not user 42 */
    peer_ip = "10.1.2.3";
    fx_dispose(&f);
}

static uint32_t active(const fixture_t *f)
{
    uint32_t n = 0;

    for (size_t i = 0; i != 3; ++i)
        n += atomic_load(&f->targets[i].state->active);
    return n;
}

/* Whatever path a request takes, the balancer's counters come back to where they were. */
static void test_every_pick_ends_once(void **state)
{
    fixture_t f;
    cph_proxy_attempts_t a;
    (void)state;

    fx_init(&f, "GET");
    uint32_t requests0 = atomic_load(&f.svc.state->active_requests), retries0 = atomic_load(&f.svc.state->active_retries);
    uint32_t pending0 = atomic_load(&f.svc.state->pending_connects);

    memset(&a, 0, sizeof(a));
    assert_int_equal(cph_balance_admit(&f.svc), 0);
    a.admitted = 1;
    assert_int_equal(cph_proxy_pick(&f.r, &a, cph_proxy_now_ns()), 0);
    assert_int_equal(active(&f), 1);
    assert_int_equal(cph_balance_connect_begin(&f.svc), 0);
    a.connecting = 1;
    const cph_target_t *first = a.pick.target;
    if (cph_proxy_retry(&f.r, &a, CPH_OUTCOME_CONNECT_FAILURE, 0, cph_proxy_now_ns()) == 0) {
        assert_ptr_not_equal(a.pick.target, first); /* never the target that failed */
        assert_int_equal(a.retries, 1);
        assert_int_equal(a.connecting, 0);
        assert_int_equal(active(&f), 1); /* the failed attempt was ended */
    }
    cph_proxy_finish(&f.svc, &a, CPH_OUTCOME_ABANDONED);
    cph_proxy_finish(&f.svc, &a, CPH_OUTCOME_ABANDONED); /* idempotent */
    assert_int_equal(active(&f), 0);
    assert_int_equal(atomic_load(&f.svc.state->active_requests), requests0);
    assert_int_equal(atomic_load(&f.svc.state->active_retries), retries0);
    assert_int_equal(atomic_load(&f.svc.state->pending_connects), pending0);

    /* a POST is never moved: the pick stays and nothing else is taken */
    fx_dispose(&f);
    fx_init(&f, "POST");
    memset(&a, 0, sizeof(a));
    assert_int_equal(cph_proxy_pick(&f.r, &a, cph_proxy_now_ns()), 0);
    first = a.pick.target;
    assert_int_equal(cph_proxy_retry(&f.r, &a, CPH_OUTCOME_CONNECT_FAILURE, 0, cph_proxy_now_ns()), -1);
    assert_ptr_equal(a.pick.target, first);
    assert_int_equal(a.picked, 1);
    cph_proxy_end_attempt(&f.svc, &a, CPH_OUTCOME_CONNECT_FAILURE, cph_proxy_now_ns());
    assert_int_equal(active(&f), 0);
    fx_dispose(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_defaults_and_values),
        cmocka_unit_test(test_compile_refuses_out_of_range),
        cmocka_unit_test(test_retryable_rules),
        cmocka_unit_test(test_hash_key),
        cmocka_unit_test(test_every_pick_ends_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
