"""46: SQL metacharacters through the admin API - every value is a bound parameter, so what is accepted is stored and
returned byte for byte, lookups by a hostile key find nothing, and the database is whole afterwards.

Free-text fields (a system's name, a user's email, a route's path, an admin account's password) take the payloads;
fields with a strict pattern (codes, names) refuse them with a JSON 400 and nothing stored.
"""
import os
import sqlite3
import urllib.parse

import pytest

PAYLOADS = [
    "x'); DROP TABLE systems; --",
    "' OR '1'='1",
    "\" OR \"\"=\"",
    "100%_match\\",
    "a;b;c -- comment",
    "Robert'); DELETE FROM audit; --",
    "unicode \u00e9\u4e2d\u2603 '--",
    "`backtick` $(id) ${x}",
]


def tables(cp):
    with sqlite3.connect(f"file:{os.path.join(cp.data_dir, 'cephalo.db')}?mode=ro", uri=True) as con:
        names = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        audit = con.execute("SELECT count(*) FROM audit").fetchone()[0]
    return names, ok, audit


@pytest.mark.parametrize("i", range(len(PAYLOADS)))
def test_free_text_is_stored_literally(cp, i):
    admin = cp.admin
    before, _, audit_before = tables(cp)
    payload = PAYLOADS[i]
    code = f"s{i}"
    r = admin.request("POST", "/api/v1/systems", {"code": code, "name": payload})
    assert r.status == 201, r
    assert admin.get(f"/api/v1/systems/{code}").json()["name"] == payload
    # a second object: nothing was dropped or rewritten
    assert admin.request("POST", "/api/v1/systems", {"code": f"t{i}", "name": "plain"}).status == 201
    names = {s["code"]: s["name"] for s in admin.get("/api/v1/systems").json()["data"]}
    assert names[code] == payload and names[f"t{i}"] == "plain", names
    # an email with the quote characters an address may carry
    email = f"o'b{i}+x%y@example.com"
    r = admin.request("POST", "/api/v1/users", {"username": f"u{i}", "email": email, "password": "correct-horse-battery",
                                                "systems": [code]})
    assert r.status == 201, r
    assert admin.get(f"/api/v1/users/u{i}").json()["email"] == email
    after, ok, audit_after = tables(cp)
    assert after == before and ok == "ok", (before, after, ok)
    assert audit_after == audit_before + 3  # every write audited, no row lost


@pytest.mark.parametrize("payload", PAYLOADS)
def test_patterned_fields_refuse_them(cp, payload):
    admin = cp.admin
    for path, body, member in [("/api/v1/systems", {"code": payload, "name": "n"}, "/code"),
                               ("/api/v1/services", {"name": payload, "targets": []}, "/name"),
                               ("/api/v1/users", {"username": payload, "password": "correct-horse-battery"}, "/username")]:
        r = admin.request("POST", path, body)
        assert r.status == 400, (path, r)
        err = r.json()
        assert err["error"] == "invalid" and err.get("path") == member, (path, err)
        assert "sqlite" not in r.body.decode().lower() and "SELECT" not in r.body.decode(), r.body


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_lookup_keys_find_nothing(cp, payload):
    admin = cp.admin
    admin.apply("POST", "/api/v1/services", {"name": "real", "targets": []})
    key = urllib.parse.quote(payload, safe="")
    for res in ("services", "routes", "systems", "roles", "groups", "users", "endpoints", "api_keys", "issuers",
                "admin_accounts", "admin_tokens", "audit", "snapshots"):
        r = admin.request("GET", f"/api/v1/{res}/{key}")
        assert r.status in (400, 404), (res, payload, r)
        assert r.json()["error"] in ("not_found", "invalid"), (res, r.json())
        r = admin.request("DELETE", f"/api/v1/{res}/{key}")
        assert r.status in (400, 404, 405), (res, payload, r)
    assert [s["name"] for s in admin.get("/api/v1/services").json()["data"]] == ["real"]
    assert tables(cp)[1] == "ok"
