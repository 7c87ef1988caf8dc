"""36: HTTP/2 rapid reset (CVE-2023-44487) - the real bytes, over h2c and TLS h2 (docs/dataplane.md "HTTP/2
stream resets").

An attacker opens streams and resets each at once, many per packet. h2o 2.2.5 dispatches every one of them; the data
plane answers a stream whose RST_STREAM it has already read without running any stage (no authentication, no rate
limit, no upstream request), and once a connection has opened 100 streams of which more than half were reset, it
sends GOAWAY ENHANCE_YOUR_CALM and closes. A well-behaved client on another connection is served throughout, and
a client that cancels a few streams keeps its connection.
"""
import socket
import ssl
import struct

import h2.config
import h2.connection
import h2.events
import h2.exceptions

import cephalo

ENHANCE_YOUR_CALM = 11


def connect(dp, tls):
    if tls:
        return cephalo.tls_connect(dp.tls_port, alpn=("h2",))
    return socket.create_connection(("127.0.0.1", dp.port), timeout=10)


def h2conn():
    c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    return c


def headers(path, authority="127.0.0.1", scheme="http"):
    return [(":method", "GET"), (":path", path), (":scheme", scheme), (":authority", authority)]


def read_until_closed(sock, conn, timeout=10.0):
    """Reads until the peer closes; returns the h2 events seen."""
    sock.settimeout(timeout)
    events = []
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, socket.timeout):
            break
        if not data:
            break
        try:
            events += conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            break
    return events


def flood(dp, tls, n, batch=50):
    """n streams, each HEADERS then RST_STREAM(CANCEL), written `batch` pairs at a time; returns (events, sent)."""
    sock = connect(dp, tls)
    conn = h2conn()
    sock.sendall(conn.data_to_send())
    sent = 0
    try:
        for start in range(0, n, batch):
            for i in range(start, min(n, start + batch)):
                sid = 2 * i + 1
                conn.send_headers(sid, headers(f"/pub/flood/{i}", scheme="https" if tls else "http"), end_stream=True)
                conn.reset_stream(sid, error_code=8)
                sent += 1
            sock.sendall(conn.data_to_send())
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass  # the gateway closed the connection: what the test wants
    events = read_until_closed(sock, conn)
    sock.close()
    return events, sent


def goaway(events):
    return [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]


def public_route(cp, pyup):
    cp.admin.apply("POST", "/api/v1/services", {"name": "pub", "targets": [{"url": pyup.url}]})
    cp.admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "pub", "service": "pub", "paths": ["/pub"],
                                                           "default_access": "public"})


def metric(dp, name):
    values = [v for (n, _), v in dp.metrics().items() if n == name]
    assert values, f"{name} not in the metrics"
    return sum(values)


def test_rapid_reset_is_cut_off(procs, tmpdir_str, cp, make_dp, pyup):
    cert = cephalo.make_self_signed(tmpdir_str)
    dp = make_dp(tls=cert)
    public_route(cp, pyup)
    assert dp.get("/pub/warm").status == 200
    base = pyup.count
    for tls in (False, True):
        events, sent = flood(dp, tls, 2000)
        ga = goaway(events)
        assert ga and ga[0].error_code == ENHANCE_YOUR_CALM, (tls, sent, events[-5:])
        # the budget is checked per frame: the connection ends a little after 100 streams, far below 2000
        assert ga[0].last_stream_id < 2 * 400, ga[0]
        # no stream whose reset was already read reached the upstream (a few may have, when a reset arrived in a
        # later read than its HEADERS: those are cancelled, and count toward the budget)
        assert pyup.count - base < 50, (tls, pyup.count - base)
        base = pyup.count
        # the gateway is fine: a normal request on a new connection
        assert dp.get("/pub/after").status == 200
    assert metric(dp, "cephalo_dp_http2_connections_closed_total") >= 2
    assert metric(dp, "cephalo_dp_http2_resets_total") >= 200
    assert metric(dp, "cephalo_dp_http2_streams_reset_before_dispatch_total") >= 150


def test_well_behaved_client_keeps_its_connection(procs, tmpdir_str, cp, make_dp, pyup):
    dp = make_dp()
    public_route(cp, pyup)
    sock = connect(dp, False)
    conn = h2conn()
    sock.sendall(conn.data_to_send())
    # 300 requests on one connection, one in ten cancelled right after it is sent: under the budget
    done, sid = 0, 1
    for i in range(300):
        conn.send_headers(sid, headers(f"/pub/ok/{i}"), end_stream=True)
        if i % 10 == 0:
            conn.reset_stream(sid, error_code=8)
        sock.sendall(conn.data_to_send())
        if i % 10 != 0:
            ended = False
            while not ended:
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    raise AssertionError(f"no answer to stream {sid} after {done} responses")
                assert data, f"closed after {done} responses"
                for e in conn.receive_data(data):
                    assert not isinstance(e, h2.events.ConnectionTerminated), e
                    if isinstance(e, h2.events.DataReceived):  # give the window back, as a real client does
                        conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                    if isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
                        ended = True
                sock.sendall(conn.data_to_send())
            done += 1
        sid += 2
    assert done == 270
    sock.close()


def test_legit_client_served_during_a_flood(procs, tmpdir_str, cp, make_dp, pyup):
    dp = make_dp(workers=1)  # one worker: the flood and the client share its loop
    public_route(cp, pyup)
    import threading
    stop = threading.Event()
    floods = []

    def attacker():
        while not stop.is_set():
            floods.append(goaway(flood(dp, False, 600)[0]))
    t = threading.Thread(target=attacker, daemon=True)
    t.start()
    try:
        for i in range(50):
            assert dp.get(f"/pub/legit/{i}").status == 200
    finally:
        stop.set()
        t.join(30)
    assert floods and all(f and f[0].error_code == ENHANCE_YOUR_CALM for f in floods), floods[:3]


def test_reconnecting_flood_reaches_no_upstream(procs, tmpdir_str, cp, make_dp, pyup):
    """An attacker that opens a new connection for every few streams: the preface, SETTINGS and HEADERS+RST pairs
    arrive in one packet, and h2o dispatches the first stream while it parses the frames that opened the connection -
    before anything could wrap its parser. With a keep-alive upstream connection idle in the pool (legit traffic keeps
    one there) the request would be written upstream before h2o even read the reset; it is not: no attack connection
    costs the upstream a request."""
    cert = cephalo.make_self_signed(tmpdir_str)
    dp = make_dp(tls=cert, workers=1)
    public_route(cp, pyup)
    legit = 0
    base = pyup.count
    for tls in (False, True):
        for i in range(60):
            assert dp.get(f"/pub/legit/{i}").status == 200  # leaves a pooled upstream connection
            legit += 1
            sock = connect(dp, tls)
            conn = h2conn()
            for sid in (1, 3, 5):
                conn.send_headers(sid, headers(f"/pub/hit/{i}/{sid}", scheme="https" if tls else "http"), end_stream=True)
                conn.reset_stream(sid, error_code=8)
            try:
                sock.sendall(conn.data_to_send())  # one write: the whole connection's life in one packet
                read_until_closed(sock, conn, timeout=0.05)
            except (OSError, ssl.SSLError):
                pass
            sock.close()
    attack = pyup.count - base - legit
    assert attack == 0, f"{attack} upstream requests from 120 connections that reset every stream"
    assert metric(dp, "cephalo_dp_http2_streams_reset_before_dispatch_total") >= 300
    assert dp.get("/pub/after").status == 200
