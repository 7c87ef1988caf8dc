"""12: the signing keys (docs/admin-api.md "Signing keys"): the first key of a fresh control plane, rotation,
the public JWKS, and that no private key material ever leaves the database.

The JWKs are checked against the stored PEMs (read from the database file and parsed with python3-cryptography):
the numbers an answer publishes are those of the key the control plane holds. Nothing signs tokens yet, so no
signature is verified here.
"""
import base64
import os
import sqlite3

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import cephalo

V1 = "/api/v1"
MAX_TOKEN_S = 900  # CPH_ACCESS_TOKEN_MAX_S


def err(r, status, code, path=None):
    assert r.status == status, f"want {status} {code}, got {r}"
    body = r.json()
    assert body.get("error") == code, f"want error={code}, got {body}"
    if path is not None:
        assert body.get("path") == path, f"want path={path}, got {body}"
    low = r.body.decode().lower()
    for leak in ("sqlite", "select ", "insert ", "constraint", "/tmp/", ".db", "private key"):
        assert leak not in low, f"internal detail {leak!r} leaked in {r.body!r}"
    return body


def db_rows(cp, sql):
    con = sqlite3.connect(f"file:{os.path.join(cp.data_dir, 'cephalo.db')}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def b64u_int(s):
    assert "=" not in s and "+" not in s and "/" not in s, s
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    return raw, int.from_bytes(raw, "big")


def check_jwk(cp, key):
    """The key's JWK has the right shape and the numbers of the stored public (and private) key."""
    jwk = key["jwk"]
    assert jwk["kid"] == key["kid"] and jwk["alg"] == key["alg"] and jwk["use"] == "sig", jwk
    assert len(key["kid"]) == 32 and all(c in "0123456789abcdef" for c in key["kid"]), key["kid"]
    (pub_pem, priv_pem), = db_rows(cp, f"SELECT public_pem, private_pem FROM signing_keys WHERE kid = '{key['kid']}'")
    pub = serialization.load_pem_public_key(pub_pem.encode())
    priv = serialization.load_pem_private_key(priv_pem.encode(), password=None)
    assert pub.public_numbers() == priv.public_key().public_numbers()
    if key["alg"] == "ES256":
        assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}, jwk
        assert jwk["kty"] == "EC" and jwk["crv"] == "P-256"
        x_raw, x = b64u_int(jwk["x"])
        y_raw, y = b64u_int(jwk["y"])
        assert len(x_raw) == 32 and len(y_raw) == 32
        assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
        assert (pub.public_numbers().x, pub.public_numbers().y) == (x, y)
    else:
        assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}, jwk
        assert jwk["kty"] == "RSA" and jwk["e"] == "AQAB"
        n_raw, n = b64u_int(jwk["n"])
        assert len(n_raw) == 256 and n_raw[0] != 0
        assert isinstance(pub, rsa.RSAPublicKey) and pub.public_numbers().n == n and pub.public_numbers().e == 65537


def keys(admin):
    return admin.ok("GET", f"{V1}/signing_keys", expect=(200,))["data"]


def jwks_kids(admin):
    return [k["kid"] for k in admin.ok("GET", f"{V1}/jwks", expect=(200,))["keys"]]


def no_private_anywhere(cp, answers):
    for r in answers:
        assert b"PRIVATE KEY" not in r.body and b'"d"' not in r.body, r
    secrets = [p for (p,) in db_rows(cp, "SELECT private_pem FROM signing_keys")]
    assert secrets and all("PRIVATE KEY" in p for p in secrets)
    bodies = [p.splitlines()[1] for p in secrets]  # a line of each key's base64 body
    texts = [cp.proc.stderr_text()] + [f"{b} {a}" for b, a in db_rows(cp, "SELECT before, after FROM audit")]
    texts += [r.body.decode() for r in answers]
    for t in texts:
        assert "PRIVATE KEY" not in t
        for line in bodies:
            assert line not in t


def test_first_start_and_restart(procs, tmpdir_str, cp, admin):
    ks = keys(admin)
    assert len(ks) == 1, ks
    k = ks[0]
    assert k["alg"] == "ES256" and k["state"] == "active" and k["retire_after"] is None and k["rotated_at"] is None
    check_jwk(cp, k)
    assert jwks_kids(admin) == [k["kid"]]
    # the key's creation is the fresh database's version 1, audited as the system without its private half
    assert admin.snapshot()["version"] == 1
    rows = db_rows(cp, "SELECT actor, action, version FROM audit WHERE entity_type = 'signing_key'")
    assert rows == [("system", "create", 1)], rows
    assert k["kid"] in cp.proc.stderr_text()
    # by id and by kid
    assert admin.ok("GET", f"{V1}/signing_keys/{k['id']}", expect=(200,)) == k
    assert admin.ok("GET", f"{V1}/signing_keys/{k['kid']}", expect=(200,)) == k
    # a restart on the same database keeps the key and adds none
    cp.proc.stop()
    cp2 = cephalo.ControlPlane(procs, tmpdir_str, name="cp2", data_dir=cp.data_dir).start()
    assert keys(cp2.admin) == ks
    assert cp2.admin.snapshot()["version"] == 1


