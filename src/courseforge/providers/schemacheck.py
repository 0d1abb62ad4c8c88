"""A light JSON Schema check for model answers: the subset our draft schemas use.

Why not the `jsonschema` package: it is one more dependency for a check that runs on every
answer, and our schemas (`domain.drafts.json_schema_of`) use a small, fixed set of keywords:
type, enum, const, properties, required, items, min/maxItems, min/maxLength, minimum/maximum,
anyOf/oneOf/allOf. Unknown keywords are ignored. Two leniencies match what the pipeline's
pydantic parsers accept, so the check never rejects an answer the pipeline could use:
`additionalProperties: false` is not enforced (drafts ignore extra keys) and an integer may be
written as an integral float (3.0).

`repair_to_schema` fixes, by the schema, what can be fixed without guessing content: items past
`maxItems` dropped (a gateway that does not enforce it sends citations the schema forbids),
keys `additionalProperties: false` forbids dropped, a string past `maxLength` cut at the last
sentence end that fits (else the last word). Each repair is named, so the caller can log it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["repair_to_schema", "schema_errors"]

_SENTENCE_ENDS = (". ", "! ", "? ", ".\n", "!\n", "?\n")

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES.get(name, (object,)))


def schema_errors(value: Any, schema: Mapping[str, Any], *, limit: int = 5) -> list[str]:
    """Up to `limit` problems of `value` against `schema`, as "path: reason"; [] when valid."""
    out: list[str] = []
    _check(value, schema, "$", out, limit)
    return out[:limit]


def _check(value: Any, schema: Mapping[str, Any], path: str, out: list[str], limit: int) -> None:
    if len(out) >= limit or not isinstance(schema, Mapping):
        return
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, k) for k in kinds):
            out.append(f"{path}: expected {'/'.join(kinds)}, got {type(value).__name__}")
            return
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: must be {schema['const']!r}")
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = schema[key]
            if not any(not schema_errors(value, branch, limit=1) for branch in branches):
                out.append(f"{path}: matches none of the {key} alternatives")
    for branch in schema.get("allOf", []):
        _check(value, branch, path, out, limit)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            out.append(f"{path}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{path}: longer than {schema['maxLength']} characters")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{path}: below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{path}: above the maximum {schema['maximum']}")
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{path}: more than {schema['maxItems']} items")
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                _check(item, items, f"{path}[{i}]", out, limit)
    elif isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{path}: missing required key {name!r}")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                _check(value[name], sub, f"{path}.{name}", out, limit)


def repair_to_schema(value: Any, schema: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """`value` with the safe repairs applied (a new value; the input is not changed) and the
    list of repairs made, as "path: what was done"; ([], value) when nothing needed it. Call
    `schema_errors` on the result: what a repair cannot fix is still an error there."""
    repairs: list[str] = []
    return _repair(value, schema, "$", repairs), repairs


def _repair(value: Any, schema: Mapping[str, Any], path: str, repairs: list[str]) -> Any:
    if not isinstance(schema, Mapping):
        return value
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        limit = int(schema["maxLength"])
        cut = _trim_at_sentence(value, limit)
        if len(cut) >= schema.get("minLength", 0):
            repairs.append(f"{path}: trimmed from {len(value)} to {len(cut)} characters (maxLength {limit})")
            return cut
        return value
    if isinstance(value, list):
        items = schema.get("items")
        out = [
            _repair(item, items, f"{path}[{i}]", repairs) if isinstance(items, Mapping) else item
            for i, item in enumerate(value)
        ]
        if "maxItems" in schema and len(out) > schema["maxItems"]:
            limit = int(schema["maxItems"])
            repairs.append(f"{path}: dropped {len(out) - limit} item(s) past maxItems {limit}")
            out = out[:limit]
        return out
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out_d: dict[str, Any] = {}
        for name, sub in value.items():
            if name in props:
                out_d[name] = _repair(sub, props[name], f"{path}.{name}", repairs)
            elif schema.get("additionalProperties") is False:
                repairs.append(f"{path}: dropped unknown key {name!r}")
            else:
                out_d[name] = sub
        return out_d
    return value


def _trim_at_sentence(text: str, limit: int) -> str:
    """The longest prefix of `text` within `limit` characters that ends a sentence, else the
    longest that ends a word, else the first `limit` characters."""
    head = text[:limit]
    if head.endswith((".", "!", "?")):
        return head
    end = max(head.rfind(mark) for mark in _SENTENCE_ENDS)
    if end > 0:
        return head[: end + 1]
    space = head.rfind(" ")
    return head[:space].rstrip() if space > 0 else head
