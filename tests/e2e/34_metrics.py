"""34: the data plane's request metrics (docs/dataplane.md "Metrics") and both planes' /metrics, read with a strict
Prometheus text-format parser written here (version 0.0.4: HELP and TYPE at most once per family and before its
samples, a family's samples together, metric and label names by the grammar, label values with only the \\\\, \\" and
\\n escapes, no duplicate series, histograms with ascending `le`, cumulative buckets and +Inf = _count).

Counters must move as the traffic says: requests by route x method x status class, the request duration histogram,
bytes in and out, the upstream duration histogram by service, a 429 in the limited counter of its route, a 502 in the
upstream errors of its service; gauges for open connections, target health and breaker, the last snapshot apply.
The control plane's GET /metrics needs the admin bearer token and parses with the same parser.
"""
import http.client
import math
import re

import pytest

import cephalo
from cephalo import rate_limit

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class ExpositionError(AssertionError):
    pass


def _parse_value(s, where):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ExpositionError(f"{where}: bad value {s!r}")
    return float(s)


def _parse_labels(s, i, where):
    """s[i] is just past '{'; returns (labels dict, index past '}')."""
    labels = {}
    while True:
        if s.startswith("}", i):
            return labels, i + 1
        m = LABEL_NAME.match(s, i)
        if not m:
            raise ExpositionError(f"{where}: bad label name at {s[i:]!r}")
        name = m.group(0)
        if name.startswith("__"):
            raise ExpositionError(f"{where}: reserved label name {name}")
        if name in labels:
            raise ExpositionError(f"{where}: label {name} twice")
        i = m.end()
        if not s.startswith('="', i):
            raise ExpositionError(f"{where}: want =\" after {name}")
        i += 2
        value = []
        while True:
            if i >= len(s):
                raise ExpositionError(f"{where}: unterminated label value")
            c = s[i]
            if c == "\\":
                nxt = s[i + 1: i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ExpositionError(f"{where}: bad escape \\{nxt}")
                value.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ExpositionError(f"{where}: raw newline in a label value")
            else:
                value.append(c)
                i += 1
        labels[name] = "".join(value)
        if s.startswith(",", i):
            i += 1
            if s.startswith("}", i):  # a trailing comma is allowed by the format
                return labels, i + 1
        elif not s.startswith("}", i):
            raise ExpositionError(f"{where}: want , or }} after label {name}")


def _family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) in ("histogram", "summary"):
            if suffix == "_bucket" and types[base] != "histogram":
                continue
            return base
    return name


def parse_strict(text):
    """Exposition text -> {family: {"type", "help", "samples": [(name, labels, value)]}}; raises ExpositionError."""
    if text and not text.endswith("\n"):
        raise ExpositionError("the text does not end with a newline")
    fams, types, helps, series, done, current = {}, {}, {}, set(), set(), None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n} {line!r}"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not METRIC_NAME.fullmatch(name):
                    raise ExpositionError(f"{where}: bad metric name")
                table = helps if parts[1] == "HELP" else types
                if name in table:
                    raise ExpositionError(f"{where}: second {parts[1]} for {name}")
                if name in done or (name in fams and fams[name]["samples"]):
                    raise ExpositionError(f"{where}: {parts[1]} after the samples of {name}")
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ExpositionError(f"{where}: bad type")
                    types[name] = parts[3]
                else:
                    helps[name] = parts[3] if len(parts) == 4 else ""
                fam = fams.setdefault(name, {"type": "untyped", "help": None, "samples": []})
                fam["type"] = types.get(name, fam["type"])
                fam["help"] = helps.get(name, fam["help"])
                if current is not None and current != name:
                    done.add(current)
                current = name
            continue
        if not line.strip():
            raise ExpositionError(f"{where}: blank line")
        m = METRIC_NAME.match(line)
        if not m:
            raise ExpositionError(f"{where}: bad metric name")
        name, i, labels = m.group(0), m.end(), {}
        if line.startswith("{", i):
            labels, i = _parse_labels(line, i + 1, where)
        if not line.startswith(" ", i):
            raise ExpositionError(f"{where}: want a space before the value")
        rest = line[i + 1:].split(" ")
        if len(rest) not in (1, 2) or (len(rest) == 2 and not re.fullmatch(r"-?\d+", rest[1])):
            raise ExpositionError(f"{where}: want a value and an optional integer timestamp")
        value = _parse_value(rest[0], where)
        family = _family_of(name, types)
        if family in done:
            raise ExpositionError(f"{where}: the samples of {family} are not together")
        if current is not None and current != family:
            done.add(current)
        current = family
        if family not in types:
            raise ExpositionError(f"{where}: sample of {family} without a TYPE before it")
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ExpositionError(f"{where}: duplicate series")
        series.add(key)
        kind = types[family]
        if kind == "histogram":
            if name == family:
                raise ExpositionError(f"{where}: a histogram sample must be _bucket, _sum or _count")
            if name.endswith("_bucket") != ("le" in labels):
                raise ExpositionError(f"{where}: le belongs on _bucket samples only")
        if kind == "counter" and not (value >= 0):
            raise ExpositionError(f"{where}: negative counter")
        fams[family]["samples"].append((name, labels, value))
    for family, fam in fams.items():
        if fam["type"] == "histogram":
            _check_histogram(family, fam["samples"])
    return fams


