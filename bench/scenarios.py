"""The benchmark scenarios, as data: adding one is one entry in SCENARIOS.

Every scenario gives the route prefixes every proxy is configured with (Cephalo routes, nginx `location`s, haproxy
path_beg patterns), the one path the load generators request, and optionally the Cephalo route fields it needs.
Routes are public unless a scenario says otherwise (a Cephalo route defaults to default_access "authenticated").
A scenario with `identity` makes bench.py seed a system "bench" with a role "caller", a user holding it and an endpoint
rule GET /bench/* requiring it; every client (wrk, h2load, against every proxy alike) then sends the user's JWT,
obtained by logging in through the data plane. `baseline` names a scenario whose Cephalo numbers are reported next
to this one's (ratio of the medians), when both ran.
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
    route_extra: Dict[str, object] = field(default_factory=lambda: {"default_access": "public"})  # more route fields
    identity: bool = False  # seed the identity model and send a valid JWT with every request (see above)
    baseline: Optional[str] = None  # report Cephalo's rps and CPU against this scenario's
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
    Scenario(
        "policy",
        "1 route, default_access authenticated + an endpoint rule requiring a role; every request carries a JWT",
        route_extra={"default_access": "authenticated"},
        identity=True,
        baseline="bare",
    ),
    Scenario("ws-idle", "5k idle websockets, RSS per connection", pending="not yet: websockets land in issue 6"),
    Scenario(
        "policy-stack",
        "JWT verify + authz + local rate limit + metrics + access log",
        pending="pending: the rate limit and access log filters do not exist yet (JWT + authz alone: scenario policy)",
    ),
]
