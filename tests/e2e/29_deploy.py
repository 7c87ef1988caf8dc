"""deploy/: the docker-compose stack, checked without Docker (Docker cannot run here).

- `docker-compose -f deploy/docker-compose.yml config -q` passes (Debian's docker-compose 1.29; skipped, saying so,
  only when /usr/bin/docker-compose is missing), and a broken file fails it;
- every image (compose and the Dockerfile's FROM lines) has a pinned tag: never `latest`, never missing, no
  variable; Debian images a dated tag (bookworm-YYYYMMDD); the Dockerfile is multi-stage, builds with the README's
  commands (scripts/deps.sh, cmake Release) and its runtime stage does not;
- every cephalo-controlplane / cephalo-dataplane flag and CEPHALO_* variable used in compose, the Dockerfile or a
  script appears in that binary's --help (CEPHALO_BIN_DIR);
- shell scripts pass `bash -n` (and `dash -n` for /bin/sh ones), Python scripts compile, JSON files parse; the Consul
  service definitions point at the addresses the compose file gives the demo services, the Vault policy is a valid
  JSON policy covering the vault paths the bootstrap configures;
- no secret-looking literal is committed under deploy/ except values clearly marked "demo";
- the bootstrap script creates the demo objects on a real control plane with two data planes, twice (idempotent);
- the walkthrough in miniature: the compose file's own control-plane and data-plane command lines (only addresses
  and paths made local) against the Vault and Consul stand-ins seeded from vault/init.sh and consul/*.json, the demo
  services, bootstrap.py; then login, the injected credentials at the upstream through both data planes, the
  orders-2 registration reaching both, and a Vault rotation reaching the upstream.

Each checker is also run on a bad input, so a check that can never fail would show here.
"""
import base64
import hashlib
import ipaddress
import json
import math
import os
import py_compile
import re
import shlex
import shutil
import subprocess
import sys

import pytest

import cephalo
import standins

DEPLOY = os.path.join(cephalo.SOURCE_DIR, "deploy")
COMPOSE = os.path.join(DEPLOY, "docker-compose.yml")
DOCKERFILE = os.path.join(DEPLOY, "Dockerfile")
DOCKER_COMPOSE = "/usr/bin/docker-compose"
BINARIES = ("cephalo-controlplane", "cephalo-dataplane")


def deploy_files(*exts):
    out = []
    for root, dirs, files in os.walk(DEPLOY):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        out += [os.path.join(root, f) for f in files if not exts or f.endswith(exts)]
    return sorted(out)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------------------------
# compose: docker-compose config, and our own reading of the file (anchors merged, ${VAR:-default} interpolated)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(text):
    """${NAME:-default} -> default, ${NAME} -> "" (what compose does with an empty environment)."""
    return _VAR.sub(lambda m: m.group(2) or "", text)


def load_compose(text=None):
    yaml = pytest.importorskip("yaml", reason="python3-yaml is needed to read the compose file")
    return yaml.safe_load(interpolate(read(COMPOSE) if text is None else text))


