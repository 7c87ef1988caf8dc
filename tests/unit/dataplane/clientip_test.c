/*
 * clientip_test: core/clientip.c on hand-built requests with a fake connection whose peer address the test sets.
 * With hops 0 the peer is the client whatever X-Forwarded-For says (a client cannot choose its address); with hops N
 * the Nth element from the right of every X-Forwarded-For line read as one list; a garbage, empty or missing element
 * falls back to the peer; ports and brackets are read, IPv4-mapped IPv6 is folded to IPv4; the formatter prints the
 * canonical address; cph_client_ip reads hops from the snapshot's gateway; the per-client key is an IPv4 address's 4
 * bytes and an IPv6 address's /64 (a mapped IPv4 address keys as IPv4).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include "dataplane/compile/edge.h"
#include "dataplane/core/clientip.h"
#include "dataplane/core/pipeline.h"

static struct sockaddr_storage peer_addr;
static int peer_known;

static socklen_t fake_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    if (!peer_known)
        return 0;
    memcpy(sa, &peer_addr, sizeof(peer_addr));
    return peer_addr.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static const h2o_conn_callbacks_t callbacks = {.get_peername = fake_peername};

typedef struct st_fixture_t {
    h2o_conn_t conn;
    h2o_req_t req;
} fixture_t;

static void set_peer(const char *ip, uint16_t port)
{
    memset(&peer_addr, 0, sizeof(peer_addr));
    peer_known = 1;
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&peer_addr;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&peer_addr;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
}

static void fx_init(fixture_t *f, const char *peer)
{
    memset(f, 0, sizeof(*f));
    h2o_mem_init_pool(&f->req.pool);
    f->conn.callbacks = &callbacks;
    f->req.conn = &f->conn;
    set_peer(peer, 40000);
}

static void fx_xff(fixture_t *f, const char *value)
{
    h2o_add_header(&f->req.pool, &f->req.headers, H2O_TOKEN_X_FORWARDED_FOR, NULL, value, strlen(value));
}

/* the formatted client address for hops */
static const char *client(fixture_t *f, unsigned hops)
{
    static char buf[CPH_CLIENT_IP_STRLEN];
    struct sockaddr_storage ss;

    if (cph_client_ip_hops(&f->req, hops, &ss) != 0)
        return "(none)";
    assert_int_equal(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port, 0);
    cph_client_ip_format(&ss, buf, sizeof(buf));
    return buf;
}

static void test_hops_zero_ignores_xff(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, "192.0.2.7");
    fx_xff(&f, "10.0.0.1");
    fx_xff(&f, "10.0.0.2, 10.0.0.3");
    assert_string_equal(client(&f, 0), "192.0.2.7");
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_hops_from_the_right(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, "192.0.2.7");
    fx_xff(&f, "6.6.6.6, 10.0.0.1"); /* the client wrote 6.6.6.6; the outer proxy appended 10.0.0.1 */
    fx_xff(&f, "10.0.0.2 , 10.0.0.3");
    assert_string_equal(client(&f, 1), "10.0.0.3");
    assert_string_equal(client(&f, 2), "10.0.0.2");
    assert_string_equal(client(&f, 3), "10.0.0.1");
    assert_string_equal(client(&f, 4), "6.6.6.6");
    assert_string_equal(client(&f, 5), "192.0.2.7"); /* fewer elements than hops: the peer */
    assert_string_equal(client(&f, 9), "192.0.2.7"); /* above the maximum: the peer */
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_garbage_falls_back_to_peer(void **state)
{
    (void)state;
    static const char *garbage[] = {"unknown", "1.2.3",     "1.2.3.4.5",      "",       " ",       "10.0.0.1,", "300.1.1.1", "[::1",
                                    "::1]",    "1.2.3.4:x", "1.2.3.4:123456", "[::1]x", "_hidden", "a.b.c.d",   "1.2.3.4/8"};
    fixture_t f;

    for (size_t i = 0; i != sizeof(garbage) / sizeof(garbage[0]); ++i) {
        fx_init(&f, "2001:db8::9");
        fx_xff(&f, garbage[i]);
        assert_string_equal(client(&f, 1), "2001:db8::9");
        h2o_mem_clear_pool(&f.req.pool);
    }
    fx_init(&f, "192.0.2.7"); /* no header at all */
    assert_string_equal(client(&f, 1), "192.0.2.7");
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_element_forms(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {{"10.0.0.1:8080", "10.0.0.1"},        {"[2001:db8::1]:443", "2001:db8::1"},
                 {"[2001:db8::1]", "2001:db8::1"},     {"2001:DB8:0:0::1", "2001:db8::1"},
                 {"::ffff:10.1.2.3", "10.1.2.3"},      {"[::ffff:10.1.2.3]:1", "10.1.2.3"},
                 {"\t 203.0.113.5 \t", "203.0.113.5"}, {"::", "::"}};
    fixture_t f;

    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        fx_init(&f, "192.0.2.7");
        fx_xff(&f, cases[i].in);
        assert_string_equal(client(&f, 1), cases[i].out);
        h2o_mem_clear_pool(&f.req.pool);
    }
}

