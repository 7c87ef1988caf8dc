"""37: request smuggling and header tricks, with the real bytes (docs/dataplane.md "Request framing").

For every ambiguous framing h2o 2.2.5 either refuses the request itself (400 and close), or consumes the evidence
before the data plane runs (it keeps one Content-Length, lets chunked win over Content-Length, reads "3x" as a chunk
of 3 with an extension, accepts bare LF line ends). Where it is consumed, what must hold - and is checked here - is:
the upstream sees exactly one well-formed request per client request, framed by the gateway (one Host, one
Content-Length matching the body, no Transfer-Encoding), and bytes smuggled behind it are a request of their own
that runs the whole pipeline: here a request for an authenticated route without a token, which must be 401 and
never reach the upstream. What h2o lets through and the data plane can see - an obs-fold line, which h2o turns into
a header with an empty name - is 400 and closes the connection. An HTTP/2 header value with CR, LF or NUL (which
would split the HTTP/1.1 head written upstream) is refused by h2o's HPACK decoder itself (400); the test pins it.
"""
import re
import socket

import h2.config
import h2.connection
import h2.events
import pytest

import cephalo

SMUGGLED = b"GET /priv/secret HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.fixture
def gw(cp, dp):
    up = cephalo.RawUpstream()
    cp.admin.apply("POST", "/api/v1/services", {"name": "raw", "targets": [{"url": up.url}]})
    cp.admin.apply("POST", "/api/v1/routes", {"name": "pub", "service": "raw", "paths": ["/pub"],
                                              "default_access": "public"})
    cp.admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "priv", "service": "raw", "paths": ["/priv"]})
    yield dp, up
    up.close()


