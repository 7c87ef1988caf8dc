"""14: login, refresh and logout through the data plane's /auth/... routes, answered by the control plane's auth API
(--auth-listen; docs/access.md sections 2 and 6).

The access token is verified here with python3-jwt against the JWKS the data plane serves, and its claims are checked
one by one. Every failed login answers the same 401 body; the rate limits answer 429 with Retry-After; a refresh token
rotates, and presenting a used one revokes its whole family, down to the family's access token on the data plane (the
control plane writes that revocation inside the refresh call: Admin.settle waits until the data plane applied it).
Hostile bodies are refused with 400 and the control plane stays up.
"""
import json
import re
import socket
import time

import jwt
import pytest

import cephalo

V1 = "/api/v1"
JWKS = "/auth/.well-known/jwks.json"
ACCESS_TTL_S = 300
REFRESH_TTL_S = 1209600


@pytest.fixture
def cp(procs, tmpdir_str):
    """These tests drive the control plane's own limiter (per account and per IP): the data plane's per-address login
    limit in front of it (19_ratelimit.py) is opened wide so it never answers first."""
    return cephalo.ControlPlane(procs, tmpdir_str, login_rate="1000000/1/1000000").start()


@pytest.fixture
def shop(cp, dp, pyup):
    return cephalo.Shop(cp.admin, pyup.url)


