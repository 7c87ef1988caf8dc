"""31: routes of kind "aggregate" (issue 9; PROTOCOL.md section 5 "aggregate route", docs/dataplane.md "Aggregate
routes"): one client request fans out to several services in parallel and their JSON objects are merged.

Covered: the merge of three backends (under keys and at the top level) with the client's path parameter and query
substituted into each backend's template; optional failures (a status, a body that is not a JSON object, a refused
connection, a body over the cap) -> 200 with "_errors" and X-Cephalo-Partial; a required failure -> 502 naming the
backend; the deadline with a hanging backend -> partial, or 504 when on_deadline is "error" or the backend is
required; a service's own timeout; hostile values (encoded '/', '?', '#', '&', CR LF, dots) that can only ever land
percent-encoded inside their one segment or query value; the identity headers on every backend call and an API key
never forwarded; each service's injected credentials on its own backend only, and a backend whose credentials are
unavailable never called; balancing and retries of the backend's service; POST backends getting the client's body; and the
route's policies (authentication, authorization, rate limits) still applying before any backend is called.

Upstreams: the echo server (cephalo.PyUpstream: answers a JSON object with what it received, and holds a path with a
"hold" segment until released) and cephalo.CtlUpstream (an answer set per path).
"""
import json
import os
import socket
import time

import pytest

import cephalo

V1 = "/api/v1"
PREFIX = "x-cephalo-"


@pytest.fixture
def ctl(procs):
    up = cephalo.CtlUpstream("ctl")
    procs.servers.append(up)
    return up


@pytest.fixture
def make_py(procs):
    def make(name):
        up = cephalo.PyUpstream(name)
        procs.servers.append(up)
        return up
    return make


