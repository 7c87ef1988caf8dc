#!/usr/bin/python3
"""Soak: mixed HTTP/1.1 + HTTP/2 + websocket load through Cephalo for a long time while faults are injected, then a
report (README.md, "Soak"). Not part of CI: it runs for 20 minutes by default.

    /usr/bin/python3 bench/soak.py [--minutes 20] [--bin-dir build-asan/bin]

Started here, in a temp dir on free loopback ports (with tests/e2e/cephalo.py): redis-server, an nginx origin, a
target that flaps (down and up every 5 s, its connections cut), the websocket echo upstream, one control plane
(--redis) and one data plane (2 workers). Routes: /api (nginx + the flapping target, retries on, a shared Redis
rate limit far above the load, fail-open), /ws (websocket tunnel).

Load, for the whole run: h2load over HTTP/1.1 (8 connections) and over h2c (8 connections x 10 streams), and 20
websockets each echoing a message every 100 ms. Faults, every 60 s: the control plane SIGKILLed and restarted on
its data dir 10 s later; redis SIGSTOPped for 5 s; redis SIGKILLed and restarted empty 5 s later.

Report: requests and 5xx per protocol (any 5xx is unexpected: the retry covers the flapping target, the rate limit
fails open, the data plane does not need the control plane), websocket messages and broken tunnels, each daemon's
RSS at start and end and the data plane's every 30 s, and what LeakSanitizer / ASan / UBSan printed when the
daemons were stopped. Run it twice: with the ASan build (the default --bin-dir) for the sanitizer verdict, and with
the release build (--bin-dir build/bin) for RSS - ASan's quarantine alone holds up to 256 MiB of freed memory.
Exit status 0 only when there was no unexpected 5xx, no broken tunnel and no sanitizer report.
"""
import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "upstream"))

import cephalo  # noqa: E402
from ws_echo import WsEcho  # noqa: E402

import websockets  # noqa: E402


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as fp:
            m = re.search(r"^VmRSS:\s+(\d+) kB", fp.read(), re.M)
    except FileNotFoundError:  # not running right now (killed by the fault timeline)
        return 0
    return int(m.group(1)) if m else 0


def h2load(args, seconds, url, out):
    """Runs h2load for `seconds`; puts its text output in out[0]."""
    p = subprocess.run(["h2load", "-D", str(seconds)] + args + [url], capture_output=True, text=True,
                       timeout=seconds + 120)
    out.append(p.stdout + p.stderr)


def parse_h2load(text):
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    return {"done": int(m.group(3)) if m else 0, "failed": int(m.group(5)) if m else -1,
            "errored": int(m.group(6)) if m else -1, "2xx": int(codes.group(1)) if codes else 0,
            "4xx": int(codes.group(3)) if codes else 0, "5xx": int(codes.group(4)) if codes else -1}


def websockets_load(port, seconds, stats):
    """20 tunnels, each sending a message every 100 ms and checking its echo, for `seconds`."""
    async def one(i):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                async with websockets.connect(f"ws://127.0.0.1:{port}/ws/{i}", compression=None) as ws:
                    while time.monotonic() < deadline:
                        msg = f"m{i}-{stats['sent']}"
                        await ws.send(msg)
                        assert await asyncio.wait_for(ws.recv(), 10) == msg
                        stats["sent"] += 1
                        await asyncio.sleep(0.1)
            except Exception as e:  # noqa: BLE001 - counted: a broken tunnel is what the report is about
                stats["broken"] += 1
                stats["errors"].append(repr(e)[:200])
                await asyncio.sleep(0.5)

    async def all_of():
        await asyncio.gather(*(one(i) for i in range(20)))
    asyncio.run(all_of())


