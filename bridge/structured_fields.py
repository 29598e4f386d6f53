"""The part of RFC 8941 (Structured Field Values) that RFC 9421 signatures need: parsing dictionaries.

A small own parser instead of the `http-sfv` package: we need one header shape, the exact text of each
member (RFC 9421's `@signature-params` line is rebuilt from it), and a parser that never raises anything but
`StructuredFieldError` on hostile input. Strict where RFC 8941 is strict: any deviation rejects the field.

Three headers of every delivery go through it, so the common shapes (keys, tokens, numbers, strings without
escapes) are matched with compiled patterns instead of character by character; escapes and every error
take the character loop, so the messages and positions stay the loop's.
"""

from __future__ import annotations

import base64
import binascii
import re
import string
from dataclasses import dataclass
from typing import Final

BareItem = int | float | str | bytes | bool

TOKEN_FIRST: Final = frozenset(string.ascii_letters + "*")
BASE64_CHARS: Final = frozenset(string.ascii_letters + string.digits + "+/=")
MAX_INTEGER_DIGITS: Final = 15

_KEY: Final = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN: Final = re.compile(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*")
_NUMBER: Final = re.compile(r"-?[0-9]*(?:\.[0-9]*)?")
#: A string of printable ASCII without escapes: `"`, then anything in " "-"~" except `"` and `\`, then `"`.
_PLAIN_STRING: Final = re.compile(r'"([ !#-\[\]-~]*)"')


class StructuredFieldError(ValueError):
    """The header is not a valid structured field."""


@dataclass(frozen=True, slots=True)
class Token:
    """An sf-token, kept apart from sf-string so `alg=hmac-sha256` is not taken for `alg="hmac-sha256"`."""

    value: str


@dataclass(frozen=True, slots=True)
class Item:
    value: BareItem | Token
    params: dict[str, BareItem | Token]


@dataclass(frozen=True, slots=True)
class Member:
    """One dictionary member: an item or an inner list, its parameters, and its exact source text."""

    value: Item | list[Item]
    params: dict[str, BareItem | Token]
    text: str


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> StructuredFieldError:
        return StructuredFieldError(f"{what} at character {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in chars:
            pos += 1
        self.pos = pos

    def key(self) -> str:
        match = _KEY.match(self.text, self.pos)
        if match is None:
            raise self.error("expected a key")
        self.pos = match.end()
        return match.group()

    def bare_item(self) -> BareItem | Token:
        char = self.peek()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char == "-" or char.isdigit():
            return self.number()
        if char and char in TOKEN_FIRST:
            return self.token()
        raise self.error("expected an item")

    def string(self) -> str:
        plain = _PLAIN_STRING.match(self.text, self.pos)
        if plain is not None:
            self.pos = plain.end()
            return plain.group(1)
        self.pos += 1
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise self.error("unterminated string")
            self.pos += 1
            if char == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\") or not escaped:
                    raise self.error("bad escape in string")
                out.append(escaped)
                self.pos += 1
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise self.error("non-printable character in string")
            else:
                out.append(char)

    def byte_sequence(self) -> bytes:
        end = self.text.find(":", self.pos + 1)
        if end < 0:
            raise self.error("unterminated byte sequence")
        encoded = self.text[self.pos + 1 : end]
        if not set(encoded) <= BASE64_CHARS:
            raise self.error("byte sequence is not base64")
        self.pos = end + 1
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise self.error("byte sequence is not base64") from None

    def boolean(self) -> bool:
        value = self.text[self.pos + 1 : self.pos + 2]
        if value not in ("0", "1"):
            raise self.error("expected ?0 or ?1")
        self.pos += 2
        return value == "1"

    def number(self) -> int | float:
        match = _NUMBER.match(self.text, self.pos)
        assert match is not None  # every part of the pattern is optional
        self.pos = match.end()
        literal = match.group()
        digits = literal.lstrip("-")
        if not digits or digits.endswith(".") or digits.startswith("."):
            raise self.error("malformed number")
        if "." in digits:
            whole, fraction = digits.split(".")
            if len(whole) > 12 or len(fraction) > 3:
                raise self.error("decimal out of range")
            return float(literal)
        if len(digits) > MAX_INTEGER_DIGITS:
            raise self.error("integer out of range")
        return int(literal)

    def token(self) -> Token:
        match = _TOKEN.match(self.text, self.pos)
        assert match is not None  # bare_item saw a TOKEN_FIRST character here
        self.pos = match.end()
        return Token(match.group())

    def params(self) -> dict[str, BareItem | Token]:
        params: dict[str, BareItem | Token] = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.key()
            value: BareItem | Token = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params[key] = value
        return params

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.params())

    def inner_list(self) -> list[Item]:
        self.pos += 1
        items: list[Item] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return items
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise self.error("expected a space or ')' in inner list")

    def dictionary(self) -> dict[str, Member]:
        members: dict[str, Member] = {}
        self.skip(" \t")
        while self.pos < len(self.text):
            key = self.key()
            start = self.pos + 1 if self.peek() == "=" else self.pos
            if self.peek() == "=":
                self.pos += 1
                if self.peek() == "(":
                    value: Item | list[Item] = self.inner_list()
                    params = self.params()
                else:
                    value = self.item()
                    params = value.params
            else:
                params = self.params()
                value = Item(True, params)
            members[key] = Member(value, params, self.text[start : self.pos])
            self.skip(" \t")
            if self.pos >= len(self.text):
                break
            if self.peek() != ",":
                raise self.error("expected ',' between dictionary members")
            self.pos += 1
            self.skip(" \t")
            if self.pos >= len(self.text):
                raise self.error("trailing comma")
        return members


def parse_dictionary(text: str) -> dict[str, Member]:
    """Parse an RFC 8941 dictionary; raises StructuredFieldError on any deviation."""
    return _Parser(text.strip(" ")).dictionary()
