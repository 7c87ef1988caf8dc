/*
 * ratelimit_test: compile/ratelimit.c and filter/ratelimit.c on hand-made requests. Compiling: route and endpoint
 * limits with their defaults, stable ids and Redis prefixes, the gateway's hops / login limit / Redis, and refusals
 * with their JSON paths. The stage: key extraction (peer, X-Forwarded-For with trusted hops through core/clientip.c,
 * where a spoofed left part changes nothing, principal with the IP fallback, api_key, system, route, header), stacked limits where
 * all must pass and the most restrictive drives the headers, an endpoint rule's limits replacing the route's, the 429 and its
 * headers, the login limit (also through filter/builtin.c), and the Redis backend against a real redis-server that the
 * test starts on a free port (core/redis.c runs for real; the worker is a bare h2o loop pumped by the test): on_error
 * open / closed without gateway.redis and under SIGSTOP (the deadline), the answer resuming the pipeline, a 429 with
 * Redis's values, the hashed key, a request gone before its answer, a 10/s + 3/s stack of Redis limits passing exactly
 * 3 of 10 concurrent requests and leaving exactly 7 in the 10/s limit, and local and Redis limits mixed (a refusal by
 * either spends nothing in the other; a local refusal costs no Redis call). h2o's inline sender is replaced below.
 * Fails when redis-server is not installed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include "dataplane/compile/authz.h"
#include "dataplane/compile/compile.h"
#include "dataplane/compile/ratelimit.h"
#include "dataplane/core/redis.h"
#include "dataplane/filter/filter.h"

/* ---------------------------------------------------------------- replaced senders */

static int sent_status;
static char sent_body[4096];

void h2o_send_inline(h2o_req_t *req, const char *body, size_t len)
{
    sent_status = req->res.status;
    assert_true(len < sizeof(sent_body));
    memcpy(sent_body, body, len);
    sent_body[len] = '\0';
}

/* ---------------------------------------------------------------- fixtures */

static char peer[64] = "10.0.0.1";

static socklen_t get_peername(h2o_conn_t *conn, struct sockaddr *sa)
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

static cph_snapshot_t *build(const char *text)
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

static void drop(cph_snapshot_t *snap)
{
    cph_arena_dispose(&snap->arena);
    free(snap);
}

/* A body with one route "r1" whose policies.rate_limits is `limits`, plus `extra` top-level members. */
static cph_snapshot_t *build_route(const char *limits, const char *extra)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{\"services\":[{\"name\":\"s\",\"targets\":[{\"url\":\"http://127.0.0.1:9\"}],\"timeout_ms\":1000}],"
             "\"routes\":[{\"name\":\"r1\",\"service\":\"s\",\"paths\":[\"/a\"],\"policies\":{\"rate_limits\":%s}}]%s%s}",
             limits, extra[0] != '\0' ? "," : "", extra);
    return build(text);
}

static void fx_init(fixture_t *f, cph_snapshot_t *snap, const cph_route_t *route, const char *method, const char *path)
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

static void fx_header(fixture_t *f, const char *name, const char *value)
{
    h2o_add_header_by_str(&f->req.pool, &f->req.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

/* A response header the stage added (r->res_extra), NUL-terminated, or NULL. */
static const char *extra(fixture_t *f, const char *name)
{
    for (size_t i = 0; i != f->r.res_extra.size; ++i) {
        const h2o_header_t *h = &f->r.res_extra.entries[i];
        if (h2o_memis(h->name->base, h->name->len, name, strlen(name)))
            return h2o_strdup(&f->req.pool, h->value.base, h->value.len).base;
    }
    return NULL;
}

/* One request: returns the HTTP status it got (0 = passed on to the next stage). */
static int one(cph_snapshot_t *snap, const cph_route_t *route, const char *xff, const cph_principal_t *p)
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

static uint64_t counter(const cph_rl_limit_t *l, cph_rl_outcome_t o)
{
    return cph_counter_read(&worker.stats->ratelimit[l->stat_id][o]);
}

/* ---------------------------------------------------------------- redis-server */

#define REDIS_TIMEOUT_MS 200

static struct {
    char dir[64];
    uint16_t port;
    pid_t pid;
    h2o_evloop_t *loop;
} rd;

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint16_t free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
        return 0;
    close(fd);
    return ntohs(sin.sin_port);
}

/* A synchronous command to the test's redis-server (NULL when it does not answer). Free the reply. */
static redisReply *redis_sync(const char *fmt, const char *arg)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", rd.port, tv);
    redisReply *r = NULL;

    if (c != NULL && c->err == 0)
        r = redisCommand(c, fmt, arg);
    if (c != NULL)
        redisFree(c);
    return r;
}

static int start_redis(void)
{
    char port[8], log[128];

    snprintf(port, sizeof(port), "%u", rd.port);
    snprintf(log, sizeof(log), "%s/redis.log", rd.dir);
    if ((rd.pid = fork()) == 0) {
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
               rd.dir, "--logfile", log, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; rd.pid > 0 && i < 500; i++) { /* up to 5 s */
        redisReply *r = redis_sync("PING", NULL);
        int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (ok)
            return 0;
        usleep(10000);
    }
    return -1;
}

/* How many EVALSHA calls the server has run (the rate-limit script's calls). */
static long long evalsha_calls(void)
{
    redisReply *r = redis_sync("INFO commandstats", NULL);
    long long n = 0;

    assert_true(r != NULL && r->type == REDIS_REPLY_STRING);
    const char *p = strstr(r->str, "cmdstat_evalsha:calls=");
    if (p != NULL)
        n = atoll(p + strlen("cmdstat_evalsha:calls="));
    freeReplyObject(r);
    return n;
}

static void redis_flushall(void)
{
    freeReplyObject(redis_sync("FLUSHALL", NULL));
}

/* The gateway member pointing at the test's redis-server. */
static const char *gateway_redis(void)
{
    static char buf[128];

    snprintf(buf, sizeof(buf), "\"gateway\":{\"redis\":{\"host\":\"127.0.0.1\",\"port\":%u}}", rd.port);
    return buf;
}

