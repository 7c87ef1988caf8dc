"""19: rate limiting (proto/PROTOCOL.md section 5, docs/dataplane.md "Rate limiting"): a route's policies.rate_limits with
the GCRA semantics (a fresh key allows burst+1 at once, then one per period_s/rate), the 429 `rate_limited` answer
and its Retry-After / RateLimit-* headers, every kind of key, stacked limits, an endpoint rule's limits replacing the
route's, the client address behind trusted proxies, the data plane's own login limit, and the redis backend: exact
and shared between data planes, under 200 concurrent clients, failing open or closed when redis-server is killed or
frozen (the timeout path), and surviving a SCRIPT FLUSH; a stack of redis limits is all-or-nothing (one script call
per request), shared by two data planes, and so is a stack mixing local and redis limits.

Every stack is real: a control plane started with the flags under test (--redis, --redis-timeout-ms,
--trusted-proxy-hops, --login-rate), data planes, the echo upstream (its request count proves a refused request never
reached it) and, for the redis tests, a redis-server of our own (cephalo.Redis). Every change is applied with
?wait=applied. The limits used are slow (one request per 30 or 60 s) wherever a test counts, so that no refill can
happen while it runs; the two tests that measure a rate run for a fixed time and allow 1%.
"""
import asyncio
import concurrent.futures
import http.client
import re
import time

import pytest

import cephalo
from cephalo import rate_limit

V1 = "/api/v1"
RL_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


@pytest.fixture
def gateway(procs, tmpdir_str, pyup):
    """Factory: gateway(cp_args=(), dataplanes=1) -> cephalo.Gateway on the echo upstream."""
    def make(cp_args=(), dataplanes=1):
        return cephalo.Gateway(procs, tmpdir_str, pyup.url, cp_args=cp_args, dataplanes=dataplanes)
    return make


@pytest.fixture
def redis(procs, tmpdir_str):
    return cephalo.Redis(procs, tmpdir_str)


def limited(r, limit, retry_after=None):
    """Asserts a 429 rate_limited answer with its headers; returns (Retry-After, RateLimit-Reset) as ints."""
    assert r.status == 429, f"want 429, got {r}"
    assert r.headers.get("content-type", "").startswith("application/json"), r
    assert r.json()["error"] == "rate_limited", r
    ra = int(r.headers["retry-after"])
    if retry_after is not None:
        assert ra == retry_after, r.headers
    assert r.headers["ratelimit-limit"] == str(limit), r.headers
    assert r.headers["ratelimit-remaining"] == "0", r.headers
    reset = int(r.headers["ratelimit-reset"])
    assert reset >= ra >= 1, r.headers
    return ra, reset


def ok(r):
    assert r.status == 200, f"want 200, got {r}"
    return r


