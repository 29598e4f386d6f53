"""Authenticating IDaaS deliveries: RFC 9421 HTTP Message Signatures, HMAC-SHA256, the IDaaS profile.

The profile (../shared/idaas-webhooks.md, part 1): label `sig`, covered components exactly `@method`,
`@target-uri`, `content-digest`; `alg`, if sent, `hmac-sha256`; `Content-Digest` in sha-256 or sha-512
(RFC 9530) checked against the raw body; the HMAC key is the UTF-8 bytes of the webhook token; two tokens may
be valid at once during rotation. A failure returns a reason from a small fixed set (it becomes a metric
label and the 401 body), never an exception.

Verification has two steps because the signature covers the `Content-Digest` header, not the body:
`verify_headers` checks the HMAC from the headers alone, so a forged request is refused before a byte of its
body is read, and returns the check the body must then pass (its digest). The legacy scheme signs the body
itself; it can only be checked once the body is read.

The three signature headers are read in one of two ways. Deliveries shaped exactly as IDaaS signs them
(one `sig` member, the three components in the profile's order, `created` then `alg="hmac-sha256"`, one
padded sha-256 or sha-512 digest) are recognized by three compiled patterns; anything else goes through
the general RFC 8941 parser. Both produce the same `_Signature`, checked by the same code, so the verdict
and every failure reason are the parser's (tests/unit/test_auth.py compares the two readings). The parser
was about two thirds of verification's CPU per delivery.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from bridge.structured_fields import Item, StructuredFieldError, Token, parse_dictionary

LABEL: Final = "sig"
ALGORITHM: Final = "hmac-sha256"
COMPONENTS: Final = ("@method", "@target-uri", "content-digest")
DIGESTS: Final = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
KNOWN_PARAMETERS: Final = frozenset({"created", "expires", "keyid", "nonce", "alg", "tag"})
LEGACY_HEADER: Final = "x-sha2-signature"
#: The headers verification parses. IDaaS's values are ~100 bytes; the HTTP protocol answers 431 to a
#: request whose value of one of them (repeated fields summed) is larger, before anything here runs, so the
#: RFC 8941 parser never sees a large input.
SIGNATURE_HEADERS: Final = ("content-digest", "signature-input", "signature", LEGACY_HEADER)
MAX_SIGNATURE_HEADER_BYTES: Final = 4096
#: A hex HMAC-SHA256: what a genuine legacy header looks like.
LEGACY_HEX: Final = re.compile(r"[0-9a-f]{64}")

#: Base64 characters, then at most two `=`: with a length that is a multiple of 4 (`_read_idaas_shape`
#: checks it) this is padded base64 of whole bytes, which the RFC 8941 parser decodes to the same bytes and
#: never refuses. Checking the length after the match costs a third of matching groups of four.
_PADDED_BASE64: Final = r"[A-Za-z0-9+/]*={0,2}"
#: The IDaaS profile's headers, exactly (../shared/idaas-webhooks.md, part 1); the groups are what
#: verification reads from them.
_IDAAS_CONTENT_DIGEST: Final = re.compile(rf"(sha-256|sha-512)=:({_PADDED_BASE64}):")
_IDAAS_COVERED: Final = re.escape("(" + " ".join(f'"{name}"' for name in COMPONENTS) + ")")
_IDAAS_SIGNATURE_INPUT: Final = re.compile(
    rf'{LABEL}=({_IDAAS_COVERED};created=([0-9]{{1,15}});alg="{ALGORITHM}")'
)
_IDAAS_SIGNATURE: Final = re.compile(rf"{LABEL}=:({_PADDED_BASE64}):")

#: Every reason verification can fail for; bounded, because each is a metric label value.
REASONS: Final = (
    "missing_signature_headers",
    "malformed_content_digest",
    "unsupported_digest_algorithm",
    "content_digest_mismatch",
    "malformed_signature_input",
    "malformed_signature",
    "missing_label",
    "unexpected_components",
    "unsupported_algorithm",
    "unsupported_parameter",
    "created_outside_window",
    "expired",
    "signature_mismatch",
    "legacy_signature_mismatch",
)


# The value types here are dataclasses with a hand-written __init__ and Final fields, for the reason
# bridge/events/model.py gives.


@dataclass(init=False)
class AuthFailure:
    """Why a delivery was not authenticated: a fixed `reason` code and a human `detail`.

    `well_formed` says whether the request carried a signature shaped as IDaaS sends one (parseable
    headers with the `sig` label, or a 64-digit hex legacy value): only such a failure can be IDaaS's own
    delivery, rejected for a wrong token or URL, so only such failures count toward auto-disable.
    """

    reason: Final[str]
    detail: Final[str]
    well_formed: Final[bool]

    def __init__(self, reason: str, detail: str, well_formed: bool = False) -> None:
        self.reason = reason
        self.detail = detail
        self.well_formed = well_formed


@dataclass(init=False)
class SignedHeaders:
    """What verification reads before the body; header values are as received (combined if repeated)."""

    method: Final[str]
    target_uri: Final[str]
    content_digest: Final[str | None]
    signature_input: Final[str | None]
    signature: Final[str | None]
    legacy_signature: Final[str | None]

    def __init__(
        self,
        method: str,
        target_uri: str,
        content_digest: str | None,
        signature_input: str | None,
        signature: str | None,
        legacy_signature: str | None = None,
    ) -> None:
        self.method = method
        self.target_uri = target_uri
        self.content_digest = content_digest
        self.signature_input = signature_input
        self.signature = signature
        self.legacy_signature = legacy_signature


@dataclass(init=False)
class SignedRequest:
    """A whole request: the headers and the raw body."""

    headers: Final[SignedHeaders]
    body: Final[bytes]

    def __init__(self, headers: SignedHeaders, body: bytes) -> None:
        self.headers = headers
        self.body = body


@dataclass(init=False)
class DigestCheck:
    """RFC 9421: the HMAC over the headers verified (it signs Content-Digest, not the body), so the sender
    holds the token or replays a genuine delivery; the body only has to match the digests it committed to."""

    digests: Final[tuple[tuple[str, bytes], ...]]

    def __init__(self, digests: tuple[tuple[str, bytes], ...]) -> None:
        self.digests = digests

    @property
    def signed(self) -> bool:
        """A property rather than a ClassVar: mypyc compiles a dataclass without one."""
        return True

    def verify(self, body: bytes) -> AuthFailure | None:
        for name, digest in self.digests:
            if not hmac.compare_digest(digest, DIGESTS[name](body).digest()):
                return AuthFailure(
                    "content_digest_mismatch",
                    f"Content-Digest {name} does not match the body",
                    well_formed=True,
                )
        return None


@dataclass(init=False)
class LegacyCheck:
    """The pre-RFC 9421 scheme: the HMAC covers the body, so nothing is authenticated until it is read."""

    received: Final[bytes]
    tokens: Final[tuple[str, ...]]

    def __init__(self, received: bytes, tokens: tuple[str, ...]) -> None:
        self.received = received
        self.tokens = tokens

    @property
    def signed(self) -> bool:
        return False

    def verify(self, body: bytes) -> AuthFailure | None:
        for token in self.tokens:
            expected = hmac.new(token.encode(), body, hashlib.sha256).hexdigest().encode()
            if hmac.compare_digest(expected, self.received):
                return None
        return AuthFailure(
            "legacy_signature_mismatch", "x-sha2-signature does not match the body", well_formed=True
        )


#: What remains to check once the headers passed.
BodyCheck = DigestCheck | LegacyCheck


def signature_base(components: Sequence[tuple[str, str]], signature_params: str) -> bytes:
    """RFC 9421 §2.5: one `"name": value` line per covered component, then `@signature-params`."""
    lines = [f'"{name}": {value}' for name, value in components]
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode()


def hmac_sha256(key: bytes, base: bytes) -> bytes:
    return hmac.new(key, base, hashlib.sha256).digest()


#: Tokens of all webhooks, two per webhook during a rotation: a handful in any configuration.
KEYED_STATES: Final = 64
#: SHA-256's block size: RFC 2104 pads (or first hashes) the key to it.
_SHA256_BLOCK: Final = 64


@functools.lru_cache(maxsize=KEYED_STATES)
def _keyed(token: str) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC-SHA256's inner and outer hash states already keyed with `token` (RFC 2104: the key padded to a
    block, XORed with 0x36 for the inner hash and 0x5c for the outer). Keying is the same for every delivery,
    so each delivery copies these states; hashlib's states directly, because `hmac.HMAC`'s `copy`, `update`
    and `digest` wrap the same work in Python calls that cost about as much as the hashing."""
    key = token.encode()
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return (
        hashlib.sha256(bytes(byte ^ 0x36 for byte in key)),
        hashlib.sha256(bytes(byte ^ 0x5C for byte in key)),
    )


