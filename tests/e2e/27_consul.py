"""27: service discovery through Consul (issue 7): the control plane's Consul sync against the Consul stand-in.

The stand-in (tests/standins/consul.py) speaks Consul's /v1/health/service wire format with blocking queries and is
steered through its control port; the control plane does not know it is not Consul. The instances are echo upstreams
(cephalo.PyUpstream) whose answers name them (X-Upstream), so a test sees where the data plane routed.

- discovery: a service with a "consul" member takes its targets from Consul's healthy instances; an instance added,
  removed or turned critical changes the targets without any restart, and the data plane routes accordingly within
  about two seconds (measured from the change in Consul); Service.Address empty -> Node.Address, Weights.Passing ->
  weight, an IPv6 address in brackets; the tag filter; an admin change of the tag starts the watch over;
- blocking queries: each request carries the last X-Consul-Index and wait=<wait_s>s; an idle wake-up or an idempotent
  write (the index moves, the answer does not) makes no snapshot version; a churning service is asked at most twice
  a second; an index that goes backwards (a restored snapshot) restarts with index=0 and nothing is missed; an
  index 0 never turns into a busy loop;
- failures: Consul down (refused), a 403 "ACL not found", a 500, a 404, a 200 that is not Consul's JSON and a hanging
  Consul each keep the last known targets (the data plane keeps routing to them, no new snapshot) and report
  `degraded` with the reason kind in GET /api/v1/integrations; recovery is `ok` again and a change made meanwhile
  arrives; a Consul down at start is reported although no service is watched yet;
- ACL: the token from --consul-token-file is sent as X-Consul-Token (never in a URL, a log line or an admin answer);
  a wrong token is a 403, degraded `forbidden`.
"""
import json
import time

import pytest

import cephalo
import standins

V1 = "/api/v1"
WAIT_S = 2  # --consul-wait-s: short, so idle wake-ups and timeouts happen within a test
TOKEN = cephalo.remember_secret("consul-acl-e2e-7c1d2e3f4a5b")  # 99_secret_leak.py: never in any log of the run
ROUTE_S = 5.0  # a change in Consul reaches the data plane within this: blocking queries, not the wait_s poll (bench/propagation.py measures it)


class Consul(standins.StandIn):
    """The Consul stand-in, with the registrations and views the tests use."""

    def __init__(self, procs, tmpdir, name="consul", args=()):
        super().__init__(procs, tmpdir, "consul", args, name=name)

    def register(self, sid, up=None, service="orders", **kw):
        body = {"service": service, "id": sid, "address": "127.0.0.1", "port": up.port if up else kw.pop("port")}
        body.update(kw)
        return self.ctl("/register", body)["index"]

    def requests(self, path="/v1/health/service/orders"):
        return [q for q in super().requests() if path is None or q["path"] == path]

    def index(self):
        return self.view("/state")["index"]


def start_cp(procs, tmpdir, consul, token=None, extra=()):
    args = ["--consul-addr", consul.addr, "--consul-wait-s", str(WAIT_S)] + list(extra)
    if token is not None:
        args += ["--consul-token-file", standins.secret_file(tmpdir, "consul-token", token)]
    return cephalo.ControlPlane(procs, tmpdir, extra_args=args).start()


def upstream(procs, name):
    up = cephalo.PyUpstream(name)
    procs.servers.append(up)
    return up


def orders(admin, consul_member=None):
    admin.apply("POST", f"{V1}/services", {"name": "orders", "targets": [],
                                           "consul": consul_member or {"service": "orders"}})
    admin.apply("POST", f"{V1}/routes", {"name": "orders", "service": "orders", "paths": ["/orders"],
                                         "default_access": "public", "strip_prefix": True})


def targets(admin, name="orders"):
    return admin.ok("GET", f"{V1}/services/{name}", expect=(200,))["targets"]


def urls(admin, name="orders"):
    return sorted(t["url"] for t in targets(admin, name))


