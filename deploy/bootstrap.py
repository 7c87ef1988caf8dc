#!/usr/bin/env python3
"""Creates the demo objects of the Cephalo docker-compose stack through the admin API (Python stdlib only).

Run by the compose service "bootstrap" once both data planes are healthy; also runnable from the host:

    CEPHALO_ADMIN_URL=http://127.0.0.1:8001 CEPHALO_ADMIN_TOKEN=demo-admin-token-change-me \
        python3 deploy/bootstrap.py

Creates, or replaces when it exists (so a re-run is harmless), waiting each time until the connected data planes
applied it (?wait=applied):
  - the system "shop", its role "customer", the user "alice" (password $DEMO_PASSWORD) holding it;
  - the services users, orders and products, whose targets come from Consul (`consul`) and whose upstream
    credentials come from Vault (`credentials`: a bearer token, an API key header, HTTP basic);
  - the routes /users and /orders (a login needed) and /products (public, 20 requests/s per client IP shared by
    the data planes through Redis).

Environment: CEPHALO_ADMIN_URL (default http://127.0.0.1:8001), CEPHALO_ADMIN_TOKEN (required), DEMO_PASSWORD
(default the demo value "demo-password-change-me"), EXPECT_DATAPLANES (default 2: wait until that many are connected
before writing; 0 = do not wait), BOOTSTRAP_TIMEOUT_S (default 120). Exit status 0 when everything is applied.
The admin token and the password are never printed.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ADMIN = os.environ.get("CEPHALO_ADMIN_URL", "http://127.0.0.1:8001").rstrip("/")
TOKEN = os.environ.get("CEPHALO_ADMIN_TOKEN", "")
PASSWORD = os.environ.get("DEMO_PASSWORD", "demo-password-change-me")
EXPECT_DPS = int(os.environ.get("EXPECT_DATAPLANES", "2"))
TIMEOUT_S = float(os.environ.get("BOOTSTRAP_TIMEOUT_S", "120"))

SYSTEM = {"code": "shop", "name": "Demo shop"}
ROLE = {"system": "shop", "name": "customer"}

SERVICES = [
    {"name": "users", "targets": [], "timeout_ms": 5000,
     "consul": {"service": "users"},
     "credentials": {"vault_path": "services/users", "headers": {"authorization": "Bearer {{token}}"}}},
    {"name": "orders", "targets": [], "timeout_ms": 5000,
     "consul": {"service": "orders", "tag": "v1"},
     "credentials": {"vault_path": "services/orders", "headers": {"x-api-key": "{{api_key}}"}}},
    {"name": "products", "targets": [], "timeout_ms": 5000,
     "consul": {"service": "products"},
     "credentials": {"vault_path": "services/products",
                     "basic": {"username": "{{username}}", "password": "{{password}}"}}},
]

ROUTES = [
    {"name": "users", "service": "users", "paths": ["/users"], "strip_prefix": True,
     "default_access": "authenticated"},
    {"name": "orders", "service": "orders", "paths": ["/orders"], "strip_prefix": True,
     "default_access": "authenticated"},
    {"name": "products", "service": "products", "paths": ["/products"], "strip_prefix": True,
     "default_access": "public",
     "policies": {"rate_limits": [{"name": "per-ip", "key": "ip", "rate": 20, "period_s": 1, "burst": 10,
                                   "backend": "redis"}]}},
]


class ApiError(Exception):
    pass


def log(msg):
    print("bootstrap: " + msg, flush=True)


def call(method, path, body=None, timeout=30.0):
    """(status, parsed JSON or None); raises OSError when the control plane cannot be reached."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(ADMIN + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def wait_for(what, pred):
    deadline = time.monotonic() + TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except (OSError, ApiError) as e:
            last = e
        time.sleep(1)
    raise ApiError("timed out after %gs waiting for %s (last error: %s)" % (TIMEOUT_S, what, last))


def connected_dataplanes():
    status, body = call("GET", "/api/v1/dataplanes")
    if status != 200:
        raise ApiError("GET /api/v1/dataplanes answered %d" % status)
    return sorted(d.get("id", "?") for d in (body or {}).get("data", []) if d.get("connected"))


def upsert(kind, key, body, label):
    """PUT /api/v1/<kind>/<key> when it exists, else POST /api/v1/<kind>; both with ?wait=applied."""
    quoted = urllib.parse.quote(key, safe=":")
    status, _ = call("GET", "/api/v1/%s/%s" % (kind, quoted))
    if status == 200:
        method, path = "PUT", "/api/v1/%s/%s?wait=applied" % (kind, quoted)
    elif status == 404:
        method, path = "POST", "/api/v1/%s?wait=applied" % kind
    else:
        raise ApiError("GET %s %s answered %d" % (kind, label, status))
    status, out = call(method, path, body)
    if status // 100 != 2:
        err = (out or {}).get("error") if isinstance(out, dict) else None
        raise ApiError("%s %s %s answered %d: %s" % (method, kind, label, status, json.dumps(err)))
    applied = (out or {}).get("applied") or {}
    if EXPECT_DPS > 0 and not applied.get("settled"):
        raise ApiError("%s %s was not applied by every data plane: %s" % (kind, label, json.dumps(applied)))
    log("%s %s: %s, version %s" % (kind, label, "replaced" if method == "PUT" else "created", out.get("version")))


def main():
    if len(TOKEN) < 16:
        log("CEPHALO_ADMIN_TOKEN is not set (or shorter than 16 characters)")
        return 2
    wait_for("the control plane at " + ADMIN,
             lambda: urllib.request.urlopen(ADMIN + "/health", timeout=3).status == 200)
    if EXPECT_DPS > 0:
        wait_for("%d connected data planes" % EXPECT_DPS, lambda: len(connected_dataplanes()) >= EXPECT_DPS)
        log("data planes connected: " + ", ".join(connected_dataplanes()))
    upsert("systems", SYSTEM["code"], SYSTEM, SYSTEM["code"])
    upsert("roles", "%s:%s" % (ROLE["system"], ROLE["name"]), ROLE, ROLE["name"])
    upsert("users", "alice", {"username": "alice", "password": PASSWORD, "systems": ["shop"],
                              "roles": [{"system": "shop", "name": "customer"}]}, "alice")
    for s in SERVICES:
        upsert("services", s["name"], s, s["name"])
    for r in ROUTES:
        upsert("routes", r["name"], r, r["name"])
    log("ready: log in with POST http://localhost:8080/auth/login "
        '{"username":"alice","password":"<DEMO_PASSWORD>","system":"shop"} (deploy/README.md)')
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ApiError as e:
        log(str(e))
        sys.exit(1)
