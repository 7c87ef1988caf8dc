"""pytest fixtures for the Cephalo end-to-end tests (see cephalo.py for the helpers).

Each test gets its own temp dir, its own control plane / data planes / upstreams on free loopback ports, and a
per-test time bound (SIGALRM). At teardown every process is stopped with SIGTERM and the test FAILS if any of them
printed a sanitizer report or died from an unexpected signal.
"""
import os
import signal

import pytest

import cephalo

TEST_TIMEOUT_S = int(os.environ.get("CEPHALO_E2E_TIMEOUT", "90"))


def pytest_sessionstart(session):
    missing = [b for b in ("cephalo-controlplane", "cephalo-dataplane")
               if not os.access(os.path.join(cephalo.BIN_DIR, b), os.X_OK)]
    if missing:
        raise pytest.UsageError(f"missing binaries in CEPHALO_BIN_DIR={cephalo.BIN_DIR}: {', '.join(missing)} "
                                "(build first: cmake -S . -B build-asan -DCEPHALO_SANITIZE=ON && "
                                "cmake --build build-asan -j2)")


class _TestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _time_bound():
    def on_alarm(signum, frame):
        raise _TestTimeout(f"test exceeded {TEST_TIMEOUT_S}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def procs(tmp_path):
    reg = cephalo.Procs(str(tmp_path))
    yield reg
    problems = reg.finish()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def tmpdir_str(tmp_path):
    return str(tmp_path)


@pytest.fixture
def cp(procs, tmpdir_str):
    """A running control plane with the test admin token."""
    return cephalo.ControlPlane(procs, tmpdir_str).start()


@pytest.fixture
def admin(cp):
    return cp.admin


@pytest.fixture
def make_dp(procs, tmpdir_str, cp):
    """Factory: start a data plane connected to `cp` and wait until the CP lists it as connected."""
    def make(name="dp", wait_connected=True, **kw):
        dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket, name=name, **kw).start()
        if wait_connected:
            dp.wait_connected(cp.admin)
        return dp
    return make


@pytest.fixture
def dp(make_dp):
    return make_dp()


@pytest.fixture
def nginx(procs, tmpdir_str):
    return cephalo.Nginx(procs, tmpdir_str, "nginx-a")


@pytest.fixture
def pyup(procs):
    up = cephalo.PyUpstream("py")
    procs.servers.append(up)
    return up
