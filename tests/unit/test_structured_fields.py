"""The RFC 8941 dictionary parser: the values RFC 9421 needs, strictness, and no crash on any input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.structured_fields import Item, StructuredFieldError, Token, parse_dictionary


def test_inner_list_with_parameters_keeps_its_exact_text() -> None:
    text = 'sig=("@method" "@target-uri");created=1618884473;keyid="k";alg="hmac-sha256"'
    member = parse_dictionary(text)["sig"]
    assert isinstance(member.value, list)
    assert [item.value for item in member.value] == ["@method", "@target-uri"]
    assert member.params == {"created": 1618884473, "keyid": "k", "alg": "hmac-sha256"}
    assert member.text == text[len("sig=") :]


def test_byte_sequences_tokens_booleans_and_numbers() -> None:
    members = parse_dictionary("a=:AAE=:, b=tok/x, c, d=?0, e=-12, f=1.5")
    assert members["a"].value == Item(b"\x00\x01", {})
    assert members["b"].value == Item(Token("tok/x"), {})
    assert members["c"].value == Item(True, {})
    assert members["d"].value == Item(False, {})
    assert members["e"].value == Item(-12, {})
    assert members["f"].value == Item(1.5, {})


def test_escaped_quotes_in_strings() -> None:
    assert parse_dictionary(r'a="say \"hi\" \\ ok"')["a"].value == Item('say "hi" \\ ok', {})


@pytest.mark.parametrize(
    "text",
    [
        "sig=",
        "Sig=1",
        "a=1,",
        "a=1 b=2",
        'a="unterminated',
        "a=:not base64!:",
        'a="\\x"',
        "a=(1 2",
        "a=?2",
        "a=1234567890123456",
        "a=1.2345",
        "a=(1;",
        "1a=1",
    ],
)
def test_malformed_dictionaries_are_rejected(text: str) -> None:
    with pytest.raises(StructuredFieldError):
        parse_dictionary(text)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('sig=()"@:;,?*-.1aZ/+ \\\t\x00é')), max_size=80))
def test_any_input_either_parses_or_raises_structured_field_error(text: str) -> None:
    with contextlib.suppress(StructuredFieldError):
        parse_dictionary(text)