static void test_peer_forms(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, "::ffff:198.51.100.4"); /* a dual-stack listener's IPv4 peer */
    assert_string_equal(client(&f, 0), "198.51.100.4");
    h2o_mem_clear_pool(&f.req.pool);
    fx_init(&f, "192.0.2.7");
    peer_known = 0;
    assert_string_equal(client(&f, 0), "(none)");
    fx_xff(&f, "10.0.0.1");
    assert_string_equal(client(&f, 1), "10.0.0.1"); /* the header does not need the peer */
    h2o_mem_clear_pool(&f.req.pool);
    f.req.conn = NULL;
    struct sockaddr_storage ss;
    assert_int_equal(cph_client_ip_hops(&f.req, 0, &ss), -1);
    assert_int_equal(ss.ss_family, AF_UNSPEC);
}

static void test_format(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    char buf[CPH_CLIENT_IP_STRLEN], small[4];

    assert_int_equal(cph_client_ip_parse(H2O_STRLIT("2001:db8:0:0:0:0:0:1"), &ss), 0);
    assert_int_equal(cph_client_ip_format(&ss, buf, sizeof(buf)), strlen("2001:db8::1"));
    assert_string_equal(buf, "2001:db8::1");
    assert_int_equal(cph_client_ip_format(&ss, small, sizeof(small)), 0);
    assert_string_equal(small, "");
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    assert_int_equal(cph_client_ip_format(&ss, buf, sizeof(buf)), 0);
    assert_int_equal(cph_client_ip_parse(H2O_STRLIT("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"), &ss), 0);
    assert_int_equal(cph_client_ip_parse(H2O_STRLIT("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.1"), &ss), -1);
    /* IPv4 is written without inet_ntop: every byte value in every position, as inet_ntop writes it */
    for (unsigned v = 0; v != 256; ++v) {
        const uint8_t quads[4][4] = {
            {(uint8_t)v, 0, 9, 10}, {99, (uint8_t)v, 100, 255}, {1, 2, (uint8_t)v, 3}, {255, 0, 1, (uint8_t)v}};
        for (int k = 0; k != 4; ++k) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            char want[INET_ADDRSTRLEN];
            memset(&ss, 0, sizeof(ss));
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, quads[k], 4);
            assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, want, sizeof(want)));
            assert_int_equal(cph_client_ip_format(&ss, buf, sizeof(buf)), strlen(want));
            assert_string_equal(buf, want);
        }
    }
    assert_int_equal(cph_client_ip_format(&ss, small, sizeof(small)), 0); /* "255.0.1.255" does not fit in 4 */
    assert_string_equal(small, "");
}

static void test_hops_from_snapshot(void **state)
{
    (void)state;
    fixture_t f;
    cph_snapshot_t snap;
    cph_edge_t edge;
    cph_req_t r;
    struct sockaddr_storage ss;
    char buf[CPH_CLIENT_IP_STRLEN];

    memset(&snap, 0, sizeof(snap));
    memset(&edge, 0, sizeof(edge));
    memset(&r, 0, sizeof(r));
    fx_init(&f, "192.0.2.7");
    fx_xff(&f, "10.0.0.1");
    r.req = &f.req;
    r.snap = &snap;
    assert_int_equal(cph_client_ip(&r, &ss), 0); /* no gateway object: hops 0 */
    cph_client_ip_format(&ss, buf, sizeof(buf));
    assert_string_equal(buf, "192.0.2.7");
    snap.edge = &edge;
    edge.trusted_proxy_hops = 1;
    assert_int_equal(cph_client_ip(&r, &ss), 0);
    cph_client_ip_format(&ss, buf, sizeof(buf));
    assert_string_equal(buf, "10.0.0.1");
    h2o_mem_clear_pool(&f.req.pool);
}

/* The key of a parsed address, as hex. */
static const char *key_hex(const char *addr, char *hex)
{
    struct sockaddr_storage ss;
    char key[CPH_CLIENT_IP_KEY_MAX];
    size_t n;

    assert_int_equal(cph_client_ip_parse(addr, strlen(addr), &ss), 0);
    n = cph_client_ip_key(&ss, key);
    for (size_t i = 0; i != n; i++)
        sprintf(hex + 2 * i, "%02x", (unsigned char)key[i]);
    hex[2 * n] = '\0';
    return hex;
}

static void test_key_ipv6_per_64(void **state)
{
    char a[40], b[40];
    struct sockaddr_storage none = {.ss_family = AF_UNSPEC};

    (void)state;
    assert_string_equal(key_hex("10.1.2.3", a), "0a010203");
    assert_string_equal(key_hex("::ffff:10.1.2.3", a), "0a010203"); /* mapped: the IPv4 client */
    assert_string_equal(key_hex("10.1.2.4", b), "0a010204");        /* IPv4: per address */
    assert_string_equal(key_hex("2001:db8:1:2:aaaa:bbbb:cccc:dddd", a), "20010db800010002");
    assert_string_equal(key_hex("[2001:db8:1:2::1]:443", b), a); /* the same /64 */
    assert_string_not_equal(key_hex("2001:db8:1:3::1", b), a);   /* the next /64 */
    assert_string_equal(key_hex("::1", a), "0000000000000000");
    assert_int_equal(cph_client_ip_key(&none, a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hops_zero_ignores_xff),
        cmocka_unit_test(test_hops_from_the_right),
        cmocka_unit_test(test_garbage_falls_back_to_peer),
        cmocka_unit_test(test_element_forms),
        cmocka_unit_test(test_peer_forms),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_hops_from_snapshot),
        cmocka_unit_test(test_key_ipv6_per_64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
