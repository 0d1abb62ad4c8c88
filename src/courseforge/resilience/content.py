"""Is a 2xx answer usable? Empty, unparseable and schema-invalid answers are faults too.

Users of other gateways complain that fallbacks fire only on HTTP errors; here a bad answer
raises `BadResponse` like a bad status does, so retries, fallbacks and the cascade treat both
alike. The error carries the answer's usage: it was billed, and the ledger keeps its cost.
"""

from __future__ import annotations

from ..errors import BadResponse
from ..providers.base import ChatRequest, ChatResponse
from ..providers.jsontext import extract_json
from ..providers.schemacheck import schema_errors

__all__ = ["check_content"]


def check_content(request: ChatRequest, response: ChatResponse, *, model_id: str = "") -> None:
    """Raise `BadResponse` (kind empty | unparseable | schema) unless the answer is usable:
    non-empty text and, when the request has a JSON Schema, JSON (repaired if need be, as the
    pipeline's parsers do) that passes the light schema check of `providers.schemacheck`."""
    text = response.text
    if not text.strip():
        raise BadResponse("empty answer", model=model_id, kind="empty", usage=response.usage)
    if request.json_schema is None:
        return
    try:
        value = extract_json(text)
    except BadResponse:
        raise BadResponse(
            "answer is not JSON", model=model_id, kind="unparseable", text=text, usage=response.usage
        ) from None
    problems = schema_errors(value, request.json_schema)
    if problems:
        raise BadResponse(
            "answer does not match the schema: " + "; ".join(problems),
            model=model_id,
            kind="schema",
            text=text,
            usage=response.usage,
        )
