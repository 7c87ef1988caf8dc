"""26: upstream credentials from Vault (issue 7): the control plane's Vault sync against the Vault stand-in.

The stand-in (tests/standins/vault.py) speaks Vault's KV v2 / token / AppRole wire format and is steered through its
control port; the control plane does not know it is not Vault. An upstream that records request headers
(cephalo.CtlUpstream) shows what the data plane injected.

- rotation: a service's `credentials` templates resolved from Vault reach the upstream request (the client's own
  Authorization is replaced, never forwarded); a new secret version reaches it without a restart and makes exactly
  one new snapshot version; polls that find the same version make none;
- failures: sealed, a 403, a 500, a hanging Vault, a deleted current version and an unreachable Vault each keep the
  last known secret (the data plane keeps answering with it, no new snapshot) and report `degraded` with the reason
  kind in GET /api/v1/integrations; recovery is `ok` again;
- AppRole: login, renew-self once 2/3 of a short TTL has passed, a new login after the tokens are revoked (a 403)
  and before a non-renewable token expires;
- secrecy: no secret value, token or secret id in the control plane's or the data plane's log, nor in any admin API
  answer (services, integrations, the redacted snapshot); the data plane's snapshot file (which must hold them) 0600;
- a path never written in Vault: the service answers 503 credentials_unavailable, the integration is degraded;
- the JWT signing key in Vault (--vault-signing-path): its key signs logins, its row holds no private half, a new
  version rotates (the old key retiring, one snapshot version); after a restart with Vault sealed nothing signs
  until Vault answers, tokens keep verifying, and the same key comes back without a rotation.
"""
import base64
import json
import os
import sqlite3
import stat
import subprocess
import time

import pytest

import cephalo
import standins

V1 = "/api/v1"
ROOT = "root-token-e2e-0f9a8b7c"
ROLE_ID = "role-id-e2e-5d4c3b2a"
SECRET_ID = "secret-id-e2e-1a2b3c4d"
S1 = "s3cr3t-v1-aaaa1111"
S2 = "s3cr3t-v2-bbbb2222"
K1 = "api-key-v1-cccc3333"
for _s in (ROOT, ROLE_ID, SECRET_ID, S1, S2, K1):
    cephalo.remember_secret(_s)  # 99_secret_leak.py: never in any log of the run


class Vault(standins.StandIn):
    """The Vault stand-in with the test's root token and AppRole credentials."""

    def __init__(self, procs, tmpdir, name="vault", args=(), port=None, control_port=None):
        super().__init__(procs, tmpdir, "vault", ["--root-token", ROOT, "--role-id", ROLE_ID, "--secret-id", SECRET_ID]
                         + list(args), name=name, port=port, control_port=control_port)

    def put(self, path, data):
        return self.ctl("/put", {"path": path, "data": data})["version"]


def start_cp(procs, tmpdir, vault, approle=False, timeout_ms=1000, extra=()):
    args = ["--vault-addr", vault.addr, "--vault-poll-s", "1", "--vault-timeout-ms", str(timeout_ms)] + list(extra)
    if approle:
        sid = standins.secret_file(tmpdir, "secret-id", SECRET_ID)
        args += ["--vault-role-id", ROLE_ID, "--vault-secret-id-file", sid]
    else:
        args += ["--vault-token-file", standins.secret_file(tmpdir, "vault-token", ROOT)]
    return cephalo.ControlPlane(procs, tmpdir, extra_args=args).start()


def start_dp(procs, tmpdir, cp):
    dp = cephalo.DataPlane(procs, tmpdir, cp.socket).start()
    dp.wait_connected(cp.admin)
    return dp


def integ(admin):
    return standins.integration(admin, "vault")


def wait_state(admin, state, reason=None, timeout=15):
    return standins.wait_integration(admin, "vault", state, reason, timeout)


def orders(admin, upstream, path="services/orders"):
    admin.apply("POST", f"{V1}/services", {
        "name": "orders", "targets": [{"url": upstream.url, "weight": 1}],
        "credentials": {"vault_path": path,
                        "headers": {"Authorization": "Bearer {{token}}", "X-Upstream-Key": "{{api_key}}"}}})
    admin.apply("POST", f"{V1}/routes", {"name": "orders", "service": "orders", "paths": ["/orders"],
                                         "default_access": "public", "strip_prefix": True})


def call(dp):
    """One request through the data plane with a client's own copy of an injected header (never forwarded).

    (A client's own Authorization would be checked by the gateway's authentication first: 401 for a token it
    cannot verify, so it is not sent here.)"""
    return dp.get("/orders/x", headers={"X-Upstream-Key": "client-key"})


def last_upstream_headers(up):
    with up.lock:
        return dict(up.requests[-1][2]) if up.requests else {}