def _token_mac(token: str, base: bytes) -> bytes:
    """`hmac_sha256(token.encode(), base)`, from the token's keyed states."""
    keyed_inner, keyed_outer = _keyed(token)
    inner = keyed_inner.copy()
    inner.update(base)
    outer = keyed_outer.copy()
    outer.update(inner.digest())
    return outer.digest()


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The RFC 9530 `Content-Digest` header value for `body`."""
    return f"{algorithm}=:{base64.b64encode(DIGESTS[algorithm](body).digest()).decode()}:"


def sign(token: str, method: str, target_uri: str, body: bytes, created: int) -> dict[str, str]:
    """Headers exactly as IDaaS signs a delivery; used by `idaas-bridge simulate` and the benchmark."""
    digest = content_digest(body)
    params = f'("@method" "@target-uri" "content-digest");created={created};alg="{ALGORITHM}"'
    base = signature_base(
        [("@method", method.upper()), ("@target-uri", target_uri), ("content-digest", digest)], params
    )
    signature = base64.b64encode(hmac_sha256(token.encode(), base)).decode()
    return {
        "content-digest": digest,
        "signature-input": f"{LABEL}={params}",
        "signature": f"{LABEL}=:{signature}:",
        "content-type": "application/json",
    }


def _parse_digest(header: str) -> AuthFailure | tuple[tuple[str, bytes], ...]:
    """The supported (algorithm, digest) pairs of a Content-Digest header, checked for shape only."""
    try:
        members = parse_dictionary(header)
    except StructuredFieldError as exc:
        return AuthFailure(
            "malformed_content_digest", f"Content-Digest is not a structured dictionary: {exc}"
        )
    supported = [name for name in members if name in DIGESTS]
    if not supported:
        return AuthFailure(
            "unsupported_digest_algorithm",
            f"Content-Digest has {', '.join(members) or 'no'} digest; only sha-256 and sha-512 are accepted",
        )
    digests = []
    for name in supported:
        value = members[name].value
        if not isinstance(value, Item) or not isinstance(value.value, bytes):
            return AuthFailure("malformed_content_digest", f"Content-Digest {name} is not a byte sequence")
        digests.append((name, value.value))
    return tuple(digests)


def _check_parameters(params: Mapping[str, object], now: float, window: int) -> AuthFailure | None:
    if not KNOWN_PARAMETERS.issuperset(params):
        unknown = sorted(set(params) - KNOWN_PARAMETERS)
        return AuthFailure(
            "unsupported_parameter", f"Signature-Input has unknown parameter(s) {unknown}", well_formed=True
        )
    alg = params.get("alg")
    if alg is not None and alg != ALGORITHM:
        return AuthFailure(
            "unsupported_algorithm", f'alg is {alg!r}; the IDaaS profile uses "{ALGORITHM}"', well_formed=True
        )
    created = params.get("created")
    if created is not None:
        if not isinstance(created, int) or isinstance(created, bool):
            return AuthFailure("malformed_signature_input", "created must be an integer (Unix seconds)")
        if abs(now - created) > window:
            return AuthFailure(
                "created_outside_window",
                f"created={created} is {int(now - created)} s from now; allowed ±{window} s (check clocks)",
                well_formed=True,
            )
    expires = params.get("expires")
    if expires is not None:
        if not isinstance(expires, int) or isinstance(expires, bool):
            return AuthFailure("malformed_signature_input", "expires must be an integer (Unix seconds)")
        if expires < now:
            return AuthFailure("expired", f"expires={expires} is in the past", well_formed=True)
    for name in ("keyid", "nonce", "tag"):
        if name in params and not isinstance(params[name], str):
            return AuthFailure("malformed_signature_input", f"{name} must be a string")
    return None


@dataclass(init=False)
class _Signature:
    """What verification reads from the three signature headers, whichever way they were read."""

    digests: Final[tuple[tuple[str, bytes], ...]]
    #: The covered components in the order sent: the signature base lists them in that order.
    components: Final[tuple[str, ...]]
    #: The `sig` member's parameters, tokens as their text.
    params: Final[dict[str, object]]
    #: The `sig` member's exact text: the base's `@signature-params` line.
    signature_params: Final[str]
    mac: Final[bytes]

    def __init__(
        self,
        digests: tuple[tuple[str, bytes], ...],
        components: tuple[str, ...],
        params: dict[str, object],
        signature_params: str,
        mac: bytes,
    ) -> None:
        self.digests = digests
        self.components = components
        self.params = params
        self.signature_params = signature_params
        self.mac = mac


def _read_idaas_shape(content_digest: str, signature_input: str, signature: str) -> _Signature | None:
    """The headers of a delivery signed exactly as IDaaS signs, read by pattern; None for any other shape.
    For every input it accepts, it reads what `_read_any_shape` reads (the patterns admit only values the
    RFC 8941 parser reads the same way)."""
    digest = _IDAAS_CONTENT_DIGEST.fullmatch(content_digest)
    member = _IDAAS_SIGNATURE_INPUT.fullmatch(signature_input)
    signed = _IDAAS_SIGNATURE.fullmatch(signature)
    if digest is None or member is None or signed is None:
        return None
    algorithm, encoded_digest = digest.groups()
    signature_params, created = member.groups()
    encoded_mac = signed.group(1)
    if len(encoded_digest) % 4 or len(encoded_mac) % 4:
        return None
    # The patterns admit only padded base64: a2b_base64 decodes it as b64decode would, without its wrapper.
    return _Signature(
        ((algorithm, binascii.a2b_base64(encoded_digest)),),
        COMPONENTS,
        {"created": int(created), "alg": ALGORITHM},
        signature_params,
        binascii.a2b_base64(encoded_mac),
    )


def _read_any_shape(content_digest: str, signature_input: str, signature: str) -> AuthFailure | _Signature:
    """The headers read by the general RFC 8941 parser, or the first reason they cannot be verified."""
    digests = _parse_digest(content_digest)
    if isinstance(digests, AuthFailure):
        return digests
    try:
        inputs = parse_dictionary(signature_input)
    except StructuredFieldError as exc:
        return AuthFailure("malformed_signature_input", f"Signature-Input: {exc}")
    try:
        signatures = parse_dictionary(signature)
    except StructuredFieldError as exc:
        return AuthFailure("malformed_signature", f"Signature: {exc}")
    member = inputs.get(LABEL)
    signed = signatures.get(LABEL)
    if member is None or signed is None:
        return AuthFailure("missing_label", f'Signature-Input and Signature need a member labelled "{LABEL}"')
    if not isinstance(member.value, list):
        return AuthFailure("malformed_signature_input", "the sig member must be an inner list of components")
    if not isinstance(signed.value, Item) or not isinstance(signed.value.value, bytes):
        return AuthFailure("malformed_signature", "the sig member of Signature must be a byte sequence")
    # From here on the request is shaped like an IDaaS delivery: its failures count toward auto-disable.
    names = [item.value for item in member.value]
    if sorted(map(str, names)) != sorted(COMPONENTS) or any(
        item.params or not isinstance(item.value, str) for item in member.value
    ):
        return AuthFailure(
            "unexpected_components",
            f"covered components are {names}; the IDaaS profile signs exactly {list(COMPONENTS)}",
            well_formed=True,
        )
    return _Signature(
        digests=digests,
        components=tuple(map(str, names)),
        params={
            key: (value.value if isinstance(value, Token) else value) for key, value in member.params.items()
        },
        signature_params=member.text,
        mac=signed.value.value,
    )


def verify_headers(
    request: SignedHeaders, tokens: Sequence[str], now: float, window: int, legacy: bool = False
) -> AuthFailure | BodyCheck:
    """Everything that can be checked before the body is read: a failure (answer 401 at once), or what
    the body must still satisfy."""
    if legacy and request.legacy_signature is not None and request.signature_input is None:
        return _legacy_headers(request.legacy_signature, tokens)
    if request.content_digest is None or request.signature_input is None or request.signature is None:
        return _missing_headers(request)
    headers = (request.content_digest, request.signature_input, request.signature)
    signature = _read_idaas_shape(*headers) or _read_any_shape(*headers)
    if isinstance(signature, AuthFailure):
        return signature
    failure = _check_parameters(signature.params, now, window)
    if failure is not None:
        return failure
    values = {
        "@method": request.method.upper(),
        "@target-uri": request.target_uri,
        "content-digest": request.content_digest.strip(),
    }
    base = signature_base([(name, values[name]) for name in signature.components], signature.signature_params)
    for token in tokens:
        if hmac.compare_digest(_token_mac(token, base), signature.mac):
            return DigestCheck(signature.digests)
    return AuthFailure(
        "signature_mismatch",
        f"HMAC does not match for @target-uri {request.target_uri!r}: wrong token, or a public URL that "
        "differs from the callback URL registered in IDaaS (set public_url)",
        well_formed=True,
    )


def _missing_headers(request: SignedHeaders) -> AuthFailure:
    named = (
        ("Content-Digest", request.content_digest),
        ("Signature-Input", request.signature_input),
        ("Signature", request.signature),
    )
    missing = ", ".join(name for name, value in named if value is None)
    return AuthFailure("missing_signature_headers", f"missing header(s): {missing}")


def verify(
    request: SignedRequest, tokens: Sequence[str], now: float, window: int, legacy: bool = False
) -> AuthFailure | None:
    """None when `request` is signed by one of `tokens` under the IDaaS profile, else why not."""
    outcome = verify_headers(request.headers, tokens, now, window, legacy)
    if isinstance(outcome, AuthFailure):
        return outcome
    return outcome.verify(request.body)


def _legacy_headers(header: str, tokens: Sequence[str]) -> AuthFailure | LegacyCheck:
    """The legacy `x-sha2-signature` (opt-in only): 64 hex digits, or it cannot match any HMAC."""
    # A header may carry any latin-1 text; only ASCII hex passes, so compare_digest then sees plain bytes.
    received = header.strip().lower()
    if not LEGACY_HEX.fullmatch(received):
        return AuthFailure("legacy_signature_mismatch", "x-sha2-signature is not 64 hex digits")
    return LegacyCheck(received.encode(), tuple(tokens))
