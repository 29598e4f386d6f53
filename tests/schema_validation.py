"""Validators for the bridge's output formats, driven by the schema projects' own data files.

The ECS and OCSF rules are read from the unmodified schema releases (never copied into the project), found in
`$IDAAS_SCHEMAS_DIR` or else `../shared/schemas` next to the project root; a test that needs one skips
with the path it looked at when it is absent. Every validator returns a list of errors (empty = valid) so a
failing test shows all of them at once.

- ECS: every leaf must be an ECS 9.4.0 field (or sit under the vendor namespace), of its Elasticsearch type,
  an array exactly where ECS normalizes to one, within its allowed values, with `event.type` among the values
  ECS expects for the `event.category` present; required fields present; no nulls, no empty objects.
- OCSF: the class is resolved as the OCSF server compiles it (`$include` merged under the including file's
  own definitions, profile attributes tagged with their profile, `extends` deep-merged parent first,
  dictionary definitions under both), then checked as the server's validator does: required attributes,
  unknown attributes, types and type patterns, enum values, constraints, `type_uid`. Stricter than the
  server where it only warns: enum captions must match their sibling, nothing deprecated, `metadata.version`
  must be the schema's.
- HEC: the envelope Splunk Connect for Kafka parses in pre-formatted mode, and the CIM fields the data model
  its `action` selects requires.
- Native: the JSON Schema of `idaas.event/1` below (the bridge's own contract).

It also holds the inputs every format test shares: the 16 sample deliveries, one of a type the catalog does
not know, and the 8 examples Entrust publishes (tests/idaas_examples, copied verbatim with their sources),
normalized as the "prod" webhook at a fixed receive time.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final, TypeGuard, get_args

import jsonschema  # type: ignore[import-untyped]
import orjson
import pytest
import yaml

from bridge.events.catalog import EVENT_TYPES, Category, EventType, Variant, lookup
from bridge.events.envelope import parse_envelope
from bridge.events.model import Event
from bridge.events.normalize import normalize
from bridge.events.samples import sample_deliveries

SCHEMAS_ENV: Final = "IDAAS_SCHEMAS_DIR"
PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]
#: The vendor's own example payloads, one `<type>.json` each, verbatim (see SOURCES.md there).
VENDOR_EXAMPLES_DIR: Final = PROJECT_ROOT / "tests" / "idaas_examples"
VENDOR_EXAMPLE_PREFIX: Final = "vendor-example."
ECS_FLAT: Final = "ecs-9.4.0/ecs_flat.yml"
OCSF_DIR: Final = "ocsf-1.8.0"
VENDOR_NAMESPACE: Final = "entrust_idaas"

Json = Any

RECEIVED_AT: Final = datetime(2027, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
WEBHOOK: Final = "prod"
UNKNOWN_DELIVERY: Final = {
    "id": "01a7e5f0-0000-7000-8000-000000000001",
    "type": "device.trusted",
    "accountId": "5e1f0a2b-3c4d-4e5f-9a6b-7c8d9e0f1a2b",
    "eventTime": "2027-02-17T10:00:00.250+01:00",
    "data": {"subject": "d3c2b1a0-9f8e-4d7c-8b6a-5f4e3d2c1b0a", "deviceName": "Pixel 9", "whatever": [1, 2]},
}


@cache
def vendor_examples() -> tuple[dict[str, Json], ...]:
    """The documented examples, in file name order."""
    return tuple(
        json.loads(path.read_text(encoding="utf-8")) for path in sorted(VENDOR_EXAMPLES_DIR.glob("*.json"))
    )


def deliveries() -> list[dict[str, Json]]:
    """The 16 sample deliveries, one of a type this release does not know, then the vendor's examples."""
    return [*sample_deliveries(), UNKNOWN_DELIVERY, *vendor_examples()]


def case_name(delivery: Mapping[str, Json]) -> str:
    """The IDaaS type (prefixed for a vendor example), or `unknown-type` for the delivery no row describes."""
    if any(delivery is example for example in vendor_examples()):
        return f"{VENDOR_EXAMPLE_PREFIX}{delivery['type']}"
    return str(delivery["type"]) if lookup(str(delivery["type"])) is not None else "unknown-type"