def wait_secret(dp, up, value, timeout=15):
    def seen():
        r = call(dp)
        return r.status == 200 and last_upstream_headers(up).get("authorization") == f"Bearer {value}"
    cephalo.wait_until(seen, timeout, f"the upstream receiving the secret {value[:9]}...", interval=0.1)


def version(admin):
    return admin.snapshot()["version"]


def assert_no_secret(text, what, extra=()):
    for s in (S1, S2, K1, ROOT, SECRET_ID, "hvs.") + tuple(extra):
        assert s not in text, f"{s[:8]}... found in {what}"


@pytest.fixture
def up():
    u = cephalo.CtlUpstream()
    yield u
    u.close()


# ---------------------------------------------------------------------------------------------------------------


def test_rotation_reaches_upstream(procs, tmpdir_str, up):
    vault = Vault(procs, tmpdir_str)
    vault.put("services/orders", {"token": S1, "api_key": K1})
    cp = start_cp(procs, tmpdir_str, vault)
    dp = start_dp(procs, tmpdir_str, cp)
    admin = cp.admin
    orders(admin, up)

    wait_secret(dp, up, S1)
    h = last_upstream_headers(up)
    assert h["authorization"] == f"Bearer {S1}" and h["x-upstream-key"] == K1  # the client's value never forwarded
    r = call(dp)
    assert r.status == 200 and S1.encode() not in r.body and K1.encode() not in r.body
    assert S1 not in json.dumps(r.headers)
    v = wait_state(admin, "ok")
    assert v["auth"] == "token"
    assert [(s["path"], s["version"], sorted(s["keys"])) for s in v["secrets"]] == \
        [("services/orders", 1, ["api_key", "token"])]

    # an unchanged poll writes nothing: the version stays while the thread polls every second
    before = version(admin)
    time.sleep(3.5)
    assert version(admin) == before

    # a new version: exactly one new snapshot version, reaching the upstream without a restart
    assert vault.put("services/orders", {"token": S2, "api_key": K1}) == 2
    wait_secret(dp, up, S2)
    assert version(admin) == before + 1
    time.sleep(2.5)
    assert version(admin) == before + 1
    assert integ(admin)["secrets"][0]["version"] == 2
    db = sqlite3.connect(os.path.join(cp.data_dir, "cephalo.db"))
    try:
        rows = db.execute("SELECT entity_type, before, after FROM audit WHERE actor = 'vault'").fetchall()
    finally:
        db.close()
    assert [r[0] for r in rows] == ["vault_secret", "vault_secret"], rows
    assert_no_secret(json.dumps(rows), "the audit rows")
    assert stat.S_IMODE(os.stat(os.path.join(cp.data_dir, "cephalo.db")).st_mode) == 0o600

    # never in an admin answer, never in a log; the data plane's snapshot file holds them, 0600
    for path in (f"{V1}/services/orders", f"{V1}/services", f"{V1}/integrations", f"{V1}/snapshot?body=1"):
        r = admin.get(path)
        assert r.status == 200, (path, r)
        assert_no_secret(r.body.decode(), path)
    assert "(redacted)" in admin.get(f"{V1}/snapshot?body=1").body.decode()
    snap = os.path.join(dp.state_dir, "snapshot.json")
    assert stat.S_IMODE(os.stat(snap).st_mode) == 0o600
    with open(snap) as f:
        assert S2 in f.read()
    assert_no_secret(cp.proc.stderr_text() + open(cp.proc.stdout_path).read(), "the control plane's log")
    assert_no_secret(dp.proc.stderr_text() + open(dp.proc.stdout_path).read(), "the data plane's log")


