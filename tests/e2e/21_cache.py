"""21: the response cache (docs/dataplane.md "Response cache", issue 5: a route's policies.cache, the data plane's `cache` stage, the memory
LRU, the purge API and message, the cache metrics).

The upstream is cephalo.CtlUpstream: the test sets each path's status, headers (Cache-Control, ETag, Vary,
Set-Cookie, ...) and body size, and counts the requests of every path, so "served from the cache" is proved by the
upstream not seeing the request, not only by `X-Cache: HIT`. Its default body names the path's request serial (also
sent as `X-Serial`), so a test can tell which upstream answer the gateway replayed. Routes are public and strip their
prefix (route /c -> upstream path /x for /c/x); every config write is applied with ?wait=applied. A purge is a control
message, not a config write, so its effect is observed by polling the data plane until the entry misses. The only
sleeps are where time must pass: an Age that grows (1.1 s) and an entry that expires (freshness 2 s, 3.1 s waited, so
any whole-second rounding of the clock still has it expired).
"""
import email.utils
import http.client
import os
import socket
import sqlite3
import time

import pytest

import cephalo

V1 = "/api/v1"
PURGE = f"{V1}/cache/purge"
FRESH = {"Cache-Control": "max-age=60"}
PUBLIC = {"Cache-Control": "public, max-age=60"}


@pytest.fixture
def ctl(procs):
    return cephalo.ctl_upstream(procs)


@pytest.fixture
def gateway(procs, tmpdir_str, ctl):
    """Factory: gateway(cp_args=(), dataplanes=1) -> cephalo.Gateway whose service "echo" is the CtlUpstream."""
    return cephalo.gateway_factory(procs, tmpdir_str, ctl.url)


def cache(**policy):
    """A route's policies with a cache policy (no member: every default)."""
    return {"cache": policy}


xcache, hit, miss, serial = cephalo.xcache, cephalo.cache_hit, cephalo.cache_miss, cephalo.ctl_serial


def not_hit(r, status=200):
    """A response that did not come from the cache (a miss or a bypass: X-Cache is MISS or absent)."""
    assert r.status == status and xcache(r) != "HIT", f"want a {status} not from the cache, got {r}"
    return r


def purge(gw, body, status=202):
    r = gw.admin.post(PURGE, body)
    assert r.status == status, f"purge {body} -> {r}"
    return r.json()


def wait_miss(dp, target, **kw):
    """Polls until the data plane misses target (a purge is a control message: applied a moment after its 202)."""
    return cephalo.wait_until(lambda: xcache(dp.get(target, **kw)) == "MISS", 10, f"{target} purged on {dp.name}")


def api_key(admin):
    """A usable API key (a system of its own, no roles): a credential a public route accepts."""
    admin.ok("POST", f"{V1}/systems", {"code": "t", "name": "T"})
    k = admin.apply("POST", f"{V1}/api_keys", {"system": "t", "name": "k", "roles": [], "groups": []})["api_key"]
    return k["key"]


