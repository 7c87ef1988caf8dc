"""05: a snapshot the data plane cannot apply is NACKed and the old config stays in force whole; a bad state file
never blocks a fresh push (PROTOCOL.md §4 rule 3, §6).

The real control plane validates every write with the same validator as the data plane, so the only snapshot a real
data plane refuses from it is one over that data plane's own limits (--max-routes): test_real_planes_over_limit_nack
drives the whole path with both real daemons. Malformed snapshots (bad hash, unknown member, schema 99) are driven by
a fake control plane speaking PROTOCOL.md (cephalo.FakeCP); the control plane's bookkeeping of a NACK (rule 4) by a
fake data plane on the real socket (cephalo.FakeDP); the boot cases by corrupting the DP's state files.
"""
import json
import os
import socket
import threading
import time

import pytest

import cephalo


def body_for(url, prefix="/demo", route="demo"):
    return {"services": [{"name": "demo", "targets": [{"url": url, "weight": 1}], "timeout_ms": 60000}],
            "routes": [{"name": route, "service": "demo", "paths": [prefix], "hosts": [], "methods": [],
                        "strip_prefix": True, "default_access": "public"}]}


EPOCH = "0123456789abcdef0123456789abcdef"


def snapshot_msg(version, body, hash_=None, epoch=EPOCH):
    return {"type": "snapshot", "epoch": epoch, "version": version, "hash": hash_ or cephalo.canonical_hash(body),
            "schema": 1, "body": body}


@pytest.fixture
def fake(tmpdir_str):
    f = cephalo.FakeCP(os.path.join(tmpdir_str, "fakecp", "cp.sock"))
    yield f
    f.close()


def handshake(fake):
    fake.accept()
    hello = fake.recv()
    assert hello["type"] == "hello", hello
    for k in ("dp_id", "hostname", "pid", "software", "applied"):
        assert k in hello, hello
    fake.send({"type": "welcome", "epoch": EPOCH, "heartbeat_ms": 1000})
    return hello


def test_nack_keeps_old_config(procs, tmpdir_str, fake, nginx):
    dp = cephalo.DataPlane(procs, tmpdir_str, fake.path).start()
    hello = handshake(fake)
    assert hello["applied"]["source"] == "none" and hello["applied"]["version"] == 0
    good = body_for(nginx.url)
    fake.send(snapshot_msg(1, good))
    ack = fake.recv()
    assert ack["type"] == "ack" and ack["version"] == 1 and ack["hash"] == cephalo.canonical_hash(good), ack
    assert ack["persisted"] is True
    assert dp.get("/demo/x").status == 200

    bad_cases = [
        # (message, expected error path or None)
        (snapshot_msg(2, body_for(nginx.url, "/other"), hash_="sha256:" + "0" * 64), None),  # hash mismatch
        (snapshot_msg(3, {"services": [], "routes": [{"name": "r", "service": "missing", "paths": ["/x"]}]}),
         "/routes/0/service"),
        (snapshot_msg(4, {"services": [{"name": "demo", "targets": [{"url": "ftp://x:1"}]}], "routes": []}),
         "/services/0/targets/0/url"),
        (snapshot_msg(5, {"services": [], "routes": [], "extra": 1}), "/extra"),
        (dict(snapshot_msg(6, good), schema=99), None),
    ]
    for msg, path in bad_cases:
        fake.send(msg)
        nack = fake.recv()
        assert nack["type"] == "nack", (msg, nack)
        assert nack["version"] == msg["version"], nack
        assert nack["applied"]["version"] == 1 and nack["applied"]["hash"] == ack["hash"], nack
        assert isinstance(nack["error"]["code"], str) and nack["error"]["message"], nack
        if path is not None:
            assert nack["error"]["path"] == path, nack
        # the old config is still served, whole
        r = dp.get("/demo/still")
        assert r.status == 200 and r.headers["x-request-uri"] == "/still", r
        assert dp.get("/other/x").status == 404
        assert dp.get("/x").status == 404

    m = dp.metrics()
    assert cephalo.metric(m, "cephalo_dp_snapshot_nacks_total") == len(bad_cases), m
    assert cephalo.metric(m, "cephalo_dp_snapshot_version") == 1
    with open(os.path.join(dp.state_dir, "snapshot.json")) as f:
        assert json.load(f)["version"] == 1  # nothing bad was persisted

    # a good push after the NACKs is applied
    newer = body_for(nginx.url, "/fresh")
    fake.send(snapshot_msg(7, newer))
    ack = fake.recv()
    assert ack["type"] == "ack" and ack["version"] == 7, ack
    assert dp.get("/fresh/x").status == 200
    assert dp.get("/demo/x").status == 404
    # same hash again under another version: ack at once
    fake.send(snapshot_msg(8, newer))
    ack = fake.recv()
    assert ack["type"] == "ack" and ack["version"] == 8, ack


