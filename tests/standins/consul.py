#!/usr/bin/python3
"""A stand-in for HashiCorp Consul's HTTP API, for the Cephalo tests (stdlib only).

Consul cannot be installed on the test machine, so this server speaks the documented wire format of exactly the
endpoints the control plane uses, the way a Consul agent answers them:

  GET /v1/health/service/<service>?passing&tag=&dc=&index=&wait=
      -> 200, a JSON array of {"Node": {ID, Node, Address, Datacenter, TaggedAddresses, Meta, CreateIndex,
         ModifyIndex}, "Service": {ID, Service, Tags, Address, TaggedAddresses?, Meta, Port, Weights{Passing, Warning},
         EnableTagOverride, Proxy, Connect, PeerName, CreateIndex, ModifyIndex}, "Checks": [serfHealth, the service's
         check]}; an unknown service is "[]". `passing` keeps the instances whose every check is passing, every `tag`
         must be among the instance's tags, a `dc` other than ours is 500 "No path to datacenter".
      Blocking queries: with index=N > 0 the answer waits until the service's index moves past N or `wait` (Go
      duration, default 5m, at most 10m) plus a jitter of up to wait/16 has passed. Headers: X-Consul-Index,
      X-Consul-Knownleader, X-Consul-Lastcontact, X-Consul-Effective-Consistency, X-Consul-Default-Acl-Policy (Go's
      canonical spelling, as a real agent sends them).
  GET /v1/status/leader -> "127.0.0.1:8300"

Errors are plain text, as Consul writes them: 400 "Invalid wait time" / "Invalid index", 403 "ACL not found" (an
unknown X-Consul-Token when --acl-token is set; no token at all gets the ACL-filtered empty answer of a default-deny
agent, with X-Consul-Results-Filtered-By-Acls), 404 for other paths, 405 for other methods, and whatever /fail sets.

Tests steer it through a separate control port (POST JSON, answers JSON):
  /register {"service", "id", "address", "port", "node"?, "node_address"?, "tags"?, "weights"?, "status"?}
  /deregister {"service", "id"}        /status {"service", "id", "status": passing|warning|critical}
  /touch {"service"}                   an idempotent write: the index moves, the answer does not change
  /reset {"index"}                     every index goes back to `index` (a snapshot restore): blocked queries wake
  /zero {"on": bool}                   answer X-Consul-Index: 0 (the bug the Blocking Queries page warns about)
  /fail {"status", "body"?}            answer every API call so ({"status": 0} clears)
  /hang {"on": bool}                   accept and never answer (held until cleared, then the connection is closed)
  /acl {"token": str|null}             the token the API requires (null: ACLs off)
  /down, /up                           stop / start listening on the API port (connections refused meanwhile)
  GET /requests                        [{"method", "path", "query", "index", "wait", "token_ok", "status"}]
  POST /requests/clear                 GET /state: the services and their indexes
Prints "READY <port> <control-port>" when listening (common.py).
"""
import json
import random
import re
import socket
import time
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

import common

WAIT_DEFAULT_S = 300.0
WAIT_MAX_S = 600.0
DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_wait(text):
    """Go's time.ParseDuration for the single-unit forms Consul clients send ("10s", "5m", "250ms"); None if bad."""
    m = DURATION_RE.match(text)
    if not m:
        return None
    return float(m.group(1)) * UNITS[m.group(2)]


OPERATIONS = ("/register", "/deregister", "/status", "/touch", "/reset", "/zero", "/fail", "/hang", "/acl")


