"""A request head as httptools parses it: the URL and the header fields an endpoint asked for, within the head
budget, compiled (mypyc).

httptools calls the protocol back once for the URL and once per header field, so under load these calls
were the HTTP protocol's most frequent Python frames (two per field with the budget's count; docs/
benchmarks.md, fifteenth round). The protocol hands the parser this object's `on_url` and `on_header` as its
own, so those calls reach native code, and keeps the callbacks that drive the connection (a request's begin
and end, its body).
"""

from __future__ import annotations

from typing import Final

from bridge.auth import MAX_SIGNATURE_HEADER_BYTES, SIGNATURE_HEADERS

_SIGNATURE_HEADER_NAMES: Final = frozenset(name.encode() for name in SIGNATURE_HEADERS)


class HeadRefused(Exception):
    """Raised in a parser callback to stop httptools at once (it reaches the protocol as an
    HttpParserError); `HeadReader.refusal` says why."""


class HeadReader:
    """The head of the request being parsed on one connection, reset by `begin` for each request.

    The budget: the URL plus the fields may hold at most `max_header_fields` fields and `max_header_bytes`
    bytes, and each signature header at most `auth.MAX_SIGNATURE_HEADER_BYTES`, so the RFC 8941 parser only
    ever sees small input. Past any of these, `refusal` says which and the parse stops (HeadRefused)."""

    def __init__(self, wanted: frozenset[bytes], max_header_bytes: int, max_header_fields: int) -> None:
        """`wanted`: the lowercase names of the fields the endpoint reads; no other value is kept."""
        self._wanted = wanted
        self._max_header_bytes = max_header_bytes
        self._max_header_fields = max_header_fields
        self.url = b""
        #: The wanted fields by lowercase name, every value in arrival order.
        self.headers: dict[str, list[bytes]] = {}
        #: The client sent `Expect: 100-continue`.
        self.expect_continue = False
        #: Why the head was refused (431), None while it is within the budget.
        self.refusal: str | None = None
        self._fields = 0
        self._field_bytes = 0
        self._signature_bytes: dict[bytes, int] = {}

    def begin(self) -> None:
        """A new request head starts."""
        self.url = b""
        self.headers = {}
        self.expect_continue = False
        self._fields = 0
        self._field_bytes = 0
        self._signature_bytes.clear()

    def _refuse(self, detail: str) -> None:
        self.refusal = detail
        raise HeadRefused

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self._max_header_fields:
            self._refuse(f"requests are limited to {self._max_header_fields} header fields")
        self._count(len(name) + len(value))
        lowered = name.lower()
        if lowered in _SIGNATURE_HEADER_NAMES:
            size = self._signature_bytes.get(lowered, 0) + len(value)
            self._signature_bytes[lowered] = size
            if size > MAX_SIGNATURE_HEADER_BYTES:
                header = name.decode("latin-1")
                self._refuse(f"the {header} header is limited to {MAX_SIGNATURE_HEADER_BYTES} bytes")
        if lowered in self._wanted:
            self.headers.setdefault(lowered.decode(), []).append(value)
        elif lowered == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True

    def _count(self, size: int) -> None:
        self._field_bytes += size
        if self._field_bytes > self._max_header_bytes:
            self._refuse(f"request line and headers are limited to {self._max_header_bytes} bytes")