def faults(cp_box, procs, tmpdir, redis, flap, stop, log):
    """The fault timeline, until stop is set. cp_box[0] is the running control plane (replaced on restart)."""
    t0 = time.monotonic()
    flap_up = True
    next_flap, cycle = 5.0, 0
    while not stop.is_set():
        now = time.monotonic() - t0
        if now >= next_flap:
            (flap.down if flap_up else flap.up)()
            flap_up = not flap_up
            next_flap += 5.0
        phase = now - 60 * cycle
        if phase >= 10 and not cp_box[1]:
            log.append(f"{now:7.1f}s control plane SIGKILL")
            cp_box[0].proc.kill()
            cp_box[1] = True
        elif phase >= 20 and cp_box[1] and not cp_box[2]:
            cp = cp_box[0]
            cp_box[0] = cephalo.ControlPlane(procs, tmpdir, data_dir=cp.data_dir, admin_port=cp.admin_port,
                                             extra_args=cp.extra_args).start()
            cp_box[2] = True
            log.append(f"{now:7.1f}s control plane restarted")
        elif phase >= 30 and not cp_box[3]:
            redis.pause()
            cp_box[3] = True
            log.append(f"{now:7.1f}s redis SIGSTOP")
        elif phase >= 35 and not cp_box[4]:
            redis.cont()
            cp_box[4] = True
            log.append(f"{now:7.1f}s redis SIGCONT")
        elif phase >= 40 and not cp_box[5]:
            redis.kill()
            cp_box[5] = True
            log.append(f"{now:7.1f}s redis SIGKILL")
        elif phase >= 45 and not cp_box[6]:
            redis.restart()
            cp_box[6] = True
            log.append(f"{now:7.1f}s redis restarted (empty)")
        elif phase >= 60:
            cycle += 1
            cp_box[1:] = [False] * 6
        stop.wait(0.1)
    if not flap_up:
        flap.up()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build-asan", "bin"))
    args = ap.parse_args()
    os.environ["CEPHALO_BIN_DIR"] = args.bin_dir
    cephalo.BIN_DIR = args.bin_dir
    seconds = int(args.minutes * 60)
    tmpdir = tempfile.mkdtemp(prefix="cephalo-soak-")
    procs = cephalo.Procs(tmpdir)
    problems, log, finished = [], [], False
    try:
        redis = cephalo.Redis(procs, tmpdir).start()
        nginx = cephalo.Nginx(procs, tmpdir)
        flap = cephalo.Flapper(cephalo.free_port())
        flap.up()
        ws = WsEcho(compression=None)
        procs.servers.append(ws)
        cp = cephalo.ControlPlane(procs, tmpdir, extra_args=["--redis", redis.address]).start()
        dp = cephalo.DataPlane(procs, tmpdir, cp.socket, workers=2).start()
        dp.wait_connected(cp.admin)
        admin = cp.admin
        admin.apply("POST", "/api/v1/services", {"name": "api", "targets": [{"url": nginx.url},
                                                                           {"url": f"http://127.0.0.1:{flap.port}"}]})
        admin.apply("POST", "/api/v1/services", {"name": "ws", "targets": [{"url": ws.url}]})
        admin.apply("POST", "/api/v1/routes", {
            "name": "api", "service": "api", "paths": ["/api"], "strip_prefix": True, "default_access": "public",
            "policies": {"retries": {"max": 2, "budget_percent": 100, "min_concurrent": 100},
                         "rate_limits": [{"name": "all", "key": "route", "rate": 1000000, "period_s": 1,
                                          "burst": 1000000, "backend": "redis", "on_error": "open"}]}})
        admin.apply("POST", "/api/v1/routes?wait=applied", {"name": "ws", "service": "ws", "paths": ["/ws"],
                                                            "default_access": "public", "policies": {"websocket": {}}})
        rss0 = {"dp": rss_kb(dp.proc.pid), "cp": rss_kb(cp.proc.pid)}
        print(f"soak: {args.minutes} min, temp dir {tmpdir}", flush=True)

        outs = {"h1": [], "h2c": []}
        base = f"http://127.0.0.1:{dp.port}/api/x"
        loaders = [threading.Thread(target=h2load, args=(["--h1", "-c", "8", "-t", "1"], seconds, base, outs["h1"])),
                   threading.Thread(target=h2load, args=(["-c", "8", "-m", "10", "-t", "1"], seconds, base, outs["h2c"]))]
        ws_stats = {"sent": 0, "broken": 0, "errors": []}
        loaders.append(threading.Thread(target=websockets_load, args=(dp.port, seconds, ws_stats)))
        stop = threading.Event()
        cp_box = [cp] + [False] * 6
        injector = threading.Thread(target=faults, args=(cp_box, procs, tmpdir, redis, flap, stop, log))
        for t in loaders:
            t.start()
        injector.start()
        samples = []  # the data plane's RSS every 30 s: flat after the warm-up is the goal
        while any(t.is_alive() for t in loaders):
            samples.append(rss_kb(dp.proc.pid) // 1024)
            for t in loaders:
                t.join(30 / len(loaders))
        for t in loaders:
            t.join(seconds + 300)
        stop.set()
        injector.join(60)
        rss1 = {"dp": rss_kb(dp.proc.pid), "cp": rss_kb(cp_box[0].proc.pid)}

        print("\nfaults:\n  " + "\n  ".join(log))
        bad = 0
        for proto, out in outs.items():
            r = parse_h2load(out[0] if out else "")
            bad += max(r["5xx"], 0) + max(r["failed"], 0) + max(r["errored"], 0)
            print(f"{proto:4} requests {r['done']:>10}  2xx {r['2xx']:>10}  4xx {r['4xx']:>6}  5xx {r['5xx']:>6}  "
                  f"failed {r['failed']:>6}  errored {r['errored']:>6}")
        print(f"ws   messages {ws_stats['sent']:>10}  broken tunnels {ws_stats['broken']}")
        for e in ws_stats["errors"][:5]:
            print("     " + e)
        for name in ("dp", "cp"):
            print(f"RSS  {name}: {rss0[name]} kB -> {rss1[name]} kB ({rss1[name] - rss0[name]:+d} kB)")
        print("RSS  dp every 30 s (MiB): " + " ".join(str(x) for x in samples))
        flap.down()
        problems, finished = procs.finish(), True
        print("sanitizers: " + ("clean" if not problems else "\n".join(problems)))
        ok = bad == 0 and ws_stats["broken"] == 0 and not problems
        print("SOAK " + ("PASSED" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        if not finished:
            procs.finish()
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
