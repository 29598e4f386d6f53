"""Free loopback ports for the tests' brokers and bridges, below Linux's ephemeral range (32768+).

A port from the ephemeral range that a test picked and released can become the local port of an outgoing
connection (Kafka clients open many) before the process meant to listen on it binds, and the bridge or
broker then fails with "address already in use". Brokers and bridges take ports from ranges of their own,
and a port handed out once in this process is never handed out again (a bridge's two listeners, a broker
restarted on its ports while a fault test has it stopped).
"""

from __future__ import annotations

import random
import socket

BROKER_PORTS = range(20000, 32000)
BRIDGE_PORTS = range(10000, 20000)
_handed_out: set[int] = set()


def free_ports(count: int, ports: range = BROKER_PORTS) -> tuple[int, ...]:
    """`count` distinct ports from `ports` that nobody listens on now and this process never handed out."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.choice(ports)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        chosen.append(port)
    return tuple(chosen)


def free_port() -> int:
    """One port for a bridge listener."""
    return free_ports(1, BRIDGE_PORTS)[0]
