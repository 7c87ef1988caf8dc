"""Cephalo benchmark harness: Cephalo against nginx proxy_pass and haproxy, interleaved, on loopback.

Started by `bash bench/run` (which installs the tools and builds the release binaries first). For every scenario
(bench/scenarios.py) it starts, in a fresh temp dir and on free loopback ports: an nginx origin (~100-byte body),
nginx as a proxy (upstream keep-alive), haproxy 2.6 (http-reuse always) and Cephalo (control plane + data plane),
all with the same worker count. Then it runs rounds A B C A B C ... : wrk (HTTP/1.1, -t2 -c64), h2load over h2c
(prior knowledge, -c32 -m10) and h2load over TLS h2, and records per run the requests per second, p50/p99 latency
and the CPU seconds each proxy (its whole process tree, from /proc/<pid>/stat) spent per 100k requests. The table
shows medians with min-max over the rounds and ratios against nginx and haproxy; raw outputs go to
bench/results/<timestamp>/.

A scenario of another mode (bench/scenarios.py `mode`, bench.py MODES) is measured its own way: "ws-idle" starts only
Cephalo and tests/upstream/ws_echo.py, holds N idle websockets open through the data plane (--ws-connections, plain
or --ws-tls) and reports the data plane's RSS growth per connection.

--callgrind instead runs the data plane (1 worker) under callgrind for a fixed number of requests after a warm-up
and reports instructions per request: deterministic, unlike everything timed.

Every process started here is in its own process group and is killed on exit, error, Ctrl-C or SIGTERM.
Python standard library only.
"""

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from scenarios import SCENARIOS
import h2flood  # noqa: E402  (the "h2flood" mode and its attacker)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from ports import free_port  # noqa: E402  (the tests' allocator: below the ephemeral range)

BENCH = os.path.join(ROOT, "bench")
BIN = os.path.join(ROOT, "build", "bin")  # --bin-dir changes it
MIGRATIONS = os.path.join(ROOT, "migrations")  # --migrations changes it
HOST = "127.0.0.1"
TOKEN = "bench-" + os.urandom(12).hex()
USER_PASSWORD = "bench-" + os.urandom(12).hex()  # the user an identity scenario logs in as
TOKEN_MAX_AGE_S = 600  # identity scenarios: log in again before a run once the JWT is this old (it lives 900 s)
BODY = "cephalo benchmark origin: a fixed body of about one hundred bytes, served from memory by nginx.\\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Which targets each protocol runs against, in the interleaving order. "direct" is the origin itself (reference).
PROTOCOLS = {
    "h1": ["direct", "nginx", "haproxy", "cephalo"],
    "h2c": ["nginx", "haproxy", "cephalo"],
    "h2tls": ["nginx", "haproxy", "cephalo"],
    # HTTP/1.1 at a fixed rate, half of what nginx sustained in the same round's h1 run: latency under a load every
    # proxy can carry (issue 3's P4: p99 at 50% of nginx's max load). Its rps column is the offered rate.
    "h1half": ["nginx", "haproxy", "cephalo"],
}
HALF_CONNECTIONS = 64  # h2load --rps is per client: the rate is spread over this many keep-alive connections


class BenchError(Exception):
    pass


# ------------------------------------------------------------------------------------------------ processes


