#!/usr/bin/python3
"""A stand-in for HashiCorp Vault, for the Cephalo tests (stdlib only).

Vault cannot be installed on the test machine, so this server speaks the documented wire format of exactly the
endpoints the control plane uses, the way Vault answers them:

  GET  /v1/auth/token/lookup-self        -> {"data": {accessor, creation_time, creation_ttl, display_name, entity_id,
                                             expire_time, explicit_max_ttl, id, issue_time, meta, num_uses, orphan,
                                             path, policies, renewable, ttl, type}, ...envelope}
  POST /v1/auth/token/renew-self         -> {"auth": {client_token, accessor, policies, token_policies, metadata,
                                             lease_duration, renewable, entity_id, token_type, orphan, ...}, ...}
  POST /v1/auth/approle/login            -> the same "auth" object for a new token
  GET  /v1/<mount>/data/<path>           -> {"data": {"data": {...}, "metadata": {created_time, custom_metadata,
                                             deletion_time, destroyed, version}}, ...}; a deleted current version is
                                             a 404 carrying that envelope with "data": null
  POST /v1/<mount>/data/<path>           -> writes a version ({"data": {...}}), answers its metadata
  GET  /v1/<mount>/metadata/<path>       -> {"data": {cas_required, created_time, current_version, custom_metadata,
                                             delete_version_after, max_versions, oldest_version, updated_time,
                                             versions: {"1": {created_time, deletion_time, destroyed}}}}
  LIST /v1/<mount>/metadata/<prefix>     -> {"data": {"keys": [...]}} (also GET with ?list=true)

Every answer carries the envelope request_id, lease_id, renewable, lease_duration, data, wrap_info, warnings, auth.
Errors are {"errors": [...]} with Vault's statuses: 400, 403 {"errors":["permission denied"]}, 404 {"errors":[]},
405, 503 {"errors":["Vault is sealed"]}.

Tests steer it through a separate control port (POST JSON, answers JSON): /seal, /unseal, /fail {"status", "errors"?,
"match"?} ({"status": 0} clears), /hang {"on": bool} (accept and never answer), /put {"path", "data"} (a new version),
/delete {"path"} (soft-deletes the current version), /revoke (every token issued by login or /token), /token {"token",
"ttl", "renewable", "max_ttl"?}, /approle {"ttl", "max_ttl", "renewable"}, GET /requests (what was asked, never token
values), GET /state, POST /requests/clear. Prints "READY <port> <control-port>" when listening (common.py).
"""
import json
import math
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit, parse_qs

import common

PATH_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def rfc3339(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class State(common.StandIn):
    def __init__(self, args):
        super().__init__()
        self.mount = args.mount
        self.sealed = False
        self.fail = None  # {"status", "errors", "match"}
        self.hang = threading.Event()
        self.unhang = threading.Event()
        self.secrets = {}  # path -> {"versions": [{"data", "created", "deleted", "destroyed"}], "created", "updated"}
        self.tokens = {}  # token -> {"ttl", "max_ttl", "renewable", "issued", "renewed", "accessor", "policies"}
        self.role_id = args.role_id
        self.secret_id = args.secret_id
        self.approle = {"ttl": args.approle_ttl, "max_ttl": args.approle_max_ttl, "renewable": True}
        if args.root_token:
            self.add_token(args.root_token, 0, False, 0, ["root"])

    def add_token(self, token, ttl, renewable, max_ttl, policies):
        now = time.time()
        self.tokens[token] = {"ttl": ttl, "max_ttl": max_ttl, "renewable": renewable, "issued": now, "renewed": now,
                              "accessor": uuid.uuid4().hex[:24], "policies": policies}

    def ttl_left(self, tok):
        if tok["ttl"] == 0:
            return 0
        return max(0, int(math.ceil(tok["renewed"] + tok["ttl"] - time.time())))

    def valid(self, token):
        tok = self.tokens.get(token)
        if tok is None:
            return None
        if tok["ttl"] != 0 and time.time() >= tok["renewed"] + tok["ttl"]:
            return None
        return tok

    def put(self, path, data):
        now = time.time()
        s = self.secrets.setdefault(path, {"versions": [], "created": now, "updated": now})
        s["versions"].append({"data": dict(data), "created": now, "deleted": None, "destroyed": False})
        s["updated"] = now
        return len(s["versions"])

    # ---- the control port

    def view(self, path):
        if path == "/state":
            with self.cond:
                return {"sealed": self.sealed, "tokens": len(self.tokens), "hang": self.hang.is_set(),
                        "secrets": {p: len(s["versions"]) for p, s in self.secrets.items()}}
        return super().view(path)

    def control(self, p, req):
        with self.cond:
            if p == "/seal":
                self.sealed = True
            elif p == "/unseal":
                self.sealed = False
            elif p == "/fail":
                self.fail = req if req.get("status") else None
            elif p == "/hang":
                if req.get("on", True):
                    self.unhang.clear()
                    self.hang.set()
                else:
                    self.hang.clear()
                    self.unhang.set()
            elif p == "/put":
                return {"version": self.put(req["path"], req["data"])}
            elif p == "/delete":
                s = self.secrets[req["path"]]
                s["versions"][-1]["deleted"] = time.time()
                s["updated"] = time.time()
            elif p == "/revoke":
                self.tokens = {t: v for t, v in self.tokens.items() if "root" in v["policies"] and not req.get("all")}
            elif p == "/token":
                self.add_token(req["token"], req.get("ttl", 0), req.get("renewable", False), req.get("max_ttl", 0),
                               req.get("policies", ["default"]))
            elif p == "/approle":
                self.approle.update({k: req[k] for k in ("ttl", "max_ttl", "renewable") if k in req})
            else:
                return super().control(p, req)
            return {"ok": True}


def envelope(data=None, auth=None):
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0, "data": data,
            "wrap_info": None, "warnings": None, "auth": auth}