def keepalive(port, target, n, headers=None):
    """n GETs of target on one keep-alive connection (fast: no connect per request); returns [Resp]."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for _ in range(n):
            conn.request("GET", target, headers=headers or {})
            r = conn.getresponse()
            out.append(cephalo.Resp(r.status, cephalo.header_dict(r.getheaders()), r.read()))
            if r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    finally:
        conn.close()
    return out


def statuses(rs):
    return [r.status for r in rs]


# ---------------------------------------------------------------------------------------------------------------
# what the control plane writes


def test_the_control_plane_writes_the_gateway_object_from_its_flags(procs, tmpdir_str):
    cp = cephalo.ControlPlane(procs, tmpdir_str, extra_args=[
        "--redis", "127.0.0.1:6390/2", "--redis-timeout-ms", "70", "--trusted-proxy-hops", "2",
        "--login-rate", "3/30/1", "--cache-max-bytes", "1048576", "--trust-request-id",
        "--max-connections-per-ip", "50"]).start()
    gw = cp.admin.ok("GET", f"{V1}/snapshot?body=1", expect=(200,))["body"]["gateway"]
    assert gw == {"trusted_proxy_hops": 2, "ip_allow": [], "ip_deny": [],
                  "limits": {"max_body_bytes": 10485760, "max_url_bytes": 8192, "max_headers": 100,
                             "max_header_bytes": 65536},
                  "redis": {"host": "127.0.0.1", "port": 6390, "db": 2, "timeout_ms": 70},
                  "login_rate_limit": {"rate": 3, "period_s": 30, "burst": 1},
                  "cache": {"max_bytes": 1048576}, "request_id": {"trust_incoming": True},
                  "connections": {"max_per_ip": 50}}, gw


def test_the_gateway_object_without_flags(cp):
    gw = cp.admin.ok("GET", f"{V1}/snapshot?body=1", expect=(200,))["body"]["gateway"]
    assert gw["redis"] is None and gw["trusted_proxy_hops"] == 0, gw
    assert gw["cache"] == {"max_bytes": 67108864}, gw
    assert "websocket" not in gw, gw  # the defaults (cache backend memory, drain grace 30 s) are not written


@pytest.mark.parametrize("flag,value", [("--redis", "127.0.0.1"), ("--redis", "127.0.0.1:0"),
                                        ("--redis", "127.0.0.1:6379/16"), ("--redis-timeout-ms", "0"),
                                        ("--trusted-proxy-hops", "9"), ("--login-rate", "10/60"),
                                        ("--login-rate", "0/60/5")])
def test_bad_gateway_flags_stop_the_control_plane(procs, tmpdir_str, flag, value):
    cp = cephalo.ControlPlane(procs, tmpdir_str, extra_args=[flag, value])
    with pytest.raises(AssertionError, match="exited"):
        cp.start()
    assert cp.proc.wait(5) != 0


# ---------------------------------------------------------------------------------------------------------------
# the local limit, exactly


def test_a_fresh_key_allows_burst_plus_one_then_429(gateway, pyup):
    gw = gateway()
    gw.route("rl", "/rl", {"rate_limits": [rate_limit("per-ip", rate=2, period_s=60, burst=3)]})
    rs = keepalive(gw.dp.port, "/rl/x", 5)
    assert statuses(rs) == [200, 200, 200, 200, 429], rs
    for r in rs[:4]:  # headers: false (the default): the allowed answers carry none of them
        assert not set(RL_HEADERS) & set(r.headers), r.headers
    # T = 60 s / 2 = 30 s: the next request is allowed 30 s after the burst was used up
    ra, reset = limited(rs[4], limit=2, retry_after=30)
    assert reset <= 120, rs[4].headers  # the whole bucket (4 T) is back after at most 120 s
    assert pyup.count == 4


def test_allowed_answers_carry_ratelimit_headers_when_asked(gateway):
    gw = gateway()
    gw.route("rl", "/rl", {"rate_limits": [rate_limit("per-ip", rate=2, period_s=60, burst=3, headers=True)]})
    rs = keepalive(gw.dp.port, "/rl/x", 5)
    assert statuses(rs) == [200, 200, 200, 200, 429], rs
    assert [r.headers["ratelimit-remaining"] for r in rs[:4]] == ["3", "2", "1", "0"], [r.headers for r in rs]
    for r in rs[:4]:
        assert r.headers["ratelimit-limit"] == "2", r.headers
        assert 0 <= int(r.headers["ratelimit-reset"]) <= 120, r.headers
        assert "retry-after" not in r.headers, r.headers
    limited(rs[4], limit=2, retry_after=30)


def test_a_limit_counts_per_route_and_limit_name(gateway, pyup):
    """The counter id is route + limit name: the same limit on two routes are two buckets."""
    gw = gateway()
    lim = {"rate_limits": [rate_limit("same", key="route", burst=1)]}
    gw.route("a", "/a", lim)
    gw.route("b", "/b", lim)
    assert statuses(keepalive(gw.dp.port, "/a/x", 3)) == [200, 200, 429]
    assert statuses(keepalive(gw.dp.port, "/b/x", 3)) == [200, 200, 429]
    assert pyup.count == 4


def test_a_route_without_limits_is_not_limited(gateway):
    gw = gateway()
    gw.route("free", "/free")
    assert set(statuses(keepalive(gw.dp.port, "/free/x", 30))) == {200}


# ---------------------------------------------------------------------------------------------------------------
# keys


def test_key_ip_one_bucket_per_client_address(gateway):
    gw = gateway()
    gw.route("rl", "/rl", {"rate_limits": [rate_limit("per-ip", key="ip")]})
    for source in ("127.0.0.1", "127.0.0.2"):
        ok(gw.get("/rl/x", source=source))
        limited(gw.get("/rl/x", source=source), limit=1)
    limited(gw.get("/rl/y", source="127.0.0.1"), limit=1)  # the whole route, not the path


def test_key_route_one_bucket_for_everybody(gateway):
    gw = gateway()
    gw.route("rl", "/rl", {"rate_limits": [rate_limit("all", key="route", burst=1)]})
    ok(gw.get("/rl/x", source="127.0.0.1"))
    ok(gw.get("/rl/y", source="127.0.0.2"))
    limited(gw.get("/rl/z", source="127.0.0.3"), limit=1)


def test_key_header_one_bucket_per_value_and_none_without_it(gateway):
    gw = gateway()
    gw.route("rl", "/rl", {"rate_limits": [rate_limit("tenant", key="header:x-tenant")]})
    ok(gw.get("/rl/x", headers={"X-Tenant": "a"}))
    limited(gw.get("/rl/x", headers={"x-tenant": "a"}), limit=1)  # header names are case-insensitive
    ok(gw.get("/rl/x", headers={"X-Tenant": "b"}))
    limited(gw.get("/rl/x", headers={"X-Tenant": "b"}), limit=1)
    for _ in range(5):  # without the header the limit does not apply
        ok(gw.get("/rl/x"))


@pytest.fixture
def shop_stack(procs, tmpdir_str, pyup):
    """A gateway with the identity model of cephalo.Shop (users, api keys) on the echo upstream."""
    gw = cephalo.Gateway(procs, tmpdir_str, pyup.url)
    return gw, cephalo.Shop(gw.admin, pyup.url)


def test_key_principal_one_bucket_per_user_or_key(shop_stack):
    gw, shop = shop_stack
    gw.route("rl-shop", "/rlshop", {"rate_limits": [rate_limit("who", key="principal", burst=1)]}, service="shop",
             default_access="authenticated")
    alice, bob = shop.access(gw.dp, "alice"), shop.access(gw.dp, "bob")
    _, key = shop.api_key("ci", roles=["reader"])
    for _ in range(2):
        ok(gw.get("/rlshop/any", headers=cephalo.bearer(alice)))
    limited(gw.get("/rlshop/any", headers=cephalo.bearer(alice)), limit=1)
    ok(gw.get("/rlshop/any", headers=cephalo.bearer(bob)))  # two users do not share a bucket
    ok(gw.get("/rlshop/any", headers={"X-API-Key": key}))  # nor does an api key
    # nobody (a public endpoint): the client address is the key, not shared with alice's bucket
    ok(gw.get("/rlshop/public/x"))
    ok(gw.get("/rlshop/public/x"))
    limited(gw.get("/rlshop/public/x"), limit=1)
    ok(gw.get("/rlshop/any", headers=cephalo.bearer(bob)))
    limited(gw.get("/rlshop/any", headers=cephalo.bearer(bob)), limit=1)


def test_key_api_key_applies_to_api_keys_only(shop_stack):
    gw, shop = shop_stack
    gw.route("rl-shop", "/rlshop", {"rate_limits": [rate_limit("keys", key="api_key")]}, service="shop",
             default_access="authenticated")
    _, key1 = shop.api_key("one", roles=["reader"])
    _, key2 = shop.api_key("two", roles=["reader"])
    ok(gw.get("/rlshop/any", headers={"X-API-Key": key1}))
    limited(gw.get("/rlshop/any", headers={"Authorization": f"ApiKey {key1}"}), limit=1)  # the key, in any form
    ok(gw.get("/rlshop/any", headers={"X-API-Key": key2}))
    alice = shop.access(gw.dp, "alice")
    for _ in range(4):  # a user's token is no api key: the limit does not apply
        ok(gw.get("/rlshop/any", headers=cephalo.bearer(alice)))
    for _ in range(4):  # nor to nobody
        ok(gw.get("/rlshop/public/x"))


def test_key_system_one_bucket_per_system(shop_stack):
    gw, shop = shop_stack
    gw.route("rl-shop", "/rlshop", {"rate_limits": [rate_limit("sys", key="system", burst=1)]}, service="shop",
             default_access="authenticated")
    _, key = shop.api_key("ci", roles=["reader"])
    ok(gw.get("/rlshop/any", headers=cephalo.bearer(shop.access(gw.dp, "alice"))))
    ok(gw.get("/rlshop/any", headers=cephalo.bearer(shop.access(gw.dp, "bob"))))
    limited(gw.get("/rlshop/any", headers={"X-API-Key": key}), limit=1)  # alice, bob and the key: all system shop
    for _ in range(4):  # nobody has no system: the limit does not apply
        ok(gw.get("/rlshop/public/x"))


# ---------------------------------------------------------------------------------------------------------------
# stacking and endpoint rules


def test_stacked_limits_all_must_pass(gateway, pyup):
    """2/s (5 at once) and 10/min (8 at once): the short limit refuses a quick burst, the long one what follows.

    The echo upstream takes a few tens of ms per request (its small writes meet delayed ACKs), so the short limit's
    interval is 500 ms: 6 requests fit in it."""
    gw = gateway()
    gw.route("rl", "/rl", {"rate_limits": [rate_limit("second", rate=2, period_s=1, burst=4),
                                           rate_limit("minute", rate=10, period_s=60, burst=7)]})
    t0 = time.monotonic()
    rs = keepalive(gw.dp.port, "/rl/x", 6)
    assert time.monotonic() - t0 < 0.5, "too slow: the 2/s limit refilled meanwhile"
    assert statuses(rs) == [200] * 5 + [429], rs
    limited(rs[5], limit=2, retry_after=1)
    allowed = 5
    # one request every 550 ms: the 2/s limit always has room, the 10/min one has 3 left
    last = None
    for _ in range(6):
        time.sleep(0.55)  # pacing below the short limit's rate, not waiting for a state
        last = gw.get("/rl/x")
        if last.status != 200:
            break
        allowed += 1
    assert time.monotonic() - t0 < 6.0, "too slow: the 10/min limit (T = 6 s) refilled meanwhile"
    # 8 in all: the request the short limit refused spent nothing in the long one (a stack is all-or-nothing)
    assert allowed == 8, allowed
    ra, _ = limited(last, limit=10)
    assert 1 <= ra <= 6, last.headers
    assert pyup.count == allowed


def test_a_refusal_by_a_later_limit_spends_nothing_in_the_earlier_ones(gateway, pyup):
    """10 at once and 3 at once (one per minute after that): 10 quick requests pass 3, the 3-limit refuses 7, and
    those 7 did not eat the 10-limit's budget: with the 3-limit removed (the same route and limit name keep their
    bucket across the swap), exactly 7 more pass."""
    gw = gateway()
    wide = rate_limit("wide", rate=10, period_s=600, burst=9)
    narrow = rate_limit("narrow", rate=3, period_s=180, burst=2)
    route = gw.route("rl", "/rl", {"rate_limits": [wide, narrow]})
    t0 = time.monotonic()
    rs = keepalive(gw.dp.port, "/rl/x", 10)
    assert statuses(rs) == [200] * 3 + [429] * 7, rs
    limited(rs[3], limit=3)
    route = {k: v for k, v in route.items() if k not in ("id", "created_at", "updated_at")}
    gw.admin.apply("PUT", f"{V1}/routes/rl", dict(route, policies={"rate_limits": [wide]}))
    rs = keepalive(gw.dp.port, "/rl/x", 8)
    assert time.monotonic() - t0 < 50, "too slow: the 10-limit (T = 60 s) refilled meanwhile"
    assert statuses(rs) == [200] * 7 + [429], rs
    limited(rs[7], limit=10)
    assert pyup.count == 10


def test_an_endpoint_rules_limits_replace_the_routes(gateway, pyup):
    gw = gateway()
    gw.route("rl", "/rl", {"rate_limits": [rate_limit("route-wide", key="route", burst=2)]})
    a = gw.admin
    a.apply("POST", f"{V1}/endpoints", {"service": "echo", "method": "GET", "path": "/free/*", "public": True,
                                        "rate_limits": []})
    a.apply("POST", f"{V1}/endpoints", {"service": "echo", "method": "GET", "path": "/tight/*", "public": True,
                                        "rate_limits": [rate_limit("tight", key="route", rate=5, burst=0)]})
    a.apply("POST", f"{V1}/endpoints", {"service": "echo", "method": "GET", "path": "/inherit/*", "public": True})
    assert set(statuses(keepalive(gw.dp.port, "/rl/free/x", 10))) == {200}  # [] = no limit at all
    rs = keepalive(gw.dp.port, "/rl/tight/x", 2)
    assert rs[0].status == 200, rs
    limited(rs[1], limit=5)  # the rule's own limit, not the route's 3 at once
    # neither consumed the route's bucket: 3 at once for the rest of the route (a rule without rate_limits inherits)
    assert statuses(keepalive(gw.dp.port, "/rl/inherit/x", 2)) == [200, 200]
    ok(gw.get("/rl/other"))
    limited(gw.get("/rl/other"), limit=1)
    limited(gw.get("/rl/inherit/y"), limit=1)
    assert set(statuses(keepalive(gw.dp.port, "/rl/free/y", 3))) == {200}


# ---------------------------------------------------------------------------------------------------------------
# the client address


def test_trusted_proxy_hops_0_ignores_x_forwarded_for(gateway):
    gw = gateway(cp_args=["--trusted-proxy-hops", "0"])
    gw.route("rl", "/rl", {"rate_limits": [rate_limit("per-ip", key="ip")]})
    ok(gw.get("/rl/x", headers={"X-Forwarded-For": "203.0.113.1"}))
    # a spoofed header changes nothing: every request is the peer's (127.0.0.1)
    for xff in ("203.0.113.2", "198.51.100.7, 203.0.113.3", ""):
        limited(gw.get("/rl/x", headers={"X-Forwarded-For": xff} if xff else None), limit=1)
    ok(gw.get("/rl/x", source="127.0.0.2"))


def test_trusted_proxy_hops_1_uses_the_last_x_forwarded_for(gateway):
    gw = gateway(cp_args=["--trusted-proxy-hops", "1"])
    gw.route("rl", "/rl", {"rate_limits": [rate_limit("per-ip", key="ip")]})
    ok(gw.get("/rl/x", headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.1"}))
    # the element the trusted proxy appended decides; what the client wrote before it does not
    limited(gw.get("/rl/x", headers={"X-Forwarded-For": "192.0.2.99, 203.0.113.1"}), limit=1)
    limited(gw.get("/rl/x", headers={"X-Forwarded-For": "203.0.113.1"}), limit=1)
    ok(gw.get("/rl/x", headers={"X-Forwarded-For": "203.0.113.1, 203.0.113.2"}))
    ok(gw.get("/rl/x", headers={"X-Forwarded-For": "2001:db8::1"}))
    limited(gw.get("/rl/x", headers={"X-Forwarded-For": "2001:db8::1"}), limit=1)


# ---------------------------------------------------------------------------------------------------------------
# login


def test_login_is_limited_at_the_dataplane(gateway):
    """--login-rate 1/60/2: three POST /auth/login per client address reach the control plane, the fourth is
    refused by the data plane (429 rate_limited; the control plane's own failure limit would say
    too_many_attempts, and only after 5 failures)."""
    gw = gateway(cp_args=["--login-rate", "1/60/2"])
    for _ in range(3):
        r = gw.dp.login("wrong-password-1", username="nobody", system="shop")
        assert r.status == 401 and r.json()["error"] == "invalid_credentials", r
    r = gw.dp.login("wrong-password-1", username="nobody", system="shop")
    limited(r, limit=1, retry_after=60)
    # another client address has its own bucket
    r = cephalo.http_request(gw.dp.port, "POST", "/auth/login", source="127.0.0.2",
                             body=b'{"username":"nobody","password":"x","system":"shop"}',
                             headers={"Content-Type": "application/json"})
    assert r.status == 401, r


# ---------------------------------------------------------------------------------------------------------------
# metrics


def test_ratelimit_metrics(gateway):
    gw = gateway()
    gw.route("m", "/m", {"rate_limits": [rate_limit("lim", burst=1)]})
    assert statuses(keepalive(gw.dp.port, "/m/x", 3)) == [200, 200, 429]
    m = gw.dp.metrics()
    assert cephalo.metric(m, "cephalo_ratelimit_total", route="m", limit="lim", outcome="allowed") == 2, m
    assert cephalo.metric(m, "cephalo_ratelimit_total", route="m", limit="lim", outcome="limited") == 1, m


# ---------------------------------------------------------------------------------------------------------------
# under concurrency: 200 clients for a fixed time, the allowed count within 1% of burst + 1 + rate * duration

RATE, BURST, DURATION_S, CLIENTS = 50, 10, 10.0, 200


async def _client(port, target, stop_at, counts):
    """One keep-alive client: requests back to back until stop_at (reconnects when the server closes)."""
    req = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    reader = writer = None
    try:
        while time.monotonic() < stop_at:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if m:
                await reader.readexactly(int(m.group(1)))
            counts[status] = counts.get(status, 0) + 1
            if re.search(rb"(?i)\r\nconnection:\s*close", head):
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _load(ports, target, duration):
    """CLIENTS clients spread over ports for duration seconds; returns ({status: n}, the measured duration)."""
    counts = {}
    t0 = time.monotonic()
    stop_at = t0 + duration
    await asyncio.gather(*(_client(ports[i % len(ports)], target, stop_at, counts) for i in range(CLIENTS)))
    return counts, min(time.monotonic(), stop_at) - t0


def assert_rate_held(gw, pyup, target):
    counts, elapsed = asyncio.run(_load([dp.port for dp in gw.dps], target, DURATION_S))
    assert set(counts) <= {200, 429}, counts
    want = BURST + 1 + RATE * elapsed
    got = counts.get(200, 0)
    assert abs(got - want) <= 0.01 * want, f"{got} allowed, want {want:.1f} +-1% ({counts}, {elapsed:.3f} s)"
    assert counts.get(429, 0) > 10 * got, f"not enough pressure to measure the limit: {counts}"
    assert pyup.count == got


def test_local_limit_holds_under_200_concurrent_clients(gateway, pyup):
    gw = gateway()
    gw.route("load", "/load", {"rate_limits": [rate_limit("all", key="route", rate=RATE, period_s=1, burst=BURST)]})
    assert_rate_held(gw, pyup, "/load/x")


def test_redis_limit_shared_by_two_dataplanes_under_200_concurrent_clients(gateway, pyup, redis):
    gw = gateway(cp_args=["--redis", redis.address, "--redis-timeout-ms", "1000"], dataplanes=2)
    gw.route("load", "/load", {"rate_limits": [rate_limit("all", key="route", rate=RATE, period_s=1, burst=BURST,
                                                          backend="redis", on_error="closed")]})
    assert_rate_held(gw, pyup, "/load/x")


# ---------------------------------------------------------------------------------------------------------------
# redis


def redis_route(gw, on_error="open", burst=2, headers=False):
    lim = rate_limit("shared", key="route", burst=burst, backend="redis", on_error=on_error, headers=headers)
    gw.route("rd", "/rd", {"rate_limits": [lim]})


def test_redis_limit_is_exact_and_keyed_as_specified(gateway, redis, pyup):
    gw = gateway(cp_args=["--redis", redis.address])
    redis_route(gw)
    assert statuses(keepalive(gw.dp.port, "/rd/x", 3)) == [200, 200, 200]
    limited(gw.get("/rd/x"), limit=1, retry_after=60)
    assert pyup.count == 3
    keys = redis.keys("cph:rl:*")
    assert len(keys) == 1 and re.fullmatch(r"cph:rl:rd:shared:[0-9a-f]{32}", keys[0]), keys
    ttl = redis.command("PTTL", keys[0])
    assert 0 < ttl <= 3 * 60 * 1000 + 1000, ttl  # expires once the bucket is whole again


def test_redis_limit_is_shared_by_two_dataplanes(gateway, redis):
    gw = gateway(cp_args=["--redis", redis.address], dataplanes=2)
    redis_route(gw)
    ok(gw.get("/rd/x", dp=gw.dps[0]))
    ok(gw.get("/rd/x", dp=gw.dps[1]))
    ok(gw.get("/rd/x", dp=gw.dps[0]))
    limited(gw.get("/rd/x", dp=gw.dps[1]), limit=1)
    limited(gw.get("/rd/x", dp=gw.dps[0]), limit=1)


def concurrently(gw, n, target):
    """n GETs of target at once, spread over the gateway's data planes; returns their answers (cephalo.Resp)."""
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda i: gw.get(target, dp=gw.dps[i % len(gw.dps)]), range(n)))