def _check_histogram(family, samples):
    groups = {}
    for name, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name.endswith("_bucket"):
            g["buckets"].append((_parse_value(labels["le"], family), value))
        elif name.endswith("_sum"):
            g["sum"] = value
        else:
            g["count"] = value
    for rest, g in groups.items():
        where = f"{family}{dict(rest)}"
        les = [le for le, _ in g["buckets"]]
        if not les or les[-1] != math.inf:
            raise ExpositionError(f"{where}: no +Inf bucket (or not last)")
        if les != sorted(les) or len(set(les)) != len(les):
            raise ExpositionError(f"{where}: le not ascending")
        counts = [c for _, c in g["buckets"]]
        if counts != sorted(counts):
            raise ExpositionError(f"{where}: buckets not cumulative: {counts}")
        if g["count"] is None or g["sum"] is None:
            raise ExpositionError(f"{where}: _sum or _count missing")
        if g["count"] != counts[-1]:
            raise ExpositionError(f"{where}: +Inf bucket {counts[-1]} != _count {g['count']}")


def value(fams, name, **labels):
    """Sum of the samples named `name` (a family or a histogram's _bucket/_sum/_count) whose labels include labels."""
    total, found = 0.0, False
    for fam in fams.values():
        for n, ls, v in fam["samples"]:
            if n == name and all(ls.get(k) == str(want) for k, want in labels.items()):
                total, found = total + v, True
    return total if found else None


def scrape_dp(dp):
    r = cephalo.http_get(dp.status_port, "/metrics")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"), r.headers
    return parse_strict(r.body.decode())


def scrape_cp(cp):
    r = cp.admin.get("/metrics")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    return parse_strict(r.body.decode())


def delta(after, before, name, **labels):
    return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)


# ---------------------------------------------------------------------------------------------------------------
# the parser itself must refuse what is wrong (so the checks below mean something)


GOOD = ('# HELP a_total A.\n# TYPE a_total counter\na_total{x="q\\"\\\\\\n"} 1\n'
        '# TYPE h histogram\nh_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.3\nh_count 2\n')