def test_failures_keep_last_known(procs, tmpdir_str, up):
    vault = Vault(procs, tmpdir_str)
    vault.put("services/orders", {"token": S1, "api_key": K1})
    cp = start_cp(procs, tmpdir_str, vault, timeout_ms=800)
    dp = start_dp(procs, tmpdir_str, cp)
    admin = cp.admin
    orders(admin, up)
    wait_secret(dp, up, S1)
    wait_state(admin, "ok")
    ver = version(admin)

    def degraded(reason):
        v = wait_state(admin, "degraded", reason)
        assert v["errors_total"] >= 1
        wait_secret(dp, up, S1, timeout=3)  # the data plane still injects the last known secret
        assert version(admin) == ver
        assert_no_secret(json.dumps(integ(admin)), "the integrations answer")

    for control, body, reason in (("/seal", None, "sealed"),
                                  ("/fail", {"status": 403, "errors": ["permission denied"]}, "forbidden"),
                                  ("/fail", {"status": 500, "errors": ["internal error"]}, "server_error"),
                                  ("/fail", {"status": 200, "raw": "{not json"}, "bad_response"),
                                  ("/hang", {"on": True}, "timeout")):
        vault.ctl(control, body)
        degraded(reason)
        vault.ctl("/unseal")
        vault.ctl("/fail", {"status": 0})
        vault.ctl("/hang", {"on": False})
        wait_state(admin, "ok")

    m = cephalo.http_request(cp.admin_port, "GET", "/metrics", headers={"Authorization": f"Bearer {cp.token}"})
    if m.status == 200:  # CP metrics (integ): the errors of each kind were counted
        text = m.body.decode()
        for reason in ("sealed", "forbidden", "timeout"):
            assert f'reason="{reason}"' in text, reason
        assert_no_secret(text, "the control plane's metrics")

    # the current version deleted in Vault: keep the last one, degraded not_found
    vault.put("services/orders", {"token": S2, "api_key": K1})
    wait_secret(dp, up, S2)
    ver = version(admin)
    vault.put("services/orders", {"token": "never-seen", "api_key": K1})
    vault.ctl("/delete", {"path": "services/orders"})
    v = wait_state(admin, "degraded", "not_found")
    assert v["secrets"][0]["version"] == 2
    wait_secret(dp, up, S2, timeout=3)
    assert version(admin) == ver

    # unreachable: the stand-in is gone; the data plane keeps the last known secret
    vault.proc.stop()
    wait_state(admin, "degraded", "unreachable")
    wait_secret(dp, up, S2, timeout=3)
    assert version(admin) == ver
    # back on the same port with a new version: picked up, one more snapshot version
    vault2 = Vault(procs, tmpdir_str, name="vault2", port=vault.port)
    vault2.put("services/orders", {"token": S1, "api_key": K1})
    wait_secret(dp, up, S1)
    wait_state(admin, "ok")
    assert version(admin) == ver + 1
    assert_no_secret(cp.proc.stderr_text(), "the control plane's log", extra=("never-seen",))


def test_approle_login_renewal_relogin(procs, tmpdir_str, up):
    vault = Vault(procs, tmpdir_str, args=["--approle-ttl", "6"])
    vault.put("services/orders", {"token": S1, "api_key": K1})
    cp = start_cp(procs, tmpdir_str, vault, approle=True)
    dp = start_dp(procs, tmpdir_str, cp)
    admin = cp.admin
    orders(admin, up)
    wait_secret(dp, up, S1)
    v = wait_state(admin, "ok")
    assert v["auth"] == "approle" and v["token_renewable"] is True and v["token_expires_at"]

    def count(path):
        return sum(1 for r in vault.requests() if r["path"] == path)

    # renew-self before the 6 s TTL runs out, over and over: the token stays valid, no new login
    logins = count("/v1/auth/approle/login")
    assert logins == 1
    cephalo.wait_until(lambda: count("/v1/auth/token/renew-self") >= 2, 20, "two renewals")
    assert count("/v1/auth/approle/login") == 1
    assert integ(admin)["state"] == "ok"
    assert all(r["has_token"] for r in vault.requests() if r["path"] != "/v1/auth/approle/login")
    assert not any(r["has_token"] for r in vault.requests() if r["path"] == "/v1/auth/approle/login")

    # every token revoked: the next call gets a 403, the control plane logs in again and goes on
    vault.ctl("/revoke", {"all": True})
    cephalo.wait_until(lambda: count("/v1/auth/approle/login") >= 2, 15, "a new AppRole login after a 403")
    vault.put("services/orders", {"token": S2, "api_key": K1})
    wait_secret(dp, up, S2)
    wait_state(admin, "ok")

    # tokens that cannot be renewed: a new login before each one expires, no failure in between
    vault.ctl("/approle", {"renewable": False})
    vault.ctl("/revoke", {"all": True})
    n = count("/v1/auth/approle/login")
    cephalo.wait_until(lambda: count("/v1/auth/approle/login") >= n + 2, 20, "logins ahead of expiry")
    assert integ(admin)["token_renewable"] is False
    wait_state(admin, "ok")

    # a wrong secret id: degraded (bad_response: Vault answers 400), the last known secret kept
    vault.ctl("/revoke", {"all": True})
    vault.ctl("/fail", {"status": 400, "errors": ["invalid role or secret ID"], "match": "approle"})
    wait_state(admin, "degraded")
    wait_secret(dp, up, S2, timeout=3)
    vault.ctl("/fail", {"status": 0})
    wait_state(admin, "ok")
    assert_no_secret(cp.proc.stderr_text(), "the control plane's log")