def variant_delivery(row: EventType, variant: Variant | None) -> dict[str, Json]:
    """The sample of `row` with `data` changed so that normalization selects `variant` (None: none of the
    row's variants, its own classification). A row without variants gets its sample unchanged."""
    sample = next(delivery for delivery in sample_deliveries() if delivery["type"] == row.name)
    if not row.variants:
        return sample
    data = copy.deepcopy(sample["data"])
    if row.category == "magiclink":
        link_types = {None: "Invitation", "registration-link": "Registration", "sign-in-link": "Sign-In"}
        data["entityAttributes"]["magicLinkType"] = link_types[variant]
    elif row.category in ("grid", "face"):
        pending = {"grid": ("state", "PENDING"), "face": ("status", "ACTIVATING")}
        key, value = pending[row.category]
        data["entityAttributes"][key] = value if variant == "factor-pending" else "ACTIVE"
    elif row.category == "password" and variant == "password-reset":
        data.update(
            subject="0f9e8d7c-6b5a-4f3e-9d2c-1b0a9f8e7d6c",
            subjectName="ops.admin",
            resourceName="Administration Portal",
            subscriberAdminRoleName="Help Desk Administrator",
        )
    return {**sample, "data": data}


def classified_deliveries() -> list[tuple[EventType, Variant | None, dict[str, Json]]]:
    """For every row, a delivery for its own classification and one for each of its variants."""
    return [
        (row, variant, variant_delivery(row, variant))
        for row in EVENT_TYPES
        for variant in (None, *row.variants)
    ]


def normalized(delivery: Mapping[str, Json]) -> Event:
    return normalize(parse_envelope(orjson.dumps(delivery)), WEBHOOK, RECEIVED_AT)


def schemas_dir() -> Path:
    override = os.environ.get(SCHEMAS_ENV)
    return Path(override) if override else PROJECT_ROOT.parent / "shared" / "schemas"


def schema_path_or_skip(relative: str) -> Path:
    """The schema file or directory, or skip the calling test saying where it was looked for."""
    path = schemas_dir() / relative
    if not path.exists():
        pytest.skip(f"schema data {path} is absent (set {SCHEMAS_ENV} to the directory holding {relative})")
    return path


# ---------------------------------------------------------------------------------------------------- ECS


@dataclass(frozen=True, slots=True)
class EcsField:
    type: str
    array: bool
    required: bool
    allowed: frozenset[str] | None
    #: For `event.category` only: category → the `event.type` values ECS expects with it.
    expected_types: Mapping[str, frozenset[str]]
    pattern: str | None
    object_type: str | None


@dataclass(frozen=True, slots=True, repr=False)
class EcsSchema:
    fields: Mapping[str, EcsField]

    def __repr__(self) -> str:  # short, for test reports
        return f"EcsSchema({len(self.fields)} fields)"


@cache
def load_ecs(path: Path) -> EcsSchema:
    flat = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    fields: dict[str, EcsField] = {}
    for name, spec in flat.items():
        allowed = spec.get("allowed_values")
        fields[name] = EcsField(
            type=spec["type"],
            array="array" in spec.get("normalize", ()),
            required=bool(spec.get("required")),
            allowed=frozenset(value["name"] for value in allowed) if allowed else None,
            expected_types={
                value["name"]: frozenset(value["expected_event_types"])
                for value in allowed or ()
                if "expected_event_types" in value
            },
            pattern=spec.get("pattern"),
            object_type=spec.get("object_type"),
        )
    return EcsSchema(fields)


def _is_date(value: Json) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _is_ip(value: Json) -> bool:
    if not isinstance(value, str):
        return False  # ip_address() would take an int
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_integer(value: Json) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Json) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


