"""OpenAICompatModel against a real HTTP server on 127.0.0.1 (LoopbackServer)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from email.utils import formatdate
from typing import Any

import aiohttp
import pytest

import courseforge.providers as providers
from courseforge.errors import (
    AuthFailed,
    BadResponse,
    InvalidRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    RateLimited,
)
from courseforge.providers import ChatRequest, Message, OpenAICompatModel
from courseforge.providers.openai_compat import _is_openrouter, retry_after_seconds, schema_instruction
from courseforge.testing import LoopbackReply, LoopbackServer
from courseforge.testing.loopback import LoopbackHandler

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"title": {"type": "string", "maxLength": 80}},
    "required": ["title"],
}
KEY = "test-provider-key-THIS-IS-THE-SECRET-0123456789"


def ok(content: str | None = '{"title": "Fractions"}', **kw: Any) -> LoopbackHandler:
    return lambda _req: LoopbackReply.completion(content, **kw)


def request(
    *, schema: dict[str, Any] | None = SCHEMA, system: str | None = "You teach.", **kw: Any
) -> ChatRequest:
    messages = [Message("system", system)] if system is not None else []
    messages.append(Message("user", "Write a title."))
    return ChatRequest(messages=messages, json_schema=schema, **kw)


def closed_port() -> int:
    """A port nothing listens on: bound by the OS, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def served(
    handler: LoopbackHandler, **model_kw: Any
) -> AsyncIterator[tuple[OpenAICompatModel, LoopbackServer]]:
    async with LoopbackServer(handler) as server:
        model_kw.setdefault("model_id", "cheap")
        model_kw.setdefault("model_name", "openai/gpt-oss-20b")
        model = OpenAICompatModel(base_url=server.base_url, **model_kw)
        try:
            yield model, server
        finally:
            await model.aclose()


# --- request shape -------------------------------------------------------------------------


async def test_json_schema_mode_sends_strict_response_format() -> None:
    async with served(ok(), output_mode="json_schema") as (model, server):
        await model.complete(request(schema_name="lesson_title", max_tokens=300, temperature=0.2))
    body = server.requests[0].json
    assert server.requests[0].path == "/v1/chat/completions"
    assert body["model"] == "openai/gpt-oss-20b"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "lesson_title", "schema": SCHEMA, "strict": True},
    }
    assert body["max_tokens"] == 300
    assert body["temperature"] == 0.2
    # The schema travels in response_format only: the prompt is untouched.
    assert body["messages"] == [
        {"role": "system", "content": "You teach."},
        {"role": "user", "content": "Write a title."},
    ]


async def test_json_object_mode_sends_schema_and_states_it_in_the_system_prompt() -> None:
    async with served(ok(), output_mode="json_object") as (model, server):
        await model.complete(request())
    body = server.requests[0].json
    assert body["response_format"] == {"type": "json_object", "schema": SCHEMA}
    system = body["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("You teach.\n\n")
    assert system["content"].endswith(schema_instruction(SCHEMA))
    assert len(body["messages"]) == 2


async def test_prompt_mode_has_no_response_format_and_adds_a_system_message_when_missing() -> None:
    async with served(ok(), output_mode="prompt") as (model, server):
        await model.complete(request(system=None))
    body = server.requests[0].json
    assert "response_format" not in body
    assert body["messages"][0] == {"role": "system", "content": schema_instruction(SCHEMA)}
    assert json.loads(body["messages"][0]["content"].split(": ", 1)[1]) == SCHEMA
    assert body["messages"][1]["role"] == "user"


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "prompt"])
async def test_free_text_request_has_no_schema_anywhere(mode: str) -> None:
    async with served(ok("plain words"), output_mode=mode) as (model, server):
        response = await model.complete(request(schema=None))
    body = server.requests[0].json
    assert response.text == "plain words"
    assert "response_format" not in body
    assert body["messages"][0] == {"role": "system", "content": "You teach."}


async def test_max_output_tokens_caps_the_request() -> None:
    async with served(ok(), max_output_tokens=256) as (model, server):
        await model.complete(request(max_tokens=4000))
        await model.complete(request(max_tokens=100))
    assert [r.json["max_tokens"] for r in server.requests] == [256, 100]