def test_missing_secret_and_list(procs, tmpdir_str, up):
    vault = Vault(procs, tmpdir_str)
    cp = start_cp(procs, tmpdir_str, vault)
    dp = start_dp(procs, tmpdir_str, cp)
    admin = cp.admin
    orders(admin, up, path="services/orders")

    # never written in Vault: no credentials to inject, so the service is not called at all
    wait_state(admin, "degraded", "not_found")
    r = call(dp)
    assert r.status == 503, r
    assert r.json().get("error") == "credentials_unavailable"
    assert up.requests == []

    # written: picked up within a poll
    vault.put("services/orders", {"token": S1, "api_key": K1})
    wait_secret(dp, up, S1)
    wait_state(admin, "ok")

    # the admin LIST: key names only
    vault.put("services/billing/main", {"token": "x"})
    r = admin.get(f"{V1}/integrations/vault/paths?prefix=services/")
    assert r.status == 200, r
    assert r.json()["keys"] == ["billing/", "orders"]
    assert admin.get(f"{V1}/integrations/vault/paths?prefix=../sys").status == 400
    assert admin.get(f"{V1}/integrations/vault/paths?prefix=nothing/here").status == 404


def gen_ec_key():
    return subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                          capture_output=True, check=True, text=True, timeout=20).stdout


def kid_of(token):
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


def active_kid(admin):
    keys = [k for k in admin.ok("GET", f"{V1}/signing_keys", expect=(200,))["data"] if k["state"] == "active"]
    return keys[0]["kid"] if keys else None


def db_rows(cp, sql):
    db = sqlite3.connect(os.path.join(cp.data_dir, "cephalo.db"))
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_signing_key_in_vault(procs, tmpdir_str, up):
    vault = Vault(procs, tmpdir_str)
    pem1, pem2 = gen_ec_key(), gen_ec_key()
    vault.put("keys/jwt", {"private_key": pem1, "kid": "vault-k1"})
    extra = ["--vault-signing-path", "keys/jwt"]
    cp = start_cp(procs, tmpdir_str, vault, extra=extra)
    dp = start_dp(procs, tmpdir_str, cp)
    admin = cp.admin
    cephalo.wait_until(lambda: active_kid(admin) == "vault-k1", 15, "the Vault key active", interval=0.1)
    cephalo.Shop(admin, up.url)
    admin.settle()
    password = cephalo.Shop.PASSWORDS["alice"]
    tok = dp.tokens(password, username="alice", system="shop")["access_token"]
    assert kid_of(tok) == "vault-k1"
    assert dp.get("/shop/any", headers=cephalo.bearer(tok)).status == 200
    assert db_rows(cp, "SELECT private_pem IS NULL, source FROM signing_keys WHERE kid = 'vault-k1'") == \
        [(1, "vault:keys/jwt@1")]
    middle = pem1.splitlines()[2]  # a base64 line of the private key
    for name in ("cephalo.db", "cephalo.db-wal"):
        path = os.path.join(cp.data_dir, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                assert middle.encode() not in f.read(), f"the Vault private key is in {name}"

    # a new version: one rotation, the old key retiring (still verifying), the new one signing
    ver = version(admin)
    vault.put("keys/jwt", {"private_key": pem2})
    cephalo.wait_until(lambda: active_kid(admin) not in (None, "vault-k1"), 15, "the new Vault key active", interval=0.1)
    new_kid = active_kid(admin)
    assert len(new_kid) == 32
    assert version(admin) == ver + 1
    states = {k["kid"]: k["state"] for k in admin.ok("GET", f"{V1}/signing_keys", expect=(200,))["data"]}
    assert states["vault-k1"] == "retiring"
    admin.settle()
    assert dp.get("/shop/any", headers=cephalo.bearer(tok)).status == 200
    tok2 = dp.tokens(password, username="alice", system="shop")["access_token"]
    assert kid_of(tok2) == new_kid
    ver = version(admin)

    # restart while Vault is sealed: nothing to sign with (refused, never a token), verification goes on
    cp.proc.stop()
    vault.ctl("/seal")
    cp = start_cp(procs, tmpdir_str, vault, extra=extra)
    admin = cp.admin
    wait_state(admin, "degraded", "sealed")
    dp.wait_connected(admin)
    r = dp.login(password, username="alice", system="shop")
    assert r.status == 503, r  # nothing to sign with: unavailable, never a token
    assert r.headers.get("retry-after") == "5", r
    assert b"access_token" not in r.body
    assert dp.get("/shop/any", headers=cephalo.bearer(tok2)).status == 200
    vault.ctl("/unseal")
    wait_state(admin, "ok")
    tok3 = dp.tokens(password, username="alice", system="shop")["access_token"]
    assert kid_of(tok3) == new_kid
    assert version(admin) == ver  # the same key held again: no rotation
    assert_no_secret(cp.proc.stderr_text(), "the control plane's log", extra=(middle, pem2.splitlines()[2]))
