"""Any OpenAI-compatible `/chat/completions` endpoint (OpenRouter, llama.cpp server, the simulator).

One `complete()` is exactly one HTTP request: retries, breakers and rate limits are wrappers in
`resilience/`. The hot path stays small on purpose (DESIGN.md measured aiohttp at ≈ 0.15 ms of
client CPU per call): the body is built from plain dicts and serialised once, headers are built
once per model, and the response is read with `json.loads` — no pydantic here.

Failures become the `courseforge.errors` tree; the API key is scrubbed from every message.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..errors import (
    AuthFailed,
    BadResponse,
    InvalidRequest,
    ModerationRefused,
    NoProviderAvailable,
    OutOfCredits,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderTimeout,
    RateLimited,
)
from .base import ChatModel, ChatRequest, ChatResponse, OutputMode, Usage

__all__ = ["OpenAICompatModel", "retry_after_seconds", "schema_instruction"]

#: Retry-After values above this many seconds are treated as nonsense and ignored.
MAX_SANE_RETRY_AFTER_S = 600.0
#: Connections kept per lazily created session; concurrency limits live in `resilience/`.
_CONNECTION_LIMIT = 128
#: Connect timeout of a lazily created session, so an unreachable host never hangs a call.
_CONNECT_TIMEOUT_S = 30.0
#: Status used when a 2xx body carries an error object without a usable code.
_EMBEDDED_ERROR_STATUS = 502

_SCHEMA_PROMPT = "Answer with one JSON object matching this JSON Schema, no prose, no code fences: "


class OpenAICompatModel(ChatModel):
    """A chat model behind an OpenAI-compatible HTTP API.

    `session` may be shared by all models of one provider (one connection pool); when None, one
    is created on first use and closed by `aclose`. `usage_accounting` sends OpenRouter's
    `"usage": {"include": true}`; None means "when the host is openrouter.ai".
    """

    def __init__(
        self,
        *,
        model_id: str,
        model_name: str,
        base_url: str,
        api_key: str | None = None,
        output_mode: OutputMode = "json_schema",
        headers: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        max_output_tokens: int | None = None,
        usage_accounting: bool | None = None,
        prompt_cache: str = "auto",
        extra_body: Mapping[str, Any] | None = None,
        api_key_env: str | None = None,
        openrouter: bool | None = None,
    ) -> None:
        """`prompt_cache`: `cache_control` marks the first system message (the prefix a
        course's calls share) as an explicit cache breakpoint, as OpenRouter documents for
        providers that cache only what is marked; `auto` and `off` send plain messages."""
        if output_mode not in ("json_schema", "json_object", "prompt"):
            raise ValueError(f"unknown output_mode {output_mode!r}")
        self.model_id = model_id
        self.model_name = model_name
        self.base_url = base_url.rstrip("/")
        self.output_mode: OutputMode = output_mode
        self.max_output_tokens = max_output_tokens
        self.prompt_cache = prompt_cache
        self._url = f"{self.base_url}/chat/completions"
        self._api_key = api_key or None
        #: The environment variable the key came from, named when the provider refuses it (401).
        self.api_key_env = api_key_env or ""
        self._headers: dict[str, str] = {"Content-Type": "application/json", "Accept": "application/json"}
        self._headers.update(headers or {})
        if self._api_key:
            self._headers["Authorization"] = f"Bearer {self._api_key}"
        #: Speaks OpenRouter's extensions (None: when the host is openrouter.ai).
        self.openrouter = _is_openrouter(self.base_url) if openrouter is None else openrouter
        if usage_accounting is None:
            usage_accounting = self.openrouter
        self._usage_accounting = usage_accounting
        self._session = session
        self._owns_session = session is None
        #: Top-level keys added to every request body (e.g. OpenRouter's `provider` routing).
        self._extra_body = dict(extra_body or {})

    def __repr__(self) -> str:
        return (
            f"OpenAICompatModel(model_id={self.model_id!r}, model_name={self.model_name!r}, "
            f"base_url={self.base_url!r}, output_mode={self.output_mode!r})"
        )

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=_CONNECTION_LIMIT),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=_CONNECT_TIMEOUT_S),
            )
            self._owns_session = True
        return self._session

    def build_payload(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body for `request` (public so tests and the simulator can inspect it)."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        max_tokens = request.max_tokens
        if self.max_output_tokens is not None:
            max_tokens = min(max_tokens, self.max_output_tokens)
        payload: dict[str, Any] = {
            "model": self.model_name,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": request.temperature,
        }
        schema = request.json_schema
        # A resilience wrapper may downgrade the mode for this model (tags["output_mode"]).
        mode = request.tags.get("output_mode", self.output_mode)
        if schema is not None:
            if mode == "json_schema":
                payload["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": request.schema_name, "schema": schema, "strict": True},
                }
            else:
                if mode == "json_object":
                    payload["response_format"] = {"type": "json_object", "schema": schema}
                # Small models follow a grammar better when the prompt also states the schema.
                _add_system_instruction(messages, schema_instruction(schema))
        if request.reasoning is not None:
            payload["reasoning"] = dict(request.reasoning)
        if self.prompt_cache in ("cache_control", "explicit"):
            _mark_cache_breakpoint(messages)
        if self._usage_accounting:
            payload["usage"] = {"include": True}
        if self.openrouter and "response_format" in payload:
            # Without it OpenRouter may route to a provider that ignores the schema.
            routing = self._extra_body.get("provider")
            payload["provider"] = {
                **(routing if isinstance(routing, Mapping) else {}),
                "require_parameters": True,
            }
        for key, value in self._extra_body.items():
            payload.setdefault(key, value)
        return payload

    async def complete(self, request: ChatRequest) -> ChatResponse:
        body = json.dumps(self.build_payload(request), default=_json_default).encode()
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(total=request.timeout_s) if request.timeout_s else None
        started = time.perf_counter()
        try:
            if timeout is None:
                ctx = session.post(self._url, data=body, headers=self._headers)
            else:
                ctx = session.post(self._url, data=body, headers=self._headers, timeout=timeout)
            async with ctx as resp:
                raw = await resp.read()
                status = resp.status
                resp_headers = resp.headers
        except TimeoutError as exc:  # asyncio.TimeoutError and aiohttp's ServerTimeoutError
            limit = f"within {request.timeout_s}s " if request.timeout_s else ""
            raise ProviderTimeout(f"no answer {limit}from {self.base_url}", model=self.model_id) from exc
        except aiohttp.ClientError as exc:
            # Not chained: some aiohttp errors carry the request headers (and so the key) in repr.
            raise ProviderConnectionError(
                self._scrub(f"{type(exc).__name__} talking to {self.base_url}: {exc}"), model=self.model_id
            ) from None
        latency_ms = (time.perf_counter() - started) * 1000.0
        if not 200 <= status < 300:
            raise self._http_error(status, raw, resp_headers)
        return self._parse(raw, request, latency_ms)

    async def request_json(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One JSON call to another endpoint of the same API (`{base_url}{path}`: the batch
        API), on this model's session and headers, failures mapped as `complete` maps them."""
        session = self._get_session()
        data = None if body is None else json.dumps(body, default=_json_default).encode()
        try:
            async with session.request(
                method, self.base_url + path, data=data, headers=self._headers
            ) as resp:
                raw, status, resp_headers = await resp.read(), resp.status, resp.headers
        except TimeoutError as exc:
            raise ProviderTimeout(f"no answer from {self.base_url}{path}", model=self.model_id) from exc
        except aiohttp.ClientError as exc:
            raise ProviderConnectionError(
                self._scrub(f"{type(exc).__name__} talking to {self.base_url}: {exc}"), model=self.model_id
            ) from None
        if not 200 <= status < 300:
            raise self._http_error(status, raw, resp_headers)
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise BadResponse("response body is not a JSON object", model=self.model_id, kind="unparseable")
        return parsed

    def parse_completion(
        self, body: Mapping[str, Any], request: ChatRequest, latency_ms: float
    ) -> ChatResponse:
        """A chat completion body received another way (a batch result), checked as `complete`
        checks its own."""
        return self._parse(json.dumps(body, default=_json_default).encode(), request, latency_ms)

    def _parse(self, raw: bytes, request: ChatRequest, latency_ms: float) -> ChatResponse:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            text = self._scrub(raw.decode("utf-8", "replace"))
            raise BadResponse(
                "response body is not a JSON object", model=self.model_id, kind="unparseable", text=text
            )
        error = data.get("error")
        if error:
            raise self._embedded_error(error, request)
        choices = data.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            raise BadResponse("response has no choices", model=self.model_id, kind="empty")
        message = choice.get("message")
        content = _content_text(message.get("content") if isinstance(message, dict) else None)
        finish_reason = str(choice.get("finish_reason") or "")
        native = str(choice.get("native_finish_reason") or "")
        usage = _usage(data.get("usage"))
        if finish_reason == "error":
            # OpenRouter: the model failed while producing the answer (after a 200 was sent).
            native_note = f", native_finish_reason {native!r}" if native else ""
            raise ProviderHTTPError(
                _EMBEDDED_ERROR_STATUS,
                f"the model failed mid-answer (finish_reason 'error'{native_note})",
                model=self.model_id,
            )
        if finish_reason == "length" and (request.json_schema is not None or not content.strip()):
            # A cut-off JSON answer (or none: a reasoning model that thought until max_tokens)
            # is unusable as is; the caller may repair it or raise max_tokens. It was billed all
            # the same: the usage rides on the error to the ledger.
            thought = f" after {usage.reasoning_tokens} reasoning tokens" if usage.reasoning_tokens else ""
            raise BadResponse(
                f"answer cut off at max_tokens{thought}",
                model=self.model_id,
                kind="truncated",
                text=self._scrub(content),
                usage=usage,
                finish_reason=finish_reason,
                native_finish_reason=native,
            )
        if not content.strip():
            raise BadResponse(
                "empty answer",
                model=self.model_id,
                kind="empty",
                usage=usage,
                finish_reason=finish_reason,
                native_finish_reason=native,
            )
        return ChatResponse(
            text=content,
            usage=usage,
            latency_ms=latency_ms,
            model=str(data.get("model") or self.model_name),
            finish_reason=finish_reason,
            native_finish_reason=native,
        )

    def _embedded_error(self, error: object, request: ChatRequest | None = None) -> ProviderHTTPError:
        """OpenRouter may answer 200 with `{"error": {"code": 502, "message": ...}}`."""
        code: object = error.get("code") if isinstance(error, dict) else None
        status = _EMBEDDED_ERROR_STATUS
        if isinstance(code, int | str) and str(code).isdigit() and 400 <= int(code) <= 599:
            status = int(code)
        return self._classify(status, error, self._scrub(json.dumps(error, default=str)), None)

    def _http_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> ProviderHTTPError:
        """A non-2xx answer as the errors tree says (OpenRouter's documented codes, docs/providers.md)."""
        text = self._scrub(raw.decode("utf-8", "replace"))
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        error = parsed.get("error") if isinstance(parsed, dict) else None
        return self._classify(status, error, text, headers)

    def _classify(
        self, status: int, error: object, text: str, headers: Mapping[str, str] | None
    ) -> ProviderHTTPError:
        err = error if isinstance(error, dict) else {}
        message = self._scrub(str(err.get("message") or ""))
        meta = err.get("metadata") if isinstance(err.get("metadata"), dict) else {}
        assert isinstance(meta, dict)
        model = self.model_id
        if status == 429:
            wait = retry_after_seconds(headers) if headers is not None else None
            return RateLimited(text, retry_after_s=wait, model=model)
        if status == 400:
            overflow = _context_overflow(err, message)
            field = "messages" if overflow else _named_field(err, message)
            return InvalidRequest(text, field=field, model=model, context_overflow=overflow)
        if status == 401:
            return AuthFailed(message or text, env_var=self.api_key_env, model=model)
        if status == 402:
            return OutOfCredits(message or text, model=model)
        if status == 403:
            reasons = meta.get("reasons")
            return ModerationRefused(
                text,
                reasons=[str(r) for r in reasons] if isinstance(reasons, list) else [],
                flagged_input=self._scrub(str(meta.get("flagged_input") or "")),
                provider_name=str(meta.get("provider_name") or ""),
                model=model,
            )
        if status == 503 and _no_provider(message):
            return NoProviderAvailable(message or text, requirements=self.routing_requirements(), model=model)
        return ProviderHTTPError(status, text, model=model)

    def routing_requirements(self) -> list[str]:
        """What this model's requests require of an OpenRouter provider (for a 503's message):
        the `provider` object's filters and the parameters `require_parameters` makes binding."""
        routing = self._extra_body.get("provider")
        out: list[str] = []
        if isinstance(routing, Mapping):
            for key in ("only", "ignore", "quantizations", "data_collection", "zdr", "max_price", "order"):
                if key in routing:
                    out.append(f"provider.{key}={json.dumps(routing[key], default=str)}")
        if (self.openrouter and self.output_mode != "prompt") or (
            isinstance(routing, Mapping) and routing.get("require_parameters")
        ):
            out.append(
                "provider.require_parameters=true (with a JSON schema: every parameter sent, response_format included)"
            )
        return out

    def _scrub(self, text: str) -> str:
        """Never let the API key reach an exception message, even if a server echoes it."""
        if self._api_key and self._api_key in text:
            return text.replace(self._api_key, "[redacted]")
        return text


#: Request fields a 400's message may name.
_REQUEST_FIELDS = (
    "response_format",
    "max_tokens",
    "reasoning",
    "provider",
    "messages",
    "temperature",
    "model",
    "usage",
)


#: How a 400's message says the schema was what failed (llama.cpp's server: "Automatic parser
#: generation failed: JSON schema error at #: ..."; it never names `response_format`).
_SCHEMA_WORDS = ("json schema", "json_schema", "grammar")
#: llama.cpp's `type` and OpenAI's `code` for a prompt longer than the context.
_OVERFLOW_KINDS = ("exceed_context_size_error", "context_length_exceeded")
#: llama.cpp: "Field 'n': Value must be ..."; a field named at the start of a message.
_FIELD_IN_MESSAGE = re.compile(r"^\s*(?:field|parameter|param)\s+'([A-Za-z_][\w.]*)'", re.IGNORECASE)


def _context_overflow(error: Mapping[str, Any], message: str) -> bool:
    """Is this 400 "the prompt does not fit the model's context"?"""
    kinds = {str(error.get("type") or ""), str(error.get("code") or "")}
    if kinds & set(_OVERFLOW_KINDS):
        return True
    lowered = message.lower()
    return "context" in lowered and any(w in lowered for w in ("exceed", "maximum context length"))


def _named_field(error: Mapping[str, Any], message: str) -> str:
    """The request field a 400 names: its `param` (OpenAI-style), `metadata.param`, a field its
    message opens with ("Field 'n': ..."), `response_format` when its message says the JSON
    schema failed, or the first request field its message mentions."""
    meta = error.get("metadata")
    for value in (error.get("param"), meta.get("param") if isinstance(meta, Mapping) else None):
        if isinstance(value, str) and value:
            return value
    named = _FIELD_IN_MESSAGE.match(message)
    if named:
        return named.group(1)
    lowered = message.lower()
    found = [(lowered.find(f), f) for f in _REQUEST_FIELDS if f in lowered]
    if found:
        return min(found)[1]
    return "response_format" if any(w in lowered for w in _SCHEMA_WORDS) else ""


def _no_provider(message: str) -> bool:
    """Is this 503 OpenRouter's "no available provider meets your routing requirements"?"""
    lowered = message.lower()
    return "provider" in lowered and any(
        w in lowered for w in ("routing", "requirement", "no endpoints", "no allowed", "available")
    )


def schema_instruction(schema: Mapping[str, Any]) -> str:
    """The prompt line that states the schema (prompt and json_object modes)."""
    return _SCHEMA_PROMPT + json.dumps(schema, separators=(",", ":"), default=_json_default)


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or HTTP-date), if sane.

    `now` (epoch seconds) is injectable for tests. Values below 0 or above
    `MAX_SANE_RETRY_AFTER_S` give None, so the retry policy falls back to its own backoff.
    """
    lowered = {k.lower(): v for k, v in headers.items() if k.lower() in ("retry-after-ms", "retry-after")}
    seconds: float | None = None
    if "retry-after-ms" in lowered:
        seconds = _float(lowered["retry-after-ms"])
        seconds = seconds / 1000.0 if seconds is not None else None
    if seconds is None and "retry-after" in lowered:
        value = lowered["retry-after"].strip()
        seconds = _float(value)
        if seconds is None:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:  # RFC 9110 dates are GMT
                return None
            seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds is None or math.isnan(seconds) or not 0 <= seconds <= MAX_SANE_RETRY_AFTER_S:
        return None
    return seconds


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _is_openrouter(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def _add_system_instruction(messages: list[dict[str, Any]], instruction: str) -> None:
    for message in messages:
        if message["role"] == "system":
            message["content"] = f"{message['content']}\n\n{instruction}"
            return
    messages.insert(0, {"role": "system", "content": instruction})


def _mark_cache_breakpoint(messages: list[dict[str, Any]]) -> None:
    """The first system message as one text part with an ephemeral `cache_control` breakpoint:
    everything up to it is the prefix the provider caches."""
    for message in messages:
        if message["role"] == "system" and isinstance(message["content"], str):
            text = message["content"]
            message["content"] = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
            return


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}]
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _usage(usage: object) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    written = _int(details.get("cache_write_tokens")) if isinstance(details, dict) else 0
    out_details = usage.get("completion_tokens_details")
    reasoning = _int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    cost = usage.get("cost")
    cost_usd = None
    if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
        cost_usd = Decimal(str(cost))
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=cached,
        cost_usd=cost_usd,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
    )


def _json_default(obj: object) -> Any:
    """Schemas arrive as `Mapping`s (maybe read-only proxies); JSON wants dicts and lists."""
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
