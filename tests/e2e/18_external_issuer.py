"""18: an external token issuer (an OIDC provider's JWKS fetched by the control plane, shipped in the snapshot).

A tiny JWKS server (http.server in a thread of the test) serves the public half of keys the test generates with
python3-cryptography. The issuer is created through the admin API with the control plane's lowest refresh period
lowered for the test (--jwks-min-refresh-s 1); the test waits until the control plane fetched the keys (GET
/api/v1/issuers/<name> shows keys > 0) and every data plane applied the resulting snapshot. Then a token the test
signs for that issuer is accepted for an endpoint needing a role its roles claim grants (and refused without it),
its principal is in the issuer's system, a token under an unknown kid or with another iss is 401, a rotation of the
JWKS on the server reaches the data plane at the next refresh, and a broken JWKS server keeps the last-known-good
keys while last_error says why.
"""
import http.server
import json
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import cephalo

V1 = "/api/v1"
ISS = "https://idp.example.test/realms/shop"
PREFIX = "x-cephalo-"


class JwksServer:
    """Serves self.doc (a dict) as JSON at /jwks.json, or self.status with a body of garbage when it is not 200."""

    def __init__(self):
        self.doc = {"keys": []}
        self.status = 200
        self.hits = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                owner.hits += 1
                body = json.dumps(owner.doc).encode() if owner.status == 200 else b"<html>down</html>"
                self.send_response(owner.status if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def jwk(private_key, kid):
    pub = private_key.public_key()
    algo = jwt.algorithms.RSAAlgorithm if isinstance(pub, rsa.RSAPublicKey) else jwt.algorithms.ECAlgorithm
    out = json.loads(algo.to_jwk(pub))
    out.update(kid=kid, use="sig")
    return out


def token(key, kid, roles=("reader",), iss=ISS, alg=None, **claims):
    now = int(time.time())
    body = {"iss": iss, "sub": "ext-user|42", "iat": now, "exp": now + 300, "realm_access": {"roles": list(roles)},
            "groups": []}
    body.update(claims)
    alg = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def world(procs, tmpdir_str, pyup):
    jwks = JwksServer()
    procs.servers.append(jwks)
    cp = cephalo.ControlPlane(procs, tmpdir_str, extra_args=["--jwks-min-refresh-s", "1"]).start()
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket).start()
    dp.wait_connected(cp.admin)
    shop = cephalo.Shop(cp.admin, pyup.url)
    return cp, dp, jwks, shop


def wait_keys(admin, name, pred, what, timeout=20.0):
    """Until the issuer's admin representation satisfies pred, then until every data plane applied the snapshot."""
    out = cephalo.wait_until(lambda: (lambda i: i if pred(i) else None)(admin.ok("GET", f"{V1}/issuers/{name}",
                                                                               expect=(200,))),
                             timeout, what, interval=0.1)
    admin.settle()
    return out


def snapshot_kids(admin):
    issuers = admin.ok("GET", f"{V1}/snapshot?body=1", expect=(200,))["body"]["auth"].get("issuers", [])
    return [k["kid"] for i in issuers for k in i["keys"]]


