#!/usr/bin/env python3
"""How long a change in Consul or Vault takes to reach a data plane's traffic (issue #7: "within a second").

Starts the Consul and Vault stand-ins (tests/standins/), a control plane using both, one data plane and two
upstreams, then repeats, N times each:
  consul-add     register a second instance      -> the data plane's requests reach it
  consul-remove  deregister it                   -> no request reaches it any more
  vault-rotate   write a new version of a secret -> the upstream receives the new value (--vault-poll-s, default 1)
and prints the median, p90 and max of each, measured from the stand-in's answer to the change to the first request
through the data plane that shows it (polled every 10 ms). The stand-ins answer like the real servers (blocking
queries, KV v2), so this is the control plane's own latency: blocking query return, the one-request-per-second
limit per watch, the write, the snapshot build and push, the data plane's apply.

    /usr/bin/python3 bench/propagation.py [--rounds 10] [--vault-poll-s 1]

Uses the release binaries in build/bin (CEPHALO_BIN_DIR overrides). Not a test: it asserts nothing.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
os.environ.setdefault("CEPHALO_BIN_DIR", os.path.join(ROOT, "build", "bin"))

import cephalo  # noqa: E402
import standins  # noqa: E402

VAULT_TOKEN = "bench-root-token"
POLL_S = 0.01


def until(pred, what, timeout=30.0):
    """Polls pred every 10 ms; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(POLL_S)
    raise SystemExit(f"timed out waiting for {what}")


def reached(dp, name, n=6):
    """Whether any of n requests through the data plane reached the upstream called name."""
    return any(dp.get("/orders/x").headers.get("x-upstream") == name for _ in range(n))


def summary(label, samples):
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    print(f"{label:14} n={len(ms):3}  median {statistics.median(ms):7.0f} ms  p90 {p90:7.0f} ms  max {ms[-1]:7.0f} ms")


def setup(procs, tmp, poll_s):
    consul = standins.StandIn(procs, tmp, "consul")
    vault = standins.StandIn(procs, tmp, "vault", ["--root-token", VAULT_TOKEN])
    a, b = cephalo.PyUpstream("a"), cephalo.PyUpstream("b")
    procs.servers += [a, b]
    keys = cephalo.CtlUpstream("keys")
    procs.servers.append(keys)
    cp = cephalo.ControlPlane(procs, tmp, extra_args=[
        "--consul-addr", consul.addr, "--consul-wait-s", "60", "--vault-addr", vault.addr, "--vault-poll-s", str(poll_s),
        "--vault-token-file", standins.secret_file(tmp, "vault-token", VAULT_TOKEN)]).start()
    dp = cephalo.DataPlane(procs, tmp, cp.socket).start()
    dp.wait_connected(cp.admin)
    consul.ctl("/register", {"service": "orders", "id": "a", "address": "127.0.0.1", "port": a.port})
    vault.ctl("/put", {"path": "bench/keys", "data": {"token": "v0"}})
    cp.admin.apply("POST", "/api/v1/services", {"name": "orders", "targets": [], "consul": {"service": "orders"}})
    cp.admin.apply("POST", "/api/v1/routes", {"name": "orders", "service": "orders", "paths": ["/orders"],
                                              "default_access": "public", "strip_prefix": True})
    cp.admin.apply("POST", "/api/v1/services", {"name": "keys", "targets": [{"url": keys.url, "weight": 1}],
                                                "credentials": {"vault_path": "bench/keys",
                                                                "headers": {"X-Key": "{{token}}"}}})
    cp.admin.apply("POST", "/api/v1/routes", {"name": "keys", "service": "keys", "paths": ["/keys"],
                                              "default_access": "public", "strip_prefix": True})
    until(lambda: reached(dp, "a"), "the first Consul instance")
    return consul, vault, dp, b, keys


def key_seen(dp, keys, value):
    dp.get("/keys/x")
    with keys.lock:
        return bool(keys.requests) and dict(keys.requests[-1][2]).get("x-key") == value


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--vault-poll-s", type=int, default=1)
    args = ap.parse_args()
    add, remove, rotate = [], [], []
    with tempfile.TemporaryDirectory(prefix="cephalo-propagation-") as tmp:
        procs = cephalo.Procs(tmp)
        try:
            consul, vault, dp, b, keys = setup(procs, tmp, args.vault_poll_s)
            for i in range(args.rounds):
                t0 = time.monotonic()
                consul.ctl("/register", {"service": "orders", "id": "b", "address": "127.0.0.1", "port": b.port})
                add.append(until(lambda: reached(dp, "b"), "instance b in use") - t0)
                t0 = time.monotonic()
                consul.ctl("/deregister", {"service": "orders", "id": "b"})
                remove.append(until(lambda: not reached(dp, "b", 12), "instance b out of use") - t0)
                value = f"v{i + 1}"
                t0 = time.monotonic()
                vault.ctl("/put", {"path": "bench/keys", "data": {"token": value}})
                rotate.append(until(lambda: key_seen(dp, keys, value), f"secret {value} upstream") - t0)
        finally:
            procs.finish()
    summary("consul-add", add)
    summary("consul-remove", remove)
    summary(f"vault-rotate (poll {args.vault_poll_s}s)", rotate)


if __name__ == "__main__":
    main()
