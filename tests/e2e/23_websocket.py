"""23: websocket tunnels (docs/dataplane.md "Websockets"): a route with policies.websocket tunnels an HTTP/1.1
upgrade to a real websocket upstream (tests/upstream/ws_echo.py, python3-websockets) over plain HTTP and TLS, after
the same authentication as any request; the policy's origin list, per-client cap, idle timeout, frame limit and
token-expiry close; a push that leaves the route alone keeps the socket, one that removes the route closes it after
gateway.websocket.drain_grace_ms; a non-101 answer of the upstream is relayed; a malformed handshake is refused.

The client is python3-websockets' asyncio client (compression off, so frame sizes are what the test sends); close
codes are read from both ends: the client's `close_code` and the upstream's `close_codes`.
"""
import asyncio
import os
import signal
import ssl
import sys
import time

import pytest
import websockets

import cephalo

sys.path.insert(0, os.path.join(cephalo.SOURCE_DIR, "tests", "upstream"))
from ws_echo import WsEcho  # noqa: E402

V1 = "/api/v1"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.fixture
def wsup(procs):
    up = WsEcho()
    procs.servers.append(up)
    return up


@pytest.fixture
def gw(procs, tmpdir_str, wsup):
    """Factory: a control plane (extra flags), one data plane (TLS too when asked) and service "echo" on wsup."""
    return cephalo.gateway_factory(procs, tmpdir_str, wsup.url)


def ws_route(g, name="ws", path="/ws", **policy):
    return g.route(name, path, policies={"websocket": policy})


def authn_websocket(g, policy):
    """Gives the Shop's route "authn" (service plain, default_access authenticated) a websocket policy."""
    g.admin.apply("PUT", f"{V1}/routes/authn", {"name": "authn", "service": "plain", "paths": ["/authn"],
                                                 "strip_prefix": True, "default_access": "authenticated",
                                                 "policies": {"websocket": policy}})


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(port, path, tls=False, headers=None, **kw):
    scheme = "wss" if tls else "ws"
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    kw.setdefault("compression", None)
    return websockets.connect(f"{scheme}://127.0.0.1:{port}{path}", ssl=ctx, extra_headers=headers or {},
                              max_size=None, ping_interval=None, open_timeout=10, close_timeout=5, **kw)


async def echo_once(port, path, tls=False, headers=None):
    async with connect(port, path, tls, headers) as ws:
        await ws.send("hello")
        text = await ws.recv()
        await ws.send(b"\x00\x01" * 5000)
        data = await ws.recv()
        return text, data


async def wait_closed(ws, timeout=10):
    """Reads until the gateway closes the socket; returns (close code, seconds it took)."""
    t0 = time.monotonic()
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed:
        pass
    return ws.close_code, time.monotonic() - t0


