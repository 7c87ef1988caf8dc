/*
 * balance_maglev_test: compile/proxy.c's service policies (the contract's defaults when absent, every member read,
 * a bad value refused with its JSON pointer) and the Maglev table it builds, used through cph_balance_pick: the
 * table size is a prime >= 100 x targets, the same key always lands on the same target (on two workers), removing
 * one of ten targets moves little more than the tenth of the keys it owned, slot shares follow the weights, and a
 * key whose target is out lands on one fixed substitute.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/compile/compile.h"
#include "dataplane/core/balance.h"

#define NUM_KEYS 20000

static cph_snapshot_t *compile(const char *text, cph_error_t *err)
{
    json_error_t jerr;
    json_t *body = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    cph_snapshot_t *snap = calloc(1, sizeof(*snap));

    if (body == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    cph_arena_init(&snap->arena);
    if (cph_proxy_compile(snap, body, err) != 0) {
        cph_arena_dispose(&snap->arena);
        free(snap);
        snap = NULL;
    }
    json_decref(body);
    return snap;
}

static void dispose(cph_snapshot_t *snap)
{
    cph_arena_dispose(&snap->arena);
    free(snap);
}

/* A body with one service `name` of targets 10.0.0.1:8001.. (weights from w or 1) and the given policies. */
static cph_snapshot_t *hash_service(const char *name, size_t n, const uint32_t *w, size_t skip)
{
    char text[8192];
    size_t len = (size_t)snprintf(text, sizeof(text), "{\"services\":[{\"name\":\"%s\",\"targets\":[", name);
    cph_error_t err;

    for (size_t i = 0, first = 1; i != n; ++i) {
        if (i == skip)
            continue;
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s{\"url\":\"http://10.0.0.1:%zu\",\"weight\":%u}",
                                first ? "" : ",", 8001 + i, w != NULL ? w[i] : 1);
        first = 0;
    }
    snprintf(text + len, sizeof(text) - len, "],\"policies\":{\"lb\":{\"policy\":\"consistent_hash\",\"hash_on\":\"ip\"}}}]}");
    cph_snapshot_t *snap = compile(text, &err);
    if (snap == NULL)
        fail_msg("compile: %s at %s", err.msg, err.path);
    return snap;
}

static const char *target_of(cph_balance_worker_t *bw, const cph_service_t *svc, uint64_t hash, uint64_t now)
{
    cph_pick_t p;

    if (cph_balance_pick(bw, svc, hash, NULL, now, &p) != 0)
        return NULL;
    cph_balance_end(svc, &p, CPH_OUTCOME_ABANDONED, now);
    return p.target->url;
}

static uint64_t key_hash(size_t k)
{
    char key[32];
    int len = snprintf(key, sizeof(key), "192.0.2.%zu:%zu", k % 256, k / 256);
    return cph_balance_hash(key, (size_t)len);
}

/* ---------------------------------------------------------------- compile */

static void test_defaults(void **state)
{
    (void)state;
    cph_error_t err;
    cph_snapshot_t *snap = compile("{\"services\":[{\"name\":\"d1\",\"targets\":[{\"url\":\"http://a:1\"}]},"
                                   "{\"name\":\"d2\",\"targets\":[],\"policies\":{}}]}",
                                   &err);

    assert_non_null(snap);
    for (size_t i = 0; i != 2; ++i) {
        const cph_service_t *s = &snap->services[i];
        assert_int_equal(s->lb, CPH_LB_ROUND_ROBIN);
        assert_null(s->maglev);
        assert_int_equal(s->outlier_consecutive_failures, 5);
        assert_int_equal(s->outlier_base_ejection_ms, 30000);
        assert_int_equal(s->outlier_max_ejection_ms, 300000);
        assert_int_equal(s->outlier_max_ejection_percent, 50);
        assert_int_equal(s->max_requests, 1024);
        assert_int_equal(s->max_pending, 1024);
        assert_null(s->health_check);
        assert_non_null(s->state);
    }
    assert_non_null(snap->services[0].targets[0].state);
    dispose(snap);
}

