"""09: snapshot swaps under load: requests running while the config changes never fail, and each sees either the
old or the new config whole (DESIGN.md §3 "Snapshot swap")."""
import http.client
import threading

import cephalo


def test_swaps_under_load_drop_nothing(cp, dp, nginx):
    a = cp.admin
    a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                       "name": "demo", "service": "demo", "paths": ["/demo"], "strip_prefix": True})
    stop = threading.Event()
    errors, counts = [], [0] * 4

    def hammer(i):
        conn = http.client.HTTPConnection("127.0.0.1", dp.port, timeout=10)
        try:
            while not stop.is_set():
                conn.request("GET", f"/demo/w{i}")
                r = conn.getresponse()
                body = r.read()
                if r.status != 200 or r.getheader("X-Request-Uri") != f"/w{i}":
                    errors.append((i, r.status, body[:200]))
                    return
                counts[i] += 1
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            errors.append((i, repr(e)))
        finally:
            conn.close()

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for n in range(15):
            # add and remove unrelated routes: /demo must keep working through every swap
            a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                               "name": f"extra{n}", "service": "demo", "paths": [f"/extra{n}"]})
            if n % 2:
                a.apply("DELETE", f"/api/v1/routes/extra{n - 1}")
            assert dp.get(f"/extra{n}/x").status == 200
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert not errors, errors
    assert all(c > 0 for c in counts), counts
    m = dp.metrics()
    assert cephalo.metric(m, "cephalo_dp_snapshot_version") == a.snapshot()["version"]
