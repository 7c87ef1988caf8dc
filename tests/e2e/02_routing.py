"""02: a route applied with ?wait=applied is served over HTTP/1.1, h2c and TLS h2; canonical paths, strip_prefix,
bad paths, 404 and 405 (docs/dataplane.md "Behaviour", PROTOCOL.md §5 matching).
"""
import json
import socket

import pytest

import cephalo


@pytest.fixture
def stack(procs, tmpdir_str, cp, nginx):
    """CP + one DP (plain and TLS listeners) + nginx; service "demo" and routes applied with ?wait=applied."""
    cert, key = cephalo.make_self_signed(tmpdir_str)
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket, tls=(cert, key)).start()
    dp.wait_connected(cp.admin)
    a = cp.admin
    a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                       "name": "demo", "service": "demo", "paths": ["/demo"], "strip_prefix": True})
    a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                       "name": "keep", "service": "demo", "paths": ["/keep/"]})
    out = a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                             "name": "getonly", "service": "demo", "paths": ["/getonly"],
                                             "methods": ["GET", "HEAD"]})
    mine = [d for d in out["applied"]["dataplanes"] if d["id"] == dp.dp_id]
    assert mine and mine[0]["version"] >= out["version"] and not mine[0].get("error"), out
    return dp


def test_wait_applied_reports_the_dataplane(cp, dp, nginx):
    out = cp.admin.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    ids = [d["id"] for d in out["applied"]["dataplanes"]]
    assert dp.dp_id in ids, out
    d = cp.admin.dataplane(dp.dp_id)
    assert d["status"] == "synced", d
    assert d["applied"]["version"] == out["version"], d
    assert d["applied"]["hash"] == cp.admin.snapshot()["hash"]
    assert d["applied"]["source"] == "cp"
    assert d["last_error"] is None
    assert dp.ready_status() == 200


def test_http1(stack):
    r = stack.get("/demo/hello?x=1")
    assert r.status == 200, r
    assert r.headers["x-upstream"] == "nginx-a"
    assert r.headers["x-request-uri"] == "/hello?x=1"  # the query string is forwarded as is
    assert r.body == b"upstream=nginx-a\n"
    # prefix itself, with and without the trailing slash: the remainder always starts with /
    assert stack.get("/demo").headers.get("x-request-uri", "").split("?")[0] == "/"
    assert stack.get("/demo/").headers.get("x-request-uri", "").split("?")[0] == "/"
    # without strip_prefix the full path is forwarded
    r = stack.get("/keep/a/b")
    assert r.status == 200 and r.headers["x-request-uri"] == "/keep/a/b", r
    # a segment prefix, not a string prefix
    r = stack.get("/demox")
    assert r.status == 404 and r.json()["error"] == "no_route", r


def test_http1_keepalive_many_requests(stack):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    try:
        for i in range(50):
            conn.request("GET", f"/demo/k{i}")
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200 and r.getheader("X-Request-Uri") == f"/k{i}", (i, r.status, body)
    finally:
        conn.close()


