"""15: the data plane decides every request with the snapshot's identity (docs/access.md section 1, C,
D): tokens from a real login, API keys in their three forms, endpoint rules granting by role, by group, to superusers
and to the public, each route's default_access, and the identity headers the upstream receives instead of anything
a client sent under that prefix.

The upstream is the echo server (cephalo.PyUpstream): it answers with the headers it received, and its request count
proves that a refused request never reached it. Every change is applied with ?wait=applied before it is checked.
"""
import base64
import socket
import time

import pytest

import cephalo

V1 = "/api/v1"
PREFIX = "x-cephalo-"


@pytest.fixture
def shop(cp, dp, pyup):
    return cephalo.Shop(cp.admin, pyup.url)


def get(dp, target, token=None, headers=None, method="GET"):
    hdrs = dict(headers or {})
    if token is not None:
        hdrs.update(cephalo.bearer(token))
    return cephalo.http_request(dp.port, method, target, body=b"" if method in ("POST", "PUT") else None,
                                headers=hdrs)


def h2(dp, target, token=None, headers=None, method="GET"):
    hdrs = dict(headers or {})
    if token is not None:
        hdrs.update(cephalo.bearer(token))
    with socket.create_connection(("127.0.0.1", dp.port), timeout=10) as s:
        return cephalo.h2_request(s, f"127.0.0.1:{dp.port}", target, method=method, headers=hdrs,
                                  body=b"" if method in ("POST", "PUT") else None)


def refused(r, status, code=None):
    assert r.status == status, f"want {status}, got {r}"
    assert r.headers.get("content-type", "").startswith("application/json"), r
    body = r.json()
    if code is not None:
        assert body.get("error") == code, body
    if status == 401:
        assert 'realm="cephalo"' in r.headers.get("www-authenticate", ""), r.headers
    return body


def identity(seen):
    """The identity headers the upstream received (name without the prefix -> value)."""
    return {k[len(PREFIX):]: v for k, v in seen["headers"].items() if k.startswith(PREFIX)}


def after_this_second():
    """Returns once the clock is past the current second. A user change revokes the tokens with iat <= its time in
    whole seconds (revoked.users "before"), so a token issued in the same second as the change is refused too: a login
    meant to get a token newer than a change must happen in a later second. A clock boundary, not a state to poll."""
    t = int(time.time())
    while int(time.time()) <= t:
        time.sleep(0.05)


def split(v):
    return sorted(x.strip() for x in v.split(",")) if v else []


# ---------------------------------------------------------------------------------------------------------------
# tokens and rules


def test_allowed_request_carries_the_identity_headers(dp, shop, pyup):
    token = shop.access(dp, "bob")
    seen = cephalo.seen_by_upstream(get(dp, "/shop/orders/7?x=1", token))
    assert seen["path"] == "/orders/7?x=1"
    ident = identity(seen)
    assert ident["user-id"] == shop.uid("bob"), ident
    assert ident["system"] == "shop", ident
    assert split(ident["roles"]) == ["reader"], ident  # effective roles: reader comes with the group staff
    assert split(ident["groups"]) == ["staff"], ident
    assert ident["request-id"], ident
    assert "api-key-id" not in ident, ident
    assert set(ident) == {"user-id", "system", "roles", "groups", "request-id"}, ident
    assert seen["headers"]["authorization"] == f"Bearer {token}"  # a bearer JWT is forwarded
    # every request gets its own id
    again = identity(cephalo.seen_by_upstream(get(dp, "/shop/orders/7", token)))
    assert again["request-id"] != ident["request-id"]
    assert pyup.count == 2


def test_missing_token_is_401_with_www_authenticate(dp, shop, pyup):
    for target in ("/shop/orders/7", "/shop/any", "/shop/unruled", "/other/x", "/authn/x"):
        r = get(dp, target)
        refused(r, 401)
        assert 'Bearer realm="cephalo"' in r.headers["www-authenticate"], r.headers
    for scheme in ("Bearer", "Bearer ", "bearer", "Token abc", "Basic", "ApiKey"):
        refused(get(dp, "/shop/any", headers={"Authorization": scheme}), 401)
    assert pyup.count == 0


def test_wrong_system_is_403(dp, shop, pyup):
    dave = shop.access(dp, "dave", system="other")
    for target in ("/shop/any", "/shop/orders/7", "/shop/unruled"):
        refused(get(dp, target, dave), 403)
    assert pyup.count == 0
    assert identity(cephalo.seen_by_upstream(get(dp, "/other/x", dave)))["system"] == "other"
    # a public rule needs no system
    assert get(dp, "/shop/public/x", dave).status == 200


