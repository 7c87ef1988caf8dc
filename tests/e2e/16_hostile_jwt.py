"""16: hostile bearer tokens and path tricks (docs/access.md sections 2 and 4).

Every hostile token is answered 401 invalid_token - on a protected endpoint and on a public one (a credential that
is presented must be valid) - over HTTP/1.1 and h2c, and the upstream's request count proves that none of them
reached it. The tokens that need a valid signature to test what they test (expired, not yet valid, a kid with
strange characters, claims of the wrong type) are signed with the control plane's own private keys, read from its
database as 12_signing_keys.py does; a forged token with good claims, signed the same way, is accepted (so the
refusals are about what each case changes, not about the signer).

Path tricks against the rules are decided on the canonical path: either refused with 400, or decided exactly as
the canonical path is, with the upstream seeing the canonical path.
"""
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import time

import jwt
import pytest

import cephalo

V1 = "/api/v1"
PROTECTED = "/shop/any"  # GET /any: any authenticated member of shop
PUBLIC = "/shop/public/x"


@pytest.fixture
def world(cp, dp, pyup):
    """The shop, with the control plane's active key rotated to RS256 (the ES256 key stays, retiring)."""
    shop = cephalo.Shop(cp.admin, pyup.url)
    es = cp.admin.ok("GET", f"{V1}/signing_keys")["data"][0]
    rs = cp.admin.apply("POST", f"{V1}/signing_keys/rotate", {"alg": "RS256"}, expect=(201,))["signing_key"]
    token = shop.access(dp, "alice")
    assert jwt.get_unverified_header(token)["kid"] == rs["kid"]
    return World(cp, dp, pyup, shop, token, rs, es)


class World:
    def __init__(self, cp, dp, pyup, shop, token, rs, es):
        self.cp, self.dp, self.pyup, self.shop, self.token = cp, dp, pyup, shop, token
        self.rs_kid, self.es_kid = rs["kid"], es["kid"]
        self.keys = {kid: pems(cp, kid) for kid in (self.rs_kid, self.es_kid)}
        self.claims = jwt.decode(token, options={"verify_signature": False})

    def sign(self, header=None, claims=None, kid=None, alg=None, key_kid=None):
        """A JWT signed with the CP's private key of key_kid (default: the RS256 key). header/claims: members that
        replace the real token's (None as a value removes the member)."""
        key_kid = key_kid or self.rs_kid
        sign_alg = "RS256" if key_kid == self.rs_kid else "ES256"
        h = {"alg": alg or sign_alg, "typ": "JWT", "kid": kid if kid is not None else self.rs_kid}
        h = merged(h, header or {})
        c = merged(self.claims, claims or {})
        msg = signing_input(h, c)
        algo = jwt.algorithms.get_default_algorithms()[sign_alg]
        sig = algo.sign(msg, algo.prepare_key(self.keys[key_kid][1]))
        return msg.decode() + "." + cephalo.b64url(sig)


def pems(cp, kid):
    con = sqlite3.connect(f"file:{os.path.join(cp.data_dir, 'cephalo.db')}?mode=ro", uri=True, timeout=5)
    try:
        (pub, priv), = con.execute("SELECT public_pem, private_pem FROM signing_keys WHERE kid = ?", (kid,)).fetchall()
    finally:
        con.close()
    return pub.encode(), priv.encode()


def merged(base, over):
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def enc(part):
    if isinstance(part, (dict, list)):
        part = json.dumps(part, separators=(",", ":"))
    if isinstance(part, str):
        part = part.encode()
    return cephalo.b64url(part)


def signing_input(header, claims):
    return (enc(header) + "." + enc(claims)).encode()


def hs256(world, header_alg, secret):
    h = {"alg": header_alg, "typ": "JWT", "kid": world.rs_kid}
    msg = signing_input(h, world.claims)
    return msg.decode() + "." + cephalo.b64url(hmac.new(secret, msg, hashlib.sha256).digest())


def flip(sig_segment):
    """The signature segment with one character in its middle changed (not the last one: its low bits are padding)."""
    i = len(sig_segment) // 2
    return sig_segment[:i] + ("A" if sig_segment[i] != "A" else "B") + sig_segment[i + 1:]


