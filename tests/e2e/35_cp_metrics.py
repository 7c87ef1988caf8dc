"""35: the control plane's own metrics, its health summary, and the Grafana dashboard over both planes.

- GET /metrics on the admin listener parses with a strict exposition parser (HELP and TYPE once per family, before its
  samples; name and label grammar; label escaping; histogram buckets cumulative with +Inf equal to _count; no
  duplicate series) and its counters move: admin requests by method and status class, one snapshot build observed per
  committed version with the stored body's size, connected data planes and each one's lag in versions (a fake data
  plane that does not ack stays behind; a real one catches up), SQLite busy retries while another connection holds
  the database's write lock.
- GET /api/v1/health summarises data planes and integrations, and says "degraded" when a data plane refused the
  latest snapshot; /api/v1/health/services still answers.
- deploy/grafana/cephalo-dashboard.json parses, looks importable, and every metric its queries name exists - in a
  real scrape of both planes, or in the sources (families only present once something happened, e.g. a PDF render).
"""
import json
import math
import os
import re
import sqlite3
import threading

import cephalo

DASHBOARD = os.path.join(cephalo.SOURCE_DIR, "deploy", "grafana", "cephalo-dashboard.json")
NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


# ---------------------------------------------------------------------------------------------------------------
# a strict exposition-format parser (text format 0.0.4)


def _parse_labels(s, where):
    """'a="x",b="y\\"z"' -> {'a': 'x', 'b': 'y"z'}; anything off the grammar fails the test."""
    labels, i = {}, 0
    while i < len(s):
        eq = s.find("=", i)
        assert eq > i, f"{where}: label name expected at {s[i:]!r}"
        name = s[i:eq]
        assert LABEL_RE.match(name), f"{where}: bad label name {name!r}"
        assert s[eq + 1:eq + 2] == '"', f"{where}: label value must be quoted"
        j, val = eq + 2, []
        while True:
            assert j < len(s), f"{where}: unterminated label value"
            c = s[j]
            if c == "\\":
                nxt = s[j + 1:j + 2]
                assert nxt in ('\\', '"', 'n'), f"{where}: bad escape \\{nxt}"
                val.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                j += 2
            elif c == '"':
                break
            else:
                assert c != "\n", f"{where}: raw line feed in a label value"
                val.append(c)
                j += 1
        assert name not in labels, f"{where}: label {name} twice"
        labels[name] = "".join(val)
        i = j + 1
        if i < len(s):
            assert s[i] == ",", f"{where}: ',' expected between labels"
            i += 1
    return labels


def _split_sample(line):
    """'name{labels} value' -> (name, labels text or None, value text); braces inside quoted values are fine."""
    if "{" not in line.split(" ", 1)[0]:
        name, _, value = line.partition(" ")
        return name, None, value
    name, _, rest = line.partition("{")
    i, quoted = 0, False
    while i < len(rest):
        c = rest[i]
        if c == "\\" and quoted:
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "}" and not quoted:
            break
        i += 1
    assert i < len(rest), f"unterminated labels: {line!r}"
    assert rest[i + 1:i + 2] == " ", f"a space must follow the labels: {line!r}"
    return name, rest[:i], rest[i + 2:]