static int setup(void **state)
{
    (void)state;
    cph_redis_config_t cfg = {.host = "127.0.0.1", .timeout_ms = REDIS_TIMEOUT_MS};

    worker.stats = calloc(1, sizeof(*worker.stats));
    if (worker.stats == NULL || system("command -v redis-server >/dev/null 2>&1") != 0) {
        fprintf(stderr, "redis-server is not installed (scripts/deps.sh installs it)\n");
        return -1;
    }
    rd.loop = h2o_evloop_create();
    worker.ctx.loop = rd.loop;
    worker.ctx.queue = h2o_multithread_create_queue(rd.loop);
    cph_redis_worker_init(&worker);
    snprintf(rd.dir, sizeof(rd.dir), "/tmp/cph-rl-test-XXXXXX");
    if (mkdtemp(rd.dir) == NULL || (rd.port = free_port()) == 0 || start_redis() != 0)
        return -1;
    cfg.port = rd.port;
    cph_redis_configure(&cfg);
    cph_redis_start();
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    cph_redis_stop();
    if (rd.loop != NULL) {
        cph_redis_worker_dispose(&worker);
        h2o_multithread_destroy_queue(worker.ctx.queue);
        h2o_evloop_destroy(rd.loop);
    }
    if (rd.pid > 0) {
        kill(rd.pid, SIGCONT);
        kill(rd.pid, SIGKILL);
        waitpid(rd.pid, NULL, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", rd.dir);
    if (rd.dir[0] != '\0' && system(cmd) != 0)
        return -1;
    free(worker.stats);
    cph_ratelimit_local_reset(0);
    return 0;
}

/* Pumps the worker's loop until every request of f[0..n-1] was answered (res.status set: 429, 503, or the 500 of the
 * fixture's resume past the last stage); returns their statuses in order as 0 (passed) or the status. */
static void wait_answers(fixture_t *f, size_t n, int *status)
{
    uint64_t end = mono_ms() + 10000;
    size_t done = 0;

    while (done != n && mono_ms() < end) {
        h2o_evloop_run(rd.loop, 10);
        for (done = 0; done != n && f[done].req.res.status != 0; done++)
            ;
    }
    assert_int_equal(done, n);
    for (size_t i = 0; i != n; i++)
        status[i] = f[i].req.res.status == 500 ? 0 : f[i].req.res.status;
}

/* One request answered by the Redis part of the stage (or at once): 0 when it passed, else its status. */
static int one_async(cph_snapshot_t *snap, const cph_route_t *route)
{
    fixture_t f;
    int status;

    fx_init(&f, snap, route, "GET", "/a");
    if (cph_ratelimit_on_req(&f.r) == CPH_NEXT) {
        h2o_mem_clear_pool(&f.req.pool);
        return 0;
    }
    wait_answers(&f, 1, &status);
    h2o_mem_clear_pool(&f.req.pool);
    return status;
}

#define DAY_LIMIT(name, key, burst) "{\"name\":\"" name "\",\"key\":\"" key "\",\"rate\":1,\"period_s\":86400,\"burst\":" #burst "}"

/* ---------------------------------------------------------------- compile */

static void test_compile(void **state)
{
    (void)state;
    cph_snapshot_t *snap = build(
        "{\"services\":[{\"name\":\"s\",\"targets\":[]}],\"routes\":[{\"name\":\"r1\",\"service\":\"s\",\"paths\":[\"/a\"],"
        "\"policies\":{\"rate_limits\":[{\"name\":\"per-ip\",\"key\":\"ip\",\"rate\":10,\"period_s\":1,\"burst\":5,"
        "\"headers\":true},{\"name\":\"T.x_1\",\"key\":\"header:x-tenant\",\"rate\":100,\"period_s\":60,\"backend\":\"redis\","
        "\"on_error\":\"closed\"}]}},{\"name\":\"r2\",\"service\":\"s\",\"paths\":[\"/b\"],\"policies\":{}},"
        "{\"name\":\"r3\",\"service\":\"s\",\"paths\":[\"/c\"],\"policies\":{\"rate_limits\":[]}}],"
        "\"endpoints\":[{\"id\":9,\"rate_limits\":[" DAY_LIMIT(
            "k", "api_key", 0) "]},{\"id\":7,\"rate_limits\":[]},{\"id\":8}],"
                               "\"gateway\":{\"trusted_proxy_hops\":2,\"redis\":{\"host\":\"redis.local\",\"port\":6380,\"db\":3},"
                               "\"login_rate_limit\":{\"rate\":3,\"period_s\":30}}}");
    const cph_rl_set_t *set = snap->routes[0].rate_limits;

    assert_non_null(set);
    assert_int_equal(set->num_limits, 2);
    const cph_rl_limit_t *a = &set->limits[0], *b = &set->limits[1];
    assert_string_equal(a->name, "per-ip");
    assert_string_equal(a->scope, "r1");
    assert_int_equal(a->key, CPH_RL_KEY_IP);
    assert_int_equal(a->spec.rate, 10);
    assert_int_equal(a->spec.period_ms, 1000);
    assert_int_equal(a->spec.burst, 5);
    assert_false(a->redis);
    assert_false(a->fail_closed);
    assert_true(a->headers);
    assert_int_equal(a->local_id, cph_ratelimit_limit_id("r1", "per-ip"));
    assert_int_equal(a->stat_id, cph_stats_limit_id("r1", "per-ip"));
    assert_true(a->stat_id != 0 && a->stat_id != b->stat_id);
    assert_int_equal(b->key, CPH_RL_KEY_HEADER);
    assert_true(h2o_memis(b->header.base, b->header.len, H2O_STRLIT("x-tenant")));
    assert_int_equal(b->spec.burst, 0);
    assert_true(b->redis);
    assert_true(b->fail_closed);
    assert_false(b->headers);
    assert_true(h2o_memis(b->redis_prefix.base, b->redis_prefix.len, H2O_STRLIT("cph:rl:r1:T.x_1:")));
    assert_null(snap->routes[1].rate_limits);
    assert_null(snap->routes[2].rate_limits);

    cph_authz_rule_t r7 = {.id = 7}, r8 = {.id = 8}, r9 = {.id = 9}, r10 = {.id = 10};
    assert_ptr_equal(cph_rl_select(snap, &snap->routes[0], NULL), set);
    assert_null(cph_rl_select(snap, &snap->routes[0], &r7));           /* [] replaces the route's limits with none */
    assert_ptr_equal(cph_rl_select(snap, &snap->routes[0], &r8), set); /* no member: the route's */
    assert_ptr_equal(cph_rl_select(snap, &snap->routes[0], &r10), set);
    const cph_rl_set_t *s9 = cph_rl_select(snap, &snap->routes[1], &r9);
    assert_non_null(s9);
    assert_string_equal(s9->limits[0].scope, "endpoint:9");
    assert_true(h2o_memis(s9->limits[0].redis_prefix.base, s9->limits[0].redis_prefix.len, H2O_STRLIT("cph:rl:endpoint:9:k:")));

    assert_int_equal(cph_rl_trusted_hops(snap), 2);
    const cph_redis_config_t *rc = cph_rl_redis_config(snap);
    assert_non_null(rc);
    assert_string_equal(rc->host, "redis.local");
    assert_int_equal(rc->port, 6380);
    assert_int_equal(rc->db, 3);
    assert_int_equal(rc->timeout_ms, 50);
    const cph_rl_set_t *login = cph_rl_login(snap);
    assert_non_null(login);
    assert_int_equal(login->limits[0].spec.rate, 3);
    assert_int_equal(login->limits[0].spec.period_ms, 30000);
    assert_int_equal(login->limits[0].spec.burst, 5);
    assert_string_equal(login->limits[0].scope, "/auth");
    assert_string_equal(login->limits[0].name, "login");

    /* the next snapshot with the same names gets the same ids */
    cph_snapshot_t *again = build_route("[{\"name\":\"per-ip\",\"key\":\"ip\",\"rate\":99,\"period_s\":1}]", "");
    assert_int_equal(again->routes[0].rate_limits->limits[0].stat_id, a->stat_id);
    assert_int_equal(again->routes[0].rate_limits->limits[0].local_id, a->local_id);
    /* defaults without a gateway */
    assert_int_equal(cph_rl_trusted_hops(again), 0);
    assert_null(cph_rl_redis_config(again));
    login = cph_rl_login(again);
    assert_int_equal(login->limits[0].spec.rate, 10);
    assert_int_equal(login->limits[0].spec.period_ms, 60000);
    assert_int_equal(login->limits[0].spec.burst, 5);
    drop(again);
    drop(snap);
}

/* The whole build (validator, then every compile stage) carries the limits into the snapshot. */
static void test_snapshot_build(void **state)
{
    (void)state;
    char hash[CPH_HASH_SIZE] = "";
    json_t *body = json_loads("{\"services\":[{\"name\":\"s\",\"targets\":[{\"url\":\"http://127.0.0.1:9\"}]}],"
                              "\"routes\":[{\"name\":\"r1\",\"service\":\"s\",\"paths\":[\"/a\"],\"policies\":{\"rate_limits\":["
                              "{\"name\":\"per-ip\",\"key\":\"ip\",\"rate\":10,\"period_s\":1,\"burst\":5}]}}],"
                              "\"gateway\":{\"trusted_proxy_hops\":1,\"redis\":{\"host\":\"127.0.0.1\",\"port\":6379},"
                              "\"login_rate_limit\":{\"rate\":10,\"period_s\":60,\"burst\":5}}}",
                              0, NULL);
    cph_error_t err;
    cph_snapshot_t *snap;

    assert_non_null(body);
    cph_snapshot_hash(body, hash);
    snap = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", &err);
    json_decref(body);
    if (snap == NULL)
        fail_msg("%s at %s: %s", err.code, err.path, err.msg);
    assert_non_null(snap->routes[0].rate_limits);
    assert_int_equal(snap->routes[0].rate_limits->limits[0].spec.burst, 5);
    assert_int_equal(cph_rl_trusted_hops(snap), 1);
    assert_non_null(cph_rl_redis_config(snap));
    cph_snapshot_release(snap);
}

static void test_compile_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *limits, *gateway, *path;
    } cases[] = {
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":0,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1000000001,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":86401}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":1,\"burst\":-1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"header:X-Up\",\"rate\":1,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"header:\",\"rate\":1,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"cookie\",\"rate\":1,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a b\",\"key\":\"ip\",\"rate\":1,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":1,\"backend\":\"memcached\"}]", "",
         "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":1,\"on_error\":true}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":1,\"headers\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":1,\"colour\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[" DAY_LIMIT("a", "ip", 0) "," DAY_LIMIT("a", "route", 0) "]", "", "/routes/0/policies/rate_limits/1"},
        {"[" DAY_LIMIT("a", "ip", 0) "," DAY_LIMIT("b", "ip", 0) "," DAY_LIMIT("c", "ip", 0) "," DAY_LIMIT(
             "d", "ip", 0) "," DAY_LIMIT("e", "ip", 0) "," DAY_LIMIT("f", "ip",
                                                                     0) "," DAY_LIMIT("g", "ip",
                                                                                      0) "," DAY_LIMIT("h", "ip",
                                                                                                       0) "," DAY_LIMIT("i", "ip",
                                                                                                                        0) "]",
         "", "/routes/0/policies/rate_limits"},
        {"{}", "", "/routes/0/policies/rate_limits"},
        {"[]", "\"gateway\":{\"trusted_proxy_hops\":9}", "/gateway/trusted_proxy_hops"},
        {"[]", "\"gateway\":{\"redis\":{\"host\":\"h\",\"port\":0}}", "/gateway/redis"},
        {"[]", "\"gateway\":{\"redis\":{\"port\":1}}", "/gateway/redis"},
        {"[]", "\"gateway\":{\"login_rate_limit\":{\"rate\":0}}", "/gateway/login_rate_limit"},
        {"[]", "\"endpoints\":[{\"id\":1,\"rate_limits\":[{\"name\":\"x\"}]}]", "/endpoints/0/rate_limits/0"},
    };

    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); i++) {
        char text[4096];
        snprintf(
            text, sizeof(text),
            "{\"services\":[{\"name\":\"s\",\"targets\":[]}],\"routes\":[{\"name\":\"r1\",\"service\":\"s\",\"paths\":[\"/a\"],"
            "\"policies\":{\"rate_limits\":%s}}]%s%s}",
            cases[i].limits, cases[i].gateway[0] != '\0' ? "," : "", cases[i].gateway);
        json_t *body = json_loads(text, 0, NULL);
        cph_snapshot_t snap;
        cph_error_t err;
        assert_non_null(body);
        memset(&snap, 0, sizeof(snap));
        memset(&err, 0, sizeof(err));
        cph_arena_init(&snap.arena);
        assert_int_equal(cph_proxy_compile(&snap, body, &err), 0);
        assert_int_equal(cph_router_compile(&snap, body, &err), 0);
        if (cph_ratelimit_compile(&snap, body, &err) != -1)
            fail_msg("case %zu compiled", i);
        if (strcmp(err.path, cases[i].path) != 0)
            fail_msg("case %zu: path %s, want %s (%s)", i, err.path, cases[i].path, err.msg);
        cph_arena_dispose(&snap.arena);
        json_decref(body);
    }
}

