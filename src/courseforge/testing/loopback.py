"""A tiny real OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

    async with LoopbackServer(handler) as server:
        model = OpenAICompatModel(..., base_url=server.base_url)

`handler(request_json)` returns a `LoopbackReply` (status, JSON or raw text body, headers, delay);
it may be async. The server listens on an OS-assigned port, serves `POST /v1/chat/completions`
and `GET /v1/models`, and records every request (JSON and headers) in `server.requests`.
Real sockets keep the client honest: timeouts, refused connections and header handling are the
ones production sees. The full provider simulator (latency profiles, faults) builds on this idea.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = ["LoopbackHandler", "LoopbackReply", "LoopbackServer", "ReceivedRequest"]


@dataclass(frozen=True, slots=True)
class LoopbackReply:
    """What the server answers. `text`, when set, is sent raw instead of `json_body`."""

    status: int = 200
    json_body: Any = None
    text: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (to provoke client timeouts).
    delay_s: float = 0.0

    @classmethod
    def completion(
        cls,
        content: str | None,
        *,
        model: str = "loopback",
        finish_reason: str = "stop",
        usage: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> LoopbackReply:
        """A 200 chat completion with one choice whose message content is `content`."""
        body = {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": dict(usage) if usage is not None else {"prompt_tokens": 0, "completion_tokens": 0},
        }
        return cls(json_body=body, headers=dict(headers or {}), delay_s=delay_s)


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    #: Header names as sent (case kept); look them up with `header()`.
    headers: Mapping[str, str]
    json: Any

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


LoopbackHandler = Callable[[dict[str, Any]], LoopbackReply | Awaitable[LoopbackReply]]


class LoopbackServer:
    """An aiohttp server on 127.0.0.1:<free port>. Use as an async context manager."""

    def __init__(
        self,
        handler: LoopbackHandler,
        *,
        models: Sequence[str] = ("loopback",),
        record: bool = True,
    ) -> None:
        self.handler = handler
        self.models = list(models)
        #: Received requests, in arrival order (when `record` is true).
        self.requests: list[ReceivedRequest] = []
        self._record = record
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. http://127.0.0.1:12345/v1."""
        if not self.port:
            raise RuntimeError("LoopbackServer is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        # handler_cancellation: a client that gave up (timeout) cancels the delayed answer, so
        # stopping the server never waits for it.
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        addresses = runner.addresses
        if not addresses:
            await runner.cleanup()
            raise RuntimeError("LoopbackServer could not read its port")
        self.port = int(addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> LoopbackServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if self._record:
            self.requests.append(
                ReceivedRequest(request.method, request.path, dict(request.headers), payload)
            )
        if not isinstance(payload, dict):
            return web.json_response(
                {"error": {"message": "body is not a JSON object", "code": 400}}, status=400
            )
        try:
            reply = self.handler(payload)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:  # a broken test handler shows up as a 500 the client can see
            return web.json_response(
                {"error": {"message": f"handler failed: {exc!r}", "code": 500}}, status=500
            )
        if reply.delay_s > 0:
            await asyncio.sleep(reply.delay_s)
        headers = dict(reply.headers)
        if reply.text is not None:
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return web.Response(status=reply.status, body=reply.text.encode(), headers=headers)
        headers.setdefault("Content-Type", "application/json")
        return web.Response(status=reply.status, body=json.dumps(reply.json_body).encode(), headers=headers)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if self._record:
            self.requests.append(ReceivedRequest(request.method, request.path, dict(request.headers), None))
        data = [{"id": m, "object": "model", "owned_by": "loopback"} for m in self.models]
        return web.json_response({"object": "list", "data": data})
