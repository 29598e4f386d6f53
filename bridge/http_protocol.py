"""uvicorn's HTTP protocol with a header read timeout.

uvicorn closes idle keep-alive connections but never times out a request whose headers arrive slowly, so a
few slow clients could hold connections forever (slowloris). Here a request's headers must be complete
within `header_read_timeout` of its connection opening or of its first byte; otherwise the connection gets
408 and is closed. The body has its own timeout in the receiver.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TIMEOUT_BODY: Final = b'{"error":"header_timeout","detail":"the request headers arrived too slowly"}'
REQUEST_TIMEOUT_RESPONSE: Final = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n" % len(TIMEOUT_BODY) + TIMEOUT_BODY
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_read_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_read_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def protocol_with_header_timeout(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class uvicorn instantiates per connection, with the configured timeout."""
    return type("ConfiguredHeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_read_timeout": seconds})