def test_post_body_forwarded(procs, cp, dp, pyup):
    cp.admin.apply("POST", "/api/v1/services", {"name": "echo", "targets": [{"url": pyup.url}]})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "echo", "service": "echo", "paths": ["/echo"],
                                              "strip_prefix": True})
    payload = json.dumps({"k": "v" * 10000}).encode()
    r = cephalo.http_request(dp.port, "POST", "/echo/x", body=payload, headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    got = r.json()
    assert got["method"] == "POST" and got["path"] == "/x" and got["body"].encode() == payload


def test_h2c_prior_knowledge_curl(stack):
    p = cephalo.curl("--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "-w", "%{http_version}",
                     f"http://127.0.0.1:{stack.port}/demo/h2c")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("HTTP/2 200"), p.stdout
    assert "x-request-uri: /h2c" in p.stdout.lower()
    assert p.stdout.strip().endswith("2")


def test_h2c_python_h2(stack):
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as s:
        r = cephalo.h2_request(s, f"127.0.0.1:{stack.port}", "/demo/via-h2")
    assert r.status == 200, r
    assert r.headers["x-request-uri"] == "/via-h2"
    assert r.body == b"upstream=nginx-a\n"


def test_h2c_upgrade_curl(stack):
    p = cephalo.curl("--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                     f"http://127.0.0.1:{stack.port}/demo/upgrade")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "200 2", p.stdout


def test_tls_h2_alpn(stack):
    p = cephalo.curl("-k", "--http2", "-v", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                     f"https://localhost:{stack.tls_port}/demo/tls", "--resolve", f"localhost:{stack.tls_port}:127.0.0.1")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "200 2", p.stdout
    assert "ALPN: server accepted h2" in p.stderr or "ALPN, server accepted to use h2" in p.stderr, p.stderr
    with cephalo.tls_connect(stack.tls_port) as s:
        assert s.selected_alpn_protocol() == "h2"
        r = cephalo.h2_request(s, f"localhost:{stack.tls_port}", "/demo/tls-py", scheme="https")
    assert r.status == 200 and r.headers["x-request-uri"] == "/tls-py", r
    # http/1.1 over TLS when the client offers only that
    p = cephalo.curl("-k", "--http1.1", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                     f"https://127.0.0.1:{stack.tls_port}/demo/tls1")
    assert p.stdout == "200 1.1", (p.stdout, p.stderr)


@pytest.mark.parametrize("target,upstream_sees", [
    ("/demo/a/../b%2e%2e/./c//d", "/b../c/d"),
    ("/demo/a/./b/../../c", "/c"),
    ("//demo///x", "/x"),
    ("/demo/%61%62c", "/abc"),
    ("/x/../demo/y", "/y"),
    ("/demo/../../../../etc/passwd", None),  # resolves to /etc/passwd: no route
    ("/keep/a/%2e%2e/b", "/keep/b"),
])
def test_canonical_path(stack, target, upstream_sees):
    r = stack.get(target)
    if upstream_sees is None:
        assert r.status == 404 and r.json()["error"] == "no_route", r
        return
    assert r.status == 200, r
    assert r.headers["x-request-uri"] == upstream_sees, (target, r.headers)


@pytest.mark.parametrize("target", ["/demo/%2F", "/demo/a%2fb", "/demo/a;b", "/demo/%00", "/demo/a%5Cb",
                                    "/demo/%0a", "/demo/%zz", "/demo/%"])
def test_bad_path_400(stack, target):
    r = stack.get(target)
    assert r.status == 400, (target, r)
    assert r.json()["error"] == "bad_path", r
    assert r.headers.get("content-type", "").startswith("application/json")


def test_no_route_404(stack):
    for target in ("/", "/nothing", "/dem", "/keep"):
        r = stack.get(target)
        assert r.status == 404, (target, r)
        assert r.json()["error"] == "no_route"
        assert r.headers.get("content-type", "").startswith("application/json")


def test_method_not_allowed_405(stack):
    assert stack.get("/getonly/x").status == 200
    r = cephalo.http_request(stack.port, "POST", "/getonly/x", body=b"{}")
    assert r.status == 405, r
    assert r.json()["error"] == "method_not_allowed"
    allow = {m.strip() for m in r.headers.get("allow", "").split(",")}
    assert {"GET", "HEAD"} <= allow, r.headers
    r = cephalo.http_request(stack.port, "DELETE", "/getonly")
    assert r.status == 405, r


def test_longest_prefix_wins(cp, dp, nginx, procs, tmpdir_str):
    other = cephalo.Nginx(procs, tmpdir_str, "nginx-b")
    a = cp.admin
    a.apply("POST", "/api/v1/services", {"name": "a", "targets": [{"url": nginx.url}]})
    a.apply("POST", "/api/v1/services", {"name": "b", "targets": [{"url": other.url}]})
    a.apply("POST", "/api/v1/routes", {"default_access": "public", "name": "short", "service": "a", "paths": ["/api"]})
    a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                       "name": "long", "service": "b", "paths": ["/api/v2"], "methods": ["GET"]})
    assert dp.get("/api/v1/x").headers["x-upstream"] == "nginx-a"
    assert dp.get("/api/v2/x").headers["x-upstream"] == "nginx-b"
    assert dp.get("/api/v2").headers["x-upstream"] == "nginx-b"
    assert dp.get("/api/v2x").headers["x-upstream"] == "nginx-a"
    # the best match does not allow POST: 405, not a fall-through to /api
    assert cephalo.http_request(dp.port, "POST", "/api/v2/x", body=b"").status == 405
    # a new config replaces the old one whole
    a.apply("DELETE", "/api/v1/routes/long")
    assert dp.get("/api/v2/x").headers["x-upstream"] == "nginx-a"


def test_round_robin_over_targets(cp, dp, nginx, procs, tmpdir_str):
    other = cephalo.Nginx(procs, tmpdir_str, "nginx-b")
    cp.admin.apply("POST", "/api/v1/services", {"name": "rr", "targets": [{"url": nginx.url}, {"url": other.url}]})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "rr", "service": "rr", "paths": ["/rr"]})
    seen = [dp.get("/rr/x").headers.get("x-upstream") for _ in range(20)]
    assert seen.count("nginx-a") >= 5 and seen.count("nginx-b") >= 5, seen