def test_bad_frame_closes_connection_dp_survives(procs, tmpdir_str, fake, nginx):
    dp = cephalo.DataPlane(procs, tmpdir_str, fake.path).start()
    handshake(fake)
    fake.send(snapshot_msg(1, body_for(nginx.url)))
    assert fake.recv()["type"] == "ack"
    fake.conn.sendall(b"\x00\x00\x00\x05{bad}")  # invalid JSON frame
    # the DP answers error (best effort) and closes: anything before EOF must be an error message
    seen = []
    try:
        while True:
            seen.append(fake.recv())
    except (cephalo.PeerClosed, ConnectionResetError):
        pass
    assert all(m["type"] == "error" for m in seen), seen
    assert dp.proc.alive()
    assert dp.get("/demo/x").status == 200
    # it reconnects by itself (backoff) and says what it has applied
    fake.conn.close()
    hello = handshake(fake)
    assert hello["applied"]["version"] == 1 and hello["applied"]["source"] in ("cp", "disk"), hello


def write_state(dp_dir, name, content):
    p = os.path.join(dp_dir, name)
    with open(p, "w") as f:
        f.write(content)
    os.chmod(p, 0o600)


def test_corrupt_state_file_falls_back_to_prev_then_push_wins(procs, tmpdir_str, cp, nginx):
    """snapshot.json corrupt -> boot from snapshot.prev.json; the next push from the CP is applied."""
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket, name="dp1").start()
    dp.wait_connected(cp.admin)
    a = cp.admin
    a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    v_old = a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                               "name": "old", "service": "demo", "paths": ["/old"]})["version"]
    v_new = a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                               "name": "new", "service": "demo", "paths": ["/new"]})["version"]
    prev_path = os.path.join(dp.state_dir, "snapshot.prev.json")
    with open(prev_path) as f:
        assert json.load(f)["version"] == v_old
    cp.proc.stop()
    assert dp.proc.stop() == 0

    write_state(dp.state_dir, "snapshot.json", '{"epoch": "x", "version": 99, "hash": "sha256:00", "body": {')
    dp2 = cephalo.DataPlane(procs, tmpdir_str, cp.socket, name="dp2", state_dir=dp.state_dir, dp_id=dp.dp_id).start()
    dp2.wait_ready()
    assert cephalo.metric(dp2.metrics(), "cephalo_dp_snapshot_version") == v_old
    assert dp2.get("/old/x").status == 200
    assert dp2.get("/new/x").status == 404

    cp2 = cephalo.ControlPlane(procs, tmpdir_str, name="cp2", data_dir=cp.data_dir).start()
    dp2.wait_connected(cp2.admin, timeout=20)
    # no admin write to ?wait on here: the push happens on reconnect, so watch the CP's view of this DP
    d = cephalo.wait_until(lambda: (lambda d: d if d and d["applied"]["version"] == v_new else None)(
        cp2.admin.dataplane(dp2.dp_id)), 10, "the CP sees the fresh push acked", proc=dp2.proc)
    assert d["status"] == "synced" and d["applied"]["source"] == "cp", d
    assert dp2.get("/new/x").status == 200


