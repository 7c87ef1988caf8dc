"""25: a service's upstream policies through the admin API, and the data planes' health reports (issue 6, control plane).

- CRUD: `policies` is accepted on create and replace, returned as sent by GET (item and list), `{}` when absent or
  dropped by a full replace;
- every kind of bad `policies` value is 400 with the JSON pointer, and hostile bodies (huge, deeply nested, wrong
  types) never crash the control plane, never bump the version and lose nothing;
- the snapshot carries `policies` on every service (as stored, `{}` when none): in GET /api/v1/snapshot?body=1 and
  in the body a real data plane applied and persisted (`<state-dir>/snapshot.json`);
- GET /api/v1/health/services: admin auth, 404/405 around it, `{"dataplanes": []}` without data planes, one entry per
  connected data plane with its last `health` report (a scripted data plane on the CP socket sends them: kept,
  replaced, filtered with ?service=, a bad one dropped without closing the session, gone at disconnect), and a real
  data plane listed with the right shape. Only the last part of test_health_real_dp needs the data plane's own
  report (dataplane/core/health.c): it is marked below and xfails, not fails, while the data plane sends none.
"""
import json
import os
import time

import pytest

import cephalo

V1 = "/api/v1"
FULL = {
    "lb": {"policy": "consistent_hash", "hash_on": "header:x-user"},
    "health_check": {"path": "/healthz", "interval_ms": 5000, "timeout_ms": 1000, "healthy_threshold": 2,
                     "unhealthy_threshold": 3, "expected_statuses": [200, 204]},
    "outlier": {"consecutive_failures": 5, "base_ejection_ms": 30000, "max_ejection_ms": 300000,
                "max_ejection_percent": 50},
    "limits": {"max_requests": 1024, "max_pending": 1024},
}


def err(r, status, code=None, path=None):
    assert r.status == status, f"want {status} {code}, got {r}"
    body = r.json()
    if code is not None:
        codes = code if isinstance(code, tuple) else (code,)
        assert body.get("error") in codes, f"want error={code}, got {body}"
    if path is not None:
        assert body.get("path") == path, f"want path={path}, got {body}"
    return body


def svc(name="svc", policies=..., targets=None):
    out = {"name": name, "targets": targets if targets is not None else [{"url": "http://127.0.0.1:9", "weight": 1}]}
    if policies is not ...:
        out["policies"] = policies
    return out


# ---------------------------------------------------------------------------------------------------------------
# CRUD


def test_crud_with_policies(admin):
    out = admin.ok("POST", f"{V1}/services", svc("a", FULL), expect=(201,))
    assert out["service"]["policies"] == FULL  # as sent: nothing filled in
    b = admin.ok("POST", f"{V1}/services", svc("b"), expect=(201,))["service"]
    assert b["policies"] == {}
    assert admin.ok("GET", f"{V1}/services/a")["policies"] == FULL
    assert admin.ok("GET", f"{V1}/services/{out['service']['id']}")["policies"] == FULL
    assert [(s["name"], s["policies"]) for s in admin.ok("GET", f"{V1}/services")["data"]] == [("a", FULL), ("b", {})]

    # a replace sets it, a replace without it is {} again (full replace)
    p = {"lb": {"policy": "least_conn"}, "limits": {"max_requests": 10}}
    assert admin.ok("PUT", f"{V1}/services/b", svc("b", p), expect=(200,))["service"]["policies"] == p
    assert admin.ok("GET", f"{V1}/services/b")["policies"] == p
    assert admin.ok("PUT", f"{V1}/services/a", svc("a"), expect=(200,))["service"]["policies"] == {}
    assert admin.ok("GET", f"{V1}/services/a")["policies"] == {}
    admin.ok("DELETE", f"{V1}/services/a", expect=(200,))
    assert admin.get(f"{V1}/services/a").status == 404


