"""39: slow and greedy clients (docs/dataplane.md "Slow clients").

- A per-address connection cap (cephalo-controlplane --max-connections-per-ip, snapshot
  gateway.connections.max_per_ip): past it a new connection from that TCP peer is closed at accept, other addresses
  are not affected, and a closed connection frees its slot.
- Slowloris: request headers dribbled a byte at a time are cut when the header timeout (10 s) passes, whatever the
  pace; the request never reaches the upstream.
- A slow request body is cut the same way.
"""
import os
import socket
import subprocess
import time

import pytest

import cephalo

CAP = 4
HEADER_TIMEOUT_S = 10


@pytest.fixture
def capped(procs, tmpdir_str, pyup):
    cp = cephalo.ControlPlane(procs, tmpdir_str, extra_args=["--max-connections-per-ip", str(CAP)]).start()
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket, workers=2).start()
    dp.wait_connected(cp.admin)
    cp.admin.apply("POST", "/api/v1/services", {"name": "echo", "targets": [{"url": pyup.url}]})
    cp.admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "echo", "service": "echo", "paths": ["/echo"],
                                                           "default_access": "public"})
    return cp, dp


def refused(sock):
    """True when the gateway closed sock without answering (it was over the cap)."""
    sock.settimeout(5)
    try:
        sock.sendall(b"GET /echo/x HTTP/1.1\r\nHost: a\r\n\r\n")
        return sock.recv(65536) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_per_ip_connection_cap(capped):
    cp, dp = capped
    snap = cp.admin.get("/api/v1/snapshot?body=1").json()
    assert snap["body"]["gateway"]["connections"] == {"max_per_ip": CAP}
    held = [socket.create_connection(("127.0.0.1", dp.port), timeout=5) for _ in range(CAP)]
    try:
        # every held connection is accepted and served (keep-alive)
        for s in held:
            s.sendall(b"GET /echo/held HTTP/1.1\r\nHost: a\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200"), "a connection under the cap was not served"
        extra = socket.create_connection(("127.0.0.1", dp.port), timeout=5)
        assert refused(extra), "a connection over the cap was served"
        extra.close()
        # another address has its own budget (the loopback net is 127/8)
        other = socket.create_connection(("127.0.0.1", dp.port), timeout=5, source_address=("127.0.0.2", 0))
        assert not refused(other)
        other.close()
        # closing one frees its slot (the close reaches the data plane asynchronously)
        held.pop().close()

        def one_more():
            s = socket.create_connection(("127.0.0.1", dp.port), timeout=5)
            ok = not refused(s)
            s.close()
            return ok
        cephalo.wait_until(one_more, 5.0, "a slot freed by a close")
    finally:
        for s in held:
            s.close()
    m = dp.metrics()
    assert m[("cephalo_dp_connections_refused_total", frozenset({("reason", "per_ip_limit")}))] >= 1


def test_bad_cap_stops_the_control_plane(tmpdir_str):
    for value in ["-1", "1000001", "ten", ""]:
        p = subprocess.run([os.path.join(cephalo.BIN_DIR, "cephalo-controlplane"), "--data-dir",
                            os.path.join(tmpdir_str, "bad"), "--max-connections-per-ip", value],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "--max-connections-per-ip" in p.stderr, (value, p.stderr)


def dribble(port, data, interval):
    """Sends data a byte every interval on a new connection; see dribble_on."""
    return dribble_on(socket.create_connection(("127.0.0.1", port), timeout=5), data, interval)


def test_slowloris_headers_are_cut(cp, dp, pyup):
    cp.admin.apply("POST", "/api/v1/services", {"name": "echo", "targets": [{"url": pyup.url}]})
    cp.admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "echo", "service": "echo", "paths": ["/echo"],
                                                           "default_access": "public"})
    head = b"GET /echo/slow HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n"
    took, sent, answer = dribble(dp.port, head, 0.25)
    assert sent < len(head), "the whole head went through a byte at a time"
    assert took < HEADER_TIMEOUT_S + 8, took
    assert b"200" not in answer.split(b"\r\n", 1)[0], answer[:200]
    assert "/slow" not in pyup.paths
    assert dp.get("/echo/after").status == 200


