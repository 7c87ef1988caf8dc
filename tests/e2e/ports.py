"""Loopback ports for test and benchmark processes."""
import os
import socket


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_EPHEMERAL = _ephemeral_range()
# Ports are handed out below the kernel's ephemeral range: a port the kernel picked for bind(0) is free only
# until the next outgoing connect() picks it as a source port, and a test makes thousands of those between
# choosing a port and the process under test binding it. The pid spreads concurrent test runs apart.
_PORT_LO, _PORT_HI = max((10000, _EPHEMERAL[0]), (_EPHEMERAL[1] + 1, 65536), key=lambda r: r[1] - r[0])
_next_port = _PORT_LO + (os.getpid() * 97) % (_PORT_HI - _PORT_LO)


def free_port():
    """A loopback TCP port outside the ephemeral range that no one was listening on a moment ago; each call
    returns a different port."""
    global _next_port
    for _ in range(_PORT_HI - _PORT_LO):
        port = _next_port
        _next_port = _PORT_LO + (_next_port + 1 - _PORT_LO) % (_PORT_HI - _PORT_LO)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")
