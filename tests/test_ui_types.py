"""The UI's TypeScript API types (ui/src/types.ts) against the live OpenAPI document: every interface has
exactly its schema's fields, optional where the schema does not require them, of the same kinds (string,
number, a named schema, a list or map of one, nullable or not); every union of strings has its enum's
values; the event names are the event stream's. An API change the UI has not followed fails here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fleet import Fleet

pytestmark = pytest.mark.fleet

TYPES = Path(__file__).resolve().parent.parent / "ui" / "src" / "types.ts"

# TypeScript interfaces that stand for a schema of another name, less some of its fields.
SCHEMA_OF = {"JobOptions": ("GenerateRequest", {"prompt"})}
# The data of event-stream events: JSON inside `data:`, which OpenAPI does not describe field by field.
NOT_IN_OPENAPI = {"JobEventSummary", "JobStageEvent"}
EVENTS_PATH = "/3d/events/{job_id}"


@dataclass(frozen=True)
class Field:
    optional: bool
    kinds: frozenset[str]


def _strip_comments(source: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)


def _split_union(text: str) -> list[str]:
    """``A | B<C | D> | E[]`` → the top-level alternatives."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "<"
        depth -= char == ">"
        if char == "|" and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [p for p in parts if p]


def ts_kind(text: str) -> str:
    text = text.strip()
    if text.endswith("[]"):
        return f"array:{ts_kind(text[:-2])}"
    record = re.fullmatch(r"Record<\s*string\s*,\s*(.+)>", text)
    if record:
        return f"object:{ts_kind(record.group(1))}"
    if text in ("string", "number", "boolean", "null"):
        return text
    if text == "unknown":
        return "any"
    return f"ref:{text}"


def parse_types(source: str) -> tuple[dict[str, set[str]], dict[str, dict[str, Field]]]:
    """The string unions (name → values) and interfaces (name → fields) that types.ts exports."""
    source = _strip_comments(source)
    unions = {
        name: set(re.findall(r"'([^']*)'", body))
        for name, body in re.findall(r"export type (\w+)\s*=\s*([^;]+);", source)
    }
    interfaces: dict[str, dict[str, Field]] = {}
    for name, body in re.findall(r"export interface (\w+)\s*\{(.*?)\n\}", source, flags=re.S):
        fields = {}
        for field, optional, kind in re.findall(r"^\s*(\w+)(\??):\s*([^;]+);", body, flags=re.M):
            fields[field] = Field(bool(optional), frozenset(ts_kind(k) for k in _split_union(kind)))
        interfaces[name] = fields
    return unions, interfaces


def schema_kinds(schema: dict[str, Any]) -> frozenset[str]:
    if "anyOf" in schema:
        return frozenset(k for option in schema["anyOf"] for k in schema_kinds(option))
    if "$ref" in schema:
        return frozenset({f"ref:{schema['$ref'].rsplit('/', 1)[-1]}"})
    kind = schema.get("type")
    if kind == "array":
        return frozenset(f"array:{k}" for k in schema_kinds(schema.get("items", {})))
    if kind == "object":
        extra = schema.get("additionalProperties", True)
        return frozenset(f"object:{k}" for k in (schema_kinds(extra) if isinstance(extra, dict) else {"any"}))
    if kind in ("integer", "number"):
        return frozenset({"number"})
    if kind in ("string", "boolean", "null"):
        return frozenset({kind})
    return frozenset({"any"})


@pytest.fixture(scope="module")
def openapi(fleet: Fleet) -> dict[str, Any]:
    response = httpx.get(f"{fleet.api}/openapi.json", timeout=30)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(scope="module")
def types() -> tuple[dict[str, set[str]], dict[str, dict[str, Field]]]:
    return parse_types(TYPES.read_text())


def test_the_parser_reads_types_ts_as_written() -> None:
    unions, interfaces = parse_types(
        "/** doc */\nexport type A = 'x' | 'y';\nexport interface B {\n  a: string;\n"
        "  /** why */\n  b?: C[] | null;\n  c: Record<string, unknown>;\n}\n"
    )
    assert unions == {"A": {"x", "y"}}
    assert interfaces["B"] == {
        "a": Field(False, frozenset({"string"})),
        "b": Field(True, frozenset({"array:ref:C", "null"})),
        "c": Field(False, frozenset({"object:any"})),
    }


def test_every_ts_interface_matches_its_schema(openapi: dict[str, Any], types: tuple) -> None:
    schemas = openapi["components"]["schemas"]
    _, interfaces = types
    checked = []
    for name, fields in interfaces.items():
        if name in NOT_IN_OPENAPI:
            continue
        schema_name, left_out = SCHEMA_OF.get(name, (name, set()))
        assert schema_name in schemas, f"types.ts has {name}, the OpenAPI document no {schema_name}"
        schema = schemas[schema_name]
        properties = {k: v for k, v in schema.get("properties", {}).items() if k not in left_out}
        required = set(schema.get("required", [])) - left_out
        assert set(fields) == set(properties), (
            f"{name}: only in types.ts {sorted(set(fields) - set(properties))}, "
            f"only in the schema {sorted(set(properties) - set(fields))}"
        )
        for field, ts in fields.items():
            assert ts.optional == (field not in required), (
                f"{name}.{field}: {'optional' if ts.optional else 'required'} in types.ts, "
                f"{'required' if field in required else 'optional'} in the schema"
            )
            expected = schema_kinds(properties[field])
            assert ts.kinds == expected, (
                f"{name}.{field}: {sorted(ts.kinds)} in types.ts, {sorted(expected)} in the schema"
            )
        checked.append(name)
    assert {"JobStatus", "JobList", "JobView", "HealthResponse", "JobOptions"} <= set(checked)


def test_every_ts_union_has_its_enums_values(openapi: dict[str, Any], types: tuple) -> None:
    schemas = openapi["components"]["schemas"]
    unions, _ = types
    events = openapi["paths"][EVENTS_PATH]["get"]["responses"]["200"]["content"]["text/event-stream"]
    enums = {name: set(s["enum"]) for name, s in schemas.items() if "enum" in s}
    enums["JobEventName"] = set(events["schema"]["properties"]["event"]["enum"])
    for name, values in unions.items():
        assert name in enums, f"types.ts has the union {name}, the OpenAPI document no enum of that name"
        assert values == enums[name], (
            f"{name}: {sorted(values)} in types.ts, {sorted(enums[name])} in the schema"
        )
    # Every enum a UI type refers to is mirrored.
    referred = {
        k[4:]
        for fields in types[1].values()
        for f in fields.values()
        for k in f.kinds
        if k.startswith("ref:")
    }
    assert referred & set(enums) <= set(unions)
