"""Plain-JSON payloads that cross the Temporal boundary: requests, answers, errors, vectors,
response-cache entries, and the settings a workflow pins.

Everything here is data in, data out (no Temporal import but `ApplicationError`), so both
sides — workflow code and activity code — share one definition and unit tests need no server.

Errors: an activity raises our `ProviderError`s as a non-retryable `ApplicationError` whose
details carry the class and its fields; the workflow side rebuilds the same exception, so the
fallback chain, the ledger's meter and the cascade see exactly what they see in-process
(a `BadResponse` keeps its billed `usage`, a `CircuitOpen` its `reopens_in_s`).
"""

from __future__ import annotations

import base64
import dataclasses
from array import array
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from .. import errors as E
from ..config import Settings
from ..providers import ChatRequest, ChatResponse, Message, Usage
from ..storage import CachedResponse

__all__ = [
    "decode_cached",
    "decode_error",
    "decode_request",
    "decode_response",
    "decode_vectors",
    "encode_cached",
    "encode_error",
    "encode_request",
    "encode_response",
    "encode_vectors",
    "pinned_settings",
]


# -- requests and answers ----------------------------------------------------------------------
def encode_request(model_id: str, request: ChatRequest) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "messages": [[m.role, m.content] for m in request.messages],
        "json_schema": dict(request.json_schema) if request.json_schema is not None else None,
        "schema_name": request.schema_name,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "timeout_s": request.timeout_s,
        "tags": dict(request.tags),
        "reasoning": dict(request.reasoning) if request.reasoning is not None else None,
    }


def decode_request(data: Mapping[str, Any]) -> tuple[str, ChatRequest]:
    request = ChatRequest(
        messages=[Message(role, content) for role, content in data["messages"]],
        json_schema=data.get("json_schema"),
        schema_name=data.get("schema_name", "answer"),
        max_tokens=int(data.get("max_tokens", 1024)),
        temperature=float(data.get("temperature", 0.7)),
        timeout_s=data.get("timeout_s"),
        tags=dict(data.get("tags") or {}),
        reasoning=data.get("reasoning"),
    )
    return str(data["model_id"]), request


def _encode_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "cost_usd": str(usage.cost_usd) if usage.cost_usd is not None else None,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _decode_usage(data: Mapping[str, Any]) -> Usage:
    cost = data.get("cost_usd")
    return Usage(
        int(data.get("input_tokens", 0)),
        int(data.get("output_tokens", 0)),
        int(data.get("cached_tokens", 0)),
        Decimal(cost) if cost is not None else None,
        int(data.get("cache_write_tokens", 0)),
        int(data.get("reasoning_tokens", 0)),
    )


def encode_response(response: ChatResponse) -> dict[str, Any]:
    return {
        "text": response.text,
        "usage": _encode_usage(response.usage),
        "latency_ms": response.latency_ms,
        "model": response.model,
        "finish_reason": response.finish_reason,
        "native_finish_reason": response.native_finish_reason,
        "batch_id": response.batch_id,
    }


def decode_response(data: Mapping[str, Any]) -> ChatResponse:
    return ChatResponse(
        text=str(data["text"]),
        usage=_decode_usage(data.get("usage") or {}),
        latency_ms=float(data.get("latency_ms", 0.0)),
        model=str(data.get("model", "")),
        finish_reason=str(data.get("finish_reason", "")),
        native_finish_reason=str(data.get("native_finish_reason", "")),
        batch_id=str(data.get("batch_id", "")),
    )


# -- vectors: float64, lossless, ~2.5x smaller than JSON numbers in the workflow history -------
def encode_vectors(vectors: Sequence[Sequence[float]]) -> list[str]:
    return [base64.b64encode(array("d", v).tobytes()).decode("ascii") for v in vectors]


def decode_vectors(data: Sequence[str]) -> list[list[float]]:
    out = []
    for item in data:
        values = array("d")
        values.frombytes(base64.b64decode(item))
        out.append(values.tolist())
    return out


