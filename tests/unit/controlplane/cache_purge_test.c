/*
 * cache_purge_test: the control-plane side of the response cache (PROTOCOL.md sections 3 and 5, docs/admin-api.md).
 *
 * - the purge body checker: hostile bodies (not an object, unknown members, wrong types, reals, null route, a prefix
 *   not starting with '/', not canonical, with a query, NUL, 1 MB strings) refused with the code and pointer;
 * - the handler: an unknown route is 404 and leaves no audit row; a purge of a known route is 202 with the number of
 *   data planes it went to, one audit row (actor, action "purge", entity "route", the route's id, after {route,
 *   prefix}, the current version) and no version bump; another key is 404;
 * - the socket server: two data planes that said hello get the exact purge message (with "at", the control plane's
 *   time of the request), a connection without hello does not, and the count says 2; without a server the count is 0;
 * - replay: a data plane that says hello later gets the kept purges after its welcome and snapshot, oldest first, each
 *   with its own "at", never one older than 24 hours; at most the last 4096 are kept, and a replay longer than a
 *   session's queue cap goes through whole while the data plane reads;
 * - a route's "policies.cache" goes through the route store and a write (the snapshot validator accepts it), a bad
 *   one is refused at its pointer; "gateway.cache" follows the settings; --cache-max-bytes parses 0..17179869184.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "tests/unit/controlplane/db_fixture.h"
#include "controlplane/api_cache.h"
#include "controlplane/audit.h"
#include "controlplane/db.h"
#include "controlplane/dpserver.h"
#include "controlplane/settings.h"
#include "controlplane/snapbuild.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"

#define EPOCH "0123456789abcdef0123456789abcdef"
#define WAIT_MS 5000
#include "tests/unit/controlplane/dp_client.h"

static int setup(void **state)
{
    return db_fixture_setup(state, "cache-purge-test");
}

static uint64_t generation(cph_db_t *db)
{
    json_t *cur = cph_db_current_snapshot(db, 0);
    uint64_t v = cur != NULL ? (uint64_t)json_integer_value(json_object_get(cur, "version")) : 0;

    json_decref(cur);
    return v;
}

/* ---------------------------------------------------------------- the body checker */

static void body_refused(const char *text, const char *code, const char *path)
{
    json_t *body = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL); /* "[]" too */
    const char *route = NULL, *prefix = NULL;
    cph_error_t err;

    if (body == NULL)
        fail_msg("test JSON does not parse: %.120s", text);
    memset(&err, 0, sizeof(err));
    if (cph_api_cache_check_purge(body, &route, &prefix, &err) == 0)
        fail_msg("accepted %.120s", text);
    assert_error_at(&err, text, code, path);
    json_decref(body);
}

static void body_accepted(const char *text, const char *want_route, const char *want_prefix)
{
    json_t *body = parse(text);
    const char *route = NULL, *prefix = "unset";
    cph_error_t err;

    if (cph_api_cache_check_purge(body, &route, &prefix, &err) != 0)
        fail_msg("%s refused: %s at %s (%s)", text, err.code, err.path, err.msg);
    assert_string_equal(route, want_route);
    if (want_prefix == NULL)
        assert_null(prefix);
    else
        assert_string_equal(prefix, want_prefix);
    json_decref(body);
}