def without_server_fields(route):
    return {k: v for k, v in route.items() if k not in ("id", "created_at", "updated_at")}


@pytest.mark.parametrize("narrow_backend", ["redis", "local"])
def test_a_redis_stack_is_all_or_nothing(gateway, redis, pyup, narrow_backend):
    """10 at once and 3 at once (slow refills: nothing drips back while the test runs), the 10-limit in redis: 10
    requests pass exactly 3 and the 7 refused spent nothing in the 10-limit: with the 3-limit removed, exactly 7 more
    pass. With the 3-limit in redis too, one script call decides both, for 10 concurrent requests over two data planes.
    With it local (one data plane: a local limit is per data plane), the requests come one after the other: a local
    limit is checked before the redis call and charged after it, so concurrent requests could all pass its check."""
    dataplanes = 2 if narrow_backend == "redis" else 1
    gw = gateway(cp_args=["--redis", redis.address, "--redis-timeout-ms", "1000"], dataplanes=dataplanes)
    wide = rate_limit("wide", key="route", rate=10, period_s=600, burst=9, backend="redis", on_error="closed")
    narrow = rate_limit("narrow", key="route", rate=3, period_s=180, burst=2, backend=narrow_backend, on_error="closed")
    route = gw.route("rl", "/rl", {"rate_limits": [wide, narrow]})
    t0 = time.monotonic()
    rs = concurrently(gw, 10, "/rl/x") if narrow_backend == "redis" else keepalive(gw.dp.port, "/rl/x", 10)
    assert sorted(statuses(rs)) == [200] * 3 + [429] * 7, rs
    for r in rs:
        if r.status == 429:
            limited(r, limit=3)
    keys = redis.keys("cph:rl:*")
    want = {"wide", "narrow"} if narrow_backend == "redis" else {"wide"}
    assert {k.split(":")[3] for k in keys} == want, keys
    gw.admin.apply("PUT", f"{V1}/routes/rl", dict(without_server_fields(route), policies={"rate_limits": [wide]}))
    rs = concurrently(gw, 8, "/rl/x")
    assert time.monotonic() - t0 < 50, "too slow: the 10-limit (T = 60 s) refilled meanwhile"
    assert sorted(statuses(rs)) == [200] * 7 + [429], rs
    limited([r for r in rs if r.status == 429][0], limit=10)
    assert pyup.count == 10
    m = sum(cephalo.metric(dp.metrics(), "cephalo_ratelimit_total", route="rl", limit="wide", outcome="allowed") or 0
            for dp in gw.dps)
    assert m == 10, m  # counted only when charged


