"""08: the status listener: /health, /ready and the documented /metrics (docs/dataplane.md)."""
import cephalo

DOCUMENTED = ["cephalo_dp_requests_total", "cephalo_dp_upstream_errors_total", "cephalo_dp_snapshot_version",
              "cephalo_dp_snapshot_applies_total", "cephalo_dp_snapshot_nacks_total", "cephalo_dp_config_loaded",
              "cephalo_dp_cp_connected"]


def test_ready_follows_config(cp, dp, nginx):
    assert cephalo.http_get(dp.status_port, "/health").status == 200
    r = cephalo.http_get(dp.status_port, "/metrics")
    assert r.status == 200
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    out = cp.admin.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    assert dp.ready_status() == 200
    m = dp.metrics()
    assert cephalo.metric(m, "cephalo_dp_snapshot_version") == out["version"]
    assert cephalo.metric(m, "cephalo_dp_config_loaded") == 1
    assert cephalo.metric(m, "cephalo_dp_cp_connected") == 1
    assert cephalo.metric(m, "cephalo_dp_snapshot_applies_total") >= 1


def test_metrics_count_requests(cp, dp, nginx):
    a = cp.admin
    a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    a.apply("POST", "/api/v1/services", {"name": "dead", "targets": [{"url": f"http://127.0.0.1:{cephalo.free_port()}"}]})
    a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                       "name": "demo", "service": "demo", "paths": ["/demo"]})
    a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                       "name": "dead", "service": "dead", "paths": ["/dead"]})
    before = dp.metrics()
    applies_before = cephalo.metric(before, "cephalo_dp_snapshot_applies_total")
    for _ in range(7):
        assert dp.get("/demo/x").status == 200
    for _ in range(3):
        assert dp.get("/dead/x").status == 502
    m = dp.metrics()
    text = cephalo.http_get(dp.status_port, "/metrics").body.decode()
    for name in DOCUMENTED:
        assert name in text, f"{name} missing from /metrics:\n{text}"

    def delta(name, **labels):
        return (cephalo.metric(m, name, **labels) or 0) - (cephalo.metric(before, name, **labels) or 0)
    assert delta("cephalo_dp_requests_total", route="demo", status_class="2xx") == 7, text
    assert delta("cephalo_dp_requests_total", route="dead", status_class="5xx") == 3, text
    assert delta("cephalo_dp_upstream_errors_total", service="dead") == 3, text
    assert cephalo.metric(m, "cephalo_dp_snapshot_nacks_total") == 0
    # one more write: one more apply
    out = a.apply("DELETE", "/api/v1/routes/dead")
    m2 = dp.metrics()
    assert cephalo.metric(m2, "cephalo_dp_snapshot_applies_total") == applies_before + 1
    assert cephalo.metric(m2, "cephalo_dp_snapshot_version") == out["version"]


def test_status_listener_unknown_path(dp):
    assert cephalo.http_get(dp.status_port, "/nope").status == 404
