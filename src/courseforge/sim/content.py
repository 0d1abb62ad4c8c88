"""What the simulator writes: schema-valid answers built from the request, and broken ones.

For courseforge's own tasks (every task `CourseAuthor` knows) the prompt's BRIEF block drives
`CourseAuthor`, so answers are on topic (drawn from the outcomes and concepts) or, when asked,
off topic. For any other request
with a schema, a small bounded instance of the schema; with no schema, a sentence of text.
The fault variants (malformed, truncated, schema-violating) start from the valid answer.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from typing import Any

from ..pipeline.prompts import parse_brief
from ..providers import ChatRequest, Message
from ..providers.openai_compat import schema_instruction
from ..testing import CourseAuthor

__all__ = [
    "count_tokens",
    "instance_of",
    "malformed",
    "request_schema",
    "schema_violating",
    "truncated",
    "valid_answer",
]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_SCHEMA_PREFIX = schema_instruction({})[: -len("{}")]
_FILLER = "Simulated answer text about the requested topic. "


def count_tokens(text: str) -> int:
    """Words and punctuation marks: close to a BPE count for English prose and JSON."""
    return len(_TOKEN.findall(text))


def message_text(content: object) -> str:
    """A message's text: a string, or the text of its content parts (a part may carry a
    `cache_control` breakpoint)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def request_schema(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON Schema a request asks for: response_format (json_schema or json_object with a
    schema), else the schema instruction in a system message (prompt mode), else None."""
    fmt = payload.get("response_format")
    if isinstance(fmt, Mapping):
        found: object = None
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema")
            found = spec.get("schema") if isinstance(spec, Mapping) else None
        else:
            found = fmt.get("schema")
        if isinstance(found, Mapping):
            return found
    for message in payload.get("messages", []):
        content = message_text(message.get("content")) if isinstance(message, Mapping) else None
        if content and _SCHEMA_PREFIX in content:
            raw = content.split(_SCHEMA_PREFIX, 1)[1]
            try:
                schema, _ = json.JSONDecoder().raw_decode(raw)
            except ValueError:
                continue
            if isinstance(schema, Mapping):
                return schema
    return None


def _request(payload: Mapping[str, Any]) -> ChatRequest:
    messages = [
        Message(m.get("role", "user"), message_text(m.get("content")))
        for m in payload.get("messages", [])
        if isinstance(m, Mapping) and isinstance(m.get("content"), str | list)
    ]
    return ChatRequest(messages)


def valid_answer(payload: Mapping[str, Any], *, off_topic: bool) -> tuple[Any, str]:
    """(value or None, text) of a good answer; `off_topic` makes a lesson drift."""
    request = _request(payload)
    brief = parse_brief(request.messages) if request.messages else {}
    if brief.get("task"):
        author = CourseAuthor(off_topic=lambda _brief: off_topic)
        try:
            text = author(request)
        except ValueError:  # a task CourseAuthor does not know: a generic instance below
            pass
        else:
            return json.loads(text), text
    schema = request_schema(payload)
    if schema is not None:
        value = instance_of(schema)
        return value, json.dumps(value)
    return None, _FILLER.strip()


def instance_of(schema: Mapping[str, Any], depth: int = 0) -> Any:
    """A small value matching `schema` (the keyword subset of `providers.schemacheck`)."""
    if depth > 12:
        return None
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return instance_of(schema[key][0], depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: instance_of(sub, depth + 1) for name, sub in props.items()}
    if kind == "array":
        n = max(1, int(schema.get("minItems", 0)))
        if "maxItems" in schema:
            n = min(n, int(schema["maxItems"]))
        items = schema.get("items", {})
        return [instance_of(items, depth + 1) for _ in range(n)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", 1)
        high = schema.get("maximum", max(low, 1))
        value = min(max(1, low), high)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    low = int(schema.get("minLength", 0))
    high = int(schema.get("maxLength", max(low, 60)))
    text = _FILLER * (low // len(_FILLER) + 2)
    return text[: max(low, min(high, 60))].strip().ljust(low, ".")[:high]


def malformed(value: Any, text: str) -> str:
    """Broken JSON a model really writes: a Python-style dict (single quotes, True, None)."""
    return repr(value) if value is not None else "{'answer': " + repr(text)


def truncated(text: str, rng: random.Random) -> str:
    """The first 40-80 % of the answer, as when max_tokens cuts it off."""
    return text[: max(1, int(len(text) * rng.uniform(0.4, 0.8)))]


def schema_violating(value: Any, schema: Mapping[str, Any] | None) -> str:
    """Valid JSON that breaks the schema: the first required key renamed away."""
    if isinstance(value, dict) and value:
        required = list((schema or {}).get("required", [])) or list(value)
        broken = dict(value)
        first = required[0]
        broken[f"{first}_text"] = broken.pop(first, "")
        return json.dumps(broken)
    return json.dumps({"unexpected": value})
