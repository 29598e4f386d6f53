"""The example payloads Entrust publishes, through every format: no field of `data` is lost.

For each example and each format the test walks every key of `data` (and of `data.entityAttributes`) and
finds its value where that format maps it, and always in the format's documented field for the original
`data` (native `data`, ECS `event.original`, OCSF `raw_data`, HEC `event.data`); OCSF's `unmapped` must
hold every field OCSF has no attribute for. The schema validity and the golden files of the same
documents are checked in test_formats_schemas.py and test_formats_golden.py (cases `vendor-example.*`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.formats import FORMATS
from tests.schema_validation import PROJECT_ROOT, VENDOR_EXAMPLES_DIR, normalized, vendor_examples

EXAMPLES = vendor_examples()
Document = dict[str, Any]
#: Where a format puts a `data` key verbatim: a function of the document, or None where it has no place.
Place = Callable[[Document], object]


def _at(*path: str | int) -> Place:
    def get(document: Document) -> object:
        node: Any = document
        for step in path:
            node = node[step]
        return node

    return get


def keys_of(data: dict[str, Any]) -> Iterator[tuple[str, ...]]:
    """Every key of `data`, and of each object under it one level down (entityAttributes), as paths."""
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from ((key, inner) for inner in value)
        else:
            yield (key,)


def value_at(data: dict[str, Any], path: tuple[str, ...]) -> object:
    node: Any = data
    for key in path:
        node = node[key]
    return node


#: format → key of `data` → where the format maps it for the examples' events (all of them name a user
#: subject and an IP). Keys not listed have no verbatim place in that format.
PLACES: dict[str, dict[str, Place]] = {
    "native": {
        "subject": _at("subject", "id"),
        "subjectName": _at("subject", "name"),
        "subjectType": _at("subject", "type"),
        "resourceName": _at("resource"),
        "sourceIp": _at("source", "ip"),
        "subscriberAdminRoleName": _at("admin_role"),
        "token": _at("authenticator"),
        "entityType": _at("entity", "type"),
        "entityId": _at("entity", "id"),
        "entityName": _at("entity", "name"),
    },
    "ecs": {
        "subject": _at("user", "id"),
        "subjectName": _at("user", "name"),
        "resourceName": _at("entrust_idaas", "resource_name"),
        "sourceIp": _at("source", "ip"),
        "subscriberAdminRoleName": _at("user", "roles", 0),
        "token": _at("entrust_idaas", "authenticator"),
        "entityType": _at("entrust_idaas", "entity", "type"),
        "entityId": _at("entrust_idaas", "entity", "id"),
        "entityName": _at("entrust_idaas", "entity", "name"),
        "entityAttributes": _at("entrust_idaas", "entity", "attributes"),
    },
    "ocsf": {
        "subject": _at("actor", "user", "uid"),
        "subjectName": _at("actor", "user", "name"),
        "resourceName": _at("actor", "app_name"),
        "sourceIp": _at("src_endpoint", "ip"),
    },
    "splunk_hec": {
        "resourceName": _at("event", "dest"),
        "sourceIp": _at("event", "src"),
    },
}
#: The field holding the whole `data` object, decoded.
ORIGINAL: dict[str, Place] = {
    "native": _at("data"),
    "ecs": lambda document: json.loads(document["event"]["original"]),
    "ocsf": lambda document: json.loads(document["raw_data"]),
    "splunk_hec": _at("event", "data"),
}
#: `data` keys OCSF represents, but not verbatim: `subjectType` USER is the user's `type_id`, `token` the
#: `auth_factors` (tested in test_classification.py). Every other key without a place is under `unmapped`.
OCSF_REPRESENTED: frozenset[str] = frozenset({"subjectType", "token"})

CASES = [(name, example) for name in sorted(FORMATS) for example in EXAMPLES]


def test_the_eight_documented_examples_are_there() -> None:
    assert sorted(example["type"] for example in EXAMPLES) == [
        "authentication.succeeded", "face.biometric.created", "grid.created", "kba.question.created",
        "magiclink.email.sent", "passkey.created", "password.updated", "user.created",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("format_name", "example"), CASES, ids=[f"{name}-{example['type']}" for name, example in CASES]
)
def test_every_key_of_data_is_in_each_format(format_name: str, example: dict[str, Any]) -> None:
    document: Document = json.loads(FORMATS[format_name].encode(normalized(example)))
    data = example["data"]
    assert ORIGINAL[format_name](document) == data
    places = PLACES[format_name]
    walked = list(keys_of(data))
    assert len(walked) >= 7
    for path in walked:
        expected = value_at(data, path)
        top = path[0]
        if top in places:
            assert value_at({top: places[top](document)}, path) == expected, (format_name, path)
        elif format_name == "ocsf" and top not in OCSF_REPRESENTED:
            assert value_at(document["unmapped"], path) == expected, path
        # And whatever the place, the original has it:
        assert value_at(ORIGINAL[format_name](document), path) == expected, (format_name, path)


def test_the_copies_are_the_shared_originals_verbatim() -> None:
    shared = PROJECT_ROOT.parent / "shared" / "idaas-examples"
    if not shared.is_dir():
        pytest.skip(f"{shared} is absent: nothing to compare the copies with")
    copies = sorted(path.name for path in VENDOR_EXAMPLES_DIR.iterdir())
    assert copies == sorted(path.name for path in shared.iterdir())
    for name in copies:
        assert (VENDOR_EXAMPLES_DIR / name).read_bytes() == (shared / name).read_bytes(), name


@pytest.mark.parametrize("example", EXAMPLES, ids=[example["type"] for example in EXAMPLES])
def test_the_provenance_table_in_docs_lists_exactly_the_fields_the_example_confirms(
    example: dict[str, Any],
) -> None:
    docs = (PROJECT_ROOT / "docs/siem.md").read_text()
    line = next(line for line in docs.splitlines() if line.startswith(f"| `{example['type']}` | [yes]("))
    confirmed_cell = line.strip("|").split("|")[2]
    listed = re.findall(r"`([^`]+)`", confirmed_cell)
    assert listed == [".".join(path) for path in keys_of(example["data"])]