static void test_every_member(void **state)
{
    (void)state;
    cph_error_t err;
    cph_snapshot_t *snap = compile(
        "{\"services\":[{\"name\":\"m1\",\"targets\":[{\"url\":\"http://a:1\"},{\"url\":\"http://b:2\",\"weight\":3}],"
        "\"policies\":{\"lb\":{\"policy\":\"consistent_hash\",\"hash_on\":\"header:x-user\"},"
        "\"health_check\":{\"path\":\"/healthz\",\"interval_ms\":2000,\"timeout_ms\":500,\"healthy_threshold\":1,"
        "\"unhealthy_threshold\":4,\"expected_statuses\":[200,204]},"
        "\"outlier\":{\"consecutive_failures\":0,\"base_ejection_ms\":100,\"max_ejection_ms\":1000,\"max_ejection_percent\":10},"
        "\"limits\":{\"max_requests\":7,\"max_pending\":3}}},"
        "{\"name\":\"m2\",\"targets\":[{\"url\":\"http://a:1\"}],\"policies\":{\"lb\":{\"policy\":\"least_conn\"},"
        "\"health_check\":{\"path\":\"/\"}}},"
        "{\"name\":\"m3\",\"targets\":[{\"url\":\"http://a:1\"}],\"policies\":{\"lb\":{\"policy\":\"random\",\"hash_on\":null},"
        "\"health_check\":null}}]}",
        &err);

    assert_non_null(snap);
    const cph_service_t *s = &snap->services[0];
    assert_int_equal(s->lb, CPH_LB_CONSISTENT_HASH);
    assert_int_equal(s->hash_on, CPH_HASH_ON_HEADER);
    assert_string_equal(s->hash_header.base, "x-user");
    assert_int_equal(s->maglev_size, 251);
    assert_non_null(s->maglev);
    assert_string_equal(s->health_check->path, "/healthz");
    assert_int_equal(s->health_check->interval_ms, 2000);
    assert_int_equal(s->health_check->timeout_ms, 500);
    assert_int_equal(s->health_check->healthy_threshold, 1);
    assert_int_equal(s->health_check->unhealthy_threshold, 4);
    assert_int_equal(s->health_check->num_expected_statuses, 2);
    assert_int_equal(s->health_check->expected_statuses[1], 204);
    assert_int_equal(s->outlier_consecutive_failures, 0);
    assert_int_equal(s->outlier_base_ejection_ms, 100);
    assert_int_equal(s->outlier_max_ejection_ms, 1000);
    assert_int_equal(s->outlier_max_ejection_percent, 10);
    assert_int_equal(s->max_requests, 7);
    assert_int_equal(s->max_pending, 3);
    s = &snap->services[1];
    assert_int_equal(s->lb, CPH_LB_LEAST_CONN);
    assert_int_equal(s->health_check->interval_ms, 5000);
    assert_int_equal(s->health_check->timeout_ms, 1000);
    assert_int_equal(s->health_check->healthy_threshold, 2);
    assert_int_equal(s->health_check->unhealthy_threshold, 3);
    assert_int_equal(s->health_check->num_expected_statuses, 1);
    assert_int_equal(s->health_check->expected_statuses[0], 200);
    assert_int_equal(snap->services[2].lb, CPH_LB_RANDOM);
    assert_null(snap->services[2].health_check);
    dispose(snap);
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *policies, *path;
    } cases[] = {
        {"[]", "/services/0/policies"},
        {"{\"lb\":{\"policy\":\"fastest\"}}", "/services/0/policies/lb/policy"},
        {"{\"lb\":{\"policy\":\"consistent_hash\"}}", "/services/0/policies/lb/hash_on"},
        {"{\"lb\":{\"policy\":\"consistent_hash\",\"hash_on\":\"header:X-Up\"}}", "/services/0/policies/lb/hash_on"},
        {"{\"lb\":{\"policy\":\"round_robin\",\"hash_on\":\"ip\"}}", "/services/0/policies/lb/hash_on"},
        {"{\"lb\":5}", "/services/0/policies/lb"},
        {"{\"outlier\":{\"consecutive_failures\":1001}}", "/services/0/policies/outlier/consecutive_failures"},
        {"{\"outlier\":{\"base_ejection_ms\":5000,\"max_ejection_ms\":4000}}", "/services/0/policies/outlier/max_ejection_ms"},
        {"{\"outlier\":{\"max_ejection_percent\":101}}", "/services/0/policies/outlier/max_ejection_percent"},
        {"{\"limits\":{\"max_requests\":0}}", "/services/0/policies/limits/max_requests"},
        {"{\"limits\":{\"max_pending\":\"9\"}}", "/services/0/policies/limits/max_pending"},
        {"{\"health_check\":{\"path\":\"no-slash\"}}", "/services/0/policies/health_check/path"},
        {"{\"health_check\":{\"path\":\"/a b\"}}", "/services/0/policies/health_check/path"},
        {"{\"health_check\":{\"path\":\"/\",\"interval_ms\":1000,\"timeout_ms\":1000}}",
         "/services/0/policies/health_check/timeout_ms"},
        {"{\"health_check\":{\"path\":\"/\",\"expected_statuses\":[200,200]}}",
         "/services/0/policies/health_check/expected_statuses"},
        {"{\"health_check\":{\"path\":\"/\",\"expected_statuses\":[]}}", "/services/0/policies/health_check/expected_statuses"},
        {"{\"health_check\":{\"path\":\"/\",\"expected_statuses\":[600]}}", "/services/0/policies/health_check/expected_statuses"},
    };
    char text[1024];

    for (size_t k = 0; k != sizeof(cases) / sizeof(cases[0]); ++k) {
        cph_error_t err;
        snprintf(text, sizeof(text), "{\"services\":[{\"name\":\"r\",\"targets\":[{\"url\":\"http://a:1\"}],\"policies\":%s}]}",
                 cases[k].policies);
        assert_null(compile(text, &err));
        assert_string_equal(err.path, cases[k].path);
        assert_string_equal(err.code, "invalid");
    }
}

