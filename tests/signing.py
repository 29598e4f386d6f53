"""A test-side IDaaS signer written from RFC 9421/9530 directly, independent of bridge.auth.

The e2e and unit tests sign with this, so a bug in the bridge's verifier cannot hide behind the same bug
in the signer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def idaas_headers(
    token: str,
    url: str,
    body: bytes,
    *,
    created: int | None = None,
    digest: str = "sha-256",
    params: str | None = None,
    method: str = "POST",
) -> dict[str, str]:
    hasher = hashlib.sha256 if digest == "sha-256" else hashlib.sha512
    content_digest = f"{digest}=:{base64.b64encode(hasher(body).digest()).decode()}:"
    if params is None:
        stamp = int(time.time()) if created is None else created
        params = f'("@method" "@target-uri" "content-digest");created={stamp};alg="hmac-sha256"'
    base = (
        f'"@method": {method}\n"@target-uri": {url}\n"content-digest": {content_digest}\n'
        f'"@signature-params": {params}'
    )
    mac = hmac.new(token.encode("utf-8"), base.encode(), hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "Content-Digest": content_digest,
        "Signature-Input": f"sig={params}",
        "Signature": f"sig=:{base64.b64encode(mac).decode()}:",
    }