/* ---------------------------------------------------------------- keys */

static void test_ip_key_and_trusted_hops(void **state)
{
    (void)state;
    cph_snapshot_t *direct = build_route("[" DAY_LIMIT("ip0", "ip", 0) "]", "");
    cph_snapshot_t *one_hop = build_route("[" DAY_LIMIT("ip1", "ip", 0) "]", "\"gateway\":{\"trusted_proxy_hops\":1}");
    cph_snapshot_t *two_hops = build_route("[" DAY_LIMIT("ip2", "ip", 0) "]", "\"gateway\":{\"trusted_proxy_hops\":2}");
    const cph_route_t *rd = &direct->routes[0], *r1 = &one_hop->routes[0], *r2 = &two_hops->routes[0];

    cph_ratelimit_local_reset(0);
    /* no trusted proxy: the peer, whatever X-Forwarded-For says */
    strcpy(peer, "10.0.0.1");
    assert_int_equal(one(direct, rd, "1.1.1.1", NULL), 0);
    assert_int_equal(one(direct, rd, "2.2.2.2", NULL), 429);
    strcpy(peer, "10.0.0.2");
    assert_int_equal(one(direct, rd, NULL, NULL), 0);
    strcpy(peer, "::ffff:10.0.0.2"); /* the same client over a v4-mapped address */
    assert_int_equal(one(direct, rd, NULL, NULL), 429);
    strcpy(peer, "2001:db8::1");
    assert_int_equal(one(direct, rd, NULL, NULL), 0);
    assert_int_equal(one(direct, rd, NULL, NULL), 429);
    strcpy(peer, "2001:db8::ffff:1"); /* IPv6: one bucket per /64 */
    assert_int_equal(one(direct, rd, NULL, NULL), 429);
    strcpy(peer, "2001:db8:0:1::1");
    assert_int_equal(one(direct, rd, NULL, NULL), 0);

    /* one trusted proxy: the rightmost element; what the client put left of it changes nothing */
    strcpy(peer, "10.9.9.9");
    assert_int_equal(one(one_hop, r1, "6.6.6.6, 1.1.1.1", NULL), 0);
    assert_int_equal(one(one_hop, r1, "7.7.7.7, 1.1.1.1", NULL), 429);
    assert_int_equal(one(one_hop, r1, "1.1.1.1,6.6.6.6", NULL), 0);
    assert_int_equal(one(one_hop, r1, " 6.6.6.6:4711 ", NULL), 429); /* port and blanks: the same address */
    assert_int_equal(one(one_hop, r1, "[2001:db8::2]:80", NULL), 0);
    assert_int_equal(one(one_hop, r1, "2001:db8:0:0::2", NULL), 429);
    assert_int_equal(one(one_hop, r1, NULL, NULL), 0); /* no header: the peer */
    assert_int_equal(one(one_hop, r1, NULL, NULL), 429);

    /* two trusted proxies: the second from the right, over several header lines; no usable element there: the peer */
    fixture_t f;
    fx_init(&f, two_hops, r2, "GET", "/a");
    fx_header(&f, "x-forwarded-for", "9.9.9.9, 3.3.3.3");
    fx_header(&f, "X-Forwarded-For", "4.4.4.4");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_NEXT);
    h2o_mem_clear_pool(&f.req.pool);
    assert_int_equal(one(two_hops, r2, "8.8.8.8, 3.3.3.3, 5.5.5.5", NULL), 429);
    assert_int_equal(one(two_hops, r2, "3.3.3.3", NULL), 0); /* too short: the peer 10.9.9.9 */
    assert_int_equal(one(two_hops, r2, NULL, NULL), 429);
    assert_int_equal(one(two_hops, r2, "unknown, 7.7.7.7", NULL), 429); /* not an address: the peer */
    assert_int_equal(one(two_hops, r2, "7.7.7.7, 1.2.3.4", NULL), 0);
    drop(direct);
    drop(one_hop);
    drop(two_hops);
}

