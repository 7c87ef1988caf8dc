"""42: the audit log API, the snapshot history (list, one version, diff), and rollback (issue 8, contract 11 s.3).

A real control plane and data plane: routes are added and deleted, a rollback brings the old rows back and the data
plane serves the old behaviour again (the deleted route answers, the added one no longer does) with the old
version's hash; a revoked API key stays revoked after a rollback to before its revocation; the 409 cases (a user
holding a role the old version lacks, a version stored without state); and hostile query parameters - negative, huge
and non-numeric versions and limits, SQL metacharacters in the audit filters - are 400s or match nothing, never an
error of the database.
"""
import os
import sqlite3
import urllib.parse

import pytest

import cephalo

V1 = "/api/v1"


def err(r, status, code=None):
    assert r.status == status, r
    body = r.json()
    if code is not None:
        assert body.get("error") == code, body
    low = r.body.decode().lower()
    for leak in ("sqlite", "select ", "syntax", "constraint"):
        assert leak not in low, r
    return body


def version(admin):
    return admin.snapshot()["version"]


def rollback(admin, v, expect=200):
    r = admin.post(f"{V1}/snapshots/{v}/rollback?wait=applied", {})
    assert r.status == expect, r
    return r.json()


@pytest.fixture
def site(cp, dp, pyup):
    """Service "svc" on the echo upstream and a public route "a" (/a); returns the version of that state."""
    a = cp.admin
    a.ok("POST", f"{V1}/services", {"name": "svc", "targets": [{"url": pyup.url}]})
    return a.apply("POST", f"{V1}/routes", {"name": "a", "service": "svc", "paths": ["/a"], "strip_prefix": True,
                                            "default_access": "public"})["version"]


def test_rollback_dp_follows(cp, dp, site):
    a = cp.admin
    v1 = site
    assert dp.get("/a/x").status == 200
    a.apply("POST", f"{V1}/routes", {"name": "b", "service": "svc", "paths": ["/b"], "strip_prefix": True,
                                     "default_access": "public"})
    v2 = version(a)
    a.apply("DELETE", f"{V1}/routes/a")
    assert dp.get("/a/x").status == 404 and dp.get("/b/x").status == 200

    out = rollback(a, v1)
    assert out["rolled_back_to"] == v1 and out["version"] == v2 + 2, out
    assert out["applied"]["settled"] is True, out
    assert out["same_body"] is True, out
    old = a.ok("GET", f"{V1}/snapshots/{v1}", expect=(200,))
    assert out["hash"] == old["hash"] and old["restorable"] is True, (out, old)
    assert [r["name"] for r in old["body"]["routes"]] == ["a"], old
    # the data plane serves version v1's behaviour again
    assert dp.get("/a/x").status == 200
    assert dp.get("/b/x").status == 404
    # and the rows are back: the next write builds from them
    assert [r["name"] for r in a.ok("GET", f"{V1}/routes", expect=(200,))["data"]] == ["a"]
    a.apply("POST", f"{V1}/routes", {"name": "c", "service": "svc", "paths": ["/c"], "default_access": "public"})
    assert dp.get("/a/x").status == 200 and dp.get("/c").status == 200

    # the history, newest first, with summaries
    hist = a.ok("GET", f"{V1}/snapshots?limit=3", expect=(200,))
    vs = [i["version"] for i in hist["items"]]
    assert vs == sorted(vs, reverse=True) and len(vs) == 3 and hist["next"] == vs[-1], hist
    assert hist["items"][0]["summary"] == "create route c", hist
    assert hist["items"][1]["summary"] == f"rollback to version {v1}", hist
    assert hist["items"][2]["summary"] == "delete route a", hist
    assert set(hist["items"][0]) >= {"version", "hash", "author", "created_at", "summary", "restorable"}
    page2 = a.ok("GET", f"{V1}/snapshots?limit=500&before={hist['next']}", expect=(200,))
    assert page2["items"][0]["version"] == vs[-1] - 1 and page2["next"] is None, page2

    # the diff of any two: one added route is one change, at its index in "to"
    d = a.ok("GET", f"{V1}/snapshots/{v1}/diff?to={v2}", expect=(200,))
    assert d["from"] == v1 and d["to"] == v2
    assert [(c["op"], c["path"]) for c in d["changes"]] == [("add", "/routes/1")], d
    assert d["changes"][0]["to"]["name"] == "b"
    back = a.ok("GET", f"{V1}/snapshots/{v2}/diff", expect=(200,))  # to the current version
    assert back["to"] == version(a) and ("add", "/routes/2") not in [(c["op"], c["path"]) for c in back["changes"]]

    # the audit log: the rollback, filtered, with its diff
    au = a.ok("GET", f"{V1}/audit?action=rollback", expect=(200,))
    assert len(au["items"]) == 1, au
    row = au["items"][0]
    assert row["entity_type"] == "snapshot" and row["entity_id"] == str(v1) and row["actor"] == "token:admin", row
    assert a.ok("GET", f"{V1}/audit/{row['id']}", expect=(200,)) == row
    upd = a.ok("GET", f"{V1}/audit?entity_type=route&action=delete", expect=(200,))["items"]
    assert len(upd) == 1 and upd[0]["before"]["name"] == "a" and upd[0]["after"] is None, upd
    assert {"op": "remove", "path": "/name", "from": "a"} in upd[0]["changes"], upd