def exchange(port, data):
    """Writes data, half-closes, reads until the gateway closes: returns [(status, head bytes)] in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
    return [(int(m.group(1)), m.group(0)) for m in re.finditer(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n", out)]


def assert_well_formed(up):
    """Every request the upstream saw was framed by the gateway."""
    for line, head, body in zip(up.request_lines, up.heads, up.bodies):
        assert re.fullmatch(r"(GET|POST|PUT) /\S* HTTP/1\.1", line), line
        names = [k for k, _ in head]
        assert all(v is not None and k and re.fullmatch(r"[a-z0-9!#$%&'*+.^_`|~-]+", k) for k, v in head), head
        assert names.count("host") == 1, head
        assert "transfer-encoding" not in names, head
        lengths = [v for k, v in head if k == "content-length"]
        assert len(lengths) <= 1 and int(lengths[0] if lengths else 0) == len(body), (head, body)


# (name, first request, what h2o does with it: "served" = forwarded re-framed, "refused" = 400 and closed)
CASES = [
    ("cl-then-te", b"POST /pub/a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n0\r\n\r\n", "served"),
    ("te-then-cl", b"POST /pub/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n"
                   b"3\r\nabc\r\n0\r\n\r\n", "served"),
    ("cl-te-zero-chunk", b"POST /pub/a HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"0\r\n\r\n", "served"),
    ("duplicate-cl", b"POST /pub/a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "served"),
    ("chunk-size-junk", b"POST /pub/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n",
     "served"),
    ("chunk-extension", b"POST /pub/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\n\r\n",
     "served"),
    ("bare-lf", b"GET /pub/a HTTP/1.1\nHost: a\nX-A: b\n\n", "served"),
    ("two-hosts", b"GET /pub/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "served"),
    ("chunk-size-overflow", b"POST /pub/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"ffffffffffffffffff\r\nabc\r\n0\r\n\r\n", "refused"),
    ("te-identity", b"POST /pub/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc",
     "refused"),
    ("te-gzip-chunked", b"POST /pub/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     "refused"),
    ("te-xchunked", b"POST /pub/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\nabc",
     "refused"),
    ("obs-fold", b"GET /pub/a HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", "refused"),
    ("obs-fold-tab", b"GET /pub/a HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n", "refused"),
    ("bare-cr", b"GET /pub/a HTTP/1.1\r\nHost: a\rX-B: c\r\n\r\n", "refused"),
    ("cr-in-value", b"GET /pub/a HTTP/1.1\r\nHost: a\r\nX-B: c\rd\r\n\r\n", "refused"),
    ("space-before-colon", b"GET /pub/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", "refused"),
    ("ctl-in-name", b"GET /pub/a HTTP/1.1\r\nHost: a\r\nX-\x01B: c\r\n\r\n", "refused"),
]


@pytest.mark.parametrize("name,first,outcome", CASES, ids=[c[0] for c in CASES])
def test_framing_tricks(gw, name, first, outcome):
    dp, up = gw
    answers = exchange(dp.port, first + SMUGGLED)
    statuses = [s for s, _ in answers]
    if outcome == "served":
        # one forwarded request, and the smuggled one answered 401 by the gateway itself
        assert statuses == [200, 401], (name, answers)
        assert up.count == 1 and up.request_lines[0].startswith(("GET /pub/a ", "POST /pub/a ")), up.request_lines
    else:
        # refused, and the connection closed: the smuggled bytes are never read as a request
        assert statuses == [400], (name, answers)
        assert b"connection: close" in answers[0][1].lower() or len(answers) == 1, answers
        assert up.count == 0, up.request_lines
    assert_well_formed(up)
    assert dp.proc.alive()
    assert dp.get("/pub/after").status == 200  # and the gateway goes on


def h2_exchange(dp, header_list, validate=False):
    """One HTTP/2 (h2c) request with exactly these headers, the h2 library's own checks off: returns the status or
    'reset' when the stream was reset."""
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=validate,
                                    normalize_outbound_headers=False)
    conn = h2.connection.H2Connection(config=cfg)
    conn.initiate_connection()
    with socket.create_connection(("127.0.0.1", dp.port), timeout=10) as s:
        s.sendall(conn.data_to_send())
        conn.send_headers(1, header_list, end_stream=True)
        s.sendall(conn.data_to_send())
        while True:
            data = s.recv(65536)
            if not data:
                return "closed"
            for e in conn.receive_data(data):
                if isinstance(e, h2.events.ResponseReceived):
                    return int(dict(e.headers)[":status"])
                if isinstance(e, h2.events.StreamReset):
                    return "reset"
                if isinstance(e, h2.events.ConnectionTerminated):
                    return "goaway"
            s.sendall(conn.data_to_send())


BASE = [(":method", "GET"), (":path", "/pub/h2"), (":scheme", "http"), (":authority", "a")]


@pytest.mark.parametrize("value", ["b\r\nx-injected: 1", "b\nx-injected: 1", "b\rc", "b\x00c"],
                         ids=["crlf", "lf", "cr", "nul"])
def test_h2_header_value_injection_is_400(gw, value):
    """HPACK carries any byte: a value that would split the HTTP/1.1 head written upstream is refused (by h2o)."""
    dp, up = gw
    assert h2_exchange(dp, BASE + [("x-a", value)]) == 400
    assert up.count == 0, up.heads
    assert h2_exchange(dp, BASE + [("x-a", "fine")]) == 200
    assert up.count == 1 and ("x-a", "fine") in up.last()
    assert_well_formed(up)


def test_hpack_bomb_is_431(gw):
    """A 3.9 KB header indexed once in the HPACK table and referenced 300 times: about 4 KB on the wire, 1.2 MB once
    decoded. The decoded size is capped (431), whatever the encoded size; the gateway goes on."""
    dp, up = gw
    big = "x" * 3900
    assert h2_exchange(dp, BASE + [("x-bomb", big)] * 300, validate=True) == 431
    assert h2_exchange(dp, BASE + [(f"x-h{i}", "v") for i in range(150)], validate=True) == 431  # count cap
    assert up.count == 0
    assert h2_exchange(dp, BASE, validate=True) == 200
