"""22: load balancing, the breaker, limits, timeouts and retries against real upstream processes (docs/dataplane.md "Upstream resilience",
issue 6): every LB policy's distribution, a weight change applied without dropping a keep-alive client, the breaker
opening on consecutive 5xx and closing again after a half-open probe, max_ejection_percent, all targets down -> a
fast 503, 502/504 mapping per phase (connect, first byte, idle, total), a body cut mid-way seen by the client as a
truncation, GET retried to another target (connect failure, listed status), POST never, the retry budget, and the
service's max_requests.

Upstreams are small HTTP/1.1 servers in threads of the test (class Target): each counts its hits and in-flight
requests and can be told to answer a status, delay or hold its head, cut its body, trickle it, or stop listening.
"""
import http.client
import socket
import threading
import time

import pytest

import cephalo


# ---------------------------------------------------------------------------------------------------------------
# a controllable upstream


class Target:
    """One upstream on 127.0.0.1. mode: "ok" (200, body "<name>\\n"), an int (that status), "delay" (head after
    delay_s), "hold" (head once release() is called), "cut" (Content-Length 100000, 1000 bytes, close), "cut_chunked"
    (a chunked head, one chunk, close), "stall" (Content-Length 100, 10 bytes, then nothing), "trickle" (Content-Length
    20, one byte every 0.1 s)."""

    def __init__(self, name, port=None):
        self.name = name
        self.mode = "ok"
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self.hits = 0
        self.methods = []
        self.inflight = 0
        self.released = threading.Event()
        self.port = port
        self.ls = None
        self.conns = set()
        self.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port or 0))
        ls.listen(128)
        self.port = ls.getsockname()[1]
        self.ls = ls
        self.running = True
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def stop(self):
        """Stop listening and drop every connection: the next connect is refused."""
        self.running = False
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ls.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def close(self):
        self.released.set()
        if self.running:
            self.stop()

    def release(self):
        self.released.set()

    def count(self):
        with self.lock:
            return self.hits

    def active(self):
        with self.lock:
            return self.inflight

    def _accept(self, ls):
        while self.running:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            with self.lock:
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read_request(self, c, buf):
        while b"\r\n\r\n" not in buf:
            data = c.recv(65536)
            if not data:
                return None, buf
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method = lines[0].split(" ", 1)[0]
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        while len(rest) < length:
            data = c.recv(65536)
            if not data:
                return None, b""
            rest += data
        self.last_length = length
        return method, rest[length:]

    def _serve(self, c):
        buf = b""
        try:
            while self.running:
                method, buf = self._read_request(c, buf)
                if method is None:
                    return
                with self.lock:
                    self.hits += 1
                    self.inflight += 1
                    self.methods.append(method)
                try:
                    if not self._answer(c, method):
                        return
                finally:
                    with self.lock:
                        self.inflight -= 1
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(c)
            c.close()

    def _answer(self, c, method):
        """Writes one answer; False when the connection must close."""
        mode = self.mode
        if mode == "delay":
            time.sleep(self.delay_s)
        elif mode == "hold":
            self.released.wait(60)
        if mode == "cut":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
            time.sleep(0.05)
            return False
        if mode == "cut_chunked":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + b"y" * 1000 + b"\r\n")
            time.sleep(0.05)
            return False
        if mode == "stall":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"z" * 10)
            self.released.wait(30)
            return False
        if mode == "trickle":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
            for _ in range(20):
                time.sleep(0.1)
                c.sendall(b"t")
            return True
        status = mode if isinstance(mode, int) else 200
        body = f"{self.name}\n".encode()
        c.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nX-Target: {self.name}\r\n\r\n".encode()
                  + (body if method != "HEAD" else b""))
        return True


@pytest.fixture
def targets(procs):
    made = []

    def make(n, prefix="t"):
        out = []
        for i in range(n):
            t = Target(f"{prefix}{len(made)}")
            made.append(t)
            procs.servers.append(t)
            out.append(t)
        return out
    return make


