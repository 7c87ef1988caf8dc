"""04: the data plane keeps serving without its control plane, boots from its state dir while the control plane
is down, and resyncs when it comes back (DESIGN.md §1, PROTOCOL.md §6).
"""
import json
import os
import signal
import stat

import cephalo


def setup_demo(admin, url):
    admin.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": url}]})
    return admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                                  "name": "demo", "service": "demo", "paths": ["/demo"],
                                                  "strip_prefix": True})


def test_cp_killed_dp_keeps_serving(cp, dp, nginx):
    setup_demo(cp.admin, nginx.url)
    assert dp.get("/demo/a").status == 200
    cp.proc.kill()  # SIGKILL: no goodbye on the socket
    for i in range(20):
        r = dp.get(f"/demo/after-kill-{i}")
        assert r.status == 200 and r.headers["x-request-uri"] == f"/after-kill-{i}", r
    assert dp.ready_status() == 200
    # the data plane notices (metric), and still serves
    cephalo.wait_until(lambda: cephalo.metric(dp.metrics(), "cephalo_dp_cp_connected") == 0, 10,
                       "cephalo_dp_cp_connected 0", proc=dp.proc)
    assert dp.get("/demo/still").status == 200


def test_dp_restart_while_cp_down_serves_from_disk(procs, tmpdir_str, cp, nginx):
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket, name="dp1").start()
    dp.wait_connected(cp.admin)
    out = setup_demo(cp.admin, nginx.url)
    snap = cp.admin.snapshot()

    # persisted: mode 0600 in a 0700 directory, holding what the CP sent
    path = os.path.join(dp.state_dir, "snapshot.json")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert stat.S_IMODE(os.stat(dp.state_dir).st_mode) == 0o700, oct(os.stat(dp.state_dir).st_mode)
    with open(path) as f:
        onfile = json.load(f)
    assert onfile["version"] == out["version"] and onfile["hash"] == snap["hash"] and onfile["epoch"] == snap["epoch"]
    assert cephalo.canonical_hash(onfile["body"]) == onfile["hash"]
    assert not os.path.exists(path + ".tmp")

    cp.proc.kill()
    assert dp.proc.stop() == 0

    # a fresh data plane on the same state dir, with the control plane down
    dp2 = cephalo.DataPlane(procs, tmpdir_str, cp.socket, name="dp2", state_dir=dp.state_dir, dp_id=dp.dp_id).start()
    dp2.wait_ready()
    r = dp2.get("/demo/from-disk")
    assert r.status == 200 and r.headers["x-request-uri"] == "/from-disk", r
    m = dp2.metrics()
    assert cephalo.metric(m, "cephalo_dp_snapshot_version") == out["version"], m
    assert cephalo.metric(m, "cephalo_dp_config_loaded") == 1
    assert cephalo.metric(m, "cephalo_dp_cp_connected") == 0

    # the control plane comes back on the same data dir: the DP reconnects (backoff) and takes new writes
    cp2 = cephalo.ControlPlane(procs, tmpdir_str, name="cp2", data_dir=cp.data_dir).start()
    dp2.wait_connected(cp2.admin, timeout=20)
    d = cp2.admin.dataplane(dp2.dp_id)
    assert d["applied"]["hash"] == snap["hash"], d
    cp2.admin.apply("PUT", "/api/v1/routes/demo", {"default_access": "public",
                                                   "name": "demo", "service": "demo", "paths": ["/moved"],
                                                   "strip_prefix": True})
    assert dp2.get("/moved/x").status == 200
    assert dp2.get("/demo/x").status == 404
    d = cp2.admin.dataplane(dp2.dp_id)
    assert d["status"] == "synced" and d["applied"]["source"] == "cp", d


def test_boot_without_anything_is_no_config(procs, tmpdir_str):
    """No control plane and an empty state dir: /ready 503 and every request 503 no_config."""
    sock = os.path.join(tmpdir_str, "nobody", "cp.sock")
    dp = cephalo.DataPlane(procs, tmpdir_str, sock).start()
    assert dp.ready_status() == 503
    r = dp.get("/anything")
    assert r.status == 503 and r.json()["error"] == "no_config", r
    assert cephalo.metric(dp.metrics(), "cephalo_dp_config_loaded") == 0


def test_sigkill_dp_then_restart_with_cp(cp, make_dp, nginx):
    dp = make_dp("dpk")
    out = setup_demo(cp.admin, nginx.url)
    dp.proc.signal(signal.SIGKILL)
    dp.proc.wait(10)
    dp2 = make_dp("dpk2", state_dir=dp.state_dir, dp_id=dp.dp_id)
    dp2.wait_ready()
    assert dp2.get("/demo/x").status == 200
    d = cp.admin.dataplane(dp2.dp_id)
    assert d["applied"]["version"] == out["version"], d
