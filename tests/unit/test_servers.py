"""Start-up of the two listeners."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError, ServerSettings, Sources
from bridge.servers import bind, bind_group, public_config
from tests.e2e.harness import dev_certificate

#: Some settings from the environment, some from the file.
SOURCES = Sources(
    file="bridge.yaml",
    in_file=frozenset({"server.ops_port", "server.tls_key_file"}),
    variables={
        "server.port": "IDAAS_BRIDGE_SERVER__PORT",
        "server.tls_cert_file": "IDAAS_BRIDGE_SERVER__TLS_CERT_FILE",
    },
)


@pytest.mark.parametrize("other_reuses_port", [False, True])
@pytest.mark.parametrize("count", [1, 2])
def test_a_port_in_use_is_a_start_up_error_naming_the_setting(count: int, other_reuses_port: bool) -> None:
    # Another process serving the port with SO_REUSEPORT (a second bridge of the same user) would have
    # shared it silently with a worker group that only set SO_REUSEPORT.
    with socket.create_server(("127.0.0.1", 0), reuse_port=other_reuses_port) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as raised:
            bind_group("127.0.0.1", port, SOURCES.name("server.port", port), count)
    assert str(raised.value) == (
        f"IDAAS_BRIDGE_SERVER__PORT = {port} (server.port): cannot listen on 127.0.0.1:{port}: Address "
        "already in use"
    )


def test_the_operations_port_in_use_is_a_start_up_error_naming_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as raised:
            bind("127.0.0.1", port, SOURCES.name("server.ops_port", port))
    assert str(raised.value) == (
        f"server.ops_port = {port} in bridge.yaml: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_a_free_port_is_bound_and_listening() -> None:
    with bind("127.0.0.1", 0, "server.port") as listener:
        client = socket.create_connection(listener.getsockname()[:2], timeout=2)
        accepted, _ = listener.accept()
        assert accepted.getpeername() == client.getsockname()
        accepted.close()
        client.close()


def test_one_worker_gets_the_plain_socket() -> None:
    [listener] = bind_group("127.0.0.1", 0, "server.port", 1)
    with listener:
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0


def test_connections_opened_at_once_spread_over_the_workers_sockets() -> None:
    sockets = bind_group("127.0.0.1", 0, "server.port", 2)
    ports = {sock.getsockname()[1] for sock in sockets}
    assert len(ports) == 1
    clients = [socket.create_connection(("127.0.0.1", *ports), timeout=2) for _ in range(64)]
    try:
        counts = []
        for listener in sockets:
            listener.setblocking(False)
            accepted = 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    listener.accept()[0].close()
                    accepted += 1
            counts.append(accepted)
        assert sum(counts) == 64
        # The kernel's hash of each client port: fewer than 16 of 64 on one socket about once in 50,000.
        assert min(counts) >= 16, counts
    finally:
        for sock in [*clients, *sockets]:
            sock.close()


@pytest.mark.parametrize(
    ("pair", "reason"),
    [("not-pem", "one is not in PEM form"), ("other-key", "key values mismatch")],
)
def test_tls_files_that_are_not_a_certificate_and_its_key_are_a_start_up_error_naming_them(
    tmp_path: Path, pair: str, reason: str
) -> None:
    """The files exist (configuration checks that), but loading them failed with an SSLError's traceback."""
    cert, key = dev_certificate(tmp_path / "one")
    if pair == "not-pem":
        cert.write_text("not a certificate\n")
    else:
        key = dev_certificate(tmp_path / "other")[1]
    server = dataclasses.replace(ServerSettings(), tls_cert_file=str(cert), tls_key_file=str(key))
    endpoint: Any = None  # never reached: loading the TLS files fails first
    with pytest.raises(ConfigError) as raised:
        public_config(endpoint, endpoint, server, SOURCES)
    message = str(raised.value)
    assert message == (
        f"IDAAS_BRIDGE_SERVER__TLS_CERT_FILE = '{cert}' (server.tls_cert_file), "
        f"server.tls_key_file = '{key}' in bridge.yaml: cannot load them as a certificate and its private "
        f"key ({reason}); give the PEM certificate (chain) and the unencrypted PEM private key that belongs "
        "to it"
    ), message
