"""Is a 2xx answer usable? Empty, unparseable and schema-invalid answers are faults too.

Users of other gateways complain that fallbacks fire only on HTTP errors; here a bad answer
raises `BadResponse` like a bad status does, so retries, fallbacks and the cascade treat both
alike. The error carries the answer's usage: it was billed, and the ledger keeps its cost.
"""

from __future__ import annotations

import dataclasses
import json

from ..errors import BadResponse
from ..providers.base import ChatRequest, ChatResponse
from ..providers.jsontext import extract_json
from ..providers.schemacheck import repair_to_schema, schema_errors

__all__ = ["check_content"]


def check_content(request: ChatRequest, response: ChatResponse, *, model_id: str = "") -> ChatResponse:
    """Raise `BadResponse` (kind empty | unparseable | schema) unless the answer is usable:
    non-empty text and, when the request has a JSON Schema, JSON (repaired if need be, as the
    pipeline's parsers do) that passes the light schema check of `providers.schemacheck`.

    An answer that fails the check but passes it after `repair_to_schema` (items past
    `maxItems`, unknown keys, strings past `maxLength`) is returned repaired: its text the
    repaired JSON, its `repairs` naming each change. Otherwise the response is returned as is."""
    text = response.text
    if not text.strip():
        raise BadResponse("empty answer", model=model_id, kind="empty", usage=response.usage)
    if request.json_schema is None:
        return response
    try:
        value = extract_json(text)
    except BadResponse:
        raise BadResponse(
            "answer is not JSON", model=model_id, kind="unparseable", text=text, usage=response.usage
        ) from None
    # Unknown keys pass the light check (it does not enforce additionalProperties) but not the
    # pipeline's parsers, so the repair runs on every answer; it changes only what needs it.
    repaired, repairs = repair_to_schema(value, request.json_schema)
    problems = schema_errors(repaired, request.json_schema)
    if repairs and not problems:
        text = json.dumps(repaired, ensure_ascii=False)
        return dataclasses.replace(response, text=text, repairs=(*response.repairs, *repairs))
    if problems:
        problems = schema_errors(value, request.json_schema)
        raise BadResponse(
            "answer does not match the schema: " + "; ".join(problems),
            model=model_id,
            kind="schema",
            text=text,
            usage=response.usage,
        )
    return response
