"""LoopbackServer: a real HTTP server on 127.0.0.1, exercised with a plain aiohttp client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from courseforge.testing import LoopbackReply, LoopbackServer


def hello(_req: dict[str, Any]) -> LoopbackReply:
    return LoopbackReply.completion("hello", usage={"prompt_tokens": 3, "completion_tokens": 1})


async def test_serves_chat_completions_and_records_json_and_headers() -> None:
    async with LoopbackServer(hello) as server, aiohttp.ClientSession() as session:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.port > 0
        async with session.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": []},
            headers={"X-Title": "t"},
        ) as resp:
            status, body = resp.status, await resp.json()
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "hello"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 1}
    [received] = server.requests
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert received.json == {"model": "m", "messages": []}
    assert received.header("x-title") == "t"
    assert received.header("missing") is None


async def test_models_endpoint_lists_the_configured_models() -> None:
    async with LoopbackServer(hello, models=["a", "b"]) as server, aiohttp.ClientSession() as session:
        resp = await session.get(f"{server.base_url}/models")
        body = await resp.json()
    assert [m["id"] for m in body["data"]] == ["a", "b"]
    assert server.requests[0].path == "/v1/models"


async def test_status_raw_text_and_headers_are_sent_as_given() -> None:
    reply = LoopbackReply(status=503, text="down for maintenance", headers={"Retry-After": "5"})
    async with LoopbackServer(lambda _r: reply) as server, aiohttp.ClientSession() as session:
        resp = await session.post(f"{server.base_url}/chat/completions", json={})
        status, text, retry_after = resp.status, await resp.text(), resp.headers.get("Retry-After")
    assert (status, text, retry_after) == (503, "down for maintenance", "5")


async def test_async_handler_sees_the_request_and_delay_is_honoured() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(req: dict[str, Any]) -> LoopbackReply:
        seen.append(req)
        await asyncio.sleep(0)
        return LoopbackReply(json_body={"echo": req["n"]}, delay_s=0.1)

    async with LoopbackServer(handler) as server, aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.post(f"{server.base_url}/chat/completions", json={"n": 7}) as resp:
            body = await resp.json()
        elapsed = time.perf_counter() - started
    assert body == {"echo": 7}
    assert seen == [{"n": 7}]
    assert elapsed >= 0.1


async def test_bad_request_body_is_400_and_handler_crash_is_500() -> None:
    def broken(_req: dict[str, Any]) -> LoopbackReply:
        raise RuntimeError("boom")

    async with LoopbackServer(broken) as server, aiohttp.ClientSession() as session:
        url = f"{server.base_url}/chat/completions"
        async with session.post(url, data=b"not json") as resp:
            bad = resp.status
        async with session.post(url, json={"x": 1}) as resp:
            crashed, body = resp.status, await resp.json()
    assert bad == 400
    assert crashed == 500
    assert "boom" in body["error"]["message"]
    assert [r.json for r in server.requests] == [None, {"x": 1}]


async def test_record_false_keeps_no_requests() -> None:
    async with LoopbackServer(hello, record=False) as server, aiohttp.ClientSession() as session:
        resp = await session.post(f"{server.base_url}/chat/completions", json={})
        assert resp.status == 200
        await resp.read()
    assert server.requests == []


async def test_stops_quickly_with_a_delayed_answer_pending_and_then_refuses() -> None:
    slow = LoopbackReply(json_body={}, delay_s=5.0)
    async with aiohttp.ClientSession() as session:
        async with LoopbackServer(lambda _r: slow) as server:
            url = f"{server.base_url}/chat/completions"
            with pytest.raises(asyncio.TimeoutError):
                await session.post(url, json={}, timeout=aiohttp.ClientTimeout(total=0.05))
            started = time.perf_counter()
        stop_s = time.perf_counter() - started
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.post(url, json={})
    assert stop_s < 1.0


def test_base_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = LoopbackServer(hello).base_url