async def test_read_only_mapping_schema_is_serialised() -> None:
    from types import MappingProxyType

    schema = MappingProxyType({"type": "object", "properties": MappingProxyType({"a": {"type": "string"}})})
    async with served(ok()) as (model, server):
        await model.complete(ChatRequest(messages=[Message("user", "x")], json_schema=schema))
    assert server.requests[0].json["response_format"]["json_schema"]["schema"]["properties"] == {
        "a": {"type": "string"}
    }


# --- headers -------------------------------------------------------------------------------


async def test_attribution_headers_and_bearer_key_are_sent() -> None:
    attribution = {"HTTP-Referer": "https://courses.example", "X-Title": "courseforge"}
    async with served(ok(), api_key=KEY, headers=attribution) as (model, server):
        await model.complete(request())
    received = server.requests[0]
    assert received.header("http-referer") == "https://courses.example"
    assert received.header("x-title") == "courseforge"
    assert received.header("authorization") == f"Bearer {KEY}"
    assert received.header("content-type") == "application/json"


@pytest.mark.parametrize("api_key", [None, ""])
async def test_no_authorization_header_without_key(api_key: str | None) -> None:
    async with served(ok(), api_key=api_key) as (model, server):
        await model.complete(request())
    assert server.requests[0].header("authorization") is None


async def test_usage_accounting_flag_is_sent_when_asked_and_not_by_default_off_openrouter() -> None:
    async with served(ok()) as (model, server):
        await model.complete(request())
    async with served(ok(), usage_accounting=True) as (model2, server2):
        await model2.complete(request())
    assert "usage" not in server.requests[0].json
    assert server2.requests[0].json["usage"] == {"include": True}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://openrouter.ai/api/v1", True),
        ("https://eu.openrouter.ai/api/v1", True),
        ("https://notopenrouter.ai/v1", False),
        ("http://127.0.0.1:8080/v1", False),
    ],
)
def test_openrouter_host_detection(url: str, expected: bool) -> None:
    assert _is_openrouter(url) is expected


# --- response parsing ----------------------------------------------------------------------


async def test_usage_cost_cached_tokens_model_and_latency_are_read() -> None:
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 345,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "cost": 0.00012345,
    }
    async with served(ok(usage=usage, model="openai/gpt-oss-20b:nitro", delay_s=0.02)) as (model, _):
        response = await model.complete(request())
    assert response.text == '{"title": "Fractions"}'
    assert response.usage.input_tokens == 1200
    assert response.usage.output_tokens == 345
    assert response.usage.cached_tokens == 1024
    assert response.usage.cost_usd == Decimal("0.00012345")
    assert response.model == "openai/gpt-oss-20b:nitro"
    assert response.finish_reason == "stop"
    assert 20 <= response.latency_ms < 1000