static void test_principal_keys(void **state)
{
    (void)state;
    cph_snapshot_t *snap = build_route("[" DAY_LIMIT("p", "principal", 0) "]", "");
    cph_snapshot_t *keys = build_route("[" DAY_LIMIT("k", "api_key", 0) "," DAY_LIMIT("s", "system", 1) "]", "");
    const cph_route_t *route = &snap->routes[0], *kr = &keys->routes[0];
    cph_principal_t user = {
        .kind = CPH_PRINCIPAL_USER, .id = h2o_iovec_init(H2O_STRLIT("5")), .system = h2o_iovec_init(H2O_STRLIT("shop"))};
    cph_principal_t key = user, key6 = user, none = {0};

    key.kind = key6.kind = CPH_PRINCIPAL_API_KEY;
    key6.id = h2o_iovec_init(H2O_STRLIT("6"));
    cph_ratelimit_local_reset(0);
    strcpy(peer, "10.0.0.1");
    assert_int_equal(one(snap, route, NULL, &user), 0);
    assert_int_equal(one(snap, route, NULL, &user), 429);
    assert_int_equal(one(snap, route, NULL, &key), 0); /* API key 5 is not user 5 */
    assert_int_equal(one(snap, route, NULL, &key), 429);
    assert_int_equal(one(snap, route, NULL, &none), 0); /* no principal: the client IP (not any principal's bucket) */
    assert_int_equal(one(snap, route, NULL, &none), 429);
    strcpy(peer, "10.0.0.7");
    assert_int_equal(one(snap, route, NULL, &none), 0);

    /* api_key: only requests with a key count; system: burst 1, so two requests of the system pass */
    for (int i = 0; i != 5; i++)
        assert_int_equal(one(keys, kr, NULL, &none), 0);
    assert_int_equal(one(keys, kr, NULL, &user), 0); /* system shop: 1 of 2 */
    assert_int_equal(one(keys, kr, NULL, &key), 0);  /* key 5: 1 of 1, system shop: 2 of 2 */
    assert_int_equal(one(keys, kr, NULL, &key6), 429);
    const cph_rl_limit_t *sys = &kr->rate_limits->limits[1], *k = &kr->rate_limits->limits[0];
    assert_int_equal(counter(sys, CPH_RL_OUTCOME_LIMITED), 1);
    assert_int_equal(counter(sys, CPH_RL_OUTCOME_ALLOWED), 2);
    assert_int_equal(counter(k, CPH_RL_OUTCOME_ALLOWED), 1); /* key 6 was refused by the system: it spent nothing */
    cph_principal_t key6_alone = key6;
    key6_alone.system = h2o_iovec_init(H2O_STRLIT("other"));
    assert_int_equal(one(keys, kr, NULL, &key6_alone), 0); /* its own token is still there */
    assert_int_equal(one(keys, kr, NULL, &key6_alone), 429);
    drop(snap);
    drop(keys);
}

