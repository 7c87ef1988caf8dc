"""32: the data plane's access log (docs/dataplane.md "Access log"): --access-log PATH writes one JSON object per
request with the documented keys in order, for HTTP/1.1, h2c and TLS h2, a 429 and a 502; the canonical path only
(a query's ?token=SECRET never reaches the log); lines reach the file within a moment and SIGTERM flushes them.
"""
import datetime
import json
import os
import re
import time

import cephalo
from cephalo import rate_limit

KEYS = ["time", "request_id", "trace_id", "client_ip", "method", "path", "route", "service", "target", "status",
        "bytes_in", "bytes_out", "duration_ms", "upstream_ms", "protocol", "tls", "principal"]


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, "rb") as fp:
        data = fp.read()
    assert data == b"" or data.endswith(b"\n"), data[-200:]
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def wait_line(path, pred, what):
    found = {}

    def check():
        for line in read_lines(path):
            if pred(line):
                found["line"] = line
                return True
        return False
    cephalo.wait_until(check, 5.0, what)
    return found["line"]


def test_access_log_lines(procs, tmpdir_str, cp, make_dp, pyup):
    log = os.path.join(tmpdir_str, "access.log")
    cert = cephalo.make_self_signed(tmpdir_str)
    dp = make_dp(tls=cert, extra_args=["--access-log", log])
    dead = cephalo.free_port()
    cp.admin.apply("POST", "/api/v1/services", {"name": "echo", "targets": [{"url": pyup.url}]})
    cp.admin.apply("POST", "/api/v1/services", {"name": "dead", "targets": [{"url": f"http://127.0.0.1:{dead}"}]})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public", "name": "echo", "service": "echo",
                                              "paths": ["/echo"]})
    cp.admin.apply("POST", "/api/v1/routes", {"default_access": "public", "name": "dead", "service": "dead",
                                              "paths": ["/dead"]})
    cp.admin.apply("POST", "/api/v1/routes?wait=applied", {
        "default_access": "public", "name": "rl", "service": "echo", "paths": ["/rl"],
        "policies": {"rate_limits": [rate_limit("one", key="route", rate=1, period_s=60, burst=0)]}})

    assert dp.get("/echo/h1?token=SECRET").status == 200
    p = cephalo.curl("--http2-prior-knowledge", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                     f"http://127.0.0.1:{dp.port}/echo/h2c?token=SECRET")
    assert p.stdout == "200", (p.stdout, p.stderr)
    p = cephalo.curl("--http2", "-k", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                     f"https://127.0.0.1:{dp.tls_port}/echo/tls")
    assert p.stdout == "200", (p.stdout, p.stderr)
    assert dp.get("/dead/x").status == 502
    statuses = [dp.get("/rl/x").status for _ in range(3)]
    assert 429 in statuses, statuses

    h1 = wait_line(log, lambda l: l["path"] == "/echo/h1", "the h1 line")
    assert list(h1.keys()) == KEYS, h1
    assert h1["protocol"] == "HTTP/1.1" and h1["tls"] is False and h1["status"] == 200, h1
    assert h1["route"] == "echo" and h1["service"] == "echo", h1
    assert h1["target"] and h1["target"].startswith("127.0.0.1:"), h1
    assert isinstance(h1["upstream_ms"], float) and h1["upstream_ms"] <= h1["duration_ms"] + 1, h1
    assert h1["client_ip"] == "127.0.0.1" and h1["principal"] is None and h1["request_id"], h1
    assert h1["bytes_out"] > 0 and h1["time"].endswith("Z"), h1
    # the numbers are written by hand, not printf: check the exact shapes on the raw lines
    with open(log) as f:
        raw = [line for line in f if '"path":"/echo/h1"' in line][0]
    assert re.search(r'"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"', raw), raw
    assert re.search(r'"status":200,"bytes_in":0,"bytes_out":[1-9]\d*,"duration_ms":(0|[1-9]\d*)\.\d{3},'
                     r'"upstream_ms":(0|[1-9]\d*)\.\d{3},', raw), raw
    assert abs(datetime.datetime.strptime(h1["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() - time.time()) < 120, h1["time"]
    h2c = wait_line(log, lambda l: l["path"] == "/echo/h2c", "the h2c line")
    assert h2c["protocol"] == "HTTP/2" and h2c["tls"] is False, h2c
    tls = wait_line(log, lambda l: l["path"] == "/echo/tls", "the TLS line")
    assert tls["protocol"] == "HTTP/2" and tls["tls"] is True, tls
    bad = wait_line(log, lambda l: l["path"] == "/dead/x", "the 502 line")
    assert bad["status"] == 502 and bad["service"] == "dead", bad
    limited = wait_line(log, lambda l: l["status"] == 429, "the 429 line")
    assert limited["route"] == "rl" and limited["upstream_ms"] is None and limited["target"] is None, limited
    for line in read_lines(log):
        assert list(line.keys()) == KEYS, line
    with open(log, "rb") as fp:
        assert b"SECRET" not in fp.read()

    # SIGTERM: the lines recorded just before it are flushed
    for i in range(20):
        assert dp.get(f"/echo/last{i}").status == 200
    assert dp.proc.stop() == 0
    paths = {l["path"] for l in read_lines(log)}
    assert all(f"/echo/last{i}" in paths for i in range(20)), paths


def test_bad_sample_flag_stops_the_data_plane(procs, tmpdir_str, cp):
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket, extra_args=["--access-log", "stdout",
                                                                     "--access-log-sample", "0"])
    try:
        dp.start(wait_ready=False)
        raise AssertionError("the data plane started with --access-log-sample 0")
    except AssertionError as e:
        assert "started with" not in str(e), e
    assert dp.proc.wait(10) == 2


def test_authenticated_request_logs_the_principal_never_the_token(procs, tmpdir_str, cp, make_dp, pyup):
    log = os.path.join(tmpdir_str, "access-auth.log")
    dp = make_dp(extra_args=["--access-log", log])
    shop = cephalo.Shop(cp.admin, pyup.url)
    token = shop.access(dp, "bob")
    r = cephalo.http_request(dp.port, "GET", "/shop/orders/7?access_token=SECRET", headers=cephalo.bearer(token))
    assert r.status == 200, r
    line = wait_line(log, lambda l: l["path"] == "/shop/orders/7", "the authenticated line")
    assert list(line.keys()) == KEYS, line
    assert line["principal"] == {"kind": "user", "id": str(shop.uid("bob"))}, line
    with open(log, "rb") as fp:
        data = fp.read()
    assert token.encode() not in data and b"SECRET" not in data and b"Bearer" not in data
