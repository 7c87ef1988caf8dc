"""07: SIGTERM drains: in-flight requests complete with 200, new connections are refused, exit code 0."""
import http.client
import signal
import socket
import threading

import cephalo

N = 8


def test_sigterm_drains_in_flight(cp, make_dp, pyup):
    dp = make_dp("dp", drain_timeout_ms=20000)
    cp.admin.apply("POST", "/api/v1/services", {"name": "slow", "targets": [{"url": pyup.url}], "timeout_ms": 30000})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "slow", "service": "slow", "paths": ["/slow"]})
    assert dp.get("/slow/warm").status == 200

    results = [None] * N

    def one(i):
        try:
            results[i] = cephalo.http_get(dp.port, f"/slow/hold/{i}", timeout=40)
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            results[i] = e

    # an idle keep-alive connection, opened before the signal
    idle = http.client.HTTPConnection("127.0.0.1", dp.port, timeout=10)
    idle.request("GET", "/slow/idle")
    assert idle.getresponse().read()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    pyup.wait_held(N)  # all N are at the upstream: truly in flight

    dp.proc.signal(signal.SIGTERM)

    def refused():
        try:
            socket.create_connection(("127.0.0.1", dp.port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True
    cephalo.wait_until(refused, 10, "the listener closed after SIGTERM")
    assert dp.proc.alive(), "exited with requests in flight"

    # the idle keep-alive connection is closed by the server
    idle.sock.settimeout(10)
    assert idle.sock.recv(1) == b"", "idle keep-alive connection not closed"
    idle.close()

    pyup.release()
    for t in threads:
        t.join(40)
    for i, r in enumerate(results):
        assert isinstance(r, cephalo.Resp), (i, r)
        assert r.status == 200 and r.json()["path"] == f"/slow/hold/{i}", (i, r)
    assert dp.proc.wait(20) == 0


def test_sigterm_h2_goaway(cp, make_dp, pyup):
    dp = make_dp("dp", drain_timeout_ms=20000)
    cp.admin.apply("POST", "/api/v1/services", {"name": "slow", "targets": [{"url": pyup.url}]})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "slow", "service": "slow", "paths": ["/slow"]})
    result = {}

    def run():
        # curl, not python3-h2: h2 4.x treats the connection as closed once GOAWAY arrives and then refuses the
        # in-flight stream's HEADERS, which RFC 9113 §6.8 allows the server to send.
        result["r"] = cephalo.curl("--http2-prior-knowledge", "--max-time", "30", "-o", "/dev/null",
                                   "-w", "%{http_code} %{http_version}", f"http://127.0.0.1:{dp.port}/slow/hold/h2",
                                   timeout=40)
    t = threading.Thread(target=run)
    t.start()
    pyup.wait_held(1)
    dp.proc.signal(signal.SIGTERM)
    cephalo.wait_until(lambda: not _connectable(dp.port), 10, "listener closed")
    pyup.release()
    t.join(30)
    assert result["r"].stdout == "200 2", (result["r"].stdout, result["r"].stderr)
    assert dp.proc.wait(20) == 0


def test_drain_timeout_bounds_exit(cp, make_dp, pyup):
    dp = make_dp("dp", drain_timeout_ms=500)
    cp.admin.apply("POST", "/api/v1/services", {"name": "slow", "targets": [{"url": pyup.url}]})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "slow", "service": "slow", "paths": ["/slow"]})
    t = threading.Thread(target=lambda: _swallow(lambda: cephalo.http_get(dp.port, "/slow/hold/x", timeout=30)))
    t.start()
    pyup.wait_held(1)
    dp.proc.signal(signal.SIGTERM)
    assert dp.proc.wait(15) == 0  # never released: the drain timeout ends it
    pyup.release()
    t.join(30)


def _swallow(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


def _connectable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
