"""41: admin RBAC through the real admin API (issue 8, contract 11 section 2; controlplane/rbac.c).

A control plane with an owner token, two systems (sa, sb), objects in each and in none; an editor account scoped to
sa and a viewer account, each used through a session (cookie + X-CSRF-Token) and through an admin token the owner
minted with that role. Every routed (resource, method) is called by every role: writes carry a body that the handler
would refuse AFTER the permission check (a bad name), so a 403 can only come from RBAC and nothing is changed by the
walk. Then real editor writes land in its system, moving an object into or out of scope is refused without a trace,
scope follows the objects an owner moves, and a changed account scope takes effect.
"""
import json
import os
import sqlite3

import pytest

import cephalo

V1 = "/api/v1"
OWNER_PW = cephalo.remember_secret("e2e-rbac-owner-password-41")
ED_PW = cephalo.remember_secret("e2e-rbac-editor-password-41")
VW_PW = cephalo.remember_secret("e2e-rbac-viewer-password-41")
TARGETS = [{"url": "http://127.0.0.1:9"}]


class Session:
    """A logged-in admin account: the session cookie, and the CSRF token on every write (as the page sends them)."""

    def __init__(self, cp, name, password):
        self.port = cp.admin_port
        r = self.request("POST", f"{V1}/admin/login", {"name": name, "password": password}, auth=False)
        assert r.status == 200, r
        self.cookie = r.headers["set-cookie"].split(";")[0]
        self.csrf = r.json()["csrf_token"]
        self.me = r.json()

    def request(self, method, path, body=None, auth=True):
        hdrs = {}
        if auth:
            hdrs["Cookie"] = self.cookie
            if method != "GET":
                hdrs["X-CSRF-Token"] = self.csrf
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        return cephalo.http_request(self.port, method, path, body=data, headers=hdrs)


@pytest.fixture
def world(procs, tmpdir_str, monkeypatch):
    """The control plane, its objects and the five callers: owner token, editor (sa) and viewer by session and token."""
    monkeypatch.setenv("CEPHALO_ADMIN_PASSWORD", OWNER_PW)
    cp = cephalo.ControlPlane(procs, tmpdir_str).start()
    monkeypatch.delenv("CEPHALO_ADMIN_PASSWORD")
    o = cp.admin
    for code in ("sa", "sb"):
        o.ok("POST", f"{V1}/systems", {"code": code, "name": code.upper()})
        o.ok("POST", f"{V1}/services", {"name": f"svc-{code[1]}", "targets": TARGETS, "system": code})
        o.ok("POST", f"{V1}/routes", {"name": f"r-{code[1]}", "service": f"svc-{code[1]}", "paths": [f"/{code}"]})
        o.ok("POST", f"{V1}/roles", {"system": code, "name": "reader"})
        o.ok("POST", f"{V1}/groups", {"system": code, "name": "staff", "roles": ["reader"]})
        o.ok("POST", f"{V1}/api_keys", {"system": code, "name": "k"})
        o.ok("POST", f"{V1}/users", {"username": f"u{code[1]}", "password": "user-password-1", "systems": [code]})
        o.ok("POST", f"{V1}/issuers", {"name": f"iss-{code[1]}", "issuer": f"https://{code}.example",
                                       "jwks_url": "http://127.0.0.1:9/jwks", "system": code})
    o.ok("POST", f"{V1}/services", {"name": "svc-none", "targets": TARGETS})
    o.ok("POST", f"{V1}/routes", {"name": "r-none", "service": "svc-none", "paths": ["/none"]})
    ep = {}
    for s in ("a", "b"):
        rule = {"service": f"svc-{s}", "method": "GET", "path": f"/{s}"}
        ep[s] = o.ok("POST", f"{V1}/endpoints", rule)["endpoint"]["id"]
    o.ok("POST", f"{V1}/admin_accounts", {"name": "ed", "password": ED_PW, "role": "editor", "systems": ["sa"]})
    o.ok("POST", f"{V1}/admin_accounts", {"name": "vw", "password": VW_PW, "role": "viewer"})
    tokens = {}
    for name, role, systems in (("ed-tok", "editor", ["sa"]), ("vw-tok", "viewer", [])):
        r = o.post(f"{V1}/admin_tokens", {"name": name, "role": role, "systems": systems})
        assert r.status == 201, r
        tokens[name] = cephalo.Admin(cp.admin_port, cephalo.remember_secret(r.json()["token"]))
    return {
        "cp": cp, "ep": ep,
        "callers": {
            "owner": ("owner", o),
            "editor-token": ("editor", tokens["ed-tok"]),
            "editor-session": ("editor", Session(cp, "ed", ED_PW)),
            "viewer-token": ("viewer", tokens["vw-tok"]),
            "viewer-session": ("viewer", Session(cp, "vw", VW_PW)),
        },
    }