async def test_missing_usage_gives_zeros_and_no_cost() -> None:
    async def handler(_req: dict[str, Any]) -> LoopbackReply:
        return LoopbackReply(json_body={"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]})

    async with served(handler) as (model, _):
        response = await model.complete(request(schema=None))
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.cost_usd) == (
        0,
        0,
        None,
    )
    assert response.model == "openai/gpt-oss-20b"


async def test_length_without_schema_is_returned_as_is() -> None:
    async with served(ok("a long story that was cut", finish_reason="length")) as (model, _):
        response = await model.complete(request(schema=None))
    assert response.finish_reason == "length"
    assert response.text == "a long story that was cut"


async def test_reasoning_tokens_native_finish_reason_and_the_reasoning_object() -> None:
    """OpenRouter's documented reasoning fields: `reasoning` is sent as given, the thinking
    comes back in `usage.completion_tokens_details.reasoning_tokens` (inside
    `completion_tokens`), and `native_finish_reason` is kept."""

    async def handler(_req: dict[str, Any]) -> LoopbackReply:
        usage = {
            "prompt_tokens": 10,
            "completion_tokens": 900,
            "completion_tokens_details": {"reasoning_tokens": 880},
        }
        reply = LoopbackReply.completion('{"title": "Fractions"}', usage=usage)
        assert reply.json_body is not None
        choice = reply.json_body["choices"][0]
        choice["native_finish_reason"] = "completed"
        choice["message"]["reasoning"] = "First, the title..."
        return reply

    async with served(handler) as (model, server):
        response = await model.complete(request(reasoning={"effort": "low", "exclude": True}))
    assert server.requests[0].json["reasoning"] == {"effort": "low", "exclude": True}
    assert response.usage.reasoning_tokens == 880 and response.usage.output_tokens == 900
    assert response.native_finish_reason == "completed"
    assert response.text == '{"title": "Fractions"}'  # the reasoning text is not the answer


async def test_a_reasoning_model_that_thought_until_max_tokens_is_a_billed_truncation() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 300,
        "completion_tokens_details": {"reasoning_tokens": 300},
    }
    async with served(ok(None, finish_reason="length", usage=usage)) as (model, _):
        with pytest.raises(BadResponse) as info:
            await model.complete(request(schema=None))
    assert info.value.kind == "truncated" and info.value.finish_reason == "length"
    assert "after 300 reasoning tokens" in str(info.value)
    assert isinstance(info.value.usage, providers.Usage) and info.value.usage.reasoning_tokens == 300


# --- errors --------------------------------------------------------------------------------


async def test_429_with_retry_after_seconds() -> None:
    reply = LoopbackReply(status=429, json_body={"error": "slow down"}, headers={"Retry-After": "7"})
    async with served(lambda _r: reply) as (model, _):
        with pytest.raises(RateLimited) as info:
            await model.complete(request())
    assert info.value.retry_after_s == 7.0
    assert info.value.status == 429
    assert info.value.retryable
    assert "slow down" in info.value.body
    assert info.value.model == "cheap"


async def test_429_with_retry_after_http_date() -> None:
    when = formatdate(time.time() + 30, usegmt=True)
    reply = LoopbackReply(status=429, text="busy", headers={"Retry-After": when})
    async with served(lambda _r: reply) as (model, _):
        with pytest.raises(RateLimited) as info:
            await model.complete(request())
    assert info.value.retry_after_s is not None
    assert 27.0 <= info.value.retry_after_s <= 30.0


async def test_429_with_retry_after_ms_and_insane_values() -> None:
    replies = iter(
        [
            LoopbackReply(status=429, text="x", headers={"retry-after-ms": "1500"}),
            LoopbackReply(status=429, text="x", headers={"Retry-After": "86400"}),
            LoopbackReply(status=429, text="x"),
        ]
    )
    got: list[float | None] = []
    async with served(lambda _r: next(replies)) as (model, _):
        for _ in range(3):
            with pytest.raises(RateLimited) as info:
                await model.complete(request())
            got.append(info.value.retry_after_s)
    assert got == [1.5, None, None]


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "601"}, None),
        ({"Retry-After": "600"}, 600.0),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After-Ms": "250"}, 0.25),
        ({"retry-after-ms": "oops", "Retry-After": "4"}, 4.0),
        ({"Retry-After": formatdate(NOW + 42, usegmt=True)}, 42.0),
        ({"Retry-After": formatdate(NOW - 5, usegmt=True)}, None),
        ({"Retry-After": formatdate(NOW + 3600, usegmt=True)}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == expected


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (400, False), (401, False)])
async def test_non_2xx_is_provider_http_error(status: int, retryable: bool) -> None:
    reply = LoopbackReply(status=status, json_body={"error": {"message": f"status {status}"}})
    async with served(lambda _r: reply) as (model, _):
        with pytest.raises(ProviderHTTPError) as info:
            await model.complete(request())
    # 400 and 401 have classes of their own (tests/providers/test_openrouter_errors.py).
    assert type(info.value) is {400: InvalidRequest, 401: AuthFailed}.get(status, ProviderHTTPError)
    assert info.value.status == status
    assert info.value.retryable is retryable
    assert f"status {status}" in info.value.body


