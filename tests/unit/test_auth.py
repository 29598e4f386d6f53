"""RFC 9421 verification under the IDaaS profile, with vectors computed independently of bridge.auth."""

from __future__ import annotations

import base64
import hashlib
import hmac
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import auth
from tests.signing import idaas_headers

URL = "https://hooks.example.net/webhooks/prod"
BODY = b'{"id":"d-1","type":"user.created","accountId":"a","eventTime":"2027-02-10T14:05:33Z","data":{}}'
TOKEN = "s3cr3t-token"
NOW = 1_802_345_678


def request(
    headers: dict[str, str], body: bytes = BODY, url: str = URL, method: str = "POST"
) -> auth.SignedRequest:
    lower = {key.lower(): value for key, value in headers.items()}
    signed = auth.SignedHeaders(
        method=method,
        target_uri=url,
        content_digest=lower.get("content-digest"),
        signature_input=lower.get("signature-input"),
        signature=lower.get("signature"),
        legacy_signature=lower.get("x-sha2-signature"),
    )
    return auth.SignedRequest(signed, body)


def verify(headers: dict[str, str], **kwargs: object) -> auth.AuthFailure | None:
    return auth.verify(request(headers, **kwargs), [TOKEN], now=NOW, window=300)  # type: ignore[arg-type]


def test_rfc9421_b25_hmac_example_signature_base_and_mac() -> None:
    # RFC 9421 Appendix B.2.5: the shared-secret key and the expected signature are from the RFC text.
    key = base64.b64decode(
        "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="
    )
    base = auth.signature_base(
        [
            ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
            ("@authority", "example.com"),
            ("content-type", "application/json"),
        ],
        '("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"',
    )
    assert (
        base64.b64encode(auth.hmac_sha256(key, base)).decode()
        == "pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8="
    )


def test_rfc9530_sha256_digest_example() -> None:
    # RFC 9530 §2 example: the body {"hello": "world"} followed by a newline.
    assert (
        auth.content_digest(b'{"hello": "world"}\n')
        == "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
    )


def test_a_correctly_signed_idaas_delivery_verifies() -> None:
    assert verify(idaas_headers(TOKEN, URL, BODY, created=NOW)) is None


def test_sha512_content_digest_is_accepted() -> None:
    assert verify(idaas_headers(TOKEN, URL, BODY, created=NOW, digest="sha-512")) is None


def test_either_of_two_rotation_tokens_verifies() -> None:
    headers = idaas_headers("new-token", URL, BODY, created=NOW)
    assert auth.verify(request(headers), ["old-token", "new-token"], now=NOW, window=300) is None
    assert auth.verify(request(headers), ["old-token"], now=NOW, window=300) is not None


def test_parameters_are_taken_from_the_exact_text_received() -> None:
    params = '("@method" "@target-uri" "content-digest");keyid="idaas";alg="hmac-sha256";nonce="n1"'
    assert verify(idaas_headers(TOKEN, URL, BODY, params=params)) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda h: h.update({"Signature": "sig=:" + base64.b64encode(b"x" * 32).decode() + ":"}),
            "signature_mismatch",
        ),
        (lambda h: h.pop("Signature"), "missing_signature_headers"),
        (lambda h: h.pop("Content-Digest"), "missing_signature_headers"),
        (lambda h: h.pop("Signature-Input"), "missing_signature_headers"),
        (lambda h: h.update({"Content-Digest": "md5=:AAAA:"}), "unsupported_digest_algorithm"),
        # The HMAC covers the Content-Digest header as sent: an altered one fails the signature before the
        # body is read (a body unlike a signed digest: test_tampered_body_is_rejected_by_the_digest).
        (
            lambda h: h.update({"Content-Digest": "sha-256=:" + base64.b64encode(b"\0" * 32).decode() + ":"}),
            "signature_mismatch",
        ),
        (lambda h: h.update({"Content-Digest": "sha-256=AAAA"}), "malformed_content_digest"),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace("sig=", "other=")}),
            "missing_label",
        ),
        (lambda h: h.update({"Signature": "sig=AAAA"}), "malformed_signature"),
        (lambda h: h.update({"Signature-Input": 'sig=("@method"'}), "malformed_signature_input"),
        (lambda h: h.update({"Signature-Input": 'sig="@method"'}), "malformed_signature_input"),
    ],
)
def test_each_broken_header_is_rejected_with_its_reason(change: object, reason: str) -> None:
    headers = idaas_headers(TOKEN, URL, BODY, created=NOW)
    change(headers)  # type: ignore[operator]
    failure = verify(headers)
    assert failure is not None and failure.reason == reason, failure