static void test_route_and_header_keys(void **state)
{
    (void)state;
    cph_snapshot_t *snap = build_route("[" DAY_LIMIT("h", "header:x-tenant", 0) "]", "");
    cph_snapshot_t *all = build_route("[" DAY_LIMIT("everyone", "route", 2) "]", "");
    const cph_route_t *route = &snap->routes[0];
    fixture_t f;

    cph_ratelimit_local_reset(0);
    for (int i = 0; i != 3; i++) /* header absent: the limit does not apply */
        assert_int_equal(one(snap, route, NULL, NULL), 0);
    static const struct {
        const char *name, *value;
        int status;
    } reqs[] = {
        {"x-tenant", "acme", 0}, {"X-Tenant", "acme", 429}, {"x-tenant", "ACME", 0}, {"x-tenant", "", 0}, {"x-tenant", "", 429}};
    for (size_t i = 0; i != sizeof(reqs) / sizeof(reqs[0]); i++) {
        fx_init(&f, snap, route, "GET", "/a");
        fx_header(&f, reqs[i].name, reqs[i].value);
        cph_ratelimit_on_req(&f.r);
        assert_int_equal(sent_status, reqs[i].status);
        h2o_mem_clear_pool(&f.req.pool);
    }
    for (int i = 0; i != 3; i++) { /* one bucket for every client */
        snprintf(peer, sizeof(peer), "10.1.0.%d", i);
        assert_int_equal(one(all, &all->routes[0], NULL, NULL), 0);
    }
    assert_int_equal(one(all, &all->routes[0], NULL, NULL), 429);
    drop(snap);
    drop(all);
}

/* ---------------------------------------------------------------- stacking, override, answers */

static void test_stacked_limits_and_headers(void **state)
{
    (void)state;
    cph_snapshot_t *snap =
        build_route("[{\"name\":\"wide\",\"key\":\"ip\",\"rate\":100,\"period_s\":86400,\"burst\":9,\"headers\":true},"
                    "{\"name\":\"narrow\",\"key\":\"ip\",\"rate\":1000,\"period_s\":3600,\"burst\":2,\"headers\":true},"
                    "{\"name\":\"quiet\",\"key\":\"ip\",\"rate\":5,\"period_s\":1,\"burst\":0}]",
                    "");
    const cph_route_t *route = &snap->routes[0];
    fixture_t f;

    cph_ratelimit_local_reset(0);
    strcpy(peer, "10.2.0.1");
    for (int i = 0; i != 3; i++) {
        fx_init(&f, snap, route, "GET", "/a");
        assert_int_equal(cph_ratelimit_on_req(&f.r), i == 0 ? CPH_NEXT : CPH_DONE);
        if (i == 0) { /* allowed: the most restrictive limit with headers:true (narrow: 2 left of 3) */
            assert_string_equal(extra(&f, "ratelimit-limit"), "1000");
            assert_string_equal(extra(&f, "ratelimit-remaining"), "2");
            assert_string_equal(extra(&f, "ratelimit-reset"), "4"); /* 3.6 s, rounded up */
            assert_null(extra(&f, "retry-after"));
        } else { /* quiet (5 per second, burst 0) refuses the second request of this ms */
            assert_int_equal(sent_status, 429);
            assert_string_equal(extra(&f, "ratelimit-limit"), "5");
            assert_string_equal(extra(&f, "ratelimit-remaining"), "0");
            assert_string_equal(extra(&f, "retry-after"), "1");
        }
        h2o_mem_clear_pool(&f.req.pool);
    }
    /* without quiet: narrow refuses the 4th request, wide still has some */
    cph_snapshot_t *two = build_route("[{\"name\":\"wide\",\"key\":\"ip\",\"rate\":100,\"period_s\":86400,\"burst\":9},"
                                      "{\"name\":\"narrow\",\"key\":\"ip\",\"rate\":1000,\"period_s\":3600,\"burst\":2}]",
                                      "");
    strcpy(peer, "10.2.0.2");
    for (int i = 0; i != 3; i++) {
        fx_init(&f, two, &two->routes[0], "GET", "/a");
        assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_NEXT);
        assert_null(extra(&f, "ratelimit-limit")); /* headers:false: nothing on allowed answers */
        h2o_mem_clear_pool(&f.req.pool);
    }
    fx_init(&f, two, &two->routes[0], "GET", "/a");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 429);
    assert_non_null(strstr(sent_body, "\"error\":\"rate_limited\""));
    assert_non_null(strstr(sent_body, "\"request_id\":\"0123456789abcdef0123456789abcdef\""));
    assert_string_equal(extra(&f, "ratelimit-limit"), "1000");
    assert_string_equal(extra(&f, "retry-after"), "4");      /* T = 3.6 s */
    assert_string_equal(extra(&f, "ratelimit-reset"), "11"); /* 3 intervals: 10.8 s */
    ssize_t i = h2o_find_header_by_str(&f.req.res.headers, H2O_STRLIT("retry-after"), -1);
    assert_true(i != -1); /* the error answer carries them */
    h2o_mem_clear_pool(&f.req.pool);
    assert_int_equal(counter(&two->routes[0].rate_limits->limits[1], CPH_RL_OUTCOME_LIMITED), 1);
    drop(snap);
    drop(two);
}