static void test_body(void **state)
{
    static const char *const BAD_PREFIXES[] = {
        "\"\"",          "\"img\"",  "\"img/\"",      "\"//img\"", "\"/a//b\"", "\"/a/./b\"", "\"/a/../b\"",
        "\"/a?x=1\"",    "\"/a#f\"", "\"/%7e\"",      "\"/%2F\"",  "\"/%zz\"",  "\"/a;b\"",   "\"/a\\\\b\"",
        "\"/a\\u0001\"", "\"/a b\"", "\"/a\\u0000\"", "\" /a\"",   "\"\\t/a\"",
    };
    char *big, *text;

    (void)state;
    body_accepted("{\"route\": \"orders\"}", "orders", NULL);
    body_accepted("{\"route\": \"orders\", \"prefix\": null}", "orders", NULL);
    body_accepted("{\"prefix\": \"/img/\", \"route\": \"o.r-d_1\"}", "o.r-d_1", "/img/");
    body_accepted("{\"route\": \"orders\", \"prefix\": \"/\"}", "orders", "/");
    body_accepted("{\"route\": \"orders\", \"prefix\": \"/a/b%20c/caf%C3%A9\"}", "orders", "/a/b%20c/caf%C3%A9");
    body_accepted("{\"route\": \"orders\", \"prefix\": \"/img/a\"}", "orders", "/img/a"); /* a partial segment is fine */
    /* the body */
    body_refused("[]", "invalid", "");
    body_refused("\"route\"", "invalid", "");
    body_refused("{}", "missing_field", "/route");
    body_refused("{\"prefix\": \"/a\"}", "missing_field", "/route");
    body_refused("{\"route\": \"orders\", \"all\": true}", "unknown_field", "/all");
    body_refused("{\"route\": \"orders\", \"a/b~c\": 1}", "unknown_field", "/a~1b~0c");
    body_refused("{\"zzz\": 1, \"route\": 5}", "unknown_field", "/zzz"); /* unknown members first */
    /* route */
    body_refused("{\"route\": null}", "invalid", "/route");
    body_refused("{\"route\": 7}", "invalid", "/route");
    body_refused("{\"route\": 7.5}", "invalid", "/route");
    body_refused("{\"route\": [\"orders\"]}", "invalid", "/route");
    body_refused("{\"route\": {\"name\": \"orders\"}}", "invalid", "/route");
    body_refused("{\"route\": \"\"}", "invalid", "/route");
    body_refused("{\"route\": \"a b\"}", "invalid", "/route");
    body_refused("{\"route\": \"orders/x\"}", "invalid", "/route");
    body_refused("{\"route\": \"caf\\u00e9\"}", "invalid", "/route");
    body_refused("{\"route\": \"a\\u0000b\"}", "invalid", "/route");
    body_refused("{\"route\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "invalid",
                 "/route"); /* 65 */
    body_accepted("{\"route\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL); /* 64 */
    /* prefix */
    body_refused("{\"route\": \"orders\", \"prefix\": 1}", "invalid", "/prefix");
    body_refused("{\"route\": \"orders\", \"prefix\": 1.0}", "invalid", "/prefix");
    body_refused("{\"route\": \"orders\", \"prefix\": false}", "invalid", "/prefix");
    body_refused("{\"route\": \"orders\", \"prefix\": [\"/a\"]}", "invalid", "/prefix");
    body_refused("{\"route\": \"orders\", \"prefix\": {}}", "invalid", "/prefix");
    for (size_t i = 0; i != sizeof(BAD_PREFIXES) / sizeof(BAD_PREFIXES[0]); ++i) {
        assert_true(asprintf(&text, "{\"route\": \"orders\", \"prefix\": %s}", BAD_PREFIXES[i]) > 0);
        body_refused(text, "invalid", "/prefix");
        free(text);
    }
    /* 1 MB strings: refused by length, not by exhausting anything */
    big = malloc(1024 * 1024 + 1);
    big[0] = '/';
    memset(big + 1, 'x', 1024 * 1024 - 1);
    big[1024 * 1024] = '\0';
    assert_true(asprintf(&text, "{\"route\": \"orders\", \"prefix\": \"%s\"}", big) > 0);
    body_refused(text, "invalid", "/prefix");
    free(text);
    assert_true(asprintf(&text, "{\"route\": \"%s\"}", big + 1) > 0);
    body_refused(text, "invalid", "/route");
    free(text);
    big[1024] = '\0'; /* the cap: 1024 bytes */
    assert_true(asprintf(&text, "{\"route\": \"orders\", \"prefix\": \"%s\"}", big) > 0);
    body_accepted(text, "orders", big);
    free(text);
    big[1024] = 'x', big[1025] = '\0';
    assert_true(asprintf(&text, "{\"route\": \"orders\", \"prefix\": \"%s\"}", big) > 0);
    body_refused(text, "invalid", "/prefix");
    free(text);
    free(big);
}

/* ---------------------------------------------------------------- a small data plane */

/* The next frame that is not a snapshot (caller decrefs); fails on a close or a timeout. */
static json_t *dp_next(dp_t *dp, int timeout_ms)
{
    json_t *msg = NULL;

    for (;;) {
        if (dp_recv(dp, &msg, timeout_ms) != 1)
            return NULL;
        if (strcmp(json_string_value(json_object_get(msg, "type")), "snapshot") != 0)
            return msg;
        json_decref(msg);
    }
}

static void dp_hello(dp_t *dp, const char *path, const char *id)
{
    json_t *w;

    dp_connect(dp, path);
    dp_send(dp, cph_msg_hello(id, "host", 1, "test/1", NULL));
    assert_non_null(w = dp_next(dp, WAIT_MS));
    assert_string_equal(json_string_value(json_object_get(w, "type")), "welcome");
    json_decref(w);
}

/* ---------------------------------------------------------------- the handler */

/* Runs the cache resource on body (stolen) as the admin API would; returns the answer (caller decrefs). */
static json_t *call(cph_db_t *db, cph_dpserver_t *dps, const char *key, json_t *body, unsigned *status)
{
    cph_api_req_t req = {.db = db, .dps = dps, .method = CPH_API_POST, .key = key, .body = body, .actor = "token:admin"};
    json_t *resp;

    cph_api_cache(&req);
    *status = req.status;
    resp = req.resp;
    json_decref(body);
    return resp;
}

/* The last audit row as {actor, action, entity_type, entity_id, after, version} (a new object), or NULL. */
static json_t *last_audit(cph_db_t *db)
{
    sqlite3_stmt *st = NULL;
    json_t *row = NULL;

    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db),
                                        "SELECT actor, action, entity_type, entity_id, after, version FROM audit ORDER BY id DESC "
                                        "LIMIT 1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        row = json_pack("{s:s, s:s, s:s, s:s?, s:o, s:I}", "actor", sqlite3_column_text(st, 0), "action",
                        sqlite3_column_text(st, 1), "entity_type", sqlite3_column_text(st, 2), "entity_id",
                        sqlite3_column_text(st, 3), "after", json_loads((const char *)sqlite3_column_text(st, 4), 0, NULL),
                        "version", (json_int_t)sqlite3_column_int64(st, 5));
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return row;
}

