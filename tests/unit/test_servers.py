"""Start-up of the two listeners."""

from __future__ import annotations

import socket

import pytest

from bridge.config import ConfigError
from bridge.servers import bind


def test_a_port_in_use_is_a_start_up_error_naming_the_setting() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as raised:
            bind("127.0.0.1", port, "server.ops_port")
    assert str(raised.value) == (
        f"server.ops_port = {port}: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_a_free_port_is_bound_and_listening() -> None:
    with bind("127.0.0.1", 0, "server.port") as listener:
        client = socket.create_connection(listener.getsockname()[:2], timeout=2)
        accepted, _ = listener.accept()
        assert accepted.getpeername() == client.getsockname()
        accepted.close()
        client.close()
