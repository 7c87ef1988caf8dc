"""17: the explain API and shadow rules (docs/access.md section 4, G and H).

POST /api/v1/authz/explain runs the data plane's decision code on the control plane's current snapshot: its answer
is checked field by field for a token, an API key and a user of the database, for allow, 403 and 401, and compared
with what the data plane really answers for the same requests. A shadow rule is evaluated and counted but never
enforced: the traffic is decided by the enforced rules while GET /api/v1/authz/shadow (fed by the data planes'
pings, every --heartbeat-ms, small here) and the data plane's /metrics count what the shadow rule would have done.
"""
import pytest

import cephalo

V1 = "/api/v1"
EXPLAIN = f"{V1}/authz/explain"
HEARTBEAT_MS = 200


@pytest.fixture
def cp(procs, tmpdir_str):
    """A control plane with a short heartbeat: the data planes' pings (which carry the shadow counts) come often."""
    return cephalo.ControlPlane(procs, tmpdir_str, heartbeat_ms=HEARTBEAT_MS).start()


@pytest.fixture
def shop(cp, dp, pyup):
    return cephalo.Shop(cp.admin, pyup.url)


def explain(admin, **body):
    r = admin.post(EXPLAIN, body)
    assert r.status == 200, f"explain {body} -> {r}"
    out = r.json()
    assert out["version"] == admin.snapshot()["version"], out
    assert isinstance(out["chain"], list) and out["chain"] and all(isinstance(x, str) for x in out["chain"]), out
    return out


def principal(out):
    p = out["principal"]
    assert p is not None, out
    assert {"kind", "id", "system", "roles", "effective_roles", "groups", "superuser"} <= set(p), p
    return p


# ---------------------------------------------------------------------------------------------------------------
# explain


def test_explain_allow_with_a_token(cp, dp, shop):
    out = explain(cp.admin, method="GET", path="/shop/public/../orders/7?x=1", token=shop.access(dp, "bob"))
    assert (out["decision"], out["status"]) == ("allow", 200), out
    assert out["canonical_path"] == "/shop/orders/7" and out["upstream_path"] == "/orders/7", out
    assert (out["route"], out["service"], out["service_system"]) == ("shop", "shop", "shop"), out
    p = principal(out)
    assert (p["kind"], str(p["id"]), p["system"], p["superuser"]) == ("user", shop.uid("bob"), "shop", False), p
    assert p["roles"] == [] and p["groups"] == ["staff"] and p["effective_roles"] == ["reader"], p
    assert out["credential"]["valid"] is True, out
    rule = shop.rules["/orders/{id}"]
    assert out["rule"] == {"id": rule["id"], "method": "GET", "path": "/orders/{id}", "public": False,
                           "kind": "template"}, out
    assert out["reason"] == "role" and out["granted_by"] == "role:reader", out
    assert out["shadow"] is None, out
    assert any("/shop/orders/7" in line for line in out["chain"]), out["chain"]


def test_explain_forbidden_with_a_token(cp, dp, shop):
    out = explain(cp.admin, method="GET", path="/shop/orders/7", token=shop.access(dp, "alice"))
    assert (out["decision"], out["status"]) == ("forbidden", 403), out
    assert out["reason"] == "no_matching_role_or_group" and out["granted_by"] is None, out
    p = principal(out)
    assert p["roles"] == ["writer"] and p["effective_roles"] == ["writer"] and p["groups"] == [], p
    assert out["rule"]["id"] == shop.rules["/orders/{id}"]["id"], out


def test_explain_unauthenticated(cp, dp, shop):
    out = explain(cp.admin, method="GET", path="/shop/orders/7")
    assert (out["decision"], out["status"], out["reason"]) == ("unauthenticated", 401, "no_credential"), out
    assert out["principal"] is None and out["credential"] is None, out
    out = explain(cp.admin, method="GET", path="/shop/public/x", token="not.a.token")
    assert (out["decision"], out["status"]) == ("unauthenticated", 401), out  # presented and invalid: 401 first
    assert out["credential"]["valid"] is False and out["credential"]["reason"] == "malformed", out
    assert out["principal"] is None, out