BAD = [
    (None, "invalid", "/policies"),
    ([], "invalid", "/policies"),
    ("round_robin", "invalid", "/policies"),
    (1, "invalid", "/policies"),
    (1.5, "invalid", "/policies"),
    ({"lbb": {}}, "unknown_field", "/policies/lbb"),
    ({"lb": {"policy": "fastest"}}, "invalid", "/policies/lb/policy"),
    ({"lb": {"policy": 3}}, "invalid", "/policies/lb/policy"),
    ({"lb": {"policy": "consistent_hash"}}, "missing_field", "/policies/lb/hash_on"),
    ({"lb": {"policy": "random", "hash_on": "ip"}}, "invalid", "/policies/lb/hash_on"),
    ({"lb": {"policy": "round_robin", "x": 1}}, "unknown_field", "/policies/lb/x"),
    ({"health_check": {"path": "healthz"}}, "invalid", "/policies/health_check/path"),
    ({"health_check": {"path": "/h", "interval_ms": 99}}, "invalid", "/policies/health_check/interval_ms"),
    ({"health_check": {"path": "/h", "interval_ms": 1000, "timeout_ms": 1000}}, "invalid",
     "/policies/health_check/timeout_ms"),
    ({"health_check": {"path": "/h", "healthy_threshold": 2.0}}, "invalid", "/policies/health_check/healthy_threshold"),
    ({"health_check": {"path": "/h", "expected_statuses": [99]}}, "invalid",
     "/policies/health_check/expected_statuses/0"),
    ({"outlier": {"consecutive_failures": 1001}}, "invalid", "/policies/outlier/consecutive_failures"),
    ({"outlier": {"base_ejection_ms": 60000, "max_ejection_ms": 1000}}, "invalid", "/policies/outlier/max_ejection_ms"),
    ({"outlier": {"max_ejection_percent": -1}}, "invalid", "/policies/outlier/max_ejection_percent"),
    ({"limits": {"max_requests": 0}}, "invalid", "/policies/limits/max_requests"),
    ({"limits": {"max_pending": "10"}}, "invalid", "/policies/limits/max_pending"),
    ({"limits": []}, "invalid", "/policies/limits"),
]


def test_bad_policies(admin):
    before = admin.ok("POST", f"{V1}/services", svc("keep", FULL), expect=(201,))
    version = admin.snapshot()["version"]
    failures = []
    for value, code, path in BAD:
        for method, url in (("POST", f"{V1}/services"), ("PUT", f"{V1}/services/keep")):
            r = admin.request(method, url, svc("keep" if method == "PUT" else "new", value))
            b = r.json() if r.body else {}
            if r.status != 400 or b.get("error") != code or b.get("path") != path:
                failures.append(f"{method} policies={value!r}: want 400 {code} at {path}, got {r}")
    assert not failures, "\n".join(failures)
    assert admin.snapshot()["version"] == version
    assert admin.ok("GET", f"{V1}/services/keep") == before["service"]
    assert admin.get(f"{V1}/services/new").status == 404


def test_hostile_bodies(admin):
    keep = admin.ok("POST", f"{V1}/services", svc("keep", FULL), expect=(201,))["service"]
    version = admin.snapshot()["version"]
    # deep nesting inside policies: within the parser's limit (refused by the schema) and beyond it (bad JSON)
    for depth in (100, 2000, 5000):
        raw = ('{"name":"n","targets":[],"policies":' + '{"lb":' * depth + "{}" + "}" * depth + "}").encode()
        r = admin.request("POST", f"{V1}/services", raw=raw)
        assert r.status == 400, f"depth {depth}: {r}"
        raw = ('{"name":"keep","targets":[],"policies":' + "[" * depth + "]" * depth + "}").encode()
        assert admin.request("PUT", f"{V1}/services/keep", raw=raw).status == 400
    # a huge policies object just under the body limit (over it is 413: 01_admin_api.py)
    big = {f"k{i}": i for i in range(60000)}
    raw = json.dumps(svc("n", big)).encode()
    assert len(raw) < 1024 * 1024
    err(admin.request("POST", f"{V1}/services", raw=raw), 400, "unknown_field")
    # wrong types everywhere
    for p in ({"lb": None}, {"lb": {"policy": None}}, {"health_check": []}, {"health_check": {"path": 7}},
              {"outlier": "off"}, {"limits": {"max_requests": True}}, {"limits": {"max_requests": 1e3}},
              {"health_check": {"path": "/h", "expected_statuses": "200"}}, {"lb": {"policy": "random\u0000"}}):
        r = admin.request("POST", f"{V1}/services", svc("n", p))
        assert r.status == 400, f"{p!r}: {r}"
    # nothing was written, nothing was lost, the control plane is still up
    assert admin.snapshot()["version"] == version
    assert admin.ok("GET", f"{V1}/services/keep") == keep
    assert admin.get(f"{V1}/services/n").status == 404
    assert cephalo.http_get(admin.port, "/health").status == 200


