"""43: the admin page in a real browser (issue 8, contract 11 s.6).

Starts a control plane with an owner password, a data plane and the echo upstream (PyUpstream), then runs the playwright-core
tests in tests/browser/ (`node tests/browser/run.mjs`, Debian's /usr/bin/chromium headless) with the URLs and the
password in their environment; fails on their exit code and shows their output. Screenshots land in
tests/browser/screenshots/. When tests/browser/node_modules is missing it runs `npm ci --prefix tests/browser`;
skipped (with the reason) only when chromium or node is missing or that install fails (scripts/deps.sh installs both)
- and never under CI (CI=true, .ci/run): there a missing browser is a failure, not a skip.
"""
import os
import shutil
import signal
import subprocess

import pytest

import cephalo

PASSWORD = cephalo.remember_secret("e2e-browser-owner-pw-0123")
BROWSER_DIR = os.path.join(cephalo.SOURCE_DIR, "tests", "browser")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def missing():
    if not os.access(CHROMIUM, os.X_OK):
        return f"no {CHROMIUM} (scripts/deps.sh installs it)"
    if not shutil.which("node"):
        return "no node"
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        npm = shutil.which("npm")
        if not npm:
            return "no tests/browser/node_modules and no npm to install it (run scripts/deps.sh)"
        r = subprocess.run([npm, "ci", "--prefix", BROWSER_DIR, "--no-audit", "--no-fund", "--loglevel=error"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if r.returncode != 0 or not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
            return "npm ci --prefix tests/browser failed: " + r.stdout.decode(errors="replace")[-500:]
    return None


MISSING = missing()


def test_browser(procs, tmpdir_str, monkeypatch):
    if MISSING is not None:
        if os.environ.get("CI"):
            pytest.fail("the browser tests cannot run under CI: " + MISSING)
        pytest.skip(MISSING)
    signal_budget = int(os.environ.get("CEPHALO_BROWSER_TIMEOUT", "600"))
    monkeypatch.setenv("CEPHALO_ADMIN_PASSWORD", PASSWORD)
    cp = cephalo.ControlPlane(procs, tmpdir_str).start()
    monkeypatch.delenv("CEPHALO_ADMIN_PASSWORD")
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket).start()
    dp.wait_connected(cp.admin)
    up = cephalo.PyUpstream("browser")
    env = dict(os.environ, CEPHALO_CP_URL=f"http://127.0.0.1:{cp.admin_port}", CEPHALO_DP_URL=f"http://127.0.0.1:{dp.port}",
               CEPHALO_UPSTREAM_URL=up.url, CEPHALO_ADMIN_USER="admin", CEPHALO_ADMIN_PASSWORD=PASSWORD,
               CHROMIUM=CHROMIUM)
    signal.alarm(signal_budget + 30)  # the browser run takes longer than conftest's default bound
    try:
        out = subprocess.run(["node", os.path.join(BROWSER_DIR, "run.mjs")], cwd=BROWSER_DIR, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=signal_budget)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"browser tests exceeded {signal_budget}s:\n{(e.stdout or b'').decode(errors='replace')}", pytrace=False)
    finally:
        up.close()
    text = out.stdout.decode(errors="replace")
    print(text)
    if out.returncode != 0:
        pytest.fail(f"browser tests failed (exit {out.returncode}):\n{text}", pytrace=False)
