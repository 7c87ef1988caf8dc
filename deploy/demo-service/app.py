#!/usr/bin/env python3
"""A demo microservice for the Cephalo docker-compose stack (Python stdlib only).

One file serves users, orders and products (SERVICE_NAME); INSTANCE names the instance (users-1, orders-2, ...).

  GET /health      -> 200 {"status": "ok"}          (Consul's HTTP check and the compose healthcheck)
  anything else    -> 200 JSON: the service's demo items, plus what this instance received from the gateway:
                      method, path, the identity headers (x-cephalo-*) and, for each credential header the gateway
                      may inject (authorization, x-api-key), a sha256 fingerprint of its value - never the value.

The fingerprint is how the walkthrough shows a Vault rotation reaching the upstream without printing a secret:
`printf %s 'Bearer demo-users-token-2' | sha256sum | cut -c1-12` equals the `sha256_12` shown after the rotation.
"""
import hashlib
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = os.environ.get("SERVICE_NAME", "demo")
INSTANCE = os.environ.get("INSTANCE", SERVICE + "-1")
PORT = int(os.environ.get("PORT", "8080"))
CREDENTIAL_HEADERS = ("authorization", "x-api-key")

ITEMS = {
    "users": [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}],
    "orders": [{"id": 1001, "user_id": 1, "total_cents": 4200}, {"id": 1002, "user_id": 2, "total_cents": 1999}],
    "products": [{"sku": "mug-1", "name": "Mug", "price_cents": 900}, {"sku": "tee-1", "name": "T-shirt",
                                                                        "price_cents": 1900}],
}


def fingerprint(value):
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:12]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cephalo-demo-service"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (INSTANCE, fmt % args))

    def reply(self, status, obj):
        data = (json.dumps(obj, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(min(length, 1 << 20))
        if self.path.split("?", 1)[0] == "/health":
            self.reply(200, {"status": "ok", "instance": INSTANCE})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        creds = {h: {"present": True, "sha256_12": fingerprint(headers[h])} for h in CREDENTIAL_HEADERS if h in headers}
        self.reply(200, {
            "service": SERVICE,
            "instance": INSTANCE,
            "method": self.command,
            "path": self.path,
            "identity": {k: v for k, v in headers.items() if k.startswith("x-cephalo-")},
            "credentials_received": creds,
            "items": ITEMS.get(SERVICE, []),
        })

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    sys.stderr.write("%s (%s) listening on :%d\n" % (INSTANCE, SERVICE, PORT))
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
