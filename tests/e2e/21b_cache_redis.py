"""21b: the response cache's Redis backend (docs/dataplane.md "Response cache", issue 5: gateway.cache.backend "redis",
the control plane's --cache-backend), shared by two data planes pointing at one redis-server of the test's own
(cephalo.Redis), and the purge `at` semantics (proto/PROTOCOL.md section 3) through the memory backend.

The upstream is cephalo.CtlUpstream (as in 21_cache.py): "served from the cache" is proved by the upstream not seeing
the request. A store into Redis is fire-and-forget after the response completed, so the first hit after a miss is
polled for (wait_hit) rather than assumed. The failure paths use the real server: SIGKILL (connection refused: the
cache is bypassed at once) and SIGSTOP (nothing answers: the lookup times out after --redis-timeout-ms and the cache
is bypassed); never a 5xx. The only sleep is where time must pass for Age to grow.
"""
import signal
import time

import pytest

import cephalo

V1 = "/api/v1"
PURGE = f"{V1}/cache/purge"
FRESH = {"Cache-Control": "max-age=60"}


@pytest.fixture
def ctl(procs):
    return cephalo.ctl_upstream(procs)


@pytest.fixture
def redis(procs, tmpdir_str):
    return cephalo.Redis(procs, tmpdir_str)


@pytest.fixture
def shared(procs, tmpdir_str, ctl, redis):
    """Two data planes whose cache backend is redis (timeout 100 ms)."""
    return cephalo.Gateway(procs, tmpdir_str, ctl.url, dataplanes=2,
                           cp_args=["--redis", redis.address, "--redis-timeout-ms", "100", "--cache-backend", "redis"])


HOST = "shop.example.com"  # every data plane must see the same authority: it is part of the key


def get(gw, target, dp=None, headers=None):
    return gw.get(target, dp=dp, headers=dict({"Host": HOST}, **(headers or {})))


xcache, hit, miss, serial = cephalo.xcache, cephalo.cache_hit, cephalo.cache_miss, cephalo.ctl_serial


def wait_hit(dp, target, **kw):
    """The first HIT on dp (the store that follows a miss is asynchronous); returns it."""
    got = []

    def pred():
        r = dp.get(target, headers=dict({"Host": HOST}, **kw.get("headers", {})))
        assert r.status < 500, r
        got.append(r)
        return xcache(r) == "HIT"
    cephalo.wait_until(pred, 10, f"{target} cached, seen from {dp.name}")
    return hit(got[-1])


def cache_x(gw, ctl):
    """Route c caches /c/x (fresh 60 s): a miss, then the HIT that shows the entry reached redis."""
    gw.route("c", "/c", {"cache": {}})
    ctl.set("/x", headers=FRESH)
    miss(get(gw, "/c/x"))
    wait_hit(gw.dp, "/c/x")


def wait_keys(redis, n):
    """Until redis holds n cache keys (entries, Vary markers): the asynchronous stores have landed."""
    cephalo.wait_until(lambda: len(redis.keys("cephalo:cache:v1:*")) >= n, 10, f"{n} cache keys in redis")


def wait_miss(dp, target, **kw):
    h = dict({"Host": HOST}, **kw.get("headers", {}))
    return cephalo.wait_until(lambda: xcache(dp.get(target, headers=h)) == "MISS", 10, f"{target} purged on {dp.name}")


def purge(gw, body, status=202):
    r = gw.admin.post(PURGE, body)
    assert r.status == status, f"purge {body} -> {r}"
    return r.json()


def cache_total(dp, route, outcome):
    return cephalo.metric(dp.metrics(), "cephalo_cache_total", route=route, outcome=outcome) or 0


# ---------------------------------------------------------------------------------------------------------------
# shared entries


def test_the_snapshot_carries_the_backend_and_the_keys_are_namespaced(shared, ctl, redis):
    gw = shared
    body = gw.admin.ok("GET", f"{V1}/snapshot?body=1", expect=(200,))["body"]
    assert body["gateway"]["cache"]["backend"] == "redis", body["gateway"]
    cache_x(gw, ctl)
    keys = [k.decode() if isinstance(k, bytes) else k for k in redis.command("KEYS", "cephalo:cache:*")]
    assert len(keys) == 1 and keys[0].startswith("cephalo:cache:v1:{c}:"), keys
    assert 55000 < redis.command("PTTL", keys[0]) <= 60000  # PX = the freshness left


