"""45: request and error rates on the control plane (GET /api/v1/dataplanes "traffic", the admin page's dashboard):
every data plane's pings carry its cumulative response counts, which the control plane turns into totals and rates.
"""
import cephalo


def traffic(admin, dp_id):
    return admin.dataplane(dp_id).get("traffic")


def test_traffic_reaches_the_control_plane(cp, dp, pyup):
    assert traffic(cp.admin, dp.dp_id) is None or traffic(cp.admin, dp.dp_id)["requests_total"] == 0
    dead = cephalo.free_port()
    cp.admin.apply("POST", "/api/v1/services", {"name": "echo", "targets": [{"url": pyup.url}]})
    cp.admin.apply("POST", "/api/v1/services", {"name": "dead", "targets": [{"url": f"http://127.0.0.1:{dead}"}]})
    cp.admin.apply("POST", "/api/v1/routes", {"name": "echo", "service": "echo", "paths": ["/echo"],
                                              "default_access": "public"})
    cp.admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "dead", "service": "dead", "paths": ["/dead"],
                                                           "default_access": "public"})
    for i in range(40):
        assert dp.get(f"/echo/{i}").status == 200
    for i in range(10):
        assert dp.get(f"/dead/{i}").status == 502
    for i in range(5):
        assert dp.get(f"/nowhere/{i}").status == 404

    def counted():
        t = traffic(cp.admin, dp.dp_id)
        return t if t and t["requests_total"] >= 55 and t["5xx_total"] >= 10 and t["4xx_total"] >= 5 else None
    t = cephalo.wait_until(counted, 10, "the data plane's counts in /api/v1/dataplanes")
    assert t["requests_total"] == 55 and t["5xx_total"] == 10 and t["4xx_total"] == 5, t
    # a rate needs samples a second apart within the last ~10 s: keep traffic flowing while waiting for it
    def rates():
        dp.get("/echo/more")
        dp.get("/dead/more")
        t = traffic(cp.admin, dp.dp_id) or {}
        return t if t.get("requests_per_s", 0) > 0 and t.get("5xx_per_s", 0) > 0 else None
    t = cephalo.wait_until(rates, 20, "request and 5xx rates", interval=0.2)
    assert t["5xx_per_s"] <= t["requests_per_s"], t
    # a disconnected data plane has no rates
    dp.proc.stop()
    cephalo.wait_until(lambda: not cp.admin.dataplane(dp.dp_id)["connected"], 10, "the disconnect")
    assert traffic(cp.admin, dp.dp_id) is None