def test_redis_killed_fails_open(gateway, redis):
    gw = gateway(cp_args=["--redis", redis.address, "--redis-timeout-ms", "200"])
    redis_route(gw, on_error="open", burst=0)
    ok(gw.get("/rd/x"))
    limited(gw.get("/rd/x"), limit=1)
    redis.kill()
    for _ in range(5):
        t0 = time.monotonic()
        ok(gw.get("/rd/x"))  # allowed: the limit cannot be checked
        assert time.monotonic() - t0 < 2.0
    m = gw.dp.metrics()
    assert cephalo.metric(m, "cephalo_ratelimit_total", route="rd", limit="shared", outcome="error_open") >= 5, m


def test_redis_killed_fails_closed(gateway, redis, pyup):
    gw = gateway(cp_args=["--redis", redis.address, "--redis-timeout-ms", "200"])
    redis_route(gw, on_error="closed", burst=0)
    ok(gw.get("/rd/x"))
    redis.kill()
    n = pyup.count
    for _ in range(5):
        t0 = time.monotonic()
        r = gw.get("/rd/x")
        assert time.monotonic() - t0 < 2.0
        assert r.status == 503 and r.json()["error"] == "ratelimit_unavailable", r
    assert pyup.count == n
    m = gw.dp.metrics()
    assert cephalo.metric(m, "cephalo_ratelimit_total", route="rd", limit="shared", outcome="error_closed") >= 5, m