@pytest.mark.parametrize("bad", [
    GOOD.replace('a_total{x="q', 'a_total{x="\\q'),                       # unknown escape
    GOOD + "# TYPE a_total counter\n",                                    # TYPE twice
    GOOD.replace("# TYPE a_total counter\n", ""),                         # sample without TYPE
    GOOD + 'a_total{x="other"} 2\n',                                      # family not together
    GOOD.replace('h_count 2', 'h_count 3'),                               # +Inf != _count
    GOOD.replace('h_bucket{le="0.1"} 1', 'h_bucket{le="0.1"} 3'),        # not cumulative
    GOOD.replace('h_bucket{le="+Inf"} 2\n', ''),                          # no +Inf
    GOOD.replace('a_total{x="q\\"\\\\\\n"} 1', 'a_total{x="1",x="2"} 1'),  # label twice
    GOOD + 'h_sum 0.3\n',                                                 # duplicate series (and not together)
    GOOD.replace("a_total{", "1a{"),                                      # bad name
    GOOD.replace("} 1\n#", "} one\n#"),                                   # bad value
    GOOD.replace("A.\n# TYPE", "A.\n\n# TYPE"),                           # blank line
    GOOD[:-1],                                                            # no final newline
])
def test_parser_refuses(bad):
    parse_strict(GOOD)
    with pytest.raises(ExpositionError):
        parse_strict(bad)


# ---------------------------------------------------------------------------------------------------------------
# the data plane


@pytest.fixture
def gw(procs, tmpdir_str, pyup):
    g = cephalo.Gateway(procs, tmpdir_str, pyup.url)
    g.admin.apply("POST", "/api/v1/services",
                  {"name": "m-dead", "targets": [{"url": f"http://127.0.0.1:{cephalo.free_port()}"}]})
    g.route("m-ok", "/mok")
    g.route("m-lim", "/mlim", policies={"rate_limits": [rate_limit("one", rate=1, period_s=60)]})
    g.route("m-dead", "/mdead", service="m-dead")
    return g


def test_dp_metrics_move(gw, pyup):
    dp = gw.dp
    before = scrape_dp(dp)
    for _ in range(3):
        assert gw.get("/mok/a").status == 200
    r = cephalo.http_request(dp.port, "POST", "/mok/b", body=b"0123456789", headers={"Content-Type": "text/plain"})
    assert r.status == 200, r
    assert gw.get("/mlim/x").status == 200
    assert gw.get("/mlim/x").status == 429
    assert gw.get("/mdead/x").status == 502
    assert gw.get("/nowhere-at-all").status == 404
    # counted at each request's dispose, which may run just after the client has its answer: wait for all 8
    after = cephalo.wait_until(lambda: (lambda m: m if delta(m, before, "cephalo_dp_requests_total") >= 8 else None)(
        scrape_dp(dp)), 10, "the 8 requests counted")

    def d(name, **labels):
        return delta(after, before, name, **labels)
    assert d("cephalo_dp_requests_total", route="m-ok", method="GET", status_class="2xx") == 3
    assert d("cephalo_dp_requests_total", route="m-ok", method="POST", status_class="2xx") == 1
    assert d("cephalo_dp_requests_total", route="m-ok") == 4
    assert d("cephalo_dp_requests_total", route="m-lim", status_class="4xx") == 1
    assert d("cephalo_dp_requests_total", route="m-dead", method="GET", status_class="5xx") == 1
    assert d("cephalo_dp_requests_total", route="", status_class="4xx") == 1
    # the 429 is the limited decision of its route, the 502 a connect error of its service
    assert d("cephalo_ratelimit_total", route="m-lim", limit="one", outcome="limited") == 1
    assert d("cephalo_ratelimit_total", route="m-lim", limit="one", outcome="allowed") == 1
    assert d("cephalo_dp_upstream_errors_total", service="m-dead", kind="connect") == 1
    # every answered request is observed once in the duration histogram of its route
    assert d("cephalo_dp_request_duration_seconds_count", route="m-ok") == 4
    assert d("cephalo_dp_request_duration_seconds_bucket", route="m-ok", le="+Inf") == 4
    assert d("cephalo_dp_request_duration_seconds_count", route="m-lim") == 2
    assert d("cephalo_dp_request_duration_seconds_sum", route="m-ok") > 0
    assert d("cephalo_dp_request_duration_seconds_sum", route="m-ok") < 4 * 30  # sane: seconds, not ms
    # bytes: the 10-byte body in, the echo answers out
    assert d("cephalo_dp_request_bytes_total", route="m-ok") == 10
    assert d("cephalo_dp_response_bytes_total", route="m-ok") > 0
    # upstream time of the service the 4 requests reached (the refused 429 reached none)
    assert d("cephalo_dp_upstream_duration_seconds_count", service="echo") == 5
    assert d("cephalo_dp_upstream_duration_seconds_sum", service="echo") > 0
    # the target gauges and the last apply's timings
    target = pyup.url.split("//", 1)[1]
    assert value(after, "cephalo_dp_upstream_target_ejected", service="echo", target=target) == 0
    assert value(after, "cephalo_dp_upstream_target_healthy", service="echo", target=target) == 1
    assert value(after, "cephalo_dp_snapshot_apply_seconds") > 0
    assert value(after, "cephalo_dp_snapshot_build_seconds") > 0
    assert after["cephalo_dp_request_duration_seconds"]["type"] == "histogram"
    assert after["cephalo_dp_requests_total"]["type"] == "counter"
    assert value(after, "cephalo_dp_access_log_dropped_total") == 0


