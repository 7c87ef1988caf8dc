"""20: edge policies (proto/PROTOCOL.md section 5, docs/dataplane.md "Edge policies"): a route's IP allow and deny
lists (403 ip_denied; the address behind trusted proxies), the HTTPS redirect (308 to the data plane's TLS listener),
request limits (413 body, 414 URL, 431 header count and bytes), CORS (a preflight answered by the gateway itself,
Access-Control-* on the requests of an allowed origin, nothing for the others) and security response headers (on
proxied answers and the gateway's own errors, HSTS over TLS only, the upstream's own values replaced).

The test client is 127.0.0.1, and 127.0.0.2 when a second address is needed (cephalo.http_request(source=...)).
The gateway-wide lists and limits come from the control plane's flags (--ip-allow, --ip-deny, --max-url-bytes,
--max-body-bytes, --max-headers, --max-header-bytes): they apply to every route, a route's own limits replace them
member by member, and a value the snapshot schema would refuse stops the control plane at start with a message.
"""
import http.client
import os
import ssl
import subprocess

import pytest

import cephalo

V1 = "/api/v1"
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods",
                "access-control-allow-headers", "access-control-expose-headers", "access-control-max-age")


@pytest.fixture
def gateway(procs, tmpdir_str, pyup):
    """Factory: gateway(cp_args=(), tls=False) -> cephalo.Gateway on the echo upstream (tls: a TLS listener too)."""
    return cephalo.gateway_factory(procs, tmpdir_str, pyup.url)


def refused(r, status, code=None):
    assert r.status == status, f"want {status}, got {r}"
    assert r.headers.get("content-type", "").startswith("application/json"), r
    if code is not None:
        assert r.json()["error"] == code, r
    return r