def test_public_endpoint_needs_no_token(dp, shop, pyup):
    seen = cephalo.seen_by_upstream(get(dp, "/shop/public/a/b"))
    assert seen["path"] == "/public/a/b"
    assert set(identity(seen)) == {"request-id"}, identity(seen)  # nobody: no identity but the request id
    assert get(dp, "/shop/public").status == 200  # "/public/*" matches "/public" too
    # the rule is GET only: another method finds no rule, and the route's default (authenticated) decides
    refused(get(dp, "/shop/public/x", method="POST"), 401)
    assert pyup.count == 2


def test_role_granted(dp, shop):
    alice, bob = shop.access(dp, "alice"), shop.access(dp, "bob")
    assert get(dp, "/shop/orders/7", bob).status == 200  # reader through the group staff
    refused(get(dp, "/shop/orders/7", alice), 403)  # writer only
    assert get(dp, "/shop/orders", alice, method="POST").status == 200
    refused(get(dp, "/shop/orders", bob, method="POST"), 403)
    # "{id}" is one non-empty segment: deeper paths find no rule and the default (authenticated) decides
    assert get(dp, "/shop/orders/7/lines", alice).status == 200


def test_group_granted(dp, shop):
    olga, bob = shop.access(dp, "olga"), shop.access(dp, "bob")
    for method, target in (("GET", "/shop/ops/x"), ("DELETE", "/shop/ops/a/b"), ("GET", "/shop/ops"),
                           ("POST", "/shop/ops/")):
        assert get(dp, target, olga, method=method).status == 200, (method, target)
        refused(get(dp, target, bob, method=method), 403)
    assert get(dp, "/shop/any", olga).status == 200  # a rule without requirements: any member of shop


def test_superuser(dp, shop):
    root = shop.access(dp, "root")
    for target in ("/shop/orders/7", "/shop/ops/x", "/shop/any", "/other/x", "/authn/x"):
        seen = cephalo.seen_by_upstream(get(dp, target, root))
        assert identity(seen)["user-id"] == shop.uid("root")
    assert get(dp, "/shop/orders", root, method="POST").status == 200
    refused(get(dp, "/closed/x", root), 403)  # a route that denies denies everybody


def test_default_access(dp, shop, pyup):
    alice, dave = shop.access(dp, "alice"), shop.access(dp, "dave", system="other")
    assert get(dp, "/open/x").status == 200
    assert get(dp, "/open/x", alice).status == 200
    refused(get(dp, "/authn/x"), 401)
    assert get(dp, "/authn/x", alice).status == 200
    assert get(dp, "/authn/x", dave).status == 200  # the service is in no system
    n = pyup.count
    for token in (None, alice):
        refused(get(dp, "/closed/x", token), 403)
    assert pyup.count == n


def test_disabled_user_token_rejected_after_the_push(cp, dp, shop):
    alice = shop.access(dp, "alice")
    assert get(dp, "/shop/any", alice).status == 200
    u = shop.users["alice"]
    body = {"username": "alice", "email": u["email"], "enabled": False, "systems": u["systems"], "roles": u["roles"]}
    cp.admin.apply("PUT", f"{V1}/users/alice", body)
    refused(get(dp, "/shop/any", alice), 401, "invalid_token")
    assert dp.login(shop.PASSWORDS["alice"], username="alice", system="shop").status == 401
    # enabled again: the old token stays refused (issued before the change), a new login works
    cp.admin.apply("PUT", f"{V1}/users/alice", dict(body, enabled=True))
    refused(get(dp, "/shop/any", alice), 401, "invalid_token")
    after_this_second()
    assert get(dp, "/shop/any", shop.access(dp, "alice")).status == 200


def test_membership_change_revokes_older_tokens(cp, dp, shop):
    bob = shop.access(dp, "bob")
    assert get(dp, "/shop/orders/7", bob).status == 200
    cp.admin.apply("PUT", f"{V1}/users/bob", {"username": "bob", "systems": ["shop"], "groups": []})
    refused(get(dp, "/shop/orders/7", bob), 401, "invalid_token")
    after_this_second()
    refused(get(dp, "/shop/orders/7", shop.access(dp, "bob")), 403)  # the new token has no staff group


# ---------------------------------------------------------------------------------------------------------------
# api keys


def key_forms(key):
    prefix, secret = key.split(".", 1)
    basic = base64.b64encode(f"{prefix}:{secret}".encode()).decode()
    return {"x-api-key": {"X-API-Key": key}, "apikey": {"Authorization": f"ApiKey {key}"},
            "basic": {"Authorization": f"Basic {basic}"}}


