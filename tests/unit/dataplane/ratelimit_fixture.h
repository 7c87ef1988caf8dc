/*
 * ratelimit_fixture: hand-made requests for the rate-limit stage (filter/ratelimit.c) shared by ratelimit_test.c (the
 * compiler and the local limits) and ratelimit_redis_test.c (the Redis limits): a snapshot compiled from a JSON
 * literal (services, routes, then the rate limits; a failure fails the test), a bare h2o request on a fake connection
 * whose peer address is `peer`, the answer captured by replacing h2o's inline sender, the response headers the stage
 * added, and the per-worker counters of a limit. Header-only so each test executable stays one file plus what it
 * tests; the sender it replaces is h2o's, so it is included by one file per executable.
 */
#ifndef CPH_TEST_RATELIMIT_FIXTURE_H
#define CPH_TEST_RATELIMIT_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>
#include "dataplane/compile/compile.h"
#include "dataplane/compile/ratelimit.h"
#include "dataplane/filter/filter.h"
#include "send_fixture.h"

/* One limit of 1 a day: its burst (0 or more) passes, the next request of the day is refused. */
#define DAY_LIMIT(name, key, burst) "{\"name\":\"" name "\",\"key\":\"" key "\",\"rate\":1,\"period_s\":86400,\"burst\":" #burst "}"


/* The client address of the next requests (IPv4 or IPv6 text); the tests set it. */
static char peer[64] = "10.0.0.1";

static inline socklen_t get_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    if (strchr(peer, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (void *)sa;
        memset(sin6, 0, sizeof(*sin6));
        sin6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, peer, &sin6->sin6_addr), 1);
        return sizeof(*sin6);
    }
    struct sockaddr_in *sin = (void *)sa;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, peer, &sin->sin_addr), 1);
    return sizeof(*sin);
}

static const h2o_conn_callbacks_t callbacks = {.get_peername = get_peername};
static cph_worker_t worker;

typedef struct st_fixture_t {
    h2o_conn_t conn;
    h2o_req_t req;
    cph_req_t r;
} fixture_t;

/* Compiles text (services, routes, rate limits) into a snapshot of its own; drop() frees it. */
static inline cph_snapshot_t *build(const char *text)
{
    cph_snapshot_t *snap = calloc(1, sizeof(*snap));
    json_t *body = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    cph_error_t err;

    if (body == NULL)
        fail_msg("bad test JSON: %s", text);
    cph_arena_init(&snap->arena);
    if (cph_proxy_compile(snap, body, &err) != 0 || cph_router_compile(snap, body, &err) != 0 ||
        cph_ratelimit_compile(snap, body, &err) != 0)
        fail_msg("compile: %s at %s: %s", err.code, err.path, err.msg);
    json_decref(body);
    return snap;
}

static inline void drop(cph_snapshot_t *snap)
{
    cph_arena_dispose(&snap->arena);
    free(snap);
}

/* A body with one route "r1" whose policies.rate_limits is `limits`, plus `extra` top-level members. */
static inline cph_snapshot_t *build_route(const char *limits, const char *extra)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{\"services\":[{\"name\":\"s\",\"targets\":[{\"url\":\"http://127.0.0.1:9\"}],\"timeout_ms\":1000}],"
             "\"routes\":[{\"name\":\"r1\",\"service\":\"s\",\"paths\":[\"/a\"],\"policies\":{\"rate_limits\":%s}}]%s%s}",
             limits, extra[0] != '\0' ? "," : "", extra);
    return build(text);
}

/* A request `method path` from `peer` on route of snap, handled by `worker`; nothing sent yet. */
static inline void fx_init(fixture_t *f, cph_snapshot_t *snap, const cph_route_t *route, const char *method, const char *path)
{
    memset(f, 0, sizeof(*f));
    f->conn.callbacks = &callbacks;
    h2o_mem_init_pool(&f->req.pool);
    f->req.conn = &f->conn;
    f->req.input.method = h2o_iovec_init(method, strlen(method));
    f->r.req = &f->req;
    f->r.worker = &worker;
    f->r.snap = snap;
    f->r.route = route;
    f->r.path = h2o_iovec_init(path, strlen(path));
    f->r.request_id = h2o_iovec_init(H2O_STRLIT("0123456789abcdef0123456789abcdef"));
    f->r.next_stage = 1000; /* past the last stage: a resume answers 500 "internal", which the tests look for */
    sent_status = 0;
    sent_body[0] = '\0';
}

static inline void fx_header(fixture_t *f, const char *name, const char *value)
{
    h2o_add_header_by_str(&f->req.pool, &f->req.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

/* A response header the stage added (r->res_extra), NUL-terminated, or NULL. */
static inline const char *extra(fixture_t *f, const char *name)
{
    for (size_t i = 0; i != f->r.res_extra.size; ++i) {
        const h2o_header_t *h = &f->r.res_extra.entries[i];
        if (h2o_memis(h->name->base, h->name->len, name, strlen(name)))
            return h2o_strdup(&f->req.pool, h->value.base, h->value.len).base;
    }
    return NULL;
}

/* One request: returns the HTTP status it got (0 = passed on to the next stage). */
static inline int one(cph_snapshot_t *snap, const cph_route_t *route, const char *xff, const cph_principal_t *p)
{
    fixture_t f;
    int ret;

    fx_init(&f, snap, route, "GET", "/a");
    if (xff != NULL)
        fx_header(&f, "X-Forwarded-For", xff);
    if (p != NULL)
        f.r.principal = *p;
    ret = cph_ratelimit_on_req(&f.r);
    assert_int_equal(ret == CPH_DONE, sent_status != 0);
    h2o_mem_clear_pool(&f.req.pool);
    return ret == CPH_NEXT ? 0 : sent_status;
}

/* How many requests `worker` counted for limit l with outcome o. */
static inline uint64_t counter(const cph_rl_limit_t *l, cph_rl_outcome_t o)
{
    return cph_counter_read(&worker.stats->ratelimit[l->stat_id][o]);
}

#endif