def test_rollback_endpoint_permission(cp, dp, pyup):
    """An endpoint made restricted, then rolled back: the data plane lets anonymous callers in again."""
    a = cp.admin
    a.ok("POST", f"{V1}/systems", {"code": "s", "name": "S"})
    a.ok("POST", f"{V1}/roles", {"system": "s", "name": "reader"})
    a.ok("POST", f"{V1}/services", {"name": "svc", "system": "s", "targets": [{"url": pyup.url}]})
    a.ok("POST", f"{V1}/routes", {"name": "r", "service": "svc", "paths": ["/r"], "strip_prefix": True})
    rule = a.apply("POST", f"{V1}/endpoints", {"service": "svc", "method": "GET", "path": "/doc", "public": True})
    v_public = rule["version"]
    assert dp.get("/r/doc").status == 200
    a.apply("PUT", f"{V1}/endpoints/{rule['endpoint']['id']}",
            {"service": "svc", "method": "GET", "path": "/doc", "roles": [{"system": "s", "name": "reader"}]})
    assert dp.get("/r/doc").status == 401
    out = rollback(a, v_public)
    assert out["same_body"] is True, out
    assert dp.get("/r/doc").status == 200
    got = a.ok("GET", f"{V1}/endpoints/{rule['endpoint']['id']}", expect=(200,))
    assert got["public"] is True and got["roles"] == [], got


def test_revoked_key_stays_revoked(cp, dp, pyup):
    a = cp.admin
    a.ok("POST", f"{V1}/systems", {"code": "s", "name": "S"})
    a.ok("POST", f"{V1}/roles", {"system": "s", "name": "reader"})
    a.ok("POST", f"{V1}/services", {"name": "svc", "system": "s", "targets": [{"url": pyup.url}]})
    a.ok("POST", f"{V1}/routes", {"name": "r", "service": "svc", "paths": ["/r"], "strip_prefix": True})
    a.ok("POST", f"{V1}/endpoints", {"service": "svc", "method": "GET", "path": "/x",
                                     "roles": [{"system": "s", "name": "reader"}]})
    made = a.apply("POST", f"{V1}/api_keys", {"system": "s", "name": "ci", "roles": ["reader"]})
    key = cephalo.remember_secret(made["api_key"]["key"])
    v_key = made["version"]
    hdr = {"X-API-Key": key}
    assert dp.get("/r/x", headers=hdr).status == 200
    a.apply("PUT", f"{V1}/api_keys/s:ci", {"revoked": True})
    assert dp.get("/r/x", headers=hdr).status == 401

    out = rollback(a, v_key)  # to when the key was valid
    assert out["same_body"] is False, out  # a principal changed since: the body differs (the key is gone from it)
    assert dp.get("/r/x", headers=hdr).status == 401
    assert a.ok("GET", f"{V1}/api_keys/s:ci", expect=(200,))["revoked"] is True
    # a rollback to before the key existed leaves it alone too (keys are no configuration)
    rollback(a, v_key - 1)
    assert a.ok("GET", f"{V1}/api_keys/s:ci", expect=(200,))["revoked"] is True
    assert dp.get("/r/x", headers=hdr).status == 401


def test_conflicts(cp):
    a = cp.admin
    a.ok("POST", f"{V1}/systems", {"code": "s", "name": "S"})
    v1 = a.ok("POST", f"{V1}/roles", {"system": "s", "name": "r1"})["version"]
    a.ok("POST", f"{V1}/roles", {"system": "s", "name": "r2"})
    a.ok("POST", f"{V1}/users", {"username": "bob", "password": cephalo.remember_secret("bob-password-0123"),
                                 "systems": ["s"], "roles": [{"system": "s", "name": "r2"}]})
    before = version(a)
    body = err(a.post(f"{V1}/snapshots/{v1}/rollback", {}), 409, "conflict")
    assert "'bob'" in body["message"] and "'r2'" in body["message"], body
    assert version(a) == before
    assert len(a.ok("GET", f"{V1}/roles", expect=(200,))["data"]) == 2
    err(a.post(f"{V1}/snapshots/999999/rollback", {}), 404, "not_found")
    # a version stored without its rows (as every version before migration 0012 is)
    db = sqlite3.connect(os.path.join(cp.data_dir, "cephalo.db"), timeout=10)
    try:
        db.execute("UPDATE snapshots SET state = NULL WHERE version = ?", (v1,))
        db.commit()
    finally:
        db.close()
    err(a.post(f"{V1}/snapshots/{v1}/rollback", {}), 409, "not_restorable")
    assert a.ok("GET", f"{V1}/snapshots/{v1}", expect=(200,))["restorable"] is False
    assert version(a) == before


