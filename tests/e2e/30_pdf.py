"""30: routes of kind "pdf" (docs/dataplane.md "PDF routes", proto/PROTOCOL.md section 5 "pdf route"): HTML, Markdown
and JSON bodies rendered by wkhtmltopdf and read back with pdftotext / pdfinfo (poppler-utils); the request errors
(405, 413, 415, 400) with JSON bodies; the sandbox (no request reaches a local listener from <img>, <iframe> or
<link>, file:///etc/passwd is not rendered); the pool's bounds (--pdf-workers 1 --pdf-queue 0: a second render is
503 with Retry-After while the first runs; a queued render starts when the slot frees, never two at once); the render
timeout (504, the child killed and reaped: no wkhtmltopdf left under the data plane, no zombie); a client that hangs
up mid-render gets its child killed; source mode (the service's HTML page rendered, identity headers sent to it,
non-HTML / non-2xx / oversized pages 502). The PDF metrics are checked when the status listener serves them.
"""
import json
import signal
import os
import re
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import cephalo

V1 = "/api/v1"
BIG_PARAGRAPHS = 20000  # about 1.8 MB of HTML: a render of several seconds


# ---------------------------------------------------------------------------------------------------------------
# helpers


class Gw:
    """A control plane, one data plane with extra flags, a service "svc" (nothing listens: pdf routes never proxy)."""

    def __init__(self, procs, tmpdir, dp_args=()):
        self.cp = cephalo.ControlPlane(procs, tmpdir).start()
        self.admin = self.cp.admin
        self.dp = cephalo.DataPlane(procs, tmpdir, self.cp.socket, extra_args=list(dp_args)).start()
        self.dp.wait_connected(self.admin)
        nobody = f"http://127.0.0.1:{cephalo.free_port()}"
        self.admin.apply("POST", f"{V1}/services", {"name": "svc", "targets": [{"url": nobody}]})

    def pdf_route(self, name, path, **pdf):
        body = {"name": name, "service": "svc", "paths": [path], "default_access": "public", "kind": "pdf", "pdf": pdf}
        return self.admin.apply("POST", f"{V1}/routes", body)["route"]

    def post(self, path, body, ctype, timeout=60.0):
        data = body.encode() if isinstance(body, str) else body
        return cephalo.http_request(self.dp.port, "POST", path, body=data, headers={"Content-Type": ctype},
                                    timeout=timeout)


@pytest.fixture
def gw(procs, tmpdir_str):
    def make(dp_args=()):
        return Gw(procs, tmpdir_str, dp_args)
    return make


def pdf_text(tmpdir, resp):
    assert resp.status == 200, resp
    assert resp.headers.get("content-type") == "application/pdf", resp.headers
    assert resp.body.startswith(b"%PDF-"), resp.body[:32]
    path = os.path.join(tmpdir, f"out-{time.monotonic_ns()}.pdf")
    with open(path, "wb") as f:
        f.write(resp.body)
    text = subprocess.run(["pdftotext", path, "-"], capture_output=True, check=True, timeout=30).stdout.decode()
    info = subprocess.run(["pdfinfo", path], capture_output=True, check=True, timeout=30).stdout.decode()
    return text, info


def page_size(info):
    m = re.search(r"Page size:\s+([\d.]+) x ([\d.]+)", info)
    assert m, info
    return float(m.group(1)), float(m.group(2))


