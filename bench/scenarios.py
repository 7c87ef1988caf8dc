"""The benchmark scenarios, as data: adding one is one entry in SCENARIOS.

Every scenario gives the route prefixes every proxy is configured with (Cephalo routes, nginx `location`s, haproxy
path_beg patterns), the one path the load generators request, and optionally the Cephalo route fields it needs.
Routes are public unless a scenario says otherwise (a Cephalo route defaults to default_access "authenticated").
A scenario with `identity` makes bench.py seed a system "bench" with a role "caller", a user holding it and an endpoint
rule GET /bench/* requiring it; every client (wrk, h2load, against every proxy alike) then sends the user's JWT,
obtained by logging in through the data plane. `baseline` names a scenario whose Cephalo numbers are reported next
to this one's (ratio of the medians), when both ran. A scenario with `redis` makes bench.py start a redis-server of its
own (no persistence, on a free loopback port, on the non-proxy CPUs) and pass `--redis` to the control plane.
A scenario whose feature does not exist yet carries `pending` (why): it is listed in the output and never run, so
nothing is faked. `mode` picks how a scenario is measured: "throughput" (the default: wrk and h2load against every
proxy, the table above) or one of bench.py's other MODES ("ws-idle": `connections` idle websockets through the data
plane to a websocket echo origin, the data plane's RSS per connection; --ws-connections overrides the count; "pdf":
`connections` clients posting HTML to a route of kind pdf, PDFs per second and the renderers' peak concurrency;
"h2flood": a fixed-rate h2c client's latency alone and during a rapid-reset flood, bench/h2flood.py).
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional


@dataclass
class Scenario:
    name: str
    about: str
    # route prefixes; the first one is created through the admin API, the rest in bulk (see bench.py)
    routes: Callable[[], List[str]] = lambda: ["/bench"]
    path: str = "/bench/hello"  # what wrk and h2load request
    route_extra: Dict[str, object] = field(default_factory=lambda: {"default_access": "public"})  # more route fields
    identity: bool = False  # seed the identity model and send a valid JWT with every request (see above)
    baseline: Optional[str] = None  # report Cephalo's rps and CPU against this scenario's
    redis: bool = False  # start a redis-server and pass --redis to the control plane (see above)
    pending: Optional[str] = None
    mode: str = "throughput"  # how bench.py measures it (its MODES)
    connections: int = 0  # ws-idle: how many websockets to hold open
    access_log: bool = False  # the data plane writes its access log to a file in the run's dir (--access-log PATH)


def numbered(n: int) -> Callable[[], List[str]]:
    return lambda: ["/r%05d" % i for i in range(n)]


def never_limited(backend: str) -> Dict[str, object]:
    """Route fields: authenticated, and one rate limit per user so high that it never refuses (a million per second,
    as many at once: T = 1 us, far beyond what one data plane serves): every request pays for the decision, none is
    refused. on_error closed, so a redis that fails shows up as errors (503) in the table instead of as a fast path.
    Not the schema's maximum of 1e9/s: T would be 1 ns, below the redis script's microsecond clock."""
    limit = {"name": "never", "key": "principal", "rate": 1000000, "period_s": 1, "burst": 1000000,
             "backend": backend, "on_error": "closed"}
    return {"default_access": "authenticated", "policies": {"rate_limits": [limit]}}


SCENARIOS = [
    Scenario("bare", "1 route, no policy: the cost of the proxy itself"),
    Scenario(
        "routes10k",
        "10k routes in the snapshot, requests to the last one created",
        routes=numbered(10000),
        path="/r09999/hello",
    ),
    Scenario(
        "policy",
        "1 route, default_access authenticated + an endpoint rule requiring a role; every request carries a JWT",
        route_extra={"default_access": "authenticated"},
        identity=True,
        baseline="bare",
    ),
    Scenario(
        "ws-idle",
        "5k idle websockets through the data plane to a websocket echo origin: data plane RSS per connection",
        mode="ws-idle",
        connections=5000,
        route_extra={"default_access": "public", "policies": {"websocket": {"idle_timeout_ms": 3600000}}},
    ),
    Scenario(
        "policy-stack",
        "JWT verify + authz + a local rate limit per user that never refuses + metrics (always on) + the access log "
        "to a file (every request, sample 1)",
        route_extra=never_limited("local"),
        identity=True,
        access_log=True,
        baseline="bare",
    ),
    Scenario(
        "redis-limit",
        "as policy-stack, the rate limit in redis (a local redis-server, one EVALSHA per request on each data "
        "plane worker's own redis connection; redis-server's own CPU is not in the cephalo column); access log to a file as there",
        route_extra=never_limited("redis"),
        identity=True,
        access_log=True,
        redis=True,
        baseline="bare",
    ),
    Scenario(
        "h2flood",
        "HTTP/2 rapid reset (CVE-2023-44487): a well-behaved h2c client at a fixed rate, alone, while 4 processes "
        "flood HEADERS+RST_STREAM at the same data plane (bench/h2flood.py), and while 4 processes only burn CPU; its "
        "p50/p99 each way, the attackers' connections, streams and GOAWAYs, and the upstream requests they caused "
        "(goal: p99 under the flood no worse than under the same CPU theft, 0 upstream requests)",
        mode="h2flood",
    ),
    Scenario(
        "pdf",
        "a route of kind pdf: 24 clients posting a one-page HTML document back to back, more than the render slots "
        "(--pdf-workers, default the CPUs) plus the queue (16) hold; PDFs/s (goal >= 3 on 2 cores), latency, the "
        "overflow's 503s and the peak number of wkhtmltopdf children (never above --pdf-workers)",
        mode="pdf",
        connections=24,
        path="/bench",
        route_extra={"default_access": "public", "kind": "pdf", "pdf": {"timeout_ms": 60000}},
    ),
]