#: Elasticsearch field type → the JSON values a document may hold for it (as ECS documents them).
ES_TYPES: Final[dict[str, Callable[[Json], bool]]] = {
    "keyword": lambda v: isinstance(v, str),
    "constant_keyword": lambda v: isinstance(v, str),
    "wildcard": lambda v: isinstance(v, str),
    "match_only_text": lambda v: isinstance(v, str),
    "long": _is_integer,
    "integer": _is_integer,
    "float": _is_number,
    "double": _is_number,
    "scaled_float": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "date": _is_date,
    "ip": _is_ip,
    "flattened": lambda v: isinstance(v, dict),
    "nested": lambda v: isinstance(v, dict),
    "geo_point": lambda v: isinstance(v, dict | str),
    "object": lambda v: isinstance(v, dict),
}


def _ecs_value_errors(path: str, value: Json, field: EcsField) -> list[str]:
    if field.array != isinstance(value, list) or value == []:
        shape = "a non-empty array" if field.array else "a single value"
        return [f"{path}: ECS normalizes this field to {shape}, got {value!r}"]
    errors = []
    for item in value if field.array else [value]:
        if not ES_TYPES[field.type](item):
            errors.append(f"{path}: {item!r} is not a valid ECS {field.type}")
        elif field.object_type is not None and not all(
            ES_TYPES[field.object_type](inner) for inner in item.values()
        ):
            errors.append(f"{path}: values must be of type {field.object_type}, got {item!r}")
        elif field.allowed is not None and item not in field.allowed:
            errors.append(f"{path}: {item!r} is not an allowed value ({', '.join(sorted(field.allowed))})")
        elif field.pattern is not None and not re.search(field.pattern, item):
            errors.append(f"{path}: {item!r} does not match {field.pattern}")
    return errors


def _leaves(
    node: Mapping[str, Json], prefix: str, fields: Mapping[str, EcsField]
) -> Iterator[tuple[str, Json]]:
    """(dotted path, value) for every ECS field in `node`; objects that are not fields are descended into."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        if path not in fields and isinstance(value, dict) and value:
            yield from _leaves(value, f"{path}.", fields)
        else:
            yield path, value


def _nulls(node: Json, path: str) -> Iterator[str]:
    if node is None or node == {}:
        yield path
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _nulls(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _nulls(value, f"{path}[{index}]")


def validate_ecs(document: Mapping[str, Json], schema: EcsSchema) -> list[str]:
    """ECS rules for the ECS fields; the vendor namespace is only checked to be an object without nulls at
    its top (below that it passes IDaaS values through, which Elasticsearch maps dynamically)."""
    fields = schema.fields
    ecs_part = {key: value for key, value in document.items() if key != VENDOR_NAMESPACE}
    errors = [f"{path}: null or empty object (omit the field instead)" for path in _nulls(ecs_part, "")]
    if any(name.startswith(f"{VENDOR_NAMESPACE}.") for name in fields):
        errors.append(f"vendor namespace {VENDOR_NAMESPACE!r} collides with an ECS field set")
    vendor = document.get(VENDOR_NAMESPACE, {})
    if not isinstance(vendor, dict) or not vendor or None in vendor.values():
        errors.append(f"{VENDOR_NAMESPACE}: the vendor namespace must be a non-empty object without nulls")
    present: dict[str, Json] = {}
    for path, value in _leaves(ecs_part, "", fields):
        field = fields.get(path)
        if field is None:
            errors.append(f"{path}: not an ECS 9.4.0 field (vendor fields belong under {VENDOR_NAMESPACE}.*)")
        elif value is not None:
            present[path] = value
            errors.extend(_ecs_value_errors(path, value, field))
    errors.extend(
        f"{name}: required by ECS" for name, f in fields.items() if f.required and name not in present
    )
    categories, types = present.get("event.category", []), present.get("event.type", [])
    if isinstance(categories, list) and isinstance(types, list):
        expected = fields["event.category"].expected_types
        allowed = set().union(*(expected.get(category, frozenset()) for category in categories))
        errors.extend(
            f"event.type: {kind!r} is not expected with event.category {categories}"
            for kind in types
            if categories and kind not in allowed
        )
    return errors


# --------------------------------------------------------------------------------------------------- OCSF


@dataclass(frozen=True, slots=True)
class OcsfAttribute:
    type: str
    is_object: bool
    is_array: bool
    requirement: str
    #: enum value (as a string) → caption.
    enum: Mapping[str, str] | None
    sibling: str | None
    profile: str | None
    deprecated: bool
    deprecated_values: frozenset[str]


@dataclass(frozen=True, slots=True)
class OcsfItem:
    """A compiled class or object: its attributes with every inherited and included definition applied."""

    name: str
    attributes: Mapping[str, OcsfAttribute]
    constraints: Mapping[str, list[str]]


@dataclass(frozen=True, slots=True, repr=False)
class OcsfSchema:
    version: str
    types: Mapping[str, Mapping[str, Json]]
    classes: Mapping[int, OcsfItem]
    objects: Mapping[str, OcsfItem]

    def __repr__(self) -> str:  # short, for test reports
        return f"OcsfSchema({self.version}: {len(self.classes)} classes, {len(self.objects)} objects)"


def deep_merge(base: Json, override: Json) -> Json:
    """The OCSF server's `Utils.deep_merge`: objects merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return override