def verify(dp, token):
    """The token's claims, verified with python3-jwt against the key of its kid in the data plane's JWKS."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "JWT" and header["alg"] in ("ES256", "RS256"), header
    keys = {k["kid"]: k for k in dp.get(JWKS).json()["keys"]}
    assert header["kid"] in keys, (header, list(keys))
    jwk = keys[header["kid"]]
    assert jwk["alg"] == header["alg"], (jwk, header)
    key = jwt.PyJWK(jwk).key
    return jwt.decode(token, key, algorithms=[jwk["alg"]], issuer="cephalo",
                      options={"require": ["iss", "sub", "iat", "nbf", "exp", "jti"], "verify_aud": False})


def check_token_answer(out):
    assert set(out) == {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"}, out
    assert out["token_type"] == "Bearer" and out["expires_in"] == ACCESS_TTL_S, out
    assert out["refresh_expires_in"] == REFRESH_TTL_S, out
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", out["refresh_token"]), out["refresh_token"]


def check_claims(claims, shop, name, system="shop", roles=(), groups=(), superuser=False):
    now = int(time.time())
    assert claims["iss"] == "cephalo" and "aud" not in claims, claims  # no audience configured
    assert claims["sub"] == shop.uid(name) and claims["name"] == name, claims
    assert claims["sys"] == system, claims
    assert sorted(claims["roles"]) == sorted(roles) and sorted(claims["groups"]) == sorted(groups), claims
    if superuser:
        assert claims["su"] is True, claims
    else:
        assert "su" not in claims, claims
    for k in ("iat", "nbf", "exp"):
        assert type(claims[k]) is int, claims  # integers, not reals or strings
    assert claims["nbf"] == claims["iat"] and abs(claims["iat"] - now) <= 5, claims
    assert claims["exp"] - claims["iat"] == ACCESS_TTL_S, claims
    assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"]), claims


def refresh(dp, token):
    return cephalo.auth_post(dp.port, "/auth/refresh", {"refresh_token": token})


def logout(dp, refresh_token=None, access=None):
    body = {"refresh_token": refresh_token} if refresh_token is not None else {}
    return cephalo.auth_post(dp.port, "/auth/logout", body, headers=cephalo.bearer(access) if access else None)


def error_of(r, status, code):
    assert r.status == status, f"want {status} {code}, got {r}"
    assert r.headers.get("content-type", "").startswith("application/json"), r
    body = r.json()
    assert body.get("error") == code and isinstance(body.get("message", ""), str), body
    return body


def allowed(dp, token):
    """GET /shop/any (any authenticated member of shop) with the token: the status."""
    return dp.get("/shop/any", headers=cephalo.bearer(token)).status


# ---------------------------------------------------------------------------------------------------------------
# login


def test_login_by_username_token_verifies_with_the_jwks(cp, dp, shop):
    r = dp.login(shop.PASSWORDS["alice"], username="alice", system="shop")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    out = r.json()
    check_token_answer(out)
    claims = verify(dp, out["access_token"])
    check_claims(claims, shop, "alice", roles=["writer"])
    # signed with the control plane's active key
    active = cp.admin.ok("GET", f"{V1}/signing_keys")["data"][0]
    assert jwt.get_unverified_header(out["access_token"])["kid"] == active["kid"] and active["state"] == "active"
    # the token opens the gateway
    assert allowed(dp, out["access_token"]) == 200


def test_login_by_email(dp, shop):
    out = dp.tokens(shop.PASSWORDS["alice"], email="alice@example.com", system="shop")
    check_token_answer(out)
    check_claims(verify(dp, out["access_token"]), shop, "alice", roles=["writer"])


def test_login_group_member_and_superuser(dp, shop):
    bob = verify(dp, shop.access(dp, "bob"))
    check_claims(bob, shop, "bob", groups=["staff"])  # own roles only: the group's roles are the gateway's business
    root = verify(dp, shop.access(dp, "root"))  # a superuser is a member of every system
    check_claims(root, shop, "root", superuser=True)
    dave = verify(dp, shop.access(dp, "dave", system="other"))
    check_claims(dave, shop, "dave", system="other", roles=["reader"])


def test_every_refused_login_answers_the_same(dp, shop, pyup):
    pw = shop.PASSWORDS
    cases = {
        "wrong password": cephalo.login_body("wrong-password-1", "alice", system="shop"),
        "unknown user": cephalo.login_body(pw["alice"], "nobody", system="shop"),
        "unknown email": cephalo.login_body(pw["alice"], email="nobody@example.com", system="shop"),
        "disabled user": cephalo.login_body(pw["carol"], "carol", system="shop"),
        "not a member": cephalo.login_body(pw["dave"], "dave", system="shop"),
        "unknown system": cephalo.login_body(pw["alice"], "alice", system="nope"),
    }
    bodies = {}
    for what, body in cases.items():
        r = cephalo.auth_post(dp.port, "/auth/login", body)
        error_of(r, 401, "invalid_credentials")
        for secret in pw.values():
            assert secret.encode() not in r.body, (what, r)
        assert b"wrong-password" not in r.body, (what, r)
        bodies[what] = r.body
    assert len(set(bodies.values())) == 1, f"the refusals tell the cases apart: {bodies}"
    assert pyup.count == 0  # /auth/... never reaches a route's upstream


def test_account_rate_limit_then_429_with_retry_after(dp, shop):
    for _ in range(5):
        error_of(dp.login("wrong-password-1", username="alice", system="shop"), 401, "invalid_credentials")
    # the sixth attempt is not checked at all: even the right password is turned away
    for pw in ("wrong-password-1", shop.PASSWORDS["alice"]):
        r = dp.login(pw, username="alice", system="shop")
        error_of(r, 429, "too_many_attempts")
        assert int(r.headers["retry-after"]) > 0, r.headers
    # the account is lower-cased: another spelling is the same account
    error_of(dp.login(shop.PASSWORDS["alice"], username="ALICE", system="shop"), 429, "too_many_attempts")
    # other accounts are not affected
    assert dp.login(shop.PASSWORDS["bob"], username="bob", system="shop").status == 200


def test_success_clears_the_account_failures(dp, shop):
    for _ in range(2):
        for _ in range(4):
            error_of(dp.login("wrong-password-1", username="bob", system="shop"), 401, "invalid_credentials")
        assert dp.login(shop.PASSWORDS["bob"], username="bob", system="shop").status == 200


def test_ip_rate_limit_ignores_a_client_x_forwarded_for(dp, shop):
    """20 failures from one address: the 21st login is 429, whatever X-Forwarded-For the client sends (the data plane
    appends the real peer and the control plane reads the last element)."""
    for i in range(20):
        r = cephalo.auth_post(dp.port, "/auth/login", cephalo.login_body("wrong-password-1", f"user{i}", system="shop"),
                              headers={"X-Forwarded-For": f"203.0.113.{i}"})
        error_of(r, 401, "invalid_credentials")
    r = cephalo.auth_post(dp.port, "/auth/login", cephalo.login_body(shop.PASSWORDS["bob"], "bob", system="shop"),
                          headers={"X-Forwarded-For": "198.51.100.7"})
    error_of(r, 429, "too_many_attempts")
    assert int(r.headers["retry-after"]) > 0, r.headers


# ---------------------------------------------------------------------------------------------------------------
# refresh and logout


def test_refresh_rotates(dp, shop):
    first = shop.tokens(dp, "bob")
    r = refresh(dp, first["refresh_token"])
    assert r.status == 200, r
    second = r.json()
    check_token_answer(second)
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    claims = verify(dp, second["access_token"])
    check_claims(claims, shop, "bob", groups=["staff"])
    assert claims["jti"] != verify(dp, first["access_token"])["jti"]
    assert allowed(dp, second["access_token"]) == 200
    # the newer refresh token rotates again
    third = refresh(dp, second["refresh_token"])
    assert third.status == 200, third


def test_refresh_reuse_revokes_the_family(cp, dp, shop):
    first = shop.tokens(dp, "bob")
    second = refresh(dp, first["refresh_token"]).json()
    assert allowed(dp, second["access_token"]) == 200
    version = cp.admin.snapshot()["version"]
    # the used refresh token again: refused, and the whole family with it
    error_of(refresh(dp, first["refresh_token"]), 401, "invalid_grant")
    error_of(refresh(dp, second["refresh_token"]), 401, "invalid_grant")
    # the family's last access token is revoked on the data plane once it applied the control plane's write
    assert cp.admin.settle() > version
    r = dp.get("/shop/any", headers=cephalo.bearer(second["access_token"]))
    error_of(r, 401, "invalid_token")
    jti = verify(dp, second["access_token"])["jti"]
    body = cp.admin.ok("GET", f"{V1}/snapshot?body=1")["body"]
    assert jti in [t["jti"] for t in body["revoked"]["tokens"]], body["revoked"]
    # another login of the same user is a new family and works
    assert allowed(dp, shop.access(dp, "bob")) == 200


def test_refresh_of_a_disabled_user_is_refused(cp, dp, shop):
    toks = shop.tokens(dp, "bob")
    cp.admin.apply("PUT", f"{V1}/users/bob", {"username": "bob", "enabled": False, "systems": ["shop"],
                                              "groups": [{"system": "shop", "name": "staff"}]})
    error_of(refresh(dp, toks["refresh_token"]), 401, "invalid_grant")
    error_of(dp.get("/shop/any", headers=cephalo.bearer(toks["access_token"])), 401, "invalid_token")


def test_refresh_with_garbage(dp, shop):
    for token in ("x" * 43, "A" * 43, "not a token"):
        error_of(refresh(dp, token), 401, "invalid_grant")
    error_of(refresh(dp, "y" * 2000), 400, "invalid")  # not even the shape of one


def test_logout_revokes_access_and_refresh(cp, dp, shop):
    toks = shop.tokens(dp, "alice")
    other = shop.tokens(dp, "alice")  # another session of the same user stays valid
    assert allowed(dp, toks["access_token"]) == 200
    r = logout(dp, toks["refresh_token"], toks["access_token"])
    assert r.status == 204 and r.body == b"", r
    cp.admin.settle()
    error_of(dp.get("/shop/any", headers=cephalo.bearer(toks["access_token"])), 401, "invalid_token")
    error_of(refresh(dp, toks["refresh_token"]), 401, "invalid_grant")
    assert allowed(dp, other["access_token"]) == 200
    assert refresh(dp, other["refresh_token"]).status == 200


def test_logout_with_only_the_access_token(cp, dp, shop):
    toks = shop.tokens(dp, "bob")
    assert logout(dp, access=toks["access_token"]).status == 204
    cp.admin.settle()
    error_of(dp.get("/shop/any", headers=cephalo.bearer(toks["access_token"])), 401, "invalid_token")


# ---------------------------------------------------------------------------------------------------------------
# hostile input


HOSTILE_BODIES = [
    b"{",
    b"",
    b"[]",
    b"null",
    b'"alice"',
    b'{"username": "alice", "username": "bob", "password": "x", "system": "shop"}',
    b'{"username": 1, "password": "alice-password-1", "system": "shop"}',
    b'{"username": ["alice"], "password": "alice-password-1", "system": "shop"}',
    b'{"username": "alice", "password": null, "system": "shop"}',
    b'{"username": "alice", "password": 12345678, "system": "shop"}',
    b'{"username": "alice", "password": "alice-password-1", "system": {"code": "shop"}}',
    b'{"username": "alice", "password": "alice-password-1", "system": "shop", "admin": true}',
    b'{"username": "alice", "email": "alice@example.com", "password": "alice-password-1", "system": "shop"}',
    b'{"password": "alice-password-1", "system": "shop"}',
    b'{"username": "alice", "password": "alice-password-1", "system": "shop"} trailing',
    b"\xff\xfe{}",
    b'{"username": "alice", "password": "' + b"p" * 17000 + b'", "system": "shop"}',
    b"[" * 20000,
]


@pytest.mark.parametrize("target", ["dp", "cp"])
def test_hostile_login_bodies_are_400(cp, dp, shop, target):
    port = dp.port if target == "dp" else cp.auth_port
    failures = []
    for raw in HOSTILE_BODIES:
        r = cephalo.auth_post(port, "/auth/login", raw=raw)
        try:
            error_of(r, 400, "invalid")
            assert b"alice-password-1" not in r.body, r
        except AssertionError as e:
            failures.append(f"{raw[:80]!r}: {e}")
    for path in ("/auth/refresh", "/auth/logout"):
        for raw in (b"{", b'{"refresh_token": 5}', b'{"refresh_token": "x", "extra": 1}', b"[]"):
            r = cephalo.auth_post(port, path, raw=raw)
            if r.status != 400 or r.json().get("error") != "invalid":
                failures.append(f"{path} {raw!r}: want 400 invalid, got {r}")
    assert not failures, "\n".join(failures)
    assert cp.proc.alive() and cephalo.http_get(cp.admin_port, "/health").status == 200
    assert dp.login(shop.PASSWORDS["alice"], username="alice", system="shop").status == 200


def test_auth_api_methods_and_paths(cp, shop):
    port = cp.auth_port
    for path in ("/auth/login", "/auth/refresh", "/auth/logout"):
        for method in ("GET", "PUT", "DELETE"):
            r = cephalo.http_request(port, method, path)
            assert r.status == 405 and r.json()["error"], (method, path, r)
    for path in ("/", "/auth", "/auth/other", "/api/v1/services", "/auth/login/x"):
        r = cephalo.auth_post(port, path, {})
        assert r.status == 404, (path, r)
        assert r.json()["error"], r


def test_a_huge_declared_body_is_refused_early(cp, dp, shop):
    """A login claiming a 100 MB body: refused without reading it all (the connection may be closed)."""
    for port in (dp.port, cp.auth_port):
        head = (b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000000\r\n\r\n{")
        out = cephalo.raw_request(port, head, timeout=10)
        status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else 0
        assert status in (0, 400, 413), out[:300]
    assert cp.proc.alive() and dp.proc.alive()
    assert dp.login(shop.PASSWORDS["alice"], username="alice", system="shop").status == 200


def test_login_over_h2c(dp, shop):
    body = json.dumps(cephalo.login_body(shop.PASSWORDS["alice"], "alice", system="shop")).encode()
    with socket.create_connection(("127.0.0.1", dp.port), timeout=10) as s:
        r = cephalo.h2_request(s, f"127.0.0.1:{dp.port}", "/auth/login", method="POST", body=body,
                               headers={"content-type": "application/json"})
    assert r.status == 200, r
    check_token_answer(r.json())
    assert allowed(dp, r.json()["access_token"]) == 200


# ---------------------------------------------------------------------------------------------------------------
# settings


def test_auth_settings_from_the_control_plane_flags(procs, tmpdir_str, pyup):
    """--jwt-issuer, --jwt-audience, --access-ttl-s and --header-prefix reach the tokens, the snapshot and the data
    plane's checks."""
    cp = cephalo.ControlPlane(procs, tmpdir_str, extra_args=["--jwt-issuer", "acme", "--jwt-audience", "gateway",
                                                             "--access-ttl-s", "60", "--header-prefix", "x-acme-"])
    cp.start()
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket).start()
    dp.wait_connected(cp.admin)
    shop = cephalo.Shop(cp.admin, pyup.url)
    auth = cp.admin.ok("GET", f"{V1}/snapshot?body=1")["body"]["auth"]
    assert auth == {"issuer": "acme", "audience": "gateway", "leeway_s": 30, "max_token_bytes": 8192,
                    "header_prefix": "x-acme-", "api": cp.auth_url}, auth
    out = shop.tokens(dp, "bob")
    assert out["expires_in"] == 60, out
    token = out["access_token"]
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWK({k["kid"]: k for k in dp.get(JWKS).json()["keys"]}[header["kid"]]).key
    claims = jwt.decode(token, key, algorithms=[header["alg"]], issuer="acme", audience="gateway")
    assert claims["exp"] - claims["iat"] == 60, claims
    seen = dp.get("/shop/orders/7", headers={**cephalo.bearer(token), "X-Acme-User-Id": "1"}).json()
    assert seen["headers"]["x-acme-user-id"] == shop.uid("bob"), seen["headers"]
    assert seen["headers"]["x-acme-system"] == "shop", seen["headers"]