def https_get(port, target, headers=None):
    """One HTTP/1.1 GET over TLS (certificate not verified: the test's own self-signed one)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ssl._create_unverified_context())
    try:
        conn.request("GET", target, headers=headers or {})
        r = conn.getresponse()
        return cephalo.Resp(r.status, cephalo.header_dict(r.getheaders()), r.read())
    finally:
        conn.close()


def split(v):
    return sorted(x.strip().lower() for x in v.split(",")) if v else []


# ---------------------------------------------------------------------------------------------------------------
# IP lists


def test_ip_deny_refuses_the_listed_address(gateway, pyup):
    gw = gateway()
    gw.route("ip", "/ip", {"ip_deny": ["127.0.0.1/32"]})
    gw.route("other", "/other")
    refused(gw.get("/ip/x"), 403, "ip_denied")
    assert pyup.count == 0
    assert gw.get("/ip/x", source="127.0.0.2").status == 200
    assert gw.get("/other/x").status == 200  # the list is the route's


def test_ip_allow_refuses_every_other_address(gateway, pyup):
    gw = gateway()
    gw.route("ip", "/ip", {"ip_allow": ["10.0.0.0/8"]})
    refused(gw.get("/ip/x"), 403, "ip_denied")
    refused(gw.get("/ip/x", source="127.0.0.2"), 403, "ip_denied")
    assert pyup.count == 0


def test_ip_allow_admits_its_range(gateway):
    gw = gateway()
    gw.route("ip", "/ip", {"ip_allow": ["127.0.0.0/8", "2001:db8::/32"]})
    assert gw.get("/ip/x").status == 200
    assert gw.get("/ip/x", source="127.0.0.2").status == 200


def test_ip_deny_wins_over_allow(gateway):
    gw = gateway()
    gw.route("ip", "/ip", {"ip_allow": ["127.0.0.0/8"], "ip_deny": ["127.0.0.2"]})  # a bare address is a /32
    assert gw.get("/ip/x").status == 200
    refused(gw.get("/ip/x", source="127.0.0.2"), 403, "ip_denied")


def test_ip_lists_see_the_address_behind_a_trusted_proxy(gateway):
    gw = gateway(cp_args=["--trusted-proxy-hops", "1"])
    gw.route("v4", "/v4", {"ip_deny": ["203.0.113.0/24"]})
    gw.route("v6", "/v6", {"ip_allow": ["2001:db8::/32"]})
    refused(gw.get("/v4/x", headers={"X-Forwarded-For": "203.0.113.9"}), 403, "ip_denied")
    refused(gw.get("/v4/x", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}), 403, "ip_denied")
    assert gw.get("/v4/x", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}).status == 200
    assert gw.get("/v6/x", headers={"X-Forwarded-For": "2001:db8::5"}).status == 200
    refused(gw.get("/v6/x", headers={"X-Forwarded-For": "2001:db9::5"}), 403, "ip_denied")


def test_ip_lists_ignore_x_forwarded_for_without_trusted_proxies(gateway):
    gw = gateway()
    gw.route("ip", "/ip", {"ip_deny": ["127.0.0.1"]})
    refused(gw.get("/ip/x", headers={"X-Forwarded-For": "198.51.100.1"}), 403, "ip_denied")


@pytest.mark.parametrize("policies,path", [
    ({"ip_allow": ["10.0.0.1/8"]}, "/policies/ip_allow/0"),  # host bits set: not canonical
    ({"ip_deny": ["10.0.0.0/33"]}, "/policies/ip_deny/0"),
    ({"ip_deny": ["2001:db8::/129"]}, "/policies/ip_deny/0"),
    ({"ip_allow": ["not-an-address"]}, "/policies/ip_allow/0"),
    ({"cors": {"origins": ["*"], "credentials": True}}, None),
    ({"limits": {"max_url_bytes": 100}}, "/policies/limits/max_url_bytes"),
    ({"security_headers": {"frame_options": "ALLOW-FROM x"}}, "/policies/security_headers/frame_options"),
])
def test_bad_policies_are_refused_by_the_admin_api(gateway, policies, path):
    gw = gateway()
    r = gw.admin.post(f"{V1}/routes", {"name": "bad", "service": "echo", "paths": ["/bad"], "policies": policies})
    assert r.status == 400, r
    body = r.json()
    assert body["error"] == "invalid", body
    if path is not None:
        assert body.get("path") == path, body
    else:
        assert body.get("path", "").startswith("/policies/cors"), body


# ---------------------------------------------------------------------------------------------------------------
# HTTPS redirect


def test_https_redirect_to_the_tls_listener(gateway, pyup):
    gw = gateway(tls=True)
    gw.route("sec", "/sec", {"https_redirect": True})
    r = gw.get("/sec/a/b?q=1&r=%2F", headers={"Host": "api.example.com"})
    assert r.status == 308, r
    assert r.headers["location"] == f"https://api.example.com:{gw.dp.tls_port}/sec/a/b?q=1&r=%2F", r.headers
    r = gw.get("/sec/x", headers={"Host": "api.example.com:8080"})  # the Host's own port is replaced
    assert r.status == 308 and r.headers["location"] == f"https://api.example.com:{gw.dp.tls_port}/sec/x", r
    assert pyup.count == 0
    r = https_get(gw.dp.tls_port, "/sec/a?q=1")  # over TLS: served
    assert r.status == 200 and r.json()["path"] == "/a?q=1", r
    assert pyup.count == 1


def test_https_redirect_is_ignored_without_a_tls_listener(gateway):
    gw = gateway(tls=False)
    gw.route("sec", "/sec", {"https_redirect": True})
    assert gw.get("/sec/x").status == 200


# ---------------------------------------------------------------------------------------------------------------
# request limits


def test_413_body_over_the_limit_by_content_length(gateway, pyup):
    gw = gateway()
    gw.route("lim", "/lim", {"limits": {"max_body_bytes": 1024}})
    r = cephalo.http_request(gw.dp.port, "POST", "/lim/x", body=b"a" * 1025)
    assert r.status == 413, r
    assert pyup.count == 0
    r = cephalo.http_request(gw.dp.port, "POST", "/lim/x", body=b"a" * 1024)
    assert r.status == 200 and len(r.json()["body"]) == 1024, r


def test_413_chunked_body_over_the_limit(gateway, pyup):
    gw = gateway()
    gw.route("lim", "/lim", {"limits": {"max_body_bytes": 1024}})

    def chunked(n):
        head = b"POST /lim/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        return head + b"%x\r\n" % n + b"a" * n + b"\r\n0\r\n\r\n"

    out = cephalo.raw_request(gw.dp.port, chunked(2000))
    assert out.startswith(b"HTTP/1.1 413"), out[:300]
    assert pyup.count == 0
    out = cephalo.raw_request(gw.dp.port, chunked(1000))
    assert out.startswith(b"HTTP/1.1 200"), out[:300]


def test_414_url_over_the_limit(gateway, pyup):
    gw = gateway()
    gw.route("lim", "/lim", {"limits": {"max_url_bytes": 256}})
    refused(gw.get("/lim/" + "a" * 300), 414)
    refused(gw.get("/lim/x?" + "q" * 300), 414)  # the query counts too
    assert pyup.count == 0
    assert gw.get("/lim/" + "a" * 200).status == 200


def test_414_gateway_default_over_http2(gateway):
    """A route without limits has the gateway's (8192 URL bytes); over HTTP/2, where h2o's HTTP/1 head cap does not
    apply first."""
    import socket
    gw = gateway()
    gw.route("plain", "/plain")
    with socket.create_connection(("127.0.0.1", gw.dp.port), timeout=10) as s:
        r = cephalo.h2_request(s, f"127.0.0.1:{gw.dp.port}", "/plain/" + "a" * 9000)
    assert r.status == 414, r
    with socket.create_connection(("127.0.0.1", gw.dp.port), timeout=10) as s:
        assert cephalo.h2_request(s, f"127.0.0.1:{gw.dp.port}", "/plain/" + "a" * 4000).status == 200


def test_431_too_many_headers(gateway, pyup):
    gw = gateway()
    gw.route("lim", "/lim", {"limits": {"max_headers": 10}})
    refused(gw.get("/lim/x", headers={f"X-H{i}": "v" for i in range(20)}), 431)
    assert pyup.count == 0
    assert gw.get("/lim/x", headers={"X-H1": "v", "X-H2": "v"}).status == 200


def test_431_header_bytes_over_the_limit(gateway, pyup):
    gw = gateway()
    gw.route("lim", "/lim", {"limits": {"max_header_bytes": 1024}})
    refused(gw.get("/lim/x", headers={"X-Big": "b" * 2000}), 431)
    refused(gw.get("/lim/x", headers={f"X-H{i}": "v" * 100 for i in range(12)}), 431)  # the sum counts
    assert pyup.count == 0
    assert gw.get("/lim/x", headers={"X-Small": "s" * 300}).status == 200


# ---------------------------------------------------------------------------------------------------------------
# gateway-wide lists and limits (control-plane flags)


def test_gateway_ip_deny_refuses_every_route(gateway, pyup):
    gw = gateway(cp_args=["--ip-deny", "127.0.0.1/32", "--ip-deny", "2001:db8::/32"])
    gw.route("a", "/a")
    gw.route("b", "/b", {"ip_allow": ["127.0.0.0/8"]})  # a route's allow list cannot undo the gateway's deny
    for target in ("/a/x", "/b/x"):
        refused(gw.get(target), 403, "ip_denied")
    assert pyup.count == 0
    assert gw.get("/a/x", source="127.0.0.2").status == 200
    assert gw.get("/b/x", source="127.0.0.2").status == 200


def test_gateway_ip_allow_admits_only_its_range(gateway, pyup):
    gw = gateway(cp_args=["--ip-allow", "127.0.0.2/32"])
    gw.route("a", "/a")
    refused(gw.get("/a/x"), 403, "ip_denied")
    assert pyup.count == 0
    assert gw.get("/a/x", source="127.0.0.2").status == 200


def test_gateway_limits_apply_to_every_route(gateway, pyup):
    gw = gateway(cp_args=["--max-url-bytes", "256", "--max-headers", "20", "--max-body-bytes", "100",
                          "--max-header-bytes", "2048"])
    gw.route("a", "/a")
    gw.route("b", "/b")
    gw.route("own", "/own", {"limits": {"max_url_bytes": 1024}})  # its own URL limit, the gateway's for the rest
    for prefix in ("/a/", "/b/"):
        refused(gw.get(prefix + "u" * 300), 414, "uri_too_long")
        refused(gw.get(prefix + "x", headers={f"X-H{i}": "v" for i in range(25)}), 431)
        refused(gw.get(prefix + "x", headers={"X-Big": "b" * 3000}), 431)
        # above every limit of the snapshot: h2o's own cap refuses it while reading (its plain-text 413)
        assert cephalo.http_request(gw.dp.port, "POST", prefix + "x", body=b"a" * 101).status == 413
    assert pyup.count == 0
    assert gw.get("/own/" + "u" * 300).status == 200
    refused(gw.get("/own/x", headers={f"X-H{i}": "v" for i in range(25)}), 431)
    assert gw.get("/a/" + "u" * 200).status == 200
    assert cephalo.http_request(gw.dp.port, "POST", "/b/x", body=b"a" * 100).status == 200


def test_the_gateway_object_carries_the_flags(procs, tmpdir_str):
    cp = cephalo.ControlPlane(procs, tmpdir_str, extra_args=[
        "--ip-allow", "10.0.0.0/8", "--ip-allow", "2001:db8::/32", "--ip-deny", "10.9.0.0/16",
        "--max-body-bytes", "0", "--max-url-bytes", "65536", "--max-headers", "1", "--max-header-bytes", "1024",
        "--redis", "127.0.0.1:6390", "--cache-backend", "redis", "--ws-drain-grace-ms", "0"]).start()
    gw = cp.admin.ok("GET", f"{V1}/snapshot?body=1", expect=(200,))["body"]["gateway"]
    assert gw["ip_allow"] == ["10.0.0.0/8", "2001:db8::/32"], gw
    assert gw["ip_deny"] == ["10.9.0.0/16"], gw
    assert gw["limits"] == {"max_body_bytes": 0, "max_url_bytes": 65536, "max_headers": 1,
                            "max_header_bytes": 1024}, gw
    assert gw["cache"] == {"max_bytes": 67108864, "backend": "redis"}, gw
    assert gw["websocket"] == {"drain_grace_ms": 0}, gw


@pytest.mark.parametrize("args,message", [
    (["--ip-deny", "10.0.0.1/8"], "did you mean 10.0.0.0/8?"),
    (["--ip-allow", "2001:db8::1/32"], "did you mean 2001:db8::/32?"),
    (["--ip-allow", "10.0.0.0/33"], "--ip-allow"),
    (["--ip-deny", "example.com"], "not a CIDR"),
    (["--max-url-bytes", "255"], "--max-url-bytes"),
    (["--max-headers", "0"], "--max-headers"),
    (["--max-header-bytes", "1048577"], "--max-header-bytes"),
    (["--max-body-bytes", "1073741825"], "--max-body-bytes"),
    (["--cache-backend", "disk"], "--cache-backend"),
    (["--cache-backend", "redis"], "--cache-backend redis needs --redis"),
    (["--ws-drain-grace-ms", "3600001"], "--ws-drain-grace-ms"),
])
def test_bad_gateway_wide_flags_stop_the_control_plane(tmpdir_str, args, message):
    argv = [os.path.join(cephalo.BIN_DIR, "cephalo-controlplane"), "--data-dir", os.path.join(tmpdir_str, "bad")] + args
    env = dict(os.environ, CEPHALO_ADMIN_TOKEN="x" * 32)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode != 0, p
    assert message in p.stderr, p.stderr


def test_help_lists_the_gateway_wide_flags():
    p = subprocess.run([os.path.join(cephalo.BIN_DIR, "cephalo-controlplane"), "--help"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0
    for flag in ("--ip-allow", "--ip-deny", "--max-body-bytes", "--max-url-bytes", "--max-headers",
                 "--max-header-bytes", "--cache-backend", "--ws-drain-grace-ms"):
        assert flag in p.stdout, flag


# ---------------------------------------------------------------------------------------------------------------
# CORS

APP = "https://app.example.com"
CORS = {"origins": [APP], "methods": ["GET", "POST"], "headers": ["content-type", "x-custom"],
        "expose_headers": ["x-upstream"], "credentials": True, "max_age_s": 600}


def preflight(gw, target, origin=APP, method="POST", req_headers="content-type"):
    hdrs = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers:
        hdrs["Access-Control-Request-Headers"] = req_headers
    return cephalo.http_request(gw.dp.port, "OPTIONS", target, headers=hdrs)


@pytest.fixture
def cors(gateway):
    gw = gateway()
    gw.route("cors", "/cors", {"cors": CORS})
    gw.route("cors-auth", "/cors-auth", {"cors": CORS}, default_access="authenticated")
    gw.route("any", "/any", {"cors": {"origins": ["*"]}})
    return gw


def test_cors_preflight_is_answered_by_the_gateway(cors, pyup):
    r = preflight(cors, "/cors/x")
    assert r.status == 204, r
    h = r.headers
    assert h["access-control-allow-origin"] == APP, h
    assert h["access-control-allow-credentials"] == "true", h
    assert {"get", "post"} <= set(split(h["access-control-allow-methods"])), h
    assert {"content-type", "x-custom"} <= set(split(h["access-control-allow-headers"])), h
    assert h["access-control-max-age"] == "600", h
    assert "origin" in split(h.get("vary", "")), h
    assert pyup.count == 0  # never forwarded


def test_cors_preflight_needs_no_credential(cors, pyup):
    assert preflight(cors, "/cors-auth/x").status == 204
    assert cors.get("/cors-auth/x", headers={"Origin": APP}).status == 401  # the request itself does
    assert pyup.count == 0


def test_cors_simple_request_from_an_allowed_origin(cors, pyup):
    r = cors.get("/cors/x", headers={"Origin": APP})
    assert r.status == 200, r
    h = r.headers
    assert h["access-control-allow-origin"] == APP, h
    assert h["access-control-allow-credentials"] == "true", h
    assert split(h["access-control-expose-headers"]) == ["x-upstream"], h
    assert "origin" in split(h.get("vary", "")), h
    assert cephalo.seen_by_upstream(r)["headers"]["origin"] == APP  # forwarded as sent
    assert pyup.count == 1


def test_cors_disallowed_origin_gets_no_cors_headers(cors, pyup):
    r = cors.get("/cors/x", headers={"Origin": "https://evil.example.com"})
    assert r.status == 200, r  # the gateway serves it; the browser refuses to show it
    assert not set(CORS_HEADERS) & set(r.headers), r.headers
    r = preflight(cors, "/cors/x", origin="https://evil.example.com")
    assert not set(CORS_HEADERS) & set(r.headers), r
    r = preflight(cors, "/cors/x", origin="https://app.example.com:8443")  # another port is another origin
    assert not set(CORS_HEADERS) & set(r.headers), r


def test_cors_request_without_origin_gets_no_cors_headers(cors):
    r = cors.get("/cors/x")
    assert r.status == 200 and not set(CORS_HEADERS) & set(r.headers), r


def test_cors_any_origin_without_credentials(cors):
    r = cors.get("/any/x", headers={"Origin": "https://whoever.example.org"})
    assert r.status == 200, r
    assert r.headers["access-control-allow-origin"] == "*", r.headers
    assert "access-control-allow-credentials" not in r.headers, r.headers
    r = preflight(cors, "/any/x", origin="https://whoever.example.org", method="GET", req_headers=None)
    assert r.status == 204 and r.headers["access-control-allow-origin"] == "*", r


# ---------------------------------------------------------------------------------------------------------------
# security headers

SECURITY = {"hsts_max_age_s": 31536000, "hsts_subdomains": True, "content_type_options": True,
            "frame_options": "DENY", "referrer_policy": "no-referrer"}


def assert_security_headers(h):
    assert h.get("x-content-type-options") == "nosniff", h
    assert h.get("x-frame-options") == "DENY", h
    assert h.get("referrer-policy") == "no-referrer", h


def test_security_headers_on_proxied_answers_without_hsts_over_plain_http(gateway):
    gw = gateway(tls=True)
    gw.route("sec", "/sec", {"security_headers": SECURITY})
    r = gw.get("/sec/x")
    assert r.status == 200, r
    assert_security_headers(r.headers)
    assert "strict-transport-security" not in r.headers, r.headers


def test_hsts_over_tls(gateway):
    gw = gateway(tls=True)
    gw.route("sec", "/sec", {"security_headers": SECURITY})
    r = https_get(gw.dp.tls_port, "/sec/x")
    assert r.status == 200, r
    assert_security_headers(r.headers)
    assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains", r.headers


def test_security_headers_on_gateway_errors(gateway):
    gw = gateway()
    gw.route("sec", "/sec", {"security_headers": SECURITY}, default_access="authenticated")
    r = gw.get("/sec/x")
    assert r.status == 401, r
    assert_security_headers(r.headers)


def test_a_route_without_security_headers_adds_none(gateway):
    gw = gateway()
    gw.route("plain", "/plain")
    r = gw.get("/plain/x")
    assert r.status == 200, r
    for name in ("x-content-type-options", "x-frame-options", "referrer-policy", "strict-transport-security"):
        assert name not in r.headers, r.headers


def test_the_upstreams_own_values_are_replaced(gateway, nginx):
    gw = gateway()
    gw.admin.apply("POST", f"{V1}/services", {"name": "nginx", "targets": [{"url": nginx.url}]})
    gw.route("xfo", "/xfo", {"security_headers": SECURITY}, service="nginx", strip_prefix=False)
    gw.route("xfo-plain", "/plain", service="nginx", strip_prefix=True)
    r = gw.get("/xfo/page")
    assert r.status == 200 and r.body.startswith(b"upstream=nginx-a with its own"), r
    assert_security_headers(r.headers)  # one value each: "DENY", not "SAMEORIGIN, DENY"
    r = gw.get("/plain/xfo/page")  # a route without security headers passes the upstream's through
    assert r.headers.get("x-frame-options") == "SAMEORIGIN", r.headers
    assert r.headers.get("referrer-policy") == "unsafe-url", r.headers