def _value(text, where):
    assert text and " " not in text, f"{where}: bad value {text!r}"
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    assert re.match(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\Z", text), f"{where}: bad value {text!r}"
    return float(text)


def strict_parse(text):
    """Returns {family: {"type": t, "samples": {(name, frozenset(labels)): value}}} or fails the test."""
    assert text.endswith("\n"), "the body must end with a line feed"
    families, current, seen = {}, None, set()
    for no, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {no}"
        assert line == line.strip() and line, f"{where}: empty or padded line {line!r}"
        if line.startswith("# HELP "):
            name = line[7:].split(" ", 1)[0]
            assert NAME_RE.match(name), f"{where}: bad family name {name!r}"
            assert name not in families, f"{where}: family {name} announced twice"
            families[name] = {"type": None, "samples": {}}
            current = name
        elif line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert name == current and families[name]["type"] is None, f"{where}: TYPE {name} without its HELP first"
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), f"{where}: type {typ!r}"
            assert not families[name]["samples"], f"{where}: TYPE after samples"
            families[name]["type"] = typ
        else:
            assert not line.startswith("#"), f"{where}: unknown comment {line!r}"
            name, ltext, vtext = _split_sample(line)
            assert NAME_RE.match(name), f"{where}: bad sample name {name!r}"
            fam = families.get(current)
            assert fam is not None and fam["type"] is not None, f"{where}: sample before HELP/TYPE"
            allowed = {current}
            if fam["type"] == "histogram":
                allowed = {current + "_bucket", current + "_sum", current + "_count"}
            assert name in allowed, f"{where}: sample {name} outside its family {current}"
            labels = _parse_labels(ltext, where) if ltext else {}
            key = (name, frozenset(labels.items()))
            assert key not in seen, f"{where}: duplicate series {key}"
            seen.add(key)
            fam["samples"][key] = _value(vtext, where)
    for name, fam in families.items():
        if fam["type"] == "histogram":
            _check_histogram(name, fam["samples"])
    return families


def _check_histogram(name, samples):
    groups = {}
    for (n, ls), v in samples.items():
        rest = frozenset((k, x) for k, x in ls if k != "le")
        g = groups.setdefault(rest, {"buckets": [], "count": None, "sum": None})
        if n == name + "_bucket":
            le = dict(ls)["le"]
            g["buckets"].append((math.inf if le == "+Inf" else float(le), v))
        elif n == name + "_count":
            g["count"] = v
        else:
            g["sum"] = v
    for rest, g in groups.items():
        b = sorted(g["buckets"])
        assert b and b[-1][0] == math.inf, f"{name}{dict(rest)}: no +Inf bucket"
        assert all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), f"{name}{dict(rest)}: buckets not cumulative"
        assert g["count"] == b[-1][1], f"{name}{dict(rest)}: +Inf {b[-1][1]} != _count {g['count']}"
        assert g["sum"] is not None and g["sum"] >= 0, f"{name}{dict(rest)}: no _sum"


def scrape_cp(cp):
    r = cp.admin.get("/metrics")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    return strict_parse(r.body.decode())


def scrape_dp(dp):
    r = cephalo.http_get(dp.status_port, "/metrics")
    assert r.status == 200, r
    return r.body.decode()


def value(fams, family, name=None, **labels):
    """The one sample of family (name: its _bucket/_sum/_count) whose labels are exactly `labels`; None if absent."""
    fam = fams.get(family)
    if fam is None:
        return None
    return fam["samples"].get((name or family, frozenset(labels.items())))


def admin(fams, method, status_class):
    return value(fams, "cephalo_cp_admin_requests_total", method=method, status_class=status_class)


def builds(fams):
    return value(fams, "cephalo_cp_snapshot_build_seconds", "cephalo_cp_snapshot_build_seconds_count")