def service(admin, name, tgts, weights=None, policies=None, timeout_ms=None, method="POST"):
    body = {"name": name, "targets": [{"url": t.url if isinstance(t, Target) else t, "weight": (weights or {}).get(i, 1)}
                                      for i, t in enumerate(tgts)]}
    if policies is not None:
        body["policies"] = policies
    if timeout_ms is not None:
        body["timeout_ms"] = timeout_ms
    path = "/api/v1/services" if method == "POST" else f"/api/v1/services/{name}"
    return admin.apply(method, path, body)


def route(admin, name, svc, policies=None):
    body = {"name": name, "service": svc, "paths": [f"/{name}"], "default_access": "public", "strip_prefix": True}
    if policies is not None:
        body["policies"] = policies
    return admin.apply("POST", "/api/v1/routes", body)


def ejecting(admin, name, tgts, failures, base_ms, max_ms=None, max_percent=100):
    """Service and route `name` (path /name) on tgts, whose outlier policy ejects a target after `failures` failures
    in a row, for base_ms (doubling up to max_ms when given), max_percent of the targets at most."""
    outlier = {"consecutive_failures": failures, "base_ejection_ms": base_ms, "max_ejection_percent": max_percent}
    if max_ms is not None:
        outlier["max_ejection_ms"] = max_ms
    service(admin, name, tgts, policies={"outlier": outlier})
    route(admin, name, name)


def hits(tgts):
    return [t.count() for t in tgts]


def json_error(r, status, code):
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    assert r.json()["error"] == code, r
    return r


OUTLIER_OFF = {"outlier": {"consecutive_failures": 0}}


# ---------------------------------------------------------------------------------------------------------------
# distribution


def test_round_robin_smooth_weights_exact(cp, make_dp, targets):
    dp = make_dp(workers=1)  # one worker: one smooth-WRR sequence
    ts = targets(3)
    service(cp.admin, "wrr", ts, weights={0: 1, 1: 2, 2: 3})
    route(cp.admin, "wrr", "wrr")
    seq = [dp.get("/wrr/x").body.decode().strip() for _ in range(60)]
    assert hits(ts) == [10, 20, 30], hits(ts)
    # smooth: never three of the heaviest in a row (nginx's sequence for 1,2,3 is c b a c b c)
    assert not any(seq[i] == seq[i + 1] == seq[i + 2] for i in range(len(seq) - 2)), seq


def test_round_robin_equal_weights(cp, dp, targets):
    ts = targets(3)
    service(cp.admin, "rr", ts)
    route(cp.admin, "rr", "rr")
    for _ in range(60):
        assert dp.get("/rr/x").status == 200
    # two workers with a position each: within one round of even per worker
    assert all(18 <= n <= 22 for n in hits(ts)), hits(ts)


def test_least_conn_prefers_idle_target(cp, dp, targets):
    slow, fast = targets(2)
    slow.mode = "hold"
    service(cp.admin, "lc", [slow, fast], policies={"lb": {"policy": "least_conn"}, **OUTLIER_OFF})
    route(cp.admin, "lc", "lc", policies={"timeouts": {"first_byte_ms": 30000}})
    held = []
    for _ in range(4):  # until the slow target holds one request (least_conn ties are broken round robin)
        before = fast.count()
        th = threading.Thread(target=lambda: held.append(dp.get("/lc/h", timeout=60)), daemon=True)
        th.start()
        cephalo.wait_until(lambda: slow.active() >= 1 or fast.count() > before, 5, "a request placed")
        if slow.active() >= 1:
            break
    assert slow.active() == 1
    before = fast.count()
    for _ in range(20):
        assert dp.get("/lc/x").status == 200
    assert fast.count() - before == 20, (fast.count(), before)
    assert slow.active() == 1
    slow.release()
    cephalo.wait_until(lambda: held and held[-1].status == 200, 10, "the held request answered")


def test_random_p2c_follows_weights(cp, dp, targets):
    ts = targets(3)
    weights = {0: 1, 1: 1, 2: 2}
    service(cp.admin, "rnd", ts, weights=weights, policies={"lb": {"policy": "random"}, **OUTLIER_OFF})
    route(cp.admin, "rnd", "rnd")
    n = 400
    for _ in range(n):
        assert dp.get("/rnd/x").status == 200
    got = hits(ts)
    total_w = sum(weights.values())
    expect = [n * weights[i] / total_w for i in range(3)]
    chi2 = sum((g - e) ** 2 / e for g, e in zip(got, expect))
    assert chi2 < 20, (got, expect, chi2)  # df 2: p < 0.0001 for a correct weighted draw