@pytest.mark.parametrize("corruption", ["garbage", "tampered"])
def test_both_state_files_bad_is_no_config_then_push_wins(procs, tmpdir_str, cp, nginx, corruption):
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket, name="dp1").start()
    dp.wait_connected(cp.admin)
    a = cp.admin
    a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                       "name": "demo", "service": "demo", "paths": ["/demo"]})
    cp.proc.stop()
    assert dp.proc.stop() == 0
    for name in ("snapshot.json", "snapshot.prev.json"):
        p = os.path.join(dp.state_dir, name)
        if corruption == "garbage":
            write_state(dp.state_dir, name, "\x00not json at all")
        else:
            # valid JSON, valid body, but the body no longer matches the recorded hash
            with open(p) as f:
                doc = json.load(f)
            doc["body"]["services"].append({"name": "tampered", "targets": [], "timeout_ms": 1000})
            write_state(dp.state_dir, name, json.dumps(doc))

    dp2 = cephalo.DataPlane(procs, tmpdir_str, cp.socket, name="dp2", state_dir=dp.state_dir, dp_id=dp.dp_id).start()
    assert dp2.ready_status() == 503
    r = dp2.get("/demo/x")
    assert r.status == 503 and r.json()["error"] == "no_config", r
    assert dp2.proc.alive()

    cp2 = cephalo.ControlPlane(procs, tmpdir_str, name="cp2", data_dir=cp.data_dir).start()
    dp2.wait_connected(cp2.admin, timeout=20)
    dp2.wait_ready()
    assert dp2.get("/demo/x").status == 200


class Responder:
    """Answers every snapshot the CP sends to a FakeDP: ack, or nack while `nack` is set; records the versions."""

    def __init__(self, fake):
        self.fake = fake
        self.nack = threading.Event()
        self.stop = threading.Event()
        self.versions = []
        self.applied = {"epoch": "", "version": 0, "hash": "", "source": "none"}
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.fake.conn.settimeout(0.2)
        while not self.stop.is_set():
            try:
                msg = self.fake.recv()
            except (socket.timeout, TimeoutError):
                continue
            except Exception as e:  # noqa: BLE001 - surfaced by the test
                self.error = e
                return
            if msg["type"] != "snapshot":
                continue
            self.versions.append(msg["version"])
            if self.nack.is_set():
                self.fake.send({"type": "nack", "version": msg["version"], "hash": msg["hash"], "applied": self.applied,
                                "error": {"code": "e2e_refused", "path": "/routes/0", "message": "refused by the test"}})
            else:
                self.fake.send({"type": "ack", "version": msg["version"], "hash": msg["hash"], "apply_ms": 1,
                                "persisted": True})
                self.applied = {"epoch": msg["epoch"], "version": msg["version"], "hash": msg["hash"], "source": "cp"}

    def close(self):
        self.stop.set()
        self.thread.join(5)


def test_real_planes_over_limit_nack(procs, tmpdir_str, cp, nginx):
    """Real CP, real DP with --max-routes 1: the second route is NACKed by the DP, ?wait=applied and
    /api/v1/dataplanes say so with the DP's error, the first route is still served, and removing the extra route
    brings the DP back in sync."""
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket, name="small", extra_args=["--max-routes", "1"]).start()
    dp.wait_connected(cp.admin)
    a = cp.admin
    a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    v_ok = a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                              "name": "demo", "service": "demo", "paths": ["/demo"],
                                              "strip_prefix": True})["version"]
    assert dp.get("/demo/x").status == 200

    out = a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                             "name": "two", "service": "demo", "paths": ["/two"]})
    mine = {d["id"]: d for d in out["applied"]["dataplanes"]}[dp.dp_id]
    assert mine["status"] == "nacked" and mine["error"]["code"] == "over_limit", out
    d = a.dataplane(dp.dp_id)
    assert d["status"] == "nacked" and d["applied"]["version"] == v_ok, d
    assert d["last_error"]["code"] == "over_limit" and d["last_error"]["path"] == "/routes", d
    assert dp.get("/demo/x").status == 200  # the old config, whole
    assert dp.get("/two/x").status == 404
    assert dp.metrics()[("cephalo_dp_snapshot_nacks_total", frozenset())] >= 1

    v_back = a.apply("DELETE", "/api/v1/routes/two")["version"]
    d = a.dataplane(dp.dp_id)
    assert d["status"] == "synced" and d["applied"]["version"] == v_back and d["last_error"] is None, d
    assert dp.get("/demo/x").status == 200