# The 400 bodies llama.cpp's own server answered (tests/providers/test_llama_server_integration.py):
# none says `param`; the overflow carries its own `type`, the others name the field in prose.
LLAMA_400S = [
    (
        {
            "code": 400,
            "message": "request (5030 tokens) exceeds the available context size (4096 tokens), try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 5030,
            "n_ctx": 4096,
        },
        "messages",
        True,
    ),
    (
        {
            "code": 400,
            "message": "Unable to generate parser for this template. Automatic parser generation failed: "
            "JSON schema error at #: unrecognized type objectx",
            "type": "invalid_request_error",
        },
        "response_format",
        False,
    ),
    (
        {
            "code": 400,
            "message": "Field 'n': Value must be between 1 <= value <= 1, but got 2",
            "type": "invalid_request_error",
        },
        "n",
        False,
    ),
    (
        {
            "code": 400,
            "message": "This endpoint's maximum context length is 131072 tokens. However, you requested about 140000 tokens.",
        },
        "messages",
        True,
    ),
]


@pytest.mark.parametrize(("error", "field", "overflow"), LLAMA_400S)
async def test_llama_servers_400s_name_their_field(error: dict[str, Any], field: str, overflow: bool) -> None:
    reply = LoopbackReply(status=400, json_body={"error": error})
    async with served(lambda _r: reply) as (model, _):
        with pytest.raises(InvalidRequest) as info:
            await model.complete(request())
    assert info.value.field == field and info.value.context_overflow is overflow
    assert f"[field: {field}]" in str(info.value) and not info.value.retryable


@pytest.mark.parametrize(("code", "status"), [(502, 502), ("429", 429), ("oops", 502), (None, 502)])
async def test_error_object_in_a_200_body(code: object, status: int) -> None:
    reply = LoopbackReply(json_body={"error": {"code": code, "message": "upstream provider failed"}})
    async with served(lambda _r: reply) as (model, _):
        with pytest.raises(ProviderHTTPError) as info:
            await model.complete(request())
    assert info.value.status == status
    assert info.value.retryable
    assert "upstream provider failed" in info.value.body
    assert isinstance(info.value, RateLimited) is (status == 429)


async def test_timeout_is_provider_timeout_and_quick() -> None:
    started = time.perf_counter()
    async with served(ok(delay_s=0.6)) as (model, _):
        with pytest.raises(ProviderTimeout) as info:
            await model.complete(request(timeout_s=0.1))
    elapsed = time.perf_counter() - started
    assert info.value.retryable
    assert "0.1" in str(info.value)
    assert elapsed < 0.6


async def test_connection_refused_is_provider_connection_error() -> None:
    port = closed_port()
    model = OpenAICompatModel(model_id="m", model_name="m", base_url=f"http://127.0.0.1:{port}/v1")
    try:
        with pytest.raises(ProviderConnectionError) as info:
            await model.complete(request(timeout_s=2))
    finally:
        await model.aclose()
    assert info.value.retryable
    assert str(port) in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        {"choices": []},
        {"choices": [{"message": {"content": None}, "finish_reason": "stop"}]},
        {"choices": [{"message": {"content": "  \n\t "}, "finish_reason": "stop"}]},
        {"id": "x"},
    ],
)
async def test_empty_answers_are_bad_response_empty(body: dict[str, Any]) -> None:
    async with served(lambda _r: LoopbackReply(json_body=body)) as (model, _):
        with pytest.raises(BadResponse) as info:
            await model.complete(request())
    assert info.value.kind == "empty"


@pytest.mark.parametrize("text", ["<html>502 Bad Gateway</html>", "", "[1, 2]"])
async def test_non_json_body_is_bad_response_unparseable(text: str) -> None:
    async with served(lambda _r: LoopbackReply(text=text)) as (model, _):
        with pytest.raises(BadResponse) as info:
            await model.complete(request())
    assert info.value.kind == "unparseable"
    assert info.value.text == text


async def test_length_with_schema_is_truncated_and_keeps_the_text() -> None:
    async with served(ok('{"title": "Fract', finish_reason="length")) as (model, _):
        with pytest.raises(BadResponse) as info:
            await model.complete(request())
    assert info.value.kind == "truncated"
    assert info.value.text == '{"title": "Fract'