static void assert_json(const json_t *v, const char *want)
{
    char *text = cph_json_canonical(v);

    if (text == NULL || strcmp(text, want) != 0)
        fail_msg("got %s, want %s", text != NULL ? text : "(null)", want);
    free(text);
}

static void test_handler(void **state)
{
    fixture_t *fx = *state;
    unsigned status;
    int64_t audits, rid;
    uint64_t version;
    json_t *resp, *row;
    char want[256];

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"s\",\"targets\":[]}");
    written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"other\",\"service\":\"s\",\"paths\":[\"/o\"]}");
    rid = written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"orders\",\"service\":\"s\",\"paths\":[\"/orders\"]}");
    version = generation(fx->db);
    audits = cph_audit_count(fx->db);

    /* an unknown route: 404 at /route, nothing audited; a route id is not a name */
    resp = call(fx->db, NULL, "purge", parse("{\"route\":\"nope\"}"), &status);
    assert_int_equal(status, 404);
    assert_json(resp, "{\"error\":\"not_found\",\"message\":\"no route has this name\",\"path\":\"/route\"}");
    json_decref(resp);
    snprintf(want, sizeof(want), "{\"route\":\"%lld\"}", (long long)rid);
    resp = call(fx->db, NULL, "purge", parse(want), &status);
    assert_int_equal(status, 404);
    json_decref(resp);
    assert_int_equal(cph_audit_count(fx->db), audits);

    /* a bad body: 400 with the pointer, nothing audited */
    resp = call(fx->db, NULL, "purge", parse("{\"route\":\"orders\",\"prefix\":\"img\"}"), &status);
    assert_int_equal(status, 400);
    assert_string_equal(json_string_value(json_object_get(resp, "error")), "invalid");
    assert_string_equal(json_string_value(json_object_get(resp, "path")), "/prefix");
    json_decref(resp);
    resp = call(fx->db, NULL, "purge", parse("{\"route\":\"orders\",\"regex\":\".*\"}"), &status);
    assert_int_equal(status, 400);
    assert_string_equal(json_string_value(json_object_get(resp, "error")), "unknown_field");
    json_decref(resp);
    assert_int_equal(cph_audit_count(fx->db), audits);

    /* another key of the resource */
    resp = call(fx->db, NULL, "flush", parse("{\"route\":\"orders\"}"), &status);
    assert_int_equal(status, 404);
    json_decref(resp);
    resp = call(fx->db, NULL, NULL, parse("{\"route\":\"orders\"}"), &status);
    assert_int_equal(status, 404);
    json_decref(resp);

    /* a purge without data planes: 202, purged_on 0, audited at the current version, no version bump */
    resp = call(fx->db, NULL, "purge", parse("{\"route\":\"orders\",\"prefix\":\"/img/\"}"), &status);
    assert_int_equal(status, 202);
    assert_json(resp, "{\"purged_on\":0}");
    json_decref(resp);
    assert_int_equal(cph_audit_count(fx->db), audits + 1);
    assert_int_equal(generation(fx->db), version);
    row = last_audit(fx->db);
    snprintf(want, sizeof(want),
             "{\"action\":\"purge\",\"actor\":\"token:admin\",\"after\":{\"prefix\":\"/img/\",\"route\":\"orders\"},"
             "\"entity_id\":\"%lld\",\"entity_type\":\"route\",\"version\":%llu}",
             (long long)rid, (unsigned long long)version);
    assert_json(row, want);
    json_decref(row);
    resp = call(fx->db, NULL, "purge", parse("{\"route\":\"orders\"}"), &status);
    assert_int_equal(status, 202);
    json_decref(resp);
    row = last_audit(fx->db);
    assert_json(json_object_get(row, "after"), "{\"prefix\":null,\"route\":\"orders\"}");
    json_decref(row);
    assert_int_equal(generation(fx->db), version);
}

