#!/usr/bin/python3
"""A small HTTP/1.1 upstream for the demo and the end-to-end tests (Python stdlib only).

Every request is answered with a JSON object echoing what the upstream received: method, path (the raw request
target, exactly as sent by the gateway), headers and body. Used standalone by scripts/demo.sh
(`demo_upstream.py --listen 127.0.0.1:9000`) and in-process by tests/e2e/cephalo.py, which adds a "hold" switch so
tests can keep requests in flight without sleeping: a path containing the segment `hold` blocks until the test
releases it (bounded by HOLD_MAX_S).
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_MAX_S = 30.0


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, name="demo"):
        super().__init__(addr, EchoHandler)
        self.name = name
        self.lock = threading.Condition()
        self.in_flight = 0
        self.held = 0
        self.total = 0
        self.release = threading.Event()
        self.paths = []

    def handle_error(self, request, client_address):
        # the gateway may close a connection we still answer (e.g. after its own timeout): not an error here
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def wait_held(self, n, timeout=10.0):
        """Block until at least n requests are being held; returns True if reached before timeout."""
        with self.lock:
            return self.lock.wait_for(lambda: self.held >= n, timeout)


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cephalo-demo-upstream"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def handle_any(self):
        srv = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        segments = self.path.split("?", 1)[0].split("/")
        with srv.lock:
            srv.in_flight += 1
            srv.total += 1
            srv.paths.append(self.path)
        try:
            if "hold" in segments:
                with srv.lock:
                    srv.held += 1
                    srv.lock.notify_all()
                srv.release.wait(HOLD_MAX_S)
                with srv.lock:
                    srv.held -= 1
            out = {
                "upstream": srv.name,
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
            data = (json.dumps(out, sort_keys=True) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Upstream", srv.name)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            with srv.lock:
                srv.in_flight -= 1
                srv.lock.notify_all()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = handle_any


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:9000", help="HOST:PORT (default 127.0.0.1:9000)")
    ap.add_argument("--name", default="demo", help="name reported in every answer")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    srv = EchoServer((host, int(port)), args.name)
    srv.release.set()  # standalone: never hold
    print(f"demo upstream listening on http://{args.listen}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