async def test_api_key_never_appears_in_errors_or_repr() -> None:
    """Even a server that echoes the Authorization header back must not leak the key."""

    def echo(status: int) -> LoopbackHandler:
        def handler(_req: dict[str, Any]) -> LoopbackReply:
            return LoopbackReply(status=status, text=f"bad key: Bearer {KEY}")

        return handler

    scenarios: list[LoopbackHandler] = [
        echo(401),
        echo(429),
        echo(500),
        echo(200),  # unparseable body echoing the key
        lambda _r: LoopbackReply(json_body={"error": {"code": 403, "message": f"key {KEY} revoked"}}),
        ok(f"{{'title': '{KEY}", finish_reason="length"),
        ok(""),
        ok(delay_s=0.5),
    ]
    errors: list[ProviderError] = []
    for handler in scenarios:
        async with served(handler, api_key=KEY) as (model, _):
            with pytest.raises(ProviderError) as info:
                await model.complete(request(timeout_s=0.1))
            errors.append(info.value)
            assert KEY not in repr(model)
    model = OpenAICompatModel(
        model_id="m", model_name="m", base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key=KEY
    )
    with pytest.raises(ProviderError) as info:
        await model.complete(request(timeout_s=2))
    await model.aclose()
    errors.append(info.value)

    assert len(errors) == len(scenarios) + 1
    for err in errors:
        chain = [err, err.__cause__, err.__context__]
        for e in (e for e in chain if e is not None):
            assert KEY not in str(e), type(err)
            assert KEY not in repr(e), type(err)
        assert KEY not in getattr(err, "body", "")
        assert KEY not in getattr(err, "text", "")
    # The scrubbed messages still say what happened.
    assert "[redacted]" in str(errors[0])


# --- session lifecycle ---------------------------------------------------------------------


async def test_shared_session_is_used_and_not_closed() -> None:
    async with LoopbackServer(ok()) as server, aiohttp.ClientSession() as session:
        a = OpenAICompatModel(model_id="a", model_name="a", base_url=server.base_url, session=session)
        b = OpenAICompatModel(model_id="b", model_name="b", base_url=server.base_url, session=session)
        await a.complete(request())
        await b.complete(request())
        await a.aclose()
        assert not session.closed
        await b.complete(request())
    assert [r.json["model"] for r in server.requests] == ["a", "b", "b"]


async def test_own_session_is_closed_by_aclose_and_recreated_on_use() -> None:
    async with served(ok()) as (model, server):
        await model.complete(request())
        await model.aclose()
        response = await model.complete(request())
    assert response.text == '{"title": "Fractions"}'
    assert len(server.requests) == 2


def test_unknown_output_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="output_mode"):
        OpenAICompatModel(model_id="m", model_name="m", base_url="http://x/v1", output_mode="xml")  # type: ignore[arg-type]


def test_public_names_are_exported() -> None:
    assert {"OpenAICompatModel", "extract_json"} <= set(providers.__all__)
    assert all(hasattr(providers, name) for name in providers.__all__)


# --- OpenRouter's provider routing -----------------------------------------------------------


async def test_require_parameters_is_sent_whenever_a_json_schema_is() -> None:
    routing = {"provider": {"sort": "price", "zdr": True}}
    async with served(ok(), openrouter=True, extra_body=routing) as (model, server):
        await model.complete(request())
        await model.complete(request(schema=None))
    with_schema, free_text = server.requests[0].json, server.requests[1].json
    assert with_schema["provider"] == {"sort": "price", "zdr": True, "require_parameters": True}
    assert free_text["provider"] == {"sort": "price", "zdr": True}  # the configured routing only
    assert "order" not in with_schema["provider"]  # no provider.order unless configured
    assert with_schema["usage"] == {"include": True}


async def test_no_openrouter_fields_for_another_endpoint() -> None:
    async with served(ok()) as (model, server):
        await model.complete(request())
    assert "provider" not in server.requests[0].json and "usage" not in server.requests[0].json