def children(pid):
    """(pid, comm, state) of every process whose parent is pid (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append((int(entry), comm, fields[0]))
    return out


def renderers(dp):
    return [c for c in children(dp.proc.pid) if c[1].startswith("wkhtmlto")]


def big_html(n=BIG_PARAGRAPHS):
    return "<html><body>" + "".join(f"<p>Paragraph {i} lorem ipsum dolor sit amet consectetur</p>" for i in range(n)) \
        + "</body></html>"


def error_json(resp, status, code=None):
    assert resp.status == status, resp
    assert resp.headers.get("content-type") == "application/json", resp.headers
    body = resp.json()
    assert body.get("request_id"), body
    if code is not None:
        assert body["error"] == code, body
    return body


class HitRecorder:
    """A local HTTP listener that records every request it gets (the SSRF target)."""

    def __init__(self):
        hits = self.hits = []

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.end_headers()
                self.wfile.write(b"p { color: red }")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------------------------
# tests


def test_html_markdown_and_json_render(gw, tmpdir_str):
    g = gw()
    g.pdf_route("doc", "/pdf", filename="report-1.pdf")
    html = "<html><body><h1>Quarterly Report</h1><p>Revenue grew</p></body></html>"
    r = g.post("/pdf", html, "text/html; charset=utf-8")
    text, info = pdf_text(tmpdir_str, r)
    assert "Quarterly Report" in text and "Revenue grew" in text, text
    assert r.headers.get("content-disposition") == 'attachment; filename="report-1.pdf"', r.headers
    assert int(r.headers["content-length"]) == len(r.body)
    w, h = page_size(info)
    assert abs(w - 595) < 2 and abs(h - 842) < 2, info  # A4 portrait by default

    md = "# Release notes\n\n* first *item*\n* second item\n\n| a | b |\n|---|---|\n| x1 | y1 |\n"
    r = g.post("/pdf", md, "text/markdown")
    text, _ = pdf_text(tmpdir_str, r)
    assert "Release notes" in text and "first item" in text and "x1" in text, text

    css = "body { font-size: 20pt } </style><p>INJECTED</p>"
    body = {"markdown": "Hello **JSON** world", "options": {"page_size": "A5", "orientation": "landscape",
                                                           "margins_mm": {"top": 0, "left": 30}, "title": "My <Doc>",
                                                           "stylesheet": css}}
    r = g.post("/pdf", json.dumps(body), "application/json")
    text, info = pdf_text(tmpdir_str, r)
    assert "Hello JSON world" in text and "INJECTED" not in text, text
    w, h = page_size(info)
    assert abs(w - 595) < 2 and abs(h - 420) < 2, info  # A5 landscape

    r = g.post("/pdf", json.dumps({"html": "<p>json html</p>", "options": {"page_size": "Letter"}}), "application/json")
    text, info = pdf_text(tmpdir_str, r)
    w, h = page_size(info)
    assert "json html" in text and abs(w - 612) < 2 and abs(h - 792) < 2, info  # Letter


def test_request_errors(gw):
    g = gw()
    g.pdf_route("doc", "/pdf", max_input_bytes=1000)
    r = cephalo.http_request(g.dp.port, "GET", "/pdf")
    error_json(r, 405)
    assert r.headers.get("allow") == "POST", r.headers
    error_json(g.post("/pdf", "plain text", "text/plain"), 415, "unsupported_media_type")
    error_json(cephalo.http_request(g.dp.port, "POST", "/pdf", body=b"<p>x</p>"), 415)
    error_json(g.post("/pdf", "<p>" + "x" * 2000 + "</p>", "text/html"), 413)
    for bad in ("{", "[]", '{"html": 1}', '{"html": "a", "markdown": "b"}', '{"html": "a", "extra": 1}',
                '{"html": "a", "options": {"page_size": "B5"}}',
                '{"html": "a", "options": {"margins_mm": {"top": 101}}}',
                '{"html": "a", "options": {"title": ""}}', '{"html": "a\\u0000b"}',
                '{"html": "a", "options": {"orientation": "sideways"}}'):
        error_json(g.post("/pdf", bad, "application/json"), 400, "invalid_request")


def test_schema_refuses_bad_pdf_config(gw):
    g = gw()
    base = {"name": "bad", "service": "svc", "paths": ["/bad"], "kind": "pdf"}
    for pdf in ({"mode": "print"}, {"filename": "x.txt"}, {"filename": "a\"b.pdf"}, {"timeout_ms": 50},
                {"max_output_bytes": 10}, {"defaults": {"page_size": "A6"}}, {"defaults": {"margins_mm": {"top": -1}}},
                {"unknown": 1}):
        r = g.admin.post(f"{V1}/routes", dict(base, pdf=pdf))
        assert r.status == 400, (pdf, r)
    r = g.admin.post(f"{V1}/routes", base)  # kind pdf without its object
    assert r.status == 400, r


def test_sandbox_no_ssrf_no_local_files(gw, tmpdir_str):
    g = gw()
    g.pdf_route("doc", "/pdf")
    rec = HitRecorder()
    try:
        u = f"http://127.0.0.1:{rec.port}"
        html = (f'<html><head><link rel="stylesheet" href="{u}/link.css"></head><body><p>sandboxed page</p>'
                f'<img src="{u}/img.png"><iframe src="{u}/iframe"></iframe><object data="{u}/object"></object>'
                '<iframe src="file:///etc/passwd"></iframe><img src="file:///etc/passwd">'
                '<object data="file:///etc/passwd"></object></body></html>')
        text, _ = pdf_text(tmpdir_str, g.post("/pdf", html, "text/html"))
        assert "sandboxed page" in text, text
        assert "root:" not in text, text
        md = f"![x]({u}/md.png)\n\n[link]({u}/a)\n\n<iframe src=\"file:///etc/passwd\"></iframe>\n"
        text, _ = pdf_text(tmpdir_str, g.post("/pdf", md, "text/markdown"))
        assert "root:" not in text, text
        sheet = f"@import url({u}/import.css); p {{ background: url({u}/bg.png) }}"
        css = {"html": "<p>styled</p>", "options": {"stylesheet": sheet}}
        pdf_text(tmpdir_str, g.post("/pdf", json.dumps(css), "application/json"))
        time.sleep(0.5)
        assert rec.hits == [], rec.hits
    finally:
        rec.close()


def wait_no_renderers(dp, timeout=5.0):
    cephalo.wait_until(lambda: renderers(dp) == [], timeout, "no wkhtmltopdf child left")
    zombies = [c for c in children(dp.proc.pid) if c[2] == "Z"]
    assert zombies == [], zombies


def test_timeout_kills_and_reaps(gw):
    g = gw()
    g.pdf_route("slow", "/slow", timeout_ms=100)
    t0 = time.monotonic()
    r = g.post("/slow", "<p>never in time</p>", "text/html")
    error_json(r, 504, "pdf_timeout")
    assert time.monotonic() - t0 < 5, "the timeout did not cut the render short"
    wait_no_renderers(g.dp)
    leftovers = [d for d in os.listdir("/tmp") if d.startswith("cephalo-pdf-")]
    m = g.dp.metrics()
    if cephalo.metric(m, "cephalo_dp_pdf_failures_total", reason="timeout") is not None:
        assert cephalo.metric(m, "cephalo_dp_pdf_failures_total", reason="timeout") >= 1
    del leftovers  # other data planes may render concurrently on this machine: not asserted


def test_queue_full_is_503_and_no_pile_up(gw):
    g = gw(dp_args=("--pdf-workers", "1", "--pdf-queue", "0"))
    g.pdf_route("big", "/big", max_input_bytes=4 << 20, timeout_ms=4000)
    g.pdf_route("doc", "/pdf")
    first = {}
    t = threading.Thread(target=lambda: first.setdefault("r", g.post("/big", big_html(), "text/html")))
    t.start()
    try:
        cephalo.wait_until(lambda: renderers(g.dp), 20, "the first render running")
        r = g.post("/pdf", "<p>second</p>", "text/html")
        error_json(r, 503, "pdf_busy")
        assert r.headers.get("retry-after") == "1", r.headers
        assert len(renderers(g.dp)) == 1
    finally:
        t.join(60)
    assert first["r"].status in (200, 504), first["r"]
    wait_no_renderers(g.dp)
    r = g.post("/pdf", "<p>after</p>", "text/html")
    assert r.status == 200, r
    m = g.dp.metrics()
    if cephalo.metric(m, "cephalo_dp_pdf_queue_depth") is not None:
        assert cephalo.metric(m, "cephalo_dp_pdf_failures_total", reason="busy") >= 1
        assert cephalo.metric(m, "cephalo_dp_pdf_renders_total", route="doc") >= 1
        assert cephalo.metric(m, "cephalo_dp_pdf_queue_depth") == 0


def test_queued_render_runs_when_slot_frees(gw, tmpdir_str):
    g = gw(dp_args=("--pdf-workers", "1", "--pdf-queue", "4"))
    g.pdf_route("doc", "/pdf")
    results = [None] * 4

    def one(i):
        results[i] = g.post("/pdf", f"<p>document number {i}</p>", "text/html")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    peak = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, len(renderers(g.dp)))
        time.sleep(0.02)
    for i, r in enumerate(results):
        text, _ = pdf_text(tmpdir_str, r)
        assert f"document number {i}" in text
    assert peak <= 1, f"{peak} renders at once with --pdf-workers 1"


def test_client_disconnect_kills_child(gw):
    g = gw()
    g.pdf_route("big", "/big", max_input_bytes=4 << 20, timeout_ms=60000)
    body = big_html().encode()
    s = socket.create_connection(("127.0.0.1", g.dp.port), timeout=10)
    head = b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body)
    s.sendall(head + body)
    cephalo.wait_until(lambda: renderers(g.dp), 20, "the render running")
    s.close()
    wait_no_renderers(g.dp, timeout=5.0)


class PageUpstream:
    """The service of a source-mode route: /page (HTML, echoing the request's headers into it), /json, /missing (404),
    /big (an HTML page of 5000 bytes); records the headers of every request."""

    def __init__(self):
        seen = self.seen = []

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                if self.path == "/page":
                    rid = self.headers.get("x-cephalo-request-id", "none")
                    body = f"<html><body><h1>Invoice 42</h1><p>rid {rid}</p></body></html>"
                    ctype, status = "text/html; charset=utf-8", 200
                elif self.path == "/json":
                    body, ctype, status = '{"a": 1}', "application/json", 200
                elif self.path == "/big":
                    body, ctype, status = "<p>" + "x" * 5000 + "</p>", "text/html", 200
                else:
                    body, ctype, status = "<p>not here</p>", "text/html", 404
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_source_mode(gw, tmpdir_str):
    g = gw()
    up = PageUpstream()
    try:
        g.admin.apply("POST", f"{V1}/services", {"name": "pages", "targets": [{"url": f"http://127.0.0.1:{up.port}"}]})
        pdf = {"mode": "source", "max_input_bytes": 4096, "filename": "invoice.pdf",
               "defaults": {"orientation": "landscape"}}
        g.admin.apply("POST", f"{V1}/routes", {"name": "src", "service": "pages", "paths": ["/doc"],
                                               "strip_prefix": True, "default_access": "public", "kind": "pdf",
                                               "pdf": pdf})
        r = cephalo.http_request(g.dp.port, "GET", "/doc/page",
                                 headers={"Accept": "application/pdf", "If-None-Match": "x"})
        text, info = pdf_text(tmpdir_str, r)
        w, h = page_size(info)
        assert "Invoice 42" in text and w > h, (text, info)
        assert r.headers.get("content-disposition") == 'attachment; filename="invoice.pdf"'
        path, headers = up.seen[-1]
        assert path == "/page" and headers.get("accept") == "text/html" and "if-none-match" not in headers, up.seen[-1]
        assert headers.get("x-cephalo-request-id") and headers["x-cephalo-request-id"] in text.replace("\n", ""), text
        error_json(cephalo.http_request(g.dp.port, "GET", "/doc/json"), 502, "pdf_source_not_html")
        error_json(cephalo.http_request(g.dp.port, "GET", "/doc/missing"), 502, "pdf_source_status")
        error_json(cephalo.http_request(g.dp.port, "GET", "/doc/big"), 502, "pdf_source_too_large")
        r = cephalo.http_request(g.dp.port, "POST", "/doc/page", body=b"<p>x</p>",
                                 headers={"Content-Type": "text/html"})
        error_json(r, 405)
        assert r.headers.get("allow") == "GET", r.headers
    finally:
        up.close()


def test_drain_waits_for_a_running_render(gw):
    """SIGTERM while a render runs: the drain lets it answer, then the data plane exits cleanly, leaving no child."""
    g = gw()
    g.pdf_route("big", "/big", max_input_bytes=4 << 20, timeout_ms=5000)
    first = {}
    t = threading.Thread(target=lambda: first.setdefault("r", g.post("/big", big_html(), "text/html")))
    t.start()
    cephalo.wait_until(lambda: renderers(g.dp), 20, "the render running")
    pid = g.dp.proc.pid
    g.dp.proc.signal(signal.SIGTERM)
    t.join(60)
    assert first["r"].status in (200, 504), first["r"]
    assert g.dp.proc.wait(30) == 0
    assert [c for c in children(pid)] == []