def test_hosts(cp, dp, nginx, procs, tmpdir_str):
    other = cephalo.Nginx(procs, tmpdir_str, "nginx-b")
    a = cp.admin
    a.apply("POST", "/api/v1/services", {"name": "a", "targets": [{"url": nginx.url}]})
    a.apply("POST", "/api/v1/services", {"name": "b", "targets": [{"url": other.url}]})
    a.apply("POST", "/api/v1/routes", {"default_access": "public", "name": "any", "service": "a", "paths": ["/h"]})
    a.apply("POST", "/api/v1/routes", {"default_access": "public", "name": "hosted", "service": "b", "paths": ["/h"],
                                       "hosts": ["*.example.com", "api.test"]})
    assert dp.get("/h/x", headers={"Host": "api.test"}).headers["x-upstream"] == "nginx-b"
    assert dp.get("/h/x", headers={"Host": "x.example.com:8080"}).headers["x-upstream"] == "nginx-b"
    assert dp.get("/h/x", headers={"Host": "other.test"}).headers["x-upstream"] == "nginx-a"


def _sha(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


def test_large_response_all_protocols(stack, nginx, tmpdir_str):
    """3 MiB from the upstream arrives byte-exact over HTTP/1.1, h2c and TLS h2 (flow control, buffering)."""
    import os
    with open(nginx.big_path, "rb") as f:
        want = _sha(f.read())
    r = stack.get("/demo/files/big.bin")
    assert r.status == 200 and len(r.body) == 3 << 20 and _sha(r.body) == want
    for proto_args, url in ((["--http2-prior-knowledge"], f"http://127.0.0.1:{stack.port}/demo/files/big.bin"),
                            (["-k", "--http2"], f"https://127.0.0.1:{stack.tls_port}/demo/files/big.bin")):
        out = os.path.join(tmpdir_str, "big.out")
        p = cephalo.curl(*proto_args, "-o", out, "-w", "%{http_code} %{http_version}", url)
        assert p.stdout == "200 2", (p.stdout, p.stderr)
        with open(out, "rb") as f:
            assert _sha(f.read()) == want
    with socket.create_connection(("127.0.0.1", stack.port), timeout=20) as s:
        r = cephalo.h2_request(s, "127.0.0.1", "/demo/files/big.bin", timeout=20)
    assert r.status == 200 and _sha(r.body) == want


def test_large_upload_h1_and_h2(cp, dp, pyup, tmpdir_str):
    import os
    cp.admin.apply("POST", "/api/v1/services", {"name": "echo", "targets": [{"url": pyup.url}]})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "echo", "service": "echo", "paths": ["/echo"]})
    data = os.urandom(1 << 20).hex().encode()  # 2 MiB of text (the echo upstream answers it in JSON)
    path = os.path.join(tmpdir_str, "up.bin")
    with open(path, "wb") as f:
        f.write(data)
    r = cephalo.http_request(dp.port, "POST", "/echo/up", body=data, headers={"Content-Type": "text/plain"},
                             timeout=30)
    assert r.status == 200 and _sha(r.json()["body"].encode()) == _sha(data), r.status
    out = os.path.join(tmpdir_str, "up.out")
    p = cephalo.curl("--http2-prior-knowledge", "--data-binary", "@" + path, "-H", "Content-Type: text/plain",
                     "-o", out, "-w", "%{http_code}", f"http://127.0.0.1:{dp.port}/echo/up2")
    assert p.stdout == "200", (p.stdout, p.stderr)
    with open(out) as f:
        got = json.load(f)
    assert got["path"] == "/echo/up2" and _sha(got["body"].encode()) == _sha(data)
    # chunked request body over HTTP/1.1
    p = cephalo.curl("--http1.1", "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
                     "-o", out, "-w", "%{http_code}", f"http://127.0.0.1:{dp.port}/echo/chunked")
    assert p.stdout == "200", (p.stdout, p.stderr)
    with open(out) as f:
        assert _sha(json.load(f)["body"].encode()) == _sha(data)


def test_h2_concurrent_streams(stack):
    """Many streams multiplexed on one h2c connection, each answered for its own path."""
    import h2.config
    import h2.connection
    import h2.events
    with socket.create_connection(("127.0.0.1", stack.port), timeout=20) as s:
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        want = {}
        for i in range(40):
            sid = conn.get_next_available_stream_id()
            want[sid] = f"/s{i}"
            conn.send_headers(sid, [(":method", "GET"), (":path", f"/demo/s{i}"), (":scheme", "http"),
                                    (":authority", "127.0.0.1")], end_stream=True)
        s.sendall(conn.data_to_send())
        got, ended = {}, set()
        while len(ended) < len(want):
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived):
                    got[ev.stream_id] = dict((k.decode() if isinstance(k, bytes) else k,
                                              v.decode() if isinstance(v, bytes) else v) for k, v in ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    ended.add(ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    raise AssertionError(f"stream {ev.stream_id} reset")
            s.sendall(conn.data_to_send())
    for sid, path in want.items():
        assert got[sid][":status"] == "200" and got[sid]["x-request-uri"] == path, (sid, got.get(sid))


def test_head_request(stack):
    r = cephalo.http_request(stack.port, "HEAD", "/demo/head")
    assert r.status == 200 and r.body == b"" and r.headers["x-request-method"] == "HEAD", r