class Procs:
    """Every child process, each in its own session; stop_all() kills their whole groups."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, log, env=None):
        out = open(log, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        out.close()
        p.bench_name = name
        p.bench_log = log
        self.procs.append(p)
        return p

    def run(self, argv, timeout, log=None):
        """Run a client to completion (killed at timeout); returns its stdout as text."""
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(p, signal.SIGKILL)
            out, _ = p.communicate()
            raise BenchError("%s timed out after %ss" % (argv[0], timeout))
        except BaseException:  # Ctrl-C or SIGTERM while it runs: it is in its own session, so kill it here
            kill_group(p, signal.SIGKILL)
            p.wait()
            raise
        finally:
            self.procs.remove(p)
        text = out.decode("utf-8", "replace")
        if log:
            with open(log, "w") as f:
                f.write("$ " + " ".join(argv) + "\n" + text)
        if p.returncode != 0:
            raise BenchError("%s exited %d: %s" % (argv[0], p.returncode, text[-500:]))
        return text

    def stop(self, p, timeout=10):
        if p.poll() is None:
            kill_group(p, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_group(p, signal.SIGKILL)
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p, timeout=5)

    def check_alive(self):
        for p in self.procs:
            if p.poll() is not None and hasattr(p, "bench_name"):
                raise BenchError("%s exited with %s (log: %s, copied to bench/results/)" % (
                    p.bench_name, p.returncode, os.path.basename(p.bench_log)))


def kill_group(p, sig):
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass


def on_signal(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


# ------------------------------------------------------------------------------------------------ /proc


def proc_tree(pid):
    """pid and all its descendants (nginx master + workers, haproxy, the data plane's threads are in its own stat)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pid):
    """utime + stime of the process tree rooted at pid, in seconds."""
    total = 0
    for p in proc_tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def rss_kib(pid):
    total = 0
    for p in proc_tree(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


# ------------------------------------------------------------------------------------------------ helpers


def free_ports(n):
    return [free_port() for _ in range(n)]


def render(template, out, values):
    with open(os.path.join(BENCH, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_0-9]+@", text)
    if left:
        raise BenchError("%s: unfilled placeholders %s" % (template, left))
    with open(out, "w") as f:
        f.write(text)
    return out


def make_cert(d):
    """A throwaway self-signed P-256 certificate for the TLS listeners: cert.pem, key.pem, and both in cert-key.pem."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-subj", "/CN=localhost", "-days", "2", "-keyout", d + "/key.pem", "-out", d + "/cert.pem"],
                   check=True, capture_output=True)
    with open(d + "/cert-key.pem", "w") as f:
        f.write(open(d + "/cert.pem").read() + open(d + "/key.pem").read())


def http_get(port, path, timeout=2.0, headers=None):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_until(what, check, procs, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            if check():
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise BenchError("%s not ready after %ss" % (what, timeout))


class Admin:
    """The Cephalo admin API (one keep-alive connection)."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def call(self, method, path, body=None):
        headers = {"Authorization": "Bearer " + TOKEN}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        self.conn.request(method, "/api/v1" + path, body=data, headers=headers)
        r = self.conn.getresponse()
        out = json.loads(r.read() or b"null")
        if r.status // 100 != 2:
            raise BenchError("admin %s %s: %d %s" % (method, path, r.status, out))
        return out


# ------------------------------------------------------------------------------------------------ the stack


class Stack:
    """Origin, nginx proxy, haproxy and Cephalo for one scenario, in one temp dir."""

    def __init__(self, args, scenario, procs, outdir):
        self.args, self.sc, self.procs = args, scenario, procs
        self.dir = tempfile.mkdtemp(prefix="cephalo-bench-")
        self.outdir = outdir
        os.makedirs(os.path.join(self.dir, "tmp"))
        names = ["origin", "nginx_h1", "nginx_h2c", "nginx_tls", "haproxy", "haproxy_tls", "cph", "cph_tls",
                 "cph_status", "cp_admin", "cp_auth", "redis"]
        self.port = dict(zip(names, free_ports(len(names))))
        self.pids = {}
        self.apply = {}
        self.jwt, self.jwt_at = None, 0.0  # identity scenarios: the user's access token and when it was obtained
        # --pin: the proxy under test alone on CPU 0; origin, control plane and load generators on the others
        others = "1" if os.cpu_count() == 2 else "1-%d" % (os.cpu_count() - 1)
        self.pin_proxy = ["taskset", "-c", "0"] if args.pin else []
        self.pin_other = ["taskset", "-c", others] if args.pin else []

    def keep_logs(self, dest):
        """Configs and logs into the results dir (also after a failure: the temp dir is removed)."""
        for name in ("origin.conf", "nginx-proxy.conf", "haproxy.cfg", "origin.log", "nginx.log", "haproxy.log",
                     "cp.log", "dp.log", "nginx-proxy-error.log", "origin-error.log", "redis.log"):
            if os.path.exists(os.path.join(self.dir, name)):
                shutil.copy(os.path.join(self.dir, name), dest)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def endpoints(self, proto, target):
        p, path = self.port, self.sc.path
        table = {
            ("h1", "direct"): "http://%s:%d%s" % (HOST, p["origin"], path),
            ("h1", "nginx"): "http://%s:%d%s" % (HOST, p["nginx_h1"], path),
            ("h1", "haproxy"): "http://%s:%d%s" % (HOST, p["haproxy"], path),
            ("h1", "cephalo"): "http://%s:%d%s" % (HOST, p["cph"], path),
            ("h2c", "nginx"): "http://%s:%d%s" % (HOST, p["nginx_h2c"], path),
            ("h2c", "haproxy"): "http://%s:%d%s" % (HOST, p["haproxy"], path),
            ("h2c", "cephalo"): "http://%s:%d%s" % (HOST, p["cph"], path),
            ("h2tls", "nginx"): "https://%s:%d%s" % (HOST, p["nginx_tls"], path),
            ("h2tls", "haproxy"): "https://%s:%d%s" % (HOST, p["haproxy_tls"], path),
            ("h2tls", "cephalo"): "https://%s:%d%s" % (HOST, p["cph_tls"], path),
        }
        return table[("h1" if proto == "h1half" else proto, target)]

    def start(self):
        d, p, w = self.dir, self.port, self.args.workers
        user = "user root;" if os.getuid() == 0 else ""
        make_cert(d)
        routes = self.sc.routes()

        self.start_origin()

        locations = "".join("        location %s { proxy_pass http://origin; }\n" % r for r in routes)
        conf = render("nginx-proxy.conf", d + "/nginx-proxy.conf",
                      dict(WORKERS=w, MASTER="on", USER=user, DIR=d, HOST=HOST, ORIGIN_PORT=p["origin"],
                           H1_PORT=p["nginx_h1"], H2C_PORT=p["nginx_h2c"], TLS_PORT=p["nginx_tls"], LOCATIONS=locations))
        self.pids["nginx"] = self.procs.start("nginx", self.pin_proxy + ["nginx", "-p", d, "-c", conf],
                                             d + "/nginx.log").pid

        with open(d + "/haproxy-routes.lst", "w") as f:
            f.write("".join(r + "\n" for r in routes))
        conf = render("haproxy.cfg", d + "/haproxy.cfg",
                      dict(WORKERS=w, DIR=d, HOST=HOST, ORIGIN_PORT=p["origin"], H1_PORT=p["haproxy"],
                           TLS_PORT=p["haproxy_tls"]))
        self.pids["haproxy"] = self.procs.start("haproxy", self.pin_proxy + ["haproxy", "-db", "-f", conf],
                                               d + "/haproxy.log").pid

        self.start_cephalo(routes)
        for proto, targets in PROTOCOLS.items():
            for t in targets:
                self.verify(proto, t)
        for name, pid in self.pids.items():
            print("  %-8s pid %-7d %s" % (name, pid, " ".join(open("/proc/%d/cmdline" % pid).read().split("\0"))[:110]))

    def start_origin(self):
        """The nginx origin (the "direct" target)."""
        d, user = self.dir, "user root;" if os.getuid() == 0 else ""
        conf = render("nginx-origin.conf", d + "/origin.conf", dict(WORKERS=self.args.origin_workers, USER=user, DIR=d,
                                                                    HOST=HOST, PORT=self.port["origin"], BODY=BODY))
        self.pids["direct"] = self.procs.start("origin", self.pin_other + ["nginx", "-p", d, "-c", conf],
                                             d + "/origin.log").pid

    def start_cephalo(self, routes, dp_wrapper=(), workers=None):
        d, p = self.dir, self.port
        env = dict(os.environ, CEPHALO_ADMIN_TOKEN=TOKEN)
        self.cp = self.procs.start("controlplane", self.pin_other + [BIN + "/cephalo-controlplane", "--data-dir", d + "/cp",
                                                    "--admin-listen", "%s:%d" % (HOST, p["cp_admin"]),
                                                    "--migrations", MIGRATIONS] + self.auth_flags() + self.redis_flags(),
                                   d + "/cp.log", env=env)
        wait_until("control plane", lambda: http_get(p["cp_admin"], "/health")[0] == 200, self.procs)
        argv = self.pin_proxy + list(dp_wrapper) + [
            BIN + "/cephalo-dataplane", "--cp-socket", d + "/cp/run/cp.sock", "--listen", "%s:%d" % (HOST, p["cph"]),
            "--listen-tls", "%s:%d" % (HOST, p["cph_tls"]), "--tls-cert", d + "/cert.pem", "--tls-key",
            d + "/key.pem", "--status-listen", "%s:%d" % (HOST, p["cph_status"]), "--state-dir", d + "/dp",
            "--workers", str(workers or self.args.workers)]
        if self.sc.access_log:
            argv += ["--access-log", d + "/access.log"]
        self.dp = self.procs.start("dataplane", argv, d + "/dp.log")
        self.pids["cephalo"] = self.dp.pid
        admin = Admin(p["cp_admin"])
        wait_until("data plane", lambda: any(x["connected"] for x in admin.call("GET", "/dataplanes")["data"]),
                   self.procs, timeout=60)
        identity = "auth" in admin.call("GET", "/snapshot?body=1")["body"]  # a control plane with the identity model
        if self.sc.identity and not identity:
            raise BenchError("scenario %s needs a control plane with the identity model (%s)" % (self.sc.name, BIN))
        svc = {"name": "origin", "targets": [{"url": "http://%s:%d" % (HOST, p["origin"])}], "timeout_ms": 10000}
        if self.sc.identity:
            svc["system"] = self.seed_identity(admin)
        svc = admin.call("POST", "/services", svc)["service"]
        first = dict(self.sc.route_extra, name="r0", service="origin", paths=[routes[0]])
        if not identity:
            first.pop("default_access", None)  # an older build measured with --bin-dir: every route is public there
        admin.call("POST", "/routes", first)
        if self.sc.identity:
            admin.call("POST", "/endpoints", {"service": "origin", "method": "GET", "path": routes[0] + "/*",
                                              "roles": [{"system": "bench", "name": "caller"}]})
        if len(routes) > 1:
            self.bulk_routes(svc["id"], routes[1:])
        # One write with ?wait=applied: the control plane builds the whole snapshot once, the data plane applies it.
        t0 = time.monotonic()
        out = admin.call("PUT", "/routes/r0?wait=applied", first)
        wall_ms = (time.monotonic() - t0) * 1000
        if not out.get("applied", {}).get("settled") or any(x["status"] != "synced" for x in out["applied"]["dataplanes"]):
            raise BenchError("snapshot not applied: %s" % out)
        snap = admin.call("GET", "/snapshot")
        self.apply = {"routes": len(routes), "version": snap["version"], "put_wait_applied_ms": round(wall_ms, 1),
                      "dp_apply_ms": dp_apply_ms(d + "/cp.log", snap["version"])}
        wait_until("data plane /ready", lambda: http_get(p["cph_status"], "/ready")[0] == 200, self.procs)
        if self.sc.identity:
            self.login()

    def auth_flags(self):
        """The auth API on a free port (its default port may be taken), when this control plane has one; a token that
        lives 900 s (the maximum) for the identity scenarios."""
        out = subprocess.run([BIN + "/cephalo-controlplane", "--help"], capture_output=True, text=True, timeout=30)
        if "--auth-listen" not in out.stdout + out.stderr:
            return []
        flags = ["--auth-listen", "%s:%d" % (HOST, self.port["cp_auth"])]
        return flags + (["--access-ttl-s", "900"] if self.sc.identity else [])

    def redis_flags(self):
        """A scenario with redis: a redis-server of its own (no persistence), started once per stack; the control
        plane's --redis flag pointing at it."""
        if not self.sc.redis:
            return []
        if "redis" not in self.pids:
            if not shutil.which("redis-server"):
                raise BenchError("scenario %s needs redis-server (apt-get install redis-server)" % self.sc.name)
            port = self.port["redis"]
            self.pids["redis"] = self.procs.start("redis", self.pin_other + [
                "redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--daemonize", "no", "--protected-mode", "no"], self.dir + "/redis.log").pid

            def pong():
                with socket.create_connection((HOST, port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            wait_until("redis-server", pong, self.procs)
        return ["--redis", "%s:%d" % (HOST, self.port["redis"])]

    def seed_identity(self, admin):
        """System "bench", role "caller", user "bench" holding it. Returns the system code (for the service)."""
        admin.call("POST", "/systems", {"code": "bench", "name": "Benchmark"})
        admin.call("POST", "/roles", {"system": "bench", "name": "caller"})
        admin.call("POST", "/users", {"username": "bench", "password": USER_PASSWORD, "systems": ["bench"],
                                      "roles": [{"system": "bench", "name": "caller"}]})
        return "bench"

    def login(self):
        """A fresh access token for user "bench", logged in through the data plane."""
        c = http.client.HTTPConnection(HOST, self.port["cph"], timeout=30)
        try:
            c.request("POST", "/auth/login", body=json.dumps({"username": "bench", "password": USER_PASSWORD,
                                                              "system": "bench"}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            out = r.read()
        finally:
            c.close()
        if r.status != 200:
            raise BenchError("login through the data plane: %d %s" % (r.status, out[:200]))
        self.jwt, self.jwt_at = json.loads(out)["access_token"], time.monotonic()

    def auth_headers(self):
        """The request headers every client sends in this scenario: {} or the bearer token (renewed when old)."""
        if not self.sc.identity:
            return {}
        # renewed through the data plane while it runs (under --callgrind it is stopped before nginx and haproxy are
        # measured: they ignore the header, and an old token does as well)
        if time.monotonic() - self.jwt_at > TOKEN_MAX_AGE_S and self.dp.poll() is None:
            self.login()
        return {"Authorization": "Bearer " + self.jwt}

    def client_args(self):
        """auth_headers() as wrk / h2load arguments."""
        return [a for k, v in self.auth_headers().items() for a in ("-H", "%s: %s" % (k, v))]

    def bulk_routes(self, service_id, paths):
        """Insert routes straight into the control plane's SQLite store, in one transaction.

        The admin API has no bulk endpoint and every write stores a whole snapshot in the history, so 10k POSTs
        are quadratic (1000 took 3 s and 52 MB here; 10k would take minutes and gigabytes). The next admin write
        (the PUT with ?wait=applied) builds and pushes one snapshot with all of them. Relies on migrations/0001's
        routes table.
        """
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        db = sqlite3.connect(self.dir + "/cp/cephalo.db", timeout=30)
        access = self.sc.route_extra.get("default_access", "public")
        with db:
            if any(c[1] == "default_access" for c in db.execute("PRAGMA table_info(routes)")):  # migrations/0004
                db.executemany("INSERT INTO routes (name, service_id, paths, hosts, methods, strip_prefix, "
                               "default_access, created_at, updated_at) VALUES (?, ?, ?, '[]', '[]', 0, ?, ?, ?)",
                               [("r%d" % (i + 1), service_id, json.dumps([p]), access, now, now)
                                for i, p in enumerate(paths)])
            else:
                db.executemany("INSERT INTO routes (name, service_id, paths, hosts, methods, strip_prefix, created_at, "
                               "updated_at) VALUES (?, ?, ?, '[]', '[]', 0, ?, ?)",
                               [("r%d" % (i + 1), service_id, json.dumps([p]), now, now) for i, p in enumerate(paths)])
        db.close()

    def verify(self, proto, target):
        """One request per endpoint before measuring: the route works and the origin's body comes back."""
        url = self.endpoints(proto, target)
        if proto == "h1half":
            return  # the same endpoints as h1, verified there
        if proto == "h1":
            port = int(url.split(":")[2].split("/")[0])
            status, body = http_get(port, self.sc.path, headers=self.auth_headers())
            if status != 200 or body.decode() != BODY.replace("\\n", "\n"):
                raise BenchError("%s %s: got %d %r" % (proto, target, status, body[:200]))
        else:
            out = self.procs.run(["h2load", "-n", "20", "-c", "2"] + self.client_args() + [url], timeout=20)
            if "20 succeeded" not in out or "20 2xx" not in out or "Application protocol: h2" not in out:
                raise BenchError("%s %s: h2load check failed:\n%s" % (proto, target, out))


def dp_apply_ms(cp_log, version):
    """The apply time the data plane reported in its ack, as the control plane logs it."""
    pat = re.compile(r"applied version %d in (\d+) ms" % version)
    with open(cp_log, errors="replace") as f:
        for line in f:
            m = pat.search(line)
            if m:
                return int(m.group(1))
    return None


# ------------------------------------------------------------------------------------------------ load generators


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def parse_wrk(out):
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1)),
           "p50_ms": to_ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
           "p99_ms": to_ms(re.search(r"\s99%\s+(\S+)", out).group(1)), "errors": 0}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] += sum(int(x) for x in m.groups())
    return res


def parse_h2load(out, logfile):
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
                  r"(\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    res = {"rps": float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1)),
           "requests": int(m.group(3)),  # done; failed, errored, timed out or not 2xx count as errors
           "errors": sum(int(x) for x in m.groups()[4:7]) + sum(int(x) for x in codes.groups()[1:])}
    lat = []
    with open(logfile) as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) >= 3:
                lat.append(int(cols[2]) / 1000.0)
    os.unlink(logfile)  # can be large; the percentiles are kept
    lat.sort()
    if lat:
        res["p50_ms"] = lat[len(lat) // 2]
        res["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return res


def load_cmd(proto, url, duration, logfile, rate=None, extra=()):
    """The load generator's command line; extra: more arguments before the URL (-H headers)."""
    if proto == "h1":
        return ["wrk", "-t2", "-c64", "-d%ds" % duration, "--latency"] + list(extra) + [url]
    if proto == "h1half":
        per_client = max(1, int(rate) // HALF_CONNECTIONS)
        return ["h2load", "--h1", "-t2", "-c%d" % HALF_CONNECTIONS, "--rps=%d" % per_client, "-D", str(duration),
                "--log-file", logfile] + list(extra) + [url]
    return ["h2load", "-t2", "-c32", "-m10", "-D", str(duration), "--log-file", logfile] + list(extra) + [url]


def measure(stack, procs, proto, target, duration, rawfile, rate=None):
    url = stack.endpoints(proto, target)
    logfile = rawfile + ".reqlog"
    pid = stack.pids[target]
    cpu0 = cpu_seconds(pid)
    cmd = load_cmd(proto, url, duration, logfile, rate, stack.client_args())
    out = procs.run(stack.pin_other + cmd, timeout=duration + 60, log=rawfile)
    cpu = cpu_seconds(pid) - cpu0
    res = parse_wrk(out) if proto == "h1" else parse_h2load(out, logfile)
    res["cpu_s"] = cpu
    res["cpu_per_100k"] = cpu / res["requests"] * 100000 if res["requests"] else None
    procs.check_alive()
    return res


# ------------------------------------------------------------------------------------------------ the table


def fmt(values, spec):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, spec)
    return "%s (%s-%s)" % (format(med, spec), format(min(values), spec), format(max(values), spec))


def median_of(results, key):
    vals = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else "-"


def table(all_results, scenarios_info):
    lines = []
    hdr = ("%-10s %-6s %-8s %-24s %-18s %-18s %-20s %-9s %-9s %-9s %-8s %s" %
           ("scenario", "proto", "target", "rps median (min-max)", "p50 ms", "p99 ms", "CPU s/100k req",
            "rps/nginx", "rps/hapx", "cpu/nginx", "errors", "RSS MiB"))
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for sc_name, by_key in all_results.items():
        for proto, targets in PROTOCOLS.items():
            base = {t: by_key.get((proto, t), []) for t in targets}
            ng_rps, hx_rps = median_of(base.get("nginx", []), "rps"), median_of(base.get("haproxy", []), "rps")
            ng_cpu = median_of(base.get("nginx", []), "cpu_per_100k")
            for t in targets:
                rs = base[t]
                if not rs:
                    continue
                rps, cpu = median_of(rs, "rps"), median_of(rs, "cpu_per_100k")
                lines.append("%-10s %-6s %-8s %-24s %-18s %-18s %-20s %-9s %-9s %-9s %-8d %s" % (
                    sc_name, proto, t, fmt([r["rps"] for r in rs], ".0f"), fmt([r.get("p50_ms") for r in rs], ".2f"),
                    fmt([r.get("p99_ms") for r in rs], ".2f"), fmt([r["cpu_per_100k"] for r in rs], ".2f"),
                    ratio(rps, ng_rps), ratio(rps, hx_rps), ratio(cpu, ng_cpu), sum(r["errors"] for r in rs),
                    "%.1f" % (rs[-1].get("rss_kib", 0) / 1024)))
        info = scenarios_info.get(sc_name, {})
        lines.extend(info.get("lines", []))
        if info.get("apply"):
            a = info["apply"]
            lines.append("%-10s cephalo snapshot with %d routes: data plane apply %s ms (its ack), PUT ?wait=applied "
                         "%s ms end to end" % (sc_name, a["routes"], a["dp_apply_ms"], a["put_wait_applied_ms"]))
        lines.extend(baseline_lines(sc_name, all_results))
        lines.append("")
    return "\n".join(lines)


def baseline_lines(sc_name, all_results):
    """For a scenario with a baseline that also ran: Cephalo's medians against the baseline's, per protocol."""
    sc = next((s for s in SCENARIOS if s.name == sc_name), None)
    if sc is None or not sc.baseline or sc.baseline not in all_results:
        return []
    parts = []
    for proto in PROTOCOLS:
        mine = all_results[sc_name].get((proto, "cephalo"), [])
        base = all_results[sc.baseline].get((proto, "cephalo"), [])
        if mine and base:
            parts.append("%s rps %s cpu %s" % (
                proto, ratio(median_of(mine, "rps"), median_of(base, "rps")),
                ratio(median_of(mine, "cpu_per_100k"), median_of(base, "cpu_per_100k"))))
    if not parts:
        return []
    return ["%-10s cephalo vs scenario %s (ratio of medians): %s" % (sc_name, sc.baseline, ", ".join(parts))]


# ------------------------------------------------------------------------------------------------ modes


def run_scenario(args, sc, procs, outdir):
    stack = Stack(args, sc, procs, outdir)
    sc_dir = os.path.join(outdir, sc.name)
    os.makedirs(sc_dir)
    results = {}
    try:
        print("== %s: %s (temp dir %s)" % (sc.name, sc.about, stack.dir), flush=True)
        stack.start()
        print("  cephalo apply: %s" % stack.apply, flush=True)
        for proto, targets in PROTOCOLS.items():  # warm-up: keep-alive pools filled, caches hot
            for t in targets:
                if proto == "h1":
                    procs.run(stack.pin_other + load_cmd(proto, stack.endpoints(proto, t), 1, None,
                                                         extra=stack.client_args()), timeout=60)
        for rnd in range(1, args.rounds + 1):
            for proto in args.protocols:
                rate = None
                if proto == "h1half":
                    if ("h1", "nginx") not in results:
                        raise BenchError("h1half needs the h1 run (its rate is half of nginx's h1 rps)")
                    rate = results[("h1", "nginx")][-1]["rps"] / 2
                for t in PROTOCOLS[proto]:
                    raw = os.path.join(sc_dir, "r%d-%s-%s.txt" % (rnd, proto, t))
                    res = measure(stack, procs, proto, t, args.duration, raw, rate)
                    res["rss_kib"] = rss_kib(stack.pids[t])
                    results.setdefault((proto, t), []).append(res)
                    print("  round %d %-5s %-8s %8.0f rps  p50 %6.2f ms  p99 %6.2f ms  cpu %5.2f s/100k  errors %d" % (
                        rnd, proto, t, res["rps"], res.get("p50_ms", 0), res.get("p99_ms", 0),
                        res["cpu_per_100k"] or 0, res["errors"]), flush=True)
        return results, {"apply": stack.apply}
    finally:
        procs.stop_all()
        stack.keep_logs(sc_dir)
        stack.close()



# ------------------------------------------------------------------------------------------------ mode ws-idle

WS_ECHO = os.path.join(ROOT, "tests", "upstream", "ws_echo.py")
WS_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable  # Debian's python3-websockets
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def raise_fd_limit(need):
    """Children inherit it: the data plane holds two sockets per websocket, the origin and this client one each."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, need)) if hard != resource.RLIM_INFINITY else max(soft, need)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        raise BenchError("need %d file descriptors, the hard limit is %d (ulimit -n)" % (need, hard))


async def ws_open(port, path, n, tls=False, parallel=100):
    """n websocket handshakes to HOST:port (plain asyncio streams, no client library: the client side stays small;
    TLS unverified when tls); returns the open (reader, writer) pairs. Every answer must be 101."""
    sem = asyncio.Semaphore(parallel)
    ctx = None
    if tls:
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    head = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n" % (path, HOST, port, WS_KEY)).encode()

    async def one():
        async with sem:
            reader, writer = await asyncio.open_connection(HOST, port, ssl=ctx)
            writer.write(head)
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            if not answer.startswith(b"HTTP/1.1 101"):
                raise BenchError("websocket handshake: %r" % answer[:200])
            return reader, writer
    return await asyncio.gather(*[one() for _ in range(n)])


async def ws_echo_check(reader, writer):
    """One masked text frame "ping" through an open websocket; the echo must come back."""
    mask = os.urandom(4)
    writer.write(bytes([0x81, 0x80 | 4]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"ping")))
    frame = await asyncio.wait_for(reader.readexactly(6), 10)
    if frame != b"\x81\x04ping":
        raise BenchError("websocket echo: %r" % frame)


async def ws_idle_measure(stack, n, tls):
    port, pid, path = stack.port["cph_tls" if tls else "cph"], stack.pids["cephalo"], stack.sc.path
    warm = await ws_open(port, path, 10, tls)  # one-time allocations (buffers, timer lists) before the baseline
    await ws_echo_check(*warm[0])
    for _, w in warm:
        w.close()
    await asyncio.sleep(1.0)
    before = rss_kib(pid)
    t0 = time.monotonic()
    conns = await ws_open(port, path, n, tls)
    opened_s = time.monotonic() - t0
    await ws_echo_check(*conns[-1])
    await asyncio.sleep(2.0)  # idle: whatever the data plane frees after the handshakes is freed by now
    after = rss_kib(pid)
    await ws_echo_check(*conns[0])  # still tunnelled after the pause
    for _, w in conns:
        w.close()
    return {"connections": n, "rss_before_kib": before, "rss_after_kib": after, "open_s": round(opened_s, 2),
            "kib_per_connection": round((after - before) / n, 2)}


def run_ws_idle(args, sc, procs, outdir):
    """Cephalo alone (control plane + data plane) in front of tests/upstream/ws_echo.py; n idle websockets; the data
    plane's RSS after minus before, per connection. No other proxy is measured."""
    n = args.ws_connections or sc.connections
    raise_fd_limit(3 * n + 1024)
    stack = Stack(args, sc, procs, outdir)
    sc_dir = os.path.join(outdir, sc.name)
    os.makedirs(sc_dir)
    try:
        print("== %s: %s (temp dir %s)" % (sc.name, sc.about, stack.dir), flush=True)
        make_cert(stack.dir)
        origin = stack.port["origin"]
        stack.pids["origin"] = procs.start("ws-origin", stack.pin_other + [WS_PYTHON, WS_ECHO, str(origin)],
                                           stack.dir + "/origin.log").pid

        def listening():
            with socket.create_connection((HOST, origin), timeout=1):
                return True
        wait_until("websocket origin", listening, procs)
        stack.start_cephalo(sc.routes())
        res = asyncio.run(ws_idle_measure(stack, n, args.ws_tls))
        res["tls"] = args.ws_tls
        line = ("%-10s cephalo: %d idle websockets (%s), data plane RSS %.1f -> %.1f MiB: %.2f KiB per connection "
                "(opened in %.1f s)" % (sc.name, n, "TLS" if args.ws_tls else "plain HTTP/1.1",
                                        res["rss_before_kib"] / 1024, res["rss_after_kib"] / 1024,
                                        res["kib_per_connection"], res["open_s"]))
        print("  " + line, flush=True)
        return {}, {"ws_idle": res, "lines": [line]}
    finally:
        procs.stop_all()
        stack.keep_logs(sc_dir)
        stack.close()


# ------------------------------------------------------------------------------------------------ mode pdf

PDF_DOC = ("<html><body><h1>Invoice 2026-%d</h1>" + "".join("<p>Line %d: lorem ipsum dolor sit amet</p>" % i
                                                            for i in range(30)) + "</body></html>")


def renderers(pid):
    """wkhtmltopdf children of the data plane right now."""
    n = 0
    for p in proc_tree(pid):
        try:
            with open("/proc/%d/comm" % p) as f:
                n += f.read().startswith("wkhtmlto")
        except OSError:
            pass
    return n


def pdf_load(port, path, clients, seconds, pid):
    """clients threads POSTing a one-page HTML document back to back for seconds; returns the statuses, the
    latencies of the 200s and the peak number of renderer children seen (sampled every 20 ms)."""
    import threading
    statuses, latencies, peak, stop = {}, [], [0], time.monotonic() + seconds
    lock = threading.Lock()

    def client(i):
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        k = 0
        while time.monotonic() < stop:
            t0 = time.monotonic()
            try:
                conn.request("POST", path, body=(PDF_DOC % (i * 100000 + k)).encode(),
                             headers={"Content-Type": "text/html"})
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status if resp.status != 200 or body.startswith(b"%PDF-") else -1
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=120)
                status = 0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(time.monotonic() - t0)
            if status == 503:
                time.sleep(0.05)  # a client honouring Retry-After would wait longer: this keeps the pressure on
            k += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak[0] = max(peak[0], renderers(pid))
        time.sleep(0.02)
    return statuses, sorted(latencies), peak[0]


def run_pdf(args, sc, procs, outdir):
    """Cephalo alone: a route of kind pdf (render mode), sc.connections clients posting a one-page HTML document back
    to back for max(--duration, 10) s; renders per second, latency of the answered ones, the 503s of the bounded
    queue, and the peak number of wkhtmltopdf children (never above --pdf-workers: the number of CPUs by default)."""
    stack = Stack(args, sc, procs, outdir)
    sc_dir = os.path.join(outdir, sc.name)
    os.makedirs(sc_dir)
    try:
        print("== %s: %s (temp dir %s)" % (sc.name, sc.about, stack.dir), flush=True)
        make_cert(stack.dir)
        stack.start_cephalo(sc.routes())
        seconds = max(args.duration, 10)
        pdf_load(stack.port["cph"], sc.path, 1, 2, stack.pids["cephalo"])  # warm-up: fonts, page cache
        statuses, lat, peak = pdf_load(stack.port["cph"], sc.path, sc.connections, seconds, stack.pids["cephalo"])
        ok = statuses.get(200, 0)
        res = {"clients": sc.connections, "seconds": seconds, "statuses": {str(k): v for k, v in statuses.items()},
               "renders_per_s": round(ok / seconds, 2), "peak_renderers": peak, "cpus": os.cpu_count(),
               "p50_s": round(lat[len(lat) // 2], 3) if lat else None,
               "p99_s": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3) if lat else None}
        line = ("%-10s cephalo: %.2f PDFs/s with %d clients over %d s (p50 %s s, p99 %s s), statuses %s, at most %d "
                "renderers at once on %d CPUs" % (sc.name, res["renders_per_s"], sc.connections, seconds, res["p50_s"],
                                                  res["p99_s"], res["statuses"], peak, res["cpus"]))
        print("  " + line, flush=True)
        return {}, {"pdf": res, "lines": [line]}
    finally:
        procs.stop_all()
        stack.keep_logs(sc_dir)
        stack.close()


# how each Scenario.mode is measured: (args, scenario, procs, outdir) -> (throughput results, info)
MODES = {"throughput": run_scenario, "ws-idle": run_ws_idle, "pdf": run_pdf,
         "h2flood": lambda args, sc, procs, outdir: h2flood.run(args, sc, procs, outdir, sys.modules[__name__])}


CALLGRIND_TARGETS = ["cephalo", "nginx", "haproxy"]


def run_callgrind(args, procs, outdir):
    """Each proxy (1 worker) under callgrind in turn, for each scenario asked for (default: bare)."""
    n, lines = args.callgrind_requests, []
    for sc in SCENARIOS:
        if sc.name in (args.scenario or ["bare"]):
            if sc.pending or sc.mode != "throughput":
                lines.append("%s: not run - %s" % (sc.name, sc.pending or "no requests to count (mode %s)" % sc.mode))
                continue
            sc_dir = os.path.join(outdir, sc.name)
            os.makedirs(sc_dir)
            lines.extend(callgrind_scenario(args, sc, procs, sc_dir))
    text = "\n".join(["", "CALLGRIND  %d requests per proxy, HTTP/1.1 keep-alive, 1 client connection; "
                            "deterministic (instruction counts do not depend on machine load: rerun to compare "
                            "builds). User-space instructions only: system calls and the kernel's work are not "
                            "counted (CPU s/100k in the timed table has both). Top 10 functions by self Ir under "
                            "each. %s" % (n, source_state()), ""] + lines)
    with open(os.path.join(outdir, "callgrind.txt"), "w") as f:
        f.write(text + "\n")
    print(text)


def callgrind_scenario(args, sc, procs, outdir):
    """Ir per request of each proxy over a fixed request count, after a warm-up; returns the report lines."""
    stack = Stack(args, sc, procs, outdir)
    n, lines = args.callgrind_requests, []
    print("== callgrind %s: each proxy alone under valgrind (1 worker), warm-up 2000 requests, then %d measured "
          "(h2load --h1 -c1, path %s)" % (sc.name, n, sc.path), flush=True)
    try:
        d, p = stack.dir, stack.port
        make_cert(d)
        user = "user root;" if os.getuid() == 0 else ""
        conf = render("nginx-origin.conf", d + "/origin.conf",
                      dict(WORKERS=1, USER=user, DIR=d, HOST=HOST, PORT=p["origin"], BODY=BODY))
        procs.start("origin", ["nginx", "-p", d, "-c", conf], d + "/origin.log")
        for target in CALLGRIND_TARGETS:
            cg_out = os.path.join(outdir, "callgrind.out.%s" % target)
            wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + cg_out]
            proc = start_under(stack, procs, target, wrapper, user)
            total, top = callgrind_measure(procs, proc, stack.endpoints("h1", target), n, cg_out, outdir, target,
                                           stack.client_args())
            procs.stop(proc, timeout=30)
            if target == "cephalo":
                procs.stop(stack.cp)
            lines.append("%-10s %-8s %14s Ir  %8.0f instructions per request" % (
                sc.name, target, format(total, ","), total / n))
            lines.extend(["    " + l for l in top[:10]])
            print(lines[-11], flush=True)
        return lines
    finally:
        procs.stop_all()
        stack.keep_logs(outdir)
        stack.close()


def start_under(stack, procs, target, wrapper, user):
    """Start one proxy with 1 worker under the valgrind wrapper and wait until it answers the scenario path."""
    d, p = stack.dir, stack.port
    routes = stack.sc.routes()
    if target == "cephalo":
        stack.start_cephalo(routes, dp_wrapper=wrapper, workers=1)
        return stack.dp
    if target == "nginx":
        locations = "".join("        location %s { proxy_pass http://origin; }\n" % r for r in routes)
        conf = render("nginx-proxy.conf", d + "/nginx-proxy.conf",
                      dict(WORKERS=1, MASTER="off", USER=user, DIR=d, HOST=HOST, ORIGIN_PORT=p["origin"],
                           H1_PORT=p["nginx_h1"], H2C_PORT=p["nginx_h2c"], TLS_PORT=p["nginx_tls"],
                           LOCATIONS=locations))
        proc = procs.start("nginx", wrapper + ["nginx", "-p", d, "-c", conf], d + "/nginx.log")
        port = p["nginx_h1"]
    else:
        with open(d + "/haproxy-routes.lst", "w") as f:
            f.write("".join(r + "\n" for r in routes))
        conf = render("haproxy.cfg", d + "/haproxy.cfg",
                      dict(WORKERS=1, DIR=d, HOST=HOST, ORIGIN_PORT=p["origin"], H1_PORT=p["haproxy"],
                           TLS_PORT=p["haproxy_tls"]))
        proc = procs.start("haproxy", wrapper + ["haproxy", "-db", "-f", conf], d + "/haproxy.log")
        port = p["haproxy"]
    wait_until(target + " under valgrind",
               lambda: http_get(port, stack.sc.path, timeout=10, headers=stack.auth_headers())[0] == 200, procs,
               timeout=120)
    return proc


def callgrind_measure(procs, proc, url, n, cg_out, outdir, target, extra=()):
    """Warm up, instrument, n requests, dump; returns (total Ir, top functions by self Ir). extra: -H arguments."""
    procs.run(["h2load", "--h1", "-n", "2000", "-c", "1"] + list(extra) + [url], timeout=300)
    # instrumentation starts after the warm-up, so the dump after the measured requests holds only those
    subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
    out = procs.run(["h2load", "--h1", "-n", str(n), "-c", "1"] + list(extra) + [url], timeout=900,
                    log=os.path.join(outdir, "callgrind-%s-h2load.txt" % target))
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    if "%d succeeded" % n not in out or "%d 2xx" % n not in out:
        raise BenchError("callgrind run %s: not every request succeeded:\n%s" % (target, out))
    dump = cg_out + ".1"
    if not os.path.exists(dump):
        raise BenchError("no callgrind dump %s" % dump)
    total = None
    with open(dump) as f:
        for line in f:
            if line.startswith("summary:"):
                total = int(line.split()[1])
    ann = subprocess.run(["callgrind_annotate", "--threshold=100", dump], check=True, capture_output=True,
                         text=True).stdout
    with open(os.path.join(outdir, "callgrind-%s-annotate.txt" % target), "w") as f:
        f.write(ann)
    top = [l.strip() for l in ann.splitlines()
           if re.match(r"^\s*[\d,]+ \(\s*[\d.]+%\)\s+\S", l) and "PROGRAM TOTALS" not in l]
    return total, top


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bash bench/run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds, at least 3 (default 3)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per run (default 5)")
    ap.add_argument("--scenario", action="append", help="run only this scenario (repeatable); default: all ready ones")
    ap.add_argument("--protocol", action="append", choices=list(PROTOCOLS), help="only this protocol (repeatable)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes/threads of every proxy (default 1)")
    ap.add_argument("--origin-workers", type=int, default=1, help="nginx origin workers (default 1)")
    ap.add_argument("--pin", action="store_true", help="pin the proxy under test to CPU 0 and everything else "
                    "(origin, control plane, wrk, h2load) to the other CPUs (default: not pinned)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 s, bare scenario only")
    ap.add_argument("--callgrind", action="store_true", help="instead: instructions per request of each proxy under callgrind (deterministic)")
    ap.add_argument("--callgrind-requests", type=int, default=20000, help="measured requests (default 20000)")
    ap.add_argument("--ws-connections", type=int, default=0, help="ws-idle: websockets to open (default: the "
                    "scenario's, 5000)")
    ap.add_argument("--ws-tls", action="store_true", help="ws-idle: through the data plane's TLS listener")
    ap.add_argument("--bin-dir", default=BIN, help="where cephalo-controlplane and cephalo-dataplane are (default "
                    "build/bin, built by bench/run; another dir measures another build, e.g. a baseline)")
    ap.add_argument("--migrations", default=MIGRATIONS, help="migrations dir for that control plane (default "
                    "migrations/)")
    args = ap.parse_args(argv)
    names = [s.name for s in SCENARIOS]
    for n in args.scenario or []:
        if n not in names:
            ap.error("unknown scenario %s (known: %s)" % (n, ", ".join(names)))
    if args.quick:
        args.rounds, args.duration = 1, 1
        args.scenario = args.scenario or ["bare"]
    elif args.rounds < 3:
        ap.error("--rounds must be at least 3 (medians of interleaved rounds); use --quick for a smoke run")
    if args.pin and (os.cpu_count() or 1) < 2:
        ap.error("--pin needs at least 2 CPUs")
    if args.duration < 1 or args.workers < 1 or args.origin_workers < 1 or args.callgrind_requests < 1:
        ap.error("--duration, --workers, --origin-workers and --callgrind-requests must be positive")
    wanted = args.protocol or list(PROTOCOLS)
    # in PROTOCOLS order; h1half takes its rate from the h1 run, so it brings h1 along
    args.protocols = [p for p in PROTOCOLS if p in wanted or (p == "h1" and "h1half" in wanted)]
    return args


def source_state():
    """Which code was measured: HEAD plus a digest of the uncommitted changes to the planes (read-only git)."""
    if BIN != os.path.join(ROOT, "build", "bin"):
        return "binaries: %s" % BIN
    def git(*a):
        return subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    diff = git("diff", "HEAD", "--", "dataplane", "proto", "controlplane", "CMakeLists.txt")
    if not diff:
        return "source: %s" % head
    files = len(git("diff", "HEAD", "--name-only", "--", "dataplane", "proto", "controlplane", "CMakeLists.txt")
                .splitlines())
    return "source: %s + uncommitted changes in %d files (diff sha256 %s)" % (
        head, files, hashlib.sha256(diff.encode()).hexdigest()[:12])


def main(argv):
    global BIN, MIGRATIONS
    args = parse_args(argv)
    BIN, MIGRATIONS = os.path.abspath(args.bin_dir), os.path.abspath(args.migrations)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    outdir = os.path.join(BENCH, "results", stamp)
    os.makedirs(outdir)
    procs = Procs()
    try:
        if args.callgrind:
            run_callgrind(args, procs, outdir)
            print("raw output: %s" % outdir)
            return 0
        all_results, info = {}, {}
        wanted = args.scenario or [s.name for s in SCENARIOS]
        for sc in SCENARIOS:
            if sc.name not in wanted:
                continue
            if sc.pending:
                print("== %s: %s -- %s" % (sc.name, sc.about, sc.pending))
                continue
            all_results[sc.name], info[sc.name] = MODES[sc.mode](args, sc, procs, outdir)
        meta = ("rounds %d x %d s, interleaved; workers %d per proxy (origin %d); %s; wrk -t2 -c64; h2load -t2 -c32 -m10; "
                "h1half: h2load --h1 -c%d at half nginx's h1 rps" % (
                    args.rounds, args.duration, args.workers, args.origin_workers,
                    "proxy pinned to CPU 0, the rest to the other %d" % (os.cpu_count() - 1) if args.pin else
                    "not pinned (%d CPUs shared by clients, origin and proxy)" % os.cpu_count(), HALF_CONNECTIONS))
        meta += "; " + source_state()
        text = "\n".join(["", "RESULTS  " + meta, "", table(all_results, info)])
        pend = [s for s in SCENARIOS if s.pending and (not args.scenario or s.name in args.scenario)]
        text += "".join("not run: %s - %s\n" % (s.name, s.pending) for s in pend)
        print(text)
        with open(os.path.join(outdir, "table.txt"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(outdir, "results.json"), "w") as f:
            json.dump({"meta": meta, "info": info, "results": {
                sc: {"%s/%s" % k: v for k, v in by.items()} for sc, by in all_results.items()}}, f, indent=1)
        print("raw output: %s" % outdir)
        return 0
    except BenchError as e:
        print("bench: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted, stopping everything", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