def test_slow_body_is_cut(cp, dp, pyup):
    cp.admin.apply("POST", "/api/v1/services", {"name": "echo", "targets": [{"url": pyup.url}]})
    cp.admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "echo", "service": "echo", "paths": ["/echo"],
                                                           "default_access": "public"})
    s = socket.create_connection(("127.0.0.1", dp.port), timeout=5)
    s.sendall(b"POST /echo/slowbody HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
    took, sent, answer = dribble_on(s, b"b" * 1000, 0.25)
    assert sent < 1000, "the whole body went through a byte at a time"
    assert took < HEADER_TIMEOUT_S + 8, took
    assert "/slowbody" not in pyup.paths
    assert dp.get("/echo/after").status == 200


def dribble_on(s, data, interval):
    """Sends data on s a byte every interval until the gateway answers or closes (or 3 header timeouts pass);
    returns (seconds it took, bytes sent, what the gateway answered)."""
    t0 = time.monotonic()
    sent, answer = 0, b""
    try:
        for b in data:
            s.sendall(bytes([b]))
            sent += 1
            s.settimeout(interval)
            try:
                chunk = s.recv(65536)
                answer += chunk
                break
            except socket.timeout:
                pass
            if time.monotonic() - t0 > 3 * HEADER_TIMEOUT_S:
                break
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    return time.monotonic() - t0, sent, answer


class Firehose:
    """An upstream answering every request with a 64 MiB body, written as fast as the gateway takes it; records when
    the gateway closed the connection before the body was done."""

    def __init__(self):
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.cut = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        size, chunk = 64 << 20, b"x" * 65536
        with c:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
            try:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                for _ in range(size // len(chunk)):
                    c.sendall(chunk)
            except OSError:
                self.cut.set()  # the gateway closed it mid-body

    def close(self):
        self.sock.close()


def hose_route(cp, up, idle_ms, wait):
    """A public route /hose to the Firehose up, with the route's idle_ms (wait: until the data planes applied it)."""
    cp.admin.apply("POST", "/api/v1/services", {"name": "hose", "targets": [{"url": f"http://127.0.0.1:{up.port}"}]})
    cp.admin.apply("POST", "/api/v1/routes" + ("?wait=applied" if wait else ""), {
        "name": "hose", "service": "hose", "paths": ["/hose"], "default_access": "public",
        "policies": {"timeouts": {"idle_ms": idle_ms}}})


def test_a_reader_that_stops_loses_the_response(cp, dp, pyup):
    """The client reads the head and stops: once the gateway has 256 KiB waiting for it and the client takes nothing
    for the route's idle_ms, both connections are closed - the upstream connection is not held forever."""
    up = Firehose()
    try:
        hose_route(cp, up, idle_ms=500, wait=True)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little for us
        s.connect(("127.0.0.1", dp.port))
        s.sendall(b"GET /hose/big HTTP/1.1\r\nHost: a\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        assert up.cut.wait(15), "the upstream connection was still held 15 s after the client stopped reading"
        took = time.monotonic() - t0
        # the client's connection is gone too: draining what the kernel buffered ends in EOF or a reset, well short
        # of the 64 MiB
        got = 0
        s.settimeout(10)
        try:
            while True:
                data = s.recv(1 << 20)
                if not data:
                    break
                got += len(data)
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        assert got < 32 << 20, got
        assert took < 10, took
        assert dp.get("/echo/after").status in (200, 404)  # the gateway goes on
        assert dp.proc.alive()
    finally:
        up.close()


def h2_events(sock, conn, until, timeout=10.0):
    """Reads h2 events until until(events) is true or timeout passes; returns all events seen."""
    import h2.exceptions
    events, deadline = [], time.monotonic() + timeout
    while not until(events) and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        try:
            events += conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise AssertionError(f"protocol error from the gateway: {e!r}")
        sock.sendall(conn.data_to_send())
    return events


def test_http2_stream_held_by_its_window_is_reset_alone(cp, dp, pyup):
    """An HTTP/2 client that never opens one stream's flow-control window: once 256 KiB wait for that stream and
    idle_ms passes, the gateway resets that stream alone (RST_STREAM CANCEL) and closes its upstream connection; the
    other streams of the connection are served before and after, on the same connection."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings

    up = Firehose()
    try:
        hose_route(cp, up, idle_ms=1000, wait=False)
        cp.admin.apply("POST", "/api/v1/services", {"name": "echo", "targets": [{"url": pyup.url}]})
        cp.admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "echo", "service": "echo", "paths": ["/echo"],
                                                               "default_access": "public"})
        sock = socket.create_connection(("127.0.0.1", dp.port), timeout=10)
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})  # no stream gets data unless opened
        conn.increment_flow_control_window(16 << 20)  # the connection's own window is wide open
        sock.sendall(conn.data_to_send())

        def get(sid, path):
            conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                    (":authority", "127.0.0.1")], end_stream=True)
            sock.sendall(conn.data_to_send())

        def open_window(sid):
            conn.increment_flow_control_window(1 << 20, stream_id=sid)
            sock.sendall(conn.data_to_send())

        def ended(sid):
            return lambda evs: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in evs)

        get(1, "/hose/big")  # never given any window
        get(3, "/echo/before")
        open_window(3)
        def head(sid):
            return lambda evs: any(isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid for e in evs)

        # stream 1's head is not flow-controlled: it comes, in whichever order with stream 3's answer
        events = h2_events(sock, conn, lambda evs: ended(3)(evs) and head(1)(evs))
        assert head(1)(events) and ended(3)(events), events
        t0 = time.monotonic()
        reset = lambda evs: any(isinstance(e, h2.events.StreamReset) and e.stream_id == 1 for e in evs)  # noqa: E731
        events = h2_events(sock, conn, reset, timeout=15)
        took = time.monotonic() - t0
        rst = [e for e in events if isinstance(e, h2.events.StreamReset) and e.stream_id == 1]
        assert rst and rst[0].error_code == 8, events  # CANCEL
        assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in events), events
        assert took < 10, took
        assert up.cut.wait(10), "the upstream connection of the reset stream was not closed"
        # the connection goes on: a new stream on it is served
        get(5, "/echo/after")
        open_window(5)
        events = h2_events(sock, conn, ended(5))
        assert ended(5)(events), events
        assert any(isinstance(e, h2.events.ResponseReceived) and e.stream_id == 5 and dict(e.headers)[":status"] == "200"
                   for e in events), events
        sock.close()
        assert dp.proc.alive()
    finally:
        up.close()
