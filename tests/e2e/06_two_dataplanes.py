"""06: two data planes on one control plane both apply every write and are listed synced with the same hash."""
import threading
import time

import cephalo


def test_two_dataplanes_synced_same_hash(cp, make_dp, nginx):
    dp1 = make_dp("dp1")
    dp2 = make_dp("dp2")
    a = cp.admin
    a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    out = a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                             "name": "demo", "service": "demo", "paths": ["/demo"],
                                             "strip_prefix": True})
    acked = {d["id"]: d for d in out["applied"]["dataplanes"]}
    assert set(acked) >= {dp1.dp_id, dp2.dp_id}, out
    for dp in (dp1, dp2):
        assert acked[dp.dp_id]["version"] >= out["version"] and not acked[dp.dp_id].get("error"), out
    snap = a.snapshot()
    listed = {d["id"]: d for d in a.dataplanes()}
    for dp in (dp1, dp2):
        d = listed[dp.dp_id]
        assert d["connected"] is True and d["status"] == "synced", d
        assert d["applied"]["version"] == out["version"] == snap["version"], (d, snap)
        assert d["applied"]["hash"] == snap["hash"], (d, snap)
        assert d["pid"] == dp.proc.pid, d
        assert d["last_error"] is None
        r = dp.get("/demo/both")
        assert r.status == 200 and r.headers["x-request-uri"] == "/both", r

    # one goes away: the other still applies, and the list says who is disconnected
    assert dp2.proc.stop() == 0
    cephalo.wait_until(lambda: a.dataplane(dp2.dp_id)["connected"] is False, 10, "dp2 listed disconnected")
    assert a.dataplane(dp2.dp_id)["status"] == "disconnected"
    out2 = a.apply("PUT", "/api/v1/routes/demo", {"default_access": "public",
                                                  "name": "demo", "service": "demo", "paths": ["/v2"]})
    assert [d["id"] for d in out2["applied"]["dataplanes"]] == [dp1.dp_id], out2
    assert dp1.get("/v2/x").status == 200



def test_wait_applied_without_dataplanes_returns_at_once(cp):
    t0 = time.monotonic()
    out = cp.admin.ok("POST", "/api/v1/services?wait=applied", {"name": "s", "targets": []})
    assert time.monotonic() - t0 < 2.0
    assert out["applied"]["settled"] is True and out["applied"]["dataplanes"] == [], out


def test_wait_applied_is_bounded_by_a_silent_dataplane(cp, make_dp):
    """A connected data plane that never answers: ?wait=applied gives up after about 5 s with settled false,
    while the real data plane next to it is reported as applied."""
    dp = make_dp("real")
    fake = cephalo.FakeDP(cp.socket, "fake-silent")
    stop = threading.Event()

    def keepalive():  # pings, so the CP keeps it connected (3 missed heartbeats would drop it)
        seq = 0
        while not stop.wait(0.2):
            seq += 1
            try:
                fake.send({"type": "ping", "seq": seq})
            except OSError:
                return
    pinger = threading.Thread(target=keepalive, daemon=True)
    pinger.start()
    try:
        cephalo.wait_until(lambda: (cp.admin.dataplane("fake-silent") or {}).get("connected") is True, 10,
                           "fake connected")
        t0 = time.monotonic()
        out = cp.admin.ok("POST", "/api/v1/services?wait=applied", {"name": "s", "targets": []})
        elapsed = time.monotonic() - t0
        assert 4.0 <= elapsed < 8.0, elapsed
        assert out["applied"]["settled"] is False, out
        by_id = {d["id"]: d for d in out["applied"]["dataplanes"]}
        assert by_id[dp.dp_id]["version"] == out["version"], out
        assert cp.admin.dataplane(dp.dp_id)["status"] == "synced"
        assert cp.admin.dataplane("fake-silent")["status"] == "applying"
    finally:
        stop.set()
        pinger.join(5)
        fake.close()


def test_silent_dataplane_marked_disconnected(cp):
    """PROTOCOL.md §4 rule 5: three heartbeats without any message -> listed disconnected."""
    fake = cephalo.FakeDP(cp.socket, "fake-mute")
    try:
        cephalo.wait_until(lambda: (cp.admin.dataplane("fake-mute") or {}).get("connected") is True, 10,
                           "fake connected")
        t0 = time.monotonic()
        cephalo.wait_until(lambda: cp.admin.dataplane("fake-mute")["connected"] is False, 10,
                           "the mute DP listed disconnected")
        assert time.monotonic() - t0 >= 1.5  # not at once: it had heartbeats of grace
        assert cp.admin.dataplane("fake-mute")["status"] == "disconnected"
    finally:
        fake.close()
