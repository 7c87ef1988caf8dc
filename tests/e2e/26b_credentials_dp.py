"""26b: service credentials at the data plane, without Vault (PROTOCOL.md section 5 "service credentials").

The control plane builds a service's credentials only from Vault (26_vault.py drives that whole path); here a fake
control plane (cephalo.FakeCP) pushes snapshots whose services carry credentials in both forms, straight to a real
data plane, and a recording upstream (Recorder, below: every header line kept, repeats included) shows what reached
it: the injected headers, exactly once,
over hostile client headers (same names, any case, repeats, an API key credential, cookies), on websocket upgrades
too; 503 credentials_unavailable without any upstream call when the credentials carry an error; a new secret version
applied at once; the data plane's own nack for a name under the snapshot's identity prefix; the values never in the
data plane's log nor in an answer; the state file 0600.
"""
import hashlib
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import cephalo

EPOCH = "0123456789abcdef0123456789abcdef"
SECRET = "Bearer e2e-s3cr3t-VALUE-1"
SECRET2 = "Bearer e2e-s3cr3t-VALUE-2"
KEY_PREFIX = "0a1b2c3d4e"
KEY_SECRET = "q0PJf2n3Yx9u8W7v6T5s4R3q2P1o0N9m8L7k6J5i4H3"
API_KEY = f"{KEY_PREFIX}.{KEY_SECRET}"


def svc(name, url, credentials=None):
    s = {"name": name, "targets": [{"url": url, "weight": 1}], "timeout_ms": 10000}
    if credentials is not None:
        s["credentials"] = credentials
    return s


def route(name, service, path, policies=None):
    r = {"name": name, "service": service, "paths": [path], "hosts": [], "methods": [], "strip_prefix": True,
         "default_access": "public"}
    if policies is not None:
        r["policies"] = policies
    return r


def headers_form(version, pairs):
    return {"source": f"vault:services/orders@{version}", "headers": [{"name": n, "value": v} for n, v in pairs]}


def body(url, orders_creds, broken_creds=None, auth=None):
    b = {"services": [svc("orders", url, orders_creds), svc("plain", url),
                      svc("cookies", url, headers_form(1, [("cookie", "session=s1")])),
                      svc("broken", url, broken_creds or {"source": "vault:services/broken",
                                                          "error": "the secret has not been read from Vault yet"})],
         "routes": [route("orders", "orders", "/orders"), route("plain", "plain", "/plain"),
                    route("cookies", "cookies", "/cookies"), route("broken", "broken", "/broken"),
                    route("ws", "orders", "/ws", {"websocket": {}}),
                    route("wsbroken", "broken", "/wsbroken", {"websocket": {}})],
         "api_keys": [{"id": 1, "prefix": KEY_PREFIX, "secret_sha256": hashlib.sha256(KEY_SECRET.encode()).hexdigest(),
                       "system": "shop", "roles": [], "groups": [], "expires_at": None}]}
    if auth is not None:
        b["auth"] = auth
    return b


ORDERS = [("authorization", SECRET), ("x-api-key", "k-1"), ("x-custom-secret", "custom-1")]


def snapshot_msg(version, b):
    return {"type": "snapshot", "epoch": EPOCH, "version": version, "hash": cephalo.canonical_hash(b), "schema": 1,
            "body": b}


@pytest.fixture
def fake(tmpdir_str):
    f = cephalo.FakeCP(os.path.join(tmpdir_str, "fakecp", "cp.sock"))
    yield f
    f.close()


class _RecHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        with self.server.lock:
            self.server.requests.append((self.command, self.path, [(k.lower(), v) for k, v in self.headers.items()]))
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = handle_any


class Recorder:
    """An upstream that answers 200 "ok" and records every request's header lines as (lower-case name, value)."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _RecHandler)
        self.server.daemon_threads = True
        self.server.lock = threading.Lock()
        self.server.requests = []
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def count(self):
        with self.server.lock:
            return len(self.server.requests)

    def last(self):
        """(method, target, {name: [values...]}) of the latest request."""
        with self.server.lock:
            method, target, lines = self.server.requests[-1]
        hdrs = {}
        for k, v in lines:
            hdrs.setdefault(k, []).append(v)
        return method, target, hdrs

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def up():
    u = Recorder()
    yield u
    u.close()


def push(fake, version, b):
    fake.send(snapshot_msg(version, b))
    reply = fake.recv()
    return reply


def start(procs, tmpdir_str, fake, up):
    dp = cephalo.DataPlane(procs, tmpdir_str, fake.path).start()
    fake.accept()
    assert fake.recv()["type"] == "hello"
    fake.send({"type": "welcome", "epoch": EPOCH, "heartbeat_ms": 1000})
    ack = push(fake, 1, body(up.url, headers_form(3, ORDERS)))
    assert ack["type"] == "ack" and ack["version"] == 1, ack
    return dp


def last_request(up):
    """The latest request's method, target and headers, each name mapped to its only value (a repeat fails)."""
    method, target, hdrs = up.last()
    for k, vs in hdrs.items():
        assert len(vs) == 1, f"{k} sent {len(vs)} times: {hdrs}"
    return method, target, {k: vs[0] for k, vs in hdrs.items()}


def raw_get(dp, path, header_lines):
    req = f"GET {path} HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n" + "".join(
        f"{line}\r\n" for line in header_lines) + "\r\n"
    return cephalo.raw_request(dp.port, req.encode())