def test_redis_restarted_limits_again(gateway, redis):
    gw = gateway(cp_args=["--redis", redis.address])
    redis_route(gw, on_error="closed", burst=0)
    ok(gw.get("/rd/x"))
    redis.kill()
    assert gw.get("/rd/x").status == 503
    redis.restart()  # empty, on the same port: the data plane reconnects (backoff at most 5 s)
    cephalo.wait_until(lambda: gw.get("/rd/x").status == 200, 15, "the data plane reconnects to redis", interval=0.2)
    limited(gw.get("/rd/x"), limit=1)
    assert len(redis.keys("cph:rl:*")) == 1


@pytest.mark.parametrize("on_error,status", [("closed", 503), ("open", 200)])
def test_redis_frozen_answers_within_the_timeout(gateway, redis, on_error, status):
    """SIGSTOP: the connection stays up and nothing answers; each request waits the 300 ms deadline, no more."""
    gw = gateway(cp_args=["--redis", redis.address, "--redis-timeout-ms", "300"])
    redis_route(gw, on_error=on_error, burst=100)
    ok(gw.get("/rd/x"))  # connected and the script loaded
    redis.pause()
    try:
        for i in range(3):
            t0 = time.monotonic()
            r = gw.get("/rd/x")
            took = time.monotonic() - t0
            assert r.status == status, r
            if status == 503:
                assert r.json()["error"] == "ratelimit_unavailable", r
            assert took < 0.3 + 1.5, f"request {i} took {took:.3f} s with a 300 ms redis timeout"
            if i == 0:
                assert took >= 0.25, f"answered in {took:.3f} s: the deadline was not waited for"
    finally:
        redis.cont()
    cephalo.wait_until(lambda: gw.get("/rd/x").status == 200, 15, "redis answers again", interval=0.2)