def forbidden(r, needs=None):
    assert r.status == 403, r
    body = r.json()
    assert body["error"] == "forbidden", r
    assert body["message"], r
    if needs is not None:
        assert needs in body["message"], r
    low = r.body.decode().lower()
    for leak in ("sqlite", "select ", "password", "hash"):
        assert leak not in low, r


# (method, path, body, rule): rule "any" and "view" pass for everyone; "in" is a write within sa (editor yes, viewer
# no); "out" touches sb or no system (owner only); "owner" is the owner's. Bodies of writes fail validation after the
# check (a bad name), so no call of the walk changes anything.
def calls(ep):
    bad = "bad name"
    c = [("GET", f"{V1}/{r}", None, "view") for r in (
        "services", "routes", "systems", "roles", "groups", "users", "endpoints", "api_keys", "issuers", "dataplanes",
        "snapshot", "signing_keys", "jwks", "health", "integrations", "audit", "snapshots", "openapi.json")]
    c += [("GET", f"{V1}/{p}", None, "view") for p in (
        "services/svc-a", "routes/r-b", "systems/sb", "roles/sb:reader", "groups/sa:staff", "users/ub",
        f"endpoints/{ep['b']}", "api_keys/sb:k", "issuers/nope", "signing_keys/nope", "authz/shadow", "health/services",
        "integrations/vault", "integrations/consul", "audit/1", "snapshots/1", "snapshots/1/diff")]
    c += [
        ("GET", f"{V1}/admin/me", None, "any"),
        ("GET", f"{V1}/admin_tokens", None, "any"),
        ("GET", f"{V1}/admin_tokens/999999", None, "any"),
        ("POST", f"{V1}/admin_tokens", {"name": bad}, "any"),
        ("DELETE", f"{V1}/admin_tokens/999999", None, "any"),
        ("POST", f"{V1}/authz/explain", {"method": "GET", "path": "/sa"}, "view"),
        ("GET", f"{V1}/admin_accounts", None, "owner"),
        ("GET", f"{V1}/admin_accounts/ed", None, "owner"),
        ("POST", f"{V1}/admin_accounts", {"name": bad}, "owner"),
        ("PUT", f"{V1}/admin_accounts/nobody", {"role": "viewer"}, "owner"),
        ("DELETE", f"{V1}/admin_accounts/nobody", None, "owner"),
        ("GET", f"{V1}/integrations/vault/paths", None, "owner"),
        ("POST", f"{V1}/signing_keys/rotate", {"alg": "HS256"}, "owner"),
        ("POST", f"{V1}/snapshots/999999/rollback", {}, "owner"),
        ("POST", f"{V1}/systems", {"code": "BAD", "name": "x"}, "owner"),
        ("DELETE", f"{V1}/systems/sb", None, "owner"),  # 409 for the owner: used by services
        ("PUT", f"{V1}/systems/sa", {"code": "BAD", "name": "A"}, "in"),
        ("PUT", f"{V1}/systems/sb", {"code": "BAD", "name": "B"}, "out"),
        ("POST", f"{V1}/services", {"name": bad, "targets": TARGETS, "system": "sa"}, "in"),
        ("POST", f"{V1}/services", {"name": bad, "targets": TARGETS, "system": "sb"}, "out"),
        ("POST", f"{V1}/services", {"name": bad, "targets": TARGETS}, "out"),
        ("PUT", f"{V1}/services/svc-a", {"name": bad, "targets": TARGETS, "system": "sa"}, "in"),
        ("PUT", f"{V1}/services/svc-a", {"name": bad, "targets": TARGETS, "system": "sb"}, "out"),  # out of scope
        ("PUT", f"{V1}/services/svc-b", {"name": bad, "targets": TARGETS, "system": "sa"}, "out"),  # into scope
        ("DELETE", f"{V1}/services/svc-a", None, "in"),  # 409: routes use it
        ("DELETE", f"{V1}/services/svc-b", None, "out"),
        ("DELETE", f"{V1}/services/svc-none", None, "out"),
        ("POST", f"{V1}/routes", {"name": bad, "service": "svc-a", "paths": ["/x"]}, "in"),
        ("POST", f"{V1}/routes", {"name": bad, "service": "svc-b", "paths": ["/x"]}, "out"),
        ("PUT", f"{V1}/routes/r-a", {"name": bad, "service": "svc-a", "paths": ["/x"]}, "in"),
        ("PUT", f"{V1}/routes/r-a", {"name": bad, "service": "svc-none", "paths": ["/x"]}, "out"),
        ("PUT", f"{V1}/routes/r-b", {"name": bad, "service": "svc-a", "paths": ["/x"]}, "out"),
        ("DELETE", f"{V1}/routes/r-b", None, "out"),
        ("POST", f"{V1}/endpoints", {"service": "svc-a", "method": "GET", "path": "bad"}, "in"),
        ("POST", f"{V1}/endpoints", {"service": "svc-b", "method": "GET", "path": "bad"}, "out"),
        ("PUT", f"{V1}/endpoints/{ep['a']}", {"service": "svc-a", "method": "GET", "path": "bad"}, "in"),
        ("DELETE", f"{V1}/endpoints/{ep['b']}", None, "out"),
        ("POST", f"{V1}/roles", {"system": "sa", "name": bad}, "in"),
        ("POST", f"{V1}/roles", {"system": "sb", "name": bad}, "out"),
        ("PUT", f"{V1}/roles/sa:reader", {"system": "sb", "name": "reader"}, "out"),
        ("DELETE", f"{V1}/roles/sb:reader", None, "out"),
        ("POST", f"{V1}/groups", {"system": "sa", "name": bad}, "in"),
        ("PUT", f"{V1}/groups/sb:staff", {"system": "sb", "name": bad}, "out"),
        ("DELETE", f"{V1}/groups/sb:staff", None, "out"),
        ("POST", f"{V1}/api_keys", {"system": "sa", "name": bad}, "in"),
        ("PUT", f"{V1}/api_keys/sa:k", {"revoked": "yes"}, "in"),
        ("PUT", f"{V1}/api_keys/sb:k", {"revoked": "yes"}, "out"),
        ("DELETE", f"{V1}/api_keys/sb:k", None, "out"),
        ("POST", f"{V1}/issuers", {"name": bad, "system": "sa"}, "in"),
        ("POST", f"{V1}/issuers", {"name": bad, "system": "sb"}, "out"),
        ("PUT", f"{V1}/issuers/iss-a", {"name": bad, "system": "sa"}, "in"),
        ("PUT", f"{V1}/issuers/iss-b", {"name": bad, "system": "sa"}, "out"),
        ("DELETE", f"{V1}/issuers/iss-b", None, "out"),
        ("POST", f"{V1}/users", {"username": bad, "systems": ["sa"]}, "in"),
        ("POST", f"{V1}/users", {"username": bad, "systems": ["sa", "sb"]}, "out"),
        ("POST", f"{V1}/users", {"username": bad, "systems": ["sa"], "superuser": True}, "out"),
        ("PUT", f"{V1}/users/ua", {"username": bad, "systems": ["sa"]}, "in"),
        ("PUT", f"{V1}/users/ub", {"username": bad, "systems": ["sa"]}, "out"),
        ("DELETE", f"{V1}/users/ub", None, "out"),
        ("POST", f"{V1}/cache/purge", {"route": "r-a", "prefix": "bad"}, "in"),
        ("POST", f"{V1}/cache/purge", {"route": "r-b"}, "out"),
        ("POST", f"{V1}/cache/purge", {"route": "r-none"}, "out"),
    ]
    return c


