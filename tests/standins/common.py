"""What the Cephalo test stand-ins (vault.py, consul.py) share: the HTTP server, the JSON control port, the
restartable API listener and the command line (stdlib only, run by /usr/bin/python3).

A stand-in is a StandIn subclass - its state under one condition variable, a log of the API requests it was asked,
its control operations - plus a request handler for the API it imitates. run() parses --port and --control-port
(0: any free port) and the stand-in's own flags, starts the API listener on a thread, prints
"READY <port> <control-port>" on stdout once both ports listen, and serves the control port until killed.

The control port speaks JSON: POST /<operation> with a JSON body (empty: {}) answers the operation's JSON, 400 with
{"error"} for a body or value it cannot use, 404 for an operation it does not know; GET /requests answers the request
log, GET /state the stand-in's view of itself, and POST /requests/clear empties the log. Production code never sees
the control port.
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    """A threading HTTP server whose handler threads never keep the process alive. `state` is the stand-in, set by
    whoever creates the server; `closing` tells handlers blocked in a long wait that the listener is going away."""
    daemon_threads = True
    allow_reuse_address = True
    closing = False
    quiet = False  # True: no handler failure is printed; else only a client that went away is not

    def handle_error(self, request, client_address):
        if self.quiet or isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log, and the small helpers both APIs and the control port use."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    @property
    def st(self):
        return self.server.state

    def send_body(self, status, body, content_type, headers=()):
        """One answer: status, Content-Type (None: none), the extra (name, value) headers in order, Content-Length,
        body. Returns status."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return status

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def read_json(self):
        """The request's JSON body, {} when it has none; ValueError when it is not JSON."""
        raw = self.read_body()
        return json.loads(raw) if raw else {}


class ControlHandler(Handler):
    """The control port: GET and POST dispatched to the stand-in's view() and control()."""

    def reply(self, doc, status=200):
        self.send_body(status, json.dumps(doc).encode(), "application/json")

    def do_GET(self):
        doc = self.st.view(self.path)
        if doc is None:
            return self.reply({"error": "not found"}, 404)
        self.reply(doc)

    def do_POST(self):
        try:
            out = self.st.control(self.path, self.read_json())
        except (ValueError, KeyError, TypeError) as e:
            return self.reply({"error": repr(e)}, 400)
        if out is None:
            return self.reply({"error": "unknown control"}, 404)
        self.reply(out)


class StandIn:
    """The state of a stand-in: `cond` guards everything (also usable as a plain lock), `requests` logs the API
    requests. Subclasses extend view() and control(), calling these for what they do not handle."""

    def __init__(self):
        self.cond = threading.Condition()
        self.requests = []
        self.api = None  # the Listener, set by run()

    def record(self, rec):
        with self.cond:
            self.requests.append(rec)

    def view(self, path):
        """GET <path> on the control port: a JSON-able answer, or None (404)."""
        if path == "/requests":
            return self.copy(self.requests)
        return None

    def copy(self, doc):
        """A deep copy of doc taken under the lock, so the answer is serialised while handlers go on."""
        with self.cond:
            return json.loads(json.dumps(doc))

    def control(self, path, req):
        """POST <path> with the JSON body req: a JSON-able answer, None (404), or a KeyError, ValueError or
        TypeError (400)."""
        if path == "/requests/clear":
            with self.cond:
                self.requests.clear()
            return {"ok": True}
        return None

    def on_api_down(self):
        """Called while the API listener stops (under no lock): wake what waits on it."""


class Listener:
    """The API port, which can stop listening (connections refused) and start again on the same port."""

    def __init__(self, state, handler, port, quiet=False):
        self.state = state
        self.handler = handler
        self.port = port
        self.quiet = quiet
        self.server = None

    def up(self):
        if self.server is not None:
            return
        self.server = Server(("127.0.0.1", self.port), self.handler)
        self.server.state, self.server.quiet = self.state, self.quiet
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def down(self):
        if self.server is None:
            return
        self.server.closing = True
        self.state.on_api_down()
        self.server.shutdown()
        self.server.server_close()
        self.server = None


def run(description, make_state, handler, add_args=None, quiet=False):
    """The stand-in's main(): flags, the API listener, the READY line, then the control port until killed.

    make_state(args) -> the StandIn; handler: the API's request handler class; add_args(parser) adds the stand-in's
    own flags; quiet: print no API handler failure at all."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    if add_args is not None:
        add_args(ap)
    args = ap.parse_args()
    state = make_state(args)
    state.api = Listener(state, handler, args.port, quiet)
    state.api.up()
    ctl = Server(("127.0.0.1", args.control_port), ControlHandler)
    ctl.state, ctl.quiet = state, quiet
    print(f"READY {state.api.port} {ctl.server_address[1]}", flush=True)
    try:
        ctl.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