def test_api_key_lifecycle(cp, dp, shop, pyup):
    k, key = shop.api_key("ci", roles=["reader"])
    assert key.startswith(k["prefix"] + ".")
    for form, hdrs in key_forms(key).items():
        seen = cephalo.seen_by_upstream(get(dp, "/shop/orders/7", headers=hdrs))
        ident = identity(seen)
        assert ident["api-key-id"] == str(k["id"]) and "user-id" not in ident, (form, ident)
        assert ident["system"] == "shop" and split(ident["roles"]) == ["reader"], (form, ident)
        # the key never travels on
        assert "x-api-key" not in seen["headers"] and "authorization" not in seen["headers"], (form, seen)
        assert key.split(".")[1] not in str(seen), form
        refused(get(dp, "/shop/orders", headers=hdrs, method="POST"), 403)  # reader, not writer
    # the key is never shown again
    assert b"." + key.split(".")[1].encode() not in cp.admin.get(f"{V1}/api_keys/shop:ci").body
    # revoked: refused as soon as the write is applied
    n = pyup.count
    cp.admin.apply("PUT", f"{V1}/api_keys/shop:ci", {"revoked": True})
    for form, hdrs in key_forms(key).items():
        refused(get(dp, "/shop/orders/7", headers=hdrs), 401)
        refused(get(dp, "/shop/public/x", headers=hdrs), 401)  # an invalid credential is 401 even when public
    assert pyup.count == n


def test_expired_api_key(dp, shop):
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4))
    _, key = shop.api_key("short", roles=["reader"], expires_at=soon)
    assert get(dp, "/shop/orders/7", headers={"X-API-Key": key}).status == 200
    cephalo.wait_until(lambda: get(dp, "/shop/orders/7", headers={"X-API-Key": key}).status == 401, 15,
                       "the key expires", interval=0.2)
    refused(get(dp, "/shop/orders/7", headers={"X-API-Key": key}), 401)
    _, old = shop.api_key("old", roles=["reader"], expires_at="2020-01-01T00:00:00Z")
    refused(get(dp, "/shop/orders/7", headers={"X-API-Key": old}), 401)


def test_bad_api_keys_and_two_credentials(dp, shop, pyup):
    _, key = shop.api_key("ci", roles=["reader"])
    prefix, secret = key.split(".", 1)
    bad = [f"{prefix}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}", f"{prefix}.", f".{secret}", prefix,
           f"0000000000.{secret}", f"{prefix}.{secret}x", "x" * 5000, f"{prefix}..{secret}"]
    if prefix.upper() != prefix:
        bad.append(f"{prefix.upper()}.{secret}")  # the prefix is lower-case hex
    for k in bad:
        for hdrs in key_forms(k if "." in k else k + ".x").values():
            refused(get(dp, "/shop/orders/7", headers=hdrs), 401)
    for raw in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic ", "ApiKey "):
        refused(get(dp, "/shop/public/x", headers={"Authorization": raw}), 401)
    # two different credentials in one request
    token = shop.access(dp, "bob")
    _, key2 = shop.api_key("ci2", roles=["reader"])
    for hdrs in ({"X-API-Key": key}, {"X-API-Key": key2}):
        body = refused(get(dp, "/shop/orders/7", token, headers=hdrs), 401)
        assert body["error"] == "invalid_request", body
    body = refused(get(dp, "/shop/orders/7", headers={"X-API-Key": key, "Authorization": f"ApiKey {key2}"}), 401)
    assert body["error"] == "invalid_request", body
    assert pyup.count == 0


# ---------------------------------------------------------------------------------------------------------------
# spoofing and protocols


SPOOFED = {"X-Cephalo-User-Id": "1", "X-CEPHALO-ROLES": "admin,reader,writer", "x-cephalo-system": "other",
           "X-Cephalo-Request-Id": "spoofed-request-id", "X-Cephalo-Api-Key-Id": "9", "X-Cephalo-Groups": "ops",
           "X-Cephalo-Anything": "x"}


def test_spoofed_identity_headers_never_reach_the_upstream(dp, shop):
    bob = shop.access(dp, "bob")
    for proto in (get, h2):
        ident = identity(cephalo.seen_by_upstream(proto(dp, "/shop/orders/7", bob, headers=SPOOFED)))
        assert ident["user-id"] == shop.uid("bob") and ident["system"] == "shop", (proto, ident)
        assert split(ident["roles"]) == ["reader"] and split(ident["groups"]) == ["staff"], (proto, ident)
        assert ident["request-id"] != "spoofed-request-id", ident
        assert set(ident) == {"user-id", "system", "roles", "groups", "request-id"}, (proto, ident)
        # nobody on a public endpoint: none of them either
        ident = identity(cephalo.seen_by_upstream(proto(dp, "/shop/public/x", headers=SPOOFED)))
        assert set(ident) == {"request-id"} and ident["request-id"] != "spoofed-request-id", (proto, ident)
        ident = identity(cephalo.seen_by_upstream(proto(dp, "/open/x", headers=SPOOFED)))
        assert set(ident) == {"request-id"}, (proto, ident)