def upgrade_head(target, extra=""):
    return (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n").encode()


def handshake_status(port, head, timeout=10):
    """Sends a raw handshake and reads only the answer's head: its status (the connection is then dropped)."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = sock.recv(4096)
            if not chunk:
                break
            out += chunk
    return status_of(out)


def status_of(raw):
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else None


def error_code(raw):
    import json
    return json.loads(raw.partition(b"\r\n\r\n")[2]).get("error")


def wait_codes(wsup, want, timeout=10):
    cephalo.wait_until(lambda: want in wsup.close_codes, timeout, f"the upstream received close {want}")


# ---------------------------------------------------------------------------------------------------------------


def test_echo_over_http1_and_tls(gw, wsup):
    g = gw(tls=True)
    ws_route(g)
    assert run(echo_once(g.dp.port, "/ws/chat?room=1")) == ("hello", b"\x00\x01" * 5000)
    assert run(echo_once(g.dp.tls_port, "/ws/chat", tls=True)) == ("hello", b"\x00\x01" * 5000)
    assert wsup.handshakes == 2
    seen = wsup.headers[0]
    assert seen["x-forwarded-proto"] == "http" and wsup.headers[1]["x-forwarded-proto"] == "https", wsup.headers
    assert seen.get("x-cephalo-request-id"), seen
    assert "x-forwarded-for" in seen and seen["upgrade"].lower() == "websocket", seen
    cephalo.wait_until(lambda: wsup.close_codes.count(1000) == 2, 10, "both sockets closed cleanly")


def test_many_messages_both_ways_in_order(gw, wsup):
    g = gw()
    ws_route(g)

    async def chat(compression):
        async with connect(g.dp.port, "/ws/x", compression=compression) as ws:
            assert (ws.response_headers.get("sec-websocket-extensions") is not None) == (compression is not None)
            msgs = [os.urandom(n) for n in (1, 125, 126, 65535, 65536, 300000)] * 3 + ["text " * 1000]
            for m in msgs:
                await ws.send(m)
            for m in msgs:
                assert await ws.recv() == m
    run(chat(None))
    run(chat("deflate"))  # permessage-deflate negotiated end to end: compressed frames (RSV1) pass untouched


def test_authentication_happens_before_the_upgrade(gw, wsup):
    g = gw()
    shop = cephalo.Shop(g.admin, wsup.url)
    authn_websocket(g, {})
    out = cephalo.raw_request(g.dp.port, upgrade_head("/authn/x"))
    assert status_of(out) == 401, out[:300]
    with pytest.raises(websockets.InvalidStatusCode) as e:
        run(echo_once(g.dp.port, "/authn/x"))
    assert e.value.status_code == 401
    assert wsup.handshakes == 0
    token = shop.access(g.dp, "bob")
    assert run(echo_once(g.dp.port, "/authn/x", headers=cephalo.bearer(token)))[0] == "hello"
    assert wsup.handshakes == 1
    assert wsup.headers[0]["x-cephalo-user-id"] == shop.uid("bob"), wsup.headers[0]


def test_origin_check(gw, wsup):
    g = gw()
    ws_route(g, origins=["https://app.example.com"])
    with pytest.raises(websockets.InvalidStatusCode) as e:
        run(echo_once(g.dp.port, "/ws/x", headers={"Origin": "https://evil.example.com"}))
    assert e.value.status_code == 403
    out = cephalo.raw_request(g.dp.port, upgrade_head("/ws/x", "Origin: https://evil.example.com\r\n"))
    assert status_of(out) == 403 and error_code(out) == "origin_not_allowed", out
    assert wsup.handshakes == 0
    assert run(echo_once(g.dp.port, "/ws/x", headers={"Origin": "https://App.Example.com"}))[0] == "hello"
    assert run(echo_once(g.dp.port, "/ws/x"))[0] == "hello"  # no Origin: not a browser
    assert wsup.handshakes == 2


def test_per_client_cap(gw, wsup):
    g = gw()
    ws_route(g, max_per_client=2)

    async def scenario():
        a = await connect(g.dp.port, "/ws/a")
        b = await connect(g.dp.port, "/ws/b")
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await connect(g.dp.port, "/ws/c")
        assert e.value.status_code == 429
        await a.close()
        # the slot comes back when the tunnel ends
        for _ in range(100):
            try:
                c = await connect(g.dp.port, "/ws/c")
                break
            except websockets.InvalidStatusCode:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the slot never came back")
        await c.send("x")
        assert await c.recv() == "x"
        await b.close()
        await c.close()
    run(scenario())
    # the counts are back to zero once the tunnels ended
    cephalo.wait_until(lambda: handshake_status(g.dp.port, upgrade_head("/ws/x")) == 101, 10, "the slots back")


def test_per_client_cap_counts_principals_not_addresses(gw, wsup):
    g = gw()
    shop = cephalo.Shop(g.admin, wsup.url)
    authn_websocket(g, {"max_per_client": 1})
    bob, alice = (cephalo.bearer(shop.access(g.dp, n)) for n in ("bob", "alice"))

    async def scenario():
        async with connect(g.dp.port, "/authn/x", headers=bob):
            with pytest.raises(websockets.InvalidStatusCode) as e:
                await connect(g.dp.port, "/authn/x", headers=bob)
            assert e.value.status_code == 429
            async with connect(g.dp.port, "/authn/x", headers=alice) as ws:  # same address, another user
                await ws.send("x")
                assert await ws.recv() == "x"
    run(scenario())
    head = upgrade_head("/authn/x", f"Authorization: {bob['Authorization']}\r\n")
    cephalo.wait_until(lambda: handshake_status(g.dp.port, head) == 101, 10, "bob's slot back")


def test_idle_timeout_closes_1001_both_ways(gw, wsup):
    g = gw()
    ws_route(g, idle_timeout_ms=700)

    async def scenario():
        async with connect(g.dp.port, "/ws/x") as ws:
            for _ in range(4):  # traffic keeps it open past the timeout
                await asyncio.sleep(0.3)
                await ws.send("ping")
                assert await ws.recv() == "ping"
            return await wait_closed(ws)
    code, took = run(scenario())
    assert code == 1001 and took < 5, (code, took)
    wait_codes(wsup, 1001)


def test_max_lifetime_closes_1001_despite_traffic(gw, wsup):
    g = gw()
    ws_route(g, max_lifetime_ms=1000)

    async def scenario():
        async with connect(g.dp.port, "/ws/x") as ws:
            t0 = time.monotonic()
            try:
                while True:
                    await ws.send("x")
                    assert await asyncio.wait_for(ws.recv(), 5) == "x"
                    await asyncio.sleep(0.05)
            except websockets.ConnectionClosed:
                pass
            return ws.close_code, time.monotonic() - t0
    code, took = run(scenario())
    assert code == 1001 and 0.9 <= took < 4, (code, took)
    wait_codes(wsup, 1001)


def test_max_frame_bytes_closes_1009(gw, wsup):
    g = gw()
    ws_route(g, max_frame_bytes=1000)

    async def client_side():
        async with connect(g.dp.port, "/ws/x") as ws:
            await ws.send(b"a" * 1000)  # exactly the limit passes
            assert await ws.recv() == b"a" * 1000
            await ws.send(b"a" * 1001)
            return await wait_closed(ws)

    async def upstream_side():
        async with connect(g.dp.port, "/ws/big/5000") as ws:
            return await wait_closed(ws)
    assert run(client_side())[0] == 1009
    wait_codes(wsup, 1009)
    assert run(upstream_side())[0] == 1009
    cephalo.wait_until(lambda: wsup.close_codes.count(1009) == 2, 10, "the upstream got 1009 twice")


def test_token_expiry_closes_1008(gw, wsup):
    g = gw(cp_args=["--access-ttl-s", "2", "--jwt-leeway-s", "0"])
    shop = cephalo.Shop(g.admin, wsup.url)
    authn_websocket(g, {"close_on_token_expiry": True})
    token = shop.access(g.dp, "bob")

    async def scenario():
        async with connect(g.dp.port, "/authn/x", headers=cephalo.bearer(token)) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            return await wait_closed(ws)
    code, took = run(scenario())
    assert code == 1008 and took < 4, (code, took)
    wait_codes(wsup, 1001)


def test_push_keeps_the_socket_and_removal_closes_it_after_the_grace(gw, wsup):
    g = gw(cp_args=["--ws-drain-grace-ms", "1500"])
    ws_route(g, idle_timeout_ms=60000)

    async def scenario():
        async with connect(g.dp.port, "/ws/x") as ws:
            g.route("other", "/other")  # another route changes: nothing happens to the tunnel
            ws_route(g, "ws2", "/ws2", idle_timeout_ms=1000)
            for _ in range(3):
                await ws.send("still")
                assert await ws.recv() == "still"
            g.admin.apply("DELETE", f"{V1}/routes/ws", expect=(200, 204))
            t0 = time.monotonic()
            await ws.send("within the grace")
            assert await ws.recv() == "within the grace"
            code, _ = await wait_closed(ws)
            return code, time.monotonic() - t0
    code, took = run(scenario())
    assert code == 1001 and 1.0 <= took < 6, (code, took)
    wait_codes(wsup, 1001)


def test_policy_change_applies_to_open_sockets(gw, wsup):
    g = gw()
    route = ws_route(g, idle_timeout_ms=60000)

    async def scenario():
        async with connect(g.dp.port, "/ws/x") as ws:
            g.admin.apply("PUT", f"{V1}/routes/ws", dict(route, policies={"websocket": {"idle_timeout_ms": 500}}))
            return await wait_closed(ws)
    code, took = run(scenario())
    assert code == 1001 and took < 5, (code, took)


def test_non_101_answer_is_relayed(gw, wsup):
    g = gw()
    ws_route(g)
    out = cephalo.raw_request(g.dp.port, upgrade_head("/ws/refuse/x"))
    assert status_of(out) == 403, out[:300]
    assert b"x-upstream: ws-echo" in out.lower(), out
    assert out.endswith(b'{"refused": "/refuse/x"}'), out


def test_malformed_handshake(gw, wsup):
    g = gw()
    ws_route(g)
    no_key = b"GET /ws/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"
    out = cephalo.raw_request(g.dp.port, no_key)
    assert status_of(out) == 400, out[:300]
    out = cephalo.raw_request(g.dp.port, upgrade_head("/ws/x").replace(b"Version: 13", b"Version: 8"))
    assert status_of(out) == 426 and b"sec-websocket-version: 13" in out.lower(), out[:300]
    assert wsup.handshakes == 0


def test_route_without_policy_is_plain_http(gw, wsup):
    g = gw()
    g.route("plain", "/plain")
    out = cephalo.raw_request(g.dp.port, upgrade_head("/plain/x"))
    assert status_of(out) not in (101, None), out[:300]  # the upstream got an ordinary GET and refused it
    assert wsup.headers and "upgrade" not in wsup.headers[-1], wsup.headers


def test_drain_closes_tunnels_1001(gw, wsup):
    g = gw()
    ws_route(g)

    async def scenario():
        async with connect(g.dp.port, "/ws/x") as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            g.dp.proc.signal(signal.SIGTERM)
            return await wait_closed(ws)
    code, took = run(scenario())
    assert code == 1001 and took < 5, (code, took)
    assert g.dp.proc.wait(15) == 0


def test_concurrent_tunnels_and_abrupt_clients(gw, wsup):
    g = gw()
    ws_route(g)

    async def chatty(i):
        async with connect(g.dp.port, f"/ws/{i}") as ws:
            for n in range(30):
                m = os.urandom((i * 997 + n * 131) % 70000)
                await ws.send(m)
                assert await ws.recv() == m

    async def abrupt(i):
        reader, writer = await asyncio.open_connection("127.0.0.1", g.dp.port)
        writer.write(upgrade_head(f"/ws/a{i}"))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        writer.write(bytes([0x82, 0xfe, 0x10, 0x00]) + b"\0\0\0\0" + b"x" * 100)  # half a 4 KiB frame, then gone
        await writer.drain()
        writer.transport.abort()

    async def everything():
        await asyncio.gather(*[chatty(i) for i in range(20)], *[abrupt(i) for i in range(20)])
    run(everything(), timeout=60)
    assert run(echo_once(g.dp.port, "/ws/after"))[0] == "hello"


def test_idle_inside_a_frame_still_closes(gw, wsup):
    """A client stalls in the middle of a frame: the upstream cannot get a close frame there (it would land inside
    the payload), the client still gets 1001, and both connections are closed after the close wait."""
    g = gw()
    ws_route(g, idle_timeout_ms=500)

    async def scenario():
        reader, writer = await asyncio.open_connection("127.0.0.1", g.dp.port)
        writer.write(upgrade_head("/ws/x"))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        writer.write(bytes([0x82, 0x80 | 100]) + b"\0\0\0\0" + b"x" * 10)
        t0 = time.monotonic()
        frame = await asyncio.wait_for(reader.readexactly(4), 10)
        rest = await asyncio.wait_for(reader.read(), 10)  # then EOF
        writer.close()
        return frame, rest, time.monotonic() - t0
    frame, rest, took = run(scenario())
    assert frame == b"\x88\x02\x03\xe9" and rest == b"" and took < 6, (frame, rest, took)
    cephalo.wait_until(lambda: len(wsup.close_codes) == 1, 10, "the upstream connection closed")
    assert wsup.close_codes == [1006], wsup.close_codes  # no close frame could be placed toward it
