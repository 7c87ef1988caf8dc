"""The benchmark scenarios, as data: adding one is one entry in SCENARIOS.

Every scenario gives the route prefixes every proxy is configured with (Cephalo routes, nginx `location`s, haproxy
path_beg patterns), the one path the load generators request, and optionally the Cephalo route fields it needs.
A scenario whose feature does not exist yet carries `pending` (why): it is listed in the output and never run, so
nothing is faked.
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
    route_extra: Dict[str, object] = field(default_factory=dict)  # more Cephalo route fields (filters, later)
    pending: Optional[str] = None


def numbered(n: int) -> Callable[[], List[str]]:
    return lambda: ["/r%05d" % i for i in range(n)]


SCENARIOS = [
    Scenario("bare", "1 route, no policy: the cost of the proxy itself"),
    Scenario(
        "routes10k",
        "10k routes in the snapshot, requests to the last one created",
        routes=numbered(10000),
        path="/r09999/hello",
    ),
    Scenario("ws-idle", "5k idle websockets, RSS per connection", pending="not yet: websockets land in issue 6"),
    Scenario(
        "policy-stack",
        "JWT verify + authz + local rate limit + metrics + access log",
        pending="pending: those filters do not exist yet (dataplane/filter/ has router, sanitize and proxy only)",
    ),
]