def wait_targets(admin, want, timeout=5.0, name="orders"):
    want = sorted(want)
    return cephalo.wait_until(lambda: urls(admin, name) == want, timeout, f"targets {want}", interval=0.05)


def discovered(consul, admin, up):
    """orders discovered through Consul, its one instance `up` registered as orders-a: returns once it is the target."""
    consul.register("orders-a", up)
    orders(admin)
    wait_targets(admin, [up.url])


def consul_state(admin):
    return standins.integration(admin, "consul")


def wait_state(admin, state, reason=None, timeout=15):
    return standins.wait_integration(admin, "consul", state, reason, timeout)


def seen_upstreams(dp, n=8):
    """Which upstreams n requests through the data plane reached (a set of names; "503" for a 503)."""
    out = set()
    for _ in range(n):
        r = dp.get("/orders/x")
        out.add(r.headers.get("x-upstream") if r.status == 200 else str(r.status))
    return out


def wait_routed(dp, want, since, what):
    """Until the data plane routes only to the set `want`; asserts it happened within ROUTE_S of `since`."""
    cephalo.wait_until(lambda: seen_upstreams(dp) == want, 10, what, interval=0.05)
    took = time.monotonic() - since
    assert took < ROUTE_S, f"{what}: took {took:.2f}s"
    return took


def version(admin):
    return admin.snapshot()["version"]


@pytest.fixture
def consul(procs, tmpdir_str):
    return Consul(procs, tmpdir_str)


@pytest.fixture
def env(procs, tmpdir_str, consul):
    cp = start_cp(procs, tmpdir_str, consul)
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket).start()
    dp.wait_connected(cp.admin)
    return cp, dp


# ---------------------------------------------------------------------------------------------------------------
# discovery


def test_instances_follow_consul(procs, consul, env):
    cp, dp = env
    admin = cp.admin
    a, b = upstream(procs, "a"), upstream(procs, "b")
    discovered(consul, admin, a)
    admin.settle()
    assert seen_upstreams(dp) == {"a"}
    pid = cp.proc.pid

    # added: routed to within about a second, no restart
    t0 = time.monotonic()
    consul.register("orders-b", b)
    wait_routed(dp, {"a", "b"}, t0, "routing to the added instance")

    # critical: dropped from the targets (passing=true), traffic goes to b only
    t0 = time.monotonic()
    consul.ctl("/status", {"service": "orders", "id": "orders-a", "status": "critical"})
    wait_routed(dp, {"b"}, t0, "no routing to the critical instance")
    assert urls(admin) == [b.url]

    # passing again, then b removed
    t0 = time.monotonic()
    consul.ctl("/status", {"service": "orders", "id": "orders-a", "status": "passing"})
    consul.ctl("/deregister", {"service": "orders", "id": "orders-b"})
    wait_routed(dp, {"a"}, t0, "routing after a deregistration")

    # no instance at all: the empty set is the truth (503), and one coming back is routed to again
    consul.ctl("/deregister", {"service": "orders", "id": "orders-a"})
    wait_targets(admin, [])
    admin.settle()
    assert seen_upstreams(dp, 3) == {"503"}
    t0 = time.monotonic()
    consul.register("orders-b", b)
    wait_routed(dp, {"b"}, t0, "routing to an instance after none")

    assert cp.proc.pid == pid and cp.proc.alive() and dp.proc.alive()
    state = wait_state(admin, "ok")
    svc = [s for s in state["services"] if s["name"] == "orders"]
    assert svc and svc[0]["consul_service"] == "orders" and svc[0]["tag"] is None, state
    assert [t["url"] for t in svc[0]["targets"]] == [b.url] and svc[0]["index"] >= 1, state