def compose_config(path, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    return subprocess.run([DOCKER_COMPOSE, "-f", path, "config", "-q"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def test_compose_config_validates(tmp_path):
    if not os.access(DOCKER_COMPOSE, os.X_OK):
        pytest.skip(f"{DOCKER_COMPOSE} is missing (Debian's docker-compose; scripts/deps.sh does not install it): "
                    "the compose file was not validated")
    r = compose_config(COMPOSE, DEPLOY)
    assert r.returncode == 0, f"docker-compose config -q failed:\n{r.stdout}\n{r.stderr}"
    # the check can fail: an unknown key and a port list that is not a list
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  x:\n    image: redis:7.4.1-alpine\n    ports: 12\n    no_such_key: 1\n")
    r = compose_config(str(bad), str(tmp_path))
    assert r.returncode != 0, "docker-compose config -q accepted a broken file"


def test_compose_stack_shape():
    c = load_compose()
    svcs = c["services"]
    for name in ("vault", "vault-init", "consul", "redis", "controlplane", "dataplane-1", "dataplane-2", "bootstrap",
                 "users", "orders", "products"):
        assert name in svcs, f"compose has no service {name}"
    cp_cmd, dps = svcs["controlplane"]["command"], [svcs["dataplane-1"], svcs["dataplane-2"]]
    # the two data planes share the control plane's socket through one named volume
    sock = cp_cmd[cp_cmd.index("--socket") + 1]
    cp_vol = [v for v in svcs["controlplane"]["volumes"] if v.split(":")[1] == os.path.dirname(sock)]
    assert len(cp_vol) == 1 and cp_vol[0].split(":")[0] in c["volumes"], cp_vol
    for dp in dps:
        assert dp["command"][dp["command"].index("--cp-socket") + 1] == sock
        assert cp_vol[0].split(":")[0] + ":" + os.path.dirname(sock) in dp["volumes"]
    ids = [dp["command"][dp["command"].index("--dp-id") + 1] for dp in dps]
    assert len(set(ids)) == 2, ids
    for name in ("vault", "consul", "redis"):
        assert "healthcheck" in svcs[name], f"{name} has no healthcheck"


# ---------------------------------------------------------------------------------------------------------------
# pinned images

_DEBIAN_TAG = re.compile(r"^[a-z]+-\d{8}(-slim)?$")


def image_problem(ref, local=False):
    """None when ref names a pinned tag, else why not. local: an image compose builds (any fixed tag but latest)."""
    if not isinstance(ref, str) or not ref:
        return "no image"
    if "$" in ref:
        return "a variable in the image reference"
    name, _, digest = ref.partition("@")
    if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        return "a malformed digest"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return "no tag"
    repo, tag = name.rsplit(":", 1)
    if tag == "latest" or not tag:
        return "the tag latest"
    if not local and not re.search(r"\d", tag):
        return f"tag {tag!r} is not a version"
    if repo.rsplit("/", 1)[-1] == "debian" and not _DEBIAN_TAG.match(tag):
        return f"debian tag {tag!r} is not dated (bookworm-YYYYMMDD)"
    return None


def dockerfile_stages(text):
    """[(image, stage name or None, the stage's instructions as text)] of a Dockerfile."""
    stages, cur = [], None
    for line in re.sub(r"\\\n", " ", text).splitlines():
        m = re.match(r"\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", line, re.I)
        if m:
            cur = [m.group(1), m.group(2), ""]
            stages.append(cur)
        elif cur is not None and not line.lstrip().startswith("#"):
            cur[2] += line + "\n"
    return [tuple(s) for s in stages]


def test_image_checker_rejects_unpinned():
    for bad in ("redis", "redis:latest", "hashicorp/vault", "debian:bookworm", "debian:bookworm-slim", "debian:12",
                "python:${PY_TAG}", "python:slim", "localhost:5000/cephalo", "redis:7@sha256:abc"):
        assert image_problem(bad) is not None, bad
    assert image_problem("cephalo:latest", local=True) and image_problem("cephalo", local=True)
    assert image_problem("cephalo:demo", local=True) is None
    for good in ("redis:7.4.1-alpine", "debian:bookworm-20241223-slim", "debian:bookworm-20241223",
                 "localhost:5000/x/cephalo:1.2", "hashicorp/vault:1.18.3@sha256:" + "a" * 64):
        assert image_problem(good) is None, good


def test_images_pinned():
    c = load_compose()
    problems = []
    for name, svc in c["services"].items():
        p = image_problem(svc.get("image"), local="build" in svc)
        if p:
            problems.append(f"service {name}: {svc.get('image')!r}: {p}")
    stages = dockerfile_stages(read(DOCKERFILE))
    names = {s[1] for s in stages if s[1]}
    for image, _, _ in stages:
        if image in names:
            continue
        p = image_problem(image)
        if p:
            problems.append(f"Dockerfile FROM {image}: {p}")
        elif not image.startswith("debian:"):
            problems.append(f"Dockerfile FROM {image}: the image is built on debian:bookworm-YYYYMMDD")
    assert not problems, "\n".join(problems)


def test_dockerfile_multistage_like_readme():
    stages = dockerfile_stages(read(DOCKERFILE))
    assert len(stages) >= 2, "the Dockerfile is not multi-stage"
    build, runtime = stages[0], stages[-1]
    assert "scripts/deps.sh" in build[2], "the build stage does not run scripts/deps.sh"
    assert re.search(r"cmake -S \. -B \S+ -DCMAKE_BUILD_TYPE=Release", build[2]), "no cmake Release configure"
    assert "cmake --build" in build[2]
    assert "deps.sh" not in runtime[2] and "build-essential" not in runtime[2] and "-dev " not in runtime[2], \
        "the runtime stage installs build tools"
    assert re.search(r"COPY --from=%s\b" % re.escape(build[1] or "0"), runtime[2]), "runtime copies nothing from build"
    assert re.search(r"^USER (?!root)\S+", runtime[2], re.M), "the runtime stage runs as root"


# ---------------------------------------------------------------------------------------------------------------
# flags and CEPHALO_* variables against --help

def help_text(binary):
    path = os.path.join(cephalo.BIN_DIR, binary)
    r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def argv_uses(argv):
    """{binary: set of --flags} of one command line (a list), or {} when it does not run a cephalo binary."""
    if not argv:
        return {}
    binary = os.path.basename(str(argv[0]))
    if binary not in BINARIES:
        return {}
    return {binary: {str(a).split("=", 1)[0] for a in argv[1:] if str(a).startswith("--")}}


def script_uses(text):
    """{binary: flags} of every cephalo-* command line in a script (continuation lines joined)."""
    out = {}
    for line in re.sub(r"\\\n", " ", text).splitlines():
        for b in BINARIES:
            for m in re.finditer(r"(?<![\w-])%s\b(.*)" % b, line):
                out.setdefault(b, set()).update(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m.group(1)))
    return out


def flag_problems(uses, helps):
    problems = []
    for binary, flags in sorted(uses.items()):
        known = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", helps[binary]))
        for f in sorted(flags - known):
            problems.append(f"{binary} {f}: not in its --help")
    return problems


def collect_uses():
    uses, env = {}, {}

    def merge(u):
        for b, f in u.items():
            uses.setdefault(b, set()).update(f)

    for name, svc in load_compose()["services"].items():
        argv = []
        for key in ("entrypoint", "command"):
            v = svc.get(key)
            v = shlex.split(v) if isinstance(v, str) else list(v or [])
            merge(argv_uses(v))
            argv += v
        binary = next((os.path.basename(str(a)) for a in argv if os.path.basename(str(a)) in BINARIES), None)
        envs = svc.get("environment") or {}
        if isinstance(envs, list):
            envs = dict(e.split("=", 1) if "=" in e else (e, "") for e in envs)
        if binary:
            env.setdefault(binary, set()).update(k for k in envs if k.startswith("CEPHALO_"))
    for path in deploy_files(".sh", ".py") + [DOCKERFILE]:
        merge(script_uses(read(path)))
    return uses, env


def test_flags_in_help():
    helps = {b: help_text(b) for b in BINARIES}
    for b, h in helps.items():
        assert "--help" in h, f"{b} --help printed no usage: {h[:300]!r}"
    uses, env = collect_uses()
    assert uses.get("cephalo-controlplane") and uses.get("cephalo-dataplane"), f"no cephalo command found: {uses}"
    problems = flag_problems(uses, helps)
    for binary, names in sorted(env.items()):
        for n in sorted(names):
            if n not in helps[binary]:
                problems.append(f"{binary} environment {n}: not in its --help")
    assert not problems, "\n".join(problems)
    # the integration flags the walkthrough names
    readme = {"cephalo-controlplane": set(re.findall(r"(?<![\w-])(--(?:vault|consul)-[a-z0-9-]+)",
                                                     read(os.path.join(DEPLOY, "README.md"))))}
    problems = flag_problems(readme, helps)
    assert not problems, "deploy/README.md:\n" + "\n".join(problems)
    # the check can fail
    bogus = flag_problems({"cephalo-dataplane": {"--listen", "--no-such-flag"}}, helps)
    assert bogus == ["cephalo-dataplane --no-such-flag: not in its --help"], bogus
    assert script_uses("x cephalo-dataplane --a-b \\\n  --c-d 1\n") == {"cephalo-dataplane": {"--a-b", "--c-d"}}


# ---------------------------------------------------------------------------------------------------------------
# scripts, JSON, the Consul and Vault definitions

def test_shell_scripts_parse():
    scripts = deploy_files(".sh")
    assert scripts, "no shell script under deploy/"
    for path in scripts:
        r = subprocess.run(["bash", "-n", path], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"bash -n {path}: {r.stderr}"
        if read(path).startswith("#!/bin/sh") and shutil.which("dash"):
            r = subprocess.run(["dash", "-n", path], capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, f"dash -n {path} (a /bin/sh script must be POSIX): {r.stderr}"
    r = subprocess.run(["bash", "-n"], input="if then fi\n", capture_output=True, text=True, timeout=30)
    assert r.returncode != 0


def test_python_scripts_compile(tmp_path):
    for path in deploy_files(".py"):
        py_compile.compile(path, cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_json_files_parse():
    files = deploy_files(".json")
    assert files, "no JSON file under deploy/"
    for path in files:
        try:
            json.loads(read(path))
        except ValueError as e:
            pytest.fail(f"{path}: {e}")


def static_addresses(c):
    """{ip: service name} of the compose services with a fixed address."""
    out = {}
    for name, svc in c["services"].items():
        nets = svc.get("networks")
        for net in (nets.values() if isinstance(nets, dict) else []):
            if isinstance(net, dict) and net.get("ipv4_address"):
                out[net["ipv4_address"]] = name
    return out


def check_consul_service(s, addrs, subnet, caps):
    """Problems of one Consul service definition (config-file keys lower case, agent API keys capitalised)."""
    g = (lambda k: s.get(k, s.get(k.capitalize()))) if caps else (lambda k: s.get(k))
    name, address, port = g("name"), g("address"), g("port")
    problems = []
    if not name or not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", name):
        problems.append(f"bad name {name!r}")
    try:
        ip = ipaddress.ip_address(address)
        if ip not in subnet or address not in addrs:
            problems.append(f"{name}: address {address} is not a demo container's fixed address")
    except ValueError:
        problems.append(f"{name}: address {address!r} is not an IP literal (the data planes never resolve names)")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(f"{name}: bad port {port!r}")
    checks = s.get("Check") and [s["Check"]] if caps else s.get("checks") or ([s["check"]] if s.get("check") else [])
    if not checks:
        problems.append(f"{name}: no health check")
    for ch in checks or []:
        url = ch.get("HTTP" if caps else "http")
        if not url or not url.startswith(f"http://{address}:{port}/"):
            problems.append(f"{name}: the HTTP check {url!r} is not the instance's own address")
        if not re.fullmatch(r"\d+(ms|s|m)", ch.get("Interval" if caps else "interval", "")):
            problems.append(f"{name}: bad check interval")
    return problems


def test_consul_definitions():
    c = load_compose()
    addrs = static_addresses(c)
    subnet = ipaddress.ip_network(c["networks"]["cephalo"]["ipam"]["config"][0]["subnet"])
    defs = json.loads(read(os.path.join(DEPLOY, "consul", "services.json")))
    problems, names, ids = [], set(), []
    for s in defs["services"]:
        problems += check_consul_service(s, addrs, subnet, caps=False)
        names.add(s["name"])
        ids.append(s["id"])
    assert len(ids) == len(set(ids)), ids
    extra = json.loads(read(os.path.join(DEPLOY, "consul", "orders-2.json")))
    problems += check_consul_service(extra, addrs, subnet, caps=True)
    assert extra["ID"] not in ids
    assert not problems, "\n".join(problems)
    assert {"users", "orders", "products"} <= names
    # the compose service of each registered address is running that demo service
    for s in defs["services"]:
        svc = c["services"][addrs[s["address"]]]
        assert svc["environment"]["SERVICE_NAME"] == s["name"], (s["id"], svc["environment"])
    # the check can fail
    assert check_consul_service({"name": "x", "address": "users", "port": 0}, addrs, subnet, caps=False)


def bootstrap_module():
    """deploy/bootstrap.py as a module (its definitions only: main() runs under __main__), no .pyc left in deploy/."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("deploy_bootstrap", os.path.join(DEPLOY, "bootstrap.py"))
    mod = importlib.util.module_from_spec(spec)
    dont, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.dont_write_bytecode = dont
    return mod


def policy_allows(policy, path, cap):
    for pat, rule in policy["path"].items():
        if (pat == path or (pat.endswith("*") and path.startswith(pat[:-1]))) and cap in rule["capabilities"]:
            return True
    return False


def test_vault_policy_covers_bootstrap_paths():
    policy = json.loads(read(os.path.join(DEPLOY, "vault", "cephalo-policy.json")))
    allowed = {"create", "read", "update", "patch", "delete", "list", "sudo", "deny"}
    for pat, rule in policy["path"].items():
        assert set(rule["capabilities"]) <= allowed, (pat, rule)
        assert "deny" not in rule["capabilities"] and "sudo" not in rule["capabilities"], pat
    boot = bootstrap_module()
    consul_names = {s["name"] for s in json.loads(read(os.path.join(DEPLOY, "consul", "services.json")))["services"]}
    init = read(os.path.join(DEPLOY, "vault", "init.sh"))
    for svc in boot.SERVICES:
        vp = svc["credentials"]["vault_path"]
        assert policy_allows(policy, f"secret/data/{vp}", "read"), vp
        assert policy_allows(policy, f"secret/metadata/{vp}", "read"), vp
        assert re.search(r"put_if_absent %s " % re.escape(vp), init), f"init.sh writes no demo secret at {vp}"
        keys = set(re.findall(r"\{\{([A-Za-z0-9._-]+)\}\}", json.dumps(svc["credentials"])))
        line = re.search(r"put_if_absent %s (.*)" % re.escape(vp), init).group(1)
        assert keys <= set(re.findall(r"([A-Za-z0-9._-]+)=", line)), (vp, keys, line)
        assert svc["consul"]["service"] in consul_names, svc["consul"]
    assert policy_allows(policy, "auth/token/renew-self", "update")
    assert policy_allows(policy, "auth/token/lookup-self", "read")
    assert not policy_allows(policy, "secret/data/other/x", "read")
    assert not policy_allows(policy, "sys/policies/acl/cephalo", "update")


# ---------------------------------------------------------------------------------------------------------------
# secret-looking literals

_SECRET_KEY = r"[A-Za-z0-9_-]*(?:token|secret|password|passwd|api[_-]?key|role[_-]?id)[A-Za-z0-9_-]*"
_ASSIGN = re.compile(r"(?i)[\"']?\b(%s)\b[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9._+/=~-]+)" % _SECRET_KEY)
_DEFAULTS = re.compile(r"(?i)\$\{(%s):?-([^}]*)\}" % _SECRET_KEY)
_FORBIDDEN = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{20,}"), "a Vault token"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), "a GitHub token"),
    (re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}"), "a Slack token"),
]
_WORD = re.compile(r"[A-Za-z0-9+/_=.-]{20,}")


def entropy(s):
    return -sum(s.count(c) / len(s) * math.log2(s.count(c) / len(s)) for c in set(s))


def looks_random(v):
    """A long hex string, or a part (between - _ . = / +) of 12+ characters mixing letters and digits with a high
    entropy: what keys and tokens look like, unlike bookworm-20241223-slim or secret_id_num_uses=0."""
    if v.startswith(("/", "./", "http", "$", "{{")) or "demo" in v.lower():
        return False
    if re.fullmatch(r"[0-9a-fA-F]{32,}", v):
        return True
    return any(len(p) >= 12 and re.search(r"\d", p) and re.search(r"[A-Za-z]", p) and entropy(p) >= 3.3
               for p in re.split(r"[-_.=/+]", v))


def secret_problems(text, where):
    problems = []
    for rx, what in _FORBIDDEN:
        if rx.search(text):
            problems.append(f"{where}: {what}")
    for m in _DEFAULTS.finditer(text):
        if m.group(2) and "demo" not in m.group(2).lower():
            problems.append(f"{where}: default of ${{{m.group(1)}}} is not marked as a demo value")
    for m in _ASSIGN.finditer(text):
        key, val = m.group(1), m.group(2)
        if val.startswith(("$", "{{", "/", "./", "http", "--")) or "demo" in val.lower():
            continue
        # a random-looking value, or any value with a digit (s3cr3t) that is not a small number or duration
        if looks_random(val) or (len(val) >= 6 and re.search(r"\d", val) and not re.fullmatch(r"[\d.]+[a-z]{0,2}",
                                                                                              val)):
            problems.append(f"{where}: {key} has a literal value not marked as a demo value")
    for m in _WORD.finditer(text):
        if looks_random(m.group(0)):
            problems.append(f"{where}: a random-looking literal ({len(m.group(0))} characters) not marked as demo")
    return problems


def test_secret_scanner_finds_secrets():
    bad = {
        "token: s3cr3tV4lu3\n": "token",
        "VAULT_TOKEN: ${VAULT_TOKEN:-root}\n": "default",
        'api_key = "Zq8vL2mX9pR4tY7wK1nB5cD3"\n': "api_key",
        "-----BEGIN PRIVATE KEY-----\n": "PEM",
        "x hvs.CAESIJlWh3Zk2c1Ym9vdHN0cmFwdG9rZW4\n": "Vault token",
        "key 0123456789abcdef0123456789abcdef01234567\n": "random-looking",
        "password=hunter2hunter2\n": "hunter2",
    }
    for text, what in bad.items():
        assert secret_problems(text, "t"), f"not found: {what}"
    fine = ("token: demo-users-token-1\n", "VAULT_TOKEN: ${VAULT_DEV_ROOT_TOKEN:-demo-root-token-not-a-secret}\n",
            '"password": "{{password}}"\n', "token_ttl=5m secret_id_ttl=0\n", "--vault-secret-id-file\n",
            "image: python:3.12.8-slim-bookworm\n", "subnet: 172.28.0.0/24\n")
    for text in fine:
        assert not secret_problems(text, "t"), (text, secret_problems(text, "t"))


def test_no_secret_literals():
    files = [p for p in deploy_files() if not p.endswith((".pyc",))]
    problems = []
    for path in files:
        problems += secret_problems(read(path), os.path.relpath(path, cephalo.SOURCE_DIR))
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------------------------
# the bootstrap script against a real control plane and two data planes

def run_bootstrap(cp, password):
    env = dict(os.environ, CEPHALO_ADMIN_URL=f"http://127.0.0.1:{cp.admin_port}", CEPHALO_ADMIN_TOKEN=cp.token,
               DEMO_PASSWORD=password, EXPECT_DATAPLANES="2", BOOTSTRAP_TIMEOUT_S="20")
    return subprocess.run([sys.executable, os.path.join(DEPLOY, "bootstrap.py")], env=env, capture_output=True,
                          text=True, timeout=60)


def test_bootstrap_creates_the_demo(procs, tmpdir_str):
    cp = cephalo.ControlPlane(procs, tmpdir_str).start()
    dps = [cephalo.DataPlane(procs, tmpdir_str, cp.socket, name=f"dp{i}").start() for i in (1, 2)]
    for dp in dps:
        dp.wait_connected(cp.admin)
    password = cephalo.remember_secret("demo-e2e-password-29")
    for attempt in (1, 2):  # the second run replaces what the first created
        r = run_bootstrap(cp, password)
        assert r.returncode == 0, f"bootstrap run {attempt}:\n{r.stdout}\n{r.stderr}"
        assert password not in r.stdout + r.stderr and cp.token not in r.stdout + r.stderr
    assert "replaced" in r.stdout
    orders = cp.admin.ok("GET", "/api/v1/services/orders", expect=(200,))
    orders = orders.get("service", orders)
    assert orders["consul"] == {"service": "orders", "tag": "v1"}, orders
    assert orders["credentials"]["vault_path"] == "services/orders", orders
    assert "demo-orders-api-key" not in json.dumps(orders)
    for name, access in (("users", "authenticated"), ("orders", "authenticated"), ("products", "public")):
        route = cp.admin.ok("GET", f"/api/v1/routes/{name}", expect=(200,))
        assert route.get("route", route)["default_access"] == access, route
    # both data planes serve it: /users needs a login, alice can log in through either
    for dp in dps:
        assert dp.get("/users/").status == 401
        tokens = dp.tokens(password, username="alice", system="shop")
        r = dp.get("/users/", headers=cephalo.bearer(tokens["access_token"]))
        assert r.status not in (401, 403, 404), r  # 503: no Consul and no Vault here, so no targets, no credentials


# ---------------------------------------------------------------------------------------------------------------
# the walkthrough in miniature: the compose file's own command lines, the Vault and Consul stand-ins seeded from
# vault/init.sh and consul/*.json, the demo services, bootstrap.py, then login, a Consul change, a Vault rotation


def local_argv(argv, mapping):
    """The compose command line with the values of the flags in mapping replaced (a value of None drops the flag)."""
    out, i = [os.path.join(cephalo.BIN_DIR, os.path.basename(argv[0]))], 1
    while i < len(argv):
        flag = argv[i]
        has_value = i + 1 < len(argv) and not str(argv[i + 1]).startswith("--")
        if flag in mapping:
            if mapping[flag] is not None:
                out += [flag, mapping[flag]]
        else:
            out += [flag] + ([str(argv[i + 1])] if has_value else [])
        i += 2 if has_value else 1
    return out


def init_secrets():
    """{path: {key: value}} of vault/init.sh's put_if_absent lines (the demo values)."""
    out = {}
    for m in re.finditer(r"^put_if_absent (\S+) (.*)$", read(os.path.join(DEPLOY, "vault", "init.sh")), re.M):
        out[m.group(1)] = dict(kv.split("=", 1) for kv in m.group(2).split())
        for key, value in out[m.group(1)].items():
            if key != "username":
                cephalo.remember_secret(value)  # 99_secret_leak.py: never in any log of the run
    return out


def fp(value):
    """The demo service's sha256_12 fingerprint of a header value."""
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def demo_get(dp_port, target, access=None):
    r = cephalo.http_get(dp_port, target, headers=cephalo.bearer(access) if access else None)
    assert r.status == 200, f"{target} via :{dp_port} -> {r}"
    return r.json()


def test_walkthrough_in_miniature(procs, tmpdir_str):
    c = load_compose()
    svcs = c["services"]
    env_cp = svcs["controlplane"]["environment"]
    token, password = env_cp["CEPHALO_ADMIN_TOKEN"], svcs["bootstrap"]["environment"]["DEMO_PASSWORD"]
    cp_cmd = svcs["controlplane"]["command"]
    role_id = cp_cmd[cp_cmd.index("--vault-role-id") + 1]
    secrets = init_secrets()

    vault = standins.StandIn(procs, tmpdir_str, "vault", ["--role-id", role_id, "--secret-id", "demo-secret-id-e2e",
                                                          "--approle-ttl", "300"])
    for path, data in secrets.items():
        vault.ctl("/put", {"path": path, "data": data})
    consul = standins.StandIn(procs, tmpdir_str, "consul")
    # the demo services on loopback, registered as consul/services.json registers them in the stack
    addrs = static_addresses(c)
    local = {}  # compose address -> local port
    for ip, name in addrs.items():
        e = svcs[name].get("environment") or {}
        if "SERVICE_NAME" not in e:
            continue
        port = cephalo.free_port()
        procs.add(cephalo.Proc(name, ["/usr/bin/python3", os.path.join(DEPLOY, "demo-service", "app.py")], tmpdir_str,
                               env={"SERVICE_NAME": e["SERVICE_NAME"], "INSTANCE": e["INSTANCE"], "PORT": str(port)}))
        local[ip] = port
    for port in local.values():
        cephalo.wait_until(lambda: cephalo.http_get(port, "/health", timeout=2).status == 200, 10, "a demo service")
    for s in json.loads(read(os.path.join(DEPLOY, "consul", "services.json")))["services"]:
        consul.ctl("/register", {"service": s["name"], "id": s["id"], "address": "127.0.0.1", "tags": s["tags"],
                                 "port": local[s["address"]], "weights": {k.capitalize(): v
                                                                          for k, v in s["weights"].items()}})

    # the control plane with the compose file's flags; only addresses and paths made local
    cpdir = os.path.join(tmpdir_str, "cp")
    os.makedirs(os.path.join(cpdir, "run"))
    sid = os.path.join(tmpdir_str, "secret-id")
    fd = os.open(sid, os.O_WRONLY | os.O_CREAT, 0o400)
    os.write(fd, b"demo-secret-id-e2e\n")
    os.close(fd)
    admin_port, auth_port, sock = cephalo.free_port(), cephalo.free_port(), os.path.join(cpdir, "run", "cp.sock")
    argv = local_argv(cp_cmd, {"--data-dir": cpdir, "--socket": sock, "--admin-listen": f"127.0.0.1:{admin_port}",
                               "--auth-listen": f"127.0.0.1:{auth_port}",
                               "--migrations": os.path.join(cephalo.SOURCE_DIR, "migrations"),
                               "--redis": cephalo.Redis(procs, tmpdir_str).address, "--vault-addr": vault.addr,
                               "--vault-secret-id-file": sid, "--consul-addr": consul.addr})
    cp = procs.add(cephalo.Proc("cp", argv, tmpdir_str, env={"CEPHALO_ADMIN_TOKEN": token}))
    cephalo.wait_until(lambda: cephalo.http_get(admin_port, "/health", timeout=2).status == 200, cephalo.STARTUP_S,
                       "the control plane", proc=cp)
    admin = cephalo.Admin(admin_port, token)
    dps = []
    for name in ("dataplane-1", "dataplane-2"):
        port, status = cephalo.free_port(), cephalo.free_port()
        argv = local_argv(svcs[name]["command"], {"--cp-socket": sock, "--listen": f"127.0.0.1:{port}",
                                                  "--status-listen": f"127.0.0.1:{status}",
                                                  "--state-dir": os.path.join(tmpdir_str, name)})
        p = procs.add(cephalo.Proc(name, argv, tmpdir_str))
        cephalo.wait_until(lambda: cephalo.http_get(status, "/health", timeout=2).status == 200, cephalo.STARTUP_S,
                           name, proc=p)
        dps.append(port)

    env = dict(os.environ, CEPHALO_ADMIN_URL=f"http://127.0.0.1:{admin_port}", CEPHALO_ADMIN_TOKEN=token,
               DEMO_PASSWORD=password, EXPECT_DATAPLANES=svcs["bootstrap"]["environment"]["EXPECT_DATAPLANES"],
               BOOTSTRAP_TIMEOUT_S="30")
    r = subprocess.run([sys.executable, os.path.join(DEPLOY, "bootstrap.py")], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, f"bootstrap:\n{r.stdout}\n{r.stderr}"

    # 1. log in, call the protected endpoints through both data planes: the injected credentials reach the upstream
    login = cephalo.auth_post(dps[0], "/auth/login", cephalo.login_body(password, username="alice", system="shop"))
    assert login.status == 200, login
    access = login.json()["access_token"]
    products = secrets["services/products"]
    basic = "Basic " + base64.b64encode(f"{products['username']}:{products['password']}".encode()).decode()
    want = {"/users/": ("authorization", "Bearer " + secrets["services/users"]["token"]),
            "/orders/": ("x-api-key", secrets["services/orders"]["api_key"]),
            "/products/": ("authorization", basic)}

    def served(port, target, header, value):
        """The demo service's answer once the upstream received header: value (a 503 while the first secrets or
        targets are on their way; a 401/403/404 would not change, so fail at once)."""
        r = cephalo.http_get(port, target, headers=cephalo.bearer(access))
        assert r.status in (200, 503), f"{target} via :{port} -> {r}"
        out = r.json() if r.status == 200 else {}
        return out.get("credentials_received", {}).get(header, {}).get("sha256_12") == fp(value) and out

    for port in dps:
        assert cephalo.http_get(port, "/users/").status == 401
        for target, (header, value) in want.items():
            out = cephalo.wait_until(lambda: served(port, target, header, value), 20, f"{target} with credentials")
            assert out["service"] == target.strip("/"), out
            assert "x-cephalo-user-id" in out["identity"] or target == "/products/", out
    # /products is limited per client address through Redis, shared by both data planes (20/s, burst 10)
    codes = [cephalo.http_get(dps[i % 2], "/products/").status for i in range(40)]
    assert 429 in codes and 200 in codes, codes
    integ = admin.ok("GET", "/api/v1/integrations", expect=(200,))
    assert integ["vault"]["state"] == "ok" and integ["consul"]["state"] == "ok", integ

    # 2. a Consul registration (consul/orders-2.json) reaches both data planes
    reg = json.loads(read(os.path.join(DEPLOY, "consul", "orders-2.json")))
    consul.ctl("/register", {"service": reg["Name"], "id": reg["ID"], "address": "127.0.0.1", "tags": reg["Tags"],
                             "port": local[reg["Address"]], "weights": reg["Weights"]})
    for port in dps:
        cephalo.wait_until(lambda: any(demo_get(port, "/orders/", access)["instance"] == "orders-2"
                                       for _ in range(8)), 20, "orders-2 serving through a data plane")

    # 3. a Vault rotation reaches the upstream through both data planes
    vault.ctl("/put", {"path": "services/orders", "data": {"api_key": "demo-orders-api-key-2"}})
    for port in dps:
        cephalo.wait_until(lambda: served(port, "/orders/", "x-api-key", "demo-orders-api-key-2"), 20,
                           "the rotated api key at the upstream")

    # no secret value in the daemons' logs; the data planes' saved snapshots (which hold them) are 0600
    values = [v for data in secrets.values() for v in data.values()] + ["demo-orders-api-key-2", "demo-secret-id-e2e"]
    for name in ("cp", "dataplane-1", "dataplane-2"):
        for kind in ("stdout", "stderr"):
            text = read(os.path.join(tmpdir_str, f"{name}.{kind}.log"))
            assert not [v for v in values if v in text], f"a secret value in {name}'s {kind}"
        if name != "cp":
            path = os.path.join(tmpdir_str, name, "snapshot.json")
            assert os.stat(path).st_mode & 0o777 == 0o600, oct(os.stat(path).st_mode)