def hostile_tokens(w):
    now = int(time.time())
    t = w.token
    h, c, s = t.split(".")
    other = w.shop.access(w.dp, "bob")
    rs_pub = w.keys[w.rs_kid][0]
    from cryptography.hazmat.primitives import serialization
    rs_der = serialization.load_pem_public_key(rs_pub).public_bytes(serialization.Encoding.DER,
                                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    none_h = {"typ": "JWT", "kid": w.rs_kid}
    cases = {
        # algorithm confusion
        "alg none, empty signature": enc(dict(none_h, alg="none")) + "." + c + ".",
        "alg None, empty signature": enc(dict(none_h, alg="None")) + "." + c + ".",
        "alg NONE, empty signature": enc(dict(none_h, alg="NONE")) + "." + c + ".",
        "alg none, a signature": enc(dict(none_h, alg="none")) + "." + c + "." + s,
        "alg nOnE, a signature": enc(dict(none_h, alg="nOnE")) + "." + c + "." + s,
        "HS256 keyed with the RSA public PEM": hs256(w, "HS256", rs_pub),
        "HS256 keyed with the RSA public PEM, no newline": hs256(w, "HS256", rs_pub.rstrip(b"\n")),
        "HS256 keyed with the RSA public DER": hs256(w, "HS256", rs_der),
        "HS512 keyed with the RSA public PEM": hs256(w, "HS512", rs_pub),
        "ES256 header on the RSA kid, signed with the EC key": w.sign(alg="ES256", key_kid=w.es_kid, kid=w.rs_kid),
        "RS256 header on the EC kid, signed with the RSA key": w.sign(kid=w.es_kid),
        "PS256 header": w.sign(alg="PS256"),
        "alg missing": w.sign(header={"alg": None}),
        "alg not a string": w.sign(header={"alg": ["RS256"]}),
        # time
        "expired an hour ago": w.sign(claims={"iat": now - 3900, "nbf": now - 3900, "exp": now - 3600}),
        "expired beyond the leeway": w.sign(claims={"iat": now - 400, "nbf": now - 400, "exp": now - 100}),
        "not valid for an hour": w.sign(claims={"nbf": now + 3600}),
        "issued in an hour": w.sign(claims={"iat": now + 3600, "nbf": now}),
        "exp a string": w.sign(claims={"exp": str(now + 300)}),
        "exp a float": w.sign(claims={"exp": now + 300.5}),
        "exp a float with no fraction": w.sign(claims={"exp": float(now + 300)}),
        "exp beyond int64": signed_raw(w, '"exp":%d' % w.claims["exp"], '"exp":99999999999999999999999'),
        "exp true": w.sign(claims={"exp": True}),
        "exp missing": w.sign(claims={"exp": None}),
        "iat a string": w.sign(claims={"iat": str(now)}),
        "nbf a float": w.sign(claims={"nbf": now + 0.5}),
        # signature
        "bad signature": ".".join((h, c, flip(s))),
        "another token's signature": ".".join((h, c, other.split(".")[2])),
        "claims changed, signature kept": ".".join((h, enc(dict(w.claims, su=True)), s)),
        "signature empty": ".".join((h, c, "")),
        # kid
        "unknown kid": w.sign(kid="0" * 32),
        "kid missing": w.sign(header={"kid": None}),
        "kid empty": w.sign(kid=""),
        "kid a number": w.sign(header={"kid": 1}),
        "kid a path": w.sign(kid="../../../../etc/passwd"),
        "kid an absolute path": w.sign(kid="/dev/null"),
        "kid with SQL": w.sign(kid="' OR '1'='1"),
        "kid with SQL and a comment": w.sign(kid=w.rs_kid + "' --"),
        "kid with a NUL": w.sign(kid=w.rs_kid + "\u0000"),
        "kid upper case": w.sign(kid=w.rs_kid.upper()) if w.rs_kid.upper() != w.rs_kid else w.sign(kid="X"),
        "kid with a trailing space": w.sign(kid=w.rs_kid + " "),
        # claims
        "wrong issuer": w.sign(claims={"iss": "evil"}),
        "issuer missing": w.sign(claims={"iss": None}),
        "sub a number": w.sign(claims={"sub": int(w.claims["sub"])}),
        "sub not digits": w.sign(claims={"sub": "alice"}),
        "sub empty": w.sign(claims={"sub": ""}),
        "sys not a code": w.sign(claims={"sys": "Shop!"}),
        "roles a string": w.sign(claims={"roles": "writer"}),
        "groups of numbers": w.sign(claims={"groups": [1]}),
        "su a string": w.sign(claims={"su": "true"}),
        "jti a number": w.sign(claims={"jti": 5}),
        # structure
        "2 segments": h + "." + c,
        "4 segments": t + "." + s,
        "1 segment": h,
        "empty header segment": "." + c + "." + s,
        "empty claims segment": h + ".." + s,
        "three dots": "...",
        "malformed base64 (*)": h + ".*" + c[1:] + "." + s,
        "standard base64 alphabet": h + "." + c + "." + s.replace("-", "+").replace("_", "/") + "+/",
        "header not JSON": enc("not json") + "." + c + "." + s,
        "header a JSON array": enc([]) + "." + c + "." + s,
        "claims not JSON": h + "." + enc("{") + "." + s,
        "claims a JSON array": h + "." + enc(["sub"]) + "." + s,
        "header with a NUL byte": enc(b'{"alg":"RS256","kid":"' + w.rs_kid.encode() + b'"\x00}') + "." + c + "." + s,
        "not a JWT at all": "hello",
        "spaces inside": h + ". " + c + "." + s,
        "one byte over max_token_bytes": "a" * 8193,
    }
    return cases


def signed_raw(w, find, replace):
    """A token whose claims JSON is the real one with `find` replaced by `replace` (for values json cannot make)."""
    claims = json.dumps(w.claims, separators=(",", ":"))
    assert find in claims, (find, claims)
    h = {"alg": "RS256", "typ": "JWT", "kid": w.rs_kid}
    msg = (enc(h) + "." + enc(claims.replace(find, replace))).encode()
    algo = jwt.algorithms.get_default_algorithms()["RS256"]
    return msg.decode() + "." + cephalo.b64url(algo.sign(msg, algo.prepare_key(w.keys[w.rs_kid][1])))


NOT_TOKEN_SYNTAX = {"spaces inside"}


def request(dp, target, token, proto):
    hdrs = {"Authorization": f"Bearer {token}"}
    if proto == "h1":
        return cephalo.http_request(dp.port, "GET", target, headers=hdrs)
    with socket.create_connection(("127.0.0.1", dp.port), timeout=10) as s:
        return cephalo.h2_request(s, f"127.0.0.1:{dp.port}", target, headers=hdrs)


def test_the_signer_makes_tokens_the_gateway_accepts(world):
    """The control: the real token and a forged one with good claims and the CP's own key are both accepted, so the
    hostile cases below fail for what they change."""
    assert world.dp.get(PROTECTED, headers=cephalo.bearer(world.token)).status == 200
    forged = world.sign(claims={"jti": "0123456789abcdef0123456789abcdef"})
    assert world.dp.get(PROTECTED, headers=cephalo.bearer(forged)).status == 200
    # the retiring ES256 key still verifies what it signs, under its own kid and algorithm
    es = world.sign(key_kid=world.es_kid, kid=world.es_kid)
    assert world.dp.get(PROTECTED, headers=cephalo.bearer(es)).status == 200
    assert world.pyup.count == 3


def test_every_hostile_token_is_401_and_never_reaches_the_upstream(world):
    failures = []
    tokens = hostile_tokens(world)
    for name, token in tokens.items():
        for target in (PROTECTED, PUBLIC):
            for proto in ("h1", "h2"):
                r = request(world.dp, target, token, proto)
                try:
                    assert r.status == 401, f"status {r.status}"
                    # a space inside is not even token syntax (RFC 6750 b64token): that may be invalid_request
                    codes = ("invalid_token", "invalid_request") if name in NOT_TOKEN_SYNTAX else ("invalid_token",)
                    code = r.json().get("error")
                    assert code in codes, r.body[:200]
                    www = r.headers.get("www-authenticate", "")
                    assert 'Bearer realm="cephalo"' in www and f'error="{code}"' in www, www
                    assert token.encode() not in r.body, "the token was echoed"
                except AssertionError as e:
                    failures.append(f"{name} ({target}, {proto}): {e}")
    assert not failures, f"{len(failures)} hostile tokens not refused as they should be:\n" + "\n".join(failures)
    assert world.pyup.count == 0, world.pyup.paths
    assert world.dp.proc.alive()
    m = world.dp.metrics()
    assert (cephalo.metric(m, "cephalo_authn_failures_total") or 0) >= len(tokens), "authn failures are counted"


def test_a_huge_token_is_refused_without_reaching_the_upstream(world):
    """1 MB of token: over every header limit. h2o itself may answer (413/431/400) or close; never a 2xx."""
    token = "eyJ" + "A" * (1 << 20)
    head = f"GET {PROTECTED} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    out = cephalo.raw_request(world.dp.port, head, timeout=10)
    status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else 0
    assert status in (0, 400, 401, 413, 431), out[:300]
    # just over the snapshot's max_token_bytes (8192): the gateway's own 401
    r = world.dp.get(PROTECTED, headers=cephalo.bearer("eyJ" + "A" * 9000))
    assert r.status == 401 and r.json()["error"] == "invalid_token", r
    assert world.pyup.count == 0
    assert world.dp.proc.alive() and world.dp.get(PROTECTED, headers=cephalo.bearer(world.token)).status == 200


# ---------------------------------------------------------------------------------------------------------------
# path tricks


TRICKS = [  # (request target, the canonical target it must be decided as, or None: must be refused with 400)
    ("/shop/public/../ops/x", "/shop/ops/x"),
    ("/shop/public/%2e%2e/ops/x", "/shop/ops/x"),
    ("/shop/public/%2E%2E/ops/x", "/shop/ops/x"),
    ("/shop/public/.%2e/ops/x", "/shop/ops/x"),
    ("/shop/public/./../ops/x", "/shop/ops/x"),
    ("/shop/public/x/../../ops/x", "/shop/ops/x"),
    ("/shop/public/../../shop/ops/x", "/shop/ops/x"),
    ("/shop//ops/x", "/shop/ops/x"),
    ("//shop/ops//x", "/shop/ops/x"),
    ("/shop/public//../ops/x", "/shop/ops/x"),
    ("/shop/%6fps/x", "/shop/ops/x"),
    ("/shop/public/..", "/shop"),
    ("/shop/public/../orders/7", "/shop/orders/7"),
    ("/shop/orders/7?../../public/x", "/shop/orders/7?../../public/x"),
    ("/shop/OPS/x", "/shop/OPS/x"),
    ("/shop/Public/x", "/shop/Public/x"),
    ("/shop/ops", "/shop/ops"),
    ("/shop/ops/", "/shop/ops/"),
    ("/shop/orders/7/", "/shop/orders/7/"),
    ("/shop/public/%252e%252e/ops/x", "/shop/public/%252e%252e/ops/x"),
    ("/shop/public/..%2Fops/x", None),
    ("/shop/public/..%2fops/x", None),
    ("/shop/public%2F..%2Fops/x", None),
    ("/shop/public/%2e%2e%2fops/x", None),
    ("/shop/public/..;/ops/x", None),
    ("/shop/public;x/../ops/x", None),
    ("/shop/ops;x/y", None),
    ("/shop/public/..%5Cops/x", None),
    ("/shop/public/%00/../ops/x", None),
]

# what the canonical targets must come to: the rules are not a formality
CANONICAL = {  # (target, user) -> status
    ("/shop/ops/x", None): 401, ("/shop/ops/x", "bob"): 403, ("/shop/ops/x", "olga"): 200,
    ("/shop/orders/7", None): 401, ("/shop/orders/7", "olga"): 403, ("/shop/orders/7", "bob"): 200,
    ("/shop/OPS/x", None): 401, ("/shop/OPS/x", "bob"): 200,  # no rule: the route's default (authenticated)
    ("/shop/public/%252e%252e/ops/x", None): 200,  # a literal "%2e%2e" segment under /public/
    ("/shop/orders/7?../../public/x", None): 401,  # the query is not part of the path
}


def test_path_tricks_are_decided_on_the_canonical_path(world):
    tokens = {None: None, "bob": world.shop.access(world.dp, "bob"), "olga": world.shop.access(world.dp, "olga")}
    failures = []
    for user, token in tokens.items():
        hdrs = cephalo.bearer(token) if token else {}
        for target, canonical in TRICKS:
            n = world.pyup.count
            r = world.dp.get(target, headers=hdrs)
            if r.status == 400 or canonical is None:
                if r.status != 400 or world.pyup.count != n:
                    failures.append(f"{user} {target}: want 400 and no upstream request, got {r.status}")
                continue
            seen = r.json()["path"] if r.status == 200 else None
            c = world.dp.get(canonical, headers=hdrs)
            want = CANONICAL.get((canonical, user), c.status)
            if c.status != want:
                failures.append(f"{user} canonical {canonical}: want {want}, got {c.status}")
            if r.status != c.status:
                failures.append(f"{user} {target}: {r.status}, but its canonical {canonical} is {c.status}")
            elif r.status == 200 and seen != c.json()["path"]:
                failures.append(f"{user} {target}: the upstream saw {seen}, for {canonical} {c.json()['path']}")
    assert not failures, "\n".join(failures)
