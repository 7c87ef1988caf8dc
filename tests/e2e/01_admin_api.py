"""01: admin API CRUD and every documented error case (docs/admin-api.md).

After the hostile input the control plane must still be up and the data intact, and no rejected write may have
bumped the config version.
"""
import json
import socket

import pytest

import cephalo

SVC = {"name": "svc-a", "targets": [{"url": "http://127.0.0.1:9", "weight": 2}], "timeout_ms": 1500}


def err(r, status, code, path=None):
    """Assert an error answer: status, JSON body with the code (and the JSON pointer when given), no internals."""
    assert r.status == status, f"want {status} {code}, got {r}"
    body = r.json()
    codes = code if isinstance(code, tuple) else (code,)
    assert body.get("error") in codes, f"want error={code}, got {body}"
    assert isinstance(body.get("message", ""), str)
    if path is not None:
        assert body.get("path") == path, f"want path={path}, got {body}"
    low = r.body.decode().lower()
    for leak in ("sqlite", "select ", "insert ", "constraint", "/tmp/", ".db"):
        assert leak not in low, f"internal detail {leak!r} leaked in {r.body!r}"
    return body


def post_raw(admin, path, body):
    """POST a big body over a raw socket: the server may answer 413 and close before reading it all."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {admin.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", admin.port), timeout=10) as s:
        s.sendall(head.encode())
        try:
            s.sendall(body)
        except OSError:
            pass  # closed early: the answer should already be in our receive buffer
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    hdrs = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip() for ln in lines[1:] if ":" in ln}
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        payload = dechunk(payload)
    return cephalo.Resp(status, hdrs, payload)


def dechunk(data):
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            break
        out += rest[:n]
        data = rest[n + 2:]
    return out


def test_health_needs_no_token(cp):
    r = cephalo.http_get(cp.admin_port, "/health")
    assert r.status == 200
    assert r.json() == {"status": "ok"}


@pytest.mark.parametrize("token", [None, "wrong-token-wrong-token-wrong", "", cephalo.ADMIN_TOKEN + "x"])
def test_401_without_or_with_bad_token(admin, token):
    for method, path in (("GET", "/api/v1/services"), ("POST", "/api/v1/services"), ("GET", "/api/v1/dataplanes"),
                         ("GET", "/api/v1/snapshot"), ("DELETE", "/api/v1/services/x")):
        r = admin.request(method, path, body=SVC if method == "POST" else None, token=token)
        err(r, 401, "unauthorized")
        assert r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers


def test_401_wrong_scheme(admin):
    r = admin.request("GET", "/api/v1/services", token=None, headers={"Authorization": "Basic " + "YTpi"})
    err(r, 401, "unauthorized")
    # nothing was created by the unauthorized POSTs
    assert admin.ok("GET", "/api/v1/services")["data"] == []


def test_service_crud(admin):
    r = admin.post("/api/v1/services", SVC)
    assert r.status == 201, r
    out = r.json()
    v1 = out["version"]
    assert isinstance(v1, int) and v1 >= 1
    svc = out["service"]
    assert svc["name"] == "svc-a"
    assert svc["targets"] == [{"url": "http://127.0.0.1:9", "weight": 2}]
    assert svc["timeout_ms"] == 1500
    assert svc["system"] is None  # in no system unless one is named
    for k in ("id", "created_at", "updated_at"):
        assert k in svc, svc
    # by id and by name
    assert admin.ok("GET", f"/api/v1/services/{svc['id']}") == svc
    assert admin.ok("GET", "/api/v1/services/svc-a") == svc
    # defaults are filled in
    out2 = admin.ok("POST", "/api/v1/services", {"name": "a-first", "targets": [{"url": "http://localhost:8080/"}]})
    assert out2["version"] > v1
    assert out2["service"]["targets"][0]["weight"] == 1
    assert out2["service"]["timeout_ms"] == 60000
    # list sorted by name
    names = [s["name"] for s in admin.ok("GET", "/api/v1/services")["data"]]
    assert names == ["a-first", "svc-a"]
    # full replace; read-only fields in the body are ignored
    rep = dict(SVC, targets=[{"url": "http://[::1]:8081"}], id="bogus", created_at="x")
    out3 = admin.ok("PUT", "/api/v1/services/svc-a", rep, expect=(200,))
    assert out3["version"] > out2["version"]
    assert out3["service"]["id"] == svc["id"]
    assert out3["service"]["targets"] == [{"url": "http://[::1]:8081", "weight": 1}]
    assert out3["service"]["created_at"] == svc["created_at"]
    assert admin.snapshot()["version"] == out3["version"]
    # delete by id
    out4 = admin.ok("DELETE", f"/api/v1/services/{svc['id']}", expect=(200,))
    assert out4["version"] > out3["version"]
    err(admin.get("/api/v1/services/svc-a"), 404, "not_found")
    assert [s["name"] for s in admin.ok("GET", "/api/v1/services")["data"]] == ["a-first"]


def test_route_crud_and_service_in_use(admin):
    admin.ok("POST", "/api/v1/services", SVC)
    route = {"name": "r1", "service": "svc-a", "paths": ["/api", "/v2/"], "methods": ["GET", "POST"],
             "hosts": ["example.com", "*.example.org"], "strip_prefix": True, "default_access": "public"}
    out = admin.ok("POST", "/api/v1/routes", route, expect=(201,))
    r = out["route"]
    for k, v in route.items():
        assert r[k] == v, (k, r)
    for k in ("id", "created_at", "updated_at"):
        assert k in r
    d = admin.ok("POST", "/api/v1/routes", {"name": "r0", "service": "svc-a", "paths": ["/x"]}, expect=(201,))
    assert d["route"]["hosts"] == [] and d["route"]["methods"] == [] and d["route"]["strip_prefix"] is False
    assert d["route"]["default_access"] == "authenticated"  # the default: a credential is needed
    assert [x["name"] for x in admin.ok("GET", "/api/v1/routes")["data"]] == ["r0", "r1"]
    assert admin.ok("GET", f"/api/v1/routes/{r['id']}") == r
    # the service is in use: 409, and it is still there
    err(admin.delete("/api/v1/services/svc-a"), 409, "conflict")
    assert admin.get("/api/v1/services/svc-a").status == 200
    # PUT route
    out2 = admin.ok("PUT", "/api/v1/routes/r1", dict(route, paths=["/other"]), expect=(200,))
    assert out2["route"]["paths"] == ["/other"]
    # the snapshot body carries both
    snap = admin.ok("GET", "/api/v1/snapshot?body=1")
    assert snap["version"] == out2["version"]
    assert snap["hash"].startswith("sha256:") and len(snap["hash"]) == 71
    assert [x["name"] for x in snap["body"]["routes"]] == ["r0", "r1"]
    assert cephalo.canonical_hash(snap["body"]) == snap["hash"]
    # delete routes, then the service
    admin.ok("DELETE", "/api/v1/routes/r1", expect=(200,))
    admin.ok("DELETE", "/api/v1/routes/r0", expect=(200,))
    admin.ok("DELETE", "/api/v1/services/svc-a", expect=(200,))
    assert admin.ok("GET", "/api/v1/routes")["data"] == []


# ---------------------------------------------------------------------------------------------------------------
# hostile input: every case must be refused with the right status and code, nothing changes


BAD_SERVICES = [
    # (body, code, path)
    ({"name": "x", "targets": [], "bogus": 1}, "unknown_field", "/bogus"),
    ({"name": "x", "targets": [{"url": "http://127.0.0.1:1", "extra": True}]}, "unknown_field", "/targets/0/extra"),
    ({"targets": []}, "missing_field", "/name"),
    ({"name": "x"}, "missing_field", "/targets"),
    ({"name": "x", "targets": [{"weight": 1}]}, "missing_field", "/targets/0/url"),
    ({"name": 5, "targets": []}, "invalid", "/name"),
    ({"name": "", "targets": []}, "invalid", "/name"),
    ({"name": "bad name!", "targets": []}, "invalid", "/name"),
    ({"name": "x" * 65, "targets": []}, "invalid", "/name"),
    ({"name": "x", "targets": {}}, "invalid", "/targets"),
    ({"name": "x", "targets": ["http://127.0.0.1:1"]}, "invalid", "/targets/0"),
    ({"name": "x", "targets": [], "timeout_ms": "100"}, "invalid", "/timeout_ms"),
    ({"name": "x", "targets": [], "timeout_ms": 1.5}, "invalid", "/timeout_ms"),
    ({"name": "x", "targets": [], "timeout_ms": 0}, "invalid", "/timeout_ms"),
    ({"name": "x", "targets": [], "timeout_ms": 3600001}, "invalid", "/timeout_ms"),
    ({"name": "x", "targets": [], "timeout_ms": True}, "invalid", "/timeout_ms"),
    ({"name": "x", "targets": [{"url": "http://127.0.0.1:1", "weight": 0}]}, "invalid", "/targets/0/weight"),
    ({"name": "x", "targets": [{"url": "http://127.0.0.1:1", "weight": 1001}]}, "invalid", "/targets/0/weight"),
    ({"name": "x", "targets": [{"url": "http://127.0.0.1:1", "weight": "1"}]}, "invalid", "/targets/0/weight"),
]

DUP = ("invalid", "duplicate")  # PROTOCOL.md §5.1 has a "duplicate" code; the admin doc lists only "invalid"

BAD_URLS = ["https://127.0.0.1:1", "http://127.0.0.1", "http://127.0.0.1:0", "http://127.0.0.1:65536",
            "http://127.0.0.1:1/path", "http://user@127.0.0.1:1", "http://127.0.0.1:1?q", "http://127.0.0.1:1#f",
            "127.0.0.1:1", "http://:1", "http://bad_host:1", "http://h:1 ", "", 5,
            "http://" + "a" * 250 + ":1"]


def test_hostile_input_then_still_up_and_intact(admin, cp):
    base = admin.ok("POST", "/api/v1/services", SVC)
    admin.ok("POST", "/api/v1/routes", {"name": "r1", "service": "svc-a", "paths": ["/a"]})
    before_services = admin.ok("GET", "/api/v1/services")
    before_routes = admin.ok("GET", "/api/v1/routes")
    before_snap = admin.snapshot()
    assert before_snap["version"] > base["version"]
    failures = []

    def check(r, status, code, path=None, what=""):
        try:
            err(r, status, code, path)
        except AssertionError as e:
            failures.append(f"{what}: {e}")

    # malformed JSON, duplicate keys, not an object
    for raw in (b"{", b"{\"name\": }", b"", b"\xff\xfe", b"{\"name\":\"x\",\"targets\":[]} trailing", b"nul",
                b"{\"name\":\"x\",\"name\":\"y\",\"targets\":[]}"):
        check(admin.request("POST", "/api/v1/services", raw=raw), 400, "bad_json", what=f"POST raw {raw!r}")
    for raw in (b"[]", b"\"x\"", b"42", b"null"):
        r = admin.request("POST", "/api/v1/services", raw=raw)
        if not (r.status == 400 and r.json().get("error") in ("bad_json", "invalid")):
            failures.append(f"POST non-object {raw!r}: want 400 bad_json|invalid, got {r}")
    for body, code, path in BAD_SERVICES:
        check(admin.post("/api/v1/services", body), 400, code, path, what=f"POST service {body}")
    for url in BAD_URLS:
        body = {"name": "x", "targets": [{"url": url}]}
        check(admin.post("/api/v1/services", body), 400, "invalid", "/targets/0/url", what=f"POST url {url!r}")
        check(admin.put("/api/v1/services/svc-a", dict(body, name="svc-a")), 400, "invalid", "/targets/0/url",
              what=f"PUT url {url!r}")
    # routes
    bad_routes = [
        # docs/admin-api.md says invalid, PROTOCOL.md §5.1 says unknown_service: either is accepted
        ({"name": "r2", "service": "nope", "paths": ["/b"]}, ("invalid", "unknown_service"), "/service"),
        ({"name": "r2", "service": "svc-a", "paths": []}, "invalid", "/paths"),
        ({"name": "r2", "service": "svc-a", "paths": "/b"}, "invalid", "/paths"),
        ({"name": "r2", "service": "svc-a"}, "missing_field", "/paths"),
        ({"name": "r2", "service": "svc-a", "paths": ["/b"], "strip_prefix": "yes"}, "invalid", "/strip_prefix"),
        ({"name": "r2", "service": "svc-a", "paths": ["/b"], "methods": ["FETCH"]}, "invalid", "/methods/0"),
        ({"name": "r2", "service": "svc-a", "paths": ["/b"], "methods": ["GET", "GET"]}, DUP, "/methods/1"),
        ({"name": "r2", "service": "svc-a", "paths": ["/b"], "hosts": ["Example.COM"]}, "invalid", "/hosts/0"),
        ({"name": "r2", "service": "svc-a", "paths": ["/b"], "hosts": ["a.com:80"]}, "invalid", "/hosts/0"),
        ({"name": "r2", "service": "svc-a", "paths": ["/b"], "flavour": "proxy"}, "unknown_field", "/flavour"),
        ({"name": "r2", "service": "svc-a", "paths": ["/b", "/b"]}, DUP, "/paths/1"),
    ]
    for p in ("b", "/a/../b", "/a//b", "/a/./b", "/a/%2e%2e/b", "/a%2Fb", "/a;b", "/a\\b", "/a\u0001b", "",
              "/" + "a" * 1024):
        bad_routes.append(({"name": "r2", "service": "svc-a", "paths": [p]}, "invalid", "/paths/0"))
    # a \u0000 escape is invalid JSON for jansson (PROTOCOL.md §1): refused before the schema looks at it
    check(admin.post("/api/v1/routes", {"name": "r2", "service": "svc-a", "paths": ["/a\u0000b"]}), 400,
          ("bad_json", "invalid"), what="POST route path with NUL")
    for body, code, path in bad_routes:
        check(admin.post("/api/v1/routes", body), 400, code, path, what=f"POST route {body}")
    # 413, 415
    big = json.dumps({"name": "x", "targets": [], "pad": "a" * (1 << 20)}).encode()
    check(post_raw(admin, "/api/v1/services", big), 413, "payload_too_large", what="POST 1 MiB+")
    for ct in ("text/plain", "application/x-www-form-urlencoded", None):
        check(admin.request("POST", "/api/v1/services", body={"name": "x", "targets": []}, content_type=ct),
              415, "unsupported_media_type", what=f"POST Content-Type {ct}")
    # 404, 409, 405
    for m in ("GET", "PUT", "DELETE"):
        body = SVC if m == "PUT" else None
        check(admin.request(m, "/api/v1/services/no-such-svc", body), 404, "not_found", what=f"{m} unknown service")
        check(admin.request(m, "/api/v1/routes/999999", body), 404, "not_found", what=f"{m} unknown route")
    check(admin.get("/api/v1/nothing-here"), 404, "not_found", what="unknown collection")
    check(admin.post("/api/v1/services", SVC), 409, "conflict", what="duplicate service")
    check(admin.post("/api/v1/routes", {"name": "r1", "service": "svc-a", "paths": ["/z"]}), 409, "conflict",
          what="duplicate route")
    check(admin.delete("/api/v1/services/svc-a"), 409, "conflict", what="delete service in use")
    admin.ok("POST", "/api/v1/services", dict(SVC, name="svc-b"))
    check(admin.put("/api/v1/services/svc-b", SVC), 409, "conflict", what="rename onto an existing name")
    for m, p in (("DELETE", "/api/v1/services"), ("PUT", "/api/v1/routes"), ("PATCH", "/api/v1/services/svc-a"),
                 ("POST", "/api/v1/services/svc-a"), ("POST", "/api/v1/snapshot"), ("DELETE", "/api/v1/dataplanes")):
        check(admin.request(m, p, SVC if m in ("PUT", "PATCH", "POST") else None), 405, "method_not_allowed",
              what=f"{m} {p}")

    assert not failures, "\n".join(failures)

    # still up, data intact, no rejected write bumped the version (only svc-b's creation did)
    assert cephalo.http_get(cp.admin_port, "/health").status == 200
    assert cp.proc.alive()
    now = admin.ok("GET", "/api/v1/services")
    assert [s["name"] for s in now["data"]] == ["svc-a", "svc-b"]
    assert now["data"][0] == before_services["data"][0]
    assert admin.ok("GET", "/api/v1/routes") == before_routes
    snap = admin.snapshot()
    assert snap["version"] == before_snap["version"] + 1, (before_snap, snap)
    assert snap["epoch"] == before_snap["epoch"]


def test_empty_lists_on_a_fresh_cp(admin, cp):
    for path in ("/api/v1/services", "/api/v1/routes", "/api/v1/dataplanes"):
        r = admin.get(path)
        assert r.status == 200 and r.json() == {"data": []}, (path, r)
    snap = admin.snapshot()
    assert set(snap) >= {"epoch", "version", "hash", "schema"}, snap
    assert cp.proc.alive()


def test_content_type_with_charset_is_json(admin):
    r = admin.request("POST", "/api/v1/services", body=SVC, content_type="application/json; charset=utf-8")
    assert r.status == 201, r


def test_name_addressing_and_version_monotonic(admin):
    versions = []
    for i in range(5):
        versions.append(admin.ok("POST", "/api/v1/services", dict(SVC, name=f"s{i}"))["version"])
    assert versions == sorted(versions) and len(set(versions)) == 5
    assert admin.snapshot()["version"] == versions[-1]


def test_data_survives_cp_restart(procs, tmpdir_str):
    cp = cephalo.ControlPlane(procs, tmpdir_str).start()
    out = cp.admin.ok("POST", "/api/v1/services", SVC)
    snap = cp.admin.snapshot()
    assert cp.proc.stop() == 0
    cp2 = cephalo.ControlPlane(procs, tmpdir_str, name="cp-again", data_dir=cp.data_dir).start()
    assert cp2.admin.ok("GET", "/api/v1/services/svc-a") == out["service"]
    snap2 = cp2.admin.snapshot()
    assert (snap2["epoch"], snap2["version"], snap2["hash"]) == (snap["epoch"], snap["version"], snap["hash"])


def test_generated_token_printed_once(procs, tmpdir_str):
    """Without CEPHALO_ADMIN_TOKEN a token is generated at the first start, printed once as `admin token: <t>`."""
    import os
    import re
    env_token = os.environ.pop("CEPHALO_ADMIN_TOKEN", None)
    try:
        cp = cephalo.ControlPlane(procs, tmpdir_str, name="cpgen", token=None)
        cp.start()
        with open(cp.proc.stdout_path) as f:
            m = re.search(r"admin token: (\S+)", f.read())
        assert m, "no 'admin token:' line on stdout"
        token = m.group(1)
        assert len(token) >= 16
        assert cephalo.Admin(cp.admin_port, token).get("/api/v1/services").status == 200
        assert cephalo.Admin(cp.admin_port, token + "x").get("/api/v1/services").status == 401
        assert token not in open(cp.proc.stderr_path).read(), "the token was logged on stderr"
        assert cp.proc.stop() == 0
        # second start on the same data dir: not printed again, and the same token still works
        cp2 = cephalo.ControlPlane(procs, tmpdir_str, name="cpgen2", token=None, data_dir=cp.data_dir).start()
        with open(cp2.proc.stdout_path) as f:
            assert token not in f.read() and "admin token:" not in open(cp2.proc.stdout_path).read()
        assert cephalo.Admin(cp2.admin_port, token).get("/api/v1/services").status == 200
        with open(os.path.join(cp.data_dir, "cephalo.db"), "rb") as f:
            assert token.encode() not in f.read(), "the token is stored in clear"
    finally:
        if env_token is not None:
            os.environ["CEPHALO_ADMIN_TOKEN"] = env_token


def test_short_token_refused(procs, tmpdir_str):
    cp = cephalo.ControlPlane(procs, tmpdir_str, name="cpshort", token="short")
    try:
        cp.start()
    except AssertionError:
        pass  # exited during startup: what we want
    assert not cp.proc.alive(), "started with a 5-character admin token"
    assert cp.proc.popen.returncode not in (0, None)


def test_concurrent_writes_each_get_their_own_version(admin):
    """Parallel writers: every write succeeds or conflicts cleanly, versions are unique, nothing is half-written."""
    import threading
    results = []
    lock = threading.Lock()

    def writer(i):
        r = admin.post("/api/v1/services", {"name": f"c{i}", "targets": [{"url": f"http://127.0.0.1:{1000 + i}"}]})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r.status == 201 for r in results), [r for r in results if r.status != 201]
    versions = [r.json()["version"] for r in results]
    assert len(set(versions)) == 20, versions
    assert admin.snapshot()["version"] == max(versions)
    names = [s["name"] for s in admin.ok("GET", "/api/v1/services")["data"]]
    assert names == sorted(f"c{i}" for i in range(20))
    body = admin.ok("GET", "/api/v1/snapshot?body=1")["body"]
    assert [s["name"] for s in body["services"]] == names