def test_dp_connection_gauges(gw):
    dp = gw.dp
    base = value(scrape_dp(dp), "cephalo_dp_connections_active", protocol="http1")
    conn = http.client.HTTPConnection("127.0.0.1", dp.port, timeout=10)
    try:
        conn.request("GET", "/mok/keep")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        # the kept-alive connection counts as http1 while it is open
        cephalo.wait_until(lambda: value(scrape_dp(dp), "cephalo_dp_connections_active", protocol="http1") >= base + 1,
                           10, "an open HTTP/1 connection in the gauge")
    finally:
        conn.close()
    cephalo.wait_until(lambda: value(scrape_dp(dp), "cephalo_dp_connections_active", protocol="http1") == base,
                       10, "the closed connection out of the gauge")
    m = scrape_dp(dp)
    assert all(v >= 0 for _, _, v in m["cephalo_dp_connections_active"]["samples"])
    assert value(m, "cephalo_dp_connections_accepted_total") >= 1


def test_dp_breaker_gauge(procs, tmpdir_str, pyup):
    """A target that fails its outlier threshold is ejected: its gauge says 1, the other target's 0."""
    g = cephalo.Gateway(procs, tmpdir_str, pyup.url)
    dead = f"127.0.0.1:{cephalo.free_port()}"
    g.admin.apply("POST", "/api/v1/services",
                  {"name": "m-pair", "targets": [{"url": pyup.url}, {"url": f"http://{dead}"}],
                   "policies": {"outlier": {"consecutive_failures": 1, "base_ejection_ms": 60000},
                                "lb": {"policy": "round_robin"}}})
    g.route("m-pair", "/mpair", service="m-pair")
    for _ in range(6):
        g.get("/mpair/x")
    m = scrape_dp(g.dp)
    assert value(m, "cephalo_dp_upstream_target_ejected", service="m-pair", target=dead) == 1, m.get(
        "cephalo_dp_upstream_target_ejected")
    assert value(m, "cephalo_dp_upstream_target_ejected", service="m-pair", target=pyup.url.split("//", 1)[1]) == 0


# ---------------------------------------------------------------------------------------------------------------
# the control plane


def test_cp_metrics_parse_and_move(cp, make_dp, nginx):
    assert cp.admin.get("/metrics", token=None).status == 401
    assert cp.admin.get("/metrics", token="not-the-token").status == 401
    dp = make_dp()
    before = scrape_cp(cp)
    out = cp.admin.apply("POST", "/api/v1/services", {"name": "m-cp", "targets": [{"url": nginx.url}]})
    after = scrape_cp(cp)
    assert value(after, "cephalo_cp_snapshot_version") == out["version"]
    assert value(after, "cephalo_cp_snapshot_version") > (value(before, "cephalo_cp_snapshot_version") or 0)
    assert delta(after, before, "cephalo_cp_admin_requests_total") >= 1
    scrape_dp(dp)  # and the data plane's at the same time