/* A request refused by a later limit of the stack spends nothing in the earlier ones. */
static void test_stack_is_all_or_nothing(void **state)
{
    (void)state;
    cph_snapshot_t *both = build_route("[{\"name\":\"ten\",\"key\":\"ip\",\"rate\":10,\"period_s\":86400,\"burst\":9},"
                                       "{\"name\":\"three\",\"key\":\"ip\",\"rate\":3,\"period_s\":86400,\"burst\":2}]",
                                       "");
    cph_snapshot_t *ten = build_route("[{\"name\":\"ten\",\"key\":\"ip\",\"rate\":10,\"period_s\":86400,\"burst\":9}]", "");
    const cph_rl_limit_t *t10 = &both->routes[0].rate_limits->limits[0], *t3 = &both->routes[0].rate_limits->limits[1];
    uint64_t a10 = counter(t10, CPH_RL_OUTCOME_ALLOWED), l10 = counter(t10, CPH_RL_OUTCOME_LIMITED);
    uint64_t a3 = counter(t3, CPH_RL_OUTCOME_ALLOWED), l3 = counter(t3, CPH_RL_OUTCOME_LIMITED);
    int passed = 0;

    cph_ratelimit_local_reset(0);
    strcpy(peer, "10.4.0.1");
    for (int i = 0; i != 10; i++)
        passed += one(both, &both->routes[0], NULL, NULL) == 0;
    assert_int_equal(passed, 3);
    assert_int_equal(counter(t10, CPH_RL_OUTCOME_ALLOWED) - a10, 3);
    assert_int_equal(counter(t10, CPH_RL_OUTCOME_LIMITED) - l10, 0);
    assert_int_equal(counter(t3, CPH_RL_OUTCOME_ALLOWED) - a3, 3);
    assert_int_equal(counter(t3, CPH_RL_OUTCOME_LIMITED) - l3, 7);
    /* the next snapshot keeps only "ten" (the same bucket): exactly 7 of its 10 are left */
    passed = 0;
    for (int i = 0; i != 10; i++)
        passed += one(ten, &ten->routes[0], NULL, NULL) == 0;
    assert_int_equal(passed, 7);
    drop(both);
    drop(ten);
}

static void test_endpoint_limits_replace_route_limits(void **state)
{
    (void)state;
    cph_snapshot_t *snap =
        build_route("[" DAY_LIMIT("r", "route", 0) "]",
                    "\"endpoints\":[{\"id\":7,\"rate_limits\":[]},{\"id\":8,\"rate_limits\":[" DAY_LIMIT("e", "route", 1) "]}]");
    const cph_route_t *route = &snap->routes[0];
    cph_authz_rule_t r7 = {.id = 7}, r8 = {.id = 8}, r9 = {.id = 9};
    fixture_t f;
    int status[4];

    cph_ratelimit_local_reset(0);
    for (int i = 0; i != 5; i++) { /* rule 7: none */
        fx_init(&f, snap, route, "GET", "/a");
        f.r.rule = &r7;
        assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_NEXT);
        h2o_mem_clear_pool(&f.req.pool);
    }
    for (int i = 0; i != 4; i++) { /* rule 8: its own limit (burst 1), not the route's; rule 9 has none: the route's */
        fx_init(&f, snap, route, "GET", "/a");
        f.r.rule = i < 3 ? &r8 : &r9;
        cph_ratelimit_on_req(&f.r);
        status[i] = sent_status;
        h2o_mem_clear_pool(&f.req.pool);
    }
    assert_int_equal(status[0], 0);
    assert_int_equal(status[1], 0);
    assert_int_equal(status[2], 429);
    assert_int_equal(status[3], 0);
    assert_int_equal(one(snap, route, NULL, NULL), 429); /* the route's limit was used once, by rule 9 */
    drop(snap);
}

static void test_login_limit(void **state)
{
    (void)state;
    cph_snapshot_t *snap = build_route("[]", "\"gateway\":{\"login_rate_limit\":{\"rate\":1,\"period_s\":60,\"burst\":1}}");
    cph_route_t api = {.name = "/auth"};
    fixture_t f;

    snap->auth_api_route = &api;
    cph_ratelimit_local_reset(0);
    strcpy(peer, "10.3.0.1");
    for (int i = 0; i != 3; i++) {
        fx_init(&f, snap, NULL, "POST", "/auth/login");
        int ret = cph_builtin_on_req(&f.r);
        assert_int_equal(ret, i < 2 ? CPH_NEXT : CPH_DONE);
        assert_int_equal(sent_status, i < 2 ? 0 : 429);
        if (i == 2)
            assert_string_equal(extra(&f, "retry-after"), "60"); /* TAT now + 120 s, tolerance 60 s */
        h2o_mem_clear_pool(&f.req.pool);
    }
    fx_init(&f, snap, NULL, "POST", "/auth/refresh"); /* only the login is limited */
    assert_int_equal(cph_builtin_on_req(&f.r), CPH_NEXT);
    h2o_mem_clear_pool(&f.req.pool);
    fx_init(&f, snap, &api, "POST", "/auth/refresh");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_NEXT);
    h2o_mem_clear_pool(&f.req.pool);
    strcpy(peer, "10.3.0.2");
    fx_init(&f, snap, NULL, "POST", "/auth/login");
    assert_int_equal(cph_builtin_on_req(&f.r), CPH_NEXT);
    h2o_mem_clear_pool(&f.req.pool);
    drop(snap);
}

/* ---------------------------------------------------------------- redis */

static void test_redis_unconfigured_follows_on_error(void **state)
{
    (void)state;
    cph_snapshot_t *snap = build_route(
        "[{\"name\":\"o\",\"key\":\"ip\",\"rate\":1,\"period_s\":60,\"backend\":\"redis\"},"
        "{\"name\":\"c\",\"key\":\"header:x-c\",\"rate\":1,\"period_s\":60,\"backend\":\"redis\",\"on_error\":\"closed\"}]",
        "");
    const cph_rl_limit_t *o = &snap->routes[0].rate_limits->limits[0], *c = &snap->routes[0].rate_limits->limits[1];
    uint64_t open0 = counter(o, CPH_RL_OUTCOME_ERROR_OPEN), closed0 = counter(c, CPH_RL_OUTCOME_ERROR_CLOSED);
    long long calls = evalsha_calls();
    fixture_t f;

    for (int i = 0; i != 3; i++)
        assert_int_equal(one(snap, &snap->routes[0], NULL, NULL), 0);
    fx_init(&f, snap, &snap->routes[0], "GET", "/a");
    fx_header(&f, "x-c", "1");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 503);
    assert_non_null(strstr(sent_body, "\"ratelimit_unavailable\""));
    h2o_mem_clear_pool(&f.req.pool);
    assert_int_equal(evalsha_calls(), calls); /* no gateway.redis: never submitted */
    assert_int_equal(counter(o, CPH_RL_OUTCOME_ERROR_OPEN) - open0, 4);
    assert_int_equal(counter(c, CPH_RL_OUTCOME_ERROR_CLOSED) - closed0, 1);
    drop(snap);
}