def test_consistent_hash_on_ip_and_header(cp, dp, targets):
    ts = targets(3)
    service(cp.admin, "chip", ts, policies={"lb": {"policy": "consistent_hash", "hash_on": "ip"}, **OUTLIER_OFF})
    service(cp.admin, "chh", ts, policies={"lb": {"policy": "consistent_hash", "hash_on": "header:x-user"},
                                           **OUTLIER_OFF})
    route(cp.admin, "chip", "chip")
    route(cp.admin, "chh", "chh")
    seen = set()
    for i in range(2, 26):
        src = f"127.0.0.{i}"
        first = cephalo.http_get(dp.port, "/chip/x", source=src).headers["x-target"]
        for _ in range(3):
            assert cephalo.http_get(dp.port, "/chip/y", source=src).headers["x-target"] == first
        seen.add(first)
    assert len(seen) >= 2, seen  # 24 addresses over 3 targets
    seen = set()
    for i in range(30):
        first = dp.get("/chh/x", headers={"X-User": f"user-{i}"}).headers["x-target"]
        for src in ("127.0.0.2", "127.0.0.3"):  # the header wins over the address
            r = cephalo.http_get(dp.port, "/chh/x", headers={"X-User": f"user-{i}"}, source=src)
            assert r.headers["x-target"] == first
        seen.add(first)
    assert len(seen) == 3, seen
    # no header: keyed on the address, so still stable per client
    a = cephalo.http_get(dp.port, "/chh/x", source="127.0.0.7").headers["x-target"]
    assert all(cephalo.http_get(dp.port, "/chh/x", source="127.0.0.7").headers["x-target"] == a for _ in range(3))


def test_weight_change_keeps_keepalive_connection(cp, make_dp, targets):
    dp = make_dp(workers=1)
    a, b = targets(2)
    service(cp.admin, "wc", [a, b])
    route(cp.admin, "wc", "wc")
    conn = http.client.HTTPConnection("127.0.0.1", dp.port, timeout=10)
    try:
        def get():
            conn.request("GET", "/wc/x")
            r = conn.getresponse()
            r.read()
            assert r.status == 200 and not r.will_close, r.getheaders()
            return conn.sock.getsockname()
        local = get()
        for _ in range(9):
            assert get() == local
        assert hits([a, b]) == [5, 5]
        service(cp.admin, "wc", [a, b], weights={0: 1, 1: 4}, method="PUT")
        for _ in range(50):
            assert get() == local  # the same client connection: never dropped by the push
        assert hits([a, b]) == [15, 45], hits([a, b])
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------------------------
# breaker and limits


def test_breaker_opens_then_half_open_probe_closes_it(cp, dp, targets):
    bad, good = targets(2)
    bad.mode = 500
    ejecting(cp.admin, "brk", [bad, good], failures=3, base_ms=1500, max_ms=3000)
    statuses = [dp.get("/brk/x").status for _ in range(12)]
    assert bad.count() == 3, (bad.count(), statuses)  # ejected after its third 500 in a row
    assert statuses.count(500) == 3
    before = bad.count()
    for _ in range(20):
        assert dp.get("/brk/x").status == 200
    assert bad.count() == before  # open: no traffic at all
    bad.mode = "ok"
    time.sleep(1.7)  # base_ejection_ms x 1: half-open now
    for _ in range(20):
        assert dp.get("/brk/x").status == 200
    assert bad.count() - before >= 5, (bad.count(), before)  # the probe succeeded: closed, traffic shared again


def test_failed_probe_reopens(cp, dp, targets):
    bad, good = targets(2)
    bad.mode = 502
    ejecting(cp.admin, "brk2", [bad, good], failures=2, base_ms=1000, max_ms=60000)
    for _ in range(8):
        dp.get("/brk2/x")
    assert bad.count() == 2
    time.sleep(1.3)  # half-open
    for _ in range(10):
        dp.get("/brk2/x")
    assert bad.count() == 3  # one probe, failed: open again, now for 2 x 1000 ms
    time.sleep(1.2)  # past the first ejection time, not the second
    for _ in range(10):
        dp.get("/brk2/x")
    assert bad.count() == 3