def test_wrong_token_is_rejected() -> None:
    failure = verify(idaas_headers("not-the-token", URL, BODY, created=NOW))
    assert failure is not None and failure.reason == "signature_mismatch"


def test_tampered_body_is_rejected_by_the_digest() -> None:
    headers = idaas_headers(TOKEN, URL, BODY, created=NOW)
    failure = verify(headers, body=BODY.replace(b"user.created", b"user.deleted"))
    assert failure is not None and failure.reason == "content_digest_mismatch"


def test_a_body_with_a_recomputed_digest_still_fails_the_hmac() -> None:
    tampered = BODY.replace(b"user.created", b"user.deleted")
    headers = idaas_headers(TOKEN, URL, BODY, created=NOW)
    headers["Content-Digest"] = auth.content_digest(tampered)
    failure = verify(headers, body=tampered)
    assert failure is not None and failure.reason == "signature_mismatch"


def test_wrong_target_uri_is_rejected() -> None:
    headers = idaas_headers(TOKEN, "https://other.example/webhooks/prod", BODY, created=NOW)
    failure = verify(headers)
    assert failure is not None and failure.reason == "signature_mismatch"


def test_wrong_method_is_rejected() -> None:
    failure = verify(idaas_headers(TOKEN, URL, BODY, created=NOW), method="PUT")
    assert failure is not None and failure.reason == "signature_mismatch"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ('("@method" "@target-uri");created=1802345678', "unexpected_components"),
        (
            '("@method" "@target-uri" "content-digest" "content-type");created=1802345678',
            "unexpected_components",
        ),
        ('("@method" "@target-uri" "content-digest";sf);created=1802345678', "unexpected_components"),
        ('("@method" "@target-uri" "content-digest");alg="rsa-pss-sha512"', "unsupported_algorithm"),
        ('("@method" "@target-uri" "content-digest");color="red"', "unsupported_parameter"),
        ('("@method" "@target-uri" "content-digest");created=1802340000', "created_outside_window"),
        ('("@method" "@target-uri" "content-digest");created=1802350000', "created_outside_window"),
        ('("@method" "@target-uri" "content-digest");expires=1802345000', "expired"),
        ('("@method" "@target-uri" "content-digest");created="soon"', "malformed_signature_input"),
    ],
)
def test_profile_violations_are_rejected_even_when_correctly_signed(params: str, reason: str) -> None:
    failure = verify(idaas_headers(TOKEN, URL, BODY, params=params))
    assert failure is not None and failure.reason == reason, failure


def test_components_in_another_order_are_verified_in_the_order_sent() -> None:
    params = '("content-digest" "@method" "@target-uri");created=1802345678'
    digest = auth.content_digest(BODY)
    base = auth.signature_base(
        [("content-digest", digest), ("@method", "POST"), ("@target-uri", URL)], params
    )
    mac = base64.b64encode(auth.hmac_sha256(TOKEN.encode(), base)).decode()
    headers = {"Content-Digest": digest, "Signature-Input": f"sig={params}", "Signature": f"sig=:{mac}:"}
    assert verify(headers) is None


def test_legacy_hex_signature_only_when_enabled() -> None:
    headers = {"x-sha2-signature": hmac.new(TOKEN.encode(), BODY, hashlib.sha256).hexdigest()}
    assert auth.verify(request(headers), [TOKEN], now=NOW, window=300, legacy=True) is None
    refused = auth.verify(request(headers), [TOKEN], now=NOW, window=300, legacy=False)
    assert refused is not None and refused.reason == "missing_signature_headers"
    headers["x-sha2-signature"] = "00" * 32
    wrong = auth.verify(request(headers), [TOKEN], now=NOW, window=300, legacy=True)
    assert wrong is not None and wrong.reason == "legacy_signature_mismatch"
    # Header values arrive as latin-1 text: a non-ASCII one is a 401 like any other, not an exception.
    headers["x-sha2-signature"] = "\xe9" * 64
    odd = auth.verify(request(headers), [TOKEN], now=NOW, window=300, legacy=True)
    assert odd is not None and odd.reason == "legacy_signature_mismatch"