def _read_with_includes(root: Path, relative: str) -> dict[str, Json]:
    """A schema file with its `$include`s resolved as the server's JsonReader does."""
    data: dict[str, Json] = json.loads((root / relative).read_text(encoding="utf-8"))
    attributes = data.get("attributes", {})
    if data.get("meta") == "profile":
        annotations = data.get("annotations", {})
        attributes = {
            name: deep_merge(annotations, {**attribute, "profile": data["name"]})
            for name, attribute in attributes.items()
        }
    includes = attributes.pop("$include", [])
    for include in [includes] if isinstance(includes, str) else includes:
        attributes = deep_merge(_read_with_includes(root, include)["attributes"], attributes)
    for name, attribute in attributes.items():
        if isinstance(attribute, dict) and "$include" in attribute:
            included = json.loads((root / attribute.pop("$include")).read_text(encoding="utf-8"))
            attributes[name] = deep_merge(included, attribute)
    return {**data, "attributes": attributes}


def _resolve_extends(name: str, raw: Mapping[str, dict[str, Json]]) -> dict[str, Json]:
    item = raw[name]
    parent = item.get("extends")
    if parent is None:
        return item
    base = _resolve_extends(parent, raw)
    return {**base, **item, "attributes": deep_merge(base["attributes"], item["attributes"])}


def _compile(
    item: Mapping[str, Json],
    dictionary: Mapping[str, Json],
    types: Mapping[str, Json],
    enums: Mapping[str, Json],
) -> OcsfItem:
    """Each attribute as the dictionary defines it, overridden by the item's own definition; `enums`
    replaces an attribute's enum outright."""
    attributes = {}
    for name, own in item["attributes"].items():
        spec = deep_merge(dictionary[name], own)
        enum = enums.get(name, spec.get("enum"))
        attributes[name] = OcsfAttribute(
            type=spec["type"],
            is_object=spec["type"] not in types,
            is_array=bool(spec.get("is_array")),
            requirement=spec.get("requirement") or "optional",
            enum={key: value.get("caption", "") for key, value in enum.items()} if enum is not None else None,
            sibling=spec.get("sibling"),
            profile=spec.get("profile"),
            deprecated="@deprecated" in spec,
            deprecated_values=frozenset(k for k, v in (enum or {}).items() if "@deprecated" in v),
        )
    return OcsfItem(item["name"], attributes, item.get("constraints", {}))


@cache
def load_ocsf(root: Path) -> OcsfSchema:
    dictionary_file = json.loads((root / "dictionary.json").read_text(encoding="utf-8"))
    dictionary, types = dictionary_file["attributes"], dictionary_file["types"]["attributes"]
    categories = json.loads((root / "categories.json").read_text(encoding="utf-8"))["attributes"]
    raw_objects = {
        path.stem: _read_with_includes(root, str(path.relative_to(root)))
        for path in sorted((root / "objects").glob("*.json"))
    }
    raw_classes = {}
    for path in sorted((root / "events").rglob("*.json")):
        data = _read_with_includes(root, str(path.relative_to(root)))
        raw_classes[data["name"]] = data
    objects = {
        name: _compile(_resolve_extends(name, raw_objects), dictionary, types, {})
        for name in raw_objects
        if not name.startswith("_")
    }
    classes = {}
    for name in raw_classes:
        resolved = _resolve_extends(name, raw_classes)
        if name == "base_event":
            class_uid, category_uid, category_caption = 0, 0, "Uncategorized"
        elif "uid" in resolved:
            category = categories[resolved["category"]]
            category_uid, category_caption = category["uid"], category["caption"]
            class_uid = category_uid * 1000 + resolved["uid"]
        else:
            continue  # an abstract parent such as `iam`
        # As the server's cache does: a class accepts only its own class and category uid.
        enums = {
            "class_uid": {str(class_uid): {"caption": resolved["caption"]}},
            "category_uid": {str(category_uid): {"caption": category_caption}},
        }
        classes[class_uid] = _compile(resolved, dictionary, types, enums)
    version = json.loads((root / "version.json").read_text(encoding="utf-8"))["version"]
    return OcsfSchema(version, types, classes, objects)