class State(common.StandIn):
    def __init__(self, args):
        super().__init__()
        self.dc = args.datacenter
        self.index = 10  # the raft index: every write takes the next one
        self.services = {}  # name -> {"index": int, "instances": {id: instance}}
        self.acl_token = args.acl_token or None
        self.fail = None  # (status, body)
        self.hang = False
        self.zero = False
        self.generation = 0  # bumped by /reset and /down: blocked queries give up

    def bump(self, name):
        self.index += 1
        svc = self.services.setdefault(name, {"index": 0, "instances": {}})
        svc["index"] = self.index
        return svc

    def service_index(self, name):
        svc = self.services.get(name)
        return svc["index"] if svc else 1  # Consul answers an unknown service with a non-zero index too

    def on_api_down(self):
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    # ---- the control port

    def view(self, path):
        if path == "/state":
            return self.copy({"index": self.index, "services": self.services})
        return super().view(path)

    def control(self, p, req):
        if p == "/down":  # not under the lock: stopping the listener waits for its loop
            self.api.down()
            return {"ok": True}
        if p == "/up":
            self.api.up()
            return {"ok": True}
        if p not in OPERATIONS:
            return super().control(p, req)
        with self.cond:
            try:
                self.apply(p, req)
                return {"index": self.index}
            finally:
                self.cond.notify_all()

    def apply(self, p, req):
        if p == "/register":
            name = req["service"]
            svc = self.bump(name)
            old = svc["instances"].get(req["id"])
            inst = {
                "id": req["id"], "address": req.get("address", ""), "port": int(req["port"]),
                "node": req.get("node", "node-1"), "node_address": req.get("node_address", "127.0.0.1"),
                "tags": list(req.get("tags", [])), "weights": req.get("weights", {"Passing": 1, "Warning": 1}),
                "status": req.get("status", "passing"), "node_id": str(uuid.uuid5(uuid.NAMESPACE_DNS,
                                                                                  req.get("node", "node-1"))),
                "create_index": old["create_index"] if old else self.index, "modify_index": self.index,
            }
            svc["instances"][req["id"]] = inst
        elif p == "/deregister":
            svc = self.bump(req["service"])
            svc["instances"].pop(req["id"], None)
        elif p == "/status":
            svc = self.bump(req["service"])
            inst = svc["instances"][req["id"]]
            inst["status"], inst["modify_index"] = req["status"], self.index
        elif p == "/touch":
            self.bump(req["service"])
        elif p == "/reset":
            self.index = int(req["index"])
            for svc in self.services.values():
                svc["index"] = self.index
            self.generation += 1
        elif p == "/zero":
            self.zero = bool(req["on"])
        elif p == "/fail":
            self.fail = (int(req["status"]), req.get("body", "")) if req.get("status") else None
        elif p == "/hang":
            self.hang = bool(req["on"])
        elif p == "/acl":
            self.acl_token = req.get("token") or None


def entry(st, name, inst, svc_index):
    node = inst["node"]
    addr = inst["node_address"]
    service = {
        "ID": inst["id"], "Service": name, "Tags": inst["tags"], "Address": inst["address"], "Meta": {},
        "Port": inst["port"], "Weights": inst["weights"], "EnableTagOverride": False,
        "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}}, "Connect": {}, "PeerName": "",
        "CreateIndex": inst["create_index"], "ModifyIndex": inst["modify_index"],
    }
    if inst["address"]:
        family = "ipv6" if ":" in inst["address"] else "ipv4"
        service["TaggedAddresses"] = {f"lan_{family}": {"Address": inst["address"], "Port": inst["port"]},
                                      f"wan_{family}": {"Address": inst["address"], "Port": inst["port"]}}
    check = {"Node": node, "CheckID": f"service:{inst['id']}", "Name": f"Service '{name}' check",
             "Status": inst["status"], "Notes": "", "Output": "HTTP GET http://%s:%d/health: 200 OK"
             % (inst["address"] or addr, inst["port"]) if inst["status"] == "passing" else "connection refused",
             "ServiceID": inst["id"], "ServiceName": name, "ServiceTags": inst["tags"], "Type": "http",
             "Interval": "10s", "Timeout": "1s", "ExposedPort": 0, "Definition": {},
             "CreateIndex": inst["create_index"], "ModifyIndex": inst["modify_index"]}
    serf = {"Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing", "Notes": "",
            "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": "", "ServiceTags": [], "Type": "",
            "Interval": "", "Timeout": "", "ExposedPort": 0, "Definition": {}, "CreateIndex": 5, "ModifyIndex": 5}
    return {
        "Node": {"ID": inst["node_id"], "Node": node, "Address": addr, "Datacenter": st.dc,
                 "TaggedAddresses": {"lan": addr, "lan_ipv4": addr, "wan": addr, "wan_ipv4": addr},
                 "Meta": {"consul-network-segment": ""}, "CreateIndex": 5, "ModifyIndex": 5},
        "Service": service,
        "Checks": [serf, check],
    }


