"""Helpers for the Cephalo end-to-end tests: real processes on free loopback ports in temp dirs.

Everything here is bounded in time. Readiness is observed (polling /health, /ready or the admin API with a
deadline), never assumed after a sleep. Every process started through a `Procs` registry is stopped at teardown
and its stderr is scanned for sanitizer reports, so an ASan/UBSan/LSan finding fails the test that caused it.
"""
import http.client
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CEPHALO_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BIN_DIR = os.environ.get("CEPHALO_BIN_DIR") or os.path.join(SOURCE_DIR, "build-asan", "bin")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "upstream"))
import demo_upstream  # noqa: E402
from ports import free_port  # noqa: E402,F401

STARTUP_S = 20.0  # sanitized binaries start slower
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer")
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"

# the secret-leak check (99_secret_leak.py): every secret a test uses, and every log file the run's processes wrote
SECRETS = set()
RUN_LOGS = []  # (stdout path, stderr path, is a cephalo daemon)
SECRET_MIN_LEN = 8  # shorter values would match by chance


def remember_secret(value):
    """Registers a secret (token, key, password) that must never appear in any log of the run; returns value."""
    if isinstance(value, str) and len(value) >= SECRET_MIN_LEN:
        SECRETS.add(value)
    return value


remember_secret(ADMIN_TOKEN)


def wait_until(pred, timeout, what, interval=0.02, proc=None):
    """Poll pred() until it returns a truthy value (returned) or the deadline passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}\n"
                                 f"{proc.tail()}")
        try:
            v = pred()
            if v:
                return v
        except (OSError, http.client.HTTPException) as e:
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})"
                         + (f"\n{proc.tail()}" if proc else ""))


# ---------------------------------------------------------------------------------------------------------------
# processes


class Proc:
    """One child process with stdout/stderr in log files under its directory."""

    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.argv = argv
        self.stdout_path = os.path.join(logdir, f"{name}.stdout.log")
        self.stderr_path = os.path.join(logdir, f"{name}.stderr.log")
        full_env = dict(os.environ)
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        full_env.setdefault("LSAN_OPTIONS", "suppressions=" + os.path.join(SOURCE_DIR, "tests", "lsan.supp"))
        full_env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if env:
            full_env.update(env)
        # append: a restarted process with the same name keeps the earlier log for the sanitizer scan
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                      env=full_env, start_new_session=True)
        self.signalled = None
        self.daemon = os.path.basename(argv[0]).startswith("cephalo-")
        RUN_LOGS.append((self.stdout_path, self.stderr_path, self.daemon))

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            self.signalled = sig
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; returns the exit code (negative = signal). Raises AssertionError on timeout."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s\n{self.tail()}")

    def stop(self, timeout=15.0):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit code."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
                self._close()
                raise AssertionError(f"{self.name} ignored SIGTERM for {timeout}s (killed)\n{self.tail()}")
        self._close()
        return self.popen.returncode

    def kill(self):
        if self.alive():
            self.signalled = signal.SIGKILL
            self.popen.kill()
        self.popen.wait(10)
        self._close()

    def _close(self):
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=40):
        lines = self.stderr_text().splitlines()[-n:]
        return f"--- {self.name} stderr (last {len(lines)} lines) ---\n" + "\n".join(lines)

    def sanitizer_report(self):
        text = self.stderr_text()
        for m in SANITIZER_MARKERS:
            i = text.find(m)
            if i >= 0:
                return text[max(0, i - 200): i + 4000]
        return None


class Procs:
    """Registry of the processes a test started; `finish()` stops them all and reports sanitizer findings."""

    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.procs = []
        self.servers = []

    def add(self, proc):
        self.procs.append(proc)
        return proc

    def finish(self):
        problems = []
        for srv in self.servers:
            try:
                srv.close()
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        for p in reversed(self.procs):
            try:
                rc = p.stop()
            except AssertionError as e:
                problems.append(str(e))
                rc = p.popen.returncode
            rep = p.sanitizer_report()
            if rep:
                problems.append(f"sanitizer report in {p.name} ({p.stderr_path}):\n{rep}")
            elif rc is not None and rc < 0 and -rc not in (signal.SIGTERM, signal.SIGKILL):
                problems.append(f"{p.name} died with signal {-rc}\n{p.tail()}")
            elif p.daemon and rc != 0 and p.signalled == signal.SIGTERM:
                problems.append(f"{p.name} exited with {rc} after SIGTERM (want 0)\n{p.tail()}")
        return problems


# ---------------------------------------------------------------------------------------------------------------
# HTTP helpers


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<Resp {self.status} {self.headers} {self.body[:300]!r}>"


def http_request(port, method, target, body=None, headers=None, host="127.0.0.1", timeout=10.0, source=None):
    """One HTTP/1.1 request with the request-target sent verbatim (no normalisation); a fresh connection.

    source: the client address to connect from (e.g. "127.0.0.2": any 127/8 address is local on Linux), so a test
    can be two clients with two addresses."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        hdrs = dict(headers or {})
        conn.putrequest(method, target, skip_host="Host" in hdrs, skip_accept_encoding=True)
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, header_dict(r.getheaders()), data)
    finally:
        conn.close()