#: OCSF primitive type → the JSON values it accepts (the server's validator: a float_t must be a float).
OCSF_PRIMITIVES: Final[dict[str, Callable[[Json], bool]]] = {
    "boolean_t": lambda v: isinstance(v, bool),
    "integer_t": _is_integer,
    "long_t": _is_integer,
    "float_t": lambda v: isinstance(v, float),
    "string_t": lambda v: isinstance(v, str),
    "json_t": lambda v: True,
}


def _primitive_errors(
    path: str, value: Json, type_name: str, types: Mapping[str, Mapping[str, Json]]
) -> list[str]:
    spec = types[type_name]
    base = spec.get("type", type_name)
    if not OCSF_PRIMITIVES[base](value):
        return [f"{path}: {value!r} is not a {type_name}"]
    if "max_len" in spec and len(value) > spec["max_len"]:
        return [f"{path}: longer than {spec['max_len']} characters"]
    if "regex" in spec and not re.search(spec["regex"], value):
        return [f"{path}: {value!r} does not match the {type_name} pattern"]
    if "range" in spec and not spec["range"][0] <= value <= spec["range"][1]:
        return [f"{path}: {value} is outside {spec['range']}"]
    return []


def _enum_errors(path: str, item: Mapping[str, Json], name: str, attribute: OcsfAttribute) -> list[str]:
    assert attribute.enum is not None
    values = item[name] if attribute.is_array else [item[name]]
    siblings: Json = item.get(attribute.sibling) if attribute.sibling else None
    errors: list[str] = []
    for index, value in enumerate(values):
        where = f"{path}{name}" + (f"[{index}]" if attribute.is_array else "")
        key = str(value)
        if key not in attribute.enum:
            errors.append(f"{where}: {value!r} is not one of {sorted(attribute.enum, key=int)}")
            continue
        if key in attribute.deprecated_values:
            errors.append(f"{where}: enum value {value!r} is deprecated")
        sibling = (siblings[index] if index < len(siblings) else None) if attribute.is_array else siblings
        if siblings is None:
            continue
        if value == 99 and sibling == attribute.enum[key]:
            errors.append(f"{path}{attribute.sibling}: for 99 use the source's own value, not {sibling!r}")
        elif value != 99 and sibling != attribute.enum[key]:
            errors.append(f"{path}{attribute.sibling}: {sibling!r} should be {attribute.enum[key]!r}")
    return errors


