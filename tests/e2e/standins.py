"""Helpers for the end-to-end tests that run the Vault and Consul stand-ins (tests/standins/*.py): a stand-in as a
managed child process with a client for its control port, a secret file the control plane reads a token from, and
the integration states the control plane reports in GET /api/v1/integrations.

Used by 26_vault.py, 27_consul.py and 29_deploy.py. Not a test file itself (pytest collects NN_*.py only).
"""
import json
import os

import cephalo

STANDINS_DIR = os.path.join(cephalo.SOURCE_DIR, "tests", "standins")
READY_S = 10


class StandIn:
    """tests/standins/<kind>.py as a child process (stopped with the test's other processes), and a client for its
    control port. port/control_port: where to listen (None: any free port, as the stand-in prints it)."""

    def __init__(self, procs, tmpdir, kind, args=(), name=None, port=None, control_port=None):
        argv = ["/usr/bin/python3", os.path.join(STANDINS_DIR, kind + ".py"), "--port", str(port or 0),
                "--control-port", str(control_port or 0)] + list(args)
        self.kind = kind
        self.proc = procs.add(cephalo.Proc(name or kind, argv, tmpdir))
        line = cephalo.wait_until(self._ready, READY_S, f"the {kind} stand-in READY", proc=self.proc)
        _, port, ctl = line.split()
        self.port, self.ctl_port = int(port), int(ctl)
        self.addr = f"http://127.0.0.1:{self.port}"

    def _ready(self):
        with open(self.proc.stdout_path) as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith("READY ")]
        return lines[-1] if lines else None

    def ctl(self, what, body=None):
        """POST <what> on the control port with body (JSON); asserts a 200 and returns its JSON."""
        r = cephalo.http_request(self.ctl_port, "POST", what, json.dumps(body or {}).encode(),
                                 {"Content-Type": "application/json"})
        assert r.status == 200, r
        return r.json()

    def view(self, what):
        """GET <what> on the control port (/requests, /state): its JSON."""
        return cephalo.http_request(self.ctl_port, "GET", what).json()

    def requests(self):
        """Every API request the stand-in was asked, oldest first (never a token's value)."""
        return self.view("/requests")


def secret_file(tmpdir, name, value):
    """A file tmpdir/name holding value and a newline, created 0600 (the control plane warns about a looser one)."""
    path = os.path.join(tmpdir, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, (value + "\n").encode())
    os.close(fd)
    return path


def integration(admin, name):
    """The control plane's report on one integration ("vault" or "consul") from GET /api/v1/integrations."""
    return admin.ok("GET", "/api/v1/integrations", expect=(200,))[name]


def wait_integration(admin, name, state, reason=None, timeout=15):
    """Until the integration's state is `state` (and its reason starts with "<reason>:" when given); returns it."""
    def ok():
        v = integration(admin, name)
        if v["state"] != state:
            return None
        if reason is not None and not (v.get("reason") or "").startswith(reason + ":"):
            return None
        return v
    return cephalo.wait_until(ok, timeout, f"{name} integration {state} {reason or ''}", interval=0.1)
