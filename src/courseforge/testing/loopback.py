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
from typing import Any

from aiohttp import web

from ._openai_wire import LocalOpenAIServer, completion_body, error_response, models_body

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
        body = completion_body(
            completion_id="chatcmpl-loopback",
            model=model,
            content=content,
            finish_reason=finish_reason,
            usage=usage if usage is not None else {"prompt_tokens": 0, "completion_tokens": 0},
        )
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


class LoopbackServer(LocalOpenAIServer):
    """An aiohttp server on 127.0.0.1:<free port>. Use as an async context manager."""

    def __init__(
        self,
        handler: LoopbackHandler,
        *,
        models: Sequence[str] = ("loopback",),
        record: bool = True,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.models = list(models)
        #: Received requests, in arrival order (when `record` is true).
        self.requests: list[ReceivedRequest] = []
        self._record = record

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        return app

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
            return error_response(400, "body is not a JSON object")
        try:
            reply = self.handler(payload)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:  # a broken test handler shows up as a 500 the client can see
            return error_response(500, f"handler failed: {exc!r}")
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
        return web.json_response(models_body(self.models, owned_by="loopback"))