def test_an_entry_stored_through_one_dataplane_is_a_hit_on_the_other(shared, ctl, redis):
    gw = shared
    dp1, dp2 = gw.dps
    gw.route("c", "/c", {"cache": {}})
    ctl.set("/x", headers=dict(FRESH, **{"X-Custom": "kept", "ETag": '"v1"'}))
    r1 = miss(get(gw, "/c/x", dp=dp1))
    wait_keys(redis, 1)
    r2 = hit(get(gw, "/c/x", dp=dp2))  # never seen by dp2 before
    assert r2.body == r1.body and serial(r2) == 1 and r2.headers["x-custom"] == "kept", r2
    age0 = int(r2.headers["age"])
    time.sleep(1.1)  # time must pass for Age to grow
    r3 = hit(get(gw, "/c/x", dp=dp1))
    assert int(r3.headers["age"]) >= age0 + 1 and r3.body == r1.body, (r2.headers, r3.headers)
    r = hit(get(gw, "/c/x", dp=dp2, headers={"If-None-Match": 'W/"v1"'}), status=304)
    assert r.body == b"" and r.headers.get("etag") == '"v1"', r
    r = hit(cephalo.http_request(dp1.port, "HEAD", "/c/x", headers={"Host": HOST}))
    assert r.body == b"", r
    assert ctl.count("/x") == 1
    assert cache_total(dp2, "c", "hit") >= 1 and cache_total(dp2, "c", "revalidated_304") == 1


def test_vary_keeps_every_variant_as_in_memory(shared, ctl, redis):
    gw = shared
    dp1, dp2 = gw.dps
    gw.route("c", "/c", {"cache": {}})
    ctl.set("/v", headers=dict(FRESH, Vary="Accept-Language"))
    en = {"Accept-Language": "en"}
    fr = {"Accept-Language": "fr"}
    miss(get(gw, "/c/v", dp=dp1, headers=en))
    wait_keys(redis, 2)  # the marker and the variant
    hit(get(gw, "/c/v", dp=dp2, headers=en))
    miss(get(gw, "/c/v", dp=dp2, headers=fr))
    wait_keys(redis, 3)
    rf = hit(get(gw, "/c/v", dp=dp1, headers=fr))
    re_ = hit(get(gw, "/c/v", dp=dp1, headers=en))  # the first variant is still there
    assert serial(re_) == 1 and serial(rf) == 2, (re_.headers, rf.headers)
    miss(get(gw, "/c/v", dp=dp1, headers={"Accept-Language": "de"}))
    assert ctl.count("/v") == 3


def test_uncacheable_responses_and_credentials_behave_as_in_memory(shared, ctl):
    gw = shared
    gw.route("c", "/c", {"cache": {}})
    ctl.set("/nostore", headers={"Cache-Control": "no-store"})
    ctl.set("/cookie", headers=dict(FRESH, **{"Set-Cookie": "a=b"}))
    for path in ("/nostore", "/cookie"):
        for _ in range(3):
            miss(get(gw, "/c" + path))
        assert ctl.count(path) == 3, path
    ctl.set("/x", headers=FRESH)
    miss(get(gw, "/c/x"))
    wait_hit(gw.dp, "/c/x")
    r = get(gw, "/c/x", headers={"Authorization": "Bearer abc"})
    assert r.status in (200, 401) and xcache(r) is None, r  # a credential bypasses the cache both ways


def test_host_default_port_is_the_same_key(shared, ctl):
    gw = shared
    gw.route("c", "/c", {"cache": {}})
    ctl.set("/x", headers=FRESH)
    miss(get(gw, "/c/x", headers={"Host": "example.com"}))
    wait_hit(gw.dp, "/c/x", headers={"Host": "example.com:80"})
    miss(get(gw, "/c/x", headers={"Host": "example.com:8080"}))


# ---------------------------------------------------------------------------------------------------------------
# purge