def test_bridge_signer_matches_the_independent_signer() -> None:
    ours = auth.sign(TOKEN, "POST", URL, BODY, NOW)
    theirs = idaas_headers(TOKEN, URL, BODY, created=NOW)
    assert ours["signature"] == theirs["Signature"]
    assert ours["content-digest"] == theirs["Content-Digest"]


def headers_only(headers: dict[str, str], legacy: bool = False) -> auth.AuthFailure | auth.BodyCheck:
    lower = {key.lower(): value for key, value in headers.items()}
    signed = auth.SignedHeaders(
        method="POST",
        target_uri=URL,
        content_digest=lower.get("content-digest"),
        signature_input=lower.get("signature-input"),
        signature=lower.get("signature"),
        legacy_signature=lower.get("x-sha2-signature"),
    )
    return auth.verify_headers(signed, [TOKEN], now=NOW, window=300, legacy=legacy)


def test_the_signature_is_verified_from_the_headers_alone_and_the_body_against_the_signed_digest() -> None:
    check = headers_only(idaas_headers(TOKEN, URL, BODY, created=NOW))
    assert isinstance(check, auth.DigestCheck) and check.signed
    assert check.verify(BODY) is None
    wrong = check.verify(BODY + b" ")
    assert wrong is not None and wrong.reason == "content_digest_mismatch" and wrong.well_formed


def test_a_forged_signature_is_refused_before_the_body() -> None:
    failure = headers_only(idaas_headers("not-the-token", URL, BODY, created=NOW))
    assert isinstance(failure, auth.AuthFailure) and failure.reason == "signature_mismatch"


@pytest.mark.parametrize(
    ("headers", "well_formed"),
    [
        # Shaped as IDaaS signs: a wrong token, URL or clock is what auto-disables a real webhook.
        (idaas_headers("not-the-token", URL, BODY, created=NOW), True),
        (idaas_headers(TOKEN, "https://other.example/webhooks/prod", BODY, created=NOW), True),
        (idaas_headers(TOKEN, URL, BODY, created=NOW - 3600), True),
        (idaas_headers(TOKEN, URL, BODY, params='("@method" "@target-uri");created=1802345678'), True),
        # Junk: nothing IDaaS would send.
        ({}, False),
        ({"Signature": "sig=:AAAA:"}, False),
        (idaas_headers(TOKEN, URL, BODY, created=NOW) | {"Signature-Input": "sig=(((("}, False),
        (idaas_headers(TOKEN, URL, BODY, created=NOW) | {"Content-Digest": "md5=:AAAA:"}, False),
        (idaas_headers(TOKEN, URL, BODY, created=NOW) | {"Signature": "other=:AAAA:"}, False),
        (idaas_headers(TOKEN, URL, BODY, created=NOW) | {"Signature": "sig=AAAA"}, False),
    ],
)
def test_only_signatures_shaped_like_idaas_ones_are_well_formed(
    headers: dict[str, str], well_formed: bool
) -> None:
    failure = headers_only(headers)
    assert isinstance(failure, auth.AuthFailure)
    assert failure.well_formed is well_formed, failure


def test_legacy_signature_needs_the_body_unless_it_cannot_be_a_hex_hmac() -> None:
    check = headers_only({"x-sha2-signature": "AB" * 32}, legacy=True)
    assert isinstance(check, auth.LegacyCheck) and not check.signed
    mismatch = check.verify(BODY)
    assert mismatch is not None and mismatch.well_formed
    for junk in ("", "zz" * 32, "ab" * 31, "\xe9" * 64):
        refused = headers_only({"x-sha2-signature": junk}, legacy=True)
        assert isinstance(refused, auth.AuthFailure), junk
        assert refused.reason == "legacy_signature_mismatch" and not refused.well_formed


# --- the IDaaS-shape fast path reads what the RFC 8941 parser reads ------------------------------------