# ---------------------------------------------------------------------------------------------------------------
# the snapshot


def test_snapshot_carries_policies(admin, make_dp):
    dp = make_dp()
    admin.apply("POST", f"{V1}/services", svc("a", FULL))
    admin.apply("POST", f"{V1}/services", svc("b"))
    admin.apply("POST", f"{V1}/routes", {"name": "r", "service": "a", "paths": ["/a"]})
    snap = admin.ok("GET", f"{V1}/snapshot?body=1")
    assert [(s["name"], s["policies"]) for s in snap["body"]["services"]] == [("a", FULL), ("b", {})]
    assert cephalo.canonical_hash(snap["body"]) == snap["hash"]
    # what the data plane applied and persisted is that body
    row = admin.dataplane(dp.dp_id)
    assert row["status"] == "synced" and row["applied"]["version"] == snap["version"], row

    def persisted():
        with open(os.path.join(dp.state_dir, "snapshot.json")) as f:
            data = json.load(f)
        return data if data["version"] == snap["version"] else None
    data = cephalo.wait_until(persisted, 10, "the data plane persisted the snapshot")
    assert [(s["name"], s["policies"]) for s in data["body"]["services"]] == [("a", FULL), ("b", {})]
    # a replace reaches it too
    admin.apply("PUT", f"{V1}/services/b", svc("b", {"lb": {"policy": "random"}}))
    body = admin.ok("GET", f"{V1}/snapshot?body=1")["body"]
    assert body["services"][1]["policies"] == {"lb": {"policy": "random"}}


# ---------------------------------------------------------------------------------------------------------------
# health reports


REPORT = [
    {"name": "orders", "health_check": True, "targets": [
        {"url": "http://10.0.0.1:8080", "weight": 2, "health": "healthy", "breaker": "closed", "active": 1,
         "ejections": 0, "last_check": {"at": "2026-11-23T16:00:00.123Z", "status": 200, "error": None,
                                        "duration_ms": 3}},
        {"url": "http://10.0.0.2:8080", "weight": 1, "health": "unhealthy", "breaker": "open", "active": 0,
         "ejections": 2, "last_check": {"at": "2026-11-23T16:00:01Z", "status": None, "error": "connect: refused",
                                        "duration_ms": 1000}}]},
    {"name": "users", "health_check": False, "targets": [
        {"url": "http://u:1", "weight": 1, "health": "unchecked", "breaker": "half_open", "active": 0,
         "ejections": 1, "last_check": None}]},
]


def health(admin, query=""):
    return admin.ok("GET", f"{V1}/health/services{query}", expect=(200,))


def test_health_endpoint_without_dataplanes(admin):
    assert health(admin) == {"dataplanes": []}
    assert health(admin, "?service=orders") == {"dataplanes": []}
    assert admin.get(f"{V1}/health/services", token=None).status == 401
    assert admin.get(f"{V1}/health/services", token="wrong").status == 401
    err(admin.post(f"{V1}/health/services", {}), 405)
    summary = admin.get(f"{V1}/health")  # the summary (docs/observability.md): no data plane is not a problem
    assert summary.status == 200 and summary.json()["status"] == "ok", summary
    err(admin.post(f"{V1}/health", {}), 405)
    err(admin.get(f"{V1}/health/targets"), 404, "not_found")
    err(admin.get(f"{V1}/health/services/x"), 404)