def test_purge_by_route_and_by_prefix_on_both_dataplanes(shared, ctl):
    """Each data plane records the purge in redis (idempotent: the latest `at` per prefix). A miss after the purge
    stores a new answer that every data plane may serve: what a purge guarantees is that the old answer (its upstream
    serial) is never served again, on either data plane."""
    gw = shared
    gw.route("a", "/a", {"cache": {}})
    gw.route("b", "/b", {"cache": {}})
    for path in ("/p/1", "/q/1"):
        ctl.set(path, headers=FRESH)
    old = {}
    for target in ("/a/p/1", "/a/q/1", "/b/p/1"):
        miss(get(gw, target, dp=gw.dps[0]))
        old[target] = serial(wait_hit(gw.dps[0], target))
        assert serial(hit(get(gw, target, dp=gw.dps[1]))) == old[target]

    def gone(target):
        for dp in gw.dps:
            cephalo.wait_until(lambda: serial(get(gw, target, dp=dp)) != old[target], 10, f"{target} purged on {dp.name}")

    purge(gw, {"route": "a", "prefix": "/p/"})
    gone("/a/p/1")
    for dp in gw.dps:
        assert serial(hit(get(gw, "/a/q/1", dp=dp))) == old["/a/q/1"]
        assert serial(hit(get(gw, "/b/p/1", dp=dp))) == old["/b/p/1"]
    purge(gw, {"route": "a"})
    gone("/a/q/1")
    for dp in gw.dps:
        assert serial(hit(get(gw, "/b/p/1", dp=dp))) == old["/b/p/1"]


# ---------------------------------------------------------------------------------------------------------------
# redis down or stalled: bypass, never a 5xx


def test_killed_redis_is_bypassed_then_used_again(shared, ctl, redis):
    gw = shared
    cache_x(gw, ctl)
    redis.kill()
    before = ctl.count("/x")
    for dp in gw.dps:
        for _ in range(3):
            r = get(gw, "/c/x", dp=dp)
            assert r.status == 200 and xcache(r) == "MISS", r
    assert ctl.count("/x") == before + 6
    assert sum(cache_total(dp, "c", "hit") for dp in gw.dps) >= 1
    redis.restart()
    wait_hit(gw.dp, "/c/x")  # reconnected by itself; the empty server is filled again


def test_stopped_redis_times_out_into_a_bypass(shared, ctl, redis):
    gw = shared
    cache_x(gw, ctl)
    redis.pause()
    try:
        for dp in gw.dps:
            t0 = time.monotonic()
            r = get(gw, "/c/x", dp=dp)
            took = time.monotonic() - t0
            assert r.status == 200 and xcache(r) == "MISS", r
            assert took < 2.0, took  # the 100 ms lookup timeout, not a hang
    finally:
        redis.cont()
    wait_hit(gw.dp, "/c/x")


# ---------------------------------------------------------------------------------------------------------------
# purge `at` through the memory backend


def test_a_purge_spares_entries_stored_after_it(procs, tmpdir_str, ctl):
    """A purge drops what was stored before its `at`; the control plane replays the purges of the last day to a data
    plane that reconnects, and the entry cached after the purge survives that replay (memory backend)."""
    gw = cephalo.Gateway(procs, tmpdir_str, ctl.url, cp_args=["--heartbeat-ms", "200"])
    gw.route("c", "/c", {"cache": {}})
    ctl.set("/x", headers=FRESH)
    miss(get(gw, "/c/x"))
    hit(get(gw, "/c/x"))
    purge(gw, {"route": "c", "prefix": "/x"})
    wait_miss(gw.dp, "/c/x")
    n = serial(hit(get(gw, "/c/x")))  # stored by the miss that followed the purge, i.e. after its `at`
    log = gw.dp.proc.stderr_text

    # a stopped control plane misses its pongs: the data plane drops the session and reconnects after SIGCONT
    gw.cp.proc.signal(signal.SIGSTOP)
    try:
        cephalo.wait_until(lambda: "disconnected from the control plane" in log(), 10, "the data plane gave up the session")
    finally:
        gw.cp.proc.signal(signal.SIGCONT)
    cephalo.wait_until(lambda: log().count("cached responses of route c under /x") >= 2, 15, "the purge replayed")
    r = hit(get(gw, "/c/x"))  # the replayed purge (`at` before this entry) spared it
    assert serial(r) == n, r
