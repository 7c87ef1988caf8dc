"""40: admin accounts, password login, session cookie + CSRF, role-carrying admin tokens (issue 8, contract 11 s.1).

A real control plane with CEPHALO_ADMIN_PASSWORD: log in, use the session (CSRF header and Origin enforced on writes),
log out; hostile login and account bodies; accounts CRUD with the last-owner rule and revocation on a password
change; admin tokens shown once, scoped to their creator, revoked; the bootstrap token keeps working; the security
headers on every admin answer; a generated password printed once on a fresh database.
"""
import json
import os
import re
import sqlite3

import pytest

import cephalo

PASSWORD = cephalo.remember_secret("e2e-owner-password-0123")
SEC_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


@pytest.fixture
def cpw(procs, tmpdir_str, monkeypatch):
    """A control plane whose owner account "admin" has PASSWORD."""
    monkeypatch.setenv("CEPHALO_ADMIN_PASSWORD", PASSWORD)
    cp = cephalo.ControlPlane(procs, tmpdir_str).start()
    monkeypatch.delenv("CEPHALO_ADMIN_PASSWORD")
    return cp


def call(cp, method, path, body=None, cookie=None, csrf=None, headers=None, raw=None):
    hdrs = dict(headers or {})
    if cookie is not None:
        hdrs["Cookie"] = f"cephalo_session={cookie}"
    if csrf is not None:
        hdrs["X-CSRF-Token"] = csrf
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    return cephalo.http_request(cp.admin_port, method, path, body=data, headers=hdrs)


def login(cp, name="admin", password=PASSWORD, expect=200, **kw):
    r = call(cp, "POST", "/api/v1/admin/login", {"name": name, "password": password}, **kw)
    assert r.status == expect, r
    if expect != 200:
        return r
    m = re.match(r"cephalo_session=([0-9a-f]{64}); (.*)$", r.headers["set-cookie"])
    assert m, r.headers
    attrs = m.group(2).split("; ")
    assert {"Path=/", "HttpOnly", "SameSite=Strict"} <= set(attrs), attrs
    assert "Secure" not in attrs  # a loopback listener: plain HTTP
    body = r.json()
    assert re.fullmatch(r"[0-9a-f]{64}", body["csrf_token"]), body
    return m.group(1), body