/* ---------------------------------------------------------------- through the socket server */

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Asserts msg's "at" is an integer in [lo, hi] and removes it (so the rest compares exactly); returns it. */
static uint64_t take_at(json_t *msg, uint64_t lo, uint64_t hi)
{
    json_t *at = json_object_get(msg, "at");
    uint64_t v;

    if (!json_is_integer(at) || (uint64_t)json_integer_value(at) < lo || (uint64_t)json_integer_value(at) > hi)
        fail_msg("\"at\" is not in [%llu, %llu]", (unsigned long long)lo, (unsigned long long)hi);
    v = (uint64_t)json_integer_value(at);
    json_object_del(msg, "at");
    return v;
}

static void test_dataplanes(void **state)
{
    fixture_t *fx = *state;
    char path[160];
    cph_dpserver_t *dps;
    cph_error_t err;
    dp_t a, b, silent;
    json_t *resp, *msg;
    unsigned status;
    uint64_t t0 = wall_ms();

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"s\",\"targets\":[]}");
    written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"orders\",\"service\":\"s\",\"paths\":[\"/orders\"]}");
    snprintf(path, sizeof(path), "%s/run/cp.sock", fx->dir);
    assert_non_null(dps = cph_dpserver_start(path, EPOCH, 1000, &err));

    /* nobody connected */
    assert_int_equal(cph_dpserver_purge(dps, "orders", NULL, t0), 0);
    dp_hello(&a, path, "dp-a");
    dp_hello(&b, path, "dp-b");
    dp_connect(&silent, path); /* connected, never says hello */
    /* the purge sent to nobody is kept and replayed to both after their welcome */
    assert_non_null(msg = dp_next(&a, WAIT_MS));
    take_at(msg, t0, t0);
    assert_json(msg, "{\"prefix\":null,\"route\":\"orders\",\"type\":\"purge\"}");
    json_decref(msg);
    assert_non_null(msg = dp_next(&b, WAIT_MS));
    take_at(msg, t0, t0);
    json_decref(msg);

    resp = call(fx->db, dps, "purge", parse("{\"route\":\"orders\",\"prefix\":\"/img/\"}"), &status);
    assert_int_equal(status, 202);
    assert_json(resp, "{\"purged_on\":2}");
    json_decref(resp);
    assert_non_null(msg = dp_next(&a, WAIT_MS));
    assert_int_equal(cph_msg_check(msg, &err), 0);
    take_at(msg, t0, wall_ms());
    assert_json(msg, "{\"prefix\":\"/img/\",\"route\":\"orders\",\"type\":\"purge\"}");
    json_decref(msg);
    assert_non_null(msg = dp_next(&b, WAIT_MS));
    take_at(msg, t0, wall_ms());
    assert_json(msg, "{\"prefix\":\"/img/\",\"route\":\"orders\",\"type\":\"purge\"}");
    json_decref(msg);
    assert_int_equal(dp_recv(&silent, &msg, 200), -1); /* nothing for a connection without hello */

    /* a second purge, all entries: in order, after the first */
    assert_int_equal(cph_dpserver_purge(dps, "orders", NULL, 1234), 2);
    assert_non_null(msg = dp_next(&a, WAIT_MS));
    assert_int_equal(take_at(msg, 1234, 1234), 1234); /* as given */
    assert_json(msg, "{\"prefix\":null,\"route\":\"orders\",\"type\":\"purge\"}");
    json_decref(msg);

    /* one data plane gone: the count follows */
    dp_close(&b);
    for (int i = 0; i != 100 && cph_dpserver_num_connected(dps) != 1; ++i)
        poll(NULL, 0, 20);
    assert_int_equal(cph_dpserver_purge(dps, "orders", "/x", t0), 1);
    assert_non_null(msg = dp_next(&a, WAIT_MS));
    take_at(msg, t0, t0);
    assert_json(msg, "{\"prefix\":\"/x\",\"route\":\"orders\",\"type\":\"purge\"}");
    json_decref(msg);

    dp_close(&a);
    dp_close(&silent);
    cph_dpserver_stop(dps);
    assert_int_equal(cph_dpserver_purge(NULL, "orders", NULL, t0), 0);
    snprintf(path, sizeof(path), "%s/run", fx->dir);
    rmdir(path);
}