# -- errors -----------------------------------------------------------------------------------
#: The classes rebuilt on the workflow side, most specific first.
_KNOWN: tuple[type[E.CourseforgeError], ...] = (
    E.RateLimited,
    E.InvalidRequest,
    E.AuthFailed,
    E.OutOfCredits,
    E.ModerationRefused,
    E.NoProviderAvailable,
    E.ProviderHTTPError,
    E.BadResponse,
    E.CircuitOpen,
    E.ProviderTimeout,
    E.ProviderConnectionError,
    E.ProviderError,
    E.ConfigError,
    E.InputError,
    E.UserError,
)


def _message(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    model = getattr(exc, "model", "")
    if model and text.startswith(f"{model}: "):
        text = text[len(model) + 2 :]
    return text


def encode_error(
    exc: BaseException, *, retries: int = 0, faults: Mapping[str, int] | None = None
) -> ApplicationError:
    """Our error as a non-retryable `ApplicationError` (the model stack already retried what a
    retry can fix); anything else as a retryable one (a bug or a lost worker: Temporal's small
    retry policy decides)."""
    known = next((cls for cls in _KNOWN if isinstance(exc, cls)), None)
    fields: dict[str, Any] = {
        "class": known.__name__ if known else type(exc).__name__,
        "actual_class": type(exc).__name__,
        "message": _message(exc),
        "model": getattr(exc, "model", ""),
        "retryable": bool(getattr(exc, "retryable", True)),
        "notes": [str(n) for n in getattr(exc, "__notes__", ())],
        "retries": retries,
        "faults": dict(faults or {}),
    }
    if isinstance(exc, E.ProviderHTTPError):
        fields.update(status=exc.status, body=exc.body)
    if isinstance(exc, E.RateLimited):
        fields["retry_after_s"] = exc.retry_after_s
    if isinstance(exc, E.InvalidRequest):
        fields.update(field=exc.field, context_overflow=exc.context_overflow)
    if isinstance(exc, E.AuthFailed):
        fields["env_var"] = exc.env_var
    if isinstance(exc, E.ModerationRefused):
        fields.update(reasons=exc.reasons, flagged_input=exc.flagged_input, provider_name=exc.provider_name)
    if isinstance(exc, E.NoProviderAvailable):
        fields["requirements"] = exc.requirements
    if isinstance(exc, E.BadResponse):
        fields.update(kind=exc.kind, text=exc.text, finish_reason=exc.finish_reason)
        fields["native_finish_reason"] = exc.native_finish_reason
        fields["usage"] = _encode_usage(exc.usage) if isinstance(exc.usage, Usage) else None
    if isinstance(exc, E.CircuitOpen):
        fields.update(reopens_in_s=exc.reopens_in_s, down=exc.down, reason=exc.reason)
    if isinstance(exc, E.UserError):
        fields["problems"] = [list(p) for p in exc.problems]
        fields["message"] = exc.headline
    return ApplicationError(
        f"{type(exc).__name__}: {exc}"[:2000],
        fields,
        type=fields["class"],
        non_retryable=known is not None,
        # Expected outcomes of a model call (logged by the ledger and the report), not worker
        # faults: the SDK logs them at DEBUG instead of a WARNING with a traceback.
        category=ApplicationErrorCategory.BENIGN
        if known is not None
        else ApplicationErrorCategory.UNSPECIFIED,
    )


def error_fields(exc: BaseException) -> dict[str, Any] | None:
    """The fields `encode_error` packed, from an `ApplicationError` (or None)."""
    if isinstance(exc, ApplicationError) and exc.details and isinstance(exc.details[0], dict):
        fields = exc.details[0]
        if "class" in fields and "message" in fields:
            return fields
    return None


_HTTP_KINDS = ("InvalidRequest", "AuthFailed", "OutOfCredits", "ModerationRefused", "NoProviderAvailable")


def _decode_http(cls: str, fields: Mapping[str, Any], model: str) -> E.ProviderHTTPError:
    """One of OpenRouter's documented HTTP errors, rebuilt with its own fields."""
    body = str(fields.get("body", ""))
    if cls == "InvalidRequest":
        return E.InvalidRequest(
            body,
            field=str(fields.get("field", "")),
            model=model,
            context_overflow=bool(fields.get("context_overflow", False)),
        )
    if cls == "AuthFailed":
        return E.AuthFailed(body, env_var=str(fields.get("env_var", "")), model=model)
    if cls == "OutOfCredits":
        return E.OutOfCredits(body, model=model)
    if cls == "ModerationRefused":
        return E.ModerationRefused(
            body,
            reasons=[str(r) for r in fields.get("reasons") or []],
            flagged_input=str(fields.get("flagged_input", "")),
            provider_name=str(fields.get("provider_name", "")),
            model=model,
        )
    return E.NoProviderAvailable(
        body, requirements=[str(r) for r in fields.get("requirements") or []], model=model
    )


def decode_error(fields: Mapping[str, Any]) -> E.CourseforgeError:
    """The exception `encode_error` described, rebuilt."""
    cls, message, model = fields["class"], str(fields["message"]), str(fields.get("model", ""))
    exc: E.CourseforgeError
    if cls == "RateLimited":
        exc = E.RateLimited(
            str(fields.get("body", "")), retry_after_s=fields.get("retry_after_s"), model=model
        )
    elif cls in _HTTP_KINDS:
        exc = _decode_http(cls, fields, model)
    elif cls == "ProviderHTTPError":
        exc = E.ProviderHTTPError(int(fields.get("status", 500)), str(fields.get("body", "")), model=model)
    elif cls == "BadResponse":
        usage = fields.get("usage")
        exc = E.BadResponse(
            message,
            model=model,
            kind=str(fields.get("kind", "invalid")),
            text=str(fields.get("text", "")),
            usage=_decode_usage(usage) if isinstance(usage, Mapping) else None,
            finish_reason=str(fields.get("finish_reason", "")),
            native_finish_reason=str(fields.get("native_finish_reason", "")),
        )
    elif cls == "CircuitOpen":
        exc = E.CircuitOpen(
            model=model,
            reopens_in_s=float(fields.get("reopens_in_s", 0.0)),
            down=bool(fields.get("down", True)),
            reason=str(fields.get("reason", "")),
        )
    elif cls == "ProviderTimeout":
        exc = E.ProviderTimeout(message, model=model)
    elif cls == "ProviderConnectionError":
        exc = E.ProviderConnectionError(message, model=model)
    elif cls in ("ConfigError", "InputError", "UserError"):
        problems = [(str(p[0]), str(p[1])) for p in fields.get("problems") or []]
        exc = getattr(E, cls)(message, problems)
    else:
        exc = E.ProviderError(message, model=model)
    if isinstance(exc, E.ProviderError):
        exc.retryable = bool(fields.get("retryable", exc.retryable))
    for note in fields.get("notes") or ():
        exc.add_note(str(note))
    return exc


# -- settings -----------------------------------------------------------------------------------
def encode_cached(entry: CachedResponse) -> dict[str, Any]:
    """A response-cache entry as activity data (money as a decimal string)."""
    data = dataclasses.asdict(entry)
    data["cost_usd"] = str(entry.cost_usd)
    return data


def decode_cached(data: Mapping[str, Any]) -> CachedResponse:
    return CachedResponse(**{**data, "cost_usd": Decimal(str(data["cost_usd"]))})


def pinned_settings(settings: Settings) -> dict[str, Any]:
    """The settings a workflow runs with, as data for its input (and so its history).

    Nothing secret and nothing the workflow does not use: provider headers, Redis URLs, the
    store and the service section stay with the processes that need them (workers use their
    own config for those)."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    for provider in data.get("providers", {}).values():
        provider["headers"] = {}
        provider["redis_url"] = None
    if isinstance(data.get("cache"), dict):
        data["cache"]["redis_url"] = None  # the workers' own config says where entries live
    data.pop("storage", None)
    data.pop("service", None)
    return data