def test_nack_visible_in_control_plane(cp, make_dp, nginx):
    """A data plane that NACKs (a fake one on the real CP's socket: the CP only builds snapshots its validator
    accepts) is reported by ?wait=applied, listed as nacked with its error, and never sent that version again;
    the real data plane next to it applies and serves every version."""
    dp = make_dp("real")
    fake = cephalo.FakeDP(cp.socket, "fake-nacker")
    resp = Responder(fake)
    a = cp.admin
    try:
        cephalo.wait_until(lambda: (a.dataplane("fake-nacker") or {}).get("connected") is True, 10,
                           "the fake DP listed connected")
        v1 = a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})["version"]
        assert resp.applied["version"] == v1

        resp.nack.set()
        out = a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                                 "name": "demo", "service": "demo", "paths": ["/demo"]})
        v2 = out["version"]
        by_id = {d["id"]: d for d in out["applied"]["dataplanes"]}
        # "version" here is what stays in force on that DP (the doc leaves it open; the nack's applied.version)
        assert by_id["fake-nacker"]["status"] == "nacked" and by_id["fake-nacker"]["error"], out
        assert by_id["fake-nacker"]["error"]["code"] == "e2e_refused", out
        assert not by_id[dp.dp_id].get("error") and by_id[dp.dp_id]["version"] == v2, out

        d = a.dataplane("fake-nacker")
        assert d["status"] == "nacked", d
        want = {"code": "e2e_refused", "path": "/routes/0", "message": "refused by the test"}
        assert {k: d["last_error"].get(k) for k in want} == want, d
        assert d["applied"]["version"] == v1, d
        real = a.dataplane(dp.dp_id)
        assert real["status"] == "synced" and real["applied"]["version"] == v2, real
        assert dp.get("/demo/x").status == 200

        # a newer version is sent (and nacked); no version is ever sent twice
        a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                           "name": "two", "service": "demo", "paths": ["/two"]})
        resp.nack.clear()
        v4 = a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                                "name": "three", "service": "demo", "paths": ["/three"]})["version"]
        assert resp.applied["version"] == v4
        assert len(resp.versions) == len(set(resp.versions)), resp.versions
        assert a.dataplane("fake-nacker")["status"] == "synced"
        assert resp.error is None, resp.error
    finally:
        resp.close()
        fake.close()


def test_nacked_version_not_resent_after_reconnect(cp, nginx):
    """PROTOCOL.md §4 rule 4: the CP remembers a nacked (epoch, version) per dp_id, across reconnects."""
    a = cp.admin
    fake = cephalo.FakeDP(cp.socket, "fake-rule4")
    resp = Responder(fake)
    try:
        cephalo.wait_until(lambda: (a.dataplane("fake-rule4") or {}).get("connected") is True, 10, "fake connected")
        a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
        resp.nack.set()
        v2 = a.apply("POST", "/api/v1/routes", {"default_access": "public",
                                                "name": "demo", "service": "demo", "paths": ["/demo"]})["version"]
        assert v2 in resp.versions
        applied = resp.applied
    finally:
        resp.close()
        fake.close()
    cephalo.wait_until(lambda: a.dataplane("fake-rule4")["connected"] is False, 10, "fake listed disconnected")
    again = cephalo.FakeDP(cp.socket, "fake-rule4", applied=applied)
    try:
        # ping/pong as a barrier: a snapshot the CP meant to send after welcome would arrive before the pong
        again.send({"type": "ping", "seq": 7})
        msg = again.recv(skip=())
        assert msg == {"type": "pong", "seq": 7} or (msg["type"] == "pong" and msg["seq"] == 7), \
            f"the nacked version was sent again: {msg}"
    finally:
        again.close()


def test_dp_reconnects_when_pongs_stop(procs, tmpdir_str, fake, nginx):
    """PROTOCOL.md §4 rule 5: the DP reconnects after 3 heartbeats without a pong, and keeps serving meanwhile."""
    dp = cephalo.DataPlane(procs, tmpdir_str, fake.path).start()
    handshake(fake)
    fake.send(snapshot_msg(1, body_for(nginx.url)))
    assert fake.recv()["type"] == "ack"
    # read raw frames without answering pings, until the DP closes the connection
    import struct
    pings = 0
    t0 = time.monotonic()
    try:
        while True:
            (n,) = struct.unpack(">I", fake._recv_exact(4))
            msg = json.loads(fake._recv_exact(n))
            pings += msg.get("type") == "ping"
            assert dp.get("/demo/x").status == 200
    except cephalo.PeerClosed:
        pass
    # welcome said heartbeat_ms 1000: about 3 s without a pong (2 or 3 pings sent meanwhile)
    assert pings >= 2 and time.monotonic() - t0 >= 2.5, (pings, time.monotonic() - t0)
    fake.conn.close()
    hello = handshake(fake)  # it comes back by itself
    assert hello["applied"]["version"] == 1