def test_injected_once_over_hostile_client_headers(procs, tmpdir_str, fake, up):
    dp = start(procs, tmpdir_str, fake, up)

    # the same names from the client, in any case, repeated: only the injected ones arrive, once
    out = raw_get(dp, "/orders/a", ["X-Custom-Secret: forged-1", "x-custom-secret: forged-2",
                                    "X-CUSTOM-SECRET: forged-3", "Accept: */*"])
    assert out.startswith(b"HTTP/1.1 200"), out
    method, target, hdrs = last_request(up)
    assert target == "/a" and hdrs["authorization"] == SECRET and hdrs["x-api-key"] == "k-1", hdrs
    assert hdrs["x-custom-secret"] == "custom-1" and hdrs["accept"] == "*/*", hdrs
    assert b"s3cr3t" not in out  # never echoed to the client by the gateway
    # named in the client's Connection: the client's copy goes, the injected one stays
    out = raw_get(dp, "/orders/a2", ["X-Custom-Secret: forged-4", "Connection: x-custom-secret"])
    assert out.startswith(b"HTTP/1.1 200"), out
    _, _, hdrs = last_request(up)
    assert hdrs["x-custom-secret"] == "custom-1", hdrs

    # a client authenticated with an API key: its credential is stripped, the injected ones still go
    for h in ({"X-API-Key": API_KEY}, {"Authorization": f"ApiKey {API_KEY}"}):
        r = dp.get("/orders/b", headers=h)
        assert r.status == 200, r
        _, _, hdrs = last_request(up)
        assert hdrs["authorization"] == SECRET and hdrs["x-api-key"] == "k-1", hdrs
        assert "x-cephalo-api-key-id" in hdrs, hdrs  # the key was the client's credential
        assert KEY_SECRET not in str(hdrs)

    # a service without credentials forwards the client's headers as before
    r = dp.get("/plain/x", headers={"X-Custom-Secret": "client-value"})
    assert r.status == 200, r
    _, _, hdrs = last_request(up)
    assert hdrs["x-custom-secret"] == "client-value" and "authorization" not in hdrs, hdrs

    # an injected cookie replaces the client's
    r = dp.get("/cookies/x", headers={"Cookie": "a=1; session=forged"})
    assert r.status == 200, r
    _, _, hdrs = last_request(up)
    assert hdrs["cookie"] == "session=s1", hdrs

    # a websocket upgrade gets them too (the recording upstream answers 200: relayed as is)
    out = raw_get(dp, "/ws/chat", ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Authorization: ApiKey " + API_KEY])
    assert out.split(b"\r\n", 1)[0].startswith(b"HTTP/1.1 200"), out
    method, target, hdrs = last_request(up)
    assert target == "/chat", target
    assert hdrs["authorization"] == SECRET and hdrs["upgrade"].lower() == "websocket", hdrs


def test_error_form_answers_503_without_upstream(procs, tmpdir_str, fake, up):
    dp = start(procs, tmpdir_str, fake, up)
    before = up.count()
    r = dp.get("/broken/x", headers={"Authorization": f"ApiKey {API_KEY}"})
    assert r.status == 503, r
    j = r.json()
    assert j["error"] == "credentials_unavailable" and len(j["request_id"]) == 32, j
    assert r.headers["x-request-id"] == j["request_id"], r
    assert "Vault" not in r.body.decode(), r  # the control plane's reason stays in the snapshot
    out = raw_get(dp, "/wsbroken/x", ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="])
    assert out.startswith(b"HTTP/1.1 503") and b"credentials_unavailable" in out, out
    assert up.count() == before

    # the orders service flips to the error form and back: 503, then the new secret version at once
    ack = push(fake, 2, body(up.url, {"source": "vault:services/orders@3", "error": "the secret has no key \"token\""}))
    assert ack["type"] == "ack", ack
    assert dp.get("/orders/x").status == 503
    assert up.count() == before
    ack = push(fake, 3, body(up.url, headers_form(4, [("authorization", SECRET2)])))
    assert ack["type"] == "ack", ack
    r = dp.get("/orders/y", headers={"Authorization": "ApiKey " + API_KEY})
    assert r.status == 200, r
    _, _, hdrs = last_request(up)
    assert hdrs["authorization"] == SECRET2 and "x-api-key" not in hdrs, hdrs


def test_identity_prefix_nack_and_secrets_kept_out_of_logs(procs, tmpdir_str, fake, up):
    dp = start(procs, tmpdir_str, fake, up)
    # a name under the snapshot's own identity prefix: the data plane refuses the snapshot, the old one stays
    bad = body(up.url, headers_form(5, [("authorization", SECRET2), ("x-gw-user-id", SECRET2)]),
               auth={"header_prefix": "x-gw-"})
    nack = push(fake, 2, bad)
    assert nack["type"] == "nack" and nack["applied"]["version"] == 1, nack
    assert nack["error"]["path"] == "/services/0/credentials/headers/1/name", nack
    assert "s3cr3t" not in str(nack)
    # a value that could split the head is refused by the validator (it never comes from a real control plane)
    bad = body(up.url, headers_form(6, [("authorization", SECRET2 + "\r\nx-evil: 1")]))
    nack = push(fake, 3, bad)
    assert nack["type"] == "nack" and nack["error"]["path"] == "/services/0/credentials/headers/0/value", nack
    assert "s3cr3t" not in str(nack)
    r = dp.get("/orders/z")
    assert r.status == 200, r
    _, _, hdrs = last_request(up)
    assert hdrs["authorization"] == SECRET and "x-evil" not in hdrs, hdrs

    # the state file holds the values (that is what a restart serves from): 0600 in a 0700 directory
    path = os.path.join(dp.state_dir, "snapshot.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dp.state_dir).st_mode) == 0o700
    with open(path) as f:
        assert SECRET in f.read()
    # and nothing the data plane logged holds one
    dp.proc.stop()
    log = dp.proc.stderr_text()
    assert "s3cr3t" not in log and KEY_SECRET not in log, log[-2000:]