def test_explain_with_an_api_key(cp, dp, shop):
    k, key = shop.api_key("ci", roles=["reader"])
    out = explain(cp.admin, method="GET", path="/shop/orders/7", api_key=key)
    assert (out["decision"], out["granted_by"]) == ("allow", "role:reader"), out
    p = principal(out)
    assert (p["kind"], str(p["id"]), p["system"]) == ("api_key", str(k["id"]), "shop"), p
    out = explain(cp.admin, method="POST", path="/shop/orders", api_key=key)
    assert out["decision"] == "forbidden", out
    prefix, secret = key.split(".")
    out = explain(cp.admin, method="GET", path="/shop/orders/7", api_key=f"{prefix}.{'A' * 43}")
    assert out["decision"] == "unauthenticated" and out["credential"]["valid"] is False, out
    assert secret not in str(out)


def test_explain_a_user_of_the_database(cp, dp, shop):
    a = cp.admin
    out = explain(a, method="GET", path="/shop/orders/7", user="bob")
    assert (out["decision"], out["granted_by"]) == ("allow", "role:reader"), out
    assert principal(out)["system"] == "shop", out  # the service's system when none is given
    out = explain(a, method="DELETE", path="/shop/ops/x", user=shop.uid("olga"))
    assert (out["decision"], out["reason"], out["granted_by"]) == ("allow", "group", "group:ops"), out
    out = explain(a, method="GET", path="/other/x", user="root")
    assert (out["decision"], out["reason"]) == ("allow", "superuser"), out
    assert principal(out)["superuser"] is True
    out = explain(a, method="GET", path="/shop/any", user="dave", system="other")
    assert (out["decision"], out["status"], out["reason"]) == ("forbidden", 403, "wrong_system"), out
    out = explain(a, method="GET", path="/shop/any", user="carol")  # disabled
    assert (out["decision"], out["reason"]) == ("unauthenticated", "no_credential"), out
    assert any("disabled" in line for line in out["chain"]), out["chain"]
    assert a.post(EXPLAIN, {"method": "GET", "path": "/shop/any", "user": "nobody"}).status in (200, 400, 404)


def test_explain_default_access_and_routing(cp, dp, shop):
    a = cp.admin
    bob = shop.access(dp, "bob")
    out = explain(a, method="GET", path="/shop/unruled", token=bob)
    assert (out["decision"], out["rule"], out["default_access"]) == ("allow", None, "authenticated"), out
    assert out["reason"] == "default_authenticated", out
    out = explain(a, method="GET", path="/closed/x", token=bob)
    assert (out["decision"], out["status"], out["reason"]) == ("forbidden", 403, "default_deny"), out
    out = explain(a, method="GET", path="/open/x")
    assert (out["decision"], out["reason"], out["service_system"]) == ("allow", "default_public", None), out
    out = explain(a, method="GET", path="/nothing/here")
    assert (out["decision"], out["status"], out["route"]) == ("not_found", 404, None), out
    out = explain(a, method="GET", path="/shop/a%2fb")
    assert (out["decision"], out["status"]) == ("bad_path", 400), out
    out = explain(a, method="GET", path="/shop/public/x", host="shop.example")
    assert (out["decision"], out["reason"]) == ("allow", "public_endpoint"), out


CASES = [  # (user or None, method, path)
    (None, "GET", "/shop/public/x"), (None, "GET", "/shop/orders/7"), ("bob", "GET", "/shop/orders/7"),
    ("alice", "GET", "/shop/orders/7"), ("alice", "POST", "/shop/orders"), ("olga", "DELETE", "/shop/ops/x"),
    ("bob", "DELETE", "/shop/ops/x"), ("root", "GET", "/shop/ops/x"), ("dave", "GET", "/shop/any"),
    ("dave", "GET", "/other/x"), (None, "GET", "/open/x"), (None, "GET", "/authn/x"), ("root", "GET", "/closed/x"),
    ("bob", "GET", "/shop/orders/7/"), (None, "GET", "/nothing"), (None, "GET", "/shop/x%2fy"),
]


