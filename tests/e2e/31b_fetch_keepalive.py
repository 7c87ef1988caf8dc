"""31b: the buffered upstream exchange of aggregate backends and PDF source pages (dataplane/filter/fetch.c) reuses
the proxy's per-worker keep-alive pools: an upstream that counts its TCP connections sees the aggregate's backend calls
come back on the connections earlier calls (and proxied requests) left idle, instead of one new connection per call.

Upstream: a tiny HTTP/1.1 keep-alive JSON server in this file that counts accepted connections and requests.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import cephalo

V1 = "/api/v1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.requests += 1
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CountingUpstream(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def process_request(self, request, client_address):
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def counts(self):
        with self.lock:
            return self.connections, self.requests

    def close(self):
        self.shutdown()
        self.server_close()


@pytest.fixture
def counting(procs):
    up = CountingUpstream()
    procs.servers.append(up)
    return up


def setup_routes(admin, url):
    admin.ok("POST", f"{V1}/services", {"name": "users", "targets": [{"url": url}]})
    admin.ok("POST", f"{V1}/services", {"name": "orders", "targets": [{"url": url}]})
    admin.apply("POST", f"{V1}/routes", {"name": "plain", "service": "users", "paths": ["/plain"],
                                          "default_access": "public"})
    admin.apply("POST", f"{V1}/routes", {
        "name": "dash", "service": "users", "paths": ["/dash"], "default_access": "public", "kind": "aggregate",
        "aggregate": {"pattern": "/dash/{id}", "backends": [
            {"name": "user", "service": "users", "path": "/users/{id}", "key": "user"},
            {"name": "orders", "service": "orders", "path": "/orders/{id}", "key": "orders"}]}})


def aggregate(dp, n):
    r = cephalo.http_request(dp.port, "GET", f"/dash/{n}")
    assert r.status == 200, r
    out = r.json()
    assert out["user"]["path"] == f"/users/{n}" and out["orders"]["path"] == f"/orders/{n}", out


def test_aggregate_backends_reuse_keepalive_connections(cp, dp, counting):
    setup_routes(cp.admin, counting.url)
    aggregate(dp, 1)
    conns1, reqs1 = counting.counts()
    assert reqs1 == 2 and conns1 <= 2, (conns1, reqs1)
    time.sleep(0.05)  # the first calls' connections are back in the pool
    for n in range(2, 6):
        aggregate(dp, n)
    conns, reqs = counting.counts()
    assert reqs == 10, reqs
    # one new connection per call would be 10; the pool keeps it to the first request's (per worker that served)
    assert conns <= 2 * max(1, dp_workers(dp)), (conns, reqs)
    assert conns < reqs, (conns, reqs)


def test_aggregate_reuses_a_connection_a_proxied_request_left(cp, dp, counting):
    setup_routes(cp.admin, counting.url)
    seen = []
    for _ in range(6):  # warm every worker's pool with one idle connection
        r = cephalo.http_request(dp.port, "GET", "/plain/x")
        assert r.status == 200, r
        seen.append(counting.counts()[0])
    before, _ = counting.counts()
    time.sleep(0.05)
    # sequential backend calls of one service reuse; two parallel ones may need one more connection each
    for n in range(3):
        aggregate(dp, n)
    after, reqs = counting.counts()
    assert reqs == 12, reqs
    assert after - before <= dp_workers(dp), (before, after)


def dp_workers(dp):
    return getattr(dp, "workers", None) or 1
