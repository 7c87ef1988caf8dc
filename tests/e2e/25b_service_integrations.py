"""25b: a service's "consul" and "credentials" members through the admin API (issue 7, control plane).

- CRUD: both members are accepted on create and replace and shown by GET (item and list) as configured (header names
  lower-cased, templates - never a secret value); a service without them reads exactly as before (no new member);
- hostile values of both members are 400 with the JSON pointer, never echo what was sent, leak no internals (no SQL,
  no file names), never bump the version and lose nothing;
- the snapshot: "consul" is not in the body; "credentials" is in its resolved form - without Vault configured the
  error form "Vault is not configured" (GET /api/v1/snapshot?body=1 shows it, the hash is the body's), and a data
  plane answers 503 credentials_unavailable for the service without calling its upstream, while a service without
  credentials on the same data plane is unaffected;
- the database file is 0600.
"""
import json
import os
import stat

import cephalo

V1 = "/api/v1"
CREDS = {"vault_path": "services/orders",
         "headers": {"Authorization": "Bearer {{token}}", "X-Api-Key": "{{api_key}}"}}
CREDS_STORED = {"vault_path": "services/orders",
                "headers": {"authorization": "Bearer {{token}}", "x-api-key": "{{api_key}}"}}
LEAKS = ("sqlite", "SELECT", "INSERT", "UPDATE ", ".c:", "services.", "json_", "HOSTILE")


def svc(name, **members):
    out = {"name": name, "targets": []}
    out.update(members)
    return out


def assert_clean_400(r, code, path, what):
    assert r.status == 400, f"{what}: want 400 {code} at {path}, got {r}"
    body = r.json()
    assert body.get("error") == code and body.get("path") == path, f"{what}: want {code} at {path}, got {body}"
    text = r.body.decode("utf-8", "replace")
    for leak in LEAKS:
        assert leak not in text, f"{what}: the answer leaks {leak!r}: {text}"


def test_crud(admin):
    out = admin.ok("POST", f"{V1}/services", svc("orders", consul={"service": "orders", "tag": "v1"}, credentials=CREDS),
                   expect=(201,))["service"]
    assert out["consul"] == {"service": "orders", "tag": "v1"}
    assert out["credentials"] == CREDS_STORED
    assert out["targets"] == []
    plain = admin.ok("POST", f"{V1}/services", {"name": "plain", "targets": [{"url": "http://127.0.0.1:9"}]},
                     expect=(201,))["service"]
    assert "consul" not in plain and "credentials" not in plain
    assert admin.ok("GET", f"{V1}/services/orders") == out
    listed = {s["name"]: s for s in admin.ok("GET", f"{V1}/services")["data"]}
    assert listed["orders"] == out and listed["plain"] == plain
    # nulls are "none"; a replace without the members drops them (full replace)
    r = admin.ok("PUT", f"{V1}/services/orders", svc("orders", consul=None, credentials=None, timeout_ms=5))["service"]
    assert "consul" not in r and "credentials" not in r
    basic = {"vault_path": "a/b", "basic": {"username": "{{user}}", "password": "{{pass}}"}}
    r = admin.ok("PUT", f"{V1}/services/orders", svc("orders", credentials=basic))["service"]
    assert r["credentials"] == basic


BAD = [
    ({"consul": 1}, "invalid", "/consul"),
    ({"consul": {}}, "missing_field", "/consul/service"),
    ({"consul": {"service": "HOSTILE/../../v1/agent"}}, "invalid", "/consul/service"),
    ({"consul": {"service": "o", "tag": "HOSTILE&dc=x"}}, "invalid", "/consul/tag"),
    ({"consul": {"service": "o", "token": "HOSTILE"}}, "unknown_field", "/consul/token"),
    ({"consul": {"service": "o"}, "targets": [{"url": "http://127.0.0.1:1"}]}, "invalid", "/targets"),
    ({"credentials": "HOSTILE"}, "invalid", "/credentials"),
    ({"credentials": {"headers": {"x": "y"}}}, "missing_field", "/credentials/vault_path"),
    ({"credentials": {"vault_path": "../HOSTILE", "headers": {"x": "y"}}}, "invalid", "/credentials/vault_path"),
    ({"credentials": {"vault_path": "a//b", "headers": {"x": "y"}}}, "invalid", "/credentials/vault_path"),
    ({"credentials": {"vault_path": "a/", "headers": {"x": "y"}}}, "invalid", "/credentials/vault_path"),
    ({"credentials": {"vault_path": "a"}}, "missing_field", "/credentials/headers"),
    ({"credentials": {"vault_path": "a", "headers": {}}}, "invalid", "/credentials/headers"),
    ({"credentials": {"vault_path": "a", "headers": {"x": "1"}, "basic": {}}}, "invalid", "/credentials/basic"),
    ({"credentials": {"vault_path": "a", "headers": {"Host": "HOSTILE"}}}, "invalid", "/credentials/headers/Host"),
    ({"credentials": {"vault_path": "a", "headers": {"X-Cephalo-Roles": "admin"}}}, "invalid",
     "/credentials/headers/X-Cephalo-Roles"),
    ({"credentials": {"vault_path": "a", "headers": {"x-request-id": "1"}}}, "invalid",
     "/credentials/headers/x-request-id"),
    ({"credentials": {"vault_path": "a", "headers": {"bad name": "1"}}}, "invalid", "/credentials/headers/bad name"),
    ({"credentials": {"vault_path": "a", "headers": {"a/b": "1"}}}, "invalid", "/credentials/headers/a~1b"),
    ({"credentials": {"vault_path": "a", "headers": {"x-k": "HOSTILE\r\nx-evil: 1"}}}, "invalid",
     "/credentials/headers/x-k"),
    ({"credentials": {"vault_path": "a", "headers": {"x-k": "{{HOSTILE"}}}, "invalid", "/credentials/headers/x-k"),
    ({"credentials": {"vault_path": "a", "headers": {"x-k": "HOSTILE}}"}}}, "invalid", "/credentials/headers/x-k"),
    ({"credentials": {"vault_path": "a", "headers": {"x-k": "{{HOSTILE key}}"}}}, "invalid",
     "/credentials/headers/x-k"),
    ({"credentials": {"vault_path": "a", "headers": {"x-k": "x" * 1025}}}, "invalid", "/credentials/headers/x-k"),
    ({"credentials": {"vault_path": "a", "headers": {"x-k": 7}}}, "invalid", "/credentials/headers/x-k"),
    ({"credentials": {"vault_path": "a", "headers": {"X-K": "1", "x-k": "2"}}}, "duplicate", "/credentials/headers/x-k"),
    ({"credentials": {"vault_path": "a", "headers": {f"h{i}": "v" for i in range(9)}}}, "invalid",
     "/credentials/headers"),
    ({"credentials": {"vault_path": "a", "basic": {"username": "u"}}}, "missing_field",
     "/credentials/basic/password"),
    ({"credentials": {"vault_path": "a", "basic": {"username": "HOSTILE:x", "password": "p"}}}, "invalid",
     "/credentials/basic/username"),
    ({"credentials": {"vault_path": "a", "basic": {"username": "u", "password": "p", "x": 1}}}, "unknown_field",
     "/credentials/basic/x"),
]


