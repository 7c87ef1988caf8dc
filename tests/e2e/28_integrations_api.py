"""28: the control plane's integrations surface (issue 7): GET /api/v1/integrations, GET /metrics, the Vault and
Consul flags.

- Everything disabled: both integrations "disabled", no metric sample of theirs, admin auth on every path (401
  without or with a wrong token, 405 with Allow for another method).
- GET /metrics: read by a strict parser of the text format 0.0.4 (every family HELP then TYPE, sample names of the
  family, label syntax, no duplicate series); the snapshot version and the connected data planes are the real ones.
- GET /api/v1/integrations/vault/paths?prefix=: hostile prefixes are a 400 JSON answer before anything else; a good
  one without Vault is 503.
- Flags: a bad value exits 2 at once with one line naming the flag and never the value (a token given as a flag is
  refused, an unknown option is named without its value), before the database is opened.
- Wiring: with an address where nothing listens, the Vault thread runs and reports `unreachable` in the API and the
  metrics; a group/world-readable token file is warned about; the token appears in no answer and no log line.
"""
import os
import re
import stat
import subprocess

import cephalo

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SECRET = "s.TOPSECRET-0123456789"
FLAGS = ["--vault-addr", "--vault-token-file", "--vault-role-id", "--vault-secret-id-file", "--vault-kv-mount",
         "--vault-poll-s", "--vault-timeout-ms", "--vault-signing-path", "--consul-addr", "--consul-token-file",
         "--consul-wait-s", "--consul-datacenter"]


def strict_metrics(text):
    """Prometheus text 0.0.4 as we write it -> ({family: type}, {(name, frozenset(labels)): value}); asserts on
    anything else."""
    assert text.endswith("\n"), "the body must end with a newline"
    families, samples, current, pending = {}, {}, None, None
    for line in text[:-1].split("\n"):
        assert line and line == line.strip(), f"empty or padded line {line!r}"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert NAME.fullmatch(name) and help_text and pending is None, line
            assert name not in families, f"family {name} twice"
            pending = name
        elif line.startswith("# TYPE "):
            name, typ = line[7:].split(" ")
            assert name == pending and typ in ("counter", "gauge", "histogram"), line
            families[name], current, pending = typ, name, None
        else:
            assert not line.startswith("#"), f"unknown comment {line!r}"
            m = SAMPLE.fullmatch(line)
            own = {current} if families.get(current) != "histogram" else {current + s for s in ("_bucket", "_sum", "_count")}
            assert m and m.group(1) in own and pending is None, f"sample outside its family: {line!r}"
            labels, rest = {}, m.group(2)
            if rest is not None:
                pos = 0
                while pos < len(rest):
                    lm = LABEL.match(rest, pos)
                    assert lm and lm.group(1) not in labels, f"bad label at {pos} in {line!r}"
                    labels[lm.group(1)] = lm.group(2)
                    pos = lm.end()
                    if pos < len(rest):
                        assert rest[pos] == ",", line
                        pos += 1
                assert rest and not rest.endswith(","), line
            value = float(m.group(3))
            if families[current] == "counter":
                assert value >= 0, line
            key = (m.group(1), frozenset(labels.items()))
            assert key not in samples, f"series twice: {line!r}"
            samples[key] = value
    assert pending is None
    return families, samples


def metrics(cp, token=...):
    tok = cp.token if token is ... else token
    return cephalo.http_request(cp.admin_port, "GET", "/metrics",
                                headers={"Authorization": f"Bearer {tok}"} if tok is not None else {})


def run_cp(tmpdir, args, env=None):
    """The control plane binary with args that must make it exit at once; returns the CompletedProcess."""
    data = os.path.join(tmpdir, "cp-flags")
    full_env = dict(os.environ)
    for k in list(full_env):
        if k.startswith("CEPHALO_VAULT") or k.startswith("CEPHALO_CONSUL"):
            del full_env[k]
    full_env.update(env or {})
    p = subprocess.run([os.path.join(cephalo.BIN_DIR, "cephalo-controlplane"), "--data-dir", data,
                        "--admin-listen", f"127.0.0.1:{cephalo.free_port()}", "--auth-listen", "off"] + args,
                       env=full_env, capture_output=True, timeout=30)
    assert not os.path.exists(os.path.join(data, "cephalo.db")), "the database was opened before the flags were checked"
    return p


# ---------------------------------------------------------------------------------------------------------------