/* A purge frame of route r with prefix p (NULL: null) and at. */
static void expect_purge(dp_t *dp, const char *r, const char *p, uint64_t at)
{
    json_t *msg = dp_expect(dp, "purge");
    cph_error_t err;

    assert_int_equal(cph_msg_check(msg, &err), 0);
    if (strcmp(json_string_value(json_object_get(msg, "route")), r) != 0 ||
        (p == NULL ? !json_is_null(json_object_get(msg, "prefix"))
                   : json_string_value(json_object_get(msg, "prefix")) == NULL ||
                         strcmp(json_string_value(json_object_get(msg, "prefix")), p) != 0) ||
        (uint64_t)json_integer_value(json_object_get(msg, "at")) != at)
        fail_msg("got purge %s %s at %lld, want %s %s at %llu", json_string_value(json_object_get(msg, "route")),
                 json_string_value(json_object_get(msg, "prefix")), (long long)json_integer_value(json_object_get(msg, "at")), r,
                 p != NULL ? p : "null", (unsigned long long)at);
    json_decref(msg);
}

static void test_replay(void **state)
{
    fixture_t *fx = *state;
    uint64_t now = wall_ms(), day = 24ull * 3600 * 1000;
    char path[160], prefix[32];
    cph_dpserver_t *dps;
    cph_error_t err;
    json_t *body, *hello, *msg;
    char *buf;
    size_t len;
    dp_t a, c, d;

    snprintf(path, sizeof(path), "%s/run/cp.sock", fx->dir);
    assert_non_null(dps = cph_dpserver_start(path, EPOCH, 1000, &err));
    dp_hello(&a, path, "dp-a");

    /* four purges while dp-a is connected: two too old to replay (the first and the last), two that are */
    assert_int_equal(cph_dpserver_purge(dps, "old", NULL, now - day - 1000), 1);
    assert_int_equal(cph_dpserver_purge(dps, "orders", "/img/", now - day + 60000), 1);
    assert_int_equal(cph_dpserver_purge(dps, "orders", NULL, now), 1);
    assert_int_equal(cph_dpserver_purge(dps, "old2", NULL, now - day), 1); /* the newest, and already too old */
    expect_purge(&a, "old", NULL, now - day - 1000);
    expect_purge(&a, "orders", "/img/", now - day + 60000);
    expect_purge(&a, "orders", NULL, now);
    expect_purge(&a, "old2", NULL, now - day);

    /* dp-a comes back: after its welcome and the snapshot, the two recent purges, oldest first, and nothing else */
    body = parse("{\"services\":[],\"routes\":[]}");
    cph_dpserver_publish(dps, 1, "sha256:0000000000000000000000000000000000000000000000000000000000000001", body);
    json_decref(body);
    dp_close(&a);
    dp_connect(&c, path);
    hello = cph_msg_hello("dp-a", "host", 1, "test/1", NULL);
    assert_int_equal(cph_frame_encode(hello, CPH_FRAME_MAX_DEFAULT, &buf, &len, &err), 0);
    assert_int_equal(send(c.fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
    free(buf);
    json_decref(hello);
    json_decref(dp_expect(&c, "welcome"));
    json_decref(dp_expect(&c, "snapshot"));
    expect_purge(&c, "orders", "/img/", now - day + 60000);
    expect_purge(&c, "orders", NULL, now);
    dp_ping(&c, 9);
    dp_close(&c);
    for (int i = 0; i != 250 && cph_dpserver_num_connected(dps) != 0; ++i)
        poll(NULL, 0, 20);
    assert_int_equal(cph_dpserver_num_connected(dps), 0);

    /* the ring keeps the last 4096: 4100 more purges (the four earlier ones go first, then n0..n3), and a data plane
       connecting then gets exactly n4..n4099, in order, while it reads - far more than a queue's cap */
    for (int i = 0; i != 4100; ++i) {
        snprintf(prefix, sizeof(prefix), "/n%d", i);
        assert_int_equal(cph_dpserver_purge(dps, "orders", prefix, now + (uint64_t)i), 0);
    }
    dp_hello(&d, path, "dp-d"); /* skips the snapshot */
    for (int i = 4; i != 4100; ++i) {
        snprintf(prefix, sizeof(prefix), "/n%d", i);
        msg = dp_next(&d, WAIT_MS);
        if (msg == NULL)
            fail_msg("purge %d did not come", i);
        if (strcmp(json_string_value(json_object_get(msg, "prefix")), prefix) != 0 ||
            (uint64_t)json_integer_value(json_object_get(msg, "at")) != now + (uint64_t)i)
            fail_msg("purge %d: got %s", i, json_string_value(json_object_get(msg, "prefix")));
        json_decref(msg);
    }
    dp_ping(&d, 9);
    dp_close(&d);

    cph_dpserver_stop(dps);
    snprintf(path, sizeof(path), "%s/run", fx->dir);
    rmdir(path);
}

/* ---------------------------------------------------------------- policies.cache and gateway.cache */

static void test_route_policy(void **state)
{
    fixture_t *fx = *state;
    cph_gateway_settings_t g;
    cph_error_t err;
    json_t *body;

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"s\",\"targets\":[]}");
    written(fx->db, &cph_store_route_ops, 0,
            "{\"name\":\"c\",\"service\":\"s\",\"paths\":[\"/c\"],\"policies\":{\"cache\":{\"ttl_s\":30,\"max_ttl_s\":600,"
            "\"max_body_bytes\":65536,\"share_authenticated\":true}}}");
    assert_int_equal(try_written(fx->db, &cph_store_route_ops, 0,
                                 "{\"name\":\"d\",\"service\":\"s\",\"paths\":[\"/d\"],\"policies\":{\"cache\":{\"ttl_s\":-1}}}",
                                 &err),
                     0);
    assert_string_equal(err.code, "invalid");
    assert_string_equal(err.path, "/policies/cache/ttl_s");
    assert_int_equal(try_written(fx->db, &cph_store_route_ops, 0,
                                 "{\"name\":\"d\",\"service\":\"s\",\"paths\":[\"/d\"],\"policies\":{\"cache\":{\"ttl\":1}}}",
                                 &err),
                     0);
    assert_string_equal(err.code, "unknown_field");
    assert_string_equal(err.path, "/policies/cache/ttl");

    cph_db_lock(fx->db);
    body = cph_snapbuild_body(fx->db, &err);
    cph_db_unlock(fx->db);
    assert_non_null(body);
    assert_json(json_object_get(json_array_get(json_object_get(body, "routes"), 0), "policies"),
                "{\"cache\":{\"max_body_bytes\":65536,\"max_ttl_s\":600,\"share_authenticated\":true,\"ttl_s\":30}}");
    assert_json(json_object_get(json_object_get(body, "gateway"), "cache"), "{\"max_bytes\":67108864}");
    json_decref(body);

    /* the gateway section follows --cache-max-bytes, and the largest value passes the validator */
    cph_settings_gateway_defaults(&g);
    assert_int_equal(cph_settings_parse_cache_max_bytes("17179869184", &g), 0);
    cph_settings_set_gateway(&g);
    written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"e\",\"service\":\"s\",\"paths\":[\"/e\"]}");
    cph_db_lock(fx->db);
    body = cph_snapbuild_body(fx->db, &err);
    cph_db_unlock(fx->db);
    assert_json(json_object_get(json_object_get(body, "gateway"), "cache"), "{\"max_bytes\":17179869184}");
    assert_int_equal(cph_snapshot_validate(body, &err), 0);
    json_decref(body);
    cph_settings_gateway_defaults(&g);
    cph_settings_set_gateway(&g);
}

