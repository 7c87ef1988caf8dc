"""44: faults under load (issue "Hardening": faults and soak) - nothing lost.

- The control plane killed with SIGKILL while clients hammer a data plane: not one request fails; the control plane
  comes back on its data dir, the data plane reconnects by itself and catches up with a write made afterwards.
- A data plane killed with SIGKILL again and again while versions are pushed to it: every time, what it left on disk
  is a whole snapshot (the new one or the one before), and a data plane booted from it alone - no control plane -
  is ready and serves.
- 50 admin writers at once against SQLite: every write answers 201 (no 500 from SQLITE_BUSY), the control plane is
  then killed with SIGKILL, and after a restart every acknowledged write is there and PRAGMA integrity_check is ok.
- One of two targets flapping (down and up every 150 ms, its connections cut): no client request fails.
Redis killed and SIGSTOPped is in 19_ratelimit.py and 21b_cache_redis.py.
"""
import json
import os
import random
import signal
import sqlite3
import threading
import time

import cephalo


def load(dp, stop, results, path="/demo/load"):
    """Keep-alive GETs as fast as one client goes, until stop is set; counts statuses in results."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", dp.port, timeout=10)
    while not stop.is_set():
        try:
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            results[r.status] = results.get(r.status, 0) + 1
        except (OSError, http.client.HTTPException) as e:
            results[type(e).__name__] = results.get(type(e).__name__, 0) + 1
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", dp.port, timeout=10)
    c.close()


def demo_route(admin, url, name="demo"):
    admin.apply("POST", "/api/v1/services", {"name": name, "targets": [{"url": url}]})
    return admin.apply("POST", "/api/v1/routes?wait=applied", {"name": name, "service": name, "paths": [f"/{name}"],
                                                               "default_access": "public"})


def test_cp_sigkill_under_load(procs, tmpdir_str, cp, dp, nginx):
    demo_route(cp.admin, nginx.url)
    stop, results = threading.Event(), [{}, {}]
    threads = [threading.Thread(target=load, args=(dp, stop, results[i])) for i in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        cp.proc.kill()
        cephalo.wait_until(lambda: cephalo.metric(dp.metrics(), "cephalo_dp_cp_connected") == 0, 10,
                           "the data plane notices", proc=dp.proc)
        time.sleep(0.5)
        cp2 = cephalo.ControlPlane(procs, tmpdir_str, data_dir=cp.data_dir, admin_port=cp.admin_port).start()
        cephalo.wait_until(lambda: cephalo.metric(dp.metrics(), "cephalo_dp_cp_connected") == 1, 15,
                           "the data plane reconnects by itself", proc=dp.proc)
        out = demo_route(cp2.admin, nginx.url, name="later")  # a write after the restart reaches it
        assert dp.get("/later/x").status == 200
        assert cp2.admin.dataplane(dp.dp_id)["applied"]["version"] == out["version"]
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    total = {}
    for r in results:
        for k, v in r.items():
            total[k] = total.get(k, 0) + v
    assert set(total) == {200} and total[200] > 100, total


def whole_snapshot_boots(procs, tmpdir_str, state_dir, i):
    """A data plane on a copy of state_dir with no control plane: ready from disk, serving /demo."""
    dp = cephalo.DataPlane(procs, tmpdir_str, os.path.join(tmpdir_str, f"nocp-{i}.sock"), name=f"disk{i}",
                           state_dir=state_dir).start()
    try:
        cephalo.wait_until(lambda: dp.ready_status() == 200, 10, "ready from disk", proc=dp.proc)
        assert dp.get("/demo/x").status == 200
    finally:
        dp.proc.stop()


def test_dp_sigkill_mid_persist(procs, tmpdir_str, cp, make_dp, nginx):
    demo_route(cp.admin, nginx.url)
    writing = threading.Event()
    writing.set()

    def writer():
        n = 0
        while writing.is_set():  # a new version about every 20 ms: the data plane persists continuously
            n += 1
            cp.admin.request("PUT", "/api/v1/routes/demo", {"name": "demo", "service": "demo", "paths": ["/demo"],
                                                            "default_access": "public",
                                                            "policies": {"limits": {"max_url_bytes": 4096 + n % 1000}}})
    t = threading.Thread(target=writer)
    t.start()
    rnd = random.Random(44)
    try:
        for i in range(5):
            dp = make_dp(f"dpk{i}")
            time.sleep(rnd.uniform(0.1, 0.6))
            dp.proc.signal(signal.SIGKILL)
            dp.proc.wait(10)
            for name in ("snapshot.json", "snapshot.prev.json"):
                path = os.path.join(dp.state_dir, name)
                if os.path.exists(path):
                    with open(path, encoding="utf-8") as fp:
                        doc = json.load(fp)  # never a torn file
                    assert doc.get("hash", "").startswith("sha256:") and "body" in doc, (name, list(doc))
                    assert oct(os.stat(path).st_mode & 0o777) == "0o600", name
            whole_snapshot_boots(procs, tmpdir_str, dp.state_dir, i)
    finally:
        writing.clear()
        t.join(30)


def test_fifty_concurrent_admin_writers_then_sigkill(procs, tmpdir_str, cp):
    statuses, lock = [], threading.Lock()

    def write(i):
        r = cp.admin.request("POST", "/api/v1/services", {"name": f"svc-{i}", "targets": []})
        with lock:
            statuses.append((i, r.status, r.body[:200]))
    threads = [threading.Thread(target=write, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(s for _, s, _ in statuses) == [201] * 50, [s for s in statuses if s[1] != 201]
    cp.proc.kill()
    cp.proc.wait(10)
    db = os.path.join(cp.data_dir, "cephalo.db")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cp2 = cephalo.ControlPlane(procs, tmpdir_str, data_dir=cp.data_dir, admin_port=cp.admin_port).start()
    listed = cp2.admin.get("/api/v1/services").json()
    names = {s["name"] for s in listed["data"]}
    assert {f"svc-{i}" for i in range(50)} <= names, sorted(names)


def test_flapping_upstream_costs_no_request(cp, dp, pyup):
    """One of two targets goes down and up every 150 ms, its connections cut: the retry (default 1, to another target)
    and the breaker keep every client request whole."""
    flap = cephalo.Flapper(cephalo.free_port())
    flap.up()
    cp.admin.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": pyup.url},
                                                                            {"url": f"http://127.0.0.1:{flap.port}"}]})
    cp.admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "demo", "service": "demo", "paths": ["/demo"],
                                                           "default_access": "public"})
    stop, results = threading.Event(), [{}, {}]
    threads = [threading.Thread(target=load, args=(dp, stop, results[i])) for i in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(10):
            time.sleep(0.15)
            flap.down()
            time.sleep(0.15)
            flap.up()
    finally:
        stop.set()
        for t in threads:
            t.join(20)
        flap.down()
    total = {}
    for r in results:
        for k, v in r.items():
            total[k] = total.get(k, 0) + v
    assert set(total) == {200} and total[200] > 100, total
    assert flap.served > 0, "the flapping target was never used: the test proves nothing"