def test_addresses_and_weights(procs, tmpdir_str, consul):
    cp = start_cp(procs, tmpdir_str, consul)  # no data plane: the targets here are not all reachable names
    admin = cp.admin
    orders(admin)
    wait_targets(admin, [])
    # Service.Address empty -> Node.Address; Weights.Passing -> weight (clamped to 1000); IPv6 in brackets,
    # canonical; a DNS name lower-cased; port 0 and a zone index skipped; the same address twice merged
    consul.register("n1", address="", node_address="127.0.0.9", port=8001, weights={"Passing": 7, "Warning": 1})
    consul.register("n2", address="2001:DB8:0::1", port=8002, weights={"Passing": 5000, "Warning": 1})
    consul.register("n3", address="Orders-3.Service.Consul", port=8003)
    consul.register("n4", address="127.0.0.4", port=0)
    consul.register("n5", address="fe80::1%eth0", port=8005)
    consul.register("n6", address="127.0.0.9", port=8001, node="node-2", weights={"Passing": 3, "Warning": 1})
    want = {"http://127.0.0.9:8001": 7, "http://[2001:db8::1]:8002": 1000, "http://orders-3.service.consul:8003": 1}

    def done():
        return {t["url"]: t["weight"] for t in targets(admin)} == want
    cephalo.wait_until(done, 5, f"targets {want}", interval=0.05)
    assert [t["url"] for t in targets(admin)] == sorted(want)  # sorted by URL


def test_tag_filter(procs, consul, env):
    cp, dp = env
    admin = cp.admin
    a, b = upstream(procs, "a"), upstream(procs, "b")
    consul.register("orders-a", a, tags=["v1", "primary"])
    consul.register("orders-b", b, tags=["v2"])
    orders(admin, {"service": "orders", "tag": "v1"})
    wait_targets(admin, [a.url])
    admin.settle()
    assert seen_upstreams(dp) == {"a"}
    assert all("tag=v1" in q["query"] for q in consul.requests())
    # b gets the tag: routed to as well
    t0 = time.monotonic()
    consul.register("orders-b", b, tags=["v2", "v1"])
    wait_routed(dp, {"a", "b"}, t0, "routing to the newly tagged instance")
    # the admin changes the tag: the watch starts over (index 0) on the new query
    consul.ctl("/requests/clear")
    svc = admin.ok("GET", f"{V1}/services/orders")
    body = {k: svc[k] for k in ("name", "timeout_ms", "system", "policies") if k in svc}
    body.update({"targets": [], "consul": {"service": "orders", "tag": "primary"}})
    admin.apply("PUT", f"{V1}/services/orders", body, expect=(200,))
    wait_targets(admin, [a.url])
    qs = [q for q in consul.requests() if "tag=primary" in q["query"]]
    assert qs and qs[0]["index"] == 0, qs


# ---------------------------------------------------------------------------------------------------------------
# blocking queries


def test_blocking_query_index(procs, consul, env):
    cp, _ = env
    admin = cp.admin
    a = upstream(procs, "a")
    discovered(consul, admin, a)
    v = version(admin)
    consul.ctl("/requests/clear")
    # idle: the blocking query returns after wait (2 s + jitter) with the same index, and is sent again with it
    cephalo.wait_until(lambda: len(consul.requests()) >= 3, 4 * WAIT_S + 5, "three blocking queries", interval=0.1)
    qs = consul.requests()
    idx = consul.index()
    assert all(q["wait"] == f"{WAIT_S}s" and "passing=true" in q["query"] for q in qs), qs
    assert all(q["index"] == idx and q["status"] == 200 for q in qs[:-1]), (idx, qs)
    # an idempotent write: the index moves, the answer does not -> no new snapshot version
    new = consul.ctl("/touch", {"service": "orders"})["index"]
    cephalo.wait_until(lambda: any(q["index"] == new for q in consul.requests()), 5, "a query with the new index")
    assert version(admin) == v, "an unchanged answer made a snapshot version"
    # churn: the service changes 20 times in about 2 s; the control plane asks at most twice a second
    consul.ctl("/requests/clear")
    t0 = time.monotonic()
    for i in range(20):
        consul.ctl("/touch", {"service": "orders"})
        time.sleep(0.1)
    span = time.monotonic() - t0
    n = len(consul.requests())
    assert n <= 2 * span + 2, f"{n} requests in {span:.1f}s of churn"
    assert version(admin) == v