ALLOWED = {"owner": {"any", "view", "in", "out", "owner"}, "editor": {"any", "view", "in"}, "viewer": {"any", "view"}}


def test_every_route_by_every_role(world):
    """403 forbidden exactly where the role may not; the walk changes nothing (same version, same objects)."""
    owner = world["callers"]["owner"][1]
    version = owner.snapshot()["version"]
    before = {p: owner.ok("GET", f"{V1}/{p}")["data"] for p in ("services", "routes", "users", "roles", "api_keys")}
    for who, (role, client) in world["callers"].items():
        for method, path, body, rule in calls(world["ep"]):
            if role == "owner" and method == "DELETE":
                path = path.rsplit("/", 1)[0] + "/999999"  # an owner's delete would succeed: aim it at nothing
            r = client.request(method, path, body)
            what = f"{who} {method} {path} {json.dumps(body)}"
            if rule in ALLOWED[role]:
                assert r.status != 403 and r.status != 401, f"{what}: {r}"
                assert r.status < 500 or r.status in (501, 503), f"{what}: {r}"
            else:
                try:
                    forbidden(r)
                except AssertionError as e:
                    raise AssertionError(f"{what}: {e}") from None
                msg = r.json()["message"]
                says = ("owner", "editor") if role == "viewer" else ("owner", "is not in your scope")
                assert any(s in msg for s in says), f"{what}: {msg}"
    assert owner.snapshot()["version"] == version
    after = {p: owner.ok("GET", f"{V1}/{p}")["data"] for p in ("services", "routes", "users", "roles", "api_keys")}
    assert after == before