def db_rows(cp, sql):
    con = sqlite3.connect(f"file:{os.path.join(cp.data_dir, 'cephalo.db')}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------------------------
# hit and miss


def test_miss_then_hit_with_a_growing_age(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=dict(FRESH, **{"X-Custom": "kept", "Content-Type": "application/x-test"}))
    r1 = miss(gw.get("/c/x"))
    assert serial(r1) == 1 and r1.body.startswith(b"/x #1"), r1
    r2 = hit(gw.get("/c/x"))
    assert r2.body == r1.body and serial(r2) == 1, r2
    assert r2.headers["x-custom"] == "kept" and r2.headers["content-type"] == "application/x-test", r2.headers
    age0 = int(r2.headers["age"])
    assert age0 <= 1, r2.headers
    assert ctl.count("/x") == 1
    time.sleep(1.1)  # time must pass for Age to grow
    r3 = hit(gw.get("/c/x"))
    assert int(r3.headers["age"]) >= age0 + 1 and r3.body == r1.body, (r2.headers, r3.headers)
    assert ctl.count("/x") == 1


def test_a_route_without_a_cache_policy_is_not_cached(gateway, ctl):
    gw = gateway()
    gw.route("plain", "/p")
    ctl.set("/x", headers=FRESH)
    for _ in range(2):
        r = gw.get("/p/x")
        assert r.status == 200 and "x-cache" not in r.headers, r
    assert ctl.count("/x") == 2


def test_head_is_served_from_the_get_entry(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=FRESH, size=5000)
    full = miss(gw.get("/c/x")).body
    assert len(full) == 5000
    r = hit(cephalo.http_request(gw.dp.port, "HEAD", "/c/x"))
    assert r.body == b"" and serial(r) == 1, r
    assert ctl.methods("/x") == ["GET"]
    # a HEAD that misses must not leave a body-less entry behind for the GETs
    ctl.set("/h", headers=FRESH, size=5000)
    r = cephalo.http_request(gw.dp.port, "HEAD", "/c/h")
    assert r.status == 200 and r.body == b"" and xcache(r) != "HIT", r
    r = gw.get("/c/h")
    assert r.status == 200 and len(r.body) == 5000 and r.body[:3] == b"/h ", r
    assert hit(gw.get("/c/h")).body == r.body


def test_if_none_match_gets_a_304_from_the_cache(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=dict(FRESH, ETag='"v1"'))
    body = miss(gw.get("/c/x")).body
    for inm in ('"v1"', 'W/"v1"', '"other", "v1"'):  # weak comparison; a list matches if one does
        r = hit(gw.get("/c/x", headers={"If-None-Match": inm}), status=304)
        assert r.body == b"" and r.headers.get("etag") == '"v1"', (inm, r)
    r = hit(gw.get("/c/x", headers={"If-None-Match": '"v2"'}))  # no match: the whole entry
    assert r.body == body, r
    assert ctl.count("/x") == 1


def test_stored_statuses_keep_their_status_and_headers(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    cases = {"/404": (404, {}), "/410": (410, {}), "/301": (301, {"Location": "https://example.com/moved"}),
             "/204": (204, {}), "/203": (203, {})}
    for path, (status, extra) in cases.items():
        ctl.set(path, status=status, headers=dict(FRESH, **{"X-Custom": path}, **extra))
        r1 = miss(gw.get("/c" + path), status=status)
        r2 = hit(gw.get("/c" + path), status=status)
        assert r2.body == r1.body and r2.headers["x-custom"] == path, (path, r2)
        for k, v in extra.items():
            assert r2.headers[k.lower()] == v, (path, r2.headers)
        assert ctl.count(path) == 1, path


def test_hop_by_hop_headers_and_the_upstreams_age_are_not_replayed(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=[("Cache-Control", "max-age=60"), ("Connection", "x-hop"), ("X-Hop", "secret"),
                           ("X-Keep", "kept"), ("Age", "5")])
    m = miss(gw.get("/c/x"))
    r = hit(gw.get("/c/x"))  # hit() also checks that Age is one integer: the upstream's was not kept beside it
    assert r.headers.get("x-keep") == "kept", r.headers
    assert "x-hop" not in r.headers.get("connection", "").lower(), r.headers
    # the proxy may drop Connection before the stage sees it (and with it the knowledge that X-Hop was connection-
    # specific): what is asserted is that a hit replays no hop-by-hop header the miss did not carry
    for name in ("x-hop", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"):
        assert name in m.headers or name not in r.headers, (name, m.headers, r.headers)


# ---------------------------------------------------------------------------------------------------------------
# what is stored, and for how long


def test_responses_that_are_never_stored(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    cases = {
        "/no-store": (200, {"Cache-Control": "no-store, max-age=60"}),
        "/private": (200, {"Cache-Control": "private, max-age=60"}),
        "/no-cache": (200, {"Cache-Control": "max-age=60, no-cache"}),
        "/cookie": (200, [("Cache-Control", "max-age=60"), ("Set-Cookie", "s=1; Path=/")]),
        "/vary-star": (200, {"Cache-Control": "max-age=60", "Vary": "*"}),
        "/vary-star-list": (200, {"Cache-Control": "max-age=60", "Vary": "Accept-Language, *"}),
        "/no-freshness": (200, {}),  # ttl_s 0: only what the upstream marks cacheable
        "/max-age-0": (200, {"Cache-Control": "max-age=0"}),
        "/s-maxage-0": (200, {"Cache-Control": "s-maxage=0, max-age=60"}),  # s-maxage wins: 0 is not stored
        "/expired": (200, {"Expires": email.utils.formatdate(time.time() - 3600, usegmt=True)}),
        "/500": (500, FRESH),
        "/503": (503, FRESH),
        "/302": (302, dict(FRESH, Location="https://example.com/")),
        "/201": (201, FRESH),
        "/206": (206, dict(FRESH, **{"Content-Range": "bytes 0-9/100"})),
        "/304": (304, dict(FRESH, ETag='"e"')),
    }
    for path, (status, headers) in cases.items():
        ctl.set(path, status=status, headers=headers)
        for i in range(2):
            r = miss(gw.get("/c" + path), status=status)
            assert serial(r) == i + 1, (path, r)
        assert ctl.count(path) == 2, path
    r = gw.get("/c/cookie")
    assert r.headers.get("set-cookie", "").startswith("s=1"), r  # the client still gets its cookie


def test_s_maxage_is_preferred_to_max_age_and_expires_counts(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/s", headers={"Cache-Control": "max-age=0, s-maxage=60"})
    ctl.set("/e", headers={"Expires": email.utils.formatdate(time.time() + 600, usegmt=True)})
    for path in ("/s", "/e"):
        miss(gw.get("/c" + path))
        hit(gw.get("/c" + path))
        assert ctl.count(path) == 1, path


def test_ttl_s_when_the_upstream_says_nothing(gateway, ctl):
    gw = gateway()
    gw.route("t", "/t", cache(ttl_s=60))
    gw.route("z", "/z", cache(ttl_s=0))
    ctl.set("/m0", headers={"Cache-Control": "max-age=0"})  # an explicit 0 is not "nothing": ttl_s does not apply
    miss(gw.get("/t/x"))
    assert serial(hit(gw.get("/t/x"))) == 1
    miss(gw.get("/z/x"))
    miss(gw.get("/z/x"))
    miss(gw.get("/t/m0"))
    miss(gw.get("/t/m0"))
    assert ctl.count("/x") == 3 and ctl.count("/m0") == 2


def test_max_ttl_s_caps_freshness_then_the_entry_expires(gateway, ctl):
    gw = gateway()
    gw.route("cap", "/cap", cache(max_ttl_s=2))
    gw.route("ttl", "/ttl", cache(ttl_s=2))
    ctl.set("/long", headers={"Cache-Control": "max-age=3600"})
    for target in ("/cap/long", "/ttl/plain"):
        miss(gw.get(target))
        hit(gw.get(target))
    time.sleep(3.1)  # freshness 2 s: time must pass
    for target, path in (("/cap/long", "/long"), ("/ttl/plain", "/plain")):
        r = miss(gw.get(target))
        assert serial(r) == 2, r
        assert serial(hit(gw.get(target))) == 2  # the new answer is stored again
        assert ctl.count(path) == 2, path


def test_vary_keys_each_variant(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/v", headers=dict(FRESH, Vary="Accept-Language"))
    assert miss(gw.get("/c/v", headers={"Accept-Language": "en"})).body.startswith(b"/v #1 lang=en")
    assert hit(gw.get("/c/v", headers={"Accept-Language": "en"})).body.startswith(b"/v #1 lang=en")
    assert miss(gw.get("/c/v", headers={"Accept-Language": "de"})).body.startswith(b"/v #2 lang=de")
    assert hit(gw.get("/c/v", headers={"accept-language": "de"})).body.startswith(b"/v #2 lang=de")
    assert hit(gw.get("/c/v", headers={"Accept-Language": "en"})).body.startswith(b"/v #1 lang=en")
    assert ctl.count("/v") == 2


def test_the_key_has_the_host_and_the_query(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=FRESH)
    miss(gw.get("/c/x?a=1"))
    hit(gw.get("/c/x?a=1"))
    miss(gw.get("/c/x?a=2"))
    miss(gw.get("/c/x"))
    miss(gw.get("/c/x", headers={"Host": "a.example"}))
    miss(gw.get("/c/x", headers={"Host": "b.example"}))
    hit(gw.get("/c/x", headers={"Host": "A.Example"}))  # the host is normalised
    assert ctl.count("/x") == 5


def test_hostile_cache_headers_from_the_upstream(gateway, ctl):
    """Odd or hostile caching headers: whatever is decided, every answer is whole and nothing crashes."""
    gw = gateway()
    gw.route("c", "/c", cache(max_ttl_s=60))
    refused = {"/neg": "max-age=-5", "/abc": "max-age=abc", "/empty": "max-age=", "/s-neg": "s-maxage=-1"}
    odd = {"/huge": "max-age=99999999999999999999999", "/dup": "max-age=60, max-age=61",
           "/quoted": 'max-age="60"', "/spaces": "  MAX-AGE = 60 ,, public ,",
           "/long": "max-age=60, " + ", ".join(f"x-ext{i}=" + "v" * 50 for i in range(100))}
    for path, cc in dict(refused, **odd).items():
        ctl.set(path, headers={"Cache-Control": cc}, size=3000)
    ctl.set("/vary-long", headers=dict(FRESH, Vary=", ".join(f"X-H{i}" for i in range(200))), size=3000)
    ctl.set("/etag-long", headers=dict(FRESH, ETag='"' + "e" * 4000 + '"'), size=3000)
    for path in list(refused) + list(odd) + ["/vary-long", "/etag-long"]:
        for _ in range(2):
            r = gw.get("/c" + path, headers={"If-None-Match": '"nope"'})
            assert r.status == 200 and len(r.body) == 3000 and r.body.startswith(path.encode() + b" #"), (path, r)
    for path in refused:  # an unparsable or negative freshness is no freshness
        assert ctl.count(path) == 2, path
    assert gw.get("/c/neg").status == 200 and cephalo.http_get(gw.dp.status_port, "/health").status == 200


# ---------------------------------------------------------------------------------------------------------------
# requests that bypass the cache


def test_authenticated_requests_bypass_by_default(gateway, ctl):
    gw = gateway()
    key = api_key(gw.admin)
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=PUBLIC)
    ctl.set("/y", headers=PUBLIC)
    creds = ({"X-API-Key": key}, {"Authorization": f"ApiKey {key}"}, {"Cookie": "session=abc"})
    miss(gw.get("/c/x"))
    for i, hdrs in enumerate(creds):  # never answered from the cache ...
        assert serial(not_hit(gw.get("/c/x", headers=hdrs))) == i + 2, hdrs
    assert ctl.count("/x") == 4
    assert serial(hit(gw.get("/c/x"))) == 1  # ... nor stored over the entry
    for hdrs in creds:  # ... nor stored at all
        not_hit(gw.get("/c/y", headers=hdrs))
    miss(gw.get("/c/y"))
    assert ctl.count("/y") == 4


def test_share_authenticated_only_with_a_public_response(gateway, ctl):
    gw = gateway()
    key = api_key(gw.admin)
    gw.route("c", "/c", cache(share_authenticated=True))
    ctl.set("/pub", headers=PUBLIC)
    ctl.set("/sm", headers={"Cache-Control": "s-maxage=60"})
    ctl.set("/priv", headers=FRESH)  # cacheable, but not said public
    auth = {"X-API-Key": key}
    for path in ("/pub", "/sm"):
        miss(gw.get("/c" + path, headers=auth))
        assert serial(hit(gw.get("/c" + path, headers=auth))) == 1, path
        assert serial(hit(gw.get("/c" + path))) == 1, path  # shared: the anonymous get it too
        assert serial(hit(gw.get("/c" + path, headers={"Authorization": f"ApiKey {key}"}))) == 1, path
        assert ctl.count(path) == 1, path
    not_hit(gw.get("/c/priv", headers=auth))
    not_hit(gw.get("/c/priv", headers=auth))
    assert ctl.count("/priv") == 2
    miss(gw.get("/c/priv"))  # anonymous: stored ...
    hit(gw.get("/c/priv"))
    not_hit(gw.get("/c/priv", headers=auth))  # ... but never answered to a credential without `public`
    assert ctl.count("/priv") == 4


def test_request_no_cache_refreshes_and_no_store_bypasses(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=FRESH)
    ctl.set("/y", headers=FRESH)
    assert serial(miss(gw.get("/c/x"))) == 1
    assert serial(hit(gw.get("/c/x"))) == 1
    assert serial(miss(gw.get("/c/x", headers={"Cache-Control": "no-cache"}))) == 2
    assert serial(hit(gw.get("/c/x"))) == 2  # the entry was refreshed
    assert serial(miss(gw.get("/c/x", headers={"Pragma": "no-cache"}))) == 3
    assert serial(hit(gw.get("/c/x"))) == 3
    assert ctl.count("/x") == 3
    # no-store: neither looked up nor stored
    assert serial(not_hit(gw.get("/c/y", headers={"Cache-Control": "no-store"}))) == 1
    assert serial(miss(gw.get("/c/y"))) == 2
    assert serial(hit(gw.get("/c/y"))) == 2
    assert serial(not_hit(gw.get("/c/y", headers={"Cache-Control": "no-store"}))) == 3
    assert serial(hit(gw.get("/c/y"))) == 2
    assert ctl.count("/y") == 3


def test_post_is_never_cached(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=FRESH)
    for _ in range(2):
        not_hit(cephalo.http_request(gw.dp.port, "POST", "/c/x", body=b"{}"))
    assert ctl.count("/x") == 2
    miss(gw.get("/c/x"))  # a POST stored nothing
    hit(gw.get("/c/x"))
    for method in ("POST", "PUT", "DELETE"):  # and is never answered from a GET's entry
        not_hit(cephalo.http_request(gw.dp.port, method, "/c/x", body=b"{}"))
    assert ctl.methods("/x") == ["POST", "POST", "GET", "POST", "PUT", "DELETE"]


# ---------------------------------------------------------------------------------------------------------------
# body sizes


def test_a_body_over_max_body_bytes_passes_through_whole(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache(max_body_bytes=65536))
    ctl.set("/big", headers=FRESH, size=300000)
    ctl.set("/edge", headers=FRESH, size=65536)
    for i in range(2):
        r = miss(gw.get("/c/big"))
        assert r.body == ctl.last_body("/big") and len(r.body) == 300000 and serial(r) == i + 1, len(r.body)
    assert ctl.count("/big") == 2
    body = miss(gw.get("/c/edge")).body  # exactly max_body_bytes fits
    assert hit(gw.get("/c/edge")).body == body and len(body) == 65536


def test_a_large_entry_is_replayed_whole_over_http1_and_http2(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())  # max_body_bytes 1 MiB by default
    ctl.set("/l", headers=FRESH, size=1000000)
    body = miss(gw.get("/c/l")).body
    assert body == ctl.last_body("/l")
    assert hit(gw.get("/c/l")).body == body
    with socket.create_connection(("127.0.0.1", gw.dp.port), timeout=10) as s:
        r = cephalo.h2_request(s, f"127.0.0.1:{gw.dp.port}", "/c/l")
    assert r.status == 200 and r.headers.get("x-cache") == "HIT" and r.body == body, (r.status, r.headers)
    ctl.set("/e", headers=dict(FRESH, ETag='"e1"'))
    miss(gw.get("/c/e"))
    with socket.create_connection(("127.0.0.1", gw.dp.port), timeout=10) as s:
        r = cephalo.h2_request(s, f"127.0.0.1:{gw.dp.port}", "/c/e", headers={"if-none-match": '"e1"'})
    assert r.status == 304 and r.headers.get("x-cache") == "HIT" and r.body == b"", (r.status, r.headers)
    assert ctl.count("/l") == 1 and ctl.count("/e") == 1


def test_an_entry_purged_while_a_slow_client_reads_it(gateway, ctl):
    """Entries are refcounted: a reader keeps streaming the entry a purge dropped (sanitizers watch the memory)."""
    gw = gateway()
    gw.route("c", "/c", cache(max_body_bytes=4 << 20))
    ctl.set("/big", headers=FRESH, size=3 << 20)
    body = miss(gw.get("/c/big")).body
    conn = http.client.HTTPConnection("127.0.0.1", gw.dp.port, timeout=10)
    try:
        conn.request("GET", "/c/big")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("x-cache") == "HIT", r.getheaders()
        first = r.read(65536)
        assert purge(gw, {"route": "c"})["purged_on"] == 1
        wait_miss(gw.dp, "/c/big")  # purged (and stored again from the upstream's second answer)
        rest = r.read()
    finally:
        conn.close()
    assert first + rest == body
    assert ctl.count("/big") == 2


# ---------------------------------------------------------------------------------------------------------------
# snapshots


def test_a_new_snapshot_keeps_the_cache_but_a_removed_policy_serves_nothing(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=FRESH)
    miss(gw.get("/c/x"))
    gw.route("other", "/o")  # a new snapshot
    assert serial(hit(gw.get("/c/x"))) == 1
    gw.admin.apply("PUT", f"{V1}/routes/c", {"name": "c", "service": "echo", "paths": ["/c"], "strip_prefix": True,
                                             "default_access": "public"})  # no policies: no cache
    for i in range(2):
        assert serial(not_hit(gw.get("/c/x"))) == 2 + i
    assert ctl.count("/x") == 3


@pytest.mark.parametrize("policy,path", [
    ({"ttl_s": -1}, "/policies/cache/ttl_s"),
    ({"ttl_s": 31536001}, "/policies/cache/ttl_s"),
    ({"ttl_s": 1.5}, "/policies/cache/ttl_s"),
    ({"max_ttl_s": 0}, "/policies/cache/max_ttl_s"),
    ({"max_body_bytes": 0}, "/policies/cache/max_body_bytes"),
    ({"max_body_bytes": 67108865}, "/policies/cache/max_body_bytes"),
    ({"share_authenticated": "yes"}, "/policies/cache/share_authenticated"),
    ({"ttl": 5}, "/policies/cache/ttl"),
    ([], "/policies/cache"),
])
def test_bad_cache_policies_are_refused_by_the_admin_api(admin, ctl, policy, path):
    admin.ok("POST", f"{V1}/services", {"name": "echo", "targets": [{"url": ctl.url}]})
    body = {"name": "bad", "service": "echo", "paths": ["/bad"], "policies": {"cache": policy}}
    r = admin.post(f"{V1}/routes", body)
    assert r.status == 400, r
    body = r.json()
    assert body["error"] in ("invalid", "unknown_field") and body.get("path") == path, body


# ---------------------------------------------------------------------------------------------------------------
# purge


def test_purge_a_route_on_every_data_plane(gateway, ctl):
    gw = gateway(dataplanes=2)
    gw.route("a", "/a", cache())
    gw.route("b", "/b", cache())
    for path in ("/x", "/y"):
        ctl.set(path, headers=FRESH)
    for dp in gw.dps:
        for target in ("/a/x", "/a/y", "/b/x"):
            miss(dp.get(target))
            hit(dp.get(target))
    version = gw.admin.snapshot()["version"]
    assert purge(gw, {"route": "a"})["purged_on"] == 2
    for dp in gw.dps:
        wait_miss(dp, "/a/x")
        miss(dp.get("/a/y"))  # every entry of the route
        hit(dp.get("/b/x"))  # and none of another
    assert gw.admin.snapshot()["version"] == version  # not a config write
    rows = db_rows(gw.cp, "SELECT actor, entity_type FROM audit WHERE action = 'purge'")
    assert len(rows) == 1 and rows[0][0] and rows[0][1] == "route", rows


def test_purge_by_upstream_path_prefix(gateway, ctl):
    gw = gateway()
    gw.route("a", "/a", cache())
    for path in ("/p/1", "/p/2", "/p/3", "/q/1", "/pq"):
        ctl.set(path, headers=FRESH)
    targets = ("/a/p/1", "/a/p/2", "/a/p/3?x=1", "/a/q/1", "/a/pq")
    for target in targets:
        miss(gw.get(target))
        hit(gw.get(target))
    assert purge(gw, {"route": "a", "prefix": "/p/"})["purged_on"] == 1  # the upstream path, not /a/p/
    wait_miss(gw.dp, "/a/p/1")
    miss(gw.get("/a/p/2"))
    miss(gw.get("/a/p/3?x=1"))
    hit(gw.get("/a/q/1"))
    hit(gw.get("/a/pq"))  # a prefix of the string "/p/", not of "/p"


def test_purge_of_an_unknown_route_and_hostile_bodies(gateway, ctl):
    gw = gateway()
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=FRESH)
    miss(gw.get("/c/x"))
    r = gw.admin.post(PURGE, {"route": "nope"})
    assert r.status == 404 and r.json()["error"] == "not_found", r
    r = gw.admin.post(PURGE, {"route": "nope", "prefix": "/x"})
    assert r.status == 404, r
    hostile = [b"", b"not json", b"[]", b'"c"', b"null", b"{}", b'{"route": 5}', b'{"route": null}',
               b'{"route": ["c"]}', b'{"route": {"name": "c"}}', b'{"route": true}',
               b'{"route": "c", "prefix": 5}', b'{"route": "c", "prefix": {}}', b'{"route": "c", "prefix": ["/x"]}',
               b'{"route": "c", "prefix": "no-slash"}', b'{"route": "c", "prefix": ""}',
               b'{"route": "c", "prefix": "/a\\u0001b"}', b'{"route": "c", "prefix": "/a\\u0000b"}',
               b'{"route": "c\\u0000"}', b'{"route": "c", "route": "c"}',
               b'{"route": "c", "prefix": "/' + b"p" * 5000 + b'"}',
               b'{"route": ' + b"[" * 5000 + b"]" * 5000 + b"}", b'{"route": "c"', b"\xff\xfe{}"]
    for raw in hostile:
        r = gw.admin.request("POST", PURGE, raw=raw)
        assert r.status == 400, (raw[:80], r)
        assert r.headers.get("content-type", "").startswith("application/json"), (raw[:80], r)
        assert isinstance(r.json().get("error"), str), (raw[:80], r)
    assert gw.admin.request("POST", PURGE, {"route": "c"}, token=None).status == 401
    assert gw.admin.request("POST", PURGE, {"route": "c"}, token="wrong-token-0123456789").status == 401
    hit(gw.get("/c/x"))  # none of them purged anything
    assert db_rows(gw.cp, "SELECT COUNT(*) FROM audit WHERE action = 'purge'") == [(0,)]
    assert purge(gw, {"route": "c", "prefix": None})["purged_on"] == 1  # a null prefix: the whole route
    wait_miss(gw.dp, "/c/x")


# ---------------------------------------------------------------------------------------------------------------
# memory budget (--cache-max-bytes) and metrics


def test_the_control_plane_writes_gateway_cache(procs, tmpdir_str):
    cp = cephalo.ControlPlane(procs, tmpdir_str).start()
    assert cp.admin.ok("GET", f"{V1}/snapshot?body=1")["body"]["gateway"]["cache"] == {"max_bytes": 67108864}
    cp2 = cephalo.ControlPlane(procs, tmpdir_str, name="cp2", extra_args=["--cache-max-bytes", "17179869184"]).start()
    assert cp2.admin.ok("GET", f"{V1}/snapshot?body=1")["body"]["gateway"]["cache"] == {"max_bytes": 17179869184}


@pytest.mark.parametrize("value", ["-1", "17179869185", "abc", "1.5", "", "10k", "99999999999999999999"])
def test_bad_cache_max_bytes_stops_the_control_plane(procs, tmpdir_str, value):
    cp = cephalo.ControlPlane(procs, tmpdir_str, extra_args=["--cache-max-bytes", value])
    with pytest.raises(AssertionError, match="exited"):
        cp.start()
    assert cp.proc.wait(5) != 0


def test_cache_max_bytes_0_turns_caching_off(gateway, ctl):
    gw = gateway(cp_args=["--cache-max-bytes", "0"])
    assert gw.admin.ok("GET", f"{V1}/snapshot?body=1")["body"]["gateway"]["cache"] == {"max_bytes": 0}
    gw.route("c", "/c", cache())
    ctl.set("/x", headers=FRESH)
    for _ in range(3):
        not_hit(gw.get("/c/x"))
    assert ctl.count("/x") == 3


def test_lru_eviction_under_a_small_budget(gateway, ctl):
    """Entries of ~4.3 kB (4000 body bytes + key + headers) in a 10000-byte budget: two fit, a third evicts the
    least recently used one."""
    gw = gateway(cp_args=["--cache-max-bytes", "10000"])
    gw.route("c", "/c", cache())
    for path in ("/1", "/2", "/3"):
        ctl.set(path, headers=FRESH, size=4000)
    miss(gw.get("/c/1"))
    miss(gw.get("/c/2"))
    hit(gw.get("/c/1"))  # /1 is now more recently used than /2
    miss(gw.get("/c/3"))  # evicts /2
    assert hit(gw.get("/c/1")).body == ctl.last_body("/1")
    hit(gw.get("/c/3"))
    assert serial(miss(gw.get("/c/2"))) == 2  # the least recently used one was evicted: the upstream again
    assert ctl.count("/1") == 1 and ctl.count("/3") == 1
    m = gw.dp.metrics()
    assert cephalo.metric(m, "cephalo_cache_entries") == 2, m
    assert 8000 < cephalo.metric(m, "cephalo_cache_bytes") <= 10000, m


def test_an_entry_bigger_than_the_budget_is_never_stored(gateway, ctl):
    gw = gateway(cp_args=["--cache-max-bytes", "10000"])
    gw.route("c", "/c", cache())
    ctl.set("/small", headers=FRESH, size=1000)
    ctl.set("/big", headers=FRESH, size=20000)
    miss(gw.get("/c/small"))
    for _ in range(2):
        r = miss(gw.get("/c/big"))
        assert len(r.body) == 20000, r
    assert ctl.count("/big") == 2
    m = gw.dp.metrics()
    assert cephalo.metric(m, "cephalo_cache_bytes") <= 10000, m


def test_cache_metrics(gateway, ctl):
    gw = gateway()
    gw.route("m", "/m", cache())
    ctl.set("/s", headers=dict(FRESH, ETag='"s"'))
    ctl.set("/n", headers={"Cache-Control": "no-store"})
    miss(gw.get("/m/s"))  # miss, stored
    hit(gw.get("/m/s"))  # hit
    hit(gw.get("/m/s", headers={"If-None-Match": '"s"'}), status=304)  # revalidated_304
    not_hit(gw.get("/m/s", headers={"Cache-Control": "no-store"}))  # bypass
    miss(gw.get("/m/n"))  # miss, not_storable

    def outcome(name):
        return cephalo.metric(gw.dp.metrics(), "cephalo_cache_total", route="m", outcome=name) or 0

    want = {"miss": 2, "stored": 1, "not_storable": 1, "bypass": 1, "revalidated_304": 1}
    cephalo.wait_until(lambda: {k: outcome(k) for k in want} == want, 5, f"cache outcomes {want}")
    assert outcome("hit") in (1, 2)  # a 304 from the cache may count as a hit too
    m = gw.dp.metrics()
    assert cephalo.metric(m, "cephalo_cache_entries") == 1, m
    assert cephalo.metric(m, "cephalo_cache_bytes") > 0, m


def test_concurrent_clients_while_entries_are_evicted_and_purged(gateway, ctl):
    """16 clients on 6 paths of 60 kB in a 200 kB budget (three fit: evictions all the time) while purges run: every
    answer is whole and its body is the upstream answer its headers name (X-Serial), hit or miss. The sanitizers
    watch the refcounts."""
    import concurrent.futures

    gw = gateway(cp_args=["--cache-max-bytes", "200000"])
    gw.route("c", "/c", cache())
    paths = [f"/p{i}" for i in range(6)]
    for path in paths:
        ctl.set(path, headers=FRESH, size=60000)

    def client(k):
        seen = []
        conn = http.client.HTTPConnection("127.0.0.1", gw.dp.port, timeout=20)
        try:
            for j in range(12):
                path = paths[(k + j * 5) % len(paths)]
                conn.request("GET", "/c" + path)
                r = conn.getresponse()
                body = r.read()
                assert r.status == 200 and len(body) == 60000, (path, r.status, len(body))
                head = f"{path} #{r.getheader('x-serial')} lang=\n".encode()
                assert body.startswith(head), (path, r.getheaders(), body[:40])
                seen.append(r.getheader("x-cache"))
        finally:
            conn.close()
        return seen

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(client, k) for k in range(16)]
        for _ in range(5):
            purge(gw, {"route": "c"})
            purge(gw, {"route": "c", "prefix": "/p1"})
        outcomes = [x for f in futures for x in f.result(timeout=60)]
    assert len(outcomes) == 16 * 12 and set(outcomes) <= {"HIT", "MISS"}, outcomes
    assert "HIT" in outcomes and "MISS" in outcomes, outcomes
    m = gw.dp.metrics()
    assert cephalo.metric(m, "cephalo_cache_bytes") <= 200000, m
    assert cephalo.http_get(gw.dp.status_port, "/health").status == 200