def test_explain_says_what_the_dataplane_does(cp, dp, shop):
    tokens = {u: shop.access(dp, u, system="other" if u == "dave" else "shop") for u in ("alice", "bob", "olga", "root",
                                                                                         "dave")}
    diffs = []
    for user, method, path in CASES:
        body = {"method": method, "path": path}
        hdrs = {}
        if user:
            body["token"] = tokens[user]
            hdrs = cephalo.bearer(tokens[user])
        want = explain(cp.admin, **body)["status"]
        got = cephalo.http_request(dp.port, method, path, headers=hdrs,
                                   body=b"" if method == "POST" else None).status
        if want != got:
            diffs.append(f"{user} {method} {path}: explain {want}, data plane {got}")
    assert not diffs, "\n".join(diffs)


HOSTILE = [
    b"{", b"", b"[]", b"null", b'{"method": "GET"}', b'{"path": "/x"}', b'{"method": 1, "path": "/x"}',
    b'{"method": "GET", "path": 5}', b'{"method": ["GET"], "path": "/x"}',
    b'{"method": "GET", "path": "/x", "extra": 1}',
    b'{"method": "GET", "path": "/x", "token": 1}', b'{"method": "GET", "path": "/x", "api_key": ["k"]}',
    b'{"method": "GET", "path": "/x", "user": true}', b'{"method": "GET", "path": "/x", "host": 7}',
    b'{"method": "GET", "path": "/x", "token": "a.b.c", "api_key": "x.y"}',
    b'{"method": "GET", "path": "/x", "token": "a.b.c", "user": "bob"}',
    b'{"method": "GET", "path": "/x", "api_key": "x.y", "user": "bob"}',
    b'{"method": "GET", "path": "/x", "user": "bob", "system": 3}',
    b'{"method": "GET", "method": "POST", "path": "/x"}',
    b'{"method": "GET", "path": "/x\\u0000"}',
]


def test_hostile_explain_bodies_are_400(cp, dp, shop):
    a = cp.admin
    version = a.snapshot()["version"]
    failures = []
    for raw in HOSTILE:
        r = a.request("POST", EXPLAIN, raw=raw)
        if r.status not in (400, 413) or not r.json().get("error"):
            failures.append(f"{raw[:100]!r}: want 400 (413 when too large), got {r}")
    for method in ("GET", "PUT", "DELETE"):
        r = a.request(method, EXPLAIN, body={"method": "GET", "path": "/x"} if method == "PUT" else None)
        if r.status != 405:
            failures.append(f"{method} explain: want 405, got {r}")
    r = a.request("POST", EXPLAIN, body={"method": "GET", "path": "/x"}, token=None)
    if r.status != 401:
        failures.append(f"explain without the admin token: want 401, got {r}")
    # a body over the admin API's 1 MiB: 413 at once, from the declared length (the rest is never sent)
    head = (f"POST {EXPLAIN} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {a.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n").encode()
    out = cephalo.raw_request(a.port, head + b'{"method": "GET", "path": "/aaaa', timeout=10)
    if not out.startswith(b"HTTP/1.1 413"):
        failures.append(f"a 2 MB explain body: want 413, got {out[:200]!r}")
    assert not failures, "\n".join(failures)
    assert cp.proc.alive() and a.snapshot()["version"] == version  # explain writes nothing
    assert explain(a, method="GET", path="/open/x")["decision"] == "allow"


# ---------------------------------------------------------------------------------------------------------------
# shadow rules


def shadow_rules(admin):
    """Two shadow rules on service shop: GET /orders/* for writers, GET /secret/* public. Applied."""
    a = admin
    orders = a.ok("POST", f"{V1}/endpoints", {"service": "shop", "method": "GET", "path": "/orders/*", "shadow": True,
                                              "roles": [{"system": "shop", "name": "writer"}]})["endpoint"]
    assert orders["shadow"] is True, orders
    secret = a.apply("POST", f"{V1}/endpoints", {"service": "shop", "method": "GET", "path": "/secret/*",
                                                 "shadow": True, "public": True})["endpoint"]
    return orders, secret