def header_dict(pairs):
    """Response headers by lower-case name; a repeated header's values joined with ", " (RFC 9110 5.3), so that e.g.
    two WWW-Authenticate challenges are both seen."""
    out = {}
    for k, v in pairs:
        k = k.lower()
        out[k] = out[k] + ", " + v if k in out else v
    return out


def http_get(port, target, **kw):
    return http_request(port, "GET", target, **kw)


def raw_request(port, data, timeout=10.0):
    """Send raw bytes, read until the peer closes or the timeout; returns the bytes (for byte-level cases)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except socket.timeout:
            pass
        return out


def _complete(data):
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v.strip())
    return False


def curl(*args, timeout=20):
    """Run curl; returns CompletedProcess (text)."""
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def h2_request(sock, authority, path, method="GET", scheme="http", body=None, timeout=10.0, headers=None):
    """One HTTP/2 request over an already connected (plain or TLS) socket with python3-h2; returns Resp.

    headers: more request headers, a dict or a list of (name, value) (names are sent lower-cased)."""
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    hdrs = [(":method", method), (":path", path), (":scheme", scheme), (":authority", authority)]
    hdrs += [(k.lower(), v) for k, v in (headers.items() if isinstance(headers, dict) else headers or ())]
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, hdrs, end_stream=body is None)
    if body is not None:
        conn.send_data(sid, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    status, headers, data = None, {}, b""
    deadline = time.monotonic() + timeout
    done = False
    while not done:
        if time.monotonic() > deadline:
            raise AssertionError("h2 response timed out")
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("h2 connection closed before the response ended")
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                for k, v in ev.headers:
                    k = k.decode() if isinstance(k, bytes) else k
                    v = v.decode() if isinstance(v, bytes) else v
                    if k == ":status":
                        status = int(v)
                    else:
                        headers[k] = headers[k] + ", " + v if k in headers else v
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                done = True
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                raise AssertionError(f"h2 stream reset: {ev.error_code}")
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    return Resp(status, headers, data)


def tls_connect(port, alpn=("h2", "http/1.1"), timeout=10.0):
    """A TLS client socket to 127.0.0.1:port (certificate not verified: tests use self-signed certs)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def make_self_signed(dirpath):
    """Generate a self-signed cert + key for localhost with openssl; returns (cert, key)."""
    cert = os.path.join(dirpath, "cert.pem")
    key = os.path.join(dirpath, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return cert, key


# ---------------------------------------------------------------------------------------------------------------
# admin API client


class Admin:
    """A tiny admin API client (urllib). Never raises on HTTP status; returns Resp."""

    def __init__(self, port, token=ADMIN_TOKEN):
        self.port = port
        self.token = token
        self.base = f"http://127.0.0.1:{port}"

    def request(self, method, path, body=None, raw=None, token=..., content_type="application/json",
                headers=None, timeout=15.0):
        url = self.base + path
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(url, data=data, method=method)
        tok = self.token if token is ... else token
        if tok is not None:
            req.add_header("Authorization", f"Bearer {tok}")
        if data is not None and content_type is not None:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except urllib.error.HTTPError as e:
            return Resp(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def ok(self, method, path, body=None, expect=(200, 201)):
        """A request that must succeed; returns the parsed JSON."""
        r = self.request(method, path, body)
        assert r.status in expect, f"{method} {path} -> {r.status} {r.body[:500]!r}"
        return r.json()

    def apply(self, method, path, body=None, expect=(200, 201)):
        """A write with ?wait=applied that must succeed and settle; returns the parsed JSON."""
        sep = "&" if "?" in path else "?"
        out = self.ok(method, path + sep + "wait=applied", body, expect)
        assert "version" in out, out
        assert "applied" in out, f"no 'applied' in a ?wait=applied answer: {out}"
        assert out["applied"].get("settled") is True, f"not settled: {out}"
        return out

    def dataplanes(self):
        return self.ok("GET", "/api/v1/dataplanes", expect=(200,))["data"]

    def dataplane(self, dp_id):
        for dp in self.dataplanes():
            if dp.get("id") == dp_id:
                return dp
        return None

    def snapshot(self):
        return self.ok("GET", "/api/v1/snapshot", expect=(200,))

    def settle(self, timeout=10.0):
        """Until every connected data plane has applied the current snapshot version or a newer one.

        For changes the control plane makes by itself (a refresh-token reuse, a logout: the write happens inside an
        auth API call, so there is no admin write to ?wait=applied on). Returns the version."""
        want = self.snapshot()["version"]

        def done():
            dps = [d for d in self.dataplanes() if d.get("connected")]
            return all(d["applied"]["version"] >= want for d in dps)
        wait_until(done, timeout, f"every connected data plane applied version {want}")
        return want


# ---------------------------------------------------------------------------------------------------------------
# the two daemons


_AUTH_PORTS = {}  # data dir -> the auth API port of the control planes started on it


class ControlPlane:
    def __init__(self, procs, tmpdir, name="cp", token=ADMIN_TOKEN, data_dir=None, admin_port=None,
                 heartbeat_ms=None, auth_port=None, extra_args=(), auth=True, login_rate=None):
        self.procs = procs
        self.name = name
        self.token = token
        self.data_dir = data_dir or os.path.join(tmpdir, name)
        self.admin_port = admin_port or free_port()
        self.socket = os.path.join(self.data_dir, "run", "cp.sock")
        self.heartbeat_ms = heartbeat_ms
        # the auth API (--auth-listen): login, refresh, logout. Its URL is in the snapshot (auth.api), so a control
        # plane restarted on the same data dir keeps it, as a deployment's configuration would: otherwise the restart
        # would build a different body and write a new version
        self.auth_port = auth_port or _AUTH_PORTS.setdefault(os.path.realpath(self.data_dir), free_port())
        self.auth = auth  # False: --auth-listen off (no auth API; the snapshot's auth.api is null)
        self.extra_args = list(extra_args)
        # --login-rate R/P/B: the data planes' limit on POST /auth/login per client address (default 10/60/5)
        self.login_rate = login_rate
        self.logdir = tmpdir
        self.proc = None
        self.admin = Admin(self.admin_port, token)

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        argv = [os.path.join(BIN_DIR, "cephalo-controlplane"), "--data-dir", self.data_dir,
                "--admin-listen", f"127.0.0.1:{self.admin_port}", "--socket", self.socket,
                "--auth-listen", f"127.0.0.1:{self.auth_port}" if self.auth else "off"]
        mig = os.path.join(SOURCE_DIR, "migrations")
        if os.path.isdir(mig):
            argv += ["--migrations", mig]
        if self.heartbeat_ms:
            argv += ["--heartbeat-ms", str(self.heartbeat_ms)]
        if self.login_rate and not any(a.startswith("--login-rate") for a in self.extra_args):
            argv += ["--login-rate", self.login_rate]
        argv += self.extra_args
        env = {"CEPHALO_ADMIN_TOKEN": self.token} if self.token is not None else None
        self.proc = self.procs.add(Proc(self.name, argv, self.logdir, env=env))
        wait_until(lambda: http_get(self.admin_port, "/health", timeout=2).status == 200, STARTUP_S,
                   f"{self.name} /health", proc=self.proc)
        wait_until(lambda: os.path.exists(self.socket), STARTUP_S, f"{self.name} socket", proc=self.proc)
        if self.auth:
            wait_until(lambda: _can_connect(self.auth_port), STARTUP_S, f"{self.name} auth API", proc=self.proc)
        return self

    @property
    def auth_url(self):
        """What the snapshot's auth.api names: the auth API the data planes forward /auth/... to."""
        return f"http://127.0.0.1:{self.auth_port}" if self.auth else None


class DataPlane:
    def __init__(self, procs, tmpdir, cp_socket, name="dp", state_dir=None, workers=2, tls=None, dp_id=None,
                 drain_timeout_ms=None, extra_args=()):
        self.procs = procs
        self.extra_args = list(extra_args)
        self.name = name
        self.cp_socket = cp_socket
        self.state_dir = state_dir or os.path.join(tmpdir, name + "-state")
        self.workers = workers
        self.tls = tls  # (cert, key) or None
        self.dp_id = dp_id or f"e2e-{name}-{os.getpid()}-{free_port()}"
        self.drain_timeout_ms = drain_timeout_ms
        self.logdir = tmpdir
        self.proc = None
        self.port = None
        self.status_port = None
        self.tls_port = None

    def start(self, wait_ready=False):
        self.port = free_port()
        self.status_port = free_port()
        argv = [os.path.join(BIN_DIR, "cephalo-dataplane"), "--cp-socket", self.cp_socket,
                "--listen", f"127.0.0.1:{self.port}", "--status-listen", f"127.0.0.1:{self.status_port}",
                "--state-dir", self.state_dir, "--workers", str(self.workers), "--dp-id", self.dp_id]
        if self.tls:
            self.tls_port = free_port()
            argv += ["--listen-tls", f"127.0.0.1:{self.tls_port}", "--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        if self.drain_timeout_ms is not None:
            argv += ["--drain-timeout-ms", str(self.drain_timeout_ms)]
        argv += self.extra_args
        self.proc = self.procs.add(Proc(self.name, argv, self.logdir))
        wait_until(lambda: http_get(self.status_port, "/health", timeout=2).status == 200, STARTUP_S,
                   f"{self.name} status /health", proc=self.proc)
        wait_until(lambda: _can_connect(self.port), STARTUP_S, f"{self.name} listener", proc=self.proc)
        if wait_ready:
            self.wait_ready()
        return self

    def ready_status(self):
        return http_get(self.status_port, "/ready", timeout=2).status

    def wait_ready(self, timeout=STARTUP_S):
        wait_until(lambda: self.ready_status() == 200, timeout, f"{self.name} /ready", proc=self.proc)

    def wait_connected(self, admin, timeout=STARTUP_S):
        """Until the control plane lists this data plane as connected (so ?wait=applied includes it)."""
        return wait_until(lambda: (admin.dataplane(self.dp_id) or {}).get("connected") is True, timeout,
                          f"{self.name} connected to the control plane", proc=self.proc)

    def get(self, target, **kw):
        return http_get(self.port, target, **kw)

    def login(self, password, username=None, email=None, system=None, **kw):
        """POST /auth/login through this data plane (forwarded to the control plane's auth API); returns Resp."""
        return auth_post(self.port, "/auth/login", login_body(password, username, email, system), **kw)

    def tokens(self, password, username=None, email=None, system=None):
        """A login that must succeed: returns the parsed answer (access_token, refresh_token, ...)."""
        r = self.login(password, username, email, system)
        assert r.status == 200, f"login {username or email} -> {r}"
        out = r.json()
        for k in ("access_token", "refresh_token"):
            if isinstance(out.get(k), str):
                remember_secret(out[k])  # 99_secret_leak.py: never in any log of the run
        return out

    def metrics(self):
        r = http_get(self.status_port, "/metrics")
        assert r.status == 200, r
        return parse_metrics(r.body.decode())


def login_body(password, username=None, email=None, system=None):
    body = {"password": password}
    if username is not None:
        body["username"] = username
    if email is not None:
        body["email"] = email
    if system is not None:
        body["system"] = system
    return body


def auth_post(port, path, body=None, raw=None, headers=None, timeout=15.0):
    """POST a JSON body (or raw bytes) to an auth API path (/auth/login, /auth/refresh, /auth/logout) on port."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return http_request(port, "POST", path, body=data, headers=hdrs, timeout=timeout)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def _can_connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels.items())): float}; also name -> sum over label sets."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        labels = {}
        if "{" in name_labels:
            name, _, rest = name_labels.partition("{")
            rest = rest.rstrip("}")
            for part in _split_labels(rest):
                k, _, v = part.partition("=")
                labels[k.strip()] = v.strip().strip('"')
        else:
            name = name_labels
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def _split_labels(s):
    parts, cur, quoted = [], "", False
    for ch in s:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def metric(metrics, name, **labels):
    """Sum of every sample of `name` whose labels include `labels`; None if there is none."""
    total, found = 0.0, False
    for (n, ls), v in metrics.items():
        if n == name and set(labels.items()) <= set(ls):
            total += v
            found = True
    return total if found else None


# ---------------------------------------------------------------------------------------------------------------
# upstreams


class Nginx:
    """nginx as a test upstream: answers 200 with a body naming the instance and echoes $request_uri in a header."""

    def __init__(self, procs, tmpdir, name="nginx"):
        self.dir = os.path.join(tmpdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.port = free_port()
        os.makedirs(os.path.join(self.dir, "files"), exist_ok=True)
        self.big_path = os.path.join(self.dir, "files", "big.bin")
        with open(self.big_path, "wb") as f:
            f.write(os.urandom(3 << 20))  # 3 MiB: more than any h2 window or socket buffer
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, port=self.port, name=name))
        argv = ["nginx", "-c", conf, "-p", self.dir, "-e", os.path.join(self.dir, "error.log")]
        self.proc = procs.add(Proc(name, argv, tmpdir))
        wait_until(lambda: _can_connect(self.port), STARTUP_S, f"{name} listening", proc=self.proc)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{
            alias {dir}/files/;
        }}
        location /xfo/ {{
            default_type text/plain;
            add_header X-Frame-Options SAMEORIGIN always;
            add_header Referrer-Policy unsafe-url always;
            return 200 "upstream={name} with its own X-Frame-Options\\n";
        }}
        location / {{
            default_type text/plain;
            add_header X-Upstream {name} always;
            add_header X-Request-Uri $request_uri always;
            add_header X-Request-Method $request_method always;
            return 200 "upstream={name}\\n";
        }}
    }}
}}
"""


class RawUpstream:
    """A raw HTTP/1.1 upstream in a thread: answers every request 200 {"ok":true} and keeps, per request, the head as
    a list of (name lower-cased, value) in `heads` and the body in `bodies` - exactly as they arrived, so duplicated
    or malformed headers show (the stdlib echo upstream folds them)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.heads = []
        self.bodies = []
        self.request_lines = []
        self.lock = threading.Lock()
        self.closing = False
        threading.Thread(target=self.accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def accept(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                # a line without ':' (never well-formed) is kept whole as a name with the value None
                headers = [tuple(x.strip() for x in line.split(":", 1)) if ":" in line else (line, None)
                           for line in lines[1:]]
                length = int(dict((k.lower(), v) for k, v in headers).get("content-length") or "0")
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                with self.lock:
                    self.request_lines.append(lines[0])
                    self.heads.append([(k.lower(), v) for k, v in headers])
                    self.bodies.append(buf[:length])
                buf = buf[length:]
                body = b'{"ok":true}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: from-upstream\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def last(self):
        with self.lock:
            return self.heads[-1]

    @property
    def count(self):
        with self.lock:
            return len(self.heads)

    def close(self):
        self.closing = True
        self.sock.close()


class Flapper:
    """An upstream on a fixed port that goes down (listener and every connection closed at once) and up again."""

    def __init__(self, port):
        self.port, self.lock, self.conns, self.sock, self.served = port, threading.Lock(), [], None, 0

    def up(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.sock = s
        threading.Thread(target=self.accept, args=(s,), daemon=True).start()

    def down(self):
        with self.lock:
            conns, self.conns = self.conns, []
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it: only then is the port free
        except OSError:
            pass
        self.sock.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                buf = buf.split(b"\r\n\r\n", 1)[1]
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                with self.lock:
                    self.served += 1
        except OSError:
            return


class PyUpstream:
    """The stdlib echo upstream (tests/upstream/demo_upstream.py) in a thread of the test process.

    A path with a `hold` segment is held until `release()`; `wait_held(n)` observes n held requests."""

    def __init__(self, name="py"):
        self.server = demo_upstream.EchoServer(("127.0.0.1", 0), name)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def count(self):
        """How many requests reached this upstream so far."""
        with self.server.lock:
            return self.server.total

    @property
    def paths(self):
        """The request targets it received, in order (a copy)."""
        with self.server.lock:
            return list(self.server.paths)

    def wait_held(self, n, timeout=10.0):
        assert self.server.wait_held(n, timeout), f"upstream saw {self.server.held} held requests, wanted {n}"

    def release(self):
        self.server.release.set()

    def close(self):
        self.server.release.set()
        self.server.shutdown()
        self.server.server_close()


class _CtlServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the gateway may drop a connection we still answer
        super().handle_error(request, client_address)


class _CtlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cephalo-ctl-upstream"

    def log_message(self, fmt, *args):
        pass

    def handle_any(self):
        up = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        status, headers, body, n = up._answer(self.command, self.path, path, self.headers)
        self.send_response(status)
        names = set()
        for k, v in headers:
            self.send_header(k, v)
            names.add(k.lower())
        if status in (204, 304) or status < 200:
            body = b""
        else:
            if "content-type" not in names:
                self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Serial", str(n))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = handle_any


class CtlUpstream:
    """An upstream whose answer the test sets per path, and that counts the requests of every path.

    set(path, status=200, headers=None, body=None, size=None): the answer to every request whose path (the target
    without its query) is `path`, whatever the method. headers: a dict or a list of (name, value) pairs (a name may
    repeat: two Set-Cookie). body: bytes; or, when None, `size` bytes of a pattern (size=None: a short text). Either
    way a default body starts with "<path> #<n> lang=<Accept-Language>" - n is the path's request serial (1, 2, ...),
    also sent as `X-Serial` - so a test can tell which upstream answer the gateway served and for which variant. A path
    nobody set is answered 200 with that short text and no caching header. HEAD gets the headers only; a 204/304 no
    body. Counters: count(path) (requests of that path), count() (all), requests (every (method, target, headers) in
    order), last_body(path) (the body of the path's latest answer, to compare with what a client received).
    """

    def __init__(self, name="ctl"):
        self.name = name
        self.lock = threading.Lock()
        self.answers = {}
        self.counts = {}
        self.bodies = {}
        self.requests = []
        self.server = _CtlServer(("127.0.0.1", 0), _CtlHandler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def set(self, path, status=200, headers=None, body=None, size=None):
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or ())
        with self.lock:
            self.answers[path] = (status, hdrs, body, size)
        return self

    def count(self, path=None):
        with self.lock:
            return sum(self.counts.values()) if path is None else self.counts.get(path, 0)

    def methods(self, path):
        """The methods of the requests of `path` the upstream received, in order."""
        with self.lock:
            return [m for m, t, _ in self.requests if t.split("?", 1)[0] == path]

    def last_body(self, path):
        with self.lock:
            return self.bodies.get(path)

    def _answer(self, method, target, path, req_headers):
        with self.lock:
            n = self.counts.get(path, 0) + 1
            self.counts[path] = n
            self.requests.append((method, target, {k.lower(): v for k, v in req_headers.items()}))
            status, hdrs, body, size = self.answers.get(path, (200, [], None, None))
        if body is None:
            head = f"{path} #{n} lang={req_headers.get('Accept-Language', '')}\n".encode()
            if size is None:
                body = head
            else:
                pattern = head + bytes(range(256))
                body = (pattern * (size // len(pattern) + 1))[:size]
        with self.lock:
            self.bodies[path] = body
        return status, hdrs, body, n

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------------------------
# redis (the shared rate-limit backend)


class RedisError(Exception):
    """An error reply (-ERR ..., -NOSCRIPT ...) from redis-server."""


def resp_encode(*args):
    """A RESP command: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _RespReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        """One RESP2 reply: str (simple), int, bytes or None (bulk), list (array); an error reply raises RedisError."""
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise AssertionError(f"bad RESP reply {line[:100]!r}")


class RedisProc(Proc):
    """redis-server as a Proc: stop() resumes a SIGSTOPped server first, so teardown's SIGTERM is seen."""

    def stop(self, timeout=15.0):
        if self.alive():
            self.popen.send_signal(signal.SIGCONT)
        return super().stop(timeout)


class Redis:
    """redis-server on a free loopback port, its data in a dir under the test's temp dir, no persistence.

    kill() (SIGKILL), pause() (SIGSTOP: connections stay open, nothing answers - the timeout path), cont()
    (SIGCONT), restart() (a fresh, empty server on the same port). command() talks RESP over a plain socket, so no
    redis-cli is needed: command("SCRIPT", "FLUSH"), command("FLUSHALL"), command("DBSIZE"), command("KEYS", "*").
    """

    def __init__(self, procs, tmpdir, name="redis"):
        self.procs = procs
        self.name = name
        self.logdir = tmpdir
        self.dir = os.path.join(tmpdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.start()

    @property
    def address(self):
        """HOST:PORT, as the control plane's --redis flag takes it."""
        return f"127.0.0.1:{self.port}"

    def start(self):
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"]
        self.proc = self.procs.add(RedisProc(self.name, argv, self.logdir))
        wait_until(lambda: self.command("PING", timeout=1) == "PONG", STARTUP_S, f"{self.name} PING", proc=self.proc)
        return self

    def command(self, *args, timeout=5.0, db=0):
        """One command on a fresh connection (to database db); returns the decoded reply (RedisError for an error
        reply)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            reader = _RespReader(s)
            if db:
                s.sendall(resp_encode("SELECT", db))
                reader.reply()
            s.sendall(resp_encode(*args))
            return reader.reply()

    def keys(self, pattern="*", db=0):
        return sorted(k.decode() for k in self.command("KEYS", pattern, db=db))

    def dbsize(self, db=0):
        return self.command("DBSIZE", db=db)

    def kill(self):
        """SIGKILL: connections drop at once (the reset path)."""
        self.proc.kill()

    def pause(self):
        """SIGSTOP: the server keeps its connections but answers nothing (the timeout path). Undo with cont()."""
        self.proc.signal(signal.SIGSTOP)

    def cont(self):
        self.proc.signal(signal.SIGCONT)

    def restart(self):
        """A new, empty server on the same port (after kill() or while running)."""
        if self.proc.alive():
            self.proc.kill()
        # the port was ours a moment ago; redis-server sets SO_REUSEADDR
        return self.start()


# ---------------------------------------------------------------------------------------------------------------
# a minimal fake control plane (for the data plane's NACK path, which the real CP refuses to produce)


class PeerClosed(AssertionError):
    pass


class FakeCP:
    """Listens on a Unix socket and speaks PROTOCOL.md framing to one data plane at a time."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(path)
        self.lsock.listen(4)
        self.conn = None

    def accept(self, timeout=STARTUP_S):
        self.lsock.settimeout(timeout)
        self.conn, _ = self.lsock.accept()
        self.conn.settimeout(timeout)
        return self

    def send(self, msg):
        data = json.dumps(msg, separators=(",", ":")).encode()
        self.conn.sendall(struct.pack(">I", len(data)) + data)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                raise PeerClosed("data plane closed the control connection")
            buf += chunk
        return buf

    def recv(self, skip=("ping",)):
        """The next message whose type is not in skip (pings are answered with pong)."""
        while True:
            (n,) = struct.unpack(">I", self._recv_exact(4))
            assert 0 < n < 64 << 20
            msg = json.loads(self._recv_exact(n))
            if msg.get("type") == "ping":
                self.send({"type": "pong", "seq": msg.get("seq", 0)})
            if msg.get("type") in skip:
                continue
            return msg

    def close(self):
        for s in (self.conn, self.lsock):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        try:
            if self.path:
                os.unlink(self.path)
        except OSError:
            pass


class FakeDP(FakeCP):
    """Connects to a real control plane's socket as a data plane and answers what the test tells it to."""

    def __init__(self, path, dp_id, applied=None):  # noqa: super().__init__ not called: no listening socket
        self.path = None
        self.lsock = None
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.conn.settimeout(STARTUP_S)
        self.conn.connect(path)
        self.send({"type": "hello", "dp_id": dp_id, "hostname": "fake", "pid": os.getpid(), "software": "e2e-fake",
                   "applied": applied or {"epoch": "", "version": 0, "hash": "", "source": "none"}})
        self.welcome = self.recv(skip=("pong",))
        assert self.welcome["type"] == "welcome", self.welcome

    def recv(self, skip=("pong",)):
        return super().recv(skip=skip)

    def sync(self):
        """A ping and its pong: everything sent before it has been handled by the control plane. A snapshot met on
        the way is acked; an error message fails the test."""
        self.sync_seq = getattr(self, "sync_seq", 0) + 1
        self.send({"type": "ping", "seq": self.sync_seq})
        while True:
            m = self.recv(skip=())
            if m["type"] == "snapshot":
                self.send({"type": "ack", "version": m["version"], "hash": m["hash"], "apply_ms": 1, "persisted": False})
            elif m["type"] == "pong" and m["seq"] == self.sync_seq:
                return
            elif m["type"] == "error":
                raise AssertionError(f"the control plane sent an error: {m}")

    def close(self):
        try:
            self.conn.close()
        except OSError:
            pass


def canonical_hash(body):
    """sha256: of the canonical body (PROTOCOL.md §2: compact, sorted keys, '/' not escaped)."""
    import hashlib

    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# identity: one shop with users, roles, groups and endpoint rules (14_login.py .. 17_explain_shadow.py)


class Shop:
    """Seeds a control plane with the identity model the access tests share, all applied with ?wait=applied.

    Systems "shop" and "other". Roles shop:reader, shop:writer, other:reader. Groups shop:staff (roles [reader]) and
    shop:ops (no role: grants by group name). Users (password PASSWORDS[name]):
      alice  email alice@example.com, member of shop, own role writer
      bob    member of shop, group staff (so effective role reader)
      olga   member of shop, group ops
      root   superuser, member of no system (superusers are members of every system)
      dave   member of other only, own role other:reader
      carol  member of shop, disabled
    Services "shop" (system shop) and "other" (system other) on the upstream; "plain" (no system) too.
    Routes (strip_prefix): /shop -> shop and /other -> other (default_access authenticated), /open -> plain (public),
    /authn -> plain (authenticated), /closed -> plain (deny).
    Endpoint rules of service shop (upstream paths): GET /public/* public; GET /orders/{id} roles [reader];
    POST /orders roles [writer]; * /ops/* groups [ops]; GET /any (no requirement). self.rules[path] = the rule.
    """

    PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22", "olga": "olga-password-333",
                 "root": "root-password-4444", "dave": "dave-password-55555", "carol": "carol-password-666666"}

    def __init__(self, admin, upstream_url):
        self.admin = admin
        a = admin
        for code in ("shop", "other"):
            a.ok("POST", "/api/v1/systems", {"code": code, "name": code.title()})
        for sysc, name in (("shop", "reader"), ("shop", "writer"), ("other", "reader")):
            a.ok("POST", "/api/v1/roles", {"system": sysc, "name": name})
        a.ok("POST", "/api/v1/groups", {"system": "shop", "name": "staff", "roles": ["reader"]})
        a.ok("POST", "/api/v1/groups", {"system": "shop", "name": "ops", "roles": []})
        users = {
            "alice": {"email": "alice@example.com", "systems": ["shop"],
                      "roles": [{"system": "shop", "name": "writer"}]},
            "bob": {"systems": ["shop"], "groups": [{"system": "shop", "name": "staff"}]},
            "olga": {"systems": ["shop"], "groups": [{"system": "shop", "name": "ops"}]},
            "root": {"superuser": True},
            "dave": {"systems": ["other"], "roles": [{"system": "other", "name": "reader"}]},
            "carol": {"systems": ["shop"], "enabled": False},
        }
        self.users = {}
        for name, extra in users.items():
            body = dict(extra, username=name, password=self.PASSWORDS[name])
            self.users[name] = a.ok("POST", "/api/v1/users", body)["user"]
        for name, system in (("shop", "shop"), ("other", "other"), ("plain", None)):
            a.ok("POST", "/api/v1/services", {"name": name, "system": system, "targets": [{"url": upstream_url}]})
        for name, service, path, access in (("shop", "shop", "/shop", "authenticated"),
                                            ("other", "other", "/other", "authenticated"),
                                            ("open", "plain", "/open", "public"),
                                            ("authn", "plain", "/authn", "authenticated"),
                                            ("closed", "plain", "/closed", "deny")):
            a.ok("POST", "/api/v1/routes", {"name": name, "service": service, "paths": [path], "strip_prefix": True,
                                            "default_access": access})
        self.rules = {}
        for method, path, extra in (("GET", "/public/*", {"public": True}),
                                    ("GET", "/orders/{id}", {"roles": [{"system": "shop", "name": "reader"}]}),
                                    ("POST", "/orders", {"roles": [{"system": "shop", "name": "writer"}]}),
                                    ("*", "/ops/*", {"groups": [{"system": "shop", "name": "ops"}]}),
                                    ("GET", "/any", {})):
            body = dict(extra, service="shop", method=method, path=path)
            out = a.apply("POST", "/api/v1/endpoints", body)  # the last one settles everything before it
            self.rules[path] = out["endpoint"]
        self.version = out["version"]

    def uid(self, name):
        """The user's id as the JWT's sub and the identity header carry it: a decimal string."""
        return str(self.users[name]["id"])

    def tokens(self, dp, name, system="shop"):
        return dp.tokens(self.PASSWORDS[name], username=name, system=system)

    def access(self, dp, name, system="shop"):
        """A fresh access token of user `name` in `system`, logged in through dp."""
        return self.tokens(dp, name, system)["access_token"]

    def api_key(self, name, roles=(), groups=(), expires_at=None, system="shop"):
        """Creates an api key with ?wait=applied; returns (the api_key object, the key "<prefix>.<secret>")."""
        body = {"system": system, "name": name, "roles": list(roles), "groups": list(groups)}
        if expires_at is not None:
            body["expires_at"] = expires_at
        k = self.admin.apply("POST", "/api/v1/api_keys", body)["api_key"]
        return k, remember_secret(k.pop("key"))


class Gateway:
    """A control plane started with extra flags (--redis, --trusted-proxy-hops, --login-rate, ...), n data planes
    connected to it, and a service "echo" on the given upstream: the stack of the traffic-policy tests
    (19_ratelimit.py, 20_edge.py). route() creates a public, strip_prefix route with ?wait=applied."""

    def __init__(self, procs, tmpdir, upstream_url, cp_args=(), dataplanes=1, tls=None, workers=2):
        self.cp = ControlPlane(procs, tmpdir, extra_args=list(cp_args)).start()
        self.admin = self.cp.admin
        self.dps = []
        for i in range(dataplanes):
            dp = DataPlane(procs, tmpdir, self.cp.socket, name=f"dp{i}", tls=tls, workers=workers).start()
            dp.wait_connected(self.admin)
            self.dps.append(dp)
        self.dp = self.dps[0]
        self.admin.apply("POST", "/api/v1/services", {"name": "echo", "targets": [{"url": upstream_url}]})

    def route(self, name, path, policies=None, service="echo", **fields):
        """POST a route (default_access public, strip_prefix true unless fields say otherwise); returns the route."""
        body = {"name": name, "service": service, "paths": [path], "strip_prefix": True, "default_access": "public"}
        body.update(fields)
        if policies is not None:
            body["policies"] = policies
        return self.admin.apply("POST", "/api/v1/routes", body)["route"]

    def get(self, target, dp=None, **kw):
        return http_request((dp or self.dp).port, "GET", target, **kw)


def gateway_factory(procs, tmpdir, upstream_url):
    """For a test's fixture: make(cp_args=(), tls=False, dataplanes=1) -> Gateway on upstream_url (tls: a TLS listener
    too, with a self-signed certificate)."""
    def make(cp_args=(), tls=False, dataplanes=1):
        cert = make_self_signed(tmpdir) if tls else None
        return Gateway(procs, tmpdir, upstream_url, cp_args=cp_args, dataplanes=dataplanes, tls=cert)
    return make


def rate_limit(name, key="ip", rate=1, period_s=60, burst=0, **extra):
    """One item of policies.rate_limits (proto/PROTOCOL.md section 5)."""
    return dict({"name": name, "key": key, "rate": rate, "period_s": period_s, "burst": burst}, **extra)


def seen_by_upstream(resp):
    """The echo upstream's JSON answer (method, path, headers) for a request the gateway forwarded."""
    assert resp.status == 200, resp
    return resp.json()


def b64url(data):
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_from_parts(header, claims, signature=b""):
    """A compact JWT from a header and claims (dicts, or str/bytes taken as they are) and raw signature bytes."""
    def enc(part):
        if isinstance(part, dict):
            part = json.dumps(part, separators=(",", ":"))
        if isinstance(part, str):
            part = part.encode()
        return b64url(part)
    return f"{enc(header)}.{enc(claims)}.{b64url(signature)}"


# ---------------------------------------------------------------------------------------------------------------
# the response cache (21_cache.py, 21b_cache_redis.py)


def ctl_upstream(procs, name="ctl"):
    """A CtlUpstream closed with the test's processes."""
    up = CtlUpstream(name)
    procs.servers.append(up)
    return up


def xcache(r):
    return r.headers.get("x-cache")


def cache_hit(r, status=200):
    """A response answered from the cache: the status, X-Cache: HIT and one integer Age."""
    assert r.status == status and xcache(r) == "HIT", f"want a {status} HIT, got {r}"
    age = r.headers.get("age")
    assert age is not None and age.isdigit(), f"a HIT needs one integer Age: {r.headers}"
    return r


def cache_miss(r, status=200):
    """A response the cache looked up and did not have: the status and X-Cache: MISS."""
    assert r.status == status and xcache(r) == "MISS", f"want a {status} MISS, got {r}"
    return r


def ctl_serial(r):
    """Which upstream answer of its path this is (CtlUpstream's X-Serial, replayed by a HIT)."""
    return int(r.headers["x-serial"])


for _pw in Shop.PASSWORDS.values():
    remember_secret(_pw)
