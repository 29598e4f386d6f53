"""One example delivery of each documented event type, as in the IDaaS docs (values made up).

Used by `idaas-bridge simulate` to exercise a deployment end to end, and by the tests as the canonical input.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def sample_deliveries() -> tuple[dict[str, Any], ...]:
    """The 16 sample envelopes, in catalog order."""
    text = resources.files("bridge.events").joinpath("samples.json").read_text(encoding="utf-8")
    return tuple(json.loads(text))