static void test_parse_cache_max_bytes(void **state)
{
    static const char *const BAD[] = {
        "",   "-1", "+1", " 1", "1 ", "1k", "64MiB", "0x10", "1.5", "17179869185", "99999999999999999999", "9223372036854775808",
        "1e6"};
    cph_gateway_settings_t g;

    (void)state;
    cph_settings_gateway_defaults(&g);
    assert_int_equal(g.cache_max_bytes, 67108864);
    assert_int_equal(cph_settings_parse_cache_max_bytes("0", &g), 0);
    assert_int_equal(g.cache_max_bytes, 0);
    assert_int_equal(cph_settings_parse_cache_max_bytes("17179869184", &g), 0);
    assert_true(g.cache_max_bytes == 17179869184LL);
    assert_int_equal(cph_settings_parse_cache_max_bytes("1048576", &g), 0);
    assert_int_equal(g.cache_max_bytes, 1048576);
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); ++i)
        if (cph_settings_parse_cache_max_bytes(BAD[i], &g) == 0)
            fail_msg("accepted --cache-max-bytes %s", BAD[i]);
    assert_int_equal(cph_settings_parse_cache_max_bytes(NULL, &g), -1);
    assert_int_equal(g.cache_max_bytes, 1048576); /* unchanged by every refusal */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body),
        cmocka_unit_test_setup_teardown(test_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataplanes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_policy, setup, teardown),
        cmocka_unit_test(test_parse_cache_max_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
