"""11: the identity model's admin API (docs/admin-api.md "Identity"): systems, roles, groups, users, api keys,
endpoint rules.

CRUD and shapes, addressing by code / "<system>:<name>", memberships and the 409s that keep things in use, the
write-only password (argon2id, kept on a PUT without one), the api key shown once and stored as a hash, and hostile
input on every endpoint - each refused with its status, code and JSON pointer, the CP still up, nothing changed,
no version bumped. The database file and the audit table are read directly to prove that no password, hash or
key is ever returned or recorded.
"""
import base64
import hashlib
import json
import os
import re
import sqlite3

import cephalo

V1 = "/api/v1"


def err(r, status, code, path=None):
    assert r.status == status, f"want {status} {code}, got {r}"
    body = r.json()
    codes = code if isinstance(code, tuple) else (code,)
    assert body.get("error") in codes, f"want error={code}, got {body}"
    if path is not None:
        assert body.get("path") == path, f"want path={path}, got {body}"
    low = r.body.decode().lower()
    for leak in ("sqlite", "select ", "insert ", "constraint", "/tmp/", ".db", "argon2"):
        assert leak not in low, f"internal detail {leak!r} leaked in {r.body!r}"
    return body


def published_keys(admin):
    """The snapshot's "keys": the CP's JWKS sorted by kid."""
    return sorted(admin.ok("GET", f"{V1}/jwks")["keys"], key=lambda k: k["kid"])


def snapshot_body(admin, cp, **members):
    """The snapshot body the CP builds with nothing configured but `members`: every identity section is written
    explicitly (docs/access.md section 1), auth with every setting filled in (the defaults; api = this CP's --auth-listen)."""
    body = {"routes": [], "services": [], "keys": published_keys(admin), "groups": [], "endpoints": [],
            "api_keys": [], "revoked": {"users": [], "tokens": []},
            "auth": {"issuer": "cephalo", "audience": None, "leeway_s": 30, "max_token_bytes": 8192,
                     "header_prefix": "x-cephalo-", "api": cp.auth_url},
            "gateway": {"trusted_proxy_hops": 0, "ip_allow": [], "ip_deny": [],
                        "limits": {"max_body_bytes": 10485760, "max_url_bytes": 8192, "max_headers": 100,
                                   "max_header_bytes": 65536},
                        "redis": None, "login_rate_limit": {"rate": 10, "period_s": 60, "burst": 5},
                        "cache": {"max_bytes": 67108864}, "request_id": {"trust_incoming": False},
                        "connections": {"max_per_ip": 0}}}
    body.update(members)
    return body


