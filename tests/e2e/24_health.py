"""24: active health checks (issue 6). A target failing its check is ejected (no request reaches it), comes back
after healthy_threshold passing checks, all targets unhealthy answer 503 no_healthy_upstream at once, the status
listener's GET /health/services shows the states, a push that keeps a target keeps its state, and the data plane
reports the same to the control plane (GET /api/v1/health/services).

Every upstream here is a small HTTP server of the test process whose /healthz answers a status the test flips (or
that is shut down); it counts the other requests, so "no traffic reaches it" is a count, not a guess. Ordering comes
from ?wait=applied writes and deadline-bounded polling of /health/services; the only sleeps prove an absence.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cephalo

CHECK = {"path": "/healthz", "interval_ms": 150, "timeout_ms": 100, "healthy_threshold": 2, "unhealthy_threshold": 2,
         "expected_statuses": [200, 204]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        up = self.server.owner
        if self.path.split("?", 1)[0] == "/healthz":
            with up.lock:
                up.checks += 1
                up.check_agents.add(self.headers.get("User-Agent"))
                status = up.health_status
        else:
            with up.lock:
                up.requests += 1
            status = 200
        body = up.name.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


class Upstream:
    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.health_status = 200
        self.checks = 0
        self.requests = 0
        self.check_agents = set()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.closed = False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def set_health(self, status):
        with self.lock:
            self.health_status = status

    def count(self):
        with self.lock:
            return self.requests

    def close(self):
        if not self.closed:
            self.closed = True
            self.server.shutdown()
            self.server.server_close()


def make_upstreams(procs, *names):
    ups = [Upstream(n) for n in names]
    procs.servers.extend(ups)
    return ups


def health(dp):
    r = cephalo.http_get(dp.status_port, "/health/services", timeout=5)
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    return r.json()


def target_of(report, service, url):
    for svc in report["services"]:
        if svc["name"] == service:
            for t in svc["targets"]:
                if t["url"] == url:
                    return t
    return None


def wait_health(dp, service, url, want, timeout=10.0):
    def done():
        t = target_of(health(dp), service, url)
        return t is not None and t["health"] == want and t["last_check"] is not None
    cephalo.wait_until(done, timeout, f"{service} {url} {want}", proc=dp.proc)


def setup_service(admin, name, ups, check=CHECK):
    admin.apply("POST", "/api/v1/services", {"name": name, "targets": [{"url": u.url} for u in ups],
                                             "policies": {"health_check": check}})
    admin.apply("POST", "/api/v1/routes", {"default_access": "public", "name": name, "service": name,
                                           "paths": [f"/{name}"]})


def spread(dp, path, n):
    """n requests; returns the bodies (each upstream answers its name)."""
    out = []
    for _ in range(n):
        r = dp.get(path)
        assert r.status == 200, r
        out.append(r.body.decode())
    return out


def test_ejected_then_recovers(cp, dp, procs):
    a, b = make_upstreams(procs, "a", "b")
    setup_service(cp.admin, "hc", [a, b])
    wait_health(dp, "hc", a.url, "healthy")
    wait_health(dp, "hc", b.url, "healthy")
    assert set(spread(dp, "/hc/x", 10)) == {"a", "b"}
    with b.lock:
        assert b.check_agents == {"cephalo-health/1"}, b.check_agents

    b.set_health(500)
    wait_health(dp, "hc", b.url, "unhealthy")
    before = b.count()
    assert set(spread(dp, "/hc/x", 20)) == {"a"}
    assert b.count() == before  # not one request reached the ejected target
    t = target_of(health(dp), "hc", b.url)
    assert t["last_check"]["status"] == 500 and t["last_check"]["error"] == "status", t

    b.set_health(204)  # any expected status passes
    wait_health(dp, "hc", b.url, "healthy")
    assert set(spread(dp, "/hc/x", 10)) == {"a", "b"}


def test_stopped_upstream_is_ejected(cp, dp, procs):
    a, b = make_upstreams(procs, "a", "b")
    setup_service(cp.admin, "gone", [a, b])
    wait_health(dp, "gone", b.url, "healthy")
    b.close()
    wait_health(dp, "gone", b.url, "unhealthy")
    assert target_of(health(dp), "gone", b.url)["last_check"]["error"] == "connect"
    assert set(spread(dp, "/gone/x", 10)) == {"a"}


def test_all_unhealthy_fast_503(cp, dp, procs):
    a, b = make_upstreams(procs, "a", "b")
    setup_service(cp.admin, "down", [a, b])
    a.set_health(503)
    b.set_health(503)
    wait_health(dp, "down", a.url, "unhealthy")
    wait_health(dp, "down", b.url, "unhealthy")
    before = (a.count(), b.count())
    t0 = time.monotonic()
    r = dp.get("/down/x")
    elapsed = time.monotonic() - t0
    assert r.status == 503, r
    assert r.json()["error"] == "no_healthy_upstream", r
    assert elapsed < 1.0, elapsed
    assert (a.count(), b.count()) == before
    a.set_health(200)
    wait_health(dp, "down", a.url, "healthy")
    assert dp.get("/down/x").status == 200


def test_push_keeps_state(cp, dp, procs):
    a, b = make_upstreams(procs, "a", "b")
    setup_service(cp.admin, "keep", [a, b])
    b.set_health(500)
    wait_health(dp, "keep", b.url, "unhealthy")
    # a push that keeps both targets and changes the check (new timeout and interval: its check restarts at once):
    # b is still unhealthy right after it applied. A target starting afresh would be healthy until two failed checks,
    # and the second of those is 5 s away.
    cp.admin.apply("PUT", "/api/v1/services/keep", {"name": "keep", "targets": [{"url": a.url}, {"url": b.url}],
                                                    "timeout_ms": 20000,
                                                    "policies": {"health_check": dict(CHECK, interval_ms=5000,
                                                                                      timeout_ms=1000)}})
    t = target_of(health(dp), "keep", b.url)
    assert t["health"] == "unhealthy", t
    before = b.count()
    assert set(spread(dp, "/keep/x", 10)) == {"a"}
    assert b.count() == before
    # the service drops its check: the targets are unchecked (and both take traffic, b's /healthz still failing)
    cp.admin.apply("PUT", "/api/v1/services/keep", {"name": "keep", "targets": [{"url": a.url}, {"url": b.url}]})
    cephalo.wait_until(lambda: target_of(health(dp), "keep", b.url)["health"] == "unchecked", 10, "b unchecked")
    rep = health(dp)
    svc = [s for s in rep["services"] if s["name"] == "keep"][0]
    assert svc["health_check"] is False, svc
    assert set(spread(dp, "/keep/x", 10)) == {"a", "b"}


def test_report_shape_and_methods(cp, dp, procs):
    (a,) = make_upstreams(procs, "a")
    setup_service(cp.admin, "shape", [a])
    cp.admin.apply("POST", "/api/v1/services", {"name": "plain", "targets": [{"url": a.url, "weight": 3}]})
    wait_health(dp, "shape", a.url, "healthy")
    rep = health(dp)
    by_name = {s["name"]: s for s in rep["services"]}
    shape, plain = by_name["shape"], by_name["plain"]
    assert shape["health_check"] is True
    t = shape["targets"][0]
    assert set(t) == {"url", "weight", "health", "breaker", "active", "ejections", "last_check"}, t
    assert t["breaker"] == "closed" and t["active"] == 0 and t["weight"] == 1, t
    assert set(t["last_check"]) == {"at", "status", "error", "duration_ms"}, t
    assert t["last_check"]["status"] == 200 and t["last_check"]["error"] is None, t
    assert t["last_check"]["at"].endswith("Z") and "T" in t["last_check"]["at"], t
    p = plain["targets"][0]
    assert plain["health_check"] is False and p["health"] == "unchecked" and p["last_check"] is None, p
    assert p["weight"] == 3, p
    r = cephalo.http_request(dp.status_port, "POST", "/health/services", body=b"{}")
    assert r.status == 405, r


def test_reported_to_control_plane(cp, dp, procs):
    a, b = make_upstreams(procs, "a", "b")
    setup_service(cp.admin, "cpr", [a, b])
    b.set_health(500)
    wait_health(dp, "cpr", b.url, "unhealthy")

    def reported():
        r = cp.admin.request("GET", "/api/v1/health/services")
        if r.status != 200:
            return False
        for d in r.json().get("dataplanes", []):
            if d.get("dp_id") != dp.dp_id:
                continue
            t = target_of(d, "cpr", b.url)
            return t is not None and t["health"] == "unhealthy"
        return False
    cephalo.wait_until(reported, 10, "the control plane has the data plane's health report", proc=dp.proc)
    # and the CP-held report carries received_at
    r = cp.admin.request("GET", "/api/v1/health/services").json()
    d = [d for d in r["dataplanes"] if d["dp_id"] == dp.dp_id][0]
    assert isinstance(d.get("received_at"), str), d
    json.dumps(d)  # plain JSON


def test_snapshot_from_disk_is_checked(cp, dp, procs, tmpdir_str):
    """A data plane booting from its state dir, control plane down, checks the targets of the snapshot on disk."""
    a, b = make_upstreams(procs, "a", "b")
    setup_service(cp.admin, "disk", [a, b])
    wait_health(dp, "disk", b.url, "healthy")
    b.set_health(500)
    assert dp.proc.stop() == 0
    assert cp.proc.stop() == 0
    dp2 = cephalo.DataPlane(procs, tmpdir_str, cp.socket, name="dp2", state_dir=dp.state_dir, dp_id=dp.dp_id).start()
    dp2.wait_ready()
    wait_health(dp2, "disk", b.url, "unhealthy")
    wait_health(dp2, "disk", a.url, "healthy")
    before = b.count()
    assert set(spread(dp2, "/disk/x", 10)) == {"a"}
    assert b.count() == before