def test_redis_unconfigured_behaves_as_on_error(gateway):
    gw = gateway()  # no --redis: gateway.redis is null
    gw.route("open", "/open", {"rate_limits": [rate_limit("o", key="route", backend="redis", on_error="open")]})
    gw.route("closed", "/closed", {"rate_limits": [rate_limit("c", key="route", backend="redis",
                                                              on_error="closed")]})
    for _ in range(3):
        ok(gw.get("/open/x"))
        r = gw.get("/closed/x")
        assert r.status == 503 and r.json()["error"] == "ratelimit_unavailable", r


def test_redis_script_flush_is_survived(gateway, redis):
    """NOSCRIPT after SCRIPT FLUSH: the data plane loads the script again and the count goes on where it was."""
    gw = gateway(cp_args=["--redis", redis.address])
    redis_route(gw, burst=3, headers=True)
    rs = keepalive(gw.dp.port, "/rd/x", 2)
    assert [r.headers.get("ratelimit-remaining") for r in rs] == ["3", "2"], rs
    assert redis.command("SCRIPT", "FLUSH") == "OK"
    rs = keepalive(gw.dp.port, "/rd/x", 2)
    assert [(r.status, r.headers.get("ratelimit-remaining")) for r in rs] == [(200, "1"), (200, "0")], rs
    limited(gw.get("/rd/x"), limit=1)
    assert redis.command("SCRIPT", "FLUSH") == "OK"
    limited(gw.get("/rd/x"), limit=1)


def test_redis_database_from_the_flag(gateway, redis):
    gw = gateway(cp_args=["--redis", redis.address + "/3"])
    redis_route(gw)
    ok(gw.get("/rd/x"))
    assert redis.dbsize() == 0
    assert len(redis.keys("cph:rl:*", db=3)) == 1


@pytest.mark.parametrize("backend", ["local", "redis"])
def test_the_highest_rate_allows(gateway, redis, backend):
    """rate 1e9 per second (T = 1 ns): nothing is refused, and nothing fails (a redis expiry of 0 ms would be an
    error reply: on_error closed turns it into a 503)."""
    gw = gateway(cp_args=["--redis", redis.address])
    gw.route("max", "/max", {"rate_limits": [rate_limit("max", key="route", rate=1000000000, period_s=1, burst=0,
                                                        backend=backend, on_error="closed"),
                                             rate_limit("max-burst", key="ip", rate=1000000000, period_s=86400,
                                                        burst=1000000000, backend=backend, on_error="closed")]})
    assert set(statuses(keepalive(gw.dp.port, "/max/x", 50))) == {200}
