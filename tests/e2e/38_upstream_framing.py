"""38: malformed upstream responses, with the real bytes (docs/dataplane.md "Timeouts and retries", "Error mapping").

A response head the gateway cannot frame without guessing - Content-Length with Transfer-Encoding, two different
lengths, a coding other than chunked, an obs-fold line, a control byte, a head over 64 KiB - is 502 bad_gateway and
its connection is closed, never pooled. A malformed chunk after the head went out aborts the client's response (the
client sees the truncation) and closes the upstream connection too. The next request gets a fresh connection and a
well-formed answer.
"""
import http.client
import socket
import threading

import pytest

import cephalo

GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
BAD = {
    "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "te-cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: 3x\r\n\r\nabc",
    "gzip-te": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\nok",
    "nul-in-header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "bad-status": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    "huge-head": b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 70000 + b"\r\nContent-Length: 2\r\n\r\nok",
}
TRUNCATING = {
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nmore\r\n0\r\n\r\n",
    "chunk-overflow": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n",
}


class CannedUpstream:
    """Answers /<name> with BAD[name] or TRUNCATING[name] and anything else with GOOD, on any connection; records
    (connection number, path) per request and whether each connection was closed by the gateway."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = []
        self.conns = 0
        threading.Thread(target=self.accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            threading.Thread(target=self.serve, args=(conn, n), daemon=True).start()

    def serve(self, conn, n):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ", 2)[1].decode()
                name = path.rsplit("/", 1)[-1]
                with self.lock:
                    self.requests.append((n, path))
                try:
                    conn.sendall(BAD.get(name) or TRUNCATING.get(name) or GOOD)
                except OSError:
                    return

    def close(self):
        self.sock.close()


@pytest.fixture
def canned(cp, dp):
    up = CannedUpstream()
    cp.admin.apply("POST", "/api/v1/services", {"name": "canned", "targets": [{"url": up.url}]})
    cp.admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "canned", "service": "canned", "paths": ["/c"],
                                                           "default_access": "public"})
    yield dp, up
    up.close()


def conn_of(up, path):
    with up.lock:
        return [n for n, p in up.requests if p == path][-1]


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_head_is_502_and_not_reused(canned, name):
    dp, up = canned
    assert dp.get("/c/warm").status == 200  # a pooled connection exists now
    r = dp.get(f"/c/{name}")
    assert r.status == 502 and r.json()["error"] == "bad_gateway", (name, r)
    bad_conn = conn_of(up, f"/c/{name}")
    r = dp.get("/c/next")
    assert r.status == 200 and r.body == b"ok", r
    assert conn_of(up, "/c/next") != bad_conn, up.requests  # the connection that carried the bad head is gone


@pytest.mark.parametrize("name", sorted(TRUNCATING))
def test_malformed_body_truncates_and_is_not_reused(canned, name):
    dp, up = canned
    c = http.client.HTTPConnection("127.0.0.1", dp.port, timeout=10)
    c.request("GET", f"/c/{name}")
    resp = c.getresponse()
    assert resp.status == 200  # the head had gone out: only the truncation can tell the client
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        resp.read()
    c.close()
    bad_conn = conn_of(up, f"/c/{name}")
    r = dp.get("/c/next")
    assert r.status == 200 and r.body == b"ok", r
    assert conn_of(up, "/c/next") != bad_conn, up.requests