def test_messages_name_the_role_or_system(world):
    c = world["callers"]
    forbidden(c["viewer-token"][1].post(f"{V1}/roles", {"system": "sa", "name": "x"}), "editor")
    forbidden(c["editor-token"][1].post(f"{V1}/systems", {"code": "sc", "name": "C"}), "owner")
    forbidden(c["editor-session"][1].request("GET", f"{V1}/admin_accounts"), "owner")
    r = c["editor-token"][1].post(f"{V1}/services", {"name": "n", "targets": TARGETS, "system": "sb"})
    forbidden(r, "system sb is not in your scope")
    assert r.json().get("path") == "/system", r
    r = c["editor-session"][1].request("DELETE", f"{V1}/services/svc-none")
    forbidden(r, "owner")
    r = c["editor-token"][1].post(f"{V1}/users", {"username": "n", "password": "user-password-1", "systems": ["sa"],
                                                   "superuser": True})
    forbidden(r, "owner")
    # an unknown system or service is the 400 the handler would give, not a 403 that hides a typo
    r = c["editor-token"][1].post(f"{V1}/roles", {"system": "nope", "name": "x"})
    assert r.status == 400 and r.json()["error"] == "unknown_system", r


def test_editor_writes_in_scope_and_moves(world):
    cp, c = world["cp"], world["callers"]
    owner, ed_tok, ed_sess = c["owner"][1], c["editor-token"][1], c["editor-session"][1]
    # real writes in sa, through the token and the session; the audit names who
    r = ed_tok.post(f"{V1}/services?wait=applied", {"name": "svc-a2", "targets": TARGETS, "system": "sa"})
    assert r.status == 201, r
    r = ed_sess.request("PUT", f"{V1}/services/svc-a2", {"name": "svc-a2", "targets": TARGETS, "system": "sa",
                                                           "timeout_ms": 1234})
    assert r.status == 200 and r.json()["service"]["timeout_ms"] == 1234, r
    r = ed_sess.request("POST", f"{V1}/routes", {"name": "r-a2", "service": "svc-a2", "paths": ["/a2"]})
    assert r.status == 201, r
    r = ed_tok.post(f"{V1}/users", {"username": "ua2", "password": "user-password-1", "systems": ["sa"],
                                    "roles": [{"system": "sa", "name": "reader"}]})
    assert r.status == 201, r
    r = ed_sess.request("POST", f"{V1}/cache/purge", {"route": "r-a2"})
    assert r.status == 202, r
    actors = set(audit_items(cp, owner))
    assert {"token:ed-tok", "account:ed"} <= actors, actors
    # moving its own object out of scope: refused, nothing changed, no version
    version = owner.snapshot()["version"]
    forbidden(ed_tok.put(f"{V1}/services/svc-a2", {"name": "svc-a2", "targets": TARGETS, "system": "sb"}),
              "system sb is not in your scope")
    forbidden(ed_sess.request("PUT", f"{V1}/services/svc-a2", {"name": "svc-a2", "targets": TARGETS}), "owner")
    forbidden(ed_tok.put(f"{V1}/users/ua2", {"username": "ua2", "systems": ["sa", "sb"]}), "system sb")
    assert owner.ok("GET", f"{V1}/services/svc-a2")["system"] == "sa"
    assert owner.snapshot()["version"] == version
    # an owner moves svc-b into sa: it is the editor's now; and svc-a2 out to sb: no longer
    owner.ok("PUT", f"{V1}/services/svc-b", {"name": "svc-b", "targets": TARGETS, "system": "sa"})
    owner.ok("PUT", f"{V1}/services/svc-a2", {"name": "svc-a2", "targets": TARGETS, "system": "sb"})
    r = ed_tok.put(f"{V1}/routes/r-b", {"name": "r-b", "service": "svc-b", "paths": ["/sb", "/sb2"]})
    assert r.status == 200, r
    forbidden(ed_sess.request("DELETE", f"{V1}/routes/r-a2"), "system sb is not in your scope")
    forbidden(ed_tok.delete(f"{V1}/services/svc-a2"), "system sb")
    # a service's Vault credentials are the owner's
    forbidden(ed_tok.put(f"{V1}/services/svc-b", {"name": "svc-b", "targets": TARGETS, "system": "sa", "credentials": {
        "vault_path": "other/secret", "headers": {"x-key": "{{k}}"}}}), "owner")


