/*
 * edge_test: compile/edge.c and filter/edge.c. CIDR parsing and lookup for IPv4, IPv6 and IPv4-mapped addresses at the
 * edges (/0, /32, /128, neighbours of a range), canonical-only CIDRs, merged lists; then the filter on hand-built
 * requests over a fake connection (peer address and TLS chosen by the test) against snapshots compiled from JSON
 * (cph_proxy_compile + cph_router_compile + cph_edge_compile, not through the validator): deny over allow, gateway
 * then route lists, X-Forwarded-For trusted only per trusted_proxy_hops, 308 only for plain HTTP and only with a TLS
 * port, 414 / 431 / 413 exactly above the limits, CORS preflight / simple / disallowed / wildcard, security headers
 * only when configured and HSTS only on TLS, and a route without policies adding nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include "dataplane/compile/compile.h"
#include "dataplane/compile/edge.h"
#include "dataplane/core/server.h"
#include "dataplane/filter/filter.h"
#include "send_fixture.h"
#include "snap_fixture.h"


/* ---- a fake connection: the peer and whether it is TLS */
static struct sockaddr_storage peer_addr;
static h2o_socket_t fake_sock;

static socklen_t fake_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    memcpy(sa, &peer_addr, sizeof(peer_addr));
    return sizeof(peer_addr);
}

static h2o_socket_t *fake_get_socket(h2o_conn_t *conn)
{
    (void)conn;
    return &fake_sock;
}

static const h2o_conn_callbacks_t callbacks = {.get_peername = fake_peername, .get_socket = fake_get_socket};

static void set_peer(const char *ip)
{
    memset(&peer_addr, 0, sizeof(peer_addr));
    if (strchr(ip, ':') != NULL) {
        peer_addr.ss_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&peer_addr)->sin6_addr), 1);
    } else {
        peer_addr.ss_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &((struct sockaddr_in *)&peer_addr)->sin_addr), 1);
    }
}

static void set_tls(int on)
{
    fake_sock.ssl = on ? (struct st_h2o_socket_ssl_t *)&fake_sock : NULL; /* only compared with NULL */
}

/* ---- snapshots */
/* Compiles services + routes, then the edge part (snap_fixture.h); returns cph_edge_compile's result (err filled on -1). */
static int build(snapfx_t *f, const char *json, cph_error_t *err)
{
    return snapfx_build(f, json, cph_edge_compile, err);
}

static void build_ok(snapfx_t *f, const char *json)
{
    cph_error_t err;

    if (build(f, json, &err) != 0)
        fail_msg("edge compile failed: %s at %s: %s", err.code, err.path, err.msg);
}

/* ---- requests */
typedef struct st_reqfx_t {
    h2o_conn_t conn;
    h2o_req_t req;
    cph_req_t r;
} reqfx_t;

static void req_init(reqfx_t *q, snapfx_t *f, size_t route, const char *method, const char *target)
{
    memset(q, 0, sizeof(*q));
    h2o_mem_init_pool(&q->req.pool);
    q->conn.callbacks = &callbacks;
    q->req.conn = &q->conn;
    q->req.input.method = h2o_iovec_init(method, strlen(method));
    q->req.input.path = h2o_iovec_init(target, strlen(target));
    q->req.input.authority = h2o_iovec_init(H2O_STRLIT("API.example.com:8080"));
    q->r.req = &q->req;
    q->r.snap = &f->snap;
    q->r.route = &f->snap.routes[route];
    sent_status = 0;
    sent_body[0] = '\0';
}