static void test_redis_async(void **state)
{
    (void)state;
    const char *limits =
        "[{\"name\":\"lim\",\"key\":\"header:x-user\",\"rate\":7,\"period_s\":60,\"backend\":\"redis\",\"on_error\":\"closed\","
        "\"headers\":true}," DAY_LIMIT("after", "route", 100) "]";
    cph_snapshot_t *snap = build_route(limits, gateway_redis());
    const cph_route_t *route = &snap->routes[0];
    fixture_t f;
    int status;

    cph_ratelimit_local_reset(0);
    redis_flushall();
    /* the answer comes later: the stage waits, then resumes the pipeline (the fixture's resume answers 500) */
    fx_init(&f, snap, route, "GET", "/a");
    fx_header(&f, "x-user", "evil:key\r\n*1");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 0);
    wait_answers(&f, 1, &status);
    assert_int_equal(status, 0); /* resumed */
    assert_string_equal(extra(&f, "ratelimit-remaining"), "0");
    assert_string_equal(extra(&f, "ratelimit-reset"), "9"); /* T = 8571.4 ms */
    h2o_mem_clear_pool(&f.req.pool);
    redisReply *r = redis_sync("KEYS %s", "cph:rl:*");
    assert_true(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    assert_int_equal(r->element[0]->len, strlen("cph:rl:r1:lim:") + 32);
    assert_memory_equal(r->element[0]->str, "cph:rl:r1:lim:", 14);
    assert_int_equal(strspn(r->element[0]->str + 14, "0123456789abcdef"), 32); /* the client's bytes never reach Redis */
    freeReplyObject(r);

    /* refused: 429 with Redis's values */
    fx_init(&f, snap, route, "GET", "/a");
    fx_header(&f, "x-user", "evil:key\r\n*1");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    wait_answers(&f, 1, &status);
    assert_int_equal(status, 429);
    assert_string_equal(extra(&f, "retry-after"), "9");
    assert_string_equal(extra(&f, "ratelimit-limit"), "7");
    assert_string_equal(extra(&f, "ratelimit-remaining"), "0");
    h2o_mem_clear_pool(&f.req.pool);

    /* the request is gone before the answer: the answer touches nothing (ASan would see it) */
    fx_init(&f, snap, route, "GET", "/a");
    fx_header(&f, "x-user", "u2");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    h2o_mem_clear_pool(&f.req.pool);
    for (uint64_t end = mono_ms() + 200; mono_ms() < end;)
        h2o_evloop_run(rd.loop, 10);
    assert_int_equal(f.req.res.status, 0);
    assert_int_equal(counter(&route->rate_limits->limits[1], CPH_RL_OUTCOME_ALLOWED), 1); /* after the redis limit passed */
    drop(snap);
}

/* SIGSTOP: no answer within the deadline. A closed limit answers 503, an open one lets the request through, and every
 * redis limit of the stack is counted by its own on_error. */
static void test_redis_stack_deadline(void **state)
{
    (void)state;
    const char *limits = "[{\"name\":\"o1\",\"key\":\"route\",\"rate\":1000,\"period_s\":1,\"burst\":1000,\"backend\":\"redis\"},"
                         "{\"name\":\"o2\",\"key\":\"ip\",\"rate\":1000,\"period_s\":1,\"burst\":1000,\"backend\":\"redis\"},"
                         "{\"name\":\"c\",\"key\":\"header:x-c\",\"rate\":1000,\"period_s\":1,\"burst\":1000,\"backend\":\"redis\","
                         "\"on_error\":\"closed\"}]";
    cph_snapshot_t *snap = build_route(limits, gateway_redis());
    const cph_route_t *route = &snap->routes[0];
    const cph_rl_limit_t *o1 = &route->rate_limits->limits[0], *o2 = &route->rate_limits->limits[1];
    const cph_rl_limit_t *c = &route->rate_limits->limits[2];
    uint64_t e1 = counter(o1, CPH_RL_OUTCOME_ERROR_OPEN), e2 = counter(o2, CPH_RL_OUTCOME_ERROR_OPEN);
    uint64_t ec = counter(c, CPH_RL_OUTCOME_ERROR_CLOSED);
    fixture_t f;
    int status;

    strcpy(peer, "10.6.0.1");
    for (int i = 0; i != 100 && one_async(snap, route) != 0; i++) /* connected (an earlier test may have stopped it) */
        usleep(20000);
    assert_int_equal(one_async(snap, route), 0);
    assert_int_equal(kill(rd.pid, SIGSTOP), 0);
    uint64_t t0 = mono_ms();
    assert_int_equal(one_async(snap, route), 0); /* open, open: allowed after the deadline */
    uint64_t took = mono_ms() - t0;
    assert_true(took >= REDIS_TIMEOUT_MS - 2 && took < REDIS_TIMEOUT_MS + 1000);
    fx_init(&f, snap, route, "GET", "/a");
    fx_header(&f, "x-c", "1");
    t0 = mono_ms();
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    wait_answers(&f, 1, &status);
    took = mono_ms() - t0;
    assert_int_equal(status, 503); /* one call for the stack: one deadline, not one per limit */
    assert_true(took >= REDIS_TIMEOUT_MS - 2 && took < REDIS_TIMEOUT_MS + 1000);
    assert_non_null(strstr(sent_body, "\"ratelimit_unavailable\""));
    h2o_mem_clear_pool(&f.req.pool);
    assert_int_equal(kill(rd.pid, SIGCONT), 0);
    assert_int_equal(counter(o1, CPH_RL_OUTCOME_ERROR_OPEN) - e1, 2);
    assert_int_equal(counter(o2, CPH_RL_OUTCOME_ERROR_OPEN) - e2, 2);
    assert_int_equal(counter(c, CPH_RL_OUTCOME_ERROR_CLOSED) - ec, 1);
    for (int i = 0; i != 100 && one_async(snap, route) != 0; i++) /* answers again */
        usleep(20000);
    drop(snap);
}

/* Ten requests at once through a 10/s (burst 9) + 3/s (burst 2) stack of redis limits: 3 pass, the 7 refused by the
 * 3/s limit spent nothing, so the next snapshot with the 10/s limit alone (the same key) passes exactly 7 of 8. Every
 * request of a batch is in flight together (pipelined on the one connection): a few ms, far under the 100 ms the 10/s
 * limit needs to drip one back. */