def canonical_len(body):
    return len(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# tests


def test_admin_requests_and_snapshot_builds(cp, make_dp, nginx):
    a = cp.admin
    dp = make_dp("dp1")
    before = scrape_cp(cp)
    for _ in range(3):
        assert a.get("/api/v1/services").status == 200
    assert a.get("/api/v1/no-such-thing").status == 404
    assert a.get("/api/v1/services", token=None).status == 401
    assert a.request("PATCH", "/api/v1/services").status == 405
    a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    a.apply("POST", "/api/v1/routes", {"name": "demo", "service": "demo", "paths": ["/demo"], "default_access": "public"})
    after = scrape_cp(cp)
    # the first scrape is counted once it is answered, so it shows in the second one
    assert admin(after, "GET", "2xx") - admin(before, "GET", "2xx") == 3 + 1
    assert admin(after, "GET", "4xx") - admin(before, "GET", "4xx") == 2
    assert admin(after, "other", "4xx") - admin(before, "other", "4xx") == 1
    assert admin(after, "POST", "2xx") - admin(before, "POST", "2xx") == 2
    assert admin(after, "DELETE", "5xx") == 0
    # one build per committed version, and the size is the stored canonical body's
    assert builds(after) - builds(before) == 2
    snap = a.ok("GET", "/api/v1/snapshot?body=1", expect=(200,))
    assert value(after, "cephalo_cp_snapshot_version") == snap["version"]
    assert value(after, "cephalo_cp_snapshot_bytes") == canonical_len(snap["body"])
    assert 0 < value(after, "cephalo_cp_snapshot_build_last_seconds") < 5
    assert value(after, "cephalo_cp_dataplanes_connected") == 1
    assert value(after, "cephalo_cp_dataplane_lag_versions", dp_id=dp.dp_id) == 0
    assert value(after, "cephalo_cp_sqlite_busy_retries_total") == 0


def test_dataplane_lag_and_health_summary(cp, make_dp, nginx):
    a = cp.admin
    dp = make_dp("dp1")
    assert a.get("/api/v1/health", token=None).status == 401
    v1 = a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})["version"]
    fake = cephalo.FakeDP(cp.socket, 'fake "lagging"\\dp')  # a hostile-looking id: escaped in the label
    try:
        snap = fake.recv()
        assert snap["type"] == "snapshot" and snap["version"] == v1, snap
        fams = scrape_cp(cp)
        assert value(fams, "cephalo_cp_dataplanes_connected") == 2
        assert value(fams, "cephalo_cp_dataplane_lag_versions", dp_id='fake "lagging"\\dp') == v1  # runs nothing
        assert value(fams, "cephalo_cp_dataplane_lag_versions", dp_id=dp.dp_id) == 0
        h = a.ok("GET", "/api/v1/health", expect=(200,))
        assert h["status"] == "ok" and h["problems"] == [], h
        assert h["version"] == v1 and h["dataplanes"]["connected"] == 2, h
        assert h["dataplanes"]["latest_version"] == v1 and h["dataplanes"]["max_lag"] == v1, h
        items = {d["id"]: d for d in h["dataplanes"]["items"]}
        assert items[dp.dp_id]["lag"] == 0 and items[dp.dp_id]["status"] == "synced", items
        assert items[dp.dp_id]["version"] == v1 and items[dp.dp_id]["last_seen"], items
        assert items['fake "lagging"\\dp']["lag"] == v1 and items['fake "lagging"\\dp']["status"] == "applying", items
        assert h["integrations"]["vault"]["state"] == "disabled" and h["integrations"]["consul"]["state"] == "disabled"
        assert set(h["integrations"]["vault"]) == {"state", "reason", "since", "last_success"}, h

        # the fake refuses v1: the summary is degraded and names it
        fake.send({"type": "nack", "version": v1, "hash": snap["hash"],
                   "applied": {"epoch": "", "version": 0, "hash": "", "source": "none"},
                   "error": {"code": "invalid", "path": "/services", "message": "refused by the test"}})
        fake.sync()
        h = a.ok("GET", "/api/v1/health", expect=(200,))
        assert h["status"] == "degraded", h
        assert any('fake "lagging"\\dp' in p for p in h["problems"]), h

        # a newer version: the real data plane catches up, the fake one acks it and its lag goes to 0
        v2 = a.ok("POST", "/api/v1/services", {"name": "other", "targets": []}, expect=(201,))["version"]
        cephalo.wait_until(lambda: value(scrape_cp(cp), "cephalo_cp_dataplane_lag_versions", dp_id=dp.dp_id) == 0,
                           10, "the real data plane caught up")
        fake.sync()  # acks v2 on the way
        fake.sync()  # this ping follows the ack: its pong means the ack was handled
        fams = scrape_cp(cp)
        assert value(fams, "cephalo_cp_dataplane_lag_versions", dp_id='fake "lagging"\\dp') == 0
        h = a.ok("GET", "/api/v1/health", expect=(200,))
        assert h["status"] == "ok" and h["version"] == v2 and h["dataplanes"]["max_lag"] == 0, h
    finally:
        fake.close()
    # gone: no lag series, not counted as connected, still listed in the summary as disconnected
    cephalo.wait_until(lambda: value(scrape_cp(cp), "cephalo_cp_dataplanes_connected") == 1, 10, "the fake is gone")
    assert value(scrape_cp(cp), "cephalo_cp_dataplane_lag_versions", dp_id='fake "lagging"\\dp') is None
    h = a.ok("GET", "/api/v1/health", expect=(200,))
    assert {d["id"]: d["connected"] for d in h["dataplanes"]["items"]}['fake "lagging"\\dp'] is False
    assert a.get("/api/v1/health/services").status == 200  # the per-target view is still there