def test_index_reset(procs, consul, env):
    cp, _ = env
    admin = cp.admin
    a, b = upstream(procs, "a"), upstream(procs, "b")
    for i in range(30):  # push the index up
        consul.ctl("/touch", {"service": "orders"})
    discovered(consul, admin, a)
    high = consul.index()
    cephalo.wait_until(lambda: any(q["index"] == high for q in consul.requests()), 5, "a query blocking on the index")
    consul.ctl("/requests/clear")
    # a snapshot restore: every index goes back to 5, blocked queries wake; then b is registered (index 6 < high).
    # Without the reset the control plane would block on `high` and never see b.
    consul.ctl("/reset", {"index": 5})
    consul.register("orders-b", b)
    wait_targets(admin, [a.url, b.url], timeout=3 + WAIT_S)
    # The woken query may already carry b (the write can land before it reads the index); the restart with index=0
    # then follows within the watch's minimum interval, so wait for it rather than expect it at once.
    cephalo.wait_until(lambda: any(q["index"] == 0 for q in consul.requests()), 3,
                       "a query restarted with index=0")
    qs = consul.requests()
    assert not any(q["index"] == high for q in qs[1:]), f"kept blocking on the old index: {qs}"
    assert consul_state(admin)["state"] == "ok"


def test_index_zero_no_busy_loop(procs, consul, env):
    cp, _ = env
    admin = cp.admin
    a, b = upstream(procs, "a"), upstream(procs, "b")
    discovered(consul, admin, a)
    consul.ctl("/zero", {"on": True})
    consul.ctl("/requests/clear")
    t0 = time.monotonic()
    cephalo.wait_until(lambda: len(consul.requests()) >= 3, 10, "queries against a zero index")
    consul.register("orders-b", b)  # still noticed
    wait_targets(admin, [a.url, b.url])
    span = time.monotonic() - t0
    qs = consul.requests()
    assert all(q["index"] == 0 for q in qs[1:]), qs  # never blocks on 0 ...
    assert len(qs) <= 2 * span + 2, f"{len(qs)} requests in {span:.1f}s"  # ... and never spins (two a second at most)


# ---------------------------------------------------------------------------------------------------------------
# failures


def test_failures_keep_targets(procs, consul, env):
    cp, dp = env
    admin = cp.admin
    a, b = upstream(procs, "a"), upstream(procs, "b")
    discovered(consul, admin, a)
    admin.settle()
    wait_state(admin, "ok")
    v = version(admin)
    errors = consul_state(admin)["errors_total"]

    cases = [
        ("/fail", {"status": 403, "body": "ACL not found"}, "forbidden", "ACL not found"),
        ("/fail", {"status": 500, "body": "No cluster leader"}, "server_error", "No cluster leader"),
        ("/fail", {"status": 404, "body": "404 page not found"}, "not_found", "404 page not found"),
        ("/fail", {"status": 200, "body": "<html>a proxy's page</html>"}, "bad_response", "not a JSON array"),
        ("/down", {}, "unreachable", None),
    ]
    for what, body, kind, text in cases:
        consul.ctl(what, body)
        consul.ctl("/touch", {"service": "orders"})  # wakes the blocked query: the next request meets the failure
        st = wait_state(admin, "degraded", kind, timeout=5 + 2 * WAIT_S)
        if text is not None:
            assert text in st["reason"], st
        # the last known targets stay, the data plane keeps routing, no version
        assert urls(admin) == [a.url]
        assert seen_upstreams(dp, 4) == {"a"}
        assert version(admin) == v
        svc = [s for s in st["services"] if s["name"] == "orders"][0]
        assert svc["state"] == "degraded" and svc["reason"].startswith(kind), svc
        consul.ctl("/up" if what == "/down" else "/fail", {"status": 0})
        wait_state(admin, "ok", timeout=35)
    assert consul_state(admin)["errors_total"] > errors

    # a change made while Consul was failing arrives once it answers
    consul.ctl("/fail", {"status": 503, "body": "rpc error: No cluster leader"})
    consul.ctl("/touch", {"service": "orders"})
    wait_state(admin, "degraded", "server_error", timeout=5 + 2 * WAIT_S)
    consul.register("orders-b", b)
    consul.ctl("/fail", {"status": 0})
    t0 = time.monotonic()
    cephalo.wait_until(lambda: seen_upstreams(dp) == {"a", "b"}, 35, "routing to b after the recovery", interval=0.1)
    assert time.monotonic() - t0 < 35
    wait_state(admin, "ok")