def test_rotation(cp, admin):
    first = keys(admin)[0]
    r = admin.post(f"{V1}/signing_keys/rotate", {})
    assert r.status == 201, r
    out = r.json()
    new = out["signing_key"]
    assert new["alg"] == "ES256" and new["state"] == "active" and new["kid"] != first["kid"]
    assert out["version"] == admin.snapshot()["version"]
    check_jwk(cp, new)
    old = admin.ok("GET", f"{V1}/signing_keys/{first['kid']}", expect=(200,))
    assert old["state"] == "retiring" and old["rotated_at"] is not None
    # retire_after = the moment it stopped signing + the longest token lifetime (same format, so compare seconds)
    from datetime import datetime, timedelta
    parse = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert parse(old["retire_after"]) - parse(old["rotated_at"]) == timedelta(seconds=MAX_TOKEN_S)
    assert jwks_kids(admin) == [new["kid"], first["kid"]]

    # RS256, with ?wait=applied like any write
    rs = admin.apply("POST", f"{V1}/signing_keys/rotate", {"alg": "RS256"}, expect=(201,))["signing_key"]
    assert rs["alg"] == "RS256" and rs["state"] == "active"
    check_jwk(cp, rs)
    assert jwks_kids(admin) == [rs["kid"], new["kid"], first["kid"]]
    ks = keys(admin)
    assert [k["kid"] for k in ks] == [rs["kid"], new["kid"], first["kid"]]  # newest first
    assert [k["state"] for k in ks] == ["active", "retiring", "retiring"]
    assert len(db_rows(cp, "SELECT 1 FROM signing_keys WHERE state = 'active'")) == 1
    for k in ks:
        check_jwk(cp, k)
    back = admin.ok("POST", f"{V1}/signing_keys/rotate", {"alg": "ES256"}, expect=(201,))["signing_key"]
    assert back["alg"] == "ES256" and jwks_kids(admin)[0] == back["kid"]
    actions = db_rows(cp, "SELECT action, actor FROM audit WHERE entity_type = 'signing_key' ORDER BY id")
    assert actions == [("create", "system")] + [("rotate", "token:admin")] * 3, actions


def test_bad_requests(cp, admin):
    before = admin.snapshot()["version"]
    ks = keys(admin)
    for body, code, path in (({"alg": "HS256"}, "invalid", "/alg"), ({"alg": "none"}, "invalid", "/alg"),
                             ({"alg": "rs256"}, "invalid", "/alg"), ({"alg": None}, "invalid", "/alg"),
                             ({"alg": 256}, "invalid", "/alg"), ({"kid": "mine"}, "unknown_field", "/kid"),
                             ({"alg": "ES256", "private_pem": "x"}, "unknown_field", "/private_pem")):
        err(admin.post(f"{V1}/signing_keys/rotate", body), 400, code, path)
    err(admin.request("POST", f"{V1}/signing_keys/rotate", raw=b"[]"), 400, "invalid")
    err(admin.request("POST", f"{V1}/signing_keys/rotate", raw=b'{"alg":"ES256","alg":"RS256"}'), 400, "bad_json")
    err(admin.request("POST", f"{V1}/signing_keys/rotate", raw=b"{}", content_type="text/plain"), 415,
        "unsupported_media_type")
    # no writes of keys other than a rotation
    for method, path in (("PUT", f"{V1}/signing_keys/1"), ("DELETE", f"{V1}/signing_keys/1"),
                         ("DELETE", f"{V1}/signing_keys/{ks[0]['kid']}"), ("POST", f"{V1}/signing_keys"),
                         ("PUT", f"{V1}/signing_keys"), ("DELETE", f"{V1}/signing_keys"), ("POST", f"{V1}/jwks"),
                         ("DELETE", f"{V1}/jwks")):
        r = admin.request(method, path, body={} if method in ("PUT", "POST") else None)
        err(r, 405, "method_not_allowed")
        assert r.headers.get("allow"), r
    err(admin.post(f"{V1}/signing_keys/1", {}), 404, "not_found")
    err(admin.get(f"{V1}/signing_keys/999"), 404, "not_found")
    err(admin.get(f"{V1}/signing_keys/rotate"), 404, "not_found")
    err(admin.get(f"{V1}/signing_keys/%27%20OR%201%3D1"), 404, "not_found")
    err(admin.get(f"{V1}/jwks/x"), 404, "not_found")
    # no token, a wrong token
    for path in (f"{V1}/signing_keys", f"{V1}/jwks", f"{V1}/signing_keys/1"):
        err(admin.get(path, token=None), 401, "unauthorized")
        err(admin.get(path, token="not-the-admin-token"), 401, "unauthorized")
    err(admin.post(f"{V1}/signing_keys/rotate", {}, token=None), 401, "unauthorized")
    # nothing changed
    assert keys(admin) == ks and admin.snapshot()["version"] == before
    assert cp.proc.alive()


def test_no_private_key_material(cp, admin):
    answers = [admin.post(f"{V1}/signing_keys/rotate", {"alg": "RS256"}),
               admin.post(f"{V1}/signing_keys/rotate", {})]
    answers += [admin.get(f"{V1}/signing_keys"), admin.get(f"{V1}/jwks"), admin.get(f"{V1}/signing_keys/1"),
                admin.get(f"{V1}/snapshot?body=1")]
    for k in keys(admin):
        answers.append(admin.get(f"{V1}/signing_keys/{k['kid']}"))
    assert all(r.status in (200, 201) for r in answers), answers
    no_private_anywhere(cp, answers)