def test_max_ejection_percent_keeps_one_target(cp, dp, targets):
    a, b = targets(2)
    a.mode = b.mode = 503
    ejecting(cp.admin, "mep", [a, b], failures=2, base_ms=60000, max_percent=50)
    for _ in range(20):
        r = dp.get("/mep/x")
        assert r.status == 503 and r.headers.get("x-target"), r  # the upstream's 503, never no_healthy_upstream
    counts = hits([a, b])
    assert min(counts) == 2 and max(counts) == 18, counts  # one ejected, the other kept whatever it does


def test_all_targets_down_fast_503(cp, dp, targets):
    a, b = targets(2)
    a.stop()
    b.stop()
    ejecting(cp.admin, "down", [a, b], failures=1, base_ms=60000)
    for _ in range(4):
        r = dp.get("/down/x")
        assert r.status in (502, 503), r
    t0 = time.monotonic()
    for _ in range(10):
        json_error(dp.get("/down/x"), 503, "no_healthy_upstream")
    assert time.monotonic() - t0 < 3.0
    assert dp.proc.alive()


def test_max_requests_overloaded(cp, dp, targets):
    (t,) = targets(1)
    t.mode = "hold"
    service(cp.admin, "lim", [t], policies={"limits": {"max_requests": 2, "max_pending": 10}, **OUTLIER_OFF})
    route(cp.admin, "lim", "lim", policies={"timeouts": {"first_byte_ms": 30000}})
    held = []
    ths = [threading.Thread(target=lambda: held.append(dp.get("/lim/h", timeout=60)), daemon=True) for _ in range(2)]
    for th in ths:
        th.start()
    cephalo.wait_until(lambda: t.active() == 2, 10, "two held requests")
    t0 = time.monotonic()
    r = json_error(dp.get("/lim/x"), 503, "upstream_overloaded")
    assert r.headers.get("retry-after") == "1", r
    assert time.monotonic() - t0 < 2.0
    assert t.count() == 2
    t.release()
    for th in ths:
        th.join(10)
    assert [x.status for x in held] == [200, 200]
    for _ in range(5):  # the slots came back
        assert dp.get("/lim/x").status == 200


# ---------------------------------------------------------------------------------------------------------------
# failure mapping and timeouts


def test_connect_refused_502(cp, dp):
    dead = cephalo.free_port()
    cp.admin.apply("POST", "/api/v1/services", {"name": "ref", "targets": [{"url": f"http://127.0.0.1:{dead}"}]})
    route(cp.admin, "ref", "ref")
    t0 = time.monotonic()
    json_error(dp.get("/ref/x"), 502, "upstream_connect_failed")
    assert time.monotonic() - t0 < 3.0


def test_slow_head_504_first_byte_never_retried(cp, make_dp, targets):
    dp = make_dp(workers=1)
    slow, fast = targets(2)
    slow.mode = "delay"
    slow.delay_s = 2.0
    service(cp.admin, "fb", [slow, fast], policies=OUTLIER_OFF)
    route(cp.admin, "fb", "fb", policies={"timeouts": {"first_byte_ms": 300}, "retries": {"max": 2}})
    seen_504 = 0
    for _ in range(4):
        before = fast.count()
        t0 = time.monotonic()
        r = dp.get("/fb/x")
        elapsed = time.monotonic() - t0
        if r.status == 504:
            json_error(r, 504, "upstream_timeout")
            assert 0.25 <= elapsed < 1.8, elapsed
            assert fast.count() == before  # a first-byte timeout is never retried
            seen_504 += 1
        else:
            assert r.status == 200 and r.headers["x-target"] == fast.name, r
    assert seen_504 == 2