def dead_url():
    """A loopback URL nobody listens on (bound, never listening: connects are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def service(admin, name, *urls, **extra):
    body = dict({"name": name, "targets": [{"url": u} for u in urls]}, **extra)
    admin.ok("POST", f"{V1}/services", body)


def backend(name, svc, path, key=None, required=None, method=None):
    b = {"name": name, "service": svc, "path": path}
    if key is not None:
        b["key"] = key
    if required is not None:
        b["required"] = required
    if method is not None:
        b["method"] = method
    return b


def agg_route(admin, name, backends, pattern=None, deadline_ms=None, on_deadline=None, service=None, **fields):
    """POST an aggregate route on /<name> (public unless fields say otherwise) with ?wait=applied."""
    cfg = {"pattern": pattern or f"/{name}/{{id}}", "backends": backends}
    if deadline_ms is not None:
        cfg["deadline_ms"] = deadline_ms
    if on_deadline is not None:
        cfg["on_deadline"] = on_deadline
    body = {"name": name, "service": service or backends[0]["service"], "paths": [f"/{name}"],
            "default_access": "public", "kind": "aggregate", "aggregate": cfg}
    body.update(fields)
    return admin.apply("POST", f"{V1}/routes", body)["route"]


def get(dp, target, method="GET", body=None, headers=None, timeout=10.0):
    return cephalo.http_request(dp.port, method, target, body=body, headers=headers, timeout=timeout)


def merged(r):
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    return r.json()


def refused(r, status, code):
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    body = r.json()
    assert body["error"] == code, body
    return body


def identity(seen):
    return {k[len(PREFIX):]: v for k, v in seen["headers"].items() if k.startswith(PREFIX)}


# ---------------------------------------------------------------------------------------------------------------
# merge


def test_merge_of_three_backends(cp, dp, pyup):
    for name in ("users", "orders", "prefs"):
        service(cp.admin, name, pyup.url)
    agg_route(cp.admin, "dash", [
        backend("user", "users", "/users/{id}", key="user"),
        backend("orders", "orders", "/orders?user={id}&limit={query.limit}", key="orders", required=False),
        backend("prefs", "prefs", "/prefs/{id}")])  # no key: its members go to the top level
    r = get(dp, "/dash/42?limit=5", headers={"Accept": "text/html", "Accept-Encoding": "gzip"})
    out = merged(r)
    assert out["user"]["path"] == "/users/42", out
    assert out["orders"]["path"] == "/orders?user=42&limit=5", out
    assert out["path"] == "/prefs/42" and out["upstream"] == "py", out  # prefs merged at the top level
    assert out["user"]["method"] == out["orders"]["method"] == out["method"] == "GET"
    assert "_errors" not in out and "x-cephalo-partial" not in r.headers, r
    # the backends are asked for plain JSON whatever the client negotiates
    for seen in (out["user"], out["orders"], out):
        assert seen["headers"]["accept"] == "application/json", seen
        assert "accept-encoding" not in seen["headers"], seen
    # a missing query parameter is empty; the three calls are three upstream requests
    n = pyup.count
    out = merged(get(dp, "/dash/7"))
    assert out["orders"]["path"] == "/orders?user=7&limit=", out
    assert pyup.count == n + 3
    # the same over HTTP/2 (h2c)
    with socket.create_connection(("127.0.0.1", dp.port), timeout=10) as s:
        r = cephalo.h2_request(s, f"127.0.0.1:{dp.port}", "/dash/8?limit=1")
    out = merged(r)
    assert out["user"]["path"] == "/users/8" and out["orders"]["path"] == "/orders?user=8&limit=1", out


def test_path_outside_the_pattern_is_404(cp, dp, pyup):
    service(cp.admin, "users", pyup.url)
    agg_route(cp.admin, "dash", [backend("user", "users", "/users/{id}", key="user")])
    n = pyup.count
    for target in ("/dash", "/dash/", "/dash/1/more", "/dashboard/1"):
        r = get(dp, target)
        assert r.status == 404, (target, r)
    assert pyup.count == n


# ---------------------------------------------------------------------------------------------------------------
# failures


def test_optional_failures_give_a_partial_answer(cp, dp, pyup, ctl):
    service(cp.admin, "users", pyup.url)
    service(cp.admin, "side", ctl.url)
    service(cp.admin, "gone", dead_url())
    ctl.set("/orders", status=500, headers={"Content-Type": "application/json"}, body=b'{"e":1}')
    ctl.set("/recs", body=b"not json")
    ctl.set("/empty", status=204)
    ctl.set("/list", headers={"Content-Type": "application/json"}, body=b"[1,2]")
    ctl.set("/big", headers={"Content-Type": "application/json"}, body=b'{"a":"' + b"x" * (1024 * 1024) + b'"}')
    agg_route(cp.admin, "dash", [
        backend("user", "users", "/users/{id}", key="user"),
        backend("orders", "side", "/orders", key="orders", required=False),
        backend("recs", "side", "/recs", required=False),
        backend("empty", "side", "/empty", key="empty", required=False),  # 204: nothing to merge, no failure
        backend("list", "side", "/list", required=False),
        backend("big", "side", "/big", required=False),
        backend("gone", "gone", "/x", required=False)])
    r = get(dp, "/dash/1")
    out = merged(r)
    assert out["user"]["path"] == "/users/1", out
    assert r.headers["x-cephalo-partial"] == "orders,recs,list,big,gone", r.headers
    assert out["_errors"] == {
        "orders": {"status": 500, "error": "bad_status"},
        "recs": {"status": 200, "error": "invalid_json"},
        "list": {"status": 200, "error": "invalid_json"},
        "big": {"status": 200, "error": "too_large"},
        "gone": {"status": None, "error": "connect_failed"}}, out
    assert "orders" not in out and out["empty"] == {}, out


def test_required_failure_is_502_naming_it(cp, dp, pyup, ctl):
    service(cp.admin, "users", ctl.url)
    service(cp.admin, "orders", pyup.url)
    service(cp.admin, "gone", dead_url())
    ctl.set("/users/9", status=503, body=b'{"down":true}')
    agg_route(cp.admin, "dash", [
        backend("orders", "orders", "/orders/{id}", key="orders", required=False),
        backend("user", "users", "/users/{id}", key="user")])
    r = get(dp, "/dash/9")
    body = refused(r, 502, "aggregate_backend_failed")
    assert body["backend"] == "user" and body["status"] == 503 and body["reason"] == "bad_status", body
    assert body["request_id"] == r.headers["x-request-id"], (body, r.headers)
    agg_route(cp.admin, "dash2", [backend("gone", "gone", "/x"), backend("orders", "orders", "/o", required=False)])
    body = refused(get(dp, "/dash2/1"), 502, "aggregate_backend_failed")
    assert body["backend"] == "gone" and body["status"] is None and body["reason"] == "connect_failed", body


# ---------------------------------------------------------------------------------------------------------------
# deadline and timeouts


def test_deadline_gives_a_partial_answer(cp, dp, pyup, make_py):
    slow = make_py("slow")
    service(cp.admin, "users", pyup.url)
    service(cp.admin, "slow", slow.url)
    agg_route(cp.admin, "dash", [backend("user", "users", "/users/{id}", key="user"),
                                 backend("recs", "slow", "/hold/recs", key="recs", required=False)],
              deadline_ms=300)
    t0 = time.monotonic()
    r = get(dp, "/dash/1")
    took = time.monotonic() - t0
    out = merged(r)
    assert 0.25 <= took < 3.0, took
    assert out["user"]["path"] == "/users/1" and "recs" not in out, out
    assert out["_errors"] == {"recs": {"status": None, "error": "deadline"}}, out
    assert r.headers["x-cephalo-partial"] == "recs"
    slow.wait_held(1)
    slow.release()


def test_deadline_is_504_when_configured_or_required(cp, dp, pyup, make_py):
    slow = make_py("slow")
    service(cp.admin, "users", pyup.url)
    service(cp.admin, "slow", slow.url)
    agg_route(cp.admin, "strict", [backend("user", "users", "/users/{id}", key="user"),
                                   backend("recs", "slow", "/hold/recs", key="recs", required=False)],
              deadline_ms=200, on_deadline="error")
    body = refused(get(dp, "/strict/1"), 504, "aggregate_timeout")
    assert body["backend"] == "recs" and body["reason"] == "deadline", body
    # on_deadline "partial" (the default), but the late backend is required
    agg_route(cp.admin, "needy", [backend("recs", "slow", "/hold/recs", key="recs"),
                                  backend("user", "users", "/users/{id}", key="user", required=False)],
              deadline_ms=200)
    body = refused(get(dp, "/needy/1"), 504, "aggregate_timeout")
    assert body["backend"] == "recs", body
    slow.release()


def test_a_service_timeout_fails_its_backend_before_the_deadline(cp, dp, pyup, make_py):
    slow = make_py("slow")
    service(cp.admin, "users", pyup.url)
    service(cp.admin, "slow", slow.url, timeout_ms=200)  # first byte within 200 ms
    agg_route(cp.admin, "dash", [backend("user", "users", "/users/{id}", key="user"),
                                 backend("recs", "slow", "/hold/x", required=False)], deadline_ms=10000)
    t0 = time.monotonic()
    out = merged(get(dp, "/dash/1"))
    assert time.monotonic() - t0 < 5.0
    assert out["_errors"] == {"recs": {"status": None, "error": "timeout"}}, out
    slow.release()


def test_client_leaving_cancels_the_calls(cp, dp, pyup, make_py):
    slow = make_py("slow")
    service(cp.admin, "slow", slow.url)
    agg_route(cp.admin, "dash", [backend("a", "slow", "/hold/a", key="a"), backend("b", "slow", "/hold/b", key="b")],
              deadline_ms=20000)
    with socket.create_connection(("127.0.0.1", dp.port), timeout=5) as s:
        s.sendall(b"GET /dash/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.wait_held(2)
    slow.release()
    # the data plane is fine and answers the next request (teardown checks it for sanitizer reports)
    out = merged(get(dp, "/dash/2"))
    assert out["a"]["path"] == "/hold/a" and out["b"]["path"] == "/hold/b", out


# ---------------------------------------------------------------------------------------------------------------
# substitution


def test_values_are_substituted_percent_encoded(cp, dp, pyup):
    service(cp.admin, "users", pyup.url)
    agg_route(cp.admin, "dash", [backend("user", "users", "/users/{id}", key="user"),
                                 backend("q", "users", "/q/{query.v}/x?v={query.v}&k=1", key="q")])

    def seen(target):
        out = merged(get(dp, target))
        return out["user"], out["q"]

    user, _ = seen("/dash/a%3Fb%23c")
    assert user["path"] == "/users/a%3Fb%23c", user
    user, _ = seen("/dash/a&b=c+d")
    assert user["path"] == "/users/a%26b%3Dc%2Bd", user
    _, q = seen("/dash/1?v=..%2F..%2Fadmin")
    assert q["path"] == "/q/..%2F..%2Fadmin/x?v=..%2F..%2Fadmin&k=1", q
    _, q = seen("/dash/1?v=..")
    assert q["path"] == "/q/%2E%2E/x?v=..&k=1", q
    _, q = seen("/dash/1?v=a%26k%3D2%23f")
    assert q["path"] == "/q/a%26k%3D2%23f/x?v=a%26k%3D2%23f&k=1", q
    _, q = seen("/dash/1?v=a%0d%0aX-Evil:%201")
    assert q["path"] == "/q/a%0D%0AX-Evil%3A%201/x?v=a%0D%0AX-Evil%3A%201&k=1", q
    assert "x-evil" not in q["headers"], q
    _, q = seen("/dash/1?v=a+b%2Bc")
    assert q["path"] == "/q/a%20b%2Bc/x?v=a%20b%2Bc&k=1", q
    # an encoded '/' in the client's path is refused before anything (the canonical path has none)
    n = pyup.count
    r = get(dp, "/dash/..%2F..%2Fadmin")
    assert r.status == 400, r
    r = get(dp, "/dash/%2e%2e/admin")  # a dot segment is resolved first: /admin matches no route
    assert r.status == 404, r
    assert pyup.count == n


# ---------------------------------------------------------------------------------------------------------------
# identity, credentials and policies


@pytest.fixture
def shop(cp, dp, pyup):
    return cephalo.Shop(cp.admin, pyup.url)


def test_identity_headers_reach_every_backend(cp, dp, pyup, shop):
    agg_route(cp.admin, "agg", [backend("a", "shop", "/orders/{id}", key="a"),
                                backend("b", "plain", "/b/{id}", key="b")],
              service="shop", default_access="authenticated")
    k, key = shop.api_key("ci", roles=["reader"])
    prefix, secret = key.split(".", 1)
    for hdrs in ({"X-API-Key": key}, {"Authorization": f"ApiKey {key}"}):
        out = merged(get(dp, "/agg/7", headers=dict(hdrs, **{"X-Cephalo-Roles": "admin"})))
        ids = []
        for name in ("a", "b"):
            seen = out[name]
            ident = identity(seen)
            assert ident["api-key-id"] == str(k["id"]) and ident["system"] == "shop", (name, ident)
            assert ident["roles"] == "reader", (name, ident)  # the spoofed header never gets through
            assert "x-api-key" not in seen["headers"] and "authorization" not in seen["headers"], (name, seen)
            assert secret not in json.dumps(seen), name
            ids.append(ident["request-id"])
        assert ids[0] == ids[1] and len(ids[0]) == 32, ids  # one client request, one id
    # a user's bearer token is forwarded as proxying does, with the user's identity
    token = shop.access(dp, "bob")
    out = merged(get(dp, "/agg/7", headers=cephalo.bearer(token)))
    for name in ("a", "b"):
        assert identity(out[name])["user-id"] == shop.uid("bob"), out[name]
        assert out[name]["headers"]["authorization"] == f"Bearer {token}", out[name]
    # authentication and authorization apply before any backend is called
    n = pyup.count
    assert get(dp, "/agg/7").status == 401
    assert get(dp, "/agg/7", headers=cephalo.bearer(shop.access(dp, "dave", system="other"))).status == 403
    assert pyup.count == n


def test_rate_limits_and_default_access_apply(cp, dp, pyup):
    service(cp.admin, "users", pyup.url)
    agg_route(cp.admin, "dash", [backend("user", "users", "/users/{id}", key="user")],
              policies={"rate_limits": [cephalo.rate_limit("per-ip", rate=1, period_s=60)]})
    assert get(dp, "/dash/1").status == 200
    n = pyup.count
    assert get(dp, "/dash/1").status == 429
    agg_route(cp.admin, "shut", [backend("user", "users", "/users/{id}", key="user")], default_access="deny")
    assert get(dp, "/shut/1").status == 403
    assert pyup.count == n


def test_backend_service_balancing_and_retries(cp, dp, make_py):
    a, b = make_py("a"), make_py("b")
    service(cp.admin, "pair", a.url, b.url)
    service(cp.admin, "flaky", dead_url(), a.url)  # a refused connect is retried on the other target
    agg_route(cp.admin, "dash", [backend("p", "pair", "/p/{id}", key="p"), backend("f", "flaky", "/f/{id}", key="f")])
    names = set()
    for i in range(12):
        out = merged(get(dp, f"/dash/{i}"))
        names.add(out["p"]["upstream"])
        assert out["f"]["upstream"] == "a", out
    assert names == {"a", "b"}, names


def test_backend_service_breaker_ejects_a_failing_target(cp, dp, pyup, ctl):
    ctl.set("/bad", status=500, body=b'{"e":1}')
    service(cp.admin, "users", pyup.url)
    service(cp.admin, "mixed", ctl.url, pyup.url, policies={
        "outlier": {"consecutive_failures": 2, "base_ejection_ms": 60000, "max_ejection_percent": 100}})
    agg_route(cp.admin, "dash", [backend("user", "users", "/users/{id}", key="user"),
                                 backend("m", "mixed", "/bad", key="m", required=False)],
              policies={"retries": {"max": 0}})
    failed = 0
    for i in range(12):
        out = merged(get(dp, f"/dash/{i}"))
        failed += "_errors" in out
    # two 500s in a row eject the failing target: every later call goes to the healthy one
    assert ctl.count("/bad") == 2 and failed == 2, (ctl.count("/bad"), failed)
    assert cephalo.metric(dp.metrics(), "cephalo_dp_upstream_ejections_total", service="mixed") == 1


def test_merged_answer_over_8_mib_is_502(cp, dp, ctl):
    ctl.set("/big", headers={"Content-Type": "application/json"}, body=b'{"a":"' + b"x" * (1000 * 1000) + b'"}')
    service(cp.admin, "side", ctl.url)
    agg_route(cp.admin, "dash", [backend(f"b{i}", "side", "/big", key=f"b{i}") for i in range(9)])
    refused(get(dp, "/dash/1", timeout=30), 502, "aggregate_too_large")
    agg_route(cp.admin, "fits", [backend(f"b{i}", "side", "/big", key=f"b{i}") for i in range(8)])
    assert len(merged(get(dp, "/fits/1", timeout=30))["b7"]["a"]) == 1000 * 1000


def test_backend_failures_are_counted_per_service(cp, dp, pyup):
    service(cp.admin, "users", pyup.url)
    service(cp.admin, "gone", dead_url())
    agg_route(cp.admin, "dash", [backend("user", "users", "/users/{id}", key="user"),
                                 backend("g", "gone", "/g", required=False)], policies={"retries": {"max": 0}})
    for i in range(3):
        assert merged(get(dp, f"/dash/{i}"))["_errors"]["g"]["error"] == "connect_failed"
    m = dp.metrics()
    assert cephalo.metric(m, "cephalo_dp_upstream_errors_total", service="gone", kind="connect") == 3, m
    assert not cephalo.metric(m, "cephalo_dp_upstream_errors_total", service="users")


def test_post_backend_gets_the_client_body(cp, dp, pyup):
    service(cp.admin, "users", pyup.url)
    service(cp.admin, "flaky", dead_url(), pyup.url)  # the GET backend's refused connects are retried
    agg_route(cp.admin, "make", [backend("create", "users", "/create/{id}", key="create", method="POST"),
                                 backend("info", "flaky", "/info/{id}", key="info")], methods=["POST"])
    for _ in range(4):
        out = merged(get(dp, "/make/3", method="POST", body=b'{"x":1}', headers={"Content-Type": "application/json"}))
        assert out["create"]["method"] == "POST" and out["create"]["body"] == '{"x":1}', out
        assert out["create"]["headers"]["content-type"] == "application/json", out
        assert out["info"]["method"] == "GET" and out["info"]["body"] == "", out
        assert "content-length" not in out["info"]["headers"] and "content-type" not in out["info"]["headers"], out
    assert get(dp, "/make/3").status == 405


def test_admin_api_refuses_bad_aggregate_routes(cp):
    service(cp.admin, "users", "http://127.0.0.1:9")
    cfg = {"pattern": "/d/{id}", "backends": [backend("u", "users", "/u/{id}")]}

    def post(**over):
        body = {"name": "d", "service": "users", "paths": ["/d"], "kind": "aggregate", "aggregate": dict(cfg, **over)}
        return cp.admin.post(f"{V1}/routes", body)

    for over, code, path in (({"backends": [backend("u", "nobody", "/u")]}, "unknown_service", None),
                             ({"backends": [backend("u", "users", "/u/{user}")]}, "invalid", "/aggregate/backends/0/path"),
                             ({"backends": [backend("u", "users", "/u/../{id}")]}, "invalid", "/aggregate/backends/0/path"),
                             ({"pattern": "/d/{id}/{id}"}, "invalid", "/aggregate/pattern"),
                             ({"deadline_ms": 0}, "invalid", "/aggregate/deadline_ms")):
        r = post(**over)
        assert r.status in (400, 404, 409, 422), (over, r)
        body = r.json()
        assert body["error"] == code, (over, body)
        if path is not None:
            assert body.get("path") == path, (over, body)


# ---------------------------------------------------------------------------------------------------------------
# service credentials (pushed by a fake control plane: the real one resolves them from Vault, 26_vault.py)

EPOCH = "0123456789abcdef0123456789abcdef"
SECRET = "Bearer agg-s3cr3t-VALUE"


def creds_body(url):
    def svc(name, credentials=None):
        s = {"name": name, "targets": [{"url": url, "weight": 1}], "timeout_ms": 10000}
        if credentials is not None:
            s["credentials"] = credentials
        return s
    orders = {"source": "vault:services/orders@2",
              "headers": [{"name": "authorization", "value": SECRET}, {"name": "x-custom-secret", "value": "c-1"}]}
    broken = {"source": "vault:services/broken", "error": "the secret has not been read from Vault yet"}
    cfg = {"pattern": "/agg/{id}", "backends": [backend("a", "orders", "/a/{id}", key="a"),
                                                backend("b", "plain", "/b/{id}", key="b"),
                                                backend("c", "broken", "/c/{id}", key="c", required=False)]}
    return {"services": [svc("orders", orders), svc("plain"), svc("broken", broken)],
            "routes": [{"name": "agg", "service": "plain", "paths": ["/agg"], "hosts": [], "methods": [],
                        "strip_prefix": False, "default_access": "public", "kind": "aggregate", "aggregate": cfg}]}


def test_service_credentials_per_backend(procs, tmpdir_str, pyup):
    fake = cephalo.FakeCP(os.path.join(tmpdir_str, "fakecp", "cp.sock"))
    try:
        dp = cephalo.DataPlane(procs, tmpdir_str, fake.path).start()
        fake.accept()
        assert fake.recv()["type"] == "hello"
        fake.send({"type": "welcome", "epoch": EPOCH, "heartbeat_ms": 1000})
        b = creds_body(pyup.url)
        fake.send({"type": "snapshot", "epoch": EPOCH, "version": 1, "hash": cephalo.canonical_hash(b), "schema": 1,
                   "body": b})
        ack = fake.recv()
        assert ack["type"] == "ack", ack
        n = pyup.count
        r = get(dp, "/agg/5", headers={"X-Custom-Secret": "forged"})
        out = merged(r)
        # the backend of the service with credentials gets them, once, over the client's headers
        assert out["a"]["headers"]["authorization"] == SECRET and out["a"]["headers"]["x-custom-secret"] == "c-1", out
        # the other backend gets what proxying would give it: the client's own headers
        assert out["b"]["headers"]["x-custom-secret"] == "forged" and "authorization" not in out["b"]["headers"], out
        # a service whose credentials are unavailable is never called
        assert out["_errors"] == {"c": {"status": None, "error": "credentials_unavailable"}}, out
        assert r.headers["x-cephalo-partial"] == "c"
        assert pyup.count == n + 2
        assert SECRET not in dp.proc.stderr_text()
    finally:
        fake.close()