BAD_INTS = ["-1", "0", "abc", "1e3", "0x10", "99999999999999999999", "1;DROP TABLE audit", "1 OR 1=1", "+5", " 7", ""]


def q(value):
    return urllib.parse.quote(value, safe="")


def test_hostile_parameters(cp):
    a = cp.admin
    a.ok("POST", f"{V1}/services", {"name": "svc", "targets": []})
    n_audit = len(a.ok("GET", f"{V1}/audit", expect=(200,))["items"])
    assert n_audit >= 2  # the bootstrap and the service
    for bad in BAD_INTS:
        for path in (f"{V1}/snapshots/{q(bad)}", f"{V1}/snapshots/{q(bad)}/diff", f"{V1}/audit/{q(bad)}"):
            if bad == "":
                continue  # that is the collection
            err(a.get(path), 400, "invalid")
        err(a.post(f"{V1}/snapshots/{q(bad)}/rollback", {}), 400, "invalid")
        for param in ("limit", "before"):
            err(a.get(f"{V1}/snapshots?{param}={q(bad)}"), 400, "invalid")
            err(a.get(f"{V1}/audit?{param}={q(bad)}"), 400, "invalid")
        if bad != "0":
            err(a.get(f"{V1}/audit?version={q(bad)}"), 400, "invalid")
        err(a.get(f"{V1}/snapshots/1/diff?to={q(bad)}"), 400, "invalid")
    for limit in ("501", "100000"):
        err(a.get(f"{V1}/snapshots?limit={limit}"), 400, "invalid")
        err(a.get(f"{V1}/audit?limit={limit}"), 400, "invalid")
    err(a.get(f"{V1}/snapshots/999999"), 404, "not_found")
    err(a.get(f"{V1}/snapshots/1/diff?to=999999"), 404, "not_found")
    err(a.get(f"{V1}/audit/999999"), 404, "not_found")
    err(a.get(f"{V1}/snapshots/1/bogus"), 404, "not_found")
    err(a.get(f"{V1}/snapshots/1/rollback"), 405, "method_not_allowed")
    err(a.post(f"{V1}/snapshots/1", {}), 405, "method_not_allowed")
    err(a.post(f"{V1}/snapshots/1/diff", {}), 405, "method_not_allowed")
    # SQL metacharacters in the filters are values like any other: they match nothing
    for value in ("' OR '1'='1", "x'; DROP TABLE audit; --", "%", "_", "\" OR 1=1 --", "route' UNION SELECT 1 --"):
        for param in ("actor", "action", "entity_type", "entity_id"):
            out = a.ok("GET", f"{V1}/audit?{param}={q(value)}", expect=(200,))
            assert out == {"items": [], "next": None}, (param, value, out)
    for param in ("since", "until"):
        for value in ("yesterday", "2026-01-01' OR '1'='1", "2026-01-01;", "' --", "12"):
            err(a.get(f"{V1}/audit?{param}={q(value)}"), 400, "invalid")
    err(a.get(f"{V1}/audit?actor={'x' * 300}"), 400, "invalid")
    # the audit is still all there
    assert len(a.ok("GET", f"{V1}/audit", expect=(200,))["items"]) == n_audit


def test_audit_filters_and_pages(cp):
    a = cp.admin
    for i in range(5):
        a.ok("POST", f"{V1}/services", {"name": f"s{i}", "targets": []})
    a.ok("PUT", f"{V1}/services/s1", {"name": "s1", "targets": [], "timeout_ms": 1234})
    all_rows = a.ok("GET", f"{V1}/audit?entity_type=service", expect=(200,))["items"]
    assert len(all_rows) == 6 and [r["id"] for r in all_rows] == sorted((r["id"] for r in all_rows), reverse=True)
    upd = a.ok("GET", f"{V1}/audit?entity_type=service&action=update", expect=(200,))["items"]
    assert len(upd) == 1 and upd[0]["after"]["timeout_ms"] == 1234, upd
    assert {"op": "replace", "path": "/timeout_ms", "from": upd[0]["before"]["timeout_ms"], "to": 1234} in upd[0]["changes"]
    assert a.ok("GET", f"{V1}/audit?version={upd[0]['version']}", expect=(200,))["items"] == upd
    assert a.ok("GET", f"{V1}/audit?actor=token:admin&entity_id={upd[0]['entity_id']}&action=update",
                expect=(200,))["items"] == upd
    # pages of two, following "next"
    seen, before = [], ""
    while True:
        page = a.ok("GET", f"{V1}/audit?entity_type=service&limit=2{before}", expect=(200,))
        seen += [r["id"] for r in page["items"]]
        if page["next"] is None:
            break
        before = f"&before={page['next']}"
    assert seen == [r["id"] for r in all_rows]
    # time windows
    at = upd[0]["at"]
    assert upd[0] in a.ok("GET", f"{V1}/audit?since={q(at)}", expect=(200,))["items"]
    assert upd[0] not in a.ok("GET", f"{V1}/audit?until={q(at)}", expect=(200,))["items"]
    assert a.ok("GET", f"{V1}/audit?until=2000-01-01", expect=(200,))["items"] == []