def test_hanging_consul(procs, consul, env):
    cp, dp = env
    admin = cp.admin
    a = upstream(procs, "a")
    discovered(consul, admin, a)
    admin.settle()
    v = version(admin)
    consul.ctl("/hang", {"on": True})
    # the per-call timeout is wait + wait/16 + 5 s
    wait_state(admin, "degraded", "timeout", timeout=WAIT_S + 5 + 10)
    assert urls(admin) == [a.url] and seen_upstreams(dp, 4) == {"a"} and version(admin) == v
    consul.ctl("/hang", {"on": False})
    wait_state(admin, "ok", timeout=35)


def test_consul_down_at_start(procs, tmpdir_str, consul):
    consul.ctl("/down")
    cp = start_cp(procs, tmpdir_str, consul)
    admin = cp.admin
    # nothing watched yet: the control plane still tells whether Consul answers
    wait_state(admin, "degraded", "unreachable", timeout=10)
    consul.ctl("/up")
    wait_state(admin, "ok", timeout=45)


# ---------------------------------------------------------------------------------------------------------------
# ACL


def test_acl_token(procs, tmpdir_str):
    consul = Consul(procs, tmpdir_str, args=["--acl-token", TOKEN])
    a = upstream(procs, "a")
    consul.register("orders-a", a)
    cp = start_cp(procs, tmpdir_str, consul, token=TOKEN)
    admin = cp.admin
    orders(admin)
    wait_targets(admin, [a.url])  # without the token a default-deny agent answers [] (filtered)
    st = wait_state(admin, "ok")
    qs = consul.requests()
    assert qs and all(q["token_ok"] is True for q in qs), qs
    assert all(TOKEN not in q["query"] for q in consul.requests(path=None))
    # the token is nowhere an admin or a log can see it
    assert TOKEN not in json.dumps(st) and TOKEN not in json.dumps(admin.ok("GET", f"{V1}/services/orders"))
    assert TOKEN not in cp.proc.stderr_text()

    # the token is revoked: 403 "ACL not found", the targets stay
    consul.ctl("/acl", {"token": "another-token"})
    consul.ctl("/touch", {"service": "orders"})
    st = wait_state(admin, "degraded", "forbidden", timeout=5 + 2 * WAIT_S)
    assert "ACL not found" in st["reason"] and urls(admin) == [a.url]
    consul.ctl("/acl", {"token": TOKEN})
    wait_state(admin, "ok", timeout=35)
    assert TOKEN not in cp.proc.stderr_text()


def test_datacenter(procs, tmpdir_str, consul):
    a = upstream(procs, "a")
    consul.register("orders-a", a)
    cp = start_cp(procs, tmpdir_str, consul, extra=["--consul-datacenter", "dc1"])
    orders(cp.admin)
    wait_targets(cp.admin, [a.url])
    assert all("dc=dc1" in q["query"] for q in consul.requests())
    # another datacenter Consul cannot reach: 500 "No path to datacenter", degraded server_error
    cp.proc.stop()
    cp2 = start_cp(procs, tmpdir_str, consul, extra=["--consul-datacenter", "dc9"])
    cp2.admin.ok("GET", f"{V1}/services/orders")
    st = wait_state(cp2.admin, "degraded", "server_error", timeout=10)
    assert "No path to datacenter" in st["reason"]
    assert urls(cp2.admin) == [a.url]