def _item_errors(
    node: Json, item: OcsfItem, path: str, profiles: frozenset[str], schema: OcsfSchema
) -> list[str]:
    if not isinstance(node, dict):
        return [f"{path.rstrip('.') or 'event'}: {node!r} is not a {item.name} object"]
    attributes = {n: a for n, a in item.attributes.items() if a.profile is None or a.profile in profiles}
    errors: list[str] = []
    if attributes:  # `object` has none: an open-ended object such as `unmapped`
        errors.extend(
            f"{path}{key}: not an attribute of {item.name}" for key in node if key not in attributes
        )
    for name, attribute in attributes.items():
        value = node.get(name)
        if value is None:
            if attribute.requirement == "required":
                errors.append(f"{path}{name}: required by {item.name}")
            continue
        if attribute.deprecated:
            errors.append(f"{path}{name}: deprecated in OCSF {schema.version}")
        if attribute.is_array != isinstance(value, list):
            errors.append(f"{path}{name}: {'an array' if attribute.is_array else 'a single value'} expected")
            continue
        value_errors = []
        for index, element in enumerate(value if attribute.is_array else [value]):
            where = f"{path}{name}" + (f"[{index}]" if attribute.is_array else "")
            if attribute.is_object:
                object_item = schema.objects[attribute.type]
                value_errors.extend(_item_errors(element, object_item, f"{where}.", profiles, schema))
            else:
                value_errors.extend(_primitive_errors(where, element, attribute.type, schema.types))
        errors.extend(value_errors)
        if attribute.enum is not None and not value_errors:
            errors.extend(_enum_errors(path, node, name, attribute))
    for kind, names in item.constraints.items():
        count = sum(name in node for name in names)
        if (kind == "at_least_one" and count == 0) or (kind == "just_one" and count != 1):
            where = path.rstrip(".") or "event"
            errors.append(f"{where}: constraint {kind} of {names} not met by {item.name}")
    return errors


def validate_ocsf(event: Mapping[str, Json], schema: OcsfSchema) -> list[str]:
    class_uid = event.get("class_uid")
    if not _is_integer(class_uid) or class_uid not in schema.classes:
        return [f"class_uid: {class_uid!r} is no OCSF {schema.version} class"]
    metadata = event.get("metadata")
    profiles = frozenset(metadata.get("profiles", ()) if isinstance(metadata, dict) else ())
    errors = _item_errors(event, schema.classes[class_uid], "", profiles, schema)
    if isinstance(metadata, dict) and metadata.get("version") != schema.version:
        errors.append(f"metadata.version: {metadata.get('version')!r}, the schema is {schema.version}")
    activity_id, type_uid = event.get("activity_id"), event.get("type_uid")
    if _is_integer(activity_id) and type_uid != class_uid * 100 + activity_id:
        errors.append(f"type_uid: {type_uid!r} is not class_uid * 100 + activity_id")
    return errors