def test_connect_timeout_504_or_retried(cp, dp, targets):
    # a listener whose accept queue is full drops further SYNs: a connect that never completes
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(ls.getsockname())
        fillers.append(c)
    time.sleep(0.1)
    try:
        cp.admin.apply("POST", "/api/v1/services", {"name": "ct", "targets": [
            {"url": f"http://127.0.0.1:{ls.getsockname()[1]}"}]})
        route(cp.admin, "ct", "ct", policies={"timeouts": {"connect_ms": 200, "first_byte_ms": 10000}})
        t0 = time.monotonic()
        r = dp.get("/ct/x")
        elapsed = time.monotonic() - t0
        json_error(r, 504, "upstream_timeout")
        assert 0.15 <= elapsed < 2.0, elapsed
        # with a second target, a GET that met the connect timeout is retried there
        (live,) = targets(1)
        service(cp.admin, "ct2", [f"http://127.0.0.1:{ls.getsockname()[1]}", live], policies=OUTLIER_OFF)
        route(cp.admin, "ct2", "ct2", policies={"timeouts": {"connect_ms": 200}})
        for _ in range(4):
            r = dp.get("/ct2/x")
            assert r.status == 200 and r.headers["x-target"] == live.name, r
        assert live.count() == 4
    finally:
        for c in fillers:
            c.close()
        ls.close()


def test_idle_and_total_timeouts_truncate(cp, dp, targets):
    stall, trickle = targets(2)
    stall.mode = "stall"
    trickle.mode = "trickle"
    service(cp.admin, "st", [stall], policies=OUTLIER_OFF)
    service(cp.admin, "tr", [trickle], policies=OUTLIER_OFF)
    route(cp.admin, "st", "st", policies={"timeouts": {"idle_ms": 300}})
    route(cp.admin, "tr", "tr", policies={"timeouts": {"total_ms": 600}})
    for path in ("/st/x", "/tr/x"):
        conn = http.client.HTTPConnection("127.0.0.1", dp.port, timeout=10)
        t0 = time.monotonic()
        conn.request("GET", path)
        r = conn.getresponse()
        assert r.status == 200
        with pytest.raises(http.client.IncompleteRead):
            r.read()
        assert time.monotonic() - t0 < 3.0
        conn.close()
    stall.release()
    # before the head, total_ms is a 504
    trickle.mode = "delay"
    trickle.delay_s = 2.0
    json_error(dp.get("/tr/y"), 504, "upstream_timeout")


@pytest.mark.parametrize("mode", ["cut", "cut_chunked"])
def test_mid_body_close_is_a_truncation(cp, dp, targets, mode):
    (t,) = targets(1)
    t.mode = mode
    service(cp.admin, "cut", [t], policies=OUTLIER_OFF)
    route(cp.admin, "cut", "cut", policies={"retries": {"max": 2, "statuses": [502, 503]}})
    for _ in range(2):
        conn = http.client.HTTPConnection("127.0.0.1", dp.port, timeout=10)
        conn.request("GET", "/cut/x")
        r = conn.getresponse()
        assert r.status == 200
        with pytest.raises(http.client.IncompleteRead):
            r.read()
        conn.close()
    assert t.count() == 2  # nothing retried once the head went out
    # HTTP/2: the stream is reset (or the connection ends), never a clean end of stream
    with socket.create_connection(("127.0.0.1", dp.port), timeout=10) as s:
        with pytest.raises(Exception) as e:
            cephalo.h2_request(s, f"127.0.0.1:{dp.port}", "/cut/h2")
        assert "reset" in str(e.value) or "closed" in str(e.value) or "Length" in type(e.value).__name__, e.value
    t.mode = "ok"
    assert dp.get("/cut/x").status == 200
    assert dp.proc.alive()


# ---------------------------------------------------------------------------------------------------------------
# retries


def test_get_retried_on_connect_failure_post_never(cp, make_dp, targets):
    dp = make_dp(workers=1)
    (live,) = targets(1)
    dead = f"http://127.0.0.1:{cephalo.free_port()}"
    service(cp.admin, "rcf", [dead, live], policies=OUTLIER_OFF)
    route(cp.admin, "rcf", "rcf")
    for _ in range(10):
        r = dp.get("/rcf/x")
        assert r.status == 200 and r.headers["x-target"] == live.name, r
    assert live.count() == 10
    posts = [cephalo.http_request(dp.port, "POST", "/rcf/x", body=b"{}") for _ in range(10)]
    failed = [r for r in posts if r.status != 200]
    assert 3 <= len(failed) <= 7, posts  # round robin: about half land on the dead target, and stay there
    for r in failed:
        json_error(r, 502, "upstream_connect_failed")
    assert live.count() == 10 + len(posts) - len(failed)