class VaultHandler(common.Handler):
    server_version = "stand-in"
    sys_version = ""

    def send_json(self, status, doc):
        self.send_body(status, json.dumps(doc).encode(), "application/json", [("Cache-Control", "no-store")])

    def errors(self, status, *msgs):
        self.send_json(status, {"errors": list(msgs)})

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("POST")

    def do_LIST(self):
        self.route("LIST")

    def route(self, method):
        url = urlsplit(self.path)
        if method == "GET" and parse_qs(url.query).get("list") == ["true"]:
            method = "LIST"
        path = url.path
        st = self.st
        token = self.headers.get("X-Vault-Token", "")
        with st.cond:
            st.requests.append({"method": method, "path": path, "has_token": bool(token), "at": time.time()})
            fail = st.fail
            sealed = st.sealed
        if st.hang.is_set():
            st.unhang.wait(120)
            self.close_connection = True
            return
        if not path.startswith("/v1/"):
            return self.errors(404)
        if sealed and not path.startswith("/v1/sys/"):
            return self.errors(503, "Vault is sealed")
        if fail is not None and (not fail.get("match") or fail["match"] in path):
            if "raw" in fail:
                self.send_body(fail["status"], fail["raw"].encode(), None)
                return
            return self.errors(fail["status"], *fail.get("errors", []))
        api = path[len("/v1/"):]
        try:
            req = self.read_json() if method == "POST" else {}
        except ValueError:
            return self.errors(400, "failed to parse JSON input")
        if api == "auth/approle/login" and method == "POST":
            return self.login(req)
        if api == "sys/health":
            return self.send_json(503 if sealed else 200, {"initialized": True, "sealed": sealed, "standby": False})
        with st.cond:
            tok = st.valid(token)
        if tok is None:
            return self.errors(403, "permission denied")
        if api == "auth/token/lookup-self" and method == "GET":
            return self.lookup(token, tok)
        if api == "auth/token/renew-self" and method == "POST":
            return self.renew(token, tok)
        prefix = st.mount + "/"
        if not api.startswith(prefix):
            return self.errors(403, "permission denied")
        rest = api[len(prefix):]
        kind, _, spath = rest.partition("/")
        if kind == "data" and method == "GET":
            return self.read(spath)
        if kind == "data" and method == "POST":
            return self.write(spath, req)
        if kind == "metadata" and method == "GET":
            return self.metadata(spath)
        if kind == "metadata" and method == "LIST":
            return self.list(spath)
        return self.errors(405, "1 error occurred:\n\t* unsupported operation\n\n")

    # ---- auth

    def auth_obj(self, token, tok, metadata=None):
        return {"client_token": token, "accessor": tok["accessor"], "policies": tok["policies"],
                "token_policies": tok["policies"], "metadata": metadata, "lease_duration": self.st.ttl_left(tok),
                "renewable": tok["renewable"], "entity_id": "", "token_type": "service", "orphan": True,
                "mfa_requirement": None, "num_uses": 0}

    def login(self, req):
        st = self.st
        if not isinstance(req, dict) or not req.get("role_id"):
            return self.errors(400, "missing role_id")
        with st.cond:
            if req.get("role_id") != st.role_id or req.get("secret_id") != st.secret_id:
                return self.errors(400, "invalid role or secret ID")
            token = "hvs." + uuid.uuid4().hex + uuid.uuid4().hex[:8]
            cfg = st.approle
            st.add_token(token, cfg["ttl"], cfg["renewable"], cfg["max_ttl"], ["default", "cephalo"])
            tok = st.tokens[token]
            doc = envelope(auth=self.auth_obj(token, tok, {"role_name": "cephalo"}))
        self.send_json(200, doc)

    def lookup(self, token, tok):
        st = self.st
        with st.cond:
            ttl = st.ttl_left(tok)
            data = {"accessor": tok["accessor"], "creation_time": int(tok["issued"]), "creation_ttl": tok["ttl"],
                    "display_name": "token", "entity_id": "",
                    "expire_time": rfc3339(tok["renewed"] + tok["ttl"]) if tok["ttl"] else None,
                    "explicit_max_ttl": tok["max_ttl"], "id": token, "issue_time": rfc3339(tok["issued"]),
                    "meta": None, "num_uses": 0, "orphan": True, "path": "auth/token/create",
                    "policies": tok["policies"], "renewable": tok["renewable"], "ttl": ttl, "type": "service"}
        self.send_json(200, envelope(data=data))

    def renew(self, token, tok):
        st = self.st
        with st.cond:
            if not tok["renewable"]:
                return self.errors(400, "lease is not renewable")
            now = time.time()
            if tok["max_ttl"]:
                # renewal never extends the token past issued + max_ttl
                left = int(tok["issued"] + tok["max_ttl"] - now)
                tok["renewed"] = now - max(0, tok["ttl"] - left) if left < tok["ttl"] else now
            else:
                tok["renewed"] = now
            doc = envelope(auth=self.auth_obj(token, tok))
        self.send_json(200, doc)

    # ---- kv v2

    def read(self, path):
        st = self.st
        with st.cond:
            s = st.secrets.get(path)
            if s is None or not s["versions"]:
                return self.errors(404)
            v = s["versions"][-1]
            meta = {"created_time": rfc3339(v["created"]), "custom_metadata": None,
                    "deletion_time": rfc3339(v["deleted"]) if v["deleted"] else "", "destroyed": v["destroyed"],
                    "version": len(s["versions"])}
            gone = v["deleted"] is not None or v["destroyed"]
            doc = envelope(data={"data": None if gone else dict(v["data"]), "metadata": meta})
        self.send_json(404 if gone else 200, doc)

    def write(self, path, req):
        st = self.st
        if not PATH_RE.match(path) or not isinstance(req.get("data"), dict):
            return self.errors(400, "no data provided")
        with st.cond:
            n = st.put(path, req["data"])
            v = st.secrets[path]["versions"][-1]
            meta = {"created_time": rfc3339(v["created"]), "custom_metadata": None, "deletion_time": "",
                    "destroyed": False, "version": n}
        self.send_json(200, envelope(data=meta))

    def metadata(self, path):
        st = self.st
        with st.cond:
            s = st.secrets.get(path)
            if s is None:
                return self.errors(404)
            versions = {str(i + 1): {"created_time": rfc3339(v["created"]),
                                     "deletion_time": rfc3339(v["deleted"]) if v["deleted"] else "",
                                     "destroyed": v["destroyed"]} for i, v in enumerate(s["versions"])}
            data = {"cas_required": False, "created_time": rfc3339(s["created"]),
                    "current_version": len(s["versions"]), "custom_metadata": None, "delete_version_after": "0s",
                    "max_versions": 0, "oldest_version": 0, "updated_time": rfc3339(s["updated"]),
                    "versions": versions}
        self.send_json(200, envelope(data=data))

    def list(self, prefix):
        st = self.st
        prefix = prefix.rstrip("/")
        base = prefix + "/" if prefix else ""
        keys = set()
        with st.cond:
            for p in st.secrets:
                if p.startswith(base):
                    rest = p[len(base):]
                    head, sep, _ = rest.partition("/")
                    keys.add(head + "/" if sep else head)
        if not keys:
            return self.errors(404)
        self.send_json(200, envelope(data={"keys": sorted(keys)}))


def add_args(ap):
    ap.add_argument("--mount", default="secret")
    ap.add_argument("--root-token", default="")
    ap.add_argument("--role-id", default="")
    ap.add_argument("--secret-id", default="")
    ap.add_argument("--approle-ttl", type=int, default=3600)
    ap.add_argument("--approle-max-ttl", type=int, default=0)


if __name__ == "__main__":
    common.run(__doc__.splitlines()[0], State, VaultHandler, add_args, quiet=True)