def test_account_scope_change_takes_effect(world):
    cp, c = world["cp"], world["callers"]
    owner = c["owner"][1]
    body = {"name": "svc-b", "targets": TARGETS, "system": "sb", "timeout_ms": 777}
    forbidden(Session(cp, "ed", ED_PW).request("PUT", f"{V1}/services/svc-b", body), "system sb")
    owner.ok("PUT", f"{V1}/admin_accounts/ed", {"systems": ["sa", "sb"]})
    r = Session(cp, "ed", ED_PW).request("PUT", f"{V1}/services/svc-b", body)
    assert r.status == 200 and r.json()["service"]["timeout_ms"] == 777, r
    owner.ok("PUT", f"{V1}/admin_accounts/ed", {"systems": []})
    forbidden(Session(cp, "ed", ED_PW).request("PUT", f"{V1}/services/svc-a", {
        "name": "svc-a", "targets": TARGETS, "system": "sa"}), "system sa")
    # a viewer session's well-formed write (CSRF and all) is refused by the role, not by CSRF
    vw = c["viewer-session"][1]
    forbidden(vw.request("POST", f"{V1}/roles", {"system": "sa", "name": "x"}), "editor")
    # logging out is anybody's (POST /admin/logout: ANY), and ends only that session
    assert vw.request("POST", f"{V1}/admin/logout", {}).status == 200
    assert vw.request("GET", f"{V1}/admin/me").status == 401
    assert c["viewer-token"][1].get(f"{V1}/admin/me").status == 200


def audit_items(cp, owner):
    """The audit rows' actors: through GET /api/v1/audit, or from the table while that API is not there."""
    r = owner.get(f"{V1}/audit?limit=500")
    if r.status == 200:
        return [row["actor"] for row in r.json()["items"]]
    db = sqlite3.connect(f"file:{os.path.join(cp.data_dir, 'cephalo.db')}?mode=ro", uri=True, timeout=5)
    try:
        return [row[0] for row in db.execute("SELECT actor FROM audit")]
    finally:
        db.close()