def test_bad_members(admin):
    keep = admin.ok("POST", f"{V1}/services", svc("keep", credentials=CREDS), expect=(201,))["service"]
    version = admin.snapshot()["version"]
    for members, code, path in BAD:
        for method, url, name in (("POST", f"{V1}/services", "new"), ("PUT", f"{V1}/services/keep", "keep")):
            body = svc(name)
            body.update(members)
            assert_clean_400(admin.request(method, url, body), code, path, f"{method} {members!r}"[:200])
    # hostile shapes: deep nesting, a huge headers object, NUL bytes
    for depth in (100, 3000):
        raw = ('{"name":"n","targets":[],"credentials":' + '{"headers":' * depth + "{}" + "}" * depth + "}").encode()
        assert admin.request("POST", f"{V1}/services", raw=raw).status == 400
    big = {"vault_path": "a", "headers": {f"x-{i}": "v" for i in range(50000)}}
    assert_clean_400(admin.request("POST", f"{V1}/services", svc("n", credentials=big)), "invalid",
                     "/credentials/headers", "huge headers")
    raw = b'{"name":"n","targets":[],"consul":{"service":"a\\u0000b"}}'
    assert_clean_400(admin.request("POST", f"{V1}/services", raw=raw), "invalid", "/consul/service", "NUL")
    assert admin.snapshot()["version"] == version
    assert admin.ok("GET", f"{V1}/services/keep") == keep
    assert admin.get(f"{V1}/services/new").status == 404
    assert cephalo.http_get(admin.port, "/health").status == 200


def test_snapshot_form(admin, cp):
    admin.ok("POST", f"{V1}/services", svc("orders", consul={"service": "orders"}, credentials=CREDS), expect=(201,))
    admin.ok("POST", f"{V1}/services", {"name": "plain", "targets": [{"url": "http://127.0.0.1:9"}]}, expect=(201,))
    snap = admin.ok("GET", f"{V1}/snapshot?body=1")
    services = {s["name"]: s for s in snap["body"]["services"]}
    assert "consul" not in services["orders"]
    assert services["orders"]["credentials"] == {"source": "vault:services/orders", "error": "Vault is not configured"}
    assert services["plain"] == {"name": "plain", "policies": {}, "system": None, "timeout_ms": 60000,
                                 "targets": [{"url": "http://127.0.0.1:9", "weight": 1}]}
    assert cephalo.canonical_hash(snap["body"]) == snap["hash"]
    # the database holds secrets: private to its owner
    for name in os.listdir(cp.data_dir):
        if name.startswith("cephalo.db"):
            mode = stat.S_IMODE(os.stat(os.path.join(cp.data_dir, name)).st_mode)
            assert mode & 0o077 == 0, f"{name} is {oct(mode)}"


def test_credentials_unavailable_at_dp(admin, make_dp, pyup):
    dp = make_dp()
    admin.apply("POST", f"{V1}/services", svc("orders", targets=[{"url": pyup.url}], credentials=CREDS))
    admin.apply("POST", f"{V1}/services", svc("plain", targets=[{"url": pyup.url}]))
    admin.apply("POST", f"{V1}/routes", {"name": "o", "service": "orders", "paths": ["/o"], "default_access": "public"})
    admin.apply("POST", f"{V1}/routes", {"name": "p", "service": "plain", "paths": ["/p"], "default_access": "public"})
    before = pyup.count
    r = dp.get("/o/x", headers={"X-Client": "client-token"})
    assert r.status == 503, r
    body = r.json()
    assert body.get("error") == "credentials_unavailable", body
    assert "client-token" not in r.body.decode()
    assert pyup.count == before, "the upstream was called without its credentials"
    assert dp.get("/p/x").status == 200
    assert pyup.count == before + 1
    # credentials removed: the service reaches its upstream again
    admin.apply("PUT", f"{V1}/services/orders", svc("orders", targets=[{"url": pyup.url}]))
    assert dp.get("/o/x").status == 200
    # the persisted snapshot file is private too (it will hold resolved credentials)
    path = os.path.join(dp.state_dir, "snapshot.json")
    if os.path.exists(path):
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, oct(os.stat(path).st_mode)
    with open(path) as f:
        json.load(f)