def test_external_issuer_tokens(world, pyup):
    cp, dp, jwks, shop = world
    a = cp.admin
    k1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # an HMAC key is dropped and private members published by mistake are not copied: only public numbers go through
    leaky = dict(jwk(k1, "k1"), d="AQAB", p="AQAB", q="AQAB")
    jwks.doc = {"keys": [leaky, {"kty": "oct", "kid": "hs", "k": "c2VjcmV0", "alg": "HS256"}]}
    body = {"name": "idp", "issuer": ISS, "jwks_url": jwks.url, "system": "shop", "roles_claim": "realm_access.roles",
            "refresh_s": 1}
    # hostile bodies first
    for patch, path in (({"issuer": "cephalo"}, "/issuer"), ({"jwks_url": "file:///etc/passwd"}, "/jwks_url"),
                        ({"refresh_s": 0}, "/refresh_s"), ({"system": "nope"}, "/system"), ({"x": 1}, "/x")):
        r = a.post(f"{V1}/issuers", dict(body, **patch))
        assert r.status == 400 and r.json().get("path") == path, (patch, r)
    created = a.ok("POST", f"{V1}/issuers", body, expect=(201,))["issuer"]
    assert created["keys"] == 0 and created["system"] == "shop"
    wait_keys(a, "idp", lambda i: i["keys"] == 1, "the first JWKS fetch")
    assert snapshot_kids(a) == ["k1"]
    snap = json.dumps(a.ok("GET", f"{V1}/snapshot?body=1", expect=(200,)))
    assert '"d"' not in snap and "c2VjcmV0" not in snap

    n = pyup.count
    r = dp.get("/shop/orders/7", headers=cephalo.bearer(token(k1, "k1")))
    assert r.status == 200, r
    seen = r.json()["headers"]
    assert seen.get(PREFIX + "user-id") == "ext-user|42" and seen.get(PREFIX + "system") == "shop", seen
    assert "reader" in seen.get(PREFIX + "roles", ""), seen
    # the roles claim decides: no reader role -> 403; a claim of superuser or another system changes nothing
    r = dp.get("/shop/orders/7", headers=cephalo.bearer(token(k1, "k1", roles=("writer",), su=True, sys="other")))
    assert r.status == 403, r
    # unknown kid, another issuer's iss, the own iss, expired, HS256 confusion, no exp: 401 and never upstream
    k_other = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    for name, tok in (("unknown kid", token(k1, "nope")),
                      ("key not in the JWKS", token(k_other, "k1", alg="ES256")),
                      ("another iss", token(k1, "k1", iss="https://evil.example.test")),
                      ("the own iss", token(k1, "k1", iss="cephalo")),
                      ("expired", token(k1, "k1", iat=now - 600, exp=now - 300)),
                      ("no exp", jwt.encode({"iss": ISS, "sub": "x", "realm_access": {"roles": ["reader"]}}, k1,
                                            algorithm="RS256", headers={"kid": "k1"})),
                      ("HS256 with the JWK", jwt.encode({"iss": ISS, "sub": "x", "exp": now + 300}, "k1" * 16,
                                                        algorithm="HS256", headers={"kid": "k1"}))):
        r = dp.get("/shop/orders/7", headers=cephalo.bearer(tok))
        assert r.status == 401 and r.json()["error"] == "invalid_token", (name, r)
    assert pyup.count == n + 1

    # rotation on the server: the new key is picked up at the next refresh, the old one stops working
    k2 = ec.generate_private_key(ec.SECP256R1())
    jwks.doc = {"keys": [jwk(k2, "k2")]}
    cephalo.wait_until(lambda: snapshot_kids(a) == ["k2"], 20, "the rotated JWKS in the snapshot", interval=0.1)
    a.settle()
    assert dp.get("/shop/orders/7", headers=cephalo.bearer(token(k2, "k2"))).status == 200
    assert dp.get("/shop/orders/7", headers=cephalo.bearer(token(k1, "k1"))).status == 401

    # the JWKS server breaks: last-known-good keys stay, last_error tells why, no new snapshot version
    version = a.snapshot()["version"]
    jwks.status = 500
    wait_keys(a, "idp", lambda i: i["last_error"] is not None and "500" in i["last_error"], "last_error")
    assert a.ok("GET", f"{V1}/issuers/idp", expect=(200,))["keys"] == 1
    assert a.snapshot()["version"] == version
    assert dp.get("/shop/orders/7", headers=cephalo.bearer(token(k2, "k2"))).status == 200

    # the issuer is deleted: its tokens are refused everywhere
    a.apply("DELETE", f"{V1}/issuers/idp")
    assert dp.get("/shop/orders/7", headers=cephalo.bearer(token(k2, "k2"))).status == 401
    assert a.get(f"{V1}/issuers/idp").status == 404
