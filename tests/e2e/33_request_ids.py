"""33: request ids and W3C trace context (docs/observability.md "Request ids and trace context").

Every answer carries X-Request-Id - proxied, cached or not, an error, a built-in route - and the upstream receives
the same id as x-request-id (and <prefix>request-id) exactly once. A client's X-Request-Id is adopted only when the
control plane runs with --trust-request-id and the value is acceptable; otherwise it is replaced, never forwarded
beside ours. A valid traceparent keeps its trace id and flags and gets the gateway's span id; its tracestate is
forwarded; an invalid or absent one starts a new trace. The access log's trace_id is the trace the upstream joined.

The upstream here is cephalo.RawUpstream, which records the exact request head, so a duplicated header shows.
"""
import json
import os
import re
import pytest

import cephalo

HEX32 = re.compile(r"^[0-9a-f]{32}$")
PARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


def values(head, name):
    return [v for k, v in head if k == name]


@pytest.fixture
def raw_up():
    up = cephalo.RawUpstream()
    yield up
    up.close()


def setup_routes(admin, up):
    admin.apply("POST", "/api/v1/services", {"name": "raw", "targets": [{"url": up.url}]})
    admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "raw", "service": "raw", "paths": ["/raw"],
                                                        "default_access": "public"})


def test_ids_and_trace_context(procs, tmpdir_str, cp, make_dp, raw_up):
    log = os.path.join(tmpdir_str, "access.log")
    dp = make_dp(extra_args=["--access-log", log])
    setup_routes(cp.admin, raw_up)

    # a client id and trace context: the id is replaced (not trusted by default), the trace is joined
    r = dp.get("/raw/a", headers={"X-Request-Id": "client-chosen-1", "traceparent": CLIENT_PARENT,
                                  "tracestate": "congo=t61rcWkgMzE"})
    assert r.status == 200, r
    rid = r.headers.get("x-request-id")
    assert rid is not None and HEX32.match(rid), r.headers
    head = raw_up.last()
    assert values(head, "x-request-id") == [rid], head           # once, ours: never the client's beside it
    assert values(head, "x-cephalo-request-id") == [rid], head
    parents = values(head, "traceparent")
    assert len(parents) == 1, head
    m = PARENT.match(parents[0])
    assert m and m.group(1) == CLIENT_TRACE and m.group(3) == "01", parents
    assert m.group(2) != "00f067aa0ba902b7", "the gateway must be the upstream's parent span"
    assert values(head, "tracestate") == ["congo=t61rcWkgMzE"], head
    assert "client-chosen-1" not in json.dumps(head)
    joined_trace = m.group(1)

    # no trace context: a new trace per request, not sampled, named by the request id
    seen = set()
    for _ in range(3):
        r = dp.get("/raw/b")
        assert r.status == 200
        m = PARENT.match(values(raw_up.last(), "traceparent")[0])
        assert m and m.group(3) == "00", raw_up.last()
        assert m.group(1) == r.headers["x-request-id"], (m.group(1), r.headers)
        seen.add(m.group(1))
    assert len(seen) == 3

    # an invalid traceparent starts a new trace and drops its tracestate
    for bad in ["00-" + CLIENT_TRACE.upper() + "-00f067aa0ba902b7-01", "ff-" + CLIENT_PARENT[3:],
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01", CLIENT_PARENT + "-extra", "garbage"]:
        assert dp.get("/raw/c", headers={"traceparent": bad, "tracestate": "congo=x"}).status == 200
        head = raw_up.last()
        m = PARENT.match(values(head, "traceparent")[0])
        assert m and m.group(1) != CLIENT_TRACE, (bad, head)
        assert values(head, "tracestate") == [], (bad, head)

    # the upstream's own X-Request-Id never reaches the client: ours replaces it
    r = dp.get("/raw/d")
    assert r.headers.get("x-request-id") != "from-upstream", r.headers
    assert r.headers.get("x-request-id") == values(raw_up.last(), "x-request-id")[0]

    # errors and built-in routes carry it too, in the header and the body
    r = dp.get("/nowhere")
    assert r.status == 404 and HEX32.match(r.headers.get("x-request-id", "")), r
    assert r.json()["request_id"] == r.headers["x-request-id"]
    r = dp.get("/auth/.well-known/jwks.json")
    assert r.status == 200 and HEX32.match(r.headers.get("x-request-id", "")), r

    # HTTP/2 (h2c) too
    p = cephalo.curl("--http2-prior-knowledge", "-s", "-D", "-", "-o", "/dev/null", f"http://127.0.0.1:{dp.port}/raw/h2")
    assert re.search(r"(?im)^x-request-id: [0-9a-f]{32}\r?$", p.stdout), p.stdout

    # the access log line of the joined request names the client's trace
    def joined():
        if not os.path.exists(log):
            return None
        for line in open(log, encoding="utf-8"):
            doc = json.loads(line)
            if doc["request_id"] == rid:
                return doc
        return None
    doc = cephalo.wait_until(joined, 5.0, "the access log line of the first request")
    assert doc["trace_id"] == joined_trace, doc


def test_trusted_incoming_request_id(procs, tmpdir_str, raw_up):
    cp = cephalo.ControlPlane(procs, tmpdir_str, extra_args=["--trust-request-id"]).start()
    dp = cephalo.DataPlane(procs, tmpdir_str, cp.socket).start()
    dp.wait_connected(cp.admin)
    setup_routes(cp.admin, raw_up)
    snap = cp.admin.get("/api/v1/snapshot?body=1").json()
    assert snap["body"]["gateway"]["request_id"] == {"trust_incoming": True}, snap["body"]["gateway"]

    good = "0b7a2c4e-9d1f-4c55-8f0e-2f6c1b7d9a10"
    r = dp.get("/raw/a", headers={"X-Request-Id": good})
    assert r.status == 200 and r.headers.get("x-request-id") == good, r.headers
    assert values(raw_up.last(), "x-request-id") == [good]
    # errors echo it as well
    r = dp.get("/nowhere", headers={"X-Request-Id": good})
    assert r.headers.get("x-request-id") == good and r.json()["request_id"] == good

    # anything else is replaced: too long, a space, a quote, a comma (which would read as two ids upstream)
    for bad in ["a" * 129, "has space", 'q"uote', "a,b", ""]:
        r = dp.get("/raw/b", headers={"X-Request-Id": bad})
        assert r.status == 200, (bad, r)
        rid = r.headers.get("x-request-id")
        assert rid != bad and HEX32.match(rid), (bad, r.headers)
        assert values(raw_up.last(), "x-request-id") == [rid], (bad, raw_up.last())
