"""13: the public signing keys travel in the snapshot and the data plane serves them itself at
/auth/.well-known/jwks.json (docs/dataplane.md "Built-in routes", proto/PROTOCOL.md section 5 "keys").

The DP's document is compared with the CP's /api/v1/jwks as parsed JSON: the same keys with the same members and
values. The order may differ (the CP lists the active key first, the snapshot sorts by kid), so the key lists are
compared sorted by kid, and the exact set of kids is checked too.
"""
import os
import socket

import cephalo

V1 = "/api/v1"
JWKS = "/auth/.well-known/jwks.json"


def by_kid(doc):
    assert set(doc) == {"keys"}, doc
    return sorted(doc["keys"], key=lambda k: k["kid"])


def synced(admin, dp):
    """Until the DP has applied the CP's current version (no write to ?wait on at this point)."""
    want = admin.snapshot()["version"]
    return cephalo.wait_until(lambda: (lambda d: d if d and d["applied"]["version"] == want else None)(
        admin.dataplane(dp.dp_id)), 10, "the data plane applies the current snapshot", proc=dp.proc)


def served_h1(dp):
    r = dp.get(JWKS)
    assert r.status == 200, r
    assert r.headers["content-type"] == "application/json", r
    assert r.headers["cache-control"] == "public, max-age=300", r
    assert int(r.headers["content-length"]) == len(r.body), r
    assert b"PRIVATE" not in r.body and b'"d"' not in r.body, r
    return r


def served_h2(dp):
    with socket.create_connection(("127.0.0.1", dp.port), timeout=10) as s:
        r = cephalo.h2_request(s, f"127.0.0.1:{dp.port}", JWKS)
    assert r.status == 200, r
    assert r.headers["content-type"] == "application/json", r
    assert r.headers["cache-control"] == "public, max-age=300", r
    return r


def test_dp_serves_the_cp_jwks_and_follows_rotation(cp, admin, dp):
    synced(admin, dp)
    cp_doc = admin.ok("GET", f"{V1}/jwks", expect=(200,))
    assert len(cp_doc["keys"]) == 1
    h1 = served_h1(dp)
    assert h1.json() == cp_doc  # one key: identical document
    h2 = served_h2(dp)
    assert h2.body == h1.body
    # HEAD: the headers of GET, no body
    head = cephalo.http_request(dp.port, "HEAD", JWKS)
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == str(len(h1.body)), head

    # a rotation is a snapshot change: with ?wait=applied the DP serves both keys when the answer comes back
    first = cp_doc["keys"][0]["kid"]
    new = admin.apply("POST", f"{V1}/signing_keys/rotate", {}, expect=(201,))["signing_key"]["kid"]
    cp_doc = admin.ok("GET", f"{V1}/jwks", expect=(200,))
    assert [k["kid"] for k in cp_doc["keys"]] == [new, first]
    doc = served_h1(dp).json()
    assert by_kid(doc) == by_kid(cp_doc)
    assert {k["kid"] for k in doc["keys"]} == {new, first}
    assert served_h2(dp).json() == doc

    # an RSA key too: three keys, every member as the CP publishes it
    rs = admin.apply("POST", f"{V1}/signing_keys/rotate", {"alg": "RS256"}, expect=(201,))["signing_key"]
    cp_doc = admin.ok("GET", f"{V1}/jwks", expect=(200,))
    doc = served_h1(dp).json()
    assert by_kid(doc) == by_kid(cp_doc) and len(doc["keys"]) == 3
    assert next(k for k in doc["keys"] if k["kid"] == rs["kid"])["kty"] == "RSA"
    assert served_h2(dp).json() == doc
    # the snapshot the CP serves carries the same keys
    body = admin.ok("GET", f"{V1}/snapshot?body=1", expect=(200,))["body"]
    assert body["keys"] == by_kid(cp_doc)


def test_methods_and_reserved_prefix(cp, admin, dp):
    admin.ok("POST", f"{V1}/services", {"name": "empty", "targets": []})
    admin.apply("POST", f"{V1}/routes", {"default_access": "public", "name": "all", "service": "empty", "paths": ["/"]})
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = cephalo.http_request(dp.port, method, JWKS, body=b"{}" if method != "DELETE" else None)
        assert r.status == 405 and r.json()["error"] == "method_not_allowed", r
        assert r.headers["allow"] == "GET, HEAD", r
    with socket.create_connection(("127.0.0.1", dp.port), timeout=10) as s:
        r = cephalo.h2_request(s, f"127.0.0.1:{dp.port}", JWKS, method="POST", body=b"{}")
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD", r
    # every other /auth path is the gateway's, not the catch-all route's: 404 not_found (GET /auth/login is not
    # checked here: POST /auth/login, /auth/refresh and /auth/logout go to the auth API, 14_login.py)
    for path in ("/auth", "/auth/", "/auth/other", "/auth/.well-known/jwks.json/x",
                 "/auth/.well-known/jwks.jso", "/auth/.well-known"):
        r = dp.get(path)
        assert r.status == 404 and r.json()["error"] == "not_found", (path, r)
    # decided on the canonical path
    for path in ("/auth/./.well-known/jwks.json", "/x/../auth/.well-known/jwks.json", "/auth//.well-known/jwks.json",
                 "/auth/%2ewell-known/jwks.json", JWKS + "?x=1"):
        assert dp.get(path).status == 200, path
    # outside /auth the router decides: the catch-all route's service has no target (503)
    for path in ("/authx", "/Auth/x", "/x/auth"):
        r = dp.get(path)
        assert r.status == 503, (path, r)


def test_routes_cannot_claim_auth(cp, admin, dp):
    admin.ok("POST", f"{V1}/services", {"name": "s", "targets": []})
    before = admin.snapshot()["version"]
    for paths in (["/auth"], ["/auth/"], ["/auth/x"], ["/auth/.well-known/jwks.json"]):
        r = admin.post(f"{V1}/routes", {"default_access": "public", "name": "r", "service": "s", "paths": paths})
        assert r.status == 400, r
        assert r.json()["error"] == "invalid" and r.json()["path"] == "/paths/0", r
    r = admin.post(f"{V1}/routes", {"default_access": "public", "name": "r", "service": "s", "paths": ["/ok", "/auth"]})
    assert r.status == 400 and r.json()["path"] == "/paths/1", r
    admin.ok("POST", f"{V1}/routes", {"default_access": "public", "name": "r", "service": "s", "paths": ["/authx"]})
    r = admin.put(f"{V1}/routes/r", {"default_access": "public", "name": "r", "service": "s", "paths": ["/auth/x"]})
    assert r.status == 400 and r.json()["path"] == "/paths/0", r
    assert admin.snapshot()["version"] == before + 1  # only the /authx route was written


def test_no_config_before_anything(procs, tmpdir_str):
    sock = os.path.join(tmpdir_str, "nobody", "cp.sock")
    dp = cephalo.DataPlane(procs, tmpdir_str, sock).start()
    for method in ("GET", "HEAD", "POST"):
        r = cephalo.http_request(dp.port, method, JWKS)
        assert r.status == 503, (method, r)
        if method != "HEAD":
            assert r.json()["error"] == "no_config", r
