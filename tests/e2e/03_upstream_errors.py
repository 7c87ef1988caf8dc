"""03: upstream failures answer with the documented status and a JSON body: 502 (connect failed), 504 (I/O
timeout = the service's timeout_ms), 503 (no targets); the data plane stays up and serves the next request.
"""
import http.client
import socket
import threading
import time

import cephalo


def json_error(r, status, code):
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert body["error"] == code, body
    return body


def test_502_dead_target(cp, dp, nginx):
    dead = cephalo.free_port()  # nobody listens there
    cp.admin.apply("POST", "/api/v1/services", {"name": "dead", "targets": [{"url": f"http://127.0.0.1:{dead}"}]})
    cp.admin.apply("POST", "/api/v1/services", {"name": "live", "targets": [{"url": nginx.url}]})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "dead", "service": "dead", "paths": ["/dead"]})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "live", "service": "live", "paths": ["/live"]})
    for _ in range(3):
        json_error(dp.get("/dead/x"), 502, "upstream_connect_failed")
    # HTTP/2 too
    p = cephalo.curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
                     f"http://127.0.0.1:{dp.port}/dead/h2")
    assert p.stdout == "502", (p.stdout, p.stderr)
    assert dp.get("/live/x").status == 200
    assert dp.proc.alive()
    m = dp.metrics()
    assert (cephalo.metric(m, "cephalo_dp_upstream_errors_total", service="dead") or 0) >= 4, m


def test_504_slow_upstream(cp, dp, pyup):
    cp.admin.apply("POST", "/api/v1/services", {"name": "slow", "targets": [{"url": pyup.url}], "timeout_ms": 300})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "slow", "service": "slow", "paths": ["/slow"]})
    t0 = time.monotonic()
    r = dp.get("/slow/hold")  # held by the upstream until released: only the timeout can end it
    elapsed = time.monotonic() - t0
    json_error(r, 504, "upstream_timeout")
    assert 0.25 <= elapsed < 5.0, elapsed
    pyup.release()
    r = dp.get("/slow/fast")
    assert r.status == 200 and r.json()["path"] == "/slow/fast", r
    m = dp.metrics()
    assert (cephalo.metric(m, "cephalo_dp_upstream_errors_total", service="slow") or 0) >= 1, m


def test_timeout_is_per_service_and_updated(cp, dp, pyup):
    """Raising timeout_ms with a new snapshot turns the same held request from 504 into 200."""
    cp.admin.apply("POST", "/api/v1/services", {"name": "s", "targets": [{"url": pyup.url}], "timeout_ms": 200})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public", "name": "s", "service": "s", "paths": ["/s"]})
    json_error(dp.get("/s/hold"), 504, "upstream_timeout")
    cp.admin.apply("PUT", "/api/v1/services/s", {"name": "s", "targets": [{"url": pyup.url}], "timeout_ms": 20000})
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", dp.get("/s/hold", timeout=30)))
    t.start()
    pyup.wait_held(2)  # the request that timed out is still held too
    pyup.release()
    t.join(30)
    assert result["r"].status == 200, result


def test_503_no_targets(cp, dp):
    cp.admin.apply("POST", "/api/v1/services", {"name": "empty", "targets": []})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "empty", "service": "empty", "paths": ["/empty"]})
    json_error(dp.get("/empty/x"), 503, "no_upstream")


def test_upstream_closes_mid_response(cp, dp, procs, tmpdir_str):
    """An upstream that accepts and closes without answering: 502, never a hang or a crash."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    port = ls.getsockname()[1]
    stop = threading.Event()

    def serve():
        ls.settimeout(0.1)
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            try:
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            finally:
                c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        cp.admin.apply("POST", "/api/v1/services", {"name": "rude", "targets": [{"url": f"http://127.0.0.1:{port}"}],
                                                    "timeout_ms": 2000})
        cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                                  "name": "rude", "service": "rude", "paths": ["/rude"]})
        for _ in range(3):
            try:
                r = dp.get("/rude/x", timeout=10)
                assert r.status in (502, 200), r  # 200 if headers were already sent, then a truncated body
            except (ConnectionError, http.client.IncompleteRead):
                pass  # a truncated response after the headers went out is acceptable
        assert dp.proc.alive()
        assert dp.ready_status() == 200
    finally:
        stop.set()
        t.join(5)
        ls.close()