@pytest.mark.parametrize("name", ["x_cephalo_user_id", "X_Cephalo_Roles", "x-cephalo_system", "foo_bar"])
def test_a_header_with_an_underscore_is_400(dp, shop, pyup, name):
    bob = shop.access(dp, "bob")
    for proto in (get, h2):
        for target in ("/shop/orders/7", "/shop/public/x", "/open/x"):
            r = proto(dp, target, bob if "orders" in target else None, headers={name: "1"})
            refused(r, 400)
    assert pyup.count == 0


CASES = [  # (user or None, method, target, status)
    (None, "GET", "/shop/public/x", 200),
    (None, "GET", "/shop/orders/7", 401),
    ("bob", "GET", "/shop/orders/7", 200),
    ("alice", "GET", "/shop/orders/7", 403),
    ("alice", "POST", "/shop/orders", 200),
    ("olga", "DELETE", "/shop/ops/x", 200),
    ("bob", "DELETE", "/shop/ops/x", 403),
    ("root", "GET", "/shop/ops/x", 200),
    ("dave", "GET", "/shop/any", 403),
    ("dave", "GET", "/other/x", 200),
    (None, "GET", "/open/x", 200),
    (None, "GET", "/authn/x", 401),
    ("root", "GET", "/closed/x", 403),
    (None, "GET", "/shop/public/../orders/7", 401),
]


def test_same_decisions_over_http1_and_h2c(dp, shop, pyup):
    tokens = {u: shop.access(dp, u, system="other" if u == "dave" else "shop") for u in ("alice", "bob", "olga", "root",
                                                                                         "dave")}
    tokens[None] = None
    got = []
    for user, method, target, want in CASES:
        s1 = get(dp, target, tokens[user], method=method).status
        s2 = h2(dp, target, tokens[user], method=method).status
        got.append((user, method, target, want, s1, s2))
    wrong = [g for g in got if not g[3] == g[4] == g[5]]
    assert not wrong, "(user, method, target, want, http/1.1, h2c):\n" + "\n".join(map(str, wrong))
    assert pyup.count == 2 * sum(1 for c in CASES if c[3] == 200)


def test_upgrade_request_is_decided_before_anything(dp, shop, pyup, procs):
    """A websocket-style Upgrade request runs the same decision: without a token it never reaches the upstream; with
    one the route's websocket policy tunnels it to the service (moved to a websocket echo upstream for this test)."""
    import asyncio
    import os
    import sys
    import websockets
    sys.path.insert(0, os.path.join(cephalo.SOURCE_DIR, "tests", "upstream"))
    from ws_echo import WsEcho
    wsup = WsEcho()
    procs.servers.append(wsup)
    a = shop.admin
    a.apply("PUT", f"{V1}/services/shop", {"name": "shop", "system": "shop", "targets": [{"url": wsup.url}]})
    a.apply("PUT", f"{V1}/routes/shop", {"name": "shop", "service": "shop", "paths": ["/shop"], "strip_prefix": True,
                                         "default_access": "authenticated", "policies": {"websocket": {}}})
    head = ("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{auth}\r\n")
    out = cephalo.raw_request(dp.port, head.format(target="/shop/orders/7", auth="").encode())
    assert out.startswith(b"HTTP/1.1 401"), out[:300]
    out = cephalo.raw_request(dp.port, head.format(target="/closed/x", auth="").encode())
    assert out.startswith(b"HTTP/1.1 403"), out[:300]
    dave = shop.access(dp, "dave", system="other")  # wrong system: 403, before any upgrade
    out = cephalo.raw_request(dp.port, head.format(target="/shop/orders/7", auth=f"Authorization: Bearer {dave}\r\n").encode())
    assert out.startswith(b"HTTP/1.1 403"), out[:300]
    assert pyup.count == 0 and wsup.handshakes == 0

    async def allowed():
        async with websockets.connect(f"ws://127.0.0.1:{dp.port}/shop/orders/7", compression=None, open_timeout=10,
                                      extra_headers=cephalo.bearer(shop.access(dp, "bob"))) as ws:
            await ws.send("hello")
            return await asyncio.wait_for(ws.recv(), 10)
    assert asyncio.run(allowed()) == "hello"
    assert wsup.handshakes == 1
    ident = identity({"headers": wsup.headers[0]})
    assert ident["user-id"] == shop.uid("bob") and ident["system"] == "shop", ident