def test_sqlite_busy_retries(cp):
    a = cp.admin
    before = value(scrape_cp(cp), "cephalo_cp_sqlite_busy_retries_total")
    other = sqlite3.connect(os.path.join(cp.data_dir, "cephalo.db"), timeout=10, isolation_level=None,
                            check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # an outside writer (a backup tool, a stray script) holds the write lock
        timer = threading.Timer(0.4, lambda: other.execute("COMMIT"))
        timer.start()
        r = a.post("/api/v1/services", {"name": "waited", "targets": []})
        timer.join()
    finally:
        other.close()
    assert r.status == 201, r  # it waited and went through
    fams = scrape_cp(cp)
    assert value(fams, "cephalo_cp_sqlite_busy_retries_total") - before >= 3, fams["cephalo_cp_sqlite_busy_retries_total"]
    assert value(fams, "cephalo_cp_sqlite_busy_failures_total") == 0


# ---------------------------------------------------------------------------------------------------------------
# the dashboard


def _source_names():
    """Every cephalo_* token in the daemons' C sources (families that only appear once something happened)."""
    names = set()
    for plane in ("dataplane", "controlplane"):
        for root, _, files in os.walk(os.path.join(cephalo.SOURCE_DIR, plane)):
            for f in files:
                if f.endswith((".c", ".h")):
                    with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
                        names.update(re.findall(r"cephalo_[a-z0-9_]+", fh.read()))
    return names


def _exprs(dash):
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p.get("title"), t.get("expr")))
            walk(p.get("panels", []))
    walk(dash["panels"])
    return out


def test_dashboard_names_existing_metrics(cp, make_dp, nginx):
    with open(DASHBOARD, encoding="utf-8") as f:
        dash = json.load(f)
    # importable: a dashboard object with the Prometheus datasource as an import input
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int), dash.keys()
    assert any(i.get("pluginId") == "prometheus" for i in dash.get("__inputs", [])), dash.get("__inputs")
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = _exprs(dash)
    assert len(exprs) >= 20 and all(e for _, e in exprs), exprs
    assert any("cephalo_cp_" in e for _, e in exprs) and any("cephalo_dp_" in e for _, e in exprs)

    # real scrapes of both planes, after some traffic
    dp = make_dp("dp1")
    a = cp.admin
    a.apply("POST", "/api/v1/services", {"name": "demo", "targets": [{"url": nginx.url}]})
    a.apply("POST", "/api/v1/routes", {"name": "demo", "service": "demo", "paths": ["/demo"], "default_access": "public"})
    assert dp.get("/demo/x").status == 200
    assert dp.get("/nowhere").status == 404
    scraped = set()
    for fam, info in scrape_cp(cp).items():
        scraped.add(fam)
        scraped.update(n for n, _ in info["samples"])
    for line in scrape_dp(dp).splitlines():
        m = re.match(r"(?:# (?:HELP|TYPE) )?(cephalo_[a-z0-9_]+)", line)
        if m:
            scraped.add(m.group(1))
    source = _source_names()
    missing = []
    for title, expr in exprs:
        for name in set(re.findall(r"cephalo_[a-z0-9_]+", expr)):
            base = re.sub(r"_(bucket|sum|count)\Z", "", name)
            if name not in scraped and name not in source and base not in source:
                missing.append(f"{title}: {name}")
    assert not missing, "the dashboard queries metrics that do not exist: " + ", ".join(sorted(missing))
    # the scrape really covers both planes' core families
    assert "cephalo_cp_dataplane_lag_versions" in scraped and "cephalo_dp_requests_total" in scraped