def test_get_retried_on_listed_status_post_never(cp, make_dp, targets):
    dp = make_dp(workers=1)
    bad, good = targets(2)
    bad.mode = 503
    service(cp.admin, "rst", [bad, good], policies=OUTLIER_OFF)
    route(cp.admin, "rst", "rst", policies={"retries": {"max": 1, "statuses": [503], "budget_percent": 100,
                                                        "min_concurrent": 10}})
    route(cp.admin, "rnl", "rst", policies={"retries": {"max": 1, "statuses": [502]}})  # 503 not listed
    for _ in range(10):
        r = dp.get("/rst/x")
        assert r.status == 200 and r.headers["x-target"] == good.name, r
    assert bad.count() >= 3 and good.count() == 10, hits([bad, good])  # the 503 answers were discarded
    bad0, good0 = bad.count(), good.count()
    posts = [cephalo.http_request(dp.port, "POST", "/rst/x", body=b"x").status for _ in range(10)]
    assert posts.count(503) == bad.count() - bad0 >= 3, posts  # never retried: the client gets the 503
    assert bad.count() + good.count() - bad0 - good0 == 10  # one attempt per POST
    bad0, good0 = bad.count(), good.count()
    statuses = [dp.get("/rnl/x").status for _ in range(10)]
    assert statuses.count(503) == bad.count() - bad0 >= 3, statuses  # 503 not listed on this route
    assert bad.count() + good.count() - bad0 - good0 == 10


def test_retry_budget_limits_retries(cp, make_dp, targets):
    dp = make_dp(workers=1)
    bad, hold = targets(2)
    bad.mode = 503
    hold.mode = "hold"
    service(cp.admin, "bud", [bad, hold], policies=OUTLIER_OFF)
    route(cp.admin, "bud", "bud", policies={"retries": {"max": 1, "statuses": [503], "budget_percent": 0,
                                                        "min_concurrent": 1},
                                            "timeouts": {"first_byte_ms": 30000}})
    n = 10
    results = []
    ths = [threading.Thread(target=lambda: results.append(dp.get("/bud/x", timeout=60)), daemon=True)
           for _ in range(n)]
    for th in ths:
        th.start()
        time.sleep(0.05)
    # every request landing on `bad` is retried or answered 503; retries wait at `hold` with the rest
    cephalo.wait_until(lambda: len(results) + hold.active() == n, 15, "every request answered or held")
    retries = bad.count() + hold.count() - n
    assert bad.count() >= 3, bad.count()
    assert retries <= 1, (bad.count(), hold.count())  # min_concurrent 1, 0 %: one retry in flight at most
    assert sum(1 for r in results if r.status == 503) == bad.count() - retries
    hold.release()
    for th in ths:
        th.join(15)
    assert len(results) == n


def test_stale_pooled_connection_retried_fresh(cp, dp, targets):
    """The upstream closing idle keep-alive connections costs no request, POST included after a GET warmed it."""
    (t,) = targets(1)
    service(cp.admin, "stale", [t], policies=OUTLIER_OFF)
    route(cp.admin, "stale", "stale", policies={"retries": {"max": 0}})
    for _ in range(4):
        assert dp.get("/stale/x").status == 200
    # drop every upstream connection behind the gateway's back
    with t.lock:
        conns = list(t.conns)
    for c in conns:
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    time.sleep(0.1)
    for _ in range(4):
        assert dp.get("/stale/x").status == 200


def test_large_body_written_then_timed_by_first_byte(cp, dp, targets):
    """A body over 64 KiB is written under idle_ms, then first_byte_ms runs: both paths reach the upstream whole."""
    (t,) = targets(1)
    service(cp.admin, "big", [t], policies=OUTLIER_OFF)
    route(cp.admin, "big", "big", policies={"timeouts": {"first_byte_ms": 300, "idle_ms": 5000}})
    for size in (10, 300 * 1024):
        r = cephalo.http_request(dp.port, "PUT", "/big/x", body=b"b" * size)
        assert r.status == 200, r
        assert t.last_length == size
    t.mode = "delay"
    t.delay_s = 1.5
    json_error(cephalo.http_request(dp.port, "PUT", "/big/x", body=b"b" * 300 * 1024), 504, "upstream_timeout")