static void req_add(reqfx_t *q, const char *name, const char *value)
{
    h2o_add_header_by_str(&q->req.pool, &q->req.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

/* the value of a header among the sent response headers, or NULL */
static const char *res_header(reqfx_t *q, const char *name)
{
    for (size_t i = 0; i != q->req.res.headers.size; ++i)
        if (h2o_lcstris(q->req.res.headers.entries[i].name->base, q->req.res.headers.entries[i].name->len, name, strlen(name)))
            return h2o_strdup(&q->req.pool, q->req.res.headers.entries[i].value.base, q->req.res.headers.entries[i].value.len).base;
    return NULL;
}

/* the value of a header the stages added for the response (r->res_extra), or NULL */
static const char *extra_header(reqfx_t *q, const char *name)
{
    for (size_t i = 0; i != q->r.res_extra.size; ++i)
        if (h2o_memis(q->r.res_extra.entries[i].name->base, q->r.res_extra.entries[i].name->len, name, strlen(name)))
            return h2o_strdup(&q->req.pool, q->r.res_extra.entries[i].value.base, q->r.res_extra.entries[i].value.len).base;
    return NULL;
}

/* runs the filter; returns the status answered, or 0 when the request went on */
static int run(reqfx_t *q)
{
    int ret = cph_edge_on_req(&q->r);

    assert_int_equal(ret == CPH_DONE, sent_status != 0);
    return ret == CPH_DONE ? sent_status : 0;
}

static int run_from(snapfx_t *f, size_t route, const char *peer, const char *xff)
{
    reqfx_t q;
    int status;

    set_peer(peer);
    req_init(&q, f, route, "GET", "/");
    if (xff != NULL)
        req_add(&q, "x-forwarded-for", xff);
    status = run(&q);
    if (status == 403)
        assert_non_null(strstr(sent_body, "\"ip_denied\""));
    h2o_mem_clear_pool(&q.req.pool);
    return status;
}

/* ---------------------------------------------------------------- CIDR */

static int contains(const cph_cidr_set_t *set, const char *ip)
{
    set_peer(ip);
    return cph_edge_cidr_contains(set, &peer_addr);
}

static void test_cidr_parse(void **state)
{
    (void)state;
    static const char *bad[] = {
        "10.0.0.1/8", "10.0.0.0/33",    "10.0.0.0/",      "10.0.0.0/08",         "10.0.0.0/-1",  "10.0.0/8",       "x",          "",
        "/8",         "2001:db8::1/32", "2001:db8::/129", "::ffff:10.0.0.1/100", "10.0.0.0/8/8", "2001:db8::/32 ", " 10.0.0.0/8"};
    cph_ip4_range_t v4;
    cph_ip6_range_t v6;
    int is_v6;

    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        if (cph_edge_parse_cidr(bad[i], &v4, &v6, &is_v6) == 0)
            fail_msg("accepted %s", bad[i]);
    assert_int_equal(cph_edge_parse_cidr("10.0.0.0/8", &v4, &v6, &is_v6), 0);
    assert_int_equal(is_v6, 0);
    assert_int_equal(v4.lo, 0x0a000000u);
    assert_int_equal(v4.hi, 0x0affffffu);
    assert_int_equal(cph_edge_parse_cidr("0.0.0.0/0", &v4, &v6, &is_v6), 0);
    assert_int_equal(v4.lo, 0);
    assert_int_equal(v4.hi, UINT32_MAX);
    assert_int_equal(cph_edge_parse_cidr("10.1.2.3", &v4, &v6, &is_v6), 0); /* bare = /32 */
    assert_int_equal(v4.lo, v4.hi);
    assert_int_equal(cph_edge_parse_cidr("::ffff:10.1.0.0/112", &v4, &v6, &is_v6), 0); /* mapped = IPv4 /16 */
    assert_int_equal(is_v6, 0);
    assert_int_equal(v4.lo, 0x0a010000u);
    assert_int_equal(v4.hi, 0x0a01ffffu);
    assert_int_equal(cph_edge_parse_cidr("2001:db8::/32", &v4, &v6, &is_v6), 0);
    assert_int_equal(is_v6, 1);
    assert_true(v6.lo.hi == 0x20010db800000000ull && v6.lo.lo == 0);
    assert_true(v6.hi.hi == 0x20010db8ffffffffull && v6.hi.lo == UINT64_MAX);
    assert_int_equal(cph_edge_parse_cidr("2001:db8::/64", &v4, &v6, &is_v6), 0);
    assert_true(v6.hi.hi == 0x20010db800000000ull && v6.hi.lo == UINT64_MAX);
    assert_int_equal(cph_edge_parse_cidr("2001:db8:0:0:8000::/65", &v4, &v6, &is_v6), 0);
    assert_true(v6.lo.lo == 0x8000000000000000ull && v6.hi.lo == UINT64_MAX);
    assert_int_equal(cph_edge_parse_cidr("2001:db8:0:0:4000::/65", &v4, &v6, &is_v6), -1); /* host bit of a /65 */
}

static void test_cidr_contains_v4_edges(void **state)
{
    (void)state;
    snapfx_t f;

    build_ok(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{\"ip_allow\":[\"10.0.0.0/8\",\"192.0.2.1/32\","
                 "\"198.51.100.0/24\",\"198.51.100.128/25\",\"203.0.113.0/25\",\"203.0.113.128/25\"]}}");
    const cph_cidr_set_t *s = &f.snap.edge->allow;
    assert_int_equal(s->num_cidrs, 6);
    assert_int_equal(s->num_v4, 4); /* 198.51.100.128/25 inside the /24; the two 203.0.113 halves are adjacent */
    assert_true(contains(s, "10.0.0.0") && contains(s, "10.255.255.255") && contains(s, "10.1.2.3"));
    assert_false(contains(s, "9.255.255.255") || contains(s, "11.0.0.0"));
    assert_true(contains(s, "192.0.2.1"));
    assert_false(contains(s, "192.0.2.0") || contains(s, "192.0.2.2"));
    assert_true(contains(s, "198.51.100.200") && contains(s, "203.0.113.0") && contains(s, "203.0.113.255"));
    assert_false(contains(s, "0.0.0.0") || contains(s, "255.255.255.255"));
    assert_true(contains(s, "::ffff:10.9.9.9")); /* mapped IPv6 compared as IPv4 */
    assert_false(contains(s, "::ffff:11.9.9.9"));
    assert_false(contains(s, "::a00:1")); /* IPv4-compatible, not mapped: an IPv6 address */
    snapfx_destroy(&f);

    build_ok(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{\"ip_allow\":[\"0.0.0.0/0\"]}}");
    assert_true(contains(&f.snap.edge->allow, "0.0.0.0") && contains(&f.snap.edge->allow, "255.255.255.255"));
    assert_false(contains(&f.snap.edge->allow, "::1")); /* /0 of IPv4 is not every IPv6 address */
    snapfx_destroy(&f);
}

static void test_cidr_contains_v6_edges(void **state)
{
    (void)state;
    snapfx_t f;

    build_ok(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{\"ip_deny\":[\"2001:db8::/32\",\"2001:db8:1::/48\",\"::1/128\","
                 "\"fe80::\",\"::ffff:192.0.2.0/120\"]}}");
    const cph_cidr_set_t *s = &f.snap.edge->deny;
    assert_int_equal(s->num_v6, 3);
    assert_int_equal(s->num_v4, 1);
    assert_true(contains(s, "2001:db8::") && contains(s, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(contains(s, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff") || contains(s, "2001:db9::"));
    assert_true(contains(s, "::1") && contains(s, "fe80::"));
    assert_false(contains(s, "::") || contains(s, "::2") || contains(s, "fe80::1"));
    assert_true(contains(s, "192.0.2.77") && contains(s, "::ffff:192.0.2.77"));
    assert_false(contains(s, "192.0.3.0"));
    snapfx_destroy(&f);

    build_ok(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{\"ip_deny\":[\"::/0\"]}}");
    assert_true(contains(&f.snap.edge->deny, "::") && contains(&f.snap.edge->deny, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(contains(&f.snap.edge->deny, "10.0.0.1"));
    snapfx_destroy(&f);
}

static void test_cidr_compile_errors(void **state)
{
    (void)state;
    snapfx_t f;
    cph_error_t err;

    assert_int_equal(build(&f, "{" SERVICES ",\"routes\":[],\"gateway\":{\"ip_deny\":[\"10.0.0.0/8\",\"10.0.0.1/8\"]}}", &err), -1);
    assert_string_equal(err.path, "/gateway/ip_deny");
    assert_non_null(strstr(err.msg, "item 1"));
    snapfx_destroy(&f);
    assert_int_equal(build(&f,
                           "{" SERVICES ",\"routes\":[{\"name\":\"a\",\"service\":\"s\",\"paths\":[\"/\"]},"
                           "{\"name\":\"b\",\"service\":\"s\",\"paths\":[\"/b\"],\"policies\":{\"ip_allow\":[42]}}]}",
                           &err),
                     -1);
    assert_string_equal(err.path, "/routes/1/policies/ip_allow");
    snapfx_destroy(&f);
    assert_int_equal(build(&f,
                           "{" SERVICES ",\"routes\":[{\"name\":\"a\",\"service\":\"s\",\"paths\":[\"/\"],\"policies\":"
                           "{\"cors\":{\"origins\":[\"*\"],\"credentials\":true}}}]}",
                           &err),
                     -1);
    assert_string_equal(err.path, "/routes/0/policies/cors");
    snapfx_destroy(&f);
}

/* ---------------------------------------------------------------- IP lists in the filter */

static void test_ip_lists(void **state)
{
    (void)state;
    snapfx_t f;

    build_ok(&f, "{" SERVICES ",\"routes\":["
                 "{\"name\":\"open\",\"service\":\"s\",\"paths\":[\"/\"]},"
                 "{\"name\":\"internal\",\"service\":\"s\",\"paths\":[\"/i\"],\"policies\":"
                 "{\"ip_allow\":[\"10.0.0.0/8\",\"2001:db8::/32\"],\"ip_deny\":[\"10.1.2.3\"]}}],"
                 "\"gateway\":{\"ip_deny\":[\"192.0.2.0/24\"]}}");
    assert_int_equal(run_from(&f, 0, "198.51.100.1", NULL), 0);
    assert_int_equal(run_from(&f, 0, "192.0.2.9", NULL), 403);        /* gateway deny, any route */
    assert_int_equal(run_from(&f, 0, "::ffff:192.0.2.9", NULL), 403); /* mapped peer */
    assert_int_equal(run_from(&f, 1, "10.9.9.9", NULL), 0);           /* allowed */
    assert_int_equal(run_from(&f, 1, "10.1.2.3", NULL), 403);         /* deny wins over allow */
    assert_int_equal(run_from(&f, 1, "2001:db8::5", NULL), 0);
    assert_int_equal(run_from(&f, 1, "198.51.100.1", NULL), 403); /* outside a non-empty allow list */
    assert_int_equal(run_from(&f, 1, "2001:db9::5", NULL), 403);
    snapfx_destroy(&f);

    /* an allow list at the gateway, nothing on the route: the route has no edge of its own */
    build_ok(&f, "{" SERVICES ",\"routes\":[{\"name\":\"a\",\"service\":\"s\",\"paths\":[\"/\"],\"policies\":{}}],"
                 "\"gateway\":{\"ip_allow\":[\"10.0.0.0/8\"]}}");
    assert_null(f.snap.routes[0].edge);
    assert_int_equal(run_from(&f, 0, "10.0.0.1", NULL), 0);
    assert_int_equal(run_from(&f, 0, "11.0.0.1", NULL), 403);
    snapfx_destroy(&f);
}

static void test_ip_lists_and_forwarded_for(void **state)
{
    (void)state;
    snapfx_t f;

    build_ok(&f, "{" SERVICES ",\"routes\":[{\"name\":\"i\",\"service\":\"s\",\"paths\":[\"/\"],\"policies\":"
                 "{\"ip_allow\":[\"10.0.0.0/8\"]}}]}");
    /* hops 0 (no gateway object): the client cannot choose its address */
    assert_int_equal(run_from(&f, 0, "203.0.113.1", "10.0.0.1"), 403);
    assert_int_equal(run_from(&f, 0, "10.0.0.1", "203.0.113.1"), 0);
    snapfx_destroy(&f);

    build_ok(&f, "{" SERVICES ",\"routes\":[{\"name\":\"i\",\"service\":\"s\",\"paths\":[\"/\"],\"policies\":"
                 "{\"ip_allow\":[\"10.0.0.0/8\"]}}],\"gateway\":{\"trusted_proxy_hops\":1}}");
    assert_int_equal(f.snap.edge->trusted_proxy_hops, 1);
    /* the peer is the trusted proxy; the last element is what it saw */
    assert_int_equal(run_from(&f, 0, "172.16.0.1", "10.0.0.1"), 0);
    assert_int_equal(run_from(&f, 0, "172.16.0.1", "10.0.0.1, 203.0.113.1"), 403); /* spoofed first element ignored */
    assert_int_equal(run_from(&f, 0, "172.16.0.1", "garbage"), 403);               /* garbage: the peer */
    assert_int_equal(run_from(&f, 0, "10.0.0.2", "garbage"), 0);
    snapfx_destroy(&f);
}

/* ---------------------------------------------------------------- redirect */

static void test_https_redirect(void **state)
{
    (void)state;
    snapfx_t f;
    reqfx_t q;

    build_ok(&f, "{" SERVICES ",\"routes\":[{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/\"],\"policies\":"
                 "{\"https_redirect\":true}},{\"name\":\"p\",\"service\":\"s\",\"paths\":[\"/p\"]}]}");
    set_peer("10.0.0.1");
    set_tls(0);
    cph_edge_set_tls_port(0); /* no TLS listener: ignored */
    req_init(&q, &f, 0, "POST", "/a/b?x=1");
    assert_int_equal(run(&q), 0);
    h2o_mem_clear_pool(&q.req.pool);

    { /* not set: the port of the worker's configured TLS listener */
        static cph_server_t server;
        static cph_worker_t worker;
        server.config.listen_tls = "[::]:9443";
        worker.server = &server;
        req_init(&q, &f, 0, "GET", "/x");
        q.r.worker = &worker;
        assert_int_equal(run(&q), 308);
        assert_string_equal(res_header(&q, "location"), "https://api.example.com:9443/x");
        h2o_mem_clear_pool(&q.req.pool);
        server.config.listen_tls = NULL;
        req_init(&q, &f, 0, "GET", "/x");
        q.r.worker = &worker;
        assert_int_equal(run(&q), 0);
        h2o_mem_clear_pool(&q.req.pool);
    }

    cph_edge_set_tls_port(8443);
    req_init(&q, &f, 0, "POST", "/a/b?x=1&y=%20\x7f");
    assert_int_equal(run(&q), 308);
    assert_string_equal(res_header(&q, "location"), "https://api.example.com:8443/a/b?x=1&y=%20%7F");
    h2o_mem_clear_pool(&q.req.pool);

    cph_edge_set_tls_port(443);
    req_init(&q, &f, 0, "GET", "/");
    assert_int_equal(run(&q), 308);
    assert_string_equal(res_header(&q, "location"), "https://api.example.com/");
    h2o_mem_clear_pool(&q.req.pool);

    req_init(&q, &f, 0, "GET", "/");
    q.req.input.authority = h2o_iovec_init(H2O_STRLIT("evil\r\nx: y"));
    assert_int_equal(run(&q), 400);
    h2o_mem_clear_pool(&q.req.pool);

    set_tls(1); /* already TLS */
    req_init(&q, &f, 0, "GET", "/");
    assert_int_equal(run(&q), 0);
    h2o_mem_clear_pool(&q.req.pool);
    set_tls(0);
    req_init(&q, &f, 1, "GET", "/p"); /* a route without the policy */
    assert_int_equal(run(&q), 0);
    h2o_mem_clear_pool(&q.req.pool);
    cph_edge_set_tls_port(0);
    snapfx_destroy(&f);
}

/* ---------------------------------------------------------------- limits */

static void test_limits(void **state)
{
    (void)state;
    snapfx_t f;
    reqfx_t q;
    char url[400];

    build_ok(&f, "{" SERVICES ",\"routes\":[{\"name\":\"l\",\"service\":\"s\",\"paths\":[\"/\"],\"policies\":"
                 "{\"limits\":{\"max_url_bytes\":300,\"max_headers\":3,\"max_body_bytes\":10}}},"
                 "{\"name\":\"d\",\"service\":\"s\",\"paths\":[\"/d\"]}],"
                 "\"gateway\":{\"limits\":{\"max_header_bytes\":2000,\"max_body_bytes\":20}}}");
    const cph_edge_route_t *e = f.snap.routes[0].edge;
    assert_non_null(e);
    assert_int_equal(e->limits.max_header_bytes, 2000); /* absent on the route: the gateway's */
    assert_int_equal(f.snap.edge->limits.max_url_bytes, CPH_EDGE_DEFAULT_MAX_URL);
    assert_int_equal(f.snap.edge->max_body_any, 20);
    set_peer("10.0.0.1");

    memset(url, 'a', sizeof(url));
    url[0] = '/';
    url[300] = '\0'; /* exactly at the limit */
    req_init(&q, &f, 0, "GET", url);
    assert_int_equal(run(&q), 0);
    h2o_mem_clear_pool(&q.req.pool);
    url[300] = 'a', url[301] = '\0';
    req_init(&q, &f, 0, "GET", url);
    assert_int_equal(run(&q), 414);
    assert_non_null(strstr(sent_body, "\"uri_too_long\""));
    h2o_mem_clear_pool(&q.req.pool);

    req_init(&q, &f, 0, "GET", "/");
    req_add(&q, "a", "1"), req_add(&q, "b", "2"), req_add(&q, "c", "3");
    assert_int_equal(run(&q), 0);
    h2o_mem_clear_pool(&q.req.pool);
    req_init(&q, &f, 0, "GET", "/");
    req_add(&q, "a", "1"), req_add(&q, "b", "2"), req_add(&q, "c", "3"), req_add(&q, "d", "4");
    assert_int_equal(run(&q), 431);
    assert_non_null(strstr(sent_body, "\"headers_too_large\""));
    h2o_mem_clear_pool(&q.req.pool);
    req_init(&q, &f, 1, "GET", "/d"); /* gateway: 2000 bytes of names and values */
    memset(url, 'v', 399), url[399] = '\0';
    for (int i = 0; i != 5; ++i)
        req_add(&q, "x", url); /* 5 * 400 = 2000 */
    assert_int_equal(run(&q), 0);
    req_add(&q, "y", "");
    assert_int_equal(run(&q), 431);
    h2o_mem_clear_pool(&q.req.pool);

    req_init(&q, &f, 0, "POST", "/");
    q.req.entity = h2o_iovec_init(H2O_STRLIT("0123456789"));
    assert_int_equal(run(&q), 0);
    q.req.entity = h2o_iovec_init(H2O_STRLIT("0123456789x"));
    assert_int_equal(run(&q), 413);
    assert_non_null(strstr(sent_body, "\"payload_too_large\""));
    h2o_mem_clear_pool(&q.req.pool);
    req_init(&q, &f, 0, "POST", "/"); /* a Content-Length that did reach the headers */
    req_add(&q, "content-length", "11");
    assert_int_equal(run(&q), 413);
    h2o_mem_clear_pool(&q.req.pool);
    req_init(&q, &f, 1, "POST", "/d"); /* the gateway's 20 */
    q.req.entity = h2o_iovec_init(H2O_STRLIT("0123456789abcdefghij"));
    assert_int_equal(run(&q), 0);
    q.req.entity = h2o_iovec_init(H2O_STRLIT("0123456789abcdefghijk"));
    assert_int_equal(run(&q), 413);
    h2o_mem_clear_pool(&q.req.pool);
    snapfx_destroy(&f);

    /* no gateway object: the defaults */
    build_ok(&f, "{" SERVICES ",\"routes\":[{\"name\":\"a\",\"service\":\"s\",\"paths\":[\"/\"]}]}");
    assert_int_equal(f.snap.edge->limits.max_body_bytes, CPH_EDGE_DEFAULT_MAX_BODY);
    assert_int_equal(f.snap.edge->limits.max_headers, CPH_EDGE_DEFAULT_MAX_HEADERS);
    assert_int_equal(f.snap.edge->limits.max_header_bytes, CPH_EDGE_DEFAULT_MAX_HEADER_BYTES);
    assert_int_equal(f.snap.edge->trusted_proxy_hops, 0);
    snapfx_destroy(&f);
}

/* ---------------------------------------------------------------- CORS */

#define CORS_ROUTES                                                                                                                \
    "\"routes\":[{\"name\":\"c\",\"service\":\"s\",\"paths\":[\"/\"],\"policies\":{\"cors\":{\"origins\":"                         \
    "[\"https://app.example.com\",\"http://localhost:3000\"],\"methods\":[\"GET\",\"POST\"],\"headers\":[\"content-type\","        \
    "\"x-a\"],\"expose_headers\":[\"x-b\"],\"credentials\":true,\"max_age_s\":60}}},"                                              \
    "{\"name\":\"w\",\"service\":\"s\",\"paths\":[\"/w\"],\"policies\":{\"cors\":{\"origins\":[\"*\"]}}}]"

static void test_cors_preflight(void **state)
{
    (void)state;
    snapfx_t f;
    reqfx_t q;

    build_ok(&f, "{" SERVICES "," CORS_ROUTES "}");
    set_peer("10.0.0.1");
    req_init(&q, &f, 0, "OPTIONS", "/x");
    req_add(&q, "origin", "https://app.example.com");
    req_add(&q, "access-control-request-method", "POST");
    assert_true(cph_edge_is_preflight(f.snap.routes[0].edge, &q.req));
    assert_false(cph_edge_is_preflight(NULL, &q.req));
    assert_int_equal(run(&q), 204);
    assert_string_equal(res_header(&q, "access-control-allow-origin"), "https://app.example.com");
    assert_string_equal(res_header(&q, "access-control-allow-methods"), "GET, POST");
    assert_string_equal(res_header(&q, "access-control-allow-headers"), "content-type, x-a");
    assert_string_equal(res_header(&q, "access-control-max-age"), "60");
    assert_string_equal(res_header(&q, "access-control-allow-credentials"), "true");
    assert_string_equal(res_header(&q, "vary"), "Origin");
    h2o_mem_clear_pool(&q.req.pool);

    /* wildcard, defaults */
    req_init(&q, &f, 1, "OPTIONS", "/w");
    req_add(&q, "origin", "https://anyone.example");
    req_add(&q, "access-control-request-method", "PUT");
    assert_int_equal(run(&q), 204);
    assert_string_equal(res_header(&q, "access-control-allow-origin"), "*");
    assert_string_equal(res_header(&q, "access-control-allow-methods"), "GET, HEAD, POST");
    assert_string_equal(res_header(&q, "access-control-max-age"), "600");
    assert_null(res_header(&q, "access-control-allow-credentials"));
    assert_null(res_header(&q, "access-control-allow-headers"));
    h2o_mem_clear_pool(&q.req.pool);

    /* a disallowed origin: no CORS headers, the OPTIONS goes on */
    req_init(&q, &f, 0, "OPTIONS", "/x");
    req_add(&q, "origin", "https://evil.example.com");
    req_add(&q, "access-control-request-method", "POST");
    assert_false(cph_edge_is_preflight(f.snap.routes[0].edge, &q.req));
    assert_int_equal(run(&q), 0);
    assert_int_equal(q.r.res_extra.size, 0);
    h2o_mem_clear_pool(&q.req.pool);

    /* OPTIONS without Access-Control-Request-Method is not a preflight */
    req_init(&q, &f, 0, "OPTIONS", "/x");
    req_add(&q, "origin", "https://app.example.com");
    assert_false(cph_edge_is_preflight(f.snap.routes[0].edge, &q.req));
    assert_int_equal(run(&q), 0);
    assert_string_equal(extra_header(&q, "access-control-allow-origin"), "https://app.example.com");
    assert_null(extra_header(&q, "access-control-allow-methods"));
    h2o_mem_clear_pool(&q.req.pool);
    snapfx_destroy(&f);
}

static void test_cors_simple(void **state)
{
    (void)state;
    snapfx_t f;
    reqfx_t q;

    build_ok(&f, "{" SERVICES "," CORS_ROUTES "}");
    set_peer("10.0.0.1");
    req_init(&q, &f, 0, "GET", "/x");
    req_add(&q, "origin", "HTTP://LOCALHOST:3000"); /* matched case-insensitively, the configured value is sent */
    assert_int_equal(run(&q), 0);
    assert_string_equal(extra_header(&q, "access-control-allow-origin"), "http://localhost:3000");
    assert_string_equal(extra_header(&q, "access-control-allow-credentials"), "true");
    assert_string_equal(extra_header(&q, "access-control-expose-headers"), "x-b");
    assert_string_equal(extra_header(&q, "vary"), "Origin");
    assert_null(extra_header(&q, "access-control-allow-methods"));
    h2o_mem_clear_pool(&q.req.pool);

    req_init(&q, &f, 0, "GET", "/x");
    req_add(&q, "origin", "https://app.example.com.evil.com");
    assert_int_equal(run(&q), 0);
    assert_int_equal(q.r.res_extra.size, 0);
    h2o_mem_clear_pool(&q.req.pool);

    req_init(&q, &f, 0, "GET", "/x"); /* no Origin: not a CORS request */
    assert_int_equal(run(&q), 0);
    assert_int_equal(q.r.res_extra.size, 0);
    h2o_mem_clear_pool(&q.req.pool);

    req_init(&q, &f, 1, "POST", "/w"); /* wildcard without credentials: "*", never the origin */
    req_add(&q, "origin", "https://x.example");
    assert_int_equal(run(&q), 0);
    assert_string_equal(extra_header(&q, "access-control-allow-origin"), "*");
    assert_null(extra_header(&q, "access-control-allow-credentials"));
    assert_null(extra_header(&q, "access-control-expose-headers"));
    h2o_mem_clear_pool(&q.req.pool);
    snapfx_destroy(&f);
}

/* ---------------------------------------------------------------- security headers */

static void test_security_headers(void **state)
{
    (void)state;
    snapfx_t f;
    reqfx_t q;

    build_ok(&f, "{" SERVICES ",\"routes\":[{\"name\":\"h\",\"service\":\"s\",\"paths\":[\"/\"],\"policies\":"
                 "{\"security_headers\":{\"hsts_max_age_s\":31536000,\"hsts_subdomains\":true,\"content_type_options\":true,"
                 "\"frame_options\":\"DENY\",\"referrer_policy\":\"no-referrer\"}}},"
                 "{\"name\":\"n\",\"service\":\"s\",\"paths\":[\"/n\"],\"policies\":{\"security_headers\":"
                 "{\"hsts_max_age_s\":0,\"content_type_options\":false,\"frame_options\":null,\"referrer_policy\":null}}},"
                 "{\"name\":\"z\",\"service\":\"s\",\"paths\":[\"/z\"],\"policies\":{\"rate_limits\":[]}}]}");
    set_peer("10.0.0.1");
    set_tls(1);
    req_init(&q, &f, 0, "GET", "/");
    assert_int_equal(run(&q), 0);
    assert_string_equal(extra_header(&q, "strict-transport-security"), "max-age=31536000; includeSubDomains");
    assert_string_equal(extra_header(&q, "x-content-type-options"), "nosniff");
    assert_string_equal(extra_header(&q, "x-frame-options"), "DENY");
    assert_string_equal(extra_header(&q, "referrer-policy"), "no-referrer");
    h2o_mem_clear_pool(&q.req.pool);

    set_tls(0); /* HSTS only over TLS */
    req_init(&q, &f, 0, "GET", "/");
    assert_int_equal(run(&q), 0);
    assert_null(extra_header(&q, "strict-transport-security"));
    assert_string_equal(extra_header(&q, "x-frame-options"), "DENY");
    assert_int_equal(q.r.res_extra.size, 3);
    h2o_mem_clear_pool(&q.req.pool);

    set_tls(1); /* everything off */
    req_init(&q, &f, 1, "GET", "/n");
    assert_int_equal(run(&q), 0);
    assert_int_equal(q.r.res_extra.size, 0);
    h2o_mem_clear_pool(&q.req.pool);

    assert_null(f.snap.routes[2].edge); /* only rate limits: nothing for this stage */
    req_init(&q, &f, 2, "GET", "/z");
    assert_int_equal(run(&q), 0);
    assert_int_equal(q.r.res_extra.size, 0);
    h2o_mem_clear_pool(&q.req.pool);
    set_tls(0);
    snapfx_destroy(&f);
}

/* the answers of this stage carry the headers it added before answering (a preflight carries the security headers) */
static void test_preflight_carries_security_headers(void **state)
{
    (void)state;
    snapfx_t f;
    reqfx_t q;

    build_ok(&f, "{" SERVICES ",\"routes\":[{\"name\":\"h\",\"service\":\"s\",\"paths\":[\"/\"],\"policies\":"
                 "{\"security_headers\":{\"content_type_options\":true},\"cors\":{\"origins\":[\"https://a.example\"]}}}]}");
    set_peer("10.0.0.1");
    req_init(&q, &f, 0, "OPTIONS", "/");
    req_add(&q, "origin", "https://a.example");
    req_add(&q, "access-control-request-method", "GET");
    assert_int_equal(run(&q), 204);
    assert_string_equal(res_header(&q, "x-content-type-options"), "nosniff");
    assert_string_equal(res_header(&q, "access-control-allow-origin"), "https://a.example");
    h2o_mem_clear_pool(&q.req.pool);
    snapfx_destroy(&f);
}

/* ---------------------------------------------------------------- through the whole build (validator + every compile) */

static void test_snapshot_build(void **state)
{
    (void)state;
    json_t *body = json_loads("{" SERVICES ",\"routes\":[{\"name\":\"a\",\"service\":\"s\",\"paths\":[\"/\"],"
                              "\"policies\":{\"ip_allow\":[\"10.0.0.0/8\",\"2001:db8::/32\"],\"ip_deny\":[\"10.1.2.3/32\"],"
                              "\"limits\":{\"max_body_bytes\":1048576},\"https_redirect\":false,"
                              "\"cors\":{\"origins\":[\"https://app.example.com\"],\"methods\":[\"GET\",\"POST\"]},"
                              "\"security_headers\":{\"content_type_options\":true,\"frame_options\":\"DENY\"}}},"
                              "{\"name\":\"b\",\"service\":\"s\",\"paths\":[\"/b\"],\"policies\":{}}],"
                              "\"gateway\":{\"trusted_proxy_hops\":2,\"ip_allow\":[],\"ip_deny\":[\"192.0.2.0/24\"],"
                              "\"limits\":{\"max_body_bytes\":2097152}}}",
                              JSON_REJECT_DUPLICATES, NULL);
    char hash[CPH_HASH_SIZE];
    cph_error_t err;

    assert_non_null(body);
    cph_snapshot_hash(body, hash);
    cph_snapshot_t *snap = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", &err);
    if (snap == NULL)
        fail_msg("build failed: %s at %s: %s", err.code, err.path, err.msg);
    assert_int_equal(snap->edge->trusted_proxy_hops, 2);
    assert_int_equal(snap->edge->deny.num_v4, 1);
    assert_int_equal(snap->edge->max_body_any, 2097152);
    const cph_edge_route_t *e = snap->routes[0].edge;
    assert_non_null(e);
    assert_int_equal(e->allow.num_cidrs, 2);
    assert_int_equal(e->limits.max_body_bytes, 1048576);
    assert_int_equal(e->limits.max_url_bytes, CPH_EDGE_DEFAULT_MAX_URL);
    assert_true(h2o_memis(e->cors->methods.base, e->cors->methods.len, H2O_STRLIT("GET, POST")));
    assert_true(e->nosniff);
    assert_null(snap->routes[1].edge);
    cph_snapshot_release(snap);
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_contains_v4_edges),
        cmocka_unit_test(test_cidr_contains_v6_edges),
        cmocka_unit_test(test_cidr_compile_errors),
        cmocka_unit_test(test_ip_lists),
        cmocka_unit_test(test_ip_lists_and_forwarded_for),
        cmocka_unit_test(test_https_redirect),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_cors_preflight),
        cmocka_unit_test(test_cors_simple),
        cmocka_unit_test(test_security_headers),
        cmocka_unit_test(test_preflight_carries_security_headers),
        cmocka_unit_test(test_snapshot_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