SIGNED = idaas_headers(TOKEN, URL, BODY, created=NOW)
#: Characters the mutations draw from: every one that is structural in the three headers, and some that
#: no header may carry.
MUTATION_ALPHABET = [*'sig=()"@:;,?*-.1aZ/+ \\\t\x00é09AQrcdelmotuw', "sha-512", "created", ";alg"]


def three_headers(headers: dict[str, str]) -> tuple[str, str, str]:
    return headers["Content-Digest"], headers["Signature-Input"], headers["Signature"]


@pytest.mark.parametrize("digest", ["sha-256", "sha-512"])
def test_deliveries_signed_as_idaas_signs_take_the_fast_path_and_read_the_same(digest: str) -> None:
    headers = three_headers(idaas_headers(TOKEN, URL, BODY, created=NOW, digest=digest))
    fast = auth._read_idaas_shape(*headers)
    assert fast is not None
    assert fast == auth._read_any_shape(*headers)


@pytest.mark.parametrize(
    "headers",
    [
        SIGNED | {"Signature-Input": SIGNED["Signature-Input"].replace(';alg="hmac-sha256"', "")},
        SIGNED | {"Signature-Input": SIGNED["Signature-Input"].replace('"hmac-sha256"', "hmac-sha256")},
        SIGNED | {"Signature": SIGNED["Signature"].rstrip("=:") + ":"},  # unpadded base64
        SIGNED | {"Content-Digest": " " + SIGNED["Content-Digest"]},
        SIGNED | {"Content-Digest": SIGNED["Content-Digest"] + ", " + auth.content_digest(BODY, "sha-512")},
        SIGNED | {"Signature": SIGNED["Signature"] + ";keyid=1"},
    ],
)
def test_other_valid_shapes_take_the_parser(headers: dict[str, str]) -> None:
    assert auth._read_idaas_shape(*three_headers(headers)) is None
    assert not isinstance(auth._read_any_shape(*three_headers(headers)), auth.AuthFailure)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """`text` with a few characters replaced, inserted or deleted."""
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from(MUTATION_ALPHABET))
        edit = draw(st.sampled_from(["replace", "insert", "delete"]))
        if edit == "replace":
            text = text[:at] + piece + text[at + 1 :]
        elif edit == "insert":
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + text[at + 1 :]
    return text


@settings(max_examples=3000, deadline=None)
@given(
    content_digest=st.one_of(
        mutated(SIGNED["Content-Digest"]),
        mutated(auth.content_digest(BODY, "sha-512")),
        st.builds(lambda data: f"sha-256=:{base64.b64encode(data).decode()}:", st.binary(max_size=70)),
    ),
    signature_input=st.one_of(
        mutated(SIGNED["Signature-Input"]),
        st.builds(
            lambda created: (
                f'sig=("@method" "@target-uri" "content-digest");created={created};alg="hmac-sha256"'
            ),
            st.from_regex(r"-?[0-9]{0,17}", fullmatch=True),
        ),
    ),
    signature=mutated(SIGNED["Signature"]),
    now=st.sampled_from([NOW, NOW + 400, NOW - 400]),
)
def test_the_fast_path_never_changes_a_verdict(
    content_digest: str, signature_input: str, signature: str, now: int
) -> None:
    """Differential: whenever the patterns accept headers, the parser reads exactly the same from them,
    and verification ends the same with and without the fast path (verdict, reason, detail, well_formed)."""
    fast = auth._read_idaas_shape(content_digest, signature_input, signature)
    if fast is not None:
        assert fast == auth._read_any_shape(content_digest, signature_input, signature)
    signed = auth.SignedHeaders("POST", URL, content_digest, signature_input, signature)
    outcome = auth.verify_headers(signed, [TOKEN], now=now, window=300)
    with mock.patch.object(auth, "_read_idaas_shape", return_value=None):
        assert auth.verify_headers(signed, [TOKEN], now=now, window=300) == outcome


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=100), st.binary(max_size=300))
def test_the_mac_from_keyed_states_is_the_standard_library_hmac(token: str, base: bytes) -> None:
    """Tokens longer than SHA-256's 64-byte block included (RFC 2104 hashes those first)."""
    assert auth._token_mac(token, base) == hmac.new(token.encode(), base, hashlib.sha256).digest()
    assert auth._token_mac(token, base) == auth.hmac_sha256(
        token.encode(), base
    )  # from the remembered states