def required_paths(
    node: Json, item: OcsfItem, schema: OcsfSchema, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every required attribute present in an emitted event, as key paths (for mutation tests)."""
    for name, attribute in item.attributes.items():
        if name not in node:
            continue
        if attribute.requirement == "required":
            yield (*prefix, name)
        if attribute.is_object and not attribute.is_array and isinstance(node[name], dict):
            yield from required_paths(node[name], schema.objects[attribute.type], schema, (*prefix, name))


# ---------------------------------------------------------------------------------------------------- HEC

HEC_KEYS: Final = frozenset({"time", "host", "source", "sourcetype", "index", "event", "fields"})
SOURCETYPES: Final = frozenset(f"entrust:idaas:{category}" for category in get_args(Category))
#: CIM `action` → (data model, dataset): the datasets' own constraints in the CIM data models (Authentication:
#: Successful_Authentication `action="success"`, Failed_Authentication `action="failure"`; Change >
#: Account_Management, entered by `tag=account`: Accounts_Created `action="created"`, Accounts_Deleted
#: `action="deleted"`, Accounts_Updated `action="updated" OR action="modified"`). deploy/splunk's eventtypes
#: tag by the same values.
CIM_DATASETS: Final = {
    "success": ("Authentication", "Successful_Authentication"),
    "failure": ("Authentication", "Failed_Authentication"),
    "created": ("Change", "Accounts_Created"),
    "deleted": ("Change", "Accounts_Deleted"),
    "modified": ("Change", "Accounts_Updated"),
}
CIM_MODELS: Final = {action: model for action, (model, _) in CIM_DATASETS.items()}
#: The fields each model requires of every event in it (Change: of All_Changes, which Account_Management
#: inherits; `object_attrs` and `object_id` only "if applicable", so not here).
CIM_REQUIRED: Final = {
    "Authentication": ("action", "app", "src", "dest", "user"),
    "Change": (
        "action",
        "status",
        "change_type",
        "command",
        "object",
        "object_category",
        "user",
        "src",
        "dest",
        "dvc",
        "vendor_product",
    ),
}


def _cim_errors(event: Mapping[str, Json]) -> list[str]:
    action = event.get("action")
    if action is None:
        return []  # in no data model: searchable by sourcetype only
    model = CIM_MODELS.get(action)
    if model is None:
        return [f"event.action: {action!r} puts the event in no CIM data model"]
    errors = [
        f"event.{name}: required by the CIM {model} model"
        for name in CIM_REQUIRED[model]
        if not isinstance(event.get(name), str) or not event[name]
    ]
    if model == "Change":
        if event.get("status") not in ("success", "failure"):
            errors.append(f"event.status: {event.get('status')!r} is not success or failure")
        if event.get("object_category") != "user":
            errors.append("event.object_category: account changes must be 'user'")
    return errors


def validate_hec(raw: bytes) -> list[str]:
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return [f"not JSON: {exc}"]
    if not isinstance(envelope, dict):
        return ["the envelope must be a JSON object"]
    errors = [
        f"{key}: not a HEC envelope key (the connector's parse fails)"
        for key in envelope
        if key not in HEC_KEYS
    ]
    time = envelope.get("time")
    if not _is_number(time) or time <= 0 or abs(time * 1000 - round(time * 1000)) > 1e-3:
        errors.append(f"time: {time!r} is not epoch seconds with at most millisecond precision")
    for key in ("host", "source", "sourcetype"):
        if not isinstance(envelope.get(key), str) or not envelope[key]:
            errors.append(f"{key}: a non-empty string is required")
    if "index" in envelope and (not isinstance(envelope["index"], str) or not envelope["index"]):
        errors.append("index: must be a non-empty string when present")
    if envelope.get("sourcetype") not in SOURCETYPES:
        errors.append(f"sourcetype: {envelope.get('sourcetype')!r} is not entrust:idaas:<category>")
    fields = envelope.get("fields", {})
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        errors.append(
            f"fields: must map names to strings (the connector's Map<String, String>), got {fields!r}"
        )
    event = envelope.get("event")
    if isinstance(event, dict) and event:
        errors.extend(_cim_errors(event))
    elif not isinstance(event, str) or not event:
        errors.append("event: a non-empty object or string is required")
    return errors


# ------------------------------------------------------------------------------------------------- native

_PARTY: Final = {
    "type": ["object", "null"],
    "required": ["id", "name", "type"],
    "additionalProperties": False,
    "properties": {key: {"type": ["string", "null"]} for key in ("id", "name", "type")},
}
_TIME: Final = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"}
_TEXT: Final = {"type": ["string", "null"]}
#: `idaas.event/1`, the contract of the native format (see docs/siem.md).
NATIVE_SCHEMA: Final = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "schema",
        "id",
        "type",
        "category",
        "action",
        "outcome",
        "account_id",
        "occurred_at",
        "received_at",
        "webhook",
        "initiated_by",
        "admin_role",
        "subject",
        "user",
        "entity",
        "source",
        "resource",
        "authenticator",
        "reason",
        "data",
    ],
    "properties": {
        "schema": {"const": "idaas.event/1"},
        "id": {"type": "string", "minLength": 1},
        "type": {"type": "string", "minLength": 1},
        "category": {"enum": list(get_args(Category))},
        "action": {"type": "string", "minLength": 1},
        "outcome": {"enum": ["success", "failure", "unknown"]},
        "account_id": {"type": "string", "minLength": 1},
        "occurred_at": _TIME,
        "received_at": _TIME,
        "webhook": {"type": "string", "minLength": 1},
        "initiated_by": {"enum": ["admin", "user"]},
        "admin_role": _TEXT,
        "subject": {**_PARTY, "type": "object"},
        "user": {**_PARTY, "type": "object"},
        "entity": _PARTY,
        "source": {
            "type": "object",
            "required": ["ip"],
            "additionalProperties": False,
            "properties": {"ip": _TEXT},
        },
        "resource": _TEXT,
        "authenticator": _TEXT,
        "reason": _TEXT,
        "data": {"type": "object"},
    },
}


def validate_native(document: Json) -> list[str]:
    validator = jsonschema.Draft202012Validator(NATIVE_SCHEMA)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]
