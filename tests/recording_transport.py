"""An asyncio transport that records what a protocol writes, for driving the HTTP protocol without sockets."""

from __future__ import annotations

import asyncio
from typing import Any


class RecordingTransport(asyncio.Transport):
    def __init__(self, tls: bool = False) -> None:
        super().__init__()
        self.tls = tls
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        #: How often the protocol paused reading.
        self.pauses = 0
        #: Bytes written that the client has not read yet (what asyncio's transport would still hold).
        self.unread = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra: dict[str, object] = {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8443)}
        if self.tls:  # what the protocol reads to tell https from http
            extra["sslcontext"] = object()
        return extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def get_write_buffer_size(self) -> int:
        return self.unread

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    @property
    def text(self) -> str:
        return self.written.decode("latin-1")

    def answer(self) -> tuple[int, dict[bytes, bytes], bytes] | None:
        """The first complete answer written (status, lowercase headers, body), None until there is one."""
        head, separator, rest = bytes(self.written).partition(b"\r\n\r\n")
        if not separator:
            return None
        status_line, *fields = head.split(b"\r\n")
        headers = {name.lower(): value for name, _, value in (f.partition(b": ") for f in fields)}
        length = int(headers[b"content-length"])
        if len(rest) < length:
            return None
        return int(status_line.split(b" ")[1]), headers, rest[:length]