def test_health_reports_scripted(cp):
    admin = cp.admin
    a = cephalo.FakeDP(cp.socket, "dp-a")  # sync(): a ping and its pong, snapshots acked on the way
    b = cephalo.FakeDP(cp.socket, "dp-b")
    a.sync()
    b.sync()
    out = health(admin)["dataplanes"]
    assert [(d["dp_id"], d["received_at"], d["services"]) for d in out] == [("dp-a", None, []), ("dp-b", None, [])]

    a.send({"type": "health", "services": REPORT})
    a.sync()
    out = health(admin)["dataplanes"]
    assert out[0]["dp_id"] == "dp-a" and out[0]["services"] == REPORT
    at = out[0]["received_at"]
    assert isinstance(at, str) and at.endswith("Z") and at[10] == "T", at
    assert out[1]["services"] == []
    # ?service= keeps that service only, in every entry
    out = health(admin, "?service=users")["dataplanes"]
    assert [d["services"] for d in out] == [[REPORT[1]], []]
    assert [d["services"] for d in health(admin, "?service=nope")["dataplanes"]] == [[], []]

    # bad and hostile reports are dropped, the last good one stays, the session goes on
    bad_target = dict(REPORT[0]["targets"][0], health="sick")
    for services in ("all good", None, [1], [{"name": "x", "health_check": True, "targets": [bad_target]}],
                     [{"name": "x" * 100, "health_check": True, "targets": []}],
                     [{"name": f"s{i}", "health_check": True, "targets": [REPORT[0]["targets"][0]] * 256}
                      for i in range(65)]):
        a.send({"type": "health", "services": services})
    a.send({"type": "health"})
    a.sync()
    assert health(admin)["dataplanes"][0]["services"] == REPORT
    # unknown members are left out
    a.send({"type": "health", "services": [dict(REPORT[1], zone="eu")], "extra": 1})
    a.sync()
    assert health(admin)["dataplanes"][0]["services"] == [REPORT[1]]

    # a disconnect drops the entry; the other stays
    a.close()
    cephalo.wait_until(lambda: [d["dp_id"] for d in health(admin)["dataplanes"]] == ["dp-b"], 10, "dp-a gone")
    b.close()
    cephalo.wait_until(lambda: health(admin)["dataplanes"] == [], 10, "dp-b gone")
    assert cephalo.http_get(admin.port, "/health").status == 200


def test_health_real_dp(cp, make_dp, pyup):
    admin = cp.admin
    dp = make_dp()
    out = health(admin)["dataplanes"]
    assert [d["dp_id"] for d in out] == [dp.dp_id]
    entry = out[0]
    assert set(entry) == {"dp_id", "received_at", "services"}
    assert entry["received_at"] is None or entry["received_at"].endswith("Z")
    assert isinstance(entry["services"], list)

    admin.apply("POST", f"{V1}/services", svc("checked", {"health_check": {"path": "/", "interval_ms": 200,
                                                                           "timeout_ms": 100}},
                                          targets=[{"url": f"http://127.0.0.1:{pyup.port}", "weight": 1}]))

    # --- needs the data plane's own health report (dataplane/core/health.c sends `health` over the socket) ---
    def reported():
        d = health(admin, "?service=checked")["dataplanes"]
        return d[0] if d and d[0]["services"] else None
    deadline = time.monotonic() + 10
    got = None
    while got is None and time.monotonic() < deadline:
        got = reported()
        time.sleep(0.1)
    if got is None:
        pytest.xfail("the data plane sent no health report for the service (the DP side of issue 6 is not in yet)")
    s = got["services"][0]
    assert s["name"] == "checked" and s["health_check"] is True
    assert [t["url"] for t in s["targets"]] == [f"http://127.0.0.1:{pyup.port}"]
    assert s["targets"][0]["health"] in ("healthy", "unhealthy", "unchecked")
    assert got["received_at"].endswith("Z")