def test_no_auth_api_is_503(procs, tmpdir_str, pyup):
    """--auth-listen off: the snapshot's auth.api is null and the data plane answers /auth/login itself."""
    cp = cephalo.ControlPlane(procs, tmpdir_str, auth=False).start()
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket).start()
    dp.wait_connected(cp.admin)
    shop = cephalo.Shop(cp.admin, pyup.url)
    assert cp.admin.ok("GET", f"{V1}/snapshot?body=1")["body"]["auth"]["api"] is None
    for path in ("/auth/login", "/auth/refresh", "/auth/logout"):
        r = cephalo.auth_post(dp.port, path, cephalo.login_body(shop.PASSWORDS["bob"], "bob", system="shop"))
        error_of(r, 503, "auth_unavailable")
    assert dp.get(JWKS).status == 200  # the keys are in the snapshot: verification does not need the auth API


def test_a_token_is_refused_once_expired_even_after_it_was_accepted(procs, tmpdir_str, pyup):
    """--access-ttl-s 1, --jwt-leeway-s 0: the token works, then - the data plane may remember tokens it verified -
    it is refused once its exp passes, on the clock alone (no new snapshot)."""
    cp = cephalo.ControlPlane(procs, tmpdir_str, extra_args=["--access-ttl-s", "1", "--jwt-leeway-s", "0"]).start()
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket).start()
    dp.wait_connected(cp.admin)
    shop = cephalo.Shop(cp.admin, pyup.url)
    version = cp.admin.snapshot()["version"]
    out = shop.tokens(dp, "bob")
    assert out["expires_in"] == 1, out
    exp = verify_claims_unchecked(out["access_token"])["exp"]
    first = dp.get("/shop/any", headers=cephalo.bearer(out["access_token"]))
    if first.status == 200:  # else the second already passed: the refusal below is checked all the same
        assert dp.get("/shop/any", headers=cephalo.bearer(out["access_token"])).status == 200
    cephalo.wait_until(lambda: time.time() >= exp + 0.1, 5, "the token's exp passes", interval=0.05)
    error_of(dp.get("/shop/any", headers=cephalo.bearer(out["access_token"])), 401, "invalid_token")
    assert cp.admin.snapshot()["version"] == version  # refused by the clock, not by a revocation


def verify_claims_unchecked(token):
    return jwt.decode(token, options={"verify_signature": False})