/* ---------------------------------------------------------------- Maglev */

static void test_table_and_stability(void **state)
{
    (void)state;
    cph_snapshot_t *a = hash_service("h1", 10, NULL, SIZE_MAX), *b = hash_service("h1", 10, NULL, SIZE_MAX);
    cph_balance_worker_t *w1 = cph_balance_worker_new(), *w2 = cph_balance_worker_new();
    const cph_service_t *sa = &a->services[0], *sb = &b->services[0];

    assert_int_equal(sa->maglev_size, 1021);
    assert_memory_equal(sa->maglev, sb->maglev, sizeof(uint32_t) * sa->maglev_size); /* same config, same table */
    for (size_t k = 0; k != 2000; ++k) {
        const char *t = target_of(w1, sa, key_hash(k), 1);
        assert_non_null(t);
        assert_string_equal(t, target_of(w2, sa, key_hash(k), 1));
        assert_string_equal(t, target_of(w1, sb, key_hash(k), 1));
    }
    /* every target owns about a tenth of the slots */
    size_t counts[10] = {0};
    for (size_t s = 0; s != sa->maglev_size; ++s)
        counts[sa->maglev[s]]++;
    for (size_t i = 0; i != 10; ++i)
        assert_in_range(counts[i], 100, 105);
    cph_balance_worker_free(w1);
    cph_balance_worker_free(w2);
    dispose(a);
    dispose(b);
}