def audit_rows(cp, where):
    db = sqlite3.connect(f"file:{os.path.join(cp.data_dir, 'cephalo.db')}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(f"SELECT actor, action, entity_type, before, after FROM audit WHERE {where}").fetchall()
    finally:
        db.close()


def err(r, status, code):
    assert r.status == status, r
    assert r.json().get("error") == code, r
    low = r.body.decode().lower()
    for leak in ("sqlite", "select ", "constraint", "argon2"):
        assert leak not in low, r


def test_session_login_csrf_logout(cpw):
    cookie, me = login(cpw)
    assert me["name"] == "admin" and me["role"] == "owner" and me["systems"] == []
    csrf = me["csrf_token"]
    r = call(cpw, "GET", "/api/v1/admin/me", cookie=cookie)
    assert r.status == 200, r
    assert r.json() == {"name": "admin", "role": "owner", "systems": [], "via": "session", "csrf_token": csrf}
    for k, v in SEC_HEADERS.items():
        assert r.headers.get(k) == v, r.headers
    assert call(cpw, "GET", "/api/v1/services", cookie=cookie).status == 200
    # writes: the CSRF header must match, and a present Origin must be this host
    body = {"name": "via-session"}
    err(call(cpw, "POST", "/api/v1/admin_tokens", body, cookie=cookie), 403, "csrf")
    err(call(cpw, "POST", "/api/v1/admin_tokens", body, cookie=cookie, csrf="0" * 64), 403, "csrf")
    err(call(cpw, "POST", "/api/v1/admin_tokens", body, cookie=cookie, csrf=csrf[:-1]), 403, "csrf")
    err(call(cpw, "POST", "/api/v1/admin_tokens", body, cookie=cookie, csrf=csrf,
             headers={"Origin": "http://evil.example"}), 403, "csrf")
    err(call(cpw, "DELETE", "/api/v1/admin_tokens/1", cookie=cookie), 403, "csrf")
    host = f"127.0.0.1:{cpw.admin_port}"
    r = call(cpw, "POST", "/api/v1/admin_tokens", body, cookie=cookie, csrf=csrf, headers={"Origin": f"http://{host}"})
    assert r.status == 201, r
    assert r.json()["account"] == "admin"
    # a login from another origin is refused (login CSRF)
    err(call(cpw, "POST", "/api/v1/admin/login", {"name": "admin", "password": PASSWORD},
             headers={"Origin": "http://evil.example"}), 403, "csrf")
    # forged and malformed cookies
    assert call(cpw, "GET", "/api/v1/admin/me", cookie="a" * 64).status == 401
    assert call(cpw, "GET", "/api/v1/admin/me", cookie="' OR 1=1 --").status == 401
    # a bearer token never falls back to the cookie
    assert call(cpw, "GET", "/api/v1/admin/me", cookie=cookie, headers={"Authorization": "Bearer nope"}).status == 401
    # logout: the cookie is expired and the session is gone
    err(call(cpw, "POST", "/api/v1/admin/logout", {}, cookie=cookie), 403, "csrf")
    r = call(cpw, "POST", "/api/v1/admin/logout", {}, cookie=cookie, csrf=csrf)
    assert r.status == 200, r
    assert "Max-Age=0" in r.headers["set-cookie"]
    assert call(cpw, "GET", "/api/v1/admin/me", cookie=cookie).status == 401
    actions = [row[1] for row in audit_rows(cpw, "entity_type = 'admin_session'")]
    assert actions.count("login") == 1 and actions.count("logout") == 1, actions


def test_bootstrap_token_still_owner(cpw):
    r = cpw.admin.get("/api/v1/admin/me")
    assert r.status == 200, r
    assert r.json() == {"name": "admin", "role": "owner", "systems": [], "via": "token"}
    for k, v in SEC_HEADERS.items():
        assert r.headers.get(k) == v
    r = cpw.admin.get("/api/v1/services", token=None)
    assert r.status == 401
    for k, v in SEC_HEADERS.items():
        assert r.headers.get(k) == v
    err(cpw.admin.post("/api/v1/admin/logout", {}), 400, "invalid")  # a token has no session to end


def test_hostile_logins_and_limit(cpw):
    bad = call(cpw, "POST", "/api/v1/admin/login", {"name": "admin", "password": "wrong-password-xyz"})
    err(bad, 401, "invalid_credentials")
    unknown = call(cpw, "POST", "/api/v1/admin/login", {"name": "nobody", "password": "wrong-password-xyz"})
    err(unknown, 401, "invalid_credentials")
    assert bad.body == unknown.body
    err(call(cpw, "POST", "/api/v1/admin/login", {"name": "x'; DROP TABLE admin_accounts;--", "password": "p"}),
        401, "invalid_credentials")
    err(call(cpw, "POST", "/api/v1/admin/login", raw=b'{"name": "admin", "password": '), 400, "bad_json")
    err(call(cpw, "POST", "/api/v1/admin/login", {"name": 1, "password": "x"}), 400, "invalid")
    err(call(cpw, "POST", "/api/v1/admin/login", {"name": "admin", "password": ["x"]}), 400, "invalid")
    err(call(cpw, "POST", "/api/v1/admin/login", {"name": "admin"}), 400, "invalid")
    err(call(cpw, "POST", "/api/v1/admin/login", {"name": "admin", "password": "x" * 2000}), 400, "invalid")
    err(call(cpw, "POST", "/api/v1/admin/login", {"name": "a" * 5000, "password": "x"}), 400, "invalid")
    err(call(cpw, "POST", "/api/v1/admin/login", {"name": "admin", "password": "x", "role": "owner"}), 400,
        "unknown_field")
    assert call(cpw, "GET", "/api/v1/admin/login").status in (401, 405)
    # four more failures for "admin" (five in all; refused bodies do not count) and the right password is refused
    for _ in range(4):
        err(call(cpw, "POST", "/api/v1/admin/login", {"name": "ADMIN", "password": "wrong-password-xyz"}),
            401, "invalid_credentials")
    r = call(cpw, "POST", "/api/v1/admin/login", {"name": "admin", "password": PASSWORD})
    err(r, 429, "too_many_attempts")
    assert int(r.headers["retry-after"]) > 0
    failed = audit_rows(cpw, "action = 'login_failed'")
    assert len(failed) == 7, failed
    for row in failed:
        assert "wrong-password" not in (row[4] or "")


def test_accounts_crud_and_revocation(cpw):
    cpw.admin.ok("POST", "/api/v1/systems", {"code": "shop", "name": "Shop"})
    cpw.admin.ok("POST", "/api/v1/systems", {"code": "blog", "name": "Blog"})
    new = {"name": "ed.itor@example.org", "password": "editor-password-123", "role": "editor", "systems": ["shop"]}
    r = cpw.admin.post("/api/v1/admin_accounts", new)
    assert r.status == 201, r
    acc = r.json()
    assert acc["role"] == "editor" and acc["systems"] == ["shop"] and acc["disabled"] is False
    assert "password" not in r.body.decode() and "argon2" not in r.body.decode()
    err(cpw.admin.post("/api/v1/admin_accounts", new), 409, "conflict")
    hostile = [
        ({**new, "name": "x'; DROP TABLE admin_accounts;--"}, "invalid"),
        ({**new, "name": "<script>alert(1)</script>"}, "invalid"),
        ({**new, "name": "a" * 65}, "invalid"),
        ({**new, "name": ""}, "invalid"),
        ({**new, "name": 7}, "invalid"),
        ({**new, "name": "n1", "password": "short"}, "invalid"),
        ({**new, "name": "n1", "password": "p" * 1025}, "invalid"),
        ({**new, "name": "n1", "password": None}, "invalid"),
        ({**new, "name": "n1", "role": "root"}, "invalid"),
        ({**new, "name": "n1", "systems": ["nope"]}, "invalid"),
        ({**new, "name": "n1", "systems": "shop"}, "invalid"),
        ({**new, "name": "n1", "systems": [1]}, "invalid"),
        ({**new, "name": "n1", "superuser": True}, "unknown_field"),
    ]
    for body, code in hostile:
        err(cpw.admin.post("/api/v1/admin_accounts", body), 400, code)
    items = cpw.admin.ok("GET", "/api/v1/admin_accounts")["data"]
    assert sorted(a["name"] for a in items) == ["admin", "ed.itor@example.org"]
    assert "password_hash" not in json.dumps(items)
    # the editor logs in; a password change ends its session
    cookie, me = login(cpw, "ed.itor@example.org", "editor-password-123")
    assert me["role"] == "editor" and me["systems"] == ["shop"]
    key = f"/api/v1/admin_accounts/{acc['id']}"
    r = cpw.admin.put(key, {"password": "another-password-456", "systems": ["shop", "blog"]})
    assert r.status == 200, r
    assert r.json()["systems"] == ["blog", "shop"]
    assert call(cpw, "GET", "/api/v1/admin/me", cookie=cookie).status == 401
    login(cpw, "ed.itor@example.org", "editor-password-123", expect=401)
    cookie, me = login(cpw, "ed.itor@example.org", "another-password-456")
    # disabling ends it too, and the login fails like a wrong password
    assert cpw.admin.put(key, {"disabled": True}).status == 200
    assert call(cpw, "GET", "/api/v1/admin/me", cookie=cookie).status == 401
    err(call(cpw, "POST", "/api/v1/admin/login", {"name": "ed.itor@example.org", "password": "another-password-456"}),
        401, "invalid_credentials")
    err(cpw.admin.put(key, {"disabled": "yes"}), 400, "invalid")
    err(cpw.admin.put(key, {"name": "renamed"}), 400, "invalid")
    # the last enabled owner stays
    err(cpw.admin.put("/api/v1/admin_accounts/admin", {"role": "viewer"}), 409, "conflict")
    err(cpw.admin.put("/api/v1/admin_accounts/admin", {"disabled": True}), 409, "conflict")
    err(cpw.admin.delete("/api/v1/admin_accounts/admin"), 409, "conflict")
    assert cpw.admin.delete(key).status == 200
    err(cpw.admin.get(key), 404, "not_found")
    err(cpw.admin.get("/api/v1/admin_accounts/nobody"), 404, "not_found")
    rows = audit_rows(cpw, "entity_type = 'admin_account'")
    assert [r[1] for r in rows].count("update") >= 2
    for row in rows:
        for text in (row[3] or "", row[4] or ""):
            assert "argon2" not in text and "password-" not in text, row
    # none of this is configuration: the version did not move
    assert cpw.admin.snapshot()["version"] == cpw.admin.ok("GET", "/api/v1/snapshot")["version"]


def test_tokens_scoped_shown_once_revoked(cpw):
    cpw.admin.ok("POST", "/api/v1/systems", {"code": "shop", "name": "Shop"})
    cpw.admin.ok("POST", "/api/v1/systems", {"code": "blog", "name": "Blog"})
    version = cpw.admin.snapshot()["version"]
    r = cpw.admin.post("/api/v1/admin_tokens", {"name": "ci", "role": "viewer", "expires_in_s": 3600})
    assert r.status == 201, r
    tok = r.json()
    token = cephalo.remember_secret(tok["token"])
    assert tok["prefix"] == token[:8] and tok["role"] == "viewer" and tok["expires_at"] and tok["account"] is None
    viewer = cephalo.Admin(cpw.admin_port, token)
    assert viewer.get("/api/v1/admin/me").json()["role"] == "viewer"
    assert viewer.get("/api/v1/services").status == 200
    listing = cpw.admin.ok("GET", "/api/v1/admin_tokens")["data"]
    assert {t["name"] for t in listing} == {"admin", "ci"}
    assert token not in json.dumps(listing)
    # a token cannot mint a stronger one; the viewer sees only itself
    err(viewer.post("/api/v1/admin_tokens", {"name": "up", "role": "owner"}), 403, "forbidden")
    assert [t["name"] for t in viewer.ok("GET", "/api/v1/admin_tokens")["data"]] == ["ci"]
    err(viewer.get("/api/v1/admin_tokens/1"), 404, "not_found")
    for body, code in [({"name": "a b"}, "invalid"), ({"name": "x", "expires_in_s": 1}, "invalid"),
                       ({"name": "x", "expires_in_s": "1h"}, "invalid"), ({"name": "x", "role": "god"}, "invalid"),
                       ({"name": "x", "systems": ["nope"]}, "invalid"), ({"name": "x", "token": "mine"}, "unknown_field"),
                       ({"name": "ci"}, "conflict")]:
        err(cpw.admin.post("/api/v1/admin_tokens", body), 409 if code == "conflict" else 400, code)
    # an editor session mints tokens within its scope only
    cpw.admin.ok("POST", "/api/v1/admin_accounts", {"name": "ed", "password": "editor-password-123", "role": "editor",
                                                    "systems": ["shop"]})
    cookie, me = login(cpw, "ed", "editor-password-123")
    csrf = me["csrf_token"]
    err(call(cpw, "POST", "/api/v1/admin_tokens", {"name": "ed-blog", "systems": ["blog"]}, cookie=cookie, csrf=csrf),
        403, "forbidden")
    err(call(cpw, "POST", "/api/v1/admin_tokens", {"name": "ed-own", "role": "owner"}, cookie=cookie, csrf=csrf),
        403, "forbidden")
    r = call(cpw, "POST", "/api/v1/admin_tokens", {"name": "ed-tok"}, cookie=cookie, csrf=csrf)
    assert r.status == 201, r
    ed_tok = r.json()
    cephalo.remember_secret(ed_tok["token"])
    assert ed_tok["role"] == "editor" and ed_tok["systems"] == ["shop"] and ed_tok["account"] == "ed"
    me = cephalo.Admin(cpw.admin_port, ed_tok["token"]).ok("GET", "/api/v1/admin/me")
    assert me == {"name": "ed", "role": "editor", "systems": ["shop"], "via": "token"}
    # revocation: by its owner, by an owner; a demotion revokes the account's tokens
    r = call(cpw, "DELETE", f"/api/v1/admin_tokens/{tok['id']}", cookie=cookie, csrf=csrf)
    err(r, 404, "not_found")  # not ed's
    assert cpw.admin.delete(f"/api/v1/admin_tokens/{tok['id']}").status == 200
    assert viewer.get("/api/v1/services").status == 401
    cpw.admin.ok("PUT", "/api/v1/admin_accounts/ed", {"role": "viewer"})
    assert cephalo.Admin(cpw.admin_port, ed_tok["token"]).get("/api/v1/services").status == 401
    assert {row[1] for row in audit_rows(cpw, "entity_type = 'admin_token'")} == {"create", "delete"}
    for row in audit_rows(cpw, "entity_type = 'admin_token'"):
        assert token not in (row[4] or "") and ed_tok["token"] not in (row[4] or "")
    assert cpw.admin.snapshot()["version"] == version


def test_generated_password_printed_once(procs, tmpdir_str):
    cp = cephalo.ControlPlane(procs, tmpdir_str).start()
    with open(cp.proc.stdout_path) as f:
        m = re.search(r"admin password: ([0-9a-f]{24})\n", f.read())
    assert m, "no generated admin password printed"
    cookie, me = login(cp, "admin", m.group(1))
    assert me["role"] == "owner"


def test_page_and_unknown_paths(cpw):
    r = cephalo.http_get(cpw.admin_port, "/")
    assert r.status in (200, 404), r  # the page when admin-ui/ exists
    r = cephalo.http_get(cpw.admin_port, "/api/v1/nope", headers={"Authorization": f"Bearer {cpw.token}"})
    err(r, 404, "not_found")
    assert cephalo.http_get(cpw.admin_port, "/health").status == 200