class ApiHandler(common.Handler):
    server_version = "Consul-standin"

    def send_text(self, status, text):
        return self.send_body(status, text.encode(), "text/plain; charset=utf-8",
                              [("X-Content-Type-Options", "nosniff")])

    def send_json(self, doc, index, extra=()):
        headers = [("Vary", "Accept-Encoding"),
                   ("X-Consul-Default-Acl-Policy", "deny" if self.st.acl_token else "allow"),
                   ("X-Consul-Effective-Consistency", "leader"), ("X-Consul-Index", str(index)),
                   ("X-Consul-Knownleader", "true"), ("X-Consul-Lastcontact", "0")] + list(extra)
        return self.send_body(200, json.dumps(doc, separators=(",", ":")).encode(), "application/json", headers)

    def token(self):
        tok = self.headers.get("X-Consul-Token")
        if tok is None:
            auth = self.headers.get("Authorization") or ""
            if auth.startswith("Bearer "):
                tok = auth[7:]
        return tok

    def handle_any(self):
        st = self.st
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        rec = {"method": self.command, "path": url.path, "query": url.query, "index": None, "wait": None,
               "token_ok": None, "status": None, "at": time.time()}
        with st.cond:
            st.requests.append(rec)
            hang = st.hang
        if hang:
            self.hold()
            return
        rec["status"] = self.route(url, query, rec)

    def hold(self):
        st = self.st
        with st.cond:
            while st.hang and not self.server.closing:
                st.cond.wait(0.2)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def route(self, url, query, rec):
        st = self.st
        with st.cond:
            fail = st.fail
            acl = st.acl_token
        if self.command not in ("GET", "HEAD"):
            return self.send_text(405, f"method {self.command} not allowed")
        if fail is not None:
            return self.send_text(fail[0], fail[1])
        tok = self.token()
        rec["token_ok"] = acl is None or tok == acl
        if acl is not None and tok is not None and tok != acl:
            return self.send_text(403, "ACL not found")
        if url.path == "/v1/status/leader":
            return self.send_json("127.0.0.1:8300", st.index)
        prefix = "/v1/health/service/"
        if not url.path.startswith(prefix) or len(url.path) == len(prefix):
            return self.send_text(404, "404 page not found\n")
        name = unquote(url.path[len(prefix):])
        if "dc" in query and query["dc"][-1] not in ("", st.dc):
            return self.send_text(500, "No path to datacenter")
        return self.health(name, query, rec, filtered=acl is not None and tok is None)

    def health(self, name, query, rec, filtered):
        st = self.st
        wait = WAIT_DEFAULT_S
        if "wait" in query:
            wait = parse_wait(query["wait"][-1])
            if wait is None:
                return self.send_text(400, "Invalid wait time")
            wait = min(wait, WAIT_MAX_S)
        index = 0
        if "index" in query:
            try:
                index = int(query["index"][-1])
                if index < 0:
                    raise ValueError
            except ValueError:
                return self.send_text(400, "Invalid index")
        rec["index"], rec["wait"] = index, query.get("wait", [None])[-1]
        deadline = time.monotonic() + wait + random.uniform(0, wait / 16)
        with st.cond:
            gen = st.generation
            while index > 0 and st.service_index(name) <= index and st.generation == gen and not st.hang:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                st.cond.wait(min(left, 0.5))
            if st.hang or self.server.closing:
                hang = True
            else:
                hang = False
                idx = 0 if st.zero else st.service_index(name)
                svc = st.services.get(name)
                out = []
                if svc and not filtered:
                    for inst in sorted(svc["instances"].values(), key=lambda i: (i["node"], i["id"])):
                        if "passing" in query and query["passing"][-1].lower() not in ("0", "false") \
                                and inst["status"] != "passing":
                            continue
                        if not all(t in inst["tags"] for t in query.get("tag", [])):
                            continue
                        out.append(entry(st, name, inst, svc["index"]))
        if hang:
            self.hold()
            return None
        extra = [("X-Consul-Results-Filtered-By-Acls", "true")] if filtered else []
        return self.send_json(out, idx, extra)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_any


def add_args(ap):
    ap.add_argument("--datacenter", default="dc1")
    ap.add_argument("--acl-token", default="")


if __name__ == "__main__":
    common.run(__doc__.splitlines()[0], State, ApiHandler, add_args)