static void test_removal_moves_few(void **state)
{
    (void)state;
    cph_snapshot_t *all = hash_service("h2", 10, NULL, SIZE_MAX), *less = hash_service("h2", 10, NULL, 3);
    cph_balance_worker_t *bw = cph_balance_worker_new();
    size_t owned = 0, moved = 0;

    for (size_t k = 0; k != NUM_KEYS; ++k) {
        const char *before = target_of(bw, &all->services[0], key_hash(k), 1);
        const char *after = target_of(bw, &less->services[0], key_hash(k), 1);
        if (strcmp(before, "http://10.0.0.1:8004") == 0)
            ++owned;
        else if (strcmp(before, after) != 0)
            ++moved;
    }
    print_message("removed target owned %zu of %d keys; %zu others moved\n", owned, NUM_KEYS, moved);
    assert_in_range(owned, NUM_KEYS / 10 - 400, NUM_KEYS / 10 + 400);
    assert_true(moved < NUM_KEYS / 25); /* Maglev's extra disruption: a few percent (measured 2.9%) */
    cph_balance_worker_free(bw);
    dispose(all);
    dispose(less);
}

static void test_weights_skew_slots(void **state)
{
    (void)state;
    static const uint32_t w[] = {3, 1, 1, 5};
    cph_snapshot_t *snap = hash_service("h3", 4, w, SIZE_MAX);
    const cph_service_t *s = &snap->services[0];
    size_t counts[4] = {0};

    assert_int_equal(s->maglev_size, 509);
    for (size_t k = 0; k != s->maglev_size; ++k)
        counts[s->maglev[k]]++;
    for (size_t i = 0; i != 4; ++i) {
        size_t expect = s->maglev_size * w[i] / 10;
        assert_in_range(counts[i], expect - 3, expect + 3);
    }
    dispose(snap);
}

static void test_out_target_has_fixed_substitute(void **state)
{
    (void)state;
    cph_snapshot_t *snap = hash_service("h4", 5, NULL, SIZE_MAX);
    cph_service_t *s = &snap->services[0];
    cph_balance_worker_t *bw = cph_balance_worker_new();
    uint64_t now = 1000000000ull;
    size_t checked = 0;

    /* eject target 0 (5 failures; 1 of 5 is within 50%) */
    for (int k = 0; k != 5; ++k) {
        cph_pick_t p = {&s->targets[0], 0};
        atomic_fetch_add(&s->targets[0].state->active, 1);
        cph_balance_end(s, &p, CPH_OUTCOME_CONNECT_FAILURE, now);
    }
    assert_int_equal(cph_balance_breaker_state(s->targets[0].state, now), CPH_BREAKER_OPEN);
    for (size_t k = 0; k != NUM_KEYS; ++k) {
        uint64_t h = key_hash(k);
        if (s->maglev[h % s->maglev_size] != 0)
            continue;
        const char *first = target_of(bw, s, h, now);
        assert_non_null(first);
        assert_string_not_equal(first, s->targets[0].url);
        for (int r = 0; r != 3; ++r)
            assert_string_equal(first, target_of(bw, s, h, now));
        ++checked;
    }
    assert_true(checked > NUM_KEYS / 10);
    /* a retry (owner in `tried`) also walks the table to one fixed substitute */
    for (size_t k = 0; k != 100; ++k) {
        uint64_t h = key_hash(k), tried[1] = {0};
        cph_pick_t p, q;
        uint32_t owner = s->maglev[h % s->maglev_size];
        if (owner == 0)
            continue;
        tried[0] = 1ull << owner;
        assert_int_equal(cph_balance_pick(bw, s, h, tried, now, &p), 0);
        cph_balance_end(s, &p, CPH_OUTCOME_ABANDONED, now);
        assert_int_not_equal(p.target->index, owner);
        assert_int_not_equal(p.target->index, 0);
        assert_int_equal(cph_balance_pick(bw, s, h, tried, now, &q), 0);
        cph_balance_end(s, &q, CPH_OUTCOME_ABANDONED, now);
        assert_ptr_equal(p.target, q.target);
    }
    cph_balance_worker_free(bw);
    dispose(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_member),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_table_and_stability),
        cmocka_unit_test(test_removal_moves_few),
        cmocka_unit_test(test_weights_skew_slots),
        cmocka_unit_test(test_out_target_has_fixed_substitute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