def test_integrations_disabled(cp, admin):
    r = admin.get("/api/v1/integrations")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"vault", "consul"}
    for name in ("vault", "consul"):
        one = body[name]
        assert one["state"] == "disabled" and one["reason"] is None and one["last_success"] is None, one
        assert one["errors_total"] == 0 and one["syncs_total"] == 0, one
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", one["since"]), one
        assert "addr" not in one and "secrets" not in one, one
        assert admin.ok("GET", f"/api/v1/integrations/{name}", expect=(200,)) == one
    r = admin.get("/api/v1/integrations/nope")
    assert r.status == 404 and r.json()["error"] == "not_found"
    for path in ("/api/v1/integrations/vault/paths/x", "/api/v1/integrations/vault/", "/api/v1/integrations/a/b"):
        assert admin.get(path).status == 404, path
    r = admin.post("/api/v1/integrations", {})
    assert r.status == 405 and r.headers["allow"] == "GET"
    for token in (None, "wrong-token-0123456789abcdef"):
        for path in ("/api/v1/integrations", "/api/v1/integrations/vault/paths?prefix=..", "/metrics"):
            r = admin.get(path, token=token)
            assert r.status == 401, (path, r)
            assert r.json()["error"] == "unauthorized" and r.headers.get("www-authenticate") == "Bearer"


def test_metrics_format(cp, admin, make_dp):
    r = metrics(cp)
    assert r.status == 200, r
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert r.headers.get("cache-control") == "no-store"
    families, samples = strict_metrics(r.body.decode())
    for fam, typ in (("cephalo_cp_snapshot_version", "gauge"), ("cephalo_cp_dataplanes_connected", "gauge"),
                     ("cephalo_cp_integration_up", "gauge"), ("cephalo_cp_integration_errors_total", "counter"),
                     ("cephalo_cp_integration_syncs_total", "counter"),
                     ("cephalo_cp_vault_token_expiry_seconds", "gauge")):
        assert families.get(fam) == typ, (fam, families)
    assert samples[("cephalo_cp_snapshot_version", frozenset())] == admin.snapshot()["version"]
    assert samples[("cephalo_cp_dataplanes_connected", frozenset())] == 0
    assert not [k for k in samples if k[0].startswith("cephalo_cp_integration") or "vault" in k[0]], samples

    # the numbers are live: a data plane connects, a write makes a new version
    make_dp()
    out = admin.apply("POST", "/api/v1/services", {"name": "m28", "targets": [{"url": "http://127.0.0.1:9"}]})
    _, samples = strict_metrics(metrics(cp).body.decode())
    assert samples[("cephalo_cp_dataplanes_connected", frozenset())] == 1
    assert samples[("cephalo_cp_snapshot_version", frozenset())] == out["version"]

    r = cephalo.http_request(cp.admin_port, "POST", "/metrics", body=b"", headers={"Authorization": f"Bearer {cp.token}"})
    assert r.status == 405 and r.headers.get("allow") == "GET"
    assert metrics(cp, token="x" * 5000).status == 401


def test_vault_paths_prefix(cp, admin):
    hostile = ["..", "../etc", "a/../b", "a/./b", "%2e%2e", "%2e%2e%2fsys", "a//b", "/a", "%2fv1%2fsys%2fseal", "a%0ab",
               "a%0d%0aX-Evil:%201", "a%00b", "a%20b", "%c3%a9", "a%5cb", "a%3fb", "a%23b", "a" * 257, "."]
    for p in hostile:
        r = admin.get(f"/api/v1/integrations/vault/paths?prefix={p}")
        assert r.status == 400, (p, r)
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["error"] == "invalid" and "prefix" in body["message"], body
        if len(p) > 3:
            assert p not in body["message"]
    for p in ("", "services", "services/", "a.b/c-d_e/"):
        r = admin.get(f"/api/v1/integrations/vault/paths?prefix={p}")
        assert r.status == 503 and r.json()["error"] == "unavailable", (p, r)
    assert admin.get("/api/v1/integrations/vault/paths").status == 503


def test_help_lists_flags(tmpdir_str):
    p = subprocess.run([os.path.join(cephalo.BIN_DIR, "cephalo-controlplane"), "--help"], capture_output=True, timeout=30)
    assert p.returncode == 0
    text = p.stdout.decode()
    for flag in FLAGS:
        assert flag in text, flag
    for env in ("CEPHALO_VAULT_TOKEN", "CEPHALO_CONSUL_TOKEN", "CEPHALO_VAULT_ADDR", "CEPHALO_CONSUL_ADDR"):
        assert env in text, env