def db_rows(cp, sql):
    """Reads the CP's database read-only (WAL allows a reader next to the running CP)."""
    con = sqlite3.connect(f"file:{os.path.join(cp.data_dir, 'cephalo.db')}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def seed(admin):
    admin.ok("POST", f"{V1}/systems", {"code": "billing", "name": "Billing"})
    admin.ok("POST", f"{V1}/systems", {"code": "hr", "name": "Human resources"})
    for sysc, name in (("billing", "reader"), ("billing", "admin"), ("hr", "reader")):
        admin.ok("POST", f"{V1}/roles", {"system": sysc, "name": name})
    admin.ok("POST", f"{V1}/groups", {"system": "billing", "name": "ops", "roles": ["reader", "admin"]})


def strip(obj):
    return {k: v for k, v in obj.items() if k not in ("id", "created_at", "updated_at")}


def test_systems_roles_groups_crud(admin, cp):
    out = admin.ok("POST", f"{V1}/systems", {"code": "billing", "name": "Billing", "id": 99, "created_at": "x"},
                   expect=(201,))
    s = out["system"]
    assert strip(s) == {"code": "billing", "name": "Billing"} and s["id"] != 99
    assert admin.ok("GET", f"{V1}/systems/billing") == s
    assert admin.ok("GET", f"{V1}/systems/{s['id']}") == s
    seed_rest = [("hr", "Human resources")]
    for code, name in seed_rest:
        admin.ok("POST", f"{V1}/systems", {"code": code, "name": name})
    assert [x["code"] for x in admin.ok("GET", f"{V1}/systems")["data"]] == ["billing", "hr"]
    r1 = admin.ok("POST", f"{V1}/roles", {"system": "billing", "name": "reader"}, expect=(201,))["role"]
    admin.ok("POST", f"{V1}/roles", {"system": "hr", "name": "reader"}, expect=(201,))  # same name, other system
    assert admin.ok("GET", f"{V1}/roles/billing:reader") == r1
    assert admin.ok("GET", f"{V1}/roles/{r1['id']}") == r1
    err(admin.get(f"{V1}/roles/reader"), 404, "not_found")  # ambiguous without the system
    admin.ok("POST", f"{V1}/roles", {"system": "billing", "name": "admin"})
    g = admin.ok("POST", f"{V1}/groups", {"system": "billing", "name": "ops", "roles": ["reader", "admin"]},
                 expect=(201,))["group"]
    assert strip(g) == {"system": "billing", "name": "ops", "roles": ["admin", "reader"]}
    roles = [(x["system"], x["name"]) for x in admin.ok("GET", f"{V1}/roles")["data"]]
    assert roles == [("billing", "admin"), ("billing", "reader"), ("hr", "reader")]
    # rename the system: everything scoped follows
    admin.ok("PUT", f"{V1}/systems/billing", {"code": "bill", "name": "Billing"}, expect=(200,))
    assert admin.ok("GET", f"{V1}/groups/bill:ops")["id"] == g["id"]
    err(admin.get(f"{V1}/groups/billing:ops"), 404, "not_found")
    # in use -> 409, still there
    err(admin.delete(f"{V1}/systems/bill"), 409, "conflict")
    err(admin.delete(f"{V1}/roles/bill:admin"), 409, "conflict")
    err(admin.put(f"{V1}/roles/bill:admin", {"system": "hr", "name": "admin"}), 409, "conflict", "/system")
    assert admin.get(f"{V1}/roles/bill:admin").status == 200
    # free the role, then delete in order
    admin.ok("PUT", f"{V1}/groups/bill:ops", {"system": "bill", "name": "ops", "roles": ["reader"]}, expect=(200,))
    admin.ok("DELETE", f"{V1}/roles/bill:admin", expect=(200,))
    admin.ok("DELETE", f"{V1}/groups/bill:ops", expect=(200,))
    admin.ok("DELETE", f"{V1}/roles/bill:reader", expect=(200,))
    admin.ok("DELETE", f"{V1}/systems/bill", expect=(200,))
    assert [x["code"] for x in admin.ok("GET", f"{V1}/systems")["data"]] == ["hr"]
    # everything was deleted: the body carries the empty identity sections and the public signing keys (13_jwks.py)
    snap = admin.ok("GET", f"{V1}/snapshot?body=1")
    assert snap["body"] == snapshot_body(admin, cp)


def test_users_password_is_write_only(admin, cp):
    seed(admin)
    body = {"username": "alice", "email": "Alice@Example.com", "password": "correct horse battery",
            "systems": ["billing", "hr"], "roles": [{"system": "hr", "name": "reader"}],
            "groups": [{"system": "billing", "name": "ops"}]}
    r = admin.post(f"{V1}/users", body)
    assert r.status == 201, r
    assert b"password" not in r.body and b"argon2" not in r.body and b"correct horse" not in r.body
    u = r.json()["user"]
    assert strip(u) == {"username": "alice", "email": "Alice@Example.com", "superuser": False, "enabled": True,
                        "systems": ["billing", "hr"], "roles": [{"system": "hr", "name": "reader"}],
                        "groups": [{"system": "billing", "name": "ops"}]}
    assert admin.ok("GET", f"{V1}/users/alice") == u
    listed = admin.get(f"{V1}/users")
    assert b"password" not in listed.body and b"argon2" not in listed.body
    (h1,) = db_rows(cp, "SELECT password_hash FROM users WHERE username = 'alice'")[0]
    assert h1.startswith("$argon2id$v=19$m=65536,t=3,p=1$"), h1
    # PUT without a password keeps the hash; with one, replaces it
    admin.ok("PUT", f"{V1}/users/alice", {"username": "alice", "superuser": True, "enabled": False}, expect=(200,))
    assert db_rows(cp, "SELECT password_hash FROM users WHERE username = 'alice'")[0][0] == h1
    got = admin.ok("GET", f"{V1}/users/alice")
    assert (got["superuser"], got["enabled"], got["email"], got["systems"]) == (True, False, None, [])
    admin.ok("PUT", f"{V1}/users/alice", {"username": "alice", "password": "another long one"}, expect=(200,))
    h2 = db_rows(cp, "SELECT password_hash FROM users WHERE username = 'alice'")[0][0]
    assert h2 != h1 and h2.startswith("$argon2id$")
    # uniqueness is case-insensitive, with the right path
    admin.ok("POST", f"{V1}/users", {"username": "bob", "email": "bob@example.com", "password": "12345678"})
    err(admin.post(f"{V1}/users", {"username": "BOB", "password": "12345678"}), 409, "conflict", "/username")
    err(admin.post(f"{V1}/users", {"username": "carol", "email": "BOB@example.com", "password": "12345678"}),
        409, "conflict", "/email")
    err(admin.put(f"{V1}/users/bob", {"username": "alice"}), 409, "conflict", "/username")
    # a group or role held by a user stays; deleting the user frees them
    admin.ok("PUT", f"{V1}/users/bob", {"username": "bob", "systems": ["billing"],
                                         "groups": [{"system": "billing", "name": "ops"}]}, expect=(200,))
    err(admin.delete(f"{V1}/groups/billing:ops"), 409, "conflict")
    admin.ok("DELETE", f"{V1}/users/bob", expect=(200,))
    admin.ok("DELETE", f"{V1}/groups/billing:ops", expect=(200,))
    err(admin.get(f"{V1}/users/bob"), 404, "not_found")
    # nothing secret in the audit, the logs or the answers
    for before, after in db_rows(cp, "SELECT before, after FROM audit"):
        text = (before or "") + (after or "")
        for secret in ("password", "argon2", "correct horse", "another long one", "12345678"):
            assert secret not in text, (secret, text)
    stderr = cp.proc.stderr_text()
    for secret in ("correct horse", "another long one", "argon2id$"):
        assert secret not in stderr


def test_api_key_shown_once_stored_hashed(admin, cp):
    seed(admin)
    r = admin.post(f"{V1}/api_keys", {"system": "billing", "name": "ci", "roles": ["reader"], "groups": ["ops"],
                                      "expires_at": "2030-01-02T03:04:05+02:00"})
    assert r.status == 201, r
    k = r.json()["api_key"]
    key = k.pop("key")
    m = re.fullmatch(r"([0-9a-f]{10})\.([A-Za-z0-9_-]{43})", key)
    assert m, key
    prefix, secret = m.groups()
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert strip(k) == {"system": "billing", "name": "ci", "prefix": prefix, "roles": ["reader"], "groups": ["ops"],
                        "expires_at": "2030-01-02T01:04:05.000Z", "revoked": False}
    # never again: not on GET, list, PUT, and only the hash is stored
    for path in (f"{V1}/api_keys/billing:ci", f"{V1}/api_keys/{k['id']}", f"{V1}/api_keys"):
        g = admin.get(path)
        assert g.status == 200 and secret.encode() not in g.body and b'"key"' not in g.body, g
    rows = db_rows(cp, "SELECT prefix, secret_sha256 FROM api_keys")
    assert rows == [(prefix, hashlib.sha256(secret.encode()).hexdigest())]
    with open(os.path.join(cp.data_dir, "cephalo.db"), "rb") as f:
        assert secret.encode() not in f.read()
    # revoke with a partial PUT; the key (prefix, hash) does not change
    out = admin.ok("PUT", f"{V1}/api_keys/billing:ci", {"revoked": True}, expect=(200,))
    assert "key" not in out["api_key"]
    assert out["api_key"]["revoked"] is True and out["api_key"]["roles"] == ["reader"]
    assert out["api_key"]["expires_at"] == "2030-01-02T01:04:05.000Z"
    assert db_rows(cp, "SELECT prefix, secret_sha256 FROM api_keys") == rows
    # a GET answer can be PUT back (read-only members ignored)
    back = admin.ok("GET", f"{V1}/api_keys/billing:ci")
    assert admin.ok("PUT", f"{V1}/api_keys/billing:ci", dict(back, expires_at=None), expect=(200,))["api_key"][
        "expires_at"] is None
    err(admin.put(f"{V1}/api_keys/billing:ci", {"roles": ["nope"]}), 400, "unknown_role", "/roles/0")
    err(admin.put(f"{V1}/api_keys/billing:none", {"revoked": True}), 404, "not_found")
    # held roles/groups; delete cascades
    err(admin.delete(f"{V1}/roles/billing:reader"), 409, "conflict")
    admin.ok("DELETE", f"{V1}/api_keys/billing:ci", expect=(200,))
    err(admin.get(f"{V1}/api_keys/billing:ci"), 404, "not_found")
    admin.ok("DELETE", f"{V1}/groups/billing:ops", expect=(200,))
    admin.ok("DELETE", f"{V1}/roles/billing:reader", expect=(200,))
    # two keys never share a secret or a prefix
    keys = [admin.ok("POST", f"{V1}/api_keys", {"system": "hr", "name": f"k{i}"})["api_key"]["key"] for i in range(3)]
    assert len(set(keys)) == 3 and len({x.split(".")[0] for x in keys}) == 3
    for before, after in db_rows(cp, "SELECT before, after FROM audit"):
        text = (before or "") + (after or "")
        assert secret not in text and rows[0][1] not in text and '"key"' not in text
    assert secret not in cp.proc.stderr_text()


LONG = "a" * 65
PW = "long enough"
BAD = [
    # (collection, body, code, path)
    ("systems", {"code": "x", "name": "X", "extra": 1}, "unknown_field", "/extra"),
    ("systems", {"name": "X"}, "missing_field", "/code"),
    ("systems", {"code": "x"}, "missing_field", "/name"),
    ("systems", {"code": 1, "name": "X"}, "invalid", "/code"),
    ("systems", {"code": ["x"], "name": "X"}, "invalid", "/code"),
    ("systems", {"code": "Upper", "name": "X"}, "invalid", "/code"),
    ("systems", {"code": "a.b", "name": "X"}, "invalid", "/code"),
    ("systems", {"code": LONG, "name": "X"}, "invalid", "/code"),
    ("systems", {"code": "x", "name": "n" * 201}, "invalid", "/name"),
    ("systems", {"code": "x", "name": "tab\there"}, "invalid", "/name"),
    ("systems", {"code": "x\u0000y", "name": "X"}, "invalid", "/code"),
    ("systems", {"code": "billing", "name": "dup"}, "conflict", "/code"),
    ("roles", {"system": "billing"}, "missing_field", "/name"),
    ("roles", {"system": "nope", "name": "r"}, "unknown_system", "/system"),
    ("roles", {"system": "billing", "name": "reader"}, "conflict", "/name"),
    ("roles", {"system": "billing", "name": LONG}, "invalid", "/name"),
    ("roles", {"system": "billing", "name": "a/b"}, "invalid", "/name"),
    ("roles", {"system": "billing", "name": True}, "invalid", "/name"),
    ("groups", {"system": "billing", "name": "g", "roles": "reader"}, "invalid", "/roles"),
    ("groups", {"system": "billing", "name": "g", "roles": ["reader", "reader"]}, "duplicate", "/roles/1"),
    ("groups", {"system": "billing", "name": "g", "roles": ["reader", "nope"]}, "unknown_role", "/roles/1"),
    ("groups", {"system": "hr", "name": "g", "roles": ["admin"]}, "unknown_role", "/roles/0"),
    ("groups", {"system": "billing", "name": "g", "roles": [f"r{i}" for i in range(257)]}, "invalid", "/roles"),
    ("groups", {"system": "billing", "name": "ops"}, "conflict", "/name"),
    ("users", {"password": PW}, "missing_field", "/username"),
    ("users", {"username": "u"}, "missing_field", "/password"),
    ("users", {"username": "u", "password": "7chars!"}, "invalid", "/password"),
    ("users", {"username": "u", "password": "p" * 1025}, "invalid", "/password"),
    ("users", {"username": "u", "password": 12345678}, "invalid", "/password"),
    ("users", {"username": "u", "password": "1234\u00005678"}, "invalid", "/password"),
    ("users", {"username": "u", "password": PW, "password_hash": "$argon2id$"}, "unknown_field", "/password_hash"),
    ("users", {"username": "u v", "password": PW}, "invalid", "/username"),
    ("users", {"username": "u" * 129, "password": PW}, "invalid", "/username"),
    ("users", {"username": "u", "email": "nope", "password": PW}, "invalid", "/email"),
    ("users", {"username": "u", "email": "a@b@c", "password": PW}, "invalid", "/email"),
    ("users", {"username": "u", "superuser": 1, "password": PW}, "invalid", "/superuser"),
    ("users", {"username": "u", "enabled": "yes", "password": PW}, "invalid", "/enabled"),
    ("users", {"username": "u", "systems": ["nope"], "password": PW}, "unknown_system", "/systems/0"),
    ("users", {"username": "u", "systems": ["hr", "hr"], "password": PW}, "duplicate", "/systems/1"),
    ("users", {"username": "u", "systems": ["hr"], "roles": ["reader"], "password": PW}, "invalid", "/roles/0"),
    ("users", {"username": "u", "systems": ["hr"], "roles": [{"system": "billing", "name": "reader"}], "password": PW},
     "invalid", "/roles/0/system"),
    ("users", {"username": "u", "systems": ["hr"], "roles": [{"system": "hr", "name": "admin"}], "password": PW},
     "unknown_role", "/roles/0"),
    ("users", {"username": "u", "systems": ["hr"], "roles": [{"system": "hr"}], "password": PW},
     "missing_field", "/roles/0/name"),
    ("users", {"username": "u", "systems": ["hr"], "groups": [{"system": "hr", "name": "ops", "x": 1}],
               "password": PW}, "unknown_field", "/groups/0/x"),
    ("users", {"username": "u", "systems": ["billing"], "groups": [{"system": "billing", "name": "nope"}],
               "password": PW}, "unknown_group", "/groups/0"),
    ("users", {"username": "taken", "password": PW}, "conflict", "/username"),
    ("api_keys", {"system": "billing"}, "missing_field", "/name"),
    ("api_keys", {"system": "nope", "name": "k"}, "unknown_system", "/system"),
    ("api_keys", {"system": "billing", "name": "k", "key": "x.y"}, "unknown_field", "/key"),
    ("api_keys", {"system": "billing", "name": "k", "roles": ["nope"]}, "unknown_role", "/roles/0"),
    ("api_keys", {"system": "billing", "name": "k", "groups": ["ops", "nope"]}, "unknown_group", "/groups/1"),
    ("api_keys", {"system": "billing", "name": "k", "expires_at": "2026-02-30T00:00:00Z"}, "invalid", "/expires_at"),
    ("api_keys", {"system": "billing", "name": "k", "expires_at": "2026-01-01"}, "invalid", "/expires_at"),
    ("api_keys", {"system": "billing", "name": "k", "expires_at": 1}, "invalid", "/expires_at"),
    ("api_keys", {"system": "billing", "name": "k", "revoked": "no"}, "invalid", "/revoked"),
    ("api_keys", {"system": "billing", "name": "taken"}, "conflict", "/name"),
    ("endpoints", {"service": "svc"}, "missing_field", "/path"),
    ("endpoints", {"service": "nope", "path": "/x"}, ("unknown_service",), "/service"),
    ("endpoints", {"service": "svc", "path": "/x", "method": "FETCH"}, "invalid", "/method"),
    ("endpoints", {"service": "svc", "path": "/x", "method": "*", "public": True,
                   "roles": [{"system": "billing", "name": "reader"}]}, "invalid", "/roles"),
    ("endpoints", {"service": "svc", "path": "/x", "roles": ["reader"]}, "invalid", "/roles/0"),
    ("endpoints", {"service": "svc", "path": "/x", "roles": [{"system": "hr", "name": "admin"}]}, "unknown_role",
     "/roles/0"),
    ("endpoints", {"service": "svc", "path": "/x", "groups": [{"system": "nope", "name": "ops"}]}, "unknown_system",
     "/groups/0"),
    ("endpoints", {"service": "svc", "path": "/taken"}, "conflict", "/path"),
    # a NUL anywhere is refused at its path (the admin API's own check, before the entity's)
    ("roles", {"system": "billing", "name": "a\u0000b"}, "invalid", "/name"),
    ("groups", {"system": "billing", "name": "g", "roles": ["reader\u0000"]}, "invalid", "/roles/0"),
    ("users", {"username": "u\u0000", "password": PW}, "invalid", "/username"),
    ("users", {"username": "u", "email": "a@b\u0000.c", "password": PW}, "invalid", "/email"),
    ("users", {"username": "u", "systems": ["hr"], "roles": [{"system": "hr", "name": "\u0000"}], "password": PW},
     "invalid", "/roles/0/name"),
    ("api_keys", {"system": "billing\u0000", "name": "k"}, "invalid", "/system"),
    ("endpoints", {"service": "svc", "path": "/a\u0000"}, "invalid", "/path"),
    ("users", {"username": "u", "email": "a@" + "b" * 253, "password": PW}, "invalid", "/email"),
    ("api_keys", {"system": "billing", "name": "k" * 65}, "invalid", "/name"),
    ("api_keys", {"system": "billing", "name": "k", "expires_at": "2030-01-01T00:00:00Z" + "0" * 100}, "invalid",
     "/expires_at"),
] + [("endpoints", {"service": "svc", "path": p}, "invalid", "/path") for p in (
    "", "x", "/a//b", "/a/../b", "/a/./b", "/a/%2e%2e/b", "/a%2Fb", "/a;b", "/a\\b", "/a\u0001b", "/A%7e", "/a*",
    "/*/b", "/a/{id", "/a/{id}/{id}", "/a/{1}", "/x{id}", "/a?q", "/" + "a" * 1024)]


def test_hostile_input_then_still_up_and_intact(admin, cp):
    seed(admin)
    admin.ok("POST", f"{V1}/users", {"username": "taken", "password": PW})
    admin.ok("POST", f"{V1}/api_keys", {"system": "billing", "name": "taken"})
    admin.ok("POST", f"{V1}/services", {"name": "svc", "targets": [{"url": "http://127.0.0.1:9"}]})
    ep = admin.ok("POST", f"{V1}/endpoints", {"service": "svc", "path": "/taken"})["endpoint"]
    before = {c: admin.ok("GET", f"{V1}/{c}") for c in ("systems", "roles", "groups", "users", "api_keys", "endpoints")}
    version = admin.snapshot()["version"]
    failures = []

    def check(r, status, code, path=None, what=""):
        try:
            err(r, status, code, path)
        except AssertionError as e:
            failures.append(f"{what}: {e}")

    for coll, body, code, path in BAD:
        status = 409 if code == "conflict" else 400
        raw = json.dumps(body).encode()  # json.dumps sends a NUL as the JSON escape for U+0000
        check(admin.request("POST", f"{V1}/{coll}", raw=raw), status, code, path, what=f"POST {coll} {body}")
    # the same bodies on PUT of an existing object (409s aside, conflict needs another name)
    for coll, key, body, code, path in (
            ("systems", "hr", {"code": "billing", "name": "X"}, "conflict", "/code"),
            ("roles", "hr:reader", {"system": "hr", "name": "x y"}, "invalid", "/name"),
            ("groups", "billing:ops", {"system": "billing", "name": "ops", "roles": ["nope"]}, "unknown_role",
             "/roles/0"),
            ("users", "taken", {"username": "taken", "password": "short"}, "invalid", "/password"),
            ("api_keys", "billing:taken", {"revoked": "yes"}, "invalid", "/revoked"),
            ("api_keys", "billing:taken", {"prefix": "ignored", "bogus": 1}, "unknown_field", "/bogus"),
            ("endpoints", str(ep["id"]), {"service": "svc", "path": "/a/../taken"}, "invalid", "/path")):
        check(admin.put(f"{V1}/{coll}/{key}", body), 409 if code == "conflict" else 400, code, path,
              what=f"PUT {coll}/{key} {body}")
    # 404 before the body is looked at, for every collection
    for coll, key in (("systems", "nope"), ("roles", "billing:nope"), ("roles", "nope"), ("groups", "x:y"),
                      ("users", "nobody"), ("api_keys", "billing:nope"), ("api_keys", "999999"),
                      ("endpoints", "999999"), ("endpoints", "svc")):
        for m in ("GET", "PUT", "DELETE"):
            check(admin.request(m, f"{V1}/{coll}/{key}", {"bogus": 1} if m == "PUT" else None), 404, "not_found",
                  what=f"{m} {coll}/{key}")
    # bad JSON, duplicate keys, non-objects, wrong content type, method not allowed
    for coll in ("systems", "roles", "groups", "users", "api_keys", "endpoints"):
        check(admin.request("POST", f"{V1}/{coll}", raw=b'{"name":"a","name":"b"}'), 400, "bad_json",
              what=f"duplicate key {coll}")
        check(admin.request("POST", f"{V1}/{coll}", raw=b"[]"), 400, ("bad_json", "invalid"), what=f"array {coll}")
        check(admin.request("POST", f"{V1}/{coll}", raw=b"{", ), 400, "bad_json", what=f"truncated {coll}")
        check(admin.request("POST", f"{V1}/{coll}", body={}, content_type="text/plain"), 415,
              "unsupported_media_type", what=f"text/plain {coll}")
        check(admin.request("DELETE", f"{V1}/{coll}"), 405, "method_not_allowed", what=f"DELETE {coll}")
        check(admin.request("GET", f"{V1}/{coll}", token="wrong-token-wrong-token"), 401, "unauthorized",
              what=f"bad token {coll}")
    # in use
    check(admin.delete(f"{V1}/systems/billing"), 409, "conflict", what="system in use")
    check(admin.delete(f"{V1}/roles/billing:reader"), 409, "conflict", what="role in use")
    assert not failures, "\n".join(failures)

    assert cp.proc.alive() and cephalo.http_get(cp.admin_port, "/health").status == 200
    assert {c: admin.ok("GET", f"{V1}/{c}") for c in before} == before
    assert admin.snapshot()["version"] == version, "a refused write bumped the version"


def test_endpoint_rules(admin, cp):
    seed(admin)
    admin.ok("POST", f"{V1}/services", {"name": "svc", "targets": [{"url": "http://127.0.0.1:9"}]})
    rule = {"service": "svc", "method": "GET", "path": "/items/{id}",
            "roles": [{"system": "hr", "name": "reader"}, {"system": "billing", "name": "admin"}],
            "groups": [{"system": "billing", "name": "ops"}]}
    e = admin.ok("POST", f"{V1}/endpoints", rule, expect=(201,))["endpoint"]
    assert strip(e) == dict(rule, public=False, shadow=False, rate_limits=None, roles=[{"system": "billing", "name": "admin"},
                                                                     {"system": "hr", "name": "reader"}])
    assert admin.ok("GET", f"{V1}/endpoints/{e['id']}") == e
    for path in ("/", "/*", "/exact", "/v2/", "/prefix/*", "/a/{x}/b/{y}", "/a%20b"):
        admin.ok("POST", f"{V1}/endpoints", {"service": "svc", "path": path}, expect=(201,))
    pub = admin.ok("POST", f"{V1}/endpoints", {"service": "svc", "path": "/exact", "method": "POST", "public": True})
    assert pub["endpoint"]["public"] is True and pub["endpoint"]["method"] == "POST"
    listed = admin.ok("GET", f"{V1}/endpoints")["data"]
    assert [(x["path"], x["method"]) for x in listed] == sorted((x["path"], x["method"]) for x in listed)
    assert len(listed) == 9
    # what a rule lists stays while listed; a rule goes with its service
    err(admin.delete(f"{V1}/roles/hr:reader"), 409, "conflict")
    err(admin.delete(f"{V1}/groups/billing:ops"), 409, "conflict")
    admin.ok("PUT", f"{V1}/endpoints/{e['id']}", dict(rule, roles=[], groups=[]), expect=(200,))
    admin.ok("DELETE", f"{V1}/roles/hr:reader", expect=(200,))
    admin.ok("DELETE", f"{V1}/services/svc", expect=(200,))
    assert admin.ok("GET", f"{V1}/endpoints")["data"] == []
    # the rules went with the service; the group (with its roles) is still in the body
    ops = {"system": "billing", "name": "ops", "roles": ["admin", "reader"]}
    assert admin.ok("GET", f"{V1}/snapshot?body=1")["body"] == snapshot_body(admin, cp, groups=[ops])


def test_parallel_password_hashing(admin):
    """20 users created at once: argon2id runs at most 2 at a time (64 MiB each), every write still succeeds."""
    import threading
    admin.ok("POST", f"{V1}/systems", {"code": "s", "name": "S"})
    results = []
    lock = threading.Lock()

    def create(i):
        r = admin.post(f"{V1}/users", {"username": f"u{i}", "password": f"password-{i}", "systems": ["s"]},
                       timeout=60)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 20 and all(r.status == 201 for r in results), [r for r in results if r.status != 201]
    assert len({r.json()["version"] for r in results}) == 20
    assert sorted(u["username"] for u in admin.ok("GET", f"{V1}/users")["data"]) == sorted(f"u{i}" for i in range(20))


def test_identity_survives_cp_restart(procs, tmpdir_str):
    cp = cephalo.ControlPlane(procs, tmpdir_str).start()
    seed(cp.admin)
    cp.admin.ok("POST", f"{V1}/users", {"username": "alice", "password": PW, "systems": ["billing"],
                                        "groups": [{"system": "billing", "name": "ops"}]})
    cp.admin.ok("POST", f"{V1}/api_keys", {"system": "billing", "name": "ci", "roles": ["reader"]})
    colls = ("systems", "roles", "groups", "users", "api_keys", "endpoints")
    before = {c: cp.admin.ok("GET", f"{V1}/{c}") for c in colls}
    assert cp.proc.stop() == 0
    cp2 = cephalo.ControlPlane(procs, tmpdir_str, name="cp-again", data_dir=cp.data_dir).start()
    assert {c: cp2.admin.ok("GET", f"{V1}/{c}") for c in colls} == before
