"""A websocket echo upstream for the websocket tests (tests/e2e/23_websocket.py) and the ws-idle benchmark.

Built on Debian's python3-websockets (10.x, asyncio). Paths:
  /refuse...    the handshake is answered 403 with a small JSON body (a non-101 the gateway must relay)
  /big/N...     after the handshake, the server sends one binary frame of N bytes, then echoes
  anything else echoes every message back as it came (text or binary)
Every handshake is counted and its request headers kept (`handshakes`, `headers`); every closed connection's close
code as the server received it is kept in `close_codes` (1006 when the peer went away without a close frame).

In-process: `WsEcho()` starts the server on a free loopback port in a thread (`url`, `close()`). Standalone (the
benchmark): `python3 ws_echo.py PORT` serves until killed; compression is off there, so an idle socket stays small.
"""
import asyncio
import http
import json
import os
import sys
import threading

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
from ports import free_port  # noqa: E402  (the tests' allocator: below the ephemeral range)


class WsEcho:
    def __init__(self, port=None, compression="deflate"):
        self.port = port or free_port()
        self.compression = compression
        self.handshakes = 0
        self.headers = []
        self.close_codes = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("ws echo upstream did not start")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    async def _process_request(self, path, request_headers):
        with self.lock:
            self.handshakes += 1
            self.headers.append({k.lower(): v for k, v in request_headers.raw_items()})
        if path.startswith("/refuse"):
            body = json.dumps({"refused": path}).encode()
            return http.HTTPStatus.FORBIDDEN, [("Content-Type", "application/json"), ("X-Upstream", "ws-echo")], body
        return None

    async def _handler(self, ws, path=None):
        path = path or ws.path
        try:
            if path.startswith("/big/"):
                await ws.send(b"b" * int(path.split("/")[2]))
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            with self.lock:
                self.close_codes.append(ws.close_code)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def start():
            self.server = await websockets.serve(self._handler, "127.0.0.1", self.port, process_request=self._process_request,
                                                 max_size=None, compression=self.compression, ping_interval=None)
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def main():
    port = int(sys.argv[1])
    server = WsEcho(port, compression=None)
    print("ws echo on %d" % server.port, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