def test_bad_flags_exit_2(tmpdir_str):
    tokfile = os.path.join(tmpdir_str, "bad-token")
    with open(tokfile, "w") as f:
        f.write(f"{SECRET} {SECRET}\n")
    os.chmod(tokfile, 0o600)
    env_tok = {"CEPHALO_VAULT_TOKEN": SECRET}
    vault = ["--vault-addr", "http://127.0.0.1:8200"]
    cases = [
        (["--vault-addr", "ftp://vault"], env_tok, "--vault-addr"),
        (["--vault-addr", f"http://{SECRET}@vault:8200"], env_tok, "--vault-addr"),
        (vault + ["--vault-poll-s", "0"], env_tok, "--vault-poll-s"),
        (vault + ["--vault-poll-s", "3601"], env_tok, "--vault-poll-s"),
        (vault + ["--vault-timeout-ms", "99"], env_tok, "--vault-timeout-ms"),
        (vault + ["--vault-kv-mount", "../sys"], env_tok, "--vault-kv-mount"),
        (vault + ["--vault-signing-path", "a//b"], env_tok, "--vault-signing-path"),
        (vault, {"CEPHALO_VAULT_TOKEN": SECRET + "\r\nX-Evil: 1"}, "CEPHALO_VAULT_TOKEN"),
        (vault, {}, "--vault-token-file"),
        (vault + ["--vault-token-file", tokfile], {}, "--vault-token-file"),
        (vault + ["--vault-token-file", "/nonexistent/" + SECRET], {}, "--vault-token-file"),
        (vault + ["--vault-token-file", tokfile], env_tok, "CEPHALO_VAULT_TOKEN"),
        (vault + ["--vault-role-id", "role"], {}, "--vault-secret-id-file"),
        (vault + ["--vault-role-id", SECRET + "\n", "--vault-secret-id-file", tokfile], {}, "--vault-role-id"),
        (["--vault-kv-mount", "kv"], {}, "--vault-addr"),
        ([], env_tok, "--vault-addr"),
        (["--consul-addr", "consul:8500"], {}, "--consul-addr"),
        (["--consul-addr", "http://127.0.0.1:8500", "--consul-wait-s", "601"], {}, "--consul-wait-s"),
        (["--consul-addr", "http://127.0.0.1:8500", "--consul-datacenter", "dc 1"], {}, "--consul-datacenter"),
        (["--consul-addr", "http://127.0.0.1:8500"], {"CEPHALO_CONSUL_TOKEN": SECRET + "\n"}, "CEPHALO_CONSUL_TOKEN"),
        (["--consul-datacenter", "dc1"], {}, "--consul-addr"),
        ([f"--vault-token={SECRET}"], {}, "--vault-token-file"),
        (["--consul-token", SECRET], {}, "--consul-token-file"),
        ([f"--vault-tokn={SECRET}"], {}, "--vault-tokn"),
    ]
    for args, env, flag in cases:
        p = run_cp(tmpdir_str, args, env)
        err = p.stderr.decode("utf-8", "replace")
        assert p.returncode == 2, (args, p.returncode, err)
        first = err.splitlines()[0] if err else ""
        assert first.startswith("cephalo-controlplane: ") and flag in first, (args, err)
        assert SECRET not in err and SECRET not in p.stdout.decode("utf-8", "replace"), (args, err)


def test_vault_unreachable_wiring(procs, tmpdir_str):
    tokfile = os.path.join(tmpdir_str, "vault-token")
    with open(tokfile, "w") as f:
        f.write(SECRET + "\n")
    os.chmod(tokfile, 0o644)  # loose: warned about, still used
    vault_addr = f"http://127.0.0.1:{cephalo.free_port()}"  # nothing listens there
    consul_addr = f"http://127.0.0.1:{cephalo.free_port()}"
    cp = cephalo.ControlPlane(procs, tmpdir_str, extra_args=[
        "--vault-addr", vault_addr, "--vault-token-file", tokfile, "--vault-poll-s", "1", "--vault-timeout-ms", "500",
        "--consul-addr", consul_addr, "--consul-wait-s", "1"]).start()
    admin = cp.admin
    assert stat.S_IMODE(os.stat(tokfile).st_mode) == 0o644  # read, never changed

    def degraded():
        v = admin.ok("GET", "/api/v1/integrations/vault", expect=(200,))
        return v if v["state"] == "degraded" else None
    v = cephalo.wait_until(degraded, 20, "vault degraded", proc=cp.proc)
    assert v["reason"].startswith("unreachable: "), v
    assert v["addr"] == vault_addr and v["auth"] == "token" and v["poll_s"] == 1, v
    assert v["errors_total"] >= 1 and v["last_success"] is None, v
    c = admin.ok("GET", "/api/v1/integrations/consul", expect=(200,))
    assert c["state"] != "disabled" and c["addr"] == consul_addr and c["wait_s"] == 1, c

    _, samples = strict_metrics(metrics(cp).body.decode())
    assert samples[("cephalo_cp_integration_up", frozenset({("integration", "vault")}))] == 0
    assert samples[("cephalo_cp_integration_errors_total",
                    frozenset({("integration", "vault"), ("reason", "unreachable")}))] >= 1
    assert ("cephalo_cp_integration_syncs_total", frozenset({("integration", "consul")})) in samples
    assert ("cephalo_cp_vault_token_expiry_seconds", frozenset()) not in samples

    r = admin.get("/api/v1/integrations/vault/paths?prefix=services/")
    assert r.status == 503 and r.json()["error"] == "unavailable", r
    assert admin.get("/api/v1/integrations/vault/paths?prefix=../x").status == 400

    answers = admin.get("/api/v1/integrations").body.decode() + metrics(cp).body.decode()
    assert SECRET not in answers
    cp.proc.stop()
    err = cp.proc.stderr_text()
    assert "--vault-token-file" in err and "group" in err, cp.proc.tail()
    assert SECRET not in err
    with open(cp.proc.stdout_path, "rb") as f:
        assert SECRET.encode() not in f.read()