def shadow_traffic(dp, shop):
    """bob x3 and alice x2 on /shop/orders/7, one anonymous, two anonymous on /shop/secret/x: the enforced answers."""
    bob, alice = shop.access(dp, "bob"), shop.access(dp, "alice")
    statuses = [dp.get("/shop/orders/7", headers=cephalo.bearer(bob)).status for _ in range(3)]
    statuses += [dp.get("/shop/orders/7", headers=cephalo.bearer(alice)).status for _ in range(2)]
    statuses += [dp.get("/shop/orders/7").status]
    statuses += [dp.get("/shop/secret/x").status for _ in range(2)]
    return statuses


def test_shadow_rule_is_counted_never_enforced(cp, dp, shop):
    orders, secret = shadow_rules(cp.admin)
    # the enforced rule decides: reader yes (bob), writer no (alice), nobody 401; /secret/* has no enforced rule, so
    # the route's default (authenticated) refuses the anonymous requests although the shadow rule is public
    assert shadow_traffic(dp, shop) == [200, 200, 200, 403, 403, 401, 401, 401]
    want = {"endpoints": sorted([{"id": orders["id"], "would_allow": 2, "would_deny": 4},
                                 {"id": secret["id"], "would_allow": 2, "would_deny": 0}], key=lambda e: e["id"])}
    cephalo.wait_until(lambda: cp.admin.ok("GET", f"{V1}/authz/shadow", expect=(200,)) == want, 10,
                       "the next pings carry the shadow counts", interval=0.05)
    m = dp.metrics()
    for rule, outcome, n in ((orders, "would_allow", 2), (orders, "would_deny", 4), (secret, "would_allow", 2)):
        assert cephalo.metric(m, "cephalo_authz_shadow_total", endpoint=str(rule["id"]), outcome=outcome) == n, m
    assert not cephalo.metric(m, "cephalo_authz_shadow_total", endpoint=str(secret["id"]), outcome="would_deny")
    assert cephalo.metric(m, "cephalo_authz_decisions_total", outcome="allow") >= 3
    assert cephalo.metric(m, "cephalo_authz_decisions_total", outcome="forbidden") >= 2
    assert cephalo.metric(m, "cephalo_authz_decisions_total", outcome="unauthenticated") >= 3
    # explain shows the shadow rule next to the enforced one
    out = explain(cp.admin, method="GET", path="/shop/orders/7", user="bob")
    assert out["decision"] == "allow" and out["rule"]["id"] == shop.rules["/orders/{id}"]["id"], out
    assert out["shadow"]["rule"]["id"] == orders["id"] and out["shadow"]["decision"] == "forbidden", out
    out = explain(cp.admin, method="GET", path="/shop/secret/x")
    assert out["decision"] == "unauthenticated" and out["rule"] is None, out
    assert out["shadow"]["rule"]["id"] == secret["id"] and out["shadow"]["decision"] == "allow", out


def test_shadow_counts_are_summed_over_dataplanes(cp, dp, make_dp, shop):
    dp2 = make_dp("dp2")
    orders, secret = shadow_rules(cp.admin)
    shadow_traffic(dp, shop)
    shadow_traffic(dp2, shop)
    want = {"endpoints": sorted([{"id": orders["id"], "would_allow": 4, "would_deny": 8},
                                 {"id": secret["id"], "would_allow": 4, "would_deny": 0}], key=lambda e: e["id"])}
    cephalo.wait_until(lambda: cp.admin.ok("GET", f"{V1}/authz/shadow", expect=(200,)) == want, 10,
                       "both data planes' counts summed", interval=0.05)


def test_no_shadow_rule_no_counts(cp, dp, shop):
    assert shadow_traffic(dp, shop)[:3] == [200, 200, 200]
    assert cp.admin.ok("GET", f"{V1}/authz/shadow", expect=(200,)) == {"endpoints": []}
    assert not cephalo.metric(dp.metrics(), "cephalo_authz_shadow_total")