static void test_redis_stack_is_all_or_nothing(void **state)
{
    (void)state;
#define TEN "{\"name\":\"ten\",\"key\":\"ip\",\"rate\":10,\"period_s\":1,\"burst\":9,\"backend\":\"redis\",\"on_error\":\"closed\"}"
#define THREE                                                                                                                      \
    "{\"name\":\"three\",\"key\":\"ip\",\"rate\":3,\"period_s\":1,\"burst\":2,\"backend\":\"redis\",\"on_error\":\"closed\"}"
    cph_snapshot_t *both = build_route("[" TEN "," THREE "]", gateway_redis());
    cph_snapshot_t *ten = build_route("[" TEN "]", gateway_redis());
    const cph_rl_limit_t *t10 = &both->routes[0].rate_limits->limits[0], *t3 = &both->routes[0].rate_limits->limits[1];
    uint64_t a10, l10, a3, l3;
    long long calls;
    fixture_t f[10];
    int status[10], passed = 0;

    strcpy(peer, "10.7.0.1");
    for (int i = 0; i != 100 && one_async(ten, &ten->routes[0]) == 503; i++) /* connected */
        usleep(20000);
    redis_flushall();
    calls = evalsha_calls();
    a10 = counter(t10, CPH_RL_OUTCOME_ALLOWED), l10 = counter(t10, CPH_RL_OUTCOME_LIMITED);
    a3 = counter(t3, CPH_RL_OUTCOME_ALLOWED), l3 = counter(t3, CPH_RL_OUTCOME_LIMITED);
    for (int i = 0; i != 10; i++) {
        fx_init(&f[i], both, &both->routes[0], "GET", "/a");
        assert_int_equal(cph_ratelimit_on_req(&f[i].r), CPH_DONE);
    }
    wait_answers(f, 10, status);
    for (int i = 0; i != 10; i++) {
        passed += status[i] == 0;
        if (status[i] != 0) {
            assert_int_equal(status[i], 429);
            assert_string_equal(extra(&f[i], "ratelimit-limit"), "3");
        }
        h2o_mem_clear_pool(&f[i].req.pool);
    }
    assert_int_equal(passed, 3);
    assert_int_equal(evalsha_calls() - calls, 10); /* one script call per request, whatever the stack */
    assert_int_equal(counter(t10, CPH_RL_OUTCOME_ALLOWED) - a10, 3);
    assert_int_equal(counter(t10, CPH_RL_OUTCOME_LIMITED) - l10, 0);
    assert_int_equal(counter(t3, CPH_RL_OUTCOME_ALLOWED) - a3, 3);
    assert_int_equal(counter(t3, CPH_RL_OUTCOME_LIMITED) - l3, 7);
    passed = 0;
    for (int i = 0; i != 8; i++) {
        fx_init(&f[i], ten, &ten->routes[0], "GET", "/a");
        assert_int_equal(cph_ratelimit_on_req(&f[i].r), CPH_DONE);
    }
    wait_answers(f, 8, status);
    for (int i = 0; i != 8; i++) {
        passed += status[i] == 0;
        h2o_mem_clear_pool(&f[i].req.pool);
    }
    assert_int_equal(passed, 7);
    drop(both);
    drop(ten);
#undef TEN
#undef THREE
}

/* Local and redis limits in one stack: a local refusal costs no redis call, a redis refusal no local token. */
static void test_redis_and_local_stack(void **state)
{
    (void)state;
    cph_snapshot_t *snap =
        build_route("[" DAY_LIMIT("loc", "ip", 1) ",{\"name\":\"rem\",\"key\":\"route\",\"rate\":1,"
                                                  "\"period_s\":60,\"backend\":\"redis\",\"on_error\":\"closed\"}]",
                    gateway_redis());
    const cph_route_t *route = &snap->routes[0];
    const cph_rl_limit_t *loc = &route->rate_limits->limits[0], *rem = &route->rate_limits->limits[1];
    uint64_t la = counter(loc, CPH_RL_OUTCOME_ALLOWED), ll = counter(loc, CPH_RL_OUTCOME_LIMITED);
    uint64_t rl = counter(rem, CPH_RL_OUTCOME_LIMITED);
    long long calls;

    cph_ratelimit_local_reset(0);
    strcpy(peer, "10.5.0.1");
    for (int i = 0; i != 100 && one_async(snap, route) == 503; i++) /* connected */
        usleep(20000);
    cph_ratelimit_local_reset(0);
    redis_flushall();
    la = counter(loc, CPH_RL_OUTCOME_ALLOWED);
    assert_int_equal(one_async(snap, route), 0);   /* loc 1 of 2, rem 1 of 1 */
    assert_int_equal(one_async(snap, route), 429); /* rem refuses: loc is not charged */
    assert_int_equal(one_async(snap, route), 429);
    assert_int_equal(counter(rem, CPH_RL_OUTCOME_LIMITED) - rl, 2);
    redis_flushall();                            /* rem is whole again */
    assert_int_equal(one_async(snap, route), 0); /* the local token was still there */
    calls = evalsha_calls();
    assert_int_equal(one_async(snap, route), 429); /* now it is spent: refused before any redis call */
    assert_int_equal(evalsha_calls(), calls);
    assert_int_equal(counter(loc, CPH_RL_OUTCOME_ALLOWED) - la, 2);
    assert_int_equal(counter(loc, CPH_RL_OUTCOME_LIMITED) - ll, 1);
    drop(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile),
        cmocka_unit_test(test_snapshot_build),
        cmocka_unit_test(test_compile_refusals),
        cmocka_unit_test(test_ip_key_and_trusted_hops),
        cmocka_unit_test(test_principal_keys),
        cmocka_unit_test(test_route_and_header_keys),
        cmocka_unit_test(test_stacked_limits_and_headers),
        cmocka_unit_test(test_stack_is_all_or_nothing),
        cmocka_unit_test(test_endpoint_limits_replace_route_limits),
        cmocka_unit_test(test_redis_and_local_stack),
        cmocka_unit_test(test_login_limit),
        cmocka_unit_test(test_redis_unconfigured_follows_on_error),
        cmocka_unit_test(test_redis_async),
        cmocka_unit_test(test_redis_stack_is_all_or_nothing),
        cmocka_unit_test(test_redis_stack_deadline),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
